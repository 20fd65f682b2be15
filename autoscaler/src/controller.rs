//! Inputs for the pure recommenders, read through a [`QueryBackend`] (Sextant's own
//! engine or any Prometheus-compatible server) from the series a cluster already
//! exposes: cAdvisor and kube-state-metrics, plus PromQL for custom metrics. No
//! Kubernetes API access is needed.
//!
//! - [`queries`]: the PromQL text.
//! - [`decode`]: query results into VPA samples, pods and HPA readings (pure).
//! - [`Source`]: runs the queries for one workload: a VPA model built from history,
//!   and what the HPA controller would observe at one time.
//!
//! This is the only part of the crate besides the binary's wiring that does IO, and
//! only through the backend; it holds no runtime of its own (the futures are driven
//! by the caller).

pub mod decode;
pub mod queries;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tsdb::model::TimeRange;
use tsdb::promql::{QueryBackend, Value};

use crate::hpa::{MetricReading, Observation};
use crate::model::{HorizontalPodAutoscalerSpec, MetricSource};
use crate::vpa::Resource;
use crate::{Error, Result, vpa};

pub use decode::FeedStats;

/// The kinds of workload whose pods can be found by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
}

/// A workload the recommender follows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub namespace: String,
    pub kind: WorkloadKind,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The characters Kubernetes uses in generated name suffixes (`SafeEncodeString`).
const GENERATED: &str = "[bcdfghjklmnpqrstvwxz2456789]";

impl WorkloadRef {
    /// A regex (anchored by PromQL) matching the names of the workload's pods:
    /// `name-<template hash>-<5>` for a Deployment, `name-<ordinal>` for a
    /// StatefulSet, `name-<5>` for a DaemonSet or ReplicaSet.
    pub fn pod_regex(&self) -> String {
        let name = regex_escape(&self.name);
        match self.kind {
            WorkloadKind::Deployment => format!("{name}-{GENERATED}{{1,10}}-{GENERATED}{{5}}"),
            WorkloadKind::StatefulSet => format!("{name}-[0-9]+"),
            WorkloadKind::DaemonSet | WorkloadKind::ReplicaSet => {
                format!("{name}-{GENERATED}{{5}}")
            }
        }
    }
}

impl WorkloadRef {
    /// Whether `pod` is named as this workload's pods are: the test of
    /// [`WorkloadRef::pod_regex`], without a regex (for mapping the series of a
    /// query over many workloads back to their workloads).
    pub fn owns_pod(&self, pod: &str) -> bool {
        let Some(suffix) = pod
            .strip_prefix(self.name.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
        else {
            return false;
        };
        let generated = |part: &str, min: usize, max: usize| {
            (min..=max).contains(&part.len()) && part.bytes().all(|b| GENERATED_BYTES.contains(&b))
        };
        match self.kind {
            WorkloadKind::Deployment => suffix
                .split_once('-')
                .is_some_and(|(hash, id)| generated(hash, 1, 10) && generated(id, 5, 5)),
            WorkloadKind::StatefulSet => {
                !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
            }
            WorkloadKind::DaemonSet | WorkloadKind::ReplicaSet => generated(suffix, 5, 5),
        }
    }
}

/// One pod's requests: container -> resource name -> amount (cores for cpu, bytes
/// otherwise).
pub type ContainerRequests = BTreeMap<String, BTreeMap<String, f64>>;

/// The containers' requests of the cluster's pods as the Kubernetes API reports
/// them (the pod specs), for the recommender to prefer over kube-state-metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodRequests {
    /// (namespace, pod) -> its requests.
    pods: BTreeMap<(String, String), ContainerRequests>,
}

impl PodRequests {
    /// Records a pod (also one whose containers request nothing).
    pub fn add_pod(&mut self, namespace: &str, pod: &str) -> &mut ContainerRequests {
        self.pods
            .entry((namespace.to_string(), pod.to_string()))
            .or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The pods `workload` owns ([`WorkloadRef::owns_pod`]) with their requests.
    pub fn of(&self, workload: &WorkloadRef) -> BTreeMap<String, ContainerRequests> {
        // Every pod of the workload is named `<name>-...`: only that range is read.
        let prefix = format!("{}-", workload.name);
        self.pods
            .range((workload.namespace.clone(), prefix.clone())..)
            .take_while(|((namespace, pod), _)| {
                *namespace == workload.namespace && pod.starts_with(&prefix)
            })
            .filter(|((_, pod), _)| workload.owns_pod(pod))
            .map(|((_, pod), requests)| (pod.clone(), requests.clone()))
            .collect()
    }
}

/// The characters of [`GENERATED`].
const GENERATED_BYTES: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Finds the workloads that own a pod, by name, among many.
#[derive(Debug, Default)]
pub struct PodOwners {
    /// (namespace, workload name) -> indexes into the list given to `new`.
    by_name: HashMap<(String, String), Vec<usize>>,
    workloads: Vec<WorkloadRef>,
}

impl PodOwners {
    pub fn new(workloads: &[WorkloadRef]) -> PodOwners {
        let mut by_name: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (i, w) in workloads.iter().enumerate() {
            by_name
                .entry((w.namespace.clone(), w.name.clone()))
                .or_default()
                .push(i);
        }
        PodOwners {
            by_name,
            workloads: workloads.to_vec(),
        }
    }

    /// The indexes of the workloads owning `pod` in `namespace`: a pod name is the
    /// workload's name plus one generated part (StatefulSet, DaemonSet, ReplicaSet)
    /// or two (Deployment), so only two names are looked up.
    pub fn owners(&self, namespace: &str, pod: &str) -> Vec<usize> {
        let one = pod.rsplit_once('-').map(|(name, _)| name);
        let two = one
            .and_then(|name| name.rsplit_once('-'))
            .map(|(name, _)| name);
        let mut out = Vec::new();
        for name in [one, two].into_iter().flatten() {
            if let Some(found) = self.by_name.get(&(namespace.to_string(), name.to_string())) {
                out.extend(
                    found
                        .iter()
                        .copied()
                        .filter(|&i| self.workloads.get(i).is_some_and(|w| w.owns_pod(pod))),
                );
            }
        }
        out
    }
}

/// The namespaces of `workloads`, sorted, each once.
fn namespaces_of(workloads: &[WorkloadRef]) -> Vec<&str> {
    let mut namespaces: Vec<&str> = workloads.iter().map(|w| w.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    namespaces
}

pub(crate) fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// How inputs are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceOptions {
    /// The `rate()` window of CPU usage for the HPA (metrics-server reports roughly
    /// the last scrape interval).
    pub hpa_rate_window: Duration,
    /// The `rate()` window of CPU usage in the VPA history, and its resolution: VPA
    /// samples usage once per recommender interval (1 minute).
    pub vpa_step: Duration,
    /// How much history builds the VPA model (8 days: the memory aggregation window).
    pub vpa_history: Duration,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            hpa_rate_window: Duration::from_secs(60),
            vpa_step: Duration::from_secs(60),
            vpa_history: Duration::from_secs(8 * 24 * 3600),
        }
    }
}

/// Points per series in one range query: below Prometheus's limit of 11,000.
const MAX_POINTS_PER_QUERY: i64 = 10_000;

/// Points in one answer of a query over many workloads: the query pieces are
/// sized to it, so memory stays bounded however long the history is (the engine
/// also holds the raw samples behind them, about four per point at a 15 s scrape).
const POINTS_PER_PIECE: usize = 500_000;

/// Steps of the first piece of a query over many workloads, before the number of
/// series is known: one, since 30 steps of 60,000 series (10,000 workloads) were
/// the peak of a first build's heap.
const FIRST_PIECE_STEPS: i64 = 1;

/// One workload's model fed by [`Source::feed_vpa_many`], and what it took in.
pub struct Feed<'m> {
    pub workload: WorkloadRef,
    pub model: &'m mut vpa::Workload,
    pub stats: FeedStats,
}

fn series_count(value: &Value) -> usize {
    match value {
        Value::Matrix(m) => m.len(),
        Value::Vector(v) => v.len(),
        Value::Scalar(_) | Value::String(_) => 1,
    }
}

/// Reads a workload's inputs through a query backend.
pub struct Source<'a, B> {
    backend: &'a B,
    pub options: SourceOptions,
}

impl<'a, B: QueryBackend> Source<'a, B> {
    pub fn new(backend: &'a B, options: SourceOptions) -> Source<'a, B> {
        Source { backend, options }
    }

    async fn instant(&self, query: String, at_ms: i64) -> Result<Value> {
        match self.backend.instant(&query, at_ms).await {
            Ok(result) => Ok(result.value),
            Err(source) => Err(Error::Query { query, source }),
        }
    }

    async fn range(&self, query: String, range: TimeRange, step: Duration) -> Result<Value> {
        match self.backend.range(&query, range, step).await {
            Ok(result) => Ok(result.value),
            Err(source) => Err(Error::Query { query, source }),
        }
    }

    /// The VPA model of `workload` from the history up to `end_ms`: CPU usage rated
    /// over the step and the working set, every `vpa_step`.
    ///
    /// # Errors
    /// [`Error::Query`] when a query fails.
    pub async fn vpa_model(
        &self,
        workload: &WorkloadRef,
        end_ms: i64,
        options: vpa::Options,
    ) -> Result<(vpa::Workload, FeedStats)> {
        let history_ms = i64::try_from(self.options.vpa_history.as_millis()).unwrap_or(i64::MAX);
        let range = TimeRange::new(end_ms.saturating_sub(history_ms), end_ms);
        let mut model = vpa::Workload::new(options)?;
        let stats = self.feed_vpa(workload, &mut model, range).await?;
        Ok((model, stats))
    }

    /// Feeds the usage of `workload` in `range` (both ends inclusive, one point every
    /// `vpa_step` from `range.start`) into `model`: how a model built by
    /// [`Source::vpa_model`] is kept current as samples arrive.
    ///
    /// # Errors
    /// [`Error::Query`] when a query fails.
    pub async fn feed_vpa(
        &self,
        workload: &WorkloadRef,
        model: &mut vpa::Workload,
        range: TimeRange,
    ) -> Result<FeedStats> {
        let step = self.options.vpa_step;
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
        let mut stats = FeedStats::default();
        let mut start = range.start;
        // Prometheus refuses range queries of more than 11,000 points per series
        // (8 days at 1 minute is 11,521): query in pieces, oldest first.
        while start <= range.end {
            let end = start
                .saturating_add((MAX_POINTS_PER_QUERY - 1).saturating_mul(step_ms))
                .min(range.end);
            let piece = TimeRange::new(start, end);
            let cpu = self
                .range(queries::cpu_usage(workload, step), piece, step)
                .await?;
            let memory = self
                .range(queries::memory_working_set(workload), piece, step)
                .await?;
            let fed = decode::feed_vpa(model, &cpu, &memory);
            stats.cpu_samples += fed.cpu_samples;
            stats.memory_samples += fed.memory_samples;
            stats.dropped += fed.dropped;
            start = end.saturating_add(step_ms);
            if end == i64::MAX {
                break;
            }
        }
        Ok(stats)
    }

    /// Feeds the usage in `range` (as [`Source::feed_vpa`]) of many workloads at
    /// once: one query per resource for all of them (their namespaces, grouped by
    /// namespace, pod and container), its series handed to the workloads owning the
    /// pods ([`WorkloadRef::owns_pod`]), in time pieces whose answers hold about
    /// `POINTS_PER_PIECE` points. Building the models of thousands of workloads from
    /// days of history so costs a few queries per piece of time instead of a few
    /// per workload. A single workload is fed by its own, narrower query.
    ///
    /// # Errors
    /// [`Error::Query`] when a query fails; models may then hold part of the range.
    pub async fn feed_vpa_many(&self, feeds: &mut [Feed<'_>], range: TimeRange) -> Result<()> {
        if let [feed] = feeds {
            let stats = self.feed_vpa(&feed.workload, feed.model, range).await?;
            feed.stats.add(stats);
            return Ok(());
        }
        if feeds.is_empty() {
            return Ok(());
        }
        let workloads: Vec<WorkloadRef> = feeds.iter().map(|f| f.workload.clone()).collect();
        let owners = PodOwners::new(&workloads);
        let namespaces = namespaces_of(&workloads);
        let step = self.options.vpa_step;
        let cpu_query = queries::cpu_usage_in_namespaces(&namespaces, step);
        let memory_query = queries::memory_working_set_in_namespaces(&namespaces);
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
        let mut steps = FIRST_PIECE_STEPS;
        let mut start = range.start;
        while start <= range.end {
            let end = start
                .saturating_add((steps - 1).saturating_mul(step_ms))
                .min(range.end);
            let piece = TimeRange::new(start, end);
            let cpu = self.range(cpu_query.clone(), piece, step).await?;
            let series = series_count(&cpu);
            decode::feed_vpa_many(feeds, &owners, &cpu, Resource::Cpu);
            drop(cpu);
            let memory = self.range(memory_query.clone(), piece, step).await?;
            let series = series.max(series_count(&memory));
            decode::feed_vpa_many(feeds, &owners, &memory, Resource::Memory);
            steps = i64::try_from(POINTS_PER_PIECE / series.max(1))
                .unwrap_or(MAX_POINTS_PER_QUERY)
                .clamp(1, MAX_POINTS_PER_QUERY);
            start = end.saturating_add(step_ms);
            if end == i64::MAX {
                break;
            }
        }
        Ok(())
    }

    /// The current requests of `resource` per container (cores or bytes): the
    /// largest over the workload's pods, as pods of one template request the same.
    ///
    /// # Errors
    /// [`Error::Query`] when the query fails.
    pub async fn current_requests(
        &self,
        workload: &WorkloadRef,
        resource: &str,
        at_ms: i64,
    ) -> Result<BTreeMap<String, f64>> {
        let value = self
            .instant(queries::requests(workload, resource), at_ms)
            .await?;
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for ((_, container), points) in decode::by_pod_container(&value) {
            if let Some((_, v)) = points.last() {
                let entry = out.entry(container).or_insert(*v);
                *entry = entry.max(*v);
            }
        }
        Ok(out)
    }

    /// [`Source::current_requests`] of many workloads at once: one query for all
    /// their namespaces, its series handed to the workloads owning the pods (as
    /// [`Source::feed_vpa_many`] does), so a refresh of thousands of workloads runs
    /// one query instead of one per workload. Returns one map per workload, in order.
    ///
    /// # Errors
    /// [`Error::Query`] when the query fails.
    pub async fn current_requests_many(
        &self,
        workloads: &[WorkloadRef],
        resource: &str,
        at_ms: i64,
    ) -> Result<Vec<BTreeMap<String, f64>>> {
        let mut out = vec![BTreeMap::new(); workloads.len()];
        if workloads.is_empty() {
            return Ok(out);
        }
        let namespaces = namespaces_of(workloads);
        let value = self
            .instant(
                queries::requests_in_namespaces(&namespaces, resource),
                at_ms,
            )
            .await?;
        let owners = PodOwners::new(workloads);
        let Value::Vector(vector) = &value else {
            return Ok(out);
        };
        for sample in vector {
            let (Some(namespace), Some(pod)) =
                (sample.labels.get("namespace"), sample.labels.get("pod"))
            else {
                continue;
            };
            let container = sample.labels.get("container").unwrap_or_default();
            for owner in owners.owners(namespace, pod) {
                if let Some(requests) = out.get_mut(owner) {
                    let entry = requests.entry(container.to_string()).or_insert(sample.v);
                    *entry = entry.max(sample.v);
                }
            }
        }
        Ok(out)
    }

    /// [`Source::spec_replicas`] of many workloads at once: one query per kind for
    /// all their namespaces. Returns one value per workload, in order.
    ///
    /// # Errors
    /// [`Error::Query`] when a query fails.
    pub async fn spec_replicas_many(
        &self,
        workloads: &[WorkloadRef],
        at_ms: i64,
    ) -> Result<Vec<Option<f64>>> {
        let mut out = vec![None; workloads.len()];
        for kind in [
            WorkloadKind::Deployment,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSet,
            WorkloadKind::ReplicaSet,
        ] {
            let of_kind: Vec<&WorkloadRef> = workloads.iter().filter(|w| w.kind == kind).collect();
            if of_kind.is_empty() {
                continue;
            }
            let mut namespaces: Vec<&str> = of_kind.iter().map(|w| w.namespace.as_str()).collect();
            namespaces.sort_unstable();
            namespaces.dedup();
            let (query, label) = queries::spec_replicas_in_namespaces(kind, &namespaces);
            let value = self.instant(query, at_ms).await?;
            let Value::Vector(vector) = &value else {
                continue;
            };
            let found: HashMap<(&str, &str), f64> = vector
                .iter()
                .filter(|s| s.v.is_finite())
                .filter_map(|s| Some(((s.labels.get("namespace")?, s.labels.get(label)?), s.v)))
                .collect();
            for (i, w) in workloads.iter().enumerate() {
                if w.kind == kind {
                    out[i] = found.get(&(w.namespace.as_str(), w.name.as_str())).copied();
                }
            }
        }
        Ok(out)
    }

    /// The workload's desired replica count (`scale.spec.replicas`), if known.
    ///
    /// # Errors
    /// [`Error::Query`] when the query fails.
    pub async fn spec_replicas(&self, workload: &WorkloadRef, at_ms: i64) -> Result<Option<f64>> {
        let value = self
            .instant(queries::spec_replicas(workload), at_ms)
            .await?;
        Ok(decode::single(&value))
    }

    /// What the HPA controller would observe for `workload` at `at_ms`: replicas,
    /// pods and one reading per metric of `spec`. Pods, Object and External metrics
    /// read the PromQL in `custom_queries` under the metric's name. A metric whose
    /// query fails or returns nothing becomes an unavailable reading, as a failed
    /// metrics API call would.
    ///
    /// # Errors
    /// [`Error::Query`] when the replica or pod queries fail, [`Error::NoData`] when
    /// the workload's replica count is unknown.
    pub async fn hpa_observation(
        &self,
        workload: &WorkloadRef,
        spec: &HorizontalPodAutoscalerSpec,
        custom_queries: &BTreeMap<String, String>,
        at_ms: i64,
    ) -> Result<Observation> {
        self.hpa_observation_with_requests(workload, spec, custom_queries, at_ms, None)
            .await
    }

    /// [`Source::hpa_observation`] with the pods' requests given (pod -> its
    /// requests, read from the Kubernetes API) instead of queried from
    /// kube-state-metrics.
    ///
    /// # Errors
    /// As [`Source::hpa_observation`].
    pub async fn hpa_observation_with_requests(
        &self,
        workload: &WorkloadRef,
        spec: &HorizontalPodAutoscalerSpec,
        custom_queries: &BTreeMap<String, String>,
        at_ms: i64,
        pod_requests: Option<&BTreeMap<String, ContainerRequests>>,
    ) -> Result<Observation> {
        let spec_query = queries::spec_replicas(workload);
        let spec_replicas = decode::single(&self.instant(spec_query.clone(), at_ms).await?)
            .ok_or(Error::NoData { query: spec_query })?;
        let status_replicas = decode::single(
            &self
                .instant(queries::status_replicas(workload), at_ms)
                .await?,
        )
        .unwrap_or(spec_replicas);
        let phase = self.instant(queries::pod_phase(workload), at_ms).await?;
        let ready = self.instant(queries::pod_ready(workload), at_ms).await?;
        let ready_time = self
            .instant(queries::pod_ready_time(workload), at_ms)
            .await?;
        let start_time = self
            .instant(queries::pod_start_time(workload), at_ms)
            .await?;
        let deletion = self.instant(queries::pod_deletion(workload), at_ms).await?;
        let metrics = spec.metrics_or_default();
        let mut resources: Vec<String> = Vec::new();
        for metric in &metrics {
            if let Ok(MetricSource::Resource(r)) = metric.source() {
                resources.push(r.name.clone());
            }
            if let Ok(MetricSource::ContainerResource(r)) = metric.source() {
                resources.push(r.name.clone());
            }
        }
        resources.sort();
        resources.dedup();
        let mut requests = Vec::new();
        for resource in resources.iter().filter(|_| pod_requests.is_none()) {
            requests.push((
                resource.as_str(),
                self.instant(queries::requests(workload, resource), at_ms)
                    .await?,
            ));
        }
        let pods = decode::pods(&decode::PodFacts {
            phase: Some(&phase),
            ready: Some(&ready),
            ready_time: Some(&ready_time),
            start_time: Some(&start_time),
            deletion: Some(&deletion),
            requests: requests.iter().map(|(r, v)| (*r, v)).collect(),
            api_requests: pod_requests,
        });
        let mut readings = Vec::with_capacity(metrics.len());
        for metric in &metrics {
            readings.push(self.reading(workload, metric, custom_queries, at_ms).await);
        }
        Ok(Observation {
            spec_replicas: spec_replicas as i32,
            status_replicas: status_replicas as i32,
            pods,
            readings,
        })
    }

    async fn reading(
        &self,
        workload: &WorkloadRef,
        metric: &crate::model::MetricSpec,
        custom_queries: &BTreeMap<String, String>,
        at_ms: i64,
    ) -> MetricReading {
        let window_ms = i64::try_from(self.options.hpa_rate_window.as_millis()).unwrap_or(60_000);
        let custom = |name: &str| {
            custom_queries
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no query is configured for metric {name:?}"))
        };
        let result: std::result::Result<MetricReading, String> = async {
            match metric.source().map_err(|e| e.to_string())? {
                MetricSource::Resource(r) => {
                    let usage = self.resource_usage(workload, &r.name, at_ms).await?;
                    Ok(MetricReading::PerPod(decode::pod_usage(
                        &usage, &r.name, None, at_ms, window_ms,
                    )))
                }
                MetricSource::ContainerResource(r) => {
                    let usage = self.resource_usage(workload, &r.name, at_ms).await?;
                    Ok(MetricReading::PerPod(decode::pod_usage(
                        &usage,
                        &r.name,
                        Some(&r.container),
                        at_ms,
                        window_ms,
                    )))
                }
                MetricSource::Pods(p) => {
                    let value = self
                        .instant(custom(&p.metric.name)?, at_ms)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(MetricReading::PerPod(decode::pod_values(
                        &value, at_ms, window_ms,
                    )))
                }
                MetricSource::Object(o) => {
                    let value = self
                        .instant(custom(&o.metric.name)?, at_ms)
                        .await
                        .map_err(|e| e.to_string())?;
                    let v = decode::single(&value)
                        .ok_or("the query did not return exactly one value")?;
                    Ok(MetricReading::Values(vec![decode::milli(v)]))
                }
                MetricSource::External(e) => {
                    let value = self
                        .instant(custom(&e.metric.name)?, at_ms)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(MetricReading::Values(
                        decode::values(&value)
                            .into_iter()
                            .map(decode::milli)
                            .collect(),
                    ))
                }
            }
        }
        .await;
        result.unwrap_or_else(MetricReading::Unavailable)
    }

    async fn resource_usage(
        &self,
        workload: &WorkloadRef,
        resource: &str,
        at_ms: i64,
    ) -> std::result::Result<Value, String> {
        let query = match resource {
            crate::model::CPU => queries::cpu_usage(workload, self.options.hpa_rate_window),
            crate::model::MEMORY => queries::memory_working_set(workload),
            other => return Err(format!("no usage series is known for resource {other:?}")),
        };
        self.instant(query, at_ms).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(namespace: &str, kind: WorkloadKind, name: &str) -> WorkloadRef {
        WorkloadRef {
            namespace: namespace.into(),
            kind,
            name: name.into(),
        }
    }

    #[test]
    fn pods_are_owned_by_name_as_the_pod_regex_says() {
        let web = workload("shop", WorkloadKind::Deployment, "web");
        let rs = workload("shop", WorkloadKind::ReplicaSet, "web-7d4b9c8f6b");
        let db = workload("shop", WorkloadKind::StatefulSet, "db");
        let agent = workload("shop", WorkloadKind::DaemonSet, "agent");
        assert!(web.owns_pod("web-7d4b9c8f6b-x2x5z"));
        assert!(web.owns_pod("web-7-x2x5z"));
        assert!(rs.owns_pod("web-7d4b9c8f6b-x2x5z"));
        assert!(db.owns_pod("db-0") && db.owns_pod("db-12"));
        assert!(agent.owns_pod("agent-x2x5z"));
        for (w, pod) in [
            (&web, "web-admin-5f6d7c8b9d-q2w4e"),
            (&web, "web-7d4b9c8f6b-x2x5"),
            (&web, "web-7d4b9c8f6b-x2x5zz"),
            (&web, "web-7d4b9c8f6b1-x2x5z"),
            (&web, "web-7d4b9c8f6baa-x2x5z"),
            (&web, "webx-7d4b9c8f6b-x2x5z"),
            (&web, "web--x2x5z"),
            (&db, "db-"),
            (&db, "db-0a"),
            (&agent, "agent-x2x5a"),
        ] {
            assert!(!w.owns_pod(pod), "{w} must not own {pod}");
        }
        let owners = PodOwners::new(&[web.clone(), rs, db, agent]);
        assert_eq!(owners.owners("shop", "web-7d4b9c8f6b-x2x5z"), [1, 0]);
        assert_eq!(owners.owners("shop", "db-3"), [2]);
        assert_eq!(owners.owners("other", "db-3"), Vec::<usize>::new());
        assert_eq!(owners.owners("shop", "web"), Vec::<usize>::new());
    }

    #[test]
    fn pod_requests_are_found_by_workload() {
        let mut requests = PodRequests::default();
        for (namespace, pod, cpu) in [
            ("shop", "web-7d4b9c8f6b-x2x5z", 0.5),
            ("shop", "web-7d4b9c8f6b-k9vqw", 0.25),
            ("shop", "web-admin-5f6d7c8b9d-q2w4x", 4.0),
            ("shop", "webx-0", 4.0),
            ("lab", "web-7d4b9c8f6b-x2x5z", 4.0),
        ] {
            requests
                .add_pod(namespace, pod)
                .entry("app".into())
                .or_default()
                .insert("cpu".into(), cpu);
        }
        requests.add_pod("shop", "web-7d4b9c8f6b-zzzzz");
        let web = workload("shop", WorkloadKind::Deployment, "web");
        let pods = requests.of(&web);
        assert_eq!(
            pods.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "web-7d4b9c8f6b-k9vqw",
                "web-7d4b9c8f6b-x2x5z",
                "web-7d4b9c8f6b-zzzzz"
            ]
        );
        assert_eq!(pods["web-7d4b9c8f6b-x2x5z"]["app"]["cpu"], 0.5);
        assert!(
            requests
                .of(&workload("shop", WorkloadKind::StatefulSet, "db"))
                .is_empty()
        );
    }
}
