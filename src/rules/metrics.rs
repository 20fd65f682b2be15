//! The rule engine's self-monitoring: Prometheus's `prometheus_rule_*`
//! group figures under `sextant_rule_*`, labeled `rule_group="file;name"`.

use std::sync::Arc;

use crate::metrics::{Counter, Family, Gauge, Registry};

#[derive(Clone)]
pub struct RuleMetrics {
    pub iterations_scheduled: Arc<Family<Counter>>,
    pub iterations_missed: Arc<Family<Counter>>,
    pub evaluations: Arc<Family<Counter>>,
    pub failures: Arc<Family<Counter>>,
    pub last_duration: Arc<Family<Gauge>>,
    pub last_evaluation: Arc<Family<Gauge>>,
    pub interval: Arc<Family<Gauge>>,
    pub rules: Arc<Family<Gauge>>,
    pub samples: Arc<Family<Gauge>>,
}

impl RuleMetrics {
    pub fn register(registry: &Registry) -> Self {
        let group = &["rule_group"];
        RuleMetrics {
            iterations_scheduled: registry.counter(
                "sextant_rule_group_iterations_total",
                "Scheduled rule group evaluations, whether executed or missed.",
                group,
            ),
            iterations_missed: registry.counter(
                "sextant_rule_group_iterations_missed_total",
                "Rule group evaluations missed because an evaluation overran.",
                group,
            ),
            evaluations: registry.counter(
                "sextant_rule_evaluations_total",
                "Rule evaluations.",
                group,
            ),
            failures: registry.counter(
                "sextant_rule_evaluation_failures_total",
                "Rule evaluations that failed.",
                group,
            ),
            last_duration: registry.gauge(
                "sextant_rule_group_last_duration_seconds",
                "Duration of the last rule group evaluation.",
                group,
            ),
            last_evaluation: registry.gauge(
                "sextant_rule_group_last_evaluation_timestamp_seconds",
                "Time of the last rule group evaluation.",
                group,
            ),
            interval: registry.gauge(
                "sextant_rule_group_interval_seconds",
                "The interval of a rule group.",
                group,
            ),
            rules: registry.gauge("sextant_rule_group_rules", "Rules in a group.", group),
            samples: registry.gauge(
                "sextant_rule_group_last_evaluation_samples",
                "Samples returned by the last rule group evaluation.",
                group,
            ),
        }
    }
}
