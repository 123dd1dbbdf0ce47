//! The TUI's data, apart from any drawing: aggregation tables that the
//! session thread updates once per event and the render thread reads about
//! ten times a second.
//!
//! Everything is bounded. Each table has a cap; when a new row would pass
//! it, the least recently active quarter of the table is dropped (and
//! counted, so the header can say the table is capped). The per-event path
//! does a couple of integer-keyed hash lookups, one `Arc` allocation and a
//! few counter updates: a million events take well under a second.

use std::cmp::{Ordering, Reverse};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use crate::bounded::Limits;
use crate::events::{Event, Frame, Role, Stack};
use crate::output::flame::{Profile, RawStack, Shape};

/// Distinct call sites, maps (addresses) and stacks (for the folded
/// export) are kept up to `rows` each ([`crate::bounded::Limits::rows`]).
///
/// Newest events kept for the Events view.
pub const MAX_EVENTS: usize = 2_000;
/// Newest events (keys) kept per caller and per map, for the detail pane.
pub const RECENT_PER_ROW: usize = 8;
/// Distinct map addresses counted per caller (beyond: "64+").
pub const MAX_MAPS_PER_CALLER: usize = 64;
/// Distinct map types listed per caller.
pub const MAX_TYPES_PER_CALLER: usize = 8;
/// Distinct callers counted per map (the others are summed).
pub const MAX_CALLERS_PER_MAP: usize = 8;
/// Seconds of per-second history kept per row and for the header.
pub const HISTORY_SECS: usize = 64;
/// Seconds the rate charts show.
pub const CHART_SECS: usize = 60;

const NANOS: u64 = 1_000_000_000;

// ---------------------------------------------------------------------------------------------
// Hashing

/// A multiply-rotate hasher (FxHash-like) for the integer keys looked up
/// on every event; the default SipHash costs more than the rest of the
/// update.
#[derive(Default, Clone, Copy)]
pub struct IntHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        // The product's entropy is in its high bits; the table indexes by
        // the low ones.
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(SEED);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type IntBuild = BuildHasherDefault<IntHasher>;
type IntMap<K, V> = HashMap<K, V, IntBuild>;

// ---------------------------------------------------------------------------------------------
// Per-second counts

/// Counts per wall-clock second for the last [`HISTORY_SECS`] seconds.
#[derive(Debug, Clone)]
pub struct Buckets {
    counts: [u32; HISTORY_SECS],
    /// The newest second written (seconds since the epoch).
    last: u64,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            counts: [0; HISTORY_SECS],
            last: 0,
        }
    }
}

impl Buckets {
    pub fn add(&mut self, sec: u64) {
        if sec > self.last {
            let gap = (sec - self.last).min(HISTORY_SECS as u64);
            for s in sec + 1 - gap..=sec {
                self.counts[(s % HISTORY_SECS as u64) as usize] = 0;
            }
            self.last = sec;
        } else if self.last - sec >= HISTORY_SECS as u64 {
            return;
        }
        let c = &mut self.counts[(sec % HISTORY_SECS as u64) as usize];
        *c = c.saturating_add(1);
    }

    /// The count of second `sec`.
    pub fn at(&self, sec: u64) -> u64 {
        if sec > self.last || self.last - sec >= HISTORY_SECS as u64 {
            0
        } else {
            u64::from(self.counts[(sec % HISTORY_SECS as u64) as usize])
        }
    }

    /// Events per second: the count of the last complete second.
    pub fn rate(&self, now_sec: u64) -> u64 {
        self.at(now_sec.saturating_sub(1))
    }

    /// The last `n` complete seconds before `now_sec`, oldest first.
    pub fn series(&self, now_sec: u64, n: usize) -> Vec<u64> {
        (1..=n as u64)
            .rev()
            .map(|back| now_sec.checked_sub(back).map_or(0, |s| self.at(s)))
            .collect()
    }
}

/// Per-second deltas of an exact, growing total sampled at irregular times
/// (the header's rate and sparkline, from the BPF counters).
#[derive(Debug, Clone, Default)]
pub struct RateHistory {
    /// Completed seconds, oldest first (at most [`CHART_SECS`]).
    done: VecDeque<u64>,
    sec: u64,
    at_sec_start: u64,
    last: u64,
    started: bool,
}

impl RateHistory {
    pub fn observe(&mut self, now_sec: u64, total: u64) {
        if !self.started {
            *self = RateHistory {
                sec: now_sec,
                at_sec_start: total,
                last: total,
                started: true,
                ..Default::default()
            };
            return;
        }
        if now_sec > self.sec {
            // Whatever arrived since the last sample is put in the second
            // that just ended; the seconds without a sample had nothing.
            self.push(self.last.saturating_sub(self.at_sec_start));
            for _ in 0..(now_sec - self.sec - 1).min(CHART_SECS as u64) {
                self.push(0);
            }
            self.sec = now_sec;
            self.at_sec_start = self.last;
        }
        self.last = total.max(self.last);
    }

    fn push(&mut self, v: u64) {
        if self.done.len() == CHART_SECS {
            self.done.pop_front();
        }
        self.done.push_back(v);
    }

    /// Deletes and clears in the last complete second.
    pub fn rate(&self) -> u64 {
        self.done.back().copied().unwrap_or(0)
    }

    /// The last [`CHART_SECS`] complete seconds, oldest first, zero-padded.
    pub fn series(&self) -> Vec<u64> {
        let mut v = vec![0; CHART_SECS - self.done.len()];
        v.extend(self.done.iter().copied());
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Tables

/// A row that a [`Table`] can drop when it is full.
trait Row<K> {
    fn key(&self) -> K;
    fn last_seq(&self) -> u64;
}

#[derive(Debug, Clone)]
struct Table<K, R, S> {
    rows: Vec<R>,
    index: HashMap<K, usize, S>,
    cap: usize,
    /// Rows dropped to stay under `cap`.
    evicted: u64,
}

impl<K: Hash + Eq, R: Row<K>, S: BuildHasher + Default> Table<K, R, S> {
    fn new(cap: usize) -> Self {
        Table {
            rows: Vec::new(),
            index: HashMap::default(),
            cap,
            evicted: 0,
        }
    }

    fn find(&self, key: &K) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// Adds a row; returns its index and whether other rows moved (a full
    /// table first drops its least recently active quarter).
    fn insert(&mut self, key: K, row: R) -> (usize, bool) {
        let moved = self.rows.len() >= self.cap;
        if moved {
            let keep = self.cap - self.cap.div_ceil(4);
            self.rows.sort_unstable_by_key(|r| Reverse(r.last_seq()));
            self.evicted += (self.rows.len() - keep) as u64;
            self.rows.truncate(keep);
            self.index.clear();
            for (i, r) in self.rows.iter().enumerate() {
                self.index.insert(r.key(), i);
            }
        }
        self.rows.push(row);
        let i = self.rows.len() - 1;
        self.index.insert(key, i);
        (i, moved)
    }
}

/// A call site: the first frame outside the map machinery.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallerKey {
    pub func: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
}

impl CallerKey {
    fn of(frame: Option<&Frame>) -> Self {
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
    maps: HashSet<u64, IntBuild>,
    pub maps_overflow: bool,
    pub map_types: Vec<Arc<str>>,
    pub types_overflow: bool,
    pub rate: Buckets,
    /// Newest last.
    pub recent: VecDeque<Arc<Event>>,
    last_seq: u64,
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
    type_hash: u64,
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
    /// Newest last.
    pub recent: VecDeque<Arc<Event>>,
    last_seq: u64,
}

/// A map: its address and a hash of its type name (nil maps of every
/// type share address 0; a freed address can be reused by another type).
pub type MapKey = (u64, u64);

fn type_hash(name: &str) -> u64 {
    let mut h = IntHasher::default();
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
        self.callers
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
            .map(|(l, _)| l)
    }
}

/// (stack id, runtime function): a stack's row.
type StackKey = (u64, usize);

#[derive(Debug, Clone)]
struct StackRow {
    key: StackKey,
    func: &'static str,
    frames: Stack,
    map_type: Arc<str>,
    key_type: Arc<str>,
    caller: Arc<str>,
    count: u64,
    last_seq: u64,
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
}

impl Evicted {
    pub fn any(&self) -> bool {
        self.callers + self.maps + self.stacks > 0
    }
}

// ---------------------------------------------------------------------------------------------
// The aggregate

/// Everything the TUI knows about the events it was given.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Rows of each table at most.
    rows: usize,
    callers: Table<CallerKey, CallerRow, std::collections::hash_map::RandomState>,
    /// (caller pc, line) → caller row: skips hashing the strings.
    by_pc: IntMap<(u64, u32), usize>,
    maps: Table<MapKey, MapRow, IntBuild>,
    stacks: Table<StackKey, StackRow, IntBuild>,
    events: VecDeque<RecentEvent>,
    /// Events applied since the start (never reset: identifies events).
    pub seq: u64,
    /// Records received since the last reset.
    pub deletes: u64,
    pub clears: u64,
    /// Records the kernel could not deliver (total, from the session).
    pub lost: u64,
    pub rate: Buckets,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// Tables of the default size ([`Limits::default`]).
    pub fn new() -> Self {
        Stats::with_rows(Limits::default().rows)
    }

    /// Tables of at most `rows` rows each.
    pub fn with_rows(rows: usize) -> Self {
        Stats {
            rows,
            callers: Table::new(rows),
            by_pc: IntMap::default(),
            maps: Table::new(rows),
            stacks: Table::new(rows),
            events: VecDeque::with_capacity(MAX_EVENTS),
            seq: 0,
            deletes: 0,
            clears: 0,
            lost: 0,
            rate: Buckets::default(),
        }
    }

    /// Forgets every row and count (the `c` key); `seq` keeps growing.
    pub fn reset(&mut self) {
        let seq = self.seq;
        *self = Stats::with_rows(self.rows);
        self.seq = seq;
    }

    pub fn records(&self) -> u64 {
        self.deletes + self.clears
    }

    pub fn evicted(&self) -> Evicted {
        Evicted {
            callers: self.callers.evicted,
            maps: self.maps.evicted,
            stacks: self.stacks.evicted,
        }
    }

    pub fn caller_count(&self) -> usize {
        self.callers.rows.len()
    }

    pub fn map_count(&self) -> usize {
        self.maps.rows.len()
    }

    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Adds one event to every table.
    pub fn apply(&mut self, ev: &Event) {
        self.seq += 1;
        let seq = self.seq;
        let sec = ev.ts_ns / NANOS;
        let clear = ev.kind == Role::Clear;
        if clear {
            self.clears += 1;
        } else {
            self.deletes += 1;
        }
        self.rate.add(sec);
        let event = Arc::new(ev.clone());

        let ci = self.caller_index(ev, seq);
        let caller = &mut self.callers.rows[ci];
        caller.last_seq = seq;
        if clear {
            caller.clears += 1;
        } else {
            caller.deletes += 1;
        }
        caller.rate.add(sec);
        if caller.maps.len() < MAX_MAPS_PER_CALLER {
            caller.maps.insert(ev.map);
        } else if !caller.maps_overflow && !caller.maps.contains(&ev.map) {
            caller.maps_overflow = true;
        }
        if !caller
            .map_types
            .iter()
            .any(|t| Arc::ptr_eq(t, &ev.map_type) || **t == *ev.map_type)
        {
            if caller.map_types.len() < MAX_TYPES_PER_CALLER {
                caller.map_types.push(ev.map_type.clone());
            } else {
                caller.types_overflow = true;
            }
        }
        push_recent(&mut caller.recent, &event);
        let label = caller.label.clone();

        let mkey = (ev.map, type_hash(&ev.map_type));
        let mi = match self.maps.find(&mkey) {
            Some(i) => i,
            None => {
                let row = MapRow {
                    addr: ev.map,
                    type_hash: mkey.1,
                    map_type: ev.map_type.clone(),
                    key_type: ev.key_type.clone(),
                    len: 0,
                    deletes: 0,
                    clears: 0,
                    callers: Vec::new(),
                    other_callers: 0,
                    rate: Buckets::default(),
                    recent: VecDeque::new(),
                    last_seq: seq,
                };
                self.maps.insert(mkey, row).0
            }
        };
        let map = &mut self.maps.rows[mi];
        map.last_seq = seq;
        if clear {
            map.clears += 1;
            map.len = 0;
        } else {
            map.deletes += 1;
            map.len = ev.map_len;
        }
        map.rate.add(sec);
        if let Some((_, n)) = map
            .callers
            .iter_mut()
            .find(|(l, _)| Arc::ptr_eq(l, &label) || **l == *label)
        {
            *n += 1;
        } else if map.callers.len() < MAX_CALLERS_PER_MAP {
            map.callers.push((label.clone(), 1));
        } else {
            map.other_callers += 1;
        }
        push_recent(&mut map.recent, &event);

        let skey: StackKey = (ev.stack_id, ev.func.as_ptr() as usize);
        let si = match self.stacks.find(&skey) {
            Some(i) => i,
            None => {
                let row = StackRow {
                    key: skey,
                    func: ev.func,
                    frames: ev.stack.clone(),
                    map_type: ev.map_type.clone(),
                    key_type: ev.key_type.clone(),
                    caller: label.clone(),
                    count: 0,
                    last_seq: seq,
                };
                self.stacks.insert(skey, row).0
            }
        };
        let stack = &mut self.stacks.rows[si];
        stack.count += 1;
        stack.last_seq = seq;
        if !Arc::ptr_eq(&stack.map_type, &ev.map_type) {
            stack.map_type = ev.map_type.clone();
            stack.key_type = ev.key_type.clone();
        }

        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(RecentEvent {
            seq,
            event,
            caller: label,
        });
    }

    fn caller_index(&mut self, ev: &Event, seq: u64) -> usize {
        let frame = ev.caller_frame();
        let pc = frame.map_or((0, 0), |f| (f.addr, f.line));
        if let Some(&i) = self.by_pc.get(&pc) {
            return i;
        }
        let key = CallerKey::of(frame);
        let i = match self.callers.find(&key) {
            Some(i) => i,
            None => {
                let row = CallerRow {
                    label: key.short_label().into(),
                    key: key.clone(),
                    deletes: 0,
                    clears: 0,
                    maps: HashSet::default(),
                    maps_overflow: false,
                    map_types: Vec::new(),
                    types_overflow: false,
                    rate: Buckets::default(),
                    recent: VecDeque::new(),
                    last_seq: seq,
                };
                let (i, moved) = self.callers.insert(key, row);
                if moved {
                    self.by_pc.clear();
                }
                i
            }
        };
        if self.by_pc.len() >= 4 * self.rows {
            self.by_pc.clear();
        }
        self.by_pc.insert(pc, i);
        i
    }

    // -----------------------------------------------------------------------------------------
    // Queries (the render thread)

    /// Callers that match `filter`, unsorted; and how many there are in all.
    pub fn caller_lines(&self, filter: &Filter, now_sec: u64) -> (Vec<CallerLine>, usize) {
        let all = self.records().max(1) as f64;
        let lines = self
            .callers
            .rows
            .iter()
            .filter(|r| {
                filter.is_empty()
                    || filter.matches(&r.key.func)
                    || filter.matches(&r.key.file)
                    || filter.matches(&r.label)
                    || r.map_types.iter().any(|t| filter.matches(t))
                    || recent_keys_match(&r.recent, filter)
            })
            .map(|r| CallerLine {
                key: r.key.clone(),
                label: r.label.clone(),
                total: r.total(),
                deletes: r.deletes,
                clears: r.clears,
                rate: r.rate.rate(now_sec),
                share: r.total() as f64 / all * 100.0,
                maps: r.distinct_maps(),
                maps_overflow: r.maps_overflow,
                types: r.map_types.clone(),
                types_overflow: r.types_overflow,
            })
            .collect();
        (lines, self.callers.rows.len())
    }

    pub fn map_lines(&self, filter: &Filter, now_sec: u64) -> (Vec<MapLine>, usize) {
        let lines = self
            .maps
            .rows
            .iter()
            .filter(|r| {
                filter.is_empty()
                    || filter.matches(&r.map_type)
                    || filter.matches(&r.key_type)
                    || filter.matches(&format!("{:#x}", r.addr))
                    || r.callers.iter().any(|(l, _)| filter.matches(l))
                    || recent_keys_match(&r.recent, filter)
            })
            .map(|r| MapLine {
                addr: r.addr,
                type_hash: r.type_hash,
                map_type: r.map_type.clone(),
                len: r.len,
                deletes: r.deletes,
                clears: r.clears,
                rate: r.rate.rate(now_sec),
                top_caller: r.top_caller().cloned(),
            })
            .collect();
        (lines, self.maps.rows.len())
    }

    pub fn event_lines(&self, filter: &Filter) -> (Vec<EventLine>, usize) {
        let lines = self
            .events
            .iter()
            .filter(|e| {
                filter.is_empty()
                    || filter.matches(&e.caller)
                    || e.event
                        .caller_frame()
                        .is_some_and(|f| filter.matches(&f.file))
                    || filter.matches(&e.event.map_type)
                    || filter.matches(&e.event.key.to_string())
            })
            .map(|e| EventLine {
                seq: e.seq,
                event: e.event.clone(),
                caller: e.caller.clone(),
            })
            .collect();
        (lines, self.events.len())
    }

    pub fn caller_detail(&self, key: &CallerKey, now_sec: u64) -> Option<Detail> {
        let r = &self.callers.rows[self.callers.find(key)?];
        let latest = r.recent.back();
        let maps = if r.maps_overflow {
            format!("{}+", r.distinct_maps())
        } else {
            r.distinct_maps().to_string()
        };
        let mut types = join_types(&r.map_types, r.types_overflow);
        if types.is_empty() {
            types = "-".into();
        }
        Some(Detail {
            title: r.label.to_string(),
            facts: vec![
                ("caller".into(), r.key.full_label()),
                (
                    "total".into(),
                    format!(
                        "{} ({} deletes, {} clears) · {maps} map{} · {types}",
                        group(r.total()),
                        group(r.deletes),
                        group(r.clears),
                        if maps == "1" { "" } else { "s" }
                    ),
                ),
            ],
            history: r.rate.series(now_sec, CHART_SECS),
            keys: recent_keys(&r.recent),
            stack: latest.map(|e| e.stack.clone()),
            caller: latest.and_then(|e| e.caller),
        })
    }

    pub fn map_detail(&self, key: MapKey, now_sec: u64) -> Option<Detail> {
        let r = &self.maps.rows[self.maps.find(&key)?];
        let latest = r.recent.back();
        let mut callers: Vec<&(Arc<str>, u64)> = r.callers.iter().collect();
        callers.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut who: Vec<String> = callers
            .iter()
            .take(3)
            .map(|(l, n)| format!("{l} ({})", group(*n)))
            .collect();
        if callers.len() > 3 || r.other_callers > 0 {
            who.push("…".into());
        }
        Some(Detail {
            title: format!("{:#x} {}", r.addr, r.map_type),
            facts: vec![
                (
                    "map".into(),
                    format!("{:#x} · {} · key {}", r.addr, r.map_type, r.key_type),
                ),
                (
                    "total".into(),
                    format!(
                        "{} deletes, {} clears · len {}",
                        group(r.deletes),
                        group(r.clears),
                        group(r.len)
                    ),
                ),
                ("callers".into(), who.join(", ")),
            ],
            history: r.rate.series(now_sec, CHART_SECS),
            keys: recent_keys(&r.recent),
            stack: latest.map(|e| e.stack.clone()),
            caller: latest.and_then(|e| e.caller),
        })
    }

    pub fn event_detail(&self, seq: u64) -> Option<Detail> {
        let i = self.events.binary_search_by_key(&seq, |e| e.seq).ok()?;
        let e = &self.events[i];
        Some(event_detail(&e.event, &e.caller))
    }

    /// The stacks that match `filter`, as a flame-graph profile (the same
    /// shaping as `mdt flame`).
    pub fn profile(&self, filter: &Filter) -> Profile {
        let mut profile = Profile::default();
        for s in &self.stacks.rows {
            let keep = filter.is_empty()
                || filter.matches(&s.caller)
                || filter.matches(&s.map_type)
                || s.frames
                    .iter()
                    .any(|f| filter.matches(&f.func) || filter.matches(&f.file));
            if keep {
                profile.add(
                    RawStack {
                        func: s.func,
                        frames: &s.frames,
                        map_type: &s.map_type,
                        key_type: &s.key_type,
                        goid: None,
                        count: s.count,
                    },
                    &Shape::default(),
                );
            }
        }
        profile.finish(1);
        profile
    }
}

/// `github.com/org/svc/cache.(*LRU).evict` → `cache.(*LRU).evict` (a `/`
/// inside type parameters or a receiver stays).
pub fn short_func(func: &str) -> &str {
    let end = func.find(['[', '(']).unwrap_or(func.len());
    match func[..end].rfind('/') {
        Some(i) => &func[i + 1..],
        None => func,
    }
}

fn push_recent(ring: &mut VecDeque<Arc<Event>>, ev: &Arc<Event>) {
    if ring.len() >= RECENT_PER_ROW {
        ring.pop_front();
    }
    ring.push_back(ev.clone());
}

fn recent_keys_match(ring: &VecDeque<Arc<Event>>, filter: &Filter) -> bool {
    ring.iter()
        .any(|e| e.kind == Role::Delete && filter.matches(&e.key.to_string()))
}

/// The keys of the newest events, newest first (`clear(N)` for a clear).
fn recent_keys(ring: &VecDeque<Arc<Event>>) -> Vec<String> {
    ring.iter()
        .rev()
        .map(|e| match e.kind {
            Role::Delete => format!("{}{}", e.key, if e.key_truncated { "…" } else { "" }),
            Role::Clear => format!("clear({})", e.cleared.unwrap_or(0)),
        })
        .collect()
}

fn event_detail(e: &Event, caller: &str) -> Detail {
    let what = match e.kind {
        Role::Delete => format!(
            "delete key {}{} ({})",
            e.key,
            if e.key_truncated { "…" } else { "" },
            e.key_type
        ),
        Role::Clear => format!("clear of {} entries", e.cleared.unwrap_or(0)),
    };
    Detail {
        title: format!("event {}", clock(e.ts_ns)),
        facts: vec![
            ("what".into(), what),
            (
                "map".into(),
                format!("{:#x} · {} · len {}", e.map, e.map_type, group(e.map_len)),
            ),
            ("caller".into(), caller.to_string()),
            (
                "thread".into(),
                format!(
                    "goroutine {} · pid {} tid {} · {}",
                    e.goid.map_or("?".into(), |g| g.to_string()),
                    e.pid,
                    e.tid,
                    e.func
                ),
            ),
        ],
        history: Vec::new(),
        keys: Vec::new(),
        stack: Some(e.stack.clone()),
        caller: e.caller,
    }
}

fn join_types(types: &[Arc<str>], overflow: bool) -> String {
    let mut s = types.iter().map(|t| &**t).collect::<Vec<_>>().join(", ");
    if overflow {
        s.push_str(", …");
    }
    s
}

// ---------------------------------------------------------------------------------------------
// View rows

/// A row's identity, so that the selection follows it when rows move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKey {
    Caller(CallerKey),
    Map(MapKey),
    Event(u64),
    /// An alert or resolution, by its position on the alert board.
    Alert(u64),
}

#[derive(Debug, Clone)]
pub struct CallerLine {
    pub key: CallerKey,
    pub label: Arc<str>,
    pub total: u64,
    pub deletes: u64,
    pub clears: u64,
    pub rate: u64,
    /// Percent of all records.
    pub share: f64,
    pub maps: usize,
    pub maps_overflow: bool,
    pub types: Vec<Arc<str>>,
    pub types_overflow: bool,
}

impl CallerLine {
    pub fn types_text(&self) -> String {
        join_types(&self.types, self.types_overflow)
    }

    pub fn maps_text(&self) -> String {
        if self.maps_overflow {
            format!("{}+", self.maps)
        } else {
            self.maps.to_string()
        }
    }
}

#[derive(Debug, Clone)]
pub struct MapLine {
    pub addr: u64,
    pub type_hash: u64,
    pub map_type: Arc<str>,
    pub len: u64,
    pub deletes: u64,
    pub clears: u64,
    pub rate: u64,
    pub top_caller: Option<Arc<str>>,
}

#[derive(Debug, Clone)]
pub struct EventLine {
    pub seq: u64,
    pub event: Arc<Event>,
    pub caller: Arc<str>,
}

impl EventLine {
    pub fn key_text(&self) -> String {
        match self.event.kind {
            Role::Delete => format!(
                "{}{}",
                self.event.key,
                if self.event.key_truncated { "…" } else { "" }
            ),
            Role::Clear => format!("clear({})", self.event.cleared.unwrap_or(0)),
        }
    }
}

/// What the detail pane shows for the selected row.
#[derive(Debug, Clone)]
pub struct Detail {
    pub title: String,
    /// (label, value) lines.
    pub facts: Vec<(String, String)>,
    /// Per-second counts, oldest first ([`CHART_SECS`] values; empty for an event).
    pub history: Vec<u64>,
    /// Newest first.
    pub keys: Vec<String>,
    /// Innermost first.
    pub stack: Option<Stack>,
    /// Index of the caller frame in `stack`.
    pub caller: Option<usize>,
}

// ---------------------------------------------------------------------------------------------
// Sorting

/// A sortable column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Total,
    Rate,
    Share,
    Maps,
    Caller,
    Types,
    Map,
    Type,
    Len,
    Deletes,
    Clears,
    TopCaller,
    Time,
    Goid,
    Key,
    State,
    Rule,
    Group,
    Value,
}

pub const CALLER_COLUMNS: &[Column] = &[
    Column::Total,
    Column::Rate,
    Column::Share,
    Column::Maps,
    Column::Caller,
    Column::Types,
];
pub const MAP_COLUMNS: &[Column] = &[
    Column::Map,
    Column::Type,
    Column::Len,
    Column::Deletes,
    Column::Rate,
    Column::Clears,
    Column::TopCaller,
];
pub const EVENT_COLUMNS: &[Column] = &[
    Column::Time,
    Column::Goid,
    Column::Type,
    Column::Key,
    Column::Caller,
];
pub const ALERT_COLUMNS: &[Column] = &[
    Column::Time,
    Column::State,
    Column::Rule,
    Column::Group,
    Column::Value,
];

impl Column {
    pub fn title(self) -> &'static str {
        match self {
            Column::Total => "TOTAL",
            Column::Rate => "RATE/s",
            Column::Share => "SHARE",
            Column::Maps => "MAPS",
            Column::Caller => "CALLER",
            Column::Types => "MAP TYPES",
            Column::Map => "MAP",
            Column::Type => "MAP TYPE",
            Column::Len => "LEN",
            Column::Deletes => "DELETES",
            Column::Clears => "CLEARS",
            Column::TopCaller => "TOP CALLER",
            Column::Time => "TIME (UTC)",
            Column::Goid => "GOID",
            Column::Key => "KEY",
            Column::State => "STATE",
            Column::Rule => "RULE",
            Column::Group => "GROUP",
            Column::Value => "VALUE",
        }
    }

    /// Numbers sort largest first, names A to Z, time newest first.
    pub fn descending(self) -> bool {
        !matches!(
            self,
            Column::Caller
                | Column::Types
                | Column::Map
                | Column::Type
                | Column::TopCaller
                | Column::Key
                | Column::State
                | Column::Rule
                | Column::Group
        )
    }
}

/// A sort: the column and whether its natural order is reversed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub reversed: bool,
}

impl Sort {
    /// `natural` (ascending) turned into this sort's order.
    pub fn order(self, natural: Ordering) -> Ordering {
        let o = if self.column.descending() {
            natural.reverse()
        } else {
            natural
        };
        if self.reversed {
            o.reverse()
        } else {
            o
        }
    }
}

pub fn sort_callers(lines: &mut [CallerLine], sort: Sort) {
    lines.sort_by(|a, b| {
        let natural = match sort.column {
            Column::Rate => a.rate.cmp(&b.rate),
            Column::Maps => a.maps.cmp(&b.maps),
            Column::Caller => a.label.cmp(&b.label),
            Column::Types => a.types_text().cmp(&b.types_text()),
            _ => a.total.cmp(&b.total),
        };
        sort.order(natural)
            .then_with(|| b.total.cmp(&a.total))
            .then_with(|| a.label.cmp(&b.label))
            .then_with(|| a.key.line.cmp(&b.key.line))
    });
}

pub fn sort_maps(lines: &mut [MapLine], sort: Sort) {
    lines.sort_by(|a, b| {
        let natural = match sort.column {
            Column::Map => a.addr.cmp(&b.addr),
            Column::Type => a.map_type.cmp(&b.map_type),
            Column::Len => a.len.cmp(&b.len),
            Column::Rate => a.rate.cmp(&b.rate),
            Column::Clears => a.clears.cmp(&b.clears),
            Column::TopCaller => a.top_caller.cmp(&b.top_caller),
            _ => a.deletes.cmp(&b.deletes),
        };
        sort.order(natural)
            .then_with(|| (b.deletes + b.clears).cmp(&(a.deletes + a.clears)))
            .then_with(|| a.addr.cmp(&b.addr))
            .then_with(|| a.map_type.cmp(&b.map_type))
    });
}

pub fn sort_events(lines: &mut [EventLine], sort: Sort) {
    lines.sort_by(|a, b| {
        let natural = match sort.column {
            Column::Goid => a.event.goid.cmp(&b.event.goid),
            Column::Type => a.event.map_type.cmp(&b.event.map_type),
            Column::Key => a.key_text().cmp(&b.key_text()),
            Column::Caller => a.caller.cmp(&b.caller),
            _ => a.seq.cmp(&b.seq),
        };
        sort.order(natural).then_with(|| b.seq.cmp(&a.seq))
    });
}

// ---------------------------------------------------------------------------------------------
// Filtering

/// A substring filter: case-insensitive unless it has an upper-case letter
/// (smart case, as in vim and ripgrep).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    needle: String,
    case_sensitive: bool,
}

impl Filter {
    pub fn new(text: &str) -> Self {
        Filter {
            needle: text.to_string(),
            case_sensitive: text.chars().any(char::is_uppercase),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needle.is_empty()
    }

    pub fn matches(&self, hay: &str) -> bool {
        if self.needle.is_empty() {
            return true;
        }
        if self.case_sensitive || !self.needle.is_ascii() {
            return hay.contains(&self.needle);
        }
        let (h, n) = (hay.as_bytes(), self.needle.as_bytes());
        n.len() <= h.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting shared with the view and the export

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::KeyValue;

    fn frame(func: &str, file: &str, line: u32, addr: u64) -> Frame {
        Frame {
            func: func.into(),
            file: file.into(),
            line,
            inlined: false,
            addr,
        }
    }

    fn event(caller: (&str, u32, u64), map: u64, key: i64, sec: u64) -> Event {
        Event {
            kind: Role::Delete,
            ts_ns: sec * NANOS,
            pid: 1,
            tid: 1,
            goid: Some(1),
            func: "runtime.mapdelete_fast64",
            map,
            map_type: "map[int64]int".into(),
            key_type: "int64".into(),
            key: KeyValue::Int(key),
            key_truncated: false,
            map_len: 3,
            cleared: None,
            stack: vec![
                frame(
                    "runtime.mapdelete_fast64",
                    "/go/src/runtime/map_fast64.go",
                    10,
                    0x100,
                ),
                frame(caller.0, "/src/main.go", caller.1, caller.2),
            ]
            .into(),
            stack_lost: false,
            stack_id: 0,
            caller: Some(1),
        }
    }

    #[test]
    fn buckets_count_per_second_and_forget_old_seconds() {
        let mut b = Buckets::default();
        b.add(1000);
        b.add(1000);
        b.add(1001);
        assert_eq!(b.at(1000), 2);
        assert_eq!(b.rate(1002), 1);
        assert_eq!(b.series(1002, 3), vec![0, 2, 1]);
        b.add(1000 + HISTORY_SECS as u64 + 5);
        assert_eq!(b.at(1000), 0);
        assert_eq!(b.at(1001), 0);
        b.add(999); // too old now: ignored
        assert_eq!(b.at(999), 0);
    }

    #[test]
    fn rate_history_turns_totals_into_per_second_deltas() {
        let mut h = RateHistory::default();
        h.observe(100, 10);
        h.observe(100, 15);
        h.observe(101, 20); // 5 in second 100, 5 so far in 101
        assert_eq!(h.rate(), 5);
        h.observe(104, 20); // 101: 5, 102: 0, 103: 0
        assert_eq!(h.rate(), 0);
        let s = h.series();
        assert_eq!(s.len(), CHART_SECS);
        assert_eq!(&s[CHART_SECS - 4..], &[5, 5, 0, 0]);
    }

    #[test]
    fn one_row_per_call_site_and_per_map() {
        let mut st = Stats::new();
        // Two pcs on one line are one call site.
        st.apply(&event(("main.a", 10, 0x500), 0xc000, 1, 50));
        st.apply(&event(("main.a", 10, 0x504), 0xc000, 2, 50));
        st.apply(&event(("main.b", 20, 0x600), 0xd000, 3, 51));
        let (mut callers, n) = st.caller_lines(&Filter::default(), 52);
        assert_eq!(n, 2);
        sort_callers(
            &mut callers,
            Sort {
                column: Column::Total,
                reversed: false,
            },
        );
        assert_eq!(&*callers[0].label, "main.a main.go:10");
        assert_eq!(callers[0].total, 2);
        assert_eq!(callers[0].rate, 0);
        assert_eq!(callers[1].rate, 1);
        let (maps, _) = st.map_lines(&Filter::default(), 52);
        assert_eq!(maps.len(), 2);
        let m = maps.iter().find(|m| m.addr == 0xc000).unwrap();
        assert_eq!((m.deletes, m.len), (2, 3));
        assert_eq!(m.top_caller.as_deref(), Some("main.a main.go:10"));
        let d = st
            .map_detail((0xc000, type_hash("map[int64]int")), 52)
            .unwrap();
        assert_eq!(d.keys, vec!["2", "1"]);
    }

    #[test]
    fn full_tables_drop_their_least_recent_rows_and_say_so() {
        let max_maps = 500;
        let mut st = Stats::with_rows(max_maps);
        for i in 0..(max_maps as u64 + 10) {
            st.apply(&event(("main.a", 10, 0x500), 0x1000 + i * 16, 1, 50));
        }
        assert!(st.map_count() <= max_maps);
        assert!(st.evicted().maps > 0);
        // The newest map is still there, with its count.
        let newest = 0x1000 + (max_maps as u64 + 9) * 16;
        assert!(st
            .map_detail((newest, type_hash("map[int64]int")), 51)
            .is_some());
        assert_eq!(st.records(), max_maps as u64 + 10);
    }

    #[test]
    fn short_function_names_drop_the_import_path() {
        assert_eq!(
            short_func("github.com/org/svc/cache.(*LRU).evict"),
            "cache.(*LRU).evict"
        );
        assert_eq!(short_func("main.main"), "main.main");
        assert_eq!(
            short_func("pkg.F[go.shape.*example.com/x.T]"),
            "pkg.F[go.shape.*example.com/x.T]"
        );
        assert_eq!(
            short_func("example.com/a/pkg.F[go.shape.int]"),
            "pkg.F[go.shape.int]"
        );
    }

    #[test]
    fn smart_case_filter() {
        assert!(Filter::new("usermap").matches("main.UserMap"));
        assert!(Filter::new("UserMap").matches("main.UserMap"));
        assert!(!Filter::new("Usermap").matches("main.UserMap"));
        assert!(Filter::new("").matches("anything"));
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }

    /// The intake path stays cheap: a burst of a million events is applied
    /// well under a second (release build; debug builds get more room).
    #[test]
    fn a_million_events_apply_quickly() {
        let callers: Vec<Event> = (0..200u64)
            .map(|c| event(("main.worker", c as u32, 0x400000 + c * 8), 0, 0, 0))
            .collect();
        let mut st = Stats::new();
        let start = std::time::Instant::now();
        for i in 0..1_000_000u64 {
            let mut ev = callers[(i % 200) as usize].clone();
            ev.map = 0xc000_0000 + (i % 5000) * 48;
            ev.key = KeyValue::Int(i as i64);
            ev.ts_ns = 1_700_000_000 * NANOS + i * 1000;
            st.apply(&ev);
        }
        let took = start.elapsed();
        assert_eq!(st.records(), 1_000_000);
        assert_eq!(st.caller_count(), 200);
        assert_eq!(st.map_count(), 5000);
        let limit = if cfg!(debug_assertions) { 15.0 } else { 0.6 };
        eprintln!("1M events applied in {took:?}");
        assert!(took.as_secs_f64() < limit, "1M events took {took:?}");
    }

    /// Intake and drawing share one lock: while a million events pour in,
    /// the UI still rebuilds its model (what a key press triggers) quickly,
    /// and the intake is not slowed much by it.
    #[test]
    fn a_burst_does_not_starve_the_ui() {
        use crate::tui::app::{App, TargetInfo, View};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Mutex;
        use std::time::{Duration, Instant};

        let template: Vec<Event> = (0..200u64)
            .map(|c| event(("main.worker", c as u32, 0x400000 + c * 8), 0, 0, 0))
            .collect();
        let stats = Mutex::new(Stats::new());
        let done = AtomicBool::new(false);
        let (mut worst, mut frames) = (Duration::ZERO, 0);
        let mut intake = Duration::ZERO;
        std::thread::scope(|s| {
            s.spawn(|| {
                let start = Instant::now();
                for i in 0..1_000_000u64 {
                    let mut ev = template[(i % 200) as usize].clone();
                    ev.map = 0xc000_0000 + (i % 5000) * 48;
                    ev.ts_ns = 1_700_000_000 * NANOS + i * 1000;
                    stats.lock().unwrap().apply(&ev);
                }
                intake = start.elapsed();
                done.store(true, Ordering::SeqCst);
            });
            let mut app = App::new(TargetInfo::default());
            app.view = View::Maps; // the biggest table: 5,000 rows to filter and sort
            while !done.load(Ordering::SeqCst) {
                let t = Instant::now();
                app.refresh(&stats.lock().unwrap(), None, 1_700_000_001 * NANOS);
                worst = worst.max(t.elapsed());
                frames += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        eprintln!("1M events in {intake:?} while the UI refreshed {frames} times, the slowest in {worst:?}");
        let (refresh, total) = if cfg!(debug_assertions) {
            (1.0, 30.0)
        } else {
            (0.05, 1.5)
        };
        assert!(frames >= 2, "the UI never got the lock");
        assert!(worst.as_secs_f64() < refresh, "a refresh took {worst:?}");
        assert!(intake.as_secs_f64() < total, "intake took {intake:?}");
    }
}
