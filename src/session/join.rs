//! Entries waiting for their exits: a record whose call was entered with
//! the exit points armed is held until the call's exit record arrives,
//! then written with its outcome. Bounded: a record waits at most
//! [`MAX_WAIT`], there are at most [`MAX_HELD`], and a goroutine's next
//! call of the same function releases its previous one (which never
//! returned); records released without their exit are `unmatched`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

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
    held: HashMap<CallId, (Event, Instant)>,
    /// Arrival order, for expiry and the bound (entries may be gone).
    order: VecDeque<CallId>,
    /// Per (goroutine, function): its call being held.
    latest: HashMap<(u64, u32), u64>,
    /// Exit records whose entry was not held (filtered out, lost, expired).
    pub(super) orphan_exits: u64,
}

impl Joiner {
    /// Holds `event` (the decoded `raw`) for its exit. Returns the records
    /// this releases without one: the goroutine's earlier call of the same
    /// function, or the oldest held when full.
    pub(super) fn hold(&mut self, raw: &MdtEvent, event: Event, now: Instant) -> Vec<Event> {
        let mut released = Vec::new();
        let id = (raw.goid, raw.probe_id, raw.ts_ns);
        // goid 0: unknown, not a goroutine to follow.
        if raw.goid != 0 {
            if let Some(prev) = self.latest.insert((raw.goid, raw.probe_id), raw.ts_ns) {
                if let Some((ev, _)) = self.held.remove(&(raw.goid, raw.probe_id, prev)) {
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
        self.held.insert(id, (event, now));
        self.order.push_back(id);
        released
    }

    /// The held record of `exit`'s call, with its outcome; `None` (counted)
    /// if it is not held.
    pub(super) fn complete(&mut self, exit: &MdtExit) -> Option<Event> {
        let id = (exit.goid, exit.probe_id, exit.entry_ts_ns);
        let Some(mut ev) = self.take(id) else {
            self.orphan_exits += 1;
            return None;
        };
        ev.outcome = Some(Outcome {
            duration_ns: exit.duration_ns(),
            removed: (ev.kind == Role::Delete && !exit.len_fault()).then(|| exit.removed()),
        });
        Some(ev)
    }

    /// Records that waited longer than [`MAX_WAIT`] by `now` (all of them
    /// with `now = None`: tracing has stopped), oldest first.
    pub(super) fn expire(&mut self, now: Option<Instant>) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(&id) = self.order.front() {
            match self.held.get(&id) {
                None => {
                    self.order.pop_front();
                }
                Some((_, at)) if now.is_none_or(|n| n.duration_since(*at) >= MAX_WAIT) => {
                    self.order.pop_front();
                    out.extend(self.take(id));
                }
                Some(_) => break,
            }
        }
        if self.held.is_empty() {
            self.order.clear();
        }
        out
    }

    fn take(&mut self, id: CallId) -> Option<Event> {
        let (ev, _) = self.held.remove(&id)?;
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
            flags: u32::from(removed),
            ..MdtExit::default()
        }
    }

    fn ev(key: i64) -> Event {
        delete(0x10, KeyValue::Int(key), &[])
    }

    #[test]
    fn an_exit_completes_its_own_call_only() {
        let mut j = Joiner::default();
        let t = Instant::now();
        assert!(j.hold(&entry(7, 0, 100), ev(1), t).is_empty());
        assert!(j.hold(&entry(8, 0, 150), ev(2), t).is_empty());
        // Another goroutine's exit, or a stale timestamp: not this call.
        assert!(j.complete(&exit(7, 0, 99, 300, true)).is_none());
        assert_eq!(j.orphan_exits, 1);
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
        let t = Instant::now();
        j.hold(&entry(7, 2, 100), ev(1), t);
        let released = j.hold(&entry(7, 2, 500), ev(2), t);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].key, KeyValue::Int(1));
        assert!(released[0].outcome.is_none());
        // The same goroutine in another function: not released.
        assert!(j.hold(&entry(7, 3, 600), ev(3), t).is_empty());
        assert_eq!(j.len(), 2);
    }

    #[test]
    fn records_wait_at_most_max_wait_and_all_go_at_the_stop() {
        let mut j = Joiner::default();
        let t = Instant::now();
        j.hold(&entry(1, 0, 1), ev(1), t);
        j.hold(&entry(2, 0, 2), ev(2), t + Duration::from_secs(3));
        assert!(j.expire(Some(t + Duration::from_secs(4))).is_empty());
        let gone = j.expire(Some(t + MAX_WAIT));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].key, KeyValue::Int(1));
        let rest = j.expire(None);
        assert_eq!(rest.len(), 1);
        assert_eq!(j.len(), 0);
    }

    #[test]
    fn the_held_records_are_bounded() {
        let mut j = Joiner::default();
        let t = Instant::now();
        let mut released = 0;
        for i in 0..MAX_HELD as u64 + 10 {
            released += j.hold(&entry(0, 0, i), ev(1), t).len();
        }
        assert_eq!(released, 10);
        assert_eq!(j.len(), MAX_HELD);
    }
}
