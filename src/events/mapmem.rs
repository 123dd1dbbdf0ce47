//! What a map holds in memory, read from its header in the target
//! (`crate::mapmem`): its capacity, its bytes and how full it is. Go maps
//! never shrink, so a map that once held a million entries keeps their
//! memory after they are deleted: [`MapSize::bloated`] names those.

use std::sync::Arc;

use serde::Serialize;

/// One reading of one map.
#[derive(Debug, Clone)]
pub struct MapMemory {
    /// Wall-clock time of the reading, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub pid: u32,
    pub map: u64,
    pub map_type: Arc<str>,
    /// None: the map is gone (freed, or its memory reused).
    pub size: Option<MapSize>,
    /// Why the map is gone, or could not be read.
    pub gone: Option<&'static str>,
}

/// A map's size, from one consistent read of its header (and its tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MapSize {
    /// Entries (`hmap.count`, `Map.used`).
    pub len: u64,
    /// Slots: 8 per bucket (classic) or per group (Swiss).
    pub cap: u64,
    /// Bytes of its buckets or groups, tables and directory (see
    /// docs/json.md for what is counted).
    pub bytes: u64,
    #[serde(flatten)]
    pub shape: MapShape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "impl", rename_all = "snake_case")]
pub enum MapShape {
    Hmap {
        /// `2^B`.
        buckets: u64,
        /// `noverflow`: overflow buckets (exact below 2^16 buckets, an
        /// estimate above, as the runtime keeps it).
        overflow: u64,
        /// The old bucket array while the map grows (0 when it does not).
        old_buckets: u64,
    },
    Swiss {
        /// Distinct tables (0 for a small map: one group, no table).
        tables: u64,
        /// Directory entries (`dirLen`).
        directory: u64,
        /// Deleted slots still marked as such (they are reused by inserts
        /// and dropped when a table grows).
        tombstones: u64,
    },
}

/// What the map watch did (`crate::mapmem`), for the summary: nothing is
/// dropped silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MapMemoryTotals {
    /// Maps watched, ever.
    pub maps: u64,
    pub readings: u64,
    /// Readings that found the map gone (freed, or its memory reused).
    pub gone: u64,
    /// Readings not made when due (the reading thread's queue was full or
    /// the budget of readings a second spent): made later.
    pub deferred: u64,
    /// Readings not made because the target's memory could no longer be
    /// read (it exited meanwhile).
    pub unread: u64,
    /// Maps forgotten to stay within the bound of maps watched.
    pub evicted: u64,
    /// Bytes held by the maps watched at the end, as last read.
    pub bytes: u64,
}

/// A map is bloated when it holds at least this many bytes...
pub const BLOATED_BYTES: u64 = 1 << 20;
/// ...at less than this fill.
pub const BLOATED_FILL: f64 = 0.10;

impl MapSize {
    /// `len / cap`; 0 for a map without slots.
    pub fn fill(&self) -> f64 {
        if self.cap == 0 {
            0.0
        } else {
            self.len as f64 / self.cap as f64
        }
    }

    /// Large and nearly empty: the memory of entries long deleted.
    pub fn bloated(&self) -> bool {
        self.bytes >= BLOATED_BYTES && self.fill() < BLOATED_FILL
    }

    pub fn growing(&self) -> bool {
        matches!(self.shape, MapShape::Hmap { old_buckets, .. } if old_buckets > 0)
    }

    pub fn tombstones(&self) -> Option<u64> {
        match self.shape {
            MapShape::Swiss { tombstones, .. } => Some(tombstones),
            MapShape::Hmap { .. } => None,
        }
    }
}

/// Bytes for people: `512B`, `1.5KiB`, `64MiB`.
pub fn short_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else if v < 10.0 {
        format!("{v:.1}{}", UNITS[unit]).replace(".0", "")
    } else {
        format!("{v:.0}{}", UNITS[unit])
    }
}

/// A Swiss map's size of one table with `tombstones`, for the unit tests of
/// the modules that read sizes.
#[cfg(test)]
pub(crate) fn swiss_size(len: u64, cap: u64, bytes: u64, tombstones: u64) -> MapSize {
    MapSize {
        len,
        cap,
        bytes,
        shape: MapShape::Swiss {
            tables: 1,
            directory: 1,
            tombstones,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(len: u64, cap: u64, bytes: u64) -> MapSize {
        swiss_size(len, cap, bytes, 0)
    }

    #[test]
    fn a_large_nearly_empty_map_is_bloated() {
        assert!(size(10, 131_072, 4 << 20).bloated());
        assert!(!size(100_000, 131_072, 4 << 20).bloated(), "full");
        assert!(!size(0, 8, 200).bloated(), "small");
        assert_eq!(size(0, 0, 0).fill(), 0.0);
        assert_eq!(size(2, 8, 200).fill(), 0.25);
    }

    #[test]
    fn bytes_are_short() {
        assert_eq!(short_bytes(512), "512B");
        assert_eq!(short_bytes(1536), "1.5KiB");
        assert_eq!(short_bytes(1 << 20), "1MiB");
        assert_eq!(short_bytes(64 << 20), "64MiB");
    }
}
