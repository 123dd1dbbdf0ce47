//! The record pump: each record from the ring is decoded, filtered and
//! written, counted on the way.

use std::cell::RefCell;

use super::{Observer, Options};
use crate::decode::Decoder;
use crate::events::Event;
use crate::output::Sink;
use crate::probes::MdtEvent;

/// Decodes, filters and writes events; remembers the first output error
/// (a closed pipe ends the session instead of failing it).
pub(super) struct Pump<'s> {
    pub(super) decoder: Decoder,
    pub(super) sink: &'s mut dyn Sink,
    /// The session's options, for `--map-type` / `--func`.
    pub(super) filter: Options,
    pub(super) filtered_out: u64,
    /// Records the decoder could not name (lost).
    pub(super) undecodable: u64,
    /// Records the sink took.
    pub(super) records: u64,
    pub(super) output_error: Option<std::io::Error>,
    pub(super) observer: Option<Box<dyn Observer + Send>>,
}

impl Pump<'_> {
    pub(super) fn handle(&mut self, raw: &MdtEvent) {
        if self.output_error.is_some() {
            return;
        }
        let Some(event) = self.decoder.decode(raw) else {
            // A probe id the session does not know: cannot happen, but if
            // it did, the record would count as lost, not vanish.
            self.undecodable += 1;
            return;
        };
        if !self.keep(&event) {
            self.filtered_out += 1;
            return;
        }
        if let Some(observer) = &mut self.observer {
            observer.event(&event);
        }
        match self.sink.event(&event) {
            Ok(()) => self.records += 1,
            Err(e) => self.output_error = Some(e),
        }
    }

    fn keep(&self, ev: &Event) -> bool {
        self.filter
            .keeps(&ev.map_type, ev.stack.iter().map(|f| &*f.func))
    }

    pub(super) fn flush(&mut self) {
        if self.output_error.is_none() {
            if let Err(e) = self.sink.flush() {
                self.output_error = Some(e);
            }
        }
    }
}

/// Tells the sink of the records lost since the last call (`seen` so far,
/// `total` now); returns the new total.
pub(super) fn report_lost(pump: &RefCell<Pump>, total: u64, seen: u64) -> u64 {
    if total > seen {
        let mut pump = pump.borrow_mut();
        if let Err(e) = pump.sink.lost(total - seen, total) {
            pump.output_error.get_or_insert(e);
        }
    }
    total.max(seen)
}
