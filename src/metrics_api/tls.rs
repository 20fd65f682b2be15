//! The metrics APIs' TLS: the certificate and who may call.
//!
//! The aggregator only talks TLS to APIService backends, so without a
//! configured PEM pair Sextant makes a self-signed one at start (for
//! APIServices with `insecureSkipTLSVerify: true`) for the names below.
//! Serving is the shared connection loop ([`crate::web::serve`]), which hands
//! each request the client's certificate chain; [`Authenticator`] checks it
//! as the Kubernetes apiserver library checks an aggregated API server's
//! callers (`metrics_api.authentication`, `docs/format/metrics-api.md`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::Error;
use super::wire::status;
use crate::config::metrics_api::MetricsApiAuthentication;
use crate::web::serve::PeerCertificates;

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

/// `metrics_api.authentication` built: who may call the APIs, as the Kubernetes
/// apiserver library authenticates an aggregated API server's callers.
///
/// - The aggregator (front proxy) presents a client certificate signed by the
///   `requestheader_client_ca_file` CA whose common name is one of
///   `requestheader_allowed_names` (empty: any); the user it acts for is the first
///   non-empty `requestheader_username_headers` header, the groups every value of
///   the `requestheader_group_headers`, extras the `requestheader_extra_headers_prefix`
///   headers.
/// - Other clients present a certificate signed by the `client_ca_file` CA: the
///   user is its common name, the groups its organizations.
///
/// Anything else is answered 401 (`/healthz`, `/livez` and `/readyz` excepted, as
/// Kubernetes always allows them, for the kubelet's probes). Authorization is
/// the next layer's ([`super::authorization`], when configured).
pub struct Authenticator {
    front_proxy: Option<FrontProxy>,
    client_ca: Option<Arc<dyn ClientCertVerifier>>,
}

struct FrontProxy {
    verifier: Arc<dyn ClientCertVerifier>,
    allowed_names: Vec<String>,
    username_headers: Vec<HeaderName>,
    group_headers: Vec<HeaderName>,
    /// Lowercase.
    extra_prefixes: Vec<String>,
}

/// Who a request comes from; in the request's extensions once authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// `X-Remote-Extra-<key>` values by key (lowercased, then `%XX` unescaped).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Paths served to everyone, as Kubernetes' `AlwaysAllowPaths`.
pub(crate) const ALWAYS_ALLOWED: [&str; 3] = ["/healthz", "/livez", "/readyz"];

fn verifier(file: &Path) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let pem =
        std::fs::read(file).map_err(|e| Error::Tls(format!("reading {}: {e}", file.display())))?;
    verifier_of_pem(&pem, &file.display().to_string())
}

/// A verifier trusting the certificates of `pem`; `what` names it in errors.
fn verifier_of_pem(pem: &[u8], what: &str) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::Tls(format!("reading {what}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::Tls(format!("{what}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Tls(format!("{what} holds no certificate")));
    }
    WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| Error::Tls(format!("{what}: {e}")))
}

/// Where kube-apiserver publishes its authentication settings for aggregated
/// API servers.
pub const AUTHENTICATION_CONFIG_MAP: (&str, &str) =
    ("kube-system", "extension-apiserver-authentication");

/// The settings kube-apiserver publishes in
/// `kube-system/extension-apiserver-authentication`: CA PEMs, and header
/// lists as JSON arrays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishedAuthentication {
    pub client_ca: Option<String>,
    pub requestheader_client_ca: Option<String>,
    pub requestheader_allowed_names: Option<Vec<String>>,
    pub requestheader_username_headers: Option<Vec<String>>,
    pub requestheader_group_headers: Option<Vec<String>>,
    pub requestheader_extra_headers_prefix: Option<Vec<String>>,
}

impl PublishedAuthentication {
    /// Reads the ConfigMap's `data`.
    ///
    /// # Errors
    /// A list key that is not a JSON array of strings.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, Error> {
        let list = |key: &str| -> Result<Option<Vec<String>>, Error> {
            data.get(key)
                .map(|text| {
                    serde_json::from_str::<Vec<String>>(text).map_err(|e| {
                        Error::Tls(format!(
                            "{}/{} {key}: {e}",
                            AUTHENTICATION_CONFIG_MAP.0, AUTHENTICATION_CONFIG_MAP.1
                        ))
                    })
                })
                .transpose()
        };
        Ok(PublishedAuthentication {
            client_ca: data.get("client-ca-file").cloned(),
            requestheader_client_ca: data.get("requestheader-client-ca-file").cloned(),
            requestheader_allowed_names: list("requestheader-allowed-names")?,
            requestheader_username_headers: list("requestheader-username-headers")?,
            requestheader_group_headers: list("requestheader-group-headers")?,
            requestheader_extra_headers_prefix: list("requestheader-extra-headers-prefix")?,
        })
    }

    /// Reads the ConfigMap through `client`.
    ///
    /// # Errors
    /// The ConfigMap cannot be read or holds a bad list.
    pub async fn fetch(client: kube::Client) -> Result<Self, Error> {
        let (namespace, name) = AUTHENTICATION_CONFIG_MAP;
        let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client, namespace);
        let config_map = config_maps
            .get(name)
            .await
            .map_err(|e| Error::Tls(format!("reading {namespace}/{name}: {e}")))?;
        Self::from_data(&config_map.data.unwrap_or_default())
    }
}

fn header_names(names: &[String]) -> Result<Vec<HeaderName>, Error> {
    names
        .iter()
        .map(|n| {
            HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| Error::Tls(format!("{n:?} is not a header name")))
        })
        .collect()
}

impl Authenticator {
    /// `None` when neither CA is configured: requests are then not
    /// authenticated.
    ///
    /// # Errors
    /// A CA file that cannot be read or holds no certificate, a bad header name.
    pub fn from_config(config: &MetricsApiAuthentication) -> Result<Option<Self>, Error> {
        Self::build(config, &PublishedAuthentication::default())
    }

    /// As [`Authenticator::from_config`], with what kube-apiserver published
    /// (`from_cluster`) filling in what the config leaves unset: a CA file
    /// configured wins over the published CA, and the published header lists
    /// and allowed names are used with the published front-proxy CA.
    ///
    /// # Errors
    /// As [`Authenticator::from_config`].
    pub fn build(
        config: &MetricsApiAuthentication,
        published: &PublishedAuthentication,
    ) -> Result<Option<Self>, Error> {
        let front_proxy_ca = match (
            &config.requestheader_client_ca_file,
            &published.requestheader_client_ca,
        ) {
            (Some(file), _) => Some((verifier(Path::new(file))?, false)),
            (None, Some(pem)) => Some((
                verifier_of_pem(pem.as_bytes(), "the published requestheader-client-ca-file")?,
                true,
            )),
            (None, None) => None,
        };
        let front_proxy = match front_proxy_ca {
            Some((verifier, published_ca)) => {
                // The published settings go with the published CA.
                let pick = |own: &Vec<String>, theirs: &Option<Vec<String>>| match theirs {
                    Some(theirs) if published_ca => theirs.clone(),
                    _ => own.clone(),
                };
                Some(FrontProxy {
                    verifier,
                    allowed_names: pick(
                        &config.requestheader_allowed_names,
                        &published.requestheader_allowed_names,
                    ),
                    username_headers: header_names(&pick(
                        &config.requestheader_username_headers,
                        &published.requestheader_username_headers,
                    ))?,
                    group_headers: header_names(&pick(
                        &config.requestheader_group_headers,
                        &published.requestheader_group_headers,
                    ))?,
                    extra_prefixes: pick(
                        &config.requestheader_extra_headers_prefix,
                        &published.requestheader_extra_headers_prefix,
                    )
                    .iter()
                    .map(|p| p.to_ascii_lowercase())
                    .collect(),
                })
            }
            None => None,
        };
        let client_ca = match (&config.client_ca_file, &published.client_ca) {
            (Some(file), _) => Some(verifier(Path::new(file))?),
            (None, Some(pem)) => Some(verifier_of_pem(
                pem.as_bytes(),
                "the published client-ca-file",
            )?),
            (None, None) => None,
        };
        if front_proxy.is_none() && client_ca.is_none() {
            return Ok(None);
        }
        Ok(Some(Authenticator {
            front_proxy,
            client_ca,
        }))
    }

    /// The user of a request with the client's certificate `chain` (end entity
    /// first) and `headers`, or why it is not authenticated.
    ///
    /// # Errors
    /// No certificate, one no configured CA signed, a front proxy whose name is
    /// not allowed or that names no user.
    pub fn authenticate(
        &self,
        chain: &[CertificateDer<'_>],
        headers: &HeaderMap,
    ) -> Result<User, String> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err("no client certificate".into());
        };
        let now = UnixTime::now();
        let mut reasons = Vec::new();
        if let Some(proxy) = &self.front_proxy {
            match proxy
                .verifier
                .verify_client_cert(end_entity, intermediates, now)
            {
                Ok(_) => match proxy.user(end_entity, headers) {
                    Ok(user) => return Ok(user),
                    Err(reason) => reasons.push(reason),
                },
                Err(error) => reasons.push(format!("not a front-proxy certificate: {error}")),
            }
        }
        if let Some(verifier) = &self.client_ca {
            match verifier.verify_client_cert(end_entity, intermediates, now) {
                Ok(_) => {
                    let subject = Subject::of(end_entity)?;
                    if subject.common_name.is_empty() {
                        reasons.push("client certificate without a common name".into());
                    } else {
                        return Ok(User {
                            name: subject.common_name,
                            groups: subject.organizations,
                            extra: BTreeMap::new(),
                        });
                    }
                }
                Err(error) => reasons.push(format!("not a client-ca certificate: {error}")),
            }
        }
        Err(reasons.join("; "))
    }
}

impl FrontProxy {
    fn user(&self, end_entity: &CertificateDer<'_>, headers: &HeaderMap) -> Result<User, String> {
        let subject = Subject::of(end_entity)?;
        if !self.allowed_names.is_empty() && !self.allowed_names.contains(&subject.common_name) {
            return Err(format!(
                "x509: subject with cn={} is not in the allowed list",
                subject.common_name
            ));
        }
        let values = |name: &HeaderName| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect()
        };
        let name = self
            .username_headers
            .iter()
            .flat_map(values)
            .find(|v| !v.is_empty())
            .ok_or_else(|| "front-proxy request without a user header".to_string())?;
        let groups = self.group_headers.iter().flat_map(values).collect();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (header, value) in headers {
            let Ok(value) = value.to_str() else { continue };
            // Header names arrive lowercased.
            if let Some(key) = self
                .extra_prefixes
                .iter()
                .find_map(|p| header.as_str().strip_prefix(p.as_str()))
            {
                // Lowercased (by HTTP), then unescaped, as Kubernetes does.
                extra
                    .entry(percent_decode(key))
                    .or_default()
                    .push(value.to_string());
            }
        }
        Ok(User {
            name,
            groups,
            extra,
        })
    }
}

/// `%XX` escapes in an extra key decoded, as Kubernetes does.
pub(crate) fn percent_decode(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The subject names Kubernetes reads from a client certificate.
#[derive(Debug, PartialEq)]
struct Subject {
    common_name: String,
    organizations: Vec<String>,
}

/// One DER element: its tag, its contents, and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// 2.5.4.3 and 2.5.4.10.
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
const ORGANIZATION: [u8; 3] = [0x55, 0x04, 0x0a];

impl Subject {
    /// Reads `Certificate.tbsCertificate.subject` (RFC 5280 4.1): the
    /// certificate has been verified by webpki already, so it is well-formed
    /// DER, but every step is still checked.
    fn of(cert: &CertificateDer<'_>) -> Result<Subject, String> {
        Self::parse(cert.as_ref()).ok_or_else(|| "client certificate: unreadable subject".into())
    }

    fn parse(der: &[u8]) -> Option<Subject> {
        let (SEQUENCE, certificate, _) = der_element(der)? else {
            return None;
        };
        let (SEQUENCE, tbs, _) = der_element(certificate)? else {
            return None;
        };
        let mut rest = tbs;
        // [0] version (optional), serial, signature algorithm, issuer,
        // validity, then the subject.
        let (tag, _, after) = der_element(rest)?;
        if tag == 0xa0 {
            rest = after;
        }
        for _ in 0..4 {
            rest = der_element(rest)?.2;
        }
        let (SEQUENCE, mut names, _) = der_element(rest)? else {
            return None;
        };
        let mut subject = Subject {
            common_name: String::new(),
            organizations: Vec::new(),
        };
        while !names.is_empty() {
            let (SET, mut attributes, next) = der_element(names)? else {
                return None;
            };
            names = next;
            while !attributes.is_empty() {
                let (SEQUENCE, attribute, next) = der_element(attributes)? else {
                    return None;
                };
                attributes = next;
                let (OID, oid, value) = der_element(attribute)? else {
                    return None;
                };
                // UTF8String, PrintableString, IA5String, TeletexString.
                let (tag, text, _) = der_element(value)?;
                if ![0x0c, 0x13, 0x16, 0x14].contains(&tag) {
                    continue;
                }
                let text = String::from_utf8_lossy(text).into_owned();
                if oid == COMMON_NAME && subject.common_name.is_empty() {
                    subject.common_name = text;
                } else if oid == ORGANIZATION {
                    subject.organizations.push(text);
                }
            }
        }
        Some(subject)
    }
}

/// `router` answering 401 (a Kubernetes `Status`) to requests `authenticator`
/// does not authenticate; the [`User`] goes into the request's extensions.
pub fn with_authentication(router: Router, authenticator: Arc<Authenticator>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        authenticator,
        authenticate_request,
    ))
}

async fn authenticate_request(
    State(authenticator): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    if ALWAYS_ALLOWED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let chain = request
        .extensions()
        .get::<PeerCertificates>()
        .cloned()
        .unwrap_or_default();
    match authenticator.authenticate(&chain.0, request.headers()) {
        Ok(user) => {
            tracing::debug!(user = %user.name, groups = ?user.groups, path = %request.uri().path(), "Metrics API request authenticated.");
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(reason) => {
            tracing::debug!(%reason, path = %request.uri().path(), "Metrics API request not authenticated.");
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(status(401, "Unauthorized", "Unauthorized")),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use axum::Extension;
    use axum::routing::get;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };

    /// A certificate authority: its parameters and key sign client certificates.
    pub(crate) struct Ca {
        params: CertificateParams,
        key: KeyPair,
        pub(crate) pem: String,
    }

    pub(crate) fn ca(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// A client certificate for `cn` (organization `org`) signed by `ca`: its
    /// certificate and key PEM, and the certificate's DER.
    pub(crate) fn client_cert(
        ca: &Ca,
        cn: &str,
        org: Option<&str>,
    ) -> (String, CertificateDer<'static>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(org) = org {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&ca.params, &ca.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (
            format!("{}{}", cert.pem(), key.serialize_pem()),
            cert.der().clone(),
        )
    }

    struct Cas {
        _dir: tempfile::TempDir,
        front_proxy: Ca,
        clients: Ca,
        other: Ca,
        config: MetricsApiAuthentication,
    }

    /// A front-proxy CA (allowed name `front-proxy-client`), a client CA, and
    /// a CA nobody configured.
    fn cas() -> Cas {
        let dir = tempfile::tempdir().unwrap();
        let (front_proxy, clients, other) = (ca("front-proxy-ca"), ca("kubernetes"), ca("other"));
        let front_file = dir.path().join("front-proxy-ca.crt");
        let client_file = dir.path().join("ca.crt");
        std::fs::write(&front_file, &front_proxy.pem).unwrap();
        std::fs::write(&client_file, &clients.pem).unwrap();
        let config = MetricsApiAuthentication {
            requestheader_client_ca_file: Some(front_file.display().to_string()),
            requestheader_allowed_names: vec!["front-proxy-client".into()],
            client_ca_file: Some(client_file.display().to_string()),
            ..MetricsApiAuthentication::default()
        };
        Cas {
            _dir: dir,
            front_proxy,
            clients,
            other,
            config,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn settings_published_by_the_cluster_fill_in_the_config() {
        let cas = cas();
        let data: BTreeMap<String, String> = [
            ("requestheader-client-ca-file", cas.front_proxy.pem.as_str()),
            ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
            ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#,
            ),
            ("client-ca-file", cas.clients.pem.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let published = PublishedAuthentication::from_data(&data).unwrap();
        let config = MetricsApiAuthentication {
            from_cluster: true,
            ..MetricsApiAuthentication::default()
        };
        let auth = Authenticator::build(&config, &published).unwrap().unwrap();
        let (_, proxy) = client_cert(&cas.front_proxy, "front-proxy-client", None);
        let user = auth
            .authenticate(
                std::slice::from_ref(&proxy),
                &headers(&[("x-remote-user", "alice"), ("x-remote-group", "dev")]),
            )
            .unwrap();
        assert_eq!(
            (user.name.as_str(), user.groups),
            ("alice", vec!["dev".into()])
        );
        // The published allowed names apply.
        let (_, intruder) = client_cert(&cas.front_proxy, "intruder", None);
        assert!(
            auth.authenticate(
                std::slice::from_ref(&intruder),
                &headers(&[("x-remote-user", "alice")])
            )
            .is_err()
        );
        let (_, bob) = client_cert(&cas.clients, "bob", None);
        assert_eq!(
            auth.authenticate(std::slice::from_ref(&bob), &HeaderMap::new())
                .unwrap()
                .name,
            "bob"
        );
        // A configured CA file wins over the published CA, with the
        // configured names.
        let own = MetricsApiAuthentication {
            from_cluster: true,
            requestheader_client_ca_file: cas.config.requestheader_client_ca_file.clone(),
            ..MetricsApiAuthentication::default()
        };
        let auth = Authenticator::build(&own, &published).unwrap().unwrap();
        assert!(
            auth.authenticate(
                std::slice::from_ref(&intruder),
                &headers(&[("x-remote-user", "alice")])
            )
            .is_ok()
        );

        assert!(
            Authenticator::build(&config, &PublishedAuthentication::default())
                .unwrap()
                .is_none()
        );
        let mut bad = data.clone();
        bad.insert(
            "requestheader-allowed-names".into(),
            "front-proxy-client".into(),
        );
        let error = PublishedAuthentication::from_data(&bad).unwrap_err();
        assert!(
            error.to_string().contains("requestheader-allowed-names"),
            "{error}"
        );
        let mut no_cert = data;
        no_cert.insert("client-ca-file".into(), "not a certificate".into());
        let published = PublishedAuthentication::from_data(&no_cert).unwrap();
        assert!(Authenticator::build(&config, &published).is_err());
    }

    #[test]
    fn subjects_are_read_from_certificates() {
        let authority = ca("kubernetes");
        let (_, cert) = client_cert(&authority, "system:kube-controller-manager", Some("team-a"));
        assert_eq!(
            Subject::of(&cert).unwrap(),
            Subject {
                common_name: "system:kube-controller-manager".into(),
                organizations: vec!["team-a".into()],
            }
        );
        // Every truncation is an error, never a panic.
        for len in 0..cert.as_ref().len() {
            let _ = Subject::parse(&cert.as_ref()[..len]);
        }
        assert!(Subject::parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn users_come_from_front_proxy_headers_or_client_certificates() {
        let cas = cas();
        let auth = Authenticator::from_config(&cas.config).unwrap().unwrap();
        let (_, proxy) = client_cert(&cas.front_proxy, "front-proxy-client", None);
        let user = auth
            .authenticate(
                std::slice::from_ref(&proxy),
                &headers(&[
                    ("x-remote-user", "alice"),
                    ("x-remote-group", "dev"),
                    ("x-remote-group", "system:authenticated"),
                    ("x-remote-extra-scopes%2Fa", "read"),
                    ("x-remote-extra-scopes%2Fa", "write"),
                ]),
            )
            .unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, vec!["dev", "system:authenticated"]);
        assert_eq!(
            user.extra,
            BTreeMap::from([("scopes/a".to_string(), vec!["read".into(), "write".into()])])
        );
        // A front proxy naming no user authenticates nobody.
        let error = auth
            .authenticate(std::slice::from_ref(&proxy), &HeaderMap::new())
            .unwrap_err();
        assert!(error.contains("without a user header"), "{error}");

        // Other clients are their certificate's common name and organization;
        // the user headers are not theirs to set.
        let (_, bob) = client_cert(&cas.clients, "bob", Some("team-a"));
        let user = auth
            .authenticate(
                std::slice::from_ref(&bob),
                &headers(&[("x-remote-user", "alice")]),
            )
            .unwrap();
        assert_eq!(
            (user.name.as_str(), user.groups),
            ("bob", vec!["team-a".into()])
        );

        let (_, intruder) = client_cert(&cas.front_proxy, "intruder", None);
        let error = auth
            .authenticate(
                std::slice::from_ref(&intruder),
                &headers(&[("x-remote-user", "alice")]),
            )
            .unwrap_err();
        assert!(
            error.contains("cn=intruder is not in the allowed list"),
            "{error}"
        );
        let (_, stranger) = client_cert(&cas.other, "front-proxy-client", None);
        assert!(
            auth.authenticate(
                std::slice::from_ref(&stranger),
                &headers(&[("x-remote-user", "alice")])
            )
            .is_err()
        );
        assert!(
            auth.authenticate(&[], &headers(&[("x-remote-user", "alice")]))
                .is_err()
        );

        // Empty allowed names: any certificate the front-proxy CA signed.
        let mut any = cas.config.clone();
        any.requestheader_allowed_names.clear();
        any.client_ca_file = None;
        let auth = Authenticator::from_config(&any).unwrap().unwrap();
        let user = auth
            .authenticate(
                std::slice::from_ref(&intruder),
                &headers(&[("x-remote-user", "carol")]),
            )
            .unwrap();
        assert_eq!(user.name, "carol");
        assert!(
            auth.authenticate(std::slice::from_ref(&bob), &HeaderMap::new())
                .is_err()
        );

        assert!(
            Authenticator::from_config(&MetricsApiAuthentication::default())
                .unwrap()
                .is_none()
        );
        let mut missing = cas.config.clone();
        missing.client_ca_file = Some("/nonexistent/ca.crt".into());
        assert!(Authenticator::from_config(&missing).is_err());
    }

    /// The API behind the authenticator on a loopback HTTPS listener asking for
    /// client certificates: who gets in, with which status.
    #[tokio::test]
    async fn https_requests_need_an_authenticated_certificate() {
        let cas = cas();
        let auth = Arc::new(Authenticator::from_config(&cas.config).unwrap().unwrap());
        let tls = crate::web::tls::from_pem_files(None, None, &default_hosts(), true).unwrap();
        let router = axum::Router::new()
            .route(
                "/apis",
                get(|Extension(user): Extension<User>| async move {
                    format!("{} {}", user.name, user.groups.join(","))
                }),
            )
            .route("/healthz", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::web::serve(
            listener,
            with_authentication(router, auth),
            crate::web::Transport::Tls(Arc::new(tls)),
            crate::web::ConnectionLimits::default(),
            None,
            async move {
                let _ = stopped.await;
            },
        ));
        let get = async |identity: Option<&str>, path: &str| {
            let mut builder = reqwest::Client::builder().danger_accept_invalid_certs(true);
            if let Some(pem) = identity {
                builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
            }
            let response = builder
                .build()
                .unwrap()
                .get(format!("https://{addr}{path}"))
                .header("X-Remote-User", "alice")
                .header("X-Remote-Group", "dev")
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        };
        let (proxy, _) = client_cert(&cas.front_proxy, "front-proxy-client", None);
        assert_eq!(get(Some(&proxy), "/apis").await, (200, "alice dev".into()));
        let (bob, _) = client_cert(&cas.clients, "bob", Some("team-a"));
        assert_eq!(get(Some(&bob), "/apis").await, (200, "bob team-a".into()));

        let unauthorized = serde_json::json!({"kind": "Status", "apiVersion": "v1",
            "metadata": {}, "status": "Failure", "message": "Unauthorized",
            "reason": "Unauthorized", "code": 401});
        let (stranger, _) = client_cert(&cas.other, "front-proxy-client", None);
        let (intruder, _) = client_cert(&cas.front_proxy, "intruder", None);
        for identity in [Some(stranger.as_str()), Some(intruder.as_str()), None] {
            let (status, body) = get(identity, "/apis").await;
            assert_eq!(status, 401, "{body}");
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body, unauthorized);
        }
        // The kubelet's probes carry no certificate.
        assert_eq!(get(None, "/healthz").await, (200, "ok".into()));

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
