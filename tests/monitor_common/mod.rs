//! Helpers shared by tests/metrics.rs, tests/alerts.rs and tests/labels.rs: the mdt command, scratch
//! directories, free loopback ports, small HTTP helpers, the Prometheus text format. Child
//! processes are `common::proc::Proc`.
#![allow(dead_code)]

pub mod receiver;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub fn mdt_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mdt"))
}

/// `mdt ARGS` without the sampling variable.
pub fn mdt_cmd<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(mdt_bin());
    cmd.args(args)
        .env_remove("MAP_DELETE_TRACER_SAMPLING_RATE")
        .env_remove("RUST_BACKTRACE");
    cmd
}

/// A scratch directory under target/tmp, removed when the test passes.
#[allow(unused_imports)] // not every test binary names it through here
pub use crate::common::Scratch;

#[allow(unused_imports)] // not every test binary names it through here
pub use crate::common::free_port;

/// GET `url` (loopback only): (status, body).
pub fn http_get(url: &str) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Polls `f` every 100 ms until it returns Some, or fails after `timeout` with `what` and the
/// last value `last` describes.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not after {timeout:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `which PROGRAM`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A tool the tests need (promtool, prometheus): missing fails under CI=true, else skips.
pub fn require_program(name: &str) -> Option<PathBuf> {
    match find_program(name) {
        Some(p) => Some(p),
        None if crate::common::is_ci() => panic!(
            "{name} is not installed (Debian package `prometheus`; scripts/install-deps.sh installs it)"
        ),
        None => {
            crate::common::note(&format!(
                "SKIP {}: {name} is not installed (Debian package `prometheus`)",
                std::thread::current().name().unwrap_or("?")
            ));
            None
        }
    }
}

/// One sample: (name, labels, value).
pub type Sample = (String, Vec<(String, String)>, f64);

/// Parses the Prometheus text format into samples.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n.to_string(), parse_labels(rest.trim_end_matches('}'))),
            None => (head.to_string(), Vec::new()),
        };
        out.push((name, labels, value));
    }
    out
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, o)) => value.push(o),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((name.trim_start_matches(',').to_string(), value));
        rest = &after[end..];
    }
    out
}

/// `mdt ARGS` fails: a non-zero exit, one line on stderr starting with `mdt: ` that contains
/// every needle, nothing on stdout.
pub fn expect_one_line_error(args: &[&str], needles: &[&str]) {
    let out = mdt_cmd(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mdt");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?}: exited 0; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.starts_with("mdt: "), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {err:?} does not say {n:?}");
    }
    assert!(
        out.stdout.is_empty(),
        "{args:?}: stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
