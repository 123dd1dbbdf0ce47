//! Crash forensics against the crash fixture (fixtures/crash), on every toolchain of the
//! matrix: each mode really dies of its map error, with the runtime's own exit status (2) and
//! crash text, traced or not; traced by mdt (launched, and with -p), it gets exactly one
//! `fatal` record naming the goroutine that died, with the other goroutine of the race in
//! `running` (or, the deleter, in `recent`), and the kernel's count of deletes in the window
//! equal to the delete records mdt wrote in it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::proc::Proc;
use common::{for_jobs, Scratch};
use serde_json::Value;

const MODES: &[(&str, &str)] = &[
    ("writes", "fatal error: concurrent map writes"),
    ("read", "fatal error: concurrent map read and map write"),
    (
        "iterate",
        "fatal error: concurrent map iteration and map write",
    ),
];

use common::plain_and_noswiss_jobs as jobs;

#[test]
fn each_mode_dies_of_its_map_error() {
    for_jobs("each_mode_dies_of_its_map_error", jobs(), |tc, v| {
        let bin = common::build_fixture("crash", tc, v);
        for (mode, message) in MODES {
            let t0 = Instant::now();
            let out = common::output_retrying(
                Command::new(&bin).args(["-mode", mode, "-timeout", "20s"]),
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{tc} {v} {mode}: exit {:?}\n{stderr}",
                out.status
            );
            let first = stderr.lines().find(|l| l.starts_with("fatal error:"));
            assert_eq!(first, Some(*message), "{tc} {v} {mode}:\n{stderr}");
            // The goroutine that noticed is in the crash text: one of the fixture's two.
            assert!(
                stderr.contains("main.assigner")
                    || stderr.contains("main.deleter")
                    || stderr.contains("main.reader")
                    || stderr.contains("main.iterator"),
                "{tc} {v} {mode}: no fixture goroutine in the crash text\n{stderr}"
            );
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "{tc} {v} {mode}: {:?}",
                t0.elapsed()
            );
        }
    });
}

/// The fixture's deleter (reader, iterator) rests this long after each operation: a debug
/// build of mdt beside the other jobs reads all its records (the race still comes at once).
const PACE: &str = "200us";

/// The fixture's goroutines, and the source line of the map operation each repeats.
const GOROUTINES: &[(&str, &str)] = &[
    ("main.deleter", "delete(m, i&1023)"),
    ("main.assigner", "m[i&1023] = i"),
    ("main.reader", "sink += m[i&1023]"),
    ("main.iterator", "for k := range m"),
];

/// The line of `needle` in the fixture's source (1-based).
fn line_of(needle: &str) -> u64 {
    let src = std::fs::read_to_string(common::repo_root().join("fixtures/crash/main.go")).unwrap();
    src.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in fixtures/crash/main.go")) as u64
        + 1
}

/// The fixture goroutine a stack runs (its frame), if any.
fn fixture_frame(stack: &Value) -> Option<(&str, u64)> {
    stack.as_array()?.iter().find_map(|f| {
        let func = f["func"].as_str()?;
        GOROUTINES
            .iter()
            .any(|(g, _)| *g == func)
            .then(|| (func, f["line"].as_u64().unwrap_or(0)))
    })
}

fn mdt_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mdt"))
}

struct Traced {
    records: Vec<Value>,
    target_status: Option<i32>,
    target_stderr: String,
}

/// The fixture in `mode`, launched by mdt.
fn launched(ctx: &str, bin: &Path, mode: &str, dir: &Scratch) -> Traced {
    let out = dir.path("launch.json");
    let mut cmd = Command::new(mdt_bin());
    cmd.args(["trace", "--json", "-o"])
        .arg(&out)
        .arg("--")
        .arg(bin)
        .args(["-mode", mode, "-pace", PACE]);
    let mut p = Proc::spawn(&format!("{ctx}: mdt trace --"), cmd, Stdio::null());
    let f = p.finish(Duration::from_secs(60), "the crash");
    Traced {
        records: common::read_json_lines(&out),
        // Launched, mdt exits with the program's status and passes its stderr on.
        target_status: f.status.code(),
        target_stderr: f.stderr,
    }
}

/// The fixture in `mode`, started apart and traced with -p; it is reaped only after mdt
/// ended (mdt reads its status from the zombie).
fn attached(ctx: &str, bin: &Path, mode: &str, dir: &Scratch) -> Traced {
    let out = dir.path("pid.json");
    let go = dir.path("go");
    let _ = std::fs::remove_file(&go);
    let mut target = Command::new(bin);
    target
        .args(["-mode", mode, "-pace", PACE, "-wait-file"])
        .arg(&go);
    let mut t = Proc::spawn(&format!("{ctx}: crash"), target, Stdio::null());
    assert!(
        t.stderr
            .wait_for(Duration::from_secs(30), |s| s.contains("crash ready")),
        "{ctx}: the fixture did not start"
    );
    let mut cmd = Command::new(mdt_bin());
    cmd.args(["trace", "--json", "-p", &t.pid().to_string(), "-o"])
        .arg(&out);
    let mut m = Proc::spawn(&format!("{ctx}: mdt trace -p"), cmd, Stdio::null());
    m.wait_announce();
    std::fs::write(&go, "").unwrap();
    let f = m.finish(Duration::from_secs(60), "the crash");
    assert!(
        f.status.success(),
        "{ctx}: mdt -p: {}\n{}",
        f.status,
        f.stderr
    );
    let tf = t.finish(Duration::from_secs(30), "the crash");
    Traced {
        records: common::read_json_lines(&out),
        target_status: tf.status.code(),
        target_stderr: tf.stderr,
    }
}

/// Checks everything the record says; returns whether the other party of the race was found
/// (running on another thread, or, the deleter, among the recent deletes).
fn check_forensics(ctx: &str, mode: &str, message: &str, t: &Traced) -> bool {
    // Records without their stacks and recent deletes: a failure's message stays short.
    let brief = |r: &Value| {
        let mut r = r.clone();
        if let Some(o) = r.as_object_mut() {
            o.remove("stack");
            if let Some(gs) = o
                .get_mut("running")
                .and_then(|r| r["goroutines"].as_array_mut())
            {
                for g in gs {
                    g.as_object_mut().map(|g| g.remove("stack"));
                }
            }
            if let Some(w) = o.get_mut("recent").and_then(|w| w.as_object_mut()) {
                w.remove("events");
            }
        }
        r.to_string()
    };
    let all = || {
        let fatal: Vec<String> = t
            .records
            .iter()
            .filter(|r| r["type"] != "delete")
            .map(brief)
            .collect();
        fatal.join("\n")
    };
    assert_eq!(
        t.target_status,
        Some(2),
        "{ctx}: target status\n{}",
        t.target_stderr
    );
    let first = t
        .target_stderr
        .lines()
        .find(|l| l.starts_with("fatal error:"));
    assert_eq!(
        first,
        Some(message),
        "{ctx}: crash text\n{}",
        t.target_stderr
    );

    let fatals: Vec<&Value> = t.records.iter().filter(|r| r["type"] == "fatal").collect();
    assert_eq!(fatals.len(), 1, "{ctx}: fatal records\n{}", all());
    let f = fatals[0];
    let fb = brief(f);
    let summary = t
        .records
        .iter()
        .find(|r| r["type"] == "summary")
        .expect("a summary");
    assert_eq!(summary["target_exit"], "exit status 2", "{ctx}: {summary}");
    assert_eq!(summary["fatal_errors"], 1, "{ctx}: {summary}");
    assert_eq!(
        f["message"],
        message.trim_start_matches("fatal error: "),
        "{ctx}: {fb}"
    );
    assert_eq!(f["map_misuse"], true, "{ctx}");
    assert!(
        f["goid"].as_u64().is_some_and(|g| g > 0),
        "{ctx}: goid {fb}"
    );
    assert_eq!(f["stack"][0]["func"], "runtime.fatal", "{ctx}: {fb}");

    // The goroutine that died is one of the two of the race, at its map operation's line.
    let (died, died_line) = fixture_frame(&f["stack"]).unwrap_or_else(|| panic!("{ctx}: {fb}"));
    let other = match (mode, died) {
        ("writes", "main.deleter") => "main.assigner",
        ("writes", "main.assigner") => "main.deleter",
        ("read", "main.reader") | ("iterate", "main.iterator") => "main.assigner",
        ("read", "main.assigner") => "main.reader",
        ("iterate", "main.assigner") => "main.iterator",
        _ => panic!("{ctx}: {died} died in mode {mode}"),
    };
    let op_line = |g: &str| line_of(GOROUTINES.iter().find(|(n, _)| *n == g).unwrap().1);
    assert_eq!(died_line, op_line(died), "{ctx}: line of {died}");
    assert!(
        f["caller"].as_str().unwrap().starts_with(died),
        "{ctx}: caller {}",
        f["caller"]
    );
    // The map, when the goroutine died deleting (its delete's record names it).
    if died == "main.deleter" {
        assert_eq!(f["map_type"], "map[int64]int64", "{ctx}: {fb}");
        assert!(
            f["map"].as_str().is_some_and(|m| m.starts_with("0x")),
            "{ctx}"
        );
    }

    // running: the process was held, every thread seen stopped, the other goroutine there
    // (within its function: stopped at any instruction of its loop).
    let r = &f["running"];
    assert_eq!(r["held"], true, "{ctx}: {r}");
    assert!(r["held_us"].as_u64().is_some(), "{ctx}: {r}");
    assert_eq!(r["threads"], r["stopped"], "{ctx}: {r}");
    let in_running = r["goroutines"].as_array().unwrap().iter().find_map(|g| {
        let (func, line) = fixture_frame(&g["stack"])?;
        (func == other).then_some((g, line))
    });
    assert_eq!(f["stack_truncated"], false, "{ctx}: {fb}");
    assert_eq!(f["also_dropped"], 0, "{ctx}");
    // recent: the kernel's count of the window is the delete records mdt wrote in it.
    let w = &f["recent"];
    let (since, until) = (
        w["since_ns"].as_u64().unwrap(),
        f["ts_ns"].as_u64().unwrap(),
    );
    // Whole buckets of the kernel's counts by time (its ticks here), covering the 100 ms.
    let bucket = w["bucket_ns"].as_u64().unwrap();
    assert!((4_000_000..16_000_000).contains(&bucket), "{ctx}: {w}");
    assert!(
        until - since >= 100_000_000 && until - since < 100_000_000 + 2 * bucket,
        "{ctx}: {}",
        all()
    );
    let written = t
        .records
        .iter()
        .filter(|r| r["type"] == "delete")
        .filter(|r| (since..=until).contains(&r["ts_ns"].as_u64().unwrap()))
        .count() as u64;
    assert_eq!(summary["lost"], 0, "{ctx}");
    assert_eq!(
        w["kernel_deletes"].as_u64(),
        Some(written),
        "{ctx}: {}",
        all()
    );
    assert_eq!(w["received"].as_u64(), Some(written), "{ctx}: {}", all());
    assert_eq!(w["received_complete"], true, "{ctx}");
    for e in w["events"].as_array().unwrap() {
        assert_ne!(
            e["goid"], f["goid"],
            "{ctx}: the dying goroutine's own delete listed"
        );
    }
    let in_recent = w["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| fixture_frame(&e["stack"]) == Some(("main.deleter", op_line("main.deleter"))));
    match in_running {
        Some((g, line)) => {
            assert!(g["goid"].as_u64().is_some_and(|id| id > 0), "{ctx}: {g}");
            assert_ne!(g["goid"], f["goid"], "{ctx}");
            assert!(
                g["caller"].as_str().unwrap().starts_with(other),
                "{ctx}: {g}"
            );
            // Its function's lines: from its func line to the loop's end.
            let start = line_of(&format!("func {}()", other.trim_start_matches("main.")));
            assert!(
                (start..=start + 6).contains(&line),
                "{ctx}: {other} at line {line}"
            );
        }
        None if other == "main.deleter" && in_recent => {}
        None => {
            common::note(&format!(
                "{ctx}: {other} was on no thread at that instant (descheduled); again\n{}",
                all()
            ));
            return false;
        }
    }
    // A second goroutine that died at once is named in the same record.
    for a in f["also"].as_array().unwrap() {
        assert!(
            a["message"].as_str().unwrap().starts_with("concurrent map"),
            "{ctx}: {a}"
        );
    }
    true
}

/// The other party is usually on a thread when the runtime notices the race, not always (it
/// may have been descheduled, or its thread be starting): a crash without it is checked in
/// full, and the crash is tried again, three times at most.
fn check_until_found(ctx: &str, mode: &str, message: &str, run: impl Fn() -> Traced) {
    for attempt in 1..=3 {
        if check_forensics(&format!("{ctx} (try {attempt})"), mode, message, &run()) {
            return;
        }
    }
    panic!("{ctx}: in three crashes the other goroutine was never found");
}

#[test]
fn a_fatal_record_names_both_sides_of_the_race() {
    if !common::require_root_bpf() {
        return;
    }
    for_jobs(
        "a_fatal_record_names_both_sides_of_the_race",
        jobs(),
        |tc, v| {
            let bin = common::build_fixture("crash", tc, v);
            for (mode, message) in MODES {
                let dir = Scratch::new("crash");
                let ctx = format!("{tc} {v} {mode} launched");
                check_until_found(&ctx, mode, message, || launched(&ctx, &bin, mode, &dir));
                let ctx = format!("{tc} {v} {mode} -p");
                check_until_found(&ctx, mode, message, || attached(&ctx, &bin, mode, &dir));
            }
        },
    );
}

#[test]
fn a_program_that_does_not_crash_gets_no_fatal_record() {
    if !common::require_root_bpf() {
        return;
    }
    let jobs: Vec<_> = jobs().into_iter().take(1).collect();
    for_jobs("no_fatal_record", jobs, |tc, v| {
        let bin = common::build_fixture("deletes", tc, v);
        let dir = Scratch::new("nocrash");
        let out = dir.path("out.json");
        let mut cmd = Command::new(mdt_bin());
        cmd.args(["trace", "--json", "-o"])
            .arg(&out)
            .arg("--")
            .arg(&bin);
        let mut p = Proc::spawn(&format!("{tc} {v}: mdt trace"), cmd, Stdio::null());
        p.finish_ok(Duration::from_secs(60), "the fixture");
        let records = common::read_json_lines(&out);
        assert!(records.iter().all(|r| r["type"] != "fatal"));
        let summary = records.iter().find(|r| r["type"] == "summary").unwrap();
        assert_eq!(summary["fatal_errors"], 0, "{summary}");
        assert_eq!(summary["target_exit"], "exit status 0", "{summary}");
    });
}

#[test]
fn without_the_hold_and_with_sampling_the_record_says_what_it_lacks() {
    if !common::require_root_bpf() {
        return;
    }
    let jobs: Vec<_> = jobs().into_iter().step_by(3).collect();
    for_jobs("no_hold_sampled", jobs, |tc, v| {
        let bin = common::build_fixture("crash", tc, v);
        let dir = Scratch::new("nohold");
        let out = dir.path("out.json");
        let mut cmd = Command::new(mdt_bin());
        // The clock's buckets, as where the kernel's tick rate is unknown.
        cmd.env("MDT_KERNEL_HZ", "unknown");
        cmd.args(["trace", "--json", "--no-hold", "--sample", "0.5", "-o"])
            .arg(&out)
            .arg("--")
            .arg(&bin)
            .args(["-mode", "writes", "-pace", PACE]);
        let ctx = format!("{tc} {v} --no-hold --sample 0.5");
        let mut p = Proc::spawn(&ctx, cmd, Stdio::null());
        let f = p.finish(Duration::from_secs(60), "the crash");
        assert_eq!(f.status.code(), Some(2), "{ctx}: {}", f.stderr);
        let records = common::read_json_lines(&out);
        let fatals: Vec<&Value> = records.iter().filter(|r| r["type"] == "fatal").collect();
        assert_eq!(fatals.len(), 1, "{ctx}");
        let fatal = fatals[0];
        // Not stopped: no running goroutines, and the record says why.
        let r = &fatal["running"];
        assert_eq!(r["held"], false, "{ctx}: {r}");
        assert!(r["goroutines"].as_array().unwrap().is_empty(), "{ctx}: {r}");
        assert!(
            r["unavailable"]
                .as_str()
                .is_some_and(|u| u.contains("--no-hold")),
            "{ctx}: {r}"
        );
        // Sampled: the kernel's count is every delete of the window, the records a share.
        let w = &fatal["recent"];
        assert_eq!(w["bucket_ns"], 1 << 22, "{ctx}: {w}");
        let (since, until) = (
            w["since_ns"].as_u64().unwrap(),
            fatal["ts_ns"].as_u64().unwrap(),
        );
        let written = records
            .iter()
            .filter(|r| r["type"] == "delete")
            .filter(|r| (since..=until).contains(&r["ts_ns"].as_u64().unwrap()))
            .count() as u64;
        assert_eq!(w["received"].as_u64(), Some(written), "{ctx}: {w}");
        assert!(
            w["kernel_deletes"].as_u64().unwrap() >= written,
            "{ctx}: {w}"
        );
        let summary = records.iter().find(|r| r["type"] == "summary").unwrap();
        assert_eq!(summary["fatal_errors"], 1, "{ctx}");
        assert_eq!(summary["target_exit"], "exit status 2", "{ctx}");
    });
}

/// 300 calls deep, the dying goroutine's stack is deeper than the probe walks (`--stack-depth
/// 100`): the record
/// says so (`stack_truncated`), with the innermost frames it has, the map operation's among
/// them, and the report marks the cut.
#[test]
fn a_stack_deeper_than_the_walk_is_marked_truncated() {
    if !common::require_root_bpf() {
        return;
    }
    let jobs: Vec<_> = jobs().into_iter().rev().take(1).collect();
    for_jobs("deep_stack", jobs, |tc, v| {
        let bin = common::build_fixture("crash", tc, v);
        let dir = Scratch::new("deep");
        let out = dir.path("out.json");
        let mut cmd = Command::new(mdt_bin());
        cmd.args(["trace", "--json", "--stack-depth", "100", "-o"])
            .arg(&out)
            .arg("--")
            .arg(&bin)
            .args(["-mode", "writes", "-pace", PACE, "-depth", "300"]);
        let ctx = format!("{tc} {v} -depth 300");
        let mut p = Proc::spawn(&ctx, cmd, Stdio::null());
        let f = p.finish(Duration::from_secs(60), "the crash");
        assert_eq!(f.status.code(), Some(2), "{ctx}: {}", f.stderr);
        let records = common::read_json_lines(&out);
        let fatals: Vec<&Value> = records.iter().filter(|r| r["type"] == "fatal").collect();
        assert_eq!(fatals.len(), 1, "{ctx}");
        let fatal = fatals[0];
        assert_eq!(fatal["stack_truncated"], true, "{ctx}");
        let stack = fatal["stack"].as_array().unwrap();
        let nests = stack.iter().filter(|f| f["func"] == "main.nest").count();
        assert!(
            stack.len() >= 100 && nests >= 90,
            "{ctx}: {} frames, {nests} main.nest",
            stack.len()
        );
        assert!(
            fixture_frame(&fatal["stack"]).is_some(),
            "{ctx}: no map operation's frame"
        );
    });
}

/// The pid the crash fixture announced on stderr ("crash ready pid=N ...").
fn announced_pid(stderr: &str) -> u64 {
    stderr
        .split("crash ready pid=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no pid announced: {stderr}"))
}

/// The number before `word` in `line` ("12 deletes, ..." → 12).
fn count_before(line: &str, word: &str) -> u64 {
    let head = line
        .split(word)
        .next()
        .unwrap_or_else(|| panic!("no {word:?} in {line}"));
    head.split_whitespace()
        .last()
        .and_then(|n| n.trim_start_matches('(').parse().ok())
        .unwrap_or_else(|| panic!("no count before {word:?} in {line}"))
}

#[test]
fn the_text_output_and_flame_report_the_crash_and_keep_their_outputs() {
    if !common::require_root_bpf() {
        return;
    }
    let tcs = common::toolchains();
    let jobs = vec![
        (tcs[0].clone(), common::Variant::Plain),
        (tcs.last().unwrap().clone(), common::Variant::Plain),
    ];
    for_jobs("text_and_flame_crash", jobs, |tc, v| {
        let bin = common::build_fixture("crash", tc, v);
        let dir = Scratch::new("crash-outputs");
        let message = "fatal error: concurrent map writes";

        // Text: the report once, every delete a line, the summary with the target's status.
        let text = dir.path("out.txt");
        let mut cmd = Command::new(mdt_bin());
        cmd.args(["trace", "-o"])
            .arg(&text)
            .arg("--")
            .arg(&bin)
            .args(["-mode", "writes", "-pace", PACE]);
        let ctx = format!("{tc} {v} text");
        let mut p = Proc::spawn(&format!("{ctx}: mdt trace"), cmd, Stdio::null());
        let f = p.finish(Duration::from_secs(60), "the crash");
        assert_eq!(f.status.code(), Some(2), "{ctx}: {}", f.stderr);
        assert!(f.stderr.contains(message), "{ctx}: {}", f.stderr);
        let pid = announced_pid(&f.stderr);
        let out = std::fs::read_to_string(&text).unwrap();
        let heads: Vec<_> = out.lines().filter(|l| l.starts_with("FATAL ")).collect();
        assert_eq!(heads.len(), 1, "{ctx}: {out}");
        assert!(
            heads[0].starts_with(&format!("FATAL {message} (pid {pid}, tid ")),
            "{ctx}: {}",
            heads[0]
        );
        let summary = out
            .lines()
            .find(|l| l.contains(" deletes, ") && l.contains("(exact)"))
            .unwrap_or_else(|| panic!("{ctx}: no summary: {out}"));
        assert!(
            summary.contains("target: exit status 2; 1 fatal error"),
            "{ctx}: {summary}"
        );
        let deletes = count_before(summary, " deletes,");
        let lines = out.lines().filter(|l| l.contains(" delete map[")).count() as u64;
        assert_eq!(lines, deletes, "{ctx}: a line per delete: {out}");

        // Flame: the report on stderr, the graph written all the same, every delete in it.
        let folded = dir.path("out.folded");
        let mut cmd = Command::new(mdt_bin());
        cmd.args(["flame", "--format", "folded", "-o"])
            .arg(&folded)
            .arg("--")
            .arg(&bin)
            .args(["-mode", "writes", "-pace", PACE]);
        let ctx = format!("{tc} {v} flame");
        let mut p = Proc::spawn(&format!("{ctx}: mdt flame"), cmd, Stdio::null());
        let f = p.finish(Duration::from_secs(60), "the crash");
        assert_eq!(f.status.code(), Some(2), "{ctx}: {}", f.stderr);
        let pid = announced_pid(&f.stderr);
        let reports: Vec<_> = f
            .stderr
            .lines()
            .filter(|l| l.starts_with("mdt: FATAL "))
            .collect();
        assert_eq!(reports.len(), 1, "{ctx}: {}", f.stderr);
        assert!(
            reports[0].starts_with(&format!("mdt: FATAL {message} (pid {pid}, tid ")),
            "{ctx}: {}",
            reports[0]
        );
        let wrote = f
            .stderr
            .lines()
            .find(|l| l.starts_with("mdt: wrote "))
            .unwrap_or_else(|| panic!("{ctx}: no graph written: {}", f.stderr));
        let graphed = count_before(wrote, " deletes in");
        let stacks = std::fs::read_to_string(&folded).unwrap();
        let total: u64 = stacks
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, graphed, "{ctx}: {stacks}");
        // The runtime saw two writers at once: the deleter was inside a delete, whose entry
        // the probe had counted.
        assert!(total >= 1, "{ctx}: the racing delete is in the graph");
        assert!(
            stacks.lines().all(|l| l.contains(";main.deleter;")),
            "{ctx}: only the deleter deletes: {stacks}"
        );
    });
}
