//! Crash forensics: when the target dies of a fatal error ("fatal error:
//! concurrent map writes"), who was racing. The probe on `runtime.fatal`
//! sends its record and stops the process; [`running`] reads what the
//! other threads were running and lets it go on; the deletes mdt received
//! just before are kept here. One [`Fatal`] per process death comes out,
//! once the goroutines that died at the same time have had their say.

pub mod running;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::decode::Decoder;
use crate::events::fatal::{AlsoFatal, Fatal, FatalMap, Recent, Running, RunningGoroutine};
use crate::events::{is_runtime_internal, Event, Stack};
use crate::probes::skel::types::mdt_fatal_flags as ff;
use crate::probes::{MdtFatal, ThreadLister};
use crate::process::memory::ProcessMemory;

use self::running::RawRunning;

/// Records kept for the window before a fatal error, at most (and none
/// older than the longest window).
pub const MAX_RECENT: usize = 4096;
/// Records counted in the window before a fatal error, at most (a
/// million deletes a second for a second).
pub const MAX_COUNTED: usize = 1 << 20;
/// Other goroutines' records a fatal record lists, at most.
pub const MAX_LISTED: usize = 32;
/// Other goroutines' fatal errors a record names, at most (the others are
/// counted).
pub const MAX_ALSO: usize = 16;
/// How long a fatal error waits for another goroutine's at the same time
/// (and for the records still in the ring from before it).
const MERGE_WAIT: Duration = Duration::from_millis(150);
/// A delete's record is the dying goroutine's last act if it is this
/// close before the fatal error (a loaded machine may hold a thread off
/// its CPU for a while between the two).
const LAST_ACT_NS: u64 = 100_000_000;

pub struct Forensics {
    lister: Option<ThreadLister>,
    /// Why a fatal error's process was not stopped when the probe did not.
    not_held: &'static str,
    pid: i32,
    /// Opened at the first fatal error (the process is stopped then):
    /// opened earlier, a launched program's would be of the process before
    /// its exec.
    mem: Option<ProcessMemory>,
    goid_offset: u64,
    /// Link-time address of runtime.fatal's entry (stack[0] of a record).
    fatal_va: u64,
    window_ns: u64,
    /// The length of the kernel's buckets of counts by time.
    bucket_ns: u64,
    recent: VecDeque<Event>,
    /// The times and buckets of the records of the last window (more than
    /// `recent` keeps), to count them; at most MAX_COUNTED.
    times: VecDeque<(u64, u32)>,
    /// `times` dropped one younger than a window.
    times_cut: Option<u64>,
    pending: Option<Pending>,
    /// Fatal records of goroutines dying beside the first one, before it.
    early: Vec<Box<MdtFatal>>,
    /// Fatal records written.
    pub reported: u64,
    /// Other goroutines' fatal records past MAX_ALSO, for the next report.
    also_dropped: u64,
}

/// Keeps at most MAX_ALSO of the other goroutines' fatal records.
fn push_bounded(list: &mut Vec<Box<MdtFatal>>, raw: Box<MdtFatal>, dropped: &mut u64) {
    if list.len() < MAX_ALSO {
        list.push(raw);
    } else {
        *dropped += 1;
    }
}

struct Pending {
    raw: Box<MdtFatal>,
    running: RawRunning,
    also: Vec<Box<MdtFatal>>,
    at: Instant,
}

impl Forensics {
    /// Says why the process will not be stopped, when not for --no-hold.
    pub fn not_held_because(mut self, why: &'static str) -> Self {
        self.not_held = why;
        self
    }

    pub fn new(
        pid: i32,
        lister: Option<ThreadLister>,
        goid_offset: u64,
        fatal_va: u64,
        window_ns: u64,
        bucket_ns: u64,
    ) -> Self {
        Forensics {
            lister,
            not_held: "the process was not stopped (--no-hold)",
            pid,
            mem: None,
            goid_offset,
            fatal_va,
            window_ns,
            bucket_ns,
            recent: VecDeque::new(),
            times: VecDeque::new(),
            times_cut: None,
            pending: None,
            early: Vec::new(),
            reported: 0,
            also_dropped: 0,
        }
    }

    /// A record delivered: kept for the window of a fatal error to come.
    pub fn saw(&mut self, ev: Event) {
        let oldest = ev.ts_ns.saturating_sub(self.window_ns + 10_000_000);
        while self
            .recent
            .front()
            .is_some_and(|e| e.ts_ns < oldest || self.recent.len() >= MAX_RECENT)
        {
            self.recent.pop_front();
        }
        while self.times.front().is_some_and(|&(t, _)| t < oldest) {
            self.times.pop_front();
        }
        if self.times.len() >= MAX_COUNTED {
            self.times_cut = self.times.pop_front().map(|(t, _)| t);
        }
        self.times.push_back((ev.ts_ns, ev.tick));
        self.recent.push_back(ev);
    }

    /// A fatal record: the first one of the process is looked into at once
    /// (the process is stopped until then); the others join it.
    pub fn fatal(&mut self, raw: &MdtFatal) {
        let raw = Box::new(*raw);
        if let Some(p) = &mut self.pending {
            push_bounded(&mut p.also, raw, &mut self.also_dropped);
            return;
        }
        if raw.has(ff::MDT_FATAL_NOT_FIRST) {
            push_bounded(&mut self.early, raw, &mut self.also_dropped);
            return;
        }
        if self.mem.is_none() {
            self.mem = ProcessMemory::open(self.pid).ok();
        }
        let running = running::capture(
            self.pid,
            &raw,
            self.lister.as_ref(),
            self.mem.as_ref(),
            self.goid_offset,
            self.not_held,
        );
        self.pending = Some(Pending {
            raw,
            running,
            also: std::mem::take(&mut self.early),
            at: Instant::now(),
        });
    }

    /// The fatal error, once it has waited for the others (or with `done`:
    /// tracing has stopped, nothing more will come).
    pub fn due(&mut self, decoder: &mut Decoder, done: bool) -> Option<Fatal> {
        if done && self.pending.is_none() && !self.early.is_empty() {
            // The first record was lost: the earliest other one stands in.
            let mut early = std::mem::take(&mut self.early);
            early.sort_by_key(|f| f.ts_ns);
            let raw = early.remove(0);
            self.pending = Some(Pending {
                running: RawRunning {
                    unavailable: Some("the first fatal record was lost".into()),
                    ..RawRunning::default()
                },
                raw,
                also: early,
                at: Instant::now(),
            });
        }
        if !done && self.pending.as_ref()?.at.elapsed() < MERGE_WAIT {
            return None;
        }
        let p = self.pending.take()?;
        self.reported += 1;
        let mut fatal = self.report(p, decoder);
        fatal.also_dropped = std::mem::take(&mut self.also_dropped);
        Some(fatal)
    }

    fn report(&self, p: Pending, decoder: &mut Decoder) -> Fatal {
        let raw = &p.raw;
        let (stack, caller) = self.name(decoder, raw.stack());
        let ts_ns = decoder.wall_ns(raw.ts_ns);
        let goid = raw.goid();
        let map = self.last_map(goid, ts_ns, &stack);
        Fatal {
            ts_ns,
            pid: raw.pid,
            tid: raw.tid,
            goid,
            message: raw.message(),
            labels: decoder.labels(&raw.labels()),
            stack,
            stack_truncated: raw.has(ff::MDT_FATAL_STACK_TRUNCATED),
            caller,
            recent: self.recent(decoder, raw, ts_ns, map.as_ref()),
            map,
            running: self.running(decoder, &p.running),
            also: p
                .also
                .iter()
                .map(|a| {
                    let (stack, caller) = self.name(decoder, a.stack());
                    AlsoFatal {
                        tid: a.tid,
                        goid: a.goid(),
                        message: a.message(),
                        stack,
                        caller,
                    }
                })
                .collect(),
            also_dropped: 0,
        }
    }

    /// A stack named, and its first frame outside the runtime.
    fn name(&self, decoder: &mut Decoder, pcs: &[u64]) -> (Stack, Option<usize>) {
        let Some(&first) = pcs.first() else {
            return (Stack::default(), None);
        };
        let stack = decoder.name_stack(pcs, (first, self.fatal_va));
        let caller = stack.iter().position(|f| !is_runtime_internal(&f.func));
        (stack, caller)
    }

    /// The map of the dying goroutine's last delete, if that delete is
    /// the call it died in: its function is on the fatal error's stack,
    /// called from the same place.
    fn last_map(&self, goid: Option<u64>, ts_ns: u64, stack: &Stack) -> Option<FatalMap> {
        let goid = goid?;
        let last = self
            .recent
            .iter()
            .rev()
            .filter(|e| e.ts_ns <= ts_ns)
            .find(|e| e.goid == Some(goid))?;
        let at = stack.iter().position(|f| *f.func == *last.func)?;
        let from = |s: &Stack, i: usize| s.iter().skip(i + 1).find(|f| !f.inlined).map(|f| f.addr);
        let same_call = from(stack, at)
            == last
                .stack
                .iter()
                .position(|f| *f.func == *last.func)
                .and_then(|i| from(&last.stack, i));
        (same_call && ts_ns - last.ts_ns <= LAST_ACT_NS).then(|| FatalMap {
            addr: last.map,
            map_type: last.map_type.clone(),
        })
    }

    fn recent(
        &self,
        decoder: &Decoder,
        raw: &MdtFatal,
        ts_ns: u64,
        map: Option<&FatalMap>,
    ) -> Recent {
        // In the window: counted in one of its buckets, before the probe.
        let first = raw.window_tick;
        let within = |ts: u64, tick: u32| ts <= ts_ns && tick.wrapping_sub(first) as i32 >= 0;
        let received = self.times.iter().filter(|&&(t, k)| within(t, k)).count() as u64;
        // Exact with clock buckets; with tick buckets, at most a bucket
        // late, and no later than the window's first record.
        let since_ns = self
            .times
            .iter()
            .filter(|&&(t, k)| within(t, k))
            .map(|&(t, _)| t)
            .fold(decoder.wall_ns(raw.window_start_ns), u64::min);
        let in_window: Vec<&Event> = self
            .recent
            .iter()
            .filter(|e| within(e.ts_ns, e.tick))
            .collect();
        let mut listed: Vec<&Event> = in_window
            .iter()
            .copied()
            .filter(|e| e.goid != raw.goid() || e.goid.is_none())
            .filter(|e| map.is_none_or(|m| e.map == m.addr))
            .collect();
        listed.reverse();
        let more = listed.len().saturating_sub(MAX_LISTED) as u64;
        Recent {
            since_ns,
            bucket_ns: self.bucket_ns,
            deletes: raw.window_deletes,
            clears: raw.window_clears,
            received,
            received_complete: self.times_cut.is_none_or(|t| t < since_ns),
            on_map: map.is_some(),
            events: listed.into_iter().take(MAX_LISTED).cloned().collect(),
            more,
        }
    }

    fn running(&self, decoder: &mut Decoder, r: &RawRunning) -> Running {
        Running {
            held: r.held,
            held_ns: r.held_ns,
            threads: r.threads,
            stopped: r.stopped,
            goroutines: r
                .list
                .iter()
                .map(|t| {
                    let (stack, caller) = self.name(decoder, &t.pcs);
                    RunningGoroutine {
                        tid: t.tid,
                        goid: t.goid,
                        system_stack: t.system_stack,
                        stack,
                        caller,
                    }
                })
                .collect(),
            unavailable: r.unavailable.clone(),
        }
    }
}
