//! `mdt flame --from FILE`: a profile from a saved folded file or a saved
//! `mdt trace --json` stream, without a live process.

use anyhow::{bail, Context, Result};
use std::borrow::Cow;

use serde::Deserialize;

use super::{FlameFrame, FlameStack, Profile, RawStack, Shape};
use crate::events::Stack;
use crate::output::json::Record;

/// What a JSON line is, before it is read whole.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

/// The summary fields a saved trace is scaled by.
#[derive(Deserialize)]
struct SummaryLine {
    deletes: Option<u64>,
    clears: Option<u64>,
    sample_rate: Option<f64>,
    filtered_out: Option<u64>,
    duration: Option<f64>,
}

pub fn read(path: &std::path::Path, shape: &Shape) -> Result<Profile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let first = text.lines().find(|l| !l.trim().is_empty());
    match first {
        None => bail!("{} is empty: nothing to draw", path.display()),
        Some(l) if l.trim_start().starts_with('{') => from_json(&text, shape)
            .with_context(|| format!("{}: not a valid `mdt trace --json` stream", path.display())),
        Some(_) => {
            if shape.group_by != super::GroupBy::None || shape.runtime_frames {
                bail!(
                    "{} is a folded file, drawn as it was saved: --group-by and --runtime-frames need a saved `mdt trace --json` stream",
                    path.display()
                );
            }
            from_folded(&text)
                .with_context(|| format!("{}: not a valid folded file", path.display()))
        }
    }
}

fn from_folded(text: &str) -> Result<Profile> {
    let mut profile = Profile::default();
    for (names, count) in super::folded::parse(text)? {
        let frames = names
            .iter()
            .map(|n| {
                let (name, inlined) = match n.strip_suffix("_[i]") {
                    Some(base) => (base, true),
                    None => (n.as_str(), false),
                };
                FlameFrame {
                    inlined,
                    ..FlameFrame::synthetic(name)
                }
            })
            .collect();
        profile.stacks.push(FlameStack {
            frames,
            count,
            map_type: None,
        });
    }
    Ok(profile)
}

fn from_json(text: &str, shape: &Shape) -> Result<Profile> {
    let mut profile = Profile::default();
    let mut exact = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("line {}", n + 1);
        let kind: Kind = serde_json::from_str(line).with_context(at)?;
        match &*kind.kind {
            "delete" | "clear" => {
                let r: Record = serde_json::from_str(line).with_context(at)?;
                let frames = Stack::from_frames(r.stack);
                profile.add(
                    RawStack {
                        func: &r.func,
                        frames: &frames,
                        map_type: &r.map_type,
                        key_type: &r.key_type,
                        goid: r.goid,
                        count: 1,
                    },
                    shape,
                );
            }
            "summary" => {
                let r: SummaryLine = serde_json::from_str(line).with_context(at)?;
                // Only an unfiltered, sampled run can be scaled to the totals.
                if r.filtered_out == Some(0) {
                    exact = Some((
                        r.deletes.unwrap_or(0) + r.clears.unwrap_or(0),
                        r.sample_rate.unwrap_or(1.0),
                    ));
                }
                profile.duration_ns = (r.duration.unwrap_or(0.0) * 1e9) as u64;
            }
            _ => {}
        }
    }
    if profile.stacks.is_empty() && exact.is_none() {
        bail!("no delete or clear records");
    }
    if let Some((total, rate)) = exact {
        if rate < 1.0 {
            profile.finish(1);
            profile.scale_to(total, rate);
        }
    }
    Ok(profile)
}
