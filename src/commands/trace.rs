//! `mdt trace`: stream every map delete of the target to a sink.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::bounded::Limits;
use crate::cli::{TargetArgs, TraceArgs};
use crate::monitor::{MonitorArgs, Monitoring};
use crate::output::quiet::QuietSink;
use crate::output::{json::JsonSink, open_output, text::TextSink, Sink};
use crate::session::{Latency, Mode, Options, Session, Signals, TargetSpec};
use crate::tui;

pub fn run(args: &TraceArgs) -> Result<ExitCode> {
    let signals = Signals::install()?;
    let (spec, mut options) = session_args(&args.target);
    options.limits = Limits {
        buffer_bytes: args.buffer_size,
        stacks: args.max_stacks as usize,
        rows: args.max_rows as usize,
    };
    let launched = matches!(spec, TargetSpec::Launch(_));
    let tui = use_tui(args);
    // Metrics and alerts: checked (rules read, port bound) before tracing.
    let mut monitoring = monitoring(args)?;
    options.mode = match &monitoring {
        // Metrics alone need no records: the kernel counts every call site.
        Some(m) if args.quiet && !m.needs_records() && args.target.label_filter.is_none() => {
            Mode::Sites
        }
        Some(_) => Mode::Records { sites: true },
        None => Mode::Records { sites: false },
    };
    if args.target.no_labels && monitoring.as_ref().is_some_and(Monitoring::needs_labels) {
        bail!("--no-labels: --metric-labels and label:KEY alert rules need the goroutine labels (drop --no-labels)");
    }
    if args.target.redact_labels && monitoring.as_ref().is_some_and(Monitoring::filters_labels) {
        bail!("--redact-labels: label:KEY=\"VALUE\" alert filters would compare hashed values; filter with --label-filter KEY=REGEX instead");
    }
    if let (Some(kept), Some(m)) = (&options.labels.keys, &monitoring) {
        if let Some(k) = m.label_keys().iter().find(|k| !kept.contains(k)) {
            bail!("--labels keeps only {}: --metric-labels and label:KEY rules can only use those (add {k})", kept.join(","));
        }
    }
    if args.linger.is_some() && args.prometheus.is_none() {
        bail!("--linger keeps serving the metrics after the target exited: give --prometheus ADDR too");
    }
    if args.target.no_forensics && monitoring.as_ref().is_some_and(Monitoring::has_fatal_rules) {
        bail!(
            "--no-forensics: fatal(...) alert rules fire on the fatal record (drop --no-forensics)"
        );
    }
    if args.no_latency && monitoring.as_ref().is_some_and(Monitoring::needs_latency) {
        bail!("--no-latency: the absent() and pNN() alert rules need the exit probes (drop --no-latency, or use --latency-sample)");
    }
    let memory_rules = monitoring
        .as_ref()
        .is_some_and(Monitoring::needs_map_memory);
    if args.target.no_map_memory && memory_rules {
        bail!("--no-map-memory: fill(), bytes(), cap(), len() and tombstones() alert rules read the maps' memory (drop --no-map-memory)");
    }
    options.latency = latency(args, monitoring.is_some() || tui);
    let board = monitoring.as_ref().and_then(Monitoring::board);
    let mut sink: Option<Box<dyn Sink>> = if tui {
        None
    } else if args.quiet {
        Some(Box::new(QuietSink))
    } else if let (true, Some(board)) = (args.json, &board) {
        let out = open_output(args.output.as_deref())?;
        Some(Box::new(
            JsonSink::new(out, options.limits.stacks).with_alerts(board.clone()),
        ))
    } else {
        let out = open_output(args.output.as_deref())?;
        Some(if args.json {
            Box::new(JsonSink::new(out, options.limits.stacks))
        } else {
            Box::new(TextSink::new(out))
        })
    };
    // Launch mode under the UI: the program must not write over the screen.
    let redirected = (tui && launched)
        .then(tui::launch::ChildOutput::redirect)
        .transpose()?;
    let session = Session::start(spec, options);
    let child_output = redirected.map(tui::launch::Redirected::restore);
    let mut session = session?;
    let pid = session.pid();
    if let Some(m) = &mut monitoring {
        let observer = m.start(session.identity(), !tui)?;
        session.set_observer(Box::new(observer));
    }
    announce(&session);
    let labels_used =
        labels_asked(&args.target) || monitoring.as_ref().is_some_and(Monitoring::needs_labels);
    warn_if_no_labels(&session, labels_used);
    if session.binary.map_memory.is_none() && !args.target.no_map_memory {
        eprintln!("mdt: warning: mdt does not know where {} keeps its maps' sizes (no DWARF, and a Go release it has not verified): no map memory{}", session.binary.path.display(), if memory_rules { ", and the memory alert rules will not fire" } else { "" });
    }
    if let Some(addr) = monitoring.as_ref().and_then(Monitoring::metrics_addr) {
        eprintln!("mdt: metrics at http://{addr}/metrics");
    }
    let mut summary = match sink.as_mut() {
        Some(sink) => session.run(sink.as_mut(), &signals)?,
        None => tui::run(
            session,
            &signals,
            args.target.sample,
            child_output,
            board.clone(),
        )?,
    };
    if let Some(board) = &board {
        let failed = board.failed.load(std::sync::atomic::Ordering::Relaxed);
        if failed > 0 {
            if tui {
                // Not printed while the UI owned the terminal.
                for line in board.failures() {
                    eprintln!("mdt: {line}");
                }
            }
            eprintln!("mdt: {failed} alert deliveries failed");
        }
    }
    if let (Some(linger), Some(addr)) = (
        args.linger,
        monitoring.as_ref().and_then(Monitoring::metrics_addr),
    ) {
        // The terminal UI stays up after the target died until it is quit.
        if summary.target_exit.is_some() && !tui {
            linger_serving(addr, linger, &signals);
        }
    }
    if launched {
        Session::wait_child(&mut summary, pid);
        if let Some(status) = summary.exit_status {
            return Ok(ExitCode::from(status.shell_code().clamp(0, 255) as u8));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The target has gone: its last metrics stay served (the server runs on
/// its own thread) until `linger` has passed or a signal comes.
fn linger_serving(addr: std::net::SocketAddr, linger: Duration, signals: &Signals) {
    eprintln!(
        "mdt: the target has exited; serving its last metrics at http://{addr}/metrics for {} (Ctrl-C ends it)",
        humantime::format_duration(linger)
    );
    let until = std::time::Instant::now() + linger;
    let signalled = signals.count();
    while std::time::Instant::now() < until && signals.count() == signalled {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The terminal UI: on a terminal, unless another output was asked for.
fn use_tui(args: &TraceArgs) -> bool {
    !args.json
        && args.output.is_none()
        && !args.no_tui
        && !args.quiet
        && std::io::stdout().is_terminal()
}

/// When the exit points are armed: `--latency`, `--latency-sample`, or by
/// default 1% of the time for metrics, alerts and the terminal UI, which
/// summarize (docs/performance.md); never by default for a record stream.
fn latency(args: &TraceArgs, summarized: bool) -> Latency {
    match (args.latency, args.latency_sample) {
        _ if args.no_latency => Latency::Off,
        (true, _) | (_, Some(1.0)) => Latency::Always,
        (_, Some(fraction)) => Latency::Windows { fraction },
        _ if summarized => Latency::Windows {
            fraction: DEFAULT_LATENCY_SAMPLE,
        },
        _ => Latency::Off,
    }
}

/// The share of time the exit points are armed for metrics and alerts.
const DEFAULT_LATENCY_SAMPLE: f64 = 0.01;

/// `--prometheus`, `--alert`, ...: None when none of them is given.
fn monitoring(args: &TraceArgs) -> Result<Option<Monitoring>> {
    Monitoring::prepare(MonitorArgs {
        prometheus: args.prometheus,
        max_series: args.max_series as usize,
        metric_labels: args.metric_labels.clone(),
        rules: args.alert.clone(),
        rules_file: args.alerts_file.clone(),
        webhook: args.webhook.clone(),
        webhook_format: args.webhook_format,
        webhook_timeout: args.webhook_timeout,
        alert_exec: args.alert_exec.clone(),
        cooldown: args.alert_cooldown,
        sample_rate: args.target.sample,
    })
}

pub fn session_args(t: &TargetArgs) -> (TargetSpec, Options) {
    let spec = match t.pid {
        Some(pid) => TargetSpec::Pid(pid),
        None => TargetSpec::Launch(t.command.clone()),
    };
    let options = Options {
        sample_rate: t.sample,
        key_bytes: t.key_bytes,
        stack_depth: t.stack_depth,
        redact_keys: t.redact_keys,
        map_type: t.map_type.clone(),
        func: t.func.clone(),
        duration: t.duration,
        mode: Mode::Records { sites: false },
        limits: Limits::default(),
        latency: crate::session::Latency::Off,
        labels: crate::events::LabelOptions {
            keys: t.label_keys.clone(),
            redact: t.redact_labels,
            filter: t.label_filter.clone(),
        },
        label_bytes: t.label_bytes,
        read_labels: !t.no_labels,
        map_refresh: (!t.no_map_memory).then_some(t.map_refresh),
        fatal_window: (!t.no_forensics).then_some(t.fatal_window),
        fatal_hold: !t.no_hold,
    };
    (spec, options)
}

/// The label flags that only mean something when labels can be read.
pub fn labels_asked(t: &TargetArgs) -> bool {
    t.label_keys.is_some() || t.label_filter.is_some() || t.redact_labels
}

/// One line when labels were asked for but the target cannot have any (it
/// does not link runtime/pprof) or mdt cannot find them.
pub fn warn_if_no_labels(session: &Session, asked: bool) {
    if asked && session.binary.labels.is_none() {
        eprintln!("mdt: warning: {} cannot have goroutine labels (runtime/pprof is not linked) or mdt does not know where this Go release keeps them: no delete will have labels", session.binary.path.display());
    }
}

/// One line on stderr once every probe is armed: tells a person (and a
/// script waiting to start its workload) that tracing has begun.
pub fn announce(session: &Session) {
    eprintln!(
        "mdt: tracing pid {} ({}, {} probes attached in {} ms)",
        session.pid(),
        session.binary.go_version,
        session.attached_functions().len(),
        session.attach_time.as_millis()
    );
}
