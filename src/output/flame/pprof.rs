//! A gzipped `profile.proto` for `go tool pprof`: one sample per stack with
//! its weight as its value (the delete count, sample type `deletes/count`,
//! or the time spent in the calls, `latency/nanoseconds`), file:line per
//! location, inlined frames as extra lines of one location, and the map
//! type as a label.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};
use prost::Message;

use super::{FlameFrame, Profile};

/// The subset of `github.com/google/pprof/proto/profile.proto` mdt writes.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
    }
}

/// Interns strings, functions and locations as profile.proto wants them.
#[derive(Default)]
struct Builder {
    profile: proto::Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(String, String), u64>,
    locations: HashMap<Vec<(u64, i64)>, u64>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if self.profile.string_table.is_empty() {
            self.profile.string_table.push(String::new());
            self.strings.insert(String::new(), 0);
        }
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn function(&mut self, name: &str, file: &str) -> u64 {
        if let Some(&id) = self.functions.get(&(name.to_string(), file.to_string())) {
            return id;
        }
        let id = self.profile.function.len() as u64 + 1;
        let (name_i, file_i) = (self.string(name), self.string(file));
        self.profile.function.push(proto::Function {
            id,
            name: name_i,
            system_name: name_i,
            filename: file_i,
        });
        self.functions
            .insert((name.to_string(), file.to_string()), id);
        id
    }

    /// One location for a physical frame and the frames inlined into it
    /// (innermost first, as pprof wants its lines).
    fn location(&mut self, group: &[&FlameFrame]) -> u64 {
        let lines: Vec<(u64, i64)> = group
            .iter()
            .map(|f| (self.function(&f.func, &f.file), i64::from(f.line)))
            .collect();
        if let Some(&id) = self.locations.get(&lines) {
            return id;
        }
        let id = self.profile.location.len() as u64 + 1;
        self.profile.location.push(proto::Location {
            id,
            address: group.last().map_or(0, |f| f.addr),
            line: lines
                .iter()
                .map(|&(function_id, line)| proto::Line { function_id, line })
                .collect(),
        });
        self.locations.insert(lines, id);
        id
    }
}

/// Splits a root-first stack into leaf-first groups: each physical frame
/// with the inlined frames that precede it (in leaf-first order).
fn location_groups(frames: &[FlameFrame]) -> Vec<Vec<&FlameFrame>> {
    let mut groups = Vec::new();
    let mut current: Vec<&FlameFrame> = Vec::new();
    for f in frames.iter().rev() {
        current.push(f);
        if !f.inlined {
            groups.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

pub fn encode(profile: &Profile) -> proto::Profile {
    let mut b = Builder::default();
    let (kind, unit) = profile.weight.sample_type();
    let (kind, unit) = (b.string(kind), b.string(unit));
    b.profile.sample_type = vec![proto::ValueType { r#type: kind, unit }];
    b.profile.period_type = Some(proto::ValueType { r#type: kind, unit });
    b.profile.period = 1;
    let map_type_key = b.string("map_type");
    // The stacks of the folded lines shown, so that `--min-count` keeps
    // the same stacks (and total) as the folded file and the SVG.
    for s in profile.shown_stacks() {
        let location_id = location_groups(&s.frames)
            .iter()
            .map(|g| b.location(g))
            .collect();
        let label = s
            .map_type
            .as_ref()
            .map(|t| proto::Label {
                key: map_type_key,
                str: b.string(t),
            })
            .into_iter()
            .collect();
        b.profile.sample.push(proto::Sample {
            location_id,
            value: vec![s.count as i64],
            label,
        });
    }
    if let Some(rate) = profile.scaled_from {
        let note = b.string(&profile.weight.scaled_note(rate));
        b.profile.comment.push(note);
    }
    b.profile.duration_nanos = profile.duration_ns as i64;
    b.profile.time_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    b.profile
}

pub fn write(profile: &Profile) -> Result<Vec<u8>> {
    let raw = encode(profile).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).context("compressing the profile")?;
    gz.finish().context("compressing the profile")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::super::FlameStack;
    use super::*;

    fn frame(func: &str, file: &str, line: u32, inlined: bool, addr: u64) -> FlameFrame {
        FlameFrame {
            func: func.into(),
            file: file.into(),
            line,
            inlined,
            addr,
        }
    }

    /// main.main → main.prune (with main.helper inlined into it) →
    /// runtime.mapdelete, 5 times; main.main → runtime.mapclear once; and
    /// 2 deletes of unknown stack.
    fn profile(min_count: u64) -> Profile {
        let main = frame("main.main", "/src/main.go", 30, false, 0x30);
        let delete = FlameStack {
            frames: vec![
                main.clone(),
                frame("main.prune", "/src/main.go", 12, false, 0x20),
                frame("main.helper", "/src/main.go", 5, true, 0x20),
                frame(
                    "runtime.mapdelete",
                    "/go/src/runtime/map.go",
                    700,
                    false,
                    0x10,
                ),
            ],
            count: 5,
            map_type: Some("map[string]int".into()),
        };
        let clear = FlameStack {
            frames: vec![
                main,
                frame(
                    "runtime.mapclear",
                    "/go/src/runtime/map.go",
                    900,
                    false,
                    0x18,
                ),
            ],
            count: 1,
            map_type: Some("map[int]bool".into()),
        };
        let mut p = Profile {
            stacks: vec![delete, clear],
            duration_ns: 2_000_000_000,
            ..Profile::default()
        };
        p.add_unknown("[unknown stack]", 2);
        p.finish(min_count);
        p
    }

    fn decode(gzipped: &[u8]) -> proto::Profile {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gzipped)
            .read_to_end(&mut raw)
            .unwrap();
        proto::Profile::decode(raw.as_slice()).unwrap()
    }

    fn string(p: &proto::Profile, i: i64) -> &str {
        &p.string_table[i as usize]
    }

    /// Each location of a sample, leaf first, as its (function, line)s.
    fn frames(p: &proto::Profile, s: &proto::Sample) -> Vec<Vec<(String, i64)>> {
        s.location_id
            .iter()
            .map(|&id| {
                let loc = &p.location[id as usize - 1];
                assert_eq!(loc.id, id);
                let line = |l: &proto::Line| {
                    let f = &p.function[l.function_id as usize - 1];
                    assert_eq!((f.id, f.system_name), (l.function_id, f.name));
                    (string(p, f.name).to_string(), l.line)
                };
                loc.line.iter().map(line).collect()
            })
            .collect()
    }

    fn labels(p: &proto::Profile, s: &proto::Sample) -> Vec<(String, String)> {
        let pair = |l: &proto::Label| (string(p, l.key).into(), string(p, l.str).into());
        s.label.iter().map(pair).collect()
    }

    fn one(func: &str, line: i64) -> Vec<(String, i64)> {
        vec![(func.to_string(), line)]
    }

    #[test]
    fn the_written_profile_decodes_to_one_sample_per_stack() {
        let bytes = write(&profile(1)).unwrap();
        assert_eq!(bytes[..2], [0x1f, 0x8b], "gzip");
        let p = decode(&bytes);
        assert_eq!(p.string_table[0], "");
        let [kind] = &p.sample_type[..] else {
            panic!("one sample type: {:?}", p.sample_type)
        };
        assert_eq!(
            (string(&p, kind.r#type), string(&p, kind.unit)),
            ("deletes", "count")
        );
        assert_eq!(p.period_type.as_ref(), Some(kind));
        assert_eq!((p.period, p.duration_nanos), (1, 2_000_000_000));
        assert!(p.time_nanos > 0);
        assert!(p.comment.is_empty(), "not scaled");

        let values: Vec<&[i64]> = p.sample.iter().map(|s| &s.value[..]).collect();
        assert_eq!(values, [&[2][..], &[5], &[1]], "in stack order");
        let [unknown, delete, clear] = &p.sample[..] else {
            unreachable!()
        };
        assert_eq!(frames(&p, unknown), [one("[unknown stack]", 0)]);
        assert_eq!(labels(&p, unknown), []);
        assert_eq!(
            frames(&p, clear),
            [one("runtime.mapclear", 900), one("main.main", 30)]
        );
        assert_eq!(
            labels(&p, clear),
            [("map_type".into(), "map[int]bool".into())]
        );
        assert_eq!(
            frames(&p, delete),
            [
                one("runtime.mapdelete", 700),
                vec![("main.helper".into(), 5), ("main.prune".into(), 12)],
                one("main.main", 30),
            ],
            "the inlined frame shares its caller's location, innermost first"
        );
        assert_eq!(
            labels(&p, delete),
            [("map_type".into(), "map[string]int".into())]
        );
    }

    #[test]
    fn functions_and_locations_are_shared_between_samples() {
        let p = encode(&profile(1));
        assert_eq!(p.function.len(), 6);
        assert_eq!(p.location.len(), 5);
        let addresses: Vec<u64> = p.location.iter().map(|l| l.address).collect();
        assert_eq!(addresses, [0, 0x10, 0x20, 0x30, 0x18]);
        let (delete, clear) = (&p.sample[1], &p.sample[2]);
        assert_eq!(
            clear.location_id.last(),
            delete.location_id.last(),
            "main.main"
        );
        let prune = p
            .function
            .iter()
            .find(|f| string(&p, f.name) == "main.prune");
        assert_eq!(string(&p, prune.unwrap().filename), "/src/main.go");
    }

    #[test]
    fn min_count_leaves_out_the_same_stacks_as_the_folded_file() {
        let p = encode(&profile(3));
        let values: Vec<&[i64]> = p.sample.iter().map(|s| &s.value[..]).collect();
        assert_eq!(values, [&[5][..]]);
    }

    #[test]
    fn a_scaled_profile_says_so_in_a_comment() {
        let mut profile = profile(1);
        profile.scaled_from = Some(0.25);
        let p = encode(&profile);
        let comments: Vec<&str> = p.comment.iter().map(|&i| string(&p, i)).collect();
        assert_eq!(comments, ["counts scaled up from a 25.000% sample"]);
    }

    #[test]
    fn by_latency_the_samples_are_nanoseconds() {
        let mut profile = profile(1);
        profile.weight = super::super::Weight::Latency;
        for (s, ns) in profile.stacks.iter_mut().zip([7_000, 1_500, 4_000_000]) {
            s.count = ns;
        }
        profile.scaled_from = Some(0.5);
        let p = decode(&write(&profile).unwrap());
        let [kind] = &p.sample_type[..] else {
            panic!("one sample type: {:?}", p.sample_type)
        };
        assert_eq!(
            (string(&p, kind.r#type), string(&p, kind.unit)),
            ("latency", "nanoseconds")
        );
        assert_eq!((p.period_type.as_ref(), p.period), (Some(kind), 1));
        let values: Vec<&[i64]> = p.sample.iter().map(|s| &s.value[..]).collect();
        assert_eq!(values, [&[7_000][..], &[1_500], &[4_000_000]]);
        let comments: Vec<&str> = p.comment.iter().map(|&i| string(&p, i)).collect();
        assert_eq!(comments, ["nanoseconds scaled up from a 50.000% sample"]);
        assert!(!p
            .string_table
            .iter()
            .any(|s| s == "deletes" || s == "count"));
    }

    #[test]
    fn the_gzipped_bytes_hold_exactly_the_encoded_profile() {
        let profile = profile(1);
        let mut written = decode(&write(&profile).unwrap());
        let mut encoded = encode(&profile);
        written.time_nanos = 0;
        encoded.time_nanos = 0;
        assert_eq!(written, encoded);
    }
}
