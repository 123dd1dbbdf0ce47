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
//! | `map_delete_count_total` | counter | |
//! | `map_delete_by_caller` | gauge (deletes/s over 10 s) | `caller` |
//! | `mdt_events_lost_total`, `mdt_events_sampled_out_total` | counter | |
//! | `mdt_attached_probes`, `mdt_target_up` | gauge | |
//! | `mdt_series_limit`, `mdt_series_overflow_total`, `mdt_site_table_full_total` | gauge, counter | |
//! | `mdt_alerts_fired_total`, `mdt_alert_delivery_failures_total`, `mdt_alert_groups_dropped_total` | counter | |
//!
//! There is no `map_delete_duration_seconds`: delete latency is not
//! measured yet, and a histogram of nothing would mislead.

pub mod server;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::alerts::AlertBoard;
use super::sites::Site;
use crate::session::Observation;

/// The window of `map_delete_by_caller`.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// The registered metrics.
pub struct Metrics {
    pub registry: Registry,
    deletes: IntCounterVec,
    clears: IntCounterVec,
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

/// Raises a counter to `total` (counters only go up).
fn raise(c: &IntCounter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

impl Metrics {
    pub fn new(max_series: usize) -> Result<Self> {
        let registry = Registry::new();
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
        let m = Metrics {
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
            by_caller,
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
        deltas: &[(Site, u64)],
        overflowed: u64,
        board: Option<&AlertBoard>,
    ) {
        for (site, delta) in deltas {
            let labels = [&*site.label_map_type, &*site.label_caller];
            if site.clear {
                self.clears.with_label_values(&labels).inc_by(*delta);
            } else {
                self.deletes.with_label_values(&labels).inc_by(*delta);
                *self
                    .per_caller
                    .entry(site.label_caller.clone())
                    .or_default() += delta;
            }
        }
        let (deletes, _) = crate::decode::totals(obs.probes, obs.hits);
        raise(&self.delete_count, deletes);
        raise(&self.lost, obs.stats.ringbuf_full);
        raise(&self.sampled_out, obs.stats.sampled_out);
        raise(&self.series_overflow, overflowed);
        raise(&self.site_table_full, obs.stats.sites_full);
        self.attached.set(obs.attached as i64);
        self.target_up.set(i64::from(obs.target_up));
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
}
