#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `/federate` next to the real Prometheus's: the same samples (one series
//! ended by a staleness marker, odd values and label escapes) remote-written
//! into both, and the two federation bodies must be byte-identical.

use sextant::remote::proto;
use sextant::server::{ServeOptions, Server};
use tokio::sync::oneshot;
use tsdb::model::{Labels, STALE_NAN};

#[path = "remote_peers/mod.rs"]
mod peers;
use peers::{PROMETHEUS, installed, start_prometheus};

async fn write_to(url: &str, request: &proto::WriteRequest) {
    let response = reqwest::Client::new()
        .post(format!("{url}/api/v1/write"))
        .header("content-encoding", "snappy")
        .header("content-type", "application/x-protobuf")
        .body(sextant::remote::encode(request))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_matches_prometheus() {
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
    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let prometheus = start_prometheus(&prometheus_dir, "global: {}\n", peers::free_port()).await;

    let now_ms = (peers::now_s() * 1000.0) as i64;
    let series = |pairs: &[(&str, &str)], samples: &[(i64, f64)]| proto::TimeSeries {
        labels: sextant::remote::labels_to_proto(&Labels::from_pairs(pairs)),
        samples: samples
            .iter()
            .map(|&(ago_ms, value)| proto::Sample {
                value,
                timestamp: now_ms - ago_ms,
            })
            .collect(),
        exemplars: vec![],
    };
    let request = proto::WriteRequest {
        timeseries: vec![
            series(
                &[("__name__", "fed_up"), ("job", "b")],
                &[(60_000, 1.0), (30_000, 0.0)],
            ),
            series(&[("__name__", "fed_up"), ("job", "a")], &[(45_000, 1.0)]),
            series(
                &[("__name__", "fed_up"), ("job", "gone")],
                &[(50_000, 1.0), (20_000, STALE_NAN)],
            ),
            series(
                &[
                    ("__name__", "fed_build_info"),
                    ("version", "1.2 \"beta\"\\x"),
                ],
                &[(40_000, 1.0)],
            ),
            series(
                &[("__name__", "fed_big")],
                &[(40_000, 1.5e300), (35_000, 123456789.0)],
            ),
            series(&[("__name__", "fed_small")], &[(40_000, -0.000012)]),
            series(&[("__name__", "fed_inf")], &[(40_000, f64::INFINITY)]),
        ],
        metadata: vec![],
    };
    write_to(&sextant, &request).await;
    write_to(&prometheus.url, &request).await;

    let body = |base: String| async move {
        let response = reqwest::Client::new()
            .get(format!("{base}/federate"))
            .query(&[("match[]", "{__name__=~\"fed_.*\"}"), ("match[]", "fed_up")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.text().await.unwrap()
    };
    let ours = body(sextant.clone()).await;
    let theirs = body(prometheus.url.clone()).await;
    assert!(theirs.contains("fed_up"), "{theirs}");
    assert_eq!(ours, theirs);

    drop(prometheus);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}
