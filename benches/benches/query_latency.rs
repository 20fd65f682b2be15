#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Query latency, Sextant against Prometheus, over HTTP, on the same data.
//!
//! Generates OpenMetrics text (by default 100k active series, 1 h of 5 s
//! samples: 50k request counters, 36k classic histogram series, 14k gauges),
//! backfills it into Sextant with `sextant import openmetrics` and into
//! Prometheus with `promtool tsdb create-blocks-from openmetrics`, starts
//! both servers on loopback and runs a fixed set of queries (rate over
//! counters, sum by, histogram_quantile, topk, avg_over_time, 1 h range
//! queries at 15 s step) `RUNS` times each, alternating between the two
//! servers. Prints min/median/max per query and system and the ratio of
//! the medians (Sextant / Prometheus) as a markdown table.
//!
//! Not a criterion benchmark: it measures two external servers, and one
//! run is minutes long. Run it with a release build of the binary:
//!
//! ```text
//! cargo build --release -p sextant
//! cargo bench -p benches --bench query_latency
//! ```
//!
//! Environment: `SEXTANT_BIN` (default `target/release/sextant`),
//! `BENCH_SERIES` (default 100000, rounded to the generator's groups),
//! `BENCH_RUNS` (default 20), `PROMETHEUS` and `PROMTOOL` (default
//! `/usr/bin/...`).

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// 2023-11-14T22:13:20Z; one hour of data from here.
const T0_S: i64 = 1_700_000_000;
const SPAN_S: i64 = 3_600;
const INTERVAL_S: i64 = 5;
const JOBS: usize = 10;
const CODES: [&str; 5] = ["200", "302", "404", "500", "503"];
const BUCKETS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "+Inf",
];

/// Instances per job for each metric family, for `series` in total:
/// counters get half, histograms (12 series per instance) 36 %, gauges the
/// rest.
struct Shape {
    counter_instances: usize,
    histogram_instances: usize,
    gauge_instances: usize,
}

impl Shape {
    fn new(series: usize) -> Shape {
        let per_job = series / JOBS;
        Shape {
            counter_instances: (per_job / 2 / CODES.len()).max(1),
            histogram_instances: (per_job * 36 / 100 / (BUCKETS.len() + 2)).max(1),
            gauge_instances: (per_job * 14 / 100).max(1),
        }
    }

    fn series(&self) -> usize {
        JOBS * (self.counter_instances * CODES.len()
            + self.histogram_instances * (BUCKETS.len() + 2)
            + self.gauge_instances)
    }
}

/// Writes the data set as OpenMetrics, family by family, series by series.
fn generate(path: &Path, shape: &Shape) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let steps = SPAN_S / INTERVAL_S;
    let mut samples = 0u64;
    let mut state = 0x5EED_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut line = String::with_capacity(128);
    writeln!(out, "# TYPE http_requests counter")?;
    for job in 0..JOBS {
        for instance in 0..shape.counter_instances {
            for (c, code) in CODES.iter().enumerate() {
                let mut total = (next() % 1000) as f64;
                for step in 0..steps {
                    total += (next() % (20 / (c as u64 + 1) + 1)) as f64;
                    line.clear();
                    let _ = writeln!(
                        line,
                        "http_requests_total{{code=\"{code}\",instance=\"i{instance:05}\",job=\"j{job}\"}} {total} {}.{:03}",
                        T0_S + step * INTERVAL_S,
                        next() % 1000
                    );
                    out.write_all(line.as_bytes())?;
                    samples += 1;
                }
            }
        }
    }
    writeln!(out, "# TYPE request_duration_seconds histogram")?;
    for job in 0..JOBS {
        for instance in 0..shape.histogram_instances {
            let mut buckets = [0u64; BUCKETS.len()];
            let (mut count, mut sum) = (0u64, 0.0f64);
            let mut rows: Vec<String> = vec![String::new(); BUCKETS.len() + 2];
            for step in 0..steps {
                let ts = format!("{}.{:03}", T0_S + step * INTERVAL_S, next() % 1000);
                for _ in 0..next() % 10 {
                    let x = (next() % 10_000) as f64 / 10_000.0;
                    let x = x * x * x * 4.0;
                    for (i, bound) in BUCKETS.iter().enumerate() {
                        if *bound == "+Inf" || x <= bound.parse::<f64>().unwrap() {
                            buckets[i] += 1;
                        }
                    }
                    count += 1;
                    sum += x;
                }
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        rows[i],
                        "request_duration_seconds_bucket{{instance=\"i{instance:05}\",job=\"j{job}\",le=\"{bound}\"}} {} {ts}",
                        buckets[i]
                    );
                }
                let _ = writeln!(
                    rows[BUCKETS.len()],
                    "request_duration_seconds_sum{{instance=\"i{instance:05}\",job=\"j{job}\"}} {sum} {ts}"
                );
                let _ = writeln!(
                    rows[BUCKETS.len() + 1],
                    "request_duration_seconds_count{{instance=\"i{instance:05}\",job=\"j{job}\"}} {count} {ts}"
                );
                samples += BUCKETS.len() as u64 + 2;
            }
            for row in &rows {
                out.write_all(row.as_bytes())?;
            }
        }
    }
    writeln!(out, "# TYPE memory_bytes gauge")?;
    for job in 0..JOBS {
        for instance in 0..shape.gauge_instances {
            let mut level = 1e9 + (next() % 1_000_000_000) as f64;
            for step in 0..steps {
                level += ((next() % 2_000_001) as f64 - 1_000_000.0) * 64.0;
                line.clear();
                let _ = writeln!(
                    line,
                    "memory_bytes{{instance=\"i{instance:05}\",job=\"j{job}\"}} {level} {}.{:03}",
                    T0_S + step * INTERVAL_S,
                    next() % 1000
                );
                out.write_all(line.as_bytes())?;
                samples += 1;
            }
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()?;
    Ok(samples)
}

/// The queries: `(name, query, range)`; range queries cover the hour at
/// 15 s, instant ones run at the end of the data.
const QUERIES: &[(&str, &str, bool)] = &[
    (
        "rate, 1 series",
        "rate(http_requests_total{job=\"j1\",instance=\"i00001\",code=\"200\"}[5m])",
        false,
    ),
    (
        "rate, 10% of counters",
        "rate(http_requests_total{job=\"j3\"}[5m])",
        false,
    ),
    ("sum(rate)", "sum(rate(http_requests_total[5m]))", false),
    (
        "sum by (job) (rate)",
        "sum by (job) (rate(http_requests_total[5m]))",
        false,
    ),
    (
        "sum by (job, code) (increase 1h)",
        "sum by (job, code) (increase(http_requests_total[1h]))",
        false,
    ),
    (
        "topk(10, rate)",
        "topk(10, rate(http_requests_total[5m]))",
        false,
    ),
    (
        "topk(5, sum by (instance))",
        "topk(5, sum by (instance) (rate(http_requests_total[5m])))",
        false,
    ),
    (
        "histogram_quantile by le",
        "histogram_quantile(0.99, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
        false,
    ),
    (
        "histogram_quantile by job, le",
        "histogram_quantile(0.9, sum by (job, le) (rate(request_duration_seconds_bucket[5m])))",
        false,
    ),
    (
        "avg_over_time 10m",
        "avg_over_time(memory_bytes[10m])",
        false,
    ),
    (
        "max by (job) (avg_over_time 30m)",
        "max by (job) (avg_over_time(memory_bytes[30m]))",
        false,
    ),
    ("count", "count(http_requests_total)", false),
    (
        "error ratio",
        "sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m])) / sum by (job) (rate(http_requests_total[5m]))",
        false,
    ),
    (
        "range 1h/15s: sum by (job) (rate)",
        "sum by (job) (rate(http_requests_total[5m]))",
        true,
    ),
    (
        "range 1h/15s: histogram_quantile",
        "histogram_quantile(0.99, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
        true,
    ),
    (
        "range 1h/15s: avg(memory)",
        "avg by (job) (memory_bytes)",
        true,
    ),
];

struct Server {
    name: &'static str,
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(command: &mut Command) -> Duration {
    let start = Instant::now();
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    start.elapsed()
}

/// An HTTP client driven from this synchronous harness.
struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Client {
    /// GET `url`: the status and body, or `None` when the connection fails.
    fn get(&self, url: &str) -> Option<(reqwest::StatusCode, Vec<u8>)> {
        self.runtime.block_on(async {
            let response = self.http.get(url).send().await.ok()?;
            let status = response.status();
            let body = response.bytes().await.ok()?;
            Some((status, body.to_vec()))
        })
    }
}

fn wait_ready(client: &Client, server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if client
            .get(&format!("{}/-/ready", server.url))
            .is_some_and(|(status, _)| status.is_success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{} did not become ready", server.name);
}

fn query_url(base: &str, query: &str, range: bool) -> String {
    let end = (T0_S + SPAN_S).to_string();
    let params: Vec<(&str, &str)> = if range {
        vec![
            ("query", query),
            ("start", "1700000000"),
            ("end", &end),
            ("step", "15"),
        ]
    } else {
        vec![("query", query), ("time", &end)]
    };
    let path = if range { "query_range" } else { "query" };
    format!(
        "{base}/api/v1/{path}?{}",
        serde_urlencoded::to_string(params).unwrap()
    )
}

/// One timed request; the answer must be a success.
fn time_query(client: &Client, url: &str) -> (Duration, usize) {
    let start = Instant::now();
    let (status, body) = client.get(url).expect("request failed");
    let elapsed = start.elapsed();
    assert!(
        status.is_success(),
        "{url}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    (elapsed, body.len())
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; there are no other arguments.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sextant_bin = std::env::var_os("SEXTANT_BIN")
        .map_or_else(|| workspace.join("target/release/sextant"), PathBuf::from);
    let prometheus_bin = std::env::var("PROMETHEUS").unwrap_or("/usr/bin/prometheus".into());
    let promtool_bin = std::env::var("PROMTOOL").unwrap_or("/usr/bin/promtool".into());
    for bin in [
        sextant_bin.as_path(),
        Path::new(&prometheus_bin),
        Path::new(&promtool_bin),
    ] {
        if !bin.exists() {
            eprintln!(
                "query_latency: {} is missing (build Sextant with `cargo build --release -p sextant`, or set SEXTANT_BIN)",
                bin.display()
            );
            std::process::exit(1);
        }
    }
    let wanted: usize = std::env::var("BENCH_SERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let shape = Shape::new(wanted);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("data.om");
    let started = Instant::now();
    let samples = generate(&input, &shape).unwrap();
    eprintln!(
        "generated {} series, {samples} samples ({} MB) in {:.1?}",
        shape.series(),
        std::fs::metadata(&input).unwrap().len() >> 20,
        started.elapsed()
    );
    let sextant_dir = dir.path().join("sextant");
    let prometheus_dir = dir.path().join("prometheus");
    let sextant_import = run(Command::new(&sextant_bin)
        .args(["import", "openmetrics"])
        .arg(&input)
        .arg("--storage.path")
        .arg(&sextant_dir));
    let promtool_import = run(Command::new(&promtool_bin)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&prometheus_dir));
    eprintln!("import: sextant {sextant_import:.1?}, promtool {promtool_import:.1?}");
    std::fs::remove_file(&input).unwrap();

    // No scrape jobs: both servers only answer queries over the backfill.
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
    )
    .unwrap();
    let port = free_port();
    let sextant = Server {
        name: "sextant",
        child: Command::new(&sextant_bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--storage.path")
            .arg(&sextant_dir)
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--listen=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        url: format!("http://127.0.0.1:{port}"),
    };
    let port = free_port();
    let prometheus = Server {
        name: "prometheus",
        child: Command::new(&prometheus_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", prometheus_dir.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = Client {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap(),
    };
    wait_ready(&client, &sextant);
    wait_ready(&client, &prometheus);

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| query | Sextant min / median / max (ms) | Prometheus min / median / max (ms) | median ratio |"
    );
    let _ = writeln!(table, "| --- | --- | --- | --- |");
    for (name, query, range) in QUERIES {
        let urls = [
            query_url(&sextant.url, query, *range),
            query_url(&prometheus.url, query, *range),
        ];
        // One untimed run each: loads pages and caches as a dashboard's
        // repeated queries would find them.
        let sizes = [
            time_query(&client, &urls[0]).1,
            time_query(&client, &urls[1]).1,
        ];
        let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..runs {
            for (i, url) in urls.iter().enumerate() {
                times[i].push(time_query(&client, url).0);
            }
        }
        let stats: Vec<(Duration, Duration, Duration)> = times
            .iter_mut()
            .map(|t| {
                t.sort();
                (t[0], t[t.len() / 2], t[t.len() - 1])
            })
            .collect();
        let ratio = stats[0].1.as_secs_f64() / stats[1].1.as_secs_f64();
        let _ = writeln!(
            table,
            "| {name} | {} / {} / {} | {} / {} / {} | {ratio:.2} |",
            ms(stats[0].0),
            ms(stats[0].1),
            ms(stats[0].2),
            ms(stats[1].0),
            ms(stats[1].1),
            ms(stats[1].2),
        );
        eprintln!(
            "{name}: done (response bytes: sextant {}, prometheus {})",
            sizes[0], sizes[1]
        );
    }
    println!(
        "{} series, {samples} samples (1 h at 5 s), {runs} runs per query and system\n",
        shape.series()
    );
    print!("{table}");
}
