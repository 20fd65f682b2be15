//! Agent mode (`sextant serve --agent`), as Prometheus Agent and vmagent:
//! scrape, log to a WAL, remote-write; no local querying, rules or
//! recommendations.
//!
//! Storage is [`tsdb::agent::AgentDb`], the WAL without a head. Every
//! `wal_truncate_frequency` the log is truncated: series without a sample
//! since the oldest sample every queue has sent (minus `min_wal_time`) are
//! forgotten, and the segments every queue has read are condensed into a
//! checkpoint. A receiver that stays away holds the log back for at most
//! `max_wal_time`; after that its oldest segments go anyway, as in
//! Prometheus, so that an outage cannot fill the disk.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tsdb::agent::{AgentDb, AgentOptions};
use tsdb::clock::{Clock, SystemClock};
use tsdb::head::{Head, HeadOptions};
use tsdb::promql::EngineOptions;
use tsdb::wal::tail;

use super::config::ConfigSource;
use super::http::{self, Lifecycle, ReloadRequest};
use super::scrape::Scraping;
use super::{
    ServeOptions, max_series, record_reload, start_remote_write_queues, wait_until_sole_owner,
};
use crate::api::{Api, HeadStatus, ServerInfo, Sources};
use crate::backend::LocalBackend;
use crate::config::Config;
use crate::metrics::{self, Registry};
use crate::remote::write::{QueueStats, RemoteWrite};
use crate::shutdown::{Shutdown, Signal, Signals};

/// The agent's WAL retention, under Prometheus Agent's flag names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentSettings {
    /// `--storage.agent.wal-truncate-frequency`.
    pub wal_truncate_frequency: Duration,
    /// `--storage.agent.retention.min-time`: samples stay at least this
    /// long after the oldest sample every queue has sent.
    pub min_wal_time: Duration,
    /// `--storage.agent.retention.max-time`: nothing older stays, sent or
    /// not.
    pub max_wal_time: Duration,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            wal_truncate_frequency: Duration::from_secs(2 * 3600),
            min_wal_time: Duration::from_secs(5 * 60),
            max_wal_time: Duration::from_secs(4 * 3600),
        }
    }
}

/// Prometheus Agent's default data directory.
pub const DEFAULT_AGENT_PATH: &str = "data-agent";

/// Sections an agent cannot act on: refused, as Prometheus Agent refuses
/// them, instead of silently ignored.
///
/// # Errors
/// The first such section in use.
pub fn check_agent_config(config: &Config) -> anyhow::Result<()> {
    let refused = [
        ("rule_files", !config.rule_files.is_empty()),
        (
            "alerting.alertmanagers",
            !config.alerting.alertmanagers.is_empty(),
        ),
        ("remote_read", !config.remote_read.is_empty()),
        ("storage.tsdb", config.storage.tsdb.is_some()),
        ("autoscaler", config.autoscaler != Default::default()),
        ("metrics_api", config.metrics_api != Default::default()),
    ];
    match refused.iter().find(|(_, used)| *used) {
        Some((field, _)) => anyhow::bail!("field {field} is not allowed in agent mode"),
        None => Ok(()),
    }
}

/// A started agent.
pub struct AgentServer {
    addr: SocketAddr,
    db: Arc<AgentDb>,
    clock: Arc<dyn Clock>,
    info: Arc<ServerInfo>,
    lifecycle: Arc<Lifecycle>,
    config_source: ConfigSource,
    reloads: mpsc::Receiver<ReloadRequest>,
    http_stop: oneshot::Sender<()>,
    http_task: JoinHandle<std::io::Result<()>>,
    truncation: Truncation,
    remote_write: Arc<tokio::sync::Mutex<RemoteWrite>>,
    signals: Signals,
    scraping: Scraping,
}

impl AgentServer {
    /// Binds the listener, loads and checks the configuration, opens the
    /// agent's WAL and starts scraping and the remote write queues.
    ///
    /// # Errors
    /// A bad configuration (also one with sections an agent refuses), an
    /// address in use, a WAL directory locked by another process.
    pub async fn start(options: ServeOptions, settings: AgentSettings) -> anyhow::Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let start_ms = clock.now_ms();
        let listener = TcpListener::bind(&options.listen)
            .await
            .with_context(|| format!("listening on {}", options.listen))?;
        let addr = listener.local_addr()?;
        let web_config = crate::web::WebConfigSource::load(options.web_config_file.as_deref())
            .context("--web.config.file")?;
        let config_source = ConfigSource {
            file: options.config_file.clone(),
            listen: addr,
        };
        let loaded = config_source.load()?;
        check_agent_config(&loaded.config)?;
        if loaded.config.remote_write.is_empty() {
            tracing::warn!(
                "Agent mode without remote_write: samples are scraped into the WAL and go nowhere."
            );
        }

        let storage_path = options
            .storage_path
            .clone()
            .or_else(|| loaded.config.storage.path.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_AGENT_PATH));
        let db = {
            let path = storage_path.clone();
            let agent_options = AgentOptions {
                max_series: max_series(options.max_series),
                ..AgentOptions::default()
            };
            tokio::task::spawn_blocking(move || AgentDb::open(&path, agent_options))
                .await?
                .with_context(|| format!("opening the agent WAL in {}", storage_path.display()))?
        };
        let db = Arc::new(db);

        let registry = Arc::new(Registry::new());
        registry.register(metrics::process::collect);
        register_agent_metrics(&registry, &db);
        let remote_write = Arc::new(tokio::sync::Mutex::new(start_remote_write_queues(
            &loaded.config,
            db.wal().dir(),
            &registry,
        )?));
        let truncation = Truncation::start(
            Arc::clone(&db),
            Arc::clone(&remote_write),
            Arc::clone(&clock),
            settings,
            &registry,
        );
        let scraping = Scraping::start(
            Arc::clone(&db) as Arc<dyn tsdb::storage::Appendable>,
            Arc::clone(&clock),
            &loaded.config,
            addr,
            &registry,
        )
        .await
        .context("starting scraping")?;

        let format = scraper::config::format_duration;
        let flags = [
            ("agent", "true".to_string()),
            (
                "config.file",
                options
                    .config_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("storage.agent.path", storage_path.display().to_string()),
            (
                "storage.agent.wal-truncate-frequency",
                format(settings.wal_truncate_frequency),
            ),
            (
                "storage.agent.retention.min-time",
                format(settings.min_wal_time),
            ),
            (
                "storage.agent.retention.max-time",
                format(settings.max_wal_time),
            ),
            ("web.listen-address", addr.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let info = Arc::new(ServerInfo::new(
            start_ms,
            flags,
            format(settings.max_wal_time),
            loaded.shown,
        ));
        let api = Arc::new(Api::new(
            no_local_data(),
            Arc::clone(&info),
            Arc::clone(&clock),
            Sources {
                head_status: Box::new(HeadStatus::default),
                targets: scraping.targets_source(),
                metadata: Box::new(Vec::new),
            },
        ));
        let (reload_requests, reloads) = mpsc::channel(4);
        let lifecycle = Arc::new(Lifecycle::new(
            Arc::clone(&registry),
            reload_requests,
            options.enable_lifecycle,
        ));
        let router = http::with_api_routes(crate::api::agent_router(api), Arc::clone(&lifecycle));
        let (http_stop, http_stopped) = oneshot::channel::<()>();
        let serving =
            http::WebServing::new(web_config, options.connection_limits.clone(), &registry);
        let http_task = tokio::spawn(http::serve(listener, router, serving, async move {
            let _ = http_stopped.await;
        }));
        let signals = Signals::install().context("installing signal handlers")?;
        lifecycle.set_ready(true);
        tracing::info!(address = %addr, storage = %storage_path.display(), "Agent is ready to receive web requests.");
        Ok(AgentServer {
            addr,
            db,
            clock,
            info,
            lifecycle,
            config_source,
            reloads,
            http_stop,
            http_task,
            truncation,
            remote_write,
            signals,
            scraping,
        })
    }

    /// The address the HTTP server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGINT, SIGTERM or `stop`, reloading the scrape
    /// configuration on SIGHUP and `POST /-/reload`; then stops scraping,
    /// HTTP, the queues (letting them send what they hold) and the WAL.
    ///
    /// # Errors
    /// A shutdown stage failed.
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(stop);
        let lifecycle = Arc::clone(&self.lifecycle);
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = lifecycle.quit_requested() => break,
                signal = self.signals.next() => match signal {
                    Signal::Terminate => break,
                    Signal::Reload => {
                        let _ = self.reload().await;
                    }
                },
                Some(reply) = self.reloads.recv() => {
                    let _ = reply.send(self.reload().await);
                }
            }
        }
        tracing::info!("Shutting down.");
        self.lifecycle.set_ready(false);
        let AgentServer {
            db,
            http_stop,
            http_task,
            truncation,
            remote_write,
            scraping,
            ..
        } = self;
        Shutdown::new()
            .then("scrape", move || async move {
                scraping.stop().await;
                Ok(())
            })
            .then("http", move || async move {
                let _ = http_stop.send(());
                http_task.await??;
                Ok(())
            })
            .then("remote write", move || async move {
                // The truncation task shares the queues: it stops first.
                truncation.stop().await;
                match Arc::try_unwrap(remote_write) {
                    Ok(remote_write) => remote_write.into_inner().stop().await,
                    Err(_) => tracing::warn!("Remote write queues still shared; not drained."),
                }
                Ok(())
            })
            .then("storage", move || async move { close(db).await })
            .run()
            .await
    }

    /// Applies a re-read configuration's remote write and scrape configs; a
    /// bad one (or one an agent refuses) is rejected and the running one
    /// stays.
    async fn reload(&self) -> Result<(), String> {
        let outcome = async {
            let loaded = self.config_source.load().map_err(|e| format!("{e:#}"))?;
            check_agent_config(&loaded.config).map_err(|e| format!("{e:#}"))?;
            self.remote_write
                .lock()
                .await
                .apply(
                    &loaded.config.remote_write,
                    &loaded.config.global.external_labels,
                    &self.lifecycle.registry,
                )
                .await
                .map_err(|e| format!("{e:#}"))?;
            self.scraping
                .apply(&loaded.config)
                .await
                .map_err(|e| format!("{e:#}"))?;
            Ok::<_, String>(loaded)
        }
        .await;
        record_reload(&self.info, self.clock.as_ref(), outcome)
    }
}

/// The API's query side of an agent: an empty in-memory head that no
/// agent route reads (they answer "unavailable"); its metrics go to a
/// registry nobody renders.
fn no_local_data() -> Arc<LocalBackend> {
    Arc::new(LocalBackend::new(
        Arc::new(Head::new(HeadOptions::default())),
        EngineOptions::default(),
        1,
        &Registry::new(),
    ))
}

async fn close(db: Arc<AgentDb>) -> anyhow::Result<()> {
    wait_until_sole_owner(&db).await;
    tokio::task::spawn_blocking(move || match Arc::try_unwrap(db) {
        Ok(db) => db.close().context("closing the agent WAL"),
        Err(db) => {
            tracing::warn!("The agent WAL is still in use; syncing it without closing.");
            db.wal().sync().context("syncing the agent WAL")
        }
    })
    .await?
}

/// Where the next truncation may cut, from the queues' positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TruncationPoint {
    /// Series without a sample since then are forgotten.
    gc_before_ms: i64,
    /// Segments numbered below it are condensed.
    before_segment: u32,
}

/// Prometheus Agent's rule: keep `min_wal_time` behind the oldest sample
/// every queue has sent, never more than `max_wal_time` behind now; keep
/// every segment a queue still reads unless it is older than
/// `max_wal_time` (`segment_ages`: each segment's number and last write).
fn truncation_point(
    now_ms: i64,
    settings: &AgentSettings,
    queues: &[Arc<QueueStats>],
    segment_ages: &[(u32, i64)],
) -> TruncationPoint {
    let max_wal_ms = settings.max_wal_time.as_millis() as i64;
    let min_wal_ms = settings.min_wal_time.as_millis() as i64;
    let oldest_allowed = now_ms.saturating_sub(max_wal_ms);
    let lowest_sent = queues
        .iter()
        .map(|q| q.highest_sent_ms.load(Ordering::Relaxed))
        .min()
        .unwrap_or(now_ms);
    let gc_before_ms = lowest_sent
        .saturating_sub(min_wal_ms)
        .max(oldest_allowed)
        .min(now_ms);
    let read_by_all = queues
        .iter()
        .map(|q| u32::try_from(q.wal_segment.load(Ordering::Relaxed)).unwrap_or(u32::MAX))
        .min()
        .unwrap_or(u32::MAX);
    let expired = segment_ages
        .iter()
        .filter(|(_, written_ms)| *written_ms < oldest_allowed)
        .map(|(index, _)| index.saturating_add(1))
        .max()
        .unwrap_or(0);
    TruncationPoint {
        gc_before_ms,
        before_segment: read_by_all.max(expired),
    }
}

/// Each WAL segment's number and last modification (ms since the epoch).
fn segment_ages(wal_dir: &Path) -> Vec<(u32, i64)> {
    tail::list_segments(wal_dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(index, path)| {
            let modified = std::fs::metadata(path).ok()?.modified().ok()?;
            let ms = modified.duration_since(SystemTime::UNIX_EPOCH).ok()?;
            Some((index, ms.as_millis() as i64))
        })
        .collect()
}

/// The periodic WAL truncation.
struct Truncation {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Truncation {
    fn start(
        db: Arc<AgentDb>,
        remote_write: Arc<tokio::sync::Mutex<RemoteWrite>>,
        clock: Arc<dyn Clock>,
        settings: AgentSettings,
        registry: &Registry,
    ) -> Self {
        let runs = registry.counter(
            "sextant_agent_truncations_total",
            "WAL truncations of the agent, by outcome.",
            &["outcome"],
        );
        let removed = registry
            .counter(
                "sextant_agent_series_removed_total",
                "Series forgotten by WAL truncation (no sample within the retention).",
                &[],
            )
            .with(&[]);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let every = settings.wal_truncate_frequency;
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = interval.tick() => {}
                }
                let db = Arc::clone(&db);
                let queues: Vec<Arc<QueueStats>> = remote_write
                    .lock()
                    .await
                    .queues()
                    .iter()
                    .map(|(_, stats)| Arc::clone(stats))
                    .collect();
                let point = truncation_point(
                    clock.now_ms(),
                    &settings,
                    &queues,
                    &segment_ages(db.wal().dir()),
                );
                let outcome = tokio::task::spawn_blocking(move || {
                    db.truncate(point.gc_before_ms, point.before_segment)
                })
                .await;
                match outcome {
                    Ok(Ok(stats)) => {
                        runs.with(&["success"]).inc();
                        removed.inc_by(stats.series_removed as f64);
                        tracing::debug!(?stats, ?point, "Truncated the agent WAL.");
                    }
                    Ok(Err(error)) => {
                        runs.with(&["failure"]).inc();
                        tracing::error!(error = %error, "Truncating the agent WAL failed.");
                    }
                    Err(error) => {
                        runs.with(&["failure"]).inc();
                        tracing::error!(error = %error, "Agent WAL truncation task failed.");
                    }
                }
            }
        });
        Truncation { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The agent's figures on `/metrics`, held weakly.
fn register_agent_metrics(registry: &Registry, db: &Arc<AgentDb>) {
    let newest = Arc::downgrade(db);
    crate::remote::write::register_highest_appended(registry, move || {
        newest.upgrade().and_then(|db| db.stats().max_t)
    });
    let db = Arc::downgrade(db);
    registry.register(move |out| {
        let Some(db) = db.upgrade() else {
            return;
        };
        let stats = db.stats();
        out.gauge(
            "sextant_agent_active_series",
            "Series the agent is logging.",
            stats.n_series as f64,
        );
        out.counter(
            "sextant_agent_samples_appended_total",
            "Samples logged to the agent's WAL.",
            stats.samples_appended as f64,
        );
        out.counter(
            "sextant_agent_series_rejected_total",
            "New series refused because the agent held --storage.tsdb.max-series series.",
            stats.series_rejected as f64,
        );
        if let Ok(size) = db.wal().disk_size() {
            out.gauge(
                "sextant_tsdb_wal_size_bytes",
                "Bytes of the write-ahead log on disk.",
                size as f64,
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(sent_ms: i64, segment: u64) -> Arc<QueueStats> {
        let stats = QueueStats::default();
        stats.highest_sent_ms.store(sent_ms, Ordering::Relaxed);
        stats.wal_segment.store(segment, Ordering::Relaxed);
        Arc::new(stats)
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn truncation_keeps_what_the_slowest_queue_still_needs() {
        let settings = AgentSettings::default();
        let now = 100 * HOUR;
        let ages = [(3, now - 2 * HOUR), (4, now - HOUR), (5, now)];
        let point = truncation_point(
            now,
            &settings,
            &[queue(now - HOUR, 5), queue(now - 2 * HOUR, 4)],
            &ages,
        );
        assert_eq!(
            point,
            TruncationPoint {
                gc_before_ms: now - 2 * HOUR - 5 * 60_000,
                before_segment: 4,
            }
        );
    }

    #[test]
    fn an_absent_receiver_holds_the_log_for_at_most_max_wal_time() {
        let settings = AgentSettings::default();
        let now = 100 * HOUR;
        let ages = [(7, now - 5 * HOUR), (8, now - 3 * HOUR), (9, now)];
        // Nothing ever sent, the queue still in segment 7.
        let point = truncation_point(now, &settings, &[queue(i64::MIN, 7)], &ages);
        assert_eq!(
            point,
            TruncationPoint {
                gc_before_ms: now - 4 * HOUR,
                before_segment: 8,
            }
        );
    }

    #[test]
    fn without_queues_everything_but_the_retention_goes() {
        let settings = AgentSettings::default();
        let now = 100 * HOUR;
        let point = truncation_point(now, &settings, &[], &[(1, now)]);
        assert_eq!(point.gc_before_ms, now - 5 * 60_000);
        assert_eq!(point.before_segment, u32::MAX);
    }

    #[test]
    fn refuses_sections_an_agent_cannot_act_on() {
        let config = Config::from_yaml("rule_files: [a.yml]\n", "agent.yml").unwrap();
        let error = check_agent_config(&config).unwrap_err().to_string();
        assert_eq!(error, "field rule_files is not allowed in agent mode");
        let config = Config::from_yaml(
            "remote_write: [{url: 'http://127.0.0.1:1/api/v1/write'}]\nscrape_configs: []\n",
            "agent.yml",
        )
        .unwrap();
        check_agent_config(&config).unwrap();
    }
}
