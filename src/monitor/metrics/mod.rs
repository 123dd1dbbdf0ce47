//! Prometheus metrics (`mdt trace --prometheus`): every observation of the
//! session's exact counters (500 ms), the kernel's per-call-site counts
//! become counter increments.
//!
//! Metrics (text exposition format 0.0.4, served by [`server`]):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `go_map_delete_total` | counter | `map_type`, `caller` |
//! | `go_map_clear_total` | counter | `map_type`, `caller` |
//! | `go_map_delete_by_label_total` | counter (`--metric-labels`) | `map_type`, `label_KEY`... |
//! | `go_map_delete_removed_total`, `go_map_delete_absent_total` | counter (exit probes armed) | `map_type`, `caller` |
//! | `map_delete_duration_seconds` | histogram (exit probes armed) | `map_type`, `op` |
//! | `map_delete_count_total` | counter | |
//! | `map_delete_by_caller` | gauge (deletes/s over 10 s) | `caller` |
//! | `mdt_events_lost_total`, `mdt_events_sampled_out_total` | counter | |
//! | `go_map_capacity_slots`, `go_map_bytes`, `go_map_len` | gauge (sums over the maps watched, as last read) | `map_type` |
//! | `go_map_fatal_total` | counter (crash forensics) | `message` |
//! | `mdt_attached_probes`, `mdt_target_up`, `mdt_maps_watched` | gauge | |
//! | `mdt_target_info` | gauge (1) | `pid`, `comm`, `exe`, `container_id`, `pod_uid` |
//! | `mdt_series_limit`, `mdt_series_overflow_total`, `mdt_site_table_full_total` | gauge, counter | |
//! | `mdt_alerts_fired_total`, `mdt_alert_delivery_failures_total`, `mdt_alert_groups_dropped_total` | counter | |
//!
//! `go_map_delete_by_label_total` counts delete records, not the kernel's
//! exact counts (labels come with the records): it is exact while no record
//! is lost (`mdt_events_lost_total`) or sampled out. `go_map_delete_total`
//! stays exact whatever happens.
//!
//! The outcome counters and the histogram count only the calls made while
//! the exit probes were armed (`--latency`, or the `--latency-sample`
//! windows: by default 1 s in 100 with `--prometheus`). The histogram is the
//! kernel's own, exact: its buckets are [`LATENCY_BOUNDS_NS`], exposed by a
//! collector of its own (`Durations`) since the crate's histograms can only
//! observe values one at a time. No `mdt_latency_armed` gauge: the
//! observations do not say whether the exit probes are armed.

pub mod server;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::events::process::Process;

use super::alerts::AlertBoard;
use super::latency::LatencyDelta;
use super::sites::SiteDelta;
use crate::probes::{Histogram, LATENCY_BOUNDS_NS};
use crate::session::Observation;

/// The window of `map_delete_by_caller`.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// The registered metrics.
pub struct Metrics {
    pub registry: Registry,
    deletes: IntCounterVec,
    clears: IntCounterVec,
    removed: IntCounterVec,
    absent: IntCounterVec,
    durations: Durations,
    delete_count: IntCounter,
    by_caller: GaugeVec,
    lost: IntCounter,
    sampled_out: IntCounter,
    attached: IntGauge,
    target_up: IntGauge,
    series_limit: IntGauge,
    series_overflow: IntCounter,
    site_table_full: IntCounter,
    alerts_fired: IntCounter,
    delivery_failures: IntCounter,
    alert_groups_dropped: IntCounter,
    /// Fatal errors of the target (crash forensics), by message.
    fatal: IntCounterVec,
    /// `--metric-labels`: deletes per map type and label values.
    by_label: Option<ByLabel>,
    /// The memory of the maps watched, per map type.
    map_memory: MapMemoryGauges,
    /// Deletes per caller label, cumulative, at each observation.
    history: VecDeque<(Duration, HashMap<Arc<str>, u64>)>,
    per_caller: HashMap<Arc<str>, u64>,
}

fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

/// `map_delete_duration_seconds`: the kernel's exact latency histograms,
/// summed per (`map_type`, `op`) label pair and exposed as they are, with
/// cumulative buckets (`prometheus::Histogram` can only observe values one
/// at a time).
#[derive(Clone)]
struct Durations {
    desc: Desc,
    totals: Arc<Mutex<Totals>>,
}

/// By (map type label, clear): every call so far.
type Totals = BTreeMap<(Arc<str>, bool), Histogram>;

const DURATION_NAME: &str = "map_delete_duration_seconds";

impl Durations {
    fn new() -> Result<Self> {
        let desc = Desc::new(
            DURATION_NAME.into(),
            "Duration of Go map deletes (op=\"delete\") and clears (op=\"clear\"), from entry to return, \
             exact, per map type; only the calls made while the exit probes were armed \
             (--latency, or the --latency-sample windows: by default 1s in 100 with --prometheus)."
                .into(),
            vec!["map_type".into(), "op".into()],
            HashMap::new(),
        )?;
        Ok(Durations {
            desc,
            totals: Arc::default(),
        })
    }

    /// Adds the calls since the last observation. Entries of the kernel
    /// that share a label pair (`other`, one map type deleted through two
    /// runtime functions) add up: the sum of their increments is the sum of
    /// their cumulative totals.
    fn add(&self, latency: &[LatencyDelta]) {
        if latency.is_empty() {
            return;
        }
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        for d in latency {
            totals
                .entry((d.label_map_type.clone(), d.clear))
                .or_default()
                .add(&d.delta);
        }
    }
}

fn label_pair(name: &str, value: &str) -> proto::LabelPair {
    let mut l = proto::LabelPair::default();
    l.set_name(name.into());
    l.set_value(value.into());
    l
}

/// One histogram in the exposition's terms: cumulative buckets in seconds
/// (the encoder adds `+Inf` = the count), the sum in seconds.
fn histogram_proto(h: &Histogram) -> proto::Histogram {
    let mut cumulative = 0;
    let buckets = LATENCY_BOUNDS_NS
        .iter()
        .zip(&h.buckets)
        .map(|(&bound, &n)| {
            cumulative += n;
            let mut b = proto::Bucket::default();
            b.set_upper_bound(bound as f64 / 1e9);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    let mut p = proto::Histogram::default();
    p.set_sample_count(h.count());
    p.set_sample_sum(h.sum_ns as f64 / 1e9);
    p.set_bucket(buckets);
    p
}

impl Collector for Durations {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        let metrics = totals
            .iter()
            .map(|((map_type, clear), h)| {
                let op = if *clear { "clear" } else { "delete" };
                let mut m = proto::Metric::from_label(vec![
                    label_pair("map_type", map_type),
                    label_pair("op", op),
                ]);
                m.set_histogram(histogram_proto(h));
                m
            })
            .collect();
        let mut mf = MetricFamily::default();
        mf.set_name(DURATION_NAME.into());
        mf.set_help(self.desc.help.clone());
        mf.set_field_type(MetricType::HISTOGRAM);
        mf.set_metric(metrics);
        vec![mf]
    }
}

/// `go_map_capacity_slots`, `go_map_bytes`, `go_map_len`: sums over the
/// maps watched of each map type, as last read (a map seen gone leaves
/// them); at most `max_series` map types, the largest by bytes, the rest
/// under `map_type="other"`.
struct MapMemoryGauges {
    cap: GaugeVec,
    bytes: GaugeVec,
    len: GaugeVec,
    watched: IntGauge,
    max_series: usize,
}

impl MapMemoryGauges {
    fn new(registry: &Registry, max_series: usize) -> Result<Self> {
        let vec = |name: &str, help: &str| -> Result<GaugeVec> {
            let v = GaugeVec::new(Opts::new(name, help), &["map_type"])?;
            registry.register(Box::new(v.clone()))?;
            Ok(v)
        };
        Ok(MapMemoryGauges {
            cap: vec(
                "go_map_capacity_slots",
                "Slots of the Go maps deleted from (8 per bucket or group), per map type, as last read from the target's memory. Maps never shrink.",
            )?,
            bytes: vec(
                "go_map_bytes",
                "Bytes held by the Go maps deleted from (buckets or groups, tables, directory, header), per map type, as last read.",
            )?,
            len: vec(
                "go_map_len",
                "Entries in the Go maps deleted from, per map type, as last read.",
            )?,
            watched: gauge(
                registry,
                "mdt_maps_watched",
                "Maps whose memory mdt reads (deleted from, not seen gone).",
            )?,
            max_series,
        })
    }

    fn set(&self, maps: &[(u64, Arc<str>, crate::events::mapmem::MapSize)]) {
        let mut by_type: HashMap<&str, (u64, u64, u64)> = HashMap::new();
        for (_, ty, size) in maps {
            let e = by_type.entry(ty).or_default();
            e.0 += size.cap;
            e.1 += size.bytes;
            e.2 += size.len;
        }
        let mut rows: Vec<_> = by_type.into_iter().collect();
        rows.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(b.0)));
        let mut other: Option<(u64, u64, u64)> = None;
        for v in [&self.cap, &self.bytes, &self.len] {
            v.reset();
        }
        // Past the bound, the last series kept is "other".
        let keep = if rows.len() > self.max_series {
            self.max_series.saturating_sub(1)
        } else {
            rows.len()
        };
        for (i, (ty, sums)) in rows.into_iter().enumerate() {
            if i >= keep {
                let o = other.get_or_insert_default();
                o.0 += sums.0;
                o.1 += sums.1;
                o.2 += sums.2;
                continue;
            }
            self.put(ty, sums);
        }
        if let Some(o) = other {
            self.put("other", o);
        }
    }

    fn put(&self, ty: &str, (cap, bytes, len): (u64, u64, u64)) {
        self.cap.with_label_values(&[ty]).set(cap as f64);
        self.bytes.with_label_values(&[ty]).set(bytes as f64);
        self.len.with_label_values(&[ty]).set(len as f64);
    }
}

/// Raises a counter to `total` (counters only go up).
fn raise(c: &IntCounter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

/// `mdt_target_info`: the traced process, as its records name it, for
/// joins (`* on (instance) group_left (comm, container_id) mdt_target_info`).
pub fn register_target_info(registry: &Registry, p: &Process) -> Result<()> {
    let info = IntGaugeVec::new(
        Opts::new(
            "mdt_target_info",
            "The traced process (always 1): its pid, command, executable, and container and pod when it runs in one (empty otherwise).",
        ),
        &["pid", "comm", "exe", "container_id", "pod_uid"],
    )?;
    registry.register(Box::new(info.clone()))?;
    info.with_label_values(&[
        p.pid.to_string().as_str(),
        &p.comm,
        &p.exe,
        p.container_id.as_deref().unwrap_or(""),
        p.pod_uid.as_deref().unwrap_or(""),
    ])
    .set(1);
    Ok(())
}

impl Metrics {
    pub fn new(max_series: usize, label_keys: &[String]) -> Result<Self> {
        let registry = Registry::new();
        let by_label = ByLabel::new(&registry, label_keys, max_series)?;
        let deletes = IntCounterVec::new(
            Opts::new(
                "go_map_delete_total",
                "Go map deletes (delete(m, k) and every other way), exact, per map type and call site (file:line).",
            ),
            &["map_type", "caller"],
        )?;
        registry.register(Box::new(deletes.clone()))?;
        let clears = IntCounterVec::new(
            Opts::new(
                "go_map_clear_total",
                "Go map clears (clear(m), the range-delete idiom, reflect.Value.Clear), exact, per map type and call site.",
            ),
            &["map_type", "caller"],
        )?;
        registry.register(Box::new(clears.clone()))?;
        let by_caller = GaugeVec::new(
            Opts::new(
                "map_delete_by_caller",
                "Go map deletes per second per call site (file:line), over the last 10 seconds.",
            ),
            &["caller"],
        )?;
        registry.register(Box::new(by_caller.clone()))?;
        let removed = IntCounterVec::new(
            Opts::new(
                "go_map_delete_removed_total",
                "Go map deletes that removed an entry, exact, per map type and call site; only the deletes made while the exit probes were armed (--latency, or the --latency-sample windows: by default 1s in 100 with --prometheus).",
            ),
            &["map_type", "caller"],
        )?;
        registry.register(Box::new(removed.clone()))?;
        let absent = IntCounterVec::new(
            Opts::new(
                "go_map_delete_absent_total",
                "Go map deletes of a key that was not in the map, exact, per map type and call site; only the deletes made while the exit probes were armed (--latency, or the --latency-sample windows: by default 1s in 100 with --prometheus).",
            ),
            &["map_type", "caller"],
        )?;
        registry.register(Box::new(absent.clone()))?;
        let durations = Durations::new()?;
        registry.register(Box::new(durations.clone()))?;
        let map_memory = MapMemoryGauges::new(&registry, max_series)?;
        let fatal = IntCounterVec::new(
            Opts::new(
                "go_map_fatal_total",
                "Fatal errors the target died of (\"concurrent map writes\", ...), by message: 0 or 1 per process.",
            ),
            &["message"],
        )?;
        registry.register(Box::new(fatal.clone()))?;
        // At 0 from the start, so that Prometheus sees the step to 1
        // (increase() needs a sample before it).
        for message in crate::events::fatal::MAP_MISUSE_MESSAGES {
            fatal.with_label_values(&[message]);
        }
        let m = Metrics {
            map_memory,
            fatal,
            delete_count: counter(&registry, "map_delete_count_total", "Go map deletes, all map types and call sites, exact.")?,
            lost: counter(
                &registry,
                "mdt_events_lost_total",
                "Delete records the kernel could not deliver (ring buffer full); the counters stay exact.",
            )?,
            sampled_out: counter(
                &registry,
                "mdt_events_sampled_out_total",
                "Deletes whose detailed record --sample skipped; the counters stay exact.",
            )?,
            attached: gauge(&registry, "mdt_attached_probes", "Uprobes attached to the target's map-delete functions.")?,
            target_up: gauge(&registry, "mdt_target_up", "1 while the traced process runs, 0 once it exited.")?,
            series_limit: gauge(
                &registry,
                "mdt_series_limit",
                "The --max-series bound on (map_type, caller) label pairs.",
            )?,
            series_overflow: counter(
                &registry,
                "mdt_series_overflow_total",
                "Deletes and clears counted under caller=\"other\" because of --max-series.",
            )?,
            site_table_full: counter(
                &registry,
                "mdt_site_table_full_total",
                "Deletes and clears the kernel could not attribute to a call site (site table full); still in map_delete_count_total.",
            )?,
            alerts_fired: counter(&registry, "mdt_alerts_fired_total", "Alerts fired by --alert rules.")?,
            delivery_failures: counter(
                &registry,
                "mdt_alert_delivery_failures_total",
                "Alert deliveries (webhook, --alert-exec) that failed after their retries.",
            )?,
            alert_groups_dropped: counter(
                &registry,
                "mdt_alert_groups_dropped_total",
                "Deletes an --alert rule did not count because it tracked its maximum number of groups already.",
            )?,
            registry,
            deletes,
            clears,
            removed,
            absent,
            durations,
            by_caller,
            by_label,
            history: VecDeque::new(),
            per_caller: HashMap::new(),
        };
        m.series_limit
            .set(i64::try_from(max_series).unwrap_or(i64::MAX));
        Ok(m)
    }

    pub(super) fn update(
        &mut self,
        obs: &Observation<'_>,
        deltas: &[SiteDelta],
        latency: &[LatencyDelta],
        overflowed: u64,
        board: Option<&AlertBoard>,
    ) {
        self.sites(deltas);
        self.durations.add(latency);
        let (deletes, _) = crate::decode::totals(obs.probes, obs.hits);
        raise(&self.delete_count, deletes);
        raise(&self.lost, obs.stats.ringbuf_full);
        raise(&self.sampled_out, obs.stats.sampled_out);
        raise(&self.series_overflow, overflowed);
        raise(&self.site_table_full, obs.stats.sites_full);
        self.attached.set(obs.attached as i64);
        self.target_up.set(i64::from(obs.target_up));
        self.map_memory.set(obs.maps);
        self.map_memory.watched.set(obs.maps_watched as i64);
        if let Some(b) = board {
            raise(&self.alerts_fired, b.fired.load(Ordering::Relaxed));
            raise(&self.delivery_failures, b.failed.load(Ordering::Relaxed));
            raise(
                &self.alert_groups_dropped,
                b.groups_dropped.load(Ordering::Relaxed),
            );
        }

        // Deletes per second per caller over the last 10 s (or since start).
        let now = obs.elapsed;
        if self.history.is_empty() {
            self.history.push_back((Duration::ZERO, HashMap::new()));
        }
        while self.history.len() > 1 && now.saturating_sub(self.history[1].0) >= RATE_WINDOW {
            self.history.pop_front();
        }
        let (then, old) = &self.history[0];
        let dt = now.saturating_sub(*then).as_secs_f64();
        for (caller, &total) in &self.per_caller {
            let before = old.get(caller).copied().unwrap_or(0);
            let rate = if dt > 0.0 {
                (total - before) as f64 / dt
            } else {
                0.0
            };
            self.by_caller.with_label_values(&[&**caller]).set(rate);
        }
        self.history.push_back((now, self.per_caller.clone()));
    }

    /// The target died of a fatal error. The runtime's messages are a
    /// few constant strings: the label is bounded by them.
    pub(super) fn fatal(&mut self, f: &crate::events::fatal::Fatal) {
        self.fatal.with_label_values(&[&f.message]).inc();
    }

    /// A delete record: counted by its labels (`--metric-labels`).
    pub(super) fn event(&mut self, ev: &crate::events::Event) {
        if let Some(b) = &mut self.by_label {
            if b.count(ev) {
                self.series_overflow.inc();
            }
        }
    }

    /// The call sites' increments: calls, and the deletes' outcomes.
    fn sites(&mut self, deltas: &[SiteDelta]) {
        for SiteDelta {
            site,
            calls,
            removed,
            absent,
        } in deltas
        {
            let labels = [&*site.label_map_type, &*site.label_caller];
            if site.clear {
                self.clears.with_label_values(&labels).inc_by(*calls);
                continue;
            }
            self.deletes.with_label_values(&labels).inc_by(*calls);
            *self
                .per_caller
                .entry(site.label_caller.clone())
                .or_default() += calls;
            // Both series once a delete there was measured (so that a
            // share of absent keys reads 0, not nothing).
            if *removed > 0 || *absent > 0 {
                self.removed.with_label_values(&labels).inc_by(*removed);
                self.absent.with_label_values(&labels).inc_by(*absent);
            }
        }
    }
}

/// `go_map_delete_by_label_total`: deletes per map type and values of the
/// `--metric-labels` keys, at most `max_series` series; the deletes of
/// further ones are counted with every label `other`.
struct ByLabel {
    counter: IntCounterVec,
    keys: Vec<String>,
    series: std::collections::HashSet<u64>,
    max_series: usize,
}

impl ByLabel {
    fn new(registry: &Registry, keys: &[String], max_series: usize) -> Result<Option<Self>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let names: Vec<String> = std::iter::once("map_type".to_string())
            .chain(keys.iter().map(|k| label_name(k)))
            .collect();
        if let Some(dup) = (1..names.len()).find(|&i| names[..i].contains(&names[i])) {
            anyhow::bail!(
                "--metric-labels: {:?} is given twice (as the Prometheus label {})",
                keys[dup - 1],
                names[dup]
            );
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let counter = IntCounterVec::new(
            Opts::new(
                "go_map_delete_by_label_total",
                "Go map deletes per map type and goroutine label values (--metric-labels), counted from the delete records: exact while none is lost or sampled out.",
            ),
            &refs,
        )?;
        registry.register(Box::new(counter.clone()))?;
        Ok(Some(ByLabel {
            counter,
            keys: keys.to_vec(),
            series: Default::default(),
            max_series,
        }))
    }

    /// Counts `ev`; whether its series was one too many (counted as other).
    fn count(&mut self, ev: &crate::events::Event) -> bool {
        if ev.kind != crate::events::Role::Delete {
            return false;
        }
        let mut values: Vec<&str> = std::iter::once(&*ev.map_type)
            .chain(
                self.keys
                    .iter()
                    .map(|k| ev.labels.as_ref().and_then(|l| l.get(k)).unwrap_or("")),
            )
            .collect();
        // The series seen, by a hash of their values: a record costs no
        // copy of its strings.
        let id = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            values.hash(&mut h);
            h.finish()
        };
        let mut overflow = false;
        if !self.series.contains(&id) {
            if self.series.len() < self.max_series {
                self.series.insert(id);
            } else {
                values.fill("other");
                overflow = true;
            }
        }
        self.counter.with_label_values(&values).inc();
        overflow
    }
}

/// The Prometheus label of a goroutine label key: `label_` and the key with
/// each character outside `[A-Za-z0-9_]` as `_`.
fn label_name(key: &str) -> String {
    let clean: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("label_{clean}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::sites::Site;
    use crate::probes::LATENCY_BUCKETS;
    use prometheus::{Encoder, TextEncoder};

    fn text(m: &Metrics) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The lines of `text` that start with `prefix`.
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    fn histogram(durations_ns: &[u64]) -> Histogram {
        let mut h = Histogram::default();
        for &ns in durations_ns {
            h.record(ns);
        }
        h
    }

    fn latency(map_type: &str, label: &str, clear: bool, delta: Histogram) -> LatencyDelta {
        LatencyDelta {
            map_type: map_type.into(),
            label_map_type: label.into(),
            clear,
            delta,
        }
    }

    fn site(map_type: &str, caller: &str, clear: bool) -> Site {
        Site {
            clear,
            map_type: map_type.into(),
            caller: caller.into(),
            caller_func: "main.f".into(),
            caller_path: format!("/src/{caller}").into(),
            label_map_type: map_type.into(),
            label_caller: caller.into(),
            count: 0,
            removed: 0,
            absent: 0,
        }
    }

    #[test]
    fn no_histogram_without_measured_calls() {
        let m = Metrics::new(10, &[]).unwrap();
        m.durations.add(&[]);
        let t = text(&m);
        assert!(!t.contains("map_delete_duration_seconds"), "{t}");
        assert!(!t.contains("go_map_delete_removed_total"), "{t}");
    }

    #[test]
    fn histogram_buckets_are_cumulative_in_seconds() {
        let m = Metrics::new(10, &[]).unwrap();
        // 150 ns, 150 ns, 3 µs; then 2 s (past the last bound).
        m.durations.add(&[latency(
            "map[int64]int",
            "map[int64]int",
            false,
            histogram(&[150, 150, 3_000]),
        )]);
        m.durations.add(&[
            latency(
                "map[int64]int",
                "map[int64]int",
                false,
                histogram(&[2_000_000_000]),
            ),
            latency(
                "map[int64]int",
                "map[int64]int",
                true,
                histogram(&[250_000]),
            ),
        ]);
        let t = text(&m);
        assert!(
            t.contains("# TYPE map_delete_duration_seconds histogram\n"),
            "{t}"
        );
        assert!(
            t.contains("# HELP map_delete_duration_seconds Duration of Go map deletes"),
            "{t}"
        );
        let del = lines(
            &t,
            "map_delete_duration_seconds_bucket{map_type=\"map[int64]int\",op=\"delete\"",
        );
        let want: Vec<String> = [
            ("0.0000001", 0),
            ("0.0000002", 2),
            ("0.0000005", 2),
            ("0.000001", 2),
            ("0.000002", 2),
            ("0.000005", 3),
            ("0.00001", 3),
            ("0.00002", 3),
            ("0.00005", 3),
            ("0.0001", 3),
            ("0.0002", 3),
            ("0.0005", 3),
            ("0.001", 3),
            ("0.002", 3),
            ("0.005", 3),
            ("0.01", 3),
            ("0.02", 3),
            ("0.05", 3),
            ("0.1", 3),
            ("0.2", 3),
            ("0.5", 3),
            ("1", 3),
            ("+Inf", 4),
        ]
        .iter()
        .map(|(le, n)| {
            format!(
                "map_delete_duration_seconds_bucket{{map_type=\"map[int64]int\",op=\"delete\",le=\"{le}\"}} {n}"
            )
        })
        .collect();
        assert_eq!(del, want, "{t}");
        assert_eq!(want.len(), LATENCY_BUCKETS);
        assert_eq!(
            lines(&t, "map_delete_duration_seconds_sum{map_type=\"map[int64]int\",op=\"delete\"}"),
            ["map_delete_duration_seconds_sum{map_type=\"map[int64]int\",op=\"delete\"} 2.0000033"]
        );
        assert_eq!(
            lines(
                &t,
                "map_delete_duration_seconds_count{map_type=\"map[int64]int\",op=\"delete\"}"
            ),
            ["map_delete_duration_seconds_count{map_type=\"map[int64]int\",op=\"delete\"} 4"]
        );
        // The clear: its own series, 250 µs in the 500 µs bucket.
        let clear = lines(
            &t,
            "map_delete_duration_seconds_bucket{map_type=\"map[int64]int\",op=\"clear\"",
        );
        assert_eq!(clear.len(), LATENCY_BUCKETS);
        assert!(clear[10].ends_with("le=\"0.0002\"} 0"), "{clear:?}");
        assert!(clear[11].ends_with("le=\"0.0005\"} 1"), "{clear:?}");
        assert!(clear[22].ends_with("le=\"+Inf\"} 1"), "{clear:?}");
        assert!(
            t.contains("map_delete_duration_seconds_sum{map_type=\"map[int64]int\",op=\"clear\"} 0.00025\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "map_delete_duration_seconds_count{map_type=\"map[int64]int\",op=\"clear\"} 1\n"
            ),
            "{t}"
        );
    }

    #[test]
    fn histograms_sharing_a_label_add_up() {
        let m = Metrics::new(10, &[]).unwrap();
        m.durations.add(&[
            latency("main.A", "other", false, histogram(&[100, 1_000])),
            latency("main.B", "other", false, histogram(&[1_000])),
            latency("main.C", "main.C", false, histogram(&[50])),
        ]);
        m.durations
            .add(&[latency("main.A", "other", false, histogram(&[5_000]))]);
        let t = text(&m);
        let count = |map_type: &str| {
            lines(
                &t,
                &format!(
                    "map_delete_duration_seconds_count{{map_type=\"{map_type}\",op=\"delete\"}}"
                ),
            )
        };
        assert_eq!(
            count("other"),
            ["map_delete_duration_seconds_count{map_type=\"other\",op=\"delete\"} 4"]
        );
        assert_eq!(
            count("main.C"),
            ["map_delete_duration_seconds_count{map_type=\"main.C\",op=\"delete\"} 1"]
        );
        assert!(
            t.contains("map_delete_duration_seconds_bucket{map_type=\"other\",op=\"delete\",le=\"0.000001\"} 3\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "map_delete_duration_seconds_sum{map_type=\"other\",op=\"delete\"} 0.0000071\n"
            ),
            "{t}"
        );
        assert!(!t.contains(",op=\"clear\""), "{t}");
    }

    #[test]
    fn outcomes_per_site() {
        let mut m = Metrics::new(10, &[]).unwrap();
        let del = |removed, absent| SiteDelta {
            site: site("map[int64]int", "main.go:80", false),
            calls: removed + absent + 1,
            removed,
            absent,
        };
        m.sites(&[
            del(3, 2),
            SiteDelta {
                site: site("map[int64]int", "main.go:60", true),
                calls: 1,
                removed: 0,
                absent: 0,
            },
            // Calls outside the windows: no outcome series yet.
            SiteDelta {
                site: site("map[string]int", "main.go:90", false),
                calls: 7,
                removed: 0,
                absent: 0,
            },
        ]);
        m.sites(&[del(4, 0)]);
        let t = text(&m);
        assert_eq!(
            lines(&t, "go_map_delete_removed_total{"),
            ["go_map_delete_removed_total{caller=\"main.go:80\",map_type=\"map[int64]int\"} 7"]
        );
        assert_eq!(
            lines(&t, "go_map_delete_absent_total{"),
            ["go_map_delete_absent_total{caller=\"main.go:80\",map_type=\"map[int64]int\"} 2"]
        );
        assert!(
            t.contains(
                "go_map_delete_total{caller=\"main.go:80\",map_type=\"map[int64]int\"} 11\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("go_map_clear_total{caller=\"main.go:60\",map_type=\"map[int64]int\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "# HELP go_map_delete_absent_total Go map deletes of a key that was not in the map"
            ),
            "{t}"
        );
    }

    #[test]
    fn deletes_by_label_are_bounded_series() {
        use crate::events::{testing, KeyValue, Labels};
        let mut m = Metrics::new(2, &["tenant".into(), "trace-id".into()]).unwrap();
        let with = |tenant: Option<&str>| {
            let mut ev = testing::delete(1, KeyValue::Int(1), &[]);
            ev.labels = tenant.map(|t| {
                Arc::new(Labels {
                    pairs: vec![("tenant".into(), t.into())],
                    truncated: false,
                })
            });
            ev
        };
        for t in [Some("t1"), Some("t1"), None, Some("t2"), Some("t3")] {
            m.event(&with(t));
        }
        let text = text(&m);
        let got = lines(&text, "go_map_delete_by_label_total{");
        assert_eq!(
            got,
            [
                r#"go_map_delete_by_label_total{label_tenant="",label_trace_id="",map_type="map[int64]int"} 1"#,
                r#"go_map_delete_by_label_total{label_tenant="other",label_trace_id="other",map_type="other"} 2"#,
                r#"go_map_delete_by_label_total{label_tenant="t1",label_trace_id="",map_type="map[int64]int"} 2"#,
            ]
        );
        assert!(text.contains("mdt_series_overflow_total 2"), "{text}");
        assert!(Metrics::new(2, &["a-b".into(), "a_b".into()]).is_err());
    }
}
