//! Threshold alerts while tracing: rules ([`rule`]), their evaluation over
//! sliding windows ([`eval`]), delivery to a webhook or a command off the
//! event path ([`deliver`]), rules files ([`file`]), and the shared
//! [`AlertBoard`] that the JSON stream and the TUI read.
//!
//! One alert JSON object ([`Notice::to_json`]) is what every channel gets:
//! the JSON stream (`"type":"alert"` / `"resolved"`), the webhook body
//! (unless `--webhook-format slack`), and `--alert-exec`'s standard input.

pub mod deliver;
pub mod eval;
pub mod file;
pub mod rule;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{json, Value};

pub use self::rule::{Dim, Measure, Rule};

/// Firing, or back under the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Firing,
    Resolved,
}

/// The most frequent stacks of an alerting group, from recent records.
#[derive(Debug, Clone, Serialize)]
pub struct TopStack {
    /// Records with this stack in the window (not scaled by sampling).
    pub count: u64,
    /// `function file:line` of the caller.
    pub caller: String,
    /// `function file:line`, innermost first, without the runtime's frames.
    pub frames: Vec<String>,
}

/// One alert (or its resolution) of one rule for one group.
#[derive(Debug, Clone)]
pub struct Notice {
    pub state: State,
    pub ts: SystemTime,
    pub rule: Arc<Rule>,
    /// The grouping dimension and the group's value (`map`, `0xc000012345`).
    pub group: (Dim, String),
    /// What else is known of the group (the map type of a map address, ...).
    pub context: Vec<(&'static str, String)>,
    /// Deletes in the window (count), deletes per second (rate), the share
    /// of measured deletes of absent keys (absent, 0 to 1), or the upper
    /// bound in ns of the latency bucket holding the quantile (pNN;
    /// infinite past the last bound); when resolved, the value that
    /// resolved it. [`Notice::value_text`] says it for people.
    pub value: f64,
    /// Counted in the kernel (exact), or from records (then scaled by
    /// 1/sample rate, and short of lost records).
    pub exact: bool,
    pub sample_rate: f64,
    /// When it fired (for a resolution: when the alert it ends fired).
    pub fired_at: SystemTime,
    pub top_stacks: Vec<TopStack>,
    /// The traced process.
    pub pid: i32,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A number as JSON: integers without a fraction.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        json!(v as i64)
    } else {
        json!((v * 1000.0).round() / 1000.0)
    }
}

/// A rule's value or threshold as JSON, in the rule's unit: shares with 6
/// decimals, a quantile past the last bucket bound as null.
fn value_json(rule: &Rule, v: f64) -> Value {
    match rule.measure {
        Measure::Absent => json!((v * 1e6).round() / 1e6),
        Measure::Memory(m) if m.first().gauge == super::alerts::rule::Gauge::Fill => {
            json!((v * 1e6).round() / 1e6)
        }
        Measure::Quantile(_) if !v.is_finite() => Value::Null,
        _ => number(v),
    }
}

impl Notice {
    /// `"alert"` or `"resolved"`: the record type in the JSON stream.
    pub fn record_type(&self) -> &'static str {
        match self.state {
            State::Firing => "alert",
            State::Resolved => "resolved",
        }
    }

    /// The alert as one JSON object (stream record, webhook body, exec input).
    pub fn to_json(&self) -> Value {
        let r = &self.rule;
        let windowless = r.windowless();
        let mut group = serde_json::Map::new();
        group.insert(self.group.0.name().into(), self.group.1.clone().into());
        for (k, v) in &self.context {
            group.insert((*k).into(), v.clone().into());
        }
        json!({
            "type": self.record_type(),
            "state": self.state,
            "ts": rfc3339(self.ts),
            "rule": r.text,
            "name": r.name,
            "group": group,
            "value": value_json(r, self.value),
            "threshold": value_json(r, r.threshold),
            "unit": r.unit(),
            "value_text": self.value_text(),
            "threshold_text": r.threshold_text(),
            // A memory rule reads the maps as they are, a fatal rule fires
            // on the fatal error: no window.
            "window": (!windowless).then(|| r.window_text()),
            "window_seconds": (!windowless).then(|| r.window.as_secs_f64()),
            "exact": self.exact,
            "sample_rate": self.sample_rate,
            "fired_at": rfc3339(self.fired_at),
            "pid": self.pid,
            "top_stacks": self.top_stacks,
        })
    }

    /// The value for people: `150`, `12.5/s`, `50%` (absent), `2ms–5ms`
    /// (the latency bucket holding the quantile; `>1s` past the last).
    pub fn value_text(&self) -> String {
        self.rule.value_text(self.value)
    }

    /// One human line: `ALERT count(map) > 100 within 5m: map=0xc0... (map_type=main.UserMap) — 150 deletes in 5m (threshold 100)`;
    /// `— 50% of the deletes measured in 1m were of absent keys (threshold 40%)`;
    /// `— p99 of the clears measured in 1m: 2ms–5ms (threshold 100µs)`.
    pub fn line(&self) -> String {
        let ctx: Vec<String> = self
            .context
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let r = &self.rule;
        let (value, threshold) = match r.measure {
            Measure::Deletes => (
                format!("{} {}", number(self.value), r.measure_text()),
                number(r.threshold).to_string(),
            ),
            Measure::Absent => (
                format!("{} {}", self.value_text(), r.measure_text()),
                r.threshold_text(),
            ),
            Measure::Quantile(_) => (
                format!("{}: {}", r.measure_text(), self.value_text()),
                r.threshold_text(),
            ),
            Measure::Memory(m) => (
                format!("{} {}", m.first().gauge.name(), self.value_text()),
                r.threshold_text(),
            ),
            Measure::Fatal => (r.measure_text(), String::new()),
        };
        let threshold = if threshold.is_empty() {
            threshold
        } else {
            format!(" (threshold {threshold})")
        };
        format!(
            "{} {}: {}={}{} — {value}{threshold}{}",
            match self.state {
                State::Firing => "ALERT",
                State::Resolved => "RESOLVED",
            },
            self.rule.name.as_deref().unwrap_or(&self.rule.text),
            self.group.0.name(),
            self.group.1,
            if ctx.is_empty() {
                String::new()
            } else {
                format!(" ({})", ctx.join(", "))
            },
            if self.exact {
                String::new()
            } else {
                format!(" [estimated from records at --sample {}]", self.sample_rate)
            }
        )
    }

    /// A Slack-compatible incoming-webhook body: `{"text": ...}`.
    pub fn slack(&self) -> Value {
        let mut text = format!("*mdt {}* (pid {})", self.line(), self.pid);
        if self.state == State::Firing {
            if let Some(top) = self.top_stacks.first() {
                text.push_str(&format!("\nTop stack ({} records):\n```", top.count));
                for f in top.frames.iter().take(10) {
                    text.push('\n');
                    text.push_str(f);
                }
                text.push_str("\n```");
            }
        }
        json!({ "text": text })
    }
}

/// What happened to alerts: shared by the evaluator, the delivery worker,
/// the JSON stream and the TUI.
#[derive(Debug, Default)]
pub struct AlertBoard {
    inner: Mutex<BoardInner>,
    pub fired: AtomicU64,
    pub resolved: AtomicU64,
    /// Deliveries that succeeded / failed for good (after retries).
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    /// Deletes not counted for a rule because it tracked as many groups
    /// (maps, keys, ...) as it may already (see `eval::MAX_GROUPS`).
    pub groups_dropped: AtomicU64,
    /// Notices posted so far (a reader's cursor is up to date when equal).
    posted: AtomicUsize,
}

#[derive(Debug, Default)]
struct BoardInner {
    /// Every notice, oldest first (the first `dropped` are gone).
    log: Vec<Arc<Notice>>,
    dropped: usize,
    /// Firing now.
    active: Vec<Arc<Notice>>,
    /// The newest delivery failures, one line each.
    failures: Vec<String>,
}

/// Notices kept for readers that fell behind.
const LOG_CAP: usize = 1024;

impl AlertBoard {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoardInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn post(&self, n: Arc<Notice>) {
        match n.state {
            State::Firing => self.fired.fetch_add(1, Ordering::Relaxed),
            State::Resolved => self.resolved.fetch_add(1, Ordering::Relaxed),
        };
        let mut g = self.lock();
        let same = |a: &Notice| Arc::ptr_eq(&a.rule, &n.rule) && a.group == n.group;
        g.active.retain(|a| !same(a));
        if n.state == State::Firing {
            g.active.push(n.clone());
        }
        g.log.push(n);
        self.posted.fetch_add(1, Ordering::Release);
        if g.log.len() > LOG_CAP {
            let extra = g.log.len() - LOG_CAP;
            g.log.drain(..extra);
            g.dropped += extra;
        }
    }

    /// Notices after `cursor` (0 at first) and the cursor for next time.
    pub fn since(&self, cursor: usize) -> (Vec<Arc<Notice>>, usize) {
        // The common case, once per record of the JSON stream: nothing new.
        if self.posted.load(Ordering::Acquire) == cursor {
            return (Vec::new(), cursor);
        }
        let g = self.lock();
        let end = g.dropped + g.log.len();
        let from = cursor.max(g.dropped) - g.dropped;
        (g.log[from.min(g.log.len())..].to_vec(), end)
    }

    /// Alerts firing now, oldest first (for a banner / an Alerts list).
    pub fn active(&self) -> Vec<Arc<Notice>> {
        self.lock().active.clone()
    }

    pub fn note_failure(&self, line: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut g = self.lock();
        g.failures.push(line);
        if g.failures.len() > 100 {
            g.failures.remove(0);
        }
    }

    /// The newest delivery failures, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.lock().failures.clone()
    }

    /// For the JSON summary.
    fn summary_json(&self) -> Value {
        json!({
            "fired": self.fired.load(Ordering::Relaxed),
            "resolved": self.resolved.load(Ordering::Relaxed),
            "firing": self.lock().active.len(),
            "delivered": self.delivered.load(Ordering::Relaxed),
            "delivery_failures": self.failed.load(Ordering::Relaxed),
            "groups_dropped": self.groups_dropped.load(Ordering::Relaxed),
        })
    }
}

impl crate::output::json::SideRecords for AlertBoard {
    fn since(&self, cursor: usize) -> (Vec<Value>, usize) {
        let (notices, next) = AlertBoard::since(self, cursor);
        (notices.iter().map(|n| n.to_json()).collect(), next)
    }

    fn summary(&self) -> (&'static str, Value) {
        ("alerts", self.summary_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(state: State, rule: &Arc<Rule>, group: &str) -> Arc<Notice> {
        Arc::new(Notice {
            state,
            ts: SystemTime::UNIX_EPOCH,
            rule: rule.clone(),
            group: (Dim::Map, group.into()),
            context: vec![("map_type", "main.UserMap".into())],
            value: 150.0,
            exact: true,
            sample_rate: 1.0,
            fired_at: SystemTime::UNIX_EPOCH,
            top_stacks: vec![],
            pid: 7,
        })
    }

    #[test]
    fn board_tracks_active_alerts_and_readers() {
        let rule = Arc::new(rule::parse("count(map) > 100 within 5m").unwrap());
        let b = AlertBoard::new();
        b.post(notice(State::Firing, &rule, "0x1"));
        b.post(notice(State::Firing, &rule, "0x2"));
        assert_eq!(b.active().len(), 2);
        let (got, cur) = b.since(0);
        assert_eq!((got.len(), cur), (2, 2));
        b.post(notice(State::Resolved, &rule, "0x1"));
        assert_eq!(b.active().len(), 1);
        let (got, cur) = b.since(cur);
        assert_eq!((got.len(), cur), (1, 3));
        assert_eq!(got[0].record_type(), "resolved");
    }

    #[test]
    fn json_and_slack_bodies() {
        let rule = Arc::new(rule::parse("count(map) > 100 within 5m").unwrap());
        let n = notice(State::Firing, &rule, "0xc000012345");
        let v = n.to_json();
        assert_eq!(v["type"], "alert");
        assert_eq!(v["group"]["map"], "0xc000012345");
        assert_eq!(v["group"]["map_type"], "main.UserMap");
        assert_eq!(v["value"], 150);
        assert_eq!(v["threshold"], 100);
        assert_eq!(v["window"], "5m");
        let s = n.slack();
        assert!(
            s["text"].as_str().unwrap().contains("map=0xc000012345"),
            "{s}"
        );
    }

    #[test]
    fn shares_are_percents_and_latencies_durations() {
        let rule = Arc::new(rule::parse("absent(caller) > 0.4 within 10s min 100").unwrap());
        let mut n = (*notice(State::Firing, &rule, "x")).clone();
        n.group = (Dim::Caller, "main.go:88".into());
        n.context = vec![("function", "main.delSmall".into())];
        n.value = 0.5;
        let v = n.to_json();
        assert_eq!(v["value"], 0.5);
        assert_eq!(v["threshold"], 0.4);
        assert_eq!(v["unit"], "ratio");
        assert_eq!(v["value_text"], "50%");
        assert_eq!(v["threshold_text"], "40%");
        assert_eq!(v["group"]["caller"], "main.go:88");
        assert_eq!(
            n.line(),
            "ALERT absent(caller) > 0.4 within 10s min 100: caller=main.go:88 (function=main.delSmall) — 50% of the deletes measured in 10s were of absent keys (threshold 40%)"
        );

        let rule = Arc::new(
            rule::parse(r#"p99(map_type="map[int64]int", op="clear") > 100us within 10s"#).unwrap(),
        );
        let mut n = (*notice(State::Firing, &rule, "x")).clone();
        n.group = (Dim::MapType, "map[int64]int".into());
        n.context = vec![];
        n.value = 5e6;
        let v = n.to_json();
        assert_eq!(v["value"], 5_000_000);
        assert_eq!(v["threshold"], 100_000);
        assert_eq!(v["unit"], "ns");
        assert_eq!(v["value_text"], "2ms–5ms");
        assert_eq!(v["threshold_text"], "100µs");
        assert!(
            n.line().ends_with(
                "map_type=map[int64]int — p99 of the clears measured in 10s: 2ms–5ms (threshold 100µs)"
            ),
            "{}",
            n.line()
        );
        assert!(n.slack()["text"].as_str().unwrap().contains("2ms–5ms"));

        // Counts keep their texts.
        let rule = Arc::new(rule::parse("count(map) > 100 within 5m").unwrap());
        let n = notice(State::Firing, &rule, "0x1");
        assert_eq!(n.to_json()["value_text"], "150");
        assert!(n.line().ends_with("— 150 deletes in 5m (threshold 100)"));
    }
}
