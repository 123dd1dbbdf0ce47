//! The program's configuration, written to its read-only data before load
//! (the verifier then sees constants and prunes what is not used).

use anyhow::{bail, Context, Result};

use super::skel::types;
use super::{
    MdtConfig, DEFAULT_KEY_TYPE_OFFSET, MAX_KEY_BYTES, MAX_LABEL_BYTES, MAX_LABEL_KEYS, MAX_PROBES,
    MAX_STACK_DEPTH, SAMPLE_ALL,
};
use crate::gobin::funcs::KeyArg;
use crate::gobin::labels::LabelStore;

/// Bytes of `runtime.g` the probe reads in one go (`MDT_G_HEAD_BYTES`).
const G_HEAD_BYTES: usize = types::mdt_limits::MDT_G_HEAD_BYTES.0 as usize;

/// Crash forensics: the kernel's buckets of counts by time where its tick
/// rate is known: `(bucket ns, shift)`, a bucket being 2^shift jiffies, the
/// fewest that last 4 ms (so that 256 buckets cover over a second).
pub fn tick_buckets(hz: u32) -> (u64, u32) {
    let tick_ns = 1_000_000_000 / u64::from(hz.max(1));
    let mut shift = 0;
    while (tick_ns << shift) < 4_000_000 && shift < 7 {
        shift += 1;
    }
    (tick_ns << shift, shift)
}

/// How the Go register arguments are laid out at an attach point
/// (`enum mdt_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `runtime.mapdelete`, `reflect.mapdelete`: type, map, pointer to key.
    KeyPtr,
    /// `runtime.mapdelete_fast32`: the key in the low 32 bits of arg2.
    Fast32,
    /// `runtime.mapdelete_fast64`: the key in arg2.
    Fast64,
    /// `runtime.mapdelete_faststr`: key data pointer and length.
    FastStr,
    /// `runtime.mapclear`, `reflect.mapclear`: type, map.
    Clear,
    /// `internal/runtime/maps.(*Map).Delete` (1.24+): map, type, pointer to key.
    SwissDelete,
    /// `internal/runtime/maps.(*Map).Clear` (1.24+): map, type.
    SwissClear,
}

impl ProbeKind {
    const ALL: [Self; 7] = [
        Self::KeyPtr,
        Self::Fast32,
        Self::Fast64,
        Self::FastStr,
        Self::Clear,
        Self::SwissDelete,
        Self::SwissClear,
    ];

    /// The `enum mdt_kind` value (from the BPF object's BTF).
    pub fn raw(self) -> types::mdt_kind {
        match self {
            Self::KeyPtr => types::mdt_kind::MDT_KIND_KEY_PTR,
            Self::Fast32 => types::mdt_kind::MDT_KIND_FAST32,
            Self::Fast64 => types::mdt_kind::MDT_KIND_FAST64,
            Self::FastStr => types::mdt_kind::MDT_KIND_FASTSTR,
            Self::Clear => types::mdt_kind::MDT_KIND_CLEAR,
            Self::SwissDelete => types::mdt_kind::MDT_KIND_SWISS_DELETE,
            Self::SwissClear => types::mdt_kind::MDT_KIND_SWISS_CLEAR,
        }
    }

    /// Decodes `mdt_event.kind`; `None` for `MDT_KIND_UNSET` or unknown values.
    pub fn from_raw(kind: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.raw().0 == u32::from(kind))
    }

    /// The argument layout of a catalog function (`gobin::funcs`).
    pub fn of(key: KeyArg, receiver_first: bool) -> Self {
        match (key, receiver_first) {
            (KeyArg::Pointer, false) => Self::KeyPtr,
            (KeyArg::Pointer, true) => Self::SwissDelete,
            (KeyArg::Value32, _) => Self::Fast32,
            (KeyArg::Value64, _) => Self::Fast64,
            (KeyArg::String, _) => Self::FastStr,
            (KeyArg::None, false) => Self::Clear,
            (KeyArg::None, true) => Self::SwissClear,
        }
    }
}

/// Load-time configuration of the BPF program.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Only hits from this tgid (initial pid namespace) count; 0 = any.
    pub target_tgid: u32,
    /// Offset of `goid` in `runtime.g` (152 or 160); 0 = don't read it.
    pub goid_offset: u32,
    /// Offset of the key `*abi.Type` in the map type; 0 = don't copy keys
    /// passed by pointer. Default [`DEFAULT_KEY_TYPE_OFFSET`].
    pub key_type_offset: u32,
    /// Frames of user stack per event, `0..=MAX_STACK_DEPTH`.
    pub max_stack_depth: u32,
    /// Fraction of hits that produce an event, `0.0..=1.0` (hits are always
    /// counted exactly).
    pub sample_rate: f64,
    /// Ring buffer size: a power of two, at least the page size.
    pub ringbuf_bytes: u32,
    /// Key bytes copied per event, `0..=MAX_KEY_BYTES`.
    pub key_bytes: u32,
    /// Attach with one uprobe.multi link (Linux 6.6+) instead of one
    /// uprobe per attach point.
    pub multi: bool,
    /// Offset of the element count in the map header.
    pub map_count_offset: u32,
    /// Count hits per (stack, map type, probe) in the kernel instead of
    /// sending records (mdt flame).
    pub aggregate: bool,
    /// With `aggregate`: also per goroutine.
    pub aggregate_goid: bool,
    /// With `aggregate`: distinct stacks the kernel keeps (and 4 counts
    /// per stack); hits of further stacks are counted as not recorded.
    pub max_stacks: u32,
    /// Count every hit per (map type, caller, probe) in the kernel, before
    /// sampling ([`Probes::site_counts`]): exact counts for metrics and
    /// alerts, at the cost of one 8-byte user read and a hash update per hit.
    pub count_sites: bool,
    /// Site counting: link-time `[start, end)` of the functions that delete
    /// on behalf of their caller (reflect's), stepped over to find the
    /// caller; at most [`MAX_MACHINERY`].
    pub machinery: Vec<(u64, u64)>,
    /// Site counting: link-time address of each probe (index = probe id).
    pub probe_vas: Vec<u64>,
    /// Kind of each entry attach point; the index is the attach cookie /
    /// probe id.
    pub probes: Vec<ProbeKind>,
    /// Latency: the exit attach points, each by the probe id of its
    /// function's entry; their probe ids follow the entries'
    /// (`probes.len() + index`). Empty: no latency.
    pub exits: Vec<u32>,
    /// Aggregation mode with exits: sum each stack's time spent deleting
    /// (`mdt flame --weight latency`).
    pub weight_latency: bool,
    /// Follow the strings and interfaces inside keys: needs struct field
    /// offsets as Go 1.19 and later store them.
    pub key_plans: bool,
    /// Goroutine labels: where they are in `runtime.g` and how they are
    /// stored; None: not read.
    pub labels: Option<(u32, LabelStore)>,
    /// Bytes kept of each label value, `1..=MAX_LABEL_BYTES` (keys: up to
    /// `MAX_LABEL_BYTES`).
    pub label_bytes: u32,
    /// Only labels with these keys are copied (at most [`MAX_LABEL_KEYS`]);
    /// empty: all. The probe tells them by length and first 8 bytes.
    pub label_keys: Vec<String>,
    /// Drop hits from other processes in the program too: only needed
    /// where the kernel does not filter the links by process itself (see
    /// `mdt_config.check_tgid`); costs a helper call per hit.
    pub check_tgid: bool,
    /// Crash forensics: the window before a fatal error whose deletes the
    /// kernel counts (`--fatal-window`, < 1.07 s); None: deletes are not
    /// counted by time.
    pub fatal_window_ns: Option<u64>,
    /// The kernel's tick rate: counts by time in ticks (a variable) rather
    /// than by the clock (a clock read per hit). None: unknown.
    pub kernel_hz: Option<u32>,
    /// Crash forensics: stop only a dying process of this real uid (the
    /// one mdt may signal); None: any (mdt has CAP_KILL).
    pub hold_uid: Option<u32>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            target_tgid: 0,
            goid_offset: 0,
            key_type_offset: DEFAULT_KEY_TYPE_OFFSET,
            max_stack_depth: MAX_STACK_DEPTH as u32,
            sample_rate: 1.0,
            ringbuf_bytes: crate::bounded::Limits::default().buffer_bytes,
            key_bytes: 64,
            multi: false,
            map_count_offset: 0,
            aggregate: false,
            aggregate_goid: false,
            max_stacks: 1 << 14,
            count_sites: false,
            machinery: Vec::new(),
            probes: Vec::new(),
            exits: Vec::new(),
            weight_latency: false,
            key_plans: true,
            probe_vas: Vec::new(),
            labels: None,
            label_bytes: 64,
            label_keys: Vec::new(),
            check_tgid: true,
            fatal_window_ns: None,
            kernel_hz: None,
            hold_uid: None,
        }
    }
}

impl ProbeConfig {
    /// The length of the kernel's buckets of counts by time.
    pub fn time_bucket_ns(&self) -> u64 {
        match self.kernel_hz {
            Some(hz) => tick_buckets(hz).0,
            None => 1 << types::mdt_limits::MDT_WINDOW_SHIFT.0,
        }
    }

    /// The longest window those buckets cover whole: all of them but the
    /// one being filled and the one it may reach back into, rounded down
    /// to a millisecond (over a second: see [`tick_buckets`]).
    pub fn max_fatal_window_ns(&self) -> u64 {
        let span = self.time_bucket_ns() * (types::mdt_limits::MDT_WINDOW_BUCKETS.0 as u64 - 2);
        span / 1_000_000 * 1_000_000
    }

    /// The `struct mdt_config` written to the program's `.rodata`.
    pub fn to_raw(&self) -> Result<MdtConfig> {
        if self.attach_points() > MAX_PROBES {
            bail!(
                "{} attach points requested, the BPF program supports at most {MAX_PROBES}",
                self.attach_points()
            );
        }
        if let Some(bad) = self
            .exits
            .iter()
            .find(|&&e| e as usize >= self.probes.len())
        {
            bail!("an exit point names entry probe {bad}, which does not exist");
        }
        if !(0.0..=1.0).contains(&self.sample_rate) {
            bail!("sample rate {} is not between 0 and 1", self.sample_rate);
        }
        let mut raw = MdtConfig {
            target_tgid: self.target_tgid,
            goid_offset: self.goid_offset,
            key_type_offset: self.key_type_offset,
            max_stack_depth: self.max_stack_depth.min(MAX_STACK_DEPTH as u32),
            sample_threshold: sample_threshold(self.sample_rate),
            key_bytes: self.key_bytes.min(MAX_KEY_BYTES as u32),
            map_count_offset: self.map_count_offset,
            wakeup_bytes: wakeup_bytes(self.ringbuf_bytes),
            aggregate: u32::from(self.aggregate),
            aggregate_goid: u32::from(self.aggregate_goid),
            count_sites: u32::from(self.count_sites),
            probe_by_pc: u32::from(self.probe_by_pc().is_some()),
            check_tgid: u32::from(self.check_tgid && self.target_tgid != 0),
            key_plans: u32::from(self.key_plans),
            exits: u32::from(!self.exits.is_empty()),
            weight_latency: u32::from(self.weight_latency && !self.exits.is_empty()),
            labels_offset: self.labels.map_or(0, |(offset, _)| offset),
            label_store: match self.labels {
                None => types::mdt_label_store::MDT_LABELS_NONE.0,
                Some((_, LabelStore::Map)) => types::mdt_label_store::MDT_LABELS_MAP.0,
                Some((_, LabelStore::Slice)) => types::mdt_label_store::MDT_LABELS_SLICE.0,
            },
            label_bytes: self.label_bytes.min(MAX_LABEL_BYTES as u32),
            label_keys: self.label_keys.len() as u32,
            windows: u32::from(self.fatal_window_ns.is_some()),
            nr_cpus: libbpf_rs::num_possible_cpus().unwrap_or(1).max(1) as u32,
            fatal_window_ns: self.fatal_window_ns.unwrap_or(0),
            // MDT_HOLD_ANY_UID in bpf/mdt.h: all ones.
            hold_uid: self.hold_uid.unwrap_or(u32::MAX),
            ..MdtConfig::default()
        };
        if let Some(hz) = self.kernel_hz {
            (raw.tick_ns, raw.tick_shift) = tick_buckets(hz);
        }
        if raw.fatal_window_ns > self.max_fatal_window_ns() {
            bail!(
                "the window before a fatal error is at most {} ms",
                self.max_fatal_window_ns() / 1_000_000
            );
        }
        if self.label_keys.len() > MAX_LABEL_KEYS {
            bail!(
                "--labels: at most {MAX_LABEL_KEYS} keys, {} given",
                self.label_keys.len()
            );
        }
        for (i, key) in self.label_keys.iter().enumerate() {
            let (len, head) = label_key_filter(key.as_bytes());
            raw.label_key_len[i] = len;
            raw.label_key_head[i] = head;
        }
        if raw.labels_offset as usize + 8 > G_HEAD_BYTES {
            bail!(
                "runtime.g.labels at offset {} is past what the probe reads of g ({G_HEAD_BYTES} bytes)",
                raw.labels_offset
            );
        }
        for (slot, kind) in raw.probes.iter_mut().zip(&self.probes) {
            slot.kind = u8::try_from(kind.raw().0).context("mdt_kind value does not fit u8")?;
        }
        let exit_kind = u8::try_from(types::mdt_kind::MDT_KIND_EXIT.0)
            .context("mdt_kind value does not fit u8")?;
        for (slot, &entry) in raw.probes[self.probes.len()..].iter_mut().zip(&self.exits) {
            slot.kind = exit_kind;
            slot.entry = u8::try_from(entry).context("entry probe id does not fit u8")?;
        }
        for &entry in &self.exits {
            raw.probes[entry as usize].has_exits = 1;
        }
        Ok(raw)
    }

    /// Entry and exit attach points: the probe ids in use.
    pub fn attach_points(&self) -> usize {
        self.probes.len() + self.exits.len()
    }
}

impl ProbeConfig {
    /// `mdt_probe_by_pc`: the entry probe id by the low 12 bits of the
    /// probed address (0xff: none), which a load bias (whole pages) leaves
    /// alone. `None` if two entry points share those bits, or an address is
    /// missing: then the program asks for the attach cookie instead. (The
    /// exit points always use the cookie: they are off the hot path.)
    pub fn probe_by_pc(&self) -> Option<Box<[u8; 4096]>> {
        if self.probe_vas.len() != self.probes.len() || self.probes.len() >= usize::from(u8::MAX) {
            return None;
        }
        let mut table = Box::new([u8::MAX; 4096]);
        for (id, va) in self.probe_vas.iter().enumerate() {
            let slot = &mut table[(va & 4095) as usize];
            if *slot != u8::MAX {
                return None;
            }
            *slot = id as u8;
        }
        Some(table)
    }
}

/// A `--labels` key as the probe compares it: its length and its first 8
/// bytes, zero-padded.
fn label_key_filter(key: &[u8]) -> (u16, u64) {
    let mut head = [0u8; 8];
    let n = key.len().min(8);
    head[..n].copy_from_slice(&key[..n]);
    (
        u16::try_from(key.len()).unwrap_or(u16::MAX),
        u64::from_le_bytes(head),
    )
}

/// `mdt_config.wakeup_bytes`: each CPU wakes the reader once per this many
/// bytes it writes, so with every CPU writing the reader is woken about
/// once per 1/16 of the ring (it also drains on its own short timer). A
/// power of two.
fn wakeup_bytes(ring_bytes: u32) -> u64 {
    let cpus = libbpf_rs::num_possible_cpus().unwrap_or(1).max(1) as u64;
    let share = u64::from(ring_bytes) / 16 / cpus;
    if share == 0 {
        1
    } else {
        1 << share.ilog2()
    }
}

/// `mdt_config.sample_threshold` for a sampling rate in `0.0..=1.0`.
pub fn sample_threshold(rate: f64) -> u64 {
    if rate.is_nan() || rate <= 0.0 {
        0
    } else if rate >= 1.0 {
        SAMPLE_ALL
    } else {
        // In (0, 2^32): the cast cannot overflow.
        ((rate * SAMPLE_ALL as f64).round() as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_ids_by_pc_need_distinct_low_bits() {
        let cfg = ProbeConfig {
            probes: vec![ProbeKind::FastStr, ProbeKind::Fast64],
            probe_vas: vec![0x40_1234, 0x40_5678],
            ..ProbeConfig::default()
        };
        let table = cfg.probe_by_pc().unwrap();
        assert_eq!(table[0x234], 0);
        assert_eq!(table[0x678], 1);
        assert_eq!(table.iter().filter(|&&b| b != u8::MAX).count(), 2);
        assert_eq!(cfg.to_raw().unwrap().probe_by_pc, 1);

        // Same page offset in two functions: fall back to the cookie.
        let clash = ProbeConfig {
            probe_vas: vec![0x40_1234, 0x41_1234],
            ..cfg.clone()
        };
        assert!(clash.probe_by_pc().is_none());
        assert_eq!(clash.to_raw().unwrap().probe_by_pc, 0);
        // Addresses not given for every probe.
        let missing = ProbeConfig {
            probe_vas: vec![0x40_1234],
            ..cfg
        };
        assert!(missing.probe_by_pc().is_none());
    }

    #[test]
    fn label_keys_are_compared_by_length_and_first_bytes() {
        assert_eq!(label_key_filter(b"ab"), (2, 0x6261));
        assert_eq!(
            label_key_filter(b"endpoint-long"),
            (13, u64::from_le_bytes(*b"endpoint"))
        );
        let cfg = ProbeConfig {
            label_keys: (0..9).map(|i| format!("k{i}")).collect(),
            ..ProbeConfig::default()
        };
        assert!(cfg.to_raw().is_err(), "at most MAX_LABEL_KEYS keys");
    }
}
