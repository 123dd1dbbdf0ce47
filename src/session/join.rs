//! Entries waiting for their exits: a record whose call was entered with
//! the exit points armed is held until the call's exit record arrives,
//! then written with its outcome. Bounded: a record waits at most
//! [`MAX_WAIT`] after its call began (on the kernel's clock, and only
//! once the reader has caught up with the ring, so that a slow reader does
//! not expire records whose exits are still in it), there are at most
//! [`MAX_HELD`], and a goroutine's next call of the same function releases
//! its previous one (which never returned); records released without their
//! exit are `unmatched`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::events::{Event, Outcome, Role};
use crate::probes::{MdtEvent, MdtExit};

/// How long a record waits for its exit (a clear of a huge map can take
/// seconds; a call that panicked never exits).
pub(super) const MAX_WAIT: Duration = Duration::from_secs(5);

/// Records waiting at most.
pub(super) const MAX_HELD: usize = 1 << 16;

/// (goroutine id, entry probe id, entry timestamp): one call.
type CallId = (u64, u32, u64);

#[derive(Default)]
pub(super) struct Joiner {
    held: HashMap<CallId, Event>,
    /// Arrival order, for expiry and the bound (ids may be gone from
    /// `held`: compacted when it grows past twice the bound).
    order: VecDeque<CallId>,
    /// Per (goroutine, function): its call being held.
    latest: HashMap<(u64, u32), u64>,
}

impl Joiner {
    /// Holds `event` (the decoded `raw`) for its exit. Returns the records
    /// this releases without one: the goroutine's earlier call of the same
    /// function, or the oldest held when full.
    pub(super) fn hold(&mut self, raw: &MdtEvent, event: Event) -> Vec<Event> {
        let mut released = Vec::new();
        let id = (raw.goid, raw.probe_id, raw.ts_ns);
        // goid 0: unknown, not a goroutine to follow.
        if raw.goid != 0 {
            if let Some(prev) = self.latest.insert((raw.goid, raw.probe_id), raw.ts_ns) {
                if let Some(ev) = self.held.remove(&(raw.goid, raw.probe_id, prev)) {
                    released.push(ev);
                }
            }
        }
        while self.held.len() >= MAX_HELD {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            released.extend(self.take(oldest));
        }
        // Two calls with one id (goid unknown, same function, same
        // nanosecond on two CPUs): the earlier goes out now, unmatched.
        released.extend(self.held.insert(id, event));
        self.order.push_back(id);
        if self.order.len() > 2 * MAX_HELD {
            let held = &self.held;
            self.order.retain(|id| held.contains_key(id));
        }
        released
    }

    /// The held record of `exit`'s call, with its outcome; `None` if it is
    /// not held (its record was filtered out, lost, or expired).
    pub(super) fn complete(&mut self, exit: &MdtExit) -> Option<Event> {
        let id = (exit.goid, exit.probe_id, exit.entry_ts_ns);
        let mut ev = self.take(id)?;
        ev.outcome = Some(Outcome {
            duration_ns: exit.duration_ns,
            removed: (ev.kind == Role::Delete && !exit.len_fault()).then(|| exit.removed()),
        });
        Some(ev)
    }

    /// Records whose call began [`MAX_WAIT`] or more before `now_ns` (the
    /// kernel's monotonic clock; all of them with `None`: tracing has
    /// stopped), oldest first.
    pub(super) fn expire(&mut self, now_ns: Option<u64>) -> Vec<Event> {
        let wait = MAX_WAIT.as_nanos() as u64;
        let mut out = Vec::new();
        while let Some(&id) = self.order.front() {
            if !self.held.contains_key(&id) {
                self.order.pop_front();
            } else if now_ns.is_none_or(|now| now.saturating_sub(id.2) >= wait) {
                self.order.pop_front();
                out.extend(self.take(id));
            } else {
                break;
            }
        }
        if self.held.is_empty() {
            self.order.clear();
        }
        out
    }

    fn take(&mut self, id: CallId) -> Option<Event> {
        let ev = self.held.remove(&id)?;
        if self.latest.get(&(id.0, id.1)) == Some(&id.2) {
            self.latest.remove(&(id.0, id.1));
        }
        Some(ev)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::testing::delete;
    use crate::events::KeyValue;

    fn entry(goid: u64, probe: u32, ts: u64) -> MdtEvent {
        MdtEvent {
            goid,
            probe_id: probe,
            ts_ns: ts,
            exit_expected: 1,
            ..MdtEvent::default()
        }
    }

    fn exit(goid: u64, probe: u32, entry_ts: u64, ts: u64, removed: bool) -> MdtExit {
        MdtExit {
            goid,
            probe_id: probe,
            entry_ts_ns: entry_ts,
            ts_ns: ts,
            duration_ns: ts - entry_ts,
            flags: u32::from(removed),
        }
    }

    fn ev(key: i64) -> Event {
        delete(0x10, KeyValue::Int(key), &[])
    }

    #[test]
    fn an_exit_completes_its_own_call_only() {
        let mut j = Joiner::default();
        assert!(j.hold(&entry(7, 0, 100), ev(1)).is_empty());
        assert!(j.hold(&entry(8, 0, 150), ev(2)).is_empty());
        // Another goroutine's exit, or a stale timestamp: not this call.
        assert!(j.complete(&exit(7, 0, 99, 300, true)).is_none());
        let done = j.complete(&exit(8, 0, 150, 400, false)).unwrap();
        assert_eq!(done.key, KeyValue::Int(2));
        assert_eq!(
            done.outcome,
            Some(Outcome {
                duration_ns: 250,
                removed: Some(false)
            })
        );
        let done = j.complete(&exit(7, 0, 100, 1100, true)).unwrap();
        assert_eq!(done.outcome.unwrap().removed, Some(true));
        assert_eq!(done.outcome.unwrap().duration_ns, 1000);
        assert_eq!(j.len(), 0);
    }

    #[test]
    fn a_goroutines_next_call_releases_the_one_that_never_returned() {
        let mut j = Joiner::default();
        j.hold(&entry(7, 2, 100), ev(1));
        let released = j.hold(&entry(7, 2, 500), ev(2));
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].key, KeyValue::Int(1));
        assert!(released[0].outcome.is_none());
        // The same goroutine in another function: not released.
        assert!(j.hold(&entry(7, 3, 600), ev(3)).is_empty());
        assert_eq!(j.len(), 2);
    }

    #[test]
    fn records_wait_at_most_max_wait_and_all_go_at_the_stop() {
        let mut j = Joiner::default();
        let s = 1_000_000_000;
        j.hold(&entry(1, 0, s), ev(1));
        j.hold(&entry(2, 0, 4 * s), ev(2));
        assert!(j.expire(Some(5 * s)).is_empty());
        let gone = j.expire(Some(6 * s));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].key, KeyValue::Int(1));
        let rest = j.expire(None);
        assert_eq!(rest.len(), 1);
        assert_eq!(j.len(), 0);
    }

    #[test]
    fn two_calls_with_one_id_are_both_delivered() {
        // goid unknown (0), the same function, the same nanosecond.
        let mut j = Joiner::default();
        assert!(j.hold(&entry(0, 1, 5), ev(1)).is_empty());
        let out = j.hold(&entry(0, 1, 5), ev(2));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, KeyValue::Int(1));
        assert_eq!(j.len(), 1);
    }

    #[test]
    fn the_held_records_are_bounded() {
        let mut j = Joiner::default();
        let mut released = 0;
        for i in 0..MAX_HELD as u64 + 10 {
            released += j.hold(&entry(0, 0, i), ev(1)).len();
        }
        assert_eq!(released, 10);
        assert_eq!(j.len(), MAX_HELD);
    }
}
