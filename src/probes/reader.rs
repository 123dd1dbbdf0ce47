//! The consumer of the event ring buffer: puts records back together
//! ([`MdtEvent::from_record`]) and hands them on, in bounded batches, so
//! that its caller can check for a stop between two batches however fast
//! the kernel writes.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags, MapHandle, RingBuffer, RingBufferBuilder};

use super::stacks::{slot_of, StackTable};
use std::cell::RefCell;
use std::rc::Rc;

use super::{MdtEvent, MdtExit, MdtFatal, Probes};

/// One record of the ring: a call's entry (the event) or, with the exit
/// probes armed, its return (joined to the entry by the session).
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    Event(&'a MdtEvent),
    Exit(&'a MdtExit),
    /// The target is dying of a fatal error (crash forensics); with
    /// `MDT_FATAL_HELD`, it is stopped until the session resumes it.
    Fatal(&'a MdtFatal),
}

/// What the reader has taken from the ring, counted as it goes.
#[derive(Debug, Default)]
struct Counts {
    /// Event records taken from the ring (decodable or not).
    received: AtomicU64,
    /// Exit records taken from the ring.
    exits: AtomicU64,
    /// Records that could not be decoded (malformed): lost.
    undecodable: AtomicU64,
}

/// Consumer of the event ring buffer (see [`EventReader::new`]).
pub struct EventReader<'cb> {
    rb: RingBuffer<'cb>,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for EventReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl<'cb> EventReader<'cb> {
    /// A reader of `probes`' ring buffer that calls `on_record` for each
    /// record, from [`EventReader::consume_batch`]. It does not borrow
    /// `probes` (it owns its own mapping of the ring and a handle of the
    /// kernel's stack memory).
    pub fn new<F>(probes: &Probes, on_record: F) -> Result<Self>
    where
        F: FnMut(Record<'_>) + 'cb,
    {
        let counts = Arc::new(Counts::default());
        let in_cb = counts.clone();
        let sent_stacks = MapHandle::try_from(&probes.skel.maps.sent_stacks)
            .context("opening the kernel's stack memory")?;
        let mut stacks = StackTable::default();
        let on_record = Rc::new(RefCell::new(on_record));
        let on_fatal = on_record.clone();
        let fatal_counts = counts.clone();
        let mut builder = RingBufferBuilder::new();
        // The fatal ring first: a dying target is held until its record is
        // handled, and consume_batch reads the rings in this order.
        builder
            .add(&probes.skel.maps.fatals, move |data: &[u8]| {
                match MdtFatal::from_record(data) {
                    Some(f) => (on_fatal.borrow_mut())(Record::Fatal(&f)),
                    None => {
                        fatal_counts.undecodable.fetch_add(1, Ordering::Relaxed);
                    }
                }
                0
            })
            .context("setting up the fatal-error ring consumer")?;
        builder
            .add(&probes.skel.maps.events, move |data: &[u8]| {
                let mut on_record = on_record.borrow_mut();
                if data.len() == std::mem::size_of::<MdtExit>() {
                    in_cb.exits.fetch_add(1, Ordering::Relaxed);
                    on_record(Record::Exit(&MdtExit::from_record(data)));
                    return 0;
                }
                in_cb.received.fetch_add(1, Ordering::Relaxed);
                match MdtEvent::from_record(data, &mut stacks) {
                    Some(ev) => {
                        if ev.stack_lost() {
                            forget_in_kernel(&sent_stacks, ev.stack_id);
                        }
                        on_record(Record::Event(&ev));
                    }
                    None => {
                        in_cb.undecodable.fetch_add(1, Ordering::Relaxed);
                    }
                }
                0
            })
            .context("setting up the ring buffer consumer")?;
        let rb = builder
            .build()
            .context("setting up the ring buffer consumer")?;
        Ok(EventReader { rb, counts })
    }

    /// Handles at most `max` of the records in the ring now, without
    /// waiting; returns how many it took.
    pub fn consume_batch(&self, max: usize) -> Result<usize> {
        let n = self.rb.consume_raw_n(max);
        if n < 0 {
            bail!(
                "consuming the ring buffer: {}",
                io::Error::from_raw_os_error(-n)
            );
        }
        Ok(n as usize)
    }

    /// Waits up to `timeout` until the ring has records (at once if it
    /// has). A signal cuts the wait short, so the caller can check its
    /// stop flag.
    pub fn wait(&self, timeout: Duration) -> Result<()> {
        let mut ready = libc::epoll_event { events: 0, u64: 0 };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the epoll fd belongs to the live ring buffer, and `ready`
        // is a valid buffer for the one event asked for.
        let n = unsafe { libc::epoll_wait(self.rb.epoll_fd(), &mut ready, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e).context("waiting for the ring buffer");
            }
        }
        Ok(())
    }

    /// Exit records taken from the ring so far.
    pub fn exits_received(&self) -> u64 {
        self.counts.exits.load(Ordering::Relaxed)
    }

    /// Event records taken from the ring so far (exit records apart).
    pub fn received(&self) -> u64 {
        self.counts.received.load(Ordering::Relaxed)
    }

    /// Records that could not be decoded: lost, to be reported as such.
    pub fn undecodable(&self) -> u64 {
        self.counts.undecodable.load(Ordering::Relaxed)
    }
}

/// Clears the kernel's memory of stack `id` (if its slot still names it),
/// so that its next record carries it in full.
fn forget_in_kernel(sent_stacks: &MapHandle, id: u64) {
    let slot = slot_of(id).to_ne_bytes();
    let names_id = sent_stacks
        .lookup(&slot, MapFlags::ANY)
        .ok()
        .flatten()
        .is_some_and(|v| v.get(..8) == Some(&id.to_ne_bytes()[..]));
    if names_id {
        // Best effort: if it fails, the next miss tries again.
        let _ = sent_stacks.update(&slot, &0u64.to_ne_bytes(), MapFlags::ANY);
    }
}
