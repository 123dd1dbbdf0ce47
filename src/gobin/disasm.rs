//! Machine-code facts about one function, from a real x86-64 decoder:
//! where its stack check ends (the probe goes just after it, so a `morestack`
//! re-entry is not seen twice), where its `RET`s are (for latency probes:
//! never uretprobes on Go), and which functions it calls directly.

use anyhow::{bail, Result};
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CodeFacts {
    /// Offset from the entry of the first instruction after the stack-growth
    /// check; 0 when the function has no check (NOSPLIT).
    pub probe_offset: u64,
    /// Offsets from the entry of every `RET` instruction.
    pub ret_offsets: Vec<u64>,
    /// Virtual addresses of direct call (and tail-jump) targets outside the function.
    #[serde(skip)]
    pub call_targets: Vec<u64>,
    /// Length of the code without the alignment padding after it: the size
    /// the linker gives the function symbol.
    pub code_len: u64,
}

/// Go's g register on amd64.
const G_REG: Register = Register::R14;
/// `g.stackguard0`, compared against SP by every split-stack prologue.
const STACKGUARD0: u64 = 0x10;

pub fn analyze_x86_64(code: &[u8], entry: u64) -> Result<CodeFacts> {
    let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut instrs = Vec::new();
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.is_invalid() {
            bail!(
                "cannot decode the instruction at {:#x} (offset {:#x})",
                insn.ip(),
                insn.ip() - entry
            );
        }
        instrs.push(insn);
    }
    let end = entry + code.len() as u64;
    let mut facts = CodeFacts {
        probe_offset: stack_check_end(&instrs).map_or(0, |ip| ip - entry),
        code_len: code_end(&instrs).map_or(0, |ip| ip - entry),
        ..CodeFacts::default()
    };
    for i in &instrs {
        match i.mnemonic() {
            Mnemonic::Ret => facts.ret_offsets.push(i.ip() - entry),
            Mnemonic::Call | Mnemonic::Jmp if i.op0_kind() == OpKind::NearBranch64 => {
                let target = i.near_branch64();
                if !(entry..end).contains(&target) {
                    facts.call_targets.push(target);
                }
            }
            _ => {}
        }
    }
    Ok(facts)
}

/// The end of the last instruction that is not an `INT3`. pclntab only gives
/// where the next function starts; the linker fills the gap up to the 32-byte
/// aligned next entry with `INT3`s (amd64 `CodePad`), and Go never ends a
/// function with one. Decoded, not scanned for 0xCC: a function may well end
/// in `JMP rel8` with displacement 0xCC (`eb cc`).
fn code_end(instrs: &[Instruction]) -> Option<u64> {
    instrs
        .iter()
        .rev()
        .find(|i| i.mnemonic() != Mnemonic::Int3)
        .map(Instruction::next_ip)
}

/// The address after the `CMP SP-ish, 16(R14); JBE/JB morestack` pair that
/// opens a split-stack function, searched among its first few instructions
/// (big frames compute `LEA -n(SP), R12` first).
fn stack_check_end(instrs: &[Instruction]) -> Option<u64> {
    let window = &instrs[..instrs.len().min(4)];
    for pair in window.windows(2) {
        let (cmp, jump) = (&pair[0], &pair[1]);
        let compares_guard = cmp.mnemonic() == Mnemonic::Cmp
            && (0..cmp.op_count()).any(|n| {
                cmp.op_kind(n) == OpKind::Memory
                    && cmp.memory_base() == G_REG
                    && cmp.memory_displacement64() == STACKGUARD0
            });
        let branches = matches!(jump.mnemonic(), Mnemonic::Jbe | Mnemonic::Jb);
        if compares_guard && branches {
            return Some(jump.next_ip());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_probe_offset_rets_and_calls() {
        // cmp rsp,[r14+0x10]; jbe +5; push rbp; call rel32; pop rbp; ret; int3
        let code = [
            0x49, 0x3b, 0x66, 0x10, // cmp rsp,[r14+0x10]
            0x76, 0x09, // jbe
            0x55, // push rbp
            0xe8, 0x00, 0x10, 0x00, 0x00, // call +0x1000
            0x5d, // pop rbp
            0xc3, // ret
            0xcc, // int3
            0xc3, // ret (reached by nothing but decoded as a RET)
        ];
        let facts = analyze_x86_64(&code, 0x1000).unwrap();
        assert_eq!(facts.probe_offset, 6);
        assert_eq!(facts.ret_offsets, vec![13, 15]);
        assert_eq!(facts.code_len, 16);
        assert_eq!(facts.call_targets, vec![0x1000 + 12 + 0x1000]);
    }

    #[test]
    fn padding_is_not_code_but_a_jmp_ending_in_0xcc_is() {
        // ret ; int3 ; int3 | jmp -0x34 (eb cc) ; int3
        let facts = analyze_x86_64(&[0xc3, 0xcc, 0xcc], 0).unwrap();
        assert_eq!(facts.code_len, 1);
        let facts = analyze_x86_64(&[0xc3, 0xeb, 0xcc, 0xcc], 0).unwrap();
        assert_eq!(facts.code_len, 3);
    }

    #[test]
    fn a_byte_0xc3_inside_an_instruction_is_not_a_ret() {
        // mov eax, 0xc3c3c3c3 ; ret
        let code = [0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3];
        let facts = analyze_x86_64(&code, 0).unwrap();
        assert_eq!(facts.probe_offset, 0);
        assert_eq!(facts.ret_offsets, vec![5]);
    }
}
