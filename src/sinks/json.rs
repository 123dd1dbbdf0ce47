//! JSON lines: one object per line, a `type` on each. The schema is in
//! `docs/json.md`; field names are a stable interface.

use std::io::{self, Write};
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::alerts::AlertBoard;
use super::{Sink, Summary};
use crate::events::{Event, EventKind, Frame, KeyValue};

pub struct JsonSink<W: Write> {
    out: W,
    records: u64,
    /// `--alert`: alert records from the board, and where we are in it.
    alerts: Option<(Arc<AlertBoard>, usize)>,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        JsonSink {
            out,
            records: 0,
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
    caller: String,
    stack: &'a [Frame],
}

pub fn rfc3339_nanos(ts_ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ts_ns);
    humantime::format_rfc3339_nanos(t).to_string()
}

impl<W: Write> Sink for JsonSink<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.write_alerts()?;
        let is_delete = ev.kind == EventKind::Delete;
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
            caller: ev.caller_label(),
            stack: &ev.stack,
        };
        self.records += 1;
        self.line(&record)
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
