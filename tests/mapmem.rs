//! Map memory (issue 13): the capacity, bytes and fill of the maps deleted from, read from
//! the target's memory, on the toolchain matrix (`MDT_GO_VERSIONS`; with the 1.24/1.25
//! `GOEXPERIMENT=noswissmap` builds), with the `mapmem` fixture (fixtures/mapmem): maps of
//! several key and element sizes grown to known sizes, mostly emptied, one cleared, one caught
//! growing, one freed; the fixture writes what it reads of each header from the inside.
//!
//! * `map_layout_facts_are_the_binarys` (no BPF): every offset mdt reads a map header by
//!   (hmap, or Map / table / group size) is what each toolchain's DWARF says; a stripped build
//!   gets the same layout from the version table; `mdt inspect` shows it and its source.
//! * `map_memory_is_the_fixtures`: `mdt trace --json`: the last `map` record of each map
//!   equals the fixture's numbers (len, cap, bytes, buckets / overflow / old buckets, tables /
//!   directory / tombstones); the last delete of each map carries its `map_cap`; the growing
//!   map is read while it grows; the freed maps, whose memory the fixture filled with ones and
//!   with zeros, are
//!   reported gone and never as a map with other numbers; the summary counts the maps; the
//!   memory rule `fill(map) < 5% and bytes(map) > 1MiB` fires once, for the emptied map.
//!
//! * `metrics_sum_the_maps_without_records`: `--quiet --prometheus` (no records: the maps
//!   come from the kernel's per-call-site counts): `go_map_capacity_slots`, `go_map_bytes`
//!   and `go_map_len` of each map type are the fixture's numbers.
//!
//! * `map_memory_mistakes_are_one_line`: a memory rule beside `--no-map-memory`, a
//!   `--map-refresh` of 0s, a memory rule on two sets of maps: one line each, non-zero exit.
//!
//! Needs root and BPF for the second: without them it is skipped, unless `CI=true`.

mod common;
mod monitor_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::proc::Proc;
use common::{Scratch, Variant};
use serde_json::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn mdt_bin() -> &'static Path {
    common::private_mdt("mapmem")
}

use common::for_jobs;

use common::plain_and_noswiss_jobs as jobs;

#[test]
fn map_layout_facts_are_the_binarys() {
    for_jobs("map_layout_facts_are_the_binarys", jobs(), |tc, v| {
        use mdt::gobin::layout::LayoutSource;
        use mdt::gobin::mapmem::{dwarf_facts, MapLayout};
        use mdt::gobin::MapImpl;
        let ctx = format!("{tc} {v}");
        let plain = common::build_fixture("mapmem", tc, v);
        let data = std::fs::read(&plain).unwrap();
        let elf = mdt::gobin::elf::Elf::parse(&data).unwrap();
        let b = mdt::gobin::GoBinary::open(&plain).unwrap();
        let imp = if tc.swiss(v) {
            MapImpl::Swiss
        } else {
            MapImpl::Hmap
        };
        assert_eq!(b.map_impl, imp, "{ctx}");
        let facts = dwarf_facts(&elf, b.version, imp);
        assert!(facts.len() >= 9, "{ctx}: {facts:?}");
        for f in &facts {
            assert_eq!(
                f.dwarf,
                Some(f.mdt),
                "{ctx}: {} (DWARF, mdt's table)",
                f.what
            );
        }
        let from_dwarf = b
            .map_memory
            .unwrap_or_else(|| panic!("{ctx}: no map layout"));
        assert_eq!(from_dwarf.source, LayoutSource::Dwarf, "{ctx}");
        assert!(
            matches!(
                (imp, from_dwarf.layout),
                (MapImpl::Swiss, MapLayout::Swiss(_)) | (MapImpl::Hmap, MapLayout::Hmap(_))
            ),
            "{ctx}"
        );
        // Without DWARF: the table, the same offsets.
        let strip = if v == Variant::NoSwiss {
            None
        } else {
            Some(common::build_fixture("mapmem", tc, Variant::Strip))
        };
        if let Some(strip) = &strip {
            let s = mdt::gobin::GoBinary::open(strip)
                .unwrap()
                .map_memory
                .unwrap();
            assert_eq!(s.source, LayoutSource::VersionTable, "{ctx} strip");
            assert_eq!(s.layout, from_dwarf.layout, "{ctx} strip");
        }
        // `mdt inspect` says which offsets and where they came from.
        for (bin, from) in [
            (Some(plain.clone()), "(from DWARF)"),
            (strip, "(from the table of Go releases)"),
        ] {
            let Some(bin) = bin else { continue };
            let out = common::output_retrying(Command::new(mdt_bin()).arg("inspect").arg(&bin));
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let line = text
                .lines()
                .find(|l| l.starts_with("map memory"))
                .unwrap_or_else(|| panic!("{ctx}: no map memory line:\n{text}"));
            let head = if imp == MapImpl::Swiss {
                "Map used+0"
            } else {
                "hmap count+0"
            };
            assert!(line.contains(head) && line.contains(from), "{ctx}: {line}");
        }
    });
}

/// `mdt trace --json --map-refresh 250ms -- mapmem -expect F -hold-file H`: (records, the
/// fixture's maps by name). The fixture is held until mdt's output has, for each map, a
/// reading with the fixture's numbers (for the freed map: gone), so that a loaded machine
/// (mdt reading its records late) still sees every reading made while the target lives.
fn trace(ctx: &str, bin: &Path, fields: &[&str]) -> (Vec<Value>, BTreeMap<String, Value>) {
    let dir = Scratch::new("mapmem");
    let out = dir.path("trace.json");
    let expect = dir.path("expect.json");
    let hold = dir.path("hold");
    let trigger = dir.path("trigger");
    let mut cmd = Command::new(mdt_bin());
    cmd.args(["trace", "--json", "--map-refresh", "250ms"])
        .args(["--alert", BLOAT_RULE, "-o"])
        .arg(&out)
        .arg("--")
        .arg(bin)
        .arg("-expect")
        .arg(&expect)
        .args(["-free-wait", "500ms", "-hold-file"])
        .arg(&hold)
        .arg("-trigger-file")
        .arg(&trigger)
        .env_remove("MAP_DELETE_TRACER_SAMPLING_RATE");
    let p = Proc::spawn(&format!("{ctx}: mdt trace"), cmd, Stdio::null());
    let maps = || -> Vec<Value> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|r: &Value| r["type"] == "map")
            .collect()
    };
    // 1: a reading of each of the seven maps, before the fixture's last deletes (so that they
    // come after it in the output, however late mdt reads its records).
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < until && !p.has_exited() {
        std::thread::sleep(Duration::from_millis(100));
        let mut seen: Vec<String> = maps().iter().map(|r| r["map"].to_string()).collect();
        seen.sort();
        seen.dedup();
        if seen.len() >= 7 {
            break;
        }
    }
    std::fs::write(&trigger, "").unwrap();
    // 2: a reading with the fixture's numbers for each map (the freed one: gone).
    while std::time::Instant::now() < until && !p.has_exited() {
        std::thread::sleep(Duration::from_millis(100));
        let Ok(text) = std::fs::read_to_string(&expect) else {
            continue;
        };
        let want: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if want.len() < 9 {
            continue;
        }
        let got = maps();
        let seen = |t: &Value| {
            got.iter().any(|r| {
                r["map"] == t["map"]
                    && if t["name"] == "freed" || t["name"] == "freedzero" {
                        r["gone"] == true
                    } else {
                        fields.iter().all(|f| r[*f] == t[*f])
                    }
            })
        };
        if want
            .iter()
            .filter(|t| !t["name"].as_str().unwrap_or("").ends_with("-reused"))
            .all(seen)
        {
            break;
        }
    }
    release(ctx, &hold, p);
    let want = common::read_json_lines(&expect)
        .into_iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t))
        .collect();
    (common::read_json_lines(&out), want)
}

/// Fires for "big" (40000 entries grown, 10 left, over 1 MiB), and for "cleared" where it
/// holds over 1 MiB; "str" is 6% full, the others small.
const BLOAT_RULE: &str = "fill(map) < 5% and bytes(map) > 1MiB";

/// Lets the fixture end (`-hold-file`), and checks that mdt ended well with it.
fn release(ctx: &str, hold: &Path, mut p: Proc) {
    std::fs::write(hold, "").unwrap();
    let f = p.finish(RUN_TIMEOUT, "tracing the mapmem fixture");
    assert!(
        f.status.success(),
        "{ctx}: mdt exited {}; stderr:\n{}",
        f.status,
        f.stderr
    );
}

/// The fields of a `map` record the fixture also knows.
const HMAP_FIELDS: &[&str] = &["len", "cap", "bytes", "buckets", "overflow", "old_buckets"];
const SWISS_FIELDS: &[&str] = &["len", "cap", "bytes", "tables", "directory", "tombstones"];

#[test]
fn map_memory_is_the_fixtures() {
    if !common::require_root_bpf() {
        return;
    }
    for_jobs("map_memory_is_the_fixtures", jobs(), |tc, v| {
        let ctx = format!("{tc} {v}");
        let bin = common::build_fixture("mapmem", tc, v);
        let fields = if tc.swiss(v) {
            SWISS_FIELDS
        } else {
            HMAP_FIELDS
        };
        let (records, want) = trace(&ctx, &bin, fields);
        let maps_at = |addr: &str| -> Vec<&Value> {
            records
                .iter()
                .filter(|r| r["type"] == "map" && r["map"] == addr)
                .collect()
        };
        let mut problems = Vec::new();
        for name in ["big", "str", "small", "cleared", "growing"] {
            let t = &want[name];
            let addr = t["map"].as_str().unwrap();
            let readings = maps_at(addr);
            let Some(last) = readings.last() else {
                problems.push(format!("{name}: no map record"));
                continue;
            };
            assert_eq!(last["impl"], t["impl"], "{ctx} {name}");
            for f in fields {
                if last[*f] != t[*f] {
                    problems.push(format!(
                        "{name}: {f} {} (mdt), {} (fixture)",
                        last[*f], t[*f]
                    ));
                }
            }
            let cap = t["cap"].as_f64().unwrap();
            let fill = if cap == 0.0 {
                0.0
            } else {
                t["len"].as_f64().unwrap() / cap
            };
            let got_fill = last["fill"].as_f64().unwrap();
            if (got_fill - fill).abs() > 1e-6 {
                problems.push(format!("{name}: fill {got_fill}, want {fill}"));
            }
            // A map is read at most once a second while deleted from, and every 250ms here.
            let duration = records.last().unwrap()["duration"].as_f64().unwrap();
            let bound = (duration / 0.25).ceil() as usize + 3;
            if readings.len() > bound {
                problems.push(format!(
                    "{name}: {} readings in {duration}s",
                    readings.len()
                ));
            }
            // Once a reading is written, every later delete from the map carries its
            // capacity (the fixture deletes twice more after its last change).
            let mut cap_now = None;
            let mut carried = 0;
            for r in records.iter().filter(|r| r["map"] == addr) {
                if r["type"] == "map" {
                    cap_now = Some(r["cap"].clone());
                } else if let Some(cap) = &cap_now {
                    carried += 1;
                    if &r["map_cap"] != cap {
                        problems.push(format!(
                            "{name}: map_cap {} after a reading of {cap}",
                            r["map_cap"]
                        ));
                    }
                }
            }
            if name != "growing" && carried == 0 {
                problems.push(format!("{name}: no delete after its first reading"));
            }
        }
        if !tc.swiss(v) {
            assert!(
                want["growing"]["old_buckets"].as_u64().unwrap() > 0,
                "{ctx}: the fixture did not catch its map growing"
            );
        }
        // The freed maps (their memory filled with ones, and with zeros): read as a map while
        // each was one, then gone; never another map.
        for name in ["freed", "freedzero"] {
            let freed = &want[name];
            let reused = &want[format!("{name}-reused").as_str()];
            assert_eq!(
                reused["reused"], true,
                "{ctx}: the fixture could not reuse the header of {name}"
            );
            let readings = maps_at(freed["map"].as_str().unwrap());
            let gone = readings.iter().filter(|r| r["gone"] == true).count();
            if gone != 1 {
                problems.push(format!("{name}: {gone} gone records: {readings:?}"));
            }
            for r in readings.iter().filter(|r| r["gone"] != true) {
                for f in fields {
                    if r[*f] != freed[*f] {
                        problems.push(format!("{name}: read as a map with {f} {}: {r}", r[*f]));
                    }
                }
            }
            if readings.last().is_some_and(|r| r["gone"] != true) {
                problems.push(format!("{name}: read as a map after it was gone"));
            }
        }
        // The memory rule: one alert for each map that is under 5% full and over 1 MiB (by the
        // fixture's numbers; big is one), with its fill when it fired as the value (under 5%,
        // and no less than the fill it ended with: it may fire while the deletes go on).
        let mut want_alerts: Vec<(String, f64)> = want
            .values()
            .filter(|t| {
                t.get("cap").is_some() && !t["name"].as_str().unwrap_or("").starts_with("freed")
            })
            .filter_map(|t| {
                let (len, cap, bytes) =
                    (t["len"].as_f64()?, t["cap"].as_f64()?, t["bytes"].as_f64()?);
                let fill = if cap == 0.0 { 0.0 } else { len / cap };
                (fill < 0.05 && bytes > 1024.0 * 1024.0)
                    .then(|| (t["map"].as_str().unwrap().to_string(), fill))
            })
            .collect();
        want_alerts.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(
            want_alerts
                .iter()
                .any(|(m, _)| m == want["big"]["map"].as_str().unwrap()),
            "{ctx}: {want_alerts:?}"
        );
        let mut got_alerts: Vec<(String, f64)> = records
            .iter()
            .filter(|r| r["type"] == "alert")
            .map(|a| {
                assert_eq!(
                    (&a["rule"], &a["unit"]),
                    (&Value::from(BLOAT_RULE), &Value::from("ratio")),
                    "{ctx}"
                );
                (
                    a["group"]["map"].as_str().unwrap().to_string(),
                    a["value"].as_f64().unwrap(),
                )
            })
            .collect();
        got_alerts.sort_by(|a, b| a.0.cmp(&b.0));
        let same = got_alerts.len() == want_alerts.len()
            && got_alerts
                .iter()
                .zip(&want_alerts)
                .all(|(g, w)| g.0 == w.0 && g.1 < 0.05 && g.1 >= w.1 - 1e-6);
        if !same {
            problems.push(format!("alerts {got_alerts:?}, want {want_alerts:?}"));
        }
        let summary = records.last().unwrap();
        assert_eq!(summary["type"], "summary", "{ctx}");
        let totals = &summary["map_memory"];
        if totals["maps"] != 7 || totals["gone"] != 2 {
            problems.push(format!("summary map_memory {totals}"));
        }
        assert!(
            problems.is_empty(),
            "{ctx}: {} problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
    });
}

/// The map type of each of the fixture's maps, as mdt names it.
const MAP_TYPES: &[(&str, &str)] = &[
    ("big", "map[int64]int64"),
    ("str", "map[string][64]uint8"),
    ("small", "map[[16]uint8]struct {}"),
    ("cleared", "map[int32]string"),
];

#[test]
fn metrics_sum_the_maps_without_records() {
    if !common::require_root_bpf() {
        return;
    }
    let jobs: Vec<_> = jobs()
        .into_iter()
        .filter(|(tc, v)| *v == Variant::Plain && (tc.minor == 19 || tc.minor >= 27))
        .collect();
    for_jobs("metrics_sum_the_maps_without_records", jobs, |tc, v| {
        use monitor_common::{free_port, http_get, parse_samples, poll};
        let ctx = format!("{tc} {v}");
        let bin = common::build_fixture("mapmem", tc, v);
        let dir = Scratch::new("mapmem-metrics");
        let (expect, trigger, hold) = (
            dir.path("expect.json"),
            dir.path("trigger"),
            dir.path("hold"),
        );
        std::fs::write(&trigger, "").unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(mdt_bin());
        // --quiet: no records at all; the maps come from the kernel's counts per call site.
        cmd.args([
            "trace",
            "--quiet",
            "--prometheus",
            &addr,
            "--map-refresh",
            "250ms",
            "--",
        ])
        .arg(&bin)
        .arg("-expect")
        .arg(&expect)
        .args(["-free-wait", "500ms", "-trigger-file"])
        .arg(&trigger)
        .arg("-hold-file")
        .arg(&hold);
        let p = Proc::spawn(&format!("{ctx}: mdt"), cmd, Stdio::null());
        let url = format!("http://{addr}/metrics");
        poll(Duration::from_secs(60), &format!("{ctx}: {url}"), || {
            let want: BTreeMap<String, Value> = std::fs::read_to_string(&expect)
                .map_err(|e| e.to_string())?
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .map(|t| (t["name"].as_str().unwrap_or("").to_string(), t))
                .collect();
            if want.len() < 9 {
                return Err("the fixture has not written its maps".into());
            }
            let (_, body) = http_get(&url)?;
            let samples = parse_samples(&body);
            let gauge = |name: &str, ty: &str| {
                samples
                    .iter()
                    .find(|(n, l, _)| {
                        n == name && l.iter().any(|(k, v)| k == "map_type" && v == ty)
                    })
                    .map(|(_, _, v)| *v as u64)
            };
            for (name, ty) in MAP_TYPES {
                let t = &want[*name];
                for (metric, field) in [
                    ("go_map_capacity_slots", "cap"),
                    ("go_map_bytes", "bytes"),
                    ("go_map_len", "len"),
                ] {
                    let got = gauge(metric, ty);
                    let others: u64 = ["growing", "freed", "freedzero"]
                        .iter()
                        .map(|n| want[*n][field].as_u64().unwrap())
                        .sum();
                    let own = t[field].as_u64();
                    // map[int64]int64 is also the type of "growing" and the freed ones, whose rare
                    // deletes share big's call site: the kernel's counts may name them or not.
                    let ok = match (*name, got, own) {
                        ("big", Some(g), Some(o)) => g >= o && g <= o + others,
                        (_, Some(g), Some(o)) => g == o,
                        _ => false,
                    };
                    if !ok {
                        return Err(format!(
                            "{metric}{{map_type=\"{ty}\"}} {got:?}, want {own:?}"
                        ));
                    }
                }
            }
            Ok(())
        });
        release(&ctx, &hold, p);
    });
}

#[test]
fn map_memory_mistakes_are_one_line() {
    use monitor_common::expect_one_line_error;
    // A memory rule needs the maps' memory.
    expect_one_line_error(
        &["trace", "-p", "1", "--no-map-memory", "--alert", BLOAT_RULE],
        &["--no-map-memory", "drop --no-map-memory"],
    );
    // A refresh of nothing.
    expect_one_line_error(
        &["trace", "-p", "1", "--map-refresh", "0s"],
        &["--map-refresh", "longer than 0s"],
    );
    // Memory rules at the column of their mistake.
    expect_one_line_error(
        &[
            "trace",
            "-p",
            "1",
            "--alert",
            "fill(map) < 5% and bytes(map_type) > 1MiB",
        ],
        &["column 25", "same maps"],
    );
}
