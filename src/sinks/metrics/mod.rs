//! Prometheus metrics and alerts while tracing (`mdt trace --prometheus`,
//! `--alert`): the [`Monitor`] is the session's [`Observer`]. Every
//! observation (500 ms) it turns the kernel's exact per-call-site counts
//! into counter increments and alert window counts; delete records feed
//! the alert rules that need them (by map address or key).
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
pub mod sites;

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use self::server::MetricsServer;
use self::sites::{Site, Sites};
use crate::events::Event;
use crate::session::{Observation, Observer};
use crate::sinks::alerts::deliver::{Delivery, Exec, Webhook, WebhookFormat};
use crate::sinks::alerts::eval::Evaluator;
use crate::sinks::alerts::{file, AlertBoard, Rule};

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

    fn update(
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
        let deletes: u64 = obs
            .probes
            .iter()
            .zip(obs.hits)
            .filter(|(p, _)| !p.kind.is_clear())
            .map(|(_, h)| h)
            .sum();
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

/// Alert evaluation and delivery.
pub struct Alerting {
    evaluator: Evaluator,
    delivery: Option<Delivery>,
    board: Arc<AlertBoard>,
    /// Alert lines on stderr (not with the TUI).
    print: bool,
    exit_wait: Duration,
}

/// The session's observer: metrics and alerts.
pub struct Monitor {
    sites: Sites,
    metrics: Option<Metrics>,
    alerts: Option<Alerting>,
}

impl Observer for Monitor {
    fn event(&mut self, ev: &Event) {
        if let Some(a) = &mut self.alerts {
            a.evaluator.event(ev, Instant::now());
        }
    }

    fn observe(&mut self, obs: &mut Observation<'_>) {
        let deltas = self.sites.update(obs);
        let board = self.alerts.as_ref().map(|a| a.board.clone());
        if let Some(a) = &mut self.alerts {
            let now = Instant::now();
            a.evaluator.set_lost(obs.stats.ringbuf_full > 0);
            a.evaluator.sites(&deltas, now);
            for n in a.evaluator.evaluate(now) {
                if a.print {
                    eprintln!("mdt: {}", n.line());
                }
                if let Some(d) = &a.delivery {
                    d.send(n);
                }
            }
            if obs.last {
                if let Some(d) = &mut a.delivery {
                    d.finish(a.exit_wait);
                }
            }
        }
        if let Some(m) = &mut self.metrics {
            m.update(obs, &deltas, self.sites.overflowed, board.as_deref());
        }
    }
}

/// What `mdt trace` asked for, checked before tracing starts.
pub struct MonitorArgs {
    pub prometheus: Option<std::net::SocketAddr>,
    pub max_series: usize,
    pub rules: Vec<Rule>,
    pub rules_file: Option<PathBuf>,
    pub webhook: Option<String>,
    pub webhook_format: WebhookFormat,
    pub webhook_timeout: Duration,
    pub alert_exec: Option<String>,
    pub cooldown: Duration,
    pub sample_rate: f64,
}

/// Monitoring set up before the session starts: rules read, the port
/// bound (so mistakes fail before any probe is attached).
pub struct Monitoring {
    args: MonitorArgs,
    rules: Vec<Rule>,
    listener: Option<TcpListener>,
    board: Option<Arc<AlertBoard>>,
    server: Option<MetricsServer>,
}

impl Monitoring {
    /// `None` when neither metrics nor alerts are asked for.
    pub fn prepare(args: MonitorArgs) -> Result<Option<Self>> {
        let mut rules = args.rules.clone();
        if let Some(path) = &args.rules_file {
            rules.extend(file::load(path).map_err(anyhow::Error::msg)?);
        }
        if rules.is_empty() && (args.webhook.is_some() || args.alert_exec.is_some()) {
            bail!("--webhook and --alert-exec deliver alerts: give rules with --alert RULE or --alerts FILE");
        }
        if let Some(cmd) = &args.alert_exec {
            crate::sinks::alerts::deliver::parse_exec(cmd)
                .map_err(|e| anyhow::anyhow!("--alert-exec: {e}"))?;
        }
        if rules.is_empty() && args.prometheus.is_none() {
            return Ok(None);
        }
        let listener = args.prometheus.map(MetricsServer::bind).transpose()?;
        let board = (!rules.is_empty()).then(AlertBoard::new);
        Ok(Some(Monitoring {
            args,
            rules,
            listener,
            board,
            server: None,
        }))
    }

    /// The alerts fired while tracing (for the JSON stream and the TUI).
    pub fn board(&self) -> Option<Arc<AlertBoard>> {
        self.board.clone()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Where metrics are served, once started.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().map(MetricsServer::addr)
    }

    /// Starts serving metrics and delivering alerts; returns the observer
    /// to give the session. `print`: alert lines and delivery failures on
    /// stderr (not while the TUI owns the terminal).
    pub fn start(&mut self, pid: i32, print: bool) -> Result<Monitor> {
        let a = &self.args;
        let metrics = match self.listener.take() {
            Some(listener) => {
                let m = Metrics::new(a.max_series)?;
                self.server = Some(MetricsServer::start(listener, m.registry.clone())?);
                Some(m)
            }
            None => None,
        };
        let alerts = match &self.board {
            Some(board) => {
                let webhook = a.webhook.clone().map(|url| Webhook {
                    url,
                    format: a.webhook_format,
                    timeout: a.webhook_timeout,
                    retries: 2,
                });
                let exec = match &a.alert_exec {
                    Some(cmd) => Some(Exec {
                        argv: crate::sinks::alerts::deliver::parse_exec(cmd)
                            .map_err(anyhow::Error::msg)?,
                        timeout: Duration::from_secs(10),
                    }),
                    None => None,
                };
                let exit_wait = match (&webhook, &exec) {
                    (None, None) => Duration::ZERO,
                    (Some(w), _) => w.timeout.min(Duration::from_secs(10)) + Duration::from_secs(1),
                    (None, Some(_)) => Duration::from_secs(11),
                };
                let delivery = if webhook.is_some() || exec.is_some() {
                    Some(Delivery::start(webhook, exec, board.clone(), print).context("alerts")?)
                } else {
                    None
                };
                let evaluator = Evaluator::new(
                    self.rules.clone(),
                    a.cooldown,
                    a.sample_rate,
                    board.clone(),
                    pid,
                );
                if a.sample_rate < 1.0 && print {
                    for r in evaluator.rules().filter(|r| !r.exact()) {
                        eprintln!(
                            "mdt: alert '{}' counts delete records: with --sample {} its counts are estimates (records × {:.0}); use --sample 1 for exact counts",
                            r.text,
                            a.sample_rate,
                            1.0 / a.sample_rate
                        );
                    }
                }
                Some(Alerting {
                    evaluator,
                    delivery,
                    board: board.clone(),
                    print,
                    exit_wait,
                })
            }
            None => None,
        };
        Ok(Monitor {
            sites: Sites::new(a.max_series),
            metrics,
            alerts,
        })
    }
}

/// `--quiet`: no records; the summary as one line on stderr.
pub struct QuietSink {
    records: u64,
    /// The kernel made no records at all (metrics only): nothing was
    /// "sampled out" by choice of a rate.
    counting_only: bool,
}

impl QuietSink {
    pub fn new(counting_only: bool) -> Self {
        QuietSink {
            records: 0,
            counting_only,
        }
    }
}

impl crate::sinks::Sink for QuietSink {
    fn event(&mut self, _ev: &Event) -> std::io::Result<()> {
        self.records += 1;
        Ok(())
    }

    fn lost(&mut self, _count: u64, _total: u64) -> std::io::Result<()> {
        Ok(())
    }

    fn summary(&mut self, s: &crate::sinks::Summary) -> std::io::Result<()> {
        let records = if self.counting_only {
            "counted in the kernel, no records".to_string()
        } else {
            format!("{} sampled out", s.sampled_out)
        };
        eprintln!(
            "mdt: {} deletes, {} clears in {:.1}s (exact); {records}, {} lost{}",
            s.deletes,
            s.clears,
            s.duration.as_secs_f64(),
            s.lost,
            s.target_exit
                .as_ref()
                .map_or(String::new(), |t| format!("; target: {t}"))
        );
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
