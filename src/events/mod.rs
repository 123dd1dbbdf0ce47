//! The one event model every sink reads: a map delete or clear, decoded
//! from the BPF record and named (map type, key, stack). JSON, text, the
//! TUI, flame graphs and metrics all start from [`Event`].

pub mod decode;
pub mod key;

pub use decode::Decoder;

use std::sync::Arc;

use serde::Serialize;

pub use self::key::KeyValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Delete,
    Clear,
}

/// One frame of a symbolized stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Frame {
    /// The Go function, or the address in hex when it cannot be named.
    pub func: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
    /// True for a call that the compiler inlined into the frame below it.
    pub inlined: bool,
    /// The run-time address (shared by all inlined frames of one pc).
    #[serde(serialize_with = "hex_addr")]
    pub addr: u64,
}

impl Frame {
    /// A frame that could not be named: its address, never a guess.
    pub fn unnamed(addr: u64) -> Self {
        Frame {
            func: format!("{addr:#x}").into(),
            file: "".into(),
            line: 0,
            inlined: false,
            addr,
        }
    }

    pub fn is_named(&self) -> bool {
        !self.file.is_empty()
    }

    /// `file:line` with the file's directory dropped.
    pub fn short_location(&self) -> String {
        let base = self.file.rsplit('/').next().unwrap_or(&self.file);
        format!("{base}:{}", self.line)
    }
}

fn hex_addr<S: serde::Serializer>(addr: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{addr:#x}"))
}

/// One delete or clear, as the sinks see it.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    /// Goroutine id; None when it could not be read.
    pub goid: Option<u64>,
    /// The runtime function that was hit (`runtime.mapdelete_faststr`).
    pub func: &'static str,
    pub map: u64,
    pub map_type: Arc<str>,
    pub key_type: Arc<str>,
    pub key: KeyValue,
    pub key_truncated: bool,
    /// Elements in the map when the delete started.
    pub map_len: u64,
    /// For a clear: entries it removed.
    pub cleared: Option<u64>,
    /// Innermost first, inlined frames expanded.
    pub stack: Arc<[Frame]>,
    /// Index in `stack` of the caller: the first frame outside the Go
    /// runtime's map machinery.
    pub caller: Option<usize>,
}

impl Event {
    pub fn caller_frame(&self) -> Option<&Frame> {
        self.caller.and_then(|i| self.stack.get(i))
    }

    /// `function file:line` of the caller, or `?` when unknown.
    pub fn caller_label(&self) -> String {
        match self.caller_frame() {
            Some(f) if f.is_named() => format!("{} {}:{}", f.func, f.file, f.line),
            Some(f) => f.func.to_string(),
            None => "?".into(),
        }
    }
}

/// Frames that belong to the machinery of a delete rather than to the code
/// that asked for it: the runtime itself, and the std-library helpers that
/// delete on behalf of their caller (reflect, maps.DeleteFunc). The caller
/// of a delete is the first frame that is none of these.
pub fn is_delete_machinery(func: &str) -> bool {
    func.starts_with("runtime.")
        || func.starts_with("internal/runtime/")
        || func.starts_with("reflect.map")
        || func == "reflect.Value.SetMapIndex"
        || func == "reflect.Value.Clear"
        || func.starts_with("maps.DeleteFunc")
}

/// The Go runtime's own frames (and its functions linknamed into reflect):
/// what a flame graph leaves out above the delete by default.
pub fn is_runtime_internal(func: &str) -> bool {
    func.starts_with("runtime.")
        || func.starts_with("internal/runtime/")
        || func.starts_with("reflect.mapdelete")
        || func == "reflect.mapclear"
}

pub fn find_caller(stack: &[Frame]) -> Option<usize> {
    stack.iter().position(|f| !is_delete_machinery(&f.func))
}
