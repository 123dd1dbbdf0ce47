//! JSON lines: one object per line, a `type` on each. The schema is in
//! `docs/json.md`; field names are a stable interface.

use std::io::{self, Write};
use std::sync::Arc;

use crate::bounded::Cache;
use serde::Serialize;
use serde_json::json;

use super::{Sink, Summary};
use crate::events::{Event, Frame, KeyValue, Role};

pub struct JsonSink<W: Write> {
    out: W,
    stacks: StackJson,
    /// One record's bytes, reused.
    line: Vec<u8>,
    /// `--alert`: alert records from the board, and where we are in it.
    alerts: Option<(Arc<dyn SideRecords>, usize)>,
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

/// A record as serialized, but for its `caller` and `stack`, which follow
/// it as JSON rendered once per stack.
#[derive(Serialize)]
struct Record<'a> {
    #[serde(rename = "type")]
    kind: Role,
    ts: String,
    ts_ns: u64,
    pid: u32,
    tid: u32,
    goid: Option<u64>,
    func: &'a str,
    map: String,
    map_type: &'a str,
    key_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a KeyValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_truncated: Option<bool>,
    map_len: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cleared: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stack_lost: bool,
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

pub fn rfc3339_nanos(ts_ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ts_ns);
    humantime::format_rfc3339_nanos(t).to_string()
}

impl<W: Write> Sink for JsonSink<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.write_alerts()?;
        let is_delete = ev.kind == Role::Delete;
        let record = Record {
            kind: ev.kind,
            ts: rfc3339_nanos(ev.ts_ns),
            ts_ns: ev.ts_ns,
            pid: ev.pid,
            tid: ev.tid,
            goid: ev.goid,
            func: ev.func,
            map: format!("{:#x}", ev.map),
            map_type: &ev.map_type,
            key_type: &ev.key_type,
            key: is_delete.then_some(&ev.key),
            key_truncated: is_delete.then_some(ev.key_truncated),
            map_len: ev.map_len,
            cleared: ev.cleared,
            stack_lost: ev.stack_lost,
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &record)?;
        self.line.pop(); // the closing brace: caller and stack follow
        self.stacks.append(ev, &mut self.line)?;
        self.line.extend_from_slice(b"}\n");
        self.out.write_all(&self.line)
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
        }
        self.line(&value)?;
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_alerts()?;
        self.out.flush()
    }
}
