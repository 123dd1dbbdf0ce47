//! The alert rule language (documented in `docs/monitoring.md`):
//!
//! ```text
//! rule      = func "(" item { "," item } ")" op threshold "within" duration [ "min" calls ]
//!           | memory { "and" memory }          the maps' memory, as last read
//!           | "fatal" "(" [ "message" [ "=" string ] ] ")"
//!                                              the target died of a fatal error
//! memory    = gauge "(" mitem { "," mitem } ")" cmp mthreshold
//! gauge     = "fill" | "bytes" | "cap" | "len" | "tombstones"
//! mitem     = "map" | "map_type" | ( "map" | "map_type" ) "=" string
//! cmp       = "<" | "<=" | ">" | ">="
//! mthreshold= share (fill) | number [ "B" | "KiB" | "MiB" | "GiB" | "KB" | "MB" | "GB" ] (bytes)
//!           | a whole number (cap, len, tombstones)
//! func      = "count" | "rate" | "absent" | quantile
//! quantile  = "p" NN [ "." N ]                  p50, p90, p99, p99.9 (up to 3 decimals)
//! item      = dim | dim "=" string | "op" "=" ( "delete" | "clear" )
//!                                              a bare dim groups, dim="v" filters
//! dim       = "map" | "map_type" | "caller" | "key" | "label:" KEY
//!                                              KEY: a goroutine label's key
//!                                              (letters, digits, _ . -)
//! op        = ">" | ">="
//! threshold = number [ "/s" | "/m" | "/h" ]    count (a whole number), rate (per unit)
//!           | share                            absent(): 0.5 or 50%, in [0, 1]
//!           | latency                          pNN(): 100ns, 250us, 250µs, 1.5ms, 1s
//! duration  = 30s, 5m, 1h30m, ...
//! calls     = a whole number >= 1              absent() and pNN() only
//! string    = "..." or '...' (backslash escapes \" \' \\)
//! ```
//!
//! `count(map) > 100 within 5m`, `rate(caller) > 1000/s within 30s`,
//! `count(map_type="main.UserMap") > 10 within 1m`,
//! `count(key, map_type="main.UserMap") >= 3 within 10s`,
//! `absent(caller) > 0.5 within 1m min 10`,
//! `p99(map_type="main.Cache") > 1ms within 5m`,
//! `p99(map_type, op="clear") > 100us within 1m`,
//! `count(label:tenant) > 1000 within 1m`,
//! `rate(label:endpoint, map_type="main.Cache") > 500/s within 30s`,
//! `fill(map) < 5% and bytes(map) > 64MiB`,
//! `bytes(map_type="main.Cache") > 1GiB`,
//! `fatal(message)`, `fatal(message="concurrent map writes")`.
//!
//! The first bare dimension groups; without one, the first filter's
//! dimension does (one group: its value). `absent()` reads the kernel's
//! outcome counts per call site (map_type, caller only); `pNN()` the
//! latency histograms per map type (map_type only; `op="clear"` for the
//! clears instead of the deletes). Errors carry the 1-based column.

use std::fmt;
use std::time::Duration;

/// What a rule groups or filters by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    /// The map's address.
    Map,
    MapType,
    /// `file:line` of the call site (or its function name in a filter).
    Caller,
    Key,
    /// The value of the goroutine label with this key (`label:KEY`).
    Label(std::sync::Arc<str>),
    /// A fatal error's message (`fatal(...)` rules only).
    Message,
}

impl Dim {
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Dim::Map => "map".into(),
            Dim::MapType => "map_type".into(),
            Dim::Caller => "caller".into(),
            Dim::Key => "key".into(),
            Dim::Label(key) => format!("label:{key}").into(),
            Dim::Message => "message".into(),
        }
    }

    /// Counted exactly in the kernel (per map type and call site); the
    /// others need per-delete records.
    pub fn exact(&self) -> bool {
        matches!(self, Dim::MapType | Dim::Caller | Dim::Message)
    }

    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "map" => Dim::Map,
            "map_type" => Dim::MapType,
            "caller" => Dim::Caller,
            "key" => Dim::Key,
            "message" => Dim::Message,
            _ => Dim::Label(
                word.strip_prefix("label:")
                    .filter(|k| !k.is_empty())?
                    .into(),
            ),
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

/// What a rule's value is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// `count(...)` or `rate(...)` (the rule's [`Func`]): deletes.
    Deletes,
    /// `absent(...)`: the share (0 to 1) of the deletes whose outcome was
    /// measured that found no entry.
    Absent,
    /// `pNN(...)`: the upper bound (ns) of the latency bucket holding the
    /// quantile of the calls' durations (infinite past the last bound).
    Quantile(Quantile),
    /// `fill(map) < 5% and bytes(map) > 64MiB`: the maps' memory as last
    /// read (`crate::mapmem`), every condition holding at once; the value
    /// is the first condition's.
    Memory(MemoryConds),
    /// `fatal(...)`: the target died of a fatal error (crash forensics);
    /// fires once, with the fatal record, and never resolves.
    Fatal,
}

/// What a memory rule reads of a map (or the sum over a map type's maps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// len / cap, 0 to 1.
    Fill,
    Bytes,
    /// Slots.
    Cap,
    Len,
    /// Deleted slots still marked (Swiss maps; 0 for classic ones).
    Tombstones,
}

impl Gauge {
    fn parse(word: &str) -> Option<Gauge> {
        Some(match word {
            "fill" => Gauge::Fill,
            "bytes" => Gauge::Bytes,
            "cap" => Gauge::Cap,
            "len" => Gauge::Len,
            "tombstones" => Gauge::Tombstones,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Gauge::Fill => "fill",
            Gauge::Bytes => "bytes",
            Gauge::Cap => "cap",
            Gauge::Len => "len",
            Gauge::Tombstones => "tombstones",
        }
    }

    /// The unit of its values in the alert JSON.
    pub fn unit(self) -> &'static str {
        match self {
            Gauge::Fill => "ratio",
            Gauge::Bytes => "bytes",
            Gauge::Cap => "slots",
            Gauge::Len => "entries",
            Gauge::Tombstones => "tombstones",
        }
    }

    /// A value for people: `4.2%`, `64MiB`, `131072`.
    pub fn text(self, v: f64) -> String {
        match self {
            Gauge::Fill => percent_text(v),
            Gauge::Bytes => crate::events::mapmem::short_bytes(v as u64),
            _ => plain(v),
        }
    }
}

/// One condition of a memory rule: `bytes(map) > 64MiB`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemCond {
    pub gauge: Gauge,
    pub op: Op,
    pub threshold: f64,
}

/// A memory rule's conditions (at most [`MAX_CONDS`]), all of which hold
/// for it to fire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryConds {
    pub conds: [Option<MemCond>; MAX_CONDS],
}

/// Conditions of one memory rule at most.
pub const MAX_CONDS: usize = 4;

impl MemoryConds {
    pub fn iter(&self) -> impl Iterator<Item = &MemCond> {
        self.conds.iter().flatten()
    }

    pub fn first(&self) -> MemCond {
        self.conds[0].expect("a memory rule has a condition")
    }

    /// `fill < 5% and bytes > 64MiB`.
    pub fn text(&self) -> String {
        self.iter()
            .map(|c| {
                format!(
                    "{} {} {}",
                    c.gauge.name(),
                    c.op.symbol(),
                    c.gauge.text(c.threshold)
                )
            })
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// The quantile of a `pNN(...)` rule and the calls it is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantile {
    /// In 1/100000: p99 = 99_000, p99.9 = 99_900, p100 = 100_000.
    pub per_100k: u32,
    /// Of the clears (`op="clear"`), else of the deletes.
    pub clears: bool,
}

impl Quantile {
    /// `p99`, `p99.9`.
    pub fn name(self) -> String {
        let (whole, frac) = (self.per_100k / 1000, self.per_100k % 1000);
        if frac == 0 {
            format!("p{whole}")
        } else {
            let digits = format!("{frac:03}");
            format!("p{whole}.{}", digits.trim_end_matches('0'))
        }
    }

    /// `deletes` or `clears`.
    pub fn calls(self) -> &'static str {
        if self.clears {
            "clears"
        } else {
            "deletes"
        }
    }
}

/// `100ns`, `250µs`, `1.5ms`, `1s`: the largest unit that keeps the number
/// at least 1, up to 3 decimals: a threshold as precise as it was written
/// (the compact form of measured values is `events::short_duration`).
pub fn duration_text(ns: u64) -> String {
    let (div, unit) = match ns {
        n if n >= 1_000_000_000 => (1e9, "s"),
        n if n >= 1_000_000 => (1e6, "ms"),
        n if n >= 1_000 => (1e3, "µs"),
        _ => (1.0, "ns"),
    };
    let v = format!("{:.3}", ns as f64 / div);
    let v = v.trim_end_matches('0').trim_end_matches('.');
    format!("{v}{unit}")
}

/// A share as a percent: `50%`, `33.3%`, `100%` (only when it is 1).
pub fn percent_text(share: f64) -> String {
    let p = share * 100.0;
    let mut v = format!("{p:.1}");
    if v == "100.0" && share < 1.0 {
        v = "99.9".into();
    }
    let v = v.strip_suffix(".0").unwrap_or(&v);
    format!("{v}%")
}

/// A number as in the JSON: integers without a fraction, else 3 decimals.
fn plain(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        format!("{}", v as i64)
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

/// The bucket holding `bound` (the upper bound of one, or infinite) as a
/// range: `2ms–5ms`, `≤100ns` (the first), `>1s` (past the last).
pub fn bucket_text(bound: f64) -> String {
    let bounds = &crate::probes::LATENCY_BOUNDS_NS;
    if !bound.is_finite() || bound > crate::probes::LATENCY_LAST_BOUND_NS as f64 {
        return format!(">{}", duration_text(crate::probes::LATENCY_LAST_BOUND_NS));
    }
    let b = bound as u64;
    match bounds.iter().position(|&x| x == b) {
        Some(0) => format!("≤{}", duration_text(b)),
        Some(i) => format!("{}–{}", duration_text(bounds[i - 1]), duration_text(b)),
        None => format!("≤{}", duration_text(b)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    /// Memory rules only (`fill(map) < 5%`).
    Lt,
    Le,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
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
    /// `count` or `rate` for [`Measure::Deletes`]; `Count` (and unused)
    /// for the others.
    pub func: Func,
    pub measure: Measure,
    pub group: Dim,
    pub filters: Vec<(Dim, String)>,
    pub op: Op,
    /// Deletes (count), deletes per second (rate), a share from 0 to 1
    /// (absent), or nanoseconds (a quantile).
    pub threshold: f64,
    pub window: Duration,
    /// `absent()` and `pNN()`: the measured calls a group needs in the
    /// window to have a value (`min N`; 1 when not given).
    pub min: u64,
}

impl Rule {
    /// `count`, `rate`, `absent`, `p99`, ...
    pub fn func_name(&self) -> String {
        match self.measure {
            Measure::Deletes => match self.func {
                Func::Count => "count".into(),
                Func::Rate => "rate".into(),
            },
            Measure::Absent => "absent".into(),
            Measure::Quantile(q) => q.name(),
            Measure::Memory(m) => m.first().gauge.name().into(),
            Measure::Fatal => "fatal".into(),
        }
    }

    /// The unit of `value` and `threshold` in the alert JSON: `deletes`,
    /// `deletes/s`, `ratio` (absent, 0 to 1) or `ns` (a quantile).
    pub fn unit(&self) -> &'static str {
        match (self.measure, self.func) {
            (Measure::Deletes, Func::Count) => "deletes",
            (Measure::Deletes, Func::Rate) => "deletes/s",
            (Measure::Absent, _) => "ratio",
            (Measure::Quantile(_), _) => "ns",
            (Measure::Memory(m), _) => m.first().gauge.unit(),
            (Measure::Fatal, _) => "fatal errors",
        }
    }

    /// A value of this rule for people: `150`, `12.5/s`, `50%`, `2ms–5ms`
    /// (the bucket holding the quantile).
    pub fn value_text(&self, v: f64) -> String {
        match (self.measure, self.func) {
            (Measure::Deletes, Func::Count) => plain(v),
            (Measure::Deletes, Func::Rate) => format!("{}/s", plain(v)),
            (Measure::Absent, _) => percent_text(v),
            (Measure::Quantile(_), _) => bucket_text(v),
            (Measure::Memory(m), _) => m.first().gauge.text(v),
            (Measure::Fatal, _) => plain(v),
        }
    }

    /// The threshold for people: `100`, `1000/s`, `40%`, `100µs`.
    pub fn threshold_text(&self) -> String {
        match (self.measure, self.func) {
            (Measure::Deletes, Func::Count) => plain(self.threshold),
            (Measure::Deletes, Func::Rate) => format!("{}/s", plain(self.threshold)),
            (Measure::Absent, _) => percent_text(self.threshold),
            (Measure::Quantile(_), _) => duration_text(self.threshold as u64),
            (Measure::Memory(m), _) => m.text(),
            (Measure::Fatal, _) => plain(self.threshold),
        }
    }

    /// What the value is of, after it: `deletes in 5m`, `deletes/s over
    /// 30s`, `of the deletes measured in 1m were of absent keys`, ...
    pub fn measure_text(&self) -> String {
        let w = self.window_text();
        match (self.measure, self.func) {
            (Measure::Deletes, Func::Count) => format!("deletes in {w}"),
            (Measure::Deletes, Func::Rate) => format!("deletes/s over {w}"),
            (Measure::Absent, _) => format!("of the deletes measured in {w} were of absent keys"),
            (Measure::Quantile(q), _) => {
                format!("{} of the {} measured in {w}", q.name(), q.calls())
            }
            (Measure::Memory(m), _) => format!("{} as last read", m.first().gauge.name()),
            (Measure::Fatal, _) => "the target died of a fatal error".into(),
        }
    }

    /// Every dimension it uses is counted in the kernel: exact whatever the
    /// sampling.
    pub fn exact(&self) -> bool {
        // A memory rule reads the maps themselves, a fatal rule the fatal
        // record, whatever the sampling.
        self.windowless() || self.group.exact() && self.filters.iter().all(|(d, _)| d.exact())
    }

    /// A memory rule reads the maps as they are, a fatal rule fires on an
    /// event: neither has a window.
    pub fn windowless(&self) -> bool {
        matches!(self.measure, Measure::Memory(_) | Measure::Fatal)
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
    Percent,
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
            Tok::Percent => "'%'".into(),
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
            '%' => Tok::Percent,
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
            '<' if chars.get(i + 1) == Some(&'=') => {
                i += 1;
                Tok::Op(Op::Le)
            }
            '<' => Tok::Op(Op::Lt),
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return err(col, format!("unterminated string: no closing {quote}"))
                        }
                        Some(&'\\') => {
                            match chars.get(i + 1) {
                                Some(&e @ ('"' | '\'' | '\\')) => s.push(e),
                                Some(other) => {
                                    return err(
                                        i + 1,
                                        format!(
                                            "unknown escape '\\{other}' (use \\\" \\' or \\\\)"
                                        ),
                                    )
                                }
                                None => {
                                    return err(
                                        i + 1,
                                        format!("unterminated string: no closing {quote}"),
                                    )
                                }
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
                // Units may be non-ASCII (250µs).
                while i + 1 < chars.len() && (chars[i + 1].is_alphanumeric() || chars[i + 1] == '.')
                {
                    i += 1;
                }
                let text: String = chars[start..=i].iter().collect();
                // A duration (5m, 1h30m, 250us) is a word; a plain number a number.
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => Tok::Num(n),
                    _ => Tok::Word(text),
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                loop {
                    let next = chars.get(i + 1).copied();
                    let more = match next {
                        Some(n) if n.is_alphanumeric() || n == '_' => true,
                        // The decimals of a quantile: p99.9.
                        Some('.') => {
                            chars[start] == 'p'
                                && i > start
                                && chars[start + 1..=i].iter().all(char::is_ascii_digit)
                                && chars.get(i + 2).is_some_and(char::is_ascii_digit)
                        }
                        _ => false,
                    };
                    if !more {
                        break;
                    }
                    i += 1;
                }
                let word: String = chars[start..=i].iter().collect();
                if word == "label" && chars.get(i + 1) == Some(&':') {
                    // label:KEY.
                    i += 1;
                    let from = i + 1;
                    while chars
                        .get(i + 1)
                        .is_some_and(|&c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
                    {
                        i += 1;
                    }
                    let key: String = chars[from..=i].iter().collect();
                    if key.is_empty() {
                        return err(col, "label: needs a key: label:tenant".into());
                    }
                    Tok::Word(format!("label:{key}"))
                } else {
                    Tok::Word(word)
                }
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
    if matches!(&p.peek().0, Tok::Word(w) if Gauge::parse(w).is_some()) {
        return parse_memory(p, text);
    }
    if p.peek().0 == Tok::Word("fatal".into()) {
        return parse_fatal(p, text);
    }
    let (func, mut measure) = match p.next() {
        (Tok::Word(w), _) if w == "count" => (Func::Count, Measure::Deletes),
        (Tok::Word(w), _) if w == "rate" => (Func::Rate, Measure::Deletes),
        (Tok::Word(w), _) if w == "absent" => (Func::Count, Measure::Absent),
        (Tok::Word(w), col) if is_quantile_word(&w) => match parse_quantile(&w) {
            Some(per_100k) => (
                Func::Count,
                Measure::Quantile(Quantile {
                    per_100k,
                    clears: false,
                }),
            ),
            None => {
                return p.fail(
                    col,
                    format!("'{w}': a quantile is p0.001 to p100, with at most 3 decimals (p50, p90, p99, p99.9)"),
                )
            }
        },
        (tok, col) => {
            return p.fail(
                col,
                format!(
                    "expected count(...), rate(...), absent(...), a quantile such as p99(...), a memory rule such as fill(map) < 5% or fatal(...), found {}",
                    tok.describe()
                ),
            )
        }
    };
    let fname = match measure {
        Measure::Quantile(q) => q.name(),
        Measure::Absent => "absent".into(),
        Measure::Deletes | Measure::Memory(_) | Measure::Fatal => String::new(),
    };
    p.expect(Tok::LParen, "'(' after the function")?;
    let mut group: Option<Dim> = None;
    let mut filters = Vec::new();
    let mut op_given = false;
    loop {
        let (tok, col) = p.next();
        if tok == Tok::Word("op".into()) {
            let Measure::Quantile(q) = &mut measure else {
                return p.fail(
                    col,
                    "op= selects the deletes or the clears of a latency rule (p99(...)): count(), rate() and absent() count deletes only",
                );
            };
            if op_given {
                return p.fail(col, "op= is given twice");
            }
            if p.peek().0 != Tok::Eq {
                return p.fail(
                    col,
                    "op is a filter, not a grouping: op=\"delete\" (the default) or op=\"clear\"",
                );
            }
            p.next();
            match p.next() {
                (Tok::Str(v), _) if v == "delete" => q.clears = false,
                (Tok::Str(v), _) if v == "clear" => q.clears = true,
                (Tok::Str(v), vcol) => {
                    return p.fail(
                        vcol,
                        format!("op=\"{v}\": expected \"delete\" or \"clear\""),
                    )
                }
                (tok, vcol) => {
                    return p.fail(
                        vcol,
                        format!(
                            "expected \"delete\" or \"clear\" after 'op=', found {}",
                            tok.describe()
                        ),
                    )
                }
            }
            op_given = true;
        } else {
            let dim = match &tok {
                Tok::Word(w) => Dim::parse(w),
                _ => None,
            };
            let Some(dim) = dim else {
                let want = match measure {
                    Measure::Deletes | Measure::Memory(_) | Measure::Fatal => {
                        "map, map_type, caller or key"
                    }
                    Measure::Absent => "map_type or caller",
                    Measure::Quantile(_) => "map_type or op",
                };
                return p.fail(col, format!("expected {want}, found {}", tok.describe()));
            };
            match measure {
                _ if dim == Dim::Message => {
                    return p.fail(
                        col,
                        "message is the fatal error's: fatal(message) or fatal(message=\"concurrent map writes\")",
                    )
                }
                Measure::Absent if !dim.exact() => {
                    return p.fail(
                        col,
                        format!(
                            "absent() reads the kernel's outcome counts, kept per map type and call site: group and filter by map_type or caller, not {}",
                            dim.name()
                        ),
                    )
                }
                Measure::Quantile(_) if dim != Dim::MapType => {
                    return p.fail(
                        col,
                        format!(
                            "{fname}() reads the latency histograms, kept per map type: group and filter by map_type only, not {}",
                            dim.name()
                        ),
                    )
                }
                _ => {}
            }
            group_or_filter(&mut p, dim, col, &mut group, &mut filters)?;
        }
        if !more_items(&mut p)? {
            break;
        }
    }
    // Only op=...: a latency rule, whose histograms are per map type.
    let group = group
        .or_else(|| filters.first().map(|f| f.0.clone()))
        .unwrap_or(Dim::MapType);
    let op = match p.next() {
        (Tok::Op(op @ (Op::Lt | Op::Le)), col) => {
            return p.fail(
                col,
                format!("'{}' is not supported: a rule fires when its value goes above its threshold (use '>' or '>='); only memory rules such as fill(map) < 5% compare below", op.symbol()),
            )
        }
        (Tok::Op(op), _) => op,
        (tok, col) => {
            return p.fail(
                col,
                format!("expected '>' or '>=', found {}", tok.describe()),
            )
        }
    };
    let threshold = match measure {
        Measure::Deletes => delete_threshold(&mut p, func)?,
        Measure::Absent => share_threshold(&mut p, op)?,
        Measure::Quantile(_) => latency_threshold(&mut p, &fname)?,
        Measure::Memory(_) | Measure::Fatal => {
            unreachable!("memory and fatal rules have parsers of their own")
        }
    };
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
    let mut min = 1;
    let mut after = "the window";
    if p.peek().0 == Tok::Word("min".into()) {
        let (_, mcol) = p.next();
        if measure == Measure::Deletes {
            return p.fail(
                mcol,
                "'min' is for absent() and pNN() rules (the measured calls a value needs); a count or rate threshold is a number of deletes already",
            );
        }
        min = match p.next() {
            (Tok::Num(n), _) if n >= 1.0 && n.fract() == 0.0 && n <= 1e15 => n as u64,
            (tok, col) => {
                return p.fail(
                    col,
                    format!(
                    "expected a whole number of measured calls (at least 1) after 'min', found {}",
                    tok.describe()
                ),
                )
            }
        };
        after = "'min'";
    }
    let (tok, col) = p.next();
    if tok != Tok::End {
        return p.fail(col, format!("unexpected {} after {after}", tok.describe()));
    }
    Ok(Rule {
        text: text.to_string(),
        name: None,
        func,
        measure,
        group,
        filters,
        op,
        threshold,
        window,
        min,
    })
}

/// After a dimension: `="value"` makes it a filter, else it is the group
/// (one at most).
fn group_or_filter(
    p: &mut Parser,
    dim: Dim,
    col: usize,
    group: &mut Option<Dim>,
    filters: &mut Vec<(Dim, String)>,
) -> Result<(), RuleError> {
    if p.peek().0 != Tok::Eq {
        if let Some(g) = group {
            return p.fail(
                col,
                format!(
                    "a rule groups by one dimension: already grouped by {}",
                    g.name()
                ),
            );
        }
        *group = Some(dim);
        return Ok(());
    }
    p.next();
    match p.next() {
        (Tok::Str(v), vcol) => {
            if dim == Dim::Map && parse_address(&v).is_none() {
                return p.fail(
                    vcol,
                    format!("map=\"{v}\": expected a map address such as \"0xc000012345\""),
                );
            }
            filters.push((dim, v));
            Ok(())
        }
        (tok, vcol) => p.fail(
            vcol,
            format!(
                "expected a quoted value after '{}=', found {}",
                dim.name(),
                tok.describe()
            ),
        ),
    }
}

/// After an item: `,` (another follows) or `)` (the list ends).
fn more_items(p: &mut Parser) -> Result<bool, RuleError> {
    match p.next() {
        (Tok::Comma, _) => Ok(true),
        (Tok::RParen, _) => Ok(false),
        (tok, col) => p.fail(
            col,
            format!("expected ',' or ')', found {}", tok.describe()),
        ),
    }
}

/// A fatal rule: `fatal()`, `fatal(message)` (grouped by the message, the
/// default) or `fatal(message="concurrent map writes")`.
fn parse_fatal(mut p: Parser, text: &str) -> Result<Rule, RuleError> {
    p.next();
    p.expect(Tok::LParen, "'(' after fatal")?;
    let mut filters = Vec::new();
    if p.peek().0 != Tok::RParen {
        loop {
            let (tok, col) = p.next();
            if tok != Tok::Word("message".into()) {
                return p.fail(
                    col,
                    format!(
                        "a fatal rule has the message only: fatal(message) or fatal(message=\"concurrent map writes\"), found {}",
                        tok.describe()
                    ),
                );
            }
            let mut group = None;
            group_or_filter(&mut p, Dim::Message, col, &mut group, &mut filters)?;
            if !more_items(&mut p)? {
                break;
            }
        }
    } else {
        p.next();
    }
    let (tok, col) = p.next();
    if tok != Tok::End {
        return p.fail(
            col,
            format!(
                "unexpected {} after fatal(...): it fires when the target dies of a fatal error, with no threshold or window",
                tok.describe()
            ),
        );
    }
    Ok(Rule {
        text: text.to_string(),
        name: None,
        func: Func::Count,
        measure: Measure::Fatal,
        group: Dim::Message,
        filters,
        op: Op::Ge,
        threshold: 1.0,
        window: MIN_WINDOW,
        min: 1,
    })
}

/// A memory rule: `gauge(items) op threshold { and gauge(items) op threshold }`,
/// every condition on the same items (the group `map` or `map_type`, and
/// filters on them).
fn parse_memory(mut p: Parser, text: &str) -> Result<Rule, RuleError> {
    let mut conds: [Option<MemCond>; MAX_CONDS] = [None; MAX_CONDS];
    let mut items: Option<(Dim, Vec<(Dim, String)>)> = None;
    let mut n = 0;
    loop {
        let (tok, col) = p.next();
        let gauge = match &tok {
            Tok::Word(w) => Gauge::parse(w),
            _ => None,
        };
        let Some(gauge) = gauge else {
            return p.fail(
                col,
                format!(
                    "expected fill, bytes, cap, len or tombstones after 'and', found {}",
                    tok.describe()
                ),
            );
        };
        if n == MAX_CONDS {
            return p.fail(
                col,
                format!("a memory rule has at most {MAX_CONDS} conditions"),
            );
        }
        let these = memory_items(&mut p, gauge)?;
        if let Some(first) = &items {
            if *first != these.0 {
                return p.fail(
                    these.1,
                    "every condition of a memory rule is on the same maps: repeat the first one's (map or map_type, and its filters)",
                );
            }
        } else {
            items = Some(these.0);
        }
        let (op, ocol) = match p.next() {
            (Tok::Op(op), col) => (op, col),
            (tok, col) => {
                return p.fail(
                    col,
                    format!("expected '<', '<=', '>' or '>=', found {}", tok.describe()),
                )
            }
        };
        let threshold = memory_threshold(&mut p, gauge)?;
        if gauge == Gauge::Fill
            && ((op == Op::Gt && threshold >= 1.0) || (op == Op::Lt && threshold <= 0.0))
        {
            return p.fail(
                ocol,
                "this fill condition never holds: fill is between 0 and 1 (0% and 100%)",
            );
        }
        conds[n] = Some(MemCond {
            gauge,
            op,
            threshold,
        });
        n += 1;
        match p.next() {
            (Tok::Word(w), _) if w == "and" => continue,
            (Tok::End, _) => break,
            (Tok::Word(w), col) if w == "within" => {
                return p.fail(
                    col,
                    "a memory rule reads the maps as they are now: no window (drop 'within ...')",
                )
            }
            (tok, col) => {
                return p.fail(
                    col,
                    format!(
                        "expected 'and' or the end of the rule, found {}",
                        tok.describe()
                    ),
                )
            }
        }
    }
    let (group, filters) = items.expect("one condition at least");
    let first = conds[0].expect("one condition at least");
    Ok(Rule {
        text: text.to_string(),
        name: None,
        func: Func::Count,
        measure: Measure::Memory(MemoryConds { conds }),
        group,
        filters,
        op: first.op,
        threshold: first.threshold,
        window: MIN_WINDOW,
        min: 1,
    })
}

/// `(map)`, `(map_type)`, `(map_type="main.Cache")`, `(map, map_type="...")`:
/// the group and filters of a memory condition, and the column they start at.
#[allow(clippy::type_complexity)]
fn memory_items(
    p: &mut Parser,
    gauge: Gauge,
) -> Result<((Dim, Vec<(Dim, String)>), usize), RuleError> {
    let start = p.peek().1;
    p.expect(Tok::LParen, &format!("'(' after {}", gauge.name()))?;
    let mut group = None;
    let mut filters = Vec::new();
    loop {
        let (tok, col) = p.next();
        let dim = match &tok {
            Tok::Word(w) if w == "map" => Dim::Map,
            Tok::Word(w) if w == "map_type" => Dim::MapType,
            _ => {
                return p.fail(
                    col,
                    format!(
                        "{}() reads the maps' memory: group or filter by map or map_type, found {}",
                        gauge.name(),
                        tok.describe()
                    ),
                )
            }
        };
        group_or_filter(p, dim, col, &mut group, &mut filters)?;
        if !more_items(p)? {
            break;
        }
    }
    let group = group
        .or_else(|| filters.first().map(|f| f.0.clone()))
        .unwrap_or(Dim::Map);
    Ok(((group, filters), start))
}

/// A memory threshold: a share for fill (`0.05`, `5%`), bytes with an
/// optional unit for bytes (`64MiB`, `1GB`, `65536`), a whole number for the others.
fn memory_threshold(p: &mut Parser, gauge: Gauge) -> Result<f64, RuleError> {
    if gauge == Gauge::Fill {
        let (n, col) = match p.next() {
            (Tok::Num(n), col) if n >= 0.0 => (n, col),
            (tok, col) => {
                return p.fail(
                    col,
                    format!("expected a fill (0.05, or 5%), found {}", tok.describe()),
                )
            }
        };
        if p.peek().0 == Tok::Percent {
            p.next();
            if n > 100.0 {
                return p.fail(col, format!("a fill is at most 100%, not {n}%"));
            }
            return Ok(n / 100.0);
        }
        if n > 1.0 {
            return p.fail(
                col,
                format!("a fill is between 0 and 1: write 0.05 or 5% (not {n})"),
            );
        }
        return Ok(n);
    }
    let (text, col) = match p.next() {
        (Tok::Num(n), col) => {
            // `64 MiB`: the unit as the next word.
            let unit = match &p.peek().0 {
                Tok::Word(u) if gauge == Gauge::Bytes && byte_unit(u).is_some() => Some(u.clone()),
                _ => None,
            };
            if unit.is_some() {
                p.next();
            }
            (format!("{n}{}", unit.unwrap_or_default()), col)
        }
        (Tok::Word(w), col) => (w, col),
        (tok, col) => return p.fail(col, format!("expected a number, found {}", tok.describe())),
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().map_err(|_| RuleError {
        column: col,
        message: format!("bad threshold '{text}'"),
    })?;
    let scale = if gauge == Gauge::Bytes {
        byte_unit(unit).ok_or_else(|| RuleError {
            column: col,
            message: format!("bad size '{text}': a number of bytes with B, KiB, MiB, GiB (or KB, MB, GB) (e.g. 64MiB)"),
        })?
    } else if unit.is_empty() && n.fract() == 0.0 {
        1.0
    } else {
        return p.fail(
            col,
            format!("{}() compares a whole number, not '{text}'", gauge.name()),
        );
    };
    Ok(n * scale)
}

/// Bytes per `B`, `KiB`, `MiB`, `GiB`, `TiB` (and `KB`, `MB`, `GB`, `TB`, powers of 1000).
fn byte_unit(unit: &str) -> Option<f64> {
    Some(match unit {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    })
}

/// A count or rate threshold: deletes, or deletes per second.
fn delete_threshold(p: &mut Parser, func: Func) -> Result<f64, RuleError> {
    let (mut threshold, tcol) = match p.next() {
        (Tok::Num(n), col) if n >= 0.0 => (n, col),
        (tok, col) => {
            return p.fail(
                col,
                format!("expected a threshold (a number), found {}", tok.describe()),
            )
        }
    };
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
    Ok(threshold)
}

/// An absent() threshold: a share from 0 to 1 (`0.5`) or a percent (`50%`).
fn share_threshold(p: &mut Parser, op: Op) -> Result<f64, RuleError> {
    let (n, col) = match p.next() {
        (Tok::Num(n), col) => (n, col),
        (tok, col) => {
            return p.fail(
                col,
                format!(
                    "expected a share of the deletes (0.5, or 50%), found {}",
                    tok.describe()
                ),
            )
        }
    };
    let share = if p.peek().0 == Tok::Percent {
        p.next();
        if n > 100.0 {
            return p.fail(col, format!("a share is at most 100%, not {n}%"));
        }
        n / 100.0
    } else {
        if n > 1.0 {
            return p.fail(
                col,
                format!("a share is between 0 and 1: write 0.5 or 50% (not {n})"),
            );
        }
        n
    };
    if p.peek().0 == Tok::Slash {
        return p.fail(
            p.peek().1,
            "absent() is a share of the deletes, not a rate: no '/' unit",
        );
    }
    if op == Op::Gt && share >= 1.0 {
        return p.fail(
            col,
            "absent() > 1 never fires: the share is at most 1 (write >= 1 for 'every delete was of an absent key')",
        );
    }
    Ok(share)
}

/// A pNN() threshold: a duration in ns, us, µs, ms or s; in ns.
fn latency_threshold(p: &mut Parser, fname: &str) -> Result<f64, RuleError> {
    let (ns, col) = match p.next() {
        (Tok::Word(w), col) => match parse_latency(&w) {
            Ok(ns) => (ns, col),
            Err(m) => return p.fail(col, m),
        },
        (Tok::Num(n), col) => {
            // `1 ms`: the unit as the next word.
            let unit = match &p.peek().0 {
                Tok::Word(u) => unit_ns(u),
                _ => None,
            };
            match unit {
                Some(f) if n >= 0.0 => {
                    p.next();
                    ((n * f).round() as u64, col)
                }
                _ => {
                    return p.fail(
                        col,
                        format!("{fname}() compares a latency: the threshold needs a unit, ns, us, ms or s (e.g. 1ms, 100us)"),
                    )
                }
            }
        }
        (tok, col) => {
            return p.fail(
                col,
                format!(
                    "expected a latency such as 100us or 1ms, found {}",
                    tok.describe()
                ),
            )
        }
    };
    let last = crate::probes::LATENCY_LAST_BOUND_NS;
    if ns > last {
        return p.fail(
            col,
            format!(
                "the latency histograms end at {}: a quantile above it is only known to be over {} (write > {})",
                duration_text(last),
                duration_text(last),
                duration_text(last)
            ),
        );
    }
    Ok(ns as f64)
}

/// Nanoseconds per `ns`, `us`, `µs`, `ms`, `s`.
fn unit_ns(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    })
}

/// `250us`, `1.5ms`, `100ns`, `1s`: nanoseconds.
pub fn parse_latency(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let bad = || {
        format!(
            "bad latency '{text}': expected a number and ns, us, µs, ms or s (e.g. 100us, 1.5ms)"
        )
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let f = unit_ns(unit).ok_or_else(bad)?;
    Ok((n * f).round() as u64)
}

/// `p99`, `p99.9`: a word that names a quantile (maybe out of range).
fn is_quantile_word(w: &str) -> bool {
    w.strip_prefix('p')
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

/// `p99` → 99_000, `p99.9` → 99_900 (per 100000); None out of (0, 100]
/// or past 3 decimals.
fn parse_quantile(w: &str) -> Option<u32> {
    let r = w.strip_prefix('p')?;
    let (whole, frac) = r.split_once('.').unwrap_or((r, ""));
    if whole.is_empty()
        || whole.len() > 3
        || frac.len() > 3
        || !whole
            .chars()
            .chain(frac.chars())
            .all(|c| c.is_ascii_digit())
        || (r.contains('.') && frac.is_empty())
    {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let frac: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse().ok()?
    };
    let v = whole * 1000 + frac;
    (v > 0 && v <= 100_000).then_some(v)
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
            (r.func, r.group.clone(), r.op, r.threshold),
            (Func::Count, Dim::Map, Op::Gt, 100.0)
        );
        assert_eq!(r.window, Duration::from_secs(300));
        assert!(!r.exact());
        assert_eq!(r.window_text(), "5m");

        let r = parse("rate(caller) > 1000/s within 30s").unwrap();
        assert_eq!(
            (r.func, r.group.clone(), r.threshold),
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
    fn absent_and_quantile_rules_parse() {
        let r = parse("absent(caller) > 0.5 within 1m").unwrap();
        assert_eq!(
            (r.measure, r.group.clone(), r.op, r.threshold, r.min),
            (Measure::Absent, Dim::Caller, Op::Gt, 0.5, 1)
        );
        assert!(r.exact());
        assert_eq!((r.func_name().as_str(), r.unit()), ("absent", "ratio"));
        assert_eq!(r.threshold_text(), "50%");

        let r = parse(r#"absent(map_type, map_type="main.Cache") >= 0.9 within 30s"#).unwrap();
        assert_eq!((r.group, r.op), (Dim::MapType, Op::Ge));
        assert_eq!(r.filters, vec![(Dim::MapType, "main.Cache".to_string())]);

        let r = parse("absent(caller) > 40% within 1m min 10").unwrap();
        assert_eq!((r.threshold, r.min), (0.4, 10));
        assert_eq!(
            parse("absent(caller) >= 1 within 1m").unwrap().threshold,
            1.0
        );

        let r = parse(r#"p99(map_type="main.Cache") > 1ms within 5m"#).unwrap();
        let q = Quantile {
            per_100k: 99_000,
            clears: false,
        };
        assert_eq!(
            (r.measure, r.group.clone(), r.threshold, r.min),
            (Measure::Quantile(q), Dim::MapType, 1e6, 1)
        );
        assert!(r.exact());
        assert_eq!((r.func_name().as_str(), r.unit()), ("p99", "ns"));
        assert_eq!(r.threshold_text(), "1ms");

        let r = parse("p99(map_type) > 100us within 1m").unwrap();
        assert_eq!((r.group, r.threshold), (Dim::MapType, 100_000.0));
        assert!(r.filters.is_empty());

        let r = parse(r#"p99.9(map_type, op="clear") > 1.5 ms within 10s min 3"#).unwrap();
        let q = Quantile {
            per_100k: 99_900,
            clears: true,
        };
        assert_eq!(
            (r.measure, r.threshold, r.min),
            (Measure::Quantile(q), 1.5e6, 3)
        );
        assert_eq!(r.func_name(), "p99.9");
        assert_eq!(r.threshold_text(), "1.5ms");

        // op alone: per map type; µs and μs; ns and s; delete is the default.
        let r = parse(r#"p50(op="clear") > 250µs within 1m"#).unwrap();
        assert_eq!((r.group.clone(), r.threshold), (Dim::MapType, 250_000.0));
        assert_eq!(r.threshold_text(), "250µs");
        assert_eq!(
            parse("p90(map_type) > 250μs within 1m").unwrap().threshold,
            250_000.0
        );
        assert_eq!(
            parse("p90(map_type) > 500ns within 1m").unwrap().threshold,
            500.0
        );
        assert_eq!(
            parse("p100(map_type) >= 1s within 1m").unwrap().threshold,
            1e9
        );
        let r = parse(r#"p99.99(map_type, op="delete") > 1ms within 1m"#).unwrap();
        assert_eq!(
            r.measure,
            Measure::Quantile(Quantile {
                per_100k: 99_990,
                clears: false
            })
        );
        assert_eq!(parse_quantile("p0.001"), Some(1));
        assert_eq!(parse_quantile("p0"), None);
        assert_eq!(parse_quantile("p99.9999"), None);
    }

    /// The 1-based column of the last `marker` in `src` (ASCII before it).
    fn at(src: &str, marker: &str) -> usize {
        src.rfind(marker).unwrap() + 1
    }

    #[track_caller]
    pub(super) fn fails_at(src: &str, marker: &str, says: &str) {
        let e = parse(src).unwrap_err();
        assert_eq!(e.column, at(src, marker), "{src}: {e}");
        assert!(e.message.contains(says), "{src}: {e}");
        assert!(!e.to_string().contains('\n'), "{src}: {e}");
    }

    #[test]
    fn absent_and_quantile_errors_point_at_the_column() {
        fails_at(
            "pizza(map) > 1 within 1m",
            "pizza",
            "a quantile such as p99",
        );
        fails_at("p101(map_type) > 1ms within 1m", "p101", "p0.001 to p100");
        fails_at("p99(caller) > 1ms within 1m", "caller", "per map type");
        fails_at(
            r#"p99(map_type="x", caller="y") > 1ms within 1m"#,
            "caller",
            "map_type only, not caller",
        );
        fails_at("p99(key) > 1ms within 1m", "key", "not key");
        fails_at(
            "absent(map) > 0.5 within 1m",
            "map",
            "map_type or caller, not map",
        );
        fails_at(
            "absent(maps) > 0.5 within 1m",
            "maps",
            "expected map_type or caller",
        );
        fails_at("absent(caller) > 1.5 within 1m", "1.5", "between 0 and 1");
        fails_at("absent(caller) > 50 within 1m", "50", "50%");
        fails_at("absent(caller) > 150% within 1m", "150", "at most 100%");
        fails_at("absent(caller) > 1 within 1m", "1 ", "never fires");
        fails_at("absent(caller) > 0.5/s within 1m", "/", "not a rate");
        fails_at("absent(caller) > 1ms within 1m", "1ms", "share");
        fails_at("p99(map_type) > 1000 within 1m", "1000", "needs a unit");
        fails_at("p99(map_type) > 0.5 within 1m", "0.5", "needs a unit");
        fails_at("p99(map_type) > 2s within 1m", "2s", "end at 1s");
        fails_at(
            "p99(map_type) > 1m within 1m",
            "1m within",
            "bad latency '1m'",
        );
        fails_at("p99(map_type) > x within 1m", "x", "bad latency");
        fails_at(
            r#"p99(map_type, op="insert") > 1ms within 1m"#,
            "\"insert",
            "\"delete\" or \"clear\"",
        );
        fails_at("p99(map_type, op) > 1ms within 1m", "op", "a filter");
        fails_at(
            r#"p99(op="clear", op="clear") > 1ms within 1m"#,
            "op=\"clear\")",
            "twice",
        );
        fails_at(
            r#"count(map, op="clear") > 1 within 1m"#,
            "op",
            "latency rule",
        );
        fails_at(
            r#"absent(caller, op="clear") > 0.5 within 1m"#,
            "op",
            "latency rule",
        );
        fails_at(
            "count(map) > 1 within 1m min 5",
            "min",
            "absent() and pNN()",
        );
        fails_at("absent(caller) > 0.5 within 1m min 0", "0", "at least 1");
        fails_at(
            "absent(caller) > 0.5 within 1m min 2.5",
            "2.5",
            "whole number",
        );
        fails_at(
            "absent(caller) > 0.5 within 1m min 10 now",
            "now",
            "after 'min'",
        );
        fails_at("p99(map_type) > 1ms in 1m", "in", "expected 'within'");
        let e = parse("absent(caller) > 0.5 within 1m min").unwrap_err();
        assert_eq!(e.column, 35, "{e}");
    }

    #[test]
    fn texts() {
        assert_eq!(duration_text(100), "100ns");
        assert_eq!(duration_text(1_500), "1.5µs");
        assert_eq!(duration_text(2_000_000), "2ms");
        assert_eq!(duration_text(1_000_000_000), "1s");
        assert_eq!(percent_text(0.5), "50%");
        assert_eq!(percent_text(1.0 / 3.0), "33.3%");
        assert_eq!(percent_text(0.99999), "99.9%");
        assert_eq!(percent_text(1.0), "100%");
        assert_eq!(bucket_text(5e6), "2ms–5ms");
        assert_eq!(bucket_text(100.0), "≤100ns");
        assert_eq!(bucket_text(f64::INFINITY), ">1s");
        let r = parse("rate(caller) > 60/m within 10s").unwrap();
        assert_eq!(
            (r.value_text(2.5), r.threshold_text()),
            ("2.5/s".into(), "1/s".into())
        );
        assert_eq!(
            parse("count(map) > 100 within 5m").unwrap().measure,
            Measure::Deletes
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address("0xc000012345"), Some(0xc000012345));
        assert_eq!(parse_address("4096"), Some(4096));
        assert_eq!(parse_address("zz"), None);
    }

    #[test]
    fn label_dimensions_group_and_filter() {
        let r = parse("count(label:tenant) > 1000 within 1m").unwrap();
        assert_eq!(r.group, Dim::Label("tenant".into()));
        assert!(!r.exact(), "labels come with the records");
        let r = parse(r#"rate(label:endpoint, label:trace-id.v2="x") > 5/s within 30s"#).unwrap();
        assert_eq!(r.group, Dim::Label("endpoint".into()));
        assert_eq!(
            r.filters,
            [(Dim::Label("trace-id.v2".into()), "x".to_string())]
        );
        assert_eq!(r.group.name(), "label:endpoint");
        assert!(parse("count(label:) > 1 within 1m").is_err());
        assert!(parse("absent(label:tenant) > 0.5 within 1m").is_err());
    }
}

#[cfg(test)]
mod memory_tests {
    use super::tests::fails_at;
    use super::*;

    #[test]
    fn memory_rules_parse() {
        let r = parse("fill(map) < 5% and bytes(map) > 64MiB").unwrap();
        let Measure::Memory(m) = r.measure else {
            panic!("{r:?}")
        };
        let conds: Vec<_> = m.iter().copied().collect();
        assert_eq!(
            conds,
            [
                MemCond {
                    gauge: Gauge::Fill,
                    op: Op::Lt,
                    threshold: 0.05
                },
                MemCond {
                    gauge: Gauge::Bytes,
                    op: Op::Gt,
                    threshold: 64.0 * 1024.0 * 1024.0
                }
            ]
        );
        assert_eq!(
            (r.group.clone(), r.op, r.threshold),
            (Dim::Map, Op::Lt, 0.05)
        );
        assert!(r.exact(), "the maps themselves, whatever the sampling");
        assert_eq!(r.func_name(), "fill");
        assert_eq!(r.unit(), "ratio");
        assert_eq!(r.threshold_text(), "fill < 5% and bytes > 64MiB");
        assert_eq!(r.value_text(0.001), "0.1%");

        let r = parse(r#"bytes(map_type="main.Cache") >= 1 GB"#).unwrap();
        assert_eq!((r.group.clone(), r.threshold), (Dim::MapType, 1e9));
        assert_eq!(r.filters, vec![(Dim::MapType, "main.Cache".to_string())]);
        let r = parse("tombstones(map_type) > 10000 and fill(map_type) <= 0.5").unwrap();
        assert_eq!(r.group, Dim::MapType);
        assert_eq!(r.unit(), "tombstones");
    }

    #[test]
    fn fatal_rules_parse() {
        let r = parse("fatal(message)").unwrap();
        assert_eq!(
            (r.measure, r.group.clone(), r.filters.len()),
            (Measure::Fatal, Dim::Message, 0)
        );
        assert!(r.exact() && r.windowless());
        assert_eq!(
            (r.func_name(), r.unit()),
            ("fatal".to_string(), "fatal errors")
        );
        let r = parse("fatal()").unwrap();
        assert_eq!((r.group.clone(), r.filters.len()), (Dim::Message, 0));
        let r = parse(r#" fatal(message="concurrent map writes") "#).unwrap();
        assert_eq!(
            r.filters,
            vec![(Dim::Message, "concurrent map writes".to_string())]
        );
        assert_eq!(r.text, r#"fatal(message="concurrent map writes")"#);
    }

    #[test]
    fn fatal_rule_errors_point_at_the_column() {
        fails_at("fatal(map)", "map", "the message only");
        fails_at(
            "fatal(message) > 0 within 1m",
            ">",
            "no threshold or window",
        );
        fails_at("fatal(message=1)", "1", "quoted value");
        fails_at("fatal", "", "'(' after fatal");
        fails_at("count(message) > 1 within 1m", "message", "fatal(message)");
    }

    #[test]
    fn memory_rule_errors_point_at_the_column() {
        fails_at(
            "fill(caller) < 5%",
            "caller",
            "group or filter by map or map_type",
        );
        fails_at(
            "fill(map) < 5% and bytes(map_type) > 1MiB",
            "(map_type",
            "same maps",
        );
        fails_at("fill(map) < 500%", "500", "at most 100%");
        fails_at("fill(map) < 2", "2", "between 0 and 1");
        fails_at("bytes(map) > 64Mb", "64Mb", "bad size");
        fails_at("cap(map) > 1.5", "1.5", "whole number");
        fails_at("fill(map) < 5% within 1m", "within", "no window");
        fails_at("fill(map) > 100%", ">", "never holds");
        fails_at("fill(map) < 5% or bytes(map) > 1", "or", "'and'");
        // '<' stays a memory rule's only.
        fails_at("count(map) < 100 within 5m", "<", "only memory rules");
    }
}
