#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HTTP API side by side with the real Prometheus (Debian `prometheus`):
//! the same samples (backfilled into Prometheus with `promtool`, held in
//! memory for Sextant), the same requests, and the `data` of every answer
//! must be equal, values compared as the strings both servers write (two
//! different strings may only be floats within 1e-9 relative: summation
//! order differs between engines). This pins number formatting, result
//! shapes and the metadata endpoints against the reference; PromQL
//! semantics at large are the engine's own differential test.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;
use tsdb::model::{Labels, Sample};

mod common;
use common::memory::MemoryStorage;
use common::prometheus::{peers_installed, start_prometheus};
use common::server::serve_storage;

/// 1700000000 s: 2023-11-14T22:13:20Z.
const T0_MS: i64 = 1_700_000_000_000;
/// Twenty minutes of samples every 15 s.
const N_SAMPLES: i64 = 80;

/// A fixed-seed generator, so the data never changes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// Counters, gauges and extreme values; every timestamp is jittered off the
/// whole second, so no sample sits on a range edge (Prometheus 2.x and 3.x
/// disagree on those).
fn dataset() -> Vec<(Labels, Vec<Sample>)> {
    let mut rng = Lcg(42);
    let mut series = Vec::new();
    let mut add = |pairs: &[(&str, &str)], value: &mut dyn FnMut(i64, &mut Lcg) -> f64| {
        let samples = (0..N_SAMPLES)
            .map(|i| {
                let jitter = 1 + (rng.next() % 998) as i64;
                let t = T0_MS + i * 15_000 + jitter;
                Sample::new(t, value(i, &mut rng))
            })
            .collect();
        series.push((Labels::from_pairs(pairs), samples));
    };
    for (instance, code) in [("a", "200"), ("a", "500"), ("b", "200")] {
        let mut total = 0.0;
        add(
            &[
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("instance", instance),
                ("code", code),
            ],
            &mut |i, rng| {
                // One counter reset halfway, on instance b.
                if instance == "b" && i == N_SAMPLES / 2 {
                    total = 0.0;
                }
                total += (rng.next() % 20) as f64 * 0.5;
                total
            },
        );
    }
    for room in ["kitchen", "hall"] {
        add(
            &[("__name__", "temperature_celsius"), ("room", room)],
            &mut |_, rng| 19.0 + (rng.next() % 3000) as f64 / 1000.0,
        );
    }
    add(&[("__name__", "tiny_ratio")], &mut |i, _| {
        (i + 1) as f64 * 1e-9
    });
    add(&[("__name__", "big_number")], &mut |i, _| {
        (i + 1) as f64 * 3.3e20
    });
    series
}

/// The dataset in OpenMetrics text for `promtool tsdb create-blocks-from`.
fn openmetrics(series: &[(Labels, Vec<Sample>)]) -> String {
    let mut out = String::new();
    for (labels, samples) in series {
        let name = labels.metric_name().unwrap();
        let rest: Vec<String> = labels
            .iter()
            .filter(|l| &*l.name != "__name__")
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        for sample in samples {
            let _ = writeln!(
                out,
                "{name}{{{}}} {} {}.{:03}",
                rest.join(","),
                sample.v,
                sample.t / 1000,
                sample.t % 1000
            );
        }
    }
    out.push_str("# EOF\n");
    out
}

const INSTANT_QUERIES: &[&str] = &[
    "http_requests_total",
    "rate(http_requests_total[2m])",
    "irate(http_requests_total[1m])",
    "increase(http_requests_total[5m])",
    "resets(http_requests_total[20m])",
    "sum by (code) (rate(http_requests_total[5m]))",
    "max by (instance) (http_requests_total)",
    "count(http_requests_total)",
    "http_requests_total offset 5m",
    "temperature_celsius / 3",
    "temperature_celsius * -0",
    "temperature_celsius > 20",
    "temperature_celsius > bool 20",
    "avg_over_time(temperature_celsius[5m])",
    "stddev(temperature_celsius)",
    "quantile(0.9, temperature_celsius)",
    "topk(1, temperature_celsius)",
    "delta(temperature_celsius[5m])",
    "deriv(temperature_celsius[5m])",
    "predict_linear(temperature_celsius[5m], 60)",
    "round(temperature_celsius, 0.1)",
    "changes(temperature_celsius[10m])",
    "label_replace(temperature_celsius, \"r\", \"$1\", \"room\", \"(.*)en\")",
    "tiny_ratio",
    "tiny_ratio * 1000",
    "big_number",
    "-big_number * 100",
    "sqrt(big_number)",
    "absent(nonexistent)",
    "scalar(sum(temperature_celsius))",
    "1e-7",
    "-0.0000123",
    "1/0",
    "-1/0",
    "0/0",
    "time()",
    "vector(time())",
    "\"a string\"",
    "temperature_celsius[1m]",
    "tiny_ratio[1m]",
];

const RANGE_QUERIES: &[&str] = &[
    "http_requests_total",
    "sum(rate(http_requests_total[2m]))",
    "temperature_celsius",
    "tiny_ratio",
    "big_number",
    "time()",
    "1/0",
];

/// Vector and matrix elements in a fixed order (the API leaves it open).
fn normalize(mut data: Value) -> Value {
    if let Some(result) = data.get_mut("result").and_then(Value::as_array_mut) {
        result.sort_by_key(|element| element["metric"].to_string());
    }
    data
}

async fn data(client: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    let response = client.get(format!("{base}{path}")).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, normalize(body["data"].clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_like_prometheus() {
    if !peers_installed() {
        return;
    }
    let series = dataset();
    let prometheus = tokio::task::spawn_blocking({
        let text = openmetrics(&series);
        move || start_prometheus(&text)
    })
    .await
    .unwrap();
    let sextant = serve_storage(Arc::new(MemoryStorage { series }), T0_MS + 3_600_000).await;
    let client = reqwest::Client::new();

    let mut paths = Vec::new();
    for at in ["1700000600", "1700000901.5", "1700001185"] {
        for query in INSTANT_QUERIES {
            let query = urlencode(query);
            paths.push(format!("/api/v1/query?query={query}&time={at}"));
        }
    }
    for (start, end, step) in [
        ("1700000300", "1700000900", "30"),
        ("1700000300.25", "1700000400", "7.5"),
    ] {
        for query in RANGE_QUERIES {
            let query = urlencode(query);
            paths.push(format!(
                "/api/v1/query_range?query={query}&start={start}&end={end}&step={step}"
            ));
        }
    }
    let window = "start=1699999000&end=1700002000";
    paths.extend([
        format!("/api/v1/series?match[]=http_requests_total&{window}"),
        format!("/api/v1/series?match[]={{code=%22200%22}}&match[]=tiny_ratio&{window}"),
        format!("/api/v1/labels?{window}"),
        format!("/api/v1/labels?match[]=temperature_celsius&{window}"),
        format!("/api/v1/label/__name__/values?{window}"),
        format!("/api/v1/label/code/values?match[]={{instance=%22a%22}}&{window}"),
        "/api/v1/format_query?query=sum%20by(job)(rate(foo%5B5m%5D))/bar".to_string(),
    ]);

    let mut mismatches = Vec::new();
    for path in &paths {
        let ours = data(&client, &sextant, path).await;
        let theirs = data(&client, &prometheus.url, path).await;
        if ours.0 != theirs.0 || !same(&ours.1, &theirs.1) {
            mismatches.push(format!(
                "{path}\n  sextant:    {} {}\n  prometheus: {} {}",
                ours.0, ours.1, theirs.0, theirs.1
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} requests differ:\n{}",
        mismatches.len(),
        paths.len(),
        mismatches.join("\n")
    );
}

/// promtool, a real Prometheus client, reads Sextant as it reads
/// Prometheus: `promtool query instant|range|series|labels` print the same
/// lines (sorted: result order is the server's choice) in both output
/// formats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_reads_sextant_like_prometheus() {
    if !peers_installed() {
        return;
    }
    let series = dataset();
    let prometheus = tokio::task::spawn_blocking({
        let text = openmetrics(&series);
        move || start_prometheus(&text)
    })
    .await
    .unwrap();
    let sextant = serve_storage(Arc::new(MemoryStorage { series }), T0_MS + 3_600_000).await;
    let commands: &[&[&str]] = &[
        &[
            "instant",
            "SERVER",
            "rate(http_requests_total[5m])",
            "--time=1700000600",
        ],
        &[
            "instant",
            "SERVER",
            "scalar(sum(tiny_ratio))",
            "--time=1700000600",
        ],
        &["instant", "SERVER", "big_number", "--time=1700000600"],
        &[
            "range",
            "SERVER",
            "temperature_celsius",
            "--start=1700000300",
            "--end=1700000400",
            "--step=15s",
        ],
        &[
            "series",
            "SERVER",
            "--match=http_requests_total",
            "--start=1699999000",
            "--end=1700002000",
        ],
        &[
            "labels",
            "SERVER",
            "room",
            "--start=1699999000",
            "--end=1700002000",
        ],
    ];
    let mut checked = 0;
    for command in commands {
        for format in ["promql", "json"] {
            let run = move |server: String| {
                let args: Vec<String> = command
                    .iter()
                    .map(|a| {
                        if *a == "SERVER" {
                            server.clone()
                        } else {
                            (*a).to_string()
                        }
                    })
                    .collect();
                let output = std::process::Command::new(common::prometheus::PROMTOOL)
                    .arg("query")
                    .arg(format!("--format={format}"))
                    .args(&args)
                    .output()
                    .unwrap();
                assert!(output.status.success(), "promtool {args:?}: {output:?}");
                let text = String::from_utf8(output.stdout).unwrap();
                let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
                lines.sort();
                lines
            };
            let (sextant, prometheus) = (sextant.clone(), prometheus.url.clone());
            let (ours, theirs) =
                tokio::task::spawn_blocking(move || (run(sextant), run(prometheus)))
                    .await
                    .unwrap();
            assert!(!ours.is_empty(), "{command:?}");
            if format == "promql" {
                assert_eq!(ours, theirs, "promtool query {command:?} --format={format}");
            } else {
                // JSON lines: compare as JSON, floats to 1e-9 relative.
                let parse = |lines: &[String]| -> Vec<Value> {
                    lines
                        .iter()
                        .map(|l| normalize(serde_json::from_str(l).unwrap()))
                        .collect()
                };
                let (ours, theirs) = (parse(&ours), parse(&theirs));
                assert!(
                    ours.len() == theirs.len() && ours.iter().zip(&theirs).all(|(a, b)| same(a, b)),
                    "promtool query {command:?} --format=json\n{ours:?}\n{theirs:?}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

/// Equal JSON, except that two different strings that are both finite
/// floats only need to agree to 1e-9 relative.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            x == y
                || match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => {
                        (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
                    }
                    _ => false,
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
