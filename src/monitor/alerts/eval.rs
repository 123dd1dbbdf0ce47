//! Rules evaluated over sliding windows.
//!
//! Counts go into 250 ms slots per (rule, group); a rule's value is the
//! sum of the slots inside its window. Rules that group and filter only by
//! `map_type` and `caller` are fed the exact kernel counts (per call site,
//! every observation); rules on `map` or `key` are fed the delete records
//! (with `--sample` below 1: scaled by 1/rate, and marked not exact).
//!
//! `absent()` rules are fed the kernel's exact outcome counts per call
//! site (deletes that removed an entry / found none, with the exit points
//! armed), `pNN()` rules the exact latency histograms per map type
//! ([`LatencyDelta`]): their slots hold those, and a group's value is the
//! share, or the quantile's bucket bound, of the slots in the window. A
//! group with fewer measured calls in the window than the rule's `min`
//! (1 by default) has no value: it neither fires nor resolves.
//!
//! A group fires once when its value crosses the threshold, then stays
//! firing (no repeats) until the value falls back: a `resolved` notice.
//! With a cooldown, a group that fired does not fire again before the
//! cooldown has passed since it last fired.
//!
//! A `fatal(...)` rule has no window: the target's fatal error (crash
//! forensics) fires it once, at the next evaluation, with the dying
//! goroutine's stack as its top stack; it never resolves.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::rule::{parse_address, Func, Gauge, Measure};
use super::{AlertBoard, Dim, Notice, Rule, State, TopStack};
use crate::events::fatal::Fatal;
use crate::events::mapmem::{MapShape, MapSize};
use crate::events::{is_runtime_internal, Event, Frame, KeyValue, Outcome, Role, Stack};
use crate::monitor::latency::LatencyDelta;
use crate::monitor::sites::{Site, SiteDelta};
use crate::probes::Histogram;

/// Finest resolution of the sliding windows.
const SLOT: Duration = Duration::from_millis(250);
/// Slots of one window at most: a long window gets coarser slots, so that
/// a group's memory is bounded whatever the window.
pub const MAX_SLOTS_PER_WINDOW: u64 = 60;
/// Groups one rule may track at once; more are ignored (and counted).
pub const MAX_GROUPS: usize = 10_000;
/// Records kept for the top stacks of an alert.
const RECENT: usize = 8192;
/// Stacks in an alert.
const TOP_STACKS: usize = 3;

/// What one slot of a group holds: one kind per rule (its [`Measure`]).
#[derive(Debug, Clone)]
enum Amount {
    /// Deletes (count, rate).
    Deletes(u64),
    /// Deletes whose outcome was measured, and those of an absent key.
    Outcomes { measured: u64, absent: u64 },
    /// The calls' durations (boxed: most groups count deletes).
    Durations(Box<Histogram>),
    /// A memory rule's reading: the first condition's value, and whether
    /// every condition holds. A new reading replaces the last.
    Gauge { value: f64, holds: bool },
}

impl Amount {
    fn add(&mut self, other: Amount) {
        match (self, other) {
            (Amount::Deletes(a), Amount::Deletes(b)) => *a += b,
            (
                Amount::Outcomes { measured, absent },
                Amount::Outcomes {
                    measured: m,
                    absent: a,
                },
            ) => {
                *measured += m;
                *absent += a;
            }
            (Amount::Durations(h), Amount::Durations(o)) => h.add(&o),
            (a @ Amount::Gauge { .. }, b @ Amount::Gauge { .. }) => *a = b,
            (a, b) => debug_assert!(false, "one rule, one kind of amount: {a:?} + {b:?}"),
        }
    }

    /// Deletes, measured deletes, or calls.
    fn calls(&self) -> u64 {
        match self {
            Amount::Deletes(n) => *n,
            Amount::Outcomes { measured, .. } => *measured,
            Amount::Durations(h) => h.count(),
            Amount::Gauge { .. } => 1,
        }
    }
}

struct Group {
    /// (slot, what it holds), oldest first.
    slots: VecDeque<(u64, Amount)>,
    context: Vec<(&'static str, String)>,
    /// Firing since (wall clock).
    firing: Option<SystemTime>,
    last_fired: Option<Instant>,
}

struct RuleState {
    rule: Arc<Rule>,
    groups: HashMap<String, Group>,
}

struct Recent {
    at: Instant,
    /// A clear (only `pNN(op="clear")` rules read those).
    clear: bool,
    outcome: Option<Outcome>,
    map: u64,
    map_type: Arc<str>,
    key: String,
    caller: Option<Frame>,
    stack: Stack,
    labels: Option<Arc<crate::events::Labels>>,
}

impl Recent {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_deref().and_then(|l| l.get(key))
    }
}

pub struct Evaluator {
    rules: Vec<RuleState>,
    cooldown: Duration,
    sample_rate: f64,
    start: Instant,
    recent: VecDeque<Recent>,
    board: Arc<AlertBoard>,
    pid: i32,
    /// Records were lost (ring buffer full): record counts are short.
    lost: bool,
    /// Counts not tracked because their rule had MAX_GROUPS groups already.
    pub groups_dropped: u64,
    /// Fired by a fatal error, posted at the next evaluation.
    fatal: Vec<Arc<Notice>>,
}

/// The key as a plain string: strings as is, integers in decimal, other
/// keys in their Go form, or as hex (as in the JSON records).
pub fn key_text(k: &KeyValue) -> String {
    k.plain_text()
}

fn caller_matches(want: &str, label: &str, func: &str, path: &str) -> bool {
    want == label || want == func || path.ends_with(want)
}

fn frame_label(f: &Frame) -> String {
    if f.is_named() {
        f.short_location()
    } else {
        f.func.to_string()
    }
}

impl Evaluator {
    pub fn new(
        rules: Vec<Rule>,
        cooldown: Duration,
        sample_rate: f64,
        board: Arc<AlertBoard>,
        pid: i32,
    ) -> Self {
        Evaluator {
            rules: rules
                .into_iter()
                .map(|r| RuleState {
                    rule: Arc::new(r),
                    groups: HashMap::new(),
                })
                .collect(),
            cooldown,
            sample_rate,
            start: Instant::now(),
            recent: VecDeque::new(),
            board,
            pid,
            lost: false,
            groups_dropped: 0,
            fatal: Vec::new(),
        }
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|r| &*r.rule)
    }

    pub fn set_lost(&mut self, lost: bool) {
        self.lost |= lost;
    }

    /// A delete or clear record (record-based rules count the deletes; top
    /// stacks for every rule).
    pub fn event(&mut self, ev: &Event, now: Instant) {
        let clear = ev.kind == Role::Clear;
        let caller = ev.caller_frame().cloned();
        let recent = Recent {
            at: now,
            clear,
            outcome: ev.outcome,
            map: ev.map,
            map_type: ev.map_type.clone(),
            key: key_text(&ev.key),
            caller,
            stack: ev.stack.clone(),
            labels: ev.labels.clone(),
        };
        let start = self.start;
        for rs in &mut self.rules {
            let slot = slot_at(start, &rs.rule, now);
            if clear || rs.rule.exact() || !record_matches(&rs.rule, &recent) {
                continue;
            }
            let (value, context) = match &rs.rule.group {
                // A goroutine without the label is in no group of it.
                Dim::Label(key) => match recent.label(key) {
                    Some(v) => (v.to_string(), vec![]),
                    None => continue,
                },
                Dim::Map => (
                    format!("{:#x}", recent.map),
                    vec![("map_type", recent.map_type.to_string())],
                ),
                Dim::Key => (
                    recent.key.clone(),
                    vec![("map_type", recent.map_type.to_string())],
                ),
                Dim::MapType => (recent.map_type.to_string(), vec![]),
                Dim::Caller => match &recent.caller {
                    Some(f) => (frame_label(f), vec![("function", f.func.to_string())]),
                    None => ("unknown".into(), vec![]),
                },
                Dim::Message => continue,
            };
            add(
                rs,
                value,
                context,
                slot,
                Amount::Deletes(1),
                &mut self.groups_dropped,
            );
        }
        self.recent.push_back(recent);
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    /// The target died of a fatal error: the `fatal(...)` rules whose
    /// filter it passes fire (once per process death: one record).
    pub fn fatal(&mut self, f: &Fatal) {
        let at = SystemTime::now();
        let mut fired = Vec::new();
        for rs in &self.rules {
            let rule = &rs.rule;
            let passes = rule
                .filters
                .iter()
                .all(|(d, want)| *d == Dim::Message && *want == f.message);
            if rule.measure != Measure::Fatal || !passes {
                continue;
            }
            let top = TopStack {
                count: 1,
                caller: f.caller_frame().map_or("?".into(), frame_text),
                frames: f.stack.iter().take(32).map(frame_text).collect(),
            };
            fired.push(self.notice(
                State::Firing,
                rule,
                f.message.clone(),
                fatal_context(f),
                1.0,
                true,
                at,
                vec![top],
            ));
        }
        self.fatal.extend(fired);
    }

    /// Exact increments per call site since the last observation: calls
    /// for count and rate rules, outcomes for absent() rules.
    pub fn sites(&mut self, deltas: &[SiteDelta], now: Instant) {
        let start = self.start;
        for rs in &mut self.rules {
            let slot = slot_at(start, &rs.rule, now);
            if !rs.rule.exact() {
                continue;
            }
            let measure = rs.rule.measure;
            for d in deltas {
                let site = &d.site;
                let amount = match measure {
                    Measure::Deletes if d.calls > 0 => Amount::Deletes(d.calls),
                    Measure::Absent if d.removed + d.absent > 0 => Amount::Outcomes {
                        measured: d.removed + d.absent,
                        absent: d.absent,
                    },
                    _ => continue,
                };
                if site.clear || !site_matches(&rs.rule, site) {
                    continue;
                }
                let (value, context) = match rs.rule.group {
                    Dim::MapType => (site.map_type.to_string(), vec![]),
                    _ => (
                        site.caller.to_string(),
                        vec![("function", site.caller_func.to_string())],
                    ),
                };
                add(rs, value, context, slot, amount, &mut self.groups_dropped);
            }
        }
    }

    /// The latency histograms' increments (exit points armed) since the
    /// last observation, for the pNN() rules.
    pub fn latency(&mut self, deltas: &[LatencyDelta], now: Instant) {
        let start = self.start;
        for rs in &mut self.rules {
            let Measure::Quantile(q) = rs.rule.measure else {
                continue;
            };
            let slot = slot_at(start, &rs.rule, now);
            for d in deltas {
                if d.clear != q.clears
                    || d.delta.count() == 0
                    || !type_matches(&rs.rule, &d.map_type)
                {
                    continue;
                }
                add(
                    rs,
                    d.map_type.to_string(),
                    vec![],
                    slot,
                    Amount::Durations(Box::new(d.delta)),
                    &mut self.groups_dropped,
                );
            }
        }
    }

    /// The maps' memory as last read (address, map type, size), for the
    /// memory rules: per map, or summed per map type. A group no longer
    /// among them (its map gone) stops holding, and resolves.
    pub fn maps(&mut self, maps: &[(u64, Arc<str>, MapSize)], now: Instant) {
        let start = self.start;
        for rs in &mut self.rules {
            let Measure::Memory(conds) = rs.rule.measure else {
                continue;
            };
            let slot = slot_at(start, &rs.rule, now);
            let mut groups: HashMap<String, (MapSize, Context)> = HashMap::new();
            for (addr, ty, size) in maps {
                if !memory_matches(&rs.rule, *addr, ty) {
                    continue;
                }
                match rs.rule.group {
                    Dim::MapType => {
                        let e = groups.entry(ty.to_string()).or_insert((
                            MapSize {
                                len: 0,
                                cap: 0,
                                bytes: 0,
                                shape: size.shape,
                            },
                            vec![],
                        ));
                        e.0.len += size.len;
                        e.0.cap += size.cap;
                        e.0.bytes += size.bytes;
                        if let (
                            MapShape::Swiss { tombstones: t, .. },
                            MapShape::Swiss { tombstones, .. },
                        ) = (&mut e.0.shape, size.shape)
                        {
                            *t += tombstones;
                        }
                    }
                    _ => {
                        groups.insert(
                            format!("{addr:#x}"),
                            (*size, vec![("map_type", ty.to_string())]),
                        );
                    }
                }
            }
            // Gone since: a firing group stops holding (and resolves), the
            // others are forgotten.
            rs.groups.retain(|name, g| {
                if groups.contains_key(name) {
                    return true;
                }
                g.slots.clear();
                let gone = Amount::Gauge {
                    value: 0.0,
                    holds: false,
                };
                g.slots.push_back((slot, gone));
                g.firing.is_some()
            });
            for (name, (size, context)) in groups {
                let holds = conds
                    .iter()
                    .all(|c| c.op.holds(gauge_value(c.gauge, &size), c.threshold));
                let value = gauge_value(conds.first().gauge, &size);
                add(
                    rs,
                    name,
                    context,
                    slot,
                    Amount::Gauge { value, holds },
                    &mut self.groups_dropped,
                );
            }
            // One reading per group: the latest.
            for g in rs.groups.values_mut() {
                while g.slots.len() > 1 {
                    g.slots.pop_front();
                }
            }
        }
    }

    /// Fires and resolves; returns the new notices (also posted to the board).
    pub fn evaluate(&mut self, now: Instant) -> Vec<Arc<Notice>> {
        let mut out = std::mem::take(&mut self.fatal);
        let scale = if self.sample_rate > 0.0 {
            1.0 / self.sample_rate
        } else {
            1.0
        };
        for i in 0..self.rules.len() {
            let rule = self.rules[i].rule.clone();
            let slot = slot_at(self.start, &rule, now);
            let window_slots = rule.window.as_millis().div_ceil(slot_ms(&rule)).max(1) as u64;
            let exact = rule.exact() || (self.sample_rate >= 1.0 && !self.lost);
            let first = slot.saturating_sub(window_slots - 1);
            let mut fire = Vec::new();
            let mut resolve = Vec::new();
            let groups = &mut self.rules[i].groups;
            groups.retain(|name, g| {
                while g.slots.front().is_some_and(|(s, _)| *s < first) {
                    g.slots.pop_front();
                }
                // No value (too few measured calls): no change either way.
                let Some(value) = window_value(&rule, &g.slots, scale) else {
                    let cooling = g
                        .last_fired
                        .is_some_and(|t| now.saturating_duration_since(t) < self.cooldown);
                    return !g.slots.is_empty() || g.firing.is_some() || cooling;
                };
                let above = match (rule.measure, g.slots.back()) {
                    (Measure::Memory(_), Some((_, Amount::Gauge { holds, .. }))) => *holds,
                    (Measure::Memory(_), _) => false,
                    _ => rule.op.holds(value, rule.threshold),
                };
                match g.firing {
                    None if above => {
                        let cooled = g
                            .last_fired
                            .is_none_or(|t| now.saturating_duration_since(t) >= self.cooldown);
                        if cooled {
                            let at = SystemTime::now();
                            g.firing = Some(at);
                            g.last_fired = Some(now);
                            fire.push((name.clone(), value, g.context.clone(), at));
                        }
                    }
                    Some(since) if !above => {
                        g.firing = None;
                        resolve.push((name.clone(), value, g.context.clone(), since));
                    }
                    _ => {}
                }
                let cooling = g
                    .last_fired
                    .is_some_and(|t| now.saturating_duration_since(t) < self.cooldown);
                !g.slots.is_empty() || g.firing.is_some() || cooling
            });
            for (group, value, context, fired_at) in fire {
                let top_stacks = self.top_stacks(&rule, &group, value, now);
                out.push(self.notice(
                    State::Firing,
                    &rule,
                    group,
                    context,
                    value,
                    exact,
                    fired_at,
                    top_stacks,
                ));
            }
            for (group, value, context, fired_at) in resolve {
                out.push(self.notice(
                    State::Resolved,
                    &rule,
                    group,
                    context,
                    value,
                    exact,
                    fired_at,
                    Vec::new(),
                ));
            }
        }
        for n in &out {
            self.board.post(n.clone());
        }
        self.board
            .groups_dropped
            .store(self.groups_dropped, std::sync::atomic::Ordering::Relaxed);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn notice(
        &self,
        state: State,
        rule: &Arc<Rule>,
        group: String,
        context: Vec<(&'static str, String)>,
        value: f64,
        exact: bool,
        fired_at: SystemTime,
        top_stacks: Vec<TopStack>,
    ) -> Arc<Notice> {
        Arc::new(Notice {
            state,
            ts: SystemTime::now(),
            rule: rule.clone(),
            group: (rule.group.clone(), group),
            context,
            value,
            exact,
            sample_rate: self.sample_rate,
            fired_at,
            top_stacks,
            pid: self.pid,
        })
    }

    /// The most frequent stacks of the group's records in the window: of
    /// its deletes; for absent(), of its deletes of absent keys; for pNN(),
    /// of its calls (deletes or clears) in the bucket of the quantile
    /// (`value`) or above.
    fn top_stacks(&self, rule: &Rule, group: &str, value: f64, now: Instant) -> Vec<TopStack> {
        let mut counts: HashMap<Vec<String>, (u64, String)> = HashMap::new();
        let slow_bucket = Histogram::bucket_of(if value.is_finite() {
            value as u64
        } else {
            u64::MAX
        });
        let memory = matches!(rule.measure, Measure::Memory(_));
        for r in self.recent.iter().rev() {
            // A memory rule: who deleted from the map lately, however long ago.
            if !memory && now.saturating_duration_since(r.at) > rule.window {
                break;
            }
            let wanted = match rule.measure {
                Measure::Deletes | Measure::Memory(_) => !r.clear,
                Measure::Absent => !r.clear && r.outcome.is_some_and(|o| o.removed == Some(false)),
                Measure::Quantile(q) => {
                    r.clear == q.clears
                        && r.outcome
                            .is_some_and(|o| Histogram::bucket_of(o.duration_ns) >= slow_bucket)
                }
                Measure::Fatal => false,
            };
            if !wanted || !record_matches(rule, r) || !in_group(&rule.group, group, r) {
                continue;
            }
            let frames: Vec<String> = r
                .stack
                .iter()
                .skip_while(|f| is_runtime_internal(&f.func))
                .take(32)
                .map(frame_text)
                .collect();
            let caller = r
                .caller
                .as_ref()
                .map_or("?".into(), |f| format!("{} {}:{}", f.func, f.file, f.line));
            counts.entry(frames).or_insert((0, caller)).0 += 1;
        }
        let mut top: Vec<TopStack> = counts
            .into_iter()
            .map(|(frames, (count, caller))| TopStack {
                count,
                caller,
                frames,
            })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.frames.cmp(&b.frames)));
        top.truncate(TOP_STACKS);
        top
    }
}

/// `function file:line` (or the function alone when it has no line).
fn frame_text(f: &Frame) -> String {
    if f.is_named() {
        format!("{} {}:{}", f.func, f.file, f.line)
    } else {
        f.func.to_string()
    }
}

/// What a fatal alert's group says besides the message: who died, where,
/// and on which map when that is known.
fn fatal_context(f: &Fatal) -> Vec<(&'static str, String)> {
    let mut c = vec![
        ("goroutine", f.goid.map_or("?".into(), |g| g.to_string())),
        ("tid", f.tid.to_string()),
    ];
    if let Some(frame) = f.caller_frame() {
        c.push(("caller", frame_label(frame)));
    }
    if let Some(m) = &f.map {
        c.push(("map", format!("{:#x}", m.addr)));
        c.push(("map_type", m.map_type.to_string()));
    }
    c
}

/// A slot of `rule`'s windows, in ms: [`SLOT`], or coarser for a window
/// longer than [`MAX_SLOTS_PER_WINDOW`] of them.
fn slot_ms(rule: &Rule) -> u128 {
    SLOT.as_millis().max(
        rule.window
            .as_millis()
            .div_ceil(u128::from(MAX_SLOTS_PER_WINDOW)),
    )
}

/// The slot of `now` in `rule`'s windows.
fn slot_at(start: Instant, rule: &Rule, now: Instant) -> u64 {
    (now.saturating_duration_since(start).as_millis() / slot_ms(rule)) as u64
}

/// A group's value over the slots of its window: deletes (scaled when
/// estimated from sampled records) or deletes per second; the share of
/// absent keys; the quantile's bucket bound. None without enough measured
/// calls (the rule's `min`, at least 1).
fn window_value(rule: &Rule, slots: &VecDeque<(u64, Amount)>, scale: f64) -> Option<f64> {
    let min = rule.min.max(1);
    match rule.measure {
        Measure::Deletes => {
            let count: u64 = slots.iter().map(|(_, a)| a.calls()).sum();
            let mut value = count as f64;
            if !rule.exact() {
                value *= scale;
            }
            if rule.func == Func::Rate {
                value /= rule.window.as_secs_f64();
            }
            Some(value)
        }
        Measure::Absent => {
            let (mut measured, mut absent) = (0u64, 0u64);
            for (_, a) in slots {
                if let Amount::Outcomes {
                    measured: m,
                    absent: x,
                } = a
                {
                    measured += m;
                    absent += x;
                }
            }
            (measured >= min).then(|| absent as f64 / measured as f64)
        }
        Measure::Quantile(q) => {
            let mut h = Histogram::default();
            for (_, a) in slots {
                if let Amount::Durations(d) = a {
                    h.add(d);
                }
            }
            if h.count() < min {
                return None;
            }
            Some(match h.quantile_bound(q.per_100k).unwrap_or(u64::MAX) {
                u64::MAX => f64::INFINITY,
                b => b as f64,
            })
        }
        // Fired by the fatal error itself, never by a window.
        Measure::Fatal => None,
        Measure::Memory(_) => match slots.back() {
            Some((_, Amount::Gauge { value, .. })) => Some(*value),
            _ => None,
        },
    }
}

fn add(
    rs: &mut RuleState,
    value: String,
    context: Vec<(&'static str, String)>,
    slot: u64,
    amount: Amount,
    dropped: &mut u64,
) {
    let full = rs.groups.len() >= MAX_GROUPS;
    let g = match rs.groups.get_mut(&value) {
        Some(g) => g,
        None if full => {
            *dropped += amount.calls();
            return;
        }
        None => rs.groups.entry(value).or_insert_with(|| Group {
            slots: VecDeque::new(),
            context,
            firing: None,
            last_fired: None,
        }),
    };
    match g.slots.back_mut() {
        Some((s, a)) if *s == slot => a.add(amount),
        _ => g.slots.push_back((slot, amount)),
    }
}

/// A group's context: (name, value) pairs besides its own.
type Context = Vec<(&'static str, String)>;

/// What a memory condition reads of a map's size.
fn gauge_value(gauge: Gauge, s: &MapSize) -> f64 {
    match gauge {
        Gauge::Fill => s.fill(),
        Gauge::Bytes => s.bytes as f64,
        Gauge::Cap => s.cap as f64,
        Gauge::Len => s.len as f64,
        Gauge::Tombstones => s.tombstones().unwrap_or(0) as f64,
    }
}

/// A map against a memory rule's filters (on map and map_type).
fn memory_matches(rule: &Rule, map: u64, map_type: &str) -> bool {
    rule.filters.iter().all(|(dim, want)| match dim {
        Dim::Map => parse_address(want) == Some(map),
        Dim::MapType => map_type == want,
        _ => false,
    })
}

fn record_matches(rule: &Rule, r: &Recent) -> bool {
    rule.filters.iter().all(|(dim, want)| match dim {
        Dim::Map => parse_address(want) == Some(r.map),
        Dim::MapType => *r.map_type == **want,
        Dim::Key => r.key == *want,
        Dim::Label(key) => r.label(key) == Some(want.as_str()),
        Dim::Caller => r.caller.as_ref().is_some_and(|f| {
            caller_matches(
                want,
                &frame_label(f),
                &f.func,
                &format!("{}:{}", f.file, f.line),
            )
        }),
        Dim::Message => false,
    })
}

fn in_group(dim: &Dim, group: &str, r: &Recent) -> bool {
    match dim {
        Dim::Label(key) => r.label(key) == Some(group),
        Dim::Map => parse_address(group) == Some(r.map),
        Dim::MapType => *r.map_type == *group,
        Dim::Key => r.key == group,
        Dim::Caller => r
            .caller
            .as_ref()
            .map_or(group == "unknown", |f| frame_label(f) == group),
        Dim::Message => false,
    }
}

/// A latency histogram's map type against a pNN() rule's filters (all on
/// map_type).
fn type_matches(rule: &Rule, map_type: &str) -> bool {
    rule.filters.iter().all(|(dim, want)| match dim {
        Dim::MapType => map_type == want,
        _ => false,
    })
}

fn site_matches(rule: &Rule, s: &Site) -> bool {
    rule.filters.iter().all(|(dim, want)| match dim {
        Dim::MapType => *s.map_type == **want,
        Dim::Caller => caller_matches(want, &s.caller, &s.caller_func, &s.caller_path),
        Dim::Map | Dim::Key | Dim::Label(_) | Dim::Message => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::alerts::rule::parse;

    fn event(map: u64, key: i64) -> Event {
        let caller = Frame::new("main.f", "/src/main.go", 12, 0x2000, false);
        Event {
            map_len: 1,
            ..crate::events::testing::delete(map, KeyValue::Int(key), &[caller])
        }
    }

    fn evaluator(rule: &str, cooldown: Duration, rate: f64) -> Evaluator {
        Evaluator::new(
            vec![parse(rule).unwrap()],
            cooldown,
            rate,
            AlertBoard::new(),
            1,
        )
    }

    #[test]
    fn fires_once_for_the_busy_map_then_resolves() {
        let mut e = evaluator("count(map) > 100 within 2s", Duration::ZERO, 1.0);
        let t0 = e.start;
        for i in 0..150 {
            e.event(&event(0xaaa, i), t0);
        }
        for i in 0..50 {
            e.event(&event(0xbbb, i), t0);
        }
        let fired = e.evaluate(t0 + Duration::from_millis(100));
        assert_eq!(fired.len(), 1);
        let n = &fired[0];
        assert_eq!(
            (n.state, n.group.1.as_str(), n.value),
            (State::Firing, "0xaaa", 150.0)
        );
        assert!(n.exact);
        assert_eq!(n.top_stacks.len(), 1);
        assert_eq!(n.top_stacks[0].count, 150);
        assert_eq!(
            n.top_stacks[0].frames,
            vec!["main.f /src/main.go:12".to_string()]
        );
        // Still above: no repeat.
        assert!(e.evaluate(t0 + Duration::from_millis(600)).is_empty());
        // The window slides past the deletes: resolved.
        let resolved = e.evaluate(t0 + Duration::from_secs(3));
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].state, State::Resolved);
        assert_eq!(e.board.fired.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn cooldown_limits_repeats() {
        let mut e = evaluator("count(map) > 2 within 1s", Duration::from_secs(10), 1.0);
        let t0 = e.start;
        let burst = |e: &mut Evaluator, at: Instant| {
            for i in 0..5 {
                e.event(&event(0xaaa, i), at);
            }
        };
        burst(&mut e, t0);
        assert_eq!(e.evaluate(t0).len(), 1);
        assert_eq!(e.evaluate(t0 + Duration::from_secs(2)).len(), 1); // resolved
        burst(&mut e, t0 + Duration::from_secs(3));
        assert!(
            e.evaluate(t0 + Duration::from_secs(3)).is_empty(),
            "cooling down"
        );
        burst(&mut e, t0 + Duration::from_secs(11));
        assert_eq!(e.evaluate(t0 + Duration::from_secs(11)).len(), 1);
    }

    #[test]
    fn sampled_records_are_scaled_and_marked() {
        let mut e = evaluator("count(key) > 100 within 5s", Duration::ZERO, 0.1);
        let t0 = e.start;
        for _ in 0..11 {
            e.event(&event(0xaaa, 7), t0);
        }
        let fired = e.evaluate(t0);
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].value, fired[0].exact), (110.0, false));
        assert_eq!(fired[0].group.1, "7");
    }

    #[test]
    fn rates_and_filters() {
        let mut e = evaluator(
            r#"rate(map, map_type="map[int64]int", caller="main.go:12") > 10/s within 1s"#,
            Duration::ZERO,
            1.0,
        );
        let t0 = e.start;
        for i in 0..11 {
            e.event(&event(0xaaa, i), t0);
        }
        assert_eq!(e.evaluate(t0).len(), 1);
        let mut e = evaluator(
            r#"rate(map, caller="other.go:1") > 1/s within 1s"#,
            Duration::ZERO,
            1.0,
        );
        for i in 0..11 {
            e.event(&event(0xaaa, i), t0);
        }
        assert!(e.evaluate(t0).is_empty());
    }

    #[test]
    fn exact_rules_use_site_counts() {
        let mut e = evaluator(
            r#"count(caller, map_type="main.UserMap") > 100 within 5s"#,
            Duration::ZERO,
            0.01,
        );
        let site = |clear: bool| Site {
            clear,
            map_type: "main.UserMap".into(),
            caller: "users.go:42".into(),
            caller_func: "main.prune".into(),
            caller_path: "/src/users.go:42".into(),
            label_map_type: "main.UserMap".into(),
            label_caller: "users.go:42".into(),
            count: 0,
            removed: 0,
            absent: 0,
        };
        let delta = |clear: bool, calls: u64| SiteDelta {
            site: site(clear),
            calls,
            removed: 0,
            absent: 0,
        };
        let t0 = e.start;
        e.sites(&[delta(false, 60), delta(true, 500)], t0);
        assert!(e.evaluate(t0).is_empty(), "clears don't count");
        e.sites(&[delta(false, 41)], t0 + Duration::from_millis(500));
        let fired = e.evaluate(t0 + Duration::from_millis(500));
        assert_eq!(fired.len(), 1);
        assert_eq!(
            (fired[0].group.1.as_str(), fired[0].value, fired[0].exact),
            ("users.go:42", 101.0, true)
        );
    }

    fn site_at(caller: &str, func: &str) -> Site {
        Site {
            clear: false,
            map_type: "main.UserMap".into(),
            caller: caller.into(),
            caller_func: func.into(),
            caller_path: format!("/src/{caller}").into(),
            label_map_type: "main.UserMap".into(),
            label_caller: caller.into(),
            count: 0,
            removed: 0,
            absent: 0,
        }
    }

    /// `calls` deletes at `caller`, `removed` + `absent` of them measured.
    fn outcomes(caller: &str, calls: u64, removed: u64, absent: u64) -> SiteDelta {
        SiteDelta {
            site: site_at(caller, "main.prune"),
            calls,
            removed,
            absent,
        }
    }

    #[test]
    fn absent_share_fires_and_resolves_on_exact_outcomes() {
        let mut e = evaluator("absent(caller) > 0.4 within 2s", Duration::ZERO, 0.01);
        let t0 = e.start;
        // Calls without measured outcomes (exits not armed): no value.
        e.sites(&[outcomes("users.go:42", 100, 0, 0)], t0);
        assert!(e.evaluate(t0).is_empty());
        e.sites(
            &[
                outcomes("users.go:42", 10, 5, 5),
                outcomes("other.go:7", 10, 10, 0),
            ],
            t0 + Duration::from_millis(500),
        );
        let fired = e.evaluate(t0 + Duration::from_millis(500));
        assert_eq!(fired.len(), 1, "{fired:?}");
        let n = &fired[0];
        assert_eq!(
            (n.state, n.group.1.as_str(), n.value, n.exact),
            (State::Firing, "users.go:42", 0.5, true)
        );
        assert_eq!(n.context, vec![("function", "main.prune".to_string())]);
        assert!(
            n.line().ends_with(
                "— 50% of the deletes measured in 2s were of absent keys (threshold 40%)"
            ),
            "{}",
            n.line()
        );
        // The window slides past them: no value, no change (still firing).
        assert!(e.evaluate(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(e.board.active().len(), 1);
        // A measured window under the threshold resolves it.
        e.sites(
            &[outcomes("users.go:42", 10, 7, 3)],
            t0 + Duration::from_secs(5),
        );
        let resolved = e.evaluate(t0 + Duration::from_secs(5));
        assert_eq!(resolved.len(), 1);
        assert_eq!(
            (resolved[0].state, resolved[0].value),
            (State::Resolved, 0.3)
        );
        assert!(e.board.active().is_empty());
    }

    #[test]
    fn absent_needs_its_min_of_measured_deletes() {
        let mut e = evaluator(
            r#"absent(map_type="main.UserMap") >= 50% within 5s min 10"#,
            Duration::ZERO,
            1.0,
        );
        let t0 = e.start;
        e.sites(&[outcomes("users.go:42", 1, 0, 1)], t0);
        assert!(e.evaluate(t0).is_empty(), "1 absent of 1: under min 10");
        let t1 = t0 + Duration::from_millis(500);
        e.sites(
            &[
                outcomes("users.go:42", 5, 3, 2),
                outcomes("b.go:1", 4, 2, 2),
            ],
            t1,
        );
        let fired = e.evaluate(t1);
        assert_eq!(fired.len(), 1);
        assert_eq!(
            (fired[0].group.1.as_str(), fired[0].value),
            ("main.UserMap", 0.5)
        );
        // Clears have no outcome and do not count.
        let mut clear = outcomes("c.go:1", 5, 0, 5);
        clear.site.clear = true;
        let mut e = evaluator("absent(caller) > 0 within 5s", Duration::ZERO, 1.0);
        e.sites(&[clear], t0);
        assert!(e.evaluate(t0).is_empty());
    }

    fn histogram(durations: &[(u64, u64)]) -> Histogram {
        let mut h = Histogram::default();
        for &(ns, n) in durations {
            for _ in 0..n {
                h.record(ns);
            }
        }
        h
    }

    fn latency(map_type: &str, clear: bool, durations: &[(u64, u64)]) -> LatencyDelta {
        let h = histogram(durations);
        LatencyDelta {
            map_type: map_type.into(),
            label_map_type: map_type.into(),
            clear,
            delta: h,
        }
    }

    #[test]
    fn quantiles_from_the_histograms_fire_and_resolve() {
        let mut e = evaluator("p99(map_type) > 1ms within 2s", Duration::ZERO, 0.01);
        let t0 = e.start;
        // 99 fast, 1 slow: the p99 (rank 99) is fast.
        e.latency(
            &[
                latency("main.Cache", false, &[(400, 99), (1_500_000, 1)]),
                // Clears are not this rule's.
                latency("main.Cache", true, &[(3_000_000, 10)]),
            ],
            t0,
        );
        assert!(e.evaluate(t0).is_empty());
        // 2 more slow: rank ⌈0.99·102⌉ = 101 is slow: its bucket is 1ms–2ms.
        let t1 = t0 + Duration::from_millis(500);
        e.latency(&[latency("main.Cache", false, &[(1_500_000, 2)])], t1);
        let fired = e.evaluate(t1);
        assert_eq!(fired.len(), 1, "{fired:?}");
        let n = &fired[0];
        assert_eq!(
            (n.group.clone(), n.value, n.exact),
            ((Dim::MapType, "main.Cache".to_string()), 2e6, true)
        );
        assert_eq!(n.value_text(), "1ms–2ms");
        assert!(
            n.line()
                .ends_with("— p99 of the deletes measured in 2s: 1ms–2ms (threshold 1ms)"),
            "{}",
            n.line()
        );
        // Out of the window, no value: still firing; fast calls resolve it.
        assert!(e.evaluate(t0 + Duration::from_secs(5)).is_empty());
        let t2 = t0 + Duration::from_secs(6);
        e.latency(&[latency("main.Cache", false, &[(400, 50)])], t2);
        let resolved = e.evaluate(t2);
        assert_eq!(resolved.len(), 1);
        assert_eq!(
            (resolved[0].state, resolved[0].value),
            (State::Resolved, 500.0)
        );
    }

    #[test]
    fn quantiles_of_clears_filters_min_and_overflow() {
        let mut e = evaluator(
            r#"p99(map_type="map[int64]int", op="clear") > 100us within 10s min 2"#,
            Duration::ZERO,
            1.0,
        );
        let t0 = e.start;
        e.latency(
            &[
                latency("map[int64]int", true, &[(3_000_000, 1)]),
                latency("map[string]int", true, &[(3_000_000, 5)]),
                latency("map[int64]int", false, &[(3_000_000, 5)]),
            ],
            t0,
        );
        assert!(e.evaluate(t0).is_empty(), "one clear: under min 2");
        let t1 = t0 + Duration::from_millis(500);
        e.latency(&[latency("map[int64]int", true, &[(50_000, 1)])], t1);
        let fired = e.evaluate(t1);
        assert_eq!(fired.len(), 1);
        assert_eq!(
            (fired[0].group.1.as_str(), fired[0].value),
            ("map[int64]int", 5e6)
        );

        // Past the last bound (1s): infinite, `>1s`, null in the JSON.
        let mut e = evaluator("p50(map_type) > 1s within 5s", Duration::ZERO, 1.0);
        e.latency(&[latency("main.Slow", false, &[(3_000_000_000, 3)])], t0);
        let fired = e.evaluate(t0);
        assert_eq!(fired.len(), 1);
        assert!(fired[0].value.is_infinite());
        assert_eq!(fired[0].value_text(), ">1s");
        assert_eq!(fired[0].to_json()["value"], serde_json::Value::Null);
    }

    #[test]
    fn quantile_ranks_are_exact() {
        // 1000 calls, 1 slow: p99.9 (rank 999) is fast, p100 (rank 1000) slow.
        let h = histogram(&[(100, 999), (2_000_000, 1)]);
        assert_eq!(h.quantile_bound(99_900), Some(100));
        assert_eq!(h.quantile_bound(100_000), Some(2_000_000));
        assert_eq!(h.quantile_bound(1), Some(100));
        let h = histogram(&[(100, 1), (2_000_000, 1)]);
        assert_eq!(h.quantile_bound(50_000), Some(100));
        assert_eq!(h.quantile_bound(50_001), Some(2_000_000));
    }

    #[test]
    fn top_stacks_of_absent_keys_and_slow_calls() {
        let frame = Frame::new("main.prune", "/src/users.go", 42, 0x2000, false);
        let rec = |removed: bool, ns: u64, clear: bool| {
            let mut ev = crate::events::testing::delete(
                0xaaa,
                KeyValue::Int(1),
                std::slice::from_ref(&frame),
            );
            ev.map_type = "main.UserMap".into();
            if clear {
                ev.kind = Role::Clear;
            }
            ev.outcome = Some(Outcome {
                duration_ns: ns,
                removed: (!clear).then_some(removed),
            });
            ev
        };
        let mut e = evaluator("absent(caller) > 0.4 within 5s", Duration::ZERO, 1.0);
        let t0 = e.start;
        for i in 0..10 {
            e.event(&rec(i % 2 == 0, 300, false), t0);
        }
        e.event(&rec(false, 300, true), t0);
        e.sites(&[outcomes("users.go:42", 10, 5, 5)], t0);
        let fired = e.evaluate(t0);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].top_stacks.len(), 1);
        assert_eq!(fired[0].top_stacks[0].count, 5, "the absent keys' deletes");

        let mut e = evaluator(
            r#"p99(map_type, op="clear") > 100us within 5s"#,
            Duration::ZERO,
            1.0,
        );
        for _ in 0..3 {
            e.event(&rec(false, 300, true), t0);
        }
        e.event(&rec(false, 3_000_000, true), t0);
        e.event(&rec(false, 3_000_000, false), t0);
        e.latency(
            &[latency("main.UserMap", true, &[(300, 3), (3_000_000, 1)])],
            t0,
        );
        // Rank ⌈0.99·4⌉ = 4: the slow clear's bucket (2ms–5ms).
        let fired = e.evaluate(t0);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].value, 5e6);
        assert_eq!(fired[0].top_stacks.len(), 1);
        assert_eq!(fired[0].top_stacks[0].count, 1, "the slow clear only");
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;
    use crate::events::mapmem::MapSize;
    use crate::monitor::alerts::rule::parse;

    fn size(len: u64, cap: u64, bytes: u64) -> MapSize {
        crate::events::mapmem::swiss_size(len, cap, bytes, 7)
    }

    #[test]
    fn a_bloated_map_fires_and_resolves_when_it_fills_or_goes() {
        let board = AlertBoard::new();
        let rule = parse("fill(map) < 5% and bytes(map) > 1MiB").unwrap();
        let mut e = Evaluator::new(vec![rule], Duration::ZERO, 0.01, board.clone(), 1);
        let t0 = Instant::now();
        let ty: Arc<str> = "map[int64]int64".into();
        let big_empty = (0xc000, ty.clone(), size(10, 131_072, 4 << 20));
        let small_empty = (0xd000, ty.clone(), size(0, 8, 200));
        e.maps(&[big_empty.clone(), small_empty.clone()], t0);
        let n = e.evaluate(t0);
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(n[0].state, State::Firing);
        assert_eq!(n[0].group.1, "0xc000");
        assert_eq!(
            n[0].context,
            vec![("map_type", "map[int64]int64".to_string())]
        );
        assert!(n[0].exact, "memory is read, not estimated from records");
        assert!((n[0].value - 10.0 / 131_072.0).abs() < 1e-12);
        assert!(n[0].line().contains("fill 0%"), "{}", n[0].line());
        // Still bloated: no repeat.
        let t1 = t0 + Duration::from_secs(1);
        e.maps(std::slice::from_ref(&big_empty), t1);
        assert!(e.evaluate(t1).is_empty());
        // Filled up again: resolved.
        let t2 = t1 + Duration::from_secs(1);
        e.maps(&[(0xc000, ty.clone(), size(100_000, 131_072, 4 << 20))], t2);
        let n = e.evaluate(t2);
        assert_eq!((n.len(), n[0].state), (1, State::Resolved));
        // Bloated again, then gone: resolved as well.
        let t3 = t2 + Duration::from_secs(1);
        e.maps(&[big_empty], t3);
        assert_eq!(e.evaluate(t3)[0].state, State::Firing);
        let t4 = t3 + Duration::from_secs(1);
        e.maps(&[], t4);
        assert_eq!(e.evaluate(t4)[0].state, State::Resolved);
    }

    fn fatal(message: &str) -> Fatal {
        let stack = Stack::from_frames(vec![
            Frame::new(
                "runtime.fatal",
                "/go/src/runtime/panic.go",
                1100,
                0x1000,
                false,
            ),
            Frame::new("main.writer", "/src/main.go", 40, 0x2000, false),
        ]);
        Fatal {
            ts_ns: 0,
            pid: 1,
            tid: 7,
            goid: Some(19),
            message: message.into(),
            labels: None,
            stack,
            caller: Some(1),
            map: None,
            running: Default::default(),
            recent: Default::default(),
            also: Vec::new(),
            also_dropped: 0,
            stack_truncated: false,
        }
    }

    #[test]
    fn a_fatal_rule_fires_once_on_the_fatal_error_and_never_resolves() {
        let rules = [
            "fatal(message)",
            r#"fatal(message="concurrent map writes")"#,
            r#"fatal(message="concurrent map read and map write")"#,
            "count(map) > 0 within 1m",
        ];
        let rules = rules.iter().map(|r| parse(r).unwrap()).collect();
        let mut e = Evaluator::new(rules, Duration::ZERO, 0.01, AlertBoard::new(), 1);
        let t0 = Instant::now();
        assert!(e.evaluate(t0).is_empty());
        e.fatal(&fatal("concurrent map writes"));
        let n = e.evaluate(t0 + Duration::from_millis(1));
        let texts: Vec<&str> = n.iter().map(|n| n.rule.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "fatal(message)",
                r#"fatal(message="concurrent map writes")"#
            ]
        );
        let j = n[0].to_json();
        assert_eq!(j["type"], "alert");
        assert_eq!(j["group"]["message"], "concurrent map writes");
        assert_eq!(j["group"]["goroutine"], "19");
        assert_eq!(j["group"]["tid"], "7");
        assert_eq!(j["group"]["caller"], "main.go:40");
        assert_eq!(
            (j["value"].clone(), j["unit"].clone()),
            (1.into(), "fatal errors".into())
        );
        assert_eq!(
            (j["window"].is_null(), j["exact"].clone()),
            (true, true.into())
        );
        assert_eq!(j["top_stacks"][0]["caller"], "main.writer /src/main.go:40");
        assert_eq!(
            j["top_stacks"][0]["frames"][1],
            "main.writer /src/main.go:40"
        );
        assert_eq!(
            n[0].line(),
            "ALERT fatal(message): message=concurrent map writes (goroutine=19, tid=7, caller=main.go:40) — the target died of a fatal error"
        );
        // Fired once: nothing more, and no resolution, however long after.
        assert!(e.evaluate(t0 + Duration::from_secs(120)).is_empty());
    }

    #[test]
    fn a_map_type_rule_sums_its_maps() {
        let rule = parse(r#"bytes(map_type="main.Cache") > 1MiB"#).unwrap();
        let mut e = Evaluator::new(vec![rule], Duration::ZERO, 1.0, AlertBoard::new(), 1);
        let t0 = Instant::now();
        let cache: Arc<str> = "main.Cache".into();
        let other: Arc<str> = "main.Other".into();
        e.maps(
            &[
                (1, cache.clone(), size(1, 8, 600 << 10)),
                (2, other.clone(), size(1, 8, 4 << 20)),
            ],
            t0,
        );
        assert!(e.evaluate(t0).is_empty(), "600KiB of main.Cache");
        let t1 = t0 + Duration::from_secs(1);
        e.maps(
            &[
                (1, cache.clone(), size(1, 8, 600 << 10)),
                (3, cache.clone(), size(1, 8, 600 << 10)),
            ],
            t1,
        );
        let n = e.evaluate(t1);
        assert_eq!(n.len(), 1);
        assert_eq!(
            (n[0].group.1.as_str(), n[0].value),
            ("main.Cache", 1_228_800.0)
        );
        assert_eq!(n[0].value_text(), "1.2MiB");
    }
}
