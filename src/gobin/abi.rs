//! The Go ABI facts mdt reads target memory by: the layout of a type
//! descriptor (`internal/abi.Type`, `runtime._type` before Go 1.21) and of a
//! map type descriptor, and the `abi.Kind` values keys are decoded by. The
//! same in every release from 1.17 to 1.27; `tests/inspect.rs` checks them
//! against each toolchain's DWARF ([`from_dwarf`]). The BPF program keeps
//! its copy in `enum mdt_go_abi` (bpf/mdt.h), checked against these at
//! compile time (src/probes/mod.rs). See docs/go-runtime.md.

use super::elf::Elf;
use super::layout::{dwarf_of, member_offset};

/// `abi.Type.Size_`: the type's size in bytes.
pub const TYPE_SIZE: u64 = 0;
/// `abi.Type.TFlag`.
pub const TYPE_TFLAG: u64 = 20;
/// `abi.Type.Kind_`: the `abi.Kind` in its low five bits.
pub const TYPE_KIND: u64 = 23;
/// `abi.Type.Str`: a `nameOff` of the type's name.
pub const TYPE_STR: u64 = 40;
/// The key `*abi.Type` of a map type (after its embedded `abi.Type`).
pub const MAPTYPE_KEY: u64 = 48;
/// The element `*abi.Type` of a map type.
pub const MAPTYPE_ELEM: u64 = 56;
/// `abi.TFlagExtraStar`: the name has a `*` in front that is not part of it.
pub const TFLAG_EXTRA_STAR: u8 = 2;
/// `abi.KindMask`: the bits of `Kind_` that hold the kind.
pub const KIND_MASK: u8 = 0x1f;
/// `abi.String`.
pub const KIND_STRING: u8 = 24;

/// How a key of an `abi.Kind` is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Signed,
    Unsigned,
    String,
    /// A pointer-shaped value: shown as the address it holds.
    Pointer,
    Other,
}

impl KeyKind {
    /// From `abi.Type.Kind_`.
    pub fn from_abi(kind: u8) -> Self {
        match kind & KIND_MASK {
            2..=6 => KeyKind::Signed,    // Int, Int8, Int16, Int32, Int64
            7..=12 => KeyKind::Unsigned, // Uint .. Uintptr
            KIND_STRING => KeyKind::String,
            // Chan, Func, Map, Pointer, UnsafePointer (only channels and
            // pointers are comparable, but all are one pointer).
            18 | 19 | 21 | 22 | 26 => KeyKind::Pointer,
            _ => KeyKind::Other,
        }
    }
}

/// The offsets above as a binary's DWARF gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeOffsets {
    pub size: u64,
    pub tflag: u64,
    pub kind: u64,
    pub str: u64,
    pub map_key: u64,
    pub map_elem: u64,
}

impl TypeOffsets {
    /// The constants of this module.
    pub const KNOWN: TypeOffsets = TypeOffsets {
        size: TYPE_SIZE,
        tflag: TYPE_TFLAG,
        kind: TYPE_KIND,
        str: TYPE_STR,
        map_key: MAPTYPE_KEY,
        map_elem: MAPTYPE_ELEM,
    };
}

/// The type descriptor's and the map type's offsets from DWARF: under the
/// names of Go 1.21+ (`internal/abi.Type`; the map type is
/// `internal/abi.MapType`, `SwissMapType` in 1.24–1.25, `OldMapType` in a
/// noswissmap build), or of 1.17–1.20 (`runtime._type`, `runtime.maptype`).
/// None without DWARF.
pub fn from_dwarf(elf: &Elf) -> Option<TypeOffsets> {
    let sections = dwarf_of(elf)?;
    let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, gimli::RunTimeEndian::Little));
    let member = |types: &[&str], names: &[&str]| {
        types
            .iter()
            .find_map(|t| names.iter().find_map(|n| member_offset(&dwarf, t, n)))
    };
    let ty = ["internal/abi.Type", "runtime._type"];
    let map = [
        "internal/abi.SwissMapType",
        "internal/abi.OldMapType",
        "internal/abi.MapType",
        "runtime.maptype",
    ];
    Some(TypeOffsets {
        size: member(&ty, &["Size_", "size"])?,
        tflag: member(&ty, &["TFlag", "tflag"])?,
        kind: member(&ty, &["Kind_", "kind"])?,
        str: member(&ty, &["Str", "str"])?,
        map_key: member(&map, &["Key", "key"])?,
        map_elem: member(&map, &["Elem", "elem"])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_decide_how_keys_are_shown() {
        assert_eq!(KeyKind::from_abi(2), KeyKind::Signed);
        assert_eq!(KeyKind::from_abi(12), KeyKind::Unsigned);
        assert_eq!(
            KeyKind::from_abi(24 | 0x20),
            KeyKind::String,
            "flags above the mask"
        );
        assert_eq!(KeyKind::from_abi(22), KeyKind::Pointer);
        assert_eq!(KeyKind::from_abi(18), KeyKind::Pointer);
        assert_eq!(KeyKind::from_abi(25), KeyKind::Other, "struct");
        assert_eq!(KeyKind::from_abi(14), KeyKind::Other, "float64");
    }
}
