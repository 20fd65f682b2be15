//! The connection loop of every listener: at most `max_connections` open
//! (further clients wait in the kernel's backlog, as Go's LimitListener
//! makes them), TLS from a fixed config or the web config in force, request
//! headers bounded in size and time (no slow-loris), request bodies bounded
//! in time, HTTP/1.1 and HTTP/2, and a graceful drain at shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

use super::WebConfigSource;
use crate::metrics::{Counter, Family, Gauge, Registry};

/// How long open connections get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits on what a client controls at the connection level.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections served at once (`--web.max-connections`).
    pub max_connections: usize,
    /// Time to receive a request's headers, and a TLS handshake
    /// (`--web.header-read-timeout`).
    pub header_read_timeout: Duration,
    /// Size of a request's headers (`--web.max-header-bytes`); HTTP/1.1
    /// answers 431 beyond it.
    pub max_header_bytes: usize,
    /// Time to receive a request's body (`--web.read-timeout`).
    pub read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 1 << 20,
            read_timeout: Duration::from_secs(300),
        }
    }
}

/// Plain HTTP or HTTPS.
#[derive(Clone)]
pub enum Transport {
    Plain,
    /// A fixed TLS config (the metrics APIs).
    Tls(Arc<ServerConfig>),
    /// The TLS config of the web config in force at each handshake.
    WebConfig(Arc<WebConfigSource>),
}

impl Transport {
    /// TLS when the web config has a certificate, else plain.
    pub fn for_web_config(source: &Arc<WebConfigSource>) -> Transport {
        if source.serves_tls() {
            Transport::WebConfig(Arc::clone(source))
        } else {
            Transport::Plain
        }
    }

    fn tls_config(&self) -> Option<Arc<ServerConfig>> {
        match self {
            Transport::Plain => None,
            Transport::Tls(config) => Some(Arc::clone(config)),
            Transport::WebConfig(source) => source.current().tls.clone(),
        }
    }
}

/// Figures of the connection loop.
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: Arc<Family<Gauge>>,
    errors: Arc<Family<Counter>>,
}

impl ConnectionMetrics {
    /// Registers the figures for the listener named `listener`.
    pub fn register(registry: &Registry) -> Self {
        ConnectionMetrics {
            open: registry.gauge(
                "sextant_http_open_connections",
                "Connections open, by listener.",
                &["listener"],
            ),
            errors: registry.counter(
                "sextant_http_connection_errors_total",
                "Connections closed on an error, by listener and reason (tls_handshake, header_timeout, header_too_large, other).",
                &["listener", "reason"],
            ),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open
/// connections finish for a few seconds. `name` labels the metrics.
///
/// # Errors
/// None today; the signature leaves room for listener errors.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    transport: Transport,
    limits: ConnectionLimits,
    metrics: Option<(ConnectionMetrics, &'static str)>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let router = router.layer(RequestBodyTimeoutLayer::new(limits.read_timeout));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly
                    // instead of spinning.
                    tracing::warn!(%error, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let tls = transport.tls_config();
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let watcher = graceful.watcher();
        let limits = limits.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let open = metrics.as_ref().map(|(m, name)| m.open.with(&[name]));
            if let Some(open) = &open {
                open.add(1.0);
            }
            let outcome = serve_connection(stream, peer, tls, service, &limits, watcher).await;
            if let Some(open) = &open {
                open.add(-1.0);
            }
            if let (Err(reason), Some((m, name))) = (outcome, &metrics) {
                m.errors.with(&[name, reason]).inc();
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    Ok(())
}

/// One connection; `Err` names why it ended badly.
async fn serve_connection<S>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    service: S,
    limits: &ConnectionLimits,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), &'static str>
where
    S: tower::Service<
            axum::http::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let service = TowerToHyperService::new(service);
    let result = match tls {
        None => {
            watcher
                .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service))
                .await
        }
        Some(config) => {
            let acceptor = TlsAcceptor::from(config);
            let stream =
                match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed.");
                        return Err("tls_handshake");
                    }
                    Err(_) => return Err("tls_handshake"),
                };
            watcher
                .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service))
                .await
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(error) => {
            tracing::debug!(%peer, %error, "Connection ended with an error.");
            Err(classify(error.as_ref()))
        }
    }
}

fn classify(error: &(dyn std::error::Error + 'static)) -> &'static str {
    match error.downcast_ref::<hyper::Error>() {
        Some(e) if e.is_timeout() => "header_timeout",
        Some(e) if e.is_parse_too_large() => "header_too_large",
        _ => "other",
    }
}
