//! The command line. Kept free of logic so that the man page and the shell
//! completions (generated from [`command`]) always match what `mdt` accepts.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand};
use regex::Regex;

/// Trace who deletes what from which Go map, how often, and from where.
///
/// mdt attaches eBPF uprobes to the map-delete functions of the Go runtime in a
/// running process, without restarting it, and reports every delete: the
/// goroutine, the map and its type, the key, and the full call stack.
#[derive(Debug, Parser)]
#[command(name = "mdt", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what mdt reads from a Go binary: version, map functions, probe offsets.
    ///
    /// Nothing is run and no privilege is needed for a file. The binary may be
    /// stripped, position-independent, cgo, race-enabled or lack section headers.
    Inspect(InspectArgs),

    /// Trace map deletes in a running process, or in a program mdt starts.
    ///
    /// On a terminal, opens an interactive UI: the callers that delete, the
    /// maps, the newest events, the full stack of the selected row (press ?
    /// for the keys, q to quit). With --json, -o, --no-tui or a non-terminal
    /// standard output, prints one line per delete instead (or one JSON object
    /// per line; see docs/json.md). Tracing runs until the target exits,
    /// --duration passes, or Ctrl-C/SIGTERM; then a summary with the exact
    /// totals. Needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE).
    #[command(group(ArgGroup::new("target").required(true).args(["pid", "command"])))]
    Trace(TraceArgs),

    /// Draw the code paths that lead to map deletes: flame graph, folded stacks or pprof.
    ///
    /// Counts stacks in the kernel (user space does nothing per delete) until
    /// the target exits, --duration passes, or Ctrl-C; then writes each -o
    /// file. Counts are exact, also with --sample (then scaled, and the title
    /// says so). --from turns a saved folded file or `mdt trace --json`
    /// stream into any format without a live process.
    #[command(group(ArgGroup::new("source").required(true).args(["pid", "command", "from"])))]
    Flame(FlameArgs),
}

#[derive(Debug, Args)]
pub struct FlameArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Output file; repeat for several (format from the extension: .svg,
    /// .folded/.txt, .pb.gz/.pprof). Default: deletes.svg.
    #[arg(short, long = "output", value_name = "FILE")]
    pub outputs: Vec<PathBuf>,

    /// Output format, whatever the file names say.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<crate::output::flame::Format>,

    /// Read a saved folded file or `mdt trace --json` output instead of tracing.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pid", "command"])]
    pub from: Option<PathBuf>,

    /// Title of the flame graph.
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,

    /// Add a root frame per map type, key type, goroutine, or value of the
    /// goroutine label KEY: map-type, key-type, goroutine, label:KEY, none.
    /// (label:KEY reads a record per delete instead of counting in the kernel.)
    #[arg(long, value_name = "WHAT", default_value = "none")]
    pub group_by: crate::output::flame::GroupBy,

    /// Icicle graph: the deletes on top, their callers below.
    #[arg(long)]
    pub inverted: bool,

    /// Drop stacks seen fewer than N times (by --weight latency: of less
    /// than N ns).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_count: u64,

    /// What each stack weighs: the calls made on it (count), or the time
    /// spent in them (latency, in nanoseconds: measured with a probe on
    /// each exit of the runtime function, a second trap per call, as
    /// `mdt trace --latency`; with --from, each record's duration_ns).
    #[arg(long, value_enum, value_name = "WEIGHT", default_value = "count")]
    pub weight: crate::output::flame::Weight,

    /// Keep the Go runtime frames above the delete (by default the delete
    /// function is the leaf, right above the code that called it).
    #[arg(long)]
    pub runtime_frames: bool,

    /// Distinct stacks the kernel counts (more: a program with more code
    /// paths to deletes is drawn whole, at ~1 KB of kernel memory each);
    /// deletes on further stacks are drawn as [stack not recorded].
    #[arg(long, value_name = "N", default_value_t = 16_384, help_heading = "Limits",
          value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub max_stacks: u32,
}

/// Which process to trace and what to capture: shared by the tracing commands.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Attach to this running process.
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<i32>,

    /// Stop after this long (e.g. 30s, 5m, 1h30m).
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Record details for this fraction of deletes, 0 < RATE <= 1 (counts stay exact).
    #[arg(long, value_name = "RATE", env = "MAP_DELETE_TRACER_SAMPLING_RATE", value_parser = parse_rate, default_value = "1")]
    pub sample: f64,

    /// Bytes of each key to capture, with what its strings and interfaces point to (longer keys are marked truncated).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub key_bytes: u32,

    /// Stack frames to capture per delete.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=128))]
    pub stack_depth: u32,

    /// Replace key values by a stable hash (for keys that may be personal data).
    #[arg(long)]
    pub redact_keys: bool,

    /// Keep only deletes whose map type matches this regex (e.g. 'main\.UserMap').
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub map_type: Option<Regex>,

    /// Keep only deletes with a stack frame whose function matches this regex.
    #[arg(long = "func", value_name = "REGEX", value_parser = parse_regex)]
    pub func: Option<Regex>,

    /// Bytes kept of each goroutine label's key and of its value (longer
    /// ones are cut and the record says labels_truncated).
    #[arg(long, value_name = "N", default_value_t = 64, help_heading = "Labels",
          value_parser = clap::value_parser!(u32).range(1..=128))]
    pub label_bytes: u32,

    /// Keep only these goroutine labels (e.g. tenant,endpoint).
    #[arg(
        long = "labels",
        value_name = "KEY,...",
        value_delimiter = ',',
        help_heading = "Labels"
    )]
    pub label_keys: Option<Vec<String>>,

    /// Keep only deletes whose goroutine has label KEY matching REGEX
    /// (e.g. tenant=^t1$).
    #[arg(long, value_name = "KEY=REGEX", help_heading = "Labels", value_parser = parse_label_filter)]
    pub label_filter: Option<(String, Regex)>,

    /// Replace label values by a stable hash (as --redact-keys does keys).
    #[arg(long, help_heading = "Labels")]
    pub redact_labels: bool,

    /// Do not read goroutine labels at all (the probe then reads less of
    /// each goroutine; docs/performance.md).
    #[arg(long, help_heading = "Labels",
          conflicts_with_all = ["label_keys", "label_filter", "redact_labels"])]
    pub no_labels: bool,

    /// Do not read the memory of the maps deleted from (their capacity,
    /// bytes and fill: `map` records, `map_cap`, the Maps view's CAP,
    /// BYTES and FILL, the go_map_bytes metrics). `mdt flame` never does.
    #[arg(long, help_heading = "Map memory")]
    pub no_map_memory: bool,

    /// How often each map watched is read again even when nothing deletes
    /// from it (a map freed since is then reported gone). A map deleted
    /// from is read at most once a second.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration,
          help_heading = "Map memory")]
    pub map_refresh: Duration,

    /// When the target dies of a fatal error ("concurrent map writes"),
    /// do not stop it for the moment it takes to read what its other
    /// threads were running (the `fatal` record then has no `running`).
    #[arg(long, help_heading = "Crash forensics")]
    pub no_hold: bool,

    /// The window before a fatal error whose deletes and clears the
    /// `fatal` record counts (exactly, in the kernel) and lists (at most
    /// 1s).
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_fatal_window,
          help_heading = "Crash forensics")]
    pub fatal_window: Duration,

    /// No probe on the runtime's fatal errors at all.
    #[arg(long, help_heading = "Crash forensics", conflicts_with_all = ["no_hold"])]
    pub no_forensics: bool,

    /// The program to start and trace from its first instruction, after `--`.
    #[arg(last = true, value_name = "CMD", num_args = 1..)]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// One JSON object per line (schema: docs/json.md).
    #[arg(long)]
    pub json: bool,

    /// Write the records to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print one line per delete even on a terminal (no interactive UI).
    #[arg(long)]
    pub no_tui: bool,

    /// Size of the kernel's buffer of records (a power of two, e.g. 4M,
    /// 32M, 256M): a larger one absorbs longer bursts before records are lost.
    #[arg(long, value_name = "SIZE", default_value = "32M", help_heading = "Limits",
          value_parser = parse_buffer_size)]
    pub buffer_size: u32,

    /// Distinct stacks kept symbolized and rendered (more: faster on a
    /// program with many hot stacks, at ~2 KB each).
    #[arg(long, value_name = "N", default_value_t = 4096, help_heading = "Limits",
          value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub max_stacks: u32,

    /// Rows of each table of the terminal UI (callers, maps, stacks); when a
    /// table is full its least recently active quarter is dropped.
    #[arg(long, value_name = "N", default_value_t = 10_000, help_heading = "Limits",
          value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub max_rows: u32,

    /// Measure what each call did (removed an entry, or the key was absent)
    /// and how long it took, with a probe on each exit of the runtime
    /// function: a second, single-stepped trap per call (docs/performance.md).
    #[arg(long, help_heading = "Latency", conflicts_with_all = ["latency_sample", "no_latency"])]
    pub latency: bool,

    /// Like --latency, but with the exit probes armed 1s in every
    /// 1/FRACTION s (0.01: 1s in 100): outcomes and durations of the calls
    /// in those windows, at that share of the cost; the counts stay exact.
    /// The default with --prometheus, --alert or the terminal UI is 0.01.
    #[arg(long, value_name = "FRACTION", help_heading = "Latency",
          value_parser = parse_fraction, conflicts_with = "no_latency")]
    pub latency_sample: Option<f64>,

    /// No exit probes, even with --prometheus, --alert or the terminal UI.
    #[arg(long, help_heading = "Latency")]
    pub no_latency: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics while tracing. ADDR is
    /// HOST:PORT, or :PORT / PORT for 127.0.0.1 (see docs/monitoring.md).
    #[arg(long, value_name = "ADDR", help_heading = "Metrics and alerts",
          value_parser = crate::monitor::metrics::server::parse_listen_addr)]
    pub prometheus: Option<std::net::SocketAddr>,

    /// After the target has exited, keep serving its last metrics for
    /// DURATION (with --prometheus), so that the next scrape sees how it
    /// ended (mdt_target_up 0, go_map_fatal_total); Ctrl-C ends it early.
    #[arg(long, value_name = "DURATION", help_heading = "Metrics and alerts",
          value_parser = parse_linger)]
    pub linger: Option<Duration>,

    /// No records: only metrics, alerts and a summary line on stderr.
    #[arg(long, help_heading = "Metrics and alerts", conflicts_with_all = ["json", "output"])]
    pub quiet: bool,

    /// At most N (map_type, caller) label pairs; deletes at further call
    /// sites are counted under caller="other".
    #[arg(long, value_name = "N", default_value_t = 1000, help_heading = "Metrics and alerts",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_series: u32,

    /// Also count deletes per map type and value of these goroutine labels
    /// (go_map_delete_by_label_total{map_type, label_KEY...}), from the
    /// delete records; at most --max-series series, the rest under "other".
    #[arg(
        long,
        value_name = "KEY,...",
        value_delimiter = ',',
        help_heading = "Metrics and alerts"
    )]
    pub metric_labels: Vec<String>,

    /// Alert rule, repeatable: e.g. 'count(map) > 100 within 5m',
    /// 'rate(caller) > 1000/s within 30s' (syntax: docs/monitoring.md).
    #[arg(long = "alert", value_name = "RULE", help_heading = "Metrics and alerts",
          value_parser = parse_rule)]
    pub alert: Vec<crate::monitor::alerts::Rule>,

    /// Alert rules from a TOML or YAML file.
    #[arg(
        long = "alerts",
        value_name = "FILE",
        help_heading = "Metrics and alerts"
    )]
    pub alerts_file: Option<PathBuf>,

    /// POST each alert (and its resolution) to URL.
    #[arg(long, value_name = "URL", help_heading = "Metrics and alerts",
          value_parser = crate::monitor::alerts::deliver::parse_webhook_url)]
    pub webhook: Option<String>,

    /// Body of the webhook POST: mdt's alert JSON, or Slack's {"text": ...}.
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "json",
        help_heading = "Metrics and alerts"
    )]
    pub webhook_format: crate::monitor::alerts::deliver::WebhookFormat,

    /// Give up one webhook attempt after this long (3 attempts per alert).
    #[arg(long, value_name = "DURATION", default_value = "5s", help_heading = "Metrics and alerts",
          value_parser = parse_duration)]
    pub webhook_timeout: Duration,

    /// Run CMD for each alert with the alert JSON on its standard input (no
    /// shell: CMD is split on spaces).
    #[arg(long, value_name = "CMD", help_heading = "Metrics and alerts")]
    pub alert_exec: Option<String>,

    /// A rule that fired for a group does not fire again for it before this
    /// long has passed (0s: every time it crosses the threshold).
    #[arg(long, value_name = "DURATION", default_value = "1m", help_heading = "Metrics and alerts",
          value_parser = parse_cooldown)]
    pub alert_cooldown: Duration,
}

/// `4M`, `32MiB`, `65536`: a power of two from 64 KiB to 1 GiB.
fn parse_buffer_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| "not a size (try 4M or 32M)".to_string())?;
    let unit = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err("unknown unit (try 4M or 32M)".into()),
    };
    let bytes = n.saturating_mul(unit);
    if !bytes.is_power_of_two() || !(64 << 10..=1 << 30).contains(&bytes) {
        return Err("must be a power of two from 64K to 1G (e.g. 4M, 32M, 256M)".into());
    }
    u32::try_from(bytes).map_err(|_| "too large".into())
}

/// A share of the time, 0 < FRACTION <= 1.
fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err("must be a number with 0 < FRACTION <= 1 (e.g. 0.01)".into()),
    }
}

fn parse_rule(s: &str) -> Result<crate::monitor::alerts::Rule, String> {
    crate::monitor::alerts::rule::parse(s).map_err(|e| e.to_string())
}

fn parse_cooldown(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (try 0s, 30s or 5m)"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (try 30s, 5m or 1h)"))?;
    if d.is_zero() {
        return Err("must be longer than 0s".into());
    }
    Ok(d)
}

fn parse_linger(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 2m)"))?;
    if d > Duration::from_secs(3600) {
        return Err("at most 1h".into());
    }
    Ok(d)
}

fn parse_fatal_window(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > Duration::from_secs(1) {
        return Err("must be at most 1s (the kernel counts deletes by time for a second)".into());
    }
    Ok(d)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.trim().parse().map_err(|_| "not a number".to_string())?;
    if !(rate > 0.0 && rate <= 1.0) {
        return Err("must be greater than 0 and at most 1 (e.g. 0.01 for 1%)".into());
    }
    Ok(rate)
}

/// `KEY=REGEX` of `--label-filter`.
fn parse_label_filter(s: &str) -> Result<(String, Regex), String> {
    let (key, re) = s
        .split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=REGEX, got {s:?}"))?;
    Ok((key.to_string(), parse_regex(re)?))
}

fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| {
        // The regex crate's message spans lines; keep the last, specific one.
        let msg = e.to_string();
        msg.lines()
            .last()
            .unwrap_or(&msg)
            .trim()
            .trim_start_matches("error: ")
            .to_string()
    })
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The Go executable to read.
    #[arg(
        value_name = "BINARY",
        required_unless_present_any = ["pid", "all"],
        conflicts_with_all = ["pid", "all"]
    )]
    pub binary: Option<PathBuf>,

    /// Read the executable of this running process (through /proc/PID/exe).
    #[arg(short, long, value_name = "PID", conflicts_with = "all")]
    pub pid: Option<i32>,

    /// List the node's Go processes (those the filters keep): pid, command,
    /// Go version, container, and whether mdt can trace each.
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub node: NodeArgs,

    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// Which of the node's processes `--all` takes (every filter given must
/// keep a process).
#[derive(Args, Debug, Clone, Default)]
pub struct NodeArgs {
    /// Only processes whose command name (/proc/PID/comm) matches REGEX.
    #[arg(
        long,
        value_name = "REGEX",
        requires = "all",
        help_heading = "Node-wide"
    )]
    pub comm: Option<Regex>,

    /// Only processes whose executable's path matches REGEX.
    #[arg(
        long,
        value_name = "REGEX",
        requires = "all",
        help_heading = "Node-wide"
    )]
    pub exe: Option<Regex>,

    /// Only processes in this container (its id, or the first digits of it,
    /// as `docker ps` or `podman ps` shows them).
    #[arg(long, value_name = "ID", requires = "all", help_heading = "Node-wide",
          value_parser = parse_container_id)]
    pub container: Option<String>,

    /// Only processes in this cgroup or below it: a cgroup path
    /// (/kubepods.slice) or a directory under /sys/fs/cgroup.
    #[arg(
        long,
        value_name = "PATH",
        requires = "all",
        help_heading = "Node-wide"
    )]
    pub cgroup: Option<String>,
}

impl NodeArgs {
    pub fn selector(&self) -> crate::process::discover::Selector {
        crate::process::discover::Selector {
            comm: self.comm.clone(),
            exe: self.exe.clone(),
            container: self.container.clone(),
            cgroup: self.cgroup.clone(),
        }
    }
}

fn parse_container_id(s: &str) -> Result<String, String> {
    let id = s.trim().to_ascii_lowercase();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a container id is hex digits (up to 64; a prefix of 12 as `docker ps` shows it is enough)".into());
    }
    Ok(id)
}

/// The clap command, for the man page and the completion generators.
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::parse_buffer_size;

    #[test]
    fn buffer_sizes_are_powers_of_two_with_a_unit() {
        for (s, n) in [
            ("65536", 65536),
            ("64K", 64 << 10),
            ("4m", 4 << 20),
            ("32MiB", 32 << 20),
            (" 256 MB ", 256 << 20),
            ("1G", 1 << 30),
        ] {
            assert_eq!(parse_buffer_size(s), Ok(n), "{s}");
        }
        for s in [
            "",
            "M",
            "3M",
            "32K",
            "2G",
            "4X",
            "-4M",
            "99999999999999999999",
        ] {
            assert!(parse_buffer_size(s).is_err(), "{s}");
        }
    }
}
