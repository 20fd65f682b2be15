//! The read path PromQL queries take through the head: select series by
//! matchers and decode their samples in a time range (what the engine's
//! planner does for every selector), plus a few of the side-by-side query
//! harness's queries end to end (`benches/compare`, `--mode query`).
//!
//! Data: seeded series shaped like the harness's synthetic targets (per
//! target and unit: 4 request counters, 2 CPU counters in hundredths, a
//! memory gauge, a queue depth and 10 histogram buckets), one hour of
//! samples every 5 s with 0-20 ms jitter, all in the head. 20 targets of
//! 100 units: 36k series, 26M samples (the harness has 100k series).
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`),
//! not wall time, so that other processes on a loaded machine do not
//! inflate them (the engine and the head answer on the calling thread).
//!
//! Run: `cargo bench -p tsdb --bench head_query`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Matcher, Sample, SeriesRef, TimeRange};
use tsdb::promql::Engine;
use tsdb::storage::{Appendable, Queryable, SelectHints};

const TARGETS: usize = 20;
const UNITS: usize = 100;
const SCRAPE_MS: i64 = 5_000;
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
    while round * SCRAPE_MS <= HOUR_MS {
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
            let t = T0 + round * SCRAPE_MS + rng.random_range(0..=20);
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

fn bench(c: &mut Criterion<ThreadCpuTime>) {
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

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench
}
criterion_main!(benches);
