//! `mdt trace --prometheus`, end to end, as root with real uprobes:
//!
//! * `metrics_are_exact_per_map_type_and_caller`: the `deletes` fixture (every toolchain of the
//!   matrix, plain build) traced with `--quiet --prometheus ADDR --sample 0.01`; the scraped
//!   text passes `promtool check metrics`, and `go_map_delete_total` / `go_map_clear_total`
//!   equal, per map type and call site, what the fixture says it did (`-expect`), despite the
//!   sampling; the health metrics say what happened.
//! * `a_real_prometheus_scrapes_mdt`: a Prometheus server on loopback scrapes mdt every second;
//!   its HTTP API answers `sum(go_map_delete_total)` with the fixture's exact total.
//! * `address_errors_are_one_line`: a port in use, a bad address: one line, non-zero exit
//!   (no root needed).
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
    assert!(
        !text.contains("map_delete_duration_seconds"),
        "{ctx}: no latency yet"
    );
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

    let config = dir.path("prometheus.yml");
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: mdt\n    static_configs:\n      - targets: ['127.0.0.1:{mdt_port}']\n"
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let mut cmd = Command::new(&prometheus);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .current_dir(&dir.0);
    let mut server = Proc::spawn(&format!("{ctx}: prometheus"), cmd, Stdio::piped());
    let base = format!("http://127.0.0.1:{prom_port}");
    poll(
        Duration::from_secs(60),
        "prometheus ready",
        || match http_get(&format!("{base}/-/ready")) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}; stderr: {}", server.stderr.text())),
        },
    );
    let query = |q: &str| -> Result<f64, String> {
        let url = format!(
            "{base}/api/v1/query?query={}",
            q.replace(' ', "%20")
                .replace('(', "%28")
                .replace(')', "%29")
        );
        let (status, body) = http_get(&url)?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(body);
        }
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no value yet: {body}"))
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
