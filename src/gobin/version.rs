//! Go release versions as they appear in binaries (`go1.24.11`,
//! `go1.24.11 X:noswissmap`, `go1.25rc1`, `devel go1.26-abc123 ...`).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    /// None for a pre-release or devel build, or when only the minor is known.
    pub patch: Option<u32>,
}

impl GoVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        GoVersion {
            major,
            minor,
            patch: None,
        }
    }

    /// Parses the first `goMAJOR.MINOR[.PATCH]` in `s`.
    pub fn parse(s: &str) -> Option<Self> {
        let start = s.find("go1.")?;
        let rest = &s[start + 2..];
        let mut parts = rest.splitn(3, '.');
        let major = leading_number(parts.next()?)?;
        let minor = leading_number(parts.next()?)?;
        let patch = parts.next().and_then(leading_number);
        Some(GoVersion {
            major,
            minor,
            patch,
        })
    }

    /// Is this at least `1.minor`?
    pub fn at_least(&self, minor: u32) -> bool {
        self.major > 1 || (self.major == 1 && self.minor >= minor)
    }
}

fn leading_number(s: &str) -> Option<u32> {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(p) => write!(f, "go{}.{}.{}", self.major, self.minor, p),
            None => write!(f, "go{}.{}", self.major, self.minor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_and_experiment_strings() {
        let v = GoVersion::parse("go1.24.11 X:noswissmap").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 24, Some(11)));
        assert_eq!(GoVersion::parse("go1.25rc1").unwrap().patch, None);
        assert_eq!(
            GoVersion::parse("go1.19.8").unwrap().to_string(),
            "go1.19.8"
        );
        assert!(GoVersion::parse("devel go1.26-abc").unwrap().at_least(26));
        assert_eq!(GoVersion::parse("gox"), None);
    }
}
