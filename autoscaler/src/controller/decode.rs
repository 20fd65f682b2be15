//! Query results into the pure inputs: usage samples for the VPA model, pods and
//! readings for the HPA. Pure functions over `tsdb::promql::Value`; the fetching is in
//! the parent module.

use std::collections::BTreeMap;

use tsdb::promql::Value;

use crate::hpa::PodMetric;
use crate::model::{ConditionStatus, Container, Pod, PodPhase, ReadyCondition};
use crate::vpa::{self, estimator::to_amount};

/// Points of every series of a result, keyed by its `pod` and `container` labels
/// (empty strings when absent). An instant vector gives one point per series.
pub fn by_pod_container(value: &Value) -> BTreeMap<(String, String), Vec<(i64, f64)>> {
    let key = |labels: &tsdb::model::Labels| {
        (
            labels.get("pod").unwrap_or_default().to_string(),
            labels.get("container").unwrap_or_default().to_string(),
        )
    };
    let mut out: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
    match value {
        Value::Matrix(matrix) => {
            for series in matrix {
                out.entry(key(&series.labels))
                    .or_default()
                    .extend(series.points.iter().map(|p| (p.t, p.v)));
            }
        }
        Value::Vector(vector) => {
            for sample in vector {
                out.entry(key(&sample.labels))
                    .or_default()
                    .push((sample.t, sample.v));
            }
        }
        Value::Scalar(s) => out.entry(Default::default()).or_default().push((s.t, s.v)),
        Value::String(_) => {}
    }
    for points in out.values_mut() {
        points.sort_by_key(|(t, _)| *t);
        points.retain(|(_, v)| v.is_finite());
    }
    out
}

/// The single value of an instant query (a scalar or a one-element vector).
pub fn single(value: &Value) -> Option<f64> {
    match value {
        Value::Scalar(s) => Some(s.v),
        Value::Vector(v) if v.len() == 1 => Some(v[0].v),
        _ => None,
    }
    .filter(|v| v.is_finite())
}

/// Every value of an instant vector (External metric items).
pub fn values(value: &Value) -> Vec<f64> {
    match value {
        Value::Scalar(s) => vec![s.v],
        Value::Vector(v) => v.iter().map(|s| s.v).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|v| v.is_finite())
    .collect()
}

/// A float as the milli-value a metrics adapter would serve (`int64(v * 1000)`,
/// truncated, as prometheus-adapter does).
pub fn milli(v: f64) -> i64 {
    let m = v * 1000.0;
    if m.is_nan() { 0 } else { m as i64 }
}

/// How many samples went into a VPA model, and how many it dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStats {
    pub cpu_samples: usize,
    pub memory_samples: usize,
    pub dropped: usize,
}

/// Feeds CPU usage (cores) and working-set memory (bytes) series into `workload`, one
/// container at a time in time order. CPU becomes whole millicores first, as upstream
/// converts usage to `ResourceAmount`s.
pub fn feed_vpa(
    workload: &mut vpa::Workload,
    cpu_cores: &Value,
    memory_bytes: &Value,
) -> FeedStats {
    let mut stats = FeedStats::default();
    for (value, resource) in [
        (cpu_cores, vpa::Resource::Cpu),
        (memory_bytes, vpa::Resource::Memory),
    ] {
        for ((pod, container), points) in by_pod_container(value) {
            let samples = points.into_iter().map(|(t, v)| match resource {
                vpa::Resource::Cpu => (t, to_amount(v * 1000.0)),
                vpa::Resource::Memory => (t, to_amount(v)),
            });
            let (taken, dropped) = workload.add_samples(resource, &pod, &container, samples);
            match resource {
                vpa::Resource::Cpu => stats.cpu_samples += taken,
                vpa::Resource::Memory => stats.memory_samples += taken,
            }
            stats.dropped += dropped;
        }
    }
    stats
}

impl FeedStats {
    pub fn add(&mut self, other: FeedStats) {
        self.cpu_samples += other.cpu_samples;
        self.memory_samples += other.memory_samples;
        self.dropped += other.dropped;
    }
}

/// Feeds a range query's answer over many workloads (CPU cores or working-set
/// bytes per `namespace`, `pod` and `container`) into the models of the workloads
/// owning each series' pod, in time order per series, as [`feed_vpa`] does for one.
pub fn feed_vpa_many(
    feeds: &mut [super::Feed<'_>],
    owners: &super::PodOwners,
    value: &Value,
    resource: vpa::Resource,
) {
    let Value::Matrix(matrix) = value else {
        return;
    };
    for series in matrix {
        let (Some(namespace), Some(pod)) =
            (series.labels.get("namespace"), series.labels.get("pod"))
        else {
            continue;
        };
        let container = series.labels.get("container").unwrap_or_default();
        for owner in owners.owners(namespace, pod) {
            let Some(feed) = feeds.get_mut(owner) else {
                continue;
            };
            let samples =
                series
                    .points
                    .iter()
                    .filter(|p| p.v.is_finite())
                    .map(|p| match resource {
                        vpa::Resource::Cpu => (p.t, to_amount(p.v * 1000.0)),
                        vpa::Resource::Memory => (p.t, to_amount(p.v)),
                    });
            let (taken, dropped) = feed.model.add_samples(resource, pod, container, samples);
            match resource {
                vpa::Resource::Cpu => feed.stats.cpu_samples += taken,
                vpa::Resource::Memory => feed.stats.memory_samples += taken,
            }
            feed.stats.dropped += dropped;
        }
    }
}

/// The kube-state-metrics facts about a workload's pods at one time.
#[derive(Debug, Clone, Default)]
pub struct PodFacts<'a> {
    /// `kube_pod_status_phase == 1`, with the `phase` label.
    pub phase: Option<&'a Value>,
    /// `kube_pod_status_ready{condition="true"}`.
    pub ready: Option<&'a Value>,
    /// `kube_pod_status_ready_time` (Unix seconds).
    pub ready_time: Option<&'a Value>,
    /// `kube_pod_start_time` (Unix seconds).
    pub start_time: Option<&'a Value>,
    /// `kube_pod_deletion_timestamp`.
    pub deletion: Option<&'a Value>,
    /// `kube_pod_container_resource_requests` per resource name (cores for cpu, bytes
    /// otherwise).
    pub requests: Vec<(&'a str, &'a Value)>,
    /// The requests per pod as the Kubernetes API reports them; when set, used
    /// instead of `requests`.
    pub api_requests: Option<&'a BTreeMap<String, super::ContainerRequests>>,
}

/// The pods as the replica calculator sees them. A pod is listed when it has a
/// phase; a pod without a known ready transition time uses its start time.
pub fn pods(facts: &PodFacts<'_>) -> Vec<Pod> {
    let per_pod = |value: Option<&Value>| -> BTreeMap<String, f64> {
        value
            .map(by_pod_container)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|((pod, _), points)| points.last().map(|(_, v)| (pod, *v)))
            .collect()
    };
    let mut phases: BTreeMap<String, PodPhase> = BTreeMap::new();
    if let Some(Value::Vector(vector)) = facts.phase {
        for sample in vector {
            let (Some(pod), Some(phase)) = (sample.labels.get("pod"), sample.labels.get("phase"))
            else {
                continue;
            };
            let phase = match phase {
                "Pending" => PodPhase::Pending,
                "Running" => PodPhase::Running,
                "Succeeded" => PodPhase::Succeeded,
                "Failed" => PodPhase::Failed,
                _ => PodPhase::Unknown,
            };
            phases.insert(pod.to_string(), phase);
        }
    }
    let ready = per_pod(facts.ready);
    let ready_time = per_pod(facts.ready_time);
    let start_time = per_pod(facts.start_time);
    let deletion = per_pod(facts.deletion);
    let mut containers: BTreeMap<String, BTreeMap<String, BTreeMap<String, i64>>> = BTreeMap::new();
    if let Some(api) = facts.api_requests {
        for (pod, requests) in api {
            for (container, amounts) in requests {
                let entry = containers
                    .entry(pod.clone())
                    .or_default()
                    .entry(container.clone())
                    .or_default();
                for (resource, v) in amounts {
                    entry.insert(resource.clone(), (v * 1000.0).round() as i64);
                }
            }
        }
    }
    for (resource, value) in facts
        .requests
        .iter()
        .filter(|_| facts.api_requests.is_none())
    {
        for ((pod, container), points) in by_pod_container(value) {
            let Some((_, v)) = points.last() else {
                continue;
            };
            // Requests arrive as floats (cores, bytes); the calculator wants milli-units.
            let milli = (v * 1000.0).round() as i64;
            containers
                .entry(pod)
                .or_default()
                .entry(container)
                .or_default()
                .insert((*resource).to_string(), milli);
        }
    }
    phases
        .into_iter()
        .map(|(name, phase)| {
            let start_ms = start_time.get(&name).map(|s| (s * 1000.0) as i64);
            let ready_condition = ready.get(&name).map(|r| ReadyCondition {
                status: if *r >= 1.0 {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                last_transition_ms: ready_time
                    .get(&name)
                    .map(|s| (s * 1000.0) as i64)
                    .or(start_ms)
                    .unwrap_or(0),
            });
            Pod {
                containers: containers
                    .remove(&name)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(container, requests_milli)| Container {
                        name: container,
                        requests_milli,
                        restart_always: false,
                    })
                    .collect(),
                deleting: deletion.contains_key(&name),
                phase,
                start_time_ms: start_ms,
                ready: ready_condition,
                init_containers: Vec::new(),
                pod_requests_milli: BTreeMap::new(),
                name,
            }
        })
        .collect()
}

/// Per-pod resource usage as the metrics client builds it: per-container usage summed
/// per pod, or the named container's only. CPU (cores) goes through nanocores and is
/// read back in millicores rounding up, as metrics-server and `MilliValue()` do;
/// other resources (bytes) are whole units.
pub fn pod_usage(
    usage: &Value,
    resource: &str,
    container: Option<&str>,
    at_ms: i64,
    window_ms: i64,
) -> BTreeMap<String, PodMetric> {
    let mut by_pod: BTreeMap<String, BTreeMap<String, Option<i64>>> = BTreeMap::new();
    for ((pod, c), points) in by_pod_container(usage) {
        let value = points.last().map(|(_, v)| {
            if resource == crate::model::CPU {
                let nanocores = (v * 1e9).round() as i64;
                nanocores.saturating_add(999_999) / 1_000_000
            } else {
                (*v as i64).saturating_mul(1000)
            }
        });
        by_pod.entry(pod).or_default().insert(c, value);
    }
    crate::hpa::pods::pod_usage_from_containers(&by_pod, container, at_ms, window_ms)
}

/// Per-pod values of a Pods metric (a vector with a `pod` label), as milli-values.
pub fn pod_values(value: &Value, at_ms: i64, window_ms: i64) -> BTreeMap<String, PodMetric> {
    by_pod_container(value)
        .into_iter()
        .filter(|((pod, _), _)| !pod.is_empty())
        .filter_map(|((pod, _), points)| {
            points.last().map(|(_, v)| {
                (
                    pod,
                    PodMetric {
                        value_milli: milli(*v),
                        timestamp_ms: at_ms,
                        window_ms,
                    },
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsdb::model::Labels;
    use tsdb::promql::{Sample, Series};

    fn sample(pairs: &[(&str, &str)], v: f64) -> Sample {
        Sample {
            labels: Labels::from_pairs(pairs),
            t: 1_000,
            v,
        }
    }

    #[test]
    fn pods_from_kube_state_metrics() {
        let phase = Value::Vector(vec![
            sample(&[("pod", "web-a"), ("phase", "Running")], 1.0),
            sample(&[("pod", "web-b"), ("phase", "Pending")], 1.0),
        ]);
        let ready = Value::Vector(vec![
            sample(&[("pod", "web-a")], 1.0),
            sample(&[("pod", "web-b")], 0.0),
        ]);
        let start = Value::Vector(vec![sample(&[("pod", "web-a")], 1_700_000_000.0)]);
        let requests = Value::Vector(vec![
            sample(&[("pod", "web-a"), ("container", "app")], 0.25),
            sample(&[("pod", "web-a"), ("container", "proxy")], 0.1),
        ]);
        let pods = pods(&PodFacts {
            phase: Some(&phase),
            ready: Some(&ready),
            start_time: Some(&start),
            requests: vec![("cpu", &requests)],
            ..PodFacts::default()
        });
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[0].name, "web-a");
        assert!(pods[0].is_running_and_ready());
        assert_eq!(pods[0].ready.unwrap().last_transition_ms, 1_700_000_000_000);
        assert_eq!(pods[0].containers[0].requests_milli["cpu"], 250);
        assert_eq!(pods[0].containers[1].requests_milli["cpu"], 100);
        assert_eq!(pods[1].phase, PodPhase::Pending);
        assert_eq!(pods[1].ready.unwrap().status, ConditionStatus::False);

        // Requests from the Kubernetes API replace kube-state-metrics'.
        let api: BTreeMap<String, crate::controller::ContainerRequests> = [(
            "web-a".to_string(),
            [(
                "app".to_string(),
                [("cpu".to_string(), 0.75), ("memory".to_string(), 1e9)].into(),
            )]
            .into(),
        )]
        .into();
        let from_api = super::pods(&PodFacts {
            phase: Some(&phase),
            requests: vec![("cpu", &requests)],
            api_requests: Some(&api),
            ..PodFacts::default()
        });
        assert_eq!(from_api[0].containers.len(), 1);
        assert_eq!(from_api[0].containers[0].requests_milli["cpu"], 750);
        assert_eq!(
            from_api[0].containers[0].requests_milli["memory"],
            1_000_000_000_000
        );
        assert!(from_api[1].containers.is_empty());
    }

    #[test]
    fn usage_and_values() {
        let usage = Value::Vector(vec![
            sample(&[("pod", "web-a"), ("container", "app")], 0.2501),
            sample(&[("pod", "web-a"), ("container", "proxy")], 0.01),
            sample(&[("pod", "web-b"), ("container", "app")], f64::NAN),
        ]);
        let per_pod = pod_usage(&usage, "cpu", None, 5, 30_000);
        assert_eq!(per_pod["web-a"].value_milli, 261);
        assert!(
            !per_pod.contains_key("web-b"),
            "a pod with a NaN container reads as missing"
        );
        assert_eq!(
            pod_usage(&usage, "cpu", Some("proxy"), 5, 30_000)["web-a"].value_milli,
            10
        );
        // 0.29 * 1000 is 290.00000000000006 in floats; through nanocores it stays 290m.
        let exact = Value::Vector(vec![sample(&[("pod", "p"), ("container", "c")], 0.29)]);
        assert_eq!(
            pod_usage(&exact, "cpu", None, 5, 30_000)["p"].value_milli,
            290
        );
        let memory = Value::Vector(vec![sample(&[("pod", "p"), ("container", "c")], 1048576.0)]);
        assert_eq!(
            pod_usage(&memory, "memory", None, 5, 30_000)["p"].value_milli,
            1_048_576_000
        );
        let rps = Value::Vector(vec![sample(&[("pod", "web-a")], 2.5)]);
        assert_eq!(pod_values(&rps, 5, 60_000)["web-a"].value_milli, 2500);
        assert_eq!(single(&Value::Vector(vec![sample(&[], 3.0)])), Some(3.0));
        assert_eq!(single(&Value::Vector(Vec::new())), None);
        assert_eq!(
            values(&Value::Vector(vec![
                sample(&[("a", "1")], 1.0),
                sample(&[("a", "2")], 2.0)
            ])),
            [1.0, 2.0]
        );
        let matrix = Value::Matrix(vec![Series {
            labels: Labels::from_pairs(&[("pod", "p"), ("container", "c")]),
            points: vec![
                tsdb::model::Sample::new(2, 1.0),
                tsdb::model::Sample::new(1, 0.5),
            ],
        }]);
        assert_eq!(
            by_pod_container(&matrix)[&("p".to_string(), "c".to_string())],
            [(1, 0.5), (2, 1.0)]
        );
    }
}
