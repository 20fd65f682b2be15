#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Kubernetes discovery against an in-process fake API server on 127.0.0.1
//! that speaks the real list and watch wire format: JSON of k8s-openapi
//! objects, chunked newline-delimited watch events, bookmarks, dropped
//! connections (resumed from the last resource version) and `410 Gone`
//! (which forces a relist that must notice objects removed meanwhile).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use scraper::config::{ScrapeConfig, ScrapeDefaults};
use scraper::discovery::{Manager, TargetSets};
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
}

struct FakeApiServer {
    cluster: Mutex<Cluster>,
    push: broadcast::Sender<Push>,
}

fn pod(name: &str, ip: &str) -> Pod {
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
                    container_port: 8080,
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

async fn pods_handler(
    State(server): State<Arc<FakeApiServer>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
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
