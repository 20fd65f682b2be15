//! `GET /federate`: the newest sample of every series matching `match[]`,
//! as Prometheus's federation endpoint answers it, in the text exposition
//! format 0.0.4: metric families sorted by name, each under
//! `# TYPE <name> untyped`, the series' labels followed by the external
//! labels it lacks (and `instance=""` when it has none, as Prometheus
//! adds), sample timestamps in milliseconds. A series whose newest sample within
//! the lookback delta is a staleness marker is left out.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tsdb::clock::Clock;
use tsdb::model::{Labels, METRIC_NAME, Sample, TimeRange, is_stale_nan};
use tsdb::storage::{Queryable, SelectHints};

use super::params::{Params, Required};
use crate::float::format_g;
use crate::metrics::TEXT_CONTENT_TYPE;

/// What `/federate` reads.
pub struct Federation {
    pub storage: Arc<dyn Queryable>,
    pub clock: Arc<dyn Clock>,
    /// How far back the newest sample may be (the query lookback delta).
    pub lookback_delta: Duration,
    /// Added to every series that lacks them.
    pub external_labels: Vec<(String, String)>,
}

/// `/federate`.
pub fn router(federation: Arc<Federation>) -> Router {
    Router::new()
        .route("/federate", get(federate))
        .with_state(federation)
}

fn text(status: StatusCode, message: String) -> Response {
    (status, message + "\n").into_response()
}

async fn federate(State(federation): State<Arc<Federation>>, params: Params) -> Response {
    let matcher_sets = match params.matcher_sets(Required::No) {
        Ok(sets) => sets,
        Err(error) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("error parsing match[]: {error}"),
            );
        }
    };
    let now = federation.clock.now_ms();
    let lookback_ms = i64::try_from(federation.lookback_delta.as_millis()).unwrap_or(i64::MAX);
    let range = TimeRange::new(now.saturating_sub(lookback_ms), now);
    let work = {
        let federation = Arc::clone(&federation);
        move || newest_samples(federation.storage.as_ref(), &matcher_sets, range)
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(samples)) => {
            let body = render(&samples, &federation.external_labels);
            let mut response = body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(TEXT_CONTENT_TYPE),
            );
            response
        }
        Ok(Err(error)) => text(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// The newest sample in `range` of every series matching any of the sets,
/// each series once, staleness markers left out.
fn newest_samples(
    storage: &dyn Queryable,
    matcher_sets: &[Vec<tsdb::model::Matcher>],
    range: TimeRange,
) -> tsdb::Result<Vec<(Labels, Sample)>> {
    let querier = storage.querier(range)?;
    let mut newest = std::collections::BTreeMap::new();
    for matchers in matcher_sets {
        let set = querier.select(matchers, &SelectHints::for_range(range))?;
        for mut series in set.series {
            if newest.contains_key(&series.labels) {
                continue;
            }
            let mut last = None;
            while let Some(sample) = series.samples.next() {
                if sample.t > range.end {
                    break;
                }
                last = Some(sample);
            }
            if let Some(sample) = last.filter(|s| s.t >= range.start && !is_stale_nan(s.v)) {
                newest.insert(series.labels, sample);
            }
        }
    }
    Ok(newest.into_iter().collect())
}

/// The text format, families in metric name order (stable within a name,
/// so series stay in label order).
fn render(samples: &[(Labels, Sample)], external_labels: &[(String, String)]) -> String {
    let mut sorted: Vec<&(Labels, Sample)> = samples.iter().collect();
    sorted.sort_by(|a, b| a.0.metric_name().cmp(&b.0.metric_name()));
    let mut out = String::new();
    let mut family: Option<&str> = None;
    for (labels, sample) in sorted {
        let name = labels.metric_name().unwrap_or("");
        if family != Some(name) {
            let _ = writeln!(out, "# TYPE {name} untyped");
            family = Some(name);
        }
        let mut pairs: Vec<(&str, &str)> = labels
            .iter()
            .filter(|l| &*l.name != METRIC_NAME)
            .map(|l| (&*l.name, &*l.value))
            .collect();
        // After the series' own labels, the external labels it lacks, in
        // name order, with an empty `instance` among them unless configured.
        let mut external: Vec<(&str, &str)> = external_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !external.iter().any(|(k, _)| *k == "instance") {
            external.push(("instance", ""));
        }
        external.sort_unstable();
        for (k, v) in external {
            if labels.get(k).is_none() {
                pairs.push((k, v));
            }
        }
        out.push_str(name);
        for (i, (k, v)) in pairs.iter().enumerate() {
            out.push(if i == 0 { '{' } else { ',' });
            let escaped = v
                .replace('\\', r"\\")
                .replace('"', "\\\"")
                .replace('\n', r"\n");
            let _ = write!(out, "{k}=\"{escaped}\"");
        }
        if !pairs.is_empty() {
            out.push('}');
        }
        let _ = writeln!(out, " {} {}", format_g(sample.v), sample.t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    use tsdb::clock::ManualClock;
    use tsdb::head::{Head, HeadOptions};
    use tsdb::model::STALE_NAN;
    use tsdb::storage::Appendable;

    async fn get_text(router: &Router, uri: &str) -> (StatusCode, String) {
        let response = router
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn newest_samples_without_stale_or_old_series() {
        let head = Arc::new(Head::new(HeadOptions::default()));
        let mut appender = head.appender();
        let mut add = |pairs: &[(&str, &str)], samples: &[(i64, f64)]| {
            let labels = Labels::from_pairs(pairs);
            for &(t, v) in samples {
                appender.append(None, &labels, Sample::new(t, v)).unwrap();
            }
        };
        add(
            &[("__name__", "up"), ("job", "b")],
            &[(1_000_000, 1.0), (1_015_000, 0.0)],
        );
        add(&[("__name__", "up"), ("job", "a")], &[(1_010_000, 1.0)]);
        add(
            &[("__name__", "up"), ("job", "gone")],
            &[(1_000_000, 1.0), (1_010_000, STALE_NAN)],
        );
        add(&[("__name__", "up"), ("job", "old")], &[(100_000, 1.0)]);
        add(
            &[("__name__", "go_info"), ("job", "a"), ("version", "x\"y")],
            &[(1_010_000, 1e9)],
        );
        // A sample after "now" is not seen.
        add(
            &[("__name__", "up"), ("job", "future")],
            &[(2_000_000, 1.0)],
        );
        appender.commit().unwrap();
        let federation = Federation {
            storage: head,
            clock: Arc::new(ManualClock::new(1_020_000)),
            lookback_delta: Duration::from_secs(300),
            external_labels: vec![
                ("cluster".into(), "eu".into()),
                ("job".into(), "ignored".into()),
            ],
        };
        let router = router(Arc::new(federation));
        let (status, body) = get_text(&router, "/federate?match[]=up&match[]={job=%22a%22}").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            concat!(
                "# TYPE go_info untyped\n",
                "go_info{job=\"a\",version=\"x\\\"y\",cluster=\"eu\",instance=\"\"} 1e+09 1010000\n",
                "# TYPE up untyped\n",
                "up{job=\"a\",cluster=\"eu\",instance=\"\"} 1 1010000\n",
                "up{job=\"b\",cluster=\"eu\",instance=\"\"} 0 1015000\n",
            )
        );
        let (status, body) = get_text(&router, "/federate").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
        let (status, _) = get_text(&router, "/federate?match[]=up{").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
