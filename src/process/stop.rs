//! A process stopped for a look (crash forensics): waiting until all its
//! threads are in the stop, and letting it go on.

use std::time::{Duration, Instant};

/// Threads of `pid` (`/proc/PID/task`), and how many are stopped (state
/// `T`/`t`); dead and zombie threads are left out.
pub fn thread_states(pid: i32) -> (u32, u32) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let (mut threads, mut stopped) = (0, 0);
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(state) = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
        else {
            continue;
        };
        match state {
            "Z" | "X" | "x" => {}
            "T" | "t" => {
                threads += 1;
                stopped += 1;
            }
            _ => threads += 1,
        }
    }
    (threads, stopped)
}

/// Waits until every thread of `pid` is stopped, at most `timeout`;
/// returns the last (threads, stopped).
pub fn wait_stopped(pid: i32, timeout: Duration) -> (u32, u32) {
    let until = Instant::now() + timeout;
    loop {
        let (threads, stopped) = thread_states(pid);
        if threads == stopped || Instant::now() >= until {
            return (threads, stopped);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Whether mdt may signal `pid` (a `kill(pid, 0)`): without that (a process
/// of another user, and no CAP_KILL) it could stop the process from the
/// probe but never let it go on.
pub fn can_signal(pid: i32) -> bool {
    // SAFETY: kill takes a pid and a signal number; it touches no memory.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Lets a stopped process go on (SIGCONT); says so on stderr if it could
/// not (the process would stay stopped).
pub fn resume(pid: i32) -> bool {
    // SAFETY: kill takes a pid and a signal number; it touches no memory.
    if unsafe { libc::kill(pid, libc::SIGCONT) } == 0 {
        return true;
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ESRCH) {
        eprintln!("mdt: error: could not let process {pid} go on after stopping it (SIGCONT: {e}); it stays stopped until it gets a SIGCONT");
    }
    false
}
