//! Map type pointer → Go type name (`main.UserMap`, `map[string]int`), key
//! type name, kind and size, read from the live target as the Go runtime
//! itself does (`runtime/type.go: resolveNameOff`). Type descriptors never
//! change, so each is read once.

use std::sync::Arc;

use crate::bounded::Cache;
use crate::gobin::abi::{
    KeyKind, MAPTYPE_ELEM, MAPTYPE_KEY, TFLAG_EXTRA_STAR, TYPE_KIND, TYPE_SIZE, TYPE_STR,
    TYPE_TFLAG,
};
use crate::gobin::bytes;
use crate::gobin::image::Image;
use crate::gobin::GoBinary;
use crate::process::memory::ProcessMemory;

#[derive(Debug, Clone)]
pub struct MapTypeInfo {
    pub name: Arc<str>,
    pub key_type: Arc<str>,
    pub key_kind: KeyKind,
    pub key_size: u64,
}

impl MapTypeInfo {
    fn unknown(ptr: u64) -> Self {
        MapTypeInfo {
            name: format!("<map type {ptr:#x}>").into(),
            key_type: "?".into(),
            key_kind: KeyKind::Other,
            key_size: 0,
        }
    }
}

/// Map types whose names are kept (a program has a few dozen).
pub const MAX_CACHED_TYPES: usize = 4096;

/// Type descriptors are read from the executable file when they are in it
/// (so a target that already exited can still be decoded), and from the
/// live process otherwise (types made at run time by reflect).
pub struct TypeResolver {
    image: Arc<Image>,
    mem: Option<ProcessMemory>,
    bias: u64,
    /// Run-time `[types, etypes)` of the module.
    types: Option<(u64, u64)>,
    cache: Cache<u64, MapTypeInfo>,
}

impl TypeResolver {
    pub fn new(
        image: Arc<Image>,
        mem: Option<ProcessMemory>,
        binary: &GoBinary,
        bias: u64,
    ) -> Self {
        let types = binary
            .moduledata
            .map(|md| (md.types.wrapping_add(bias), md.etypes.wrapping_add(bias)));
        TypeResolver {
            image,
            mem,
            bias,
            types,
            cache: Cache::new(MAX_CACHED_TYPES),
        }
    }

    /// Bytes at a run-time address as the executable file holds them, if
    /// the address is in one of its file-backed segments.
    fn read_in_file(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.image
            .read_va(addr.wrapping_sub(self.bias), len as u64)
            .map(<[u8]>::to_vec)
    }

    /// Bytes at a run-time address: from the file if it holds them.
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.read_in_file(addr, len)
            .or_else(|| self.mem.as_ref()?.read(addr, len))
    }

    /// Bytes of the target's data at a run-time address, for a key the
    /// probe could not copy because its page was not resident (a BPF uprobe
    /// cannot fault pages in). A page that was not mapped when the delete
    /// ran had not been written since it was mapped, so its bytes are still
    /// what the live process reads now (faulting it in), or, once the target
    /// has exited, what the executable holds when the address is in one of
    /// its file-backed segments (static data such as the runtime's table of
    /// small integers that `reflect` points int keys at).
    pub fn read_data(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        if len == 0 {
            return Some(Vec::new());
        }
        self.mem
            .as_ref()
            .and_then(|m| m.read(addr, len))
            .or_else(|| self.read_in_file(addr, len))
    }

    fn u8(&self, addr: u64) -> Option<u8> {
        self.read(addr, 1).map(|b| b[0])
    }

    fn u64(&self, addr: u64) -> Option<u64> {
        self.read(addr, 8).and_then(|b| bytes::u64_at(&b, 0))
    }

    fn i32(&self, addr: u64) -> Option<i32> {
        self.read(addr, 4).and_then(|b| bytes::i32_at(&b, 0))
    }

    /// A pointer field: the file holds link-time addresses (the values a
    /// PIE is relocated from), the live process run-time ones.
    fn ptr(&self, addr: u64) -> Option<u64> {
        let in_file = self
            .read_in_file(addr, 8)
            .and_then(|b| bytes::u64_at(&b, 0));
        match in_file {
            Some(0) | None => self.mem.as_ref()?.u64(addr),
            Some(v) => Some(v.wrapping_add(self.bias)),
        }
    }

    pub fn map_type(&mut self, ptr: u64) -> MapTypeInfo {
        if let Some(hit) = self.cache.get(&ptr) {
            return hit.clone();
        }
        // Kept at once: a type read from the live target (a PIE's pointers,
        // reflect's types) cannot be read again once it has exited. A read
        // that failed is not kept: the next record tries again.
        match self.read_map_type(ptr) {
            Some(info) => {
                self.cache.insert(ptr, info.clone());
                info
            }
            None => MapTypeInfo::unknown(ptr),
        }
    }

    fn read_map_type(&self, ptr: u64) -> Option<MapTypeInfo> {
        if ptr == 0 {
            return None;
        }
        let key = self.ptr(ptr + MAPTYPE_KEY)?;
        let key_type = self.type_string(key).unwrap_or_else(|| "?".into());
        // Types made at run time (reflect.MapOf) have no name in the module.
        let name = self.type_string(ptr).or_else(|| {
            let elem = self.type_string(self.ptr(ptr + MAPTYPE_ELEM)?)?;
            Some(format!("map[{key_type}]{elem}"))
        })?;
        Some(MapTypeInfo {
            name: name.into(),
            key_type: key_type.into(),
            key_kind: KeyKind::from_abi(self.u8(key + TYPE_KIND)?),
            key_size: self.u64(key + TYPE_SIZE)?,
        })
    }

    /// `reflect.Type.String()` of the type at `ptr`, if it lives in the module.
    fn type_string(&self, ptr: u64) -> Option<String> {
        let (types, etypes) = self.types?;
        if !(types..etypes).contains(&ptr) {
            return None;
        }
        let tflag = self.u8(ptr + TYPE_TFLAG)?;
        let off = self.i32(ptr + TYPE_STR)?;
        let name_at = types.checked_add_signed(i64::from(off))?;
        // abi.Name: a flags byte, a uvarint length, the bytes.
        let head = self.read(name_at + 1, 10)?;
        let (len, n) = crate::gobin::bytes::uvarint(&head, 0)?;
        if len > 4096 {
            return None;
        }
        let raw = self.read(name_at + 1 + n, len as usize)?;
        let s = String::from_utf8_lossy(&raw);
        let s = if tflag & TFLAG_EXTRA_STAR != 0 {
            s.strip_prefix('*').unwrap_or(&s)
        } else {
            &s
        };
        Some(s.to_string())
    }
}
