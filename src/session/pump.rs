//! The record pump: each record from the ring is decoded, filtered and
//! written, counted on the way.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::join::Joiner;
use super::{Observer, Options};
use crate::decode::Decoder;
use crate::events::mapmem::MapMemory;
use crate::events::Event;
use crate::forensics::Forensics;
use crate::mapmem::MapWatch;
use crate::output::Sink;
use crate::probes::{MdtEvent, Record};

/// How long the end of a session waits for the map readings asked for
/// (a reading takes a few ms; the stop must stay within a second).
const MAP_FINISH: Duration = Duration::from_millis(100);

/// Decodes, filters and writes events; remembers the first output error
/// (a closed pipe ends the session instead of failing it).
pub(super) struct Pump<'s> {
    pub(super) decoder: Decoder,
    pub(super) sink: &'s mut dyn Sink,
    /// The session's options, for `--map-type` / `--func`.
    pub(super) filter: Options,
    pub(super) filtered_out: u64,
    /// Records taken from the ring that never reached the output: the
    /// decoder could not name them, or the output had closed.
    pub(super) lost: u64,
    /// Records the sink took, and how many of them without their stack.
    pub(super) records: u64,
    pub(super) stack_lost: u64,
    /// Records written without the outcome their exit was to bring.
    pub(super) unmatched: u64,
    pub(super) output_error: Option<std::io::Error>,
    pub(super) observer: Option<Box<dyn Observer + Send>>,
    /// Records waiting for their exit.
    pub(super) joiner: Joiner,
    /// Reads the memory of the maps deleted from (None: not asked, or
    /// not known how for this binary).
    pub(super) maps: Option<MapWatch>,
    /// The time the map watch goes by, taken at each drain ([`Pump::poll_maps`])
    /// rather than per record: its intervals are a second long.
    pub(super) maps_clock: Instant,
    /// Crash forensics (None: no fatal probe).
    pub(super) forensics: Option<Forensics>,
}

impl Pump<'_> {
    pub(super) fn handle(&mut self, record: Record<'_>) {
        match record {
            Record::Event(raw) => self.entry(raw),
            Record::Exit(exit) => {
                if let Some(event) = self.joiner.complete(exit) {
                    let _ = self.deliver(event);
                }
            }
            Record::Fatal(raw) => {
                if let Some(f) = &mut self.forensics {
                    f.fatal(raw);
                }
            }
        }
    }

    /// Writes the fatal error once it is due (`done`: tracing stopped).
    pub(super) fn poll_fatal(&mut self, done: bool) {
        let Some(forensics) = &mut self.forensics else {
            return;
        };
        let Some(fatal) = forensics.due(&mut self.decoder, done) else {
            return;
        };
        if let Some(observer) = &mut self.observer {
            observer.fatal(&fatal);
        }
        if self.output_error.is_none() {
            if let Err(e) = self.sink.fatal(&fatal) {
                self.output_error = Some(e);
            }
        }
    }

    /// Releases the records whose call began too long before `now_ns`
    /// (the kernel's monotonic clock; all of them with `None`: tracing has
    /// stopped): written without an outcome.
    pub(super) fn expire(&mut self, now_ns: Option<u64>) {
        for event in self.joiner.expire(now_ns) {
            self.deliver_unmatched(event);
        }
    }

    fn deliver_unmatched(&mut self, event: Event) {
        if self.deliver(event) {
            self.unmatched += 1;
        }
    }

    fn entry(&mut self, raw: &MdtEvent) {
        if self.output_error.is_some() {
            // The output is gone: what comes after is lost, not dropped.
            self.lost += 1;
            return;
        }
        // Only a --label-filter reads the labels here (the decoder reads
        // them anyway).
        if self.filter.labels.filter.is_some() && !self.filter.labels.keeps(&raw.labels()) {
            self.filtered_out += 1;
            return;
        }
        let Some(event) = self.decoder.decode(raw) else {
            // A probe id the session does not know: cannot happen, but if
            // it did, the record would count as lost, not vanish.
            self.lost += 1;
            return;
        };
        if event.stack_lost && self.filter.func.is_some() {
            // `--func` cannot tell whether a record without its stack is
            // kept: it is lost rather than counted as filtered out.
            self.lost += 1;
            return;
        }
        if !self.keep(&event) {
            self.filtered_out += 1;
            return;
        }
        if raw.exit_expected != 0 {
            for earlier in self.joiner.hold(raw, event) {
                self.deliver_unmatched(earlier);
            }
            return;
        }
        let _ = self.deliver(event);
    }

    /// Hands a record to the observer and the sink; whether the sink took it.
    fn deliver(&mut self, mut event: Event) -> bool {
        if self.output_error.is_some() {
            self.lost += 1;
            return false;
        }
        if let Some(maps) = &mut self.maps {
            event.map_cap = maps.saw(&event, self.maps_clock);
        }
        if let Some(observer) = &mut self.observer {
            observer.event(&event);
        }
        let taken = match self.sink.event(&event) {
            Ok(()) => {
                self.records += 1;
                self.stack_lost += u64::from(event.stack_lost);
                true
            }
            Err(e) => {
                self.lost += 1;
                self.output_error = Some(e);
                false
            }
        };
        // Kept (moved, not copied) for the window of a fatal error to come.
        if let Some(forensics) = &mut self.forensics {
            forensics.saw(event);
        }
        taken
    }

    fn keep(&self, ev: &Event) -> bool {
        self.filter
            .keeps(&ev.map_type, ev.stack.iter().map(|f| &*f.func))
    }

    /// Writes the map readings that came back, and asks for the ones due.
    pub(super) fn poll_maps(&mut self) {
        let Some(maps) = &mut self.maps else { return };
        self.maps_clock = Instant::now();
        let readings = maps.poll(self.maps_clock);
        self.write_maps(readings);
    }

    /// Waits a little for the readings still to come, and writes them.
    pub(super) fn finish_maps(&mut self) {
        let Some(maps) = &mut self.maps else { return };
        let readings = maps.finish(MAP_FINISH);
        self.write_maps(readings);
    }

    fn write_maps(&mut self, readings: Vec<MapMemory>) {
        for m in readings {
            if self.output_error.is_some() {
                return;
            }
            if let Err(e) = self.sink.map(&m) {
                self.output_error = Some(e);
            }
        }
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
