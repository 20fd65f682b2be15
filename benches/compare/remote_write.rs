//! `--mode remote-write`: remote write throughput of Sextant and of Prometheus, one
//! after another, each in agent mode (scrape, WAL, remote write; no local
//! storage) scraping the same synthetic targets and writing to a fresh real
//! VictoriaMetrics on loopback with the same `queue_config`. Two phases per sender:
//!
//! - **steady**: the scrape load as it comes (throughput = the scrape rate; the
//!   figure that differs is CPU per million samples);
//! - **catch-up**: VictoriaMetrics is stopped for `--outage`, the scrapes pile up
//!   in the sender's WAL, VictoriaMetrics restarts on the same port and data
//!   directory, and the sender drains the backlog: samples received per second from
//!   the restart until the sender's lag (now minus the newest sample sent) is back
//!   under two scrape intervals, and the sender's CPU over that time. This is the
//!   sender's top speed.
//!
//! Samples are counted by the receiver (`vm_rows_inserted_total{type="promremotewrite"}`),
//! the same way for both senders; CPU from `/proc/<pid>/stat` of the sender.
//! Writes `compare-remote-write.{md,json}` to `--out`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::generator::{SERIES_PER_UNIT, Targets};
use crate::measure::{clock_ticks, get_text, proc_stat};
use crate::systems::{Binaries, System};
use crate::{Error, Size, free_port, report};

/// The queue settings both senders get (Prometheus 3's defaults, which Sextant
/// also has; Debian's Prometheus 2.42 would otherwise use smaller batches).
pub const QUEUE_CONFIG: &str = "capacity: 10000, max_shards: 50, min_shards: 1, \
     max_samples_per_send: 2000, batch_send_deadline: 5s, min_backoff: 30ms, max_backoff: 5s";

/// The figures of one sender.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SenderFigures {
    pub system: System,
    pub version: String,
    /// Steady phase: seconds, samples received, sender CPU seconds.
    pub steady_seconds: f64,
    pub steady_samples: f64,
    pub steady_cpu_s: f64,
    pub outage_seconds: f64,
    /// Catch-up: from the receiver's restart until the lag is back to normal.
    pub catchup_seconds: f64,
    pub catchup_samples: f64,
    pub catchup_cpu_s: f64,
    /// Samples received during the catch-up beyond the steady rate: the backlog.
    pub backlog_samples: f64,
    /// Samples the receiver holds at the end against samples the sender scraped.
    pub received_total: f64,
    pub scraped_total: f64,
    pub rss_peak_bytes: u64,
    pub load_before: String,
    pub load_after: String,
    pub error: Option<String>,
}

impl SenderFigures {
    pub fn steady_rate(&self) -> f64 {
        self.steady_samples / self.steady_seconds
    }
    pub fn steady_cpu_per_msample(&self) -> f64 {
        self.steady_cpu_s / self.steady_samples * 1e6
    }
    pub fn catchup_rate(&self) -> f64 {
        self.catchup_samples / self.catchup_seconds
    }
    pub fn catchup_cpu_per_msample(&self) -> f64 {
        self.catchup_cpu_s / self.catchup_samples * 1e6
    }

    fn failed(system: System, version: String, error: String) -> SenderFigures {
        SenderFigures {
            system,
            version,
            steady_seconds: f64::NAN,
            steady_samples: f64::NAN,
            steady_cpu_s: f64::NAN,
            outage_seconds: f64::NAN,
            catchup_seconds: f64::NAN,
            catchup_samples: f64::NAN,
            catchup_cpu_s: f64::NAN,
            backlog_samples: f64::NAN,
            received_total: f64::NAN,
            scraped_total: f64::NAN,
            rss_peak_bytes: 0,
            load_before: report::loadavg(),
            load_after: report::loadavg(),
            error: Some(error),
        }
    }
}

/// One run of the mode.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoteWriteRun {
    pub size: Size,
    pub duration_s: u64,
    pub outage_s: u64,
    pub series: usize,
    pub queue_config: String,
    pub receiver_version: String,
    pub command: String,
    pub date: String,
    pub machine: String,
    pub senders: Vec<SenderFigures>,
}

/// A child process killed on drop.
struct Process {
    child: Child,
    pid: String,
}

impl Process {
    fn spawn(mut command: Command, log: &Path) -> Result<Process, Error> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| Error::Peer(format!("starting {command:?}: {e}")))?;
        Ok(Process {
            pid: child.id().to_string(),
            child,
        })
    }

    /// SIGTERM, then SIGKILL after 30 s.
    async fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn wait_ok(client: &reqwest::Client, url: &str, what: &str) -> Result<(), Error> {
    for _ in 0..600 {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Error::Peer(format!("{what} not ready at {url}")))
}

/// The sum of the series of `name` whose labels contain `label` (e.g.
/// `type="promremotewrite"`) on a metrics page.
fn metric_with(page: &str, name: &str, label: &str) -> Option<f64> {
    let mut found = None;
    for line in page.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) || !rest.contains(label) {
            continue;
        }
        let value = rest.rfind('}').map_or(rest, |end| &rest[end + 1..]);
        if let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// VictoriaMetrics as the receiver, on a fixed port so it can restart there.
struct Receiver {
    binary: PathBuf,
    data_dir: PathBuf,
    listen: String,
    log: PathBuf,
    process: Option<Process>,
}

impl Receiver {
    async fn start(&mut self, client: &reqwest::Client) -> Result<(), Error> {
        let mut command = Command::new(&self.binary);
        command
            .arg(format!("-storageDataPath={}", self.data_dir.display()))
            .arg(format!("-httpListenAddr={}", self.listen));
        self.process = Some(Process::spawn(command, &self.log)?);
        wait_ok(
            client,
            &format!("http://{}/health", self.listen),
            "VictoriaMetrics",
        )
        .await
    }

    async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop().await;
        }
    }

    /// Rows received by remote write since this process started.
    async fn received(&self, client: &reqwest::Client) -> Result<f64, Error> {
        let page = get_text(client, &format!("http://{}/metrics", self.listen)).await?;
        Ok(metric_with(&page, "vm_rows_inserted_total", "type=\"promremotewrite\"").unwrap_or(0.0))
    }
}

/// Metric names of a sender.
fn prefix(system: System) -> &'static str {
    match system {
        System::Sextant => "sextant",
        _ => "prometheus",
    }
}

/// Seconds between now and the newest sample the receiver acknowledged, by the
/// sender's `*_remote_storage_queue_highest_sent_timestamp_seconds` (the newest
/// sample in its WAL is not comparable: Prometheus's counterpart gauge follows the
/// appends, Sextant's what its WAL reader has read).
async fn sender_lag(
    client: &reqwest::Client,
    base: &str,
    system: System,
) -> Result<Option<f64>, Error> {
    let page = get_text(client, &format!("{base}/metrics")).await?;
    let sent = crate::measure::metric_sum(
        &page,
        &format!(
            "{}_remote_storage_queue_highest_sent_timestamp_seconds",
            prefix(system)
        ),
    );
    Ok(sent.map(|sent| crate::unix_now() - sent))
}

/// Samples the sender appended from scrapes (its WAL), by its own counter.
async fn sender_scraped(client: &reqwest::Client, base: &str, system: System) -> f64 {
    let name = match system {
        System::Sextant => "sextant_agent_samples_appended_total",
        _ => "prometheus_agent_samples_appended_total",
    };
    match get_text(client, &format!("{base}/metrics")).await {
        Ok(page) => crate::measure::metric_sum(&page, name).unwrap_or(f64::NAN),
        Err(_) => f64::NAN,
    }
}

#[allow(clippy::too_many_arguments)]
async fn measure_sender(
    system: System,
    binaries: &Binaries,
    scrape_config: &str,
    work: &Path,
    client: &reqwest::Client,
    size: &Size,
    duration: Duration,
    outage: Duration,
) -> Result<SenderFigures, Error> {
    let ticks = clock_ticks();
    let load_before = report::loadavg();
    let name = system.name().to_ascii_lowercase();
    let receiver_dir = work.join(format!("rw-receiver-{name}"));
    let sender_dir = work.join(format!("rw-sender-{name}"));
    for dir in [&receiver_dir, &sender_dir] {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
    }
    let mut receiver = Receiver {
        binary: binaries.victoria_metrics.clone(),
        data_dir: receiver_dir.clone(),
        listen: format!("127.0.0.1:{}", free_port()?),
        log: work.join(format!("rw-receiver-{name}.log")),
        process: None,
    };
    receiver.start(client).await?;
    let config = work.join(format!("rw-{name}.yml"));
    std::fs::write(
        &config,
        format!(
            "{scrape_config}remote_write:\n  - url: http://{}/api/v1/write\n    queue_config: {{{QUEUE_CONFIG}}}\n",
            receiver.listen
        ),
    )?;
    let listen = format!("127.0.0.1:{}", free_port()?);
    let base = format!("http://{listen}");
    let mut command = Command::new(binaries.of(system));
    match system {
        System::Sextant => {
            command
                .arg("serve")
                .arg("--agent")
                .arg("--config")
                .arg(&config)
                .arg("--storage.agent.path")
                .arg(&sender_dir)
                .arg("--listen")
                .arg(&listen);
        }
        _ => {
            command
                .arg("--enable-feature=agent")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.agent.path={}", sender_dir.display()))
                .arg(format!("--web.listen-address={listen}"));
        }
    }
    let mut sender = Process::spawn(command, &work.join(format!("rw-sender-{name}.log")))?;
    wait_ok(client, &format!("{base}/-/ready"), system.name()).await?;

    // Steady: after a warm-up of a fifth of the run (series created, shards settled).
    let interval = Duration::from_secs(size.interval_s);
    let warmup = (duration / 5).max(interval * 2).min(duration / 2);
    tokio::time::sleep(warmup).await;
    let steady_from = (
        Instant::now(),
        proc_stat(&sender.pid, ticks)?,
        receiver.received(client).await?,
    );
    tokio::time::sleep(duration.saturating_sub(warmup)).await;
    let steady_to = (
        Instant::now(),
        proc_stat(&sender.pid, ticks)?,
        receiver.received(client).await?,
    );
    let steady_seconds = (steady_to.0 - steady_from.0).as_secs_f64();
    let steady_samples = steady_to.2 - steady_from.2;
    let received_before_outage = steady_to.2;

    // Outage: the receiver stops; scrapes pile up in the sender's WAL.
    receiver.stop().await;
    let outage_began = Instant::now();
    tokio::time::sleep(outage).await;
    receiver.start(client).await?;
    let outage_seconds = outage_began.elapsed().as_secs_f64();
    let catchup_from = (Instant::now(), proc_stat(&sender.pid, ticks)?);
    let limit = Duration::from_secs(600).max(outage * 10);
    let caught_up_lag = 2.0 * size.interval_s as f64;
    // Wait for the backlog to be noticed first (the lag grows while the sender
    // backs off), then for it to be drained.
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if catchup_from.0.elapsed() > limit {
            return Err(Error::Peer(format!(
                "{} did not catch up within {limit:?}",
                system.name()
            )));
        }
        let lag = sender_lag(client, &base, system).await?;
        if lag.is_some_and(|lag| lag < caught_up_lag) && receiver.received(client).await? > 0.0 {
            break;
        }
    }
    let catchup_to = (
        Instant::now(),
        proc_stat(&sender.pid, ticks)?,
        receiver.received(client).await?,
    );
    let catchup_seconds = (catchup_to.0 - catchup_from.0).as_secs_f64();
    let catchup_samples = catchup_to.2;
    let steady_rate = steady_samples / steady_seconds;
    // Let the last batches land, then compare what arrived with what was scraped.
    tokio::time::sleep(interval * 2 + Duration::from_secs(6)).await;
    let scraped_total = sender_scraped(client, &base, system).await;
    sender.stop().await;
    let received_total = received_before_outage + receiver.received(client).await?;
    receiver.stop().await;
    let rss_peak_bytes = catchup_to.1.peak_rss_bytes;
    for dir in [&receiver_dir, &sender_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(SenderFigures {
        system,
        version: binaries.version(system),
        steady_seconds,
        steady_samples,
        steady_cpu_s: steady_to.1.cpu_seconds - steady_from.1.cpu_seconds,
        outage_seconds,
        catchup_seconds,
        catchup_samples,
        catchup_cpu_s: catchup_to.1.cpu_seconds - catchup_from.1.cpu_seconds,
        backlog_samples: catchup_samples - steady_rate * catchup_seconds,
        received_total,
        scraped_total,
        rss_peak_bytes,
        load_before,
        load_after: report::loadavg(),
        error: None,
    })
}

/// Runs the mode for `size` and writes the report.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    systems: &[System],
    binaries: &Binaries,
    size: &Size,
    duration: Duration,
    outage: Duration,
    seed: u64,
    work: &Path,
    out: &Path,
    client: &reqwest::Client,
) -> Result<(), Error> {
    if !binaries.victoria_metrics.exists() {
        return Err(Error::Usage(format!(
            "VictoriaMetrics binary {} not found (the receiver)",
            binaries.victoria_metrics.display()
        )));
    }
    eprintln!(
        "== remote write: {} targets x {} series every {} s; {} s steady, {} s outage per sender",
        size.targets,
        size.units_per_target * SERIES_PER_UNIT,
        size.interval_s,
        duration.as_secs(),
        outage.as_secs()
    );
    let targets = Targets::start(size.targets, size.units_per_target, seed).await?;
    let list: Vec<String> = targets.addresses.iter().map(|a| format!("'{a}'")).collect();
    let scrape_config = format!(
        "global:\n  scrape_interval: {i}s\n  scrape_timeout: {t}s\n\
         scrape_configs:\n  - job_name: synthetic\n    static_configs:\n      - targets: [{}]\n",
        list.join(", "),
        i = size.interval_s,
        t = size.interval_s.min(10),
    );
    let mut run = RemoteWriteRun {
        size: size.clone(),
        duration_s: duration.as_secs(),
        outage_s: outage.as_secs(),
        series: targets.series() + 5 * size.targets,
        queue_config: QUEUE_CONFIG.to_string(),
        receiver_version: binaries.version(System::VictoriaMetrics),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        machine: report::machine(),
        senders: Vec::new(),
    };
    for &system in systems
        .iter()
        .filter(|s| matches!(s, System::Sextant | System::Prometheus))
    {
        targets.reset();
        eprintln!("-- {}", system.name());
        let figures = measure_sender(
            system,
            binaries,
            &scrape_config,
            work,
            client,
            size,
            duration,
            outage,
        )
        .await
        .unwrap_or_else(|e| SenderFigures::failed(system, binaries.version(system), e.to_string()));
        eprintln!("{}", summary_line(&figures));
        run.senders.push(figures);
    }
    std::fs::write(
        out.join("compare-remote-write.json"),
        serde_json::to_string_pretty(&run)?,
    )?;
    std::fs::write(out.join("compare-remote-write.md"), markdown(&run))?;
    eprintln!("wrote {}/compare-remote-write.{{md,json}}", out.display());
    Ok(())
}

pub fn summary_line(f: &SenderFigures) -> String {
    if let Some(error) = &f.error {
        return format!("   {}: FAILED: {error}", f.system.name());
    }
    format!(
        "   {}: steady {:.0} samples/s at {:.2} CPU s/M samples; catch-up {:.0} samples/s at {:.2} CPU s/M samples ({:.0} backlog samples in {:.1} s); received {:.0} of {:.0} scraped",
        f.system.name(),
        f.steady_rate(),
        f.steady_cpu_per_msample(),
        f.catchup_rate(),
        f.catchup_cpu_per_msample(),
        f.backlog_samples,
        f.catchup_seconds,
        f.received_total,
        f.scraped_total,
    )
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

pub fn markdown(run: &RemoteWriteRun) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Remote write throughput: Sextant vs Prometheus\n");
    let _ = writeln!(
        md,
        "Each sender in agent mode scrapes {} targets x {} series every {} s ({} series) and \
         remote-writes to a fresh VictoriaMetrics ({}) on loopback, one sender after the other, \
         with the same `queue_config: {{{}}}`. Steady: {} s after a warm-up. Catch-up: the \
         receiver stopped for {} s, then the time until the sender's lag is under two scrape \
         intervals again. Samples are counted by the receiver; CPU is the sender's \
         (`/proc/<pid>/stat`). See `benches/compare/README.md`.\n",
        run.size.targets,
        run.size.units_per_target * SERIES_PER_UNIT,
        run.size.interval_s,
        run.series,
        run.receiver_version,
        run.queue_config,
        run.duration_s,
        run.outage_s,
    );
    let _ = writeln!(md, "- Command: `{}`", run.command);
    let _ = writeln!(md, "- Date: {}", run.date);
    let _ = writeln!(md, "- Machine: {}\n", run.machine);
    let _ = writeln!(
        md,
        "| sender | version | steady samples/s | steady CPU s / M samples | catch-up samples/s | catch-up CPU s / M samples | backlog samples | catch-up s | received / scraped | peak RSS MiB | load before / after |"
    );
    let _ = writeln!(
        md,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for f in &run.senders {
        if let Some(error) = &f.error {
            let _ = writeln!(
                md,
                "| {} | {} | failed: {error} | | | | | | | | |",
                f.system.name(),
                f.version
            );
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.3} | {:.0} | {:.3} | {:.0} | {:.1} | {:.0} / {:.0} | {:.0} | {} / {} |",
            f.system.name(),
            f.version,
            f.steady_rate(),
            f.steady_cpu_per_msample(),
            f.catchup_rate(),
            f.catchup_cpu_per_msample(),
            f.backlog_samples,
            f.catchup_seconds,
            f.received_total,
            f.scraped_total,
            f.rss_peak_bytes as f64 / 1024.0 / 1024.0,
            f.load_before,
            f.load_after,
        );
    }
    let find = |system| {
        run.senders
            .iter()
            .find(|f| f.system == system && f.error.is_none())
    };
    if let (Some(s), Some(p)) = (find(System::Sextant), find(System::Prometheus)) {
        let throughput = s.catchup_rate() / p.catchup_rate();
        let cpu_catchup = s.catchup_cpu_per_msample() / p.catchup_cpu_per_msample();
        let cpu_steady = s.steady_cpu_per_msample() / p.steady_cpu_per_msample();
        let _ = writeln!(
            md,
            "\n## Goal (issue 9): at least Prometheus's throughput at no more than its CPU\n"
        );
        let _ = writeln!(md, "| figure | Sextant / Prometheus | goal | verdict |");
        let _ = writeln!(md, "| --- | --- | --- | --- |");
        let _ = writeln!(
            md,
            "| catch-up throughput (samples/s) | {throughput:.2} | ≥ 1 | {} |",
            verdict(throughput >= 1.0)
        );
        let _ = writeln!(
            md,
            "| catch-up CPU per M samples | {cpu_catchup:.2} | ≤ 1 | {} |",
            verdict(cpu_catchup <= 1.0)
        );
        let _ = writeln!(
            md,
            "| steady CPU per M samples | {cpu_steady:.2} | ≤ 1 | {} |",
            verdict(cpu_steady <= 1.0)
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_counters_are_read_by_label() {
        let page = "# TYPE vm_rows_inserted_total counter\n\
            vm_rows_inserted_total{type=\"promremotewrite\"} 1200\n\
            vm_rows_inserted_total{type=\"influx\"} 7\n\
            vm_rows_inserted_total_other{type=\"promremotewrite\"} 9\n";
        assert_eq!(
            metric_with(page, "vm_rows_inserted_total", "type=\"promremotewrite\""),
            Some(1200.0)
        );
        assert_eq!(
            metric_with(page, "vm_rows_inserted_total", "type=\"csv\""),
            None
        );
    }
}
