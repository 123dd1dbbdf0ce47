//! Naming what the probes saw: stack addresses become Go functions with
//! file:line (inlined frames expanded, from `.gopclntab`, which every Go
//! binary keeps, stripped or not), and map type pointers become Go type
//! names (read from the binary or the target's memory). Addresses outside
//! the Go text (C code of a cgo program, shared libraries) are named by
//! blazesym from their ELF symbols and DWARF. Everything is cached: a hot
//! delete site costs one lookup.

pub mod types;

use std::sync::Arc;

use crate::bounded::Cache;
use crate::events::{Frame, FrameGroup, Stack};
use crate::gobin::image::Image;
use crate::gobin::GoBinary;

/// Distinct addresses whose frames are kept (a program's delete paths
/// touch far fewer; each entry is a few hundred bytes).
pub const MAX_CACHED_ADDRESSES: usize = 65_536;

/// Symbolizes run-time addresses of one process running one Go binary.
pub struct Symbolizer {
    /// The executable (pclntab and the inline trees live in it).
    image: Arc<Image>,
    text_base: u64,
    gofunc: Option<u64>,
    /// Run-time address minus link-time address.
    bias: u64,
    /// By (address, probed pc rather than a return address).
    frames: Cache<(u64, bool), FrameGroup>,
    stacks: Cache<Box<[u64]>, Stack>,
    /// For addresses pclntab does not cover.
    native: blazesym::symbolize::Symbolizer,
    pid: u32,
    path: std::path::PathBuf,
}

impl Symbolizer {
    /// `max_stacks`: distinct stacks kept symbolized ([`crate::bounded::Limits::stacks`]).
    pub fn new(
        binary: &GoBinary,
        image: Arc<Image>,
        bias: u64,
        pid: u32,
        max_stacks: usize,
    ) -> Self {
        Symbolizer {
            image,
            text_base: binary.text_base,
            gofunc: binary.moduledata.map(|m| m.gofunc),
            bias,
            frames: Cache::new(MAX_CACHED_ADDRESSES),
            stacks: Cache::new(max_stacks),
            native: blazesym::symbolize::Symbolizer::new(),
            pid,
            path: binary.path.clone(),
        }
    }

    /// A whole captured stack, innermost first. `stack[0]` is the probed
    /// instruction itself; the others are return addresses, looked up at
    /// `addr - 1` so that they land inside the call instruction's line.
    pub fn stack(&mut self, stack: &[u64]) -> Stack {
        if let Some(hit) = self.stacks.get(stack) {
            return hit.clone();
        }
        let groups = stack
            .iter()
            .enumerate()
            .map(|(i, &addr)| {
                let lookup = if i == 0 { addr } else { addr.wrapping_sub(1) };
                self.frames_at(addr, lookup)
            })
            .collect();
        let frames = Stack::from_groups(groups);
        self.stacks
            .offer_with(stack, || (stack.into(), frames.clone()));
        frames
    }

    /// The frames at `addr`, looked up at `lookup` (by the address, not
    /// the look-up: a group carries its address).
    fn frames_at(&mut self, addr: u64, lookup: u64) -> FrameGroup {
        let key = (addr, addr == lookup);
        if let Some(hit) = self.frames.get(&key) {
            return hit.clone();
        }
        let frames: FrameGroup = self.resolve(addr, lookup).into();
        self.frames.offer(key, frames.clone());
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
        let in_exe = self.image.contains_va(link);
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
        let table = self.image.pclntab()?;
        let link_pc = lookup.wrapping_sub(self.bias);
        let read = |va: u64, len: u64| self.image.read_va(va, len);
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
