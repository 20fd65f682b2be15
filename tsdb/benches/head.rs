//! Head benchmarks: appends with cached series references (what a scrape
//! loop does every interval) and selecting 10k of 1M series.
//!
//! `cargo bench -p tsdb --bench head`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Matcher, Sample, SeriesRef, TimeRange};
use tsdb::storage::{Appendable, Queryable, SelectHints};
use tsdb::wal::{SyncPolicy, WalOptions};

const SCRAPE_MS: i64 = 15_000;

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs(&[
        ("__name__", format!("metric_{}", i % 100)),
        ("instance", format!("host-{}:9100", i / 100)),
        ("job", "node".to_string()),
    ])
}

/// Creates `n` series with one sample each and returns their references.
fn warm(head: &Head, n: usize) -> Vec<SeriesRef> {
    let mut app = head.appender();
    let refs = (0..n)
        .map(|i| {
            app.append(None, &series_labels(i), Sample::new(0, 0.0))
                .unwrap()
        })
        .collect();
    app.commit().unwrap();
    refs
}

/// One scrape's worth of appends of every series, with hints, committed.
fn append_round(head: &Head, refs: &[SeriesRef], round: i64) {
    let empty = Labels::empty();
    let mut app = head.appender();
    for (i, r) in refs.iter().enumerate() {
        let v = (round * 17 + i as i64 % 13) as f64;
        app.append(Some(*r), &empty, Sample::new(round * SCRAPE_MS, v))
            .unwrap();
    }
    app.commit().unwrap();
}

fn head_append(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut group = c.benchmark_group("head_append");
    group.throughput(Throughput::Elements(N as u64));

    let head = Head::new(HeadOptions::default());
    let refs = warm(&head, N);
    let mut round = 0;
    group.bench_function("in_memory_10k_series_cached_refs", |b| {
        b.iter(|| {
            round += 1;
            append_round(&head, &refs, round);
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let wal_options = WalOptions {
        sync: SyncPolicy::Never,
        ..WalOptions::default()
    };
    let head = Head::open(HeadOptions::default(), dir.path(), wal_options, i64::MIN).unwrap();
    let refs = warm(&head, N);
    let mut round = 0;
    group.bench_function("wal_no_fsync_10k_series_cached_refs", |b| {
        b.iter(|| {
            round += 1;
            append_round(&head, &refs, round);
        })
    });
    group.finish();
}

fn head_select(c: &mut Criterion) {
    const N: usize = 1_000_000;
    const ROUNDS: i64 = 4;
    let head = Head::new(HeadOptions::default());
    let refs = warm(&head, N);
    for round in 1..ROUNDS {
        append_round(&head, &refs, round);
    }
    let mut group = c.benchmark_group("head_select");
    group.sample_size(20);
    // metric_7 is one of 100 names: 10k of the 1M series.
    let matchers = [Matcher::equal("__name__", "metric_7")];
    let range = TimeRange::new(0, ROUNDS * SCRAPE_MS);
    group.throughput(Throughput::Elements((N / 100) as u64));
    group.bench_function("10k_of_1m_series_labels_only", |b| {
        let hints = SelectHints {
            series_only: true,
            ..SelectHints::for_range(range)
        };
        b.iter(|| {
            let querier = head.querier(range).unwrap();
            let set = querier.select(&matchers, &hints).unwrap();
            assert_eq!(set.series.len(), N / 100);
            black_box(set)
        })
    });
    group.bench_function("10k_of_1m_series_with_samples", |b| {
        b.iter_batched(
            || (),
            |()| {
                let querier = head.querier(range).unwrap();
                let set = querier
                    .select(&matchers, &SelectHints::for_range(range))
                    .unwrap();
                let mut n = 0;
                for mut s in set.series {
                    while let Some(x) = s.samples.next() {
                        black_box(x);
                        n += 1;
                    }
                }
                assert_eq!(n, N / 100 * ROUNDS as usize);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, head_append, head_select);
criterion_main!(benches);
