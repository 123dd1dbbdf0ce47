//! The Go runtime's own symbol table, `.gopclntab`: function names and entry
//! points (and, for symbolization, pc-to-file/line tables). It survives
//! `-ldflags='-s -w'`, which is why mdt never needs ELF symbols.
//!
//! One cohesive reader (the table's header, its function entries and their
//! line and inline tables), hence its length; its tests build tables byte
//! by byte.
//!
//! Layout reference: `runtime/symtab.go` (`pcHeader`, `_func`) and
//! `debug/gosym/pclntab.go`, for the 1.16 and 1.18+ formats.

use anyhow::{bail, Result};

use super::bytes;
use super::elf::Elf;

/// The header magic: which format generation this table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    /// 0xfffffffb, Go 1.2 – 1.15: too old for mdt (stack-based calling convention).
    Go12,
    /// 0xfffffffa, Go 1.16 – 1.17.
    Go116,
    /// 0xfffffff0, Go 1.18 – 1.19.
    Go118,
    /// 0xfffffff1, Go 1.20 and later.
    Go120,
}

impl Format {
    fn from_magic(magic: u32) -> Option<Self> {
        match magic {
            GO12_MAGIC => Some(Format::Go12),
            0xffff_fffa => Some(Format::Go116),
            0xffff_fff0 => Some(Format::Go118),
            0xffff_fff1 => Some(Format::Go120),
            _ => None,
        }
    }

    /// The Go releases that write this format.
    pub fn releases(self) -> &'static str {
        match self {
            Format::Go12 => "go1.2 to go1.15",
            Format::Go116 => "go1.16 or go1.17",
            Format::Go118 => "go1.18 or go1.19",
            Format::Go120 => "go1.20 or later",
        }
    }
}

/// A parsed `pcHeader` plus the bytes that follow it.
pub struct Pclntab<'a> {
    /// From the header to the end of the file data that holds it.
    data: &'a [u8],
    /// Virtual address of the header (what `moduledata.pcHeader` points to).
    pub vaddr: u64,
    pub format: Format,
    pub ptr_size: u8,
    pub min_lc: u8,
    pub nfunc: u64,
    /// `pcHeader.textStart` (1.18 – 1.25; zero from 1.26, and absent before 1.18).
    pub text_start: u64,
    pub funcname_offset: u64,
    pub cu_offset: u64,
    pub filetab_offset: u64,
    pub pctab_offset: u64,
    pub pcln_offset: u64,
}

/// One function of the table.
#[derive(Debug, Clone)]
pub struct Func<'a> {
    pub name: &'a str,
    /// Entry, relative to the text base for 1.18+, absolute before.
    entry: u64,
    end: u64,
    /// Offset of the `_func` record from the start of the function table.
    pub func_offset: u64,
}

impl<'a> Pclntab<'a> {
    /// Finds the table by section name, or by scanning for its header when
    /// the section headers are gone.
    pub fn find(elf: &Elf<'a>) -> Result<Self> {
        for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
            if let Some((addr, data)) = elf.section(name) {
                return Self::parse(data, addr);
            }
        }
        // An old (Go 1.2 – 1.15) table is remembered so that the error says
        // "unsupported version" rather than "not a Go program".
        let mut old_format = None;
        for seg in elf.segments.iter().filter(|s| !s.executable) {
            let data = elf.segment_data(seg);
            let mut off = 0u64;
            while off + 72 <= data.len() as u64 {
                if looks_like_header(data, off) {
                    match Self::parse(&data[off as usize..], seg.vaddr + off) {
                        Ok(table) => return Ok(table),
                        Err(e) if bytes::u32_at(data, off) == Some(GO12_MAGIC) => {
                            old_format = Some(e)
                        }
                        Err(_) => {}
                    }
                }
                off += 4;
            }
        }
        match old_format {
            Some(e) => Err(e),
            None => bail!("not a Go program (no .gopclntab function table found)"),
        }
    }

    pub fn parse(data: &'a [u8], vaddr: u64) -> Result<Self> {
        let Some(format) = bytes::u32_at(data, 0).and_then(Format::from_magic) else {
            bail!("not a Go program (.gopclntab has an unknown header)");
        };
        if format == Format::Go12 {
            bail!("unsupported Go version: the binary was built by {}; mdt needs go1.17 or later (register-based calling convention)", format.releases());
        }
        let ptr_size = bytes::u8_at(data, 7).unwrap_or(0);
        let min_lc = bytes::u8_at(data, 6).unwrap_or(0);
        if ptr_size != 8 {
            bail!("unsupported Go binary: pointer size {ptr_size} (mdt supports 64-bit)");
        }
        let word = |i: u64| bytes::u64_at(data, 8 + 8 * i).unwrap_or(u64::MAX);
        // 1.18 inserted textStart after nfiles; the offsets follow it.
        let (text_start, first) = if format == Format::Go116 {
            (0, 2)
        } else {
            (word(2), 3)
        };
        let table = Pclntab {
            data,
            vaddr,
            format,
            ptr_size,
            min_lc,
            nfunc: word(0),
            text_start,
            funcname_offset: word(first),
            cu_offset: word(first + 1),
            filetab_offset: word(first + 2),
            pctab_offset: word(first + 3),
            pcln_offset: word(first + 4),
        };
        table.validate()?;
        Ok(table)
    }

    fn validate(&self) -> Result<()> {
        let len = self.data.len() as u64;
        let offsets = [
            self.funcname_offset,
            self.cu_offset,
            self.filetab_offset,
            self.pctab_offset,
            self.pcln_offset,
        ];
        if self.nfunc == 0 || self.nfunc > 50_000_000 || offsets.iter().any(|&o| o >= len) {
            bail!("corrupt or truncated Go binary: the .gopclntab header is out of range");
        }
        let table_len = (self.nfunc + 1) * self.functab_entry_size();
        if bytes::slice(self.data, self.pcln_offset, table_len).is_none() {
            bail!("corrupt or truncated Go binary: the function table is cut short");
        }
        self.func_at(0)?;
        Ok(())
    }

    fn functab_entry_size(&self) -> u64 {
        match self.format {
            Format::Go116 => 2 * u64::from(self.ptr_size),
            _ => 8,
        }
    }

    /// (entry, funcoff) of function table slot `i`; slot `nfunc` holds the end of text.
    fn functab_slot(&self, i: u64) -> Option<(u64, u64)> {
        let at = self.pcln_offset + i * self.functab_entry_size();
        match self.format {
            Format::Go116 => Some((
                bytes::u64_at(self.data, at)?,
                bytes::u64_at(self.data, at + 8)?,
            )),
            _ => Some((
                u64::from(bytes::u32_at(self.data, at)?),
                u64::from(bytes::u32_at(self.data, at + 4)?),
            )),
        }
    }

    /// The `i`-th function of the table.
    fn func_at(&self, i: u64) -> Result<Func<'a>> {
        let corrupt = || anyhow::anyhow!("corrupt Go binary: bad .gopclntab function entry {i}");
        if i >= self.nfunc {
            return Err(corrupt());
        }
        let (entry, func_offset) = self.functab_slot(i).ok_or_else(corrupt)?;
        let (end, _) = self.functab_slot(i + 1).ok_or_else(corrupt)?;
        if end < entry {
            return Err(corrupt());
        }
        // Bounded by the table, so that `pcln_offset + func_offset` is safe later.
        let record = self
            .pcln_offset
            .checked_add(func_offset)
            .filter(|&r| r < self.data.len() as u64)
            .ok_or_else(corrupt)?;
        let name_field = if self.format == Format::Go116 { 8 } else { 4 };
        let name_off = bytes::i32_at(self.data, record + name_field).ok_or_else(corrupt)?;
        // The name table ends where the next table (cutab) begins.
        let names = self.cu_offset.saturating_sub(self.funcname_offset);
        let name = u64::try_from(name_off)
            .ok()
            .filter(|&n| names == 0 || n < names)
            .and_then(|n| bytes::cstr_at(self.data, self.funcname_offset + n))
            .ok_or_else(corrupt)?;
        Ok(Func {
            name,
            entry,
            end,
            func_offset,
        })
    }

    /// Every function, in address order.
    pub fn funcs(&self) -> impl Iterator<Item = Result<Func<'a>>> + '_ {
        (0..self.nfunc).map(move |i| self.func_at(i))
    }

    /// Whether function entries are relative to the text base (1.18+).
    pub fn relative_entries(&self) -> bool {
        self.format != Format::Go116
    }

    /// The virtual address range of a function, given the module's text base
    /// (None if a corrupt base puts it past the top of the address space).
    pub fn func_range(&self, f: &Func, text_base: u64) -> Option<(u64, u64)> {
        if self.relative_entries() {
            Some((
                text_base.checked_add(f.entry)?,
                text_base.checked_add(f.end)?,
            ))
        } else {
            Some((f.entry, f.end))
        }
    }
}

const GO12_MAGIC: u32 = 0xffff_fffb;

fn looks_like_header(data: &[u8], off: u64) -> bool {
    matches!(
        bytes::u32_at(data, off),
        Some(GO12_MAGIC | 0xffff_fffa | 0xffff_fff0 | 0xffff_fff1)
    ) && bytes::u16_at(data, off + 4) == Some(0)
        && matches!(bytes::u8_at(data, off + 6), Some(1 | 2 | 4))
        && bytes::u8_at(data, off + 7) == Some(8)
}

/// `PCDATA_InlTreeIndex` and `FUNCDATA_InlTree` (runtime/symtab.go).
const PCDATA_INL_TREE_INDEX: u32 = 2;
const FUNCDATA_INL_TREE: u32 = 3;

/// One frame of a symbolized pc: the innermost comes first, inlined callees
/// before the function that physically contains the pc.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceFrame {
    pub func: String,
    pub file: String,
    pub line: u32,
    pub inlined: bool,
}

impl<'a> Pclntab<'a> {
    /// Index of the function containing `pc` (a text-relative offset for
    /// 1.18+, an address before), by binary search over the sorted table.
    fn find_func_index(&self, pc: u64) -> Option<u64> {
        let (first, _) = self.functab_slot(0)?;
        let (end, _) = self.functab_slot(self.nfunc)?;
        if pc < first || pc >= end {
            return None;
        }
        let (mut lo, mut hi) = (0, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.functab_slot(mid)?.0 <= pc {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }

    /// Byte offset in `_func` of the field after `cuOffset` moved in 1.20
    /// (`startLine` was inserted); the fields before it are fixed.
    fn func_field(&self, func: &Func, field: FuncField) -> Option<u32> {
        let rec = self.pcln_offset + func.func_offset;
        let base = if self.format == Format::Go116 { 4 } else { 0 };
        let off = match field {
            FuncField::PcFile => 20,
            FuncField::PcLn => 24,
            FuncField::NPcData => 28,
            FuncField::CuOffset => 32,
        };
        bytes::u32_at(self.data, rec + base + off)
    }

    fn nfuncdata(&self, func: &Func) -> Option<u64> {
        let rec = self.pcln_offset + func.func_offset;
        let at = match self.format {
            Format::Go116 => 43,
            Format::Go118 => 39,
            _ => 43,
        };
        bytes::u8_at(self.data, rec + at).map(u64::from)
    }

    fn pcdata_start(&self, func: &Func) -> u64 {
        let rec = self.pcln_offset + func.func_offset;
        rec + match self.format {
            Format::Go118 => 40,
            _ => 44,
        }
    }

    fn pcdata_table(&self, func: &Func, index: u32) -> Option<u32> {
        let n = self.func_field(func, FuncField::NPcData)?;
        if index >= n {
            return None;
        }
        bytes::u32_at(self.data, self.pcdata_start(func) + 4 * u64::from(index))
    }

    /// Offset (from `gofunc`) of funcdata `index`; None if absent.
    fn funcdata_offset(&self, func: &Func, index: u32) -> Option<u32> {
        if self.format == Format::Go116 || u64::from(index) >= self.nfuncdata(func)? {
            return None;
        }
        let npcdata = u64::from(self.func_field(func, FuncField::NPcData)?);
        let at = self.pcdata_start(func) + 4 * npcdata + 4 * u64::from(index);
        bytes::u32_at(self.data, at).filter(|&o| o != u32::MAX)
    }

    /// Runs the pc-value table at `table` (in pctab) up to `target`.
    fn pcvalue(&self, func: &Func, table: u32, target: u64) -> Option<i32> {
        if table == 0 {
            return None;
        }
        let mut p = self.pctab_offset + u64::from(table);
        let mut pc = func.entry;
        let mut val: i32 = -1;
        let mut first = true;
        loop {
            let (uvdelta, n) = bytes::uvarint(self.data, p)?;
            if uvdelta == 0 && !first {
                return None;
            }
            p += n;
            let uvdelta = uvdelta as u32;
            let vdelta = if uvdelta & 1 != 0 {
                !(uvdelta >> 1) as i32
            } else {
                (uvdelta >> 1) as i32
            };
            let (pcdelta, n) = bytes::uvarint(self.data, p)?;
            p += n;
            pc = pc.checked_add(pcdelta.checked_mul(u64::from(self.min_lc))?)?;
            val = val.wrapping_add(vdelta);
            first = false;
            if target < pc {
                return Some(val);
            }
        }
    }

    fn file_name(&self, func: &Func, fileno: i32) -> Option<&'a str> {
        let cu = self.func_field(func, FuncField::CuOffset)?;
        let idx = u64::from(cu).checked_add(u64::try_from(fileno).ok()?)?;
        let off = bytes::u32_at(self.data, self.cu_offset + 4 * idx)?;
        if off == u32::MAX {
            return None;
        }
        bytes::cstr_at(self.data, self.filetab_offset + u64::from(off))
    }

    fn file_line(&self, func: &Func, pc: u64) -> (String, u32) {
        let file = self
            .func_field(func, FuncField::PcFile)
            .and_then(|t| self.pcvalue(func, t, pc))
            .and_then(|n| self.file_name(func, n))
            .unwrap_or("?");
        let line = self
            .func_field(func, FuncField::PcLn)
            .and_then(|t| self.pcvalue(func, t, pc))
            .and_then(|l| u32::try_from(l).ok())
            .unwrap_or(0);
        (file.to_string(), line)
    }

    /// Symbolizes a pc (a link-time address): the frames of the inlining
    /// chain at that pc, innermost first. `inl_tree` reads the inline tree
    /// bytes at a link-time address (they live outside pclntab, in `go:func.*`).
    pub fn frames_at<'r>(
        &self,
        pc_va: u64,
        text_base: u64,
        gofunc: Option<u64>,
        read_va: &dyn Fn(u64, u64) -> Option<&'r [u8]>,
    ) -> Option<Vec<SourceFrame>> {
        let pc = if self.relative_entries() {
            pc_va.checked_sub(text_base)?
        } else {
            pc_va
        };
        let func = self.func_at(self.find_func_index(pc)?).ok()?;
        let mut frames = Vec::new();
        let mut pc = pc;
        let tree = gofunc.and_then(|base| {
            let off = self.funcdata_offset(&func, FUNCDATA_INL_TREE)?;
            base.checked_add(u64::from(off))
        });
        if let Some(tree) = tree {
            let index_table = self.pcdata_table(&func, PCDATA_INL_TREE_INDEX);
            // Bounded: an inline chain is short; a corrupt table must not loop.
            for _ in 0..64 {
                let Some(ix) = index_table.and_then(|t| self.pcvalue(&func, t, pc)) else {
                    break;
                };
                let Ok(ix) = u64::try_from(ix) else { break };
                let Some(call) = self.inlined_call(tree, ix, read_va) else {
                    break;
                };
                let (file, line) = self.file_line(&func, pc);
                frames.push(SourceFrame {
                    func: call.name.unwrap_or("?").to_string(),
                    file,
                    line,
                    inlined: true,
                });
                let Some(parent) = func.entry.checked_add(u64::from(call.parent_pc)) else {
                    break;
                };
                pc = parent;
            }
        }
        let (file, line) = self.file_line(&func, pc);
        frames.push(SourceFrame {
            func: func.name.to_string(),
            file,
            line,
            inlined: false,
        });
        Some(frames)
    }

    fn inlined_call<'r>(
        &self,
        tree: u64,
        ix: u64,
        read_va: &dyn Fn(u64, u64) -> Option<&'r [u8]>,
    ) -> Option<InlinedCall<'a>> {
        // runtime.inlinedCall: 20 bytes in 1.18/1.19, 16 from 1.20.
        let (size, name_at, parent_at) = match self.format {
            Format::Go118 => (20, 12, 16),
            _ => (16, 4, 8),
        };
        let rec = read_va(tree.checked_add(ix.checked_mul(size)?)?, size)?;
        let name_off = bytes::i32_at(rec, name_at)?;
        let parent_pc = bytes::u32_at(rec, parent_at)?;
        let name = u64::try_from(name_off)
            .ok()
            .and_then(|n| bytes::cstr_at(self.data, self.funcname_offset + n));
        Some(InlinedCall { name, parent_pc })
    }
}

struct InlinedCall<'a> {
    name: Option<&'a str>,
    parent_pc: u32,
}

#[derive(Clone, Copy)]
enum FuncField {
    PcFile,
    PcLn,
    NPcData,
    CuOffset,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_BASE: u64 = 0x40_1000;
    /// Header words, after magic, pad, minLC and ptrSize (Go 1.18+ order).
    const NFUNC: usize = 0;
    const CU_OFFSET: usize = 4;
    const PCLN_OFFSET: usize = 7;

    fn word(i: usize) -> usize {
        8 + 8 * i
    }

    fn put_u32(data: &mut [u8], at: usize, v: u32) {
        data[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put_u64(data: &mut [u8], at: usize, v: u64) {
        data[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// Where the function table starts (`pcHeader.pclnOffset`).
    fn pcln(data: &[u8]) -> usize {
        bytes::u64_at(data, word(PCLN_OFFSET) as u64).unwrap() as usize
    }

    /// A Go 1.20 `.gopclntab` of two functions of main.go: `main.main` at
    /// text offset 0 (0x40 bytes; line 10, then line 11 from 0x20) and
    /// `main.helper` at 0x40 (0xc0 bytes; line 20).
    fn go120_table() -> Vec<u8> {
        let mut t = vec![0u8; 72];
        put_u32(&mut t, 0, 0xffff_fff1);
        t[6] = 1; // minLC
        t[7] = 8; // ptrSize
        let names = t.len();
        t.extend_from_slice(b"main.main\0main.helper\0");
        let cutab = t.len();
        t.extend_from_slice(&0u32.to_le_bytes()); // the CU's file 0: filetab offset 0
        let filetab = t.len();
        t.extend_from_slice(b"main.go\0");
        // pc-value tables: varint pairs (zigzag value delta, pc delta) ending
        // in a 0; the value starts at -1. Offset 0 means "no table".
        let pctab = t.len();
        t.extend_from_slice(&[0, 22, 0x20, 2, 0x20, 0]); // 1: main.main lines
        t.extend_from_slice(&[2, 0x40, 0]); // 6: main.main file
        t.extend_from_slice(&[42, 0xc0, 0x01, 0]); // 9: main.helper line
        t.extend_from_slice(&[2, 0xc0, 0x01, 0]); // 13: main.helper file
        let pcln = t.len();
        // (entryOff, funcOff) slots; the last one is the end of text.
        for (entry, func_off) in [(0u32, 24u32), (0x40, 24 + 44), (0x100, 0)] {
            t.extend_from_slice(&entry.to_le_bytes());
            t.extend_from_slice(&func_off.to_le_bytes());
        }
        // `_func`: entryOff, nameOff, ..., pcfile at 20, pcln at 24.
        for (entry, name_off, file_table, line_table) in [(0, 0, 6, 1), (0x40, 10, 13, 9)] {
            let mut rec = [0u8; 44];
            put_u32(&mut rec, 0, entry);
            put_u32(&mut rec, 4, name_off);
            put_u32(&mut rec, 20, file_table);
            put_u32(&mut rec, 24, line_table);
            t.extend_from_slice(&rec);
        }
        let words = [2, 1, TEXT_BASE, names as u64];
        let offsets = [cutab, filetab, pctab, pcln].map(|o| o as u64);
        for (i, w) in words.into_iter().chain(offsets).enumerate() {
            put_u64(&mut t, word(i), w);
        }
        t
    }

    fn parse_err(data: &[u8]) -> String {
        match Pclntab::parse(data, 0) {
            Ok(_) => panic!("a bad table parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_go120_table_lists_its_functions_in_order() {
        let data = go120_table();
        let t = Pclntab::parse(&data, 0x50_0000).unwrap();
        assert_eq!(t.format, Format::Go120);
        assert_eq!(
            (t.vaddr, t.nfunc, t.ptr_size, t.min_lc),
            (0x50_0000, 2, 8, 1)
        );
        assert_eq!(t.text_start, TEXT_BASE);
        assert!(t.relative_entries());
        let funcs = t.funcs().collect::<Result<Vec<_>>>().unwrap();
        let names: Vec<&str> = funcs.iter().map(|f| f.name).collect();
        assert_eq!(names, ["main.main", "main.helper"]);
        assert_eq!((funcs[0].func_offset, funcs[1].func_offset), (24, 68));
        assert_eq!(
            t.func_range(&funcs[0], TEXT_BASE),
            Some((TEXT_BASE, TEXT_BASE + 0x40))
        );
        assert_eq!(
            t.func_range(&funcs[1], TEXT_BASE),
            Some((TEXT_BASE + 0x40, TEXT_BASE + 0x100))
        );
    }

    #[test]
    fn a_text_base_at_the_top_of_the_address_space_gives_no_range() {
        let data = go120_table();
        let t = Pclntab::parse(&data, 0).unwrap();
        let helper = t.func_at(1).unwrap();
        assert_eq!(t.func_range(&helper, u64::MAX - 0x80), None);
    }

    #[test]
    fn a_go118_table_reads_like_a_go120_one() {
        let mut data = go120_table();
        put_u32(&mut data, 0, 0xffff_fff0);
        let t = Pclntab::parse(&data, 0).unwrap();
        assert_eq!(t.format, Format::Go118);
        assert!(t.relative_entries());
        assert_eq!(t.func_at(1).unwrap().name, "main.helper");
    }

    #[test]
    fn a_pc_is_symbolized_to_its_function_file_and_line() {
        let data = go120_table();
        let t = Pclntab::parse(&data, 0).unwrap();
        let at = |off: u64| {
            let frames = t.frames_at(TEXT_BASE + off, TEXT_BASE, None, &|_, _| None)?;
            let [f] = &frames[..] else {
                panic!("one frame expected: {frames:?}")
            };
            assert_eq!((&*f.file, f.inlined), ("main.go", false));
            Some((f.func.clone(), f.line))
        };
        assert_eq!(at(0), Some(("main.main".into(), 10)));
        assert_eq!(at(0x1f), Some(("main.main".into(), 10)));
        assert_eq!(at(0x20), Some(("main.main".into(), 11)));
        assert_eq!(at(0x40), Some(("main.helper".into(), 20)));
        assert_eq!(at(0xff), Some(("main.helper".into(), 20)));
        assert_eq!(at(0x100), None, "the end of text");
        assert_eq!(
            t.frames_at(TEXT_BASE - 1, TEXT_BASE, None, &|_, _| None),
            None
        );
    }

    #[test]
    fn an_unknown_magic_is_not_a_go_program() {
        let mut data = go120_table();
        put_u32(&mut data, 0, 0x1234_5678);
        let msg = "not a Go program (.gopclntab has an unknown header)";
        assert_eq!(parse_err(&data), msg);
        assert_eq!(parse_err(&[]), msg);
    }

    #[test]
    fn a_go12_table_is_an_unsupported_version() {
        let mut data = go120_table();
        put_u32(&mut data, 0, 0xffff_fffb);
        assert_eq!(
            parse_err(&data),
            "unsupported Go version: the binary was built by go1.2 to go1.15; \
             mdt needs go1.17 or later (register-based calling convention)"
        );
    }

    #[test]
    fn a_32_bit_table_is_unsupported() {
        let mut data = go120_table();
        data[7] = 4;
        assert_eq!(
            parse_err(&data),
            "unsupported Go binary: pointer size 4 (mdt supports 64-bit)"
        );
    }

    #[test]
    fn header_offsets_past_the_end_are_an_error() {
        let msg = "corrupt or truncated Go binary: the .gopclntab header is out of range";
        let mut data = go120_table();
        let len = data.len() as u64;
        put_u64(&mut data, word(PCLN_OFFSET), len);
        assert_eq!(parse_err(&data), msg);
        let mut data = go120_table();
        put_u64(&mut data, word(CU_OFFSET), u64::MAX);
        assert_eq!(parse_err(&data), msg);
        let mut data = go120_table();
        put_u64(&mut data, word(NFUNC), 0);
        assert_eq!(parse_err(&data), msg, "no functions");
        assert_eq!(parse_err(&go120_table()[..40]), msg, "a header cut short");
    }

    #[test]
    fn a_truncated_function_table_is_an_error() {
        let data = go120_table();
        let cut = &data[..pcln(&data) + 20];
        assert_eq!(
            parse_err(cut),
            "corrupt or truncated Go binary: the function table is cut short"
        );
    }

    #[test]
    fn a_first_record_past_the_end_is_an_error() {
        let mut data = go120_table();
        let at = pcln(&data) + 4;
        put_u32(&mut data, at, 0xffff);
        assert_eq!(
            parse_err(&data),
            "corrupt Go binary: bad .gopclntab function entry 0"
        );
    }

    #[test]
    fn a_name_offset_past_the_name_table_is_an_error() {
        for bad in [10_000u32, -1i32 as u32] {
            let mut data = go120_table();
            let helper_name = pcln(&data) + 24 + 44 + 4;
            put_u32(&mut data, helper_name, bad);
            let t = Pclntab::parse(&data, 0).unwrap();
            assert_eq!(t.func_at(0).unwrap().name, "main.main");
            let err = t.func_at(1).unwrap_err().to_string();
            assert_eq!(err, "corrupt Go binary: bad .gopclntab function entry 1");
            let all: Vec<bool> = t.funcs().map(|f| f.is_ok()).collect();
            assert_eq!(all, [true, false]);
        }
    }

    #[test]
    fn a_function_that_ends_before_it_starts_is_an_error() {
        let mut data = go120_table();
        let end_of_text = pcln(&data) + 16;
        put_u32(&mut data, end_of_text, 0x20);
        let t = Pclntab::parse(&data, 0).unwrap();
        assert_eq!(
            t.func_at(1).unwrap_err().to_string(),
            "corrupt Go binary: bad .gopclntab function entry 1"
        );
    }

    #[test]
    fn only_a_plausible_header_looks_like_one() {
        let data = go120_table();
        assert!(looks_like_header(&data, 0));
        let mut go12 = data.clone();
        put_u32(&mut go12, 0, GO12_MAGIC);
        assert!(
            looks_like_header(&go12, 0),
            "so that find names the version"
        );
        for (at, byte) in [(0, 0), (4, 1), (5, 1), (6, 3), (7, 4)] {
            let mut bad = data.clone();
            bad[at] = byte;
            assert!(!looks_like_header(&bad, 0), "byte {at} = {byte}");
        }
        assert!(!looks_like_header(&data[..7], 0), "cut short");
        assert!(!looks_like_header(&data, 4), "not at a header");
    }
}
