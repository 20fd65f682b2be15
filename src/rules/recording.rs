//! Recording rules: an expression whose result is stored under a new
//! metric name (`rules/recording.go`).

use std::collections::{BTreeMap, HashSet};

use tsdb::model::{Labels, METRIC_NAME};
use tsdb::promql::Value;

/// A `record` rule ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingRule {
    pub name: String,
    pub expr: String,
    /// The rule's labels merged over the group's; set on every output
    /// series.
    pub labels: BTreeMap<String, String>,
}

impl RecordingRule {
    /// The series to store for a query result: `__name__` set to the rule's
    /// name, the rule's labels set over the result's.
    ///
    /// # Errors
    /// A result that is not a vector or scalar, two output series with the
    /// same labels, or more series than `limit` (when > 0), worded as
    /// Prometheus words them.
    pub fn output(&self, value: Value, limit: i64) -> Result<Vec<(Labels, f64)>, String> {
        let samples = vector_of(value)?;
        let mut out = Vec::with_capacity(samples.len());
        let mut seen = HashSet::with_capacity(samples.len());
        for (labels, v) in samples {
            let mut builder = labels.builder();
            builder.set_mut(METRIC_NAME, self.name.as_str());
            for (name, value) in &self.labels {
                builder.set_mut(name.as_str(), value.as_str());
            }
            let labels = builder.build();
            if !seen.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            out.push((labels, v));
        }
        if limit > 0 && out.len() as i64 > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                out.len()
            ));
        }
        Ok(out)
    }
}

/// A rule query's result as `(labels, value)` pairs: a scalar is one
/// sample without labels, as Prometheus's `EngineQueryFunc` makes it.
///
/// # Errors
/// Strings and range vectors.
pub fn vector_of(value: Value) -> Result<Vec<(Labels, f64)>, String> {
    match value {
        Value::Vector(vector) => Ok(vector.into_iter().map(|s| (s.labels, s.v)).collect()),
        Value::Scalar(scalar) => Ok(vec![(Labels::empty(), scalar.v)]),
        Value::String(_) | Value::Matrix(_) => Err("rule result is not a vector or scalar".into()),
    }
}

#[cfg(test)]
mod tests {
    use tsdb::promql::{Sample, Scalar};

    use super::*;

    fn rule(labels: &[(&str, &str)]) -> RecordingRule {
        RecordingRule {
            name: "job:up:sum".into(),
            expr: "sum by (job) (up)".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn vector(series: &[&[(&str, &str)]]) -> Value {
        Value::Vector(
            series
                .iter()
                .enumerate()
                .map(|(i, labels)| Sample {
                    labels: Labels::from_pairs(labels),
                    t: 0,
                    v: i as f64,
                })
                .collect(),
        )
    }

    #[test]
    fn names_and_labels_the_output() {
        let out = rule(&[("team", "a")])
            .output(vector(&[&[("__name__", "up"), ("job", "x")]]), 0)
            .unwrap();
        assert_eq!(
            out,
            vec![(
                Labels::from_pairs(&[("__name__", "job:up:sum"), ("job", "x"), ("team", "a")]),
                0.0
            )]
        );
        let scalar = rule(&[]).output(Value::Scalar(Scalar { t: 0, v: 2.0 }), 0);
        assert_eq!(
            scalar.unwrap(),
            vec![(Labels::from_pairs(&[("__name__", "job:up:sum")]), 2.0)]
        );
    }

    #[test]
    fn rejects_duplicates_and_limits() {
        let error = rule(&[("job", "same")])
            .output(vector(&[&[("job", "x")], &[("job", "y")]]), 0)
            .unwrap_err();
        assert_eq!(
            error,
            "vector contains metrics with the same labelset after applying rule labels"
        );
        let error = rule(&[])
            .output(vector(&[&[("job", "x")], &[("job", "y")]]), 1)
            .unwrap_err();
        assert_eq!(error, "exceeded limit of 1 with 2 series");
        assert!(rule(&[]).output(vector(&[&[("job", "x")]]), 1).is_ok());
    }
}
