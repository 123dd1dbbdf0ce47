//! `mdt inspect` against independent ground truth, for every toolchain and variant of the matrix.
//!
//! * Functions, addresses, file offsets and sizes: the ELF symbol table of the unstripped build
//!   of the same source (`fixtures/truth`, Go's debug/elf), Strip and NoSectionHeaders using Plain's.
//! * Probe offsets, RETs, exit points and direct calls: GNU `objdump -d` of the unstripped twin.
//! * goid / map count offsets: DWARF of the unstripped twin (`fixtures/truth`, Go's debug/dwarf).
//! * Version, map implementation and build flags: what the harness built.
//!
//! Also: `-p PID`, the version fallbacks (no buildinfo, no version string), every error of the
//! issue, and a corruption run proving that the reader is total (never panics).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use common::{
    build_fixture, matrix, note, output_retrying, toolchains, truth, truth_funcs, unstripped_twin,
    Toolchain, Variant,
};
use serde_json::Value;

/// Every function mdt knows (src/gobin/funcs.rs), in its order.
const CATALOG: [&str; 10] = [
    "runtime.mapdelete",
    "runtime.mapdelete_fast32",
    "runtime.mapdelete_fast64",
    "runtime.mapdelete_faststr",
    "runtime.mapclear",
    "reflect.mapdelete",
    "reflect.mapdelete_faststr",
    "reflect.mapclear",
    "internal/runtime/maps.(*Map).Delete",
    "internal/runtime/maps.(*Map).Clear",
];

// ---------------------------------------------------------------------------------------------
// Running mdt

fn mdt() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mdt"));
    // A panic would print a backtrace: the error tests then see more than one line.
    cmd.env("RUST_BACKTRACE", "1").stdin(Stdio::null());
    cmd
}

fn run_mdt(args: &[&str]) -> Output {
    output_retrying(mdt().args(args))
}

/// `mdt inspect --json ARGS`, parsed; panics with stderr on failure.
fn inspect_json(args: &[&str]) -> Value {
    let mut all = vec!["inspect", "--json"];
    all.extend_from_slice(args);
    let out = run_mdt(&all);
    assert!(
        out.status.success(),
        "mdt {all:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("mdt {all:?}: bad JSON: {e}"))
}

/// `mdt inspect --json BIN`, once per path per test process (several tests compare with it).
fn inspect_file(bin: &Path) -> Value {
    type Memo = Mutex<HashMap<PathBuf, Value>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    if let Some(v) = memo.lock().unwrap().get(bin) {
        return v.clone();
    }
    let v = inspect_json(&[bin.to_str().unwrap()]);
    memo.lock().unwrap().insert(bin.to_path_buf(), v.clone());
    v
}

/// The stderr of a failing `mdt inspect`, checked to be one `mdt: error:` line with exit 1.
fn inspect_error(args: &[&str]) -> String {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    let out = run_mdt(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "mdt {all:?}: {stderr}");
    assert!(out.stdout.is_empty(), "mdt {all:?}: stdout on error");
    assert_one_error_line(&stderr, &format!("mdt {all:?}"));
    stderr
}

fn assert_one_error_line(stderr: &str, what: &str) {
    assert!(
        stderr.starts_with("mdt: error: ") && stderr.ends_with('\n') && stderr.lines().count() == 1,
        "{what}: not one `mdt: error:` line: {stderr:?}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{what}: {stderr}"
    );
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

// ---------------------------------------------------------------------------------------------
// objdump: an independent x86-64 decoder

#[derive(Debug)]
struct Insn {
    addr: u64,
    mnemonic: String,
    operands: String,
}

impl Insn {
    fn is_ret(&self) -> bool {
        matches!(self.mnemonic.as_str(), "ret" | "retq")
    }

    /// JMP, Jcc, JRCXZ, LOOPcc: every instruction that may go elsewhere than the next one.
    fn is_jump(&self) -> bool {
        self.mnemonic.starts_with('j') || self.mnemonic.starts_with("loop")
    }

    fn is_jmp(&self) -> bool {
        matches!(self.mnemonic.as_str(), "jmp" | "jmpq")
    }

    /// The address a direct jump goes to (`4114a2 <runtime.mapdelete_fast64+0xe2>`); None for
    /// an indirect one (`*%rax`).
    fn jump_target(&self) -> Option<u64> {
        let hex = self.operands.split_whitespace().next()?;
        u64::from_str_radix(hex, 16).ok()
    }

    /// Execution never goes on to the next instruction.
    fn no_fall_through(&self) -> bool {
        self.is_jmp() || self.is_ret() || matches!(self.mnemonic.as_str(), "int3" | "ud2")
    }

    /// Neither a jump, a call, a RET nor a trap: may be part of an epilogue.
    fn is_plain(&self) -> bool {
        !self.is_jump()
            && !self.is_ret()
            && !self.mnemonic.starts_with("call")
            && !matches!(self.mnemonic.as_str(), "int3" | "ud2")
    }

    /// The symbol named by a direct call/jump operand (`4668c0 <runtime.mapclear>`), without `+off`.
    fn branch_target(&self) -> Option<&str> {
        if !matches!(self.mnemonic.as_str(), "call" | "callq" | "jmp" | "jmpq") {
            return None;
        }
        let inner = self.operands.split_once('<')?.1.strip_suffix('>')?;
        Some(inner.split_once('+').map_or(inner, |(name, _)| name))
    }
}

/// `objdump -d` of [start, end) of `bin`.
fn objdump(bin: &Path, start: u64, end: u64) -> Vec<Insn> {
    let out = output_retrying(
        Command::new("objdump")
            .arg("-d")
            .arg("--no-show-raw-insn")
            .arg(format!("--start-address={start:#x}"))
            .arg(format!("--stop-address={end:#x}"))
            .arg(bin),
    );
    assert!(
        out.status.success(),
        "objdump {}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(parse_objdump_line)
        .collect()
}

/// `  403a80:\tcmp    0x10(%r14),%rsp`
fn parse_objdump_line(line: &str) -> Option<Insn> {
    let (addr, text) = line.trim_start().split_once(":\t")?;
    let addr = u64::from_str_radix(addr, 16).ok()?;
    let text = text.trim();
    let (mnemonic, operands) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    Some(Insn {
        addr,
        mnemonic: mnemonic.to_string(),
        operands: operands.trim().to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Checking one report against the truth

/// Collects every mismatch of one (toolchain, variant) instead of stopping at the first.
struct Problems {
    what: String,
    list: Vec<String>,
}

impl Problems {
    fn new(what: String) -> Self {
        Problems {
            what,
            list: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.list.push(format!("{}: {}", self.what, msg()));
        }
    }

    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, field: &str, got: T, want: T) {
        self.check(got == want, || {
            format!("{field}: got {got:?}, want {want:?}")
        });
    }
}

struct Item<'a> {
    tc: &'a Toolchain,
    variant: Variant,
    bin: PathBuf,
    /// The unstripped build of the same source and flags: symbols, DWARF.
    twin: PathBuf,
    truth: Value,
}

impl<'a> Item<'a> {
    fn new(tc: &'a Toolchain, variant: Variant) -> Self {
        let bin = build_fixture("deletes", tc, variant);
        let twin = build_fixture("deletes", tc, unstripped_twin(variant));
        let truth = truth(&twin);
        Item {
            tc,
            variant,
            bin,
            twin,
            truth,
        }
    }
}

fn check_header(p: &mut Problems, it: &Item, r: &Value) {
    let (tc, v) = (it.tc, it.variant);
    p.eq(
        "go_version",
        r["go_version"].as_str(),
        Some(tc.runtime_version(v).as_str()),
    );
    p.eq(
        "version_source",
        r["version_source"].as_str(),
        Some("buildinfo"),
    );
    p.eq(
        "version.minor",
        r["version"]["minor"].as_u64(),
        Some(tc.minor.into()),
    );
    let map_impl = if tc.swiss(v) { "swiss" } else { "hmap" };
    p.eq("map_impl", r["map_impl"].as_str(), Some(map_impl));
    p.eq("arch", r["arch"].as_str(), Some("x86_64"));
    p.eq("pie", r["pie"].as_bool(), Some(v == Variant::Pie));
    p.eq("stripped", r["stripped"].as_bool(), Some(v.is_stripped()));
    p.eq("cgo", r["cgo"].as_bool(), Some(v.cgo_enabled()));
    p.eq("race", r["race"].as_bool(), Some(v == Variant::Race));
    p.eq("dwarf", r["dwarf"].as_bool(), Some(!v.is_stripped()));
    let headers = v != Variant::NoSectionHeaders;
    p.eq(
        "section_headers",
        r["section_headers"].as_bool(),
        Some(headers),
    );
    p.check(
        r["build_id"]["go"].as_str().is_some_and(|id| id.len() > 20),
        || format!("Go build id {}", r["build_id"]),
    );
    // Only the external linker (cgo; race stays internally linked) writes a GNU build id.
    let gnu = r["build_id"]["gnu"].as_str();
    p.eq("GNU build id present", gnu.is_some(), v == Variant::Cgo);
    p.eq(
        "text_base_source",
        r["text_base_source"].as_str(),
        Some("moduledata"),
    );
}

fn check_layout(p: &mut Problems, it: &Item, r: &Value) {
    let layout = &r["layout"];
    p.eq(
        "layout.goid_offset",
        layout["goid_offset"].as_i64(),
        it.truth["goid_offset"].as_i64(),
    );
    p.eq(
        "layout.map_count_offset",
        layout["map_count_offset"].as_i64(),
        it.truth["map_count_offset"].as_i64(),
    );
    let source = if it.variant.is_stripped() {
        "version_table"
    } else {
        "dwarf"
    };
    p.eq("layout.source", layout["source"].as_str(), Some(source));
    // Crash forensics tells a goroutine's g from its thread's g0 by g.m and m.g0.
    if !it.variant.is_stripped() {
        use mdt::gobin::fatal::{G_M_OFFSET, M_G0_OFFSET};
        p.eq(
            "runtime.g.m",
            it.truth["g_m_offset"].as_u64(),
            Some(G_M_OFFSET),
        );
        p.eq(
            "runtime.m.g0",
            it.truth["m_g0_offset"].as_u64(),
            Some(M_G0_OFFSET),
        );
    }
    // The type descriptor offsets mdt reads keys and type names by, from
    // Go's own DWARF reader, and from mdt's (for `mdt inspect`).
    if !it.variant.is_stripped() {
        // Every offset key values are decoded by (abi.rs): abi.Type, the map
        // type, arrays, structs and their fields, interfaces and itabs,
        // interface values, slices and strings.
        let k = mdt::gobin::abi::TypeOffsets::KNOWN;
        let t = &it.truth["type_offsets"];
        for (name, want) in k.named() {
            p.eq(
                &format!("type_offsets.{name}"),
                t[name].as_u64(),
                Some(want),
            );
        }
        let data = std::fs::read(&it.bin).unwrap();
        let elf = mdt::gobin::elf::Elf::parse(&data).unwrap();
        p.eq(
            "abi::from_dwarf",
            mdt::gobin::abi::from_dwarf(&elf),
            Some(k),
        );
    }
}

/// Exactly the catalog functions that the symbol table has, in catalog order; `absent` the rest.
fn check_function_set(p: &mut Problems, it: &Item, r: &Value) {
    let want: Vec<&str> = CATALOG
        .iter()
        .copied()
        .filter(|n| it.truth["funcs"].get(*n).is_some())
        .collect();
    let got: Vec<&str> = r["functions"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["name"].as_str()).collect())
        .unwrap_or_default();
    p.eq("functions", &got, &want);
    let absent: Vec<&str> = CATALOG
        .iter()
        .copied()
        .filter(|n| !want.contains(n))
        .collect();
    let got_absent: Vec<&str> = r["absent"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    p.eq("absent", &got_absent, &absent);
}

/// Whether mdt should probe `name` in this build (docs/go-runtime.md §1.3–1.5 and §6.4): the runtime
/// entry points always; reflect.mapdelete/mapclear only when the runtime function is inlined
/// into them (Swiss maps, not under -race, which keeps the call); never the others.
fn expected_attach(tc: &Toolchain, v: Variant, name: &str) -> bool {
    match name {
        n if n.starts_with("runtime.") => true,
        "reflect.mapdelete" | "reflect.mapclear" => tc.swiss(v) && v != Variant::Race,
        _ => false,
    }
}

fn check_function(p: &mut Problems, it: &Item, f: &Value) {
    let name = f["name"].as_str().unwrap_or("?").to_string();
    let Some(t) = it.truth["funcs"].get(&name) else {
        return; // reported by check_function_set
    };
    let (addr, size) = (u64_of(t, "addr"), u64_of(t, "size"));
    p.eq(
        &format!("{name} address"),
        f["address"].as_u64(),
        Some(addr),
    );
    p.eq(
        &format!("{name} file_offset"),
        f["file_offset"].as_u64(),
        t["file_offset"].as_u64(),
    );
    p.eq(&format!("{name} size"), f["size"].as_u64(), Some(size));

    let code = objdump(&it.twin, addr, addr + size);
    p.check(!code.is_empty(), || {
        format!("{name}: objdump printed no code")
    });
    check_probe_offset(p, &name, f, addr, &code);
    check_rets(p, &name, f, addr, &code);
    check_exits(p, &name, f, addr..addr + size, &code);
    check_calls_and_attach(p, it, &name, f, &code);
}

/// The probe goes right after `cmp 0x10(%r14),REG; jbe morestack` (docs/go-runtime.md §6.2).
fn check_probe_offset(p: &mut Problems, name: &str, f: &Value, addr: u64, code: &[Insn]) {
    let probe = f["probe_offset"].as_u64().unwrap_or(u64::MAX);
    p.check(probe == 6 || probe == 10, || {
        format!("{name}: probe_offset {probe}, want 6 or 10")
    });
    let Some(i) = code.iter().position(|c| c.addr == addr + probe) else {
        return p.check(false, || {
            format!("{name}: probe_offset {probe} is not an instruction boundary")
        });
    };
    let ok = i >= 2
        && code[i - 1].mnemonic == "jbe"
        && code[i - 2].mnemonic == "cmp"
        && code[i - 2].operands.starts_with("0x10(%r14),");
    p.check(ok, || {
        format!("{name}: probe_offset {probe} does not follow the stack check: {code:?}")
    });
}

fn check_rets(p: &mut Problems, name: &str, f: &Value, addr: u64, code: &[Insn]) {
    let got: BTreeSet<u64> = f["ret_offsets"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let want: BTreeSet<u64> = code
        .iter()
        .filter(|c| c.is_ret())
        .map(|c| c.addr - addr)
        .collect();
    p.check(!want.is_empty(), || format!("{name}: objdump sees no ret"));
    p.eq(&format!("{name} ret_offsets"), got, want);
}

/// Exit points (docs/go-runtime.md, "Exit points"), recomputed from objdump: every RET is
/// covered exactly once, by itself or by all the JMPs that are the only ways into its epilogue
/// (the run of plain instructions before it that nothing jumps into but at its start); nothing
/// else is an exit point; an attached function has some.
fn check_exits(
    p: &mut Problems,
    name: &str,
    f: &Value,
    range: std::ops::Range<u64>,
    code: &[Insn],
) {
    let entry = range.start;
    let got: BTreeMap<u64, (String, bool)> = f["exit_points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let m = e["mnemonic"].as_str().unwrap_or("?").to_string();
            (
                u64_of(e, "offset"),
                (m, e["emulated"].as_bool() == Some(true)),
            )
        })
        .collect();
    let note = f["exit_note"].as_str();
    let attach = f["attach"].as_bool() == Some(true);

    // Ways out of the function other than a RET: a tail jump, an indirect jump. The morestack
    // path's jump back to the entry is not one.
    let escapes: Vec<&Insn> = code
        .iter()
        .filter(|c| c.is_jump())
        .filter(|c| {
            c.jump_target()
                .is_none_or(|t| t != entry && !range.contains(&t))
        })
        .collect();
    if !escapes.is_empty() {
        p.check(got.is_empty() && note.is_some(), || {
            format!("{name}: jumps out ({escapes:?}) but exit points {got:?}, note {note:?}")
        });
        p.check(!attach, || {
            format!("{name}: attached, but no exit points: {escapes:?}")
        });
        return;
    }
    p.check(note.is_none(), || {
        format!("{name}: unexpected exit_note {note:?}")
    });
    p.check(!got.is_empty(), || format!("{name}: no exit points"));

    let mut jumps_to: HashMap<u64, Vec<&Insn>> = HashMap::new();
    for c in code.iter().filter(|c| c.is_jump()) {
        match c.jump_target() {
            Some(t) if t != entry => jumps_to.entry(t).or_default().push(c),
            _ => {}
        }
    }
    let mut accounted = BTreeSet::new();
    for (r, ret) in code.iter().enumerate().filter(|(_, c)| c.is_ret()) {
        let mut start = r;
        // Back over plain instructions, stopping at a jump target (the epilogue's first).
        while start > 0 && code[start - 1].is_plain() && !jumps_to.contains_key(&code[start].addr) {
            start -= 1;
        }
        let falls_through = start == 0 || !code[start - 1].no_fall_through();
        let jumps = jumps_to
            .get(&code[start].addr)
            .map_or(&[][..], Vec::as_slice);
        let ret_off = ret.addr - entry;
        let by_ret = got.contains_key(&ret_off);
        let jmp_offs: Vec<u64> = jumps.iter().map(|j| j.addr - entry).collect();
        let by_jmps = !falls_through
            && !jumps.is_empty()
            && jumps.iter().all(|j| j.is_jmp())
            && jmp_offs.iter().all(|o| got.contains_key(o));
        // By the RET and by none of the JMPs, or by all of them (then the RET is not probed).
        let once = if by_ret {
            jmp_offs.iter().all(|o| !got.contains_key(o))
        } else {
            by_jmps
        };
        p.check(once, || {
            format!(
                "{name}: RET +{ret_off:#x} (epilogue from +{:#x}, fall-through {falls_through}, \
                 jumps from {:x?}) not covered exactly once by exit points {:x?}",
                code[start].addr - entry,
                jumps
                    .iter()
                    .map(|j| (j.addr - entry, &j.mnemonic))
                    .collect::<Vec<_>>(),
                got.keys().collect::<Vec<_>>()
            )
        });
        accounted.insert(ret_off);
        if by_jmps {
            accounted.extend(jmp_offs);
        }
    }
    let stray: Vec<&u64> = got.keys().filter(|o| !accounted.contains(o)).collect();
    p.check(stray.is_empty(), || {
        format!("{name}: exit points {stray:?} are neither RETs nor the JMPs into an epilogue")
    });
    for (off, (mnemonic, emulated)) in &got {
        let insn = code.iter().find(|c| c.addr == entry + off);
        let want = insn.map(|c| c.mnemonic.trim_end_matches('q'));
        p.eq(
            &format!("{name} exit +{off:#x} mnemonic"),
            Some(mnemonic.as_str()),
            want,
        );
        p.eq(
            &format!("{name} exit +{off:#x} emulated"),
            *emulated,
            mnemonic == "jmp",
        );
    }
}

fn check_calls_and_attach(p: &mut Problems, it: &Item, name: &str, f: &Value, code: &[Insn]) {
    let called: BTreeSet<&str> = code
        .iter()
        .filter_map(Insn::branch_target)
        .filter(|t| *t != name && CATALOG.contains(t))
        .collect();
    let got: BTreeSet<&str> = f["calls"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    p.eq(&format!("{name} calls"), &got, &called);

    let attach = f["attach"].as_bool();
    p.eq(
        &format!("{name} attach"),
        attach,
        Some(expected_attach(it.tc, it.variant, name)),
    );
    // The rule itself: a reflect function is probed iff it does not call its runtime twin.
    if let Some(inner) = name.strip_prefix("reflect.") {
        let twin_called = called.contains(format!("runtime.{inner}").as_str());
        p.eq(
            &format!("{name} attach vs objdump calls"),
            attach,
            Some(!twin_called),
        );
    }
    p.check(f["reason"].as_str().is_some_and(|r| r.len() > 20), || {
        format!("{name}: no reason given")
    });
}

fn check_item(tc: &Toolchain, variant: Variant) -> Vec<String> {
    let it = Item::new(tc, variant);
    let report = inspect_file(&it.bin);
    let mut p = Problems::new(format!("{tc} {variant}"));
    check_header(&mut p, &it, &report);
    check_layout(&mut p, &it, &report);
    check_function_set(&mut p, &it, &report);
    for f in report["functions"].as_array().into_iter().flatten() {
        check_function(&mut p, &it, f);
    }
    check_fatal(&mut p, &it, &report);
    if variant == Variant::Plain {
        check_map_misuse_messages(&mut p, tc);
    }
    p.list
}

/// The messages the runtime dies with on map misuse, from its own sources: every one is in
/// mdt's list (the metric's series at 0, `is_map_misuse`), and the three the crash fixture
/// triggers are in every release.
fn check_map_misuse_messages(p: &mut Problems, tc: &Toolchain) {
    let root = tc.go.parent().and_then(Path::parent).unwrap();
    let mut found = BTreeSet::new();
    for dir in ["src/runtime", "src/internal/runtime/maps"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "go") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for call in ["fatal(\"concurrent map ", "throw(\"concurrent map "] {
                for (at, _) in text.match_indices(call) {
                    let rest = &text[at + call.len() - "concurrent map ".len()..];
                    found.insert(rest[..rest.find('"').unwrap()].to_string());
                }
            }
        }
    }
    let known = mdt::events::fatal::MAP_MISUSE_MESSAGES;
    for m in &found {
        p.check(known.contains(&m.as_str()), || {
            format!("the runtime dies with {m:?}, not in MAP_MISUSE_MESSAGES")
        });
    }
    for m in &known[..3] {
        p.check(found.contains(*m), || {
            format!("{m:?} is not in the runtime's sources ({found:?})")
        });
    }
}

/// `runtime.fatal` (where map misuse kills the program): its address and file offset are the
/// symbol table's (Go's debug/gosym, on the unstripped twin), its first instruction is
/// objdump's, emulated exactly when it is a PUSH; on Swiss-map builds
/// `internal/runtime/maps.fatal` calls it, as objdump shows.
fn check_fatal(p: &mut Problems, it: &Item, r: &Value) {
    let f = &r["fatal"];
    if !f.is_object() {
        p.check(false, || format!("no fatal: {f}"));
        return;
    }
    const MAPS_FATAL: &str = "internal/runtime/maps.fatal";
    let truth = truth_funcs(&it.twin, &["runtime.fatal", MAPS_FATAL]);
    let fatal = &truth["funcs"]["runtime.fatal"];
    let addr = u64_of(f, "address");
    p.eq("fatal address", addr, u64_of(fatal, "addr"));
    p.eq(
        "fatal file offset",
        u64_of(f, "file_offset"),
        u64_of(fatal, "file_offset"),
    );
    let first = objdump(&it.twin, addr, addr + 16);
    let objdump_mnemonic = first
        .first()
        .map(|i| i.mnemonic.trim_end_matches('q').to_string());
    let mdt_mnemonic = f["first_instruction"]
        .as_str()
        .and_then(|t| t.split_whitespace().next())
        .map(str::to_string);
    p.eq(
        "fatal first instruction",
        mdt_mnemonic,
        objdump_mnemonic.clone(),
    );
    p.eq(
        "fatal first instruction emulated",
        f["emulated"].as_bool(),
        Some(objdump_mnemonic.as_deref() == Some("push")),
    );
    let maps = &truth["funcs"][MAPS_FATAL];
    if it.tc.swiss(it.variant) {
        let start = u64_of(maps, "addr");
        let code = objdump(&it.twin, start, start + u64_of(maps, "size"));
        let calls = code
            .iter()
            .any(|i| i.branch_target() == Some("runtime.fatal"));
        p.check(calls, || {
            format!("{MAPS_FATAL} does not call runtime.fatal (objdump)")
        });
        p.eq(
            "maps.fatal calls runtime.fatal",
            f["maps_fatal_calls_it"].as_bool(),
            Some(true),
        );
    } else {
        p.check(f["maps_fatal_calls_it"] != false, || {
            format!("maps_fatal_calls_it: {f}")
        });
    }
}

/// Runs `f` on every item of the matrix, one thread per toolchain; returns all problems.
fn per_toolchain<F>(f: F) -> Vec<String>
where
    F: Fn(&Toolchain, Variant) -> Vec<String> + Sync,
{
    let items = matrix();
    let mut by_tc: BTreeMap<String, Vec<(Toolchain, Variant)>> = BTreeMap::new();
    for (tc, v) in items {
        by_tc.entry(tc.short.clone()).or_default().push((tc, v));
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = by_tc
            .values()
            .map(|list| {
                s.spawn(|| {
                    list.iter()
                        .flat_map(|(tc, v)| f(tc, *v))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn assert_no_problems(test: &str, problems: &[String], t0: Instant) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    note(&format!(
        "inspect: {test}: {} builds ({}) in {:.1?}",
        matrix().len(),
        toolchains()
            .iter()
            .map(|t| t.version.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        t0.elapsed()
    ));
}

#[test]
fn inspect_matches_ground_truth_for_every_toolchain_and_variant() {
    let t0 = Instant::now();
    let problems = per_toolchain(check_item);
    assert_no_problems("file reports vs ground truth", &problems, t0);
}

#[test]
fn human_report_names_version_and_functions() {
    let tc = toolchains().into_iter().last().unwrap();
    let bin = build_fixture("deletes", &tc, Variant::Strip);
    let out = run_mdt(&["inspect", bin.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let json = inspect_file(&bin);
    assert!(text.contains(&tc.version), "{text}");
    for f in json["functions"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let addr = format!("{:#x}", u64_of(f, "address"));
        assert!(
            text.lines()
                .any(|l| l.starts_with(name) && l.contains(&addr)),
            "{name} at {addr} missing from:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// -p PID

/// Spawn a fixture that blocks (`-hold`) until killed.
fn spawn_holding(bin: &Path) -> Child {
    common::spawn_retrying(
        Command::new(bin)
            .arg("-hold")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        &bin.display().to_string(),
    )
}

/// Kills the child when dropped, also when an assertion fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn check_pid(tc: &Toolchain, variant: Variant) -> Vec<String> {
    let bin = build_fixture("deletes", tc, variant);
    let from_file = inspect_file(&bin);
    let child = Running(spawn_holding(&bin));
    let pid = child.0.id().to_string();
    let mut from_pid = inspect_json(&["-p", &pid]);
    drop(child);
    let mut p = Problems::new(format!("{tc} {variant} -p"));
    p.eq(
        "path",
        from_pid["path"].as_str().map(String::from),
        Some(format!("/proc/{pid}/exe")),
    );
    // Everything but the path is a property of the file.
    from_pid["path"] = from_file["path"].clone();
    p.check(from_pid == from_file, || {
        format!("differs from the file's report:\n{from_pid:#}\nvs\n{from_file:#}")
    });
    p.list
}

#[test]
fn inspect_pid_reads_the_running_executable() {
    let t0 = Instant::now();
    let problems = per_toolchain(check_pid);
    assert_no_problems("-p PID vs file", &problems, t0);
}

// ---------------------------------------------------------------------------------------------
// Version fallbacks

/// Overwrites every occurrence of `needle` with `with` (same length); returns how many.
fn replace_all(data: &mut [u8], needle: &[u8], with: &[u8]) -> usize {
    assert_eq!(needle.len(), with.len());
    let mut n = 0;
    let mut i = 0;
    while i + needle.len() <= data.len() {
        if &data[i..i + needle.len()] == needle {
            data[i..i + needle.len()].copy_from_slice(with);
            n += 1;
            i += needle.len();
        } else {
            i += 1;
        }
    }
    n
}

const BUILDINFO_MAGIC: &[u8; 14] = b"\xff Go buildinf:";

/// Writes `data` as an executable file `name` in `dir`.
fn write_exe(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The Go minors a `pclntab_format` version names: "go1.18 or go1.19", "go1.20 or later", ...
fn named_range(text: &str) -> (u32, u32) {
    let minors: Vec<u32> = text
        .split("go1.")
        .skip(1)
        .filter_map(|s| {
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect();
    match (minors.as_slice(), text.ends_with("or later")) {
        ([lo], true) => (*lo, u32::MAX),
        ([lo, hi], false) => (*lo, *hi),
        _ => panic!("not a version range: {text:?}"),
    }
}

/// Everything but the version is independent of where the version came from.
fn same_facts(p: &mut Problems, r: &Value, full: &Value) {
    for field in [
        "map_impl",
        "pie",
        "stripped",
        "cgo",
        "race",
        "dwarf",
        "section_headers",
        "build_id",
        "moduledata",
        "text_base",
    ] {
        p.eq(field, &r[field], &full[field]);
    }
    p.check(r["functions"] == full["functions"], || {
        format!(
            "functions differ: {:#} vs {:#}",
            r["functions"], full["functions"]
        )
    });
}

fn check_fallbacks(tc: &Toolchain, variant: Variant, dir: &Path) -> Vec<String> {
    let mut p = Problems::new(format!("{tc} {variant} fallbacks"));
    let bin = build_fixture("deletes", tc, variant);
    let full = inspect_file(&bin);
    let mut data = std::fs::read(&bin).unwrap();

    // 1. No .go.buildinfo: the runtime.buildVersion string.
    p.eq(
        "buildinfo magics",
        replace_all(&mut data, BUILDINFO_MAGIC, &[0; 14]),
        1,
    );
    let name = format!("{}-{variant}-nobuildinfo", tc.short);
    let r = inspect_file(&write_exe(dir, &name, &data));
    p.eq(
        "go_version",
        r["go_version"].as_str(),
        Some(tc.runtime_version(variant).as_str()),
    );
    p.eq(
        "version_source",
        r["version_source"].as_str(),
        Some("build_version"),
    );
    same_facts(&mut p, &r, &full);
    p.eq("layout", &r["layout"], &full["layout"]);

    // 2. No version string either: only the pclntab format is left.
    let version = tc.version.as_bytes();
    let hidden = vec![b'#'; version.len()];
    p.check(replace_all(&mut data, version, &hidden) >= 1, || {
        "no version string".into()
    });
    let r = inspect_file(&write_exe(dir, &format!("{name}-noversion"), &data));
    p.eq(
        "version_source",
        r["version_source"].as_str(),
        Some("pclntab_format"),
    );
    let text = r["go_version"].as_str().unwrap_or("");
    let (lo, hi) = named_range(text);
    p.check(lo <= tc.minor && tc.minor <= hi, || {
        format!("{text:?} does not include {}", tc.version)
    });
    same_facts(&mut p, &r, &full);
    // DWARF still gives the offsets; without it, the table only if the whole range agrees.
    if !r["layout"].is_null() || !variant.is_stripped() {
        p.eq("layout", &r["layout"], &full["layout"]);
    }
    p.list
}

#[test]
fn version_falls_back_to_build_version_then_pclntab_format() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // Plain is covered by its stripped builds.
    let problems = per_toolchain(|tc, v| match v {
        Variant::Plain => Vec::new(),
        _ => check_fallbacks(tc, v, dir.path()),
    });
    assert_no_problems("version fallbacks", &problems, t0);
}

// ---------------------------------------------------------------------------------------------
// Errors: one line, a message that says what is wrong, exit 1 (clap's usage errors: exit 2)

fn assert_error(args: &[&str], wanted: &[&str]) {
    let stderr = inspect_error(args);
    for w in wanted {
        assert!(
            stderr.contains(w),
            "mdt inspect {args:?}: {stderr:?} does not say {w:?}"
        );
    }
}

fn newest() -> Toolchain {
    toolchains().into_iter().last().unwrap()
}

#[test]
fn error_not_elf_not_go_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = write_exe(dir.path(), "script", b"#!/bin/sh\necho hello\n");
    assert_error(&[text.to_str().unwrap()], &["not an ELF file"]);
    let empty = write_exe(dir.path(), "empty", b"");
    assert_error(&[empty.to_str().unwrap()], &["not an ELF file"]);
    assert_error(&["/bin/true"], &["not a Go program"]);
    assert_error(
        &["/nonexistent/prog"],
        &["/nonexistent/prog", "No such file"],
    );
    assert_error(&[dir.path().to_str().unwrap()], &["cannot read"]);
}

/// The `.gopclntab` header of a Go 1.18+ binary (magic, pad, pad, minLC=1, ptrSize=8).
fn pclntab_header_at(data: &[u8]) -> usize {
    let hits: Vec<usize> = data
        .windows(8)
        .enumerate()
        .filter(|(_, w)| matches!(w[0], 0xf0 | 0xf1) && w[1..] == [0xff, 0xff, 0xff, 0, 0, 1, 8])
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "pclntab headers at {hits:x?}");
    hits[0]
}

/// A version string of the same length as `version` naming go1.16.
fn go116_like(version: &str) -> String {
    let v = format!(
        "go1.16.{}",
        "1".repeat(version.len().saturating_sub(7).max(1))
    );
    assert_eq!(v.len(), version.len(), "{version}");
    v
}

#[test]
fn error_unsupported_go_version() {
    let dir = tempfile::tempdir().unwrap();
    for tc in toolchains() {
        for v in [Variant::Plain, Variant::NoSectionHeaders, Variant::Pie] {
            let data = std::fs::read(build_fixture("deletes", &tc, v)).unwrap();
            let name = format!("{}-{v}", tc.short);

            // Only the version string says 1.16: its pclntab is fine.
            let mut old = data.clone();
            let go116 = go116_like(&tc.version);
            assert!(replace_all(&mut old, tc.version.as_bytes(), go116.as_bytes()) >= 1);
            let bin = write_exe(dir.path(), &format!("{name}-v116"), &old);
            assert_error(
                &[bin.to_str().unwrap()],
                &["unsupported Go version", &go116, "go1.17"],
            );

            // The Go 1.2–1.15 pclntab format, with a current and with a 1.16 version string.
            let mut go12 = data.clone();
            go12[pclntab_header_at(&data)..][..4].copy_from_slice(&0xffff_fffbu32.to_le_bytes());
            let bin = write_exe(dir.path(), &format!("{name}-go12"), &go12);
            assert_error(
                &[bin.to_str().unwrap()],
                &["unsupported Go version", "go1.17"],
            );
            replace_all(&mut go12, tc.version.as_bytes(), go116.as_bytes());
            let bin = write_exe(dir.path(), &format!("{name}-go12-v116"), &go12);
            assert_error(
                &[bin.to_str().unwrap()],
                &["unsupported Go version", "go1.17"],
            );
        }
    }
}

#[test]
fn error_truncated_binary() {
    let dir = tempfile::tempdir().unwrap();
    let tc = newest();
    for v in [
        Variant::Plain,
        Variant::NoSectionHeaders,
        Variant::Pie,
        Variant::Cgo,
    ] {
        let data = std::fs::read(build_fixture("deletes", &tc, v)).unwrap();
        let mut lens = vec![64, 1000, data.len() / 2];
        // The section header table ends the file; in NoSectionHeaders it is dead bytes.
        if v != Variant::NoSectionHeaders {
            lens.push(data.len() - 1);
        }
        for len in lens {
            let bin = write_exe(dir.path(), &format!("{v}-{len}"), &data[..len]);
            assert_error(&[bin.to_str().unwrap()], &["corrupt or truncated"]);
        }
    }
}

/// A pid that is not in use: pids are below `pid_max`.
fn unused_pid() -> String {
    let max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
    let pid = max.trim().to_string();
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    pid
}

#[test]
fn error_no_such_process() {
    let pid = unused_pid();
    assert_error(&["-p", &pid], &["no such process", &pid]);
    assert_error(&["--pid", &pid, "--json"], &["no such process"]);
    assert_error(&["-p", "0"], &["invalid pid"]);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `mdt inspect -p PID` as user nobody, on a process of root's, says which privilege is missing.
#[test]
fn error_permission_denied() {
    if !is_root() {
        note("SKIP error_permission_denied: needs root to run a root process and switch to nobody");
        return;
    }
    // A copy of mdt that nobody may run (target/ may be private).
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = std::fs::read(env!("CARGO_BIN_EXE_mdt")).unwrap();
    let mdt_copy = write_exe(dir.path(), "mdt", &exe);
    let bin = build_fixture("deletes", &newest(), Variant::Plain);
    let child = Running(spawn_holding(&bin));
    let out = output_retrying(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&mdt_copy)
            .args(["inspect", "-p", &child.0.id().to_string()])
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null()),
    );
    drop(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_one_error_line(&stderr, "mdt inspect -p as nobody");
    assert!(
        stderr.contains("permission denied") && stderr.contains("root"),
        "{stderr}"
    );
}

#[test]
fn error_invalid_flags_are_usage_errors() {
    let cases: [(&[&str], &str); 4] = [
        (&["inspect", "/bin/true", "-p", "1"], "cannot be used with"),
        (&["inspect"], "required"),
        (&["inspect", "--json"], "required"),
        (&["inspect", "-p", "abc"], "'abc'"),
    ];
    for (args, says) in cases {
        let out = run_mdt(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_one_error_line(&stderr, &format!("mdt {args:?}"));
        assert!(
            stderr.contains(says),
            "{args:?}: {stderr:?} does not say {says:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Totality: the reader returns Ok or Err on any input, never panics

/// SplitMix64: a fixed-seed, dependency-free generator (the corruptions are the same every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn le_u16(d: &[u8], o: usize) -> usize {
    u16::from_le_bytes([d[o], d[o + 1]]) as usize
}

fn le_u64(d: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(d[o..o + 8].try_into().unwrap())
}

/// (p_offset of the header, p_offset, p_vaddr, p_filesz) of each PT_LOAD of an ELF64 LE file.
fn load_segments(d: &[u8]) -> Vec<(usize, u64, u64, u64)> {
    let (phoff, phentsize, phnum) = (le_u64(d, 0x20) as usize, le_u16(d, 0x36), le_u16(d, 0x38));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&h| u32::from_le_bytes(d[h..h + 4].try_into().unwrap()) == 1)
        .map(|h| (h, le_u64(d, h + 8), le_u64(d, h + 16), le_u64(d, h + 32)))
        .collect()
}

fn va_to_file(d: &[u8], va: u64) -> Option<usize> {
    load_segments(d)
        .into_iter()
        .find(|&(_, _, vaddr, filesz)| va >= vaddr && va - vaddr < filesz)
        .map(|(_, off, vaddr, _)| (va - vaddr + off) as usize)
}

/// Byte ranges of the file worth corrupting, by name.
fn regions(d: &[u8]) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let clean = mdt::gobin::GoBinary::analyze(Path::new("clean"), d).expect("clean binary");
    let phoff = le_u64(d, 0x20) as usize;
    let pcln = pclntab_header_at(d);
    let mut out = vec![
        ("ELF header", 0..64),
        (
            "program headers",
            phoff..phoff + le_u16(d, 0x36) * le_u16(d, 0x38),
        ),
        ("pclntab header", pcln..pcln + 72),
        ("pclntab tables", pcln..(pcln + (1 << 16)).min(d.len())),
        ("pclntab", pcln..d.len()),
    ];
    let shoff = le_u64(d, 0x28) as usize;
    if shoff != 0 {
        out.push(("section headers", shoff..shoff + 64 * le_u16(d, 0x3c)));
    }
    if let Some(bi) = d.windows(14).position(|w| w == BUILDINFO_MAGIC) {
        out.push(("buildinfo", bi..bi + 256));
    }
    if let Some(md) = clean.moduledata.and_then(|m| va_to_file(d, m.vaddr)) {
        out.push(("moduledata", md..md + 400));
    }
    if let Some(gofunc) = clean.moduledata.and_then(|m| va_to_file(d, m.gofunc)) {
        out.push(("go:func.* (inline trees)", gofunc..gofunc + (1 << 16)));
    }
    for f in clean.functions.iter().take(3) {
        let off = f.file_offset as usize;
        out.push((f.name, off..off + f.size as usize));
    }
    out
}

/// One corruption of a binary, applied to a fresh copy when it is run (cases are many, binaries
/// megabytes: they are not all kept in memory).
enum Patch {
    Truncate(usize),
    CutSegments(usize),
    Xor(Vec<(usize, u8)>),
    /// (offset, width in bytes, value) each.
    Words(Vec<(usize, usize, u64)>),
}

impl Patch {
    fn apply(&self, d: &[u8]) -> Vec<u8> {
        match *self {
            Patch::Truncate(n) => d[..n].to_vec(),
            Patch::CutSegments(n) => cut_segments(d, n),
            Patch::Xor(ref bytes) => {
                let mut c = d.to_vec();
                for &(at, x) in bytes {
                    c[at] ^= x;
                }
                c
            }
            Patch::Words(ref words) => {
                let mut c = d.to_vec();
                for &(at, width, value) in words {
                    c[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
                }
                c
            }
        }
    }
}

type Case = (String, Patch);

fn truncations(d: &[u8]) -> Vec<Case> {
    let pcln = pclntab_header_at(d);
    let mut lens: Vec<usize> = (0..=72).collect();
    lens.extend((1..48).map(|i| d.len() * i / 48));
    lens.extend([8, 16, 24, 40, 64, 72, 1 << 10, 1 << 16].map(|k| pcln + k));
    lens.retain(|&n| n < d.len());
    lens.into_iter()
        .map(|n| (format!("truncated to {n}"), Patch::Truncate(n)))
        .collect()
}

/// Cut at `n` and shrink the segments to fit, so that the ELF stays valid and the Go readers
/// see their data cut short. Section headers past the cut are dropped (as by sstrip).
fn cut_segments(d: &[u8], n: usize) -> Vec<u8> {
    let mut out = d[..n].to_vec();
    for (h, off, _, filesz) in load_segments(d) {
        let keep = (n as u64).saturating_sub(off).min(filesz);
        let off = off.min(n as u64);
        out[h + 8..h + 16].copy_from_slice(&off.to_le_bytes());
        out[h + 32..h + 40].copy_from_slice(&keep.to_le_bytes());
    }
    if le_u64(d, 0x28) as usize >= n {
        out[0x28..0x30].fill(0);
        out[0x3c..0x40].fill(0);
    }
    out
}

fn segment_cuts(d: &[u8]) -> Vec<Case> {
    let pcln = pclntab_header_at(d);
    let mut cuts: Vec<usize> = (1..40).map(|i| 4096 + (d.len() - 4096) * i / 40).collect();
    cuts.extend([0, 4, 8, 40, 72, 100, 1 << 12, 1 << 16, 1 << 18].map(|k| pcln + k));
    cuts.retain(|&n| n < d.len());
    cuts.into_iter()
        .map(|n| (format!("segments cut at {n}"), Patch::CutSegments(n)))
        .collect()
}

/// 1 to 8 random bytes of each region changed, `seeds` times per region.
fn flips(d: &[u8], regions: Vec<(&str, std::ops::Range<usize>)>, seeds: u64) -> Vec<Case> {
    let mut out = Vec::new();
    for (name, range) in regions {
        let range = range.start.min(d.len())..range.end.min(d.len());
        for seed in 0..seeds {
            let mut rng = Rng(seed ^ (range.start as u64) << 20);
            let xors = (0..1 + rng.below(8))
                .map(|_| {
                    (
                        range.start + rng.below(range.len()),
                        1 + rng.below(255) as u8,
                    )
                })
                .collect();
            out.push((
                format!("{name}: random flips, seed {seed}"),
                Patch::Xor(xors),
            ));
        }
    }
    out
}

const NASTY: [u64; 8] = [
    0,
    1,
    0x7fff_ffff,
    0xffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
    1 << 32,
    0x40_0000,
];

/// A field to set to each extreme value, with other fields set first (`also`).
struct Target {
    name: String,
    at: usize,
    width: usize,
    also: Vec<(usize, usize, u64)>,
}

fn target(name: String, at: usize, width: usize) -> Target {
    Target {
        name,
        at,
        width,
        also: Vec::new(),
    }
}

/// Extreme values in the pclntab header, the function table, the moduledata and the program
/// headers; and in pclntab's textStart when the moduledata cannot be found.
fn word_targets(d: &[u8]) -> Vec<Target> {
    let pcln = pclntab_header_at(d);
    let mut out: Vec<Target> = (1..9)
        .map(|w| target(format!("pclntab word {w}"), pcln + 8 * w, 8))
        .collect();
    let functab = pcln + le_u64(d, pcln + 64) as usize;
    let mut rng = Rng(7);
    for _ in 0..16 {
        out.push(target(
            "functab u32".into(),
            functab + 4 * rng.below(1 << 14),
            4,
        ));
    }
    for (h, ..) in load_segments(d) {
        for (field, off) in [("offset", 8), ("vaddr", 16), ("filesz", 32), ("memsz", 40)] {
            out.push(target(format!("PT_LOAD at {h:#x} p_{field}"), h + off, 8));
        }
    }
    let clean = mdt::gobin::GoBinary::analyze(Path::new("clean"), d).expect("clean binary");
    if let Some(md) = clean.moduledata.and_then(|m| va_to_file(d, m.vaddr)) {
        for off in [0, 8, 176, 184, 280, 288, 296, 304, 312, 320, 344] {
            out.push(target(format!("moduledata+{off}"), md + off, 8));
        }
        out.push(Target {
            also: vec![(md, 8, 0)],
            ..target("textStart without moduledata".into(), pcln + 24, 8)
        });
    }
    out
}

fn word_smashes(d: &[u8]) -> Vec<Case> {
    let mut out = Vec::new();
    for t in word_targets(d)
        .into_iter()
        .filter(|t| t.at + t.width <= d.len())
    {
        for value in NASTY {
            let mut words = t.also.clone();
            words.push((t.at, t.width, value));
            out.push((format!("{} = {value:#x}", t.name), Patch::Words(words)));
        }
    }
    out
}

/// The compressed DWARF and the section headers, for the slower unstripped reads.
fn dwarf_regions(d: &[u8]) -> Vec<(&'static str, std::ops::Range<usize>)> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(d).expect("ELF");
    let mut out: Vec<(&'static str, std::ops::Range<usize>)> = Vec::new();
    for name in [".debug_info", ".debug_abbrev", ".debug_str"] {
        if let Some((off, len)) = file.section_by_name(name).and_then(|s| s.file_range()) {
            out.push((name, off as usize..(off + len.min(4096)) as usize));
        }
    }
    let shoff = le_u64(d, 0x28) as usize;
    out.push(("section headers", shoff..shoff + 64 * le_u16(d, 0x3c)));
    out
}

/// What mdt reads from a binary: the analysis and, when that succeeds, the line tables and
/// inline trees of the map functions and of a few other pcs (symbolization).
fn read_everything(data: &[u8]) {
    use mdt::gobin::{elf::Elf, pclntab::Pclntab, GoBinary};
    let Ok(b) = GoBinary::analyze(Path::new("corrupt"), data) else {
        return;
    };
    let (Ok(elf), gofunc) = (Elf::parse(data), b.moduledata.map(|m| m.gofunc)) else {
        return;
    };
    let Ok(table) = Pclntab::find(&elf) else {
        return;
    };
    let read = |va: u64, len: u64| elf.read_va(va, len);
    let mut rng = Rng(b.text_base);
    let mut pcs: Vec<u64> = (0..8)
        .map(|_| b.text_base.wrapping_add(rng.next() % (1 << 20)))
        .collect();
    for f in &b.functions {
        pcs.push(f.address + f.probe_offset);
        pcs.extend(f.ret_offsets.iter().map(|r| f.address + r));
    }
    for pc in pcs {
        let _ = table.frames_at(pc, b.text_base, gofunc, &read);
    }
}

/// Runs the reader on every case; returns the ones that panicked.
fn panics(label: &str, d: &[u8], cases: Vec<Case>) -> Vec<String> {
    cases
        .into_iter()
        .filter_map(|(what, patch)| {
            let data = patch.apply(d);
            let run = std::panic::catch_unwind(|| read_everything(&data));
            run.err().map(|e| {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("{label}: {what}: panicked: {msg}")
            })
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Depth {
    /// Everything: truncations, cut segments, flips in every region, extreme words.
    Full,
    /// Flips and extreme words only.
    Flips,
    /// A few flips in the DWARF and the section headers (reading DWARF is slow in debug builds).
    Dwarf,
}

fn corrupt_all(tc: &Toolchain, v: Variant, depth: Depth) -> (usize, Vec<String>) {
    let d = std::fs::read(build_fixture("deletes", tc, v)).unwrap();
    let cases = match depth {
        Depth::Full => [
            truncations(&d),
            segment_cuts(&d),
            flips(&d, regions(&d), 24),
            word_smashes(&d),
        ]
        .into_iter()
        .flatten()
        .collect(),
        Depth::Flips => [flips(&d, regions(&d), 12), word_smashes(&d)]
            .into_iter()
            .flatten()
            .collect(),
        Depth::Dwarf => flips(&d, dwarf_regions(&d), 4),
    };
    let n = cases.len();
    (n, panics(&format!("{tc} {v}"), &d, cases))
}

#[test]
fn reader_never_panics_on_corrupt_binaries() {
    let t0 = Instant::now();
    let tcs = toolchains();
    let (oldest, newest) = (tcs.first().unwrap(), tcs.last().unwrap());
    let jobs = [
        (oldest, Variant::Strip, Depth::Full),
        (newest, Variant::NoSectionHeaders, Depth::Full),
        (oldest, Variant::NoSectionHeaders, Depth::Flips),
        (newest, Variant::Strip, Depth::Flips),
        (newest, Variant::Plain, Depth::Dwarf),
    ];
    let results: Vec<(usize, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|&(tc, v, depth)| s.spawn(move || corrupt_all(tc, v, depth)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let cases: usize = results.iter().map(|r| r.0).sum();
    let failures: Vec<String> = results.into_iter().flat_map(|r| r.1).collect();
    assert!(
        failures.is_empty(),
        "{} of {cases} corrupt binaries made the reader panic:\n{}",
        failures.len(),
        failures.join("\n")
    );
    note(&format!(
        "inspect: {cases} corrupt binaries read without a panic in {:.1?}",
        t0.elapsed()
    ));
}
