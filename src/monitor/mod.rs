//! Monitoring while tracing (`mdt trace --prometheus`, `--alert`): the
//! [`Monitor`] is the session's [`Observer`]. Every observation (500 ms) it
//! names the kernel's exact per-call-site counts ([`sites`]) and turns them
//! into metric increments ([`metrics`]) and alert window counts
//! ([`alerts`]); delete records feed the alert rules that need them (by map
//! address or key).

pub mod alerts;
pub mod latency;
pub mod metrics;
pub mod sites;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use self::alerts::deliver::{Delivery, Exec, Webhook, WebhookFormat};
use self::alerts::eval::Evaluator;
use self::alerts::{file, AlertBoard, Rule};
use self::latency::Latencies;
use self::metrics::server::MetricsServer;
use self::metrics::Metrics;
use self::sites::Sites;
use crate::events::process::Process;
use crate::events::Event;
use crate::session::{Observation, Observer};

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
    latencies: Latencies,
    metrics: Option<Metrics>,
    alerts: Option<Alerting>,
}

impl Observer for Monitor {
    fn event(&mut self, ev: &Event) {
        if let Some(a) = &mut self.alerts {
            a.evaluator.event(ev, Instant::now());
        }
        if let Some(m) = &mut self.metrics {
            m.event(ev);
        }
    }

    fn fatal(&mut self, f: &crate::events::fatal::Fatal) {
        if let Some(m) = &mut self.metrics {
            m.fatal(f);
        }
        // Fired at the next observation; the last one waits for delivery.
        if let Some(a) = &mut self.alerts {
            a.evaluator.fatal(f);
        }
    }

    fn observe(&mut self, obs: &mut Observation<'_>) {
        let deltas = self.sites.update(obs);
        let latency = self.latencies.update(obs);
        let board = self.alerts.as_ref().map(|a| a.board.clone());
        if let Some(a) = &mut self.alerts {
            let now = Instant::now();
            a.evaluator.set_lost(obs.stats.ringbuf_full > 0);
            a.evaluator.sites(&deltas, now);
            a.evaluator.latency(&latency, now);
            a.evaluator.maps(obs.maps, now);
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
            m.update(
                obs,
                &deltas,
                &latency,
                self.sites.overflowed,
                board.as_deref(),
            );
        }
    }
}

/// What `mdt trace` asked for, checked before tracing starts.
pub struct MonitorArgs {
    pub prometheus: Option<std::net::SocketAddr>,
    pub max_series: usize,
    /// `--metric-labels`: goroutine label keys to count deletes by.
    pub metric_labels: Vec<String>,
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
            crate::monitor::alerts::deliver::parse_exec(cmd)
                .map_err(|e| anyhow::anyhow!("--alert-exec: {e}"))?;
        }
        if !args.metric_labels.is_empty() && args.prometheus.is_none() {
            bail!("--metric-labels adds a metric: give --prometheus ADDR too");
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

    /// Alert rules or label metrics read delete records (metrics alone
    /// need none: the kernel counts every call site).
    pub fn needs_records(&self) -> bool {
        self.board.is_some() || !self.args.metric_labels.is_empty()
    }

    /// `--metric-labels`, or a rule on a `label:KEY` dimension.
    pub fn needs_labels(&self) -> bool {
        !self.label_keys().is_empty()
    }

    /// Some rule filters on a label's value (`label:KEY="v"`).
    pub fn filters_labels(&self) -> bool {
        self.rules.iter().any(|r| {
            r.filters
                .iter()
                .any(|(d, _)| matches!(d, alerts::Dim::Label(_)))
        })
    }

    /// The goroutine label keys `--metric-labels` and the rules read.
    pub fn label_keys(&self) -> Vec<String> {
        use alerts::Dim;
        let mut keys = self.args.metric_labels.clone();
        for r in &self.rules {
            for d in std::iter::once(&r.group).chain(r.filters.iter().map(|(d, _)| d)) {
                if let Dim::Label(k) = d {
                    keys.push(k.to_string());
                }
            }
        }
        keys
    }

    /// Some rule fires on the target's fatal error (`fatal(...)`).
    pub fn has_fatal_rules(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.measure == alerts::rule::Measure::Fatal)
    }

    /// Some rule reads the maps' memory (`fill()`, `bytes()`, ...).
    pub fn needs_map_memory(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.measure, alerts::rule::Measure::Memory(_)))
    }

    /// Some rule reads what the exit probes measure (`absent()`, `pNN()`).
    pub fn needs_latency(&self) -> bool {
        self.rules.iter().any(|r| {
            matches!(
                r.measure,
                alerts::rule::Measure::Absent | alerts::rule::Measure::Quantile(_)
            )
        })
    }

    /// The alerts fired while tracing (for the JSON stream and the TUI).
    pub fn board(&self) -> Option<Arc<AlertBoard>> {
        self.board.clone()
    }

    /// Where metrics are served, once started.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().map(MetricsServer::addr)
    }

    /// Starts serving metrics and delivering alerts; returns the observer
    /// to give the session. `print`: alert lines and delivery failures on
    /// stderr (not while the TUI owns the terminal).
    pub fn start(&mut self, target: &Process, print: bool) -> Result<Monitor> {
        let pid = target.pid as i32;
        let a = &self.args;
        let metrics = match self.listener.take() {
            Some(listener) => {
                let m = Metrics::new(a.max_series, &a.metric_labels)?;
                metrics::register_target_info(&m.registry, target)?;
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
                        argv: crate::monitor::alerts::deliver::parse_exec(cmd)
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
            latencies: Latencies::default(),
            metrics,
            alerts,
        })
    }
}
