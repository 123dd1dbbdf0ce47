//! The SVG flame graph, drawn by inferno.

use anyhow::{Context, Result};
use inferno::flamegraph::{self, color::BasicPalette, color::Palette, Direction};

use super::{folded, Profile, Weight};

#[derive(Debug, Clone, Default)]
pub struct SvgOptions {
    pub title: Option<String>,
    /// Icicle: callers at the bottom, the deletes on top.
    pub inverted: bool,
}

pub fn write(profile: &Profile, opts: &SvgOptions) -> Result<Vec<u8>> {
    let mut o = flamegraph::Options::default();
    o.colors = Palette::Basic(BasicPalette::Hot);
    // What the numbers are: inferno's frames say "(N deletes, P%)" or
    // "(N ns, P%)".
    o.count_name = profile.weight.unit().into();
    o.name_type = "Function:".into();
    o.title = opts.title.clone().unwrap_or_else(|| {
        match profile.weight {
            Weight::Count => "Go map deletes",
            Weight::Latency => "Go map deletes: time spent (ns)",
        }
        .into()
    });
    if let Some(rate) = profile.scaled_from {
        o.subtitle = Some(format!(
            "{} to the exact total of {}",
            profile.weight.scaled_note(rate),
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
        // inferno refuses an empty profile (it draws its own error): an
        // empty graph says what happened instead.
        let title = o.title.replace('&', "&amp;").replace('<', "&lt;");
        let none = match profile.weight {
            Weight::Count => "no deletes were seen",
            Weight::Latency => "no deletes were timed",
        };
        out = format!(
            "<?xml version=\"1.0\" standalone=\"no\"?><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\"><text x=\"10\" y=\"25\">{title}: {none}</text></svg>\n"
        )
        .into_bytes();
        return Ok(out);
    }
    flamegraph::from_lines(&mut o, text.lines(), &mut out).context("drawing the flame graph")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{FlameFrame, FlameStack};
    use super::*;

    fn profile(stacks: &[(&[&str], u64)]) -> Profile {
        let mut p = Profile::default();
        for (names, count) in stacks {
            p.stacks.push(FlameStack {
                frames: names.iter().map(|n| FlameFrame::synthetic(n)).collect(),
                count: *count,
                map_type: None,
            });
        }
        p.finish(1);
        p
    }

    fn two_stacks() -> Profile {
        profile(&[
            (&["main.main", "main.prune", "runtime.mapdelete"], 5),
            (&["main.main", "runtime.mapclear"], 2),
        ])
    }

    fn render(p: &Profile, opts: &SvgOptions) -> String {
        String::from_utf8(write(p, opts).unwrap()).unwrap()
    }

    fn assert_contains(svg: &str, needles: &[&str]) {
        for needle in needles {
            assert!(svg.contains(needle), "no {needle:?} in the SVG");
        }
    }

    #[test]
    fn the_graph_names_every_frame_with_its_deletes_and_share() {
        let svg = render(&two_stacks(), &SvgOptions::default());
        assert!(svg.starts_with("<?xml version=\"1.0\" standalone=\"no\"?>"));
        assert!(svg.ends_with("</svg></svg>"));
        assert_contains(
            &svg,
            &[
                "<text id=\"title\" fill=\"rgb(0,0,0)\" x=\"50.0000%\" y=\"24.00\">Go map deletes</text>",
                "var nametype = 'Function:';",
                "var inverted = false;",
                "<svg id=\"frames\" x=\"10\" width=\"1180\" total_samples=\"7\">",
                "<title>all (7 deletes, 100%)</title>",
                "<title>main.main (7 deletes, 100.00%)</title>",
                "<title>main.prune (5 deletes, 71.43%)</title>",
                "<title>runtime.mapdelete (5 deletes, 71.43%)</title>",
                "<title>runtime.mapclear (2 deletes, 28.57%)</title>",
            ],
        );
        assert!(!svg.contains("id=\"subtitle\""), "not scaled");
    }

    #[test]
    fn the_title_direction_and_scaling_note_are_shown() {
        let mut p = two_stacks();
        p.scaled_from = Some(0.25);
        let opts = SvgOptions {
            title: Some("deletes in prod".into()),
            inverted: true,
        };
        let svg = render(&p, &opts);
        assert_contains(
            &svg,
            &[
                "y=\"24.00\">deletes in prod</text>",
                "<text id=\"subtitle\" x=\"50.0000%\" y=\"48.00\">\
                 counts scaled up from a 25.000% sample to the exact total of 7</text>",
                "var inverted = true;",
            ],
        );
        assert!(!svg.contains("Go map deletes"));
    }

    #[test]
    fn by_latency_the_frames_and_title_say_nanoseconds() {
        let mut p = profile(&[
            (
                &["main.main", "main.clearBig", "runtime.mapclear"],
                4_000_000,
            ),
            (&["main.main", "main.delSmall", "runtime.mapdelete"], 1_000),
        ]);
        p.weight = Weight::Latency;
        let svg = render(&p, &SvgOptions::default());
        assert_contains(
            &svg,
            &[
                "y=\"24.00\">Go map deletes: time spent (ns)</text>",
                "<svg id=\"frames\" x=\"10\" width=\"1180\" total_samples=\"4001000\">",
                "<title>all (4,001,000 ns, 100%)</title>",
                "<title>main.clearBig (4,000,000 ns, 99.98%)</title>",
                "<title>runtime.mapdelete (1,000 ns, 0.02%)</title>",
            ],
        );
        assert!(!svg.contains(" deletes, "), "no frame counts deletes");
        p.scaled_from = Some(0.5);
        assert_contains(
            &render(&p, &SvgOptions::default()),
            &["nanoseconds scaled up from a 50.000% sample to the exact total of 4001000</text>"],
        );
        let empty = Profile {
            weight: Weight::Latency,
            ..Profile::default()
        };
        let svg = String::from_utf8(write(&empty, &SvgOptions::default()).unwrap()).unwrap();
        assert!(
            svg.contains("time spent (ns): no deletes were timed"),
            "{svg}"
        );
    }

    #[test]
    fn the_same_profile_draws_the_same_graph() {
        let opts = SvgOptions::default();
        assert_eq!(render(&two_stacks(), &opts), render(&two_stacks(), &opts));
    }

    #[test]
    fn frame_names_are_escaped_for_xml() {
        let p = profile(&[(&["map[int]chan<- int", "x&y"], 1)]);
        let svg = render(&p, &SvgOptions::default());
        assert_contains(
            &svg,
            &[
                "<title>map[int]chan&lt;- int (1 deletes, 100.00%)</title>",
                "<title>x&amp;y (1 deletes, 100.00%)</title>",
            ],
        );
        assert!(!svg.contains("chan<-") && !svg.contains("x&y"));
    }

    #[test]
    fn an_empty_profile_says_no_deletes_were_seen() {
        let opts = SvgOptions {
            title: Some("a <b> & c".into()),
            ..SvgOptions::default()
        };
        let svg = String::from_utf8(write(&Profile::default(), &opts).unwrap()).unwrap();
        assert!(
            svg.contains("a &lt;b> &amp; c: no deletes were seen"),
            "{svg}"
        );
        assert!(!svg.contains("ERROR"), "{svg}");
    }
}
