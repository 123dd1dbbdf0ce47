//! Helpers shared by the integration tests: the Go toolchain matrix, fixture builds (cached),
//! ground truth from `fixtures/truth`, and the root/BPF gate.
//!
//! Use from a test file with `mod common;`. Child processes (own process group, pipes
//! collected, killed on drop): [`proc::Proc`].
//!
//! * Toolchains come from `MDT_GO_VERSIONS` (`default` = 1.19 1.23 1.24 1.27, `all`, or a
//!   space/comma list of short versions); `scripts/go-toolchains.sh` is run once per process (it
//!   is fast when everything is installed) so that a bare `cargo test` works.
//! * Fixtures are built into `target/fixtures/<go-short>/<variant>/<name>`, cached by a hash of
//!   their sources + toolchain + flags (`<name>.stamp`), under a per-output file lock so that
//!   several test threads and test binaries can ask for the same build at once.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

pub mod parallel;
pub mod proc;

/// Bump when the build recipe changes in a way the hash below does not see.
const RECIPE_VERSION: &str = "mdt-fixture-recipe-1";

pub const DEFAULT_VERSIONS: &[&str] = &["1.19", "1.23", "1.24", "1.27"];
pub const ALL_VERSIONS: &[&str] = &[
    "1.19", "1.21", "1.22", "1.23", "1.24", "1.25", "1.26", "1.27",
];

// ---------------------------------------------------------------------------------------------
// Paths, environment

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$CARGO_TARGET_DIR` (relative to the repo root if relative) or `<repo>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => repo_root().join(d),
        _ => repo_root().join("target"),
    }
}

/// `CI=true` (or `1`) in the environment.
pub fn is_ci() -> bool {
    matches!(
        std::env::var("CI")
            .map(|v| v.to_ascii_lowercase())
            .as_deref(),
        Ok("true") | Ok("1")
    )
}

/// Write a line to the real stderr, bypassing the test harness's output capture (for SKIP
/// lines and timings that should be seen in a plain `cargo test`).
pub fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Locks

/// An exclusive `flock(2)` on a file, released on drop. Excludes other processes and other
/// threads of this process (each acquire opens its own file description).
pub struct FileLock(File);

impl FileLock {
    pub fn acquire(path: &Path) -> FileLock {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open lock file {}: {e}", path.display()));
        loop {
            // SAFETY: plain syscall on a file descriptor we own.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return FileLock(f);
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                panic!("flock {}: {err}", path.display());
            }
        }
    }
}

/// At most this many `go build`s at once in this process (the machine has 2 cores).
const MAX_PARALLEL_GO_BUILDS: usize = 2;

struct Semaphore {
    used: Mutex<usize>,
    cv: Condvar,
}

struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    fn acquire(&self) -> Permit<'_> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used >= MAX_PARALLEL_GO_BUILDS {
            used = self.cv.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.used.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.cv.notify_one();
    }
}

fn build_slots() -> &'static Semaphore {
    static S: OnceLock<Semaphore> = OnceLock::new();
    S.get_or_init(|| Semaphore {
        used: Mutex::new(0),
        cv: Condvar::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// Toolchains

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    /// "1.24"
    pub short: String,
    /// 24
    pub minor: u32,
    /// `<repo>/.cache/go/1.24/bin/go`
    pub go: PathBuf,
    /// What `go version` says: "go1.24.11"
    pub version: String,
}

impl Toolchain {
    /// `go1.<minor>` or newer.
    pub fn at_least(&self, minor: u32) -> bool {
        self.minor >= minor
    }

    /// The variants this toolchain can build (NoSwiss only for 1.24 and 1.25).
    pub fn variants(&self) -> Vec<Variant> {
        Variant::ALL
            .iter()
            .copied()
            .filter(|v| v.supported_by(self))
            .collect()
    }

    /// Whether a build of this variant uses Swiss-table maps (`internal/runtime/maps`).
    pub fn swiss(&self, variant: Variant) -> bool {
        self.minor >= 24 && variant != Variant::NoSwiss
    }

    /// `runtime.Version()` of a binary of this variant ("go1.24.11 X:noswissmap" for NoSwiss).
    pub fn runtime_version(&self, variant: Variant) -> String {
        if variant == Variant::NoSwiss {
            format!("{} X:noswissmap", self.version)
        } else {
            self.version.clone()
        }
    }

    /// The `go` line of the go.mod written for fixtures.
    pub fn go_mod_version(&self) -> &'static str {
        if self.minor >= 21 {
            "1.21"
        } else {
            "1.19"
        }
    }
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "go{}", self.short)
    }
}

/// Parse a version set with the semantics of `scripts/go-toolchains.sh`: `default`, `all`, or a
/// space/comma separated list of short versions (a full version such as 1.24.11 is shortened).
pub fn parse_versions(spec: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in spec
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
    {
        let list: Vec<String> = match word {
            "default" => DEFAULT_VERSIONS.iter().map(|s| s.to_string()).collect(),
            "all" => ALL_VERSIONS.iter().map(|s| s.to_string()).collect(),
            w => {
                let w = w.trim_start_matches("go");
                let short: Vec<&str> = w.split('.').take(2).collect();
                let short = short.join(".");
                assert!(
                    ALL_VERSIONS.contains(&short.as_str()),
                    "MDT_GO_VERSIONS: unknown Go version {word:?} (known: {ALL_VERSIONS:?}, default, all)"
                );
                vec![short]
            }
        };
        for v in list {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// The short versions asked for by `MDT_GO_VERSIONS` (unset or empty: `default`).
pub fn requested_versions() -> Vec<String> {
    let spec = std::env::var("MDT_GO_VERSIONS").unwrap_or_default();
    if spec.trim().is_empty() {
        parse_versions("default")
    } else {
        parse_versions(&spec)
    }
}

/// Make sure `.cache/go/<short>/bin/go` exists for each version, running
/// `scripts/go-toolchains.sh` (at most once per version per process, under a file lock).
/// 1.19 is always included: `fixtures/truth` is built with it.
pub fn ensure_toolchains(shorts: &[String]) {
    static DONE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let done = DONE.get_or_init(|| Mutex::new(HashSet::new()));
    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
    let mut want: Vec<String> = Vec::new();
    for v in std::iter::once("1.19".to_string()).chain(shorts.iter().cloned()) {
        if !done.contains(&v) && !want.contains(&v) {
            want.push(v);
        }
    }
    if want.is_empty() {
        return;
    }
    let root = repo_root();
    let _lock = FileLock::acquire(&root.join(".cache/go/.harness.lock"));
    let out = Command::new("bash")
        .arg(root.join("scripts/go-toolchains.sh"))
        .args(&want)
        .env_remove("MDT_GO_VERSIONS")
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/go-toolchains.sh");
    assert!(
        out.status.success(),
        "scripts/go-toolchains.sh {} failed ({}):\n{}{}",
        want.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    done.extend(want);
}

fn load_toolchain(short: &str) -> Toolchain {
    let go = repo_root().join(".cache/go").join(short).join("bin/go");
    let out = Command::new(&go)
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{} version: {e}", go.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    // "go version go1.24.11 linux/amd64"
    let version = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("unexpected `go version` output: {text:?}"))
        .to_string();
    let minor = short
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .expect("short version 1.N");
    Toolchain {
        short: short.to_string(),
        minor,
        go,
        version,
    }
}

/// One toolchain by short version ("1.24"), installed if needed.
pub fn toolchain(short: &str) -> Toolchain {
    static CACHE: OnceLock<Mutex<HashMap<String, Toolchain>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(tc) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(short) {
        return tc.clone();
    }
    ensure_toolchains(&[short.to_string()]);
    let tc = load_toolchain(short);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(short.to_string(), tc.clone());
    tc
}

/// The toolchains of the matrix (`MDT_GO_VERSIONS`), installed if needed, oldest first.
pub fn toolchains() -> Vec<Toolchain> {
    let versions = requested_versions();
    ensure_toolchains(&versions);
    versions.iter().map(|v| toolchain(v)).collect()
}

/// Every (toolchain, variant) pair of the matrix.
pub fn matrix() -> Vec<(Toolchain, Variant)> {
    toolchains()
        .into_iter()
        .flat_map(|tc| tc.variants().into_iter().map(move |v| (tc.clone(), v)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Variants

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// `CGO_ENABLED=0`
    Plain,
    /// `CGO_ENABLED=0 -ldflags='-s -w'`: no ELF symbols, no DWARF.
    Strip,
    /// `CGO_ENABLED=0 -buildmode=pie`
    Pie,
    /// `CGO_ENABLED=1 -tags mdtcgo`: dynamically linked, externally linked C code.
    Cgo,
    /// `CGO_ENABLED=1 -race`
    Race,
    /// The Strip build with `e_shoff`, `e_shnum`, `e_shstrndx` zeroed (like sstrip).
    NoSectionHeaders,
    /// `GOEXPERIMENT=noswissmap` (1.24 and 1.25 only): the old hmap maps.
    NoSwiss,
}

impl Variant {
    pub const ALL: [Variant; 7] = [
        Variant::Plain,
        Variant::Strip,
        Variant::Pie,
        Variant::Cgo,
        Variant::Race,
        Variant::NoSectionHeaders,
        Variant::NoSwiss,
    ];

    /// Directory name under `target/fixtures/<go>/`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Strip => "strip",
            Variant::Pie => "pie",
            Variant::Cgo => "cgo",
            Variant::Race => "race",
            Variant::NoSectionHeaders => "no-section-headers",
            Variant::NoSwiss => "noswiss",
        }
    }

    pub fn supported_by(self, tc: &Toolchain) -> bool {
        match self {
            Variant::NoSwiss => tc.minor == 24 || tc.minor == 25,
            _ => true,
        }
    }

    /// No `.symtab` / DWARF in the binary.
    pub fn is_stripped(self) -> bool {
        matches!(self, Variant::Strip | Variant::NoSectionHeaders)
    }

    /// Built with `CGO_ENABLED=1` (dynamically linked against libc).
    pub fn cgo_enabled(self) -> bool {
        matches!(self, Variant::Cgo | Variant::Race)
    }

    /// Environment variables and `go build` arguments of this variant (not NoSectionHeaders,
    /// which is a post-processed Strip build).
    pub fn go_build_flags(self) -> (Vec<(&'static str, &'static str)>, Vec<&'static str>) {
        match self {
            Variant::Plain => (vec![("CGO_ENABLED", "0")], vec![]),
            Variant::Strip | Variant::NoSectionHeaders => {
                (vec![("CGO_ENABLED", "0")], vec!["-ldflags=-s -w"])
            }
            Variant::Pie => (vec![("CGO_ENABLED", "0")], vec!["-buildmode=pie"]),
            Variant::Cgo => (vec![("CGO_ENABLED", "1")], vec!["-tags", "mdtcgo"]),
            Variant::Race => (vec![("CGO_ENABLED", "1")], vec!["-race"]),
            Variant::NoSwiss => (
                vec![("CGO_ENABLED", "0"), ("GOEXPERIMENT", "noswissmap")],
                vec![],
            ),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The build of the same source whose symbol table is the ground truth for `variant`
/// (Strip and NoSectionHeaders → Plain; the others have their own symbols).
pub fn unstripped_twin(variant: Variant) -> Variant {
    match variant {
        Variant::Strip | Variant::NoSectionHeaders => Variant::Plain,
        v => v,
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture builds

/// 128-bit FNV-1a (two 64-bit lanes), hex. Stable across Rust versions, unlike DefaultHasher.
#[derive(Clone)]
struct Fnv(u64, u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf29ce484222325, 0x84222325cbf29ce4)
    }
    fn bytes(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100000001b3);
            self.1 = (self.1 ^ b as u64)
                .wrapping_mul(0x100000001b3)
                .rotate_left(5);
        }
    }
    /// Length-prefixed, so that concatenations can't collide.
    fn field(&mut self, data: &[u8]) {
        self.bytes(&(data.len() as u64).to_le_bytes());
        self.bytes(data);
    }
    fn hex(&self) -> String {
        format!("{:016x}{:016x}", self.0, self.1)
    }
}

/// Regular files under `dir`, relative paths, sorted (go.mod/go.sum excluded: the harness writes go.mod).
fn source_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for e in entries {
            let e = e.expect("read_dir entry");
            let p = e.path();
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                walk(base, &p, out);
            } else if ft.is_file() {
                let rel = p.strip_prefix(base).expect("prefix").to_path_buf();
                let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name != "go.mod" && name != "go.sum" {
                    out.push(rel);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `target/fixtures/<go-short>/<variant>/`
pub fn fixture_dir(tc: &Toolchain, variant: Variant) -> PathBuf {
    target_dir()
        .join("fixtures")
        .join(&tc.short)
        .join(variant.name())
}

fn read_stamp(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Write `data` to `path` atomically (temp file in the same directory, then rename).
fn write_atomic(path: &Path, data: &[u8], mode: u32) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp.{}.{:?}",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id(),
        std::thread::current().id()
    ));
    {
        let mut f = File::create(&tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
        f.write_all(data)
            .unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        f.sync_all().ok();
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).expect("chmod");
    fs::rename(&tmp, path)
        .unwrap_or_else(|e| panic!("rename {} -> {}: {e}", tmp.display(), path.display()));
}

/// Every toolchain's plain build, and the noswissmap builds (classic maps on 1.24, 1.25).
pub fn plain_and_noswiss_jobs() -> Vec<(Toolchain, Variant)> {
    let mut jobs = Vec::new();
    for tc in toolchains() {
        for v in [Variant::Plain, Variant::NoSwiss] {
            if v.supported_by(&tc) {
                jobs.push((tc.clone(), v));
            }
        }
    }
    jobs
}

/// Runs `f` for every (toolchain, variant) job, on `MDT_TRACE_TEST_THREADS` threads (6 by
/// default): [`parallel::run_all`], each job labelled `go1.24 plain`.
pub fn for_jobs(
    test: &str,
    jobs: Vec<(Toolchain, Variant)>,
    f: impl Fn(&Toolchain, Variant) + Sync,
) {
    let workers = parallel::workers_from_env("MDT_TRACE_TEST_THREADS", 6);
    parallel::run_all(
        test,
        &jobs,
        workers,
        |(tc, v)| format!("{tc} {v}"),
        |(tc, v)| f(tc, *v),
    );
}

/// Build `fixtures/<name>` with `tc` as `variant`, returning the path of the executable,
/// `target/fixtures/<go-short>/<variant>/<name>`. Cached: rebuilt only when the sources, the
/// toolchain or the flags change. Safe to call concurrently from threads and processes.
pub fn build_fixture(name: &str, tc: &Toolchain, variant: Variant) -> PathBuf {
    assert!(
        variant.supported_by(tc),
        "{variant} is not supported by {tc}"
    );
    type Memo = Mutex<HashMap<(String, String, Variant), PathBuf>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let memo = MEMO.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (name.to_string(), tc.short.clone(), variant);
    if let Some(p) = memo.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return p.clone();
    }
    let path = if variant == Variant::NoSectionHeaders {
        build_no_section_headers(name, tc)
    } else {
        go_build(name, tc, variant)
    };
    memo.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, path.clone());
    path
}

fn go_build(name: &str, tc: &Toolchain, variant: Variant) -> PathBuf {
    let root = repo_root();
    let src = root.join("fixtures").join(name);
    assert!(src.is_dir(), "no fixture {}", src.display());
    let files = source_files(&src);
    let go_mod = format!("module mdtfixture\n\ngo {}\n", tc.go_mod_version());
    let (envs, args) = variant.go_build_flags();

    let mut h = Fnv::new();
    h.field(RECIPE_VERSION.as_bytes());
    h.field(name.as_bytes());
    h.field(tc.version.as_bytes());
    h.field(variant.name().as_bytes());
    for (k, v) in &envs {
        h.field(k.as_bytes());
        h.field(v.as_bytes());
    }
    for a in &args {
        h.field(a.as_bytes());
    }
    h.field(go_mod.as_bytes());
    for f in &files {
        h.field(f.to_string_lossy().as_bytes());
        h.field(&fs::read(src.join(f)).unwrap_or_else(|e| panic!("read {}: {e}", f.display())));
    }
    let hash = h.hex();

    let dir = fixture_dir(tc, variant);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let out = dir.join(name);
    let stamp = dir.join(format!("{name}.stamp"));
    let _lock = FileLock::acquire(&dir.join(format!("{name}.lock")));
    if out.is_file() && read_stamp(&stamp).as_deref() == Some(hash.as_str()) {
        return out;
    }

    // A stable source directory per output: file paths in the binary (pclntab, DWARF) stay the
    // same from one build to the next.
    let build_src = dir.join(format!("{name}.src"));
    if build_src.exists() {
        fs::remove_dir_all(&build_src)
            .unwrap_or_else(|e| panic!("rm {}: {e}", build_src.display()));
    }
    for f in &files {
        let to = build_src.join(f);
        fs::create_dir_all(to.parent().unwrap()).expect("mkdir");
        fs::copy(src.join(f), &to).unwrap_or_else(|e| panic!("copy {}: {e}", f.display()));
    }
    fs::write(build_src.join("go.mod"), &go_mod).expect("write go.mod");

    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let cache = root.join(".cache");
    let mut cmd = Command::new(&tc.go);
    cmd.current_dir(&build_src)
        .arg("build")
        .arg("-buildvcs=false")
        .args(&args)
        .arg("-o")
        .arg(&tmp)
        .arg(".")
        .stdin(Stdio::null());
    for k in [
        "GOROOT",
        "GOOS",
        "GOARCH",
        "GOAMD64",
        "GOEXPERIMENT",
        "GOFLAGS",
        "GOWORK",
        "GOBIN",
        "CGO_CFLAGS",
        "CGO_LDFLAGS",
        "GODEBUG",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", cache.join("gocache"))
        .env("GOPATH", cache.join("gopath"))
        .env("GOMODCACHE", cache.join("gopath/pkg/mod"))
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GO111MODULE", "on")
        .env("GOENV", "off")
        .env("GOWORK", "off");
    for (k, v) in &envs {
        cmd.env(k, v);
    }
    let output = {
        let _permit = build_slots().acquire();
        cmd.output()
            .unwrap_or_else(|e| panic!("run {}: {e}", tc.go.display()))
    };
    if !output.status.success() {
        let _ = fs::remove_file(&tmp);
        panic!(
            "building fixture {name} with {} ({variant}) failed ({}):\n{}{}",
            tc.version,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    fs::rename(&tmp, &out)
        .unwrap_or_else(|e| panic!("rename {} -> {}: {e}", tmp.display(), out.display()));
    write_atomic(&stamp, format!("{hash}\n").as_bytes(), 0o644);
    out
}

/// ELF64 little-endian header offsets of the section header table fields.
const E_SHOFF: usize = 0x28;
const E_SHNUM: usize = 0x3c;
const E_SHSTRNDX: usize = 0x3e;

fn build_no_section_headers(name: &str, tc: &Toolchain) -> PathBuf {
    let strip = build_fixture(name, tc, Variant::Strip);
    let strip_hash = read_stamp(&fixture_dir(tc, Variant::Strip).join(format!("{name}.stamp")))
        .expect("stamp of the strip build");
    let mut h = Fnv::new();
    h.field(RECIPE_VERSION.as_bytes());
    h.field(b"no-section-headers");
    h.field(strip_hash.as_bytes());
    let hash = h.hex();

    let dir = fixture_dir(tc, Variant::NoSectionHeaders);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let out = dir.join(name);
    let stamp = dir.join(format!("{name}.stamp"));
    let _lock = FileLock::acquire(&dir.join(format!("{name}.lock")));
    if out.is_file() && read_stamp(&stamp).as_deref() == Some(hash.as_str()) {
        return out;
    }
    let mut data = fs::read(&strip).unwrap_or_else(|e| panic!("read {}: {e}", strip.display()));
    assert!(
        data.len() > 0x40 && &data[..4] == b"\x7fELF" && data[4] == 2 && data[5] == 1,
        "{} is not an ELF64 little-endian file",
        strip.display()
    );
    data[E_SHOFF..E_SHOFF + 8].fill(0);
    data[E_SHNUM..E_SHNUM + 2].fill(0);
    data[E_SHSTRNDX..E_SHSTRNDX + 2].fill(0);
    write_atomic(&out, &data, 0o755);
    write_atomic(&stamp, format!("{hash}\n").as_bytes(), 0o644);
    out
}

// ---------------------------------------------------------------------------------------------
// Running fixtures

/// Spawn and wait, retrying a few times on ETXTBSY (a freshly written executable can still be
/// held open for writing by a child that another test thread forked and that has not exec'd yet).
pub fn output_retrying(cmd: &mut Command) -> Output {
    retry_etxtbsy(|| cmd.output()).unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()))
}

/// Spawn, retrying on ETXTBSY like [`output_retrying`]; panics naming `what`.
pub fn spawn_retrying(cmd: &mut Command, what: &str) -> std::process::Child {
    retry_etxtbsy(|| cmd.spawn())
        .unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", cmd.get_program()))
}

/// Runs `f` again (up to 50 times, 20 ms apart) while it fails with ETXTBSY.
fn retry_etxtbsy<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 50 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// Run a fixture binary with `args` (stdin from /dev/null), returning its output.
pub fn run_fixture(bin: &Path, args: &[&str]) -> Output {
    output_retrying(Command::new(bin).args(args).stdin(Stdio::null()))
}

/// Read a JSON-lines file (the deletes fixture's `-expect` output).
pub fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("bad JSON line in {}: {e}: {l}", path.display()))
        })
        .collect()
}

/// (deletes, clears) that one run of the `deletes` fixture records with `-repeat repeat`
/// (see fixtures/deletes/README.md).
pub fn expected_deletes(tc: &Toolchain, variant: Variant, repeat: usize) -> (usize, usize) {
    let (mut deletes, mut clears) = (38, 1);
    if tc.at_least(21) {
        deletes += 4; // maps.DeleteFunc: 2 + 2
        clears += 3; // clear, clear on an empty map, reflect.Value.Clear
    }
    if variant == Variant::Cgo {
        deletes += 1; // the delete from a cgo callback
    }
    if variant == Variant::Race {
        // the range-delete idiom stays a loop of 4 deletes instead of one mapclear
        deletes += 4;
        clears -= 1;
    }
    (deletes * repeat, clears * repeat)
}

/// The stdout of one run of the `deletes` fixture (deterministic).
pub fn expected_deletes_stdout(tc: &Toolchain, variant: Variant, repeat: usize) -> String {
    let (d, c) = expected_deletes(tc, variant, repeat);
    format!(
        "fixture deletes: {} race={} cgo={}\ndeletes done: {d}\nclears done: {c}\n",
        tc.runtime_version(variant),
        variant == Variant::Race,
        variant == Variant::Cgo
    )
}

// ---------------------------------------------------------------------------------------------
// Ground truth

/// `fixtures/truth`, built once with the Go 1.19 toolchain.
pub fn truth_binary() -> PathBuf {
    build_fixture("truth", &toolchain("1.19"), Variant::Plain)
}

/// Ground truth for `binary` from Go's debug/elf + debug/dwarf, for the map-delete functions of
/// every Go version. See fixtures/truth/main.go for the fields (`funcs`, `missing`,
/// `goid_offset`, `map_count_offset`, `interp`, `needed`, `go_version`, ...).
pub fn truth(binary: &Path) -> serde_json::Value {
    truth_funcs(binary, &[])
}

/// Like [`truth`], for the given function names (exact `.symtab` names).
pub fn truth_funcs(binary: &Path, funcs: &[&str]) -> serde_json::Value {
    let out = output_retrying(
        Command::new(truth_binary())
            .arg(binary)
            .args(funcs)
            .stdin(Stdio::null()),
    );
    assert!(
        out.status.success(),
        "truth {} failed ({}): {}",
        binary.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("truth prints JSON")
}

/// Whether the ELF file has a PT_INTERP program header (i.e. is dynamically linked).
pub fn elf_has_interp(path: &Path) -> bool {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        data.len() >= 0x40 && &data[..4] == b"\x7fELF" && data[4] == 2 && data[5] == 1,
        "not ELF64 LE"
    );
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= data.len() && u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) == 3
        /* PT_INTERP */
    })
}

// ---------------------------------------------------------------------------------------------
// Root / BPF gate

/// Why BPF uprobe tests can't run here, or None if they can: needs root, a working bpf(2),
/// BTF (`/sys/kernel/btf/vmlinux`) and uprobe support.
pub fn bpf_unavailable_reason() -> Option<String> {
    // SAFETY: trivial syscalls.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("kernel without BTF (/sys/kernel/btf/vmlinux missing)".into());
    }
    if !Path::new("/sys/bus/event_source/devices/uprobe").exists() {
        return Some(
            "kernel without uprobe events (/sys/bus/event_source/devices/uprobe missing)".into(),
        );
    }
    // BPF_MAP_CREATE of a 1-entry array map: proves bpf(2) is allowed.
    #[repr(C)]
    struct MapCreateAttr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        pad: [u32; 27],
    }
    let attr = MapCreateAttr {
        map_type: 2,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        map_flags: 0,
        pad: [0; 27],
    };
    // SAFETY: attr is a valid, fully initialized bpf_attr prefix of the size we pass.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            0, /* BPF_MAP_CREATE */
            &attr as *const _,
            std::mem::size_of::<MapCreateAttr>(),
        )
    };
    if fd < 0 {
        return Some(format!(
            "bpf(BPF_MAP_CREATE) failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fd was just returned by the kernel and is ours.
    unsafe { libc::close(fd as i32) };
    None
}

/// Gate for tests that need root and BPF: true if they can run. Otherwise panics when CI=true
/// (CI must run them), else prints a SKIP line (to the real stderr) and returns false.
pub fn require_root_bpf() -> bool {
    match bpf_unavailable_reason() {
        None => true,
        Some(reason) => {
            let test = std::thread::current().name().unwrap_or("?").to_string();
            if is_ci() {
                panic!("{test}: needs root and BPF, but {reason} (CI=true, so this is a failure)");
            }
            note(&format!("SKIP {test}: needs root and BPF: {reason}"));
            false
        }
    }
}

/// The ports `free_port` hands out: below the kernel's ephemeral range (32768–60999 by
/// default), which outgoing connections take their source ports from.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port nobody listens on right now, for a server a test starts. Not one the kernel
/// picks (`bind :0`): between this check and the server's own bind, a port of the ephemeral
/// range can become the source port of any connection (the tests' own HTTP requests), and the
/// server then fails with "Address already in use". Distinct within a test binary; test
/// binaries start at different places.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let i = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = TEST_PORTS.start + i as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {TEST_PORTS:?}");
}

/// A scratch directory under `target/tmp/`, named after the test binary and
/// `tag`; removed when the test passes, kept for inspection when it fails.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "test".into());
        let binary = binary.split('-').next().unwrap_or("test").to_string();
        let dir = target_dir().join("tmp").join(format!(
            "{binary}-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// A process's peak resident set (`VmHWM`) in KiB; None once it has exited.
pub fn peak_rss_kib(pid: i32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A private link to (or copy of) the mdt under test, in `target/tmp/TAG-bin` (the tag of the
/// first call): other builds sharing the target directory may replace `target/debug/mdt` while
/// the tests run. One per test process.
pub fn private_mdt(tag: &str) -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = target_dir().join("tmp").join(format!("{tag}-bin"));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        // Copies left by earlier test processes that are gone.
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("mdt-") {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let copy = dir.join(format!("mdt-{}", std::process::id()));
        let tmp = dir.join(format!(".mdt-{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        // A hard link keeps this build's file even when cargo replaces target/debug/mdt (it
        // writes a new file); a copy where linking is not possible. Retried: a concurrent build
        // may be replacing it right now.
        let src = Path::new(env!("CARGO_BIN_EXE_mdt"));
        for attempt in 0.. {
            match fs::hard_link(src, &tmp).or_else(|_| fs::copy(src, &tmp).map(|_| ())) {
                Ok(()) => break,
                Err(_) if attempt < 100 => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => panic!("copy {}: {e}", src.display()),
            }
        }
        fs::rename(&tmp, &copy).unwrap();
        copy
    })
}

/// A copy of `bin` with every occurrence of its version string replaced by `fake` (same length).
pub fn patched_version_copy(bin: &Path, real: &str, fake: &str, dest: &Path) {
    assert_eq!(real.len(), fake.len());
    let mut data = fs::read(bin).unwrap();
    let mut n = 0;
    let mut i = 0;
    while let Some(pos) = data[i..]
        .windows(real.len())
        .position(|w| w == real.as_bytes())
    {
        let at = i + pos;
        data[at..at + real.len()].copy_from_slice(fake.as_bytes());
        n += 1;
        i = at + real.len();
    }
    assert!(n > 0, "{real} not found in {}", bin.display());
    fs::write(dest, &data).unwrap();
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755)).unwrap();
}
