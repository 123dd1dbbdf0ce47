//! Compiles `bpf/mdt.bpf.c` into a CO-RE BPF object and generates its Rust
//! skeleton (`$OUT_DIR/mdt.skel.rs`) with libbpf-cargo.
//!
//! Include paths: libbpf-cargo itself extracts the libbpf headers that
//! libbpf-sys vendors (`bpf/bpf_helpers.h`, `bpf/bpf_tracing.h`,
//! `bpf/bpf_core_read.h`, ...) to a temporary directory and passes it with
//! `-I`; it also adds `-D__TARGET_ARCH_<arch>` (from CARGO_CFG_TARGET_ARCH),
//! `-g -O2 -target bpf` and `-fno-stack-protector`. We only add `-I bpf`
//! for `vmlinux.h` and `mdt.h`.

use std::env;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{self, Command};

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/mdt.bpf.c";
const HEADERS: &[&str] = &["bpf/mdt.h", "bpf/vmlinux.h"];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let clang = env::var_os("CLANG").unwrap_or_else(|| OsString::from("clang"));

    println!("cargo:rerun-if-changed={SRC}");
    for h in HEADERS {
        println!("cargo:rerun-if-changed={h}");
    }
    println!("cargo:rerun-if-env-changed=CLANG");

    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" {
        fail(&format!(
            "the BPF program is only written for x86_64 so far (target arch is `{arch}`): \
             bpf/vmlinux.h and the register macros in bpf/mdt.bpf.c are x86-64 only"
        ));
    }

    // A clear message instead of libbpf-cargo's "failed to execute `clang`".
    match Command::new(&clang).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => fail(&format!(
            "`{} --version` failed ({}): {}",
            clang.to_string_lossy(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => fail(&format!(
            "cannot run `{}` ({e}). Building mdt needs clang (>= 11) with the BPF target to \
             compile {SRC}: install it (Debian/Ubuntu: `apt-get install clang`) or set CLANG=/path/to/clang",
            clang.to_string_lossy()
        )),
    }

    let bpf_include = manifest_dir.join("bpf");
    let skel = out_dir.join("mdt.skel.rs");
    let args: Vec<OsString> = vec!["-I".into(), bpf_include.into_os_string()];

    if let Err(e) = SkeletonBuilder::new()
        .source(manifest_dir.join(SRC))
        .obj(out_dir.join("mdt.bpf.o"))
        .clang(&clang)
        .clang_args(args)
        .build_and_generate(&skel)
    {
        fail(&format!(
            "building the BPF skeleton from {SRC} failed: {e:#}"
        ));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    println!("cargo:warning={msg}");
    process::exit(1);
}
