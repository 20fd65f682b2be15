//! Fetching a target over HTTP as Prometheus does: its `Accept` header, gzip,
//! a timeout for the whole exchange and a limit on the uncompressed body.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};

use super::ScrapeError;
use crate::exposition::ACCEPT_HEADER;

/// A fetched body and its `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Uncompressed.
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

/// Something a scrape loop can fetch from; [`HttpFetcher`] in production.
pub trait Fetch: Send + Sync {
    fn fetch(&self) -> impl Future<Output = Result<Fetched, ScrapeError>> + Send;
}

/// An HTTP client as scrapes need it: rustls, gzip, no proxy from the
/// environment (Prometheus uses only configured proxies), redirects followed.
///
/// # Errors
/// When the TLS backend cannot be initialised.
pub fn default_client() -> Result<reqwest::Client, ScrapeError> {
    reqwest::Client::builder()
        .no_proxy()
        .gzip(true)
        .build()
        .map_err(|e| ScrapeError::Http(format!("building the HTTP client: {e}")))
}

/// Fetches one URL per scrape.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    timeout: Duration,
    body_size_limit: usize,
}

impl HttpFetcher {
    /// A fetcher sending Prometheus's default `Accept` header, a
    /// `User-Agent` and `X-Prometheus-Scrape-Timeout-Seconds`. A
    /// `body_size_limit` of 0 means none.
    pub fn new(
        client: reqwest::Client,
        url: reqwest::Url,
        timeout: Duration,
        body_size_limit: usize,
    ) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER));
        let agent = concat!("Sextant/", env!("CARGO_PKG_VERSION"));
        headers.insert(USER_AGENT, HeaderValue::from_static(agent));
        if let Ok(value) = HeaderValue::from_str(&timeout.as_secs_f64().to_string()) {
            headers.insert(
                HeaderName::from_static("x-prometheus-scrape-timeout-seconds"),
                value,
            );
        }
        HttpFetcher {
            client,
            url,
            headers,
            timeout,
            body_size_limit,
        }
    }

    /// Adds or replaces a request header (`Authorization`, or an `Accept`
    /// built with [`crate::exposition::accept_header`]).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    async fn fetch_unbounded(&self) -> Result<Fetched, ScrapeError> {
        let mut response = self
            .client
            .get(self.url.clone())
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| ScrapeError::Http(error_chain(&e)))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(ScrapeError::Status(status.to_string()));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ScrapeError::Http(error_chain(&e)))?
        {
            if self.body_size_limit > 0 && body.len() + chunk.len() > self.body_size_limit {
                return Err(ScrapeError::BodySizeLimit(self.body_size_limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, content_type })
    }
}

impl Fetch for HttpFetcher {
    async fn fetch(&self) -> Result<Fetched, ScrapeError> {
        tokio::time::timeout(self.timeout, self.fetch_unbounded())
            .await
            .unwrap_or(Err(ScrapeError::Timeout(self.timeout)))
    }
}

/// An error with its sources, e.g. `error sending request: connection refused`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
