//! The TSDB admin endpoints (`/api/v1/admin/tsdb/...`), served only with
//! `--web.enable-admin-api` (otherwise `unavailable`: "admin APIs disabled",
//! as Prometheus answers) and behind the web config's authentication.
//!
//! - `POST|PUT /api/v1/admin/tsdb/snapshot[?skip_head=true]`: a snapshot in
//!   `<storage path>/snapshots/<name>` (hard links to the blocks, plus the
//!   head written as a block unless `skip_head`); answers
//!   `{"name":"20060102T150405Z-<16 hex digits>"}`. The snapshot directory
//!   opens as a data directory of its own (`sextant serve --storage.path`).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::post;
use tsdb::db::Db;

use super::error::ApiError;
use super::json::{Envelope, write_str};

/// What the admin endpoints act on.
pub struct Admin {
    /// `None`: the admin APIs are disabled.
    pub db: Option<Arc<Db>>,
}

/// The admin routes.
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/api/v1/admin/tsdb/snapshot", post(snapshot).put(snapshot))
        .with_state(admin)
}

async fn snapshot(
    State(admin): State<Arc<Admin>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let Some(db) = admin.db.clone() else {
        return Err(ApiError::Disabled("admin APIs disabled".into()));
    };
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
            Ok(Envelope::success(&data, &[], &[]).into_response(axum::http::StatusCode::OK))
        }
        Err(error) => Err(ApiError::Internal(format!("create snapshot: {error}"))),
    }
}
