//! The deployment files (`deploy/`): the Prometheus rules parse (`promtool check rules`), do
//! what their unit tests say (`promtool test rules`: sample series in, the alerts and recorded
//! values expected out), and read only metrics mdt exports (the table of docs/monitoring.md);
//! the Grafana dashboard (`deploy/grafana/mdt.json`) is JSON whose queries are valid PromQL
//! (checked by promtool) over those metrics; the Alertmanager route routes every alert and
//! checks (`amtool check-config`); the systemd unit verifies (`systemd-analyze verify`) and
//! grants what mdt needs.
//!
//! Needs `promtool` (Debian's `prometheus`, installed by scripts/install-deps.sh): without it
//! the promtool checks are skipped, unless `CI=true`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn deploy(path: &str) -> PathBuf {
    common::repo_root().join("deploy").join(path)
}

fn promtool() -> Option<PathBuf> {
    tool("promtool", "prometheus")
}

#[test]
fn prometheus_rules_check_and_pass_their_tests() {
    let Some(promtool) = promtool() else { return };
    for args in [
        vec!["check", "rules", "rules.yml"],
        vec!["test", "rules", "rules_test.yml"],
    ] {
        let mut cmd = Command::new(&promtool);
        cmd.args(&args).current_dir(deploy("prometheus"));
        succeeds(cmd, &format!("promtool {}", args.join(" ")));
    }
}

/// Runs a checker; fails with what it printed unless it succeeded.
fn succeeds(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The metric names mdt documents (docs/monitoring.md's table), with a histogram's series.
fn exported() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(common::repo_root().join("docs/monitoring.md")).unwrap();
    let mut names = BTreeSet::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap_or("");
        for name in first.split('`').skip(1).step_by(2) {
            names.insert(name.to_string());
            if line.contains("| histogram |") {
                for s in ["_bucket", "_count", "_sum"] {
                    names.insert(format!("{name}{s}"));
                }
            }
        }
    }
    names
}

/// mdt's metric names in `text` (PromQL, or YAML holding it): words that start like
/// them, recorded series (with a `:`) left out.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut word = String::new();
    for c in text.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        let w = std::mem::take(&mut word);
        let metric =
            w.starts_with("go_map_") || w.starts_with("map_delete_") || w.starts_with("mdt_");
        if metric && !w.contains(':') {
            used.insert(w);
        }
    }
    used
}

#[test]
fn the_rules_read_metrics_mdt_exports() {
    let rules = std::fs::read_to_string(deploy("prometheus/rules.yml")).unwrap();
    let exported = exported();
    assert!(
        exported.contains("go_map_bytes")
            && exported.contains("map_delete_duration_seconds_bucket"),
        "{exported:?}"
    );
    let code: String = rules
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let used = metric_names(&code);
    assert!(used.len() >= 8, "{used:?}");
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "rules.yml reads metrics mdt does not export: {unknown:?}"
    );
}

/// The dashboard's queries: (panel title, expression).
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/mdt.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(d["title"].is_string() && d["uid"].is_string(), "{d}");
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr").to_string();
            out.push((p["title"].as_str().unwrap_or("").to_string(), expr));
        }
    }
    out
}

#[test]
fn the_dashboard_reads_metrics_mdt_exports_in_valid_promql() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 8, "{queries:?}");
    let exported = exported();
    for (title, expr) in &queries {
        let unknown: Vec<_> = metric_names(expr)
            .into_iter()
            .filter(|m| !exported.contains(m))
            .collect();
        assert!(
            unknown.is_empty(),
            "{title}: {expr} reads {unknown:?}, which mdt does not export"
        );
    }
    // promtool parses PromQL only in rules: one recording rule per query (Grafana's
    // $__rate_interval as 5m).
    let Some(promtool) = promtool() else { return };
    let dir = common::Scratch::new("deploy-dashboard");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in queries.iter().enumerate() {
        let expr = expr.replace("$__rate_interval", "5m").replace('\'', "''");
        rules += &format!("      - record: dashboard:query{i}\n        expr: '{expr}'\n");
    }
    let file = dir.path("dashboard-rules.yml");
    std::fs::write(&file, rules).unwrap();
    let mut cmd = Command::new(&promtool);
    cmd.args(["check", "rules"]).arg(&file);
    succeeds(cmd, "the dashboard's queries");
}

/// A program on PATH, or None (then the check is skipped, unless CI=true).
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(!common::is_ci(), "{name} is missing (Debian's {package})");
        common::note(&format!("{name} not found: its check is skipped"));
    }
    found
}

#[test]
fn the_systemd_unit_verifies_and_grants_what_mdt_needs() {
    let unit = std::fs::read_to_string(deploy("systemd/mdt@.service")).unwrap();
    // What mdt needs (tests/privileges.rs proves these are enough), no more, and never root's all.
    let caps = "CAP_BPF CAP_PERFMON CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_KILL";
    for key in ["CapabilityBoundingSet=", "AmbientCapabilities="] {
        assert!(unit.contains(&format!("\n{key}{caps}\n")), "{key}");
    }
    assert!(
        unit.contains("mdt trace --quiet --pid "),
        "traces one process"
    );
    // Stopped with its service on request (PartOf), but not taken down when the service dies
    // by itself (BindsTo would stop mdt before its last metrics were scraped).
    assert!(unit.contains("\nPartOf=%i.service\n") && !unit.contains("BindsTo="));
    assert!(
        unit.contains("\nWantedBy=%i.service\n"),
        "starts with its service"
    );
    assert!(unit.contains("--linger="), "serves how the target ended");
    let Some(analyze) = tool("systemd-analyze", "systemd") else {
        return;
    };
    // An instance of it next to the service it names, checked offline.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mdt@.service"), &unit).unwrap();
    std::fs::write(
        dir.path().join("myapp.service"),
        "[Unit]\nDescription=app\n[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(dir.path().join("mdt@myapp.service"))
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.path().display()))
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
}

#[test]
fn the_alertmanager_route_checks_and_routes_every_shipped_alert() {
    let Some(amtool) = tool("amtool", "prometheus-alertmanager") else {
        return;
    };
    let mut cmd = Command::new(&amtool);
    cmd.args(["check-config", "alertmanager.yml"])
        .current_dir(deploy("alertmanager"));
    succeeds(cmd, "amtool check-config");
    // Every alert the rules define goes where it is meant to (as Alertmanager routes it): the
    // fatal error to the pager, mdt's own health to its operators, the rest to the maps' owners.
    let rules = std::fs::read_to_string(deploy("prometheus/rules.yml")).unwrap();
    let alerts: Vec<_> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 7, "{alerts:?}");
    for alert in alerts {
        let expected = match alert {
            "GoMapFatalError" => "oncall-pager",
            a if a.starts_with("Mdt") => "mdt-operators",
            _ => "map-owners",
        };
        let out = Command::new(&amtool)
            .args(["config", "routes", "test", "--config.file=alertmanager.yml"])
            .arg(format!("alertname={alert}"))
            .args([
                "map_type=main.T",
                "instance=host:9464",
                "message=concurrent map writes",
            ])
            .current_dir(deploy("alertmanager"))
            .output()
            .unwrap();
        let receiver = String::from_utf8_lossy(&out.stdout);
        assert_eq!(receiver.trim(), expected, "{alert}");
    }
}

/// The unit's ExecStart command line as the shell gets it, for service `name`, with `mdt`
/// for /usr/local/bin/mdt.
fn exec_start(unit: &str, name: &str, mdt: &Path) -> String {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/bin/sh -c '"))
        .and_then(|l| l.strip_suffix('\''))
        .expect("ExecStart=/bin/sh -c '...'");
    line.replace("$$", "$")
        .replace("%i", name)
        .replace("/usr/local/bin/mdt", &mdt.display().to_string())
}

/// The unit's own command, run as systemd would run it (`systemctl` answering the service's
/// main pid), traces that process to its end, exactly.
#[test]
fn the_systemd_units_command_traces_the_services_main_process() {
    if !common::require_root_bpf() {
        return;
    }
    let unit = std::fs::read_to_string(deploy("systemd/mdt@.service")).unwrap();
    let tc = common::toolchains().last().unwrap().clone();
    let bin = common::build_fixture("deletes", &tc, common::Variant::Plain);
    let dir = common::Scratch::new("unit");
    let go = dir.path("go");
    let mut target = Command::new(&bin);
    target.arg("-wait-file").arg(&go);
    let service = common::proc::Proc::spawn("myapp", target, Stdio::null());
    // A systemctl that knows one service, as `systemctl show` prints its main pid.
    let fake = dir.path("bin");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(
        fake.join("systemctl"),
        format!(
            "#!/bin/sh\n[ \"$*\" = 'show --property=MainPID --value myapp.service' ] && echo {} && exit 0\necho \"systemctl $*: unknown\" >&2; exit 1\n",
            service.pid()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        fake.join("systemctl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let default_args = unit
        .lines()
        .find_map(|l| l.strip_prefix("Environment=\"MDT_ARGS="))
        .and_then(|l| l.strip_suffix('"'))
        .expect("the default MDT_ARGS");
    let port = common::free_port();
    let args = default_args
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{port}"))
        .replace("--linger=2m", "--linger=1s");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(exec_start(
            &unit,
            "myapp",
            Path::new(env!("CARGO_BIN_EXE_mdt")),
        ))
        .env("MDT_ARGS", args)
        .env(
            "PATH",
            format!("{}:{}", fake.display(), std::env::var("PATH").unwrap()),
        );
    let mut mdt = common::proc::Proc::spawn("the unit's ExecStart", cmd, Stdio::null());
    mdt.wait_announce();
    std::fs::write(&go, "").unwrap();
    let f = mdt.finish(std::time::Duration::from_secs(60), "the service's end");
    assert!(f.status.success(), "{}: {}", f.status, f.stderr);
    let (deletes, clears) = common::expected_deletes(&tc, common::Variant::Plain, 1);
    assert!(
        f.stderr
            .contains(&format!("{deletes} deletes, {clears} clears")),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("exit status 0"), "{}", f.stderr);
    drop(service);
}
