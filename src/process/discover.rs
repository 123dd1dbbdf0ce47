//! The node's processes, from `/proc`: who each one is (its command name,
//! executable, cgroups and container), and the filters of node-wide
//! tracing (`--comm`, `--exe`, `--container`, `--cgroup`).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use regex::Regex;

use super::cgroup::{Cgroups, Container};

/// One process of the node.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub pid: i32,
    /// `/proc/PID/comm`: the thread group leader's name (at most 15 bytes).
    pub comm: String,
    /// Where its executable is, as the process sees it (in its own mount
    /// namespace; ` (deleted)` when replaced since it started).
    pub exe: PathBuf,
    /// The executable's (device, inode), through `/proc/PID/exe`: one per
    /// distinct binary, whatever mount namespace it is seen from.
    pub exe_id: (u64, u64),
    pub cgroups: Cgroups,
    pub container: Option<Container>,
}

impl ProcessInfo {
    /// Reads what `/proc` says of `pid`; None for a kernel thread (no
    /// executable) or a process that is gone.
    pub fn of(pid: i32) -> Option<Self> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let exe = std::fs::read_link(dir.join("exe")).ok()?;
        let meta = std::fs::metadata(dir.join("exe")).ok()?;
        // Bytes: the kernel cuts a name at 15 bytes, in a character or not.
        let comm = String::from_utf8_lossy(&std::fs::read(dir.join("comm")).ok()?).into_owned();
        let cgroups = Cgroups::of(pid).unwrap_or_default();
        Some(ProcessInfo {
            pid,
            comm: comm.trim_end_matches('\n').to_string(),
            exe,
            exe_id: (meta.dev(), meta.ino()),
            container: cgroups.container(),
            cgroups,
        })
    }
}

impl ProcessInfo {
    /// The process as records name it.
    pub fn identity(&self) -> crate::events::process::Process {
        crate::events::process::Process {
            pid: self.pid as u32,
            comm: self.comm.clone(),
            exe: self.exe.display().to_string(),
            container_id: self.container.as_ref().map(|c| c.id.clone()),
            pod_uid: self.container.as_ref().and_then(|c| c.pod_uid.clone()),
        }
    }
}

/// Process `pid` as records name it. `launched`: the program mdt launched
/// it to run, which /proc does not name yet while it is held before its
/// exec.
pub fn identity(pid: i32, launched: Option<&std::path::Path>) -> crate::events::process::Process {
    let Some(program) = launched else {
        return ProcessInfo::of(pid).map_or_else(
            || crate::events::process::Process {
                pid: pid as u32,
                ..Default::default()
            },
            |p| p.identity(),
        );
    };
    let exe = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    // The kernel names a process after the file name it was exec'd by (a
    // symlink's, not its target's), cut at 15 bytes.
    let name = program
        .file_name()
        .map(|n| n.as_encoded_bytes())
        .unwrap_or_default();
    let comm = String::from_utf8_lossy(&name[..name.len().min(15)]).into_owned();
    let container = Cgroups::of(pid).ok().and_then(|c| c.container());
    crate::events::process::Process {
        pid: pid as u32,
        comm,
        exe: exe.display().to_string(),
        container_id: container.as_ref().map(|c| c.id.clone()),
        pod_uid: container.and_then(|c| c.pod_uid),
    }
}

/// The pids of `/proc`, smallest first, mdt's own left out.
pub fn pids() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out: Vec<i32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&p: &i32| p > 0 && p != me)
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// Which processes node-wide tracing takes: all of them, or those every
/// given filter keeps.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// `--comm REGEX`, on the command name.
    pub comm: Option<Regex>,
    /// `--exe REGEX`, on the executable's path.
    pub exe: Option<Regex>,
    /// `--container ID`: the container's id, or a prefix of it (as
    /// `docker ps` shows it, 12 digits).
    pub container: Option<String>,
    /// `--cgroup PATH`: in this cgroup or below it.
    pub cgroup: Option<String>,
}

impl Selector {
    pub fn keeps(&self, p: &ProcessInfo) -> bool {
        self.comm.as_ref().is_none_or(|r| r.is_match(&p.comm))
            && self
                .exe
                .as_ref()
                .is_none_or(|r| r.is_match(&p.exe.to_string_lossy()))
            && self.container.as_ref().is_none_or(|want| {
                p.container
                    .as_ref()
                    .is_some_and(|c| c.id.starts_with(want.as_str()))
            })
            && self
                .cgroup
                .as_ref()
                .is_none_or(|want| p.cgroups.within(want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(comm: &str, exe: &str, cgroup: &str) -> ProcessInfo {
        let cgroups = Cgroups::parse(&format!("0::{cgroup}\n"));
        ProcessInfo {
            pid: 42,
            comm: comm.into(),
            exe: exe.into(),
            exe_id: (1, 2),
            container: cgroups.container(),
            cgroups,
        }
    }

    #[test]
    fn every_filter_must_keep_it() {
        let id = "4e30b42501854ad143f470d5e9bfc2ef4e30b42501854ad143f470d5e9bfc2ef";
        let api = process(
            "api",
            "/srv/api",
            &format!("/system.slice/docker-{id}.scope"),
        );
        let job = process("job", "/usr/local/bin/job", "/batch/job-1");
        let all = Selector::default();
        assert!(all.keeps(&api) && all.keeps(&job));
        let by_comm = Selector {
            comm: Some(Regex::new("^api$").unwrap()),
            ..Selector::default()
        };
        assert!(by_comm.keeps(&api) && !by_comm.keeps(&job));
        let by_exe = Selector {
            exe: Some(Regex::new("/bin/").unwrap()),
            ..Selector::default()
        };
        assert!(!by_exe.keeps(&api) && by_exe.keeps(&job));
        let by_container = Selector {
            container: Some(id[..12].into()),
            ..Selector::default()
        };
        assert!(by_container.keeps(&api) && !by_container.keeps(&job));
        let by_cgroup = Selector {
            cgroup: Some("/batch".into()),
            ..Selector::default()
        };
        assert!(!by_cgroup.keeps(&api) && by_cgroup.keeps(&job));
        let both = Selector {
            comm: Some(Regex::new("api").unwrap()),
            cgroup: Some("/batch".into()),
            ..Selector::default()
        };
        assert!(!both.keeps(&api) && !both.keeps(&job));
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let me = ProcessInfo::of(std::process::id() as i32).expect("/proc/self");
        assert_eq!(me.exe, std::env::current_exe().unwrap());
        assert!(!me.comm.is_empty() && !me.comm.ends_with('\n'));
        assert!(
            pids().iter().all(|&p| p != me.pid),
            "mdt's own pid is left out"
        );
        assert!(!pids().is_empty());
    }
}
