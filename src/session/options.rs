//! What a session is asked for: the target, what the kernel produces per
//! delete ([`Mode`]), what is captured and kept.

use std::ffi::OsString;
use std::time::Duration;

use regex::Regex;

use crate::bounded::Limits;

/// What to trace.
pub enum TargetSpec {
    Pid(i32),
    Launch(Vec<OsString>),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub sample_rate: f64,
    pub key_bytes: u32,
    pub stack_depth: u32,
    pub redact_keys: bool,
    pub map_type: Option<Regex>,
    pub func: Option<Regex>,
    pub duration: Option<Duration>,
    pub mode: Mode,
    pub limits: Limits,
    /// Whether, and when, the exit points are armed.
    pub latency: Latency,
    /// Goroutine labels: which are kept and shown (`--labels`,
    /// `--label-filter`, `--redact-labels`), and the bytes read of each key
    /// and value (`--label-bytes`).
    pub labels: crate::events::LabelOptions,
    pub label_bytes: u32,
    /// Read goroutine labels (when the binary can have any).
    pub read_labels: bool,
    /// Read the memory of the maps deleted from, every `map_refresh` at
    /// least (`crate::mapmem`); None: not at all.
    pub map_refresh: Option<Duration>,
    /// Crash forensics: the window before a fatal error whose deletes are
    /// counted and listed; None: no fatal probe.
    pub fatal_window: Option<Duration>,
    /// Stop the dying target to see what its other threads were running.
    pub fatal_hold: bool,
}

/// The exit points (outcome and duration of each call) cost a second
/// trap per call, a single-stepped one on most exits (docs/performance.md):
/// they are armed always, in windows, or never.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    Off,
    /// Every call (`--latency`).
    Always,
    /// Armed for windows of [`Latency::WINDOW`], one every
    /// `WINDOW / fraction`, from the start (`--latency-sample FRACTION`):
    /// outcomes and durations of the calls in those windows; the hit
    /// counts stay exact.
    Windows {
        fraction: f64,
    },
}

impl Latency {
    /// How long the exit points stay armed in each window.
    pub const WINDOW: Duration = Duration::from_secs(1);

    pub fn is_on(self) -> bool {
        self != Latency::Off
    }

    /// The duty cycle's period (one window each).
    pub fn period(self) -> Option<Duration> {
        match self {
            Latency::Windows { fraction } if fraction > 0.0 && fraction < 1.0 => {
                Some(Self::WINDOW.div_f64(fraction))
            }
            _ => None,
        }
    }
}

/// What the kernel produces for each delete, besides its exact count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A record (subject to `sample_rate`) for [`Session::run`]'s sink;
    /// with `sites`, also exact counts per (map type, caller) for an
    /// [`Observer`] (metrics, alerts).
    Records { sites: bool },
    /// No records at all, only the exact counts per (map type, caller)
    /// for an [`Observer`]: metrics without a record stream.
    Sites,
    /// Hits counted per stack in the kernel, for [`Session::run_aggregate`]
    /// (flame); `per_goroutine`: per goroutine too.
    Stacks { per_goroutine: bool },
}

impl Mode {
    /// The kernel counts every hit per (map type, caller).
    pub fn counts_sites(self) -> bool {
        matches!(self, Mode::Records { sites: true } | Mode::Sites)
    }
}

impl Options {
    /// `--map-type` and `--func`: whether a delete of `map_type` through
    /// frames named `funcs` is kept (any frame matching `--func` will do).
    pub fn keeps<'a>(&self, map_type: &str, mut funcs: impl Iterator<Item = &'a str>) -> bool {
        self.map_type
            .as_ref()
            .is_none_or(|re| re.is_match(map_type))
            && self
                .func
                .as_ref()
                .is_none_or(|re| funcs.any(|f| re.is_match(f)))
    }
}
