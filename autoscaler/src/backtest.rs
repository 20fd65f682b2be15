//! Backtests over stored history: what the HPA would have done with a spec
//! (behavior included) and how the VPA's recommendations would have fared.
//!
//! **HPA** ([`hpa`]): replays the controller every sync period (15 s) from `from` to
//! `to`. The load is taken from history and redistributed over the *simulated*
//! replica count: at each sync the workload's total usage (and total requests) are
//! read, and each of the simulated pods gets `total / replicas`; Object and External
//! metrics are workload-level and read as they were. Simulated pods are ready at
//! once (no start-up delay); the exact reconcile of [`crate::hpa`] decides, with its
//! history and scale events kept across syncs. Reported: the replica timeline (actual
//! and simulated), pod-hours of both, and the time spent above target (the largest
//! metric ratio over 1.0) of both.
//!
//! **VPA** ([`vpa`]): builds the model from the history before `from`, then walks
//! every VPA step to `to`: each usage sample is compared with the recommendation
//! made before it (was usage above the target request: throttling for CPU, OOM risk
//! for memory), then fed to the model. Reported per container: how often usage
//! exceeded the target, and the CPU and memory the targets would have saved against
//! the actual requests (negative: they would have asked for more).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tsdb::model::TimeRange;
use tsdb::promql::QueryBackend;

use crate::controller::decode::{self, by_pod_container};
use crate::controller::{Source, SourceOptions, WorkloadRef, queries};
use crate::hpa::{
    self, Behavior, History, MetricReading, Observation, PodMetric, TimestampedRecommendation,
};
use crate::model::{
    CPU, Container, HorizontalPodAutoscalerSpec, MEMORY, MetricSource, MetricSpec, Pod,
};
use crate::recommender::WorkloadSpec;
use crate::vpa::estimator::to_amount;
use crate::{Error, Result, vpa};

/// What to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub from_ms: i64,
    pub to_ms: i64,
    /// The spec to replay; the workload's own when `None`.
    pub hpa_spec: Option<HorizontalPodAutoscalerSpec>,
    pub hpa: hpa::Options,
    pub vpa: vpa::Options,
    pub source: SourceOptions,
}

impl Options {
    pub fn new(from_ms: i64, to_ms: i64) -> Options {
        Options {
            from_ms,
            to_ms,
            hpa_spec: None,
            hpa: hpa::Options::default(),
            vpa: vpa::Options::default(),
            source: SourceOptions::default(),
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Points per range query, below Prometheus's 11,000.
const MAX_POINTS: i64 = 10_000;

/// `query` over `range` every `step`, in pieces below the point limit, merged.
async fn range_pieces<B: QueryBackend>(
    backend: &B,
    query: &str,
    range: TimeRange,
    step: Duration,
) -> Result<BTreeMap<(String, String), Vec<(i64, f64)>>> {
    let step_ms = ms(step);
    let mut out: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
    let mut start = range.start;
    while start <= range.end {
        let end = start
            .saturating_add((MAX_POINTS - 1).saturating_mul(step_ms))
            .min(range.end);
        let value = backend
            .range(query, TimeRange::new(start, end), step)
            .await
            .map_err(|source| Error::Query {
                query: query.to_string(),
                source,
            })?;
        for (key, points) in by_pod_container(&value.value) {
            out.entry(key).or_default().extend(points);
        }
        if end == i64::MAX {
            break;
        }
        start = end.saturating_add(step_ms);
    }
    Ok(out)
}

/// Series keyed by (pod, container) as a per-time lookup.
type ByTime = BTreeMap<i64, Vec<(String, String, f64)>>;

fn by_time(series: BTreeMap<(String, String), Vec<(i64, f64)>>) -> ByTime {
    let mut out: ByTime = BTreeMap::new();
    for ((pod, container), points) in series {
        for (t, v) in points {
            out.entry(t)
                .or_default()
                .push((pod.clone(), container.clone(), v));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// HPA
// ---------------------------------------------------------------------------------------

/// One sync of the HPA replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaStep {
    pub t_ms: i64,
    /// Replicas the workload actually ran (kube-state-metrics), if known.
    pub actual_replicas: Option<i32>,
    /// Simulated replicas during this sync.
    pub replicas: i32,
    /// What the controller decided at this sync.
    pub desired_replicas: i32,
    /// The largest metric ratio (current over target) with the simulated replicas.
    pub usage_ratio: Option<f64>,
    /// The same with the actual replicas.
    pub actual_usage_ratio: Option<f64>,
}

/// The HPA replay's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaSummary {
    pub syncs: usize,
    pub sync_period_seconds: f64,
    pub pod_hours: f64,
    pub actual_pod_hours: f64,
    /// Syncs whose largest ratio was above 1.0, times the sync period.
    pub seconds_above_target: f64,
    pub actual_seconds_above_target: f64,
    pub scale_ups: usize,
    pub scale_downs: usize,
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// Syncs where no metric could be computed (missing history).
    pub syncs_without_metrics: usize,
}

/// The HPA replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaBacktest {
    pub workload: WorkloadRef,
    pub from_ms: i64,
    pub to_ms: i64,
    pub spec: HorizontalPodAutoscalerSpec,
    pub summary: HpaSummary,
    pub timeline: Vec<HpaStep>,
}

/// What one metric read at every sync: per-pod usage or values, and requests.
struct MetricHistory {
    usage: ByTime,
    requests: ByTime,
}

/// The per-sync inputs of one metric at `t`: the total over the pods reporting it,
/// how many pods reported, and the total requests of those pods (milli-units).
struct Totals {
    total_milli: f64,
    pods: usize,
    requests_milli: f64,
}

fn totals(history: &MetricHistory, t: i64, container: Option<&str>) -> Option<Totals> {
    let usage = history.usage.get(&t)?;
    let mut per_pod: BTreeMap<&str, f64> = BTreeMap::new();
    for (pod, c, v) in usage {
        if container.is_none_or(|want| want == c) {
            *per_pod.entry(pod.as_str()).or_default() += v * 1000.0;
        }
    }
    if per_pod.is_empty() {
        return None;
    }
    let mut requests_milli = 0.0;
    if let Some(requests) = history.requests.get(&t) {
        for (pod, c, v) in requests {
            if per_pod.contains_key(pod.as_str()) && container.is_none_or(|want| want == c) {
                requests_milli += v * 1000.0;
            }
        }
    }
    Some(Totals {
        total_milli: per_pod.values().sum(),
        pods: per_pod.len(),
        requests_milli,
    })
}

/// Replays `spec` (or the workload's) over `[from, to]`.
///
/// # Errors
/// [`Error::Query`] when a query fails; [`Error::InvalidSpec`] without a spec.
pub async fn hpa<B: QueryBackend>(
    backend: &B,
    workload: &WorkloadSpec,
    options: &Options,
) -> Result<HpaBacktest> {
    let spec = options
        .hpa_spec
        .clone()
        .or_else(|| workload.hpa.clone())
        .ok_or_else(|| Error::InvalidSpec {
            field: "hpa".into(),
            reason: format!("{} has no HPA spec to replay", workload.workload()),
        })?;
    spec.validate()?;
    let target = workload.workload();
    let sync = options.hpa.sync_period;
    let sync_ms = ms(sync);
    let from = options.from_ms;
    let to = options.to_ms.max(from);
    let range = TimeRange::new(from, to);
    let actual =
        by_time(range_pieces(backend, &queries::spec_replicas(&target), range, sync).await?);
    let metrics = spec.metrics_or_default();
    let mut histories = Vec::with_capacity(metrics.len());
    for metric in &metrics {
        histories.push(metric_history(backend, workload, &target, metric, range, options).await?);
    }

    let behavior = spec.behavior.as_ref().map(|b| {
        Behavior::from_spec(
            b,
            i32::try_from(options.hpa.downscale_stabilization.as_secs()).unwrap_or(i32::MAX),
        )
    });
    let actual_at = |t: i64| -> Option<i32> {
        actual
            .get(&t)
            .and_then(|v| v.first())
            .map(|(_, _, v)| *v as i32)
    };
    let mut replicas = actual_at(from)
        .unwrap_or_else(|| spec.min_replicas_or_default())
        .clamp(spec.min_replicas_or_default().max(1), spec.max_replicas);
    let mut history = History::default();
    history.recommendations.push(TimestampedRecommendation {
        replicas,
        t_ms: from,
    });
    let mut timeline = Vec::new();
    let mut summary = HpaSummary {
        syncs: 0,
        sync_period_seconds: sync.as_secs_f64(),
        pod_hours: 0.0,
        actual_pod_hours: 0.0,
        seconds_above_target: 0.0,
        actual_seconds_above_target: 0.0,
        scale_ups: 0,
        scale_downs: 0,
        min_replicas: replicas,
        max_replicas: replicas,
        syncs_without_metrics: 0,
    };
    let hours = sync.as_secs_f64() / 3600.0;
    let mut t = from;
    while t <= to {
        let observation = simulated(&metrics, &histories, t, replicas, options);
        let rec = hpa::reconcile(&spec, &observation, &mut history, t, &options.hpa);
        let ratio = max_ratio(&rec);
        let actual_replicas = actual_at(t);
        let actual_ratio = actual_replicas.filter(|r| *r > 0).and_then(|n| {
            let observation = simulated(&metrics, &histories, t, n, options);
            max_ratio(&hpa::reconcile(
                &spec,
                &observation,
                &mut History::default(),
                t,
                &options.hpa,
            ))
        });
        summary.syncs += 1;
        summary.pod_hours += f64::from(replicas) * hours;
        if let Some(n) = actual_replicas {
            summary.actual_pod_hours += f64::from(n) * hours;
        }
        if ratio.is_some_and(|r| r > 1.0) {
            summary.seconds_above_target += sync.as_secs_f64();
        }
        if actual_ratio.is_some_and(|r| r > 1.0) {
            summary.actual_seconds_above_target += sync.as_secs_f64();
        }
        if rec.proposal.is_none() {
            summary.syncs_without_metrics += 1;
        }
        timeline.push(HpaStep {
            t_ms: t,
            actual_replicas,
            replicas,
            desired_replicas: rec.desired_replicas,
            usage_ratio: ratio,
            actual_usage_ratio: actual_ratio,
        });
        if rec.rescale() {
            if let Some(behavior) = &behavior {
                history.record_scale_event(behavior, replicas, rec.desired_replicas, t);
            }
            if rec.desired_replicas > replicas {
                summary.scale_ups += 1;
            } else {
                summary.scale_downs += 1;
            }
            replicas = rec.desired_replicas;
            summary.min_replicas = summary.min_replicas.min(replicas);
            summary.max_replicas = summary.max_replicas.max(replicas);
        }
        t = t.saturating_add(sync_ms);
        if t == i64::MAX {
            break;
        }
    }
    Ok(HpaBacktest {
        workload: target,
        from_ms: from,
        to_ms: to,
        spec,
        summary,
        timeline,
    })
}

fn max_ratio(rec: &hpa::Recommendation) -> Option<f64> {
    rec.metrics
        .iter()
        .filter_map(|m| match &m.outcome {
            hpa::MetricOutcome::Computed(c) if c.usage_ratio.is_finite() => Some(c.usage_ratio),
            _ => None,
        })
        .reduce(f64::max)
}

async fn metric_history<B: QueryBackend>(
    backend: &B,
    workload: &WorkloadSpec,
    target: &WorkloadRef,
    metric: &MetricSpec,
    range: TimeRange,
    options: &Options,
) -> Result<MetricHistory> {
    let step = options.hpa.sync_period;
    let empty = || MetricHistory {
        usage: ByTime::new(),
        requests: ByTime::new(),
    };
    let custom = |name: &str| {
        workload
            .metric_queries
            .get(name)
            .cloned()
            .ok_or_else(|| Error::InvalidSpec {
                field: format!("metric_queries.{name}"),
                reason: "no query is configured for this metric".into(),
            })
    };
    let resource = |name: &str| -> Result<String> {
        match name {
            CPU => Ok(queries::cpu_usage(target, options.source.hpa_rate_window)),
            MEMORY => Ok(queries::memory_working_set(target)),
            other => Err(Error::InvalidSpec {
                field: "metrics".into(),
                reason: format!("no usage series is known for resource {other:?}"),
            }),
        }
    };
    let (usage_query, requests_query) = match metric.source().map_err(|reason| {
        Error::InvalidSpec {
            field: "metrics".into(),
            reason,
        }
    })? {
        MetricSource::Resource(r) => (resource(&r.name)?, Some(queries::requests(target, &r.name))),
        MetricSource::ContainerResource(r) => {
            (resource(&r.name)?, Some(queries::requests(target, &r.name)))
        }
        MetricSource::Pods(p) => (custom(&p.metric.name)?, None),
        MetricSource::Object(o) => (custom(&o.metric.name)?, None),
        MetricSource::External(e) => (custom(&e.metric.name)?, None),
    };
    let mut history = empty();
    history.usage = by_time(range_pieces(backend, &usage_query, range, step).await?);
    if let Some(q) = requests_query {
        history.requests = by_time(range_pieces(backend, &q, range, step).await?);
    }
    Ok(history)
}

/// The observation of `replicas` simulated pods sharing the load recorded at `t`.
fn simulated(
    metrics: &[MetricSpec],
    histories: &[MetricHistory],
    t: i64,
    replicas: i32,
    options: &Options,
) -> Observation {
    let n = replicas.max(1);
    let window_ms = ms(options.source.hpa_rate_window);
    let started = t - 86_400_000;
    let mut pod_requests: BTreeMap<String, i64> = BTreeMap::new();
    let mut container_requests: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut readings = Vec::with_capacity(metrics.len());
    let per_pod = |total_milli: f64| -> MetricReading {
        let value = (total_milli / f64::from(n)).ceil() as i64;
        MetricReading::PerPod(
            (0..n)
                .map(|i| {
                    (
                        format!("pod-{i}"),
                        PodMetric {
                            value_milli: value,
                            timestamp_ms: t,
                            window_ms,
                        },
                    )
                })
                .collect(),
        )
    };
    let missing = || MetricReading::Unavailable("no history at this time".into());
    for (metric, history) in metrics.iter().zip(histories) {
        let reading = match metric.source() {
            Ok(MetricSource::Resource(r)) => match totals(history, t, None) {
                Some(tot) => {
                    let request = (tot.requests_milli / tot.pods as f64).round() as i64;
                    pod_requests.insert(r.name.clone(), request);
                    per_pod(tot.total_milli)
                }
                None => missing(),
            },
            Ok(MetricSource::ContainerResource(r)) => {
                match totals(history, t, Some(&r.container)) {
                    Some(tot) => {
                        let request = (tot.requests_milli / tot.pods as f64).round() as i64;
                        container_requests
                            .entry(r.container.clone())
                            .or_default()
                            .insert(r.name.clone(), request);
                        per_pod(tot.total_milli)
                    }
                    None => missing(),
                }
            }
            Ok(MetricSource::Pods(_)) => match totals(history, t, None) {
                Some(tot) => per_pod(tot.total_milli),
                None => missing(),
            },
            Ok(MetricSource::Object(_)) => match history.usage.get(&t) {
                Some(values) if values.len() == 1 => {
                    MetricReading::Values(vec![decode::milli(values[0].2)])
                }
                _ => missing(),
            },
            Ok(MetricSource::External(_)) => match history.usage.get(&t) {
                Some(values) => {
                    MetricReading::Values(values.iter().map(|v| decode::milli(v.2)).collect())
                }
                None => missing(),
            },
            Err(e) => MetricReading::Unavailable(e),
        };
        readings.push(reading);
    }
    let pods = (0..n)
        .map(|i| {
            let mut pod = Pod::running(&format!("pod-{i}"), started, &[]);
            pod.containers = container_requests
                .iter()
                .map(|(name, requests)| Container {
                    name: name.clone(),
                    requests_milli: requests.clone(),
                    restart_always: false,
                })
                .collect();
            pod.pod_requests_milli = pod_requests.clone();
            pod
        })
        .collect();
    Observation {
        spec_replicas: replicas,
        status_replicas: replicas,
        pods,
        readings,
    }
}

// ---------------------------------------------------------------------------------------
// VPA
// ---------------------------------------------------------------------------------------

/// One container's VPA replay.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VpaContainer {
    pub name: String,
    /// Usage samples compared (one per pod and step).
    pub cpu_samples: usize,
    pub memory_samples: usize,
    /// Samples whose usage was above the target in force: throttling risk (CPU),
    /// OOM risk (memory).
    pub cpu_over_target: usize,
    pub memory_over_target: usize,
    pub cpu_over_target_fraction: f64,
    pub memory_over_target_fraction: f64,
    /// Mean actual request and mean target over the samples (cores, bytes).
    pub mean_cpu_request: Option<f64>,
    pub mean_cpu_target: Option<f64>,
    pub mean_memory_request: Option<f64>,
    pub mean_memory_target: Option<f64>,
    /// Σ (request - target) over pods and time: what the targets would have saved.
    pub cpu_saved_core_hours: f64,
    pub memory_saved_gib_hours: f64,
}

/// The VPA replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VpaBacktest {
    pub workload: WorkloadRef,
    pub from_ms: i64,
    pub to_ms: i64,
    pub step_seconds: f64,
    pub containers: Vec<VpaContainer>,
}

/// Replays the VPA over `[from, to]` after warming the model up on the history
/// before `from`.
///
/// # Errors
/// [`Error::Query`] when a query fails.
pub async fn vpa<B: QueryBackend>(
    backend: &B,
    workload: &WorkloadSpec,
    options: &Options,
) -> Result<VpaBacktest> {
    let target = workload.workload();
    let source = Source::new(backend, options.source.clone());
    let step = options.source.vpa_step;
    let step_ms = ms(step);
    let from = options.from_ms;
    let to = options.to_ms.max(from);
    let mut model = vpa::Workload::new(options.vpa.clone())?;
    let warm_up = TimeRange::new(
        from.saturating_sub(ms(options.source.vpa_history)),
        from.saturating_sub(step_ms),
    );
    if warm_up.start <= warm_up.end {
        source.feed_vpa(&target, &mut model, warm_up).await?;
    }
    let range = TimeRange::new(from, to);
    let cpu =
        by_time(range_pieces(backend, &queries::cpu_usage(&target, step), range, step).await?);
    let memory =
        by_time(range_pieces(backend, &queries::memory_working_set(&target), range, step).await?);
    let requests = |resource: &'static str| {
        let target = target.clone();
        async move {
            range_pieces(backend, &queries::requests(&target, resource), range, step)
                .await
                .map(by_time)
        }
    };
    let cpu_requests = requests(CPU).await?;
    let memory_requests = requests(MEMORY).await?;
    let policy = workload.vpa.resource_policy.as_ref();
    let mut containers: BTreeMap<String, (VpaContainer, [f64; 4], [usize; 2])> = BTreeMap::new();
    let step_hours = step.as_secs_f64() / 3600.0;
    let request_of = |requests: &ByTime, t: i64, pod: &str, container: &str| {
        requests.get(&t).and_then(|list| {
            list.iter()
                .find(|(p, c, _)| p == pod && c == container)
                .map(|(_, _, v)| *v)
        })
    };
    let times: std::collections::BTreeSet<i64> = cpu.keys().chain(memory.keys()).copied().collect();
    for t in times {
        let recs: BTreeMap<String, vpa::ContainerRecommendation> = model
            .recommend(policy)
            .into_iter()
            .map(|r| (r.container_name.clone(), r))
            .collect();
        for (pod, container, cores) in cpu.get(&t).into_iter().flatten() {
            let millicores = to_amount(cores * 1000.0);
            if let Some(bounds) = recs.get(container).and_then(|r| r.cpu.as_ref()) {
                let (entry, sums, counts) = containers.entry(container.clone()).or_default();
                let target_cores = bounds.target.value as f64 / 1000.0;
                entry.cpu_samples += 1;
                if millicores > bounds.target.value {
                    entry.cpu_over_target += 1;
                }
                sums[1] += target_cores;
                if let Some(request) = request_of(&cpu_requests, t, pod, container) {
                    sums[0] += request;
                    counts[0] += 1;
                    entry.cpu_saved_core_hours += (request - target_cores) * step_hours;
                }
            }
            model.add_cpu_sample(pod, container, t, millicores);
        }
        for (pod, container, bytes) in memory.get(&t).into_iter().flatten() {
            let amount = to_amount(*bytes);
            if let Some(bounds) = recs.get(container).and_then(|r| r.memory.as_ref()) {
                let (entry, sums, counts) = containers.entry(container.clone()).or_default();
                let target_bytes = bounds.target.value as f64;
                entry.memory_samples += 1;
                if amount > bounds.target.value {
                    entry.memory_over_target += 1;
                }
                sums[3] += target_bytes;
                if let Some(request) = request_of(&memory_requests, t, pod, container) {
                    sums[2] += request;
                    counts[1] += 1;
                    entry.memory_saved_gib_hours +=
                        (request - target_bytes) / f64::from(1u32 << 30) * step_hours;
                }
            }
            model.add_memory_sample(pod, container, t, amount);
        }
    }
    let containers = containers
        .into_iter()
        .map(|(name, (mut c, sums, counts))| {
            c.name = name;
            let mean = |sum: f64, n: usize| (n > 0 && sum > 0.0).then(|| sum / n as f64);
            c.cpu_over_target_fraction = fraction(c.cpu_over_target, c.cpu_samples);
            c.memory_over_target_fraction = fraction(c.memory_over_target, c.memory_samples);
            c.mean_cpu_request = mean(sums[0], counts[0]);
            c.mean_cpu_target = mean(sums[1], c.cpu_samples);
            c.mean_memory_request = mean(sums[2], counts[1]);
            c.mean_memory_target = mean(sums[3], c.memory_samples);
            c
        })
        .collect();
    Ok(VpaBacktest {
        workload: target,
        from_ms: from,
        to_ms: to,
        step_seconds: step.as_secs_f64(),
        containers,
    })
}

fn fraction(n: usize, of: usize) -> f64 {
    if of == 0 { 0.0 } else { n as f64 / of as f64 }
}
