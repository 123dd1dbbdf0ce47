//! Decoding: a BPF record → an [`Event`] of the one event model. Names the
//! probe, the map type, the key and the stack (with [`crate::symbolize`]),
//! and puts the timestamp on the wall clock.

use std::sync::Arc;

use crate::events::gofmt::Part;
use crate::events::key::Decoded;
use crate::gobin::gotype::Shape;
use crate::gobin::image::Image;
use crate::gobin::GoBinary;
use crate::probes::skel::types::mdt_event_flags;
use crate::probes::{MdtEvent, ProbeKind};
use crate::process::memory::ProcessMemory;
use crate::symbolize::types::{MapTypeInfo, TypeResolver};
use crate::symbolize::Symbolizer;

use crate::events::{find_caller, Event, KeyValue, LabelOptions, Role, Stack};

/// What the decoder knows of each attach point (index = probe id).
#[derive(Debug, Clone)]
pub struct ProbeInfo {
    pub func: &'static str,
    /// A delete or a clear.
    pub role: Role,
    pub kind: ProbeKind,
    /// Link-time address of the probed instruction.
    pub probe_va: u64,
}

/// Exact deletes and clears from the hit counts of `probes` (by probe id).
pub fn totals(probes: &[ProbeInfo], hits: &[u64]) -> (u64, u64) {
    probes
        .iter()
        .zip(hits)
        .fold((0, 0), |(d, c), (p, &h)| match p.role {
            Role::Delete => (d + h, c),
            Role::Clear => (d, c + h),
        })
}

/// Names in the address space of one process: made on the first event,
/// whose probed pc gives the load bias (exact, and still known after the
/// target has exited).
struct Namer {
    symbolizer: Symbolizer,
    types: TypeResolver,
}

pub struct Decoder {
    probes: Vec<ProbeInfo>,
    binary: GoBinary,
    image: Arc<Image>,
    pid: i32,
    namer: Option<Namer>,
    /// Wall clock minus the monotonic clock that BPF timestamps use.
    clock_offset_ns: i128,
    options: DecodeOptions,
}

/// How records are named.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Key bytes the probes were asked to copy.
    pub key_bytes: usize,
    /// A stable hash instead of key values (`--redact-keys`).
    pub redact_keys: bool,
    /// Distinct stacks kept symbolized.
    pub max_stacks: usize,
    /// Which goroutine labels are kept, and how they are shown.
    pub labels: LabelOptions,
}

impl Decoder {
    pub fn new(
        probes: Vec<ProbeInfo>,
        binary: GoBinary,
        image: Arc<Image>,
        pid: i32,
        options: DecodeOptions,
    ) -> Self {
        Decoder {
            probes,
            binary,
            image,
            pid,
            namer: None,
            clock_offset_ns: clock_offset_ns(),
            options,
        }
    }

    /// `first_pc`: the probed pc of some event (stack[0]) of probe `probe_va`.
    fn namer(&mut self, first_pc: Option<u64>, probe_va: u64) -> &mut Namer {
        self.namer.get_or_insert_with(|| {
            let bias = first_pc.map_or(0, |pc| pc.wrapping_sub(probe_va));
            let mem = ProcessMemory::open(self.pid).ok();
            Namer {
                symbolizer: Symbolizer::new(
                    &self.binary,
                    self.image.clone(),
                    bias,
                    self.pid as u32,
                    self.options.max_stacks,
                ),
                types: TypeResolver::new(self.image.clone(), mem, &self.binary, bias),
            }
        })
    }

    pub fn decode(&mut self, raw: &MdtEvent) -> Option<Event> {
        let probe = self.probes.get(raw.probe_id as usize)?.clone();
        let kind = probe.role;
        let (key_bytes, redact) = (self.options.key_bytes, self.options.redact_keys);
        let offset = self.clock_offset_ns;
        let namer = self.namer(raw.stack().first().copied(), probe.probe_va);
        let ty = namer.types.map_type(raw.map_type_ptr);
        let key = match kind {
            Role::Clear => Decoded::plain(KeyValue::None),
            Role::Delete if raw.key_fault() => {
                match reread_key(&namer.types, raw, probe.kind, key_bytes) {
                    // Nothing behind the key's pointers was copied.
                    Some(bytes) => decode_key(&mut namer.types, &ty, raw, probe.kind, &bytes, &[]),
                    None => Decoded::plain(KeyValue::None),
                }
            }
            Role::Delete => {
                let parts = raw.key_parts(key_bytes);
                decode_key(
                    &mut namer.types,
                    &ty,
                    raw,
                    probe.kind,
                    raw.key_bytes(key_bytes),
                    &parts,
                )
            }
        };
        let (key_value, key_hex) = if redact {
            (key.value.redacted(), None)
        } else {
            (key.value, key.raw)
        };
        let stack = namer.symbolizer.stack(raw.stack());
        Some(Event {
            kind,
            ts_ns: (i128::from(raw.ts_ns) + offset).max(0) as u64,
            tick: raw.tick,
            pid: raw.pid,
            tid: raw.tid,
            goid: (!raw.has_flag(mdt_event_flags::MDT_EV_GOID_FAULT)).then_some(raw.goid),
            func: probe.func,
            map: raw.map_ptr,
            map_type_ptr: raw.map_type_ptr,
            map_type: ty.name,
            key_type: ty.key_type,
            key_truncated: raw.key_truncated() || key.incomplete,
            key: key_value,
            key_hex,
            map_len: raw.map_len,
            map_cap: None,
            cleared: (kind == Role::Clear).then_some(raw.map_len),
            caller: find_caller(&stack),
            stack_id: if raw.stack().is_empty() {
                0
            } else {
                raw.stack_id
            },
            stack,
            stack_lost: raw.stack_lost(),
            stack_truncated: raw.stack_truncated() && !raw.stack_lost(),
            labels: self.options.labels.labels_of(&raw.labels()),
            outcome: None,
        })
    }
}

impl Decoder {
    /// Names a stack that is not a delete's (crash forensics): `anchor` is
    /// a run-time pc of it and that pc's link-time address (runtime.fatal's
    /// entry), which give the load bias if no record has yet.
    pub fn name_stack(&mut self, stack: &[u64], anchor: (u64, u64)) -> Stack {
        self.namer(Some(anchor.0), anchor.1).symbolizer.stack(stack)
    }

    /// Labels as the options keep them (as for a record).
    pub fn labels(
        &self,
        raw: &crate::probes::record::RawLabels<'_>,
    ) -> Option<Arc<crate::events::Labels>> {
        self.options.labels.labels_of(raw)
    }

    /// A BPF timestamp (the monotonic clock) as wall-clock nanoseconds.
    pub fn wall_ns(&self, monotonic_ns: u64) -> u64 {
        (i128::from(monotonic_ns) + self.clock_offset_ns).max(0) as u64
    }

    /// The name of a map type, once the decoder knows the load bias (it
    /// has named a record or a site); `None` before.
    pub fn map_type_name(&mut self, map_type_ptr: u64) -> Option<Arc<str>> {
        let namer = self.namer.as_mut()?;
        Some(namer.types.map_type(map_type_ptr).name)
    }

    /// Names a stack counted in the kernel (aggregation mode): the frames
    /// and the map type, as [`Decoder::decode`] would for an event.
    pub fn name_aggregate(
        &mut self,
        probe_id: u32,
        stack: &[u64],
        map_type_ptr: u64,
    ) -> Option<(ProbeInfo, Stack, crate::symbolize::types::MapTypeInfo)> {
        let probe = self.probes.get(probe_id as usize)?.clone();
        let namer = self.namer(stack.first().copied(), probe.probe_va);
        let ty = namer.types.map_type(map_type_ptr);
        let frames = namer.symbolizer.stack(stack);
        Some((probe, frames, ty))
    }
}

/// A delete's key from its captured bytes (and the parts the probe copied
/// from behind its pointers): by its type's tree when it could be read,
/// else by its kind and size (integers, strings, pointers) or as hex.
fn decode_key(
    types: &mut TypeResolver,
    ty: &MapTypeInfo,
    raw: &MdtEvent,
    kind: ProbeKind,
    bytes: &[u8],
    parts: &[Part<'_>],
) -> Decoded {
    let is_string = raw.key_is_string() || kind == ProbeKind::FastStr;
    if let Some(tree) = &ty.key {
        // A key passed as a string whose type is not one (struct { S string }).
        let string_bytes = (is_string && !matches!(tree.shape, Shape::String))
            .then(|| (raw.key_u64, u64::from(raw.key_len)));
        if let Some(d) = KeyValue::decode_typed(tree, bytes, parts, string_bytes, types) {
            return d;
        }
    }
    Decoded::plain(KeyValue::decode(ty.key_kind, ty.key_size, bytes, is_string))
}

/// The key of a delete whose key bytes the probe could not copy (their page
/// was not resident: a uprobe cannot fault it in), read again from user
/// space. Only when the probe knew where the bytes are and how many
/// (`key_u64` is the key's address and `key_len` its size: the fast string
/// path, and keys passed by pointer that are not strings); when reading the
/// key's type failed instead, the key may sit in a stack slot that has been
/// reused since, and the key stays unknown rather than guessed.
fn reread_key(
    types: &TypeResolver,
    raw: &MdtEvent,
    kind: ProbeKind,
    key_bytes: usize,
) -> Option<Vec<u8>> {
    let by_address = match kind {
        ProbeKind::FastStr => true,
        ProbeKind::KeyPtr | ProbeKind::SwissDelete => !raw.key_is_string(),
        _ => false,
    };
    if !by_address || raw.key_len == 0 || raw.key_u64 == 0 {
        return None;
    }
    let n = (raw.key_len as usize)
        .min(crate::probes::MAX_KEY_BYTES)
        .min(key_bytes);
    types.read_data(raw.key_u64, n)
}

/// Wall clock minus CLOCK_MONOTONIC (what `bpf_ktime_get_ns` returns).
fn clock_offset_ns() -> i128 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; clock_gettime only
        // writes into it and the clock ids are constants the kernel knows.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
    };
    let mono = read(libc::CLOCK_MONOTONIC);
    let real = read(libc::CLOCK_REALTIME);
    real - mono
}
