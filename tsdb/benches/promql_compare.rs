#![allow(clippy::unwrap_used, clippy::expect_used)]
//! PromQL evaluation speed on the shapes of the side-by-side query
//! comparison (`compare --mode query`, `benches/results/compare-query.md`):
//! the same families and labels as the synthetic targets (per unit 4 request
//! counters by handler/method/code, 2 CPU counters, a memory and a queue
//! gauge, a 10-bucket classic histogram with `_sum` and `_count`), 100 units
//! per target, one hour of 5 s samples in a head, and the comparison's 16
//! queries: instant at the end of the data, range over the hour at 15 s.
//!
//! The comparison holds 50 targets (100k series); this bench holds
//! `PROMQL_BENCH_TARGETS` (default 5, 10k series, 7.2M samples) so that it
//! builds in seconds.
//!
//! Run: `cargo bench -p tsdb --bench promql_compare [-- FILTER]`.
//!
//! With `PROMQL_BENCH_ONCE=1` every query runs once, without criterion: for
//! instruction counts that do not depend on the machine's load, e.g.
//! `valgrind --tool=callgrind --toggle-collect='*Query::exec*'
//! --dump-after='*Query::exec*' target/release/deps/promql_compare-HASH`
//! (one dump per query, in the order below).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Sample};
use tsdb::promql::Engine;
use tsdb::storage::Appendable;

const INTERVAL_MS: i64 = 5_000;
const SPAN_MS: i64 = 3_600_000;
const STEP_MS: u64 = 15_000;
const UNITS: usize = 100;
const BUCKETS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "+Inf",
];

fn instance(index: usize) -> String {
    format!("10.1.{}.{}:8080", index / 250, index % 250 + 1)
}

/// One series: its labels and how its value moves each interval.
struct Def {
    labels: Labels,
    kind: Kind,
}

enum Kind {
    /// A counter growing by up to `rate` per interval.
    Counter(u64),
    /// A gauge doing a random walk of up to `step` either way.
    Gauge(u64),
    /// Cumulative bucket `i` of a histogram (`i == BUCKETS.len()`: the
    /// count, `+ 1`: the sum).
    Bucket(usize),
}

fn definitions(targets: usize, rng: &mut StdRng) -> Vec<Def> {
    let mut defs = Vec::new();
    for target in 0..targets {
        let instance = instance(target);
        let labels = |name: &str, extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("__name__", name),
                ("job", "synthetic"),
                ("instance", instance.as_str()),
            ];
            pairs.extend_from_slice(extra);
            Labels::from_pairs(&pairs)
        };
        for unit in 0..UNITS {
            let handler = format!("/api/v1/endpoint_{unit}");
            for (method, code) in [
                ("GET", "200"),
                ("GET", "500"),
                ("POST", "200"),
                ("POST", "500"),
            ] {
                let rate = match (code, rng.random_range(0..4)) {
                    (_, 0) => 0,
                    ("500", _) => rng.random_range(0..3),
                    _ => rng.random_range(1..200),
                };
                defs.push(Def {
                    labels: labels(
                        "synthetic_http_requests_total",
                        &[("handler", &handler), ("method", method), ("code", code)],
                    ),
                    kind: Kind::Counter(rate),
                });
            }
            let worker = unit.to_string();
            for mode in ["user", "system"] {
                defs.push(Def {
                    labels: labels(
                        "synthetic_cpu_seconds_total",
                        &[("worker", &worker), ("mode", mode)],
                    ),
                    kind: Kind::Counter(rng.random_range(0..500)),
                });
            }
            let pool = format!("pool_{unit}");
            defs.push(Def {
                labels: labels("synthetic_memory_bytes", &[("pool", &pool)]),
                kind: Kind::Gauge(256 * 4096),
            });
            let queue = format!("queue_{unit}");
            defs.push(Def {
                labels: labels("synthetic_queue_depth", &[("queue", &queue)]),
                kind: Kind::Gauge(3),
            });
            for (i, le) in BUCKETS.iter().enumerate() {
                defs.push(Def {
                    labels: labels(
                        "synthetic_request_duration_seconds_bucket",
                        &[("handler", &handler), ("le", le)],
                    ),
                    kind: Kind::Bucket(i),
                });
            }
            defs.push(Def {
                labels: labels(
                    "synthetic_request_duration_seconds_count",
                    &[("handler", &handler)],
                ),
                kind: Kind::Bucket(BUCKETS.len()),
            });
            defs.push(Def {
                labels: labels(
                    "synthetic_request_duration_seconds_sum",
                    &[("handler", &handler)],
                ),
                kind: Kind::Bucket(BUCKETS.len() + 1),
            });
        }
    }
    defs
}

fn seeded_storage(targets: usize) -> Head {
    let storage = Head::new(HeadOptions::default());
    let mut rng = StdRng::seed_from_u64(7);
    let defs = definitions(targets, &mut rng);
    let mut values: Vec<f64> = defs
        .iter()
        .map(|d| match d.kind {
            Kind::Counter(_) => f64::from(rng.random_range(0..1_000_000u32)),
            Kind::Gauge(step) => (step * 100) as f64,
            Kind::Bucket(_) => 0.0,
        })
        .collect();
    let mut refs = vec![None; defs.len()];
    // Per histogram (one per unit of a target), this interval's
    // observations by bucket.
    let mut observed = [0u64; BUCKETS.len() + 2];
    for t in (0..=SPAN_MS).step_by(INTERVAL_MS as usize) {
        let mut appender = storage.appender();
        for (i, def) in defs.iter().enumerate() {
            match def.kind {
                Kind::Counter(rate) => {
                    values[i] += if rate == 0 {
                        f64::from(u8::from(rng.random_range(0..50) == 0))
                    } else {
                        rng.random_range(0..=2 * rate) as f64
                    };
                }
                Kind::Gauge(step) => {
                    let delta = rng.random_range(0..=2 * step) as f64 - step as f64;
                    values[i] = (values[i] + delta).max(0.0);
                }
                Kind::Bucket(0) => {
                    observed = [0; BUCKETS.len() + 2];
                    for _ in 0..rng.random_range(0..40) {
                        let bucket = rng.random_range(0..BUCKETS.len());
                        for b in &mut observed[bucket..BUCKETS.len()] {
                            *b += 1;
                        }
                        observed[BUCKETS.len()] += 1;
                        observed[BUCKETS.len() + 1] += rng.random_range(1..2_000_000);
                    }
                    values[i] += observed[0] as f64;
                }
                Kind::Bucket(b) if b == BUCKETS.len() + 1 => {
                    values[i] += observed[b] as f64 / 1e6;
                }
                Kind::Bucket(b) => values[i] += observed[b] as f64,
            }
            refs[i] = Some(
                appender
                    .append(refs[i], &def.labels, Sample::new(t, values[i]))
                    .unwrap(),
            );
        }
        appender.commit().unwrap();
    }
    storage
}

fn bench(c: &mut Criterion) {
    let targets = std::env::var("PROMQL_BENCH_TARGETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let storage = seeded_storage(targets);
    let engine = Engine::default();
    let one = instance(0);
    let instant = [
        (
            "rate_one_series",
            format!(
                "rate(synthetic_http_requests_total{{instance=\"{one}\",handler=\"/api/v1/endpoint_0\",method=\"GET\",code=\"200\"}}[5m])"
            ),
        ),
        (
            "rate_one_target",
            format!("rate(synthetic_http_requests_total{{instance=\"{one}\"}}[5m])"),
        ),
        (
            "sum_by_code_rate",
            "sum by (code) (rate(synthetic_http_requests_total[5m]))".to_string(),
        ),
        (
            "histogram_quantile",
            "histogram_quantile(0.9, sum by (le) (rate(synthetic_request_duration_seconds_bucket[5m])))".to_string(),
        ),
        (
            "topk_rate",
            "topk(10, rate(synthetic_cpu_seconds_total[5m]))".to_string(),
        ),
        (
            "avg_over_time_10m",
            "avg_over_time(synthetic_queue_depth[10m])".to_string(),
        ),
        (
            "max_by_max_over_time_1h",
            "max by (instance) (max_over_time(synthetic_memory_bytes[1h]))".to_string(),
        ),
        (
            "regex_selector",
            "synthetic_memory_bytes{pool=~\"pool_1[0-9]\"}".to_string(),
        ),
        (
            "count_by_instance",
            "count by (instance) (synthetic_queue_depth)".to_string(),
        ),
        (
            "error_ratio",
            "sum by (instance) (rate(synthetic_http_requests_total{code=\"500\"}[5m])) / sum by (instance) (rate(synthetic_http_requests_total[5m]))".to_string(),
        ),
    ];
    let range = [
        (
            "rate_one_target",
            format!("rate(synthetic_http_requests_total{{instance=\"{one}\"}}[5m])"),
        ),
        (
            "sum_by_code_rate",
            "sum by (code) (rate(synthetic_http_requests_total[5m]))".to_string(),
        ),
        (
            "histogram_quantile",
            "histogram_quantile(0.99, sum by (le) (rate(synthetic_request_duration_seconds_bucket[5m])))".to_string(),
        ),
        (
            "topk_sum_by_rate",
            "topk(5, sum by (instance) (rate(synthetic_cpu_seconds_total[5m])))".to_string(),
        ),
        (
            "avg_over_time_one_target",
            format!("avg_over_time(synthetic_queue_depth{{instance=\"{one}\"}}[5m])"),
        ),
        (
            "sum_by_avg_over_time",
            "sum by (instance) (avg_over_time(synthetic_memory_bytes[5m]))".to_string(),
        ),
    ];

    if std::env::var_os("PROMQL_BENCH_ONCE").is_some() {
        for (name, query) in &instant {
            let q = engine.instant_query(query, SPAN_MS).unwrap();
            black_box(q.exec(&storage).unwrap());
            eprintln!("ran compare_instant/{name}");
        }
        for (name, query) in &range {
            let q = engine
                .range_query(query, 0, SPAN_MS, Duration::from_millis(STEP_MS))
                .unwrap();
            black_box(q.exec(&storage).unwrap());
            eprintln!("ran compare_range_1h_15s/{name}");
        }
        return;
    }

    let mut group = c.benchmark_group("compare_instant");
    group.sample_size(10);
    for (name, query) in &instant {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let q = engine.instant_query(query, SPAN_MS).unwrap();
                black_box(q.exec(&storage).unwrap())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("compare_range_1h_15s");
    group.sample_size(10);
    for (name, query) in &range {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let q = engine
                    .range_query(query, 0, SPAN_MS, Duration::from_millis(STEP_MS))
                    .unwrap();
                black_box(q.exec(&storage).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
