//! Finding the target: a running process by pid (its executable is read
//! through `/proc/PID/exe`, which works across mount namespaces).

use std::path::PathBuf;

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
