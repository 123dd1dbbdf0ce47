//! The ELF view the Go readers need: loadable segments (always present, even
//! when section headers were stripped), sections when they exist, notes, and
//! the mapping from virtual addresses to file offsets that uprobes use.

use anyhow::{bail, Context, Result};
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, NoteIterator, ProgramHeader};
use object::{Endianness, Object, ObjectSection, ObjectSymbol};

use super::bytes;

/// The instruction set of the binary; mdt knows the Go register ABI of both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86_64,
    Aarch64,
}

/// A `PT_LOAD` program header.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub writable: bool,
    pub executable: bool,
}

impl Segment {
    fn contains_file_va(&self, va: u64) -> bool {
        va >= self.vaddr && va - self.vaddr < self.filesz
    }
}

pub struct Elf<'a> {
    pub data: &'a [u8],
    file: ElfFile64<'a, Endianness>,
    pub arch: Arch,
    pub segments: Vec<Segment>,
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        if data.get(..4) != Some(b"\x7fELF") {
            bail!("not an ELF file");
        }
        if data.get(4) != Some(&elf::ELFCLASS64) {
            bail!("32-bit ELF files are not supported (mdt supports 64-bit x86-64 and arm64)");
        }
        let file = ElfFile64::<Endianness>::parse(data)
            .map_err(|e| anyhow::anyhow!("corrupt or truncated ELF file: {e}"))?;
        let endian = file.endian();
        if !file.is_little_endian() {
            bail!("big-endian ELF files are not supported");
        }
        let arch = match file.elf_header().e_machine(endian) {
            elf::EM_X86_64 => Arch::X86_64,
            elf::EM_AARCH64 => Arch::Aarch64,
            other => bail!("unsupported machine type {other} (mdt supports x86-64 and arm64)"),
        };
        let segments = file
            .elf_program_headers()
            .iter()
            .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
            .map(|ph| Segment {
                vaddr: ph.p_vaddr(endian),
                memsz: ph.p_memsz(endian),
                offset: ph.p_offset(endian),
                filesz: ph.p_filesz(endian),
                writable: ph.p_flags(endian) & elf::PF_W != 0,
                executable: ph.p_flags(endian) & elf::PF_X != 0,
            })
            .collect::<Vec<_>>();
        if segments.is_empty() {
            bail!("ELF file has no loadable segments (not an executable)");
        }
        for s in &segments {
            if bytes::slice(data, s.offset, s.filesz).is_none() {
                bail!("corrupt or truncated ELF file: a segment extends past the end of the file");
            }
            // So that `vaddr + offset within the segment` never overflows.
            if s.vaddr.checked_add(s.memsz.max(s.filesz)).is_none() {
                bail!("corrupt ELF file: a segment ends past the top of the address space");
            }
        }
        check_sections_in_file(&file, data)?;
        Ok(Elf {
            data,
            file,
            arch,
            segments,
        })
    }

    /// `ET_DYN`: position-independent (the kernel picks the load address).
    pub fn is_pie(&self) -> bool {
        self.file.elf_header().e_type(self.file.endian()) == elf::ET_DYN
    }

    pub fn has_section_headers(&self) -> bool {
        self.file.sections().next().is_some()
    }

    pub fn has_symtab(&self) -> bool {
        self.file.section_by_name(".symtab").is_some()
    }

    pub fn has_dwarf(&self) -> bool {
        self.file.section_by_name(".debug_info").is_some()
            || self.file.section_by_name(".zdebug_info").is_some()
    }

    /// Section bytes and address by name (None when absent or without file data).
    pub fn section(&self, name: &str) -> Option<(u64, &'a [u8])> {
        let section = self.file.section_by_name(name)?;
        let (off, len) = section.file_range()?;
        Some((section.address(), bytes::slice(self.data, off, len)?))
    }

    /// Decompressed section data (Go compresses its DWARF).
    pub fn section_uncompressed(&self, name: &str) -> Option<std::borrow::Cow<'a, [u8]>> {
        self.file.section_by_name(name)?.uncompressed_data().ok()
    }

    pub fn symbol_address(&self, name: &str) -> Option<u64> {
        self.file
            .symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
    }

    /// File offset of a virtual address: the number the kernel keys uprobes by.
    pub fn va_to_offset(&self, va: u64) -> Option<u64> {
        va_to_offset_in(&self.segments, va)
    }

    /// Bytes at a virtual address, if they are backed by the file.
    pub fn read_va(&self, va: u64, len: u64) -> Option<&'a [u8]> {
        read_va_in(self.data, &self.segments, va, len)
    }

    /// The file bytes of a segment.
    pub fn segment_data(&self, seg: &Segment) -> &'a [u8] {
        bytes::slice(self.data, seg.offset, seg.filesz).unwrap_or_default()
    }

    /// The lowest `p_vaddr - p_offset`: subtract it from a runtime address's
    /// mapping base to get the load bias of a PIE.
    pub fn link_base(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.vaddr.wrapping_sub(s.offset))
            .min()
            .unwrap_or(0)
    }

    /// (GNU build id as hex, Go build id string), read from the notes.
    pub fn build_ids(&self) -> (Option<String>, Option<String>) {
        let endian = self.file.endian();
        let mut gnu = None;
        let mut go = None;
        for ph in self.file.elf_program_headers() {
            let notes: Option<NoteIterator<'_, elf::FileHeader64<Endianness>>> =
                ph.notes(endian, self.data).ok().flatten();
            let Some(mut notes) = notes else { continue };
            while let Ok(Some(note)) = notes.next() {
                match (note.name(), note.n_type(endian)) {
                    (b"GNU", elf::NT_GNU_BUILD_ID) => gnu = Some(hex(note.desc())),
                    // The Go toolchain's own note: type 4, name "Go".
                    (b"Go", 4) => go = Some(String::from_utf8_lossy(note.desc()).into_owned()),
                    _ => {}
                }
            }
        }
        (gnu, go)
    }
}

/// Every section with file data lies inside the file. `object` reads section
/// data lazily, so without this a binary cut short in its symbols or DWARF
/// would pass for whole (and lose its symbols silently).
fn check_sections_in_file(file: &ElfFile64<'_, Endianness>, data: &[u8]) -> Result<()> {
    for section in file.sections() {
        let Some((off, len)) = section.file_range() else {
            continue;
        };
        if bytes::slice(data, off, len).is_none() {
            bail!(
                "corrupt or truncated ELF file: section {} extends past the end of the file",
                section.name().unwrap_or("?")
            );
        }
    }
    Ok(())
}

/// File offset of a virtual address in `segments`.
pub fn va_to_offset_in(segments: &[Segment], va: u64) -> Option<u64> {
    let seg = segments.iter().find(|s| s.contains_file_va(va))?;
    Some(va - seg.vaddr + seg.offset)
}

/// Bytes of `data` at a virtual address of its `segments`, if the file
/// backs all `len` of them.
pub fn read_va_in<'a>(data: &'a [u8], segments: &[Segment], va: u64, len: u64) -> Option<&'a [u8]> {
    let seg = segments.iter().find(|s| s.contains_file_va(va))?;
    if len > seg.filesz - (va - seg.vaddr) {
        return None;
    }
    bytes::slice(data, va - seg.vaddr + seg.offset, len)
}

pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read a whole file, naming it in the error.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
