//! The Prometheus scrape configuration (`scrape_configs` entries), loaded
//! unchanged from Prometheus YAML.
//!
//! Every field Prometheus 3.x accepts in a scrape config is accepted here so
//! real configs load; each field's doc says whether Sextant acts on it yet.
//! Unknown keys and bad values fail deserialization with serde_yaml's line and
//! column; checks that involve several fields of one section run inside that
//! section's mapping so their errors carry its location too. Defaults that
//! come from `global` are applied by [`ScrapeConfig::apply_defaults`], which
//! the top-level config loader calls.

mod http;
mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::time::Duration;

use serde::de::value::{MapAccessDeserializer, MapDeserializer};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

pub use http::{
    Authorization, BasicAuth, Header, HttpClientConfig, HttpClientError, OAuth2, Secret, TlsConfig,
    TlsVersion,
};
pub use units::{ByteSize, format_duration, parse_duration};

pub(crate) use http::base64_encode;
pub(crate) use units::deserialize_parsed;
pub use units::{duration, duration_opt};

use crate::relabel::RelabelConfig;

/// Prometheus's default `global.scrape_interval`.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
/// Prometheus's default `global.scrape_timeout`.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// Deserializes a mapping into `R` (through its derived impl) and converts it
/// with `check`, all inside the YAML mapping, so that serde_yaml attaches the
/// mapping's line and column to `check`'s error. A null value deserializes as
/// an empty mapping.
pub(crate) fn deserialize_checked<'de, D, R, T, F>(deserializer: D, check: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    R: Deserialize<'de>,
    F: FnOnce(R) -> Result<T, String>,
{
    struct CheckedVisitor<R, F>(F, PhantomData<R>);

    impl<'de, R, T, F> Visitor<'de> for CheckedVisitor<R, F>
    where
        R: Deserialize<'de>,
        F: FnOnce(R) -> Result<T, String>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let raw = R::deserialize(MapAccessDeserializer::new(map))?;
            (self.0)(raw).map_err(de::Error::custom)
        }

        fn visit_unit<E: de::Error>(self) -> Result<T, E> {
            let empty = MapDeserializer::<_, E>::new(std::iter::empty::<(&str, &str)>());
            let raw = R::deserialize(empty)?;
            (self.0)(raw).map_err(E::custom)
        }

        fn visit_none<E: de::Error>(self) -> Result<T, E> {
            self.visit_unit()
        }
    }

    deserializer.deserialize_map(CheckedVisitor(check, PhantomData))
}

/// Deserializes null as the type's default, as Go's YAML decoder does for
/// slices and maps (`rule_files:` with only comments under it, `targets:`).
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Splits a serde_yaml error into its 1-based line and column (when it has a
/// location) and its message without the trailing " at line L column C".
pub fn yaml_error_parts(err: &serde_yaml::Error) -> (Option<(usize, usize)>, String) {
    let mut message = err.to_string();
    let location = err.location().map(|l| (l.line(), l.column()));
    if let Some((line, column)) = location {
        let suffix = format!(" at line {line} column {column}");
        if message.ends_with(&suffix) {
            message.truncate(message.len() - suffix.len());
        }
    }
    (location, message)
}

/// How label and metric names are validated (`metric_name_validation_scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameValidationScheme {
    /// Any non-empty UTF-8 string (Prometheus 3's default).
    #[default]
    Utf8,
    /// `[a-zA-Z_][a-zA-Z0-9_]*` (`:` also allowed in metric names).
    Legacy,
}

impl NameValidationScheme {
    pub fn is_valid_label_name(self, name: &str) -> bool {
        match self {
            NameValidationScheme::Utf8 => !name.is_empty(),
            NameValidationScheme::Legacy => is_legacy_label_name(name),
        }
    }

    /// A label name that may contain `$1`/`${name}` references, as relabeling
    /// targets and labelmap replacements may.
    pub fn is_valid_label_name_with_vars(self, name: &str) -> bool {
        match self {
            NameValidationScheme::Utf8 => !name.is_empty(),
            // Prometheus's `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`: names
            // made of legacy characters and references; digits may not lead.
            NameValidationScheme::Legacy => {
                let bytes = name.as_bytes();
                let mut i = 0;
                let mut previous_allows_digit = false;
                if bytes.is_empty() {
                    return false;
                }
                while i < bytes.len() {
                    let b = bytes[i];
                    if b.is_ascii_alphabetic() || b == b'_' {
                        previous_allows_digit = true;
                        i += 1;
                    } else if b.is_ascii_digit() && previous_allows_digit {
                        i += 1;
                    } else if b == b'$' {
                        let word = |s: &[u8]| {
                            s.iter()
                                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                                .count()
                        };
                        if bytes.get(i + 1) == Some(&b'{') {
                            let n = word(&bytes[i + 2..]);
                            if n == 0 || bytes.get(i + 2 + n) != Some(&b'}') {
                                return false;
                            }
                            i += n + 3;
                        } else {
                            let n = word(&bytes[i + 1..]);
                            if n == 0 {
                                return false;
                            }
                            i += n + 1;
                        }
                        previous_allows_digit = true;
                    } else {
                        return false;
                    }
                }
                true
            }
        }
    }
}

fn is_legacy_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl<'de> Deserialize<'de> for NameValidationScheme {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_parsed(d, |text| match text {
            "" | "utf8" => Ok(NameValidationScheme::Utf8),
            "legacy" => Ok(NameValidationScheme::Legacy),
            other => Err(format!(
                "unknown name validation method specified, must be either '', 'legacy' or 'utf8', got {other}"
            )),
        })
    }
}

/// A scrape protocol offered in the `Accept` header, most wanted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum ScrapeProtocol {
    PrometheusProto,
    #[serde(rename = "PrometheusText0.0.4")]
    PrometheusText0_0_4,
    #[serde(rename = "PrometheusText1.0.0")]
    PrometheusText1_0_0,
    #[serde(rename = "OpenMetricsText0.0.1")]
    OpenMetricsText0_0_1,
    #[serde(rename = "OpenMetricsText1.0.0")]
    OpenMetricsText1_0_0,
}

impl ScrapeProtocol {
    /// The media type and parameters Prometheus sends for this protocol.
    pub fn header_value(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => {
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
            }
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4",
            ScrapeProtocol::PrometheusText1_0_0 => "text/plain;version=1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::OpenMetricsText1_0_0 => "application/openmetrics-text;version=1.0.0",
        }
    }
}

/// Prometheus's default `scrape_protocols`.
pub const DEFAULT_SCRAPE_PROTOCOLS: [ScrapeProtocol; 4] = [
    ScrapeProtocol::OpenMetricsText1_0_0,
    ScrapeProtocol::OpenMetricsText0_0_1,
    ScrapeProtocol::PrometheusText1_0_0,
    ScrapeProtocol::PrometheusText0_0_4,
];

/// The same list led by protobuf, Prometheus's default when native
/// histograms are scraped.
pub const DEFAULT_PROTO_FIRST_SCRAPE_PROTOCOLS: [ScrapeProtocol; 5] = [
    ScrapeProtocol::PrometheusProto,
    ScrapeProtocol::OpenMetricsText1_0_0,
    ScrapeProtocol::OpenMetricsText0_0_1,
    ScrapeProtocol::PrometheusText1_0_0,
    ScrapeProtocol::PrometheusText0_0_4,
];

/// Checks a `scrape_protocols` list as Prometheus does.
///
/// # Errors
/// Prometheus's message: empty or duplicated lists.
pub fn validate_scrape_protocols(protocols: &[ScrapeProtocol]) -> Result<(), String> {
    if protocols.is_empty() {
        return Err("scrape_protocols cannot be empty".into());
    }
    for (i, p) in protocols.iter().enumerate() {
        if protocols[..i].contains(p) {
            return Err(format!(
                "duplicated protocol in scrape_protocols, got {protocols:?}"
            ));
        }
    }
    Ok(())
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The scrape-related settings of `global`, which every scrape config
/// inherits where it leaves a field unset (or zero, for limits).
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeDefaults {
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    /// `None`: chosen per job (proto first when it scrapes native histograms).
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    pub scrape_failure_log_file: Option<String>,
    pub body_size_limit: ByteSize,
    pub sample_limit: u64,
    pub target_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub keep_dropped_targets: u64,
    pub metric_name_validation_scheme: NameValidationScheme,
    pub metric_name_escaping_scheme: Option<String>,
    pub scrape_native_histograms: bool,
    pub convert_classic_histograms_to_nhcb: bool,
    pub always_scrape_classic_histograms: bool,
    pub extra_scrape_metrics: bool,
}

impl Default for ScrapeDefaults {
    /// Prometheus's defaults for an absent `global` section.
    fn default() -> Self {
        ScrapeDefaults {
            scrape_interval: DEFAULT_SCRAPE_INTERVAL,
            scrape_timeout: DEFAULT_SCRAPE_TIMEOUT,
            scrape_protocols: None,
            scrape_failure_log_file: None,
            body_size_limit: ByteSize(0),
            sample_limit: 0,
            target_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            keep_dropped_targets: 0,
            metric_name_validation_scheme: NameValidationScheme::Utf8,
            metric_name_escaping_scheme: None,
            scrape_native_histograms: false,
            convert_classic_histograms_to_nhcb: false,
            always_scrape_classic_histograms: false,
            extra_scrape_metrics: false,
        }
    }
}

/// One entry of `static_configs`: target addresses and labels for all of them.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default, deserialize_with = "null_default")]
    pub targets: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
}

/// One entry of `file_sd_configs`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSdConfig {
    /// Paths or globs (a `*` only in the last path element) of `.json`,
    /// `.yml` or `.yaml` files holding target groups.
    pub files: Vec<String>,
    /// How often the files are re-read (default 5m).
    pub refresh_interval: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSdConfig {
    #[serde(default)]
    files: Vec<String>,
    #[serde(default, with = "duration_opt")]
    refresh_interval: Option<Duration>,
}

impl FileSdConfig {
    fn from_raw(raw: RawFileSdConfig) -> Result<Self, String> {
        if raw.files.is_empty() {
            return Err("file service discovery config must contain at least one path name".into());
        }
        for file in &raw.files {
            let name = Path::new(file)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("");
            let (dir, _) = file.split_at(file.len() - name.len());
            let has_extension = [".json", ".yml", ".yaml"].iter().any(|e| name.ends_with(e));
            if !has_extension || dir.contains('*') {
                return Err(format!(
                    "path name {file:?} is not valid for file discovery"
                ));
            }
        }
        Ok(FileSdConfig {
            files: raw.files,
            refresh_interval: raw.refresh_interval.unwrap_or(Duration::from_secs(5 * 60)),
        })
    }
}

impl<'de> Deserialize<'de> for FileSdConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_checked(d, FileSdConfig::from_raw)
    }
}

crate::with_http_client_config! {
    /// One entry of `http_sd_configs`: a URL returning target groups as JSON.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, remote = "Self")]
    pub struct HttpSdConfig {
        /// The URL to fetch; http or https.
        pub url: String,
        /// How often the URL is fetched (default 1m).
        #[serde(default = "default_http_sd_refresh", with = "duration")]
        pub refresh_interval: Duration,
    }
}

fn default_http_sd_refresh() -> Duration {
    Duration::from_secs(60)
}

impl<'de> Deserialize<'de> for HttpSdConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Plain(HttpSdConfig);
        impl<'de> Deserialize<'de> for Plain {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                HttpSdConfig::deserialize(d).map(Plain)
            }
        }
        deserialize_checked(d, |Plain(config): Plain| {
            if config.url.is_empty() {
                return Err("URL is missing".to_string());
            }
            let url = url::Url::parse(&config.url)
                .map_err(|e| format!("invalid URL {:?}: {e}", config.url))?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err("URL scheme must be 'http' or 'https'".into());
            }
            if url.host_str().unwrap_or("").is_empty() {
                return Err("host is missing in URL".into());
            }
            config.http_client_config().validate()?;
            Ok(config)
        })
    }
}

/// The Kubernetes object kind a `kubernetes_sd_configs` entry discovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubernetesRole {
    Node,
    Pod,
    Service,
    #[serde(rename = "endpointslice")]
    EndpointSlice,
    /// Parsed for compatibility; Sextant discovers through EndpointSlices
    /// and produces no targets for this role yet.
    Endpoints,
    /// Parsed for compatibility; no targets yet.
    Ingress,
}

impl KubernetesRole {
    pub fn as_str(self) -> &'static str {
        match self {
            KubernetesRole::Node => "node",
            KubernetesRole::Pod => "pod",
            KubernetesRole::Service => "service",
            KubernetesRole::EndpointSlice => "endpointslice",
            KubernetesRole::Endpoints => "endpoints",
            KubernetesRole::Ingress => "ingress",
        }
    }
}

impl fmt::Display for KubernetesRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `namespaces` of a Kubernetes SD config: which namespaces to watch (all
/// when empty and `own_namespace` is false).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesNamespaces {
    pub own_namespace: bool,
    pub names: Vec<String>,
}

/// One `selectors` entry: label and field selectors for one role's objects.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSelector {
    pub role: KubernetesRole,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub field: String,
}

/// `attach_metadata`: extra metadata attached to targets.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesAttachMetadata {
    /// Attach the node's labels to pod (and endpointslice) targets.
    pub node: bool,
    /// Attach the namespace's labels and annotations.
    pub namespace: bool,
}

crate::with_http_client_config! {
    /// One entry of `kubernetes_sd_configs`.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, remote = "Self")]
    pub struct KubernetesSdConfig {
        /// The API server URL; in-cluster config or `kubeconfig_file` when unset.
        #[serde(default)]
        pub api_server: Option<String>,
        pub role: KubernetesRole,
        /// A kubeconfig file; exclusive with `api_server`.
        #[serde(default)]
        pub kubeconfig_file: Option<String>,
        #[serde(default)]
        pub namespaces: KubernetesNamespaces,
        #[serde(default)]
        pub selectors: Vec<KubernetesSelector>,
        #[serde(default)]
        pub attach_metadata: KubernetesAttachMetadata,
    }
}

impl KubernetesSdConfig {
    fn check(self) -> Result<Self, String> {
        use KubernetesRole::*;
        let http = self.http_client_config();
        http.validate()?;
        let default_http = http.follow_redirects.unwrap_or(true)
            && http.enable_http2.unwrap_or(true)
            && HttpClientConfig {
                follow_redirects: None,
                enable_http2: None,
                ..http.clone()
            } == HttpClientConfig::default();
        let api_server = self.api_server.as_deref().filter(|s| !s.is_empty());
        let kubeconfig = self.kubeconfig_file.as_deref().filter(|s| !s.is_empty());
        if let Some(url) = api_server {
            url::Url::parse(url).map_err(|e| format!("invalid api_server URL {url:?}: {e}"))?;
        }
        if api_server.is_none() && !default_http {
            return Err(
                "to use custom HTTP client configuration please provide the 'api_server' URL explicitly"
                    .into(),
            );
        }
        if api_server.is_some() && self.namespaces.own_namespace {
            return Err(
                "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously".into(),
            );
        }
        if kubeconfig.is_some() && self.namespaces.own_namespace {
            return Err(
                "cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously".into(),
            );
        }
        if api_server.is_some() && kubeconfig.is_some() {
            return Err("cannot use 'kubeconfig_file' and 'api_server' simultaneously".into());
        }
        if kubeconfig.is_some() && !default_http {
            return Err(
                "cannot use a custom HTTP client configuration together with 'kubeconfig_file'"
                    .into(),
            );
        }
        let allowed: &[KubernetesRole] = match self.role {
            Pod => &[Pod],
            Service => &[Service],
            EndpointSlice => &[Pod, Service, EndpointSlice],
            Endpoints => &[Pod, Service, Endpoints],
            Node => &[Node],
            Ingress => &[Ingress],
        };
        for (i, selector) in self.selectors.iter().enumerate() {
            if self.selectors[..i].iter().any(|s| s.role == selector.role) {
                return Err(format!("duplicated selector role: {}", selector.role));
            }
            if !allowed.contains(&selector.role) {
                let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
                return Err(format!(
                    "{} role supports only {} selectors",
                    self.role,
                    names.join(", ")
                ));
            }
            validate_selector(&selector.label, SelectorKind::Label)?;
            validate_selector(&selector.field, SelectorKind::Field)?;
        }
        Ok(self)
    }
}

impl<'de> Deserialize<'de> for KubernetesSdConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Plain(KubernetesSdConfig);
        impl<'de> Deserialize<'de> for Plain {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                KubernetesSdConfig::deserialize(d).map(Plain)
            }
        }
        deserialize_checked(d, |Plain(config): Plain| config.check())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum SelectorKind {
    Label,
    Field,
}

/// A light syntax check of Kubernetes label and field selectors: comma
/// separated requirements `key`, `!key`, `key=v`, `key==v`, `key!=v`, and
/// (labels only) `key in (a,b)`, `key notin (a,b)`. The API server does the
/// full check when the selector is used.
fn validate_selector(selector: &str, kind: SelectorKind) -> Result<(), String> {
    if selector.trim().is_empty() {
        return Ok(());
    }
    let what = if kind == SelectorKind::Label {
        "label"
    } else {
        "field"
    };
    let invalid = || format!("invalid {what} selector {selector:?}");
    // Split on commas outside parentheses.
    let mut depth = 0i32;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(invalid());
        }
    }
    if depth != 0 {
        return Err(invalid());
    }
    parts.push(&selector[start..]);
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            return Err(invalid());
        }
        let key_ok = |k: &str| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        };
        if let Some(key) = part.strip_prefix('!') {
            if kind == SelectorKind::Field || !key_ok(key.trim()) {
                return Err(invalid());
            }
            continue;
        }
        let set_op = part
            .split_once(" notin ")
            .or_else(|| part.split_once(" in "));
        if let Some((key, values)) = set_op {
            let values = values.trim();
            if kind == SelectorKind::Field
                || !key_ok(key.trim())
                || !(values.starts_with('(') && values.ends_with(')'))
            {
                return Err(invalid());
            }
            continue;
        }
        let (key, _value) = if let Some(kv) = part.split_once("!=") {
            kv
        } else if let Some(kv) = part.split_once("==") {
            kv
        } else if let Some(kv) = part.split_once('=') {
            kv
        } else if kind == SelectorKind::Label {
            (part, "")
        } else {
            return Err(invalid());
        };
        if !key_ok(key.trim()) {
            return Err(invalid());
        }
    }
    Ok(())
}

/// Service discovery mechanisms Prometheus has and Sextant does not act on
/// yet: their sections are accepted (so configs load) and reported by
/// [`ServiceDiscoveryConfigs::unsupported`].
pub const UNSUPPORTED_SD_MECHANISMS: [&str; 27] = [
    "azure_sd_configs",
    "consul_sd_configs",
    "digitalocean_sd_configs",
    "docker_sd_configs",
    "dockerswarm_sd_configs",
    "dns_sd_configs",
    "ec2_sd_configs",
    "eureka_sd_configs",
    "gce_sd_configs",
    "hetzner_sd_configs",
    "ionos_sd_configs",
    "kuma_sd_configs",
    "lightsail_sd_configs",
    "linode_sd_configs",
    "marathon_sd_configs",
    "nerve_sd_configs",
    "nomad_sd_configs",
    "openstack_sd_configs",
    "oci_sd_configs",
    "ovhcloud_sd_configs",
    "puppetdb_sd_configs",
    "scaleway_sd_configs",
    "serverset_sd_configs",
    "stackit_sd_configs",
    "triton_sd_configs",
    "uyuni_sd_configs",
    "vultr_sd_configs",
];

/// The service discovery sections of one scrape (or Alertmanager) config.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceDiscoveryConfigs {
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub http_sd_configs: Vec<HttpSdConfig>,
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Names of the sections present whose mechanism Sextant does not
    /// implement (from [`UNSUPPORTED_SD_MECHANISMS`]).
    pub unsupported: Vec<&'static str>,
}

/// Declares a struct with the HTTP client keys of
/// [`with_http_client_config`](crate::with_http_client_config) and every
/// service discovery key Prometheus accepts, plus a
/// `service_discovery_configs()` method gathering the latter.
#[macro_export]
macro_rules! with_service_discovery_configs {
    (
        $(#[$struct_attr:meta])*
        pub struct $name:ident {
            $($body:tt)*
        }
    ) => {
        $crate::with_http_client_config! {
            $(#[$struct_attr])*
            pub struct $name {
                $($body)*
                /// Statically configured targets.
                #[serde(default, deserialize_with = "::scraper::config::null_default")]
                pub static_configs: ::std::vec::Vec<$crate::config::StaticConfig>,
                /// Targets read from files.
                #[serde(default, deserialize_with = "::scraper::config::null_default")]
                pub file_sd_configs: ::std::vec::Vec<$crate::config::FileSdConfig>,
                /// Targets fetched over HTTP.
                #[serde(default, deserialize_with = "::scraper::config::null_default")]
                pub http_sd_configs: ::std::vec::Vec<$crate::config::HttpSdConfig>,
                /// Targets discovered from the Kubernetes API.
                #[serde(default, deserialize_with = "::scraper::config::null_default")]
                pub kubernetes_sd_configs: ::std::vec::Vec<$crate::config::KubernetesSdConfig>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub azure_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub consul_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub digitalocean_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub docker_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub dockerswarm_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub dns_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub ec2_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub eureka_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub gce_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub hetzner_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub ionos_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub kuma_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub lightsail_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub linode_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub marathon_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub nerve_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub nomad_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub openstack_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub oci_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub ovhcloud_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub puppetdb_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub scaleway_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub serverset_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub stackit_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub triton_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub uyuni_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
                /// Accepted, not acted on.
                #[serde(default)]
                pub vultr_sd_configs: ::std::vec::Vec<::serde_yaml::Value>,
            }
        }

        impl $name {
            /// The service discovery sections, with the names of present
            /// sections whose mechanism is not implemented.
            pub fn service_discovery_configs(&self) -> $crate::config::ServiceDiscoveryConfigs {
                let present: [(&'static str, bool); 27] = [
                    ("azure_sd_configs", !self.azure_sd_configs.is_empty()),
                    ("consul_sd_configs", !self.consul_sd_configs.is_empty()),
                    ("digitalocean_sd_configs", !self.digitalocean_sd_configs.is_empty()),
                    ("docker_sd_configs", !self.docker_sd_configs.is_empty()),
                    ("dockerswarm_sd_configs", !self.dockerswarm_sd_configs.is_empty()),
                    ("dns_sd_configs", !self.dns_sd_configs.is_empty()),
                    ("ec2_sd_configs", !self.ec2_sd_configs.is_empty()),
                    ("eureka_sd_configs", !self.eureka_sd_configs.is_empty()),
                    ("gce_sd_configs", !self.gce_sd_configs.is_empty()),
                    ("hetzner_sd_configs", !self.hetzner_sd_configs.is_empty()),
                    ("ionos_sd_configs", !self.ionos_sd_configs.is_empty()),
                    ("kuma_sd_configs", !self.kuma_sd_configs.is_empty()),
                    ("lightsail_sd_configs", !self.lightsail_sd_configs.is_empty()),
                    ("linode_sd_configs", !self.linode_sd_configs.is_empty()),
                    ("marathon_sd_configs", !self.marathon_sd_configs.is_empty()),
                    ("nerve_sd_configs", !self.nerve_sd_configs.is_empty()),
                    ("nomad_sd_configs", !self.nomad_sd_configs.is_empty()),
                    ("openstack_sd_configs", !self.openstack_sd_configs.is_empty()),
                    ("oci_sd_configs", !self.oci_sd_configs.is_empty()),
                    ("ovhcloud_sd_configs", !self.ovhcloud_sd_configs.is_empty()),
                    ("puppetdb_sd_configs", !self.puppetdb_sd_configs.is_empty()),
                    ("scaleway_sd_configs", !self.scaleway_sd_configs.is_empty()),
                    ("serverset_sd_configs", !self.serverset_sd_configs.is_empty()),
                    ("stackit_sd_configs", !self.stackit_sd_configs.is_empty()),
                    ("triton_sd_configs", !self.triton_sd_configs.is_empty()),
                    ("uyuni_sd_configs", !self.uyuni_sd_configs.is_empty()),
                    ("vultr_sd_configs", !self.vultr_sd_configs.is_empty()),
                ];
                $crate::config::ServiceDiscoveryConfigs {
                    static_configs: self.static_configs.clone(),
                    file_sd_configs: self.file_sd_configs.clone(),
                    http_sd_configs: self.http_sd_configs.clone(),
                    kubernetes_sd_configs: self.kubernetes_sd_configs.clone(),
                    unsupported: present
                        .into_iter()
                        .filter(|(_, is_present)| *is_present)
                        .map(|(name, _)| name)
                        .collect(),
                }
            }
        }
    };
}

fn default_true() -> bool {
    true
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

with_service_discovery_configs! {
    /// One `scrape_configs` entry: a job, how to scrape it, and where its
    /// targets come from.
    ///
    /// Acted on by Sextant: job_name, scrape_interval, scrape_timeout,
    /// scrape_protocols, fallback_scrape_protocol, metrics_path, scheme,
    /// params, honor_labels, honor_timestamps, track_timestamps_staleness,
    /// enable_compression, the limits, keep_dropped_targets, the HTTP client
    /// settings noted in [`HttpClientConfig`], static/file/http/kubernetes
    /// discovery, relabel_configs and metric_relabel_configs. Parsed, not yet
    /// acted on: the native histogram settings, metric_name_escaping_scheme,
    /// scrape_failure_log_file, extra_scrape_metrics and the other discovery
    /// mechanisms.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, remote = "Self")]
    pub struct ScrapeConfig {
        /// The job name, the default `job` label of scraped series; unique.
        pub job_name: String,
        /// Keep the scraped labels on conflict with target labels.
        #[serde(default)]
        pub honor_labels: bool,
        /// Use the timestamps the target exposes (default true).
        #[serde(default = "default_true")]
        pub honor_timestamps: bool,
        /// Write staleness markers for series with explicit timestamps too.
        #[serde(default)]
        pub track_timestamps_staleness: bool,
        /// URL query parameters of every scrape.
        #[serde(default)]
        pub params: BTreeMap<String, Vec<String>>,
        /// Default `global.scrape_interval`; resolved by `apply_defaults`.
        #[serde(default, with = "duration_opt")]
        pub scrape_interval: Option<Duration>,
        /// Default min(`global.scrape_timeout`, interval); resolved by `apply_defaults`.
        #[serde(default, with = "duration_opt")]
        pub scrape_timeout: Option<Duration>,
        /// Protocols offered in `Accept`, most wanted first.
        #[serde(default)]
        pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
        /// Protocol assumed when the response's `Content-Type` is missing or unknown.
        #[serde(default)]
        pub fallback_scrape_protocol: Option<ScrapeProtocol>,
        /// Parsed, not acted on (no native histograms yet).
        #[serde(default)]
        pub scrape_native_histograms: Option<bool>,
        /// Parsed, not acted on.
        #[serde(default)]
        pub always_scrape_classic_histograms: Option<bool>,
        /// Parsed, not acted on.
        #[serde(default)]
        pub convert_classic_histograms_to_nhcb: Option<bool>,
        /// Parsed, not acted on.
        #[serde(default)]
        pub scrape_failure_log_file: Option<String>,
        /// The HTTP path of the metrics (default `/metrics`).
        #[serde(default = "default_metrics_path")]
        pub metrics_path: String,
        #[serde(default)]
        pub scheme: Scheme,
        /// Ask targets for gzip (default true).
        #[serde(default = "default_true")]
        pub enable_compression: bool,
        /// A larger uncompressed body fails the scrape; 0: no limit.
        #[serde(default)]
        pub body_size_limit: ByteSize,
        /// More samples after metric relabeling fail the scrape; 0: no limit.
        #[serde(default)]
        pub sample_limit: u64,
        /// More targets after relabeling fail them all; 0: no limit.
        #[serde(default)]
        pub target_limit: u64,
        /// More labels on a series fail the scrape; 0: no limit.
        #[serde(default)]
        pub label_limit: u64,
        /// A longer label name fails the scrape; 0: no limit.
        #[serde(default)]
        pub label_name_length_limit: u64,
        /// A longer label value fails the scrape; 0: no limit.
        #[serde(default)]
        pub label_value_length_limit: u64,
        /// Parsed, not acted on (no native histograms yet).
        #[serde(default)]
        pub native_histogram_bucket_limit: u64,
        /// Parsed, not acted on.
        #[serde(default)]
        pub native_histogram_min_bucket_factor: f64,
        /// Dropped targets kept for the targets API; 0: all.
        #[serde(default)]
        pub keep_dropped_targets: u64,
        /// `utf8` (default) or `legacy`.
        #[serde(default)]
        pub metric_name_validation_scheme: Option<NameValidationScheme>,
        /// Parsed and validated, not acted on.
        #[serde(default)]
        pub metric_name_escaping_scheme: Option<String>,
        /// Parsed, not acted on.
        #[serde(default)]
        pub extra_scrape_metrics: Option<bool>,
        /// Rules applied to discovered targets.
        #[serde(default, deserialize_with = "null_default")]
        pub relabel_configs: Vec<RelabelConfig>,
        /// Rules applied to scraped series before they are stored.
        #[serde(default, deserialize_with = "null_default")]
        pub metric_relabel_configs: Vec<RelabelConfig>,
    }
}

impl<'de> Deserialize<'de> for ScrapeConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Plain(ScrapeConfig);
        impl<'de> Deserialize<'de> for Plain {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                ScrapeConfig::deserialize(d).map(Plain)
            }
        }
        deserialize_checked(d, |Plain(config): Plain| config.check())
    }
}

const ESCAPING_SCHEMES: [&str; 4] = ["allow-utf-8", "underscores", "dots", "values"];

impl ScrapeConfig {
    /// The checks Prometheus runs when it parses one scrape config.
    fn check(self) -> Result<Self, String> {
        if self.job_name.is_empty() {
            return Err("job_name is empty".into());
        }
        self.http_client_config().validate()?;
        if self.relabel_configs.is_empty() {
            for target in self.static_configs.iter().flat_map(|s| &s.targets) {
                if target.contains('/') {
                    return Err(format!("{target:?} is not a valid hostname"));
                }
            }
        }
        Ok(self)
    }

    /// Fills unset fields from `global` and validates what depends on it,
    /// as Prometheus's `ScrapeConfig.Validate` does.
    ///
    /// # Errors
    /// Prometheus's message, naming the job.
    pub fn apply_defaults(&mut self, global: &ScrapeDefaults) -> Result<(), String> {
        let job = self.job_name.clone();
        let interval = match self.scrape_interval {
            Some(i) if !i.is_zero() => i,
            _ => global.scrape_interval,
        };
        self.scrape_interval = Some(interval);
        if let Some(timeout) = self.scrape_timeout
            && timeout > interval
        {
            return Err(format!(
                "scrape timeout greater than scrape interval for scrape config with job name {job:?}"
            ));
        }
        if self.scrape_timeout.is_none_or(|t| t.is_zero()) {
            self.scrape_timeout = Some(global.scrape_timeout.min(interval));
        }
        let inherit = |own: &mut u64, global: u64| {
            if *own == 0 {
                *own = global;
            }
        };
        inherit(&mut self.sample_limit, global.sample_limit);
        inherit(&mut self.target_limit, global.target_limit);
        inherit(&mut self.label_limit, global.label_limit);
        inherit(
            &mut self.label_name_length_limit,
            global.label_name_length_limit,
        );
        inherit(
            &mut self.label_value_length_limit,
            global.label_value_length_limit,
        );
        inherit(&mut self.keep_dropped_targets, global.keep_dropped_targets);
        if self.body_size_limit.bytes() == 0 {
            self.body_size_limit = global.body_size_limit;
        }
        if self
            .scrape_failure_log_file
            .as_deref()
            .unwrap_or("")
            .is_empty()
        {
            self.scrape_failure_log_file = global.scrape_failure_log_file.clone();
        }
        self.scrape_native_histograms = Some(
            self.scrape_native_histograms
                .unwrap_or(global.scrape_native_histograms),
        );
        self.extra_scrape_metrics = Some(
            self.extra_scrape_metrics
                .unwrap_or(global.extra_scrape_metrics),
        );
        self.convert_classic_histograms_to_nhcb = Some(
            self.convert_classic_histograms_to_nhcb
                .unwrap_or(global.convert_classic_histograms_to_nhcb),
        );
        self.always_scrape_classic_histograms = Some(
            self.always_scrape_classic_histograms
                .unwrap_or(global.always_scrape_classic_histograms),
        );
        if self.scrape_protocols.is_none() {
            self.scrape_protocols = Some(match &global.scrape_protocols {
                Some(protocols) => protocols.clone(),
                None if self.scrape_native_histograms == Some(true) => {
                    DEFAULT_PROTO_FIRST_SCRAPE_PROTOCOLS.to_vec()
                }
                None => DEFAULT_SCRAPE_PROTOCOLS.to_vec(),
            });
        }
        validate_scrape_protocols(self.scrape_protocols.as_deref().unwrap_or(&[]))
            .map_err(|e| format!("{e} for scrape config with job name {job:?}"))?;

        let local_scheme_unset = self.metric_name_validation_scheme.is_none();
        let scheme = *self
            .metric_name_validation_scheme
            .get_or_insert(global.metric_name_validation_scheme);
        let global_escaping = match global.metric_name_escaping_scheme.as_deref() {
            None | Some("") => match global.metric_name_validation_scheme {
                NameValidationScheme::Legacy => "underscores",
                NameValidationScheme::Utf8 => "allow-utf-8",
            },
            Some(s) if ESCAPING_SCHEMES.contains(&s) => s,
            Some(other) => {
                return Err(format!(
                    "unknown global name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got {other:?}"
                ));
            }
        };
        if self
            .metric_name_escaping_scheme
            .as_deref()
            .unwrap_or("")
            .is_empty()
        {
            let escaping = if local_scheme_unset {
                global_escaping
            } else if scheme == NameValidationScheme::Legacy {
                "underscores"
            } else {
                "allow-utf-8"
            };
            self.metric_name_escaping_scheme = Some(escaping.to_string());
        }
        match self.metric_name_escaping_scheme.as_deref().unwrap_or("") {
            "allow-utf-8" if scheme != NameValidationScheme::Utf8 => {
                return Err(
                    "utf8 metric names requested but validation scheme is not set to UTF8".into(),
                );
            }
            s if ESCAPING_SCHEMES.contains(&s) => {}
            other => {
                return Err(format!(
                    "unknown scrape config name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got {other:?}"
                ));
            }
        }
        for rule in self
            .relabel_configs
            .iter()
            .chain(&self.metric_relabel_configs)
        {
            rule.validate(scheme)?;
        }
        Ok(())
    }

    /// The scrape interval (after [`ScrapeConfig::apply_defaults`]).
    pub fn interval(&self) -> Duration {
        self.scrape_interval.unwrap_or(DEFAULT_SCRAPE_INTERVAL)
    }

    /// The scrape timeout (after [`ScrapeConfig::apply_defaults`]).
    pub fn timeout(&self) -> Duration {
        self.scrape_timeout
            .unwrap_or_else(|| DEFAULT_SCRAPE_TIMEOUT.min(self.interval()))
    }

    /// The protocols to offer (after [`ScrapeConfig::apply_defaults`]).
    pub fn protocols(&self) -> &[ScrapeProtocol] {
        self.scrape_protocols
            .as_deref()
            .unwrap_or(&DEFAULT_SCRAPE_PROTOCOLS)
    }

    /// Makes relative file paths relative to `dir` (the config file's
    /// directory), as Prometheus does.
    pub fn resolve_paths(&mut self, dir: &Path) {
        for sd in &mut self.file_sd_configs {
            for file in &mut sd.files {
                join_dir(dir, file);
            }
        }
        for sd in &mut self.kubernetes_sd_configs {
            if let Some(file) = &mut sd.kubeconfig_file {
                join_dir(dir, file);
            }
            resolve_http_paths(
                dir,
                &mut sd.tls_config,
                &mut sd.bearer_token_file,
                &mut sd.basic_auth,
                &mut sd.authorization,
            );
        }
        for sd in &mut self.http_sd_configs {
            resolve_http_paths(
                dir,
                &mut sd.tls_config,
                &mut sd.bearer_token_file,
                &mut sd.basic_auth,
                &mut sd.authorization,
            );
        }
        if let Some(file) = &mut self.scrape_failure_log_file {
            join_dir(dir, file);
        }
        resolve_http_paths(
            dir,
            &mut self.tls_config,
            &mut self.bearer_token_file,
            &mut self.basic_auth,
            &mut self.authorization,
        );
    }
}

/// Joins a relative path to `dir`; empty and absolute paths are unchanged.
pub fn join_dir(dir: &Path, path: &mut String) {
    if path.is_empty() || Path::new(path.as_str()).is_absolute() {
        return;
    }
    *path = dir.join(path.as_str()).to_string_lossy().into_owned();
}

/// Resolves the file paths of inlined HTTP client settings against `dir`.
pub fn resolve_http_paths(
    dir: &Path,
    tls: &mut TlsConfig,
    bearer_token_file: &mut Option<String>,
    basic_auth: &mut Option<BasicAuth>,
    authorization: &mut Option<Authorization>,
) {
    for file in [
        &mut tls.ca_file,
        &mut tls.cert_file,
        &mut tls.key_file,
        bearer_token_file,
    ]
    .into_iter()
    .flatten()
    {
        join_dir(dir, file);
    }
    if let Some(basic) = basic_auth {
        for file in [&mut basic.username_file, &mut basic.password_file]
            .into_iter()
            .flatten()
        {
            join_dir(dir, file);
        }
    }
    if let Some(file) = authorization
        .as_mut()
        .and_then(|a| a.credentials_file.as_mut())
    {
        join_dir(dir, file);
    }
}

/// The content of a file named in `scrape_config_files`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfigFile {
    pub scrape_configs: Vec<ScrapeConfig>,
}

#[cfg(test)]
mod tests;
