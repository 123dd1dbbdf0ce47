//! The node's Go processes, for node-wide tracing (`--all`) and `mdt
//! inspect --all`: every process `crate::process::discover` finds and the
//! selector keeps whose executable is a Go program, each binary read once
//! (by device and inode, whatever mount namespace it is seen from).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::gobin::GoBinary;
use crate::process::discover::{self, ProcessInfo, Selector};

/// One Go process of the node.
#[derive(Debug, Clone)]
pub struct NodeProcess {
    pub info: ProcessInfo,
    pub binary: BinaryStatus,
}

/// What mdt makes of a Go executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BinaryStatus {
    /// `go1.27.3`, when it could be read.
    pub go_version: Option<String>,
    /// Why mdt cannot trace it (one line); None: it can.
    pub untraceable: Option<String>,
}

/// The Go processes the selector keeps, by pid.
pub fn go_processes(selector: &Selector) -> Vec<NodeProcess> {
    let mut binaries: HashMap<(u64, u64), Option<BinaryStatus>> = HashMap::new();
    let mut out = Vec::new();
    for pid in discover::pids() {
        let Some(info) = ProcessInfo::of(pid) else {
            continue;
        };
        if !selector.keeps(&info) {
            continue;
        }
        let status = binaries
            .entry(info.exe_id)
            .or_insert_with(|| read_binary(pid))
            .clone();
        if let Some(binary) = status {
            out.push(NodeProcess { info, binary });
        }
    }
    out
}

/// None: not a Go program (no Go function table).
fn read_binary(pid: i32) -> Option<BinaryStatus> {
    let path = PathBuf::from(format!("/proc/{pid}/exe"));
    match GoBinary::open(&path) {
        Ok(b) => Some(BinaryStatus {
            untraceable: super::check_traceable(&b).err().map(|e| format!("{e:#}")),
            go_version: Some(b.go_version),
        }),
        Err(e) => {
            let why = e.root_cause().to_string();
            (!why.starts_with("not a Go program")).then_some(BinaryStatus {
                go_version: None,
                untraceable: Some(why),
            })
        }
    }
}
