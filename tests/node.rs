//! The node's processes (`mdt inspect --all`), as root, against real processes: the `deletes`
//! fixture built by two Go releases, one run in a cgroup of its own (v2), one in its own pid
//! and mount namespace (`unshare`), a copy that says it is go1.16 (listed once per process,
//! with the reason), and a non-Go process (`sleep`, not listed). Every Go process is listed
//! with its pid, command, executable, Go version and cgroup; `--comm`, `--exe` and `--cgroup`
//! keep exactly the ones they name; a container id that no process has keeps none.
//!
//! Needs root (another process's /proc/PID/exe, cgroups): skipped without, unless CI=true.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::proc::Proc;
use common::{Scratch, Toolchain, Variant};
use serde_json::Value;

/// The node's Go processes as `mdt inspect --all --json FILTERS` lists them.
fn listed(filters: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_mdt"))
        .args(["inspect", "--all", "--json"])
        .args(filters)
        .stdin(Stdio::null())
        .output()
        .expect("run mdt inspect --all");
    assert!(
        out.status.success(),
        "mdt inspect --all {filters:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    doc["processes"].as_array().expect("processes").clone()
}

fn pids(list: &[Value]) -> Vec<i64> {
    list.iter().map(|p| p["pid"].as_i64().unwrap()).collect()
}

/// A held fixture, started with `wrap` (a command and its arguments before it) if any.
fn hold(name: &str, bin: &Path, wrap: &[&str]) -> Proc {
    let mut cmd = match wrap.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("-hold");
    Proc::spawn(name, cmd, Stdio::piped())
}

/// A cgroup of the unified hierarchy, removed on drop (its processes moved out first).
struct Cgroup {
    dir: std::path::PathBuf,
    path: String,
}

impl Cgroup {
    fn new(name: &str) -> Option<Cgroup> {
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|r| r.join("cgroup.procs").exists())?;
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).ok()?;
        Some(Cgroup {
            dir,
            path: format!("/{name}"),
        })
    }

    fn add(&self, pid: i32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", self.dir.display()));
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let parent = self.dir.parent().unwrap().join("cgroup.procs");
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.lines() {
                let _ = std::fs::write(&parent, pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn the(list: &[Value], pid: i32) -> &Value {
    list.iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not listed: {list:?}"))
}

#[test]
fn inspect_all_lists_the_nodes_go_processes() {
    if !common::require_root_bpf() {
        return;
    }
    let tcs = common::toolchains();
    let (old, new): (&Toolchain, &Toolchain) = (&tcs[0], tcs.last().unwrap());
    let old_bin = common::build_fixture("deletes", old, Variant::Plain);
    let new_bin = common::build_fixture("deletes", new, Variant::Plain);
    let dir = Scratch::new("node");
    let fake = dir.path("deletes-go1.16");
    let real = format!("go{}.", new.short);
    common::patched_version_copy(&new_bin, &real, "go1.16.", &fake);

    let plain = hold("old fixture", &old_bin, &[]);
    let grouped = hold("new fixture", &new_bin, &[]);
    let cgroup = Cgroup::new(&format!("mdt-node-test-{}", std::process::id()))
        .expect("a cgroup of the unified hierarchy");
    cgroup.add(grouped.pid());
    let unshared = hold(
        "fixture in its own pid and mount namespace",
        &new_bin,
        &["unshare", "--fork", "--pid", "--mount-proc"],
    );
    let inner = unshared.child_running(&new_bin, Duration::from_secs(10));
    let too_old = hold("go1.16 copy", &fake, &[]);
    let mut sleep = Proc::spawn(
        "sleep",
        {
            let mut c = Command::new("sleep");
            c.arg("60");
            c
        },
        Stdio::null(),
    );

    let all = listed(&[]);
    for (pid, bin, tc) in [
        (plain.pid(), &old_bin, old),
        (grouped.pid(), &new_bin, new),
        (inner, &new_bin, new),
    ] {
        let p = the(&all, pid);
        assert_eq!(p["comm"], "deletes", "{p}");
        assert_eq!(p["exe"], bin.display().to_string(), "{p}");
        assert_eq!(p["go_version"], tc.version, "{p}");
        assert_eq!(
            (p["traceable"].clone(), p["reason"].clone()),
            (true.into(), Value::Null),
            "{p}"
        );
        assert_eq!(p["container_id"], Value::Null, "{p}");
    }
    assert_eq!(the(&all, grouped.pid())["cgroup"], cgroup.path);
    let old_one = the(&all, too_old.pid());
    assert_eq!(old_one["traceable"], false, "{old_one}");
    assert!(
        old_one["reason"]
            .as_str()
            .is_some_and(|r| r.contains("unsupported Go version go1.16")),
        "{old_one}"
    );
    assert!(
        !pids(&all).contains(&i64::from(sleep.pid())),
        "sleep is not Go"
    );
    assert!(
        !pids(&all).contains(&i64::from(unshared.pid())),
        "unshare is not Go"
    );

    let mine = |filters: &[&str]| -> Vec<i64> {
        let mut got: Vec<i64> = pids(&listed(filters))
            .into_iter()
            .filter(|p| [plain.pid(), grouped.pid(), inner, too_old.pid()].contains(&(*p as i32)))
            .collect();
        got.sort_unstable();
        got
    };
    let sorted = |mut v: Vec<i32>| -> Vec<i64> {
        v.sort_unstable();
        v.into_iter().map(i64::from).collect()
    };
    assert_eq!(
        mine(&["--cgroup", &cgroup.path]),
        sorted(vec![grouped.pid()])
    );
    assert_eq!(
        mine(&["--cgroup", &cgroup.dir.display().to_string()]),
        sorted(vec![grouped.pid()])
    );
    let old_dir = regex::escape(&old_bin.parent().unwrap().display().to_string());
    assert_eq!(
        mine(&["--exe", &format!("^{old_dir}/")]),
        sorted(vec![plain.pid()])
    );
    assert_eq!(
        mine(&["--comm", "^deletes-go1"]),
        sorted(vec![too_old.pid()]),
        "comm is the executable's name, cut at 15 bytes"
    );
    assert_eq!(
        mine(&["--comm", "^deletes$"]),
        sorted(vec![plain.pid(), grouped.pid(), inner])
    );
    assert!(mine(&["--container", "0123456789ab"]).is_empty());
    sleep.kill();
}

#[test]
fn node_filters_need_all_and_valid_values() {
    for (args, needle) in [
        (vec!["inspect", "--comm", "x"], "--all"),
        (vec!["inspect", "--all", "--container", "xyz"], "hex digits"),
        (vec!["inspect", "--all", "--comm", "("], "--comm"),
        (vec!["inspect", "--all", "--pid", "1"], "--pid"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mdt"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
