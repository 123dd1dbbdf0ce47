//! Reading a Go binary: everything the probes need, from the file alone,
//! without ELF symbols or DWARF (both optional extras when present).
//!
//! [`GoBinary::analyze`] ties the readers together:
//! [`elf`] → [`buildinfo`] / [`pclntab`] → [`moduledata`] → [`funcs`] +
//! [`disasm`] → [`layout`], [`labels`], [`mapmem`].

pub mod abi;
pub mod buildinfo;
pub mod bytes;
pub mod disasm;
pub mod elf;
pub mod fatal;
pub mod funcs;
pub mod gotype;
pub mod image;
pub mod labels;
pub mod layout;
pub mod mapmem;
pub mod moduledata;
pub mod pclntab;
pub mod version;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use self::elf::{Arch, Elf};
use self::funcs::{KeyArg, Role};
use self::layout::Layout;
use self::moduledata::ModuleData;
use self::pclntab::Pclntab;
use self::version::GoVersion;

/// Where the Go version came from, most to least reliable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionSource {
    /// The `.go.buildinfo` blob.
    Buildinfo,
    /// The `runtime.buildVersion` string.
    BuildVersion,
    /// Only the `.gopclntab` header format: a range of releases.
    PclntabFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MapImpl {
    /// Classic buckets (`runtime.hmap`), up to 1.23 and with `GOEXPERIMENT=noswissmap`.
    Hmap,
    /// Swiss tables (`internal/runtime/maps.Map`), from 1.24.
    Swiss,
}

/// Where the base of pclntab's function entries came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextBaseSource {
    Moduledata,
    PclntabHeader,
    TextSection,
}

/// One map-removing function found in the binary.
#[derive(Debug, Clone, Serialize)]
pub struct MapFunc {
    pub name: &'static str,
    pub role: Role,
    pub key: KeyArg,
    pub receiver_first: bool,
    /// Link-time virtual address of the entry.
    pub address: u64,
    pub size: u64,
    /// File offset of the entry (what the kernel keys uprobes by).
    pub file_offset: u64,
    /// Offset from the entry where the probe goes (after the stack check).
    pub probe_offset: u64,
    /// Offsets from the entry of every RET instruction.
    pub ret_offsets: Vec<u64>,
    /// Where exit probes go: every call that returns executes exactly one of
    /// these, then only its epilogue (an emulated JMP into a shared epilogue
    /// when possible, else the RET).
    pub exit_points: Vec<disasm::ExitPoint>,
    /// Why `exit_points` is empty, when it is (a tail jump, an indirect jump,
    /// no RET).
    pub exit_note: Option<String>,
    /// Other catalog functions it calls directly.
    pub calls: Vec<&'static str>,
    pub attach: bool,
    pub reason: String,
}

impl MapFunc {
    /// The file offset a uprobe is attached at.
    pub fn probe_file_offset(&self) -> u64 {
        self.file_offset + self.probe_offset
    }

    /// The file offsets exit uprobes are attached at, in address order.
    pub fn exit_file_offsets(&self) -> Vec<u64> {
        self.exit_points
            .iter()
            .map(|e| self.file_offset + e.offset)
            .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildIds {
    pub go: Option<String>,
    pub gnu: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GoBinary {
    pub path: PathBuf,
    pub arch: Arch,
    /// The version as written in the binary (`go1.24.11 X:noswissmap`), or a
    /// range (`go1.20 or later`) when only the pclntab format was readable.
    pub go_version: String,
    /// Parsed version; the lower bound of the range for `pclntab_format`.
    pub version: GoVersion,
    pub version_source: VersionSource,
    pub map_impl: MapImpl,
    pub pie: bool,
    pub stripped: bool,
    pub cgo: bool,
    pub race: bool,
    pub dwarf: bool,
    pub section_headers: bool,
    pub build_id: BuildIds,
    pub pclntab_address: u64,
    pub moduledata: Option<ModuleData>,
    pub text_base: u64,
    pub text_base_source: TextBaseSource,
    /// The lowest `p_vaddr - p_offset`, to compute a PIE's load bias.
    pub link_base: u64,
    /// None when neither DWARF nor the version table knows this release.
    pub layout: Option<Layout>,
    /// Where goroutines' pprof labels are; None when `runtime/pprof` is not
    /// linked (no labels can be set) or the offset is unknown.
    pub labels: Option<labels::LabelLayout>,
    /// Where the program dies of map misuse (`runtime.fatal`); None when not
    /// found.
    pub fatal: Option<fatal::FatalFunc>,
    /// How a map's capacity and bytes are read from its header; None when
    /// neither DWARF nor the table knows this release.
    pub map_memory: Option<mapmem::MapMemLayout>,
    pub functions: Vec<MapFunc>,
    /// Catalog functions that are not linked into this binary.
    pub absent: Vec<&'static str>,
}

impl GoBinary {
    /// Reads and analyzes the Go executable at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let data = elf::read_file(path)?;
        Self::analyze(path, &data).with_context(|| path.display().to_string())
    }

    pub fn analyze(path: &Path, data: &[u8]) -> Result<Self> {
        let elf = Elf::parse(data)?;
        let pclntab = Pclntab::find(&elf)?;
        let build_info = buildinfo::find(&elf);
        let (go_version, version, version_source) = go_version(&elf, &pclntab, &build_info)?;
        if !version.at_least(17) {
            bail!("unsupported Go version {go_version}: mdt needs go1.17 or later (older releases pass arguments on the stack)");
        }
        let exact = version_source != VersionSource::PclntabFormat;
        let moduledata = moduledata::find(&elf, &pclntab, exact.then_some(version));
        let (text_base, text_base_source) = text_base(&elf, &pclntab, moduledata.as_ref())?;
        let setting = |k: &str| build_info.as_ref().and_then(|b| b.setting(k));

        let names = FuncIndex::build(&pclntab)?;
        let noswiss_build = go_version.contains("noswissmap")
            || setting("GOEXPERIMENT").is_some_and(|e| e.contains("noswissmap"));
        let swiss_by_version = version.at_least(24)
            && !noswiss_build
            && version_source != VersionSource::PclntabFormat;
        let map_impl = if names.has_swiss_map || swiss_by_version {
            MapImpl::Swiss
        } else {
            MapImpl::Hmap
        };
        let (functions, absent) = map_functions(&elf, &pclntab, &names, text_base)?;
        let dwarf = elf.has_dwarf();
        // Parsed once, for every offset read from it.
        let dwarf_sections = layout::dwarf_of(&elf);
        let dwarf_info = dwarf_sections.as_ref().map(layout::borrow);
        let layout = dwarf_info
            .as_ref()
            .and_then(layout::from_dwarf)
            .or_else(|| {
                // A pclntab-only version is a range; use the table only if the
                // whole range agrees.
                match (version_source, pclntab.format) {
                    (VersionSource::PclntabFormat, pclntab::Format::Go120) => None,
                    _ => layout::from_version(version),
                }
            });
        let labels = match &names.set_prof_label {
            Some(f) if exact => {
                // The machine-code rule reads amd64 instructions.
                let code = pclntab
                    .func_range(f, text_base)
                    .filter(|_| elf.arch == Arch::X86_64)
                    .and_then(|(start, end)| {
                        Some((elf.read_va(start, end.checked_sub(start)?)?, start))
                    });
                labels::find(dwarf_info.as_ref(), version, code)
            }
            _ => None,
        };
        // A version range is not enough for the table.
        let map_memory = mapmem::find(dwarf_info.as_ref(), version, map_impl)
            .filter(|l| exact || l.source == layout::LayoutSource::Dwarf);
        let fatal = fatal::find(
            &elf,
            &pclntab,
            text_base,
            names.fatal.as_ref(),
            names.maps_fatal.as_ref(),
        );
        let (gnu, go) = elf.build_ids();
        Ok(GoBinary {
            path: path.to_path_buf(),
            arch: elf.arch,
            go_version,
            version,
            version_source,
            map_impl,
            pie: elf.is_pie(),
            stripped: !elf.has_symtab(),
            // Not PT_INTERP: a CGO_ENABLED=0 PIE has one too (ld.so relocates it).
            cgo: names.has_cgo_runtime,
            race: setting("-race") == Some("true") || names.has_race_runtime,
            dwarf,
            section_headers: elf.has_section_headers(),
            build_id: BuildIds { go, gnu },
            pclntab_address: pclntab.vaddr,
            moduledata,
            text_base,
            text_base_source,
            link_base: elf.link_base(),
            layout,
            labels,
            fatal,
            map_memory,
            functions,
            absent,
        })
    }

    /// The functions to attach probes to.
    pub fn attach_points(&self) -> impl Iterator<Item = &MapFunc> {
        self.functions.iter().filter(|f| f.attach)
    }
}

fn go_version(
    elf: &Elf,
    pclntab: &Pclntab,
    build_info: &Option<buildinfo::BuildInfo>,
) -> Result<(String, GoVersion, VersionSource)> {
    if let Some(info) = build_info {
        if let Some(v) = GoVersion::parse(&info.version) {
            return Ok((info.version.clone(), v, VersionSource::Buildinfo));
        }
    }
    if let Some(s) = build_version_string(elf) {
        if let Some(v) = GoVersion::parse(&s) {
            return Ok((s, v, VersionSource::BuildVersion));
        }
    }
    let lower = match pclntab.format {
        pclntab::Format::Go12 => GoVersion::new(1, 2),
        pclntab::Format::Go116 => GoVersion::new(1, 16),
        pclntab::Format::Go118 => GoVersion::new(1, 18),
        pclntab::Format::Go120 => GoVersion::new(1, 20),
    };
    Ok((
        pclntab.format.releases().to_string(),
        lower,
        VersionSource::PclntabFormat,
    ))
}

/// `runtime.buildVersion`: a Go string header in the data segments pointing
/// at `go1.X...`. By symbol when there is a symbol table, otherwise by
/// scanning the writable segments for such a header.
fn build_version_string(elf: &Elf) -> Option<String> {
    let read_header = |va: u64| -> Option<String> {
        let hdr = elf.read_va(va, 16)?;
        let (ptr, len) = (bytes::u64_at(hdr, 0)?, bytes::u64_at(hdr, 8)?);
        if !(4..=64).contains(&len) {
            return None;
        }
        let s = std::str::from_utf8(elf.read_va(ptr, len)?).ok()?;
        let is_version = (s.starts_with("go1.") || s.starts_with("devel go1."))
            && s.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        is_version.then(|| s.to_string())
    };
    if let Some(va) = elf.symbol_address("runtime.buildVersion") {
        return read_header(va);
    }
    for seg in elf.segments.iter().filter(|s| s.writable) {
        let data = elf.segment_data(seg);
        let mut off = (8 - seg.vaddr % 8) % 8;
        while off + 16 <= data.len() as u64 {
            // Cheap pre-check before resolving the pointer: plausible length.
            if matches!(bytes::u64_at(data, off + 8), Some(4..=64)) {
                if let Some(s) = read_header(seg.vaddr + off) {
                    if GoVersion::parse(&s).is_some() {
                        return Some(s);
                    }
                }
            }
            off += 8;
        }
    }
    None
}

fn text_base(
    elf: &Elf,
    pclntab: &Pclntab,
    md: Option<&ModuleData>,
) -> Result<(u64, TextBaseSource)> {
    if let Some(md) = md {
        return Ok((md.text, TextBaseSource::Moduledata));
    }
    if !pclntab.relative_entries() {
        return Ok((0, TextBaseSource::PclntabHeader));
    }
    if pclntab.text_start != 0 {
        return Ok((pclntab.text_start, TextBaseSource::PclntabHeader));
    }
    if let Some((addr, _)) = elf.section(".text") {
        return Ok((addr, TextBaseSource::TextSection));
    }
    bail!("corrupt Go binary: cannot find the start of the Go text (runtime.text)")
}

/// The catalog functions found in pclntab, plus a few telltale names.
struct FuncIndex<'a> {
    found: Vec<(&'static funcs::Spec, pclntab::Func<'a>)>,
    set_prof_label: Option<pclntab::Func<'a>>,
    fatal: Option<pclntab::Func<'a>>,
    maps_fatal: Option<pclntab::Func<'a>>,
    has_swiss_map: bool,
    has_race_runtime: bool,
    has_cgo_runtime: bool,
}

impl<'a> FuncIndex<'a> {
    fn build(pclntab: &Pclntab<'a>) -> Result<Self> {
        let mut index = FuncIndex {
            found: Vec::new(),
            set_prof_label: None,
            fatal: None,
            maps_fatal: None,
            has_swiss_map: false,
            has_race_runtime: false,
            has_cgo_runtime: false,
        };
        for func in pclntab.funcs() {
            let func = func?;
            if let Some(spec) = funcs::spec_by_name(func.name) {
                // A name can occur twice (ABI wrappers); the first is the Go body.
                if !index.found.iter().any(|(s, _)| s.name == spec.name) {
                    index.found.push((spec, func.clone()));
                }
            }
            if func.name == labels::SET_PROF_LABEL && index.set_prof_label.is_none() {
                index.set_prof_label = Some(func.clone());
            }
            if func.name == fatal::FATAL && index.fatal.is_none() {
                index.fatal = Some(func.clone());
            }
            if func.name == fatal::MAPS_FATAL && index.maps_fatal.is_none() {
                index.maps_fatal = Some(func.clone());
            }
            index.has_swiss_map |= func.name.starts_with("internal/runtime/maps.(*Map).");
            // Defined only by race_amd64.s / race_arm64.s (build tag race).
            index.has_race_runtime |= func.name == "runtime.racecallbackthunk";
            // Defined by runtime/cgo's assembly, linked into every program that
            // uses cgo (and -race, which needs it); absent otherwise, whatever
            // CGO_ENABLED said.
            index.has_cgo_runtime |= func.name == "crosscall2";
        }
        Ok(index)
    }
}

fn map_functions(
    elf: &Elf,
    pclntab: &Pclntab,
    index: &FuncIndex,
    text_base: u64,
) -> Result<(Vec<MapFunc>, Vec<&'static str>)> {
    let ranges: Vec<(&'static str, u64, u64)> = index
        .found
        .iter()
        .map(|(spec, func)| {
            let (start, end) = pclntab.func_range(func, text_base).with_context(|| {
                format!(
                    "corrupt Go binary: {} lies outside the address space",
                    spec.name
                )
            })?;
            Ok((spec.name, start, end))
        })
        .collect::<Result<_>>()?;
    let mut out = index
        .found
        .iter()
        .zip(&ranges)
        .map(|((spec, _), &(_, start, end))| map_function(elf, spec, start, end, &ranges))
        .collect::<Result<Vec<_>>>()?;
    out.sort_by_key(|f| funcs::CATALOG.iter().position(|s| s.name == f.name));
    let absent = funcs::CATALOG
        .iter()
        .map(|s| s.name)
        .filter(|n| !out.iter().any(|f| f.name == *n))
        .collect();
    Ok((out, absent))
}

/// One catalog function spanning `[start, end)` (up to the next function's
/// entry, padding included); `ranges` are all the catalog functions found.
fn map_function(
    elf: &Elf,
    spec: &funcs::Spec,
    start: u64,
    end: u64,
    ranges: &[(&'static str, u64, u64)],
) -> Result<MapFunc> {
    let code = end
        .checked_sub(start)
        .and_then(|len| elf.read_va(start, len))
        .with_context(|| {
            format!(
                "corrupt Go binary: the code of {} is outside the file",
                spec.name
            )
        })?;
    let facts = match elf.arch {
        Arch::X86_64 => disasm::analyze_x86_64(code, start)
            .with_context(|| format!("corrupt Go binary: decoding {}", spec.name))?,
        Arch::Aarch64 => bail!(
            "arm64 binaries can be read but not yet probed: mdt decodes x86-64 machine code only"
        ),
    };
    let calls: Vec<&'static str> = ranges
        .iter()
        .filter(|(_, s, e)| facts.call_targets.iter().any(|t| (s..e).contains(&t)))
        .map(|(n, _, _)| *n)
        .collect();
    let (attach, reason) = funcs::decide(spec.name, &calls);
    Ok(MapFunc {
        name: spec.name,
        role: spec.role,
        key: spec.key,
        receiver_first: spec.receiver_first,
        address: start,
        size: facts.code_len,
        file_offset: elf
            .va_to_offset(start)
            .context("corrupt Go binary: a map function is not backed by the file")?,
        probe_offset: facts.probe_offset,
        ret_offsets: facts.ret_offsets,
        exit_points: facts.exit_points,
        exit_note: facts.exit_note,
        calls,
        attach,
        reason,
    })
}
