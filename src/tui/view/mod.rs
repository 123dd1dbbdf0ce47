//! Drawing: a function of the [`App`] (and a [`Theme`]) into a ratatui
//! frame. ratatui diffs each frame against the last one, so only changed
//! cells reach the terminal (no flicker).

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

mod detail;
mod footer;
mod header;
mod table;

use self::detail::draw_detail;
pub use self::footer::KEYS;
use self::footer::{draw_footer, draw_help};
use self::header::draw_header;
pub use self::header::sparkline;
use self::table::{draw_table, draw_tabs};
use super::alerts;
use super::app::App;

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
    let alert =
        fatal_banner(app).or_else(|| alerts::banner(&app.alerts.active, area.width as usize));
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
    if let (true, Some(fatal)) = (app.fatal_open, &app.fatal) {
        draw_fatal(f, fatal, app.fatal_scroll, theme, body);
    }
    if app.help {
        draw_help(f, theme, area);
    }
}

/// The crash banner: what the target died of, and where.
fn fatal_banner(app: &App) -> Option<String> {
    let f = app.fatal.as_ref()?;
    let goid = f.goid.map_or("?".into(), |g| g.to_string());
    let at = crate::events::frame_label(f.caller.and_then(|i| f.stack.get(i)));
    Some(format!(
        " FATAL fatal error: {} · goroutine {goid} at {at} · F: crash report ",
        f.message
    ))
}

/// The crash view: the fatal record's report, over the table.
fn draw_fatal(
    f: &mut Frame,
    fatal: &crate::events::fatal::Fatal,
    scroll: u16,
    theme: &Theme,
    area: Rect,
) {
    let lines: Vec<Line> = fatal.report_lines().into_iter().map(Line::raw).collect();
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).scroll((scroll, 0)).block(
            Block::bordered()
                .title(Span::styled(
                    " crash report (↑ ↓ PgUp PgDn scroll, F or Esc close) ",
                    theme.strong(),
                ))
                .border_style(theme.alert()),
        ),
        area,
    );
}

/// Renders `left` and `right` on one line, `right` flush right (dropped
/// when there is no room for both).
pub(super) fn split_line(f: &mut Frame, area: Rect, left: Line, right: Line, style: Style) {
    let rw = right.width() as u16;
    if rw > 0 && left.width() as u16 + rw < area.width {
        let [l, r] = Layout::horizontal([Constraint::Min(0), Constraint::Length(rw)]).areas(area);
        f.render_widget(Paragraph::new(left).style(style), l);
        f.render_widget(Paragraph::new(right).style(style), r);
    } else {
        f.render_widget(Paragraph::new(left).style(style), area);
    }
}
