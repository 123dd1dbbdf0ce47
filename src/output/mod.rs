//! Where events go. Every sink takes the same [`Event`]s and the same
//! end-of-run [`Summary`]; the session does not know which one it feeds.

pub mod flame;
pub mod json;
pub mod quiet;
pub mod text;

use std::io;

use crate::events::Event;
pub use crate::events::{FunctionCount, Summary};

pub trait Sink {
    /// The traced process, before its first record: the records of its pid
    /// name it.
    fn process(&mut self, _p: &crate::events::process::Process) {}
    fn event(&mut self, ev: &Event) -> io::Result<()>;
    /// `count` more records could not be delivered by the kernel (`total` so far).
    fn lost(&mut self, count: u64, total: u64) -> io::Result<()>;
    /// A reading of a map's memory (`crate::mapmem`).
    fn map(&mut self, _m: &crate::events::mapmem::MapMemory) -> io::Result<()> {
        Ok(())
    }
    /// The target died of a fatal error (crash forensics): one per death.
    fn fatal(&mut self, _f: &crate::events::fatal::Fatal) -> io::Result<()> {
        Ok(())
    }
    fn summary(&mut self, summary: &Summary) -> io::Result<()>;
    /// Called after each batch, so a pipe sees records promptly.
    fn flush(&mut self) -> io::Result<()>;
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
