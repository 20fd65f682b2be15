//! The `autoscaler` section: Sextant's own, beside Prometheus's sections. It lists the
//! workloads to recommend for, each with an optional HPA spec in the Kubernetes
//! `autoscaling/v2` shape and VPA settings in the `autoscaling.k8s.io/v1` shape
//! (`autoscaler::recommender::WorkloadSpec`), and how often to refresh.
//!
//! ```yaml
//! autoscaler:
//!   refresh_interval: 1m
//!   history: 8d
//!   checkpoint_interval: 10m   # VPA models saved to <storage.path>/autoscaler/; 0s: never
//!   workloads:
//!     - namespace: shop
//!       kind: Deployment
//!       name: web
//!       hpa:
//!         minReplicas: 2
//!         maxReplicas: 10
//!         metrics:
//!           - type: Resource
//!             resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}
//!       vpa:
//!         resource_policy:
//!           containerPolicies:
//!             - {containerName: '*', maxAllowed: {cpu: '2', memory: 4Gi}}
//!   # Optional: also recommend for workloads annotated `sextant.io/recommend: "true"`,
//!   # with the cluster's HPA and VPA objects (connection as in kubernetes_sd_configs).
//!   kubernetes:
//!     namespaces: [shop]
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use autoscaler::recommender::WorkloadSpec;
use scraper::config::null_default;
use serde::Deserialize;

fn default_refresh_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_history() -> Duration {
    Duration::from_secs(8 * 24 * 3600)
}

fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(600)
}

/// `autoscaler`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscalerConfig {
    /// How often recommendations are recomputed from new samples (1m).
    #[serde(
        default = "default_refresh_interval",
        with = "scraper::config::duration"
    )]
    pub refresh_interval: Duration,
    /// How much history builds the VPA model at start-up (8d, VPA's memory window).
    #[serde(default = "default_history", with = "scraper::config::duration")]
    pub history: Duration,
    /// How often every workload's VPA model is saved to
    /// `<storage.path>/autoscaler/checkpoints.jsonl` (10m, VPA's default; also at
    /// shutdown), restored at start so that a restart feeds only the minutes since
    /// (`autoscaler/docs/format/checkpoints.md`). `0s`: no checkpoints.
    #[serde(
        default = "default_checkpoint_interval",
        with = "scraper::config::duration"
    )]
    pub checkpoint_interval: Duration,
    #[serde(default, deserialize_with = "null_default")]
    pub workloads: Vec<WorkloadSpec>,
    /// Kubernetes API access: workloads annotated `sextant.io/recommend: "true"`
    /// and the HPAs and VPAs of the cluster (none: metrics only).
    #[serde(default)]
    pub kubernetes: Option<KubernetesApiConfig>,
}

scraper::with_http_client_config! {
    /// `autoscaler.kubernetes`: how to reach the Kubernetes API, as in
    /// `kubernetes_sd_configs` (`api_server`, else `kubeconfig_file`, else the
    /// in-cluster service account), and which namespaces to read.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct KubernetesApiConfig {
        #[serde(default)]
        pub api_server: Option<String>,
        #[serde(default)]
        pub kubeconfig_file: Option<String>,
        /// Namespaces to read (default: all).
        #[serde(default, deserialize_with = "null_default")]
        pub namespaces: Vec<String>,
    }
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        AutoscalerConfig {
            refresh_interval: default_refresh_interval(),
            history: default_history(),
            checkpoint_interval: default_checkpoint_interval(),
            workloads: Vec::new(),
            kubernetes: None,
        }
    }
}

impl AutoscalerConfig {
    /// Checks each workload and that none is listed twice. Errors start with
    /// `:line:column: ` when the workload's line is found in `text`, else `: `.
    pub(super) fn validate(&self, text: &str) -> Result<(), String> {
        if self.refresh_interval.is_zero() {
            return Err(": autoscaler.refresh_interval must be greater than 0".into());
        }
        if self.history < Duration::from_secs(60) {
            return Err(": autoscaler.history must be at least 1m".into());
        }
        if let Some(kubernetes) = &self.kubernetes {
            if let Some(url) = kubernetes.api_server.as_deref() {
                url::Url::parse(url).map_err(|e| {
                    format!(": autoscaler.kubernetes.api_server {url:?} is not a URL: {e}")
                })?;
            }
            kubernetes
                .http_client_config()
                .validate()
                .map_err(|e| format!(": autoscaler.kubernetes: {e}"))?;
        }
        let lines = workload_lines(text);
        let mut seen = BTreeSet::new();
        for (i, workload) in self.workloads.iter().enumerate() {
            let at = match lines.get(i) {
                Some((line, column)) => format!(":{line}:{column}: "),
                None => ": ".to_string(),
            };
            let key = (&workload.namespace, workload.kind as u8, &workload.name);
            if !seen.insert(key) {
                return Err(format!(
                    "{at}autoscaler.workloads[{i}]: {} is listed twice",
                    workload.workload()
                ));
            }
            workload.validate().map_err(|e| {
                format!(
                    "{at}autoscaler.workloads[{i}] ({}): {e}",
                    workload.workload()
                )
            })?;
        }
        Ok(())
    }
}

/// The (line, column) of each item of `autoscaler.workloads` written in block style:
/// the `- ` lines at the indentation of the first item under `workloads:`.
fn workload_lines(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut in_section = false;
    let mut in_workloads: Option<usize> = None;
    let mut item_indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let content = line.split(" #").next().unwrap_or("");
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        if indent == 0 {
            in_section = content.trim_end() == "autoscaler:";
            in_workloads = None;
            continue;
        }
        if !in_section {
            continue;
        }
        let trimmed = content.trim_start();
        if let Some(key_indent) = in_workloads {
            if indent <= key_indent && !trimmed.starts_with("- ") {
                in_workloads = None;
            } else if trimmed.starts_with("- ") || trimmed == "-" {
                let wanted = *item_indent.get_or_insert(indent);
                if indent == wanted {
                    out.push((i + 1, indent + 1));
                }
                continue;
            } else {
                continue;
            }
        }
        if trimmed.trim_end() == "workloads:" {
            in_workloads = Some(indent);
            item_indent = None;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_line_of_each_workload() {
        let text = "global: {}\nautoscaler:\n  refresh_interval: 30s\n  workloads:\n  # web\n  - namespace: a\n    kind: Deployment\n    hpa:\n      metrics:\n        - type: x\n  - namespace: b\nscrape_configs:\n  - job_name: x\n";
        assert_eq!(workload_lines(text), vec![(6, 3), (11, 3)]);
    }

    fn load(yaml: &str) -> Result<crate::config::Config, String> {
        crate::config::Config::from_yaml(yaml, "p.yml").map_err(|e| e.to_string())
    }

    #[test]
    fn section_loads_with_defaults_and_errors_name_line_and_column() {
        assert_eq!(load("").unwrap().autoscaler, AutoscalerConfig::default());
        let config = load(
            "autoscaler:\n  history: 2d\n  workloads:\n    - namespace: shop\n      kind: Deployment\n      name: web\n      hpa: {maxReplicas: 4}\n",
        )
        .unwrap();
        assert_eq!(config.autoscaler.history, Duration::from_secs(2 * 86_400));
        assert_eq!(config.autoscaler.refresh_interval, Duration::from_secs(60));
        assert_eq!(config.autoscaler.workloads[0].name, "web");
        let workload = "    - namespace: shop\n      kind: Deployment\n      name: web\n";
        assert_eq!(
            load(&format!(
                "autoscaler:\n  workloads:\n{workload}      hpa: {{minReplicas: 3, maxReplicas: 2}}\n"
            )),
            Err("p.yml:3:5: autoscaler.workloads[0] (Deployment shop/web): hpa: invalid spec field minReplicas: must be less than or equal to maxReplicas (2)".into())
        );
        assert_eq!(
            load(&format!("autoscaler:\n  workloads:\n{workload}{workload}")),
            Err("p.yml:6:5: autoscaler.workloads[1]: Deployment shop/web is listed twice".into())
        );
        let err = load(
            "autoscaler:\n  workloads:\n    - namespace: shop\n      kind: Pod\n      name: web\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("p.yml:4:13: autoscaler.workloads[0].kind: unknown variant `Pod`"),
            "{err}"
        );
        let err = load("autoscaler:\n  workloads:\n    - namespace: shop\n      kind: Deployment\n      name: web\n      hpa: {maxReplicas: 2, minReplica: 1}\n")
            .unwrap_err();
        assert!(err.starts_with("p.yml:6:"), "{err}");
        assert!(err.contains("unknown field `minReplica`"), "{err}");
        assert_eq!(
            load("autoscaler: {refresh_interval: 0s}"),
            Err("p.yml: autoscaler.refresh_interval must be greater than 0".into())
        );
    }
}
