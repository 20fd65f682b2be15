//! The configuration file: Prometheus's YAML format, loaded unchanged.
//!
//! [`Config`] has every top-level section Prometheus 3.x accepts: `global`,
//! `runtime`, `rule_files`, `scrape_config_files`, `scrape_configs`,
//! `alerting`, `remote_write`, `remote_read`, `storage`, `tracing` and `otlp`,
//! typed so that unknown keys and bad values are errors naming the file, line
//! and column. Scrape configs are `scraper::config::ScrapeConfig`; after
//! parsing, `global`'s defaults are applied to them as Prometheus does.
//! Sections Sextant does not act on yet are parsed and validated and say so
//! in their docs. Sextant's own sections (`autoscaler`, `metrics_api`) are
//! added beside these.
//!
//! With no file, [`Config::embedded_default`] scrapes Sextant itself on
//! `127.0.0.1:9090` every 15 s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use scraper::config::{
    ByteSize, NameValidationScheme, ScrapeConfig, ScrapeConfigFile, ScrapeDefaults, ScrapeProtocol,
    TlsConfig, join_dir, null_default, resolve_http_paths, validate_scrape_protocols,
    yaml_error_parts,
};
use scraper::relabel::RelabelConfig;
use serde::Deserialize;

mod autoscaling;
pub mod metrics_api;

pub use autoscaling::{AutoscalerConfig, KubernetesApiConfig};
pub use metrics_api::MetricsApiConfig;

/// The configuration used when `sextant serve` gets no `--config`.
pub const EMBEDDED_DEFAULT: &str = include_str!("config/default.yml");

/// A whole configuration file.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, deserialize_with = "null_default")]
    pub global: GlobalConfig,
    /// Go runtime tuning; parsed, not acted on.
    #[serde(default, deserialize_with = "null_default")]
    pub runtime: RuntimeConfig,
    /// Globs of rule files.
    #[serde(default, deserialize_with = "null_default")]
    pub rule_files: Vec<String>,
    /// Globs of files holding more `scrape_configs`.
    #[serde(default, deserialize_with = "null_default")]
    pub scrape_config_files: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(default, deserialize_with = "null_default")]
    pub alerting: AlertingConfig,
    #[serde(default, deserialize_with = "null_default")]
    pub remote_write: Vec<RemoteWriteConfig>,
    #[serde(default, deserialize_with = "null_default")]
    pub remote_read: Vec<RemoteReadConfig>,
    #[serde(default, deserialize_with = "null_default")]
    pub storage: StorageConfig,
    /// Trace export; parsed and validated, not acted on.
    #[serde(default)]
    pub tracing: Option<TracingConfig>,
    /// The OTLP receiver; parsed, not acted on.
    #[serde(default, deserialize_with = "null_default")]
    pub otlp: OtlpConfig,
    /// Sextant's recommender: the workloads to recommend for.
    #[serde(default, deserialize_with = "null_default")]
    pub autoscaler: AutoscalerConfig,
    /// Sextant's Kubernetes custom and external metrics APIs.
    #[serde(default, deserialize_with = "null_default")]
    pub metrics_api: MetricsApiConfig,
}

/// `global`: defaults for the other sections.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Default scrape interval (1m).
    #[serde(default, with = "scraper::config::duration_opt")]
    pub scrape_interval: Option<Duration>,
    /// Default scrape timeout (min(10s, scrape_interval)).
    #[serde(default, with = "scraper::config::duration_opt")]
    pub scrape_timeout: Option<Duration>,
    #[serde(default)]
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    /// Rule evaluation interval (1m).
    #[serde(default, with = "scraper::config::duration_opt")]
    pub evaluation_interval: Option<Duration>,
    #[serde(default, with = "scraper::config::duration_opt")]
    pub rule_query_offset: Option<Duration>,
    /// File to which queries are logged; parsed, not acted on.
    #[serde(default)]
    pub query_log_file: Option<String>,
    /// Parsed, not acted on.
    #[serde(default)]
    pub scrape_failure_log_file: Option<String>,
    /// Labels added to series and alerts sent to external systems.
    /// `${VAR}` in values is replaced from the environment.
    #[serde(default, deserialize_with = "null_default")]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub body_size_limit: ByteSize,
    #[serde(default)]
    pub sample_limit: u64,
    #[serde(default)]
    pub target_limit: u64,
    #[serde(default)]
    pub label_limit: u64,
    #[serde(default)]
    pub label_name_length_limit: u64,
    #[serde(default)]
    pub label_value_length_limit: u64,
    #[serde(default)]
    pub keep_dropped_targets: u64,
    #[serde(default)]
    pub metric_name_validation_scheme: Option<NameValidationScheme>,
    #[serde(default)]
    pub metric_name_escaping_scheme: Option<String>,
    #[serde(default)]
    pub scrape_native_histograms: Option<bool>,
    #[serde(default)]
    pub convert_classic_histograms_to_nhcb: bool,
    #[serde(default)]
    pub always_scrape_classic_histograms: bool,
    #[serde(default)]
    pub extra_scrape_metrics: bool,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: None,
            scrape_timeout: None,
            scrape_protocols: None,
            evaluation_interval: None,
            rule_query_offset: None,
            query_log_file: None,
            scrape_failure_log_file: None,
            external_labels: BTreeMap::new(),
            body_size_limit: ByteSize(0),
            sample_limit: 0,
            target_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            keep_dropped_targets: 0,
            metric_name_validation_scheme: None,
            metric_name_escaping_scheme: None,
            scrape_native_histograms: None,
            convert_classic_histograms_to_nhcb: false,
            always_scrape_classic_histograms: false,
            extra_scrape_metrics: false,
        }
    }
}

impl GlobalConfig {
    /// The scrape interval in effect (1m when unset or zero).
    pub fn scrape_interval(&self) -> Duration {
        self.scrape_interval
            .filter(|d| !d.is_zero())
            .unwrap_or(scraper::config::DEFAULT_SCRAPE_INTERVAL)
    }

    /// The scrape timeout in effect (min(10s, interval) when unset or zero).
    pub fn scrape_timeout(&self) -> Duration {
        self.scrape_timeout
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| scraper::config::DEFAULT_SCRAPE_TIMEOUT.min(self.scrape_interval()))
    }

    /// The rule evaluation interval in effect (1m when unset or zero).
    pub fn evaluation_interval(&self) -> Duration {
        self.evaluation_interval
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(60))
    }

    /// The defaults scrape configs inherit.
    pub fn scrape_defaults(&self) -> ScrapeDefaults {
        ScrapeDefaults {
            scrape_interval: self.scrape_interval(),
            scrape_timeout: self.scrape_timeout(),
            scrape_protocols: self.scrape_protocols.clone(),
            scrape_failure_log_file: self.scrape_failure_log_file.clone(),
            body_size_limit: self.body_size_limit,
            sample_limit: self.sample_limit,
            target_limit: self.target_limit,
            label_limit: self.label_limit,
            label_name_length_limit: self.label_name_length_limit,
            label_value_length_limit: self.label_value_length_limit,
            keep_dropped_targets: self.keep_dropped_targets,
            metric_name_validation_scheme: self.metric_name_validation_scheme.unwrap_or_default(),
            metric_name_escaping_scheme: self.metric_name_escaping_scheme.clone(),
            scrape_native_histograms: self.scrape_native_histograms.unwrap_or(false),
            convert_classic_histograms_to_nhcb: self.convert_classic_histograms_to_nhcb,
            always_scrape_classic_histograms: self.always_scrape_classic_histograms,
            extra_scrape_metrics: self.extra_scrape_metrics,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let interval = self.scrape_interval();
        if let Some(timeout) = self.scrape_timeout
            && timeout > interval
        {
            return Err("global scrape timeout greater than scrape interval".into());
        }
        if let Some(protocols) = &self.scrape_protocols {
            validate_scrape_protocols(protocols).map_err(|e| format!("{e} for global config"))?;
        }
        let scheme = self.metric_name_validation_scheme.unwrap_or_default();
        for name in self.external_labels.keys() {
            if !scheme.is_valid_label_name(name) {
                return Err(format!("{name:?} is not a valid label name"));
            }
        }
        Ok(())
    }
}

/// `runtime`: Go runtime settings; parsed, not acted on.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    pub gogc: Option<i64>,
}

/// `alerting`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// Rules applied to every alert before it is sent.
    #[serde(default, deserialize_with = "null_default")]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    #[serde(default, deserialize_with = "null_default")]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

fn default_http() -> String {
    "http".to_string()
}

fn default_alertmanager_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_api_version() -> String {
    "v2".to_string()
}

scraper::with_service_discovery_configs! {
    /// One `alertmanagers` entry: how Alertmanagers are discovered and reached.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AlertmanagerConfig {
        /// AWS SigV4 signing; parsed, not acted on.
        #[serde(default)]
        pub sigv4: Option<serde_yaml::Value>,
        /// `http` (default) or `https`.
        #[serde(default = "default_http")]
        pub scheme: String,
        /// Prefix of the push path.
        #[serde(default)]
        pub path_prefix: String,
        /// Timeout of one push (10s).
        #[serde(default = "default_alertmanager_timeout", with = "scraper::config::duration")]
        pub timeout: Duration,
        /// Only `v2` is supported, as in Prometheus 3.
        #[serde(default = "default_api_version")]
        pub api_version: String,
        /// Rules applied to discovered Alertmanagers.
        #[serde(default, deserialize_with = "null_default")]
        pub relabel_configs: Vec<RelabelConfig>,
        /// Rules applied to alerts sent to these Alertmanagers.
        #[serde(default, deserialize_with = "null_default")]
        pub alert_relabel_configs: Vec<RelabelConfig>,
    }
}

impl AlertmanagerConfig {
    fn validate(&self) -> Result<(), String> {
        let http = self.http_client_config();
        http.validate()?;
        if self.api_version != "v2" {
            return Err(format!(
                "expected Alertmanager api version to be one of [v2] but got {}",
                self.api_version
            ));
        }
        let auth =
            http.basic_auth.is_some() || http.authorization.is_some() || http.oauth2.is_some();
        if auth && self.sigv4.is_some() {
            return Err(
                "at most one of basic_auth, authorization, oauth2, & sigv4 must be configured"
                    .into(),
            );
        }
        if self.relabel_configs.is_empty() {
            for target in self.static_configs.iter().flat_map(|s| &s.targets) {
                if target.contains('/') {
                    return Err(format!("{target:?} is not a valid hostname"));
                }
            }
        }
        Ok(())
    }
}

fn default_remote_write_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_remote_read_timeout() -> Duration {
    Duration::from_secs(60)
}

/// `queue_config` of a remote write endpoint, acted on by
/// `crate::remote::write` (`sample_age_limit` is parsed, not acted on).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub capacity: Option<u64>,
    pub max_shards: Option<u64>,
    pub min_shards: Option<u64>,
    pub max_samples_per_send: Option<u64>,
    #[serde(with = "scraper::config::duration_opt")]
    pub batch_send_deadline: Option<Duration>,
    #[serde(with = "scraper::config::duration_opt")]
    pub min_backoff: Option<Duration>,
    #[serde(with = "scraper::config::duration_opt")]
    pub max_backoff: Option<Duration>,
    /// Retry on 429 Too Many Requests (default true).
    pub retry_on_http_429: Option<bool>,
    #[serde(with = "scraper::config::duration_opt")]
    pub sample_age_limit: Option<Duration>,
}

/// `metadata_config` of a remote write endpoint; parsed, not acted on.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub send: Option<bool>,
    #[serde(with = "scraper::config::duration_opt")]
    pub send_interval: Option<Duration>,
    pub max_samples_per_send: Option<u64>,
}

scraper::with_http_client_config! {
    /// One `remote_write` endpoint.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RemoteWriteConfig {
        pub url: String,
        /// Timeout of one request (30s).
        #[serde(default = "default_remote_write_timeout", with = "scraper::config::duration")]
        pub remote_timeout: Duration,
        /// Extra request headers.
        #[serde(default, deserialize_with = "null_default")]
        pub headers: BTreeMap<String, String>,
        #[serde(default, deserialize_with = "null_default")]
        pub write_relabel_configs: Vec<RelabelConfig>,
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub send_exemplars: bool,
        #[serde(default)]
        pub send_native_histograms: bool,
        #[serde(default)]
        pub round_robin_dns: bool,
        /// `prometheus.WriteRequest` (v1, default) or `io.prometheus.write.v2.Request`.
        #[serde(default)]
        pub protobuf_message: Option<String>,
        #[serde(default)]
        pub queue_config: QueueConfig,
        #[serde(default)]
        pub metadata_config: MetadataConfig,
        /// Cloud signing; parsed, not acted on.
        #[serde(default)]
        pub sigv4: Option<serde_yaml::Value>,
        /// Parsed, not acted on.
        #[serde(default)]
        pub azuread: Option<serde_yaml::Value>,
        /// Parsed, not acted on.
        #[serde(default)]
        pub google_iam: Option<serde_yaml::Value>,
    }
}

/// Headers remote write and read may not set, as Prometheus's `reservedHeaders`.
const RESERVED_REMOTE_HEADERS: [&str; 17] = [
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
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "authorization",
];

fn validate_remote_headers(headers: &BTreeMap<String, String>) -> Result<(), String> {
    for name in headers.keys() {
        let lower = name.to_ascii_lowercase();
        if lower == "authorization" {
            return Err("authorization header must be changed via the basic_auth, authorization, oauth2, sigv4, azuread or google_iam parameter".into());
        }
        if RESERVED_REMOTE_HEADERS.contains(&lower.as_str()) {
            return Err(format!(
                "{name} is a reserved header. It must not be changed"
            ));
        }
    }
    Ok(())
}

fn validate_remote_url(url: &str, section: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err(format!("url for {section} is empty"));
    }
    url::Url::parse(url).map_err(|e| format!("invalid {section} url {url:?}: {e}"))?;
    Ok(())
}

impl RemoteWriteConfig {
    fn validate(&self) -> Result<(), String> {
        validate_remote_url(&self.url, "remote_write")?;
        validate_remote_headers(&self.headers)?;
        match self.protobuf_message.as_deref() {
            None | Some("prometheus.WriteRequest") | Some("io.prometheus.write.v2.Request") => {}
            Some(other) => {
                return Err(format!(
                    "invalid protobuf_message value: unknown remote write protobuf message {other}, supported: prometheus.WriteRequest, io.prometheus.write.v2.Request"
                ));
            }
        }
        let http = self.http_client_config();
        http.validate()?;
        let configured: Vec<&str> = [
            ("basic_auth", http.basic_auth.is_some()),
            ("authorization", http.authorization.is_some()),
            ("oauth2", http.oauth2.is_some()),
            ("sigv4", self.sigv4.is_some()),
            ("azuread", self.azuread.is_some()),
            ("google_iam", self.google_iam.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name)
        .collect();
        if configured.len() > 1 {
            return Err(format!(
                "at most one of basic_auth, authorization, oauth2, sigv4, azuread or google_iam must be configured. Currently configured: [{}]",
                configured.join(" ")
            ));
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}

scraper::with_http_client_config! {
    /// One `remote_read` endpoint.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RemoteReadConfig {
        pub url: String,
        /// Timeout of one request (1m).
        #[serde(default = "default_remote_read_timeout", with = "scraper::config::duration")]
        pub remote_timeout: Duration,
        #[serde(default)]
        pub chunked_read_limit: Option<u64>,
        #[serde(default, deserialize_with = "null_default")]
        pub headers: BTreeMap<String, String>,
        /// Also query for recent data the local storage has.
        #[serde(default)]
        pub read_recent: bool,
        #[serde(default)]
        pub name: String,
        /// Equality matchers a query must have to reach this endpoint.
        #[serde(default, deserialize_with = "null_default")]
        pub required_matchers: BTreeMap<String, String>,
        /// Add the external labels as matchers (default true).
        #[serde(default = "default_true")]
        pub filter_external_labels: bool,
    }
}

impl RemoteReadConfig {
    fn validate(&self) -> Result<(), String> {
        validate_remote_url(&self.url, "remote_read")?;
        validate_remote_headers(&self.headers)?;
        self.http_client_config().validate()
    }
}

/// `storage`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Sextant's extension: the data directory (default `./data`; the
    /// `--storage.path` flag wins).
    pub path: Option<PathBuf>,
    pub tsdb: Option<TsdbConfig>,
    /// Exemplar storage; parsed, not acted on.
    pub exemplars: Option<ExemplarsConfig>,
}

/// `storage.tsdb`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsdbConfig {
    /// How far back out-of-order samples are accepted; parsed, not acted on.
    #[serde(with = "scraper::config::duration_opt")]
    pub out_of_order_time_window: Option<Duration>,
    pub retention: Option<RetentionConfig>,
}

/// `storage.tsdb.retention`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// How long samples are kept.
    #[serde(with = "scraper::config::duration_opt")]
    pub time: Option<Duration>,
    /// How many bytes blocks may use.
    pub size: Option<ByteSize>,
}

/// `storage.exemplars`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemplarsConfig {
    pub max_exemplars: Option<i64>,
}

/// `tracing`; parsed and validated, not acted on.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// `grpc` (default) or `http`.
    pub client_type: Option<String>,
    pub endpoint: String,
    pub sampling_fraction: Option<f64>,
    pub insecure: bool,
    pub tls_config: TlsConfig,
    #[serde(deserialize_with = "null_default")]
    pub headers: BTreeMap<String, String>,
    pub compression: Option<String>,
    #[serde(with = "scraper::config::duration_opt")]
    pub timeout: Option<Duration>,
}

impl TracingConfig {
    fn validate(&self) -> Result<(), String> {
        match self.client_type.as_deref() {
            None | Some("grpc") | Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "expected tracing client type to be to be http or grpc, but got {other}"
                ));
            }
        }
        for name in self.headers.keys() {
            let lower = name.to_ascii_lowercase();
            if lower == "authorization" {
                return Err(
                    "custom authorization header configuration is not yet supported".into(),
                );
            }
            if RESERVED_REMOTE_HEADERS.contains(&lower.as_str()) {
                return Err(format!(
                    "{name} is a reserved header. It must not be changed"
                ));
            }
        }
        if self.endpoint.is_empty() {
            return Err("tracing endpoint must be set".into());
        }
        if let Some(c) = self.compression.as_deref()
            && !c.is_empty()
            && c != "gzip"
        {
            return Err(format!(
                "invalid compression type {c} provided, valid options: gzip"
            ));
        }
        Ok(())
    }
}

/// `otlp`; parsed and validated, not acted on.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    pub promote_all_resource_attributes: bool,
    #[serde(deserialize_with = "null_default")]
    pub promote_resource_attributes: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub ignore_resource_attributes: Vec<String>,
    pub translation_strategy: Option<String>,
    pub keep_identifying_resource_attributes: bool,
    pub convert_histograms_to_nhcb: bool,
    pub promote_scope_metadata: bool,
    pub label_name_underscore_sanitization: Option<bool>,
    pub label_name_preserve_multiple_underscores: Option<bool>,
}

impl OtlpConfig {
    fn validate(&self, scheme: NameValidationScheme) -> Result<(), String> {
        if self.promote_all_resource_attributes {
            if !self.promote_resource_attributes.is_empty() {
                return Err("'promote_all_resource_attributes' and 'promote_resource_attributes' cannot be configured simultaneously".into());
            }
        } else if !self.ignore_resource_attributes.is_empty() {
            return Err("'ignore_resource_attributes' cannot be configured unless 'promote_all_resource_attributes' is true".into());
        }
        match self.translation_strategy.as_deref() {
            None
            | Some("")
            | Some("UnderscoreEscapingWithSuffixes")
            | Some("UnderscoreEscapingWithoutSuffixes") => {}
            Some(s @ ("NoTranslation" | "NoUTF8EscapingWithSuffixes")) => {
                if scheme == NameValidationScheme::Legacy {
                    return Err(format!(
                        "OTLP translation strategy {s:?} is not allowed when UTF8 is disabled"
                    ));
                }
            }
            Some(other) => return Err(format!("unsupported OTLP translation strategy {other:?}")),
        }
        Ok(())
    }
}

/// A rule or scrape config file glob: a `*` only in the last path element.
fn is_valid_glob(pattern: &str) -> bool {
    match pattern.find('*') {
        None => true,
        Some(star) => !pattern[star..].contains('/'),
    }
}

impl Config {
    /// Loads and validates a configuration file. Relative paths in it are
    /// made relative to the file's directory, as Prometheus does.
    ///
    /// # Errors
    /// The file cannot be read, or its content is invalid: the message names
    /// the file and, where known, the line and column.
    pub fn load_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let mut config = Config::from_yaml(&text, &path.display().to_string())?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        // The adapter file is read once paths are resolved.
        if config.metrics_api.adapter_config_file.is_some() {
            config
                .metrics_api
                .rule_set()
                .map_err(|e| anyhow!("{}: metrics_api: {e}", path.display()))?;
        }
        Ok(config)
    }

    /// The embedded default configuration: scrape `127.0.0.1:9090` every 15 s.
    pub fn embedded_default() -> Config {
        // The embedded file is fixed and covered by a test.
        #[allow(clippy::expect_used)]
        Config::from_yaml(EMBEDDED_DEFAULT, "<embedded default>")
            .expect("the embedded default config is valid")
    }

    /// Parses and validates configuration text; `name` names it in errors.
    ///
    /// # Errors
    /// `name:line:column: message` for syntax and type errors; `name: message`
    /// (with the line of the job where known) for cross-section checks.
    pub fn from_yaml(text: &str, name: &str) -> anyhow::Result<Config> {
        // An empty file is the default config, as in Prometheus.
        let mut config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| match yaml_error_parts(&e) {
                (Some((line, column)), message) => anyhow!("{name}:{line}:{column}: {message}"),
                (None, message) => anyhow!("{name}: {message}"),
            })?
        };
        config.validate(text).map_err(|e| anyhow!("{name}{e}"))?;
        config.expand_external_labels();
        Ok(config)
    }

    /// Cross-section checks and `global` defaults. Errors start with
    /// `:line:column: ` when the line is known, else with `: `.
    fn validate(&mut self, text: &str) -> Result<(), String> {
        let at = |line: Option<usize>, message: String| match line {
            Some(line) => format!(":{line}:1: {message}"),
            None => format!(": {message}"),
        };
        self.global.validate().map_err(|e| at(None, e))?;
        for (kind, patterns) in [
            ("rule file", &self.rule_files),
            ("scrape config file", &self.scrape_config_files),
        ] {
            for pattern in patterns {
                if !is_valid_glob(pattern) {
                    return Err(at(None, format!("invalid {kind} path {pattern:?}")));
                }
            }
        }
        let defaults = self.global.scrape_defaults();
        let mut jobs = BTreeSet::new();
        for scrape in &mut self.scrape_configs {
            let line = job_line(text, &scrape.job_name);
            scrape.apply_defaults(&defaults).map_err(|e| at(line, e))?;
            if !jobs.insert(scrape.job_name.clone()) {
                return Err(at(
                    line,
                    format!(
                        "found multiple scrape configs with job name {:?}",
                        scrape.job_name
                    ),
                ));
            }
        }
        let scheme = defaults.metric_name_validation_scheme;
        for rule in &self.alerting.alert_relabel_configs {
            rule.validate(scheme).map_err(|e| at(None, e))?;
        }
        for am in &self.alerting.alertmanagers {
            am.validate().map_err(|e| at(None, e))?;
            for rule in am.relabel_configs.iter().chain(&am.alert_relabel_configs) {
                rule.validate(scheme).map_err(|e| at(None, e))?;
            }
        }
        let mut names = BTreeSet::new();
        for rw in &self.remote_write {
            rw.validate().map_err(|e| at(None, e))?;
            if !rw.name.is_empty() && !names.insert(rw.name.clone()) {
                return Err(at(
                    None,
                    format!(
                        "found multiple remote write configs with job name {:?}",
                        rw.name
                    ),
                ));
            }
            for rule in &rw.write_relabel_configs {
                rule.validate(scheme).map_err(|e| at(None, e))?;
            }
        }
        let mut names = BTreeSet::new();
        for rr in &self.remote_read {
            rr.validate().map_err(|e| at(None, e))?;
            if !rr.name.is_empty() && !names.insert(rr.name.clone()) {
                return Err(at(
                    None,
                    format!(
                        "found multiple remote read configs with job name {:?}",
                        rr.name
                    ),
                ));
            }
        }
        if let Some(tracing) = &self.tracing {
            tracing.validate().map_err(|e| at(None, e))?;
        }
        self.otlp.validate(scheme).map_err(|e| at(None, e))?;
        self.autoscaler.validate(text)?;
        self.metrics_api.validate()?;
        Ok(())
    }

    /// Replaces `$VAR` and `${VAR}` in external label values from the
    /// environment (`$$` is a literal `$`), as Prometheus does.
    fn expand_external_labels(&mut self) {
        for value in self.global.external_labels.values_mut() {
            *value = expand_env(value, |name| std::env::var(name).ok());
        }
    }

    fn resolve_paths(&mut self, dir: &Path) {
        for file in self
            .rule_files
            .iter_mut()
            .chain(self.scrape_config_files.iter_mut())
        {
            join_dir(dir, file);
        }
        for file in [
            &mut self.global.query_log_file,
            &mut self.global.scrape_failure_log_file,
        ]
        .into_iter()
        .flatten()
        {
            join_dir(dir, file);
        }
        for scrape in &mut self.scrape_configs {
            scrape.resolve_paths(dir);
        }
        self.metrics_api.resolve_paths(dir);
        for am in &mut self.alerting.alertmanagers {
            for sd in &mut am.file_sd_configs {
                for file in &mut sd.files {
                    join_dir(dir, file);
                }
            }
            resolve_http_paths(
                dir,
                &mut am.tls_config,
                &mut am.bearer_token_file,
                &mut am.basic_auth,
                &mut am.authorization,
            );
        }
        for rw in &mut self.remote_write {
            resolve_http_paths(
                dir,
                &mut rw.tls_config,
                &mut rw.bearer_token_file,
                &mut rw.basic_auth,
                &mut rw.authorization,
            );
        }
        for rr in &mut self.remote_read {
            resolve_http_paths(
                dir,
                &mut rr.tls_config,
                &mut rr.bearer_token_file,
                &mut rr.basic_auth,
                &mut rr.authorization,
            );
        }
    }

    /// Every scrape config: those of this file, then those of the files
    /// matching `scrape_config_files` (read now, as Prometheus re-reads them
    /// on each reload), validated against `global` and for unique job names.
    ///
    /// # Errors
    /// A file cannot be read or is invalid; the message names it.
    pub fn all_scrape_configs(&self) -> anyhow::Result<Vec<ScrapeConfig>> {
        let mut all = self.scrape_configs.clone();
        let mut jobs: BTreeMap<String, String> = all
            .iter()
            .map(|s| (s.job_name.clone(), "main config file".to_string()))
            .collect();
        let defaults = self.global.scrape_defaults();
        for pattern in &self.scrape_config_files {
            let paths = scraper::discovery::file::expand_glob(pattern)
                .with_context(|| format!("expanding scrape_config_files pattern {pattern:?}"))?;
            for path in paths {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading scrape config file {name}"))?;
                let file: ScrapeConfigFile =
                    serde_yaml::from_str(&text).map_err(|e| match yaml_error_parts(&e) {
                        (Some((line, column)), message) => {
                            anyhow!("{name}:{line}:{column}: {message}")
                        }
                        (None, message) => anyhow!("{name}: {message}"),
                    })?;
                for mut scrape in file.scrape_configs {
                    let line = job_line(&text, &scrape.job_name)
                        .map_or(String::new(), |l| format!(":{l}:1"));
                    scrape
                        .apply_defaults(&defaults)
                        .map_err(|e| anyhow!("{name}{line}: {e}"))?;
                    if let Some(first) = jobs.get(&scrape.job_name) {
                        bail!(
                            "{name}{line}: found multiple scrape configs with job name {:?}, first found in {first}",
                            scrape.job_name
                        );
                    }
                    jobs.insert(scrape.job_name.clone(), format!("{name:?}"));
                    if let Some(dir) = path.parent() {
                        scrape.resolve_paths(dir);
                    }
                    all.push(scrape);
                }
            }
        }
        Ok(all)
    }

    /// Notes about sections that load but that Sextant does not act on.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for scrape in &self.scrape_configs {
            let sd = scrape.service_discovery_configs();
            for mechanism in sd.unsupported {
                warnings.push(format!(
                    "job {:?}: {mechanism} is not supported; it yields no targets",
                    scrape.job_name
                ));
            }
            for k8s in &sd.kubernetes_sd_configs {
                use scraper::config::KubernetesRole;
                if matches!(
                    k8s.role,
                    KubernetesRole::Endpoints | KubernetesRole::Ingress
                ) {
                    warnings.push(format!(
                        "job {:?}: kubernetes_sd_configs role {} is not supported; it yields no targets",
                        scrape.job_name, k8s.role
                    ));
                }
            }
        }
        warnings
    }
}

/// The 1-based line of `job_name: <name>` in the text, to point errors found
/// after parsing at the job they concern.
fn job_line(text: &str, job: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start().trim_start_matches("- ").trim_start();
            let Some(value) = line.strip_prefix("job_name:") else {
                return false;
            };
            let value = value.split(" #").next().unwrap_or("").trim();
            value.trim_matches(|c| c == '"' || c == '\'') == job
        })
        .map(|i| i + 1)
}

/// `$VAR`, `${VAR}` from `lookup` (unset: empty); `$$` is `$`.
fn expand_env(value: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => {
                    out.push_str(&lookup(&braced[..end]).unwrap_or_default());
                    rest = &braced[end + 1..];
                }
                None => {
                    // Bad syntax: Go drops the `${` and keeps the rest.
                    rest = braced;
                }
            }
        } else {
            let len = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            if len == 0 {
                out.push('$');
                rest = after;
            } else {
                out.push_str(&lookup(&after[..len]).unwrap_or_default());
                rest = &after[len..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_scrapes_itself_every_15s() {
        let config = Config::embedded_default();
        assert_eq!(config.global.scrape_interval(), Duration::from_secs(15));
        let scrape = &config.scrape_configs[0];
        assert_eq!(scrape.job_name, "sextant");
        assert_eq!(scrape.interval(), Duration::from_secs(15));
        assert_eq!(scrape.timeout(), Duration::from_secs(10));
        assert_eq!(scrape.static_configs[0].targets, vec!["127.0.0.1:9090"]);
    }

    #[test]
    fn empty_file_is_the_prometheus_default() {
        let config = Config::from_yaml("", "empty.yml").unwrap();
        assert_eq!(config.global.scrape_interval(), Duration::from_secs(60));
        assert_eq!(config.global.scrape_timeout(), Duration::from_secs(10));
        assert_eq!(config.global.evaluation_interval(), Duration::from_secs(60));
        assert!(config.scrape_configs.is_empty());
    }

    #[track_caller]
    fn check_error(yaml: &str, expect: &str) {
        let err = Config::from_yaml(yaml, "p.yml").unwrap_err().to_string();
        assert_eq!(err, expect);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        check_error(
            "global:\n  scrape_intervl: 1s\n",
            "p.yml:2:3: global: unknown field `scrape_intervl`, expected one of `scrape_interval`, `scrape_timeout`, `scrape_protocols`, `evaluation_interval`, `rule_query_offset`, `query_log_file`, `scrape_failure_log_file`, `external_labels`, `body_size_limit`, `sample_limit`, `target_limit`, `label_limit`, `label_name_length_limit`, `label_value_length_limit`, `keep_dropped_targets`, `metric_name_validation_scheme`, `metric_name_escaping_scheme`, `scrape_native_histograms`, `convert_classic_histograms_to_nhcb`, `always_scrape_classic_histograms`, `extra_scrape_metrics`",
        );
        check_error(
            "scrape_configs:\n  - job_name: a\n    sample_limit: -1\n",
            "p.yml:3:19: scrape_configs[0].sample_limit: invalid type: integer `-1`, expected u64",
        );
        check_error(
            "global: {scrape_interval: 10s, scrape_timeout: 20s}",
            "p.yml: global scrape timeout greater than scrape interval",
        );
        check_error(
            "global: {scrape_interval: 10s}\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_timeout: 15s\n",
            r#"p.yml:4:1: scrape timeout greater than scrape interval for scrape config with job name "b""#,
        );
        check_error(
            "scrape_configs:\n  - job_name: a\n  - job_name: 'a'\n",
            r#"p.yml:2:1: found multiple scrape configs with job name "a""#,
        );
        check_error(
            "rule_files: ['a/*/b.yml']",
            r#"p.yml: invalid rule file path "a/*/b.yml""#,
        );
        check_error(
            "remote_write: [{url: ''}]",
            "p.yml: url for remote_write is empty",
        );
        check_error(
            "remote_write: [{url: 'http://x/', headers: {User-Agent: x}}]",
            "p.yml: User-Agent is a reserved header. It must not be changed",
        );
        check_error(
            "alerting: {alertmanagers: [{api_version: v1}]}",
            "p.yml: expected Alertmanager api version to be one of [v2] but got v1",
        );
        check_error(
            "tracing: {client_type: grpc}",
            "p.yml: tracing endpoint must be set",
        );
        check_error(
            "global:\n  evaluation_interval: 1minute\n",
            r#"p.yml:2:24: global.evaluation_interval: not a valid duration string: "1minute""#,
        );
    }

    #[test]
    fn external_labels_expand_environment_variables() {
        let lookup = |name: &str| (name == "HOST").then(|| "h1".to_string());
        assert_eq!(
            expand_env("${HOST}-$HOST-$$-$UNSET-x", lookup),
            "h1-h1-$--x"
        );
        assert_eq!(expand_env("plain", lookup), "plain");
        assert_eq!(expand_env("$-", lookup), "$-");
    }

    #[test]
    fn scrape_config_files_are_read_and_checked_for_duplicate_jobs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yml"),
            "scrape_configs:\n  - job_name: extra\n    file_sd_configs: [{files: [t.json]}]\n",
        )
        .unwrap();
        let main = dir.path().join("prometheus.yml");
        std::fs::write(&main, "global: {scrape_interval: 5s}\nscrape_config_files: ['*.yml']\nscrape_configs: [{job_name: main}]\n").unwrap();
        // The main file itself matches the glob: its content is not a
        // scrape config file, so loading all scrape configs fails there.
        let config = Config::load_file(&main).unwrap();
        let err = config.all_scrape_configs().unwrap_err().to_string();
        assert!(
            err.contains("prometheus.yml:1:1: unknown field `global`"),
            "{err}"
        );
        std::fs::rename(dir.path().join("a.yml"), dir.path().join("extra.scrape")).unwrap();
        let main_text = "scrape_config_files: ['*.scrape']\nscrape_configs: [{job_name: main, scrape_interval: 5s}]\n";
        std::fs::write(&main, main_text).unwrap();
        let config = Config::load_file(&main).unwrap();
        let all = config.all_scrape_configs().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].job_name, "extra");
        assert_eq!(all[1].interval(), Duration::from_secs(60));
        let expected = dir.path().join("t.json").display().to_string();
        assert_eq!(all[1].file_sd_configs[0].files, vec![expected]);
        std::fs::write(
            dir.path().join("dup.scrape"),
            "scrape_configs: [{job_name: main}]\n",
        )
        .unwrap();
        let err = config.all_scrape_configs().unwrap_err().to_string();
        assert!(err.contains(r#"found multiple scrape configs with job name "main", first found in main config file"#), "{err}");
    }
}
