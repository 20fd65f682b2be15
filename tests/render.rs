#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Charts end to end: `GET /api/v1/render` on an in-process server, and
//! `sextant render` against that server, against a data directory, and
//! against a real Prometheus (Debian `prometheus`).

use std::process::{Command, Output};
use std::sync::Arc;

use tsdb::db::{Db, DbOptions};
use tsdb::model::{Labels, Sample};
use tsdb::storage::Appendable;

mod common;
use common::memory::MemoryStorage;
use common::prometheus::{peers_installed, start_prometheus};
use common::server::serve_storage;

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const HOUR_S: i64 = 3600;

/// Two counters rising at different rates, one sample every 15 s for an hour.
fn counters() -> Vec<(Labels, Vec<Sample>)> {
    [("eth0", 1000.0), ("eth1", 250.0)]
        .into_iter()
        .map(|(device, per_second)| {
            let labels = Labels::from_pairs(&[
                ("__name__", "node_network_receive_bytes_total"),
                ("device", device),
                ("instance", "localhost:9100"),
                ("job", "node"),
            ]);
            let samples = (0..=240)
                .map(|i| Sample::new(T0 + i * 15_000, per_second * 15.0 * i as f64))
                .collect();
            (labels, samples)
        })
        .collect()
}

async fn server() -> String {
    let storage = MemoryStorage { series: counters() };
    serve_storage(Arc::new(storage), T0 + HOUR_S * 1000).await
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

fn sextant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .output()
        .unwrap()
}

#[track_caller]
fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "sextant failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn range_args(from: i64, to: i64) -> [String; 4] {
    [
        "--from".into(),
        from.to_string(),
        "--to".into(),
        to.to_string(),
    ]
}

#[tokio::test]
async fn the_render_endpoint_draws_png_and_svg() {
    let base = server().await;
    let client = reqwest::Client::new();
    let start = T0 / 1000;
    let query = "rate(node_network_receive_bytes_total[1m])";

    let svg = client
        .get(format!("{base}/api/v1/render"))
        .query(&[
            ("query", query),
            ("start", &start.to_string()),
            ("end", &(start + HOUR_S).to_string()),
            ("step", "30s"),
            ("format", "svg"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    let svg = svg.text().await.unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
    // Legend labels drop what both series share; the unit comes from `_bytes_total`.
    assert!(svg.contains("{device=&quot;eth0&quot;}") || svg.contains(r#"{device="eth0"}"#));
    assert!(svg.contains("{device=&quot;eth1&quot;}") || svg.contains(r#"{device="eth1"}"#));
    assert!(
        svg.contains("1000 B") || svg.contains("1.0 KiB"),
        "y axis in bytes"
    );
    assert!(svg.contains(query));

    let png = client
        .post(format!("{base}/api/v1/render"))
        .form(&[
            ("query", query),
            ("start", &start.to_string()),
            ("end", &(start + HOUR_S).to_string()),
            ("width", "640"),
            ("height", "320"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(png_size(&png.bytes().await.unwrap()), (640, 320));

    // Defaults: the hour up to the server's now, PNG 800x400.
    let default = client
        .get(format!("{base}/api/v1/render?query=up"))
        .send()
        .await
        .unwrap();
    assert_eq!(default.status(), 200);
    assert_eq!(png_size(&default.bytes().await.unwrap()), (800, 400));

    let no_data = client
        .get(format!(
            "{base}/api/v1/render?query=absent_metric&format=svg"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(no_data.contains("No data"));
}

#[tokio::test]
async fn the_render_endpoint_answers_errors_in_the_api_envelope() {
    let base = server().await;
    let client = reqwest::Client::new();
    for query in [
        "query=rate(x[1m]",
        "query=up&format=gif",
        "query=up&width=5",
        "query=up&start=100&end=10",
        "query=up&step=0",
        "",
    ] {
        let response = client
            .get(format!("{base}/api/v1/render?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "error", "{query}");
        assert_eq!(body["errorType"], "bad_data", "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sextant_render_writes_a_chart_from_a_server() {
    let base = server().await;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("chart.png");
    let args = range_args(T0 / 1000, T0 / 1000 + HOUR_S);
    let run = tokio::task::spawn_blocking({
        let output = output.clone();
        move || {
            let mut all = vec![
                "render",
                "rate(node_network_receive_bytes_total[1m])",
                "--server",
                &base,
                "-o",
                output.to_str().unwrap(),
                "--width",
                "500",
                "--height",
                "250",
            ];
            all.extend(args.iter().map(String::as_str));
            sextant(&all)
        }
    })
    .await
    .unwrap();
    let stdout = succeeded(&run);
    assert!(stdout.contains("2 series"), "{stdout}");
    assert_eq!(png_size(&std::fs::read(&output).unwrap()), (500, 250));
}

#[test]
fn sextant_render_reads_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let db = Db::open(&data, DbOptions::default()).unwrap();
        let mut appender = db.appender();
        for (labels, samples) in counters() {
            for sample in samples {
                appender.append(None, &labels, sample).unwrap();
            }
        }
        appender.commit().unwrap();
        db.close().unwrap();
    }
    let output = dir.path().join("chart.svg");
    let mut args = vec![
        "render".to_string(),
        "sum(rate(node_network_receive_bytes_total[1m]))".into(),
        "--data-dir".into(),
        data.to_str().unwrap().into(),
        "-o".into(),
        output.to_str().unwrap().into(),
        "--title".into(),
        "Received".into(),
    ];
    args.extend(range_args(T0 / 1000, T0 / 1000 + HOUR_S));
    let run = sextant(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(succeeded(&run).contains("1 series"));
    let svg = std::fs::read_to_string(&output).unwrap();
    assert!(svg.contains("Received"));
    assert!(
        svg.contains("1.2 KiB") || svg.contains("1250 B") || svg.contains("KiB"),
        "{svg}"
    );

    // A format it cannot tell is an error, not a file.
    let bad = sextant(&[
        "render",
        "up",
        "--data-dir",
        data.to_str().unwrap(),
        "-o",
        "chart",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains(".png or .svg"));
}

/// The same counters as OpenMetrics for `promtool` backfill.
fn backfill() -> String {
    let mut text = String::from("# TYPE node_network_receive_bytes counter\n");
    for (labels, samples) in counters() {
        let device = labels.get("device").unwrap();
        for sample in samples {
            text.push_str(&format!(
                "node_network_receive_bytes_total{{device=\"{device}\",instance=\"localhost:9100\",job=\"node\"}} {} {}\n",
                sample.v,
                sample.t / 1000
            ));
        }
    }
    text.push_str("# EOF\n");
    text
}

#[test]
fn sextant_render_draws_from_a_real_prometheus() {
    if !peers_installed() {
        return;
    }
    let prometheus = start_prometheus(&backfill());
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("prometheus.svg");
    let mut args = vec![
        "render".to_string(),
        "rate(node_network_receive_bytes_total[1m])".into(),
        "--server".into(),
        prometheus.url.clone(),
        "-o".into(),
        output.to_str().unwrap().into(),
    ];
    args.extend(range_args(T0 / 1000, T0 / 1000 + HOUR_S));
    let run = sextant(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(succeeded(&run).contains("2 series"));
    let svg = std::fs::read_to_string(&output).unwrap();
    assert!(svg.contains("eth0") && svg.contains("eth1"));
    assert!(!svg.contains("No data"));
}
