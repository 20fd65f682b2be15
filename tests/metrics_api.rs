#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Kubernetes custom and external metrics APIs end to end: a data directory
//! holding cAdvisor-, kube-state-metrics- and application-shaped series, then
//! `sextant serve` with `--metrics-api.listen-address` and prometheus-adapter's
//! default rules file loaded unchanged (`adapter_config_file`), read by kubectl as
//! the real client (`kubectl --server https://... --insecure-skip-tls-verify get
//! --raw ...`) against the self-signed certificate. Bodies deserialize into the
//! Kubernetes API types: k8s-openapi's for discovery and `Status`, and the types
//! below, written from `k8s.io/metrics`' Go types, for the value lists.
//!
//! The workload: namespace shop, pods web-a and web-b (label app=web) and db-0
//! (app=db); `http_requests_in_flight` per pod (2.5, 3, 0.25), cAdvisor memory of
//! 2Gi in web-a's `app` container, CPU usage of half a core, and an
//! `orders_queue_length` queue gauge.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResourceList, LabelSelector, ListMeta, Status, Time,
};
use serde::Deserialize;
use sextant::server::{ServeOptions, Server};
use tokio::sync::oneshot;
use tsdb::db::{Db, DbOptions};
use tsdb::model::{Labels, Sample};
use tsdb::storage::Appendable;

mod common;

/// `custom_metrics/v1beta2.MetricValueList`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetricValueListV2 {
    kind: String,
    api_version: String,
    #[allow(dead_code)]
    metadata: ListMeta,
    items: Vec<MetricValueV2>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetricValueV2 {
    described_object: ObjectReference,
    metric: MetricIdentifier,
    #[allow(dead_code)]
    timestamp: Time,
    window_seconds: Option<i64>,
    value: Quantity,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricIdentifier {
    name: String,
    selector: Option<LabelSelector>,
}

/// `custom_metrics/v1beta1.MetricValueList`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetricValueListV1 {
    kind: String,
    api_version: String,
    #[allow(dead_code)]
    metadata: ListMeta,
    items: Vec<MetricValueV1>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetricValueV1 {
    described_object: ObjectReference,
    metric_name: String,
    #[allow(dead_code)]
    timestamp: Time,
    window: Option<i64>,
    value: Quantity,
    selector: Option<LabelSelector>,
}

/// `external_metrics/v1beta1.ExternalMetricValueList`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExternalMetricValueList {
    kind: String,
    api_version: String,
    #[allow(dead_code)]
    metadata: ListMeta,
    items: Vec<ExternalMetricValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExternalMetricValue {
    metric_name: String,
    metric_labels: BTreeMap<String, String>,
    #[allow(dead_code)]
    timestamp: Time,
    window: Option<i64>,
    value: Quantity,
}

const STEP: i64 = 15_000;

/// 20 minutes of scrapes centred on `now`, so that whenever the server
/// evaluates, the last 10 minutes hold samples.
fn write_cluster(dir: &Path, now: i64) {
    let db = Db::open(dir, DbOptions::default()).unwrap();
    let mut app = db.appender();
    let mut t = now - 10 * 60_000;
    let mut i = 0.0;
    while t <= now + 10 * 60_000 {
        let mut put = |pairs: &[(&str, &str)], v: f64| {
            app.append(None, &Labels::from_pairs(pairs), Sample::new(t, v))
                .unwrap();
        };
        for (pod, app_label, in_flight) in [
            ("web-a", "web", 2.5),
            ("web-b", "web", 3.0),
            ("db-0", "db", 0.25),
        ] {
            let base = [("namespace", "shop"), ("pod", pod)];
            put(
                &[&[("__name__", "http_requests_in_flight")], &base[..]].concat(),
                in_flight,
            );
            put(
                &[
                    &[("__name__", "kube_pod_labels"), ("label_app", app_label)],
                    &base[..],
                ]
                .concat(),
                1.0,
            );
        }
        let web_a = [
            ("namespace", "shop"),
            ("pod", "web-a"),
            ("container", "app"),
        ];
        put(
            &[
                &[("__name__", "container_memory_working_set_bytes")],
                &web_a[..],
            ]
            .concat(),
            2.0 * 1024.0 * 1024.0 * 1024.0,
        );
        put(
            &[
                &[("__name__", "container_cpu_usage_seconds_total")],
                &web_a[..],
            ]
            .concat(),
            0.5 * 15.0 * i,
        );
        put(
            &[
                ("__name__", "orders_queue_length"),
                ("namespace", "shop"),
                ("queue", "orders"),
            ],
            42.0,
        );
        t += STEP;
        i += 1.0;
    }
    app.commit().unwrap();
    db.close().unwrap();
}

/// kubectl, if installed; fails under `CI=true` when it is not.
fn kubectl_present() -> bool {
    let found = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kubectl is required under CI=true"
        );
        eprintln!("kubectl not found: skipping the metrics API test");
    }
    found
}

/// `kubectl get --raw PATH` against the server, with an empty kubeconfig; returns the
/// exit success and stdout or stderr.
async fn kubectl_raw(server: &str, kubeconfig: &Path, path: &str) -> (bool, String) {
    // With no credentials at all kubectl prompts for a username; the server
    // ignores the token (it does not authenticate).
    kubectl_raw_with(server, kubeconfig, &["--token=unused".into()], path).await
}

/// [`kubectl_raw`] with `credentials` flags.
async fn kubectl_raw_with(
    server: &str,
    kubeconfig: &Path,
    credentials: &[String],
    path: &str,
) -> (bool, String) {
    let out = tokio::process::Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["--server", server, "--insecure-skip-tls-verify"])
        .args(credentials)
        .args(["get", "--raw", path])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    if out.status.success() {
        (true, String::from_utf8(out.stdout).unwrap())
    } else {
        (false, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn value_of(q: &Quantity) -> &str {
    &q.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_custom_and_external_metrics() {
    if !kubectl_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = tsdb::clock::Clock::now_ms(&tsdb::clock::SystemClock);
    write_cluster(&data, now);
    // prometheus-adapter's default rules, unchanged, beside the config.
    std::fs::write(
        dir.path().join("adapter.yaml"),
        include_str!("../src/metrics_api/testdata/adapter-default.yaml"),
    )
    .unwrap();
    let config = dir.path().join("sextant.yml");
    std::fs::write(
        &config,
        "metrics_api:\n  relist_interval: 1m\n  adapter_config_file: adapter.yaml\n",
    )
    .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "").unwrap();

    let mut options = ServeOptions::new("127.0.0.1:0");
    options.storage_path = Some(data);
    options.config_file = Some(config);
    options.metrics_api_listen = Some("127.0.0.1:0".into());
    let server = Server::start(options).await.unwrap();
    let https = format!("https://{}", server.metrics_api_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let get = |path: &str| {
        let https = https.clone();
        let kubeconfig = kubeconfig.clone();
        let path = path.to_string();
        async move { kubectl_raw(&https, &kubeconfig, &path).await }
    };

    // Discovery.
    let (ok, body) = get("/apis").await;
    assert!(ok, "{body}");
    let groups: APIGroupList = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["custom.metrics.k8s.io", "external.metrics.k8s.io"]);
    let (_, body) = get("/apis/custom.metrics.k8s.io").await;
    let group: APIGroup = serde_json::from_str(&body).unwrap();
    assert_eq!(group.preferred_version.unwrap().version, "v1beta2");
    let (ok, body) = get("/apis/custom.metrics.k8s.io/v1beta2").await;
    assert!(ok, "{body}");
    let list: APIResourceList = serde_json::from_str(&body).unwrap();
    assert_eq!(list.group_version, "custom.metrics.k8s.io/v1beta2");
    let resources: BTreeMap<&str, bool> = list
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r.namespaced))
        .collect();
    for (name, namespaced) in [
        ("pods/http_requests_in_flight", true),
        ("namespaces/http_requests_in_flight", false),
        ("pods/memory_working_set_bytes", true),
        ("pods/cpu_usage", true),
    ] {
        assert_eq!(
            resources.get(name),
            Some(&namespaced),
            "{name} in {resources:?}"
        );
    }
    assert!(list.resources.iter().all(|r| r.kind == "MetricValueList"));
    let (_, body) = get("/apis/external.metrics.k8s.io/v1beta1").await;
    let list: APIResourceList = serde_json::from_str(&body).unwrap();
    assert_eq!(list.resources.len(), 1, "{body}");
    assert_eq!(list.resources[0].name, "orders_queue_length");

    // The HPA's Pods metric call.
    let (ok, body) = get(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_in_flight?labelSelector=app%3Dweb",
    )
    .await;
    assert!(ok, "{body}");
    let list: MetricValueListV2 = serde_json::from_str(&body).unwrap();
    assert_eq!(list.kind, "MetricValueList");
    assert_eq!(list.api_version, "custom.metrics.k8s.io/v1beta2");
    let values: Vec<(&str, &str)> = list
        .items
        .iter()
        .map(|i| {
            (
                i.described_object.name.as_deref().unwrap(),
                value_of(&i.value),
            )
        })
        .collect();
    assert_eq!(values, [("web-a", "2500m"), ("web-b", "3")]);
    let first = &list.items[0];
    assert_eq!(first.described_object.kind.as_deref(), Some("Pod"));
    assert_eq!(first.described_object.namespace.as_deref(), Some("shop"));
    assert_eq!(first.metric.name, "http_requests_in_flight");
    assert!(first.metric.selector.is_none());
    assert_eq!(first.window_seconds, None);

    // An Object metric in v1beta1, with a metric label selector echoed back.
    let (ok, body) = get(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-a/memory_working_set_bytes?metricLabelSelector=container%3Dapp",
    )
    .await;
    assert!(ok, "{body}");
    let list: MetricValueListV1 = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (list.kind.as_str(), list.api_version.as_str()),
        ("MetricValueList", "custom.metrics.k8s.io/v1beta1")
    );
    assert_eq!(list.items.len(), 1);
    let item = &list.items[0];
    assert_eq!(item.metric_name, "memory_working_set_bytes");
    assert_eq!(value_of(&item.value), "2147483648");
    assert_eq!(item.described_object.name.as_deref(), Some("web-a"));
    assert_eq!(item.window, None);
    let selector = item.selector.as_ref().unwrap();
    assert_eq!(
        selector.match_labels.as_ref().unwrap().get("container"),
        Some(&"app".to_string())
    );

    // A rate through the adapter's cAdvisor counter rule: half a core.
    let (ok, body) =
        get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-a/cpu_usage").await;
    assert!(ok, "{body}");
    let list: MetricValueListV2 = serde_json::from_str(&body).unwrap();
    let cpu = autoscaler::quantity::Quantity::parse(value_of(&list.items[0].value)).unwrap();
    assert!((499..=500).contains(&cpu.milli_value()), "{body}");

    // The namespace itself.
    let (ok, body) =
        get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/metrics/http_requests_in_flight")
            .await;
    assert!(ok, "{body}");
    let list: MetricValueListV2 = serde_json::from_str(&body).unwrap();
    assert_eq!(value_of(&list.items[0].value), "5750m");
    assert_eq!(
        list.items[0].described_object.kind.as_deref(),
        Some("Namespace")
    );

    // External metrics, with and without a matching selector.
    let (ok, body) = get(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/orders_queue_length?labelSelector=queue%3Dorders",
    )
    .await;
    assert!(ok, "{body}");
    let list: ExternalMetricValueList = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (list.kind.as_str(), list.api_version.as_str()),
        ("ExternalMetricValueList", "external.metrics.k8s.io/v1beta1")
    );
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metric_name, "orders_queue_length");
    assert_eq!(value_of(&list.items[0].value), "42");
    assert_eq!(list.items[0].window, None);
    // The adapter's rule sums `by ()`: no labels left.
    assert!(list.items[0].metric_labels.is_empty(), "{body}");
    let (_, body) =
        get("/apis/external.metrics.k8s.io/v1beta1/namespaces/other/orders_queue_length").await;
    let list: ExternalMetricValueList = serde_json::from_str(&body).unwrap();
    assert!(list.items.is_empty());

    // Errors: kubectl reports them; the bodies are Status objects.
    let (ok, message) =
        get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/nope").await;
    assert!(!ok);
    assert!(
        message.contains("NotFound") || message.contains("could not find"),
        "{message}"
    );
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    for (path, code, reason) in [
        (
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/nope",
            404,
            "NotFound",
        ),
        (
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_in_flight?labelSelector=a%3D%3D%3D",
            400,
            "BadRequest",
        ),
    ] {
        let response = client.get(format!("{https}{path}")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), code);
        let status: Status = response.json().await.unwrap();
        assert_eq!(status.code, Some(code.into()));
        assert_eq!(status.reason.as_deref(), Some(reason));
        assert_eq!(status.status.as_deref(), Some("Failure"));
    }

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

/// A CA and a client certificate it signed for `cn`, as PEM files in `dir`:
/// (CA certificate, client certificate, client key).
fn client_identity(
    dir: &Path,
    ca: &(rcgen::CertificateParams, rcgen::KeyPair),
    cn: &str,
) -> (String, String) {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params
        .signed_by(&key, &Issuer::from_params(&ca.0, &ca.1))
        .unwrap();
    let (cert_file, key_file) = (dir.join(format!("{cn}.crt")), dir.join(format!("{cn}.key")));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (
        cert_file.display().to_string(),
        key_file.display().to_string(),
    )
}

fn certificate_authority(cn: &str) -> ((rcgen::CertificateParams, rcgen::KeyPair), String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    ((params, key), pem)
}

/// Authentication and authorization delegated to a (fake) Kubernetes API, as
/// a deployment does: the CAs come from the published
/// `kube-system/extension-apiserver-authentication` ConfigMap, every request
/// is a SubjectAccessReview. kubectl with client certificates is the client:
/// alice is allowed, bob gets the apiserver's Forbidden as kubectl prints it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_is_authenticated_and_authorized_through_the_cluster() {
    if !kubectl_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = tsdb::clock::Clock::now_ms(&tsdb::clock::SystemClock);
    write_cluster(&data, now);
    let (cluster_ca, cluster_ca_pem) = certificate_authority("kubernetes");
    let (_, front_proxy_ca_pem) = certificate_authority("front-proxy-ca");
    let published = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
        "data": {
            "client-ca-file": cluster_ca_pem,
            "requestheader-client-ca-file": front_proxy_ca_pem,
            "requestheader-allowed-names": "[\"front-proxy-client\"]",
            "requestheader-username-headers": "[\"X-Remote-User\"]",
            "requestheader-group-headers": "[\"X-Remote-Group\"]",
            "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]"
        }
    });
    let api = common::kube_api::start(
        HashMap::from([(
            "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
                .to_string(),
            published,
        )]),
        Some(Box::new(|spec: &serde_json::Value| {
            Some(if spec["user"] == "alice" {
                (true, String::new())
            } else {
                (false, "no RBAC policy matched".to_string())
            })
        })),
    )
    .await;
    let config = dir.path().join("sextant.yml");
    std::fs::write(
        &config,
        format!(
            "metrics_api:\n  authentication: {{from_cluster: true}}\n  authorization: {{api_server: '{}'}}\n  metrics:\n    - name: http_requests_in_flight\n      query: 'sum(http_requests_in_flight{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'\n      resources: {{namespace: namespace, pod: pods}}\n",
            api.url
        ),
    )
    .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "").unwrap();
    let credentials = |cn: &str| {
        let (cert, key) = client_identity(dir.path(), &cluster_ca, cn);
        vec![
            format!("--client-certificate={cert}"),
            format!("--client-key={key}"),
        ]
    };
    let (alice, bob) = (credentials("alice"), credentials("bob"));

    let mut options = ServeOptions::new("127.0.0.1:0");
    options.storage_path = Some(data);
    options.config_file = Some(config);
    options.metrics_api_listen = Some("127.0.0.1:0".into());
    let server = Server::start(options).await.unwrap();
    let https = format!("https://{}", server.metrics_api_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    assert_eq!(
        api.paths()[0],
        "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
    );

    let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_in_flight";
    let (ok, body) = kubectl_raw_with(&https, &kubeconfig, &alice, path).await;
    assert!(ok, "{body}");
    let list: MetricValueListV2 = serde_json::from_str(&body).unwrap();
    assert_eq!(list.items.len(), 3, "{body}");
    // kubectl may ask discovery paths first (non-resource reviews).
    let review = api
        .reviews()
        .into_iter()
        .find(|r| r["resourceAttributes"].is_object())
        .unwrap();
    assert_eq!(review["user"], "alice");
    assert_eq!(
        review["resourceAttributes"],
        serde_json::json!({"group": "custom.metrics.k8s.io", "version": "v1beta2",
            "namespace": "shop", "resource": "pods", "name": "*",
            "subresource": "http_requests_in_flight", "verb": "get"})
    );

    let (ok, message) = kubectl_raw_with(&https, &kubeconfig, &bob, path).await;
    assert!(!ok);
    assert!(
        message.contains(
            "Error from server (Forbidden): pods.custom.metrics.k8s.io \"*\" is forbidden: User \"bob\" cannot get resource \"pods/http_requests_in_flight\" in API group \"custom.metrics.k8s.io\" in the namespace \"shop\": no RBAC policy matched"
        ),
        "{message}"
    );
    // Without a certificate: 401, no review.
    let reviews = api.reviews().len();
    let (ok, message) = kubectl_raw(&https, &kubeconfig, path).await;
    assert!(!ok);
    assert!(message.contains("Unauthorized"), "{message}");
    assert_eq!(api.reviews().len(), reviews);

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

/// The config embedded in `deploy/kubernetes/configmap.yaml` passes the checks
/// of `sextant check config`, and its `metrics_api` rules compile.
#[test]
fn deploy_config_map_passes_check_config() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/configmap.yaml"),
    )
    .unwrap();
    let config_map: k8s_openapi::api::core::v1::ConfigMap = serde_yaml::from_str(&text).unwrap();
    let config = &config_map.data.unwrap()["sextant.yml"];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sextant.yml");
    std::fs::write(&path, config).unwrap();
    let report = sextant::cli::check::check_config_files(std::slice::from_ref(&path)).unwrap();
    assert!(report.contains("SUCCESS"), "{report}");
    assert!(!report.contains("WARNING"), "{report}");
    let loaded = sextant::config::Config::load_file(&path).unwrap();
    let rules = loaded.metrics_api.rule_set().unwrap();
    assert_eq!((rules.custom.len(), rules.external.len()), (3, 1));
    assert_eq!(
        loaded.metrics_api.listen_address.as_deref(),
        Some("0.0.0.0:6443")
    );
}
