//! The Go fixtures build and behave as documented, for every toolchain of the matrix
//! (`MDT_GO_VERSIONS`) and every build variant, and `fixtures/truth` finds what it should.
//! No root or BPF needed.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// Build every (toolchain, variant) of `items` with 2 worker threads; returns the paths in order.
fn build_all(name: &str, items: &[(Toolchain, Variant)]) -> Vec<PathBuf> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<PathBuf>>> = Mutex::new(vec![None; items.len()]);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        *n += 1;
                        i
                    };
                    if i >= items.len() {
                        break;
                    }
                    let (tc, v) = &items[i];
                    let p = build_fixture(name, tc, *v);
                    results.lock().unwrap()[i] = Some(p);
                })
            })
            .collect();
        for w in workers {
            if let Err(e) = w.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|p| p.unwrap())
        .collect()
}

/// What the source line named by a record must contain.
fn construct(rec: &Value) -> &'static str {
    match (rec["via"].as_str().unwrap(), rec["kind"].as_str().unwrap()) {
        ("range", _) => "for k := range m { delete(m, k) }",
        ("reflect", "delete") => ".SetMapIndex(",
        ("reflect", "clear") => ".Clear()",
        ("maps.DeleteFunc", _) => "maps.DeleteFunc(",
        (_, "clear") => "clear(m)",
        _ => "delete(m, k)",
    }
}

fn check_deletes_run(tc: &Toolchain, variant: Variant, bin: &Path) {
    let what = format!("{tc} {variant} ({})", bin.display());
    let tmp = tempfile::tempdir().unwrap();
    let expect = tmp.path().join("expect.jsonl");
    let out = run_fixture(bin, &["-expect", expect.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{what}: exit {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        expected_deletes_stdout(tc, variant, 1),
        "{what}: stdout"
    );

    let recs = read_json_lines(&expect);
    let (deletes, clears) = expected_deletes(tc, variant, 1);
    assert_eq!(
        recs.len(),
        deletes + clears,
        "{what}: records in the expect file"
    );
    let count = |k: &str| recs.iter().filter(|r| r["kind"] == k).count();
    assert_eq!(
        (count("delete"), count("clear")),
        (deletes, clears),
        "{what}: deletes/clears"
    );

    // Each record's line really is the line of its delete construct.
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &recs {
        let file = r["file"].as_str().unwrap().to_string();
        let lines = sources.entry(file.clone()).or_insert_with(|| {
            std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{what}: read {file}: {e}"))
                .lines()
                .map(String::from)
                .collect()
        });
        let line = r["line"].as_u64().unwrap() as usize;
        let text = &lines[line - 1];
        assert!(
            text.contains(construct(r)),
            "{what}: record {r} points at {file}:{line} = {text:?}, which does not contain {:?} \
             (was the fixture gofmt-ed? see fixtures/deletes/README.md)",
            construct(r)
        );
        assert!(
            r["func"].as_str().unwrap().starts_with("main.del"),
            "{what}: func of {r}"
        );
    }

    // The goroutine site: 3 goroutines, each its own goid, none of them main's.
    let main_goid = recs.iter().find(|r| r["site"] == "user_map").unwrap()["goid"].clone();
    let goids: BTreeSet<i64> = recs
        .iter()
        .filter(|r| r["site"] == "goroutine")
        .map(|r| r["goid"].as_i64().unwrap())
        .collect();
    assert_eq!(goids.len(), 3, "{what}: goroutine goids {goids:?}");
    assert!(
        !goids.contains(&main_goid.as_i64().unwrap()),
        "{what}: goroutine goids {goids:?} vs main {main_goid}"
    );

    // The range idiom: one mapclear, or 4 deletes under -race.
    let range: Vec<&Value> = recs.iter().filter(|r| r["site"] == "range").collect();
    if variant == Variant::Race {
        assert!(
            range.len() == 4 && range.iter().all(|r| r["kind"] == "delete"),
            "{what}: range {range:?}"
        );
    } else {
        assert!(
            range.len() == 1 && range[0]["kind"] == "clear" && range[0]["cleared"] == 4,
            "{what}: {range:?}"
        );
    }
    // A nil map is 0x0; uint64 keys above 2^63 survive as numbers.
    assert!(
        recs.iter()
            .any(|r| r["site"] == "nil_string" && r["map"] == "0x0"),
        "{what}: nil map"
    );
    assert!(
        recs.iter()
            .any(|r| r["site"] == "uint64" && r["key"].as_u64() == Some(0xfedcba9876543210)),
        "{what}: uint64 key"
    );
}

#[test]
fn deletes_fixture_builds_and_runs_for_every_toolchain_and_variant() {
    let items = matrix();
    let t0 = Instant::now();
    let bins = build_all("deletes", &items);
    let build_time = t0.elapsed();
    for ((tc, v), bin) in items.iter().zip(&bins) {
        check_deletes_run(tc, *v, bin);
    }
    note(&format!(
        "fixtures_build: {} deletes builds ({}) in {:.1?}, all runs in {:.1?}",
        items.len(),
        toolchains()
            .iter()
            .map(|t| t.version.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        build_time,
        t0.elapsed() - build_time
    ));
}

#[test]
fn deletes_fixture_flags() {
    let tc = toolchains().into_iter().last().unwrap();
    let bin = build_fixture("deletes", &tc, Variant::Plain);

    // -repeat N: N times the records, each with its iteration number.
    let tmp = tempfile::tempdir().unwrap();
    let expect = tmp.path().join("e.jsonl");
    let out = run_fixture(&bin, &["-repeat", "3", "-expect", expect.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        expected_deletes_stdout(&tc, Variant::Plain, 3)
    );
    let recs = read_json_lines(&expect);
    let (d, c) = expected_deletes(&tc, Variant::Plain, 3);
    assert_eq!(recs.len(), d + c);
    let iters: BTreeSet<u64> = recs.iter().map(|r| r["iter"].as_u64().unwrap()).collect();
    assert_eq!(iters, BTreeSet::from([0, 1, 2]));

    // -exit-code
    let out = run_fixture(&bin, &["-exit-code", "7"]);
    assert_eq!(out.status.code(), Some(7));

    // -wait-file: nothing happens until the file exists.
    let flag = tmp.path().join("attached");
    let mut child = std::process::Command::new(&bin)
        .args(["-wait-file", flag.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "-wait-file: exited before the file existed"
    );
    std::fs::write(&flag, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("deletes done:"));

    // -hold: blocks until stdin closes, or until SIGTERM.
    let mut child = std::process::Command::new(&bin)
        .args(["-hold", "-exit-code", "5"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "-hold: exited while stdin was open"
    );
    drop(child.stdin.take());
    assert_eq!(child.wait().unwrap().code(), Some(5));

    let mut child = std::process::Command::new(&bin)
        .args(["-hold"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until it has finished the set (it prints then holds)
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut stdout, &mut buf).unwrap();
    assert!(n > 0);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(child.try_wait().unwrap().is_none(), "-hold: exited early");
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn no_section_headers_variant_has_none() {
    for tc in toolchains() {
        let bin = build_fixture("deletes", &tc, Variant::NoSectionHeaders);
        let data = std::fs::read(&bin).unwrap();
        assert_eq!(&data[0x28..0x30], &[0u8; 8], "{tc}: e_shoff");
        assert_eq!(&data[0x3c..0x40], &[0u8; 4], "{tc}: e_shnum, e_shstrndx");
        // the same bytes as the strip build otherwise
        let strip = std::fs::read(build_fixture("deletes", &tc, Variant::Strip)).unwrap();
        assert_eq!(data.len(), strip.len());
        assert_eq!(&data[0x40..], &strip[0x40..]);
        assert_eq!(unstripped_twin(Variant::NoSectionHeaders), Variant::Plain);
    }
}

#[test]
fn cgo_and_race_builds_are_dynamically_linked() {
    for tc in toolchains() {
        for v in [Variant::Cgo, Variant::Race] {
            let bin = build_fixture("deletes", &tc, v);
            assert!(elf_has_interp(&bin), "{tc} {v}: no PT_INTERP");
            let t = truth(&bin);
            let needed: Vec<&str> = t["needed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap())
                .collect();
            assert!(
                needed.iter().any(|n| n.starts_with("libc.so")),
                "{tc} {v}: DT_NEEDED {needed:?}"
            );
        }
        for v in [Variant::Plain, Variant::Strip] {
            assert!(
                !elf_has_interp(&build_fixture("deletes", &tc, v)),
                "{tc} {v}: has PT_INTERP"
            );
        }
        // A CGO_ENABLED=0 PIE has PT_INTERP too (ld.so applies its relocations), but needs no library.
        let pie = build_fixture("deletes", &tc, Variant::Pie);
        assert!(elf_has_interp(&pie), "{tc} pie: no PT_INTERP");
        assert_eq!(
            truth(&pie)["needed"],
            serde_json::json!([]),
            "{tc} pie: DT_NEEDED"
        );
    }
}

#[test]
fn truth_finds_the_map_delete_functions() {
    let base = [
        "runtime.mapdelete",
        "runtime.mapdelete_fast32",
        "runtime.mapdelete_fast64",
        "runtime.mapdelete_faststr",
        "runtime.mapclear",
        "reflect.mapdelete",
        "reflect.mapdelete_faststr",
    ];
    let swiss = [
        "internal/runtime/maps.(*Map).Delete",
        "internal/runtime/maps.(*Map).Clear",
    ];
    for tc in toolchains() {
        for v in tc
            .variants()
            .into_iter()
            .filter(|v| unstripped_twin(*v) == *v)
        {
            let bin = build_fixture("deletes", &tc, v);
            let t = truth(&bin);
            let what = format!("{tc} {v}");
            let funcs = t["funcs"].as_object().unwrap();
            let size = std::fs::metadata(&bin).unwrap().len();
            let mut want: Vec<&str> = base.to_vec();
            // runtime.mapclear is dead code, dropped by the linker, in 1.19 -race builds: there its
            // only user, the range-delete idiom, stays a loop, and 1.19 has no clear().
            if tc.minor < 21 && v == Variant::Race {
                want.retain(|f| *f != "runtime.mapclear");
            }
            if tc.at_least(21) {
                want.push("reflect.mapclear");
            }
            if tc.swiss(v) {
                want.extend(swiss);
            }
            for f in &want {
                let e = funcs
                    .get(*f)
                    .unwrap_or_else(|| panic!("{what}: {f} missing: {t}"));
                assert!(e["size"].as_u64().unwrap() > 0, "{what}: {f} size");
                assert!(
                    e["file_offset"].as_u64().unwrap() < size,
                    "{what}: {f} file_offset"
                );
            }
            assert_eq!(
                funcs.len(),
                want.len(),
                "{what}: unexpected functions in {t}"
            );
            assert!(
                t["go_version"].as_str().unwrap().starts_with(&tc.version),
                "{what}: {}",
                t["go_version"]
            );
            // goid: +160 in 1.23 and 1.24, +152 in the others (docs/go-runtime.md); count/used at 0.
            let goid = if tc.minor == 23 || tc.minor == 24 {
                160
            } else {
                152
            };
            assert_eq!(t["goid_offset"], goid, "{what}: goid offset");
            assert_eq!(t["map_count_offset"], 0, "{what}: map count offset");
            let field = if tc.swiss(v) { "used" } else { "count" };
            assert_eq!(t["map_count_field"], field, "{what}");
        }
        // stripped builds: no symbols, no DWARF, nothing found
        let t = truth(&build_fixture("deletes", &tc, Variant::Strip));
        assert_eq!(t["has_symtab"], false, "{tc} strip");
        assert_eq!(t["has_dwarf"], false, "{tc} strip");
        assert!(t["funcs"].as_object().unwrap().is_empty(), "{tc} strip");
    }
}

#[test]
fn loop_fixture_runs() {
    let tc = toolchains().into_iter().last().unwrap();
    let bin = build_fixture("loop", &tc, Variant::Plain);
    for key in ["string", "int64"] {
        let out = run_fixture(&bin, &["-n", "10000", "-key", key]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(
            s.starts_with(&format!("loop: key={key} n=10000 depth=20 ns/delete=")),
            "{s}"
        );
    }
}

#[test]
fn version_sets_parse_like_the_script() {
    assert_eq!(parse_versions("default"), ["1.19", "1.23", "1.24", "1.27"]);
    assert_eq!(parse_versions("all").len(), 8);
    assert_eq!(
        parse_versions("1.21, 1.24.11 go1.27 1.21"),
        ["1.21", "1.24", "1.27"]
    );
}
