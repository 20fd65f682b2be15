#![allow(clippy::unwrap_used, clippy::expect_used)]
//! File and HTTP discovery against real files and a real loopback HTTP
//! server, and the discovery manager publishing target groups per job.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use scraper::config::{HttpSdConfig, ScrapeConfig, ScrapeDefaults};
use scraper::discovery::http::HttpDiscoverer;
use scraper::discovery::{Manager, TargetSets};
use scraper::target::targets_from_group;
use tokio::sync::watch;

/// Serves `/sd` from a list of canned answers, one per request (the last
/// repeats), and records the headers of the last request.
struct SdServer {
    url: String,
    last_headers: Arc<parking_lot_free::Slot<HeaderMap>>,
}

mod parking_lot_free {
    use std::sync::Mutex;

    /// A value shared with the server task.
    #[derive(Default)]
    pub struct Slot<T>(Mutex<Option<T>>);

    impl<T: Clone> Slot<T> {
        pub fn set(&self, value: T) {
            *self.0.lock().unwrap() = Some(value);
        }
        pub fn get(&self) -> Option<T> {
            self.0.lock().unwrap().clone()
        }
    }
}

async fn serve(answers: Vec<(StatusCode, &'static str, &'static str)>) -> SdServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sd", listener.local_addr().unwrap());
    let last_headers = Arc::new(parking_lot_free::Slot::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(answers);
    let seen = last_headers.clone();
    let app = Router::new().route(
        "/sd",
        get(move |headers: HeaderMap| {
            let calls = calls.clone();
            let answers = answers.clone();
            let seen = seen.clone();
            async move {
                seen.set(headers);
                let i = calls.fetch_add(1, Ordering::SeqCst).min(answers.len() - 1);
                let (status, content_type, body) = answers[i];
                (status, [(header::CONTENT_TYPE, content_type)], body)
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    SdServer { url, last_headers }
}

fn http_sd(yaml: &str) -> HttpSdConfig {
    serde_yaml::from_str(yaml).unwrap()
}

fn summary(groups: &[scraper::discovery::TargetGroup]) -> Vec<String> {
    groups
        .iter()
        .map(|g| {
            let targets: Vec<&str> = g
                .targets
                .iter()
                .filter_map(|t| t.get("__address__"))
                .collect();
            let index = g.source.rsplit(':').next().unwrap_or("");
            format!("{index} {targets:?} {}", g.labels)
        })
        .collect()
}

const JSON: &str = "application/json";

#[tokio::test]
async fn http_discovery_follows_the_endpoint() {
    let server = serve(vec![
        (
            StatusCode::OK,
            JSON,
            r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod"}}, {"targets": ["c:3"]}]"#,
        ),
        (
            StatusCode::OK,
            "application/json; charset=utf-8",
            r#"[{"targets": ["a:1"]}]"#,
        ),
        (StatusCode::INTERNAL_SERVER_ERROR, JSON, "oops"),
        (StatusCode::OK, "text/plain", "[]"),
        (StatusCode::OK, JSON, r#"{"targets": []}"#),
    ])
    .await;
    let config = http_sd(&format!(
        "{{url: '{}', refresh_interval: 15s, authorization: {{credentials: s3cret}}}}",
        server.url
    ));
    let mut sd = HttpDiscoverer::new(config).unwrap();

    let groups = sd.refresh().await.unwrap();
    let url_label = format!("__meta_url=\"{}\"", server.url);
    assert_eq!(
        summary(&groups),
        [
            format!(r#"0 ["a:1", "b:2"] {{{url_label}, env="prod"}}"#),
            format!(r#"1 ["c:3"] {{{url_label}}}"#),
        ]
    );
    assert_eq!(groups[0].source, format!("{}:0", server.url));
    let headers = server.last_headers.get().unwrap();
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(headers["x-prometheus-refresh-interval-seconds"], "15");

    // Fewer groups: the missing source is reported without targets.
    let groups = sd.refresh().await.unwrap();
    assert_eq!(
        summary(&groups),
        [
            format!(r#"0 ["a:1"] {{{url_label}}}"#),
            "1 [] {}".to_string()
        ]
    );

    let err = sd.refresh().await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!("{}: server returned HTTP status 500", server.url)
    );
    let err = sd.refresh().await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(r#"{}: unsupported content type "text/plain""#, server.url)
    );
    let err = sd.refresh().await.unwrap_err().to_string();
    assert!(
        err.contains("invalid type: map, expected a sequence"),
        "{err}"
    );
}

fn scrape_configs(yaml: &str) -> Vec<ScrapeConfig> {
    let mut configs: Vec<ScrapeConfig> = serde_yaml::from_str(yaml).unwrap();
    for config in &mut configs {
        config.apply_defaults(&ScrapeDefaults::default()).unwrap();
    }
    configs
}

/// Waits until the published snapshot satisfies `done`.
async fn wait_for(
    rx: &mut watch::Receiver<Arc<TargetSets>>,
    done: impl Fn(&TargetSets) -> bool,
) -> Arc<TargetSets> {
    tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            let current = rx.borrow_and_update().clone();
            if done(&current) {
                return current;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("the expected target groups were published")
}

fn addresses(sets: &TargetSets, job: &str) -> Vec<String> {
    let mut out: Vec<String> = sets
        .get(job)
        .map(|groups| {
            groups
                .iter()
                .flat_map(|g| g.targets.iter())
                .filter_map(|t| t.get("__address__").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test]
async fn manager_publishes_static_file_and_http_targets_and_applies_reloads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.json"),
        r#"[{"targets": ["file-a:1", "file-b:1"], "labels": {"team": "x"}}]"#,
    )
    .unwrap();
    let server = serve(vec![(
        StatusCode::OK,
        JSON,
        r#"[{"targets": ["http-a:1"]}]"#,
    )])
    .await;
    let yaml = format!(
        r#"
- job_name: static
  static_configs: [{{targets: ['s1:1', 's2:1']}}]
- job_name: files
  file_sd_configs: [{{files: ['{dir}/*.json']}}]
  relabel_configs:
    - {{source_labels: [__address__], regex: 'file-b:1', action: drop}}
- job_name: http
  http_sd_configs: [{{url: '{url}'}}]
"#,
        dir = dir.path().display(),
        url = server.url
    );
    let configs = scrape_configs(&yaml);
    let mut manager = Manager::new();
    let mut rx = manager.subscribe();
    manager.apply_config(&configs);
    // Static targets are there at once.
    assert_eq!(
        addresses(&manager.target_sets(), "static"),
        ["s1:1", "s2:1"]
    );

    let sets = wait_for(&mut rx, |s| {
        !addresses(s, "files").is_empty() && !addresses(s, "http").is_empty()
    })
    .await;
    assert_eq!(addresses(&sets, "files"), ["file-a:1", "file-b:1"]);
    assert_eq!(addresses(&sets, "http"), ["http-a:1"]);

    // The consumer builds targets: relabeling drops file-b.
    let built = targets_from_group(&sets["files"][0], &configs[1]);
    assert_eq!(built.active.len(), 1);
    assert_eq!(built.active[0].labels().get("team"), Some("x"));
    assert_eq!(built.dropped.len(), 1);

    // Reload: the static job changes, the http job goes away, files stays.
    let reloaded = scrape_configs(&format!(
        r#"
- job_name: static
  static_configs: [{{targets: ['s3:1']}}]
- job_name: files
  file_sd_configs: [{{files: ['{dir}/*.json']}}]
  relabel_configs:
    - {{source_labels: [__address__], regex: 'file-b:1', action: drop}}
"#,
        dir = dir.path().display()
    ));
    manager.apply_config(&reloaded);
    let sets = manager.target_sets();
    assert_eq!(addresses(&sets, "static"), ["s3:1"]);
    // The unchanged file mechanism kept running and kept its groups.
    assert_eq!(addresses(&sets, "files"), ["file-a:1", "file-b:1"]);
    assert!(!sets.contains_key("http"));
    manager.stop();
}

#[tokio::test(start_paused = true)]
async fn file_discovery_rereads_changed_files_every_refresh_interval() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.yml");
    std::fs::write(&file, "- targets: ['a:1']\n").unwrap();
    let configs = scrape_configs(&format!(
        "[{{job_name: f, file_sd_configs: [{{files: ['{}'], refresh_interval: 30s}}]}}]",
        file.display()
    ));
    let mut manager = Manager::new();
    let mut rx = manager.subscribe();
    manager.apply_config(&configs);
    let sets = wait_for(&mut rx, |s| !addresses(s, "f").is_empty()).await;
    assert_eq!(addresses(&sets, "f"), ["a:1"]);

    std::fs::write(&file, "- targets: ['a:1', 'b:2']\n").unwrap();
    // Paused time: the runtime advances to the next refresh by itself.
    let sets = wait_for(&mut rx, |s| addresses(s, "f").len() == 2).await;
    assert_eq!(addresses(&sets, "f"), ["a:1", "b:2"]);

    std::fs::remove_file(&file).unwrap();
    let sets = wait_for(&mut rx, |s| addresses(s, "f").is_empty()).await;
    assert!(sets["f"].is_empty());
}
