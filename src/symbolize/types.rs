//! Map type pointer → Go type name (`main.UserMap`, `map[string]int`), key
//! type name, kind and size, and the key type's whole tree ([`GoType`]:
//! struct fields, array elements, ...), read from the binary or the live
//! target as the Go runtime itself does (`runtime/type.go:
//! resolveNameOff`). Type descriptors never change, so each is read once.

use std::sync::Arc;

use crate::bounded::Cache;
use crate::events::gofmt::DynamicTypes;
use crate::gobin::abi::{
    self, kind, KeyKind, MAPTYPE_ELEM, MAPTYPE_KEY, TFLAG_EXTRA_STAR, TYPE_KIND, TYPE_SIZE,
    TYPE_STR, TYPE_TFLAG,
};
use crate::gobin::bytes;
use crate::gobin::gotype::{Field, GoType, Shape, MAX_ARRAY_LEN, MAX_DEPTH, MAX_FIELDS};
use crate::gobin::image::Image;
use crate::gobin::GoBinary;
use crate::process::memory::ProcessMemory;

#[derive(Debug, Clone)]
pub struct MapTypeInfo {
    pub name: Arc<str>,
    pub key_type: Arc<str>,
    pub key_kind: KeyKind,
    pub key_size: u64,
    /// The key type's tree; `None` if its descriptor could not be read or
    /// did not look right (the key is then shown by its kind, or as hex).
    pub key: Option<Arc<GoType>>,
}

impl MapTypeInfo {
    fn unknown(ptr: u64) -> Self {
        MapTypeInfo {
            name: format!("<map type {ptr:#x}>").into(),
            key_type: "?".into(),
            key_kind: KeyKind::Other,
            key_size: 0,
            key: None,
        }
    }
}

/// Map types whose names are kept (a program has a few dozen).
pub const MAX_CACHED_TYPES: usize = 4096;

/// Type trees kept, by descriptor (key types, their fields' and elements'
/// types, the dynamic types of interface keys).
pub const MAX_CACHED_TREES: usize = 4096;

/// Descriptors read for one type tree (more: not decoded).
pub const MAX_TREE_NODES: usize = 1024;

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
    trees: Cache<u64, Arc<GoType>>,
    /// Type trees are read ([`decodes_struct_fields`]); else keys are
    /// shown by their kind or as hex.
    struct_fields: bool,
}

/// Whether the binary's struct field offsets are stored as mdt reads them
/// (`abi.StructField.Offset`, Go 1.19 and later; before, the offset was
/// shifted left by one to make room for an "embedded" bit): below that, no
/// type trees and no key plans in the probe, rather than wrong ones.
pub fn decodes_struct_fields(binary: &GoBinary) -> bool {
    binary.version.at_least(19)
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
            trees: Cache::new(MAX_CACHED_TREES),
            struct_fields: decodes_struct_fields(binary),
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

    fn read_map_type(&mut self, ptr: u64) -> Option<MapTypeInfo> {
        if ptr == 0 {
            return None;
        }
        let key = self.ptr(ptr + MAPTYPE_KEY)?;
        let tree = self.go_type(key);
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
            key: tree,
        })
    }

    /// The tree of the type whose descriptor is at `ptr` (cached); `None`
    /// if a descriptor could not be read or does not look right
    /// ([`GoType::new`]), or the tree is deeper than [`MAX_DEPTH`] or
    /// larger than [`MAX_TREE_NODES`].
    pub fn go_type(&mut self, ptr: u64) -> Option<Arc<GoType>> {
        if !self.struct_fields {
            return None;
        }
        let mut budget = MAX_TREE_NODES;
        self.tree(ptr, 0, &mut budget)
    }

    /// The dynamic type of a non-empty interface value whose first word is
    /// `itab` (`abi.ITab.Type`). Itabs are never freed or changed (static
    /// ones are in the binary, the others in memory the runtime never
    /// frees), so reading one later is reading what it was.
    pub fn itab_type(&self, itab: u64) -> Option<u64> {
        if itab == 0 {
            return None;
        }
        self.ptr(itab + abi::ITAB_TYPE).filter(|&t| t != 0)
    }

    fn tree(&mut self, ptr: u64, depth: u8, budget: &mut usize) -> Option<Arc<GoType>> {
        if let Some(hit) = self.trees.get(&ptr) {
            return (depth + hit.height <= MAX_DEPTH).then(|| hit.clone());
        }
        if ptr == 0 || depth > MAX_DEPTH || *budget == 0 {
            return None;
        }
        *budget -= 1;
        let head = self.read(ptr, abi::TYPE_HEADER_SIZE as usize)?;
        self.touch(ptr, abi::TYPE_HEADER_SIZE + 24);
        let size = bytes::u64_at(&head, TYPE_SIZE)?;
        let tflag = head[TYPE_TFLAG as usize];
        let raw_kind = head[TYPE_KIND as usize];
        let k = raw_kind & abi::KIND_MASK;
        let direct = (raw_kind & abi::KIND_DIRECT_IFACE) | (tflag & abi::TFLAG_DIRECT_IFACE) != 0;
        let shape = match k {
            kind::INTERFACE => {
                let methods = self.u64(ptr + abi::INTERFACETYPE_METHODS + abi::SLICE_LEN)?;
                Shape::Interface {
                    empty: methods == 0,
                }
            }
            kind::ARRAY => {
                let len = self.u64(ptr + abi::ARRAYTYPE_LEN)?;
                if len > MAX_ARRAY_LEN {
                    return None;
                }
                let elem = self.ptr(ptr + abi::ARRAYTYPE_ELEM)?;
                let elem = self.tree(elem, depth + 1, budget)?;
                Shape::Array { elem, len }
            }
            kind::STRUCT => {
                let at = self.ptr(ptr + abi::STRUCTTYPE_FIELDS);
                let n = self.u64(ptr + abi::STRUCTTYPE_FIELDS + abi::SLICE_LEN)?;
                if n > MAX_FIELDS {
                    return None;
                }
                if let Some(at) = at {
                    self.touch(at, n * abi::STRUCTFIELD_SIZE);
                }
                let mut fields = Vec::with_capacity(n as usize);
                for i in 0..n {
                    let f = at? + i * abi::STRUCTFIELD_SIZE;
                    let name = self.name_at(self.ptr(f + abi::STRUCTFIELD_NAME)?)?;
                    let offset = self.u64(f + abi::STRUCTFIELD_OFFSET)?;
                    let ty = self.ptr(f + abi::STRUCTFIELD_TYP)?;
                    let ty = self.tree(ty, depth + 1, budget)?;
                    fields.push(Field {
                        name: name.into(),
                        offset,
                        ty,
                    });
                }
                Shape::Struct { fields }
            }
            k => Shape::leaf(k)?,
        };
        let name = self.type_string(ptr).map(Arc::from);
        let tree = Arc::new(GoType::new(name, size, k, direct, shape)?);
        if depth + tree.height > MAX_DEPTH {
            return None;
        }
        self.trees.insert(ptr, tree.clone());
        Some(tree)
    }

    /// Reads `len` bytes at `addr` in the live target, for their side
    /// effect: reading another process's memory faults its pages in. The
    /// probe finds where a key's strings and interfaces are by reading the
    /// same descriptors as this reader (once per map type, retried while a
    /// read fails), and a uprobe cannot fault a page in: the descriptors of
    /// a key's field types may sit on pages the program itself never read
    /// (its hash and equality functions are compiled code).
    fn touch(&self, addr: u64, len: u64) {
        if let Some(mem) = &self.mem {
            let _ = mem.read(addr, len.min(4096) as usize);
        }
    }

    /// The name of an `abi.Name` (a field's): a flags byte, a uvarint
    /// length, the bytes.
    fn name_at(&self, at: u64) -> Option<String> {
        let head = self.read(at + 1, 10).or_else(|| self.read(at + 1, 1))?;
        let (len, n) = bytes::uvarint(&head, 0)?;
        if len > 4096 {
            return None;
        }
        let raw = self.read(at + 1 + n, len as usize)?;
        String::from_utf8(raw).ok()
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

/// The dynamic types of interface keys, for the formatter.
impl DynamicTypes for TypeResolver {
    fn dynamic_type(&mut self, word: u64, empty: bool) -> Option<Arc<GoType>> {
        let ty = if empty { word } else { self.itab_type(word)? };
        self.go_type(ty)
    }
}
