//! `mdt trace --latency` and `--latency-sample` on the `latency` fixture (fixtures/latency),
//! which times its own calls and knows their outcomes, on every toolchain asked for
//! (`MDT_GO_VERSIONS`), with real exit probes on real Go processes:
//!
//! * `durations_are_the_calls_own`: a clear of a million entries takes, by mdt, within 2× of
//!   the fixture's own measurement; the small deletes are far below it; every delete's outcome
//!   is known, and the exact outcomes are the fixture's present/absent counts.
//! * `a_delete_that_panics_is_written_unmatched`: a delete whose key hash panics inside the
//!   runtime (an interface key holding a slice), recovered by the program: its record is
//!   written without `removed`/`duration_ns` and counted as unmatched; the goroutine's next
//!   delete is matched; nothing else is.
//! * `a_goroutine_that_moves_thread_mid_call_is_matched`: GOMAXPROCS 2, Gosched-heavy load,
//!   deletes preempted in their key's hash: the fixture sees deletes start on one thread and
//!   end on another, and mdt still matches every call.
//! * `windows_arm_the_exits_a_share_of_the_time`: `--latency-sample 0.5` arms the exit probes
//!   1 s in 2: the records of calls in a window have their outcome, the others have none,
//!   nothing is unmatched, and the summary says how long they were armed.
//!
//! Needs root and BPF: without them the tests are skipped, unless `CI=true` (then they fail).

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::proc::{Finished, Proc};
use common::{Scratch, Toolchain, Variant};
use serde_json::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(180);

fn mdt() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mdt"));
    cmd.env_remove("MAP_DELETE_TRACER_SAMPLING_RATE");
    cmd
}

/// What one traced run of the fixture produced.
struct Run {
    events: Vec<Value>,
    summary: Value,
    /// The fixture's own numbers (its one stdout line), by name.
    own: std::collections::HashMap<String, u64>,
}

impl Run {
    fn own(&self, name: &str) -> u64 {
        *self
            .own
            .get(name)
            .unwrap_or_else(|| panic!("the fixture printed no {name}="))
    }
}

/// `mdt trace --json -o FILE FLAGS -- latency ARGS`, to its end.
fn trace(ctx: &str, tc: &Toolchain, flags: &[&str], args: &[&str]) -> Run {
    let bin = common::build_fixture("latency", tc, Variant::Plain);
    let dir = Scratch::new("latency");
    let out = dir.path("trace.json");
    let mut cmd = mdt();
    cmd.args(["trace", "--json", "-o"])
        .arg(&out)
        .args(flags)
        .arg("--")
        .arg(&bin)
        .args(args);
    let mut p = Proc::spawn(&format!("{ctx}: mdt"), cmd, Stdio::null());
    let Finished {
        status,
        stdout,
        stderr,
    } = p.finish(RUN_TIMEOUT, "tracing the latency fixture");
    assert!(status.success(), "{ctx}: mdt {status}; stderr:\n{stderr}");
    let text = fs::read_to_string(&out).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{ctx}: {e}: {l}")))
        .collect();
    let summary = lines.last().cloned().expect("a summary");
    assert_eq!(summary["type"], "summary", "{ctx}: last line {summary}");
    let events = lines
        .into_iter()
        .filter(|r| r["type"] == "delete" || r["type"] == "clear")
        .collect();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let own = stdout
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0)))
        .collect();
    Run {
        events,
        summary,
        own,
    }
}

fn for_toolchains(test: &str, f: impl Fn(&Toolchain) + Sync) {
    if !common::require_root_bpf() {
        return;
    }
    let tcs = common::toolchains();
    common::parallel::run_all(test, &tcs, 2, |tc| tc.to_string(), f);
}

/// The calls of `caller_func` (the function that called delete), by record.
fn of<'a>(run: &'a Run, caller_func: &str) -> Vec<&'a Value> {
    run.events
        .iter()
        .filter(|e| {
            e["caller"]
                .as_str()
                .is_some_and(|c| c.split(' ').next() == Some(caller_func))
        })
        .collect()
}

fn duration(e: &Value) -> u64 {
    e["duration_ns"]
        .as_u64()
        .unwrap_or_else(|| panic!("no duration_ns: {e}"))
}

/// No record waits in vain: unmatched only where an exit record was lost (a
/// full ring) or its entry evicted, and none at all when nothing was lost.
fn check_unmatched(run: &Run, ctx: &str) {
    let s = &run.summary;
    let u = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("{ctx}: {s}"));
    let unmatched = u(&s["unmatched"]);
    let o = &s["outcomes"];
    let excused = u(&o["exits_lost"]) + u(&o["exits_without_entry"]);
    assert!(unmatched <= excused, "{ctx}: {unmatched} unmatched: {s}");
    if u(&s["lost"]) == 0 {
        assert_eq!(unmatched, 0, "{ctx}: nothing lost, yet unmatched: {s}");
    }
}

/// The summary's exact outcomes: (removed, absent, returned, never_returned).
fn outcomes(run: &Run, ctx: &str) -> (u64, u64, u64, u64) {
    let o = &run.summary["outcomes"];
    let u = |k: &str| {
        o[k].as_u64()
            .unwrap_or_else(|| panic!("{ctx}: outcomes.{k}: {}", run.summary))
    };
    (
        u("removed"),
        u("absent"),
        u("returned"),
        u("never_returned"),
    )
}

#[test]
fn durations_are_the_calls_own() {
    for_toolchains("durations", |tc| {
        let ctx = format!("{tc} durations");
        // A clear of 4M entries (~10 ms): a small delete's duration includes
        // the single-step of the probed instruction, ~20-30 µs on this VM,
        // which a clear of 1M (~2.7 ms on go1.19) did not always outweigh
        // 100 times.
        let run = trace(
            &ctx,
            tc,
            &["--latency"],
            &["-small", "400", "-clear-size", "4000000"],
        );
        let calls = run.own("calls");
        assert_eq!(run.events.len() as u64, calls, "{ctx}: a record per call");
        assert_eq!(run.summary["unmatched"], 0, "{ctx}: {}", run.summary);
        assert_eq!(
            outcomes(&run, &ctx),
            (run.own("present"), run.own("absent"), calls, 0),
            "{ctx}: exact outcomes vs the fixture's own: {}",
            run.summary
        );

        let clear = of(&run, "main.clearBig");
        assert_eq!(clear.len(), 1, "{ctx}: one big clear");
        assert_eq!(clear[0]["cleared"], run.own("clear_len"), "{ctx}");
        assert!(
            clear[0].get("removed").is_none(),
            "{ctx}: a clear has no `removed`"
        );
        let (mdt_ns, own_ns) = (duration(clear[0]), run.own("clear_ns"));
        assert!(
            mdt_ns <= own_ns && mdt_ns * 2 >= own_ns,
            "{ctx}: the clear took {mdt_ns} ns by mdt, {own_ns} ns by the fixture's clock"
        );

        let small = of(&run, "main.delSmall");
        assert_eq!(small.len(), 400, "{ctx}: the small deletes");
        let removed = small.iter().filter(|e| e["removed"] == true).count();
        let absent = small.iter().filter(|e| e["removed"] == false).count();
        assert_eq!(
            (removed, absent),
            (200, 200),
            "{ctx}: present/absent alternate"
        );
        let mut ns: Vec<u64> = small.iter().map(|e| duration(e)).collect();
        ns.sort_unstable();
        let median = ns[ns.len() / 2];
        assert!(
            median > 0 && median * 100 < mdt_ns,
            "{ctx}: small deletes take {median} ns (median), the clear of a million {mdt_ns} ns"
        );
    });
}

#[test]
fn a_delete_that_panics_is_written_unmatched() {
    for_toolchains("panics", |tc| {
        let ctx = format!("{tc} panic");
        let run = trace(
            &ctx,
            tc,
            &["--latency"],
            &["-clear-size", "0", "-small", "10", "-panic"],
        );
        assert_eq!(run.own("panicked"), 1, "{ctx}: the fixture recovered");
        let iface = of(&run, "main.delIface");
        assert_eq!(
            iface.len(),
            2,
            "{ctx}: the panicking delete and the next one"
        );
        let unmatched: Vec<_> = run
            .events
            .iter()
            .filter(|e| e.get("duration_ns").is_none())
            .collect();
        assert_eq!(unmatched.len(), 1, "{ctx}: one record without its exit");
        let bad = unmatched[0];
        assert!(
            bad.get("removed").is_none()
                && bad["caller"].as_str().unwrap().starts_with("main.delIface"),
            "{ctx}: the panicking delete is the one: {bad}"
        );
        assert_eq!(run.summary["unmatched"], 1, "{ctx}: {}", run.summary);
        let next = iface
            .iter()
            .find(|e| e.get("duration_ns").is_some())
            .unwrap();
        assert_eq!(
            next["removed"], true,
            "{ctx}: the next delete removed \"a\""
        );
        assert_eq!(
            next["goid"], bad["goid"],
            "{ctx}: the same goroutine deleted again"
        );
        let (removed, absent, returned, never) = outcomes(&run, &ctx);
        assert_eq!(
            (removed, absent, returned, never),
            (
                run.own("present"),
                run.own("absent"),
                run.own("calls") - 1,
                1
            ),
            "{ctx}: the call that never returned is counted as such: {}",
            run.summary
        );
    });
}

#[test]
fn a_goroutine_that_moves_thread_mid_call_is_matched() {
    for_toolchains("migration", |tc| {
        let ctx = format!("{tc} migration");
        let run = trace(
            &ctx,
            tc,
            &["--latency", "--stack-depth", "4", "--key-bytes", "0"],
            &[
                "-clear-size",
                "0",
                "-small",
                "0",
                "-migrate",
                "5",
                "-migrate-for",
                "60s",
            ],
        );
        let moved = run.own("migrations");
        assert!(
            moved >= 5,
            "{ctx}: the fixture saw only {moved} deletes end on another thread than they began"
        );
        let deletes = of(&run, "main.delKey");
        assert_eq!(
            deletes.len() as u64,
            run.own("migrate_deletes"),
            "{ctx}: {}",
            run.summary
        );
        assert!(
            deletes
                .iter()
                .all(|e| e["removed"] == true && e["duration_ns"].is_u64()),
            "{ctx}: every delete matched to its exit and removing its key"
        );
        check_unmatched(&run, &ctx);
        assert_eq!(run.summary["unmatched"], 0, "{ctx}: {}", run.summary);
        let (removed, absent, returned, never) = outcomes(&run, &ctx);
        assert_eq!(
            (removed, absent, returned, never),
            (run.own("present"), run.own("absent"), run.own("calls"), 0),
            "{ctx}: {}",
            run.summary
        );
    });
}

#[test]
fn windows_arm_the_exits_a_share_of_the_time() {
    for_toolchains("windows", |tc| {
        let ctx = format!("{tc} --latency-sample 0.5");
        // ~3.5 s of deletes: windows at 0–1 s and 2–3 s.
        let run = trace(
            &ctx,
            tc,
            &["--latency-sample", "0.5", "--stack-depth", "4"],
            &[
                "-clear-size",
                "0",
                "-small",
                "0",
                "-migrate",
                "1000000000",
                "-migrate-for",
                "3500ms",
                // ~5k deletes a second from each of the three goroutines,
                // which a debug build of mdt reads without losing any even
                // beside other tests: unpaced, the ring can stay full of the
                // windows' records through the gaps between them.
                "-migrate-pace",
                "500us",
            ],
        );
        let deletes = of(&run, "main.delKey");
        let with: Vec<_> = deletes
            .iter()
            .filter(|e| e["duration_ns"].is_u64())
            .collect();
        let without = deletes.len() - with.len();
        assert!(
            !with.is_empty() && without > 0,
            "{ctx}: {} deletes with an outcome, {without} without",
            with.len()
        );
        assert!(
            with.iter().all(|e| e["removed"] == true),
            "{ctx}: every measured delete removed its key"
        );
        check_unmatched(&run, &ctx);
        let armed = run.summary["outcomes"]["armed"].as_f64().unwrap();
        let total = run.summary["duration"].as_f64().unwrap();
        // Two windows of 1 s; each ends at the first tick after its second,
        // which a busy reader can delay by a few hundred milliseconds.
        assert!(
            (1.9..=3.4).contains(&armed) && armed < total,
            "{ctx}: armed {armed:.2}s of {total:.2}s, expected two 1 s windows"
        );
        let (removed, absent, returned, _) = outcomes(&run, &ctx);
        assert_eq!(absent, 0, "{ctx}");
        assert!(
            removed >= with.len() as u64 && returned >= removed && removed < run.own("calls"),
            "{ctx}: exact outcomes are the windows' calls: {}",
            run.summary
        );
    });
}
