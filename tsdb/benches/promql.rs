#![allow(clippy::unwrap_used, clippy::expect_used)]
//! PromQL evaluation speed over seeded in-memory data: `rate` over
//! counters, `sum by`, and `histogram_quantile` over classic buckets, as
//! instant queries and as a 1 h range query.
//!
//! Run: `cargo bench -p tsdb --bench promql`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Sample};
use tsdb::promql::Engine;
use tsdb::storage::Appendable;

const HOUR_MS: i64 = 3_600_000;
const SCRAPE_MS: i64 = 15_000;
const JOBS: usize = 10;
const INSTANCES: usize = 100;
const BUCKETS: [&str; 6] = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];

/// 1000 counters and 1000 × 6 bucket counters, one hour of 15 s samples.
fn seeded_storage() -> Head {
    let storage = Head::new(HeadOptions::default());
    let mut rng = StdRng::seed_from_u64(42);
    let mut appender = storage.appender();
    for job in 0..JOBS {
        for instance in 0..INSTANCES {
            let (job, instance) = (format!("job{job}"), format!("instance{instance}"));
            let counter = Labels::from_pairs(&[
                ("__name__", "http_requests_total"),
                ("job", job.as_str()),
                ("instance", instance.as_str()),
            ]);
            let mut value = 0.0;
            let mut buckets = [0.0; BUCKETS.len()];
            for t in (0..=HOUR_MS).step_by(SCRAPE_MS as usize) {
                value += rng.random_range(0.0..100.0);
                appender
                    .append(None, &counter, Sample::new(t, value))
                    .unwrap();
                let observations = rng.random_range(0..50);
                for _ in 0..observations {
                    let latency: f64 = rng.random_range(0.0..1.2);
                    for (i, le) in BUCKETS.iter().enumerate() {
                        if *le == "+Inf" || latency <= le.parse::<f64>().unwrap() {
                            buckets[i] += 1.0;
                        }
                    }
                }
                for (i, le) in BUCKETS.iter().enumerate() {
                    let labels = Labels::from_pairs(&[
                        ("__name__", "request_duration_seconds_bucket"),
                        ("job", job.as_str()),
                        ("instance", instance.as_str()),
                        ("le", le),
                    ]);
                    appender
                        .append(None, &labels, Sample::new(t, buckets[i]))
                        .unwrap();
                }
            }
        }
    }
    appender.commit().unwrap();
    storage
}

fn bench(c: &mut Criterion) {
    let storage = seeded_storage();
    let engine = Engine::default();
    let queries = [
        ("rate", "rate(http_requests_total[5m])"),
        (
            "sum_by_rate",
            "sum by (job) (rate(http_requests_total[5m]))",
        ),
        (
            "histogram_quantile",
            "histogram_quantile(0.9, sum by (job, le) (rate(request_duration_seconds_bucket[5m])))",
        ),
    ];
    let mut group = c.benchmark_group("promql_instant");
    group.throughput(Throughput::Elements((JOBS * INSTANCES) as u64));
    for (name, query) in queries {
        group.bench_function(name, |b| {
            b.iter(|| {
                let q = engine.instant_query(query, HOUR_MS).unwrap();
                black_box(q.exec(&storage).unwrap())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("promql_range_1h_15s");
    group.sample_size(10);
    for (name, query) in queries {
        group.bench_function(name, |b| {
            b.iter(|| {
                let q = engine
                    .range_query(query, 0, HOUR_MS, Duration::from_millis(SCRAPE_MS as u64))
                    .unwrap();
                black_box(q.exec(&storage).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
