//! The Go ABI facts mdt reads target memory by: the layout of a type
//! descriptor (`internal/abi.Type`, `runtime._type` before Go 1.21), of a
//! map type descriptor, of the descriptors key values are decoded by
//! (arrays, structs and their fields, interfaces, itabs), of interface
//! values, slices and strings, and the `abi.Kind` values. The same in every
//! release from 1.19 to 1.27; `tests/inspect.rs` checks each offset against
//! each toolchain's DWARF ([`from_dwarf`], and Go's own `debug/dwarf` in
//! fixtures/truth). The BPF program keeps its copy in `enum mdt_go_abi`
//! (bpf/mdt.h), checked against these at compile time (src/probes/mod.rs).
//! See docs/go-runtime.md §3.

use super::elf::Elf;
use super::layout::{borrow, dwarf_of, struct_layouts};

/// `abi.Type.Size_`: the type's size in bytes.
pub const TYPE_SIZE: u64 = 0;
/// `abi.Type.PtrBytes`: the prefix of a value that can hold pointers (0:
/// none; such a value is copied whole and never followed).
pub const TYPE_PTRBYTES: u64 = 8;
/// `abi.Type.TFlag`.
pub const TYPE_TFLAG: u64 = 20;
/// `abi.Type.Kind_`: the `abi.Kind` in its low five bits.
pub const TYPE_KIND: u64 = 23;
/// `abi.Type.Str`: a `nameOff` of the type's name.
pub const TYPE_STR: u64 = 40;
/// `sizeof(abi.Type)`: where the fields of the kind-specific descriptors
/// that embed it (`abi.ArrayType`, `StructType`, `MapType`, ...) start.
pub const TYPE_HEADER_SIZE: u64 = 48;
/// The key `*abi.Type` of a map type (after its embedded `abi.Type`).
pub const MAPTYPE_KEY: u64 = 48;
/// The element `*abi.Type` of a map type.
pub const MAPTYPE_ELEM: u64 = 56;
/// `abi.ArrayType.Elem`: the element `*abi.Type` (`runtime.arraytype.elem`).
pub const ARRAYTYPE_ELEM: u64 = 48;
/// `abi.ArrayType.Len` (after `Slice *Type`).
pub const ARRAYTYPE_LEN: u64 = 64;
/// `abi.StructType.Fields`: a `[]abi.StructField` (after `PkgPath abi.Name`).
pub const STRUCTTYPE_FIELDS: u64 = 56;
/// `abi.StructField.Name`: an `abi.Name` (a pointer to its encoded bytes).
pub const STRUCTFIELD_NAME: u64 = 0;
/// `abi.StructField.Typ`: the field's `*abi.Type`.
pub const STRUCTFIELD_TYP: u64 = 8;
/// `abi.StructField.Offset`: the field's byte offset (a plain offset since
/// Go 1.19; 1.18's `offsetEmbed` kept the embedded bit in it).
pub const STRUCTFIELD_OFFSET: u64 = 16;
/// `sizeof(abi.StructField)`.
pub const STRUCTFIELD_SIZE: u64 = 24;
/// `abi.InterfaceType.Methods`: a `[]abi.Imethod` (empty for `any`).
pub const INTERFACETYPE_METHODS: u64 = 56;
/// `abi.ITab.Type` (`runtime.itab._type`): the dynamic type of a non-empty
/// interface value, whose first word points to its itab.
pub const ITAB_TYPE: u64 = 8;
/// An interface value (`runtime.eface` / `runtime.iface`): the type (or
/// itab) word at 0, the data word here.
pub const IFACE_DATA: u64 = 8;
/// The length of a slice header (`runtime.slice.len`; the data pointer is
/// at 0).
pub const SLICE_LEN: u64 = 8;
/// The length of a string header (`runtime.stringStruct.len`; the data
/// pointer is at 0).
pub const STRING_LEN: u64 = 8;
/// A classic map's header (`runtime.hmap`, up to Go 1.23, and 1.24–1.25
/// with `GOEXPERIMENT=noswissmap`): `B` (log2 of the bucket count), the
/// bucket array and the old one while the map grows.
pub const HMAP_B: u64 = 9;
pub const HMAP_BUCKETS: u64 = 16;
pub const HMAP_OLDBUCKETS: u64 = 24;
/// A bucket of a classic `map[string]string` (a goroutine's label set up to
/// Go 1.23): 8 tophash bytes, then 8 keys, 8 values and the overflow
/// pointer. A slot is full when its tophash is at least `MIN_TOPHASH`.
pub const LABEL_BUCKET_KEYS: u64 = 8;
pub const LABEL_BUCKET_VALUES: u64 = 136;
pub const LABEL_BUCKET_OVERFLOW: u64 = 264;
pub const LABEL_BUCKET_SIZE: u64 = 272;
pub const MIN_TOPHASH: u8 = 5;
/// A label of Go 1.24+ (`runtime/pprof.label`, later
/// `internal/runtime/pprof/label.Label`): `{key, value string}`.
pub const LABEL_SIZE: u64 = 32;
/// `abi.TFlagExtraStar`: the name has a `*` in front that is not part of it.
pub const TFLAG_EXTRA_STAR: u8 = 2;
/// `abi.TFlagDirectIface` (Go 1.26+): a value of the type is stored in the
/// interface's data word itself. Unused (0) before 1.26.
pub const TFLAG_DIRECT_IFACE: u8 = 0x20;
/// `abi.KindDirectIface` (up to Go 1.25, in `Kind_`): the same fact. Never
/// set from 1.26 on; so `(Kind_ | TFlag) & 0x20` tells it in every release.
pub const KIND_DIRECT_IFACE: u8 = 0x20;
/// `abi.KindMask`: the bits of `Kind_` that hold the kind.
pub const KIND_MASK: u8 = 0x1f;
/// `abi.Name`'s flag byte: the name is of an embedded field.
pub const NAME_EMBEDDED: u8 = 1 << 3;

/// `abi.Kind` values (`internal/abi/type.go`, `runtime/typekind.go` in
/// 1.19/1.20: the same list in every release).
pub mod kind {
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const INT8: u8 = 3;
    pub const INT16: u8 = 4;
    pub const INT32: u8 = 5;
    pub const INT64: u8 = 6;
    pub const UINT: u8 = 7;
    pub const UINT8: u8 = 8;
    pub const UINT16: u8 = 9;
    pub const UINT32: u8 = 10;
    pub const UINT64: u8 = 11;
    pub const UINTPTR: u8 = 12;
    pub const FLOAT32: u8 = 13;
    pub const FLOAT64: u8 = 14;
    pub const COMPLEX64: u8 = 15;
    pub const COMPLEX128: u8 = 16;
    pub const ARRAY: u8 = 17;
    pub const CHAN: u8 = 18;
    pub const FUNC: u8 = 19;
    pub const INTERFACE: u8 = 20;
    pub const MAP: u8 = 21;
    pub const POINTER: u8 = 22;
    pub const SLICE: u8 = 23;
    pub const STRING: u8 = 24;
    pub const STRUCT: u8 = 25;
    pub const UNSAFE_POINTER: u8 = 26;
}

/// `abi.String`.
pub const KIND_STRING: u8 = kind::STRING;
/// `abi.Interface`.
pub const KIND_INTERFACE: u8 = kind::INTERFACE;

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
    /// `sizeof(abi.Type)`.
    pub type_size: u64,
    pub ptrbytes: u64,
    pub array_elem: u64,
    pub array_len: u64,
    pub struct_fields: u64,
    pub field_name: u64,
    pub field_typ: u64,
    pub field_offset: u64,
    /// `sizeof(abi.StructField)`.
    pub field_size: u64,
    pub iface_methods: u64,
    pub itab_type: u64,
    /// `runtime.eface` (`_type`, `data`) and `runtime.iface` (`tab`, `data`).
    pub eface_type: u64,
    pub eface_data: u64,
    pub iface_tab: u64,
    pub iface_data: u64,
    pub slice_len: u64,
    pub string_len: u64,
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
        type_size: TYPE_HEADER_SIZE,
        ptrbytes: TYPE_PTRBYTES,
        array_elem: ARRAYTYPE_ELEM,
        array_len: ARRAYTYPE_LEN,
        struct_fields: STRUCTTYPE_FIELDS,
        field_name: STRUCTFIELD_NAME,
        field_typ: STRUCTFIELD_TYP,
        field_offset: STRUCTFIELD_OFFSET,
        field_size: STRUCTFIELD_SIZE,
        iface_methods: INTERFACETYPE_METHODS,
        itab_type: ITAB_TYPE,
        eface_type: 0,
        eface_data: IFACE_DATA,
        iface_tab: 0,
        iface_data: IFACE_DATA,
        slice_len: SLICE_LEN,
        string_len: STRING_LEN,
    };

    /// `(name, value)` of every offset, named as fixtures/truth names them.
    pub fn named(&self) -> [(&'static str, u64); 23] {
        [
            ("size", self.size),
            ("tflag", self.tflag),
            ("kind", self.kind),
            ("str", self.str),
            ("map_key", self.map_key),
            ("map_elem", self.map_elem),
            ("type_size", self.type_size),
            ("ptrbytes", self.ptrbytes),
            ("array_elem", self.array_elem),
            ("array_len", self.array_len),
            ("struct_fields", self.struct_fields),
            ("field_name", self.field_name),
            ("field_typ", self.field_typ),
            ("field_offset", self.field_offset),
            ("field_size", self.field_size),
            ("iface_methods", self.iface_methods),
            ("itab_type", self.itab_type),
            ("eface_type", self.eface_type),
            ("eface_data", self.eface_data),
            ("iface_tab", self.iface_tab),
            ("iface_data", self.iface_data),
            ("slice_len", self.slice_len),
            ("string_len", self.string_len),
        ]
    }
}

/// The descriptors' offsets from DWARF: under the names of Go 1.21+
/// (`internal/abi.Type`, `ArrayType`, `StructType`, `StructField`,
/// `InterfaceType`, `ITab`; the map type is `internal/abi.MapType`,
/// `SwissMapType` in 1.24–1.25, `OldMapType` in a noswissmap build), or of
/// 1.19–1.20 (`runtime._type`, `maptype`, `arraytype`, `structtype`,
/// `structfield`, `interfacetype`, `itab`); interface values, slices and
/// strings as the runtime declares them (`runtime.eface`, `iface`, `slice`,
/// `stringStruct`). None without DWARF, or if one is missing.
pub fn from_dwarf(elf: &Elf) -> Option<TypeOffsets> {
    let sections = dwarf_of(elf)?;
    let dwarf = borrow(&sections);
    const TY: &[&str] = &["internal/abi.Type", "runtime._type"];
    const MAP: &[&str] = &[
        "internal/abi.SwissMapType",
        "internal/abi.OldMapType",
        "internal/abi.MapType",
        "runtime.maptype",
    ];
    const ARRAY: &[&str] = &["internal/abi.ArrayType", "runtime.arraytype"];
    const STRUCT: &[&str] = &["internal/abi.StructType", "runtime.structtype"];
    const FIELD: &[&str] = &["internal/abi.StructField", "runtime.structfield"];
    const IFACE: &[&str] = &["internal/abi.InterfaceType", "runtime.interfacetype"];
    const ITAB: &[&str] = &["internal/abi.ITab", "runtime.itab"];
    const EFACE: &[&str] = &["runtime.eface"];
    const NONEMPTY: &[&str] = &["runtime.iface"];
    const SLICE: &[&str] = &["runtime.slice"];
    const STRING: &[&str] = &["runtime.stringStruct"];
    let all: Vec<&str> = [
        TY, MAP, ARRAY, STRUCT, FIELD, IFACE, ITAB, EFACE, NONEMPTY, SLICE, STRING,
    ]
    .concat();
    let layouts = struct_layouts(&dwarf, &all);
    // The first struct of the list that the binary has, under either
    // spelling of the member (1.21 renamed them).
    let member = |types: &[&str], names: &[&str]| {
        let layout = types.iter().find_map(|t| layouts.get(*t))?;
        names.iter().find_map(|n| layout.members.get(*n).copied())
    };
    let size = |types: &[&str]| types.iter().find_map(|t| layouts.get(*t)?.size);
    Some(TypeOffsets {
        size: member(TY, &["Size_", "size"])?,
        tflag: member(TY, &["TFlag", "tflag"])?,
        kind: member(TY, &["Kind_", "kind"])?,
        str: member(TY, &["Str", "str"])?,
        map_key: member(MAP, &["Key", "key"])?,
        map_elem: member(MAP, &["Elem", "elem"])?,
        type_size: size(TY)?,
        ptrbytes: member(TY, &["PtrBytes", "ptrdata"])?,
        array_elem: member(ARRAY, &["Elem", "elem"])?,
        array_len: member(ARRAY, &["Len", "len"])?,
        struct_fields: member(STRUCT, &["Fields", "fields"])?,
        field_name: member(FIELD, &["Name", "name"])?,
        field_typ: member(FIELD, &["Typ", "typ"])?,
        field_offset: member(FIELD, &["Offset", "offset"])?,
        field_size: size(FIELD)?,
        iface_methods: member(IFACE, &["Methods", "mhdr"])?,
        itab_type: member(ITAB, &["Type", "_type"])?,
        eface_type: member(EFACE, &["_type"])?,
        eface_data: member(EFACE, &["data"])?,
        iface_tab: member(NONEMPTY, &["tab"])?,
        iface_data: member(NONEMPTY, &["data"])?,
        slice_len: member(SLICE, &["len"])?,
        string_len: member(STRING, &["len"])?,
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
