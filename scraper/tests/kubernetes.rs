#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Kubernetes discovery against an in-process fake API server on 127.0.0.1
//! that speaks the real list and watch wire format: JSON of k8s-openapi
//! objects, chunked newline-delimited watch events, bookmarks, dropped
//! connections (resumed from the last resource version) and `410 Gone`
//! (which forces a relist that must notice objects removed meanwhile);
//! and a `kubernetes_sd_configs` section reaching it through the
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
use axum::routing::get;
use common::{Exporter, Exposed, MemStorage};
use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use scraper::config::{ScrapeConfig, ScrapeDefaults};
use scraper::discovery::{Manager, TargetSets};
use scraper::manager::ScrapeManager;
use scraper::target::targets_from_group;
use tokio::sync::{broadcast, watch};

/// What the fake API server sends to open watches.
#[derive(Clone, Debug)]
enum Push {
    Line(String),
    /// Ends every open watch (an API server restart or a timeout).
    Close,
}

#[derive(Default)]
struct Cluster {
    resource_version: u64,
    pods: BTreeMap<String, Pod>,
    /// Watch events by resource version, for resuming watches.
    log: Vec<(u64, String)>,
    /// Watches resuming from before this version get 410 Gone.
    expired_before: u64,
    n_lists: usize,
    n_watches: usize,
    /// Namespace (empty for the cluster-wide path) and label selector of
    /// every request.
    requests: Vec<(String, String)>,
}

struct FakeApiServer {
    cluster: Mutex<Cluster>,
    push: broadcast::Sender<Push>,
}

fn pod(name: &str, ip: &str) -> Pod {
    pod_on(name, ip, 8080)
}

fn pod_on(name: &str, ip: &str, port: i32) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("default".to_string()),
            labels: Some([("app".to_string(), name.to_string())].into()),
            ..ObjectMeta::default()
        },
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
    /// Adds or changes a pod; `announce` sends the watch event (otherwise the
    /// change happens "while the watch is down").
    fn apply(&self, mut pod: Pod, announce: bool) {
        let mut cluster = self.cluster.lock().unwrap();
        cluster.resource_version += 1;
        let rv = cluster.resource_version;
        pod.metadata.resource_version = Some(rv.to_string());
        let name = pod.metadata.name.clone().unwrap();
        let kind = if cluster.pods.contains_key(&name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let line = event_line(kind, &serde_json::to_value(&pod).unwrap());
        cluster.pods.insert(name, pod);
        if announce {
            cluster.log.push((rv, line.clone()));
            let _ = self.push.send(Push::Line(line));
        }
    }

    fn delete(&self, name: &str, announce: bool) {
        let mut cluster = self.cluster.lock().unwrap();
        cluster.resource_version += 1;
        let rv = cluster.resource_version;
        if let Some(mut pod) = cluster.pods.remove(name) {
            pod.metadata.resource_version = Some(rv.to_string());
            if announce {
                let line = event_line("DELETED", &serde_json::to_value(&pod).unwrap());
                cluster.log.push((rv, line.clone()));
                let _ = self.push.send(Push::Line(line));
            }
        }
    }

    fn bookmark(&self) {
        let cluster = self.cluster.lock().unwrap();
        let object = serde_json::json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"resourceVersion": cluster.resource_version.to_string()}
        });
        let _ = self.push.send(Push::Line(event_line("BOOKMARK", &object)));
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
            .send(Push::Line(gone_line(cluster.resource_version)));
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

async fn namespaced_pods_handler(
    State(server): State<Arc<FakeApiServer>>,
    Path(namespace): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    answer_pods(server, namespace, params)
}

async fn pods_handler(
    State(server): State<Arc<FakeApiServer>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    answer_pods(server, String::new(), params)
}

/// Lists or watches pods (every pod: the fake ignores namespaces and
/// selectors but records them).
fn answer_pods(
    server: Arc<FakeApiServer>,
    namespace: String,
    params: BTreeMap<String, String>,
) -> Response {
    server.cluster.lock().unwrap().requests.push((
        namespace,
        params.get("labelSelector").cloned().unwrap_or_default(),
    ));
    let watching = matches!(params.get("watch").map(String::as_str), Some("true" | "1"));
    if !watching {
        let mut cluster = server.cluster.lock().unwrap();
        cluster.n_lists += 1;
        let list = serde_json::json!({
            "kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": cluster.resource_version.to_string()},
            "items": cluster.pods.values().collect::<Vec<_>>(),
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
            replay.push_back(Push::Line(gone_line(cluster.resource_version)));
            replay.push_back(Push::Close);
        } else {
            for (rv, line) in &cluster.log {
                if *rv > since {
                    replay.push_back(Push::Line(line.clone()));
                }
            }
        }
    }
    let stream = futures::stream::unfold(
        (replay, live, false),
        |(mut replay, mut live, done)| async move {
            if done {
                return None;
            }
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
                Push::Line(line) => Some((
                    Ok::<_, Infallible>(Bytes::from(line)),
                    (replay, live, false),
                )),
                Push::Close => None,
            }
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn start_fake_api_server() -> (Arc<FakeApiServer>, String) {
    let (push, _) = broadcast::channel(1024);
    let server = Arc::new(FakeApiServer {
        cluster: Mutex::new(Cluster::default()),
        push,
    });
    let app = Router::new()
        .route("/api/v1/pods", get(pods_handler))
        .route(
            "/api/v1/namespaces/{namespace}/pods",
            get(namespaced_pods_handler),
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
    server.bookmark();
    server.apply(pod("b", "10.0.0.3"), true);
    wait_for(&mut rx, |a| a == ["10.0.0.1:8080", "10.0.0.3:8080"]).await;

    // The connection drops; the watch resumes from its last version and
    // replays what happened meanwhile.
    server.drop_watches();
    server.delete("b", true);
    wait_for(&mut rx, |a| a == ["10.0.0.1:8080"]).await;

    // History is compacted while changes happen unannounced: 410 Gone forces
    // a relist, which must drop "a" and find "c".
    server.delete("a", false);
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
            .all(|r| *r == ("default".to_string(), "app=web".to_string())),
        "{requests:?}"
    );

    // The pod goes away: its series are marked stale.
    server.delete("web", true);
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
