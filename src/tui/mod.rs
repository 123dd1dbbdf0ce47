//! The interactive terminal UI of `mdt trace` (ratatui + crossterm).
//!
//! Two threads:
//!
//! - the session thread (the caller's) runs the [`Session`] and feeds each
//!   event through [`TuiSink`] into the shared [`Stats`], under a mutex held
//!   for that one update (bounded tables, no drawing, no I/O);
//! - the UI thread owns the terminal: it reads keys, rebuilds the [`App`]'s
//!   model from the stats about ten times a second (and at once after a
//!   key) and draws it. It holds the mutex only while it copies out the
//!   rows it needs, never while drawing.
//!
//! Alerts (`--alert`) are read from their [`AlertBoard`] on every frame: a
//! banner while one fires, and the Alerts view.
//!
//! `q` asks the session to stop (like a signal would) and leaves at once;
//! when the target exits, the UI stays up with a banner until `q`. The
//! terminal is restored on every way out (see [`terminal`]).

pub mod alerts;
pub mod app;
pub mod export;
pub mod input;
pub mod launch;
pub mod state;
pub mod terminal;
pub mod view;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{self, Event as TermEvent, KeyEventKind};

use self::app::{App, Effect, Ended, TargetInfo, Totals};
use self::state::Stats;
use self::terminal::TerminalGuard;
use self::view::Theme;
use crate::events::{wall_clock_ns, Event};
use crate::gobin::MapImpl;
use crate::monitor::alerts::AlertBoard;
use crate::output::{Sink, Summary};
use crate::process::ProcessWatch;
use crate::session::{Latency, LiveTotals, Session, Signals};

/// Time between two frames when nothing happens.
const FRAME: Duration = Duration::from_millis(100);
/// How long to keep asking for the exit status of a process we did not start.
const EXIT_STATUS_WAIT: Duration = Duration::from_secs(30);

/// How the session ended, for the UI.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Stay up with a banner; the final exact totals.
    Banner(Ended, Totals),
    /// Leave now (a signal, `q`, or an error).
    Leave,
}

/// What the two threads share.
#[derive(Default)]
pub struct Shared {
    stats: Mutex<Stats>,
    end: Mutex<Option<End>>,
    /// The target died of a fatal error (crash forensics).
    fatal: Mutex<Option<Arc<crate::events::fatal::Fatal>>>,
    /// The session thread is unwinding: the UI must leave.
    abort: AtomicBool,
}

impl Shared {
    fn new(rows: usize) -> Self {
        Shared {
            stats: Mutex::new(Stats::with_rows(rows)),
            ..Shared::default()
        }
    }

    fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn end(&self) -> Option<End> {
        *self.end.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fatal(&self) -> Option<Arc<crate::events::fatal::Fatal>> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_end(&self, end: End) {
        *self.end.lock().unwrap_or_else(|e| e.into_inner()) = Some(end);
    }
}

/// The session's side: every event into the shared tables.
pub struct TuiSink {
    shared: Arc<Shared>,
}

impl Sink for TuiSink {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.shared.stats().apply(ev);
        Ok(())
    }

    fn lost(&mut self, _count: u64, total: u64) -> io::Result<()> {
        self.shared.stats().lost = total;
        Ok(())
    }

    fn map(&mut self, m: &crate::events::mapmem::MapMemory) -> io::Result<()> {
        self.shared.stats().map_memory(m);
        Ok(())
    }

    fn fatal(&mut self, f: &crate::events::fatal::Fatal) -> io::Result<()> {
        *self.shared.fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(f.clone()));
        Ok(())
    }

    fn summary(&mut self, _summary: &Summary) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn live_totals(live: &LiveTotals) -> Totals {
    Totals {
        deletes: live.deletes.load(Ordering::Relaxed),
        clears: live.clears.load(Ordering::Relaxed),
        lost: live.lost.load(Ordering::Relaxed),
        sampled_out: live.sampled_out.load(Ordering::Relaxed),
    }
}

/// Sets `abort` if the session thread unwinds, so the UI thread leaves and
/// the scope can end.
struct AbortOnUnwind<'a>(&'a Shared);

impl Drop for AbortOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort.store(true, Ordering::SeqCst);
        }
    }
}

/// However the UI thread leaves (`q`, an error, a panic), a session that
/// still runs is asked to stop.
struct StopSessionOnExit<'a> {
    shared: &'a Shared,
    signals: &'a Signals,
}

impl Drop for StopSessionOnExit<'_> {
    fn drop(&mut self) {
        if self.shared.end().is_none() {
            self.signals.request_stop();
        }
    }
}

/// Runs `session` with the terminal UI until the user quits; returns the
/// session's summary. `launched`: the output of the program mdt started
/// (see [`launch`]), printed once the UI is gone. `alerts`: where alerts
/// are posted, when there are alert rules.
pub fn run(
    mut session: Session,
    signals: &Signals,
    sample_rate: f64,
    launched: Option<launch::ChildOutput>,
    alerts: Option<Arc<AlertBoard>>,
) -> Result<Summary> {
    let pid = session.pid();
    let target = session.identity();
    let binary = if target.exe.is_empty() {
        session.binary.path.display().to_string()
    } else {
        target.exe.clone()
    };
    let info = TargetInfo {
        pid,
        binary,
        container: target
            .container_id
            .as_deref()
            .map(|id| crate::events::process::short_container_id(id).to_string()),
        go_version: session.binary.go_version.clone(),
        map_impl: match session.binary.map_impl {
            MapImpl::Swiss => "swiss".into(),
            MapImpl::Hmap => "hmap".into(),
        },
        sample_rate,
        latency: match session.latency() {
            Latency::Off => None,
            Latency::Always => Some(1.0),
            Latency::Windows { fraction } => Some(fraction),
        },
        attached_ns: wall_clock_ns(),
    };
    let live = session.live_totals();
    let watch = session.process_watch();
    let shared = Arc::new(Shared::new(session.limits().rows));
    let mut sink = TuiSink {
        shared: shared.clone(),
    };
    let guard = TerminalGuard::enter()
        .context("cannot start the terminal UI (--no-tui prints lines instead)")?;

    let (result, ui) = std::thread::scope(|s| {
        let ui = s.spawn(|| {
            let r = ui_main(guard, &shared, signals, &live, info, watch, alerts);
            // The terminal is back; detaching the probes can take a moment.
            if shared.end().is_none() {
                eprintln!("mdt: stopping: detaching the probes");
            }
            r
        });
        let abort = AbortOnUnwind(&shared);
        let result = session.run(&mut sink, signals);
        shared.set_end(match &result {
            // A signal or `q`: leave. Otherwise the target exited or the
            // duration passed: keep the UI up until `q`.
            Ok(summary) if signals.count() == 0 => {
                let totals = Totals {
                    deletes: summary.deletes,
                    clears: summary.clears,
                    lost: summary.lost,
                    sampled_out: summary.sampled_out,
                };
                let ended = match (&summary.target_exit, summary.exit_status) {
                    (Some(_), status) => Ended::Exited(status),
                    (None, _) => Ended::Duration(summary.duration),
                };
                End::Banner(ended, totals)
            }
            _ => End::Leave,
        });
        drop(abort);
        (result, ui.join())
    });
    let ui_result = match ui {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    if let Some(output) = launched {
        launch::print(output);
    }
    let summary = result?;
    let ended = ui_result?;
    let mut summary = summary;
    if let Some(Ended::Exited(Some(status))) = ended {
        // Seen by the UI's own watch, which may know what the session's
        // summary could not (the target was reaped meanwhile).
        if matches!(summary.target_exit.as_deref(), None | Some("exited")) {
            summary.target_exit = Some(status.to_string());
        }
    }
    eprintln!("mdt: {}", summary.line());
    Ok(summary)
}

fn ui_main(
    mut guard: TerminalGuard,
    shared: &Shared,
    signals: &Signals,
    live: &LiveTotals,
    info: TargetInfo,
    watch: Option<ProcessWatch>,
    alerts: Option<Arc<AlertBoard>>,
) -> Result<Option<Ended>> {
    let _stop = StopSessionOnExit { shared, signals };
    let theme = Theme::from_env();
    let mut app = App::new(info).with_alerts(alerts);
    let mut final_totals: Option<Totals> = None;
    let mut ended_at: Option<Instant> = None;
    let mut next_frame = Instant::now();
    loop {
        if shared.abort.load(Ordering::SeqCst) || !terminal::is_active() {
            return Ok(app.ended);
        }
        if final_totals.is_none() {
            match shared.end() {
                Some(End::Leave) => return Ok(app.ended),
                Some(End::Banner(ended, totals)) => {
                    // The exit may have been seen (with its status) already.
                    if !matches!(app.ended, Some(Ended::Exited(Some(_)))) {
                        app.finish(ended, wall_clock_ns());
                    }
                    final_totals = Some(totals);
                    ended_at.get_or_insert_with(Instant::now);
                }
                None => {}
            }
        }
        if app.fatal.is_none() {
            if let Some(f) = shared.fatal() {
                app.set_fatal(f);
            }
        }
        // A process mdt attached to: its exit shows at once, while the
        // session still detaches its probes.
        if let (None, Some(w)) = (app.ended, &watch) {
            if w.exited() {
                app.finish(Ended::Exited(w.status()), wall_clock_ns());
                ended_at = Some(Instant::now());
            }
        }
        if let (Some(Ended::Exited(None)), Some(w), Some(at)) = (app.ended, &watch, ended_at) {
            if at.elapsed() < EXIT_STATUS_WAIT {
                if let Some(status) = w.status() {
                    app.finish(Ended::Exited(Some(status)), wall_clock_ns());
                }
            }
        }

        let mut dirty = false;
        if event::poll(next_frame.saturating_duration_since(Instant::now()))? {
            loop {
                match event::read()? {
                    TermEvent::Key(key) if key.kind != KeyEventKind::Release => {
                        dirty = true;
                        let Some(cmd) = input::command(key, app.mode()) else {
                            continue;
                        };
                        match app.apply(cmd) {
                            Effect::Quit => return Ok(app.ended),
                            Effect::Reset => {
                                shared.stats().reset();
                                app.reset();
                            }
                            Effect::Export => export(&mut app, shared),
                            Effect::None => {}
                        }
                    }
                    TermEvent::Resize(..) => dirty = true,
                    _ => {}
                }
                if !event::poll(Duration::ZERO)? {
                    break;
                }
            }
        }
        let now = Instant::now();
        if dirty || now >= next_frame {
            let counters = final_totals.unwrap_or_else(|| live_totals(live));
            app.refresh(&shared.stats(), Some(counters), wall_clock_ns());
            guard.terminal.draw(|f| view::draw(f, &mut app, &theme))?;
            // For the end-to-end test of the panic path (debug builds only).
            #[cfg(debug_assertions)]
            if app.records > 0 && std::env::var_os("MDT_TUI_TEST_PANIC").is_some() {
                panic!("MDT_TUI_TEST_PANIC: a panic in the UI thread");
            }
            if now >= next_frame {
                next_frame = now + FRAME;
            }
        }
    }
}

fn export(app: &mut App, shared: &Shared) {
    let dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let export = export::Export::new(app, app.shown(&shared.stats()));
    let result = export.write(&dir);
    match result {
        Ok((folded, json)) => {
            let name = |p: &std::path::Path| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            };
            app.set_status(format!(
                "exported {} and {} (in {})",
                name(&folded),
                name(&json),
                dir.display()
            ))
        }
        Err(e) => app.set_status(format!("export failed in {}: {e}", dir.display())),
    }
}
