//! The Prometheus HTTP API v1 (`/api/v1/*`), with Prometheus's JSON shapes,
//! number formatting and error envelope. The wire format is documented in
//! `docs/format/http-api.md` and pinned by the golden responses of
//! `tests/http_api.rs`.
//!
//! Handlers parse parameters ([`params`]), run storage and query work on
//! tokio's blocking pool (the storage and the engine are synchronous), and
//! answer with an [`json::Envelope`]; every failure is an [`ApiError`].

pub mod admin;
pub mod error;
pub mod federate;
pub mod json;
pub mod params;
pub mod position;
mod query;
pub mod recommendation_chart;
pub mod recommendations;
pub mod remote;
mod render;
mod rules;
mod series;
pub mod status;
mod targets;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use tower_http::cors::CorsLayer;
use tsdb::clock::Clock;
use tsdb::storage::Queryable;

use crate::backend::LocalBackend;

pub use error::{ApiError, ErrorType};
use json::Envelope;
pub use rules::RulesSource;
pub use status::{HeadStatus, ServerInfo};
pub use targets::{ActiveTarget, DroppedTarget, Health, MetricMetadata, TargetsSnapshot};

/// Snapshots the API reads from the running components, each taken when a
/// request asks for it.
pub struct Sources {
    /// The head's figures, for `status/tsdb`.
    pub head_status: Box<dyn Fn() -> HeadStatus + Send + Sync>,
    /// Every scrape pool's targets, for `targets`.
    pub targets: Box<dyn Fn() -> TargetsSnapshot + Send + Sync>,
    /// `(metric family, metadata)` pairs seen in scrapes, for `metadata`.
    pub metadata: Box<dyn Fn() -> Vec<(String, MetricMetadata)> + Send + Sync>,
}

/// What the handlers share.
pub struct Api {
    /// Runs queries; also holds the storage the metadata endpoints read.
    pub backend: Arc<LocalBackend>,
    pub info: Arc<ServerInfo>,
    pub clock: Arc<dyn Clock>,
    sources: Sources,
    /// The rule groups' status, for `rules` and `alerts` (none by default).
    rules: RulesSource,
    /// The recommender's latest report (empty until a recommender is attached).
    recommendations: recommendations::Latest,
}

impl Api {
    pub fn new(
        backend: Arc<LocalBackend>,
        info: Arc<ServerInfo>,
        clock: Arc<dyn Clock>,
        sources: Sources,
    ) -> Self {
        Api {
            backend,
            info,
            clock,
            sources,
            rules: Box::new(Vec::new),
            recommendations: Arc::default(),
        }
    }

    /// Serves `rules` and `alerts` from the rules manager's snapshots.
    #[must_use]
    pub fn with_rules(mut self, rules: RulesSource) -> Self {
        self.rules = rules;
        self
    }

    /// Serves the recommender's reports on `/api/v1/recommendations`.
    #[must_use]
    pub fn with_recommendations(mut self, latest: recommendations::Latest) -> Self {
        self.recommendations = latest;
        self
    }

    /// Every scrape pool's targets now (for the web UI).
    pub fn targets_snapshot(&self) -> TargetsSnapshot {
        (self.sources.targets)()
    }

    /// The head's figures now (for the web UI).
    pub fn head_status(&self) -> HeadStatus {
        (self.sources.head_status)()
    }

    /// The rule groups' latest status (for the web UI).
    pub fn rule_groups(&self) -> Vec<Arc<crate::rules::group::GroupStatus>> {
        (self.rules)()
    }

    /// The recommender's latest report, if any (for the web UI).
    pub fn latest_recommendations(&self) -> Option<Arc<autoscaler::recommender::Report>> {
        self.recommendations.read().clone()
    }

    fn storage(&self) -> Arc<dyn Queryable> {
        Arc::clone(self.backend.storage())
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
        .route("/api/v1/query", get(query::query).post(query::query))
        .route(
            "/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
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
        .route("/api/v1/metadata", get(targets::metadata))
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/render", get(render::render).post(render::render))
        .route(
            "/api/v1/recommendations",
            get(recommendations::recommendations),
        )
        .route(
            "/api/v1/recommendations/chart",
            get(recommendation_chart::chart),
        )
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
        .with_state(api)
        .layer(cors())
}

/// The routes under `/api/v1` of an agent (`serve --agent`): targets and
/// status; every other endpoint answers that an agent has no local data,
/// with Prometheus Agent's error type (`execution`, 422).
pub fn agent_router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route(
            "/api/v1/{*rest}",
            axum::routing::any(unavailable_in_agent_mode),
        )
        .with_state(api)
        .layer(cors())
}

async fn unavailable_in_agent_mode() -> ApiError {
    ApiError::Unsupported("unavailable with Sextant Agent".into())
}

/// CORS as Prometheus answers it with its default `--web.cors.origin=.*`,
/// so browser tools can call the API directly.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::ACCEPT,
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ORIGIN,
        ])
        .expose_headers([header::DATE])
}

async fn not_found() -> ApiError {
    ApiError::NotFound("unknown API endpoint".into())
}

fn ok(envelope: Envelope) -> Response {
    envelope.into_response(StatusCode::OK)
}
