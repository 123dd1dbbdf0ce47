//! What the other threads were running when the target died: read while
//! the fatal probe holds the process stopped, each thread's registers
//! (`probes::ThreadLister`), its g, and its frame-pointer chain; then the
//! process is let go (SIGCONT), so the crash completes as it would have.

use std::time::Duration;

use crate::gobin::fatal::{G_M_OFFSET, M_G0_OFFSET};
use crate::probes::skel::types::mdt_fatal_flags as ff;
use crate::probes::{MdtFatal, MdtThread, ThreadLister};
use crate::process::memory::ProcessMemory;
use crate::process::stop;

/// How long the threads get to enter the stop (a thread in a system call
/// enters it at once; one on another CPU, at its next interrupt).
const STOP_WAIT: Duration = Duration::from_millis(50);
/// Frames walked per thread, at most.
const MAX_FRAMES: usize = 64;
/// A goroutine stack is never larger (Go's default maximum is 1 GB).
const MAX_STACK: u64 = 1 << 30;
/// task_struct.__state of a stopped (or traced) task.
const TASK_STOPPED: u32 = 4;
const TASK_TRACED: u32 = 8;

/// One thread as read in the stop, before naming.
#[derive(Debug, Clone)]
pub struct RawThread {
    pub tid: u32,
    pub goid: Option<u64>,
    pub system_stack: bool,
    /// Innermost first: the thread's pc, then return addresses.
    pub pcs: Vec<u64>,
}

/// What the stop gave.
#[derive(Debug, Clone, Default)]
pub struct RawRunning {
    pub held: bool,
    pub held_ns: Option<u64>,
    pub threads: u32,
    pub stopped: u32,
    pub list: Vec<RawThread>,
    pub unavailable: Option<String>,
}

/// Reads the other threads of process `pid` (mdt's pid of it, not the
/// record's) once the probe stopped it, and resumes it (always, whatever
/// failed).
pub fn capture(
    pid: i32,
    raw: &MdtFatal,
    lister: Option<&ThreadLister>,
    mem: Option<&ProcessMemory>,
    goid_offset: u64,
    not_held: &str,
) -> RawRunning {
    if !raw.has(ff::MDT_FATAL_HELD) {
        let why = if raw.has(ff::MDT_FATAL_HOLD_FAILED) {
            "stopping the process failed"
        } else if raw.has(ff::MDT_FATAL_HOLD_DENIED) {
            "the process was not stopped: it runs as another user than mdt, and mdt has no CAP_KILL to let it go on"
        } else {
            not_held
        };
        return RawRunning {
            unavailable: Some(why.into()),
            ..RawRunning::default()
        };
    }
    let (threads, stopped) = stop::wait_stopped(pid, STOP_WAIT);
    let listed = match lister {
        Some(l) => l.list().map_err(|e| format!("{e:#}")),
        None => Err("the thread iterator is not available".into()),
    };
    let mut out = RawRunning {
        held: true,
        threads,
        stopped,
        ..RawRunning::default()
    };
    match (listed, mem) {
        (Ok(list), Some(mem)) => {
            out.list = list
                .iter()
                .filter(|t| t.tid != raw.tid && t.state & (TASK_STOPPED | TASK_TRACED) != 0)
                .map(|t| read_thread(mem, t, goid_offset))
                .collect();
        }
        (Err(e), _) => out.unavailable = Some(e),
        (_, None) => out.unavailable = Some("the process's memory cannot be read".into()),
    }
    let _ = stop::resume(pid);
    out.held_ns = Some(crate::events::monotonic_ns().saturating_sub(raw.ts_ns));
    out
}

/// A g's stack bounds.
struct GoStack {
    lo: u64,
    hi: u64,
}

/// The thread's g, its goroutine id, and its stack by frame pointers.
fn read_thread(mem: &ProcessMemory, t: &MdtThread, goid_offset: u64) -> RawThread {
    // ABIInternal code keeps g in R14; elsewhere (assembly, a system call)
    // it is in the thread's TLS, at -8 from its base.
    let candidates = [
        Some(t.r14),
        t.fsbase.checked_sub(8).and_then(|a| mem.u64(a)),
    ];
    let g = candidates
        .into_iter()
        .flatten()
        .find_map(|g| g_of(mem, g, t.sp).map(|s| (g, s)));
    let mut thread = RawThread {
        tid: t.tid,
        goid: None,
        system_stack: false,
        pcs: vec![t.ip],
    };
    let Some((g, stack)) = g else {
        return thread;
    };
    let g0 = mem
        .u64(g + G_M_OFFSET)
        .filter(|&m| m != 0)
        .and_then(|m| mem.u64(m + M_G0_OFFSET));
    thread.system_stack = g0 == Some(g);
    if !thread.system_stack && goid_offset != 0 {
        thread.goid = mem.u64(g + goid_offset);
    }
    thread
        .pcs
        .extend(frame_pointer_chain(mem, t.bp, t.sp, &stack));
    thread
}

/// `g` if it is a goroutine whose stack holds `sp`: a register or a TLS
/// slot that holds something else is never taken for one.
fn g_of(mem: &ProcessMemory, g: u64, sp: u64) -> Option<GoStack> {
    if g == 0 || !g.is_multiple_of(8) {
        return None;
    }
    let lo = mem.u64(g)?;
    let hi = mem.u64(g + 8)?;
    (lo < hi && hi - lo <= MAX_STACK && (lo..hi).contains(&sp)).then_some(GoStack { lo, hi })
}

/// The return addresses of the frame-pointer chain from `bp`, within the
/// goroutine's stack, each frame above the last.
fn frame_pointer_chain(mem: &ProcessMemory, bp: u64, sp: u64, stack: &GoStack) -> Vec<u64> {
    let mut out = Vec::new();
    let mut fp = bp;
    while out.len() < MAX_FRAMES - 1 && fp >= sp.max(stack.lo) && fp + 16 <= stack.hi {
        let (Some(next), Some(ret)) = (mem.u64(fp), mem.u64(fp + 8)) else {
            break;
        };
        if ret == 0 {
            break;
        }
        out.push(ret);
        if next <= fp {
            break;
        }
        fp = next;
    }
    out
}
