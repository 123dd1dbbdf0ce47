//! When the exit points are armed: from the start to the end (`--latency`),
//! or in windows (`--latency-sample`), so their cost is paid only that
//! share of the time.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::options::Latency;
use crate::probes::Probes;

/// After the entries stop leaving pending entries, the exit points stay
/// until no call of the window is in flight, for at most this long (a call
/// that never returned stays "in flight"): a slow call in a window is
/// measured, the tail included.
const QUIESCE_MAX: Duration = super::join::MAX_WAIT;

pub(super) struct LatencyClock {
    mode: Latency,
    /// The current window began then (armed now).
    armed_at: Option<Instant>,
    /// Entries stopped leaving pending entries then; exits still attached.
    quiesced_at: Option<Instant>,
    /// The next window begins then.
    next: Option<Instant>,
    /// Time armed in the windows that ended.
    armed_total: Duration,
    /// Why the windows stopped: a later window could not be armed.
    pub(super) failed: Option<String>,
}

impl LatencyClock {
    pub(super) fn new(mode: Latency) -> Self {
        LatencyClock {
            mode,
            armed_at: None,
            quiesced_at: None,
            next: None,
            armed_total: Duration::ZERO,
            failed: None,
        }
    }

    /// Arms the exit points for the first window (or for good).
    pub(super) fn start(&mut self, probes: &mut Probes) -> Result<()> {
        if !self.mode.is_on() || !probes.has_exits() {
            return Ok(());
        }
        probes.arm_exits()?;
        let now = Instant::now();
        self.armed_at = Some(now);
        self.next = self.mode.period().map(|p| now + p);
        Ok(())
    }

    /// Opens and closes the windows (a no-op outside `Latency::Windows`).
    /// A window that cannot be armed ends the windows, not the session
    /// (they are a default of metrics, alerts and the TUI): `failed` says why.
    pub(super) fn tick(&mut self, probes: &mut Probes) {
        if let Err(e) = self.try_tick(probes) {
            probes.detach_exits();
            self.armed_at = None;
            self.quiesced_at = None;
            self.next = None;
            self.failed = Some(format!("{e:#}"));
        }
    }

    fn try_tick(&mut self, probes: &mut Probes) -> Result<()> {
        let Some(period) = self.mode.period() else {
            return Ok(());
        };
        let now = Instant::now();
        if let Some(at) = self.armed_at {
            if now.duration_since(at) >= Latency::WINDOW {
                probes.quiesce_exits();
                self.armed_total += now.duration_since(at);
                self.armed_at = None;
                self.quiesced_at = Some(now);
            }
        }
        if self
            .quiesced_at
            .is_some_and(|q| probes.exits_in_flight() <= 0 || now.duration_since(q) >= QUIESCE_MAX)
        {
            probes.detach_exits();
            self.quiesced_at = None;
        }
        if self.armed_at.is_none()
            && self.quiesced_at.is_none()
            && self.next.is_some_and(|n| now >= n)
        {
            probes.arm_exits()?;
            self.armed_at = Some(now);
            self.next = self.next.map(|n| n + period);
        }
        Ok(())
    }

    /// Tracing stops: the window under way ends now.
    pub(super) fn stop(&mut self) {
        if let Some(at) = self.armed_at.take() {
            self.armed_total += at.elapsed();
        }
        self.next = None;
    }

    /// Armed from the start to the end (`--latency`).
    pub(super) fn always(&self) -> bool {
        self.mode == Latency::Always
    }

    /// Time the exit points were armed so far.
    pub(super) fn armed(&self) -> Duration {
        self.armed_total + self.armed_at.map_or(Duration::ZERO, |a| a.elapsed())
    }
}
