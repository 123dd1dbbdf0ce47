//! A ring buffer record → [`MdtEvent`]: the fixed part, the stack words
//! (or the stack of an earlier record, by id), the key bytes; and the
//! accessors for its arrays and flags.

use super::skel::types::{mdt_event_flags, mdt_exit_flags};
use super::stacks::StackTable;
use super::{MdtEvent, MdtExit, ProbeKind, LABEL_AREA, MAX_KEY_BYTES, MAX_STACK_DEPTH};
use crate::events::gofmt::{Part, PartKind};

/// Accessors for the fixed-size arrays and bit flags of an event.
impl MdtEvent {
    /// The key bytes that were copied: at most `limit` (the configured
    /// `key_bytes`) and [`MAX_KEY_BYTES`].
    pub fn key_bytes(&self, limit: usize) -> &[u8] {
        let n = (self.key_len as usize).min(MAX_KEY_BYTES).min(limit);
        &self.key[..n]
    }

    /// What the probe copied from behind the key's pointers (`struct
    /// mdt_key_part` in bpf/mdt.h, after the key bytes): strings' bytes,
    /// interfaces' values. A part whose read failed is left out (what it
    /// would hold is then shown as not captured); so are parts that do not
    /// fit in what the record carries.
    pub fn key_parts(&self, limit: usize) -> Vec<Part<'_>> {
        use super::skel::types::{mdt_key_part_flags as pf, mdt_key_part_kind as pk};
        const HEADER: usize = std::mem::size_of::<super::skel::types::mdt_key_part>();
        let mut out = Vec::new();
        if self.key_parts == 0 || self.key_fault() {
            return out;
        }
        let mut at = usize::from(self.key_n);
        if at != self.key_bytes(limit).len() {
            return out;
        }
        let end = limit.min(MAX_KEY_BYTES);
        for _ in 0..self.key_parts {
            let Some(h) = self.key.get(at..at + HEADER).filter(|_| at + HEADER <= end) else {
                break;
            };
            let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
            let (offset, kind, flags, len, full) = (
                u16_at(0),
                u32::from(h[2]),
                u32::from(h[3]),
                u16_at(4),
                u16_at(6),
            );
            let start = at + HEADER;
            let Some(bytes) = self
                .key
                .get(start..start + usize::from(len))
                .filter(|_| start + usize::from(len) <= end)
            else {
                break;
            };
            at = start + usize::from(len);
            let kind = match kind {
                k if k == pk::MDT_PART_STRING.0 => PartKind::String,
                k if k == pk::MDT_PART_VALUE.0 => PartKind::Value,
                k if k == pk::MDT_PART_VALUE_STRING.0 => PartKind::ValueString,
                _ => continue,
            };
            if flags & pf::MDT_PART_FAULT.0 != 0 {
                continue;
            }
            out.push(Part {
                offset: u64::from(offset),
                kind,
                bytes,
                complete: len == full,
            });
        }
        out
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
        let tail = if ev.has_flag(mdt_event_flags::MDT_EV_STACK_KNOWN) {
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
            if depth == 0 || stack_hash(&ev.stack[..depth]) == ev.stack_id {
                stacks.learn(ev.stack_id, &ev.stack[..depth]);
            } else {
                // Words that are not the stack the id names (the probe was
                // preempted while another hit on its CPU reused its scratch
                // space): neither learned nor shown.
                ev.stack_depth = 0;
                ev.flags |= mdt_event_flags::MDT_EV_STACK_LOST.0 as u8;
            }
            &rest[8 * depth..]
        };
        // The labels are the record's last labels_n bytes, after the key's.
        // A length that cannot be theirs: no labels, and the set is said
        // incomplete, rather than the delete lost.
        let mut labels_n = usize::from(ev.labels_n);
        if labels_n > LABEL_AREA || labels_n > tail.len() {
            labels_n = 0;
            ev.labels = 0;
            ev.labels_n = 0;
            ev.labels_flags |= super::skel::types::mdt_labels_flags::MDT_LABELS_FAULT.0 as u8;
        }
        let (key, labels) = tail.split_at(tail.len() - labels_n);
        let n = key.len().min(MAX_KEY_BYTES);
        ev.key[..n].copy_from_slice(&key[..n]);
        ev.label_room[..labels_n].copy_from_slice(labels);
        Some(ev)
    }

    /// The goroutine's labels the probe copied (`struct mdt_label` each),
    /// in the order it found them. A label whose bytes could not be read is
    /// left out and makes the set incomplete, as do labels the record had
    /// no room for.
    pub fn labels(&self) -> RawLabels<'_> {
        decode_labels(
            self.labels,
            self.labels_flags,
            self.labels_n,
            &self.label_room,
        )
    }

    /// The record's stack could not be put back together (user space no
    /// longer had the one it named, or its words did not match its id): it
    /// has none.
    pub fn stack_lost(&self) -> bool {
        self.has_flag(mdt_event_flags::MDT_EV_STACK_LOST)
    }

    /// The frame-pointer walk stopped at the depth asked for, before the
    /// outermost frame.
    pub fn stack_truncated(&self) -> bool {
        self.has_flag(mdt_event_flags::MDT_EV_STACK_TRUNCATED)
    }

    /// The key held string bytes read through a pointer (generic delete of
    /// a string-keyed map).
    pub fn key_is_string(&self) -> bool {
        self.has_flag(mdt_event_flags::MDT_EV_KEY_STRING)
    }
}

/// `count` labels (`struct mdt_label` each) in the first `n` bytes of
/// `room`, as the probe copied them (`flags`: enum mdt_labels_flags): of an
/// event or of a fatal record.
pub(super) fn decode_labels(count: u8, flags: u8, n: u16, room: &[u8]) -> RawLabels<'_> {
    use super::skel::types::{mdt_label_flags as lf, mdt_labels_flags as sf};
    const HEADER: usize = std::mem::size_of::<super::skel::types::mdt_label>();
    let flags = u32::from(flags);
    let mut out = RawLabels {
        pairs: Vec::with_capacity(usize::from(count)),
        complete: flags & (sf::MDT_LABELS_MORE.0 | sf::MDT_LABELS_FAULT.0) == 0,
    };
    let area = &room[..usize::from(n).min(LABEL_AREA).min(room.len())];
    let mut at = 0;
    for _ in 0..count {
        let Some(h) = area.get(at..at + HEADER) else {
            out.complete = false;
            break;
        };
        let (kn, vn, lflags) = (usize::from(h[0]), usize::from(h[1]), u32::from(h[2]));
        let start = at + HEADER;
        let (Some(key), Some(value)) = (
            area.get(start..start + kn),
            area.get(start + kn..start + kn + vn),
        ) else {
            out.complete = false;
            break;
        };
        at = start + kn + vn;
        if lflags & lf::MDT_LABEL_FAULT.0 != 0 {
            out.complete = false;
            continue;
        }
        out.pairs.push(RawLabel {
            key,
            value,
            key_cut: lflags & lf::MDT_LABEL_KEY_CUT.0 != 0,
            value_cut: lflags & lf::MDT_LABEL_VALUE_CUT.0 != 0,
        });
    }
    out
}

/// The labels of one record, as the probe copied them.
#[derive(Debug, Default)]
pub struct RawLabels<'a> {
    pub pairs: Vec<RawLabel<'a>>,
    /// Every label the goroutine had is in `pairs` (none was beyond what a
    /// record holds, and every read succeeded).
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLabel<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// Cut at `--label-bytes`.
    pub key_cut: bool,
    pub value_cut: bool,
}

impl MdtExit {
    /// Decodes an exit record: exactly `size_of::<MdtExit>()` bytes (the
    /// reader tells the two kinds of record apart by their size).
    pub fn from_record(data: &[u8]) -> Self {
        let mut x = Self::default();
        let n = data.len().min(std::mem::size_of::<Self>());
        // SAFETY: at most size_of::<MdtExit>() bytes are copied into a live,
        // exclusively borrowed MdtExit from a distinct slice at least that
        // long; MdtExit is a #[repr(C)] struct of plain integers, so any
        // byte pattern is a valid value.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), (&raw mut x).cast::<u8>(), n);
        }
        x
    }

    /// The delete removed an entry (the map's count went down).
    pub fn removed(&self) -> bool {
        self.flags & mdt_exit_flags::MDT_EXIT_REMOVED.0 != 0
    }

    /// The count could not be read at the entry or at the exit.
    pub fn len_fault(&self) -> bool {
        self.flags & mdt_exit_flags::MDT_EXIT_LEN_FAULT.0 != 0
    }
}

/// The id the probe gives a stack (`mdt_walk_stack` in bpf/mdt.bpf.c): FNV-1
/// over its words, the probed pc first.
pub fn stack_hash(pcs: &[u64]) -> u64 {
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    pcs.iter().fold(0xcbf2_9ce4_8422_2325, |h, &pc| {
        (h ^ pc).wrapping_mul(FNV_PRIME)
    })
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

    /// A record of `stack`, with the id the probe gives it.
    fn event(stack: &[u64]) -> MdtEvent {
        with_id(stack, stack_hash(stack))
    }

    fn with_id(stack: &[u64], id: u64) -> MdtEvent {
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
        let full = event(&[0x401000, 0x402000, 0x403000]);
        let got = MdtEvent::from_record(&record(&full, 3, b"key-1"), &mut stacks).unwrap();
        assert_eq!(got.stack(), &[0x401000, 0x402000, 0x403000]);
        assert_eq!(got.key_bytes(64), b"key-1");

        let mut known = with_id(&[0, 0, 0], full.stack_id);
        known.flags = mdt_event_flags::MDT_EV_STACK_KNOWN.0 as u8;
        let got = MdtEvent::from_record(&record(&known, 0, b"key-2"), &mut stacks).unwrap();
        assert_eq!(got.stack(), &[0x401000, 0x402000, 0x403000]);
        assert_eq!(got.key_bytes(64), b"key-2");
    }

    #[test]
    fn records_that_cannot_be_put_back_together_are_refused() {
        let mut stacks = StackTable::default();
        // Shorter than its stack depth says, or than the fixed part.
        let full = event(&[1, 2, 3]);
        let mut short = record(&full, 3, b"");
        short.truncate(short.len() - 4);
        assert!(MdtEvent::from_record(&short, &mut stacks).is_none());
        assert!(MdtEvent::from_record(&[0u8; 40], &mut stacks).is_none());
    }

    #[test]
    fn a_stack_not_held_is_lost_never_replaced() {
        let mut stacks = StackTable::default();
        // A stack id never sent (or evicted from the table).
        let mut known = with_id(&[0, 0], 9);
        known.flags = mdt_event_flags::MDT_EV_STACK_KNOWN.0 as u8;
        let got = MdtEvent::from_record(&record(&known, 0, b"key-3"), &mut stacks).unwrap();
        assert!(got.stack_lost());
        assert!(got.stack().is_empty());
        assert_eq!(got.key_bytes(64), b"key-3");
        // A known id whose depth does not match what was sent.
        let full = event(&[1, 2, 3]);
        MdtEvent::from_record(&record(&full, 3, b""), &mut stacks).unwrap();
        let mut deeper = with_id(&[0, 0, 0, 0], full.stack_id);
        deeper.flags = mdt_event_flags::MDT_EV_STACK_KNOWN.0 as u8;
        let got = MdtEvent::from_record(&record(&deeper, 0, b""), &mut stacks).unwrap();
        assert!(got.stack_lost());
        // The kernel's flags never carry STACK_LOST into a whole record.
        let mut forged = event(&[1, 2, 3]);
        forged.flags = mdt_event_flags::MDT_EV_STACK_LOST.0 as u8;
        let got = MdtEvent::from_record(&record(&forged, 3, b""), &mut stacks).unwrap();
        assert!(!got.stack_lost());
        assert_eq!(got.stack(), &[1, 2, 3]);
    }

    #[test]
    fn words_that_are_not_the_stack_their_id_names_are_never_learned() {
        // A probe preempted between its walk and its send: its id, another
        // hit's words.
        let mut stacks = StackTable::default();
        let mixed = with_id(&[1, 2, 9], stack_hash(&[1, 2, 3]));
        let got = MdtEvent::from_record(&record(&mixed, 3, b"key-4"), &mut stacks).unwrap();
        assert!(got.stack_lost() && got.stack().is_empty());
        assert_eq!(got.key_bytes(64), b"key-4", "the rest of the record stays");
        assert_eq!(stacks.get(mixed.stack_id), None);
    }

    #[test]
    fn key_parts_follow_the_key_bytes() {
        use crate::probes::skel::types::{mdt_key_part_flags, mdt_key_part_kind};
        let header = |offset: u16, kind: u32, flags: u32, len: u16, full: u16| {
            let mut h = offset.to_ne_bytes().to_vec();
            h.extend_from_slice(&[kind as u8, flags as u8]);
            h.extend_from_slice(&len.to_ne_bytes());
            h.extend_from_slice(&full.to_ne_bytes());
            h
        };
        // A 24-byte key with a string at 0 ("t1", whole), an interface at
        // 8 whose value could not be read, then a string cut short.
        let mut tail = vec![0u8; 24];
        tail.extend(header(0, mdt_key_part_kind::MDT_PART_STRING.0, 0, 2, 2));
        tail.extend_from_slice(b"t1");
        tail.extend(header(
            8,
            mdt_key_part_kind::MDT_PART_VALUE.0,
            mdt_key_part_flags::MDT_PART_FAULT.0,
            0,
            8,
        ));
        tail.extend(header(16, mdt_key_part_kind::MDT_PART_STRING.0, 0, 3, 9));
        tail.extend_from_slice(b"abc");
        let mut ev = event(&[1]);
        ev.key_len = 24;
        ev.key_n = 24;
        ev.key_parts = 3;
        let mut stacks = StackTable::default();
        let got = MdtEvent::from_record(&record(&ev, 1, &tail), &mut stacks).unwrap();
        assert_eq!(got.key_bytes(64), &[0u8; 24][..]);
        let parts = got.key_parts(64);
        assert_eq!(parts.len(), 2, "the failed read is left out");
        assert_eq!(
            (parts[0].offset, parts[0].bytes, parts[0].complete),
            (0, &b"t1"[..], true)
        );
        assert_eq!(
            (parts[1].offset, parts[1].bytes, parts[1].complete),
            (16, &b"abc"[..], false)
        );
        // Parts past what --key-bytes lets a record carry are not read.
        assert!(got.key_parts(24).is_empty());
    }

    #[test]
    fn labels_are_the_last_bytes_of_the_record() {
        use crate::probes::skel::types::{mdt_label_flags, mdt_labels_flags};
        let label = |k: &[u8], v: &[u8], flags: u32| {
            let mut out = vec![k.len() as u8, v.len() as u8, flags as u8, 0];
            out.extend_from_slice(k);
            out.extend_from_slice(v);
            out
        };
        let mut labels = label(b"tenant", b"t1", 0);
        labels.extend(label(b"trace", b"", mdt_label_flags::MDT_LABEL_FAULT.0));
        labels.extend(label(
            b"endpoint",
            b"/api/us",
            mdt_label_flags::MDT_LABEL_VALUE_CUT.0,
        ));
        let mut ev = event(&[1]);
        ev.labels = 3;
        ev.labels_n = labels.len() as u16;
        let mut tail = b"key-5".to_vec();
        tail.extend_from_slice(&labels);
        let mut stacks = StackTable::default();
        let got = MdtEvent::from_record(&record(&ev, 1, &tail), &mut stacks).unwrap();
        assert_eq!(
            got.key_bytes(64),
            b"key-5",
            "the key stops where the labels start"
        );
        let l = got.labels();
        assert!(!l.complete, "a failed read makes the set incomplete");
        let pairs: Vec<_> = l
            .pairs
            .iter()
            .map(|p| (p.key, p.value, p.value_cut))
            .collect();
        assert_eq!(
            pairs,
            [
                (&b"tenant"[..], &b"t1"[..], false),
                (&b"endpoint"[..], &b"/api/us"[..], true)
            ]
        );
        // One whole label: complete, unless the goroutine had more.
        let one = label(b"tenant", b"t1", 0);
        let mut tail = b"key-5".to_vec();
        tail.extend_from_slice(&one);
        ev.labels = 1;
        ev.labels_n = one.len() as u16;
        let got = MdtEvent::from_record(&record(&ev, 1, &tail), &mut stacks).unwrap();
        assert!(got.labels().complete);
        ev.labels_flags = mdt_labels_flags::MDT_LABELS_MORE.0 as u8;
        let got = MdtEvent::from_record(&record(&ev, 1, &tail), &mut stacks).unwrap();
        assert!(!got.labels().complete);
        assert_eq!(got.labels().pairs.len(), 1);
        // labels_n past the record's end: the delete without labels, said
        // incomplete; its key is the whole tail.
        ev.labels_flags = 0;
        ev.labels_n = tail.len() as u16 + 1;
        let got = MdtEvent::from_record(&record(&ev, 1, &tail), &mut stacks).unwrap();
        assert!(got.labels().pairs.is_empty() && !got.labels().complete);
        assert_eq!(got.key_bytes(64), b"key-5");
    }

    #[test]
    fn the_stack_id_is_the_probes_hash() {
        // FNV-1 over the words, as mdt_walk_stack computes it.
        let one = (0xcbf2_9ce4_8422_2325u64 ^ 0x401000).wrapping_mul(0x100_0000_01b3);
        assert_eq!(stack_hash(&[0x401000]), one);
        let two = (one ^ 0x402000).wrapping_mul(0x100_0000_01b3);
        assert_eq!(stack_hash(&[0x401000, 0x402000]), two);
    }
}
