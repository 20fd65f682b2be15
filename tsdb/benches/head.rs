//! Head benchmarks: appends with cached series references (what a scrape
//! loop does every interval), selecting 10k of 1M series, and the read
//! path PromQL queries take (`head_select_decode`, `head_query_*`: see
//! `head_reads`).
//!
//! `cargo bench -p tsdb --bench head`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Matcher, Sample, SeriesRef, TimeRange};
use tsdb::promql::Engine;
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

const TARGETS: usize = 20;
const UNITS: usize = 100;
const READ_SCRAPE_MS: i64 = 5_000;
const HOUR_MS: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;
const END: i64 = T0 + HOUR_MS;
const BUCKETS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
];

#[derive(Clone, Copy)]
enum Kind {
    Counter(u32),
    Cpu(u32),
    Memory,
    Queue,
    Bucket(u32),
}

fn instance(target: usize) -> String {
    format!("10.1.0.{}:8080", target + 1)
}

/// Every series' labels and how its values move.
fn series_defs() -> Vec<(Labels, Kind)> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut defs = Vec::new();
    for target in 0..TARGETS {
        let instance = instance(target);
        let base = [("job", "synthetic"), ("instance", instance.as_str())];
        let with = |name: &str, extra: &[(&str, &str)]| {
            let mut pairs: Vec<(&str, &str)> = vec![("__name__", name)];
            pairs.extend_from_slice(&base);
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
                let labels = with(
                    "synthetic_http_requests_total",
                    &[("handler", &handler), ("method", method), ("code", code)],
                );
                defs.push((labels, Kind::Counter(rng.random_range(0..20))));
            }
            let worker = unit.to_string();
            for mode in ["user", "system"] {
                let labels = with(
                    "synthetic_cpu_seconds_total",
                    &[("worker", &worker), ("mode", mode)],
                );
                defs.push((labels, Kind::Cpu(rng.random_range(1..200))));
            }
            let pool = format!("pool_{unit}");
            defs.push((
                with("synthetic_memory_bytes", &[("pool", &pool)]),
                Kind::Memory,
            ));
            let queue = format!("queue_{unit}");
            defs.push((
                with("synthetic_queue_depth", &[("queue", &queue)]),
                Kind::Queue,
            ));
            for (i, le) in BUCKETS.iter().enumerate() {
                let labels = with(
                    "synthetic_request_duration_seconds_bucket",
                    &[("handler", &handler), ("le", le)],
                );
                defs.push((labels, Kind::Bucket(1 + i as u32 * 3)));
            }
        }
    }
    defs
}

/// The head holding one hour of every series, appended a scrape round at a
/// time as remote write delivers them.
fn seeded_head() -> Head {
    let head = Head::new(HeadOptions::default());
    let defs = series_defs();
    let mut rng = StdRng::seed_from_u64(42);
    let mut values = vec![0.0f64; defs.len()];
    let mut refs: Vec<Option<SeriesRef>> = vec![None; defs.len()];
    let empty = Labels::empty();
    let mut round = 0;
    while round * READ_SCRAPE_MS <= HOUR_MS {
        let mut app = head.appender();
        for (i, (labels, kind)) in defs.iter().enumerate() {
            let v = &mut values[i];
            match *kind {
                Kind::Counter(rate) | Kind::Bucket(rate) => {
                    *v += f64::from(rng.random_range(0..=rate))
                }
                Kind::Cpu(rate) => {
                    let centis = (*v * 100.0).round() + f64::from(rng.random_range(0..=rate));
                    *v = centis / 100.0;
                }
                Kind::Memory => {
                    if rng.random_range(0..10) == 0 {
                        *v += 4096.0 * f64::from(rng.random_range(-4..=4));
                    }
                }
                Kind::Queue => *v = (*v + f64::from(rng.random_range(-3..=3))).max(0.0),
            }
            let t = T0 + round * READ_SCRAPE_MS + rng.random_range(0..=20);
            let (hint, labels) = match refs[i] {
                Some(r) => (Some(r), &empty),
                None => (None, labels),
            };
            refs[i] = Some(app.append(hint, labels, Sample::new(t, *v)).unwrap());
        }
        app.commit().unwrap();
        round += 1;
    }
    head
}

/// CPU time of the calling thread.
struct ThreadCpuTime;

fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }

    fn end(&self, started: Duration) -> Duration {
        thread_cpu_now().saturating_sub(started)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, printed as wall time is.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

/// Selects and decodes as the engine's planner does; returns the samples.
fn select_decode(head: &Head, matchers: &[Matcher], start: i64, end: i64) -> usize {
    let querier = head.querier(TimeRange::new(start, end)).unwrap();
    let hints = SelectHints::for_range(TimeRange::new(start, end));
    let set = querier.select(matchers, &hints).unwrap();
    let mut n = 0;
    let mut points = Vec::new();
    let mut start_timestamps = Vec::new();
    for mut series in set.series {
        points.clear();
        series
            .samples
            .load_range(start, end, &mut points, &mut start_timestamps);
        n += points.len();
        black_box(&points);
    }
    n
}

/// The read path PromQL queries take through the head: select series by
/// matchers and decode their samples in a time range (what the engine's
/// planner does for every selector), plus a few of the side-by-side query
/// harness's queries end to end (`benches/compare`, `--mode query`).
///
/// Data: seeded series shaped like the harness's synthetic targets (per
/// target and unit: 4 request counters, 2 CPU counters in hundredths, a
/// memory gauge, a queue depth and 10 histogram buckets), one hour of
/// samples every 5 s with 0-20 ms jitter, all in the head. 20 targets of
/// 100 units: 36k series, 26M samples (the harness has 100k series).
///
/// Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`),
/// not wall time, so that other processes on a loaded machine do not
/// inflate them (the engine and the head answer on the calling thread).
fn head_reads(c: &mut Criterion<ThreadCpuTime>) {
    let head = seeded_head();
    let name = |n: &str| Matcher::equal("__name__", n);
    let buckets = [name("synthetic_request_duration_seconds_bucket")];
    let one_target = [
        name("synthetic_http_requests_total"),
        Matcher::equal("instance", instance(0)),
    ];

    let mut group = c.benchmark_group("head_select_decode");
    group.sample_size(20);
    let cases: [(&str, &[Matcher], i64); 3] = [
        ("buckets_5m", &buckets, 5 * 60_000),
        ("buckets_1h", &buckets, HOUR_MS),
        ("one_target_1h", &one_target, HOUR_MS),
    ];
    for (case, matchers, range) in cases {
        let samples = select_decode(&head, matchers, END - range + 1, END);
        group.throughput(Throughput::Elements(samples as u64));
        group.bench_function(case, |b| {
            b.iter(|| select_decode(&head, matchers, END - range + 1, END))
        });
    }
    group.finish();

    let engine = Engine::default();
    let i = instance(0);
    let instant = [
        (
            "histogram_quantile",
            "histogram_quantile(0.9, sum by (le) (rate(synthetic_request_duration_seconds_bucket[5m])))".to_string(),
        ),
        (
            "sum_by_code_rate",
            "sum by (code) (rate(synthetic_http_requests_total[5m]))".to_string(),
        ),
        (
            "max_over_time_1h",
            "max by (instance) (max_over_time(synthetic_memory_bytes[1h]))".to_string(),
        ),
    ];
    let mut group = c.benchmark_group("head_query_instant");
    group.sample_size(10);
    for (case, query) in &instant {
        group.bench_function(*case, |b| {
            b.iter(|| {
                let q = engine.instant_query(query, END).unwrap();
                black_box(q.exec(&head).unwrap())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("head_query_range_1h_15s");
    group.sample_size(10);
    let range = [(
        "rate_one_target",
        format!("rate(synthetic_http_requests_total{{instance=\"{i}\"}}[5m])"),
    )];
    for (case, query) in &range {
        group.bench_function(*case, |b| {
            b.iter(|| {
                let q = engine
                    .range_query(query, END - HOUR_MS, END, Duration::from_millis(15_000))
                    .unwrap();
                black_box(q.exec(&head).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, head_append, head_select);
criterion_group! {
    name = reads;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = head_reads
}
criterion_main!(benches, reads);
