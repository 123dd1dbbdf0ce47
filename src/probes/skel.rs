//! The libbpf-cargo skeleton generated from `bpf/mdt.bpf.c` by `build.rs`
//! (`$OUT_DIR/mdt.skel.rs`). Its `types` module is the Rust mirror of
//! `bpf/mdt.h`, generated from the BPF object's BTF
//! (`mdt::probes::skel::types::mdt_event`, `...::mdt_config`, ...).
//!
//! Generated code: lints that would only flag the generator are allowed.
#![allow(
    missing_docs,
    unsafe_code,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks
)]

include!(concat!(env!("OUT_DIR"), "/mdt.skel.rs"));
