//! Reading a live process's memory (`/proc/PID/mem`): map types made at
//! run time, and keys the probe could not read. (The load bias of a PIE
//! comes from the probed pc of the first event, see `crate::decode`.)

use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result};

pub struct ProcessMemory {
    file: File,
}

impl ProcessMemory {
    pub fn open(pid: i32) -> Result<Self> {
        let file = File::open(format!("/proc/{pid}/mem")).with_context(|| {
            format!("cannot read the memory of process {pid} (needs root, or CAP_SYS_PTRACE and, for another user's process, CAP_DAC_READ_SEARCH)")
        })?;
        Ok(ProcessMemory { file })
    }

    pub fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, addr).ok()?;
        Some(buf)
    }

    pub fn u64(&self, addr: u64) -> Option<u64> {
        self.read(addr, 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
}
