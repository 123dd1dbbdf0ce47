//! The end of a run: exact totals, and what became of the records.

use std::time::Duration;

use serde::Serialize;

use crate::gobin::funcs::Role;
use crate::process::launch::ExitStatus;

/// Exact hit count of one attach point.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionCount {
    pub func: &'static str,
    pub role: Role,
    pub hits: u64,
    /// With the exit points armed: its calls seen returning, and (deletes)
    /// how many removed an entry or found none; exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub returned: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub absent: Option<u64>,
}

/// The end of a run: exact totals from the BPF counters, and what happened
/// to the detailed records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// Exact: every call of a probed delete function.
    pub deletes: u64,
    /// Exact: every call of a probed clear function.
    pub clears: u64,
    pub by_function: Vec<FunctionCount>,
    /// Records the output was given (decoded, and kept by the filters).
    pub records: u64,
    /// Hits whose detailed record sampling skipped.
    pub sampled_out: u64,
    /// Records that never reached the sink: the kernel could not put them
    /// in the ring (full), they could not be decoded, or they were still in
    /// the ring when the stop's short drain ended.
    pub lost: u64,
    /// Records delivered without their stack (user space no longer held
    /// the stack they named; see `probes::stacks`): part of `records`.
    pub stack_lost: u64,
    /// Records dropped by --map-type / --func.
    pub filtered_out: u64,
    /// The share of calls that get a record (0: none are made, the
    /// kernel only counts: metrics alone).
    pub sample_rate: f64,
    /// With the exit points armed: what the calls did (exact, for every
    /// call seen both entering and returning).
    pub outcomes: Option<OutcomeTotals>,
    /// Records whose exit was expected but not seen (the call panicked out
    /// of the runtime, or tracing stopped while it ran): written without an
    /// outcome. Part of `records`.
    pub unmatched: u64,
    /// The maps' memory (`mapmem`): what was read; None when not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_memory: Option<super::mapmem::MapMemoryTotals>,
    /// Crash forensics: `fatal` records written (one per death of the
    /// target); None when the fatal probe was not attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fatal_errors: Option<u64>,
    /// How the launched program ended (launch mode), or that the target exited.
    pub target_exit: Option<String>,
    #[serde(skip)]
    pub exit_status: Option<ExitStatus>,
}

/// Exact outcomes, counted at the exits in the kernel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutcomeTotals {
    /// Deletes that removed an entry, and deletes of a key not there.
    pub removed: u64,
    pub absent: u64,
    /// Calls (deletes and clears) seen returning, and their total time.
    pub returned: u64,
    pub total_ns: u64,
    /// How long the exit points were armed (all of `duration` unless they
    /// were armed in windows: `--latency-sample`).
    #[serde(serialize_with = "seconds")]
    pub armed: Duration,
    /// Calls that never returned (they panicked out of the runtime).
    pub never_returned: u64,
    /// Exits whose entry was not seen while armed (its pending entry was
    /// evicted: more calls in flight than the kernel keeps).
    pub exits_without_entry: u64,
    /// Exit records that never reached user space: the ring had no room
    /// for them, or they were still in it after the stop's drain. Their
    /// records are `unmatched`.
    pub exits_lost: u64,
    /// Durations counted in the totals but in no histogram (its table was
    /// full).
    pub histograms_full: u64,
    /// Why the `--latency-sample` windows stopped before the end (a window
    /// could not be armed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows_stopped: Option<String>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e6)
}

impl Summary {
    /// The totals on one line, as every output ends with them (after
    /// `mdt: ` on stderr):
    /// `D deletes, C clears in X.Xs (exact); R records, S sampled out, F
    /// filtered out, L lost[, N unmatched][; R removed, A absent (exact at
    /// the exits)][; target: how it ended]`.
    pub fn line(&self) -> String {
        let head = format!(
            "{} deletes, {} clears in {:.1}s (exact)",
            self.deletes,
            self.clears,
            self.duration.as_secs_f64()
        );
        let outcomes = self.outcomes.as_ref().map_or(String::new(), |o| {
            let whole = o.armed + Duration::from_millis(100) >= self.duration;
            let when = if whole {
                String::new()
            } else {
                format!(", over {:.1}s", o.armed.as_secs_f64())
            };
            let stopped = o.windows_stopped.as_ref().map_or(String::new(), |why| {
                format!("; latency windows stopped: {why}")
            });
            format!(
                "; {} removed, {} absent (exact at the exits{when}){stopped}",
                o.removed, o.absent
            )
        });
        let records = if self.sample_rate == 0.0 {
            "counted in the kernel, no records".to_string()
        } else {
            let mut r = format!(
                "{} records, {} sampled out, {} filtered out, {} lost",
                self.records, self.sampled_out, self.filtered_out, self.lost
            );
            if self.stack_lost > 0 {
                r.push_str(&format!(", {} without their stack", self.stack_lost));
            }
            if self.unmatched > 0 {
                r.push_str(&format!(", {} unmatched", self.unmatched));
            }
            r
        };
        let target = self
            .target_exit
            .as_ref()
            .map_or(String::new(), |t| format!("; target: {t}"));
        let fatal = match self.fatal_errors {
            Some(n) if n > 0 => format!("; {n} fatal error (see FATAL above)"),
            _ => String::new(),
        };
        format!("{head}; {records}{outcomes}{target}{fatal}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_became_of_every_call() {
        let mut s = Summary {
            duration: Duration::from_millis(2500),
            deletes: 10,
            clears: 2,
            records: 6,
            sampled_out: 3,
            filtered_out: 1,
            lost: 2,
            sample_rate: 0.5,
            ..Summary::default()
        };
        assert_eq!(
            s.line(),
            "10 deletes, 2 clears in 2.5s (exact); 6 records, 3 sampled out, 1 filtered out, 2 lost"
        );
        s.stack_lost = 1;
        s.target_exit = Some("exit status 2".into());
        assert!(s
            .line()
            .ends_with(", 2 lost, 1 without their stack; target: exit status 2"));
        s.outcomes = Some(OutcomeTotals {
            removed: 7,
            absent: 3,
            armed: Duration::from_millis(2500),
            ..OutcomeTotals::default()
        });
        s.unmatched = 1;
        let line = s.line();
        assert!(
            line.ends_with(
                ", 1 without their stack, 1 unmatched; 7 removed, 3 absent (exact at the exits); target: exit status 2"
            ),
            "{line}"
        );
        s.outcomes.as_mut().unwrap().armed = Duration::from_secs(1);
        assert!(s.line().contains("(exact at the exits, over 1.0s)"));
        s.outcomes = None;
        s.sample_rate = 0.0;
        assert!(s
            .line()
            .contains("(exact); counted in the kernel, no records; target:"));
    }
}
