//! The command line. Kept free of logic so that the man page and the shell
//! completions (generated from [`command`]) always match what `mdt` accepts.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

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
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The Go executable to read.
    #[arg(value_name = "BINARY", required_unless_present = "pid", conflicts_with = "pid")]
    pub binary: Option<PathBuf>,

    /// Read the executable of this running process (through /proc/PID/exe).
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<i32>,

    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// The clap command, for the man page and the completion generators.
pub fn command() -> clap::Command {
    Cli::command()
}
