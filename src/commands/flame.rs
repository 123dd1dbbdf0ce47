//! `mdt flame`: which code paths lead to deletes, as a picture.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::FlameArgs;
use crate::session::{Session, Signals, StackCount};
use crate::sinks::flame::{self, input, svg::SvgOptions, Format, Profile, RawStack, Shape};

pub fn run(args: &FlameArgs) -> Result<ExitCode> {
    let outputs = Output::plan(args)?;
    let shape = Shape {
        group_by: args.group_by,
        runtime_frames: args.runtime_frames,
    };
    let (mut profile, exit_code) = match &args.from {
        Some(path) => (input::read(path, &shape)?, None),
        None => trace(args, &shape)?,
    };
    profile.finish(args.min_count);
    let svg = SvgOptions {
        title: args.title.clone(),
        inverted: args.inverted,
    };
    for out in outputs {
        let bytes = flame::render(&profile, out.format, &svg)?;
        out.commit(&bytes)?;
        eprintln!(
            "mdt: wrote {} ({} deletes in {} stacks)",
            out.path.display(),
            profile.shown_total(),
            profile.stacks.len()
        );
    }
    Ok(exit_code.map_or(ExitCode::SUCCESS, |c| ExitCode::from(c.clamp(0, 255) as u8)))
}

/// Traces until a stop condition, counting stacks in the kernel.
fn trace(args: &FlameArgs, shape: &Shape) -> Result<(Profile, Option<i32>)> {
    let signals = Signals::install()?;
    let (spec, mut options) = super::trace::session_args(&args.target);
    options.aggregate = true;
    options.aggregate_goid = shape.group_by == flame::GroupBy::Goroutine;
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
    let (mut summary, counts) = session.run_aggregate(&signals, &mut progress)?;
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
        eprintln!("mdt: warning: {} deletes could not be counted by stack (the kernel's stack tables were full); the totals are exact", summary.lost);
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
    let exit = if launched {
        Session::wait_child(&mut summary, pid);
        summary.exit_status.map(|s| s.shell_code())
    } else {
        None
    };
    Ok((profile, exit))
}

fn keep(c: &StackCount, o: &crate::session::Options) -> bool {
    o.map_type
        .as_ref()
        .is_none_or(|re| re.is_match(&c.map_type))
        && o.func
            .as_ref()
            .is_none_or(|re| re.is_match(c.func) || c.frames.iter().any(|f| re.is_match(&f.func)))
}

/// An output file, written to a temporary name first so that a failed or
/// interrupted run never leaves a partial file behind.
struct Output {
    path: PathBuf,
    tmp: PathBuf,
    format: Format,
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
        let mut outs: Vec<Output> = Vec::new();
        for path in paths {
            let format = match args.format.or_else(|| Format::from_path(&path)) {
                Some(f) => f,
                None => {
                    outs.iter().for_each(Output::discard);
                    bail!("cannot tell the format of {} from its name: use --format svg|folded|pprof or a .svg, .folded or .pb.gz name", path.display())
                }
            };
            match Output::reserve(&path, format) {
                Ok(o) => outs.push(o),
                Err(e) => {
                    outs.iter().for_each(Output::discard);
                    return Err(e);
                }
            }
        }
        Ok(outs)
    }

    fn reserve(path: &Path, format: Format) -> Result<Output> {
        let name = path
            .file_name()
            .with_context(|| format!("{} is not a file name", path.display()))?;
        let tmp = path.with_file_name(format!(
            ".{}.mdt-{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Output {
            path: path.to_path_buf(),
            tmp,
            format,
        })
    }

    fn commit(&self, bytes: &[u8]) -> Result<()> {
        let write =
            std::fs::write(&self.tmp, bytes).and_then(|()| std::fs::rename(&self.tmp, &self.path));
        if let Err(e) = write {
            self.discard();
            return Err(e).with_context(|| format!("cannot write {}", self.path.display()));
        }
        Ok(())
    }

    fn discard(&self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // Committed files were renamed away; anything left is partial.
        self.discard();
    }
}
