//! The remote storage receivers: `POST /api/v1/write` (remote write 1.0,
//! only with `--web.enable-remote-write-receiver`) and `POST /api/v1/read`
//! (remote read, `SAMPLES` responses). Wire format and status codes:
//! `docs/format/remote.md`. Errors are plain text, as Prometheus's
//! `http.Error`, not the JSON envelope of the query API.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::Semaphore;
use tsdb::error::AppendError;
use tsdb::model::{Sample, SeriesRef, TimeRange};
use tsdb::storage::{Appendable, Queryable, SelectHints};

use crate::remote::{self, proto};

/// Bounds on what one remote request may cost.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteLimits {
    /// Largest compressed request body.
    pub max_body_bytes: usize,
    /// Largest decompressed request (Prometheus's `decodeReadLimit`, 32 MiB).
    pub max_decoded_bytes: usize,
    /// Samples one read request may return
    /// (`--storage.remote.read-sample-limit`, 5e7).
    pub read_sample_limit: usize,
    /// Read requests served at once (`--storage.remote.read-concurrent-limit`, 10).
    pub read_concurrency: usize,
}

impl Default for RemoteLimits {
    fn default() -> Self {
        RemoteLimits {
            max_body_bytes: 32 << 20,
            max_decoded_bytes: 32 << 20,
            read_sample_limit: 50_000_000,
            read_concurrency: 10,
        }
    }
}

/// What the two handlers share.
pub struct RemoteApi {
    /// Where received samples go; `None` when the receiver is disabled.
    appendable: Option<Arc<dyn Appendable>>,
    storage: Arc<dyn Queryable>,
    limits: RemoteLimits,
    read_slots: Semaphore,
}

impl RemoteApi {
    pub fn new(
        appendable: Option<Arc<dyn Appendable>>,
        storage: Arc<dyn Queryable>,
        limits: RemoteLimits,
    ) -> Self {
        let read_slots = Semaphore::new(limits.read_concurrency.max(1));
        RemoteApi {
            appendable,
            storage,
            limits,
            read_slots,
        }
    }
}

/// `/api/v1/write` and `/api/v1/read`.
pub fn router(api: Arc<RemoteApi>) -> Router {
    let body_limit = api.limits.max_body_bytes;
    Router::new()
        .route("/api/v1/write", post(write))
        .route("/api/v1/read", post(read))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(api)
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut body = message.into();
    body.push('\n');
    (status, body).into_response()
}

/// Checks `Content-Type` and `Content-Encoding` as Prometheus's receiver
/// does: a missing type means protobuf, a missing encoding means snappy.
/// The refusal, if any.
fn check_content_headers(headers: &HeaderMap, message: &str) -> Option<Response> {
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(content_type) = header_text(header::CONTENT_TYPE) {
        let mut parts = content_type.split(';').map(str::trim);
        if parts.next() != Some(remote::CONTENT_TYPE) {
            return Some(text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "expected {} as the first (media) part, got {content_type} content-type",
                    remote::CONTENT_TYPE
                ),
            ));
        }
        for parameter in parts {
            if let Some(proto) = parameter.strip_prefix("proto=")
                && proto != message
            {
                return Some(text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("unsupported proto message {proto:?}, this endpoint accepts {message}"),
                ));
            }
        }
    }
    if let Some(encoding) = header_text(header::CONTENT_ENCODING)
        && !encoding.eq_ignore_ascii_case("snappy")
    {
        return Some(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "{encoding} encoding (compression) is not accepted by this server; only snappy is acceptable"
            ),
        ));
    }
    None
}

fn decode_error(error: remote::Error) -> Response {
    match error {
        remote::Error::TooLarge { .. } => text(StatusCode::PAYLOAD_TOO_LARGE, error.to_string()),
        other => text(StatusCode::BAD_REQUEST, other.to_string()),
    }
}

async fn write(State(api): State<Arc<RemoteApi>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(appendable) = api.appendable.clone() else {
        return text(
            StatusCode::NOT_FOUND,
            "remote write receiver needs to be enabled with --web.enable-remote-write-receiver",
        );
    };
    if let Some(response) = check_content_headers(&headers, "prometheus.WriteRequest") {
        return response;
    }
    let request: proto::WriteRequest = match remote::decode(&body, api.limits.max_decoded_bytes) {
        Ok(request) => request,
        Err(error) => return decode_error(error),
    };
    match tokio::task::spawn_blocking(move || append_request(appendable.as_ref(), &request)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(WriteError::BadData(message))) => text(StatusCode::BAD_REQUEST, message),
        Ok(Err(WriteError::Storage(message))) => {
            tracing::error!(error = %message, "Error while remote writing the v1 request.");
            text(StatusCode::INTERNAL_SERVER_ERROR, message)
        }
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// Why a write request was refused.
#[derive(Debug, PartialEq)]
enum WriteError {
    /// Will never succeed: 400, the sender drops the batch.
    BadData(String),
    /// May succeed later: 500, the sender retries.
    Storage(String),
}

/// Why a series of a write request is skipped, if it is: Prometheus
/// skips series without a metric name or with invalid or repeated label
/// names and stores the rest.
fn invalid_series(labels: &[proto::Label]) -> Option<String> {
    if !labels
        .iter()
        .any(|l| l.name == tsdb::model::METRIC_NAME && !l.value.is_empty())
    {
        return Some("no metric name".into());
    }
    let mut names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
    if names.iter().any(|n| n.is_empty()) {
        return Some("empty label name".into());
    }
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Some(format!("duplicate label name {:?}", pair[0]));
    }
    None
}

/// Appends every sample of `request` in one batch. As Prometheus's v1
/// handler: a sample out of order, a conflicting duplicate or one too old
/// rolls the whole batch back and is a bad request; invalid series are
/// skipped and counted in the log. New series beyond the storage's series
/// cap are skipped, the rest committed, and the answer is a bad request
/// naming the cap (a sender must not retry them).
fn append_request(
    appendable: &dyn Appendable,
    request: &proto::WriteRequest,
) -> Result<(), WriteError> {
    let mut appender = appendable.appender();
    let mut skipped = 0usize;
    let mut refused: Option<(usize, AppendError)> = None;
    for series in &request.timeseries {
        if let Some(reason) = invalid_series(&series.labels) {
            tracing::warn!(reason, labels = ?series.labels, "Invalid metric names or labels in a remote write request; series skipped.");
            skipped += series.samples.len();
            continue;
        }
        let labels = remote::labels_from_proto(&series.labels);
        let mut hint: Option<SeriesRef> = None;
        for sample in &series.samples {
            match appender.append(hint, &labels, Sample::new(sample.timestamp, sample.value)) {
                Ok(series_ref) => hint = Some(series_ref),
                Err(error @ AppendError::SeriesLimitExceeded { .. }) => {
                    let count = refused.as_ref().map_or(0, |(n, _)| *n);
                    refused = Some((count + series.samples.len(), error));
                    break;
                }
                Err(error) => {
                    appender.rollback();
                    return Err(match error {
                        AppendError::OutOfOrderSample { .. }
                        | AppendError::DuplicateSample { .. }
                        | AppendError::OutOfBounds { .. } => {
                            tracing::error!(error = %error, "Out of order sample from remote write.");
                            WriteError::BadData(error.to_string())
                        }
                        AppendError::InvalidSeries { .. } => WriteError::BadData(error.to_string()),
                        AppendError::UnknownSeriesRef(_)
                        | AppendError::SeriesLimitExceeded { .. } => {
                            WriteError::Storage(error.to_string())
                        }
                    });
                }
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(
            samples = skipped,
            "Remote write samples with invalid labels were dropped."
        );
    }
    appender
        .commit()
        .map_err(|e| WriteError::Storage(e.to_string()))?;
    match refused {
        Some((samples, error)) => {
            tracing::warn!(samples, %error, "Remote write samples of new series refused by the series cap.");
            Err(WriteError::BadData(format!(
                "{samples} samples refused: {error}"
            )))
        }
        None => Ok(()),
    }
}

async fn read(State(api): State<Arc<RemoteApi>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(response) = check_content_headers(&headers, "prometheus.ReadRequest") {
        return response;
    }
    let request: proto::ReadRequest = match remote::decode(&body, api.limits.max_decoded_bytes) {
        Ok(request) => request,
        Err(error) => return decode_error(error),
    };
    let samples_accepted = request.accepted_response_types.is_empty()
        || request
            .accepted_response_types
            .contains(&(proto::ResponseType::Samples as i32));
    if !samples_accepted {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "server does not support any of the requested response types: {:?}; supported: [SAMPLES]",
                request.accepted_response_types
            ),
        );
    }
    let Ok(_slot) = api.read_slots.acquire().await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    };
    let storage = Arc::clone(&api.storage);
    let limit = api.limits.read_sample_limit;
    let answer =
        tokio::task::spawn_blocking(move || read_samples(storage.as_ref(), &request, limit)).await;
    match answer {
        Ok(Ok(response)) => {
            let mut response = remote::encode(&response).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(remote::CONTENT_TYPE),
            );
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
            response
        }
        Ok(Err((status, message))) => text(status, message),
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// Answers every query of `request` from `storage`, series sorted by
/// labels and samples in time order, staleness markers included.
fn read_samples(
    storage: &dyn Queryable,
    request: &proto::ReadRequest,
    sample_limit: usize,
) -> Result<proto::ReadResponse, (StatusCode, String)> {
    let mut results = Vec::with_capacity(request.queries.len());
    let mut total = 0usize;
    for query in &request.queries {
        let matchers = query
            .matchers
            .iter()
            .map(remote::matcher_from_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        let range = TimeRange::new(query.start_timestamp_ms, query.end_timestamp_ms);
        let mut hints = SelectHints::for_range(range);
        if let Some(h) = &query.hints {
            hints.step_ms = h.step_ms;
            hints.range_ms = h.range_ms;
            hints.func = Some(h.func.clone()).filter(|f| !f.is_empty());
        }
        let storage_error = |e: tsdb::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        let querier = storage.querier(range).map_err(storage_error)?;
        let set = querier.select(&matchers, &hints).map_err(storage_error)?;
        let mut timeseries = Vec::with_capacity(set.series.len());
        for mut series in set.series {
            let mut samples = Vec::new();
            while let Some(sample) = series.samples.next() {
                if sample.t > range.end {
                    break;
                }
                if sample.t < range.start {
                    continue;
                }
                total += 1;
                if total > sample_limit {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        format!("exceeded sample limit ({sample_limit})"),
                    ));
                }
                samples.push(proto::Sample {
                    value: sample.v,
                    timestamp: sample.t,
                });
            }
            if samples.is_empty() {
                continue;
            }
            timeseries.push(proto::TimeSeries {
                labels: remote::labels_to_proto(&series.labels),
                samples,
                exemplars: Vec::new(),
            });
        }
        results.push(proto::QueryResult { timeseries });
    }
    Ok(proto::ReadResponse { results })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    use tsdb::head::{Head, HeadOptions};
    use tsdb::model::{Labels, STALE_NAN_BITS};

    fn label(name: &str, value: &str) -> proto::Label {
        proto::Label {
            name: name.into(),
            value: value.into(),
        }
    }

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> proto::TimeSeries {
        proto::TimeSeries {
            labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| proto::Sample { value, timestamp })
                .collect(),
            exemplars: vec![],
        }
    }

    fn setup(enabled: bool) -> (Arc<Head>, Router) {
        let head = Arc::new(Head::new(HeadOptions::default()));
        let appendable: Option<Arc<dyn Appendable>> =
            enabled.then(|| Arc::clone(&head) as Arc<dyn Appendable>);
        let api = RemoteApi::new(
            appendable,
            Arc::clone(&head) as Arc<dyn Queryable>,
            RemoteLimits {
                read_sample_limit: 5,
                ..RemoteLimits::default()
            },
        );
        (head, router(Arc::new(api)))
    }

    async fn post(
        router: &Router,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Vec<u8>) {
        let mut request = Request::post(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    const WRITE_HEADERS: [(&str, &str); 3] = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "snappy"),
        ("x-prometheus-remote-write-version", "0.1.0"),
    ];

    fn stored(head: &Head, name: &str) -> Vec<(i64, u64)> {
        let querier = head.querier(TimeRange::all()).unwrap();
        let set = querier
            .select(
                &[tsdb::model::Matcher::equal("__name__", name)],
                &SelectHints::for_range(TimeRange::all()),
            )
            .unwrap();
        let mut out = Vec::new();
        for mut s in set.series {
            while let Some(sample) = s.samples.next() {
                out.push((sample.t, sample.v.to_bits()));
            }
        }
        out
    }

    fn write_body(timeseries: Vec<proto::TimeSeries>) -> Vec<u8> {
        remote::encode(&proto::WriteRequest {
            timeseries,
            metadata: vec![],
        })
    }

    #[tokio::test]
    async fn stores_samples_and_staleness_markers() {
        let (head, router) = setup(true);
        let stale = f64::from_bits(STALE_NAN_BITS);
        let body = write_body(vec![series(
            &[("__name__", "up"), ("job", "a")],
            &[(1000, 1.0), (2000, stale)],
        )]);
        let (status, answer) = post(&router, "/api/v1/write", body, &WRITE_HEADERS).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(answer.is_empty());
        assert_eq!(
            stored(&head, "up"),
            vec![(1000, 1f64.to_bits()), (2000, STALE_NAN_BITS)]
        );
    }

    #[tokio::test]
    async fn out_of_order_rejects_the_whole_request_with_400() {
        let (head, router) = setup(true);
        let body = write_body(vec![series(&[("__name__", "up")], &[(5000, 1.0)])]);
        assert_eq!(
            post(&router, "/api/v1/write", body, &WRITE_HEADERS).await.0,
            StatusCode::NO_CONTENT
        );
        let body = write_body(vec![
            series(&[("__name__", "other")], &[(1000, 1.0)]),
            series(&[("__name__", "up")], &[(4000, 2.0)]),
        ]);
        let (status, message) = post(&router, "/api/v1/write", body, &WRITE_HEADERS).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8(message).unwrap().contains("out of order"));
        assert!(stored(&head, "other").is_empty(), "rolled back");
        // Resending identical samples is not an error (a retried batch).
        let body = write_body(vec![series(&[("__name__", "up")], &[(5000, 1.0)])]);
        assert_eq!(
            post(&router, "/api/v1/write", body, &WRITE_HEADERS).await.0,
            StatusCode::NO_CONTENT
        );
        // A different value at the same timestamp is.
        let body = write_body(vec![series(&[("__name__", "up")], &[(5000, 3.0)])]);
        assert_eq!(
            post(&router, "/api/v1/write", body, &WRITE_HEADERS).await.0,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn new_series_beyond_the_cap_are_refused_with_400_and_the_rest_stored() {
        let head = Arc::new(Head::new(HeadOptions {
            max_series: Some(1),
            ..HeadOptions::default()
        }));
        let api = RemoteApi::new(
            Some(Arc::clone(&head) as Arc<dyn Appendable>),
            Arc::clone(&head) as Arc<dyn Queryable>,
            RemoteLimits::default(),
        );
        let router = router(Arc::new(api));
        let body = write_body(vec![series(&[("__name__", "known")], &[(1000, 1.0)])]);
        assert_eq!(
            post(&router, "/api/v1/write", body, &WRITE_HEADERS).await.0,
            StatusCode::NO_CONTENT
        );
        let body = write_body(vec![
            series(&[("__name__", "new")], &[(2000, 1.0), (3000, 1.0)]),
            series(&[("__name__", "known")], &[(2000, 2.0)]),
        ]);
        let (status, message) = post(&router, "/api/v1/write", body, &WRITE_HEADERS).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let message = String::from_utf8(message).unwrap();
        assert!(
            message.contains("2 samples refused") && message.contains("series limit of 1"),
            "{message}"
        );
        assert_eq!(stored(&head, "known").len(), 2);
        assert!(stored(&head, "new").is_empty());
    }

    #[tokio::test]
    async fn invalid_series_are_skipped_and_the_rest_stored() {
        let (head, router) = setup(true);
        let body = write_body(vec![
            series(&[("job", "no-name")], &[(1000, 1.0)]),
            series(
                &[("__name__", "dup"), ("a", "1"), ("a", "2")],
                &[(1000, 1.0)],
            ),
            series(&[("__name__", "good")], &[(1000, 1.0)]),
        ]);
        assert_eq!(
            post(&router, "/api/v1/write", body, &WRITE_HEADERS).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(stored(&head, "good").len(), 1);
        assert!(stored(&head, "dup").is_empty());
    }

    #[tokio::test]
    async fn bad_bodies_and_headers_get_prometheus_codes() {
        let (_, router) = setup(true);
        let good = write_body(vec![series(&[("__name__", "up")], &[(1000, 1.0)])]);
        assert_eq!(
            post(
                &router,
                "/api/v1/write",
                b"garbage".to_vec(),
                &WRITE_HEADERS
            )
            .await
            .0,
            StatusCode::BAD_REQUEST
        );
        let v2 = [(
            "content-type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )];
        assert_eq!(
            post(&router, "/api/v1/write", good.clone(), &v2).await.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let json = [("content-type", "application/json")];
        assert_eq!(
            post(&router, "/api/v1/write", good.clone(), &json).await.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let gzip = [("content-encoding", "gzip")];
        assert_eq!(
            post(&router, "/api/v1/write", good.clone(), &gzip).await.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        // No headers at all: protobuf and snappy are assumed.
        assert_eq!(
            post(&router, "/api/v1/write", good, &[]).await.0,
            StatusCode::NO_CONTENT
        );
        let huge = vec![0u8; (32 << 20) + 1];
        assert_eq!(
            post(&router, "/api/v1/write", huge, &WRITE_HEADERS).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[tokio::test]
    async fn a_disabled_receiver_answers_404() {
        let (_, router) = setup(false);
        let body = write_body(vec![series(&[("__name__", "up")], &[(1000, 1.0)])]);
        assert_eq!(
            post(&router, "/api/v1/write", body, &WRITE_HEADERS).await.0,
            StatusCode::NOT_FOUND
        );
    }

    fn read_body(
        matchers: Vec<proto::LabelMatcher>,
        start: i64,
        end: i64,
        types: Vec<i32>,
    ) -> Vec<u8> {
        remote::encode(&proto::ReadRequest {
            queries: vec![proto::Query {
                start_timestamp_ms: start,
                end_timestamp_ms: end,
                matchers,
                hints: None,
            }],
            accepted_response_types: types,
        })
    }

    #[tokio::test]
    async fn read_answers_samples_in_range_sorted_by_labels() {
        let (head, router) = setup(true);
        let mut appender = head.appender();
        for (job, offset) in [("b", 0.0), ("a", 10.0)] {
            let labels = Labels::from_pairs(&[("__name__", "up"), ("job", job)]);
            for t in 1..=3 {
                appender
                    .append(None, &labels, Sample::new(t * 1000, offset + t as f64))
                    .unwrap();
            }
        }
        appender.commit().unwrap();
        let matcher = remote::matcher_to_proto(&tsdb::model::Matcher::equal("__name__", "up"));
        let body = read_body(vec![matcher.clone()], 2000, 3000, vec![]);
        let (status, answer) = post(&router, "/api/v1/read", body, &[]).await;
        assert_eq!(status, StatusCode::OK);
        let response: proto::ReadResponse = remote::decode(&answer, 1 << 20).unwrap();
        let expected = proto::ReadResponse {
            results: vec![proto::QueryResult {
                timeseries: vec![
                    series(
                        &[("__name__", "up"), ("job", "a")],
                        &[(2000, 12.0), (3000, 13.0)],
                    ),
                    series(
                        &[("__name__", "up"), ("job", "b")],
                        &[(2000, 2.0), (3000, 3.0)],
                    ),
                ],
            }],
        };
        assert_eq!(response, expected);

        // Over the sample limit of 5.
        let body = read_body(vec![matcher.clone()], 0, 5000, vec![]);
        let (status, message) = post(&router, "/api/v1/read", body, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8(message).unwrap().contains("sample limit"));
        // Only chunked responses accepted.
        let body = read_body(
            vec![matcher],
            0,
            5000,
            vec![proto::ResponseType::StreamedXorChunks as i32],
        );
        assert_eq!(
            post(&router, "/api/v1/read", body, &[]).await.0,
            StatusCode::BAD_REQUEST
        );
        // A bad regex.
        let bad = proto::LabelMatcher {
            r#type: proto::MatcherType::Re as i32,
            name: "job".into(),
            value: "(".into(),
        };
        let body = read_body(vec![bad], 0, 5000, vec![]);
        assert_eq!(
            post(&router, "/api/v1/read", body, &[]).await.0,
            StatusCode::BAD_REQUEST
        );
    }
}
