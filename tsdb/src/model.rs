//! The data model shared by every crate: labels, matchers, samples, series
//! references and time ranges.
//!
//! API boundary: these types cross crate edges; keep them small and stable.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;

use regex::Regex;

use crate::{Error, Result};

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Bit pattern of the staleness marker, a NaN that Prometheus writes when a
/// series disappears. It must survive every layer bit-exactly; ordinary NaN
/// values use other bit patterns.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub const STALE_NAN: f64 = f64::from_bits(STALE_NAN_BITS);

/// True when `v` is the staleness marker (not just any NaN).
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample: a millisecond timestamp and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    pub v: f64,
}

impl Sample {
    pub fn new(t: i64, v: f64) -> Self {
        Sample { t, v }
    }
}

/// An inclusive time range in milliseconds, `[start, end]`, as Prometheus's
/// queriers use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    pub start: i64,
    pub end: i64,
}

impl TimeRange {
    pub fn new(start: i64, end: i64) -> Self {
        TimeRange { start, end }
    }

    /// Every representable timestamp.
    pub fn all() -> Self {
        TimeRange {
            start: i64::MIN,
            end: i64::MAX,
        }
    }

    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t <= self.end
    }

    /// True when both ranges share at least one timestamp.
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// A handle to a series in the head, returned by `Appender::append` so that
/// the next append of the same series skips the label lookup. Zero is never a
/// valid reference, so `Option<SeriesRef>` costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesRef(NonZeroU64);

impl SeriesRef {
    /// `None` for zero.
    pub fn new(id: u64) -> Option<Self> {
        NonZeroU64::new(id).map(SeriesRef)
    }

    pub fn get(self) -> u64 {
        self.0.get()
    }
}

/// One label pair. Names and values are reference counted so that the head
/// can intern them and clones are cheap.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: Arc<str>,
    pub value: Arc<str>,
}

impl Label {
    pub fn new(name: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A label set sorted by name with unique names, `__name__` included.
/// Labels with empty values are absent by definition and never stored.
/// Cloning is one reference-count increment.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(Arc<[Label]>);

impl Labels {
    /// Builds a label set from pairs in any order. Empty values are dropped;
    /// for a repeated name the last pair wins.
    pub fn new(mut labels: Vec<Label>) -> Self {
        // A stable sort keeps the input order among equal names, so the last
        // occurrence can be kept.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for label in labels {
            if let Some(last) = out.last_mut()
                && last.name == label.name
            {
                *last = label;
                continue;
            }
            out.push(label);
        }
        out.retain(|l| !l.value.is_empty());
        Labels(out.into())
    }

    /// Builds a label set from `(name, value)` string pairs.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Self {
        Labels::new(
            pairs
                .iter()
                .map(|(n, v)| Label::new(n.as_ref(), v.as_ref()))
                .collect(),
        )
    }

    /// Wraps labels already sorted by unique name with no empty values.
    /// Callers that cannot guarantee that use [`Labels::new`].
    pub fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        Labels(labels.into())
    }

    pub fn empty() -> Self {
        Labels::default()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| (*l.name).cmp(name))
            .ok()
            .map(|i| &*self.0[i].value)
    }

    /// The value of `__name__`, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A builder starting from these labels, for set/remove edits.
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.to_vec(),
        }
    }

    /// The same labels without `__name__`.
    pub fn without_metric_name(&self) -> Labels {
        if self.metric_name().is_none() {
            return self.clone();
        }
        self.builder().remove(METRIC_NAME).build()
    }
}

impl fmt::Display for Labels {
    /// Prometheus's notation: `{__name__="up", job="node"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, label) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", label.name, &*label.value)?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Edits a label set: set and remove by name, then [`LabelsBuilder::build`].
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(mut self, name: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> Self {
        self.set_mut(name, value);
        self
    }

    pub fn set_mut(&mut self, name: impl Into<Arc<str>>, value: impl Into<Arc<str>>) {
        let label = Label::new(name, value);
        match self.labels.binary_search_by(|l| l.name.cmp(&label.name)) {
            Ok(i) if label.value.is_empty() => {
                self.labels.remove(i);
            }
            Ok(i) => self.labels[i] = label,
            Err(_) if label.value.is_empty() => {}
            Err(i) => self.labels.insert(i, label),
        }
    }

    pub fn remove(mut self, name: &str) -> Self {
        self.remove_mut(name);
        self
    }

    pub fn remove_mut(&mut self, name: &str) {
        self.labels.retain(|l| &*l.name != name);
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| &*l.name == name)
            .map(|l| &*l.value)
    }

    /// Keeps only the labels for which `keep` returns true.
    pub fn retain(mut self, mut keep: impl FnMut(&Label) -> bool) -> Self {
        self.labels.retain(|l| keep(l));
        self
    }

    pub fn build(self) -> Labels {
        Labels(self.labels.into())
    }
}

/// How a [`Matcher`] compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        })
    }
}

/// A label matcher such as `job=~"node.*"`. Regexes are fully anchored, as in
/// Prometheus: `=~"a.*"` matches `abc` but not `xabc`. A missing label
/// matches as the empty string.
#[derive(Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// # Errors
    /// [`Error::InvalidMatcher`] when a regex operator gets an invalid regex.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let value = value.into();
        let regex = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                // `(?s:` makes `.` match newlines, as Prometheus 3 does.
                let anchored = format!("^(?s:{value})$");
                Some(Regex::new(&anchored).map_err(|e| Error::InvalidMatcher {
                    name: name.clone(),
                    reason: e.to_string(),
                })?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    /// An equality matcher; never fails.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Does a label value (the empty string for a missing label) match?
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => self.value == value,
            (MatchOp::NotEqual, _) => self.value != value,
            (MatchOp::RegexMatch, Some(re)) => re.is_match(value),
            (MatchOp::RegexNoMatch, Some(re)) => !re.is_match(value),
            // `new` always compiles the regex for regex operators.
            (MatchOp::RegexMatch | MatchOp::RegexNoMatch, None) => false,
        }
    }

    /// Does this matcher select series that lack the label?
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Does the label set match?
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_deduplicated_and_drop_empty_values() {
        let labels = Labels::from_pairs(&[("b", "2"), ("a", "1"), ("c", ""), ("b", "3")]);
        assert_eq!(labels.to_string(), r#"{a="1", b="3"}"#);
        assert_eq!(labels.get("b"), Some("3"));
        assert_eq!(labels.get("c"), None);
    }

    #[test]
    fn builder_sets_and_removes() {
        let labels = Labels::from_pairs(&[("__name__", "up"), ("job", "node")]);
        let edited = labels
            .builder()
            .set("instance", "x:1")
            .set("job", "")
            .build();
        assert_eq!(edited.to_string(), r#"{__name__="up", instance="x:1"}"#);
        assert_eq!(labels.without_metric_name().to_string(), r#"{job="node"}"#);
    }

    #[test]
    fn regex_matchers_are_anchored_and_dot_matches_newline() {
        let m = Matcher::new(MatchOp::RegexMatch, "job", "no.*").unwrap();
        assert!(m.matches("node"));
        assert!(!m.matches("xnode"));
        assert!(m.matches("no\nde"));
        let m = Matcher::new(MatchOp::RegexNoMatch, "job", "a|b").unwrap();
        assert!(m.matches(""));
        assert!(!m.matches("a"));
        assert!(Matcher::new(MatchOp::RegexMatch, "job", "(").is_err());
    }

    #[test]
    fn missing_label_matches_as_empty() {
        let labels = Labels::from_pairs(&[("job", "node")]);
        assert!(Matcher::equal("env", "").matches_labels(&labels));
        assert!(!Matcher::equal("env", "prod").matches_labels(&labels));
    }

    #[test]
    fn stale_nan_is_a_specific_nan() {
        assert!(STALE_NAN.is_nan());
        assert!(is_stale_nan(STALE_NAN));
        assert!(!is_stale_nan(f64::NAN));
        assert_eq!(STALE_NAN.to_bits(), STALE_NAN_BITS);
    }
}
