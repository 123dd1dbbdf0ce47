//! Rendering tests of the terminal UI: a fixed sequence of synthetic
//! events, drawn with ratatui's `TestBackend`. Each view shows the right
//! rows, numbers, sort order and filter result; the layout holds at 80x24
//! and 200x60; NO_COLOR draws no colour. Alerts come from a synthetic
//! alert board: a banner while one fires, and the Alerts view.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mdt::events::{Event, Frame, KeyValue, Outcome, Role, Stack};
use mdt::monitor::alerts::{rule, AlertBoard, Dim, Notice, Rule, State, TopStack};
use mdt::process::launch::ExitStatus;
use mdt::tui::app::{App, Effect, Ended, TargetInfo, Totals};
use mdt::tui::input;
use mdt::tui::state::Stats;
use mdt::tui::state::View;
use mdt::tui::view::{self, Theme};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;

/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000;
const NS: u64 = 1_000_000_000;

struct Site {
    stack: Stack,
    /// Names the stack, as the kernel's hash of its addresses would.
    stack_id: u64,
    caller: usize,
    func: &'static str,
}

fn site(runtime: &'static str, frames: Vec<Frame>) -> Site {
    let mut stack = vec![Frame::new(
        runtime,
        "/go/src/runtime/map.go",
        700,
        0x40_1000,
        false,
    )];
    stack.extend(frames);
    stack.push(Frame::new(
        "main.main",
        "/src/app/main.go",
        10,
        0x40_9000,
        false,
    ));
    let addrs: Vec<u64> = stack.iter().map(|f| f.addr).collect();
    let stack_id = mdt::probes::record::stack_hash(&addrs);
    let stack = Stack::from(stack);
    let caller = mdt::events::find_caller(&stack).unwrap();
    Site {
        stack,
        stack_id,
        caller,
        func: runtime,
    }
}

#[allow(clippy::too_many_arguments)]
fn ev(
    s: &Site,
    kind: Role,
    sec: u64,
    n: u64,
    map: u64,
    map_type: &str,
    key: KeyValue,
    len: u64,
) -> Event {
    Event {
        kind,
        ts_ns: (T0 + sec) * NS + n * 1_000_000,
        tick: 0,
        pid: 4242,
        tid: 4243,
        goid: Some(17 + n % 3),
        func: s.func,
        map,
        map_type_ptr: 0x4e_0000,
        map_type: map_type.into(),
        key_type: match &key {
            KeyValue::Str(_) => "string".into(),
            _ => "int64".into(),
        },
        key,
        key_hex: None,
        key_truncated: false,
        map_len: len,
        map_cap: None,
        cleared: (kind == Role::Clear).then_some(5),
        stack: s.stack.clone(),
        caller: Some(s.caller),
        stack_lost: false,
        stack_truncated: false,
        stack_id: s.stack_id,
        labels: None,
        outcome: None,
    }
}

/// The fixed sequence:
/// - `main.(*Cache).evict cache.go:42`: 30 deletes from map 0xc000100000
///   (main.UserMap; keys k0..k29; 10 at T0, 10 at T0+1, 10 at T0+2) and 3
///   from 0xc000400000 (main.UserMap, at T0+2): 33;
/// - `main.cleanup jobs.go:88`: 12 deletes + 1 clear of 0xc000200000
///   (map[int64]*main.Job, at T0+1): 13;
/// - `main.handle server.go:120`, through an inlined `maps.DeleteFunc`: 5
///   deletes from 0xc000300000 (map[string]int, keys "s0".."s4", at T0+2).
///
/// 51 records; at T0+3 the rates (last complete second) are 13, 0 and 5.
///
/// Outcomes (the exit probes armed for some calls only):
/// - the 20 evict deletes of 0xc000100000 at T0+1 and T0+2 (k10..k29):
///   every other key absent (10 removed, 10 absent: ABSENT 50%); 800 ns
///   each but 1.5 µs for k10, k15, k20, k25 and 3 ms for k29: p50 in the
///   ≤1µs bucket, p90 ≤2µs, p99 ≤5ms;
/// - the clear of 0xc000200000: 20 µs (no delete measured: ABSENT –);
/// - nothing else (main.handle, 0xc000400000: all –).
fn events() -> Vec<Event> {
    let cache = site(
        "runtime.mapdelete_faststr",
        vec![Frame::new(
            "main.(*Cache).evict",
            "/src/app/cache.go",
            42,
            0x40_2000,
            false,
        )],
    );
    let jobs = site(
        "runtime.mapdelete_fast64",
        vec![Frame::new(
            "main.cleanup",
            "/src/app/jobs.go",
            88,
            0x40_3000,
            false,
        )],
    );
    let jobs_clear = site(
        "runtime.mapclear",
        vec![Frame::new(
            "main.cleanup",
            "/src/app/jobs.go",
            88,
            0x40_3010,
            false,
        )],
    );
    let handle = site(
        "runtime.mapdelete_faststr",
        vec![
            Frame::new(
                "maps.DeleteFunc[...]",
                "/go/src/maps/maps.go",
                64,
                0x40_4000,
                true,
            ),
            Frame::new("main.handle", "/src/app/server.go", 120, 0x40_4000, false),
        ],
    );
    let mut out = Vec::new();
    for i in 0..30u64 {
        let key = KeyValue::Str(format!("k{i}"));
        let mut e = ev(
            &cache,
            Role::Delete,
            i / 10,
            i,
            0xc000100000,
            "main.UserMap",
            key,
            100 - i,
        );
        if i >= 10 {
            e.outcome = Some(Outcome {
                duration_ns: match i {
                    29 => 3_000_000,
                    _ if i % 5 == 0 => 1_500,
                    _ => 800,
                },
                removed: Some(i % 2 == 0),
            });
        }
        out.push(e);
        if i == 15 {
            for j in 0..12u64 {
                let key = KeyValue::Int(1000 + j as i64);
                out.push(ev(
                    &jobs,
                    Role::Delete,
                    1,
                    j,
                    0xc000200000,
                    "map[int64]*main.Job",
                    key,
                    20 - j,
                ));
            }
            let mut clear = ev(
                &jobs_clear,
                Role::Clear,
                1,
                13,
                0xc000200000,
                "map[int64]*main.Job",
                KeyValue::None,
                5,
            );
            clear.outcome = Some(Outcome {
                duration_ns: 20_000,
                removed: None,
            });
            out.push(clear);
        }
    }
    for i in 0..3u64 {
        let key = KeyValue::Str(format!("u{i}"));
        out.push(ev(
            &cache,
            Role::Delete,
            2,
            50 + i,
            0xc000400000,
            "main.UserMap",
            key,
            9,
        ));
    }
    for i in 0..5u64 {
        let key = KeyValue::Str(format!("s{i}"));
        out.push(ev(
            &handle,
            Role::Delete,
            2,
            60 + i,
            0xc000300000,
            "map[string]int",
            key,
            7,
        ));
    }
    out
}

fn stats() -> Stats {
    let mut st = Stats::new();
    for e in events() {
        st.apply(&e);
    }
    st
}

fn app() -> App {
    App::new(TargetInfo {
        pid: 4242,
        binary: "/srv/api/bin/api-server".into(),
        container: None,
        go_version: "go1.24.11".into(),
        map_impl: "swiss".into(),
        sample_rate: 1.0,
        latency: None,
        attached_ns: T0 * NS - 65 * NS,
    })
}

const NOW: u64 = (T0 + 3) * NS + 500_000_000;

fn exact() -> Option<Totals> {
    Some(Totals {
        deletes: 50,
        clears: 1,
        lost: 0,
        sampled_out: 0,
    })
}

fn draw(app: &mut App, w: u16, h: u16, theme: Theme) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| view::draw(f, app, &theme)).unwrap();
    term.backend().buffer().clone()
}

fn lines(buf: &Buffer) -> Vec<String> {
    let area = buf.area;
    (0..area.height)
        .map(|y| {
            (0..area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect()
}

fn screen(app: &mut App, w: u16, h: u16) -> Vec<String> {
    lines(&draw(app, w, h, Theme { color: false }))
}

fn press(app: &mut App, code: KeyCode) -> Effect {
    let cmd = input::command(KeyEvent::new(code, KeyModifiers::NONE), app.mode())
        .unwrap_or_else(|| panic!("no command for {code:?}"));
    app.apply(cmd)
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

/// The table rows on screen: the lines after the column header line.
fn rows(screen: &[String], header: &str) -> Vec<String> {
    let at = screen
        .iter()
        .position(|l| l.contains(header) && !l.contains("sort "))
        .unwrap_or_else(|| panic!("no header {header:?} in\n{}", screen.join("\n")));
    screen[at + 1..]
        .iter()
        .take_while(|l| !l.trim().is_empty() && !l.contains('┌'))
        .filter(|l| !l.starts_with(" q quit") && !l.starts_with(" q ? "))
        .cloned()
        .collect()
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn dump(s: &[String]) -> String {
    s.join("\n")
}

#[test]
fn callers_view_rows_numbers_and_default_order() {
    let st = stats();
    let mut app = app();
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 80, 24);
    let text = dump(&s);
    // Header: target, totals, rate.
    assert!(
        s[0].contains("pid 4242") && s[0].contains("go1.24.11") && s[0].contains("swiss"),
        "{text}"
    );
    assert!(s[0].contains("attached 00:01:08"), "{text}");
    assert!(!s[0].contains("container"), "not in one: {text}");
    assert!(
        s[1].contains("deletes 50") && s[1].contains("clears 1"),
        "{text}"
    );
    assert!(
        s[1].contains("lost 0") && s[1].contains("sampling 100%"),
        "{text}"
    );
    assert!(s.iter().any(|l| l.contains("3/3")), "{text}");
    // 80 columns: every column but MAPS and P50; the caller in full, the
    // map types in what is left.
    let header = s.iter().find(|l| l.contains("TOTAL▼")).unwrap();
    assert_eq!(
        words(header),
        ["TOTAL▼", "RATE/s", "SHARE", "ABSENT", "P99", "CALLER", "MAP", "TYPES"],
        "{text}"
    );
    let r = rows(&s, "TOTAL");
    assert_eq!(r.len(), 3, "{text}");
    assert_eq!(
        words(&r[0]),
        [
            "33",
            "13",
            "64.7%",
            "50%",
            "5ms",
            "main.(*Cache).evict",
            "cache.go:42",
            "main.UserM"
        ],
        "{text}"
    );
    assert_eq!(
        words(&r[1]),
        [
            "13",
            "0",
            "25.5%",
            "–",
            "20µs",
            "main.cleanup",
            "jobs.go:88",
            "map[int64]"
        ],
        "{text}"
    );
    assert_eq!(
        words(&r[2]),
        [
            "5",
            "5",
            "9.8%",
            "–",
            "–",
            "main.handle",
            "server.go:120",
            "map[string"
        ],
        "{text}"
    );
    // The numbers are flush right under their titles.
    for (title, cell, row) in [("ABSENT", "50%", 0), ("P99", "5ms", 0), ("P99", "20µs", 1)] {
        assert_eq!(
            end_of(header, title),
            end_of(&r[row], cell),
            "{title}:\n{text}"
        );
    }
    // 200 columns: every column, every name in full.
    let s = screen(&mut app, 200, 60);
    let text = dump(&s);
    let header = s.iter().find(|l| l.contains("TOTAL▼")).unwrap();
    assert_eq!(
        words(header),
        ["TOTAL▼", "RATE/s", "SHARE", "MAPS", "ABSENT", "P50", "P99", "CALLER", "MAP", "TYPES"],
        "{text}"
    );
    let r = rows(&s, "TOTAL");
    assert_eq!(
        words(&r[0]),
        [
            "33",
            "13",
            "64.7%",
            "2",
            "50%",
            "1µs",
            "5ms",
            "main.(*Cache).evict",
            "cache.go:42",
            "main.UserMap"
        ],
        "{text}"
    );
    assert_eq!(
        words(&r[1]),
        [
            "13",
            "0",
            "25.5%",
            "1",
            "–",
            "20µs",
            "20µs",
            "main.cleanup",
            "jobs.go:88",
            "map[int64]*main.Job"
        ],
        "{text}"
    );
    assert_eq!(
        words(&r[2]),
        [
            "5",
            "5",
            "9.8%",
            "1",
            "–",
            "–",
            "–",
            "main.handle",
            "server.go:120",
            "map[string]int"
        ],
        "{text}"
    );
    for (title, cell, row) in [("ABSENT", "50%", 0), ("P50", "1µs", 0), ("P99", "5ms", 0)] {
        assert_eq!(
            end_of(header, title),
            end_of(&r[row], cell),
            "{title}:\n{text}"
        );
    }
}

/// The screen column just after the first `needle` in `line`.
fn end_of(line: &str, needle: &str) -> usize {
    let at = line
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in {line:?}"));
    line[..at + needle.len()].chars().count()
}

/// The caller's function on a row of the Callers view.
fn caller_of(line: &str) -> String {
    words(line)
        .into_iter()
        .find(|w| w.starts_with("main."))
        .unwrap_or_else(|| panic!("no caller in {line:?}"))
        .to_string()
}

#[test]
fn narrower_terminals_drop_p50_then_maps_and_keep_the_callers_whole() {
    let st = stats();
    let mut app = app();
    app.refresh(&st, exact(), NOW);
    for w in 80..=200u16 {
        let s = screen(&mut app, w, 24);
        let text = dump(&s);
        let header = words(s.iter().find(|l| l.contains("TOTAL▼")).unwrap()).join(" ");
        let want = if w >= 92 {
            "TOTAL▼ RATE/s SHARE MAPS ABSENT P50 P99 CALLER MAP TYPES"
        } else if w >= 86 {
            "TOTAL▼ RATE/s SHARE MAPS ABSENT P99 CALLER MAP TYPES"
        } else {
            "TOTAL▼ RATE/s SHARE ABSENT P99 CALLER MAP TYPES"
        };
        assert_eq!(header, want, "{w}:\n{text}");
        let r = rows(&s, "TOTAL");
        assert!(
            r[0].contains(" 50% ") && r[0].contains(" main.(*Cache).evict cache.go:42 "),
            "{w}:\n{text}"
        );
    }
}

#[test]
fn s_cycles_the_sort_column_and_r_reverses_it() {
    let st = stats();
    let mut app = app();
    let order = |app: &mut App| -> Vec<String> {
        app.refresh(&st, exact(), NOW);
        rows(&screen(app, 80, 24), "CALLER")
            .iter()
            .map(|l| caller_of(l))
            .collect()
    };
    assert_eq!(
        order(&mut app),
        ["main.(*Cache).evict", "main.cleanup", "main.handle"]
    );
    press(&mut app, KeyCode::Char('s')); // rate
    let s = screen(&mut app, 80, 24);
    assert!(s.iter().any(|l| l.contains("RATE/s▼")), "{}", dump(&s));
    assert_eq!(
        order(&mut app),
        ["main.(*Cache).evict", "main.handle", "main.cleanup"]
    );
    press(&mut app, KeyCode::Char('r'));
    assert_eq!(
        order(&mut app),
        ["main.cleanup", "main.handle", "main.(*Cache).evict"]
    );
    press(&mut app, KeyCode::Char('s')); // share
    press(&mut app, KeyCode::Char('s')); // maps
    press(&mut app, KeyCode::Char('s')); // absent: the measured rows first
    let s = screen(&mut app, 80, 24);
    // No room for its arrow: the tabs say it.
    assert!(s.iter().any(|l| l.contains(" ABSENT ")), "{}", dump(&s));
    assert!(
        s.iter().any(|l| l.contains("sort ABSENT ▼")),
        "{}",
        dump(&s)
    );
    assert_eq!(order(&mut app)[0], "main.(*Cache).evict");
    press(&mut app, KeyCode::Char('s')); // p50
    press(&mut app, KeyCode::Char('s')); // p99: 5ms, 20µs, –
    let s = screen(&mut app, 80, 24);
    assert!(s.iter().any(|l| l.contains("P99▼")), "{}", dump(&s));
    assert_eq!(
        order(&mut app),
        ["main.(*Cache).evict", "main.cleanup", "main.handle"]
    );
    press(&mut app, KeyCode::Char('r')); // the unmeasured first
    assert_eq!(
        order(&mut app),
        ["main.handle", "main.cleanup", "main.(*Cache).evict"]
    );
    press(&mut app, KeyCode::Char('s')); // caller, A to Z
    let s = screen(&mut app, 80, 24);
    assert!(s.iter().any(|l| l.contains("CALLER▲")), "{}", dump(&s));
    assert_eq!(
        order(&mut app),
        ["main.(*Cache).evict", "main.cleanup", "main.handle"]
    );
    press(&mut app, KeyCode::Char('r'));
    assert_eq!(
        order(&mut app),
        ["main.handle", "main.cleanup", "main.(*Cache).evict"]
    );
}

#[test]
fn maps_view_shows_type_len_counts_and_top_caller() {
    let mut st = stats();
    // Readings of two maps' memory: one large and nearly empty (bloated), one gone.
    use mdt::events::mapmem::{MapMemory, MapShape, MapSize};
    let reading = |map: u64, map_type: &str, size: Option<MapSize>| MapMemory {
        ts_ns: T0 * NS,
        pid: 4242,
        map,
        map_type: map_type.into(),
        size,
        gone: size.is_none().then_some("header unreadable"),
    };
    let big = MapSize {
        len: 71,
        cap: 131_072,
        bytes: 2_233_392,
        shape: MapShape::Swiss {
            tables: 128,
            directory: 128,
            tombstones: 500,
        },
    };
    st.map_memory(&reading(0xc000100000, "main.UserMap", Some(big)));
    st.map_memory(&reading(0xc000200000, "map[int64]*main.Job", Some(big)));
    st.map_memory(&reading(0xc000200000, "map[int64]*main.Job", None));
    let mut app = app();
    press(&mut app, KeyCode::Char('2'));
    assert_eq!(app.view, View::Maps);
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 150, 30);
    let text = dump(&s);
    let r = rows(&s, "MAP TYPE");
    assert_eq!(r.len(), 4, "{text}");
    assert!(
        s[1].contains("maps hold 2.1MiB"),
        "the header's total of the maps read (the gone one left out): {text}"
    );
    // MAP, TYPE, LEN, CAP, BYTES, FILL (! bloated), DELETES, RATE/s, CLEARS, ABSENT, P50,
    // P99, TOP CALLER (by deletes).
    assert_eq!(
        words(&r[0]),
        [
            "0xc000100000",
            "main.UserMap",
            "71",
            "131,072",
            "2.1MiB",
            "0.1%!",
            "30",
            "10",
            "0",
            "50%",
            "1µs",
            "5ms",
            "main.(*Cache).evict",
            "cache.go:42"
        ],
        "{text}"
    );
    assert_eq!(
        words(&r[1]),
        [
            "0xc000200000",
            "map[int64]*main.Job",
            "0",
            "–",
            "–",
            "–",
            "12",
            "0",
            "1",
            "–",
            "20µs",
            "20µs",
            "main.cleanup",
            "jobs.go:88"
        ],
        "{text}"
    );
    assert_eq!(
        words(&r[2])[..12],
        [
            "0xc000300000",
            "map[string]int",
            "7",
            "–",
            "–",
            "–",
            "5",
            "5",
            "0",
            "–",
            "–",
            "–"
        ]
    );
    // The same caller, another map: none of its deletes measured.
    assert_eq!(
        words(&r[3])[..12],
        [
            "0xc000400000",
            "main.UserMap",
            "9",
            "–",
            "–",
            "–",
            "3",
            "3",
            "0",
            "–",
            "–",
            "–"
        ]
    );
    // 80 columns: P50, CLEARS, LEN, CAP and BYTES go first; FILL (and its mark) stays.
    let s = screen(&mut app, 80, 24);
    let text = dump(&s);
    let header = s.iter().find(|l| l.contains("DELETES▼")).unwrap();
    assert_eq!(
        words(header),
        [
            "MAP",
            "MAP",
            "TYPE",
            "FILL",
            "DELETES▼",
            "RATE/s",
            "ABSENT",
            "P99",
            "TOP",
            "CALLER"
        ],
        "{text}"
    );
    let r = rows(&s, "DELETES");
    assert_eq!(
        words(&r[0])[..7],
        [
            "0xc000100000",
            "main.UserMap",
            "0.1%!",
            "30",
            "10",
            "50%",
            "5ms"
        ],
        "{text}"
    );
    assert_eq!(
        words(&r[1])[..7],
        [
            "0xc000200000",
            "map[int64]*main",
            "–",
            "12",
            "0",
            "–",
            "20µs"
        ],
        "{text}"
    );
    assert_eq!(end_of(header, "P99"), end_of(&r[1], "20µs"), "{text}");
    // Tab goes on to the Events view, Shift-Tab back.
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view, View::Events);
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, View::Maps);
}

#[test]
fn events_view_lists_the_newest_first() {
    let st = stats();
    let mut app = app();
    press(&mut app, KeyCode::Char('3'));
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 100, 24);
    let text = dump(&s);
    let r = rows(&s, "TIME (UTC)");
    assert!(r.len() >= 10, "{text}");
    // The last event: main.handle deleting "s4" at T0+2 (+64 ms).
    assert_eq!(
        words(&r[0]),
        [
            "22:13:22.064",
            "18",
            "map[string]int",
            "\"s4\"",
            "main.handle",
            "server.go:120"
        ],
        "{text}"
    );
    assert!(words(&r[1]).contains(&"\"s3\""), "{text}");
    assert!(s.iter().any(|l| l.contains("51/51")), "{text}");
    // The clear shows as such.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "Job");
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 100, 24);
    assert!(s.iter().any(|l| l.contains("clear(5)")), "{}", dump(&s));
    assert!(s.iter().any(|l| l.contains("13/51")), "{}", dump(&s));
}

#[test]
fn slash_filters_rows_by_function_file_map_type_and_key() {
    let st = stats();
    let mut app = app();
    let callers = |app: &mut App| -> Vec<String> {
        app.refresh(&st, exact(), NOW);
        rows(&screen(app, 80, 24), "CALLER")
            .iter()
            .map(|l| caller_of(l))
            .collect()
    };
    app.refresh(&st, exact(), NOW);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "jobs.go"); // file
    assert_eq!(callers(&mut app), ["main.cleanup"]);
    let s = screen(&mut app, 80, 24);
    assert!(
        s.iter()
            .any(|l| l.contains("/jobs.go") && l.contains("1/3")),
        "{}",
        dump(&s)
    );
    // Esc while editing clears the filter (it does not quit).
    assert_eq!(press(&mut app, KeyCode::Esc), Effect::None);
    assert!(app.filter.is_empty() && !app.editing);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "usermap"); // map type, smart case
    assert_eq!(callers(&mut app), ["main.(*Cache).evict"]);
    for _ in 0.."usermap".len() {
        press(&mut app, KeyCode::Backspace);
    }
    type_text(&mut app, "s3"); // a key
    press(&mut app, KeyCode::Enter);
    assert!(!app.editing);
    assert_eq!(callers(&mut app), ["main.handle"]);
    // The filter applies to the Maps view too.
    press(&mut app, KeyCode::Char('2'));
    app.refresh(&st, exact(), NOW);
    let r = rows(&screen(&mut app, 80, 24), "MAP TYPE");
    assert_eq!(r.len(), 1);
    assert!(r[0].starts_with("0xc000300000"));
    // Nothing matches: say so.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "zzz");
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 80, 24);
    assert!(
        s.iter().any(|l| l.contains("no rows match /s3zzz")),
        "{}",
        dump(&s)
    );
}

#[test]
fn enter_opens_the_detail_with_the_stack_keys_and_chart() {
    let st = stats();
    let mut app = app();
    app.refresh(&st, exact(), NOW);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down); // main.handle
    press(&mut app, KeyCode::Enter);
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 80, 24);
    let text = dump(&s);
    assert!(
        text.contains("main.handle /src/app/server.go:120"),
        "{text}"
    );
    assert!(text.contains("\"s4\""), "{text}");
    assert!(text.contains("maps.DeleteFunc[...] [inlined]"), "{text}");
    assert!(text.contains("▶ main.handle"), "{text}");
    assert!(text.contains("rate/s"), "{text}");
    // The selection follows its row when the order changes.
    press(&mut app, KeyCode::Char('r'));
    app.refresh(&st, exact(), NOW);
    assert_eq!(app.selected(), 0);
    // Esc closes the detail, then quits.
    assert_eq!(press(&mut app, KeyCode::Esc), Effect::None);
    assert!(!app.detail_open);
    assert_eq!(press(&mut app, KeyCode::Esc), Effect::Quit);
    assert_eq!(press(&mut app, KeyCode::Char('q')), Effect::Quit);
}

#[test]
fn the_detail_shows_the_latency_distribution_and_the_outcomes() {
    let st = stats();
    // (rows down, the lines of its latency section)
    let cases: [(usize, &[&str]); 2] = [
        (
            0, // main.(*Cache).evict: ≤1µs 15, ≤2µs 4, ≤5ms 1
            &[
                "│latency 20 measured · p50 ≤1µs · p90 ≤2µs · p99 ≤5ms ",
                "│        500ns ██▃▃                  ▁▁ 5ms  peak 15 ",
                "│outcome 10 removed · 10 key absent (50%) ",
            ],
        ),
        (
            1, // main.cleanup: its clear only (no delete measured: no outcome)
            &[
                "│latency 1 measured · p50 ≤20µs · p90 ≤20µs · p99 ≤20µs ",
                "│        10µs ██ 20µs  peak 1 ",
                "│keys    clear(5)  1011",
            ],
        ),
    ];
    for (down, want) in cases {
        let mut app = app();
        app.refresh(&st, exact(), NOW);
        for _ in 0..down {
            press(&mut app, KeyCode::Down);
        }
        press(&mut app, KeyCode::Enter);
        app.refresh(&st, exact(), NOW);
        for (w, h) in [(80u16, 24u16), (200, 60)] {
            let s = screen(&mut app, w, h);
            let text = dump(&s);
            let at = s
                .iter()
                .position(|l| l.contains("│latency "))
                .unwrap_or_else(|| panic!("no latency {w}x{h}:\n{text}"));
            for (i, line) in want.iter().enumerate() {
                assert!(s[at + i].contains(line), "{line:?} {w}x{h}:\n{text}");
            }
            // Right under the rate chart, the stack still shown.
            assert!(s[at - 1].contains("│rate/s "), "{w}x{h}:\n{text}");
            assert!(text.contains("▶ main."), "{w}x{h}:\n{text}");
        }
    }
    // main.handle: never measured; on two lines when one does not fit.
    let mut app = app();
    app.refresh(&st, exact(), NOW);
    press(&mut app, KeyCode::End);
    press(&mut app, KeyCode::Enter);
    app.refresh(&st, exact(), NOW);
    let text = dump(&screen(&mut app, 200, 60));
    assert!(
        text.contains(
            "│latency not measured (run with --latency, or wait for a --latency-sample window) "
        ),
        "{text}"
    );
    let s = screen(&mut app, 80, 24);
    let at = s.iter().position(|l| l.contains("│latency ")).unwrap();
    assert!(s[at].contains("│latency not measured "), "{}", dump(&s));
    assert!(
        s[at + 1].contains("│        (run with --latency, or wait for a --latency-sample window) "),
        "{}",
        dump(&s)
    );
    // An event says what its call did, when it was measured.
    let mut app = crate::app();
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "k29");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Enter);
    app.refresh(&st, exact(), NOW);
    let text = dump(&screen(&mut app, 80, 24));
    assert!(text.contains("│outcome key absent · 3ms "), "{text}");
    press(&mut app, KeyCode::Char('/'));
    for _ in 0.."k29".len() {
        press(&mut app, KeyCode::Backspace);
    }
    type_text(&mut app, "s4");
    press(&mut app, KeyCode::Enter);
    app.refresh(&st, exact(), NOW);
    let text = dump(&screen(&mut app, 80, 24));
    assert!(
        text.contains("│outcome not measured (the exit probes were not armed) "),
        "{text}"
    );
}

#[test]
fn layout_holds_at_80x24_and_uses_200x60() {
    let st = stats();
    for view in ['1', '2', '3'] {
        for detail in [false, true] {
            let mut app = app();
            press(&mut app, KeyCode::Char(view));
            if detail {
                press(&mut app, KeyCode::Enter);
            }
            app.ended = Some(Ended::Exited(Some(ExitStatus::Code(0))));
            app.refresh(&st, exact(), NOW);
            for (w, h) in [(80u16, 24u16), (200, 60)] {
                let s = screen(&mut app, w, h);
                let text = dump(&s);
                assert_eq!(s.len(), h as usize);
                assert!(s[1].contains("deletes 50"), "{w}x{h}:\n{text}");
                assert!(
                    text.contains("process exited (status 0)"),
                    "{w}x{h}:\n{text}"
                );
                assert!(s[h as usize - 1].contains("? help"), "{w}x{h}:\n{text}");
                assert!(
                    text.contains("1 Callers") && text.contains("3 Events"),
                    "{w}x{h}:\n{text}"
                );
                if detail && w == 200 {
                    // Side by side: the detail's border starts right of the middle.
                    let top = s.iter().find(|l| l.contains('┌')).unwrap();
                    let col = top.chars().position(|c| c == '┌').unwrap();
                    assert!(col > 100, "{text}");
                }
                if !detail {
                    // A large terminal shows every row; a small one as many as fit.
                    let n = match view {
                        '1' => 3,
                        '2' => 4,
                        _ => 51,
                    };
                    let header = ["TOTAL", "DELETES", "TIME"]["123".find(view).unwrap()];
                    let shown = rows(&s, header).len();
                    assert_eq!(shown, n.min(h as usize - 7), "{w}x{h} view {view}:\n{text}");
                }
            }
        }
    }
}

#[test]
fn tiny_terminals_do_not_break_the_layout() {
    let st = stats();
    for (w, h) in [(1u16, 1u16), (10, 3), (20, 5), (40, 10), (80, 8)] {
        for keys in ["", "\n", "?", "2\n", "3\n", "/x"] {
            let mut app = app();
            app.ended = Some(Ended::Exited(None));
            app.refresh(&st, exact(), NOW);
            for c in keys.chars() {
                press(
                    &mut app,
                    if c == '\n' {
                        KeyCode::Enter
                    } else {
                        KeyCode::Char(c)
                    },
                );
            }
            app.refresh(&st, exact(), NOW);
            let s = screen(&mut app, w, h);
            assert_eq!(s.len(), h as usize);
        }
    }
}

#[test]
fn no_color_draws_without_colour_and_lost_events_warn() {
    let st = stats();
    let mut app = app();
    let lost = Some(Totals {
        deletes: 50,
        clears: 1,
        lost: 7,
        sampled_out: 0,
    });
    app.refresh(&st, lost, NOW);
    let mono = draw(&mut app, 80, 24, Theme { color: false });
    assert!(mono
        .content
        .iter()
        .all(|c| c.fg == Color::Reset && c.bg == Color::Reset));
    let color = draw(&mut app, 80, 24, Theme { color: true });
    let l = lines(&color);
    let x = l[1].find("lost 7").expect("lost shown") + "lost ".len();
    let x = l[1][..x].chars().count() as u16;
    assert_eq!(color[(x, 1)].symbol(), "7");
    assert_eq!(
        color[(x, 1)].fg,
        Color::Yellow,
        "lost events in the warning colour"
    );
}

#[test]
fn the_header_says_when_latency_is_measured() {
    let st = stats();
    for (latency, want) in [
        (None, None),
        (Some(0.01), Some("latency 1% of the time")),
        (Some(1.0), Some("latency on")),
    ] {
        let mut app = app();
        app.info.latency = latency;
        app.refresh(&st, exact(), NOW);
        let s = screen(&mut app, 80, 24);
        match want {
            Some(text) => assert!(s[1].contains(text), "{latency:?}:\n{}", dump(&s)),
            None => assert!(!s[1].contains("latency"), "{}", dump(&s)),
        }
    }
}

#[test]
fn pause_freezes_the_rows_while_the_totals_go_on() {
    let mut st = stats();
    let mut app = app();
    press(&mut app, KeyCode::Char('3'));
    app.refresh(&st, exact(), NOW);
    press(&mut app, KeyCode::Char(' '));
    app.refresh(&st, exact(), NOW);
    let before = rows(&screen(&mut app, 100, 24), "TIME");
    // More events arrive.
    let mut more = events()[0].clone();
    more.key = KeyValue::Str("late".into());
    more.ts_ns = (T0 + 3) * NS;
    st.apply(&more);
    let later = Some(Totals {
        deletes: 51,
        clears: 1,
        lost: 0,
        sampled_out: 0,
    });
    app.refresh(&st, later, NOW);
    let s = screen(&mut app, 100, 24);
    assert_eq!(rows(&s, "TIME"), before);
    assert!(s[1].contains("deletes 51"), "{}", dump(&s));
    assert!(s[1].contains("PAUSED"), "{}", dump(&s));
    press(&mut app, KeyCode::Char(' '));
    app.refresh(&st, later, NOW);
    let s = screen(&mut app, 100, 24);
    assert!(rows(&s, "TIME")[0].contains("\"late\""), "{}", dump(&s));
}

#[test]
fn c_resets_the_counters() {
    let mut st = stats();
    let mut app = app();
    app.refresh(&st, exact(), NOW);
    assert_eq!(press(&mut app, KeyCode::Char('c')), Effect::Reset);
    st.reset();
    app.reset();
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 80, 24);
    let text = dump(&s);
    assert!(
        s[1].contains("deletes 0") && s[1].contains("clears 0"),
        "{text}"
    );
    assert!(text.contains("waiting for map deletes"), "{text}");
    assert!(text.contains("counters reset"), "{text}");
}

#[test]
fn e_exports_folded_stacks_and_json_aggregates() {
    let st = stats();
    let mut app = app();
    app.refresh(&st, exact(), NOW);
    assert_eq!(press(&mut app, KeyCode::Char('e')), Effect::Export);
    let dir = tempfile::tempdir().unwrap();
    let (folded, json) = mdt::tui::export::write(dir.path(), &app, &st).unwrap();
    let folded = std::fs::read_to_string(folded).unwrap();
    assert!(
        folded.contains(
            "main.main;main.handle;maps.DeleteFunc[...]_[i];runtime.mapdelete_faststr 5\n"
        ),
        "{folded}"
    );
    assert!(
        folded.contains("main.main;main.(*Cache).evict;runtime.mapdelete_faststr 33\n"),
        "{folded}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(v["totals"]["deletes"], 50);
    assert_eq!(
        v["callers"][0]["caller"],
        "main.(*Cache).evict /src/app/cache.go:42"
    );
    assert_eq!(v["callers"][0]["total"], 33);
    // What the measured calls did and took (bucket bounds).
    assert_eq!(
        v["callers"][0]["outcomes"],
        serde_json::json!({
            "timed": 20, "removed": 10, "absent": 10, "absent_pct": 50.0,
            "p50_ns": 1000, "p99_ns": 5_000_000, "p50": "1µs", "p99": "5ms",
        })
    );
    assert_eq!(
        v["callers"][1]["outcomes"],
        serde_json::json!({
            "timed": 1, "removed": 0, "absent": 0, "absent_pct": null,
            "p50_ns": 20_000, "p99_ns": 20_000, "p50": "20µs", "p99": "20µs",
        })
    );
    assert_eq!(v["callers"][2]["outcomes"]["timed"], 0);
    assert_eq!(v["callers"][2]["outcomes"]["p99"], serde_json::Value::Null);
    assert_eq!(v["maps"].as_array().unwrap().len(), 4);
    assert_eq!(v["maps"][0]["outcomes"]["absent"], 10);
    assert_eq!(v["maps"][3]["outcomes"]["timed"], 0);
    // A second export the same second gets new names.
    let (f2, _) = mdt::tui::export::write(dir.path(), &app, &st).unwrap();
    assert!(f2.display().to_string().ends_with("-1.folded"));
}

#[test]
fn a_full_table_says_capped_in_the_header() {
    let mut st = stats();
    let mut e = events()[0].clone();
    for i in 0..mdt::bounded::Limits::default().rows as u64 {
        e.map = 0xd000_0000 + i * 64;
        st.apply(&e);
    }
    let mut app = app();
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 80, 24);
    assert!(s[2].contains("capped: maps"), "{}", dump(&s));
}

#[test]
fn help_lists_the_keys() {
    let st = stats();
    let mut app = app();
    press(&mut app, KeyCode::Char('?'));
    app.refresh(&st, exact(), NOW);
    let text = dump(&screen(&mut app, 80, 24));
    for k in [
        "quit",
        "switch view: Callers, Maps, Events, Alerts",
        "sort by the next column",
        "filter rows",
        "pause",
        "export",
    ] {
        assert!(text.contains(k), "{k}: {text}");
    }
    press(&mut app, KeyCode::Esc);
    assert!(!app.help);
}

#[test]
fn banner_when_the_target_exited_or_the_duration_passed() {
    let st = stats();
    let mut app = app();
    app.ended = Some(Ended::Exited(Some(ExitStatus::Code(3))));
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 80, 24);
    assert!(
        s[3].contains("process exited (status 3) · press q to quit"),
        "{}",
        dump(&s)
    );
    app.ended = Some(Ended::Duration(std::time::Duration::from_secs(30)));
    let s = screen(&mut app, 80, 24);
    assert!(s[3].contains("tracing stopped after 30s"), "{}", dump(&s));
}

// ---------------------------------------------------------------------------------------------
// Alerts

fn at(sec: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + sec)
}

#[allow(clippy::too_many_arguments)]
fn notice(
    state: State,
    rule: &Arc<Rule>,
    group: (Dim, &str),
    context: Vec<(&'static str, String)>,
    value: f64,
    sec: u64,
    fired_sec: u64,
    top_stacks: Vec<TopStack>,
) -> Arc<Notice> {
    Arc::new(Notice {
        state,
        ts: at(sec),
        rule: rule.clone(),
        group: (group.0, group.1.into()),
        context,
        value,
        exact: true,
        sample_rate: 1.0,
        fired_at: at(fired_sec),
        top_stacks,
        pid: 4242,
    })
}

fn count_rule() -> Arc<Rule> {
    Arc::new(rule::parse("count(map) > 100 within 5m").unwrap())
}

/// The synthetic alerts, posted in this order:
/// - T0+2: `rate(caller) > 1000/s within 30s` fires for `/src/app/jobs.go:88`
///   at 1,250/s;
/// - T0+3: `count(map) > 100 within 5m` fires for map 0xc000100000
///   (main.UserMap) at 150, with its top stack — and still fires;
/// - T0+4: the rate alert resolves at 12/s.
fn board() -> Arc<AlertBoard> {
    let count = count_rule();
    let rate = Arc::new(rule::parse("rate(caller) > 1000/s within 30s").unwrap());
    let b = AlertBoard::new();
    let caller = (Dim::Caller, "/src/app/jobs.go:88");
    let func = vec![("function", "main.cleanup".to_string())];
    b.post(notice(
        State::Firing,
        &rate,
        caller.clone(),
        func.clone(),
        1250.0,
        2,
        2,
        vec![],
    ));
    b.post(notice(
        State::Firing,
        &count,
        (Dim::Map, "0xc000100000"),
        vec![("map_type", "main.UserMap".to_string())],
        150.0,
        3,
        3,
        vec![TopStack {
            count: 120,
            caller: "main.(*Cache).evict /src/app/cache.go:42".into(),
            frames: vec![
                "main.(*Cache).evict /src/app/cache.go:42".into(),
                "main.main /src/app/main.go:10".into(),
            ],
        }],
    ));
    b.post(notice(
        State::Resolved,
        &rate,
        caller,
        func,
        12.0,
        4,
        2,
        vec![],
    ));
    b
}

fn alerting_app() -> App {
    app().with_alerts(Some(board()))
}

#[test]
fn a_firing_alert_shows_a_banner_at_80x24_and_200x60() {
    let st = stats();
    let mut app = alerting_app();
    app.refresh(&st, exact(), NOW);
    for (w, h) in [(80u16, 24u16), (200, 60)] {
        let s = screen(&mut app, w, h);
        let text = dump(&s);
        assert_eq!(s.len(), h as usize);
        // Right under the header, before the tabs.
        assert!(
            s[3].starts_with(
                " ALERT: count(map) > 100 within 5m — map 0xc000100000 (main.UserMap) = 150 "
            ),
            "{w}x{h}:\n{text}"
        );
        assert!(
            s[4].contains("1 Callers") && s[4].contains("4 Alerts (1)"),
            "{w}x{h}:\n{text}"
        );
        // The Callers view still shows every row under the banner.
        assert_eq!(rows(&s, "TOTAL").len(), 3, "{w}x{h}:\n{text}");
        assert!(s[h as usize - 1].contains("4 alerts"), "{w}x{h}:\n{text}");
        assert!(s[h as usize - 1].contains("? help"), "{w}x{h}:\n{text}");
    }
    // In the warning colour.
    let color = draw(&mut app, 80, 24, Theme { color: true });
    assert_eq!(color[(1, 3)].symbol(), "A");
    assert_eq!(color[(1, 3)].bg, Color::Yellow);
    assert_eq!(color[(79, 3)].bg, Color::Yellow, "the whole line");
    // NO_COLOR: no colour, still a banner.
    let mono = draw(&mut app, 80, 24, Theme { color: false });
    assert!(mono
        .content
        .iter()
        .all(|c| c.fg == Color::Reset && c.bg == Color::Reset));
}

#[test]
fn the_banner_goes_when_the_alert_resolves_and_counts_the_others() {
    let st = stats();
    let b = board();
    let mut app = app().with_alerts(Some(b.clone()));
    let count = count_rule();
    // A second map crosses the threshold: the newest is shown, and how many more.
    b.post(notice(
        State::Firing,
        &count,
        (Dim::Map, "0xc000400000"),
        vec![("map_type", "main.UserMap".to_string())],
        101.0,
        5,
        5,
        vec![],
    ));
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 200, 60);
    assert!(
        s[3].contains(
            "ALERT: count(map) > 100 within 5m — map 0xc000400000 (main.UserMap) = 101 (+1 more)"
        ),
        "{}",
        dump(&s)
    );
    assert!(s[4].contains("4 Alerts (2)"), "{}", dump(&s));
    // At 80 columns the banner loses the context first, never the value.
    let s = screen(&mut app, 80, 24);
    assert!(
        s[3].starts_with(" ALERT: count(map) > 100 within 5m — map 0xc000400000 = 101 (+1 more)"),
        "{}",
        dump(&s)
    );
    // Both resolve (the rule objects are the board's, as the evaluator's are).
    let active = b.active();
    for n in &active {
        b.post(Arc::new(Notice {
            state: State::Resolved,
            ts: at(6),
            value: 40.0,
            ..(**n).clone()
        }));
    }
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 80, 24);
    assert!(!dump(&s).contains("ALERT:"), "{}", dump(&s));
    assert!(s[3].contains("1 Callers"), "{}", dump(&s));
    assert!(s[3].contains("4 Alerts ") && !s[3].contains("Alerts ("));
    // The layout of a run without alerts: the Callers rows right under the tabs.
    assert_eq!(rows(&s, "TOTAL").len(), 3);
}

#[test]
fn the_alerts_view_lists_fired_and_resolved_alerts_at_80x24_and_200x60() {
    let st = stats();
    let mut app = alerting_app();
    press(&mut app, KeyCode::Char('4'));
    assert_eq!(app.view, View::Alerts);
    app.refresh(&st, exact(), NOW);
    for (w, h) in [(80u16, 24u16), (200, 60)] {
        let s = screen(&mut app, w, h);
        let text = dump(&s);
        assert_eq!(s.len(), h as usize);
        let header = s.iter().find(|l| l.contains("STATE")).unwrap();
        for c in ["TIME (UTC)▼", "STATE", "RULE", "GROUP", "VALUE"] {
            assert!(header.contains(c), "{c} {w}x{h}:\n{text}");
        }
        let r = rows(&s, "STATE");
        assert_eq!(r.len(), 3, "{w}x{h}:\n{text}");
        // Newest first: the resolution, the alert still firing, the alert
        // that was resolved.
        assert_eq!(
            words(&r[0])[..2],
            ["22:13:24", "resolved"],
            "{w}x{h}:\n{text}"
        );
        assert!(
            r[0].contains("rate(caller) > 1000/s within 30s"),
            "{w}x{h}:\n{text}"
        );
        assert!(r[0].contains("/src/app/jobs.go:"), "{w}x{h}:\n{text}");
        assert_eq!(words(&r[0]).last(), Some(&"12/s"), "{w}x{h}:\n{text}");
        assert_eq!(words(&r[2])[..2], ["22:13:22", "fired"], "{w}x{h}:\n{text}");
        assert_eq!(words(&r[2]).last(), Some(&"1,250/s"), "{w}x{h}:\n{text}");
        assert_eq!(
            words(&r[1])[..2],
            ["22:13:23", "firing"],
            "{w}x{h}:\n{text}"
        );
        assert!(
            r[1].contains("count(map) > 100 within 5m") && r[1].contains("0xc000100000"),
            "{w}x{h}:\n{text}"
        );
        assert_eq!(words(&r[1]).last(), Some(&"150"), "{w}x{h}:\n{text}");
        if w == 200 {
            assert!(
                r[1].contains("0xc000100000 · main.UserMap"),
                "{w}x{h}:\n{text}"
            );
            assert!(
                r[0].contains("/src/app/jobs.go:88 · main.cleanup"),
                "{w}x{h}:\n{text}"
            );
        }
        assert!(s.iter().all(|l| l.chars().count() == w as usize), "{w}x{h}");
    }
    // The alert that still fires stands out (when not selected).
    let color = draw(&mut app, 80, 24, Theme { color: true });
    let l = lines(&color);
    let y = l.iter().position(|l| l.contains("firing")).unwrap() as u16;
    assert_eq!(color[(1, y)].fg, Color::Yellow);
    // Sorted by value, largest first.
    press(&mut app, KeyCode::Char('s'));
    press(&mut app, KeyCode::Char('s'));
    press(&mut app, KeyCode::Char('s'));
    press(&mut app, KeyCode::Char('s'));
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 80, 24);
    let r = rows(&s, "STATE");
    let values: Vec<&str> = r.iter().map(|l| *words(l).last().unwrap()).collect();
    assert_eq!(values, ["1,250/s", "150", "12/s"], "{}", dump(&s));
}

#[test]
fn tab_cycles_through_the_five_views() {
    let mut app = alerting_app();
    let mut seen = Vec::new();
    for _ in 0..5 {
        press(&mut app, KeyCode::Tab);
        seen.push(app.view);
    }
    assert_eq!(
        seen,
        [
            View::Maps,
            View::Events,
            View::Alerts,
            View::Labels,
            View::Callers
        ]
    );
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, View::Labels);
    press(&mut app, KeyCode::Char('5'));
    assert_eq!(app.view, View::Labels);
}

#[test]
fn enter_on_an_alert_shows_its_rule_group_value_and_top_stack() {
    let st = stats();
    let mut app = alerting_app();
    press(&mut app, KeyCode::Char('4'));
    app.refresh(&st, exact(), NOW);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Enter);
    app.refresh(&st, exact(), NOW);
    for (w, h) in [(80u16, 24u16), (200, 60)] {
        let text = dump(&screen(&mut app, w, h));
        for want in [
            "ALERT count(map) > 100 within 5m",
            "firing since 22:13:23.000",
            "map 0xc000100000 · map_type main.UserMap",
            "150 deletes in 5m (threshold > 100) · exact",
            "top     120× main.(*Cache).evict /src/app/cache.go:42",
            "120× main.(*Cache).evict /src/app/cache.go:42",
            "main.main /src/app/main.go:10",
        ] {
            assert!(text.contains(want), "{want} {w}x{h}:\n{text}");
        }
    }
}

#[test]
fn slash_filters_the_alerts() {
    let st = stats();
    let mut app = alerting_app();
    press(&mut app, KeyCode::Char('4'));
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "jobs");
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 80, 24);
    let r = rows(&s, "STATE");
    assert_eq!(r.len(), 2, "{}", dump(&s));
    assert!(r.iter().all(|l| l.contains("rate(caller)")), "{}", dump(&s));
    type_text(&mut app, "zzz");
    app.refresh(&st, exact(), NOW);
    assert!(dump(&screen(&mut app, 80, 24)).contains("no rows match /jobszzz"));
}

#[test]
fn without_alert_rules_there_is_no_banner_and_the_view_says_why() {
    let st = stats();
    let mut app = app();
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 80, 24);
    assert!(
        s[3].contains("1 Callers") && s[3].contains("4 Alerts"),
        "{}",
        dump(&s)
    );
    assert!(!s[23].contains("4 alerts"), "{}", dump(&s));
    press(&mut app, KeyCode::Char('4'));
    app.refresh(&st, exact(), NOW);
    let text = dump(&screen(&mut app, 80, 24));
    assert!(
        text.contains("no alert rules (--alert RULE, --alerts FILE)"),
        "{text}"
    );
    // With rules, but nothing fired yet.
    let mut app = app_with_empty_board();
    press(&mut app, KeyCode::Char('4'));
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 80, 24);
    assert!(dump(&s).contains("no alert has fired"), "{}", dump(&s));
    assert!(s[3].contains("4 Alerts"), "{}", dump(&s));
}

fn app_with_empty_board() -> App {
    app().with_alerts(Some(AlertBoard::new()))
}

#[test]
fn alerts_with_an_ended_target_and_tiny_terminals_keep_the_layout() {
    let st = stats();
    for view in ['1', '4'] {
        let mut app = alerting_app();
        press(&mut app, KeyCode::Char(view));
        app.ended = Some(Ended::Exited(Some(ExitStatus::Code(0))));
        app.refresh(&st, exact(), NOW);
        let s = screen(&mut app, 80, 24);
        let text = dump(&s);
        assert!(s[3].contains("ALERT: count(map)"), "{text}");
        assert!(s[4].contains("process exited (status 0)"), "{text}");
        assert!(s[5].contains("1 Callers"), "{text}");
        assert!(s[23].contains("? help"), "{text}");
        let (header, n) = if view == '1' {
            ("TOTAL", 3)
        } else {
            ("STATE", 3)
        };
        assert_eq!(rows(&s, header).len(), n, "{text}");
    }
    for (w, h) in [(1u16, 1u16), (10, 3), (20, 5), (40, 10), (80, 8)] {
        for keys in ["", "4", "4\n", "?"] {
            let mut app = alerting_app();
            app.refresh(&st, exact(), NOW);
            for c in keys.chars() {
                press(
                    &mut app,
                    if c == '\n' {
                        KeyCode::Enter
                    } else {
                        KeyCode::Char(c)
                    },
                );
            }
            app.refresh(&st, exact(), NOW);
            let s = screen(&mut app, w, h);
            assert_eq!(s.len(), h as usize);
            if w == 40 && !keys.contains('?') {
                assert!(s[3].starts_with(" ALERT: count(map) > 100"), "{}", dump(&s));
                assert!(s[3].ends_with('…'), "{}", dump(&s));
            }
        }
    }
}

/// The fixed events, the main.handle deletes under goroutine labels: "s0".."s2" for tenant t1
/// (endpoint /a), "s3" and "s4" for tenant t2.
fn labeled_stats() -> Stats {
    use mdt::events::Labels;
    let mut st = Stats::new();
    for mut e in events() {
        if let KeyValue::Str(k) = &e.key {
            if let Some(n) = k.strip_prefix('s').and_then(|n| n.parse::<u32>().ok()) {
                let pairs = if n < 3 {
                    vec![
                        ("endpoint".into(), "/a".into()),
                        ("tenant".into(), "t1".into()),
                    ]
                } else {
                    vec![("tenant".into(), "t2".into())]
                };
                e.labels = Some(Arc::new(Labels {
                    pairs,
                    truncated: false,
                }));
            }
        }
        st.apply(&e);
    }
    st
}

#[test]
fn labels_show_in_callers_events_and_the_detail_and_filter() {
    let st = labeled_stats();
    let mut app = app();
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 200, 40);
    let text = dump(&s);
    let head = s.iter().find(|l| l.contains("CALLER")).unwrap();
    assert!(head.contains("LABELS"), "{text}");
    let handle = rows(&s, "CALLER")
        .into_iter()
        .find(|r| r.contains("main.handle"))
        .unwrap();
    // Newest first: t2 (s4, s3), then t1.
    assert!(handle.contains("tenant=t2|t1"), "{text}");
    assert!(handle.contains("endpoint=/a"), "{text}");
    let evict = rows(&s, "CALLER")
        .into_iter()
        .find(|r| r.contains("evict"))
        .unwrap();
    assert!(!evict.contains("tenant"), "{text}");

    // Events: a LABELS column; the newest event is "s4", tenant t2.
    press(&mut app, KeyCode::Char('3'));
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 160, 30);
    let text = dump(&s);
    assert!(s.iter().any(|l| l.contains("LABELS")), "{text}");
    let r = rows(&s, "TIME (UTC)");
    assert!(
        r[0].contains("\"s4\"") && r[0].trim_end().ends_with("tenant=t2"),
        "{text}"
    );
    // `/` matches labels: the three t1 deletes.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "tenant=t1");
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 160, 30);
    assert!(s.iter().any(|l| l.contains("3/51")), "{}", dump(&s));
    // The detail of an event names its labels.
    press(&mut app, KeyCode::Enter); // ends the filter's input
    press(&mut app, KeyCode::Enter);
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 160, 30);
    let text = dump(&s);
    assert!(app.detail_open, "{text}");
    assert!(
        s.iter()
            .any(|l| l.contains("labels") && l.contains("endpoint=/a,tenant=t1")),
        "{text}"
    );

    // Without labels there is no LABELS column (the fixed layout stays).
    let mut plain = self::app();
    plain.refresh(&stats(), exact(), NOW);
    let s = screen(&mut plain, 200, 40);
    assert!(!dump(&s).contains("LABELS"), "{}", dump(&s));
}

#[test]
fn the_labels_view_counts_deletes_per_label_value() {
    let st = labeled_stats();
    let mut app = app();
    press(&mut app, KeyCode::Char('5'));
    app.refresh(&st, exact(), NOW);
    let s = screen(&mut app, 120, 24);
    let text = dump(&s);
    let r = rows(&s, "LABEL");
    // 46 records without labels; the 5 main.handle deletes: t1 3 (with /a), t2 2.
    let row = |label: &str| -> Vec<String> {
        r.iter()
            .find(|l| words(l).contains(&label))
            .map(|l| words(l).iter().map(|w| w.to_string()).collect())
            .unwrap_or_else(|| panic!("no row {label}:\n{text}"))
    };
    assert_eq!(row("(no")[0], "46", "{text}");
    assert_eq!(row("tenant=t1")[0], "3", "{text}");
    assert_eq!(row("endpoint=/a")[0], "3", "{text}");
    assert_eq!(row("tenant=t2")[0], "2", "{text}");
    assert!(
        row("tenant=t2").contains(&"main.handle".to_string()),
        "{text}"
    );
    assert!(words(&r[0]).contains(&"(no"), "most deletes first:\n{text}");
    // Enter: the detail of a label value, its callers and keys.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "tenant=t2");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Enter);
    app.refresh(&st, exact(), NOW);
    let text = dump(&screen(&mut app, 120, 30));
    assert!(text.contains("label tenant=t2"), "{text}");
    assert!(text.contains("\"s4\""), "{text}");
}

/// A fatal record as the session gives it: the deleter died, the assigner was running.
fn fatal() -> mdt::events::fatal::Fatal {
    use mdt::events::fatal::{Fatal, FatalMap, Recent, Running, RunningGoroutine};
    let frames = |f: &[(&str, &str, u32, u64)]| {
        Stack::from(
            f.iter()
                .map(|&(func, file, line, addr)| Frame::new(func, file, line, addr, false))
                .collect::<Vec<_>>(),
        )
    };
    Fatal {
        ts_ns: T0 * NS,
        pid: 4242,
        tid: 4250,
        goid: Some(18),
        message: "concurrent map writes".into(),
        labels: None,
        stack: frames(&[
            ("runtime.fatal", "/go/src/runtime/panic.go", 1085, 0x43_0000),
            (
                "runtime.mapdelete_fast64",
                "/go/src/runtime/map_fast64.go",
                313,
                0x41_0000,
            ),
            ("main.deleter", "/src/app/main.go", 30, 0x49_0000),
        ]),
        caller: Some(2),
        stack_truncated: false,
        map: Some(FatalMap {
            addr: 0xc0_0009_2180,
            map_type: "map[int64]int64".into(),
        }),
        running: Running {
            held: true,
            held_ns: Some(504_000),
            threads: 4,
            stopped: 4,
            goroutines: vec![RunningGoroutine {
                tid: 4243,
                goid: Some(19),
                system_stack: false,
                stack: frames(&[
                    (
                        "runtime.mapassign_fast64",
                        "/go/src/runtime/map_fast64.go",
                        147,
                        0x41_1000,
                    ),
                    ("main.assigner", "/src/app/main.go", 37, 0x49_1000),
                ]),
                caller: Some(1),
            }],
            unavailable: None,
        },
        recent: Recent {
            since_ns: T0 * NS - 100_000_000,
            bucket_ns: 4_000_000,
            deletes: 2,
            clears: 0,
            received: 2,
            received_complete: true,
            on_map: true,
            events: Vec::new(),
            more: 0,
        },
        also: Vec::new(),
        also_dropped: 0,
    }
}

#[test]
fn a_fatal_error_shows_a_banner_and_opens_the_crash_view() {
    let mut app = app();
    app.refresh(&stats(), exact(), NOW);
    app.set_fatal(Arc::new(fatal()));
    let s = screen(&mut app, 120, 40);
    let text = dump(&s);
    assert!(
        text.contains("FATAL fatal error: concurrent map writes · goroutine 18 at main.deleter /src/app/main.go:30"),
        "{text}"
    );
    // The crash view is open at once, with both stacks.
    assert!(text.contains("crash report"), "{text}");
    assert!(
        text.contains("on map 0xc000092180 map[int64]int64"),
        "{text}"
    );
    assert!(text.contains("4 of 4 stopped, held 504µs"), "{text}");
    assert!(text.contains("tid 4243 goroutine 19:"), "{text}");
    assert!(text.contains("main.assigner /src/app/main.go:37"), "{text}");
    // Esc closes it (the banner stays), F opens it again.
    press(&mut app, KeyCode::Esc);
    let text = dump(&screen(&mut app, 120, 40));
    assert!(!text.contains("crash report ("), "{text}");
    assert!(text.contains("FATAL fatal error"), "{text}");
    press(&mut app, KeyCode::Char('F'));
    assert!(dump(&screen(&mut app, 120, 40)).contains("main.assigner"));
    // The layout holds at 80x24.
    let s = screen(&mut app, 80, 24);
    assert_eq!(s.len(), 24);
}

#[test]
fn the_header_names_the_container_the_target_runs_in() {
    let mut app = App::new(TargetInfo {
        container: Some("4e30b4250185".into()),
        ..app().info.clone()
    });
    app.refresh(&stats(), exact(), NOW);
    let s = screen(&mut app, 120, 24);
    assert!(
        s[0].contains("pid 4242 · container 4e30b4250185 · /srv/api/bin/api-server"),
        "{}",
        dump(&s)
    );
}
