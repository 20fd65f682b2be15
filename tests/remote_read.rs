#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Queries over a remote server give what they give over the local store
//! for the same data: the same samples are held in memory and written into
//! VictoriaMetrics (no remote read: the query API fallback) and Prometheus
//! (remote read), and rules-like PromQL runs through `LocalBackend` over
//! each `RemoteStorage` and over the local head.

use std::sync::Arc;
use std::time::Duration;

use sextant::backend::LocalBackend;
use sextant::metrics::Registry;
use sextant::remote::read::RemoteStorage;
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Sample, TimeRange};
use tsdb::promql::{EngineOptions, QueryBackend};
use tsdb::storage::{Appendable, Queryable};

#[path = "remote_peers/mod.rs"]
mod peers;
use peers::{PROMETHEUS, VICTORIA_METRICS, installed, start_prometheus, start_victoria_metrics};

/// Thirty minutes of samples every 15 s, each half a second off the
/// whole second so no sample sits on a window edge.
fn dataset(t0: i64) -> Vec<(Labels, Vec<Sample>)> {
    let mut out = Vec::new();
    for (job, instance, rate) in [("api", "a", 3.0), ("api", "b", 5.0), ("db", "c", 1.5)] {
        let counter = Labels::from_pairs(&[
            ("__name__", "rr_requests_total"),
            ("job", job),
            ("instance", instance),
        ]);
        let gauge = Labels::from_pairs(&[
            ("__name__", "rr_memory_bytes"),
            ("job", job),
            ("instance", instance),
        ]);
        let steps = 0..120i64;
        out.push((
            counter,
            steps
                .clone()
                .map(|i| Sample::new(t0 + i * 15_000 + 500, (i * i) as f64 * rate))
                .collect(),
        ));
        out.push((
            gauge,
            steps
                .map(|i| Sample::new(t0 + i * 15_000 + 500, 1000.0 + ((i * 7) % 13) as f64 * rate))
                .collect(),
        ));
    }
    out
}

fn backend(storage: Arc<dyn Queryable>) -> LocalBackend {
    LocalBackend::new(storage, EngineOptions::default(), 4, &Registry::new())
}

const QUERIES: [&str; 6] = [
    "sum by (job) (rate(rr_requests_total[5m]))",
    "avg_over_time(rr_memory_bytes[10m])",
    "max by (job) (rr_memory_bytes)",
    "rr_requests_total{instance=~\"a|c\"}",
    "increase(rr_requests_total{job=\"api\"}[15m]) / 60",
    "count(rr_memory_bytes > 1010)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_remote_servers_match_the_local_store() {
    if !installed(VICTORIA_METRICS) || !installed(PROMETHEUS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vm = start_victoria_metrics(&dir.path().join("vm"), peers::free_port()).await;
    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let prometheus = start_prometheus(&prometheus_dir, "global: {}\n", peers::free_port()).await;

    let t0 = (peers::now_s() as i64 - 3600) * 1000;
    let data = dataset(t0);
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut appender = head.appender();
    for (labels, samples) in &data {
        for s in samples {
            appender.append(None, labels, *s).unwrap();
        }
    }
    appender.commit().unwrap();
    peers::remote_write(&vm.url, &data).await;
    peers::remote_write(&prometheus.url, &data).await;
    assert!(
        reqwest::get(format!("{}/internal/force_flush", vm.url))
            .await
            .unwrap()
            .status()
            .is_success()
    );

    let vm_storage = Arc::new(RemoteStorage::new(&format!("{}/api/v1/read", vm.url)).unwrap());
    let prometheus_storage =
        Arc::new(RemoteStorage::new(&format!("{}/api/v1/read", prometheus.url)).unwrap());
    let local = backend(head);
    let remotes = [
        (
            "VictoriaMetrics",
            backend(Arc::clone(&vm_storage) as Arc<dyn Queryable>),
        ),
        (
            "Prometheus",
            backend(Arc::clone(&prometheus_storage) as Arc<dyn Queryable>),
        ),
    ];
    // VictoriaMetrics makes new samples searchable after a short delay; wait
    // until it serves them all.
    peers::wait_for(
        "VictoriaMetrics to serve the samples",
        Duration::from_secs(60),
        async || {
            let at = t0 + 119 * 15_000 + 1000;
            let ours = local
                .instant("count_over_time(rr_requests_total[1h])", at)
                .await
                .ok()?;
            let theirs = remotes[0]
                .1
                .instant("count_over_time(rr_requests_total[1h])", at)
                .await
                .ok()?;
            (ours.value == theirs.value).then_some(())
        },
    )
    .await;

    for query in QUERIES {
        for minute in [10i64, 17, 29] {
            let at = t0 + minute * 60_000;
            let want = local.instant(query, at).await.unwrap().value;
            for (name, remote) in &remotes {
                let got = remote.instant(query, at).await.unwrap().value;
                assert_eq!(got, want, "{name}: {query} at minute {minute}");
            }
        }
        let range = TimeRange::new(t0 + 5 * 60_000, t0 + 29 * 60_000);
        let step = Duration::from_secs(60);
        let want = local.range(query, range, step).await.unwrap().value;
        for (name, remote) in &remotes {
            let got = remote.range(query, range, step).await.unwrap().value;
            assert_eq!(got, want, "{name}: range {query}");
        }
    }
    assert!(
        vm_storage.uses_query_api(),
        "VictoriaMetrics has no remote read"
    );
    assert!(
        !prometheus_storage.uses_query_api(),
        "Prometheus is read through remote read"
    );
    assert!(
        vm_storage.nan_is_stale(),
        "VictoriaMetrics's NaNs are stale markers"
    );
    assert!(!prometheus_storage.nan_is_stale());

    // Label APIs through the remote.
    let names = tokio::task::spawn_blocking(move || {
        let querier = prometheus_storage
            .querier(TimeRange::new(t0, t0 + 3_600_000))
            .unwrap();
        let names = querier.label_values("__name__", &[]).unwrap();
        let jobs = querier.label_values("job", &[]).unwrap();
        (names, jobs)
    })
    .await
    .unwrap();
    assert_eq!(names.0, vec!["rr_memory_bytes", "rr_requests_total"]);
    assert_eq!(names.1, vec!["api", "db"]);
}

/// `serve` with a `remote_read` section queries the local store and the
/// real Prometheus as one: the remote's history before the local data
/// starts, merged into the same series once the external label is
/// filtered and removed; another cluster's series stays out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_merges_remote_read_history_with_local_data() {
    if !installed(PROMETHEUS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let prometheus = start_prometheus(&prometheus_dir, "global: {}\n", peers::free_port()).await;

    // On a whole ten minutes, so the query's steps meet samples exactly.
    let now = (peers::now_s() as i64 / 600) * 600_000;
    let series = |cluster: Option<&str>| {
        let mut pairs = vec![("__name__", "fan_metric"), ("job", "a")];
        if let Some(cluster) = cluster {
            pairs.push(("cluster", cluster));
        }
        Labels::from_pairs(&pairs)
    };
    let minutes = |from: i64, to: i64, v: f64| -> Vec<Sample> {
        (from..=to)
            .map(|m| Sample::new(now + m * 60_000, v))
            .collect()
    };
    // The remote holds 40 to 20 minutes ago; another cluster too.
    peers::remote_write(
        &prometheus.url,
        &[
            (series(Some("c1")), minutes(-40, -20, 1.0)),
            (series(Some("c2")), minutes(-40, -20, 7.0)),
        ],
    )
    .await;
    // The local store holds the last ten minutes.
    let data = dir.path().join("sextant");
    {
        let db = tsdb::db::Db::open(&data, tsdb::db::DbOptions::default()).unwrap();
        let mut appender = db.appender();
        for sample in minutes(-10, 0, 2.0) {
            appender.append(None, &series(None), sample).unwrap();
        }
        appender.commit().unwrap();
        db.close().unwrap();
    }
    let config = dir.path().join("sextant.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{external_labels: {{cluster: c1}}}}\n\
             remote_read: [{{url: '{}/api/v1/read'}}]\n",
            prometheus.url
        ),
    )
    .unwrap();
    let mut options = sextant::server::ServeOptions::new("127.0.0.1:0");
    options.config_file = Some(config);
    options.storage_path = Some(data);
    let server = sextant::server::Server::start(options).await.unwrap();
    let base = format!("http://{}", server.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    let response: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/query_range"))
        .query(&[
            ("query", "fan_metric"),
            ("start", &((now - 40 * 60_000) / 1000).to_string()),
            ("end", &(now / 1000).to_string()),
            ("step", "600"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["status"], "success", "{response}");
    let result = response["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{response}");
    assert_eq!(
        result[0]["metric"],
        serde_json::json!({"__name__": "fan_metric", "job": "a"})
    );
    let points: Vec<(i64, String)> = result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(i64, String)> = [(-40, "1"), (-30, "1"), (-20, "1"), (-10, "2"), (0, "2")]
        .iter()
        .map(|(m, v)| ((now + m * 60_000) / 1000, (*v).to_string()))
        .collect();
    assert_eq!(points, expected);

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
