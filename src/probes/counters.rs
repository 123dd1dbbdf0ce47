//! The program's exact counters, read back: hits per attach point, its
//! health counters, and in aggregation and site-counting modes the keys of
//! its hash maps, decoded over the types generated from bpf/mdt.h.

use anyhow::{bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags};
use plain::Plain;

use super::skel::types;
use super::{Probes, LATENCY_BUCKETS, MAX_PROBES, MAX_STACK_DEPTH};

/// Health counters of the BPF program (`enum mdt_stat`), summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events lost because the ring buffer was full.
    pub ringbuf_full: u64,
    /// Aggregation mode: hits lost because the stack maps were full.
    pub agg_full: u64,
    /// Hits for which sampling skipped the event.
    pub sampled_out: u64,
    /// Hits with an out-of-range cookie or an unconfigured probe kind.
    pub bad_probe: u64,
    /// Events submitted to the ring buffer.
    pub submitted: u64,
    /// Site counting: hits of a (map type, caller, probe) that did not fit
    /// in the kernel's site map (still in the hit counters).
    pub sites_full: u64,
    /// Latency: exits with no pending entry (the call began before the
    /// exit points were armed, or its entry was evicted).
    pub exit_unmatched: u64,
    /// Latency: calls that never returned (found still pending by their
    /// goroutine's next call of the same function).
    pub pending_replaced: u64,
    /// Latency: durations not in a histogram (its map was full).
    pub latency_full: u64,
    /// Latency: exit records sent, and the ones the ring had no room for.
    pub exits_sent: u64,
    pub exits_lost: u64,
}

/// Outcomes of one entry probe's calls, counted at their exits (exact for
/// every call whose entry and exit were both seen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub matched: u64,
    pub removed: u64,
    pub absent: u64,
    pub total_ns: u64,
}

/// The maps a [`SiteCount`] names at most.
pub const LAST_MAPS: usize = 4;

/// One site's exact counts (`struct mdt_site_count`, summed over CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteCount {
    /// Every call, before sampling.
    pub hits: u64,
    /// With the exit points armed: deletes that removed / found nothing.
    pub removed: u64,
    pub absent: u64,
    pub total_ns: u64,
    /// The map of the last hit on each CPU (distinct, nonzero; at most
    /// [`LAST_MAPS`]): which maps are deleted from, without records.
    pub last_maps: [u64; LAST_MAPS],
}

impl SiteCount {
    fn add_last_map(&mut self, map: u64) {
        if map == 0 || self.last_maps.contains(&map) {
            return;
        }
        if let Some(slot) = self.last_maps.iter_mut().find(|m| **m == 0) {
            *slot = map;
        }
    }

    /// The maps named, in no order.
    pub fn maps(&self) -> impl Iterator<Item = u64> + '_ {
        self.last_maps.iter().copied().filter(|&m| m != 0)
    }
}

/// A latency histogram: calls per bucket of [`super::LATENCY_BOUNDS_NS`]
/// (not cumulative; the last bucket is the rest) and their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    pub buckets: [u64; LATENCY_BUCKETS],
    pub sum_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [0; LATENCY_BUCKETS],
            sum_ns: 0,
        }
    }
}

impl Histogram {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub fn add(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
    }

    /// The bucket of one duration.
    pub fn bucket_of(ns: u64) -> usize {
        super::LATENCY_BOUNDS_NS.partition_point(|&b| b < ns)
    }

    pub fn record(&mut self, ns: u64) {
        self.buckets[Self::bucket_of(ns)] += 1;
        self.sum_ns += ns;
    }

    /// The upper bound (ns) of the bucket holding quantile
    /// `per_100k`/100,000 (p99 = 99,000): the bucket of the call of rank
    /// ⌈q·n⌉ (at least 1), in integers (no rounding puts it one bucket up);
    /// `None` when empty, `u64::MAX` when it is past the last bound.
    pub fn quantile_bound(&self, per_100k: u32) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (u128::from(total) * u128::from(per_100k.min(100_000)))
            .div_ceil(100_000)
            .max(1);
        let mut seen = 0u128;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += u128::from(n);
            if seen >= rank {
                return Some(super::LATENCY_BOUNDS_NS.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

impl Probes {
    /// Exact number of hits of probe `probe_id` (summed over CPUs).
    pub fn hit_count(&self, probe_id: u32) -> Result<u64> {
        if probe_id as usize >= MAX_PROBES {
            bail!("probe id {probe_id} out of range (max {MAX_PROBES})");
        }
        percpu_sum(&self.skel.maps.hits, probe_id)
    }

    /// Hits of every configured probe, indexed by probe id.
    pub fn hit_counts(&self) -> Result<Vec<u64>> {
        (0..self.n_probes as u32)
            .map(|id| self.hit_count(id))
            .collect()
    }

    /// The program's health counters.
    pub fn stats(&self) -> Result<Stats> {
        let m = &self.skel.maps.stats;
        let get = |s: types::mdt_stat| percpu_sum(m, s.0);
        let hits: u64 = self.hit_counts()?.iter().sum();
        Ok(Stats {
            ringbuf_full: get(types::mdt_stat::MDT_STAT_RINGBUF_FULL)?,
            agg_full: get(types::mdt_stat::MDT_STAT_AGG_FULL)?,
            // The probe counts the hits that pass sampling (cheaper than
            // counting the ones that don't), and only when it samples; the
            // ones skipped are the rest.
            sampled_out: if self.samples {
                hits.saturating_sub(get(types::mdt_stat::MDT_STAT_SAMPLED_IN)?)
            } else {
                0
            },
            bad_probe: get(types::mdt_stat::MDT_STAT_BAD_PROBE)?,
            submitted: get(types::mdt_stat::MDT_STAT_SUBMITTED)?,
            sites_full: get(types::mdt_stat::MDT_STAT_SITES_FULL)?,
            exit_unmatched: get(types::mdt_stat::MDT_STAT_EXIT_UNMATCHED)?,
            pending_replaced: get(types::mdt_stat::MDT_STAT_PENDING_REPLACED)?,
            latency_full: get(types::mdt_stat::MDT_STAT_LATENCY_FULL)?,
            exits_sent: get(types::mdt_stat::MDT_STAT_EXITS_SENT)?,
            exits_lost: get(types::mdt_stat::MDT_STAT_EXITS_LOST)?,
        })
    }

    /// Latency: the outcomes of each entry probe's calls (index = probe id).
    pub fn outcomes(&self) -> Result<Vec<Outcomes>> {
        let map = &self.skel.maps.outcomes;
        (0..self.n_probes as u32)
            .map(|id| {
                let vals = map
                    .lookup_percpu(&id.to_ne_bytes(), MapFlags::ANY)
                    .context("reading outcomes")?
                    .context("outcomes: no slot")?;
                let mut sum = Outcomes::default();
                for v in vals {
                    let o = decode::<types::mdt_outcome>(&v).context("outcomes: short value")?;
                    sum.matched += o.matched;
                    sum.removed += o.removed;
                    sum.absent += o.absent;
                    sum.total_ns += o.total_ns;
                }
                Ok(sum)
            })
            .collect()
    }

    /// Latency: every exact histogram, by (map type, entry probe id).
    pub fn latency_histograms(&self) -> Result<Vec<(u64, u32, Histogram)>> {
        let map = &self.skel.maps.latency;
        let mut out = Vec::new();
        for key in map.keys() {
            let Some(values) = map
                .lookup_percpu(&key, MapFlags::ANY)
                .context("reading latency histograms")?
            else {
                continue;
            };
            let key = decode::<types::mdt_latency_key>(&key).context("latency: short key")?;
            let mut h = Histogram::default();
            for v in values {
                let one = decode::<types::mdt_latency>(&v).context("latency: short value")?;
                h.add(&Histogram {
                    buckets: one.buckets,
                    sum_ns: one.sum_ns,
                });
            }
            out.push((key.map_type_ptr, key.probe_id, h));
        }
        Ok(out)
    }

    /// Aggregation mode with `weight_latency`: nanoseconds per stack key.
    pub fn stack_durations(&self) -> Result<std::collections::HashMap<AggKey, u64>> {
        let map = &self.skel.maps.stack_ns;
        let mut out = std::collections::HashMap::new();
        for key in map.keys() {
            let Some(value) = map
                .lookup(&key, MapFlags::ANY)
                .context("reading stack durations")?
            else {
                continue;
            };
            let (Some(key), Some(ns)) = (decode::<types::mdt_agg_key>(&key), decode::<u64>(&value))
            else {
                bail!("stack durations: unexpected key or value size");
            };
            out.insert(key.into(), ns);
        }
        Ok(out)
    }

    /// Aggregation mode: every (key, count) of the kernel's stack counts.
    pub fn stack_counts(&self) -> Result<Vec<(AggKey, u64)>> {
        let map = &self.skel.maps.stack_counts;
        let mut out = Vec::new();
        for key in map.keys() {
            let Some(value) = map
                .lookup(&key, MapFlags::ANY)
                .context("reading stack counts")?
            else {
                continue; // removed meanwhile
            };
            let (Some(key), Some(count)) =
                (decode::<types::mdt_agg_key>(&key), decode::<u64>(&value))
            else {
                bail!("stack counts: unexpected key or value size");
            };
            out.push((key.into(), count));
        }
        Ok(out)
    }

    /// Site counting ([`ProbeConfig::count_sites`]): every (key, exact
    /// count summed over CPUs) of the kernel's site counts.
    pub fn site_counts(&self) -> Result<Vec<(SiteKey, SiteCount)>> {
        let map = &self.skel.maps.site_counts;
        let mut out = Vec::new();
        for key in map.keys() {
            let Some(values) = map
                .lookup_percpu(&key, MapFlags::ANY)
                .context("reading site counts")?
            else {
                continue;
            };
            let Some(key) = decode::<types::mdt_site_key>(&key) else {
                bail!("site counts: unexpected key size");
            };
            let mut sum = SiteCount::default();
            for v in values {
                let n = decode::<types::mdt_site_count>(&v).context("site counts: short value")?;
                sum.hits += n.hits;
                sum.removed += n.removed;
                sum.absent += n.absent;
                sum.total_ns += n.total_ns;
                sum.add_last_map(n.last_map);
            }
            out.push((key.into(), sum));
        }
        Ok(out)
    }

    /// Aggregation mode: the frames behind a stack hash (runtime addresses,
    /// innermost first), and whether the walk stopped before the outermost.
    pub fn stack_frames(&self, hash: u64) -> Result<Option<(Vec<u64>, bool)>> {
        let map = &self.skel.maps.stacks;
        let Some(value) = map
            .lookup(&hash.to_ne_bytes(), MapFlags::ANY)
            .context("reading stacks")?
        else {
            return Ok(None);
        };
        let stack = decode::<types::mdt_stack>(&value).context("stacks: short value")?;
        let depth = (stack.depth as usize).min(MAX_STACK_DEPTH);
        let truncated = stack.flags & types::mdt_event_flags::MDT_EV_STACK_TRUNCATED.0 != 0;
        Ok(Some((stack.pcs[..depth].to_vec(), truncated)))
    }
}

/// Sum of the u64 values of all CPUs at `idx` of a per-CPU array.
fn percpu_sum(map: &dyn MapCore, idx: u32) -> Result<u64> {
    let vals = map
        .lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY)
        .with_context(|| format!("reading per-CPU map {:?}", map.name()))?
        .with_context(|| format!("per-CPU map {:?} has no slot {idx}", map.name()))?;
    let mut sum = 0u64;
    for v in vals {
        let n = decode::<u64>(&v).context("per-CPU counter value shorter than 8 bytes")?;
        sum = sum.wrapping_add(n);
    }
    Ok(sum)
}

// SAFETY: the generated key and value types are #[repr(C)] structs of
// integers with explicit padding (bpf/mdt.h; sizes asserted in mod.rs), so
// every byte pattern is a valid value.
unsafe impl Plain for types::mdt_agg_key {}
// SAFETY: as above.
unsafe impl Plain for types::mdt_site_key {}
// SAFETY: as above.
unsafe impl Plain for types::mdt_stack {}
// SAFETY: as above.
unsafe impl Plain for types::mdt_outcome {}
// SAFETY: as above.
unsafe impl Plain for types::mdt_site_count {}
// SAFETY: as above.
unsafe impl Plain for types::mdt_latency_key {}
// SAFETY: as above.
unsafe impl Plain for types::mdt_latency {}

/// A value of a generated type from a map's bytes; None if they are short.
fn decode<T: Plain + Default>(bytes: &[u8]) -> Option<T> {
    let mut v = T::default();
    plain::copy_from_bytes(&mut v, bytes).ok()?;
    Some(v)
}

/// Key of the kernel's stack counts (`struct mdt_agg_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AggKey {
    pub stack_hash: u64,
    pub map_type_ptr: u64,
    pub goid: u64,
    pub probe_id: u32,
}

impl From<types::mdt_agg_key> for AggKey {
    fn from(k: types::mdt_agg_key) -> Self {
        AggKey {
            stack_hash: k.stack_hash,
            map_type_ptr: k.map_type_ptr,
            goid: k.goid,
            probe_id: k.probe_id,
        }
    }
}

/// Key of the kernel's site counts (`struct mdt_site_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteKey {
    pub map_type_ptr: u64,
    /// Return address into the caller of the probed function; 0 if unknown.
    pub caller: u64,
    /// The probed pc (run-time address).
    pub pc: u64,
    pub probe_id: u32,
}

impl From<types::mdt_site_key> for SiteKey {
    fn from(k: types::mdt_site_key) -> Self {
        SiteKey {
            map_type_ptr: k.map_type_ptr,
            caller: k.caller,
            pc: k.pc,
            probe_id: k.probe_id,
        }
    }
}
