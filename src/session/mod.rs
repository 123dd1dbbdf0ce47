//! A tracing session: read the target's Go binary, attach the probes, and
//! pump decoded events into a sink until the target exits, the duration
//! ends, or a signal arrives. `trace`, `flame` and the TUI all run one.
//!
//! - [`options`]: what the session is asked for ([`Options`], [`Mode`]);
//! - [`pump`]: records from the ring into the sink;
//! - [`observe`]: exact counters for observers (metrics, alerts) and the TUI;
//! - [`signals`]: the stop requests;
//! - [`traced`]: the process, attached to or launched.

mod join;
mod latency;
pub mod node;
mod observe;
mod options;
mod pump;
mod signals;
mod traced;

use self::latency::LatencyClock;
pub use self::observe::{LiveTotals, Observation, Observer, OBSERVE_INTERVAL};
pub use self::options::{Latency, Mode, Options, TargetSpec};
use self::pump::{report_lost, Pump};
pub use self::signals::Signals;
use self::traced::Target;

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bounded::Limits;
use crate::decode::{totals, DecodeOptions, Decoder, ProbeInfo};
use crate::events::{OutcomeTotals, Role};
use crate::gobin::image::Image;
use crate::gobin::GoBinary;
use crate::mapmem::MapWatch;
use crate::output::{FunctionCount, Sink, Summary};
use crate::probes::{EventReader, ProbeConfig, ProbeKind, Probes, Record, SiteKey};
use crate::process::launch;
use crate::process::{self, ProcessWatch};

use crate::events::fatal::Fatal;
use crate::events::monotonic_ns;
use crate::forensics::Forensics;

/// How often the ring buffer is drained when the kernel does not wake us:
/// the bound on how late a record reaches a pipe.
const DRAIN_INTERVAL: Duration = Duration::from_millis(50);

/// Records handled between two checks for a stop, and for the end of the
/// drain after one (~1–3 ms of work in a release build, ~35 ms in a debug
/// one: 4096 let a debug build overrun the drain by a quarter of a second).
const BATCH: usize = 512;

/// After a stop by a signal, how long the records still in the ring are
/// drained; the ones left are counted as lost (a stop is honoured within a
/// second).
const STOP_DRAIN: Duration = Duration::from_millis(300);
/// After the target exited (or --duration passed), the ring is drained to
/// its end, for at most this long (a signal meanwhile cuts it to
/// STOP_DRAIN): the output is complete however far behind the reader was.
const EXIT_DRAIN: Duration = Duration::from_secs(10);

/// A session with its probes armed and its target running.
pub struct Session {
    pub binary: GoBinary,
    /// The executable, read when the session started.
    image: Arc<Image>,
    probes: Probes,
    /// (probe id → function), in attach order.
    attached: Vec<ProbeInfo>,
    target: Target,
    options: Options,
    started: Instant,
    pub attach_time: Duration,
    /// Exact totals published while running, once asked for (the TUI).
    live: Option<Arc<LiveTotals>>,
    /// Metrics and alerts: sees the records and, every OBSERVE_INTERVAL,
    /// the exact counters (moved into the pump while running).
    observer: Option<Box<dyn Observer + Send>>,
    observed: Option<Instant>,
    /// Hits per call site at the last observation: a site whose count did
    /// not grow names no map deleted from since.
    site_hits: std::collections::HashMap<SiteKey, u64, crate::bounded::FastHash>,
    /// When the exit points are armed.
    latency: LatencyClock,
    /// Crash forensics (moved into the pump while running).
    forensics: Option<Forensics>,
    /// The target as its records name it.
    identity: crate::events::process::Process,
}

/// Why the session stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    TargetExited,
    Duration,
    Signal,
    OutputClosed,
}

impl Session {
    /// Reads the binary, loads and attaches the probes, and (launch mode)
    /// starts the program once everything is armed.
    pub fn start(spec: TargetSpec, options: Options) -> Result<Self> {
        let started = Instant::now();
        process::check_kernel()?;
        let (binary_path, held) = match &spec {
            TargetSpec::Pid(pid) => (process::exe_of(*pid)?, None),
            TargetSpec::Launch(cmd) => {
                let program = launch::resolve_program(&cmd[0])?;
                (program.clone(), Some(program))
            }
        };
        // Read once, now: a -p target may exit before the first event is
        // decoded, and /proc/PID/exe goes with it.
        let file = Arc::new(crate::gobin::elf::read_file(&binary_path)?);
        let binary = GoBinary::analyze(&binary_path, &file).with_context(|| match &spec {
            // "process 42 (/usr/bin/sleep): not a Go program", not "/proc/42/exe: ...".
            TargetSpec::Pid(pid) => match std::fs::read_link(&binary_path) {
                Ok(real) => format!("process {pid} ({})", real.display()),
                Err(_) => format!("process {pid}"),
            },
            TargetSpec::Launch(_) => binary_path.display().to_string(),
        })?;
        let layout = check_traceable(&binary)?;
        let image = Arc::new(Image::new(file.clone(), binary.pclntab_address)?);
        process::check_privileges()?;

        let attach_points: Vec<_> = binary.attach_points().cloned().collect();
        let attached: Vec<ProbeInfo> = attach_points
            .iter()
            .map(|f| ProbeInfo {
                func: f.name,
                role: f.role,
                kind: ProbeKind::of(f.key, f.receiver_first),
                probe_va: f.address + f.probe_offset,
            })
            .collect();

        let mut target = match (&spec, held) {
            (TargetSpec::Pid(pid), _) => Target::Attached {
                pid: *pid,
                watch: ProcessWatch::open(*pid)?,
            },
            (TargetSpec::Launch(cmd), Some(program)) => Target::Launched {
                child: launch::spawn_held(&program, &cmd[0], &cmd[1..])?,
                exit: None,
            },
            _ => unreachable!("launch always resolves a program"),
        };
        if let Err(e) = crate::process::memory::ProcessMemory::open(target.pid()) {
            eprintln!("mdt: warning: {e:#}: map sizes, the other threads at a crash and keys the probe could not copy will be missing");
        }
        // Latency: every exit point of every attached function, by the
        // probe id of its entry; their probe ids follow the entries'.
        let mut exits = Vec::new();
        let mut exit_offsets = Vec::new();
        if options.latency.is_on() {
            for (id, f) in attach_points.iter().enumerate() {
                let offsets = f.exit_file_offsets();
                exits.extend(std::iter::repeat_n(id as u32, offsets.len()));
                exit_offsets.extend(offsets);
            }
        }
        let config = ProbeConfig {
            target_tgid: target.pid() as u32,
            goid_offset: layout.goid_offset as u32,
            map_count_offset: layout.map_count_offset as u32,
            max_stack_depth: options.stack_depth,
            key_bytes: options.key_bytes,
            sample_rate: match options.mode {
                Mode::Sites => 0.0,
                _ => options.sample_rate,
            },
            probes: attached.iter().map(|p| p.kind).collect(),
            aggregate: matches!(options.mode, Mode::Stacks { .. }),
            aggregate_goid: options.mode
                == Mode::Stacks {
                    per_goroutine: true,
                },
            max_stacks: u32::try_from(options.limits.stacks).unwrap_or(u32::MAX),
            count_sites: options.mode.counts_sites(),
            machinery: if options.mode.counts_sites() {
                crate::gobin::funcs::machinery_ranges(&binary, &image, crate::probes::MAX_MACHINERY)
            } else {
                Vec::new()
            },
            probe_vas: attached.iter().map(|p| p.probe_va).collect(),
            exits,
            weight_latency: options.latency.is_on() && matches!(options.mode, Mode::Stacks { .. }),
            key_plans: crate::symbolize::types::decodes_struct_fields(&binary),
            labels: binary
                .labels
                .filter(|_| options.read_labels)
                .map(|l| (l.offset as u32, l.store)),
            label_bytes: options.label_bytes,
            label_keys: options.labels.probe_keys(),
            fatal_window_ns: options
                .fatal_window
                .filter(|_| binary.fatal.is_some() && process::kernel_at_least(5, 19))
                .map(|d| d.as_nanos() as u64),
            kernel_hz: process::kernel_hz(),
            hold_uid: if process::has_capability(process::CAP_KILL) {
                None
            } else {
                // SAFETY: geteuid has no preconditions.
                Some(unsafe { libc::geteuid() })
            },
            ringbuf_bytes: match options.mode {
                Mode::Records { .. } => options.limits.buffer_bytes,
                // Nothing is sent: the smallest ring the kernel allows.
                Mode::Sites | Mode::Stacks { .. } => 4096,
            },
            ..ProbeConfig::default()
        };
        let attach_path = match &target {
            // Through /proc so a process in another mount namespace works.
            Target::Attached { pid, .. } => PathBuf::from(format!("/proc/{pid}/exe")),
            Target::Launched { child, .. } => child.program.clone(),
        };
        let offsets: Vec<u64> = attach_points
            .iter()
            .map(|f| f.probe_file_offset())
            .collect();
        let time_bucket_ns = config.time_bucket_ns();
        let mut probes = Probes::arm(
            config,
            &attach_path,
            &offsets,
            &exit_offsets,
            target.pid() as u32,
        )?;
        let forensics = arm_forensics(
            &mut probes,
            &binary,
            &attach_path,
            &target,
            &options,
            time_bucket_ns,
        );
        let mut latency = LatencyClock::new(options.latency);
        latency.start(&mut probes)?;
        let identity = crate::process::discover::identity(
            target.pid(),
            match &target {
                Target::Launched { child, .. } => Some(child.program.as_path()),
                Target::Attached { .. } => None,
            },
        );
        let attach_time = started.elapsed();
        if let Target::Launched { child, .. } = &mut target {
            child.release()?;
        }
        Ok(Session {
            binary,
            image,
            probes,
            attached,
            target,
            options,
            started: Instant::now(),
            attach_time,
            live: None,
            observer: None,
            observed: None,
            site_hits: Default::default(),
            latency,
            forensics,
            identity,
        })
    }

    pub fn pid(&self) -> i32 {
        self.target.pid()
    }

    /// The target as its records name it.
    pub fn identity(&self) -> &crate::events::process::Process {
        &self.identity
    }

    /// A watch on the target's exit, for a process mdt attached to (a
    /// launched one is mdt's child: its status comes with the summary).
    pub fn process_watch(&self) -> Option<ProcessWatch> {
        match &self.target {
            Target::Attached { watch, .. } => watch.try_clone().ok(),
            Target::Launched { .. } => None,
        }
    }

    /// When the exit points are armed.
    pub fn latency(&self) -> Latency {
        self.options.latency
    }

    pub fn limits(&self) -> Limits {
        self.options.limits
    }

    /// Exact totals that [`Session::run`] refreshes every drain interval,
    /// for a live display (the TUI header).
    pub fn live_totals(&mut self) -> Arc<LiveTotals> {
        self.live.get_or_insert_with(Default::default).clone()
    }

    fn publish_live(&self) {
        let Some(live) = &self.live else { return };
        let now_ms = self.started.elapsed().as_millis() as u64;
        let last = live.published_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < DRAIN_INTERVAL.as_millis() as u64 {
            return;
        }
        live.published_ms.store(now_ms, Ordering::Relaxed);
        if let Ok(hits) = self.probes.hit_counts() {
            let (deletes, clears) = totals(&self.attached, &hits);
            live.deletes.store(deletes, Ordering::Relaxed);
            live.clears.store(clears, Ordering::Relaxed);
        }
        if let Ok(stats) = self.probes.stats() {
            live.lost.store(stats.ringbuf_full, Ordering::Relaxed);
            live.sampled_out.store(stats.sampled_out, Ordering::Relaxed);
        }
    }

    /// Hands the exact counters to `observer` about every
    /// [`OBSERVE_INTERVAL`] while [`Session::run`] runs, and once more after
    /// the probes are detached. Per-site counts need [`Mode::counts_sites`].
    pub fn set_observer(&mut self, observer: Box<dyn Observer + Send>) {
        self.observer = Some(observer);
    }

    /// Calls the pump's observer if its interval passed (or `stopped`: always).
    fn observe(&mut self, pump: &mut Pump, stopped: Option<StopReason>) -> Result<()> {
        let Pump {
            decoder,
            observer: Some(observer),
            maps: watch,
            ..
        } = pump
        else {
            return Ok(());
        };
        if stopped.is_none()
            && self
                .observed
                .is_some_and(|t| t.elapsed() < OBSERVE_INTERVAL)
        {
            return Ok(());
        }
        self.observed = Some(Instant::now());
        let sites = if self.options.mode.counts_sites() {
            self.probes.site_counts()?
        } else {
            Vec::new()
        };
        let hits = self.probes.hit_counts()?;
        let stats = self.probes.stats()?;
        let latency = if self.probes.has_exits() {
            self.probes.latency_histograms()?
        } else {
            Vec::new()
        };
        let target_up = match stopped {
            Some(reason) => reason != StopReason::TargetExited,
            None => !self.target.exited(),
        };
        let attached = if stopped.is_some() {
            0
        } else {
            self.probes.attached()
        };
        let maps: Vec<_> = watch
            .as_ref()
            .map(|w| w.sizes().map(|(m, t, s)| (m, t.clone(), *s)).collect())
            .unwrap_or_default();
        let mut obs = Observation {
            maps: &maps,
            maps_watched: watch.as_ref().map_or(0, |w| w.watched()),
            elapsed: self.started.elapsed(),
            sites: &sites,
            latency: &latency,
            probes: &self.attached,
            hits: &hits,
            stats,
            attached,
            target_up,
            last: stopped.is_some(),
            decoder,
        };
        observer.observe(&mut obs);
        if let Some(watch) = watch {
            // Without records (metrics alone), the kernel's counts name
            // the maps deleted from.
            let now = Instant::now();
            let pid = self.pid() as u32;
            for (key, count) in &sites {
                let before = self.site_hits.insert(*key, count.hits);
                if before.is_some_and(|b| b >= count.hits) {
                    continue;
                }
                for map in count.maps() {
                    let ty = key.map_type_ptr;
                    watch.saw_map(map, ty, || decoder.map_type_name(ty), pid, now);
                }
            }
        }
        Ok(())
    }

    /// The map watch of this session, when asked for and possible: the
    /// binary's map layout is known and the target's memory readable.
    fn map_watch(&self) -> Option<MapWatch> {
        let refresh = self.options.map_refresh?;
        let layout = self.binary.map_memory?;
        MapWatch::start(self.pid(), layout, refresh).ok()
    }

    pub fn attached_functions(&self) -> Vec<&'static str> {
        self.attached.iter().map(|p| p.func).collect()
    }

    fn decoder(&self) -> Decoder {
        Decoder::new(
            self.attached.clone(),
            self.binary.clone(),
            self.image.clone(),
            self.pid(),
            DecodeOptions {
                key_bytes: self.options.key_bytes as usize,
                redact_keys: self.options.redact_keys,
                max_stacks: self.options.limits.stacks,
                labels: self.options.labels.clone(),
            },
        )
    }

    /// Pumps events into `sink` until a stop condition; returns the summary
    /// (already written to the sink).
    ///
    /// Records are taken in batches of at most [`BATCH`], with a check for
    /// a stop between two, so a stop is honoured however fast the kernel
    /// writes. Once stopped, the probes are detached and what the ring
    /// still holds is drained: to its end when the target exited (at most
    /// [`EXIT_DRAIN`]), for at most [`STOP_DRAIN`] after a signal; records
    /// left after that are counted as lost.
    pub fn run(mut self, sink: &mut dyn Sink, signals: &Signals) -> Result<Summary> {
        sink.process(&self.identity);
        let decoder = self.decoder();
        let pump = RefCell::new(Pump {
            decoder,
            sink,
            filter: self.options.clone(),
            filtered_out: 0,
            lost: 0,
            records: 0,
            stack_lost: 0,
            unmatched: 0,
            output_error: None,
            observer: self.observer.take(),
            joiner: Default::default(),
            maps: self.map_watch(),
            maps_clock: Instant::now(),
            forensics: self.forensics.take(),
        });
        let reader = EventReader::new(&self.probes, |record: Record<'_>| {
            pump.borrow_mut().handle(record)
        })?;
        let deadline = self.options.duration.map(|d| self.started + d);
        let mut lost_seen = 0;
        let mut forwarded = 0;
        let mut ticked = Instant::now();
        let reason = loop {
            // Taken before the ring is read: once it is read to its end,
            // every exit that happened before this instant has been seen.
            let read_from = monotonic_ns();
            let caught_up = reader.consume_batch(BATCH)? < BATCH;
            if caught_up {
                reader.wait(DRAIN_INTERVAL)?;
            }
            if pump.borrow().output_error.is_some() {
                break StopReason::OutputClosed;
            }
            if ticked.elapsed() >= DRAIN_INTERVAL {
                ticked = Instant::now();
                let lost = self.lost_so_far(&reader)? + pump.borrow().lost;
                lost_seen = report_lost(&pump, lost, lost_seen);
                if caught_up {
                    pump.borrow_mut().expire(Some(read_from));
                }
                pump.borrow_mut().poll_maps();
                if caught_up {
                    // Every record from before a fatal error has been read.
                    pump.borrow_mut().poll_fatal(false);
                }
                pump.borrow_mut().flush();
                self.latency.tick(&mut self.probes);
                self.publish_live();
                self.observe(&mut pump.borrow_mut(), None)?;
            }
            if let Some(reason) = self.should_stop(deadline, signals, &mut forwarded) {
                break reason;
            }
        };
        // Stop the probes first, then drain, so the totals and the records
        // describe the same set of deletes.
        self.latency.stop();
        self.probes.set_fatal_hold(false);
        self.probes.detach_all();
        let drained_from = Instant::now();
        let signalled = signals.count();
        let bound = |signals: &Signals| match reason {
            StopReason::TargetExited | StopReason::Duration if signals.count() == signalled => {
                EXIT_DRAIN
            }
            _ => STOP_DRAIN,
        };
        while drained_from.elapsed() < bound(signals) && reader.consume_batch(BATCH)? == BATCH {}
        // Calls still waiting for an exit will not see it now.
        pump.borrow_mut().expire(None);
        pump.borrow_mut().finish_maps();
        pump.borrow_mut().poll_fatal(true);
        // A target the probe stopped whose record could not be read: let go.
        self.probes.release_held();
        let stats = self.probes.stats()?;
        let unread = stats.submitted.saturating_sub(reader.received());
        let exits_unread = stats.exits_sent.saturating_sub(reader.exits_received());
        let lost = self.lost_so_far(&reader)? + pump.borrow().lost + unread;
        lost_seen = report_lost(&pump, lost, lost_seen);
        drop(reader);
        let mut pump = pump.into_inner();
        self.observe(&mut pump, Some(reason))?;
        let mut summary = self.summary(pump.filtered_out, lost_seen, reason)?;
        if let Some(o) = &mut summary.outcomes {
            o.exits_lost += exits_unread;
        }
        summary.stack_lost = pump.stack_lost;
        summary.records = pump.records;
        summary.unmatched = pump.unmatched;
        summary.map_memory = pump.maps.as_ref().map(MapWatch::totals);
        summary.fatal_errors = pump.forensics.as_ref().map(|f| f.reported);
        if pump.output_error.is_none() {
            let _ = pump.sink.summary(&summary);
        }
        Ok(summary)
    }

    /// Records that did not reach user space so far: the ones the kernel
    /// could not put in the ring (full), and the ones that could not be
    /// put back together.
    fn lost_so_far(&self, reader: &EventReader) -> Result<u64> {
        Ok(self.probes.stats()?.ringbuf_full + reader.undecodable())
    }

    /// The stop conditions of every run loop: the target exited, the
    /// duration passed, or a signal. In launch mode the first signal is
    /// passed on to the program, which decides when to stop; a second one
    /// stops mdt right away.
    fn should_stop(
        &mut self,
        deadline: Option<Instant>,
        signals: &Signals,
        forwarded: &mut usize,
    ) -> Option<StopReason> {
        if self.target.exited() {
            return Some(StopReason::TargetExited);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(StopReason::Duration);
        }
        let received = signals.count();
        if received > *forwarded {
            *forwarded = received;
            match &self.target {
                Target::Launched { child, .. } if received == 1 => {
                    // SAFETY: kill with our child's pid and a valid signal.
                    unsafe { libc::kill(child.pid, signals.last()) };
                }
                _ => return Some(StopReason::Signal),
            }
        }
        None
    }

    /// Aggregation mode: waits for a stop condition while the kernel counts
    /// stacks, calling `progress` about once a second with (elapsed, exact
    /// deletes + clears so far); then reads and names the counts.
    pub fn run_aggregate(
        mut self,
        signals: &Signals,
        progress: &mut dyn FnMut(Duration, u64),
    ) -> Result<(Summary, Vec<StackCount>, Option<Fatal>)> {
        let deadline = self.options.duration.map(|d| self.started + d);
        let mut last_progress = Instant::now();
        let mut forwarded = 0;
        // No records: the ring is read for the fatal records alone.
        let forensics = RefCell::new(self.forensics.take());
        let reader = EventReader::new(&self.probes, |record: Record<'_>| {
            if let (Record::Fatal(raw), Some(f)) = (record, forensics.borrow_mut().as_mut()) {
                f.fatal(raw);
            }
        })?;
        let reason = loop {
            reader.wait(DRAIN_INTERVAL)?;
            reader.consume_batch(BATCH)?;
            if last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                let total = self.probes.hit_counts()?.iter().sum();
                progress(self.started.elapsed(), total);
            }
            if let Some(reason) = self.should_stop(deadline, signals, &mut forwarded) {
                break reason;
            }
        };
        self.latency.stop();
        self.probes.set_fatal_hold(false);
        self.probes.detach_all();
        reader.consume_batch(BATCH)?;
        drop(reader);
        // A target the probe stopped whose record could not be read: let go.
        self.probes.release_held();
        let stats = self.probes.stats()?;
        let durations = if self.probes.has_exits() {
            self.probes.stack_durations()?
        } else {
            Default::default()
        };
        let mut decoder = self.decoder();
        let mut counts = Vec::new();
        for (key, count) in self.probes.stack_counts()? {
            let (pcs, truncated) = self
                .probes
                .stack_frames(key.stack_hash)?
                .unwrap_or_default();
            let Some((probe, frames, ty)) =
                decoder.name_aggregate(key.probe_id, &pcs, key.map_type_ptr)
            else {
                continue;
            };
            counts.push(StackCount {
                func: probe.func,
                frames,
                map_type: ty.name,
                key_type: ty.key_type,
                goid: (self.options.mode
                    == Mode::Stacks {
                        per_goroutine: true,
                    })
                .then_some(key.goid),
                count,
                total_ns: durations.get(&key).copied(),
                truncated,
            });
        }
        let mut summary = self.summary(0, stats.agg_full, reason)?;
        summary.records = counts.iter().map(|c| c.count).sum();
        let mut forensics = forensics.into_inner();
        let fatal = forensics.as_mut().and_then(|f| f.due(&mut decoder, true));
        summary.fatal_errors = forensics.as_ref().map(|f| f.reported);
        Ok((summary, counts, fatal))
    }

    fn summary(&mut self, filtered_out: u64, lost: u64, reason: StopReason) -> Result<Summary> {
        let hits = self.probes.hit_counts()?;
        let stats = self.probes.stats()?;
        let outcomes = if self.probes.has_exits() {
            self.probes.outcomes()?
        } else {
            Vec::new()
        };
        let by_function: Vec<FunctionCount> = self
            .attached
            .iter()
            .zip(&hits)
            .enumerate()
            .map(|(id, (p, &hits))| {
                let o = outcomes.get(id);
                FunctionCount {
                    func: p.func,
                    role: p.role,
                    hits,
                    returned: o.map(|o| o.matched),
                    removed: o.filter(|_| p.role == Role::Delete).map(|o| o.removed),
                    absent: o.filter(|_| p.role == Role::Delete).map(|o| o.absent),
                }
            })
            .collect();
        let (deletes, clears) = totals(&self.attached, &hits);
        let exit_status = match &mut self.target {
            Target::Launched { child, exit } => {
                if exit.is_none() && reason == StopReason::TargetExited {
                    *exit = launch::try_wait(child.pid);
                }
                *exit
            }
            // Read while it is a zombie or from its pidfd (Linux 6.15+).
            Target::Attached { watch, .. } if reason == StopReason::TargetExited => watch.status(),
            Target::Attached { .. } => None,
        };
        let target_exit = match (&exit_status, reason) {
            (Some(status), _) => Some(status.to_string()),
            (None, StopReason::TargetExited) => Some("exited".into()),
            _ => None,
        };
        Ok(Summary {
            duration: self.started.elapsed(),
            deletes,
            clears,
            by_function,
            records: 0,
            sampled_out: stats.sampled_out,
            lost: lost.max(stats.ringbuf_full),
            stack_lost: 0,
            filtered_out,
            sample_rate: match self.options.mode {
                Mode::Sites => 0.0,
                _ => self.options.sample_rate,
            },
            outcomes: self.outcome_totals()?,
            unmatched: 0,
            map_memory: None,
            fatal_errors: None,
            target_exit,
            exit_status,
        })
    }

    /// The exact outcomes counted at the exits, if they were ever armed.
    fn outcome_totals(&self) -> Result<Option<OutcomeTotals>> {
        if !self.probes.has_exits() {
            return Ok(None);
        }
        let stats = self.probes.stats()?;
        let mut t = OutcomeTotals {
            armed: if self.latency.always() {
                self.started.elapsed()
            } else {
                self.latency.armed()
            },
            never_returned: stats.pending_replaced,
            exits_without_entry: stats.exit_unmatched,
            exits_lost: stats.exits_lost,
            histograms_full: stats.latency_full,
            windows_stopped: self.latency.failed.clone(),
            ..OutcomeTotals::default()
        };
        for o in self.probes.outcomes()? {
            t.removed += o.removed;
            t.absent += o.absent;
            t.returned += o.matched;
            t.total_ns += o.total_ns;
        }
        Ok(Some(t))
    }

    /// Launch mode: waits for the program after tracing stopped early
    /// (duration or signal), so its exit status can be passed on.
    pub fn wait_child(summary: &mut Summary, pid: i32) {
        if summary.exit_status.is_some() {
            return;
        }
        summary.exit_status = launch::wait_blocking(pid);
    }
}

/// Crash forensics: the probe on runtime.fatal attached (where the binary
/// has it and the program was loaded with it), allowed to stop the target
/// if asked. A failure costs the forensics, not the session.
fn arm_forensics(
    probes: &mut Probes,
    binary: &GoBinary,
    attach_path: &std::path::Path,
    target: &Target,
    options: &Options,
    time_bucket_ns: u64,
) -> Option<Forensics> {
    let fatal = binary.fatal.as_ref()?;
    let window = options.fatal_window?;
    if !probes.has_forensics() {
        return None;
    }
    let pid = target.pid();
    if let Err(e) = probes.attach_fatal(attach_path, fatal.file_offset, pid as u32) {
        eprintln!("mdt: crash forensics off: {e:#}");
        return None;
    }
    // Never stop a process mdt could not let go on.
    let mut not_held = None;
    if options.fatal_hold && !crate::process::stop::can_signal(pid) {
        eprintln!("mdt: crash forensics without the other threads: mdt may not signal process {pid} (another user's, and no CAP_KILL, or a security policy), so it will not stop it");
        not_held = Some("the process was not stopped: mdt may not signal it (another user's process and no CAP_KILL, or a security policy)");
    }
    let lister = if options.fatal_hold && not_held.is_none() {
        match probes.thread_lister() {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("mdt: crash forensics without the other threads: {e:#}");
                not_held =
                    Some("the process was not stopped: the thread iterator could not be loaded");
                None
            }
        }
    } else {
        None
    };
    probes.set_fatal_hold(lister.is_some());
    let forensics = Forensics::new(
        pid,
        lister,
        binary.layout.map_or(0, |l| l.goid_offset),
        fatal.address,
        window.as_nanos() as u64,
        time_bucket_ns,
    );
    Some(match not_held {
        Some(why) => forensics.not_held_because(why),
        None => forensics,
    })
}

/// Refuses binaries mdt cannot trace correctly, with what to do.
fn check_traceable(binary: &GoBinary) -> Result<crate::gobin::layout::Layout> {
    if binary.arch != crate::gobin::elf::Arch::X86_64 {
        bail!("unsupported architecture: mdt traces x86-64 Go programs");
    }
    let Some(layout) = binary.layout else {
        bail!(
            "unsupported Go version {}: mdt knows the runtime layout of go1.17 to go1.{} and this binary has no DWARF to read it from",
            binary.go_version,
            crate::gobin::layout::NEWEST_KNOWN_MINOR
        );
    };
    if binary.attach_points().next().is_none() {
        bail!("{} never deletes from a map: none of the Go runtime's map-delete functions is linked in", binary.path.display());
    }
    Ok(layout)
}

/// One (stack, map type, probe) count of the kernel aggregation.
#[derive(Debug, Clone)]
pub struct StackCount {
    /// The runtime function hit (the delete flavour).
    pub func: &'static str,
    /// Innermost first.
    pub frames: crate::events::Stack,
    pub map_type: Arc<str>,
    pub key_type: Arc<str>,
    pub goid: Option<u64>,
    pub count: u64,
    /// With the exit points armed (`--weight latency`): the calls' total
    /// time, nanoseconds.
    pub total_ns: Option<u64>,
    /// The stack was deeper than the walk (`--stack-depth`).
    pub truncated: bool,
}
