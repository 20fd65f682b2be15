//! Steady-state scrapes into the head: parsing a body, finding each line's
//! series in the target's series cache and appending with the cached
//! reference, staleness bookkeeping, report series and commit. The body is
//! node_exporter-like (counters and gauges with a few labels, classic
//! histograms), 1,226 samples; every scrape's values differ.
//!
//! Run: `cargo bench -p scraper --bench scrape_append`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scraper::scrape_loop::{Fetched, TargetOptions, TargetState};
use tsdb::head::{Head, HeadOptions};
use tsdb::model::Labels;

const SCRAPE_MS: i64 = 15_000;
/// Distinct bodies cycled through (same series, other values).
const BODIES: usize = 8;

/// A node_exporter-like text body; `round` changes the values only.
fn body(round: usize) -> (Vec<u8>, usize) {
    let mut rng = StdRng::seed_from_u64(round as u64);
    let mut out = String::new();
    let mut samples = 0;
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    for cpu in 0..32 {
        for mode in modes {
            let v: f64 = rng.random_range(0.0..1e7);
            writeln!(
                out,
                "node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {v:.2}"
            )
            .unwrap();
            samples += 1;
        }
    }
    for device in 0..40 {
        for stat in [
            "receive_bytes",
            "transmit_bytes",
            "receive_packets",
            "transmit_packets",
        ] {
            let v: u64 = rng.random_range(0..1u64 << 40);
            writeln!(
                out,
                "node_network_{stat}_total{{device=\"veth{device:04x}\"}} {v}"
            )
            .unwrap();
            samples += 1;
        }
    }
    for fs in 0..50 {
        for name in [
            "avail_bytes",
            "free_bytes",
            "size_bytes",
            "files",
            "files_free",
        ] {
            let v: f64 = rng.random_range(1e9..1e12);
            writeln!(
                out,
                "node_filesystem_{name}{{device=\"/dev/sd{fs}\",fstype=\"ext4\",mountpoint=\"/mnt/disk{fs}\"}} {v:e}"
            )
            .unwrap();
            samples += 1;
        }
    }
    for handler in 0..40 {
        let mut count = 0u64;
        for le in [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ] {
            count += rng.random_range(0..100u64);
            writeln!(
                out,
                "http_request_duration_seconds_bucket{{handler=\"/api/v1/handler{handler}\",method=\"GET\",le=\"{le}\"}} {count}"
            )
            .unwrap();
            samples += 1;
        }
        let sum: f64 = rng.random_range(0.0..1e4);
        writeln!(
            out,
            "http_request_duration_seconds_sum{{handler=\"/api/v1/handler{handler}\",method=\"GET\"}} {sum:.3}"
        )
        .unwrap();
        writeln!(
            out,
            "http_request_duration_seconds_count{{handler=\"/api/v1/handler{handler}\",method=\"GET\"}} {count}"
        )
        .unwrap();
        samples += 2;
    }
    (out.into_bytes(), samples)
}

fn scrape_append(c: &mut Criterion) {
    let bodies: Vec<(Vec<u8>, usize)> = (0..BODIES).map(body).collect();
    let samples = bodies[0].1;
    let head = Head::new(HeadOptions::default());
    let mut state = TargetState::new(TargetOptions::new(Labels::from_pairs(&[
        ("instance", "host-1:9100"),
        ("job", "node"),
    ])));
    let fetched = |round: usize| Fetched {
        body: bodies[round % BODIES].0.clone(),
        content_type: Some("text/plain; version=0.0.4".to_string()),
    };
    // The first scrape creates the series; the benchmark measures the ones
    // after it.
    let report = state.append_scrape(&head, Ok(fetched(0)), 0, Duration::ZERO);
    assert_eq!(report.error, None);
    assert_eq!(report.series_added, samples);

    let mut group = c.benchmark_group("scrape_append");
    group.throughput(Throughput::Elements(samples as u64));
    let mut round = 0;
    group.bench_function("steady_state_text_1226_samples", |b| {
        b.iter_batched(
            || {
                round += 1;
                (round, fetched(round))
            },
            |(round, fetched)| {
                let t = round as i64 * SCRAPE_MS;
                let report = state.append_scrape(&head, Ok(fetched), t, Duration::ZERO);
                assert_eq!(report.series_added, 0);
                report
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, scrape_append);
criterion_main!(benches);
