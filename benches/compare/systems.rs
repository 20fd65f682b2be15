//! The three compared systems: how each starts, says it is ready, reports
//! the samples it ingested, and is made to write its data compactly before
//! its disk use is measured.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tsdb::block::{BlockId, BlockWriter, EncodedChunk};
use tsdb::db::{Db, DbOptions};

use crate::Error;
use crate::measure::{dir_bytes, get_text, metric_sum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum System {
    Sextant,
    Prometheus,
    VictoriaMetrics,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Sextant => "Sextant",
            System::Prometheus => "Prometheus",
            System::VictoriaMetrics => "VictoriaMetrics",
        }
    }

    pub fn parse(s: &str) -> Option<System> {
        match s.to_ascii_lowercase().as_str() {
            "sextant" => Some(System::Sextant),
            "prometheus" => Some(System::Prometheus),
            "victoriametrics" | "victoria-metrics" | "vm" => Some(System::VictoriaMetrics),
            _ => None,
        }
    }

    /// The counter of samples written to storage on the system's `/metrics`.
    fn samples_metric(self) -> &'static str {
        match self {
            System::Sextant => "sextant_tsdb_head_samples_appended_total",
            System::Prometheus => "prometheus_tsdb_head_samples_appended_total",
            System::VictoriaMetrics => "vm_rows_added_to_storage_total",
        }
    }

    fn ready_path(self) -> &'static str {
        match self {
            System::VictoriaMetrics => "/health",
            _ => "/-/ready",
        }
    }
}

/// Paths of the binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub sextant: PathBuf,
    pub prometheus: PathBuf,
    pub victoria_metrics: PathBuf,
}

impl Binaries {
    pub fn of(&self, system: System) -> &Path {
        match system {
            System::Sextant => &self.sextant,
            System::Prometheus => &self.prometheus,
            System::VictoriaMetrics => &self.victoria_metrics,
        }
    }

    /// The first line of the binary's version output.
    pub fn version(&self, system: System) -> String {
        let flag = match system {
            System::VictoriaMetrics => "-version",
            _ => "--version",
        };
        let output = Command::new(self.of(system)).arg(flag).output();
        let text = output
            .map(|o| {
                let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                s.push_str(&String::from_utf8_lossy(&o.stderr));
                s
            })
            .unwrap_or_default();
        let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if line.is_empty() && system == System::VictoriaMetrics {
            // Debian's build prints an empty version: ask the package.
            return package_version("victoria-metrics");
        }
        line.trim().to_string()
    }
}

/// `dpkg-query`'s version of a Debian package, or "unknown".
pub fn package_version(package: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .map_or_else(
            || "unknown".to_string(),
            |v| format!("{package} {v} (Debian)"),
        )
}

/// A started system; killed on drop if still running.
pub struct Running {
    pub system: System,
    child: Child,
    pub pid: String,
    pub base: String,
    pub data_dir: PathBuf,
}

impl Running {
    /// Starts `system` with `config`, its data under `work`, listening on
    /// `port`, with `extra_args` after the usual ones.
    pub fn start(
        system: System,
        binaries: &Binaries,
        config: &Path,
        work: &Path,
        port: u16,
        extra_args: &[&str],
    ) -> Result<Running, Error> {
        let data_dir = work.join(format!("data-{}", system.name().to_ascii_lowercase()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir)?;
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(binaries.of(system));
        match system {
            System::Sextant => {
                command
                    .arg("serve")
                    .arg("--config")
                    .arg(config)
                    .arg("--storage.path")
                    .arg(&data_dir)
                    .arg("--listen")
                    .arg(&listen);
            }
            System::Prometheus => {
                command
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", data_dir.display()))
                    .arg(format!("--web.listen-address={listen}"))
                    .arg("--web.enable-admin-api");
            }
            System::VictoriaMetrics => {
                command
                    .arg(format!("-promscrape.config={}", config.display()))
                    .arg(format!("-storageDataPath={}", data_dir.display()))
                    .arg(format!("-httpListenAddr={listen}"))
                    // Repeated queries must be evaluated, not answered from
                    // the response cache (the others have none).
                    .arg("-search.disableCache");
            }
        }
        command.args(extra_args);
        let log = std::fs::File::create(
            work.join(format!("{}.log", system.name().to_ascii_lowercase())),
        )?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn().map_err(|e| {
            Error::Peer(format!(
                "starting {} ({}): {e}",
                system.name(),
                binaries.of(system).display()
            ))
        })?;
        Ok(Running {
            system,
            pid: child.id().to_string(),
            child,
            base: format!("http://{listen}"),
            data_dir,
        })
    }

    /// Waits until the system answers its readiness endpoint.
    pub async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let url = format!("{}{}", self.base, self.system.ready_path());
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Peer(format!(
                    "{} exited while starting: {status}",
                    self.system.name()
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Peer(format!("{} not ready", self.system.name())));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Samples written to storage so far, by the system's own counter.
    pub async fn samples_ingested(&self, client: &reqwest::Client) -> Result<f64, Error> {
        let page = get_text(client, &format!("{}/metrics", self.base)).await?;
        metric_sum(&page, self.system.samples_metric()).ok_or_else(|| {
            Error::Peer(format!(
                "{}: no {} on /metrics",
                self.system.name(),
                self.system.samples_metric()
            ))
        })
    }

    /// SIGTERM, then waits for the exit (SIGKILL after `timeout`).
    pub async fn stop(&mut self, timeout: Duration) -> Result<(), Error> {
        let _ = Command::new("kill").args(["-TERM", &self.pid]).status();
        let deadline = Instant::now() + timeout;
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(Error::Peer(format!(
                    "{} did not stop within {timeout:?}; killed",
                    self.system.name()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Makes the system write its data as it would for the long term, stops
    /// it, and returns the bytes that data takes and the samples in it.
    ///
    /// - Prometheus: an admin snapshot including the head (the head written
    ///   as a block); bytes and samples of the snapshot's blocks.
    /// - VictoriaMetrics: `/internal/force_flush`, then
    ///   `/internal/force_merge` of this month's partition, waiting for
    ///   merges to finish; bytes of the data and index directories, samples
    ///   from its counter just before the stop (it ingests up to one more
    ///   scrape round meanwhile).
    /// - Sextant: a graceful stop (WAL synced), then the head, replayed from
    ///   the WAL, written as one block the way `Db::compact` cuts one;
    ///   bytes and samples of that block.
    pub async fn flush_and_stop(
        &mut self,
        client: &reqwest::Client,
        work: &Path,
    ) -> Result<DiskFigures, Error> {
        let figures = match self.system {
            System::Prometheus => {
                let response: serde_json::Value = client
                    .post(format!(
                        "{}/api/v1/admin/tsdb/snapshot?skip_head=false",
                        self.base
                    ))
                    .send()
                    .await?
                    .json()
                    .await?;
                let name = response["data"]["name"].as_str().ok_or_else(|| {
                    Error::Peer(format!("Prometheus snapshot failed: {response}"))
                })?;
                let dir = self.data_dir.join("snapshots").join(name);
                let figures = DiskFigures {
                    bytes: dir_bytes(&dir),
                    samples: prometheus_block_samples(&dir)?,
                    wal_bytes: dir_bytes(&self.data_dir.join("wal")),
                };
                self.stop(Duration::from_secs(120)).await?;
                figures
            }
            System::VictoriaMetrics => {
                get_text(client, &format!("{}/internal/force_flush", self.base)).await?;
                let partition = chrono::Utc::now().format("%Y_%m").to_string();
                get_text(
                    client,
                    &format!(
                        "{}/internal/force_merge?partition_prefix={partition}",
                        self.base
                    ),
                )
                .await?;
                // Merges run in the background; wait for them to end.
                let deadline = Instant::now() + Duration::from_secs(300);
                tokio::time::sleep(Duration::from_secs(2)).await;
                while Instant::now() < deadline {
                    let page = get_text(client, &format!("{}/metrics", self.base)).await?;
                    if metric_sum(&page, "vm_active_merges").unwrap_or(0.0) == 0.0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let samples = self.samples_ingested(client).await?;
                self.stop(Duration::from_secs(120)).await?;
                DiskFigures {
                    bytes: dir_bytes(&self.data_dir.join("data"))
                        + dir_bytes(&self.data_dir.join("indexdb")),
                    samples: samples as u64,
                    wal_bytes: 0,
                }
            }
            System::Sextant => {
                self.stop(Duration::from_secs(120)).await?;
                let wal_bytes = dir_bytes(&self.data_dir.join("wal"));
                let out = work.join("sextant-block");
                let _ = std::fs::remove_dir_all(&out);
                std::fs::create_dir_all(&out)?;
                let data_dir = self.data_dir.clone();
                let out_dir = out.clone();
                let samples =
                    tokio::task::spawn_blocking(move || sextant_head_block(&data_dir, &out_dir))
                        .await
                        .map_err(|e| Error::Peer(e.to_string()))??;
                let figures = DiskFigures {
                    bytes: dir_bytes(&out),
                    samples,
                    wal_bytes,
                };
                let _ = std::fs::remove_dir_all(&out);
                figures
            }
        };
        Ok(figures)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Disk use after the flush.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct DiskFigures {
    pub bytes: u64,
    pub samples: u64,
    /// The write-ahead log at the stop (not part of `bytes`).
    pub wal_bytes: u64,
}

/// Samples in the blocks under `dir` by their `meta.json`.
fn prometheus_block_samples(dir: &Path) -> Result<u64, Error> {
    let mut samples = 0;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let meta = entry.path().join("meta.json");
        if let Ok(text) = std::fs::read_to_string(&meta) {
            let json: serde_json::Value = serde_json::from_str(&text)?;
            samples += json["stats"]["numSamples"].as_u64().unwrap_or(0);
        }
    }
    Ok(samples)
}

/// Opens Sextant's stopped database, writes its whole head into `out` as one
/// block (chunks copied as `Db::compact` copies them), and returns the
/// block's sample count.
fn sextant_head_block(data_dir: &Path, out: &Path) -> Result<u64, Error> {
    let db = Db::open(data_dir, DbOptions::default())?;
    let head = db.head();
    let (Some(min_t), Some(max_t)) = (head.min_time(), head.max_time()) else {
        return Ok(0);
    };
    let mut writer = BlockWriter::new(out, BlockId::new(max_t), min_t, max_t + 1)?;
    for series in head.block_chunks(min_t, max_t)? {
        let chunks: Vec<EncodedChunk<'_>> = series
            .chunks
            .iter()
            .map(|c| EncodedChunk {
                min_t: c.min_t,
                max_t: c.max_t,
                bytes: &c.bytes,
            })
            .collect();
        writer.add_series(&series.labels, &chunks)?;
    }
    let samples = writer.finish()?.map_or(0, |meta| meta.stats.num_samples);
    db.close()?;
    Ok(samples)
}
