//! The UI's own state (view, sort, filter, selection, pause, overlays) and
//! the model it shows, rebuilt from [`Stats`] on every frame. Pure: no
//! terminal, no clock, no threads — the loop in `mod.rs` feeds it keys and
//! times, `view.rs` draws it.

use std::sync::Arc;
use std::time::Duration;

use super::alerts::{self, AlertLine, Alerts};
use super::input::{Command, Mode};
use super::state::{
    self, CallerLine, Detail, EventLine, Evicted, Filter, LabelLine, MapLine, RateHistory, RowKey,
    Sort, Stats, View, VIEWS,
};
use crate::events::fatal::Fatal;
use crate::monitor::alerts::AlertBoard;
use crate::process::launch::ExitStatus;

const NANOS: u64 = 1_000_000_000;
/// How long a status message (export, reset) stays in the footer.
const STATUS_NS: u64 = 10 * NANOS;

/// What the header says about the target.
#[derive(Debug, Clone, Default)]
pub struct TargetInfo {
    pub pid: i32,
    /// The executable's path.
    pub binary: String,
    /// The container it runs in (its id's first 12 digits), if any.
    pub container: Option<String>,
    /// `go1.24.11`.
    pub go_version: String,
    /// `swiss` or `hmap`.
    pub map_impl: String,
    pub sample_rate: f64,
    /// The share of time the exit probes are armed (outcomes, latency):
    /// `None` never, 1.0 always.
    pub latency: Option<f64>,
    /// Wall clock (ns since the epoch) when the probes were armed.
    pub attached_ns: u64,
}

/// The exact counters (BPF), or the record counts when no live counters
/// are given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub deletes: u64,
    pub clears: u64,
    pub lost: u64,
    pub sampled_out: u64,
}

impl Totals {
    fn minus(self, base: Totals) -> Totals {
        Totals {
            deletes: self.deletes.saturating_sub(base.deletes),
            clears: self.clears.saturating_sub(base.clears),
            lost: self.lost.saturating_sub(base.lost),
            sampled_out: self.sampled_out.saturating_sub(base.sampled_out),
        }
    }
}

/// Why tracing ended while the UI stays up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The target exited; its status when known.
    Exited(Option<ExitStatus>),
    /// `--duration` passed.
    Duration(Duration),
}

impl Ended {
    pub fn banner(&self) -> String {
        let what = match self {
            Ended::Exited(Some(ExitStatus::Code(c))) => format!("process exited (status {c})"),
            Ended::Exited(Some(ExitStatus::Signal(s))) => {
                format!("process killed by signal {s}{}", signal_name(*s))
            }
            Ended::Exited(None) => "process exited".into(),
            Ended::Duration(d) => {
                let secs = Duration::from_secs(d.as_secs_f64().round() as u64);
                format!("tracing stopped after {}", humantime::format_duration(secs))
            }
        };
        format!("{what} · press q to quit")
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => " (SIGHUP)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGQUIT => " (SIGQUIT)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGPIPE => " (SIGPIPE)",
        libc::SIGTERM => " (SIGTERM)",
        _ => "",
    }
}

/// The rows of the current view, filtered and sorted.
#[derive(Debug, Clone)]
pub enum Rows {
    Callers(Vec<CallerLine>),
    Maps(Vec<MapLine>),
    Events(Vec<EventLine>),
    Alerts(Vec<AlertLine>),
    Labels(Vec<LabelLine>),
}

impl Rows {
    pub fn len(&self) -> usize {
        match self {
            Rows::Callers(v) => v.len(),
            Rows::Maps(v) => v.len(),
            Rows::Events(v) => v.len(),
            Rows::Alerts(v) => v.len(),
            Rows::Labels(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn key(&self, i: usize) -> Option<RowKey> {
        match self {
            Rows::Callers(v) => v.get(i).map(|l| RowKey::Caller(l.key.clone())),
            Rows::Maps(v) => v.get(i).map(|l| RowKey::Map((l.addr, l.type_hash))),
            Rows::Events(v) => v.get(i).map(|l| RowKey::Event(l.seq)),
            Rows::Alerts(v) => v.get(i).map(|l| RowKey::Alert(l.seq)),
            Rows::Labels(v) => v.get(i).map(|l| RowKey::Label(l.label.clone())),
        }
    }

    fn position(&self, key: &RowKey) -> Option<usize> {
        match (self, key) {
            (Rows::Callers(v), RowKey::Caller(k)) => v.iter().position(|l| &l.key == k),
            (Rows::Maps(v), RowKey::Map(k)) => v.iter().position(|l| (l.addr, l.type_hash) == *k),
            (Rows::Events(v), RowKey::Event(s)) => v.iter().position(|l| l.seq == *s),
            (Rows::Alerts(v), RowKey::Alert(s)) => v.iter().position(|l| l.seq == *s),
            (Rows::Labels(v), RowKey::Label(k)) => v.iter().position(|l| l.label == *k),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Selection {
    index: usize,
    key: Option<RowKey>,
}

/// What a command needs from the loop beyond the app itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    Quit,
    /// Reset the shared counters, then call [`App::reset`].
    Reset,
    /// Write the export files, then report with [`App::set_status`].
    Export,
}

pub struct App {
    pub info: TargetInfo,
    pub view: View,
    sorts: [Sort; VIEWS],
    pub filter: String,
    pub editing: bool,
    pub paused: bool,
    frozen: Option<Box<Stats>>,
    pub detail_open: bool,
    pub help: bool,
    sel: [Selection; VIEWS],
    /// First row shown, per view (kept by the view so the selection stays visible).
    pub offset: [usize; VIEWS],
    /// Rows the table showed last time (for PgUp / PgDn).
    pub page: usize,
    status: Option<(String, u64)>,
    pub ended: Option<Ended>,
    /// When tracing ended (wall clock, ns): the attached clock stops there.
    pub ended_ns: Option<u64>,
    /// Shown totals: since the start, or since the last reset.
    pub totals: Totals,
    /// Bytes held by the maps in the Maps view, as last read.
    pub map_bytes: u64,
    /// Whether `totals` are the exact BPF counters.
    pub exact: bool,
    raw: Totals,
    baseline: Totals,
    pub history: RateHistory,
    pub now_ns: u64,
    pub rows: Rows,
    /// Rows of the view before filtering.
    pub unfiltered: usize,
    pub detail: Option<Detail>,
    pub records: u64,
    pub evicted: Evicted,
    /// Where alerts are posted (None: no alert rules).
    board: Option<Arc<AlertBoard>>,
    /// The alerts seen so far and those firing now (for the banner).
    pub alerts: Alerts,
    /// The target died of a fatal error: its report (banner, and the
    /// crash view, open while `fatal_open`, scrolled by `fatal_scroll`).
    pub fatal: Option<Arc<Fatal>>,
    pub fatal_open: bool,
    pub fatal_scroll: u16,
}

impl App {
    pub fn new(info: TargetInfo) -> Self {
        App {
            info,
            view: View::Callers,
            sorts: View::ALL.map(View::default_sort),
            filter: String::new(),
            editing: false,
            paused: false,
            frozen: None,
            detail_open: false,
            help: false,
            sel: Default::default(),
            offset: [0; VIEWS],
            page: 10,
            status: None,
            ended: None,
            ended_ns: None,
            totals: Totals::default(),
            map_bytes: 0,
            exact: false,
            raw: Totals::default(),
            baseline: Totals::default(),
            history: RateHistory::default(),
            now_ns: 0,
            rows: Rows::Callers(Vec::new()),
            unfiltered: 0,
            detail: None,
            records: 0,
            evicted: Evicted::default(),
            board: None,
            alerts: Alerts::default(),
            fatal: None,
            fatal_open: false,
            fatal_scroll: 0,
        }
    }

    /// The target died of a fatal error: the crash view opens by itself.
    pub fn set_fatal(&mut self, fatal: Arc<Fatal>) {
        if self.fatal.is_none() {
            self.fatal = Some(fatal);
            self.fatal_open = true;
            self.fatal_scroll = 0;
        }
    }

    /// Shows the alerts posted to `board` (a banner while one fires, and
    /// the Alerts view); read on every [`App::refresh`].
    pub fn with_alerts(mut self, board: Option<Arc<AlertBoard>>) -> Self {
        self.alerts = Alerts::new(board.is_some());
        self.board = board;
        self
    }

    pub fn mode(&self) -> Mode {
        if self.help {
            Mode::Help
        } else if self.editing {
            Mode::Editing
        } else {
            Mode::Normal
        }
    }

    pub fn sort(&self, view: View) -> Sort {
        self.sorts[view.index()]
    }

    /// The selected row of the current view.
    pub fn selected(&self) -> usize {
        self.sel[self.view.index()].index
    }

    pub fn status(&self) -> Option<&str> {
        self.status
            .as_ref()
            .filter(|(_, until)| *until > self.now_ns)
            .map(|(s, _)| s.as_str())
    }

    pub fn set_status(&mut self, msg: impl Into<String>) {
        self.status = Some((msg.into(), self.now_ns + STATUS_NS));
    }

    /// Tracing ended: show why, and stop the attached clock.
    pub fn finish(&mut self, ended: Ended, now_ns: u64) {
        self.ended = Some(ended);
        self.ended_ns.get_or_insert(now_ns);
    }

    /// The stats the rows come from: frozen while paused.
    pub fn shown<'a>(&'a self, live: &'a Stats) -> &'a Stats {
        self.frozen.as_deref().unwrap_or(live)
    }

    /// After the shared counters were reset (`c`).
    pub fn reset(&mut self) {
        self.baseline = self.raw;
        self.frozen = None;
        for s in &mut self.sel {
            *s = Selection::default();
        }
        self.set_status("counters reset");
    }

    /// Rebuilds the model: `counters` are the exact totals (None: count
    /// the records), `now_ns` the wall clock.
    pub fn refresh(&mut self, live: &Stats, counters: Option<Totals>, now_ns: u64) {
        self.now_ns = now_ns;
        let now_sec = now_ns / NANOS;
        match counters {
            Some(raw) => {
                self.raw = raw;
                self.exact = true;
                self.totals = raw.minus(self.baseline);
            }
            None => {
                self.raw = Totals {
                    deletes: live.deletes,
                    clears: live.clears,
                    lost: live.lost,
                    sampled_out: 0,
                };
                self.exact = false;
                self.totals = self.raw;
            }
        }
        self.history
            .observe(now_sec, self.raw.deletes + self.raw.clears);
        self.records = live.records();
        self.evicted = live.evicted();
        self.map_bytes = live.map_bytes();
        // Alerts are not frozen by a pause: the banner and the list stay live.
        if let Some(board) = &self.board {
            self.alerts.update(board);
        }
        if self.paused && self.frozen.is_none() {
            self.frozen = Some(Box::new(live.clone()));
        }
        let frozen = self.frozen.take();
        let stats = frozen.as_deref().unwrap_or(live);
        let filter = Filter::new(&self.filter);
        let sort = self.sort(self.view);
        let (rows, unfiltered) = match self.view {
            View::Callers => {
                let (mut v, n) = stats.caller_lines(&filter, now_sec);
                state::sort_callers(&mut v, sort);
                (Rows::Callers(v), n)
            }
            View::Maps => {
                let (mut v, n) = stats.map_lines(&filter, now_sec);
                state::sort_maps(&mut v, sort);
                (Rows::Maps(v), n)
            }
            View::Events => {
                let (mut v, n) = stats.event_lines(&filter);
                state::sort_events(&mut v, sort);
                (Rows::Events(v), n)
            }
            View::Alerts => {
                let (mut v, n) = self.alerts.lines(&filter);
                alerts::sort_alerts(&mut v, sort);
                (Rows::Alerts(v), n)
            }
            View::Labels => {
                let (mut v, n) = stats.label_lines(&filter, now_sec);
                state::sort_labels(&mut v, sort);
                (Rows::Labels(v), n)
            }
        };
        self.rows = rows;
        self.unfiltered = unfiltered;
        self.resolve_selection();
        let key = self.rows.key(self.selected());
        self.detail = match (self.detail_open, key) {
            (true, Some(RowKey::Caller(k))) => stats.caller_detail(&k, now_sec),
            (true, Some(RowKey::Map(k))) => stats.map_detail(k, now_sec),
            (true, Some(RowKey::Event(s))) => stats.event_detail(s),
            (true, Some(RowKey::Alert(s))) => self.alerts.detail(s),
            (true, Some(RowKey::Label(k))) => stats.label_detail(&k, now_sec),
            _ => None,
        };
        self.frozen = frozen;
    }

    /// Keeps the selection on the same row when rows move; the newest
    /// event (alert) stays selected while the selection is at the top of
    /// the Events (Alerts) view (a tail).
    fn resolve_selection(&mut self) {
        let n = self.rows.len();
        let tail = matches!(self.view, View::Events | View::Alerts) && !self.paused;
        let sel = &mut self.sel[self.view.index()];
        if n == 0 {
            *sel = Selection::default();
            return;
        }
        if !(tail && sel.index == 0) {
            if let Some(pos) = sel.key.as_ref().and_then(|k| self.rows.position(k)) {
                sel.index = pos;
            }
        }
        sel.index = sel.index.min(n - 1);
        sel.key = self.rows.key(sel.index);
    }

    fn select(&mut self, index: usize) {
        let n = self.rows.len();
        let sel = &mut self.sel[self.view.index()];
        sel.index = if n == 0 { 0 } else { index.min(n - 1) };
        sel.key = self.rows.key(sel.index);
    }

    fn switch(&mut self, view: View) {
        self.view = view;
    }

    /// Applies a command; what it needs from outside comes back as an [`Effect`].
    pub fn apply(&mut self, cmd: Command) -> Effect {
        let cur = self.selected();
        let page = self.page.max(1);
        match cmd {
            Command::Quit => return Effect::Quit,
            Command::Back => {
                if self.help {
                    self.help = false;
                } else if self.fatal_open {
                    self.fatal_open = false;
                } else if self.detail_open {
                    self.detail_open = false;
                } else {
                    return Effect::Quit;
                }
            }
            Command::Up if self.fatal_open => {
                self.fatal_scroll = self.fatal_scroll.saturating_sub(1)
            }
            Command::Down if self.fatal_open => {
                self.fatal_scroll = self.fatal_scroll.saturating_add(1)
            }
            Command::PageUp if self.fatal_open => {
                self.fatal_scroll = self.fatal_scroll.saturating_sub(page as u16)
            }
            Command::PageDown if self.fatal_open => {
                self.fatal_scroll = self.fatal_scroll.saturating_add(page as u16)
            }
            Command::NextView => self.switch(View::ALL[(self.view.index() + 1) % VIEWS]),
            Command::PrevView => self.switch(View::ALL[(self.view.index() + VIEWS - 1) % VIEWS]),
            Command::ShowView(v) => self.switch(v),
            Command::Up => self.select(cur.saturating_sub(1)),
            Command::Down => self.select(cur + 1),
            Command::PageUp => self.select(cur.saturating_sub(page)),
            Command::PageDown => self.select(cur + page),
            Command::Home => self.select(0),
            Command::End => self.select(usize::MAX),
            Command::ToggleDetail => self.detail_open = !self.detail_open,
            Command::CycleSort => {
                let cols = self.view.columns();
                let s = &mut self.sorts[self.view.index()];
                let i = cols.iter().position(|c| *c == s.column).unwrap_or(0);
                *s = Sort {
                    column: cols[(i + 1) % cols.len()],
                    reversed: false,
                };
            }
            Command::ReverseSort => {
                let s = &mut self.sorts[self.view.index()];
                s.reversed = !s.reversed;
            }
            Command::StartFilter => self.editing = true,
            Command::FilterInput(c) => {
                self.filter.push(c);
                self.filter_changed();
            }
            Command::FilterBackspace => {
                self.filter.pop();
                self.filter_changed();
            }
            Command::FilterErase => {
                self.filter.clear();
                self.filter_changed();
            }
            Command::FilterAccept => self.editing = false,
            Command::FilterCancel => {
                self.editing = false;
                self.filter.clear();
                self.filter_changed();
            }
            Command::TogglePause => {
                self.paused = !self.paused;
                if !self.paused {
                    self.frozen = None;
                }
            }
            Command::Reset => return Effect::Reset,
            Command::Export => return Effect::Export,
            Command::ToggleHelp => self.help = !self.help,
            Command::ToggleFatal => self.fatal_open = self.fatal.is_some() && !self.fatal_open,
        }
        Effect::None
    }

    fn filter_changed(&mut self) {
        for (s, o) in self.sel.iter_mut().zip(self.offset.iter_mut()) {
            *s = Selection::default();
            *o = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::state::{Column, CALLER_COLUMNS};

    #[test]
    fn esc_closes_what_is_open_before_quitting() {
        let mut app = App::new(TargetInfo::default());
        app.apply(Command::ToggleDetail);
        app.apply(Command::ToggleHelp);
        assert_eq!(app.apply(Command::Back), Effect::None);
        assert!(!app.help && app.detail_open);
        assert_eq!(app.apply(Command::Back), Effect::None);
        assert!(!app.detail_open);
        assert_eq!(app.apply(Command::Back), Effect::Quit);
    }

    #[test]
    fn sort_cycles_through_the_columns_of_the_view() {
        let mut app = App::new(TargetInfo::default());
        let seen: Vec<Column> = (0..CALLER_COLUMNS.len())
            .map(|_| {
                app.apply(Command::CycleSort);
                app.sort(View::Callers).column
            })
            .collect();
        assert_eq!(seen.last(), Some(&Column::Total));
        assert_eq!(seen.len(), CALLER_COLUMNS.len());
        app.apply(Command::NextView);
        assert_eq!(app.view, View::Maps);
        assert_eq!(app.sort(View::Maps).column, Column::Deletes);
    }

    #[test]
    fn banner_says_how_the_target_ended() {
        assert_eq!(
            Ended::Exited(Some(ExitStatus::Code(3))).banner(),
            "process exited (status 3) · press q to quit"
        );
        assert!(Ended::Exited(Some(ExitStatus::Signal(9)))
            .banner()
            .starts_with("process killed by signal 9 (SIGKILL)"));
    }
}
