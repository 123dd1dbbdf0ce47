//! Rules evaluated over sliding windows.
//!
//! Counts go into 250 ms slots per (rule, group); a rule's value is the
//! sum of the slots inside its window. Rules that group and filter only by
//! `map_type` and `caller` are fed the exact kernel counts (per call site,
//! every observation); rules on `map` or `key` are fed the delete records
//! (with `--sample` below 1: scaled by 1/rate, and marked not exact).
//!
//! A group fires once when its value crosses the threshold, then stays
//! firing (no repeats) until the value falls back: a `resolved` notice.
//! With a cooldown, a group that fired does not fire again before the
//! cooldown has passed since it last fired.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::rule::{parse_address, Func};
use super::{AlertBoard, Dim, Notice, Rule, State, TopStack};
use crate::events::{is_runtime_internal, Event, Frame, KeyValue, Role, Stack};
use crate::monitor::sites::Site;

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

struct Group {
    /// (slot, count), oldest first.
    slots: VecDeque<(u64, u64)>,
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
    map: u64,
    map_type: Arc<str>,
    key: String,
    caller: Option<Frame>,
    stack: Stack,
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
}

/// The key as a plain string: strings as is, integers in decimal, other
/// keys as hex (as in the JSON records).
pub fn key_text(k: &KeyValue) -> String {
    match k {
        KeyValue::Int(v) => v.to_string(),
        KeyValue::Uint(v) => v.to_string(),
        KeyValue::Pointer(v) => format!("{v:#x}"),
        KeyValue::Str(s) | KeyValue::Redacted(s) => s.clone(),
        KeyValue::Bytes(b) => crate::events::key::hex(b),
        KeyValue::None => "-".into(),
    }
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
        }
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|r| &*r.rule)
    }

    pub fn set_lost(&mut self, lost: bool) {
        self.lost |= lost;
    }

    /// A delete record (record-based rules; top stacks for every rule).
    pub fn event(&mut self, ev: &Event, now: Instant) {
        if ev.kind != Role::Delete {
            return;
        }
        let caller = ev.caller_frame().cloned();
        let recent = Recent {
            at: now,
            map: ev.map,
            map_type: ev.map_type.clone(),
            key: key_text(&ev.key),
            caller,
            stack: ev.stack.clone(),
        };
        let start = self.start;
        for rs in &mut self.rules {
            let slot = slot_at(start, &rs.rule, now);
            if rs.rule.exact() || !record_matches(&rs.rule, &recent) {
                continue;
            }
            let (value, context) = match rs.rule.group {
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
            };
            add(rs, value, context, slot, 1, &mut self.groups_dropped);
        }
        self.recent.push_back(recent);
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    /// Exact increments per call site since the last observation.
    pub fn sites(&mut self, deltas: &[(Site, u64)], now: Instant) {
        let start = self.start;
        for rs in &mut self.rules {
            let slot = slot_at(start, &rs.rule, now);
            if !rs.rule.exact() {
                continue;
            }
            for (site, delta) in deltas {
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
                add(rs, value, context, slot, *delta, &mut self.groups_dropped);
            }
        }
    }

    /// Fires and resolves; returns the new notices (also posted to the board).
    pub fn evaluate(&mut self, now: Instant) -> Vec<Arc<Notice>> {
        let mut out = Vec::new();
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
                while g.slots.front().is_some_and(|&(s, _)| s < first) {
                    g.slots.pop_front();
                }
                let count: u64 = g.slots.iter().map(|&(_, c)| c).sum();
                let mut value = count as f64;
                if !rule.exact() {
                    value *= scale;
                }
                if rule.func == Func::Rate {
                    value /= rule.window.as_secs_f64();
                }
                let above = rule.op.holds(value, rule.threshold);
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
                let top_stacks = self.top_stacks(&rule, &group, now);
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
            group: (rule.group, group),
            context,
            value,
            exact,
            sample_rate: self.sample_rate,
            fired_at,
            top_stacks,
            pid: self.pid,
        })
    }

    /// The most frequent stacks of the group's records in the window.
    fn top_stacks(&self, rule: &Rule, group: &str, now: Instant) -> Vec<TopStack> {
        let mut counts: HashMap<Vec<String>, (u64, String)> = HashMap::new();
        for r in self.recent.iter().rev() {
            if now.saturating_duration_since(r.at) > rule.window {
                break;
            }
            if !record_matches(rule, r) || !in_group(rule.group, group, r) {
                continue;
            }
            let frames: Vec<String> = r
                .stack
                .iter()
                .skip_while(|f| is_runtime_internal(&f.func))
                .take(32)
                .map(|f| {
                    if f.is_named() {
                        format!("{} {}:{}", f.func, f.file, f.line)
                    } else {
                        f.func.to_string()
                    }
                })
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

fn add(
    rs: &mut RuleState,
    value: String,
    context: Vec<(&'static str, String)>,
    slot: u64,
    n: u64,
    dropped: &mut u64,
) {
    let full = rs.groups.len() >= MAX_GROUPS;
    let g = match rs.groups.get_mut(&value) {
        Some(g) => g,
        None if full => {
            *dropped += n;
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
        Some((s, c)) if *s == slot => *c += n,
        _ => g.slots.push_back((slot, n)),
    }
}

fn record_matches(rule: &Rule, r: &Recent) -> bool {
    rule.filters.iter().all(|(dim, want)| match dim {
        Dim::Map => parse_address(want) == Some(r.map),
        Dim::MapType => *r.map_type == **want,
        Dim::Key => r.key == *want,
        Dim::Caller => r.caller.as_ref().is_some_and(|f| {
            caller_matches(
                want,
                &frame_label(f),
                &f.func,
                &format!("{}:{}", f.file, f.line),
            )
        }),
    })
}

fn in_group(dim: Dim, group: &str, r: &Recent) -> bool {
    match dim {
        Dim::Map => parse_address(group) == Some(r.map),
        Dim::MapType => *r.map_type == *group,
        Dim::Key => r.key == group,
        Dim::Caller => r
            .caller
            .as_ref()
            .map_or(group == "unknown", |f| frame_label(f) == group),
    }
}

fn site_matches(rule: &Rule, s: &Site) -> bool {
    rule.filters.iter().all(|(dim, want)| match dim {
        Dim::MapType => *s.map_type == **want,
        Dim::Caller => caller_matches(want, &s.caller, &s.caller_func, &s.caller_path),
        Dim::Map | Dim::Key => false,
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
        };
        let t0 = e.start;
        e.sites(&[(site(false), 60), (site(true), 500)], t0);
        assert!(e.evaluate(t0).is_empty(), "clears don't count");
        e.sites(&[(site(false), 41)], t0 + Duration::from_millis(500));
        let fired = e.evaluate(t0 + Duration::from_millis(500));
        assert_eq!(fired.len(), 1);
        assert_eq!(
            (fired[0].group.1.as_str(), fired[0].value, fired[0].exact),
            ("users.go:42", 101.0, true)
        );
    }
}
