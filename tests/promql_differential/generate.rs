//! The seeded generator of the PromQL differential test: the OpenMetrics
//! data file and the query corpus in this directory are its output, pinned
//! by `generated_files_are_current` in `tests/promql_differential.rs`
//! (regenerate with `SEXTANT_REGENERATE=1 cargo test -p sextant --test
//! promql_differential generated_files_are_current`).
//!
//! Both are restricted to what Prometheus 2.42 (Debian's) and 3.x define
//! alike:
//! - every sample timestamp sits 10..990 ms past a whole second, and every
//!   evaluation time, range, offset and `@` is whole seconds, so no sample
//!   is ever on the edge of a range (3.x made ranges left-open); evaluation
//!   times are 2 s past a multiple of 5 s and subquery steps multiples of
//!   5 s, so no subquery point is on an edge either;
//! - no function added or renamed since 2.42 (no `holt_winters` /
//!   `double_exponential_smoothing`, `mad_over_time`, `limitk`,
//!   `sort_by_label`, `day_of_year`, ...), no native histograms;
//! - classic histogram buckets carry canonical `le` values (`1.0`, not `1`),
//!   which 3.x would normalize and 2.42 would not.

use std::fmt::Write as _;

/// 2023-11-14T22:13:20Z. Blocks are cut at multiples of 2 h, the first at
/// 1700006400 (T0 + 6400 s), so the data spans two blocks.
pub const T0_S: i64 = 1_700_000_000;
/// Two and a half hours of data.
pub const SPAN_S: i64 = 9_000;

/// Instant query evaluation times: inside the first block, just past the
/// block boundary, near the end, and after the end (lookback only).
pub const INSTANT_TIMES: [i64; 4] = [T0_S + 1_807, T0_S + 6_407, T0_S + 8_887, T0_S + 9_127];

/// Range query windows `(start, end, step)` in seconds, used alternately.
pub const RANGE_WINDOWS: [(i64, i64, i64); 2] = [
    (T0_S + 607, T0_S + 9_067, 60),
    (T0_S + 6_007, T0_S + 6_907, 15),
];

/// Queries of the generator left out of the corpus, with the reason: the
/// two Prometheus versions answer them differently on purpose.
pub const DROPPED: &[(&str, &str)] = &[
    (
        "count_values without (code, kind) (\"value\", sum by (job) (rate(http_requests_total{code=\"500\"}[5m])) / sum by (job) (rate(http_requests_total[5m])))",
        "count_values turns a value into a label in full precision, so a last-bit difference in a floating-point sum (summation order) shows as a different series",
    ),
    (
        "topk (3, count_values by (mode) (\"value\", deriv(queue_length{queue!=\"q3\"}[2m])))",
        "count_values turns a value into a label in full precision, so a last-bit difference in the regression's arithmetic shows as a different series",
    ),
    (
        "build_info != on (instance) group_right memory_bytes * scalar(up{job=\"api\",instance=\"a\"})",
        "3.x removes __name__ at the end of the query (delayed name removal, as the upstream corpus runs it): a filtering comparison keeps the many side's __name__ although that side's arithmetic would drop it; 2.42 drops it at the arithmetic",
    ),
    (
        "bottomk by (kind) (3, build_info != on (instance) group_right rate(http_requests_total{job=\"api\"}[5m]))",
        "3.x removes __name__ at the end of the query (delayed name removal): the filtering comparison keeps the rate's __name__, which 2.42 dropped at rate()",
    ),
    (
        "count_values without (le, room) (\"value\", weird{kind=\"mixed\"} ^ 2)",
        "count_values turns a value into a label in full precision, and Go's math.Pow and Rust's powf differ in the last bit for some inputs",
    ),
    (
        "rate((rate(http_requests_total{job=\"api\"}[5m]))[1h:15s])",
        "the subquery reaches back before the first sample, and rate's extrapolation to the start differs there: 3.x caps it at half an interval before applying the counter's zero point, 2.42 the other way round (the data's counters start high to avoid this, a rate of rates does not)",
    ),
    (
        "predict_linear(queue_length{queue!=\"q3\"}[10m] @ 1700007203, 3600)",
        "2.42 evaluates this `@` range selector under predict_linear in range queries wrongly (the window moves with the step and the series ends early); Sextant follows 3.x's at_modifier tests",
    ),
];

/// SplitMix64: a tiny seeded generator, so the output never depends on a
/// crate's version.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One series: name, labels (already formatted) and samples `(ms, value)`.
struct Series {
    name: String,
    labels: String,
    samples: Vec<(i64, f64)>,
}

/// The number of the series being generated, which fixes its timestamps'
/// milliseconds (see [`millis`]).
static SERIES_NO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The milliseconds past the whole second `s` of series `series_no`'s
/// sample: 10..990, and different for every series at the same second, so
/// no two series tie in `timestamp()` (a tie makes `topk`/`bottomk`
/// pick by input order, which 2.42 does not keep in range queries).
fn millis(series_no: u64, s: i64) -> i64 {
    10 + ((series_no as i64) * 97 + s * 31).rem_euclid(980)
}

fn next_series_no() -> u64 {
    SERIES_NO.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The timestamps of a series scraped every `interval_s` from `from_s` to
/// `to_s` (exclusive).
fn times(_rng: &mut Rng, from_s: i64, to_s: i64, interval_s: i64) -> Vec<i64> {
    let series_no = next_series_no();
    (0..)
        .map(|i| from_s + i * interval_s)
        .take_while(|&s| s < to_s)
        .map(|s| s * 1000 + millis(series_no, s))
        .collect()
}

/// A counter starting high above its increments, so that extrapolating a
/// rate to the counter's zero point never applies (2.42 and 3.x order that
/// rule and the half-interval cap differently).
fn counter(rng: &mut Rng, times: &[i64], step: f64, resets_at: &[usize]) -> Vec<(i64, f64)> {
    let mut total = 10_000.0 + rng.below(1000) as f64;
    times
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if resets_at.contains(&i) {
                total = 0.0;
            }
            total += (rng.below(21) as f64) * step;
            (t, total)
        })
        .collect()
}

fn gauge(
    rng: &mut Rng,
    times: &[i64],
    mut value: impl FnMut(&mut Rng, usize) -> f64,
) -> Vec<(i64, f64)> {
    times
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, value(rng, i)))
        .collect()
}

/// Bucket bounds of the classic histogram, canonical OpenMetrics floats.
const BUCKETS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "+Inf",
];

fn dataset() -> Vec<(&'static str, &'static str, Vec<Series>)> {
    let mut rng = Rng::new(0x5E_C7A7);
    let end = T0_S + SPAN_S;
    let mut families = Vec::new();

    let mut requests = Vec::new();
    for job in ["api", "web"] {
        for instance in ["a", "b", "c"] {
            for code in ["200", "500"] {
                let t = times(&mut rng, T0_S, end, 15);
                let resets: Vec<usize> = if job == "api" && instance == "c" {
                    vec![230, 470]
                } else {
                    Vec::new()
                };
                let step = if code == "200" { 1.0 } else { 0.25 };
                requests.push(Series {
                    name: "http_requests_total".into(),
                    labels: format!("code=\"{code}\",instance=\"{instance}\",job=\"{job}\""),
                    samples: counter(&mut rng, &t, step, &resets),
                });
            }
        }
    }
    families.push(("http_requests", "counter", requests));

    let mut cpu = Vec::new();
    for instance in ["a", "b"] {
        for mode in ["idle", "system", "user"] {
            let t = times(&mut rng, T0_S, end, 30);
            cpu.push(Series {
                name: "cpu_seconds_total".into(),
                labels: format!("instance=\"{instance}\",mode=\"{mode}\""),
                samples: counter(&mut rng, &t, 0.731, &[]),
            });
        }
    }
    families.push(("cpu_seconds", "counter", cpu));

    let mut memory = Vec::new();
    for instance in ["a", "b", "c"] {
        let t = times(&mut rng, T0_S, end, 30);
        let mut level = 1.0e9 + rng.below(1_000_000_000) as f64;
        memory.push(Series {
            name: "memory_bytes".into(),
            labels: format!("instance=\"{instance}\",job=\"api\""),
            samples: gauge(&mut rng, &t, |rng, _| {
                level += (rng.below(2_000_001) as f64 - 1_000_000.0) * 4096.0;
                level
            }),
        });
    }
    families.push(("memory_bytes", "gauge", memory));

    let mut temperature = Vec::new();
    for (room, base) in [
        ("attic", 30.0),
        ("cellar", -4.0),
        ("hall", 19.0),
        ("kitchen", 22.0),
    ] {
        let t = times(&mut rng, T0_S, end, 30);
        temperature.push(Series {
            name: "temperature".into(),
            labels: format!("room=\"{room}\""),
            samples: gauge(&mut rng, &t, |rng, i| {
                base + (i as f64 / 40.0).sin() * 5.0 + (rng.below(2001) as f64 - 1000.0) / 1000.0
            }),
        });
    }
    families.push(("temperature", "gauge", temperature));

    let mut queue = Vec::new();
    for name in ["q1", "q2", "q3", "q4", "q5"] {
        let t = times(&mut rng, T0_S, end, 30);
        queue.push(Series {
            name: "queue_length".into(),
            labels: format!("queue=\"{name}\""),
            samples: gauge(&mut rng, &t, |rng, _| rng.below(8) as f64),
        });
    }
    families.push(("queue_length", "gauge", queue));

    let mut histogram = Vec::new();
    for job in ["api", "web"] {
        let t = times(&mut rng, T0_S, end, 30);
        // A history of 10000 observations before the data starts (see
        // `counter`).
        let mut buckets: [f64; BUCKETS.len()] =
            std::array::from_fn(|i| (10_000 * (i + 1) / BUCKETS.len()) as f64);
        let (mut count, mut sum) = (10_000.0, 3_000.0);
        let mut rows: Vec<Vec<(i64, f64)>> = vec![Vec::new(); BUCKETS.len() + 2];
        for &ts in &t {
            for _ in 0..rng.below(30) {
                // Skewed latencies: mostly small, a long tail.
                let x = rng.unit().powi(3) * 4.0;
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let bound: f64 = if *bound == "+Inf" {
                        f64::INFINITY
                    } else {
                        bound.parse().unwrap_or(f64::INFINITY)
                    };
                    if x <= bound {
                        buckets[i] += 1.0;
                    }
                }
                count += 1.0;
                sum += x;
            }
            for (i, b) in buckets.iter().enumerate() {
                rows[i].push((ts, *b));
            }
            rows[BUCKETS.len()].push((ts, (sum * 1e6f64).round() / 1e6));
            rows[BUCKETS.len() + 1].push((ts, count));
        }
        let mut rows = rows.into_iter();
        for bound in BUCKETS {
            histogram.push(Series {
                name: "request_seconds_bucket".into(),
                labels: format!("job=\"{job}\",le=\"{bound}\""),
                samples: rows.next().unwrap_or_default(),
            });
        }
        histogram.push(Series {
            name: "request_seconds_sum".into(),
            labels: format!("job=\"{job}\""),
            samples: rows.next().unwrap_or_default(),
        });
        histogram.push(Series {
            name: "request_seconds_count".into(),
            labels: format!("job=\"{job}\""),
            samples: rows.next().unwrap_or_default(),
        });
    }
    families.push(("request_seconds", "histogram", histogram));

    let mut weird = Vec::new();
    for kind in ["huge", "inf", "mixed", "nan", "tiny", "zero"] {
        let t = times(&mut rng, T0_S, end, 30);
        weird.push(Series {
            name: "weird".into(),
            labels: format!("kind=\"{kind}\""),
            samples: gauge(&mut rng, &t, |rng, i| match kind {
                // Large, but squares and sums stay finite: on overflow 2.42's
                // Kahan sums turn +Inf into NaN, 3.x's keep +Inf.
                "huge" => 1e150 * (1.0 + rng.unit()),
                "inf" => {
                    if i % 2 == 0 {
                        f64::INFINITY
                    } else {
                        f64::NEG_INFINITY
                    }
                }
                "mixed" => match i % 11 {
                    3 => f64::NAN,
                    7 => f64::INFINITY,
                    _ => rng.unit() * 100.0 - 50.0,
                },
                "nan" => f64::NAN,
                "tiny" => 1e-300 * (1.0 + rng.unit()),
                _ => 0.0,
            }),
        });
    }
    families.push(("weird", "gauge", weird));

    let mut churn = Vec::new();
    for (phase, from, to) in [("early", T0_S, T0_S + 3_600), ("late", T0_S + 5_400, end)] {
        let t = times(&mut rng, from, to, 30);
        churn.push(Series {
            name: "churn".into(),
            labels: format!("phase=\"{phase}\""),
            samples: gauge(&mut rng, &t, |rng, _| rng.below(100) as f64 / 4.0),
        });
    }
    families.push(("churn", "gauge", churn));

    let mut sparse = Vec::new();
    for id in ["1", "2"] {
        // Samples 1 to 8 minutes apart: gaps longer than the 5 m lookback.
        let mut t = Vec::new();
        let mut s = T0_S;
        let series_no = next_series_no();
        while s < end {
            t.push(s * 1000 + millis(series_no, s));
            s += 60 * (1 + rng.below(8) as i64);
        }
        sparse.push(Series {
            name: "sparse".into(),
            labels: format!("id=\"{id}\""),
            samples: gauge(&mut rng, &t, |rng, _| rng.below(1000) as f64 / 10.0),
        });
    }
    families.push(("sparse", "gauge", sparse));

    let mut up = Vec::new();
    for job in ["api", "web"] {
        for instance in ["a", "b", "c"] {
            let t = times(&mut rng, T0_S, end, 30);
            let down = job == "web" && instance == "b";
            up.push(Series {
                name: "up".into(),
                labels: format!("instance=\"{instance}\",job=\"{job}\""),
                samples: gauge(&mut rng, &t, |_, i| {
                    if down && (100..140).contains(&i) {
                        0.0
                    } else {
                        1.0
                    }
                }),
            });
        }
    }
    families.push(("up", "gauge", up));

    let mut info = Vec::new();
    for (instance, version) in [("a", "1.2.0"), ("b", "1.2.0"), ("c", "1.3.1")] {
        let t = times(&mut rng, T0_S, end, 30);
        info.push(Series {
            name: "build_info".into(),
            labels: format!("instance=\"{instance}\",job=\"api\",version=\"{version}\""),
            samples: gauge(&mut rng, &t, |_, _| 1.0),
        });
    }
    families.push(("build_info", "gauge", info));
    families
}

/// A float as OpenMetrics writes it (Go's shortest representation).
fn om_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

/// The data file: one family after the other, each series' samples in
/// time order, timestamps in seconds with milliseconds.
pub fn openmetrics() -> String {
    SERIES_NO.store(0, std::sync::atomic::Ordering::Relaxed);
    let mut out = String::new();
    for (family, kind, series) in dataset() {
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for s in series {
            for (t, v) in s.samples {
                let _ = writeln!(
                    out,
                    "{}{{{}}} {} {}.{:03}",
                    s.name,
                    s.labels,
                    om_float(v),
                    t / 1000,
                    t % 1000
                );
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

const COUNTERS: &[&str] = &[
    "http_requests_total",
    "http_requests_total{job=\"api\"}",
    "http_requests_total{code!=\"200\"}",
    "http_requests_total{instance=~\"a|b\"}",
    "http_requests_total{instance!~\"c\",job=\"web\"}",
    "cpu_seconds_total",
    "cpu_seconds_total{mode=\"idle\"}",
    "request_seconds_count",
    "request_seconds_sum",
    "request_seconds_bucket{le=\"0.5\"}",
];

const GAUGES: &[&str] = &[
    "memory_bytes",
    "temperature",
    "temperature{room=~\"hall|cellar\"}",
    "queue_length",
    "queue_length{queue!=\"q3\"}",
    "churn",
    "sparse",
    "up",
    "weird",
    "weird{kind=\"mixed\"}",
    "weird{kind=~\"zero|tiny|huge\"}",
];

const RANGES: &[&str] = &["1m", "2m", "5m", "10m", "30m", "1h"];
const LABELS: &[&str] = &[
    "job", "instance", "code", "mode", "room", "queue", "kind", "le",
];
const OFFSETS: &[&str] = &[
    " offset 5m",
    " offset 1h",
    " offset -3m",
    " @ 1700003000",
    " @ 1700007203",
    " @ start()",
    " @ end()",
];

fn selector(rng: &mut Rng, pool: &[&str]) -> String {
    let mut s = (*rng.pick(pool)).to_string();
    if rng.chance(12) {
        let offset: &&str = rng.pick(OFFSETS);
        s.push_str(offset);
    }
    s
}

fn range_selector(rng: &mut Rng, pool: &[&str]) -> String {
    let base = (*rng.pick(pool)).to_string();
    let mut s = format!("{base}[{}]", rng.pick(RANGES));
    if rng.chance(12) {
        let offset: &&str = rng.pick(OFFSETS);
        s.push_str(offset);
    }
    s
}

fn grouping(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => String::new(),
        1 => format!(" by ({})", rng.pick(LABELS)),
        _ => {
            let a = rng.pick(LABELS);
            let b = rng.pick(LABELS);
            if a == b {
                format!(" without ({a})")
            } else {
                format!(" without ({a}, {b})")
            }
        }
    }
}

/// A range-vector function over a selector or a subquery.
fn range_function(rng: &mut Rng) -> String {
    const COUNTER_FNS: &[&str] = &["rate", "irate", "increase", "resets", "changes"];
    const GAUGE_FNS: &[&str] = &[
        "delta",
        "idelta",
        "deriv",
        "changes",
        "resets",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "present_over_time",
        "stddev_over_time",
        "stdvar_over_time",
    ];
    match rng.below(10) {
        0..=3 => format!(
            "{}({})",
            rng.pick(COUNTER_FNS),
            range_selector(rng, COUNTERS)
        ),
        4..=6 => format!("{}({})", rng.pick(GAUGE_FNS), range_selector(rng, GAUGES)),
        7 => format!(
            "quantile_over_time({}, {})",
            rng.pick(&["0", "0.25", "0.5", "0.9", "1"]),
            range_selector(rng, GAUGES)
        ),
        8 => format!(
            "predict_linear({}, {})",
            range_selector(rng, GAUGES),
            rng.pick(&["60", "600", "-300", "3600"])
        ),
        _ => {
            // A subquery; steps are multiples of 5 s (see the module docs).
            let inner = match rng.below(3) {
                0 => format!("rate({})", range_selector(rng, COUNTERS)),
                1 => selector(rng, GAUGES),
                _ => aggregation(rng, 0),
            };
            let outer = rng.pick(&[
                "max_over_time",
                "min_over_time",
                "avg_over_time",
                "sum_over_time",
                "count_over_time",
                "deriv",
                "rate",
                "delta",
                "stddev_over_time",
            ]);
            let step = rng.pick(&["", "10s", "15s", "30s", "1m", "2m", "5m"]);
            let range = rng.pick(&["10m", "30m", "1h"]);
            format!("{outer}(({inner})[{range}:{step}])")
        }
    }
}

/// An instant-vector expression of at most `depth` levels of nesting.
fn vector(rng: &mut Rng, depth: u32) -> String {
    if depth == 0 {
        return match rng.below(3) {
            0 => selector(rng, COUNTERS),
            1 => selector(rng, GAUGES),
            _ => range_function(rng),
        };
    }
    match rng.below(6) {
        0 | 1 => aggregation(rng, depth - 1),
        2 => math(rng, depth - 1),
        3 => binary(rng, depth - 1),
        4 => range_function(rng),
        _ => special(rng, depth - 1),
    }
}

fn aggregation(rng: &mut Rng, depth: u32) -> String {
    let inner = vector(rng, depth);
    let by = grouping(rng);
    match rng.below(12) {
        0..=7 => {
            let op = rng.pick(&[
                "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
            ]);
            format!("{op}{by} ({inner})")
        }
        8 | 9 => format!(
            "{}{by} ({}, {inner})",
            rng.pick(&["topk", "bottomk"]),
            rng.pick(&["1", "2", "3"])
        ),
        10 => format!(
            "quantile{by} ({}, {inner})",
            rng.pick(&["0", "0.1", "0.5", "0.75", "1"])
        ),
        _ => format!("count_values{by} (\"value\", {inner})"),
    }
}

fn math(rng: &mut Rng, depth: u32) -> String {
    let inner = vector(rng, depth);
    match rng.below(8) {
        0 => format!(
            "{}({inner})",
            rng.pick(&[
                "abs", "ceil", "floor", "round", "sqrt", "sgn", "exp", "ln", "log2", "log10"
            ])
        ),
        1 => format!("round({inner}, {})", rng.pick(&["0.25", "10", "0.001"])),
        2 => format!(
            "{}({inner})",
            rng.pick(&[
                "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh",
                "acosh", "atanh", "deg", "rad"
            ])
        ),
        3 => format!(
            "clamp({inner}, {}, {})",
            rng.pick(&["-1", "0", "5"]),
            rng.pick(&["10", "100"])
        ),
        4 => format!(
            "{}({inner}, {})",
            rng.pick(&["clamp_min", "clamp_max"]),
            rng.pick(&["0", "2.5", "50"])
        ),
        5 => {
            let pool = if rng.chance(50) { GAUGES } else { COUNTERS };
            format!("timestamp({})", selector(rng, pool))
        }
        6 => format!("-({inner})"),
        _ => format!("{}({inner})", rng.pick(&["sort", "sort_desc"])),
    }
}

fn binary(rng: &mut Rng, depth: u32) -> String {
    let left = vector(rng, depth);
    match rng.below(7) {
        0 => format!(
            "{left} {} {}",
            rng.pick(&["+", "-", "*", "/", "%", "^", "atan2"]),
            rng.pick(&[
                "2",
                "0",
                "-1.5",
                "1e3",
                "scalar(up{job=\"api\",instance=\"a\"})"
            ])
        ),
        1 => format!(
            "{} {} {left}",
            rng.pick(&["10", "0.5", "-2"]),
            rng.pick(&["+", "-", "*", "/", "%", "^"])
        ),
        2 => format!(
            "{left} {} {}",
            rng.pick(&[
                "==", "!=", ">", "<", ">=", "<=", "> bool", "< bool", "== bool"
            ]),
            rng.pick(&["0", "1", "20", "100"])
        ),
        3 => {
            let right = vector(rng, depth);
            let op = rng.pick(&["+", "-", "*", "/", ">", "< bool", "and", "or", "unless"]);
            let matching = rng.pick(&[
                "",
                " on (instance)",
                " on (job, instance)",
                " ignoring (code)",
                " ignoring (mode, code)",
                " on ()",
            ]);
            format!("({left}) {op}{matching} ({right})")
        }
        4 => {
            let side = rng.pick(&["api", "web"]);
            format!(
                "sum by (instance, job) (rate(http_requests_total{{job=\"{side}\"}}[5m])) {} on (instance, job) group_left ({}) {}",
                rng.pick(&["*", "/", "+"]),
                rng.pick(&["version", ""]),
                rng.pick(&["build_info", "up", "build_info offset 10m"])
            )
        }
        5 => format!(
            "{} {} on (instance) group_right {}",
            rng.pick(&["up{job=\"api\"}", "build_info"]),
            rng.pick(&["*", "+", "<=", "!="]),
            rng.pick(&[
                "rate(http_requests_total{job=\"api\"}[5m])",
                "http_requests_total{job=\"api\"}",
                "memory_bytes"
            ])
        ),
        _ => format!(
            "{} {} ignoring (mode) group_left {}",
            rng.pick(&[
                "rate(cpu_seconds_total[5m])",
                "cpu_seconds_total",
                "increase(cpu_seconds_total[10m])"
            ]),
            rng.pick(&["/", "-", ">"]),
            rng.pick(&[
                "sum without (mode) (rate(cpu_seconds_total[5m]))",
                "count without (mode) (cpu_seconds_total)",
                "max without (mode) (cpu_seconds_total)"
            ])
        ),
    }
}

fn special(rng: &mut Rng, depth: u32) -> String {
    match rng.below(11) {
        0 => format!(
            "histogram_quantile({}, sum by (le{}) (rate(request_seconds_bucket{}[{}])))",
            rng.pick(&["0", "0.5", "0.9", "0.99", "1", "-1", "2"]),
            rng.pick(&["", ", job"]),
            rng.pick(&["", "{job=\"web\"}"]),
            rng.pick(&["1m", "5m", "30m"])
        ),
        1 => format!(
            "histogram_quantile({}, request_seconds_bucket{})",
            rng.pick(&["0.25", "0.75", "0.95"]),
            rng.pick(&["", "{job=\"api\"}", " offset 30m"])
        ),
        2 => format!(
            "label_replace({}, \"{}\", \"$1-x\", \"{}\", \"{}\")",
            vector(rng, depth),
            rng.pick(&["dst", "instance", "job"]),
            rng.pick(&["instance", "job", "code", "room", "nope"]),
            rng.pick(&["(.*)", "([ab])", "(.)(.*)", ".+"])
        ),
        3 => format!(
            "label_join({}, \"joined\", \"{}\", \"{}\", \"{}\")",
            vector(rng, depth),
            rng.pick(&["-", ",", ""]),
            rng.pick(&["instance", "job", "room"]),
            rng.pick(&["code", "job", "queue"])
        ),
        4 => format!(
            "absent({})",
            selector(
                rng,
                &[
                    "nonexistent",
                    "nonexistent{job=\"x\"}",
                    "up{job=\"api\"}",
                    "churn{phase=\"early\"}"
                ]
            )
        ),
        5 => format!(
            "absent_over_time({}[{}])",
            rng.pick(&[
                "nonexistent{a=\"b\"}",
                "churn{phase=\"early\"}",
                "sparse{id=\"1\"}"
            ]),
            rng.pick(&["1m", "10m", "1h"])
        ),
        6 => format!(
            "vector({})",
            rng.pick(&["1", "time()", "scalar(sum(up))", "scalar(up)", "pi()"])
        ),
        7 => format!(
            "{}({})",
            rng.pick(&[
                "hour",
                "minute",
                "day_of_week",
                "day_of_month",
                "days_in_month",
                "month",
                "year"
            ]),
            rng.pick(&[
                "",
                "timestamp(up)",
                "vector(1700000000)",
                "vector(1709251199)",
                "timestamp(sparse)"
            ])
        ),
        8 => format!("time() - timestamp({})", selector(rng, GAUGES)),
        9 => format!(
            "count_values by (queue) (\"v\", queue_length) {} {}",
            rng.pick(&["*", "+"]),
            rng.pick(&["2", "0.5"])
        ),
        _ => format!(
            "sum by (job) (rate(http_requests_total{{code=\"500\"}}[{r}])) / sum by (job) (rate(http_requests_total[{r}]))",
            r = rng.pick(&["1m", "5m", "15m"])
        ),
    }
}

/// Scalar-valued queries (instant and range queries take them too).
fn scalar(rng: &mut Rng) -> String {
    let inner = vector(rng, 1);
    rng.pick(&[
        format!("scalar({inner})"),
        format!("scalar(sum({inner}))"),
        "time()".to_string(),
        format!("scalar(count({inner})) * 2"),
        "1 + 2 * 3 ^ 2 % 5".to_string(),
        "-(2 ^ 3)".to_string(),
        "1 / 0 - 1 / 0".to_string(),
        "minute()".to_string(),
    ])
    .clone()
}

/// Instant-only queries: range vectors as results.
fn matrix(rng: &mut Rng) -> String {
    let options = [
        range_selector(rng, GAUGES),
        range_selector(rng, COUNTERS),
        format!("rate({})[10m:1m]", range_selector(rng, COUNTERS)),
        format!("({})[5m:15s]", selector(rng, GAUGES)),
    ];
    rng.pick(&options).clone()
}

/// The corpus: at least 500 distinct queries, in generation order.
pub fn queries() -> Vec<String> {
    let mut rng = Rng::new(0x9E_7A1);
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while out.len() < 560 {
        let q = match rng.below(20) {
            0 => scalar(&mut rng),
            1 => matrix(&mut rng),
            n => vector(&mut rng, if n < 8 { 1 } else { 2 }),
        };
        if q.len() > 400 || DROPPED.iter().any(|(d, _)| *d == q) {
            continue;
        }
        if seen.insert(q.clone()) {
            out.push(q);
        }
    }
    out
}

/// The corpus file: a header, the dropped queries with reasons, one query
/// per line.
pub fn corpus_file() -> String {
    let mut out = String::from(
        "# PromQL differential corpus: generated by tests/promql_differential/generate.rs,\n\
         # run against Prometheus and Sextant by tests/promql_differential.rs.\n\
         # One query per line; '#' lines are comments.\n",
    );
    if DROPPED.is_empty() {
        out.push_str("# Dropped queries (Prometheus 2.42 and 3.x differ on purpose): none.\n");
    } else {
        out.push_str("# Dropped queries (Prometheus 2.42 and 3.x differ on purpose):\n");
        for (query, reason) in DROPPED {
            let _ = writeln!(out, "#   {query}\n#     because {reason}");
        }
    }
    for q in queries() {
        out.push_str(&q);
        out.push('\n');
    }
    out
}

/// The queries of a corpus file.
pub fn parse_corpus(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}
