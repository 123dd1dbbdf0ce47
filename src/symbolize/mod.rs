//! Naming what the probes saw: stack addresses become Go functions with
//! file:line (inlined frames expanded, from `.gopclntab`, which every Go
//! binary keeps, stripped or not), and map type pointers become Go type
//! names (read from the binary or the target's memory). Addresses outside
//! the Go text (C code of a cgo program, shared libraries) are named by
//! blazesym from their ELF symbols and DWARF. Everything is cached: a hot
//! delete site costs one lookup.

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
    frames: HashMap<u64, Arc<[Frame]>, FastHash>,
    stacks: HashMap<Vec<u64>, Arc<[Frame]>, FastHash>,
    /// For addresses pclntab does not cover.
    native: blazesym::symbolize::Symbolizer,
    pid: u32,
    path: std::path::PathBuf,
}

impl Symbolizer {
    pub fn new(binary: &GoBinary, data: Arc<Vec<u8>>, bias: u64, pid: u32) -> Self {
        Symbolizer {
            data,
            pclntab_vaddr: binary.pclntab_address,
            text_base: binary.text_base,
            gofunc: binary.moduledata.map(|m| m.gofunc),
            bias,
            frames: HashMap::default(),
            stacks: HashMap::default(),
            native: blazesym::symbolize::Symbolizer::new(),
            pid,
            path: binary.path.clone(),
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
        self.resolve_go(addr, lookup)
            .or_else(|| self.resolve_native(addr, lookup))
            .unwrap_or_else(|| vec![Frame::unnamed(addr)])
    }

    /// C and shared-library code, by ELF symbols and DWARF of the live
    /// process's mappings.
    fn resolve_native(&self, addr: u64, lookup: u64) -> Option<Vec<Frame>> {
        use blazesym::symbolize::{source, Input, Symbolized};
        // The executable itself from its file (works after the target has
        // exited); anything else (shared libraries) from the live process.
        let link = lookup.wrapping_sub(self.bias);
        let in_exe = Elf::parse(&self.data).is_ok_and(|elf| elf.va_to_offset(link).is_some());
        let result = if in_exe {
            let src = source::Source::Elf(source::Elf::new(&self.path));
            self.native.symbolize_single(&src, Input::VirtOffset(link))
        } else {
            let src = source::Source::Process(source::Process::new(self.pid.into()));
            self.native.symbolize_single(&src, Input::AbsAddr(lookup))
        };
        let Ok(Symbolized::Sym(sym)) = result else {
            return None;
        };
        let location = |ci: Option<&blazesym::symbolize::CodeInfo>| {
            ci.map_or((Arc::from(""), 0), |ci| {
                (
                    Arc::from(ci.to_path().display().to_string()),
                    ci.line.unwrap_or(0),
                )
            })
        };
        let mut frames = Vec::new();
        for f in sym.inlined.iter().rev() {
            let (file, line) = location(f.code_info.as_ref());
            frames.push(Frame {
                func: f.name.as_ref().into(),
                file,
                line,
                inlined: true,
                addr,
            });
        }
        let (file, line) = location(sym.code_info.as_deref());
        frames.push(Frame {
            func: sym.name.as_ref().into(),
            // A named frame without source location still shows its module.
            file: if file.is_empty() {
                sym.module
                    .as_deref()
                    .map_or(Arc::from("?"), |m| Arc::from(m.to_string_lossy().as_ref()))
            } else {
                file
            },
            line,
            inlined: false,
            addr,
        });
        Some(frames)
    }

    fn resolve_go(&self, addr: u64, lookup: u64) -> Option<Vec<Frame>> {
        let unnamed = || None;
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
        let frames = table.frames_at(link_pc, self.text_base, self.gofunc, &read)?;
        Some(
            frames
                .into_iter()
                .map(|f| Frame {
                    func: f.func.into(),
                    file: f.file.into(),
                    line: f.line,
                    inlined: f.inlined,
                    addr,
                })
                .collect(),
        )
    }
}

/// An FNV-style hash a word at a time: the caches are keyed by addresses
/// from our own probes, so SipHash's flood resistance buys nothing and
/// costs a noticeable share of the per-event work.
type FastHash = std::hash::BuildHasherDefault<Fnv>;

#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A stack arrives as one slice of words: mix a word at a time.
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.write_u64(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        for &b in words.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        let h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        self.0 = (h ^ v).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
}
