//! Child processes for the end-to-end tests: each in its own process group, stdout and stderr
//! piped and collected in threads, stdin as the caller chooses. On drop (a failed assertion, a
//! timeout) the whole group is killed and the child reaped, so no process outlives its test, and
//! a hung child fails its test instead of hanging it.
//!
//! ```ignore
//! let mut p = Proc::spawn("mdt", cmd, Stdio::null());
//! p.wait_announce(); // "mdt: tracing pid N" on stderr
//! assert!(p.stdout.wait_for(TIMEOUT, |t| t.contains("done")), "{}", p.stderr.text());
//! p.signal(libc::SIGINT);
//! let f = p.finish(TIMEOUT, "mdt after SIGINT"); // f.status, f.stdout (bytes), f.stderr
//! ```

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What mdt writes to stderr once its probes are attached.
pub const ANNOUNCE: &str = "mdt: tracing pid ";
/// mdt attached and announced itself (debug build, loaded machine).
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
/// The pipes to close once the child exited (its group is killed by then).
const PIPE_TIMEOUT: Duration = Duration::from_secs(30);

/// The bytes read so far and whether the pipe is closed, and a condition variable signalled
/// on every change.
type Shared = Arc<(Mutex<(Vec<u8>, bool)>, Condvar)>;

/// Collects everything a child writes to one pipe, in a thread; waiters are woken per chunk.
pub struct Collector {
    state: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    fn new<R: Read + Send + 'static>(mut pipe: R) -> Collector {
        let state: Shared = Arc::new((Mutex::new((Vec::new(), false)), Condvar::new()));
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

    fn lock(&self) -> MutexGuard<'_, (Vec<u8>, bool)> {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `done(bytes so far, pipe closed)` holds; false on timeout, or when the pipe
    /// closed and it still does not hold.
    fn wait_state(&self, timeout: Duration, done: impl Fn(&[u8], bool) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if done(&g.0, g.1) {
                return true;
            }
            let now = Instant::now();
            if g.1 || now >= deadline {
                return false;
            }
            g = self
                .state
                .1
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until `pred(text so far)` holds; false on timeout or when the pipe closes first.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        self.wait_state(timeout, |bytes, _| pred(&String::from_utf8_lossy(bytes)))
    }

    /// The text so far (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().0).into_owned()
    }

    /// How many bytes so far.
    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything, once the pipe is closed (every writer exited); fails after `timeout`.
    fn finish(&mut self, timeout: Duration, what: &str) -> Vec<u8> {
        assert!(
            self.wait_state(timeout, |_, closed| closed),
            "{what}: pipe still open {timeout:?} after the exit"
        );
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.lock().0.clone()
    }
}

/// How a child ended and everything it wrote.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A child in its own process group, with its pipes collected; killed (group and all) and
/// reaped on drop.
pub struct Proc {
    /// For messages: what the child is, in the test's words.
    pub name: String,
    child: Child,
    status: Option<ExitStatus>,
    pub stdout: Collector,
    pub stderr: Collector,
    /// Set when spawned with `Stdio::piped()`; drop it (`take()`) to send EOF.
    pub stdin: Option<ChildStdin>,
}

impl Proc {
    /// Spawns `cmd` in a new process group, stdin from `stdin`, stdout and stderr piped and
    /// collected (retried while the executable is busy being written).
    pub fn spawn(name: &str, mut cmd: Command, stdin: Stdio) -> Proc {
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = crate::common::spawn_retrying(&mut cmd, name);
        let stdout = Collector::new(child.stdout.take().expect("piped stdout"));
        let stderr = Collector::new(child.stderr.take().expect("piped stderr"));
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

    /// Has it exited? Does not reap it (WNOWAIT), so its pid and process group stay ours.
    pub fn has_exited(&self) -> bool {
        if self.status.is_some() {
            return true;
        }
        // SAFETY: siginfo_t is plain old data, for which all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own, not yet reaped child, with a valid siginfo_t to fill.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid to read for a WEXITED result (0 if nothing exited).
        r == 0 && unsafe { info.si_pid() } == self.pid()
    }

    /// Polls `pred` (every 10 ms) until it holds; false after `timeout`.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&Proc) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pid of this process's child (one a wrapper such as `unshare --fork` or `setsid`
    /// forked) once that child runs `bin`; fails after `timeout`.
    pub fn child_running(&self, bin: &Path, timeout: Duration) -> i32 {
        let children = format!("/proc/{0}/task/{0}/children", self.pid());
        let mut pid = None;
        let started = self.wait_until(timeout, |_| {
            pid = std::fs::read_to_string(&children)
                .ok()
                .and_then(|c| c.split_whitespace().next()?.parse::<i32>().ok())
                .filter(|c| std::fs::read_link(format!("/proc/{c}/exe")).is_ok_and(|e| e == bin));
            pid.is_some()
        });
        assert!(
            started,
            "{}: no child running {} within {timeout:?}",
            self.name,
            bin.display()
        );
        pid.unwrap()
    }

    /// Waits for the exit, then kills what it left in its group and reaps it; on timeout kills
    /// the group and fails with `what` and the child's stderr.
    pub fn wait(&mut self, timeout: Duration, what: &str) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        while !self.has_exited() {
            if Instant::now() >= deadline {
                let err = self.stderr.text();
                self.kill();
                panic!(
                    "{}: {what}: still running after {timeout:?}; stderr so far:\n{err}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Anything it left behind in its group goes with it (the zombie keeps the pgid ours).
        // SAFETY: kill of our own process group.
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        let s = self.child.wait().expect("wait");
        self.status = Some(s);
        s
    }

    /// Closes its stdin (if piped), waits for the exit as [`Proc::wait`] does and for both
    /// pipes to close; returns the status and both outputs.
    pub fn finish(&mut self, timeout: Duration, what: &str) -> Finished {
        self.stdin.take();
        let status = self.wait(timeout, what);
        let ctx = format!("{}: {what}", self.name);
        let stdout = self.stdout.finish(PIPE_TIMEOUT, &format!("{ctx}: stdout"));
        let stderr = self.stderr.finish(PIPE_TIMEOUT, &format!("{ctx}: stderr"));
        Finished {
            status,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// [`Proc::finish`], and the child must have exited 0: fails with its name, `what`, the
    /// status and its stderr otherwise.
    pub fn finish_ok(&mut self, timeout: Duration, what: &str) -> Finished {
        let f = self.finish(timeout, what);
        assert!(
            f.status.success(),
            "{}: {what}: {}; stderr:\n{}",
            self.name,
            f.status,
            f.stderr
        );
        f
    }

    /// Sends `sig` to the child (not its group).
    pub fn signal(&self, sig: i32) {
        assert!(self.status.is_none(), "{}: signal after exit", self.name);
        // SAFETY: kill of our own, not yet reaped child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Kills the whole group and reaps the child (nothing if already reaped).
    pub fn kill(&mut self) {
        if self.status.is_none() {
            // SAFETY: the child is not reaped yet, so the group id is still ours.
            unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
            self.status = self.child.wait().ok();
        }
    }

    /// mdt: waits for its "tracing pid N" line on stderr; fails if it exits first.
    pub fn wait_announce(&self) {
        assert!(
            self.stderr
                .wait_for(ATTACH_TIMEOUT, |t| t.contains(ANNOUNCE)),
            "{}: mdt did not announce tracing within {ATTACH_TIMEOUT:?} (or exited); stderr:\n{}",
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
