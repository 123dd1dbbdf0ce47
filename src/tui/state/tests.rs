//! The aggregate's tables, fed real-looking events.

use super::*;
use crate::events::Frame;
use crate::events::KeyValue;

fn frame(func: &str, file: &str, line: u32, addr: u64) -> Frame {
    Frame::new(func, file, line, addr, false)
}

fn event(caller: (&str, u32, u64), map: u64, key: i64, sec: u64) -> Event {
    let caller = frame(caller.0, "/src/main.go", caller.1, caller.2);
    Event {
        ts_ns: sec * NANOS,
        ..crate::events::testing::delete(map, KeyValue::Int(key), &[caller])
    }
}

#[test]
fn buckets_count_per_second_and_forget_old_seconds() {
    let mut b = Buckets::default();
    b.add(1000);
    b.add(1000);
    b.add(1001);
    assert_eq!(b.at(1000), 2);
    assert_eq!(b.rate(1002), 1);
    assert_eq!(b.series(1002, 3), vec![0, 2, 1]);
    b.add(1000 + HISTORY_SECS as u64 + 5);
    assert_eq!(b.at(1000), 0);
    assert_eq!(b.at(1001), 0);
    b.add(999); // too old now: ignored
    assert_eq!(b.at(999), 0);
}

#[test]
fn rate_history_turns_totals_into_per_second_deltas() {
    let mut h = RateHistory::default();
    h.observe(100, 10);
    h.observe(100, 15);
    h.observe(101, 20); // 5 in second 100, 5 so far in 101
    assert_eq!(h.rate(), 5);
    h.observe(104, 20); // 101: 5, 102: 0, 103: 0
    assert_eq!(h.rate(), 0);
    let s = h.series();
    assert_eq!(s.len(), CHART_SECS);
    assert_eq!(&s[CHART_SECS - 4..], &[5, 5, 0, 0]);
}

#[test]
fn one_row_per_call_site_and_per_map() {
    let mut st = Stats::new();
    // Two pcs on one line are one call site.
    st.apply(&event(("main.a", 10, 0x500), 0xc000, 1, 50));
    st.apply(&event(("main.a", 10, 0x504), 0xc000, 2, 50));
    st.apply(&event(("main.b", 20, 0x600), 0xd000, 3, 51));
    let (mut callers, n) = st.caller_lines(&Filter::default(), 52);
    assert_eq!(n, 2);
    sort_callers(
        &mut callers,
        Sort {
            column: Column::Total,
            reversed: false,
        },
    );
    assert_eq!(&*callers[0].label, "main.a main.go:10");
    assert_eq!(callers[0].total, 2);
    assert_eq!(callers[0].rate, 0);
    assert_eq!(callers[1].rate, 1);
    let (maps, _) = st.map_lines(&Filter::default(), 52);
    assert_eq!(maps.len(), 2);
    let m = maps.iter().find(|m| m.addr == 0xc000).unwrap();
    assert_eq!((m.deletes, m.len), (2, 3));
    assert_eq!(m.top_caller.as_deref(), Some("main.a main.go:10"));
    let d = st
        .map_detail((0xc000, type_hash("map[int64]int")), 52)
        .unwrap();
    assert_eq!(d.keys, vec!["2", "1"]);
}

#[test]
fn full_tables_drop_their_least_recent_rows_and_say_so() {
    let max_maps = 500;
    let mut st = Stats::with_rows(max_maps);
    for i in 0..(max_maps as u64 + 10) {
        st.apply(&event(("main.a", 10, 0x500), 0x1000 + i * 16, 1, 50));
    }
    assert!(st.map_count() <= max_maps);
    assert!(st.evicted().maps > 0);
    // The newest map is still there, with its count.
    let newest = 0x1000 + (max_maps as u64 + 9) * 16;
    assert!(st
        .map_detail((newest, type_hash("map[int64]int")), 51)
        .is_some());
    assert_eq!(st.records(), max_maps as u64 + 10);
}

#[test]
fn short_function_names_drop_the_import_path() {
    assert_eq!(
        short_func("github.com/org/svc/cache.(*LRU).evict"),
        "cache.(*LRU).evict"
    );
    assert_eq!(short_func("main.main"), "main.main");
    assert_eq!(
        short_func("pkg.F[go.shape.*example.com/x.T]"),
        "pkg.F[go.shape.*example.com/x.T]"
    );
    assert_eq!(
        short_func("example.com/a/pkg.F[go.shape.int]"),
        "pkg.F[go.shape.int]"
    );
}

#[test]
fn smart_case_filter() {
    assert!(Filter::new("usermap").matches("main.UserMap"));
    assert!(Filter::new("UserMap").matches("main.UserMap"));
    assert!(!Filter::new("Usermap").matches("main.UserMap"));
    assert!(Filter::new("").matches("anything"));
}

#[test]
fn numbers_are_grouped() {
    assert_eq!(group(0), "0");
    assert_eq!(group(999), "999");
    assert_eq!(group(1000), "1,000");
    assert_eq!(group(1234567), "1,234,567");
}

/// The intake path stays cheap: a burst of a million events is applied
/// well under a second (release build; debug builds get more room).
#[test]
fn a_million_events_apply_quickly() {
    let callers: Vec<Event> = (0..200u64)
        .map(|c| event(("main.worker", c as u32, 0x400000 + c * 8), 0, 0, 0))
        .collect();
    let mut st = Stats::new();
    let start = std::time::Instant::now();
    for i in 0..1_000_000u64 {
        let mut ev = callers[(i % 200) as usize].clone();
        ev.map = 0xc000_0000 + (i % 5000) * 48;
        ev.key = KeyValue::Int(i as i64);
        ev.ts_ns = 1_700_000_000 * NANOS + i * 1000;
        st.apply(&ev);
    }
    let took = start.elapsed();
    assert_eq!(st.records(), 1_000_000);
    assert_eq!(st.caller_count(), 200);
    assert_eq!(st.map_count(), 5000);
    let limit = if cfg!(debug_assertions) { 15.0 } else { 0.6 };
    eprintln!("1M events applied in {took:?}");
    assert!(took.as_secs_f64() < limit, "1M events took {took:?}");
}

/// Intake and drawing share one lock: while a million events pour in,
/// the UI still rebuilds its model (what a key press triggers) quickly,
/// and the intake is not slowed much by it.
#[test]
fn a_burst_does_not_starve_the_ui() {
    use crate::tui::app::{App, TargetInfo};
    use crate::tui::state::View;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    let template: Vec<Event> = (0..200u64)
        .map(|c| event(("main.worker", c as u32, 0x400000 + c * 8), 0, 0, 0))
        .collect();
    let stats = Mutex::new(Stats::new());
    let done = AtomicBool::new(false);
    let (mut worst, mut frames) = (Duration::ZERO, 0);
    let mut intake = Duration::ZERO;
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            for i in 0..1_000_000u64 {
                let mut ev = template[(i % 200) as usize].clone();
                ev.map = 0xc000_0000 + (i % 5000) * 48;
                ev.ts_ns = 1_700_000_000 * NANOS + i * 1000;
                stats.lock().unwrap().apply(&ev);
            }
            intake = start.elapsed();
            done.store(true, Ordering::SeqCst);
        });
        let mut app = App::new(TargetInfo::default());
        app.view = View::Maps; // the biggest table: 5,000 rows to filter and sort
        while !done.load(Ordering::SeqCst) {
            let t = Instant::now();
            app.refresh(&stats.lock().unwrap(), None, 1_700_000_001 * NANOS);
            worst = worst.max(t.elapsed());
            frames += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    eprintln!(
        "1M events in {intake:?} while the UI refreshed {frames} times, the slowest in {worst:?}"
    );
    let (refresh, total) = if cfg!(debug_assertions) {
        (1.0, 30.0)
    } else {
        (0.05, 1.5)
    };
    assert!(frames >= 2, "the UI never got the lock");
    assert!(worst.as_secs_f64() < refresh, "a refresh took {worst:?}");
    assert!(intake.as_secs_f64() < total, "intake took {intake:?}");
}

fn timed(mut ev: Event, duration_ns: u64, removed: Option<bool>) -> Event {
    ev.outcome = Some(crate::events::Outcome {
        duration_ns,
        removed,
    });
    ev
}

#[test]
fn rows_count_what_the_measured_calls_found_and_took() {
    let mut st = Stats::new();
    let a = ("main.a", 10, 0x500);
    // main.a: 4 measured deletes (1 absent), 1 unmeasured; main.b: none.
    st.apply(&timed(event(a, 0xc000, 1, 50), 800, Some(true)));
    st.apply(&timed(event(a, 0xc000, 2, 50), 900, Some(true)));
    st.apply(&timed(event(a, 0xc000, 3, 50), 1_500, Some(false)));
    st.apply(&timed(event(a, 0xd000, 4, 50), 3_000_000, Some(true)));
    st.apply(&event(a, 0xd000, 5, 50));
    st.apply(&event(("main.b", 20, 0x600), 0xe000, 6, 50));
    let (mut callers, _) = st.caller_lines(&Filter::default(), 51);
    sort_callers(
        &mut callers,
        Sort {
            column: Column::P99,
            reversed: false,
        },
    );
    let o = callers[0].outcomes;
    assert_eq!(&*callers[0].label, "main.a main.go:10");
    assert_eq!((o.removed, o.absent, o.timed), (3, 1, 4));
    assert_eq!(o.absent_pct(), Some(25.0));
    assert_eq!(o.absent_text(), "25%");
    // Ranks 2 and 4 of 4: the ≤1µs and the ≤5ms buckets.
    assert_eq!((o.p50, o.p99), (Some(1_000), Some(5_000_000)));
    assert_eq!((o.p50_text(), o.p99_text()), ("1µs".into(), "5ms".into()));
    // The unmeasured row: dashes, and last largest first.
    let o = callers[1].outcomes;
    assert_eq!(o, OutcomeSummary::default());
    assert_eq!(o.absent_pct(), None);
    assert_eq!(
        (o.absent_text(), o.p50_text(), o.p99_text()),
        ("–".into(), "–".into(), "–".into())
    );
    // Per map too.
    let (maps, _) = st.map_lines(&Filter::default(), 51);
    let m = |addr| maps.iter().find(|m| m.addr == addr).unwrap().outcomes;
    assert_eq!((m(0xc000).removed, m(0xc000).absent), (2, 1));
    assert_eq!(m(0xc000).p99, Some(2_000));
    assert_eq!((m(0xd000).timed, m(0xd000).absent_text()), (1, "0%".into()));
    assert_eq!(m(0xe000).timed, 0);
    // The detail gets the whole histogram.
    let key = callers[0].key.clone();
    let d = st.caller_detail(&key, 51).unwrap();
    let h = d.outcomes.unwrap().latency;
    assert_eq!(h.count(), 4);
    assert_eq!(h.quantile_bound(90_000), Some(5_000_000));
    // A reset forgets them.
    st.reset();
    assert_eq!(st.caller_lines(&Filter::default(), 51).0.len(), 0);
}

#[test]
fn a_clear_is_timed_but_finds_nothing() {
    let mut st = Stats::new();
    let mut clear = event(("main.a", 10, 0x500), 0xc000, 0, 50);
    clear.kind = Role::Clear;
    st.apply(&timed(clear, 20_000, None));
    let (callers, _) = st.caller_lines(&Filter::default(), 51);
    let o = callers[0].outcomes;
    assert_eq!((o.timed, o.removed, o.absent), (1, 0, 0));
    assert_eq!((o.absent_text(), o.p99_text()), ("–".into(), "20µs".into()));
}

#[test]
fn durations_and_absent_shares_are_compact() {
    assert_eq!(duration(850), "850ns");
    assert_eq!(duration(1_000), "1µs");
    assert_eq!(duration(1_500), "1.5µs");
    assert_eq!(duration(12_000), "12µs");
    assert_eq!(duration(12_345), "12µs");
    assert_eq!(duration(3_400_000), "3.4ms");
    assert_eq!(duration(999_700), "1ms");
    assert_eq!(duration(1_000_000_000), "1s");
    assert_eq!(duration(u64::MAX), ">1s");
    // Every bucket bound fits the 5-cell P50 and P99 columns.
    for &b in crate::probes::LATENCY_BOUNDS_NS.iter() {
        assert!(duration(b).chars().count() <= 5, "{b}");
    }
    assert_eq!(absent_text(0, 0), "–");
    assert_eq!(absent_text(1, 1), "50%");
    assert_eq!(absent_text(0, 3), "100%");
    assert_eq!(absent_text(3, 0), "0%");
    assert_eq!(absent_text(999, 1), "<1%");
    assert_eq!(absent_text(1, 999), ">99%");
}

#[test]
fn map_memory_readings_fill_the_maps_view_and_the_detail() {
    use crate::events::mapmem::{MapMemory, MapShape, MapSize};
    let mut st = Stats::new();
    st.apply(&event(("main.a", 10, 0x500), 0xa000, 1, 50));
    st.apply(&event(("main.b", 20, 0x600), 0xb000, 2, 50));
    let size = |len, cap, bytes| MapSize {
        len,
        cap,
        bytes,
        shape: MapShape::Hmap {
            buckets: cap / 8,
            overflow: 3,
            old_buckets: 0,
        },
    };
    let reading = |map, size: Option<MapSize>| MapMemory {
        ts_ns: 0,
        pid: 1,
        map,
        map_type: "map[int64]int".into(),
        size,
        gone: size.is_none().then_some("header unreadable"),
    };
    // A map not in the table is ignored.
    st.map_memory(&reading(0xc000, Some(size(1, 8, 200))));
    st.map_memory(&reading(0xa000, Some(size(100_000, 131_072, 4 << 20))));
    st.map_memory(&reading(0xa000, Some(size(10, 131_072, 4 << 20))));
    st.map_memory(&reading(0xb000, Some(size(6, 8, 300))));
    assert_eq!(st.map_bytes(), (4 << 20) + 300);

    let (mut lines, _) = st.map_lines(&Filter::new(""), 51);
    let fill = Sort {
        column: Column::Fill,
        reversed: false,
    };
    sort_maps(&mut lines, fill);
    assert_eq!(lines[0].addr, 0xa000, "the emptiest first");
    assert_eq!(lines[0].fill_text(), "0.0%!");
    assert_eq!(lines[0].cap_text(), "131,072");
    assert_eq!(lines[0].bytes_text(), "4MiB");
    assert_eq!(lines[1].fill_text(), "75.0%");

    let detail = st
        .map_detail((0xa000, type_hash("map[int64]int")), 51)
        .unwrap();
    let memory = &detail.facts.iter().find(|(k, _)| k == "memory").unwrap().1;
    assert_eq!(
        memory,
        "cap 131,072 slots · 4MiB · fill 0.0% (bloated) · 16,384 buckets, 3 overflow · first read: len 100,000, cap 131,072, 4MiB"
    );
    // Gone: out of the total, shown as such.
    st.map_memory(&reading(0xa000, None));
    assert_eq!(st.map_bytes(), 300);
    let (lines, _) = st.map_lines(&Filter::new(""), 51);
    let a = lines.iter().find(|l| l.addr == 0xa000).unwrap();
    assert_eq!(a.fill_text(), "–");
    let detail = st
        .map_detail((0xa000, type_hash("map[int64]int")), 51)
        .unwrap();
    let memory = &detail.facts.iter().find(|(k, _)| k == "memory").unwrap().1;
    assert!(memory.ends_with("now gone (header unreadable)"), "{memory}");
}
