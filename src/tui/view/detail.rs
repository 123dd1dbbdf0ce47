//! The detail pane: the selected row's stack, keys and rate.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::Theme;
use crate::tui::state::{group, Detail};
use crate::tui::view::header::sparkline;

pub(super) fn draw_detail(f: &mut Frame, detail: Option<&Detail>, theme: &Theme, area: Rect) {
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
