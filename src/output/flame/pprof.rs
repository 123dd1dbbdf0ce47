//! A gzipped `profile.proto` for `go tool pprof`: one sample per stack with
//! the delete count as its value, file:line per location, inlined frames as
//! extra lines of one location, and the map type as a label.

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
    let (deletes, count) = (b.string("deletes"), b.string("count"));
    b.profile.sample_type = vec![proto::ValueType {
        r#type: deletes,
        unit: count,
    }];
    b.profile.period_type = Some(proto::ValueType {
        r#type: deletes,
        unit: count,
    });
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
        let note = b.string(&format!(
            "counts scaled up from a {:.3}% sample",
            rate * 100.0
        ));
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
