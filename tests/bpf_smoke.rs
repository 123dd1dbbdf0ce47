//! End-to-end smoke test of the BPF program: build a tiny Go program that
//! deletes N keys from a `map[int64]int`, attach `mdt_map_delete` to its
//! `runtime.mapdelete_fast64` by file offset, and check the exact hit count
//! and every event.
//!
//! The probe sits on the first instruction after the stack-check branch, not
//! on the symbol: an entry probe fires twice whenever the prologue diverts to
//! morestack -- not only on stack growth but also on every preemption
//! request (the scheduler and the GC poison stackguard0), so even this
//! non-recursive program saw 1001-1002 entry hits for 1000 calls.
//!
//! Needs root, BPF + uprobes, and Go 1.19 at `/usr/lib/go-1.19/bin/go`
//! (override with `MDT_TEST_GO=/path/to/go`). Without them the test is
//! skipped -- unless `CI=true`, where it fails instead.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdt::probes::skel::types::mdt_event_flags;
use mdt::probes::{EventReader, MdtEvent, ProbeConfig, ProbeKind, Probes};
use object::{Object, ObjectSegment, ObjectSymbol};

const N: i64 = 1000;

/// Deletes keys 0..N-1, one `delete` per call of `del`, after `argv[1]`
/// exists. Nothing recurses, so the entry probe fires once per call.
const GO_MAIN: &str = r#"package main

import (
	"os"
	"strconv"
	"time"
)

//go:noinline
func del(m map[int64]int, k int64) {
	delete(m, k)
}

func main() {
	n, _ := strconv.ParseInt(os.Args[2], 10, 64)
	m := make(map[int64]int, n)
	for i := int64(0); i < n; i++ {
		m[i] = int(i)
	}
	for {
		if _, err := os.Stat(os.Args[1]); err == nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	for i := int64(0); i < n; i++ {
		del(m, i)
	}
	if len(m) != 0 {
		os.Exit(3)
	}
}
"#;

/// goid offset in runtime.g for Go 1.19 (see docs/go-runtime.md).
const GOID_OFFSET_GO119: u32 = 152;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (returns) outside CI, panics in CI.
fn unavailable(why: &str) {
    if in_ci() {
        panic!("bpf_smoke cannot run under CI=true: {why}");
    }
    eprintln!("SKIPPED bpf_smoke: {why}");
}

fn go_tool() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MDT_TEST_GO") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from("/usr/lib/go-1.19/bin/go");
    p.exists().then_some(p)
}

fn build_go(go: &Path, dir: &Path) -> PathBuf {
    fs::write(dir.join("go.mod"), "module smoke\n\ngo 1.19\n").unwrap();
    fs::write(dir.join("main.go"), GO_MAIN).unwrap();
    let out = dir.join("smoke");
    let res = Command::new(go)
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(dir)
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .output()
        .expect("running go build");
    assert!(
        res.status.success(),
        "go build failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

/// (virtual address, size) of an ELF symbol.
fn symbol(file: &object::File<'_>, name: &str) -> (u64, u64) {
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| (s.address(), s.size()))
        .unwrap_or_else(|| panic!("symbol {name} not found"))
}

/// Offset of the first instruction after the amd64 Go stack check
/// `CMPQ 0x10(R14), SP` (49 3b 66 10) + `JBE rel8` (76 xx) or `JBE rel32`
/// (0f 86 xx xx xx xx). A pattern match is enough for this test binary.
fn post_stack_check(code: &[u8]) -> u64 {
    match code {
        [0x49, 0x3b, 0x66, 0x10, 0x76, ..] => 6,
        [0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, ..] => 10,
        _ => panic!("unexpected prologue {:02x?}", &code[..code.len().min(10)]),
    }
}

/// File offset of a virtual address: va - p_vaddr + p_offset of its PT_LOAD.
fn file_offset(file: &object::File<'_>, va: u64) -> u64 {
    file.segments()
        .find(|seg| {
            let (_, filesz) = seg.file_range();
            va >= seg.address() && va < seg.address() + filesz
        })
        .map(|seg| va - seg.address() + seg.file_range().0)
        .unwrap_or_else(|| panic!("{va:#x} is in no PT_LOAD segment"))
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn fast64_deletes_are_counted_and_decoded_exactly() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return unavailable("not running as root");
    }
    let Some(go) = go_tool() else {
        return unavailable("no Go toolchain at /usr/lib/go-1.19/bin/go (set MDT_TEST_GO)");
    };

    let dir = tempfile::tempdir().unwrap();
    let bin = build_go(&go, dir.path());
    let data = fs::read(&bin).unwrap();
    let elf = object::File::parse(&*data).unwrap();
    let (fast64_va, _) = symbol(&elf, "runtime.mapdelete_fast64");
    let (del_va, del_size) = symbol(&elf, "main.del");
    let (main_va, main_size) = symbol(&elf, "main.main");
    let fast64_off = file_offset(&elf, fast64_va);
    let probe_va = fast64_va + post_stack_check(&data[fast64_off as usize..][..16]);
    let offset = file_offset(&elf, probe_va);

    let wait_file = dir.path().join("go");
    let child = Command::new(&bin)
        .arg(&wait_file)
        .arg(N.to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("starting the Go program");
    let mut child = KillOnDrop(child);
    let pid = child.0.id();

    let cfg = ProbeConfig {
        target_tgid: pid,
        goid_offset: GOID_OFFSET_GO119,
        probes: vec![ProbeKind::Fast64],
        ..ProbeConfig::default()
    };
    let mut probes = match Probes::load(&cfg) {
        Ok(p) => p,
        Err(e) => return unavailable(&format!("cannot load the BPF program: {e:#}")),
    };
    if let Err(e) = probes.attach_uprobe(&bin, offset, 0, Some(pid)) {
        return unavailable(&format!("cannot attach a uprobe: {e:#}"));
    }

    let events: Arc<Mutex<Vec<MdtEvent>>> = Arc::default();
    let sink = Arc::clone(&events);
    let reader = EventReader::new(&probes, move |record| {
        if let mdt::probes::Record::Event(ev) = record {
            sink.lock().unwrap().push(*ev);
        }
    })
    .unwrap();

    fs::write(&wait_file, b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        reader.wait(Duration::from_millis(20)).unwrap();
        reader.consume_batch(usize::MAX).unwrap();
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "Go program did not exit in 60 s");
    };
    assert!(status.success(), "Go program failed: {status}");
    reader.consume_batch(usize::MAX).unwrap();

    let hits = probes.hit_count(0).unwrap();
    let stats = probes.stats().unwrap();
    let events = events.lock().unwrap();
    assert_eq!(hits, N as u64, "hit counter (stats: {stats:?})");
    assert_eq!(stats.ringbuf_full, 0, "{stats:?}");
    assert_eq!(stats.sampled_out, 0, "{stats:?}");
    assert_eq!(stats.bad_probe, 0, "{stats:?}");
    assert_eq!(stats.submitted, N as u64, "{stats:?}");
    assert_eq!(events.len(), N as usize, "events delivered");

    let map_ptr = events[0].map_ptr;
    assert_ne!(map_ptr, 0);
    for (i, ev) in events.iter().enumerate() {
        let k = i as u64;
        assert_eq!(ev.key_u64, k, "event {i}: key");
        assert_eq!(ev.key_len, 8, "event {i}");
        assert_eq!(
            ev.key_bytes(64),
            &k.to_le_bytes()[..],
            "event {i}: key bytes"
        );
        assert_eq!(ev.map_ptr, map_ptr, "event {i}: map pointer");
        assert_ne!(ev.map_type_ptr, 0, "event {i}");
        assert_eq!(ev.map_len, N as u64 - k, "event {i}: map length at entry");
        assert_eq!(ev.probe_id, 0);
        assert_eq!(ev.probe_kind(), Some(ProbeKind::Fast64));
        assert_eq!(ev.pid, pid);
        assert_eq!(ev.goid, 1, "event {i}: main goroutine");
        // One call site, one stack: sent in full once, then by its id.
        assert_eq!(ev.stack_id, events[0].stack_id, "event {i}: stack id");
        assert_eq!(
            ev.has_flag(mdt_event_flags::MDT_EV_STACK_KNOWN),
            i > 0,
            "event {i}: flags {:#x}",
            ev.flags
        );
        assert!(
            !ev.key_fault() && !ev.key_truncated(),
            "event {i}: flags {:#x}",
            ev.flags
        );
        // Non-PIE binary: runtime addresses are the ELF virtual addresses.
        let st = ev.stack();
        assert!(st.len() >= 3, "event {i}: stack {st:x?}");
        assert_eq!(st[0], probe_va, "event {i}: probed pc");
        assert!(
            (del_va..del_va + del_size).contains(&st[1]),
            "event {i}: caller {st:x?}"
        );
        assert!(
            (main_va..main_va + main_size).contains(&st[2]),
            "event {i}: {st:x?}"
        );
        if i > 0 {
            assert!(ev.ts_ns >= events[i - 1].ts_ns, "event {i}: timestamps");
        }
    }
}
