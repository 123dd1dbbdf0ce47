//! Crash forensics in the kernel: the probe on `runtime.fatal` (its record,
//! [`MdtFatal`], in a ring of its own), the stop it puts the process in,
//! and the task iterator that lists the stopped threads' registers
//! ([`ThreadLister`]). What is made of them is `crate::forensics`'s.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use libbpf_rs::{Iter, IterOpts, Link, UprobeOpts};

use super::record::{decode_labels, RawLabels};
use super::skel::types::mdt_fatal_flags;
use super::{MdtFatal, MdtThread, Probes, MAX_FATAL_MSG, MAX_STACK_DEPTH};

impl Probes {
    /// Attaches the fatal probe at `file_offset` (the entry of
    /// `runtime.fatal`) of `binary`, for process `pid` only.
    pub fn attach_fatal(&mut self, binary: &Path, file_offset: u64, pid: u32) -> Result<()> {
        let offset = usize::try_from(file_offset).context("file offset out of range")?;
        let pid = i32::try_from(pid).context("pid out of range")?;
        let what = || {
            format!(
                "attaching the fatal-error probe to {} at file offset {file_offset:#x}",
                binary.display()
            )
        };
        let progs = &self.skel.progs;
        // As the deletes: a uprobe.multi link where the kernel has them (it
        // needs less privilege than a perf event: see mdt_fatal_multi).
        let link = if self.multi {
            let opts = libbpf_rs::UprobeMultiOpts {
                offsets: vec![offset],
                ..libbpf_rs::UprobeMultiOpts::default()
            };
            progs
                .mdt_fatal_multi
                .attach_uprobe_multi_with_opts(pid, binary, "", opts)
                .with_context(what)?
        } else {
            let opts = UprobeOpts {
                retprobe: false,
                ..UprobeOpts::default()
            };
            progs
                .mdt_fatal
                .attach_uprobe_with_opts(pid, binary, offset, opts)
                .with_context(what)?
        };
        self.fatal_link = Some(link);
        self.fatal_pid = Some(pid);
        Ok(())
    }

    /// Whether the fatal probe may stop the process (user space is there
    /// to resume it). Cleared before the session stops reading.
    pub fn set_fatal_hold(&mut self, on: bool) {
        if let Some(bss) = self.skel.maps.bss_data.as_deref_mut() {
            bss.mdt_fatal_hold = u32::from(on);
        }
    }

    /// The last safety of the hold: no new stop, and a process the probe
    /// stopped let go while it lives, its stop delivered yet or not (a
    /// SIGCONT cancels a pending SIGSTOP). At the end of a session, and
    /// when the probes are dropped, whatever way mdt leaves.
    pub fn release_held(&mut self) {
        self.set_fatal_hold(false);
        if let Some(pid) = self.fatal_pid.take() {
            if self.fatal_stopped() && crate::process::stop::thread_states(pid).0 > 0 {
                let _ = crate::process::stop::resume(pid);
            }
        }
    }

    /// The program was loaded with the fatal probe.
    pub fn has_forensics(&self) -> bool {
        self.forensics
    }

    /// The fatal probe stopped the process (whether or not its record
    /// was read).
    pub fn fatal_stopped(&self) -> bool {
        self.skel
            .maps
            .bss_data
            .as_deref()
            .is_some_and(|bss| bss.mdt_fatal_holds != 0)
    }

    /// The lister of the target's threads (the task iterator, attached).
    pub fn thread_lister(&self) -> Result<ThreadLister> {
        let link = self
            .skel
            .progs
            .mdt_threads
            .attach_iter_with_opts(IterOpts::None)
            .context("attaching the thread iterator")?;
        Ok(ThreadLister { link })
    }
}

/// Lists the target's threads and their user registers, by a task
/// iterator (no ptrace: nothing the target or a debugger of it can see).
pub struct ThreadLister {
    link: Link,
}

impl ThreadLister {
    pub fn list(&self) -> Result<Vec<MdtThread>> {
        let mut iter = Iter::new(&self.link).context("reading the thread iterator")?;
        let mut bytes = Vec::new();
        iter.read_to_end(&mut bytes)
            .context("reading the thread iterator")?;
        Ok(bytes
            .chunks_exact(std::mem::size_of::<MdtThread>())
            .map(|c| {
                let mut t = MdtThread::default();
                // SAFETY: `c` is exactly size_of::<MdtThread>() bytes, copied
                // into a live, exclusively borrowed MdtThread (a #[repr(C)]
                // struct of plain integers: any byte pattern is a value).
                unsafe {
                    std::ptr::copy_nonoverlapping(c.as_ptr(), (&raw mut t).cast::<u8>(), c.len());
                }
                t
            })
            .collect())
    }
}

impl MdtFatal {
    /// Decodes a record of the "fatals" ring (exactly one struct).
    pub fn from_record(data: &[u8]) -> Option<Box<Self>> {
        if data.len() != std::mem::size_of::<Self>() {
            return None;
        }
        let mut f = Box::<Self>::default();
        // SAFETY: `data` is exactly size_of::<MdtFatal>() bytes, copied into
        // a live, exclusively owned MdtFatal (a #[repr(C)] struct of plain
        // integers and integer arrays: any byte pattern is a value).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), (&raw mut *f).cast::<u8>(), data.len());
        }
        Some(f)
    }

    pub fn has(&self, flag: mdt_fatal_flags) -> bool {
        u32::from(self.flags) & flag.0 != 0
    }

    /// The message, as far as it was copied (lossy UTF-8).
    pub fn message(&self) -> String {
        let n = (self.msg_len as usize).min(MAX_FATAL_MSG);
        if self.has(mdt_fatal_flags::MDT_FATAL_MSG_FAULT) {
            return String::new();
        }
        String::from_utf8_lossy(&self.msg[..n]).into_owned()
    }

    /// Innermost first; stack[0] is runtime.fatal's entry.
    pub fn stack(&self) -> &[u64] {
        &self.stack[..usize::from(self.stack_depth).min(MAX_STACK_DEPTH)]
    }

    pub fn goid(&self) -> Option<u64> {
        (!self.has(mdt_fatal_flags::MDT_FATAL_GOID_FAULT)).then_some(self.goid)
    }

    pub fn labels(&self) -> RawLabels<'_> {
        decode_labels(
            self.labels,
            self.labels_flags,
            self.labels_n,
            &self.label_room,
        )
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self.release_held();
    }
}
