#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Prometheus's own example configuration files load unchanged, and
//! `sextant check config` reports valid and invalid files as promtool does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use scraper::config::{KubernetesRole, Scheme};
use serde::Deserialize;
use sextant::config::Config;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(name)
}

#[test]
fn prometheus_getting_started_config_loads() {
    let config = Config::load_file(&fixture("prometheus.yml")).unwrap();
    assert_eq!(config.global.scrape_interval(), Duration::from_secs(15));
    assert_eq!(config.global.evaluation_interval(), Duration::from_secs(15));
    assert_eq!(config.global.scrape_timeout(), Duration::from_secs(10));
    assert!(config.rule_files.is_empty());
    assert_eq!(config.alerting.alertmanagers.len(), 1);
    assert!(
        config.alerting.alertmanagers[0].static_configs[0]
            .targets
            .is_empty()
    );
    let job = &config.scrape_configs[0];
    assert_eq!(job.job_name, "prometheus");
    assert_eq!(job.interval(), Duration::from_secs(15));
    assert_eq!(job.metrics_path, "/metrics");
    assert_eq!(job.static_configs[0].targets, vec!["localhost:9090"]);
    assert_eq!(job.static_configs[0].labels["label_name"], "label value");
    assert!(config.warnings().is_empty());
}

#[test]
fn prometheus_kubernetes_example_loads() {
    let config = Config::load_file(&fixture("prometheus-kubernetes.yml")).unwrap();
    let jobs: Vec<&str> = config
        .scrape_configs
        .iter()
        .map(|s| s.job_name.as_str())
        .collect();
    assert_eq!(
        jobs,
        [
            "kubernetes-apiservers",
            "kubernetes-nodes",
            "kubernetes-cadvisor",
            "kubernetes-service-endpoints",
            "kubernetes-services",
            "kubernetes-ingresses",
            "kubernetes-pods",
        ]
    );
    let apiservers = &config.scrape_configs[0];
    assert_eq!(apiservers.scheme, Scheme::Https);
    assert_eq!(
        apiservers.tls_config.ca_file.as_deref(),
        Some("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
    );
    assert_eq!(
        apiservers.kubernetes_sd_configs[0].role,
        KubernetesRole::Endpoints
    );
    let services = &config.scrape_configs[4];
    assert_eq!(services.params["module"], vec!["http_2xx"]);
    assert_eq!(services.relabel_configs.len(), 6);
    // Default defaults: no global section.
    assert_eq!(services.interval(), Duration::from_secs(60));
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[0].contains("role endpoints is not supported"));
}

#[test]
fn full_config_with_every_section_loads() {
    let config = Config::load_file(&fixture("sextant-full.yml")).unwrap();
    let dir = fixture("");
    let node = &config.scrape_configs[0];
    assert_eq!(node.interval(), Duration::from_secs(15));
    assert_eq!(node.timeout(), Duration::from_secs(5));
    assert_eq!(node.sample_limit, 50_000);
    assert_eq!(node.label_limit, 64);
    assert_eq!(node.body_size_limit.bytes(), 50 << 20);
    assert_eq!(node.relabel_configs.len(), 11);
    assert_eq!(
        node.file_sd_configs[0].files[0],
        dir.join("targets/*.json").display().to_string()
    );
    assert_eq!(
        node.basic_auth.as_ref().unwrap().password_file.as_deref(),
        Some(dir.join("secrets/node-password").to_str().unwrap())
    );
    assert_eq!(config.scrape_configs[2].kubernetes_sd_configs.len(), 2);
    assert_eq!(config.remote_write[0].queue_config.max_shards, Some(8));
    assert_eq!(
        config
            .storage
            .tsdb
            .as_ref()
            .unwrap()
            .retention
            .as_ref()
            .unwrap()
            .time,
        Some(Duration::from_secs(15 * 86400))
    );
    // An unset environment variable expands to the empty string.
    assert_eq!(config.global.external_labels["replica"], "");
    assert_eq!(config.all_scrape_configs().unwrap().len(), 3);
}

fn sextant(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn check_config_accepts_the_examples_and_reports_errors_with_positions() {
    let good = fixture("prometheus.yml");
    let (ok, out) = sextant(&["check", "config", good.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "scrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n",
    )
    .unwrap();
    let (ok, out) = sextant(&[
        "check",
        "config",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    let expected = format!(
        "{}:3:5: scrape_configs[0]: unknown field `scrape_intervall`",
        bad.display()
    );
    assert!(out.contains(&expected), "{out}");
    assert!(
        out.contains("1 of 2 config files failed the check"),
        "{out}"
    );
}

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/examples")
        .join(path)
}

/// The sharded agents' config: every replica's rendering loads, an agent
/// accepts it, and the hashmod relabeling gives each target to exactly one
/// replica.
#[test]
fn sharded_agent_example_gives_every_target_to_one_replica() {
    let template = std::fs::read_to_string(example("agent-sharded/agent.yml")).unwrap();
    let replicas = 3;
    let configs: Vec<Config> = (0..replicas)
        .map(|shard| {
            let text = template.replace("SHARD_INDEX", &shard.to_string());
            let config = Config::from_yaml(&text, "agent.yml").unwrap();
            sextant::server::agent::check_agent_config(&config).unwrap();
            assert_eq!(config.remote_write.len(), 1);
            config
        })
        .collect();
    for job in ["node", "pods"] {
        let mut per_replica = vec![0; replicas];
        for i in 0..300 {
            let target = tsdb::model::Labels::from_pairs(&[
                (
                    "__address__",
                    format!("10.0.{}.{}:10250", i / 250, i % 250).as_str(),
                ),
                (
                    "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
                    "true",
                ),
                (
                    "__meta_kubernetes_pod_annotation_prometheus_io_port",
                    "8080",
                ),
            ]);
            let kept: Vec<usize> = configs
                .iter()
                .enumerate()
                .filter(|(_, config)| {
                    let scrape = config
                        .scrape_configs
                        .iter()
                        .find(|s| s.job_name == job)
                        .unwrap();
                    scraper::relabel::process(&target, &scrape.relabel_configs).is_some()
                })
                .map(|(shard, _)| shard)
                .collect();
            assert_eq!(kept.len(), 1, "{job} target {i} kept by {kept:?}");
            per_replica[kept[0]] += 1;
        }
        assert!(
            per_replica.iter().all(|n| *n > 50),
            "{job}: {per_replica:?}"
        );
    }
}

#[test]
fn recommend_from_victoria_metrics_example_loads() {
    let config = Config::load_file(&example("recommend-from-victoriametrics.yml")).unwrap();
    assert_eq!(config.remote_read.len(), 1);
    assert!(config.remote_read[0].read_recent);
    assert!(config.scrape_configs.is_empty());
    assert_eq!(config.autoscaler.workloads.len(), 1);
}

/// `kubectl kustomize` renders the sharded agents; every object parses into
/// its Kubernetes type, the ConfigMap carries `agent.yml` unchanged, and the
/// StatefulSet runs as many replicas as the config's hashmod modulus.
#[test]
fn sharded_agent_manifests_render_with_kubectl() {
    const KUBECTL: &str = "/usr/bin/kubectl";
    if !Path::new(KUBECTL).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "required peer missing under CI: {KUBECTL}"
        );
        eprintln!("skipping: {KUBECTL} not installed");
        return;
    }
    let output = Command::new(KUBECTL)
        .arg("kustomize")
        .arg(example("agent-sharded"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let rendered = String::from_utf8(output.stdout).unwrap();
    let mut kinds = Vec::new();
    let template = std::fs::read_to_string(example("agent-sharded/agent.yml")).unwrap();
    for document in serde_yaml::Deserializer::from_str(&rendered) {
        let value = serde_yaml::Value::deserialize(document).unwrap();
        let kind = value["kind"].as_str().unwrap().to_string();
        match kind.as_str() {
            "ConfigMap" => {
                let map: k8s_openapi::api::core::v1::ConfigMap =
                    serde_yaml::from_value(value).unwrap();
                assert_eq!(map.data.unwrap()["agent.yml"], template);
            }
            "StatefulSet" => {
                let set: k8s_openapi::api::apps::v1::StatefulSet =
                    serde_yaml::from_value(value).unwrap();
                let spec = set.spec.unwrap();
                assert_eq!(spec.replicas, Some(3));
                assert!(template.matches("modulus: 3").count() == 2);
                let pod = spec.template.spec.unwrap();
                assert_eq!(pod.service_account_name.as_deref(), Some("sextant-agent"));
                let args = pod.containers[0].args.clone().unwrap();
                assert!(args.contains(&"--agent".to_string()), "{args:?}");
            }
            "ServiceAccount" => {
                let _: k8s_openapi::api::core::v1::ServiceAccount =
                    serde_yaml::from_value(value).unwrap();
            }
            "ClusterRole" => {
                let _: k8s_openapi::api::rbac::v1::ClusterRole =
                    serde_yaml::from_value(value).unwrap();
            }
            "ClusterRoleBinding" => {
                let _: k8s_openapi::api::rbac::v1::ClusterRoleBinding =
                    serde_yaml::from_value(value).unwrap();
            }
            other => panic!("unexpected kind {other}"),
        }
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ServiceAccount",
            "StatefulSet"
        ]
    );
}
