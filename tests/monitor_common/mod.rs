//! Helpers shared by tests/metrics.rs and tests/alerts.rs: processes in their own process
//! group (killed on drop, so no process outlives a failed test), pipes collected in threads,
//! scratch directories, free loopback ports, small HTTP helpers.
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// mdt attached and announced itself (debug build, loaded machine).
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
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

/// (bytes so far, pipe closed) and its condition variable.
type Shared = Arc<(Mutex<(Vec<u8>, bool)>, Condvar)>;

/// Collects everything a child writes to one pipe, in a thread.
pub struct Collector {
    state: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    fn new<R: Read + Send + 'static>(mut pipe: R) -> Collector {
        let state = Arc::new((Mutex::new((Vec::new(), false)), Condvar::new()));
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1 << 16];
            loop {
                let n = pipe.read(&mut buf).unwrap_or(0);
                let (lock, cv) = &*st;
                let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    g.1 = true;
                    cv.notify_all();
                    return;
                }
                g.0.extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        Collector {
            state,
            thread: Some(thread),
        }
    }

    /// Waits until `pred(text so far)` holds; false on timeout or when the pipe closes first.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.state;
        let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if pred(&String::from_utf8_lossy(&g.0)) {
                return true;
            }
            let now = Instant::now();
            if g.1 || now >= deadline {
                return false;
            }
            g = cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.state.0.lock().unwrap_or_else(|e| e.into_inner()).0)
            .into_owned()
    }

    fn finish(&mut self) -> String {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.text()
    }
}

/// A child in its own process group, killed (group and all) on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    status: Option<ExitStatus>,
    pub stdout: Collector,
    pub stderr: Collector,
    pub stdin: Option<ChildStdin>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = crate::common::spawn_retrying(&mut cmd, name);
        let stdout = Collector::new(child.stdout.take().unwrap());
        let stderr = Collector::new(child.stderr.take().unwrap());
        let stdin = child.stdin.take();
        Proc {
            name: name.to_string(),
            child,
            status: None,
            stdout,
            stderr,
            stdin,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for its exit; on timeout kills it and fails with its stderr.
    pub fn wait(&mut self, timeout: Duration, what: &str) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                // SAFETY: kill of our own process group (its leader is reaped, the group id
                // cannot have been reused by an unrelated group while members remain).
                unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
                self.status = Some(s);
                return s;
            }
            if Instant::now() >= deadline {
                let err = self.stderr.text();
                self.kill();
                panic!(
                    "{}: {what}: still running after {timeout:?}; stderr:\n{err}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the exit and both pipes; returns (status, stdout, stderr).
    pub fn finish(&mut self, timeout: Duration, what: &str) -> (ExitStatus, String, String) {
        self.stdin.take();
        let s = self.wait(timeout, what);
        (s, self.stdout.finish(), self.stderr.finish())
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill of our own, not yet reaped child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    pub fn kill(&mut self) {
        if self.status.is_none() {
            // SAFETY: the child is not reaped yet, so the group id is still ours.
            unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
            self.status = self.child.wait().ok();
        }
    }

    /// mdt: waits for its "tracing pid N" line.
    pub fn wait_announce(&self) {
        assert!(
            self.stderr
                .wait_for(ATTACH_TIMEOUT, |t| t.contains("mdt: tracing pid ")),
            "{}: mdt did not announce tracing (or exited); stderr:\n{}",
            self.name,
            self.stderr.text()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin.take();
        self.kill();
    }
}

/// A scratch directory under target/tmp, removed when the test passes.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = crate::common::target_dir().join("tmp").join(format!(
            "{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

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
