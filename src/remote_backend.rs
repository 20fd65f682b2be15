//! [`RemoteBackend`]: `tsdb::promql::QueryBackend` over the HTTP API of any
//! Prometheus-compatible server, through [`crate::client::Client`], so the
//! recommender and the backtest read a Prometheus, VictoriaMetrics or another
//! Sextant exactly as they read the local engine.

use std::time::Duration;

use tsdb::model::{Labels, TimeRange};
use tsdb::promql::{
    Error, ErrorKind, QueryBackend, QueryResult, Sample, Scalar, Series, StringValue, Value,
};

use crate::client::{self, Client, LabelSet, Point};

/// Queries a server's `/api/v1/query` and `/api/v1/query_range`.
pub struct RemoteBackend {
    client: Client,
}

impl RemoteBackend {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base_url: &str) -> anyhow::Result<RemoteBackend> {
        Ok(RemoteBackend {
            client: Client::new(base_url)?,
        })
    }
}

/// Seconds as the API takes them: `1700000000.5`.
fn seconds(t_ms: i64) -> String {
    format!("{}.{:03}", t_ms.div_euclid(1000), t_ms.rem_euclid(1000))
}

fn backend_error(error: anyhow::Error) -> Error {
    let message = format!("{error:#}");
    let kind = if message.starts_with("bad_data") {
        ErrorKind::BadData
    } else if message.starts_with("timeout") {
        ErrorKind::Timeout
    } else {
        ErrorKind::Execution
    };
    Error::Backend { kind, message }
}

fn labels(set: &LabelSet) -> Labels {
    let pairs: Vec<(&str, &str)> = set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Labels::from_pairs(&pairs)
}

/// A point of the API: float seconds and a Go-formatted value.
fn point(p: &Point) -> Result<(i64, f64), Error> {
    let v = match p.value.as_str() {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        other => other.parse::<f64>().map_err(|_| Error::Backend {
            kind: ErrorKind::Internal,
            message: format!("the server sent an invalid sample value {other:?}"),
        })?,
    };
    Ok(((p.t * 1000.0).round() as i64, v))
}

/// The client's decoded result as the engine's [`Value`].
///
/// # Errors
/// A sample value that is not a number.
pub fn to_value(result: &client::QueryResult) -> Result<Value, Error> {
    Ok(match result {
        client::QueryResult::Vector(items) => {
            let mut vector = Vec::with_capacity(items.len());
            for (set, p) in items {
                let (t, v) = point(p)?;
                vector.push(Sample {
                    labels: labels(set),
                    t,
                    v,
                });
            }
            Value::Vector(vector)
        }
        client::QueryResult::Matrix(items) => {
            let mut matrix = Vec::with_capacity(items.len());
            for (set, points) in items {
                let mut out = Vec::with_capacity(points.len());
                for p in points {
                    let (t, v) = point(p)?;
                    out.push(tsdb::promql::Point { t, v });
                }
                matrix.push(Series {
                    labels: labels(set),
                    points: out,
                });
            }
            Value::Matrix(matrix)
        }
        client::QueryResult::Scalar(p) => {
            let (t, v) = point(p)?;
            Value::Scalar(Scalar { t, v })
        }
        client::QueryResult::String { t, value } => Value::String(StringValue {
            t: (t * 1000.0).round() as i64,
            v: value.clone(),
        }),
    })
}

fn answer(answer: client::Answer<client::QueryResult>) -> Result<QueryResult, Error> {
    let mut annotations = tsdb::promql::Annotations::default();
    for warning in answer.warnings {
        annotations.add_warning(warning);
    }
    Ok(QueryResult {
        value: to_value(&answer.result)?,
        annotations,
    })
}

impl QueryBackend for RemoteBackend {
    async fn instant(&self, query: &str, at_ms: i64) -> tsdb::promql::Result<QueryResult> {
        let time = seconds(at_ms);
        let outcome = self.client.instant(query, Some(&time)).await;
        answer(outcome.map_err(backend_error)?)
    }

    async fn range(
        &self,
        query: &str,
        range: TimeRange,
        step: Duration,
    ) -> tsdb::promql::Result<QueryResult> {
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
        let outcome = self
            .client
            .range(
                query,
                &seconds(range.start),
                &seconds(range.end),
                &seconds(step_ms),
            )
            .await;
        answer(outcome.map_err(backend_error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_results_become_engine_values() {
        assert_eq!(seconds(1_700_000_000_500), "1700000000.500");
        assert_eq!(seconds(-1), "-1.999");
        let result = client::QueryResult::Matrix(vec![(
            vec![("pod".into(), "a".into())],
            vec![
                Point {
                    t: 1.5,
                    value: "2".into(),
                },
                Point {
                    t: 3.0,
                    value: "+Inf".into(),
                },
            ],
        )]);
        let Value::Matrix(matrix) = to_value(&result).unwrap() else {
            panic!()
        };
        assert_eq!(matrix[0].labels.get("pod"), Some("a"));
        assert_eq!(matrix[0].points[0].t, 1500);
        assert_eq!(matrix[0].points[1].v, f64::INFINITY);
        let bad = client::QueryResult::Scalar(Point {
            t: 0.0,
            value: "x".into(),
        });
        assert!(to_value(&bad).is_err());
    }
}
