//! A process's control groups (`/proc/PID/cgroup`, v1 and v2), and what
//! their paths say about it: the container it runs in (Docker, containerd,
//! CRI-O, podman) and, under Kubernetes, its pod's uid.
//!
//! The paths are the runtimes' conventions, with the systemd cgroup driver
//! (`docker-ID.scope`, `cri-containerd-ID.scope`, `crio-ID.scope`,
//! `libpod-ID.scope`, `kubepods-burstable-podUID.slice` with `_` for `-`)
//! and the cgroupfs one (`/docker/ID`, `/kubepods/burstable/podUID/ID`,
//! `/libpod_parent/libpod-ID`). A container id is 64 hex digits.

use std::fmt;

/// The cgroup paths of one process: the unified (v2) hierarchy's, and
/// each v1 hierarchy's (its controllers, its path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cgroups {
    pub unified: Option<String>,
    pub v1: Vec<(String, String)>,
}

/// What a process's cgroup paths say of its container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// The Kubernetes pod's uid (with dashes), under a kubelet.
    pub pod_uid: Option<String>,
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::events::process::short_container_id(&self.id))
    }
}

impl Cgroups {
    /// `/proc/PID/cgroup` of a live process.
    pub fn of(pid: i32) -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(format!(
            "/proc/{pid}/cgroup"
        ))?))
    }

    /// The lines `ID:CONTROLLERS:PATH`; `0::PATH` is the unified hierarchy.
    pub fn parse(text: &str) -> Self {
        let mut out = Cgroups::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if id == "0" && controllers.is_empty() {
                out.unified = Some(path.to_string());
            } else {
                out.v1.push((controllers.to_string(), path.to_string()));
            }
        }
        out
    }

    /// Every path, the unified one first.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.unified
            .iter()
            .map(String::as_str)
            .chain(self.v1.iter().map(|(_, p)| p.as_str()))
    }

    /// The path that says most: the unified one unless it is the root
    /// (a v1 or hybrid system), else the first v1 path that is not.
    pub fn main_path(&self) -> &str {
        self.paths().find(|p| *p != "/").unwrap_or("/")
    }

    /// The container, if any path names one.
    pub fn container(&self) -> Option<Container> {
        self.paths().find_map(container_of_path)
    }

    /// `--cgroup PATH`: PATH is one of the process's cgroups or an
    /// ancestor of one, given as a cgroup path (`/kubepods.slice`) or under
    /// a cgroup mount (`/sys/fs/cgroup/unified/kubepods.slice`,
    /// `/sys/fs/cgroup/memory/...`).
    pub fn within(&self, wanted: &str) -> bool {
        let wanted = strip_mount(wanted);
        let wanted = wanted.trim_end_matches('/');
        self.paths().any(|p| {
            wanted.is_empty()
                || p == wanted
                || p.strip_prefix(wanted).is_some_and(|r| r.starts_with('/'))
        })
    }
}

/// A path under `/sys/fs/cgroup` as a cgroup path: the mount and, on v1 or
/// hybrid systems, the hierarchy's directory taken off.
fn strip_mount(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/sys/fs/cgroup") else {
        return path;
    };
    if rest.is_empty() || rest == "/" {
        return "/";
    }
    // A hierarchy's own directory: unified, memory, cpu,cpuacct, systemd...
    let first = rest.trim_start_matches('/').split('/').next().unwrap_or("");
    let hierarchy = first == "unified"
        || first == "systemd"
        || first.split(',').all(|c| KNOWN_CONTROLLERS.contains(&c));
    if hierarchy {
        &rest[1 + first.len()..]
    } else {
        rest
    }
}

const KNOWN_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// The container a cgroup path names: the innermost component that is a
/// container id (bare, or in a runtime's scope name), and a pod uid from
/// the components above it.
fn container_of_path(path: &str) -> Option<Container> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let at = parts.iter().rposition(|p| container_id_of(p).is_some())?;
    let id = container_id_of(parts[at])?.to_string();
    let pod_uid = parts[..at].iter().rev().find_map(|p| pod_uid_of(p));
    Some(Container { id, pod_uid })
}

/// `ID`, `docker-ID.scope`, `cri-containerd-ID.scope`, `crio-ID.scope`,
/// `libpod-ID.scope`, `libpod-ID`, `nerdctl-ID.scope` (not
/// `crio-conmon-ID.scope`: the container's monitor, not the container).
fn container_id_of(component: &str) -> Option<&str> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    if name.starts_with("crio-conmon-") || name.starts_with("libpod-conmon-") {
        return None;
    }
    let id = [
        "docker-",
        "cri-containerd-",
        "crio-",
        "libpod-",
        "containerd-",
        "nerdctl-",
    ]
    .iter()
    .find_map(|p| name.strip_prefix(p))
    .unwrap_or(name);
    is_container_id(id).then_some(id)
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// `podUID` (cgroupfs) or `kubepods-QOS-podUID.slice` / `kubepods-podUID.slice`
/// (systemd, with `_` for `-`; under a kubelet `--cgroup-root`, as kind's
/// `kubelet-kubepods-QOS-podUID.slice`): the uid with dashes.
fn pod_uid_of(component: &str) -> Option<String> {
    let name = component.strip_suffix(".slice").unwrap_or(component);
    let at = name.rfind("pod")?;
    let before = &name[..at];
    if !(before.is_empty() || (before.contains("kubepods") && before.ends_with('-'))) {
        return None;
    }
    let uid = name[at + 3..].replace('_', "-");
    is_uid(&uid).then_some(uid)
}

fn is_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4e30b42501854ad143f470d5e9bfc2ef4e30b42501854ad143f470d5e9bfc2ef";
    const UID: &str = "0f4c1a2b-3d4e-4f50-8a6b-7c8d9e0f1a2b";

    fn container(path: &str) -> Option<Container> {
        Cgroups::parse(&format!("0::{path}\n")).container()
    }

    #[test]
    fn container_ids_of_every_runtime() {
        let uid_ = UID.replace('-', "_");
        for path in [
            format!("/docker/{ID}"),
            format!("/system.slice/docker-{ID}.scope"),
            format!("/system.slice/containerd.service/default/{ID}"),
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"),
            format!("/libpod_parent/libpod-{ID}"),
            format!("/system.slice/crio-{ID}.scope"),
            format!("/system.slice/nerdctl-{ID}.scope"),
        ] {
            let c = container(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!((c.id.as_str(), c.pod_uid), (ID, None), "{path}");
        }
        for path in [
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"),
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{ID}.scope"),
            format!("/kubepods.slice/kubepods-pod{uid_}.slice/docker-{ID}.scope"),
            format!("/kubepods/burstable/pod{UID}/{ID}"),
            format!("/kubepods/pod{UID}/{ID}"),
            // kind: a kubelet with --cgroup-root, the systemd driver.
            format!("/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{uid_}.slice/cri-containerd-{ID}.scope"),
        ] {
            let c = container(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(c.id, ID, "{path}");
            assert_eq!(c.pod_uid.as_deref(), Some(UID), "{path}");
        }
        assert_eq!(
            container(&format!("/docker/{ID}")).unwrap().to_string(),
            &ID[..12]
        );
    }

    #[test]
    fn no_container_where_no_path_names_one() {
        for path in [
            "/",
            "/user.slice/user-0.slice/session-3.scope",
            "/system.slice/ssh.service",
            // The monitor beside a CRI-O container is not in it.
            &format!("/system.slice/crio-conmon-{ID}.scope"),
            // Not 64 hex digits.
            &format!("/docker/{}", &ID[..63]),
            &format!("/docker/{}", ID.to_uppercase()),
        ] {
            assert_eq!(container(path), None, "{path}");
        }
    }

    #[test]
    fn v1_hybrid_and_unified_lines() {
        let text = "12:pids:/\n4:memory:/process_api/abc\n1:name=systemd:/\n0::/\n";
        let c = Cgroups::parse(text);
        assert_eq!(c.unified.as_deref(), Some("/"));
        assert_eq!(c.v1.len(), 3);
        assert_eq!(c.main_path(), "/process_api/abc");
        let v2 = Cgroups::parse("0::/system.slice/app.service\n");
        assert_eq!(v2.main_path(), "/system.slice/app.service");
        let v1 = Cgroups::parse(&format!("9:cpu,cpuacct:/docker/{ID}\n"));
        assert_eq!(v1.container().unwrap().id, ID);
    }

    #[test]
    fn within_a_cgroup_or_its_ancestors() {
        let c = Cgroups::parse("4:memory:/process_api/abc\n0::/mdt-test/a\n");
        for yes in [
            "/mdt-test",
            "/mdt-test/a",
            "/mdt-test/a/",
            "/sys/fs/cgroup/unified/mdt-test",
            "/sys/fs/cgroup/memory/process_api",
            "/sys/fs/cgroup/mdt-test/a",
            "/",
        ] {
            assert!(c.within(yes), "{yes}");
        }
        for no in [
            "/mdt",
            "/mdt-test/ab",
            "/other",
            "/sys/fs/cgroup/unified/process_api/x",
        ] {
            assert!(!c.within(no), "{no}");
        }
    }
}
