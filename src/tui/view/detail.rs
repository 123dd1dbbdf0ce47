//! The detail pane: the selected row's stack, keys and rate.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::Theme;
use crate::probes::LATENCY_BOUNDS_NS;
use crate::tui::state::{absent_text, duration, group, Detail, OutcomeStats};
use crate::tui::view::header::sparkline;

/// What the detail says of a row whose calls were never timed (after the
/// `latency` label: `latency not measured (run with …)`).
const NOT_MEASURED: [&str; 2] = [
    "not measured",
    "(run with --latency, or wait for a --latency-sample window)",
];

/// `≤2µs` (a bucket's upper bound), `>1s` past the last one.
fn bound(q: Option<u64>) -> String {
    match q {
        Some(u64::MAX) => duration(u64::MAX),
        Some(ns) => format!("≤{}", duration(ns)),
        None => "–".into(),
    }
}

/// The latency and outcome lines of a caller or a map: the quantiles, the
/// distribution over the non-empty range of buckets (two cells a bucket,
/// its bounds either side) and what the deletes found. `width`: inside
/// the border.
fn outcome_lines<'a>(
    o: &OutcomeStats,
    theme: &Theme,
    width: usize,
    label: &dyn Fn(&str) -> Span<'a>,
) -> Vec<Line<'a>> {
    let h = &o.latency;
    let timed = h.count();
    if timed == 0 {
        let [what, why] = NOT_MEASURED;
        let one = format!("{what} {why}");
        // On two lines when one does not fit.
        return if 8 + one.chars().count() <= width {
            vec![Line::from(vec![
                label("latency"),
                Span::styled(one, theme.dim()),
            ])]
        } else {
            vec![
                Line::from(vec![label("latency"), Span::styled(what, theme.dim())]),
                Line::from(vec![label(""), Span::styled(why, theme.dim())]),
            ]
        };
    }
    let q = |p| bound(h.quantile_bound(p));
    let mut lines = vec![Line::from(vec![
        label("latency"),
        Span::raw(format!(
            "{} measured · p50 {} · p90 {} · p99 {}",
            group(timed),
            q(50_000),
            q(90_000),
            q(99_000)
        )),
    ])];
    let first = h.buckets.iter().position(|&n| n > 0).unwrap_or(0);
    let last = h.buckets.iter().rposition(|&n| n > 0).unwrap_or(0);
    let range = &h.buckets[first..=last];
    let lo = match first {
        0 => "0".to_string(),
        i => duration(LATENCY_BOUNDS_NS[i - 1]),
    };
    let hi = LATENCY_BOUNDS_NS
        .get(last)
        .map_or_else(|| "∞".to_string(), |&b| duration(b));
    let bars: String = sparkline(range).chars().flat_map(|c| [c, c]).collect();
    let peak = range.iter().copied().max().unwrap_or(0);
    lines.push(Line::from(vec![
        label(""),
        Span::styled(format!("{lo} "), theme.dim()),
        Span::styled(bars, theme.accent()),
        Span::styled(format!(" {hi}  peak {}", group(peak)), theme.dim()),
    ]));
    if o.removed + o.absent > 0 {
        lines.push(Line::from(vec![
            label("outcome"),
            Span::raw(format!(
                "{} removed · {} key absent ({})",
                group(o.removed),
                group(o.absent),
                absent_text(o.removed, o.absent)
            )),
        ]));
    }
    lines
}

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
    if let Some(o) = &d.outcomes {
        let width = area.width.saturating_sub(2) as usize;
        lines.extend(outcome_lines(o, theme, width, &label));
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
