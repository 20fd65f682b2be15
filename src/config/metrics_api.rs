//! The `metrics_api` section: Sextant's own. It turns on the Kubernetes custom
//! and external metrics APIs (`crate::metrics_api`) and lists the rules that map
//! PromQL series to them. The rule lists are prometheus-adapter's, spelled as in
//! its config file (`rules`, `externalRules`, `resourceRules`), so an adapter
//! config pastes in unchanged, or is named whole by `adapter_config_file`. The
//! short form `metrics` names one metric and its PromQL directly.
//!
//! ```yaml
//! metrics_api:
//!   listen_address: 0.0.0.0:6443
//!   tls: {cert_file: /tls/tls.crt, key_file: /tls/tls.key}   # absent: self-signed
//!   authentication:                                          # absent: none
//!     requestheader_client_ca_file: /front-proxy/ca.crt
//!     requestheader_allowed_names: [front-proxy-client]
//!   authorization: {}        # absent: none; {}: SubjectAccessReviews in-cluster
//!   relist_interval: 1m
//!   rules:
//!     - seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
//!       resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
//!       name: {matches: "^(.*)_total$", as: "${1}_per_second"}
//!       metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
//!   metrics:
//!     - name: queue_depth
//!       external: true
//!       query: 'sum(queue_messages{<<.LabelMatchers>>})'
//!       resources: {namespace: namespace}
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use scraper::config::{join_dir, null_default};
use serde::Deserialize;

use crate::metrics_api::rules::RuleSet;

fn default_relist_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_max_age() -> Duration {
    Duration::from_secs(600)
}

/// `metrics_api`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsApiConfig {
    /// Where the HTTPS listener binds (`--metrics-api.listen-address` wins);
    /// unset: the APIs are not served.
    #[serde(default)]
    pub listen_address: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub tls: MetricsApiTls,
    /// Who may call the APIs (absent: anyone who reaches the port).
    #[serde(default, deserialize_with = "null_default")]
    pub authentication: MetricsApiAuthentication,
    /// What an authenticated caller may read, asked of the Kubernetes API
    /// (absent: everything).
    #[serde(default)]
    pub authorization: Option<MetricsApiAuthorization>,
    /// How often `seriesQuery` discovery runs (1m). It must not be shorter
    /// than the scrape interval, or metrics flicker in and out of discovery.
    #[serde(
        default = "default_relist_interval",
        with = "scraper::config::duration"
    )]
    pub relist_interval: Duration,
    /// How far back discovery looks for series (10m; prometheus-adapter's
    /// `--metrics-max-age`).
    #[serde(default = "default_max_age", with = "scraper::config::duration")]
    pub max_age: Duration,
    /// A prometheus-adapter config file (`rules`, `externalRules`,
    /// `resourceRules`), loaded unchanged; its rules come after the ones here.
    #[serde(default)]
    pub adapter_config_file: Option<String>,
    /// prometheus-adapter's custom metrics rules.
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<AdapterRule>,
    /// prometheus-adapter's external metrics rules.
    #[serde(default, rename = "externalRules", deserialize_with = "null_default")]
    pub external_rules: Vec<AdapterRule>,
    /// prometheus-adapter's resource metrics rules (`metrics.k8s.io`): parsed,
    /// not served.
    #[serde(default, rename = "resourceRules")]
    pub resource_rules: Option<serde_yaml::Value>,
    /// The short form.
    #[serde(default, deserialize_with = "null_default")]
    pub metrics: Vec<ShortMetric>,
}

impl Default for MetricsApiConfig {
    fn default() -> Self {
        MetricsApiConfig {
            listen_address: None,
            tls: MetricsApiTls::default(),
            authentication: MetricsApiAuthentication::default(),
            authorization: None,
            relist_interval: default_relist_interval(),
            max_age: default_max_age(),
            adapter_config_file: None,
            rules: Vec::new(),
            external_rules: Vec::new(),
            resource_rules: None,
            metrics: Vec::new(),
        }
    }
}

/// `metrics_api.authentication`: who may call the APIs, with the settings (and
/// the defaults) of the Kubernetes apiserver library's `--requestheader-*` and
/// `--client-ca-file` flags; the header defaults are the values kube-apiserver
/// publishes in `kube-system/extension-apiserver-authentication`. Neither CA
/// set: requests are not authenticated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsApiAuthentication {
    /// The CA of the aggregator's front-proxy client certificate
    /// (kube-apiserver's `--requestheader-client-ca-file`).
    #[serde(default)]
    pub requestheader_client_ca_file: Option<String>,
    /// Common names a front-proxy certificate may have (empty: any the CA signed).
    #[serde(default, deserialize_with = "null_default")]
    pub requestheader_allowed_names: Vec<String>,
    /// Headers naming the user, first non-empty wins.
    #[serde(default = "default_username_headers")]
    pub requestheader_username_headers: Vec<String>,
    /// Headers naming the user's groups, every value.
    #[serde(default = "default_group_headers")]
    pub requestheader_group_headers: Vec<String>,
    /// Prefixes of the headers carrying the user's extra attributes.
    #[serde(default = "default_extra_headers_prefix")]
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// The CA of other clients' certificates: the user is the common name, the
    /// groups the organizations.
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// Read at start what kube-apiserver publishes in
    /// `kube-system/extension-apiserver-authentication` (both CAs, the allowed
    /// names and the headers), as the apiserver library does, through the
    /// connection of `metrics_api.authorization` (in-cluster without one).
    /// Files set above win over the published CAs.
    #[serde(default)]
    pub from_cluster: bool,
}

fn default_username_headers() -> Vec<String> {
    vec!["X-Remote-User".into()]
}

fn default_group_headers() -> Vec<String> {
    vec!["X-Remote-Group".into()]
}

fn default_extra_headers_prefix() -> Vec<String> {
    vec!["X-Remote-Extra-".into()]
}

impl Default for MetricsApiAuthentication {
    fn default() -> Self {
        MetricsApiAuthentication {
            requestheader_client_ca_file: None,
            requestheader_allowed_names: Vec::new(),
            requestheader_username_headers: default_username_headers(),
            requestheader_group_headers: default_group_headers(),
            requestheader_extra_headers_prefix: default_extra_headers_prefix(),
            client_ca_file: None,
            from_cluster: false,
        }
    }
}

impl MetricsApiAuthentication {
    fn validate(&self) -> Result<(), String> {
        for name in self
            .requestheader_username_headers
            .iter()
            .chain(&self.requestheader_group_headers)
            .chain(&self.requestheader_extra_headers_prefix)
        {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!(
                    ": metrics_api.authentication: {name:?} is not a header name"
                ));
            }
        }
        Ok(())
    }
}

scraper::with_http_client_config! {
    /// `metrics_api.authorization`: every authenticated request is authorized
    /// by a `SubjectAccessReview` posted to the Kubernetes API, as an
    /// aggregated API server delegates authorization (the apiserver library's
    /// `--authorization-*` flags). The Kubernetes API is reached as in
    /// `kubernetes_sd_configs`: `api_server` (with the HTTP client settings),
    /// else `kubeconfig_file`, else the in-cluster service account.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct MetricsApiAuthorization {
        #[serde(default)]
        pub api_server: Option<String>,
        #[serde(default)]
        pub kubeconfig_file: Option<String>,
        /// How long an allowed answer is reused (10s).
        #[serde(default = "default_review_ttl", with = "scraper::config::duration")]
        pub cache_authorized_ttl: Duration,
        /// How long a denied answer is reused (10s).
        #[serde(default = "default_review_ttl", with = "scraper::config::duration")]
        pub cache_unauthorized_ttl: Duration,
        /// Groups allowed everything without a review (`system:masters`).
        #[serde(default = "default_always_allow_groups")]
        pub always_allow_groups: Vec<String>,
    }
}

fn default_review_ttl() -> Duration {
    Duration::from_secs(10)
}

fn default_always_allow_groups() -> Vec<String> {
    vec!["system:masters".into()]
}

/// `metrics_api.tls`: the serving certificate. Both unset: a self-signed
/// certificate is generated at start (for APIServices with
/// `insecureSkipTLSVerify: true`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsApiTls {
    /// PEM certificate chain.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub key_file: Option<String>,
}

/// A prometheus-adapter config file: the three rule lists.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfigFile {
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<AdapterRule>,
    #[serde(default, rename = "externalRules", deserialize_with = "null_default")]
    pub external_rules: Vec<AdapterRule>,
    #[serde(default, rename = "resourceRules")]
    pub resource_rules: Option<serde_yaml::Value>,
}

/// One prometheus-adapter discovery rule (custom or external).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterRule {
    /// A series selector: which series the rule is about.
    #[serde(rename = "seriesQuery")]
    pub series_query: String,
    #[serde(default, rename = "seriesFilters", deserialize_with = "null_default")]
    pub series_filters: Vec<SeriesFilter>,
    #[serde(default, deserialize_with = "null_default")]
    pub resources: ResourceMapping,
    #[serde(default)]
    pub name: Option<NameMapping>,
    /// A template with `<<.Series>>`, `<<.LabelMatchers>>`, `<<.GroupBy>>`.
    #[serde(rename = "metricsQuery")]
    pub metrics_query: String,
}

/// `seriesFilters[]`: `is` or `isNot`, a regex on the metric name.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesFilter {
    #[serde(default)]
    pub is: Option<String>,
    #[serde(default, rename = "isNot")]
    pub is_not: Option<String>,
}

/// `resources`: which labels name Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceMapping {
    /// Such as `kube_<<.Group>>_<<.Resource>>`.
    #[serde(default)]
    pub template: Option<String>,
    /// Label name -> group and resource.
    #[serde(default, deserialize_with = "null_default")]
    pub overrides: BTreeMap<String, GroupResourceRef>,
    /// External rules only: `false` drops the namespace matcher.
    #[serde(default)]
    pub namespaced: Option<bool>,
}

/// `{group: apps, resource: deployment}`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupResourceRef {
    #[serde(default)]
    pub group: String,
    pub resource: String,
}

/// `name`: how series names become API names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameMapping {
    #[serde(default)]
    pub matches: String,
    #[serde(default, rename = "as")]
    pub as_: String,
}

/// The short form: one metric, its query template and which labels name
/// which resources.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortMetric {
    /// The API name.
    pub name: String,
    /// As `metricsQuery`; `<<.Series>>` is the name.
    pub query: String,
    /// Label -> resource, such as `{namespace: namespace, pod: pod,
    /// deployment: deployments.apps}`.
    #[serde(default, deserialize_with = "null_default")]
    pub resources: BTreeMap<String, String>,
    /// Served by the external metrics API instead of the custom one.
    #[serde(default)]
    pub external: bool,
}

impl MetricsApiConfig {
    /// The compiled rules: this section's, then the adapter file's (read now).
    ///
    /// # Errors
    /// The adapter file cannot be read or parsed, or a rule is invalid; the
    /// message names the file or the rule.
    pub fn rule_set(&self) -> Result<RuleSet, String> {
        let mut custom = self.rules.clone();
        let mut external = self.external_rules.clone();
        if let Some(path) = &self.adapter_config_file {
            let file = load_adapter_file(Path::new(path))?;
            custom.extend(file.rules);
            external.extend(file.external_rules);
        }
        RuleSet::compile(&custom, &external, &self.metrics)
    }

    /// Compiles every rule. Errors start with `: `.
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.relist_interval.is_zero() {
            return Err(": metrics_api.relist_interval must be greater than 0".into());
        }
        if self.max_age.is_zero() {
            return Err(": metrics_api.max_age must be greater than 0".into());
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(": metrics_api.tls needs both cert_file and key_file, or neither".into());
        }
        self.authentication.validate()?;
        if let Some(authorization) = &self.authorization {
            if self.authentication.requestheader_client_ca_file.is_none()
                && self.authentication.client_ca_file.is_none()
                && !self.authentication.from_cluster
            {
                return Err(
                    ": metrics_api.authorization needs metrics_api.authentication (a CA \
                     or from_cluster): without it no request names a user to authorize"
                        .into(),
                );
            }
            if let Some(url) = authorization.api_server.as_deref() {
                url::Url::parse(url).map_err(|e| {
                    format!(": metrics_api.authorization.api_server {url:?} is not a URL: {e}")
                })?;
            }
            authorization
                .http_client_config()
                .validate()
                .map_err(|e| format!(": metrics_api.authorization: {e}"))?;
        }
        RuleSet::compile(&self.rules, &self.external_rules, &self.metrics)
            .map_err(|e| format!(": metrics_api: {e}"))?;
        Ok(())
    }

    pub(super) fn resolve_paths(&mut self, dir: &Path) {
        for file in [
            &mut self.adapter_config_file,
            &mut self.tls.cert_file,
            &mut self.tls.key_file,
            &mut self.authentication.requestheader_client_ca_file,
            &mut self.authentication.client_ca_file,
        ]
        .into_iter()
        .flatten()
        {
            join_dir(dir, file);
        }
        if let Some(authorization) = &mut self.authorization {
            if let Some(file) = &mut authorization.kubeconfig_file {
                join_dir(dir, file);
            }
            scraper::config::resolve_http_paths(
                dir,
                &mut authorization.tls_config,
                &mut authorization.bearer_token_file,
                &mut authorization.basic_auth,
                &mut authorization.authorization,
            );
        }
    }
}

/// Reads a prometheus-adapter config file.
///
/// # Errors
/// `path:line:column: message` for syntax and type errors.
pub fn load_adapter_file(path: &Path) -> Result<AdapterConfigFile, String> {
    let name = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading adapter config {name}: {e}"))?;
    parse_adapter_config(&text, &name.to_string())
}

/// Parses prometheus-adapter config text; `name` names it in errors.
///
/// # Errors
/// `name:line:column: message`.
pub fn parse_adapter_config(text: &str, name: &str) -> Result<AdapterConfigFile, String> {
    if text.trim().is_empty() {
        return Ok(AdapterConfigFile::default());
    }
    serde_yaml::from_str(text).map_err(|e| match scraper::config::yaml_error_parts(&e) {
        (Some((line, column)), message) => format!("{name}:{line}:{column}: {message}"),
        (None, message) => format!("{name}: {message}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(yaml: &str) -> Result<MetricsApiConfig, String> {
        let config: MetricsApiConfig = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn authorization_needs_an_authenticated_user() {
        let error = section("authorization: {}").unwrap_err();
        assert!(
            error.contains("needs metrics_api.authentication"),
            "{error}"
        );
        let config = section("{authentication: {from_cluster: true}, authorization: {}}").unwrap();
        let authorization = config.authorization.unwrap();
        assert_eq!(authorization.cache_authorized_ttl, Duration::from_secs(10));
        assert_eq!(
            authorization.cache_unauthorized_ttl,
            Duration::from_secs(10)
        );
        assert_eq!(authorization.always_allow_groups, ["system:masters"]);
        assert!(
            section(
                "{authentication: {client_ca_file: ca.crt}, authorization: {kubeconfig_file: kc, cache_authorized_ttl: 1m}}"
            )
            .is_ok()
        );
        let error = section(
            "{authentication: {from_cluster: true}, authorization: {api_server: 'not a url'}}",
        )
        .unwrap_err();
        assert!(error.contains("is not a URL"), "{error}");
        assert!(section("authorization: {nope: 1}").is_err());
    }
}
