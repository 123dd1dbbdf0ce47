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

#[cfg(test)]
mod tests {
    use super::*;

    /// A `PT_LOAD` (or other) program header of a synthetic file.
    struct Phdr {
        p_type: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        filesz: u64,
        memsz: u64,
    }

    fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Phdr {
        Phdr {
            p_type: elf::PT_LOAD,
            flags,
            offset,
            vaddr,
            filesz,
            memsz,
        }
    }

    /// A little-endian ELF64 executable header for `machine`, its program
    /// headers right after it, no section headers, padded to `len` bytes.
    fn synthetic_elf(machine: u16, phdrs: &[Phdr], len: usize) -> Vec<u8> {
        let mut d = vec![0u8; 64];
        d[..4].copy_from_slice(b"\x7fELF");
        d[4] = elf::ELFCLASS64;
        d[5] = elf::ELFDATA2LSB;
        d[6] = elf::EV_CURRENT;
        d[16..18].copy_from_slice(&elf::ET_EXEC.to_le_bytes());
        d[18..20].copy_from_slice(&machine.to_le_bytes());
        d[20..24].copy_from_slice(&u32::from(elf::EV_CURRENT).to_le_bytes());
        d[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        d[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        d[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        d[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for p in phdrs {
            d.extend_from_slice(&p.p_type.to_le_bytes());
            d.extend_from_slice(&p.flags.to_le_bytes());
            for v in [p.offset, p.vaddr, p.vaddr, p.filesz, p.memsz, 0x1000] {
                d.extend_from_slice(&v.to_le_bytes());
            }
        }
        d.resize(len.max(d.len()), 0);
        d
    }

    /// Text at 0x40_0000 (file 0..0x100), data at 0x41_0100 (file
    /// 0x100..0x180, then 0x180 bytes of bss).
    fn two_segments(machine: u16) -> Vec<u8> {
        let text = load(elf::PF_R | elf::PF_X, 0, 0x40_0000, 0x100, 0x100);
        let data = load(elf::PF_R | elf::PF_W, 0x100, 0x41_0100, 0x80, 0x200);
        synthetic_elf(machine, &[text, data], 0x180)
    }

    fn parse_err(data: &[u8]) -> String {
        match Elf::parse(data) {
            Ok(_) => panic!("a bad ELF file parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_synthetic_executable_parses_to_its_segments() {
        let data = two_segments(elf::EM_AARCH64);
        let elf = Elf::parse(&data).unwrap();
        assert_eq!(elf.arch, Arch::Aarch64);
        let segs: Vec<_> = elf
            .segments
            .iter()
            .map(|s| {
                (
                    s.vaddr,
                    s.memsz,
                    s.offset,
                    s.filesz,
                    s.writable,
                    s.executable,
                )
            })
            .collect();
        assert_eq!(
            segs,
            [
                (0x40_0000, 0x100, 0, 0x100, false, true),
                (0x41_0100, 0x200, 0x100, 0x80, true, false)
            ]
        );
        assert!(!elf.is_pie());
        assert!(!elf.has_section_headers());
        assert_eq!(elf.section(".gopclntab"), None);
        assert_eq!(elf.link_base(), 0x40_0000);
        assert_eq!(elf.va_to_offset(0x41_0110), Some(0x110));
        assert_eq!(elf.read_va(0x40_0000, 4), Some(&b"\x7fELF"[..]));
        assert_eq!(elf.read_va(0x41_0170, 0x20), None, "runs into the bss");
        assert_eq!(elf.segment_data(&elf.segments[1]).len(), 0x80);
        assert_eq!(elf.build_ids(), (None, None));
    }

    #[test]
    fn the_test_executable_parses() {
        let data = read_file(&std::env::current_exe().unwrap()).unwrap();
        let elf = Elf::parse(&data).unwrap();
        let arch = if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        };
        assert_eq!(elf.arch, arch);
        assert!(elf.segments.iter().any(|s| s.executable));
        assert!(elf.has_section_headers());
        let (text_addr, text) = elf.section(".text").unwrap();
        assert_eq!(elf.read_va(text_addr, 16), Some(&text[..16]));
        for s in elf.segments.iter().filter(|s| s.filesz > 0) {
            assert_eq!(elf.va_to_offset(s.vaddr), Some(s.offset));
        }
    }

    #[test]
    fn a_file_that_is_not_elf_is_refused() {
        assert_eq!(parse_err(b"#!/bin/sh\n"), "not an ELF file");
        assert_eq!(parse_err(b""), "not an ELF file");
    }

    #[test]
    fn a_32_bit_file_is_refused() {
        let mut data = two_segments(elf::EM_X86_64);
        data[4] = elf::ELFCLASS32;
        assert_eq!(
            parse_err(&data),
            "32-bit ELF files are not supported (mdt supports 64-bit x86-64 and arm64)"
        );
    }

    #[test]
    fn a_big_endian_file_is_refused() {
        let mut data = vec![0u8; 64];
        data[..4].copy_from_slice(b"\x7fELF");
        data[4] = elf::ELFCLASS64;
        data[5] = elf::ELFDATA2MSB;
        data[6] = elf::EV_CURRENT;
        assert_eq!(parse_err(&data), "big-endian ELF files are not supported");
    }

    #[test]
    fn a_truncated_file_is_corrupt() {
        let data = two_segments(elf::EM_X86_64);
        for len in [40, 100] {
            let err = parse_err(&data[..len]);
            assert!(
                err.starts_with("corrupt or truncated ELF file: "),
                "{len} bytes: {err}"
            );
        }
        assert_eq!(
            parse_err(&data[..0x17f]),
            "corrupt or truncated ELF file: a segment extends past the end of the file"
        );
    }

    #[test]
    fn a_segment_past_the_top_of_the_address_space_is_corrupt() {
        let top = load(elf::PF_R, 0, u64::MAX - 0x10, 0x100, 0x100);
        let data = synthetic_elf(elf::EM_X86_64, &[top], 0x100);
        assert_eq!(
            parse_err(&data),
            "corrupt ELF file: a segment ends past the top of the address space"
        );
    }

    #[test]
    fn another_machine_or_no_loadable_segment_is_refused() {
        assert_eq!(
            parse_err(&two_segments(elf::EM_386)),
            "unsupported machine type 3 (mdt supports x86-64 and arm64)"
        );
        let note = Phdr {
            p_type: elf::PT_NOTE,
            ..load(elf::PF_R, 0, 0, 0, 0)
        };
        assert_eq!(
            parse_err(&synthetic_elf(elf::EM_X86_64, &[note], 0x100)),
            "ELF file has no loadable segments (not an executable)"
        );
    }

    /// 0x1000..0x1200 backed by file 0..0x200 (bss to 0x1300), and
    /// 0x3000..0x3100 by file 0x200..0x300.
    const SEGMENTS: [Segment; 2] = [
        Segment {
            vaddr: 0x1000,
            memsz: 0x300,
            offset: 0,
            filesz: 0x200,
            writable: false,
            executable: true,
        },
        Segment {
            vaddr: 0x3000,
            memsz: 0x100,
            offset: 0x200,
            filesz: 0x100,
            writable: true,
            executable: false,
        },
    ];

    #[test]
    fn a_virtual_address_maps_to_its_file_offset_only_where_the_file_backs_it() {
        let at = |va| va_to_offset_in(&SEGMENTS, va);
        assert_eq!(at(0x1000), Some(0));
        assert_eq!(at(0x11ff), Some(0x1ff));
        assert_eq!(at(0x1200), None, "past filesz: bss");
        assert_eq!(at(0x2000), None, "between segments");
        assert_eq!(at(0x3000), Some(0x200));
        assert_eq!(at(0x30ff), Some(0x2ff));
        assert_eq!(at(0x3100), None, "past the last segment");
        assert_eq!(at(0xfff), None, "below the first segment");
    }

    #[test]
    fn a_read_must_stay_inside_one_segments_file_bytes() {
        let data: Vec<u8> = (0..0x300u32).map(|i| i as u8).collect();
        let read = |va, len| read_va_in(&data, &SEGMENTS, va, len);
        assert_eq!(read(0x11fe, 2), Some(&data[0x1fe..0x200]));
        assert_eq!(read(0x11ff, 0), Some(&[][..]));
        assert_eq!(read(0x11fe, 3), None, "crosses the end of the segment");
        assert_eq!(read(0x3000, 0x100), Some(&data[0x200..]));
        assert_eq!(read(0x3000, 0x101), None);
        assert_eq!(read(0x2000, 1), None, "between segments");
        assert_eq!(read(0x1200, 1), None, "bss");
        assert_eq!(read(0x3000, 1), Some(&[0x00][..]));
        assert_eq!(read(0x3001, 1), Some(&[0x01][..]));
        let short = &data[..0x280];
        assert_eq!(
            read_va_in(short, &SEGMENTS, 0x3000, 0x100),
            None,
            "the file is shorter than the segment says"
        );
    }
}
