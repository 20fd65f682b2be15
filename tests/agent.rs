#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Agent mode for real: `serve --agent` started in-process scrapes an
//! exporter on loopback and remote-writes to the real VictoriaMetrics; every
//! scraped sample arrives there (checked against what the exporter served),
//! while the agent itself answers queries with Prometheus Agent's error and
//! keeps only a WAL on disk.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use serde_json::Value;
use sextant::server::ServeOptions;
use sextant::server::agent::{AgentServer, AgentSettings};
use tokio::sync::oneshot;

#[path = "remote_peers/mod.rs"]
mod peers;
use peers::{VICTORIA_METRICS, installed, start_victoria_metrics, wait_for};

/// An exporter whose counter counts its scrapes: scrape n serves n.
async fn start_exporter() -> (String, Arc<AtomicU64>) {
    let scrapes = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(|State(scrapes): State<Arc<AtomicU64>>| async move {
                let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
                format!(
                    "# TYPE agent_test_scrapes_total counter\n\
                     agent_test_scrapes_total {n}\n\
                     # TYPE agent_test_info gauge\n\
                     agent_test_info{{version=\"1.2.3\"}} 1\n"
                )
            }),
        )
        .with_state(Arc::clone(&scrapes));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr.to_string(), scrapes)
}

fn write_config(dir: &Path, exporter: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("agent.yml");
    std::fs::write(
        &path,
        format!(
            "global: {{scrape_interval: 1s, external_labels: {{agent: a1}}}}\n\
             scrape_configs:\n\
             - job_name: exporter\n  static_configs: [{{targets: ['{exporter}']}}]\n\
             {extra}"
        ),
    )
    .unwrap();
    path
}

/// The values of one series from VictoriaMetrics' export API, in order.
async fn exported(base: &str, selector: &str) -> Vec<(i64, f64)> {
    reqwest::get(format!("{base}/internal/force_flush"))
        .await
        .unwrap();
    let body = reqwest::Client::new()
        .get(format!("{base}/api/v1/export"))
        .query(&[("match[]", selector)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut out = Vec::new();
    for line in body.lines().filter(|l| !l.is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let values = row["values"].as_array().unwrap();
        let timestamps = row["timestamps"].as_array().unwrap();
        out.extend(
            timestamps
                .iter()
                .zip(values)
                .map(|(t, v)| (t.as_i64().unwrap(), v.as_f64().unwrap())),
        );
    }
    out.sort_by_key(|s| s.0);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_scrapes_and_remote_writes_everything_to_victoria_metrics() {
    if !installed(VICTORIA_METRICS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vm = start_victoria_metrics(&dir.path().join("vm"), peers::free_port()).await;
    let (exporter, scrapes) = start_exporter().await;
    let config = write_config(
        dir.path(),
        &exporter,
        &format!(
            "remote_write:\n\
             - url: {}/api/v1/write\n  \
             queue_config: {{max_samples_per_send: 100, batch_send_deadline: 100ms, min_backoff: 10ms}}\n",
            vm.url
        ),
    );
    let mut options = ServeOptions::new("127.0.0.1:0");
    options.config_file = Some(config);
    options.storage_path = Some(dir.path().join("agent"));
    options.enable_lifecycle = true;
    let agent = AgentServer::start(options, AgentSettings::default())
        .await
        .unwrap();
    let base = format!("http://{}", agent.addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(agent.run_until(async {
        let _ = stopped.await;
    }));

    // Every scrape's counter value reaches VictoriaMetrics, with the
    // target's and the external labels.
    let selector = "agent_test_scrapes_total{job=\"exporter\",agent=\"a1\"}";
    let samples = wait_for(
        "five scrapes at VictoriaMetrics",
        Duration::from_secs(60),
        async || {
            let samples = exported(&vm.url, selector).await;
            (samples.len() >= 5).then_some(samples)
        },
    )
    .await;
    let values: Vec<f64> = samples.iter().map(|s| s.1).collect();
    let expected: Vec<f64> = (1..=values.len()).map(|n| n as f64).collect();
    assert_eq!(values, expected, "every scrape, in order, none lost");
    let up = exported(&vm.url, "up{job=\"exporter\"}").await;
    assert!(up.iter().all(|s| s.1 == 1.0) && !up.is_empty(), "{up:?}");

    // No local querying: Prometheus Agent's answer.
    let response = reqwest::get(format!("{base}/api/v1/query?query=up"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorType"], "execution");
    assert_eq!(body["error"], "unavailable with Sextant Agent");
    // Targets and status still answer.
    let targets: Value = reqwest::get(format!("{base}/api/v1/targets"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(targets["data"]["activeTargets"][0]["health"], "up");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sextant_agent_active_series"), "{metrics}");
    assert!(metrics.contains("sextant_remote_storage_samples_total"));

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(scrapes.load(Ordering::SeqCst) >= 5);
    // A WAL and nothing else: no blocks.
    let entries: Vec<String> = std::fs::read_dir(dir.path().join("agent"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(entries.contains(&"wal".to_string()), "{entries:?}");
    assert!(
        entries.iter().all(|e| e == "wal" || e == "lock"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn the_agent_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "127.0.0.1:1", "rule_files: [rules.yml]\n");
    let mut options = ServeOptions::new("127.0.0.1:0");
    options.config_file = Some(config);
    options.storage_path = Some(dir.path().join("agent"));
    let error = AgentServer::start(options, AgentSettings::default())
        .await
        .err()
        .expect("rule_files must be refused");
    assert_eq!(
        format!("{error:#}"),
        "field rule_files is not allowed in agent mode"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_and_removes_remote_write_endpoints() {
    if !installed(VICTORIA_METRICS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vm = start_victoria_metrics(&dir.path().join("vm"), peers::free_port()).await;
    let (exporter, _) = start_exporter().await;
    let config = write_config(dir.path(), &exporter, "");
    let mut options = ServeOptions::new("127.0.0.1:0");
    options.config_file = Some(config);
    options.storage_path = Some(dir.path().join("agent"));
    options.enable_lifecycle = true;
    let agent = AgentServer::start(options, AgentSettings::default())
        .await
        .unwrap();
    let base = format!("http://{}", agent.addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(agent.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let reload = async || {
        let response = client
            .post(format!("{base}/-/reload"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    };
    let queue_metric = async || {
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics.contains(&format!("url=\"{}/api/v1/write\"", vm.url))
    };
    assert!(!queue_metric().await);

    write_config(
        dir.path(),
        &exporter,
        &format!(
            "remote_write:\n\
             - url: {}/api/v1/write\n  \
             queue_config: {{max_samples_per_send: 100, batch_send_deadline: 100ms, min_backoff: 10ms}}\n",
            vm.url
        ),
    );
    reload().await;
    assert!(queue_metric().await);
    let selector = "agent_test_scrapes_total{job=\"exporter\"}";
    let samples = wait_for(
        "samples after the reload",
        Duration::from_secs(60),
        async || {
            let samples = exported(&vm.url, selector).await;
            (samples.len() >= 3).then_some(samples)
        },
    )
    .await;
    // From the reload on, every scrape: consecutive counter values.
    for pair in samples.windows(2) {
        assert_eq!(pair[1].1, pair[0].1 + 1.0, "{samples:?}");
    }

    write_config(dir.path(), &exporter, "");
    reload().await;
    assert!(!queue_metric().await, "the removed queue is gone");

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
