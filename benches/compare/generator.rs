//! The synthetic scrape targets: `targets` HTTP servers on loopback, each
//! serving `/metrics` with `units * SERIES_PER_UNIT` series in the text
//! format 0.0.4.
//!
//! Every unit of a target holds 20 series:
//! - `synthetic_http_requests_total{handler,method,code}`: 4 integer
//!   counters, each with its own rate (a quarter of them idle most of the
//!   time, errors rarer than successes);
//! - `synthetic_cpu_seconds_total{worker,mode}`: 2 counters in hundredths of
//!   a second (values like `1234.56`);
//! - `synthetic_memory_bytes{pool}`: a gauge moving in whole 4 KiB pages,
//!   unchanged in most scrapes;
//! - `synthetic_queue_depth{queue}`: an integer random walk;
//! - `synthetic_request_duration_seconds{handler}`: a classic histogram with
//!   10 buckets (+Inf included), `_sum` in microsecond steps and `_count`.
//!
//! Deterministic per scrape: the n-th request to a target returns the same
//! body in every run (values advance one step per request from a seeded
//! generator), so each compared system sees the same data. Rendering is cheap:
//! the text before every value (HELP/TYPE lines, name and labels) is built
//! once; a scrape copies it and prints values with `itoa`/`ryu`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Series in one unit (see the module doc).
pub const SERIES_PER_UNIT: usize = 20;
const REQUESTS_PER_UNIT: usize = 4;
const CPU_PER_UNIT: usize = 2;
const BUCKETS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
];
/// Upper bounds in microseconds for drawing observations (+Inf: 5 s).
const BUCKET_MICROS: [u64; 10] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
];

/// The values of one target at its current scrape.
#[derive(Clone)]
struct Values {
    rng: StdRng,
    requests: Vec<u64>,
    request_rates: Vec<u32>,
    cpu_centis: Vec<u64>,
    cpu_rates: Vec<u32>,
    memory: Vec<u64>,
    queue: Vec<u64>,
    /// Per bucket, not cumulative; printed cumulative.
    buckets: Vec<u64>,
    sum_micros: Vec<u64>,
}

impl Values {
    fn new(seed: u64, units: usize) -> Values {
        let mut rng = StdRng::seed_from_u64(seed);
        let request_rates = (0..units * REQUESTS_PER_UNIT)
            .map(|i| match (i % 4, rng.random_range(0..4)) {
                (_, 0) => 0,                          // mostly idle
                (1 | 3, _) => rng.random_range(0..3), // code="500"
                _ => rng.random_range(1..200),
            })
            .collect();
        let cpu_rates = (0..units * CPU_PER_UNIT)
            .map(|_| rng.random_range(0..500))
            .collect();
        Values {
            requests: (0..units * REQUESTS_PER_UNIT)
                .map(|_| rng.random_range(0..1_000_000))
                .collect(),
            request_rates,
            cpu_centis: (0..units * CPU_PER_UNIT)
                .map(|_| rng.random_range(0..100_000_000))
                .collect(),
            cpu_rates,
            memory: (0..units)
                .map(|_| rng.random_range(1_000..500_000) * 4096)
                .collect(),
            queue: (0..units).map(|_| rng.random_range(0..100)).collect(),
            buckets: (0..units * BUCKETS.len())
                .map(|_| rng.random_range(0..10_000))
                .collect(),
            sum_micros: (0..units)
                .map(|_| rng.random_range(0..1_000_000_000))
                .collect(),
            rng,
        }
    }

    /// One scrape interval passes.
    fn advance(&mut self) {
        let rng = &mut self.rng;
        for (value, rate) in self.requests.iter_mut().zip(&self.request_rates) {
            if *rate == 0 {
                *value += u64::from(rng.random_range(0..50) == 0);
            } else {
                *value += u64::from(rng.random_range(0..=2 * rate));
            }
        }
        for (value, rate) in self.cpu_centis.iter_mut().zip(&self.cpu_rates) {
            *value += u64::from(rng.random_range(0..=*rate));
        }
        for value in &mut self.memory {
            if rng.random_range(0..10) < 3 {
                let pages: u64 = rng.random_range(1..256);
                if rng.random_bool(0.5) {
                    *value += pages * 4096;
                } else {
                    *value = value.saturating_sub(pages * 4096).max(4096);
                }
            }
        }
        for value in &mut self.queue {
            let step: i64 = rng.random_range(-3..=3);
            *value = value.saturating_add_signed(step).min(1000);
        }
        for (unit, sum) in self.sum_micros.iter_mut().enumerate() {
            let observations = rng.random_range(0..20);
            for _ in 0..observations {
                // Skewed towards the fast buckets.
                let bucket = (rng.random_range(0..BUCKETS.len() * BUCKETS.len()) as f64)
                    .sqrt()
                    .floor() as usize;
                let bucket = BUCKETS.len() - 1 - bucket.min(BUCKETS.len() - 1);
                let bucket = bucket.min(BUCKETS.len() - 1);
                let low = if bucket == 0 {
                    0
                } else {
                    BUCKET_MICROS[bucket - 1]
                };
                let high = BUCKET_MICROS[bucket];
                *sum += rng.random_range(low..high);
                self.buckets[unit * BUCKETS.len() + bucket] += 1;
            }
        }
    }
}

/// One synthetic target.
pub struct Target {
    units: usize,
    seed: u64,
    /// For every series, the text printed before its value, concatenated.
    prefixes: Vec<u8>,
    /// End of each series' prefix in `prefixes`.
    prefix_ends: Vec<usize>,
    state: Mutex<TargetState>,
}

struct TargetState {
    values: Values,
    scrapes: u64,
    body: Vec<u8>,
}

/// One series of a target: its metric name and labels (without `job` and
/// `instance`, which the scraper or the sender adds), in the order a scrape
/// prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesDef {
    pub name: String,
    pub labels: Vec<(&'static str, String)>,
}

/// A metric family: the HELP/TYPE header printed before its first series.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    series: Vec<SeriesDef>,
}

fn series(name: &str, labels: Vec<(&'static str, String)>) -> SeriesDef {
    SeriesDef {
        name: name.to_string(),
        labels,
    }
}

fn families(units: usize) -> Vec<Family> {
    let endpoint = |unit: usize| format!("/api/v1/endpoint_{unit}");
    let mut requests = Vec::new();
    let mut cpu = Vec::new();
    let mut memory = Vec::new();
    let mut queue = Vec::new();
    let mut durations = Vec::new();
    for unit in 0..units {
        for (method, code) in [
            ("GET", "200"),
            ("GET", "500"),
            ("POST", "200"),
            ("POST", "500"),
        ] {
            requests.push(series(
                "synthetic_http_requests_total",
                vec![
                    ("handler", endpoint(unit)),
                    ("method", method.to_string()),
                    ("code", code.to_string()),
                ],
            ));
        }
        for mode in ["user", "system"] {
            cpu.push(series(
                "synthetic_cpu_seconds_total",
                vec![("worker", unit.to_string()), ("mode", mode.to_string())],
            ));
        }
        memory.push(series(
            "synthetic_memory_bytes",
            vec![("pool", format!("pool_{unit}"))],
        ));
        queue.push(series(
            "synthetic_queue_depth",
            vec![("queue", format!("queue_{unit}"))],
        ));
        for le in BUCKETS {
            durations.push(series(
                "synthetic_request_duration_seconds_bucket",
                vec![("handler", endpoint(unit)), ("le", le.to_string())],
            ));
        }
        durations.push(series(
            "synthetic_request_duration_seconds_sum",
            vec![("handler", endpoint(unit))],
        ));
        durations.push(series(
            "synthetic_request_duration_seconds_count",
            vec![("handler", endpoint(unit))],
        ));
    }
    vec![
        Family {
            name: "synthetic_http_requests_total",
            kind: "counter",
            help: "Requests handled by handler, method and code.",
            series: requests,
        },
        Family {
            name: "synthetic_cpu_seconds_total",
            kind: "counter",
            help: "CPU time of each worker by mode.",
            series: cpu,
        },
        Family {
            name: "synthetic_memory_bytes",
            kind: "gauge",
            help: "Bytes held by each pool.",
            series: memory,
        },
        Family {
            name: "synthetic_queue_depth",
            kind: "gauge",
            help: "Items waiting in each queue.",
            series: queue,
        },
        Family {
            name: "synthetic_request_duration_seconds",
            kind: "histogram",
            help: "Request latency by handler.",
            series: durations,
        },
    ]
}

/// The series of a target of `units` units, in scrape order (the order of
/// [`Target::next_values`]).
pub fn target_series(units: usize) -> Vec<SeriesDef> {
    families(units)
        .into_iter()
        .flat_map(|family| family.series)
        .collect()
}

impl Target {
    pub fn new(index: usize, units: usize, seed: u64) -> Target {
        let seed = seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut prefixes = Vec::new();
        let mut prefix_ends = Vec::new();
        for family in families(units) {
            let (name, kind, help) = (family.name, family.kind, family.help);
            let mut head = format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
            for series in family.series {
                let labels: Vec<String> = series
                    .labels
                    .iter()
                    .map(|(name, value)| format!("{name}=\"{value}\""))
                    .collect();
                prefixes.extend_from_slice(
                    format!("{head}{}{{{}}} ", series.name, labels.join(",")).as_bytes(),
                );
                prefix_ends.push(prefixes.len());
                head.clear();
            }
        }
        debug_assert_eq!(prefix_ends.len(), units * SERIES_PER_UNIT);
        Target {
            units,
            seed,
            prefixes,
            prefix_ends,
            state: Mutex::new(TargetState {
                values: Values::new(seed, units),
                scrapes: 0,
                body: Vec::new(),
            }),
        }
    }

    pub fn series(&self) -> usize {
        self.prefix_ends.len()
    }

    /// Scrapes served since the start or the last reset.
    pub fn scrapes(&self) -> u64 {
        self.state.lock().scrapes
    }

    /// Back to the first scrape's values.
    pub fn reset(&self) {
        let mut state = self.state.lock();
        state.values = Values::new(self.seed, self.units);
        state.scrapes = 0;
    }

    /// The body of the next scrape.
    pub fn scrape(&self) -> Vec<u8> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        if state.scrapes > 0 {
            state.values.advance();
        }
        state.scrapes += 1;
        render(self, &state.values, &mut state.body);
        state.body.clone()
    }

    /// The values the next scrape would print, in [`target_series`] order,
    /// without rendering them: the same sequence as [`Target::scrape`] (and
    /// it advances the same counter).
    pub fn next_values(&self, out: &mut Vec<f64>) {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        if state.scrapes > 0 {
            state.values.advance();
        }
        state.scrapes += 1;
        let values = &state.values;
        out.clear();
        out.extend(values.requests.iter().map(|v| *v as f64));
        out.extend(values.cpu_centis.iter().map(|v| *v as f64 / 100.0));
        out.extend(values.memory.iter().map(|v| *v as f64));
        out.extend(values.queue.iter().map(|v| *v as f64));
        for (unit, sum) in values.sum_micros.iter().enumerate() {
            let mut cumulative = 0u64;
            for bucket in &values.buckets[unit * BUCKETS.len()..(unit + 1) * BUCKETS.len()] {
                cumulative += bucket;
                out.push(cumulative as f64);
            }
            out.push(*sum as f64 / 1e6);
            out.push(cumulative as f64);
        }
    }
}

fn render(target: &Target, values: &Values, out: &mut Vec<u8>) {
    out.clear();
    let mut ints = itoa::Buffer::new();
    let mut floats = ryu::Buffer::new();
    let mut series = 0usize;
    let mut start = 0usize;
    let mut line = |out: &mut Vec<u8>, value: &[u8]| {
        let end = target.prefix_ends[series];
        out.extend_from_slice(&target.prefixes[start..end]);
        out.extend_from_slice(value);
        out.push(b'\n');
        start = end;
        series += 1;
    };
    for v in &values.requests {
        line(out, ints.format(*v).as_bytes());
    }
    for v in &values.cpu_centis {
        line(out, floats.format(*v as f64 / 100.0).as_bytes());
    }
    for v in &values.memory {
        line(out, ints.format(*v).as_bytes());
    }
    for v in &values.queue {
        line(out, ints.format(*v).as_bytes());
    }
    for (unit, sum) in values.sum_micros.iter().enumerate() {
        let mut cumulative = 0u64;
        for bucket in &values.buckets[unit * BUCKETS.len()..(unit + 1) * BUCKETS.len()] {
            cumulative += bucket;
            line(out, ints.format(cumulative).as_bytes());
        }
        line(out, floats.format(*sum as f64 / 1e6).as_bytes());
        line(out, ints.format(cumulative).as_bytes());
    }
}

/// Running targets: one loopback port each.
pub struct Targets {
    pub targets: Vec<Arc<Target>>,
    pub addresses: Vec<SocketAddr>,
    servers: Vec<JoinHandle<()>>,
}

impl Targets {
    /// Starts `count` targets of `units` units each.
    pub async fn start(count: usize, units: usize, seed: u64) -> std::io::Result<Targets> {
        let mut targets = Vec::new();
        let mut addresses = Vec::new();
        let mut servers = Vec::new();
        for index in 0..count {
            let target = Arc::new(Target::new(index, units, seed));
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            addresses.push(listener.local_addr()?);
            let app = Router::new()
                .route("/metrics", get(serve))
                .with_state(Arc::clone(&target));
            servers.push(tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, app).await {
                    eprintln!("synthetic target stopped: {error}");
                }
            }));
            targets.push(target);
        }
        Ok(Targets {
            targets,
            addresses,
            servers,
        })
    }

    pub fn series(&self) -> usize {
        self.targets.iter().map(|t| t.series()).sum()
    }

    pub fn reset(&self) {
        for target in &self.targets {
            target.reset();
        }
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

async fn serve(State(target): State<Arc<Target>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        target.scrape(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use scraper::exposition::{Entry, Format, Parser};

    fn samples(body: &[u8]) -> Vec<(String, f64)> {
        Parser::new(body, Format::Text)
            .filter_map(|entry| match entry.unwrap() {
                Entry::Sample(s) => Some((s.series().to_string(), s.value)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn bodies_parse_and_repeat_after_reset() {
        let target = Target::new(3, 5, 42);
        let first = target.scrape();
        let second = target.scrape();
        let parsed = samples(&first);
        assert_eq!(parsed.len(), 5 * SERIES_PER_UNIT);
        assert_eq!(samples(&second).len(), 5 * SERIES_PER_UNIT);
        assert_ne!(first, second, "values move between scrapes");
        target.reset();
        assert_eq!(target.scrape(), first);
        assert_eq!(target.scrape(), second);
    }

    #[test]
    fn next_values_are_the_scraped_series_and_values() {
        let scraped = Target::new(2, 3, 9);
        let direct = Target::new(2, 3, 9);
        let defs = target_series(3);
        let mut values = Vec::new();
        for _ in 0..3 {
            let samples = samples(&scraped.scrape());
            direct.next_values(&mut values);
            assert_eq!(samples.len(), defs.len());
            assert_eq!(values.len(), defs.len());
            for ((series, value), (def, direct)) in samples.iter().zip(defs.iter().zip(&values)) {
                let labels: Vec<String> = def
                    .labels
                    .iter()
                    .map(|(n, v)| format!("{n}=\"{v}\""))
                    .collect();
                assert_eq!(series, &format!("{}{{{}}}", def.name, labels.join(",")));
                assert_eq!(value, direct);
            }
        }
    }

    #[test]
    fn counters_never_decrease_and_histograms_are_cumulative() {
        let target = Target::new(0, 4, 7);
        let before = samples(&target.scrape());
        for _ in 0..5 {
            target.scrape();
        }
        let after = samples(&target.scrape());
        for ((name, a), (same, b)) in before.iter().zip(&after) {
            assert_eq!(name, same);
            if name.contains("_total") || name.contains("_bucket") || name.contains("_count") {
                assert!(b >= a, "{name}: {a} -> {b}");
            }
        }
        let buckets: Vec<f64> = after
            .iter()
            .filter(|(n, _)| n.contains("endpoint_2\"") && n.contains("_bucket"))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(buckets.len(), BUCKETS.len());
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
        let count = after
            .iter()
            .find(|(n, _)| {
                n.starts_with(
                    "synthetic_request_duration_seconds_count{handler=\"/api/v1/endpoint_2\"",
                )
            })
            .unwrap()
            .1;
        assert_eq!(Some(&count), buckets.last());
    }
}
