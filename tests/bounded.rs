//! mdt under a load where nearly every delete has a stack never seen before
//! (`fixtures/newstacks`: a delete from a fresh map at the bottom of a random call chain, as
//! fast as one goroutine can): in each mode, with small limits set by flags, mdt's memory stays
//! under a bound (its VmHWM, sampled from /proc while it runs and while it stops), SIGINT or
//! SIGTERM end it within a second with a complete summary, and the summary adds up: every
//! delete the kernel counted is a record, sampled out, lost (counted) or filtered out.
//!
//! * `json_to_a_file`: `--json -o FILE`; every record line is there, and the summary's
//!   `records` is their number.
//! * `json_to_a_pipe_and_sigterm`: `--json` on stdout, read by the test; stopped by SIGTERM.
//! * `metrics_only`: `--quiet --prometheus`: no records at all, the exact count served.
//! * `flame`: `mdt flame --max-stacks 1024`: its outputs are written whole, every delete in them
//!   (by stack, or as not recorded once the kernel's table is full).
//! * `launch_mode_counts_every_delete`: `mdt trace -- newstacks`: SIGINT goes to the program,
//!   which stops and prints how many deletes it did; mdt's exact total is that number.
//!
//! The terminal UI under the same load is in tests/tui_e2e.rs (`q_under_load_...`).
//! Needs root and BPF: without them the tests are skipped, unless `CI=true` (then they fail).

mod common;
mod monitor_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::proc::Proc;
use common::Variant;
use monitor_common::{free_port, http_get, mdt_cmd, poll, Scratch};

/// Small limits, so that a bound is reached within seconds.
pub const LIMITS: &[&str] = &[
    "--buffer-size",
    "4M",
    "--max-stacks",
    "256",
    "--max-rows",
    "512",
];
/// mdt's peak resident memory with [`LIMITS`] (a debug build: its code alone is ~25 MiB).
const RSS_BOUND_KIB: u64 = 96 * 1024;
/// How long each mode runs under the load before it is stopped.
const UNDER_LOAD: Duration = Duration::from_secs(4);
/// A stop is honoured within this long, whatever the load.
const STOP_WITHIN: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(60);

/// One test at a time: each runs a load that takes a core and an mdt that
/// takes another, and the stop time they measure must not be the other
/// test's.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn newstacks() -> std::path::PathBuf {
    common::build_fixture("newstacks", &common::toolchain("1.27"), Variant::Plain)
}

/// The load, running (until dropped).
fn start_load() -> Proc {
    let mut cmd = Command::new(newstacks());
    cmd.args(["-goroutines", "1"]);
    let p = Proc::spawn("newstacks", cmd, Stdio::null());
    assert!(
        p.stderr.wait_for(TIMEOUT, |t| t.contains("ready pid=")),
        "newstacks did not start: {}",
        p.stderr.text()
    );
    p
}

/// Watches mdt's memory while it runs under the load for [`UNDER_LOAD`].
fn run_under_load(mdt: &Proc) -> u64 {
    mdt.wait_announce();
    let mut peak = 0;
    let end = Instant::now() + UNDER_LOAD;
    while Instant::now() < end {
        assert!(
            !mdt.has_exited(),
            "mdt exited under load: {}",
            mdt.stderr.text()
        );
        peak = peak.max(common::peak_rss_kib(mdt.pid()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    peak
}

/// Sends `sig` and waits for mdt to exit, watching its memory; returns how long it took and
/// the peak resident set seen.
fn stop(mdt: &Proc, sig: i32, mut peak: u64) -> (Duration, u64) {
    let t0 = Instant::now();
    mdt.signal(sig);
    let exited = mdt.wait_until(TIMEOUT, |p| {
        if let Some(kib) = common::peak_rss_kib(p.pid()) {
            peak = peak.max(kib);
        }
        p.has_exited()
    });
    assert!(exited, "mdt still runs {TIMEOUT:?} after signal {sig}");
    (t0.elapsed(), peak)
}

/// The bound and the stop time, with what mdt said.
fn assert_bounded(what: &str, took: Duration, peak: u64, stderr: &str) {
    assert!(
        took < STOP_WITHIN,
        "{what}: mdt took {took:?} to stop (at most {STOP_WITHIN:?}); stderr:\n{stderr}"
    );
    assert!(
        peak > 0 && peak < RSS_BOUND_KIB,
        "{what}: mdt's peak RSS was {peak} KiB (bound {RSS_BOUND_KIB} KiB); stderr:\n{stderr}"
    );
}

/// Runs `cmd` (an mdt command) under the load, stops it with `sig` and
/// checks it stopped within [`STOP_WITHIN`] under [`RSS_BOUND_KIB`]; returns
/// what it wrote.
fn run_and_stop(name: &str, cmd: Command, sig: i32) -> common::proc::Finished {
    let mut mdt = Proc::spawn(name, cmd, Stdio::null());
    let peak = run_under_load(&mdt);
    let (took, peak) = stop(&mdt, sig, peak);
    let f = mdt.finish_ok(TIMEOUT, "after the signal");
    assert_bounded(name, took, peak, &f.stderr);
    f
}

/// The JSON summary adds up, and says the load was heavy enough to matter.
fn assert_summary_adds_up(what: &str, s: &serde_json::Value) {
    let n = |k: &str| {
        s[k].as_u64()
            .unwrap_or_else(|| panic!("{what}: summary without {k}: {s}"))
    };
    assert_eq!(s["type"], "summary", "{what}: {s}");
    assert_eq!(
        n("deletes") + n("clears"),
        n("records") + n("sampled_out") + n("lost") + n("filtered_out"),
        "{what}: deletes + clears = records + sampled_out + lost + filtered_out: {s}"
    );
    assert!(n("deletes") > 100_000, "{what}: the load did not run: {s}");
    assert!(n("records") > 1000, "{what}: hardly any records: {s}");
    assert!(
        n("stack_lost") <= n("records"),
        "{what}: stack_lost counts records: {s}"
    );
}

fn trace_cmd(pid: i32, extra: &[&str]) -> Command {
    let pid = pid.to_string();
    let mut args = vec!["trace", "-p", &pid];
    args.extend_from_slice(LIMITS);
    args.extend_from_slice(extra);
    mdt_cmd(args)
}

#[test]
fn json_to_a_file() {
    if !common::require_root_bpf() {
        return;
    }
    let _serial = one_at_a_time();
    let load = start_load();
    let scratch = Scratch::new("bounded-json-file");
    let out = scratch.path("records.json");
    run_and_stop(
        "mdt trace --json -o FILE",
        trace_cmd(load.pid(), &["--json", "-o", out.to_str().unwrap()]),
        libc::SIGINT,
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let summary: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_summary_adds_up("json to a file", &summary);
    let records = lines
        .iter()
        .filter(|l| l.starts_with("{\"type\":\"delete\""))
        .count() as u64;
    assert_eq!(Some(records), summary["records"].as_u64(), "{summary}");
    // Every record is whole, and names its stack (or says it has none).
    for l in &lines[..lines.len() - 1] {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        match v["type"].as_str() {
            Some("delete") => {
                let stack = v["stack"].as_array().unwrap();
                let lost = v["stack_lost"] == true;
                assert!(lost == stack.is_empty(), "{l}");
                if !lost {
                    assert_eq!(
                        v["caller"].as_str().unwrap().split(' ').next(),
                        Some("main.bottom"),
                        "{l}"
                    );
                }
            }
            // The load's maps live on its goroutines' stacks for one delete
            // each: read after they are gone, they are reported gone.
            Some("lost" | "map") => {}
            other => panic!("unexpected record type {other:?}: {l}"),
        }
    }
}

#[test]
fn json_to_a_pipe_and_sigterm() {
    if !common::require_root_bpf() {
        return;
    }
    let _serial = one_at_a_time();
    let load = start_load();
    let f = run_and_stop(
        "mdt trace --json",
        trace_cmd(load.pid(), &["--json"]),
        libc::SIGTERM,
    );
    let text = f.stdout_text();
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_summary_adds_up("json to a pipe", &summary);
}

#[test]
fn metrics_only() {
    if !common::require_root_bpf() {
        return;
    }
    let _serial = one_at_a_time();
    let load = start_load();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mdt = Proc::spawn(
        "mdt trace --quiet --prometheus",
        trace_cmd(load.pid(), &["--quiet", "--prometheus", &addr]),
        Stdio::null(),
    );
    let peak = run_under_load(&mdt);
    let url = format!("http://{addr}/metrics");
    let served = poll(TIMEOUT, "map_delete_count_total", || {
        let (_, body) = http_get(&url)?;
        let samples = monitor_common::parse_samples(&body);
        samples
            .iter()
            .find(|s| s.0 == "map_delete_count_total")
            .map(|s| s.2 as u64)
            .filter(|&v| v > 0)
            .ok_or_else(|| body.clone())
    });
    let (took, peak) = stop(&mdt, libc::SIGINT, peak);
    let mut mdt = mdt;
    let f = mdt.finish_ok(TIMEOUT, "after SIGINT");
    assert_bounded("metrics only", took, peak, &f.stderr);
    // "mdt: N deletes, 0 clears in Xs (exact); counted in the kernel, no records; R removed,
    // A absent (exact at the exits, over 1.0s)": the default latency window of --prometheus.
    let line = f
        .stderr
        .lines()
        .find(|l| l.contains(" deletes, "))
        .unwrap_or_else(|| panic!("no summary line: {}", f.stderr));
    assert!(
        line.contains("(exact); counted in the kernel, no records; ")
            && line.ends_with(" absent (exact at the exits, over 1.0s)"),
        "{line}"
    );
    let deletes: u64 = line
        .trim_start_matches("mdt: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        deletes >= served,
        "{line}: fewer than the {served} served before"
    );
}

#[test]
fn flame() {
    if !common::require_root_bpf() {
        return;
    }
    let _serial = one_at_a_time();
    let load = start_load();
    let scratch = Scratch::new("bounded-flame");
    let (svg, folded) = (scratch.path("d.svg"), scratch.path("d.folded"));
    let pid = load.pid().to_string();
    let f = run_and_stop(
        "mdt flame",
        mdt_cmd([
            "flame",
            "-p",
            &pid,
            "--max-stacks",
            "1024",
            "-o",
            svg.to_str().unwrap(),
            "-o",
            folded.to_str().unwrap(),
        ]),
        libc::SIGINT,
    );
    // Every delete counted is in the graph: by stack, or as not recorded.
    let total: u64 = std::fs::read_to_string(&folded)
        .unwrap()
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let line = f
        .stderr
        .lines()
        .find(|l| l.contains("wrote "))
        .unwrap_or_default();
    assert!(
        line.contains(&format!("({total} deletes in ")),
        "{line} vs {total} in the folded file; stderr:\n{}",
        f.stderr
    );
    assert!(total > 100_000, "{total}");
    assert!(std::fs::metadata(&svg).unwrap().len() > 0);
}

#[test]
fn launch_mode_counts_every_delete() {
    if !common::require_root_bpf() {
        return;
    }
    let _serial = one_at_a_time();
    let bin = newstacks();
    let scratch = Scratch::new("bounded-launch");
    let out = scratch.path("records.json");
    let mut args = vec!["trace", "--json", "-o", out.to_str().unwrap()];
    args.extend_from_slice(LIMITS);
    args.extend_from_slice(&["--", bin.to_str().unwrap(), "-goroutines", "1"]);
    // The first SIGINT goes to the program, which stops: mdt follows it.
    let f = run_and_stop("mdt trace -- newstacks", mdt_cmd(args), libc::SIGINT);
    let text = std::fs::read_to_string(&out).unwrap();
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_summary_adds_up("launch mode", &summary);
    let said = f
        .stdout_text()
        .lines()
        .find_map(|l| l.strip_prefix("newstacks: deletes="))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the program's count: {}", f.stdout_text()));
    assert_eq!(summary["deletes"].as_u64(), Some(said), "{summary}");
    assert_eq!(summary["target_exit"], "exit status 0", "{summary}");
}
