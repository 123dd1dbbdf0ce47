//! Finding the target: a running process by pid (its executable is read
//! through `/proc/PID/exe`, which works across mount namespaces).

use std::path::PathBuf;

pub mod launch;
pub mod memory;

use anyhow::{bail, Result};

/// `/proc/PID/exe` of a live process, with one-line errors for a missing
/// process or a missing privilege.
pub fn exe_of(pid: i32) -> Result<PathBuf> {
    if pid <= 0 {
        bail!("invalid pid {pid}: give the id of a running process");
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if !proc_dir.exists() {
        bail!("no such process: {pid}");
    }
    let exe = proc_dir.join("exe");
    match std::fs::File::open(&exe) {
        Ok(_) => Ok(exe),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "permission denied reading /proc/{pid}/exe: run mdt as root (or with CAP_SYS_PTRACE) to read another user's process"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("process {pid} has no executable (a kernel thread, or it has exited)")
        }
        Err(e) => bail!("cannot read /proc/{pid}/exe: {e}"),
    }
}

/// Tells when a process we did not start has exited (a pidfd becomes
/// readable then, zombie or not).
pub struct ProcessWatch {
    fd: i32,
}

impl ProcessWatch {
    pub fn open(pid: i32) -> Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ESRCH) {
                bail!("no such process: {pid}");
            }
            bail!("cannot watch process {pid}: {err}");
        }
        Ok(ProcessWatch { fd })
    }

    pub fn exited(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout: poll only reads/writes it.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents & libc::POLLIN != 0
    }
}

impl Drop for ProcessWatch {
    fn drop(&mut self) {
        // SAFETY: we own this fd and close it once.
        unsafe { libc::close(self.fd) };
    }
}

/// Checks that this process may load BPF programs and read other processes:
/// root, or CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) and CAP_SYS_PTRACE.
pub fn check_privileges() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    const CAP_SYS_PTRACE: u32 = 19;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let bpf = has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON));
    if !bpf || !has(CAP_SYS_PTRACE) {
        bail!("permission denied: mdt trace needs root, or the capabilities CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE (try sudo)");
    }
    Ok(())
}

/// Checks the kernel features the probes need, with what to do if absent.
pub fn check_kernel() -> Result<()> {
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!("this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): mdt needs a kernel built with CONFIG_DEBUG_INFO_BTF=y");
    }
    if !std::path::Path::new("/sys/bus/event_source/devices/uprobe").exists() {
        bail!("this kernel has no uprobes (/sys/bus/event_source/devices/uprobe is missing): mdt needs CONFIG_UPROBE_EVENTS=y");
    }
    Ok(())
}
