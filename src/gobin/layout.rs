//! Struct offsets the BPF program reads at every delete: `goid` in
//! `runtime.g`, and the element count in the map header. From DWARF when the
//! binary has it, otherwise from a table of verified values per release
//! (production binaries are usually built with `-w`).

use std::borrow::Cow;

use gimli::{AttributeValue, EndianSlice, RunTimeEndian};

use super::elf::Elf;
use super::version::GoVersion;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutSource {
    Dwarf,
    /// Read from the instructions of a function that uses the field.
    MachineCode,
    VersionTable,
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Layout {
    /// Offset of `goid` in `runtime.g`.
    pub goid_offset: u64,
    /// Offset of the element count (`hmap.count`, `maps.Map.used`) in the map header.
    pub map_count_offset: u64,
    pub source: LayoutSource,
}

/// The newest release whose offsets mdt has verified.
pub const NEWEST_KNOWN_MINOR: u32 = 27;

/// Verified offsets (docs/go-runtime.md, §4): `goid`
/// moved to 160 when 1.23 added `g.syscallbp`, and back to 152 when 1.25
/// removed `gobuf.ret`. The count is the first word of the header in every
/// release, hmap and Swiss alike.
pub fn from_version(v: GoVersion) -> Option<Layout> {
    if v.major != 1 || v.minor < 17 || v.minor > NEWEST_KNOWN_MINOR {
        return None;
    }
    let goid_offset = if matches!(v.minor, 23 | 24) { 160 } else { 152 };
    Some(Layout {
        goid_offset,
        map_count_offset: 0,
        source: LayoutSource::VersionTable,
    })
}

/// Offsets read from DWARF, if the binary carries it.
pub fn from_dwarf(dwarf: &Dwarf) -> Option<Layout> {
    let goid = member_offset(dwarf, "runtime.g", "goid")?;
    let count = member_offset(dwarf, "internal/runtime/maps.Map", "used")
        .or_else(|| member_offset(dwarf, "runtime.hmap", "count"))?;
    Some(Layout {
        goid_offset: goid,
        map_count_offset: count,
        source: LayoutSource::Dwarf,
    })
}

pub(crate) type Dwarf<'a> = gimli::Dwarf<EndianSlice<'a, RunTimeEndian>>;

/// The DWARF of `sections` ([`dwarf_of`]), to read from.
pub(crate) fn borrow<'a>(sections: &'a gimli::DwarfSections<Cow<'_, [u8]>>) -> Dwarf<'a> {
    sections.borrow(|s| EndianSlice::new(s, RunTimeEndian::Little))
}

/// The binary's DWARF sections (empty ones when it has none), decompressed.
pub(crate) fn dwarf_of<'a>(elf: &Elf<'a>) -> Option<gimli::DwarfSections<Cow<'a, [u8]>>> {
    let load = |id: gimli::SectionId| -> Result<Cow<'a, [u8]>, gimli::Error> {
        Ok(elf
            .section_uncompressed(id.name())
            .unwrap_or(Cow::Borrowed(&[])))
    };
    gimli::DwarfSections::load(load).ok()
}

/// One struct type as DWARF describes it: its size and its members' offsets.
#[derive(Debug, Clone, Default)]
pub(crate) struct StructLayout {
    pub size: Option<u64>,
    pub members: std::collections::HashMap<String, u64>,
}

/// The layouts of the struct types named in `names` (the first of each
/// name), in one pass over the DWARF.
pub(crate) fn struct_layouts(
    dwarf: &Dwarf,
    names: &[&str],
) -> std::collections::HashMap<String, StructLayout> {
    let mut out = std::collections::HashMap::new();
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let mut entries = unit.entries();
        // (name, depth) of the struct being read.
        let mut current: Option<(String, isize)> = None;
        let mut depth = 0isize;
        while let Ok(Some((delta, entry))) = entries.next_dfs() {
            depth += delta;
            if current.as_ref().is_some_and(|(_, d)| depth <= *d) {
                current = None;
            }
            let name = entry
                .attr_value(gimli::DW_AT_name)
                .ok()
                .flatten()
                .and_then(|v| dwarf.attr_string(&unit, v).ok())
                .map(|n| String::from_utf8_lossy(n.slice()).into_owned());
            match entry.tag() {
                gimli::DW_TAG_structure_type => {
                    let Some(name) = name.filter(|n| names.contains(&n.as_str())) else {
                        continue;
                    };
                    if out.contains_key(&name) {
                        continue;
                    }
                    let size = entry
                        .attr_value(gimli::DW_AT_byte_size)
                        .ok()
                        .flatten()
                        .and_then(|v| udata(&v));
                    out.insert(
                        name.clone(),
                        StructLayout {
                            size,
                            members: Default::default(),
                        },
                    );
                    current = Some((name, depth));
                }
                gimli::DW_TAG_member => {
                    let (Some((ty, _)), Some(member)) = (&current, name) else {
                        continue;
                    };
                    let off = entry
                        .attr_value(gimli::DW_AT_data_member_location)
                        .ok()
                        .flatten()
                        .and_then(|v| udata(&v));
                    if let (Some(off), Some(layout)) = (off, out.get_mut(ty)) {
                        layout.members.entry(member).or_insert(off);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn udata(v: &AttributeValue<EndianSlice<'_, RunTimeEndian>>) -> Option<u64> {
    match *v {
        AttributeValue::Udata(off) => Some(off),
        AttributeValue::Data1(off) => Some(off.into()),
        AttributeValue::Data2(off) => Some(off.into()),
        AttributeValue::Data4(off) => Some(off.into()),
        AttributeValue::Data8(off) => Some(off),
        AttributeValue::Sdata(off) => u64::try_from(off).ok(),
        _ => None,
    }
}

/// `DW_AT_data_member_location` of `member` in the struct type named `ty`.
pub(crate) fn member_offset(dwarf: &Dwarf, ty: &str, member: &str) -> Option<u64> {
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let mut entries = unit.entries();
        let mut in_struct = false;
        let mut struct_depth = 0isize;
        let mut depth = 0isize;
        while let Ok(Some((delta, entry))) = entries.next_dfs() {
            depth += delta;
            if in_struct && depth <= struct_depth {
                in_struct = false;
            }
            let name = entry
                .attr_value(gimli::DW_AT_name)
                .ok()
                .flatten()
                .and_then(|v| dwarf.attr_string(&unit, v).ok());
            let name = name.as_ref().map(|n| n.slice());
            match entry.tag() {
                gimli::DW_TAG_structure_type if name == Some(ty.as_bytes()) => {
                    in_struct = true;
                    struct_depth = depth;
                }
                gimli::DW_TAG_member if in_struct && name == Some(member.as_bytes()) => {
                    return match entry.attr_value(gimli::DW_AT_data_member_location) {
                        Ok(Some(AttributeValue::Udata(off))) => Some(off),
                        Ok(Some(AttributeValue::Data1(off))) => Some(off.into()),
                        Ok(Some(AttributeValue::Data2(off))) => Some(off.into()),
                        Ok(Some(AttributeValue::Data4(off))) => Some(off.into()),
                        Ok(Some(AttributeValue::Data8(off))) => Some(off),
                        Ok(Some(AttributeValue::Sdata(off))) => u64::try_from(off).ok(),
                        _ => None,
                    };
                }
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goid_offset_follows_the_releases() {
        let at = |minor| from_version(GoVersion::new(1, minor)).map(|l| l.goid_offset);
        assert_eq!(at(19), Some(152));
        assert_eq!(at(22), Some(152));
        assert_eq!(at(23), Some(160));
        assert_eq!(at(24), Some(160));
        assert_eq!(at(25), Some(152));
        assert_eq!(at(27), Some(152));
        assert_eq!(at(16), None);
        assert_eq!(at(28), None);
    }
}
