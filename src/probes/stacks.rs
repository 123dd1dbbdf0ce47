//! The user-space half of "each distinct stack crosses the ring buffer once".
//!
//! The kernel remembers, per slot (`id % MDT_SENT_STACKS`), the id of the
//! last stack it sent in full (`sent_stacks` in bpf/mdt.bpf.c); a record
//! whose stack id is in its slot carries no stack words
//! (`MDT_EV_STACK_KNOWN`). This table mirrors that memory with the same
//! slots, each holding the last [`WAYS`] stacks learned there, so it is
//! bounded ([`SLOTS`] × [`WAYS`] stacks) whatever the workload, and it
//! holds every id the kernel can still name except in a rare race (more
//! than `WAYS - 1` full sends into one slot between the kernel's look-up
//! of a slot and its record reaching the ring).
//!
//! A record naming an id the table does not hold is a *miss*: it is
//! delivered without its stack (never with another one), counted as
//! `stack_lost`, and the reader clears the kernel's slot ([`slot_of`]
//! the id), so that the stack's next
//! occurrence is sent in full again. Clearing a slot is always safe: an
//! empty slot only means "send in full".

use super::skel::types::mdt_limits;

/// Slots of the kernel's memory of stacks sent (`MDT_SENT_STACKS`).
pub const SLOTS: usize = mdt_limits::MDT_SENT_STACKS.0 as usize;
/// Stacks this table keeps per slot.
pub const WAYS: usize = 4;

const _: () = assert!(SLOTS.is_power_of_two());

/// The slot of a stack id, as the kernel computes it.
pub fn slot_of(id: u64) -> u32 {
    (id & (SLOTS as u64 - 1)) as u32
}

#[derive(Debug, Default, Clone)]
struct Way {
    id: u64,
    pcs: Box<[u64]>,
    used: bool,
}

/// The stacks the kernel has sent in full, by id; see the module comment.
#[derive(Debug)]
pub struct StackTable {
    ways: Vec<Way>,
    /// Per slot: the way the next new id replaces (the oldest).
    next: Vec<u8>,
}

impl Default for StackTable {
    fn default() -> Self {
        StackTable {
            ways: vec![Way::default(); SLOTS * WAYS],
            next: vec![0; SLOTS],
        }
    }
}

impl StackTable {
    fn set(&self, id: u64) -> &[Way] {
        let s = slot_of(id) as usize * WAYS;
        &self.ways[s..s + WAYS]
    }

    /// The stack sent in full under `id`, if this table still holds it.
    pub fn get(&self, id: u64) -> Option<&[u64]> {
        self.set(id)
            .iter()
            .find(|w| w.used && w.id == id)
            .map(|w| &*w.pcs)
    }

    /// A stack the kernel sent in full. The same id with other frames (a
    /// hash collision) replaces what was there: records that follow name
    /// the newest stack sent under an id, as in the kernel.
    pub fn learn(&mut self, id: u64, pcs: &[u64]) {
        let slot = slot_of(id) as usize;
        let base = slot * WAYS;
        let way = match self.set(id).iter().position(|w| w.used && w.id == id) {
            Some(i) if *self.ways[base + i].pcs == *pcs => return,
            Some(i) => i,
            None => {
                let i = usize::from(self.next[slot]);
                self.next[slot] = ((i + 1) % WAYS) as u8;
                i
            }
        };
        self.ways[base + way] = Way {
            id,
            pcs: pcs.into(),
            used: true,
        };
    }

    /// Stacks held now (at most `SLOTS * WAYS`).
    pub fn len(&self) -> usize {
        self.ways.iter().filter(|w| w.used).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids that share slot 5.
    fn id(n: u64) -> u64 {
        5 + n * SLOTS as u64
    }

    #[test]
    fn a_learned_stack_is_found_by_its_id() {
        let mut t = StackTable::default();
        t.learn(id(0), &[1, 2, 3]);
        assert_eq!(t.get(id(0)), Some(&[1u64, 2, 3][..]));
        assert_eq!(t.get(id(1)), None, "a miss: never sent");
    }

    #[test]
    fn a_slot_keeps_its_last_ways_stacks_and_forgets_the_oldest() {
        let mut t = StackTable::default();
        for n in 0..=WAYS as u64 {
            t.learn(id(n), &[n]);
        }
        // Evicted on this side: the kernel may still name it, so that is a
        // miss, and the slot to clear is the kernel's slot of that id.
        assert_eq!(t.get(id(0)), None);
        assert_eq!(slot_of(id(0)), 5);
        for n in 1..=WAYS as u64 {
            assert_eq!(t.get(id(n)), Some(&[n][..]));
        }
        assert_eq!(t.len(), WAYS);
        // Evicted on the kernel's side: it sends the stack in full again,
        // and it is learned again.
        t.learn(id(0), &[0]);
        assert_eq!(t.get(id(0)), Some(&[0][..]));
        assert_eq!(t.get(id(1)), None);
    }

    #[test]
    fn relearning_an_id_does_not_evict_others() {
        let mut t = StackTable::default();
        for n in 0..WAYS as u64 {
            t.learn(id(n), &[n]);
        }
        for _ in 0..10 {
            t.learn(id(0), &[0]);
        }
        for n in 0..WAYS as u64 {
            assert_eq!(t.get(id(n)), Some(&[n][..]));
        }
    }

    #[test]
    fn an_id_reused_for_another_stack_names_the_newest() {
        let mut t = StackTable::default();
        t.learn(id(0), &[1, 2]);
        t.learn(id(0), &[3, 4, 5]);
        assert_eq!(t.get(id(0)), Some(&[3u64, 4, 5][..]));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = StackTable::default();
        for n in 0..(4 * SLOTS * WAYS) as u64 {
            t.learn(n.wrapping_mul(0x9e37_79b9_7f4a_7c15), &[n; 8]);
        }
        assert!(t.len() <= SLOTS * WAYS);
    }
}
