//! HTTPS for the metrics APIs: the aggregator only talks TLS to APIService
//! backends. The certificate is the configured PEM pair, or a self-signed one
//! made at start (for APIServices with `insecureSkipTLSVerify: true`).
//! Connections are served by hyper (HTTP/2 via ALPN, or HTTP/1.1).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::Error;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's TLS settings from PEM files, or self-signed for `hosts`
/// when no files are given.
///
/// # Errors
/// A file cannot be read or holds no certificate or key; the key does not fit
/// the certificate.
pub fn server_config(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    hosts: &[String],
) -> Result<ServerConfig, Error> {
    let (certs, key) = match (cert_file, key_file) {
        (Some(cert), Some(key)) => load_pem(cert, key)?,
        _ => self_signed(hosts)?,
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::Tls(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn load_pem(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Tls(format!("reading {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{} holds no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Tls(format!("reading {}: {e}", key.display())))?;
    Ok((certs, key))
}

/// A fresh self-signed certificate for `hosts` (DNS names or IP addresses).
fn self_signed(
    hosts: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let certified = rcgen::generate_simple_self_signed(hosts.to_vec())
        .map_err(|e| Error::Tls(format!("generating a self-signed certificate: {e}")))?;
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    Ok((
        vec![certified.cert.der().clone()],
        PrivateKeyDer::Pkcs8(key),
    ))
}

/// The names a self-signed certificate is made for: the in-cluster Service
/// names a deployment uses, plus loopback.
pub fn default_hosts() -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let (Ok(service), Ok(namespace)) = (
        std::env::var("SEXTANT_SERVICE_NAME"),
        std::env::var("SEXTANT_NAMESPACE"),
    ) {
        hosts.push(format!("{service}.{namespace}.svc"));
        hosts.push(format!("{service}.{namespace}.svc.cluster.local"));
    }
    hosts
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then
/// lets open connections finish for a few seconds.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "Metrics API: accepting a connection failed.");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "Metrics API: TLS handshake failed.");
                    return;
                }
                Err(_) => return,
            };
            // hyper's header read timeout (HTTP/1) and keep-alive pings (HTTP/2)
            // need a timer.
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new());
            builder.http2().timer(TokioTimer::new());
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "Metrics API: connection ended with an error.");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed listener answers HTTPS requests; a client trusting the
    /// certificate verifies it for 127.0.0.1.
    #[tokio::test]
    async fn serves_https_with_a_self_signed_certificate() {
        let config = server_config(None, None, &default_hosts()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, config, router, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        for _ in 0..2 {
            let body = client
                .get(format!("https://{addr}/healthz"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(body, "ok");
        }
        let plain = reqwest::get(format!("http://{addr}/healthz")).await;
        assert!(plain.is_err() || !plain.unwrap().status().is_success());
        stop.send(()).unwrap();
        server.await.unwrap();
    }

    #[test]
    fn loads_pem_files_and_rejects_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let one = rcgen::generate_simple_self_signed(vec!["a.example".to_string()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["b.example".to_string()]).unwrap();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        let other_key = dir.path().join("other.key");
        std::fs::write(&cert, one.cert.pem()).unwrap();
        std::fs::write(&key, one.signing_key.serialize_pem()).unwrap();
        std::fs::write(&other_key, two.signing_key.serialize_pem()).unwrap();
        assert!(server_config(Some(&cert), Some(&key), &[]).is_ok());
        let mismatch = server_config(Some(&cert), Some(&other_key), &[]).unwrap_err();
        assert!(
            mismatch.to_string().contains("certificate and key"),
            "{mismatch}"
        );
        let missing = server_config(Some(&dir.path().join("nope")), Some(&key), &[]).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
        std::fs::write(&cert, "not pem").unwrap();
        assert!(server_config(Some(&cert), Some(&key), &[]).is_err());
    }
}
