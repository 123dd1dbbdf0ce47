//! `mdt trace`: stream every map delete of the target to a sink.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{TargetArgs, TraceArgs};
use crate::session::{Options, Session, Signals, TargetSpec};
use crate::sinks::{json::JsonSink, open_output, text::TextSink, Sink};

pub fn run(args: &TraceArgs) -> Result<ExitCode> {
    let signals = Signals::install()?;
    let (spec, options) = session_args(&args.target);
    let launched = matches!(spec, TargetSpec::Launch(_));
    let out = open_output(args.output.as_deref())?;
    let mut sink: Box<dyn Sink> = if args.json {
        Box::new(JsonSink::new(out))
    } else {
        Box::new(TextSink::new(out))
    };
    let session = Session::start(spec, options)?;
    let pid = session.pid();
    announce(&session);
    let mut summary = session.run(sink.as_mut(), &signals)?;
    if launched {
        Session::wait_child(&mut summary, pid);
        if let Some(status) = summary.exit_status {
            return Ok(ExitCode::from(status.shell_code().clamp(0, 255) as u8));
        }
    }
    Ok(ExitCode::SUCCESS)
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
        aggregate: false,
        aggregate_goid: false,
    };
    (spec, options)
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
