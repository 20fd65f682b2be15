#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real Prometheus remote-writes its own scrapes into Sextant's
//! receiver (`sextant serve --web.enable-remote-write-receiver`); Sextant's
//! stored samples must then equal Prometheus's own for every series of the
//! job, compared through both servers' query APIs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sextant::server::{ServeOptions, Server};
use tokio::sync::oneshot;

#[path = "remote_peers/mod.rs"]
mod peers;
use peers::{PROMETHEUS, installed, instant_query, scalar_query, start_prometheus, wait_for};

/// `data.result` of a matrix keyed by the series' labels.
fn by_series(result: Vec<Value>) -> BTreeMap<String, Value> {
    result
        .into_iter()
        .map(|series| (series["metric"].to_string(), series["values"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_into_sextant_unchanged() {
    if !installed(PROMETHEUS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServeOptions::new("127.0.0.1:0");
    options.storage_path = Some(dir.path().join("sextant"));
    options.enable_remote_write_receiver = true;
    let server = Server::start(options).await.unwrap();
    let sextant = format!("http://{}", server.addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    // One shard sends in WAL order, so every sample older than the highest
    // timestamp sent has arrived.
    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n\
         scrape_configs:\n  - job_name: prometheus\n    static_configs: [{{targets: ['127.0.0.1:PORT']}}]\n\
         remote_write:\n  - url: {sextant}/api/v1/write\n    queue_config: {{min_shards: 1, max_shards: 1, max_samples_per_send: 200, batch_send_deadline: 1s}}\n"
    );
    // Prometheus scrapes itself on the port it is given.
    let port = peers::free_port();
    let config = config.replace("PORT", &port.to_string());
    let prometheus = start_prometheus(&prometheus_dir, &config, port).await;

    // Enough scrapes delivered.
    let sent_s = wait_for(
        "five scrapes to arrive",
        Duration::from_secs(90),
        async || {
            let now = peers::now_s();
            let arrived = scalar_query(&sextant, "count_over_time(up[1h])", now).await?;
            if arrived < 5.0 {
                return None;
            }
            scalar_query(
                &prometheus.url,
                "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                now,
            )
            .await
        },
    )
    .await;

    // Every sample strictly before the highest sent timestamp and after the
    // first scrape Sextant holds (Prometheus sends what it scrapes after its
    // start); both ends open, so Prometheus 2's closed ranges agree.
    let up = instant_query(&sextant, "up[1h]", sent_s).await;
    let first_s = up[0]["values"][0][0].as_f64().unwrap();
    let at = sent_s - 0.001;
    let window_ms = ((at - first_s) * 1000.0).round() as i64 - 1;
    assert!(window_ms > 2000, "window {window_ms} ms");
    let query = format!("{{job=\"prometheus\"}}[{window_ms}ms]");
    let ours = by_series(instant_query(&sextant, &query, at).await);
    let theirs = by_series(instant_query(&prometheus.url, &query, at).await);
    assert!(theirs.len() > 100, "only {} series", theirs.len());
    assert_eq!(ours.len(), theirs.len(), "series counts differ");
    for (series, values) in &theirs {
        assert_eq!(ours.get(series), Some(values), "series {series}");
    }

    drop(prometheus);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}
