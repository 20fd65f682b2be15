//! The recommender as a service runs it: a list of configured workloads, each with
//! a VPA model built once from history and then fed only the samples that arrived
//! since, an HPA history kept across refreshes, and a [`Report`] per refresh with
//! every recommended number, the current values and the explanations.
//!
//! Inputs come through a [`QueryBackend`] only ([`crate::controller::Source`]); the
//! caller drives the futures and picks the times (no clock, no runtime here). The
//! binary serves the report as `/api/v1/recommendations` and as
//! `sextant_recommendation_*` metrics, and prints it from `sextant recommend`.

pub mod checkpoint;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tsdb::model::TimeRange;
use tsdb::promql::QueryBackend;

use crate::controller::{
    ContainerRequests, Feed, FeedStats, PodRequests, Source, SourceOptions, WorkloadKind,
    WorkloadRef, queries,
};
use crate::explain::Explanation;
use crate::hpa::{self, History, MetricOutcome, TimestampedRecommendation};
use crate::model::{CPU, HorizontalPodAutoscalerSpec, MEMORY, MetricSource, PodResourcePolicy};
use crate::vpa::{self, Bound, Bounds, Resource};
use crate::{Error, Result};

/// One workload of the configuration's `autoscaler.workloads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    pub namespace: String,
    pub kind: WorkloadKind,
    pub name: String,
    /// An `autoscaling/v2` `HorizontalPodAutoscalerSpec` to evaluate; none: no HPA
    /// recommendation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa: Option<HorizontalPodAutoscalerSpec>,
    /// PromQL per metric name for the HPA's Pods, Object and External metrics (Pods
    /// queries return one series per `pod`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metric_queries: BTreeMap<String, String>,
    #[serde(default)]
    pub vpa: VpaSettings,
}

/// The VPA part of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpaSettings {
    /// Whether to recommend requests (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A VPA's `spec.resourcePolicy` (`containerPolicies` with `controlledResources`,
    /// `minAllowed`, `maxAllowed`, `mode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<PodResourcePolicy>,
}

fn yes() -> bool {
    true
}

impl Default for VpaSettings {
    fn default() -> Self {
        VpaSettings {
            enabled: true,
            resource_policy: None,
        }
    }
}

impl WorkloadSpec {
    pub fn workload(&self) -> WorkloadRef {
        WorkloadRef {
            namespace: self.namespace.clone(),
            kind: self.kind,
            name: self.name.clone(),
        }
    }

    /// The checks the configuration loader applies.
    ///
    /// # Errors
    /// A message naming the offending field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.namespace.is_empty() {
            return Err("namespace must not be empty".into());
        }
        if self.name.is_empty() {
            return Err("name must not be empty".into());
        }
        if let Some(hpa) = &self.hpa {
            hpa.validate().map_err(|e| format!("hpa: {e}"))?;
            for (i, metric) in hpa.metrics.iter().enumerate() {
                let name = match metric.source() {
                    Ok(MetricSource::Pods(p)) => &p.metric.name,
                    Ok(MetricSource::Object(o)) => &o.metric.name,
                    Ok(MetricSource::External(e)) => &e.metric.name,
                    _ => continue,
                };
                if !self.metric_queries.contains_key(name) {
                    return Err(format!(
                        "hpa.metrics[{i}]: metric {name:?} needs a PromQL query under metric_queries"
                    ));
                }
            }
        }
        for (name, query) in &self.metric_queries {
            if query.trim().is_empty() {
                return Err(format!("metric_queries.{name}: the query is empty"));
            }
        }
        if self.hpa.is_none() && !self.vpa.enabled {
            return Err("neither hpa nor vpa is enabled".into());
        }
        Ok(())
    }
}

/// How the recommender runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Options {
    pub source: SourceOptions,
    pub vpa: vpa::Options,
    pub hpa: hpa::Options,
}

/// A workload and the state kept across refreshes.
struct Tracked {
    spec: WorkloadSpec,
    model: Option<vpa::Workload>,
    /// The time of the newest step fed into the model.
    fed_until_ms: Option<i64>,
    /// The oldest step fed (the history start).
    fed_from_ms: Option<i64>,
    fed: FeedStats,
    history: History,
    hpa_seen: bool,
}

impl Tracked {
    fn new(spec: WorkloadSpec) -> Tracked {
        Tracked {
            spec,
            model: None,
            fed_until_ms: None,
            fed_from_ms: None,
            fed: FeedStats::default(),
            history: History::default(),
            hpa_seen: false,
        }
    }
}

/// Recommendations for a set of workloads, kept current by [`Recommender::refresh`].
pub struct Recommender {
    options: Options,
    tracked: Vec<Tracked>,
    /// Pods' requests from the Kubernetes API, preferred over kube-state-metrics.
    pod_requests: Option<PodRequests>,
    /// Usage samples fed into the VPA models by this recommender (not counting
    /// those behind restored checkpoints).
    samples_fed: u64,
}

/// What [`Recommender::restore_checkpoints`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restored {
    /// Workloads whose model was restored.
    pub workloads: usize,
    /// Checkpoints of workloads not in the list (or without VPA), left unused.
    pub unused: usize,
    /// Checkpoints that could not be loaded, with the reason; their workloads
    /// build their model from history.
    pub failed: Vec<String>,
}

impl Recommender {
    /// # Errors
    /// When the VPA options are invalid.
    pub fn new(workloads: Vec<WorkloadSpec>, options: Options) -> Result<Recommender> {
        vpa::Workload::new(options.vpa.clone())?;
        Ok(Recommender {
            options,
            tracked: workloads.into_iter().map(Tracked::new).collect(),
            pod_requests: None,
            samples_fed: 0,
        })
    }

    /// Usage samples (CPU plus memory) fed into the VPA models by this recommender
    /// since it was created; restored models count only what was fed after the
    /// restore.
    pub fn samples_fed(&self) -> u64 {
        self.samples_fed
    }

    fn checkpoint_header(&self, saved_ms: i64) -> checkpoint::Header {
        checkpoint::Header::new(
            &self.options.vpa,
            ms(self.options.source.vpa_step),
            saved_ms,
        )
    }

    /// Writes every workload's VPA model in the checkpoint format
    /// ([`checkpoint`]), for [`Recommender::restore_checkpoints`] after a restart.
    /// Returns how many workloads were written.
    ///
    /// # Errors
    /// What `out` returns.
    pub fn write_checkpoints(
        &self,
        out: impl std::io::Write,
        saved_ms: i64,
    ) -> std::io::Result<usize> {
        let records = self.tracked.iter().filter_map(|t| {
            let (Some(model), Some(fed_until_ms)) = (&t.model, t.fed_until_ms) else {
                return None;
            };
            Some(checkpoint::Record {
                workload: t.spec.workload(),
                fed_from_ms: t.fed_from_ms,
                fed_until_ms,
                cpu_samples: t.fed.cpu_samples,
                memory_samples: t.fed.memory_samples,
                dropped_samples: t.fed.dropped,
                model: model.save(),
            })
        });
        let count = self
            .tracked
            .iter()
            .filter(|t| t.model.is_some() && t.fed_until_ms.is_some())
            .count();
        checkpoint::write(out, &self.checkpoint_header(saved_ms), records)?;
        Ok(count)
    }

    /// Restores the models of a checkpoint file written by
    /// [`Recommender::write_checkpoints`] into the listed workloads that have no
    /// model yet: their next refresh feeds only the steps after the checkpoint's
    /// last one (at most `vpa_history` of them) instead of building from history.
    ///
    /// # Errors
    /// [`Error::InvalidCheckpoint`] when the file is damaged, of another version,
    /// or written for other decay settings: nothing is restored then.
    pub fn restore_checkpoints(&mut self, bytes: &[u8]) -> Result<Restored> {
        let (header, records) = checkpoint::read(bytes)?;
        header
            .compatible(&self.checkpoint_header(header.saved_ms))
            .map_err(Error::InvalidCheckpoint)?;
        let mut by_workload: HashMap<WorkloadRef, checkpoint::Record> = records
            .into_iter()
            .map(|r| (r.workload.clone(), r))
            .collect();
        let mut restored = Restored::default();
        for t in &mut self.tracked {
            if !t.spec.vpa.enabled || t.model.is_some() {
                continue;
            }
            let Some(record) = by_workload.remove(&t.spec.workload()) else {
                continue;
            };
            match vpa::Workload::load(self.options.vpa.clone(), &record.model) {
                Ok(model) => {
                    t.model = Some(model);
                    t.fed_until_ms = Some(record.fed_until_ms);
                    t.fed_from_ms = record.fed_from_ms;
                    t.fed = record.stats();
                    restored.workloads += 1;
                }
                Err(e) => restored.failed.push(format!("{}: {e}", record.workload)),
            }
        }
        restored.unused = by_workload.len();
        Ok(restored)
    }

    /// The pods' requests as the Kubernetes API reports them now, used by the
    /// following refreshes for the workloads whose pods it lists (the others, and
    /// all with `None`, read `kube_pod_container_resource_requests`).
    pub fn set_pod_requests(&mut self, requests: Option<PodRequests>) {
        self.pod_requests = requests;
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    pub fn workloads(&self) -> impl Iterator<Item = &WorkloadSpec> {
        self.tracked.iter().map(|t| &t.spec)
    }

    /// Replaces the workload list (a configuration reload), keeping the models and
    /// HPA histories of workloads whose spec did not change.
    pub fn set_workloads(&mut self, workloads: Vec<WorkloadSpec>) {
        let mut old: Vec<Option<Tracked>> = std::mem::take(&mut self.tracked)
            .into_iter()
            .map(Some)
            .collect();
        self.tracked = workloads
            .into_iter()
            .map(|spec| {
                old.iter_mut()
                    .find(|t| t.as_ref().is_some_and(|t| t.spec == spec))
                    .and_then(Option::take)
                    .unwrap_or_else(|| Tracked::new(spec))
            })
            .collect();
    }

    /// Brings every workload up to `now_ms` and recommends. The first refresh of a
    /// workload builds its VPA model from `source.vpa_history` of history; later ones
    /// feed only the steps after the last one fed. Failures are reported per
    /// workload, never for the whole report.
    pub async fn refresh<B: QueryBackend>(&mut self, backend: &B, now_ms: i64) -> Report {
        let source = Source::new(backend, self.options.source.clone());
        let (model_errors, fed) =
            update_models(&mut self.tracked, &source, &self.options, now_ms).await;
        self.samples_fed += fed;
        let mut prefetched = prefetch(&self.tracked, &source, now_ms).await.into_iter();
        let mut workloads = Vec::with_capacity(self.tracked.len());
        for (tracked, model_error) in self.tracked.iter_mut().zip(model_errors) {
            let api = self.pod_requests.as_ref();
            let inputs = prefetched.next().unwrap_or_default();
            workloads.push(
                refresh_one(
                    tracked,
                    &source,
                    &self.options,
                    now_ms,
                    model_error,
                    api,
                    inputs,
                )
                .await,
            );
        }
        Report {
            time_ms: now_ms,
            workloads,
        }
    }
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The resources whose requests a refresh reads.
const REQUESTED: [&str; 2] = [CPU, MEMORY];

/// What the refresh reads for every workload, queried for all of them at once.
#[derive(Debug, Default)]
struct Prefetched {
    spec_replicas: Option<std::result::Result<Option<f64>, String>>,
    /// The requests per container (kube-state-metrics) of cpu and of memory, in
    /// the order of `REQUESTED` (an array, not a map: one of these per workload
    /// is alive at the refresh's peak).
    requests: [Option<std::result::Result<BTreeMap<String, f64>, String>>; 2],
}

/// Each workload's replicas and, for those with VPA, its containers' requests:
/// one query per workload kind and one per resource for all workloads
/// ([`Source::spec_replicas_many`], [`Source::current_requests_many`]) instead of
/// three per workload, which is what dominated a refresh of thousands of them.
async fn prefetch<B: QueryBackend>(
    tracked: &[Tracked],
    source: &Source<'_, B>,
    now_ms: i64,
) -> Vec<Prefetched> {
    let mut out: Vec<Prefetched> = tracked.iter().map(|_| Prefetched::default()).collect();
    let all: Vec<WorkloadRef> = tracked.iter().map(|t| t.spec.workload()).collect();
    match source.spec_replicas_many(&all, now_ms).await {
        Ok(replicas) => {
            for (p, r) in out.iter_mut().zip(replicas) {
                p.spec_replicas = Some(Ok(r));
            }
        }
        Err(e) => {
            for p in &mut out {
                p.spec_replicas = Some(Err(e.to_string()));
            }
        }
    }
    let (with_vpa, vpa_workloads): (Vec<usize>, Vec<WorkloadRef>) = tracked
        .iter()
        .enumerate()
        .filter(|(_, t)| t.spec.vpa.enabled)
        .map(|(i, t)| (i, t.spec.workload()))
        .unzip();
    for (k, resource) in REQUESTED.into_iter().enumerate() {
        match source
            .current_requests_many(&vpa_workloads, resource, now_ms)
            .await
        {
            Ok(requests) => {
                for (&i, r) in with_vpa.iter().zip(requests) {
                    out[i].requests[k] = Some(Ok(r));
                }
            }
            Err(e) => {
                for &i in &with_vpa {
                    out[i].requests[k] = Some(Err(e.to_string()));
                }
            }
        }
    }
    out
}

async fn refresh_one<B: QueryBackend>(
    tracked: &mut Tracked,
    source: &Source<'_, B>,
    options: &Options,
    now_ms: i64,
    model_error: Option<String>,
    pod_requests: Option<&PodRequests>,
    mut prefetched: Prefetched,
) -> WorkloadRecommendation {
    let api_pods = pod_requests
        .map(|r| r.of(&tracked.spec.workload()))
        .filter(|pods| !pods.is_empty());
    let requests_from = api_pods.as_ref().map(|_| "kubernetes API".to_string());
    let workload = tracked.spec.workload();
    let mut errors = Vec::new();
    let mut queries_used = Vec::new();
    let current_replicas = match prefetched.spec_replicas.take().unwrap_or(Ok(None)) {
        Ok(r) => r.map(|r| r as i32),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    queries_used.push(queries::spec_replicas(&workload));

    let mut containers = Vec::new();
    if tracked.spec.vpa.enabled {
        queries_used.push(queries::cpu_usage(&workload, options.source.vpa_step));
        queries_used.push(queries::memory_working_set(&workload));
        errors.extend(model_error);
        let mut requests = BTreeMap::new();
        for (k, resource) in REQUESTED.into_iter().enumerate() {
            if let Some(pods) = &api_pods {
                requests.insert(resource, current_requests(pods, resource));
                continue;
            }
            queries_used.push(queries::requests(&workload, resource));
            match prefetched.requests[k].take().unwrap_or(Ok(BTreeMap::new())) {
                Ok(r) => {
                    requests.insert(resource, r);
                }
                Err(e) => errors.push(e),
            }
        }
        if let Some(model) = &tracked.model {
            let policy = tracked.spec.vpa.resource_policy.as_ref();
            let recs = model.recommend(policy);
            containers.reserve_exact(recs.len());
            for rec in recs {
                let request = |resource: &str| {
                    requests
                        .get(resource)
                        .and_then(|r| r.get(&rec.container_name))
                        .copied()
                };
                let (cpu, memory) = (request(CPU), request(MEMORY));
                containers.push(ContainerRecommendation {
                    cpu: rec.cpu.map(|b| ResourceRecommendation::new(b, cpu)),
                    memory: rec.memory.map(|b| ResourceRecommendation::new(b, memory)),
                    name: rec.container_name,
                });
            }
        }
    }

    let mut hpa_rec = None;
    if let Some(spec) = &tracked.spec.hpa {
        match source
            .hpa_observation_with_requests(
                &workload,
                spec,
                &tracked.spec.metric_queries,
                now_ms,
                api_pods.as_ref(),
            )
            .await
        {
            Ok(observation) => {
                if !tracked.hpa_seen {
                    // As the controller seeds its history when it first sees an HPA.
                    tracked
                        .history
                        .recommendations
                        .push(TimestampedRecommendation {
                            replicas: observation.spec_replicas,
                            t_ms: now_ms,
                        });
                    tracked.hpa_seen = true;
                }
                let rec = hpa::reconcile(
                    spec,
                    &observation,
                    &mut tracked.history,
                    now_ms,
                    &options.hpa,
                );
                hpa_rec = Some(HpaRecommendation::new(spec, &rec));
            }
            Err(e) => errors.push(format!("hpa: {e}")),
        }
        queries_used.extend(tracked.spec.metric_queries.values().cloned());
    }

    // The report is kept until the next refresh, for thousands of workloads:
    // without the slack `format!` and pushes leave (half the queries' bytes).
    for query in &mut queries_used {
        query.shrink_to_fit();
    }
    queries_used.shrink_to_fit();
    WorkloadRecommendation {
        namespace: workload.namespace.clone(),
        kind: workload.kind,
        name: workload.name.clone(),
        current_replicas,
        hpa: hpa_rec,
        containers,
        inputs: Inputs {
            history_start_ms: tracked.fed_from_ms,
            history_end_ms: tracked.fed_until_ms,
            cpu_samples: tracked.fed.cpu_samples,
            memory_samples: tracked.fed.memory_samples,
            dropped_samples: tracked.fed.dropped,
            queries: queries_used,
            requests_from,
        },
        errors,
    }
}

/// Brings the VPA model of every workload with VPA enabled up to `now_ms`: built
/// from `source.vpa_history` of history on the first call, then fed the steps
/// after the last one fed. Workloads needing the same range are fed together
/// ([`Source::feed_vpa_many`]: one query per resource and piece of time for all of
/// them), so a start-up over thousands of workloads runs few queries. A model
/// restored from a checkpoint older than `vpa_history` is fed the last
/// `vpa_history` only. Returns each workload's error, if its queries failed, and the
/// samples fed.
async fn update_models<B: QueryBackend>(
    tracked: &mut [Tracked],
    source: &Source<'_, B>,
    options: &Options,
    now_ms: i64,
) -> (Vec<Option<String>>, u64) {
    let mut errors = vec![None; tracked.len()];
    let mut fed = 0u64;
    let step_ms = ms(options.source.vpa_step).max(1);
    let history_start = now_ms.saturating_sub(ms(options.source.vpa_history));
    // The first step each workload needs -> the workloads needing it.
    let mut by_start: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, t) in tracked.iter().enumerate() {
        if !t.spec.vpa.enabled {
            continue;
        }
        let start = match t.fed_until_ms {
            Some(until) => until.saturating_add(step_ms).max(history_start),
            None => history_start,
        };
        if start <= now_ms {
            by_start.entry(start).or_default().push(i);
        }
    }
    for (start, indexes) in by_start {
        // The models stay in place while fed (borrowed, not taken), so that a
        // refresh dropped halfway (a shutdown) leaves every model in its workload,
        // ready to be checkpointed; the steps half fed are fed again next time and
        // the model drops the duplicates.
        let mut feeds: Vec<Feed<'_>> = Vec::with_capacity(indexes.len());
        let mut fed_indexes = Vec::with_capacity(indexes.len());
        let mut wanted = indexes.iter().copied().peekable();
        for (i, t) in tracked.iter_mut().enumerate() {
            if wanted.peek() != Some(&i) {
                continue;
            }
            wanted.next();
            if t.model.is_none() {
                match vpa::Workload::new(options.vpa.clone()) {
                    Ok(model) => t.model = Some(model),
                    Err(e) => errors[i] = Some(e.to_string()),
                }
            }
            let workload = t.spec.workload();
            if let Some(model) = t.model.as_mut() {
                let stats = FeedStats::default();
                fed_indexes.push(i);
                feeds.push(Feed {
                    workload,
                    model,
                    stats,
                });
            }
        }
        let outcome = source
            .feed_vpa_many(&mut feeds, TimeRange::new(start, now_ms))
            .await;
        let stats: Vec<FeedStats> = feeds.iter().map(|f| f.stats).collect();
        drop(feeds);
        for (i, stats) in fed_indexes.into_iter().zip(stats) {
            let t = &mut tracked[i];
            if let Some(model) = t.model.as_mut() {
                model.garbage_collect(now_ms);
            }
            match &outcome {
                Ok(()) => {
                    fed += (stats.cpu_samples + stats.memory_samples) as u64;
                    t.fed.add(stats);
                    t.fed_until_ms = Some(start + (now_ms - start) / step_ms * step_ms);
                    t.fed_from_ms.get_or_insert(start);
                }
                Err(e) => errors[i] = Some(e.to_string()),
            }
        }
    }
    (errors, fed)
}

/// Every workload's recommendation at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When the recommendations were computed, ms since the epoch.
    pub time_ms: i64,
    pub workloads: Vec<WorkloadRecommendation>,
}

/// One workload's recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadRecommendation {
    pub namespace: String,
    pub kind: WorkloadKind,
    pub name: String,
    /// `kube_<kind>_spec_replicas` now, if known.
    pub current_replicas: Option<i32>,
    /// Present when the workload has an HPA spec and it could be evaluated.
    pub hpa: Option<HpaRecommendation>,
    /// One entry per container with usage history (VPA).
    pub containers: Vec<ContainerRecommendation>,
    pub inputs: Inputs,
    /// What failed in this refresh (queries, missing data); other parts still count.
    pub errors: Vec<String>,
}

impl WorkloadRecommendation {
    pub fn workload(&self) -> WorkloadRef {
        WorkloadRef {
            namespace: self.namespace.clone(),
            kind: self.kind,
            name: self.name.clone(),
        }
    }
}

/// What a workload's recommendations were computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// The first and last step of usage history in the VPA model.
    pub history_start_ms: Option<i64>,
    pub history_end_ms: Option<i64>,
    pub cpu_samples: usize,
    pub memory_samples: usize,
    /// Samples the model refused (duplicates, out of order, negative).
    pub dropped_samples: usize,
    /// The PromQL the recommender ran for this workload.
    pub queries: Vec<String>,
    /// Where the current requests came from when not from kube-state-metrics:
    /// `kubernetes API` (the pods' specs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_from: Option<String>,
}

/// The largest request of `resource` per container over `pods`.
fn current_requests(
    pods: &BTreeMap<String, ContainerRequests>,
    resource: &str,
) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for containers in pods.values() {
        for (container, requests) in containers {
            if let Some(&v) = requests.get(resource) {
                let entry = out.entry(container.clone()).or_insert(v);
                *entry = entry.max(v);
            }
        }
    }
    out
}

/// The HPA's verdict on one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaRecommendation {
    /// The spec evaluated.
    pub spec: HorizontalPodAutoscalerSpec,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub current_replicas: i32,
    /// What the controller would scale to now.
    pub desired_replicas: i32,
    /// The largest proposal over the metrics, before stabilization and limits.
    pub proposal: Option<i32>,
    pub metrics: Vec<HpaMetric>,
    /// `ScalingActive`, `AbleToScale` and `ScalingLimited` as `reason: message`.
    pub conditions: Vec<String>,
    /// Set when some metrics failed.
    pub error: Option<String>,
    pub explanation: Explanation,
}

/// One HPA metric's proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaMetric {
    /// e.g. `resource cpu`.
    pub metric: String,
    pub replicas: Option<i32>,
    /// Current value over target.
    pub usage_ratio: Option<f64>,
    pub error: Option<String>,
    pub explanation: Option<Explanation>,
}

impl HpaRecommendation {
    fn new(spec: &HorizontalPodAutoscalerSpec, rec: &hpa::Recommendation) -> HpaRecommendation {
        let mut conditions = vec![
            format!(
                "AbleToScale={} {}: {}",
                rec.able_to_scale.status, rec.able_to_scale.reason, rec.able_to_scale.message
            ),
            format!(
                "ScalingActive={} {}: {}",
                rec.scaling_active.status, rec.scaling_active.reason, rec.scaling_active.message
            ),
        ];
        if let Some(c) = &rec.scaling_limited {
            conditions.push(format!(
                "ScalingLimited={} {}: {}",
                c.status, c.reason, c.message
            ));
        }
        HpaRecommendation {
            spec: spec.clone(),
            min_replicas: spec.min_replicas_or_default(),
            max_replicas: spec.max_replicas,
            current_replicas: rec.current_replicas,
            desired_replicas: rec.desired_replicas,
            proposal: rec.proposal,
            metrics: rec
                .metrics
                .iter()
                .map(|m| match &m.outcome {
                    MetricOutcome::Computed(c) => HpaMetric {
                        metric: m.metric.clone(),
                        replicas: Some(c.replicas),
                        usage_ratio: Some(c.usage_ratio).filter(|r| r.is_finite()),
                        error: None,
                        explanation: Some(c.explanation.clone()),
                    },
                    MetricOutcome::Failed(e) => HpaMetric {
                        metric: m.metric.clone(),
                        replicas: None,
                        usage_ratio: None,
                        error: Some(e.to_string()),
                        explanation: None,
                    },
                })
                .collect(),
            conditions,
            error: rec.error.clone(),
            explanation: rec.explanation.clone(),
        }
    }
}

/// One container's recommended requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecommendation {
    pub name: String,
    /// `None` when cpu is not a controlled resource.
    pub cpu: Option<ResourceRecommendation>,
    pub memory: Option<ResourceRecommendation>,
}

/// Current and recommended amounts of one resource, in cores (cpu) or bytes (memory),
/// plus the same as Kubernetes quantities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRecommendation {
    /// `core` or `byte`, as kube-state-metrics labels them.
    pub unit: String,
    /// The largest request among the pods now, if kube-state-metrics reports it.
    pub current_request: Option<f64>,
    pub lower_bound: f64,
    pub target: f64,
    pub upper_bound: f64,
    /// The target before the policy's minAllowed/maxAllowed.
    pub uncapped_target: f64,
    /// `lower_bound`, `target`, `upper_bound` (and `current_request`) as quantities.
    pub quantities: Quantities,
    /// Days of history behind the bounds.
    pub confidence: f64,
    /// Why each number: `lower_bound`, `target`, `upper_bound`.
    pub explanations: BoundExplanations,
}

/// The amounts of a [`ResourceRecommendation`] as Kubernetes quantities; in JSON an
/// object keyed `current_request` (when known), `lower_bound`, `target`,
/// `upper_bound`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_request: Option<String>,
    pub lower_bound: String,
    pub target: String,
    pub upper_bound: String,
}

impl Quantities {
    /// The quantity named as in JSON.
    pub fn get(&self, key: &str) -> Option<&String> {
        match key {
            "current_request" => self.current_request.as_ref(),
            "lower_bound" => Some(&self.lower_bound),
            "target" => Some(&self.target),
            "upper_bound" => Some(&self.upper_bound),
            _ => None,
        }
    }
}

/// The explanations of a [`ResourceRecommendation`]'s three numbers; in JSON an
/// object keyed `lower_bound`, `target`, `upper_bound`.
///
/// A refresh keeps the numbers the estimator chain started from (its
/// [`Bounds`]) and writes the text only when asked ([`BoundExplanations::get`],
/// serialisation): formatting 18 explanations per workload at every refresh of
/// thousands of workloads was most of the report's memory. Deserialised ones hold
/// the text.
#[derive(Debug, Clone)]
pub struct BoundExplanations(ExplanationSource);

#[derive(Debug, Clone)]
enum ExplanationSource {
    Derived(Box<Bounds>),
    Written(Box<WrittenExplanations>),
}

/// Field order as the keys sort: a map's order before these were structured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct WrittenExplanations {
    #[serde(default)]
    lower_bound: Explanation,
    #[serde(default)]
    target: Explanation,
    #[serde(default)]
    upper_bound: Explanation,
}

impl BoundExplanations {
    /// Explanations written out already.
    pub fn written(
        lower_bound: Explanation,
        target: Explanation,
        upper_bound: Explanation,
    ) -> BoundExplanations {
        BoundExplanations(ExplanationSource::Written(Box::new(WrittenExplanations {
            lower_bound,
            target,
            upper_bound,
        })))
    }

    /// The explanation of one number.
    pub fn explanation(&self, bound: Bound) -> Explanation {
        match &self.0 {
            ExplanationSource::Derived(bounds) => bounds.explanation(bound),
            ExplanationSource::Written(w) => match bound {
                Bound::Target => w.target.clone(),
                Bound::LowerBound => w.lower_bound.clone(),
                Bound::UpperBound => w.upper_bound.clone(),
            },
        }
    }

    /// The explanation named as in JSON: `lower_bound`, `target`, `upper_bound`.
    pub fn get(&self, key: &str) -> Option<Explanation> {
        [Bound::LowerBound, Bound::Target, Bound::UpperBound]
            .into_iter()
            .find(|b| b.key() == key)
            .map(|b| self.explanation(b))
    }

    fn write(&self) -> WrittenExplanations {
        WrittenExplanations {
            lower_bound: self.explanation(Bound::LowerBound),
            target: self.explanation(Bound::Target),
            upper_bound: self.explanation(Bound::UpperBound),
        }
    }
}

impl PartialEq for BoundExplanations {
    fn eq(&self, other: &BoundExplanations) -> bool {
        match (&self.0, &other.0) {
            (ExplanationSource::Derived(a), ExplanationSource::Derived(b)) => a == b,
            _ => self.write() == other.write(),
        }
    }
}

impl Serialize for BoundExplanations {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            ExplanationSource::Written(w) => w.serialize(serializer),
            ExplanationSource::Derived(_) => self.write().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for BoundExplanations {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WrittenExplanations::deserialize(deserializer)
            .map(|w| BoundExplanations(ExplanationSource::Written(Box::new(w))))
    }
}

impl ResourceRecommendation {
    fn new(bounds: Bounds, current_request: Option<f64>) -> ResourceRecommendation {
        let (unit, scale) = match bounds.resource {
            Resource::Cpu => ("core", 0.001),
            Resource::Memory => ("byte", 1.0),
        };
        let value = |amount: i64| amount as f64 * scale;
        let quantity = |amount: i64| bounds.resource.quantity(amount).to_string();
        let quantities = Quantities {
            current_request: current_request.map(|r| quantity((r / scale).round() as i64)),
            lower_bound: quantity(bounds.lower_bound.value),
            target: quantity(bounds.target.value),
            upper_bound: quantity(bounds.upper_bound.value),
        };
        ResourceRecommendation {
            unit: unit.to_string(),
            current_request,
            lower_bound: value(bounds.lower_bound.value),
            target: value(bounds.target.value),
            upper_bound: value(bounds.upper_bound.value),
            uncapped_target: value(bounds.uncapped_target),
            quantities,
            confidence: bounds.confidence,
            explanations: BoundExplanations(ExplanationSource::Derived(Box::new(bounds))),
        }
    }
}

/// Workloads found in kube-state-metrics series (every Deployment, StatefulSet and
/// DaemonSet with a replica series at `at_ms`), for running without a workload
/// list as KRR does: VPA recommendations only.
///
/// # Errors
/// [`Error::Query`] when a query fails.
pub async fn discover<B: QueryBackend>(backend: &B, at_ms: i64) -> Result<Vec<WorkloadSpec>> {
    let mut found = Vec::new();
    for (kind, metric, label) in [
        (
            WorkloadKind::Deployment,
            "kube_deployment_spec_replicas",
            "deployment",
        ),
        (
            WorkloadKind::StatefulSet,
            "kube_statefulset_replicas",
            "statefulset",
        ),
        (
            WorkloadKind::DaemonSet,
            "kube_daemonset_status_desired_number_scheduled",
            "daemonset",
        ),
    ] {
        let query = format!("max by (namespace, {label}) ({metric})");
        let value = match backend.instant(&query, at_ms).await {
            Ok(r) => r.value,
            Err(source) => return Err(Error::Query { query, source }),
        };
        if let tsdb::promql::Value::Vector(vector) = value {
            for sample in vector {
                let (Some(namespace), Some(name)) =
                    (sample.labels.get("namespace"), sample.labels.get(label))
                else {
                    continue;
                };
                found.push(WorkloadSpec {
                    namespace: namespace.to_string(),
                    kind,
                    name: name.to_string(),
                    hpa: None,
                    metric_queries: BTreeMap::new(),
                    vpa: VpaSettings::default(),
                });
            }
        }
    }
    found.sort_by(|a, b| {
        (&a.namespace, &a.name, a.kind as u8).cmp(&(&b.namespace, &b.name, b.kind as u8))
    });
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> WorkloadSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn workload_specs_are_validated() {
        let ok = spec(
            "{namespace: shop, kind: Deployment, name: web, hpa: {maxReplicas: 5, metrics: [{type: Pods, pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: 10}}}]}, metric_queries: {rps: 'sum by (pod) (rate(x[1m]))'}}",
        );
        assert_eq!(ok.validate(), Ok(()));
        assert!(ok.vpa.enabled);
        let mut missing = ok.clone();
        missing.metric_queries.clear();
        assert_eq!(
            missing.validate(),
            Err(r#"hpa.metrics[0]: metric "rps" needs a PromQL query under metric_queries"#.into())
        );
        let bad = spec(
            "{namespace: shop, kind: Deployment, name: web, hpa: {minReplicas: 3, maxReplicas: 2}}",
        );
        assert_eq!(
            bad.validate(),
            Err("hpa: invalid spec field minReplicas: must be less than or equal to maxReplicas (2)".into())
        );
        let off = spec("{namespace: a, kind: StatefulSet, name: db, vpa: {enabled: false}}");
        assert_eq!(off.validate(), Err("neither hpa nor vpa is enabled".into()));
        let policy = spec(
            "{namespace: a, kind: StatefulSet, name: db, vpa: {resource_policy: {containerPolicies: [{containerName: '*', controlledResources: [memory], maxAllowed: {memory: 1Gi}}]}}}",
        );
        assert_eq!(policy.validate(), Ok(()));
        assert!(
            serde_yaml::from_str::<WorkloadSpec>("{namespace: a, kind: Pod, name: x}").is_err()
        );
    }
}
