//! Normalisation of a proposal into the desired count: stabilisation windows, scaling
//! policies and the min/max clamp (sections 8 and 9 of the algorithm doc), with the
//! recommendation and scale-event history they read, keyed by time.
//!
//! Time is `i64` milliseconds; the caller reads it from a [`tsdb::clock::Clock`]. Window
//! membership follows upstream exactly: the legacy window includes a recommendation
//! when `t >= now - window`, behavior windows and policy periods when `t > now - window`.

use serde::{Deserialize, Serialize};

use super::Reason;
use crate::model::{
    HorizontalPodAutoscalerBehavior, HpaScalingPolicy, HpaScalingPolicyType, HpaScalingRules,
    ScalingPolicySelect,
};

/// Scaling rules with every default filled in, as the API server and the controller
/// fill them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingRules {
    pub stabilization_window_seconds: i32,
    pub select_policy: ScalingPolicySelect,
    pub policies: Vec<HpaScalingPolicy>,
    /// Per-direction tolerance, if the HPA sets one.
    pub tolerance: Option<f64>,
}

/// `spec.behavior` after defaulting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Behavior {
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
}

impl Behavior {
    /// Applies the API server's defaults (`scaleUp`: window 0, Max of 4 pods and 100 %
    /// per 15 s; `scaleDown`: Max of 100 % per 15 s) and the controller's fill of the
    /// scale-down window from its downscale-stabilization flag. A given `policies` list
    /// replaces the default list whole.
    pub fn from_spec(
        spec: &HorizontalPodAutoscalerBehavior,
        downscale_window_seconds: i32,
    ) -> Behavior {
        let policy = |type_, value| HpaScalingPolicy {
            type_,
            value,
            period_seconds: 15,
        };
        let up_defaults = ScalingRules {
            stabilization_window_seconds: 0,
            select_policy: ScalingPolicySelect::Max,
            policies: vec![
                policy(HpaScalingPolicyType::Pods, 4),
                policy(HpaScalingPolicyType::Percent, 100),
            ],
            tolerance: None,
        };
        let down_defaults = ScalingRules {
            stabilization_window_seconds: downscale_window_seconds,
            select_policy: ScalingPolicySelect::Max,
            policies: vec![policy(HpaScalingPolicyType::Percent, 100)],
            tolerance: None,
        };
        Behavior {
            scale_up: overlay(spec.scale_up.as_ref(), up_defaults),
            scale_down: overlay(spec.scale_down.as_ref(), down_defaults),
        }
    }

    /// The longest policy period of a direction, in seconds (0 without policies).
    fn longest_period(rules: &ScalingRules) -> i32 {
        rules
            .policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0)
    }
}

/// Copies every field that is set over the defaults (upstream `copyHPAScalingRules`).
fn overlay(given: Option<&HpaScalingRules>, mut rules: ScalingRules) -> ScalingRules {
    let Some(given) = given else { return rules };
    if let Some(select) = given.select_policy {
        rules.select_policy = select;
    }
    if let Some(window) = given.stabilization_window_seconds {
        rules.stabilization_window_seconds = window;
    }
    if let Some(policies) = &given.policies {
        rules.policies = policies.clone();
    }
    if let Some(tolerance) = &given.tolerance {
        rules.tolerance = Some(tolerance.as_approximate_f64());
    }
    rules
}

/// A proposal as the controller remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampedRecommendation {
    pub replicas: i32,
    pub t_ms: i64,
}

/// A rescale the controller made (only recorded when `behavior` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleEvent {
    /// Always positive: replicas added (scale-up list) or removed (scale-down list).
    pub replica_change: i32,
    pub t_ms: i64,
    /// Older than the direction's longest policy period; its slot may be reused.
    pub outdated: bool,
}

/// Everything the controller keeps in memory for one HPA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub recommendations: Vec<TimestampedRecommendation>,
    pub scale_up_events: Vec<ScaleEvent>,
    pub scale_down_events: Vec<ScaleEvent>,
}

impl History {
    /// Stores a proposal in the slot of `old_slot` (an expired entry) or appends it.
    fn store_recommendation(&mut self, old_slot: Option<usize>, rec: TimestampedRecommendation) {
        match old_slot {
            Some(i) => self.recommendations[i] = rec,
            None => self.recommendations.push(rec),
        }
    }

    /// Records a rescale from `prev` to `new` (upstream `storeScaleEvent`).
    pub fn record_scale_event(&mut self, behavior: &Behavior, prev: i32, new: i32, now_ms: i64) {
        let (events, rules, change) = if new > prev {
            (&mut self.scale_up_events, &behavior.scale_up, new - prev)
        } else {
            (
                &mut self.scale_down_events,
                &behavior.scale_down,
                prev - new,
            )
        };
        let cutoff = now_ms - i64::from(Behavior::longest_period(rules)) * 1000;
        let mut old_slot = None;
        for (i, event) in events.iter_mut().enumerate() {
            if event.t_ms < cutoff {
                event.outdated = true;
            }
            if event.outdated {
                old_slot = Some(i);
            }
        }
        let event = ScaleEvent {
            replica_change: change,
            t_ms: now_ms,
            outdated: false,
        };
        match old_slot {
            Some(i) => events[i] = event,
            None => events.push(event),
        }
    }
}

/// Legacy stabilisation (no behavior): the highest proposal of the downscale window,
/// including the new one, which is then stored.
pub fn stabilize_legacy(history: &mut History, proposal: i32, now_ms: i64, window_ms: i64) -> i32 {
    let cutoff = now_ms - window_ms;
    let mut highest = proposal;
    let mut old_slot = None;
    for (i, rec) in history.recommendations.iter().enumerate() {
        if rec.t_ms < cutoff {
            old_slot = Some(i);
        } else if rec.replicas > highest {
            highest = rec.replicas;
        }
    }
    history.store_recommendation(
        old_slot,
        TimestampedRecommendation {
            replicas: proposal,
            t_ms: now_ms,
        },
    );
    highest
}

/// Legacy clamp (`convertDesiredReplicasWithRules`): min, max, and the scale-up limit
/// `max(factor * current, minimum)`.
pub fn legacy_limit(
    current: i32,
    desired: i32,
    min_replicas: i32,
    max_replicas: i32,
    scale_up_limit_factor: f64,
    scale_up_limit_minimum: f64,
) -> (i32, Reason) {
    let scale_up_limit =
        (scale_up_limit_factor * f64::from(current)).max(scale_up_limit_minimum) as i32;
    let (max_allowed, reason) = if max_replicas > scale_up_limit {
        (scale_up_limit, Reason::ScaleUpLimit)
    } else {
        (max_replicas, Reason::TooManyReplicas)
    };
    if desired < min_replicas {
        (min_replicas, Reason::TooFewReplicas)
    } else if desired > max_allowed {
        (max_allowed, reason)
    } else {
        (desired, Reason::DesiredWithinRange)
    }
}

/// Stabilisation with behavior: the lowest proposal of the scale-up window and the
/// highest of the scale-down window bound the current count; the proposal is stored.
/// Returns the stabilised count and `ScaleUpStabilized`/`ScaleDownStabilized` (which
/// the caller reports only when the count differs from the proposal).
pub fn stabilize_with_behavior(
    history: &mut History,
    proposal: i32,
    current: i32,
    behavior: &Behavior,
    now_ms: i64,
) -> (i32, Reason) {
    let up_cutoff = now_ms - i64::from(behavior.scale_up.stabilization_window_seconds) * 1000;
    let down_cutoff = now_ms - i64::from(behavior.scale_down.stabilization_window_seconds) * 1000;
    let mut up = proposal;
    let mut down = proposal;
    let mut old_slot = None;
    for (i, rec) in history.recommendations.iter().enumerate() {
        if rec.t_ms > up_cutoff {
            up = up.min(rec.replicas);
        }
        if rec.t_ms > down_cutoff {
            down = down.max(rec.replicas);
        }
        if rec.t_ms < up_cutoff && rec.t_ms < down_cutoff {
            old_slot = Some(i);
        }
    }
    let stabilized = current.max(up).min(down);
    history.store_recommendation(
        old_slot,
        TimestampedRecommendation {
            replicas: proposal,
            t_ms: now_ms,
        },
    );
    let reason = if proposal >= current {
        Reason::ScaleUpStabilized
    } else {
        Reason::ScaleDownStabilized
    };
    (stabilized, reason)
}

/// Sum of the changes recorded strictly inside the last `period_seconds`.
fn change_in_period(period_seconds: i32, events: &[ScaleEvent], now_ms: i64) -> i32 {
    let cutoff = now_ms - i64::from(period_seconds) * 1000;
    events
        .iter()
        .filter(|e| e.t_ms > cutoff)
        .fold(0i32, |sum, e| sum.saturating_add(e.replica_change))
}

/// Replicas at the start of a policy's period.
fn period_start(current: i32, period_seconds: i32, history: &History, now_ms: i64) -> i32 {
    current - change_in_period(period_seconds, &history.scale_up_events, now_ms)
        + change_in_period(period_seconds, &history.scale_down_events, now_ms)
}

/// The most replicas the scale-up policies allow now.
pub fn scale_up_limit(current: i32, history: &History, rules: &ScalingRules, now_ms: i64) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        ScalingPolicySelect::Disabled => return current,
        ScalingPolicySelect::Min => (i32::MAX, std::cmp::min),
        ScalingPolicySelect::Max => (i32::MIN, std::cmp::max),
    };
    for policy in &rules.policies {
        let start = period_start(current, policy.period_seconds, history, now_ms);
        let proposed = match policy.type_ {
            HpaScalingPolicyType::Pods => start.saturating_add(policy.value),
            // Rounded up, or a small percentage could never add a pod.
            HpaScalingPolicyType::Percent => {
                (f64::from(start) * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i32
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// The fewest replicas the scale-down policies allow now.
pub fn scale_down_limit(current: i32, history: &History, rules: &ScalingRules, now_ms: i64) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        ScalingPolicySelect::Disabled => return current,
        ScalingPolicySelect::Min => (i32::MIN, std::cmp::max),
        ScalingPolicySelect::Max => (i32::MAX, std::cmp::min),
    };
    for policy in &rules.policies {
        let start = period_start(current, policy.period_seconds, history, now_ms);
        let proposed = match policy.type_ {
            HpaScalingPolicyType::Pods => start.saturating_sub(policy.value),
            // Truncated toward zero, as upstream's int32 conversion.
            HpaScalingPolicyType::Percent => {
                (f64::from(start) * (1.0 - f64::from(policy.value) / 100.0)) as i32
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// The rate limit with behavior (`convertDesiredReplicasWithBehaviorRate`), which also
/// enforces min and max replicas. Returns the count and the `ScalingLimited` reason.
pub fn rate_limit(
    current: i32,
    desired: i32,
    min_replicas: i32,
    max_replicas: i32,
    behavior: &Behavior,
    history: &History,
    now_ms: i64,
) -> (i32, Reason) {
    if desired > current {
        // Never plan below the current count on the way up.
        let limit = scale_up_limit(current, history, &behavior.scale_up, now_ms).max(current);
        let (max_allowed, reason) = if max_replicas > limit {
            (limit, Reason::ScaleUpLimit)
        } else {
            (max_replicas, Reason::TooManyReplicas)
        };
        if desired > max_allowed {
            return (max_allowed, reason);
        }
    } else if desired < current {
        let limit = scale_down_limit(current, history, &behavior.scale_down, now_ms).min(current);
        let (min_allowed, reason) = if min_replicas < limit {
            (limit, Reason::ScaleDownLimit)
        } else {
            (min_replicas, Reason::TooFewReplicas)
        };
        if desired < min_allowed {
            return (min_allowed, reason);
        }
    }
    (desired, Reason::DesiredWithinRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn defaults() -> Behavior {
        Behavior::from_spec(&HorizontalPodAutoscalerBehavior::default(), 300)
    }

    #[test]
    fn defaults_and_overlay() {
        let b = defaults();
        assert_eq!(b.scale_up.stabilization_window_seconds, 0);
        assert_eq!(b.scale_up.policies.len(), 2);
        assert_eq!(b.scale_down.stabilization_window_seconds, 300);
        let spec: HorizontalPodAutoscalerBehavior = serde_json::from_str(
            r#"{"scaleDown":{"policies":[],"selectPolicy":"Disabled","tolerance":"0.5"}}"#,
        )
        .unwrap();
        let b = Behavior::from_spec(&spec, 120);
        assert!(b.scale_down.policies.is_empty());
        assert_eq!(b.scale_down.stabilization_window_seconds, 120);
        assert_eq!(b.scale_down.select_policy, ScalingPolicySelect::Disabled);
        assert_eq!(b.scale_down.tolerance, Some(0.5));
        assert_eq!(b.scale_up, defaults().scale_up);
    }

    #[test]
    fn default_scale_up_sequence_from_3_to_40() {
        // Section 9.2: from 3 toward 40 with the defaults, one sync every 15 s.
        let behavior = defaults();
        let mut history = History::default();
        let mut current = 3;
        let mut seen = Vec::new();
        for sync in 1..=5 {
            let now = NOW + sync * 15_000;
            let (desired, _) = rate_limit(current, 40, 1, 100, &behavior, &history, now);
            if desired != current {
                history.record_scale_event(&behavior, current, desired, now);
                current = desired;
            }
            seen.push(current);
        }
        assert_eq!(seen, [7, 14, 28, 40, 40]);
    }

    #[test]
    fn percent_with_history_uses_the_period_start() {
        // After +15 in the last 120 s a Percent 200 / 120 s policy allows ceil(85 * 3).
        let rules = ScalingRules {
            stabilization_window_seconds: 0,
            select_policy: ScalingPolicySelect::Max,
            policies: vec![HpaScalingPolicy {
                type_: HpaScalingPolicyType::Percent,
                value: 200,
                period_seconds: 120,
            }],
            tolerance: None,
        };
        let history = History {
            scale_up_events: vec![
                ScaleEvent {
                    replica_change: 5,
                    t_ms: NOW - 100_000,
                    outdated: false,
                },
                ScaleEvent {
                    replica_change: 10,
                    t_ms: NOW - 20_000,
                    outdated: false,
                },
                // Exactly one period old: outside (membership is strict).
                ScaleEvent {
                    replica_change: 7,
                    t_ms: NOW - 120_000,
                    outdated: false,
                },
            ],
            ..History::default()
        };
        assert_eq!(scale_up_limit(100, &history, &rules, NOW), 255);
    }

    #[test]
    fn disabled_scale_down_freezes() {
        let mut behavior = defaults();
        behavior.scale_down.select_policy = ScalingPolicySelect::Disabled;
        assert_eq!(
            rate_limit(10, 2, 1, 20, &behavior, &History::default(), NOW),
            (10, Reason::ScaleDownLimit)
        );
        // Min select on the way down picks the least change.
        let mut behavior = defaults();
        behavior.scale_down.select_policy = ScalingPolicySelect::Min;
        behavior.scale_down.policies = vec![
            HpaScalingPolicy {
                type_: HpaScalingPolicyType::Pods,
                value: 2,
                period_seconds: 60,
            },
            HpaScalingPolicy {
                type_: HpaScalingPolicyType::Percent,
                value: 50,
                period_seconds: 60,
            },
        ];
        assert_eq!(
            rate_limit(10, 2, 1, 20, &behavior, &History::default(), NOW),
            (8, Reason::ScaleDownLimit)
        );
        // The minimum wins when it is the tighter bound.
        assert_eq!(
            rate_limit(10, 2, 9, 20, &behavior, &History::default(), NOW),
            (9, Reason::TooFewReplicas)
        );
    }

    #[test]
    fn stabilisation_windows() {
        let behavior = defaults();
        let mut history = History {
            recommendations: vec![
                TimestampedRecommendation {
                    replicas: 8,
                    t_ms: NOW - 100_000,
                },
                TimestampedRecommendation {
                    replicas: 9,
                    t_ms: NOW - 400_000,
                },
            ],
            ..History::default()
        };
        // Proposal below current, recent history above current: stay at current.
        let (stabilized, reason) = stabilize_with_behavior(&mut history, 3, 5, &behavior, NOW);
        assert_eq!((stabilized, reason), (5, Reason::ScaleDownStabilized));
        // The expired entry's slot was reused.
        assert_eq!(history.recommendations.len(), 2);
        assert_eq!(
            history.recommendations[1],
            TimestampedRecommendation {
                replicas: 3,
                t_ms: NOW
            }
        );

        let mut legacy = History::default();
        assert_eq!(stabilize_legacy(&mut legacy, 10, NOW, 300_000), 10);
        assert_eq!(
            stabilize_legacy(&mut legacy, 4, NOW + 300_000, 300_000),
            10,
            "window includes its edge"
        );
        assert_eq!(stabilize_legacy(&mut legacy, 4, NOW + 300_001, 300_000), 4);
        assert_eq!(legacy.recommendations.len(), 2);
    }

    #[test]
    fn legacy_clamp() {
        assert_eq!(
            legacy_limit(3, 1000, 1, 2000, 2.0, 4.0),
            (6, Reason::ScaleUpLimit)
        );
        assert_eq!(
            legacy_limit(1, 1000, 1, 2000, 2.0, 4.0),
            (4, Reason::ScaleUpLimit)
        );
        assert_eq!(
            legacy_limit(3, 1000, 1, 5, 2.0, 4.0),
            (5, Reason::TooManyReplicas)
        );
        assert_eq!(
            legacy_limit(3, 1, 2, 5, 2.0, 4.0),
            (2, Reason::TooFewReplicas)
        );
        assert_eq!(
            legacy_limit(3, 4, 2, 5, 2.0, 4.0),
            (4, Reason::DesiredWithinRange)
        );
    }

    #[test]
    fn scale_events_reuse_outdated_slots() {
        let behavior = defaults();
        let mut history = History::default();
        history.record_scale_event(&behavior, 1, 3, NOW);
        history.record_scale_event(&behavior, 3, 5, NOW + 5_000);
        assert_eq!(history.scale_up_events.len(), 2);
        // 20 s later both are older than the longest period (15 s): the last one is reused.
        history.record_scale_event(&behavior, 5, 9, NOW + 25_000);
        assert_eq!(history.scale_up_events.len(), 2);
        assert_eq!(history.scale_up_events[1].replica_change, 4);
        assert!(history.scale_up_events[0].outdated);
        history.record_scale_event(&behavior, 9, 6, NOW + 30_000);
        assert_eq!(history.scale_down_events[0].replica_change, 3);
    }
}
