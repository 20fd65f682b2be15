//! HTTP discovery (`http_sd_configs`): target groups fetched as JSON from a
//! URL every `refresh_interval`.
//!
//! As in Prometheus: the response must be `200` with content type
//! `application/json`; group `i` has source `<url>:<i>` and the label
//! `__meta_url`; groups beyond the new count are reported empty; a failed
//! refresh keeps the previous targets.

use std::time::Duration;

use crate::config::HttpSdConfig;
use crate::discovery::{DiscoveryError, GroupSink, TargetGroup, TargetGroupDocument};

/// The label holding the URL a group came from.
pub const URL_LABEL: &str = "__meta_url";

/// Fetches the groups of one `http_sd_configs` entry.
#[derive(Debug)]
pub struct HttpDiscoverer {
    config: HttpSdConfig,
    client: reqwest::Client,
    n_groups: usize,
}

impl HttpDiscoverer {
    /// # Errors
    /// The HTTP client cannot be built from the config (TLS files, proxy).
    pub fn new(config: HttpSdConfig) -> Result<Self, DiscoveryError> {
        let client = config.http_client_config().build_client(true)?;
        Ok(HttpDiscoverer {
            config,
            client,
            n_groups: 0,
        })
    }

    /// Fetches the groups now: all current groups, plus empty groups for
    /// sources the previous answer had and this one lacks.
    ///
    /// # Errors
    /// The request fails, or the answer is not a JSON list of target groups.
    pub async fn refresh(&mut self) -> Result<Vec<TargetGroup>, DiscoveryError> {
        let url = self.config.url.clone();
        let headers = self.config.http_client_config().request_headers()?;
        let fetch_error = |source| DiscoveryError::Fetch {
            url: url.clone(),
            source,
        };
        let response = self
            .client
            .get(&url)
            .headers(headers)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::USER_AGENT,
                concat!("Sextant/", env!("CARGO_PKG_VERSION")),
            )
            .header(
                "X-Prometheus-Refresh-Interval-Seconds",
                self.config.refresh_interval.as_secs().to_string(),
            )
            .send()
            .await
            .map_err(fetch_error)?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(DiscoveryError::Status {
                url,
                status: status.as_u16(),
            });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !is_json_content_type(&content_type) {
            return Err(DiscoveryError::ContentType { url, content_type });
        }
        let body = response.bytes().await.map_err(fetch_error)?;
        let decode_error = |message: String| DiscoveryError::Decode {
            url: url.clone(),
            message,
        };
        let documents: Vec<Option<TargetGroupDocument>> =
            serde_json::from_slice(&body).map_err(|e| decode_error(e.to_string()))?;
        let mut groups = Vec::with_capacity(documents.len());
        for (i, document) in documents.into_iter().enumerate() {
            let document =
                document.ok_or_else(|| decode_error("nil target group item found".into()))?;
            groups.push(
                document
                    .into_group(format!("{url}:{i}"), (URL_LABEL, &url))
                    .map_err(decode_error)?,
            );
        }
        let n_groups = groups.len();
        groups.extend((n_groups..self.n_groups).map(|i| TargetGroup {
            source: format!("{url}:{i}"),
            ..TargetGroup::default()
        }));
        self.n_groups = n_groups;
        Ok(groups)
    }

    /// Refreshes now and then every `refresh_interval`, reporting groups.
    pub async fn run(config: HttpSdConfig, sink: GroupSink) {
        let refresh_interval = config.refresh_interval.max(Duration::from_millis(1));
        let mut discoverer = match HttpDiscoverer::new(config) {
            Ok(d) => d,
            Err(error) => {
                tracing::error!(error = %error, "HTTP discovery cannot start");
                return;
            }
        };
        let mut ticks = tokio::time::interval(refresh_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match discoverer.refresh().await {
                Ok(groups) => sink.update(groups),
                Err(error) => {
                    tracing::warn!(error = %error, "HTTP discovery failed; keeping the previous targets");
                }
            }
        }
    }
}

/// `application/json`, optionally with a UTF-8 charset, as Prometheus accepts.
fn is_json_content_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return false;
    }
    match parts.next() {
        None => true,
        Some(param) => {
            parts.next().is_none()
                && matches!(
                    param.trim().to_ascii_lowercase().as_str(),
                    "charset=utf-8" | "charset=\"utf-8\""
                )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_as_prometheus_accepts() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/json;charset=\"utf-8\""));
        assert!(!is_json_content_type("application/json; charset=latin1"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type(""));
    }
}
