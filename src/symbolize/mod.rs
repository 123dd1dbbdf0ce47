//! Naming what the probes saw: stack addresses become Go functions with
//! file:line (inlined frames expanded, from `.gopclntab`, which every Go
//! binary keeps), and map type pointers become Go type names (read from the
//! target's memory). Both are cached: a hot delete site costs one lookup.

pub mod types;

use std::collections::HashMap;
use std::sync::Arc;

use crate::events::Frame;
use crate::gobin::elf::Elf;
use crate::gobin::pclntab::Pclntab;
use crate::gobin::GoBinary;

/// Symbolizes run-time addresses of one process running one Go binary.
pub struct Symbolizer {
    /// The executable's bytes (pclntab and the inline trees live in them).
    data: Arc<Vec<u8>>,
    pclntab_vaddr: u64,
    text_base: u64,
    gofunc: Option<u64>,
    /// Run-time address minus link-time address.
    bias: u64,
    frames: HashMap<u64, Arc<[Frame]>>,
    stacks: HashMap<Vec<u64>, Arc<[Frame]>>,
}

impl Symbolizer {
    pub fn new(binary: &GoBinary, data: Arc<Vec<u8>>, bias: u64) -> Self {
        Symbolizer {
            data,
            pclntab_vaddr: binary.pclntab_address,
            text_base: binary.text_base,
            gofunc: binary.moduledata.map(|m| m.gofunc),
            bias,
            frames: HashMap::new(),
            stacks: HashMap::new(),
        }
    }

    /// A whole captured stack, innermost first. `stack[0]` is the probed
    /// instruction itself; the others are return addresses, looked up at
    /// `addr - 1` so that they land inside the call instruction's line.
    pub fn stack(&mut self, stack: &[u64]) -> Arc<[Frame]> {
        if let Some(hit) = self.stacks.get(stack) {
            return hit.clone();
        }
        let mut out = Vec::with_capacity(stack.len() + 4);
        for (i, &addr) in stack.iter().enumerate() {
            let lookup = if i == 0 { addr } else { addr.wrapping_sub(1) };
            out.extend(self.frames_at(addr, lookup).iter().cloned());
        }
        let frames: Arc<[Frame]> = out.into();
        self.stacks.insert(stack.to_vec(), frames.clone());
        frames
    }

    fn frames_at(&mut self, addr: u64, lookup: u64) -> Arc<[Frame]> {
        if let Some(hit) = self.frames.get(&lookup) {
            return hit.clone();
        }
        let frames: Arc<[Frame]> = self.resolve(addr, lookup).into();
        self.frames.insert(lookup, frames.clone());
        frames
    }

    fn resolve(&self, addr: u64, lookup: u64) -> Vec<Frame> {
        let unnamed = || vec![Frame::unnamed(addr)];
        let Ok(elf) = Elf::parse(&self.data) else {
            return unnamed();
        };
        let Some(table) = elf
            .read_va(self.pclntab_vaddr, 0)
            .and_then(|_| elf.va_to_offset(self.pclntab_vaddr))
            .and_then(|off| self.data.get(off as usize..))
            .and_then(|d| Pclntab::parse(d, self.pclntab_vaddr).ok())
        else {
            return unnamed();
        };
        let link_pc = lookup.wrapping_sub(self.bias);
        let read = |va: u64, len: u64| elf.read_va(va, len);
        match table.frames_at(link_pc, self.text_base, self.gofunc, &read) {
            Some(frames) => frames
                .into_iter()
                .map(|f| Frame {
                    func: f.func.into(),
                    file: f.file.into(),
                    line: f.line,
                    inlined: f.inlined,
                    addr,
                })
                .collect(),
            None => unnamed(),
        }
    }
}
