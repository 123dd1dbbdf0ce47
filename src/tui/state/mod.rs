//! The TUI's data, apart from any drawing: aggregation tables that the
//! session thread updates once per event and the render thread reads about
//! ten times a second.
//!
//! Everything is bounded. Each table has a cap; when a new row would pass
//! it, the least recently active quarter of the table is dropped (and
//! counted, so the header can say the table is capped). The per-event path
//! does a couple of integer-keyed hash lookups, one `Arc` allocation and a
//! few counter updates: a million events take well under a second.

mod format;
mod lines;
mod rate;
mod rows;
mod table;

pub use self::lines::*;
pub use self::rate::{Buckets, RateHistory};
pub use self::rows::{
    CallerKey, CallerRow, Evicted, LabelRow, MapKey, MapMemoryHistory, MapRow, OutcomeStats,
    OutcomeSummary, RecentEvent, NO_LABELS,
};

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use self::format::join_types;
use self::rows::{type_hash, StackKey, StackRow};
use self::table::Table;
use crate::bounded::{FastHash, Limits};
use crate::events::mapmem::{short_bytes, MapMemory, MapShape};
use crate::events::{Event, Role};
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
// The aggregate

/// Everything the TUI knows about the events it was given.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Rows of each table at most.
    rows: usize,
    callers: Table<CallerKey, CallerRow>,
    /// (caller pc, line) → caller row: skips hashing the strings.
    by_pc: HashMap<(u64, u32), usize, FastHash>,
    maps: Table<MapKey, MapRow>,
    stacks: Table<StackKey, StackRow>,
    /// Per goroutine label value (`tenant=t1`), and the deletes without.
    labels: Table<Arc<str>, LabelRow>,
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
            by_pc: HashMap::default(),
            maps: Table::new(rows),
            stacks: Table::new(rows),
            labels: Table::new(rows),
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
            labels: self.labels.evicted,
        }
    }

    pub fn caller_count(&self) -> usize {
        self.callers.rows.len()
    }

    pub fn map_count(&self) -> usize {
        self.maps.rows.len()
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
        if let Some(o) = &ev.outcome {
            caller.outcomes.add(o);
        }
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
                    outcomes: OutcomeStats::default(),
                    recent: VecDeque::new(),
                    last_seq: seq,
                    memory: Default::default(),
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
        if let Some(o) = &ev.outcome {
            map.outcomes.add(o);
        }
        count_caller(&mut map.callers, &mut map.other_callers, &label);
        push_recent(&mut map.recent, &event);

        let skey: StackKey = (ev.stack_id, ev.func.as_ptr() as usize);
        let si = match self.stacks.find(&skey) {
            Some(i) => i,
            None => {
                let row = StackRow {
                    key: skey,
                    func: ev.func,
                    frames: ev.stack.clone(),
                    truncated: ev.stack_truncated,
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

        self.apply_labels(ev, &event, &label, seq, sec);

        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(RecentEvent {
            seq,
            event,
            caller: label,
        });
    }

    /// The Labels view's rows of one event: one per label it had, or the
    /// row of the deletes without labels.
    fn apply_labels(
        &mut self,
        ev: &Event,
        event: &Arc<Event>,
        caller: &Arc<str>,
        seq: u64,
        sec: u64,
    ) {
        match ev.labels.as_deref().filter(|l| !l.pairs.is_empty()) {
            Some(l) => {
                let mut name = String::new();
                for (k, v) in &l.pairs {
                    name.clear();
                    let _ = write!(name, "{k}={v}");
                    self.count_label(&name, ev, event, caller, seq, sec);
                }
            }
            None => self.count_label(NO_LABELS, ev, event, caller, seq, sec),
        }
    }

    /// One event in the row of label value `name` (made on its first one).
    fn count_label(
        &mut self,
        name: &str,
        ev: &Event,
        event: &Arc<Event>,
        caller: &Arc<str>,
        seq: u64,
        sec: u64,
    ) {
        let i = match self.labels.find(name) {
            Some(i) => i,
            None => {
                let label: Arc<str> = Arc::from(name);
                let row = LabelRow {
                    label: label.clone(),
                    deletes: 0,
                    clears: 0,
                    callers: Vec::new(),
                    other_callers: 0,
                    rate: Buckets::default(),
                    outcomes: OutcomeStats::default(),
                    recent: VecDeque::new(),
                    last_seq: seq,
                };
                self.labels.insert(label, row).0
            }
        };
        let row = &mut self.labels.rows[i];
        row.last_seq = seq;
        if ev.kind == Role::Clear {
            row.clears += 1;
        } else {
            row.deletes += 1;
        }
        row.rate.add(sec);
        if let Some(o) = &ev.outcome {
            row.outcomes.add(o);
        }
        count_caller(&mut row.callers, &mut row.other_callers, caller);
        push_recent(&mut row.recent, event);
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
                    outcomes: OutcomeStats::default(),
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
                    || recent_labels_match(&r.recent, filter)
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
                outcomes: r.outcomes.summary(),
                labels: recent_labels(&r.recent),
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
                outcomes: r.outcomes.summary(),
                memory: r.memory.last.filter(|_| r.memory.gone.is_none()),
            })
            .collect();
        (lines, self.maps.rows.len())
    }

    pub fn label_lines(&self, filter: &Filter, now_sec: u64) -> (Vec<LabelLine>, usize) {
        let all = self.records().max(1) as f64;
        let lines = self
            .labels
            .rows
            .iter()
            .filter(|r| {
                filter.is_empty()
                    || filter.matches(&r.label)
                    || r.callers.iter().any(|(l, _)| filter.matches(l))
            })
            .map(|r| LabelLine {
                label: r.label.clone(),
                total: r.deletes + r.clears,
                rate: r.rate.rate(now_sec),
                share: (r.deletes + r.clears) as f64 / all * 100.0,
                top_caller: r.top_caller().cloned(),
                outcomes: r.outcomes.summary(),
            })
            .collect();
        (lines, self.labels.rows.len())
    }

    pub fn label_detail(&self, label: &str, now_sec: u64) -> Option<Detail> {
        let r = &self.labels.rows[self.labels.find(label)?];
        let latest = r.recent.back();
        let who = top_callers_text(&r.callers, r.other_callers);
        Some(Detail {
            title: format!("label {}", r.label),
            facts: vec![
                (
                    "total".into(),
                    format!("{} deletes, {} clears", group(r.deletes), group(r.clears)),
                ),
                ("callers".into(), who),
            ],
            history: r.rate.series(now_sec, CHART_SECS),
            keys: recent_keys(&r.recent),
            outcomes: Some(r.outcomes),
            stack: latest.map(|e| e.stack.clone()),
            caller: latest.and_then(|e| e.caller),
        })
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
                    || e.event
                        .labels
                        .as_ref()
                        .is_some_and(|l| filter.matches(&l.text()))
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
            outcomes: Some(r.outcomes),
            stack: latest.map(|e| e.stack.clone()),
            caller: latest.and_then(|e| e.caller),
        })
    }

    pub fn map_detail(&self, key: MapKey, now_sec: u64) -> Option<Detail> {
        let r = &self.maps.rows[self.maps.find(&key)?];
        let latest = r.recent.back();
        let who = top_callers_text(&r.callers, r.other_callers);
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
                ("callers".into(), who),
                ("memory".into(), memory_text(&r.memory)),
            ],
            history: r.rate.series(now_sec, CHART_SECS),
            keys: recent_keys(&r.recent),
            outcomes: Some(r.outcomes),
            stack: latest.map(|e| e.stack.clone()),
            caller: latest.and_then(|e| e.caller),
        })
    }

    /// A reading of a map's memory, onto its row (a map not in the table,
    /// or no longer, is ignored).
    pub fn map_memory(&mut self, m: &MapMemory) {
        let key = (m.map, type_hash(&m.map_type));
        let Some(i) = self.maps.find(&key) else {
            return;
        };
        let mem = &mut self.maps.rows[i].memory;
        match (m.size, m.gone) {
            (Some(size), _) => {
                mem.first.get_or_insert(size);
                mem.last = Some(size);
                mem.gone = None;
            }
            (None, why) => mem.gone = Some(why.unwrap_or("gone")),
        }
    }

    /// Bytes held by the maps of the table, as last read (gone ones left out).
    pub fn map_bytes(&self) -> u64 {
        self.maps
            .rows
            .iter()
            .filter(|r| r.memory.gone.is_none())
            .filter_map(|r| r.memory.last.map(|s| s.bytes))
            .sum()
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
                        labels: None,
                        count: s.count,
                        truncated: s.truncated,
                    },
                    &Shape::default(),
                );
            }
        }
        profile.finish(1);
        profile
    }
}

/// One more delete by `caller` in a row's callers (at most
/// [`MAX_CALLERS_PER_MAP`] of them; the rest summed in `other`).
fn count_caller(callers: &mut Vec<(Arc<str>, u64)>, other: &mut u64, caller: &Arc<str>) {
    if let Some((_, n)) = callers
        .iter_mut()
        .find(|(l, _)| Arc::ptr_eq(l, caller) || **l == **caller)
    {
        *n += 1;
    } else if callers.len() < MAX_CALLERS_PER_MAP {
        callers.push((caller.clone(), 1));
    } else {
        *other += 1;
    }
}

/// The three busiest of a row's callers, with their counts (`…` when
/// there are more).
fn top_callers_text(callers: &[(Arc<str>, u64)], other: u64) -> String {
    let mut sorted: Vec<&(Arc<str>, u64)> = callers.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut who: Vec<String> = sorted
        .iter()
        .take(3)
        .map(|(l, n)| format!("{l} ({})", group(*n)))
        .collect();
    if sorted.len() > 3 || other > 0 {
        who.push("…".into());
    }
    who.join(", ")
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

fn recent_labels_match(ring: &VecDeque<Arc<Event>>, filter: &Filter) -> bool {
    ring.iter()
        .any(|e| e.labels.as_ref().is_some_and(|l| filter.matches(&l.text())))
}

/// The labels of the newest events: each key once, with its values newest
/// first (`tenant=t2|t1 endpoint=/a`); empty when they had none.
fn recent_labels(ring: &VecDeque<Arc<Event>>) -> String {
    let mut keys: Vec<(&str, Vec<&str>)> = Vec::new();
    for l in ring.iter().rev().filter_map(|e| e.labels.as_deref()) {
        for (k, v) in &l.pairs {
            match keys.iter_mut().find(|(key, _)| key == k) {
                Some((_, values)) if !values.contains(&v.as_str()) => values.push(v),
                Some(_) => {}
                None => keys.push((k, vec![v])),
            }
        }
    }
    keys.iter()
        .map(|(k, vs)| format!("{k}={}", vs.join("|")))
        .collect::<Vec<_>>()
        .join(" ")
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

/// What the exit probes saw of one call.
fn event_outcome(e: &Event) -> String {
    let Some(o) = e.outcome else {
        return "not measured (the exit probes were not armed)".into();
    };
    let what = match (e.kind, o.removed) {
        (Role::Clear, _) => "returned",
        (Role::Delete, Some(true)) => "removed an entry",
        (Role::Delete, Some(false)) => "key absent",
        (Role::Delete, None) => "returned (map count unread)",
    };
    format!("{what} · {}", duration(o.duration_ns))
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
            ("outcome".into(), event_outcome(e)),
            (
                "labels".into(),
                match &e.labels {
                    Some(l) if l.truncated => format!("{} (truncated)", l.text()),
                    Some(l) => l.text(),
                    None => "none".into(),
                },
            ),
        ],
        history: Vec::new(),
        keys: Vec::new(),
        outcomes: None,
        stack: Some(e.stack.clone()),
        caller: e.caller,
    }
}

#[cfg(test)]
mod tests;

/// A map's memory for the detail pane: size, fill, shape, and how it
/// changed since the first reading.
fn memory_text(m: &MapMemoryHistory) -> String {
    let Some(last) = m.last else {
        return match m.gone {
            Some(why) => format!("gone ({why})"),
            None => "not read yet".into(),
        };
    };
    let mut text = format!(
        "cap {} slots · {} · fill {:.1}%{}",
        group(last.cap),
        short_bytes(last.bytes),
        last.fill() * 100.0,
        if last.bloated() { " (bloated)" } else { "" }
    );
    match last.shape {
        MapShape::Hmap {
            buckets,
            overflow,
            old_buckets,
        } => {
            text += &format!(
                " · {} buckets, {} overflow",
                group(buckets),
                group(overflow)
            );
            if old_buckets > 0 {
                text += &format!(", growing from {}", group(old_buckets));
            }
        }
        MapShape::Swiss {
            tables, tombstones, ..
        } => {
            text += &format!(
                " · {} tables, {} tombstones",
                group(tables),
                group(tombstones)
            );
        }
    }
    if let Some(first) = m.first.filter(|f| *f != last) {
        text += &format!(
            " · first read: len {}, cap {}, {}",
            group(first.len),
            group(first.cap),
            short_bytes(first.bytes)
        );
    }
    if let Some(why) = m.gone {
        text += &format!(" · now gone ({why})");
    }
    text
}
