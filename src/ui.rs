//! The built-in web UI: server-rendered HTML pages with a little JavaScript
//! and no front-end build step. The stylesheet and script are embedded in the
//! binary (`src/ui/assets/`).
//!
//! - `/` redirects to `/graph`, the expression browser ([`graph`]).
//! - `/targets` ([`targets`]), `/rules` ([`rules`], `/alerts` redirects
//!   there), `/recommendations` ([`recommendations`]), `/status` ([`status`]).
//!
//! Pages read the same snapshots as the HTTP API (through [`Api`]) and draw
//! charts with `/api/v1/render` and `/api/v1/recommendations/chart`. Every
//! value from outside (labels, queries, errors, annotations, configuration)
//! is escaped by [`html::escape`]. `tests/web_ui.rs` opens every page in a
//! real headless Chromium.

pub mod graph;
pub mod html;
pub mod recommendations;
pub mod rules;
pub mod status;
pub mod targets;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::api::Api;

const STYLE: &str = include_str!("ui/assets/style.css");
const SCRIPT: &str = include_str!("ui/assets/app.js");

/// The UI's routes.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/graph") }))
        .route("/graph", get(graph::page))
        .route("/targets", get(targets::page))
        .route("/rules", get(rules::page))
        .route("/alerts", get(|| async { Redirect::to("/rules") }))
        .route("/recommendations", get(recommendations::page))
        .route("/status", get(status::page))
        .route(
            "/ui/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .with_state(api)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}
