#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Prometheus's own example configuration files load unchanged, and
//! `sextant check config` reports valid and invalid files as promtool does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use scraper::config::{KubernetesRole, Scheme};
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
