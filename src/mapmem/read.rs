//! One reading of one map's header (and, for a Swiss map, its directory
//! and tables) from the target's memory, validated field by field: the
//! map may have been freed and its memory reused since the delete that
//! named it, and what does not look like a map is reported as gone, never
//! as data.

use crate::events::mapmem::{MapShape, MapSize};
use crate::gobin::bytes::{u16_at, u32_at, u64_at, u8_at};
use crate::gobin::mapmem::{HmapLayout, MapLayout, SwissLayout};

/// Where a reading gets its bytes: the target's memory (a trait, so that
/// the validation is tested on made-up headers).
pub trait Memory {
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>>;
}

impl Memory for crate::process::memory::ProcessMemory {
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        crate::process::memory::ProcessMemory::read(self, addr, len)
    }
}

/// Slots per bucket or group, in every release.
pub const SLOTS: u64 = 8;
/// `hmap.flags`: the bits the runtime sets (iterator, oldIterator,
/// hashWriting, sameSizeGrow).
const HMAP_FLAGS: u8 = 0x0f;
const SAME_SIZE_GROW: u8 = 0x08;
/// The largest `B`, and the largest directory (8 MiB to read; 2^30 slots
/// at least), a real map can have, with room to spare.
const MAX_B: u8 = 40;
const MAX_DIRECTORY: u64 = 1 << 20;
/// `maxTableCapacity`: a Swiss table never holds more slots.
const MAX_TABLE_CAPACITY: u64 = 1024;
/// `maxAvgGroupLoad` of 8 slots.
const MAX_GROUP_LOAD: u64 = 7;
/// The largest bucket or group: 8 keys and 8 elements of at most 128
/// bytes each (larger ones are stored by pointer), with the control bytes
/// and the overflow pointer.
const MAX_BUCKET_BYTES: u64 = 16 + SLOTS * 2 * 128;

/// What reading a map gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Size(MapSize),
    /// Not a map any more (or not readable): why.
    Gone(&'static str),
    /// The map type could not be read: the descriptor is in the binary's
    /// data, mapped as long as the process lives, so the target is gone
    /// (or exiting). Says nothing of the map.
    Unread,
}

/// Reads the map at `map` of the type at `map_type`.
pub fn read(mem: &dyn Memory, layout: &MapLayout, map: u64, map_type: u64) -> Reading {
    let bucket = match layout {
        MapLayout::Hmap(l) => bucket_bytes(mem, map_type, l.type_bucketsize, false),
        MapLayout::Swiss(l) => bucket_bytes(mem, map_type, l.type_group_size, true),
    };
    let bucket = match bucket {
        Ok(b) => b,
        Err(None) => return Reading::Unread,
        Err(Some(why)) => return Reading::Gone(why),
    };
    let result = match layout {
        MapLayout::Hmap(l) => read_hmap(mem, l, map, bucket),
        MapLayout::Swiss(l) => read_swiss(mem, l, map, bucket),
    };
    match result {
        Ok(size) => Reading::Size(size),
        Err(why) => Reading::Gone(why),
    }
}

type Result<T> = std::result::Result<T, &'static str>;

fn check(ok: bool, why: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(why)
    }
}

/// A pointer the runtime could have made: non-nil, 8-aligned, user space.
fn plausible_pointer(p: u64) -> bool {
    p != 0 && p.is_multiple_of(8) && p < (1 << 47)
}

fn readable(mem: &dyn Memory, p: u64) -> bool {
    mem.read(p, 8).is_some()
}

/// The bucket (or group) size in the map type; `Err(None)`: unreadable.
fn bucket_bytes(
    mem: &dyn Memory,
    map_type: u64,
    offset: u64,
    wide: bool,
) -> std::result::Result<u64, Option<&'static str>> {
    let bytes = mem
        .read(map_type.checked_add(offset).ok_or(None)?, 8)
        .ok_or(None)?;
    let size = if wide {
        u64_at(&bytes, 0)
    } else {
        u16_at(&bytes, 0).map(u64::from)
    }
    .ok_or(None)?;
    if !(SLOTS + 8..=MAX_BUCKET_BYTES).contains(&size) {
        return Err(Some("map type has no plausible bucket size"));
    }
    Ok(size)
}

fn read_hmap(mem: &dyn Memory, l: &HmapLayout, map: u64, bucket: u64) -> Result<MapSize> {
    let h = mem.read(map, l.size as usize).ok_or("header unreadable")?;
    let field = |off| u64_at(&h, off).ok_or("header unreadable");
    let count = field(l.count)? as i64;
    let flags = u8_at(&h, l.flags).ok_or("header unreadable")?;
    let b = u8_at(&h, l.b).ok_or("header unreadable")?;
    let noverflow = u64::from(u16_at(&h, l.noverflow).ok_or("header unreadable")?);
    let buckets = field(l.buckets)?;
    let oldbuckets = field(l.oldbuckets)?;
    let nevacuate = field(l.nevacuate)?;
    let hash0 = u32_at(&h, l.hash0).ok_or("header unreadable")?;
    check(count >= 0, "negative count")?;
    check(hash0 != 0, "no hash seed (zeroed memory)")?;
    check(flags & !HMAP_FLAGS == 0, "unknown flags")?;
    check(b <= MAX_B, "implausible B")?;
    let nbuckets = 1u64 << b;
    // Growth starts when count would pass 6.5 per bucket, and doubles
    // the buckets at once: count never exceeds the new buckets' slots.
    check(count as u64 <= SLOTS * nbuckets, "more entries than slots")?;
    check(nevacuate <= nbuckets, "implausible nevacuate")?;
    if buckets == 0 {
        // A map made without a size hint gets its first bucket at its
        // first insert.
        check(
            count == 0 && b == 0 && oldbuckets == 0,
            "entries without buckets",
        )?;
        return Ok(MapSize {
            len: 0,
            cap: 0,
            bytes: l.size,
            shape: MapShape::Hmap {
                buckets: 0,
                overflow: 0,
                old_buckets: 0,
            },
        });
    }
    // The whole array must be there: its last bucket too.
    let last = buckets
        .checked_add((nbuckets - 1) * bucket)
        .ok_or("buckets unreadable")?;
    check(
        plausible_pointer(buckets) && readable(mem, buckets) && readable(mem, last),
        "buckets unreadable",
    )?;
    let old_buckets = if oldbuckets == 0 {
        0
    } else {
        check(
            plausible_pointer(oldbuckets) && readable(mem, oldbuckets),
            "old buckets unreadable",
        )?;
        check(b > 0 || flags & SAME_SIZE_GROW != 0, "growing from nothing")?;
        if flags & SAME_SIZE_GROW != 0 {
            nbuckets
        } else {
            nbuckets / 2
        }
    };
    Ok(MapSize {
        len: count as u64,
        cap: SLOTS * nbuckets,
        bytes: l.size + bucket * (nbuckets + noverflow + old_buckets),
        shape: MapShape::Hmap {
            buckets: nbuckets,
            overflow: noverflow,
            old_buckets,
        },
    })
}

/// One table of a Swiss map's directory.
struct Table {
    used: u64,
    capacity: u64,
    growth_left: u64,
    local_depth: u8,
}

fn read_table(
    mem: &dyn Memory,
    l: &SwissLayout,
    at: u64,
    index: u64,
    global_depth: u8,
    group: u64,
) -> Result<Table> {
    check(plausible_pointer(at), "table pointer implausible")?;
    let t = mem
        .read(at, l.table_size as usize)
        .ok_or("table unreadable")?;
    let half = |off| u16_at(&t, off).map(u64::from).ok_or("table unreadable");
    let table = Table {
        used: half(l.table_used)?,
        capacity: half(l.table_capacity)?,
        growth_left: half(l.table_growth_left)?,
        local_depth: u8_at(&t, l.table_local_depth).ok_or("table unreadable")?,
    };
    let t_index = u64_at(&t, l.table_index).ok_or("table unreadable")?;
    let groups = u64_at(&t, l.table_groups).ok_or("table unreadable")?;
    let mask = u64_at(&t, l.table_length_mask).ok_or("table unreadable")?;
    let cap = table.capacity;
    check(
        cap.is_power_of_two() && (SLOTS..=MAX_TABLE_CAPACITY).contains(&cap),
        "table capacity implausible",
    )?;
    check(mask == cap / SLOTS - 1, "table groups implausible")?;
    let last = groups
        .checked_add(mask * group)
        .ok_or("table groups unreadable")?;
    check(
        plausible_pointer(groups) && readable(mem, groups) && readable(mem, last),
        "table groups unreadable",
    )?;
    check(table.local_depth <= global_depth, "table depth implausible")?;
    check(t_index == index, "table not in its directory slot")?;
    check(
        table.used + table.growth_left <= max_growth(cap),
        "table counts implausible",
    )?;
    Ok(table)
}

/// The slots a table fills before it grows (`resetGrowthLeft`): all but
/// one in a table of one group, 7 in 8 otherwise.
fn max_growth(capacity: u64) -> u64 {
    if capacity <= SLOTS {
        capacity - 1
    } else {
        capacity * MAX_GROUP_LOAD / SLOTS
    }
}

fn read_swiss(mem: &dyn Memory, l: &SwissLayout, map: u64, group: u64) -> Result<MapSize> {
    let h = mem.read(map, l.size as usize).ok_or("header unreadable")?;
    let field = |off| u64_at(&h, off).ok_or("header unreadable");
    let used = field(l.used)?;
    let dir_ptr = field(l.dir_ptr)?;
    let dir_len = field(l.dir_len)?;
    let global_depth = u8_at(&h, l.global_depth).ok_or("header unreadable")?;
    check(field(l.seed)? != 0, "no hash seed (zeroed memory)")?;
    if dir_len == 0 {
        // A small map: one group of 8 slots, or none before its first insert.
        check(used <= SLOTS, "more entries than slots")?;
        check(global_depth == 0, "directory depth implausible")?;
        if dir_ptr == 0 {
            check(used == 0, "entries without a group")?;
        } else {
            check(
                plausible_pointer(dir_ptr) && readable(mem, dir_ptr),
                "group unreadable",
            )?;
        }
        let groups = u64::from(dir_ptr != 0);
        return Ok(MapSize {
            len: used,
            cap: SLOTS * groups,
            bytes: l.size + group * groups,
            shape: MapShape::Swiss {
                tables: 0,
                directory: 0,
                tombstones: 0,
            },
        });
    }
    check(
        dir_len.is_power_of_two() && dir_len <= MAX_DIRECTORY,
        "directory length implausible",
    )?;
    check(
        u32::from(global_depth) < 64 && dir_len == 1 << global_depth,
        "directory depth implausible",
    )?;
    check(plausible_pointer(dir_ptr), "directory pointer implausible")?;
    let dir = mem
        .read(dir_ptr, (dir_len * 8) as usize)
        .ok_or("directory unreadable")?;
    let entry = |i: u64| u64_at(&dir, i * 8).ok_or("directory unreadable");
    let (mut tables, mut cap, mut tombstones, mut table_bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut i = 0;
    while i < dir_len {
        let at = entry(i)?;
        let t = read_table(mem, l, at, i, global_depth, group)?;
        // A table of local depth d fills 2^(global - d) directory entries in a row.
        let span = 1u64 << (global_depth - t.local_depth);
        for j in i..(i + span).min(dir_len) {
            check(entry(j)? == at, "directory inconsistent")?;
        }
        tables += 1;
        cap += t.capacity;
        tombstones += max_growth(t.capacity) - t.used - t.growth_left;
        table_bytes += l.table_size + t.capacity / SLOTS * group;
        i += span;
    }
    check(used <= cap, "more entries than slots")?;
    Ok(MapSize {
        len: used,
        cap,
        bytes: l.size + dir_len * 8 + table_bytes,
        shape: MapShape::Swiss {
            tables,
            directory: dir_len,
            tombstones,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gobin::mapmem::{HMAP, SWISS};
    use std::collections::BTreeMap;

    /// A made-up address space: blocks of bytes at addresses.
    #[derive(Default)]
    struct Fake(BTreeMap<u64, Vec<u8>>);

    impl Fake {
        fn put(&mut self, at: u64, bytes: Vec<u8>) {
            self.0.insert(at, bytes);
        }
        fn words(&mut self, at: u64, words: &[u64]) {
            self.put(at, words.iter().flat_map(|w| w.to_le_bytes()).collect());
        }
    }

    impl Memory for Fake {
        fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
            let (start, block) = self.0.range(..=addr).next_back()?;
            let off = (addr - start) as usize;
            block.get(off..off + len).map(<[u8]>::to_vec)
        }
    }

    const TYPE: u64 = 0x10_0000;
    const MAP: u64 = 0x20_0000;

    fn hmap(count: u64, b: u8, noverflow: u16, buckets: u64, old: u64) -> Fake {
        let mut m = Fake::default();
        let mut ty = vec![0u8; 96];
        ty[82..84].copy_from_slice(&144u16.to_le_bytes());
        m.put(TYPE, ty);
        let mut h = vec![0u8; 48];
        h[0..8].copy_from_slice(&count.to_le_bytes());
        h[9] = b;
        h[10..12].copy_from_slice(&noverflow.to_le_bytes());
        h[12..16].copy_from_slice(&0x5eed_u32.to_le_bytes());
        h[16..24].copy_from_slice(&buckets.to_le_bytes());
        h[24..32].copy_from_slice(&old.to_le_bytes());
        m.put(MAP, h);
        m.put(0x30_0000, vec![0; 16 * 144]);
        m.put(0x40_0000, vec![0; 16 * 144]);
        m
    }

    #[test]
    fn a_classic_map_is_its_buckets_and_overflow() {
        let m = hmap(10, 4, 3, 0x30_0000, 0);
        let Reading::Size(s) = read(&m, &MapLayout::Hmap(HMAP), MAP, TYPE) else {
            panic!()
        };
        assert_eq!((s.len, s.cap, s.bytes), (10, 128, 48 + 144 * 19));
        assert!(!s.growing());
        // Growing: the old half-size array counts too.
        let m = hmap(70, 4, 0, 0x30_0000, 0x40_0000);
        let Reading::Size(s) = read(&m, &MapLayout::Hmap(HMAP), MAP, TYPE) else {
            panic!()
        };
        assert_eq!(s.bytes, 48 + 144 * (16 + 8));
        assert!(s.growing());
    }

    #[test]
    fn what_is_not_a_classic_map_is_gone() {
        let layout = MapLayout::Hmap(HMAP);
        let gone = |m: &Fake| matches!(read(m, &layout, MAP, TYPE), Reading::Gone(_));
        assert!(gone(&hmap(u64::MAX, 4, 0, 0x30_0000, 0)), "negative count");
        assert!(gone(&hmap(129, 4, 0, 0x30_0000, 0)), "more than its slots");
        assert!(gone(&hmap(1, 0, 0, 0, 0)), "entries without buckets");
        assert!(gone(&hmap(1, 4, 0, 0x50_0000, 0)), "unmapped buckets");
        assert!(gone(&hmap(1, 60, 0, 0x30_0000, 0)), "B");
        assert!(
            gone(&hmap(1, 5, 0, 0x30_0000, 0)),
            "32 buckets where 16 are"
        );
        let mut m = hmap(0, 0, 0, 0, 0);
        m.put(MAP, vec![0; 48]);
        assert_eq!(
            read(&m, &layout, MAP, TYPE),
            Reading::Gone("no hash seed (zeroed memory)"),
            "zeroed memory is not an empty map"
        );
        let mut m = hmap(1, 4, 0, 0x30_0000, 0);
        m.0.remove(&MAP);
        assert_eq!(
            read(&m, &layout, MAP, TYPE),
            Reading::Gone("header unreadable")
        );
    }

    /// A Swiss map of `tables` tables of `capacity` slots behind a
    /// directory of `2^depth` entries (each table filling an equal share).
    fn swiss(used_per_table: u64, capacity: u64, tables: u64, depth: u8) -> Fake {
        let mut m = Fake::default();
        let mut ty = vec![0u8; 112];
        ty[80..88].copy_from_slice(&136u64.to_le_bytes());
        m.put(TYPE, ty);
        let dir_len = 1u64 << depth;
        let dir = 0x30_0000;
        m.words(
            MAP,
            &[
                used_per_table * tables,
                0x5eed,
                dir,
                dir_len,
                u64::from(depth),
                0,
            ],
        );
        m.put(0x50_0000, vec![0; (capacity / 8 * 136) as usize]);
        let span = dir_len / tables;
        let local = depth - span.trailing_zeros() as u8;
        let mut entries = vec![];
        for t in 0..tables {
            let at = 0x40_0000 + t * 0x100;
            let growth = max_growth(capacity) - used_per_table - 1; // one tombstone
            let head = used_per_table | capacity << 16 | growth << 32 | u64::from(local) << 48;
            m.words(at, &[head, t * span, 0x50_0000, capacity / 8 - 1]);
            entries.extend(std::iter::repeat_n(at, span as usize));
        }
        m.words(dir, &entries);
        m
    }

    #[test]
    fn a_swiss_map_is_its_tables_and_directory() {
        let m = swiss(10, 1024, 2, 2);
        let Reading::Size(s) = read(&m, &MapLayout::Swiss(SWISS), MAP, TYPE) else {
            panic!("{:?}", read(&m, &MapLayout::Swiss(SWISS), MAP, TYPE))
        };
        assert_eq!((s.len, s.cap), (20, 2048));
        assert_eq!(s.bytes, 48 + 4 * 8 + 2 * (32 + 128 * 136));
        assert_eq!(
            s.shape,
            MapShape::Swiss {
                tables: 2,
                directory: 4,
                tombstones: 2
            }
        );
    }

    #[test]
    fn what_is_not_a_swiss_map_is_gone() {
        let layout = MapLayout::Swiss(SWISS);
        let gone = |m: &Fake| matches!(read(m, &layout, MAP, TYPE), Reading::Gone(_));
        let mut m = swiss(10, 1024, 2, 2);
        m.words(MAP, &[u64::MAX; 6]);
        assert!(gone(&m), "filled with ones");
        let mut m = swiss(10, 1024, 2, 2);
        m.words(MAP, &[0; 6]);
        assert!(gone(&m), "zeroed: not an empty small map");
        let mut m = swiss(10, 1024, 2, 2);
        m.put(0x50_0000, vec![0; 64]);
        assert!(gone(&m), "groups cut short");
        let mut m = swiss(10, 1024, 2, 2);
        m.words(0x40_0000, &[10 | 1000 << 16, 0, 0x50_0000, 124]);
        assert!(gone(&m), "capacity not a power of two");
        let mut m = swiss(10, 1024, 2, 2);
        m.words(0x30_0000, &[0x40_0000, 0x40_0100, 0x40_0000, 0x40_0100]);
        assert!(gone(&m), "directory out of order");
    }
}
