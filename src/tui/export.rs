//! The `e` key: what is on screen, to files — the stacks as folded text
//! (the same shaping as `mdt flame --folded`) and the current aggregates
//! (callers and maps, filtered and sorted as shown) as one JSON document.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::app::App;
use super::state::View;
use super::state::{self, Filter, OutcomeSummary, Stats};
use crate::output::flame::folded;

/// What `e` writes, taken from the stats (under their lock) and written
/// to files after (without it).
pub struct Export {
    base: String,
    folded: String,
    json: Vec<u8>,
}

impl Export {
    pub fn new(app: &App, stats: &Stats) -> Export {
        let filter = Filter::new(&app.filter);
        let now_sec = app.now_ns / 1_000_000_000;
        let mut json = serde_json::to_vec_pretty(&aggregates(app, stats, &filter, now_sec))
            .unwrap_or_default();
        json.push(b'\n');
        let stamp = crate::output::json::rfc3339_nanos(app.now_ns);
        let stamp: String = stamp
            .get(..19)
            .unwrap_or(&stamp)
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == 'T')
            .collect();
        Export {
            base: format!("mdt-{}-{stamp}", app.info.pid),
            folded: folded::write(&stats.profile(&filter)),
            json,
        }
    }

    /// Writes `mdt-PID-TIME.folded` and `mdt-PID-TIME.json` into `dir`
    /// (never over an existing file) and returns their paths.
    pub fn write(&self, dir: &Path) -> io::Result<(PathBuf, PathBuf)> {
        for n in 0..1000 {
            let name = if n == 0 {
                self.base.clone()
            } else {
                format!("{}-{n}", self.base)
            };
            let (f, j) = (
                dir.join(format!("{name}.folded")),
                dir.join(format!("{name}.json")),
            );
            if f.exists() || j.exists() {
                continue;
            }
            create(&f, self.folded.as_bytes())?;
            create(&j, &self.json)?;
            return Ok((f, j));
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{}.* all exist", self.base),
        ))
    }
}

/// Both files at once.
pub fn write(dir: &Path, app: &App, stats: &Stats) -> io::Result<(PathBuf, PathBuf)> {
    Export::new(app, stats).write(dir)
}

fn create(path: &Path, body: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(body)
}

fn aggregates(app: &App, stats: &Stats, filter: &Filter, now_sec: u64) -> serde_json::Value {
    let (mut callers, _) = stats.caller_lines(filter, now_sec);
    state::sort_callers(&mut callers, app.sort(View::Callers));
    let (mut maps, _) = stats.map_lines(filter, now_sec);
    state::sort_maps(&mut maps, app.sort(View::Maps));
    let t = &app.totals;
    json!({
        "type": "mdt_tui_export",
        "ts": crate::output::json::rfc3339_nanos(app.now_ns),
        "target": {
            "pid": app.info.pid,
            "binary": app.info.binary,
            "go_version": app.info.go_version,
            "map_impl": app.info.map_impl,
        },
        "totals": {
            "deletes": t.deletes,
            "clears": t.clears,
            "exact": app.exact,
            "lost": t.lost,
            "sampled_out": t.sampled_out,
            "records": stats.records(),
            "sample_rate": app.info.sample_rate,
        },
        "filter": app.filter,
        "paused": app.paused,
        "callers": callers.iter().map(|c| json!({
            "caller": c.key.full_label(),
            "func": &*c.key.func,
            "file": &*c.key.file,
            "line": c.key.line,
            "total": c.total,
            "deletes": c.deletes,
            "clears": c.clears,
            "rate": c.rate,
            "share": (c.share * 100.0).round() / 100.0,
            "maps": c.maps,
            "maps_capped": c.maps_overflow,
            "map_types": c.types.iter().map(|t| &**t).collect::<Vec<_>>(),
            "outcomes": outcomes(&c.outcomes),
        })).collect::<Vec<_>>(),
        "maps": maps.iter().map(|m| json!({
            "map": format!("{:#x}", m.addr),
            "map_type": &*m.map_type,
            "len": m.len,
            "deletes": m.deletes,
            "clears": m.clears,
            "rate": m.rate,
            "top_caller": m.top_caller.as_deref(),
            "outcomes": outcomes(&m.outcomes),
        })).collect::<Vec<_>>(),
    })
}

/// A row's measured calls (those the exit probes were armed for): what the
/// deletes found, and the bucket bounds of the median and the 99th
/// percentile (`p50_ns` null when none was timed, or past the last bound:
/// `p50` says which, as on screen).
fn outcomes(o: &OutcomeSummary) -> serde_json::Value {
    let ns = |q: Option<u64>| q.filter(|&b| b != u64::MAX);
    let text = |q: Option<u64>| q.map(state::duration);
    json!({
        "timed": o.timed,
        "removed": o.removed,
        "absent": o.absent,
        "absent_pct": o.absent_pct().map(|p| (p * 100.0).round() / 100.0),
        "p50_ns": ns(o.p50),
        "p99_ns": ns(o.p99),
        "p50": text(o.p50),
        "p99": text(o.p99),
    })
}
