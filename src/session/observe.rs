//! What a session publishes while it runs: exact totals for a live display,
//! and the exact counters for an [`Observer`] (metrics, alerts).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crate::decode::{Decoder, ProbeInfo};
use crate::events::mapmem::MapSize;
use crate::events::Event;
use crate::probes::{Histogram, SiteCount, SiteKey, Stats};

/// The BPF counters of a running session (exact), refreshed by
/// [`Session::run`] about every 50 ms once [`Session::live_totals`] was called.
#[derive(Debug, Default)]
pub struct LiveTotals {
    pub deletes: AtomicU64,
    pub clears: AtomicU64,
    /// Records the kernel could not deliver (ring buffer full).
    pub lost: AtomicU64,
    pub sampled_out: AtomicU64,
    pub(super) published_ms: AtomicU64,
}

/// How often [`Session::run`] hands the exact counters to its [`Observer`].
pub const OBSERVE_INTERVAL: Duration = Duration::from_millis(500);

/// The exact counters of a running session, as an [`Observer`] sees them.
pub struct Observation<'a> {
    /// Since tracing started.
    pub elapsed: Duration,
    /// Cumulative hits per (map type, caller return address, probe), from
    /// the kernel, counted before sampling (empty without
    /// [`Mode::counts_sites`]).
    pub sites: &'a [(SiteKey, SiteCount)],
    /// With the exit points armed: the exact latency histograms per (map
    /// type pointer, entry probe id), cumulative (empty without exit points).
    pub latency: &'a [(u64, u32, Histogram)],
    /// The attach points, indexed by probe id.
    pub probes: &'a [ProbeInfo],
    /// Exact hits per probe id.
    pub hits: &'a [u64],
    pub stats: Stats,
    /// Uprobes attached now (0 once stopped).
    pub attached: usize,
    /// The target is still running.
    pub target_up: bool,
    /// The last observation: the probes are detached and drained.
    pub last: bool,
    /// Names sites (map type, caller frames): [`Decoder::name_aggregate`].
    pub decoder: &'a mut Decoder,
    /// The maps watched (`crate::mapmem`), as last read: (address, map
    /// type, size).
    pub maps: &'a [(u64, Arc<str>, MapSize)],
    /// Maps watched, read or not yet.
    pub maps_watched: usize,
}

/// Sees the records and the exact counters of a running session (metrics,
/// alerts).
pub trait Observer {
    /// Every record that passed the filters, before the sink gets it.
    fn event(&mut self, _ev: &Event) {}
    /// The target died of a fatal error (crash forensics).
    fn fatal(&mut self, _f: &crate::events::fatal::Fatal) {}
    /// The exact counters, about every [`OBSERVE_INTERVAL`].
    fn observe(&mut self, obs: &mut Observation<'_>);
}
