//! Counts per wall-clock second, for the rates and the charts.

use std::collections::VecDeque;

use super::{CHART_SECS, HISTORY_SECS};

/// Counts per wall-clock second for the last [`HISTORY_SECS`] seconds.
#[derive(Debug, Clone)]
pub struct Buckets {
    counts: [u32; HISTORY_SECS],
    /// The newest second written (seconds since the epoch).
    last: u64,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            counts: [0; HISTORY_SECS],
            last: 0,
        }
    }
}

impl Buckets {
    pub fn add(&mut self, sec: u64) {
        if sec > self.last {
            let gap = (sec - self.last).min(HISTORY_SECS as u64);
            for s in sec + 1 - gap..=sec {
                self.counts[(s % HISTORY_SECS as u64) as usize] = 0;
            }
            self.last = sec;
        } else if self.last - sec >= HISTORY_SECS as u64 {
            return;
        }
        let c = &mut self.counts[(sec % HISTORY_SECS as u64) as usize];
        *c = c.saturating_add(1);
    }

    /// The count of second `sec`.
    pub fn at(&self, sec: u64) -> u64 {
        if sec > self.last || self.last - sec >= HISTORY_SECS as u64 {
            0
        } else {
            u64::from(self.counts[(sec % HISTORY_SECS as u64) as usize])
        }
    }

    /// Events per second: the count of the last complete second.
    pub fn rate(&self, now_sec: u64) -> u64 {
        self.at(now_sec.saturating_sub(1))
    }

    /// The last `n` complete seconds before `now_sec`, oldest first.
    pub fn series(&self, now_sec: u64, n: usize) -> Vec<u64> {
        (1..=n as u64)
            .rev()
            .map(|back| now_sec.checked_sub(back).map_or(0, |s| self.at(s)))
            .collect()
    }
}

/// Per-second deltas of an exact, growing total sampled at irregular times
/// (the header's rate and sparkline, from the BPF counters).
#[derive(Debug, Clone, Default)]
pub struct RateHistory {
    /// Completed seconds, oldest first (at most [`CHART_SECS`]).
    done: VecDeque<u64>,
    sec: u64,
    at_sec_start: u64,
    last: u64,
    started: bool,
}

impl RateHistory {
    pub fn observe(&mut self, now_sec: u64, total: u64) {
        if !self.started {
            *self = RateHistory {
                sec: now_sec,
                at_sec_start: total,
                last: total,
                started: true,
                ..Default::default()
            };
            return;
        }
        if now_sec > self.sec {
            // Whatever arrived since the last sample is put in the second
            // that just ended; the seconds without a sample had nothing.
            self.push(self.last.saturating_sub(self.at_sec_start));
            for _ in 0..(now_sec - self.sec - 1).min(CHART_SECS as u64) {
                self.push(0);
            }
            self.sec = now_sec;
            self.at_sec_start = self.last;
        }
        self.last = total.max(self.last);
    }

    fn push(&mut self, v: u64) {
        if self.done.len() == CHART_SECS {
            self.done.pop_front();
        }
        self.done.push_back(v);
    }

    /// Deletes and clears in the last complete second.
    pub fn rate(&self) -> u64 {
        self.done.back().copied().unwrap_or(0)
    }

    /// The last [`CHART_SECS`] complete seconds, oldest first, zero-padded.
    pub fn series(&self) -> Vec<u64> {
        let mut v = vec![0; CHART_SECS - self.done.len()];
        v.extend(self.done.iter().copied());
        v
    }
}
