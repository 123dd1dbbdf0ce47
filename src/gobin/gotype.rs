//! A Go type as its run-time descriptor describes it (`abi.Type` and the
//! kind-specific descriptors that embed it): what a key value is decoded
//! by. Read from the binary or the target by
//! [`crate::symbolize::types::TypeResolver::go_type`]; formatted by
//! [`crate::events::gofmt`].

use std::sync::Arc;

use super::abi::kind;

/// Nesting of arrays and structs a key type may have (deeper: not decoded).
pub const MAX_DEPTH: u8 = 8;
/// Fields a struct may have (more: not decoded).
pub const MAX_FIELDS: u64 = 64;
/// Elements an array may have (more: not decoded).
pub const MAX_ARRAY_LEN: u64 = 1 << 16;

#[derive(Debug)]
pub struct GoType {
    /// `reflect.Type.String()`: `int`, `main.Key`, `[2]int64`,
    /// `struct { A int }`; `None` for a type without a name in the module
    /// (made at run time by `reflect`).
    pub name: Option<Arc<str>>,
    /// `Size_`.
    pub size: u64,
    /// The `abi.Kind`.
    pub kind: u8,
    /// A value of this type is stored in an interface's data word itself
    /// (pointer-shaped types), not behind it.
    pub direct_iface: bool,
    pub shape: Shape,
    /// Levels of arrays and structs below this type (0 for the others).
    pub height: u8,
}

#[derive(Debug)]
pub enum Shape {
    Bool,
    /// Any signed integer kind (`size` bytes).
    Int,
    /// Any unsigned integer kind, `uintptr` included.
    Uint,
    /// `float32` or `float64`.
    Float,
    /// `complex64` or `complex128`.
    Complex,
    String,
    /// One address: pointers, channels, `unsafe.Pointer` (and funcs and
    /// maps, which no key can hold).
    Pointer,
    Array {
        elem: Arc<GoType>,
        len: u64,
    },
    Struct {
        fields: Vec<Field>,
    },
    Interface {
        /// `interface {}` / `any`: the first word is the dynamic type, not
        /// an itab.
        empty: bool,
    },
    /// A kind no key value has (a slice: only a dynamic value of an
    /// interface key can be one, and the delete then panics).
    Other,
}

impl Shape {
    /// The shape of a leaf kind (not an array, struct or interface, whose
    /// shapes need their descriptors); `None` for those.
    pub fn leaf(k: u8) -> Option<Shape> {
        Some(match k {
            kind::BOOL => Shape::Bool,
            kind::INT..=kind::INT64 => Shape::Int,
            kind::UINT..=kind::UINTPTR => Shape::Uint,
            kind::FLOAT32 | kind::FLOAT64 => Shape::Float,
            kind::COMPLEX64 | kind::COMPLEX128 => Shape::Complex,
            kind::STRING => Shape::String,
            kind::CHAN | kind::FUNC | kind::MAP | kind::POINTER | kind::UNSAFE_POINTER => {
                Shape::Pointer
            }
            kind::SLICE => Shape::Other,
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub struct Field {
    /// As `reflect.StructField.Name`: `_` for a blank field, the type's
    /// name for an embedded one.
    pub name: Arc<str>,
    pub offset: u64,
    pub ty: Arc<GoType>,
}

impl GoType {
    /// The size a value of `kind` must have (amd64 and arm64), for the kinds
    /// whose size is fixed.
    pub fn fixed_size(kind: u8) -> Option<u64> {
        Some(match kind {
            kind::BOOL | kind::INT8 | kind::UINT8 => 1,
            kind::INT16 | kind::UINT16 => 2,
            kind::INT32 | kind::UINT32 | kind::FLOAT32 => 4,
            kind::INT
            | kind::INT64
            | kind::UINT
            | kind::UINT64
            | kind::UINTPTR
            | kind::FLOAT64
            | kind::COMPLEX64 => 8,
            kind::COMPLEX128 | kind::STRING | kind::INTERFACE => 16,
            kind::CHAN | kind::FUNC | kind::MAP | kind::POINTER | kind::UNSAFE_POINTER => 8,
            kind::SLICE => 24,
            _ => return None,
        })
    }

    /// Checks a descriptor read from the target: sizes that fit their kind,
    /// arrays whose size is their length times their element's, struct
    /// fields in order and inside the struct, no deeper than [`MAX_DEPTH`].
    /// A type that fails is not decoded (its key is shown as hex).
    pub fn new(
        name: Option<Arc<str>>,
        size: u64,
        kind: u8,
        direct_iface: bool,
        shape: Shape,
    ) -> Option<GoType> {
        let height = match &shape {
            Shape::Array { elem, len } => {
                if *len > MAX_ARRAY_LEN || elem.size.checked_mul(*len)? != size {
                    return None;
                }
                elem.height + 1
            }
            Shape::Struct { fields } => {
                if fields.len() as u64 > MAX_FIELDS {
                    return None;
                }
                let mut end = 0u64;
                for f in fields {
                    // In declaration order, which is offset order; a
                    // zero-size field may share its offset with the next.
                    let f_end = f.offset.checked_add(f.ty.size)?;
                    if f.offset < end || f_end > size {
                        return None;
                    }
                    end = f_end;
                }
                1 + fields.iter().map(|f| f.ty.height).max().unwrap_or(0)
            }
            _ => {
                if Self::fixed_size(kind) != Some(size) {
                    return None;
                }
                0
            }
        };
        if height > MAX_DEPTH {
            return None;
        }
        let kind_fits = match &shape {
            Shape::Bool => kind == kind::BOOL,
            Shape::Int => (kind::INT..=kind::INT64).contains(&kind),
            Shape::Uint => (kind::UINT..=kind::UINTPTR).contains(&kind),
            Shape::Float => kind == kind::FLOAT32 || kind == kind::FLOAT64,
            Shape::Complex => kind == kind::COMPLEX64 || kind == kind::COMPLEX128,
            Shape::String => kind == kind::STRING,
            Shape::Pointer => matches!(
                kind,
                kind::CHAN | kind::FUNC | kind::MAP | kind::POINTER | kind::UNSAFE_POINTER
            ),
            Shape::Array { .. } => kind == kind::ARRAY,
            Shape::Struct { .. } => kind == kind::STRUCT,
            Shape::Interface { .. } => kind == kind::INTERFACE,
            Shape::Other => kind == kind::SLICE,
        };
        kind_fits.then_some(GoType {
            name,
            size,
            kind,
            direct_iface,
            shape,
            height,
        })
    }

    /// A leaf type of `kind` (not an array, struct or interface), for tests
    /// and for building types by hand.
    pub fn basic(name: &str, kind: u8) -> Option<GoType> {
        let shape = Shape::leaf(kind)?;
        let direct = matches!(shape, Shape::Pointer);
        GoType::new(
            Some(name.into()),
            Self::fixed_size(kind)?,
            kind,
            direct,
            shape,
        )
    }

    /// The name to show, `?` when the module has none.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("?")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int64() -> Arc<GoType> {
        Arc::new(GoType::basic("int64", kind::INT64).unwrap())
    }

    #[test]
    fn implausible_descriptors_are_refused() {
        assert!(GoType::new(None, 4, kind::INT64, false, Shape::Int).is_none());
        assert!(GoType::new(None, 8, kind::STRING, false, Shape::Int).is_none());
        let arr = |size, len| {
            GoType::new(
                None,
                size,
                kind::ARRAY,
                false,
                Shape::Array { elem: int64(), len },
            )
        };
        assert!(arr(16, 2).is_some());
        assert!(arr(24, 2).is_none(), "size is not len × elem");
        let field = |name: &str, offset| Field {
            name: name.into(),
            offset,
            ty: int64(),
        };
        let st =
            |size, fields| GoType::new(None, size, kind::STRUCT, false, Shape::Struct { fields });
        assert!(st(16, vec![field("A", 0), field("B", 8)]).is_some());
        assert!(
            st(16, vec![field("A", 8), field("B", 0)]).is_none(),
            "out of order"
        );
        assert!(
            st(16, vec![field("A", 4), field("B", 8)]).is_none(),
            "overlap"
        );
        assert!(
            st(12, vec![field("A", 0), field("B", 8)]).is_none(),
            "past the end"
        );
        let many = (0..65).map(|i| field("F", i * 8)).collect();
        assert!(st(65 * 8, many).is_none(), "more than 64 fields");
        // Nine levels of arrays.
        let mut t = int64();
        for level in 1..=9 {
            match GoType::new(
                None,
                t.size,
                kind::ARRAY,
                false,
                Shape::Array {
                    elem: t.clone(),
                    len: 1,
                },
            ) {
                Some(next) => t = Arc::new(next),
                None => {
                    assert_eq!(level, 9, "eight levels are decoded, nine are not");
                    return;
                }
            }
        }
        panic!("a depth of 9 was accepted");
    }
}
