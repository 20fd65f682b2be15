#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Sextant's remote write sender against the real receivers: samples
//! committed to a `Db` travel from its WAL to VictoriaMetrics and to
//! Prometheus (`--web.enable-remote-write-receiver`), and every one
//! arrives exactly, checked by querying the peers. The outage test stops
//! VictoriaMetrics mid-run and restarts it: nothing is lost and the lag
//! closes. `SEXTANT_OUTAGE_SECS` lengthens the outage for a manual run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use sextant::config::RemoteWriteConfig;
use sextant::metrics::Registry;
use sextant::remote::write::{QueueStats, RemoteWrite};
use tsdb::db::{Db, DbOptions};
use tsdb::model::{Labels, Sample};
use tsdb::storage::Appendable;

#[path = "remote_peers/mod.rs"]
mod peers;
use peers::{
    PROMETHEUS, VICTORIA_METRICS, installed, start_prometheus, start_victoria_metrics, wait_for,
};

const SERIES: usize = 20;
/// Ten minutes ago, on a whole second, so every peer accepts the samples.
fn t0_ms() -> i64 {
    (peers::now_s() as i64 - 600) * 1000
}

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs(&[
        ("__name__", "rw_test_value"),
        ("series", &format!("{i:02}")),
    ])
}

/// A value that is exact in any decimal formatting: the peers answer
/// strings, compared with ours.
fn value(i: usize, step: i64) -> f64 {
    (i as f64) * 1000.0 + step as f64 * 0.25
}

/// Commits one scrape-like batch per step: every series at `t0 + step s`,
/// plus one series the write relabeling drops.
fn append_steps(db: &Db, t0: i64, steps: std::ops::Range<i64>) {
    let dropped = Labels::from_pairs(&[("__name__", "rw_test_dropped")]);
    for step in steps {
        let mut appender = db.appender();
        let t = t0 + step * 1000;
        for i in 0..SERIES {
            appender
                .append(None, &series_labels(i), Sample::new(t, value(i, step)))
                .unwrap();
        }
        appender
            .append(None, &dropped, Sample::new(t, 1.0))
            .unwrap();
        appender.commit().unwrap();
    }
}

fn remote_write_config(url: &str, extra: &str) -> RemoteWriteConfig {
    serde_yaml::from_str(&format!(
        "url: {url}\n\
         write_relabel_configs: [{{source_labels: [__name__], regex: rw_test_dropped, action: drop}}]\n\
         queue_config: {{max_samples_per_send: 100, batch_send_deadline: 100ms, min_backoff: 10ms, max_backoff: 200ms{extra}}}\n"
    ))
    .unwrap()
}

fn open_db(dir: &Path) -> Arc<Db> {
    Arc::new(Db::open(dir, DbOptions::default()).unwrap())
}

/// Waits until the queue has sent everything it read up to `last_t`.
async fn wait_sent(stats: &QueueStats, last_t: i64, samples: u64) {
    wait_for(
        "the queue to catch up",
        Duration::from_secs(120),
        async || {
            let caught_up = stats.highest_sent_ms.load(Ordering::Relaxed) >= last_t
                && stats.pending() == 0
                && stats.samples_sent.load(Ordering::Relaxed) >= samples;
            caught_up.then_some(())
        },
    )
    .await;
}

/// Raw samples of `rw_test_value` from VictoriaMetrics' export API, by
/// series label.
async fn victoria_export(base: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    let flush = reqwest::get(format!("{base}/internal/force_flush"))
        .await
        .unwrap();
    assert!(flush.status().is_success());
    let body = reqwest::Client::new()
        .get(format!("{base}/api/v1/export"))
        .query(&[("match[]", "{__name__=~\"rw_test_.*\"}")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for line in body.lines().filter(|l| !l.is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["metric"]["__name__"], "rw_test_value", "{line}");
        let series = row["metric"]["series"].as_str().unwrap().to_string();
        let values = row["values"].as_array().unwrap();
        let timestamps = row["timestamps"].as_array().unwrap();
        let mut samples: Vec<(i64, f64)> = timestamps
            .iter()
            .zip(values)
            .map(|(t, v)| (t.as_i64().unwrap(), v.as_f64().unwrap()))
            .collect();
        samples.sort_by_key(|s| s.0);
        out.insert(series, samples);
    }
    out
}

/// Raw samples of `rw_test_value` from Prometheus's query API.
async fn prometheus_samples(base: &str, t0: i64, last_t: i64) -> BTreeMap<String, Vec<(i64, f64)>> {
    let window_ms = last_t - t0 + 1;
    let query = format!("{{__name__=~\"rw_test_.*\"}}[{window_ms}ms]");
    let result = peers::instant_query(base, &query, last_t as f64 / 1000.0).await;
    result
        .into_iter()
        .map(|row| {
            assert_eq!(row["metric"]["__name__"], "rw_test_value");
            let series = row["metric"]["series"].as_str().unwrap().to_string();
            let samples = row["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                    (t, p[1].as_str().unwrap().parse().unwrap())
                })
                .collect();
            (series, samples)
        })
        .collect()
}

fn expected(t0: i64, steps: std::ops::Range<i64>) -> BTreeMap<String, Vec<(i64, f64)>> {
    (0..SERIES)
        .map(|i| {
            let samples = steps
                .clone()
                .map(|s| (t0 + s * 1000, value(i, s)))
                .collect();
            (format!("{i:02}"), samples)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_arrives_at_victoria_metrics_and_prometheus() {
    if !installed(VICTORIA_METRICS) || !installed(PROMETHEUS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vm_data = dir.path().join("vm");
    let vm = start_victoria_metrics(&vm_data, peers::free_port()).await;
    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let prometheus = start_prometheus(&prometheus_dir, "global: {}\n", peers::free_port()).await;

    let db = open_db(&dir.path().join("sextant"));
    let configs = vec![
        remote_write_config(&format!("{}/api/v1/write", vm.url), ""),
        remote_write_config(
            &format!("{}/api/v1/write", prometheus.url),
            ", max_shards: 3",
        ),
    ];
    let registry = Registry::new();
    let wal_dir = db.head().wal().unwrap().dir().to_path_buf();
    let remote = RemoteWrite::start(&wal_dir, &configs, &BTreeMap::new(), &registry).unwrap();

    let t0 = t0_ms();
    let steps = 0..300;
    append_steps(&db, t0, steps.clone());
    let last_t = t0 + (steps.end - 1) * 1000;
    let total = (SERIES as u64) * steps.end as u64;
    for (_, stats) in remote.queues() {
        wait_sent(stats, last_t, total).await;
        assert_eq!(stats.samples_failed.load(Ordering::Relaxed), 0);
        assert_eq!(
            stats.samples_dropped.load(Ordering::Relaxed),
            steps.end as u64
        );
        assert_eq!(stats.lag_ms(), 0);
    }
    let want = expected(t0, steps);
    assert_eq!(victoria_export(&vm.url).await, want, "VictoriaMetrics");
    assert_eq!(
        prometheus_samples(&prometheus.url, t0, last_t).await,
        want,
        "Prometheus"
    );

    let metrics = registry.render();
    assert!(
        metrics.contains("sextant_remote_storage_samples_total{remote_name="),
        "{metrics}"
    );
    remote.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_outage_loses_nothing_and_the_lag_closes() {
    if !installed(VICTORIA_METRICS) {
        return;
    }
    let outage = std::env::var("SEXTANT_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2u64);
    let dir = tempfile::tempdir().unwrap();
    let vm_data = dir.path().join("vm");
    let port = peers::free_port();
    let mut vm = start_victoria_metrics(&vm_data, port).await;

    let db = open_db(&dir.path().join("sextant"));
    let configs = vec![remote_write_config(&format!("{}/api/v1/write", vm.url), "")];
    let registry = Registry::new();
    let wal_dir = db.head().wal().unwrap().dir().to_path_buf();
    let remote = RemoteWrite::start(&wal_dir, &configs, &BTreeMap::new(), &registry).unwrap();
    let stats = Arc::clone(&remote.queues()[0].1);

    let t0 = t0_ms();
    append_steps(&db, t0, 0..100);
    wait_sent(&stats, t0 + 99_000, SERIES as u64 * 100).await;

    // The receiver goes away; samples keep coming.
    vm.stop();
    append_steps(&db, t0, 100..200);
    wait_for(
        "the sender to notice the outage",
        Duration::from_secs(60),
        async || (stats.samples_retried.load(Ordering::Relaxed) > 0).then_some(()),
    )
    .await;
    append_steps(&db, t0, 200..300);
    // Outage time: waiting on the clock is the point here.
    tokio::time::sleep(Duration::from_secs(outage)).await;
    let lag = stats.lag_ms();
    assert!(lag >= 100_000, "lag during the outage: {lag} ms");
    drop(vm);

    let vm = start_victoria_metrics(&vm_data, port).await;
    wait_sent(&stats, t0 + 299_000, SERIES as u64 * 300).await;
    assert_eq!(stats.lag_ms(), 0, "the lag closed");
    assert_eq!(stats.samples_failed.load(Ordering::Relaxed), 0);
    assert_eq!(victoria_export(&vm.url).await, expected(t0, 0..300));
    remote.stop().await;
}

/// `sextant serve` with a `remote_write` section forwards what enters its
/// storage (here through its own receiver) to VictoriaMetrics, and reports
/// the queue on `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sextant_serve_forwards_its_samples() {
    use sextant::remote::proto;
    use sextant::server::{ServeOptions, Server};

    if !installed(VICTORIA_METRICS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vm = start_victoria_metrics(&dir.path().join("vm"), peers::free_port()).await;
    let config = dir.path().join("sextant.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{external_labels: {{replica: r1}}}}\n\
             remote_write:\n  - url: {}/api/v1/write\n    name: vm\n    queue_config: {{batch_send_deadline: 100ms}}\n",
            vm.url
        ),
    )
    .unwrap();
    let mut options = ServeOptions::new("127.0.0.1:0");
    options.config_file = Some(config);
    options.storage_path = Some(dir.path().join("data"));
    options.enable_remote_write_receiver = true;
    let server = Server::start(options).await.unwrap();
    let base = format!("http://{}", server.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    let t0 = t0_ms();
    let request = proto::WriteRequest {
        timeseries: (0..SERIES)
            .map(|i| proto::TimeSeries {
                labels: sextant::remote::labels_to_proto(&series_labels(i)),
                samples: (0..10)
                    .map(|s| proto::Sample {
                        value: value(i, s),
                        timestamp: t0 + s * 1000,
                    })
                    .collect(),
                exemplars: vec![],
            })
            .collect(),
        metadata: vec![],
    };
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/write"))
        .header("content-encoding", "snappy")
        .header("content-type", "application/x-protobuf")
        .body(sextant::remote::encode(&request))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);

    let metrics_url = format!("{base}/metrics");
    wait_for("the samples to be forwarded", Duration::from_secs(60), async || {
        let metrics = reqwest::get(&metrics_url).await.ok()?.text().await.ok()?;
        let sent = format!(
            "sextant_remote_storage_samples_total{{remote_name=\"vm\",url=\"{}/api/v1/write\"}} {}",
            vm.url,
            SERIES * 10
        );
        metrics.contains(&sent).then_some(())
    })
    .await;
    // The newest appended timestamp (global, as Prometheus's) and the
    // queue's newest sent one agree once everything is sent: no lag.
    let metrics = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let newest = (t0 + 9000) as f64 / 1000.0;
    let value_of = |prefix: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} missing from\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(
        value_of("sextant_remote_storage_highest_timestamp_in_seconds "),
        newest
    );
    assert_eq!(
        value_of("sextant_remote_storage_queue_highest_sent_timestamp_seconds{remote_name=\"vm\""),
        newest
    );
    let exported = victoria_export(&vm.url).await;
    assert_eq!(exported, expected(t0, 0..10));
    // External labels travel with the samples.
    let replicas = peers::instant_query(
        &vm.url,
        "count(rw_test_value{replica=\"r1\"})",
        (t0 + 9000) as f64 / 1000.0,
    )
    .await;
    assert_eq!(replicas[0]["value"][1], "20");

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}
