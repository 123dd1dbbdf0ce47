//! The rows of the TUI's tables: call sites, maps, stacks, events.

use std::collections::{HashSet, VecDeque};
use std::hash::Hasher;
use std::sync::Arc;

use crate::events::mapmem::MapSize;

use super::format::short_func;
use super::rate::Buckets;
use super::table::Row;
use crate::bounded::FastHash;
use crate::events::{Event, Frame, Outcome, Stack};
use crate::probes::Histogram;

/// A call site: the first frame outside the map machinery.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallerKey {
    pub func: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
}

impl CallerKey {
    pub(super) fn of(frame: Option<&Frame>) -> Self {
        match frame {
            Some(f) => CallerKey {
                func: f.func.clone(),
                file: f.file.clone(),
                line: f.line,
            },
            None => CallerKey {
                func: "?".into(),
                file: "".into(),
                line: 0,
            },
        }
    }

    /// `function file:line` without the package's import path and the
    /// file's directory (`cache.(*LRU).evict lru.go:42`).
    pub fn short_label(&self) -> String {
        let func = short_func(&self.func);
        if self.file.is_empty() {
            return func.to_string();
        }
        let base = self.file.rsplit('/').next().unwrap_or(&self.file);
        format!("{func} {base}:{}", self.line)
    }

    /// `function /full/path/file.go:line`.
    pub fn full_label(&self) -> String {
        if self.file.is_empty() {
            return self.func.to_string();
        }
        format!("{} {}:{}", self.func, self.file, self.line)
    }
}

#[derive(Debug, Clone)]
pub struct CallerRow {
    pub key: CallerKey,
    /// [`CallerKey::short_label`], shared with the map rows and events.
    pub label: Arc<str>,
    pub deletes: u64,
    pub clears: u64,
    pub(super) maps: HashSet<u64, FastHash>,
    pub maps_overflow: bool,
    pub map_types: Vec<Arc<str>>,
    pub types_overflow: bool,
    pub rate: Buckets,
    pub outcomes: OutcomeStats,
    /// Newest last.
    pub recent: VecDeque<Arc<Event>>,
    pub(super) last_seq: u64,
}

/// What the readings of a map's memory said: the first, the latest, and
/// whether it was seen gone since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapMemoryHistory {
    pub first: Option<MapSize>,
    pub last: Option<MapSize>,
    pub gone: Option<&'static str>,
}

impl Row<CallerKey> for CallerRow {
    fn key(&self) -> CallerKey {
        self.key.clone()
    }
    fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

impl CallerRow {
    pub fn total(&self) -> u64 {
        self.deletes + self.clears
    }

    pub fn distinct_maps(&self) -> usize {
        self.maps.len()
    }
}

#[derive(Debug, Clone)]
pub struct MapRow {
    pub addr: u64,
    pub(super) type_hash: u64,
    pub map_type: Arc<str>,
    pub key_type: Arc<str>,
    /// Elements, from the latest event (0 after a clear).
    pub len: u64,
    pub deletes: u64,
    pub clears: u64,
    /// (caller label, count), at most [`MAX_CALLERS_PER_MAP`].
    pub callers: Vec<(Arc<str>, u64)>,
    /// Deletes by callers beyond those.
    pub other_callers: u64,
    pub rate: Buckets,
    pub outcomes: OutcomeStats,
    /// Newest last.
    pub recent: VecDeque<Arc<Event>>,
    pub(super) last_seq: u64,
    /// Its memory (`crate::mapmem`): the first and the latest reading.
    pub memory: MapMemoryHistory,
}

/// What the exit probes saw of a row's calls: only the calls they were
/// armed for (`--latency`, a `--latency-sample` window), so a share of the
/// row's records. A fixed size, whatever the number of calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeStats {
    /// Deletes that removed an entry.
    pub removed: u64,
    /// Deletes whose key was not in the map.
    pub absent: u64,
    /// Durations of the calls seen returning (deletes and clears).
    pub latency: Histogram,
}

impl OutcomeStats {
    pub fn add(&mut self, o: &Outcome) {
        self.latency.record(o.duration_ns);
        match o.removed {
            Some(true) => self.removed += 1,
            Some(false) => self.absent += 1,
            None => {}
        }
    }

    /// Calls seen returning.
    pub fn timed(&self) -> u64 {
        self.latency.count()
    }

    /// What a line shows: the counts and the quantiles.
    pub fn summary(&self) -> OutcomeSummary {
        OutcomeSummary {
            removed: self.removed,
            absent: self.absent,
            timed: self.timed(),
            p50: self.latency.quantile_bound(50_000),
            p99: self.latency.quantile_bound(99_000),
        }
    }
}

/// A row's outcomes as its line shows them (the ABSENT, P50 and P99
/// columns; their text and order are in `lines`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeSummary {
    pub removed: u64,
    pub absent: u64,
    /// Calls seen returning.
    pub timed: u64,
    /// Upper bounds (ns) of the buckets holding the median and the 99th
    /// percentile ([`Histogram::quantile_bound`]); None when none was timed.
    pub p50: Option<u64>,
    pub p99: Option<u64>,
}

/// A map: its address and a hash of its type name (nil maps of every
/// type share address 0; a freed address can be reused by another type).
pub type MapKey = (u64, u64);

pub(super) fn type_hash(name: &str) -> u64 {
    let mut h = crate::bounded::Fnv::default();
    h.write(name.as_bytes());
    h.finish()
}

impl Row<MapKey> for MapRow {
    fn key(&self) -> MapKey {
        (self.addr, self.type_hash)
    }
    fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

impl MapRow {
    pub fn top_caller(&self) -> Option<&Arc<str>> {
        top_caller(&self.callers)
    }
}

/// The caller with the most deletes (by name on a tie).
fn top_caller(callers: &[(Arc<str>, u64)]) -> Option<&Arc<str>> {
    callers
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .map(|(l, _)| l)
}

/// One goroutine label value (`tenant=t1`), or the deletes of goroutines
/// without labels: what the code did on whose behalf.
#[derive(Debug, Clone)]
pub struct LabelRow {
    /// `key=value`, or [`NO_LABELS`].
    pub label: Arc<str>,
    pub deletes: u64,
    pub clears: u64,
    /// (caller label, count), at most [`super::MAX_CALLERS_PER_MAP`].
    pub callers: Vec<(Arc<str>, u64)>,
    pub other_callers: u64,
    pub rate: Buckets,
    pub outcomes: OutcomeStats,
    /// Newest last.
    pub recent: VecDeque<Arc<Event>>,
    pub(super) last_seq: u64,
}

/// The row of the deletes whose goroutine had no labels.
pub const NO_LABELS: &str = "(no labels)";

impl Row<Arc<str>> for LabelRow {
    fn key(&self) -> Arc<str> {
        self.label.clone()
    }
    fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

impl LabelRow {
    pub fn top_caller(&self) -> Option<&Arc<str>> {
        top_caller(&self.callers)
    }
}

/// (stack id, runtime function): a stack's row.
pub(super) type StackKey = (u64, usize);

#[derive(Debug, Clone)]
pub(super) struct StackRow {
    pub(super) key: StackKey,
    pub(super) func: &'static str,
    pub(super) frames: Stack,
    /// Deeper than the walk (`--stack-depth`).
    pub(super) truncated: bool,
    pub(super) map_type: Arc<str>,
    pub(super) key_type: Arc<str>,
    pub(super) caller: Arc<str>,
    pub(super) count: u64,
    pub(super) last_seq: u64,
}

impl Row<StackKey> for StackRow {
    fn key(&self) -> StackKey {
        self.key
    }
    fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

/// One event of the Events view.
#[derive(Debug, Clone)]
pub struct RecentEvent {
    pub seq: u64,
    pub event: Arc<Event>,
    pub caller: Arc<str>,
}

/// Rows dropped from each table because it was full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evicted {
    pub callers: u64,
    pub maps: u64,
    pub stacks: u64,
    pub labels: u64,
}
