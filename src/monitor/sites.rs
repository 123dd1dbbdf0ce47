//! Call sites counted in the kernel: each (map type pointer, caller return
//! address, probe) key is named once — map type name, caller `file:line`
//! — and its cumulative count turned into per-observation increments.
//! Label cardinality is bounded here (`--max-series`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::events::{is_delete_machinery, Frame, Stack};
use crate::probes::{SiteCount, SiteKey};
use crate::session::Observation;

/// The label of everything past the series bound.
pub const OTHER: &str = "other";

/// One named call site of one map type.
#[derive(Debug, Clone)]
pub struct Site {
    pub clear: bool,
    pub map_type: Arc<str>,
    /// `file:line` of the call site (the file's base name), or the function
    /// (or address) when it has no line.
    pub caller: Arc<str>,
    /// The caller's function (`main.delUser`).
    pub caller_func: Arc<str>,
    /// `file:line` with the full path.
    pub caller_path: Arc<str>,
    /// The metric labels: the same, or `other` past `--max-series`.
    pub label_map_type: Arc<str>,
    pub label_caller: Arc<str>,
    /// Cumulative counts seen so far: calls, and (exit points armed)
    /// deletes that removed an entry / found none.
    pub(crate) count: u64,
    pub(crate) removed: u64,
    pub(crate) absent: u64,
}

/// What one site did since the last observation.
#[derive(Debug, Clone)]
pub struct SiteDelta {
    pub site: Site,
    /// Calls (exact, before sampling).
    pub calls: u64,
    /// With the exit points armed: deletes that removed an entry, and
    /// deletes of a key that was not there.
    pub removed: u64,
    pub absent: u64,
}

/// The sites seen so far, with the label bound.
pub struct Sites {
    known: HashMap<SiteKey, Site>,
    max_series: usize,
    /// Label pairs in use, with or without `other`.
    series: HashSet<(Arc<str>, Arc<str>)>,
    real_series: usize,
    other_series: usize,
    /// Calls counted under an `other` label because of the bound.
    pub overflowed: u64,
}

impl Sites {
    pub fn new(max_series: usize) -> Self {
        Sites {
            known: HashMap::new(),
            max_series: max_series.max(1),
            series: HashSet::new(),
            real_series: 0,
            other_series: 0,
            overflowed: 0,
        }
    }

    /// Reads the observation's site counts: the increments since the last
    /// call, per site (only sites that grew).
    pub fn update(&mut self, obs: &mut Observation<'_>) -> Vec<SiteDelta> {
        let mut out = Vec::new();
        for &(key, ref counts) in obs.sites {
            if !self.known.contains_key(&key) {
                let site = self.name(key, obs);
                self.known.insert(key, site);
            }
            let Some(site) = self.known.get_mut(&key) else {
                continue;
            };
            let SiteCount {
                hits,
                removed,
                absent,
                ..
            } = *counts;
            let delta = SiteDelta {
                calls: hits.saturating_sub(site.count),
                removed: removed.saturating_sub(site.removed),
                absent: absent.saturating_sub(site.absent),
                site: site.clone(),
            };
            if delta.calls + delta.removed + delta.absent == 0 {
                continue;
            }
            (site.count, site.removed, site.absent) = (
                hits.max(site.count),
                removed.max(site.removed),
                absent.max(site.absent),
            );
            if &*site.label_caller == OTHER && &*site.caller != OTHER {
                self.overflowed += delta.calls;
            }
            out.push(SiteDelta {
                site: site.clone(),
                ..delta
            });
        }
        out
    }

    fn name(&mut self, key: SiteKey, obs: &mut Observation<'_>) -> Site {
        let clear = obs
            .probes
            .get(key.probe_id as usize)
            .is_some_and(|p| p.role == crate::events::Role::Clear);
        let stack: Vec<u64> = if key.caller == 0 {
            vec![key.pc]
        } else {
            vec![key.pc, key.caller]
        };
        let (map_type, frame) =
            match obs
                .decoder
                .name_aggregate(key.probe_id, &stack, key.map_type_ptr)
            {
                Some((_, frames, ty)) => (ty.name, caller_frame(&frames, key.caller)),
                None => (format!("<map type {:#x}>", key.map_type_ptr).into(), None),
            };
        let (caller, caller_func, caller_path): (Arc<str>, Arc<str>, Arc<str>) = match &frame {
            // The kernel could not step past reflect's frames (more than
            // MDT_MAX_CALLER_HOPS, or too many machinery functions): its
            // function says more than the runtime file:line it lives at.
            Some(f) if is_delete_machinery(&f.func) => (
                f.func.clone(),
                f.func.clone(),
                format!("{}:{}", f.file, f.line).into(),
            ),
            Some(f) if f.is_named() => (
                f.short_location().into(),
                f.func.clone(),
                format!("{}:{}", f.file, f.line).into(),
            ),
            Some(f) => (f.func.clone(), f.func.clone(), f.func.clone()),
            None => ("unknown".into(), "unknown".into(), "unknown".into()),
        };
        let (label_map_type, label_caller) = self.admit(&map_type, &caller);
        Site {
            clear,
            map_type,
            caller,
            caller_func,
            caller_path,
            label_map_type,
            label_caller,
            count: 0,
            removed: 0,
            absent: 0,
        }
    }

    /// The labels for a new site: its own while fewer than `max_series`
    /// pairs exist; then `caller="other"` of its map type (at most
    /// `max_series` of those); then `other` for both.
    fn admit(&mut self, map_type: &Arc<str>, caller: &Arc<str>) -> (Arc<str>, Arc<str>) {
        let own = (map_type.clone(), caller.clone());
        if self.series.contains(&own) {
            return own;
        }
        if self.real_series < self.max_series {
            self.real_series += 1;
            self.series.insert(own.clone());
            return own;
        }
        let other: Arc<str> = OTHER.into();
        let by_type = (map_type.clone(), other.clone());
        if self.series.contains(&by_type) {
            return by_type;
        }
        if self.other_series < self.max_series {
            self.other_series += 1;
            self.series.insert(by_type.clone());
            return by_type;
        }
        self.series.insert((other.clone(), other.clone()));
        (other.clone(), other)
    }
}

/// The frame of the code that called the delete: the first frame of the
/// return address's expansion (inlined frames first) that is not delete
/// machinery; failing that (a reflect delete whose frames the kernel could
/// not step over), the outermost frame at that address.
fn caller_frame(frames: &Stack, caller_addr: u64) -> Option<Frame> {
    if caller_addr == 0 {
        return None;
    }
    let at_caller: Vec<&Frame> = frames.iter().filter(|f| f.addr == caller_addr).collect();
    at_caller
        .iter()
        .find(|f| !is_delete_machinery(&f.func))
        .or_else(|| at_caller.last())
        .map(|f| (*f).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_the_first_frame_outside_the_machinery() {
        let frames = vec![
            Frame::new(
                "runtime.mapdelete_faststr",
                "/go/src/runtime/map.go",
                10,
                0x100,
                false,
            ),
            Frame::new(
                "maps.DeleteFunc[...]",
                "/go/src/maps/maps.go",
                60,
                0x200,
                true,
            ),
            Frame::new("main.prune", "/src/app/prune.go", 42, 0x200, false),
        ];
        let f = caller_frame(&frames.clone().into(), 0x200).unwrap();
        assert_eq!(f.short_location(), "prune.go:42");
        // A reflect delete: only machinery at the return address.
        let frames = vec![
            Frame::new(
                "runtime.mapdelete_faststr",
                "/go/src/runtime/map.go",
                10,
                0x100,
                false,
            ),
            Frame::new(
                "reflect.mapdelete_faststr",
                "/go/src/runtime/map.go",
                1400,
                0x300,
                false,
            ),
        ];
        assert_eq!(
            &*caller_frame(&frames.clone().into(), 0x300).unwrap().func,
            "reflect.mapdelete_faststr"
        );
        assert!(caller_frame(&frames.clone().into(), 0).is_none());
    }

    #[test]
    fn series_are_bounded() {
        let mut s = Sites::new(2);
        let t: Arc<str> = "main.M".into();
        let c = |x: &str| -> Arc<str> { x.into() };
        assert_eq!(s.admit(&t, &c("a.go:1")).1.as_ref(), "a.go:1");
        assert_eq!(s.admit(&t, &c("a.go:2")).1.as_ref(), "a.go:2");
        assert_eq!(s.admit(&t, &c("a.go:1")).1.as_ref(), "a.go:1");
        assert_eq!(s.admit(&t, &c("a.go:3")).1.as_ref(), OTHER);
        let u: Arc<str> = "main.N".into();
        assert_eq!(s.admit(&u, &c("b.go:1")), (u.clone(), c(OTHER)));
        let v: Arc<str> = "main.O".into();
        assert_eq!(s.admit(&v, &c("b.go:1")), (c(OTHER), c(OTHER)));
    }
}
