//! The tabs and the table of the current view.

use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::{split_line, Theme};
use crate::tui::alerts;
use crate::tui::app::{App, Rows};
use crate::tui::state::View;
use crate::tui::state::{clock, group, Column, Sort, ALERT_COLUMNS, EVENT_COLUMNS};

pub(super) fn draw_tabs(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let mut tabs = vec![Span::raw(" ")];
    let firing = app.alerts.active.len();
    for v in View::ALL {
        let mut text = format!(" {} {} ", v.index() + 1, v.title());
        if v == View::Alerts && firing > 0 {
            text.push_str(&format!("({firing}) "));
        }
        tabs.push(if v == app.view {
            Span::styled(text, theme.selected().add_modifier(Modifier::BOLD))
        } else if v == View::Alerts && firing > 0 {
            Span::styled(text, theme.warn())
        } else {
            Span::raw(text)
        });
        tabs.push(Span::raw(" "));
    }
    let sort = app.sort(app.view);
    let sort = vec![
        Span::styled("sort ", theme.dim()),
        Span::raw(format!("{} {}", sort.column.title(), arrow(sort))),
    ];
    let mut filter = Vec::new();
    if app.editing || !app.filter.is_empty() {
        filter.push(Span::styled("  filter ", theme.dim()));
        let cursor = if app.editing { "▏" } else { "" };
        filter.push(Span::styled(
            format!("/{}{cursor}", app.filter),
            theme.warn(),
        ));
    }
    let count = vec![Span::styled(
        format!("  {}/{} ", app.rows.len(), app.unfiltered),
        theme.dim(),
    )];
    // What fits beside the tabs: the filter goes last.
    let tabs = Line::from(tabs);
    let candidates = [
        [sort.clone(), filter.clone(), count.clone()].concat(),
        [filter.clone(), count].concat(),
        filter,
    ];
    let right = candidates
        .into_iter()
        .map(Line::from)
        .find(|r| tabs.width() + r.width() < area.width as usize)
        .unwrap_or_default();
    split_line(f, area, tabs, right, Style::new());
}

fn arrow(sort: Sort) -> &'static str {
    if sort.column.descending() != sort.reversed {
        "▼"
    } else {
        "▲"
    }
}

fn right(s: String) -> Cell<'static> {
    Cell::from(Line::from(s).alignment(Alignment::Right))
}

fn is_numeric(c: Column) -> bool {
    matches!(
        c,
        Column::Total
            | Column::Rate
            | Column::Share
            | Column::Maps
            | Column::Absent
            | Column::P50
            | Column::P99
            | Column::Len
            | Column::Cap
            | Column::Bytes
            | Column::Fill
            | Column::Deletes
            | Column::Clears
            | Column::Goid
            | Column::Value
    )
}

/// How wide a column of the Callers and Maps views is.
#[derive(Clone, Copy)]
enum Width {
    Fixed(u16),
    /// The view's name column: as wide as its longest value when it can.
    Longest(usize),
    /// What is left, at least this much (the last text column).
    Rest(usize),
}

/// The longest text of a column over the rows, at least `floor` (and its
/// title with the sort arrow).
fn longest<'a>(column: Column, floor: usize, texts: impl Iterator<Item = &'a str>) -> usize {
    texts
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(0)
        .max(floor)
        .max(column.title().len() + 1)
}

/// Wanted name widths count up to this much when deciding what to drop
/// (a single long name does not push the numbers out).
const LONGEST_CAP: usize = 40;

/// The columns of a Callers or Maps table `width` cells wide, with their
/// widths: every column when they fit, else the least needed go first
/// (`drop`, in order) until the names fit. The [`Width::Longest`] column
/// gets its longest value if the [`Width::Rest`] one keeps its minimum
/// (or half the room), the rest goes to the latter.
fn fit(all: &[(Column, Width)], drop: &[Column], width: u16) -> Vec<(Column, Constraint)> {
    let mut cols: Vec<(Column, Width)> = all.to_vec();
    let gaps = |cols: &[(Column, Width)]| cols.len().saturating_sub(1);
    let need = |cols: &[(Column, Width)]| -> usize {
        let sum: usize = cols
            .iter()
            .map(|(_, w)| match *w {
                Width::Fixed(n) => n as usize,
                Width::Longest(want) => want.min(LONGEST_CAP),
                Width::Rest(min) => min,
            })
            .sum();
        sum + gaps(cols)
    };
    for d in drop {
        if need(&cols) <= width as usize {
            break;
        }
        cols.retain(|(c, _)| c != d);
    }
    let fixed: usize = cols
        .iter()
        .map(|(_, w)| match *w {
            Width::Fixed(n) => n as usize,
            _ => 0,
        })
        .sum();
    let room = (width as usize).saturating_sub(fixed + gaps(&cols));
    let rest_min = cols
        .iter()
        .find_map(|(_, w)| match *w {
            Width::Rest(min) => Some(min),
            _ => None,
        })
        .unwrap_or(0);
    cols.iter()
        .map(|&(c, w)| {
            let constraint = match w {
                Width::Fixed(n) => Constraint::Length(n),
                Width::Longest(want) => {
                    let n = want.min(room.saturating_sub(rest_min).max(room / 2));
                    Constraint::Length(n as u16)
                }
                Width::Rest(_) => Constraint::Fill(1),
            };
            (c, constraint)
        })
        .collect()
}

/// The columns shown in a table `width` cells wide, with their widths.
fn layout(view: View, rows: &Rows, width: u16) -> Vec<(Column, Constraint)> {
    use Constraint::{Fill, Length};
    use Width::{Fixed, Longest, Rest};
    match (view, rows) {
        (View::Callers, Rows::Callers(v)) => {
            let caller = longest(Column::Caller, 20, v.iter().map(|r| &*r.label));
            let mut all = vec![
                (Column::Total, Fixed(9)),
                (Column::Rate, Fixed(7)),
                (Column::Share, Fixed(6)),
                (Column::Maps, Fixed(5)),
                (Column::Absent, Fixed(6)),
                (Column::P50, Fixed(5)),
                (Column::P99, Fixed(5)),
                (Column::Caller, Longest(caller)),
                (Column::Types, Rest(10)),
            ];
            // Goroutine labels, when the deletes had any: first to go.
            let labels = longest(Column::Labels, 0, v.iter().map(|r| r.labels.as_str()));
            if v.iter().any(|r| !r.labels.is_empty()) {
                all.insert(8, (Column::Labels, Fixed(labels.min(24) as u16)));
            }
            fit(&all, &[Column::Labels, Column::P50, Column::Maps], width)
        }
        (View::Maps, Rows::Maps(v)) => {
            let map_type = longest(Column::Type, 14, v.iter().map(|r| &*r.map_type));
            fit(
                &[
                    (Column::Map, Fixed(14)),
                    (Column::Type, Longest(map_type)),
                    (Column::Len, Fixed(6)),
                    (Column::Cap, Fixed(7)),
                    (Column::Bytes, Fixed(7)),
                    (Column::Fill, Fixed(6)),
                    (Column::Deletes, Fixed(8)),
                    (Column::Rate, Fixed(7)),
                    (Column::Clears, Fixed(6)),
                    (Column::Absent, Fixed(6)),
                    (Column::P50, Fixed(5)),
                    (Column::P99, Fixed(5)),
                    (Column::TopCaller, Rest(12)),
                ],
                &[
                    Column::P50,
                    Column::Clears,
                    Column::Len,
                    Column::Cap,
                    Column::Bytes,
                ],
                width,
            )
        }
        (View::Events, _) => {
            let mut cols: Vec<(Column, Constraint)> = EVENT_COLUMNS
                .iter()
                .copied()
                .zip([Length(12), Length(6), Fill(2), Fill(2), Fill(3)])
                .collect();
            if matches!(rows, Rows::Events(v) if v.iter().any(|e| e.event.labels.is_some())) {
                cols.push((Column::Labels, Fill(2)));
            }
            cols
        }
        (View::Labels, Rows::Labels(v)) => {
            let label = longest(Column::Label, 16, v.iter().map(|r| &*r.label));
            fit(
                &[
                    (Column::Total, Fixed(9)),
                    (Column::Rate, Fixed(7)),
                    (Column::Share, Fixed(6)),
                    (Column::Absent, Fixed(6)),
                    (Column::P99, Fixed(5)),
                    (Column::Label, Longest(label)),
                    (Column::TopCaller, Rest(12)),
                ],
                &[Column::P99, Column::Absent],
                width,
            )
        }
        (View::Alerts, _) => {
            // The rules in full when there is room; the group gets the rest
            // (at least 16 columns, or half).
            let longest = match rows {
                Rows::Alerts(v) => v
                    .iter()
                    .map(|l| alerts::rule_label(&l.notice).chars().count())
                    .max()
                    .unwrap_or(0),
                _ => 0,
            };
            let (time, state, value) = (11, 8, 8);
            let room = (width as usize).saturating_sub(time + state + value + 4);
            let rule = longest.max(4).min(room.saturating_sub(16).max(room / 2));
            ALERT_COLUMNS
                .iter()
                .copied()
                .zip([
                    Length(time as u16),
                    Length(state as u16),
                    Length(rule as u16),
                    Fill(1),
                    Length(value as u16),
                ])
                .collect()
        }
        // The rows are rebuilt with the view: a mismatch lasts no frame.
        (view, _) => view.columns().iter().map(|&c| (c, Fill(1))).collect(),
    }
}

/// The cell of row `i` in `column`.
fn cell(rows: &Rows, i: usize, column: Column) -> Cell<'static> {
    match rows {
        Rows::Callers(v) => {
            let r = &v[i];
            match column {
                Column::Total => right(group(r.total)),
                Column::Rate => right(group(r.rate)),
                Column::Share => right(format!("{:.1}%", r.share)),
                Column::Maps => right(r.maps_text()),
                Column::Absent => right(r.outcomes.absent_text()),
                Column::P50 => right(r.outcomes.p50_text()),
                Column::P99 => right(r.outcomes.p99_text()),
                Column::Caller => Cell::from(r.label.to_string()),
                Column::Types => Cell::from(r.types_text()),
                Column::Labels => Cell::from(r.labels.clone()),
                _ => Cell::default(),
            }
        }
        Rows::Maps(v) => {
            let r = &v[i];
            match column {
                Column::Map => Cell::from(format!("{:#x}", r.addr)),
                Column::Type => Cell::from(r.map_type.to_string()),
                Column::Len => right(group(r.len)),
                Column::Cap => right(r.cap_text()),
                Column::Bytes => right(r.bytes_text()),
                Column::Fill => right(r.fill_text()),
                Column::Deletes => right(group(r.deletes)),
                Column::Rate => right(group(r.rate)),
                Column::Clears => right(group(r.clears)),
                Column::Absent => right(r.outcomes.absent_text()),
                Column::P50 => right(r.outcomes.p50_text()),
                Column::P99 => right(r.outcomes.p99_text()),
                Column::TopCaller => Cell::from(r.top_caller.as_deref().unwrap_or("-").to_string()),
                _ => Cell::default(),
            }
        }
        Rows::Events(v) => {
            let r = &v[i];
            let e = &r.event;
            match column {
                Column::Time => Cell::from(clock(e.ts_ns)),
                Column::Goid => right(e.goid.map_or("?".into(), |g| g.to_string())),
                Column::Type => Cell::from(e.map_type.to_string()),
                Column::Key => Cell::from(r.key_text()),
                Column::Caller => Cell::from(r.caller.to_string()),
                Column::Labels => Cell::from(r.labels_text()),
                _ => Cell::default(),
            }
        }
        Rows::Labels(v) => {
            let r = &v[i];
            match column {
                Column::Total => right(group(r.total)),
                Column::Rate => right(group(r.rate)),
                Column::Share => right(format!("{:.1}%", r.share)),
                Column::Absent => right(r.outcomes.absent_text()),
                Column::P99 => right(r.outcomes.p99_text()),
                Column::Label => Cell::from(r.label.to_string()),
                Column::TopCaller => Cell::from(r.top_caller.as_deref().unwrap_or("").to_string()),
                _ => Cell::default(),
            }
        }
        Rows::Alerts(v) => {
            let r = &v[i];
            let n = &r.notice;
            match column {
                Column::Time => Cell::from(
                    clock(alerts::ts_ns(n.ts))
                        .get(..8)
                        .unwrap_or("")
                        .to_string(),
                ),
                Column::State => Cell::from(r.state_text()),
                Column::Rule => Cell::from(alerts::rule_label(n).to_string()),
                Column::Group => Cell::from(alerts::group_text(n)),
                Column::Value => right(alerts::value_text(n)),
                _ => Cell::default(),
            }
        }
    }
}

/// A row of an alert that still fires stands out.
fn firing(rows: &Rows, i: usize) -> bool {
    matches!(rows, Rows::Alerts(v) if v[i].firing)
}

pub(super) fn draw_table(f: &mut Frame, app: &mut App, theme: &Theme, area: Rect) {
    let view = app.view;
    let sort = app.sort(view);
    let columns = layout(view, &app.rows, area.width);
    let header = Row::new(columns.iter().map(|&(c, w)| {
        let mut title = c.title().to_string();
        // The arrow, unless a number's title would lose its first letter
        // for it (the tabs say the sort anyway).
        let room = match w {
            Constraint::Length(n) if is_numeric(c) => n as usize,
            _ => usize::MAX,
        };
        if c == sort.column && title.chars().count() < room {
            title.push_str(arrow(sort));
        }
        if is_numeric(c) {
            right(title)
        } else {
            Cell::from(title)
        }
    }))
    .style(theme.header_row());
    let height = area.height.saturating_sub(1) as usize;
    app.page = height.max(1);
    let n = app.rows.len();
    let sel = app.selected();
    let offset = &mut app.offset[view.index()];
    if sel < *offset {
        *offset = sel;
    } else if height > 0 && sel >= *offset + height {
        *offset = sel + 1 - height;
    }
    *offset = (*offset).min(n.saturating_sub(height));
    let first = *offset;
    let rows: Vec<Row> = (first..n.min(first + height))
        .map(|i| {
            let row = Row::new(columns.iter().map(|&(c, _)| cell(&app.rows, i, c)));
            if i == sel {
                row.style(theme.selected())
            } else if firing(&app.rows, i) {
                row.style(theme.warn())
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(rows, columns.iter().map(|&(_, w)| w))
        .header(header)
        .column_spacing(1);
    f.render_widget(table, area);
    if n == 0 && area.height > 2 {
        let msg = if !app.filter.is_empty() {
            format!("no rows match /{}", app.filter)
        } else if view == View::Alerts && !app.alerts.enabled {
            "no alert rules (--alert RULE, --alerts FILE)".to_string()
        } else if view == View::Alerts {
            "no alert has fired".to_string()
        } else if app.ended.is_some() {
            "no map deletes were seen".to_string()
        } else {
            "waiting for map deletes…".to_string()
        };
        let y = area.y + 1 + (area.height - 1) / 2;
        f.render_widget(
            Paragraph::new(msg)
                .style(theme.dim())
                .alignment(Alignment::Center),
            Rect::new(area.x, y.min(area.bottom() - 1), area.width, 1),
        );
    }
}
