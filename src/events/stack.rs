//! Symbolized stacks: [`Frame`]s, grouped by the address they were found
//! at (a call the compiler inlined expands to several frames at one
//! address). A [`Stack`] is shared by every record of it, and is built
//! from the symbolizer's per-address groups, so a stack seen for the first
//! time costs one reference count per address rather than a copy of every
//! frame.

use std::sync::Arc;

use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize};

/// One frame of a symbolized stack (as the JSON records carry it, too).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    /// The Go function, or the address in hex when it cannot be named.
    pub func: Arc<str>,
    #[serde(default = "empty")]
    pub file: Arc<str>,
    #[serde(default)]
    pub line: u32,
    /// True for a call that the compiler inlined into the frame below it.
    #[serde(default)]
    pub inlined: bool,
    /// The run-time address (shared by all inlined frames of one pc).
    #[serde(
        serialize_with = "hex_addr",
        deserialize_with = "addr_from_hex",
        default
    )]
    pub addr: u64,
}

fn empty() -> Arc<str> {
    "".into()
}

impl Frame {
    /// A named frame (`inlined`: a call the compiler inlined into the next).
    pub fn new(func: &str, file: &str, line: u32, addr: u64, inlined: bool) -> Self {
        Frame {
            func: func.into(),
            file: file.into(),
            line,
            inlined,
            addr,
        }
    }

    /// A frame that could not be named: its address, never a guess.
    pub fn unnamed(addr: u64) -> Self {
        Frame {
            func: format!("{addr:#x}").into(),
            file: "".into(),
            line: 0,
            inlined: false,
            addr,
        }
    }

    pub fn is_named(&self) -> bool {
        !self.file.is_empty()
    }

    /// `file:line` with the file's directory dropped.
    pub fn short_location(&self) -> String {
        let base = self.file.rsplit('/').next().unwrap_or(&self.file);
        format!("{base}:{}", self.line)
    }
}

fn hex_addr<S: serde::Serializer>(addr: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{addr:#x}"))
}

/// `"0x4087e6"` → 0x4087e6 (0 when it is not an address).
fn addr_from_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = std::borrow::Cow::<str>::deserialize(d)?;
    Ok(u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0))
}

/// The frames of one address, innermost first.
pub type FrameGroup = Arc<[Frame]>;

/// A symbolized stack, innermost first. Cloning it is one reference count.
/// Serialized as the flat array of its frames.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    groups: Arc<[FrameGroup]>,
    len: usize,
}

impl Stack {
    /// From the frames of each address, innermost address first.
    pub fn from_groups(groups: Vec<FrameGroup>) -> Self {
        let len = groups.iter().map(|g| g.len()).sum();
        Stack {
            groups: groups.into(),
            len,
        }
    }

    /// From frames, grouped by their addresses (consecutive frames with
    /// the same address form one group).
    pub fn from_frames(frames: Vec<Frame>) -> Self {
        let mut groups: Vec<FrameGroup> = Vec::new();
        let mut rest = &frames[..];
        while let Some(head) = rest.first() {
            let run = rest.iter().take_while(|f| f.addr == head.addr).count();
            groups.push(rest[..run].into());
            rest = &rest[run..];
        }
        Self::from_groups(groups)
    }

    /// The frames, innermost first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Frame> + Clone + '_ {
        self.groups.iter().flat_map(|g| g.iter())
    }

    /// The frame groups, innermost address first.
    pub fn groups(&self) -> &[FrameGroup] {
        &self.groups
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The innermost frame.
    pub fn first(&self) -> Option<&Frame> {
        self.iter().next()
    }

    /// The `i`-th frame, innermost first.
    pub fn get(&self, mut i: usize) -> Option<&Frame> {
        for g in self.groups.iter() {
            if i < g.len() {
                return g.get(i);
            }
            i -= g.len();
        }
        None
    }

    /// Whether both are the same shared stack (not merely equal).
    pub fn same(&self, other: &Stack) -> bool {
        Arc::ptr_eq(&self.groups, &other.groups)
    }
}

impl From<Vec<Frame>> for Stack {
    fn from(frames: Vec<Frame>) -> Self {
        Stack::from_frames(frames)
    }
}

impl PartialEq for Stack {
    fn eq(&self, other: &Self) -> bool {
        self.same(other) || (self.len == other.len && self.iter().eq(other.iter()))
    }
}

impl Eq for Stack {}

impl Serialize for Stack {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for f in self.iter() {
            seq.serialize_element(f)?;
        }
        seq.end()
    }
}

impl<'a> IntoIterator for &'a Stack {
    type Item = &'a Frame;
    type IntoIter = Box<dyn DoubleEndedIterator<Item = &'a Frame> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(func: &str, addr: u64, inlined: bool) -> Frame {
        Frame::new(func, "/src/main.go", 1, addr, inlined)
    }

    #[test]
    fn frames_are_grouped_by_address_and_read_flat() {
        let frames = vec![
            frame("runtime.mapdelete", 0x10, false),
            frame("maps.DeleteFunc", 0x20, true),
            frame("main.prune", 0x20, false),
            frame("main.main", 0x30, false),
        ];
        let stack = Stack::from_frames(frames.clone());
        assert_eq!(stack.groups().len(), 3);
        assert_eq!(stack.len(), 4);
        assert_eq!(stack.iter().cloned().collect::<Vec<_>>(), frames);
        assert_eq!(stack.get(2).map(|f| &*f.func), Some("main.prune"));
        assert_eq!(stack.get(4), None);
        assert_eq!(
            serde_json::to_value(&stack).unwrap(),
            serde_json::to_value(&frames).unwrap()
        );
        let copy = Stack::from_frames(frames);
        assert!(copy == stack && !copy.same(&stack) && stack.clone().same(&stack));
        assert!(Stack::default().is_empty());
    }
}
