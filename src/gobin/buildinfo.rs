//! The `.go.buildinfo` blob: the Go version and the module/build settings
//! (`-race`, `CGO_ENABLED`, `GOEXPERIMENT`, ...). Found by section name, or,
//! when section headers are gone, by its 16-byte aligned magic in the
//! writable segments (as `debug/buildinfo` does).

use super::bytes;
use super::elf::Elf;

const MAGIC: &[u8] = b"\xff Go buildinf:";
/// Flag bit: version and modinfo are stored inline as varint-prefixed strings (Go 1.18+).
const FLAG_INLINE: u8 = 0x2;
const FLAG_BIG_ENDIAN: u8 = 0x1;

#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    /// As stored, e.g. `go1.24.11` or `go1.24.11 X:noswissmap`.
    pub version: String,
    /// The `build\tKEY=VALUE` settings of the module info.
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub fn find(elf: &Elf) -> Option<BuildInfo> {
    if let Some((addr, data)) = elf.section(".go.buildinfo") {
        if let Some(info) = parse(elf, data, addr) {
            return Some(info);
        }
    }
    // No section headers (or no such section): scan the writable segments.
    for seg in elf.segments.iter().filter(|s| s.writable) {
        let data = elf.segment_data(seg);
        let mut off = (16 - seg.vaddr % 16) % 16;
        while off + 32 <= data.len() as u64 {
            if bytes::slice(data, off, MAGIC.len() as u64) == Some(MAGIC) {
                if let Some(info) = parse(elf, &data[off as usize..], seg.vaddr + off) {
                    return Some(info);
                }
            }
            off += 16;
        }
    }
    None
}

fn parse(elf: &Elf, data: &[u8], _addr: u64) -> Option<BuildInfo> {
    if bytes::slice(data, 0, MAGIC.len() as u64)? != MAGIC {
        return None;
    }
    let ptr_size = bytes::u8_at(data, 14)?;
    let flags = bytes::u8_at(data, 15)?;
    if flags & FLAG_BIG_ENDIAN != 0 {
        return None;
    }
    let (version, modinfo) = if flags & FLAG_INLINE != 0 {
        let (version, next) = varint_string(data, 32)?;
        let (modinfo, _) = varint_string(data, next).unwrap_or_default();
        (version, modinfo)
    } else {
        // Before Go 1.18: pointers to Go string headers.
        let version = string_header(elf, bytes::uptr_at(data, 16, ptr_size)?, ptr_size)?;
        let modinfo = bytes::uptr_at(data, 16 + u64::from(ptr_size), ptr_size)
            .and_then(|p| string_header(elf, p, ptr_size))
            .unwrap_or_default();
        (version, modinfo)
    };
    if version.is_empty() {
        return None;
    }
    Some(BuildInfo {
        version,
        settings: parse_settings(&strip_sentinels(&modinfo)),
    })
}

fn varint_string(data: &[u8], off: u64) -> Option<(String, u64)> {
    let (len, n) = bytes::uvarint(data, off)?;
    let raw = bytes::slice(data, off + n, len)?;
    Some((String::from_utf8_lossy(raw).into_owned(), off + n + len))
}

fn string_header(elf: &Elf, va: u64, ptr_size: u8) -> Option<String> {
    let header = elf.read_va(va, 2 * u64::from(ptr_size))?;
    let ptr = bytes::uptr_at(header, 0, ptr_size)?;
    let len = bytes::uptr_at(header, u64::from(ptr_size), ptr_size)?;
    if len > 1 << 20 {
        return None;
    }
    Some(String::from_utf8_lossy(elf.read_va(ptr, len)?).into_owned())
}

/// The modinfo string is framed by two 16-byte sentinels (see debug/buildinfo).
fn strip_sentinels(modinfo: &str) -> String {
    let b = modinfo.as_bytes();
    if b.len() >= 33 && b[b.len() - 17] == b'\n' {
        String::from_utf8_lossy(&b[16..b.len() - 16]).into_owned()
    } else {
        modinfo.to_string()
    }
}

fn parse_settings(modinfo: &str) -> Vec<(String, String)> {
    modinfo
        .lines()
        .filter_map(|line| line.strip_prefix("build\t"))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_parsed_from_modinfo() {
        let modinfo = "path\tmdtfixture\nbuild\t-buildmode=pie\nbuild\t-ldflags=\"-s -w\"\nbuild\tCGO_ENABLED=1\n";
        let s = parse_settings(modinfo);
        assert_eq!(s[0], ("-buildmode".into(), "pie".into()));
        assert_eq!(s[1], ("-ldflags".into(), "-s -w".into()));
        assert_eq!(s[2], ("CGO_ENABLED".into(), "1".into()));
    }
}
