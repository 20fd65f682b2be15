//! The Kubernetes HorizontalPodAutoscaler algorithm, pure: an HPA spec, what the
//! controller observed (scale, pods, metric readings) and the in-memory history go in; a
//! replica recommendation with conditions and an explanation comes out. No IO; time is
//! a parameter, read from a [`Clock`] by [`Autoscaler`].
//!
//! Reference: `shared/docs/hpa-algorithm.md` (sections cited in the code).
//! - [`calculator`]: one metric to one proposal (sections 5, 6).
//! - [`pods`]: pod classification and requests (section 4).
//! - [`behavior`]: stabilisation, scaling policies, the legacy clamp (sections 8, 9).
//! - [`reconcile`]: one sync of one HPA (sections 3, 7, 10).

pub mod behavior;
pub mod calculator;
pub mod pods;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tsdb::clock::Clock;

pub use behavior::{Behavior, History, ScaleEvent, ScalingRules, TimestampedRecommendation};
pub use calculator::{Calculation, Decision, Rebalance};
pub use pods::PodGroups;

use crate::explain::Explanation;
use crate::model::{HorizontalPodAutoscalerSpec, MetricSource, MetricSourceType, MetricSpec, Pod};

/// kube-controller-manager flags of the HPA controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// `--horizontal-pod-autoscaler-sync-period`.
    pub sync_period: Duration,
    /// `--horizontal-pod-autoscaler-tolerance`, both directions.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`.
    pub downscale_stabilization: Duration,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`.
    pub cpu_initialization_period: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`.
    pub initial_readiness_delay: Duration,
    /// The legacy scale-up limit is `max(factor * current, minimum)`.
    pub scale_up_limit_factor: f64,
    pub scale_up_limit_minimum: f64,
}

impl Default for Options {
    /// The production defaults.
    fn default() -> Self {
        Options {
            sync_period: Duration::from_secs(15),
            tolerance: 0.1,
            downscale_stabilization: Duration::from_secs(300),
            cpu_initialization_period: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
            scale_up_limit_factor: 2.0,
            scale_up_limit_minimum: 4.0,
        }
    }
}

/// The dead band around ratio 1.0, per direction; both bounds inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerances {
    pub scale_up: f64,
    pub scale_down: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            scale_up: 0.1,
            scale_down: 0.1,
        }
    }
}

impl Tolerances {
    /// `(1 - scale_down) <= ratio <= (1 + scale_up)`.
    pub fn is_within(&self, ratio: f64) -> bool {
        (1.0 - self.scale_down) <= ratio && ratio <= (1.0 + self.scale_up)
    }

    /// The tolerances of an HPA: the per-direction `behavior` values where set, else
    /// the controller's flag.
    pub fn for_hpa(behavior: Option<&Behavior>, default: f64) -> Tolerances {
        let mut t = Tolerances {
            scale_up: default,
            scale_down: default,
        };
        if let Some(b) = behavior {
            if let Some(up) = b.scale_up.tolerance {
                t.scale_up = up;
            }
            if let Some(down) = b.scale_down.tolerance {
                t.scale_down = down;
            }
        }
        t
    }

    fn band(&self) -> String {
        format!(
            "[{}, {}]",
            calculator::fmt_ratio(1.0 - self.scale_down),
            calculator::fmt_ratio(1.0 + self.scale_up)
        )
    }
}

/// One pod's sample of a metric, in milli-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodMetric {
    pub value_milli: i64,
    /// When the sample was taken, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The window the sample covers (`window`, or `windowSeconds`; 1 minute by default).
    pub window_ms: i64,
}

impl PodMetric {
    /// A value without timing, as the calculator fills in for missing or unready pods.
    pub fn value(value_milli: i64) -> PodMetric {
        PodMetric {
            value_milli,
            timestamp_ms: 0,
            window_ms: 0,
        }
    }
}

/// What the controller read for one entry of `spec.metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetricReading {
    /// Per-pod samples keyed by pod name: resource usage (pod totals, or the named
    /// container's) or a Pods metric. Samples for pods outside the pod list are kept, as
    /// upstream keeps them.
    PerPod(BTreeMap<String, PodMetric>),
    /// The Object metric's value (exactly one) or the External metric's items (summed).
    Values(Vec<i64>),
    /// The metric could not be read; the message says why.
    Unavailable(String),
}

/// What the controller observed at one sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// `scale.spec.replicas`: the current replica count.
    pub spec_replicas: i32,
    /// `scale.status.replicas`: used by Object/External AverageValue targets.
    pub status_replicas: i32,
    /// The pods the scale selector matches.
    pub pods: Vec<Pod>,
    /// One reading per entry of `spec.metrics` (or of the default cpu metric).
    pub readings: Vec<MetricReading>,
}

/// Why one metric produced no proposal (the message upstream reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum MetricError {
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetricsForReadyPods,
    #[error("no metrics returned matched known pods")]
    NoMetricsMatchedKnownPods,
    #[error("missing request for {resource} in container {container} of Pod {pod}")]
    MissingRequest {
        resource: String,
        container: String,
        pod: String,
    },
    #[error("no metrics returned from {0}")]
    NoMetricsReturned(String),
    #[error("{0}")]
    InvalidTarget(String),
    #[error("unable to get metric: {0}")]
    Unavailable(String),
    #[error("reading does not fit the metric: {0}")]
    ReadingMismatch(String),
}

/// The reason of an HPA status condition, spelled as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    SucceededGetScale,
    ReadyForNewScale,
    ScaleUpStabilized,
    ScaleDownStabilized,
    ValidMetricFound,
    FailedGetResourceMetric,
    FailedGetContainerResourceMetric,
    FailedGetPodsMetric,
    FailedGetObjectMetric,
    FailedGetExternalMetric,
    ScalingDisabled,
    DesiredWithinRange,
    TooFewReplicas,
    TooManyReplicas,
    ScaleUpLimit,
    ScaleDownLimit,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Reason {
    fn failed_get(source: MetricSourceType) -> Reason {
        match source {
            MetricSourceType::Resource => Reason::FailedGetResourceMetric,
            MetricSourceType::ContainerResource => Reason::FailedGetContainerResourceMetric,
            MetricSourceType::Pods => Reason::FailedGetPodsMetric,
            MetricSourceType::Object => Reason::FailedGetObjectMetric,
            MetricSourceType::External => Reason::FailedGetExternalMetric,
        }
    }

    /// Upstream's message for the `ScalingLimited` and `AbleToScale` reasons.
    fn message(&self) -> &'static str {
        match self {
            Reason::SucceededGetScale => {
                "the HPA controller was able to get the target's current scale"
            }
            Reason::ReadyForNewScale => "recommended size matches current size",
            Reason::ScaleUpStabilized => {
                "recent recommendations were lower than current one, applying the lowest recent recommendation"
            }
            Reason::ScaleDownStabilized => {
                "recent recommendations were higher than current one, applying the highest recent recommendation"
            }
            Reason::ScalingDisabled => {
                "scaling is disabled since the replica count of the target is zero"
            }
            Reason::DesiredWithinRange => "the desired count is within the acceptable range",
            Reason::TooFewReplicas => {
                "the desired replica count is less than the minimum replica count"
            }
            Reason::TooManyReplicas => {
                "the desired replica count is more than the maximum replica count"
            }
            Reason::ScaleUpLimit => {
                "the desired replica count is increasing faster than the maximum scale rate"
            }
            Reason::ScaleDownLimit => {
                "the desired replica count is decreasing faster than the maximum scale rate"
            }
            Reason::ValidMetricFound
            | Reason::FailedGetResourceMetric
            | Reason::FailedGetContainerResourceMetric
            | Reason::FailedGetPodsMetric
            | Reason::FailedGetObjectMetric
            | Reason::FailedGetExternalMetric => "",
        }
    }
}

/// One HPA status condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub status: bool,
    pub reason: Reason,
    pub message: String,
}

impl Condition {
    fn new(status: bool, reason: Reason) -> Condition {
        Condition {
            status,
            reason,
            message: reason.message().to_string(),
        }
    }
}

/// One metric's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricResult {
    /// e.g. `resource cpu`, `pods metric qps`.
    pub metric: String,
    pub source: MetricSourceType,
    pub outcome: MetricOutcome,
}

/// A proposal, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum MetricOutcome {
    Computed(Box<Calculation>),
    Failed(MetricError),
}

impl MetricResult {
    /// The proposed replica count, if the metric was computed.
    pub fn replicas(&self) -> Option<i32> {
        match &self.outcome {
            MetricOutcome::Computed(c) => Some(c.replicas),
            MetricOutcome::Failed(_) => None,
        }
    }
}

/// The outcome of one sync: what the controller would scale to, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub current_replicas: i32,
    pub desired_replicas: i32,
    /// The maximum over valid metric proposals, before normalisation; `None` when the
    /// metrics were not consulted or all failed.
    pub proposal: Option<i32>,
    /// After stabilisation, before the rate limit and min/max clamp.
    pub stabilized: Option<i32>,
    pub metrics: Vec<MetricResult>,
    pub able_to_scale: Condition,
    pub scaling_active: Condition,
    /// Set when the proposal went through normalisation.
    pub scaling_limited: Option<Condition>,
    /// Set when some metrics failed (`invalid metrics (N invalid out of M), first error
    /// is: ...`); with `desired == current` when the controller refuses to scale.
    pub error: Option<String>,
    pub explanation: Explanation,
}

impl Recommendation {
    /// Whether the controller would rescale.
    pub fn rescale(&self) -> bool {
        self.desired_replicas != self.current_replicas
            && self.scaling_active.reason != Reason::ScalingDisabled
    }
}

/// Computes one metric's proposal, routing by source and target as upstream does.
///
/// # Errors
/// The metric's [`MetricError`].
pub fn compute_metric(
    spec: &MetricSpec,
    reading: &MetricReading,
    observation: &Observation,
    tolerances: Tolerances,
    now_ms: i64,
    options: &Options,
) -> Result<Calculation, MetricError> {
    let source = spec.source().map_err(MetricError::InvalidTarget)?;
    let per_pod = |api: &str| match reading {
        MetricReading::PerPod(m) if m.is_empty() => {
            Err(MetricError::NoMetricsReturned(api.to_string()))
        }
        MetricReading::PerPod(m) => Ok(m.clone()),
        MetricReading::Values(_) => Err(MetricError::ReadingMismatch(
            "per-pod samples expected, got metric values".into(),
        )),
        MetricReading::Unavailable(why) => Err(MetricError::Unavailable(why.clone())),
    };
    let values = || match reading {
        MetricReading::Values(v) => Ok(v.as_slice()),
        MetricReading::PerPod(_) => Err(MetricError::ReadingMismatch(
            "metric values expected, got per-pod samples".into(),
        )),
        MetricReading::Unavailable(why) => Err(MetricError::Unavailable(why.clone())),
    };
    let current = observation.spec_replicas;
    let pods = observation.pods.as_slice();
    match source {
        MetricSource::Resource(r) => resource_metric(
            r.name.as_str(),
            None,
            &r.target,
            per_pod,
            current,
            pods,
            tolerances,
            now_ms,
            options,
        ),
        MetricSource::ContainerResource(r) => resource_metric(
            r.name.as_str(),
            Some(r.container.as_str()),
            &r.target,
            per_pod,
            current,
            pods,
            tolerances,
            now_ms,
            options,
        ),
        MetricSource::Pods(p) => {
            let target = p.target.average_value.as_ref().ok_or_else(|| {
                MetricError::InvalidTarget(
                    "invalid pods metric source: no average value target was set".into(),
                )
            })?;
            let metrics = per_pod("custom metrics API")?;
            calculator::plain_average(
                current,
                target.milli_value(),
                None,
                metrics,
                pods,
                tolerances,
                now_ms,
                options,
            )
        }
        MetricSource::Object(o) => {
            use crate::model::MetricTargetType::{AverageValue, Value};
            let value = match values()? {
                [v] => *v,
                other => {
                    return Err(MetricError::NoMetricsReturned(format!(
                        "custom metrics API: returned {} results when we asked for exactly one",
                        other.len()
                    )));
                }
            };
            match (o.target.type_, &o.target.value, &o.target.average_value) {
                (Value, Some(target), _) => {
                    calculator::value_target(current, value, target.milli_value(), pods, tolerances)
                }
                (AverageValue, _, Some(target)) => calculator::per_pod_target(
                    observation.status_replicas,
                    value,
                    target.milli_value(),
                    tolerances,
                ),
                _ => Err(MetricError::InvalidTarget(
                    "invalid object metric source: neither a value target nor an average value target was set".into(),
                )),
            }
        }
        MetricSource::External(e) => {
            let items = values()?;
            if items.is_empty() {
                return Err(MetricError::NoMetricsReturned(
                    "external metrics API".into(),
                ));
            }
            let sum = items.iter().fold(0i64, |s, v| s.saturating_add(*v));
            if let Some(target) = &e.target.average_value {
                calculator::per_pod_target(
                    observation.status_replicas,
                    sum,
                    target.milli_value(),
                    tolerances,
                )
            } else if let Some(target) = &e.target.value {
                calculator::value_target(current, sum, target.milli_value(), pods, tolerances)
            } else {
                Err(MetricError::InvalidTarget(
                    "invalid external metric source: neither a value target nor an average value target was set"
                        .into(),
                ))
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn resource_metric(
    resource: &str,
    container: Option<&str>,
    target: &crate::model::MetricTarget,
    per_pod: impl Fn(&str) -> Result<BTreeMap<String, PodMetric>, MetricError>,
    current: i32,
    pods: &[Pod],
    tolerances: Tolerances,
    now_ms: i64,
    options: &Options,
) -> Result<Calculation, MetricError> {
    // An average value target wins over utilization whatever the type says, as upstream.
    if let Some(average) = &target.average_value {
        let metrics = per_pod("resource metrics API")?;
        return calculator::plain_average(
            current,
            average.milli_value(),
            Some(resource),
            metrics,
            pods,
            tolerances,
            now_ms,
            options,
        );
    }
    let Some(percent) = target.average_utilization else {
        return Err(MetricError::InvalidTarget(
            "invalid resource metric source: neither an average utilization target nor an average value (usage) target was set"
                .into(),
        ));
    };
    let metrics = per_pod("resource metrics API")?;
    calculator::resource_utilization(
        current, percent, resource, container, metrics, pods, tolerances, now_ms, options,
    )
}

/// One sync of one HPA (sections 3, 7, 8, 9): compute every metric, take the maximum,
/// normalise with the legacy rules or `behavior`, and report conditions. `history` is
/// read and updated (the proposal is stored); scale events are recorded separately with
/// [`History::record_scale_event`] once a rescale is applied.
pub fn reconcile(
    spec: &HorizontalPodAutoscalerSpec,
    observation: &Observation,
    history: &mut History,
    now_ms: i64,
    options: &Options,
) -> Recommendation {
    let current = observation.spec_replicas;
    let min_replicas = spec.min_replicas_or_default();
    let max_replicas = spec.max_replicas;
    let downscale_window_s =
        i32::try_from(options.downscale_stabilization.as_secs()).unwrap_or(i32::MAX);
    let behavior = spec
        .behavior
        .as_ref()
        .map(|b| Behavior::from_spec(b, downscale_window_s));
    let tolerances = Tolerances::for_hpa(behavior.as_ref(), options.tolerance);

    let mut explanation = Explanation::new(String::new());
    explanation
        .input("current replicas", current)
        .input("min replicas", min_replicas)
        .input("max replicas", max_replicas)
        .input("tolerance band", tolerances.band());
    match &behavior {
        None => explanation.input(
            "behavior",
            format!(
                "not set: scale-down follows the highest proposal of the last {} s, scale-up at most to max({} x current, {})",
                options.downscale_stabilization.as_secs(),
                options.scale_up_limit_factor,
                options.scale_up_limit_minimum
            ),
        ),
        Some(b) => explanation.input("behavior", describe_behavior(b)),
    };

    let mut recommendation = Recommendation {
        current_replicas: current,
        desired_replicas: current,
        proposal: None,
        stabilized: None,
        metrics: Vec::new(),
        able_to_scale: Condition::new(true, Reason::SucceededGetScale),
        scaling_active: Condition::new(true, Reason::ValidMetricFound),
        scaling_limited: None,
        error: None,
        explanation: Explanation::default(),
    };

    let desired = if current == 0 && min_replicas != 0 {
        recommendation.scaling_active = Condition::new(false, Reason::ScalingDisabled);
        explanation.step(
            "the workload has 0 replicas and minReplicas is not 0: autoscaling is disabled",
            0,
        );
        0
    } else if current > max_replicas {
        explanation.step(
            "current replicas are above maxReplicas: go to maxReplicas at once",
            max_replicas,
        );
        max_replicas
    } else if current < min_replicas {
        explanation.step(
            "current replicas are below minReplicas: go to minReplicas at once",
            min_replicas,
        );
        min_replicas
    } else {
        let metric_specs = spec.metrics_or_default();
        let (proposal, error) = compute_for_metrics(
            &metric_specs,
            observation,
            tolerances,
            now_ms,
            options,
            &mut recommendation,
            &mut explanation,
        );
        recommendation.error = error;
        let Some(proposal) = proposal else {
            // All metrics failed, or some failed and the rest would scale down: no change,
            // and nothing is stored in the history.
            explanation.step("metrics failed: the controller does not scale", current);
            explanation.summary = format!(
                "keep {current} replicas: {}",
                recommendation.scaling_active.message
            );
            recommendation.explanation = explanation;
            return recommendation;
        };
        let proposal = proposal.max(0);
        recommendation.proposal = Some(proposal);
        match &behavior {
            None => normalize_legacy(
                current,
                proposal,
                min_replicas,
                max_replicas,
                history,
                now_ms,
                options,
                &mut recommendation,
                &mut explanation,
            ),
            Some(b) => normalize_with_behavior(
                current,
                proposal,
                min_replicas,
                max_replicas,
                b,
                history,
                now_ms,
                &mut recommendation,
                &mut explanation,
            ),
        }
    };
    recommendation.desired_replicas = desired;
    explanation.summary = if desired == current {
        format!("keep {current} replicas")
    } else {
        format!("scale from {current} to {desired} replicas")
    };
    recommendation.explanation = explanation;
    recommendation
}

fn describe_behavior(b: &Behavior) -> String {
    let rules = |r: &ScalingRules| {
        let policies: Vec<String> = r
            .policies
            .iter()
            .map(|p| format!("{:?} {} per {} s", p.type_, p.value, p.period_seconds))
            .collect();
        format!(
            "window {} s, {:?} of [{}]",
            r.stabilization_window_seconds,
            r.select_policy,
            policies.join(", ")
        )
    };
    format!(
        "scale-up {}; scale-down {}",
        rules(&b.scale_up),
        rules(&b.scale_down)
    )
}

/// `computeReplicasForMetrics`: the maximum over valid proposals, with the
/// invalid-metric rules of section 7. `None` means "do not scale".
fn compute_for_metrics(
    specs: &[MetricSpec],
    observation: &Observation,
    tolerances: Tolerances,
    now_ms: i64,
    options: &Options,
    recommendation: &mut Recommendation,
    explanation: &mut Explanation,
) -> (Option<i32>, Option<String>) {
    let mut replicas = 0;
    let mut best_metric = String::new();
    let mut invalid = 0usize;
    let mut first_failure: Option<(Reason, String)> = None;
    for (i, spec) in specs.iter().enumerate() {
        let name = spec.describe();
        let reading = observation.readings.get(i).cloned().unwrap_or_else(|| {
            MetricReading::Unavailable(format!("no reading was provided for metric {i}"))
        });
        let outcome = compute_metric(spec, &reading, observation, tolerances, now_ms, options);
        match outcome {
            Ok(calc) => {
                let mut metric_explanation = calc.explanation.clone();
                metric_explanation.summary = format!(
                    "{name}: {} proposes {} replicas",
                    metric_explanation.summary, calc.replicas
                );
                // Per-metric inputs are named after their metric; the replica count is
                // already an input of the whole recommendation.
                metric_explanation
                    .inputs
                    .retain(|i| i.name != "current replicas");
                for input in &mut metric_explanation.inputs {
                    input.name = format!("{name}: {}", input.name);
                }
                explanation.absorb(metric_explanation);
                if replicas == 0 || calc.replicas > replicas {
                    replicas = calc.replicas;
                    best_metric = name.clone();
                }
                recommendation.metrics.push(MetricResult {
                    metric: name,
                    source: spec.type_,
                    outcome: MetricOutcome::Computed(Box::new(calc)),
                });
            }
            Err(err) => {
                explanation.step(format!("{name}: failed: {err}"), "");
                if first_failure.is_none() {
                    first_failure = Some((Reason::failed_get(spec.type_), err.to_string()));
                }
                invalid += 1;
                recommendation.metrics.push(MetricResult {
                    metric: name,
                    source: spec.type_,
                    outcome: MetricOutcome::Failed(err),
                });
            }
        }
    }
    let error = first_failure.as_ref().map(|(_, message)| {
        format!(
            "invalid metrics ({invalid} invalid out of {}), first error is: {message}",
            specs.len()
        )
    });
    if invalid >= specs.len() || (invalid > 0 && replicas < observation.spec_replicas) {
        if let Some((reason, message)) = first_failure {
            recommendation.scaling_active = Condition {
                status: false,
                reason,
                message,
            };
        }
        return (None, error);
    }
    recommendation.scaling_active = Condition {
        status: true,
        reason: Reason::ValidMetricFound,
        message: format!(
            "the HPA was able to successfully calculate a replica count from {best_metric}"
        ),
    };
    if specs.len() > 1 {
        explanation.step(
            format!("highest proposal over the metrics ({best_metric})"),
            replicas,
        );
    }
    (Some(replicas), error)
}

#[allow(clippy::too_many_arguments)]
fn normalize_legacy(
    current: i32,
    proposal: i32,
    min_replicas: i32,
    max_replicas: i32,
    history: &mut History,
    now_ms: i64,
    options: &Options,
    recommendation: &mut Recommendation,
    explanation: &mut Explanation,
) -> i32 {
    let window_ms = pods::duration_ms(options.downscale_stabilization);
    let stabilized = behavior::stabilize_legacy(history, proposal, now_ms, window_ms);
    recommendation.stabilized = Some(stabilized);
    recommendation.able_to_scale = if stabilized != proposal {
        explanation.step(
            format!(
                "highest proposal of the last {} s (scale-down stabilization)",
                options.downscale_stabilization.as_secs()
            ),
            stabilized,
        );
        Condition::new(true, Reason::ScaleDownStabilized)
    } else {
        Condition::new(true, Reason::ReadyForNewScale)
    };
    let (desired, reason) = behavior::legacy_limit(
        current,
        stabilized,
        min_replicas,
        max_replicas,
        options.scale_up_limit_factor,
        options.scale_up_limit_minimum,
    );
    if desired != stabilized {
        explanation.step(format!("limited: {}", reason.message()), desired);
    }
    recommendation.scaling_limited = Some(Condition::new(desired != stabilized, reason));
    desired
}

#[allow(clippy::too_many_arguments)]
fn normalize_with_behavior(
    current: i32,
    proposal: i32,
    min_replicas: i32,
    max_replicas: i32,
    behavior: &Behavior,
    history: &mut History,
    now_ms: i64,
    recommendation: &mut Recommendation,
    explanation: &mut Explanation,
) -> i32 {
    let (stabilized, reason) =
        behavior::stabilize_with_behavior(history, proposal, current, behavior, now_ms);
    recommendation.stabilized = Some(stabilized);
    recommendation.able_to_scale = if stabilized != proposal {
        explanation.step(
            format!(
                "stabilized within the recent proposals (up window {} s, down window {} s)",
                behavior.scale_up.stabilization_window_seconds,
                behavior.scale_down.stabilization_window_seconds
            ),
            stabilized,
        );
        Condition::new(true, reason)
    } else {
        Condition::new(true, Reason::ReadyForNewScale)
    };
    let (desired, reason) = behavior::rate_limit(
        current,
        stabilized,
        min_replicas,
        max_replicas,
        behavior,
        history,
        now_ms,
    );
    if desired != stabilized {
        explanation.step(format!("limited: {}", reason.message()), desired);
    }
    recommendation.scaling_limited = Some(Condition::new(desired != stabilized, reason));
    desired
}

/// One HPA followed over time: holds the in-memory history upstream keeps per HPA and
/// reads time from a [`Clock`].
#[derive(Debug, Clone, Default)]
pub struct Autoscaler {
    options: Options,
    history: History,
    seen: bool,
}

impl Autoscaler {
    pub fn new(options: Options) -> Autoscaler {
        Autoscaler {
            options,
            history: History::default(),
            seen: false,
        }
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// One sync. The first sync seeds the history with the current count, as the
    /// controller does when it first sees an HPA.
    pub fn recommend(
        &mut self,
        clock: &dyn Clock,
        spec: &HorizontalPodAutoscalerSpec,
        observation: &Observation,
    ) -> Recommendation {
        let now_ms = clock.now_ms();
        if !self.seen {
            self.history
                .recommendations
                .push(TimestampedRecommendation {
                    replicas: observation.spec_replicas,
                    t_ms: now_ms,
                });
            self.seen = true;
        }
        reconcile(spec, observation, &mut self.history, now_ms, &self.options)
    }

    /// Records that the workload was rescaled from `prev` to `new` (only kept when the
    /// HPA has `behavior`, as upstream).
    pub fn record_rescale(
        &mut self,
        clock: &dyn Clock,
        spec: &HorizontalPodAutoscalerSpec,
        prev: i32,
        new: i32,
    ) {
        if let Some(b) = &spec.behavior {
            let window =
                i32::try_from(self.options.downscale_stabilization.as_secs()).unwrap_or(i32::MAX);
            let behavior = Behavior::from_spec(b, window);
            self.history
                .record_scale_event(&behavior, prev, new, clock.now_ms());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CPU;
    use tsdb::clock::ManualClock;

    const NOW: i64 = 1_700_000_000_000;

    fn spec(yaml: &str) -> HorizontalPodAutoscalerSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn cpu_observation(replicas: i32, usage: &[i64]) -> Observation {
        let pods: Vec<Pod> = (0..usage.len())
            .map(|i| Pod::running(&format!("p{i}"), NOW - 3_600_000, &[(CPU, 1000)]))
            .collect();
        let samples = usage
            .iter()
            .enumerate()
            .map(|(i, u)| {
                (
                    format!("p{i}"),
                    PodMetric {
                        value_milli: *u,
                        timestamp_ms: NOW,
                        window_ms: 30_000,
                    },
                )
            })
            .collect();
        Observation {
            spec_replicas: replicas,
            status_replicas: replicas,
            pods,
            readings: vec![MetricReading::PerPod(samples)],
        }
    }

    #[test]
    fn legacy_scale_up_is_limited_to_twice_the_current_count() {
        let s = spec(
            "maxReplicas: 100\nmetrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]",
        );
        let mut history = History::default();
        let rec = reconcile(
            &s,
            &cpu_observation(2, &[2000, 2000]),
            &mut history,
            NOW,
            &Options::default(),
        );
        // 200 % of a 50 % target: ratio 4, ceil(4*2) = 8, limited to max(2*2, 4) = 4.
        assert_eq!(rec.proposal, Some(8));
        assert_eq!(rec.desired_replicas, 4);
        let limited = rec.scaling_limited.unwrap();
        assert!(limited.status);
        assert_eq!(limited.reason, Reason::ScaleUpLimit);
        let text = rec.explanation.to_string();
        assert!(text.starts_with("scale from 2 to 4 replicas"), "{text}");
        assert!(
            text.contains("limited: the desired replica count is increasing faster"),
            "{text}"
        );
    }

    #[test]
    fn scale_to_zero_target_disables_scaling() {
        let s = spec("maxReplicas: 10");
        let mut obs = cpu_observation(0, &[]);
        obs.readings.clear();
        let rec = reconcile(&s, &obs, &mut History::default(), NOW, &Options::default());
        assert_eq!(rec.desired_replicas, 0);
        assert_eq!(rec.scaling_active.reason, Reason::ScalingDisabled);
        assert!(!rec.rescale());
    }

    #[test]
    fn out_of_range_counts_move_at_once() {
        let s = spec("maxReplicas: 3\nminReplicas: 2");
        let rec = reconcile(
            &s,
            &cpu_observation(5, &[1; 5]),
            &mut History::default(),
            NOW,
            &Options::default(),
        );
        assert_eq!(rec.desired_replicas, 3);
        assert!(rec.metrics.is_empty());
        let rec = reconcile(
            &s,
            &cpu_observation(1, &[1]),
            &mut History::default(),
            NOW,
            &Options::default(),
        );
        assert_eq!(rec.desired_replicas, 2);
    }

    #[test]
    fn a_failed_metric_blocks_scale_down_but_not_scale_up() {
        let s = spec(
            "maxReplicas: 10\nmetrics:\n- {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}\n- {type: External, external: {metric: {name: q}, target: {type: Value, value: 10}}}",
        );
        // cpu wants 5 (from 3); the external metric is down: scale up, report the error.
        let mut obs = cpu_observation(3, &[700, 700, 700]);
        obs.readings
            .push(MetricReading::Unavailable("connection refused".into()));
        let rec = reconcile(&s, &obs, &mut History::default(), NOW, &Options::default());
        assert_eq!(rec.desired_replicas, 5);
        assert_eq!(rec.scaling_active.reason, Reason::ValidMetricFound);
        assert!(
            rec.error
                .as_deref()
                .unwrap()
                .starts_with("invalid metrics (1 invalid out of 2)")
        );
        // cpu wants fewer: no change, ScalingActive False with the failure's reason.
        let mut obs = cpu_observation(3, &[100, 100, 100]);
        obs.readings
            .push(MetricReading::Unavailable("connection refused".into()));
        let mut history = History::default();
        let rec = reconcile(&s, &obs, &mut history, NOW, &Options::default());
        assert_eq!(rec.desired_replicas, 3);
        assert!(!rec.scaling_active.status);
        assert_eq!(rec.scaling_active.reason, Reason::FailedGetExternalMetric);
        assert!(
            history.recommendations.is_empty(),
            "nothing is stored when the controller bails out"
        );
    }

    #[test]
    fn autoscaler_seeds_history_and_stabilizes_scale_down() {
        let s = spec("maxReplicas: 10");
        let clock = ManualClock::new(NOW);
        let mut hpa = Autoscaler::new(Options::default());
        // 4 pods at 20 % of an 80 % default target: proposal 1, but the seed (4) holds.
        let obs = cpu_observation(4, &[200, 200, 200, 200]);
        let rec = hpa.recommend(&clock, &s, &obs);
        assert_eq!(rec.proposal, Some(1));
        assert_eq!(rec.desired_replicas, 4);
        assert_eq!(rec.able_to_scale.reason, Reason::ScaleDownStabilized);
        clock.advance(Duration::from_secs(301));
        let rec = hpa.recommend(&clock, &s, &obs);
        assert_eq!(rec.desired_replicas, 1);
        assert_eq!(rec.able_to_scale.reason, Reason::ReadyForNewScale);
    }
}
