//! The alert rule language (documented in `docs/monitoring.md`):
//!
//! ```text
//! rule      = func "(" item { "," item } ")" op threshold "within" duration
//! func      = "count" | "rate"
//! item      = dim | dim "=" string            a bare dim groups, dim="v" filters
//! dim       = "map" | "map_type" | "caller" | "key"
//! op        = ">" | ">="
//! threshold = number [ "/s" | "/m" | "/h" ]    the unit only with rate()
//! duration  = 30s, 5m, 1h30m, ...
//! string    = "..." or '...' (backslash escapes \" \' \\)
//! ```
//!
//! `count(map) > 100 within 5m`, `rate(caller) > 1000/s within 30s`,
//! `count(map_type="main.UserMap") > 10 within 1m`,
//! `count(key, map_type="main.UserMap") >= 3 within 10s`.
//!
//! The first bare dimension groups; without one, the first filter's
//! dimension does (one group: its value). Errors carry the 1-based column.

use std::fmt;
use std::time::Duration;

/// What a rule groups or filters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    /// The map's address.
    Map,
    MapType,
    /// `file:line` of the call site (or its function name in a filter).
    Caller,
    Key,
}

impl Dim {
    pub fn name(self) -> &'static str {
        match self {
            Dim::Map => "map",
            Dim::MapType => "map_type",
            Dim::Caller => "caller",
            Dim::Key => "key",
        }
    }

    /// Counted exactly in the kernel (per map type and call site); the
    /// others need per-delete records.
    pub fn exact(self) -> bool {
        matches!(self, Dim::MapType | Dim::Caller)
    }

    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "map" => Dim::Map,
            "map_type" => Dim::MapType,
            "caller" => Dim::Caller,
            "key" => Dim::Key,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// Deletes in the window.
    Count,
    /// Deletes per second over the window.
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// One parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule as written (whitespace trimmed).
    pub text: String,
    /// A name from a rules file.
    pub name: Option<String>,
    pub func: Func,
    pub group: Dim,
    pub filters: Vec<(Dim, String)>,
    pub op: Op,
    /// Deletes (count) or deletes per second (rate).
    pub threshold: f64,
    pub window: Duration,
}

impl Rule {
    /// Every dimension it uses is counted in the kernel: exact whatever the
    /// sampling.
    pub fn exact(&self) -> bool {
        self.group.exact() && self.filters.iter().all(|(d, _)| d.exact())
    }

    /// The window as written in the rule's canonical form (`5m`).
    pub fn window_text(&self) -> String {
        humantime::format_duration(self.window)
            .to_string()
            .replace(' ', "")
    }
}

/// A syntax error at a 1-based column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub column: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for RuleError {}

/// The longest window a rule may have.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The shortest: the exact counters are read every 500 ms.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    Comma,
    Eq,
    Op(Op),
    Slash,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Num(n) => format!("the number {n}"),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::Eq => "'='".into(),
            Tok::Op(op) => format!("'{}'", op.symbol()),
            Tok::Slash => "'/'".into(),
            Tok::End => "the end of the rule".into(),
        }
    }
}

/// Tokens with their 1-based columns (in characters).
fn lex(src: &str) -> Result<Vec<(Tok, usize)>, RuleError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |col: usize, message: String| {
        Err(RuleError {
            column: col,
            message,
        })
    };
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '/' => Tok::Slash,
            '=' if chars.get(i + 1) == Some(&'=') => {
                i += 1;
                Tok::Eq
            }
            '=' => Tok::Eq,
            '>' if chars.get(i + 1) == Some(&'=') => {
                i += 1;
                Tok::Op(Op::Ge)
            }
            '>' => Tok::Op(Op::Gt),
            '<' => {
                return err(
                    col,
                    "'<' is not supported: a rule fires when a count or rate goes above its threshold (use '>' or '>=')".into(),
                )
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return err(col, format!("unterminated string: no closing {quote}")),
                        Some(&'\\') => {
                            match chars.get(i + 1) {
                                Some(&e @ ('"' | '\'' | '\\')) => s.push(e),
                                Some(other) => {
                                    return err(i + 1, format!("unknown escape '\\{other}' (use \\\" \\' or \\\\)"))
                                }
                                None => return err(i + 1, format!("unterminated string: no closing {quote}")),
                            }
                            i += 2;
                        }
                        Some(&ch) if ch == quote => break,
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                Tok::Str(s)
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i + 1 < chars.len()
                    && (chars[i + 1].is_ascii_alphanumeric() || chars[i + 1] == '.')
                {
                    i += 1;
                }
                let text: String = chars[start..=i].iter().collect();
                // A duration (5m, 1h30m) is a word; a plain number a number.
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => Tok::Num(n),
                    _ => Tok::Word(text),
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i + 1 < chars.len() && (chars[i + 1].is_alphanumeric() || chars[i + 1] == '_') {
                    i += 1;
                }
                Tok::Word(chars[start..=i].iter().collect())
            }
            other => return err(col, format!("unexpected character '{other}'")),
        };
        out.push((tok, col));
        i += 1;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &(Tok, usize) {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn fail<T>(&self, col: usize, message: impl Into<String>) -> Result<T, RuleError> {
        Err(RuleError {
            column: col,
            message: message.into(),
        })
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), RuleError> {
        let (tok, col) = self.next();
        if tok == want {
            Ok(())
        } else {
            self.fail(col, format!("expected {what}, found {}", tok.describe()))
        }
    }
}

/// Parses one rule (see the module documentation for the syntax).
pub fn parse(src: &str) -> Result<Rule, RuleError> {
    let text = src.trim();
    // Columns refer to `src` as given.
    let mut p = Parser {
        toks: lex(src)?,
        pos: 0,
    };
    let func = match p.next() {
        (Tok::Word(w), _) if w == "count" => Func::Count,
        (Tok::Word(w), _) if w == "rate" => Func::Rate,
        (tok, col) => {
            return p.fail(
                col,
                format!("expected count(...) or rate(...), found {}", tok.describe()),
            )
        }
    };
    p.expect(Tok::LParen, "'(' after the function")?;
    let mut group: Option<Dim> = None;
    let mut filters = Vec::new();
    loop {
        let (tok, col) = p.next();
        let dim = match &tok {
            Tok::Word(w) => Dim::parse(w),
            _ => None,
        };
        let Some(dim) = dim else {
            return p.fail(
                col,
                format!(
                    "expected map, map_type, caller or key, found {}",
                    tok.describe()
                ),
            );
        };
        if p.peek().0 == Tok::Eq {
            p.next();
            match p.next() {
                (Tok::Str(v), col) => {
                    if dim == Dim::Map && parse_address(&v).is_none() {
                        return p.fail(
                            col,
                            format!("map=\"{v}\": expected a map address such as \"0xc000012345\""),
                        );
                    }
                    filters.push((dim, v));
                }
                (tok, col) => {
                    return p.fail(
                        col,
                        format!(
                            "expected a quoted value after '{}=', found {}",
                            dim.name(),
                            tok.describe()
                        ),
                    )
                }
            }
        } else if let Some(g) = group {
            return p.fail(
                col,
                format!(
                    "a rule groups by one dimension: already grouped by {}",
                    g.name()
                ),
            );
        } else {
            group = Some(dim);
        }
        match p.next() {
            (Tok::Comma, _) => continue,
            (Tok::RParen, _) => break,
            (tok, col) => {
                return p.fail(
                    col,
                    format!("expected ',' or ')', found {}", tok.describe()),
                )
            }
        }
    }
    let group = match group.or_else(|| filters.first().map(|f| f.0)) {
        Some(g) => g,
        None => unreachable!("the loop reads at least one item"),
    };
    let op = match p.next() {
        (Tok::Op(op), _) => op,
        (tok, col) => {
            return p.fail(
                col,
                format!("expected '>' or '>=', found {}", tok.describe()),
            )
        }
    };
    let (threshold, tcol) = match p.next() {
        (Tok::Num(n), col) if n >= 0.0 => (n, col),
        (tok, col) => {
            return p.fail(
                col,
                format!("expected a threshold (a number), found {}", tok.describe()),
            )
        }
    };
    let mut threshold = threshold;
    if p.peek().0 == Tok::Slash {
        let (_, slash_col) = p.next();
        if func == Func::Count {
            return p.fail(
                slash_col,
                "a count threshold is a number of deletes: write rate(...) for a per-second threshold",
            );
        }
        let per = match p.next() {
            (Tok::Word(w), _) if w == "s" => 1.0,
            (Tok::Word(w), _) if w == "m" => 60.0,
            (Tok::Word(w), _) if w == "h" => 3600.0,
            (tok, col) => {
                return p.fail(
                    col,
                    format!("expected s, m or h after '/', found {}", tok.describe()),
                )
            }
        };
        threshold /= per;
    } else if func == Func::Count && threshold.fract() != 0.0 {
        return p.fail(tcol, "a count threshold is a whole number of deletes");
    }
    match p.next() {
        (Tok::Word(w), _) if w == "within" => {}
        (tok, col) => {
            return p.fail(
                col,
                format!("expected 'within' and a window, found {}", tok.describe()),
            )
        }
    }
    let (dur_text, dcol) = match p.next() {
        (Tok::Word(w), col) => (w, col),
        (Tok::Num(_), col) => return p.fail(col, "the window needs a unit (e.g. 30s, 5m, 1h)"),
        (tok, col) => {
            return p.fail(
                col,
                format!(
                    "expected a window such as 30s or 5m, found {}",
                    tok.describe()
                ),
            )
        }
    };
    let window = humantime::parse_duration(&dur_text).map_err(|e| RuleError {
        column: dcol,
        message: format!("bad window '{dur_text}': {e} (e.g. 30s, 5m, 1h)"),
    })?;
    if window < MIN_WINDOW || window > MAX_WINDOW {
        return p.fail(
            dcol,
            format!("the window must be between 1s and 24h, not {dur_text}"),
        );
    }
    let (tok, col) = p.next();
    if tok != Tok::End {
        return p.fail(
            col,
            format!("unexpected {} after the window", tok.describe()),
        );
    }
    Ok(Rule {
        text: text.to_string(),
        name: None,
        func,
        group,
        filters,
        op,
        threshold,
        window,
    })
}

/// `0xc000012345` or a decimal address.
pub fn parse_address(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_examples_parse() {
        let r = parse("count(map) > 100 within 5m").unwrap();
        assert_eq!(
            (r.func, r.group, r.op, r.threshold),
            (Func::Count, Dim::Map, Op::Gt, 100.0)
        );
        assert_eq!(r.window, Duration::from_secs(300));
        assert!(!r.exact());
        assert_eq!(r.window_text(), "5m");

        let r = parse("rate(caller) > 1000/s within 30s").unwrap();
        assert_eq!(
            (r.func, r.group, r.threshold),
            (Func::Rate, Dim::Caller, 1000.0)
        );
        assert!(r.exact());

        let r = parse(r#"count(map_type="main.UserMap") > 10 within 1m"#).unwrap();
        assert_eq!(r.group, Dim::MapType);
        assert_eq!(r.filters, vec![(Dim::MapType, "main.UserMap".to_string())]);
        assert!(r.exact());

        let r = parse(r#"count(key, map_type='map[string]int') >= 3 within 1h30m"#).unwrap();
        assert_eq!((r.group, r.op), (Dim::Key, Op::Ge));
        assert_eq!(r.window, Duration::from_secs(5400));

        let r = parse("rate(map_type) > 60/m within 10s").unwrap();
        assert_eq!(r.threshold, 1.0);
    }

    fn col(src: &str) -> (usize, String) {
        let e = parse(src).unwrap_err();
        (e.column, e.message)
    }

    #[test]
    fn errors_point_at_the_column() {
        assert_eq!(col("cnt(map) > 1 within 5m").0, 1);
        assert_eq!(col("count(maps) > 1 within 5m").0, 7);
        assert_eq!(col("count(map) >> 1 within 5m").0, 13);
        assert_eq!(col("count(map) < 1 within 5m").0, 12);
        assert_eq!(col("count(map) > x within 5m").0, 14);
        assert_eq!(col("count(map) > 1/s within 5m").0, 15);
        assert_eq!(col("count(map) > 1.5 within 5m").0, 14);
        assert_eq!(col("count(map) > 100 in 5m").0, 18);
        assert_eq!(col("count(map) > 100 within 5").0, 25);
        assert_eq!(col("count(map) > 100 within 5q").0, 25);
        assert_eq!(col("count(map) > 100 within 48h").0, 25);
        assert_eq!(col("count(map) > 100 within 5m now").0, 28);
        assert_eq!(col("count(map, key) > 1 within 5m").0, 12);
        assert_eq!(col("count(map=0x1) > 1 within 5m").0, 11);
        assert_eq!(col(r#"count(map="zz") > 1 within 5m"#).0, 11);
        assert_eq!(col(r#"count(key="abc) > 1 within 5m"#).0, 11);
        assert_eq!(col("rate(caller) > 1/d within 5m").0, 18);
        assert!(col("count(map) >> 1 within 5m")
            .1
            .contains("expected a threshold"));
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address("0xc000012345"), Some(0xc000012345));
        assert_eq!(parse_address("4096"), Some(4096));
        assert_eq!(parse_address("zz"), None);
    }
}
