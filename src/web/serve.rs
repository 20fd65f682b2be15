//! The connection loop of every listener: at most `max_connections` open
//! (further clients wait in the kernel's backlog, as Go's LimitListener
//! makes them), TLS from a fixed config or the web config in force, request
//! headers bounded in size and time (no slow-loris), request bodies bounded
//! in time, responses cut when the client stops reading them
//! ([`ConnectionLimits::write_timeout`]), HTTP/1.1 and HTTP/2, and a graceful
//! drain at shutdown. Over TLS, each request carries the client's
//! certificate chain as a [`PeerCertificates`] extension.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// Time a write to the client may wait without any progress before the
    /// connection is closed (`--web.write-timeout`): a client that stops
    /// reading a response holds its connection and buffers no longer. Unlike
    /// Go's `WriteTimeout` it bounds stalls, not the whole response, so it does
    /// not need to cover the query's own time; its default is still the
    /// default query timeout plus a margin.
    pub write_timeout: Duration,
}

/// The `--web.write-timeout` default: `--query.timeout`'s (2m) plus 30 s.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(150);

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 1 << 20,
            read_timeout: Duration::from_secs(300),
            write_timeout: DEFAULT_WRITE_TIMEOUT,
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
                "Connections closed on an error, by listener and reason (tls_handshake, header_timeout, header_too_large, write_timeout, other).",
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
    let stalled = Arc::new(AtomicBool::new(false));
    let stream = WriteTimeout::new(stream, limits.write_timeout, Arc::clone(&stalled));
    let result = match tls {
        None => {
            let service = TowerToHyperService::new(service);
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
            let certificates = PeerCertificates(Arc::new(
                stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default(),
            ));
            let service = TowerToHyperService::new(service.map_request(
                move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(certificates.clone());
                    request
                },
            ));
            watcher
                .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service))
                .await
        }
    };
    if stalled.load(Ordering::Relaxed) {
        tracing::debug!(%peer, "Closed a connection whose client stopped reading.");
        return Err("write_timeout");
    }
    match result {
        Ok(()) => Ok(()),
        Err(error) => {
            tracing::debug!(%peer, %error, "Connection ended with an error.");
            Err(classify(error.as_ref()))
        }
    }
}

/// The client's certificate chain on a TLS connection (end entity first;
/// empty when it sent none), in every request's extensions.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// A connection whose writes fail with `TimedOut` once one has waited
/// `timeout` without progress (the client does not read); `stalled` records
/// that it happened. Reads pass through.
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Running while a write is pending; reset by any progress.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    stalled: Arc<AtomicBool>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: Duration, stalled: Arc<AtomicBool>) -> Self {
        WriteTimeout {
            inner,
            timeout,
            deadline: None,
            stalled,
        }
    }

    /// Passes a ready outcome through (and forgets the deadline); on
    /// `Pending`, fails once the deadline has passed.
    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.deadline = None;
            return poll;
        }
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            self.deadline = None;
            self.stalled.store(true, Ordering::Relaxed);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "write timeout: the client stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, poll)
    }
}

fn classify(error: &(dyn std::error::Error + 'static)) -> &'static str {
    match error.downcast_ref::<hyper::Error>() {
        Some(e) if e.is_timeout() => "header_timeout",
        Some(e) if e.is_parse_too_large() => "header_too_large",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client asks for a 32 MiB response and never reads it: once the socket
    /// buffers are full the server's writes stall, and `write_timeout` later the
    /// connection is closed and counted; reading then gets what the buffers held
    /// and the end of the stream, not the whole body.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_is_cut_off() {
        const BODY: usize = 32 << 20;
        let registry = Registry::new();
        let metrics = ConnectionMetrics::register(&registry);
        let body = axum::body::Bytes::from(vec![b'x'; BODY]);
        let router = Router::new().route(
            "/large",
            axum::routing::get(move || {
                let body = body.clone();
                async move { body }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ConnectionLimits {
            write_timeout: Duration::from_millis(200),
            ..ConnectionLimits::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            router,
            Transport::Plain,
            limits,
            Some((metrics.clone(), "web")),
            async move {
                let _ = stopped.await;
            },
        ));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /large HTTP/1.1\r\nHost: sextant\r\n\r\n")
            .await
            .unwrap();
        // The server's timer is the only event; poll its figure, with a generous
        // limit no assertion depends on.
        let timeouts = metrics.errors.with(&["web", "write_timeout"]);
        let started = std::time::Instant::now();
        while timeouts.get() < 1.0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the stalled write never timed out"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut received = 0usize;
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            match client.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
        assert!(received > 0);
        assert!(received < BODY, "received the whole body: {received}");
        assert_eq!(timeouts.get(), 1.0);
        assert_eq!(metrics.open.with(&["web"]).get(), 0.0);

        // A client that reads gets everything.
        let response = reqwest::get(format!("http://{addr}/large")).await.unwrap();
        assert_eq!(response.bytes().await.unwrap().len(), BODY);
        assert_eq!(timeouts.get(), 1.0);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
