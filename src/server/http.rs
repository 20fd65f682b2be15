//! The HTTP surface: the API v1 routes, `/metrics`, the lifecycle endpoints
//! (`/-/healthy`, `/-/ready`, and with `--web.enable-lifecycle` `/-/reload`
//! and `/-/quit`), the web UI ([`crate::ui`]) and the request metrics around
//! all of them, served through the web front door ([`crate::web`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot};
use tower_http::compression::CompressionLayer;

use crate::api::{self, Api};
use crate::metrics::{self, Counter, DURATION_BUCKETS, Family, Histogram, Registry};
use crate::web::{self, ConnectionLimits, Transport, WebConfigSource, WebFront};

/// A request to re-read the configuration; the answer is the reload's
/// outcome (the error text on failure).
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the non-API routes share.
pub struct Lifecycle {
    pub registry: Arc<Registry>,
    ready: AtomicBool,
    reloads: mpsc::Sender<ReloadRequest>,
    /// Whether `/-/reload` and `/-/quit` are served (`--web.enable-lifecycle`).
    enabled: bool,
    quit: Notify,
}

impl Lifecycle {
    /// `reloads` receives one request per `POST /-/reload`; `enabled` turns
    /// `/-/reload` and `/-/quit` on.
    pub fn new(
        registry: Arc<Registry>,
        reloads: mpsc::Sender<ReloadRequest>,
        enabled: bool,
    ) -> Self {
        Lifecycle {
            registry,
            ready: AtomicBool::new(false),
            reloads,
            enabled,
            quit: Notify::new(),
        }
    }

    /// Resolves when `/-/quit` was requested.
    pub async fn quit_requested(&self) {
        self.quit.notified().await;
    }

    /// Marks the server ready (storage open, components started) or not
    /// (shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

/// Every route of the server, with request counting and timing.
pub fn router(api: Arc<Api>, lifecycle: Arc<Lifecycle>) -> Router {
    let routes = crate::ui::router(Arc::clone(&api)).merge(api::router(api));
    with_api_routes(routes, lifecycle)
}

/// `/metrics` and the lifecycle endpoints beside `api_routes`, with
/// request counting and timing.
pub fn with_api_routes(api_routes: Router, lifecycle: Arc<Lifecycle>) -> Router {
    let request_metrics = Arc::new(RequestMetrics::register(&lifecycle.registry));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/-/reload", post(reload).put(reload))
        .route("/-/quit", post(quit).put(quit))
        .with_state(lifecycle)
        .merge(api_routes)
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn_with_state(request_metrics, measure))
}

/// How the HTTP listener serves: behind the web config's guard, over its
/// TLS, within the connection limits.
pub struct WebServing {
    front: Arc<WebFront>,
    transport: Transport,
    limits: ConnectionLimits,
    metrics: web::serve::ConnectionMetrics,
}

impl WebServing {
    /// Serving with the loaded web config `source`.
    pub fn new(source: WebConfigSource, limits: ConnectionLimits, registry: &Registry) -> Self {
        let source = Arc::new(source);
        WebServing {
            transport: Transport::for_web_config(&source),
            front: Arc::new(WebFront::new(source, registry)),
            limits,
            metrics: web::serve::ConnectionMetrics::register(registry),
        }
    }

    /// Plain HTTP without authentication, default limits (embedding, tests).
    pub fn plain(registry: &Registry) -> Self {
        WebServing::new(
            WebConfigSource::none(),
            ConnectionLimits::default(),
            registry,
        )
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        match self.transport {
            Transport::Plain => "http",
            _ => "https",
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// the requests in flight.
///
/// # Errors
/// As [`web::serve`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    serving: WebServing,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router.layer(middleware::from_fn_with_state(
        Arc::clone(&serving.front),
        web::front::guard,
    ));
    web::serve(
        listener,
        router,
        serving.transport,
        serving.limits,
        Some((serving.metrics, "web")),
        shutdown,
    )
    .await
}

async fn metrics(State(lifecycle): State<Arc<Lifecycle>>) -> Response {
    let mut response = lifecycle.registry.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::TEXT_CONTENT_TYPE),
    );
    response
}

async fn healthy() -> &'static str {
    "Sextant Server is Healthy.\n"
}

async fn ready(State(lifecycle): State<Arc<Lifecycle>>) -> Response {
    if lifecycle.ready.load(Ordering::SeqCst) {
        "Sextant Server is Ready.\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

/// Prometheus's answer when the lifecycle endpoints are off.
fn lifecycle_disabled() -> Response {
    (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n").into_response()
}

async fn quit(State(lifecycle): State<Arc<Lifecycle>>) -> Response {
    if !lifecycle.enabled {
        return lifecycle_disabled();
    }
    lifecycle.quit.notify_one();
    "Requesting termination... Goodbye!\n".into_response()
}

async fn reload(State(lifecycle): State<Arc<Lifecycle>>) -> Response {
    if !lifecycle.enabled {
        return lifecycle_disabled();
    }
    let (reply, outcome) = oneshot::channel();
    if lifecycle.reloads.send(reply).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "failed to reload config: the server is shutting down\n",
        )
            .into_response();
    }
    match outcome.await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(error)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {error}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "failed to reload config: the server is shutting down\n",
        )
            .into_response(),
    }
}

struct RequestMetrics {
    requests: Arc<Family<Counter>>,
    durations: Arc<Family<Histogram>>,
}

impl RequestMetrics {
    fn register(registry: &Registry) -> Self {
        RequestMetrics {
            requests: registry.counter(
                "sextant_http_requests_total",
                "HTTP requests by handler and status code.",
                &["handler", "code"],
            ),
            durations: registry.histogram(
                "sextant_http_request_duration_seconds",
                "Time to answer HTTP requests, by handler.",
                &["handler"],
                DURATION_BUCKETS,
            ),
        }
    }
}

async fn measure(
    State(request_metrics): State<Arc<RequestMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    // The route pattern, not the path, keeps the label's values bounded.
    let handler = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.status().as_u16().to_string();
    request_metrics.requests.with(&[&handler, &code]).inc();
    request_metrics
        .durations
        .with(&[&handler])
        .observe(started.elapsed().as_secs_f64());
    response
}
