//! The classic folded format: `root;...;leaf count`, one stack per line.

use std::fmt::Write as _;

use super::Profile;

/// Stacks that differ only in lines or addresses fold into one line
/// (folded text names functions); `min_count` applies to the folded lines.
pub fn write(profile: &Profile) -> String {
    let mut out = String::new();
    for (stack, count) in profile.folded_lines() {
        let _ = writeln!(out, "{stack} {count}");
    }
    out
}

/// Parses folded text into (frames root first, count), with one clear
/// error for a malformed line.
pub fn parse(text: &str) -> anyhow::Result<Vec<(Vec<String>, u64)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let (stack, count) = line
            .rsplit_once(' ')
            .and_then(|(s, c)| Some((s, c.parse::<u64>().ok()?)))
            .ok_or_else(|| anyhow::anyhow!("line {}: not `frame;frame;... count`", n + 1))?;
        if stack.is_empty() {
            anyhow::bail!("line {}: empty stack", n + 1);
        }
        out.push((stack.split(';').map(str::to_string).collect(), count));
    }
    Ok(out)
}
