//! Drawing: a function of the [`App`] (and a [`Theme`]) into a ratatui
//! frame. ratatui diffs each frame against the last one, so only changed
//! cells reach the terminal (no flicker).

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table};
use ratatui::Frame;

use super::alerts;
use super::app::{App, Rows};
use super::input::Mode;
use super::state::View;
use super::state::{clock, group, Column, Detail, Sort};

/// Styles, with or without colour (`NO_COLOR`, <https://no-color.org>).
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to a non-empty value.
    pub fn from_env() -> Self {
        Theme {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn pick(&self, color: Style, mono: Style) -> Style {
        if self.color {
            color
        } else {
            mono
        }
    }

    fn bar(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Black).bg(Color::Cyan),
            Style::new().add_modifier(Modifier::REVERSED),
        )
    }

    fn accent(&self) -> Style {
        self.pick(Style::new().fg(Color::Cyan), Style::new())
    }

    fn strong(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    fn warn(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    fn banner(&self) -> Style {
        self.pick(
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        )
    }

    /// The alert banner: the warning colour, as the status banner.
    fn alert(&self) -> Style {
        self.banner()
    }

    fn header_row(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Black).bg(Color::Green),
            Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        )
    }

    fn selected(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Black).bg(Color::Cyan),
            Style::new().add_modifier(Modifier::REVERSED),
        )
    }

    fn dim(&self) -> Style {
        self.pick(
            Style::new().fg(Color::DarkGray),
            Style::new().add_modifier(Modifier::DIM),
        )
    }

    fn key(&self) -> Style {
        self.pick(
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }
}

/// Draws the whole screen.
pub fn draw(f: &mut Frame, app: &mut App, theme: &Theme) {
    let area = f.area();
    let alert = alerts::banner(&app.alerts.active, area.width as usize);
    let banner = u16::from(app.ended.is_some());
    let [header, alert_area, banner_area, tabs, body, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(u16::from(alert.is_some())),
        Constraint::Length(banner),
        Constraint::Length(1),
        Constraint::Min(2),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(f, app, theme, header);
    if let Some(text) = alert {
        f.render_widget(Paragraph::new(text).style(theme.alert()), alert_area);
    }
    if let Some(ended) = &app.ended {
        let text = format!(" {} ", ended.banner());
        f.render_widget(
            Paragraph::new(text)
                .style(theme.banner())
                .alignment(Alignment::Center),
            banner_area,
        );
    }
    draw_tabs(f, app, theme, tabs);
    if app.detail_open {
        let wide = body.width >= 160;
        let [table, detail] = if wide {
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body)
        } else {
            Layout::vertical([Constraint::Min(5), Constraint::Percentage(65)]).areas(body)
        };
        draw_table(f, app, theme, table);
        draw_detail(f, app.detail.as_ref(), theme, detail);
    } else {
        draw_table(f, app, theme, body);
    }
    draw_footer(f, app, theme, footer);
    if app.help {
        draw_help(f, theme, area);
    }
}

// ---------------------------------------------------------------------------------------------
// Header

fn hms(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Renders `left` and `right` on one line, `right` flush right (dropped
/// when there is no room for both).
fn split_line(f: &mut Frame, area: Rect, left: Line, right: Line, style: Style) {
    let rw = right.width() as u16;
    if rw > 0 && left.width() as u16 + rw < area.width {
        let [l, r] = Layout::horizontal([Constraint::Min(0), Constraint::Length(rw)]).areas(area);
        f.render_widget(Paragraph::new(left).style(style), l);
        f.render_widget(Paragraph::new(right).style(style), r);
    } else {
        f.render_widget(Paragraph::new(left).style(style), area);
    }
}

fn draw_header(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let [l1, l2, l3] = Layout::vertical([Constraint::Length(1); 3]).areas(area);
    let info = &app.info;
    let until = app.ended_ns.unwrap_or(app.now_ns).min(app.now_ns);
    let attached = hms(until.saturating_sub(info.attached_ns));
    let fixed = format!(
        " mdt · pid {} ·  · {} · {} maps · attached {attached} ",
        info.pid, info.go_version, info.map_impl
    );
    // The full path when it fits, else the file name.
    let room = (area.width as usize).saturating_sub(fixed.chars().count());
    let binary = if info.binary.chars().count() <= room {
        info.binary.clone()
    } else {
        info.binary
            .rsplit('/')
            .next()
            .unwrap_or(&info.binary)
            .to_string()
    };
    let title = Line::from(vec![
        Span::styled(" mdt", theme.strong()),
        Span::raw(format!(
            " · pid {} · {binary} · {} · {} maps · attached {attached} ",
            info.pid, info.go_version, info.map_impl
        )),
    ]);
    f.render_widget(Paragraph::new(title).style(theme.bar()), l1);

    let t = &app.totals;
    let mut counts = vec![
        Span::raw(" deletes "),
        Span::styled(group(t.deletes), theme.strong()),
        Span::raw("  clears "),
        Span::styled(group(t.clears), theme.strong()),
        Span::raw("  rate "),
        Span::styled(format!("{}/s", group(app.history.rate())), theme.strong()),
        Span::raw("  lost "),
        Span::styled(
            group(t.lost),
            if t.lost > 0 {
                theme.warn()
            } else {
                theme.strong()
            },
        ),
    ];
    let rate = info.sample_rate;
    if rate < 1.0 {
        counts.push(Span::raw("  sampling "));
        counts.push(Span::styled(format!("{}%", percent(rate)), theme.warn()));
    } else {
        counts.push(Span::raw("  sampling 100%"));
    }
    if !app.exact {
        counts.push(Span::styled("  (records)", theme.dim()));
    }
    let mut right = Vec::new();
    if app.paused {
        right.push(Span::styled(" PAUSED ", theme.banner()));
    }
    split_line(f, l2, Line::from(counts), Line::from(right), Style::new());

    let series = app.history.series();
    let label = " rate/s, last 60s ";
    let peak = series.iter().copied().max().unwrap_or(0);
    let peak_text = format!(" peak {}/s", group(peak));
    let mut caps = Vec::new();
    let ev = app.evicted;
    for (name, n) in [
        ("callers", ev.callers),
        ("maps", ev.maps),
        ("stacks", ev.stacks),
    ] {
        if n > 0 {
            caps.push(format!("{name} ({} rows dropped)", group(n)));
        }
    }
    let cap_text = if caps.is_empty() {
        String::new()
    } else {
        format!(" capped: {} ", caps.join(", "))
    };
    let room = (area.width as usize)
        .saturating_sub(label.len() + peak_text.len() + cap_text.chars().count() + 1);
    let width = room.min(series.len());
    let spark = sparkline(&series[series.len() - width..]);
    let left = Line::from(vec![
        Span::styled(label, theme.dim()),
        Span::styled(spark, theme.accent()),
        Span::styled(peak_text, theme.dim()),
    ]);
    split_line(
        f,
        l3,
        left,
        Line::from(Span::styled(cap_text, theme.warn())),
        Style::new(),
    );
}

fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    if p >= 1.0 && p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// One character per value, scaled to the largest; zero is blank, any
/// other value shows at least the lowest bar.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if v == 0 || max == 0 {
                ' '
            } else {
                let level = ((v as u128 * 8).div_ceil(max as u128)).clamp(1, 8) as usize;
                BARS[level - 1]
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tabs, table

fn draw_tabs(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
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

fn draw_table(f: &mut Frame, app: &mut App, theme: &Theme, area: Rect) {
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

// ---------------------------------------------------------------------------------------------
// Detail

fn draw_detail(f: &mut Frame, detail: Option<&Detail>, theme: &Theme, area: Rect) {
    let Some(d) = detail else {
        let block = Block::bordered()
            .title(" detail ")
            .border_style(theme.dim());
        f.render_widget(Paragraph::new(" nothing selected").block(block), area);
        return;
    };
    let mut block = Block::bordered()
        .title(Span::styled(format!(" {} ", d.title), theme.strong()))
        .border_style(theme.accent());
    if d.stack.is_some() {
        block = block.title_bottom(
            Line::from(Span::styled(
                " stack of the latest event, innermost first; ▶ caller ",
                theme.dim(),
            ))
            .right_aligned(),
        );
    }
    let mut lines: Vec<Line> = Vec::new();
    let label = |s: &str| Span::styled(format!("{s:<8}"), theme.dim());
    for (k, v) in &d.facts {
        lines.push(Line::from(vec![label(k), Span::raw(v.clone())]));
    }
    if !d.history.is_empty() {
        let inner = area.width.saturating_sub(2 + 8 + 12) as usize;
        let h = &d.history[d.history.len() - inner.min(d.history.len())..];
        let peak = h.iter().copied().max().unwrap_or(0);
        lines.push(Line::from(vec![
            label("rate/s"),
            Span::styled(sparkline(h), theme.accent()),
            Span::styled(format!(" peak {}", group(peak)), theme.dim()),
        ]));
    }
    if !d.keys.is_empty() {
        lines.push(Line::from(vec![
            label("keys"),
            Span::raw(d.keys.join("  ")),
        ]));
    }
    if let Some(stack) = &d.stack {
        // When the stack does not fit, start just inside the caller.
        let room = (area.height.saturating_sub(2) as usize).saturating_sub(lines.len());
        let mut first = 0;
        if stack.len() > room && room > 1 {
            first = d
                .caller
                .unwrap_or(0)
                .saturating_sub(1)
                .min(stack.len().saturating_sub(room - 1));
        }
        if first > 0 {
            lines.push(Line::from(Span::styled(
                format!("  ⋮ {first} inner frames"),
                theme.dim(),
            )));
        }
        for (i, fr) in stack.iter().enumerate().skip(first) {
            let is_caller = d.caller == Some(i);
            let marker = if is_caller { "▶ " } else { "  " };
            let mut spans = vec![
                Span::styled(marker, theme.warn()),
                Span::styled(
                    fr.func.to_string(),
                    if is_caller {
                        theme.strong()
                    } else {
                        Style::new()
                    },
                ),
            ];
            if fr.inlined {
                spans.push(Span::styled(" [inlined]", theme.accent()));
            }
            if fr.is_named() {
                spans.push(Span::styled(
                    format!("  {}:{}", fr.file, fr.line),
                    theme.dim(),
                ));
            }
            lines.push(Line::from(spans));
        }
    }
    f.render_widget(Paragraph::new(lines).block(block), area);
}

// ---------------------------------------------------------------------------------------------
// Footer, help

/// (key, what it does, priority: the lowest go first when space is short).
type Hint = (&'static str, &'static str, u8);

fn hints(app: &App) -> Vec<Hint> {
    match app.mode() {
        Mode::Help => vec![("q ? Esc", "close help", 9)],
        Mode::Editing => vec![
            ("type", "to filter on function, file, map type, key", 9),
            ("⏎", "keep", 8),
            ("Esc", "clear", 8),
            ("^U", "erase", 2),
            ("↑↓", "move", 1),
        ],
        Mode::Normal => {
            let mut h = vec![
                ("q", "quit", 9),
                ("Tab", "view", 6),
                ("↑↓", "move", 1),
                ("⏎", if app.detail_open { "close" } else { "detail" }, 8),
                ("s", "sort", 7),
                ("r", "reverse", 3),
                ("/", "filter", 8),
                ("␣", if app.paused { "resume" } else { "pause" }, 5),
                ("c", "reset", 2),
                ("e", "export", 4),
                ("?", "help", 9),
            ];
            if app.ended.is_some() {
                h.retain(|(k, _, _)| *k != "␣");
            }
            if app.alerts.enabled && app.view != View::Alerts {
                let firing = !app.alerts.active.is_empty();
                h.insert(2, ("4", "alerts", if firing { 8 } else { 3 }));
            }
            h
        }
    }
}

fn draw_footer(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    if let Some(msg) = app.status() {
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::raw(" "),
                Span::styled(msg.to_string(), theme.warn()),
            ])),
            area,
        );
        return;
    }
    let width = |h: &Hint| h.0.chars().count() + h.1.chars().count() + 3;
    let mut shown = hints(app);
    while shown.len() > 1 && 1 + shown.iter().map(width).sum::<usize>() > area.width as usize + 2 {
        let lowest = (0..shown.len())
            .min_by_key(|&i| (shown[i].2, usize::MAX - i))
            .unwrap_or(0);
        shown.remove(lowest);
    }
    let mut spans = vec![Span::raw(" ")];
    for (i, h) in shown.iter().enumerate() {
        spans.push(Span::styled(h.0, theme.key()));
        let sep = if i + 1 == shown.len() { "" } else { "  " };
        spans.push(Span::raw(format!(" {}{sep}", h.1)));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Every key, for the `?` overlay and the README.
pub const KEYS: &[(&str, &str)] = &[
    ("q  Esc  Ctrl-C", "quit (Esc first closes help / detail)"),
    (
        "Tab  Shift-Tab  1-4",
        "switch view: Callers, Maps, Events, Alerts",
    ),
    ("↑ ↓  j k", "move the selection"),
    ("PgUp PgDn  Home End", "move by a page, to the top / bottom"),
    ("Enter", "open / close the detail of the selected row"),
    ("s", "sort by the next column"),
    ("r", "reverse the sort"),
    ("/", "filter rows (function, file, map type, key)"),
    ("space", "pause the display (counting continues)"),
    ("c", "reset the counters"),
    ("e", "export folded stacks + JSON aggregates"),
    ("?", "this help"),
];

fn draw_help(f: &mut Frame, theme: &Theme, area: Rect) {
    let w = 70.min(area.width);
    let h = (KEYS.len() as u16 + 6).min(area.height);
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, d)| {
            Line::from(vec![
                Span::styled(format!(" {k:<22}"), theme.key()),
                Span::raw(d.to_string()),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::from(Span::styled(
        " Totals are exact (BPF counters); rows count the records. Rates",
        theme.dim(),
    )));
    lines.push(Line::from(Span::styled(
        " are per second, over the last complete second. Times are UTC.",
        theme.dim(),
    )));
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(Span::styled(" mdt keys ", theme.strong()))
                .border_style(theme.accent()),
        ),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_peak_and_leaves_zero_blank() {
        assert_eq!(sparkline(&[0, 1, 4, 8]), " ▁▄█");
        assert_eq!(sparkline(&[0, 0]), "  ");
        assert_eq!(sparkline(&[1, 1000]), "▁█");
    }

    #[test]
    fn sampling_percent() {
        assert_eq!(percent(0.01), "1");
        assert_eq!(percent(0.005), "0.5");
        assert_eq!(percent(0.25), "25");
    }
}
