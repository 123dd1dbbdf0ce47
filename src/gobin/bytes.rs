//! Bounds-checked little readers over untrusted bytes. Every reader of the Go
//! binary goes through these so that a malformed file yields `None` (turned
//! into an error by the caller), never a panic or an out-of-bounds read.

pub fn slice(data: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    data.get(start..end)
}

pub fn u8_at(data: &[u8], off: u64) -> Option<u8> {
    slice(data, off, 1).map(|b| b[0])
}

pub fn u16_at(data: &[u8], off: u64) -> Option<u16> {
    slice(data, off, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}

pub fn u32_at(data: &[u8], off: u64) -> Option<u32> {
    slice(data, off, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
}

pub fn i32_at(data: &[u8], off: u64) -> Option<i32> {
    u32_at(data, off).map(|v| v as i32)
}

pub fn u64_at(data: &[u8], off: u64) -> Option<u64> {
    slice(data, off, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
}

/// A pointer-sized value (4 or 8 bytes).
pub fn uptr_at(data: &[u8], off: u64, ptr_size: u8) -> Option<u64> {
    match ptr_size {
        4 => u32_at(data, off).map(u64::from),
        8 => u64_at(data, off),
        _ => None,
    }
}

/// An unsigned LEB128 varint, as Go's `encoding/binary.Uvarint`: the value
/// and the number of bytes it took.
pub fn uvarint(data: &[u8], off: u64) -> Option<(u64, u64)> {
    let mut value = 0u64;
    for i in 0..10u64 {
        let b = u8_at(data, off + i)?;
        value |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// A NUL-terminated string starting at `off` (Go's pclntab function names).
pub fn cstr_at(data: &[u8], off: u64) -> Option<&str> {
    let rest = data.get(usize::try_from(off).ok()?..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_refuse_out_of_bounds() {
        let data = [1u8, 2, 3];
        assert_eq!(u32_at(&data, 0), None);
        assert_eq!(u16_at(&data, 1), Some(0x0302));
        assert_eq!(slice(&data, u64::MAX, 2), None);
        assert_eq!(cstr_at(&data, 0), None);
        assert_eq!(uvarint(&[0x80, 0x80], 0), None);
        assert_eq!(uvarint(&[0xac, 0x02], 0), Some((300, 2)));
    }
}
