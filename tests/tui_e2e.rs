//! The terminal UI end to end, in a real terminal: `mdt trace -p PID` on the `deletes` fixture
//! inside tmux (`send-keys` drives it, `capture-pane` reads it).
//!
//! * `tui_shows_the_fixture_and_survives_its_exit`: every call site of the fixture with its
//!   exact count and map type, the exact totals in the header; the Maps and Events views; the
//!   `/` filter; the "process exited (status 0)" banner once the target exits; `q` exits 0, the
//!   terminal modes (`stty -g`), the main screen and the cursor are as before.
//! * `q_while_tracing_detaches_and_leaves_the_target_running`: `q` while the target runs stops
//!   tracing at once (exit 0, terminal restored), the target goes on unharmed; with `NO_COLOR`
//!   the screen has no colour.
//! * `launch_mode_keeps_the_program_off_the_screen`: `mdt trace -- CMD` under the UI: the
//!   program's output is not drawn over the UI but printed after it; mdt exits with its status.
//! * `q_under_load_stops_within_a_second_and_stays_bounded`: on the `newstacks` fixture (a new
//!   stack nearly every delete) with small limits, `q` ends mdt within a second, its memory stays
//!   under a bound, and its summary line adds up (see tests/bounded.rs for the other modes).
//! * `a_panic_restores_the_terminal`: a panic in the UI thread (forced with
//!   `MDT_TUI_TEST_PANIC`, debug builds) restores the terminal before its message is printed,
//!   and the target goes on unharmed.
//!
//! * `a_crash_shows_its_report_and_the_ui_stays_up`: the `crash` fixture launched under the UI
//!   dies of "concurrent map writes": the FATAL banner names the goroutine, the crash view
//!   shows both sides of the race, the UI stays up after the target died, and mdt exits with
//!   the program's status (2).
//!
//! Needs root and BPF: without them the tests are skipped, unless `CI=true` (then they fail).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Variant;

/// mdt attached (debug build, loaded machine) or a screen to show up.
const TIMEOUT: Duration = Duration::from_secs(90);
const REPEAT: usize = 3;

/// A private copy of the mdt under test: other builds sharing the target directory may replace
/// `target/debug/mdt` while the test runs.
fn mdt_bin(dir: &Path) -> PathBuf {
    let copy = dir.join("mdt");
    for attempt in 0.. {
        match fs::copy(env!("CARGO_BIN_EXE_mdt"), &copy) {
            Ok(_) => break,
            Err(_) if attempt < 100 => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("copy {}: {e}", env!("CARGO_BIN_EXE_mdt")),
        }
    }
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(dir: &Path, width: u16, height: u16, env: &[(&str, &str)]) -> Tmux {
        let socket = format!(
            "mdt-tui-e2e-{}-{}",
            std::process::id(),
            dir.file_name().unwrap().to_string_lossy()
        );
        let t = Tmux { socket };
        let mut args: Vec<String> = vec![
            "-f".into(),
            "/dev/null".into(),
            "new-session".into(),
            "-d".into(),
            "-s".into(),
            "e2e".into(),
            "-x".into(),
            width.to_string(),
            "-y".into(),
            height.to_string(),
            "-c".into(),
            dir.display().to_string(),
        ];
        for (k, v) in env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push("bash --norc --noprofile".into());
        t.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally (no key names).
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "e2e", "-l", text]);
    }

    /// Sends key names (`Enter`, `Tab`, `Escape`, `C-u`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "e2e"])
    }

    /// The screen with its attributes as escape sequences.
    fn screen_styled(&self) -> String {
        self.run(&["capture-pane", "-p", "-e", "-t", "e2e"])
    }

    fn format(&self, fmt: &str) -> String {
        self.run(&["display-message", "-p", "-t", "e2e", fmt])
            .trim()
            .to_string()
    }

    /// Waits until `pred` holds for the screen twice in a row, 50 ms apart,
    /// and returns the second screen: a capture can catch a frame half drawn
    /// (the new header over the old rows), and a frame that is drawn holds.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let s = self.screen();
            if pred(&s) {
                std::thread::sleep(Duration::from_millis(50));
                let again = self.screen();
                if pred(&again) {
                    return again;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The fixture, killed on drop unless it was waited for.
struct Target(Child);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_fixture(bin: &Path, args: &[&str]) -> Target {
    Target(
        Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display())),
    )
}

/// `func file:line` as the UI shows a call site (file without its directory).
fn label(rec: &serde_json::Value) -> String {
    let file = rec["file"].as_str().unwrap();
    format!(
        "{} {}:{}",
        rec["func"].as_str().unwrap(),
        file.rsplit('/').next().unwrap(),
        rec["line"]
    )
}

/// The words of the row whose caller column is `label`.
fn row<'a>(screen: &'a str, label: &str) -> Vec<&'a str> {
    let line = screen
        .lines()
        .find(|l| l.contains(&format!(" {label} ")))
        .unwrap_or_else(|| panic!("no row {label:?} on screen:\n{screen}"));
    line.split_whitespace().collect()
}

/// An SGR sequence that sets a colour (not the default 39/49).
fn colour() -> regex::Regex {
    regex::Regex::new(r"\x1b\[(?:[0-9]+;)*(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])[;m]").unwrap()
}

/// Runs `mdt trace ARGS` between two `stty -g`, then writes its exit status.
fn shell_line(mdt: &Path, args: &str) -> String {
    format!(
        "stty -g > before.stty; {} trace {args}; echo \"exit=$?\" > rc; stty -g > after.stty; echo done\n",
        mdt.display()
    )
}

/// After mdt returned to the shell: exit 0, the terminal as it was.
fn assert_restored(tmux: &Tmux, dir: &Path) {
    assert_restored_with(tmux, dir, 0);
}

fn assert_restored_with(tmux: &Tmux, dir: &Path, code: i32) {
    let s = tmux.wait("the shell after mdt", |s| {
        s.lines().any(|l| l.trim() == "done")
    });
    assert_eq!(
        fs::read_to_string(dir.join("rc")).unwrap().trim(),
        format!("exit={code}"),
        "{s}"
    );
    assert_eq!(
        fs::read_to_string(dir.join("before.stty")).unwrap(),
        fs::read_to_string(dir.join("after.stty")).unwrap(),
        "terminal modes differ after mdt"
    );
    assert_eq!(
        tmux.format("#{alternate_on}"),
        "0",
        "still on the alternate screen"
    );
    assert_eq!(tmux.format("#{cursor_flag}"), "1", "cursor hidden");
    // The main screen came back: the command line typed before mdt is still there.
    assert!(s.contains("stty -g > before.stty; "), "{s}");
    assert!(s.contains("mdt: tracing pid"), "{s}");
}

#[test]
fn tui_shows_the_fixture_and_survives_its_exit() {
    if !common::require_root_bpf() {
        return;
    }
    let tc = common::toolchain("1.24");
    let fixture = common::build_fixture("deletes", &tc, Variant::Plain);
    let dir = tempfile::tempdir().unwrap();
    let mdt = mdt_bin(dir.path());
    let wait_file = dir.path().join("go");
    let expect = dir.path().join("expect.jsonl");
    let repeat = REPEAT.to_string();
    let mut target = start_fixture(
        &fixture,
        &[
            "-wait-file",
            wait_file.to_str().unwrap(),
            "-repeat",
            &repeat,
            "-expect",
            expect.to_str().unwrap(),
            "-hold",
        ],
    );
    let pid = target.0.id();
    let tmux = Tmux::start(dir.path(), 200, 60, &[]);
    tmux.type_text(&shell_line(&mdt, &format!("-p {pid}")));
    tmux.wait("the UI", |s| {
        s.contains(&format!("mdt · pid {pid} ")) && s.contains("1 Callers")
    });
    assert_eq!(tmux.format("#{alternate_on}"), "1");
    assert!(
        colour().is_match(&tmux.screen_styled()),
        "colours expected without NO_COLOR"
    );
    // The fixture's three stdout lines come once its -expect file is written.
    let stdout = target.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let lines: Vec<String> = std::io::BufReader::new(stdout)
            .lines()
            .take(3)
            .map_while(Result::ok)
            .collect();
        let _ = tx.send(lines.join("\n") + "\n");
    });

    // The fixture deletes once mdt is attached (the UI is up, so it is).
    fs::write(&wait_file, b"").unwrap();
    let (deletes, clears) = common::expected_deletes(&tc, Variant::Plain, REPEAT);
    let header = format!("deletes {deletes}  clears {clears} ");
    let out = rx.recv_timeout(TIMEOUT).expect("the fixture's output");
    assert_eq!(
        out,
        common::expected_deletes_stdout(&tc, Variant::Plain, REPEAT)
    );
    let records = common::read_json_lines(&expect);
    let mut sites: std::collections::BTreeMap<String, (usize, String)> = Default::default();
    for r in &records {
        let e = sites
            .entry(label(r))
            .or_insert((0, r["map_type"].as_str().unwrap().to_string()));
        e.0 += 1;
    }
    assert_eq!(records.len(), deletes + clears);
    let s = tmux.wait("every call site with its exact count", |s| {
        s.contains(&header)
            && sites.iter().all(|(l, (n, _))| {
                s.lines()
                    .find(|line| line.contains(&format!(" {l} ")))
                    .is_some_and(|line| line.split_whitespace().next() == Some(&n.to_string()))
            })
    });
    // Callers: one row per call site, with its count and map type, sorted by total.
    let mut last = usize::MAX;
    for line in s
        .lines()
        .filter(|l| sites.keys().any(|k| l.contains(&format!(" {k} "))))
    {
        let n: usize = line.split_whitespace().next().unwrap().parse().unwrap();
        assert!(n <= last, "not sorted by total:\n{s}");
        last = n;
    }
    for (l, (n, map_type)) in &sites {
        let words = row(&s, l);
        assert_eq!(words[0], n.to_string(), "{l}:\n{s}");
        let line = s.lines().find(|x| x.contains(&format!(" {l} "))).unwrap();
        assert!(
            line.contains(map_type.as_str()),
            "{l} has map type {map_type}:\n{s}"
        );
    }
    assert!(s.contains(&format!("{n}/{n}", n = sites.len())), "{s}");

    // Maps view: the map types, every row of the filtered one.
    tmux.keys(&["2"]);
    let s = tmux.wait("the Maps view", |s| {
        s.contains("MAP TYPE") && s.contains("TOP CALLER")
    });
    for t in [
        "main.UserMap",
        "map[main.Key]int",
        "map[interface {}]int",
        "map[[4]uint8]int",
    ] {
        assert!(s.contains(t), "{t}:\n{s}");
    }
    tmux.keys(&["/"]);
    tmux.type_text("main.UserMap");
    tmux.keys(&["Enter"]);
    let s = tmux.wait("the filtered Maps view", |s| {
        s.contains("/main.UserMap")
            && s.lines()
                .filter(|l| l.starts_with("0x"))
                .all(|l| l.split_whitespace().nth(1) == Some("main.UserMap"))
    });
    let rows: Vec<Vec<&str>> = s
        .lines()
        .filter(|l| l.starts_with("0x"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    // The user_map and clear sites: a map per site and iteration (unless
    // an address was reused), 2 deletes and 1 clear per iteration.
    assert!((2..=2 * REPEAT).contains(&rows.len()), "{s}");
    assert!(rows.iter().all(|w| w[1] == "main.UserMap"), "{s}");
    // Columns by the header ("MAP TYPE" is two words there, one cell in a row).
    let titles: Vec<&str> = s
        .lines()
        .find(|l| l.starts_with("MAP "))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let col = |name: &str| {
        titles
            .iter()
            .position(|w| w.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} column:\n{s}"))
            - 1
    };
    let sum = |col: usize| {
        rows.iter()
            .map(|w| {
                w[col]
                    .parse::<usize>()
                    .unwrap_or_else(|e| panic!("column {col} of {w:?}: {e}\n{s}"))
            })
            .sum::<usize>()
    };
    assert_eq!(
        (sum(col("DELETES")), sum(col("CLEARS"))),
        (2 * REPEAT, REPEAT),
        "deletes, clears:\n{s}"
    );
    // Clear the filter (Esc while typing clears it).
    tmux.keys(&["/", "Escape"]);
    tmux.wait("the unfiltered Maps view", |s| !s.contains("filter /"));

    // Events view: the newest events with their caller.
    tmux.keys(&["3"]);
    let s = tmux.wait("the Events view", |s| s.contains("TIME (UTC)"));
    assert!(
        sites.keys().any(|l| s.contains(l.as_str())),
        "no call site in the Events view:\n{s}"
    );

    // Tab cycles Events → Alerts → Labels → Callers; then filter on a function name.
    tmux.keys(&["Tab"]);
    tmux.wait("the Alerts view", |s| s.contains("no alert rules"));
    tmux.keys(&["Tab"]);
    tmux.wait("the Labels view (no labels in this fixture)", |s| {
        s.contains("LABEL") && s.contains("(no labels)")
    });
    tmux.keys(&["Tab"]);
    tmux.wait("the Callers view", |s| s.contains("MAP TYPES"));
    tmux.keys(&["/"]);
    tmux.type_text("delInt");
    let filtered = format!("2/{}", sites.len());
    let s = tmux.wait("the filtered Callers view", |s| {
        s.contains("/delInt") && s.contains(&filtered)
    });
    let shown: Vec<&String> = sites
        .keys()
        .filter(|l| s.contains(&format!(" {l} ")))
        .collect();
    assert_eq!(shown.len(), 2, "{s}");
    assert!(shown.iter().all(|l| l.starts_with("main.delInt")), "{s}");
    tmux.keys(&["Enter"]);

    // Detail of the selected row: its stack, the caller marked.
    tmux.keys(&["Enter"]);
    let s = tmux.wait("the detail", |s| s.contains("stack of the latest event"));
    assert!(s.contains("▶ main.delInt"), "{s}");
    assert!(s.contains("main.runIteration"), "{s}");

    // Export what is shown: the status line names the files.
    tmux.keys(&["e"]);
    let s = tmux.wait("the export", |s| s.contains("exported mdt-"));
    let folded: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "folded"))
        .collect();
    assert_eq!(folded.len(), 1, "{s}");
    let name = folded[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(s.contains(&name), "{s}");
    let text = fs::read_to_string(&folded[0]).unwrap();
    // Filtered on delInt: the two delInt sites' stacks, with their counts.
    assert!(text.lines().all(|l| l.contains(";main.delInt")), "{text}");
    let total: usize = text
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(
        total,
        sites
            .iter()
            .filter(|(l, _)| l.starts_with("main.delInt"))
            .map(|(_, (n, _))| n)
            .sum::<usize>()
    );
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(folded[0].with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(json["callers"].as_array().unwrap().len(), 2, "{json}");

    // The target exits: the UI stays, with its status.
    drop(target.0.stdin.take());
    let s = tmux.wait("the exit banner", |s| {
        s.contains("process exited (status 0)")
    });
    assert!(s.contains(&header), "{s}");
    assert!(s.contains("press q to quit"), "{s}");

    tmux.keys(&["q"]);
    assert_restored(&tmux, dir.path());
    let s = tmux.screen();
    assert!(
        s.contains(&format!("mdt: {deletes} deletes, {clears} clears")),
        "{s}"
    );
    assert!(s.contains("target: exit status 0"), "{s}");
    let status = target.0.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn q_while_tracing_detaches_and_leaves_the_target_running() {
    if !common::require_root_bpf() {
        return;
    }
    let tc = common::toolchain("1.24");
    let fixture = common::build_fixture("deletes", &tc, Variant::Plain);
    let dir = tempfile::tempdir().unwrap();
    let mdt = mdt_bin(dir.path());
    let wait_file = dir.path().join("go");
    let mut target = start_fixture(
        &fixture,
        &["-wait-file", wait_file.to_str().unwrap(), "-hold"],
    );
    let pid = target.0.id();
    let tmux = Tmux::start(dir.path(), 80, 24, &[("NO_COLOR", "1")]);
    tmux.type_text(&shell_line(&mdt, &format!("-p {pid}")));
    tmux.wait("the UI", |s| {
        s.contains(&format!("pid {pid}")) && s.contains("1 Callers")
    });
    fs::write(&wait_file, b"").unwrap();
    let (deletes, _) = common::expected_deletes(&tc, Variant::Plain, 1);
    tmux.wait("the deletes", |s| {
        s.contains(&format!("deletes {deletes} "))
    });
    // 80x24: the header, the tabs, the footer with the help key.
    let s = tmux.screen();
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines.len() <= 24, "{s}");
    assert!(s.contains("? help"), "{s}");
    // NO_COLOR: attributes (bold, reverse) but no colour.
    let styled = tmux.screen_styled();
    assert!(
        !colour().is_match(&styled),
        "colour with NO_COLOR:\n{styled:?}"
    );
    assert!(
        styled.contains("\x1b[7m") || styled.contains(";7m"),
        "reverse video expected"
    );

    tmux.keys(&["q"]);
    assert_restored(&tmux, dir.path());
    // The target did not notice: still running, then ends as usual.
    assert!(target.0.try_wait().unwrap().is_none(), "the target died");
    drop(target.0.stdin.take());
    let status = target.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut out = String::new();
    std::io::Read::read_to_string(target.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(out, common::expected_deletes_stdout(&tc, Variant::Plain, 1));
}

/// The pid of the process running `exe` (our private copy of mdt), if any.
fn pid_of(exe: &Path) -> Option<i32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        (fs::read_link(e.path().join("exe")).ok()? == exe).then_some(pid)
    })
}

#[test]
fn q_under_load_stops_within_a_second_and_stays_bounded() {
    if !common::require_root_bpf() {
        return;
    }
    // As in tests/bounded.rs: nearly every delete has a new stack, small limits.
    let tc = common::toolchain("1.27");
    let fixture = common::build_fixture("newstacks", &tc, Variant::Plain);
    let dir = tempfile::tempdir().unwrap();
    let mdt = mdt_bin(dir.path());
    let target = start_fixture(&fixture, &["-goroutines", "1"]);
    let pid = target.0.id();
    let tmux = Tmux::start(dir.path(), 120, 30, &[]);
    let limits = "--buffer-size 4M --max-stacks 256 --max-rows 512";
    tmux.type_text(&shell_line(&mdt, &format!("-p {pid} {limits} 2> err.txt")));
    tmux.wait("the UI under load", |s| {
        s.contains(&format!("pid {pid}")) && s.contains("main.bottom main.go:")
    });
    let mdt_pid = pid_of(&mdt).expect("mdt's pid");
    let mut peak = 0;
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        peak = peak.max(common::peak_rss_kib(mdt_pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    let t0 = Instant::now();
    tmux.keys(&["q"]);
    while let Some(kib) = common::peak_rss_kib(mdt_pid) {
        peak = peak.max(kib);
        assert!(t0.elapsed() < TIMEOUT, "mdt still runs after q");
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = t0.elapsed();
    let err = fs::read_to_string(dir.path().join("err.txt")).unwrap_or_default();
    assert!(
        took < Duration::from_secs(1),
        "q took {took:?}; stderr:\n{err}"
    );
    assert!(
        peak > 0 && peak < 96 * 1024,
        "peak RSS {peak} KiB; stderr:\n{err}"
    );
    // "mdt: D deletes, C clears in X.Xs (exact); R records, S sampled out, F filtered out, L lost"
    let line = err
        .lines()
        .find(|l| l.contains(" deletes, "))
        .unwrap_or_else(|| panic!("no summary line:\n{err}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter(|w| !w.is_empty() && !w.contains('.'))
        .map(|w| w.parse().unwrap())
        .collect();
    let [deletes, clears, records, sampled_out, filtered_out, lost, ..] = nums[..] else {
        panic!("unexpected summary line: {line}")
    };
    assert_eq!(
        deletes + clears,
        records + sampled_out + filtered_out + lost,
        "{line}"
    );
    assert!(records > 1000 && deletes > 100_000, "{line}");
    tmux.wait("the shell after mdt", |s| {
        s.lines().any(|l| l.trim() == "done")
    });
    let rc = fs::read_to_string(dir.path().join("rc")).unwrap();
    assert_eq!(rc.trim(), "exit=0", "{err}");
    assert_eq!(
        fs::read_to_string(dir.path().join("before.stty")).unwrap(),
        fs::read_to_string(dir.path().join("after.stty")).unwrap(),
        "terminal modes differ after mdt"
    );
}

#[test]
fn a_panic_restores_the_terminal() {
    if !common::require_root_bpf() {
        return;
    }
    let tc = common::toolchain("1.24");
    let fixture = common::build_fixture("deletes", &tc, Variant::Plain);
    let dir = tempfile::tempdir().unwrap();
    let mdt = mdt_bin(dir.path());
    let wait_file = dir.path().join("go");
    let mut target = start_fixture(
        &fixture,
        &["-wait-file", wait_file.to_str().unwrap(), "-hold"],
    );
    let pid = target.0.id();
    let tmux = Tmux::start(dir.path(), 100, 30, &[("MDT_TUI_TEST_PANIC", "1")]);
    tmux.type_text(&shell_line(&mdt, &format!("-p {pid}")));
    tmux.wait("the UI", |s| {
        s.contains(&format!("pid {pid}")) && s.contains("1 Callers")
    });
    fs::write(&wait_file, b"").unwrap();
    let s = tmux.wait("the shell after the panic", |s| {
        s.lines().any(|l| l.trim() == "done")
    });
    assert!(
        s.contains("panicked at") && s.contains("MDT_TUI_TEST_PANIC"),
        "{s}"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("rc")).unwrap().trim(),
        "exit=101",
        "{s}"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("before.stty")).unwrap(),
        fs::read_to_string(dir.path().join("after.stty")).unwrap(),
        "terminal modes differ after the panic"
    );
    assert_eq!(
        tmux.format("#{alternate_on}"),
        "0",
        "still on the alternate screen"
    );
    assert_eq!(tmux.format("#{cursor_flag}"), "1", "cursor hidden");
    assert!(target.0.try_wait().unwrap().is_none(), "the target died");
    drop(target.0.stdin.take());
    assert!(target.0.wait().unwrap().success());
}

#[test]
fn launch_mode_keeps_the_program_off_the_screen() {
    if !common::require_root_bpf() {
        return;
    }
    let tc = common::toolchain("1.24");
    let fixture = common::build_fixture("deletes", &tc, Variant::Plain);
    let dir = tempfile::tempdir().unwrap();
    let mdt = mdt_bin(dir.path());
    let tmux = Tmux::start(dir.path(), 120, 40, &[]);
    let args = format!("-- {} -repeat 2 -exit-code 3", fixture.display());
    tmux.type_text(&shell_line(&mdt, &args));
    let (deletes, clears) = common::expected_deletes(&tc, Variant::Plain, 2);
    let s = tmux.wait("the exit banner", |s| {
        s.contains("process exited (status 3)")
    });
    assert!(
        s.contains(&format!("deletes {deletes}  clears {clears} ")),
        "{s}"
    );
    assert!(
        !s.contains("deletes done:"),
        "the program wrote over the UI:\n{s}"
    );
    tmux.keys(&["q"]);
    assert_restored_with(&tmux, dir.path(), 3);
    let s = tmux.screen();
    let stdout = common::expected_deletes_stdout(&tc, Variant::Plain, 2);
    let shown: String = s
        .lines()
        .skip_while(|l| !l.starts_with("mdt: the program's output"))
        .skip(1)
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(shown, stdout, "{s}");
}

#[test]
fn a_crash_shows_its_report_and_the_ui_stays_up() {
    if !common::require_root_bpf() {
        return;
    }
    let tc = common::toolchain("1.24");
    let fixture = common::build_fixture("crash", &tc, Variant::Plain);
    let dir = tempfile::tempdir().unwrap();
    let mdt = mdt_bin(dir.path());
    let tmux = Tmux::start(dir.path(), 160, 50, &[]);
    let args = format!("-- {} -mode writes -pace 200us", fixture.display());
    tmux.type_text(&shell_line(&mdt, &args));
    let s = tmux.wait("the crash banner and the exit banner", |s| {
        s.contains("FATAL fatal error: concurrent map writes")
            && s.contains("process exited (status 2)")
    });
    assert!(s.contains("crash report"), "the crash view is open:\n{s}");
    assert!(
        s.contains("main.deleter") && s.contains("main.assigner"),
        "both sides of the race:\n{s}"
    );
    assert!(s.contains("running on the other threads"), "{s}");
    // The UI stays up after the target died: Esc closes the view, the banner stays.
    std::thread::sleep(Duration::from_millis(500));
    tmux.keys(&["Escape"]);
    let s = tmux.wait("the view closed", |s| !s.contains("crash report ("));
    assert!(
        s.contains("FATAL fatal error: concurrent map writes"),
        "{s}"
    );
    tmux.keys(&["q"]);
    assert_restored_with(&tmux, dir.path(), 2);
}
