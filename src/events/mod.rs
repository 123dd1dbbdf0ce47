//! The one event model every sink reads: a map delete or clear, decoded
//! from the BPF record and named (map type, key, stack). JSON, text, the
//! TUI, flame graphs and metrics all start from [`Event`].

pub mod fatal;
pub mod gofmt;
pub mod key;
pub mod labels;
pub mod mapmem;
pub mod process;
pub mod stack;
pub mod summary;

use std::sync::Arc;

pub use self::key::KeyValue;
pub use self::labels::{LabelOptions, Labels};
pub use self::stack::{Frame, FrameGroup, Stack};
pub use self::summary::{FunctionCount, OutcomeTotals, Summary};
pub use crate::gobin::funcs::{is_delete_machinery, is_runtime_internal, Role};

/// One delete or clear, as the outputs see it.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Role,
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The kernel's bucket of its counts by time this delete was counted
    /// in (low 32 bits): in a fatal error's window iff the window counted
    /// it (crash forensics). Not written out.
    pub tick: u32,
    pub pid: u32,
    pub tid: u32,
    /// Goroutine id; None when it could not be read.
    pub goid: Option<u64>,
    /// The runtime function that was hit (`runtime.mapdelete_faststr`).
    pub func: &'static str,
    pub map: u64,
    /// The map type descriptor's address in the target.
    pub map_type_ptr: u64,
    pub map_type: Arc<str>,
    pub key_type: Arc<str>,
    pub key: KeyValue,
    /// The key's bytes in memory order, as far as they were captured, when
    /// the key is shown by its Go form (bool, float, complex, array,
    /// struct, interface): JSON's `key_hex`. None with `--redact-keys`.
    pub key_hex: Option<Arc<[u8]>>,
    /// Not all of the key was captured (longer than `--key-bytes`, or
    /// bytes behind its pointers that were not copied): `key` is shown as
    /// far as it was.
    pub key_truncated: bool,
    /// Elements in the map when the delete started.
    pub map_len: u64,
    /// The map's capacity in slots, as last read (`crate::mapmem`); None
    /// before its first reading.
    pub map_cap: Option<u64>,
    /// For a clear: entries it removed.
    pub cleared: Option<u64>,
    /// Innermost first, inlined frames expanded; empty when `stack_lost`.
    pub stack: Stack,
    /// Names `stack` (the kernel's hash of its addresses): equal ids, equal
    /// stacks. 0 when there is no stack.
    pub stack_id: u64,
    /// The stack could not be put back together (see `probes::stacks`):
    /// this record has none, rather than a wrong one.
    pub stack_lost: bool,
    /// The stack was deeper than the walk (`--stack-depth`): its outermost
    /// frames are missing.
    pub stack_truncated: bool,
    /// Index in `stack` of the caller: the first frame outside the Go
    /// runtime's map machinery.
    pub caller: Option<usize>,
    /// The goroutine's pprof labels at the call; None when it had none.
    pub labels: Option<Arc<Labels>>,
    /// What the call did, seen at its exit (with the exit points armed);
    /// `None` when they were not, or the exit was not seen (`unmatched`).
    pub outcome: Option<Outcome>,
}

/// A call seen returning: how long it took and, for a delete, whether it
/// removed an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Nanoseconds from the entry probe to the exit probe (inside the
    /// runtime function).
    pub duration_ns: u64,
    /// A delete: the map's count went down (the key was there). `None` for
    /// a clear, or when the count could not be read.
    pub removed: Option<bool>,
}

impl Event {
    pub fn caller_frame(&self) -> Option<&Frame> {
        self.caller.and_then(|i| self.stack.get(i))
    }

    /// `function file:line` of the caller, or `?` when unknown.
    pub fn caller_label(&self) -> String {
        frame_label(self.caller_frame())
    }
}

/// `function file:line` of a frame, or `?` when there is none.
pub fn frame_label(frame: Option<&Frame>) -> String {
    match frame {
        Some(f) if f.is_named() => format!("{} {}:{}", f.func, f.file, f.line),
        Some(f) => f.func.to_string(),
        None => "?".into(),
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of the probes' timestamps
/// (`bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the valid pointer given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// The wall clock now, nanoseconds since the Unix epoch (as `Event::ts_ns`).
pub fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A duration for people, compact: `850ns`, `12µs`, `3.4ms`, `1s` (one decimal under
/// 10 of a unit, when there is one). `u64::MAX` (a quantile past the last
/// latency bucket) is `>1s`.
pub fn short_duration(ns: u64) -> String {
    if ns == u64::MAX {
        let last = crate::probes::LATENCY_LAST_BOUND_NS;
        return format!(">{}", short_duration(last));
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

pub fn find_caller(stack: &Stack) -> Option<usize> {
    stack.iter().position(|f| !is_delete_machinery(&f.func))
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_durations_are_compact() {
        use super::short_duration as d;
        assert_eq!(d(0), "0ns");
        assert_eq!(d(850), "850ns");
        assert_eq!(d(1_250), "1.2µs");
        assert_eq!(d(250_000_000), "250ms");
        assert_eq!(d(1_200_000_000), "1.2s");
    }
}

/// Events for the unit tests of the modules that read them.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A delete of `key` from the `map[int64]int` at `map`, pid 1, goroutine
    /// 1, through `runtime.mapdelete_fast64` and then `frames` (the caller
    /// first).
    pub(crate) fn delete(map: u64, key: KeyValue, frames: &[Frame]) -> Event {
        let mut all = vec![Frame::new(
            "runtime.mapdelete_fast64",
            "/go/src/runtime/map_fast64.go",
            10,
            0x100,
            false,
        )];
        all.extend_from_slice(frames);
        let stack = Stack::from(all);
        Event {
            kind: Role::Delete,
            ts_ns: 0,
            tick: 0,
            pid: 1,
            tid: 1,
            goid: Some(1),
            func: "runtime.mapdelete_fast64",
            map,
            map_type_ptr: 0x1000,
            map_type: "map[int64]int".into(),
            key_type: "int64".into(),
            key,
            key_hex: None,
            key_truncated: false,
            map_len: 3,
            map_cap: None,
            cleared: None,
            caller: find_caller(&stack),
            stack_lost: false,
            stack_truncated: false,
            stack_id: 0,
            stack,
            labels: None,
            outcome: None,
        }
    }
}
