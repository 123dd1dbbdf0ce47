//! Where events go. Every sink takes the same [`Event`]s and the same
//! end-of-run [`Summary`]; the session does not know which one it feeds.

pub mod alerts;
pub mod flame;
pub mod json;
pub mod metrics;
pub mod text;
pub mod tui;

use std::io;
use std::time::Duration;

use serde::Serialize;

use crate::events::Event;
use crate::gobin::funcs::Role;
use crate::target::launch::ExitStatus;

pub trait Sink {
    fn event(&mut self, ev: &Event) -> io::Result<()>;
    /// `count` more records could not be delivered by the kernel (`total` so far).
    fn lost(&mut self, count: u64, total: u64) -> io::Result<()>;
    fn summary(&mut self, summary: &Summary) -> io::Result<()>;
    /// Called after each batch, so a pipe sees records promptly.
    fn flush(&mut self) -> io::Result<()>;
}

/// Exact hit count of one attach point.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionCount {
    pub func: &'static str,
    pub role: Role,
    pub hits: u64,
}

/// The end of a run: exact totals from the BPF counters, and what happened
/// to the detailed records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// Exact: every call of a probed delete function.
    pub deletes: u64,
    /// Exact: every call of a probed clear function.
    pub clears: u64,
    pub by_function: Vec<FunctionCount>,
    /// Records written by this sink.
    pub records: u64,
    /// Hits whose detailed record sampling skipped.
    pub sampled_out: u64,
    /// Records that never reached the sink: the kernel could not put them
    /// in the ring (full), they could not be decoded, or they were still in
    /// the ring when the stop's short drain ended.
    pub lost: u64,
    /// Records delivered without their stack (user space no longer held
    /// the stack they named; see `probes::stacks`): part of `records`.
    pub stack_lost: u64,
    /// Records dropped by --map-type / --func.
    pub filtered_out: u64,
    pub sample_rate: f64,
    /// How the launched program ended (launch mode), or that the target exited.
    pub target_exit: Option<String>,
    #[serde(skip)]
    pub exit_status: Option<ExitStatus>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e6)
}

/// Output buffer: large, so that a burst costs few write syscalls (the
/// session flushes every drain anyway).
const OUTPUT_BUFFER: usize = 1 << 20;

/// An output that is the terminal, a pipe, or a file.
pub fn open_output(path: Option<&std::path::Path>) -> anyhow::Result<Box<dyn io::Write + Send>> {
    use anyhow::Context;
    Ok(match path {
        Some(p) => Box::new(io::BufWriter::with_capacity(
            OUTPUT_BUFFER,
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        )),
        None => Box::new(io::BufWriter::with_capacity(OUTPUT_BUFFER, io::stdout())),
    })
}
