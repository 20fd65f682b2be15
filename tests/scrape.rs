#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sextant serve` scraping for real: the server started in-process on a
//! free loopback port with a temporary data directory, scraping exporters
//! the tests start (an in-process one, the real `prometheus-node-exporter`,
//! and itself under the embedded default), checked only through the HTTP API
//! as a user would. Waits poll the API against a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use parking_lot::Mutex;
use scraper::exposition::{Entry, Format, Parser};
use scraper::scrape_loop::sample_labels;
use serde_json::Value;
use sextant::server::{ServeOptions, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tsdb::model::Labels;

/// How long any awaited state may take to appear (scrapes run every second;
/// the embedded default every 15 s).
const DEADLINE: Duration = Duration::from_secs(90);

/// Polls `probe` until it gives a value, failing after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server running in-process until [`Running::shutdown`].
struct Running {
    base: String,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn serve(dir: &Path, config: Option<&Path>) -> Running {
    serve_with(dir, config, |_| {}).await
}

/// As [`serve`], with `tune` applied to the options first.
async fn serve_with(
    dir: &Path,
    config: Option<&Path>,
    tune: impl FnOnce(&mut ServeOptions),
) -> Running {
    let mut options = ServeOptions::new("127.0.0.1:0");
    options.storage_path = Some(dir.join("data"));
    options.config_file = config.map(Path::to_path_buf);
    options.enable_lifecycle = true;
    tune(&mut options);
    let server = Server::start(options).await.unwrap();
    let addr = server.addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    Running {
        base: format!("http://{addr}"),
        addr,
        stop,
        task,
    }
}

impl Running {
    async fn shutdown(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }

    async fn get_json(&self, path_and_query: &str) -> Value {
        let url = format!("{}{path_and_query}", self.base);
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{url}");
        response.json().await.unwrap()
    }

    /// An instant query now: each series as `labels -> value`.
    async fn query(&self, query: &str) -> BTreeMap<String, String> {
        self.query_at(query, None).await
    }

    async fn query_at(&self, query: &str, time: Option<f64>) -> BTreeMap<String, String> {
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/query", self.base)).unwrap();
        url.query_pairs_mut().append_pair("query", query);
        if let Some(time) = time {
            url.query_pairs_mut()
                .append_pair("time", &format!("{time:.3}"));
        }
        let response: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        assert_eq!(response["status"], "success", "{query}: {response}");
        response["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|series| {
                let labels: BTreeMap<String, String> =
                    serde_json::from_value(series["metric"].clone()).unwrap();
                let value = series["value"][1].as_str().unwrap().to_string();
                (series_key(&labels), value)
            })
            .collect()
    }

    /// The single value of a query, once it has exactly one series.
    async fn single(&self, query: &str) -> Option<String> {
        let result = self.query(query).await;
        (result.len() == 1).then(|| result.into_values().next().unwrap_or_default())
    }

    async fn reload(&self) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("{}/-/reload", self.base))
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }
}

/// `name{a="1",b="2"}` with labels sorted, `__name__` in front.
fn series_key(labels: &BTreeMap<String, String>) -> String {
    let name = labels.get("__name__").cloned().unwrap_or_default();
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", rest.join(","))
}

/// An exporter on loopback serving whatever body the test sets.
struct Exporter {
    addr: SocketAddr,
    body: Arc<Mutex<String>>,
}

async fn exporter(body: &str) -> Exporter {
    let body = Arc::new(Mutex::new(body.to_string()));
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(|State(body): State<Arc<Mutex<String>>>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    body.lock().clone(),
                )
                    .into_response()
            }),
        )
        .with_state(Arc::clone(&body));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Exporter { addr, body }
}

const EXPORTED: &str = r#"# HELP requests_total Requests served.
# TYPE requests_total counter
requests_total{path="/a"} 3
requests_total{path="/b",code=""} 5
# TYPE temperature gauge
temperature{job="inner"} 21.5
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.25
rpc_seconds_sum 12.5
rpc_seconds_count 40
"#;

/// The seconds since the epoch of the latest sample of a one-series query.
async fn latest_timestamp(server: &Running, selector: &str) -> Option<f64> {
    let value = server.single(&format!("timestamp({selector})")).await?;
    value.parse().ok()
}

/// Waits for a scrape of `selector`'s target that started after `after`
/// (seconds since the epoch) and returns its time.
async fn next_scrape(server: &Running, selector: &str, after: f64) -> f64 {
    eventually(&format!("a scrape of {selector} after {after}"), || async {
        latest_timestamp(server, selector)
            .await
            .filter(|&t| t > after)
    })
    .await
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_follow_discovery_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = exporter(EXPORTED).await;
    let address = exporter.addr.to_string();
    let targets_file = dir.path().join("targets.json");
    let with_exporter = format!(
        r#"[{{"targets": ["{address}"], "labels": {{"zone": "z1"}}}},
            {{"targets": ["127.0.0.1:1", "127.0.0.1:2"], "labels": {{"drop_me": "yes"}}}}]"#
    );
    std::fs::write(&targets_file, &with_exporter).unwrap();
    let config = dir.path().join("sextant.yml");
    std::fs::write(
        &config,
        format!(
            r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: files
    keep_dropped_targets: 1
    file_sd_configs:
      - files: ['{}']
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [drop_me]
        regex: 'yes'
        action: drop
      - target_label: team
        replacement: blue
"#,
            targets_file.display()
        ),
    )
    .unwrap();
    let server = serve(dir.path(), Some(&config)).await;

    // Discovered through the file, scraped, stored as served.
    let up = eventually("up of the file target", || async {
        server.single(r#"up{job="files"}"#).await
    })
    .await;
    assert_eq!(up, "1");
    let instance = format!(r#"instance="{address}",job="files",team="blue",zone="z1""#);
    let stored = server
        .query(r#"{job="files",__name__!="up",__name__!~"scrape_.+"}"#)
        .await;
    let expected: BTreeMap<String, String> = [
        (format!(r#"requests_total{{{instance},path="/a"}}"#), "3"),
        (format!(r#"requests_total{{{instance},path="/b"}}"#), "5"),
        (
            format!(r#"temperature{{exported_job="inner",{instance}}}"#),
            "21.5",
        ),
        (
            format!(r#"rpc_seconds{{{instance},quantile="0.5"}}"#),
            "0.25",
        ),
        (format!(r#"rpc_seconds_sum{{{instance}}}"#), "12.5"),
        (format!(r#"rpc_seconds_count{{{instance}}}"#), "40"),
    ]
    .into_iter()
    .map(|(k, v)| (normalize_key(&k), v.to_string()))
    .collect();
    assert_eq!(stored, expected);
    assert_eq!(
        server
            .single(r#"scrape_samples_scraped{job="files"}"#)
            .await
            .as_deref(),
        Some("6")
    );

    // The targets API shows the live target and the dropped one.
    let targets = server.get_json("/api/v1/targets").await;
    let active = targets["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{targets}");
    let target = &active[0];
    assert_eq!(target["scrapePool"], "files");
    assert_eq!(target["health"], "up");
    assert_eq!(target["lastError"], "");
    let url = format!("http://{address}/metrics");
    assert_eq!(target["scrapeUrl"], url.as_str());
    assert_eq!(target["globalUrl"], url.as_str());
    assert_eq!(target["scrapeInterval"], "1s");
    assert_ne!(target["lastScrape"], "0001-01-01T00:00:00Z");
    assert!(target["lastScrapeDuration"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        target["labels"],
        serde_json::json!({"instance": address, "job": "files", "team": "blue", "zone": "z1"})
    );
    assert_eq!(target["discoveredLabels"]["__address__"], address.as_str());
    assert_eq!(
        target["discoveredLabels"]["__meta_filepath"],
        targets_file.display().to_string()
    );
    let dropped = targets["data"]["droppedTargets"].as_array().unwrap();
    assert_eq!(dropped.len(), 1, "{targets}");
    assert_eq!(dropped[0]["discoveredLabels"]["__address__"], "127.0.0.1:1");
    // keep_dropped_targets: 1 keeps one of the two, both are counted.
    assert_eq!(targets["data"]["droppedTargetCounts"]["files"], 2);

    // The scrape pool's figures on /metrics.
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sextant_target_scrape_pool_targets{scrape_job=\"files\"} 1",
        "sextant_target_scrape_pool_dropped_targets{scrape_job=\"files\"} 2",
        "sextant_sd_discovered_targets{config=\"files\"} 3",
        "sextant_target_scrape_pools_total 1",
        "sextant_target_scrapes_exceeded_sample_limit_total 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }

    // A series the exporter stops serving is marked stale at once.
    *exporter.body.lock() = EXPORTED.replace("requests_total{path=\"/a\"} 3\n", "");
    eventually("requests_total /a to go stale", || async {
        let result = server.query(r#"requests_total{job="files"}"#).await;
        (result.len() == 1).then_some(())
    })
    .await;

    // The target leaves the file: all its series go stale.
    std::fs::write(&targets_file, "[]").unwrap();
    eventually("the file target's series to go stale", || async {
        server
            .query(r#"{job="files"}"#)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let targets = server.get_json("/api/v1/targets?state=active").await;
    assert_eq!(targets["data"]["activeTargets"], serde_json::json!([]));
    std::fs::write(&targets_file, &with_exporter).unwrap();
    eventually("the file target to come back", || async {
        server
            .single(r#"up{job="files"}"#)
            .await
            .filter(|v| v == "1")
    })
    .await;

    // Reload: `files` goes away (its series go stale), two static jobs come.
    let static_config = |env: &str| {
        format!(
            r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: static
    static_configs:
      - targets: ['{address}']
        labels: {{env: {env}}}
  - job_name: other
    static_configs:
      - targets: ['{address}']
"#
        )
    };
    std::fs::write(&config, static_config("test")).unwrap();
    assert_eq!(server.reload().await, (200, String::new()));
    eventually("the static jobs to be up", || async {
        let up = server.query("up").await;
        let want = BTreeMap::from([
            (
                normalize_key(&format!(
                    r#"up{{env="test",instance="{address}",job="static"}}"#
                )),
                "1".to_string(),
            ),
            (
                normalize_key(&format!(r#"up{{instance="{address}",job="other"}}"#)),
                "1".to_string(),
            ),
        ]);
        (up == want).then_some(())
    })
    .await;

    // A changed job restarts with its new labels (the old series go
    // stale); the unchanged one keeps its loop and its series cache.
    std::fs::write(&config, static_config("prod")).unwrap();
    assert_eq!(server.reload().await.0, 200);
    let reloaded_at = now_seconds();
    eventually("the changed job to carry its new labels", || async {
        let up = server.query(r#"up{job="static"}"#).await;
        (up.len() == 1 && up.keys().all(|k| k.contains(r#"env="prod""#))).then_some(())
    })
    .await;
    let scraped = next_scrape(&server, r#"up{job="other"}"#, reloaded_at).await;
    let added = server
        .query_at(r#"scrape_series_added{job="other"}"#, Some(scraped))
        .await;
    assert_eq!(added.into_values().collect::<Vec<_>>(), ["0"]);

    // Bad configurations are rejected; the running one keeps scraping.
    std::fs::write(&config, "global:\n  scrape_interval: soon\n").unwrap();
    let (status, error) = server.reload().await;
    assert_eq!(status, 500);
    assert!(error.contains("sextant.yml:2:"), "{error}");
    std::fs::write(
        &config,
        format!(
            "scrape_configs:\n  - job_name: tls\n    tls_config: {{ca_file: {}}}\n    static_configs: [{{targets: ['{address}']}}]\n",
            dir.path().join("missing-ca.pem").display()
        ),
    )
    .unwrap();
    let (status, error) = server.reload().await;
    assert_eq!(status, 500);
    assert!(error.contains("missing-ca.pem"), "{error}");
    let rejected_at = now_seconds();
    next_scrape(&server, r#"up{job="static",env="prod"}"#, rejected_at).await;
    assert_eq!(
        server.single(r#"up{job="static"}"#).await.as_deref(),
        Some("1")
    );
    let runtime = server.get_json("/api/v1/status/runtimeinfo").await;
    assert_eq!(runtime["data"]["reloadConfigSuccess"], false);

    server.shutdown().await;
}

/// `name{a="1",b="2"}` as [`series_key`] writes it: labels sorted by name.
fn normalize_key(key: &str) -> String {
    let (name, rest) = key.split_once('{').unwrap();
    let rest = rest.strip_suffix('}').unwrap();
    let mut labels = BTreeMap::new();
    for pair in split_pairs(rest) {
        let (k, v) = pair.split_once('=').unwrap();
        labels.insert(k.to_string(), serde_json::from_str::<String>(v).unwrap());
    }
    labels.insert("__name__".to_string(), name.to_string());
    series_key(&labels)
}

/// `a="x",b="y,z"` split at the commas between pairs.
fn split_pairs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Series lines `capped{i="0"}` .. `capped{i="n-1"}`, each with `value`.
fn capped_body(n: usize, value: u32) -> String {
    (0..n)
        .map(|i| format!("capped{{i=\"{i}\"}} {value}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_series_cap_refuses_new_series_and_keeps_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = exporter(&capped_body(3, 1)).await;
    let config = dir.path().join("sextant.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: capped\n    static_configs:\n      - targets: ['{}']\n",
            exporter.addr
        ),
    )
    .unwrap();
    // Three exported series and the five report series (up, ...).
    let server = serve_with(dir.path(), Some(&config), |o| o.max_series = 8).await;
    eventually("the first scrape", || async {
        let up = server.single(r#"up{job="capped"}"#).await?;
        let count = server.single("count(capped)").await?;
        (up == "1" && count == "3").then_some(())
    })
    .await;
    // Three more series: refused; the known ones keep being scraped.
    *exporter.body.lock() = capped_body(6, 2);
    eventually("the known series' new value", || async {
        (server.single(r#"capped{i="2"}"#).await? == "2").then_some(())
    })
    .await;
    assert_eq!(server.single("count(capped)").await.as_deref(), Some("3"));
    assert_eq!(
        server.single(r#"up{job="capped"}"#).await.as_deref(),
        Some("1")
    );
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rejected: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sextant_tsdb_head_series_rejected_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rejected >= 3.0, "{rejected}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_scrapes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), None).await;
    let targets = server.get_json("/api/v1/targets").await;
    let active = &targets["data"]["activeTargets"];
    assert_eq!(active.as_array().unwrap().len(), 1, "{targets}");
    assert_eq!(active[0]["scrapePool"], "sextant");
    assert_eq!(
        active[0]["scrapeUrl"],
        format!("http://{}/metrics", server.addr)
    );
    assert_eq!(active[0]["scrapeInterval"], "15s");
    // The first scrape comes within one 15 s interval.
    let up = eventually("the self-scrape", || async {
        server.single(r#"up{job="sextant"}"#).await
    })
    .await;
    assert_eq!(up, "1");
    let pool_targets = server
        .single(r#"sextant_target_scrape_pool_targets{job="sextant",scrape_job="sextant"}"#)
        .await;
    assert_eq!(pool_targets.as_deref(), Some("1"));
    server.shutdown().await;
}

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// The real node exporter on a free port, killed on drop.
async fn start_node_exporter(textfile_dir: &Path) -> Option<(tokio::process::Child, String)> {
    if !Path::new(NODE_EXPORTER).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{NODE_EXPORTER} is required under CI=true (apt-get install prometheus-node-exporter)"
        );
        eprintln!("skipping: {NODE_EXPORTER} is not installed");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(NODE_EXPORTER)
        .arg(format!("--web.listen-address={address}"))
        // A light, representative set: counters, gauges with many labels,
        // the textfile collector's escapes, Go and process metrics.
        .args([
            "--collector.disable-defaults",
            "--collector.cpu",
            "--collector.meminfo",
            "--collector.loadavg",
            "--collector.filesystem",
            "--collector.textfile",
        ])
        .arg(format!(
            "--collector.textfile.directory={}",
            textfile_dir.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.contains("Listening on") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "node exporter did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    Some((child, address))
}

/// Each served series (with the target's labels, as stored) and its value.
fn served_series(body: &str, target: &Labels) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for entry in Parser::new(body.as_bytes(), Format::Text) {
        let Entry::Sample(sample) = entry.unwrap() else {
            continue;
        };
        let labels = sample_labels(&sample, target, false).unwrap();
        let map: BTreeMap<String, String> = labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        out.entry(series_key(&map)).or_insert(sample.value);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_what_the_real_node_exporter_serves() {
    let dir = tempfile::tempdir().unwrap();
    let textfiles = dir.path().join("textfiles");
    std::fs::create_dir(&textfiles).unwrap();
    std::fs::write(
        textfiles.join("site.prom"),
        "# HELP site_info Where this node is.\n# TYPE site_info gauge\nsite_info{rack=\"r\\\"1\",path=\"C:\\\\x\"} 1\nsite_temperature_celsius -1.5e-3\n",
    )
    .unwrap();
    let Some((_node, address)) = start_node_exporter(&textfiles).await else {
        return;
    };
    let config = dir.path().join("sextant.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['{address}']}}]\n"
        ),
    )
    .unwrap();
    let server = serve(dir.path(), Some(&config)).await;
    let fetch = || async {
        reqwest::get(format!("http://{address}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    // A scrape strictly between two fetches of ours: a counter both fetches
    // agree on, or a value constant while the exporter runs, is the value
    // that scrape stored (other gauges may move and come back, and some,
    // such as go_goroutines, count our own fetches).
    let first = eventually("node up", || async {
        latest_timestamp(&server, r#"up{job="node"}"#).await
    })
    .await;
    let before = fetch().await;
    let fetched_at = now_seconds();
    let scraped = next_scrape(&server, r#"up{job="node"}"#, first.max(fetched_at)).await;
    let after = fetch().await;
    assert_eq!(
        server
            .query_at(r#"up{job="node"}"#, Some(scraped))
            .await
            .into_values()
            .collect::<Vec<_>>(),
        ["1"]
    );

    let target = Labels::from_pairs(&[("instance", address.as_str()), ("job", "node")]);
    let before = served_series(&before, &target);
    let after = served_series(&after, &target);
    assert!(before.len() > 100, "only {} series served", before.len());
    let stored = server
        .query_at(
            r#"{job="node",__name__!="up",__name__!~"scrape_.+"}"#,
            Some(scraped),
        )
        .await;
    let stored_names: BTreeSet<&String> = stored.keys().collect();
    let both: BTreeSet<&String> = before.keys().filter(|k| after.contains_key(*k)).collect();
    let either: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    assert!(
        both.is_subset(&stored_names),
        "served but not stored: {:?}",
        both.difference(&stored_names).collect::<Vec<_>>()
    );
    assert!(
        stored_names.is_subset(&either),
        "stored but never served: {:?}",
        stored_names.difference(&either).collect::<Vec<_>>()
    );
    let mut compared = 0;
    for (key, value) in &before {
        let Some(later) = after.get(key) else {
            continue;
        };
        if value.to_bits() != later.to_bits() || !is_counter_or_constant(key) {
            continue;
        }
        let stored: f64 = stored[key].parse().unwrap();
        assert!(
            stored.to_bits() == value.to_bits() || (stored.is_nan() && value.is_nan()),
            "{key}: stored {stored}, served {value}"
        );
        compared += 1;
    }
    assert!(compared > 20, "only {compared} stable values compared");
    assert!(stored.keys().any(|k| k.starts_with("site_info{")
        && k.contains(r#"path="C:\\x""#)
        && k.contains(r#"rack="r\"1""#)));
    server.shutdown().await;
}

/// Whether a node exporter series is a counter (never goes back) or fixed
/// while the exporter runs, by its metric name.
fn is_counter_or_constant(key: &str) -> bool {
    const CONSTANT: &[&str] = &[
        "node_memory_MemTotal_bytes",
        "node_filesystem_size_bytes",
        "node_filesystem_readonly",
        "node_scrape_collector_success",
        "node_textfile_scrape_error",
        "node_textfile_mtime_seconds",
        "process_max_fds",
        "process_start_time_seconds",
        "site_info",
        "site_temperature_celsius",
    ];
    let name = key.split('{').next().unwrap_or_default();
    name.ends_with("_total") || name.ends_with("_info") || CONSTANT.contains(&name)
}
