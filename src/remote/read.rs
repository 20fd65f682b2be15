//! Another Prometheus-compatible server as a [`Queryable`]: the PromQL
//! engine, rules and the autoscaler run over it unchanged (wrap it in
//! `crate::backend::LocalBackend` for a `QueryBackend`).
//!
//! `select` uses remote read (`SAMPLES`) where the server has it. A server
//! without it (VictoriaMetrics answers remote read with 4xx) is asked once,
//! then only through its query API: the selector `{matchers}[range]`
//! evaluated at the range's end returns the raw samples. Label names and
//! values come from `/api/v1/labels` and `/api/v1/label/<name>/values`.
//!
//! Staleness through the query API: Prometheus leaves stale markers out of a
//! range selector's samples, so a `NaN` it returns is a real `NaN`.
//! VictoriaMetrics stores no `NaN` but Prometheus's stale markers (it drops the
//! others at ingestion) and returns those as `NaN`: from a server that refused
//! remote read as VictoriaMetrics does (`unsupported path requested`), a `NaN`
//! is a stale marker again, so that series end where they ended in the source
//! and the engine's lookback matches the local store's.
//!
//! `Queryable` is synchronous: calls block on the runtime handle captured at
//! construction, so they must come from a blocking thread (the engine runs on
//! tokio's blocking pool), never from async code.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use scraper::config::HttpClientConfig;
use serde_json::Value;
use tsdb::model::{Label, Labels, Matcher, STALE_NAN, Sample, TimeRange};
use tsdb::storage::{Querier, Queryable, SelectHints, Series, SeriesSet};

use super::proto;
use crate::config::RemoteReadConfig;

/// Largest decompressed remote read response accepted.
const MAX_RESPONSE_BYTES: usize = 512 << 20;

/// A remote server read through remote read or its query API.
pub struct RemoteStorage {
    /// The remote read endpoint (`.../api/v1/read`).
    read_url: String,
    /// The query API's base: `read_url` without `/api/v1/read`.
    api_base: String,
    client: reqwest::Client,
    http: HttpClientConfig,
    headers: HeaderMap,
    timeout: Duration,
    runtime: tokio::runtime::Handle,
    /// Set once the server answered remote read as unsupported.
    no_remote_read: AtomicBool,
    /// Set when the refusal was VictoriaMetrics's: its `NaN`s are stale markers.
    nan_is_stale: AtomicBool,
}

/// How VictoriaMetrics (single node, vmselect) refuses a path it does not serve.
const VICTORIA_METRICS_REFUSAL: &str = "unsupported path requested";

/// Why a remote call failed, as a storage error for the engine.
fn remote_error(url: &str, reason: impl std::fmt::Display) -> tsdb::Error {
    tsdb::Error::Io {
        path: url.into(),
        source: std::io::Error::other(format!("remote storage: {reason}")),
    }
}

impl RemoteStorage {
    /// From a `remote_read` section. Call within a tokio runtime.
    ///
    /// # Errors
    /// The HTTP client cannot be built (bad certificates), a bad header.
    pub fn from_config(config: &RemoteReadConfig) -> anyhow::Result<Self> {
        let http = config.http_client_config();
        let client = http.build_client(true)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            headers.insert(
                header::HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        let read_url = config.url.clone();
        let api_base = read_url
            .trim_end_matches('/')
            .trim_end_matches("/api/v1/read")
            .to_string();
        Ok(RemoteStorage {
            read_url,
            api_base,
            client,
            http,
            headers,
            timeout: config.remote_timeout,
            runtime: tokio::runtime::Handle::current(),
            no_remote_read: AtomicBool::new(false),
            nan_is_stale: AtomicBool::new(false),
        })
    }

    /// Reads `url` (a remote read endpoint) with default settings.
    ///
    /// # Errors
    /// As [`RemoteStorage::from_config`].
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let config: RemoteReadConfig = serde_yaml::from_str(&format!("url: {url:?}"))?;
        RemoteStorage::from_config(&config)
    }

    /// Whether the server turned out to have no remote read.
    pub fn uses_query_api(&self) -> bool {
        self.no_remote_read.load(Ordering::Relaxed)
    }

    /// Whether the server turned out to be VictoriaMetrics, whose `NaN`s are
    /// stale markers.
    pub fn nan_is_stale(&self) -> bool {
        self.nan_is_stale.load(Ordering::Relaxed)
    }

    fn request_headers(&self) -> tsdb::Result<HeaderMap> {
        let mut headers = self.headers.clone();
        let auth = self
            .http
            .request_headers()
            .map_err(|e| remote_error(&self.read_url, e))?;
        headers.extend(auth);
        Ok(headers)
    }

    /// `Ok(None)` when the server has no remote read.
    async fn remote_read(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        hints: &SelectHints,
    ) -> tsdb::Result<Option<Vec<Series>>> {
        let request = proto::ReadRequest {
            queries: vec![proto::Query {
                start_timestamp_ms: start,
                end_timestamp_ms: end,
                matchers: matchers.iter().map(super::matcher_to_proto).collect(),
                hints: Some(proto::ReadHints {
                    step_ms: hints.step_ms,
                    func: hints.func.clone().unwrap_or_default(),
                    start_ms: start,
                    end_ms: end,
                    range_ms: hints.range_ms,
                    ..proto::ReadHints::default()
                }),
            }],
            accepted_response_types: vec![proto::ResponseType::Samples as i32],
        };
        let mut headers = self.request_headers()?;
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::CONTENT_TYPE),
        );
        headers.insert(
            "x-prometheus-remote-read-version",
            HeaderValue::from_static(super::READ_VERSION),
        );
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("Sextant/", env!("CARGO_PKG_VERSION"))),
        );
        let error = |e: &dyn std::fmt::Display| remote_error(&self.read_url, e);
        let response = self
            .client
            .post(&self.read_url)
            .headers(headers)
            .timeout(self.timeout)
            .body(super::encode(&request))
            .send()
            .await
            .map_err(|e| error(&e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| error(&e))?;
        if matches!(status, 400 | 404 | 405 | 415 | 501) {
            if String::from_utf8_lossy(&body).contains(VICTORIA_METRICS_REFUSAL) {
                self.nan_is_stale.store(true, Ordering::Relaxed);
            }
            return Ok(None);
        }
        if status / 100 != 2 {
            return Err(error(&format!(
                "remote read answered HTTP {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        let answer: proto::ReadResponse =
            super::decode(&body, MAX_RESPONSE_BYTES).map_err(|e| error(&e))?;
        let mut series = Vec::new();
        for result in answer.results {
            for ts in result.timeseries {
                let samples = ts
                    .samples
                    .iter()
                    .filter(|s| (start..=end).contains(&s.timestamp))
                    .map(|s| Sample::new(s.timestamp, s.value))
                    .collect();
                series.push(Series::from_samples(
                    super::labels_from_proto(&ts.labels),
                    samples,
                ));
            }
        }
        Ok(Some(series))
    }

    async fn get_json(&self, path: &str, query: &[(&str, String)]) -> tsdb::Result<Value> {
        let url = format!("{}{path}", self.api_base);
        let error = |e: &dyn std::fmt::Display| remote_error(&url, e);
        let response = self
            .client
            .get(&url)
            .headers(self.request_headers()?)
            .query(query)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| error(&e))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| error(&e))?;
        if !status.is_success() || body["status"] != "success" {
            return Err(error(&format!("HTTP {status}: {}", body["error"])));
        }
        Ok(body["data"].clone())
    }

    /// The raw samples through the query API: `{matchers}[range]` at `end`.
    async fn query_range_selector(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> tsdb::Result<Vec<Series>> {
        let window_ms = end - start + 1;
        if window_ms <= 0 {
            return Ok(Vec::new());
        }
        let query = format!("{}[{window_ms}ms]", selector(matchers));
        let data = self
            .get_json(
                "/api/v1/query",
                &[("query", query), ("time", format_seconds(end))],
            )
            .await?;
        let nan_is_stale = self.nan_is_stale.load(Ordering::Relaxed);
        let mut series = Vec::new();
        for row in data["result"].as_array().into_iter().flatten() {
            let labels = labels_from_json(&row["metric"]);
            let samples = row["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|point| {
                    let t = (point[0].as_f64()? * 1000.0).round() as i64;
                    let mut v = point[1].as_str()?.parse::<f64>().ok()?;
                    if nan_is_stale && v.is_nan() {
                        v = STALE_NAN;
                    }
                    Some(Sample::new(t, v))
                })
                .filter(|s| (start..=end).contains(&s.t))
                .collect();
            series.push(Series::from_samples(labels, samples));
        }
        Ok(series)
    }

    async fn select_async(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        hints: &SelectHints,
    ) -> tsdb::Result<SeriesSet> {
        let mut series = None;
        if !self.uses_query_api() {
            series = self.remote_read(matchers, start, end, hints).await?;
            if series.is_none() {
                tracing::info!(url = %self.read_url, "The remote server has no remote read; using its query API.");
                self.no_remote_read.store(true, Ordering::Relaxed);
            }
        }
        let mut series = match series {
            Some(series) => series,
            None => self.query_range_selector(matchers, start, end).await?,
        };
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(SeriesSet {
            series,
            warnings: Vec::new(),
        })
    }

    async fn label_list(
        &self,
        path: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> tsdb::Result<Vec<String>> {
        let mut query = vec![
            ("start", format_seconds(range.start)),
            ("end", format_seconds(range.end)),
        ];
        if !matchers.is_empty() {
            query.push(("match[]", selector(matchers)));
        }
        let data = self.get_json(path, &query).await?;
        let mut names: Vec<String> = data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Milliseconds as the API's decimal seconds.
fn format_seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    format!("{sign}{}.{:03}", ms / 1000, ms % 1000)
}

/// `{name="value",...}` with values escaped as PromQL strings.
fn selector(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers
        .iter()
        .map(|m| {
            let mut value = String::new();
            for c in m.value().chars() {
                match c {
                    '\\' => value.push_str("\\\\"),
                    '"' => value.push_str("\\\""),
                    '\n' => value.push_str("\\n"),
                    c => value.push(c),
                }
            }
            format!("{}{}\"{value}\"", m.name(), m.op())
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn labels_from_json(metric: &Value) -> Labels {
    let labels = metric
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some(Label::new(name.as_str(), value.as_str()?)))
        .collect();
    Labels::new(labels)
}

impl Queryable for RemoteStorage {
    fn querier(&self, range: TimeRange) -> tsdb::Result<Box<dyn Querier + '_>> {
        Ok(Box::new(RemoteQuerier {
            storage: self,
            range,
        }))
    }
}

/// A [`Querier`] over [`RemoteStorage`] for one time range.
struct RemoteQuerier<'a> {
    storage: &'a RemoteStorage,
    range: TimeRange,
}

impl Querier for RemoteQuerier<'_> {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> tsdb::Result<SeriesSet> {
        let start = hints.start.max(self.range.start);
        let end = hints.end.min(self.range.end);
        if start > end {
            return Ok(SeriesSet::default());
        }
        self.storage
            .runtime
            .block_on(self.storage.select_async(matchers, start, end, hints))
    }

    fn label_names(&self, matchers: &[Matcher]) -> tsdb::Result<Vec<String>> {
        self.storage.runtime.block_on(self.storage.label_list(
            "/api/v1/labels",
            matchers,
            self.range,
        ))
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> tsdb::Result<Vec<String>> {
        let path = format!("/api/v1/label/{name}/values");
        self.storage
            .runtime
            .block_on(self.storage.label_list(&path, matchers, self.range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsdb::model::MatchOp;

    #[test]
    fn selectors_are_valid_promql() {
        let matchers = [
            Matcher::equal("__name__", "up"),
            Matcher::new(MatchOp::RegexMatch, "job", "a\\.b|\"c\"").unwrap(),
            Matcher::new(MatchOp::NotEqual, "x", "line\nbreak").unwrap(),
        ];
        assert_eq!(
            selector(&matchers),
            r#"{__name__="up",job=~"a\\.b|\"c\"",x!="line\nbreak"}"#
        );
    }

    #[test]
    fn seconds_keep_milliseconds() {
        assert_eq!(format_seconds(1_700_000_000_123), "1700000000.123");
        assert_eq!(format_seconds(5), "0.005");
        assert_eq!(format_seconds(-1500), "-1.500");
    }
}
