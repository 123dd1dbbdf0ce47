//! `mdt trace --alert ...`, end to end, as root with real uprobes on `fixtures/alerts` (150
//! deletes from one map, 50 from another; optionally 40 more from the second later):
//!
//! * `one_alert_for_the_busy_map`: `count(map) > 100 within 5m` fires exactly once, for the
//!   busy map, delivered to a real HTTP receiver started by the test (body checked), to
//!   `--alert-exec`, and to the JSON stream.
//! * `exact_rules_resolve_and_slack_bodies`: a rule on the exact kernel counts (map type) over a
//!   2 s window fires, then resolves; the webhook gets Slack `{"text": ...}` bodies for both.
//! * `dead_webhooks_do_not_slow_tracing`: a webhook that never answers and one that refuses
//!   connections: records keep flowing while delivery hangs or fails, the counts stay exact,
//!   and the failures are reported (stderr, summary, metric).
//! * `outcome_and_latency_rules_fire_with_exact_values`: `absent(caller)` and
//!   `p99(..., op="clear")` under `--latency` on `fixtures/latency` (1000 deletes alternating
//!   present/absent keys from `main.delSmall`, one clear of a million entries): the share of
//!   absent keys is exactly 50% at delSmall's call site (with `min 1000`: once all are
//!   measured), `> 0.6` never fires, and the p99 of the clears is the bucket bound of the
//!   clear's own measured duration.
//! * `rule_and_url_errors_are_one_line`: syntax errors (with their column), rules files, bad
//!   URLs: one line, non-zero exit (no root needed).
//!
//! Needs root and BPF: skipped without, unless CI=true (then they fail).

mod common;
mod monitor_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::proc::{Finished, Proc};
use common::{Toolchain, Variant};
use monitor_common::receiver::{Behaviour, Receiver};
use monitor_common::*;
use serde_json::Value;

const RULE: &str = "count(map) > 100 within 5m";

// ---------------------------------------------------------------------------------------------
// Runs

struct Run {
    fixture: Proc,
    mdt: Proc,
    out: PathBuf,
    hot: String,
    cold: String,
}

/// The alerts fixture held on a wait file (and on `then` for phase two), mdt attached with
/// `--json -o out.json flags`, then told to go.
fn start(ctx: &str, tc: &Toolchain, dir: &Scratch, then: bool, flags: &[String]) -> Run {
    let bin = common::build_fixture("alerts", tc, Variant::Plain);
    let go = dir.path("go");
    let mut fx = Command::new(&bin);
    fx.arg("-wait-file").arg(&go).arg("-hold");
    if then {
        fx.arg("-then-file").arg(dir.path("then"));
    }
    let fixture = Proc::spawn(&format!("{ctx}: fixture"), fx, Stdio::piped());
    assert!(
        fixture
            .stdout
            .wait_for(RUN_TIMEOUT, |t| t.contains("cold 0x")),
        "{ctx}: fixture start"
    );
    let text = fixture.stdout.text();
    let addr = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap()
            .to_string()
    };
    let (hot, cold) = (addr("hot"), addr("cold"));
    let out = dir.path("out.json");
    let mut cmd = mdt_cmd(["trace", "--json", "-p", &fixture.pid().to_string(), "-o"]);
    cmd.arg(&out).args(flags);
    let mdt = Proc::spawn(&format!("{ctx}: mdt"), cmd, Stdio::piped());
    mdt.wait_announce();
    fs::write(&go, b"").unwrap();
    Run {
        fixture,
        mdt,
        out,
        hot,
        cold,
    }
}

impl Run {
    /// Ends the fixture, then mdt; returns (every JSON record, the summary, mdt's stderr, how
    /// long mdt took after the fixture's exit).
    fn finish(mut self, ctx: &str) -> (Vec<Value>, Value, String, Duration) {
        self.fixture.finish(RUN_TIMEOUT, "the fixture ending");
        let ended = Instant::now();
        let Finished {
            status,
            stderr: err,
            ..
        } = self.mdt.finish(STOP_TIMEOUT, "mdt after its target exited");
        let took = ended.elapsed();
        assert!(status.success(), "{ctx}: mdt exited {status}: {err}");
        let records = json_records(&self.out);
        let summary = records.last().cloned().unwrap();
        assert_eq!(summary["type"], "summary", "{ctx}: last record: {summary}");
        (records, summary, err, took)
    }
}

fn json_records(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| l.ends_with('}'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}")))
        .collect()
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == t).collect()
}

/// The newest toolchain of the matrix (Swiss maps) and the oldest (hmap).
fn toolchains() -> Vec<Toolchain> {
    let mut all = common::toolchains();
    if all.len() > 2 {
        let newest = all.pop().unwrap();
        all.truncate(1);
        all.push(newest);
    }
    all
}

/// The alert every channel must deliver: the hot map, exact. Its value is the count when the
/// rule was evaluated past its threshold: all of the burst of 150, unless an evaluation fell
/// inside the burst (records reach the rules in batches, and a slow reader may cut the burst).
fn check_alert(v: &Value, run_hot: &str, ctx: &str) {
    assert_eq!(v["type"], "alert", "{ctx}: {v}");
    assert_eq!(v["state"], "firing", "{ctx}: {v}");
    assert_eq!(v["rule"], RULE, "{ctx}: {v}");
    assert_eq!(
        v["group"]["map"], run_hot,
        "{ctx}: alert for the wrong map: {v}"
    );
    assert_eq!(v["group"]["map_type"], "main.HotMap", "{ctx}: {v}");
    let value = v["value"].as_u64().unwrap_or(0);
    assert!((101..=150).contains(&value), "{ctx}: {v}");
    assert_eq!(v["threshold"], 100, "{ctx}: {v}");
    assert_eq!(v["window"], "5m", "{ctx}: {v}");
    assert_eq!(v["window_seconds"], 300.0, "{ctx}: {v}");
    assert_eq!(v["exact"], true, "{ctx}: {v}");
    let top = &v["top_stacks"][0];
    assert_eq!(
        top["count"], value,
        "{ctx}: the top stack is all of them: {v}"
    );
    assert!(
        top["caller"]
            .as_str()
            .unwrap()
            .starts_with("main.deleteHot "),
        "{ctx}: {v}"
    );
    assert!(
        top["frames"][0]
            .as_str()
            .unwrap()
            .starts_with("main.deleteHot "),
        "{ctx}: {v}"
    );
}

fn one_alert(tc: &Toolchain) {
    let ctx = format!("{tc}");
    let dir = Scratch::new("alerts");
    let receiver = Receiver::start(Behaviour::Answer);
    let exec_out = dir.path("exec.jsonl");
    let run = start(
        &ctx,
        tc,
        &dir,
        false,
        &[
            "--alert".into(),
            RULE.into(),
            "--webhook".into(),
            receiver.url(),
            "--alert-exec".into(),
            format!("/usr/bin/tee -a {}", exec_out.display()),
        ],
    );
    assert!(
        run.fixture
            .stdout
            .wait_for(RUN_TIMEOUT, |t| t.contains("deletes done: 200")),
        "{ctx}: fixture"
    );
    poll(
        Duration::from_secs(20),
        &format!("{ctx}: the webhook POST"),
        || match receiver.bodies().len() {
            0 => Err(run.mdt.stderr.text()),
            _ => Ok(()),
        },
    );
    // Three more observations: still one alert (fires once per group).
    std::thread::sleep(Duration::from_millis(1600));
    let (hot, cold) = (run.hot.clone(), run.cold.clone());
    let (records, summary, err, _) = run.finish(&ctx);

    let got = receiver.got.lock().unwrap();
    assert_eq!(
        got.len(),
        1,
        "{ctx}: webhook POSTs: {:?}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert_eq!(got[0].path, "/hook");
    assert!(
        got[0].content_type.starts_with("application/json"),
        "{ctx}: {}",
        got[0].content_type
    );
    check_alert(&got[0].body, &hot, &format!("{ctx}: webhook"));

    let exec_lines: Vec<Value> = fs::read_to_string(&exec_out)
        .unwrap_or_else(|e| panic!("{ctx}: --alert-exec wrote nothing ({e}); mdt stderr:\n{err}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        exec_lines.len(),
        1,
        "{ctx}: --alert-exec runs: {exec_lines:?}"
    );
    check_alert(&exec_lines[0], &hot, &format!("{ctx}: --alert-exec"));

    let alerts = of_type(&records, "alert");
    assert_eq!(alerts.len(), 1, "{ctx}: alert records: {alerts:?}");
    assert_ne!(
        alerts[0]["group"]["map"], cold,
        "{ctx}: the map with 50 deletes must not alert"
    );
    check_alert(alerts[0], &hot, &format!("{ctx}: JSON stream"));
    assert!(of_type(&records, "resolved").is_empty(), "{ctx}");
    assert_eq!(of_type(&records, "delete").len(), 200, "{ctx}");
    assert_eq!(summary["deletes"], 200, "{ctx}: {summary}");
    assert_eq!(summary["alerts"]["fired"], 1, "{ctx}: {summary}");
    assert_eq!(summary["alerts"]["delivered"], 2, "{ctx}: {summary}");
    assert_eq!(
        summary["alerts"]["delivery_failures"], 0,
        "{ctx}: {summary}"
    );
    assert_eq!(
        err.matches("mdt: ALERT ").count(),
        1,
        "{ctx}: stderr:\n{err}"
    );
}

fn each_toolchain(test: &str, f: impl Fn(&Toolchain) + Sync) {
    if !common::require_root_bpf() {
        return;
    }
    let tcs = toolchains();
    common::parallel::run_all(test, &tcs, tcs.len(), |tc| tc.to_string(), f);
}

#[test]
fn one_alert_for_the_busy_map() {
    each_toolchain("one_alert_for_the_busy_map", one_alert);
}

fn resolve_slack(tc: &Toolchain) {
    let ctx = format!("{tc}");
    let dir = Scratch::new("alerts-slack");
    let receiver = Receiver::start(Behaviour::Answer);
    let rule = r#"count(map_type="main.HotMap") > 100 within 2s"#;
    let run = start(
        &ctx,
        tc,
        &dir,
        false,
        &[
            "--alert".into(),
            rule.into(),
            "--webhook".into(),
            receiver.url(),
            "--webhook-format".into(),
            "slack".into(),
            // Sampling does not matter to a rule on the exact counts.
            "--sample".into(),
            "0.01".into(),
        ],
    );
    poll(
        Duration::from_secs(30),
        &format!("{ctx}: alert and resolution"),
        || match receiver.bodies().len() {
            n if n >= 2 => Ok(()),
            n => Err(format!("{n} POSTs; stderr: {}", run.mdt.stderr.text())),
        },
    );
    let (records, summary, _, _) = run.finish(&ctx);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2, "{ctx}: {bodies:?}");
    let text = |i: usize| {
        bodies[i]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{ctx}: not a Slack body: {}", bodies[i]))
            .to_string()
    };
    assert!(
        text(0).contains("ALERT") && text(0).contains("map_type=main.HotMap"),
        "{ctx}: {}",
        text(0)
    );
    assert!(text(0).contains("150 deletes in 2s"), "{ctx}: {}", text(0));
    assert!(
        text(1).contains("RESOLVED") && text(1).contains("main.HotMap"),
        "{ctx}: {}",
        text(1)
    );
    assert_eq!(
        bodies[0].as_object().unwrap().len(),
        1,
        "{ctx}: Slack bodies have only text"
    );
    let alert = of_type(&records, "alert");
    let resolved = of_type(&records, "resolved");
    assert_eq!((alert.len(), resolved.len()), (1, 1), "{ctx}: {records:?}");
    assert_eq!(alert[0]["exact"], true);
    assert_eq!(alert[0]["value"], 150);
    assert_eq!(resolved[0]["group"]["map_type"], "main.HotMap");
    assert_eq!(resolved[0]["value"], 0);
    assert_eq!(summary["deletes"], 200, "{ctx}: {summary}");
    assert_eq!(summary["alerts"]["resolved"], 1, "{ctx}: {summary}");
}

#[test]
fn exact_rules_resolve_and_slack_bodies() {
    each_toolchain("exact_rules_resolve_and_slack_bodies", resolve_slack);
}

fn dead_webhook(tc: &Toolchain, hang: bool) {
    let ctx = format!("{tc} {}", if hang { "never answers" } else { "refuses" });
    let dir = Scratch::new("alerts-dead");
    let receiver = hang.then(|| Receiver::start(Behaviour::Hang));
    let url = match &receiver {
        Some(r) => r.url(),
        None => format!("http://127.0.0.1:{}/hook", free_port()),
    };
    let metrics_port = free_port();
    let run = start(
        &ctx,
        tc,
        &dir,
        true,
        &[
            "--alert".into(),
            RULE.into(),
            "--webhook".into(),
            url.clone(),
            "--webhook-timeout".into(),
            "10s".into(),
            "--prometheus".into(),
            format!("127.0.0.1:{metrics_port}"),
        ],
    );
    assert!(
        run.fixture
            .stdout
            .wait_for(RUN_TIMEOUT, |t| t.contains("deletes done: 200")),
        "{ctx}: fixture"
    );
    assert!(
        run.mdt
            .stderr
            .wait_for(Duration::from_secs(10), |t| t.contains("mdt: ALERT ")),
        "{ctx}: no alert: {}",
        run.mdt.stderr.text()
    );
    // Delivery is now hanging (or failing): phase two's records must still arrive at once.
    let t0 = Instant::now();
    fs::write(dir.path("then"), b"").unwrap();
    poll(
        Duration::from_secs(5),
        &format!("{ctx}: records while the webhook is down"),
        || match of_type(&json_records(&run.out), "delete").len() {
            240 => Ok(()),
            n => Err(format!("{n} delete records")),
        },
    );
    let lag = t0.elapsed();
    if let Some(r) = &receiver {
        assert!(
            *r.accepted.lock().unwrap() >= 1,
            "{ctx}: the webhook was not even tried"
        );
        // The webhook hangs for 10 s per attempt: the records did not wait for it.
        assert!(lag < Duration::from_secs(5), "{ctx}: {lag:?}");
    }
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    if !hang {
        // Refused three times (0.5 s + 1 s apart): reported while tracing goes on.
        assert!(
            run.mdt
                .stderr
                .wait_for(Duration::from_secs(10), |t| t.contains("not delivered")),
            "{ctx}: failure not reported: {}",
            run.mdt.stderr.text()
        );
        poll(
            Duration::from_secs(5),
            &format!("{ctx}: failure metric"),
            || {
                let (_, body) = http_get(&metrics)?;
                match body
                    .lines()
                    .any(|l| l == "mdt_alert_delivery_failures_total 1")
                {
                    true => Ok(()),
                    false => Err(body),
                }
            },
        );
    }
    let (records, summary, err, took) = run.finish(&ctx);
    assert_eq!(
        summary["deletes"], 240,
        "{ctx}: counts stay exact: {summary}"
    );
    assert_eq!(of_type(&records, "delete").len(), 240, "{ctx}");
    assert_eq!(summary["lost"], 0, "{ctx}");
    assert_eq!(of_type(&records, "alert").len(), 1, "{ctx}");
    assert!(
        summary["alerts"]["delivery_failures"].as_u64().unwrap() >= 1,
        "{ctx}: {summary}"
    );
    assert_eq!(summary["alerts"]["delivered"], 0, "{ctx}: {summary}");
    assert!(
        err.contains(&format!("webhook {url}")) || err.contains("given up"),
        "{ctx}: {err}"
    );
    assert!(err.contains("alert deliveries failed"), "{ctx}: {err}");
    // At exit mdt waits for a pending delivery at most one attempt (10 s) and a second, not
    // for every retry (3 attempts: over 30 s). Generous: the machine may be loaded.
    assert!(
        took < Duration::from_secs(20),
        "{ctx}: mdt took {took:?} to exit after its target"
    );
}

#[test]
fn dead_webhooks_do_not_slow_tracing() {
    each_toolchain("dead_webhooks_do_not_slow_tracing", |tc| {
        dead_webhook(tc, true);
        dead_webhook(tc, false);
    });
}

// ---------------------------------------------------------------------------------------------
// Outcome and latency rules, on fixtures/latency

/// Exact: a value only once the 1000 deletes are measured, so exactly 50%.
const ABSENT_ALL: &str = "absent(caller) > 0.4 within 10s min 1000";
/// As soon as over 40%: at most 50% (the deletes alternate, present first).
const ABSENT: &str = "absent(caller) > 0.4 within 10s";
const ABSENT_HIGH: &str = "absent(caller) > 0.6 within 10s";
const SLOW_CLEAR: &str = r#"p99(map_type="map[int64]int", op="clear") > 100us within 10s"#;

/// The upper bound of the latency bucket holding `ns` (as the kernel buckets it).
fn bucket_bound(ns: u64) -> u64 {
    *mdt::probes::LATENCY_BOUNDS_NS
        .iter()
        .find(|&&b| ns <= b)
        .unwrap_or_else(|| panic!("{ns} ns is past the last bucket bound"))
}

fn outcome_and_latency(tc: &Toolchain) {
    let ctx = format!("{tc} outcomes");
    let bin = common::build_fixture("latency", tc, Variant::Plain);
    let dir = Scratch::new("alerts-latency");
    let out = dir.path("out.json");
    let mut cmd = mdt_cmd(["trace", "--json", "--latency", "-o"]);
    cmd.arg(&out);
    for rule in [ABSENT_ALL, ABSENT, ABSENT_HIGH, SLOW_CLEAR] {
        cmd.args(["--alert", rule]);
    }
    cmd.arg("--")
        .arg(&bin)
        .args(["-clear-size", "1000000", "-small", "1000"]);
    let mut mdt = Proc::spawn(&format!("{ctx}: mdt"), cmd, Stdio::null());
    let Finished {
        status,
        stdout,
        stderr: err,
    } = mdt.finish(RUN_TIMEOUT, "tracing the latency fixture");
    assert!(status.success(), "{ctx}: mdt exited {status}: {err}");
    let own = String::from_utf8_lossy(&stdout).into_owned();
    assert!(
        own.contains(" present=500 absent=500 "),
        "{ctx}: the fixture's own counts: {own}"
    );
    let records = json_records(&out);
    let summary = records.last().cloned().unwrap();
    assert_eq!(summary["type"], "summary", "{ctx}: last record: {summary}");
    let alerts = of_type(&records, "alert");
    let of_rule = |rule: &str| -> Vec<&Value> {
        alerts
            .iter()
            .copied()
            .filter(|a| a["rule"] == rule)
            .collect()
    };
    let is_del_small = |a: &&Value| a["group"]["function"] == "main.delSmall";

    // Exactly 50% of delSmall's deletes were of absent keys, from the kernel's counts.
    let all = of_rule(ABSENT_ALL);
    assert_eq!(
        all.len(),
        1,
        "{ctx}: {ABSENT_ALL}: {alerts:?}
{err}"
    );
    let a = all[0];
    assert!(is_del_small(&a), "{ctx}: {a}");
    assert_eq!(a["value"], 0.5, "{ctx}: {a}");
    assert_eq!(a["value_text"], "50%", "{ctx}: {a}");
    assert_eq!(
        (&a["threshold"], &a["unit"], &a["exact"], &a["window"]),
        (&0.4.into(), &"ratio".into(), &true.into(), &"10s".into()),
        "{ctx}: {a}"
    );
    let caller = a["group"]["caller"].as_str().unwrap().to_string();
    assert!(caller.starts_with("main.go:"), "{ctx}: {a}");
    if let Some(top) = a["top_stacks"].get(0) {
        assert!(
            top["caller"]
                .as_str()
                .unwrap()
                .starts_with("main.delSmall "),
            "{ctx}: the absent keys' stacks: {a}"
        );
    }
    let line = format!(
        "mdt: ALERT {ABSENT_ALL}: caller={caller} (function=main.delSmall) — 50% of the deletes measured in 10s were of absent keys (threshold 40%)"
    );
    assert!(
        err.lines().any(|l| l == line),
        "{ctx}: no {line:?} in
{err}"
    );

    // Without min: fires as soon as over 40%, at most 50%.
    let early: Vec<_> = of_rule(ABSENT).into_iter().filter(is_del_small).collect();
    assert_eq!(early.len(), 1, "{ctx}: {ABSENT}: {alerts:?}");
    let v = early[0]["value"].as_f64().unwrap();
    assert!(v > 0.4 && v <= 0.5, "{ctx}: {}", early[0]);
    assert_eq!(early[0]["group"]["caller"], caller.as_str(), "{ctx}");
    assert!(
        of_rule(ABSENT_HIGH).is_empty(),
        "{ctx}: {ABSENT_HIGH} fired: {alerts:?}"
    );

    // The p99 of the one clear is its own bucket's bound.
    let clear: Vec<&Value> = of_type(&records, "clear")
        .into_iter()
        .filter(|r| {
            r["caller"]
                .as_str()
                .is_some_and(|c| c.starts_with("main.clearBig "))
        })
        .collect();
    assert_eq!(clear.len(), 1, "{ctx}: one big clear");
    let took = clear[0]["duration_ns"]
        .as_u64()
        .unwrap_or_else(|| panic!("{ctx}: the clear has no duration: {}", clear[0]));
    assert!(took > 100_000, "{ctx}: the clear took {took} ns");
    let slow = of_rule(SLOW_CLEAR);
    assert_eq!(
        slow.len(),
        1,
        "{ctx}: {SLOW_CLEAR}: {alerts:?}
{err}"
    );
    let s = slow[0];
    assert_eq!(s["group"]["map_type"], "map[int64]int", "{ctx}: {s}");
    assert_eq!(
        s["value"],
        bucket_bound(took),
        "{ctx}: the clear took {took} ns: {s}"
    );
    assert_eq!(
        (
            &s["threshold"],
            &s["unit"],
            &s["threshold_text"],
            &s["exact"]
        ),
        (&100_000.into(), &"ns".into(), &"100µs".into(), &true.into()),
        "{ctx}: {s}"
    );
    let text = s["value_text"].as_str().unwrap();
    assert!(text.contains('–') && text.ends_with('s'), "{ctx}: {s}");
    if let Some(top) = s["top_stacks"].get(0) {
        assert!(
            top["caller"]
                .as_str()
                .unwrap()
                .starts_with("main.clearBig "),
            "{ctx}: the slow clear's stack: {s}"
        );
    }
    let line = format!(
        "mdt: ALERT {SLOW_CLEAR}: map_type=map[int64]int — p99 of the clears measured in 10s: {text} (threshold 100µs)"
    );
    assert!(
        err.lines().any(|l| l == line),
        "{ctx}: no {line:?} in
{err}"
    );

    assert!(
        of_type(&records, "resolved").is_empty(),
        "{ctx}: {records:?}"
    );
    assert_eq!(
        summary["alerts"]["fired"].as_u64(),
        Some(alerts.len() as u64),
        "{ctx}: {summary}"
    );
}

#[test]
fn outcome_and_latency_rules_fire_with_exact_values() {
    if !common::require_root_bpf() {
        return;
    }
    let tcs = common::toolchains();
    common::parallel::run_all(
        "outcome_and_latency_rules_fire_with_exact_values",
        &tcs,
        2,
        |tc| tc.to_string(),
        outcome_and_latency,
    );
}

// ---------------------------------------------------------------------------------------------
// A fatal error of the target, on fixtures/crash

/// `fatal(message)` fires once when the crash fixture dies of "concurrent map writes": the
/// webhook has it before mdt says it is lingering (so before mdt exits), with the dying
/// goroutine and its caller; a rule on another message does not fire. While mdt lingers, a
/// scrape sees `go_map_fatal_total` 1 for that message, 0 for the other three, and
/// `mdt_target_up` 0; Ctrl-C ends the linger early, and mdt exits with the target's status.
fn fatal_alert(tc: &Toolchain) {
    let ctx = format!("{tc} fatal alert");
    let bin = common::build_fixture("crash", tc, Variant::Plain);
    let dir = Scratch::new("alerts-fatal");
    let receiver = Receiver::start(Behaviour::Answer);
    let port = free_port();
    let out = dir.path("out.json");
    let mut cmd = mdt_cmd(["trace", "--json", "-o"]);
    cmd.arg(&out).args([
        "--prometheus",
        &format!("127.0.0.1:{port}"),
        "--linger",
        "60s",
        "--alert",
        "fatal(message)",
        "--alert",
        r#"fatal(message="concurrent map read and map write")"#,
        "--webhook",
        &receiver.url(),
        "--",
    ]);
    cmd.arg(&bin).args(["-mode", "writes", "-pace", "200us"]);
    let mut mdt = Proc::spawn(&format!("{ctx}: mdt"), cmd, Stdio::null());
    assert!(
        mdt.stderr
            .wait_for(RUN_TIMEOUT, |t| t.contains("serving its last metrics")),
        "{ctx}: mdt never lingered: {}",
        mdt.stderr.text()
    );
    let lingering = Instant::now();
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "{ctx}: webhook bodies: {bodies:?}");
    let alert = &bodies[0];
    assert_eq!(alert["rule"], "fatal(message)", "{ctx}: {alert}");
    assert_eq!(alert["group"]["message"], "concurrent map writes", "{ctx}");
    assert_eq!(
        (alert["value"].clone(), alert["exact"].clone()),
        (1.into(), true.into())
    );

    let (status, text) = http_get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    assert_eq!(status, 200, "{ctx}");
    let samples = parse_samples(&text);
    let value = |name: &str, message: Option<&str>| -> Option<f64> {
        samples
            .iter()
            .find(|(n, labels, _)| {
                n == name
                    && message.is_none_or(|m| labels.iter().any(|(k, v)| k == "message" && v == m))
            })
            .map(|s| s.2)
    };
    for m in mdt::events::fatal::MAP_MISUSE_MESSAGES {
        let want = if m == "concurrent map writes" {
            1.0
        } else {
            0.0
        };
        assert_eq!(
            value("go_map_fatal_total", Some(m)),
            Some(want),
            "{ctx}: {m}"
        );
    }
    assert_eq!(value("mdt_target_up", None), Some(0.0), "{ctx}");

    mdt.signal(libc::SIGINT);
    let f = mdt.finish(STOP_TIMEOUT, "the end of the linger");
    assert!(
        lingering.elapsed() < Duration::from_secs(30),
        "{ctx}: Ctrl-C did not end the linger"
    );
    assert_eq!(f.status.code(), Some(2), "{ctx}: {}", f.stderr);
    assert!(
        f.stderr.contains("fatal error: concurrent map writes"),
        "{ctx}: the target's crash text: {}",
        f.stderr
    );
    let records = common::read_json_lines(&out);
    let fatals = of_type(&records, "fatal");
    assert_eq!(fatals.len(), 1, "{ctx}");
    let goid = fatals[0]["goid"].as_u64().expect("the dying goroutine");
    assert_eq!(
        alert["group"]["goroutine"],
        goid.to_string(),
        "{ctx}: {alert}"
    );
    assert_eq!(alert["group"]["tid"], fatals[0]["tid"].to_string(), "{ctx}");
    // Where it died (main.assigner or main.deleter, at its map operation), and its stack.
    let (short, long) = (
        alert["group"]["caller"].as_str().unwrap(),
        fatals[0]["caller"].as_str().unwrap(),
    );
    assert!(
        long.ends_with(&format!("/{short}")),
        "{ctx}: {short} vs {long}"
    );
    let top = &alert["top_stacks"][0];
    assert!(
        top["caller"]
            .as_str()
            .is_some_and(|c| c.starts_with("main.assigner ") || c.starts_with("main.deleter ")),
        "{ctx}: {top}"
    );
    assert!(
        top["frames"][0]
            .as_str()
            .is_some_and(|f| f.starts_with("runtime.fatal ")),
        "{ctx}: {top}"
    );
    let alerts = of_type(&records, "alert");
    assert_eq!(alerts.len(), 1, "{ctx}: {alerts:?}");
    assert_eq!(alerts[0]["rule"], "fatal(message)", "{ctx}");
    let summary = of_type(&records, "summary")[0];
    assert_eq!(summary["alerts"]["fired"], 1, "{ctx}: {summary}");
    assert_eq!(summary["alerts"]["delivered"], 1, "{ctx}: {summary}");
}

#[test]
fn a_fatal_error_fires_its_alert_before_mdt_exits() {
    each_toolchain(
        "a_fatal_error_fires_its_alert_before_mdt_exits",
        fatal_alert,
    );
}

#[test]
fn rule_and_url_errors_are_one_line() {
    let t = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["trace", "-p", "1"].iter().map(|s| s.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let check = |extra: &[&str], needles: &[&str]| {
        let args = t(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_one_line_error(&refs, needles);
    };
    check(
        &["--alert", "count(map) >> 100 within 5m"],
        &["--alert", "column 13", "expected a threshold"],
    );
    check(
        &["--alert", "count(maps) > 100 within 5m"],
        &["column 7", "map, map_type, caller or key"],
    );
    check(
        &["--alert", "count(map) > 100 within 5"],
        &["column 25", "unit"],
    );
    check(
        &["--alert", "count(map) > 1/s within 5m"],
        &["column 15", "rate"],
    );
    check(&["--alert", "count(map) < 1 within 5m"], &["column 12"]);
    check(
        &["--alert", "p99(caller) > 1ms within 1m"],
        &["--alert", "column 5", "per map type", "map_type only"],
    );
    check(
        &["--no-latency", "--alert", "absent(caller) > 0.5 within 1m"],
        &["--no-latency", "exit probes"],
    );
    check(
        &["--alert", "absent(key) > 0.5 within 1m"],
        &["column 8", "map_type or caller"],
    );
    check(
        &["--alert", "absent(caller) > 50 within 1m"],
        &["column 18", "between 0 and 1"],
    );
    check(
        &["--alert", "p99(map_type) > 1000 within 1m"],
        &["column 17", "unit"],
    );
    check(
        &["--alert", r#"p99(map_type, op="insert") > 1ms within 1m"#],
        &["column 18", "\"delete\" or \"clear\""],
    );
    check(
        &["--alert", "count(map) > 1 within 1m min 10"],
        &["column 26", "min"],
    );
    check(
        &["--webhook", "ftp://example.invalid/x", "--alert", RULE],
        &["--webhook", "scheme"],
    );
    check(&["--webhook", "not a url", "--alert", RULE], &["--webhook"]);
    check(
        &["--webhook", "http://127.0.0.1:9/x"],
        &["give rules with --alert"],
    );
    check(
        &["--alert-exec", "   ", "--alert", RULE],
        &["--alert-exec", "empty"],
    );
    check(
        &["--alert", RULE, "--alert-cooldown", "soon"],
        &["--alert-cooldown"],
    );
    check(
        &["--alert", RULE, "--webhook-format", "teams"],
        &["--webhook-format"],
    );
    check(
        &["--alert", "fatal(message) > 0 within 1m"],
        &["--alert", "column 16", "no threshold or window"],
    );
    check(
        &["--alert", "fatal(message)", "--no-forensics"],
        &["--no-forensics", "fatal(...)"],
    );
    check(&["--linger", "30s"], &["--linger", "--prometheus"]);
    check(
        &["--linger", "2h", "--prometheus", "127.0.0.1:1"],
        &["--linger", "at most 1h"],
    );

    let dir = Scratch::new("alerts-files");
    let bad = dir.path("rules.toml");
    fs::write(&bad, "[[alert]]\nrule = \"count(map) > 100 within 5m\"\n\n[[alert]]\nrule = \"rate(caller) > x within 1m\"\n").unwrap();
    let bad_s = bad.display().to_string();
    check(&["--alerts", &bad_s], &[&bad_s, "rule 2", "column 16"]);
    let broken = dir.path("rules.yaml");
    fs::write(&broken, "alerts:\n  - rule: [\n").unwrap();
    check(
        &["--alerts", &broken.display().to_string()],
        &["rules.yaml"],
    );
    check(
        &["--alerts", "/nonexistent/rules.toml"],
        &["cannot read /nonexistent/rules.toml"],
    );
}
