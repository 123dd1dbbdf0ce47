//! Flame graphs of the code paths that lead to deletes: one aggregated
//! [`Profile`] (stacks with exact counts, or with the time spent in their
//! calls: [`Weight`]), written as folded text, an inferno SVG, or a pprof
//! protobuf. Built from the kernel's stack counts (live), or from a saved
//! folded file or `mdt trace --json` stream.

pub mod folded;
pub mod input;
pub mod pprof;
pub mod svg;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::events::{is_runtime_internal, Frame, Stack};

/// A frame of a flame-graph stack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlameFrame {
    pub func: Arc<str>,
    /// Empty when unknown (folded input, synthetic frames).
    pub file: Arc<str>,
    pub line: u32,
    pub inlined: bool,
    /// Run-time pc; 0 for frames that are not code (group-by roots).
    pub addr: u64,
}

impl FlameFrame {
    fn synthetic(name: &str) -> Self {
        FlameFrame {
            func: name.into(),
            file: "".into(),
            line: 0,
            inlined: false,
            addr: 0,
        }
    }

    fn from_frame(f: &Frame) -> Self {
        FlameFrame {
            func: f.func.clone(),
            file: f.file.clone(),
            line: f.line,
            inlined: f.inlined,
            addr: f.addr,
        }
    }

    /// The name as folded text shows it; inlined frames carry inferno's
    /// `_[i]` annotation.
    fn folded_name(&self) -> String {
        let name = self.func.replace(';', ":");
        if self.inlined {
            format!("{name}_[i]")
        } else {
            name
        }
    }
}

/// One stack, root first, with its count.
#[derive(Debug, Clone)]
pub struct FlameStack {
    pub frames: Vec<FlameFrame>,
    /// Its weight: calls, or nanoseconds ([`Profile::weight`]).
    pub count: u64,
    pub map_type: Option<Arc<str>>,
}

impl FlameStack {
    /// The stack as a folded line shows it, without the count.
    fn folded_key(&self) -> String {
        let names: Vec<String> = self.frames.iter().map(FlameFrame::folded_name).collect();
        names.join(";")
    }
}

/// How to shape the stacks: a root frame per map type, key type,
/// goroutine, or value of one goroutine label (`label:KEY`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GroupBy {
    MapType,
    KeyType,
    Goroutine,
    Label(String),
    #[default]
    None,
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "map-type" => Self::MapType,
            "key-type" => Self::KeyType,
            "goroutine" => Self::Goroutine,
            "none" => Self::None,
            _ => match s.strip_prefix("label:") {
                Some(key) if !key.is_empty() => Self::Label(key.to_string()),
                _ => {
                    return Err(format!(
                        "expected map-type, key-type, goroutine, label:KEY or none, got {s:?}"
                    ))
                }
            },
        })
    }
}

impl GroupBy {
    /// The root frame of a stack without the label grouped by.
    pub fn no_label(key: &str) -> String {
        format!("[no label {key}]")
    }
}

/// What a stack's number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Weight {
    /// The calls (deletes and clears) made on the stack.
    #[default]
    Count,
    /// The time spent in them, in nanoseconds (measured at each call's
    /// exit).
    Latency,
}

impl Weight {
    /// What the numbers are, as the SVG's frames name them.
    pub fn unit(self) -> &'static str {
        match self {
            Weight::Count => "deletes",
            Weight::Latency => "ns",
        }
    }

    /// pprof's sample type: (type, unit).
    pub fn sample_type(self) -> (&'static str, &'static str) {
        match self {
            Weight::Count => ("deletes", "count"),
            Weight::Latency => ("latency", "nanoseconds"),
        }
    }

    /// What scaled numbers are called in the notes that say so.
    fn scaled_name(self) -> &'static str {
        match self {
            Weight::Count => "counts",
            Weight::Latency => "nanoseconds",
        }
    }

    /// The note of a profile scaled up from a sample of `rate`.
    pub fn scaled_note(self, rate: f64) -> String {
        format!(
            "{} scaled up from a {:.3}% sample",
            self.scaled_name(),
            rate * 100.0
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct Shape {
    pub group_by: GroupBy,
    /// Keep the Go runtime frames above the delete.
    pub runtime_frames: bool,
}

/// What one counted stack looks like before shaping (innermost first).
pub struct RawStack<'a> {
    /// The runtime function hit: the leaf unless runtime frames are kept.
    pub func: &'a str,
    pub frames: &'a Stack,
    pub map_type: &'a str,
    pub key_type: &'a str,
    pub goid: Option<u64>,
    /// The goroutine's labels (records only; the kernel's counts have none).
    pub labels: Option<&'a crate::events::Labels>,
    /// Its weight: calls, or nanoseconds.
    pub count: u64,
    /// The stack was deeper than the walk: its outermost frames are
    /// missing (drawn as one frame, [`TRUNCATED_FRAME`], at the root).
    pub truncated: bool,
}

/// The root frame of a stack deeper than `--stack-depth` (in brackets: not
/// a function name).
pub const TRUNCATED_FRAME: &str = "[deeper than --stack-depth]";

/// The aggregated profile.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub stacks: Vec<FlameStack>,
    /// Set when counts were scaled up from a sample (for the title).
    pub scaled_from: Option<f64>,
    pub duration_ns: u64,
    /// Stacks (folded lines, pprof samples) of a smaller weight are left
    /// out.
    pub min_count: u64,
    /// What the stacks' numbers are.
    pub weight: Weight,
    /// With [`Weight::Latency`]: the calls left out because their duration
    /// is not known (records without one; calls not seen returning).
    pub untimed: u64,
}

impl Profile {
    /// What one call (a record) weighs: 1, or by latency its duration; a
    /// call without one is counted in `untimed` and weighs nothing (None).
    pub fn call_weight(&mut self, duration_ns: Option<u64>) -> Option<u64> {
        match (self.weight, duration_ns) {
            (Weight::Count, _) => Some(1),
            (Weight::Latency, Some(ns)) => Some(ns),
            (Weight::Latency, None) => {
                self.untimed += 1;
                None
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.stacks.iter().map(|s| s.count).sum()
    }

    /// The total the outputs show (after `min_count`).
    pub fn shown_total(&self) -> u64 {
        self.folded_lines().values().sum()
    }

    /// The folded lines every output shows: stacks that differ only in
    /// lines or addresses are one line (folded text names functions), and
    /// `min_count` applies to these lines, so that the folded file, the SVG
    /// and the pprof profile keep the same stacks and add up to the same
    /// total.
    pub fn folded_lines(&self) -> BTreeMap<String, u64> {
        let mut lines: BTreeMap<String, u64> = BTreeMap::new();
        for s in &self.stacks {
            *lines.entry(s.folded_key()).or_default() += s.count;
        }
        lines.retain(|_, c| *c >= self.min_count);
        lines
    }

    /// The stacks (with lines and addresses) behind the folded lines shown.
    pub fn shown_stacks(&self) -> Vec<&FlameStack> {
        let lines = self.folded_lines();
        self.stacks
            .iter()
            .filter(|s| lines.contains_key(&s.folded_key()))
            .collect()
    }

    /// Adds a stack, shaped: by default the delete flavour is the leaf and
    /// the caller chain starts at the first frame outside the map machinery.
    pub fn add(&mut self, raw: RawStack, shape: &Shape) {
        let mut frames: Vec<FlameFrame> = if shape.runtime_frames {
            raw.frames.iter().map(FlameFrame::from_frame).collect()
        } else {
            let from = raw
                .frames
                .iter()
                .position(|f| !is_runtime_internal(&f.func))
                .unwrap_or(raw.frames.len());
            // The leaf: the delete function, where the probe fired.
            let leaf = raw.frames.iter().find(|f| &*f.func == raw.func);
            std::iter::once(FlameFrame {
                file: leaf.map_or("".into(), |f| f.file.clone()),
                line: leaf.map_or(0, |f| f.line),
                addr: raw.frames.first().map_or(0, |f| f.addr),
                ..FlameFrame::synthetic(raw.func)
            })
            .chain(raw.frames.iter().skip(from).map(FlameFrame::from_frame))
            .collect()
        };
        let root = match &shape.group_by {
            GroupBy::MapType => Some(raw.map_type.to_string()),
            GroupBy::KeyType => Some(raw.key_type.to_string()),
            GroupBy::Goroutine => Some(
                raw.goid
                    .map_or("goroutine ?".into(), |g| format!("goroutine {g}")),
            ),
            GroupBy::Label(key) => Some(match raw.labels.and_then(|l| l.get(key.as_str())) {
                Some(value) => format!("{key}={value}"),
                None => GroupBy::no_label(key.as_str()),
            }),
            GroupBy::None => None,
        };
        if raw.truncated {
            frames.push(FlameFrame::synthetic(TRUNCATED_FRAME));
        }
        if let Some(root) = root {
            frames.push(FlameFrame::synthetic(&root));
        }
        frames.reverse();
        self.stacks.push(FlameStack {
            frames,
            count: raw.count,
            map_type: Some(raw.map_type.into()),
        });
    }

    /// Adds deletes whose stack is not known as one stack of a synthetic
    /// frame (`label`, in brackets: not a function name), so that the totals
    /// stay exact.
    pub fn add_unknown(&mut self, label: &str, count: u64) {
        self.stacks.push(FlameStack {
            frames: vec![FlameFrame::synthetic(label)],
            count,
            map_type: None,
        });
    }

    /// Merges identical stacks and sorts them; `min_count` is applied by
    /// the writers, to what they show.
    pub fn finish(&mut self, min_count: u64) {
        self.min_count = min_count.max(1);
        let mut merged: BTreeMap<(Vec<FlameFrame>, Option<Arc<str>>), u64> = BTreeMap::new();
        for s in self.stacks.drain(..) {
            *merged.entry((s.frames, s.map_type)).or_default() += s.count;
        }
        self.stacks = merged
            .into_iter()
            .map(|((frames, map_type), count)| FlameStack {
                frames,
                count,
                map_type,
            })
            .collect();
    }

    /// Scales sampled counts so they add up to `exact` (largest remainder,
    /// so the total is exact and each stack gets its fair share).
    pub fn scale_to(&mut self, exact: u64, rate: f64) {
        let sampled = self.total();
        if sampled == 0 || exact == sampled {
            return;
        }
        let factor = exact as f64 / sampled as f64;
        let mut shares: Vec<(usize, u64, f64)> = self
            .stacks
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let x = s.count as f64 * factor;
                (i, x.floor() as u64, x - x.floor())
            })
            .collect();
        let assigned: u64 = shares.iter().map(|s| s.1).sum();
        let mut missing = exact.saturating_sub(assigned);
        shares.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
        for share in shares.iter_mut() {
            if missing == 0 {
                break;
            }
            share.1 += 1;
            missing -= 1;
        }
        for (i, count, _) in shares {
            self.stacks[i].count = count;
        }
        self.scaled_from = Some(rate);
    }
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Svg,
    Folded,
    Pprof,
}

impl Format {
    /// The format a file name implies, if any.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".svg") {
            Some(Format::Svg)
        } else if name.ends_with(".folded") || name.ends_with(".txt") {
            Some(Format::Folded)
        } else if name.ends_with(".pb.gz") || name.ends_with(".pprof") || name.ends_with(".pb") {
            Some(Format::Pprof)
        } else {
            None
        }
    }
}

/// Renders the profile in `format`.
pub fn render(
    profile: &Profile,
    format: Format,
    opts: &svg::SvgOptions,
) -> anyhow::Result<Vec<u8>> {
    match format {
        Format::Folded => Ok(folded::write(profile).into_bytes()),
        Format::Svg => svg::write(profile, opts),
        Format::Pprof => pprof::write(profile),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(func: &str, file: &str, line: u32, addr: u64) -> Frame {
        Frame::new(func, file, line, addr, false)
    }

    /// A delete through reflect, innermost first: the runtime (with a map
    /// method inlined into it), reflect's linknamed map function, then the
    /// code that asked for the delete.
    fn reflect_delete() -> Stack {
        Stack::from(vec![
            Frame {
                inlined: true,
                ..frame(
                    "internal/runtime/maps.(*Map).Delete",
                    "/go/src/internal/runtime/maps/map.go",
                    650,
                    0x10,
                )
            },
            frame("runtime.mapdelete", "/go/src/runtime/map.go", 700, 0x10),
            frame("reflect.mapdelete", "/go/src/runtime/map.go", 1500, 0x20),
            frame(
                "reflect.Value.SetMapIndex",
                "/go/src/reflect/value.go",
                2400,
                0x30,
            ),
            frame("main.prune", "/src/main.go", 12, 0x40),
            frame("main.main", "/src/main.go", 30, 0x50),
        ])
    }

    const SHAPED: &str = "main.main;main.prune;reflect.Value.SetMapIndex;runtime.mapdelete";

    fn raw(frames: &Stack, count: u64) -> RawStack<'_> {
        RawStack {
            func: "runtime.mapdelete",
            frames,
            map_type: "map[string]int",
            key_type: "string",
            goid: Some(7),
            labels: None,
            count,
            truncated: false,
        }
    }

    fn names(s: &FlameStack) -> Vec<&str> {
        s.frames.iter().map(|f| &*f.func).collect()
    }

    fn counts(p: &Profile) -> Vec<u64> {
        p.stacks.iter().map(|s| s.count).collect()
    }

    #[test]
    fn by_default_the_runtime_frames_are_dropped_and_the_delete_is_the_leaf() {
        let stack = reflect_delete();
        let mut p = Profile::default();
        p.add(raw(&stack, 3), &Shape::default());
        let s = &p.stacks[0];
        assert_eq!(s.folded_key(), SHAPED);
        let leaf = s.frames.last().unwrap();
        assert_eq!(
            (&*leaf.file, leaf.line, leaf.addr, leaf.inlined),
            ("/go/src/runtime/map.go", 700, 0x10, false),
            "the delete function's line, the innermost pc"
        );
        assert_eq!(
            (s.count, s.map_type.as_deref()),
            (3, Some("map[string]int"))
        );
    }

    #[test]
    fn runtime_frames_keeps_every_frame() {
        let stack = reflect_delete();
        let mut p = Profile::default();
        let shape = Shape {
            runtime_frames: true,
            ..Shape::default()
        };
        p.add(raw(&stack, 1), &shape);
        assert_eq!(
            p.stacks[0].folded_key(),
            "main.main;main.prune;reflect.Value.SetMapIndex;reflect.mapdelete;\
             runtime.mapdelete;internal/runtime/maps.(*Map).Delete_[i]"
        );
        let leaf = p.stacks[0].frames.last().unwrap();
        assert_eq!((leaf.line, leaf.addr, leaf.inlined), (650, 0x10, true));
    }

    #[test]
    fn a_stack_without_the_delete_frame_still_ends_in_it() {
        let stack = Stack::from(vec![Frame::unnamed(0x10), Frame::unnamed(0x20)]);
        let mut p = Profile::default();
        p.add(raw(&stack, 1), &Shape::default());
        assert_eq!(names(&p.stacks[0]), ["0x20", "0x10", "runtime.mapdelete"]);
        let leaf = p.stacks[0].frames.last().unwrap();
        assert_eq!((&*leaf.file, leaf.line, leaf.addr), ("", 0, 0x10));
    }

    #[test]
    fn group_by_puts_one_root_frame_above_the_stack() {
        let stack = reflect_delete();
        let cases = [
            (GroupBy::MapType, Some(7), "map[string]int"),
            (GroupBy::KeyType, Some(7), "string"),
            (GroupBy::Goroutine, Some(7), "goroutine 7"),
            (GroupBy::Goroutine, None, "goroutine ?"),
        ];
        for (group_by, goid, root) in cases {
            let mut p = Profile::default();
            let shape = Shape {
                group_by,
                ..Shape::default()
            };
            p.add(
                RawStack {
                    goid,
                    ..raw(&stack, 1)
                },
                &shape,
            );
            let s = &p.stacks[0];
            assert_eq!(s.folded_key(), format!("{root};{SHAPED}"));
            assert_eq!((&*s.frames[0].file, s.frames[0].addr), ("", 0));
        }
    }

    #[test]
    fn finish_merges_identical_stacks_and_sorts_them() {
        let stack = reflect_delete();
        let mut p = Profile::default();
        p.add(raw(&stack, 2), &Shape::default());
        p.add_unknown("[unknown stack]", 4);
        p.add(raw(&stack, 3), &Shape::default());
        p.finish(0);
        assert_eq!(p.min_count, 1, "at least one");
        let stacks: Vec<_> = p.stacks.iter().map(|s| (s.folded_key(), s.count)).collect();
        assert_eq!(
            stacks,
            [("[unknown stack]".into(), 4), (SHAPED.to_string(), 5)]
        );
        assert_eq!(p.stacks[0].map_type, None);
        assert_eq!(p.total(), 9);
    }

    #[test]
    fn min_count_applies_to_folded_lines_not_to_stacks() {
        let stack = reflect_delete();
        let mut p = Profile::default();
        p.add(raw(&stack, 2), &Shape::default());
        p.add(raw(&stack, 2), &Shape::default());
        p.stacks[1].frames[1].line = 13; // main.prune, another call site
        p.add_unknown("[unknown stack]", 3);
        p.finish(4);
        assert_eq!(p.stacks.len(), 3, "lines keep stacks apart");
        assert_eq!(p.folded_lines(), BTreeMap::from([(SHAPED.to_string(), 4)]));
        assert_eq!((p.total(), p.shown_total()), (7, 4));
        let shown: Vec<u32> = p.shown_stacks().iter().map(|s| s.frames[1].line).collect();
        assert_eq!(shown, [12, 13]);
    }

    #[test]
    fn scaling_hands_the_remainder_to_the_largest_fractions_first() {
        let mut p = Profile::default();
        for (name, count) in [("[a]", 5), ("[b]", 2), ("[c]", 1)] {
            p.add_unknown(name, count);
        }
        let sampled = p.clone();
        p.scale_to(20, 0.4);
        // 12.5, 5, 2.5: the tie between a and c goes to the first.
        assert_eq!(counts(&p), [13, 5, 2]);
        assert_eq!(p.scaled_from, Some(0.4));
        let mut down = sampled.clone();
        down.scale_to(4, 2.0);
        // 2.5, 1, 0.5
        assert_eq!(counts(&down), [3, 1, 0]);
    }

    #[test]
    fn scaling_to_the_same_total_or_an_empty_profile_changes_nothing() {
        let mut p = Profile::default();
        p.add_unknown("[a]", 3);
        p.scale_to(3, 0.5);
        assert_eq!((counts(&p), p.scaled_from), (vec![3], None));
        let mut empty = Profile::default();
        empty.scale_to(10, 0.5);
        assert_eq!((empty.total(), empty.scaled_from), (0, None));
    }

    #[test]
    fn folded_names_mark_inlined_frames_and_lose_their_semicolons() {
        let inlined = FlameFrame {
            inlined: true,
            ..FlameFrame::synthetic("maps.DeleteFunc[...]")
        };
        assert_eq!(inlined.folded_name(), "maps.DeleteFunc[...]_[i]");
        let root = FlameFrame::synthetic("struct { a int; b int }");
        assert_eq!(root.folded_name(), "struct { a int: b int }");
    }

    #[test]
    fn the_format_follows_the_file_name() {
        let of = |p: &str| Format::from_path(std::path::Path::new(p));
        assert_eq!(of("out/deletes.SVG"), Some(Format::Svg));
        assert_eq!(of("deletes.folded"), Some(Format::Folded));
        assert_eq!(of("deletes.txt"), Some(Format::Folded));
        assert_eq!(of("deletes.pb.gz"), Some(Format::Pprof));
        assert_eq!(of("deletes.pprof"), Some(Format::Pprof));
        assert_eq!(of("deletes.pb"), Some(Format::Pprof));
        assert_eq!(of("deletes.png"), None);
        assert_eq!(of("/"), None);
    }
}
