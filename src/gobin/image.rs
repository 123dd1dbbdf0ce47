//! The executable's bytes with what the readers of a running session need
//! from its headers, parsed once: the loadable segments (link-time address
//! → bytes) and where the function table is. The symbolizer and the type
//! reader look up addresses in it on every cache miss, so it must not
//! parse the ELF file again each time.

use std::sync::Arc;

use anyhow::{Context, Result};

use super::elf::{self, Elf, Segment};
use super::pclntab::Pclntab;

pub struct Image {
    data: Arc<Vec<u8>>,
    segments: Vec<Segment>,
    /// File offset and link-time address of the function table's header.
    pclntab: (u64, u64),
}

impl Image {
    /// `pclntab_vaddr`: where [`super::GoBinary::analyze`] found the table.
    pub fn new(data: Arc<Vec<u8>>, pclntab_vaddr: u64) -> Result<Self> {
        let elf = Elf::parse(&data)?;
        let offset = elf
            .va_to_offset(pclntab_vaddr)
            .context("the function table is not in the file")?;
        let segments = elf.segments.clone();
        let image = Image {
            data,
            segments,
            pclntab: (offset, pclntab_vaddr),
        };
        image
            .pclntab()
            .context("the function table moved or is corrupt")?;
        Ok(image)
    }

    /// Bytes at a link-time address, if they are backed by the file.
    pub fn read_va(&self, va: u64, len: u64) -> Option<&[u8]> {
        elf::read_va_in(&self.data, &self.segments, va, len)
    }

    /// Whether a link-time address lies in the file's loadable segments.
    pub fn contains_va(&self, va: u64) -> bool {
        elf::va_to_offset_in(&self.segments, va).is_some()
    }

    /// The function table (its header is read again: a few loads).
    pub fn pclntab(&self) -> Option<Pclntab<'_>> {
        let (offset, vaddr) = self.pclntab;
        let data = self.data.get(usize::try_from(offset).ok()?..)?;
        Pclntab::parse(data, vaddr).ok()
    }
}
