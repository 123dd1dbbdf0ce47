//! Watching a process mdt attached to but did not start: when it exits (its
//! pidfd becomes readable, zombie or not) and with which status, which only
//! its parent can `wait` for: from `/proc/PID/stat` while it is a zombie,
//! or, once its parent reaped it, from its pidfd (`PIDFD_GET_INFO`, Linux
//! 6.15 and later). Either may be unavailable: then the status is unknown.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Result};

use crate::process::launch::ExitStatus;

pub struct ProcessWatch {
    pid: i32,
    pidfd: OwnedFd,
}

/// `struct pidfd_info` of <linux/pidfd.h> (the fields up to exit_code, and
/// those after it, zeroed).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
    coredump_mask: u32,
    spare: u32,
}

const PIDFD_INFO_EXIT: u64 = 1 << 3;
/// `_IOWR(PIDFS_IOCTL_MAGIC, 11, struct pidfd_info)`.
const PIDFD_GET_INFO: u64 =
    (3 << 30) | ((std::mem::size_of::<PidfdInfo>() as u64) << 16) | (0xFF << 8) | 11;

impl ProcessWatch {
    /// Opens a pidfd on `pid` now, while it runs, so that its exit and exit
    /// status can be asked for later.
    pub fn open(pid: i32) -> Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags; it returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ESRCH) {
                bail!("no such process: {pid}");
            }
            bail!("cannot watch process {pid}: {err}");
        }
        // SAFETY: `fd` was just returned to us and nothing else owns it.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(ProcessWatch { pid, pidfd })
    }

    /// Another handle on the same process (a second reader of its exit).
    pub fn try_clone(&self) -> Result<Self> {
        Ok(ProcessWatch {
            pid: self.pid,
            pidfd: self.pidfd.try_clone()?,
        })
    }

    /// Whether the process has exited (zombie or reaped).
    pub fn exited(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd and a zero timeout: poll only reads and
        // writes `pfd`.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents & libc::POLLIN != 0
    }

    /// The exit status, if the process has exited and it can be read. Its
    /// parent may reap it between the two reads (the pidfd has no exit
    /// info yet, the zombie is gone): asked again, a little while.
    pub fn status(&self) -> Option<ExitStatus> {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(200);
        loop {
            let status = self.pidfd_status().or_else(|| self.zombie_status());
            if status.is_some() || !self.exited() || std::time::Instant::now() >= until {
                return status;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn pidfd_status(&self) -> Option<ExitStatus> {
        let fd = &self.pidfd;
        let mut info = PidfdInfo {
            mask: PIDFD_INFO_EXIT,
            ..Default::default()
        };
        // SAFETY: PIDFD_GET_INFO reads and writes one `struct pidfd_info` of
        // the size encoded in the request; `info` is that struct.
        let r = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                PIDFD_GET_INFO as _,
                &mut info as *mut PidfdInfo,
            )
        };
        (r == 0 && info.mask & PIDFD_INFO_EXIT != 0)
            .then(|| ExitStatus::from_wait_status(info.exit_code))?
    }

    fn zombie_status(&self) -> Option<ExitStatus> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        parse_zombie_stat(&stat)
    }
}

/// The exit code field (52) of a zombie's `/proc/PID/stat`.
fn parse_zombie_stat(stat: &str) -> Option<ExitStatus> {
    // The command name (field 2) may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (the state).
    if fields.first() != Some(&"Z") {
        return None;
    }
    ExitStatus::from_wait_status(fields.get(49)?.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::{Duration, Instant};

    #[test]
    fn zombie_stat_gives_the_exit_code() {
        let stat = "123 (a (b) c) Z 1 123 123 0 -1 4228164 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 \
                    18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 1792\n";
        assert_eq!(parse_zombie_stat(stat), Some(ExitStatus::Code(7)));
        assert_eq!(parse_zombie_stat(&stat.replace(") Z ", ") S ")), None);
    }

    #[test]
    fn status_of_a_process_before_and_after_it_is_reaped() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.2; exit 7"])
            .spawn()
            .unwrap();
        let watch = ProcessWatch::open(child.id() as i32).unwrap();
        assert_eq!(watch.status(), None, "still running");
        assert!(!watch.exited());
        // A zombie (not reaped yet): /proc/PID/stat.
        let deadline = Instant::now() + Duration::from_secs(10);
        while watch.zombie_status().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(watch.exited());
        assert_eq!(watch.status(), Some(ExitStatus::Code(7)));
        child.wait().unwrap();
        // Reaped: the pidfd, on kernels that keep the exit info (6.15+).
        let status = watch.status();
        assert!(
            status.is_none() || status == Some(ExitStatus::Code(7)),
            "{status:?}"
        );
    }
}
