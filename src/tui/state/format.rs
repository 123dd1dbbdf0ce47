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
