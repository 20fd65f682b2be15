//! What the recommenders read: HPA specs in the Kubernetes `autoscaling/v2` shape (so a
//! user can paste HPA YAML), the VPA resource policy in the `autoscaling.k8s.io/v1`
//! shape, and the pod facts the HPA replica calculator needs.
//!
//! Field names and casing follow the Kubernetes API exactly (serde, camelCase). Unknown
//! fields inside a spec are errors, so a typo such as `minReplica` does not silently
//! fall back to a default; `metadata` and `status` of a pasted object are read leniently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::quantity::Quantity;
use crate::{Error, Result};

/// The resource name of CPU, the only resource with readiness rules in the HPA.
pub const CPU: &str = "cpu";
/// The resource name of memory.
pub const MEMORY: &str = "memory";

// ---------------------------------------------------------------------------------------
// autoscaling/v2 HorizontalPodAutoscaler
// ---------------------------------------------------------------------------------------

/// A whole `HorizontalPodAutoscaler` object as `kubectl get hpa -o yaml` prints it.
/// `status` and unknown metadata are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscaler {
    #[serde(default = "hpa_api_version")]
    pub api_version: String,
    #[serde(default = "hpa_kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: HorizontalPodAutoscalerSpec,
}

fn hpa_api_version() -> String {
    "autoscaling/v2".to_string()
}

fn hpa_kind() -> String {
    "HorizontalPodAutoscaler".to_string()
}

/// The part of `metadata` the recommender uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `HorizontalPodAutoscalerSpec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HorizontalPodAutoscalerSpec {
    /// The workload; optional here because Sextant's config names the workload itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target_ref: Option<CrossVersionObjectReference>,
    /// Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    /// Defaults to one Resource metric: cpu at 80 % utilization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
    /// `None` selects the legacy normalisation (no policies, 2x scale-up limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
    /// Accepted for compatibility with the newest API; not used by the algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_strategy: Option<String>,
}

impl HorizontalPodAutoscalerSpec {
    /// `spec.minReplicas` with its default.
    pub fn min_replicas_or_default(&self) -> i32 {
        self.min_replicas.unwrap_or(1)
    }

    /// `spec.metrics` with the API default (cpu at 80 % utilization) when empty.
    pub fn metrics_or_default(&self) -> Vec<MetricSpec> {
        if self.metrics.is_empty() {
            vec![MetricSpec::resource_utilization(CPU, 80)]
        } else {
            self.metrics.clone()
        }
    }

    /// The checks the API server applies before it stores an HPA (the subset that
    /// matters for the algorithm).
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] naming the first offending field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, reason: String| {
            Err(Error::InvalidSpec {
                field: field.to_string(),
                reason,
            })
        };
        if self.max_replicas < 1 {
            return invalid("maxReplicas", "must be greater than or equal to 1".into());
        }
        if let Some(min) = self.min_replicas {
            if min < 0 {
                return invalid("minReplicas", "must be greater than or equal to 0".into());
            }
            if min > self.max_replicas {
                return invalid(
                    "minReplicas",
                    format!(
                        "must be less than or equal to maxReplicas ({})",
                        self.max_replicas
                    ),
                );
            }
            if min == 0
                && !self.metrics.iter().any(|m| {
                    matches!(
                        m.type_,
                        MetricSourceType::Object | MetricSourceType::External
                    )
                })
            {
                return invalid(
                    "minReplicas",
                    "0 needs at least one Object or External metric".into(),
                );
            }
        }
        for (i, metric) in self.metrics.iter().enumerate() {
            if let Err(reason) = metric.source() {
                return invalid(&format!("metrics[{i}]"), reason);
            }
        }
        if let Some(behavior) = &self.behavior {
            for (name, rules) in [
                ("scaleUp", &behavior.scale_up),
                ("scaleDown", &behavior.scale_down),
            ] {
                let Some(rules) = rules else { continue };
                if let Some(w) = rules.stabilization_window_seconds
                    && !(0..=3600).contains(&w)
                {
                    return invalid(
                        &format!("behavior.{name}.stabilizationWindowSeconds"),
                        "must be between 0 and 3600".into(),
                    );
                }
                for (j, policy) in rules.policies.iter().flatten().enumerate() {
                    if policy.value <= 0 {
                        return invalid(
                            &format!("behavior.{name}.policies[{j}].value"),
                            "must be greater than 0".into(),
                        );
                    }
                    if !(1..=1800).contains(&policy.period_seconds) {
                        return invalid(
                            &format!("behavior.{name}.policies[{j}].periodSeconds"),
                            "must be between 1 and 1800".into(),
                        );
                    }
                }
                if let Some(t) = &rules.tolerance
                    && t.signum() < 0
                {
                    return invalid(
                        &format!("behavior.{name}.tolerance"),
                        "must not be negative".into(),
                    );
                }
            }
        }
        Ok(())
    }
}

/// `CrossVersionObjectReference`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrossVersionObjectReference {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// `MetricSourceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricSourceType {
    Object,
    Pods,
    Resource,
    ContainerResource,
    External,
}

/// `MetricSpec`: a `type` and the one matching source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSpec {
    #[serde(rename = "type")]
    pub type_: MetricSourceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_resource: Option<ContainerResourceMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalMetricSource>,
}

/// A borrowed view of the source a [`MetricSpec`] selects.
#[derive(Debug, Clone, Copy)]
pub enum MetricSource<'a> {
    Object(&'a ObjectMetricSource),
    Pods(&'a PodsMetricSource),
    Resource(&'a ResourceMetricSource),
    ContainerResource(&'a ContainerResourceMetricSource),
    External(&'a ExternalMetricSource),
}

impl MetricSpec {
    /// A Resource metric with a Utilization target.
    pub fn resource_utilization(resource: &str, percent: i32) -> MetricSpec {
        MetricSpec {
            type_: MetricSourceType::Resource,
            object: None,
            pods: None,
            resource: Some(ResourceMetricSource {
                name: resource.to_string(),
                target: MetricTarget {
                    type_: MetricTargetType::Utilization,
                    value: None,
                    average_value: None,
                    average_utilization: Some(percent),
                },
            }),
            container_resource: None,
            external: None,
        }
    }

    /// The source matching `type`.
    ///
    /// # Errors
    /// A message when the field for `type` is missing.
    pub fn source(&self) -> std::result::Result<MetricSource<'_>, String> {
        let missing = |field: &str| format!("type {:?} needs the field {field:?}", self.type_);
        Ok(match self.type_ {
            MetricSourceType::Object => {
                MetricSource::Object(self.object.as_ref().ok_or_else(|| missing("object"))?)
            }
            MetricSourceType::Pods => {
                MetricSource::Pods(self.pods.as_ref().ok_or_else(|| missing("pods"))?)
            }
            MetricSourceType::Resource => {
                MetricSource::Resource(self.resource.as_ref().ok_or_else(|| missing("resource"))?)
            }
            MetricSourceType::ContainerResource => MetricSource::ContainerResource(
                self.container_resource
                    .as_ref()
                    .ok_or_else(|| missing("containerResource"))?,
            ),
            MetricSourceType::External => {
                MetricSource::External(self.external.as_ref().ok_or_else(|| missing("external"))?)
            }
        })
    }

    /// A short human name such as `cpu resource utilization` or `pods metric qps`.
    pub fn describe(&self) -> String {
        match self.source() {
            Ok(MetricSource::Resource(r)) => format!("resource {}", r.name),
            Ok(MetricSource::ContainerResource(r)) => {
                format!("resource {} of container {}", r.name, r.container)
            }
            Ok(MetricSource::Pods(p)) => format!("pods metric {}", p.metric.name),
            Ok(MetricSource::Object(o)) => format!(
                "object metric {} on {}/{}",
                o.metric.name, o.described_object.kind, o.described_object.name
            ),
            Ok(MetricSource::External(e)) => format!("external metric {}", e.metric.name),
            Err(_) => format!("{:?} metric (incomplete spec)", self.type_),
        }
    }
}

/// `ObjectMetricSource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMetricSource {
    pub described_object: CrossVersionObjectReference,
    pub target: MetricTarget,
    pub metric: MetricIdentifier,
}

/// `PodsMetricSource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodsMetricSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

/// `ResourceMetricSource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceMetricSource {
    pub name: String,
    pub target: MetricTarget,
}

/// `ContainerResourceMetricSource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerResourceMetricSource {
    pub name: String,
    pub target: MetricTarget,
    pub container: String,
}

/// `ExternalMetricSource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalMetricSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

/// `MetricIdentifier`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricIdentifier {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// `metav1.LabelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `MetricTargetType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricTargetType {
    Utilization,
    Value,
    AverageValue,
}

/// `MetricTarget`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricTarget {
    #[serde(rename = "type")]
    pub type_: MetricTargetType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}

/// `HorizontalPodAutoscalerBehavior` as written; see [`crate::hpa::Behavior`] for the
/// defaulted form the controller uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HorizontalPodAutoscalerBehavior {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<HpaScalingRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<HpaScalingRules>,
}

/// `HPAScalingRules` as written (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HpaScalingRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization_window_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<ScalingPolicySelect>,
    /// `None` takes the default list; an explicit list (even empty) replaces it whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<HpaScalingPolicy>>,
    /// Per-direction tolerance such as `"0.05"` (HPAConfigurableTolerance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Quantity>,
}

/// `ScalingPolicySelect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScalingPolicySelect {
    Max,
    Min,
    Disabled,
}

/// `HPAScalingPolicyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HpaScalingPolicyType {
    Pods,
    Percent,
}

/// `HPAScalingPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HpaScalingPolicy {
    #[serde(rename = "type")]
    pub type_: HpaScalingPolicyType,
    pub value: i32,
    pub period_seconds: i32,
}

/// What `status.currentMetrics[i].<source>.current` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricValueStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}

// ---------------------------------------------------------------------------------------
// autoscaling.k8s.io/v1 VerticalPodAutoscaler resource policy
// ---------------------------------------------------------------------------------------

/// `spec.resourcePolicy` of a VPA.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodResourcePolicy {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_policies: Vec<ContainerResourcePolicy>,
}

impl PodResourcePolicy {
    /// The policy for `container`: the one naming it, else the `*` wildcard.
    pub fn for_container(&self, container: &str) -> Option<&ContainerResourcePolicy> {
        self.container_policies
            .iter()
            .find(|p| p.container_name == container)
            .or_else(|| {
                self.container_policies
                    .iter()
                    .find(|p| p.container_name == "*")
            })
    }
}

/// One `containerPolicies` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerResourcePolicy {
    /// A container name, or `*` for every container without its own policy.
    pub container_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ContainerScalingMode>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min_allowed: BTreeMap<String, Quantity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_allowed: BTreeMap<String, Quantity>,
    /// Defaults to cpu and memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlled_resources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlled_values: Option<ControlledValues>,
}

/// `ContainerScalingMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerScalingMode {
    Auto,
    Off,
}

/// `ContainerControlledValues`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlledValues {
    RequestsAndLimits,
    RequestsOnly,
}

// ---------------------------------------------------------------------------------------
// Pods, as the HPA replica calculator sees them
// ---------------------------------------------------------------------------------------

/// `PodPhase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// `ConditionStatus` of the pod's Ready condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// The pod's `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyCondition {
    pub status: ConditionStatus,
    /// `lastTransitionTime`, milliseconds since the Unix epoch.
    pub last_transition_ms: i64,
}

/// One container's resource requests, in milli-units (`MilliValue()` of the quantity:
/// millicores for cpu, thousandths of a byte for memory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    #[serde(default)]
    pub requests_milli: BTreeMap<String, i64>,
    /// `restartPolicy: Always` on an init container (a sidecar); its requests count.
    #[serde(default)]
    pub restart_always: bool,
}

/// The facts about one pod that the replica calculator uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    pub name: String,
    pub phase: PodPhase,
    /// `metadata.deletionTimestamp` is set.
    #[serde(default)]
    pub deleting: bool,
    /// `status.startTime`, milliseconds since the Unix epoch.
    #[serde(default)]
    pub start_time_ms: Option<i64>,
    /// The `Ready` condition, if the pod has one.
    #[serde(default)]
    pub ready: Option<ReadyCondition>,
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// Pod-level `spec.resources.requests` (PodLevelResources), milli-units; used for
    /// Resource metrics instead of the container sum when set.
    #[serde(default)]
    pub pod_requests_milli: BTreeMap<String, i64>,
}

impl Pod {
    /// A running pod, ready since `start_time_ms`, with one container and its requests.
    pub fn running(name: &str, start_time_ms: i64, requests_milli: &[(&str, i64)]) -> Pod {
        Pod {
            name: name.to_string(),
            phase: PodPhase::Running,
            deleting: false,
            start_time_ms: Some(start_time_ms),
            ready: Some(ReadyCondition {
                status: ConditionStatus::True,
                last_transition_ms: start_time_ms,
            }),
            containers: vec![Container {
                name: "main".to_string(),
                requests_milli: requests_milli
                    .iter()
                    .map(|(r, v)| ((*r).to_string(), *v))
                    .collect(),
                restart_always: false,
            }],
            init_containers: Vec::new(),
            pod_requests_milli: BTreeMap::new(),
        }
    }

    /// Running with a Ready condition that is True (what `getReadyPodsCount` counts).
    pub fn is_running_and_ready(&self) -> bool {
        self.phase == PodPhase::Running
            && self
                .ready
                .is_some_and(|c| c.status == ConditionStatus::True)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HPA_YAML: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
  namespace: shop
  resourceVersion: "123"
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: web
  minReplicas: 2
  maxReplicas: 10
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 60
  - type: Pods
    pods:
      metric:
        name: http_requests_per_second
      target:
        type: AverageValue
        averageValue: 1k
  - type: External
    external:
      metric:
        name: queue_depth
        selector:
          matchLabels:
            queue: orders
      target:
        type: AverageValue
        averageValue: "30"
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 600
      policies:
      - type: Percent
        value: 10
        periodSeconds: 60
      tolerance: "0.05"
status:
  currentReplicas: 3
  desiredReplicas: 3
"#;

    #[test]
    fn pasted_hpa_yaml_reads_and_validates() {
        let hpa: HorizontalPodAutoscaler = serde_yaml::from_str(HPA_YAML).unwrap();
        assert_eq!(hpa.metadata.name, "web");
        assert_eq!(hpa.spec.min_replicas_or_default(), 2);
        assert_eq!(hpa.spec.metrics.len(), 3);
        let Ok(MetricSource::Pods(pods)) = hpa.spec.metrics[1].source() else {
            panic!("second metric is a Pods metric");
        };
        assert_eq!(pods.target.average_value.unwrap().milli_value(), 1_000_000);
        let down = hpa
            .spec
            .behavior
            .as_ref()
            .unwrap()
            .scale_down
            .as_ref()
            .unwrap();
        assert_eq!(down.tolerance.unwrap().as_approximate_f64(), 0.05);
        assert!(hpa.spec.behavior.as_ref().unwrap().scale_up.is_none());
        hpa.spec.validate().unwrap();
        // It writes back in the same shape.
        let json = serde_json::to_value(&hpa.spec).unwrap();
        assert_eq!(
            json["metrics"][2]["external"]["target"]["averageValue"],
            "30"
        );
        assert_eq!(json["behavior"]["scaleDown"]["tolerance"], "50m");
    }

    #[test]
    fn typos_in_the_spec_are_errors() {
        let err =
            serde_yaml::from_str::<HorizontalPodAutoscalerSpec>("maxReplicas: 3\nminReplica: 1\n")
                .unwrap_err();
        assert!(err.to_string().contains("minReplica"), "{err}");
    }

    #[test]
    fn validation_rejects_what_the_api_server_rejects() {
        let spec = |yaml: &str| serde_yaml::from_str::<HorizontalPodAutoscalerSpec>(yaml).unwrap();
        assert!(spec("maxReplicas: 0").validate().is_err());
        assert!(spec("maxReplicas: 3\nminReplicas: 4").validate().is_err());
        assert!(spec("maxReplicas: 3\nminReplicas: 0").validate().is_err());
        assert!(
            spec("maxReplicas: 3\nmetrics: [{type: Pods}]")
                .validate()
                .is_err()
        );
        assert!(
            spec("maxReplicas: 3\nbehavior: {scaleUp: {policies: [{type: Pods, value: 0, periodSeconds: 15}]}}")
                .validate()
                .is_err()
        );
        spec("maxReplicas: 3").validate().unwrap();
        assert_eq!(spec("maxReplicas: 3").metrics_or_default().len(), 1);
    }

    #[test]
    fn container_policy_falls_back_to_the_wildcard() {
        let policy: PodResourcePolicy = serde_yaml::from_str(
            "containerPolicies:\n- containerName: '*'\n  maxAllowed: {cpu: 2}\n- containerName: app\n  mode: Off\n",
        )
        .unwrap();
        assert_eq!(
            policy.for_container("app").unwrap().mode,
            Some(ContainerScalingMode::Off)
        );
        assert_eq!(policy.for_container("sidecar").unwrap().container_name, "*");
    }
}
