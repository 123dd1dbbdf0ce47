//! `mdt flame --from FILE`: a profile from a saved folded file or a saved
//! `mdt trace --json` stream, without a live process. By latency
//! ([`Weight::Latency`]) each record weighs its `duration_ns`; a folded
//! file's numbers are taken as they were saved.

use anyhow::{bail, Context, Result};
use std::borrow::Cow;

use serde::Deserialize;

use super::{FlameFrame, FlameStack, Profile, RawStack, Shape, Weight};
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
    outcomes: Option<OutcomesLine>,
}

/// The summary's exact outcomes (with the exit points armed).
#[derive(Deserialize)]
struct OutcomesLine {
    total_ns: Option<u64>,
}

pub fn read(path: &std::path::Path, shape: &Shape, weight: Weight) -> Result<Profile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let first = text.lines().find(|l| !l.trim().is_empty());
    match first {
        None => bail!("{} is empty: nothing to draw", path.display()),
        Some(l) if l.trim_start().starts_with('{') => {
            let (profile, records) = from_json(&text, shape, weight).with_context(|| {
                format!("{}: not a valid `mdt trace --json` stream", path.display())
            })?;
            if records > 0 && profile.untimed == records {
                bail!(
                    "{} has no durations: record it with mdt trace --latency",
                    path.display()
                );
            }
            Ok(profile)
        }
        Some(_) => {
            if shape.group_by != super::GroupBy::None || shape.runtime_frames {
                bail!(
                    "{} is a folded file, drawn as it was saved: --group-by and --runtime-frames need a saved `mdt trace --json` stream",
                    path.display()
                );
            }
            from_folded(&text, weight)
                .with_context(|| format!("{}: not a valid folded file", path.display()))
        }
    }
}

fn from_folded(text: &str, weight: Weight) -> Result<Profile> {
    let mut profile = Profile {
        weight,
        ..Profile::default()
    };
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

/// The profile and the number of delete and clear records read (with
/// [`Weight::Latency`], those without a duration are counted in
/// `untimed`, not drawn).
fn from_json(text: &str, shape: &Shape, weight: Weight) -> Result<(Profile, u64)> {
    let mut profile = Profile {
        weight,
        ..Profile::default()
    };
    let mut exact = None;
    let mut records = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("line {}", n + 1);
        let kind: Kind = serde_json::from_str(line).with_context(at)?;
        match &*kind.kind {
            "delete" | "clear" => {
                let r: Record = serde_json::from_str(line).with_context(at)?;
                records += 1;
                let Some(count) = profile.call_weight(r.duration_ns) else {
                    continue;
                };
                let frames = Stack::from_frames(r.stack);
                profile.add(
                    RawStack {
                        func: &r.func,
                        frames: &frames,
                        map_type: &r.map_type,
                        key_type: &r.key_type,
                        goid: r.goid,
                        labels: r.labels.as_deref(),
                        count,
                        truncated: r.stack_truncated,
                    },
                    shape,
                );
            }
            "summary" => {
                let r: SummaryLine = serde_json::from_str(line).with_context(at)?;
                // Only an unfiltered, sampled run can be scaled to the totals
                // (by latency: to the exact time of the calls seen returning).
                let total = match weight {
                    Weight::Count => Some(r.deletes.unwrap_or(0) + r.clears.unwrap_or(0)),
                    Weight::Latency => r.outcomes.and_then(|o| o.total_ns),
                };
                if let (Some(total), Some(0)) = (total, r.filtered_out) {
                    exact = Some((total, r.sample_rate.unwrap_or(1.0)));
                }
                profile.duration_ns = (r.duration.unwrap_or(0.0) * 1e9) as u64;
            }
            _ => {}
        }
    }
    if records == 0 && exact.is_none() {
        bail!("no delete or clear records");
    }
    if let Some((total, rate)) = exact {
        if rate < 1.0 {
            profile.finish(1);
            profile.scale_to(total, rate);
        }
    }
    Ok((profile, records))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A record of `func` called from `site`, with its duration if any.
    fn record(kind: &str, func: &str, site: &str, duration_ns: Option<u64>) -> String {
        let mut r = serde_json::json!({
            "type": kind, "goid": 1, "func": func, "map_type": "map[int64]int",
            "key_type": "int64", "stack": [
                {"func": func, "file": "/go/src/runtime/map.go", "line": 700, "addr": "0x10"},
                {"func": site, "file": "/src/main.go", "line": 12, "addr": "0x20"},
                {"func": "main.main", "file": "/src/main.go", "line": 30, "addr": "0x30"}
            ]
        });
        if let Some(ns) = duration_ns {
            r["duration_ns"] = ns.into();
        }
        r.to_string() + "\n"
    }

    fn lines(p: &Profile) -> BTreeMap<String, u64> {
        let mut p = p.clone();
        p.finish(1);
        p.folded_lines()
    }

    const SMALL: &str = "main.main;main.small;runtime.mapdelete";
    const BIG: &str = "main.main;main.big;runtime.mapclear";

    fn trace() -> String {
        record("delete", "runtime.mapdelete", "main.small", Some(800))
            + &record("delete", "runtime.mapdelete", "main.small", Some(1_200))
            + &record("delete", "runtime.mapdelete", "main.small", None)
            + &record("clear", "runtime.mapclear", "main.big", Some(5_000_000))
    }

    #[test]
    fn by_latency_each_record_weighs_its_duration() {
        let (p, records) = from_json(&trace(), &Shape::default(), Weight::Latency).unwrap();
        assert_eq!((records, p.untimed, p.weight), (4, 1, Weight::Latency));
        assert_eq!(
            lines(&p),
            BTreeMap::from([(BIG.to_string(), 5_000_000), (SMALL.to_string(), 2_000)])
        );
        let (p, records) = from_json(&trace(), &Shape::default(), Weight::Count).unwrap();
        assert_eq!((records, p.untimed, p.weight), (4, 0, Weight::Count));
        assert_eq!(
            lines(&p),
            BTreeMap::from([(BIG.to_string(), 1), (SMALL.to_string(), 3)])
        );
    }

    #[test]
    fn a_sampled_trace_is_scaled_to_the_exact_time_of_its_outcomes() {
        let summary = |outcomes: &str| {
            format!(
                "{{\"type\":\"summary\",\"deletes\":30,\"clears\":10,\"sample_rate\":0.1,\
                 \"filtered_out\":0,\"duration\":1.5{outcomes}}}\n"
            )
        };
        let text = trace() + &summary(",\"outcomes\":{\"total_ns\":50020000,\"returned\":40}");
        let (p, _) = from_json(&text, &Shape::default(), Weight::Latency).unwrap();
        assert_eq!((p.total(), p.scaled_from), (50_020_000, Some(0.1)));
        assert_eq!(p.duration_ns, 1_500_000_000);
        let (p, _) = from_json(&text, &Shape::default(), Weight::Count).unwrap();
        assert_eq!((p.total(), p.scaled_from), (40, Some(0.1)));
        // Without outcomes there is nothing exact to scale the time to.
        let (p, _) = from_json(
            &(trace() + &summary("")),
            &Shape::default(),
            Weight::Latency,
        )
        .unwrap();
        assert_eq!((p.total(), p.scaled_from), (5_002_000, None));
    }

    #[test]
    fn a_trace_without_durations_is_refused_by_latency() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let text = record("delete", "runtime.mapdelete", "main.small", None)
            + "{\"type\":\"summary\",\"deletes\":1,\"clears\":0,\"sample_rate\":1.0,\"filtered_out\":0}\n";
        std::fs::write(&path, text).unwrap();
        let err = read(&path, &Shape::default(), Weight::Latency).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!(
                "{} has no durations: record it with mdt trace --latency",
                path.display()
            )
        );
        let p = read(&path, &Shape::default(), Weight::Count).unwrap();
        assert_eq!(p.total(), 1);
    }

    #[test]
    fn a_folded_file_is_taken_as_saved_in_either_weight() {
        for weight in [Weight::Count, Weight::Latency] {
            let p = from_folded("main.main;runtime.mapdelete 1234\n", weight).unwrap();
            assert_eq!((p.total(), p.weight, p.untimed), (1234, weight, 0));
        }
    }
}
