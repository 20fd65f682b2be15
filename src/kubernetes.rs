//! Workloads from the Kubernetes API, for the recommender (`autoscaler.kubernetes`):
//! the Deployments, StatefulSets, DaemonSets and ReplicaSets annotated
//! `sextant.io/recommend: "true"`, each with the spec of the `autoscaling/v2`
//! HorizontalPodAutoscaler that targets it (evaluated as-is) and the
//! `resourcePolicy` of its `autoscaling.k8s.io/v1` VerticalPodAutoscaler.
//!
//! With it, the pods' container requests are also read from their specs
//! ([`WorkloadDiscovery::pod_requests`]) and preferred over kube-state-metrics.
//!
//! Read-only and listed once per refresh (no watch: a refresh is minutes apart).
//! A cluster without the VPA CRD has no VPAs; any other API error fails the
//! discovery, and the caller keeps the workloads it found last.

use std::collections::BTreeMap;

use autoscaler::controller::{PodRequests, WorkloadKind};
use autoscaler::model::{HorizontalPodAutoscalerSpec, PodResourcePolicy};
use autoscaler::quantity::Quantity;
use autoscaler::recommender::{VpaSettings, WorkloadSpec};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::config::KubernetesApiConfig;

/// The annotation that opts a workload in.
pub const RECOMMEND_ANNOTATION: &str = "sextant.io/recommend";

/// What discovery read from the cluster.
#[derive(Debug, Default)]
pub struct ClusterObjects {
    /// Every workload of the four kinds with its metadata.
    pub workloads: Vec<(WorkloadKind, ObjectMeta)>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
    /// VerticalPodAutoscalers as JSON objects (a CRD: no typed model).
    pub vpas: Vec<serde_json::Value>,
}

/// Reads workloads, HPAs and VPAs through one client.
pub struct WorkloadDiscovery {
    client: Client,
    namespaces: Vec<String>,
}

impl WorkloadDiscovery {
    /// Connects as the config says.
    ///
    /// # Errors
    /// No usable credentials (unreadable kubeconfig, not in a cluster).
    pub async fn new(config: &KubernetesApiConfig) -> anyhow::Result<Self> {
        let client = scraper::discovery::kubernetes::client_for(
            config.api_server.as_deref(),
            config.kubeconfig_file.as_deref(),
            &config.http_client_config(),
        )
        .await?;
        Ok(WorkloadDiscovery {
            client,
            namespaces: config.namespaces.clone(),
        })
    }

    /// The opted-in workloads as recommender specs, and a warning for each
    /// object that could not be used.
    ///
    /// # Errors
    /// The API server cannot be reached or refuses a list.
    pub async fn workloads(&self) -> Result<(Vec<WorkloadSpec>, Vec<String>), kube::Error> {
        let objects = self.list().await?;
        Ok(workload_specs(&objects))
    }

    /// The containers' requests of every pod (in the configured namespaces), from
    /// the pod specs: what the recommender prefers over kube-state-metrics'
    /// `kube_pod_container_resource_requests`.
    ///
    /// # Errors
    /// The API server cannot be reached or refuses the list.
    pub async fn pod_requests(&self) -> Result<PodRequests, kube::Error> {
        Ok(pod_requests(&self.items::<Pod>().await?))
    }

    async fn list(&self) -> Result<ClusterObjects, kube::Error> {
        let mut objects = ClusterObjects::default();
        for (kind, metas) in [
            (WorkloadKind::Deployment, self.metas::<Deployment>().await?),
            (
                WorkloadKind::StatefulSet,
                self.metas::<StatefulSet>().await?,
            ),
            (WorkloadKind::DaemonSet, self.metas::<DaemonSet>().await?),
            (WorkloadKind::ReplicaSet, self.metas::<ReplicaSet>().await?),
        ] {
            objects
                .workloads
                .extend(metas.into_iter().map(|meta| (kind, meta)));
        }
        objects.hpas = self.items::<HorizontalPodAutoscaler>().await?;
        objects.vpas = self.vpas().await?;
        Ok(objects)
    }

    fn apis<K>(&self) -> Vec<Api<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        if self.namespaces.is_empty() {
            vec![Api::all(self.client.clone())]
        } else {
            self.namespaces
                .iter()
                .map(|ns| Api::namespaced(self.client.clone(), ns))
                .collect()
        }
    }

    async fn items<K>(&self) -> Result<Vec<K>, kube::Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        let mut out = Vec::new();
        for api in self.apis::<K>() {
            out.extend(api.list(&ListParams::default()).await?.items);
        }
        Ok(out)
    }

    async fn metas<K>(&self) -> Result<Vec<ObjectMeta>, kube::Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        let items = self.items::<K>().await?;
        Ok(items.into_iter().map(|k| k.meta().clone()).collect())
    }

    async fn vpas(&self) -> Result<Vec<serde_json::Value>, kube::Error> {
        let resource = ApiResource {
            group: "autoscaling.k8s.io".into(),
            version: "v1".into(),
            api_version: "autoscaling.k8s.io/v1".into(),
            kind: "VerticalPodAutoscaler".into(),
            plural: "verticalpodautoscalers".into(),
        };
        let apis: Vec<Api<DynamicObject>> = if self.namespaces.is_empty() {
            vec![Api::all_with(self.client.clone(), &resource)]
        } else {
            self.namespaces
                .iter()
                .map(|ns| Api::namespaced_with(self.client.clone(), ns, &resource))
                .collect()
        };
        let mut out = Vec::new();
        for api in apis {
            match api.list(&ListParams::default()).await {
                Ok(list) => {
                    for object in list.items {
                        if let Ok(value) = serde_json::to_value(&object) {
                            out.push(value);
                        }
                    }
                }
                // No VPA CRD in this cluster: no VPAs.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        Ok(out)
    }
}

fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
        WorkloadKind::DaemonSet => "DaemonSet",
        WorkloadKind::ReplicaSet => "ReplicaSet",
    }
}

/// The recommender specs of the opted-in workloads (sorted by namespace,
/// kind, name), with their HPA and VPA settings; a warning per object that
/// could not be converted.
pub fn workload_specs(objects: &ClusterObjects) -> (Vec<WorkloadSpec>, Vec<String>) {
    let mut warnings = Vec::new();
    // (namespace, kind, name) -> the HPA spec targeting it.
    let mut hpas: BTreeMap<(String, String, String), HorizontalPodAutoscalerSpec> = BTreeMap::new();
    for hpa in &objects.hpas {
        let (Some(namespace), Some(spec)) = (hpa.metadata.namespace.clone(), &hpa.spec) else {
            continue;
        };
        let name = hpa.metadata.name.clone().unwrap_or_default();
        let target = &spec.scale_target_ref;
        let converted = serde_json::to_value(spec)
            .and_then(serde_json::from_value::<HorizontalPodAutoscalerSpec>);
        match converted {
            Ok(converted) => {
                hpas.insert(
                    (namespace, target.kind.clone(), target.name.clone()),
                    converted,
                );
            }
            Err(error) => warnings.push(format!("HorizontalPodAutoscaler {name}: {error}")),
        }
    }
    let mut vpas: BTreeMap<(String, String, String), Option<PodResourcePolicy>> = BTreeMap::new();
    for vpa in &objects.vpas {
        let namespace = vpa["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = vpa["metadata"]["name"].as_str().unwrap_or_default();
        let target = &vpa["spec"]["targetRef"];
        let (Some(kind), Some(target_name)) = (target["kind"].as_str(), target["name"].as_str())
        else {
            continue;
        };
        let policy = match vpa["spec"].get("resourcePolicy") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(policy) => serde_json::from_value::<PodResourcePolicy>(policy.clone()).map(Some),
        };
        match policy {
            Ok(policy) => {
                vpas.insert((namespace.into(), kind.into(), target_name.into()), policy);
            }
            Err(error) => warnings.push(format!("VerticalPodAutoscaler {name}: {error}")),
        }
    }

    let mut specs = Vec::new();
    for (kind, meta) in &objects.workloads {
        let opted_in = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(RECOMMEND_ANNOTATION))
            .is_some_and(|v| v == "true");
        let (Some(namespace), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
            continue;
        };
        if !opted_in {
            continue;
        }
        let key = (
            namespace.clone(),
            kind_name(*kind).to_string(),
            name.clone(),
        );
        let spec = WorkloadSpec {
            namespace,
            kind: *kind,
            name,
            hpa: hpas.get(&key).cloned(),
            metric_queries: BTreeMap::new(),
            vpa: VpaSettings {
                resource_policy: vpas.get(&key).cloned().flatten(),
                ..VpaSettings::default()
            },
        };
        match spec.validate() {
            Ok(()) => specs.push(spec),
            Err(error) => warnings.push(format!("{}: {error}", spec.workload())),
        }
    }
    specs.sort_by(|a, b| {
        (&a.namespace, kind_name(a.kind), &a.name).cmp(&(&b.namespace, kind_name(b.kind), &b.name))
    });
    (specs, warnings)
}

/// The requests of the pods' containers (cores for cpu, bytes otherwise), as
/// kube-state-metrics would report them; finished pods (Succeeded, Failed) are
/// left out, as they hold no resources. An unparsable quantity is skipped.
pub fn pod_requests(pods: &[Pod]) -> PodRequests {
    let mut out = PodRequests::default();
    for pod in pods {
        let (Some(namespace), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            continue;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let containers = out.add_pod(namespace, name);
        let Some(spec) = &pod.spec else {
            continue;
        };
        for container in &spec.containers {
            let amounts = containers.entry(container.name.clone()).or_default();
            let requests = container
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref());
            for (resource, quantity) in requests.into_iter().flatten() {
                if let Ok(q) = Quantity::parse(&quantity.0) {
                    // As kube-state-metrics converts: cores from milli-units, else units.
                    let amount = if resource == autoscaler::model::CPU {
                        q.milli_value() as f64 / 1000.0
                    } else {
                        q.value() as f64
                    };
                    amounts.insert(resource.clone(), amount);
                }
            }
        }
    }
    out
}

/// The configured workloads, then the discovered ones the configuration does
/// not name (the configuration wins).
pub fn merge_workloads(
    configured: &[WorkloadSpec],
    discovered: &[WorkloadSpec],
) -> Vec<WorkloadSpec> {
    let mut out = configured.to_vec();
    for spec in discovered {
        if !configured.iter().any(|c| c.workload() == spec.workload()) {
            out.push(spec.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(namespace: &str, name: &str, opted_in: bool) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            annotations: opted_in
                .then(|| BTreeMap::from([(RECOMMEND_ANNOTATION.to_string(), "true".to_string())])),
            ..ObjectMeta::default()
        }
    }

    fn hpa(yaml: &str) -> HorizontalPodAutoscaler {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn opted_in_workloads_take_their_hpa_and_vpa_from_the_cluster() {
        let objects = ClusterObjects {
            workloads: vec![
                (WorkloadKind::Deployment, meta("shop", "web", true)),
                (WorkloadKind::StatefulSet, meta("shop", "db", true)),
                (WorkloadKind::Deployment, meta("shop", "batch", false)),
            ],
            hpas: vec![hpa(
                "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n\
                 metadata: {name: web, namespace: shop}\n\
                 spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  \
                 minReplicas: 2\n  maxReplicas: 10\n  metrics:\n  - type: Resource\n    \
                 resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}\n  \
                 behavior:\n    scaleDown: {stabilizationWindowSeconds: 60, policies: [{type: Pods, value: 1, periodSeconds: 30}]}\n",
            )],
            vpas: vec![serde_json::json!({
                "apiVersion": "autoscaling.k8s.io/v1",
                "kind": "VerticalPodAutoscaler",
                "metadata": {"name": "db", "namespace": "shop"},
                "spec": {
                    "targetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"},
                    "resourcePolicy": {"containerPolicies": [
                        {"containerName": "*", "maxAllowed": {"memory": "4Gi"}}
                    ]}
                }
            })],
        };
        let (specs, warnings) = workload_specs(&objects);
        assert!(warnings.is_empty(), "{warnings:?}");
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web", "db"]);
        let web = &specs[0];
        let hpa = web.hpa.as_ref().unwrap();
        assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(2), 10));
        assert!(hpa.behavior.is_some());
        assert!(web.vpa.resource_policy.is_none());
        let db = &specs[1];
        assert!(db.hpa.is_none());
        let policy = db.vpa.resource_policy.as_ref().unwrap();
        assert_eq!(policy.container_policies.len(), 1);
    }

    #[test]
    fn an_unusable_hpa_is_a_warning_and_the_configuration_wins() {
        let mut bad = hpa("metadata: {name: web, namespace: shop}\n\
             spec: {scaleTargetRef: {kind: Deployment, name: web}, maxReplicas: 0}\n");
        bad.spec.as_mut().unwrap().max_replicas = 0;
        let objects = ClusterObjects {
            workloads: vec![(WorkloadKind::Deployment, meta("shop", "web", true))],
            hpas: vec![bad],
            vpas: vec![],
        };
        let (specs, warnings) = workload_specs(&objects);
        assert!(specs.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");

        let configured: WorkloadSpec =
            serde_yaml::from_str("{namespace: shop, kind: Deployment, name: web}").unwrap();
        let discovered = vec![
            configured.clone(),
            serde_yaml::from_str("{namespace: shop, kind: Deployment, name: api}").unwrap(),
        ];
        let merged = merge_workloads(std::slice::from_ref(&configured), &discovered);
        let names: Vec<&str> = merged.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web", "api"]);
    }
}
