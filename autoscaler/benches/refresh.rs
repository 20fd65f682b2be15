//! The recommender service's refresh through the PromQL engine (what `sextant serve`
//! runs): workloads of 2 pods x 3 containers with cAdvisor- and kube-state-metrics
//! series at 15 s in a head.
//!
//! Two modes:
//! - default: the first refresh (every model built from the raw history in the head)
//!   and an incremental refresh after one more minute of samples.
//!   `SEXTANT_BENCH_WORKLOADS` (default 200) and `SEXTANT_BENCH_HOURS` (default 24)
//!   size it (the 10,000 workloads x 8 days of raw samples do not fit in memory).
//! - `SEXTANT_BENCH_MODEL_DAYS=8`: the goal's full size for real. Every model is
//!   brought to a `MODEL_DAYS`-day state without holding days of raw samples: the
//!   7 distinct usage patterns of the fleet are fed `MODEL_DAYS` days of one-minute
//!   usage through the model API, each workload's checkpoint is that model with its
//!   own pods, and the recommender restores them from one checkpoint file (as
//!   `sextant serve` does at start). The head holds the last hour of raw samples.
//!   Then `SEXTANT_BENCH_RUNS` (default 5) full refreshes, each after one more
//!   minute of samples: every workload fed the new minute, replicas, requests and
//!   the VPA recommendations recomputed, the report built. Wall and CPU time and
//!   the heap each refresh adds at its peak (counting allocator), min/median/max.
//!
//! Run: `cargo bench -p autoscaler --bench refresh`. Without `--bench` everything
//! runs once on a tiny fleet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use autoscaler::controller::{WorkloadKind, WorkloadRef};
use autoscaler::recommender::checkpoint::{self, Header, Record};
use autoscaler::recommender::{Options, Recommender, VpaSettings, WorkloadSpec};
use autoscaler::vpa;
use criterion::Criterion;
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Sample, SeriesRef, TimeRange};
use tsdb::promql::{Engine, EngineOptions, QueryBackend, QueryResult};
use tsdb::storage::Appendable;

/// The system allocator, counting the bytes allocated now and at the peak, so
/// the bench reports the heap a refresh adds exactly (RSS from `/proc` beside it).
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `System.alloc`, with the caller's layout.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `System.realloc`, with the caller's arguments.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                let grown = new_size - layout.size();
                let now = ALLOCATED.fetch_add(grown, Ordering::Relaxed) + grown;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                ALLOCATED.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MIB: f64 = 1024.0 * 1024.0;

/// `VmRSS` from `/proc/self/status`, in bytes (0 where there is no `/proc`).
fn rss() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb * 1024.0)
}

/// CPU seconds of this process (user + system) from `/proc/self/stat`: on a
/// shared machine wall time mostly measures the others' load.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15; 11 and 12 after the ")".
    (ticks(11) + ticks(12)) / 100.0
}

const T0: i64 = 1_699_920_000_000;
const STEP_MS: i64 = 15_000;

struct Local {
    head: Head,
    engine: Engine,
}

impl QueryBackend for Local {
    fn instant(
        &self,
        query: &str,
        at_ms: i64,
    ) -> impl Future<Output = tsdb::promql::Result<QueryResult>> + Send {
        std::future::ready(
            self.engine
                .instant_query(query, at_ms)
                .and_then(|q| q.exec(&self.head)),
        )
    }

    fn range(
        &self,
        query: &str,
        range: TimeRange,
        step: Duration,
    ) -> impl Future<Output = tsdb::promql::Result<QueryResult>> + Send {
        std::future::ready(
            self.engine
                .range_query(query, range.start, range.end, step)
                .and_then(|q| q.exec(&self.head)),
        )
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn pod(w: usize, p: usize) -> String {
    format!("w{w}-7d4b9c8f6b-{}", ["x2x5z", "k9vqw"][p])
}

/// The 25 series of workload `w`, in the order of [`values`]: per pod and
/// container its CPU counter, working set, cpu and memory requests; then its
/// replicas.
fn series(w: usize) -> Vec<Labels> {
    let ns = format!("ns{}", w % 50);
    let deployment = format!("w{w}");
    let mut out = Vec::with_capacity(SERIES_PER_WORKLOAD);
    for p in 0..2 {
        let pod = pod(w, p);
        for c in 0..3 {
            let container = format!("c{c}");
            let pairs = [
                ("namespace", ns.as_str()),
                ("pod", pod.as_str()),
                ("container", container.as_str()),
            ];
            let l = |name: &str, extra: &[(&str, &str)]| {
                let mut all = vec![("__name__", name)];
                all.extend_from_slice(&pairs);
                all.extend_from_slice(extra);
                Labels::from_pairs(&all)
            };
            out.push(l("container_cpu_usage_seconds_total", &[]));
            out.push(l("container_memory_working_set_bytes", &[]));
            for (resource, unit) in [("cpu", "core"), ("memory", "byte")] {
                out.push(l(
                    "kube_pod_container_resource_requests",
                    &[("resource", resource), ("unit", unit)],
                ));
            }
        }
    }
    out.push(Labels::from_pairs(&[
        ("__name__", "kube_deployment_spec_replicas"),
        ("namespace", ns.as_str()),
        ("deployment", deployment.as_str()),
    ]));
    out
}

const SERIES_PER_WORKLOAD: usize = 2 * 3 * 4 + 1;

/// The values of [`series`] at step `i` (15 s steps since `T0`).
fn values(w: usize, i: f64) -> impl Iterator<Item = f64> {
    (0..2)
        .flat_map(move |_| {
            (0..3).flat_map(move |c| {
                let cores = cores(w, c);
                [cores * 15.0 * i, 2e8 * cores, 0.5, 5e8]
            })
        })
        .chain([2.0])
}

/// Writes the fleet's samples, keeping the handle of every series: only the first
/// sample of a series builds its labels (building them for every sample, in
/// batches of an hour, made the setup of 10,000 workloads take minutes).
struct Writer {
    workloads: usize,
    refs: Vec<SeriesRef>,
}

impl Writer {
    fn new(workloads: usize) -> Writer {
        Writer {
            workloads,
            refs: Vec::with_capacity(workloads * SERIES_PER_WORKLOAD),
        }
    }

    /// Appends the samples of `[from, to)` for every workload, a commit every
    /// 4 steps.
    fn write(&mut self, head: &Head, from: i64, to: i64) {
        let no_labels = Labels::empty();
        let mut t = from;
        while t < to {
            let mut app = head.appender();
            let batch_end = (t + 4 * STEP_MS).min(to);
            while t < batch_end {
                let i = ((t - T0) / STEP_MS) as f64;
                for w in 0..self.workloads {
                    let first = w * SERIES_PER_WORKLOAD;
                    let labels = (self.refs.len() == first).then(|| series(w));
                    for (k, v) in values(w, i).enumerate() {
                        match &labels {
                            Some(labels) => {
                                let r = app.append(None, &labels[k], Sample::new(t, v)).unwrap();
                                self.refs.push(r);
                            }
                            None => {
                                app.append(
                                    Some(self.refs[first + k]),
                                    &no_labels,
                                    Sample::new(t, v),
                                )
                                .unwrap();
                            }
                        }
                    }
                }
                t += STEP_MS;
            }
            app.commit().unwrap();
        }
    }
}

fn specs(workloads: usize) -> Vec<WorkloadSpec> {
    (0..workloads)
        .map(|w| WorkloadSpec {
            namespace: format!("ns{}", w % 50),
            kind: WorkloadKind::Deployment,
            name: format!("w{w}"),
            hpa: None,
            metric_queries: Default::default(),
            vpa: VpaSettings::default(),
        })
        .collect()
}

/// The CPU usage of container `c` of workload `w`, in cores, as `write` writes it.
fn cores(w: usize, c: usize) -> f64 {
    0.1 * (1 + (w + c) % 7) as f64
}

fn summary(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    format!(
        "min {:.2} / median {:.2} / max {:.2}",
        values[0],
        median,
        values[values.len() - 1]
    )
}

/// The goal's size measured for real (see the module doc).
fn full_size(workloads: usize, days: i64, runs: usize) {
    const DAY: i64 = 86_400_000;
    let end = T0 + days * DAY;
    let fed_until = end - 60_000;
    let options = Options::default();
    assert_eq!(options.source.vpa_history, Duration::from_secs(8 * 86_400));
    let started = Instant::now();
    // Workload w uses the pattern of w % 7: one model per pattern, fed every minute.
    let templates: Vec<(vpa::WorkloadCheckpoint, usize, usize)> = (0..7)
        .map(|k| {
            let mut model = vpa::Workload::new(options.vpa.clone()).unwrap();
            let (mut cpu, mut memory) = (0, 0);
            let mut t = end - days * DAY;
            while t <= fed_until {
                for p in 0..2 {
                    let pod = pod(k, p);
                    for c in 0..3 {
                        let container = format!("c{c}");
                        let millicores = (cores(k, c) * 1000.0).round() as i64;
                        cpu += usize::from(model.add_cpu_sample(&pod, &container, t, millicores));
                        let bytes = (2e8 * cores(k, c)) as i64;
                        memory += usize::from(model.add_memory_sample(&pod, &container, t, bytes));
                    }
                }
                t += 60_000;
            }
            model.garbage_collect(fed_until);
            (model.save(), cpu, memory)
        })
        .collect();
    let records = (0..workloads).map(|w| {
        let (template, cpu, memory) = &templates[w % 7];
        let mut model = template.clone();
        for record in &mut model.containers {
            let p = usize::from(record.pod.ends_with("k9vqw"));
            record.pod = pod(w, p);
        }
        Record {
            workload: WorkloadRef {
                namespace: format!("ns{}", w % 50),
                kind: WorkloadKind::Deployment,
                name: format!("w{w}"),
            },
            fed_from_ms: Some(end - days * DAY),
            fed_until_ms: fed_until,
            cpu_samples: *cpu,
            memory_samples: *memory,
            dropped_samples: 0,
            model,
        }
    });
    let header = Header::new(&options.vpa, 60_000, fed_until);
    let mut file = Vec::new();
    checkpoint::write(&mut file, &header, records).unwrap();
    println!(
        "{workloads} workloads x 2 pods x 3 containers: {days}-day models as a checkpoint file of {:.1} MiB in {:.1} s",
        file.len() as f64 / MIB,
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let head = Head::new(HeadOptions::default());
    let mut writer = Writer::new(workloads);
    writer.write(&head, end - 3_600_000, end + STEP_MS);
    println!(
        "  the last hour of 15 s samples written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let backend = Local {
        head,
        engine: Engine::new(EngineOptions::default()),
    };
    let mut recommender = Recommender::new(specs(workloads), options).unwrap();
    let heap_before = ALLOCATED.load(Ordering::Relaxed);
    PEAK.store(heap_before, Ordering::Relaxed);
    let (started, cpu_started) = (Instant::now(), cpu_seconds());
    let restored = recommender.restore_checkpoints(&file).unwrap();
    assert_eq!(restored.workloads, workloads);
    println!(
        "  restored from the checkpoint file: {:.2} s wall, {:.2} CPU s, heap peak +{:.1} MiB, models keep {:.1} MiB ({:.1} KiB per workload)",
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu_started,
        (PEAK.load(Ordering::Relaxed) - heap_before) as f64 / MIB,
        (ALLOCATED.load(Ordering::Relaxed) - heap_before) as f64 / MIB,
        (ALLOCATED.load(Ordering::Relaxed) - heap_before) as f64 / 1024.0 / workloads as f64,
    );
    drop(file);

    let (mut walls, mut cpus, mut heaps) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let now = end + run as i64 * 60_000;
        if run > 0 {
            writer.write(&backend.head, now - 45_000, now + STEP_MS);
        }
        let heap_before = ALLOCATED.load(Ordering::Relaxed);
        PEAK.store(heap_before, Ordering::Relaxed);
        let (started, cpu_started) = (Instant::now(), cpu_seconds());
        let report = block_on(recommender.refresh(&backend, now));
        let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu_started);
        let heap = (PEAK.load(Ordering::Relaxed) - heap_before) as f64 / MIB;
        let report_heap = ALLOCATED
            .load(Ordering::Relaxed)
            .saturating_sub(heap_before) as f64
            / MIB;
        assert_eq!(report.workloads.len(), workloads);
        for w in &report.workloads {
            assert!(w.errors.is_empty(), "{:?}", w.errors);
            assert_eq!(w.containers.len(), 3);
            assert_eq!(w.current_replicas, Some(2));
            assert_eq!(
                w.containers[2].memory.as_ref().unwrap().current_request,
                Some(5e8)
            );
            // Every container has 8 days of history behind it, at one step a minute.
            let cpu = w.containers[0].cpu.as_ref().unwrap();
            assert!(cpu.confidence >= days as f64 - 0.01, "{}", cpu.confidence);
        }
        println!(
            "  full refresh {run} at +{run} min: {wall:.2} s wall, {cpu:.2} CPU s, heap peak +{heap:.1} MiB (of which the report keeps {report_heap:.1} MiB); RSS {:.1} MiB",
            rss() / MIB
        );
        drop(report);
        walls.push(wall);
        cpus.push(cpu);
        heaps.push(heap);
    }
    println!("  wall s: {}", summary(&mut walls));
    println!("  CPU s: {}", summary(&mut cpus));
    println!("  extra heap MiB: {}", summary(&mut heaps));
}

fn main() {
    let full_run = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let workloads = env("SEXTANT_BENCH_WORKLOADS", if full_run { 200 } else { 3 });
    let model_days = env("SEXTANT_BENCH_MODEL_DAYS", 0);
    if model_days > 0 || !full_run {
        full_size(
            workloads,
            model_days.max(1) as i64,
            env("SEXTANT_BENCH_RUNS", if full_run { 5 } else { 2 }),
        );
        if full_run {
            return;
        }
    }
    let hours = env("SEXTANT_BENCH_HOURS", if full_run { 24 } else { 1 });
    let head = Head::new(HeadOptions::default());
    let end = T0 + hours as i64 * 3_600_000;
    let started = Instant::now();
    let mut writer = Writer::new(workloads);
    writer.write(&head, T0, end + STEP_MS);
    println!(
        "{workloads} workloads x 2 pods x 3 containers, {hours} h of 15 s history written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let backend = Local {
        head,
        engine: Engine::new(EngineOptions::default()),
    };
    let specs = specs(workloads);
    let mut options = Options::default();
    options.source.vpa_history = Duration::from_secs(hours as u64 * 3600);
    let mut recommender = Recommender::new(specs.clone(), options.clone()).unwrap();
    let (heap_before, rss_before) = (ALLOCATED.load(Ordering::Relaxed), rss());
    PEAK.store(heap_before, Ordering::Relaxed);
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let report = block_on(recommender.refresh(&backend, end));
    let first = started.elapsed();
    let first_cpu = cpu_seconds() - cpu_started;
    let heap_peak = PEAK.load(Ordering::Relaxed);
    assert!(report.workloads.iter().all(|w| w.errors.is_empty()));
    assert!(report.workloads.iter().all(|w| w.containers.len() == 3));
    drop(report);
    let (heap_after, rss_after) = (ALLOCATED.load(Ordering::Relaxed), rss());
    let workload_days = workloads as f64 * hours as f64 / 24.0;
    println!(
        "  first refresh (models from history): {:.2} s wall, {:.2} CPU s = {:.3} CPU ms per workload-day",
        first.as_secs_f64(),
        first_cpu,
        first_cpu * 1000.0 / workload_days
    );
    // The same models built one workload at a time (before the models were fed
    // together), for comparison on the same data and load.
    // `SEXTANT_BENCH_ONE_BY_ONE=0` skips it (minutes at 10,000 workloads).
    if env("SEXTANT_BENCH_ONE_BY_ONE", 1) > 0 {
        let source = autoscaler::controller::Source::new(&backend, options.source.clone());
        let cpu_started = cpu_seconds();
        for spec in &specs {
            black_box(
                block_on(source.vpa_model(&spec.workload(), end, options.vpa.clone())).unwrap(),
            );
        }
        let one_by_one_cpu = cpu_seconds() - cpu_started;
        println!(
            "  the VPA models alone, one workload at a time: {:.2} CPU s = {:.3} CPU ms per workload-day",
            one_by_one_cpu,
            one_by_one_cpu * 1000.0 / workload_days
        );
    }
    println!(
        "  heap: peak {:.1} MiB above the start ({:.1} KiB per workload), models kept {:.1} MiB ({:.1} KiB per workload); RSS {:.1} -> {:.1} MiB",
        (heap_peak - heap_before) as f64 / MIB,
        (heap_peak - heap_before) as f64 / 1024.0 / workloads as f64,
        heap_after.saturating_sub(heap_before) as f64 / MIB,
        heap_after.saturating_sub(heap_before) as f64 / 1024.0 / workloads as f64,
        rss_before / MIB,
        rss_after / MIB,
    );
    writer.write(&backend.head, end + STEP_MS, end + 61 * STEP_MS);
    let started = Instant::now();
    let report = block_on(recommender.refresh(&backend, end + 60_000));
    let next = started.elapsed();
    black_box(report);
    println!(
        "  incremental refresh (1 new minute): {:.3} s, {:.3} ms per workload",
        next.as_secs_f64(),
        next.as_secs_f64() * 1000.0 / workloads as f64
    );

    let mut c = Criterion::default().configure_from_args();
    if full_run {
        c = c.measurement_time(Duration::from_secs(10)).sample_size(10);
    }
    let mut now = end + 60_000;
    c.bench_function(&format!("incremental_refresh_{workloads}_workloads"), |b| {
        b.iter(|| {
            now += 60_000;
            black_box(block_on(recommender.refresh(&backend, now)).workloads.len())
        });
    });
}
