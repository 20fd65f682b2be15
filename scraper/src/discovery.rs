//! Service discovery: the mechanisms that produce [`TargetGroup`]s for a
//! scrape config (static lists, files, HTTP endpoints, the Kubernetes API).
//!
//! A target group is a set of targets (label sets holding at least
//! `__address__`) sharing common labels, identified by a `source` string
//! unique within its mechanism. A mechanism reports a group again whenever it
//! changes; a group with no targets removes the targets its source had.

pub mod file;
pub mod http;
pub mod kubernetes;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tsdb::model::{Label, Labels};

use crate::config::{FileSdConfig, HttpSdConfig, KubernetesSdConfig, ScrapeConfig, StaticConfig};
use crate::target::ADDRESS_LABEL;

/// Targets sharing labels, from one source of one mechanism.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TargetGroup {
    /// Identifies the group within its mechanism (a file name and index, a
    /// URL and index, a Kubernetes object).
    pub source: String,
    /// One label set per target; `__address__` is the address to scrape.
    pub targets: Vec<Labels>,
    /// Labels of every target in the group, under the targets' own.
    pub labels: Labels,
}

/// The groups of `static_configs`, with Prometheus's sources `"0"`, `"1"`, ...
pub fn static_groups(configs: &[StaticConfig]) -> Vec<TargetGroup> {
    configs
        .iter()
        .enumerate()
        .map(|(i, config)| TargetGroup {
            source: i.to_string(),
            targets: config
                .targets
                .iter()
                .map(|address| Labels::new(vec![Label::new(ADDRESS_LABEL, address.as_str())]))
                .collect(),
            labels: Labels::new(
                config
                    .labels
                    .iter()
                    .map(|(name, value)| Label::new(name.as_str(), value.as_str()))
                    .collect(),
            ),
        })
        .collect()
}

/// One target group as file and HTTP discovery serve it:
/// `{"targets": ["host:port", ...], "labels": {"name": "value", ...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct TargetGroupDocument {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

impl TargetGroupDocument {
    /// The group with `source`, plus `extra` labels (such as `__meta_filepath`).
    pub(crate) fn into_group(
        self,
        source: String,
        extra: (&str, &str),
    ) -> Result<TargetGroup, String> {
        let mut labels = Vec::new();
        for (name, value) in self.labels.unwrap_or_default() {
            if name.is_empty() {
                return Err(format!("{name:?} is not a valid label name"));
            }
            labels.push(Label::new(name, value));
        }
        labels.push(Label::new(extra.0, extra.1));
        Ok(TargetGroup {
            source,
            targets: self
                .targets
                .into_iter()
                .map(|address| Labels::new(vec![Label::new(ADDRESS_LABEL, address)]))
                .collect(),
            labels: Labels::new(labels),
        })
    }
}

/// Why a discovery refresh failed; the mechanism keeps its last targets.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("reading {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    ParseFile { path: String, message: String },
    #[error("building the HTTP client: {0}")]
    HttpClient(#[from] crate::config::HttpClientError),
    #[error("fetching {url}: {source}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: server returned HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: unsupported content type {content_type:?}")]
    ContentType { url: String, content_type: String },
    #[error("{url}: {message}")]
    Decode { url: String, message: String },
}

/// The latest target groups of every job, as published by [`Manager`].
/// Unchanged jobs share their group lists between snapshots.
pub type TargetSets = BTreeMap<String, Arc<Vec<TargetGroup>>>;

/// A dynamic discovery mechanism of one scrape config (static groups need
/// no task and are published directly).
#[derive(Debug, Clone, PartialEq)]
enum Mechanism {
    File(FileSdConfig),
    Http(HttpSdConfig),
    Kubernetes(KubernetesSdConfig),
}

/// Where a running mechanism reports changed groups.
#[derive(Clone)]
pub struct GroupSink {
    shared: Arc<Mutex<Groups>>,
    sender: Arc<watch::Sender<Arc<TargetSets>>>,
    job: String,
    provider: u64,
}

/// Groups by job, then provider, then source.
type Groups = BTreeMap<String, BTreeMap<u64, BTreeMap<String, TargetGroup>>>;

impl GroupSink {
    /// Records changed groups (a group without targets removes its source)
    /// and publishes a new snapshot.
    pub fn update(&self, groups: Vec<TargetGroup>) {
        let mut shared = self.shared.lock();
        let by_source = shared
            .entry(self.job.clone())
            .or_default()
            .entry(self.provider)
            .or_default();
        for group in groups {
            if group.targets.is_empty() {
                by_source.remove(&group.source);
            } else {
                by_source.insert(group.source.clone(), group);
            }
        }
        publish_job(&shared, &self.sender, &self.job);
    }
}

/// Rebuilds one job's group list in the published snapshot.
fn publish_job(shared: &Groups, sender: &watch::Sender<Arc<TargetSets>>, job: &str) {
    let groups: Vec<TargetGroup> = shared
        .get(job)
        .into_iter()
        .flat_map(|providers| providers.values())
        .flat_map(|sources| sources.values().cloned())
        .collect();
    sender.send_modify(|sets| {
        let mut next = TargetSets::clone(sets);
        next.insert(job.to_string(), Arc::new(groups));
        *sets = Arc::new(next);
    });
}

struct Provider {
    job: String,
    mechanism: Mechanism,
    id: u64,
    task: JoinHandle<()>,
}

/// Runs the discovery mechanisms of every scrape config and publishes the
/// current target groups per job through a watch channel, as Prometheus's
/// discovery manager does. Static groups are published at once by
/// [`Manager::apply_config`]; the others as their tasks report.
///
/// On reload, a mechanism whose job and config are unchanged keeps running
/// and keeps its groups; the others are stopped and their groups removed.
pub struct Manager {
    shared: Arc<Mutex<Groups>>,
    sender: Arc<watch::Sender<Arc<TargetSets>>>,
    providers: Vec<Provider>,
    next_id: u64,
}

/// The provider id under which a job's static groups are kept.
const STATIC_PROVIDER: u64 = 0;

impl Default for Manager {
    fn default() -> Self {
        Manager::new()
    }
}

impl Manager {
    pub fn new() -> Manager {
        let (sender, _) = watch::channel(Arc::new(TargetSets::new()));
        Manager {
            shared: Arc::new(Mutex::new(Groups::new())),
            sender: Arc::new(sender),
            providers: Vec::new(),
            next_id: STATIC_PROVIDER + 1,
        }
    }

    /// A receiver of the snapshots; it sees the current one at once.
    pub fn subscribe(&self) -> watch::Receiver<Arc<TargetSets>> {
        self.sender.subscribe()
    }

    /// The current snapshot.
    pub fn target_sets(&self) -> Arc<TargetSets> {
        self.sender.borrow().clone()
    }

    /// Starts, keeps or stops mechanisms so that exactly those of `configs`
    /// run. Must be called inside a tokio runtime.
    pub fn apply_config(&mut self, configs: &[ScrapeConfig]) {
        let mut wanted: Vec<(String, Mechanism)> = Vec::new();
        for config in configs {
            let sd = config.service_discovery_configs();
            for unsupported in &sd.unsupported {
                tracing::warn!(job = %config.job_name, mechanism = unsupported, "Service discovery mechanism is not supported; it yields no targets");
            }
            wanted.extend(
                sd.file_sd_configs
                    .into_iter()
                    .map(|c| (config.job_name.clone(), Mechanism::File(c))),
            );
            wanted.extend(
                sd.http_sd_configs
                    .into_iter()
                    .map(|c| (config.job_name.clone(), Mechanism::Http(c))),
            );
            wanted.extend(
                sd.kubernetes_sd_configs
                    .into_iter()
                    .map(|c| (config.job_name.clone(), Mechanism::Kubernetes(c))),
            );
        }

        let mut shared = self.shared.lock();
        // Stop providers no longer wanted (each kept one consumes its match).
        let mut kept = Vec::new();
        for provider in std::mem::take(&mut self.providers) {
            let position = wanted.iter().position(|(job, mechanism)| {
                *job == provider.job && *mechanism == provider.mechanism
            });
            match position {
                Some(i) => {
                    wanted.remove(i);
                    kept.push(provider);
                }
                None => {
                    provider.task.abort();
                    if let Some(job) = shared.get_mut(&provider.job) {
                        job.remove(&provider.id);
                    }
                }
            }
        }
        self.providers = kept;

        // Jobs that are gone disappear from the snapshot; static groups are replaced.
        let jobs: BTreeMap<&str, &ScrapeConfig> =
            configs.iter().map(|c| (c.job_name.as_str(), c)).collect();
        shared.retain(|job, _| jobs.contains_key(job.as_str()));
        for (job, config) in &jobs {
            let groups = static_groups(&config.static_configs);
            let by_provider = shared.entry(job.to_string()).or_default();
            by_provider.insert(
                STATIC_PROVIDER,
                groups.into_iter().map(|g| (g.source.clone(), g)).collect(),
            );
        }
        self.sender.send_modify(|sets| {
            *sets = Arc::new(TargetSets::new());
        });
        for job in jobs.keys() {
            publish_job(&shared, &self.sender, job);
        }
        drop(shared);

        for (job, mechanism) in wanted {
            let id = self.next_id;
            self.next_id += 1;
            let sink = GroupSink {
                shared: self.shared.clone(),
                sender: self.sender.clone(),
                job: job.clone(),
                provider: id,
            };
            let task = match mechanism.clone() {
                Mechanism::File(config) => {
                    tokio::spawn(file::FileDiscoverer::new(config).run(sink))
                }
                Mechanism::Http(config) => tokio::spawn(http::HttpDiscoverer::run(config, sink)),
                Mechanism::Kubernetes(config) => tokio::spawn(kubernetes::run(config, sink)),
            };
            self.providers.push(Provider {
                job,
                mechanism,
                id,
                task,
            });
        }
    }

    /// Stops every mechanism.
    pub fn stop(&mut self) {
        for provider in self.providers.drain(..) {
            provider.task.abort();
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_groups_are_numbered() {
        let configs: Vec<StaticConfig> = serde_yaml::from_str(
            "[{targets: ['a:1', 'b:2'], labels: {env: prod}}, {targets: ['c:3']}]",
        )
        .unwrap();
        let groups = static_groups(&configs);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].source, "0");
        assert_eq!(groups[1].source, "1");
        assert_eq!(groups[0].targets[1].to_string(), r#"{__address__="b:2"}"#);
        assert_eq!(groups[0].labels.to_string(), r#"{env="prod"}"#);
        assert!(groups[1].labels.is_empty());
    }
}
