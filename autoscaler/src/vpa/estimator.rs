//! From usage histograms to `target` / `lowerBound` / `upperBound` (sections 7 and 8 of
//! `vpa-algorithm.md`): percentiles, the safety margin, the confidence multiplier, the
//! per-pod minimum split over containers, rounding and capping by the resource policy.
//! Amounts are `i64` (millicores, bytes) truncated at every step as upstream's
//! `ResourceAmount` is.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Options;
use super::aggregate::{AggregateState, duration_ms};
use super::decaying::DecayingHistogram;
use crate::explain::Explanation;
use crate::model::{CPU, ContainerScalingMode, ControlledValues, MEMORY, PodResourcePolicy};
use crate::quantity::{Format, Quantity};

/// Upstream's `MaxResourceAmount`: 1e14.
pub const MAX_RESOURCE_AMOUNT: i64 = 100_000_000_000_000;

/// `resourceAmountFromFloat`: truncation, clamped to `[0, 1e14]`.
pub fn to_amount(x: f64) -> i64 {
    if x.is_nan() || x < 0.0 {
        0
    } else if x > MAX_RESOURCE_AMOUNT as f64 {
        MAX_RESOURCE_AMOUNT
    } else {
        x as i64
    }
}

/// `ScaleResource`: `to_amount(amount * factor)`.
pub fn scale(amount: i64, factor: f64) -> i64 {
    to_amount(amount as f64 * factor)
}

/// `amount + trunc(amount * fraction)`: the margin is truncated on its own.
pub fn with_margin(amount: i64, fraction: f64) -> i64 {
    amount.saturating_add(scale(amount, fraction))
}

/// `amount * (1 + multiplier / confidence)^exponent`, truncated. With no history
/// (confidence 0) the factor is +Inf or 0, as upstream.
pub fn with_confidence(amount: i64, multiplier: f64, exponent: f64, confidence: f64) -> i64 {
    scale(amount, confidence_factor(multiplier, exponent, confidence))
}

fn confidence_factor(multiplier: f64, exponent: f64, confidence: f64) -> f64 {
    (1.0 + multiplier / confidence).powf(exponent)
}

/// The two resources the recommender estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Resource {
    /// Millicores.
    Cpu,
    /// Bytes.
    Memory,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => CPU,
            Resource::Memory => MEMORY,
        }
    }

    /// A histogram percentile (cores or bytes) as an amount (millicores or bytes).
    fn amount_from_histogram(self, value: f64) -> i64 {
        match self {
            Resource::Cpu => to_amount(value * 1000.0),
            Resource::Memory => to_amount(value),
        }
    }

    /// The amount as a Kubernetes quantity, as the recommender writes it
    /// (`NewScaledQuantity(millis, -3)` for cpu, BinarySI bytes for memory).
    pub fn quantity(self, amount: i64) -> Quantity {
        match self {
            Resource::Cpu => Quantity::from_milli(amount, Format::DecimalSi),
            Resource::Memory => Quantity::from_int(amount, Format::BinarySi),
        }
    }

    /// A quantity as an amount of this resource.
    fn amount_of(self, q: &Quantity) -> i64 {
        match self {
            Resource::Cpu => q.milli_value(),
            Resource::Memory => q.value(),
        }
    }

    fn unit(self, amount: i64) -> String {
        match self {
            Resource::Cpu => format!("{amount}m"),
            Resource::Memory => {
                let quantity = self.quantity(amount).to_string();
                if quantity == amount.to_string() {
                    format!("{amount} bytes")
                } else {
                    format!("{amount} bytes ({quantity})")
                }
            }
        }
    }
}

/// One recommended number. Its explanation is written on demand by
/// [`Bounds::explanation`], from the numbers kept here and in [`Basis`]: a refresh of
/// thousands of containers formats no text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amount {
    /// Millicores or bytes.
    pub value: i64,
    /// The histogram percentile the chain starts from, in cores or bytes.
    pub percentile_value: f64,
}

/// Which of the three numbers of a [`Bounds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Target,
    LowerBound,
    UpperBound,
}

impl Bound {
    /// The name the recommendations API uses: `target`, `lower_bound`, `upper_bound`.
    pub fn key(self) -> &'static str {
        match self {
            Bound::Target => "target",
            Bound::LowerBound => "lower_bound",
            Bound::UpperBound => "upper_bound",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Bound::Target => "target",
            Bound::LowerBound => "lower bound",
            Bound::UpperBound => "upper bound",
        }
    }
}

/// What the amounts of one [`Bounds`] were computed from, beside each amount's
/// histogram percentile: the inputs of the estimator chain, kept as numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Basis {
    pub container: String,
    /// CPU samples behind the histograms.
    pub total_samples: u64,
    /// Days between the first and the last CPU sample; `None` before any.
    pub history_days: Option<f64>,
    pub half_life_ms: i64,
    pub margin: f64,
    /// The pod minimum and this container's share of it.
    pub pod_min: i64,
    pub min_amount: i64,
    pub n_containers: usize,
    pub round_to: i64,
    /// The percentiles of target, lower bound and upper bound.
    pub percentiles: [f64; 3],
    /// The policy's minAllowed and maxAllowed (or the global maximum), if any.
    pub min_allowed: Option<Quantity>,
    pub max_allowed: Option<Quantity>,
}

/// The recommendation for one resource of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds {
    pub resource: Resource,
    pub target: Amount,
    pub lower_bound: Amount,
    pub upper_bound: Amount,
    /// The target before the policy's minAllowed/maxAllowed were applied.
    pub uncapped_target: i64,
    /// Days of history behind it (the confidence of the multiplier).
    pub confidence: f64,
    pub basis: Basis,
}

impl Bounds {
    pub fn amount(&self, bound: Bound) -> &Amount {
        match bound {
            Bound::Target => &self.target,
            Bound::LowerBound => &self.lower_bound,
            Bound::UpperBound => &self.upper_bound,
        }
    }

    /// Why `bound` has its value: the inputs and every step of the chain, written
    /// by the same code that computed the value.
    pub fn explanation(&self, bound: Bound) -> Explanation {
        let mut explanation = Explanation::new(String::new());
        chain(
            self.resource,
            &self.basis,
            self.confidence,
            bound,
            self.amount(bound).percentile_value,
            &mut Trail(Some(&mut explanation)),
        );
        explanation
    }
}

/// The recommendation for one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecommendation {
    pub container_name: String,
    /// `None` when cpu is not a controlled resource.
    pub cpu: Option<Bounds>,
    /// `None` when memory is not a controlled resource.
    pub memory: Option<Bounds>,
}

/// Recommends resources for every container of a workload (upstream
/// `GetRecommendedPodResources` followed by the capping post-processor), sorted by
/// container name. Containers whose policy mode is `Off` get none and do not count in
/// the split of the pod minimum.
pub fn recommend(
    aggregates: &BTreeMap<String, AggregateState>,
    options: &Options,
    policy: Option<&PodResourcePolicy>,
) -> Vec<ContainerRecommendation> {
    let containers: Vec<(&String, &AggregateState)> = aggregates
        .iter()
        .filter(|(name, _)| {
            policy
                .and_then(|p| p.for_container(name))
                .and_then(|c| c.mode)
                != Some(ContainerScalingMode::Off)
        })
        .collect();
    if containers.is_empty() {
        return Vec::new();
    }
    let n = containers.len();
    let (pod_min_cpu, pod_min_memory) = pod_minimums(options);
    let (min_cpu, min_memory) = pod_minimum_share(options, n);

    containers
        .into_iter()
        .map(|(name, state)| {
            let container_policy = policy.and_then(|p| p.for_container(name));
            let controlled = |r: &str| {
                container_policy
                    .and_then(|c| c.controlled_resources.as_ref())
                    .is_none_or(|list| list.iter().any(|x| x == r))
            };
            let estimate = |resource: Resource, pod_min: i64, split_min: i64| {
                let (min_allowed, max_allowed) = policy_limits(resource, name, policy, options);
                estimate(
                    state,
                    resource,
                    options,
                    Basis {
                        container: name.clone(),
                        total_samples: 0,
                        history_days: None,
                        half_life_ms: 0,
                        margin: options.recommendation_margin_fraction,
                        pod_min,
                        min_amount: split_min,
                        n_containers: n,
                        round_to: match resource {
                            Resource::Cpu => options.round_cpu_millicores,
                            Resource::Memory => options.round_memory_bytes,
                        },
                        percentiles: [0.0; 3],
                        min_allowed,
                        max_allowed,
                    },
                )
            };
            ContainerRecommendation {
                container_name: name.clone(),
                cpu: controlled(CPU).then(|| estimate(Resource::Cpu, pod_min_cpu, min_cpu)),
                memory: controlled(MEMORY)
                    .then(|| estimate(Resource::Memory, pod_min_memory, min_memory)),
            }
        })
        .collect()
}

/// The pod minimum: (millicores, bytes) (`--pod-recommendation-min-*`).
pub fn pod_minimums(options: &Options) -> (i64, i64) {
    (
        to_amount(options.pod_recommendation_min_cpu_millicores * 0.001 * 1000.0),
        to_amount(options.pod_recommendation_min_memory_mb * 1024.0 * 1024.0),
    )
}

/// Each container's share of the pod minimum when the pod has `n_containers`
/// recommended containers: `scale(minimum, 1 / n)`.
pub fn pod_minimum_share(options: &Options, n_containers: usize) -> (i64, i64) {
    let (cpu, memory) = pod_minimums(options);
    let fraction = 1.0 / n_containers.max(1) as f64;
    (scale(cpu, fraction), scale(memory, fraction))
}

/// The estimator chain for one resource: percentile, margin, confidence, minimum,
/// policy. `basis` comes with the policy's part filled in; the state's part is
/// filled in here.
fn estimate(
    state: &AggregateState,
    resource: Resource,
    options: &Options,
    mut basis: Basis,
) -> Bounds {
    let (histogram, percentiles, interval): (&DecayingHistogram, [f64; 3], _) = match resource {
        Resource::Cpu => (
            &state.cpu,
            [
                options.target_cpu_percentile,
                options.lower_bound_cpu_percentile,
                options.upper_bound_cpu_percentile,
            ],
            options.confidence_interval_cpu,
        ),
        Resource::Memory => (
            &state.memory_peaks,
            [
                options.target_memory_percentile,
                options.lower_bound_memory_percentile,
                options.upper_bound_memory_percentile,
            ],
            options.confidence_interval_memory,
        ),
    };
    let confidence = state.confidence(duration_ms(interval));
    basis.total_samples = state.total_samples;
    basis.history_days = match (state.first_sample_start_ms, state.last_sample_start_ms) {
        (Some(first), Some(last)) => Some((last - first) as f64 / 86_400_000.0),
        _ => None,
    };
    basis.half_life_ms = histogram.half_life_ms();
    basis.percentiles = percentiles;
    let mut uncapped_target = 0;
    let [target, lower_bound, upper_bound] = [Bound::Target, Bound::LowerBound, Bound::UpperBound]
        .map(|bound| {
            let percentile_value = histogram.percentile(basis.percentiles[bound as usize]);
            let (uncapped, value) = chain(
                resource,
                &basis,
                confidence,
                bound,
                percentile_value,
                &mut Trail(None),
            );
            if bound == Bound::Target {
                uncapped_target = uncapped;
            }
            Amount {
                value,
                percentile_value,
            }
        });
    Bounds {
        resource,
        target,
        lower_bound,
        upper_bound,
        uncapped_target,
        confidence,
        basis,
    }
}

/// Where the chain writes its explanation, if anywhere: the text is formatted only
/// when it is asked for.
struct Trail<'a>(Option<&'a mut Explanation>);

impl Trail<'_> {
    fn input(&mut self, name: &str, value: impl FnOnce() -> String) {
        if let Some(e) = self.0.as_deref_mut() {
            e.input(name, value());
        }
    }

    fn step(&mut self, description: impl FnOnce() -> String, result: impl FnOnce() -> String) {
        if let Some(e) = self.0.as_deref_mut() {
            e.step(description(), result());
        }
    }

    fn summary(&mut self, summary: impl FnOnce() -> String) {
        if let Some(e) = self.0.as_deref_mut() {
            e.summary = summary();
        }
    }
}

/// One amount from its histogram percentile (cores or bytes): margin, confidence
/// (bounds only), the pod minimum, rounding, then the policy's minAllowed and
/// maxAllowed. Returns the amount before and after the policy; writes each step
/// to `trail`.
fn chain(
    resource: Resource,
    basis: &Basis,
    confidence: f64,
    bound: Bound,
    percentile_value: f64,
    trail: &mut Trail<'_>,
) -> (i64, i64) {
    let margin = basis.margin;
    trail.input("history", || describe_history(basis, confidence));
    trail.input("half-life", || {
        format!("{} h", basis.half_life_ms / 3_600_000)
    });
    trail.input("safety margin", || format!("{} %", margin * 100.0));
    trail.input("pod minimum", || {
        format!(
            "{} split over {} container(s) = {}",
            resource.unit(basis.pod_min),
            basis.n_containers,
            resource.unit(basis.min_amount)
        )
    });

    let p = basis.percentiles[bound as usize];
    let amount = resource.amount_from_histogram(percentile_value);
    trail.step(
        || {
            let what = match resource {
                Resource::Cpu => "the decaying histogram of CPU usage",
                Resource::Memory => "the decaying histogram of daily memory peaks",
            };
            format!(
                "p{} of {what} (the end of the 5 % bucket it falls in)",
                p * 100.0
            )
        },
        || match resource {
            Resource::Cpu => format!("{percentile_value} cores = {amount}m"),
            Resource::Memory => format!("{amount} bytes"),
        },
    );
    let with = with_margin(amount, margin);
    trail.step(
        || {
            format!(
                "plus the {} % safety margin ({} truncated)",
                margin * 100.0,
                resource.unit(with - amount)
            )
        },
        || resource.unit(with),
    );

    let value = match bound {
        Bound::Target => with,
        Bound::LowerBound => {
            let scaled = with_confidence(with, 0.001, -2.0, confidence);
            trail.step(
                || {
                    format!(
                        "times (1 + 0.001 / {} days of history)^-2 = {:.6}, truncated",
                        fmt_days(confidence),
                        confidence_factor(0.001, -2.0, confidence)
                    )
                },
                || resource.unit(scaled),
            );
            scaled
        }
        Bound::UpperBound => {
            let scaled = with_confidence(with, 1.0, 1.0, confidence);
            trail.step(
                || {
                    if confidence > 0.0 {
                        format!(
                            "times (1 + 1 / {} days of history) = {:.6}, truncated; it shrinks as history grows",
                            fmt_days(confidence),
                            confidence_factor(1.0, 1.0, confidence)
                        )
                    } else {
                        "no history yet: the multiplier is infinite, so the upper bound is the maximum amount (1e14)".to_string()
                    }
                },
                || resource.unit(scaled),
            );
            scaled
        }
    };

    let floored = value.max(basis.min_amount);
    if floored != value {
        trail.step(
            || "raised to the per-container share of the pod minimum".to_string(),
            || resource.unit(floored),
        );
    }
    let uncapped = round_up(floored, basis.round_to);
    if uncapped != floored {
        trail.step(
            || format!("rounded up to a multiple of {}", basis.round_to),
            || resource.unit(uncapped),
        );
    }

    // Capping by the container policy's minAllowed/maxAllowed.
    let mut value = uncapped;
    if let Some(min) = &basis.min_allowed
        && resource.quantity(value) < *min
    {
        value = resource.amount_of(min);
        trail.step(
            || format!("raised to the policy's minAllowed {min}"),
            || resource.unit(value),
        );
    }
    if let Some(max) = &basis.max_allowed
        && resource.quantity(value) > *max
    {
        value = resource.amount_of(max);
        trail.step(
            || format!("capped to maxAllowed {max}"),
            || resource.unit(value),
        );
    }
    trail.summary(|| {
        format!(
            "{} {} {} is {}",
            basis.container,
            resource.name(),
            bound.words(),
            resource.quantity(value)
        )
    });
    (uncapped, value)
}

fn fmt_days(days: f64) -> String {
    let s = format!("{days:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn describe_history(basis: &Basis, confidence: f64) -> String {
    match basis.history_days {
        Some(days) => format!(
            "{} CPU samples over {} days (confidence {} days)",
            basis.total_samples,
            fmt_days(days),
            fmt_days(confidence)
        ),
        None => "no CPU samples yet".to_string(),
    }
}

/// Rounds up to a multiple of `to` (the `--round-*` flags; 1 means no rounding).
fn round_up(value: i64, to: i64) -> i64 {
    if to <= 1 {
        return value;
    }
    let rem = value.rem_euclid(to);
    if rem == 0 {
        value
    } else {
        value.saturating_add(to - rem)
    }
}

/// The container policy's minAllowed and maxAllowed (max falling back to the
/// global flags per resource) for capping; zero quantities mean "no bound".
fn policy_limits(
    resource: Resource,
    container: &str,
    policy: Option<&PodResourcePolicy>,
    options: &Options,
) -> (Option<Quantity>, Option<Quantity>) {
    let container_policy = policy.and_then(|p| p.for_container(container));
    let min_allowed = container_policy
        .and_then(|c| c.min_allowed.get(resource.name()))
        .filter(|q| !q.is_zero());
    let global_max = match resource {
        Resource::Cpu => options.container_recommendation_max_allowed_cpu.as_ref(),
        Resource::Memory => options.container_recommendation_max_allowed_memory.as_ref(),
    };
    let max_allowed = container_policy
        .and_then(|c| c.max_allowed.get(resource.name()))
        .or(global_max)
        .filter(|q| !q.is_zero());
    (min_allowed.cloned(), max_allowed.cloned())
}

/// Caps a recommended request to the container's current limit when the policy
/// controls requests only (section 9, step 4 of the doc).
pub fn cap_to_limit(
    request: i64,
    limit: Option<i64>,
    controlled_values: Option<ControlledValues>,
) -> i64 {
    match (controlled_values, limit) {
        (Some(ControlledValues::RequestsOnly), Some(limit)) if limit > 0 => request.min(limit),
        _ => request,
    }
}

/// The limit that keeps the original limit/request ratio (`GetProportionalLimit`):
/// `original_limit * new_request / original_request`, or the new request when the
/// original request was unset or equal to the limit. `None` when there was no limit.
pub fn proportional_limit(
    original_request: Option<i64>,
    original_limit: Option<i64>,
    new_request: i64,
) -> Option<i64> {
    let limit = original_limit?;
    match original_request {
        Some(request) if request > 0 && request != limit => {
            let scaled = i128::from(limit) * i128::from(new_request) / i128::from(request);
            Some(i64::try_from(scaled).unwrap_or(i64::MAX))
        }
        _ => Some(new_request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ContainerResourcePolicy;
    use crate::vpa::ContainerState;

    const T0: i64 = 1_699_923_600_000; // 2023-11-14T01:00:00Z

    fn constant_usage(days: i64) -> AggregateState {
        let options = Options::default();
        let mut state = AggregateState::new(&options, T0).unwrap();
        let mut container = ContainerState::default();
        for i in 0..days * 1440 {
            let t = T0 + i * 60_000;
            container.add_cpu_sample(&mut state, t, 500);
            container.add_memory_sample(&mut state, t, 500_000_000, &options);
        }
        state
    }

    #[test]
    fn amounts_truncate_and_clamp() {
        assert_eq!(to_amount(-1.0), 0);
        assert_eq!(to_amount(f64::NAN), 0);
        assert_eq!(to_amount(f64::INFINITY), MAX_RESOURCE_AMOUNT);
        assert_eq!(with_margin(3140, 0.1), 3454);
        assert_eq!(with_confidence(3140, 1.0, 1.0, 0.0), MAX_RESOURCE_AMOUNT);
        assert_eq!(with_confidence(3140, 0.001, -2.0, 0.0), 0);
        assert_eq!(round_up(587, 10), 590);
        assert_eq!(round_up(590, 10), 590);
    }

    #[test]
    fn eight_days_of_constant_usage() {
        let state = constant_usage(8);
        let recs = recommend(
            &[("app".to_string(), state)].into(),
            &Options::default(),
            None,
        );
        let cpu = recs[0].cpu.as_ref().unwrap();
        assert_eq!(
            (
                cpu.target.value,
                cpu.lower_bound.value,
                cpu.upper_bound.value
            ),
            (587, 586, 660)
        );
        let memory = recs[0].memory.as_ref().unwrap();
        assert_eq!(
            (
                memory.target.value,
                memory.lower_bound.value,
                memory.upper_bound.value
            ),
            (587_804_717, 587_657_780, 661_286_685)
        );
        let text = cpu.explanation(Bound::UpperBound).to_string();
        assert!(text.starts_with("app cpu upper bound is 660m"), "{text}");
        assert!(
            text.contains("times (1 + 1 / 7.9993 days of history) = 1.125011"),
            "{text}"
        );
    }

    #[test]
    fn minimum_split_policy_caps_and_off_containers() {
        let options = Options::default();
        // One sample each: 5m of cpu and 100 MB of memory, and no history to speak of.
        let mut young = AggregateState::new(&options, T0).unwrap();
        let mut container = ContainerState::default();
        container.add_cpu_sample(&mut young, T0, 5);
        container.add_memory_sample(&mut young, T0, 100_000_000, &options);
        let aggregates: BTreeMap<String, AggregateState> = [
            ("a".to_string(), young.clone()),
            ("b".to_string(), young.clone()),
            ("c".to_string(), young),
        ]
        .into();
        let policy = PodResourcePolicy {
            container_policies: vec![
                ContainerResourcePolicy {
                    container_name: "c".into(),
                    mode: Some(ContainerScalingMode::Off),
                    ..ContainerResourcePolicy::default()
                },
                ContainerResourcePolicy {
                    container_name: "*".into(),
                    min_allowed: [(CPU.to_string(), "50m".parse().unwrap())].into(),
                    max_allowed: [(MEMORY.to_string(), "1Gi".parse().unwrap())].into(),
                    controlled_resources: Some(vec![CPU.to_string(), MEMORY.to_string()]),
                    ..ContainerResourcePolicy::default()
                },
                ContainerResourcePolicy {
                    container_name: "b".into(),
                    controlled_resources: Some(vec![MEMORY.to_string()]),
                    ..ContainerResourcePolicy::default()
                },
            ],
        };
        let recs = recommend(&aggregates, &options, Some(&policy));
        assert_eq!(recs.len(), 2, "c is Off");
        // Two containers share the pod minimum: 12m and 131072000 bytes each (5m reads as
        // the 10m bucket end, plus 1m of margin, is below 12m); a's policy raises cpu to
        // 50m. With no history (confidence 0) the upper bound is the 1e14 maximum, capped
        // for memory by maxAllowed, and the lower bound drops to the minimum.
        let a_cpu = recs[0].cpu.as_ref().unwrap();
        assert_eq!(a_cpu.target.value, 50);
        assert_eq!(a_cpu.uncapped_target, 12);
        assert_eq!(a_cpu.upper_bound.value, MAX_RESOURCE_AMOUNT);
        let a_memory = recs[0].memory.as_ref().unwrap();
        assert_eq!(a_memory.target.value, 131_072_000);
        assert_eq!(a_memory.upper_bound.value, 1 << 30);
        assert!(recs[1].cpu.is_none());
        let b_memory = recs[1].memory.as_ref().unwrap();
        assert_eq!(b_memory.lower_bound.value, 131_072_000);
        assert_eq!(
            b_memory.upper_bound.value, MAX_RESOURCE_AMOUNT,
            "b has its own policy: no cap"
        );
    }

    #[test]
    fn global_max_applies_when_the_policy_has_none() {
        let options = Options {
            container_recommendation_max_allowed_cpu: Some("500m".parse().unwrap()),
            ..Options::default()
        };
        let recs = recommend(
            &[("app".to_string(), constant_usage(8))].into(),
            &options,
            None,
        );
        let cpu = recs[0].cpu.as_ref().unwrap();
        assert_eq!(
            (cpu.target.value, cpu.uncapped_target, cpu.upper_bound.value),
            (500, 587, 500)
        );
    }

    #[test]
    fn limits_follow_requests() {
        assert_eq!(proportional_limit(Some(100), Some(200), 150), Some(300));
        assert_eq!(proportional_limit(Some(100), Some(100), 150), Some(150));
        assert_eq!(proportional_limit(None, Some(100), 150), Some(150));
        assert_eq!(proportional_limit(Some(100), None, 150), None);
        assert_eq!(
            cap_to_limit(900, Some(500), Some(ControlledValues::RequestsOnly)),
            500
        );
        assert_eq!(cap_to_limit(900, Some(500), None), 900);
    }
}
