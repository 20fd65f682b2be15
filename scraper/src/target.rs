//! Scrape targets: building a target's labels from discovered labels and its
//! scrape config, relabeling them, and deriving the scrape URL, as
//! Prometheus's `PopulateLabels` and `TargetsFromGroup` do.
//!
//! Discovered labels are the group's labels under the target's own, plus
//! `job`, `__scheme__`, `__metrics_path__`, `__scrape_interval__`,
//! `__scrape_timeout__` and `__param_<name>` from the config where discovery
//! did not set them. After `relabel_configs`, `__meta_*` labels are removed
//! and `instance` defaults to `__address__`. A target that relabeling drops
//! (or that fails a check) is kept as a [`DroppedTarget`] with its discovered
//! labels for the targets API.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tsdb::model::{Label, Labels, LabelsBuilder};

use crate::config::{ScrapeConfig, format_duration, parse_duration};
use crate::discovery::TargetGroup;
use crate::relabel::{self, Keep};

pub const ADDRESS_LABEL: &str = "__address__";
pub const SCHEME_LABEL: &str = "__scheme__";
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
pub const PARAM_LABEL_PREFIX: &str = "__param_";
pub const META_LABEL_PREFIX: &str = "__meta_";
/// Labels starting with this are internal: never attached to scraped series.
pub const RESERVED_LABEL_PREFIX: &str = "__";
pub const JOB_LABEL: &str = "job";
pub const INSTANCE_LABEL: &str = "instance";

/// Why a discovered target cannot be scraped (Prometheus's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("no address")]
    NoAddress,
    #[error("{0:?} is not a valid hostname")]
    InvalidAddress(String),
    #[error("error parsing scrape interval: {0}")]
    InvalidInterval(String),
    #[error("scrape interval cannot be 0")]
    ZeroInterval,
    #[error("error parsing scrape timeout: {0}")]
    InvalidTimeout(String),
    #[error("scrape timeout cannot be 0")]
    ZeroTimeout,
    #[error("scrape timeout cannot be greater than scrape interval ({timeout:?} > {interval:?})")]
    TimeoutExceedsInterval { timeout: String, interval: String },
    #[error("invalid scrape URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

/// A target of a group that failed a check; it is also listed as dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance {index} in group {source_name}: {error}")]
pub struct TargetFailure {
    /// The group's source.
    pub source_name: String,
    /// The target's position in the group.
    pub index: usize,
    #[source]
    pub error: TargetError,
}

/// A target to scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    labels: Labels,
    discovered_labels: Labels,
    url: url::Url,
    interval: Duration,
    timeout: Duration,
}

impl Target {
    /// The labels after relabeling, reserved (`__*`) labels included.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The labels before relabeling (the targets API's `discoveredLabels`).
    pub fn discovered_labels(&self) -> &Labels {
        &self.discovered_labels
    }

    /// The labels attached to every scraped series: [`Target::labels`]
    /// without the reserved `__*` ones.
    pub fn series_labels(&self) -> Labels {
        self.labels
            .builder()
            .retain(|l| !l.name.starts_with(RESERVED_LABEL_PREFIX))
            .build()
    }

    /// The scrape URL: `__scheme__://__address____metrics_path__?params`.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// `__scrape_interval__`, as relabeling left it.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// `__scrape_timeout__`, as relabeling left it.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn job(&self) -> &str {
        self.labels.get(JOB_LABEL).unwrap_or("")
    }

    pub fn instance(&self) -> &str {
        self.labels.get(INSTANCE_LABEL).unwrap_or("")
    }

    /// A stable identity of the target (labels and URL), for de-duplicating
    /// targets and deriving a per-target scrape offset.
    pub fn hash(&self) -> u64 {
        let mut hasher = Fnv1a::default();
        self.labels.hash(&mut hasher);
        self.url.as_str().hash(&mut hasher);
        hasher.finish()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// FNV-1a: fixed across runs and platforms, unlike the std hasher.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A target that relabeling dropped or that failed a check.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedTarget {
    pub discovered_labels: Labels,
}

/// The targets one group yields under one scrape config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupTargets {
    pub active: Vec<Target>,
    pub dropped: Vec<DroppedTarget>,
    pub failures: Vec<TargetFailure>,
}

/// Builds the targets of a discovered group under a scrape config (whose
/// defaults have been applied).
pub fn targets_from_group(group: &TargetGroup, config: &ScrapeConfig) -> GroupTargets {
    let mut out = GroupTargets::default();
    for (index, target_labels) in group.targets.iter().enumerate() {
        let discovered = discovered_labels(target_labels, &group.labels, config);
        match build_target(discovered, config) {
            Ok(Ok(target)) => out.active.push(target),
            Ok(Err(dropped)) => out.dropped.push(dropped),
            Err((dropped, error)) => {
                out.dropped.push(dropped);
                out.failures.push(TargetFailure {
                    source_name: group.source.clone(),
                    index,
                    error,
                });
            }
        }
    }
    out
}

/// The labels of a target before relabeling: its own labels, then the
/// group's, then the config's scrape settings where none of those set them.
pub fn discovered_labels(target: &Labels, group: &Labels, config: &ScrapeConfig) -> Labels {
    let mut builder = target.builder();
    for label in group {
        if target.get(&label.name).is_none() {
            builder.set_mut(label.name.clone(), label.value.clone());
        }
    }
    let interval = format_duration(config.interval());
    let timeout = format_duration(config.timeout());
    let defaults: [(&str, &str); 5] = [
        (JOB_LABEL, &config.job_name),
        (SCRAPE_INTERVAL_LABEL, &interval),
        (SCRAPE_TIMEOUT_LABEL, &timeout),
        (METRICS_PATH_LABEL, &config.metrics_path),
        (SCHEME_LABEL, config.scheme.as_str()),
    ];
    for (name, value) in defaults {
        if builder.get(name).unwrap_or("").is_empty() {
            builder.set_mut(name, value);
        }
    }
    for (name, values) in &config.params {
        let label = format!("{PARAM_LABEL_PREFIX}{name}");
        if let Some(first) = values.first()
            && builder.get(&label).unwrap_or("").is_empty()
        {
            builder.set_mut(label, first.as_str());
        }
    }
    builder.build()
}

type Built = Result<Result<Target, DroppedTarget>, (DroppedTarget, TargetError)>;

/// Relabels discovered labels into a target: `Ok(Ok)` active, `Ok(Err)`
/// dropped by relabeling, `Err` failed a check.
fn build_target(discovered: Labels, config: &ScrapeConfig) -> Built {
    let mut builder = discovered.builder();
    if relabel::process_builder(&mut builder, &config.relabel_configs) == Keep::Drop {
        return Ok(Err(DroppedTarget {
            discovered_labels: discovered,
        }));
    }
    match finish_target(builder, &discovered, config) {
        Ok(target) => Ok(Ok(target)),
        Err(error) => Err((
            DroppedTarget {
                discovered_labels: discovered,
            },
            error,
        )),
    }
}

fn finish_target(
    builder: LabelsBuilder,
    discovered: &Labels,
    config: &ScrapeConfig,
) -> Result<Target, TargetError> {
    let relabeled = builder.build();
    let address = relabeled.get(ADDRESS_LABEL).unwrap_or("");
    if address.is_empty() {
        return Err(TargetError::NoAddress);
    }
    if address.contains('/') {
        return Err(TargetError::InvalidAddress(address.to_string()));
    }
    let interval_text = relabeled.get(SCRAPE_INTERVAL_LABEL).unwrap_or("");
    let interval = parse_duration(interval_text).map_err(TargetError::InvalidInterval)?;
    if interval.is_zero() {
        return Err(TargetError::ZeroInterval);
    }
    let timeout_text = relabeled.get(SCRAPE_TIMEOUT_LABEL).unwrap_or("");
    let timeout = parse_duration(timeout_text).map_err(TargetError::InvalidTimeout)?;
    if timeout.is_zero() {
        return Err(TargetError::ZeroTimeout);
    }
    if timeout > interval {
        return Err(TargetError::TimeoutExceedsInterval {
            timeout: timeout_text.to_string(),
            interval: interval_text.to_string(),
        });
    }
    let address: Arc<str> = Arc::from(address);
    // Meta labels are gone after relabeling; instance defaults to the address.
    let mut labels: Vec<Label> = relabeled
        .iter()
        .filter(|l| !l.name.starts_with(META_LABEL_PREFIX))
        .cloned()
        .collect();
    if relabeled.get(INSTANCE_LABEL).unwrap_or("").is_empty() {
        labels.push(Label::new(INSTANCE_LABEL, address.clone()));
    }
    let labels = Labels::new(labels);
    let url = scrape_url(&labels, config)?;
    Ok(Target {
        labels,
        discovered_labels: discovered.clone(),
        url,
        interval,
        timeout,
    })
}

/// The scrape URL from the target's labels: the config's `params`, where a
/// `__param_<name>` label replaces the first value of `<name>`.
fn scrape_url(labels: &Labels, config: &ScrapeConfig) -> Result<url::Url, TargetError> {
    let scheme = labels.get(SCHEME_LABEL).unwrap_or("");
    let address = labels.get(ADDRESS_LABEL).unwrap_or("");
    let path = labels.get(METRICS_PATH_LABEL).unwrap_or("");
    let mut params = config.params.clone();
    for label in labels {
        if let Some(name) = label.name.strip_prefix(PARAM_LABEL_PREFIX) {
            let values = params.entry(name.to_string()).or_default();
            match values.first_mut() {
                Some(first) => *first = label.value.to_string(),
                None => values.push(label.value.to_string()),
            }
        }
    }
    let text = format!("{scheme}://{address}");
    let invalid = |reason: String| TargetError::InvalidUrl {
        url: format!("{text}{path}"),
        reason,
    };
    let mut url = url::Url::parse(&text).map_err(|e| invalid(e.to_string()))?;
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(invalid("no host".to_string()));
    }
    url.set_path(path);
    if !params.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, values) in &params {
            for value in values {
                query.append_pair(name, value);
            }
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScrapeDefaults;

    fn config(yaml: &str) -> ScrapeConfig {
        let mut config: ScrapeConfig = serde_yaml::from_str(yaml).unwrap();
        config.apply_defaults(&ScrapeDefaults::default()).unwrap();
        config
    }

    fn group(targets: &[&[(&str, &str)]], labels: &[(&str, &str)]) -> TargetGroup {
        TargetGroup {
            source: "test".to_string(),
            targets: targets.iter().map(|t| Labels::from_pairs(t)).collect(),
            labels: Labels::from_pairs(labels),
        }
    }

    #[test]
    fn discovered_labels_get_config_defaults() {
        let config =
            config("{job_name: node, scrape_interval: 15s, params: {module: [http_2xx, x]}}");
        let got = discovered_labels(
            &Labels::from_pairs(&[("__address__", "h:9100"), ("env", "own")]),
            &Labels::from_pairs(&[("env", "group"), ("dc", "eu")]),
            &config,
        );
        assert_eq!(
            got.to_string(),
            r#"{__address__="h:9100", __metrics_path__="/metrics", __param_module="http_2xx", __scheme__="http", __scrape_interval__="15s", __scrape_timeout__="10s", dc="eu", env="own", job="node"}"#
        );
    }

    #[test]
    fn active_target_labels_and_url() {
        let config = config(
            r#"
job_name: blackbox
params: {module: [http_2xx]}
relabel_configs:
  - {source_labels: [__address__], target_label: __param_target}
  - {source_labels: [__param_target], target_label: instance}
  - {target_label: __address__, replacement: '127.0.0.1:9115'}
  - {source_labels: [__meta_x], target_label: x}
"#,
        );
        let built = targets_from_group(
            &group(
                &[&[("__address__", "example.com"), ("__meta_x", "meta")]],
                &[],
            ),
            &config,
        );
        assert!(built.failures.is_empty(), "{:?}", built.failures);
        let target = &built.active[0];
        assert_eq!(
            target.url().as_str(),
            "http://127.0.0.1:9115/metrics?module=http_2xx&target=example.com"
        );
        assert_eq!(
            target.series_labels().to_string(),
            r#"{instance="example.com", job="blackbox", x="meta"}"#
        );
        assert_eq!(target.labels().get("__meta_x"), None);
        assert_eq!(target.discovered_labels().get("__meta_x"), Some("meta"));
        assert_eq!(target.interval(), Duration::from_secs(60));
        assert_eq!(target.timeout(), Duration::from_secs(10));
        assert_eq!(target.job(), "blackbox");
        assert_eq!(target.instance(), "example.com");
    }

    #[test]
    fn instance_defaults_to_address_and_relabeling_may_change_settings() {
        let config = config(
            r#"
job_name: j
relabel_configs:
  - {source_labels: [__meta_path], target_label: __metrics_path__}
  - {target_label: __scheme__, replacement: https}
  - {target_label: __scrape_interval__, replacement: 30s}
  - {target_label: __scrape_timeout__, replacement: 5s}
"#,
        );
        let built = targets_from_group(
            &group(
                &[&[("__address__", "[::1]:9100"), ("__meta_path", "/probe")]],
                &[],
            ),
            &config,
        );
        let target = &built.active[0];
        assert_eq!(target.url().as_str(), "https://[::1]:9100/probe");
        assert_eq!(target.instance(), "[::1]:9100");
        assert_eq!(target.interval(), Duration::from_secs(30));
        assert_eq!(target.timeout(), Duration::from_secs(5));
        assert_eq!(target.labels().get("__scrape_interval__"), Some("30s"));
    }

    #[test]
    fn dropped_and_failed_targets_keep_discovered_labels() {
        let config = config(
            r#"
job_name: j
relabel_configs:
  - {source_labels: [drop], regex: 'yes', action: drop}
  - {source_labels: [timeout], regex: '(.+)', target_label: __scrape_timeout__}
"#,
        );
        let built = targets_from_group(
            &group(
                &[
                    &[("__address__", "a:1"), ("drop", "yes")],
                    &[("drop", "no")],
                    &[("__address__", "http://a:1/metrics")],
                    &[("__address__", "b:1"), ("timeout", "2m")],
                    &[("__address__", "c:1"), ("timeout", "bad")],
                    &[("__address__", "d:1")],
                ],
                &[("group", "g")],
            ),
            &config,
        );
        assert_eq!(built.active.len(), 1);
        assert_eq!(built.active[0].instance(), "d:1");
        assert_eq!(built.dropped.len(), 5);
        assert_eq!(built.dropped[0].discovered_labels.get("drop"), Some("yes"));
        assert_eq!(built.dropped[0].discovered_labels.get("job"), Some("j"));
        assert_eq!(built.dropped[0].discovered_labels.get("group"), Some("g"));
        let messages: Vec<String> = built.failures.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "instance 1 in group test: no address",
                r#"instance 2 in group test: "http://a:1/metrics" is not a valid hostname"#,
                r#"instance 3 in group test: scrape timeout cannot be greater than scrape interval ("2m" > "1m")"#,
                r#"instance 4 in group test: error parsing scrape timeout: not a valid duration string: "bad""#,
            ]
        );
    }

    #[test]
    fn param_labels_override_the_first_config_value() {
        let config = config(
            "{job_name: j, params: {a: ['1', '2'], 'b c': ['x y']}, relabel_configs: [{target_label: __param_a, replacement: '9'}]}",
        );
        let built = targets_from_group(&group(&[&[("__address__", "h:1")]], &[]), &config);
        assert_eq!(
            built.active[0].url().as_str(),
            "http://h:1/metrics?a=9&a=2&b+c=x+y"
        );
    }

    #[test]
    fn hash_is_stable_and_distinguishes_targets() {
        let config = config("{job_name: j}");
        let built = targets_from_group(
            &group(
                &[
                    &[("__address__", "h:1")],
                    &[("__address__", "h:2")],
                    &[("__address__", "h:1")],
                ],
                &[],
            ),
            &config,
        );
        let hashes: Vec<u64> = built.active.iter().map(Target::hash).collect();
        assert_eq!(hashes[0], hashes[2]);
        assert_ne!(hashes[0], hashes[1]);
    }
}
