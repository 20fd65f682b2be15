//! The HTTP client settings Prometheus inlines into scrape, service discovery,
//! Alertmanager and remote storage sections (`prometheus/common`'s
//! `HTTPClientConfig`): authentication, TLS, redirects, HTTP/2, proxies and
//! extra headers.
//!
//! Acted on by the scraper today: `basic_auth`, `authorization` (and the
//! deprecated `bearer_token`/`bearer_token_file`), `tls_config`,
//! `follow_redirects`, `enable_http2`, `proxy_url`, `http_headers`.
//! Parsed and validated, not yet acted on: `oauth2`, `no_proxy`,
//! `proxy_from_environment`, `proxy_connect_header`, and the `*_ref` secret
//! references (which need a secret manager Sextant does not have).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// A string that must not be printed: `Debug` shows `<secret>`.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// `basic_auth`: sets the `Authorization` header from a username and password.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    pub username_file: Option<String>,
    pub username_ref: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<String>,
    pub password_ref: Option<String>,
}

/// `authorization`: sets the `Authorization` header to `<type> <credentials>`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    /// Defaults to `Bearer`; `Basic` is rejected (use `basic_auth`).
    #[serde(rename = "type")]
    pub kind: String,
    pub credentials: Option<Secret>,
    pub credentials_file: Option<String>,
    pub credentials_ref: Option<String>,
}

/// `tls_config`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM text of the CA certificate(s) that verify the server.
    pub ca: Option<String>,
    pub ca_file: Option<String>,
    pub ca_ref: Option<String>,
    /// PEM text of the client certificate.
    pub cert: Option<String>,
    pub cert_file: Option<String>,
    pub cert_ref: Option<String>,
    /// PEM text of the client key.
    pub key: Option<Secret>,
    pub key_file: Option<String>,
    pub key_ref: Option<String>,
    /// Overrides the server name checked against the certificate.
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "TLS10")]
    Tls10,
    #[serde(rename = "TLS11")]
    Tls11,
    #[serde(rename = "TLS12")]
    Tls12,
    #[serde(rename = "TLS13")]
    Tls13,
}

/// `oauth2`: client-credentials token source. Parsed and validated; not yet
/// acted on by Sextant.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth2 {
    pub client_id: String,
    pub client_id_file: Option<String>,
    pub client_id_ref: Option<String>,
    pub client_secret: Option<Secret>,
    pub client_secret_file: Option<String>,
    pub client_secret_ref: Option<String>,
    pub client_certificate_key_id: Option<String>,
    pub client_certificate_key: Option<Secret>,
    pub client_certificate_key_file: Option<String>,
    pub client_certificate_key_ref: Option<String>,
    pub grant_type: Option<String>,
    pub signature_algorithm: Option<String>,
    pub iss: Option<String>,
    pub audience: Option<String>,
    pub claims: BTreeMap<String, serde_yaml::Value>,
    pub scopes: Vec<String>,
    pub token_url: String,
    pub endpoint_params: BTreeMap<String, String>,
    pub tls_config: Option<TlsConfig>,
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: bool,
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
}

/// One entry of `http_headers`: literal values, secret values, or files whose
/// content is the value.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Header {
    pub values: Vec<String>,
    pub secrets: Vec<Secret>,
    pub files: Vec<String>,
}

/// Headers that `http_headers` may not set, as in `prometheus/common`.
const RESERVED_HEADERS: [&str; 18] = [
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-prometheus-scrape-timeout-seconds",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// All HTTP client settings of one section, gathered from its inlined keys
/// (see [`with_http_client_config`](crate::with_http_client_config)).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpClientConfig {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub oauth2: Option<OAuth2>,
    /// Deprecated spelling of `authorization: {credentials: ...}`.
    pub bearer_token: Option<Secret>,
    /// Deprecated spelling of `authorization: {credentials_file: ...}`.
    pub bearer_token_file: Option<String>,
    pub tls_config: TlsConfig,
    /// `None`: the section's default (true).
    pub follow_redirects: Option<bool>,
    /// `None`: the section's default (true, false for `remote_write`).
    pub enable_http2: Option<bool>,
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: bool,
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
    pub http_headers: BTreeMap<String, Header>,
}

impl HttpClientConfig {
    /// Checks the combinations Prometheus rejects.
    ///
    /// # Errors
    /// Prometheus's message for the first violated rule.
    pub fn validate(&self) -> Result<(), String> {
        let count = |flags: &[bool]| flags.iter().filter(|f| **f).count();
        let some_nonempty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        let secret_set = |s: &Option<Secret>| s.as_ref().is_some_and(|s| !s.is_empty());
        let has_bearer = secret_set(&self.bearer_token) || some_nonempty(&self.bearer_token_file);
        if let Some(basic) = &self.basic_auth {
            if count(&[
                !basic.username.is_empty(),
                some_nonempty(&basic.username_file),
                some_nonempty(&basic.username_ref),
            ]) > 1
            {
                return Err(
                    "at most one of basic_auth username, username_file & username_ref must be configured".into(),
                );
            }
            if count(&[
                secret_set(&basic.password),
                some_nonempty(&basic.password_file),
                some_nonempty(&basic.password_ref),
            ]) > 1
            {
                return Err(
                    "at most one of basic_auth password, password_file & password_ref must be configured".into(),
                );
            }
        }
        if secret_set(&self.bearer_token) && some_nonempty(&self.bearer_token_file) {
            return Err(
                "at most one of bearer_token & bearer_token_file must be configured".into(),
            );
        }
        if (self.basic_auth.is_some() || self.oauth2.is_some()) && has_bearer {
            return Err(
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured".into(),
            );
        }
        if let Some(auth) = &self.authorization {
            if has_bearer {
                return Err(
                    "authorization is not compatible with bearer_token & bearer_token_file".into(),
                );
            }
            if count(&[
                secret_set(&auth.credentials),
                some_nonempty(&auth.credentials_file),
                some_nonempty(&auth.credentials_ref),
            ]) > 1
            {
                return Err(
                    "at most one of authorization credentials & credentials_file must be configured".into(),
                );
            }
            if auth.kind.trim().eq_ignore_ascii_case("basic") {
                return Err(
                    r#"authorization type cannot be set to "basic", use "basic_auth" instead"#
                        .into(),
                );
            }
            if self.basic_auth.is_some() || self.oauth2.is_some() {
                return Err(
                    "at most one of basic_auth, oauth2 & authorization must be configured".into(),
                );
            }
        }
        if let Some(oauth2) = &self.oauth2 {
            if self.basic_auth.is_some() {
                return Err("at most one of oauth2 & basic_auth must be configured".into());
            }
            if oauth2.client_id.is_empty()
                && !some_nonempty(&oauth2.client_id_file)
                && !some_nonempty(&oauth2.client_id_ref)
            {
                return Err("oauth2 client_id must be configured".into());
            }
            if oauth2.token_url.is_empty() {
                return Err("oauth2 token_url must be configured".into());
            }
            if count(&[
                secret_set(&oauth2.client_secret),
                some_nonempty(&oauth2.client_secret_file),
                some_nonempty(&oauth2.client_secret_ref),
            ]) > 1
            {
                return Err(
                    "at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured"
                        .into(),
                );
            }
            if let Some(tls) = &oauth2.tls_config {
                validate_tls(tls)?;
            }
            validate_proxy(
                &oauth2.proxy_url,
                &oauth2.no_proxy,
                oauth2.proxy_from_environment,
                &oauth2.proxy_connect_header,
            )?;
        }
        validate_proxy(
            &self.proxy_url,
            &self.no_proxy,
            self.proxy_from_environment,
            &self.proxy_connect_header,
        )?;
        validate_tls(&self.tls_config)?;
        for name in self.http_headers.keys() {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!("setting header {name:?} is not allowed"));
            }
        }
        Ok(())
    }

    /// The `Authorization` header settings in effect, with the deprecated
    /// `bearer_token` forms folded in and the type defaulted to `Bearer`.
    pub fn effective_authorization(&self) -> Option<Authorization> {
        let default_kind = |kind: &str| {
            let kind = kind.trim();
            if kind.is_empty() {
                "Bearer".to_string()
            } else {
                kind.to_string()
            }
        };
        if let Some(auth) = &self.authorization {
            return Some(Authorization {
                kind: default_kind(&auth.kind),
                ..auth.clone()
            });
        }
        if self.bearer_token.is_some() || self.bearer_token_file.is_some() {
            return Some(Authorization {
                kind: "Bearer".to_string(),
                credentials: self.bearer_token.clone(),
                credentials_file: self.bearer_token_file.clone(),
                credentials_ref: None,
            });
        }
        None
    }
}

/// Why an HTTP client or its request headers could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("reading {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {what}: {source}")]
    Tls {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("invalid proxy_url {url:?}: {source}")]
    Proxy {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("building the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    #[error("invalid header {name:?}: {reason}")]
    Header { name: String, reason: String },
}

fn read_file(path: &str) -> Result<String, HttpClientError> {
    std::fs::read_to_string(path).map_err(|source| HttpClientError::ReadFile {
        path: path.to_string(),
        source,
    })
}

/// Inline text, else the content of a file, else nothing.
fn inline_or_file(
    inline: Option<&str>,
    file: Option<&str>,
) -> Result<Option<String>, HttpClientError> {
    match (
        inline.filter(|s| !s.is_empty()),
        file.filter(|s| !s.is_empty()),
    ) {
        (Some(text), _) => Ok(Some(text.to_string())),
        (None, Some(path)) => read_file(path).map(Some),
        (None, None) => Ok(None),
    }
}

fn header_value(name: &str, value: &str) -> Result<reqwest::header::HeaderValue, HttpClientError> {
    reqwest::header::HeaderValue::from_str(value).map_err(|e| HttpClientError::Header {
        name: name.to_string(),
        reason: e.to_string(),
    })
}

impl HttpClientConfig {
    /// A client with this section's TLS, redirect, HTTP/2 and proxy settings
    /// (`tls_config.server_name` is not supported by the HTTP stack and is
    /// ignored). `default_enable_http2` is the section's default.
    ///
    /// # Errors
    /// Unreadable or invalid certificate files, an invalid proxy URL.
    pub fn build_client(
        &self,
        default_enable_http2: bool,
    ) -> Result<reqwest::Client, HttpClientError> {
        let mut builder = reqwest::Client::builder();
        let tls = &self.tls_config;
        if let Some(ca) = inline_or_file(tls.ca.as_deref(), tls.ca_file.as_deref())? {
            let certs = reqwest::Certificate::from_pem_bundle(ca.as_bytes()).map_err(|source| {
                HttpClientError::Tls {
                    what: "CA certificate",
                    source,
                }
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let cert = inline_or_file(tls.cert.as_deref(), tls.cert_file.as_deref())?;
        let key = inline_or_file(
            tls.key.as_ref().map(Secret::expose),
            tls.key_file.as_deref(),
        )?;
        if let (Some(cert), Some(key)) = (cert, key) {
            let identity = reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
                .map_err(|source| HttpClientError::Tls {
                    what: "client certificate or key",
                    source,
                })?;
            builder = builder.identity(identity);
        }
        if tls.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let version = |v: TlsVersion| match v {
            TlsVersion::Tls10 => reqwest::tls::Version::TLS_1_0,
            TlsVersion::Tls11 => reqwest::tls::Version::TLS_1_1,
            TlsVersion::Tls12 => reqwest::tls::Version::TLS_1_2,
            TlsVersion::Tls13 => reqwest::tls::Version::TLS_1_3,
        };
        if let Some(min) = tls.min_version {
            builder = builder.min_tls_version(version(min));
        }
        if let Some(max) = tls.max_version {
            builder = builder.max_tls_version(version(max));
        }
        builder = builder.redirect(if self.follow_redirects.unwrap_or(true) {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        });
        if !self.enable_http2.unwrap_or(default_enable_http2) {
            builder = builder.http1_only();
        }
        match self.proxy_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => {
                let proxy = reqwest::Proxy::all(url).map_err(|source| HttpClientError::Proxy {
                    url: url.to_string(),
                    source,
                })?;
                builder = builder.proxy(proxy);
            }
            None if !self.proxy_from_environment => builder = builder.no_proxy(),
            None => {}
        }
        builder.build().map_err(HttpClientError::Build)
    }

    /// The `Authorization` header and `http_headers` of a request, with
    /// credential files read now (so rotated secrets are picked up, as
    /// Prometheus re-reads them per request).
    ///
    /// # Errors
    /// An unreadable credentials file or a value that is not a valid header.
    pub fn request_headers(&self) -> Result<reqwest::header::HeaderMap, HttpClientError> {
        use reqwest::header::{AUTHORIZATION, HeaderName};
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(basic) = &self.basic_auth {
            let username = match basic.username_file.as_deref().filter(|f| !f.is_empty()) {
                Some(path) => read_file(path)?.trim().to_string(),
                None => basic.username.clone(),
            };
            let password = inline_or_file(
                basic.password.as_ref().map(Secret::expose),
                basic.password_file.as_deref(),
            )?
            .map(|p| p.trim().to_string())
            .unwrap_or_default();
            let encoded = base64_encode(format!("{username}:{password}").as_bytes());
            headers.insert(
                AUTHORIZATION,
                header_value("Authorization", &format!("Basic {encoded}"))?,
            );
        } else if let Some(auth) = self.effective_authorization() {
            let credentials = inline_or_file(
                auth.credentials.as_ref().map(Secret::expose),
                auth.credentials_file.as_deref(),
            )?
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
            headers.insert(
                AUTHORIZATION,
                header_value("Authorization", &format!("{} {credentials}", auth.kind))?,
            );
        }
        for (name, header) in &self.http_headers {
            let header_name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| HttpClientError::Header {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            let mut values: Vec<String> = header.values.clone();
            values.extend(header.secrets.iter().map(|s| s.expose().to_string()));
            for file in &header.files {
                values.push(read_file(file)?.trim().to_string());
            }
            for value in values {
                headers.append(header_name.clone(), header_value(name, &value)?);
            }
        }
        Ok(headers)
    }
}

/// Standard base64 with padding, for the `Basic` authorization header and
/// kubeconfig `*-data` fields.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn validate_tls(tls: &TlsConfig) -> Result<(), String> {
    let count = |flags: &[bool]| flags.iter().filter(|f| **f).count();
    let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    let key_set = tls.key.as_ref().is_some_and(|k| !k.is_empty());
    if count(&[set(&tls.ca), set(&tls.ca_file), set(&tls.ca_ref)]) > 1 {
        return Err("at most one of ca, ca_file & ca_ref must be configured".into());
    }
    if count(&[set(&tls.cert), set(&tls.cert_file), set(&tls.cert_ref)]) > 1 {
        return Err("at most one of cert, cert_file & cert_ref must be configured".into());
    }
    if count(&[key_set, set(&tls.key_file), set(&tls.key_ref)]) > 1 {
        return Err("at most one of key and key_file must be configured".into());
    }
    let using_cert = set(&tls.cert) || set(&tls.cert_file) || set(&tls.cert_ref);
    let using_key = key_set || set(&tls.key_file) || set(&tls.key_ref);
    if using_cert && !using_key {
        return Err("exactly one of key or key_file must be configured when a client certificate is configured".into());
    }
    if using_key && !using_cert {
        return Err(
            "exactly one of cert or cert_file must be configured when a client key is configured"
                .into(),
        );
    }
    if let (Some(min), Some(max)) = (tls.min_version, tls.max_version)
        && min > max
    {
        return Err("tls_config max_version must be greater than or equal to min_version".into());
    }
    Ok(())
}

fn validate_proxy(
    proxy_url: &Option<String>,
    no_proxy: &Option<String>,
    from_environment: bool,
    connect_header: &BTreeMap<String, Vec<Secret>>,
) -> Result<(), String> {
    let has_url = proxy_url.as_deref().is_some_and(|u| !u.is_empty());
    if has_url && from_environment {
        return Err(
            "if proxy_from_environment is configured, proxy_url must not be configured".into(),
        );
    }
    if no_proxy.as_deref().is_some_and(|n| !n.is_empty()) && !has_url {
        return Err("if no_proxy is configured, proxy_url must also be configured".into());
    }
    if !connect_header.is_empty() && !has_url && !from_environment {
        return Err(
            "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured"
                .into(),
        );
    }
    if let Some(url) = proxy_url.as_deref().filter(|u| !u.is_empty()) {
        url::Url::parse(url).map_err(|e| format!("invalid proxy_url {url:?}: {e}"))?;
    }
    Ok(())
}

/// Declares a config section struct with Prometheus's inlined HTTP client keys
/// (`basic_auth`, `authorization`, `oauth2`, `bearer_token`,
/// `bearer_token_file`, `tls_config`, `follow_redirects`, `enable_http2`,
/// `proxy_url`, `no_proxy`, `proxy_from_environment`, `proxy_connect_header`,
/// `http_headers`) appended to its own fields, and a `http_client_config()`
/// method gathering them into one [`HttpClientConfig`].
///
/// Serde cannot combine `flatten` with `deny_unknown_fields` (and `flatten`
/// loses error locations), hence this macro.
#[macro_export]
macro_rules! with_http_client_config {
    (
        $(#[$struct_attr:meta])*
        pub struct $name:ident {
            $( $(#[$field_attr:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$struct_attr])*
        pub struct $name {
            $( $(#[$field_attr])* pub $field: $ty, )*
            /// Sets the `Authorization` header from a username and password.
            #[serde(default)]
            pub basic_auth: ::std::option::Option<$crate::config::BasicAuth>,
            /// Sets the `Authorization` header to `<type> <credentials>`.
            #[serde(default)]
            pub authorization: ::std::option::Option<$crate::config::Authorization>,
            /// OAuth 2.0 client credentials (parsed, not yet acted on).
            #[serde(default)]
            pub oauth2: ::std::option::Option<$crate::config::OAuth2>,
            /// Deprecated: use `authorization`.
            #[serde(default)]
            pub bearer_token: ::std::option::Option<$crate::config::Secret>,
            /// Deprecated: use `authorization.credentials_file`.
            #[serde(default)]
            pub bearer_token_file: ::std::option::Option<::std::string::String>,
            /// TLS settings of the connection.
            #[serde(default)]
            pub tls_config: $crate::config::TlsConfig,
            /// Whether to follow HTTP 3xx redirects (default true).
            #[serde(default)]
            pub follow_redirects: ::std::option::Option<bool>,
            /// Whether to enable HTTP/2 (default true; false for remote_write).
            #[serde(default)]
            pub enable_http2: ::std::option::Option<bool>,
            /// Proxy URL.
            #[serde(default)]
            pub proxy_url: ::std::option::Option<::std::string::String>,
            /// Hosts excluded from proxying (parsed, not yet acted on).
            #[serde(default)]
            pub no_proxy: ::std::option::Option<::std::string::String>,
            /// Use the proxy named by the environment (parsed, not yet acted on).
            #[serde(default)]
            pub proxy_from_environment: bool,
            /// Headers sent to proxies on CONNECT (parsed, not yet acted on).
            #[serde(default)]
            pub proxy_connect_header:
                ::std::collections::BTreeMap<::std::string::String, ::std::vec::Vec<$crate::config::Secret>>,
            /// Extra request headers.
            #[serde(default)]
            pub http_headers:
                ::std::collections::BTreeMap<::std::string::String, $crate::config::Header>,
        }

        impl $name {
            /// The inlined HTTP client settings as one value.
            pub fn http_client_config(&self) -> $crate::config::HttpClientConfig {
                $crate::config::HttpClientConfig {
                    basic_auth: self.basic_auth.clone(),
                    authorization: self.authorization.clone(),
                    oauth2: self.oauth2.clone(),
                    bearer_token: self.bearer_token.clone(),
                    bearer_token_file: self.bearer_token_file.clone(),
                    tls_config: self.tls_config.clone(),
                    follow_redirects: self.follow_redirects,
                    enable_http2: self.enable_http2,
                    proxy_url: self.proxy_url.clone(),
                    no_proxy: self.no_proxy.clone(),
                    proxy_from_environment: self.proxy_from_environment,
                    proxy_connect_header: self.proxy_connect_header.clone(),
                    http_headers: self.http_headers.clone(),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(yaml: &str, expect: Result<(), &str>) {
        crate::with_http_client_config! {
            #[derive(Debug, Deserialize)]
            #[serde(deny_unknown_fields)]
            pub struct Section {
            }
        }
        let section: Section = serde_yaml::from_str(yaml).unwrap();
        let got = section.http_client_config().validate();
        assert_eq!(
            got.as_ref().map(|_| ()).map_err(String::as_str),
            expect,
            "{yaml}"
        );
    }

    #[test]
    fn validation_follows_prometheus_common() {
        check("{}", Ok(()));
        check("basic_auth: {username: u, password: p}", Ok(()));
        check(
            "basic_auth: {username: u, password: p, password_file: f}",
            Err(
                "at most one of basic_auth password, password_file & password_ref must be configured",
            ),
        );
        check(
            "{bearer_token: t, bearer_token_file: f}",
            Err("at most one of bearer_token & bearer_token_file must be configured"),
        );
        check(
            "{basic_auth: {username: u}, bearer_token: t}",
            Err(
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
            ),
        );
        check(
            "{basic_auth: {username: u}, authorization: {credentials: c}}",
            Err("at most one of basic_auth, oauth2 & authorization must be configured"),
        );
        check(
            "authorization: {type: Basic, credentials: c}",
            Err(r#"authorization type cannot be set to "basic", use "basic_auth" instead"#),
        );
        check(
            "oauth2: {client_id: i}",
            Err("oauth2 token_url must be configured"),
        );
        check(
            "oauth2: {client_id: i, token_url: 'http://x/token'}",
            Ok(()),
        );
        check(
            "tls_config: {cert_file: c}",
            Err(
                "exactly one of key or key_file must be configured when a client certificate is configured",
            ),
        );
        check(
            "tls_config: {cert_file: c, key_file: k, min_version: TLS12}",
            Ok(()),
        );
        check(
            "{no_proxy: localhost}",
            Err("if no_proxy is configured, proxy_url must also be configured"),
        );
        check(
            "http_headers: {User-Agent: {values: [x]}}",
            Err(r#"setting header "User-Agent" is not allowed"#),
        );
        check("http_headers: {X-Tenant: {values: [a]}}", Ok(()));
    }

    #[test]
    fn request_headers_carry_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "from-file\n").unwrap();
        let config = HttpClientConfig {
            authorization: Some(Authorization {
                credentials_file: Some(token.display().to_string()),
                ..Authorization::default()
            }),
            http_headers: [(
                "X-Tenant".to_string(),
                Header {
                    values: vec!["a".into()],
                    ..Header::default()
                },
            )]
            .into(),
            ..HttpClientConfig::default()
        };
        let headers = config.request_headers().unwrap();
        assert_eq!(headers["authorization"], "Bearer from-file");
        assert_eq!(headers["x-tenant"], "a");
        let basic = HttpClientConfig {
            basic_auth: Some(BasicAuth {
                username: "Aladdin".into(),
                password: Some(Secret("open sesame".into())),
                ..BasicAuth::default()
            }),
            ..HttpClientConfig::default()
        };
        // The example of RFC 7617.
        assert_eq!(
            basic.request_headers().unwrap()["authorization"],
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert!(basic.build_client(true).is_ok());
        let missing = HttpClientConfig {
            tls_config: TlsConfig {
                ca_file: Some("/nonexistent/ca.pem".into()),
                ..TlsConfig::default()
            },
            ..HttpClientConfig::default()
        };
        assert!(matches!(
            missing.build_client(true),
            Err(HttpClientError::ReadFile { .. })
        ));
    }

    #[test]
    fn bearer_token_becomes_authorization() {
        let config = HttpClientConfig {
            bearer_token: Some(Secret("t".into())),
            ..HttpClientConfig::default()
        };
        let auth = config.effective_authorization().unwrap();
        assert_eq!(auth.kind, "Bearer");
        assert_eq!(auth.credentials.unwrap().expose(), "t");
        assert_eq!(format!("{:?}", Secret("x".into())), "<secret>");
    }
}
