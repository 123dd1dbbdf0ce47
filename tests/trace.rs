//! `mdt trace` end to end, as root, with real uprobes on real Go processes: the `deletes`
//! fixture (fixtures/deletes) knows every delete it does and writes them (`-expect FILE`); each
//! test traces it and compares, for every toolchain × variant of the matrix (`MDT_GO_VERSIONS`).
//!
//! * `launch_and_pid_mode_find_every_delete_exactly_once`: launch mode (default `--key-bytes`,
//!   then `--key-bytes 256` with `-exit-code 3`) and `-p` mode: every expected delete/clear is
//!   matched by exactly one traced record (kind, map type, key type, key, truncation, goroutine,
//!   map address, caller function/file/line, cleared), nothing is left over, the stack holds the
//!   fixture's call chain, and the summary's totals equal the fixture's own counts. The target's
//!   stdout and exit status are the same as in an untraced run. The second launch and the `-p`
//!   run add `--latency`: every delete's `removed` is the fixture's `present`, every record has
//!   its `duration_ns`, and the exact outcomes (removed, absent) are the fixture's counts.
//! * `sampling_keeps_exact_totals`: `--sample 0.1 --latency` (the outcomes stay exact), the
//!   environment variable, and the flag winning over the variable.
//! * `only_the_chosen_process_is_traced`: two processes of one binary, one traced.
//! * `signals_end_with_a_complete_summary`: SIGINT (stdout) and SIGTERM (`-o FILE`) to mdt
//!   while the target deletes; the target survives the detach.
//! * `filters_and_redaction`: `--map-type`, `--func`, `--redact-keys`.
//! * `errors_are_one_line`: user mistakes get one `mdt: ...` line and a non-zero exit.
//! * `decoder_rereads_keys_the_probe_could_not_read` (no BPF): keys on pages that were not
//!   resident when the probe fired are read again in user space.
//!
//! Needs root and BPF: without them the tests are skipped, unless `CI=true` (then they fail).
//! Every process is started in its own process group and killed (group and all) if a test fails
//! or times out, so a hung mdt fails the test instead of hanging it. Each test runs the matrix
//! on `MDT_TRACE_TEST_THREADS` threads (default 6): most of a run is waiting, chiefly for the
//! kernel to unregister mdt's uprobes when it exits (about 0.1 s per probe, serialized across
//! the whole machine), which bounds how fast this suite can be.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proc::{Finished, Proc, ANNOUNCE};
use common::{Scratch, Toolchain, Variant};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Timeouts

/// A whole traced or untraced run of the fixture.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// mdt to finish after its target exited or after a signal.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

const SAMPLING_ENV: &str = "MAP_DELETE_TRACER_SAMPLING_RATE";

fn mdt_bin() -> &'static Path {
    common::private_mdt("trace")
}

/// `mdt ARGS`, with the sampling variable removed (it is set only where a test wants it).
fn mdt_cmd<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(mdt_bin());
    cmd.args(args)
        .env_remove(SAMPLING_ENV)
        .env_remove("RUST_BACKTRACE")
        .env("GORACE", GORACE);
    cmd
}

/// The race runtime sleeps a second at exit by default (`atexit_sleep_ms=1000`): not needed
/// here. Passed to every fixture, directly or through mdt's launch.
const GORACE: &str = "atexit_sleep_ms=0";

/// A command running the fixture `bin` (without mdt).
fn fixture_cmd(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("GORACE", GORACE);
    cmd
}

// ---------------------------------------------------------------------------------------------
// The matrix, in parallel

/// Runs `f` for every (toolchain, variant) of the matrix on a few threads, collects every
/// failure, and fails with all of them.
fn for_matrix(test: &str, f: impl Fn(&Toolchain, Variant) + Sync) {
    if !common::require_root_bpf() {
        return;
    }
    let workers = common::parallel::workers_from_env("MDT_TRACE_TEST_THREADS", 6);
    common::parallel::run_all(
        test,
        &common::matrix(),
        workers,
        |(tc, v)| format!("{tc} {v}"),
        |(tc, v)| f(tc, *v),
    );
}

fn fixture(tc: &Toolchain, v: Variant) -> PathBuf {
    common::build_fixture("deletes", tc, v)
}

// ---------------------------------------------------------------------------------------------
// Runs

/// What one traced run produced.
struct Traced {
    status: ExitStatus,
    /// Every line of the JSON output, parsed (delete, clear, lost, summary).
    records: Vec<Value>,
    summary: Value,
    /// The target's stdout (launch mode: mdt's stdout is the program's).
    target_stdout: String,
    mdt_stderr: String,
}

impl Traced {
    fn events(&self) -> impl Iterator<Item = &Value> {
        self.records
            .iter()
            .filter(|r| matches!(r["type"].as_str(), Some("delete" | "clear")))
    }

    fn count(&self) -> usize {
        self.events().count()
    }
}

/// Parses mdt's JSON output: every line complete and valid, the last (and only the last) a
/// summary.
fn parse_output(text: &str, ctx: &str) -> (Vec<Value>, Value) {
    assert!(!text.is_empty(), "{ctx}: no output at all");
    assert!(
        text.ends_with('\n'),
        "{ctx}: output does not end with a complete line: ...{:?}",
        &text[text.len().saturating_sub(200)..]
    );
    let records: Vec<Value> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{ctx}: line {} is not JSON ({e}): {l}", i + 1))
        })
        .collect();
    let n_summaries = records.iter().filter(|r| r["type"] == "summary").count();
    let last = records.last().unwrap().clone();
    assert!(
        last["type"] == "summary" && n_summaries == 1,
        "{ctx}: the last line must be the only summary; {n_summaries} summaries, last line: {last}"
    );
    for r in &records {
        assert!(
            matches!(
                r["type"].as_str(),
                Some("delete" | "clear" | "lost" | "summary" | "map")
            ),
            "{ctx}: record without a known type: {r}"
        );
        // A map's memory (tests/mapmem.rs checks the numbers): a map of a record
        // (deletes come before its first reading), gone or with its slots.
        if r["type"] == "map" {
            let named = records
                .iter()
                .any(|d| (d["type"] == "delete" || d["type"] == "clear") && d["map"] == r["map"]);
            let sane = r["gone"] == true
                || r["cap"]
                    .as_u64()
                    .zip(r["len"].as_u64())
                    .is_some_and(|(c, l)| l <= c)
                    && r["bytes"].as_u64().is_some_and(|b| b > 0);
            assert!(named && sane, "{ctx}: map record: {r}");
        }
    }
    (records, last)
}

/// `mdt trace --json -o OUT [flags] -- FIXTURE fixture_args`, to its end.
fn trace_launch(
    ctx: &str,
    bin: &Path,
    dir: &Scratch,
    flags: &[&str],
    fixture_args: &[&str],
    env: &[(&str, &str)],
) -> Traced {
    let out = dir.path("trace.json");
    let mut cmd = mdt_cmd(["trace", "--json", "-o"]);
    cmd.arg(&out)
        .args(flags)
        .arg("--")
        .arg(bin)
        .args(fixture_args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn(&format!("{ctx}: mdt (launch)"), cmd, Stdio::null());
    let Finished {
        status,
        stdout,
        stderr,
    } = p.finish(RUN_TIMEOUT, "tracing the launched fixture");
    let text = fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("{ctx}: read {}: {e}; mdt stderr:\n{stderr}", out.display()));
    let (records, summary) = parse_output(&text, ctx);
    Traced {
        status,
        records,
        summary,
        target_stdout: String::from_utf8_lossy(&stdout).into_owned(),
        mdt_stderr: stderr,
    }
}

/// The fixture run without mdt: (status, stdout, stderr).
fn run_untraced(ctx: &str, bin: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let mut cmd = fixture_cmd(bin);
    cmd.args(args);
    let mut p = Proc::spawn(&format!("{ctx}: untraced fixture"), cmd, Stdio::null());
    let f = p.finish(RUN_TIMEOUT, "running the fixture");
    (f.status, f.stdout_text(), f.stderr)
}

/// Starts the fixture held on `-wait-file`, attaches `mdt trace -p PID --json flags`, then lets
/// the fixture delete; returns when both ended. The fixture writes its records to `expect`.
fn trace_pid(ctx: &str, bin: &Path, dir: &Scratch, flags: &[&str]) -> (Traced, PathBuf) {
    let go = dir.path("go");
    let expect = dir.path("expect.json");
    let mut fx = fixture_cmd(bin);
    fx.arg("-wait-file")
        .arg(&go)
        .args(["-wait-timeout", "90s", "-expect"])
        .arg(&expect);
    let mut target = Proc::spawn(&format!("{ctx}: fixture"), fx, Stdio::null());
    let mut cmd = mdt_cmd(["trace", "--json", "-p", &target.pid().to_string()]);
    cmd.args(flags);
    let mut mdt = Proc::spawn(&format!("{ctx}: mdt -p"), cmd, Stdio::null());
    mdt.wait_announce();
    fs::write(&go, b"").unwrap();
    let fx = target.finish_ok(RUN_TIMEOUT, "the fixture deleting");
    let Finished {
        status,
        stdout,
        stderr,
    } = mdt.finish(STOP_TIMEOUT, "mdt after its target exited");
    let text = String::from_utf8_lossy(&stdout).into_owned();
    assert!(
        status.success(),
        "{ctx}: mdt -p exited {status} after the target exited; stderr:\n{stderr}"
    );
    let (records, summary) = parse_output(&text, ctx);
    (
        Traced {
            status,
            records,
            summary,
            target_stdout: fx.stdout_text(),
            mdt_stderr: stderr,
        },
        expect,
    )
}

// ---------------------------------------------------------------------------------------------
// Comparing with the fixture's records

/// Everything a traced record must agree on with the fixture's record of the same delete.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ident {
    kind: String,
    map_type: String,
    key_type: String,
    /// JSON text of the key (number or string); empty for a clear.
    key: String,
    key_truncated: Option<bool>,
    goid: i64,
    map: String,
    /// `function file:line`
    caller: String,
    cleared: Option<u64>,
    /// With `--latency`: whether the delete removed an entry (the fixture's `present`).
    removed: Option<bool>,
}

fn s(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// The record the fixture wrote, as mdt should report it with `--key-bytes key_bytes`: a
/// string key longer than that is cut (ASCII here) and marked truncated.
fn expected_ident(rec: &Value, key_bytes: usize, latency: bool) -> Ident {
    let kind = s(&rec["kind"]);
    let (key, key_truncated) = if kind == "delete" {
        match &rec["key"] {
            Value::String(k) if k.len() > key_bytes => (
                Value::String(k[..key_bytes].to_string()).to_string(),
                Some(true),
            ),
            k => (k.to_string(), Some(false)),
        }
    } else {
        (String::new(), None)
    };
    Ident {
        kind,
        map_type: s(&rec["map_type"]),
        key_type: s(&rec["key_type"]),
        key,
        key_truncated,
        goid: rec["goid"].as_i64().unwrap_or(-1),
        map: s(&rec["map"]),
        caller: format!("{} {}:{}", s(&rec["func"]), s(&rec["file"]), rec["line"]),
        cleared: rec["cleared"].as_u64(),
        removed: if latency {
            rec["present"].as_bool()
        } else {
            None
        },
    }
}

fn traced_ident(ev: &Value) -> Ident {
    let kind = s(&ev["type"]);
    let is_delete = kind == "delete";
    Ident {
        kind,
        map_type: s(&ev["map_type"]),
        key_type: s(&ev["key_type"]),
        key: if is_delete {
            ev["key"].to_string()
        } else {
            String::new()
        },
        key_truncated: if is_delete {
            ev["key_truncated"].as_bool()
        } else {
            None
        },
        goid: ev["goid"].as_i64().unwrap_or(-1),
        map: s(&ev["map"]),
        caller: s(&ev["caller"]),
        cleared: ev["cleared"].as_u64(),
        removed: ev["removed"].as_bool(),
    }
}

fn multiset<'a>(
    items: impl Iterator<Item = (Ident, &'a Value)>,
) -> BTreeMap<Ident, Vec<&'a Value>> {
    let mut m: BTreeMap<Ident, Vec<&Value>> = BTreeMap::new();
    for (k, v) in items {
        m.entry(k).or_default().push(v);
    }
    m
}

/// Every expected record matched by exactly one traced event (`subset`: the traced events are
/// a sample: each must match a distinct expected record, not all are present). Also checks each
/// matched event's stack. Returns the problems, empty if none.
/// With `--latency` (the summary has `outcomes`), whether each delete removed an entry is
/// compared too.
fn compare(expected: &[Value], traced: &Traced, key_bytes: usize, subset: bool) -> Vec<String> {
    let latency = traced.summary["outcomes"].is_object();
    let exp = multiset(
        expected
            .iter()
            .map(|r| (expected_ident(r, key_bytes, latency), r)),
    );
    let got = multiset(traced.events().map(|e| (traced_ident(e), e)));
    let mut problems = Vec::new();
    for (id, recs) in &exp {
        let n = got.get(id).map_or(0, Vec::len);
        if n != recs.len() && !(subset && n < recs.len()) {
            problems.push(format!(
                "expected {}×, traced {n}×: {id:?}\n    fixture: {}",
                recs.len(),
                recs[0]
            ));
        }
    }
    for (id, evs) in &got {
        if !exp.contains_key(id) {
            problems.push(format!(
                "traced {}× but not expected: {id:?}\n    event: {}",
                evs.len(),
                short_event(evs[0])
            ));
        }
    }
    for (id, evs) in &got {
        let Some(recs) = exp.get(id) else { continue };
        for ev in evs {
            if let Err(e) = check_stack(ev, recs[0]) {
                problems.push(format!("{e}\n    event: {}", short_event(ev)));
                break;
            }
        }
    }
    problems
}

/// An event without its stack's file names, for messages.
fn short_event(ev: &Value) -> String {
    let mut e = ev.clone();
    if let Some(stack) = e.get_mut("stack").and_then(Value::as_array_mut) {
        let frames: Vec<Value> = stack
            .iter()
            .map(|f| {
                Value::String(format!(
                    "{}:{}{}",
                    s(&f["func"]),
                    f["line"],
                    if f["inlined"] == true { "(inl)" } else { "" }
                ))
            })
            .collect();
        *stack = frames;
    }
    e.to_string()
}

/// The stack of a matched event: starts at the probed runtime function, names the fixture's
/// function at the fixture's line as the caller (after any delete machinery: runtime, reflect,
/// the inlined maps.DeleteFunc), and goes on through the fixture's call chain.
fn check_stack(ev: &Value, rec: &Value) -> Result<(), String> {
    let stack = ev["stack"].as_array().ok_or("no stack array")?;
    let funcs: Vec<&str> = stack
        .iter()
        .map(|f| f["func"].as_str().unwrap_or(""))
        .collect();
    if funcs.first() != Some(&ev["func"].as_str().unwrap_or("?")) {
        return Err(format!(
            "stack[0] is {:?}, not the probed function {}",
            funcs.first(),
            ev["func"]
        ));
    }
    let want_func = rec["func"].as_str().unwrap();
    let caller = stack
        .iter()
        .position(|f| {
            f["func"] == want_func && f["line"] == rec["line"] && f["file"] == rec["file"]
        })
        .ok_or_else(|| {
            format!(
                "no frame {want_func} {}:{} in the stack",
                rec["file"], rec["line"]
            )
        })?;
    for (i, f) in funcs[..caller].iter().enumerate() {
        let machinery = f.starts_with("runtime.")
            || f.starts_with("internal/runtime/")
            || f.starts_with("reflect.")
            || f.starts_with("maps.");
        if !machinery {
            return Err(format!(
                "frame {i} ({f}) before the caller is not delete machinery"
            ));
        }
    }
    let inlined_delete_func = stack[..caller]
        .iter()
        .any(|f| s(&f["func"]).starts_with("maps.DeleteFunc") && f["inlined"] == true);
    match rec["via"].as_str() {
        Some("maps.DeleteFunc") if !inlined_delete_func => {
            return Err("no inlined maps.DeleteFunc frame before the caller".into());
        }
        Some("reflect") => {
            let want = if rec["kind"] == "clear" {
                "reflect.Value.Clear"
            } else {
                "reflect.Value.SetMapIndex"
            };
            if !funcs[..caller].contains(&want) {
                return Err(format!("no {want} frame before the caller"));
            }
        }
        _ => {}
    }
    let chain: &[&str] = match (rec["site"].as_str(), rec["via"].as_str()) {
        (Some("goroutine"), _) => &["main.goroutineWorker"],
        // The callback comes from C: the walk ends in cgocallback / C frames.
        (_, Some("cgo-callback")) => &["main.mdtGoCallback"],
        _ => &["main.runIteration", "main.runAll", "main.main"],
    };
    let mut rest = funcs[caller + 1..].iter();
    for want in chain {
        if !rest.any(|f| f == want) {
            return Err(format!(
                "the stack after the caller lacks {want} (in order {chain:?})"
            ));
        }
    }
    Ok(())
}

fn fail_if(problems: Vec<String>, ctx: &str, traced: &Traced) {
    if problems.is_empty() {
        return;
    }
    let n = problems.len();
    let shown: Vec<String> = problems.into_iter().take(25).collect();
    panic!(
        "{ctx}: {n} mismatches between the fixture's records and mdt's:\n  {}\nsummary: {}\nmdt stderr: {}",
        shown.join("\n  "),
        traced.summary,
        traced.mdt_stderr
    );
}

/// (deletes, clears) from the fixture's stdout.
fn fixture_counts(stdout: &str, ctx: &str) -> (u64, u64) {
    let get = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("{ctx}: no {prefix:?} line in the fixture's stdout: {stdout:?}")
            })
    };
    (get("deletes done: "), get("clears done: "))
}

/// The summary's totals are the fixture's own, exactly; by_function adds up; nothing lost.
fn check_summary(t: &Traced, deletes: u64, clears: u64, ctx: &str) {
    let sm = &t.summary;
    let u = |k: &str| {
        sm[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{ctx}: summary.{k} missing: {sm}"))
    };
    assert_eq!(
        (u("deletes"), u("clears")),
        (deletes, clears),
        "{ctx}: summary totals (deletes, clears) differ from the fixture's own count: {sm}"
    );
    let by = sm["by_function"].as_array().expect("by_function");
    let sum_role = |role: &str| -> u64 {
        by.iter()
            .filter(|f| f["role"] == role)
            .map(|f| f["hits"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        (sum_role("delete"), sum_role("clear")),
        (deletes, clears),
        "{ctx}: by_function hits don't add up to the totals: {sm}"
    );
    assert_eq!(u("lost"), 0, "{ctx}: records lost: {sm}");
    assert!(
        !t.records.iter().any(|r| r["type"] == "lost"),
        "{ctx}: a lost record in the output"
    );
    assert_eq!(
        u("records") as usize,
        t.count(),
        "{ctx}: summary.records differs from the records written: {sm}"
    );
}

/// Every record names the traced process as /proc does (`bin`, not in a container), and the
/// summary's `process` is the same.
fn check_process(t: &Traced, bin: &Path, ctx: &str) {
    let exe = std::fs::canonicalize(bin).unwrap().display().to_string();
    let name = bin.file_name().unwrap().as_encoded_bytes();
    let comm = String::from_utf8_lossy(&name[..name.len().min(15)]).into_owned();
    let p = &t.summary["process"];
    assert_eq!(
        (&p["exe"], &p["comm"]),
        (&exe.clone().into(), &comm.clone().into()),
        "{ctx}: {p}"
    );
    assert!(p.get("container_id").is_none(), "{ctx}: {p}");
    for r in t.events() {
        assert_eq!(r["pid"], p["pid"], "{ctx}: {}", short_event(r));
        assert_eq!(
            (&r["exe"], &r["comm"]),
            (&p["exe"], &p["comm"]),
            "{ctx}: {}",
            short_event(r)
        );
        assert!(r.get("container_id").is_none(), "{ctx}: {}", short_event(r));
    }
}

/// `--latency`: every record has its duration (and every delete its outcome, compared by
/// `compare`), none is unmatched, and the kernel's exact outcomes are the fixture's: its
/// deletes of present and of absent keys, every call seen returning.
fn check_outcomes(t: &Traced, expected: &[Value], ctx: &str) {
    let o = &t.summary["outcomes"];
    assert!(
        o.is_object(),
        "{ctx}: no outcomes in the summary: {}",
        t.summary
    );
    for ev in t.events() {
        assert!(
            ev["duration_ns"].as_u64().is_some(),
            "{ctx}: a record without duration_ns: {}",
            short_event(ev)
        );
        assert_eq!(
            ev["removed"].is_boolean(),
            ev["type"] == "delete",
            "{ctx}: `removed` on deletes only: {}",
            short_event(ev)
        );
    }
    assert_eq!(t.summary["unmatched"], 0, "{ctx}: {}", t.summary);
    let deletes = expected.iter().filter(|r| r["kind"] == "delete");
    let present = deletes.clone().filter(|r| r["present"] == true).count() as u64;
    let absent = deletes.filter(|r| r["present"] == false).count() as u64;
    assert_eq!(
        (o["removed"].as_u64(), o["absent"].as_u64()),
        (Some(present), Some(absent)),
        "{ctx}: exact outcomes (removed, absent) differ from the fixture's (present, absent): {o}"
    );
    assert_eq!(
        o["returned"].as_u64(),
        Some(expected.len() as u64),
        "{ctx}: every call seen returning: {o}"
    );
    assert_eq!(o["never_returned"], 0, "{ctx}: {o}");
}

// ---------------------------------------------------------------------------------------------
// 1, 4, 6: every delete exactly once, launch and -p mode; exit status and stdout unchanged

#[test]
fn launch_and_pid_mode_find_every_delete_exactly_once() {
    for_matrix("launch_and_pid_mode", |tc, v| {
        let bin = fixture(tc, v);
        let (want_d, want_c) = common::expected_deletes(tc, v, 1);
        let (want_d, want_c) = (want_d as u64, want_c as u64);
        let untraced_stdout = common::expected_deletes_stdout(tc, v, 1);

        // Launch mode, default --key-bytes (64).
        {
            let ctx = format!("{tc} {v} launch");
            let dir = Scratch::new("launch");
            let expect = dir.path("expect.json");
            let exp_arg = expect.to_str().unwrap();
            let t = trace_launch(&ctx, &bin, &dir, &[], &["-expect", exp_arg], &[]);
            assert_eq!(
                t.status.code(),
                Some(0),
                "{ctx}: mdt exit status; stderr:\n{}",
                t.mdt_stderr
            );
            // 6: the program's output is what it prints untraced.
            let (us, uout, uerr) = run_untraced(&ctx, &bin, &[]);
            assert!(us.success(), "{ctx}: untraced run failed: {uerr}");
            assert_eq!(uout, untraced_stdout, "{ctx}: untraced stdout");
            assert_eq!(
                t.target_stdout, uout,
                "{ctx}: traced stdout differs from untraced"
            );
            // Only the announcement on stderr (the fixture writes none).
            let lines: Vec<&str> = t.mdt_stderr.lines().collect();
            assert!(
                lines.len() == 1 && lines[0].starts_with(ANNOUNCE),
                "{ctx}: mdt stderr should be the one announcement line: {:?}",
                t.mdt_stderr
            );
            assert!(
                lines[0].contains(&format!("({}, ", tc.runtime_version(v))),
                "{ctx}: announcement without the Go version {}: {}",
                tc.runtime_version(v),
                lines[0]
            );
            let (d, c) = fixture_counts(&t.target_stdout, &ctx);
            assert_eq!((d, c), (want_d, want_c), "{ctx}: fixture's own counts");
            check_summary(&t, d, c, &ctx);
            assert_eq!(
                t.summary["target_exit"], "exit status 0",
                "{ctx}: {}",
                t.summary
            );
            assert_eq!(t.summary["sampled_out"], 0, "{ctx}");
            assert_eq!(t.summary["filtered_out"], 0, "{ctx}");
            check_process(&t, &bin, &ctx);
            let expected = common::read_json_lines(&expect);
            assert_eq!(expected.len() as u64, d + c, "{ctx}: expect file length");
            fail_if(compare(&expected, &t, 64, false), &ctx, &t);
        }

        // Launch mode, --key-bytes 256 (the 300-byte key is still cut, at 256) and a program
        // that exits 3: mdt exits 3 too, and the output is still whole.
        {
            let ctx = format!("{tc} {v} launch --key-bytes 256 -exit-code 3");
            let dir = Scratch::new("launch256");
            let expect = dir.path("expect.json");
            let args = ["-expect", expect.to_str().unwrap(), "-exit-code", "3"];
            let flags = ["--key-bytes", "256", "--latency"];
            let t = trace_launch(&ctx, &bin, &dir, &flags, &args, &[]);
            assert_eq!(
                t.status.code(),
                Some(3),
                "{ctx}: mdt must exit with the program's status; stderr:\n{}",
                t.mdt_stderr
            );
            let (us, uout, _) = run_untraced(&ctx, &bin, &["-exit-code", "3"]);
            assert_eq!(us.code(), Some(3), "{ctx}: untraced exit status");
            assert_eq!(
                t.target_stdout, uout,
                "{ctx}: traced stdout differs from untraced"
            );
            let (d, c) = fixture_counts(&t.target_stdout, &ctx);
            check_summary(&t, d, c, &ctx);
            assert_eq!(
                t.summary["target_exit"], "exit status 3",
                "{ctx}: {}",
                t.summary
            );
            let expected = common::read_json_lines(&expect);
            fail_if(compare(&expected, &t, 256, false), &ctx, &t);
            check_outcomes(&t, &expected, &ctx);
            let long = t
                .events()
                .find(|e| e["key"].as_str().is_some_and(|k| k.len() == 256));
            assert!(
                long.is_some(),
                "{ctx}: no 256-byte key prefix in the output"
            );
        }

        // -p mode.
        {
            let ctx = format!("{tc} {v} -p --latency");
            let dir = Scratch::new("pid");
            let (t, expect) = trace_pid(&ctx, &bin, &dir, &["--latency"]);
            assert_eq!(t.target_stdout, untraced_stdout, "{ctx}: fixture stdout");
            let (d, c) = fixture_counts(&t.target_stdout, &ctx);
            check_summary(&t, d, c, &ctx);
            check_process(&t, &bin, &ctx);
            // The real status, read while it is a zombie or from its pidfd.
            assert_eq!(
                t.summary["target_exit"], "exit status 0",
                "{ctx}: {}",
                t.summary
            );
            let expected = common::read_json_lines(&expect);
            fail_if(compare(&expected, &t, 64, false), &ctx, &t);
            check_outcomes(&t, &expected, &ctx);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 2: sampling

/// Records of a `rate` sample of `total` hits: more than 0, fewer than all, and within a
/// generous binomial bound (6 standard deviations + 5).
fn check_sample_size(records: usize, total: u64, rate: f64, ctx: &str) {
    let mean = total as f64 * rate;
    let sd = (total as f64 * rate * (1.0 - rate)).sqrt();
    let slack = 6.0 * sd + 5.0;
    assert!(
        records > 0 && (records as u64) < total && (records as f64 - mean).abs() <= slack,
        "{ctx}: {records} records of {total} hits at rate {rate}: expected {mean:.0} ± {slack:.0}"
    );
}

#[test]
fn sampling_keeps_exact_totals() {
    const REPEAT: usize = 100;
    for_matrix("sampling", |tc, v| {
        let bin = fixture(tc, v);
        let (want_d, want_c) = common::expected_deletes(tc, v, REPEAT);
        let total = (want_d + want_c) as u64;
        let repeat = REPEAT.to_string();
        // Everything but the sample size, for a run of `repeat` iterations at `rate`.
        let check = |t: &Traced, expect: &Path, repeat: usize, rate: f64, ctx: &str| {
            assert_eq!(
                t.status.code(),
                Some(0),
                "{ctx}: mdt exit; {}",
                t.mdt_stderr
            );
            let (want_d, want_c) = common::expected_deletes(tc, v, repeat);
            let (d, c) = fixture_counts(&t.target_stdout, ctx);
            assert_eq!(
                (d, c),
                (want_d as u64, want_c as u64),
                "{ctx}: fixture counts"
            );
            check_summary(t, d, c, ctx);
            assert_eq!(
                t.summary["sample_rate"].as_f64(),
                Some(rate),
                "{ctx}: {}",
                t.summary
            );
            assert_eq!(
                t.summary["sampled_out"].as_u64().unwrap() + t.count() as u64,
                d + c,
                "{ctx}: sampled_out + records must be every hit: {}",
                t.summary
            );
            // Whatever was kept is exact.
            let expected = common::read_json_lines(expect);
            fail_if(compare(&expected, t, 64, rate < 1.0), ctx, t);
        };

        // The flag.
        {
            let ctx = format!("{tc} {v} --sample 0.1 --latency");
            let dir = Scratch::new("sample");
            let expect = dir.path("expect.json");
            let args = ["-expect", expect.to_str().unwrap(), "-repeat", &repeat];
            let flags = ["--sample", "0.1", "--latency"];
            let t = trace_launch(&ctx, &bin, &dir, &flags, &args, &[]);
            check(&t, &expect, REPEAT, 0.1, &ctx);
            check_sample_size(t.count(), total, 0.1, &ctx);
            // The outcomes are exact whatever the sampling.
            check_outcomes(&t, &common::read_json_lines(&expect), &ctx);
        }
        // The environment variable.
        {
            let ctx = format!("{tc} {v} {SAMPLING_ENV}=0.1");
            let dir = Scratch::new("sample-env");
            let expect = dir.path("expect.json");
            let args = ["-expect", expect.to_str().unwrap(), "-repeat", &repeat];
            let t = trace_launch(&ctx, &bin, &dir, &[], &args, &[(SAMPLING_ENV, "0.1")]);
            check(&t, &expect, REPEAT, 0.1, &ctx);
            check_sample_size(t.count(), total, 0.1, &ctx);
        }
        // The flag wins over the variable (10 iterations: every hit recorded, or about 10%,
        // can't be mistaken for each other).
        {
            let ctx = format!("{tc} {v} {SAMPLING_ENV}=0.1 --sample 1");
            let dir = Scratch::new("sample-both");
            let expect = dir.path("expect.json");
            let args = ["-expect", expect.to_str().unwrap(), "-repeat", "10"];
            let t = trace_launch(
                &ctx,
                &bin,
                &dir,
                &["--sample", "1"],
                &args,
                &[(SAMPLING_ENV, "0.1")],
            );
            check(&t, &expect, 10, 1.0, &ctx);
            let (d, c) = common::expected_deletes(tc, v, 10);
            assert_eq!(t.count(), d + c, "{ctx}: every hit recorded");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 3: two processes of one binary

#[test]
fn only_the_chosen_process_is_traced() {
    for_matrix("two_processes", |tc, v| {
        let ctx = format!("{tc} {v} two processes");
        let bin = fixture(tc, v);
        let dir = Scratch::new("two");
        let go = dir.path("go");
        let start = |name: &str| {
            let mut cmd = fixture_cmd(&bin);
            cmd.arg("-wait-file")
                .arg(&go)
                .args(["-wait-timeout", "90s", "-hold", "-expect"])
                .arg(dir.path(&format!("{name}.json")));
            Proc::spawn(&format!("{ctx}: fixture {name}"), cmd, Stdio::piped())
        };
        let mut a = start("a");
        let mut b = start("b");
        let mut mdt = Proc::spawn(
            &format!("{ctx}: mdt"),
            mdt_cmd(["trace", "--json", "-p", &a.pid().to_string()]),
            Stdio::null(),
        );
        mdt.wait_announce();
        fs::write(&go, b"").unwrap();
        // Both delete (at the same time); both are done once they printed their counts.
        for p in [&a, &b] {
            let done = p
                .stdout
                .wait_for(RUN_TIMEOUT, |o| o.contains("clears done: "));
            assert!(
                done,
                "{}: did not finish deleting: {}",
                p.name,
                p.stderr.text()
            );
        }
        // B ends first; mdt goes on until A ends.
        b.stdin.take();
        b.finish_ok(RUN_TIMEOUT, "fixture b after stdin EOF");
        assert!(
            !mdt.has_exited(),
            "{ctx}: mdt exited when the other process did"
        );
        a.stdin.take();
        let af = a.finish_ok(RUN_TIMEOUT, "fixture a after stdin EOF");
        let m = mdt.finish_ok(STOP_TIMEOUT, "mdt after its target exited");
        let (records, summary) = parse_output(&m.stdout_text(), &ctx);
        let t = Traced {
            status: m.status,
            records,
            summary,
            target_stdout: af.stdout_text(),
            mdt_stderr: m.stderr,
        };
        let a_pid = a.pid() as u64;
        for e in t.events() {
            assert_eq!(
                e["pid"].as_u64(),
                Some(a_pid),
                "{ctx}: event of another process: {e}"
            );
        }
        let (d, c) = fixture_counts(&t.target_stdout, &ctx);
        check_summary(&t, d, c, &ctx);
        let expected = common::read_json_lines(&dir.path("a.json"));
        fail_if(compare(&expected, &t, 64, false), &ctx, &t);
    });
}

// ---------------------------------------------------------------------------------------------
// 4: Ctrl-C and SIGTERM

#[test]
fn signals_end_with_a_complete_summary() {
    for_matrix("signals", |tc, v| {
        let bin = fixture(tc, v);
        for (sig, name, to_file) in [
            (libc::SIGINT, "SIGINT", false),
            (libc::SIGTERM, "SIGTERM", true),
            (libc::SIGHUP, "SIGHUP", true),
            (libc::SIGQUIT, "SIGQUIT", false),
        ] {
            let ctx = format!(
                "{tc} {v} {name} to mdt -p ({})",
                if to_file { "-o FILE" } else { "stdout" }
            );
            let dir = Scratch::new("sig");
            let go = dir.path("go");
            let out = dir.path("trace.json");
            // Enough deletes that the signal arrives while records are being written.
            let mut fx = fixture_cmd(&bin);
            fx.arg("-wait-file")
                .arg(&go)
                .args(["-wait-timeout", "90s", "-hold", "-repeat", "100"]);
            let mut target = Proc::spawn(&format!("{ctx}: fixture"), fx, Stdio::piped());
            let mut cmd = mdt_cmd(["trace", "--json", "-p", &target.pid().to_string()]);
            if to_file {
                cmd.arg("-o").arg(&out);
            }
            let mut mdt = Proc::spawn(&format!("{ctx}: mdt"), cmd, Stdio::null());
            mdt.wait_announce();
            fs::write(&go, b"").unwrap();
            // Wait for some records (or the end of the deletes), then signal.
            let deadline = Instant::now() + RUN_TIMEOUT;
            loop {
                let written = if to_file {
                    fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as usize
                } else {
                    mdt.stdout.len()
                };
                let finished = target.stdout.text().contains("clears done: ");
                if written > 64 * 1024 || finished {
                    break;
                }
                assert!(
                    !mdt.has_exited(),
                    "{ctx}: mdt exited early: {}",
                    mdt.stderr.text()
                );
                assert!(
                    Instant::now() < deadline,
                    "{ctx}: no records after {RUN_TIMEOUT:?}"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            mdt.signal(sig);
            let Finished {
                status: ms,
                stdout,
                stderr: merr,
            } = mdt.finish(STOP_TIMEOUT, &format!("mdt after {name}"));
            assert_eq!(
                ms.code(),
                Some(0),
                "{ctx}: mdt exit status {ms}; stderr:\n{merr}"
            );
            assert!(!merr.contains("panicked"), "{ctx}: mdt panicked: {merr}");
            let text = if to_file {
                assert!(stdout.is_empty(), "{ctx}: stdout should be empty with -o");
                fs::read_to_string(&out).unwrap()
            } else {
                String::from_utf8_lossy(&stdout).into_owned()
            };
            let (records, summary) = parse_output(&text, &ctx);
            let n = records
                .iter()
                .filter(|r| matches!(r["type"].as_str(), Some("delete" | "clear")))
                .count();
            assert!(n > 0, "{ctx}: no records before the signal");
            assert_eq!(
                summary["records"].as_u64(),
                Some(n as u64),
                "{ctx}: {summary}"
            );
            let hits = summary["deletes"].as_u64().unwrap() + summary["clears"].as_u64().unwrap();
            let lost = summary["lost"].as_u64().unwrap();
            assert_eq!(
                hits,
                n as u64 + lost,
                "{ctx}: every hit recorded or lost: {summary}"
            );
            assert!(
                summary["target_exit"].is_null(),
                "{ctx}: the target did not exit: {summary}"
            );
            // The target outlives the detach and ends normally.
            let done = target
                .stdout
                .wait_for(RUN_TIMEOUT, |o| o.contains("clears done: "));
            assert!(
                done,
                "{ctx}: the fixture did not finish: {}",
                target.stderr.text()
            );
            target.stdin.take();
            let f = target.finish_ok(RUN_TIMEOUT, "fixture after stdin EOF");
            assert_eq!(
                f.stdout_text(),
                common::expected_deletes_stdout(tc, v, 100),
                "{ctx}: fixture stdout"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 7: filters and redaction

#[test]
fn filters_and_redaction() {
    for_matrix("filters", |tc, v| {
        let bin = fixture(tc, v);
        // --map-type keeps one map type; --func keeps any stack frame's function (a group
        // function here, which is never the caller).
        type Keep = fn(&Value) -> bool;
        let cases: [(&str, &str, Keep); 2] = [
            ("--map-type", r"^main\.UserMap$", |r| {
                r["map_type"] == "main.UserMap"
            }),
            ("--func", r"^main\.intKeys$", |r| {
                matches!(
                    r["func"].as_str(),
                    Some("main.delInt32" | "main.delInt64" | "main.delUint64")
                )
            }),
        ];
        for (flag, re, keep) in cases {
            let ctx = format!("{tc} {v} {flag} {re}");
            let dir = Scratch::new("filter");
            let expect = dir.path("expect.json");
            let t = trace_launch(
                &ctx,
                &bin,
                &dir,
                &[flag, re],
                &["-expect", expect.to_str().unwrap()],
                &[],
            );
            assert_eq!(t.status.code(), Some(0), "{ctx}: {}", t.mdt_stderr);
            let (d, c) = fixture_counts(&t.target_stdout, &ctx);
            check_summary(&t, d, c, &ctx);
            let expected = common::read_json_lines(&expect);
            let kept: Vec<Value> = expected.iter().filter(|r| keep(r)).cloned().collect();
            assert!(
                !kept.is_empty(),
                "{ctx}: the filter should keep some records"
            );
            fail_if(compare(&kept, &t, 64, false), &ctx, &t);
            assert_eq!(
                t.summary["filtered_out"].as_u64(),
                Some(d + c - kept.len() as u64),
                "{ctx}: filtered_out must be the rest: {}",
                t.summary
            );
        }

        // --redact-keys, two iterations (so that every key is deleted at least twice).
        let ctx = format!("{tc} {v} --redact-keys");
        let dir = Scratch::new("redact");
        let expect = dir.path("expect.json");
        let args = ["-expect", expect.to_str().unwrap(), "-repeat", "2"];
        let t = trace_launch(&ctx, &bin, &dir, &["--redact-keys"], &args, &[]);
        assert_eq!(t.status.code(), Some(0), "{ctx}: {}", t.mdt_stderr);
        let (d, c) = fixture_counts(&t.target_stdout, &ctx);
        check_summary(&t, d, c, &ctx);
        let expected = common::read_json_lines(&expect);
        check_redaction(&expected, &t, &ctx);
    });
}

/// No key value is in the output; every delete's key is a hash, the same for equal keys and
/// different for different ones. The fixture's records are paired with the events by call site
/// and order (one goroutine deletes a site's keys one after the other); for the sites that
/// delete several keys from one line in random order (maps.DeleteFunc, the range loop under
/// -race) only distinctness is checked.
fn check_redaction(expected: &[Value], t: &Traced, ctx: &str) {
    // Everything except the key must still match.
    let unkeyed = |mut id: Ident| {
        id.key.clear();
        id.key_truncated = None;
        id
    };
    let mut exp: BTreeMap<Ident, Vec<&Value>> = BTreeMap::new();
    for r in expected {
        exp.entry(unkeyed(expected_ident(r, 64, false)))
            .or_default()
            .push(r);
    }
    let mut got: BTreeMap<Ident, Vec<&Value>> = BTreeMap::new();
    for e in t.events() {
        got.entry(unkeyed(traced_ident(e))).or_default().push(e);
    }
    let text: String = t
        .events()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for r in expected.iter().filter(|r| r["kind"] == "delete") {
        if let Some(k) = r["key"].as_str() {
            let quoted = Value::String(k.to_string()).to_string();
            assert!(
                !text.contains(&quoted),
                "{ctx}: key {quoted} appears in the output"
            );
        }
    }
    for e in t.events().filter(|e| e["type"] == "delete") {
        assert!(
            e["key"]
                .as_str()
                .is_some_and(|k| k.starts_with("redacted:")),
            "{ctx}: key not redacted: {}",
            short_event(e)
        );
    }
    let mut key_to_hash: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut hash_to_key: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (id, recs) in &exp {
        let evs = got.get(id).cloned().unwrap_or_default();
        assert_eq!(
            evs.len(),
            recs.len(),
            "{ctx}: {} records expected, {} traced for {id:?}",
            recs.len(),
            evs.len()
        );
        if id.kind != "delete" {
            continue;
        }
        let hashes: Vec<String> = {
            let mut evs = evs.clone();
            evs.sort_by_key(|e| e["ts_ns"].as_u64());
            evs.iter().map(|e| s(&e["key"])).collect()
        };
        let unordered = matches!(recs[0]["via"].as_str(), Some("maps.DeleteFunc" | "range"));
        if unordered {
            let mut uniq = hashes.clone();
            uniq.sort();
            uniq.dedup();
            let mut keys: Vec<String> = recs.iter().map(|r| r["key"].to_string()).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(
                uniq.len(),
                keys.len(),
                "{ctx}: {id:?}: distinct keys vs hashes"
            );
            continue;
        }
        for (r, h) in recs.iter().zip(&hashes) {
            let key = (s(&r["key_type"]), expected_ident(r, 64, false).key);
            if let Some(old) = key_to_hash.insert(key.clone(), h.clone()) {
                assert_eq!(&old, h, "{ctx}: key {key:?} got two different hashes");
            }
            if let Some(old) = hash_to_key.insert(h.clone(), key.clone()) {
                assert_eq!(
                    old, key,
                    "{ctx}: keys {old:?} and {key:?} got the same hash {h}"
                );
            }
        }
    }
    // Some key recurs (the second iteration, and `5` in two sites): equality was exercised.
    assert!(key_to_hash.len() > 10, "{ctx}: too few keys compared");
}

// ---------------------------------------------------------------------------------------------
// 5: errors

/// Runs mdt (as `cmd`) and checks the error contract: a non-zero exit (`code` if given), exactly
/// one line on stderr starting with `mdt: `, containing each of `needles`, no panic.
fn expect_error(ctx: &str, cmd: Command, code: Option<i32>, needles: &[&str]) {
    let mut p = Proc::spawn(ctx, cmd, Stdio::null());
    let Finished {
        status,
        stdout,
        stderr,
    } = p.finish(RUN_TIMEOUT, "an mdt that should fail");
    assert!(!status.success(), "{ctx}: mdt succeeded; stderr: {stderr}");
    if let Some(c) = code {
        assert_eq!(
            status.code(),
            Some(c),
            "{ctx}: exit status; stderr: {stderr}"
        );
    }
    assert!(
        status.code().is_some(),
        "{ctx}: killed by a signal: {status}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("mdt: "),
        "{ctx}: stderr must be one line starting with `mdt: `, got:\n{stderr}"
    );
    for n in needles {
        assert!(
            lines[0].to_lowercase().contains(&n.to_lowercase()),
            "{ctx}: the message should mention {n:?}: {}",
            lines[0]
        );
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{ctx}: panic: {stderr}"
    );
    assert!(
        stdout.is_empty(),
        "{ctx}: unexpected stdout: {}",
        String::from_utf8_lossy(&stdout)
    );
}

/// A pid that no process has.
fn free_pid() -> i32 {
    let max: i32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    (100..max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid")
}

#[test]
fn errors_are_one_line() {
    if !common::require_root_bpf() {
        return;
    }
    let tcs = common::toolchains();
    let newest = tcs.last().unwrap().clone();
    let dir = Scratch::new("errors");

    // No such process.
    let pid = free_pid().to_string();
    expect_error(
        "no such pid",
        mdt_cmd(["trace", "--json", "-p", &pid]),
        None,
        &["no such process", &pid],
    );

    // Not a Go program.
    let mut sleep = Proc::spawn(
        "sleep",
        {
            let mut c = Command::new("sleep");
            c.arg("60");
            c
        },
        Stdio::null(),
    );
    expect_error(
        "pid of a non-Go program",
        mdt_cmd(["trace", "--json", "-p", &sleep.pid().to_string()]),
        None,
        &["not a Go program", "sleep", &sleep.pid().to_string()],
    );
    sleep.kill();
    expect_error(
        "launching a non-Go program",
        mdt_cmd(["trace", "--json", "--", "sleep", "0"]),
        None,
        &["not a Go program"],
    );

    // Unsupported Go versions: too old (stack ABI) and newer than mdt knows (stripped, so no
    // DWARF to read the layout from).
    for (variant, fake, needle) in [
        (Variant::Plain, "go1.16", "go1.16"),
        (Variant::Strip, "go1.99", "go1.99"),
    ] {
        let bin = fixture(&newest, variant);
        // "go1.27.3" -> "go1.16.3": the same length, every copy (buildinfo, runtime.buildVersion).
        let real = format!("go{}.", newest.short);
        let fake_full = format!("{fake}.");
        let dest = dir.path(&format!("deletes-{fake}"));
        common::patched_version_copy(&bin, &real, &fake_full, &dest);
        let ctx = format!("unsupported version {fake} (launch)");
        let mut cmd = mdt_cmd(["trace", "--json", "--"]);
        cmd.arg(&dest);
        expect_error(&ctx, cmd, None, &["unsupported Go version", needle]);
        // -p mode: the process runs (the version string is only data to it).
        let mut target = Proc::spawn(
            &format!("{ctx} target"),
            {
                let mut c = fixture_cmd(&dest);
                c.arg("-hold");
                c
            },
            Stdio::piped(),
        );
        expect_error(
            &format!("unsupported version {fake} (-p)"),
            mdt_cmd(["trace", "--json", "-p", &target.pid().to_string()]),
            None,
            &["unsupported Go version", needle],
        );
        target.kill();
    }

    // Invalid flag values: exit 2.
    for (what, args) in [
        ("--sample 0", vec!["--sample", "0"]),
        ("--sample 2", vec!["--sample", "2"]),
        ("--sample x", vec!["--sample", "x"]),
        ("bad --map-type regex", vec!["--map-type", "("]),
        ("bad --func regex", vec!["--func", "[a-"]),
        ("bad --duration", vec!["--duration", "5 parsecs"]),
        ("--duration 0", vec!["--duration", "0s"]),
        ("--key-bytes 257", vec!["--key-bytes", "257"]),
        ("--buffer-size 3M", vec!["--buffer-size", "3M"]),
        ("--buffer-size 2G", vec!["--buffer-size", "2G"]),
        ("--buffer-size 4X", vec!["--buffer-size", "4X"]),
        ("--max-stacks 0", vec!["--max-stacks", "0"]),
        ("--max-rows 15", vec!["--max-rows", "15"]),
        ("--latency-sample 0", vec!["--latency-sample", "0"]),
        ("--latency-sample 1.5", vec!["--latency-sample", "1.5"]),
        (
            "--latency with --no-latency",
            vec!["--latency", "--no-latency"],
        ),
        ("--fatal-window 2s", vec!["--fatal-window", "2s"]),
        ("--fatal-window 0s", vec!["--fatal-window", "0s"]),
        (
            "--no-forensics with --no-hold",
            vec!["--no-forensics", "--no-hold"],
        ),
    ] {
        let mut cmd = mdt_cmd(["trace", "--json"]);
        cmd.args(&args).args(["-p", "1"]);
        expect_error(what, cmd, Some(2), &[args[0]]);
    }
    let mut cmd = mdt_cmd(["trace", "--json", "-p", "1"]);
    cmd.env(SAMPLING_ENV, "0");
    expect_error("bad sampling variable", cmd, Some(2), &["sample"]);

    // The command to launch does not exist.
    expect_error(
        "launching a missing path",
        mdt_cmd(["trace", "--json", "--", "/nonexistent/mdt-test/prog"]),
        None,
        &["/nonexistent/mdt-test/prog"],
    );
    expect_error(
        "launching a missing command",
        mdt_cmd(["trace", "--json", "--", "mdt-no-such-command-xyz"]),
        None,
        &["mdt-no-such-command-xyz", "not found"],
    );
    let not_exec = dir.path("not-executable");
    fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&not_exec, fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = mdt_cmd(["trace", "--json", "--"]);
    cmd.arg(&not_exec);
    expect_error(
        "launching a file that is not executable",
        cmd,
        None,
        &["not an executable file"],
    );

    // A Go program for another architecture (read, but not probed).
    let arm64 = dir.path("deletes-arm64");
    let status = Command::new(&newest.go)
        .args(["build", "-o"])
        .arg(&arm64)
        .arg(".")
        .current_dir(
            common::build_fixture("deletes", &newest, Variant::Plain).with_extension("src"),
        )
        .env("GOARCH", "arm64")
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .env("GOPROXY", "off")
        .env("GOCACHE", common::repo_root().join(".cache/gocache"))
        .status()
        .expect("go build for arm64");
    assert!(status.success(), "GOARCH=arm64 go build failed");
    let mut cmd = mdt_cmd(["trace", "--json", "--"]);
    cmd.arg(&arm64);
    expect_error("an arm64 program", cmd, None, &["arm64"]);

    // A Go program that never deletes from a map, for the oldest and the
    // newest toolchain (classic and Swiss maps).
    for tc in [tcs.first().unwrap(), &newest] {
        let bin = common::build_fixture("nodelete", tc, Variant::Plain);
        let ctx = format!("{tc}: a Go program without map deletes");
        let mut cmd = mdt_cmd(["trace", "--json", "--"]);
        cmd.arg(&bin);
        expect_error(&ctx, cmd, None, &["never deletes from a map"]);
        let mut cmd = mdt_cmd(["inspect", "--json"]);
        cmd.arg(&bin);
        let out = cmd.output().unwrap();
        let info: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{ctx}: inspect --json: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(
            info["functions"].as_array().is_some_and(|f| f.is_empty()),
            "{ctx}: inspect should list no delete functions: {info}"
        );
    }

    // Not enough privilege.
    not_root(&dir, &newest);
}

/// mdt run as the user nobody (a copy readable by nobody), and as root without the BPF
/// capabilities: the message says which privilege is missing.
fn not_root(dir: &Scratch, tc: &Toolchain) {
    let priv_dir = dir.path("nobody");
    fs::create_dir_all(&priv_dir).unwrap();
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&priv_dir, fs::Permissions::from_mode(0o755)).unwrap();
    // Every directory on the way must be searchable by nobody.
    let mut p = dir.0.clone();
    while let Some(parent) = p.parent() {
        let mode = fs::metadata(parent).unwrap().permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "{} is not searchable by others: cannot run the not-root test",
            parent.display()
        );
        p = parent.to_path_buf();
    }
    let mdt = priv_dir.join("mdt");
    fs::copy(mdt_bin(), &mdt).unwrap();
    fs::set_permissions(&mdt, fs::Permissions::from_mode(0o755)).unwrap();
    let bin = priv_dir.join("deletes");
    fs::copy(fixture(tc, Variant::Plain), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&mdt)
            .args(args)
            .env_remove(SAMPLING_ENV);
        c
    };
    expect_error(
        "launch as nobody",
        as_nobody(&["trace", "--json", "--", bin.to_str().unwrap()]),
        None,
        &["root", "CAP_BPF", "CAP_PERFMON"],
    );
    let mut target = Proc::spawn(
        "root-owned fixture",
        {
            let mut c = fixture_cmd(&bin);
            c.arg("-hold");
            c
        },
        Stdio::piped(),
    );
    expect_error(
        "-p as nobody",
        as_nobody(&["trace", "--json", "-p", &target.pid().to_string()]),
        None,
        &["root"],
    );
    // Root, but without the capabilities BPF needs (as in a default container).
    let mut c = Command::new("setpriv");
    c.args(["--bounding-set=-bpf,-perfmon,-sys_admin"])
        .arg(&mdt)
        .args(["trace", "--json", "-p", &target.pid().to_string()])
        .env_remove(SAMPLING_ENV);
    expect_error("root without CAP_BPF", c, None, &["CAP_BPF"]);
    target.kill();
}

// ---------------------------------------------------------------------------------------------
// Keys on pages that were not resident (no BPF needed)

/// A key the probe could not copy (its page was not resident: a uprobe cannot fault pages in,
/// which happens to `reflect`'s small-integer keys, which point into the runtime's static table
/// of small integers) is read again by the decoder: here from the executable, as after the
/// target exited. Keys whose address or size the probe did not know stay unknown.
#[test]
fn decoder_rereads_keys_the_probe_could_not_read() {
    use mdt::decode::{Decoder, ProbeInfo};
    use mdt::events::{KeyValue, Role};
    use mdt::probes::skel::types::mdt_event_flags;
    use mdt::probes::{MdtEvent, ProbeKind};
    use object::{Object, ObjectSymbol};

    for tc in common::toolchains() {
        let bin = fixture(&tc, Variant::Plain);
        let data = fs::read(&bin).unwrap();
        let table = object::File::parse(&*data)
            .unwrap()
            .symbols()
            .find(|s| s.name() == Ok("runtime.staticuint64s"))
            .map(|s| s.address())
            .unwrap_or_else(|| panic!("{tc}: no runtime.staticuint64s"));
        let binary = mdt::gobin::GoBinary::open(&bin).unwrap();
        let probes = [ProbeKind::KeyPtr, ProbeKind::FastStr]
            .into_iter()
            .map(|kind| ProbeInfo {
                func: "runtime.mapdelete",
                role: Role::Delete,
                kind,
                probe_va: 0,
            })
            .collect();
        // No such process: only the file can answer.
        let image = mdt::gobin::image::Image::new(Arc::new(data), binary.pclntab_address).unwrap();
        let options = mdt::decode::DecodeOptions {
            key_bytes: 64,
            redact_keys: false,
            max_stacks: 64,
            labels: Default::default(),
        };
        let mut dec = Decoder::new(probes, binary, Arc::new(image), free_pid(), options);
        let event = |probe_id: u32, addr: u64, len: u32, flags: u32| MdtEvent {
            probe_id,
            kind: [ProbeKind::KeyPtr, ProbeKind::FastStr][probe_id as usize]
                .raw()
                .0 as u8,
            key_u64: addr,
            key_len: len,
            flags: flags as u8,
            ..MdtEvent::default()
        };
        let fault = mdt_event_flags::MDT_EV_KEY_FAULT.0;
        let key = |dec: &mut Decoder, ev: MdtEvent| dec.decode(&ev).expect("decoded").key;
        // &staticuint64s[200], as reflect passes the key 200 (the map type unknown here: hex).
        assert_eq!(
            key(&mut dec, event(0, table + 200 * 8, 8, fault)),
            KeyValue::Bytes(200u64.to_le_bytes().to_vec()),
            "{tc}: generic key re-read from the executable"
        );
        // A string key's bytes: staticuint64s['A'] starts with the byte 'A'.
        assert_eq!(
            key(&mut dec, event(1, table + 0x41 * 8, 1, fault)),
            KeyValue::Str("A".into()),
            "{tc}: string key re-read from the executable"
        );
        // The key type could not be read (no size): unknown, not guessed.
        assert_eq!(
            key(&mut dec, event(0, table, 0, fault)),
            KeyValue::None,
            "{tc}"
        );
        // A string reached through a pointer: its data address is not in the record.
        let string = mdt_event_flags::MDT_EV_KEY_STRING.0;
        assert_eq!(
            key(&mut dec, event(0, table, 8, fault | string)),
            KeyValue::None,
            "{tc}"
        );
        // Not in the executable, no process: unknown.
        assert_eq!(
            key(&mut dec, event(0, 0x00c0_0000_0000, 8, fault)),
            KeyValue::None,
            "{tc}"
        );
    }
}

/// The raw frames of a record's stack (one non-inlined frame per address).
fn raw_depth(ev: &Value) -> usize {
    ev["stack"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|f| f["inlined"] == false).count())
}

#[test]
fn a_stack_deeper_than_stack_depth_is_marked_truncated() {
    if !common::require_root_bpf() {
        return;
    }
    // The fixture's stacks are 5 to 10 frames deep (goroutines, main, reflect).
    const DEPTH: usize = 8;
    let tc = common::toolchains().last().unwrap().clone();
    let bin = fixture(&tc, Variant::Plain);
    let ident = |ev: &Value| {
        format!(
            "{} {} {} {}",
            ev["func"], ev["key"], ev["caller"], ev["goid"]
        )
    };
    // Whole stacks first: how deep each delete's is, and none is cut.
    let dir = Scratch::new("depth-full");
    let full = trace_launch("full stacks", &bin, &dir, &[], &[], &[]);
    let mut depth_of: HashMap<String, BTreeSet<usize>> = HashMap::new();
    for ev in full.events() {
        assert!(ev.get("stack_truncated").is_none(), "{}", short_event(ev));
        depth_of.entry(ident(ev)).or_default().insert(raw_depth(ev));
    }
    let dir = Scratch::new("depth-cut");
    let depth = DEPTH.to_string();
    let cut = trace_launch(
        "--stack-depth 8",
        &bin,
        &dir,
        &["--stack-depth", &depth],
        &[],
        &[],
    );
    assert_eq!(cut.count(), full.count());
    let (mut truncated, mut whole, mut at_the_limit) = (0, 0, 0);
    for ev in cut.events().filter(|e| e.get("stack_lost").is_none()) {
        let d = raw_depth(ev);
        assert!(d <= DEPTH, "{}", short_event(ev));
        let is_cut = ev["stack_truncated"] == true;
        let Some(depths) = depth_of.get(&ident(ev)).filter(|d| d.len() == 1) else {
            continue; // one call, several paths: no single depth to compare with
        };
        let real = *depths.first().unwrap();
        assert_eq!(
            is_cut,
            real > DEPTH,
            "{real} frames deep: {}",
            short_event(ev)
        );
        if is_cut {
            assert_eq!(d, DEPTH, "{}", short_event(ev));
            truncated += 1;
        } else {
            assert_eq!(d, real, "{}", short_event(ev));
            whole += 1;
            at_the_limit += usize::from(real == DEPTH);
        }
    }
    assert!(truncated > 0 && whole > 0, "{truncated} cut, {whole} whole");
    // A stack exactly as deep as the walk is whole, not cut.
    assert!(at_the_limit > 0, "no stack of exactly {DEPTH} frames");
}
