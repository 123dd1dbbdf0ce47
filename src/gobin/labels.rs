//! Where a goroutine's pprof labels are (`runtime.g.labels`, set by
//! `runtime/pprof.Do` and `SetGoroutineLabels`) and how its Go release
//! stores them. From DWARF when the binary has it; otherwise from the
//! machine code of `runtime/pprof.runtime_setProfLabel`, whose one job is
//! that store; otherwise from a table of verified values. A binary that
//! does not link `runtime/pprof` can set no labels: nothing is read.
//! See docs/go-runtime.md §4.

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, OpKind, Register};

use super::elf::Elf;
use super::layout::{borrow, dwarf_of, member_offset, Dwarf, LayoutSource};
use super::version::GoVersion;

/// The function that stores a goroutine's labels; linked only with
/// `runtime/pprof`.
pub const SET_PROF_LABEL: &str = "runtime/pprof.runtime_setProfLabel";

/// How a label set is stored (`enum mdt_label_store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelStore {
    /// `*labelMap`, a `map[string]string` (up to Go 1.23).
    Map,
    /// `*labelMap{[]label}`, sorted by key (Go 1.24+).
    Slice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LabelLayout {
    /// Offset of `labels` in `runtime.g`.
    pub offset: u64,
    pub store: LabelStore,
    pub source: LayoutSource,
    /// What the machine code of `runtime_setProfLabel` says, whatever the
    /// source (shown by `mdt inspect`; checked against DWARF in tests).
    pub code_offset: Option<u64>,
}

/// The label layout of a binary that links `runtime_setProfLabel`, whose
/// code is `set_prof_label` (bytes, entry address) when it could be read;
/// `dwarf`: its DWARF, already parsed for the other offsets.
pub fn find(
    dwarf: Option<&Dwarf>,
    version: GoVersion,
    set_prof_label: Option<(&[u8], u64)>,
) -> Option<LabelLayout> {
    let store = store_of(version);
    let code_offset = set_prof_label.and_then(|(code, entry)| from_code(code, entry));
    let dwarf_offset = dwarf.and_then(|d| member_offset(d, "runtime.g", "labels"));
    let (offset, source) = if let Some(offset) = dwarf_offset {
        (offset, LayoutSource::Dwarf)
    } else if let Some(offset) = code_offset {
        (offset, LayoutSource::MachineCode)
    } else {
        (from_version(version)?, LayoutSource::VersionTable)
    };
    Some(LabelLayout {
        offset,
        store,
        source,
        code_offset,
    })
}

/// `runtime/pprof/label.go` changed the set from a map to a sorted slice in
/// Go 1.24 (checked against each toolchain's DWARF in tests/labels.rs).
pub fn store_of(version: GoVersion) -> LabelStore {
    if version.at_least(24) {
        LabelStore::Slice
    } else {
        LabelStore::Map
    }
}

/// The largest offset of `g.labels` the probe can read with the head of g
/// (`MDT_G_HEAD_BYTES` less the pointer).
pub const G_LABELS_MAX: u64 = 504;

/// The displacement of the store of the labels into the goroutine: the last
/// 8-byte store through a base register other than SP, BP and R11 (the
/// write barrier's buffer) at an offset a `runtime.g` field can have and
/// the probe can read. amd64 only.
pub fn from_code(code: &[u8], entry: u64) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let mut found = None;
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.is_invalid() {
            return None;
        }
        if insn.code() == Code::Mov_rm64_r64
            && insn.op0_kind() == OpKind::Memory
            && !matches!(
                insn.memory_base(),
                Register::RSP | Register::RBP | Register::R11 | Register::None | Register::RIP
            )
            && insn.memory_index() == Register::None
            && (0x100..=G_LABELS_MAX).contains(&insn.memory_displacement64())
        {
            found = Some(insn.memory_displacement64());
        }
        if insn.mnemonic() == iced_x86::Mnemonic::Ret {
            break;
        }
    }
    found
}

/// Verified offsets of `g.labels` (tests/labels.rs checks each against the
/// toolchain's DWARF): it moves with the fields before it.
pub fn from_version(v: GoVersion) -> Option<u64> {
    if v.major != 1 {
        return None;
    }
    match v.minor {
        19 => Some(360),
        21 | 22 | 25 => Some(344),
        23 | 24 | 26 | 27 => Some(352),
        _ => None,
    }
}

/// One fact the label reader depends on: its name, what the binary's DWARF
/// says (None: DWARF does not say), and the value mdt uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub what: &'static str,
    pub dwarf: Option<u64>,
    pub mdt: u64,
}

/// The facts behind reading labels in a binary of `version`, each beside
/// what its DWARF says (tests/labels.rs checks they agree on every
/// toolchain): the offset of `g.labels`, whether the set is a struct (a
/// slice of labels) or a map, and that layout's offsets.
pub fn dwarf_facts(elf: &Elf, version: GoVersion) -> Vec<Fact> {
    use super::abi;
    use super::layout::struct_layouts;
    let Some(sections) = dwarf_of(elf) else {
        return Vec::new();
    };
    let dwarf = borrow(&sections);
    let names = [
        "runtime/pprof.labelMap",
        "runtime/pprof.label",
        "internal/runtime/pprof/label.Label",
        "runtime.hmap",
        "bucket<string,string>",
    ];
    let layouts = struct_layouts(&dwarf, &names);
    let member = |ty: &str, m: &str| layouts.get(ty).and_then(|l| l.members.get(m).copied());
    let store = store_of(version);
    let mut facts = vec![
        Fact {
            what: "runtime.g.labels",
            dwarf: member_offset(&dwarf, "runtime.g", "labels"),
            mdt: from_version(version).unwrap_or(0),
        },
        Fact {
            what: "labelMap is a struct (1) or a map (0)",
            dwarf: Some(u64::from(layouts.contains_key("runtime/pprof.labelMap"))),
            mdt: u64::from(store == LabelStore::Slice),
        },
    ];
    let mut fact = |what, dwarf, mdt| facts.push(Fact { what, dwarf, mdt });
    match store {
        LabelStore::Slice => {
            let label = ["runtime/pprof.label", "internal/runtime/pprof/label.Label"]
                .into_iter()
                .find_map(|n| layouts.get(n));
            fact("label size", label.and_then(|l| l.size), abi::LABEL_SIZE);
            let field = |names: [&str; 2]| {
                label.and_then(|l| names.iter().find_map(|n| l.members.get(*n).copied()))
            };
            fact(
                "label value",
                field(["value", "Value"]),
                abi::STRING_LEN * 2,
            );
        }
        LabelStore::Map => {
            fact("hmap.B", member("runtime.hmap", "B"), abi::HMAP_B);
            fact(
                "hmap.buckets",
                member("runtime.hmap", "buckets"),
                abi::HMAP_BUCKETS,
            );
            fact(
                "hmap.oldbuckets",
                member("runtime.hmap", "oldbuckets"),
                abi::HMAP_OLDBUCKETS,
            );
            let bucket = "bucket<string,string>";
            fact(
                "bucket keys",
                member(bucket, "keys"),
                abi::LABEL_BUCKET_KEYS,
            );
            fact(
                "bucket values",
                member(bucket, "values"),
                abi::LABEL_BUCKET_VALUES,
            );
            fact(
                "bucket overflow",
                member(bucket, "overflow"),
                abi::LABEL_BUCKET_OVERFLOW,
            );
            fact(
                "bucket size",
                layouts.get(bucket).and_then(|l| l.size),
                abi::LABEL_BUCKET_SIZE,
            );
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_found_in_the_machine_code() {
        // go1.19's runtime_setProfLabel: `mov %rax,0x168(%r14)` on the path
        // without the write barrier, `add $0x168,%rdi` on the other.
        let go119 = [
            0x49, 0x3b, 0x66, 0x10, // cmp 0x10(%r14),%rsp
            0x76, 0x36, // jbe
            0x48, 0x83, 0xec, 0x08, // sub $8,%rsp
            0x48, 0x89, 0x2c, 0x24, // mov %rbp,(%rsp)
            0x48, 0x8d, 0x2c, 0x24, // lea (%rsp),%rbp
            0x49, 0x89, 0x86, 0x68, 0x01, 0x00, 0x00, // mov %rax,0x168(%r14)
            0x48, 0x8b, 0x2c, 0x24, // mov (%rsp),%rbp
            0x48, 0x83, 0xc4, 0x08, // add $8,%rsp
            0xc3, // ret
        ];
        assert_eq!(from_code(&go119, 0x459f80), Some(0x168));
        // go1.21+: the store goes through the g saved on the stack, after
        // the write barrier's stores through R11.
        let go123 = [
            0x49, 0x89, 0x03, // mov %rax,(%r11)
            0x49, 0x8b, 0x8e, 0x60, 0x01, 0x00, 0x00, // mov 0x160(%r14),%rcx
            0x49, 0x89, 0x4b, 0x08, // mov %rcx,0x8(%r11)
            0x48, 0x8b, 0x0c, 0x24, // mov (%rsp),%rcx
            0x48, 0x89, 0x81, 0x60, 0x01, 0x00, 0x00, // mov %rax,0x160(%rcx)
            0xc3,
        ];
        assert_eq!(from_code(&go123, 0x465dc5), Some(0x160));
        assert_eq!(from_code(&[0xc3], 0), None);
    }

    #[test]
    fn the_table_knows_the_verified_releases_only() {
        let at = |minor| from_version(GoVersion::new(1, minor));
        assert_eq!(at(19), Some(360));
        assert_eq!(at(20), None);
        assert_eq!(at(25), Some(344));
        assert_eq!(at(27), Some(352));
        assert_eq!(at(28), None);
        assert_eq!(store_of(GoVersion::new(1, 23)), LabelStore::Map);
        assert_eq!(store_of(GoVersion::new(1, 24)), LabelStore::Slice);
    }
}
