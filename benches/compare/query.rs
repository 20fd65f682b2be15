//! `--mode query` (issue 4's benchmark): query latency of Sextant against
//! Prometheus (and optionally VictoriaMetrics) holding the same data.
//!
//! 1. **Data**: the synthetic targets' series (`generator.rs`: counters,
//!    gauges, classic histograms, the same deterministic value model as the
//!    scrapes) for `--span` (default 1 h) at the size's interval, ending at the
//!    start of the run, with `job` and `instance` labels as a scrape adds them.
//! 2. **Loading**: remote write 1.0 (`sextant::remote`'s messages and encoder)
//!    in time order — every series' sample of step t, then of t + interval —
//!    in batches of `--batch` samples, each batch sent to all systems at once
//!    (one batch in flight; the next is encoded meanwhile). Then the harness
//!    waits until each system's own samples-appended counter holds them all.
//! 3. **Queries**: the fixed set in [`QUERIES`], instant queries at the end of
//!    the data and range queries over the whole span at 15 s step. Evaluation
//!    times sit half an interval after a sample, so no sample lies on a
//!    range's edge (Prometheus 3 made ranges left-open, Debian's 2.42 has them
//!    closed). Per query one untimed warm-up per system, whose answers are
//!    compared (same series, values to 1e-6 relative), then `--query-runs`
//!    timed runs interleaved across the systems (Sextant, Prometheus, ...,
//!    Sextant, ...) so load from other work on the machine hits all alike.
//!    A run is the HTTP round trip with the whole JSON body read.
//!
//! Writes `compare-query.{md,json}` to `--out`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use sextant::remote::proto;
use tsdb::model::Labels;

use crate::generator::{Target, target_series};
use crate::measure::quantile;
use crate::systems::{Binaries, Running, System};
use crate::{Error, Size, free_port, report, unix_now};

/// Whether a query is evaluated at one instant or over the whole span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    Instant,
    Range,
}

/// One query of the fixed set; `{i}` is the first target's instance.
pub struct QuerySpec {
    pub name: &'static str,
    pub kind: Kind,
    pub expr: &'static str,
}

const fn instant(name: &'static str, expr: &'static str) -> QuerySpec {
    QuerySpec {
        name,
        kind: Kind::Instant,
        expr,
    }
}

const fn range(name: &'static str, expr: &'static str) -> QuerySpec {
    QuerySpec {
        name,
        kind: Kind::Range,
        expr,
    }
}

/// The step of the range queries.
pub const RANGE_STEP_S: f64 = 15.0;

/// The fixed set (issue 4: rate over counters, sum by, histogram_quantile,
/// topk, avg_over_time, 1 h range queries at 15 s step).
pub const QUERIES: [QuerySpec; 16] = [
    instant(
        "rate, one series",
        "rate(synthetic_http_requests_total{instance=\"{i}\",handler=\"/api/v1/endpoint_0\",method=\"GET\",code=\"200\"}[5m])",
    ),
    instant(
        "rate, one target",
        "rate(synthetic_http_requests_total{instance=\"{i}\"}[5m])",
    ),
    instant(
        "sum by (code) (rate)",
        "sum by (code) (rate(synthetic_http_requests_total[5m]))",
    ),
    instant(
        "histogram_quantile",
        "histogram_quantile(0.9, sum by (le) (rate(synthetic_request_duration_seconds_bucket[5m])))",
    ),
    instant(
        "topk(10, rate)",
        "topk(10, rate(synthetic_cpu_seconds_total[5m]))",
    ),
    instant(
        "avg_over_time 10m",
        "avg_over_time(synthetic_queue_depth[10m])",
    ),
    instant(
        "max by (instance) (max_over_time 1h)",
        "max by (instance) (max_over_time(synthetic_memory_bytes[1h]))",
    ),
    instant(
        "regex selector",
        "synthetic_memory_bytes{pool=~\"pool_1[0-9]\"}",
    ),
    instant(
        "count by (instance)",
        "count by (instance) (synthetic_queue_depth)",
    ),
    instant(
        "error ratio by instance",
        "sum by (instance) (rate(synthetic_http_requests_total{code=\"500\"}[5m])) / sum by (instance) (rate(synthetic_http_requests_total[5m]))",
    ),
    range(
        "range: rate, one target",
        "rate(synthetic_http_requests_total{instance=\"{i}\"}[5m])",
    ),
    range(
        "range: sum by (code) (rate)",
        "sum by (code) (rate(synthetic_http_requests_total[5m]))",
    ),
    range(
        "range: histogram_quantile",
        "histogram_quantile(0.99, sum by (le) (rate(synthetic_request_duration_seconds_bucket[5m])))",
    ),
    range(
        "range: topk(5, sum by (instance) (rate))",
        "topk(5, sum by (instance) (rate(synthetic_cpu_seconds_total[5m])))",
    ),
    range(
        "range: avg_over_time, one target",
        "avg_over_time(synthetic_queue_depth{instance=\"{i}\"}[5m])",
    ),
    range(
        "range: sum by (instance) (avg_over_time)",
        "sum by (instance) (avg_over_time(synthetic_memory_bytes[5m]))",
    ),
];

/// Relative difference up to which two answers' values count as equal
/// (summation order differs between the engines).
const TOLERANCE: f64 = 1e-6;

/// What the mode needs from the command line.
pub struct Settings<'a> {
    pub systems: &'a [System],
    pub binaries: &'a Binaries,
    pub size: &'a Size,
    pub span: Duration,
    pub batch: usize,
    pub runs: usize,
    /// Only queries whose name contains one of these (all when empty).
    pub only: &'a [String],
    /// Keep the systems running this long after measuring (for profiling).
    pub hold: Duration,
    pub seed: u64,
    pub work: &'a Path,
    pub out: &'a Path,
}

/// How one system took the data.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadFigures {
    pub system: System,
    pub version: String,
    pub base: String,
    /// Samples by its own counter once loading was over.
    pub samples_counted: f64,
    /// From the first batch until its counter held every sample.
    pub seconds: f64,
}

/// Latency figures of one query on one system, in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub system: System,
    pub series: usize,
    pub min_ms: f64,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub max_ms: f64,
    pub runs_ms: Vec<f64>,
    /// `None`: the same answer as Prometheus's (or this is Prometheus).
    pub differs: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryFigures {
    pub name: String,
    pub kind: Kind,
    pub expr: String,
    pub systems: Vec<Latency>,
}

impl QueryFigures {
    fn of(&self, system: System) -> Option<&Latency> {
        self.systems.iter().find(|l| l.system == system)
    }

    /// Sextant's median over Prometheus's.
    pub fn ratio(&self) -> Option<f64> {
        let sextant = self.of(System::Sextant)?;
        let prometheus = self.of(System::Prometheus)?;
        Some(sextant.median_ms / prometheus.median_ms)
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryRun {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub series: usize,
    pub interval_s: u64,
    pub span_s: u64,
    pub samples: u64,
    pub batch: usize,
    pub runs: usize,
    /// Unix seconds of the instant queries and the end of the range queries.
    pub eval_time: f64,
    pub range_start: f64,
    pub range_step_s: f64,
    pub load_before_loading: String,
    pub load_before_queries: String,
    pub load_after: String,
    pub loading: Vec<LoadFigures>,
    pub queries: Vec<QueryFigures>,
}

/// The instance label of synthetic target `index`.
fn instance(index: usize) -> String {
    format!("10.1.{}.{}:8080", index / 250, index % 250 + 1)
}

pub async fn run(settings: &Settings<'_>, client: &reqwest::Client) -> Result<(), Error> {
    let size = settings.size;
    let interval_ms = size.interval_s as i64 * 1000;
    let steps = (settings.span.as_millis() as i64 / interval_ms).max(1);
    // The last step sits one interval before now, on a whole interval.
    let now_ms = (unix_now() * 1000.0) as i64;
    let last_ms = (now_ms / interval_ms - 1) * interval_ms;
    let first_ms = last_ms - (steps - 1) * interval_ms;
    let series = size.synthetic_series();
    let command: String = std::env::args().collect::<Vec<_>>().join(" ");
    eprintln!(
        "== query mode: {series} series x {steps} samples every {} s ({} samples), systems {:?}",
        size.interval_s,
        series as i64 * steps,
        settings.systems
    );

    let config = settings.work.join("no-scrapes.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
    )?;
    let mut running = Vec::new();
    for system in settings.systems {
        let extra: &[&str] = match system {
            System::Sextant | System::Prometheus => &["--web.enable-remote-write-receiver"],
            System::VictoriaMetrics => &[],
        };
        let mut started = Running::start(
            *system,
            settings.binaries,
            &config,
            settings.work,
            free_port()?,
            extra,
        )?;
        started.wait_ready(client, Duration::from_secs(120)).await?;
        running.push(started);
    }

    let load_before_loading = report::loadavg();
    let loading = load(settings, client, &running, first_ms, steps).await?;

    // Half an interval after the last sample: no sample on a range's edge.
    let eval_time = (last_ms as f64 + interval_ms as f64 / 2.0) / 1000.0;
    let range_start = eval_time - (steps - 1) as f64 * size.interval_s as f64;
    let range_start = eval_time - ((eval_time - range_start) / RANGE_STEP_S).floor() * RANGE_STEP_S;
    let load_before_queries = report::loadavg();
    let first_instance = instance(0);
    let mut queries = Vec::new();
    for spec in QUERIES.iter().filter(|q| {
        settings.only.is_empty() || settings.only.iter().any(|o| q.name.contains(o.as_str()))
    }) {
        let expr = spec.expr.replace("{i}", &first_instance);
        let request = Request {
            kind: spec.kind,
            expr: &expr,
            eval_time,
            range_start,
        };
        let figures = measure_query(client, &running, &request, settings.runs).await;
        let line: Vec<String> = figures
            .systems
            .iter()
            .map(|l| {
                format!(
                    "{} {:.1} ms{}",
                    l.system.name(),
                    l.median_ms,
                    if l.differs.is_some() || l.error.is_some() {
                        " (!)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        eprintln!("   {}: {}", spec.name, line.join(", "));
        queries.push(QueryFigures {
            name: spec.name.to_string(),
            kind: spec.kind,
            expr,
            systems: figures.systems,
        });
    }
    let run = QueryRun {
        command,
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        machine: report::machine(),
        series,
        interval_s: size.interval_s,
        span_s: steps as u64 * size.interval_s,
        samples: series as u64 * steps as u64,
        batch: settings.batch,
        runs: settings.runs,
        eval_time,
        range_start,
        range_step_s: RANGE_STEP_S,
        load_before_loading,
        load_before_queries,
        load_after: report::loadavg(),
        loading,
        queries,
    };
    let markdown = markdown(&run);
    std::fs::write(settings.out.join("compare-query.md"), &markdown)?;
    std::fs::write(
        settings.out.join("compare-query.json"),
        serde_json::to_string_pretty(&run)?,
    )?;
    eprintln!("{markdown}");
    eprintln!("wrote {}/compare-query.{{md,json}}", settings.out.display());
    if !settings.hold.is_zero() {
        for system in &running {
            eprintln!(
                "holding {} at {} (pid {}) for {:?}",
                system.system.name(),
                system.base,
                system.pid,
                settings.hold
            );
        }
        tokio::time::sleep(settings.hold).await;
    }
    for mut system in running {
        let _ = system.stop(Duration::from_secs(60)).await;
        let _ = std::fs::remove_dir_all(&system.data_dir);
    }
    Ok(())
}

/// Writes the data into every system and waits until each counted it all.
async fn load(
    settings: &Settings<'_>,
    client: &reqwest::Client,
    running: &[Running],
    first_ms: i64,
    steps: i64,
) -> Result<Vec<LoadFigures>, Error> {
    let size = settings.size;
    let interval_ms = size.interval_s as i64 * 1000;
    let targets: Vec<Target> = (0..size.targets)
        .map(|index| Target::new(index, size.units_per_target, settings.seed))
        .collect();
    let defs = target_series(size.units_per_target);
    // Every series as a one-sample `TimeSeries`, grouped into the requests
    // they travel in; each step overwrites the samples in place.
    let mut requests: Vec<proto::WriteRequest> = Vec::new();
    let batch = settings.batch.max(1);
    for index in 0..size.targets {
        let instance = instance(index);
        for def in &defs {
            let mut pairs: Vec<(&str, &str)> =
                def.labels.iter().map(|(n, v)| (*n, v.as_str())).collect();
            pairs.push(("__name__", &def.name));
            pairs.push(("job", "synthetic"));
            pairs.push(("instance", &instance));
            let labels = sextant::remote::labels_to_proto(&Labels::from_pairs(&pairs));
            if requests.last().is_none_or(|r| r.timeseries.len() >= batch) {
                requests.push(proto::WriteRequest::default());
            }
            if let Some(request) = requests.last_mut() {
                request.timeseries.push(proto::TimeSeries {
                    labels,
                    samples: vec![proto::Sample::default()],
                    exemplars: Vec::new(),
                });
            }
        }
    }
    let urls: Vec<String> = running
        .iter()
        .map(|r| format!("{}/api/v1/write", r.base))
        .collect();
    let began = Instant::now();
    let mut values = Vec::new();
    let mut in_flight: Option<tokio::task::JoinHandle<Result<(), Error>>> = None;
    for step in 0..steps {
        let timestamp = first_ms + step * interval_ms;
        let mut slots = requests.iter_mut().flat_map(|r| r.timeseries.iter_mut());
        for target in &targets {
            target.next_values(&mut values);
            for value in &values {
                if let Some(series) = slots.next() {
                    series.samples[0] = proto::Sample {
                        value: *value,
                        timestamp,
                    };
                }
            }
        }
        for request in &requests {
            let body = sextant::remote::encode(request);
            if let Some(previous) = in_flight.take() {
                previous
                    .await
                    .map_err(|e| Error::Peer(format!("sending: {e}")))??;
            }
            in_flight = Some(tokio::spawn(send_to_all(
                client.clone(),
                urls.clone(),
                body,
            )));
        }
        if (step + 1) % 60 == 0 || step + 1 == steps {
            eprintln!(
                "   loaded {}/{steps} steps in {:.0} s",
                step + 1,
                began.elapsed().as_secs_f64()
            );
        }
    }
    if let Some(previous) = in_flight.take() {
        previous
            .await
            .map_err(|e| Error::Peer(format!("sending: {e}")))??;
    }
    let expected = (size.synthetic_series() as i64 * steps) as f64;
    let mut figures = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    for system in running {
        let counted = loop {
            let counted = system.samples_ingested(client).await?;
            if counted >= expected || Instant::now() > deadline {
                break counted;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        if counted < expected {
            return Err(Error::Peer(format!(
                "{} counted {counted} samples of {expected}",
                system.system.name()
            )));
        }
        figures.push(LoadFigures {
            system: system.system,
            version: settings.binaries.version(system.system),
            base: system.base.clone(),
            samples_counted: counted,
            seconds: began.elapsed().as_secs_f64(),
        });
        eprintln!(
            "   {} holds {counted} samples after {:.0} s",
            system.system.name(),
            began.elapsed().as_secs_f64()
        );
    }
    Ok(figures)
}

/// One remote write request to every system at once.
async fn send_to_all(
    client: reqwest::Client,
    urls: Vec<String>,
    body: Vec<u8>,
) -> Result<(), Error> {
    let sends = urls.iter().map(|url| {
        client
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.clone())
            .send()
    });
    for (url, response) in urls.iter().zip(futures::future::join_all(sends).await) {
        let response = response?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(Error::Peer(format!("POST {url}: {status}: {text}")));
        }
    }
    Ok(())
}

/// One query as sent.
struct Request<'a> {
    kind: Kind,
    expr: &'a str,
    eval_time: f64,
    range_start: f64,
}

impl Request<'_> {
    /// One HTTP round trip with the whole body read: its time and the body.
    async fn send(
        &self,
        client: &reqwest::Client,
        base: &str,
    ) -> Result<(Duration, Vec<u8>), Error> {
        let (path, form) = match self.kind {
            Kind::Instant => (
                "query",
                vec![
                    ("query", self.expr.to_string()),
                    ("time", format!("{:.3}", self.eval_time)),
                ],
            ),
            Kind::Range => (
                "query_range",
                vec![
                    ("query", self.expr.to_string()),
                    ("start", format!("{:.3}", self.range_start)),
                    ("end", format!("{:.3}", self.eval_time)),
                    ("step", format!("{RANGE_STEP_S}")),
                ],
            ),
        };
        let began = Instant::now();
        let response = client
            .post(format!("{base}/api/v1/{path}"))
            .form(&form)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = began.elapsed();
        if !status.is_success() {
            return Err(Error::Peer(format!(
                "{}: {status}: {}",
                self.expr,
                String::from_utf8_lossy(&body)
            )));
        }
        Ok((elapsed, body.to_vec()))
    }
}

struct Measured {
    systems: Vec<Latency>,
}

/// Warm-up (answers compared), then `runs` interleaved timed runs.
async fn measure_query(
    client: &reqwest::Client,
    running: &[Running],
    request: &Request<'_>,
    runs: usize,
) -> Measured {
    let mut systems: Vec<Latency> = running
        .iter()
        .map(|r| Latency {
            system: r.system,
            series: 0,
            min_ms: f64::NAN,
            median_ms: f64::NAN,
            p90_ms: f64::NAN,
            max_ms: f64::NAN,
            runs_ms: Vec::new(),
            differs: None,
            error: None,
        })
        .collect();
    let mut answers: Vec<Option<Answer>> = Vec::new();
    for (system, latency) in running.iter().zip(systems.iter_mut()) {
        let answer = match request.send(client, &system.base).await {
            Ok((_, body)) => Answer::parse(&body),
            Err(e) => Err(e),
        };
        match answer {
            Ok(answer) => {
                latency.series = answer.series.len();
                answers.push(Some(answer));
            }
            Err(e) => {
                latency.error = Some(e.to_string());
                answers.push(None);
            }
        }
    }
    let reference = running
        .iter()
        .position(|r| r.system == System::Prometheus)
        .and_then(|i| answers[i].as_ref());
    if let Some(reference) = reference {
        for (latency, answer) in systems.iter_mut().zip(&answers) {
            if let Some(answer) = answer {
                latency.differs = answer.differs_from(reference);
            }
        }
    }
    for _ in 0..runs {
        for (system, latency) in running.iter().zip(systems.iter_mut()) {
            if latency.error.is_some() {
                continue;
            }
            match request.send(client, &system.base).await {
                Ok((elapsed, _)) => latency.runs_ms.push(elapsed.as_secs_f64() * 1e3),
                Err(e) => latency.error = Some(e.to_string()),
            }
        }
    }
    for latency in &mut systems {
        let runs = &latency.runs_ms;
        latency.min_ms = quantile(runs, 0.0);
        latency.median_ms = quantile(runs, 0.5);
        latency.p90_ms = quantile(runs, 0.9);
        latency.max_ms = quantile(runs, 1.0);
    }
    Measured { systems }
}

/// A query's answer: per series (labels as sorted JSON text), its points.
#[derive(Debug, PartialEq)]
struct Answer {
    series: BTreeMap<String, Vec<(f64, f64)>>,
}

impl Answer {
    fn parse(body: &[u8]) -> Result<Answer, Error> {
        let json: serde_json::Value = serde_json::from_slice(body)?;
        if json["status"] != "success" {
            return Err(Error::Peer(format!("answer: {json}")));
        }
        let bad = || Error::Peer("answer: unexpected shape".into());
        let point = |p: &serde_json::Value| -> Result<(f64, f64), Error> {
            let t = p[0].as_f64().ok_or_else(bad)?;
            let v = p[1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(bad)?;
            Ok((t, v))
        };
        let data = &json["data"];
        let mut series = BTreeMap::new();
        match data["resultType"].as_str() {
            Some("scalar") => {
                series.insert(String::new(), vec![point(&data["result"])?]);
            }
            Some("vector") | Some("matrix") => {
                for item in data["result"].as_array().ok_or_else(bad)? {
                    let labels: BTreeMap<&str, &str> = item["metric"]
                        .as_object()
                        .ok_or_else(bad)?
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                        .collect();
                    let key = serde_json::to_string(&labels)?;
                    let points = if item.get("value").is_some() {
                        vec![point(&item["value"])?]
                    } else {
                        item["values"]
                            .as_array()
                            .ok_or_else(bad)?
                            .iter()
                            .map(point)
                            .collect::<Result<_, _>>()?
                    };
                    series.insert(key, points);
                }
            }
            _ => return Err(bad()),
        }
        Ok(Answer { series })
    }

    /// `None` when `self` and `other` hold the same series with the same
    /// points (values to [`TOLERANCE`]); else what differs first.
    fn differs_from(&self, other: &Answer) -> Option<String> {
        if self.series.len() != other.series.len() {
            return Some(format!(
                "{} series, reference {}",
                self.series.len(),
                other.series.len()
            ));
        }
        for ((labels, points), (other_labels, other_points)) in
            self.series.iter().zip(&other.series)
        {
            if labels != other_labels {
                return Some(format!("series {labels}, reference {other_labels}"));
            }
            if points.len() != other_points.len() {
                return Some(format!(
                    "{labels}: {} points, reference {}",
                    points.len(),
                    other_points.len()
                ));
            }
            for ((t, v), (other_t, other_v)) in points.iter().zip(other_points) {
                let same_value = (v.is_nan() && other_v.is_nan())
                    || v == other_v
                    || (v - other_v).abs() <= TOLERANCE * v.abs().max(other_v.abs());
                if (t - other_t).abs() > 1e-3 || !same_value {
                    return Some(format!(
                        "{labels} at {t}: {v}, reference {other_v} at {other_t}"
                    ));
                }
            }
        }
        None
    }
}

/// The markdown report.
pub fn markdown(run: &QueryRun) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Query latency: Sextant vs Prometheus (issue 4)\n");
    let _ = writeln!(
        md,
        "{} series (synthetic targets: counters, gauges, classic histograms), {} s of samples every {} s \
         ({} samples), written by remote write 1.0 in time order ({} samples per request) into every \
         system at once, all in the head. Instant queries at the end of the data, range queries over \
         the whole span at {} s step; one untimed warm-up, then {} timed runs per system interleaved \
         across the systems (HTTP round trip, whole JSON body read).\n",
        run.series, run.span_s, run.interval_s, run.samples, run.batch, run.range_step_s, run.runs
    );
    let systems: Vec<System> = run
        .queries
        .first()
        .map(|q| q.systems.iter().map(|l| l.system).collect())
        .unwrap_or_default();
    let _ = write!(md, "| query | kind | series |");
    for system in &systems {
        let _ = write!(md, " {} median (min / p90 / max) ms |", system.name());
    }
    let _ = writeln!(md, " Sextant / Prometheus | goal ≤ 0.5 | same answer |");
    let _ = write!(md, "| --- | --- | ---: |");
    for _ in &systems {
        let _ = write!(md, " ---: |");
    }
    let _ = writeln!(md, " ---: | --- | --- |");
    let mut missed = Vec::new();
    for query in &run.queries {
        let series = query
            .of(System::Prometheus)
            .or(query.systems.first())
            .map_or(0, |l| l.series);
        let kind = match query.kind {
            Kind::Instant => "instant",
            Kind::Range => "range",
        };
        let _ = write!(md, "| {} | {kind} | {series} |", query.name);
        for latency in &query.systems {
            if let Some(error) = &latency.error {
                let _ = write!(md, " error: {} |", error.replace('|', "\\|"));
            } else {
                let _ = write!(
                    md,
                    " {:.1} ({:.1} / {:.1} / {:.1}) |",
                    latency.median_ms, latency.min_ms, latency.p90_ms, latency.max_ms
                );
            }
        }
        let ratio = query.ratio();
        let met = ratio.is_some_and(|r| r <= 0.5);
        if !met {
            missed.push(query.name.as_str());
        }
        let same: Vec<String> = query
            .systems
            .iter()
            .filter(|l| l.system != System::Prometheus)
            .map(|l| match &l.differs {
                None if l.error.is_none() => format!("{}: yes", l.system.name()),
                None => format!("{}: -", l.system.name()),
                Some(d) => format!(
                    "{}: **no** ({})",
                    l.system.name(),
                    d.replace('|', "\\|").chars().take(160).collect::<String>()
                ),
            })
            .collect();
        let _ = writeln!(
            md,
            " {} | {} | {} |",
            ratio.map_or("-".to_string(), |r| format!("{r:.2}")),
            if met { "met" } else { "**missed**" },
            same.join("; ")
        );
    }
    let _ = writeln!(md);
    if missed.is_empty() {
        let _ = writeln!(
            md,
            "Goal (Sextant's median ≤ 0.5x Prometheus's for every query): **met**.\n"
        );
    } else {
        let _ = writeln!(
            md,
            "Goal (Sextant's median ≤ 0.5x Prometheus's for every query): **missed** for {}.\n",
            missed.join(", ")
        );
    }
    let _ = writeln!(
        md,
        "Expressions (`{{i}}` is the first target's instance):\n"
    );
    for query in &run.queries {
        let _ = writeln!(md, "- {}: `{}`", query.name, query.expr);
    }
    let _ = writeln!(md, "\nLoading (remote write, all systems fed at once):\n");
    for load in &run.loading {
        let _ = writeln!(
            md,
            "- {} ({}): {} samples counted after {:.0} s",
            load.system.name(),
            load.version,
            load.samples_counted,
            load.seconds
        );
    }
    let _ = writeln!(md, "\n- Command: `{}`", run.command);
    let _ = writeln!(md, "- Date: {}", run.date);
    let _ = writeln!(md, "- Machine: {}", run.machine);
    let _ = writeln!(
        md,
        "- Load averages: {} before loading, {} before the queries, {} after (the machine is shared \
         with other builds; runs are interleaved so load hits the systems alike)",
        run.load_before_loading, run.load_before_queries, run.load_after
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Answer {
        Answer::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn answers_compare_by_series_and_values_to_the_tolerance() {
        let a = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"b":"2","a":"1"},"value":[10.5,"1.0000000001"]},
            {"metric":{"a":"2"},"value":[10.5,"NaN"]}]}}"#,
        );
        let b = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"a":"2"},"value":[10.5,"NaN"]},
            {"metric":{"a":"1","b":"2"},"value":[10.5,"1"]}]}}"#,
        );
        assert_eq!(a.differs_from(&b), None);
        let c = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"a":"2"},"value":[10.5,"NaN"]},
            {"metric":{"a":"1","b":"2"},"value":[10.5,"1.1"]}]}}"#,
        );
        assert!(a.differs_from(&c).unwrap().contains("1.1"));
        let d = answer(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"a":"2"},"values":[[1,"1"],[2,"+Inf"]]}]}}"#,
        );
        assert_eq!(d.series.len(), 1);
        assert!(a.differs_from(&d).unwrap().contains("series"));
        let scalar =
            answer(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#);
        assert_eq!(scalar.series[""], vec![(1.0, 2.0)]);
        assert!(Answer::parse(br#"{"status":"error"}"#).is_err());
    }

    #[test]
    fn instances_are_distinct() {
        let all: std::collections::HashSet<String> = (0..1000).map(instance).collect();
        assert_eq!(all.len(), 1000);
    }
}
