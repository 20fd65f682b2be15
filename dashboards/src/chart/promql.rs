//! Charts of PromQL results: the thin conversion from the engine's
//! [`Value`] to the chart model.

use tsdb::model::{Label, Labels, TimeRange};
use tsdb::promql::Value;

use super::{Chart, Series, Unit};

impl Chart {
    /// A chart of a query result over `range`: a matrix gives one series per
    /// result series, a vector one point per sample, a scalar one point.
    /// Legend labels leave out the labels every series shares (see
    /// [`legend_labels`]); the unit is guessed from the query's metric names
    /// ([`Unit::guess_from_query`]) — set `unit` afterwards to override.
    pub fn from_value(query: &str, value: &Value, range: TimeRange, step_ms: Option<i64>) -> Chart {
        let mut chart = Chart::new(query, Unit::guess_from_query(query), range);
        chart.step_ms = step_ms;
        let with_points: Vec<(&Labels, Vec<(i64, f64)>)> = match value {
            Value::Matrix(matrix) => matrix
                .iter()
                .map(|s| (&s.labels, s.points.iter().map(|p| (p.t, p.v)).collect()))
                .collect(),
            Value::Vector(vector) => vector
                .iter()
                .map(|s| (&s.labels, vec![(s.t, s.v)]))
                .collect(),
            Value::Scalar(scalar) => {
                chart
                    .series
                    .push(Series::new("scalar", vec![(scalar.t, scalar.v)]));
                return chart;
            }
            Value::String(_) => return chart,
        };
        let labels = legend_labels(&with_points.iter().map(|(l, _)| *l).collect::<Vec<_>>());
        chart.series = labels
            .into_iter()
            .zip(with_points)
            .map(|(label, (_, points))| Series::new(label, points))
            .collect();
        chart
    }
}

/// Legend text for each label set in Prometheus notation,
/// `name{label="value", ...}`, leaving out label pairs that every set shares
/// (with several series, `instance="…", job="node"` on every line tells
/// nothing). A set left with nothing to show keeps all its labels.
pub fn legend_labels(sets: &[&Labels]) -> Vec<String> {
    let shared = |label: &Label| {
        sets.len() > 1
            && sets
                .iter()
                .all(|set| set.get(&label.name) == Some(&*label.value))
    };
    sets.iter()
        .map(|set| {
            let distinct: Vec<&Label> = set.iter().filter(|l| !shared(l)).collect();
            if distinct.is_empty() {
                notation(set.iter())
            } else {
                notation(distinct.into_iter())
            }
        })
        .collect()
}

fn notation<'a>(labels: impl Iterator<Item = &'a Label>) -> String {
    let mut name = "";
    let mut pairs = Vec::new();
    for label in labels {
        if &*label.name == "__name__" {
            name = &label.value;
        } else {
            pairs.push(format!("{}={:?}", label.name, &*label.value));
        }
    }
    if pairs.is_empty() && !name.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", pairs.join(", "))
    }
}

impl Unit {
    /// A guess from the metric names in a query: the unit their suffixes
    /// agree on ([`Unit::guess_from_metric_name`]), plain when they disagree,
    /// when none has a unit, or when the query divides (a ratio of bytes is
    /// not bytes).
    pub fn guess_from_query(query: &str) -> Unit {
        if query.contains('/') {
            return Unit::Plain;
        }
        let mut guess = None;
        let identifiers = query
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|word| !word.is_empty());
        for word in identifiers {
            let unit = Unit::guess_from_metric_name(word);
            if unit == Unit::Plain {
                continue;
            }
            match guess {
                None => guess = Some(unit),
                Some(previous) if previous != unit => return Unit::Plain,
                Some(_) => {}
            }
        }
        guess.unwrap_or(Unit::Plain)
    }
}

#[cfg(test)]
mod tests {
    use tsdb::promql::{Point, Sample, Scalar, Series as MatrixSeries, StringValue};

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs)
    }

    #[test]
    fn shared_labels_are_left_out_of_the_legend() {
        let a = labels(&[
            ("__name__", "node_cpu_seconds_total"),
            ("cpu", "0"),
            ("job", "node"),
            ("mode", "idle"),
        ]);
        let b = labels(&[
            ("__name__", "node_cpu_seconds_total"),
            ("cpu", "1"),
            ("job", "node"),
            ("mode", "idle"),
        ]);
        assert_eq!(legend_labels(&[&a, &b]), [r#"{cpu="0"}"#, r#"{cpu="1"}"#]);
        assert_eq!(
            legend_labels(&[&a]),
            [r#"node_cpu_seconds_total{cpu="0", job="node", mode="idle"}"#]
        );
        let subset = labels(&[("job", "node")]);
        let more = labels(&[("job", "node"), ("x", "1")]);
        assert_eq!(
            legend_labels(&[&subset, &more]),
            [r#"{job="node"}"#, r#"{x="1"}"#]
        );
        let empty = Labels::empty();
        assert_eq!(legend_labels(&[&empty]), ["{}"]);
        let bare = labels(&[("__name__", "up")]);
        assert_eq!(legend_labels(&[&bare]), ["up"]);
        let quoted = labels(&[("path", "a\"b\\c")]);
        assert_eq!(legend_labels(&[&quoted]), [r#"{path="a\"b\\c"}"#]);
    }

    #[test]
    fn matrices_vectors_and_scalars_become_series() {
        let range = TimeRange::new(0, 60_000);
        let matrix = Value::Matrix(vec![
            MatrixSeries {
                labels: labels(&[("job", "a")]),
                points: vec![Point::new(0, 1.0), Point::new(15_000, 2.0)],
            },
            MatrixSeries {
                labels: labels(&[("job", "b")]),
                points: vec![Point::new(0, 3.0)],
            },
        ]);
        let chart = Chart::from_value(
            "rate(process_cpu_seconds_total[1m])",
            &matrix,
            range,
            Some(15_000),
        );
        assert_eq!(chart.unit, Unit::Seconds);
        assert_eq!(chart.step_ms, Some(15_000));
        assert_eq!(chart.series.len(), 2);
        assert_eq!(chart.series[0].label, r#"{job="a"}"#);
        assert_eq!(chart.series[0].points, [(0, 1.0), (15_000, 2.0)]);

        let vector = Value::Vector(vec![Sample {
            labels: labels(&[("__name__", "up")]),
            t: 60_000,
            v: 1.0,
        }]);
        let chart = Chart::from_value("up", &vector, range, None);
        assert_eq!(chart.series[0].label, "up");
        assert_eq!(chart.series[0].points, [(60_000, 1.0)]);

        let scalar = Value::Scalar(Scalar { t: 0, v: 4.0 });
        assert_eq!(
            Chart::from_value("4", &scalar, range, None).series[0].points,
            [(0, 4.0)]
        );
        let string = Value::String(StringValue {
            t: 0,
            v: "x".into(),
        });
        assert!(
            Chart::from_value("\"x\"", &string, range, None)
                .series
                .is_empty()
        );
    }

    #[test]
    fn query_units_are_guessed_from_agreeing_metric_names() {
        let cases = [
            ("rate(node_network_receive_bytes_total[5m])", Unit::Bytes),
            (
                "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
                Unit::Seconds,
            ),
            (
                "process_resident_memory_bytes + go_memstats_heap_inuse_bytes",
                Unit::Bytes,
            ),
            (
                "rate(a_bytes_total[5m]) + rate(b_seconds_total[5m])",
                Unit::Plain,
            ),
            (
                "node_filesystem_avail_bytes / node_filesystem_size_bytes",
                Unit::Plain,
            ),
            ("up", Unit::Plain),
            ("", Unit::Plain),
        ];
        for (query, unit) in cases {
            assert_eq!(Unit::guess_from_query(query), unit, "{query}");
        }
    }
}
