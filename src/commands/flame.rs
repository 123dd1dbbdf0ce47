//! `mdt flame`: which code paths lead to deletes, as a picture.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::FlameArgs;
use crate::output::flame::{self, input, svg::SvgOptions, Format, Profile, RawStack, Shape};
use crate::output::Summary;
use crate::session::{Session, Signals, StackCount};

pub fn run(args: &FlameArgs) -> Result<ExitCode> {
    let outputs = Output::plan(args)?;
    let shape = Shape {
        group_by: args.group_by,
        runtime_frames: args.runtime_frames,
    };
    let (mut profile, launched) = match &args.from {
        Some(path) => (input::read(path, &shape)?, None),
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
    let (total, lines) = (profile.shown_total(), profile.folded_lines().len());
    for out in &outputs {
        out.commit()?;
        eprintln!(
            "mdt: wrote {} ({total} deletes in {lines} stacks)",
            out.path.display()
        );
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

/// Traces until a stop condition, counting stacks in the kernel. In launch
/// mode also returns the summary and the pid of the program, to wait for.
fn trace(args: &FlameArgs, shape: &Shape) -> Result<(Profile, Option<(Summary, i32)>)> {
    let signals = Signals::install()?;
    let (spec, mut options) = super::trace::session_args(&args.target);
    options.limits.stacks = args.max_stacks as usize;
    options.mode = crate::session::Mode::Stacks {
        per_goroutine: shape.group_by == flame::GroupBy::Goroutine,
    };
    let launched = matches!(spec, crate::session::TargetSpec::Launch(_));
    let session = Session::start(spec, options.clone())?;
    let pid = session.pid();
    super::trace::announce(&session);
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
    let (summary, counts) = session.run_aggregate(&signals, &mut progress)?;
    if show_progress {
        eprint!("\r\x1b[K");
    }
    let mut profile = Profile {
        duration_ns: summary.duration.as_nanos() as u64,
        ..Profile::default()
    };
    let mut filtered = false;
    for c in &counts {
        if !keep(c, &options) {
            filtered = true;
            continue;
        }
        profile.add(
            RawStack {
                func: c.func,
                frames: &c.frames,
                map_type: &c.map_type,
                key_type: &c.key_type,
                goid: c.goid,
                count: c.count,
            },
            shape,
        );
    }
    if summary.lost > 0 {
        if filtered {
            eprintln!("mdt: warning: {} deletes could not be counted by stack (the kernel's stack tables were full); they are not in the graph", summary.lost);
        } else {
            // Their stacks are unknown, but they happened: keep the totals exact.
            profile.add_unknown("[stack not recorded: tables full]", summary.lost);
            eprintln!("mdt: warning: {} deletes could not be counted by stack (the kernel's stack tables were full); the graph shows them as [stack not recorded]", summary.lost);
        }
    }
    if options.sample_rate < 1.0 {
        profile.finish(1);
        if filtered {
            let sampled = profile.total();
            profile.scale_to(
                (sampled as f64 / options.sample_rate).round() as u64,
                options.sample_rate,
            );
        } else {
            profile.scale_to(summary.deletes + summary.clears, options.sample_rate);
        }
    }
    Ok((profile, launched.then_some((summary, pid))))
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
    /// for an existing file that is not a regular one (`/dev/stdout`, a
    /// pipe, `/dev/null`): renaming over it would replace it, so it is
    /// written in place at the end.
    tmp: Option<PathBuf>,
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
        let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
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
        match &self.tmp {
            Some(tmp) => std::fs::rename(tmp, &self.path),
            None => std::fs::OpenOptions::new()
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

impl Drop for Output {
    fn drop(&mut self) {
        // Committed files were renamed away; anything left is partial.
        self.discard();
    }
}
