//! Machine-code facts about one function, from a real x86-64 decoder:
//! where its stack check ends (the probe goes just after it, so a `morestack`
//! re-entry is not seen twice), where its `RET`s are and where its exit probes
//! go (for latency probes: never uretprobes on Go, which moves stacks), and
//! which functions it calls directly.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};

/// One instruction an exit probe goes on: every call of the function that
/// returns executes exactly one exit point, after which the function runs
/// only its epilogue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExitPoint {
    /// Offset from the entry.
    pub offset: u64,
    /// Lowercase mnemonic: `ret`, `jmp`.
    pub mnemonic: String,
    /// Whether the x86-64 kernel emulates the probed instruction (JMP, Jcc,
    /// CALL, PUSH reg, NOP: about 0.5 µs) instead of single-stepping it out
    /// of line (RET and the rest: several µs).
    pub emulated: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CodeFacts {
    /// Offset from the entry of the first instruction after the stack-growth
    /// check; 0 when the function has no check (NOSPLIT).
    pub probe_offset: u64,
    /// Offsets from the entry of every `RET` instruction.
    pub ret_offsets: Vec<u64>,
    /// Where exit probes go, in offset order (the rule: `fn exit_points`).
    pub exit_points: Vec<ExitPoint>,
    /// Why `exit_points` is empty, when it is.
    pub exit_note: Option<String>,
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
    match exit_points(&instrs, entry, end) {
        Ok(points) if points.is_empty() => {
            facts.exit_note = Some("the function has no RET: it never returns".into());
        }
        Ok(points) => facts.exit_points = points,
        Err(note) => facts.exit_note = Some(note),
    }
    Ok(facts)
}

/// The mnemonic of the first instruction of `code` (at `entry`), lower case
/// (`push`, `sub`), and whether the kernel emulates it.
pub fn first_instruction(code: &[u8], entry: u64) -> Option<(String, bool)> {
    let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let i = decoder.can_decode().then(|| decoder.decode())?;
    if i.is_invalid() {
        return None;
    }
    Some((
        format!("{:?}", i.mnemonic()).to_lowercase(),
        kernel_emulates(&i),
    ))
}

/// Whether the x86-64 uprobe code emulates `i` rather than single-stepping a
/// copy of it (arch/x86/kernel/uprobes.c: `branch_setup_xol_ops` for relative
/// CALL, JMP and Jcc, `push_setup_xol_ops` for PUSH reg, and NOPs).
pub fn kernel_emulates(i: &Instruction) -> bool {
    match i.mnemonic() {
        Mnemonic::Jmp | Mnemonic::Call => i.op0_kind() == OpKind::NearBranch64,
        Mnemonic::Push => i.op0_kind() == OpKind::Register,
        Mnemonic::Nop => true,
        _ => i.is_jcc_short_or_near(),
    }
}

/// The exit points of the function decoded as `instrs`, spanning
/// `[entry, end)`, or why it has none that can be trusted.
///
/// For each `RET`, its epilogue block is the longest run of instructions
/// ending at it with no branch, call or other `RET`, and where no instruction
/// but the first is a jump target (jumps back to the entry, the `morestack`
/// path, do not count). The block's predecessors are the fall-through from
/// the instruction before it (unless that is an unconditional or indirect
/// JMP, a RET, INT3 or UD2), the caller when the block starts at the entry,
/// and every jump to its first instruction. When they are all unconditional
/// near JMPs, those JMPs are the exit points (emulated, so cheap); otherwise
/// the RET is. The JMPs are chosen only when the block writes no memory but
/// the stack: what runs after the probe must not be the very update (of the
/// map's count, say) that the exit probe wants to see done.
///
/// A JMP or Jcc out of the function (other than to the entry: a tail call)
/// or an indirect JMP makes the analysis unsafe: the function would return
/// through code or jumps not seen here. So does a jump into the middle of an
/// instruction.
fn exit_points(
    instrs: &[Instruction],
    entry: u64,
    end: u64,
) -> std::result::Result<Vec<ExitPoint>, String> {
    let index: BTreeMap<u64, usize> = instrs
        .iter()
        .enumerate()
        .map(|(n, i)| (i.ip(), n))
        .collect();
    // Jump target index -> the indexes of the jumps to it.
    let mut jumps_to: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (n, i) in instrs.iter().enumerate() {
        let off = i.ip() - entry;
        match i.flow_control() {
            FlowControl::IndirectBranch => {
                return Err(format!(
                    "indirect JMP at +{off:#x}: its targets are unknown, \
                     so are the paths to the RETs"
                ));
            }
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch => {}
            _ => continue,
        }
        if i.op0_kind() != OpKind::NearBranch64 {
            return Err(format!("far jump at +{off:#x}"));
        }
        let target = i.near_branch64();
        if target == entry {
            continue; // the morestack path: the call starts over
        }
        if !(entry..end).contains(&target) {
            return Err(format!(
                "tail jump at +{off:#x} to {target:#x}, outside the function: \
                 it returns from code not analyzed here"
            ));
        }
        let Some(&t) = index.get(&target) else {
            return Err(format!(
                "the jump at +{off:#x} lands inside an instruction (+{:#x})",
                target - entry
            ));
        };
        jumps_to.entry(t).or_default().push(n);
    }

    let mut info = InstructionInfoFactory::new();
    let mut points = Vec::new();
    for (r, ret) in instrs.iter().enumerate() {
        if ret.flow_control() != FlowControl::Return {
            continue;
        }
        let mut start = r;
        while start > 0
            && !jumps_to.contains_key(&start)
            && instrs[start - 1].flow_control() == FlowControl::Next
        {
            start -= 1;
        }
        let falls_through = start == 0 || {
            let prev = &instrs[start - 1];
            !matches!(
                prev.flow_control(),
                FlowControl::UnconditionalBranch
                    | FlowControl::IndirectBranch
                    | FlowControl::Return
            ) && !matches!(prev.mnemonic(), Mnemonic::Int3 | Mnemonic::Ud2)
        };
        let jumps = jumps_to.get(&start).map_or(&[][..], Vec::as_slice);
        let only_jmps = !falls_through
            && !jumps.is_empty()
            && jumps
                .iter()
                .all(|&j| instrs[j].flow_control() == FlowControl::UnconditionalBranch);
        let block_writes_heap = instrs[start..r].iter().any(|i| {
            info.info(i).used_memory().iter().any(|m| {
                !matches!(
                    m.access(),
                    OpAccess::Read | OpAccess::CondRead | OpAccess::NoMemAccess
                ) && !matches!(m.base(), Register::RSP | Register::RBP)
            })
        });
        if only_jmps && !block_writes_heap {
            points.extend(jumps.iter().map(|&j| exit_point(&instrs[j], entry)));
        } else {
            points.push(exit_point(ret, entry));
        }
    }
    points.sort_by_key(|p| p.offset);
    points.dedup();
    Ok(points)
}

fn exit_point(i: &Instruction, entry: u64) -> ExitPoint {
    ExitPoint {
        offset: i.ip() - entry,
        mnemonic: format!("{:?}", i.mnemonic()).to_lowercase(),
        emulated: kernel_emulates(i),
    }
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

    fn ret_at(offset: u64) -> ExitPoint {
        ExitPoint {
            offset,
            mnemonic: "ret".into(),
            emulated: false,
        }
    }

    fn jmp_at(offset: u64) -> ExitPoint {
        ExitPoint {
            offset,
            mnemonic: "jmp".into(),
            emulated: true,
        }
    }

    /// Checked with `objdump -D -b binary -mi386:x86-64`.
    const FALL_THROUGH: [u8; 25] = [
        0x49, 0x3b, 0x66, 0x10, // 0x00 cmp rsp,[r14+0x10]
        0x76, 0x0b, // 0x04 jbe 0x11
        0x55, // 0x06 push rbp
        0x48, 0x89, 0xe5, // 0x07 mov rbp,rsp
        0xe8, 0xf1, 0x0f, 0x00, 0x00, // 0x0a call 0x1000
        0x5d, // 0x0f pop rbp
        0xc3, // 0x10 ret
        0xe8, 0xea, 0x1f, 0x00, 0x00, // 0x11 call 0x2000 (morestack)
        0xeb, 0xe8, // 0x16 jmp 0x0 (the entry)
        0xcc, // 0x18 int3
    ];

    /// Two calls, each followed by a JMP to the shared `pop rbp; ret`.
    const TWO_JMPS: [u8; 40] = [
        0x49, 0x3b, 0x66, 0x10, // 0x00 cmp rsp,[r14+0x10]
        0x76, 0x19, // 0x04 jbe 0x1f
        0x55, // 0x06 push rbp
        0x48, 0x89, 0xe5, // 0x07 mov rbp,rsp
        0x48, 0x85, 0xc0, // 0x0a test rax,rax
        0x74, 0x07, // 0x0d je 0x16
        0xe8, 0xec, 0x0f, 0x00, 0x00, // 0x0f call 0x1000
        0xeb, 0x07, // 0x14 jmp 0x1d
        0xe8, 0xe5, 0x1f, 0x00, 0x00, // 0x16 call 0x2000
        0xeb, 0x00, // 0x1b jmp 0x1d
        0x5d, // 0x1d pop rbp
        0xc3, // 0x1e ret
        0xe8, 0xdc, 0x2f, 0x00, 0x00, // 0x1f call 0x3000 (morestack)
        0xeb, 0xda, // 0x24 jmp 0x0 (the entry)
        0xcc, 0xcc, // 0x26 padding
    ];

    #[test]
    fn an_epilogue_reached_by_falling_through_exits_at_its_ret() {
        let facts = analyze_x86_64(&FALL_THROUGH, 0x1000).unwrap();
        assert_eq!(facts.ret_offsets, vec![0x10]);
        assert_eq!(facts.exit_points, vec![ret_at(0x10)]);
        assert_eq!(facts.exit_note, None);
    }

    #[test]
    fn an_epilogue_reached_only_by_jmps_exits_at_the_jmps() {
        let facts = analyze_x86_64(&TWO_JMPS, 0x1000).unwrap();
        assert_eq!(facts.ret_offsets, vec![0x1e]);
        assert_eq!(facts.exit_points, vec![jmp_at(0x14), jmp_at(0x1b)]);
        assert_eq!(facts.exit_note, None);
    }

    #[test]
    fn one_conditional_jump_into_the_epilogue_keeps_the_ret() {
        let mut code = TWO_JMPS;
        code[0x0e] = 0x0e; // 0x0d je 0x1d: straight into the epilogue
        let facts = analyze_x86_64(&code, 0).unwrap();
        assert_eq!(facts.exit_points, vec![ret_at(0x1e)]);
    }

    #[test]
    fn an_epilogue_that_writes_memory_keeps_the_ret() {
        // TWO_JMPS with `dec qword [rax]` (a map count, say) at the jump target.
        let code = [
            0x49, 0x3b, 0x66, 0x10, // 0x00 cmp rsp,[r14+0x10]
            0x76, 0x1c, // 0x04 jbe 0x22
            0x55, // 0x06 push rbp
            0x48, 0x89, 0xe5, // 0x07 mov rbp,rsp
            0x48, 0x85, 0xc0, // 0x0a test rax,rax
            0x74, 0x07, // 0x0d je 0x16
            0xe8, 0xec, 0x0f, 0x00, 0x00, // 0x0f call 0x1000
            0xeb, 0x07, // 0x14 jmp 0x1d
            0xe8, 0xe5, 0x1f, 0x00, 0x00, // 0x16 call 0x2000
            0xeb, 0x00, // 0x1b jmp 0x1d
            0x48, 0xff, 0x08, // 0x1d dec qword [rax]
            0x5d, // 0x20 pop rbp
            0xc3, // 0x21 ret
            0xe8, 0xd9, 0x2f, 0x00, 0x00, // 0x22 call 0x3000 (morestack)
            0xeb, 0xd7, // 0x27 jmp 0x0
        ];
        let facts = analyze_x86_64(&code, 0).unwrap();
        assert_eq!(facts.exit_points, vec![ret_at(0x21)]);
    }

    #[test]
    fn the_morestack_jmp_back_to_the_entry_is_not_an_exit() {
        // Neither an exit point nor a tail jump, in both fixtures above.
        for code in [&FALL_THROUGH[..], &TWO_JMPS[..]] {
            let facts = analyze_x86_64(code, 0x40_0000).unwrap();
            assert!(facts.exit_note.is_none());
            assert!(facts
                .exit_points
                .iter()
                .all(|e| e.offset != 0x16 && e.offset != 0x24));
        }
        // A RET at the entry is entered by the caller, whatever jumps back there.
        // 0x00 ret ; 0x01 call 0x1000 ; 0x06 jmp 0x0
        let code = [0xc3, 0xe8, 0xfa, 0x0f, 0x00, 0x00, 0xeb, 0xf8];
        let facts = analyze_x86_64(&code, 0).unwrap();
        assert_eq!(facts.exit_points, vec![ret_at(0)]);
    }

    #[test]
    fn a_tail_jump_out_of_the_function_gives_no_exit_points() {
        // 0x00 test rax,rax ; 0x03 je 0xa ; 0x05 jmp 0x1000 ; 0x0a ret
        let code = [
            0x48, 0x85, 0xc0, 0x74, 0x05, 0xe9, 0xf6, 0x0f, 0x00, 0x00, 0xc3,
        ];
        let facts = analyze_x86_64(&code, 0).unwrap();
        assert_eq!(facts.ret_offsets, vec![0x0a]);
        assert_eq!(facts.call_targets, vec![0x1000]);
        assert!(facts.exit_points.is_empty());
        let note = facts.exit_note.unwrap();
        assert!(note.contains("tail jump at +0x5"), "{note}");
    }

    #[test]
    fn an_indirect_jump_or_no_ret_gives_no_exit_points() {
        // jmp rax ; ret
        let facts = analyze_x86_64(&[0xff, 0xe0, 0xc3], 0).unwrap();
        assert!(facts.exit_points.is_empty());
        assert!(facts.exit_note.unwrap().contains("indirect JMP"));
        // call 0x1000 ; int3
        let facts = analyze_x86_64(&[0xe8, 0xfb, 0x0f, 0x00, 0x00, 0xcc], 0).unwrap();
        assert!(facts.exit_points.is_empty());
        assert!(facts.exit_note.unwrap().contains("no RET"));
    }

    #[test]
    fn only_relative_branches_push_reg_and_nop_are_emulated() {
        let decode = |bytes: &[u8]| {
            let mut d = Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE);
            d.decode()
        };
        for (bytes, emulated) in [
            (&[0xeb, 0x00][..], true),              // jmp rel8
            (&[0xe9, 0, 0, 0, 0][..], true),        // jmp rel32
            (&[0x74, 0x00][..], true),              // je rel8
            (&[0x0f, 0x84, 0, 0, 0, 0][..], true),  // je rel32
            (&[0xe8, 0, 0, 0, 0][..], true),        // call rel32
            (&[0x55][..], true),                    // push rbp
            (&[0x41, 0x57][..], true),              // push r15
            (&[0x90][..], true),                    // nop
            (&[0xc3][..], false),                   // ret
            (&[0x5d][..], false),                   // pop rbp
            (&[0x48, 0x83, 0xc4, 0x18][..], false), // add rsp,0x18
            (&[0xff, 0xe0][..], false),             // jmp rax
            (&[0xff, 0xd0][..], false),             // call rax
        ] {
            assert_eq!(kernel_emulates(&decode(bytes)), emulated, "{bytes:x?}");
        }
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
