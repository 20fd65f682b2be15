#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Kubernetes discovery against an in-process fake API server on 127.0.0.1
//! that speaks the real list and watch wire format: JSON of k8s-openapi
//! objects, chunked newline-delimited watch events, bookmarks, dropped
//! connections (resumed from the last resource version) and `410 Gone`
//! (which forces a relist that must notice objects removed meanwhile).
//! Every role (node, pod, service, endpointslice) is followed from the
//! first list through watch events that add, change and delete objects,
//! with the `__meta_kubernetes_*` labels Prometheus documents; and a
//! `kubernetes_sd_configs` section reaches it through the
//! [`ScrapeManager`], whose pool scrapes the discovered pod.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use common::{Exporter, Exposed, MemStorage};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, DaemonEndpoint, Node, NodeAddress, NodeDaemonEndpoints, NodeSpec,
    NodeStatus, ObjectReference, Pod, PodCondition, PodSpec, PodStatus, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use scraper::config::{ScrapeConfig, ScrapeDefaults};
use scraper::discovery::{Manager, TargetSets};
use scraper::manager::ScrapeManager;
use scraper::target::targets_from_group;
use tokio::sync::{broadcast, watch};

/// What the fake API server sends to open watches.
#[derive(Clone, Debug)]
enum Push {
    /// A watch event for the watches of one resource (`pods`, `nodes`, ...),
    /// or of every resource.
    Line(Option<&'static str>, String),
    /// Ends every open watch (an API server restart or a timeout).
    Close,
}

#[derive(Default)]
struct Cluster {
    resource_version: u64,
    /// Objects as JSON by resource, then name.
    objects: BTreeMap<&'static str, BTreeMap<String, serde_json::Value>>,
    /// Watch events by resource version, for resuming watches.
    log: Vec<(u64, &'static str, String)>,
    /// Watches resuming from before this version get 410 Gone.
    expired_before: u64,
    n_lists: usize,
    n_watches: usize,
    /// Resource, namespace (empty for the cluster-wide path) and label
    /// selector of every request.
    requests: Vec<(String, String, String)>,
}

struct FakeApiServer {
    cluster: Mutex<Cluster>,
    push: broadcast::Sender<Push>,
}

fn meta(name: &str, namespace: Option<&str>, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        ..ObjectMeta::default()
    }
}

fn pod(name: &str, ip: &str) -> Pod {
    pod_on(name, ip, 8080)
}

fn pod_on(name: &str, ip: &str, port: i32) -> Pod {
    Pod {
        metadata: meta(name, Some("default"), &[("app", name)]),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".to_string(),
                image: Some("app:1".to_string()),
                ports: Some(vec![ContainerPort {
                    container_port: port,
                    name: Some("http".to_string()),
                    ..ContainerPort::default()
                }]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some(ip.to_string()),
            phase: Some("Running".to_string()),
            ..PodStatus::default()
        }),
    }
}

fn event_line(kind: &str, object: &serde_json::Value) -> String {
    let mut line =
        serde_json::to_string(&serde_json::json!({"type": kind, "object": object})).unwrap();
    line.push('\n');
    line
}

impl FakeApiServer {
    /// Adds or changes an object; `announce` sends the watch event
    /// (otherwise the change happens "while the watch is down").
    fn apply<K>(&self, mut object: K, announce: bool)
    where
        K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta> + serde::Serialize,
    {
        let resource = K::URL_PATH_SEGMENT;
        let mut cluster = self.cluster.lock().unwrap();
        cluster.resource_version += 1;
        let rv = cluster.resource_version;
        object.metadata_mut().resource_version = Some(rv.to_string());
        let name = object.metadata().name.clone().unwrap();
        let value = serde_json::to_value(&object).unwrap();
        let objects = cluster.objects.entry(resource).or_default();
        let kind = if objects.contains_key(&name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        objects.insert(name, value.clone());
        if announce {
            let line = event_line(kind, &value);
            cluster.log.push((rv, resource, line.clone()));
            let _ = self.push.send(Push::Line(Some(resource), line));
        }
    }

    fn delete<K: k8s_openapi::Resource>(&self, name: &str, announce: bool) {
        let resource = K::URL_PATH_SEGMENT;
        let mut cluster = self.cluster.lock().unwrap();
        cluster.resource_version += 1;
        let rv = cluster.resource_version;
        let removed = cluster
            .objects
            .get_mut(resource)
            .and_then(|objects| objects.remove(name));
        if let Some(mut object) = removed {
            object["metadata"]["resourceVersion"] = rv.to_string().into();
            if announce {
                let line = event_line("DELETED", &object);
                cluster.log.push((rv, resource, line.clone()));
                let _ = self.push.send(Push::Line(Some(resource), line));
            }
        }
    }

    fn bookmark<K: k8s_openapi::Resource>(&self) {
        let cluster = self.cluster.lock().unwrap();
        let object = serde_json::json!({
            "kind": K::KIND, "apiVersion": K::API_VERSION,
            "metadata": {"resourceVersion": cluster.resource_version.to_string()}
        });
        let _ = self.push.send(Push::Line(
            Some(K::URL_PATH_SEGMENT),
            event_line("BOOKMARK", &object),
        ));
    }

    /// Drops every open watch connection.
    fn drop_watches(&self) {
        let _ = self.push.send(Push::Close);
    }

    /// Compacts history: open watches get an ERROR 410 event and end, and
    /// resuming from any earlier version fails with 410.
    fn expire(&self) {
        let mut cluster = self.cluster.lock().unwrap();
        cluster.expired_before = cluster.resource_version + 1;
        cluster.log.clear();
        let _ = self
            .push
            .send(Push::Line(None, gone_line(cluster.resource_version)));
        let _ = self.push.send(Push::Close);
    }

    fn counts(&self) -> (usize, usize) {
        let cluster = self.cluster.lock().unwrap();
        (cluster.n_lists, cluster.n_watches)
    }
}

fn gone_line(current: u64) -> String {
    event_line(
        "ERROR",
        &serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "Expired", "code": 410,
            "message": format!("too old resource version: 1 ({current})"),
        }),
    )
}

/// The list kind and API version of a resource's list.
fn list_type(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "nodes" => ("NodeList", "v1"),
        "pods" => ("PodList", "v1"),
        "services" => ("ServiceList", "v1"),
        _ => ("EndpointSliceList", "discovery.k8s.io/v1"),
    }
}

/// Lists or watches one resource (the fake filters lists by namespace,
/// ignores selectors, and records both).
fn answer(
    server: Arc<FakeApiServer>,
    resource: &'static str,
    namespace: String,
    params: BTreeMap<String, String>,
) -> Response {
    server.cluster.lock().unwrap().requests.push((
        resource.to_string(),
        namespace.clone(),
        params.get("labelSelector").cloned().unwrap_or_default(),
    ));
    let watching = matches!(params.get("watch").map(String::as_str), Some("true" | "1"));
    if !watching {
        let mut cluster = server.cluster.lock().unwrap();
        cluster.n_lists += 1;
        let items: Vec<&serde_json::Value> = cluster
            .objects
            .get(resource)
            .into_iter()
            .flat_map(|objects| objects.values())
            .filter(|o| namespace.is_empty() || o["metadata"]["namespace"] == namespace.as_str())
            .collect();
        let (kind, api_version) = list_type(resource);
        let list = serde_json::json!({
            "kind": kind, "apiVersion": api_version,
            "metadata": {"resourceVersion": cluster.resource_version.to_string()},
            "items": items,
        });
        return (
            [(header::CONTENT_TYPE, "application/json")],
            list.to_string(),
        )
            .into_response();
    }
    let since: u64 = params
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Subscribe before reading the log so that no event falls in between.
    let live = server.push.subscribe();
    let mut replay: VecDeque<Push> = VecDeque::new();
    {
        let mut cluster = server.cluster.lock().unwrap();
        cluster.n_watches += 1;
        if since < cluster.expired_before {
            replay.push_back(Push::Line(None, gone_line(cluster.resource_version)));
            replay.push_back(Push::Close);
        } else {
            for (rv, of, line) in &cluster.log {
                if *rv > since && *of == resource {
                    replay.push_back(Push::Line(Some(resource), line.clone()));
                }
            }
        }
    }
    let stream = futures::stream::unfold(
        (replay, live, false),
        move |(mut replay, mut live, done)| async move {
            if done {
                return None;
            }
            loop {
                let next = match replay.pop_front() {
                    Some(push) => push,
                    None => loop {
                        match live.recv().await {
                            Ok(push) => break push,
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return None,
                        }
                    },
                };
                match next {
                    Push::Line(Some(of), _) if of != resource => continue,
                    Push::Line(_, line) => {
                        return Some((
                            Ok::<_, Infallible>(Bytes::from(line)),
                            (replay, live, false),
                        ));
                    }
                    Push::Close => return None,
                }
            }
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn cluster_route(resource: &'static str) -> MethodRouter<Arc<FakeApiServer>> {
    get(
        move |State(server): State<Arc<FakeApiServer>>,
              Query(params): Query<BTreeMap<String, String>>| async move {
            answer(server, resource, String::new(), params)
        },
    )
}

fn namespaced_route(resource: &'static str) -> MethodRouter<Arc<FakeApiServer>> {
    get(
        move |State(server): State<Arc<FakeApiServer>>,
              Path(namespace): Path<String>,
              Query(params): Query<BTreeMap<String, String>>| async move {
            answer(server, resource, namespace, params)
        },
    )
}

async fn start_fake_api_server() -> (Arc<FakeApiServer>, String) {
    let (push, _) = broadcast::channel(1024);
    let server = Arc::new(FakeApiServer {
        cluster: Mutex::new(Cluster::default()),
        push,
    });
    let discovery = "/apis/discovery.k8s.io/v1";
    let app = Router::new()
        .route("/api/v1/nodes", cluster_route("nodes"))
        .route("/api/v1/pods", cluster_route("pods"))
        .route(
            "/api/v1/namespaces/{namespace}/pods",
            namespaced_route("pods"),
        )
        .route("/api/v1/services", cluster_route("services"))
        .route(
            "/api/v1/namespaces/{namespace}/services",
            namespaced_route("services"),
        )
        .route(
            &format!("{discovery}/endpointslices"),
            cluster_route("endpointslices"),
        )
        .route(
            &format!("{discovery}/namespaces/{{namespace}}/endpointslices"),
            namespaced_route("endpointslices"),
        )
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (server, url)
}

async fn wait_for(
    rx: &mut watch::Receiver<Arc<TargetSets>>,
    done: impl Fn(&[String]) -> bool,
) -> Arc<TargetSets> {
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let current = rx.borrow_and_update().clone();
            if done(&addresses(&current)) {
                return current;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("the expected targets were discovered")
}

fn addresses(sets: &TargetSets) -> Vec<String> {
    let mut out: Vec<String> = sets
        .get("pods")
        .into_iter()
        .flat_map(|groups| groups.iter())
        .flat_map(|g| g.targets.iter())
        .filter_map(|t| t.get("__address__").map(str::to_string))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn pods_are_followed_through_watches_restarts_and_410() {
    let (server, url) = start_fake_api_server().await;
    server.apply(pod("a", "10.0.0.1"), true);

    let mut config: ScrapeConfig = serde_yaml::from_str(&format!(
        r#"
job_name: pods
kubernetes_sd_configs:
  - role: pod
    api_server: {url}
relabel_configs:
  - action: labelmap
    regex: __meta_kubernetes_pod_label_(.+)
  - source_labels: [__meta_kubernetes_pod_name]
    target_label: pod
"#
    ))
    .unwrap();
    config.apply_defaults(&ScrapeDefaults::default()).unwrap();
    let mut manager = Manager::new();
    let mut rx = manager.subscribe();
    manager.apply_config(std::slice::from_ref(&config));

    // Initial list.
    let sets = wait_for(&mut rx, |a| a == ["10.0.0.1:8080"]).await;
    let built = targets_from_group(&sets["pods"][0], &config);
    let target = &built.active[0];
    assert_eq!(target.labels().get("app"), Some("a"));
    assert_eq!(target.labels().get("pod"), Some("a"));
    assert_eq!(target.url().as_str(), "http://10.0.0.1:8080/metrics");

    // Watch events: added, then modified.
    server.apply(pod("b", "10.0.0.2"), true);
    wait_for(&mut rx, |a| a == ["10.0.0.1:8080", "10.0.0.2:8080"]).await;
    server.bookmark::<Pod>();
    server.apply(pod("b", "10.0.0.3"), true);
    wait_for(&mut rx, |a| a == ["10.0.0.1:8080", "10.0.0.3:8080"]).await;

    // The connection drops; the watch resumes from its last version and
    // replays what happened meanwhile.
    server.drop_watches();
    server.delete::<Pod>("b", true);
    wait_for(&mut rx, |a| a == ["10.0.0.1:8080"]).await;

    // History is compacted while changes happen unannounced: 410 Gone forces
    // a relist, which must drop "a" and find "c".
    server.delete::<Pod>("a", false);
    server.apply(pod("c", "10.0.0.4"), false);
    let (lists_before, _) = server.counts();
    server.expire();
    wait_for(&mut rx, |a| a == ["10.0.0.4:8080"]).await;
    let (lists_after, watches) = server.counts();
    assert!(lists_after > lists_before, "a relist happened");
    // The first watch, and the one resumed after the dropped connection.
    assert!(watches >= 2, "watches were reopened: {watches}");

    // And the new watch keeps following.
    server.apply(pod("d", "10.0.0.5"), true);
    wait_for(&mut rx, |a| a == ["10.0.0.4:8080", "10.0.0.5:8080"]).await;
    manager.stop();
}

#[tokio::test]
async fn kubernetes_targets_are_scraped_through_the_scrape_manager() {
    let exporter =
        Exporter::start(Exposed::text("# TYPE jobs_total counter\njobs_total 7\n")).await;
    let (server, url) = start_fake_api_server().await;
    server.apply(
        pod_on("web", "127.0.0.1", i32::from(exporter.addr.port())),
        true,
    );
    let mut config: ScrapeConfig = serde_yaml::from_str(&format!(
        r#"
job_name: k8s
scrape_interval: 1s
scrape_timeout: 1s
kubernetes_sd_configs:
  - role: pod
    api_server: {url}
    namespaces: {{names: [default]}}
    selectors: [{{role: pod, label: app=web}}]
relabel_configs:
  - action: labelmap
    regex: __meta_kubernetes_pod_label_(.+)
"#
    ))
    .unwrap();
    config.apply_defaults(&ScrapeDefaults::default()).unwrap();
    let storage = Arc::new(MemStorage::default());
    let manager = ScrapeManager::new(storage.clone(), Arc::new(tsdb::clock::SystemClock), 0);
    manager
        .apply_config(std::slice::from_ref(&config))
        .await
        .unwrap();

    let address = exporter.addr.to_string();
    let series = |name: &str| {
        tsdb::model::Labels::from_pairs(&[
            ("__name__", name),
            ("app", "web"),
            ("instance", address.as_str()),
            ("job", "k8s"),
        ])
    };
    let samples = |name: &str| {
        storage
            .series()
            .get(&series(name))
            .cloned()
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while samples("jobs_total").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pod was not scraped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(samples("jobs_total")[0].v, 7.0);
    assert_eq!(samples("up")[0].v, 1.0);
    let targets = manager.targets();
    assert_eq!(targets.active.len(), 1);
    assert_eq!(targets.active[0].0, "k8s");
    assert_eq!(
        targets.active[0]
            .1
            .target
            .discovered_labels()
            .get("__meta_kubernetes_pod_name"),
        Some("web")
    );
    // The namespace and the selector reached the API server.
    let requests = server.cluster.lock().unwrap().requests.clone();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| *r == ("pods".into(), "default".into(), "app=web".into())),
        "{requests:?}"
    );

    // The pod goes away: its series are marked stale.
    server.delete::<Pod>("web", true);
    while !samples("up")
        .last()
        .is_some_and(|s| tsdb::model::is_stale_nan(s.v))
    {
        assert!(std::time::Instant::now() < deadline, "no staleness marker");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(tsdb::model::is_stale_nan(
        samples("jobs_total").last().unwrap().v
    ));
    assert!(manager.targets().active.is_empty());
    manager.stop().await;
}

type TargetLabels = BTreeMap<String, String>;

fn label_map(pairs: &[(&str, &str)]) -> TargetLabels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every discovered target of `job`: its group's labels with its own over
/// them, sorted by address.
fn discovered(sets: &TargetSets, job: &str) -> Vec<TargetLabels> {
    let mut out = Vec::new();
    for group in sets.get(job).into_iter().flat_map(|groups| groups.iter()) {
        for target in &group.targets {
            let mut labels: TargetLabels = group
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            labels.extend(
                target
                    .iter()
                    .map(|l| (l.name.to_string(), l.value.to_string())),
            );
            out.push(labels);
        }
    }
    out.sort_by(|a, b| a.get("__address__").cmp(&b.get("__address__")));
    out
}

/// Waits until `job`'s discovered targets satisfy `done`; fails with the
/// last ones seen.
async fn wait_targets(
    rx: &mut watch::Receiver<Arc<TargetSets>>,
    job: &str,
    done: impl Fn(&[TargetLabels]) -> bool,
) -> Vec<TargetLabels> {
    let mut last = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let current = discovered(&rx.borrow_and_update(), job);
            if done(&current) {
                return current;
            }
            last = current;
            rx.changed().await.unwrap();
        }
    })
    .await;
    match waited {
        Ok(targets) => targets,
        Err(_) => panic!("{job}: the expected targets never came; last seen:\n{last:#?}"),
    }
}

fn addresses_of(targets: &[TargetLabels]) -> Vec<&str> {
    targets
        .iter()
        .map(|t| t.get("__address__").map_or("", String::as_str))
        .collect()
}

/// Discovery of one `kubernetes_sd_configs` job.
fn start_discovery(yaml: &str) -> (Manager, watch::Receiver<Arc<TargetSets>>, ScrapeConfig) {
    let mut config: ScrapeConfig = serde_yaml::from_str(yaml).unwrap();
    config.apply_defaults(&ScrapeDefaults::default()).unwrap();
    let mut manager = Manager::new();
    let rx = manager.subscribe();
    manager.apply_config(std::slice::from_ref(&config));
    (manager, rx, config)
}

fn node(name: &str, ip: &str) -> Node {
    let mut metadata = meta(name, None, &[("kubernetes.io/os", "linux")]);
    metadata.annotations = Some([("node.alpha.kubernetes.io/ttl".into(), "0".into())].into());
    Node {
        metadata,
        spec: Some(NodeSpec {
            provider_id: Some(format!("aws:///eu-west-1a/{name}")),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.into(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.into(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
            }),
            ..NodeStatus::default()
        }),
    }
}

#[tokio::test]
async fn node_role_follows_nodes_through_watch_events() {
    let (server, url) = start_fake_api_server().await;
    server.apply(node("n1", "10.1.0.1"), true);
    let (mut manager, mut rx, config) = start_discovery(&format!(
        "job_name: nodes\nkubernetes_sd_configs:\n  - role: node\n    api_server: {url}\n"
    ));

    let targets = wait_targets(&mut rx, "nodes", |t| t.len() == 1).await;
    assert_eq!(
        targets[0],
        label_map(&[
            ("__address__", "10.1.0.1:10250"),
            ("instance", "n1"),
            ("__meta_kubernetes_node_name", "n1"),
            ("__meta_kubernetes_node_provider_id", "aws:///eu-west-1a/n1"),
            ("__meta_kubernetes_node_label_kubernetes_io_os", "linux"),
            (
                "__meta_kubernetes_node_labelpresent_kubernetes_io_os",
                "true"
            ),
            (
                "__meta_kubernetes_node_annotation_node_alpha_kubernetes_io_ttl",
                "0"
            ),
            (
                "__meta_kubernetes_node_annotationpresent_node_alpha_kubernetes_io_ttl",
                "true"
            ),
            ("__meta_kubernetes_node_address_InternalIP", "10.1.0.1"),
            ("__meta_kubernetes_node_address_Hostname", "n1"),
        ])
    );
    // The node's name is its instance; the kubelet's port its address.
    let sets = rx.borrow().clone();
    let built = targets_from_group(&sets["nodes"][0], &config);
    assert_eq!(
        built.active[0].url().as_str(),
        "http://10.1.0.1:10250/metrics"
    );
    assert_eq!(built.active[0].labels().get("instance"), Some("n1"));

    // Added, changed and deleted through watch events.
    server.apply(node("n2", "10.1.0.2"), true);
    wait_targets(&mut rx, "nodes", |t| {
        addresses_of(t) == ["10.1.0.1:10250", "10.1.0.2:10250"]
    })
    .await;
    server.bookmark::<Node>();
    let mut moved = node("n1", "10.1.0.9");
    moved
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("topology.kubernetes.io/zone".into(), "z2".into());
    server.apply(moved, true);
    let targets = wait_targets(&mut rx, "nodes", |t| {
        addresses_of(t) == ["10.1.0.2:10250", "10.1.0.9:10250"]
    })
    .await;
    assert_eq!(
        targets[1]["__meta_kubernetes_node_label_topology_kubernetes_io_zone"],
        "z2"
    );
    assert_eq!(
        targets[1]["__meta_kubernetes_node_address_InternalIP"],
        "10.1.0.9"
    );
    server.delete::<Node>("n2", true);
    wait_targets(&mut rx, "nodes", |t| addresses_of(t) == ["10.1.0.9:10250"]).await;
    manager.stop();
}

fn service(name: &str, spec: ServiceSpec) -> Service {
    let mut metadata = meta(name, Some("default"), &[("app", name)]);
    metadata.annotations = Some([("prometheus.io/scrape".into(), "true".into())].into());
    Service {
        metadata,
        spec: Some(spec),
        status: None,
    }
}

fn service_port(name: Option<&str>, port: i32, protocol: Option<&str>) -> ServicePort {
    ServicePort {
        name: name.map(str::to_string),
        port,
        protocol: protocol.map(str::to_string),
        ..ServicePort::default()
    }
}

#[tokio::test]
async fn service_role_follows_services_through_watch_events() {
    let (server, url) = start_fake_api_server().await;
    let cluster_ip = ServiceSpec {
        type_: Some("ClusterIP".into()),
        cluster_ip: Some("10.96.0.10".into()),
        ports: Some(vec![
            service_port(Some("http"), 80, Some("TCP")),
            service_port(Some("dns"), 53, Some("UDP")),
        ]),
        ..ServiceSpec::default()
    };
    server.apply(service("web", cluster_ip.clone()), true);
    let (mut manager, mut rx, _) = start_discovery(&format!(
        "job_name: services\nkubernetes_sd_configs:\n  - role: service\n    api_server: {url}\n"
    ));

    let service_labels = [
        ("__meta_kubernetes_namespace", "default"),
        ("__meta_kubernetes_service_name", "web"),
        ("__meta_kubernetes_service_label_app", "web"),
        ("__meta_kubernetes_service_labelpresent_app", "true"),
        (
            "__meta_kubernetes_service_annotation_prometheus_io_scrape",
            "true",
        ),
        (
            "__meta_kubernetes_service_annotationpresent_prometheus_io_scrape",
            "true",
        ),
    ];
    let targets = wait_targets(&mut rx, "services", |t| t.len() == 2).await;
    let expected = |address: &str, name: &str, port: &str, protocol: &str| {
        let mut labels = label_map(&service_labels);
        labels.extend(label_map(&[
            ("__address__", address),
            ("__meta_kubernetes_service_port_name", name),
            ("__meta_kubernetes_service_port_number", port),
            ("__meta_kubernetes_service_port_protocol", protocol),
            ("__meta_kubernetes_service_type", "ClusterIP"),
            ("__meta_kubernetes_service_cluster_ip", "10.96.0.10"),
        ]));
        labels
    };
    assert_eq!(
        targets,
        [
            expected("web.default.svc:53", "dns", "53", "UDP"),
            expected("web.default.svc:80", "http", "80", "TCP"),
        ]
    );

    // Changed to a load balancer: its requested IP, no longer the UDP port.
    server.apply(
        service(
            "web",
            ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_ip: Some("203.0.113.7".into()),
                ports: Some(vec![service_port(Some("http"), 80, Some("TCP"))]),
                ..cluster_ip
            },
        ),
        true,
    );
    let targets = wait_targets(&mut rx, "services", |t| {
        t.len() == 1 && t[0]["__meta_kubernetes_service_type"] == "LoadBalancer"
    })
    .await;
    assert_eq!(
        targets[0]["__meta_kubernetes_service_loadbalancer_ip"],
        "203.0.113.7"
    );
    assert_eq!(
        targets[0]["__meta_kubernetes_service_cluster_ip"],
        "10.96.0.10"
    );

    // An ExternalName service has its external name instead of a cluster IP.
    server.apply(
        service(
            "db",
            ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some("db.example.com".into()),
                ports: Some(vec![service_port(None, 5432, Some("TCP"))]),
                ..ServiceSpec::default()
            },
        ),
        true,
    );
    let targets = wait_targets(&mut rx, "services", |t| t.len() == 2).await;
    assert_eq!(targets[0]["__address__"], "db.default.svc:5432");
    assert_eq!(
        targets[0]["__meta_kubernetes_service_external_name"],
        "db.example.com"
    );
    // Empty values (the port's name) leave no label, as in Prometheus.
    assert!(!targets[0].contains_key("__meta_kubernetes_service_port_name"));
    assert!(!targets[0].contains_key("__meta_kubernetes_service_cluster_ip"));

    server.delete::<Service>("web", true);
    wait_targets(&mut rx, "services", |t| {
        addresses_of(t) == ["db.default.svc:5432"]
    })
    .await;
    manager.stop();
}

fn web_pod(labels: &[(&str, &str)]) -> Pod {
    let mut metadata = meta("web-1", Some("default"), labels);
    metadata.uid = Some("uid-1".into());
    metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "web-7d4".into(),
        uid: "rs-uid".into(),
        controller: Some(true),
        ..OwnerReference::default()
    }]);
    let port = |name: &str, number: i32| ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    };
    Pod {
        metadata,
        spec: Some(PodSpec {
            node_name: Some("n1".into()),
            containers: vec![Container {
                name: "app".into(),
                image: Some("web:1".into()),
                ports: Some(vec![port("http", 8080), port("metrics", 9100)]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some("10.2.0.5".into()),
            host_ip: Some("192.168.1.10".into()),
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

fn web_slice(ready: bool) -> EndpointSlice {
    EndpointSlice {
        metadata: meta(
            "web-abc",
            Some("default"),
            &[("kubernetes.io/service-name", "web")],
        ),
        address_type: "IPv4".into(),
        endpoints: vec![Endpoint {
            addresses: vec!["10.2.0.5".into()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(true),
                terminating: Some(false),
            }),
            node_name: Some("n1".into()),
            zone: Some("z1".into()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web-1".into()),
                namespace: Some("default".into()),
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        }],
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            ..EndpointPort::default()
        }]),
    }
}

#[tokio::test]
async fn endpointslice_role_follows_slices_services_and_pods() {
    let (server, url) = start_fake_api_server().await;
    server.apply(
        service(
            "web",
            ServiceSpec {
                cluster_ip: Some("10.96.0.20".into()),
                ports: Some(vec![service_port(Some("http"), 80, Some("TCP"))]),
                ..ServiceSpec::default()
            },
        ),
        true,
    );
    server.apply(web_pod(&[("app", "web")]), true);
    server.apply(web_slice(true), true);
    let (mut manager, mut rx, _) = start_discovery(&format!(
        "job_name: slices\nkubernetes_sd_configs:\n  - role: endpointslice\n    api_server: {url}\n"
    ));

    let group = [
        ("__meta_kubernetes_namespace", "default"),
        ("__meta_kubernetes_endpointslice_name", "web-abc"),
        ("__meta_kubernetes_endpointslice_address_type", "IPv4"),
        (
            "__meta_kubernetes_endpointslice_label_kubernetes_io_service_name",
            "web",
        ),
        (
            "__meta_kubernetes_endpointslice_labelpresent_kubernetes_io_service_name",
            "true",
        ),
        ("__meta_kubernetes_service_name", "web"),
        ("__meta_kubernetes_service_label_app", "web"),
        ("__meta_kubernetes_service_labelpresent_app", "true"),
        (
            "__meta_kubernetes_service_annotation_prometheus_io_scrape",
            "true",
        ),
        (
            "__meta_kubernetes_service_annotationpresent_prometheus_io_scrape",
            "true",
        ),
    ];
    let pod = [
        ("__meta_kubernetes_pod_name", "web-1"),
        ("__meta_kubernetes_pod_ip", "10.2.0.5"),
        ("__meta_kubernetes_pod_ready", "true"),
        ("__meta_kubernetes_pod_phase", "Running"),
        ("__meta_kubernetes_pod_node_name", "n1"),
        ("__meta_kubernetes_pod_host_ip", "192.168.1.10"),
        ("__meta_kubernetes_pod_uid", "uid-1"),
        ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
        ("__meta_kubernetes_pod_controller_name", "web-7d4"),
        ("__meta_kubernetes_pod_label_app", "web"),
        ("__meta_kubernetes_pod_labelpresent_app", "true"),
    ];
    let container = |port_name: &str, port: &str| {
        label_map(&[
            ("__meta_kubernetes_pod_container_name", "app"),
            ("__meta_kubernetes_pod_container_image", "web:1"),
            ("__meta_kubernetes_pod_container_port_name", port_name),
            ("__meta_kubernetes_pod_container_port_number", port),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
        ])
    };
    let mut endpoint = label_map(&group);
    endpoint.extend(label_map(&pod));
    endpoint.extend(container("http", "8080"));
    endpoint.extend(label_map(&[
        ("__address__", "10.2.0.5:8080"),
        ("__meta_kubernetes_endpointslice_port", "8080"),
        ("__meta_kubernetes_endpointslice_port_name", "http"),
        ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_ready",
            "true",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_serving",
            "true",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_conditions_terminating",
            "false",
        ),
        ("__meta_kubernetes_endpointslice_endpoint_node_name", "n1"),
        ("__meta_kubernetes_endpointslice_endpoint_zone", "z1"),
        ("__meta_kubernetes_endpointslice_address_target_kind", "Pod"),
        (
            "__meta_kubernetes_endpointslice_address_target_name",
            "web-1",
        ),
    ]));
    // The pod's container port no slice port covers gets a target too.
    let mut uncovered = label_map(&group);
    uncovered.extend(label_map(&pod));
    uncovered.extend(container("metrics", "9100"));
    uncovered.insert("__address__".into(), "10.2.0.5:9100".into());
    // The three watches list independently: wait for the complete picture.
    let expected = [endpoint, uncovered];
    wait_targets(&mut rx, "slices", |t| t == expected).await;

    // The endpoint stops being ready.
    server.apply(web_slice(false), true);
    let targets = wait_targets(&mut rx, "slices", |t| {
        t.first().is_some_and(|t| {
            t.get("__meta_kubernetes_endpointslice_endpoint_conditions_ready")
                == Some(&"false".to_string())
        })
    })
    .await;
    assert_eq!(targets.len(), 2);

    // A pod change reaches the slice's targets.
    server.apply(web_pod(&[("app", "web"), ("version", "v2")]), true);
    let targets = wait_targets(&mut rx, "slices", |t| {
        t.len() == 2
            && t.iter()
                .all(|t| t.get("__meta_kubernetes_pod_label_version") == Some(&"v2".into()))
    })
    .await;
    assert_eq!(
        targets[0]["__meta_kubernetes_pod_labelpresent_version"],
        "true"
    );

    // The service goes: its labels leave the slice's targets.
    server.delete::<Service>("web", true);
    wait_targets(&mut rx, "slices", |t| {
        t.len() == 2
            && t.iter()
                .all(|t| !t.contains_key("__meta_kubernetes_service_name"))
    })
    .await;

    // The slice goes: no targets.
    server.delete::<EndpointSlice>("web-abc", true);
    wait_targets(&mut rx, "slices", <[TargetLabels]>::is_empty).await;
    manager.stop();
}
