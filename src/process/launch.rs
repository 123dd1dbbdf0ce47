//! `mdt trace -- CMD ARGS...`: start the program held just before `exec`,
//! so that every probe is armed before its first instruction runs.
//!
//! std's `Command::spawn` cannot do this (it returns only after `exec`), so
//! this forks by hand: the child blocks reading a pipe, and execs when the
//! parent writes to it.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub struct HeldChild {
    pub pid: i32,
    pub program: PathBuf,
    release_fd: i32,
}

/// Finds `program` the way a shell would (PATH, unless it has a slash).
pub fn resolve_program(program: &OsStr) -> Result<PathBuf> {
    let name = Path::new(program);
    let is_runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file())
            && CString::new(p.as_os_str().as_bytes())
                // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
                .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0)
    };
    if program.as_bytes().contains(&b'/') {
        if !name.exists() {
            bail!("cannot run {}: no such file", name.display());
        }
        if !is_runnable(name) {
            bail!("cannot run {}: not an executable file", name.display());
        }
        return Ok(name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_runnable(p))
        .with_context(|| format!("cannot run {}: command not found", name.display()))
}

/// Forks a child that will exec `program` with `args` once released.
/// `argv0` is the command as the user typed it.
pub fn spawn_held(program: &Path, argv0: &OsStr, args: &[OsString]) -> Result<HeldChild> {
    let path =
        CString::new(program.as_os_str().as_bytes()).context("program path has a NUL byte")?;
    let mut argv = vec![CString::new(argv0.as_bytes()).context("the command has a NUL byte")?];
    for a in args {
        argv.push(CString::new(a.as_bytes()).context("an argument has a NUL byte")?);
    }
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());

    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    // SAFETY: fork is called with everything the child needs prepared in
    // advance; the child only calls async-signal-safe functions (read,
    // execv, _exit) before exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        // SAFETY: in the child: async-signal-safe calls only, on fds and
        // pointers prepared before the fork, which stay valid until exec.
        unsafe {
            libc::close(write_fd);
            let mut byte = 0u8;
            let n = libc::read(read_fd, (&raw mut byte).cast(), 1);
            if n != 1 {
                // The tracer went away without releasing us: don't run untraced.
                libc::_exit(126);
            }
            libc::execv(path.as_ptr(), argv_ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    // SAFETY: read_fd is our copy of the pipe's read end, not used again.
    unsafe { libc::close(read_fd) };
    Ok(HeldChild {
        pid,
        program: program.to_path_buf(),
        release_fd: write_fd,
    })
}

impl HeldChild {
    /// Lets the child exec its program.
    pub fn release(&mut self) -> Result<()> {
        if self.release_fd < 0 {
            return Ok(());
        }
        let byte = 1u8;
        // SAFETY: release_fd is the open write end of our pipe; we write one
        // byte from a valid local and then close it exactly once.
        let n = unsafe { libc::write(self.release_fd, (&raw const byte).cast(), 1) };
        // SAFETY: as above; the fd is not used after this.
        unsafe { libc::close(self.release_fd) };
        self.release_fd = -1;
        if n != 1 {
            bail!("could not start the traced program");
        }
        Ok(())
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        if self.release_fd >= 0 {
            // SAFETY: closing our own write end; the child then exits 126.
            unsafe { libc::close(self.release_fd) };
        }
    }
}

/// How a child ended, as a shell would report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// Decodes a `waitpid`-style status; None if the process has not ended.
    pub fn from_wait_status(status: i32) -> Option<ExitStatus> {
        if libc::WIFEXITED(status) {
            Some(ExitStatus::Code(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(ExitStatus::Signal(libc::WTERMSIG(status)))
        } else {
            None
        }
    }

    /// The status to exit with ourselves: the code, or 128 + the signal.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit status {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Reaps `pid` if it has exited (never blocks).
pub fn try_wait(pid: i32) -> Option<ExitStatus> {
    wait(pid, libc::WNOHANG)
}

/// Waits for `pid` to exit and reaps it.
pub fn wait_blocking(pid: i32) -> Option<ExitStatus> {
    wait(pid, 0)
}

fn wait(pid: i32, flags: i32) -> Option<ExitStatus> {
    let mut status = 0;
    // SAFETY: waitpid on our own child; `status` is a valid int.
    let r = unsafe { libc::waitpid(pid, &mut status, flags) };
    if r != pid {
        return None;
    }
    ExitStatus::from_wait_status(status)
}
