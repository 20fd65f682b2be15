//! The replica calculator: one metric in, one replica proposal out (sections 5 and 6 of
//! the algorithm doc). Values are `i64` milli-units, ratios `f64`, and the order of
//! operations follows upstream so results match bit for bit.

use std::collections::BTreeMap;

use serde::Serialize;

use super::pods::{PodGroups, group_pods, pod_requests, ready_pods_count};
use super::{MetricError, Options, PodMetric, Tolerances};
use crate::explain::Explanation;
use crate::model::{MetricValueStatus, Pod};
use crate::quantity::{Format, Quantity};

/// One metric's proposal and everything that explains it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calculation {
    /// The proposed replica count.
    pub replicas: i32,
    /// What `status.currentMetrics` reports for this metric (from the first pass).
    pub current: MetricValueStatus,
    /// Current value over target, first pass.
    pub usage_ratio: f64,
    /// Pod classes, for metrics computed from per-pod samples.
    pub pods: Option<PodGroups>,
    /// The conservative second pass, when missing or unready pods forced one.
    pub rebalanced: Option<Rebalance>,
    pub decision: Decision,
    pub explanation: Explanation,
}

/// The second pass of section 6.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rebalance {
    /// The value each missing pod was given (milli-units), if missing pods were filled in.
    pub missing_filled_with: Option<String>,
    /// Unready pods counted as using nothing (scale-up only).
    pub unready_as_zero: bool,
    /// The recomputed ratio.
    pub ratio: f64,
    /// Samples that counted in the second pass (includes the filled-in pods).
    pub counted: usize,
}

/// Which rule produced the proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Decision {
    /// The ratio is inside the tolerance band: keep the current count.
    WithinTolerance,
    /// `ceil(ratio * pods)`.
    Scaled,
    /// The conservative second pass landed inside the tolerance band.
    RebalancedWithinTolerance,
    /// The second pass reversed the direction of the change: keep the current count.
    DirectionFlipped,
    /// The new count would move against the ratio (e.g. surge pods): keep the current count.
    CountAgainstRatio,
    /// Current replicas are 0: `ceil(ratio)` without tolerance.
    FromZero,
    /// Per-pod target on a total: `ceil(total / target)`.
    TotalOverPerPodTarget,
}

/// Go's `int32(math.Ceil(x))`, saturating instead of wrapping.
fn ceil_replicas(x: f64) -> i32 {
    x.ceil() as i32
}

fn milli(value: i64) -> Quantity {
    Quantity::from_milli(value, Format::DecimalSi)
}

/// How the first and second passes turn samples into a ratio.
enum Ratio<'a> {
    /// Resource Utilization: `sum(usage) * 100 / sum(request)` as an integer percentage.
    Utilization {
        requests: &'a BTreeMap<String, i64>,
        target_percent: i32,
    },
    /// Plain average: `sum / count` as an integer milli-value.
    Average { target_milli: i64 },
}

struct RatioValue {
    ratio: f64,
    utilization: Option<i32>,
    /// Raw average (resource) or average value (plain), milli.
    average: i64,
}

impl Ratio<'_> {
    fn compute(&self, metrics: &BTreeMap<String, PodMetric>) -> Result<RatioValue, MetricError> {
        match self {
            Ratio::Utilization {
                requests,
                target_percent,
            } => {
                let (mut usage_total, mut request_total, mut n) = (0i64, 0i64, 0i64);
                for (pod, metric) in metrics {
                    // Samples of pods outside the pod list have no request and are skipped.
                    let Some(request) = requests.get(pod) else {
                        continue;
                    };
                    usage_total = usage_total.saturating_add(metric.value_milli);
                    request_total = request_total.saturating_add(*request);
                    n += 1;
                }
                if request_total == 0 {
                    return Err(MetricError::NoMetricsMatchedKnownPods);
                }
                let utilization = usage_total.saturating_mul(100) / request_total;
                let utilization = i32::try_from(utilization).unwrap_or(i32::MAX);
                Ok(RatioValue {
                    ratio: f64::from(utilization) / f64::from(*target_percent),
                    utilization: Some(utilization),
                    average: usage_total / n,
                })
            }
            Ratio::Average { target_milli } => {
                let total = metrics
                    .values()
                    .fold(0i64, |sum, m| sum.saturating_add(m.value_milli));
                let count = i64::try_from(metrics.len()).unwrap_or(i64::MAX).max(1);
                let average = total / count;
                Ok(RatioValue {
                    ratio: average as f64 / *target_milli as f64,
                    utilization: None,
                    average,
                })
            }
        }
    }

    fn describe(&self, value: &RatioValue, n_samples: usize) -> (String, String) {
        match self {
            Ratio::Utilization { target_percent, .. } => (
                format!(
                    "utilization = sum of usage * 100 / sum of requests over {n_samples} pods (integer %), then / target {target_percent}%"
                ),
                format!(
                    "{}% -> ratio {}",
                    value.utilization.unwrap_or_default(),
                    fmt_ratio(value.ratio)
                ),
            ),
            Ratio::Average { target_milli } => (
                format!(
                    "average = sum of values / {n_samples} pods (integer milli), then / target {}",
                    milli(*target_milli)
                ),
                format!(
                    "{} -> ratio {}",
                    milli(value.average),
                    fmt_ratio(value.ratio)
                ),
            ),
        }
    }
}

pub(crate) fn fmt_ratio(r: f64) -> String {
    let s = format!("{r:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Resource or ContainerResource with a Utilization target (`GetResourceReplicas`).
///
/// # Errors
/// The [`MetricError`] upstream would report for this metric.
#[allow(clippy::too_many_arguments)]
pub fn resource_utilization(
    current_replicas: i32,
    target_percent: i32,
    resource: &str,
    container: Option<&str>,
    metrics: BTreeMap<String, PodMetric>,
    pods: &[Pod],
    tolerances: Tolerances,
    now_ms: i64,
    options: &Options,
) -> Result<Calculation, MetricError> {
    if target_percent <= 0 {
        return Err(MetricError::InvalidTarget(format!(
            "target utilization {target_percent}% must be positive"
        )));
    }
    let prepared = prepare(metrics, pods, Some(resource), now_ms, options)?;
    let requests = pod_requests(pods, resource, container)?;
    let ratio = Ratio::Utilization {
        requests: &requests,
        target_percent,
    };
    // On a scale-down a missing pod counts as its full request, more if the target is
    // above 100 %.
    let fallback_percent = i64::from(target_percent.max(100));
    let fill = |pod: &str| requests.get(pod).copied().unwrap_or(0) * fallback_percent / 100;
    let fill_text = format!("{fallback_percent}% of its request");
    let mut explanation = Explanation::new(format!(
        "{resource} utilization against a target of {target_percent}% of the request"
    ));
    explanation.input("target utilization", format!("{target_percent}%"));
    pod_based(
        prepared,
        &ratio,
        &fill,
        &fill_text,
        current_replicas,
        tolerances,
        explanation,
    )
}

/// Resource or ContainerResource with an AverageValue target (`GetRawResourceReplicas`),
/// and Pods metrics (`GetMetricReplicas`): the plain average algorithm. `resource` is
/// the resource name (cpu readiness rules apply to `cpu`) or `None` for Pods metrics.
///
/// # Errors
/// The [`MetricError`] upstream would report for this metric.
#[allow(clippy::too_many_arguments)]
pub fn plain_average(
    current_replicas: i32,
    target_milli: i64,
    resource: Option<&str>,
    metrics: BTreeMap<String, PodMetric>,
    pods: &[Pod],
    tolerances: Tolerances,
    now_ms: i64,
    options: &Options,
) -> Result<Calculation, MetricError> {
    if target_milli == 0 {
        return Err(MetricError::InvalidTarget(
            "target average value is 0".into(),
        ));
    }
    let prepared = prepare(metrics, pods, resource, now_ms, options)?;
    let ratio = Ratio::Average { target_milli };
    let fill = |_: &str| target_milli;
    let fill_text = format!("the target {}", milli(target_milli));
    let mut explanation = Explanation::new(format!(
        "average value per pod against a target of {}",
        milli(target_milli)
    ));
    explanation.input("target average value", milli(target_milli));
    pod_based(
        prepared,
        &ratio,
        &fill,
        &fill_text,
        current_replicas,
        tolerances,
        explanation,
    )
}

/// Object or External metric with a Value target (`GetObjectMetricReplicas`,
/// `GetExternalMetricReplicas`): `value` is the object's value or the sum of the
/// external items.
///
/// # Errors
/// [`MetricError::NoPods`] when replicas are not 0 and the selector matches no pod.
pub fn value_target(
    current_replicas: i32,
    value_milli: i64,
    target_milli: i64,
    pods: &[Pod],
    tolerances: Tolerances,
) -> Result<Calculation, MetricError> {
    if target_milli == 0 {
        return Err(MetricError::InvalidTarget("target value is 0".into()));
    }
    let ratio = value_milli as f64 / target_milli as f64;
    let mut explanation = Explanation::new(format!(
        "metric value {} against a target value of {}",
        milli(value_milli),
        milli(target_milli)
    ));
    explanation
        .input("current value", milli(value_milli))
        .input("target value", milli(target_milli))
        .input("current replicas", current_replicas);
    explanation.step("ratio = value / target", fmt_ratio(ratio));
    let (replicas, decision) = if current_replicas != 0 {
        if tolerances.is_within(ratio) {
            explanation.step(
                format!(
                    "ratio within the tolerance band {}: keep the current count",
                    tolerances.band()
                ),
                current_replicas,
            );
            (current_replicas, Decision::WithinTolerance)
        } else {
            let ready = ready_pods_count(pods)?;
            let replicas = ceil_replicas(ratio * ready as f64);
            explanation.step(
                format!("ceil(ratio * {ready} running and ready pods)"),
                replicas,
            );
            (replicas, Decision::Scaled)
        }
    } else {
        let replicas = ceil_replicas(ratio);
        explanation.step("scaling from zero: ceil(ratio), no tolerance", replicas);
        (replicas, Decision::FromZero)
    };
    Ok(Calculation {
        replicas,
        current: MetricValueStatus {
            value: Some(milli(value_milli)),
            average_value: None,
            average_utilization: None,
        },
        usage_ratio: ratio,
        pods: None,
        rebalanced: None,
        decision,
        explanation,
    })
}

/// Object or External metric with an AverageValue target
/// (`GetObjectPerPodMetricReplicas`, `GetExternalPerPodMetricReplicas`): the total over
/// `status_replicas` pods against a per-pod target.
///
/// # Errors
/// [`MetricError::InvalidTarget`] for a zero target.
pub fn per_pod_target(
    status_replicas: i32,
    total_milli: i64,
    target_average_milli: i64,
    tolerances: Tolerances,
) -> Result<Calculation, MetricError> {
    if target_average_milli == 0 {
        return Err(MetricError::InvalidTarget(
            "target average value is 0".into(),
        ));
    }
    let ratio = total_milli as f64 / (target_average_milli as f64 * f64::from(status_replicas));
    let mut explanation = Explanation::new(format!(
        "total {} against {} per pod",
        milli(total_milli),
        milli(target_average_milli)
    ));
    explanation
        .input("current total", milli(total_milli))
        .input("target average value", milli(target_average_milli))
        .input("replicas in status", status_replicas);
    explanation.step("ratio = total / (target * replicas)", fmt_ratio(ratio));
    let (replicas, decision) = if tolerances.is_within(ratio) {
        explanation.step(
            format!(
                "ratio within the tolerance band {}: keep the current count",
                tolerances.band()
            ),
            status_replicas,
        );
        (status_replicas, Decision::WithinTolerance)
    } else {
        let replicas = ceil_replicas(total_milli as f64 / target_average_milli as f64);
        explanation.step("ceil(total / target per pod)", replicas);
        (replicas, Decision::TotalOverPerPodTarget)
    };
    // Upstream divides by the status replicas; with none there is no average to
    // report, so report the total rather than dividing by zero.
    let average = if status_replicas == 0 {
        total_milli
    } else {
        (total_milli as f64 / f64::from(status_replicas)).ceil() as i64
    };
    Ok(Calculation {
        replicas,
        current: MetricValueStatus {
            value: None,
            average_value: Some(milli(average)),
            average_utilization: None,
        },
        usage_ratio: ratio,
        pods: None,
        rebalanced: None,
        decision,
        explanation,
    })
}

/// Samples with the ignored and unready pods removed, plus the pod classes.
struct Prepared {
    metrics: BTreeMap<String, PodMetric>,
    groups: PodGroups,
    n_pods: usize,
}

fn prepare(
    mut metrics: BTreeMap<String, PodMetric>,
    pods: &[Pod],
    resource: Option<&str>,
    now_ms: i64,
    options: &Options,
) -> Result<Prepared, MetricError> {
    if pods.is_empty() {
        return Err(MetricError::NoPods);
    }
    let groups = group_pods(pods, &metrics, resource, now_ms, options);
    for pod in groups.ignored.iter().chain(groups.unready.iter()) {
        metrics.remove(pod);
    }
    if metrics.is_empty() {
        return Err(MetricError::NoMetricsForReadyPods);
    }
    Ok(Prepared {
        metrics,
        groups,
        n_pods: pods.len(),
    })
}

/// Section 6: the first pass, and the conservative second pass when pods are missing or
/// unready.
fn pod_based(
    prepared: Prepared,
    ratio: &Ratio<'_>,
    fill_missing: &dyn Fn(&str) -> i64,
    fill_text: &str,
    current_replicas: i32,
    tolerances: Tolerances,
    mut explanation: Explanation,
) -> Result<Calculation, MetricError> {
    let Prepared {
        mut metrics,
        groups,
        n_pods,
    } = prepared;
    explanation
        .input("current replicas", current_replicas)
        .input(
            "pods",
            format!(
                "{n_pods} ({} ready, {} unready, {} missing a sample, {} ignored)",
                groups.ready,
                groups.unready.len(),
                groups.missing.len(),
                groups.ignored.len()
            ),
        );
    let first = ratio.compute(&metrics)?;
    let (what, value) = ratio.describe(&first, metrics.len());
    explanation.step(what, value);
    let usage_ratio = first.ratio;
    let scale_up_with_unready = !groups.unready.is_empty() && usage_ratio > 1.0;

    // The reported value always comes from the first pass.
    let current = MetricValueStatus {
        value: None,
        average_value: Some(milli(first.average)),
        average_utilization: first.utilization,
    };
    let done = |replicas: i32,
                decision: Decision,
                rebalanced: Option<Rebalance>,
                explanation: Explanation,
                groups: PodGroups| Calculation {
        replicas,
        current: current.clone(),
        usage_ratio,
        pods: Some(groups),
        rebalanced,
        decision,
        explanation,
    };

    if !scale_up_with_unready && groups.missing.is_empty() {
        if tolerances.is_within(usage_ratio) {
            explanation.step(
                format!(
                    "ratio within the tolerance band {}: keep the current count",
                    tolerances.band()
                ),
                current_replicas,
            );
            return Ok(done(
                current_replicas,
                Decision::WithinTolerance,
                None,
                explanation,
                groups,
            ));
        }
        let replicas = ceil_replicas(usage_ratio * groups.ready as f64);
        explanation.step(
            format!("ceil(ratio * {} ready pods)", groups.ready),
            replicas,
        );
        return Ok(done(replicas, Decision::Scaled, None, explanation, groups));
    }

    // The conservative second pass.
    let mut missing_filled_with = None;
    if !groups.missing.is_empty() {
        if usage_ratio < 1.0 {
            for pod in &groups.missing {
                metrics.insert(pod.clone(), PodMetric::value(fill_missing(pod)));
            }
            missing_filled_with = Some(fill_text.to_string());
            explanation.step(
                format!(
                    "scale-down with {} pod(s) missing a sample: count each as using {fill_text}",
                    groups.missing.len()
                ),
                "",
            );
        } else if usage_ratio > 1.0 {
            for pod in &groups.missing {
                metrics.insert(pod.clone(), PodMetric::value(0));
            }
            missing_filled_with = Some("0".to_string());
            explanation.step(
                format!(
                    "scale-up with {} pod(s) missing a sample: count each as using nothing",
                    groups.missing.len()
                ),
                "",
            );
        }
    }
    if scale_up_with_unready {
        for pod in &groups.unready {
            metrics.insert(pod.clone(), PodMetric::value(0));
        }
        explanation.step(
            format!(
                "scale-up with {} unready pod(s): count each as using nothing",
                groups.unready.len()
            ),
            "",
        );
    }
    let second = ratio.compute(&metrics)?;
    let new_ratio = second.ratio;
    let (what, value) = ratio.describe(&second, metrics.len());
    explanation.step(format!("recomputed {what}"), value);
    let rebalanced = Some(Rebalance {
        missing_filled_with,
        unready_as_zero: scale_up_with_unready,
        ratio: new_ratio,
        counted: metrics.len(),
    });
    if tolerances.is_within(new_ratio) {
        explanation.step(
            format!(
                "recomputed ratio within the tolerance band {}: keep the current count",
                tolerances.band()
            ),
            current_replicas,
        );
        return Ok(done(
            current_replicas,
            Decision::RebalancedWithinTolerance,
            rebalanced,
            explanation,
            groups,
        ));
    }
    if (usage_ratio < 1.0 && new_ratio > 1.0) || (usage_ratio > 1.0 && new_ratio < 1.0) {
        explanation.step(
            "the recomputed ratio points the other way: keep the current count",
            current_replicas,
        );
        return Ok(done(
            current_replicas,
            Decision::DirectionFlipped,
            rebalanced,
            explanation,
            groups,
        ));
    }
    let replicas = ceil_replicas(new_ratio * metrics.len() as f64);
    if (new_ratio < 1.0 && replicas > current_replicas)
        || (new_ratio > 1.0 && replicas < current_replicas)
    {
        explanation.step(
            format!(
                "ceil(recomputed ratio * {} counted pods) = {replicas} moves against the ratio: keep the current count",
                metrics.len()
            ),
            current_replicas,
        );
        return Ok(done(
            current_replicas,
            Decision::CountAgainstRatio,
            rebalanced,
            explanation,
            groups,
        ));
    }
    explanation.step(
        format!("ceil(recomputed ratio * {} counted pods)", metrics.len()),
        replicas,
    );
    Ok(done(
        replicas,
        Decision::Scaled,
        rebalanced,
        explanation,
        groups,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CPU;

    const NOW: i64 = 1_700_000_000_000;

    fn pods(requests: &[i64]) -> Vec<Pod> {
        requests
            .iter()
            .enumerate()
            .map(|(i, r)| Pod::running(&format!("p{i}"), NOW - 3_600_000, &[(CPU, *r)]))
            .collect()
    }

    fn samples(values: &[Option<i64>]) -> BTreeMap<String, PodMetric> {
        values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.map(|v| {
                    (
                        format!("p{i}"),
                        PodMetric {
                            value_milli: v,
                            timestamp_ms: NOW,
                            window_ms: 30_000,
                        },
                    )
                })
            })
            .collect()
    }

    #[test]
    fn truncated_percentage_drives_the_ratio() {
        // 2.8 pods' worth of a 50 % target: 28 %, 28/50 = 0.56, ceil(0.56*5) = 3.
        let calc = resource_utilization(
            5,
            50,
            CPU,
            None,
            samples(&[Some(200), Some(600), Some(1000), Some(500), Some(500)]),
            &pods(&[2000; 5]),
            Tolerances::default(),
            NOW,
            &Options::default(),
        )
        .unwrap();
        assert_eq!(calc.replicas, 3);
        assert_eq!(calc.current.average_utilization, Some(28));
        assert_eq!(calc.current.average_value.unwrap().to_string(), "560m");
        assert_eq!(calc.decision, Decision::Scaled);
        let text = calc.explanation.to_string();
        assert!(text.contains("28% -> ratio 0.56"), "{text}");
        assert!(text.contains("ceil(ratio * 5 ready pods) = 3"), "{text}");
    }

    #[test]
    fn missing_request_and_empty_inputs_are_metric_errors() {
        let err = resource_utilization(
            1,
            50,
            "memory",
            None,
            samples(&[Some(1)]),
            &pods(&[1000]),
            Tolerances::default(),
            NOW,
            &Options::default(),
        )
        .unwrap_err();
        assert!(matches!(err, MetricError::MissingRequest { .. }));
        let err = plain_average(
            1,
            10,
            None,
            samples(&[Some(1)]),
            &[],
            Tolerances::default(),
            NOW,
            &Options::default(),
        )
        .unwrap_err();
        assert_eq!(err, MetricError::NoPods);
        let err = plain_average(
            1,
            10,
            None,
            samples(&[None]),
            &pods(&[1]),
            Tolerances::default(),
            NOW,
            &Options::default(),
        );
        // The only pod is missing its sample: nothing left to compute from.
        assert_eq!(err.unwrap_err(), MetricError::NoMetricsForReadyPods);
    }

    #[test]
    fn missing_pods_on_scale_down_count_as_the_target() {
        // Two pods at 5 against a target of 10, one pod missing: ratio 0.5; the missing pod
        // counts as 10, the average becomes 6 (20/3 truncated), ceil(0.6*3) = 2.
        let calc = plain_average(
            3,
            10,
            None,
            samples(&[Some(5), Some(5), None]),
            &pods(&[1, 1, 1]),
            Tolerances::default(),
            NOW,
            &Options::default(),
        )
        .unwrap();
        assert_eq!(calc.replicas, 2);
        assert_eq!(calc.current.average_value.unwrap().to_string(), "5m");
        let rebalance = calc.rebalanced.unwrap();
        assert_eq!(rebalance.counted, 3);
        assert_eq!(rebalance.ratio, 0.6);
    }

    #[test]
    fn value_and_per_pod_targets() {
        let calc = value_target(0, 20_000, 15_000, &[], Tolerances::default()).unwrap();
        assert_eq!((calc.replicas, calc.decision), (2, Decision::FromZero));
        assert_eq!(
            value_target(3, 20_000, 15_000, &[], Tolerances::default()).unwrap_err(),
            MetricError::NoPods
        );
        let calc = per_pod_target(3, 20_000, 5_000, Tolerances::default()).unwrap();
        assert_eq!(calc.replicas, 4);
        assert_eq!(calc.current.average_value.unwrap().to_string(), "6667m");
        // Enormous ratios clamp to i32::MAX instead of wrapping.
        let calc = value_target(0, i64::MAX, 1, &[], Tolerances::default()).unwrap();
        assert_eq!(calc.replicas, i32::MAX);
    }
}
