//! A fatal error of the target (crash forensics, `crate::forensics`): the
//! goroutine that died and what it died of, and the other party of the
//! race, from two sources: the goroutines the other threads were running
//! at that instant, and the deletes and clears mdt received just before.

use std::sync::Arc;

use super::{frame_label, Event, Frame, Labels, Stack};

/// The runtime's unrecoverable map errors, as `runtime.fatal` gets them
/// (every one in the sources of Go 1.19 to 1.27: tests/inspect.rs).
pub const MAP_MISUSE_MESSAGES: [&str; 4] = [
    "concurrent map writes",
    "concurrent map read and map write",
    "concurrent map iteration and map write",
    "concurrent map clone and map write",
];

/// One fatal error, reported once per process death.
#[derive(Debug, Clone)]
pub struct Fatal {
    /// Wall-clock time of the probe, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub goid: Option<u64>,
    /// As the runtime prints it after "fatal error: ".
    pub message: String,
    pub labels: Option<Arc<Labels>>,
    /// Innermost first: runtime.fatal, then what called it.
    pub stack: Stack,
    /// The stack was deeper than the probe walks (its outermost frames
    /// are missing).
    pub stack_truncated: bool,
    /// Index in `stack` of the first frame outside the Go runtime.
    pub caller: Option<usize>,
    /// The map the goroutine was deleting from when it died (when that is
    /// what it was doing and mdt has the record of that delete).
    pub map: Option<FatalMap>,
    pub running: Running,
    pub recent: Recent,
    /// Other goroutines that died of a fatal error at the same time (Go
    /// 1.23 and older often print two "fatal error" lines).
    pub also: Vec<AlsoFatal>,
    /// More of those than a record names (`crate::forensics::MAX_ALSO`).
    pub also_dropped: u64,
}

impl Fatal {
    /// The first frame outside the Go runtime: where it died.
    pub fn caller_frame(&self) -> Option<&Frame> {
        self.caller.and_then(|i| self.stack.get(i))
    }

    /// One of the runtime's map errors ("concurrent map writes", ...).
    pub fn is_map_misuse(&self) -> bool {
        MAP_MISUSE_MESSAGES.contains(&self.message.as_str())
    }

    /// The report for people (text output, `mdt flame`'s stderr, the TUI's
    /// crash view): what died, then each source of the other party.
    pub fn report_lines(&self) -> Vec<String> {
        let goid = |g: Option<u64>| g.map_or("?".into(), |g| g.to_string());
        let mut out = vec![format!(
            "FATAL fatal error: {} (pid {}, tid {}, goroutine {}){}",
            self.message,
            self.pid,
            self.tid,
            goid(self.goid),
            self.map.as_ref().map_or(String::new(), |m| format!(
                " on map {:#x} {}",
                m.addr, m.map_type
            ))
        )];
        if let Some(l) = &self.labels {
            out.push(format!("  labels: {}", l.text()));
        }
        push_stack(&mut out, "  ", &self.stack);
        if self.stack_truncated {
            out.push("  ... (deeper than mdt walks)".into());
        }
        for a in &self.also {
            out.push(format!(
                "  also: goroutine {} (tid {}): {} at {}",
                goid(a.goid),
                a.tid,
                a.message,
                frame_label(a.caller.and_then(|i| a.stack.get(i)))
            ));
        }
        let r = &self.running;
        match &r.unavailable {
            Some(why) => out.push(format!("running on the other threads: unknown ({why})")),
            None => out.push(format!(
                "running on the other threads ({} of {} stopped, held {}):",
                r.stopped,
                r.threads,
                r.held_ns.map_or("?".into(), super::short_duration)
            )),
        }
        for g in &r.goroutines {
            let who = if g.system_stack {
                "system stack".to_string()
            } else {
                format!("goroutine {}", goid(g.goid))
            };
            out.push(format!("  tid {} {who}:", g.tid));
            push_stack(&mut out, "    ", &g.stack);
        }
        let w = &self.recent;
        out.push(format!(
            "recent deletes in the {} before: {} deletes and {} clears (kernel, exact), {} records received; {} of other goroutines{}:",
            super::short_duration(self.ts_ns.saturating_sub(w.since_ns)),
            w.deletes,
            w.clears,
            w.received,
            w.events.len() as u64 + w.more,
            if w.on_map { " on that map" } else { "" }
        ));
        for e in &w.events {
            out.push(format!(
                "  goroutine {} {} {} at {}",
                goid(e.goid),
                e.func,
                e.map_type,
                e.caller_label()
            ));
        }
        if w.more > 0 {
            out.push(format!("  ... {} more", w.more));
        }
        out
    }
}

fn push_stack(out: &mut Vec<String>, indent: &str, stack: &Stack) {
    for f in stack.iter() {
        out.push(format!("{indent}{}", frame_label(Some(f))));
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatalMap {
    pub addr: u64,
    pub map_type: Arc<str>,
}

/// The other threads at the instant of the fatal error.
#[derive(Debug, Clone, Default)]
pub struct Running {
    /// The process was stopped to look (else `unavailable` says why not).
    pub held: bool,
    /// From the probe to the process resumed, nanoseconds.
    pub held_ns: Option<u64>,
    /// Threads the process had, and how many of them were seen stopped.
    pub threads: u32,
    pub stopped: u32,
    pub goroutines: Vec<RunningGoroutine>,
    pub unavailable: Option<String>,
}

/// What one other thread was running.
#[derive(Debug, Clone)]
pub struct RunningGoroutine {
    pub tid: u32,
    /// None on the thread's system stack (g0: the scheduler, idle, or a
    /// runtime call), or when its g could not be read.
    pub goid: Option<u64>,
    pub system_stack: bool,
    /// Innermost first, from its registers and its frame pointers.
    pub stack: Stack,
    pub caller: Option<usize>,
}

/// The deletes and clears just before the fatal error.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    /// Wall-clock start of the window (the fatal error ends it).
    pub since_ns: u64,
    /// The kernel counts by time in buckets this long: the window is whole
    /// buckets (`crate::probes::ProbeConfig::time_bucket_ns`).
    pub bucket_ns: u64,
    /// What the kernel counted in the window, exactly (every goroutine's,
    /// on every map, sampled or not).
    pub deletes: u64,
    pub clears: u64,
    /// Records mdt received in the window (every goroutine's), all of
    /// them unless `received_complete` is false (more than
    /// `crate::forensics::MAX_COUNTED`).
    pub received: u64,
    pub received_complete: bool,
    /// `events` are only those on the fatal error's map.
    pub on_map: bool,
    /// Other goroutines' records in the window, newest first, at most
    /// `crate::forensics::MAX_LISTED`.
    pub events: Vec<Event>,
    /// Records that matched but were not listed (past the bound).
    pub more: u64,
}

/// A second goroutine's fatal error, at the same time.
#[derive(Debug, Clone)]
pub struct AlsoFatal {
    pub tid: u32,
    pub goid: Option<u64>,
    pub message: String,
    pub stack: Stack,
    pub caller: Option<usize>,
}
