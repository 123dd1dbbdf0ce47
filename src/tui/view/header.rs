//! The header: the target, the exact totals, the rate and its chart.

use crate::events::mapmem::short_bytes;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{split_line, Theme};
use crate::tui::app::App;
use crate::tui::state::group;

fn hms(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

pub(super) fn draw_header(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let [l1, l2, l3] = Layout::vertical([Constraint::Length(1); 3]).areas(area);
    let info = &app.info;
    let until = app.ended_ns.unwrap_or(app.now_ns).min(app.now_ns);
    let attached = hms(until.saturating_sub(info.attached_ns));
    let container = info
        .container
        .as_ref()
        .map_or(String::new(), |c| format!(" · container {c}"));
    let fixed = format!(
        " mdt · pid {}{container} ·  · {} · {} maps · attached {attached} ",
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
            " · pid {}{container} · {binary} · {} · {} maps · attached {attached} ",
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
    if app.map_bytes > 0 {
        counts.push(Span::raw("  maps hold "));
        counts.push(Span::styled(short_bytes(app.map_bytes), theme.strong()));
    }
    let rate = info.sample_rate;
    if rate < 1.0 {
        counts.push(Span::raw("  sampling "));
        counts.push(Span::styled(format!("{}%", percent(rate)), theme.warn()));
    } else {
        counts.push(Span::raw("  sampling 100%"));
    }
    match info.latency {
        Some(share) if share >= 1.0 => counts.push(Span::raw("  latency on")),
        Some(share) => counts.push(Span::styled(
            format!("  latency {}% of the time", percent(share)),
            theme.dim(),
        )),
        None => {}
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
        ("labels", ev.labels),
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
