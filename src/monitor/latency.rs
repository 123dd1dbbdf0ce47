//! The kernel's exact latency histograms (exit points armed), named by map
//! type and by what the call did (delete or clear), and turned into
//! per-observation increments for the metrics and the alert rules. Map type
//! labels are bounded like the sites' (past the bound: `other`).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::sites::OTHER;
use crate::events::Role;
use crate::probes::Histogram;
use crate::session::Observation;

/// Map types with a histogram of their own; the rest are `other`.
pub const MAX_LATENCY_TYPES: usize = 100;

/// One (map type, delete or clear) histogram since the last observation.
#[derive(Debug, Clone)]
pub struct LatencyDelta {
    pub map_type: Arc<str>,
    /// The metric label: `map_type`, or `other` past the bound.
    pub label_map_type: Arc<str>,
    pub clear: bool,
    /// The calls since the last observation.
    pub delta: Histogram,
}

#[derive(Default)]
pub struct Latencies {
    /// By (map type pointer, entry probe id): its name and what was seen.
    known: HashMap<(u64, u32), (Arc<str>, bool, Histogram)>,
    admitted: HashSet<Arc<str>>,
}

impl Latencies {
    /// The increments of every histogram that grew since the last call.
    pub fn update(&mut self, obs: &mut Observation<'_>) -> Vec<LatencyDelta> {
        let mut out = Vec::new();
        for &(map_type_ptr, probe_id, ref now) in obs.latency {
            let (name, clear, seen) = match self.known.entry((map_type_ptr, probe_id)) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    // Named once the decoder knows the load bias (it has
                    // named a site or a record): until then, wait.
                    let Some(name) = obs.decoder.map_type_name(map_type_ptr) else {
                        continue;
                    };
                    let clear = obs
                        .probes
                        .get(probe_id as usize)
                        .is_some_and(|p| p.role == Role::Clear);
                    e.insert((name, clear, Histogram::default()))
                }
            };
            if now.count() <= seen.count() {
                continue;
            }
            let mut delta = *now;
            for (d, s) in delta.buckets.iter_mut().zip(&seen.buckets) {
                *d = d.saturating_sub(*s);
            }
            delta.sum_ns = now.sum_ns.saturating_sub(seen.sum_ns);
            *seen = *now;
            let (name, clear) = (name.clone(), *clear);
            let label = self.label(&name);
            out.push(LatencyDelta {
                map_type: name,
                label_map_type: label,
                clear,
                delta,
            });
        }
        out
    }

    fn label(&mut self, name: &Arc<str>) -> Arc<str> {
        if self.admitted.contains(name) {
            return name.clone();
        }
        if self.admitted.len() < MAX_LATENCY_TYPES {
            self.admitted.insert(name.clone());
            return name.clone();
        }
        OTHER.into()
    }
}
