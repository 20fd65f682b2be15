//! The TSDB admin endpoints (`/api/v1/admin/tsdb/...`), served only with
//! `--web.enable-admin-api` (otherwise `unavailable`: "admin APIs disabled",
//! as Prometheus answers) and behind the web config's authentication.
//!
//! - `POST|PUT /api/v1/admin/tsdb/snapshot[?skip_head=true]`: a snapshot in
//!   `<storage path>/snapshots/<name>` (hard links to the blocks, plus the
//!   head written as a block unless `skip_head`); answers
//!   `{"name":"20060102T150405Z-<16 hex digits>"}`. The snapshot directory
//!   opens as a data directory of its own (`sextant serve --storage.path`).
//! - `POST|PUT /api/v1/admin/tsdb/delete_series?match[]=<selector>&start=&end=`:
//!   deletes the matching series' samples in `[start, end]` (default: all
//!   time; RFC 3339 or Unix seconds): the head drops them (logged to the WAL
//!   as tombstones), blocks get a `tombstones` file. 204 No Content; 400
//!   without `match[]` or for a bad selector or time.
//! - `POST|PUT /api/v1/admin/tsdb/clean_tombstones`: rewrites the blocks with
//!   tombstones without the deleted samples. 204 No Content.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tsdb::db::Db;

use super::error::ApiError;
use super::json::{Envelope, write_str};
use super::params::{MAX_TIME_MS, MIN_TIME_MS, Params, Required};

/// What the admin endpoints act on.
pub struct Admin {
    /// `None`: the admin APIs are disabled.
    pub db: Option<Arc<Db>>,
}

/// The admin routes.
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/api/v1/admin/tsdb/snapshot", post(snapshot).put(snapshot))
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(delete_series).put(delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(clean_tombstones).put(clean_tombstones),
        )
        .with_state(admin)
}

fn enabled_db(admin: &Admin) -> Result<Arc<Db>, ApiError> {
    admin
        .db
        .clone()
        .ok_or_else(|| ApiError::Disabled("admin APIs disabled".into()))
}

async fn delete_series(
    State(admin): State<Arc<Admin>>,
    params: Params,
) -> Result<Response, ApiError> {
    let db = enabled_db(&admin)?;
    let start = params.time("start", MIN_TIME_MS)?;
    let end = params.time("end", MAX_TIME_MS)?;
    let matcher_sets = params.matcher_sets(Required::Yes)?;
    let selectors = params.get_all("match[]").join(", ");
    let deleted = tokio::task::spawn_blocking(move || {
        let mut affected = 0;
        for matchers in &matcher_sets {
            affected += db.delete(matchers, start, end)?;
        }
        Ok::<_, tsdb::Error>(affected)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("delete series: {e}")))?;
    match deleted {
        Ok(series) => {
            tracing::info!(selectors, start, end, series, "Deleted series");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(error) => Err(ApiError::Internal(format!("delete series: {error}"))),
    }
}

async fn clean_tombstones(State(admin): State<Arc<Admin>>) -> Result<Response, ApiError> {
    let db = enabled_db(&admin)?;
    let cleaned = tokio::task::spawn_blocking(move || db.clean_tombstones())
        .await
        .map_err(|e| ApiError::Internal(format!("clean tombstones: {e}")))?;
    match cleaned {
        Ok(blocks) => {
            tracing::info!(blocks = blocks.len(), "Cleaned tombstones");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(error) => Err(ApiError::Internal(format!("clean tombstones: {error}"))),
    }
}

async fn snapshot(
    State(admin): State<Arc<Admin>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let db = enabled_db(&admin)?;
    let skip_head = match params.get("skip_head").map(String::as_str) {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "skip_head",
                format!("cannot parse {other:?} as a boolean"),
            ));
        }
    };
    let now = chrono::Utc::now();
    // RandomState is seeded randomly per process and instance: a unique
    // suffix without a random number crate.
    let suffix = RandomState::new().hash_one(now.timestamp_nanos_opt());
    let name = format!("{}-{suffix:016x}", now.format("%Y%m%dT%H%M%SZ"));
    let dir = db.dir().join("snapshots").join(&name);
    let written = tokio::task::spawn_blocking(move || db.snapshot(&dir, !skip_head).map(|()| dir))
        .await
        .map_err(|e| ApiError::Internal(format!("snapshot: {e}")))?;
    match written {
        Ok(dir) => {
            tracing::info!(snapshot = %dir.display(), skip_head, "Wrote a TSDB snapshot.");
            let mut data = String::from(r#"{"name":"#);
            write_str(&mut data, &name);
            data.push('}');
            Ok(Envelope::success(&data, &[], &[]).into_response(StatusCode::OK))
        }
        Err(error) => Err(ApiError::Internal(format!("create snapshot: {error}"))),
    }
}
