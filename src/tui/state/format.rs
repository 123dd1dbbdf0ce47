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

/// A duration, compact: `850ns`, `12µs`, `3.4ms`, `1s` (one decimal under
/// 10 of a unit, when there is one). `u64::MAX` (a quantile past the last
/// latency bucket) is `>1s`.
pub fn duration(ns: u64) -> String {
    if ns == u64::MAX {
        let last = crate::probes::LATENCY_BOUNDS_NS
            .last()
            .copied()
            .unwrap_or(0);
        return format!(">{}", duration(last));
    }
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "µs"),
        (1, "ns"),
    ];
    let i = UNITS.iter().position(|&(s, _)| ns >= s).unwrap_or(3);
    let (scale, unit) = UNITS[i];
    let v = ns as f64 / scale as f64;
    let mut text = if v < 10.0 && !ns.is_multiple_of(scale) {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    };
    if let Some(t) = text.strip_suffix(".0") {
        text = t.to_string();
    }
    // 999.7µs rounds to 1000µs: 1ms.
    if text == "1000" && i > 0 {
        return format!("1{}", UNITS[i - 1].1);
    }
    format!("{text}{unit}")
}

/// The ABSENT cell: the percent of measured deletes whose key was absent
/// (`<1%` and `>99%` rather than rounding to 0 or 100); `–` when none was
/// measured.
pub fn absent_text(removed: u64, absent: u64) -> String {
    let measured = removed + absent;
    if measured == 0 {
        return "–".into();
    }
    let pct = absent as f64 * 100.0 / measured as f64;
    if absent > 0 && pct < 1.0 {
        "<1%".into()
    } else if removed > 0 && pct > 99.0 {
        ">99%".into()
    } else {
        format!("{pct:.0}%")
    }
}

/// A P50 / P99 cell: the bucket's upper bound, `–` when none was timed.
pub fn quantile_text(bound: Option<u64>) -> String {
    bound.map_or_else(|| "–".into(), duration)
}
