//! Pod classification and per-pod requests, as the replica calculator does them
//! (`groupPods`, `calculatePodRequests`, `getReadyPodsCount`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{MetricError, Options, PodMetric};
use crate::model::{CPU, ConditionStatus, Pod, PodPhase};

/// How the pods of a workload split up for one metric.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodGroups {
    /// Pods whose samples count.
    pub ready: usize,
    /// Pending pods, and (cpu only) pods that are not ready or still initialising.
    pub unready: Vec<String>,
    /// Running pods without a sample.
    pub missing: Vec<String>,
    /// Pods being deleted or failed: dropped from everything.
    pub ignored: Vec<String>,
}

/// Puts each pod in exactly one class (section 4 of the algorithm doc).
pub fn group_pods(
    pods: &[Pod],
    metrics: &BTreeMap<String, PodMetric>,
    resource: Option<&str>,
    now_ms: i64,
    options: &Options,
) -> PodGroups {
    let cpu_init_ms = duration_ms(options.cpu_initialization_period);
    let readiness_delay_ms = duration_ms(options.initial_readiness_delay);
    let mut groups = PodGroups::default();
    for pod in pods {
        if pod.deleting || pod.phase == PodPhase::Failed {
            groups.ignored.push(pod.name.clone());
            continue;
        }
        if pod.phase == PodPhase::Pending {
            groups.unready.push(pod.name.clone());
            continue;
        }
        let Some(metric) = metrics.get(&pod.name) else {
            groups.missing.push(pod.name.clone());
            continue;
        };
        if resource == Some(CPU)
            && cpu_sample_unready(pod, metric, now_ms, cpu_init_ms, readiness_delay_ms)
        {
            groups.unready.push(pod.name.clone());
            continue;
        }
        groups.ready += 1;
    }
    groups
}

/// Rule 4: whether a cpu sample of this pod must be ignored.
fn cpu_sample_unready(
    pod: &Pod,
    metric: &PodMetric,
    now_ms: i64,
    cpu_init_ms: i64,
    readiness_delay_ms: i64,
) -> bool {
    let (Some(condition), Some(start_ms)) = (pod.ready, pod.start_time_ms) else {
        return true;
    };
    if start_ms.saturating_add(cpu_init_ms) > now_ms {
        // Still initialising: the sample must be ready and cover a full window since the
        // last readiness change.
        condition.status == ConditionStatus::False
            || metric.timestamp_ms
                < condition
                    .last_transition_ms
                    .saturating_add(metric.window_ms)
    } else {
        // Past initialisation: ignore only pods that are unready and were never ready.
        condition.status == ConditionStatus::False
            && start_ms.saturating_add(readiness_delay_ms) > condition.last_transition_ms
    }
}

/// Requests per pod in milli-units for `resource`, restricted to `container` when given
/// (ContainerResource). Restartable init containers (sidecars) count; pod-level requests
/// replace the container sum for Resource metrics when set.
///
/// # Errors
/// [`MetricError::MissingRequest`] when a counted container has no request.
pub fn pod_requests(
    pods: &[Pod],
    resource: &str,
    container: Option<&str>,
) -> Result<BTreeMap<String, i64>, MetricError> {
    let mut requests = BTreeMap::new();
    for pod in pods {
        if container.is_none()
            && let Some(pod_level) = pod.pod_requests_milli.get(resource)
        {
            requests.insert(pod.name.clone(), *pod_level);
            continue;
        }
        let mut sum: i64 = 0;
        let counted = pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().filter(|c| c.restart_always));
        for c in counted {
            if container.is_some_and(|name| name != c.name) {
                continue;
            }
            let Some(request) = c.requests_milli.get(resource) else {
                return Err(MetricError::MissingRequest {
                    resource: resource.to_string(),
                    container: c.name.clone(),
                    pod: pod.name.clone(),
                });
            };
            sum = sum.saturating_add(*request);
        }
        requests.insert(pod.name.clone(), sum);
    }
    Ok(requests)
}

/// Pods that are Running and Ready (the multiplier of Object and External Value targets).
///
/// # Errors
/// [`MetricError::NoPods`] when the selector matched nothing.
pub fn ready_pods_count(pods: &[Pod]) -> Result<usize, MetricError> {
    if pods.is_empty() {
        return Err(MetricError::NoPods);
    }
    Ok(pods.iter().filter(|p| p.is_running_and_ready()).count())
}

/// Per-pod usage from per-container usage, as the resource metrics client builds it:
/// the sum over containers, or the named container only. A pod where a container lacks
/// the reading (or the named container is absent) is left out, so it counts as missing.
pub fn pod_usage_from_containers(
    containers_by_pod: &BTreeMap<String, BTreeMap<String, Option<i64>>>,
    container: Option<&str>,
    timestamp_ms: i64,
    window_ms: i64,
) -> BTreeMap<String, PodMetric> {
    let mut out = BTreeMap::new();
    for (pod, containers) in containers_by_pod {
        let value = match container {
            Some(name) => containers.get(name).copied().flatten(),
            None => containers
                .values()
                .try_fold(0i64, |sum, v| v.map(|v| sum.saturating_add(v))),
        };
        if let Some(value_milli) = value {
            out.insert(
                pod.clone(),
                PodMetric {
                    value_milli,
                    timestamp_ms,
                    window_ms,
                },
            );
        }
    }
    out
}

pub(crate) fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Container, ReadyCondition};

    const NOW: i64 = 1_700_000_000_000;
    const MIN: i64 = 60_000;

    fn pod(name: &str, start: i64, ready: Option<(ConditionStatus, i64)>) -> Pod {
        let mut p = Pod::running(name, start, &[(CPU, 1000)]);
        p.ready = ready.map(|(status, t)| ReadyCondition {
            status,
            last_transition_ms: t,
        });
        p
    }

    fn sample(t: i64) -> PodMetric {
        PodMetric {
            value_milli: 100,
            timestamp_ms: t,
            window_ms: 30_000,
        }
    }

    #[test]
    fn cpu_readiness_rules() {
        use ConditionStatus::{False, True};
        let options = Options::default();
        let pods = vec![
            // Initialising, ready, but the sample does not cover a window since the change.
            pod("young-fresh", NOW - MIN, Some((True, NOW - 10_000))),
            // Initialising, ready long enough: counts.
            pod("young-ok", NOW - MIN, Some((True, NOW - MIN))),
            // Initialising and not ready.
            pod("young-unready", NOW - MIN, Some((False, NOW - MIN))),
            // Old, not ready, never was ready (transition within the readiness delay).
            pod(
                "old-never-ready",
                NOW - 60 * MIN,
                Some((False, NOW - 60 * MIN + 10_000)),
            ),
            // Old, became unready later: still counts.
            pod(
                "old-was-ready",
                NOW - 60 * MIN,
                Some((False, NOW - 30 * MIN)),
            ),
            // No Ready condition at all.
            pod("no-condition", NOW - 60 * MIN, None),
            // No sample.
            pod("missing", NOW - 60 * MIN, Some((True, NOW - 60 * MIN))),
        ];
        let mut failed = pod("failed", NOW - MIN, Some((True, NOW - MIN)));
        failed.phase = PodPhase::Failed;
        let mut pending = pod("pending", NOW - MIN, None);
        pending.phase = PodPhase::Pending;
        let mut deleting = pod("deleting", NOW - 60 * MIN, Some((True, NOW - 60 * MIN)));
        deleting.deleting = true;
        let pods: Vec<Pod> = pods
            .into_iter()
            .chain([failed, pending, deleting])
            .collect();
        let metrics: BTreeMap<String, PodMetric> = pods
            .iter()
            .filter(|p| p.name != "missing")
            .map(|p| (p.name.clone(), sample(NOW)))
            .collect();

        let groups = group_pods(&pods, &metrics, Some(CPU), NOW, &options);
        assert_eq!(groups.ready, 2, "{groups:?}");
        assert_eq!(
            groups.unready,
            [
                "young-fresh",
                "young-unready",
                "old-never-ready",
                "no-condition",
                "pending"
            ]
        );
        assert_eq!(groups.missing, ["missing"]);
        assert_eq!(groups.ignored, ["failed", "deleting"]);

        // For memory (or any non-cpu metric) readiness is not checked.
        let groups = group_pods(&pods, &metrics, Some("memory"), NOW, &options);
        assert_eq!(groups.ready, 6);
        assert_eq!(groups.unready, ["pending"]);
    }

    #[test]
    fn requests_count_sidecars_and_respect_pod_level_requests() {
        let mut p = Pod::running("a", NOW, &[(CPU, 200)]);
        p.init_containers.push(Container {
            name: "sidecar".into(),
            requests_milli: [(CPU.to_string(), 50)].into(),
            restart_always: true,
        });
        p.init_containers.push(Container {
            name: "init".into(),
            requests_milli: BTreeMap::new(),
            restart_always: false,
        });
        let requests = pod_requests(std::slice::from_ref(&p), CPU, None).unwrap();
        assert_eq!(requests["a"], 250);
        let requests = pod_requests(std::slice::from_ref(&p), CPU, Some("sidecar")).unwrap();
        assert_eq!(requests["a"], 50);
        // A named container that does not exist contributes 0, as upstream.
        let requests = pod_requests(std::slice::from_ref(&p), CPU, Some("other")).unwrap();
        assert_eq!(requests["a"], 0);
        let err = pod_requests(std::slice::from_ref(&p), "memory", None).unwrap_err();
        assert!(
            err.to_string()
                .contains("missing request for memory in container main of Pod a"),
            "{err}"
        );
        p.pod_requests_milli.insert(CPU.into(), 1000);
        assert_eq!(
            pod_requests(std::slice::from_ref(&p), CPU, None).unwrap()["a"],
            1000
        );
    }

    #[test]
    fn usage_from_containers_marks_incomplete_pods_missing() {
        let by_pod: BTreeMap<String, BTreeMap<String, Option<i64>>> = [
            (
                "a".to_string(),
                [
                    ("app".to_string(), Some(300)),
                    ("side".to_string(), Some(20)),
                ]
                .into(),
            ),
            (
                "b".to_string(),
                [("app".to_string(), Some(100)), ("side".to_string(), None)].into(),
            ),
        ]
        .into();
        let all = pod_usage_from_containers(&by_pod, None, NOW, 30_000);
        assert_eq!(all.len(), 1);
        assert_eq!(all["a"].value_milli, 320);
        let app = pod_usage_from_containers(&by_pod, Some("app"), NOW, 30_000);
        assert_eq!(app["b"].value_milli, 100);
    }
}
