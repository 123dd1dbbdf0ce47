//! What mdt needs to run, proven: the capabilities the deployment files grant
//! (`deploy/systemd/mdt@.service`'s `CapabilityBoundingSet`) are enough to trace a process
//! of another user in another session exactly, and to look at its threads when it crashes
//! and let it go on; without CAP_KILL, mdt never stops a process it could not resume; without
//! CAP_DAC_READ_SEARCH it says once what it cannot read, and still counts every delete.
//!
//! mdt runs as root with its bounding set cut down to those capabilities (`setpriv`), as in
//! a container started with `cap_drop: ALL` and `cap_add` of them; the target runs as
//! `nobody` (`setpriv --reuid`) in a session of its own (`setsid`), or as root until just
//! before it crashes (then nobody). And mdt refuses to run in a pid namespace of its own (the
//! kernel's pids would not be its own). Needs root: skipped without, unless CI=true.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::proc::Proc;
use common::{Scratch, Variant};
use serde_json::Value;

/// The capabilities the systemd unit grants, as `setpriv` names them (`bpf`, `kill`, ...).
fn granted() -> BTreeSet<String> {
    let unit = common::repo_root().join("deploy/systemd/mdt@.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let line = |key: &str| -> BTreeSet<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{} has no {key}", unit.display()))
            .split_whitespace()
            .map(|c| c.trim_start_matches("CAP_").to_lowercase())
            .collect()
    };
    let bounding = line("CapabilityBoundingSet=");
    assert_eq!(
        bounding,
        line("AmbientCapabilities="),
        "the unit's bounding and ambient sets differ"
    );
    bounding
}

/// `setpriv` arguments that leave exactly `caps` to the program after it.
fn only(caps: &BTreeSet<String>) -> Vec<String> {
    let set = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        "--bounding-set".into(),
        set.clone(),
        "--inh-caps".into(),
        set,
        "--".into(),
    ]
}

/// `bin ARGS` in a session of its own (as `nobody`, unless `as_root`): `setsid` forks it (Proc
/// makes its child a process group leader) and waits for it, exiting with its status. Killed
/// on drop (a failing test must not leave it behind, stopped).
struct Target {
    setsid: Proc,
    pid: i32,
}

impl Drop for Target {
    fn drop(&mut self) {
        // SAFETY: kill takes a pid and a signal number; it touches no memory.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

fn in_own_session(name: &str, bin: &Path, as_root: bool, args: &[&str]) -> Target {
    let mut cmd = Command::new("setsid");
    cmd.args(["--wait", "setpriv"]);
    if !as_root {
        cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"]);
    }
    cmd.arg(bin).args(args);
    let setsid = Proc::spawn(name, cmd, Stdio::null());
    // Traced once it is the binary (setpriv execs it in the child).
    let pid = setsid.child_running(bin, Duration::from_secs(10));
    Target { setsid, pid }
}

fn as_nobody(name: &str, bin: &Path, args: &[&str]) -> Target {
    in_own_session(name, bin, false, args)
}

/// A directory `nobody` may write to.
fn open_dir(dir: &Scratch) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// `mdt trace --json -p PID` with only `caps`, started; it has attached when this returns.
fn mdt_with(caps: &BTreeSet<String>, pid: i32, out: &Path) -> Proc {
    let mut cmd = Command::new("setpriv");
    cmd.args(only(caps))
        .arg(env!("CARGO_BIN_EXE_mdt"))
        .args(["trace", "--json", "-p", &pid.to_string(), "-o"])
        .arg(out);
    let m = Proc::spawn("mdt trace -p, capabilities cut down", cmd, Stdio::null());
    m.wait_announce();
    m
}

fn summary(records: &[Value]) -> &Value {
    records
        .iter()
        .find(|r| r["type"] == "summary")
        .expect("a summary")
}

/// The `deletes` fixture as nobody, traced to its end by mdt with `caps`: its records, what
/// mdt said on stderr besides its announcement, and the target's pid. Every delete and clear
/// is counted, none lost, whatever mdt could not read.
fn trace_deletes_of_nobody(caps: &BTreeSet<String>, tag: &str) -> (Vec<Value>, Vec<String>, i32) {
    let tc = common::toolchains().last().unwrap().clone();
    let bin = common::build_fixture("deletes", &tc, Variant::Plain);
    let dir = Scratch::new(tag);
    open_dir(&dir);
    let go = dir.path("go");
    let target = as_nobody(
        "deletes as nobody",
        &bin,
        &["-wait-file", &go.display().to_string()],
    );
    let out = dir.path("out.json");
    let mut m = mdt_with(caps, target.pid, &out);
    std::fs::write(&go, "").unwrap();
    let f = m.finish(Duration::from_secs(60), "the fixture");
    assert!(f.status.success(), "mdt: {}\n{}", f.status, f.stderr);
    let said = f
        .stderr
        .lines()
        .filter(|l| !l.starts_with("mdt: tracing pid "))
        .map(str::to_string)
        .collect();
    let records = common::read_json_lines(&out);
    let (deletes, clears) = common::expected_deletes(&tc, Variant::Plain, 1);
    let s = summary(&records);
    assert_eq!(
        (
            s["deletes"].as_u64(),
            s["clears"].as_u64(),
            s["lost"].as_u64()
        ),
        (Some(deletes as u64), Some(clears as u64), Some(0)),
        "{s}"
    );
    let received = records
        .iter()
        .filter(|r| r["type"] == "delete" || r["type"] == "clear")
        .count();
    assert_eq!(received, deletes + clears);
    (records, said, target.pid)
}

#[test]
fn the_granted_capabilities_trace_another_users_process_exactly() {
    if !common::require_root_bpf() {
        return;
    }
    let (records, said, _) = trace_deletes_of_nobody(&granted(), "caps");
    // Nothing was missing: no warning, no feature turned off.
    assert!(said.is_empty(), "{said:?}");
    // The map's length is read from the target's memory (another user's).
    assert!(
        records
            .iter()
            .filter(|r| r["type"] == "delete")
            .all(|r| r["map_len"].is_u64()),
        "every delete has its map's length"
    );
}

/// Who the crashing target is.
#[derive(Clone, Copy)]
enum Crasher {
    /// `nobody` from the start.
    Nobody,
    /// root when mdt attaches, `nobody` (setuid) just before it races.
    BecomesNobody,
    /// root, as mdt.
    Root,
}

/// The crash fixture, traced by mdt with `caps`: (fatal record, mdt's stderr, the target's
/// exit status).
fn crash_with(caps: &BTreeSet<String>, who: Crasher) -> (Value, String, Option<i32>) {
    let tc = common::toolchains().last().unwrap().clone();
    let bin = common::build_fixture("crash", &tc, Variant::Plain);
    let dir = Scratch::new("caps-crash");
    open_dir(&dir);
    let go = dir.path("go").display().to_string();
    let mut args = vec![
        "-mode",
        "writes",
        "-pace",
        "200us",
        "-timeout",
        "20s",
        "-wait-file",
        &go,
    ];
    let mut target = match who {
        Crasher::Nobody => as_nobody("crash as nobody", &bin, &args),
        Crasher::BecomesNobody => {
            args.extend(["-setuid", "65534"]);
            in_own_session("crash, then nobody", &bin, true, &args)
        }
        Crasher::Root => in_own_session("crash as root", &bin, true, &args),
    };
    let out = dir.path("out.json");
    let mut m = mdt_with(caps, target.pid, &out);
    std::fs::write(&go, "").unwrap();
    let f = m.finish(Duration::from_secs(60), "the crash");
    assert!(f.status.success(), "mdt: {}\n{}", f.status, f.stderr);
    // Never left stopped: the target ends of its crash, as it would have.
    let t = target
        .setsid
        .finish(Duration::from_secs(30), "the crash to end");
    let records = common::read_json_lines(&out);
    let fatal: Vec<_> = records.iter().filter(|r| r["type"] == "fatal").collect();
    assert_eq!(fatal.len(), 1, "{records:?}");
    (fatal[0].clone(), f.stderr, t.status.code())
}

#[test]
fn a_crash_of_another_users_process_is_looked_at_and_let_go_on() {
    if !common::require_root_bpf() {
        return;
    }
    let caps = granted();
    let (fatal, stderr, status) = crash_with(&caps, Crasher::Nobody);
    assert_eq!(status, Some(2), "the target dies of its own error");
    assert_eq!(fatal["message"], "concurrent map writes");
    let running = &fatal["running"];
    assert_eq!(running["held"], true, "{running}");
    assert_eq!(running["unavailable"], Value::Null, "{running}");
    assert!(
        running["goroutines"]
            .as_array()
            .is_some_and(|g| !g.is_empty()),
        "the other threads were read: {running}"
    );
    assert!(
        !stderr.contains("warning") && !stderr.contains("without the other threads"),
        "{stderr}"
    );

    // Without CAP_KILL, mdt may not resume it: it does not stop it, and says why.
    let mut fewer = caps.clone();
    assert!(fewer.remove("kill"), "the unit grants CAP_KILL");
    let (fatal, stderr, status) = crash_with(&fewer, Crasher::Nobody);
    assert_eq!(
        status,
        Some(2),
        "the target dies of its own error, never held"
    );
    assert_eq!(fatal["running"]["held"], false, "{fatal}");
    assert!(
        fatal["running"]["unavailable"]
            .as_str()
            .is_some_and(|w| w.contains("CAP_KILL")),
        "{fatal}"
    );
    let said: Vec<_> = stderr.lines().filter(|l| l.contains("CAP_KILL")).collect();
    assert_eq!(said.len(), 1, "{stderr}");

    // A target mdt could signal when it attached and cannot when it dies (it changed its
    // uid): the probe decides at the fatal error, and does not stop it.
    let (fatal, stderr, status) = crash_with(&fewer, Crasher::BecomesNobody);
    assert_eq!(status, Some(2), "never held");
    assert_eq!(fatal["running"]["held"], false, "{fatal}");
    assert!(
        fatal["running"]["unavailable"]
            .as_str()
            .is_some_and(|w| w.contains("another user than mdt") && w.contains("CAP_KILL")),
        "{fatal}"
    );
    assert!(
        !stderr.contains("CAP_KILL"),
        "nothing to say at the start: {stderr}"
    );

    // A target of mdt's own user needs no CAP_KILL: held, read and let go.
    let (fatal, stderr, status) = crash_with(&fewer, Crasher::Root);
    assert_eq!(status, Some(2));
    assert_eq!(fatal["running"]["held"], true, "{fatal}");
    assert_eq!(fatal["running"]["unavailable"], Value::Null, "{fatal}");
    assert!(!stderr.contains("CAP_KILL"), "{stderr}");
}

#[test]
fn mdt_refuses_to_run_in_a_pid_namespace_of_its_own() {
    if !common::require_root_bpf() {
        return;
    }
    for args in [vec!["trace", "--", "/bin/true"], vec!["trace", "-p", "1"]] {
        let out = Command::new("unshare")
            .args(["--fork", "--pid", "--mount-proc"])
            .arg(env!("CARGO_BIN_EXE_mdt"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("--pid=host") && err.contains("hostPID"),
            "{err}"
        );
    }
}

#[test]
fn without_cap_dac_read_search_mdt_says_once_what_it_cannot_read() {
    if !common::require_root_bpf() {
        return;
    }
    let mut caps = granted();
    assert!(caps.remove("dac_read_search"), "the unit grants it");
    // The probes need no such read: every delete is still counted and recorded.
    let (_, said, pid) = trace_deletes_of_nobody(&caps, "caps-nodac");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with(&format!(
            "mdt: warning: cannot read the memory of process {pid}"
        )) && said[0].contains("CAP_DAC_READ_SEARCH"),
        "{}",
        said[0]
    );
}
