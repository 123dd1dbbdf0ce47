//! JSON lines: one object per line, a `type` on each. The schema is in
//! `docs/json.md`; field names are a stable interface.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::bounded::Cache;

use super::{Sink, Summary};
use crate::events::fatal::Fatal;
use crate::events::mapmem::MapMemory;
use crate::events::process::Process;
use crate::events::{frame_label, Event, Frame, KeyValue, Labels, Role, Stack};

pub struct JsonSink<W: Write> {
    out: W,
    stacks: StackJson,
    /// One record's bytes, reused.
    line: Vec<u8>,
    /// `--alert`: alert records from the board, and where we are in it.
    alerts: Option<(Arc<dyn SideRecords>, usize)>,
    /// The traced process, and the fields its records add to their pid.
    process: Option<(Process, Box<[u8]>)>,
}

impl<W: Write> JsonSink<W> {
    /// `max_stacks`: distinct stacks kept rendered
    /// ([`crate::bounded::Limits::stacks`]).
    pub fn new(out: W, max_stacks: usize) -> Self {
        JsonSink {
            out,
            stacks: StackJson::new(max_stacks),
            line: Vec::with_capacity(4096),
            alerts: None,
            process: None,
        }
    }

    /// Also writes the records posted to `board` (the `alert` / `resolved`
    /// records, between delete records, as they fire) and its object in the
    /// summary.
    pub fn with_alerts(mut self, board: Arc<dyn SideRecords>) -> Self {
        self.alerts = Some((board, 0));
        self
    }

    fn write_alerts(&mut self) -> io::Result<()> {
        let Some((board, cursor)) = &mut self.alerts else {
            return Ok(());
        };
        let (notices, next) = board.since(*cursor);
        *cursor = next;
        for n in notices {
            self.line(&n)?;
        }
        Ok(())
    }

    fn line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }
}

/// Records that another part of mdt posts while tracing (the alerts),
/// written between the delete records as they come, with an object of its
/// own in the summary.
pub trait SideRecords: Send + Sync {
    /// The records posted after `cursor` (0 at first), and the cursor for
    /// next time.
    fn since(&self, cursor: usize) -> (Vec<serde_json::Value>, usize);
    /// The summary's (key, object).
    fn summary(&self) -> (&'static str, serde_json::Value);
}

/// A `delete` or `clear` record of the JSON stream (docs/json.md): what
/// [`JsonSink`] writes, and what `mdt flame --from` reads back. `caller` and
/// `stack` are written after the rest, from the JSON rendered once per
/// stack ([`StackJson`]); they are read back with the rest. Reading, every
/// field but `type` and `func` may be missing (a stream trimmed by `jq`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Record<'a> {
    #[serde(rename = "type")]
    pub kind: Role,
    #[serde(default, borrow)]
    pub ts: Cow<'a, str>,
    #[serde(default)]
    pub ts_ns: u64,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub tid: u32,
    #[serde(default)]
    pub goid: Option<u64>,
    #[serde(borrow)]
    pub func: Cow<'a, str>,
    #[serde(default, borrow)]
    pub map: Cow<'a, str>,
    #[serde(default, borrow)]
    pub map_type: Cow<'a, str>,
    #[serde(default, borrow)]
    pub key_type: Cow<'a, str>,
    /// Deletes only (null when the key could not be read).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub key: Option<Cow<'a, KeyValue>>,
    /// The key's bytes in memory order, for keys shown by their Go form.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub key_hex: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_truncated: Option<bool>,
    #[serde(default)]
    pub map_len: u64,
    /// The map's capacity in slots, as last read; missing before that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_cap: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared: Option<u64>,
    /// With the exit points armed: the delete removed an entry (false: the
    /// key was not there). Missing for clears and when not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<bool>,
    /// With the exit points armed: time inside the runtime function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ns: Option<u64>,
    /// The goroutine's pprof labels at the call; missing when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Cow<'a, Labels>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub labels_truncated: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stack_lost: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stack_truncated: bool,
    #[serde(default, skip_serializing, borrow)]
    pub caller: Cow<'a, str>,
    #[serde(default, skip_serializing)]
    pub stack: Vec<Frame>,
}

/// A field that is there is `Some`, even when it is null.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl<'a> Record<'a> {
    /// The record of `ev`, but for its caller and stack.
    fn of(ev: &'a Event) -> Self {
        let is_delete = ev.kind == Role::Delete;
        Record {
            kind: ev.kind,
            ts: rfc3339_nanos(ev.ts_ns).into(),
            ts_ns: ev.ts_ns,
            pid: ev.pid,
            tid: ev.tid,
            goid: ev.goid,
            func: ev.func.into(),
            map: format!("{:#x}", ev.map).into(),
            map_type: (*ev.map_type).into(),
            key_type: (*ev.key_type).into(),
            key: is_delete.then_some(Cow::Borrowed(&ev.key)),
            key_hex: ev
                .key_hex
                .as_deref()
                .filter(|_| is_delete)
                .map(|b| Cow::Owned(crate::events::key::hex(b))),
            key_truncated: is_delete.then_some(ev.key_truncated),
            map_len: ev.map_len,
            map_cap: ev.map_cap,
            cleared: ev.cleared,
            removed: ev.outcome.and_then(|o| o.removed),
            duration_ns: ev.outcome.map(|o| o.duration_ns),
            labels: ev.labels.as_deref().map(Cow::Borrowed),
            labels_truncated: ev.labels.as_ref().is_some_and(|l| l.truncated),
            stack_lost: ev.stack_lost,
            stack_truncated: ev.stack_truncated,
            caller: Cow::Borrowed(""),
            stack: Vec::new(),
        }
    }
}

/// Distinct addresses whose frames' JSON is kept.
pub const MAX_RENDERED_ADDRESSES: usize = 65_536;

/// The `"caller":…,"stack":[…]` end of a record, rendered once per distinct
/// stack (a hot delete site repeats its stack, and rendering it is most of
/// a record's cost); a stack not seen before is put together from the JSON
/// of its addresses' frames, each rendered once, so that a workload whose
/// every delete has a new stack costs a copy per record, not a rendering.
struct StackJson {
    by_stack: Cache<u64, Box<[u8]>>,
    /// By (address, first in its stack): the JSON of the frames at one
    /// address (inlined ones included). The first address of a stack is
    /// the probed instruction and is named as is; the others are return
    /// addresses, named by the call before them.
    by_addr: Cache<(u64, bool), Box<[u8]>>,
}

impl StackJson {
    fn new(max_stacks: usize) -> Self {
        StackJson {
            by_stack: Cache::new(max_stacks),
            by_addr: Cache::new(MAX_RENDERED_ADDRESSES),
        }
    }

    /// Appends `,"caller":…,"stack":[…]` of `ev` to `out`.
    fn append(&mut self, ev: &Event, out: &mut Vec<u8>) -> io::Result<()> {
        if ev.stack_id != 0 {
            if let Some(tail) = self.by_stack.get(&ev.stack_id) {
                out.extend_from_slice(tail);
                return Ok(());
            }
        }
        let start = out.len();
        out.extend_from_slice(b",\"caller\":");
        serde_json::to_writer(&mut *out, &ev.caller_label())?;
        out.extend_from_slice(b",\"stack\":[");
        for (i, group) in ev.stack.groups().iter().enumerate() {
            let Some(head) = group.first() else { continue };
            let key = (head.addr, i == 0);
            if i > 0 {
                out.push(b',');
            }
            match self.by_addr.get(&key) {
                Some(json) => out.extend_from_slice(json),
                None => {
                    let json = frames_json(group)?;
                    out.extend_from_slice(&json);
                    self.by_addr.offer(key, json);
                }
            }
        }
        out.push(b']');
        if ev.stack_id != 0 {
            self.by_stack
                .offer_with(&ev.stack_id, || (ev.stack_id, out[start..].into()));
        }
        Ok(())
    }
}

/// `{…},{…}`: the frames, without the array's brackets.
fn frames_json(frames: &[Frame]) -> io::Result<Box<[u8]>> {
    let array = serde_json::to_vec(frames)?;
    Ok(array[1..array.len() - 1].into())
}

/// A `map` record: one reading of a map's memory (docs/json.md).
pub fn map_record(m: &MapMemory) -> serde_json::Value {
    let mut v = json!({
        "type": "map",
        "ts": rfc3339_nanos(m.ts_ns),
        "ts_ns": m.ts_ns,
        "pid": m.pid,
        "map": format!("{:#x}", m.map),
        "map_type": &*m.map_type,
    });
    let obj = v.as_object_mut().expect("an object");
    match (&m.size, m.gone) {
        (Some(size), _) => {
            if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(size) {
                obj.extend(fields);
            }
            obj.insert("fill".into(), json!((size.fill() * 1e6).round() / 1e6));
            obj.insert("bloated".into(), size.bloated().into());
        }
        (None, why) => {
            obj.insert("gone".into(), true.into());
            obj.insert("reason".into(), why.unwrap_or("unknown").into());
        }
    }
    v
}

/// A delete or clear record as a value, caller and stack included (the
/// recent deletes of a `fatal` record).
fn event_value(ev: &Event) -> serde_json::Value {
    let mut v = serde_json::to_value(Record::of(ev)).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("caller".into(), ev.caller_label().into());
        obj.insert("stack".into(), json!(ev.stack));
    }
    v
}

/// `v` with the `caller` and `stack` of a stack that is not a delete's.
fn with_stack(mut v: serde_json::Value, stack: &Stack, caller: Option<usize>) -> serde_json::Value {
    let fields = json!({
        "caller": frame_label(caller.and_then(|i| stack.get(i))),
        "stack": stack,
    });
    merge(&mut v, fields);
    v
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// A `fatal` record: the target died of a fatal error (docs/json.md).
pub fn fatal_record(f: &Fatal) -> serde_json::Value {
    let mut v = json!({
        "type": "fatal",
        "ts": rfc3339_nanos(f.ts_ns),
        "ts_ns": f.ts_ns,
        "pid": f.pid,
        "tid": f.tid,
        "goid": f.goid,
        "message": f.message,
        "map_misuse": f.is_map_misuse(),
    });
    if let Some(l) = &f.labels {
        merge(
            &mut v,
            json!({"labels": &**l, "labels_truncated": l.truncated}),
        );
    }
    let mut v = with_stack(v, &f.stack, f.caller);
    merge(&mut v, json!({"stack_truncated": f.stack_truncated}));
    if let Some(m) = &f.map {
        merge(
            &mut v,
            json!({"map": format!("{:#x}", m.addr), "map_type": &*m.map_type}),
        );
    }
    let r = &f.running;
    let goroutines: Vec<_> = r
        .goroutines
        .iter()
        .map(|g| {
            let v = json!({"tid": g.tid, "goid": g.goid, "system_stack": g.system_stack});
            with_stack(v, &g.stack, g.caller)
        })
        .collect();
    let mut running = json!({
        "held": r.held,
        "held_us": r.held_ns.map(|ns| ns / 1000),
        "threads": r.threads,
        "stopped": r.stopped,
        "goroutines": goroutines,
    });
    if let Some(why) = &r.unavailable {
        merge(&mut running, json!({"unavailable": why}));
    }
    let w = &f.recent;
    let recent = json!({
        "since": rfc3339_nanos(w.since_ns),
        "since_ns": w.since_ns,
        "window_ns": f.ts_ns.saturating_sub(w.since_ns),
        "bucket_ns": w.bucket_ns,
        "kernel_deletes": w.deletes,
        "kernel_clears": w.clears,
        "received": w.received,
        "received_complete": w.received_complete,
        "on_map": w.on_map,
        "listed": w.events.len(),
        "more": w.more,
        "events": w.events.iter().map(event_value).collect::<Vec<_>>(),
    });
    let also: Vec<_> = f
        .also
        .iter()
        .map(|a| {
            let v = json!({"tid": a.tid, "goid": a.goid, "message": a.message});
            with_stack(v, &a.stack, a.caller)
        })
        .collect();
    merge(
        &mut v,
        json!({"running": running, "recent": recent, "also": also, "also_dropped": f.also_dropped}),
    );
    v
}

pub fn rfc3339_nanos(ts_ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ts_ns);
    humantime::format_rfc3339_nanos(t).to_string()
}

impl<W: Write> Sink for JsonSink<W> {
    fn process(&mut self, p: &Process) {
        self.process = Some((p.clone(), p.json_fields().into()));
    }

    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.write_alerts()?;
        let record = Record::of(ev);
        self.line.clear();
        serde_json::to_writer(&mut self.line, &record)?;
        self.line.pop(); // the closing brace: the process, caller and stack follow
        if let Some((p, fields)) = &self.process {
            if p.pid == ev.pid {
                self.line.extend_from_slice(fields);
            }
        }
        self.stacks.append(ev, &mut self.line)?;
        self.line.extend_from_slice(b"}\n");
        self.out.write_all(&self.line)
    }

    fn map(&mut self, m: &MapMemory) -> io::Result<()> {
        self.line(&map_record(m))
    }

    fn fatal(&mut self, f: &Fatal) -> io::Result<()> {
        self.write_alerts()?;
        let mut record = fatal_record(f);
        if let Some((p, _)) = self.process.as_ref().filter(|(p, _)| p.pid == f.pid) {
            let mut fields = serde_json::to_value(p).map_err(io::Error::other)?;
            if let Some(o) = fields.as_object_mut() {
                o.remove("pid");
            }
            merge(&mut record, fields);
        }
        self.line(&record)?;
        self.out.flush()
    }

    fn lost(&mut self, count: u64, total: u64) -> io::Result<()> {
        let now = std::time::SystemTime::now();
        self.line(&json!({
            "type": "lost",
            "ts": humantime::format_rfc3339_nanos(now).to_string(),
            "count": count,
            "total": total,
        }))
    }

    fn summary(&mut self, s: &Summary) -> io::Result<()> {
        self.write_alerts()?;
        let mut value = serde_json::to_value(s).map_err(io::Error::other)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("type".into(), "summary".into());
            if let Some((board, _)) = &self.alerts {
                let (key, value) = board.summary();
                obj.insert(key.into(), value);
            }
            if let Some((p, _)) = &self.process {
                obj.insert(
                    "process".into(),
                    serde_json::to_value(p).map_err(io::Error::other)?,
                );
            }
        }
        self.line(&value)?;
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_alerts()?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Frame, Stack};

    fn frame(func: &str, line: u32, addr: u64, inlined: bool) -> Frame {
        Frame::new(func, "/src/app/main.go", line, addr, inlined)
    }

    fn event(kind: Role, key: KeyValue, stack_id: u64) -> Event {
        let stack = Stack::from(vec![
            frame("runtime.mapdelete_faststr", 396, 0x4087e6, false),
            frame("maps.DeleteFunc[...]", 60, 0x4d7815, true),
            frame("main.prune", 195, 0x4d7815, false),
            frame("main.main", 20, 0x4d9000, false),
        ]);
        Event {
            kind,
            ts_ns: 1_795_630_676_408_967_123,
            tick: 0,
            pid: 4242,
            tid: 4243,
            goid: Some(17),
            func: "runtime.mapdelete_faststr",
            map: 0xc0_0001_29c0,
            map_type_ptr: 0x4e_0000,
            map_type: "main.UserMap".into(),
            key_type: "string".into(),
            key,
            key_hex: None,
            key_truncated: false,
            map_len: 3,
            map_cap: Some(8),
            cleared: (kind == Role::Clear).then_some(3),
            caller: crate::events::find_caller(&stack),
            stack_lost: false,
            stack_truncated: false,
            stack_id,
            stack,
            labels: None,
            outcome: None,
        }
    }

    #[test]
    fn labels_are_an_object_and_read_back() {
        let mut del = event(Role::Delete, KeyValue::Str("k".into()), 1);
        del.labels = Some(std::sync::Arc::new(Labels {
            pairs: vec![
                ("endpoint".into(), "/api".into()),
                ("tenant".into(), "t1".into()),
            ],
            truncated: true,
        }));
        let plain = event(Role::Delete, KeyValue::Str("k".into()), 2);
        let lines = write(&[del, plain]);
        assert!(
            lines[0]
                .contains(r#""labels":{"endpoint":"/api","tenant":"t1"},"labels_truncated":true"#),
            "{}",
            lines[0]
        );
        assert!(!lines[1].contains("labels"), "{}", lines[1]);
        let back: Record = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(back.labels.unwrap().get("tenant"), Some("t1"));
        assert!(back.labels_truncated);
    }

    #[test]
    fn outcomes_are_written_when_measured_and_read_back() {
        let mut del = event(Role::Delete, KeyValue::Str("k".into()), 1);
        del.outcome = Some(crate::events::Outcome {
            duration_ns: 850,
            removed: Some(false),
        });
        let mut clr = event(Role::Clear, KeyValue::None, 2);
        clr.outcome = Some(crate::events::Outcome {
            duration_ns: 12_000,
            removed: None,
        });
        let plain = event(Role::Delete, KeyValue::Str("k".into()), 3);
        let lines = write(&[del, clr, plain]);
        let rec: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rec[0]["removed"], false);
        assert_eq!(rec[0]["duration_ns"], 850);
        assert!(rec[1].get("removed").is_none());
        assert_eq!(rec[1]["duration_ns"], 12_000);
        assert!(rec[2].get("removed").is_none() && rec[2].get("duration_ns").is_none());
        let back: Record = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!((back.removed, back.duration_ns), (Some(false), Some(850)));
    }

    fn write(events: &[Event]) -> Vec<String> {
        let mut out = Vec::new();
        let mut sink = JsonSink::new(&mut out, 16);
        for ev in events {
            sink.event(ev).unwrap();
        }
        sink.flush().unwrap();
        drop(sink);
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_record_reads_back_as_it_was_written() {
        let ev = event(Role::Delete, KeyValue::Str("alice".into()), 7);
        let lines = write(std::slice::from_ref(&ev));
        let r: Record = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(r.kind, Role::Delete);
        assert_eq!(r.ts, "2026-11-25T18:17:56.408967123Z");
        assert_eq!(
            (r.ts_ns, r.pid, r.tid, r.goid),
            (ev.ts_ns, 4242, 4243, Some(17))
        );
        assert_eq!(r.func, ev.func);
        assert_eq!(r.map, "0xc0000129c0");
        assert_eq!((&*r.map_type, &*r.key_type), ("main.UserMap", "string"));
        assert_eq!(r.key.as_deref(), Some(&KeyValue::Str("alice".into())));
        assert_eq!(
            (r.key_truncated, r.map_len, r.cleared),
            (Some(false), 3, None)
        );
        assert!(!r.stack_lost);
        assert_eq!(r.caller, "main.prune /src/app/main.go:195");
        assert_eq!(Stack::from(r.stack), ev.stack);
        // Written again, the same line.
        let mut again = serde_json::to_value(Record::of(&ev)).unwrap();
        let obj = again.as_object_mut().unwrap();
        obj.insert("caller".into(), r.caller.to_string().into());
        obj.insert("stack".into(), serde_json::to_value(&ev.stack).unwrap());
        let written: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(again, written);
    }

    #[test]
    fn every_kind_of_record_round_trips() {
        let mut unreadable = event(Role::Delete, KeyValue::None, 8);
        unreadable.stack_lost = true;
        unreadable.stack = Stack::default();
        unreadable.stack_id = 0;
        unreadable.caller = None;
        let mut go_form = event(
            Role::Delete,
            KeyValue::Go(crate::events::key::GoValue {
                text: "1.5".into(),
                json: crate::events::key::GoJson::Float64,
            }),
            7,
        );
        go_form.key_hex = Some(1.5f64.to_le_bytes().into());
        let evs = [
            event(Role::Delete, KeyValue::Pointer(0x139c_85bc_aea0), 7),
            event(Role::Delete, KeyValue::Int(-5), 7),
            event(Role::Clear, KeyValue::None, 9),
            unreadable,
            go_form,
        ];
        let lines = write(&evs);
        assert_eq!(lines.len(), evs.len());
        for (ev, line) in evs.iter().zip(&lines) {
            let r: Record = serde_json::from_str(line).unwrap();
            let back = serde_json::to_string(&r).unwrap();
            let head = serde_json::to_string(&Record::of(ev)).unwrap();
            assert_eq!(back, head, "{line}");
            assert!(line.starts_with(&head[..head.len() - 1]), "{line}");
        }
        assert!(
            lines[0].contains(r#""key":"0x139c85bcaea0""#),
            "{}",
            lines[0]
        );
        assert!(lines[2].contains(r#""type":"clear""#) && !lines[2].contains(r#""key""#));
        assert!(lines[2].contains(r#""cleared":3"#));
        assert!(lines[3].contains(r#""key":null"#), "{}", lines[3]);
        assert!(
            lines[4].contains(r#""key":1.5,"key_hex":"000000000000f83f","key_truncated":false"#),
            "{}",
            lines[4]
        );
        assert!(!lines[0].contains("key_hex"), "{}", lines[0]);
        assert!(
            lines[3].ends_with(r#""stack_lost":true,"caller":"?","stack":[]}"#),
            "{}",
            lines[3]
        );
    }

    #[test]
    fn a_stack_renders_the_same_from_its_cache_and_from_its_addresses() {
        // The first record of a stack is put together from its addresses'
        // frames; it is cached from its second, and then copied.
        let evs: Vec<Event> = (0..4)
            .map(|i| event(Role::Delete, KeyValue::Int(i), 42))
            .collect();
        let lines = write(&evs);
        let tail = |l: &str| l[l.find(r#","caller""#).unwrap()..].to_string();
        assert!(lines.iter().all(|l| tail(l) == tail(&lines[0])));
        let v: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
        assert_eq!(v["stack"], serde_json::to_value(&evs[0].stack).unwrap());
        assert_eq!(v["stack"][1]["inlined"], true);
        assert_eq!(v["stack"][1]["addr"], "0x4d7815");
    }
}
