//! Where a Go program dies of map misuse ("concurrent map writes" and the
//! other unrecoverable map errors): `runtime.fatal`, in every release from
//! 1.19. From 1.24 the Swiss maps call `internal/runtime/maps.fatal`, a
//! wrapper whose body calls `runtime.fatal`: a probe on `runtime.fatal` alone
//! sees them all. Found in `.gopclntab` like the delete functions, shown by
//! `mdt inspect`, checked per release against an independent disassembler
//! (tests/inspect.rs). docs/go-runtime.md §8.2.

use serde::Serialize;

use super::disasm;
use super::elf::{Arch, Elf};
use super::pclntab::{Func, Pclntab};

pub const FATAL: &str = "runtime.fatal";

/// Where the thread a goroutine runs on is found from its g, and that
/// thread's scheduler goroutine: `runtime.g.m` (after `stack`, two stack
/// guards, `_panic` and `_defer`) and `runtime.m.g0` (its first field),
/// the same in every release 1.19 to 1.27 (the runtime's assembly uses
/// them: g_m, m_g0); checked against DWARF by tests/inspect.rs. With
/// `g.stack` at 0 (lo, hi), they tell a real g from a stale register.
pub const G_M_OFFSET: u64 = 48;
pub const M_G0_OFFSET: u64 = 0;
pub const MAPS_FATAL: &str = "internal/runtime/maps.fatal";

#[derive(Debug, Clone, Serialize)]
pub struct FatalFunc {
    /// Link-time address of `runtime.fatal`'s entry, and its file offset.
    pub address: u64,
    pub file_offset: u64,
    /// The mnemonic of its first instruction (where an entry probe goes: it
    /// has no stack-growth check, being NOSPLIT): `push`, `sub`.
    pub first_instruction: String,
    /// Whether the kernel emulates that instruction (else single-steps it).
    pub emulated: bool,
    /// `internal/runtime/maps.fatal` is linked (Swiss maps), and whether it
    /// calls `runtime.fatal`.
    pub maps_fatal_calls_it: Option<bool>,
}

/// `runtime.fatal` of the binary, and what calls it; None when it is not
/// linked or its code cannot be read (or is not x86-64).
pub fn find(
    elf: &Elf,
    pclntab: &Pclntab,
    text_base: u64,
    fatal: Option<&Func>,
    maps_fatal: Option<&Func>,
) -> Option<FatalFunc> {
    if elf.arch != Arch::X86_64 {
        return None;
    }
    let code_of = |f: &Func| {
        let (start, end) = pclntab.func_range(f, text_base)?;
        Some((elf.read_va(start, end.checked_sub(start)?)?, start))
    };
    let (code, start) = code_of(fatal?)?;
    let (first_instruction, emulated) = disasm::first_instruction(code, start)?;
    let maps_fatal_calls_it = maps_fatal.map(|f| {
        code_of(f)
            .and_then(|(code, at)| disasm::analyze_x86_64(code, at).ok())
            .is_some_and(|facts| facts.call_targets.contains(&start))
    });
    Some(FatalFunc {
        address: start,
        file_offset: elf.va_to_offset(start)?,
        first_instruction,
        emulated,
        maps_fatal_calls_it,
    })
}
