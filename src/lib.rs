//! mdt: who deletes what from which Go map, how often, and from where.
//!
//! The modules follow the pipeline, each importing only from the ones
//! listed before it:
//!
//! - [`bounded`]: the bounded caches and the one hasher every table uses;
//! - [`process`]: the process to trace (a pid, or a command to launch), its
//!   memory and its exit;
//! - [`gobin`]: read the Go binary (version, map functions, offsets, the
//!   Go ABI facts the probes depend on);
//! - [`events`]: the one event model every output reads (events, stacks,
//!   keys, the summary);
//! - [`probes`]: load the BPF object, attach the uprobes, read the counters
//!   and the records;
//! - [`symbolize`]: name stack addresses and map types;
//! - [`decode`]: turn the probes' records into events;
//! - [`mapmem`]: read the capacity and bytes of the maps deleted from,
//!   from the target's memory;
//! - [`forensics`]: when the target dies of a fatal error, who was racing
//!   (what its other threads ran, the deletes just before);
//! - [`output`]: where records go (JSON lines, text, flame graphs);
//! - [`session`]: runs the pipeline for a target until it stops;
//! - [`monitor`]: metrics and alerts, observers of the exact counts;
//! - [`tui`]: the terminal UI, which drives a session;
//! - [`cli`], [`commands`], [`docs`]: the command line, one module per
//!   subcommand, and the man pages and completions made from it.

pub mod bounded;
pub mod cli;
pub mod commands;
pub mod decode;
pub mod docs;
pub mod events;
pub mod forensics;
pub mod gobin;
pub mod mapmem;
pub mod monitor;
pub mod output;
pub mod probes;
pub mod process;
pub mod session;
pub mod symbolize;
pub mod tui;
