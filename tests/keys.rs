//! Keys as Go prints them (issue 17), on the whole toolchain × variant matrix (`MDT_GO_VERSIONS`),
//! stripped and PIE builds included, with the `keys` fixture (fixtures/keys): maps keyed by
//! every kind a key can have, each key deleted once; the fixture writes what every key must
//! look like (fmt's `%+v`, or the documented form) and how reflect sees every key type.
//!
//! * `type_trees_are_what_reflect_sees` (no BPF): mdt's reader of type descriptors
//!   (`TypeResolver::go_type`) on the live fixture gives, for every key type and every dynamic
//!   type of an interface key, the tree reflect describes: name, kind, size, fields (names,
//!   offsets, types), array elements and lengths, empty or not; and an itab's type is the
//!   dynamic type.
//! * `every_key_as_go_prints_it`: `mdt trace --json` on the fixture: every delete is one record
//!   whose `key`, `key_hex`, `key_type` and `key_truncated` are the fixture's, for every key;
//!   then `mdt trace` in text form: every key is shown in the fixture's `%+v` form.
//!
//! Needs root and BPF for the second: without them it is skipped, unless `CI=true`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::proc::Proc;
use common::{Scratch, Toolchain, Variant};
use serde_json::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn fixture(tc: &Toolchain, v: Variant) -> PathBuf {
    common::build_fixture("keys", tc, v)
}

/// Runs `f` for every (toolchain, variant) of the matrix on a few threads.
fn for_matrix(test: &str, f: impl Fn(&Toolchain, Variant) + Sync) {
    let workers = common::parallel::workers_from_env("MDT_TRACE_TEST_THREADS", 6);
    common::parallel::run_all(
        test,
        &common::matrix(),
        workers,
        |(tc, v)| format!("{tc} {v}"),
        |(tc, v)| f(tc, *v),
    );
}

fn s(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

fn hex_addr(v: &Value) -> u64 {
    let t = v.as_str().unwrap_or_else(|| panic!("not an address: {v}"));
    u64::from_str_radix(t.trim_start_matches("0x"), 16).unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1: the type reader against reflect

/// Run-time address minus link-time address of `bin` in process `pid`: 0 for an executable,
/// the start of its first mapping for a position-independent one.
fn load_bias(pid: i32, bin: &Path) -> u64 {
    use object::{Object, ObjectSegment};
    let data = fs::read(bin).unwrap();
    let file = object::File::parse(&*data).unwrap();
    if file.kind() == object::ObjectKind::Executable {
        return 0;
    }
    let lowest = file
        .segments()
        .map(|s| s.address() & !0xfff)
        .min()
        .unwrap_or(0);
    let bin = fs::canonicalize(bin).unwrap();
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    for line in maps.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 6 && cols[2] == "00000000" && Path::new(cols[5]) == bin {
            let start = u64::from_str_radix(cols[0].split('-').next().unwrap(), 16).unwrap();
            return start - lowest;
        }
    }
    panic!("{} is not mapped in {pid}", bin.display());
}

/// The differences between mdt's tree and reflect's description `want`, at `path`.
fn compare_tree(
    got: &mdt::gobin::gotype::GoType,
    want: &Value,
    path: &str,
    problems: &mut Vec<String>,
) {
    use mdt::gobin::gotype::Shape;
    let mut eq = |what: &str, got: String, want: String| {
        if got != want {
            problems.push(format!("{path}: {what}: mdt {got}, reflect {want}"));
        }
    };
    eq("name", got.display_name().to_string(), s(&want["name"]));
    eq("kind", got.kind.to_string(), want["kind"].to_string());
    eq("size", got.size.to_string(), want["size"].to_string());
    match &got.shape {
        Shape::Struct { fields } => {
            let wf = want["fields"].as_array().cloned().unwrap_or_default();
            eq("fields", fields.len().to_string(), wf.len().to_string());
            for (f, w) in fields.iter().zip(&wf) {
                let at = format!("{path}.{}", f.name);
                if *f.name != *s(&w["name"]) || f.offset != w["offset"].as_u64().unwrap() {
                    problems.push(format!(
                        "{at}: field (name, offset) mdt ({}, {}), reflect ({}, {})",
                        f.name, f.offset, w["name"], w["offset"]
                    ));
                }
                compare_tree(&f.ty, &w["type"], &at, problems);
            }
        }
        Shape::Array { elem, len } => {
            eq(
                "len",
                len.to_string(),
                want["len"].as_u64().unwrap_or(0).to_string(),
            );
            compare_tree(elem, &want["elem"], &format!("{path}[]"), problems);
        }
        Shape::Interface { empty } => {
            eq("empty", empty.to_string(), want["empty"].to_string());
        }
        _ => {
            for k in ["fields", "elem", "empty"] {
                if !want[k].is_null() {
                    problems.push(format!("{path}: reflect has {k}, mdt a leaf"));
                }
            }
        }
    }
}

#[test]
fn type_trees_are_what_reflect_sees() {
    for_matrix("type_trees_are_what_reflect_sees", |tc, v| {
        let bin = fixture(tc, v);
        let dir = Scratch::new("types");
        let types = dir.path("types.json");
        let mut cmd = Command::new(&bin);
        cmd.arg("-types").arg(&types).arg("-hold");
        let mut p = Proc::spawn(&format!("{tc} {v}: keys fixture"), cmd, Stdio::piped());
        assert!(
            p.stdout.wait_for(RUN_TIMEOUT, |t| t.contains("keys done")),
            "{tc} {v}: the fixture did not finish: {}",
            p.stderr.text()
        );
        let records = common::read_json_lines(&types);
        let pid = p.pid();
        let binary = mdt::gobin::GoBinary::open(&bin).unwrap();
        let image = mdt::gobin::image::Image::new(
            Arc::new(fs::read(&bin).unwrap()),
            binary.pclntab_address,
        )
        .unwrap();
        let mem = mdt::process::memory::ProcessMemory::open(pid).ok();
        let bias = load_bias(pid, &bin);
        let mut resolver =
            mdt::symbolize::types::TypeResolver::new(Arc::new(image), mem, &binary, bias);
        let mut problems = Vec::new();
        for r in &records {
            let site = s(&r["site"]);
            let info = resolver.map_type(hex_addr(&r["type_addr"]));
            if *info.name != *s(&r["map_type"]) {
                problems.push(format!(
                    "{site}: map type {} vs {}",
                    info.name, r["map_type"]
                ));
            }
            match &info.key {
                Some(t) => compare_tree(t, &r["key"], &site, &mut problems),
                None => problems.push(format!("{site}: no key type tree")),
            }
            if r["dyn"].is_object() {
                let dyn_ptr = hex_addr(&r["dyn_addr"]);
                match resolver.go_type(dyn_ptr) {
                    Some(t) => {
                        compare_tree(&t, &r["dyn"], &format!("{site} (dynamic)"), &mut problems)
                    }
                    None => problems.push(format!("{site}: no dynamic type tree")),
                }
                if r["itab_addr"].is_string() {
                    let got = resolver.itab_type(hex_addr(&r["itab_addr"]));
                    if got != Some(dyn_ptr) {
                        problems.push(format!(
                            "{site}: itab type {got:x?}, dynamic type {dyn_ptr:#x}"
                        ));
                    }
                }
            }
        }
        assert!(
            records.len() > 80,
            "{tc} {v}: {} type records",
            records.len()
        );
        assert!(
            problems.is_empty(),
            "{tc} {v}: {} differences:\n{}",
            problems.len(),
            problems.join("\n")
        );
        p.finish_ok(RUN_TIMEOUT, "the fixture after stdin closed");
    });
}

// ---------------------------------------------------------------------------------------------
// 2: every key, traced

fn mdt_bin() -> &'static Path {
    common::private_mdt("keys")
}

/// `mdt trace FLAGS -o OUT -- FIXTURE -expect EXPECT`, to its end: (output, fixture records).
fn trace(ctx: &str, bin: &Path, dir: &Scratch, flags: &[&str]) -> (String, Vec<Value>) {
    let out = dir.path("trace.out");
    let expect = dir.path("expect.json");
    let mut cmd = Command::new(mdt_bin());
    cmd.arg("trace")
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
    let f = p.finish(RUN_TIMEOUT, "tracing the keys fixture");
    assert!(
        f.status.success(),
        "{ctx}: mdt exited {}; stderr:\n{}",
        f.status,
        f.stderr
    );
    let text = fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("{ctx}: read {}: {e}; stderr:\n{}", out.display(), f.stderr));
    (text, common::read_json_lines(&expect))
}

/// A key's JSON value in a form two equal keys share: floats by their bits (at their width),
/// anything else as its JSON text.
fn key_norm(key: &Value, float_bits: Option<u64>) -> String {
    match (float_bits, key) {
        (Some(32), Value::Number(n)) => {
            format!("f32:{:#x}", (n.as_f64().unwrap() as f32).to_bits())
        }
        (Some(_), Value::Number(n)) => format!("f64:{:#x}", n.as_f64().unwrap().to_bits()),
        _ => key.to_string(),
    }
}

/// What the fixture expects of one delete: (map type, key type, key, key_hex, truncated).
fn expected_ident(r: &Value) -> (String, String, String, String, bool) {
    let bits = r["key_bits"].as_u64();
    let key = match (bits, r["key_float"].as_str()) {
        (Some(32), Some(f)) if r["key"].is_number() => {
            format!("f32:{:#x}", f.parse::<f32>().unwrap().to_bits())
        }
        (Some(_), Some(f)) if r["key"].is_number() => {
            format!("f64:{:#x}", f.parse::<f64>().unwrap().to_bits())
        }
        _ => r["key"].to_string(),
    };
    (
        s(&r["map_type"]),
        s(&r["key_type"]),
        key,
        s(&r["key_hex"]),
        r["key_truncated"].as_bool().unwrap(),
    )
}

#[test]
fn every_key_as_go_prints_it() {
    if !common::require_root_bpf() {
        return;
    }
    for_matrix("every_key_as_go_prints_it", |tc, v| {
        let bin = fixture(tc, v);
        let ctx = format!("{tc} {v}");

        // JSON: key, key_hex, key_type, key_truncated of every delete.
        let dir = Scratch::new("json");
        let (text, expected) = trace(&ctx, &bin, &dir, &["--json"]);
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{ctx}: {e}: {l}")))
            .collect();
        let deletes: Vec<&Value> = records.iter().filter(|r| r["type"] == "delete").collect();
        let bits_of: BTreeMap<String, u64> = expected
            .iter()
            .filter_map(|r| Some((s(&r["map_type"]), r["key_bits"].as_u64()?)))
            .collect();
        let mut want: BTreeMap<_, (usize, String)> = BTreeMap::new();
        for r in &expected {
            want.entry(expected_ident(r))
                .or_insert((0, s(&r["site"])))
                .0 += 1;
        }
        let mut got: BTreeMap<_, usize> = BTreeMap::new();
        for e in &deletes {
            let map_type = s(&e["map_type"]);
            let bits = bits_of.get(&map_type).copied();
            let id = (
                map_type,
                s(&e["key_type"]),
                key_norm(&e["key"], bits),
                s(&e["key_hex"]),
                e["key_truncated"].as_bool().unwrap(),
            );
            *got.entry(id).or_default() += 1;
        }
        let mut problems = Vec::new();
        for (id, (n, site)) in &want {
            let g = got.get(id).copied().unwrap_or(0);
            if g != *n {
                problems.push(format!("{site}: expected {n}×, traced {g}×: {id:?}"));
            }
        }
        for (id, g) in &got {
            if !want.contains_key(id) {
                problems.push(format!("traced {g}×, not expected: {id:?}"));
            }
        }
        assert!(
            expected.len() > 80,
            "{ctx}: {} fixture records",
            expected.len()
        );
        assert!(
            problems.is_empty(),
            "{ctx}: {} differences (map type, key type, key, key_hex, truncated):\n{}",
            problems.len(),
            problems.join("\n")
        );

        // Text: every key in its Go form (cut ones followed by …).
        let dir = Scratch::new("text");
        let (text, expected) = trace(&ctx, &bin, &dir, &[]);
        let mut want: BTreeMap<(String, String), usize> = BTreeMap::new();
        for r in &expected {
            let mut k = s(&r["key_text"]);
            if r["key_truncated"] == true {
                k.push('…');
            }
            *want.entry((s(&r["map_type"]), k)).or_default() += 1;
        }
        let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.split_once(" delete ").map(|(_, r)| r) else {
                continue;
            };
            let (map_type, rest) = rest.split_once(" key=").expect("key=");
            let key = &rest[..rest.rfind(" len=").expect("len=")];
            *got.entry((map_type.to_string(), key.to_string()))
                .or_default() += 1;
        }
        let missing: Vec<_> = want
            .iter()
            .filter(|(k, n)| got.get(*k) != Some(n))
            .collect();
        assert!(
            missing.is_empty() && got.len() == want.len(),
            "{ctx}: text output: expected (map type, key) not traced as often: {missing:#?}\ntraced: {got:#?}"
        );

        // --redact-keys: every form hashed, no raw bytes; equal keys equal hashes.
        if v == Variant::Plain {
            let dir = Scratch::new("redact");
            let (text, expected) = trace(&ctx, &bin, &dir, &["--json", "--redact-keys"]);
            let deletes: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|r| r["type"] == "delete")
                .collect();
            assert_eq!(deletes.len(), expected.len(), "{ctx}: redacted records");
            let mut hashes = std::collections::BTreeSet::new();
            for e in &deletes {
                let k = s(&e["key"]);
                assert!(k.starts_with("redacted:"), "{ctx}: not redacted: {e}");
                assert!(
                    e.get("key_hex").is_none(),
                    "{ctx}: key_hex with --redact-keys: {e}"
                );
                hashes.insert(k);
            }
            // The hash is of the shown form: as many hashes as distinct forms.
            let distinct: std::collections::BTreeSet<_> =
                expected.iter().map(|r| s(&r["key_text"])).collect();
            assert_eq!(
                hashes.len(),
                distinct.len(),
                "{ctx}: distinct keys and distinct hashes"
            );
        }
    });
}
