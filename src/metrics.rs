//! Self-monitoring: a small metrics registry (counters, gauges, histograms,
//! with labels) and its text exposition format 0.0.4 writer, served on
//! `/metrics`.
//!
//! Library crates do not depend on this module: they keep their own figures
//! (atomics, stats structs) and the composition in `server` registers a
//! collector callback that reads them at scrape time. Names follow
//! `sextant_<area>_<thing>_<unit>`; counters end in `_total`.

pub mod process;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::float::format_g;

/// The content type of [`Registry::render`]'s output.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The kind of a metric family, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A float that only goes up.
#[derive(Debug, Default)]
pub struct Counter {
    bits: AtomicU64,
}

impl Counter {
    pub fn inc(&self) {
        self.inc_by(1.0);
    }

    /// Adds `v`; negative or NaN increments are ignored, a counter never
    /// goes down.
    pub fn inc_by(&self, v: f64) {
        if v > 0.0 {
            add_f64(&self.bits, v);
        }
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// A float that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge {
    bits: AtomicU64,
}

impl Gauge {
    pub fn set(&self, v: f64) {
        self.bits.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn add(&self, v: f64) {
        add_f64(&self.bits, v);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// Counts observations into fixed buckets, plus their sum and count.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds, increasing; the `+Inf` bucket is implicit.
    bounds: Arc<[f64]>,
    /// Non-cumulative count per bound, then the overflow bucket.
    counts: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
}

impl Histogram {
    fn new(bounds: Arc<[f64]>) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            bounds,
            counts,
            sum_bits: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let bucket = self.bounds.partition_point(|&bound| bound < v);
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        add_f64(&self.sum_bits, v);
    }

    /// Cumulative counts per bound (the last one is `+Inf`, the total), and
    /// the sum.
    fn snapshot(&self) -> (Vec<u64>, f64) {
        let mut cumulative = Vec::with_capacity(self.counts.len());
        let mut total = 0u64;
        for count in self.counts.iter() {
            total += count.load(Ordering::Relaxed);
            cumulative.push(total);
        }
        (
            cumulative,
            f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
        )
    }
}

/// Bucket bounds for request and query durations in seconds (client_golang's
/// defaults, extended to two minutes, the default query timeout).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

fn add_f64(bits: &AtomicU64, v: f64) {
    // A compare-and-swap loop: there is no atomic float add.
    let _ = bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
        Some((f64::from_bits(old) + v).to_bits())
    });
}

/// The children of one metric family, one per label value combination.
pub struct Family<M> {
    label_names: Vec<&'static str>,
    children: RwLock<BTreeMap<Vec<String>, Arc<M>>>,
    new_child: Box<dyn Fn() -> M + Send + Sync>,
}

impl<M> Family<M> {
    fn new(label_names: &[&'static str], new_child: Box<dyn Fn() -> M + Send + Sync>) -> Self {
        Family {
            label_names: label_names.to_vec(),
            children: RwLock::new(BTreeMap::new()),
            new_child,
        }
    }

    /// The child for these label values, in the order of the family's label
    /// names, created on first use. Keep label values bounded (handler
    /// names, status codes), never request data.
    pub fn with(&self, label_values: &[&str]) -> Arc<M> {
        debug_assert_eq!(label_values.len(), self.label_names.len());
        let key: Vec<String> = label_values.iter().map(|v| (*v).to_string()).collect();
        if let Some(child) = self.children.read().get(&key) {
            return Arc::clone(child);
        }
        let mut children = self.children.write();
        Arc::clone(
            children
                .entry(key)
                .or_insert_with(|| Arc::new((self.new_child)())),
        )
    }

    fn each(&self, mut f: impl FnMut(Vec<(&str, &str)>, &M)) {
        for (values, child) in self.children.read().iter() {
            let labels = self
                .label_names
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            f(labels, child);
        }
    }
}

/// Collects samples at scrape time; implemented by the registry's own
/// families and by callbacks that read figures kept elsewhere.
type CollectFn = Box<dyn Fn(&mut Collector) + Send + Sync>;

/// A set of metric families and collector callbacks, rendered together.
#[derive(Default)]
pub struct Registry {
    collectors: Mutex<Vec<Arc<CollectFn>>>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        label_names: &[&'static str],
    ) -> Arc<Family<Counter>> {
        let family = Arc::new(Family::new(label_names, Box::new(Counter::default)));
        let registered = Arc::clone(&family);
        self.register(move |out| {
            registered.each(|labels, counter| {
                out.sample(name, help, Kind::Counter, &labels, counter.get());
            });
        });
        family
    }

    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        label_names: &[&'static str],
    ) -> Arc<Family<Gauge>> {
        let family = Arc::new(Family::new(label_names, Box::new(Gauge::default)));
        let registered = Arc::clone(&family);
        self.register(move |out| {
            registered.each(|labels, gauge| {
                out.sample(name, help, Kind::Gauge, &labels, gauge.get());
            });
        });
        family
    }

    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        label_names: &[&'static str],
        bounds: &[f64],
    ) -> Arc<Family<Histogram>> {
        let bounds: Arc<[f64]> = bounds.into();
        let family = Arc::new(Family::new(
            label_names,
            Box::new(move || Histogram::new(Arc::clone(&bounds))),
        ));
        let registered = Arc::clone(&family);
        self.register(move |out| {
            registered.each(|labels, histogram| out.histogram(name, help, &labels, histogram));
        });
        family
    }

    /// Adds a callback that reports figures kept elsewhere (database stats,
    /// scrape pools, the process) at every render.
    pub fn register(&self, collect: impl Fn(&mut Collector) + Send + Sync + 'static) {
        self.collectors.lock().push(Arc::new(Box::new(collect)));
    }

    /// Everything in the text exposition format 0.0.4, families sorted by
    /// name.
    pub fn render(&self) -> String {
        let collectors: Vec<Arc<CollectFn>> = self.collectors.lock().clone();
        let mut out = Collector::default();
        for collect in &collectors {
            collect(&mut out);
        }
        out.render()
    }
}

/// Receives samples from collectors and groups them into families.
#[derive(Default)]
pub struct Collector {
    families: BTreeMap<&'static str, FamilyText>,
}

struct FamilyText {
    help: &'static str,
    kind: Kind,
    lines: String,
}

impl Collector {
    /// One sample of a counter or gauge family. For a counter, `name` ends in
    /// `_total`.
    pub fn sample(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let family = self.family(name, help, kind);
        write_line(&mut family.lines, name, "", labels, None, value);
    }

    pub fn counter(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.sample(name, help, Kind::Counter, &[], value);
    }

    pub fn gauge(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.sample(name, help, Kind::Gauge, &[], value);
    }

    fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        histogram: &Histogram,
    ) {
        let (cumulative, sum) = histogram.snapshot();
        let family = self.family(name, help, Kind::Histogram);
        let bounds = histogram.bounds.iter().copied().chain([f64::INFINITY]);
        for (bound, count) in bounds.zip(&cumulative) {
            let le = format_g(bound);
            write_line(
                &mut family.lines,
                name,
                "_bucket",
                labels,
                Some(&le),
                *count as f64,
            );
        }
        let total = cumulative.last().copied().unwrap_or(0);
        write_line(&mut family.lines, name, "_sum", labels, None, sum);
        write_line(
            &mut family.lines,
            name,
            "_count",
            labels,
            None,
            total as f64,
        );
    }

    fn family(&mut self, name: &'static str, help: &'static str, kind: Kind) -> &mut FamilyText {
        self.families.entry(name).or_insert_with(|| FamilyText {
            help,
            kind,
            lines: String::new(),
        })
    }

    fn render(self) -> String {
        let mut out = String::new();
        for (name, family) in self.families {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(family.help));
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            out.push_str(&family.lines);
        }
        out
    }
}

fn write_line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let pairs = labels.iter().copied().chain(le.map(|le| ("le", le)));
    let mut first = true;
    for (label_name, label_value) in pairs {
        out.push(if first { '{' } else { ',' });
        first = false;
        let _ = write!(out, "{label_name}=\"{}\"", escape_label_value(label_value));
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_g(value));
    out.push('\n');
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', r"\\").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_sorted_with_escaped_labels() {
        let registry = Registry::new();
        let requests = registry.counter(
            "sextant_http_requests_total",
            "HTTP requests by handler and status code.",
            &["handler", "code"],
        );
        requests.with(&["/api/v1/query", "200"]).inc();
        requests.with(&["/api/v1/query", "200"]).inc_by(2.0);
        requests.with(&["a\"b\\c\nd", "400"]).inc();
        let series = registry.gauge("sextant_tsdb_head_series", "Series in the head.", &[]);
        series.with(&[]).set(1234567.0);
        registry.register(|out| out.gauge("process_open_fds", "Open fds.\nSecond line", 7.0));

        assert_eq!(
            registry.render(),
            "# HELP process_open_fds Open fds.\\nSecond line\n\
             # TYPE process_open_fds gauge\n\
             process_open_fds 7\n\
             # HELP sextant_http_requests_total HTTP requests by handler and status code.\n\
             # TYPE sextant_http_requests_total counter\n\
             sextant_http_requests_total{handler=\"/api/v1/query\",code=\"200\"} 3\n\
             sextant_http_requests_total{handler=\"a\\\"b\\\\c\\nd\",code=\"400\"} 1\n\
             # HELP sextant_tsdb_head_series Series in the head.\n\
             # TYPE sextant_tsdb_head_series gauge\n\
             sextant_tsdb_head_series 1.234567e+06\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let registry = Registry::new();
        let durations = registry.histogram(
            "sextant_http_request_duration_seconds",
            "Request durations.",
            &["handler"],
            &[0.1, 1.0],
        );
        let query = durations.with(&["query"]);
        query.observe(0.05);
        query.observe(0.1);
        query.observe(0.5);
        query.observe(7.0);
        assert_eq!(
            registry.render(),
            "# HELP sextant_http_request_duration_seconds Request durations.\n\
             # TYPE sextant_http_request_duration_seconds histogram\n\
             sextant_http_request_duration_seconds_bucket{handler=\"query\",le=\"0.1\"} 2\n\
             sextant_http_request_duration_seconds_bucket{handler=\"query\",le=\"1\"} 3\n\
             sextant_http_request_duration_seconds_bucket{handler=\"query\",le=\"+Inf\"} 4\n\
             sextant_http_request_duration_seconds_sum{handler=\"query\"} 7.65\n\
             sextant_http_request_duration_seconds_count{handler=\"query\"} 4\n"
        );
    }

    #[test]
    fn counters_never_go_down() {
        let counter = Counter::default();
        counter.inc_by(2.5);
        counter.inc_by(-1.0);
        counter.inc_by(f64::NAN);
        assert_eq!(counter.get(), 2.5);
        let gauge = Gauge::default();
        gauge.add(2.0);
        gauge.add(-3.0);
        assert_eq!(gauge.get(), -1.0);
    }
}

#[cfg(test)]
mod promtool_tests {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;

    /// `promtool check metrics` parses the output and lints the names.
    #[test]
    fn promtool_accepts_the_output() {
        let promtool = "/usr/bin/promtool";
        if !std::path::Path::new(promtool).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{promtool} is required under CI"
            );
            eprintln!("skipping: {promtool} not installed");
            return;
        }
        let registry = Registry::new();
        registry
            .counter(
                "sextant_http_requests_total",
                "HTTP requests by handler and status code.",
                &["handler", "code"],
            )
            .with(&["/api/v1/query", "200"])
            .inc();
        registry
            .histogram(
                "sextant_http_request_duration_seconds",
                "Time to answer HTTP requests, by handler.",
                &["handler"],
                DURATION_BUCKETS,
            )
            .with(&["/api/v1/query"])
            .observe(0.3);
        registry.register(process::collect);
        let text = registry.render();

        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "promtool rejected:\n{text}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
