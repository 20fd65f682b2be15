//! `--web.config.file`: Prometheus's web configuration format
//! (exporter-toolkit's `tls_server_config`, `http_server_config`,
//! `basic_auth_users`, `rate_limit`) plus two Sextant keys, `bearer_tokens`
//! and `auth_exempt_paths`. The format is documented in
//! `docs/format/web-config.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::Error;

/// The whole file. Every field is optional; an empty file is plain HTTP
/// without authentication.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub http_server_config: HttpServerConfig,
    /// User name -> bcrypt hash of the password.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
    /// Client name -> bcrypt hash of its bearer token (Sextant extension).
    #[serde(default)]
    pub bearer_tokens: BTreeMap<String, String>,
    /// Paths served without authentication, such as `/metrics` (Sextant
    /// extension; exact matches).
    #[serde(default)]
    pub auth_exempt_paths: Vec<String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// `tls_server_config`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM text of the certificate chain (instead of `cert_file`).
    #[serde(default)]
    pub cert: Option<String>,
    /// PEM text of the key (instead of `key_file`).
    #[serde(default)]
    pub key: Option<String>,
    /// PEM text of the client CA (instead of `client_ca_file`).
    #[serde(default)]
    pub client_ca: Option<String>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub client_auth_type: ClientAuthType,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_allowed_sans: Vec<String>,
    #[serde(default = "TlsVersion::tls12")]
    pub min_version: TlsVersion,
    #[serde(default = "TlsVersion::tls13")]
    pub max_version: TlsVersion,
    /// Go names of TLS 1.2 cipher suites, in preference order.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    #[serde(default = "yes")]
    pub prefer_server_cipher_suites: bool,
    /// Go names of key exchange curves, in preference order.
    #[serde(default)]
    pub curve_preferences: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Go's `tls.ClientAuthType` names.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ClientAuthType {
    #[default]
    NoClientCert,
    /// Asks for a certificate, accepts any or none (not verified).
    RequestClientCert,
    /// Requires a certificate, not verified.
    RequireAnyClientCert,
    /// Verifies a certificate if one is sent.
    VerifyClientCertIfGiven,
    /// Requires a certificate signed by the client CA.
    RequireAndVerifyClientCert,
}

impl ClientAuthType {
    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert
        )
    }
}

/// `TLS10` .. `TLS13`. Only 1.2 and 1.3 are offered: a lower minimum means
/// TLS 1.2.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

impl TlsVersion {
    fn tls12() -> Self {
        TlsVersion::TLS12
    }
    fn tls13() -> Self {
        TlsVersion::TLS13
    }
}

/// `http_server_config`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// HTTP/2 over TLS (ALPN); plain HTTP is always HTTP/1.1.
    #[serde(default = "yes")]
    pub http2: bool,
    /// Response headers added to every answer.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            http2: true,
            headers: BTreeMap::new(),
        }
    }
}

/// `rate_limit`: a token bucket over all requests.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Time between two requests; 0 disables the limiter.
    #[serde(deserialize_with = "deserialize_duration")]
    pub interval: Duration,
    /// Requests allowed at once.
    pub burst: u32,
}

fn deserialize_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    scraper::config::parse_duration(&text).map_err(serde::de::Error::custom)
}

/// The headers exporter-toolkit allows, with the values it accepts (`None`:
/// any).
const ALLOWED_HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

impl WebConfig {
    /// Reads and checks `path`; relative file names inside it are taken
    /// relative to its directory, as Prometheus does.
    ///
    /// # Errors
    /// The file cannot be read, does not parse (with line and column), or
    /// names settings that cannot work together.
    pub fn load(path: &Path) -> Result<WebConfig, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let mut config = WebConfig::from_yaml(&text, &path.display().to_string())?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Parses and checks configuration text; `name` names it in errors.
    ///
    /// # Errors
    /// As [`WebConfig::load`].
    pub fn from_yaml(text: &str, name: &str) -> Result<WebConfig, Error> {
        let config: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| match scraper::config::yaml_error_parts(&e) {
                (Some((line, column)), message) => {
                    Error::Config(format!("{name}:{line}:{column}: {message}"))
                }
                (None, message) => Error::Config(format!("{name}: {message}")),
            })?
        };
        config
            .validate()
            .map_err(|e| Error::Config(format!("{name}: {e}")))?;
        Ok(config)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        if let Some(tls) = &mut self.tls_server_config {
            for file in [
                &mut tls.cert_file,
                &mut tls.key_file,
                &mut tls.client_ca_file,
            ]
            .into_iter()
            .flatten()
            {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        for (user, hash) in &self.basic_auth_users {
            if user.contains(':') {
                return Err(format!("basic_auth_users: user name {user:?} contains ':'"));
            }
            check_bcrypt(hash).map_err(|e| format!("basic_auth_users: {user}: {e}"))?;
        }
        for (client, hash) in &self.bearer_tokens {
            check_bcrypt(hash).map_err(|e| format!("bearer_tokens: {client}: {e}"))?;
        }
        for path in &self.auth_exempt_paths {
            if !path.starts_with('/') {
                return Err(format!(
                    "auth_exempt_paths: {path:?} does not start with '/'"
                ));
            }
        }
        for (name, value) in &self.http_server_config.headers {
            let Some((_, allowed)) = ALLOWED_HEADERS
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name))
            else {
                return Err(format!(
                    "http_server_config: header {name:?} is not allowed"
                ));
            };
            if let Some(allowed) = allowed
                && !allowed.iter().any(|a| a.eq_ignore_ascii_case(value))
            {
                return Err(format!(
                    "http_server_config: invalid value {value:?} for header {name} (allowed: {})",
                    allowed.join(", ")
                ));
            }
            if axum::http::HeaderValue::from_str(value).is_err() {
                return Err(format!(
                    "http_server_config: header {name} has a value that is not valid in HTTP"
                ));
            }
        }
        if let Some(tls) = &self.tls_server_config {
            tls.validate()?;
        }
        Ok(())
    }

    /// Whether requests need credentials.
    pub fn requires_auth(&self) -> bool {
        !self.basic_auth_users.is_empty() || !self.bearer_tokens.is_empty()
    }

    /// The TLS settings, when a certificate is configured (an empty
    /// `tls_server_config` means plain HTTP, as in Prometheus).
    pub fn tls(&self) -> Option<&TlsServerConfig> {
        self.tls_server_config.as_ref().filter(|t| t.is_enabled())
    }

    /// The files the configuration reads (for change detection).
    pub fn referenced_files(&self) -> Vec<PathBuf> {
        self.tls()
            .map(|t| {
                [&t.cert_file, &t.key_file, &t.client_ca_file]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TlsServerConfig {
    fn is_enabled(&self) -> bool {
        self.cert.is_some()
            || self.key.is_some()
            || self.cert_file.is_some()
            || self.key_file.is_some()
    }

    fn validate(&self) -> Result<(), String> {
        let at = |e: String| format!("tls_server_config: {e}");
        if !self.is_enabled() {
            if self.client_ca_file.is_some() || self.client_ca.is_some() {
                return Err(at("a client CA without a certificate and key".into()));
            }
            return Ok(());
        }
        match (&self.cert, &self.cert_file) {
            (Some(_), Some(_)) => return Err(at("both cert and cert_file are set".into())),
            (None, None) => return Err(at("missing cert_file".into())),
            _ => {}
        }
        match (&self.key, &self.key_file) {
            (Some(_), Some(_)) => return Err(at("both key and key_file are set".into())),
            (None, None) => return Err(at("missing key_file".into())),
            _ => {}
        }
        if self.client_ca.is_some() && self.client_ca_file.is_some() {
            return Err(at("both client_ca and client_ca_file are set".into()));
        }
        let has_ca = self.client_ca.is_some() || self.client_ca_file.is_some();
        if has_ca && self.client_auth_type == ClientAuthType::NoClientCert {
            return Err(at(
                "client CA configured without a client_auth_type that uses it".into(),
            ));
        }
        if self.client_auth_type.verifies() && !has_ca {
            return Err(at(format!(
                "client_auth_type {:?} needs client_ca_file",
                self.client_auth_type
            )));
        }
        if !self.client_allowed_sans.is_empty()
            && !matches!(
                self.client_auth_type,
                ClientAuthType::RequireAnyClientCert | ClientAuthType::RequireAndVerifyClientCert
            )
        {
            return Err(at("client_allowed_sans needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert".into()));
        }
        if self.min_version > self.max_version {
            return Err(at(format!(
                "min_version {:?} is above max_version {:?}",
                self.min_version, self.max_version
            )));
        }
        if self.max_version < TlsVersion::TLS12 {
            return Err(at(
                "max_version below TLS12: only TLS 1.2 and 1.3 are supported".into(),
            ));
        }
        Ok(())
    }
}

fn check_bcrypt(hash: &str) -> Result<(), String> {
    bcrypt::HashParts::from_str(hash)
        .map(|_| ())
        .map_err(|_| "not a bcrypt hash (such as one from `htpasswd -nBC 10 \"\"`)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze";

    #[test]
    fn parses_the_exporter_toolkit_example() {
        let text = format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: {HASH}\nrate_limit:\n  interval: 1s\n  burst: 20\n"
        );
        let mut config = WebConfig::from_yaml(&text, "web.yml").unwrap();
        config.resolve_paths(Path::new("/etc/sextant"));
        let tls = config.tls().unwrap();
        assert_eq!(
            tls.cert_file.as_deref(),
            Some(Path::new("/etc/sextant/server.crt"))
        );
        assert_eq!(tls.min_version, TlsVersion::TLS12);
        assert!(tls.prefer_server_cipher_suites);
        assert!(config.requires_auth());
        assert!(config.http_server_config.http2);
        assert_eq!(
            config.rate_limit,
            Some(RateLimit {
                interval: Duration::from_secs(1),
                burst: 20
            })
        );
        assert_eq!(config.referenced_files().len(), 2);
    }

    #[test]
    fn an_empty_file_or_tls_section_is_plain_http() {
        assert_eq!(WebConfig::from_yaml("", "w").unwrap(), WebConfig::default());
        let config = WebConfig::from_yaml("tls_server_config: {}\n", "w").unwrap();
        assert!(config.tls().is_none());
        assert!(!config.requires_auth());
    }

    #[test]
    fn bad_settings_are_errors_naming_the_problem() {
        let cases = [
            ("bogus: 1\n", "w:1:1: unknown field `bogus`"),
            ("basic_auth_users:\n  alice: plain\n", "not a bcrypt hash"),
            (
                &format!("basic_auth_users:\n  'a:b': {HASH}\n") as &str,
                "contains ':'",
            ),
            ("tls_server_config:\n  cert_file: a\n", "missing key_file"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
                "without a client_auth_type",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
                "needs client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n",
                "unknown variant",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
                "above max_version",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n",
                "client_allowed_sans needs",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: always\n",
                "invalid value",
            ),
            (
                "http_server_config:\n  headers:\n    X-Powered-By: me\n",
                "is not allowed",
            ),
            ("auth_exempt_paths: [metrics]\n", "does not start with '/'"),
            ("rate_limit:\n  interval: soon\n  burst: 1\n", "rate_limit"),
        ];
        for (text, expected) in cases {
            let error = WebConfig::from_yaml(text, "w").unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn loading_a_missing_file_names_it() {
        let error = WebConfig::load(Path::new("/nonexistent/web.yml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/web.yml"), "{error}");
    }
}
