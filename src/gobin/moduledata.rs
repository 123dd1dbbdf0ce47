//! `runtime.firstmoduledata`: the runtime's description of the module. mdt
//! needs its `text` (the base that pclntab entries are relative to; not the
//! `.text` section start in cgo binaries) and its `types` range (to turn a
//! map type pointer into a name). Found without symbols by its first field,
//! which points at the pclntab header. Field offsets were read from the
//! DWARF of `runtime.moduledata` built by each toolchain.

use super::bytes;
use super::elf::Elf;
use super::pclntab::Pclntab;
use super::version::GoVersion;

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ModuleData {
    /// Link-time virtual address of the structure.
    pub vaddr: u64,
    /// `runtime.text`.
    pub text: u64,
    /// `[types, etypes)`, link-time addresses (relocate them for a PIE).
    pub types: u64,
    pub etypes: u64,
    /// `go:func.*`: the base of the 1.18+ funcdata offsets (inline trees).
    pub gofunc: u64,
}

/// Field offsets that moved between releases (64-bit).
pub struct Fields {
    pub text: u64,
    pub types: u64,
    pub etypes: u64,
    pub gofunc: u64,
}

pub fn fields(version: Option<GoVersion>) -> Fields {
    let minor = version.map_or(u32::MAX, |v| v.minor);
    match minor {
        // 1.20 added covctrs/ecovctrs before `end`.
        0..=19 => Fields {
            text: 176,
            types: 280,
            etypes: 288,
            gofunc: 304,
        },
        // 1.27 inserted `typedesclen` between types and etypes.
        20..=26 => Fields {
            text: 176,
            types: 296,
            etypes: 304,
            gofunc: 320,
        },
        // 1.27 inserted `typedesclen` after types, `itaboffset`/`itabsize` after etypes.
        _ => Fields {
            text: 176,
            types: 296,
            etypes: 312,
            gofunc: 344,
        },
    }
}

pub fn find(elf: &Elf, pclntab: &Pclntab, version: Option<GoVersion>) -> Option<ModuleData> {
    let vaddr = locate(elf, pclntab)?;
    let f = fields(version);
    let field = |off: u64| elf.read_va(vaddr + off, 8).and_then(|b| bytes::u64_at(b, 0));
    Some(ModuleData {
        vaddr,
        text: field(f.text)?,
        types: field(f.types)?,
        etypes: field(f.etypes)?,
        gofunc: field(f.gofunc)?,
    })
}

fn locate(elf: &Elf, pclntab: &Pclntab) -> Option<u64> {
    if let Some(addr) = elf.symbol_address("runtime.firstmoduledata") {
        return Some(addr);
    }
    let funcnametab = pclntab.vaddr + pclntab.funcname_offset;
    for seg in elf.segments.iter().filter(|s| s.writable) {
        let data = elf.segment_data(seg);
        let mut off = (8 - seg.vaddr % 8) % 8;
        while off + 16 <= data.len() as u64 {
            if bytes::u64_at(data, off) == Some(pclntab.vaddr)
                && bytes::u64_at(data, off + 8) == Some(funcnametab)
            {
                return Some(seg.vaddr + off);
            }
            off += 8;
        }
    }
    None
}
