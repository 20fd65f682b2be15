//! `compare`: runs Sextant, Prometheus and VictoriaMetrics one after another
//! on the same synthetic targets (plus the real node exporter) with the same
//! scrape config, and writes a markdown table, a JSON file and a PNG chart of
//! the figures to `benches/results/`. See `benches/compare/README.md`.
//!
//! ```text
//! cargo build --release -p sextant -p benches
//! target/release/compare --size scrape,100k --duration 5m
//! ```

mod generator;
mod load;
mod measure;
mod query;
mod remote_write;
mod report;
mod systems;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use generator::{SERIES_PER_UNIT, Targets};
use measure::{ProcStat, clock_ticks, proc_stat, quantile, query_number, query_range};
use systems::{Binaries, DiskFigures, Running, System};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("sextant storage: {0}")]
    Tsdb(#[from] tsdb::Error),
    #[error("chart: {0}")]
    Chart(#[from] dashboards::Error),
    #[error("{0}")]
    Peer(String),
    #[error("usage: {0}")]
    Usage(String),
}

#[derive(Debug, Parser)]
#[command(about = "Side-by-side benchmark: Sextant vs Prometheus vs VictoriaMetrics")]
struct Args {
    /// What to compare: `ingest` (storage, memory, disk and queries of all three
    /// systems), `remote-write` (remote write throughput of Sextant and
    /// Prometheus in agent mode into VictoriaMetrics, steady and catching up),
    /// `load` (Sextant alone with rules and concurrent queries, issue 11) or
    /// `query` (query latency on `--span` of data loaded by remote write, issue 4).
    #[arg(long, default_value = "ingest")]
    mode: String,
    /// remote-write mode: how long the receiver is down before the catch-up.
    #[arg(long, default_value = "60s")]
    outage: String,
    /// Sizes to run, comma separated: scrape (50 targets x 2000 series every
    /// 5 s), 100k (20 x 5000 every 10 s), 1m (100 x 10000 every 60 s).
    /// Default: scrape (load mode: 1m).
    #[arg(long, value_delimiter = ',')]
    size: Vec<String>,
    /// How long each system ingests, e.g. 5m, 90s. Default: 5m (load mode: 30m).
    #[arg(long)]
    duration: Option<String>,
    /// load mode: queries in flight at any time.
    #[arg(long, default_value_t = 3)]
    query_concurrency: usize,
    /// load mode: how far back range queries reach (or the run so far, when
    /// shorter). Range queries' cost grows with their span, so memory grows
    /// with it until the run is this long.
    #[arg(long, default_value = "15m")]
    range_span: String,
    /// Systems to run, in order (default: sextant,prometheus,victoriametrics;
    /// sextant,prometheus in query mode).
    #[arg(long, value_delimiter = ',')]
    systems: Option<Vec<String>>,
    /// Override the preset's number of synthetic targets.
    #[arg(long)]
    targets: Option<usize>,
    /// Override the preset's series per target (rounded up to 20).
    #[arg(long)]
    series_per_target: Option<usize>,
    /// Override the preset's scrape interval, e.g. 15s.
    #[arg(long)]
    interval: Option<String>,
    /// Timed runs of each query (after one untimed warm-up run); default 10,
    /// 20 in query mode.
    #[arg(long)]
    query_runs: Option<usize>,
    /// query mode: how much data to load (at the size's interval).
    #[arg(long, default_value = "1h")]
    span: String,
    /// query mode: samples per remote write request.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// query mode: run only the queries whose name contains one of these.
    #[arg(long, value_delimiter = ',')]
    queries: Vec<String>,
    /// query mode: keep the systems running this long after measuring, e.g.
    /// 10m (to profile one by hand).
    #[arg(long, default_value = "0s")]
    hold: String,
    #[arg(long, default_value = "target/release/sextant")]
    sextant_bin: PathBuf,
    #[arg(long, default_value = "/usr/bin/prometheus")]
    prometheus_bin: PathBuf,
    #[arg(long, default_value = "/usr/bin/victoria-metrics")]
    victoria_metrics_bin: PathBuf,
    /// The real node exporter, scraped as one more target; "" for none.
    #[arg(long, default_value = "/usr/bin/prometheus-node-exporter")]
    node_exporter_bin: PathBuf,
    /// Where the tables, JSON and charts go.
    #[arg(long, default_value = "benches/results")]
    out: PathBuf,
    /// Scratch directory for configs, logs and data (deleted data after
    /// each system); default a new directory under the system temp dir.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Seed of the synthetic values.
    #[arg(long, default_value_t = 0x5e_7a47)]
    seed: u64,
}

/// A size: targets, series per target and scrape interval.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Size {
    pub name: String,
    pub targets: usize,
    pub units_per_target: usize,
    pub interval_s: u64,
}

impl Size {
    fn preset(name: &str, args: &Args) -> Result<Size, Error> {
        let (targets, series, interval_s) = match name {
            "scrape" => (50, 2000, 5),
            "100k" => (20, 5000, 10),
            "1m" | "1M" => (100, 10_000, 60),
            other => return Err(Error::Usage(format!("unknown size {other:?}"))),
        };
        let interval_s = match &args.interval {
            Some(text) => parse_duration(text)?.as_secs().max(1),
            None => interval_s,
        };
        let series = args.series_per_target.unwrap_or(series);
        Ok(Size {
            name: name.to_ascii_lowercase(),
            targets: args.targets.unwrap_or(targets),
            units_per_target: series.div_ceil(SERIES_PER_UNIT).max(1),
            interval_s,
        })
    }

    pub fn synthetic_series(&self) -> usize {
        self.targets * self.units_per_target * SERIES_PER_UNIT
    }
}

fn parse_duration(text: &str) -> Result<Duration, Error> {
    let bad = || Error::Usage(format!("bad duration {text:?} (want e.g. 90s, 5m, 1h)"));
    let (number, factor) = match text.char_indices().last() {
        Some((i, 's')) => (&text[..i], 1),
        Some((i, 'm')) => (&text[..i], 60),
        Some((i, 'h')) => (&text[..i], 3600),
        _ => (text, 1),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    Ok(Duration::from_secs(n * factor))
}

/// One query of the fixed set: a name and the expression, where `{w}` is
/// the rate window and `{i}` the first synthetic target's instance.
pub const QUERIES: [(&str, &str); 6] = [
    (
        "rate, one target",
        "rate(synthetic_http_requests_total{instance=\"{i}\"}[{w}])",
    ),
    (
        "sum by (code) (rate)",
        "sum by (code) (rate(synthetic_http_requests_total[{w}]))",
    ),
    (
        "histogram_quantile",
        "histogram_quantile(0.9, sum by (le) (rate(synthetic_request_duration_seconds_bucket[{w}])))",
    ),
    ("topk(10, gauge)", "topk(10, synthetic_queue_depth)"),
    (
        "regex selector",
        "synthetic_memory_bytes{pool=~\"pool_1[0-9]\"}",
    ),
    (
        "node: sum by (mode) (rate)",
        "sum by (mode) (rate(node_cpu_seconds_total[{w}]))",
    ),
];

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryFigures {
    pub name: String,
    pub expr: String,
    pub series: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub error: Option<String>,
}

/// Everything measured for one system at one size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SystemFigures {
    pub system: System,
    pub version: String,
    pub ingest_seconds: f64,
    /// Samples by the system's counter over the whole run and over the
    /// steady window (after the warm-up: series creation done).
    pub samples_total: f64,
    pub samples_steady: f64,
    pub cpu_total_s: f64,
    pub cpu_steady_s: f64,
    pub rss_steady_bytes: f64,
    pub rss_peak_bytes: u64,
    pub active_series_reported: Option<f64>,
    pub disk: DiskFigures,
    pub queries: Vec<QueryFigures>,
    pub harness_cpu_percent: f64,
    pub load_before: String,
    pub load_after: String,
    pub error: Option<String>,
}

impl SystemFigures {
    pub fn cpu_per_msample_steady(&self) -> f64 {
        self.cpu_steady_s / self.samples_steady * 1e6
    }
    pub fn cpu_per_msample_total(&self) -> f64 {
        self.cpu_total_s / self.samples_total * 1e6
    }
    pub fn bytes_per_sample(&self) -> f64 {
        self.disk.bytes as f64 / self.disk.samples as f64
    }
}

/// The results of one size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SizeRun {
    pub size: Size,
    pub duration_s: u64,
    pub active_series: usize,
    pub node_exporter_series: usize,
    pub command: String,
    pub date: String,
    pub machine: String,
    pub node_exporter_version: String,
    pub systems: Vec<SystemFigures>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let load_mode = args.mode == "load";
    let duration =
        parse_duration(
            args.duration
                .as_deref()
                .unwrap_or(if load_mode { "30m" } else { "5m" }),
        )?;
    let default_size = vec![if load_mode { "1m" } else { "scrape" }.to_string()];
    let size_names = if args.size.is_empty() {
        &default_size
    } else {
        &args.size
    };
    let default_systems = match args.mode.as_str() {
        "query" => "sextant,prometheus",
        _ => "sextant,prometheus,victoriametrics",
    };
    let systems = args
        .systems
        .clone()
        .unwrap_or_else(|| default_systems.split(',').map(String::from).collect())
        .iter()
        .map(|s| System::parse(s).ok_or_else(|| Error::Usage(format!("unknown system {s:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let sizes = size_names
        .iter()
        .map(|s| Size::preset(s, &args))
        .collect::<Result<Vec<_>, _>>()?;
    let binaries = Binaries {
        sextant: args.sextant_bin.clone(),
        prometheus: args.prometheus_bin.clone(),
        victoria_metrics: args.victoria_metrics_bin.clone(),
    };
    check_binaries(&binaries, &started_systems(&args.mode, &systems))?;
    let work = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("sextant-compare-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&args.out)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    match args.mode.as_str() {
        "ingest" => {}
        "load" => {
            for size in &sizes {
                load::run(
                    &binaries,
                    size,
                    duration,
                    args.query_concurrency,
                    parse_duration(&args.range_span)?,
                    args.seed,
                    &work,
                    &args.out,
                    &client,
                )
                .await?;
            }
            let _ = std::fs::remove_dir_all(&work);
            return Ok(());
        }
        "remote-write" => {
            let outage = parse_duration(&args.outage)?;
            for size in &sizes {
                remote_write::run(
                    &systems, &binaries, size, duration, outage, args.seed, &work, &args.out,
                    &client,
                )
                .await?;
            }
            let _ = std::fs::remove_dir_all(&work);
            return Ok(());
        }
        "query" => {
            for size in &sizes {
                let settings = query::Settings {
                    systems: &systems,
                    binaries: &binaries,
                    size,
                    span: parse_duration(&args.span)?,
                    batch: args.batch,
                    runs: args.query_runs.unwrap_or(20),
                    only: &args.queries,
                    hold: parse_duration(&args.hold)?,
                    seed: args.seed,
                    work: &work,
                    out: &args.out,
                };
                query::run(&settings, &client).await?;
            }
            let _ = std::fs::remove_dir_all(&work);
            return Ok(());
        }
        other => return Err(Error::Usage(format!("unknown mode {other:?}"))),
    }
    let command: String = std::env::args().collect::<Vec<_>>().join(" ");

    let node_exporter = if args.node_exporter_bin.as_os_str().is_empty() {
        None
    } else {
        Some(NodeExporter::start(&args.node_exporter_bin, &work)?)
    };
    let node_exporter_version = if args.node_exporter_bin.as_os_str().is_empty() {
        String::new()
    } else {
        systems::package_version("prometheus-node-exporter")
    };

    for size in sizes {
        eprintln!(
            "== size {}: {} targets x {} series every {} s, {} s per system",
            size.name,
            size.targets,
            size.units_per_target * SERIES_PER_UNIT,
            size.interval_s,
            duration.as_secs()
        );
        let targets = Targets::start(size.targets, size.units_per_target, args.seed).await?;
        let mut node_series = 0;
        let mut target_list: Vec<String> = Vec::new();
        if let Some(node) = &node_exporter {
            node.wait_ready(&client).await?;
            node_series = node.series(&client).await?;
        }
        for address in &targets.addresses {
            target_list.push(address.to_string());
        }
        let config = write_config(
            &work,
            &size,
            &target_list,
            node_exporter.as_ref().map(|n| n.address.as_str()),
        )?;
        // The targets' series plus the five series every scrape adds.
        let scrape_targets = size.targets + usize::from(node_exporter.is_some());
        let active_series = targets.series() + node_series + 5 * scrape_targets;
        let mut run = SizeRun {
            size: size.clone(),
            duration_s: duration.as_secs(),
            active_series,
            node_exporter_series: node_series,
            command: command.clone(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine: report::machine(),
            node_exporter_version: node_exporter_version.clone(),
            systems: Vec::new(),
        };
        for system in &systems {
            targets.reset();
            eprintln!("-- {}", system.name());
            let figures = measure_system(
                *system,
                &binaries,
                &config,
                &work,
                &client,
                &size,
                duration,
                args.query_runs.unwrap_or(10),
                &target_list[0],
            )
            .await;
            let figures = match figures {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("   {} failed: {e}", system.name());
                    SystemFigures::failed(*system, binaries.version(*system), e.to_string())
                }
            };
            eprintln!("{}", report::summary_line(&figures, active_series));
            run.systems.push(figures);
        }
        drop(targets);
        report::write(&args.out, &run)?;
        eprintln!(
            "wrote {}/compare-{}.{{md,json,png}}",
            args.out.display(),
            size.name
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

impl SystemFigures {
    fn failed(system: System, version: String, error: String) -> SystemFigures {
        SystemFigures {
            system,
            version,
            ingest_seconds: 0.0,
            samples_total: f64::NAN,
            samples_steady: f64::NAN,
            cpu_total_s: f64::NAN,
            cpu_steady_s: f64::NAN,
            rss_steady_bytes: f64::NAN,
            rss_peak_bytes: 0,
            active_series_reported: None,
            disk: DiskFigures::default(),
            queries: Vec::new(),
            harness_cpu_percent: f64::NAN,
            load_before: report::loadavg(),
            load_after: report::loadavg(),
            error: Some(error),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn measure_system(
    system: System,
    binaries: &Binaries,
    config: &Path,
    work: &Path,
    client: &reqwest::Client,
    size: &Size,
    duration: Duration,
    query_runs: usize,
    first_instance: &str,
) -> Result<SystemFigures, Error> {
    let ticks = clock_ticks();
    let load_before = report::loadavg();
    let port = free_port()?;
    let mut running = Running::start(system, binaries, config, work, port, &[])?;
    running.wait_ready(client, Duration::from_secs(120)).await?;
    let began = Instant::now();
    let began_unix = unix_now();
    let harness_before = proc_stat("self", ticks)?;
    let interval = Duration::from_secs(size.interval_s);
    let warmup = (duration / 5).max(interval * 2).min(duration / 2);
    let mut steady_start: Option<(ProcStat, f64)> = None;
    let mut rss: Vec<(f64, f64)> = Vec::new();
    while began.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stat = proc_stat(&running.pid, ticks)?;
        rss.push((began.elapsed().as_secs_f64(), stat.rss_bytes as f64));
        if steady_start.is_none() && began.elapsed() >= warmup {
            steady_start = Some((stat, running.samples_ingested(client).await?));
        }
    }
    let end = proc_stat(&running.pid, ticks)?;
    let samples_end = running.samples_ingested(client).await?;
    let harness_after = proc_stat("self", ticks)?;
    let ingest_seconds = began.elapsed().as_secs_f64();
    let end_unix = unix_now();
    let (steady_stat, steady_samples) =
        steady_start.ok_or_else(|| Error::Peer("run too short for a steady window".into()))?;
    // Steady memory: the median over the last third of the run.
    let last_third: Vec<f64> = rss
        .iter()
        .filter(|(t, _)| *t >= ingest_seconds * 2.0 / 3.0)
        .map(|(_, r)| *r)
        .collect();
    let active_series_reported =
        query_number(client, &running.base, "count({__name__=~\".+\"})").await;

    let window = format!("{}s", (size.interval_s * 4).max(60));
    let step = size.interval_s.max(15) as f64;
    // From the first scrape round on (no data before it), up to 30 s before
    // the end (VictoriaMetrics hides the newest 30 s by default).
    let range_start = began_unix + size.interval_s as f64;
    let range = (range_start, (end_unix - 30.0).max(range_start + step), step);
    let mut queries = Vec::new();
    for (name, template) in QUERIES {
        let expr = template
            .replace("{w}", &window)
            .replace("{i}", first_instance);
        queries.push(QueryFigures {
            name: name.to_string(),
            expr,
            series: 0,
            median_ms: f64::NAN,
            p90_ms: f64::NAN,
            error: None,
        });
    }
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
    for pass in 0..=query_runs {
        for (index, query) in queries.iter_mut().enumerate() {
            if query.error.is_some() {
                continue;
            }
            match query_range(client, &running.base, &query.expr, range).await {
                Ok((elapsed, series)) => {
                    query.series = series;
                    if pass > 0 {
                        latencies[index].push(elapsed.as_secs_f64() * 1e3);
                    }
                }
                Err(e) => query.error = Some(e.to_string()),
            }
        }
    }
    for (query, times) in queries.iter_mut().zip(&latencies) {
        query.median_ms = quantile(times, 0.5);
        query.p90_ms = quantile(times, 0.9);
    }

    let disk = running.flush_and_stop(client, work).await?;
    let _ = std::fs::remove_dir_all(&running.data_dir);
    Ok(SystemFigures {
        system,
        version: binaries.version(system),
        ingest_seconds,
        samples_total: samples_end,
        samples_steady: samples_end - steady_samples,
        cpu_total_s: end.cpu_seconds,
        cpu_steady_s: end.cpu_seconds - steady_stat.cpu_seconds,
        rss_steady_bytes: quantile(&last_third, 0.5),
        rss_peak_bytes: end.peak_rss_bytes,
        active_series_reported,
        disk,
        queries,
        harness_cpu_percent: (harness_after.cpu_seconds - harness_before.cpu_seconds)
            / ingest_seconds
            * 100.0,
        load_before,
        load_after: report::loadavg(),
        error: None,
    })
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub(crate) fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The one scrape config every system runs.
fn write_config(
    work: &Path,
    size: &Size,
    targets: &[String],
    node_exporter: Option<&str>,
) -> Result<PathBuf, Error> {
    let interval = size.interval_s;
    let timeout = interval.min(10);
    let list = |targets: &[String]| {
        targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut yaml = format!(
        "global:\n  scrape_interval: {interval}s\n  scrape_timeout: {timeout}s\n\
         scrape_configs:\n  - job_name: synthetic\n    static_configs:\n      - targets: [{}]\n",
        list(targets)
    );
    if let Some(address) = node_exporter {
        yaml.push_str(&format!(
            "  - job_name: node\n    static_configs:\n      - targets: ['{address}']\n"
        ));
    }
    let path = work.join(format!("scrape-{}.yml", size.name));
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// The real node exporter on a loopback port, killed on drop.
struct NodeExporter {
    child: Child,
    address: String,
}

impl NodeExporter {
    fn start(binary: &Path, work: &Path) -> Result<NodeExporter, Error> {
        let address = format!("127.0.0.1:{}", free_port()?);
        let log = std::fs::File::create(work.join("node-exporter.log"))?;
        let child = Command::new(binary)
            .arg(format!("--web.listen-address={address}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| Error::Peer(format!("starting {}: {e}", binary.display())))?;
        Ok(NodeExporter { child, address })
    }

    async fn wait_ready(&self, client: &reqwest::Client) -> Result<(), Error> {
        for _ in 0..100 {
            if client
                .get(format!("http://{}/metrics", self.address))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Peer("node exporter not ready".into()))
    }

    /// Series on one scrape of it (it varies a little between scrapes).
    async fn series(&self, client: &reqwest::Client) -> Result<usize, Error> {
        let body = measure::get_text(client, &format!("http://{}/metrics", self.address)).await?;
        Ok(body
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count())
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The systems a mode starts: load mode runs Sextant alone, whatever
/// `--systems` says, so the peers need not be installed for it.
fn started_systems(mode: &str, systems: &[System]) -> Vec<System> {
    if mode == "load" {
        vec![System::Sextant]
    } else {
        systems.to_vec()
    }
}

/// Fails naming the first of `systems` whose binary is missing.
fn check_binaries(binaries: &Binaries, systems: &[System]) -> Result<(), Error> {
    for system in systems {
        if !binaries.of(*system).exists() {
            return Err(Error::Usage(format!(
                "{} binary {} not found",
                system.name(),
                binaries.of(*system).display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_mode_needs_only_the_sextant_binary() {
        let binaries = Binaries {
            sextant: std::env::current_exe().unwrap(),
            prometheus: PathBuf::from("/nonexistent/prometheus"),
            victoria_metrics: PathBuf::from("/nonexistent/victoria-metrics"),
        };
        let all = [System::Sextant, System::Prometheus, System::VictoriaMetrics];
        assert_eq!(started_systems("load", &all), vec![System::Sextant]);
        assert!(check_binaries(&binaries, &started_systems("load", &all)).is_ok());
        for mode in ["ingest", "query", "remote-write"] {
            let error = check_binaries(&binaries, &started_systems(mode, &all)).unwrap_err();
            assert!(
                error.to_string().contains("/nonexistent/prometheus"),
                "{mode}: {error}"
            );
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn presets_have_the_documented_sizes() {
        let args = Args::parse_from(["compare"]);
        let scrape = Size::preset("scrape", &args).unwrap();
        assert_eq!(scrape.synthetic_series(), 100_000);
        assert_eq!(scrape.interval_s, 5);
        assert_eq!(
            Size::preset("100k", &args).unwrap().synthetic_series(),
            100_000
        );
        assert_eq!(
            Size::preset("1m", &args).unwrap().synthetic_series(),
            1_000_000
        );
        assert!(Size::preset("2m", &args).is_err());
    }
}
