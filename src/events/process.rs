//! The traced process as every record names it: the kernel's pid, its
//! command and executable, and its container (from its cgroup path).

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: u32,
    /// `/proc/PID/comm` (at most 15 bytes).
    pub comm: String,
    /// The executable's path, as the process sees it (in its own mount
    /// namespace).
    pub exe: String,
    /// The container it runs in (64 hex digits), when it runs in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The Kubernetes pod's uid, under a kubelet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

/// A container id as `docker ps` and `podman ps` show it: its first 12 digits.
pub fn short_container_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl Process {
    /// `,"comm":…,"exe":…[,"container_id":…[,"pod_uid":…]]`: what a record
    /// adds to its `pid`, rendered once per process.
    pub fn json_fields(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        // {"pid":N,"comm":…}: keep from the comma after the pid, without the brace.
        let start = v.iter().position(|&b| b == b',').unwrap_or(v.len());
        v.pop();
        v.drain(..start);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_a_record_adds() {
        let mut p = Process {
            pid: 7,
            comm: "api".into(),
            exe: "/srv/api".into(),
            ..Process::default()
        };
        assert_eq!(
            String::from_utf8(p.json_fields()).unwrap(),
            r#","comm":"api","exe":"/srv/api""#
        );
        p.container_id = Some("ab".repeat(32));
        p.pod_uid = Some("u".into());
        assert_eq!(
            String::from_utf8(p.json_fields()).unwrap(),
            format!(
                r#","comm":"api","exe":"/srv/api","container_id":"{}","pod_uid":"u""#,
                "ab".repeat(32)
            )
        );
    }
}
