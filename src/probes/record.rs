//! A ring buffer record → [`MdtEvent`]: the fixed part, the stack words
//! (or the stack of an earlier record, by id), the key bytes; and the
//! accessors for its arrays and flags.

use super::skel::types::mdt_event_flags;
use super::stacks::StackTable;
use super::{MdtEvent, ProbeKind, MAX_KEY_BYTES, MAX_STACK_DEPTH};

/// Accessors for the fixed-size arrays and bit flags of an event.
impl MdtEvent {
    /// The key bytes that were copied: at most `limit` (the configured
    /// `key_bytes`) and [`MAX_KEY_BYTES`].
    pub fn key_bytes(&self, limit: usize) -> &[u8] {
        let n = (self.key_len as usize).min(MAX_KEY_BYTES).min(limit);
        &self.key[..n]
    }

    /// The captured user stack, innermost first (runtime addresses).
    pub fn stack(&self) -> &[u64] {
        let n = usize::from(self.stack_depth).min(MAX_STACK_DEPTH);
        &self.stack[..n]
    }

    /// The kind of the probe that produced the event.
    pub fn probe_kind(&self) -> Option<ProbeKind> {
        ProbeKind::from_raw(self.kind)
    }

    /// True if `flag` (an `enum mdt_event_flags` bit) is set.
    pub fn has_flag(&self, flag: mdt_event_flags) -> bool {
        u32::from(self.flags) & flag.0 != 0
    }

    /// The key was longer than [`MAX_KEY_BYTES`] and was truncated.
    pub fn key_truncated(&self) -> bool {
        self.has_flag(mdt_event_flags::MDT_EV_KEY_TRUNCATED)
    }

    /// Reading the key from the target's memory failed.
    pub fn key_fault(&self) -> bool {
        self.has_flag(mdt_event_flags::MDT_EV_KEY_FAULT)
    }

    /// Decodes a ring buffer record: the fixed part, the stack words it
    /// carries (none when the kernel sent this stack before: then they come
    /// from `stacks`, which learns every stack it is given), then the key
    /// bytes (see `struct mdt_event` in bpf/mdt.h). A record naming a stack
    /// that `stacks` no longer holds comes back without one and with
    /// `MDT_EV_STACK_LOST` (see [`StackTable`]). `None` if `data` is
    /// shorter than the fixed part or than its stack depth says.
    pub fn from_record(data: &[u8], stacks: &mut StackTable) -> Option<Self> {
        let fixed = std::mem::offset_of!(Self, stack);
        let header = data.get(..fixed)?;
        let mut ev = Self::default();
        // SAFETY: the destination is a live, exclusively borrowed MdtEvent,
        // and `fixed` bytes (the offset of its `stack` field, less than its
        // size) are copied from a distinct slice of that length; MdtEvent is
        // a #[repr(C)] struct of plain integers and integer arrays, so any
        // byte pattern is a valid value.
        unsafe {
            std::ptr::copy_nonoverlapping(header.as_ptr(), (&raw mut ev).cast::<u8>(), fixed);
        }
        let depth = usize::from(ev.stack_depth).min(MAX_STACK_DEPTH);
        ev.stack_depth = depth as u16;
        ev.flags &= !(mdt_event_flags::MDT_EV_STACK_LOST.0 as u8);
        let rest = &data[fixed..];
        let key = if ev.has_flag(mdt_event_flags::MDT_EV_STACK_KNOWN) {
            match stacks.get(ev.stack_id) {
                Some(known) if known.len() == depth => ev.stack[..depth].copy_from_slice(known),
                // Not held (or held for another stack: a hash collision
                // whose newer stack has another depth): no stack rather
                // than a wrong one.
                _ => {
                    ev.stack_depth = 0;
                    ev.flags |= mdt_event_flags::MDT_EV_STACK_LOST.0 as u8;
                }
            }
            rest
        } else {
            let words = rest.get(..8 * depth)?;
            for (slot, w) in ev.stack.iter_mut().zip(words.chunks_exact(8)) {
                *slot = u64::from_ne_bytes(w.try_into().ok()?);
            }
            stacks.learn(ev.stack_id, &ev.stack[..depth]);
            &rest[8 * depth..]
        };
        let n = key.len().min(MAX_KEY_BYTES);
        ev.key[..n].copy_from_slice(&key[..n]);
        Some(ev)
    }

    /// The record named a stack user space no longer had: it has none.
    pub fn stack_lost(&self) -> bool {
        self.has_flag(mdt_event_flags::MDT_EV_STACK_LOST)
    }

    /// The key held string bytes read through a pointer (generic delete of
    /// a string-keyed map).
    pub fn key_is_string(&self) -> bool {
        self.has_flag(mdt_event_flags::MDT_EV_KEY_STRING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the kernel writes it: the fixed part of `ev`, then
    /// `words` stack entries, then `key`.
    fn record(ev: &MdtEvent, words: usize, key: &[u8]) -> Vec<u8> {
        let fixed = std::mem::offset_of!(MdtEvent, stack);
        // SAFETY: MdtEvent is a #[repr(C)] struct of plain integers without
        // padding (its size is asserted above), so all its bytes are
        // initialized and may be viewed as u8.
        let bytes = unsafe {
            std::slice::from_raw_parts((ev as *const MdtEvent).cast::<u8>(), size_of::<MdtEvent>())
        };
        let mut out = bytes[..fixed].to_vec();
        for w in &ev.stack[..words] {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        out.extend_from_slice(key);
        out
    }

    fn event(stack: &[u64], id: u64) -> MdtEvent {
        let mut ev = MdtEvent {
            stack_id: id,
            stack_depth: stack.len() as u16,
            key_len: 5,
            ..MdtEvent::default()
        };
        ev.stack[..stack.len()].copy_from_slice(stack);
        ev
    }

    #[test]
    fn a_stack_sent_once_fills_later_records() {
        let mut stacks = StackTable::default();
        let full = event(&[0x401000, 0x402000, 0x403000], 7);
        let got = MdtEvent::from_record(&record(&full, 3, b"key-1"), &mut stacks).unwrap();
        assert_eq!(got.stack(), &[0x401000, 0x402000, 0x403000]);
        assert_eq!(got.key_bytes(64), b"key-1");

        let mut known = event(&[0, 0, 0], 7);
        known.flags = mdt_event_flags::MDT_EV_STACK_KNOWN.0 as u8;
        let got = MdtEvent::from_record(&record(&known, 0, b"key-2"), &mut stacks).unwrap();
        assert_eq!(got.stack(), &[0x401000, 0x402000, 0x403000]);
        assert_eq!(got.key_bytes(64), b"key-2");
    }

    #[test]
    fn records_that_cannot_be_put_back_together_are_refused() {
        let mut stacks = StackTable::default();
        // Shorter than its stack depth says, or than the fixed part.
        let full = event(&[1, 2, 3], 3);
        let mut short = record(&full, 3, b"");
        short.truncate(short.len() - 4);
        assert!(MdtEvent::from_record(&short, &mut stacks).is_none());
        assert!(MdtEvent::from_record(&[0u8; 40], &mut stacks).is_none());
    }

    #[test]
    fn a_stack_not_held_is_lost_never_replaced() {
        let mut stacks = StackTable::default();
        // A stack id never sent (or evicted from the table).
        let mut known = event(&[0, 0], 9);
        known.flags = mdt_event_flags::MDT_EV_STACK_KNOWN.0 as u8;
        let got = MdtEvent::from_record(&record(&known, 0, b"key-3"), &mut stacks).unwrap();
        assert!(got.stack_lost());
        assert!(got.stack().is_empty());
        assert_eq!(got.key_bytes(64), b"key-3");
        // A known id whose depth does not match what was sent.
        let full = event(&[1, 2, 3], 3);
        MdtEvent::from_record(&record(&full, 3, b""), &mut stacks).unwrap();
        let mut deeper = event(&[0, 0, 0, 0], 3);
        deeper.flags = mdt_event_flags::MDT_EV_STACK_KNOWN.0 as u8;
        let got = MdtEvent::from_record(&record(&deeper, 0, b""), &mut stacks).unwrap();
        assert!(got.stack_lost());
        // The kernel's flags never carry STACK_LOST into a whole record.
        let mut forged = event(&[1, 2, 3], 4);
        forged.flags = mdt_event_flags::MDT_EV_STACK_LOST.0 as u8;
        let got = MdtEvent::from_record(&record(&forged, 3, b""), &mut stacks).unwrap();
        assert!(!got.stack_lost());
        assert_eq!(got.stack(), &[1, 2, 3]);
    }
}
