//! The process to trace: a running process by pid (its executable is read
//! through `/proc/PID/exe`, which works across mount namespaces).

use std::path::PathBuf;

pub mod cgroup;
pub mod discover;
pub mod launch;
pub mod memory;
pub mod stop;
pub mod watch;

pub use watch::ProcessWatch;

use anyhow::{bail, Result};

/// When process `pid` started (`/proc/PID/stat` field 22, in clock ticks
/// since boot): the same across an exec, different for another process
/// that got the pid later. None once it is gone.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

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
        // SAFETY: geteuid has no preconditions.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && unsafe { libc::geteuid() } == 0 => bail!(
            "permission denied reading /proc/{pid}/exe: this root process lacks CAP_SYS_PTRACE, which mdt needs to read another process"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "permission denied reading /proc/{pid}/exe: run mdt as root (or with CAP_SYS_PTRACE) to read another user's process"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("process {pid} has no executable (a kernel thread, or it has exited)")
        }
        Err(e) => bail!("cannot read /proc/{pid}/exe: {e}"),
    }
}

/// Checks that this process may load BPF programs and read other processes:
/// CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) and CAP_SYS_PTRACE, which root
/// has unless they were taken away (a container, `setpriv`, systemd's
/// `CapabilityBoundingSet`): so the effective set is checked even for root.
pub fn check_privileges() -> Result<()> {
    let missing = missing_capabilities(effective_capabilities());
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        bail!(
            "permission denied: mdt trace needs the capabilities CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE, and this root process lacks {} (in a container: add them, e.g. docker run --cap-add BPF --cap-add PERFMON --cap-add SYS_PTRACE)",
            missing.join(", ")
        );
    }
    bail!("permission denied: mdt trace needs root, or the capabilities CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE (try sudo)");
}

// Capability numbers (linux/capability.h).
pub const CAP_KILL: u32 = 5;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Whether this process has capability `cap` (a `CAP_*` number) in effect.
pub fn has_capability(cap: u32) -> bool {
    in_set(effective_capabilities(), cap)
}

/// Whether capability set `caps` (a `CapEff` mask) holds `cap`.
fn in_set(caps: u64, cap: u32) -> bool {
    cap < 64 && caps & (1u64 << cap) != 0
}

/// The effective capability set of this process (`CapEff` in /proc/self/status).
fn effective_capabilities() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// The capabilities tracing needs that `caps` lacks (CAP_SYS_ADMIN stands in
/// for CAP_BPF and CAP_PERFMON, as on kernels before 5.8).
fn missing_capabilities(caps: u64) -> Vec<&'static str> {
    let has = |cap: u32| in_set(caps, cap);
    let mut missing = Vec::new();
    if !has(CAP_SYS_ADMIN) {
        if !has(CAP_BPF) {
            missing.push("CAP_BPF");
        }
        if !has(CAP_PERFMON) {
            missing.push("CAP_PERFMON");
        }
    }
    if !has(CAP_SYS_PTRACE) {
        missing.push("CAP_SYS_PTRACE");
    }
    missing
}

/// Checks the kernel features the probes need, with what to do if absent.
pub fn check_kernel() -> Result<()> {
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!("this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): mdt needs a kernel built with CONFIG_DEBUG_INFO_BTF=y");
    }
    if !std::path::Path::new("/sys/bus/event_source/devices/uprobe").exists() {
        bail!("this kernel has no uprobes (/sys/bus/event_source/devices/uprobe is missing): mdt needs CONFIG_UPROBE_EVENTS=y");
    }
    if !in_initial_pid_namespace() {
        bail!("mdt runs in a pid namespace of its own: run it in the host's (podman/docker run --pid=host, Kubernetes hostPID: true), where the process ids the kernel's probes see are mdt's too");
    }
    Ok(())
}

/// Whether this process runs in the initial pid namespace: its inode is
/// the kernel's fixed PROC_PID_INIT_INO (true when it cannot be read).
fn in_initial_pid_namespace() -> bool {
    const PROC_PID_INIT_INO: &str = "pid:[4026531836]";
    std::fs::read_link("/proc/self/ns/pid").map_or(true, |ns| ns.as_os_str() == PROC_PID_INIT_INO)
}

/// True if the running kernel's release is at least `major.minor`
/// (false if it cannot be read).
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| release_version(&r))
        .is_some_and(|v| v >= (major, minor))
}

/// The kernel's tick rate (`CONFIG_HZ`), from its configuration
/// (`/boot/config-RELEASE`, else `/proc/config.gz`); `MDT_KERNEL_HZ`
/// (a number, or `unknown`) says it where neither can be read.
pub fn kernel_hz() -> Option<u32> {
    if let Ok(v) = std::env::var("MDT_KERNEL_HZ") {
        return v.trim().parse().ok().filter(|&hz| hz > 0);
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let boot = std::fs::read_to_string(format!("/boot/config-{}", release.trim()));
    let config = boot.ok().or_else(|| {
        let gz = std::fs::File::open("/proc/config.gz").ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut text).ok()?;
        Some(text)
    })?;
    config_hz(&config)
}

/// `CONFIG_HZ=250` of a kernel configuration.
fn config_hz(config: &str) -> Option<u32> {
    config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ="))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&hz| hz > 0)
}

/// `(major, minor)` of a kernel release string such as "6.18.44-generic".
fn release_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_parse() {
        assert_eq!(release_version("6.18.44\n"), Some((6, 18)));
        assert_eq!(release_version("6.1.0-28-amd64"), Some((6, 1)));
        assert_eq!(release_version("5.15+"), Some((5, 15)));
        assert_eq!(release_version("garbage"), None);
    }

    #[test]
    fn the_tick_rate_is_read_from_the_config() {
        let config = "# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\n";
        assert_eq!(config_hz(config), Some(250));
        assert_eq!(config_hz("CONFIG_HZ_1000=y\n"), None);
        assert_eq!(config_hz("CONFIG_HZ=0\n"), None);
    }

    #[test]
    fn missing_capabilities_are_named() {
        assert!(missing_capabilities(u64::MAX).is_empty());
        assert_eq!(
            missing_capabilities(0),
            ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE"]
        );
        // CAP_SYS_ADMIN + CAP_SYS_PTRACE is enough.
        assert!(missing_capabilities((1 << 21) | (1 << 19)).is_empty());
        // Root in a default container: no BPF, PERFMON, SYS_ADMIN, SYS_PTRACE.
        assert_eq!(
            missing_capabilities(0xa80425fb),
            ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE"]
        );
    }
    #[test]
    fn a_process_has_a_start_time_and_keeps_it() {
        let me = std::process::id() as i32;
        let t = start_time(me).expect("our own start time");
        assert!(t > 0);
        assert_eq!(start_time(me), Some(t));
        assert_eq!(start_time(i32::MAX), None);
    }
}
