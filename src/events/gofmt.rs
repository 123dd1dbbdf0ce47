//! Key values as Go's `fmt` prints them with `%+v`, from the key's bytes
//! and its type's tree ([`GoType`]): booleans, every integer width, floats
//! and complexes as `strconv` formats them (`1.5`, `1e+06`, `+Inf`, `NaN`,
//! `-0`, `(1+2i)`), strings, pointers (`0xc000012345`, `<nil>`), arrays
//! (`[1 2 3]`), structs with their field names (`{Tenant:t1 ID:42}`,
//! padding skipped), and interfaces. An interface key itself (not one
//! nested in a struct or array, which fmt prints as its value) is shown with
//! its dynamic type: `int(7)`, `string("x")`, `main.Key{ID:1}`,
//! `(*int)(0xc000012345)`, `<nil>` (docs/json.md, "Keys").
//!
//! What lives behind a pointer in the key (a string's bytes, an interface's
//! value) is only shown when the probe copied it at the delete
//! ([`Part`]): reading it later could read freed memory. A value that was
//! not captured in full is shown as far as it was, and said to be
//! incomplete; a descriptor that cannot be decoded gives no form at all
//! (the key is then shown as hex), never a guess.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::gobin::abi::kind;
use crate::gobin::gotype::{GoType, Shape};

/// Bytes the probe copied from behind a pointer inside the key, at the
/// delete (`struct mdt_key_part` in bpf/mdt.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    /// Where the pointer is in the key: a string header, or an interface.
    pub offset: u64,
    pub kind: PartKind,
    /// The bytes, as many as fit.
    pub bytes: &'a [u8],
    /// All of them (the string's length, the value type's size).
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// The bytes of the string whose header is at `offset`.
    String,
    /// The value behind the data word of the interface at `offset`.
    Value,
    /// The same value, a string: its bytes (not its header).
    ValueString,
}

/// The dynamic type of an interface value: from its first word, the type
/// itself (`empty`: an `interface {}`) or an itab.
pub trait DynamicTypes {
    fn dynamic_type(&mut self, word: u64, empty: bool) -> Option<Arc<GoType>>;
}

/// A key's Go form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatted {
    pub text: String,
    /// False when some of the key was not captured: `text` is then the
    /// form as far as the captured bytes go.
    pub complete: bool,
}

/// Why formatting stopped.
enum Stop {
    /// The bytes ran out: what was written is a prefix of the form.
    Cut,
    /// A descriptor or a value that cannot be shown: no form.
    Invalid,
}

/// The bytes a value is read from: the key's (with the parts the probe
/// copied from behind its pointers), or an interface value's (behind whose
/// pointers nothing was copied).
#[derive(Clone, Copy)]
struct Mem<'a> {
    bytes: &'a [u8],
    parts: &'a [Part<'a>],
}

impl<'a> Mem<'a> {
    fn get(&self, off: u64, len: u64) -> Result<&'a [u8], Stop> {
        let start = usize::try_from(off).map_err(|_| Stop::Cut)?;
        let end = start
            .checked_add(usize::try_from(len).map_err(|_| Stop::Cut)?)
            .ok_or(Stop::Cut)?;
        self.bytes.get(start..end).ok_or(Stop::Cut)
    }

    fn u64(&self, off: u64) -> Result<u64, Stop> {
        let b = self.get(off, 8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| Stop::Cut)?))
    }

    fn part(&self, off: u64, kinds: &[PartKind]) -> Option<&'a Part<'a>> {
        self.parts
            .iter()
            .find(|p| p.offset == off && kinds.contains(&p.kind))
    }
}

/// The Go form of the key of type `ty` whose bytes (as far as they were
/// captured) are `key`, with the `parts` captured from behind its pointers.
/// `None` if it cannot be shown (the key is then shown as hex).
pub fn format_key(
    ty: &GoType,
    key: &[u8],
    parts: &[Part<'_>],
    types: &mut dyn DynamicTypes,
) -> Option<Formatted> {
    let mem = Mem { bytes: key, parts };
    let mut out = String::new();
    let r = match ty.shape {
        Shape::Interface { empty } => top_interface(&mut out, mem, empty, types),
        _ => value(&mut out, ty, mem, 0, types),
    };
    match r {
        Ok(()) => Some(Formatted {
            text: out,
            complete: true,
        }),
        Err(Stop::Cut) => Some(Formatted {
            text: out,
            complete: false,
        }),
        Err(Stop::Invalid) => None,
    }
}

/// An interface key: `<nil>`, or its dynamic type and value.
fn top_interface(
    out: &mut String,
    mem: Mem<'_>,
    empty: bool,
    types: &mut dyn DynamicTypes,
) -> Result<(), Stop> {
    let word = mem.u64(0)?;
    if word == 0 {
        out.push_str("<nil>");
        return Ok(());
    }
    let dyn_ty = types.dynamic_type(word, empty).ok_or(Stop::Invalid)?;
    let name = dyn_ty.name.as_deref().ok_or(Stop::Invalid)?;
    match dyn_ty.shape {
        // main.Key{ID:1}: the struct's own braces.
        Shape::Struct { .. } => {
            out.push_str(name);
            interface_value(out, &dyn_ty, mem, 0, true, types)
        }
        // (*int)(0xc000012345): a conversion as Go writes one.
        Shape::Pointer => {
            let _ = write!(out, "({name})(");
            interface_value(out, &dyn_ty, mem, 0, true, types)?;
            out.push(')');
            Ok(())
        }
        // int(7), string("x"), [2]int([1 2]).
        _ => {
            let _ = write!(out, "{name}(");
            interface_value(out, &dyn_ty, mem, 0, true, types)?;
            out.push(')');
            Ok(())
        }
    }
}

/// The value of the interface at `off`, whose dynamic type is `dyn_ty`: in
/// its data word, or in the part the probe copied from behind it. `quote`:
/// a string is quoted (at the top of a key).
fn interface_value(
    out: &mut String,
    dyn_ty: &GoType,
    mem: Mem<'_>,
    off: u64,
    quote: bool,
    types: &mut dyn DynamicTypes,
) -> Result<(), Stop> {
    let data = mem.u64(off + crate::gobin::abi::IFACE_DATA)?;
    if dyn_ty.direct_iface {
        if dyn_ty.size != 8 {
            return Err(Stop::Invalid);
        }
        let word = data.to_le_bytes();
        let inner = Mem {
            bytes: &word,
            parts: &[],
        };
        return value(out, dyn_ty, inner, 0, types);
    }
    let part = mem
        .part(off, &[PartKind::Value, PartKind::ValueString])
        .ok_or(Stop::Cut)?;
    if part.kind == PartKind::ValueString {
        if !matches!(dyn_ty.shape, Shape::String) {
            return Err(Stop::Invalid);
        }
        string_bytes(out, part.bytes, quote);
        if !part.complete {
            return Err(Stop::Cut);
        }
        if quote {
            out.push('"');
        }
        return Ok(());
    }
    let inner = Mem {
        bytes: part.bytes,
        parts: &[],
    };
    value(out, dyn_ty, inner, 0, types)
}

/// `%+v` of the value of type `ty` at `off`.
fn value(
    out: &mut String,
    ty: &GoType,
    mem: Mem<'_>,
    off: u64,
    types: &mut dyn DynamicTypes,
) -> Result<(), Stop> {
    match &ty.shape {
        Shape::Bool => {
            let b = mem.get(off, 1)?;
            out.push_str(if b[0] != 0 { "true" } else { "false" });
        }
        Shape::Int => {
            let b = mem.get(off, ty.size)?;
            let _ = write!(out, "{}", sign_extend(b));
        }
        Shape::Uint => {
            let b = mem.get(off, ty.size)?;
            let _ = write!(out, "{}", zero_extend(b));
        }
        Shape::Float => {
            let b = mem.get(off, ty.size)?;
            out.push_str(&float_bits(zero_extend(b), ty.kind == kind::FLOAT32));
        }
        Shape::Complex => {
            let b = mem.get(off, ty.size)?;
            let half = b.len() / 2;
            let (re, im) = b.split_at(half);
            let f32 = ty.kind == kind::COMPLEX64;
            out.push_str(&complex_bits(zero_extend(re), zero_extend(im), f32));
        }
        Shape::Pointer => {
            let v = mem.u64(off)?;
            pointer(out, v);
        }
        Shape::String => {
            let len = mem.u64(off + crate::gobin::abi::STRING_LEN)?;
            mem.get(off, 16)?;
            if len == 0 {
                return Ok(());
            }
            let part = mem.part(off, &[PartKind::String]).ok_or(Stop::Cut)?;
            string_bytes(out, part.bytes, false);
            if !part.complete {
                return Err(Stop::Cut);
            }
        }
        Shape::Array { elem, len } => {
            out.push('[');
            for i in 0..*len {
                let before = out.len();
                if i > 0 {
                    out.push(' ');
                }
                let r = value(out, elem, mem, off + i * elem.size, types);
                // Cut before this element: no separator dangling.
                if matches!(r, Err(Stop::Cut)) && out.len() == before + 1 {
                    out.truncate(before);
                }
                r?;
            }
            out.push(']');
        }
        Shape::Struct { fields } => {
            out.push('{');
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&f.name);
                out.push(':');
                value(out, &f.ty, mem, off + f.offset, types)?;
            }
            out.push('}');
        }
        Shape::Interface { empty } => {
            // Nested: fmt prints the dynamic value alone.
            let word = mem.u64(off)?;
            if word == 0 {
                out.push_str("<nil>");
                return Ok(());
            }
            let dyn_ty = types.dynamic_type(word, *empty).ok_or(Stop::Invalid)?;
            interface_value(out, &dyn_ty, mem, off, false, types)?;
        }
        Shape::Other => return Err(Stop::Invalid),
    }
    Ok(())
}

fn pointer(out: &mut String, v: u64) {
    if v == 0 {
        out.push_str("<nil>");
    } else {
        let _ = write!(out, "{v:#x}");
    }
}

/// A string's bytes: as they are (valid UTF-8; each invalid byte as
/// `\xNN`), or quoted as `strconv.Quote` does (without the closing quote,
/// which the caller adds once it knows the string is whole).
fn string_bytes(out: &mut String, bytes: &[u8], quote: bool) {
    if !quote {
        for chunk in bytes.utf8_chunks() {
            out.push_str(chunk.valid());
            for b in chunk.invalid() {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
        return;
    }
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            quote_char(out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

/// Go's `strconv.Quote` of one character. Printable ASCII and non-ASCII
/// characters are kept; controls, spaces other than U+0020 and format
/// characters are escaped (Go's `unicode.IsPrint` without its tables:
/// unassigned and private-use characters are kept as they are).
pub fn quote_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_ascii() || is_print(c) => out.push(c),
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Non-ASCII characters that Go's `unicode.IsPrint` refuses and that can
/// be told without Unicode tables: C1 controls, spaces (Zs but U+0020, Zl,
/// Zp) and format characters (Cf).
fn is_print(c: char) -> bool {
    !matches!(c as u32,
        0x80..=0xa0 | 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x1680 | 0x180e
        | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064 | 0x2066..=0x206f
        | 0x3000 | 0xfeff | 0xfff9..=0xfffb | 0x110bd | 0x1d173..=0x1d17a
        | 0xe0001 | 0xe0020..=0xe007f)
}

pub(crate) fn sign_extend(b: &[u8]) -> i64 {
    let mut v = zero_extend(b);
    let bits = 8 * b.len() as u32;
    if bits > 0 && bits < 64 && v >> (bits - 1) & 1 == 1 {
        v |= u64::MAX << bits;
    }
    v as i64
}

pub(crate) fn zero_extend(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// A float of `bits` (`f32`: the low 32 bits) as `%v` prints it.
pub fn float_bits(bits: u64, f32: bool) -> String {
    if f32 {
        float32(f32::from_bits(bits as u32))
    } else {
        float64(f64::from_bits(bits))
    }
}

/// `fmt.Sprint(v)` of a float64: `strconv.FormatFloat(v, 'g', -1, 64)`
/// (the shortest digits that read back as `v`; an exponent below -4 or
/// from 6 on is written `e±dd`), with the sign of `+Inf`.
pub fn float64(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    shortest_g(&shortest_digits(
        format!("{v:e}"),
        |p| format!("{v:.p$e}"),
        |t| t.parse::<f64>().is_ok_and(|r| r.to_bits() == v.to_bits()),
    ))
}

/// `fmt.Sprint(v)` of a float32 (the shortest digits at 32 bits).
pub fn float32(v: f32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    shortest_g(&shortest_digits(
        format!("{v:e}"),
        |p| format!("{v:.p$e}"),
        |t| t.parse::<f32>().is_ok_and(|r| r.to_bits() == v.to_bits()),
    ))
}

/// The shortest digits that read back as the value, the closest to it
/// when there are several, ties to even (`strconv`'s Ryū): Rust's shortest
/// form gives how many digits, and its exact form at that precision
/// (correctly rounded, ties to even) the closest ones, if they read back.
fn shortest_digits(
    shortest: String,
    exact: impl Fn(usize) -> String,
    reads_back: impl Fn(&str) -> bool,
) -> String {
    let mant = shortest.split('e').next().unwrap_or("");
    let digits = mant.bytes().filter(u8::is_ascii_digit).count();
    let closest = exact(digits.saturating_sub(1));
    if closest != shortest && reads_back(&closest) {
        closest
    } else {
        shortest
    }
}

/// `%v` of a complex: `(re+imi)`, the imaginary part always signed
/// (`+NaN`, `+Inf`).
pub fn complex_bits(re: u64, im: u64, f32: bool) -> String {
    let re = float_bits(re, f32);
    let im = float_bits(im, f32);
    let sign = if im.starts_with('-') || im.starts_with('+') {
        ""
    } else {
        "+"
    };
    format!("({re}{sign}{im}i)")
}

/// Go's `%g` with the shortest precision, from Rust's shortest `{:e}` form
/// (`1.234567e6`, `-5e-324`, `0e0`): `strconv/ftoa.go`, `fmtE` when the
/// exponent is < -4 or >= 6, else `fmtF`.
fn shortest_g(sci: &str) -> String {
    let (mant, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    let nd = digits.len() as i64;
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push(digits[0] as char);
        if nd > 1 {
            out.push('.');
            out.extend(digits[1..].iter().map(|&d| d as char));
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
        return out;
    }
    // fmtF with max(nd - dp, 0) fraction digits; dp = exp + 1.
    let dp = exp + 1;
    let digit = |i: i64| {
        if (0..nd).contains(&i) {
            digits[i as usize] as char
        } else {
            '0'
        }
    };
    if dp > 0 {
        for i in 0..dp {
            out.push(digit(i));
        }
    } else {
        out.push('0');
    }
    let frac = (nd - dp).max(0);
    if frac > 0 {
        out.push('.');
        for i in 0..frac {
            out.push(digit(dp + i));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gobin::gotype::Field;

    /// `fmt.Sprintf("%v", v)` for these float64 bit patterns, as a Go
    /// program printed them once (Go 1.27 and 1.19 alike): special values,
    /// the exponent thresholds (1e-05, 1e+06, 1e+21) and 100 random values
    /// (`math/rand` seed 17: bit patterns, and integers over powers of
    /// two). The same program's 600 000 values of both widths were checked
    /// once as well.
    const FLOAT64: &[(u64, &str)] = &[
        (0x0000000000000000, "0"),
        (0x8000000000000000, "-0"),
        (0x3ff0000000000000, "1"),
        (0xbff0000000000000, "-1"),
        (0x3ff8000000000000, "1.5"),
        (0x3fb999999999999a, "0.1"),
        (0x3fc999999999999a, "0.2"),
        (0x3fd3333333333333, "0.3"),
        (0x3fd5555555555555, "0.3333333333333333"),
        (0x3fe5555555555555, "0.6666666666666666"),
        (0x4059000000000000, "100"),
        (0x40fe240000000000, "123456"),
        (0x412e847e00000000, "999999"),
        (0x412e848000000000, "1e+06"),
        (0x412e848200000000, "1.000001e+06"),
        (0x4132d68700000000, "1.234567e+06"),
        (0x41678c29dccccccd, "1.23456789e+07"),
        (0x4415af1d78b58c40, "1e+20"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x4480f0cf064dd592, "1e+22"),
        (0x54b249ad2594c37d, "1e+100"),
        (0x7e37e43c8800759c, "1e+300"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0x0000000000000001, "5e-324"),
        (0x0010000000000000, "2.2250738585072014e-308"),
        (0x3f1a36e2eb1c432d, "0.0001"),
        (0x3ee4f8b588e368f1, "1e-05"),
        (0x3f202c9dedbc309d, "0.0001234"),
        (0x3ee9e0fcaf9380fc, "1.234e-05"),
        (0x3e7ad7f29abcaf48, "1e-07"),
        (0x400921f9f01b866e, "3.14159"),
        (0x400921fb54442d18, "3.141592653589793"),
        (0x4005bf0a8b145769, "2.718281828459045"),
        (0x7ff0000000000000, "+Inf"),
        (0xfff0000000000000, "-Inf"),
        (0x7ff8000000000001, "NaN"),
        (0xbee4f8b588e368f1, "-1e-05"),
        (0xc05edd2f1a9fbe77, "-123.456"),
        (0x4340000000000000, "9.007199254740992e+15"),
        (0x43d0000000000000, "4.611686018427388e+18"),
        (0x3fe0000000000000, "0.5"),
        (0x3fd0000000000000, "0.25"),
        (0x40fe240b33333333, "123456.7"),
        (0x40c81cd6c8b43958, "12345.678"),
        (0x40f86a0000000000, "100000"),
        (0x416312d000000000, "1e+07"),
        (0x40f869ffd70a3d71, "99999.99"),
        (0x412e847fcccccccd, "999999.9"),
        (0x416312cfe0000000, "9.999999e+06"),
        (0x401d000000000000, "7.25"),
        (0x4002000000000000, "2.25"),
        (0xbfd0000000000000, "-0.25"),
        (0x4045000000000000, "42"),
        (0xc369f4a9e285c37a, "-5.844707923867131e+16"),
        (0x204b7c7717077059, "4.100027731923952e-153"),
        (0xb226bd7bc62ccd7c, "-4.2173989017777916e-67"),
        (0x09b010b0aaa51435, "5.101874858811e-262"),
        (0x9a5c74e827cd0a2a, "-1.0715357513955965e-181"),
        (0x49644c549d6a489c, "3.621313845287193e+45"),
        (0x10eb67acc9ebe3c7, "3.6151204888981624e-227"),
        (0x0b6bee3134e30484, "1.190505525376349e-253"),
        (0x6fd7cd309fcb35fc, "5.773796154158287e+230"),
        (0xc52f38e259ee47c5, "-1.8872664187725344e+25"),
        (0x4b016b2d177f7f8a, "2.0854698334294344e+53"),
        (0x6a9e717583754acd, "3.8179246409349165e+205"),
        (0x5402f8885956c3fa, "5.06518100650905e+96"),
        (0x9171c0d54236b446, "-1.1990608180783656e-224"),
        (0x8d8c907d8aacad5d, "-2.0916974163829996e-243"),
        (0xf1fefe319edd9f59, "-1.2916337640143902e+241"),
        (0x73a2411a59a07d11, "1.0210612931535567e+249"),
        (0x386fabe5eed9fa2c, "7.4459285177621045e-37"),
        (0x2df0320b9757cadc, "2.0353323781352765e-87"),
        (0xc2f19840d83752e6, "-3.095299298071504e+14"),
        (0x7773d45d389e4f9a, "2.5575784835346683e+267"),
        (0x4b131c2d972edc75, "4.57595282297739e+53"),
        (0x426663d3038cc000, "7.69312431206e+11"),
        (0x40e1b1bdd397c000, "36237.932079195976"),
        (0x3fb4992f2597a000, "0.08046240489750289"),
        (0x41e45ca8cfb88000, "2.732934781765625e+09"),
    ];

    /// The same for float32 (Go prints the shortest digits at 32 bits; a tie
    /// between two shortest forms goes to the even digit: 0x4a1c3fad,
    /// 2559979.25, is 2.5599792e+06).
    const FLOAT32: &[(u32, &str)] = &[
        (0x00000000, "0"),
        (0x80000000, "-0"),
        (0x3f800000, "1"),
        (0x3f8ccccd, "1.1"),
        (0x3dcccccd, "0.1"),
        (0x3fc00000, "1.5"),
        (0x4b800000, "1.6777216e+07"),
        (0x49742400, "1e+06"),
        (0x4996b438, "1.234567e+06"),
        (0x3727c5ac, "1e-05"),
        (0x7f7fffff, "3.4028235e+38"),
        (0x00000001, "1e-45"),
        (0x7f800000, "+Inf"),
        (0xff800000, "-Inf"),
        (0x7fc00000, "NaN"),
        (0x40490fd0, "3.14159"),
        (0x47f1205a, "123456.7"),
        (0x501502f9, "1e+10"),
        (0x348637bd, "2.5e-07"),
        (0xf49afb56, "-9.823137e+31"),
        (0x24991ff8, "6.640733e-17"),
        (0x4a1c3fad, "2.5599792e+06"),
        (0x4300672b, "128.403"),
        (0x7eb3821b, "1.1930368e+38"),
        (0xc16d867f, "-14.845336"),
        (0x3e4c7c81, "0.1996937"),
        (0xe6468e3d, "-2.344131e+23"),
        (0xc865329f, "-234698.48"),
        (0x515338ad, "5.669931e+10"),
        (0xa8c6ee33, "-2.2085718e-14"),
        (0x5f64d7bd, "1.6489856e+19"),
        (0x9f9500b8, "-6.3105144e-20"),
        (0xc852e433, "-215952.8"),
        (0x17fa956d, "1.6193592e-24"),
        (0xbc29de6e, "-0.010367973"),
        (0xaf41d743, "-1.7629724e-10"),
        (0x674e2b8e, "9.7361094e+23"),
        (0x0cf12bdf, "3.7158333e-31"),
        (0xff571234, "-2.8587854e+38"),
        (0x097fdea8, "3.0799201e-33"),
        (0x27f14471, "6.696514e-15"),
        (0xe626bc79, "-1.9684739e+23"),
        (0x390e4649, "0.00013568359"),
        (0x8bb48da1, "-6.954658e-32"),
        (0x2d4d40aa, "1.1667259e-11"),
        (0x36fe070c, "7.5706103e-06"),
        (0x196d4c01, "1.2267962e-23"),
        (0xbe9e4039, "-0.30908373"),
        (0x988728ea, "-3.4937995e-24"),
        (0x31c317c1, "5.6779474e-09"),
        (0x803cb357, "-5.574465e-39"),
        (0x35892c4c, "1.0220188e-06"),
        (0x4d27e45c, "1.7604755e+08"),
        (0x28bc9bd9, "2.0939781e-14"),
        (0x0b029227, "2.5147042e-32"),
        (0xb003a65a, "-4.789392e-10"),
        (0xc1575727, "-13.458777"),
        (0x77240236, "3.3264903e+33"),
        (0xd9597804, "-3.8257518e+15"),
    ];

    /// complex128 and complex64 (real bits, imaginary bits, `%v`).
    const COMPLEX128: &[(u64, u64, &str)] = &[
        (0x3ff0000000000000, 0x4000000000000000, "(1+2i)"),
        (0x3ff8000000000000, 0xc002000000000000, "(1.5-2.25i)"),
        (0x0000000000000000, 0x0000000000000000, "(0+0i)"),
        (0x8000000000000000, 0x8000000000000000, "(-0-0i)"),
        (0x7ff0000000000000, 0x7ff8000000000001, "(+Inf+NaNi)"),
        (0x7ff8000000000001, 0xfff0000000000000, "(NaN-Infi)"),
        (0x444b1ae4d6e2ef50, 0x3e7ad7f29abcaf48, "(1e+21+1e-07i)"),
        (0xbff0000000000000, 0x412e848000000000, "(-1+1e+06i)"),
    ];
    const COMPLEX64: &[(u32, u32, &str)] = &[
        (0x3f800000, 0x40000000, "(1+2i)"),
        (0x3f8ccccd, 0xbdcccccd, "(1.1-0.1i)"),
        (0x7f800000, 0x00000000, "(+Inf+0i)"),
        (0x4b800000, 0x3727c5ac, "(1.6777216e+07+1e-05i)"),
    ];

    #[test]
    fn floats_as_go_prints_them() {
        for &(bits, want) in FLOAT64 {
            assert_eq!(float64(f64::from_bits(bits)), want, "float64 {bits:#x}");
        }
        for &(bits, want) in FLOAT32 {
            assert_eq!(float32(f32::from_bits(bits)), want, "float32 {bits:#x}");
        }
        for &(re, im, want) in COMPLEX128 {
            assert_eq!(complex_bits(re, im, false), want);
        }
        for &(re, im, want) in COMPLEX64 {
            assert_eq!(complex_bits(re.into(), im.into(), true), want);
        }
    }

    #[test]
    fn quoting_follows_strconv() {
        let q = |s: &[u8]| {
            let mut out = String::new();
            string_bytes(&mut out, s, true);
            out.push('"');
            out
        };
        // strconv.Quote of each (checked with Go 1.27).
        assert_eq!(q(b"x"), r#""x""#);
        assert_eq!(q(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(q(b"\n\t\x01\x7f"), r#""\n\t\x01\x7f""#);
        assert_eq!(q("héllo €".as_bytes()), "\"héllo €\"");
        assert_eq!(
            q("\u{a0}\u{200b}\u{feff}".as_bytes()),
            r#""\u00a0\u200b\ufeff""#
        );
        assert_eq!(q(b"a\xffb"), r#""a\xffb""#);
    }

    struct NoDynamic;
    impl DynamicTypes for NoDynamic {
        fn dynamic_type(&mut self, _: u64, _: bool) -> Option<Arc<GoType>> {
            None
        }
    }

    fn basic(name: &str, k: u8) -> Arc<GoType> {
        Arc::new(GoType::basic(name, k).unwrap())
    }

    fn strukt(name: &str, fields: Vec<(&str, u64, Arc<GoType>)>, size: u64) -> GoType {
        let fields = fields
            .into_iter()
            .map(|(n, offset, ty)| Field {
                name: n.into(),
                offset,
                ty,
            })
            .collect();
        GoType::new(
            Some(name.into()),
            size,
            kind::STRUCT,
            false,
            Shape::Struct { fields },
        )
        .unwrap()
    }

    #[test]
    fn structs_skip_padding_and_follow_captured_strings() {
        // struct { A int8; B int64; S string } with garbage in the padding.
        let t = strukt(
            "main.K",
            vec![
                ("A", 0, basic("int8", kind::INT8)),
                ("B", 8, basic("int64", kind::INT64)),
                ("S", 16, basic("string", kind::STRING)),
            ],
            32,
        );
        let mut key = vec![0xffu8; 32];
        key[0] = 0xfe;
        key[8..16].copy_from_slice(&42i64.to_le_bytes());
        key[16..24].copy_from_slice(&0xc000_0100u64.to_le_bytes());
        key[24..32].copy_from_slice(&2u64.to_le_bytes());
        let part = |bytes: &'static [u8], complete| Part {
            offset: 16,
            kind: PartKind::String,
            bytes,
            complete,
        };
        let f = |parts: &[Part<'_>]| format_key(&t, &key, parts, &mut NoDynamic).unwrap();
        assert_eq!(
            f(&[part(b"t1", true)]),
            Formatted {
                text: "{A:-2 B:42 S:t1}".into(),
                complete: true
            }
        );
        // Not captured: as far as it goes.
        assert_eq!(
            f(&[part(b"t", false)]),
            Formatted {
                text: "{A:-2 B:42 S:t".into(),
                complete: false
            }
        );
        assert_eq!(f(&[]).text, "{A:-2 B:42 S:");
        // The key itself cut short.
        let cut = format_key(&t, &key[..12], &[], &mut NoDynamic).unwrap();
        assert_eq!((cut.text.as_str(), cut.complete), ("{A:-2 B:", false));
    }

    #[test]
    fn arrays_pointers_and_bools() {
        let arr = GoType::new(
            Some("[3]uint16".into()),
            6,
            kind::ARRAY,
            false,
            Shape::Array {
                elem: basic("uint16", kind::UINT16),
                len: 3,
            },
        )
        .unwrap();
        let f = format_key(&arr, &[1, 0, 2, 0, 0xff, 0xff], &[], &mut NoDynamic).unwrap();
        assert_eq!(f.text, "[1 2 65535]");
        let f = format_key(&arr, &[1, 0, 2, 0, 0xff], &[], &mut NoDynamic).unwrap();
        assert_eq!((f.text.as_str(), f.complete), ("[1 2", false));
        let t = strukt(
            "main.P",
            vec![
                ("P", 0, basic("*int", kind::POINTER)),
                ("N", 8, basic("*int", kind::POINTER)),
                ("B", 16, basic("bool", kind::BOOL)),
            ],
            24,
        );
        let mut key = vec![0u8; 24];
        key[..8].copy_from_slice(&0xc000_0123u64.to_le_bytes());
        key[16] = 1;
        let f = format_key(&t, &key, &[], &mut NoDynamic).unwrap();
        assert_eq!(f.text, "{P:0xc0000123 N:<nil> B:true}");
    }

    struct OneType(Arc<GoType>);
    impl DynamicTypes for OneType {
        fn dynamic_type(&mut self, word: u64, _: bool) -> Option<Arc<GoType>> {
            (word == 0x1000).then(|| self.0.clone())
        }
    }

    #[test]
    fn interfaces_show_their_dynamic_type_at_the_top() {
        let any = GoType::new(
            Some("interface {}".into()),
            16,
            kind::INTERFACE,
            false,
            Shape::Interface { empty: true },
        )
        .unwrap();
        let words = |t: u64, d: u64| {
            let mut k = t.to_le_bytes().to_vec();
            k.extend_from_slice(&d.to_le_bytes());
            k
        };
        let value = |bytes: &'static [u8], kind| Part {
            offset: 0,
            kind,
            bytes,
            complete: true,
        };
        let mut int = OneType(basic("int", kind::INT));
        let seven = 7i64.to_le_bytes();
        let p = [Part {
            bytes: &seven,
            ..value(b"", PartKind::Value)
        }];
        let f = format_key(&any, &words(0x1000, 0xc000_0000), &p, &mut int).unwrap();
        assert_eq!(f.text, "int(7)");
        // Not captured: cut after the type.
        let f = format_key(&any, &words(0x1000, 0xc000_0000), &[], &mut int).unwrap();
        assert_eq!((f.text.as_str(), f.complete), ("int(", false));
        let mut string = OneType(basic("string", kind::STRING));
        let p = [value(b"x\"y", PartKind::ValueString)];
        let f = format_key(&any, &words(0x1000, 0xc000_0000), &p, &mut string).unwrap();
        assert_eq!(f.text, r#"string("x\"y")"#);
        // A pointer is in the data word.
        let mut ptr = OneType(basic("*int", kind::POINTER));
        let f = format_key(&any, &words(0x1000, 0xc000_0042), &[], &mut ptr).unwrap();
        assert_eq!(f.text, "(*int)(0xc0000042)");
        let f = format_key(&any, &words(0, 0), &[], &mut ptr).unwrap();
        assert_eq!(f.text, "<nil>");
        // An unknown dynamic type: no form (hex), not a guess.
        assert!(format_key(&any, &words(0x2000, 1), &[], &mut ptr).is_none());
        // Nested in a struct: the value alone, as fmt prints it.
        let t = strukt(
            "main.W",
            vec![("K", 0, Arc::new(any)), ("ID", 16, basic("int", kind::INT))],
            24,
        );
        let mut key = words(0x1000, 0xc000_0000);
        key.extend_from_slice(&3i64.to_le_bytes());
        let p = [Part {
            bytes: &seven,
            ..value(b"", PartKind::Value)
        }];
        let f = format_key(&t, &key, &p, &mut int).unwrap();
        assert_eq!(f.text, "{K:7 ID:3}");
    }
}
