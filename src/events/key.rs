//! Key values as the outputs show them: integers as numbers, strings as
//! strings (lossless for any bytes: invalid UTF-8 is escaped), pointers
//! (and channels) as the address they hold, anything else as the hex of
//! its bytes in memory order.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::gobin::abi::KeyKind;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyValue {
    Int(i64),
    Uint(u64),
    Str(String),
    /// A pointer-shaped key (`*T`, `unsafe.Pointer`, a channel): its value.
    Pointer(u64),
    /// Raw bytes, shown as hex.
    Bytes(Vec<u8>),
    /// `--redact-keys`: a stable hash instead of the value.
    Redacted(String),
    /// A clear has no key; a key that could not be read has none either.
    None,
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
            (KeyKind::Signed, Some(b)) => KeyValue::Int(sign_extend(b)),
            (KeyKind::Unsigned, Some(b)) => KeyValue::Uint(zero_extend(b)),
            (KeyKind::Pointer, Some(b)) if b.len() == 8 => KeyValue::Pointer(zero_extend(b)),
            _ => KeyValue::Bytes(bytes.to_vec()),
        }
    }

    /// A stable, non-reversible stand-in for the key (FNV-1a 64 of its
    /// display form): equal keys stay equal, values stay private.
    pub fn redacted(&self) -> KeyValue {
        if matches!(self, KeyValue::None) {
            return KeyValue::None;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.to_string().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        KeyValue::Redacted(format!("redacted:{h:016x}"))
    }
}

fn sign_extend(b: &[u8]) -> i64 {
    let mut v = zero_extend(b);
    let bits = 8 * b.len() as u32;
    if bits < 64 && v >> (bits - 1) & 1 == 1 {
        v |= u64::MAX << bits;
    }
    v as i64
}

fn zero_extend(b: &[u8]) -> u64 {
    b.iter()
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// Valid UTF-8 as is; each invalid byte as `\xNN`.
fn string_lossless(bytes: &[u8]) -> String {
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
            KeyValue::Pointer(v) => write!(f, "{v:#x}"),
            KeyValue::Str(s) => write!(f, "{s:?}"),
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
            KeyValue::Pointer(v) => s.serialize_str(&format!("{v:#x}")),
            KeyValue::Str(v) | KeyValue::Redacted(v) => s.serialize_str(v),
            KeyValue::Bytes(b) => s.serialize_str(&hex(b)),
            KeyValue::None => s.serialize_none(),
        }
    }
}

/// A key read back from a JSON record (`mdt flame --from`): numbers as
/// integers, anything else as the string it was written as, so that it is
/// written again the same.
impl<'de> serde::Deserialize<'de> for KeyValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(v), _) => KeyValue::Int(v),
                (None, Some(v)) => KeyValue::Uint(v),
                _ => KeyValue::Str(n.to_string()),
            },
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

    #[test]
    fn redaction_is_stable() {
        let a = KeyValue::Str("alice".into()).redacted();
        assert_eq!(a, KeyValue::Str("alice".into()).redacted());
        assert_ne!(a, KeyValue::Str("bob".into()).redacted());
    }
}
