//! `mdt inspect`: what mdt reads from a Go binary, for a person or a script.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::InspectArgs;
use crate::gobin::layout::LayoutSource;
use crate::gobin::{GoBinary, MapImpl, TextBaseSource, VersionSource};
use crate::process;
use crate::session::node::{go_processes, NodeProcess};

pub fn run(args: &InspectArgs) -> Result<ExitCode> {
    if args.all {
        return node(args);
    }
    let path = match (args.pid, &args.binary) {
        (Some(pid), _) => process::exe_of(pid)?,
        (None, Some(path)) => path.clone(),
        (None, None) => unreachable!("clap requires a binary or a pid"),
    };
    let binary = GoBinary::open(&path)?;
    let text = if args.json {
        serde_json::to_string_pretty(&binary).context("serializing the report")? + "\n"
    } else {
        report(&binary)
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `mdt inspect --all`: the node's Go processes, one row (or JSON object)
/// each.
fn node(args: &InspectArgs) -> Result<ExitCode> {
    let procs = go_processes(&args.node.selector());
    if args.json {
        let list: Vec<_> = procs.iter().map(node_json).collect();
        let doc = serde_json::json!({ "processes": list });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", node_table(&procs));
    Ok(ExitCode::SUCCESS)
}

fn node_json(p: &NodeProcess) -> serde_json::Value {
    let i = &p.info;
    serde_json::json!({
        "pid": i.pid,
        "comm": i.comm,
        "exe": i.exe,
        "go_version": p.binary.go_version,
        "traceable": p.binary.untraceable.is_none(),
        "reason": p.binary.untraceable,
        "cgroup": i.cgroups.main_path(),
        "container_id": i.container.as_ref().map(|c| &c.id),
        "pod_uid": i.container.as_ref().and_then(|c| c.pod_uid.as_ref()),
    })
}

/// `PID COMM GO CONTAINER TRACE EXE`, the reason after an untraceable one.
fn node_table(procs: &[NodeProcess]) -> String {
    let mut out = format!(
        "{:>7}  {:<15}  {:<12}  {:<12}  {:<5}  EXE\n",
        "PID", "COMM", "GO", "CONTAINER", "TRACE"
    );
    for p in procs {
        let i = &p.info;
        let _ = write!(
            out,
            "{:>7}  {:<15}  {:<12}  {:<12}  {:<5}  {}",
            i.pid,
            i.comm,
            p.binary.go_version.as_deref().unwrap_or("?"),
            i.container.as_ref().map_or("-".into(), |c| c.to_string()),
            if p.binary.untraceable.is_none() {
                "yes"
            } else {
                "no"
            },
            i.exe.display()
        );
        if let Some(why) = &p.binary.untraceable {
            let _ = write!(out, "  ({why})");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{} Go processes", procs.len());
    out
}

/// The human report: a short aligned header, then one row per function.
pub fn report(b: &GoBinary) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<13} {v}");
    };
    line("binary", b.path.display().to_string());
    line(
        "go version",
        format!(
            "{} (from {})",
            b.go_version,
            version_source(b.version_source)
        ),
    );
    line(
        "maps",
        match b.map_impl {
            MapImpl::Hmap => "classic buckets (runtime.hmap)".into(),
            MapImpl::Swiss => "Swiss tables (internal/runtime/maps.Map)".into(),
        },
    );
    line("build", build_flags(b));
    line(
        "build id",
        match (&b.build_id.go, &b.build_id.gnu) {
            (None, None) => "none".into(),
            (go, gnu) => [
                go.as_ref().map(|g| format!("go {g}")),
                gnu.as_ref().map(|g| format!("gnu {g}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
        },
    );
    line(
        "text base",
        format!(
            "{:#x} (from {})",
            b.text_base,
            match b.text_base_source {
                TextBaseSource::Moduledata => "runtime.firstmoduledata",
                TextBaseSource::PclntabHeader => "the .gopclntab header",
                TextBaseSource::TextSection => "the .text section",
            }
        ),
    );
    line(
        "offsets",
        match &b.layout {
            Some(l) => format!(
                "goid at g+{}, map count at map+{} (from {})",
                l.goid_offset,
                l.map_count_offset,
                source_name(l.source)
            ),
            None => {
                "unknown for this Go release and no DWARF: mdt cannot read goroutine ids".into()
            }
        },
    );
    line("labels", labels_line(b));
    line("fatal", fatal_line(b));
    line(
        "map memory",
        b.map_memory.as_ref().map_or_else(
            || "unknown: neither DWARF nor the version table knows this release's map header (no map readings)".into(),
            |l| format!("{} (from {})", l.describe(), source_name(l.source)),
        ),
    );
    out.push('\n');
    let rows: Vec<(String, String)> = b
        .functions
        .iter()
        .map(|f| {
            let rets: Vec<String> = f.ret_offsets.iter().map(|r| format!("+{r:#x}")).collect();
            let exits: Vec<String> = f
                .exit_points
                .iter()
                .map(|e| format!("+{:#x} {}", e.offset, e.mnemonic))
                .collect();
            let exits = if exits.is_empty() {
                "-".to_string()
            } else {
                exits.join(",")
            };
            (rets.join(","), exits)
        })
        .collect();
    // Both lists grow with the RETs and JMPs of a function: as wide as the widest.
    let width =
        |col: &dyn Fn(&(String, String)) -> usize| rows.iter().map(col).fold(13, usize::max);
    let (rets_w, exits_w) = (width(&|r| r.0.len()), width(&|r| r.1.len()));
    let _ = writeln!(
        out,
        "{:<37} {:>10} {:>10} {:>6} {:>6}  {:<rets_w$}  {:<exits_w$}  ATTACH",
        "FUNCTION", "ADDRESS", "FILE OFF", "SIZE", "PROBE", "RETURNS", "EXITS"
    );
    for (f, (rets, exits)) in b.functions.iter().zip(&rows) {
        let _ = writeln!(
            out,
            "{:<37} {:>10} {:>10} {:>6} {:>6}  {:<rets_w$}  {:<exits_w$}  {}",
            f.name,
            format!("{:#x}", f.address),
            format!("{:#x}", f.file_offset),
            f.size,
            format!("+{}", f.probe_offset),
            rets,
            exits,
            if f.attach { "yes" } else { "no" }
        );
    }
    out.push('\n');
    for f in &b.functions {
        let verdict = if f.attach { "probed" } else { "not probed" };
        let _ = writeln!(out, "{} {verdict}: {}", f.name, f.reason);
    }
    for f in &b.functions {
        if let (true, Some(note)) = (f.exit_points.is_empty(), &f.exit_note) {
            let _ = writeln!(out, "{} has no exit probe points: {note}", f.name);
        }
    }
    for name in &b.absent {
        let _ = writeln!(out, "{name} absent: not linked into this binary");
    }
    out
}

fn version_source(s: VersionSource) -> &'static str {
    match s {
        VersionSource::Buildinfo => ".go.buildinfo",
        VersionSource::BuildVersion => "the runtime.buildVersion string",
        VersionSource::PclntabFormat => "the .gopclntab header format",
    }
}

fn build_flags(b: &GoBinary) -> String {
    let arch = match b.arch {
        crate::gobin::elf::Arch::X86_64 => "x86-64",
        crate::gobin::elf::Arch::Aarch64 => "arm64",
    };
    let mut flags = vec![arch];
    flags.push(if b.pie { "pie" } else { "not pie" });
    flags.push(if b.stripped { "stripped" } else { "symbols" });
    flags.push(if b.dwarf { "dwarf" } else { "no dwarf" });
    if b.cgo {
        flags.push("cgo");
    }
    if b.race {
        flags.push("race");
    }
    if !b.section_headers {
        flags.push("no section headers");
    }
    flags.join(", ")
}

fn source_name(source: LayoutSource) -> &'static str {
    match source {
        LayoutSource::Dwarf => "DWARF",
        LayoutSource::MachineCode => "the machine code of runtime/pprof.runtime_setProfLabel",
        LayoutSource::VersionTable => "the table of Go releases",
    }
}

/// Where the program dies of map misuse.
fn fatal_line(b: &GoBinary) -> String {
    let Some(f) = &b.fatal else {
        return "runtime.fatal not found".into();
    };
    let how = if f.emulated {
        "emulated"
    } else {
        "single-stepped"
    };
    let maps = match f.maps_fatal_calls_it {
        Some(true) => ", called by internal/runtime/maps.fatal",
        Some(false) => ", NOT called by internal/runtime/maps.fatal",
        None => "",
    };
    format!(
        "runtime.fatal at {:#x} (file offset {:#x}), first instruction `{}` ({how}){maps}",
        f.address, f.file_offset, f.first_instruction
    )
}

/// Where goroutine labels are read, or why they are not.
fn labels_line(b: &GoBinary) -> String {
    use crate::gobin::labels::LabelStore;
    match &b.labels {
        Some(l) => format!(
            "g.labels at g+{}, {} (from {})",
            l.offset,
            match l.store {
                LabelStore::Map => "a map[string]string",
                LabelStore::Slice => "a sorted slice of key/value strings",
            },
            source_name(l.source)
        ),
        None if b.functions.is_empty() => "-".into(),
        None => "none: runtime/pprof is not linked (no goroutine can have labels), or its offset is unknown".into(),
    }
}
