//! Reading a live process: its memory (`/proc/PID/mem`) and where its
//! executable is mapped (`/proc/PID/maps`), to turn link-time addresses into
//! run-time ones for a position-independent binary.

use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result};

pub struct ProcessMemory {
    file: File,
}

impl ProcessMemory {
    pub fn open(pid: i32) -> Result<Self> {
        let file = File::open(format!("/proc/{pid}/mem")).with_context(|| {
            format!("cannot read the memory of process {pid} (needs root or CAP_SYS_PTRACE)")
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

    pub fn u8(&self, addr: u64) -> Option<u8> {
        self.read(addr, 1).map(|b| b[0])
    }

    pub fn i32(&self, addr: u64) -> Option<i32> {
        self.read(addr, 4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap_or_default()))
    }
}

/// The load bias of the executable (inode `exe_ino`) in `pid`: run-time
/// address minus link-time address (0 for a non-PIE binary). `link_base`
/// is the lowest `p_vaddr - p_offset` of the ELF file.
pub fn load_bias(pid: i32, link_base: u64, exe_ino: u64) -> Result<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .with_context(|| format!("cannot read /proc/{pid}/maps"))?;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(_perms), Some(offset), Some(_dev), Some(inode)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        if inode.parse::<u64>().ok() != Some(exe_ino)
            || u64::from_str_radix(offset, 16).ok() != Some(0)
        {
            continue;
        }
        let start = range
            .split('-')
            .next()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .context("malformed /proc/PID/maps")?;
        return Ok(start.wrapping_sub(link_base));
    }
    anyhow::bail!("process {pid}: its executable is not mapped (has it exited?)")
}
