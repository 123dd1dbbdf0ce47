//! On whose behalf (issue 14): the goroutine's pprof labels on every delete, on the whole
//! toolchain × variant matrix (`MDT_GO_VERSIONS`), with the `labels` fixture
//! (fixtures/labels): deletes of unique keys under known labels (none, one, several, nested,
//! set, inherited, changed, long, not UTF-8, ten, twenty), each written down by the fixture.
//!
//! * `label_facts_are_the_binarys` (no BPF): for every toolchain, the offset of `g.labels`
//!   mdt uses (from DWARF, from the machine code of `runtime_setProfLabel` in stripped and race
//!   builds, from the table) and the label set's layout (a map up to 1.23, a slice from 1.24:
//!   its offsets) are what each binary's DWARF says; a program without runtime/pprof has none.
//! * `every_delete_carries_its_labels`: `mdt trace --json` on the fixture: every delete is one
//!   record whose `labels` and `labels_truncated` are the fixture's (values cut at
//!   `--label-bytes`, bytes that are not UTF-8 as `\xNN`, at most 16 labels).
//! * `pid_mode_and_the_label_flags`: the same with `-p`, and `--labels`, `--label-filter`,
//!   `--redact-labels`, `--label-bytes` with exact counts.
//! * `flame_groups_by_a_label`: `mdt flame --group-by label:tenant`, live and `--from`: one
//!   tower per tenant with the fixture's counts.
//! * `metrics_count_deletes_by_label`: `--quiet --prometheus --metric-labels tenant,endpoint`
//!   serves `go_map_delete_by_label_total` with the fixture's count for each (map type,
//!   tenant, endpoint), beside the exact `go_map_delete_total`.
//!
//! Needs root and BPF for the last two: without them they are skipped, unless `CI=true`.

mod common;
mod monitor_common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::proc::Proc;
use common::{Scratch, Toolchain, Variant};
use serde_json::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// What a record holds at most (`MDT_MAX_LABELS`).
const MAX_LABELS: usize = 16;

use common::for_jobs;

fn plain_jobs() -> Vec<(Toolchain, Variant)> {
    common::toolchains()
        .into_iter()
        .map(|tc| (tc, Variant::Plain))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1: the facts, against DWARF

#[test]
fn label_facts_are_the_binarys() {
    for_jobs("label_facts_are_the_binarys", plain_jobs(), |tc, _| {
        use mdt::gobin::labels::{self, LabelStore};
        use mdt::gobin::layout::LayoutSource;
        let ctx = tc.to_string();
        let plain = common::build_fixture("labels", tc, Variant::Plain);
        let data = fs::read(&plain).unwrap();
        let elf = mdt::gobin::elf::Elf::parse(&data).unwrap();
        let b = mdt::gobin::GoBinary::open(&plain).unwrap();
        let l = b.labels.unwrap_or_else(|| panic!("{ctx}: no labels found"));
        let facts = labels::dwarf_facts(&elf, b.version);
        assert!(facts.len() >= 4, "{ctx}: {facts:?}");
        for f in &facts {
            assert_eq!(f.dwarf, Some(f.mdt), "{ctx}: {} (DWARF, mdt)", f.what);
        }
        assert_eq!(
            (l.source, Some(l.offset)),
            (LayoutSource::Dwarf, facts[0].dwarf),
            "{ctx}"
        );
        assert_eq!(
            l.code_offset,
            Some(l.offset),
            "{ctx}: the machine code's store"
        );
        let want_store = if tc.at_least(24) {
            LabelStore::Slice
        } else {
            LabelStore::Map
        };
        assert_eq!(l.store, want_store, "{ctx}");

        // Without DWARF: the machine code (with -race too, whose store goes through the
        // stack), the same offset.
        for v in [Variant::Strip, Variant::Race] {
            if !v.supported_by(tc) {
                continue;
            }
            let bin = common::build_fixture("labels", tc, v);
            let got = mdt::gobin::GoBinary::open(&bin).unwrap().labels.unwrap();
            assert_eq!(got.offset, l.offset, "{ctx} {v}");
            assert_eq!(got.code_offset, Some(l.offset), "{ctx} {v}: machine code");
            if v == Variant::Strip {
                assert_eq!(got.source, LayoutSource::MachineCode, "{ctx} {v}");
            }
        }
        // `mdt inspect` shows the offset and where it came from.
        let inspect = |bin: &Path| {
            let out = common::output_retrying(Command::new(mdt_bin()).arg("inspect").arg(bin));
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines()
                .find(|l| l.starts_with("labels"))
                .unwrap_or_else(|| panic!("{ctx}: no labels line:\n{text}"))
                .to_string()
        };
        let line = inspect(&plain);
        assert!(
            line.contains(&format!("g.labels at g+{},", l.offset)) && line.contains("(from DWARF)"),
            "{ctx}: {line}"
        );
        let line = inspect(&common::build_fixture("labels", tc, Variant::Strip));
        assert!(
            line.contains(&format!("g.labels at g+{},", l.offset))
                && line.contains("runtime_setProfLabel"),
            "{ctx}: {line}"
        );
        // A program that never links runtime/pprof can have no labels.
        let none = common::build_fixture("deletes", tc, Variant::Plain);
        assert!(
            mdt::gobin::GoBinary::open(&none).unwrap().labels.is_none(),
            "{ctx}: labels without runtime/pprof"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 2: every delete, traced

fn mdt_bin() -> &'static Path {
    common::private_mdt("labels")
}

/// One delete as the fixture knows it.
#[derive(Debug, Clone)]
struct Expected {
    case: String,
    /// Key → value bytes.
    labels: BTreeMap<String, Vec<u8>>,
}

fn expected(path: &Path) -> BTreeMap<u64, Expected> {
    common::read_json_lines(path)
        .into_iter()
        .map(|r| {
            let labels = r["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), hex_decode(v.as_str().unwrap())))
                .collect();
            let e = Expected {
                case: r["case"].as_str().unwrap().to_string(),
                labels,
            };
            (r["key"].as_u64().unwrap(), e)
        })
        .collect()
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// docs/json.md: valid UTF-8 as is, each invalid byte as `\xNN`.
fn shown(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// What mdt must show of `e`'s labels with `--label-bytes cut` (values; keys are cut at
/// 128 bytes): (labels, truncated).
fn want_labels(e: &Expected, cut: usize) -> (BTreeMap<String, String>, bool) {
    const KEY_CUT: usize = 128;
    let mut truncated = e.labels.len() > MAX_LABELS;
    let mut out = BTreeMap::new();
    for (k, v) in &e.labels {
        truncated |= k.len() > KEY_CUT || v.len() > cut;
        let k = shown(&k.as_bytes()[..k.len().min(KEY_CUT)]);
        out.insert(k, shown(&v[..v.len().min(cut)]));
    }
    (out, truncated)
}

fn labels_of(r: &Value) -> BTreeMap<String, String> {
    r.get("labels")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks every delete record against the fixture's: each key once, with its labels (with
/// `--label-bytes cut`); returns the problems.
fn check_records(records: &[Value], want: &BTreeMap<u64, Expected>, cut: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for r in records.iter().filter(|r| r["type"] == "delete") {
        let key = r["key"].as_u64().unwrap();
        *seen.entry(key).or_insert(0) += 1;
        let Some(e) = want.get(&key) else {
            problems.push(format!("key {key}: not the fixture's"));
            continue;
        };
        let (labels, truncated) = want_labels(e, cut);
        let got = labels_of(r);
        let got_truncated = r["labels_truncated"].as_bool().unwrap_or(false);
        if e.labels.len() > MAX_LABELS {
            // More than a record holds: 16 of them, each one of the goroutine's.
            let ok = got.len() == MAX_LABELS
                && got.iter().all(|(k, v)| labels.get(k) == Some(v))
                && got_truncated;
            if !ok {
                problems.push(format!(
                    "key {key} ({}): {} labels, truncated {got_truncated}: {got:?}",
                    e.case,
                    got.len()
                ));
            }
        } else if got != labels || got_truncated != truncated {
            problems.push(format!(
                "key {key} ({}): labels {got:?} truncated {got_truncated}, want {labels:?} truncated {truncated}",
                e.case
            ));
        }
        if labels.is_empty() && r.get("labels").is_some() {
            problems.push(format!("key {key} ({}): an empty labels object", e.case));
        }
    }
    for (key, e) in want {
        let n = seen.get(key).copied().unwrap_or(0);
        if n != 1 {
            problems.push(format!("key {key} ({}): {n} records", e.case));
        }
    }
    problems
}

struct Traced {
    records: Vec<Value>,
    want: BTreeMap<u64, Expected>,
}

/// `mdt trace --json FLAGS -o OUT -- FIXTURE -expect EXPECT`, to its end.
fn trace(ctx: &str, bin: &Path, dir: &Scratch, flags: &[&str]) -> Traced {
    let out = dir.path("trace.json");
    let expect = dir.path("expect.json");
    let mut cmd = Command::new(mdt_bin());
    cmd.args(["trace", "--json"])
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg("--")
        .arg(bin)
        .arg("-expect")
        .arg(&expect)
        .env_remove("MAP_DELETE_TRACER_SAMPLING_RATE")
        .env("GORACE", "atexit_sleep_ms=0");
    let mut p = Proc::spawn(&format!("{ctx}: mdt trace"), cmd, Stdio::null());
    let f = p.finish(RUN_TIMEOUT, "tracing the labels fixture");
    assert!(
        f.status.success(),
        "{ctx}: mdt exited {}; stderr:\n{}",
        f.status,
        f.stderr
    );
    Traced {
        records: common::read_json_lines(&out),
        want: expected(&expect),
    }
}

fn summary(records: &[Value]) -> &Value {
    let last = records.last().expect("no records");
    assert_eq!(last["type"], "summary", "last record: {last}");
    last
}

#[test]
fn every_delete_carries_its_labels() {
    if !common::require_root_bpf() {
        return;
    }
    for_jobs(
        "every_delete_carries_its_labels",
        common::matrix(),
        |tc, v| {
            let ctx = format!("{tc} {v}");
            let bin = common::build_fixture("labels", tc, v);
            let dir = Scratch::new("labels");
            let t = trace(&ctx, &bin, &dir, &[]);
            assert!(t.want.len() >= 42, "{ctx}: {} deletes", t.want.len());
            let problems = check_records(&t.records, &t.want, 64);
            assert!(
                problems.is_empty(),
                "{ctx}: {} problems:\n{}",
                problems.len(),
                problems.join("\n")
            );
            assert_eq!(summary(&t.records)["lost"], 0, "{ctx}");
        },
    );
}

#[test]
fn pid_mode_and_the_label_flags() {
    if !common::require_root_bpf() {
        return;
    }
    for_jobs("pid_mode_and_the_label_flags", plain_jobs(), |tc, v| {
        let ctx = format!("{tc} {v}");
        let bin = common::build_fixture("labels", tc, v);

        // -p: attached to the running fixture, which waits for a file to start deleting.
        let dir = Scratch::new("labels-pid");
        let (go, expect, out) = (
            dir.path("go"),
            dir.path("expect.json"),
            dir.path("out.json"),
        );
        let mut fx = Command::new(&bin);
        fx.arg("-wait-file").arg(&go).arg("-expect").arg(&expect);
        let mut fixture = Proc::spawn(&format!("{ctx}: fixture"), fx, Stdio::null());
        let mut cmd = Command::new(mdt_bin());
        cmd.args(["trace", "--json", "-p", &fixture.pid().to_string(), "-o"])
            .arg(&out);
        let mut mdt = Proc::spawn(&format!("{ctx}: mdt -p"), cmd, Stdio::null());
        mdt.wait_announce();
        fs::write(&go, b"").unwrap();
        fixture.finish_ok(RUN_TIMEOUT, "the fixture");
        let f = mdt.finish(RUN_TIMEOUT, "mdt after its target exited");
        assert!(f.status.success(), "{ctx}: mdt -p: {}", f.stderr);
        let want = expected(&expect);
        let records = common::read_json_lines(&out);
        let problems = check_records(&records, &want, 64);
        assert!(problems.is_empty(), "{ctx} -p:\n{}", problems.join("\n"));

        // --no-labels: none read, none written; every delete still there.
        let t = trace(&ctx, &bin, &Scratch::new("labels-none"), &["--no-labels"]);
        let deletes: Vec<&Value> = t.records.iter().filter(|r| r["type"] == "delete").collect();
        assert_eq!(deletes.len(), t.want.len(), "{ctx} --no-labels");
        assert!(
            deletes.iter().all(|r| r.get("labels").is_none()),
            "{ctx} --no-labels"
        );

        // --label-bytes 8: keys and values cut at 8 bytes.
        let t = trace(
            &ctx,
            &bin,
            &Scratch::new("labels-bytes"),
            &["--label-bytes", "8"],
        );
        let problems = check_records(&t.records, &t.want, 8);
        assert!(
            problems.is_empty(),
            "{ctx} --label-bytes 8:\n{}",
            problems.join("\n")
        );

        // --labels trace_id --label-bytes 4: a key longer than --label-bytes is still found
        // (keys are not cut at it), its value is.
        let t = trace(
            &ctx,
            &bin,
            &Scratch::new("labels-key-long"),
            &["--labels", "trace_id", "--label-bytes", "4"],
        );
        for r in t.records.iter().filter(|r| r["type"] == "delete") {
            let e = &t.want[&r["key"].as_u64().unwrap()];
            match e.labels.get("trace_id") {
                Some(_) => {
                    assert_eq!(labels_of(r)["trace_id"], "0123", "{ctx}: {r}");
                    assert_eq!(r["labels_truncated"], true, "{ctx}: {r}");
                }
                None if e.labels.len() <= MAX_LABELS => {
                    assert!(r.get("labels").is_none(), "{ctx}: {r}")
                }
                None => {}
            }
        }
        // --labels requestid2: the probe's prefilter (length and first 8 bytes) lets
        // requestid1 through too; user space keeps requestid2 only.
        let t = trace(
            &ctx,
            &bin,
            &Scratch::new("labels-similar"),
            &["--labels", "requestid2"],
        );
        let similar: Vec<_> = t
            .records
            .iter()
            .filter(|r| {
                r["type"] == "delete" && t.want[&r["key"].as_u64().unwrap()].case == "similar"
            })
            .collect();
        assert_eq!(similar.len(), 3, "{ctx}");
        for r in similar {
            let want: BTreeMap<String, String> =
                [("requestid2".to_string(), "b".to_string())].into();
            assert_eq!(labels_of(r), want, "{ctx}: {r}");
            assert!(r.get("labels_truncated").is_none(), "{ctx}: {r}");
        }

        // --labels tenant,endpoint: only those keys; a delete without them has no labels.
        let t = trace(
            &ctx,
            &bin,
            &Scratch::new("labels-keys"),
            &["--labels", "tenant,endpoint"],
        );
        for r in t.records.iter().filter(|r| r["type"] == "delete") {
            let e = &t.want[&r["key"].as_u64().unwrap()];
            if e.labels.len() > MAX_LABELS {
                // A kept key may be among those the record could not hold.
                assert_eq!(r["labels_truncated"], true, "{ctx} --labels: {r}");
                continue;
            }
            let want: BTreeMap<String, String> = e
                .labels
                .iter()
                .filter(|(k, _)| *k == "tenant" || *k == "endpoint")
                .map(|(k, v)| (k.clone(), shown(v)))
                .collect();
            assert_eq!(labels_of(r), want, "{ctx} --labels: {r}");
            assert_eq!(
                r.get("labels").is_some(),
                !want.is_empty(),
                "{ctx} --labels: {r}"
            );
        }

        // --label-filter tenant=^t[12]$: exactly the deletes with tenant t1 or t2, the rest
        // counted as filtered out.
        let t = trace(
            &ctx,
            &bin,
            &Scratch::new("labels-filter"),
            &["--label-filter", "tenant=^t[12]$"],
        );
        let want_keys: Vec<u64> = t
            .want
            .iter()
            .filter(|(_, e)| {
                e.labels
                    .get("tenant")
                    .is_some_and(|v| v == b"t1" || v == b"t2")
            })
            .map(|(k, _)| *k)
            .collect();
        let got_keys: Vec<u64> = t
            .records
            .iter()
            .filter(|r| r["type"] == "delete")
            .map(|r| r["key"].as_u64().unwrap())
            .collect();
        assert_eq!(got_keys, want_keys, "{ctx} --label-filter");
        let s = summary(&t.records);
        assert_eq!(
            s["filtered_out"].as_u64().unwrap(),
            (t.want.len() - want_keys.len()) as u64,
            "{ctx} --label-filter: {s}"
        );

        // --labels endpoint --label-filter tenant=^t1$: the probe also copies the filter's key
        // (not shown): the t1 deletes, with their endpoint only.
        let t = trace(
            &ctx,
            &bin,
            &Scratch::new("labels-keys-filter"),
            &["--labels", "endpoint", "--label-filter", "tenant=^t1$"],
        );
        let got: Vec<(u64, BTreeMap<String, String>)> = t
            .records
            .iter()
            .filter(|r| r["type"] == "delete")
            .map(|r| (r["key"].as_u64().unwrap(), labels_of(r)))
            .collect();
        let want: Vec<(u64, BTreeMap<String, String>)> = t
            .want
            .iter()
            .filter(|(_, e)| e.labels.get("tenant").is_some_and(|v| v == b"t1"))
            .map(|(k, e)| {
                let shown_labels = e
                    .labels
                    .iter()
                    .filter(|(k, _)| *k == "endpoint")
                    .map(|(k, v)| (k.clone(), shown(v)))
                    .collect();
                (*k, shown_labels)
            })
            .collect();
        assert_eq!(
            got, want,
            "{ctx} --labels endpoint --label-filter tenant=^t1$"
        );

        // --redact-labels: the same keys, each value a stable hash (equal values, equal
        // hashes); --redact-keys leaves labels alone.
        let t = trace(
            &ctx,
            &bin,
            &Scratch::new("labels-redact"),
            &["--redact-labels"],
        );
        let mut by_value: BTreeMap<String, String> = BTreeMap::new();
        for r in t.records.iter().filter(|r| r["type"] == "delete") {
            let e = &t.want[&r["key"].as_u64().unwrap()];
            let (plain, _) = want_labels(e, 64);
            let got = labels_of(r);
            if e.labels.len() <= MAX_LABELS {
                assert_eq!(
                    got.keys().collect::<Vec<_>>(),
                    plain.keys().collect::<Vec<_>>(),
                    "{ctx} --redact-labels"
                );
            }
            for (k, v) in &got {
                assert!(v.starts_with("redacted:"), "{ctx} --redact-labels: {v}");
                let prev = by_value.entry(plain[k].clone()).or_insert(v.clone());
                assert_eq!(prev, v, "{ctx} --redact-labels: one value, one hash");
            }
        }
        let t = trace(
            &ctx,
            &bin,
            &Scratch::new("labels-redact-keys"),
            &["--redact-keys"],
        );
        let mut got: Vec<_> = t
            .records
            .iter()
            .filter(|r| r["type"] == "delete")
            .map(labels_of)
            .filter(|l| l.len() < MAX_LABELS)
            .collect();
        let mut want: Vec<_> = t
            .want
            .values()
            .filter(|e| e.labels.len() < MAX_LABELS)
            .map(|e| want_labels(e, 64).0)
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{ctx} --redact-keys: the labels as they are");
    });
}

/// The folded lines of a file: stack → count.
fn folded(path: &Path) -> BTreeMap<String, u64> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let (stack, n) = l.rsplit_once(' ').unwrap();
            (stack.to_string(), n.parse().unwrap())
        })
        .collect()
}

/// Counts per root frame of folded lines.
fn by_root(lines: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (stack, n) in lines {
        let root = stack.split(';').next().unwrap().to_string();
        *out.entry(root).or_insert(0) += n;
    }
    out
}

/// `mdt flame --group-by label:tenant`, live and `--from` a JSON trace: one tower per tenant
/// with exactly the fixture's deletes under that tenant, the rest under `[no label tenant]`.
#[test]
fn flame_groups_by_a_label() {
    if !common::require_root_bpf() {
        return;
    }
    for_jobs("flame_groups_by_a_label", plain_jobs(), |tc, v| {
        let ctx = format!("{tc} {v}");
        let bin = common::build_fixture("labels", tc, v);
        let dir = Scratch::new("labels-flame");
        let (live, expect) = (dir.path("live.folded"), dir.path("expect.json"));
        let mut cmd = Command::new(mdt_bin());
        cmd.args(["flame", "--group-by", "label:tenant", "-o"])
            .arg(&live)
            .arg("--")
            .arg(&bin)
            .arg("-expect")
            .arg(&expect);
        let mut p = Proc::spawn(&format!("{ctx}: mdt flame"), cmd, Stdio::null());
        let f = p.finish(RUN_TIMEOUT, "mdt flame on the labels fixture");
        assert!(f.status.success(), "{ctx}: mdt flame: {}", f.stderr);
        let want_by = |want: &BTreeMap<u64, Expected>| {
            let mut by: BTreeMap<String, u64> = BTreeMap::new();
            for e in want.values() {
                let root = match e.labels.get("tenant") {
                    Some(v) => format!("tenant={}", shown(v)),
                    None => "[no label tenant]".into(),
                };
                *by.entry(root).or_insert(0) += 1;
            }
            by
        };
        let want = expected(&expect);
        assert_eq!(by_root(&folded(&live)), want_by(&want), "{ctx}: live");

        let t = trace(&ctx, &bin, &dir, &[]);
        let from = dir.path("from.folded");
        let mut cmd = Command::new(mdt_bin());
        cmd.args(["flame", "--group-by", "label:tenant", "--from"])
            .arg(dir.path("trace.json"))
            .arg("-o")
            .arg(&from);
        let out = common::output_retrying(&mut cmd);
        assert!(
            out.status.success(),
            "{ctx}: --from: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(by_root(&folded(&from)), want_by(&t.want), "{ctx}: --from");
        // --label-filter in a flame graph: records, not the kernel's counts (which have no
        // labels): exactly the t1 deletes.
        let only = dir.path("t1.folded");
        let mut cmd = Command::new(mdt_bin());
        cmd.args(["flame", "--label-filter", "tenant=^t1$", "-o"])
            .arg(&only)
            .arg("--")
            .arg(&bin);
        let mut p = Proc::spawn(
            &format!("{ctx}: mdt flame --label-filter"),
            cmd,
            Stdio::null(),
        );
        let f = p.finish(RUN_TIMEOUT, "mdt flame --label-filter");
        assert!(f.status.success(), "{ctx}: {}", f.stderr);
        let t1 = want_by(&want)["tenant=t1"];
        assert_eq!(
            folded(&only).values().sum::<u64>(),
            t1,
            "{ctx}: --label-filter"
        );

        // A malformed grouping is one line and exit 2.
        let out = common::output_retrying(Command::new(mdt_bin()).args([
            "flame",
            "--group-by",
            "label:",
            "-p",
            "1",
        ]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{ctx}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{ctx}: {err}");
    });
}

#[test]
fn metrics_count_deletes_by_label() {
    if !common::require_root_bpf() {
        return;
    }
    for_jobs("metrics_count_deletes_by_label", plain_jobs(), |tc, v| {
        use monitor_common::{free_port, http_get, parse_samples, poll};
        let ctx = format!("{tc} {v}");
        let bin = common::build_fixture("labels", tc, v);
        let dir = Scratch::new("labels-metrics");
        let (go, expect) = (dir.path("go"), dir.path("expect.json"));
        let mut fx = Command::new(&bin);
        fx.arg("-wait-file")
            .arg(&go)
            .arg("-expect")
            .arg(&expect)
            .arg("-hold");
        let mut fixture = Proc::spawn(&format!("{ctx}: fixture"), fx, Stdio::piped());
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(mdt_bin());
        cmd.args(["trace", "--quiet", "--prometheus", &addr])
            .args(["--metric-labels", "tenant,endpoint"])
            .args(["-p", &fixture.pid().to_string()]);
        let mut mdt = Proc::spawn(&format!("{ctx}: mdt"), cmd, Stdio::null());
        mdt.wait_announce();
        fs::write(&go, b"").unwrap();
        assert!(
            fixture
                .stdout
                .wait_for(RUN_TIMEOUT, |t| t.contains("labels done")),
            "{ctx}: the fixture did not finish"
        );
        let want_map = {
            let mut by: BTreeMap<(String, String), u64> = BTreeMap::new();
            for e in expected(&expect).values() {
                let get = |k: &str| e.labels.get(k).map(|v| shown(v)).unwrap_or_default();
                *by.entry((get("tenant"), get("endpoint"))).or_insert(0) += 1;
            }
            by
        };
        let url = format!("http://{addr}/metrics");
        let text = poll(Duration::from_secs(20), &format!("{ctx}: {url}"), || {
            let (_, body) = http_get(&url)?;
            let mut got: BTreeMap<(String, String), u64> = BTreeMap::new();
            let mut total = 0.0;
            for (name, labels, value) in parse_samples(&body) {
                let label = |n: &str| {
                    labels
                        .iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                match name.as_str() {
                    "go_map_delete_by_label_total" => {
                        assert_eq!(label("map_type"), "map[int64]int", "{ctx}: {body}");
                        *got.entry((label("label_tenant"), label("label_endpoint")))
                            .or_insert(0) += value as u64;
                    }
                    "go_map_delete_total" => total += value,
                    _ => {}
                }
            }
            let n: u64 = want_map.values().sum();
            if got == want_map && total as u64 == n {
                Ok(body)
            } else {
                Err(format!(
                    "by label {got:?}, want {want_map:?}; total {total}"
                ))
            }
        });
        assert!(text.contains("mdt_events_lost_total 0"), "{ctx}: {text}");
        fixture.finish_ok(RUN_TIMEOUT, "the fixture after stdin closed");
        let f = mdt.finish(RUN_TIMEOUT, "mdt after its target exited");
        assert!(f.status.success(), "{ctx}: mdt: {}", f.stderr);
    });
    // Without --prometheus there is nothing to add the metric to; with --no-labels nothing
    // to count by (nor to group a flame graph or an alert rule by).
    monitor_common::expect_one_line_error(
        &["trace", "--metric-labels", "tenant", "-p", "1"],
        &["--metric-labels"],
    );
    for args in [
        &[
            "trace",
            "--no-labels",
            "--quiet",
            "--prometheus",
            "127.0.0.1:1",
            "--metric-labels",
            "tenant",
            "-p",
            "1",
        ][..],
        &[
            "trace",
            "--no-labels",
            "--alert",
            "count(label:tenant) > 1 within 1m",
            "-p",
            "1",
        ],
        &[
            "flame",
            "--no-labels",
            "--group-by",
            "label:tenant",
            "-p",
            "1",
        ],
        &["trace", "--no-labels", "--labels", "tenant", "-p", "1"],
    ] {
        monitor_common::expect_one_line_error(args, &["--no-labels"]);
    }
    for args in [
        &[
            "trace",
            "--labels",
            "endpoint",
            "--alert",
            "count(label:tenant) > 1 within 1m",
            "-p",
            "1",
        ][..],
        &[
            "flame",
            "--labels",
            "endpoint",
            "--group-by",
            "label:tenant",
            "-p",
            "1",
        ],
    ] {
        monitor_common::expect_one_line_error(args, &["--labels keeps only endpoint"]);
    }
}

/// `count(label:tenant) > 2 within 5m`: one alert per tenant the fixture deleted under more
/// than twice, each with the exact count; deletes without a tenant are in no group.
#[test]
fn alerts_group_by_a_label() {
    if !common::require_root_bpf() {
        return;
    }
    for_jobs("alerts_group_by_a_label", plain_jobs(), |tc, v| {
        let ctx = format!("{tc} {v}");
        let bin = common::build_fixture("labels", tc, v);
        let dir = Scratch::new("labels-alerts");
        let (out, expect) = (dir.path("out.json"), dir.path("expect.json"));
        let rule = "count(label:tenant) > 2 within 5m";
        let mut cmd = Command::new(mdt_bin());
        cmd.args(["trace", "--json", "--alert", rule, "-o"])
            .arg(&out)
            .arg("--")
            .arg(&bin)
            .arg("-expect")
            .arg(&expect)
            .arg("-hold");
        let mut mdt = Proc::spawn(&format!("{ctx}: mdt"), cmd, Stdio::piped());
        let want: BTreeMap<String, u64> = monitor_common::poll(
            Duration::from_secs(30),
            &format!("{ctx}: the fixture's expectations"),
            || {
                let text = fs::read_to_string(&expect).map_err(|e| e.to_string())?;
                if !text.ends_with('\n') {
                    return Err("not written yet".into());
                }
                let mut by: BTreeMap<String, u64> = BTreeMap::new();
                for e in expected(&expect).values() {
                    if let Some(t) = e.labels.get("tenant") {
                        *by.entry(shown(t)).or_insert(0) += 1;
                    }
                }
                by.retain(|_, n| *n > 2);
                Ok(by)
            },
        );
        assert!(want.len() >= 3, "{ctx}: tenants {want:?}");
        let alerts =
            monitor_common::poll(Duration::from_secs(20), &format!("{ctx}: alerts"), || {
                let text = fs::read_to_string(&out).unwrap_or_default();
                let alerts: Vec<Value> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter(|r| r["type"] == "alert")
                    .collect();
                if alerts.len() >= want.len() {
                    Ok(alerts)
                } else {
                    Err(format!("{} alerts", alerts.len()))
                }
            });
        let got: BTreeMap<String, u64> = alerts
            .iter()
            .map(|a| {
                assert_eq!(a["rule"], rule, "{ctx}: {a}");
                (
                    a["group"]["label:tenant"].as_str().unwrap().to_string(),
                    a["value"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got, want,
            "{ctx}: one alert per busy tenant, with its count"
        );
        assert_eq!(alerts.len(), want.len(), "{ctx}: {alerts:?}");
        let f = mdt.finish(RUN_TIMEOUT, "mdt after the fixture's stdin closed");
        assert!(f.status.success(), "{ctx}: mdt: {}", f.stderr);
    });
}
