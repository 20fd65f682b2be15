//! Recommendation computation at fleet scale: 10,000 workloads x 3 containers with 8
//! days of 15 s history fed through the VPA histograms, then a full refresh of every
//! recommendation; plus one HPA sync for each of 10,000 workloads.
//!
//! Run: `cargo bench -p autoscaler --bench recommend`. Before the criterion timings it
//! builds the whole fleet once and prints the wall time of feeding the history, the
//! memory the model holds (growth of the resident set), and the time of one full
//! refresh. `SEXTANT_BENCH_WORKLOADS=N` shrinks the fleet for a quick look. Without
//! `--bench` (as under `cargo test --benches`) everything runs once on a tiny fleet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use autoscaler::hpa::{
    self, History, MetricReading, Observation, Options as HpaOptions, PodMetric,
};
use autoscaler::model::{CPU, HorizontalPodAutoscalerSpec, Pod};
use autoscaler::vpa::{self, AggregateState, ContainerState};
use criterion::{BatchSize, Criterion, Throughput};

const T0: i64 = 1_699_920_000_000; // 2023-11-14T00:00:00Z
const STEP_MS: i64 = 15_000;
const SAMPLES_PER_DAY: usize = 5760;
const CONTAINERS: usize = 3;

/// A seeded xorshift: cheap enough not to dominate the feeding time.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Daily usage profiles (a fraction of the peak per 15 s slot): a sine, a business-day
/// plateau, a flat line and a nightly batch spike.
fn profiles() -> Vec<Vec<f64>> {
    let slot_phase = |i: usize| i as f64 / SAMPLES_PER_DAY as f64;
    vec![
        (0..SAMPLES_PER_DAY)
            .map(|i| 0.55 + 0.45 * (std::f64::consts::TAU * slot_phase(i)).sin())
            .collect(),
        (0..SAMPLES_PER_DAY)
            .map(|i| {
                if (0.35..0.75).contains(&slot_phase(i)) {
                    1.0
                } else {
                    0.3
                }
            })
            .collect(),
        vec![0.6; SAMPLES_PER_DAY],
        (0..SAMPLES_PER_DAY)
            .map(|i| {
                if (0.08..0.1).contains(&slot_phase(i)) {
                    1.0
                } else {
                    0.2
                }
            })
            .collect(),
    ]
}

/// The usage model of one workload: one aggregate per container (a single pod).
struct Model {
    aggregates: BTreeMap<String, AggregateState>,
}

/// Feeds `days` days of 15 s samples of every container of workload `w`.
fn build_workload(w: usize, days: usize, profiles: &[Vec<f64>], options: &vpa::Options) -> Model {
    let mut aggregates = BTreeMap::new();
    for c in 0..CONTAINERS {
        let mut aggregate = AggregateState::new(options, T0).unwrap();
        let mut state = ContainerState::default();
        let mut noise = Noise(0x9E37_79B9_7F4A_7C15 ^ ((w * CONTAINERS + c) as u64 + 1));
        let profile = &profiles[(w + c) % profiles.len()];
        let peak_millicores = 50.0 + (noise.next() % 4000) as f64;
        let peak_bytes = 64e6 + (noise.next() % 4_000_000_000) as f64;
        for i in 0..days * SAMPLES_PER_DAY {
            let t = T0 + i as i64 * STEP_MS;
            let level = profile[i % SAMPLES_PER_DAY];
            let jitter = 0.9 + (noise.next() % 200) as f64 / 1000.0;
            state.add_cpu_sample(&mut aggregate, t, (peak_millicores * level * jitter) as i64);
            state.add_memory_sample(
                &mut aggregate,
                t,
                (peak_bytes * (0.5 + 0.5 * level) * jitter) as i64,
                options,
            );
        }
        aggregates.insert(format!("container-{c}"), aggregate);
    }
    Model { aggregates }
}

/// Builds the fleet on every core (workloads are independent).
fn build_fleet(workloads: usize, days: usize, options: &vpa::Options) -> Vec<Model> {
    let profiles = profiles();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(workloads.max(1));
    let chunk = workloads.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let profiles = &profiles;
                scope.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(workloads))
                        .map(|w| build_workload(w, days, profiles, options))
                        .collect::<Vec<Model>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// Every container's recommendation, as a refresh computes them.
fn refresh(fleet: &[Model], options: &vpa::Options) -> usize {
    fleet
        .iter()
        .map(|m| vpa::recommend(&m.aggregates, options, None).len())
        .sum()
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn hpa_fleet(workloads: usize) -> (HorizontalPodAutoscalerSpec, Vec<Observation>) {
    let spec: HorizontalPodAutoscalerSpec = serde_yaml::from_str(
        "minReplicas: 2\nmaxReplicas: 50\nmetrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}}]",
    )
    .unwrap();
    let mut noise = Noise(42);
    let observations = (0..workloads)
        .map(|w| {
            let pods: Vec<Pod> = (0..10)
                .map(|p| Pod::running(&format!("w{w}-p{p}"), T0 - 86_400_000, &[(CPU, 500)]))
                .collect();
            let samples: BTreeMap<String, PodMetric> = pods
                .iter()
                .map(|p| {
                    let sample = PodMetric {
                        value_milli: (noise.next() % 600) as i64,
                        timestamp_ms: T0,
                        window_ms: 30_000,
                    };
                    (p.name.clone(), sample)
                })
                .collect();
            Observation {
                spec_replicas: 10,
                status_replicas: 10,
                pods,
                readings: vec![MetricReading::PerPod(samples)],
            }
        })
        .collect();
    (spec, observations)
}

fn main() {
    let full_run = std::env::args().any(|a| a == "--bench");
    let workloads = std::env::var("SEXTANT_BENCH_WORKLOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full_run { 10_000 } else { 20 });
    let days = if full_run { 8 } else { 1 };
    let options = vpa::Options::default();

    let rss_before = resident_bytes();
    let started = Instant::now();
    let fleet = build_fleet(workloads, days, &options);
    let build_time = started.elapsed();
    let rss_after = resident_bytes();
    let started = Instant::now();
    let recommended = refresh(&fleet, &options);
    let refresh_time = started.elapsed();
    let samples = workloads * CONTAINERS * days * SAMPLES_PER_DAY;
    println!(
        "fleet: {workloads} workloads x {CONTAINERS} containers, {days} days of 15 s history = {samples} cpu + {samples} memory samples"
    );
    println!(
        "  feeding the history: {:.1} s on {} threads ({:.0} ns per container-sample pair)",
        build_time.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        build_time.as_nanos() as f64 / samples as f64
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        println!(
            "  model memory (resident set growth): {:.1} MiB ({:.0} bytes per container)",
            after.saturating_sub(before) as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / (workloads * CONTAINERS) as f64
        );
    }
    println!(
        "  full refresh: {recommended} container recommendations in {:.1} ms",
        refresh_time.as_secs_f64() * 1000.0
    );

    let mut c = Criterion::default().configure_from_args();
    if full_run {
        c = c.measurement_time(Duration::from_secs(10)).sample_size(10);
    }

    let mut group = c.benchmark_group("vpa");
    group.throughput(Throughput::Elements((workloads * CONTAINERS) as u64));
    group.bench_function(format!("refresh_{workloads}_workloads_x3"), |b| {
        b.iter(|| black_box(refresh(&fleet, &options)));
    });
    let profiles = profiles();
    group.throughput(Throughput::Elements(
        (CONTAINERS * days * SAMPLES_PER_DAY) as u64,
    ));
    group.bench_function(format!("feed_one_workload_x3_{days}d_15s"), |b| {
        b.iter(|| {
            black_box(
                build_workload(7, days, &profiles, &options)
                    .aggregates
                    .len(),
            )
        });
    });
    group.finish();
    drop(fleet);

    let (spec, observations) = hpa_fleet(workloads);
    let hpa_options = HpaOptions::default();
    let mut group = c.benchmark_group("hpa");
    group.throughput(Throughput::Elements(workloads as u64));
    group.bench_function(format!("reconcile_{workloads}_workloads_10_pods"), |b| {
        b.iter_batched(
            || vec![History::default(); observations.len()],
            |mut histories| {
                let mut desired = 0i64;
                for (obs, history) in observations.iter().zip(histories.iter_mut()) {
                    desired += i64::from(
                        hpa::reconcile(&spec, obs, history, T0, &hpa_options).desired_replicas,
                    );
                }
                black_box(desired)
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
    c.final_summary();
}
