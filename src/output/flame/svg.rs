//! The SVG flame graph, drawn by inferno.

use anyhow::{Context, Result};
use inferno::flamegraph::{self, color::BasicPalette, color::Palette, Direction};

use super::{folded, Profile};

#[derive(Debug, Clone, Default)]
pub struct SvgOptions {
    pub title: Option<String>,
    /// Icicle: callers at the bottom, the deletes on top.
    pub inverted: bool,
}

pub fn write(profile: &Profile, opts: &SvgOptions) -> Result<Vec<u8>> {
    let mut o = flamegraph::Options::default();
    o.colors = Palette::Basic(BasicPalette::Hot);
    o.count_name = "deletes".into();
    o.name_type = "Function:".into();
    o.title = opts
        .title
        .clone()
        .unwrap_or_else(|| "Go map deletes".into());
    if let Some(rate) = profile.scaled_from {
        o.subtitle = Some(format!(
            "counts scaled up from a {:.3}% sample to the exact total of {}",
            rate * 100.0,
            profile.total()
        ));
    }
    if opts.inverted {
        o.direction = Direction::Inverted;
        o.reverse_stack_order = true;
    }
    o.deterministic = true;
    let text = folded::write(profile);
    let mut out = Vec::new();
    if text.is_empty() {
        // inferno refuses an empty profile; an empty graph still says so.
        o.subtitle = Some("no deletes were seen".into());
        flamegraph::from_lines(&mut o, ["(no deletes) 0"], &mut out).ok();
        if out.is_empty() {
            out = format!(
                "<?xml version=\"1.0\" standalone=\"no\"?><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\"><text x=\"10\" y=\"25\">{}: no deletes were seen</text></svg>\n",
                o.title
            )
            .into_bytes();
        }
        return Ok(out);
    }
    flamegraph::from_lines(&mut o, text.lines(), &mut out).context("drawing the flame graph")?;
    Ok(out)
}
