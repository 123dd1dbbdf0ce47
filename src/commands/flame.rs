//! `mdt flame`: which code paths lead to deletes, as a picture.

use std::io::{IsTerminal, Write};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::FlameArgs;
use crate::output::flame::{
    self, input, svg::SvgOptions, Format, Profile, RawStack, Shape, Weight,
};
use crate::output::Summary;
use crate::session::{Latency, Session, Signals, StackCount};

pub fn run(args: &FlameArgs) -> Result<ExitCode> {
    let outputs = Output::plan(args)?;
    let shape = Shape {
        group_by: args.group_by.clone(),
        runtime_frames: args.runtime_frames,
    };
    let (mut profile, launched) = match &args.from {
        Some(path) => (input::read(path, &shape, args.weight)?, None),
        // Labels come with records only: the kernel's stack counts have none.
        None if matches!(shape.group_by, flame::GroupBy::Label(_))
            || args.target.label_filter.is_some() =>
        {
            if args.target.no_labels {
                bail!("--group-by label:KEY and --label-filter need the goroutine labels: drop --no-labels");
            }
            if let (Some(kept), flame::GroupBy::Label(k)) =
                (&args.target.label_keys, &shape.group_by)
            {
                if !kept.contains(k) {
                    bail!(
                        "--labels keeps only {}: --group-by label:{k} needs {k} too",
                        kept.join(",")
                    );
                }
            }
            trace_records(args, &shape)?
        }
        None => trace(args, &shape)?,
    };
    profile.finish(args.min_count);
    let svg = SvgOptions {
        title: args.title.clone(),
        inverted: args.inverted,
    };
    // Every output is rendered and written to its temporary file first, and
    // renamed only when all of them are: a failure leaves none behind (the
    // temporary files go when `outputs` is dropped).
    let mut outputs = outputs;
    for out in &mut outputs {
        let bytes = flame::render(&profile, out.format, &svg)?;
        out.write(bytes)?;
    }
    let what = shown(&profile, args.from.is_some());
    for out in &outputs {
        out.commit()?;
        eprintln!("mdt: wrote {} ({what})", out.path.display());
    }
    // Launch mode: the graph is written when tracing stops (also when a
    // --duration ends first); then the program's exit status is passed on.
    let exit_code = launched.and_then(|(mut summary, pid)| {
        if summary.target_exit.is_none() {
            eprintln!("mdt: tracing stopped; waiting for pid {pid} to exit");
        }
        Session::wait_child(&mut summary, pid);
        summary.exit_status.map(|s| s.shell_code())
    });
    Ok(exit_code.map_or(ExitCode::SUCCESS, |c| ExitCode::from(c.clamp(0, 255) as u8)))
}

/// What the outputs show, for the line that names each: `N deletes in L
/// stacks`, or by latency `T ns (1.2ms) of deletes in L stacks` and the
/// calls left out for want of a duration.
fn shown(profile: &Profile, from_file: bool) -> String {
    let (total, lines) = (profile.shown_total(), profile.folded_lines().len());
    match profile.weight {
        Weight::Count => format!("{total} deletes in {lines} stacks"),
        Weight::Latency => {
            let mut s = format!(
                "{total} ns ({}) of deletes in {lines} stacks",
                crate::events::short_duration(total)
            );
            let n = profile.untimed;
            if n > 0 {
                let (one, many) = if from_file {
                    (
                        "record without a duration skipped",
                        "records without a duration skipped",
                    )
                } else {
                    (
                        "call not seen returning left out",
                        "calls not seen returning left out",
                    )
                };
                s += &format!("; {n} {}", if n == 1 { one } else { many });
            }
            s
        }
    }
}

/// Traces until a stop condition, counting stacks in the kernel. In launch
/// mode also returns the summary and the pid of the program, to wait for.
fn trace(args: &FlameArgs, shape: &Shape) -> Result<(Profile, Option<(Summary, i32)>)> {
    let weight = args.weight;
    let (signals, session, options, launched) = start(
        args,
        crate::session::Mode::Stacks {
            per_goroutine: shape.group_by == flame::GroupBy::Goroutine,
        },
    )?;
    let pid = session.pid();
    let show_progress = std::io::stderr().is_terminal();
    let mut last = (Duration::ZERO, 0u64);
    let mut progress = |elapsed: Duration, total: u64| {
        if show_progress {
            let rate = (total - last.1) as f64 / (elapsed - last.0).as_secs_f64().max(1e-3);
            eprint!(
                "\r\x1b[Kmdt: {:>5.0}s  {total} deletes  {rate:.0}/s",
                elapsed.as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
        last = (elapsed, total);
    };
    let (summary, counts, fatal) = session.run_aggregate(&signals, &mut progress)?;
    if show_progress {
        eprint!("\r\x1b[K");
    }
    // The target died of a fatal error: the report, the outputs as usual.
    for line in fatal.iter().flat_map(|f| f.report_lines()) {
        eprintln!("mdt: {line}");
    }
    let mut profile = Profile {
        duration_ns: summary.duration.as_nanos() as u64,
        weight,
        ..Profile::default()
    };
    let mut filtered = false;
    // The calls and the time of the stacks kept (by latency).
    let (mut kept_calls, mut kept_ns) = (0u64, 0u64);
    for c in &counts {
        if !keep(c, &options) {
            filtered = true;
            continue;
        }
        kept_calls += c.count;
        kept_ns += c.total_ns.unwrap_or(0);
        profile.add(
            RawStack {
                func: c.func,
                frames: &c.frames,
                map_type: &c.map_type,
                key_type: &c.key_type,
                goid: c.goid,
                labels: None,
                truncated: c.truncated,
                count: match weight {
                    Weight::Count => c.count,
                    // Calls not seen returning weigh nothing.
                    Weight::Latency => c.total_ns.unwrap_or(0),
                },
            },
            shape,
        );
    }
    // By latency, the exact totals are the outcomes counted at the exits:
    // every call seen returning, and the time spent in them.
    let (returned, all_ns) = summary
        .outcomes
        .as_ref()
        .map_or((0, 0), |o| (o.returned, o.total_ns));
    if weight == Weight::Latency && !filtered {
        // (Filtered, those of the stacks kept are not known apart.)
        profile.untimed = (summary.deletes + summary.clears).saturating_sub(returned);
    }
    let sampled = options.sample_rate < 1.0;
    if summary.lost > 0 {
        if filtered {
            eprintln!("mdt: warning: {} deletes could not be counted by stack (the kernel's stack tables were full); they are not in the graph", summary.lost);
        } else {
            // Their stacks are unknown, but they happened: keep the totals
            // exact (by latency: the time not on a known stack; sampled,
            // an estimate, the known stacks' mean per call).
            let unknown = match weight {
                Weight::Count => summary.lost,
                Weight::Latency if !sampled => all_ns.saturating_sub(kept_ns),
                Weight::Latency => {
                    (kept_ns as f64 / kept_calls.max(1) as f64 * summary.lost as f64).round() as u64
                }
            };
            profile.add_unknown("[stack not recorded: tables full]", unknown);
            eprintln!("mdt: warning: {} deletes could not be counted by stack (the kernel's stack tables were full); the graph shows them as [stack not recorded]", summary.lost);
        }
    }
    if sampled {
        profile.finish(1);
        if filtered {
            let sampled = profile.total();
            profile.scale_to(
                (sampled as f64 / options.sample_rate).round() as u64,
                options.sample_rate,
            );
        } else {
            let exact = match weight {
                Weight::Count => summary.deletes + summary.clears,
                Weight::Latency => all_ns,
            };
            profile.scale_to(exact, options.sample_rate);
        }
    }
    Ok((profile, launched.then_some((summary, pid))))
}

/// Traces with a record per delete, shaped in user space: for what the
/// kernel's counts cannot give (`--group-by label:KEY`, `--label-filter`:
/// the labels come with the records). Records the kernel could not deliver are counted in the
/// summary and left out of the graph (a warning says how many).
fn trace_records(args: &FlameArgs, shape: &Shape) -> Result<(Profile, Option<(Summary, i32)>)> {
    let (signals, session, _, launched) =
        start(args, crate::session::Mode::Records { sites: false })?;
    let pid = session.pid();
    super::trace::warn_if_no_labels(&session, true);
    let mut sink = ProfileSink {
        profile: Profile {
            weight: args.weight,
            ..Profile::default()
        },
        shape: shape.clone(),
    };
    let summary = session.run(&mut sink, &signals)?;
    let mut profile = sink.profile;
    profile.duration_ns = summary.duration.as_nanos() as u64;
    if summary.lost > 0 {
        eprintln!(
            "mdt: warning: {} records were lost (the kernel's buffer was full): the graph leaves them out",
            summary.lost
        );
    }
    Ok((profile, launched.then_some((summary, pid))))
}

/// Starts tracing what `args` name, in `mode`, and says so: the signals to
/// stop on, the session, its options and whether mdt launched the program.
fn start(
    args: &FlameArgs,
    mode: crate::session::Mode,
) -> Result<(Signals, Session, crate::session::Options, bool)> {
    let signals = Signals::install()?;
    let (spec, mut options) = super::trace::session_args(&args.target);
    // A profile has no use for the maps' memory.
    options.map_refresh = None;
    options.limits.stacks = args.max_stacks as usize;
    options.mode = mode;
    if args.weight == Weight::Latency {
        // In the kernel's counts, each stack's time (StackCount.total_ns).
        options.latency = Latency::Always;
    }
    let launched = matches!(spec, crate::session::TargetSpec::Launch(_));
    let session = Session::start(spec, options.clone())?;
    super::trace::announce(&session);
    Ok((signals, session, options, launched))
}

/// The records of a session, into a profile.
struct ProfileSink {
    profile: Profile,
    shape: Shape,
}

impl crate::output::Sink for ProfileSink {
    fn event(&mut self, ev: &crate::events::Event) -> std::io::Result<()> {
        let Some(count) = self.profile.call_weight(ev.outcome.map(|o| o.duration_ns)) else {
            return Ok(());
        };
        self.profile.add(
            RawStack {
                func: ev.func,
                frames: &ev.stack,
                map_type: &ev.map_type,
                key_type: &ev.key_type,
                goid: ev.goid,
                labels: ev.labels.as_deref(),
                count,
                truncated: ev.stack_truncated,
            },
            &self.shape,
        );
        Ok(())
    }

    fn lost(&mut self, _count: u64, _total: u64) -> std::io::Result<()> {
        Ok(())
    }

    fn summary(&mut self, _summary: &Summary) -> std::io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The stack's delete function counts as one of its frames.
fn keep(c: &StackCount, o: &crate::session::Options) -> bool {
    o.keeps(
        &c.map_type,
        std::iter::once(c.func).chain(c.frames.iter().map(|f| &*f.func)),
    )
}

/// An output file, written to a temporary name first so that a failed or
/// interrupted run never leaves a partial file behind.
struct Output {
    path: PathBuf,
    /// The temporary file next to `path`, renamed to it at the end; `None`
    /// for an existing file that is not a regular one (a pipe, `/dev/null`)
    /// or one of mdt's descriptors (`/dev/stdout`): renaming over it would
    /// replace it, so it is written in place at the end.
    tmp: Option<PathBuf>,
    /// When `path` names one of mdt's own descriptors ([`own_fd`]): a
    /// duplicate of it, written through.
    own: Option<std::fs::File>,
    format: Format,
    /// The rendered output, for `tmp: None`.
    bytes: Vec<u8>,
}

impl Output {
    /// Decides every output's format and checks it can be written, before
    /// any tracing starts.
    fn plan(args: &FlameArgs) -> Result<Vec<Output>> {
        let paths = if args.outputs.is_empty() {
            let ext = match args.format.unwrap_or(Format::Svg) {
                Format::Svg => "svg",
                Format::Folded => "folded",
                Format::Pprof => "pb.gz",
            };
            vec![PathBuf::from(format!("deletes.{ext}"))]
        } else {
            args.outputs.clone()
        };
        // Every format is decided before any file is created.
        let mut formats = Vec::new();
        for path in &paths {
            match args.format.or_else(|| Format::from_path(path)) {
                Some(f) => formats.push(f),
                None => bail!("cannot tell the format of {} from its name: use --format svg|folded|pprof or a .svg, .folded or .pb.gz name", path.display()),
            }
        }
        let mut outs: Vec<Output> = Vec::new();
        for (i, (path, format)) in paths.iter().zip(formats).enumerate() {
            // A failed reservation drops (and so discards) those made so far.
            outs.push(Output::reserve(path, format, i)?);
        }
        Ok(outs)
    }

    fn reserve(path: &Path, format: Format, index: usize) -> Result<Output> {
        let name = path
            .file_name()
            .with_context(|| format!("cannot write {}: not a file name", path.display()))?;
        if path.is_dir() {
            bail!(
                "cannot write {}: it is a directory (give a file name, e.g. {})",
                path.display(),
                path.join("deletes.svg").display()
            );
        }
        let own = match own_fd(path) {
            // A duplicate that a launched program does not inherit.
            // SAFETY: fcntl(2) on a descriptor number; a closed one fails.
            Some(fd) => match unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) } {
                -1 => bail!(
                    "cannot write {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                ),
                // SAFETY: a new descriptor, owned by nothing else.
                dup => Some(unsafe { std::fs::File::from_raw_fd(dup) }),
            },
            None => None,
        };
        let special =
            own.is_some() || std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
        let tmp = if special {
            None
        } else {
            let tmp = path.with_file_name(format!(
                ".{}.mdt-{}-{index}.tmp",
                name.to_string_lossy(),
                std::process::id()
            ));
            std::fs::File::create(&tmp)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(tmp)
        };
        Ok(Output {
            path: path.to_path_buf(),
            tmp,
            own,
            format,
            bytes: Vec::new(),
        })
    }

    /// Writes the whole output to the temporary file (or keeps it).
    fn write(&mut self, bytes: Vec<u8>) -> Result<()> {
        match &self.tmp {
            Some(tmp) => std::fs::write(tmp, bytes)
                .with_context(|| format!("cannot write {}", self.path.display())),
            None => {
                self.bytes = bytes;
                Ok(())
            }
        }
    }

    /// Gives the written temporary file its real name (or writes a
    /// non-regular file in place).
    fn commit(&self) -> Result<()> {
        match (&self.tmp, &self.own) {
            (Some(tmp), _) => std::fs::rename(tmp, &self.path),
            (None, Some(fd)) => (&*fd).write_all(&self.bytes),
            (None, None) => std::fs::OpenOptions::new()
                .write(true)
                .open(&self.path)
                .and_then(|mut f| f.write_all(&self.bytes)),
        }
        .with_context(|| format!("cannot write {}", self.path.display()))
    }

    fn discard(&self) {
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// The descriptor of mdt's that `path` names, through any symlinks:
/// `/dev/stdout` (a link to `/proc/self/fd/1`), `/dev/stderr`, `/dev/fd/N`,
/// `/proc/self/fd/N`. Written through the descriptor: when it is a
/// redirected regular file, renaming over the path would replace the link
/// (as root, `/dev/stdout` itself), and opening the path anew would write
/// from offset 0, over what the traced program printed.
fn own_fd(path: &Path) -> Option<i32> {
    let own = format!("/proc/{}/fd/", std::process::id());
    let mut p = path.to_path_buf();
    for _ in 0..16 {
        let s = p.to_str()?;
        let n = ["/dev/fd/", "/proc/self/fd/", &own]
            .iter()
            .find_map(|prefix| s.strip_prefix(prefix));
        if let Some(fd) = n.and_then(|n| n.parse().ok()) {
            return Some(fd);
        }
        let target = std::fs::read_link(&p).ok()?;
        p = if target.is_absolute() {
            target
        } else {
            p.parent()?.join(target)
        };
    }
    None
}

impl Drop for Output {
    fn drop(&mut self) {
        // Committed files were renamed away; anything left is partial.
        self.discard();
    }
}
