//! `--alerts FILE`: rules from a TOML or YAML file (by extension: `.toml`,
//! `.yaml`/`.yml`; otherwise TOML, then YAML).
//!
//! ```toml
//! [[alert]]
//! name = "hot map"
//! rule = "count(map) > 100 within 5m"
//!
//! [[alert]]
//! rule = "rate(caller) > 1000/s within 30s"
//! ```
//!
//! ```yaml
//! alerts:
//!   - name: hot map
//!     rule: count(map) > 100 within 5m
//!   - rate(caller) > 1000/s within 30s
//! ```

use std::path::Path;

use serde::Deserialize;

use super::rule::{self, Rule};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(alias = "alert")]
    alerts: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Item {
    Text(String),
    Full(Full),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Full {
    rule: String,
    name: Option<String>,
}

/// Reads and parses every rule of `path`; errors are one line that names
/// the file, the rule and the column.
pub fn load(path: &Path) -> Result<Vec<Rule>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text, path)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

pub fn parse(text: &str, path: &Path) -> Result<Vec<Rule>, String> {
    let name = path.display();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let from_toml = |t: &str| -> Result<Doc, String> {
        toml::from_str::<Doc>(t).map_err(|e| match e.span() {
            Some(span) => {
                let (l, c) = line_col(t, span.start);
                format!("{name}: line {l}, column {c}: {}", one_line(e.message()))
            }
            None => format!("{name}: {}", one_line(e.message())),
        })
    };
    let from_yaml = |t: &str| -> Result<Doc, String> {
        serde_norway::from_str::<Doc>(t)
            .map_err(|e| format!("{name}: {}", one_line(&e.to_string())))
    };
    let doc = match ext.as_str() {
        "toml" => from_toml(text)?,
        "yaml" | "yml" => from_yaml(text)?,
        _ => match from_toml(text) {
            Ok(d) => d,
            Err(toml_err) => from_yaml(text).map_err(|_| toml_err)?,
        },
    };
    if doc.alerts.is_empty() {
        return Err(format!("{name}: no rules (expected a list of alerts)"));
    }
    doc.alerts
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let (text, rule_name) = match item {
                Item::Text(t) => (t, None),
                Item::Full(f) => (f.rule, f.name),
            };
            let mut r = rule::parse(&text)
                .map_err(|e| format!("{name}: rule {} ({:?}): {e}", i + 1, text.trim()))?;
            r.name = rule_name;
            Ok(r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_yaml() {
        let t = "[[alert]]\nname = \"hot map\"\nrule = \"count(map) > 100 within 5m\"\n\n[[alert]]\nrule = \"rate(caller) > 1000/s within 30s\"\n";
        let rules = parse(t, Path::new("a.toml")).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].name.as_deref(), Some("hot map"));
        let y = "alerts:\n  - name: hot map\n    rule: count(map) > 100 within 5m\n  - rate(caller) > 1000/s within 30s\n";
        let rules = parse(y, Path::new("a.yaml")).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].threshold, 1000.0);
        // No extension: either.
        assert_eq!(parse(y, Path::new("rules")).unwrap().len(), 2);
        assert_eq!(parse(t, Path::new("rules")).unwrap().len(), 2);
    }

    #[test]
    fn outcome_and_latency_rules() {
        let y = "alerts:\n  - name: misses\n    rule: absent(caller) > 50% within 1m min 10\n  - p99(map_type, op=\"clear\") > 1ms within 5m\n";
        let rules = parse(y, Path::new("a.yaml")).unwrap();
        assert_eq!(rules[0].measure, rule::Measure::Absent);
        assert_eq!((rules[0].threshold, rules[0].min), (0.5, 10));
        assert_eq!(rules[1].func_name(), "p99");
        let e = parse(
            "alerts = [\"p99(caller) > 1ms within 1m\"]\n",
            Path::new("r.toml"),
        )
        .unwrap_err();
        assert!(
            e.starts_with("r.toml: rule 1 (\"p99(caller) > 1ms within 1m\"): column 5: ")
                && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn errors_are_one_line_with_the_place() {
        let e = parse(
            "alerts = [\"count(map) >> 1 within 5m\"]\n",
            Path::new("r.toml"),
        )
        .unwrap_err();
        assert_eq!(e, "r.toml: rule 1 (\"count(map) >> 1 within 5m\"): column 13: expected a threshold (a number), found '>'");
        let e = parse("[[alert]]\nrule = \"x\nname = 1\n", Path::new("r.toml")).unwrap_err();
        assert!(e.starts_with("r.toml: line 2, column"), "{e}");
        assert!(!e.contains('\n'));
        let e = parse(
            "[[alert]]\nrul = \"count(map) > 1 within 5m\"\n",
            Path::new("r.toml"),
        )
        .unwrap_err();
        assert!(!e.contains('\n') && e.starts_with("r.toml:"), "{e}");
        let e = parse("alerts:\n  - rule: [\n", Path::new("r.yml")).unwrap_err();
        assert!(!e.contains('\n') && e.starts_with("r.yml:"), "{e}");
        assert!(parse("alerts = []\n", Path::new("r.toml"))
            .unwrap_err()
            .contains("no rules"));
    }
}
