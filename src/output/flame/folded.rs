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

#[cfg(test)]
mod tests {
    use super::super::{FlameFrame, FlameStack};
    use super::*;

    fn stack(names: &[&str], count: u64) -> FlameStack {
        FlameStack {
            frames: names.iter().map(|n| FlameFrame::synthetic(n)).collect(),
            count,
            map_type: None,
        }
    }

    fn profile(min_count: u64) -> Profile {
        let mut p = Profile::default();
        p.stacks
            .push(stack(&["main.main", "main.prune", "runtime.mapdelete"], 5));
        p.stacks.push(stack(&["main.main", "runtime.mapclear"], 1));
        let by_map_type = ["struct { a int; b int }", "main.main", "runtime.mapdelete"];
        p.stacks.push(stack(&by_map_type, 2));
        p.add_unknown("[unknown stack]", 2);
        p.finish(min_count);
        p
    }

    fn line(frames: &[&str], count: u64) -> (Vec<String>, u64) {
        (frames.iter().map(|f| f.to_string()).collect(), count)
    }

    fn parse_err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn each_stack_is_one_sorted_line_root_first_with_its_count() {
        assert_eq!(
            write(&profile(1)),
            "[unknown stack] 2\n\
             main.main;main.prune;runtime.mapdelete 5\n\
             main.main;runtime.mapclear 1\n\
             struct { a int: b int };main.main;runtime.mapdelete 2\n"
        );
    }

    #[test]
    fn lines_under_min_count_are_left_out() {
        assert_eq!(
            write(&profile(3)),
            "main.main;main.prune;runtime.mapdelete 5\n"
        );
        assert_eq!(write(&Profile::default()), "");
    }

    #[test]
    fn written_text_parses_back_to_the_same_stacks() {
        assert_eq!(
            parse(&write(&profile(1))).unwrap(),
            [
                line(&["[unknown stack]"], 2),
                line(&["main.main", "main.prune", "runtime.mapdelete"], 5),
                line(&["main.main", "runtime.mapclear"], 1),
                line(
                    &["struct { a int: b int }", "main.main", "runtime.mapdelete"],
                    2
                ),
            ]
        );
    }

    #[test]
    fn blank_lines_and_trailing_whitespace_are_ignored() {
        assert_eq!(
            parse("a;b 3  \r\n\n\nc 1").unwrap(),
            [line(&["a", "b"], 3), line(&["c"], 1)]
        );
        assert_eq!(parse("").unwrap(), []);
    }

    #[test]
    fn a_malformed_line_is_named_by_its_number() {
        let not_folded = "not `frame;frame;... count`";
        assert_eq!(
            parse_err("main.main 1\nmain.main\n"),
            format!("line 2: {not_folded}")
        );
        assert_eq!(parse_err("a 1\n\nb x"), format!("line 3: {not_folded}"));
        assert_eq!(parse_err("a -1"), format!("line 1: {not_folded}"));
        assert_eq!(
            parse_err("a 18446744073709551616"),
            format!("line 1: {not_folded}")
        );
        assert_eq!(parse_err("a 1\n 4"), "line 2: empty stack");
    }
}
