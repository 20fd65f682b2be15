//! Postings set operations and matcher evaluation.
//!
//! Run: `cargo bench -p tsdb --bench postings`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roaring::RoaringBitmap;
use tsdb::index::{MemPostings, intersect, postings_for_matchers, union};
use tsdb::model::{Labels, MatchOp, Matcher};

/// `n` distinct random ids below `space`.
fn random_ids(seed: u64, n: u64, space: u32) -> RoaringBitmap {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ids = RoaringBitmap::new();
    while ids.len() < n {
        ids.insert(rng.random_range(0..space));
    }
    ids
}

fn bench_postings(c: &mut Criterion) {
    let mut group = c.benchmark_group("postings");
    // Sparse: 100k ids each out of 10M series.
    let a = random_ids(1, 100_000, 10_000_000);
    let b = random_ids(2, 100_000, 10_000_000);
    group.bench_function("intersect/100k_x_100k_sparse", |bench| {
        bench.iter(|| intersect(&[black_box(&a), black_box(&b)]))
    });
    // Dense: 100k ids each out of 200k series (half overlap).
    let a = random_ids(3, 100_000, 200_000);
    let b = random_ids(4, 100_000, 200_000);
    group.bench_function("intersect/100k_x_100k_dense", |bench| {
        bench.iter(|| intersect(&[black_box(&a), black_box(&b)]))
    });
    group.bench_function("union/100k_x_100k_dense", |bench| {
        bench.iter(|| union(&[black_box(&a), black_box(&b)]))
    });

    // 100k series shaped like node_exporter: 1000 instances x 100 metrics.
    let mut index = MemPostings::new();
    let mut id = 0;
    for instance in 0..1000 {
        for metric in 0..100 {
            let labels = Labels::from_pairs(&[
                ("__name__", format!("node_metric_{metric}")),
                (
                    "instance",
                    format!("10.0.{}.{}:9100", instance / 250, instance % 250),
                ),
                ("job", "node".to_string()),
            ]);
            index.add(id, &labels);
            id += 1;
        }
    }
    let equality = [
        Matcher::equal("__name__", "node_metric_7"),
        Matcher::equal("job", "node"),
    ];
    group.bench_function("matchers/equality_100k_series", |bench| {
        bench.iter(|| postings_for_matchers(&index, black_box(&equality)).unwrap())
    });
    let regex = [
        Matcher::equal("__name__", "node_metric_7"),
        Matcher::new(MatchOp::RegexMatch, "instance", "10\\.0\\.1\\..*").unwrap(),
        Matcher::new(MatchOp::NotEqual, "instance", "10.0.1.3:9100").unwrap(),
    ];
    group.bench_function("matchers/regex_100k_series", |bench| {
        bench.iter(|| postings_for_matchers(&index, black_box(&regex)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_postings);
criterion_main!(benches);
