//! The alerts in the UI: the banner while an alert fires and the Alerts
//! view (every alert and resolution, newest first). The [`AlertBoard`] is
//! read on every frame into the UI's own copy ([`Alerts`]); the rest is
//! pure formatting, sorting and filtering, drawn by `view.rs`.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::state::{clock, group, Column, Detail, Filter, Sort};
use crate::monitor::alerts::rule::{Func, Measure};
use crate::monitor::alerts::{AlertBoard, Notice, State};

/// Alerts and resolutions the view keeps (the newest).
pub const MAX_ALERTS: usize = 1000;
/// Frames of the top stack shown in the detail.
const DETAIL_FRAMES: usize = 12;

/// What the UI knows of the alerts: copied from the board on every frame.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    /// Alert rules are set (there is a board to read).
    pub enabled: bool,
    /// The board's cursor: notices before it are in `log` (or dropped).
    cursor: usize,
    /// Notices seen, oldest first, each with its position on the board.
    log: VecDeque<(u64, Arc<Notice>)>,
    /// Firing now, oldest first.
    pub active: Vec<Arc<Notice>>,
}

/// One row of the Alerts view.
#[derive(Debug, Clone)]
pub struct AlertLine {
    /// Position on the board (the row's identity).
    pub seq: u64,
    pub notice: Arc<Notice>,
    /// An alert that still fires (not resolved since).
    pub firing: bool,
}

/// Wall clock in ns since the epoch.
pub fn ts_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The rule's name (from a rules file), else the rule as written.
pub fn rule_label(n: &Notice) -> &str {
    n.rule.name.as_deref().unwrap_or(&n.rule.text)
}

/// `map 0xc000012345`: the grouping dimension and the group.
fn group_label(n: &Notice) -> String {
    format!("{} {}", n.group.0.name(), n.group.1)
}

/// The group (its dimension is in the rule) and what else is known of
/// it: `0xc000012345 · main.UserMap`.
pub fn group_text(n: &Notice) -> String {
    let mut s = n.group.1.clone();
    for (_, v) in &n.context {
        s.push_str(" · ");
        s.push_str(v);
    }
    s
}

/// `150` (deletes in the window) or `1,250/s`; `~` when estimated from
/// sampled records.
pub fn value_text(n: &Notice) -> String {
    let mut s = match n.rule.measure {
        Measure::Deletes => {
            let mut s = num(n.value);
            if n.rule.func == Func::Rate {
                s.push_str("/s");
            }
            s
        }
        // A share or a latency: the rule's own words (`50%`, `5ms–10ms`).
        _ => n.value_text(),
    };
    if !n.exact {
        s.insert(0, '~');
    }
    s
}

/// A number: integers grouped (`1,250`), else one decimal.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && (0.0..9e15).contains(&v) {
        group(v as u64)
    } else {
        format!("{v:.1}")
    }
}

/// The banner for the alerts firing now, at most `width` columns; None
/// when none fires. The newest alert, with its group's context when there
/// is room, and how many more fire.
pub fn banner(active: &[Arc<Notice>], width: usize) -> Option<String> {
    let n = active.last()?;
    let more = match active.len() - 1 {
        0 => String::new(),
        k => format!(" (+{k} more)"),
    };
    let head = format!("ALERT: {} — {}", rule_label(n), group_label(n));
    let ctx: Vec<&str> = n.context.iter().map(|(_, v)| v.as_str()).collect();
    let ctx = if ctx.is_empty() {
        String::new()
    } else {
        format!(" ({})", ctx.join(", "))
    };
    let value = format!(" = {}", value_text(n));
    let fits = |s: &String| s.chars().count() + 2 <= width;
    let candidates = [
        format!(" {head}{ctx}{value}{more} "),
        format!(" {head}{value}{more} "),
        format!(" {head}{value} "),
    ];
    if let Some(s) = candidates.iter().find(|s| fits(s)) {
        return Some(s.clone());
    }
    // Cut the end off, with an ellipsis.
    let s = &candidates[2];
    let keep = width.saturating_sub(1);
    Some(s.chars().take(keep).chain(std::iter::once('…')).collect())
}

impl Alerts {
    pub fn new(enabled: bool) -> Self {
        Alerts {
            enabled,
            ..Alerts::default()
        }
    }

    /// Takes in what the board has posted since last time.
    pub fn update(&mut self, board: &AlertBoard) {
        let (new, end) = board.since(self.cursor);
        let first = end.saturating_sub(new.len());
        for (i, n) in new.into_iter().enumerate() {
            self.log.push_back(((first + i) as u64, n));
        }
        while self.log.len() > MAX_ALERTS {
            self.log.pop_front();
        }
        self.cursor = end;
        self.active = board.active();
    }

    /// Alerts and resolutions seen (kept).
    pub fn len(&self) -> usize {
        self.log.len()
    }

    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    fn is_active(&self, n: &Arc<Notice>) -> bool {
        self.active.iter().any(|a| Arc::ptr_eq(a, n))
    }

    /// The rows that match `filter`, unsorted; and how many there are in all.
    pub fn lines(&self, filter: &Filter) -> (Vec<AlertLine>, usize) {
        let lines = self
            .log
            .iter()
            .filter(|(_, n)| {
                filter.is_empty()
                    || filter.matches(&n.rule.text)
                    || n.rule.name.as_deref().is_some_and(|s| filter.matches(s))
                    || filter.matches(&group_label(n))
                    || n.context.iter().any(|(_, v)| filter.matches(v))
                    || n.top_stacks.iter().any(|t| filter.matches(&t.caller))
            })
            .map(|(seq, n)| AlertLine {
                seq: *seq,
                notice: n.clone(),
                firing: n.state == State::Firing && self.is_active(n),
            })
            .collect();
        (lines, self.log.len())
    }

    /// The detail of the notice at `seq`.
    pub fn detail(&self, seq: u64) -> Option<Detail> {
        let (_, n) = self.log.iter().find(|(s, _)| *s == seq)?;
        let firing = n.state == State::Firing && self.is_active(n);
        let r = &n.rule;
        let mut facts = vec![("rule".to_string(), r.text.clone())];
        if let Some(name) = &r.name {
            facts.push(("name".into(), name.clone()));
        }
        let fired = clock(ts_ns(n.fired_at));
        let state = match n.state {
            State::Firing if firing => format!("firing since {fired}"),
            State::Firing => format!("fired at {fired} (resolved since)"),
            State::Resolved => format!("resolved at {} (fired at {fired})", clock(ts_ns(n.ts))),
        };
        facts.push(("state".into(), state));
        let mut g = group_label(n);
        for (k, v) in &n.context {
            g.push_str(&format!(" · {k} {v}"));
        }
        facts.push(("group".into(), g));
        let (value, unit, threshold) = match (r.measure, r.func) {
            (Measure::Deletes, Func::Count) => (
                num(n.value),
                format!("deletes in {}", r.window_text()),
                num(r.threshold),
            ),
            (Measure::Deletes, Func::Rate) => (
                num(n.value),
                format!("deletes/s over {}", r.window_text()),
                num(r.threshold),
            ),
            _ => (n.value_text(), r.measure_text(), r.threshold_text()),
        };
        let how = if n.exact {
            "exact".to_string()
        } else {
            format!("estimated from records at --sample {}", n.sample_rate)
        };
        // A memory rule's threshold text has its operators already.
        let op = match r.measure {
            Measure::Memory(_) => String::new(),
            _ => format!("{} ", r.op.symbol()),
        };
        let value = match r.measure {
            Measure::Fatal => r.measure_text(),
            _ => format!("{value} {unit} (threshold {op}{threshold}) · {how}"),
        };
        facts.push(("value".into(), value));
        for t in &n.top_stacks {
            facts.push(("top".into(), format!("{}× {}", group(t.count), t.caller)));
        }
        if let Some(t) = n.top_stacks.first() {
            for f in t.frames.iter().take(DETAIL_FRAMES) {
                facts.push((String::new(), format!("  {f}")));
            }
            if t.frames.len() > DETAIL_FRAMES {
                facts.push((
                    String::new(),
                    format!("  ⋮ {} more frames", t.frames.len() - DETAIL_FRAMES),
                ));
            }
        }
        Some(Detail {
            title: format!(
                "{} {}",
                match n.state {
                    State::Firing => "ALERT",
                    State::Resolved => "RESOLVED",
                },
                rule_label(n)
            ),
            facts,
            history: Vec::new(),
            keys: Vec::new(),
            outcomes: None,
            stack: None,
            caller: None,
        })
    }
}

impl AlertLine {
    /// `firing` (still), `fired` (resolved since) or `resolved`.
    pub fn state_text(&self) -> &'static str {
        match (self.notice.state, self.firing) {
            (State::Firing, true) => "firing",
            (State::Firing, false) => "fired",
            (State::Resolved, _) => "resolved",
        }
    }
}

pub fn sort_alerts(lines: &mut [AlertLine], sort: Sort) {
    lines.sort_by(|a, b| {
        let (x, y) = (&a.notice, &b.notice);
        let natural = match sort.column {
            Column::State => a.state_text().cmp(b.state_text()),
            Column::Rule => rule_label(x).cmp(rule_label(y)),
            Column::Group => group_text(x).cmp(&group_text(y)),
            Column::Value => x.value.partial_cmp(&y.value).unwrap_or(Ordering::Equal),
            _ => a.seq.cmp(&b.seq),
        };
        sort.order(natural).then_with(|| b.seq.cmp(&a.seq))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::alerts::{rule, Dim};

    fn notice(state: State, rule: &Arc<rule::Rule>, map: &str, value: f64) -> Arc<Notice> {
        Arc::new(Notice {
            state,
            ts: UNIX_EPOCH,
            rule: rule.clone(),
            group: (Dim::Map, map.into()),
            context: vec![("map_type", "main.UserMap".into())],
            value,
            exact: true,
            sample_rate: 1.0,
            fired_at: UNIX_EPOCH,
            top_stacks: vec![],
            pid: 7,
        })
    }

    #[test]
    fn banner_fits_the_width_dropping_the_context_first() {
        let r = Arc::new(rule::parse("count(map) > 100 within 5m").unwrap());
        let a = [notice(State::Firing, &r, "0xc000012345", 150.0)];
        assert_eq!(banner(&[], 80), None);
        let full = " ALERT: count(map) > 100 within 5m — map 0xc000012345 (main.UserMap) = 150 ";
        assert_eq!(banner(&a, 200).as_deref(), Some(full));
        let short = " ALERT: count(map) > 100 within 5m — map 0xc000012345 = 150 ";
        assert_eq!(banner(&a, 70).as_deref(), Some(short));
        let cut = banner(&a, 30).unwrap();
        assert_eq!(cut.chars().count(), 30);
        assert!(cut.ends_with('…') && cut.starts_with(" ALERT: count(map)"));
        assert_eq!(banner(&a, 0).as_deref(), Some("…"));
    }

    #[test]
    fn values_count_rate_and_estimates() {
        let r = Arc::new(rule::parse("rate(map) > 1000/s within 30s").unwrap());
        let mut n = (*notice(State::Firing, &r, "0x1", 1250.0)).clone();
        assert_eq!(value_text(&n), "1,250/s");
        n.value = 12.25;
        n.exact = false;
        assert_eq!(value_text(&n), "~12.2/s");
    }

    #[test]
    fn shares_and_latencies_are_written_as_such() {
        let r = Arc::new(rule::parse("absent(caller) > 0.4 within 10s").unwrap());
        let n = notice(State::Firing, &r, "x.go:1", 0.5);
        assert_eq!(value_text(&n), "50%");
        let board = AlertBoard::new();
        let mut a = Alerts::new(true);
        board.post(n);
        a.update(&board);
        let (lines, _) = a.lines(&Filter::default());
        let facts = a.detail(lines[0].seq).unwrap().facts;
        let value = &facts.iter().find(|(k, _)| k == "value").unwrap().1;
        assert!(
            value.starts_with(
                "50% of the deletes measured in 10s were of absent keys (threshold > 40%)"
            ),
            "{value}"
        );
        let r = Arc::new(rule::parse("p99(map_type) > 1ms within 1m").unwrap());
        let n = notice(State::Firing, &r, "main.UserMap", 2e6);
        assert!(value_text(&n).contains("2ms"), "{}", value_text(&n));
    }

    #[test]
    fn the_log_follows_the_board_and_marks_what_still_fires() {
        let r = Arc::new(rule::parse("count(map) > 100 within 5m").unwrap());
        let board = AlertBoard::new();
        let mut a = Alerts::new(true);
        a.update(&board);
        assert!(a.is_empty() && a.active.is_empty());
        board.post(notice(State::Firing, &r, "0x1", 150.0));
        board.post(notice(State::Firing, &r, "0x2", 120.0));
        a.update(&board);
        board.post(notice(State::Resolved, &r, "0x1", 50.0));
        a.update(&board);
        a.update(&board);
        assert_eq!(a.len(), 3);
        assert_eq!(a.active.len(), 1);
        let (lines, all) = a.lines(&Filter::new(""));
        assert_eq!(all, 3);
        let states: Vec<(u64, &str)> = lines.iter().map(|l| (l.seq, l.state_text())).collect();
        assert_eq!(states, [(0, "fired"), (1, "firing"), (2, "resolved")]);
        let (lines, _) = a.lines(&Filter::new("0x2"));
        assert_eq!(lines.len(), 1);
        let d = a.detail(2).unwrap();
        assert!(d.title.starts_with("RESOLVED"), "{}", d.title);
        assert!(a.detail(9).is_none());
    }
}
