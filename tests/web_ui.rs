#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The built-in web UI in a real browser, and the Grafana dashboards against
//! real data.
//!
//! One stack per test: `sextant serve` in-process on a free loopback port,
//! scraping the real `prometheus-node-exporter`, itself and a target that
//! refuses connections, with an alerting and a recording rule, and the
//! recommender over three hours of cAdvisor- and kube-state-metrics-shaped
//! history written into its data directory before it starts.
//!
//! - `every_page_works_in_headless_chromium`: Debian's `chromium` opens each
//!   page (`--dump-dom` after the scripts ran, then `--screenshot`): the
//!   expression browser runs queries from its URL (graph and table tabs, the
//!   history kept in `localStorage`), targets, rules and alerts,
//!   recommendations (with their charts), status; the DOM is checked and every
//!   screenshot must decode as a PNG with many colours. The screenshots are
//!   kept in `target/test-artifacts/web-ui/`.
//! - `grafana_dashboards_run_against_scraped_data`: every expression of
//!   `dashboards/grafana/*.json`, with the variables resolved as Grafana
//!   resolves them (`label_values` through `/api/v1/series`), runs without
//!   error through `/api/v1/query_range`, and the panels return data.
//!
//! - `backtest_writes_charts`: `sextant backtest hpa|vpa --chart FILE` against
//!   the running server writes the PNG and SVG charts (kept beside the
//!   screenshots).
//!
//! Without `chromium` or `prometheus-node-exporter` the tests skip with a
//! notice, and fail under `CI=true`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant::server::{ServeOptions, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tsdb::clock::{Clock, SystemClock};
use tsdb::db::{Db, DbOptions};
use tsdb::model::{Labels, Sample};
use tsdb::storage::Appendable;

const CHROMIUM: &str = "/usr/bin/chromium";
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
/// How long any awaited state may take to appear.
const DEADLINE: Duration = Duration::from_secs(90);

/// Whether `binary` is installed; a missing one fails under `CI=true`.
fn installed(binary: &str, package: &str) -> bool {
    if Path::new(binary).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{binary} is required under CI=true (apt-get install {package})"
    );
    eprintln!("skipping: {binary} is not installed (apt-get install {package})");
    false
}

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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real node exporter with its default collectors on a free port,
/// killed on drop.
async fn start_node_exporter() -> (tokio::process::Child, String) {
    let address = format!("127.0.0.1:{}", free_port());
    let mut child = tokio::process::Command::new(NODE_EXPORTER)
        .arg(format!("--web.listen-address={address}"))
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
    (child, address)
}

const SCRAPE_MS: i64 = 15_000;
const POD_A: &str = "web-7d4b9c8f6b-x2x5z";
const POD_B: &str = "web-7d4b9c8f6b-k9vqw";

fn cluster_labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    let mut all = vec![("__name__", name), ("namespace", "shop")];
    all.extend_from_slice(pairs);
    Labels::from_pairs(&all)
}

/// Three hours of scrapes up to `end` of Deployment shop/web (and its HPA) as
/// cAdvisor and kube-state-metrics expose them: two pods whose `app`
/// container uses a wave of CPU and memory (requests 0.5 cores, 512 MiB).
fn write_cluster(dir: &Path, end: i64) {
    let db = Db::open(dir, DbOptions::default()).unwrap();
    let start = end - 3 * 3_600_000;
    let mut cpu_seconds = [0.0f64; 2];
    let mut app = db.appender();
    let mut t = start;
    while t <= end {
        let phase = (t - start) as f64 / 3_600_000.0 * std::f64::consts::PI;
        for (i, pod) in [POD_A, POD_B].into_iter().enumerate() {
            let cores = 0.3 + 0.15 * (phase + i as f64).sin();
            cpu_seconds[i] += cores * SCRAPE_MS as f64 / 1000.0;
            let c = [("pod", pod), ("container", "app")];
            let mut put = |l: Labels, v: f64| {
                app.append(None, &l, Sample::new(t, v)).unwrap();
            };
            put(
                cluster_labels("container_cpu_usage_seconds_total", &c),
                cpu_seconds[i],
            );
            put(
                cluster_labels("container_memory_working_set_bytes", &c),
                300e6 + 60e6 * (phase * 0.7 + i as f64).cos(),
            );
            for (resource, unit, value) in [("cpu", "core", 0.5), ("memory", "byte", 536_870_912.0)]
            {
                put(
                    cluster_labels(
                        "kube_pod_container_resource_requests",
                        &[
                            ("pod", pod),
                            ("container", "app"),
                            ("resource", resource),
                            ("unit", unit),
                        ],
                    ),
                    value,
                );
            }
            put(
                cluster_labels(
                    "kube_pod_status_phase",
                    &[("pod", pod), ("phase", "Running")],
                ),
                1.0,
            );
            put(
                cluster_labels(
                    "kube_pod_status_ready",
                    &[("pod", pod), ("condition", "true")],
                ),
                1.0,
            );
            put(
                cluster_labels("kube_pod_start_time", &[("pod", pod)]),
                ((start - 86_400_000) / 1000) as f64,
            );
        }
        for (metric, label, name, value) in [
            ("kube_deployment_spec_replicas", "deployment", "web", 2.0),
            ("kube_deployment_status_replicas", "deployment", "web", 2.0),
            (
                "kube_horizontalpodautoscaler_status_desired_replicas",
                "horizontalpodautoscaler",
                "web",
                2.0,
            ),
            (
                "kube_horizontalpodautoscaler_status_current_replicas",
                "horizontalpodautoscaler",
                "web",
                2.0,
            ),
            (
                "kube_horizontalpodautoscaler_spec_min_replicas",
                "horizontalpodautoscaler",
                "web",
                1.0,
            ),
            (
                "kube_horizontalpodautoscaler_spec_max_replicas",
                "horizontalpodautoscaler",
                "web",
                6.0,
            ),
        ] {
            app.append(
                None,
                &cluster_labels(metric, &[(label, name)]),
                Sample::new(t, value),
            )
            .unwrap();
        }
        t += SCRAPE_MS;
    }
    app.commit().unwrap();
    db.close().unwrap();
}

const RULES: &str = r#"
groups:
  - name: ui
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: NodeExporterUp
        expr: up{job="node"} == 1
        labels: {severity: "<info>"}
        annotations:
          summary: "{{ $labels.instance }} answers <b>scrapes</b>"
"#;

/// A server with its data directory and the node exporter it scrapes.
struct Stack {
    base: String,
    config: PathBuf,
    node_address: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
    _node: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// `None` when the node exporter is missing outside CI.
    async fn start() -> Option<Stack> {
        if !installed(NODE_EXPORTER, "prometheus-node-exporter") {
            return None;
        }
        let (node, node_address) = start_node_exporter().await;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_cluster(&data, SystemClock.now_ms() - 1000);
        let listen = format!("127.0.0.1:{}", free_port());
        std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
        let config = dir.path().join("sextant.yml");
        std::fs::write(
            &config,
            format!(
                r#"global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [rules.yml]
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ['{node_address}']}}]
  - job_name: sextant
    static_configs: [{{targets: ['{listen}']}}]
  - job_name: refused
    static_configs: [{{targets: ['127.0.0.1:1']}}]
autoscaler:
  refresh_interval: 2s
  workloads:
    - namespace: shop
      kind: Deployment
      name: web
      hpa:
        minReplicas: 1
        maxReplicas: 6
        metrics:
          - type: Resource
            resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}
"#
            ),
        )
        .unwrap();
        let mut options = ServeOptions::new(&listen);
        options.storage_path = Some(data);
        options.config_file = Some(config.clone());
        let server = Server::start(options).await.unwrap();
        let base = format!("http://{}", server.addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        let stack = Stack {
            base,
            config: config.clone(),
            node_address,
            stop,
            task,
            _node: node,
            _dir: dir,
        };
        // Two scrapes of every target (rates need two samples), a firing
        // alert and a recommendation with containers.
        for query in [
            r#"count_over_time(up{job="node"}[1m]) >= 3"#,
            r#"count_over_time(up{job="sextant"}[1m]) >= 3"#,
            r#"ALERTS{alertstate="firing"}"#,
            "sextant_recommendation_container_resource_target",
        ] {
            eventually(query, || async {
                (!stack.query(query).await.is_empty()).then_some(())
            })
            .await;
        }
        Some(stack)
    }

    /// The result of an instant query now.
    async fn query(&self, query: &str) -> Vec<Value> {
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/query", self.base)).unwrap();
        url.query_pairs_mut().append_pair("query", query);
        let response: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        assert_eq!(response["status"], "success", "{query}: {response}");
        response["data"]["result"].as_array().unwrap().clone()
    }

    async fn shutdown(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// `target/test-artifacts/web-ui/`, created.
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let dir = target.join("test-artifacts").join("web-ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium on `url` with a fresh profile: `--dump-dom` (the
/// DOM after the page's scripts ran) or `--screenshot`. Returns stdout.
async fn chromium(url: &str, action: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(action)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("chromium timed out")
        .unwrap();
    assert!(
        output.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The DOM of `url` after its scripts ran.
async fn dom(url: &str) -> String {
    chromium(url, &["--dump-dom".to_string()]).await
}

/// Decodes a PNG: `(width, height, distinct colours, share of the most
/// common colour)`.
fn png_stats(bytes: &[u8]) -> (u32, u32, usize, f64) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for pixel in buffer[..info.buffer_size()].chunks_exact(channels) {
        let key = pixel
            .iter()
            .take(3)
            .fold(0u32, |acc, &c| (acc << 8) | u32::from(c));
        *counts.entry(key).or_default() += 1;
    }
    let total = (info.width as usize * info.height as usize).max(1);
    let most = counts.values().copied().max().unwrap_or(0);
    (
        info.width,
        info.height,
        counts.len(),
        most as f64 / total as f64,
    )
}

/// Screenshots `url` at `width`x`height` into the artefacts as `name.png`
/// and checks it is a real picture, not a blank page.
async fn screenshot(url: &str, name: &str, width: u32, height: u32) {
    let path = artifacts().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&path);
    chromium(
        url,
        &[
            format!("--screenshot={}", path.display()),
            format!("--window-size={width},{height}"),
        ],
    )
    .await;
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("no screenshot of {url}: {e}"));
    let (w, h, colours, most) = png_stats(&bytes);
    assert_eq!((w, h), (width, height), "{name}");
    assert!(colours > 64, "{name}: only {colours} colours");
    assert!(most < 0.97, "{name}: {:.1}% one colour", most * 100.0);
}

/// `href`/`src` values in `html` starting with `prefix`, entities decoded.
fn urls(html: &str, attribute: &str, prefix: &str) -> Vec<String> {
    let needle = format!("{attribute}=\"{prefix}");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&needle) {
        let value = &rest[start + attribute.len() + 2..];
        let end = value.find('"').unwrap();
        out.push(value[..end].replace("&amp;", "&"));
        rest = &value[end..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_works_in_headless_chromium() {
    if !installed(CHROMIUM, "chromium") {
        return;
    }
    let Some(stack) = Stack::start().await else {
        return;
    };
    let base = stack.base.clone();

    // `/` is the expression browser. A query in the URL runs on load: the
    // table tab's rows come from the page's script.
    let table_url = format!("{base}/graph?expr=up&tab=table");
    let page = dom(&table_url).await;
    assert!(page.contains("<main id=\"page-graph\">"), "{page}");
    assert!(
        page.contains("data-done=\"true\""),
        "the table did not load: {page}"
    );
    assert!(
        page.contains(&format!(
            "<td class=\"series\">up{{instance=\"{}\", job=\"node\"}}</td><td class=\"value\">1</td>",
            stack.node_address
        )),
        "{page}"
    );
    assert!(page.contains("<td class=\"series\">up{instance=\"127.0.0.1:1\", job=\"refused\"}</td><td class=\"value\">0</td>"));
    // The history lists the query (from this profile's localStorage).
    assert!(
        page.contains(
            "<ul id=\"history\"><li><a href=\"/graph?expr=up&amp;range=1h\">up</a></li></ul>"
        ),
        "{page}"
    );
    assert_eq!(
        dom(&format!("{base}/"))
            .await
            .matches("<main id=\"page-graph\">")
            .count(),
        1
    );
    screenshot(&table_url, "query-table-narrow", 412, 915).await;

    // The graph tab draws the range with the render API.
    let graph_url = format!(
        "{base}/graph?expr={}&range=1m",
        "rate(node_cpu_seconds_total%7Bmode%3D%22user%22%7D%5B30s%5D)"
    );
    let page = dom(&graph_url).await;
    let src = urls(&page, "src", "/api/v1/render?")
        .pop()
        .expect("no graph image");
    let response = reqwest::get(format!("{base}{src}")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{src}");
    let (w, h, colours, _) = png_stats(&response.bytes().await.unwrap());
    assert_eq!((w, h), (1000, 420));
    assert!(colours > 16);
    assert!(page.contains("<p id=\"query-error\" class=\"error\" hidden=\"\"></p>"));
    screenshot(&graph_url, "query-graph", 1280, 900).await;

    // A bad expression shows the API's error.
    let page = dom(&format!("{base}/graph?expr=rate(up%5B5m%5D&tab=table")).await;
    assert!(page.contains("Error (bad_data): "), "{page}");

    let page = dom(&format!("{base}/targets")).await;
    assert!(
        page.contains("<h2>node <span class=\"count ok\">1/1 up</span></h2>"),
        "{page}"
    );
    assert!(page.contains("<h2>refused <span class=\"count bad\">0/1 up</span></h2>"));
    assert!(page.contains("Connection refused"), "{page}");
    assert!(page.contains(&format!(
        "<span class=\"label\">instance=\"{}\"</span>",
        stack.node_address
    )));
    screenshot(&format!("{base}/targets"), "targets", 1280, 800).await;

    // Rules and alerts; labels and annotations are text, never markup.
    let page = dom(&format!("{base}/rules")).await;
    assert!(
        page.contains("<span class=\"badge bad\">firing</span> <strong>NodeExporterUp</strong>"),
        "{page}"
    );
    assert!(page.contains(&format!(
        "<dd>{} answers &lt;b&gt;scrapes&lt;/b&gt;</dd>",
        stack.node_address
    )));
    assert!(!page.contains("<b>scrapes</b>"));
    assert!(page.contains("severity=\"&lt;info&gt;\""));
    assert!(page.contains("<strong>job:up:sum</strong>"));
    assert!(page.contains("ago</time>"));
    screenshot(&format!("{base}/rules"), "rules", 1280, 900).await;

    // Recommendations: the table, the explanations and the charts.
    let page = dom(&format!("{base}/recommendations")).await;
    assert!(page.contains("<h2>shop/Deployment/web</h2>"), "{page}");
    assert!(
        page.contains("<tr class=\"vpa-row\"><td>app</td><td>cpu</td><td>500m</td>"),
        "{page}"
    );
    assert!(
        page.contains(
            "<tr class=\"vpa-row\"><td>app</td><td>memory</td><td>512Mi <span class=\"muted\">(512 MiB)</span></td>"
        ),
        "{page}"
    );
    assert!(page.contains("<summary>Why the target is "));
    assert!(page.contains("<h3>Horizontal: replicas</h3>"));
    let charts = urls(&page, "src", "/api/v1/recommendations/chart?");
    assert_eq!(charts.len(), 3, "{charts:?}");
    for chart in &charts {
        let response = reqwest::get(format!("{base}{chart}")).await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{chart}");
        let (w, _, colours, _) = png_stats(&response.bytes().await.unwrap());
        assert_eq!(w, 900, "{chart}");
        assert!(colours > 16, "{chart}");
    }
    let svg = reqwest::get(format!(
        "{base}/api/v1/recommendations/chart?namespace=shop&kind=Deployment&name=web&container=app&resource=memory&format=svg"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    for legend in ["usage", "request", "target", "lower bound", "upper bound"] {
        assert!(
            svg.contains(&format!("\n{legend}\n</text>")),
            "{legend}: {svg}"
        );
    }
    screenshot(
        &format!("{base}/recommendations"),
        "recommendations",
        1280,
        2400,
    )
    .await;

    // Status: cardinality of what was scraped, the flags, the configuration.
    let page = dom(&format!("{base}/status")).await;
    assert!(page.contains("<table id=\"top-metrics\""));
    assert!(page.contains("<td>node_"), "{page}");
    assert!(page.contains("<tr><td>job</td>"), "{page}");
    assert!(page.contains("job_name: refused"));
    screenshot(&format!("{base}/status"), "status", 1280, 1600).await;

    stack.shutdown().await;
}

/// A dashboard variable resolved as Grafana does: `label_values(selector,
/// label)` → the label's values among the matching series.
async fn variable_values(stack: &Stack, query: &str) -> Vec<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected variable query {query}"));
    let (selector, label) = inner.rsplit_once(',').unwrap();
    let mut url = reqwest::Url::parse(&format!("{}/api/v1/series", stack.base)).unwrap();
    url.query_pairs_mut()
        .append_pair("match[]", selector.trim());
    let response: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(response["status"], "success", "{query}: {response}");
    let values: BTreeSet<String> = response["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s[label.trim()].as_str().map(str::to_string))
        .collect();
    values.into_iter().collect()
}

/// `text` with Grafana's variables replaced: built-ins by the values Grafana
/// would pick for a 5 minute range, the dashboard's by `values`.
fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut all: Vec<(String, String)> = [
        ("__rate_interval", "1m"),
        ("__interval_ms", "15000"),
        ("__interval", "15s"),
        ("__range_s", "300"),
        ("__range_ms", "300000"),
        ("__range", "5m"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain(values.iter().map(|(k, v)| (k.clone(), v.clone())))
    .collect();
    // Longest names first, so `$__interval` does not eat `$__interval_ms`.
    all.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = text.to_string();
    for (name, value) in &all {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("[[{name}]]"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboards_run_against_scraped_data() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    // Counters need a minute of rates; compactions and the like may not have
    // happened, so emptiness is only reported for them.
    let grafana = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/grafana");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&grafana)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3);
    let end = SystemClock.now_ms() as f64 / 1000.0;
    let mut checked = 0;
    let mut empty: Vec<String> = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let mut values = BTreeMap::new();
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            if variable["type"] != "query" {
                continue;
            }
            let var_name = variable["name"].as_str().unwrap().to_string();
            let query = variable["query"]["query"]
                .as_str()
                .or(variable["query"].as_str())
                .unwrap();
            let resolved = variable_values(&stack, &substitute(query, &values)).await;
            assert!(
                !resolved.is_empty(),
                "{name}: variable {var_name} ({query}) has no values"
            );
            values.insert(var_name, resolved[0].clone());
        }
        let mut panels: Vec<&Value> = Vec::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            panels.push(panel);
            if let Some(nested) = panel["panels"].as_array() {
                panels.extend(nested);
            }
        }
        for panel in panels {
            let Some(targets) = panel["targets"].as_array() else {
                continue;
            };
            let title = panel["title"].as_str().unwrap_or_default();
            let mut series = 0;
            for target in targets {
                let Some(expr) = target["expr"].as_str() else {
                    continue;
                };
                let concrete = substitute(expr, &values);
                assert!(!concrete.contains('$'), "{name}/{title}: {concrete}");
                let mut url =
                    reqwest::Url::parse(&format!("{}/api/v1/query_range", stack.base)).unwrap();
                url.query_pairs_mut()
                    .append_pair("query", &concrete)
                    .append_pair("start", &format!("{:.3}", end - 300.0))
                    .append_pair("end", &format!("{end:.3}"))
                    .append_pair("step", "15");
                let response: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
                assert_eq!(
                    response["status"], "success",
                    "{name}/{title}: {concrete}: {response}"
                );
                series += response["data"]["result"].as_array().unwrap().len();
                checked += 1;
            }
            if series == 0 {
                empty.push(format!("{name}/{title}"));
            }
        }
    }
    eprintln!("{checked} expressions ran; panels without data: {empty:?}");
    assert!(checked >= 30, "only {checked} expressions");
    // Node, self-monitoring and autoscaling panels show the scraped data;
    // the only ones allowed to be empty are about events this short run may
    // not have seen.
    let allowed = [
        "compaction",
        "wal",
        "truncat",
        "remote",
        "rule",
        "error",
        "fail",
    ];
    let unexpected: Vec<&String> = empty
        .iter()
        .filter(|p| {
            let lower = p.to_lowercase();
            !allowed.iter().any(|a| lower.contains(a))
        })
        .collect();
    assert!(unexpected.is_empty(), "panels without data: {unexpected:?}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_writes_charts() {
    use sextant::cli::backtest::{BacktestArgs, BacktestKind, BacktestOutput, run};
    use sextant::cli::recommend::DataSource;
    let Some(stack) = Stack::start().await else {
        return;
    };
    let dir = artifacts();
    let args = |chart: &str| BacktestArgs {
        workload: "shop/Deployment/web".into(),
        from: "2h".into(),
        to: None,
        spec: None,
        source: DataSource {
            config: Some(stack.config.clone()),
            prometheus: Some(stack.base.clone()),
            data_dir: None,
        },
        output: BacktestOutput::Table,
        chart: Some(dir.join(chart)),
    };
    let table = run(BacktestKind::Hpa(args("backtest-hpa.png")))
        .await
        .unwrap();
    assert!(table.starts_with("HPA backtest of "), "{table}");
    // Replicas, then usage over target with backtested and with actual replicas.
    let (w, h, colours, _) = png_stats(&std::fs::read(dir.join("backtest-hpa.png")).unwrap());
    assert_eq!((w, h), (1000, 1200));
    assert!(colours > 16);
    let table = run(BacktestKind::Vpa(args("backtest-vpa.svg")))
        .await
        .unwrap();
    assert!(table.starts_with("VPA backtest of "), "{table}");
    let svg = std::fs::read_to_string(dir.join("backtest-vpa.svg")).unwrap();
    for text in [
        "shop/web/app: CPU usage (cores) vs recommendation",
        "shop/web/app: memory usage vs recommendation",
        "\nusage\n</text>",
        "\nrequest\n</text>",
        "\nmean target (backtest)\n</text>",
    ] {
        assert!(svg.contains(text), "{text}: {svg}");
    }
    stack.shutdown().await;
}
