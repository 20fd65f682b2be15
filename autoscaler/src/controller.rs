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

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tsdb::model::TimeRange;
use tsdb::promql::{QueryBackend, Value};

use crate::hpa::{MetricReading, Observation};
use crate::model::{HorizontalPodAutoscalerSpec, MetricSource};
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

fn regex_escape(text: &str) -> String {
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
        for resource in &resources {
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
