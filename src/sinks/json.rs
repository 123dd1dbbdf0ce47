//! JSON lines: one object per line, a `type` on each. The schema is in
//! `docs/json.md`; field names are a stable interface.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::alerts::AlertBoard;
use super::{Sink, Summary};
use crate::events::{Event, EventKind, Frame, KeyValue};

pub struct JsonSink<W: Write> {
    out: W,
    records: u64,
    /// Rendered `stack` and `caller` per distinct stack: a hot delete site
    /// repeats the same stack, and rendering it is most of a record's cost.
    rendered: HashMap<usize, Rendered>,
    /// `--alert`: alert records from the board, and where we are in it.
    alerts: Option<(Arc<AlertBoard>, usize)>,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        JsonSink {
            out,
            records: 0,
            rendered: HashMap::new(),
            alerts: None,
        }
    }

    /// Also writes the `alert` / `resolved` records posted to `board`
    /// (between delete records, as they fire) and an `alerts` object in the
    /// summary.
    pub fn with_alerts(mut self, board: Arc<AlertBoard>) -> Self {
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
            self.line(&n.to_json())?;
        }
        Ok(())
    }

    /// The stack and caller JSON of `ev`, rendered once per stack. The
    /// symbolizer hands out one shared `Arc` per distinct stack, so its
    /// address identifies the stack; the entry keeps the `Arc` alive so the
    /// address cannot be reused while cached.
    fn render_stack(&mut self, ev: &Event) -> io::Result<usize> {
        if self.rendered.len() >= MAX_RENDERED_STACKS {
            self.rendered.clear();
        }
        let key = Arc::as_ptr(&ev.stack) as *const Frame as usize;
        if let std::collections::hash_map::Entry::Vacant(slot) = self.rendered.entry(key) {
            let stack = RawValue::from_string(serde_json::to_string(&*ev.stack)?)?;
            let caller = RawValue::from_string(serde_json::to_string(&ev.caller_label())?)?;
            slot.insert(Rendered {
                _owner: ev.stack.clone(),
                stack,
                caller,
            });
        }
        Ok(key)
    }

    fn line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }
}

/// A record as serialized; borrowed from the event.
#[derive(Serialize)]
struct Record<'a> {
    #[serde(rename = "type")]
    kind: EventKind,
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
    caller: &'a RawValue,
    stack: &'a RawValue,
}

/// Cached JSON of one distinct stack.
struct Rendered {
    _owner: Arc<[Frame]>,
    stack: Box<RawValue>,
    caller: Box<RawValue>,
}

/// Bound on the cache of rendered stacks (cleared when reached).
const MAX_RENDERED_STACKS: usize = 50_000;

pub fn rfc3339_nanos(ts_ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ts_ns);
    humantime::format_rfc3339_nanos(t).to_string()
}

impl<W: Write> Sink for JsonSink<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.write_alerts()?;
        let is_delete = ev.kind == EventKind::Delete;
        // Rendered first: `record` borrows from the cache.
        let key = self.render_stack(ev)?;
        let rendered = &self.rendered[&key];
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
            caller: &rendered.caller,
            stack: &rendered.stack,
        };
        serde_json::to_writer(&mut self.out, &record)?;
        self.records += 1;
        self.out.write_all(b"\n")
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
            obj.insert("records".into(), self.records.into());
            obj.insert("type".into(), "summary".into());
            if let Some((board, _)) = &self.alerts {
                obj.insert("alerts".into(), board.summary_json());
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
