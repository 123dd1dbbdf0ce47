//! The footer with the keys of the current mode, and the help.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::Theme;
use crate::tui::app::App;
use crate::tui::input::Mode;
use crate::tui::state::View;

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

pub(super) fn draw_footer(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
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
        "Tab  Shift-Tab  1-5",
        "switch view: Callers, Maps, Events, Alerts, Labels",
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
    (
        "F",
        "the crash report, once the target died of a fatal error",
    ),
    ("?", "this help"),
];

pub(super) fn draw_help(f: &mut Frame, theme: &Theme, area: Rect) {
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
