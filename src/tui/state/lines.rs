//! What the views show: rows as lines, their columns and sorting, the
//! detail pane, the filter, and number formatting.

use std::cmp::Ordering;
use std::sync::Arc;

use super::format::join_types;
pub use super::format::{absent_text, clock, duration, group, quantile_text, short_func};
use super::rows::{CallerKey, MapKey, OutcomeStats, OutcomeSummary};
use crate::events::{Event, Role, Stack};

/// The views of the TUI: what each one lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Callers,
    Maps,
    Events,
    Alerts,
    /// Per goroutine label value: on whose behalf.
    Labels,
}

/// How many views there are.
pub const VIEWS: usize = View::ALL.len();

impl View {
    pub const ALL: [View; 5] = [
        View::Callers,
        View::Maps,
        View::Events,
        View::Alerts,
        View::Labels,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn title(self) -> &'static str {
        match self {
            View::Callers => "Callers",
            View::Maps => "Maps",
            View::Events => "Events",
            View::Alerts => "Alerts",
            View::Labels => "Labels",
        }
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            View::Callers => CALLER_COLUMNS,
            View::Maps => MAP_COLUMNS,
            View::Events => EVENT_COLUMNS,
            View::Alerts => ALERT_COLUMNS,
            View::Labels => LABEL_COLUMNS,
        }
    }

    pub(crate) fn default_sort(self) -> Sort {
        let column = match self {
            View::Callers | View::Labels => Column::Total,
            View::Maps => Column::Deletes,
            View::Events | View::Alerts => Column::Time,
        };
        Sort {
            column,
            reversed: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// View rows

/// A row's identity, so that the selection follows it when rows move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKey {
    Caller(CallerKey),
    Map(MapKey),
    Event(u64),
    /// An alert or resolution, by its position on the alert board.
    Alert(u64),
    /// A label value, `tenant=t1`.
    Label(Arc<str>),
}

#[derive(Debug, Clone)]
pub struct CallerLine {
    pub key: CallerKey,
    pub label: Arc<str>,
    pub total: u64,
    pub deletes: u64,
    pub clears: u64,
    pub rate: u64,
    /// Percent of all records.
    pub share: f64,
    pub maps: usize,
    pub maps_overflow: bool,
    pub types: Vec<Arc<str>>,
    pub types_overflow: bool,
    pub outcomes: OutcomeSummary,
    /// The goroutine labels of its newest deletes: `tenant=t1|t2 endpoint=/a`.
    pub labels: String,
}

impl CallerLine {
    pub fn types_text(&self) -> String {
        join_types(&self.types, self.types_overflow)
    }

    pub fn maps_text(&self) -> String {
        if self.maps_overflow {
            format!("{}+", self.maps)
        } else {
            self.maps.to_string()
        }
    }
}

#[derive(Debug, Clone)]
pub struct MapLine {
    pub addr: u64,
    pub type_hash: u64,
    pub map_type: Arc<str>,
    pub len: u64,
    pub deletes: u64,
    pub clears: u64,
    pub rate: u64,
    pub top_caller: Option<Arc<str>>,
    pub outcomes: OutcomeSummary,
    /// Its memory as last read (None: not read yet, or gone).
    pub memory: Option<crate::events::mapmem::MapSize>,
}

impl MapLine {
    pub fn cap_text(&self) -> String {
        self.memory
            .map_or("–".into(), |m| super::format::group(m.cap))
    }

    pub fn bytes_text(&self) -> String {
        self.memory.map_or("–".into(), |m| {
            crate::events::mapmem::short_bytes(m.bytes)
        })
    }

    /// `12.5%`, with a `!` when the map is bloated (large, under 10% full).
    pub fn fill_text(&self) -> String {
        self.memory.map_or("–".into(), |m| {
            let mark = if m.bloated() { "!" } else { "" };
            format!("{:.1}%{mark}", m.fill() * 100.0)
        })
    }
}

#[derive(Debug, Clone)]
pub struct LabelLine {
    /// `key=value`, or `(no labels)`.
    pub label: Arc<str>,
    pub total: u64,
    pub rate: u64,
    /// Percent of all records.
    pub share: f64,
    pub top_caller: Option<Arc<str>>,
    pub outcomes: OutcomeSummary,
}

#[derive(Debug, Clone)]
pub struct EventLine {
    pub seq: u64,
    pub event: Arc<Event>,
    pub caller: Arc<str>,
}

impl EventLine {
    pub fn labels_text(&self) -> String {
        self.event
            .labels
            .as_ref()
            .map_or(String::new(), |l| l.text())
    }

    pub fn key_text(&self) -> String {
        match self.event.kind {
            Role::Delete => format!(
                "{}{}",
                self.event.key,
                if self.event.key_truncated { "…" } else { "" }
            ),
            Role::Clear => format!("clear({})", self.event.cleared.unwrap_or(0)),
        }
    }
}

impl OutcomeSummary {
    /// Percent of the measured deletes whose key was absent; None when no
    /// delete was measured.
    pub fn absent_pct(&self) -> Option<f64> {
        super::format::absent_pct(self.removed, self.absent)
    }

    /// The ABSENT cell.
    pub fn absent_text(&self) -> String {
        absent_text(self.removed, self.absent)
    }

    pub fn p50_text(&self) -> String {
        quantile_text(self.p50)
    }

    pub fn p99_text(&self) -> String {
        quantile_text(self.p99)
    }

    /// The natural (ascending) order of `column` for two rows' outcomes;
    /// None when `column` is not one of theirs. Unmeasured rows come
    /// before any measured one (so last in the default, largest first,
    /// order).
    fn cmp_by(&self, other: &Self, column: Column) -> Option<Ordering> {
        Some(match column {
            Column::Absent => self
                .absent_pct()
                .partial_cmp(&other.absent_pct())
                .unwrap_or(Ordering::Equal),
            Column::P50 => self.p50.cmp(&other.p50),
            Column::P99 => self.p99.cmp(&other.p99),
            _ => return None,
        })
    }
}

/// What the detail pane shows for the selected row.
#[derive(Debug, Clone)]
pub struct Detail {
    pub title: String,
    /// (label, value) lines.
    pub facts: Vec<(String, String)>,
    /// Per-second counts, oldest first ([`CHART_SECS`] values; empty for an event).
    pub history: Vec<u64>,
    /// Newest first.
    pub keys: Vec<String>,
    /// A caller's or a map's outcomes and latency distribution (None for an
    /// event or an alert).
    pub outcomes: Option<OutcomeStats>,
    /// Innermost first.
    pub stack: Option<Stack>,
    /// Index of the caller frame in `stack`.
    pub caller: Option<usize>,
}

// ---------------------------------------------------------------------------------------------
// Sorting

/// A sortable column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Total,
    Rate,
    Share,
    Maps,
    /// Percent of the measured deletes whose key was absent.
    Absent,
    /// Median duration (bucket bound) of the calls timed.
    P50,
    /// 99th percentile duration (bucket bound).
    P99,
    Caller,
    Types,
    Map,
    Type,
    Len,
    /// A map's capacity in slots, its bytes and its fill (len / cap).
    Cap,
    Bytes,
    Fill,
    Deletes,
    Clears,
    TopCaller,
    Time,
    Goid,
    Key,
    /// Goroutine labels.
    Labels,
    /// One goroutine label value (`tenant=t1`).
    Label,
    State,
    Rule,
    Group,
    Value,
}

pub const CALLER_COLUMNS: &[Column] = &[
    Column::Total,
    Column::Rate,
    Column::Share,
    Column::Maps,
    Column::Absent,
    Column::P50,
    Column::P99,
    Column::Caller,
    Column::Types,
];
pub const MAP_COLUMNS: &[Column] = &[
    Column::Map,
    Column::Type,
    Column::Len,
    Column::Cap,
    Column::Bytes,
    Column::Fill,
    Column::Deletes,
    Column::Rate,
    Column::Clears,
    Column::Absent,
    Column::P50,
    Column::P99,
    Column::TopCaller,
];
pub const LABEL_COLUMNS: &[Column] = &[
    Column::Total,
    Column::Rate,
    Column::Share,
    Column::Absent,
    Column::P99,
    Column::Label,
    Column::TopCaller,
];
pub const EVENT_COLUMNS: &[Column] = &[
    Column::Time,
    Column::Goid,
    Column::Type,
    Column::Key,
    Column::Caller,
];
pub const ALERT_COLUMNS: &[Column] = &[
    Column::Time,
    Column::State,
    Column::Rule,
    Column::Group,
    Column::Value,
];

impl Column {
    pub fn title(self) -> &'static str {
        match self {
            Column::Total => "TOTAL",
            Column::Rate => "RATE/s",
            Column::Share => "SHARE",
            Column::Maps => "MAPS",
            Column::Absent => "ABSENT",
            Column::P50 => "P50",
            Column::P99 => "P99",
            Column::Caller => "CALLER",
            Column::Types => "MAP TYPES",
            Column::Map => "MAP",
            Column::Type => "MAP TYPE",
            Column::Len => "LEN",
            Column::Cap => "CAP",
            Column::Bytes => "BYTES",
            Column::Fill => "FILL",
            Column::Deletes => "DELETES",
            Column::Clears => "CLEARS",
            Column::TopCaller => "TOP CALLER",
            Column::Time => "TIME (UTC)",
            Column::Goid => "GOID",
            Column::Key => "KEY",
            Column::Labels => "LABELS",
            Column::Label => "LABEL",
            Column::State => "STATE",
            Column::Rule => "RULE",
            Column::Group => "GROUP",
            Column::Value => "VALUE",
        }
    }

    /// Numbers sort largest first, names A to Z, time newest first.
    pub fn descending(self) -> bool {
        !matches!(
            self,
            Column::Caller
                | Column::Types
                | Column::Map
                | Column::Type
                | Column::TopCaller
                | Column::Key
                | Column::Labels
                | Column::Label
                | Column::State
                | Column::Rule
                | Column::Group
        )
    }
}

/// A sort: the column and whether its natural order is reversed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub reversed: bool,
}

impl Sort {
    /// `natural` (ascending) turned into this sort's order.
    pub fn order(self, natural: Ordering) -> Ordering {
        let o = if self.column.descending() {
            natural.reverse()
        } else {
            natural
        };
        if self.reversed {
            o.reverse()
        } else {
            o
        }
    }
}

pub fn sort_callers(lines: &mut [CallerLine], sort: Sort) {
    lines.sort_by(|a, b| {
        let natural = match sort.column {
            Column::Rate => a.rate.cmp(&b.rate),
            Column::Maps => a.maps.cmp(&b.maps),
            Column::Caller => a.label.cmp(&b.label),
            Column::Types => a.types_text().cmp(&b.types_text()),
            c => a
                .outcomes
                .cmp_by(&b.outcomes, c)
                .unwrap_or_else(|| a.total.cmp(&b.total)),
        };
        sort.order(natural)
            .then_with(|| b.total.cmp(&a.total))
            .then_with(|| a.label.cmp(&b.label))
            .then_with(|| a.key.line.cmp(&b.key.line))
    });
}

pub fn sort_maps(lines: &mut [MapLine], sort: Sort) {
    let memory_column = matches!(sort.column, Column::Cap | Column::Bytes | Column::Fill);
    lines.sort_by(|a, b| {
        // By a memory column, the maps not read (yet, or gone) go last either way.
        if memory_column && a.memory.is_some() != b.memory.is_some() {
            return b.memory.is_some().cmp(&a.memory.is_some());
        }
        let natural = match sort.column {
            Column::Map => a.addr.cmp(&b.addr),
            Column::Type => a.map_type.cmp(&b.map_type),
            Column::Len => a.len.cmp(&b.len),
            Column::Cap => a.memory.map(|m| m.cap).cmp(&b.memory.map(|m| m.cap)),
            Column::Bytes => a.memory.map(|m| m.bytes).cmp(&b.memory.map(|m| m.bytes)),
            // Emptiest first (the largest bytes first among equals): the bloated ones on top.
            Column::Fill => b
                .memory
                .map(|m| m.fill())
                .partial_cmp(&a.memory.map(|m| m.fill()))
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.memory.map(|m| m.bytes).cmp(&b.memory.map(|m| m.bytes))),
            Column::Rate => a.rate.cmp(&b.rate),
            Column::Clears => a.clears.cmp(&b.clears),
            Column::TopCaller => a.top_caller.cmp(&b.top_caller),
            c => a
                .outcomes
                .cmp_by(&b.outcomes, c)
                .unwrap_or_else(|| a.deletes.cmp(&b.deletes)),
        };
        sort.order(natural)
            .then_with(|| (b.deletes + b.clears).cmp(&(a.deletes + a.clears)))
            .then_with(|| a.addr.cmp(&b.addr))
            .then_with(|| a.map_type.cmp(&b.map_type))
    });
}

pub fn sort_labels(lines: &mut [LabelLine], sort: Sort) {
    lines.sort_by(|a, b| {
        let natural = match sort.column {
            Column::Rate => a.rate.cmp(&b.rate),
            Column::Label => a.label.cmp(&b.label),
            Column::TopCaller => a.top_caller.cmp(&b.top_caller),
            c => a
                .outcomes
                .cmp_by(&b.outcomes, c)
                .unwrap_or_else(|| a.total.cmp(&b.total)),
        };
        sort.order(natural)
            .then_with(|| b.total.cmp(&a.total))
            .then_with(|| a.label.cmp(&b.label))
    });
}

pub fn sort_events(lines: &mut [EventLine], sort: Sort) {
    lines.sort_by(|a, b| {
        let natural = match sort.column {
            Column::Goid => a.event.goid.cmp(&b.event.goid),
            Column::Type => a.event.map_type.cmp(&b.event.map_type),
            Column::Key => a.key_text().cmp(&b.key_text()),
            Column::Caller => a.caller.cmp(&b.caller),
            _ => a.seq.cmp(&b.seq),
        };
        sort.order(natural).then_with(|| b.seq.cmp(&a.seq))
    });
}

// ---------------------------------------------------------------------------------------------
// Filtering

/// A substring filter: case-insensitive unless it has an upper-case letter
/// (smart case, as in vim and ripgrep).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    needle: String,
    case_sensitive: bool,
}

impl Filter {
    pub fn new(text: &str) -> Self {
        Filter {
            needle: text.to_string(),
            case_sensitive: text.chars().any(char::is_uppercase),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needle.is_empty()
    }

    pub fn matches(&self, hay: &str) -> bool {
        if self.needle.is_empty() {
            return true;
        }
        if self.case_sensitive || !self.needle.is_ascii() {
            return hay.contains(&self.needle);
        }
        let (h, n) = (hay.as_bytes(), self.needle.as_bytes());
        n.len() <= h.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
    }
}
