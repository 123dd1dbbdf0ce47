//! `mdt trace --prometheus`, end to end, as root with real uprobes:
//!
//! * `metrics_are_exact_per_map_type_and_caller`: the `deletes` fixture (every toolchain of the
//!   matrix, plain build) traced with `--quiet --prometheus ADDR --sample 0.01`; the scraped
//!   text passes `promtool check metrics`, and `go_map_delete_total` / `go_map_clear_total`
//!   equal, per map type and call site, what the fixture says it did (`-expect`), despite the
//!   sampling; the health metrics say what happened.
//! * `a_real_prometheus_scrapes_mdt`: a Prometheus server on loopback scrapes mdt every second;
//!   its HTTP API answers `sum(go_map_delete_total)` with the fixture's exact total.
//! * `prometheus_and_alertmanager_deliver_the_shipped_fatal_alert`: the same, with
//!   deploy/prometheus/rules.yml loaded, on the crash fixture dying under `--linger`:
//!   `GoMapFatalError` fires for "concurrent map writes" on mdt's instance, and a real
//!   Alertmanager with deploy/alertmanager/alertmanager.yml delivers it to the pager's webhook.
//! * `latency_metrics_are_exact`: the `latency` fixture (every toolchain of the matrix) traced
//!   with `--quiet --prometheus ADDR --latency`: `map_delete_duration_seconds` counts every
//!   delete and clear the fixture made (`_count` per `op`, `+Inf` = `_count`, cumulative
//!   buckets at mdt's bounds, the clear of a million entries at 100 µs or more and no longer
//!   than the fixture measured it), and `go_map_delete_removed_total` /
//!   `go_map_delete_absent_total` at `delSmall`'s line are the fixture's present / absent counts.
//! * `the_default_duty_cycle_measures_the_first_second`: `--prometheus` alone arms the exit
//!   probes for the first second (`--latency-sample 0.01`): a run that deletes within it is
//!   measured whole, and its histogram stays once the window closed.
//! * `address_errors_are_one_line`: a port in use, a bad address: one line, non-zero exit
//!   (no root needed).
//!
//! The `latency` fixture exits once done, and mdt with it: it writes its one line to a pipe the
//! test filled beforehand, so it blocks there, done, for the metrics to be scraped.
//!
//! Needs root and BPF (skipped without, unless CI=true), promtool and prometheus (Debian package
//! `prometheus`; missing fails under CI=true).

mod common;
mod monitor_common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::proc::{Finished, Proc};
use common::{Toolchain, Variant};
use monitor_common::receiver::{Behaviour, Receiver};
use monitor_common::*;

/// (kind, map type, caller label) → count.
type Counts = BTreeMap<(String, String, String), u64>;

fn expected_counts(expect: &Path) -> Counts {
    let mut out = Counts::new();
    for r in common::read_json_lines(expect) {
        let kind = r["kind"].as_str().unwrap().to_string();
        let map_type = r["map_type"].as_str().unwrap().to_string();
        // Every way of deleting, reflect's included, is counted at the line that asked.
        let file = r["file"].as_str().unwrap();
        let base = file.rsplit('/').next().unwrap();
        let caller = format!("{base}:{}", r["line"]);
        *out.entry((kind, map_type, caller)).or_default() += 1;
    }
    out
}

fn scraped_counts(text: &str) -> Counts {
    let mut out = Counts::new();
    for (name, labels, value) in parse_samples(text) {
        let kind = match name.as_str() {
            "go_map_delete_total" => "delete",
            "go_map_clear_total" => "clear",
            _ => continue,
        };
        let label = |k: &str| {
            labels
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        *out.entry((kind.into(), label("map_type"), label("caller")))
            .or_default() += value as u64;
    }
    out
}

fn sample(text: &str, metric: &str) -> Option<f64> {
    parse_samples(text)
        .into_iter()
        .find(|(n, l, _)| n == metric && l.is_empty())
        .map(|(_, _, v)| v)
}

/// The fixture held on a wait file and mdt attached to it with `flags`; returns both, once mdt
/// announced itself and the fixture was told to go.
fn start_traced(
    ctx: &str,
    bin: &Path,
    dir: &Scratch,
    fixture_args: &[&str],
    flags: &[String],
) -> (Proc, Proc) {
    let go = dir.path("go");
    let mut fx = Command::new(bin);
    fx.arg("-wait-file").arg(&go).args(fixture_args);
    let fixture = Proc::spawn(&format!("{ctx}: fixture"), fx, Stdio::piped());
    let mut cmd = mdt_cmd(["trace", "-p", &fixture.pid().to_string()]);
    cmd.args(flags);
    let mdt = Proc::spawn(&format!("{ctx}: mdt"), cmd, Stdio::piped());
    mdt.wait_announce();
    fs::write(&go, b"").unwrap();
    (fixture, mdt)
}

fn promtool_check(promtool: &Path, text: &str, ctx: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "{ctx}: promtool check metrics failed ({}): {said}\n--- scraped:\n{text}",
        out.status
    );
}

fn run_exact(tc: &Toolchain, promtool: &Path) {
    let ctx = format!("{tc} plain");
    let bin = common::build_fixture("deletes", tc, Variant::Plain);
    let dir = Scratch::new("metrics");
    let expect = dir.path("expect.json");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (mut fixture, mut mdt) = start_traced(
        &ctx,
        &bin,
        &dir,
        &["-repeat", "3", "-hold", "-expect", expect.to_str().unwrap()],
        &[
            "--quiet".into(),
            "--prometheus".into(),
            addr.clone(),
            "--sample".into(),
            "0.01".into(),
        ],
    );
    assert!(
        mdt.stderr.wait_for(Duration::from_secs(5), |t| t
            .contains(&format!("metrics at http://{addr}/metrics"))),
        "{ctx}: no metrics address line: {}",
        mdt.stderr.text()
    );
    assert!(
        fixture
            .stdout
            .wait_for(RUN_TIMEOUT, |t| t.contains("clears done")),
        "{ctx}: the fixture did not finish: {}",
        fixture.stderr.text()
    );
    let (deletes, clears) = common::expected_deletes(tc, Variant::Plain, 3);
    let want = expected_counts(&expect);
    assert_eq!(
        want.iter()
            .filter(|(k, _)| k.0 == "delete")
            .map(|(_, v)| v)
            .sum::<u64>(),
        deletes as u64
    );
    let url = format!("http://{addr}/metrics");
    // Counters are refreshed every 500 ms.
    let text = poll(
        Duration::from_secs(20),
        &format!("{ctx}: exact counts in {url}"),
        || {
            let (status, body) = http_get(&url)?;
            if status != 200 {
                return Err(format!("HTTP {status}"));
            }
            match scraped_counts(&body) == want {
                true => Ok(body),
                false => Err(format!(
                    "scraped {:?}\nwant {want:?}",
                    scraped_counts(&body)
                )),
            }
        },
    );
    promtool_check(promtool, &text, &ctx);
    assert_eq!(
        sample(&text, "map_delete_count_total"),
        Some(deletes as f64),
        "{ctx}"
    );
    assert_eq!(sample(&text, "mdt_target_up"), Some(1.0), "{ctx}");
    // Who is traced, for joins.
    let info: Vec<_> = parse_samples(&text)
        .into_iter()
        .filter(|(n, _, _)| n == "mdt_target_info")
        .collect();
    assert_eq!(info.len(), 1, "{ctx}: {info:?}");
    let (_, labels, v) = &info[0];
    assert_eq!(*v, 1.0, "{ctx}");
    let exe = fs::canonicalize(&bin).unwrap().display().to_string();
    let pid = fixture.pid().to_string();
    let want_info: Vec<(String, String)> = [
        ("comm", "deletes"),
        ("container_id", ""),
        ("exe", exe.as_str()),
        ("pid", pid.as_str()),
        ("pod_uid", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut got = labels.clone();
    got.sort();
    assert_eq!(got, want_info, "{ctx}");
    assert!(
        sample(&text, "mdt_attached_probes").unwrap() >= 4.0,
        "{ctx}"
    );
    assert_eq!(
        sample(&text, "mdt_series_overflow_total"),
        Some(0.0),
        "{ctx}"
    );
    assert_eq!(sample(&text, "mdt_events_lost_total"), Some(0.0), "{ctx}");
    let sampled_out = sample(&text, "mdt_events_sampled_out_total").unwrap();
    assert!(
        sampled_out > 0.8 * (deletes + clears) as f64 && sampled_out <= (deletes + clears) as f64,
        "{ctx}: sampled out {sampled_out} of {}",
        deletes + clears
    );
    // --prometheus arms the exit probes 1 s in 100: what they saw is a part of the calls, if
    // any (the fixture's deletes may well all fall in the first second).
    let hists = histograms(&text, &ctx);
    let measured = |op: &str| -> u64 {
        hists
            .iter()
            .filter(|(k, _)| k.1 == op)
            .map(|(_, h)| h.count)
            .sum()
    };
    assert!(measured("delete") <= deletes as u64, "{ctx}: {hists:?}");
    assert!(measured("clear") <= clears as u64, "{ctx}: {hists:?}");
    let outcomes = outcome_counts(&text);
    for ((map_type, caller), (removed, absent)) in &outcomes {
        let calls = want
            .get(&("delete".into(), map_type.clone(), caller.clone()))
            .copied()
            .unwrap_or(0);
        assert!(
            removed + absent <= calls,
            "{ctx}: {map_type} at {caller}: {removed} removed + {absent} absent > {calls} calls"
        );
    }
    assert!(
        parse_samples(&text)
            .iter()
            .any(|(n, l, v)| n == "map_delete_by_caller" && !l.is_empty() && *v > 0.0),
        "{ctx}: map_delete_by_caller: {text}"
    );

    // The target exits: mdt too, and says so.
    fixture.finish(RUN_TIMEOUT, "the fixture ending");
    let Finished {
        status,
        stderr: err,
        ..
    } = mdt.finish(STOP_TIMEOUT, "mdt after its target exited");
    assert!(status.success(), "{ctx}: mdt exited {status}: {err}");
    assert!(
        err.contains(&format!("mdt: {deletes} deletes, {clears} clears")),
        "{ctx}: summary line: {err}"
    );
}

#[test]
fn metrics_are_exact_per_map_type_and_caller() {
    if !common::require_root_bpf() {
        return;
    }
    let Some(promtool) = require_program("promtool") else {
        return;
    };
    let tcs = common::toolchains();
    common::parallel::run_all(
        "metrics_are_exact_per_map_type_and_caller",
        &tcs,
        tcs.len(),
        |tc| tc.to_string(),
        |tc| run_exact(tc, &promtool),
    );
}

#[test]
fn a_real_prometheus_scrapes_mdt() {
    if !common::require_root_bpf() {
        return;
    }
    let Some(prometheus) = require_program("prometheus") else {
        return;
    };
    let started = Instant::now();
    let tc = common::toolchains().pop().expect("a toolchain");
    let ctx = format!("{tc} plain");
    let bin = common::build_fixture("deletes", &tc, Variant::Plain);
    let dir = Scratch::new("prometheus");
    let mdt_port = free_port();
    let (fixture, mut mdt) = start_traced(
        &ctx,
        &bin,
        &dir,
        &["-repeat", "2", "-hold"],
        &[
            "--quiet".into(),
            "--prometheus".into(),
            format!(":{mdt_port}"),
        ],
    );
    assert!(
        fixture
            .stdout
            .wait_for(RUN_TIMEOUT, |t| t.contains("clears done")),
        "{ctx}: the fixture did not finish"
    );
    let (deletes, _) = common::expected_deletes(&tc, Variant::Plain, 2);

    let (mut server, base) = start_prometheus(&ctx, &prometheus, &dir, mdt_port, None, None);
    let query = |q: &str| -> Result<f64, String> {
        prom_query(&base, q)?[0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no value yet for {q}"))
    };
    let total = poll(
        Duration::from_secs(60),
        &format!("{ctx}: sum(go_map_delete_total) from Prometheus"),
        || match query("sum(go_map_delete_total)")? {
            v if v == deletes as f64 => Ok(v),
            v => Err(format!("{v} (want {deletes})")),
        },
    );
    assert_eq!(total, deletes as f64);
    assert_eq!(
        query("map_delete_count_total").unwrap(),
        deletes as f64,
        "{ctx}"
    );
    assert_eq!(query("up").unwrap(), 1.0, "{ctx}: Prometheus sees mdt up");

    server.signal(libc::SIGTERM);
    server.finish(STOP_TIMEOUT, "prometheus stopping");
    drop(fixture);
    let err = mdt
        .finish(STOP_TIMEOUT, "mdt after its target was killed")
        .stderr;
    assert!(err.contains("deletes"), "{ctx}: {err}");
    common::note(&format!(
        "a_real_prometheus_scrapes_mdt: {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

/// A Prometheus server on loopback scraping mdt at `mdt_port` every second (and evaluating
/// `rules` every second, sending their alerts to the Alertmanager at `alertmanager`): the
/// server and its base URL, once ready.
fn start_prometheus(
    ctx: &str,
    prometheus: &Path,
    dir: &Scratch,
    mdt_port: u16,
    rules: Option<&Path>,
    alertmanager: Option<u16>,
) -> (Proc, String) {
    let config = dir.path("prometheus.yml");
    let rule_files = rules.map_or(String::new(), |r| {
        format!("rule_files:\n  - {}\n", r.display())
    });
    let alerting = alertmanager.map_or(String::new(), |port| {
        format!("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{port}']\n")
    });
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rule_files}{alerting}scrape_configs:\n  - job_name: mdt\n    static_configs:\n      - targets: ['127.0.0.1:{mdt_port}']\n"
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let mut cmd = Command::new(prometheus);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .current_dir(&dir.0);
    let server = Proc::spawn(&format!("{ctx}: prometheus"), cmd, Stdio::piped());
    let base = format!("http://127.0.0.1:{prom_port}");
    poll(
        Duration::from_secs(60),
        "prometheus ready",
        || match http_get(&format!("{base}/-/ready")) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}; stderr: {}", server.stderr.text())),
        },
    );
    (server, base)
}

/// An instant query's result (the array of series), or why there is none yet.
fn prom_query(base: &str, q: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut url = format!("{base}/api/v1/query?query=");
    for b in q.bytes() {
        if b.is_ascii_alphanumeric() || b"_:.".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    let (status, body) = http_get(&url)?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if status != 200 || v["status"] != "success" {
        return Err(body);
    }
    match v["data"]["result"].as_array() {
        Some(r) if !r.is_empty() => Ok(r.clone()),
        _ => Err(format!("no result yet for {q}")),
    }
}

/// A real Alertmanager with the shipped route (deploy/alertmanager/alertmanager.yml, its
/// receivers' URLs pointed at `hook`): the server, once ready, and its port.
fn start_alertmanager(ctx: &str, program: &Path, dir: &Scratch, hook: &Receiver) -> (Proc, u16) {
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/alertmanager/alertmanager.yml");
    let config = fs::read_to_string(shipped).unwrap().replace(
        "http://127.0.0.1:5001/",
        &format!("http://127.0.0.1:{}/", hook.port),
    );
    let path = dir.path("alertmanager.yml");
    fs::write(&path, config).unwrap();
    let port = free_port();
    let mut cmd = Command::new(program);
    cmd.arg(format!("--config.file={}", path.display()))
        .arg(format!("--storage.path={}", dir.path("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=");
    let server = Proc::spawn(&format!("{ctx}: alertmanager"), cmd, Stdio::null());
    poll(
        Duration::from_secs(60),
        "alertmanager ready",
        || match http_get(&format!("http://127.0.0.1:{port}/-/ready")) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}; stderr: {}", server.stderr.text())),
        },
    );
    (server, port)
}

/// The shipped `GoMapFatalError` rule (deploy/prometheus/rules.yml), evaluated by a real
/// Prometheus that scrapes mdt, and routed by a real Alertmanager with the shipped route
/// (deploy/alertmanager/alertmanager.yml) to a webhook: the crash fixture, traced with -p and
/// `--linger`, is scraped alive (the map errors at 0), then dies of "concurrent map writes";
/// Prometheus fires the alert for that message and that instance, and no other, and the
/// pager's receiver gets it.
#[test]
fn prometheus_and_alertmanager_deliver_the_shipped_fatal_alert() {
    if !common::require_root_bpf() {
        return;
    }
    let Some(prometheus) = require_program("prometheus") else {
        return;
    };
    let Some(am) = require_program("prometheus-alertmanager") else {
        return;
    };
    let started = Instant::now();
    let tc = common::toolchains().remove(0);
    let ctx = format!("{tc} plain fatal");
    let bin = common::build_fixture("crash", &tc, Variant::Plain);
    let dir = Scratch::new("prometheus-fatal");
    let go = dir.path("go");
    let mut target = Command::new(&bin);
    target
        .args(["-mode", "writes", "-pace", "200us", "-wait-file"])
        .arg(&go);
    let mut crash = Proc::spawn(&format!("{ctx}: crash"), target, Stdio::null());
    assert!(
        crash
            .stderr
            .wait_for(RUN_TIMEOUT, |s| s.contains("crash ready")),
        "{ctx}: the fixture did not start"
    );
    let mdt_port = free_port();
    let mut cmd = mdt_cmd(["trace", "--quiet", "--linger", "120s", "-p"]);
    cmd.arg(crash.pid().to_string())
        .args(["--prometheus", &format!("127.0.0.1:{mdt_port}")]);
    let mut mdt = Proc::spawn(&format!("{ctx}: mdt"), cmd, Stdio::null());
    mdt.wait_announce();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/rules.yml");
    let hook = Receiver::start(Behaviour::Answer);
    let (mut alertmanager, am_port) = start_alertmanager(&ctx, &am, &dir, &hook);
    let (mut server, base) = start_prometheus(
        &ctx,
        &prometheus,
        &dir,
        mdt_port,
        Some(&rules),
        Some(am_port),
    );
    let writes = r#"go_map_fatal_total{message="concurrent map writes"}"#;
    poll(
        RUN_TIMEOUT,
        &format!("{ctx}: {writes} at 0"),
        || match prom_query(&base, writes)?[0]["value"][1].as_str() {
            Some("0") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    fs::write(&go, "").unwrap();
    let alert = poll(
        RUN_TIMEOUT,
        &format!("{ctx}: GoMapFatalError firing"),
        || {
            prom_query(
                &base,
                r#"ALERTS{alertname="GoMapFatalError",alertstate="firing"}"#,
            )
        },
    );
    assert_eq!(alert.len(), 1, "{ctx}: {alert:?}");
    let labels = &alert[0]["metric"];
    assert_eq!(
        labels["message"], "concurrent map writes",
        "{ctx}: {labels}"
    );
    assert_eq!(labels["instance"], format!("127.0.0.1:{mdt_port}"), "{ctx}");
    assert_eq!(labels["severity"], "critical", "{ctx}");
    let up = prom_query(&base, "mdt_target_up").unwrap();
    assert_eq!(up[0]["value"][1], "0", "{ctx}: {up:?}");
    // Routed to the pager, at once, as Alertmanager's webhook payload.
    let paged = poll(RUN_TIMEOUT, &format!("{ctx}: the pager's webhook"), || {
        let got = hook.got.lock().unwrap();
        let to_pager: Vec<_> = got.iter().filter(|r| r.path == "/oncall").collect();
        match to_pager.first() {
            Some(r) => Ok(r.body.clone()),
            None => Err(format!(
                "{} deliveries elsewhere: {:?}",
                got.len(),
                got.iter().map(|r| &r.path).collect::<Vec<_>>()
            )),
        }
    });
    assert_eq!(paged["status"], "firing", "{ctx}: {paged}");
    assert_eq!(paged["receiver"], "oncall-pager", "{ctx}: {paged}");
    let alerts = paged["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{ctx}: {paged}");
    let labels = &alerts[0]["labels"];
    assert_eq!(labels["alertname"], "GoMapFatalError", "{ctx}: {paged}");
    assert_eq!(labels["message"], "concurrent map writes", "{ctx}: {paged}");
    assert_eq!(labels["instance"], format!("127.0.0.1:{mdt_port}"), "{ctx}");
    alertmanager.signal(libc::SIGTERM);
    alertmanager.finish(STOP_TIMEOUT, "alertmanager stopping");

    server.signal(libc::SIGTERM);
    server.finish(STOP_TIMEOUT, "prometheus stopping");
    mdt.signal(libc::SIGINT);
    let f = mdt.finish(STOP_TIMEOUT, "mdt lingering");
    assert!(f.status.success(), "{ctx}: {}", f.stderr);
    assert!(f.stderr.contains("1 fatal error"), "{ctx}: {}", f.stderr);
    let c = crash.finish(STOP_TIMEOUT, "the crash");
    assert_eq!(c.status.code(), Some(2), "{ctx}: {}", c.stderr);
    common::note(&format!(
        "prometheus_and_alertmanager_deliver_the_shipped_fatal_alert: {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

/// One `map_delete_duration_seconds` series: its buckets (upper bound in seconds, cumulative
/// count; `+Inf` last), sum and count.
#[derive(Debug, Default)]
struct Hist {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl Hist {
    /// The cumulative count at the bucket of upper bound `le` seconds.
    fn at(&self, le: f64) -> u64 {
        self.buckets
            .iter()
            .find(|(b, _)| *b == le)
            .map(|&(_, n)| n)
            .unwrap_or_else(|| panic!("no bucket le={le} in {self:?}"))
    }
}

fn label_of<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no label {name} in {labels:?}"))
}

/// `map_delete_duration_seconds` by (map type, op), checked for what any histogram must be:
/// the `le` labels are mdt's bounds in seconds and `+Inf`, the buckets cumulative, `+Inf` equal
/// to `_count`.
fn histograms(text: &str, ctx: &str) -> BTreeMap<(String, String), Hist> {
    let mut out: BTreeMap<(String, String), Hist> = BTreeMap::new();
    for (name, labels, value) in parse_samples(text) {
        let Some(part) = name.strip_prefix("map_delete_duration_seconds") else {
            continue;
        };
        let key = (
            label_of(&labels, "map_type").to_string(),
            label_of(&labels, "op").to_string(),
        );
        assert!(
            key.1 == "delete" || key.1 == "clear",
            "{ctx}: op {:?}",
            key.1
        );
        let h = out.entry(key).or_default();
        match part {
            "_bucket" => {
                let le = label_of(&labels, "le");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                h.buckets.push((le, value as u64));
            }
            "_sum" => h.sum = value,
            "_count" => h.count = value as u64,
            other => panic!("{ctx}: unexpected sample map_delete_duration_seconds{other}"),
        }
    }
    let want_le: Vec<f64> = mdt::probes::LATENCY_BOUNDS_NS
        .iter()
        .map(|&ns| ns as f64 / 1e9)
        .chain([f64::INFINITY])
        .collect();
    for (key, h) in &out {
        let le: Vec<f64> = h.buckets.iter().map(|b| b.0).collect();
        assert_eq!(le, want_le, "{ctx}: {key:?}: bucket bounds");
        assert!(
            h.buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{ctx}: {key:?}: buckets not cumulative: {h:?}"
        );
        assert_eq!(h.buckets.last().unwrap().1, h.count, "{ctx}: {key:?}: +Inf");
        assert!(
            h.sum >= 0.0 && (h.count > 0 || h.sum == 0.0),
            "{ctx}: {key:?}: {h:?}"
        );
    }
    out
}

/// (map type, caller) → (go_map_delete_removed_total, go_map_delete_absent_total).
fn outcome_counts(text: &str) -> BTreeMap<(String, String), (u64, u64)> {
    let mut out: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (name, labels, value) in parse_samples(text) {
        let removed = match name.as_str() {
            "go_map_delete_removed_total" => true,
            "go_map_delete_absent_total" => false,
            _ => continue,
        };
        let e = out
            .entry((
                label_of(&labels, "map_type").to_string(),
                label_of(&labels, "caller").to_string(),
            ))
            .or_default();
        if removed {
            e.0 += value as u64;
        } else {
            e.1 += value as u64;
        }
    }
    out
}

/// The sum of a metric's samples, whatever their labels.
fn total(text: &str, metric: &str) -> u64 {
    parse_samples(text)
        .iter()
        .filter(|(n, _, _)| n == metric)
        .map(|(_, _, v)| *v as u64)
        .sum()
}

/// A fixture whose stdout is a full pipe (of one page): it does its work, then blocks writing
/// its line until [`Held::release`] reads. Killed on drop.
struct Held {
    child: std::process::Child,
    out: Option<fs::File>,
    stderr: std::path::PathBuf,
}

impl Held {
    fn spawn(bin: &Path, args: &[&str], stderr: std::path::PathBuf) -> Held {
        use std::os::fd::{FromRawFd, OwnedFd};
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two descriptors of a new pipe.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are new and owned here only.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut w = fs::File::from(w);
        let wfd = std::os::fd::AsRawFd::as_raw_fd(&w);
        // SAFETY: fcntl on a descriptor owned here.
        unsafe {
            libc::fcntl(wfd, libc::F_SETPIPE_SZ, 4096);
            libc::fcntl(wfd, libc::F_SETFL, libc::O_NONBLOCK);
        }
        let chunk = [b'\n'; 4096];
        while w.write(&chunk).is_ok_and(|n| n > 0) {}
        while w.write(&chunk[..1]).is_ok_and(|n| n > 0) {}
        // SAFETY: as above; the fixture gets a blocking descriptor.
        unsafe { libc::fcntl(wfd, libc::F_SETFL, 0) };
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(OwnedFd::from(w)))
            .stderr(fs::File::create(&stderr).unwrap());
        let child = common::spawn_retrying(&mut cmd, "latency fixture");
        drop(cmd); // our end of the pipe: EOF once the fixture exits
        Held {
            child,
            out: Some(fs::File::from(r)),
            stderr,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Done: one of its threads waits to write to the full pipe (`pipe_write`, or
    /// `anon_pipe_write` since Linux 6.14).
    fn blocked(&self) -> bool {
        let Ok(tasks) = fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return false;
        };
        tasks.flatten().any(|t| {
            fs::read_to_string(t.path().join("wchan"))
                .is_ok_and(|w| w.trim().ends_with("pipe_write"))
        })
    }

    /// Waits until it is [`Held::blocked`]; false if it exits first or after `timeout`.
    fn wait_done(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if self.blocked() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Reads the pipe to its end (the fixture writes its line and exits) and reaps it; returns
    /// its numbers (`name=value` of its one line).
    fn release(&mut self, ctx: &str) -> BTreeMap<String, u64> {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut self.out.take().unwrap(), &mut text).unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "{ctx}: the fixture exited {status}: {}",
            self.stderr()
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("calls="))
            .unwrap_or_else(|| panic!("{ctx}: no line from the fixture: {}", self.stderr()));
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
            .collect()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The line of `func NAME` in the latency fixture's source, as mdt's `caller` label names it.
fn fixture_line(name: &str) -> String {
    let src = fs::read_to_string(common::repo_root().join("fixtures/latency/main.go")).unwrap();
    let n = src
        .lines()
        .position(|l| l.starts_with(&format!("func {name}(")))
        .unwrap_or_else(|| panic!("no func {name} in fixtures/latency/main.go"));
    format!("main.go:{}", n + 1)
}

/// What one run of the latency fixture under `mdt trace -p PID --quiet --prometheus ADDR FLAGS`
/// gave, scraped once the fixture was done.
struct LatencyRun {
    text: String,
    own: BTreeMap<String, u64>,
    hists: BTreeMap<(String, String), Hist>,
}

fn run_latency_fixture(
    ctx: &str,
    tc: &Toolchain,
    clear_size: u64,
    small: u64,
    flags: &[&str],
    promtool: Option<&Path>,
) -> LatencyRun {
    let bin = common::build_fixture("latency", tc, Variant::Plain);
    let dir = Scratch::new("metrics-latency");
    let go = dir.path("go");
    let (clear_size, small) = (clear_size.to_string(), small.to_string());
    let mut fixture = Held::spawn(
        &bin,
        &[
            "-wait-file",
            go.to_str().unwrap(),
            "-clear-size",
            &clear_size,
            "-small",
            &small,
        ],
        dir.path("fixture.err"),
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = mdt_cmd([
        "trace",
        "-p",
        &fixture.pid().to_string(),
        "--quiet",
        "--prometheus",
        &addr,
    ]);
    cmd.args(flags);
    let started = Instant::now();
    let mut mdt = Proc::spawn(&format!("{ctx}: mdt"), cmd, Stdio::null());
    mdt.wait_announce();
    fs::write(&go, b"").unwrap();
    let go_at = started.elapsed();
    assert!(
        fixture.wait_done(RUN_TIMEOUT),
        "{ctx}: the fixture did not finish: {}",
        fixture.stderr()
    );
    let done_at = started.elapsed();
    let small: u64 = small.parse().unwrap();
    let clears = u64::from(clear_size != "0");
    // What the fixture will say it did (checked below against what it says).
    let want = |text: &str| -> Result<(), String> {
        let hists = histograms(text, ctx);
        let count = |op: &str| -> u64 {
            hists
                .iter()
                .filter(|(k, _)| k.1 == op)
                .map(|(_, h)| h.count)
                .sum()
        };
        let got = (
            total(text, "go_map_delete_total"),
            count("delete"),
            count("clear"),
            total(text, "go_map_delete_removed_total"),
            total(text, "go_map_delete_absent_total"),
        );
        let want = (small, small, clears, small.div_ceil(2), small / 2);
        match got == want {
            true => Ok(()),
            false => Err(format!(
                "(deletes, measured deletes, measured clears, removed, absent) = {got:?}, want {want:?}"
            )),
        }
    };
    let url = format!("http://{addr}/metrics");
    let text = poll(
        Duration::from_secs(20),
        &format!("{ctx}: every call measured in {url}"),
        || {
            let (status, body) = http_get(&url)?;
            if status != 200 {
                return Err(format!("HTTP {status}"));
            }
            want(&body).map(|()| body)
        },
    );
    // Nothing more comes (the fixture is done): the next observations agree.
    std::thread::sleep(Duration::from_millis(1100));
    let (_, again) = http_get(&url).unwrap();
    want(&again).unwrap_or_else(|e| {
        panic!(
            "{ctx}: a second later: {e}
{again}"
        )
    });
    if let Some(promtool) = promtool {
        promtool_check(promtool, &text, ctx);
    }
    let own = fixture.release(ctx);
    assert_eq!(
        (own["deletes"], own["clears"], own["present"], own["absent"]),
        (small, clears, small.div_ceil(2), small / 2),
        "{ctx}: the fixture's own numbers {own:?}"
    );
    let Finished { status, stderr, .. } = mdt.finish(STOP_TIMEOUT, "mdt after its target exited");
    assert!(status.success(), "{ctx}: mdt exited {status}: {stderr}");
    assert!(
        stderr.contains(&format!("mdt: {small} deletes, {clears} clears")),
        "{ctx}: summary line: {stderr}"
    );
    common::note(&format!(
        "{ctx}: go at {:.2}s, done at {:.2}s after mdt started",
        go_at.as_secs_f64(),
        done_at.as_secs_f64()
    ));
    LatencyRun {
        hists: histograms(&text, ctx),
        text,
        own,
    }
}

fn run_latency(tc: &Toolchain, promtool: &Path) {
    let ctx = format!("{tc} plain");
    let small = 1000;
    let LatencyRun { text, own, hists } =
        run_latency_fixture(&ctx, tc, 1_000_000, small, &["--latency"], Some(promtool));
    let map_type = "map[int64]int";
    let del = &hists[&(map_type.to_string(), "delete".to_string())];
    let clear = &hists[&(map_type.to_string(), "clear".to_string())];
    assert_eq!(hists.len(), 2, "{ctx}: {hists:?}");
    assert_eq!(del.count, own["deletes"], "{ctx}");
    assert_eq!(clear.count, own["clears"], "{ctx}");
    // The clear of a million entries: at 100 µs or more, in seconds, and no longer than the
    // fixture's own clock said (mdt's interval lies inside the fixture's).
    assert_eq!(
        clear.at(50e-6),
        0,
        "{ctx}: the big clear under 100 µs: {clear:?}"
    );
    assert!(clear.sum >= 100e-6, "{ctx}: {clear:?}");
    assert!(
        clear.sum * 1e9 <= own["clear_ns"] as f64 + 1_000.0,
        "{ctx}: mdt's clear {}s > the fixture's {} ns",
        clear.sum,
        own["clear_ns"]
    );
    // The small deletes: the slowest no slower than the fixture's slowest, the sum below
    // that many times it.
    let slowest = del.buckets.iter().position(|b| b.1 == del.count).unwrap();
    let lower_ns = slowest
        .checked_sub(1)
        .map_or(0, |i| mdt::probes::LATENCY_BOUNDS_NS[i]);
    assert!(
        lower_ns <= own["small_max_ns"],
        "{ctx}: a delete over {lower_ns} ns, the fixture's slowest {} ns: {del:?}",
        own["small_max_ns"]
    );
    assert!(
        del.sum * 1e9 <= (own["small_max_ns"] * own["deletes"]) as f64 + 1_000.0,
        "{ctx}: {del:?}"
    );
    // Outcomes at the line of delSmall's delete, and nowhere else.
    let at = fixture_line("delSmall");
    let outcomes = outcome_counts(&text);
    assert_eq!(
        outcomes,
        BTreeMap::from([(
            (map_type.to_string(), at.clone()),
            (own["present"], own["absent"])
        )]),
        "{ctx}"
    );
    assert_eq!(
        scraped_counts(&text).get(&("delete".into(), map_type.into(), at)),
        Some(&own["deletes"]),
        "{ctx}"
    );
}

#[test]
fn latency_metrics_are_exact() {
    if !common::require_root_bpf() {
        return;
    }
    let Some(promtool) = require_program("promtool") else {
        return;
    };
    let tcs = common::toolchains();
    common::parallel::run_all(
        "latency_metrics_are_exact",
        &tcs,
        tcs.len(),
        |tc| tc.to_string(),
        |tc| run_latency(tc, &promtool),
    );
}

#[test]
fn the_default_duty_cycle_measures_the_first_second() {
    if !common::require_root_bpf() {
        return;
    }
    let tc = common::toolchains().pop().expect("a toolchain");
    let ctx = format!("{tc} plain, --prometheus alone");
    // A short run, at once: all of it in the first window.
    let LatencyRun { own, hists, .. } = run_latency_fixture(&ctx, &tc, 1000, 200, &[], None);
    let map_type = "map[int64]int".to_string();
    assert_eq!(
        hists[&(map_type.clone(), "delete".into())].count,
        own["deletes"],
        "{ctx}"
    );
    assert_eq!(
        hists[&(map_type, "clear".into())].count,
        own["clears"],
        "{ctx}"
    );
}

#[test]
fn address_errors_are_one_line() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    // The port is checked before anything is traced: no root, no target needed.
    expect_one_line_error(
        &["trace", "-p", "1", "--prometheus", &addr],
        &["--prometheus", &addr, "in use"],
    );
    expect_one_line_error(
        &["trace", "-p", "1", "--prometheus", "nonsense"],
        &["--prometheus", "HOST:PORT"],
    );
    expect_one_line_error(
        &["trace", "-p", "1", "--prometheus", "99999"],
        &["--prometheus", "out of range"],
    );
    expect_one_line_error(
        &["trace", "-p", "1", "--prometheus", "localhost"],
        &["--prometheus"],
    );
    expect_one_line_error(
        &["trace", "-p", "1", "--prometheus", ":0"],
        &["a port is required"],
    );
    expect_one_line_error(
        &["trace", "-p", "1", "--prometheus", "203.0.113.1:9464"],
        &["cannot listen"],
    );
    expect_one_line_error(&["trace", "-p", "1", "--quiet", "--json"], &["--quiet"]);
    expect_one_line_error(
        &["trace", "-p", "1", "--max-series", "0"],
        &["--max-series"],
    );
}
