//! The process being traced, attached to or launched.

use crate::process::launch::{self, ExitStatus, HeldChild};
use crate::process::ProcessWatch;

/// The process being traced.
pub(super) enum Target {
    Attached {
        pid: i32,
        watch: ProcessWatch,
    },
    Launched {
        child: HeldChild,
        exit: Option<ExitStatus>,
    },
}

impl Target {
    pub(super) fn pid(&self) -> i32 {
        match self {
            Target::Attached { pid, .. } => *pid,
            Target::Launched { child, .. } => child.pid,
        }
    }

    /// Has the target ended? Reaps a launched child.
    pub(super) fn exited(&mut self) -> bool {
        match self {
            Target::Attached { watch, .. } => watch.exited(),
            Target::Launched { child, exit } => {
                if exit.is_none() {
                    *exit = launch::try_wait(child.pid);
                }
                exit.is_some()
            }
        }
    }
}
