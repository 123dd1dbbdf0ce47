//! mdt: who deletes what from which Go map, how often, and from where.
//!
//! The modules follow the pipeline, in order:
//!
//! - [`cli`]: the command line (also feeds the man page and completions);
//! - [`target`]: find the process to trace (a pid, or a command to launch);
//! - [`gobin`]: read the Go binary (version, map functions, offsets);
//! - [`probes`]: load the BPF object and attach the uprobes;
//! - [`events`]: decode what the probes report into the one event model;
//! - [`symbolize`]: name stack addresses and map types;
//! - [`sinks`]: where events go (JSON lines, text, ...);
//! - [`session`]: runs the pipeline for a target until it stops;
//! - [`commands`]: one module per subcommand, wiring the stages together.

pub mod bounded;
pub mod cli;
pub mod commands;
pub mod decode;
pub mod docs;
pub mod events;
pub mod gobin;
pub mod monitor;
pub mod output;
pub mod probes;
pub mod session;
pub mod symbolize;
pub mod target;
pub mod tui;
