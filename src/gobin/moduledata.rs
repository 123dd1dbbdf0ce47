//! `runtime.firstmoduledata`: the runtime's description of the module. mdt
//! needs its `text` (the base that pclntab entries are relative to; not the
//! `.text` section start in cgo binaries) and its `types` range (to turn a
//! map type pointer into a name). Found without symbols by its first field,
//! which points at the pclntab header. Field offsets were read from the
//! DWARF of `runtime.moduledata` built by each toolchain.

use super::bytes;
use super::elf::Elf;
use super::pclntab::{Format, Pclntab};
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
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub text: u64,
    pub types: u64,
    pub etypes: u64,
    pub gofunc: u64,
}

pub fn fields(version: Option<GoVersion>) -> Fields {
    let minor = version.map_or(u32::MAX, |v| v.minor);
    match minor {
        0..=19 => LAYOUTS[0],
        20..=26 => LAYOUTS[1],
        _ => LAYOUTS[2],
    }
}

/// The layouts of the supported releases, oldest first.
const LAYOUTS: [Fields; 3] = [
    // 1.16 – 1.19 (1.16 and 1.17 have no `gofunc`: another field is read there).
    Fields {
        text: 176,
        types: 280,
        etypes: 288,
        gofunc: 304,
    },
    // 1.20 added covctrs/ecovctrs before `end`.
    Fields {
        text: 176,
        types: 296,
        etypes: 304,
        gofunc: 320,
    },
    // 1.27 inserted `typedesclen` after types, `itaboffset`/`itabsize` after etypes.
    Fields {
        text: 176,
        types: 296,
        etypes: 312,
        gofunc: 344,
    },
];

/// The module data, read with the layout of `version`. With `None` (only the
/// pclntab format, a range of releases, is known): with the first layout of
/// that range, oldest first, whose values make sense. Oldest first matters:
/// 1.27's `typedesclen` sits where 1.20–1.26 keep `etypes` and is no address,
/// while a 1.26 binary read with the 1.27 layout would find plausible
/// addresses in the wrong fields.
pub fn find(elf: &Elf, pclntab: &Pclntab, version: Option<GoVersion>) -> Option<ModuleData> {
    let vaddr = locate(elf, pclntab)?;
    let candidates: &[Fields] = match (version, pclntab.format) {
        (Some(v), _) => &[fields(Some(v))],
        (None, Format::Go120) => &LAYOUTS[1..],
        (None, _) => &LAYOUTS[..1],
    };
    candidates
        .iter()
        .filter_map(|f| read(elf, vaddr, f))
        .find(|md| plausible(elf, md))
}

fn read(elf: &Elf, vaddr: u64, f: &Fields) -> Option<ModuleData> {
    let field = |off: u64| {
        elf.read_va(vaddr.checked_add(off)?, 8)
            .and_then(|b| bytes::u64_at(b, 0))
    };
    Some(ModuleData {
        vaddr,
        text: field(f.text)?,
        types: field(f.types)?,
        etypes: field(f.etypes)?,
        gofunc: field(f.gofunc)?,
    })
}

/// The addresses point into the file, and `[types, etypes)` is a range.
/// (Not `gofunc`: 1.16 and 1.17 have no such field.)
fn plausible(elf: &Elf, md: &ModuleData) -> bool {
    let backed = |va: u64| elf.read_va(va, 1).is_some();
    md.types < md.etypes && backed(md.types) && backed(md.etypes - 1) && backed(md.text)
}

fn locate(elf: &Elf, pclntab: &Pclntab) -> Option<u64> {
    if let Some(addr) = elf.symbol_address("runtime.firstmoduledata") {
        return Some(addr);
    }
    let funcnametab = pclntab.vaddr.wrapping_add(pclntab.funcname_offset);
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
