//! A real container: the `deletes` fixture (a static Go binary) in an image built here
//! `FROM scratch` (no registry is needed), run by podman. `mdt inspect --all --container ID`
//! finds exactly it, with podman's container id derived from its cgroup path, and
//! `mdt trace -p PID` (the host's pid: the container has its own pid and mount namespaces)
//! sees each of its deletes exactly once, every record naming the container.
//!
//! Podman runs rootful with runc and cgroupfs (crun refuses this machine's v1/v2 hybrid
//! cgroups) and lowered rlimits (root here may not raise them). Needs root and podman
//! (installed by scripts/install-deps.sh): skipped without, unless CI=true.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::proc::Proc;
use common::{Scratch, Variant};
use serde_json::Value;

const PODMAN: &[&str] = &["--runtime", "runc", "--cgroup-manager", "cgroupfs"];

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(PODMAN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run podman")
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn have_podman() -> bool {
    let found = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !common::is_ci(),
            "podman is missing (scripts/install-deps.sh installs it)"
        );
        common::note("podman not found: the container test is skipped");
    }
    found
}

/// An image and a container of it, removed on drop.
struct Container {
    image: String,
    name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
        let _ = podman(&["rmi", "-f", &self.image]);
    }
}

/// `bin` as the image's only file, run with `args`; `share` is mounted at /w.
fn run_in_container(bin: &Path, share: &Scratch, args: &[&str]) -> Container {
    let tag = format!("mdt-test-{}", std::process::id());
    let context = share.path("image");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::copy(bin, context.join("deletes")).unwrap();
    std::fs::write(
        context.join("Containerfile"),
        "FROM scratch\nCOPY deletes /deletes\nENTRYPOINT [\"/deletes\"]\n",
    )
    .unwrap();
    let image = format!("localhost/{tag}:latest");
    podman_ok(&["build", "-q", "-t", &image, &context.display().to_string()]);
    let c = Container {
        image: image.clone(),
        name: tag.clone(),
    };
    let volume = format!("{}:/w", share.0.display());
    let mut run = vec![
        "run",
        "-d",
        "--name",
        &tag,
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "-v",
        &volume,
        &image,
    ];
    run.extend_from_slice(args);
    podman_ok(&run);
    c
}

#[test]
fn a_podman_container_is_found_by_its_id_and_traced_exactly() {
    if !common::require_root_bpf() || !have_podman() {
        return;
    }
    let tc = common::toolchains().last().unwrap().clone();
    let bin = common::build_fixture("deletes", &tc, Variant::Plain);
    let share = Scratch::new("container");
    let c = run_in_container(&bin, &share, &["-wait-file", "/w/go"]);
    let id = podman_ok(&["inspect", "-f", "{{.Id}}", &c.name]);
    let pid: i32 = podman_ok(&["inspect", "-f", "{{.State.Pid}}", &c.name])
        .parse()
        .unwrap();
    assert_eq!(id.len(), 64, "{id}");

    let out = Command::new(env!("CARGO_BIN_EXE_mdt"))
        .args(["inspect", "--all", "--json", "--container", &id[..12]])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = doc["processes"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "exactly the container's process: {doc}");
    let p = &listed[0];
    assert_eq!(p["pid"], pid, "{p}");
    assert_eq!(p["container_id"], id.as_str(), "{p}");
    assert_eq!(p["exe"], "/deletes", "the path inside the container: {p}");
    assert_eq!(p["go_version"], tc.version, "{p}");
    assert_eq!(p["traceable"], true, "{p}");

    let json = share.path("out.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mdt"));
    cmd.args(["trace", "--json", "-p", &pid.to_string(), "-o"])
        .arg(&json);
    let mut m = Proc::spawn("mdt trace -p (container)", cmd, Stdio::null());
    m.wait_announce();
    std::fs::write(share.path("go"), "").unwrap();
    let f = m.finish(Duration::from_secs(60), "the container's fixture");
    assert!(f.status.success(), "{}", f.stderr);
    let records = common::read_json_lines(&json);
    let (deletes, clears) = common::expected_deletes(&tc, Variant::Plain, 1);
    let summary = records.iter().find(|r| r["type"] == "summary").unwrap();
    assert_eq!(
        (summary["deletes"].as_u64(), summary["clears"].as_u64()),
        (Some(deletes as u64), Some(clears as u64)),
        "{summary}"
    );
    assert_eq!(summary["lost"], 0, "{summary}");
    assert_eq!(summary["target_exit"], "exit status 0", "{summary}");
    let events: Vec<_> = records
        .iter()
        .filter(|r| r["type"] == "delete" || r["type"] == "clear")
        .collect();
    assert_eq!(events.len(), deletes + clears);
    assert!(
        events.iter().all(|r| r["pid"] == pid),
        "the host's pid on every record"
    );
    for r in events
        .iter()
        .copied()
        .chain([summary["process"].clone()].iter())
    {
        assert_eq!(r["container_id"], id.as_str(), "{r}");
        assert_eq!(
            (&r["comm"], &r["exe"]),
            (&"deletes".into(), &"/deletes".into()),
            "{r}"
        );
        assert!(r.get("pod_uid").is_none(), "not in a pod: {r}");
    }
    assert!(
        events
            .iter()
            .any(|r| r["caller"].as_str().is_some_and(|c| c.starts_with("main."))),
        "callers symbolized from the container's binary"
    );
}
