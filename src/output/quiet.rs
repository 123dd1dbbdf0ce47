//! `--quiet`: no records; the summary as one line on stderr.

use std::io;

use super::{Sink, Summary};
use crate::events::Event;

/// The `--quiet` sink.
#[derive(Debug, Default)]
pub struct QuietSink;

impl Sink for QuietSink {
    fn event(&mut self, _ev: &Event) -> io::Result<()> {
        Ok(())
    }

    fn lost(&mut self, _count: u64, _total: u64) -> io::Result<()> {
        Ok(())
    }

    fn summary(&mut self, s: &Summary) -> io::Result<()> {
        eprintln!("mdt: {}", s.line());
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
