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
use crate::tui::state::{clock, group, Column, Sort};

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
            | Column::Len
            | Column::Deletes
            | Column::Clears
            | Column::Goid
            | Column::Value
    )
}

/// The columns' widths in a table `width` columns wide.
fn widths(view: View, rows: &Rows, width: u16) -> Vec<Constraint> {
    use Constraint::{Fill, Length};
    match view {
        View::Callers => vec![Length(9), Length(8), Length(6), Length(5), Fill(2), Fill(1)],
        View::Maps => vec![
            Length(14),
            Fill(1),
            Length(6),
            Length(8),
            Length(7),
            Length(6),
            Fill(1),
        ],
        View::Events => vec![Length(12), Length(6), Fill(2), Fill(2), Fill(3)],
        View::Alerts => {
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
            vec![
                Length(time as u16),
                Length(state as u16),
                Length(rule as u16),
                Fill(1),
                Length(value as u16),
            ]
        }
    }
}

/// The visible cells of row `i`.
fn cells(rows: &Rows, i: usize) -> Vec<Cell<'static>> {
    match rows {
        Rows::Callers(v) => {
            let r = &v[i];
            vec![
                right(group(r.total)),
                right(group(r.rate)),
                right(format!("{:.1}%", r.share)),
                right(r.maps_text()),
                Cell::from(r.label.to_string()),
                Cell::from(r.types_text()),
            ]
        }
        Rows::Maps(v) => {
            let r = &v[i];
            vec![
                Cell::from(format!("{:#x}", r.addr)),
                Cell::from(r.map_type.to_string()),
                right(group(r.len)),
                right(group(r.deletes)),
                right(group(r.rate)),
                right(group(r.clears)),
                Cell::from(r.top_caller.as_deref().unwrap_or("-").to_string()),
            ]
        }
        Rows::Events(v) => {
            let r = &v[i];
            let e = &r.event;
            vec![
                Cell::from(clock(e.ts_ns)),
                right(e.goid.map_or("?".into(), |g| g.to_string())),
                Cell::from(e.map_type.to_string()),
                Cell::from(r.key_text()),
                Cell::from(r.caller.to_string()),
            ]
        }
        Rows::Alerts(v) => {
            let r = &v[i];
            let n = &r.notice;
            vec![
                Cell::from(
                    clock(alerts::ts_ns(n.ts))
                        .get(..8)
                        .unwrap_or("")
                        .to_string(),
                ),
                Cell::from(r.state_text()),
                Cell::from(alerts::rule_label(n).to_string()),
                Cell::from(alerts::group_text(n)),
                right(alerts::value_text(n)),
            ]
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
    let header = Row::new(view.columns().iter().map(|&c| {
        let mut title = c.title().to_string();
        if c == sort.column {
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
            let row = Row::new(cells(&app.rows, i));
            if i == sel {
                row.style(theme.selected())
            } else if firing(&app.rows, i) {
                row.style(theme.warn())
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(rows, widths(view, &app.rows, area.width))
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
