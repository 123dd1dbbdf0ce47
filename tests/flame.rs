//! `mdt flame` end to end, as root, with real uprobes on the `deletes` fixture
//! (fixtures/deletes), which knows every delete it does and writes them (`-expect FILE`).
//! The expected flame graph is derived from those records, the fixture's source (which function
//! calls each delete site, which runs on its own goroutine, which is called from C) and the
//! binary's symbols (the name Go gives the goroutine's closure), for every toolchain × variant
//! of the matrix (`MDT_GO_VERSIONS`), in parallel.
//!
//! * `live_outputs_and_from_round_trips` (matrix): one live run writing folded, SVG and pprof:
//!   the folded lines are exactly the fixture's call paths with exactly its counts, adding up to
//!   its `deletes done` + `clears done`; the SVG is well-formed XML (python3's expat) whose
//!   frames name those functions with those counts and whose root says the total;
//!   `go tool pprof -top` gives every function's flat and cum counts and `-lines` each site's
//!   file:line, the inlined `maps.DeleteFunc` included. Then `mdt trace --json` of the same
//!   binary and `mdt flame --from` it gives the live run's folded output; `--from` JSON with
//!   `--group-by`; the saved folded file turns into SVG and pprof.
//! * `options`: `--group-by map-type|key-type|goroutine`, `--min-count`, `--inverted`,
//!   `--runtime-frames`, `--map-type`, `--title`, `--sample 0.1` with `-repeat 50` (exact total,
//!   "scaled" in the SVG), on two variants.
//! * `pid_mode_signal_and_duration`: `-p PID` stopped by SIGINT; launch mode with `--duration`
//!   writes the graph when the duration ends although the program still runs.
//! * `errors_are_one_line` (no root needed) and `live_errors_stop_before_tracing`: unknown
//!   format, unwritable output (missing directory, a directory, a read-only directory, a full
//!   file system), empty or malformed `--from` input: one line, non-zero exit, no file (partial
//!   or temporary) left behind.
//! * `svg_escapes_names_and_title`, `special_outputs_are_written_in_place` (no root needed):
//!   XML escaping of frame names and the title; `-o /dev/stdout` and `-o FIFO` written in place.
//! * `weight_latency` (every toolchain, on the `latency` fixture: one big clear, small deletes)
//!   and `weight_latency_from_files` (no root needed): `--weight latency` live and `--from` a
//!   `mdt trace --json --latency` stream: the stacks weigh nanoseconds (the fixture's own
//!   clock for the clear, the records' `duration_ns`), the SVG counts ns, pprof's sample type is
//!   `latency/nanoseconds`; records without a duration are skipped and counted, a trace with
//!   none is refused.
//!
//! The live tests need root and BPF: without them they are skipped, unless `CI=true` (then they
//! fail). `MDT_FLAME_TEST_THREADS` (default 3) sets the parallelism of the matrix tests.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::Duration;

use common::proc::{Finished, Proc, ANNOUNCE};
use common::{Scratch, Toolchain, Variant};
use serde_json::Value;

/// A whole traced run of the fixture (debug build, loaded machine).
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
const SAMPLING_ENV: &str = "MAP_DELETE_TRACER_SAMPLING_RATE";

fn mdt_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mdt"))
}

/// `mdt ARGS` without the sampling variable.
fn mdt<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(mdt_bin());
    cmd.args(args)
        .env_remove(SAMPLING_ENV)
        .env_remove("RUST_BACKTRACE");
    cmd
}

/// Runs `cmd` (stdin /dev/null) to its end.
fn run(name: &str, cmd: Command) -> Finished {
    Proc::spawn(name, cmd, Stdio::null()).finish(RUN_TIMEOUT, "running to its end")
}

/// Runs `cmd` and requires success.
fn run_ok(name: &str, cmd: Command) -> Finished {
    let f = run(name, cmd);
    assert!(
        f.status.success(),
        "{name}: exited {}; stderr:\n{}",
        f.status,
        f.stderr
    );
    f
}

/// Flame's checks on a scratch directory.
trait ScratchExt {
    fn names(&self) -> Vec<String>;
    fn assert_no_temp_files(&self, ctx: &str);
}

impl ScratchExt for Scratch {
    /// The names in the directory, sorted.
    fn names(&self) -> Vec<String> {
        list_dir(&self.0)
    }

    /// Fails if a temporary output file of mdt is left in the directory.
    fn assert_no_temp_files(&self, ctx: &str) {
        let left: Vec<String> = self
            .names()
            .into_iter()
            .filter(|n| n.contains(".mdt-") && n.ends_with(".tmp"))
            .collect();
        assert!(
            left.is_empty(),
            "{ctx}: temporary files left behind: {left:?}"
        );
    }
}

fn list_dir(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn read(path: &Path, ctx: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{ctx}: read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The matrix, in parallel

/// Held shared by the tests that trace in parallel, exclusively by the one that measures times
/// (`weight_latency`): on a machine of two cores, the others' load makes its small deletes slower
/// than its big clear.
static TIMING: RwLock<()> = RwLock::new(());

/// Runs `f` for every job on a few threads, collects every failure, and fails with all of them.
fn for_jobs(test: &str, jobs: Vec<(Toolchain, Variant)>, f: impl Fn(&Toolchain, Variant) + Sync) {
    let _shared = TIMING.read().unwrap_or_else(|e| e.into_inner());
    let workers = common::parallel::workers_from_env("MDT_FLAME_TEST_THREADS", 3);
    run_jobs(test, jobs, workers, f);
}

/// [`for_jobs`] one job at a time, while no other test traces (for checks of times).
fn for_jobs_alone(
    test: &str,
    jobs: Vec<(Toolchain, Variant)>,
    f: impl Fn(&Toolchain, Variant) + Sync,
) {
    let _alone = TIMING.write().unwrap_or_else(|e| e.into_inner());
    run_jobs(test, jobs, 1, f);
}

fn run_jobs(
    test: &str,
    jobs: Vec<(Toolchain, Variant)>,
    workers: usize,
    f: impl Fn(&Toolchain, Variant) + Sync,
) {
    common::parallel::run_all(
        test,
        &jobs,
        workers,
        |(tc, v)| format!("{tc} {v}"),
        |(tc, v)| f(tc, *v),
    );
}

/// Two variants for the option tests: the oldest toolchain's PIE build and the newest one's
/// stripped build.
fn option_jobs() -> Vec<(Toolchain, Variant)> {
    let tcs = common::toolchains();
    let mut jobs = vec![(tcs[0].clone(), Variant::Pie)];
    if tcs.len() > 1 {
        jobs.push((tcs.last().unwrap().clone(), Variant::Strip));
    } else {
        jobs.push((tcs[0].clone(), Variant::Strip));
    }
    jobs
}

fn fixture(tc: &Toolchain, v: Variant) -> PathBuf {
    common::build_fixture("deletes", tc, v)
}

// ---------------------------------------------------------------------------------------------
// The fixture's source: who calls each delete site

struct Source {
    /// Function name (without `main.`) → its body.
    bodies: BTreeMap<String, String>,
    /// Functions exported to C (`//export NAME`).
    exported: BTreeSet<String>,
}

fn source() -> &'static Source {
    static S: OnceLock<Source> = OnceLock::new();
    S.get_or_init(|| {
        let dir = common::repo_root().join("fixtures/deletes");
        let mut bodies = BTreeMap::new();
        let mut exported = BTreeSet::new();
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "go"))
            .collect();
        files.sort();
        for f in files {
            let text = fs::read_to_string(&f).unwrap();
            let mut current: Option<(String, String)> = None;
            for line in text.lines() {
                if let Some(name) = line.strip_prefix("//export ") {
                    exported.insert(name.trim().to_string());
                }
                if let Some((name, body)) = current.as_mut() {
                    if line == "}" {
                        bodies.insert(std::mem::take(name), std::mem::take(body));
                        current = None;
                    } else {
                        body.push_str(line);
                        body.push('\n');
                    }
                    continue;
                }
                let Some(rest) = line.strip_prefix("func ") else {
                    continue;
                };
                if rest.starts_with('(') {
                    continue; // a method: the fixture's sites are plain functions
                }
                let Some(paren) = rest.find('(') else {
                    continue;
                };
                let name = rest[..paren].to_string();
                if line.ends_with('}') {
                    // One-line function.
                    let body = &rest[rest.find('{').unwrap_or(rest.len())..];
                    bodies.insert(name, body.to_string());
                } else {
                    current = Some((name, String::new()));
                }
            }
        }
        Source { bodies, exported }
    })
}

impl Source {
    /// Functions whose body calls `f` (`f(` not preceded by an identifier character or a dot).
    fn callers(&self, f: &str) -> Vec<&str> {
        let re = regex::Regex::new(&format!(r"(^|[^A-Za-z0-9_.]){}\(", regex::escape(f))).unwrap();
        self.bodies
            .iter()
            .filter(|(name, body)| name.as_str() != f && re.is_match(body))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The function with a `go f(...)` statement, if `f` is started as a goroutine.
    fn goroutine_starter(&self, f: &str) -> Option<&str> {
        let re = regex::Regex::new(&format!(r"\bgo {}\(", regex::escape(f))).unwrap();
        self.bodies
            .iter()
            .find(|(_, body)| re.is_match(body))
            .map(|(name, _)| name.as_str())
    }
}

/// The single function named `main.<parent>.<something>` in the binary's symbol table (from
/// `go tool nm` of the unstripped build): the closure Go makes for `go f(args)` in `parent`
/// (`main.goroutines.func1` up to Go 1.21, `main.goroutines.gowrap1` later).
fn closure_name(tc: &Toolchain, v: Variant, parent: &str) -> String {
    type Cache = Mutex<BTreeMap<(String, Variant, String), String>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let key = (tc.short.clone(), v, parent.to_string());
    if let Some(n) = cache.lock().unwrap().get(&key) {
        return n.clone();
    }
    let bin = fixture(tc, common::unstripped_twin(v));
    let out = common::output_retrying(
        Command::new(&tc.go)
            .args(["tool", "nm"])
            .arg(&bin)
            .env("GOTOOLCHAIN", "local")
            .stdin(Stdio::null()),
    );
    assert!(
        out.status.success(),
        "go tool nm {}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = format!("main.{parent}.");
    let names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .filter(|n| n.starts_with(&prefix) && !n.ends_with(".abi0"))
        .collect();
    assert_eq!(
        names.len(),
        1,
        "{tc} {v}: expected one {prefix}* function in {}, found {names:?}",
        bin.display()
    );
    let n = names.into_iter().next().unwrap();
    cache.lock().unwrap().insert(key, n.clone());
    n
}

// ---------------------------------------------------------------------------------------------
// The expected flame graph, from the fixture's records

/// One expected folded line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Want {
    Exact(String),
    /// A delete from Go code called back from C: the frames below the callback are C (and
    /// cgo's trampolines), whatever the C compiler made of them. The line starts with `root`,
    /// goes through `runtime.cgocallback`, and ends with `callback;tail`.
    FromC {
        root: String,
        callback: String,
        tail: String,
    },
}

impl Want {
    fn matches(&self, line: &str) -> bool {
        match self {
            Want::Exact(l) => l == line,
            Want::FromC {
                root,
                callback,
                tail,
            } => {
                let frames: Vec<&str> = line.split(';').collect();
                let tail_frames: Vec<&str> = tail.split(';').collect();
                let n = tail_frames.len();
                line.starts_with(root.as_str())
                    && frames.len() > n + 1
                    && frames[frames.len() - n..] == tail_frames[..]
                    && frames[frames.len() - n - 1].trim_end_matches("_[i]") == callback
                    && frames.contains(&"runtime.cgocallback")
            }
        }
    }
}

/// Root frames added by `--group-by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    None,
    MapType,
    KeyType,
    Goroutine,
}

impl Group {
    fn flag(self) -> &'static str {
        match self {
            Group::None => "none",
            Group::MapType => "map-type",
            Group::KeyType => "key-type",
            Group::Goroutine => "goroutine",
        }
    }

    fn root(self, rec: &Value) -> String {
        match self {
            Group::None => String::new(),
            Group::MapType => format!("{};", s(&rec["map_type"])),
            Group::KeyType => format!("{};", s(&rec["key_type"])),
            Group::Goroutine => format!("goroutine {};", rec["goid"]),
        }
    }
}

fn s(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// The function mdt probes for this record, the leaf of its stack: the runtime entry of
/// fixtures/deletes/README.md (the compiler's fast paths by key type); for reflect, what the
/// binary's `reflect.map*` function does (see [`reflect_entries`]).
fn leaf(rec: &Value, reflect: &BTreeMap<String, String>) -> String {
    let via = s(&rec["via"]);
    let entry = |name: &str| {
        reflect
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in the binary: {reflect:?}"))
    };
    if rec["kind"] == "clear" {
        return if via == "reflect" {
            entry("reflect.mapclear")
        } else {
            "runtime.mapclear".into()
        };
    }
    let fast = match s(&rec["key_type"]).as_str() {
        "string" => "_faststr",
        "int32" | "uint32" | "[4]uint8" => "_fast32",
        "int64" | "uint64" | "*int" => "_fast64",
        _ => "",
    };
    if via == "reflect" {
        // reflect has a string fast path only.
        return if fast == "_faststr" {
            entry("reflect.mapdelete_faststr")
        } else {
            entry("reflect.mapdelete")
        };
    }
    format!("runtime.mapdelete{fast}")
}

/// For `reflect.mapdelete`, `reflect.mapdelete_faststr` and `reflect.mapclear` in the binary
/// (from `go tool objdump` of the unstripped build): the probed function a delete through it
/// ends in. When `reflect.X` calls `runtime.X` (hmap runtimes; Swiss-table ones built with
/// -race), that is `runtime.X`; otherwise (Swiss tables) `reflect.X` itself, which mdt probes
/// instead of the internal `(*Map).Delete` / `(*Map).Clear`.
fn reflect_entries(tc: &Toolchain, v: Variant) -> BTreeMap<String, String> {
    type Cache = Mutex<BTreeMap<(String, Variant), BTreeMap<String, String>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let key = (tc.short.clone(), v);
    if let Some(m) = cache.lock().unwrap().get(&key) {
        return m.clone();
    }
    let bin = fixture(tc, common::unstripped_twin(v));
    let out = common::output_retrying(
        Command::new(&tc.go)
            .args([
                "tool",
                "objdump",
                "-s",
                r"^reflect\.map(delete|delete_faststr|clear)$",
            ])
            .arg(&bin)
            .env("GOTOOLCHAIN", "local")
            .stdin(Stdio::null()),
    );
    assert!(
        out.status.success(),
        "go tool objdump {}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m = BTreeMap::new();
    for section in text.split("TEXT ").skip(1) {
        let name = section.split('(').next().unwrap().to_string();
        let twin = name.replacen("reflect.", "runtime.", 1);
        let calls_twin = section.contains(&format!("CALL {twin}(SB)"));
        m.insert(
            name,
            if calls_twin {
                twin
            } else {
                section.split('(').next().unwrap().to_string()
            },
        );
    }
    cache.lock().unwrap().insert(key, m.clone());
    m
}

/// `map[K]V` → (K, V).
fn split_map_type(t: &str) -> (String, String) {
    let inner = t
        .strip_prefix("map[")
        .unwrap_or_else(|| panic!("not an unnamed map type: {t}"));
    let mut depth = 1;
    for (i, c) in inner.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return (inner[..i].to_string(), inner[i + 1..].to_string());
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced map type {t}")
}

/// The frames between the site function and the leaf (root first, folded names).
fn machinery(rec: &Value) -> Vec<String> {
    match s(&rec["via"]).as_str() {
        "maps.DeleteFunc" => {
            let mt = s(&rec["map_type"]);
            let (_, val) = split_map_type(&mt);
            vec![format!(
                "maps.DeleteFunc[go.shape.{mt},go.shape.{},go.shape.{val}]_[i]",
                s(&rec["key_type"])
            )]
        }
        "reflect" if rec["kind"] == "clear" => vec!["reflect.Value.Clear".into()],
        "reflect" => vec!["reflect.Value.SetMapIndex".into()],
        _ => vec![],
    }
}

/// Everything the outputs of one run must show, derived from the fixture's records.
struct Expected {
    ctx: String,
    records: Vec<Value>,
    /// `deletes done` + `clears done` from the fixture's stdout.
    total: u64,
    lines: BTreeMap<Want, u64>,
}

impl Expected {
    fn new(
        ctx: &str,
        tc: &Toolchain,
        v: Variant,
        expect_file: &Path,
        fixture_stdout: &str,
        group: Group,
    ) -> Expected {
        let records = common::read_json_lines(expect_file);
        let (deletes, clears) = fixture_counts(fixture_stdout, ctx);
        assert_eq!(
            records.len() as u64,
            deletes + clears,
            "{ctx}: the fixture's records and its own counts differ"
        );
        let reflect = reflect_entries(tc, v);
        let src = source();
        let mut lines: BTreeMap<Want, u64> = BTreeMap::new();
        for rec in &records {
            let func = s(&rec["func"]);
            let site = func
                .strip_prefix("main.")
                .unwrap_or_else(|| panic!("{ctx}: record of a non-main function: {rec}"));
            let callers = src.callers(site);
            assert_eq!(
                callers.len(),
                1,
                "{ctx}: callers of {site} in the fixture's source: {callers:?}"
            );
            let caller = callers[0];
            let mut tail = vec![func.clone()];
            tail.extend(machinery(rec));
            tail.push(leaf(rec, &reflect));
            let root = group.root(rec);
            let want = if src.exported.contains(caller) {
                Want::FromC {
                    root,
                    callback: format!("main.{caller}"),
                    tail: tail.join(";"),
                }
            } else if let Some(starter) = src.goroutine_starter(caller) {
                Want::Exact(format!(
                    "{root}runtime.goexit;{};main.{caller};{}",
                    closure_name(tc, v, starter),
                    tail.join(";")
                ))
            } else {
                // fixtures/deletes/README.md: main.main → main.runAll → main.runIteration →
                // main.<group> → main.<site>, on the main goroutine.
                Want::Exact(format!(
                    "{root}runtime.goexit;runtime.main;main.main;main.runAll;main.runIteration;main.{caller};{}",
                    tail.join(";")
                ))
            };
            *lines.entry(want).or_default() += 1;
        }
        Expected {
            ctx: ctx.to_string(),
            records,
            total: deletes + clears,
            lines,
        }
    }

    /// Compares a folded output with the expected lines; `min_count` drops expected lines seen
    /// fewer times.
    fn check_folded(&self, got: &BTreeMap<String, u64>, min_count: u64, what: &str) {
        let ctx = format!("{} ({what})", self.ctx);
        let mut left = got.clone();
        let mut problems = Vec::new();
        for (want, &n) in &self.lines {
            let matched: Vec<String> = left.keys().filter(|l| want.matches(l)).cloned().collect();
            let count: u64 = matched.iter().map(|l| left[l]).sum();
            for l in &matched {
                left.remove(l);
            }
            let expect = if n >= min_count { n } else { 0 };
            if count != expect {
                problems.push(format!(
                    "{want:?}: expected {expect}, got {count} (lines {matched:?})"
                ));
            }
        }
        for (l, n) in &left {
            problems.push(format!("unexpected line: {l} {n}"));
        }
        assert!(
            problems.is_empty(),
            "{ctx}: the folded output differs from the fixture's call paths:\n  {}\nfolded output:\n{}",
            problems.join("\n  "),
            folded_text(got)
        );
    }
}

fn folded_text(lines: &BTreeMap<String, u64>) -> String {
    lines.iter().map(|(l, n)| format!("{l} {n}\n")).collect()
}

/// (deletes, clears) from the fixture's stdout.
fn fixture_counts(stdout: &str, ctx: &str) -> (u64, u64) {
    let get = |prefix: &str| -> u64 {
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

/// Parses a folded file strictly: `frames count`, one stack per line, no duplicates.
fn parse_folded(text: &str, ctx: &str) -> BTreeMap<String, u64> {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{ctx}: folded output without a final newline"
    );
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let (stack, n) = l
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("{ctx}: folded line without a count: {l:?}"));
        let n: u64 = n
            .parse()
            .unwrap_or_else(|_| panic!("{ctx}: folded line with a bad count: {l:?}"));
        assert!(
            !stack.is_empty() && stack.split(';').all(|f| !f.is_empty()),
            "{ctx}: folded line with an empty frame: {l:?}"
        );
        assert!(
            out.insert(stack.to_string(), n).is_none(),
            "{ctx}: folded line twice: {l:?}"
        );
    }
    out
}

fn total(lines: &BTreeMap<String, u64>) -> u64 {
    lines.values().sum()
}

/// The function names of a folded frame list, without inferno's `_[i]` annotation.
fn frame_name(f: &str) -> &str {
    f.strip_suffix("_[i]").unwrap_or(f)
}

/// Per function name: the sum over lines of (frames with that name × count): what the SVG's
/// frames of that name must add up to.
fn frame_sums(lines: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (l, n) in lines {
        for f in l.split(';') {
            *m.entry(frame_name(f).to_string()).or_default() += n;
        }
    }
    m
}

// ---------------------------------------------------------------------------------------------
// SVG

struct Svg {
    title: String,
    subtitle: String,
    total_samples: u64,
    /// (name, count) of every frame, "all" included.
    frames: Vec<(String, u64)>,
}

const SVG_PARSER: &str = r#"
import json, sys, xml.dom.minidom as m
d = m.parse(sys.argv[1])
def text(n):
    return ''.join(c.data for c in n.childNodes if c.nodeType in (c.TEXT_NODE, c.CDATA_SECTION_NODE))
out = {"root": d.documentElement.tagName, "title": "", "subtitle": "", "total_samples": None, "frames": []}
for t in d.getElementsByTagName('text'):
    if t.getAttribute('id') in ('title', 'subtitle'):
        out[t.getAttribute('id')] = text(t)
for e in d.getElementsByTagName('svg'):
    if e.getAttribute('id') == 'frames':
        out['total_samples'] = e.getAttribute('total_samples')
for g in d.getElementsByTagName('g'):
    for c in g.childNodes:
        if c.nodeType == c.ELEMENT_NODE and c.tagName == 'title':
            out['frames'].append(text(c))
print(json.dumps(out))
"#;

/// What a profile's numbers are: how the SVG's frames and pprof name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// `--weight count`: `(N deletes, P%)`, pprof's `deletes/count`.
    Deletes,
    /// `--weight latency`: `(N ns, P%)`, pprof's `latency/nanoseconds`.
    Ns,
}

impl Unit {
    /// The frames' `(N UNIT, P%)`, as a regex.
    fn svg_re(self) -> &'static str {
        match self {
            Unit::Deletes => "deletes?",
            Unit::Ns => "ns",
        }
    }

    /// `go tool pprof`'s `Type:` line.
    fn pprof_type(self) -> &'static str {
        match self {
            Unit::Deletes => "deletes",
            Unit::Ns => "latency",
        }
    }
}

/// Parses an SVG with python3's xml.dom.minidom (expat: a conforming XML parser, so a
/// malformed file fails) and reads inferno's frames: `<g><title>NAME (N deletes, P%)</title>`.
fn parse_svg(path: &Path, ctx: &str) -> Svg {
    parse_svg_in(path, Unit::Deletes, ctx)
}

/// [`parse_svg`] of a graph whose frames count `unit`: `(N ns, P%)` by latency.
fn parse_svg_in(path: &Path, unit: Unit, ctx: &str) -> Svg {
    let out = Command::new("python3")
        .arg("-c")
        .arg(SVG_PARSER)
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("{ctx}: cannot run python3 (needed to parse the SVG as XML): {e}")
        });
    assert!(
        out.status.success(),
        "{ctx}: {} is not well-formed XML: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("parser output");
    assert_eq!(v["root"], "svg", "{ctx}: the root element is not <svg>");
    let re = regex::Regex::new(&format!(
        r"^(.*) \(([0-9,]+) {}, [0-9.]+%\)$",
        unit.svg_re()
    ))
    .unwrap();
    let frames = v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let t = t.as_str().unwrap();
            let c = re
                .captures(t)
                .unwrap_or_else(|| panic!("{ctx}: frame title not `NAME (N {unit:?}, P%)`: {t:?}"));
            (c[1].to_string(), c[2].replace(',', "").parse().unwrap())
        })
        .collect();
    Svg {
        title: s(&v["title"]),
        subtitle: s(&v["subtitle"]),
        total_samples: s(&v["total_samples"]).parse().unwrap_or(0),
        frames,
    }
}

impl Svg {
    fn all(&self) -> u64 {
        let roots: Vec<u64> = self
            .frames
            .iter()
            .filter(|(n, _)| n == "all")
            .map(|(_, c)| *c)
            .collect();
        assert_eq!(roots.len(), 1, "one `all` frame, got {roots:?}");
        roots[0]
    }

    fn sums(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for (n, c) in self.frames.iter().filter(|(n, _)| n != "all") {
            *m.entry(n.clone()).or_default() += c;
        }
        m
    }

    /// The SVG shows the folded lines: the root has the total, every function its frames'
    /// counts.
    fn check_against(&self, folded: &BTreeMap<String, u64>, ctx: &str) {
        let t = total(folded);
        assert_eq!(self.all(), t, "{ctx}: the SVG's root frame total");
        assert_eq!(self.total_samples, t, "{ctx}: the SVG's total_samples");
        let want = frame_sums(folded);
        let got = self.sums();
        assert_eq!(
            got, want,
            "{ctx}: the SVG's frames (name → count) differ from the folded lines"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// pprof

/// One row of `go tool pprof -top`.
#[derive(Debug, Clone)]
struct PprofRow {
    flat: u64,
    cum: u64,
    /// The function name (with `-lines`: without the file:line).
    func: String,
    inline: bool,
    /// With `-lines`: (file, line).
    pos: Option<(String, u64)>,
}

/// `go tool pprof -top [-lines] FILE`: the total and the rows.
fn pprof_top(tc: &Toolchain, file: &Path, lines: bool, ctx: &str) -> (u64, Vec<PprofRow>) {
    pprof_top_in(tc, file, lines, Unit::Deletes, ctx)
}

/// [`pprof_top`] of a profile whose sample type is `unit`'s (checked), its values shown in
/// that unit (`-unit=ns`: `1234ns`, not `1.23us`).
fn pprof_top_in(
    tc: &Toolchain,
    file: &Path,
    lines: bool,
    unit: Unit,
    ctx: &str,
) -> (u64, Vec<PprofRow>) {
    let mut cmd = Command::new(&tc.go);
    cmd.args([
        "tool",
        "pprof",
        "-top",
        "-nodecount=100000",
        "-nodefraction=0",
        "-edgefraction=0",
    ]);
    if lines {
        cmd.arg("-lines");
    }
    if unit == Unit::Ns {
        cmd.arg("-unit=ns");
    }
    cmd.arg(file)
        .env("GOTOOLCHAIN", "local")
        .stdin(Stdio::null());
    let out = common::output_retrying(&mut cmd);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{ctx}: go tool pprof -top {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let kind = text
        .lines()
        .find_map(|l| l.strip_prefix("Type: "))
        .unwrap_or_else(|| panic!("{ctx}: no `Type:` in pprof's output:\n{text}"));
    assert_eq!(kind, unit.pprof_type(), "{ctx}: pprof's sample type");
    let total_re = regex::Regex::new(
        r"Showing nodes accounting for \d+(?:ns)?, [\d.]+% of (\d+)(?:ns)? total",
    )
    .unwrap();
    let total: u64 = total_re
        .captures(&text)
        .unwrap_or_else(|| panic!("{ctx}: no `of N total` in pprof's output:\n{text}"))[1]
        .parse()
        .unwrap();
    let row_re =
        regex::Regex::new(r"^\s*(\d+)(?:ns)?\s+[\d.]+%\s+[\d.]+%\s+(\d+)(?:ns)?\s+[\d.]+%\s+(.+)$")
            .unwrap();
    let mut rows = Vec::new();
    for l in text.lines() {
        let Some(c) = row_re.captures(l) else {
            continue;
        };
        let mut name = c[3].trim().to_string();
        let inline = name.ends_with(" (inline)");
        if inline {
            name.truncate(name.len() - " (inline)".len());
        }
        let (func, pos) = if lines {
            match name.rsplit_once(' ') {
                Some((f, p)) => match p.rsplit_once(':') {
                    Some((file, line)) if line.parse::<u64>().is_ok() => (
                        f.to_string(),
                        Some((file.to_string(), line.parse().unwrap())),
                    ),
                    _ => (name.clone(), None),
                },
                None => (name.clone(), None),
            }
        } else {
            (name, None)
        };
        rows.push(PprofRow {
            flat: c[1].parse().unwrap(),
            cum: c[2].parse().unwrap(),
            func,
            inline,
            pos,
        });
    }
    assert!(
        !rows.is_empty(),
        "{ctx}: no rows in pprof's output:\n{text}"
    );
    (total, rows)
}

/// `-top`: the total, and per function the flat (leaf) and cum counts of the folded lines.
fn check_pprof_top(tc: &Toolchain, file: &Path, folded: &BTreeMap<String, u64>, ctx: &str) {
    check_pprof_top_in(tc, file, folded, Unit::Deletes, ctx)
}

/// [`check_pprof_top`] of a profile whose sample type is `unit`'s.
fn check_pprof_top_in(
    tc: &Toolchain,
    file: &Path,
    folded: &BTreeMap<String, u64>,
    unit: Unit,
    ctx: &str,
) {
    let (t, rows) = pprof_top_in(tc, file, false, unit, ctx);
    assert_eq!(t, total(folded), "{ctx}: pprof's total samples");
    // Some pprof versions (Go 1.25's) show C-ish names without their leading underscore
    // (`_cgoexp_..._mdtGoCallback` as `cgoexp_...`): compare without it.
    let name = |f: &str| f.trim_start_matches('_').to_string();
    let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (l, &n) in folded {
        let frames: Vec<&str> = l.split(';').map(frame_name).collect();
        let uniq: BTreeSet<&str> = frames.iter().copied().collect();
        for f in uniq {
            want.entry(name(f)).or_default().1 += n;
        }
        want.entry(name(frames.last().unwrap())).or_default().0 += n;
    }
    let mut got: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &rows {
        let e = got.entry(name(&r.func)).or_default();
        e.0 += r.flat;
        e.1 += r.cum;
    }
    let diff: Vec<String> = want
        .keys()
        .chain(got.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| {
            format!(
                "{k}: want (flat, cum) {:?}, pprof {:?}",
                want.get(k),
                got.get(k)
            )
        })
        .collect();
    assert!(
        diff.is_empty(),
        "{ctx}: pprof -top differs from the folded lines:\n  {}",
        diff.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Runs

/// `mdt flame ARGS -- FIXTURE -expect E fixture_args` to its end; returns (fixture stdout,
/// expect file, mdt's stderr).
fn flame_launch(
    ctx: &str,
    dir: &Scratch,
    tag: &str,
    bin: &Path,
    flags: &[&str],
    fixture_args: &[&str],
) -> (String, PathBuf, String) {
    let expect = dir.path(&format!("{tag}.expect"));
    let mut cmd = mdt(["flame"]);
    cmd.args(flags)
        .arg("--")
        .arg(bin)
        .arg("-expect")
        .arg(&expect)
        .args(fixture_args);
    let f = run_ok(&format!("{ctx}: mdt flame {flags:?}"), cmd);
    assert!(
        f.stderr.contains(ANNOUNCE),
        "{ctx}: no announce line: {}",
        f.stderr
    );
    (f.stdout_text(), expect, f.stderr)
}

fn out_args(dir: &Scratch, tag: &str, exts: &[&str]) -> Vec<String> {
    exts.iter()
        .flat_map(|e| {
            [
                "-o".to_string(),
                dir.path(&format!("{tag}.{e}"))
                    .to_string_lossy()
                    .into_owned(),
            ]
        })
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Folded, SVG and pprof of a live run; --from round trips (one pass over the matrix)

#[test]
fn live_outputs_and_from_round_trips() {
    if !common::require_root_bpf() {
        return;
    }
    for_jobs(
        "live_outputs_and_from_round_trips",
        common::matrix(),
        |tc, v| {
            let ctx = format!("{tc} {v}");
            let bin = fixture(tc, v);
            let dir = Scratch::new(&format!("live-{}-{v}", tc.short));
            let (live, expect, stdout) = check_live_outputs(tc, v, &ctx, &bin, &dir);
            check_from_round_trips(tc, v, &ctx, &bin, &dir, &live, &expect, &stdout);
            dir.assert_no_temp_files(&ctx);
        },
    );
}

/// One live run writing folded, SVG and pprof, checked against the fixture's records; returns
/// the folded lines, the records' file and the fixture's stdout.
fn check_live_outputs(
    tc: &Toolchain,
    v: Variant,
    ctx: &str,
    bin: &Path,
    dir: &Scratch,
) -> (BTreeMap<String, u64>, PathBuf, String) {
    let ctx = ctx.to_string();
    let outs = out_args(dir, "d", &["folded", "svg", "pb.gz"]);
    let (stdout, expect, stderr) = flame_launch(&ctx, dir, "d", bin, &strs(&outs), &[]);
    dir.assert_no_temp_files(&ctx);
    let exp = Expected::new(&ctx, tc, v, &expect, &stdout, Group::None);
    let folded = parse_folded(&read(&dir.path("d.folded"), &ctx), &ctx);

    // Folded: exactly the call paths and counts; the total is the fixture's.
    exp.check_folded(&folded, 1, "folded");
    assert_eq!(
        total(&folded),
        exp.total,
        "{ctx}: the folded total is not deletes done + clears done"
    );
    assert!(
        stderr.contains(&format!(
            "({} deletes in {} stacks)",
            exp.total,
            folded.len()
        )),
        "{ctx}: mdt's summary line: {stderr}"
    );

    // SVG: well-formed, frames and totals.
    let svg = parse_svg(&dir.path("d.svg"), &ctx);
    svg.check_against(&folded, &ctx);
    assert_eq!(svg.title, "Go map deletes", "{ctx}: default title");
    for rec in &exp.records {
        let f = s(&rec["func"]);
        assert!(svg.sums().contains_key(&f), "{ctx}: no SVG frame names {f}");
    }

    // pprof -top: every function's flat and cum.
    let pb = dir.path("d.pb.gz");
    check_pprof_top(tc, &pb, &folded, &ctx);

    // pprof -top -lines: each site at the fixture's file:line with its count; the inlined
    // maps.DeleteFunc marked (inline), in the Go root's maps/maps.go.
    let (_, rows) = pprof_top(tc, &pb, true, &ctx);
    let mut sites: BTreeMap<(String, String, u64), u64> = BTreeMap::new();
    let mut inlined: BTreeMap<String, u64> = BTreeMap::new();
    for rec in &exp.records {
        let key = (
            s(&rec["func"]),
            s(&rec["file"]),
            rec["line"].as_u64().unwrap(),
        );
        *sites.entry(key).or_default() += 1;
        for m in machinery(rec) {
            if let Some(name) = m.strip_suffix("_[i]") {
                *inlined.entry(name.to_string()).or_default() += 1;
            }
        }
    }
    for ((func, file, line), n) in &sites {
        let cum: u64 = rows
            .iter()
            .filter(|r| &r.func == func && r.pos.as_ref() == Some(&(file.clone(), *line)))
            .map(|r| r.cum)
            .sum();
        assert_eq!(cum, *n, "{ctx}: pprof -lines: cum of {func} {file}:{line}");
    }
    // Nothing else in a site function: every row of one is at a recorded line.
    for r in rows
        .iter()
        .filter(|r| sites.keys().any(|(f, _, _)| f == &r.func))
    {
        let (file, line) = r.pos.clone().unwrap_or_default();
        assert!(
            sites.contains_key(&(r.func.clone(), file.clone(), line)),
            "{ctx}: pprof -lines: {} at {file}:{line}, not a line the fixture recorded",
            r.func
        );
    }
    for (name, n) in &inlined {
        let rows: Vec<&PprofRow> = rows.iter().filter(|r| &r.func == name).collect();
        let cum: u64 = rows.iter().map(|r| r.cum).sum();
        assert_eq!(cum, *n, "{ctx}: pprof -lines: cum of {name}: {rows:?}");
        for r in rows {
            assert!(
                r.inline,
                "{ctx}: pprof -lines: {name} is not marked (inline): {r:?}"
            );
            let (file, line) = r.pos.clone().unwrap_or_default();
            assert!(
                file.ends_with("/maps/maps.go") && line > 0,
                "{ctx}: pprof -lines: {name} at {file}:{line}, not in the Go root's maps/maps.go"
            );
        }
    }
    (folded, expect, stdout)
}

// ---------------------------------------------------------------------------------------------
// 2. --from round trips

/// `mdt trace --json` of the same binary, then `mdt flame --from` it: the live run's folded
/// output; a saved folded file → SVG and pprof.
#[allow(clippy::too_many_arguments)]
fn check_from_round_trips(
    tc: &Toolchain,
    v: Variant,
    ctx: &str,
    bin: &Path,
    dir: &Scratch,
    live: &BTreeMap<String, u64>,
    expect: &Path,
    stdout: &str,
) {
    let ctx = ctx.to_string();
    // A trace of the same binary.
    let json = dir.path("trace.json");
    let mut cmd = mdt(["trace", "--json", "-o"]);
    cmd.arg(&json).arg("--").arg(bin);
    run_ok(&format!("{ctx}: mdt trace --json"), cmd);

    // JSON → folded: the live run's output, line for line.
    let from = dir.path("from-json.folded");
    let mut cmd = mdt(["flame", "--format", "folded", "-o"]);
    cmd.arg(&from).arg("--from").arg(&json);
    run_ok(&format!("{ctx}: mdt flame --from JSON"), cmd);
    let from_json = parse_folded(&read(&from, &ctx), &ctx);
    assert_eq!(
        from_json,
        *live,
        "{ctx}: `mdt flame --from` of a `mdt trace --json` stream differs from the live run:\n--from:\n{}live:\n{}",
        folded_text(&from_json),
        folded_text(live)
    );

    // JSON → grouped by map type: the records' map types as roots.
    let grouped = dir.path("from-json-mt.folded");
    let mut cmd = mdt([
        "flame",
        "--group-by",
        "map-type",
        "--format",
        "folded",
        "-o",
    ]);
    cmd.arg(&grouped).arg("--from").arg(&json);
    run_ok(
        &format!("{ctx}: mdt flame --from JSON --group-by map-type"),
        cmd,
    );
    let exp_mt = Expected::new(&ctx, tc, v, expect, stdout, Group::MapType);
    exp_mt.check_folded(
        &parse_folded(&read(&grouped, &ctx), &ctx),
        1,
        "--from JSON --group-by map-type",
    );

    // A saved folded file → SVG and pprof with the same stacks and counts.
    let outs = out_args(dir, "from-folded", &["svg", "pb.gz", "folded"]);
    let mut cmd = mdt(["flame"]);
    cmd.args(&outs).arg("--from").arg(dir.path("d.folded"));
    run_ok(&format!("{ctx}: mdt flame --from FOLDED"), cmd);
    let again = parse_folded(&read(&dir.path("from-folded.folded"), &ctx), &ctx);
    assert_eq!(&again, live, "{ctx}: folded → folded is not the identity");
    parse_svg(&dir.path("from-folded.svg"), &ctx)
        .check_against(live, &format!("{ctx} (svg from folded)"));
    check_pprof_top(
        tc,
        &dir.path("from-folded.pb.gz"),
        live,
        &format!("{ctx} (pprof from folded)"),
    );
    dir.assert_no_temp_files(&ctx);
}

// ---------------------------------------------------------------------------------------------
// 3. Options

#[test]
fn options() {
    if !common::require_root_bpf() {
        return;
    }
    for_jobs("options", option_jobs(), |tc, v| {
        let ctx = format!("{tc} {v}");
        let bin = fixture(tc, v);
        let dir = Scratch::new(&format!("opts-{}-{v}", tc.short));

        // --group-by: each map type, key type, goroutine its own root, with the records' counts.
        for group in [Group::MapType, Group::KeyType, Group::Goroutine] {
            let tag = group.flag();
            let mut flags = vec!["--group-by".to_string(), tag.to_string()];
            flags.extend(out_args(&dir, tag, &["folded", "svg"]));
            let (stdout, expect, _) = flame_launch(&ctx, &dir, tag, &bin, &strs(&flags), &[]);
            let exp = Expected::new(&ctx, tc, v, &expect, &stdout, group);
            let folded = parse_folded(&read(&dir.path(&format!("{tag}.folded")), &ctx), &ctx);
            exp.check_folded(&folded, 1, &format!("--group-by {tag}"));
            let mut want_roots: BTreeMap<String, u64> = BTreeMap::new();
            for rec in &exp.records {
                *want_roots
                    .entry(group.root(rec).trim_end_matches(';').to_string())
                    .or_default() += 1;
            }
            let mut got_roots: BTreeMap<String, u64> = BTreeMap::new();
            for (l, n) in &folded {
                *got_roots
                    .entry(l.split(';').next().unwrap().to_string())
                    .or_default() += n;
            }
            assert_eq!(
                got_roots, want_roots,
                "{ctx}: --group-by {tag}: the roots and their counts"
            );
            // In the SVG each root is one frame right under `all`, with its count.
            let svg = parse_svg(&dir.path(&format!("{tag}.svg")), &ctx);
            svg.check_against(&folded, &format!("{ctx} --group-by {tag}"));
            let sums = svg.sums();
            for (root, n) in &want_roots {
                assert_eq!(
                    sums.get(root),
                    Some(n),
                    "{ctx}: --group-by {tag}: SVG frame {root}"
                );
            }
        }

        // Default run: the reference for the options below.
        let (stdout, expect, _) = flame_launch(
            &ctx,
            &dir,
            "default",
            &bin,
            &["-o", dir.path("default.folded").to_str().unwrap()],
            &[],
        );
        let exp = Expected::new(&ctx, tc, v, &expect, &stdout, Group::None);
        let default = parse_folded(&read(&dir.path("default.folded"), &ctx), &ctx);
        exp.check_folded(&default, 1, "default");

        // --min-count 3: rare stacks dropped from every output, the same ones.
        let mut flags = vec!["--min-count".to_string(), "3".to_string()];
        flags.extend(out_args(&dir, "min", &["folded", "svg", "pb.gz"]));
        let (stdout, expect, _) = flame_launch(&ctx, &dir, "min", &bin, &strs(&flags), &[]);
        let exp_min = Expected::new(&ctx, tc, v, &expect, &stdout, Group::None);
        let min = parse_folded(&read(&dir.path("min.folded"), &ctx), &ctx);
        exp_min.check_folded(&min, 3, "--min-count 3");
        assert!(
            min.len() < default.len() && !min.is_empty(),
            "{ctx}: --min-count 3 should drop some stacks and keep some"
        );
        parse_svg(&dir.path("min.svg"), &ctx)
            .check_against(&min, &format!("{ctx} --min-count svg"));
        check_pprof_top(
            tc,
            &dir.path("min.pb.gz"),
            &min,
            &format!("{ctx} --min-count pprof"),
        );

        // --inverted: still valid SVG with the same total; the leaves are the roots now, one
        // frame per delete function with all of its count.
        let mut flags = vec!["--inverted".to_string()];
        flags.extend(out_args(&dir, "inv", &["svg", "folded"]));
        flame_launch(&ctx, &dir, "inv", &bin, &strs(&flags), &[]);
        let inv_folded = parse_folded(&read(&dir.path("inv.folded"), &ctx), &ctx);
        assert_eq!(
            inv_folded, default,
            "{ctx}: --inverted changes the folded output"
        );
        let svg = parse_svg(&dir.path("inv.svg"), &ctx);
        svg.check_against(&default, &format!("{ctx} --inverted"));
        let mut leaves: BTreeMap<String, u64> = BTreeMap::new();
        for (l, n) in &default {
            *leaves
                .entry(l.rsplit(';').next().unwrap().to_string())
                .or_default() += n;
        }
        for (leaf, n) in &leaves {
            let frames: Vec<u64> = svg
                .frames
                .iter()
                .filter(|(f, _)| f == leaf)
                .map(|(_, c)| *c)
                .collect();
            assert_eq!(frames, vec![*n], "{ctx}: --inverted: the frames of {leaf}");
        }

        // --runtime-frames: the same stacks with the runtime's frames kept above the delete.
        let mut flags = vec!["--runtime-frames".to_string()];
        flags.extend(out_args(&dir, "rt", &["folded"]));
        flame_launch(&ctx, &dir, "rt", &bin, &strs(&flags), &[]);
        let rt = parse_folded(&read(&dir.path("rt.folded"), &ctx), &ctx);
        assert_eq!(total(&rt), exp.total, "{ctx}: --runtime-frames total");
        // reflect's string delete goes through reflect.mapdelete_faststr, a runtime frame.
        assert_ne!(rt, default, "{ctx}: --runtime-frames changes nothing");
        let mut reduced: BTreeMap<String, u64> = BTreeMap::new();
        for (l, n) in &rt {
            let mut frames: Vec<&str> = l.split(';').collect();
            let leaf = frames.pop().unwrap();
            while frames.last().is_some_and(|f| {
                f.starts_with("runtime.")
                    || f.starts_with("internal/runtime/")
                    || f.starts_with("reflect.map")
            }) {
                frames.pop();
            }
            frames.push(leaf);
            *reduced.entry(frames.join(";")).or_default() += n;
        }
        assert_eq!(
            reduced,
            default,
            "{ctx}: --runtime-frames without the runtime frames above the leaf is not the default output:\n{}",
            folded_text(&rt)
        );

        // --map-type and --title.
        let mut flags: Vec<String> = [
            "--map-type",
            "^main\\.UserMap$",
            "--title",
            "UserMap <deletes> & \"co\"",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        flags.extend(out_args(&dir, "user", &["folded", "svg"]));
        flame_launch(&ctx, &dir, "user", &bin, &strs(&flags), &[]);
        let user = parse_folded(&read(&dir.path("user.folded"), &ctx), &ctx);
        let want_user = exp
            .records
            .iter()
            .filter(|r| r["map_type"] == "main.UserMap")
            .count() as u64;
        assert_eq!(
            total(&user),
            want_user,
            "{ctx}: --map-type main.UserMap total"
        );
        assert!(
            user.keys().all(|l| default.contains_key(l)),
            "{ctx}: --map-type: paths that the unfiltered run does not have:\n{}",
            folded_text(&user)
        );
        let svg = parse_svg(&dir.path("user.svg"), &ctx);
        svg.check_against(&user, &format!("{ctx} --map-type svg"));
        assert_eq!(svg.title, "UserMap <deletes> & \"co\"", "{ctx}: --title");

        // --sample 0.1 with -repeat 50: the total is still exact, the paths are the fixture's,
        // and the SVG says the counts are scaled.
        let mut flags = vec!["--sample".to_string(), "0.1".to_string()];
        flags.extend(out_args(&dir, "sampled", &["folded", "svg", "pb.gz"]));
        let (stdout, _, _) = flame_launch(
            &ctx,
            &dir,
            "sampled",
            &bin,
            &strs(&flags),
            &["-repeat", "50"],
        );
        let (d, c) = fixture_counts(&stdout, &ctx);
        assert_eq!(d + c, exp.total * 50, "{ctx}: -repeat 50 counts");
        let sampled = parse_folded(&read(&dir.path("sampled.folded"), &ctx), &ctx);
        assert_eq!(
            total(&sampled),
            d + c,
            "{ctx}: --sample 0.1: the folded total is not the exact total"
        );
        assert!(
            sampled.keys().all(|l| default.contains_key(l)),
            "{ctx}: --sample: paths that the unsampled run does not have:\n{}",
            folded_text(&sampled)
        );
        let svg = parse_svg(&dir.path("sampled.svg"), &ctx);
        svg.check_against(&sampled, &format!("{ctx} --sample svg"));
        assert!(
            svg.subtitle.contains("scaled") && svg.subtitle.contains("10.000%"),
            "{ctx}: --sample: the SVG does not say the counts are scaled: {:?}",
            svg.subtitle
        );
        check_pprof_top(
            tc,
            &dir.path("sampled.pb.gz"),
            &sampled,
            &format!("{ctx} --sample pprof"),
        );
        dir.assert_no_temp_files(&ctx);
    });
}

// ---------------------------------------------------------------------------------------------
// 4. -p mode with SIGINT; --duration in launch mode

#[test]
fn pid_mode_signal_and_duration() {
    if !common::require_root_bpf() {
        return;
    }
    let jobs = vec![option_jobs().pop().unwrap()];
    for_jobs("pid_mode_signal_and_duration", jobs, |tc, v| {
        let ctx = format!("{tc} {v}");
        let bin = fixture(tc, v);
        let dir = Scratch::new(&format!("pid-{}-{v}", tc.short));

        // -p: attach to a waiting fixture, let it delete, then SIGINT.
        let go = dir.path("go");
        let expect = dir.path("p.expect");
        let mut fx = Command::new(&bin);
        fx.arg("-wait-file")
            .arg(&go)
            .args(["-hold", "-expect"])
            .arg(&expect);
        let mut target = Proc::spawn(&format!("{ctx}: fixture"), fx, Stdio::piped());
        let mut cmd = mdt(["flame", "-p", &target.pid().to_string()]);
        cmd.args(out_args(&dir, "p", &["folded", "svg"]));
        let mut m = Proc::spawn(&format!("{ctx}: mdt flame -p"), cmd, Stdio::null());
        assert!(
            m.wait_until(RUN_TIMEOUT, |p| p.stderr.text().contains(ANNOUNCE)
                || p.has_exited()),
            "{ctx}: mdt flame -p did not attach"
        );
        assert!(
            !m.has_exited(),
            "{ctx}: mdt flame -p exited early: {}",
            m.stderr.text()
        );
        fs::write(&go, b"").unwrap();
        assert!(
            target
                .stdout
                .wait_for(RUN_TIMEOUT, |t| t.contains("clears done:")),
            "{ctx}: the fixture did not finish deleting: {}",
            target.stderr.text()
        );
        assert!(
            !m.has_exited(),
            "{ctx}: mdt stopped before SIGINT: {}",
            m.stderr.text()
        );
        m.signal(libc::SIGINT);
        m.finish_ok(RUN_TIMEOUT, "mdt flame -p after SIGINT");
        let exp = Expected::new(&ctx, tc, v, &expect, &target.stdout.text(), Group::None);
        let folded = parse_folded(&read(&dir.path("p.folded"), &ctx), &ctx);
        exp.check_folded(&folded, 1, "-p, SIGINT");
        parse_svg(&dir.path("p.svg"), &ctx).check_against(&folded, &format!("{ctx} -p svg"));
        // The target outlives the detach and ends normally.
        target.stdin.take();
        target.finish_ok(RUN_TIMEOUT, "the fixture after mdt detached");

        // Launch mode with --duration: the graph is written when the duration ends, while the
        // program still runs; mdt then waits for it and passes its exit status on.
        let expect = dir.path("d.expect");
        let out = dir.path("d.folded");
        let mut cmd = mdt(["flame", "--duration", "2s", "-o"]);
        cmd.arg(&out)
            .arg("--")
            .arg(&bin)
            .args(["-hold", "-exit-code", "7", "-expect"])
            .arg(&expect);
        let mut m = Proc::spawn(&format!("{ctx}: mdt flame --duration"), cmd, Stdio::piped());
        assert!(
            m.wait_until(RUN_TIMEOUT, |p| out.exists() || p.has_exited()),
            "{ctx}: --duration: no output"
        );
        assert!(
            out.exists(),
            "{ctx}: mdt exited without writing the graph: {}",
            m.stderr.text()
        );
        assert!(
            !m.has_exited(),
            "{ctx}: --duration: mdt ended although the program holds"
        );
        m.stdin.take(); // the program's stdin: EOF ends its -hold
        let f = m.finish(
            RUN_TIMEOUT,
            "mdt flame --duration after the program's stdin EOF",
        );
        assert_eq!(
            f.status.code(),
            Some(7),
            "{ctx}: --duration: the program's exit status; {}",
            f.stderr
        );
        let exp = Expected::new(&ctx, tc, v, &expect, &f.stdout_text(), Group::None);
        exp.check_folded(&parse_folded(&read(&out, &ctx), &ctx), 1, "--duration");
        dir.assert_no_temp_files(&ctx);
    });
}

// ---------------------------------------------------------------------------------------------
// 5. Errors

/// Runs mdt, which must fail with one `mdt: ` line on stderr that mentions `needles`, exit
/// `code` (or any non-zero code), and write nothing to stdout.
fn expect_error(ctx: &str, cmd: Command, code: Option<i32>, needles: &[&str]) -> Finished {
    let f = run(ctx, cmd);
    check_one_line(ctx, &f, code, needles);
    assert!(
        f.stdout.is_empty(),
        "{ctx}: unexpected stdout: {}",
        f.stdout_text()
    );
    f
}

/// A failure with one `mdt: ` line on stderr that mentions `needles`, exit `code` (or any
/// non-zero code).
fn check_one_line(ctx: &str, f: &Finished, code: Option<i32>, needles: &[&str]) {
    assert!(
        !f.status.success(),
        "{ctx}: mdt succeeded; stderr: {}",
        f.stderr
    );
    assert!(
        f.status.code().is_some(),
        "{ctx}: killed by a signal: {}",
        f.status
    );
    if let Some(c) = code {
        assert_eq!(
            f.status.code(),
            Some(c),
            "{ctx}: exit status; stderr: {}",
            f.stderr
        );
    }
    let lines: Vec<&str> = f.stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("mdt: "),
        "{ctx}: stderr must be one line starting with `mdt: `, got:\n{}",
        f.stderr
    );
    for n in needles {
        assert!(
            lines[0].to_lowercase().contains(&n.to_lowercase()),
            "{ctx}: the message should mention {n:?}: {}",
            lines[0]
        );
    }
}

/// A small valid `mdt trace --json` stream (no BPF needed to make one).
fn synthetic_json() -> String {
    let rec = |func: &str, key: &str, site: &str, line: u32| {
        serde_json::json!({
            "type": "delete", "goid": 1, "func": func, "map_type": "map[int64]int",
            "key_type": key, "stack": [
                {"func": func, "file": "/go/src/runtime/map_fast64.go", "line": 273, "inlined": false, "addr": "0x412e8a"},
                {"func": site, "file": "/src/main.go", "line": line, "inlined": false, "addr": "0x4bcf2c"},
                {"func": "main.main", "file": "/src/main.go", "line": 10, "inlined": false, "addr": "0x4bd085"},
                {"func": "runtime.main", "file": "/go/src/runtime/proc.go", "line": 250, "inlined": false, "addr": "0x46d192"}
            ]
        })
        .to_string()
    };
    let mut s = String::new();
    for _ in 0..3 {
        s += &rec("runtime.mapdelete_fast64", "int64", "main.a", 20);
        s.push('\n');
    }
    s += &rec("runtime.mapdelete_fast64", "int64", "main.b", 30);
    s.push('\n');
    s += "{\"type\":\"summary\",\"deletes\":4,\"clears\":0,\"sample_rate\":1.0,\"filtered_out\":0,\"duration\":0.5}\n";
    s
}

/// Whether `unshare -m` works here (a private mount namespace, for read-only and full file
/// systems that vanish with the process).
fn unshare_works() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        Command::new("unshare")
            .args(["-m", "sh", "-c", "mount -t tmpfs -o size=4k mdt-probe /mnt 2>/dev/null || mount -t tmpfs -o size=4k mdt-probe /tmp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `mdt ARGS` in a private mount namespace where `setup` (shell, `$D` = `dir`) ran first; then
/// prints `ls -A $D` after `--- ls`, so that what mdt left behind can be checked.
fn mdt_in_mount_ns(setup: &str, dir: &Path, args: &[&str]) -> Command {
    let script = format!(
        "D=\"$1\"; shift; {setup} || exit 99; \"$@\"; rc=$?; echo '--- ls' >&3; ls -A \"$D\" >&3; exit $rc"
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        &format!("exec 3>&1 1>/dev/null; {script}"),
        "sh",
    ])
    .arg(dir)
    .arg(mdt_bin())
    .args(args)
    .env_remove(SAMPLING_ENV)
    .env_remove("RUST_BACKTRACE");
    cmd
}

/// Errors that need no tracing (no root needed, except for the mount namespace cases).
#[test]
fn errors_are_one_line() {
    let dir = Scratch::new("errors");
    let folded = dir.path("ok.folded");
    fs::write(&folded, "main.main;main.a;runtime.mapdelete_fast64 3\nmain.main;main.b;runtime.mapdelete_fast64 1\n").unwrap();
    let json = dir.path("ok.json");
    fs::write(&json, synthetic_json()).unwrap();
    let out_dir = dir.path("out");
    fs::create_dir(&out_dir).unwrap();
    let out = |name: &str| out_dir.join(name).to_string_lossy().into_owned();
    let check_nothing_written = |ctx: &str| {
        assert_eq!(
            list_dir(&out_dir),
            Vec::<String>::new(),
            "{ctx}: files left in the output directory"
        );
    };
    let from = |args: &[&str], input: &Path| {
        let mut cmd = mdt(["flame"]);
        cmd.args(args).arg("--from").arg(input);
        cmd
    };

    // The valid inputs work (so the errors below are about what they change).
    run_ok("valid folded", from(&["-o", &out("a.svg")], &folded));
    run_ok("valid JSON", from(&["-o", &out("a.folded")], &json));
    assert_eq!(
        read(Path::new(&out("a.folded")), "valid JSON"),
        "runtime.main;main.main;main.a;runtime.mapdelete_fast64 3\nruntime.main;main.main;main.b;runtime.mapdelete_fast64 1\n"
    );
    fs::remove_file(out("a.svg")).unwrap();
    fs::remove_file(out("a.folded")).unwrap();

    // Unknown format: a clap error (exit 2), or a name that says nothing.
    expect_error(
        "--format xyz",
        from(&["--format", "xyz", "-o", &out("a.svg")], &folded),
        Some(2),
        &["xyz"],
    );
    check_nothing_written("--format xyz");
    expect_error(
        "--weight xyz",
        from(&["--weight", "xyz", "-o", &out("a.svg")], &folded),
        Some(2),
        &["xyz", "--weight"],
    );
    check_nothing_written("--weight xyz");
    expect_error(
        "-o out.xyz",
        from(&["-o", &out("a.svg"), "-o", &out("out.xyz")], &folded),
        Some(1),
        &["out.xyz", "--format"],
    );
    check_nothing_written("-o out.xyz");

    // Unwritable outputs.
    expect_error(
        "missing directory",
        from(
            &["-o", &out("a.folded"), "-o", "/nonexistent/dir/x.svg"],
            &folded,
        ),
        Some(1),
        &["/nonexistent/dir/x.svg"],
    );
    check_nothing_written("missing directory");
    let sub = out_dir.join("sub.svg");
    fs::create_dir(&sub).unwrap();
    expect_error(
        "a directory",
        from(&["-o", sub.to_str().unwrap()], &folded),
        Some(1),
        &["directory"],
    );
    assert_eq!(
        list_dir(&out_dir),
        vec!["sub.svg".to_string()],
        "a directory: files left"
    );
    fs::remove_dir(&sub).unwrap();

    // A read-only directory: root ignores permissions, so a read-only bind mount in a private
    // mount namespace; without root a mode 0555 directory.
    // SAFETY: trivial syscall.
    let root = unsafe { libc::geteuid() } == 0;
    if root && unshare_works() {
        let ro = out_dir.join("ro");
        fs::create_dir(&ro).unwrap();
        let target = ro.join("x.svg");
        let f = run(
            "read-only directory",
            mdt_in_mount_ns(
                "mount --bind \"$D\" \"$D\" && mount -o remount,bind,ro \"$D\"",
                &ro,
                &[
                    "flame",
                    "-o",
                    target.to_str().unwrap(),
                    "--from",
                    folded.to_str().unwrap(),
                ],
            ),
        );
        assert_ne!(
            f.status.code(),
            Some(99),
            "read-only directory: the mount failed: {}",
            f.stderr
        );
        check_one_line("read-only directory", &f, Some(1), &["x.svg", "read-only"]);
        assert_eq!(
            f.stdout_text(),
            "--- ls\n",
            "read-only directory: files left behind"
        );
        fs::remove_dir(&ro).unwrap();
    } else if !root {
        let ro = out_dir.join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        expect_error(
            "read-only directory",
            from(&["-o", ro.join("x.svg").to_str().unwrap()], &folded),
            Some(1),
            &["x.svg"],
        );
        assert!(list_dir(&ro).is_empty(), "read-only directory: files left");
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_dir(&ro).unwrap();
    } else {
        common::note(
            "SKIP errors_are_one_line: read-only directory: `unshare -m` does not work here",
        );
    }

    // A file system that fills up while the outputs are written: the small folded file fits,
    // the SVG does not; neither is left behind, nor any temporary file.
    if root && unshare_works() {
        let many = dir.path("many.folded");
        let text: String = (0..60)
            .map(|i| {
                format!(
                    "main.main;main.caller{i};main.site{i};runtime.mapdelete_fast64 {}\n",
                    i + 1
                )
            })
            .collect();
        fs::write(&many, &text).unwrap();
        let full = out_dir.join("full");
        fs::create_dir(&full).unwrap();
        let f = run(
            "full file system",
            mdt_in_mount_ns(
                "mount -t tmpfs -o size=8k mdt-test \"$D\"",
                &full,
                &[
                    "flame",
                    "-o",
                    full.join("x.folded").to_str().unwrap(),
                    "-o",
                    full.join("x.svg").to_str().unwrap(),
                    "--from",
                    many.to_str().unwrap(),
                ],
            ),
        );
        assert_ne!(
            f.status.code(),
            Some(99),
            "full file system: the tmpfs mount failed: {}",
            f.stderr
        );
        check_one_line("full file system", &f, Some(1), &["x.svg"]);
        assert_eq!(
            f.stdout_text(),
            "--- ls\n",
            "full file system: files left behind"
        );
        fs::remove_dir(&full).unwrap();
    } else {
        common::note("SKIP errors_are_one_line: full file system: needs root and `unshare -m`");
    }

    // --from: missing, empty, whitespace only, garbage, not UTF-8, a broken JSON line, JSON that
    // is not mdt's, folded input with options that need map types.
    // (what, the file's content, extra flags, what the message must mention)
    type Case<'a> = (&'a str, Vec<u8>, Vec<&'a str>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        ("empty --from file", vec![], vec![], vec!["empty"]),
        (
            "blank --from file",
            b"\n  \n\n".to_vec(),
            vec![],
            vec!["empty"],
        ),
        (
            "garbage lines",
            b"hello world\nthis is not a profile\n".to_vec(),
            vec![],
            vec!["folded", "line 1"],
        ),
        (
            "a folded line without a count",
            b"main.main;main.a 3\nmain.main;main.b\n".to_vec(),
            vec![],
            vec!["line 2"],
        ),
        (
            "not UTF-8",
            vec![0xff, 0xfe, 0x00, 0x80, b'\n'],
            vec![],
            vec!["cannot read"],
        ),
        (
            "JSON with a broken line",
            {
                let j = synthetic_json();
                let mut lines: Vec<String> = j.lines().map(str::to_string).collect();
                let half = lines[2].len() / 2;
                lines[2].truncate(half);
                (lines.join("\n") + "\n").into_bytes()
            },
            vec![],
            vec!["json", "line 3"],
        ),
        (
            "JSON that is not mdt's",
            b"{\"foo\": 1}\n".to_vec(),
            vec![],
            vec!["json"],
        ),
        (
            "JSON without deletes",
            b"{\"type\": \"lost\", \"count\": 3}\n".to_vec(),
            vec![],
            vec!["no delete"],
        ),
        (
            "folded with --group-by",
            b"main.main;main.a 3\n".to_vec(),
            vec!["--group-by", "map-type"],
            vec!["--group-by"],
        ),
        (
            "JSON without durations, by latency",
            synthetic_json().into_bytes(),
            vec!["--weight", "latency"],
            vec!["input has no durations: record it with mdt trace --latency"],
        ),
    ];
    for (what, content, extra, needles) in cases {
        let input = dir.path("input");
        fs::write(&input, content).unwrap();
        let mut args = extra.clone();
        let o1 = out("x.svg");
        let o2 = out("x.folded");
        args.extend(["-o", &o1, "-o", &o2]);
        expect_error(what, from(&args, &input), Some(1), &needles);
        check_nothing_written(what);
    }
    expect_error(
        "missing --from file",
        from(&["-o", &out("x.svg")], &dir.path("does-not-exist")),
        Some(1),
        &["does-not-exist"],
    );
    check_nothing_written("missing --from file");
    // --from with a target: clap refuses.
    expect_error(
        "--from with -p",
        from(&["-p", "1", "-o", &out("x.svg")], &folded),
        Some(2),
        &["--from"],
    );
    check_nothing_written("--from with -p");
}

/// With a live target, output errors are found before anything is traced: the program never
/// runs.
#[test]
fn live_errors_stop_before_tracing() {
    if !common::require_root_bpf() {
        return;
    }
    let tc = common::toolchains().last().unwrap().clone();
    let bin = fixture(&tc, Variant::Strip);
    let dir = Scratch::new("live-errors");
    let expect = dir.path("expect");
    for (what, outs, needles) in [
        (
            "missing directory",
            vec!["-o", "/nonexistent/dir/x.svg"],
            vec!["/nonexistent/dir/x.svg"],
        ),
        ("unknown extension", vec!["-o", "out.xyz"], vec!["out.xyz"]),
        (
            "a directory",
            vec!["--format", "svg", "-o", "/tmp"],
            vec!["directory"],
        ),
    ] {
        let mut cmd = mdt(["flame"]);
        cmd.args(&outs)
            .arg("--")
            .arg(&bin)
            .arg("-expect")
            .arg(&expect);
        let f = expect_error(what, cmd, Some(1), &needles);
        assert!(
            !f.stderr.contains(ANNOUNCE),
            "{what}: mdt traced before failing"
        );
        assert!(!expect.exists(), "{what}: the program ran");
        assert!(
            dir.names().is_empty(),
            "{what}: files left: {:?}",
            dir.names()
        );
    }
    // An output that is fine next to one that is not: neither is created.
    let ok = dir.path("ok.svg");
    let mut cmd = mdt(["flame", "-o"]);
    cmd.arg(&ok)
        .args(["-o", "/nonexistent/dir/x.folded", "--"])
        .arg(&bin)
        .arg("-expect")
        .arg(&expect);
    expect_error(
        "one bad output of two",
        cmd,
        Some(1),
        &["/nonexistent/dir/x.folded"],
    );
    assert!(
        dir.names().is_empty(),
        "one bad output of two: files left: {:?}",
        dir.names()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Names that need escaping

#[test]
fn svg_escapes_names_and_title() {
    let dir = Scratch::new("escape");
    let input = dir.path("weird.folded");
    let names = [
        "main.(*T[go.shape.struct { A int }]).Delete",
        "main.f<chan<- int>",
        "pkg.a&b",
        "main.\"quoted\"",
        "main.'single'",
        "main.ünïcode",
    ];
    let text = format!(
        "{};{};runtime.mapdelete 5\n{};{};{};runtime.mapdelete_faststr 7\n",
        names[0], names[1], names[2], names[3], names[4]
    ) + &format!("{};{}_[i];runtime.mapdelete 1\n", names[0], names[5]);
    fs::write(&input, &text).unwrap();
    let svg_path = dir.path("weird.svg");
    let title = "<script>alert('x')</script> & \"more\"";
    let mut cmd = mdt(["flame", "--title", title, "-o"]);
    cmd.arg(&svg_path)
        .arg("-o")
        .arg(dir.path("weird.folded.out"))
        .arg("--format")
        .arg("svg")
        .arg("--from")
        .arg(&input);
    run_ok("escaping", cmd);
    let svg = parse_svg(&svg_path, "escaping");
    assert_eq!(svg.title, title, "the title, unescaped, is what was given");
    let lines = parse_folded(&text, "input");
    svg.check_against(&lines, "escaping");
    for n in names {
        assert!(
            svg.sums().contains_key(n),
            "no SVG frame named {n:?}: {:?}",
            svg.sums().keys()
        );
    }
    // --format svg wins over the second output's name.
    parse_svg(&dir.path("weird.folded.out"), "escaping (--format)");
}

// ---------------------------------------------------------------------------------------------
// 7. Outputs that are not regular files

/// `-o /dev/stdout` and `-o FIFO` are written in place: renaming the temporary file over them
/// would replace them (as root, `-o /dev/null` would replace the device); so is a link to
/// mdt's stdout when that is a redirected regular file.
#[test]
fn special_outputs_are_written_in_place() {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = Scratch::new("special");
    let input = dir.path("in.folded");
    let text =
        "main.main;main.a;runtime.mapdelete_fast64 3\nmain.main;main.b;runtime.mapdelete 1\n";
    fs::write(&input, text).unwrap();

    let mut cmd = mdt(["flame", "--format", "folded", "-o", "/dev/stdout", "--from"]);
    cmd.arg(&input);
    let f = run_ok("-o /dev/stdout", cmd);
    assert_eq!(
        f.stdout_text(),
        text,
        "-o /dev/stdout: the folded text on stdout"
    );

    let fifo = dir.path("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    // A reader first (non-blocking), so that mdt's open for writing does not block.
    let mut reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut cmd = mdt(["flame", "--format", "folded", "-o"]);
    cmd.arg(&fifo).arg("--from").arg(&input);
    run_ok("-o FIFO", cmd);
    let mut got = String::new();
    let _ = reader.read_to_string(&mut got);
    assert_eq!(got, text, "-o FIFO: what came through the pipe");
    let ft = fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(ft.is_fifo(), "-o FIFO: the FIFO was replaced by {ft:?}");
    dir.assert_no_temp_files("-o FIFO");

    // A link to mdt's stdout (as /dev/stdout is) when that is a regular file: written through
    // the descriptor, after what is there; the link stays. (A link of the test's own: if mdt
    // renamed over it, it replaces no more than that.)
    let link = dir.path("stdout-link");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).unwrap();
    let redirected = dir.path("redirected");
    fs::write(&redirected, "before\n").unwrap();
    let stdout = fs::OpenOptions::new()
        .append(true)
        .open(&redirected)
        .unwrap();
    let mut cmd = mdt(["flame", "--format", "folded", "-o"]);
    cmd.arg(&link)
        .arg("--from")
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(stdout);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "-o LINK: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ft = fs::symlink_metadata(&link).unwrap().file_type();
    assert!(ft.is_symlink(), "-o LINK: the link was replaced by {ft:?}");
    assert_eq!(
        read(&redirected, "-o LINK"),
        format!("before\n{text}"),
        "-o LINK: the redirected stdout"
    );
    dir.assert_no_temp_files("-o LINK");
}

/// Without `-o`: `deletes.svg`, or `deletes.<ext>` of `--format`, in the current directory.
#[test]
fn default_output_names() {
    let dir = Scratch::new("default-names");
    let input = dir.path("in.folded");
    fs::write(&input, "main.main;main.a;runtime.mapdelete_fast64 3\n").unwrap();
    for (format, name) in [
        (None, "deletes.svg"),
        (Some("folded"), "deletes.folded"),
        (Some("pprof"), "deletes.pb.gz"),
    ] {
        let mut cmd = mdt(["flame"]);
        if let Some(f) = format {
            cmd.args(["--format", f]);
        }
        cmd.arg("--from").arg(&input).current_dir(&dir.0);
        let f = run_ok(&format!("default name {name}"), cmd);
        assert!(dir.path(name).is_file(), "no {name}: {}", f.stderr);
        assert!(
            f.stderr.contains(name),
            "mdt's line should name {name}: {}",
            f.stderr
        );
    }
    parse_svg(&dir.path("deletes.svg"), "default name");
    assert_eq!(
        read(&dir.path("deletes.folded"), "default name"),
        "main.main;main.a;runtime.mapdelete_fast64 3\n"
    );
    dir.assert_no_temp_files("default names");
}

// ---------------------------------------------------------------------------------------------
// 8. --weight latency

/// The `latency` fixture's own numbers (its one stdout line `calls=C ... clear_ns=T ...`).
fn own_numbers(stdout: &str, ctx: &str) -> BTreeMap<String, u64> {
    let own: BTreeMap<String, u64> = stdout
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect();
    assert!(
        own.contains_key("clear_ns") && own.contains_key("calls"),
        "{ctx}: the fixture's line: {stdout:?}"
    );
    own
}

/// The weights of a latency fixture's folded lines: (the `main.clearBig` line's, the sum of
/// the `main.delSmall` lines'); every line is one of those.
fn clear_and_small(lines: &BTreeMap<String, u64>, ctx: &str) -> (u64, u64) {
    let of = |func: &str| -> Vec<u64> {
        lines
            .iter()
            .filter(|(l, _)| l.split(';').any(|f| frame_name(f) == func))
            .map(|(_, &n)| n)
            .collect()
    };
    let (clear, small) = (of("main.clearBig"), of("main.delSmall"));
    assert_eq!(
        clear.len(),
        1,
        "{ctx}: one main.clearBig stack:\n{}",
        folded_text(lines)
    );
    assert!(
        !small.is_empty() && clear.len() + small.len() == lines.len(),
        "{ctx}: the stacks are main.clearBig's and main.delSmall's:\n{}",
        folded_text(lines)
    );
    (clear[0], small.iter().sum())
}

/// The folded lines, heaviest first.
fn ranking(lines: &BTreeMap<String, u64>) -> Vec<&str> {
    let mut v: Vec<(&str, u64)> = lines.iter().map(|(l, &n)| (l.as_str(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter().map(|(l, _)| l).collect()
}

/// Tries of a check of times (on a loaded machine a small delete can be preempted for
/// milliseconds, more than the big clear takes).
const TIMING_TRIES: usize = 3;

/// Runs `attempt` until it returns `Ok` (a failed check of times is an `Err`, retried up to
/// [`TIMING_TRIES`] times; other failures panic at once).
fn retrying_timing<T>(ctx: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    for n in 1..=TIMING_TRIES {
        match attempt() {
            Ok(v) => return v,
            Err(e) if n < TIMING_TRIES => {
                common::note(&format!("{ctx}: try {n} of {TIMING_TRIES}: {e}; again"));
            }
            Err(e) => panic!("{ctx}: {e} ({TIMING_TRIES} tries)"),
        }
    }
    unreachable!()
}

/// The small deletes of the `latency` fixture beside its clear of a million: each costs
/// ~20 µs under the exit probes' single-step, so that 50 of them stay well under the clear's
/// few milliseconds even on a loaded machine, where 200 did not.
const SMALL: &str = "50";
const SMALL_CALLS: u64 = 50;

/// `mdt flame --weight latency` on the `latency` fixture (one big clear, 50 small deletes), on
/// every toolchain: live, the clear's stack weighs what the fixture measured (at most, and
/// within 2×) and more than all the small deletes; the SVG's frames count ns and pprof's
/// samples are `latency/nanoseconds`, with the folded totals. `--from` a `mdt trace --json
/// --latency` of it: the same stacks in the same order, weighing the records' `duration_ns`;
/// `--from` a trace without `--latency` is refused in one line.
#[test]
fn weight_latency() {
    if !common::require_root_bpf() {
        return;
    }
    let jobs = common::toolchains()
        .into_iter()
        .map(|tc| (tc, Variant::Plain))
        .collect();
    for_jobs_alone("weight_latency", jobs, |tc, v| {
        let ctx = format!("{tc} {v} --weight latency");
        let bin = common::build_fixture("latency", tc, v);
        let dir = Scratch::new(&format!("latency-{}", tc.short));

        // Live: folded, pprof and SVG of one run.
        let live = retrying_timing(&ctx, || {
            let mut cmd = mdt(["flame", "--weight", "latency"]);
            cmd.args(out_args(&dir, "live", &["folded", "pb.gz", "svg"]))
                .arg("--")
                .arg(&bin)
                .args(["-small", SMALL]);
            let f = run_ok(&format!("{ctx}: mdt flame"), cmd);
            let own = own_numbers(&f.stdout_text(), &ctx);
            assert_eq!(own["calls"], SMALL_CALLS + 1, "{ctx}: the fixture's calls");
            let live = parse_folded(&read(&dir.path("live.folded"), &ctx), &ctx);
            let (clear, small) = clear_and_small(&live, &ctx);
            let own_clear = own["clear_ns"];
            assert!(
                clear <= own_clear && small > 0,
                "{ctx}: the clear's stack weighs {clear} ns, more than the fixture's clock says \
                 ({own_clear} ns), or the small deletes' nothing ({small} ns)"
            );
            let t = total(&live);
            assert!(
                f.stderr.contains(&format!("live.folded ({t} ns ("))
                    && f.stderr
                        .contains(&format!(") of deletes in {} stacks)", live.len())),
                "{ctx}: mdt's summary line: {}",
                f.stderr
            );
            assert!(
                !f.stderr.contains("left out") && !f.stderr.contains("warning"),
                "{ctx}: every call was seen returning: {}",
                f.stderr
            );
            let svg = parse_svg_in(&dir.path("live.svg"), Unit::Ns, &ctx);
            svg.check_against(&live, &format!("{ctx} svg"));
            assert_eq!(
                svg.title, "Go map deletes: time spent (ns)",
                "{ctx}: the SVG's title"
            );
            check_pprof_top_in(
                tc,
                &dir.path("live.pb.gz"),
                &live,
                Unit::Ns,
                &format!("{ctx} pprof"),
            );
            if clear * 2 < own_clear {
                return Err(format!(
                    "the clear's stack weighs {clear} ns, the fixture's clock says {own_clear} ns"
                ));
            }
            if clear <= small {
                return Err(format!(
                    "the clear of a million ({clear} ns) vs {SMALL} small deletes ({small} ns)"
                ));
            }
            Ok(live)
        });

        // --from a trace with durations: the same stacks, ranked alike, weighing the records'
        // duration_ns.
        retrying_timing(&format!("{ctx} --from"), || {
            let json = dir.path("trace.json");
            let mut cmd = mdt(["trace", "--json", "--latency", "-o"]);
            cmd.arg(&json).arg("--").arg(&bin).args(["-small", SMALL]);
            run_ok(&format!("{ctx}: mdt trace --json --latency"), cmd);
            let records: Vec<Value> = common::read_json_lines(&json)
                .into_iter()
                .filter(|r| r["type"] == "delete" || r["type"] == "clear")
                .collect();
            assert_eq!(
                records.len() as u64,
                SMALL_CALLS + 1,
                "{ctx}: a record per call"
            );
            let ns = |r: &Value| {
                r["duration_ns"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{ctx}: a record without duration_ns: {r}"))
            };
            let ns_of = |caller: &str| -> u64 {
                records
                    .iter()
                    .filter(|r| s(&r["caller"]).split(' ').next() == Some(caller))
                    .map(ns)
                    .sum()
            };
            let all_ns: u64 = records.iter().map(ns).sum();
            let from = dir.path("from.folded");
            let mut cmd = mdt(["flame", "--weight", "latency", "--format", "folded", "-o"]);
            cmd.arg(&from).arg("--from").arg(&json);
            let f = run_ok(&format!("{ctx}: mdt flame --weight latency --from"), cmd);
            let from_json = parse_folded(&read(&from, &ctx), &ctx);
            assert_eq!(
                from_json.keys().collect::<Vec<_>>(),
                live.keys().collect::<Vec<_>>(),
                "{ctx}: --from: not the live run's stacks"
            );
            assert_eq!(
                total(&from_json),
                all_ns,
                "{ctx}: --from: the total is not the records' duration_ns"
            );
            assert_eq!(
                clear_and_small(&from_json, &ctx),
                (ns_of("main.clearBig"), ns_of("main.delSmall")),
                "{ctx}: --from: each stack weighs its records' duration_ns"
            );
            assert!(
                f.stderr.contains(&format!("({all_ns} ns (")) && !f.stderr.contains("skipped"),
                "{ctx}: --from: mdt's summary line: {}",
                f.stderr
            );
            if ranking(&from_json) != ranking(&live) {
                return Err(format!(
                    "--from ranks the stacks unlike the live run:\n--from:\n{}live:\n{}",
                    folded_text(&from_json),
                    folded_text(&live)
                ));
            }
            Ok(())
        });

        // --from a trace without durations: one line, nothing written.
        let bare = dir.path("bare.json");
        let mut cmd = mdt(["trace", "--json", "-o"]);
        cmd.arg(&bare)
            .arg("--")
            .arg(&bin)
            .args(["-clear-size", "1000", "-small", "10"]);
        run_ok(&format!("{ctx}: mdt trace --json"), cmd);
        let out = dir.path("bare.folded");
        let mut cmd = mdt(["flame", "--weight", "latency", "-o"]);
        cmd.arg(&out).arg("--from").arg(&bare);
        let want = format!(
            "{} has no durations: record it with mdt trace --latency",
            bare.display()
        );
        expect_error(
            &format!("{ctx}: --from without durations"),
            cmd,
            Some(1),
            &[&want],
        );
        assert!(
            !out.exists(),
            "{ctx}: --from without durations wrote {}",
            out.display()
        );
        dir.assert_no_temp_files(&ctx);
    });
}

/// `--weight latency` without tracing (no root needed): records without `duration_ns` are
/// skipped and counted in mdt's line; `--min-count` is in ns; a folded file's numbers are
/// drawn as ns.
#[test]
fn weight_latency_from_files() {
    let dir = Scratch::new("latency-from");
    // synthetic_json's four deletes (three from main.a, one from main.b), with durations but
    // for the third.
    let durations = [Some(100), Some(250), None, Some(5_000)];
    let mut text = String::new();
    let mut n = 0;
    for line in synthetic_json().lines() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        if v["type"] == "delete" {
            if let Some(ns) = durations[n] {
                v["duration_ns"] = ns.into();
            }
            n += 1;
        }
        text += &(v.to_string() + "\n");
    }
    assert_eq!(n, durations.len());
    let json = dir.path("t.json");
    fs::write(&json, text).unwrap();
    let (a, b) = (
        "runtime.main;main.main;main.a;runtime.mapdelete_fast64",
        "runtime.main;main.main;main.b;runtime.mapdelete_fast64",
    );

    let outs = out_args(&dir, "t", &["folded", "svg"]);
    let mut cmd = mdt(["flame", "--weight", "latency"]);
    cmd.args(&outs).arg("--from").arg(&json);
    let f = run_ok("--weight latency --from", cmd);
    assert_eq!(
        read(&dir.path("t.folded"), "--from"),
        format!("{a} 350\n{b} 5000\n")
    );
    assert!(
        f.stderr.contains(
            "t.folded (5350 ns (5.3µs) of deletes in 2 stacks; 1 record without a duration skipped)"
        ),
        "mdt's summary line: {}",
        f.stderr
    );
    let svg = parse_svg_in(&dir.path("t.svg"), Unit::Ns, "--from svg");
    svg.check_against(
        &BTreeMap::from([(a.to_string(), 350), (b.to_string(), 5_000)]),
        "--from svg",
    );

    // --min-count counts ns.
    let out = dir.path("min.folded");
    let mut cmd = mdt(["flame", "--weight", "latency", "--min-count", "1000", "-o"]);
    cmd.arg(&out).arg("--from").arg(&json);
    run_ok("--weight latency --min-count", cmd);
    assert_eq!(read(&out, "--min-count"), format!("{b} 5000\n"));

    // A folded file: its numbers, as ns.
    let folded = dir.path("in.folded");
    // (Not so small that inferno leaves the frame out: narrower than 0.1 pixel.)
    fs::write(&folded, format!("{a} 700\n{b} 2000000\n")).unwrap();
    let out = dir.path("folded.svg");
    let mut cmd = mdt(["flame", "--weight", "latency", "-o"]);
    cmd.arg(&out).arg("--from").arg(&folded);
    let f = run_ok("--weight latency --from FOLDED", cmd);
    assert!(
        f.stderr
            .contains("(2000700 ns (2ms) of deletes in 2 stacks)"),
        "mdt's summary line: {}",
        f.stderr
    );
    let svg = parse_svg_in(&out, Unit::Ns, "folded → svg");
    svg.check_against(&parse_folded(&read(&folded, "in"), "in"), "folded → svg");
    dir.assert_no_temp_files("--weight latency");
}

#[test]
fn stacks_deeper_than_stack_depth_have_a_root_that_says_so() {
    if !common::require_root_bpf() {
        return;
    }
    const MARK: &str = "[deeper than --stack-depth]";
    let tc = common::toolchains().last().unwrap().clone();
    let bin = fixture(&tc, Variant::Plain);
    let dir = Scratch::new("flame-depth");
    let folded = |tag: &str, flags: &[&str]| -> (BTreeMap<String, u64>, u64) {
        let out = dir.path(&format!("{tag}.folded"));
        let mut all = vec!["--format", "folded", "-o", out.to_str().unwrap()];
        all.extend_from_slice(flags);
        let (stdout, _, _) = flame_launch(tag, &dir, tag, &bin, &all, &[]);
        let (d, c) = fixture_counts(&stdout, tag);
        (parse_folded(&read(&out, tag), tag), d + c)
    };
    let marked = |lines: &BTreeMap<String, u64>| -> u64 {
        lines
            .iter()
            .filter(|(l, _)| l.starts_with(&format!("{MARK};")))
            .map(|(_, n)| n)
            .sum()
    };
    // Whole stacks: none marked. (The fixture's are 5 to 10 frames deep.)
    let (whole, calls) = folded("whole", &[]);
    assert_eq!(total(&whole), calls);
    assert_eq!(marked(&whole), 0, "{}", folded_text(&whole));
    // Cut at 6 frames: the deeper ones are marked at their root, every call still counted.
    let (cut, calls) = folded("cut", &["--stack-depth", "6"]);
    assert_eq!(total(&cut), calls);
    let deep = marked(&cut);
    assert!(
        deep > 0 && deep < calls,
        "{deep} of {calls}: {}",
        folded_text(&cut)
    );
    assert!(
        cut.keys().all(|l| !l[1..].contains(MARK)),
        "the mark is the root only"
    );
    // From records: the same stacks marked.
    let json = dir.path("cut.json");
    let mut cmd = mdt(["trace", "--json", "--stack-depth", "6", "-o"]);
    cmd.arg(&json).arg("--").arg(&bin);
    run_ok("mdt trace --stack-depth 6", cmd);
    let from = dir.path("from.folded");
    let mut cmd = mdt(["flame", "--format", "folded", "-o"]);
    cmd.arg(&from).arg("--from").arg(&json);
    run_ok("mdt flame --from", cmd);
    let from = parse_folded(&read(&from, "from"), "from");
    assert_eq!(marked(&from), deep, "{}", folded_text(&from));
}
