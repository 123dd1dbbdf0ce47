//! Loading the BPF program and arming it: one uprobe.multi link for every
//! attach point where the kernel has it, one uprobe each otherwise.

use std::mem::MaybeUninit;
use std::path::Path;

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, OpenObject, UprobeOpts};

use super::skel::types;
use super::skel::{MdtSkel, MdtSkelBuilder};
use super::{ProbeConfig, LATENCY_BOUNDS_NS, SAMPLE_ALL};

/// The loaded BPF program, its maps and its uprobe links.
pub struct Probes {
    // Dropped first: detach before the object is closed.
    links: Vec<AttachedProbe>,
    /// Latency: the links of the exit points, while they are armed.
    exit_links: Vec<AttachedProbe>,
    /// Latency: where the exit points go (file offsets; probe ids from
    /// `n_probes` on), in the binary and process the entries were attached to.
    exits: Option<ExitTargets>,
    pub(super) skel: MdtSkel<'static>,
    pub(super) n_probes: usize,
    /// uprobe.multi links (Linux 6.6+), not a uprobe per attach point.
    pub(super) multi: bool,
    /// Attach points armed (not links: one uprobe.multi link arms many).
    armed: usize,
    /// Crash forensics: the probe on runtime.fatal.
    pub(super) fatal_link: Option<Link>,
    /// The process the fatal probe may stop: resumed when the probes go,
    /// whatever way mdt leaves (an error, a panic), if it was stopped.
    pub(super) fatal_pid: Option<i32>,
    /// Crash forensics was asked for and the program has it.
    pub(super) forensics: bool,
    /// The program samples (rate < 1): it counts the hits it keeps.
    pub(super) samples: bool,
}

/// One uprobe attachment.
struct AttachedProbe {
    _link: Link,
}

/// Where the exit points are attached when armed.
struct ExitTargets {
    path: std::path::PathBuf,
    offsets: Vec<u64>,
    pid: u32,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes")
            .field("attached", &self.links.len())
            .field("n_probes", &self.n_probes)
            .finish_non_exhaustive()
    }
}

impl Probes {
    /// Opens the embedded BPF object, writes `cfg` to its read-only data,
    /// sizes the ring buffer, and loads it into the kernel (verifier).
    ///
    /// Does not touch RLIMIT_MEMLOCK: kernels >= 5.11 account BPF memory to
    /// the memory cgroup (libbpf detects this and skips its own bump).
    pub fn load(cfg: &ProbeConfig) -> Result<Self> {
        let raw = cfg.to_raw()?;
        let samples = raw.sample_threshold < SAMPLE_ALL;
        let rb = cfg.ringbuf_bytes;
        if !rb.is_power_of_two() || rb < 4096 {
            bail!("ring buffer size {rb} must be a power of two and at least 4096 bytes");
        }

        // The skeleton borrows its OpenObject slot for its whole life. The
        // slot is a single pointer; leaking it (8 bytes per load) gives a
        // 'static skeleton without self-references. The bpf_object itself is
        // still closed when the skeleton is dropped.
        let slot: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = MdtSkelBuilder::default()
            .open(slot)
            .map_err(|e| bpf_error(e, "opening the BPF object"))?;

        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .context("BPF object has no .rodata (mdt_cfg)")?;
        rodata.mdt_cfg = raw;
        for (slot, &(start, end)) in rodata.mdt_machinery.iter_mut().zip(&cfg.machinery) {
            *slot = types::mdt_range { start, end };
        }
        for (slot, &va) in rodata.mdt_probe_va.iter_mut().zip(&cfg.probe_vas) {
            *slot = va;
        }
        if let Some(table) = cfg.probe_by_pc() {
            rodata.mdt_probe_by_pc = *table;
        }
        rodata.mdt_latency_bounds = LATENCY_BOUNDS_NS;
        open.maps
            .events
            .set_max_entries(rb)
            .map_err(|e| bpf_error(e, "sizing the ring buffer"))?;
        if cfg.aggregate {
            let stacks = cfg.max_stacks.max(1);
            open.maps
                .stacks
                .set_max_entries(stacks)
                .map_err(|e| bpf_error(e, "sizing the stack table"))?;
            // A stack is counted per map type and probe (and goroutine):
            // room for a few of those per stack.
            open.maps
                .stack_counts
                .set_max_entries(stacks.saturating_mul(4))
                .map_err(|e| bpf_error(e, "sizing the stack counts"))?;
        } else {
            // Unused: don't reserve their memory.
            for map in [&mut open.maps.stacks, &mut open.maps.stack_counts] {
                map.set_max_entries(1)
                    .map_err(|e| bpf_error(e, "sizing the stack tables"))?;
            }
        }
        if cfg.exits.is_empty() {
            for map in [&mut open.maps.pending, &mut open.maps.latency] {
                map.set_max_entries(1)
                    .map_err(|e| bpf_error(e, "sizing the latency maps"))?;
            }
        }
        if !(cfg.aggregate && cfg.weight_latency && !cfg.exits.is_empty()) {
            open.maps
                .stack_ns
                .set_max_entries(1)
                .map_err(|e| bpf_error(e, "sizing the stack durations"))?;
        } else {
            open.maps
                .stack_ns
                .set_max_entries(cfg.max_stacks.max(1).saturating_mul(4))
                .map_err(|e| bpf_error(e, "sizing the stack durations"))?;
        }
        if !cfg.count_sites {
            // Unused: don't reserve its memory.
            open.maps
                .site_counts
                .set_max_entries(1)
                .map_err(|e| bpf_error(e, "sizing the site counts"))?;
        }

        open.progs.mdt_map_delete.set_autoload(!cfg.multi);
        open.progs.mdt_map_delete_multi.set_autoload(cfg.multi);
        let exits = !cfg.exits.is_empty();
        open.progs.mdt_map_return.set_autoload(exits && !cfg.multi);
        open.progs
            .mdt_map_return_multi
            .set_autoload(exits && cfg.multi);
        let forensics = cfg.fatal_window_ns.is_some();
        open.progs.mdt_fatal.set_autoload(forensics && !cfg.multi);
        open.progs
            .mdt_fatal_multi
            .set_autoload(forensics && cfg.multi);
        open.progs.mdt_threads.set_autoload(forensics);
        if !forensics {
            open.maps
                .fatals
                .set_max_entries(4096)
                .map_err(|e| bpf_error(e, "sizing the fatal-error ring"))?;
        }
        let skel = open.load().map_err(|e| {
            bpf_error(
                e,
                "loading the BPF program (see the libbpf/verifier log above)",
            )
        })?;
        Ok(Self {
            links: Vec::new(),
            exit_links: Vec::new(),
            exits: None,
            skel,
            n_probes: cfg.probes.len(),
            multi: cfg.multi,
            armed: 0,
            fatal_link: None,
            fatal_pid: None,
            forensics,
            samples,
        })
    }

    /// Loads the probes and arms them: with one uprobe.multi link where the
    /// kernel has it (one syscall, one grace period to detach), else one
    /// uprobe per attach point.
    ///
    /// `exit_offsets` (one per [`ProbeConfig::exits`]) are where the exit
    /// points go when [`Probes::arm_exits`] arms them.
    pub fn arm(
        config: ProbeConfig,
        path: &Path,
        offsets: &[u64],
        exit_offsets: &[u64],
        pid: u32,
    ) -> Result<Probes> {
        if exit_offsets.len() != config.exits.len() {
            bail!(
                "{} exit offsets for {} exit points",
                exit_offsets.len(),
                config.exits.len()
            );
        }
        let mut probes = Self::arm_entries(config, path, offsets, pid)?;
        if !exit_offsets.is_empty() {
            probes.exits = Some(ExitTargets {
                path: path.to_path_buf(),
                offsets: exit_offsets.to_vec(),
                pid,
            });
        }
        Ok(probes)
    }

    fn arm_entries(config: ProbeConfig, path: &Path, offsets: &[u64], pid: u32) -> Result<Probes> {
        // uprobe.multi links filter by process from Linux 6.12 on (before, a
        // fork of the target could hit them); plain uprobes always have.
        let multi = ProbeConfig {
            multi: true,
            check_tgid: !crate::process::kernel_at_least(6, 12),
            ..config.clone()
        };
        let config = ProbeConfig {
            check_tgid: false,
            ..config
        };
        let armed =
            Self::load(&multi).and_then(|mut p| p.attach_all(path, offsets, Some(pid)).map(|()| p));
        if let Ok(probes) = armed {
            return Ok(probes);
        }
        let mut probes = Self::load(&config)?;
        probes.attach_all(path, offsets, Some(pid))?;
        Ok(probes)
    }

    /// Attaches a probe at each file offset of `binary`; probe id = index.
    /// With `ProbeConfig::multi`, one uprobe.multi link arms them all.
    fn attach_all(&mut self, binary: &Path, file_offsets: &[u64], pid: Option<u32>) -> Result<()> {
        if !self.multi {
            for (id, &off) in file_offsets.iter().enumerate() {
                self.attach_uprobe(binary, off, id as u32, pid)?;
            }
            return Ok(());
        }
        let link = self.attach_multi(false, binary, file_offsets, 0, pid)?;
        self.links.push(link);
        self.armed += file_offsets.len();
        Ok(())
    }

    /// One uprobe.multi link of the entry (or the exit) program at
    /// `file_offsets`, with cookies (probe ids) from `first_id` on.
    fn attach_multi(
        &self,
        exits: bool,
        binary: &Path,
        file_offsets: &[u64],
        first_id: u64,
        pid: Option<u32>,
    ) -> Result<AttachedProbe> {
        let pid = pid
            .map_or(Ok(-1), i32::try_from)
            .context("pid out of range")?;
        let opts = libbpf_rs::UprobeMultiOpts {
            offsets: file_offsets
                .iter()
                .map(|&o| usize::try_from(o))
                .collect::<std::result::Result<_, _>>()
                .context("file offset out of range")?,
            cookies: (first_id..first_id + file_offsets.len() as u64).collect(),
            ..libbpf_rs::UprobeMultiOpts::default()
        };
        let prog = if exits {
            &self.skel.progs.mdt_map_return_multi
        } else {
            &self.skel.progs.mdt_map_delete_multi
        };
        let link = prog
            .attach_uprobe_multi_with_opts(pid, binary, "", opts)
            .map_err(|e| bpf_error(e, &format!("attaching uprobes to {}", binary.display())))?;
        Ok(AttachedProbe { _link: link })
    }

    /// Latency: attaches the exit points (if not yet), then tells the
    /// entries to leave pending entries for them: in that order, so that
    /// every pending entry has an exit to meet.
    pub fn arm_exits(&mut self) -> Result<()> {
        let Some(t) = &self.exits else {
            return Ok(());
        };
        if self.exit_links.is_empty() {
            let first = self.n_probes as u64;
            let links = if self.multi {
                vec![self.attach_multi(true, &t.path, &t.offsets, first, Some(t.pid))?]
            } else {
                let mut links = Vec::new();
                for (i, &off) in t.offsets.iter().enumerate() {
                    links.push(self.attach_exit_uprobe(&t.path, off, first + i as u64, t.pid)?);
                }
                links
            };
            self.exit_links = links;
        }
        if let Some(bss) = self.skel.maps.bss_data.as_deref_mut() {
            // A new arming: entries left by earlier ones are stale.
            bss.mdt_exits_gen = bss.mdt_exits_gen.wrapping_add(1);
            bss.mdt_exits_in_flight = 0;
        }
        self.set_exits_flag(true);
        Ok(())
    }

    /// Latency: calls of the current arming between their entry and their
    /// exit (a call that never returns stays counted until its entry is
    /// evicted: bound the wait for this to reach 0).
    pub fn exits_in_flight(&self) -> i64 {
        self.skel
            .maps
            .bss_data
            .as_deref()
            .map_or(0, |bss| bss.mdt_exits_in_flight)
    }

    /// Latency: entries stop leaving pending entries (calls under way still
    /// meet their exits until [`Probes::detach_exits`]).
    pub fn quiesce_exits(&mut self) {
        self.set_exits_flag(false);
    }

    /// Latency: detaches the exit points (after [`Probes::quiesce_exits`]),
    /// on a thread of their own: unregistering uprobes waits for an RCU
    /// grace period per link, which the reader of the ring must not.
    pub fn detach_exits(&mut self) {
        self.set_exits_flag(false);
        let links = std::mem::take(&mut self.exit_links);
        if !links.is_empty() {
            std::thread::spawn(move || drop(links));
        }
    }

    /// Whether the exit points are attached.
    pub fn exits_attached(&self) -> bool {
        !self.exit_links.is_empty()
    }

    /// Whether the probes were given exit points at all.
    pub fn has_exits(&self) -> bool {
        self.exits.is_some()
    }

    fn set_exits_flag(&mut self, on: bool) {
        if let Some(bss) = self.skel.maps.bss_data.as_deref_mut() {
            bss.mdt_exits_armed = u32::from(on);
        }
    }

    fn attach_exit_uprobe(
        &self,
        binary: &Path,
        file_offset: u64,
        cookie: u64,
        pid: u32,
    ) -> Result<AttachedProbe> {
        let pid = i32::try_from(pid).context("pid out of range")?;
        self.uprobe_link(true, binary, file_offset, cookie, pid)
    }

    /// One plain uprobe of the entry (or the exit) program.
    fn uprobe_link(
        &self,
        exit: bool,
        binary: &Path,
        file_offset: u64,
        cookie: u64,
        pid: i32,
    ) -> Result<AttachedProbe> {
        let offset = usize::try_from(file_offset).context("file offset out of range")?;
        let opts = UprobeOpts {
            cookie,
            retprobe: false,
            func_name: None,
            ..UprobeOpts::default()
        };
        let (prog, what) = if exit {
            (&self.skel.progs.mdt_map_return, "an exit uprobe")
        } else {
            (&self.skel.progs.mdt_map_delete, "a uprobe")
        };
        let link = prog
            .attach_uprobe_with_opts(pid, binary, offset, opts)
            .map_err(|e| {
                bpf_error(
                    e,
                    &format!(
                        "attaching {what} to {} at file offset {file_offset:#x}",
                        binary.display()
                    ),
                )
            })?;
        Ok(AttachedProbe { _link: link })
    }

    /// Attaches the program as a uprobe on `binary` at `file_offset` (a
    /// FILE offset, not a virtual address: `va - p_vaddr + p_offset` of the
    /// containing PT_LOAD), with attach cookie `cookie` (= probe id: index
    /// into [`ProbeConfig::probes`] and the hit counters). `pid`: only this
    /// process (and its threads); `None` = every process mapping the file.
    ///
    /// `binary` may be `/proc/PID/exe` for a process in another mount
    /// namespace.
    pub fn attach_uprobe(
        &mut self,
        binary: &Path,
        file_offset: u64,
        cookie: u32,
        pid: Option<u32>,
    ) -> Result<()> {
        if cookie as usize >= self.n_probes {
            bail!(
                "probe id {cookie} has no kind configured (ProbeConfig::probes has {} entries)",
                self.n_probes
            );
        }
        let pid = match pid {
            None => -1,
            Some(p) => i32::try_from(p).with_context(|| format!("pid {p} out of range"))?,
        };
        let link = self.uprobe_link(false, binary, file_offset, u64::from(cookie), pid)?;
        self.links.push(link);
        self.armed += 1;
        Ok(())
    }

    /// Detaches every uprobe (the maps stay readable).
    pub fn detach_all(&mut self) {
        self.set_exits_flag(false);
        self.fatal_link = None;
        self.links.clear();
        self.exit_links.clear();
        self.armed = 0;
    }

    /// Number of armed attach points (one uprobe.multi link arms many).
    pub fn attached(&self) -> usize {
        self.armed
    }
}

/// Adds what to do to the most common failures.
fn bpf_error(e: libbpf_rs::Error, what: &str) -> anyhow::Error {
    let hint = match e.kind() {
        libbpf_rs::ErrorKind::PermissionDenied => {
            ": permission denied (run as root, or with CAP_BPF and CAP_PERFMON)"
        }
        libbpf_rs::ErrorKind::NotFound => {
            ": not found (is the binary path right? are uprobes enabled?)"
        }
        _ => "",
    };
    anyhow::Error::new(e).context(format!("{what}{hint}"))
}
