//! Tests of the Kubernetes manifests (`kubernetes/`), the Dockerfile and the Grafana
//! provisioning files in this folder. Every manifest must parse into its k8s-openapi type
//! with nothing left over, the kustomization must list every manifest, and the names and
//! ports that tie the objects together (APIService -> Service -> container port -> listen
//! flag, Grafana -> Service) must agree. The ConfigMap's Sextant config is checked by the
//! root package (`tests/metrics_api.rs`, the same check as `sextant check config`), since
//! nothing depends on the root package.

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::{Path, PathBuf};

    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
    use serde::Deserialize;
    use serde::de::DeserializeOwned;

    fn here() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn yaml_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        files
    }

    /// Every YAML document of a file.
    fn documents(path: &Path) -> Vec<serde_yaml::Value> {
        let text = std::fs::read_to_string(path).unwrap();
        serde_yaml::Deserializer::from_str(&text)
            .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
            .filter(|doc| !doc.is_null())
            .collect()
    }

    /// Parses `doc` as `T` and checks that serializing it back gives the same
    /// document: a misspelled or misplaced field would be dropped on the way.
    fn strict<T: DeserializeOwned + serde::Serialize>(doc: &serde_yaml::Value, what: &str) -> T {
        let typed: T = serde_yaml::from_value(doc.clone())
            .unwrap_or_else(|e| panic!("{what} does not parse: {e}"));
        let original: serde_json::Value = serde_json::to_value(doc).unwrap();
        let back = serde_json::to_value(&typed).unwrap();
        same(&original, &back, what);
        typed
    }

    /// `back` holds exactly what `original` holds; k8s-openapi may add only the
    /// `apiVersion` and `kind` of embedded objects (PVC templates).
    fn same(original: &serde_json::Value, back: &serde_json::Value, path: &str) {
        use serde_json::Value;
        match (original, back) {
            (Value::Object(a), Value::Object(b)) => {
                for (key, value) in a {
                    let Some(other) = b.get(key) else {
                        panic!("{path}.{key}: not a field of its type");
                    };
                    same(value, other, &format!("{path}.{key}"));
                }
                for key in b.keys() {
                    assert!(
                        a.contains_key(key) || key == "apiVersion" || key == "kind",
                        "{path}.{key}: added by its type"
                    );
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                assert_eq!(a.len(), b.len(), "{path}: length changed");
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    same(x, y, &format!("{path}[{i}]"));
                }
            }
            (a, b) => assert_eq!(a, b, "{path}: changed by its type"),
        }
    }

    /// Every object of the base and the examples, typed.
    #[derive(Default)]
    struct Objects {
        namespaces: Vec<Namespace>,
        service_accounts: Vec<ServiceAccount>,
        cluster_roles: Vec<ClusterRole>,
        cluster_role_bindings: Vec<ClusterRoleBinding>,
        role_bindings: Vec<RoleBinding>,
        config_maps: Vec<ConfigMap>,
        stateful_sets: Vec<StatefulSet>,
        services: Vec<Service>,
        api_services: Vec<APIService>,
        hpas: Vec<HorizontalPodAutoscaler>,
    }

    fn objects() -> Objects {
        let mut objects = Objects::default();
        let dir = here().join("kubernetes");
        let mut files = yaml_files(&dir);
        files.extend(yaml_files(&dir.join("examples")));
        for path in files {
            if path.ends_with("kustomization.yaml") {
                continue;
            }
            for (i, doc) in documents(&path).iter().enumerate() {
                let what = format!("{} document {i}", path.display());
                let api_version = doc["apiVersion"].as_str().unwrap_or_default();
                let kind = doc["kind"].as_str().unwrap_or_default();
                match (api_version, kind) {
                    ("v1", "Namespace") => objects.namespaces.push(strict(doc, &what)),
                    ("v1", "ServiceAccount") => objects.service_accounts.push(strict(doc, &what)),
                    ("v1", "ConfigMap") => objects.config_maps.push(strict(doc, &what)),
                    ("v1", "Service") => objects.services.push(strict(doc, &what)),
                    ("apps/v1", "StatefulSet") => objects.stateful_sets.push(strict(doc, &what)),
                    ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                        objects.cluster_roles.push(strict(doc, &what));
                    }
                    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                        objects.cluster_role_bindings.push(strict(doc, &what));
                    }
                    ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                        objects.role_bindings.push(strict(doc, &what));
                    }
                    ("apiregistration.k8s.io/v1", "APIService") => {
                        objects.api_services.push(strict(doc, &what));
                    }
                    ("autoscaling/v2", "HorizontalPodAutoscaler") => {
                        objects.hpas.push(strict(doc, &what));
                    }
                    other => panic!("{what}: unexpected object {other:?}"),
                }
            }
        }
        objects
    }

    #[test]
    fn every_manifest_parses_into_its_type() {
        let o = objects();
        assert_eq!(o.namespaces.len(), 1);
        assert_eq!(o.service_accounts.len(), 1);
        assert_eq!(o.config_maps.len(), 1);
        assert_eq!(o.stateful_sets.len(), 1);
        assert_eq!(o.services.len(), 1);
        assert_eq!(o.api_services.len(), 3);
        assert_eq!(o.hpas.len(), 1);
        assert_eq!(o.cluster_roles.len(), 2);
        assert_eq!(o.cluster_role_bindings.len(), 3);
        assert_eq!(o.role_bindings.len(), 1);
    }

    #[test]
    fn kustomization_lists_every_base_manifest() {
        let dir = here().join("kubernetes");
        let kustomization = &documents(&dir.join("kustomization.yaml"))[0];
        let mut listed: Vec<String> = kustomization["resources"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        listed.sort();
        let mut files: Vec<String> = yaml_files(&dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .filter(|name| name != "kustomization.yaml")
            .collect();
        files.sort();
        assert_eq!(listed, files);
    }

    /// kubectl's built-in kustomize as the real client: the base builds, and
    /// every object it emits keeps the namespace its manifest gives.
    #[test]
    fn kubectl_kustomize_builds_the_base() {
        let out = match std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(here().join("kubernetes"))
            .output()
        {
            Ok(out) => out,
            Err(_) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "kubectl is required under CI=true"
                );
                eprintln!("kubectl not found: skipping kubectl kustomize");
                return;
            }
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde_yaml::Value::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 14, "{text}");
        let auth_reader = docs
            .iter()
            .find(|d| d["metadata"]["name"] == "sextant-auth-reader")
            .unwrap();
        assert_eq!(auth_reader["metadata"]["namespace"], "kube-system");
        let sts = docs.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
        assert_eq!(
            sts["spec"]["template"]["spec"]["containers"][0]["image"],
            "sextant:latest"
        );
        for doc in &docs {
            assert_eq!(
                doc["metadata"]["labels"]["app.kubernetes.io/part-of"], "sextant",
                "{doc:?}"
            );
        }
    }

    /// The metrics APIs delegate to the cluster as an aggregated API server
    /// does: the config reads the published front-proxy CA and asks for
    /// SubjectAccessReviews, and Sextant's account may do both.
    #[test]
    fn the_metrics_apis_delegate_authentication_and_authorization() {
        let o = objects();
        let config = o.config_maps[0].data.as_ref().unwrap()["sextant.yml"].clone();
        let config: serde_yaml::Value = serde_yaml::from_str(&config).unwrap();
        let metrics_api = &config["metrics_api"];
        assert_eq!(metrics_api["authentication"]["from_cluster"], true);
        assert!(metrics_api["authorization"].is_mapping());

        let account = &o.service_accounts[0];
        let is_account = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
            subjects.iter().flatten().any(|s| {
                s.kind == "ServiceAccount"
                    && Some(&s.name) == account.metadata.name.as_ref()
                    && s.namespace == account.metadata.namespace
            })
        };
        // SubjectAccessReview (and TokenReview) creation.
        assert!(o.cluster_role_bindings.iter().any(|b| {
            b.role_ref.kind == "ClusterRole"
                && b.role_ref.name == "system:auth-delegator"
                && is_account(&b.subjects)
        }));
        // Reading kube-system/extension-apiserver-authentication.
        assert!(o.role_bindings.iter().any(|b| {
            b.metadata.namespace.as_deref() == Some("kube-system")
                && b.role_ref.kind == "Role"
                && b.role_ref.name == "extension-apiserver-authentication-reader"
                && is_account(&b.subjects)
        }));
        // The HPA controller may read both groups.
        let reader = o
            .cluster_roles
            .iter()
            .find(|r| {
                r.rules.iter().flatten().any(|rule| {
                    rule.api_groups
                        .iter()
                        .flatten()
                        .any(|g| g == "custom.metrics.k8s.io")
                })
            })
            .expect("a role reading the metrics APIs");
        let rule = &reader.rules.as_ref().unwrap()[0];
        assert_eq!(
            rule.api_groups.as_deref().unwrap(),
            ["custom.metrics.k8s.io", "external.metrics.k8s.io"]
        );
        for verb in ["get", "list"] {
            assert!(rule.verbs.iter().any(|v| v == verb), "{verb}");
        }
        assert!(o.cluster_role_bindings.iter().any(|b| {
            b.role_ref.name == reader.metadata.name.clone().unwrap()
                && b.subjects.iter().flatten().any(|s| {
                    s.name == "horizontal-pod-autoscaler"
                        && s.namespace.as_deref() == Some("kube-system")
                })
        }));
    }

    fn port_of(address: &str) -> i32 {
        address.rsplit(':').next().unwrap().parse().unwrap()
    }

    #[test]
    fn api_services_point_at_the_service_and_the_listener() {
        let o = objects();
        let service = &o.services[0];
        let namespace = service.metadata.namespace.as_deref().unwrap();
        let sts = &o.stateful_sets[0];
        let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let container = &pod.containers[0];
        let args = container.args.as_ref().unwrap();
        let listen = args
            .iter()
            .find_map(|a| a.strip_prefix("--metrics-api.listen-address="))
            .expect("the StatefulSet serves the metrics APIs");

        let mut versions = Vec::new();
        for api in &o.api_services {
            let spec = api.spec.as_ref().unwrap();
            let group = spec.group.as_deref().unwrap();
            let version = spec.version.as_deref().unwrap();
            assert_eq!(
                api.metadata.name.as_deref(),
                Some(format!("{version}.{group}").as_str())
            );
            versions.push((
                group.to_string(),
                version.to_string(),
                spec.version_priority,
            ));
            let target = spec.service.as_ref().unwrap();
            assert_eq!(target.name.as_deref(), service.metadata.name.as_deref());
            assert_eq!(target.namespace.as_deref(), Some(namespace));
            let port = service
                .spec
                .as_ref()
                .unwrap()
                .ports
                .as_ref()
                .unwrap()
                .iter()
                .find(|p| Some(p.port) == target.port)
                .expect("the APIService port is a Service port");
            let IntOrString::String(target_port) = port.target_port.clone().unwrap() else {
                panic!("named target port expected");
            };
            let container_port = container
                .ports
                .as_ref()
                .unwrap()
                .iter()
                .find(|p| p.name.as_deref() == Some(target_port.as_str()))
                .expect("the Service's target port is a container port");
            assert_eq!(container_port.container_port, port_of(listen));
            assert_eq!(spec.insecure_skip_tls_verify, Some(true));
        }
        versions.sort();
        assert_eq!(
            versions,
            [
                ("custom.metrics.k8s.io".into(), "v1beta1".into(), 100),
                ("custom.metrics.k8s.io".into(), "v1beta2".into(), 200),
                ("external.metrics.k8s.io".into(), "v1beta1".into(), 100),
            ]
        );
    }

    #[test]
    fn the_stateful_set_is_wired_to_its_config_storage_and_account() {
        let o = objects();
        let sts = &o.stateful_sets[0];
        let spec = sts.spec.as_ref().unwrap();
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(
            pod.service_account_name.as_deref(),
            o.service_accounts[0].metadata.name.as_deref()
        );
        let security = pod.security_context.as_ref().unwrap();
        assert_eq!(security.run_as_non_root, Some(true));
        assert_ne!(security.run_as_user, Some(0));
        let container = &pod.containers[0];
        let mounts = container.volume_mounts.as_ref().unwrap();
        let claims = spec.volume_claim_templates.as_ref().unwrap();
        let data = claims[0].metadata.name.as_deref().unwrap();
        let data_mount = mounts.iter().find(|m| m.name == data).unwrap();
        let args = container.args.as_ref().unwrap();
        assert!(args.contains(&format!("--storage.path={}", data_mount.mount_path)));
        let config_volume = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.config_map.is_some())
            .unwrap();
        let config_map = config_volume.config_map.as_ref().unwrap();
        assert_eq!(
            Some(config_map.name.as_str()),
            o.config_maps[0].metadata.name.as_deref()
        );
        let config_mount = mounts
            .iter()
            .find(|m| m.name == config_volume.name)
            .unwrap();
        let key = o.config_maps[0]
            .data
            .as_ref()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        assert!(args.contains(&format!("--config={}/{key}", config_mount.mount_path)));
        // The selector matches the pod template and the Service.
        let labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        for (k, v) in spec.selector.match_labels.as_ref().unwrap() {
            assert_eq!(labels.get(k), Some(v));
        }
        for (k, v) in o.services[0]
            .spec
            .as_ref()
            .unwrap()
            .selector
            .as_ref()
            .unwrap()
        {
            assert_eq!(labels.get(k), Some(v));
        }
    }

    #[test]
    fn the_example_hpa_uses_a_metric_the_config_serves() {
        let o = objects();
        let hpa = &o.hpas[0];
        let metric = &hpa.spec.as_ref().unwrap().metrics.as_ref().unwrap()[0];
        let name = &metric.pods.as_ref().unwrap().metric.name;
        let config = o.config_maps[0].data.as_ref().unwrap()["sextant.yml"].clone();
        // The rule that makes it: http_requests_total renamed to *_per_second.
        assert_eq!(name, "http_requests_per_second");
        assert!(config.contains("http_requests_total{namespace!=\"\",pod!=\"\"}"));
        assert!(config.contains("as: ${1}_per_second"));
    }

    #[test]
    fn grafana_reads_the_service() {
        let o = objects();
        let service = &o.services[0];
        let http = service
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .find(|p| p.name.as_deref() == Some("http"))
            .unwrap();
        let datasources = &documents(&here().join("grafana/datasources.yaml"))[0];
        let url = datasources["datasources"][0]["url"].as_str().unwrap();
        assert_eq!(
            url,
            format!(
                "http://{}.{}.svc:{}",
                service.metadata.name.as_deref().unwrap(),
                service.metadata.namespace.as_deref().unwrap(),
                http.port
            )
        );
        assert_eq!(datasources["datasources"][0]["type"], "prometheus");
    }

    #[test]
    fn the_image_runs_as_non_root_on_the_served_ports() {
        let dockerfile = std::fs::read_to_string(here().join("Dockerfile")).unwrap();
        let stages: Vec<&str> = dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .collect();
        assert!(stages.len() >= 2, "multi-stage: {stages:?}");
        assert!(stages.last().unwrap().contains("distroless"));
        let final_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
        assert!(final_stage.contains("\nUSER 65532:65532"));
        assert!(final_stage.contains("EXPOSE 9090 6443"));
        let o = objects();
        let pod = o.stateful_sets[0]
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .clone()
            .unwrap();
        let ports: Vec<i32> = pod.containers[0]
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(ports, [9090, 6443]);
        assert_eq!(
            pod.security_context.unwrap().run_as_user,
            Some(65532),
            "the image's user"
        );
    }
}
