//! The PromQL the recommender runs, over the series every cluster already exposes:
//! cAdvisor (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`)
//! and kube-state-metrics (`kube_pod_*`, `kube_<kind>_*replicas`). No Kubernetes API
//! access is needed: a workload's pods are found by namespace and pod-name pattern.
//!
//! Every query groups by `pod` and `container`, dropping cAdvisor's pod-level
//! (`container=""`) and pause-container (`container="POD"`) series.

use std::time::Duration;

use super::{WorkloadKind, WorkloadRef};

/// A PromQL string literal: quoted, with `\` and `"` escaped.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A PromQL duration such as `5m` or `90s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `namespace="ns",pod=~"<pods>"`.
pub fn pod_selector(workload: &WorkloadRef) -> String {
    format!(
        "namespace={},pod=~{}",
        quote(&workload.namespace),
        quote(&workload.pod_regex())
    )
}

/// The selector of a workload's containers in cAdvisor series.
fn container_selector(workload: &WorkloadRef) -> String {
    format!(
        r#"{},container!="",container!="POD""#,
        pod_selector(workload)
    )
}

/// `namespace=~"a|b"`: exactly these namespaces.
fn namespaces_selector(namespaces: &[&str]) -> String {
    let alternatives: Vec<String> = namespaces.iter().map(|n| super::regex_escape(n)).collect();
    format!("namespace=~{}", quote(&alternatives.join("|")))
}

/// CPU usage in cores per namespace, pod and container of every workload in
/// `namespaces` (one query for many workloads), as a rate over `window`.
pub fn cpu_usage_in_namespaces(namespaces: &[&str], window: Duration) -> String {
    format!(
        r#"sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{{{},container!="",container!="POD"}}[{}]))"#,
        namespaces_selector(namespaces),
        duration(window)
    )
}

/// Working-set memory in bytes per namespace, pod and container in `namespaces`.
pub fn memory_working_set_in_namespaces(namespaces: &[&str]) -> String {
    format!(
        r#"max by (namespace, pod, container) (container_memory_working_set_bytes{{{},container!="",container!="POD"}})"#,
        namespaces_selector(namespaces),
    )
}

/// CPU usage in cores per pod and container, as a rate over `window`.
pub fn cpu_usage(workload: &WorkloadRef, window: Duration) -> String {
    format!(
        "sum by (pod, container) (rate(container_cpu_usage_seconds_total{{{}}}[{}]))",
        container_selector(workload),
        duration(window)
    )
}

/// Working-set memory in bytes per pod and container.
pub fn memory_working_set(workload: &WorkloadRef) -> String {
    format!(
        "max by (pod, container) (container_memory_working_set_bytes{{{}}})",
        container_selector(workload)
    )
}

/// Requests of `resource` (cores for cpu, bytes for memory) per pod and container.
pub fn requests(workload: &WorkloadRef, resource: &str) -> String {
    format!(
        "max by (pod, container) (kube_pod_container_resource_requests{{{},resource={}}})",
        pod_selector(workload),
        quote(resource)
    )
}

/// Limits of `resource` per pod and container.
pub fn limits(workload: &WorkloadRef, resource: &str) -> String {
    format!(
        "max by (pod, container) (kube_pod_container_resource_limits{{{},resource={}}})",
        pod_selector(workload),
        quote(resource)
    )
}

/// The phase of each pod (one series per pod, with a `phase` label).
pub fn pod_phase(workload: &WorkloadRef) -> String {
    format!(
        "max by (pod, phase) (kube_pod_status_phase{{{}}} == 1)",
        pod_selector(workload)
    )
}

/// 1 when the pod's Ready condition is true.
pub fn pod_ready(workload: &WorkloadRef) -> String {
    format!(
        r#"max by (pod) (kube_pod_status_ready{{{},condition="true"}})"#,
        pod_selector(workload)
    )
}

/// When the pod last became ready (Unix seconds).
pub fn pod_ready_time(workload: &WorkloadRef) -> String {
    format!(
        "max by (pod) (kube_pod_status_ready_time{{{}}})",
        pod_selector(workload)
    )
}

/// When the pod started (Unix seconds).
pub fn pod_start_time(workload: &WorkloadRef) -> String {
    format!(
        "max by (pod) (kube_pod_start_time{{{}}})",
        pod_selector(workload)
    )
}

/// Pods being deleted (Unix seconds of the deletion timestamp).
pub fn pod_deletion(workload: &WorkloadRef) -> String {
    format!(
        "max by (pod) (kube_pod_deletion_timestamp{{{}}})",
        pod_selector(workload)
    )
}

/// Containers whose last termination was an OOM kill, as a count of restarts that
/// ended so (the restart counter, kept only while the last reason is OOMKilled).
pub fn oom_restarts(workload: &WorkloadRef) -> String {
    format!(
        r#"max by (pod, container) (kube_pod_container_status_restarts_total{{{sel}}}) and on (pod, container) (max by (pod, container) (kube_pod_container_status_last_terminated_reason{{{sel},reason="OOMKilled"}}) == 1)"#,
        sel = pod_selector(workload)
    )
}

/// The series of a kind's desired replicas (`scale.spec.replicas`) and its label
/// naming the workload.
fn spec_replicas_metric(kind: WorkloadKind) -> (&'static str, &'static str) {
    match kind {
        WorkloadKind::Deployment => ("kube_deployment_spec_replicas", "deployment"),
        WorkloadKind::StatefulSet => ("kube_statefulset_replicas", "statefulset"),
        WorkloadKind::ReplicaSet => ("kube_replicaset_spec_replicas", "replicaset"),
        WorkloadKind::DaemonSet => (
            "kube_daemonset_status_desired_number_scheduled",
            "daemonset",
        ),
    }
}

/// The workload's desired replicas (`scale.spec.replicas`).
pub fn spec_replicas(workload: &WorkloadRef) -> String {
    let (metric, label) = spec_replicas_metric(workload.kind);
    format!(
        "max({metric}{{namespace={},{label}={}}})",
        quote(&workload.namespace),
        quote(&workload.name)
    )
}

/// The desired replicas of every workload of `kind` in `namespaces`, per namespace
/// and workload name (the label the second element names).
pub fn spec_replicas_in_namespaces(
    kind: WorkloadKind,
    namespaces: &[&str],
) -> (String, &'static str) {
    let (metric, label) = spec_replicas_metric(kind);
    let query = format!(
        "max by (namespace, {label}) ({metric}{{{}}})",
        namespaces_selector(namespaces)
    );
    (query, label)
}

/// Requests of `resource` per namespace, pod and container in `namespaces`.
pub fn requests_in_namespaces(namespaces: &[&str], resource: &str) -> String {
    format!(
        "max by (namespace, pod, container) (kube_pod_container_resource_requests{{{},resource={}}})",
        namespaces_selector(namespaces),
        quote(resource)
    )
}

/// The workload's current replicas (`scale.status.replicas`).
pub fn status_replicas(workload: &WorkloadRef) -> String {
    let (metric, label) = match workload.kind {
        WorkloadKind::Deployment => ("kube_deployment_status_replicas", "deployment"),
        WorkloadKind::StatefulSet => ("kube_statefulset_status_replicas", "statefulset"),
        WorkloadKind::ReplicaSet => ("kube_replicaset_status_replicas", "replicaset"),
        WorkloadKind::DaemonSet => (
            "kube_daemonset_status_current_number_scheduled",
            "daemonset",
        ),
    };
    format!(
        "max({metric}{{namespace={},{label}={}}})",
        quote(&workload.namespace),
        quote(&workload.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> WorkloadRef {
        WorkloadRef {
            namespace: "shop".into(),
            kind: WorkloadKind::Deployment,
            name: "web".into(),
        }
    }

    #[test]
    fn query_text() {
        assert_eq!(
            cpu_usage(&web(), Duration::from_secs(300)),
            r#"sum by (pod, container) (rate(container_cpu_usage_seconds_total{namespace="shop",pod=~"web-[bcdfghjklmnpqrstvwxz2456789]{1,10}-[bcdfghjklmnpqrstvwxz2456789]{5}",container!="",container!="POD"}[5m]))"#
        );
        assert_eq!(
            spec_replicas(&web()),
            r#"max(kube_deployment_spec_replicas{namespace="shop",deployment="web"})"#
        );
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(
            memory_working_set_in_namespaces(&["shop", "a.b"]),
            r#"max by (namespace, pod, container) (container_memory_working_set_bytes{namespace=~"shop|a\\.b",container!="",container!="POD"})"#
        );
        assert_eq!(duration(Duration::from_secs(90)), "90s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
    }
}
