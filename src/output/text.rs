//! One readable line per event, for a person watching a terminal or a log.

use std::io::{self, Write};

use super::{Sink, Summary};
use crate::events::mapmem::{short_bytes, MapMemory};
use crate::events::{short_duration, Event, Role};

pub struct TextSink<W: Write> {
    out: W,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W) -> Self {
        TextSink { out }
    }
}

fn clock(ts_ns: u64) -> String {
    // HH:MM:SS.micro in UTC, from the RFC 3339 form.
    let full = super::json::rfc3339_nanos(ts_ns);
    full.get(11..26).unwrap_or(&full).to_string()
}

impl<W: Write> Sink for TextSink<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        let goid = ev.goid.map_or("?".into(), |g| g.to_string());
        let what = match ev.kind {
            Role::Delete => format!(
                "delete {} key={}{}",
                ev.map_type,
                ev.key,
                if ev.key_truncated { "…" } else { "" }
            ),
            Role::Clear => {
                format!("clear  {} cleared={}", ev.map_type, ev.cleared.unwrap_or(0))
            }
        };
        let outcome = ev.outcome.map_or(String::new(), |o| {
            let did = match o.removed {
                Some(true) => " removed",
                Some(false) => " absent",
                None => "",
            };
            format!("{did} took={}", short_duration(o.duration_ns))
        });
        let labels = ev
            .labels
            .as_ref()
            .map_or(String::new(), |l| format!(" labels={}", l.text()));
        writeln!(
            self.out,
            "{} g{goid:<5} {what} len={}{outcome}{labels} map={:#x} at {}",
            clock(ev.ts_ns),
            ev.map_len,
            ev.map,
            ev.caller_label()
        )
    }

    fn map(&mut self, m: &MapMemory) -> io::Result<()> {
        let what = match (&m.size, m.gone) {
            (Some(s), _) => format!(
                "len={} cap={} bytes={} fill={:.1}%{}",
                s.len,
                s.cap,
                short_bytes(s.bytes),
                s.fill() * 100.0,
                if s.bloated() { " (bloated)" } else { "" }
            ),
            (None, why) => format!("gone ({})", why.unwrap_or("unknown")),
        };
        writeln!(
            self.out,
            "{} memory {} map={:#x} {what}",
            clock(m.ts_ns),
            m.map_type,
            m.map
        )
    }

    fn lost(&mut self, count: u64, total: u64) -> io::Result<()> {
        writeln!(
            self.out,
            "!! {count} records lost (ring buffer full), {total} so far"
        )
    }

    fn fatal(&mut self, f: &crate::events::fatal::Fatal) -> io::Result<()> {
        for line in f.report_lines() {
            writeln!(self.out, "{line}")?;
        }
        self.out.flush()
    }

    fn summary(&mut self, s: &Summary) -> io::Result<()> {
        writeln!(self.out, "--")?;
        writeln!(self.out, "{}", s.line())?;
        for f in s.by_function.iter().filter(|f| f.hits > 0) {
            writeln!(self.out, "  {:>10}  {}", f.hits, f.func)?;
        }
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::testing::delete;
    use crate::events::{KeyValue, Outcome};

    fn line(ev: &Event) -> String {
        let mut out = Vec::new();
        TextSink::new(&mut out).event(ev).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_measured_delete_says_what_it_did_and_how_long_it_took() {
        let mut ev = delete(0x10, KeyValue::Int(7), &[]);
        assert!(line(&ev).contains(" len=3 map=0x10 "), "{}", line(&ev));
        ev.outcome = Some(Outcome {
            duration_ns: 1_250,
            removed: Some(false),
        });
        assert!(
            line(&ev).contains(" len=3 absent took=1.2µs map="),
            "{}",
            line(&ev)
        );
        ev.outcome = Some(Outcome {
            duration_ns: 850,
            removed: Some(true),
        });
        assert!(line(&ev).contains(" removed took=850ns "), "{}", line(&ev));
    }
}
