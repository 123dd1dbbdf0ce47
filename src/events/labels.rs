//! A goroutine's pprof labels at the time of a delete (`runtime/pprof.Do`,
//! `SetGoroutineLabels`): on whose behalf the code ran.

use std::sync::Arc;

use regex::Regex;

use super::key::{redacted, string_lossless};
use crate::probes::record::RawLabels;

/// The labels of one delete, sorted by key (as Go 1.24+ keeps them; older
/// releases keep them in a map, in no order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    pub pairs: Vec<(String, String)>,
    /// A key or value was cut at `--label-bytes`, or the goroutine had
    /// labels the record does not hold (`labels_truncated`).
    pub truncated: bool,
}

impl Labels {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `k=v,k2=v2`: for text output and the terminal UI.
    pub fn text(&self) -> String {
        let pairs: Vec<String> = self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(",")
    }
}

/// JSON: an object of the labels (`{"tenant":"t1"}`).
impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.pairs.len()))?;
        for (k, v) in &self.pairs {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        Ok(Labels {
            pairs: map.into_iter().collect(),
            truncated: false,
        })
    }
}

/// Which labels are kept and how they are shown (`--labels`,
/// `--redact-labels`, `--label-filter`).
#[derive(Debug, Clone, Default)]
pub struct LabelOptions {
    /// Only these keys (`--labels`); None: all.
    pub keys: Option<Vec<String>>,
    /// A stable hash instead of each value.
    pub redact: bool,
    /// Only deletes with a label `KEY` whose value matches.
    pub filter: Option<(String, Regex)>,
}

impl LabelOptions {
    /// The keys the probe must copy: `--labels` and the `--label-filter`
    /// key; empty (all) without `--labels`.
    pub fn probe_keys(&self) -> Vec<String> {
        let mut keys = self.keys.clone().unwrap_or_default();
        if let (false, Some((key, _))) = (keys.is_empty(), &self.filter) {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// The labels of a record, as the options keep them; None when the
    /// goroutine had none (or none that is kept).
    pub fn labels_of(&self, raw: &RawLabels<'_>) -> Option<Arc<Labels>> {
        if raw.pairs.is_empty() && raw.complete {
            return None;
        }
        let mut labels = Labels {
            pairs: Vec::with_capacity(raw.pairs.len()),
            truncated: !raw.complete,
        };
        for l in &raw.pairs {
            let key = string_lossless(l.key);
            if self.keys.as_ref().is_some_and(|keys| !keys.contains(&key)) {
                continue;
            }
            let value = string_lossless(l.value);
            let value = if self.redact { redacted(&value) } else { value };
            labels.truncated |= l.key_cut || l.value_cut;
            labels.pairs.push((key, value));
        }
        labels.pairs.sort();
        (!labels.pairs.is_empty() || labels.truncated).then(|| Arc::new(labels))
    }

    /// `--label-filter`: whether a delete with `labels` is kept. The filter
    /// sees values before redaction.
    pub fn keeps(&self, raw: &RawLabels<'_>) -> bool {
        let Some((key, re)) = &self.filter else {
            return true;
        };
        raw.pairs
            .iter()
            .any(|l| l.key == key.as_bytes() && re.is_match(&string_lossless(l.value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::record::RawLabel;

    fn raw<'a>(pairs: &[(&'a [u8], &'a [u8])]) -> RawLabels<'a> {
        RawLabels {
            pairs: pairs
                .iter()
                .map(|&(key, value)| RawLabel {
                    key,
                    value,
                    key_cut: false,
                    value_cut: false,
                })
                .collect(),
            complete: true,
        }
    }

    #[test]
    fn labels_are_sorted_kept_and_redacted_as_asked() {
        let r = raw(&[(b"tenant", b"t1"), (b"endpoint", b"/api/\xff")]);
        let all = LabelOptions::default().labels_of(&r).unwrap();
        assert_eq!(
            all.pairs,
            [
                ("endpoint".to_string(), "/api/\\xff".to_string()),
                ("tenant".to_string(), "t1".to_string())
            ]
        );
        assert_eq!(all.get("tenant"), Some("t1"));
        assert_eq!(all.text(), "endpoint=/api/\\xff,tenant=t1");
        assert!(!all.truncated);
        let only = LabelOptions {
            keys: Some(vec!["tenant".into()]),
            redact: true,
            ..LabelOptions::default()
        };
        let kept = only.labels_of(&r).unwrap();
        assert_eq!(kept.pairs, [("tenant".to_string(), redacted("t1"))]);
        assert!(LabelOptions::default().labels_of(&raw(&[])).is_none());
    }

    #[test]
    fn the_filter_matches_one_key_before_redaction() {
        let r = raw(&[(b"tenant", b"t1")]);
        let by = |k: &str, re: &str| LabelOptions {
            filter: Some((k.into(), Regex::new(re).unwrap())),
            redact: true,
            ..LabelOptions::default()
        };
        assert!(by("tenant", "^t1$").keeps(&r));
        assert!(!by("tenant", "^t2$").keeps(&r));
        assert!(!by("endpoint", ".*").keeps(&r));
        assert!(LabelOptions::default().keeps(&raw(&[])));
    }
}
