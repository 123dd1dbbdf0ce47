//! Key values as the outputs show them: integers as numbers, strings as
//! strings (lossless for any bytes: invalid UTF-8 is escaped), pointers
//! (and channels) as the address they hold, and every other key decoded by
//! its type as Go's fmt prints it ([`super::gofmt`]: `true`, `1.5`,
//! `[1 2 3]`, `{Tenant:t1 ID:42}`, `int(7)`); a key whose type could not be
//! read as the hex of its bytes in memory order.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use super::gofmt::{self, DynamicTypes, Part, PartKind};
use crate::gobin::abi::KeyKind;
use crate::gobin::gotype::{GoType, Shape};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyValue {
    Int(i64),
    Uint(u64),
    Str(String),
    /// A pointer-shaped key (`*T`, `unsafe.Pointer`, a channel): its value.
    Pointer(u64),
    /// Any other key decoded by its type: its Go form.
    Go(GoValue),
    /// Raw bytes, shown as hex.
    Bytes(Vec<u8>),
    /// `--redact-keys`: a stable hash instead of the value.
    Redacted(String),
    /// A clear has no key; a key that could not be read has none either.
    None,
}

/// A key decoded by its type (bool, float, complex, array, struct,
/// interface): its Go form (`%v`, docs/json.md), and the JSON value it is
/// written as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GoValue {
    pub text: String,
    pub json: GoJson,
}

/// How a [`GoValue`] is written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoJson {
    /// A string: the Go form.
    Text,
    /// `true` / `false`.
    Bool,
    /// A number: the Go form of a finite float (of 32 or 64 bits).
    Float32,
    Float64,
}

/// A key decoded by its type, and whether all of it was captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub value: KeyValue,
    /// Some of the key (or of what its pointers point to) was not captured:
    /// the value is shown as far as it was.
    pub incomplete: bool,
    /// The key's bytes in memory order, for the kinds shown by their Go
    /// form (`key_hex`).
    pub raw: Option<Arc<[u8]>>,
}

impl Decoded {
    /// A value decoded without its type's tree (no `key_hex`).
    pub fn plain(value: KeyValue) -> Decoded {
        Decoded {
            value,
            incomplete: false,
            raw: None,
        }
    }
}

impl KeyValue {
    /// Decodes captured key bytes by the key type's kind and size.
    pub fn decode(kind: KeyKind, size: u64, bytes: &[u8], is_string: bool) -> KeyValue {
        if is_string || kind == KeyKind::String {
            return KeyValue::Str(string_lossless(bytes));
        }
        let int_bytes = match size {
            1 | 2 | 4 | 8 if bytes.len() as u64 >= size => Some(&bytes[..size as usize]),
            _ => None,
        };
        match (kind, int_bytes) {
            (KeyKind::Signed, Some(b)) => KeyValue::Int(gofmt::sign_extend(b)),
            (KeyKind::Unsigned, Some(b)) => KeyValue::Uint(gofmt::zero_extend(b)),
            (KeyKind::Pointer, Some(b)) if b.len() == 8 => KeyValue::Pointer(gofmt::zero_extend(b)),
            _ => KeyValue::Bytes(bytes.to_vec()),
        }
    }

    /// Decodes a key by its type's tree: integers, strings and pointers as
    /// [`KeyValue::decode`] does, every other kind by its Go form. `key`:
    /// the captured bytes of the key (for `string_bytes`, a key passed as a
    /// string, e.g. `struct { S string }` through mapdelete_faststr: its
    /// address and length, and `key` its bytes); `parts`: what the probe
    /// copied from behind the key's pointers. `None` if the type cannot be
    /// shown (the key is then shown by its kind or as hex).
    pub fn decode_typed(
        ty: &GoType,
        key: &[u8],
        parts: &[Part<'_>],
        string_bytes: Option<(u64, u64)>,
        types: &mut dyn DynamicTypes,
    ) -> Option<Decoded> {
        let plain = |value| Some(Decoded::plain(value));
        match ty.shape {
            Shape::String => {
                return plain(KeyValue::Str(string_lossless(key)));
            }
            Shape::Int | Shape::Uint | Shape::Pointer if string_bytes.is_none() => {
                let kind = match ty.shape {
                    Shape::Int => KeyKind::Signed,
                    Shape::Uint => KeyKind::Unsigned,
                    _ => KeyKind::Pointer,
                };
                return match KeyValue::decode(kind, ty.size, key, false) {
                    KeyValue::Bytes(_) => None,
                    v => plain(v),
                };
            }
            _ => {}
        }
        // A key passed as a string: its header, and its bytes as a part.
        let header: Vec<u8>;
        let string_part: [Part<'_>; 1];
        let (key, parts) = match string_bytes {
            Some((ptr, len)) => {
                if !wraps_one_string(ty) {
                    return None;
                }
                header = [ptr.to_le_bytes(), len.to_le_bytes()].concat();
                string_part = [Part {
                    offset: 0,
                    kind: PartKind::String,
                    bytes: key,
                    complete: key.len() as u64 == len,
                }];
                (&header[..], &string_part[..])
            }
            None => (key, parts),
        };
        let f = gofmt::format_key(ty, key, parts, types)?;
        let json = match ty.shape {
            Shape::Bool if f.complete => GoJson::Bool,
            Shape::Float if f.complete && f.text.parse::<f64>().is_ok_and(f64::is_finite) => {
                if ty.size == 4 {
                    GoJson::Float32
                } else {
                    GoJson::Float64
                }
            }
            _ => GoJson::Text,
        };
        Some(Decoded {
            value: KeyValue::Go(GoValue { text: f.text, json }),
            incomplete: !f.complete,
            raw: Some(key.into()),
        })
    }

    /// A stable, non-reversible stand-in for the key (FNV-1a 64 of its
    /// display form): equal keys stay equal, values stay private.
    pub fn redacted(&self) -> KeyValue {
        if matches!(self, KeyValue::None) {
            return KeyValue::None;
        }
        KeyValue::Redacted(redacted(&self.to_string()))
    }

    /// The key as a plain string: strings as they are, anything else as
    /// it is displayed (integers in decimal, pointers and hex as `0x…`).
    pub fn plain_text(&self) -> String {
        match self {
            KeyValue::Str(s) | KeyValue::Redacted(s) => s.clone(),
            KeyValue::Bytes(b) => hex(b),
            other => other.to_string(),
        }
    }
}

/// A type made of one string (`struct { S string }`, `[1]string`, nested):
/// what the compiler passes to mapdelete_faststr as a string.
fn wraps_one_string(ty: &GoType) -> bool {
    match &ty.shape {
        Shape::String => true,
        Shape::Array { elem, len: 1 } => wraps_one_string(elem),
        Shape::Struct { fields } => {
            let mut sized = fields.iter().filter(|f| f.ty.size > 0);
            match (sized.next(), sized.next()) {
                (Some(f), None) => f.offset == 0 && wraps_one_string(&f.ty),
                _ => false,
            }
        }
        _ => false,
    }
}

/// A stable hash in place of `text` (`--redact-keys`, `--redact-labels`):
/// equal texts, equal hashes; FNV-1a, so the same in every run.
pub fn redacted(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("redacted:{h:016x}")
}

/// Valid UTF-8 as is; each invalid byte as `\xNN`.
pub fn string_lossless(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Int(v) => write!(f, "{v}"),
            KeyValue::Uint(v) => write!(f, "{v}"),
            KeyValue::Pointer(0) => f.write_str("<nil>"),
            KeyValue::Pointer(v) => write!(f, "{v:#x}"),
            KeyValue::Str(s) => write!(f, "{s:?}"),
            KeyValue::Go(g) => f.write_str(&g.text),
            KeyValue::Bytes(b) => write!(f, "0x{}", hex(b)),
            KeyValue::Redacted(s) => f.write_str(s),
            KeyValue::None => f.write_str("-"),
        }
    }
}

impl Serialize for KeyValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            KeyValue::Int(v) => s.serialize_i64(*v),
            KeyValue::Uint(v) => s.serialize_u64(*v),
            KeyValue::Pointer(_) => s.serialize_str(&self.to_string()),
            KeyValue::Str(v) | KeyValue::Redacted(v) => s.serialize_str(v),
            KeyValue::Go(g) => match g.json {
                GoJson::Bool => s.serialize_bool(g.text == "true"),
                GoJson::Float32 => match g.text.parse::<f32>() {
                    Ok(v) => s.serialize_f32(v),
                    Err(_) => s.serialize_str(&g.text),
                },
                GoJson::Float64 => match g.text.parse::<f64>() {
                    Ok(v) => s.serialize_f64(v),
                    Err(_) => s.serialize_str(&g.text),
                },
                GoJson::Text => s.serialize_str(&g.text),
            },
            KeyValue::Bytes(b) => s.serialize_str(&hex(b)),
            KeyValue::None => s.serialize_none(),
        }
    }
}

/// A key read back from a JSON record (`mdt flame --from`): integers as
/// integers, other numbers as floats and booleans as booleans (in their Go
/// form), anything else as the string it was written as, so that it is
/// written again the same.
impl<'de> serde::Deserialize<'de> for KeyValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(v), _, _) => KeyValue::Int(v),
                (None, Some(v), _) => KeyValue::Uint(v),
                (None, None, Some(v)) => KeyValue::Go(GoValue {
                    text: gofmt::float64(v),
                    json: GoJson::Float64,
                }),
                _ => KeyValue::Str(n.to_string()),
            },
            serde_json::Value::Bool(b) => KeyValue::Go(GoValue {
                text: b.to_string(),
                json: GoJson::Bool,
            }),
            serde_json::Value::String(s) => KeyValue::Str(s),
            serde_json::Value::Null => KeyValue::None,
            other => KeyValue::Str(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_the_key_kind_and_size() {
        assert_eq!(
            KeyValue::decode(KeyKind::Signed, 4, &[0xfb, 0xff, 0xff, 0xff], false),
            KeyValue::Int(-5)
        );
        assert_eq!(
            KeyValue::decode(
                KeyKind::Unsigned,
                8,
                &0xfedc_ba98_7654_3210u64.to_le_bytes(),
                false
            ),
            KeyValue::Uint(0xfedc_ba98_7654_3210)
        );
        assert_eq!(
            KeyValue::decode(KeyKind::Other, 8, &1.5f64.to_le_bytes(), false).to_string(),
            "0x000000000000f83f"
        );
    }

    #[test]
    fn pointers_are_their_value() {
        let k = KeyValue::decode(
            KeyKind::Pointer,
            8,
            &0x139c_85bc_aea0u64.to_le_bytes(),
            false,
        );
        assert_eq!(k, KeyValue::Pointer(0x139c_85bc_aea0));
        assert_eq!(k.to_string(), "0x139c85bcaea0");
        assert_eq!(serde_json::to_string(&k).unwrap(), r#""0x139c85bcaea0""#);
        // Cut short: the bytes, never a guess.
        assert!(matches!(
            KeyValue::decode(KeyKind::Pointer, 8, &[1, 2, 3], false),
            KeyValue::Bytes(_)
        ));
    }

    #[test]
    fn strings_survive_invalid_utf8() {
        let k = KeyValue::decode(KeyKind::String, 16, b"a\xffb", false);
        assert_eq!(serde_json::to_string(&k).unwrap(), r#""a\\xffb""#);
    }

    struct NoDynamic;
    impl DynamicTypes for NoDynamic {
        fn dynamic_type(&mut self, _: u64, _: bool) -> Option<Arc<GoType>> {
            None
        }
    }

    fn typed(ty: &GoType, key: &[u8]) -> Decoded {
        KeyValue::decode_typed(ty, key, &[], None, &mut NoDynamic).unwrap()
    }

    fn json(v: &KeyValue) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn kinds_shown_by_their_go_form_keep_their_bytes() {
        use crate::gobin::abi::kind;
        let f64t = GoType::basic("float64", kind::FLOAT64).unwrap();
        let d = typed(&f64t, &1.5f64.to_le_bytes());
        assert_eq!(
            (d.value.to_string(), json(&d.value)),
            ("1.5".into(), "1.5".into())
        );
        assert_eq!(d.raw.as_deref(), Some(&1.5f64.to_le_bytes()[..]));
        let d = typed(&f64t, &1e21f64.to_le_bytes());
        assert_eq!(
            (d.value.to_string(), json(&d.value)),
            ("1e+21".into(), "1e+21".into())
        );
        let d = typed(&f64t, &f64::NAN.to_le_bytes());
        assert_eq!(json(&d.value), r#""NaN""#, "not a JSON number");
        let d = typed(&f64t, &f64::NEG_INFINITY.to_le_bytes());
        assert_eq!(json(&d.value), r#""-Inf""#);
        let d = typed(&f64t, &(-0.0f64).to_le_bytes());
        assert_eq!(
            (d.value.to_string(), json(&d.value)),
            ("-0".into(), "-0.0".into())
        );
        let f32t = GoType::basic("float32", kind::FLOAT32).unwrap();
        let d = typed(&f32t, &1.1f32.to_le_bytes());
        assert_eq!(
            (d.value.to_string(), json(&d.value)),
            ("1.1".into(), "1.1".into())
        );
        let b = GoType::basic("bool", kind::BOOL).unwrap();
        assert_eq!(json(&typed(&b, &[1]).value), "true");
        let c = GoType::basic("complex64", kind::COMPLEX64).unwrap();
        let mut bytes = 1f32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&(-2f32).to_le_bytes());
        assert_eq!(json(&typed(&c, &bytes).value), r#""(1-2i)""#);
        // A float cut short: hex-free prefix, no number.
        let d = typed(&f64t, &[0, 0]);
        assert!(d.incomplete);
        assert_eq!(json(&d.value), r#""""#);
        // Integers and pointers keep their forms; a nil pointer is <nil>.
        let i = GoType::basic("int16", kind::INT16).unwrap();
        assert_eq!(typed(&i, &(-2i16).to_le_bytes()).value, KeyValue::Int(-2));
        assert!(
            typed(&i, &(-2i16).to_le_bytes()).raw.is_none(),
            "no key_hex"
        );
        assert!(
            KeyValue::decode_typed(&i, &[1], &[], None, &mut NoDynamic).is_none(),
            "cut short: shown by its kind (as hex), as before"
        );
        let p = GoType::basic("*int", kind::POINTER).unwrap();
        let nil = typed(&p, &[0; 8]).value;
        assert_eq!(
            (nil.to_string(), json(&nil)),
            ("<nil>".into(), r#""<nil>""#.into())
        );
    }

    #[test]
    fn a_struct_passed_as_a_string_is_that_string() {
        use crate::gobin::abi::kind;
        use crate::gobin::gotype::Field;
        let s = Arc::new(GoType::basic("string", kind::STRING).unwrap());
        let wrapped = GoType::new(
            Some("main.W".into()),
            16,
            kind::STRUCT,
            false,
            Shape::Struct {
                fields: vec![Field {
                    name: "S".into(),
                    offset: 0,
                    ty: s,
                }],
            },
        )
        .unwrap();
        let d = KeyValue::decode_typed(&wrapped, b"abc", &[], Some((0xc000, 3)), &mut NoDynamic)
            .unwrap();
        assert_eq!(
            (d.value.to_string(), d.incomplete),
            ("{S:abc}".into(), false)
        );
        let mut header = 0xc000u64.to_le_bytes().to_vec();
        header.extend_from_slice(&3u64.to_le_bytes());
        assert_eq!(d.raw.as_deref(), Some(&header[..]), "the key's own bytes");
        let d = KeyValue::decode_typed(&wrapped, b"ab", &[], Some((0xc000, 3)), &mut NoDynamic)
            .unwrap();
        assert_eq!((d.value.to_string(), d.incomplete), ("{S:ab".into(), true));
    }

    #[test]
    fn redaction_is_stable() {
        let a = KeyValue::Str("alice".into()).redacted();
        assert_eq!(a, KeyValue::Str("alice".into()).redacted());
        assert_ne!(a, KeyValue::Str("bob".into()).redacted());
    }
}
