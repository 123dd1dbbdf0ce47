//! Where a map's memory is described: the header fields mdt reads from the
//! target (in user space, `/proc/PID/mem`) to tell a map's capacity and
//! bytes, for both implementations. From DWARF when the binary has it,
//! otherwise from a table that `tests/mapmem.rs` checks against each
//! toolchain's DWARF ([`dwarf_facts`]). See docs/go-runtime.md §3.8.
//!
//! - classic (`runtime.hmap`, up to 1.23 and with `GOEXPERIMENT=noswissmap`):
//!   `count`, `flags`, `B`, `noverflow`, `buckets`, `oldbuckets`,
//!   `nevacuate`; the bucket size from the map type (`bucketsize`);
//! - Swiss (`internal/runtime/maps.Map`, from 1.24): `used`, `dirPtr`,
//!   `dirLen`, `globalDepth`; each table's `used`, `capacity`,
//!   `growthLeft`, `localDepth`, `index` and `groups.lengthMask`; the group
//!   size from the map type (`GroupSize`).

use std::collections::HashMap;

use serde::Serialize;

use super::layout::{Dwarf, LayoutSource, StructLayout};
use super::version::GoVersion;
use super::MapImpl;

/// `runtime.hmap`'s fields, and the bucket size in the map type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HmapLayout {
    pub count: u64,
    pub flags: u64,
    pub b: u64,
    pub noverflow: u64,
    /// `hash0`: the hash seed, random and (all but surely) nonzero in a
    /// live map; zeroed memory has none.
    pub hash0: u64,
    pub buckets: u64,
    pub oldbuckets: u64,
    pub nevacuate: u64,
    /// `sizeof(hmap)`: one read covers the header.
    pub size: u64,
    /// `maptype.bucketsize` (`abi.OldMapType.BucketSize`): a `uint16`.
    pub type_bucketsize: u64,
}

/// `internal/runtime/maps.Map`'s and `table`'s fields, and the group size
/// in the map type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SwissLayout {
    pub used: u64,
    /// `seed`: the hash seed, random in a live map (see `HmapLayout::hash0`).
    pub seed: u64,
    pub dir_ptr: u64,
    pub dir_len: u64,
    pub global_depth: u64,
    /// `sizeof(Map)`.
    pub size: u64,
    pub table_used: u64,
    pub table_capacity: u64,
    pub table_growth_left: u64,
    pub table_local_depth: u64,
    pub table_index: u64,
    /// `table.groups.data` and `table.groups.lengthMask`.
    pub table_groups: u64,
    pub table_length_mask: u64,
    /// `sizeof(table)`.
    pub table_size: u64,
    /// `abi.SwissMapType.GroupSize` (`abi.MapType` from 1.26): a `uintptr`.
    pub type_group_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "impl", rename_all = "snake_case")]
pub enum MapLayout {
    Hmap(HmapLayout),
    Swiss(SwissLayout),
}

/// The layout mdt reads a binary's maps by, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MapMemLayout {
    pub layout: MapLayout,
    pub source: LayoutSource,
}

/// The verified values (the same in every release of each implementation).
pub const HMAP: HmapLayout = HmapLayout {
    count: 0,
    flags: 8,
    b: 9,
    noverflow: 10,
    hash0: 12,
    buckets: 16,
    oldbuckets: 24,
    nevacuate: 32,
    size: 48,
    type_bucketsize: 82,
};

/// 1.24 and 1.25 (`GOEXPERIMENT=noswissmap`) added `hmap.clearSeq` before `extra`.
pub const HMAP_1_24: HmapLayout = HmapLayout { size: 56, ..HMAP };

pub const SWISS: SwissLayout = SwissLayout {
    used: 0,
    seed: 8,
    dir_ptr: 16,
    dir_len: 24,
    global_depth: 32,
    size: 48,
    table_used: 0,
    table_capacity: 2,
    table_growth_left: 4,
    table_local_depth: 6,
    table_index: 8,
    table_groups: 16,
    table_length_mask: 24,
    table_size: 32,
    type_group_size: 80,
};

/// The type names each fact is read from, newest spelling first.
const HMAP_TYPES: &[&str] = &["runtime.hmap"];
const HMAP_MAPTYPES: &[&str] = &[
    "internal/abi.OldMapType",
    "internal/abi.MapType",
    "runtime.maptype",
];
const SWISS_MAP: &str = "internal/runtime/maps.Map";
const SWISS_TABLE: &str = "internal/runtime/maps.table";
const SWISS_GROUPS: &str = "internal/runtime/maps.groupsReference";
const SWISS_MAPTYPES: &[&str] = &["internal/abi.SwissMapType", "internal/abi.MapType"];

/// The layout for a binary of `version` with maps of `imp`: DWARF's when it
/// has all of it, else the table's for the releases it was verified on.
pub fn find(dwarf: Option<&Dwarf>, version: GoVersion, imp: MapImpl) -> Option<MapMemLayout> {
    if let Some(layout) = dwarf.and_then(|d| from_dwarf(d, imp)) {
        return Some(MapMemLayout {
            layout,
            source: LayoutSource::Dwarf,
        });
    }
    let known =
        version.major == 1 && (19..=super::layout::NEWEST_KNOWN_MINOR).contains(&version.minor);
    let layout = match imp {
        MapImpl::Hmap if known && version.minor <= 23 => MapLayout::Hmap(HMAP),
        MapImpl::Hmap if known && version.minor <= 25 => MapLayout::Hmap(HMAP_1_24),
        MapImpl::Swiss if known && version.minor >= 24 => MapLayout::Swiss(SWISS),
        _ => return None,
    };
    Some(MapMemLayout {
        layout,
        source: LayoutSource::VersionTable,
    })
}

fn layouts(dwarf: &Dwarf) -> HashMap<String, StructLayout> {
    let names: Vec<&str> = [
        HMAP_TYPES,
        HMAP_MAPTYPES,
        SWISS_MAPTYPES,
        &[SWISS_MAP, SWISS_TABLE, SWISS_GROUPS],
    ]
    .concat();
    super::layout::struct_layouts(dwarf, &names)
}

/// `member` of the first of `types` the DWARF has, under any of `names`.
fn member(all: &HashMap<String, StructLayout>, types: &[&str], names: &[&str]) -> Option<u64> {
    let layout = types.iter().find_map(|t| all.get(*t))?;
    names.iter().find_map(|n| layout.members.get(*n).copied())
}

fn size(all: &HashMap<String, StructLayout>, ty: &str) -> Option<u64> {
    all.get(ty)?.size
}

fn from_dwarf(dwarf: &Dwarf, imp: MapImpl) -> Option<MapLayout> {
    let all = layouts(dwarf);
    let m = |types: &[&str], names: &[&str]| member(&all, types, names);
    Some(match imp {
        MapImpl::Hmap => MapLayout::Hmap(HmapLayout {
            count: m(HMAP_TYPES, &["count"])?,
            flags: m(HMAP_TYPES, &["flags"])?,
            b: m(HMAP_TYPES, &["B"])?,
            noverflow: m(HMAP_TYPES, &["noverflow"])?,
            hash0: m(HMAP_TYPES, &["hash0"])?,
            buckets: m(HMAP_TYPES, &["buckets"])?,
            oldbuckets: m(HMAP_TYPES, &["oldbuckets"])?,
            nevacuate: m(HMAP_TYPES, &["nevacuate"])?,
            size: size(&all, HMAP_TYPES[0])?,
            type_bucketsize: m(HMAP_MAPTYPES, &["BucketSize", "bucketsize"])?,
        }),
        MapImpl::Swiss => {
            let groups = m(&[SWISS_TABLE], &["groups"])?;
            MapLayout::Swiss(SwissLayout {
                used: m(&[SWISS_MAP], &["used"])?,
                seed: m(&[SWISS_MAP], &["seed"])?,
                dir_ptr: m(&[SWISS_MAP], &["dirPtr"])?,
                dir_len: m(&[SWISS_MAP], &["dirLen"])?,
                global_depth: m(&[SWISS_MAP], &["globalDepth"])?,
                size: size(&all, SWISS_MAP)?,
                table_used: m(&[SWISS_TABLE], &["used"])?,
                table_capacity: m(&[SWISS_TABLE], &["capacity"])?,
                table_growth_left: m(&[SWISS_TABLE], &["growthLeft"])?,
                table_local_depth: m(&[SWISS_TABLE], &["localDepth"])?,
                table_index: m(&[SWISS_TABLE], &["index"])?,
                table_groups: groups + m(&[SWISS_GROUPS], &["data"])?,
                table_length_mask: groups + m(&[SWISS_GROUPS], &["lengthMask"])?,
                table_size: size(&all, SWISS_TABLE)?,
                type_group_size: m(SWISS_MAPTYPES, &["GroupSize"])?,
            })
        }
    })
}

/// One fact beside what the binary's DWARF says of it (None: it does not
/// say): `tests/mapmem.rs` checks that they agree on every toolchain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub what: &'static str,
    pub dwarf: Option<u64>,
    pub mdt: u64,
}

/// The table's values for `imp` in `version`, each beside its DWARF value.
pub fn dwarf_facts(elf: &super::elf::Elf, version: GoVersion, imp: MapImpl) -> Vec<Fact> {
    let table = find(None, version, imp);
    let hmap = match table.map(|t| t.layout) {
        Some(MapLayout::Hmap(h)) => h,
        _ => HMAP,
    };
    let Some(sections) = super::layout::dwarf_of(elf) else {
        return Vec::new();
    };
    let all = layouts(&super::layout::borrow(&sections));
    let m = |types: &[&str], names: &[&str]| member(&all, types, names);
    let fact = |what, dwarf, mdt| Fact { what, dwarf, mdt };
    match imp {
        MapImpl::Hmap => vec![
            fact("hmap.count", m(HMAP_TYPES, &["count"]), HMAP.count),
            fact("hmap.flags", m(HMAP_TYPES, &["flags"]), HMAP.flags),
            fact("hmap.B", m(HMAP_TYPES, &["B"]), HMAP.b),
            fact("hmap.hash0", m(HMAP_TYPES, &["hash0"]), HMAP.hash0),
            fact(
                "hmap.noverflow",
                m(HMAP_TYPES, &["noverflow"]),
                HMAP.noverflow,
            ),
            fact("hmap.buckets", m(HMAP_TYPES, &["buckets"]), HMAP.buckets),
            fact(
                "hmap.oldbuckets",
                m(HMAP_TYPES, &["oldbuckets"]),
                HMAP.oldbuckets,
            ),
            fact(
                "hmap.nevacuate",
                m(HMAP_TYPES, &["nevacuate"]),
                HMAP.nevacuate,
            ),
            fact("sizeof(hmap)", size(&all, HMAP_TYPES[0]), hmap.size),
            fact(
                "maptype.bucketsize",
                m(HMAP_MAPTYPES, &["BucketSize", "bucketsize"]),
                HMAP.type_bucketsize,
            ),
        ],
        MapImpl::Swiss => {
            let groups = m(&[SWISS_TABLE], &["groups"]);
            let inner = |name| Some(groups? + m(&[SWISS_GROUPS], &[name])?);
            vec![
                fact("Map.used", m(&[SWISS_MAP], &["used"]), SWISS.used),
                fact("Map.seed", m(&[SWISS_MAP], &["seed"]), SWISS.seed),
                fact("Map.dirPtr", m(&[SWISS_MAP], &["dirPtr"]), SWISS.dir_ptr),
                fact("Map.dirLen", m(&[SWISS_MAP], &["dirLen"]), SWISS.dir_len),
                fact(
                    "Map.globalDepth",
                    m(&[SWISS_MAP], &["globalDepth"]),
                    SWISS.global_depth,
                ),
                fact("sizeof(Map)", size(&all, SWISS_MAP), SWISS.size),
                fact("table.used", m(&[SWISS_TABLE], &["used"]), SWISS.table_used),
                fact(
                    "table.capacity",
                    m(&[SWISS_TABLE], &["capacity"]),
                    SWISS.table_capacity,
                ),
                fact(
                    "table.growthLeft",
                    m(&[SWISS_TABLE], &["growthLeft"]),
                    SWISS.table_growth_left,
                ),
                fact(
                    "table.localDepth",
                    m(&[SWISS_TABLE], &["localDepth"]),
                    SWISS.table_local_depth,
                ),
                fact(
                    "table.index",
                    m(&[SWISS_TABLE], &["index"]),
                    SWISS.table_index,
                ),
                fact("table.groups.data", inner("data"), SWISS.table_groups),
                fact(
                    "table.groups.lengthMask",
                    inner("lengthMask"),
                    SWISS.table_length_mask,
                ),
                fact("sizeof(table)", size(&all, SWISS_TABLE), SWISS.table_size),
                fact(
                    "MapType.GroupSize",
                    m(SWISS_MAPTYPES, &["GroupSize"]),
                    SWISS.type_group_size,
                ),
            ]
        }
    }
}

impl MapMemLayout {
    /// The offsets, on one line (for `mdt inspect`).
    pub fn describe(&self) -> String {
        match self.layout {
            MapLayout::Hmap(h) => format!(
                "hmap count+{} flags+{} B+{} noverflow+{} hash0+{} buckets+{} oldbuckets+{} nevacuate+{} size {}, maptype.bucketsize+{}",
                h.count, h.flags, h.b, h.noverflow, h.hash0, h.buckets, h.oldbuckets, h.nevacuate, h.size, h.type_bucketsize
            ),
            MapLayout::Swiss(s) => format!(
                "Map used+{} seed+{} dirPtr+{} dirLen+{} globalDepth+{} size {}; table used+{} capacity+{} growthLeft+{} localDepth+{} index+{} groups+{} lengthMask+{} size {}; MapType.GroupSize+{}",
                s.used, s.seed, s.dir_ptr, s.dir_len, s.global_depth, s.size, s.table_used, s.table_capacity,
                s.table_growth_left, s.table_local_depth, s.table_index, s.table_groups,
                s.table_length_mask, s.table_size, s.type_group_size
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_the_verified_releases_of_each_implementation() {
        let at = |minor, imp| find(None, GoVersion::new(1, minor), imp).map(|l| l.layout);
        assert_eq!(at(19, MapImpl::Hmap), Some(MapLayout::Hmap(HMAP)));
        assert_eq!(at(23, MapImpl::Hmap), Some(MapLayout::Hmap(HMAP)));
        assert_eq!(
            at(25, MapImpl::Hmap),
            Some(MapLayout::Hmap(HMAP_1_24)),
            "noswissmap"
        );
        assert_eq!(at(26, MapImpl::Hmap), None, "no classic maps from 1.26");
        assert_eq!(at(24, MapImpl::Swiss), Some(MapLayout::Swiss(SWISS)));
        assert_eq!(at(27, MapImpl::Swiss), Some(MapLayout::Swiss(SWISS)));
        assert_eq!(at(23, MapImpl::Swiss), None);
        assert_eq!(at(28, MapImpl::Swiss), None);
    }
}
