//! Bounded caches, and the one hasher of mdt's tables.
//!
//! Every cache of the pipeline (symbolized frames and stacks, rendered
//! JSON, map type names) is a [`Cache`]: of a fixed size, the oldest of a
//! few candidates out first, and a key is admitted only the second time it
//! is offered. A workload
//! whose every delete has a new stack then costs a look-up per record,
//! not an insertion and an eviction, and the cache keeps the stacks that
//! repeat. `docs/limits.md` lists every bound.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

/// The bounds a user can set (`mdt trace --buffer-size`, `--max-stacks`,
/// `--max-rows`); docs/limits.md lists them with the fixed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The kernel's ring buffer of records, in bytes (a power of two).
    pub buffer_bytes: u32,
    /// Distinct stacks kept symbolized, and kept rendered by the JSON output.
    pub stacks: usize,
    /// Rows of each table of the terminal UI (callers, maps, stacks).
    pub rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            buffer_bytes: 32 << 20,
            stacks: 4096,
            rows: 10_000,
        }
    }
}

/// An FNV-style hash a word at a time, for tables keyed by addresses, ids
/// and stacks from mdt's own probes: SipHash's flood resistance buys
/// nothing there and costs a noticeable share of the per-event work.
pub type FastHash = std::hash::BuildHasherDefault<Fnv>;

#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        // A final avalanche (MurmurHash3's fmix64): the multiply-rotate
        // steps above leave most bits depending on a few of the key's, and
        // tables index by the low bits.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        // A stack arrives as one slice of words: mix a word at a time.
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.write_u64(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        for &b in words.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        let h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        self.0 = (h ^ v).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

/// Keys offered once that a [`Cache`] remembers (by hash), to admit them
/// when they come again: at least this many, and four times its capacity
/// (two keys that share a slot push each other out).
const MIN_SEEN: usize = 8192;
/// Entries per set of a [`Cache`].
const WAYS: usize = 4;

/// A cache of at most `cap` entries that admits a key the second time it
/// is offered (see the module comment). Set-associative: a key lives in
/// one of [`WAYS`] places chosen by its hash, and a new key replaces the
/// oldest of them. A look-up is a hash and a few compares, with no list to
/// maintain and no allocation: it sits on the path of every record.
pub struct Cache<K, V> {
    /// `sets * WAYS` places: (hash, key, value).
    places: Vec<Option<(u64, K, V)>>,
    /// Per set: the way the next new key takes.
    next: Vec<u8>,
    sets: usize,
    /// Hashes of keys offered once, by their mixed hash (a power of two).
    seen: Box<[u64]>,
}

fn hash_of<Q: Hash + ?Sized>(key: &Q) -> u64 {
    // Never 0: a seen slot of 0 is empty.
    FastHash::default().hash_one(key) | 1
}

/// The set a hash picks: its low bits but the lowest, which `hash_of`
/// sets (the seen filter takes the high ones).
fn set_bits(h: u64) -> usize {
    (h >> 1) as usize
}

fn seen_bits(h: u64) -> usize {
    (h >> 32) as usize
}

impl<K: Hash + Eq, V> Cache<K, V> {
    /// At least `cap` entries (rounded up to whole sets of a power of two).
    pub fn new(cap: usize) -> Self {
        let sets = cap.div_ceil(WAYS).max(1).next_power_of_two();
        Cache {
            places: (0..sets * WAYS).map(|_| None).collect(),
            next: vec![0; sets],
            sets,
            seen: vec![0; (4 * cap).max(MIN_SEEN).next_power_of_two()].into(),
        }
    }

    fn set_of(&self, h: u64) -> usize {
        set_bits(h) & (self.sets - 1)
    }

    fn position<Q>(&self, h: u64, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let base = self.set_of(h) * WAYS;
        (base..base + WAYS).find(
            |&i| matches!(&self.places[i], Some((ph, pk, _)) if *ph == h && pk.borrow() == key),
        )
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.position(hash_of(key), key)?;
        self.places[i].as_ref().map(|(_, _, v)| v)
    }

    /// Keeps `value` if `key` was offered before (and is still remembered);
    /// otherwise remembers that it was offered.
    pub fn offer(&mut self, key: K, value: V) {
        let h = hash_of(&key);
        if self.admits(h) {
            self.put(h, key, value);
        }
    }

    /// [`Cache::offer`] by a borrowed key: the owned key and the value are
    /// made only if they are kept.
    pub fn offer_with<Q>(&mut self, key: &Q, make: impl FnOnce() -> (K, V))
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = hash_of(key);
        if self.admits(h) {
            let (key, value) = make();
            self.put(h, key, value);
        }
    }

    /// Whether a key of hash `h` was offered before; remembers it if not.
    fn admits(&mut self, h: u64) -> bool {
        // Two places per hash, the newer first: two keys that share them
        // are both remembered.
        let i = seen_bits(h) & (self.seen.len() - 1) & !1;
        if self.seen[i] == h || self.seen[i + 1] == h {
            return true;
        }
        self.seen[i + 1] = self.seen[i];
        self.seen[i] = h;
        false
    }

    /// Keeps `value` now, whether or not `key` was offered before (for
    /// entries that cannot be made again later).
    pub fn insert(&mut self, key: K, value: V) {
        let h = hash_of(&key);
        self.put(h, key, value);
    }

    fn put(&mut self, h: u64, key: K, value: V) {
        let i = match self.position(h, key.borrow()) {
            Some(i) => i,
            None => {
                let set = self.set_of(h);
                let way = usize::from(self.next[set]);
                self.next[set] = ((way + 1) % WAYS) as u8;
                set * WAYS + way
            }
        };
        self.places[i] = Some((h, key, value));
    }

    pub fn len(&self) -> usize {
        self.places.iter().filter(|p| p.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries it holds.
    pub fn cap(&self) -> usize {
        self.places.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_kept_the_second_time_it_is_offered() {
        let mut c: Cache<u64, &str> = Cache::new(4);
        c.offer(1, "one");
        assert_eq!(c.get(&1), None, "offered once: only remembered");
        c.offer(1, "one");
        assert_eq!(c.get(&1), Some(&"one"));
    }

    #[test]
    fn a_full_set_replaces_its_oldest_and_the_bound_holds() {
        let mut c: Cache<u64, u64> = Cache::new(WAYS);
        assert_eq!(c.cap(), WAYS, "one set");
        for k in 0..=WAYS as u64 {
            c.offer(k, k);
            c.offer(k, k);
        }
        assert_eq!(c.len(), WAYS);
        assert_eq!(c.get(&0), None, "the oldest went first");
        for k in 1..=WAYS as u64 {
            assert_eq!(c.get(&k), Some(&k));
        }
        let mut big: Cache<u64, u64> = Cache::new(1000);
        assert_eq!(big.cap(), 1024);
        for k in 0..100_000 {
            big.offer(k, k);
            big.offer(k, k);
        }
        assert_eq!(big.len(), big.cap());
        assert_eq!(big.get(&99_999), Some(&99_999));
    }

    #[test]
    fn keys_that_differ_only_in_their_high_bits_spread_over_the_sets() {
        // Addresses 128 KiB apart: a cache of 65,536 must hold them all.
        let mut c: Cache<u64, u64> = Cache::new(65_536);
        let keys: Vec<u64> = (0..1000).map(|i| 0x40_0000 + i * (128 << 10)).collect();
        for &k in &keys {
            c.offer(k, k);
            c.offer(k, k);
        }
        assert!(
            keys.iter().all(|k| c.get(k) == Some(k)),
            "{} of 1000 kept",
            c.len()
        );
    }

    #[test]
    fn a_large_cache_remembers_enough_keys_to_admit_them() {
        // 20,000 keys in rotation: nearly all admitted the second time
        // they come.
        let mut c: Cache<u64, u64> = Cache::new(65_536);
        let mut kept = Vec::new();
        for round in 0..3 {
            for k in 0..20_000u64 {
                c.offer(k * 8, round);
            }
            kept.push(c.len());
        }
        assert!(kept[1] >= 19_500 && kept[2] >= kept[1], "{kept:?} kept");
    }

    #[test]
    fn insert_keeps_at_once() {
        let mut c: Cache<u64, u64> = Cache::new(8);
        c.insert(3, 4);
        assert_eq!(c.get(&3), Some(&4));
    }

    #[test]
    fn offering_a_kept_key_again_replaces_its_value() {
        let mut c: Cache<u64, u64> = Cache::new(8);
        c.offer(1, 1);
        c.offer(1, 2);
        c.offer(1, 3);
        assert_eq!(c.get(&1), Some(&3));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn slices_look_up_boxed_keys() {
        let mut c: Cache<Box<[u64]>, u32> = Cache::new(8);
        c.offer(vec![1, 2, 3].into(), 7);
        c.offer(vec![1, 2, 3].into(), 7);
        assert_eq!(c.get(&[1u64, 2, 3][..]), Some(&7));
    }
}
