//! Differential test against the real Prometheus (`/usr/bin/prometheus`):
//! every exposition sample and every OpenMetrics suite case is served on
//! loopback, scraped by Prometheus and by our scrape loop, and the outcomes
//! compared: the same targets up, and for every target up the same series
//! with the same values. Under `CI=true` a missing binary fails the test.
//!
//! The Debian package is Prometheus 2.42, so two 3.x behaviours are
//! normalized before comparing: `le`/`quantile` label values (3.x rewrites
//! them as OpenMetrics floats, see the format doc) and nothing else differs
//! for these files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::MemStorage;
use parking_lot::Mutex;
use scraper::exposition::format_openmetrics_float;
use scraper::scrape_loop::{HttpFetcher, ScrapeLoop, TargetOptions, default_client};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;
use tsdb::clock::{Clock, ManualClock, SystemClock};
use tsdb::model::{Labels, is_stale_nan};

const PROMETHEUS: &str = "/usr/bin/prometheus";

fn peer_binary(path: &str) -> Option<&str> {
    if Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{path} is required under CI=true (apt-get install prometheus)"
    );
    eprintln!("skipping: {path} is not installed");
    None
}

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exposition-samples")
}

/// One body to serve: its name, content type and bytes (uncompressed).
#[derive(Clone)]
struct Served {
    content_type: &'static str,
    body: Vec<u8>,
}

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every sample file (fragments completed with `# EOF`) and suite case.
fn bodies() -> BTreeMap<String, Served> {
    let sources = std::fs::read_to_string(samples_dir().join("SOURCES.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in sources.lines() {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let Some(file) = cells
            .first()
            .and_then(|c| c.strip_prefix('`'))
            .and_then(|c| c.strip_suffix('`'))
        else {
            continue;
        };
        let path = samples_dir().join(file);
        if !path.is_file() {
            continue;
        }
        let om = line.contains("| OpenMetrics 1.0 |");
        let mut body = std::fs::read(&path).unwrap();
        if file.ends_with(".gz") {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(body.as_slice())
                .read_to_end(&mut plain)
                .unwrap();
            body = plain;
        }
        if line.contains("(fragment) |") {
            body.extend_from_slice(b"# EOF\n");
        }
        let content_type = if om { OPENMETRICS } else { TEXT };
        out.insert(file.replace('.', "_"), Served { content_type, body });
    }
    let suite = samples_dir().join("openmetrics-testsuite/tests/testdata/parsers");
    for entry in std::fs::read_dir(&suite).unwrap() {
        let case = entry.unwrap().file_name().into_string().unwrap();
        let body = std::fs::read(suite.join(&case).join("metrics")).unwrap();
        out.insert(
            format!("suite_{case}"),
            Served {
                content_type: OPENMETRICS,
                body,
            },
        );
    }
    out
}

/// Bodies Prometheus 2.42 (the Debian package) rejects but Prometheus 3
/// accepts, which Sextant follows: 3.x dropped 2.x's check that exemplars sit
/// only on `_total` and `_bucket` samples, and its OpenMetrics label parser
/// allows a trailing comma ("Free trailing commas are allowed").
const PROMETHEUS_2_42_REJECTS: &[(&str, &str)] = &[
    (
        "suite_bad_exemplars_on_unallowed_metric_types_0",
        "exemplar on a gauge",
    ),
    (
        "suite_bad_exemplars_on_unallowed_metric_types_1",
        "exemplar on an info metric",
    ),
    (
        "suite_bad_exemplars_on_unallowed_metric_types_2",
        "exemplar on a stateset",
    ),
    (
        "suite_bad_exemplars_on_unallowed_samples_0",
        "exemplar on _sum",
    ),
    (
        "suite_bad_exemplars_on_unallowed_samples_1",
        "exemplar on _sum",
    ),
    (
        "suite_bad_exemplars_on_unallowed_samples_3",
        "exemplar on _created",
    ),
    (
        "suite_bad_missing_or_extra_commas_2",
        "trailing comma in braces",
    ),
];

#[derive(Clone)]
struct Files {
    bodies: Arc<BTreeMap<String, Served>>,
    requests: Arc<Mutex<HashMap<String, usize>>>,
    changed: Arc<Notify>,
}

async fn serve_file(State(files): State<Files>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(served) = files.bodies.get(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    *files.requests.lock().entry(name).or_default() += 1;
    files.changed.notify_waiters();
    (
        [(header::CONTENT_TYPE, served.content_type)],
        served.body.clone(),
    )
        .into_response()
}

/// Label sets as text with `le`/`quantile` normalized, mapped to value bits.
type SeriesValues = BTreeMap<String, String>;

fn normalize(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "instance" | "job" | "file"))
        .map(|(n, v)| {
            let v = if n == "le" || n == "quantile" {
                v.parse::<f64>()
                    .map(format_openmetrics_float)
                    .unwrap_or_else(|_| v.clone())
            } else {
                v.clone()
            };
            format!("{n}={v:?}")
        })
        .collect();
    pairs.join(",")
}

fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v:e}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_and_sextant_store_the_same_series() {
    let Some(binary) = peer_binary(PROMETHEUS) else {
        return;
    };
    let files = Files {
        bodies: Arc::new(bodies()),
        requests: Arc::default(),
        changed: Arc::new(Notify::new()),
    };
    let app = axum::Router::new()
        .route("/f/{name}", get(serve_file))
        .with_state(files.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let files_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Prometheus: one target per body, distinguished by its path.
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: files\n    static_configs:\n",
    );
    for name in files.bodies.keys() {
        config.push_str(&format!(
            "      - targets: ['{files_addr}']\n        labels: {{__metrics_path__: '/f/{name}', file: '{name}'}}\n"
        ));
    }
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut prometheus = tokio::process::Command::new(binary)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = BufReader::new(prometheus.stderr.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = log.next_line().await.unwrap() {
            if line.contains("Server is ready to receive web requests") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "prometheus did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });

    // Every body fetched twice: the first scrape's batch is committed (a
    // target's scrapes run one after the other).
    let all_twice = async {
        loop {
            let notified = files.changed.notified();
            let done = {
                let requests = files.requests.lock();
                files
                    .bodies
                    .keys()
                    .all(|n| requests.get(n).copied().unwrap_or(0) >= 2)
            };
            if done {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all_twice)
        .await
        .expect("every body scraped twice");

    // Prometheus's view: health per target and the series it stored.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let targets: serde_json::Value = client
        .get(format!("http://{web}/api/v1/targets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut prometheus_up: BTreeMap<String, bool> = BTreeMap::new();
    for target in targets["data"]["activeTargets"].as_array().unwrap() {
        let file = target["labels"]["file"].as_str().unwrap().to_string();
        prometheus_up.insert(file, target["health"] == "up");
    }
    let query: serde_json::Value = client
        .get(format!("http://{web}/api/v1/query"))
        .query(&[("query", "{job=\"files\"}")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(query["status"], "success", "{query}");
    let mut prometheus_series: BTreeMap<String, SeriesValues> = BTreeMap::new();
    for result in query["data"]["result"].as_array().unwrap() {
        let metric: BTreeMap<String, String> =
            serde_json::from_value(result["metric"].clone()).unwrap();
        let file = metric["file"].clone();
        let name = metric.get("__name__").cloned().unwrap_or_default();
        if name == "up" || name.starts_with("scrape_") {
            continue;
        }
        let value: f64 = result["value"][1].as_str().unwrap().parse().unwrap();
        prometheus_series
            .entry(file)
            .or_default()
            .insert(normalize(&metric), value_text(value));
    }
    prometheus.kill().await.unwrap();

    // Ours: one scrape loop per body against the same server.
    let mut mismatches = Vec::new();
    // Prometheus queried at wall-clock time; ours scrape at the same time.
    let now_ms = SystemClock.now_ms();
    for name in files.bodies.keys() {
        // A fresh Prometheus head refuses samples older than an hour or so.
        let storage = Arc::new(MemStorage::with_min_time(now_ms - 60 * 60 * 1000));
        let labels =
            Labels::from_pairs(&[("file", name.as_str()), ("instance", "x"), ("job", "files")]);
        let fetcher = HttpFetcher::new(
            default_client().unwrap(),
            format!("http://{files_addr}/f/{name}").parse().unwrap(),
            Duration::from_secs(10),
            0,
        );
        let mut scrape_loop = ScrapeLoop::new(
            TargetOptions::new(labels),
            fetcher,
            storage.clone(),
            Arc::new(ManualClock::new(now_ms)),
        );
        let report = scrape_loop.scrape_once().await;
        let up = report.error.is_none();
        if let Some((_, why)) = PROMETHEUS_2_42_REJECTS
            .iter()
            .find(|(case, _)| case == name)
        {
            // Pinned: 2.42 must reject them, we (as 3.x) must accept them.
            if prometheus_up.get(name) != Some(&false) || !up {
                mismatches.push(format!(
                    "{name}: expected only prometheus 2.42 to reject it ({why})"
                ));
            }
            continue;
        }
        if prometheus_up.get(name) != Some(&up) {
            mismatches.push(format!(
                "{name}: prometheus up={:?}, sextant up={up} ({:?})",
                prometheus_up.get(name),
                report.error
            ));
            continue;
        }
        if !up {
            continue;
        }
        // Samples at the scrape time (explicit timestamps far in the past
        // are out of Prometheus's bounds, so they are left out on both
        // sides: the query only sees the last 5 minutes).
        let mut ours = SeriesValues::new();
        for (labels, samples) in storage.series() {
            let metric = labels.metric_name().unwrap_or_default();
            if metric == "up" || metric.starts_with("scrape_") {
                continue;
            }
            let Some(last) = samples
                .iter()
                .rev()
                .find(|s| now_ms - s.t < 5 * 60 * 1000 && s.t <= now_ms)
            else {
                continue;
            };
            if is_stale_nan(last.v) {
                continue;
            }
            let map: BTreeMap<String, String> = labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            ours.insert(normalize(&map), value_text(last.v));
        }
        let theirs = prometheus_series.remove(name).unwrap_or_default();
        if ours != theirs {
            let only_ours: Vec<_> = ours
                .iter()
                .filter(|(k, v)| theirs.get(*k) != Some(v))
                .take(3)
                .collect();
            let only_theirs: Vec<_> = theirs
                .iter()
                .filter(|(k, v)| ours.get(*k) != Some(v))
                .take(3)
                .collect();
            mismatches.push(format!(
                "{name}: {} series stored by sextant, {} by prometheus; only sextant: {only_ours:?}; only prometheus: {only_theirs:?}",
                ours.len(),
                theirs.len()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
