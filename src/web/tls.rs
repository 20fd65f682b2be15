//! rustls server settings from a `tls_server_config` (certificate and key from
//! files or inline PEM, client certificate policies, allowed SANs, TLS
//! versions, cipher suites and curves), or from a PEM pair / a self-signed
//! certificate (the metrics APIs).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use super::Error;
use super::config::{ClientAuthType, TlsServerConfig, TlsVersion};

/// The server's TLS settings for a web config's `tls_server_config`.
///
/// # Errors
/// Unreadable or mismatched certificate and key, a client CA without
/// certificates, a cipher suite or curve the TLS library does not offer.
pub fn from_web_config(tls: &TlsServerConfig, http2: bool) -> Result<ServerConfig, Error> {
    let certs = match (&tls.cert, &tls.cert_file) {
        (Some(pem), _) => certs_from_pem(pem.as_bytes(), "cert")?,
        (None, Some(file)) => certs_from_file(file)?,
        (None, None) => return Err(Error::Tls("missing cert_file".into())),
    };
    let key = match (&tls.key, &tls.key_file) {
        (Some(pem), _) => PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| Error::Tls(format!("key: {e}")))?,
        (None, Some(file)) => key_from_file(file)?,
        (None, None) => return Err(Error::Tls("missing key_file".into())),
    };
    let provider = Arc::new(provider(tls)?);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::TLS12, &rustls::version::TLS12),
        (TlsVersion::TLS13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (tls.min_version.max(TlsVersion::TLS12)..=tls.max_version).contains(v))
    .map(|(_, v)| v)
    .collect();
    let verifier = client_verifier(tls, &provider)?;
    let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("certificate and key: {e}")))?;
    config.ignore_client_order = tls.prefer_server_cipher_suites;
    config.alpn_protocols = alpn(http2);
    Ok(config)
}

/// TLS from PEM files, or self-signed for `hosts` when no files are given.
/// With `request_client_certs`, clients are asked for a certificate but not
/// required to send one, and its chain is not checked here: the request's
/// authenticator checks it (as Go's `RequestClientCert`, what the Kubernetes
/// apiserver library uses), so a missing or unknown certificate gets a 401
/// rather than a failed handshake.
///
/// # Errors
/// A file cannot be read or holds no certificate or key; the key does not fit
/// the certificate.
pub fn from_pem_files(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    hosts: &[String],
    request_client_certs: bool,
) -> Result<ServerConfig, Error> {
    let (certs, key) = match (cert_file, key_file) {
        (Some(cert), Some(key)) => (certs_from_file(cert)?, key_from_file(key)?),
        _ => self_signed(hosts)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ClientCertVerifier> = if request_client_certs {
        Arc::new(AnyClientCert {
            mandatory: false,
            algorithms: provider.signature_verification_algorithms,
        })
    } else {
        WebPkiClientVerifier::no_client_auth()
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("certificate and key: {e}")))?;
    config.alpn_protocols = alpn(true);
    Ok(config)
}

fn alpn(http2: bool) -> Vec<Vec<u8>> {
    if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    }
}

fn certs_from_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let text =
        std::fs::read(path).map_err(|e| Error::Tls(format!("reading {}: {e}", path.display())))?;
    certs_from_pem(&text, &path.display().to_string())
}

fn certs_from_pem(pem: &[u8], name: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("reading {name}: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{name} holds no certificate")));
    }
    Ok(certs)
}

fn key_from_file(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| Error::Tls(format!("reading {}: {e}", path.display())))
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

/// ring with the configured TLS 1.2 cipher suites and curves (TLS 1.3
/// suites are not configurable, as in Go).
fn provider(tls: &TlsServerConfig) -> Result<CryptoProvider, Error> {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    let mut provider = rustls::crypto::ring::default_provider();
    if !tls.cipher_suites.is_empty() {
        let tls12 = [
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ];
        let tls13_names = [
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
        ];
        let mut suites: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        for name in &tls.cipher_suites {
            // Go also accepts the CHACHA20 names without `_SHA256`.
            let full = if name.ends_with("CHACHA20_POLY1305") {
                format!("{name}_SHA256")
            } else {
                name.clone()
            };
            if let Some(suite) = tls12.iter().find(|s| format!("{:?}", s.suite()) == full) {
                suites.push(*suite);
            } else if !tls13_names.contains(&name.as_str()) {
                return Err(Error::Tls(format!(
                    "cipher suite {name} is not supported (supported: the ECDHE AES-GCM and CHACHA20-POLY1305 suites)"
                )));
            }
        }
        provider.cipher_suites = suites;
    }
    if !tls.curve_preferences.is_empty() {
        let mut groups = Vec::new();
        for name in &tls.curve_preferences {
            groups.push(match name.as_str() {
                "X25519" => kx_group::X25519,
                "CurveP256" => kx_group::SECP256R1,
                "CurveP384" => kx_group::SECP384R1,
                other => {
                    return Err(Error::Tls(format!(
                        "curve {other} is not supported (supported: X25519, CurveP256, CurveP384)"
                    )));
                }
            });
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

fn client_verifier(
    tls: &TlsServerConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let roots = || -> Result<Arc<RootCertStore>, Error> {
        let certs = match (&tls.client_ca, &tls.client_ca_file) {
            (Some(pem), _) => certs_from_pem(pem.as_bytes(), "client_ca")?,
            (None, Some(file)) => certs_from_file(file)?,
            (None, None) => return Err(Error::Tls("missing client_ca_file".into())),
        };
        let mut store = RootCertStore::empty();
        for cert in certs {
            store
                .add(cert)
                .map_err(|e| Error::Tls(format!("client CA: {e}")))?;
        }
        Ok(Arc::new(store))
    };
    let webpki = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, Error> {
        let builder = WebPkiClientVerifier::builder_with_provider(roots()?, Arc::clone(provider));
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|e| Error::Tls(format!("client CA: {e}")))
    };
    let verifier: Arc<dyn ClientCertVerifier> = match tls.client_auth_type {
        ClientAuthType::NoClientCert => return Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuthType::RequestClientCert => Arc::new(AnyClientCert {
            mandatory: false,
            algorithms: provider.signature_verification_algorithms,
        }),
        ClientAuthType::RequireAnyClientCert => Arc::new(AnyClientCert {
            mandatory: true,
            algorithms: provider.signature_verification_algorithms,
        }),
        ClientAuthType::VerifyClientCertIfGiven => webpki(true)?,
        ClientAuthType::RequireAndVerifyClientCert => webpki(false)?,
    };
    if tls.client_allowed_sans.is_empty() {
        return Ok(verifier);
    }
    Ok(Arc::new(AllowedSans {
        inner: verifier,
        allowed: tls.client_allowed_sans.clone(),
    }))
}

/// Go's `RequestClientCert` / `RequireAnyClientCert`: a certificate is asked
/// for (or required) but not checked against a CA; its handshake signature
/// still has to be valid.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: the client certificate must carry one of the
/// listed names as a DNS or IP subject alternative name, else the handshake
/// fails.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl AllowedSans {
    fn matches(&self, end_entity: &CertificateDer<'_>) -> bool {
        let Ok(cert) = webpki::EndEntityCert::try_from(end_entity) else {
            return false;
        };
        self.allowed.iter().any(|name| {
            if let Ok(ip) = name.parse::<IpAddr>() {
                cert.verify_is_valid_for_subject_name(&ServerName::IpAddress(ip.into()))
                    .is_ok()
            } else {
                cert.valid_dns_names().any(|dns| dns == name)
            }
        })
    }
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.matches(end_entity) {
            Ok(verified)
        } else {
            Err(rustls::Error::General(
                "client certificate has no allowed subject alternative name".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use tokio::net::TcpListener;

    /// A self-signed listener answers HTTPS requests; a client trusting the
    /// certificate verifies it for 127.0.0.1.
    #[tokio::test]
    async fn serves_https_with_a_self_signed_certificate() {
        let config =
            from_pem_files(None, None, &crate::metrics_api::tls::default_hosts(), false).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::web::serve(
            listener,
            router,
            crate::web::Transport::Tls(Arc::new(config)),
            crate::web::ConnectionLimits::default(),
            None,
            async move {
                let _ = stopped.await;
            },
        ));
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
        server.await.unwrap().unwrap();
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
        assert!(from_pem_files(Some(&cert), Some(&key), &[], false).is_ok());
        let mismatch = from_pem_files(Some(&cert), Some(&other_key), &[], false).unwrap_err();
        assert!(
            mismatch.to_string().contains("certificate and key"),
            "{mismatch}"
        );
        let missing =
            from_pem_files(Some(&dir.path().join("nope")), Some(&key), &[], false).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
        std::fs::write(&cert, "not pem").unwrap();
        assert!(from_pem_files(Some(&cert), Some(&key), &[], false).is_err());
    }
}
