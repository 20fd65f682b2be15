//! The Prometheus HTTP API v1 (`/api/v1/*`), with Prometheus's JSON shapes,
//! number formatting and error envelope. The wire format is documented in
//! `docs/format/http-api.md` and pinned by the golden responses of
//! `tests/http_api.rs`.
//!
//! Handlers parse parameters ([`params`]), run storage and query work on
//! tokio's blocking pool (the storage and the engine are synchronous), and
//! answer with an [`json::Envelope`]; every failure is an [`ApiError`].

pub mod error;
pub mod json;
pub mod params;
mod position;
mod query;
mod series;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use tsdb::clock::Clock;
use tsdb::storage::Queryable;

pub use error::{ApiError, ErrorType};
use json::Envelope;
pub use status::ServerInfo;

/// Knobs of the API, with Prometheus's defaults in [`ApiOptions::default`].
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The longest a query may run (`--query.timeout`, 2 m); a `timeout`
    /// parameter can only shorten it.
    pub query_timeout: Duration,
    /// Queries evaluated at once (`--query.max-concurrency`, 20); the rest
    /// wait for a slot.
    pub max_concurrent_queries: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            query_timeout: Duration::from_secs(120),
            max_concurrent_queries: 20,
        }
    }
}

/// What the handlers share.
pub struct Api {
    pub storage: Arc<dyn Queryable>,
    pub info: Arc<ServerInfo>,
    pub clock: Arc<dyn Clock>,
    pub options: ApiOptions,
}

impl Api {
    pub fn new(
        storage: Arc<dyn Queryable>,
        info: Arc<ServerInfo>,
        clock: Arc<dyn Clock>,
        options: ApiOptions,
    ) -> Self {
        Api {
            storage,
            info,
            clock,
            options,
        }
    }

    /// Runs synchronous storage work on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(format!("storage task failed: {e}")))
    }
}

/// The routes under `/api/v1`.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/v1/series", get(series::series).post(series::series))
        .route("/api/v1/labels", get(series::labels).post(series::labels))
        .route("/api/v1/label/{name}/values", get(series::label_values))
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query::query_exemplars).post(query::query_exemplars),
        )
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
        .with_state(api)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("unknown API endpoint".into())
}

fn ok(envelope: Envelope) -> Response {
    envelope.into_response(StatusCode::OK)
}
