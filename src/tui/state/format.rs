//! Text shared by the views and the export: function names, lists, numbers
//! and times as the TUI shows them.

use std::sync::Arc;

/// `github.com/org/svc/cache.(*LRU).evict` → `cache.(*LRU).evict` (a `/`
/// inside type parameters or a receiver stays).
pub fn short_func(func: &str) -> &str {
    let end = func.find(['[', '(']).unwrap_or(func.len());
    match func[..end].rfind('/') {
        Some(i) => &func[i + 1..],
        None => func,
    }
}

pub(super) fn join_types(types: &[Arc<str>], overflow: bool) -> String {
    let mut s = types.iter().map(|t| &**t).collect::<Vec<_>>().join(", ");
    if overflow {
        s.push_str(", …");
    }
    s
}

/// `1234567` → `1,234,567`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `HH:MM:SS.mmm` (UTC) of a wall-clock time in ns since the epoch.
pub fn clock(ts_ns: u64) -> String {
    let full = crate::output::json::rfc3339_nanos(ts_ns);
    full.get(11..23).unwrap_or(&full).to_string()
}

/// A duration, compact (`events::short_duration`).
pub use crate::events::short_duration as duration;

/// The ABSENT cell: the percent of measured deletes whose key was absent
/// (`<1%` and `>99%` rather than rounding to 0 or 100); `–` when none was
/// measured.
pub fn absent_text(removed: u64, absent: u64) -> String {
    let Some(pct) = absent_pct(removed, absent) else {
        return "–".into();
    };
    if absent > 0 && pct < 1.0 {
        "<1%".into()
    } else if removed > 0 && pct > 99.0 {
        ">99%".into()
    } else {
        format!("{pct:.0}%")
    }
}

/// The percent of measured deletes whose key was absent; None when none was.
pub fn absent_pct(removed: u64, absent: u64) -> Option<f64> {
    let measured = removed + absent;
    (measured > 0).then(|| absent as f64 * 100.0 / measured as f64)
}

/// A P50 / P99 cell: the bucket's upper bound, `–` when none was timed.
pub fn quantile_text(bound: Option<u64>) -> String {
    bound.map_or_else(|| "–".into(), duration)
}
