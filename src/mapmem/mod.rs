//! Map memory: the capacity, bytes and fill of the maps being deleted
//! from, read from the target's memory in user space (the probe pays
//! nothing for it).
//!
//! [`MapWatch`] decides when a map is read: at its first delete, then at
//! most once a second while it is deleted from, and every `refresh` while it
//! is watched (so a map freed since is seen gone); at most
//! [`MAX_READS_PER_SEC`] readings a second and [`MAX_MAPS`] maps watched.
//! The readings happen on a thread of their own ([`read`]), so that a slow
//! one never holds up the records: a reading that cannot be asked for when
//! due (queue full, budget spent) is asked for later, and counted.

pub mod read;

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bounded::FastHash;
use crate::events::mapmem::{MapMemory, MapMemoryTotals, MapSize};
use crate::events::{wall_clock_ns, Event};
use crate::gobin::mapmem::MapMemLayout;
use crate::process::memory::ProcessMemory;

use self::read::Reading;

/// Maps watched at once; past it, the ones not deleted from for the
/// longest are forgotten first.
pub const MAX_MAPS: usize = 4096;
/// Readings a second, all maps together.
pub const MAX_READS_PER_SEC: u32 = 200;
/// How long an address whose map was seen gone is not read again.
pub const GONE_FOR: Duration = Duration::from_secs(60);
/// A map deleted from is read at most this often.
const INTERVAL: Duration = Duration::from_secs(1);
/// Requests waiting for the reading thread.
const QUEUE: usize = 256;

/// One map being watched.
struct Watched {
    type_ptr: u64,
    map_type: Arc<str>,
    pid: u32,
    /// Tells this entry's readings from those of an entry it replaced.
    generation: u64,
    /// The last delete from it.
    seen: Instant,
    /// The last reading asked for, and whether it is still to come back.
    asked: Option<Instant>,
    pending: bool,
    /// A reading was due but could not be asked for (counted once).
    deferred: bool,
    last: Option<MapSize>,
}

struct Request {
    map: u64,
    type_ptr: u64,
    generation: u64,
}

pub struct MapWatch {
    requests: Option<SyncSender<Request>>,
    results: Receiver<(Request, Reading)>,
    reader: Option<std::thread::JoinHandle<()>>,
    maps: HashMap<u64, Watched, FastHash>,
    /// Maps seen gone, and when (at most [`MAX_MAPS`]).
    gone: HashMap<u64, Instant, FastHash>,
    refresh: Duration,
    /// The reading budget: readings left in the current second.
    budget: (Instant, u32),
    last_refresh: Instant,
    generations: u64,
    stats: MapMemoryTotals,
}

impl MapWatch {
    /// Starts the reading thread for process `pid` with maps of `layout`.
    pub fn start(pid: i32, layout: MapMemLayout, refresh: Duration) -> anyhow::Result<MapWatch> {
        let (requests, inbox) = mpsc::sync_channel::<Request>(QUEUE);
        let (outbox, results) = mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("mdt-mapmem".into())
            .spawn(move || {
                let mut memory = TargetMemory::new(pid);
                for r in inbox {
                    let reading = memory.read(&layout, &r);
                    if outbox.send((r, reading)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(MapWatch {
            requests: Some(requests),
            results,
            reader: Some(reader),
            maps: HashMap::default(),
            gone: HashMap::default(),
            refresh,
            budget: (Instant::now(), MAX_READS_PER_SEC),
            last_refresh: Instant::now(),
            generations: 0,
            stats: MapMemoryTotals::default(),
        })
    }

    /// A delete or clear from `ev.map`: asks for a reading when one is due;
    /// returns the map's capacity as last read.
    pub fn saw(&mut self, ev: &Event, now: Instant) -> Option<u64> {
        self.saw_map(
            ev.map,
            ev.map_type_ptr,
            || Some(ev.map_type.clone()),
            ev.pid,
            now,
        )
    }

    /// A delete or clear from `map` (of the type at `type_ptr`, named by
    /// `name`, in process `pid`), seen in a record or the kernel's counts.
    /// An address whose map was seen gone in the last [`GONE_FOR`] is left
    /// alone: the kernel's counts keep naming a map after its last delete,
    /// and short-lived maps (a map per request, or on a goroutine's stack)
    /// come and go at a few addresses many times a second.
    pub fn saw_map(
        &mut self,
        map: u64,
        type_ptr: u64,
        name: impl FnOnce() -> Option<Arc<str>>,
        pid: u32,
        now: Instant,
    ) -> Option<u64> {
        if map == 0 {
            return None;
        }
        if let Some(&at) = self.gone.get(&map) {
            if now.saturating_duration_since(at) < GONE_FOR {
                return None;
            }
            self.gone.remove(&map);
        }
        match self.maps.get(&map).map(|w| w.type_ptr) {
            Some(known) if known == type_ptr => {}
            known => {
                // New, or another map now lives at this address: its
                // readings start afresh (a pending one is of the other).
                let map_type = name()?;
                if known.is_none() {
                    self.make_room();
                    self.stats.maps += 1;
                }
                self.generations += 1;
                self.maps.insert(
                    map,
                    Watched {
                        type_ptr,
                        map_type,
                        pid,
                        generation: self.generations,
                        seen: now,
                        asked: None,
                        pending: false,
                        deferred: false,
                        last: None,
                    },
                );
            }
        }
        let w = self.maps.get_mut(&map)?;
        w.seen = now;
        let cap = w.last.map(|s| s.cap);
        let due = !w.pending && w.asked.is_none_or(|t| now.duration_since(t) >= INTERVAL);
        if due {
            self.ask(map, now);
        }
        cap
    }

    /// Readings that came back, and refreshes that are due.
    pub fn poll(&mut self, now: Instant) -> Vec<MapMemory> {
        let mut out = Vec::new();
        while let Ok((request, reading)) = self.results.try_recv() {
            out.extend(self.settle(request, reading));
        }
        if now.duration_since(self.last_refresh) >= self.refresh.min(INTERVAL) {
            self.last_refresh = now;
            let stale: Vec<u64> = self
                .maps
                .iter()
                .filter(|(_, w)| {
                    !w.pending
                        && w.asked
                            .is_none_or(|t| now.duration_since(t) >= self.refresh)
                })
                .map(|(&m, _)| m)
                .collect();
            for map in stale {
                self.ask(map, now);
            }
        }
        out
    }

    /// Waits (at most `timeout`) for the readings asked for, and returns
    /// them; the ones still out then are counted as unread.
    pub fn finish(&mut self, timeout: Duration) -> Vec<MapMemory> {
        self.requests = None;
        let until = Instant::now() + timeout;
        let mut out = Vec::new();
        while self.maps.values().any(|w| w.pending) {
            let left = until.saturating_duration_since(Instant::now());
            let Ok((request, reading)) = self.results.recv_timeout(left) else {
                break;
            };
            out.extend(self.settle(request, reading));
        }
        // Readings still out when the wait ends are not made: counted.
        for w in self.maps.values_mut().filter(|w| w.pending) {
            w.pending = false;
            self.stats.unread += 1;
        }
        if let Some(r) = self.reader.take() {
            if r.is_finished() {
                let _ = r.join();
            }
        }
        out
    }

    /// The totals, with the bytes of the maps as last read.
    pub fn totals(&self) -> MapMemoryTotals {
        MapMemoryTotals {
            bytes: self.sizes().map(|(_, _, s)| s.bytes).sum(),
            ..self.stats
        }
    }

    /// Maps watched (read or not yet).
    pub fn watched(&self) -> usize {
        self.maps.len()
    }

    /// The maps as last read (gone ones are forgotten).
    pub fn sizes(&self) -> impl Iterator<Item = (u64, &Arc<str>, &MapSize)> {
        self.maps
            .iter()
            .filter_map(|(&m, w)| Some((m, &w.map_type, w.last.as_ref()?)))
    }

    /// A reading back from the thread: onto its map, or counted as unused
    /// (the map was forgotten or replaced meanwhile, or the target exited).
    fn settle(&mut self, r: Request, reading: Reading) -> Option<MapMemory> {
        let current = self.maps.get_mut(&r.map);
        let Some(w) = current.filter(|w| w.generation == r.generation) else {
            self.stats.unread += 1;
            return None;
        };
        w.pending = false;
        if reading == Reading::Unread {
            self.stats.unread += 1;
            return None;
        }
        self.stats.readings += 1;
        let mut m = MapMemory {
            ts_ns: wall_clock_ns(),
            pid: w.pid,
            map: r.map,
            map_type: w.map_type.clone(),
            size: None,
            gone: None,
        };
        match reading {
            Reading::Size(size) => {
                w.last = Some(size);
                m.size = Some(size);
            }
            Reading::Gone(why) => {
                self.stats.gone += 1;
                m.gone = Some(why);
                self.maps.remove(&r.map);
                if self.gone.len() >= MAX_MAPS {
                    self.gone.clear();
                }
                self.gone.insert(r.map, Instant::now());
            }
            Reading::Unread => unreachable!("handled above"),
        }
        Some(m)
    }

    fn ask(&mut self, map: u64, now: Instant) {
        let (start, left) = &mut self.budget;
        if now.duration_since(*start) >= Duration::from_secs(1) {
            *start = now;
            *left = MAX_READS_PER_SEC;
        }
        let Some(w) = self.maps.get_mut(&map) else {
            return;
        };
        let Some(requests) = &self.requests else {
            return;
        };
        let sent = *left > 0
            && match requests.try_send(Request {
                map,
                type_ptr: w.type_ptr,
                generation: w.generation,
            }) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => false,
                Err(TrySendError::Disconnected(_)) => {
                    self.requests = None;
                    return;
                }
            };
        if sent {
            *left -= 1;
            w.asked = Some(now);
            w.pending = true;
            w.deferred = false;
        } else if !w.deferred {
            w.deferred = true;
            self.stats.deferred += 1;
        }
    }

    /// At [`MAX_MAPS`], forgets the quarter of the maps deleted from least
    /// recently (one sort per quarter of the bound: amortized, cheap).
    fn make_room(&mut self) {
        if self.maps.len() < MAX_MAPS {
            return;
        }
        let mut by_age: Vec<(Instant, u64)> = self.maps.iter().map(|(&m, w)| (w.seen, m)).collect();
        by_age.sort_unstable();
        for (_, m) in by_age.into_iter().take(MAX_MAPS / 4) {
            self.maps.remove(&m);
            self.stats.evicted += 1;
        }
    }
}

/// The target's memory, opened at the first reading: a launched target
/// is traced from before its exec, and `/proc/PID/mem` opened then would
/// still show the address space it had before.
struct TargetMemory {
    pid: i32,
    mem: Option<ProcessMemory>,
    /// The process's start time (`/proc/PID/stat`), to reopen only the
    /// same process (an exec keeps it; a new process with a reused pid
    /// does not).
    started: Option<u64>,
}

impl TargetMemory {
    fn new(pid: i32) -> Self {
        TargetMemory {
            pid,
            mem: None,
            started: crate::process::start_time(pid),
        }
    }

    /// A reading that does not look like a map is made once more: the
    /// target may have been changing the map under the first. One that
    /// could not read the map type is made again on a fresh
    /// `/proc/PID/mem` (the target may have exec'd since it was opened).
    fn read(&mut self, layout: &MapMemLayout, r: &Request) -> Reading {
        for fresh in [false, true] {
            if fresh || self.mem.is_none() {
                if self.started.is_none() || crate::process::start_time(self.pid) != self.started {
                    return Reading::Unread;
                }
                self.mem = ProcessMemory::open(self.pid).ok();
            }
            let Some(mem) = &self.mem else {
                return Reading::Unread;
            };
            match read::read(mem, &layout.layout, r.map, r.type_ptr) {
                Reading::Unread => continue,
                Reading::Gone(_) => {
                    // A map being changed under the reading can look torn.
                    std::thread::sleep(Duration::from_millis(1));
                    return read::read(mem, &layout.layout, r.map, r.type_ptr);
                }
                size => return size,
            }
        }
        Reading::Unread
    }
}
