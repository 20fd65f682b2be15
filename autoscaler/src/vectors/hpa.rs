//! HPA vectors: `replica_calculator`, `behavior_rate_limit`,
//! `stabilization_with_behavior`, `normalize_no_behavior` and `controller` layers.
//!
//! Pods in vectors carry raw facts (`phase`, `ready`, `cpu_init` hot or cool,
//! `deleting`) and the derived `cpu_unready`. They become [`Pod`]s as the tests set them
//! up: a hot pod started 1 minute ago (inside the 5-minute CPU initialisation period), a
//! cool one an hour ago; a not-ready pod has never been ready, unless the vector says
//! `cpu_unready: false` for it, in which case it became unready after being ready. The
//! derived flag is then checked against the pod classification, so a vector whose
//! facts and flag disagree is reported instead of silently giving another answer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{Checks, Difference, Obj, as_i64};
use crate::hpa::behavior::{
    self, Behavior, History, ScaleEvent, ScalingRules, TimestampedRecommendation,
};
use crate::hpa::pods::group_pods;
use crate::hpa::{
    self, MetricOutcome, MetricReading, Observation, Options, PodMetric, Reason, Tolerances,
};
use crate::model::{
    CPU, ConditionStatus, Container, ContainerResourceMetricSource, CrossVersionObjectReference,
    ExternalMetricSource, HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec,
    HpaScalingPolicy, HpaScalingPolicyType, MetricIdentifier, MetricSourceType, MetricSpec,
    MetricTarget, MetricTargetType, ObjectMetricSource, Pod, PodPhase, PodsMetricSource,
    ReadyCondition, ResourceMetricSource, ScalingPolicySelect,
};
use crate::quantity::{Format, Quantity};

/// The time every vector is evaluated at.
const NOW: i64 = 1_700_000_000_000;
/// The container name pods get; ContainerResource metrics name it.
const CONTAINER: &str = "main";
const SAMPLE_WINDOW_MS: i64 = 30_000;

pub(super) fn run(layer: &str, vector: &Value) -> Result<Vec<Difference>, String> {
    let v = Obj::new(vector);
    match layer {
        "replica_calculator" => replica_calculator(v),
        "behavior_rate_limit" => behavior_rate_limit(v),
        "stabilization_with_behavior" => stabilization_with_behavior(v),
        "normalize_no_behavior" => normalize_no_behavior(v),
        "controller" => controller(v),
        other => Err(format!("unknown HPA layer {other:?}")),
    }
}

fn tolerances(v: Obj<'_>) -> Result<Tolerances, String> {
    match v.opt("tolerance") {
        None => Ok(Tolerances::default()),
        Some(t) => {
            let t = Obj::new(t);
            Ok(Tolerances {
                scale_up: t.f64("scale_up")?,
                scale_down: t.f64("scale_down")?,
            })
        }
    }
}

fn milli(v: i64) -> Quantity {
    Quantity::from_milli(v, Format::DecimalSi)
}

/// A vector pod, its sample (if any) and the `cpu_unready` flag it declares.
struct VectorPod {
    pod: Pod,
    usage: Option<i64>,
    cpu_unready: Option<bool>,
}

fn vector_pod(p: &Value, resource: Option<&str>) -> Result<VectorPod, String> {
    let p = Obj::new(p);
    let name = p.str("name")?.to_string();
    let phase = match p.opt("phase").and_then(Value::as_str).unwrap_or("Running") {
        "Running" => PodPhase::Running,
        "Pending" => PodPhase::Pending,
        "Succeeded" => PodPhase::Succeeded,
        "Failed" => PodPhase::Failed,
        "Unknown" => PodPhase::Unknown,
        other => return Err(format!("pod {name}: unknown phase {other:?}")),
    };
    let hot = match p.opt("cpu_init").and_then(Value::as_str).unwrap_or("cool") {
        "hot" => true,
        "cool" => false,
        other => {
            return Err(format!(
                "pod {name}: cpu_init must be hot or cool, not {other:?}"
            ));
        }
    };
    let ready = p.opt("ready").and_then(Value::as_bool).unwrap_or(true);
    let cpu_unready = p.opt("cpu_unready").and_then(Value::as_bool);
    let start = if hot { NOW - 60_000 } else { NOW - 3_600_000 };
    let last_transition = if !ready && !hot && cpu_unready == Some(false) {
        // Became unready long after it was first ready.
        start + 600_000
    } else {
        start
    };
    let mut requests = BTreeMap::new();
    if let (Some(resource), Some(r)) = (resource, p.opt("request_milli")) {
        let r = as_i64(r).ok_or_else(|| format!("pod {name}: request_milli is not an integer"))?;
        requests.insert(resource.to_string(), r);
    }
    let usage = match p.opt("usage_milli") {
        None => None,
        Some(u) => {
            Some(as_i64(u).ok_or_else(|| format!("pod {name}: usage_milli is not an integer"))?)
        }
    };
    Ok(VectorPod {
        pod: Pod {
            name,
            phase,
            deleting: p.opt("deleting").and_then(Value::as_bool).unwrap_or(false),
            start_time_ms: Some(start),
            ready: Some(ReadyCondition {
                status: if ready {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                last_transition_ms: last_transition,
            }),
            containers: vec![Container {
                name: CONTAINER.to_string(),
                requests_milli: requests,
                restart_always: false,
            }],
            init_containers: Vec::new(),
            pod_requests_milli: BTreeMap::new(),
        },
        usage,
        cpu_unready,
    })
}

/// A metric of a vector: its spec, pods and reading.
struct VectorMetric {
    spec: MetricSpec,
    pods: Vec<Pod>,
    reading: MetricReading,
}

fn vector_metric(v: Obj<'_>, options: &Options) -> Result<VectorMetric, String> {
    let source = v.str("metric_source")?;
    let target_type = v.str("target_type")?;
    let resource = match source {
        "Resource" | "ContainerResource" => {
            Some(v.opt("resource").and_then(Value::as_str).unwrap_or(CPU))
        }
        _ => None,
    };
    let mut pods = Vec::new();
    let mut samples = BTreeMap::new();
    let mut declared = Vec::new();
    for p in v
        .opt("pods")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let vp = vector_pod(p, resource)?;
        if let Some(u) = vp.usage {
            samples.insert(
                vp.pod.name.clone(),
                PodMetric {
                    value_milli: u,
                    timestamp_ms: NOW,
                    window_ms: SAMPLE_WINDOW_MS,
                },
            );
        }
        declared.push((vp.pod.name.clone(), vp.cpu_unready));
        pods.push(vp.pod);
    }
    if let Some(unknown) = v.opt("metrics_for_unknown_pods_milli") {
        for (pod, value) in Obj::new(unknown).entries()? {
            let value = as_i64(value)
                .ok_or_else(|| format!("metric of unknown pod {pod} is not an integer"))?;
            samples.insert(
                pod.clone(),
                PodMetric {
                    value_milli: value,
                    timestamp_ms: NOW,
                    window_ms: SAMPLE_WINDOW_MS,
                },
            );
        }
    }
    // The derived flag must agree with the facts.
    if resource == Some(CPU) {
        let groups = group_pods(&pods, &samples, Some(CPU), NOW, options);
        for (name, flag) in &declared {
            let Some(flag) = flag else { continue };
            let pod_has_sample = samples.contains_key(name);
            let pending = pods
                .iter()
                .any(|p| &p.name == name && p.phase == PodPhase::Pending);
            if !pod_has_sample || pending {
                continue;
            }
            let unready = groups.unready.contains(name);
            if unready != *flag {
                return Err(format!(
                    "pod {name}: its facts make it {} for cpu, but the vector says cpu_unready = {flag}",
                    if unready { "unready" } else { "ready" }
                ));
            }
        }
    }
    let target = |type_: MetricTargetType| MetricTarget {
        type_,
        value: None,
        average_value: None,
        average_utilization: None,
    };
    let mut t = match target_type {
        "Utilization" => target(MetricTargetType::Utilization),
        "AverageValue" => target(MetricTargetType::AverageValue),
        "Value" => target(MetricTargetType::Value),
        other => return Err(format!("unknown target_type {other:?}")),
    };
    match t.type_ {
        MetricTargetType::Utilization => {
            t.average_utilization = Some(v.i32("target_average_utilization")?)
        }
        MetricTargetType::AverageValue => {
            t.average_value = Some(milli(v.i64("target_average_value_milli")?))
        }
        MetricTargetType::Value => t.value = Some(milli(v.i64("target_value_milli")?)),
    }
    let metric_name = v
        .opt("metric_name")
        .and_then(Value::as_str)
        .unwrap_or("metric")
        .to_string();
    let identifier = MetricIdentifier {
        name: metric_name,
        selector: None,
    };
    let values = || -> Result<MetricReading, String> {
        let values = v
            .array("metric_values_milli")?
            .iter()
            .map(|x| as_i64(x).ok_or_else(|| "metric_values_milli holds a non-integer".to_string()))
            .collect::<Result<Vec<i64>, String>>()?;
        Ok(MetricReading::Values(values))
    };
    let empty = || MetricSpec {
        type_: MetricSourceType::Resource,
        object: None,
        pods: None,
        resource: None,
        container_resource: None,
        external: None,
    };
    let (spec, reading) = match source {
        "Resource" => (
            MetricSpec {
                type_: MetricSourceType::Resource,
                resource: Some(ResourceMetricSource {
                    name: resource.unwrap_or(CPU).to_string(),
                    target: t,
                }),
                ..empty()
            },
            MetricReading::PerPod(samples),
        ),
        "ContainerResource" => (
            MetricSpec {
                type_: MetricSourceType::ContainerResource,
                container_resource: Some(ContainerResourceMetricSource {
                    name: resource.unwrap_or(CPU).to_string(),
                    target: t,
                    container: CONTAINER.to_string(),
                }),
                ..empty()
            },
            MetricReading::PerPod(samples),
        ),
        "Pods" => (
            MetricSpec {
                type_: MetricSourceType::Pods,
                pods: Some(PodsMetricSource {
                    metric: identifier,
                    target: t,
                }),
                ..empty()
            },
            MetricReading::PerPod(samples),
        ),
        "Object" => (
            MetricSpec {
                type_: MetricSourceType::Object,
                object: Some(ObjectMetricSource {
                    described_object: CrossVersionObjectReference {
                        kind: "Service".into(),
                        name: "object".into(),
                        api_version: None,
                    },
                    target: t,
                    metric: identifier,
                }),
                ..empty()
            },
            values()?,
        ),
        "External" => (
            MetricSpec {
                type_: MetricSourceType::External,
                external: Some(ExternalMetricSource {
                    metric: identifier,
                    target: t,
                }),
                ..empty()
            },
            values()?,
        ),
        other => return Err(format!("unknown metric_source {other:?}")),
    };
    Ok(VectorMetric {
        spec,
        pods,
        reading,
    })
}

fn replica_calculator(v: Obj<'_>) -> Result<Vec<Difference>, String> {
    let options = Options::default();
    let metric = vector_metric(v, &options)?;
    let current = v
        .opt("current_replicas")
        .map(|_| v.i32("current_replicas"))
        .transpose()?;
    let status = v
        .opt("status_replicas")
        .map(|_| v.i32("status_replicas"))
        .transpose()?;
    let observation = Observation {
        spec_replicas: current.or(status).unwrap_or(0),
        status_replicas: status.or(current).unwrap_or(0),
        pods: metric.pods,
        readings: vec![metric.reading.clone()],
    };
    let outcome = hpa::compute_metric(
        &metric.spec,
        &metric.reading,
        &observation,
        tolerances(v)?,
        NOW,
        &options,
    );
    let mut checks = Checks::default();
    for (key, expected) in v.obj("expected")?.entries()? {
        match (&outcome, key.as_str()) {
            (Err(err), "error") => {
                if !err
                    .to_string()
                    .contains(expected.as_str().unwrap_or_default())
                {
                    checks.differ("error", expected, err);
                }
            }
            (Ok(c), "error") => {
                checks.differ("error", expected, format!("{} replicas", c.replicas))
            }
            (Err(err), _) => checks.differ(key, expected, format!("error: {err}")),
            (Ok(c), "desired_replicas") => checks.int(key, expected, Some(i64::from(c.replicas))),
            (Ok(c), "utilization_percent") => {
                checks.int(key, expected, c.current.average_utilization.map(i64::from))
            }
            (Ok(c), "raw_average_value_milli" | "current_average_value_milli") => {
                checks.int(
                    key,
                    expected,
                    c.current.average_value.map(|q| q.milli_value()),
                );
            }
            (Ok(c), "current_value_milli") => {
                checks.int(key, expected, c.current.value.map(|q| q.milli_value()))
            }
            (Ok(_), _) => checks.unknown(key, expected),
        }
    }
    Ok(checks.diffs)
}

/// Rules in the vectors' snake_case form, or the Kubernetes camelCase form (defaulted
/// as the API server does for that direction).
fn scaling_rules(v: &Value, scale_down: bool, default_window: i32) -> Result<ScalingRules, String> {
    if let Ok(camel) = serde_json::from_value::<crate::model::HpaScalingRules>(v.clone()) {
        let spec = if scale_down {
            HorizontalPodAutoscalerBehavior {
                scale_up: None,
                scale_down: Some(camel),
            }
        } else {
            HorizontalPodAutoscalerBehavior {
                scale_up: Some(camel),
                scale_down: None,
            }
        };
        let behavior = Behavior::from_spec(&spec, default_window);
        return Ok(if scale_down {
            behavior.scale_down
        } else {
            behavior.scale_up
        });
    }
    let o = Obj::new(v);
    let select_policy = match o
        .opt("select_policy")
        .and_then(Value::as_str)
        .unwrap_or("Max")
    {
        "Max" => ScalingPolicySelect::Max,
        "Min" => ScalingPolicySelect::Min,
        "Disabled" => ScalingPolicySelect::Disabled,
        other => return Err(format!("unknown select_policy {other:?}")),
    };
    let mut policies = Vec::new();
    for p in o
        .opt("policies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let p = Obj::new(p);
        let type_ = match p.str("type")? {
            "Pods" => HpaScalingPolicyType::Pods,
            "Percent" => HpaScalingPolicyType::Percent,
            other => return Err(format!("unknown policy type {other:?}")),
        };
        policies.push(HpaScalingPolicy {
            type_,
            value: p.i32("value")?,
            period_seconds: p.i32("period_seconds")?,
        });
    }
    Ok(ScalingRules {
        stabilization_window_seconds: match o.opt("stabilization_window_seconds") {
            Some(_) => o.i32("stabilization_window_seconds")?,
            None => default_window,
        },
        select_policy,
        policies,
        tolerance: o.opt("tolerance").and_then(Value::as_f64),
    })
}

fn behavior_of(
    v: Obj<'_>,
    up_key: &str,
    down_key: &str,
    downscale_window: i32,
) -> Result<Behavior, String> {
    let defaults = Behavior::from_spec(
        &HorizontalPodAutoscalerBehavior::default(),
        downscale_window,
    );
    Ok(Behavior {
        scale_up: match v.opt(up_key) {
            Some(r) => scaling_rules(r, false, 0)?,
            None => defaults.scale_up,
        },
        scale_down: match v.opt(down_key) {
            Some(r) => scaling_rules(r, true, downscale_window)?,
            None => defaults.scale_down,
        },
    })
}

fn time_of(age: &Value) -> Result<i64, String> {
    let seconds = age.as_f64().ok_or("age_seconds is not a number")?;
    Ok(NOW - (seconds * 1000.0).round() as i64)
}

fn events(v: Obj<'_>, key: &str) -> Result<Vec<ScaleEvent>, String> {
    let mut out = Vec::new();
    for e in v.opt(key).and_then(Value::as_array).into_iter().flatten() {
        let e = Obj::new(e);
        out.push(ScaleEvent {
            replica_change: e.i32("replica_change")?,
            t_ms: time_of(e.get("age_seconds")?)?,
            outdated: false,
        });
    }
    Ok(out)
}

fn recommendations(v: Obj<'_>) -> Result<Vec<TimestampedRecommendation>, String> {
    let mut out = Vec::new();
    for r in v
        .opt("recommendations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let r = Obj::new(r);
        out.push(TimestampedRecommendation {
            replicas: r.i32("replicas")?,
            t_ms: time_of(r.get("age_seconds")?)?,
        });
    }
    Ok(out)
}

fn downscale_window(v: Obj<'_>) -> Result<i32, String> {
    match v.opt("downscale_stabilization_window_seconds") {
        Some(_) => v.i32("downscale_stabilization_window_seconds"),
        None => Ok(300),
    }
}

fn behavior_rate_limit(v: Obj<'_>) -> Result<Vec<Difference>, String> {
    let behavior = behavior_of(
        v,
        "scale_up_rules",
        "scale_down_rules",
        downscale_window(v)?,
    )?;
    let history = History {
        recommendations: Vec::new(),
        scale_up_events: events(v, "scale_up_events")?,
        scale_down_events: events(v, "scale_down_events")?,
    };
    let (desired, reason) = behavior::rate_limit(
        v.i32("current_replicas")?,
        v.i32("prenormalized_desired_replicas")?,
        v.i32("min_replicas")?,
        v.i32("max_replicas")?,
        &behavior,
        &history,
        NOW,
    );
    let mut checks = Checks::default();
    for (key, expected) in v.obj("expected")?.entries()? {
        match key.as_str() {
            "desired_replicas" => checks.int(key, expected, Some(i64::from(desired))),
            "limiting_reason" => checks.text(key, expected, &reason.to_string()),
            _ => checks.unknown(key, expected),
        }
    }
    Ok(checks.diffs)
}

fn stabilization_with_behavior(v: Obj<'_>) -> Result<Vec<Difference>, String> {
    let mut behavior = behavior_of(
        v,
        "scale_up_rules",
        "scale_down_rules",
        downscale_window(v)?,
    )?;
    if v.opt("scale_up_stabilization_window_seconds").is_some() {
        behavior.scale_up.stabilization_window_seconds =
            v.i32("scale_up_stabilization_window_seconds")?;
    }
    if v.opt("scale_down_stabilization_window_seconds").is_some() {
        behavior.scale_down.stabilization_window_seconds =
            v.i32("scale_down_stabilization_window_seconds")?;
    }
    let mut history = History {
        recommendations: recommendations(v)?,
        ..History::default()
    };
    let proposal = v.i32("prenormalized_desired_replicas")?;
    let (stabilized, reason) = behavior::stabilize_with_behavior(
        &mut history,
        proposal,
        v.i32("current_replicas")?,
        &behavior,
        NOW,
    );
    let reason = if stabilized == proposal {
        Reason::ReadyForNewScale
    } else {
        reason
    };
    let mut checks = Checks::default();
    for (key, expected) in v.obj("expected")?.entries()? {
        match key.as_str() {
            "stabilized_replicas" | "desired_replicas" => {
                checks.int(key, expected, Some(i64::from(stabilized)))
            }
            "able_to_scale_reason" | "reason" => checks.text(key, expected, &reason.to_string()),
            _ => checks.unknown(key, expected),
        }
    }
    Ok(checks.diffs)
}

fn normalize_no_behavior(v: Obj<'_>) -> Result<Vec<Difference>, String> {
    let mut proposal = v.i32("prenormalized_desired_replicas")?;
    let mut stabilized = None;
    if v.opt("recommendations").is_some() {
        let mut history = History {
            recommendations: recommendations(v)?,
            ..History::default()
        };
        let window_ms = i64::from(downscale_window(v)?) * 1000;
        proposal = behavior::stabilize_legacy(&mut history, proposal, NOW, window_ms);
        stabilized = Some(proposal);
    }
    let factor = v
        .opt("scale_up_limit_factor")
        .and_then(Value::as_f64)
        .unwrap_or(2.0);
    let minimum = v
        .opt("scale_up_limit_minimum")
        .and_then(Value::as_f64)
        .unwrap_or(4.0);
    let (desired, reason) = behavior::legacy_limit(
        v.i32("current_replicas")?,
        proposal,
        v.i32("min_replicas")?,
        v.i32("max_replicas")?,
        factor,
        minimum,
    );
    let mut checks = Checks::default();
    for (key, expected) in v.obj("expected")?.entries()? {
        match key.as_str() {
            "desired_replicas" => checks.int(key, expected, Some(i64::from(desired))),
            "limiting_reason" => checks.text(key, expected, &reason.to_string()),
            "stabilized_replicas" => checks.int(key, expected, stabilized.map(i64::from)),
            _ => checks.unknown(key, expected),
        }
    }
    Ok(checks.diffs)
}

fn controller(v: Obj<'_>) -> Result<Vec<Difference>, String> {
    let window = downscale_window(v)?;
    let options = Options {
        downscale_stabilization: Duration::from_secs(u64::try_from(window).unwrap_or(300)),
        scale_up_limit_factor: v
            .opt("scale_up_limit_factor")
            .and_then(Value::as_f64)
            .unwrap_or(2.0),
        scale_up_limit_minimum: v
            .opt("scale_up_limit_minimum")
            .and_then(Value::as_f64)
            .unwrap_or(4.0),
        tolerance: v
            .opt("tolerance")
            .and_then(|t| t.get("scale_up"))
            .and_then(Value::as_f64)
            .unwrap_or(0.1),
        ..Options::default()
    };
    let mut metrics = Vec::new();
    for m in v.array("metrics")? {
        metrics.push(vector_metric(Obj::new(m), &options)?);
    }
    let behavior = match v.opt("behavior") {
        None => None,
        Some(b) => Some(
            match serde_json::from_value::<HorizontalPodAutoscalerBehavior>(b.clone()) {
                Ok(camel) => camel,
                Err(_) => {
                    // The snake_case form: {scale_up: {...}, scale_down: {...}}.
                    let o = Obj::new(b);
                    let resolved = behavior_of(o, "scale_up", "scale_down", window)?;
                    let as_spec = |r: &ScalingRules| crate::model::HpaScalingRules {
                        stabilization_window_seconds: Some(r.stabilization_window_seconds),
                        select_policy: Some(r.select_policy),
                        policies: Some(r.policies.clone()),
                        tolerance: r.tolerance.and_then(|t| format!("{t}").parse().ok()),
                    };
                    HorizontalPodAutoscalerBehavior {
                        scale_up: Some(as_spec(&resolved.scale_up)),
                        scale_down: Some(as_spec(&resolved.scale_down)),
                    }
                }
            },
        ),
    };
    let mut tolerance_spec = behavior.clone();
    if let (Some(b), Some(t)) = (&mut tolerance_spec, v.opt("tolerance")) {
        // Per-direction tolerances of the vector apply to this HPA.
        let t = Obj::new(t);
        let q = |x: f64| format!("{x}").parse::<Quantity>().ok();
        b.scale_up.get_or_insert_with(Default::default).tolerance = q(t.f64("scale_up")?);
        b.scale_down.get_or_insert_with(Default::default).tolerance = q(t.f64("scale_down")?);
    }
    let spec = HorizontalPodAutoscalerSpec {
        scale_target_ref: None,
        min_replicas: v
            .opt("min_replicas")
            .map(|_| v.i32("min_replicas"))
            .transpose()?,
        max_replicas: v.i32("max_replicas")?,
        metrics: metrics.iter().map(|m| m.spec.clone()).collect(),
        behavior: tolerance_spec,
        selection_strategy: None,
    };
    let pods = metrics
        .iter()
        .find(|m| !m.pods.is_empty())
        .map(|m| m.pods.clone())
        .unwrap_or_default();
    let spec_replicas = v.i32("spec_replicas")?;
    let observation = Observation {
        spec_replicas,
        status_replicas: v
            .opt("status_replicas")
            .map(|_| v.i32("status_replicas"))
            .transpose()?
            .unwrap_or(spec_replicas),
        pods,
        readings: metrics.iter().map(|m| m.reading.clone()).collect(),
    };
    let mut history = History {
        recommendations: recommendations(v)?,
        scale_up_events: events(v, "scale_up_events")?,
        scale_down_events: events(v, "scale_down_events")?,
    };
    let rec = hpa::reconcile(&spec, &observation, &mut history, NOW, &options);
    let mut checks = Checks::default();
    for (key, expected) in v.obj("expected")?.entries()? {
        match key.as_str() {
            "desired_replicas" => checks.int(key, expected, Some(i64::from(rec.desired_replicas))),
            "per_metric_proposals" => {
                let actual: Vec<Value> = rec
                    .metrics
                    .iter()
                    .map(|m| m.replicas().map_or(Value::Null, Value::from))
                    .collect();
                if expected != &Value::Array(actual.clone()) {
                    checks.differ(key, expected, Value::Array(actual));
                }
            }
            "utilization_percent" => {
                let utilization = rec.metrics.iter().find_map(|m| match &m.outcome {
                    MetricOutcome::Computed(c) => c.current.average_utilization,
                    MetricOutcome::Failed(_) => None,
                });
                checks.int(key, expected, utilization.map(i64::from));
            }
            "limiting_reason" => checks.text(
                key,
                expected,
                &rec.scaling_limited
                    .as_ref()
                    .map_or("none".to_string(), |c| c.reason.to_string()),
            ),
            "able_to_scale_reason" => {
                checks.text(key, expected, &rec.able_to_scale.reason.to_string())
            }
            "scaling_active_reason" => {
                checks.text(key, expected, &rec.scaling_active.reason.to_string())
            }
            "stabilized_replicas" => checks.int(key, expected, rec.stabilized.map(i64::from)),
            "proposal" | "metric_desired_replicas" => {
                checks.int(key, expected, rec.proposal.map(i64::from))
            }
            "error" => {
                let actual = rec.error.clone().unwrap_or_default();
                if actual.is_empty() || !actual.contains(expected.as_str().unwrap_or_default()) {
                    checks.differ(key, expected, actual);
                }
            }
            _ => checks.unknown(key, expected),
        }
    }
    Ok(checks.diffs)
}
