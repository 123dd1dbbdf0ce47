//! The deployment files (`deploy/`): the Prometheus rules parse (`promtool check rules`), do
//! what their unit tests say (`promtool test rules`: sample series in, the alerts and recorded
//! values expected out), and read only metrics mdt exports (the table of docs/monitoring.md).
//!
//! Needs `promtool` (Debian's `prometheus`, installed by scripts/install-deps.sh): without it
//! the promtool checks are skipped, unless `CI=true`.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn deploy(path: &str) -> PathBuf {
    common::repo_root().join("deploy").join(path)
}

fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !common::is_ci(),
            "promtool is missing (scripts/install-deps.sh installs prometheus)"
        );
        common::note("promtool not found: the rules checks are skipped");
    }
    found
}

#[test]
fn prometheus_rules_check_and_pass_their_tests() {
    let Some(promtool) = promtool() else { return };
    for args in [
        vec!["check", "rules", "rules.yml"],
        vec!["test", "rules", "rules_test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(deploy("prometheus"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
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

#[test]
fn the_rules_read_metrics_mdt_exports() {
    let rules = std::fs::read_to_string(deploy("prometheus/rules.yml")).unwrap();
    let exported = exported();
    assert!(
        exported.contains("go_map_bytes")
            && exported.contains("map_delete_duration_seconds_bucket"),
        "{exported:?}"
    );
    let mut used = BTreeSet::new();
    for line in rules.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let expr = line.strip_prefix("expr:").unwrap_or(line);
        let mut word = String::new();
        for c in expr.chars().chain([' ']) {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                word.push(c);
                continue;
            }
            let w = std::mem::take(&mut word);
            let metric =
                w.starts_with("go_map_") || w.starts_with("map_delete_") || w.starts_with("mdt_");
            // Label values and annotation text are quoted; metric names are followed by
            // `{`, `[`, `)` or a space in the expressions.
            if metric && !w.contains(':') {
                used.insert(w);
            }
        }
    }
    assert!(used.len() >= 8, "{used:?}");
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "rules.yml reads metrics mdt does not export: {unknown:?}"
    );
}
