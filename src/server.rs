//! The running server: composition of storage, scraping and the HTTP
//! surface, and its lifecycle: start, reload (SIGHUP or `POST /-/reload`),
//! ordered shutdown (SIGINT/SIGTERM).
//!
//! Entry point: [`Server::start`] opens the database, starts the scrape
//! manager and binds the HTTP listener; [`Server::run_until`] serves until a
//! signal or the given future asks it to stop, then stops the parts in order
//! (see [`crate::shutdown`]).

pub mod agent;
mod config;
pub mod http;
mod metrics_api;
pub mod recommender;
mod rules;
mod scrape;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tsdb::clock::{Clock, SystemClock};
use tsdb::promql::EngineOptions;

use tsdb::db::{Db, DbOptions};

use crate::api::{Api, HeadStatus, ServerInfo, Sources};
use crate::backend::LocalBackend;
use crate::metrics::{self, Registry};
use crate::remote::write::RemoteWrite;
use crate::shutdown::{Shutdown, Signal, Signals};
pub use config::ConfigSource;
use http::{Lifecycle, ReloadRequest};
use scrape::Scraping;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `None`: the embedded default configuration.
    pub config_file: Option<PathBuf>,
    /// `None`: the config's `storage.path`, else `./data`.
    pub storage_path: Option<PathBuf>,
    pub listen: String,
    /// `None`: the config's retention, else 15 days.
    pub retention: Option<Duration>,
    pub query_timeout: Duration,
    pub lookback_delta: Duration,
    pub max_concurrent_queries: usize,
    pub max_samples: usize,
    /// Accept samples on `POST /api/v1/write`.
    pub enable_remote_write_receiver: bool,
    /// `Some`: run as an agent ([`agent::AgentServer`]) with these settings.
    pub agent: Option<agent::AgentSettings>,
    /// Serve the Kubernetes metrics APIs here (wins over the config's
    /// `metrics_api.listen_address`).
    pub metrics_api_listen: Option<String>,
    /// TLS and authentication for the HTTP listener (`--web.config.file`).
    pub web_config_file: Option<PathBuf>,
    /// Serve `/-/reload` and `/-/quit` (`--web.enable-lifecycle`).
    pub enable_lifecycle: bool,
    /// Serve the TSDB admin endpoints (`--web.enable-admin-api`).
    pub enable_admin_api: bool,
    /// Connection limits and timeouts of the HTTP listener.
    pub connection_limits: crate::web::ConnectionLimits,
    /// Active series the storage holds at most; new ones beyond are
    /// refused (0: no limit).
    pub max_series: usize,
}

impl ServeOptions {
    /// Defaults as `sextant serve` without flags, listening on `listen`.
    pub fn new(listen: &str) -> Self {
        ServeOptions {
            config_file: None,
            storage_path: None,
            listen: listen.to_string(),
            retention: None,
            query_timeout: Duration::from_secs(120),
            lookback_delta: Duration::from_secs(300),
            max_concurrent_queries: crate::backend::DEFAULT_MAX_CONCURRENT_QUERIES,
            max_samples: 50_000_000,
            enable_remote_write_receiver: false,
            agent: None,
            metrics_api_listen: None,
            web_config_file: None,
            enable_lifecycle: false,
            enable_admin_api: false,
            connection_limits: crate::web::ConnectionLimits::default(),
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

/// The default cap on active series: about 10 GB of head memory at
/// Sextant's measured ~1 KiB per series, a bound rather than a target.
pub const DEFAULT_MAX_SERIES: usize = 10_000_000;

/// `--storage.tsdb.max-series` as the storage takes it (0: no limit).
fn max_series(flag: usize) -> Option<usize> {
    (flag > 0).then_some(flag)
}

/// Default retention, as Prometheus's.
const DEFAULT_RETENTION: Duration = Duration::from_secs(15 * 24 * 3600);

/// A started server: storage open, components running, HTTP listening.
pub struct Server {
    addr: SocketAddr,
    db: Arc<Db>,
    clock: Arc<dyn Clock>,
    info: Arc<ServerInfo>,
    lifecycle: Arc<Lifecycle>,
    config_source: ConfigSource,
    reloads: mpsc::Receiver<ReloadRequest>,
    http_stop: oneshot::Sender<()>,
    http_task: JoinHandle<std::io::Result<()>>,
    maintenance: Maintenance,
    /// `None` when the database keeps no WAL to follow.
    remote_write: Option<tokio::sync::Mutex<RemoteWrite>>,
    /// Installed before the server says it is ready, so that a SIGHUP or
    /// SIGTERM sent on that message is never lost to the default action.
    signals: Signals,
    rules: rules::Rules,
    recommender: recommender::RecommenderService,
    scraping: Scraping,
    metrics_api: Option<metrics_api::MetricsApiService>,
}

impl Server {
    /// Binds the listener, loads the configuration, opens the database and
    /// starts every component.
    ///
    /// # Errors
    /// A bad configuration, an address in use, a database that cannot be
    /// opened (locked by another process, unreadable).
    pub async fn start(options: ServeOptions) -> anyhow::Result<Server> {
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
        for warning in loaded.config.warnings() {
            tracing::warn!(warning, "Configuration warning.");
        }

        let storage_path = options
            .storage_path
            .clone()
            .or_else(|| loaded.config.storage.path.clone())
            .unwrap_or_else(|| PathBuf::from("data"));
        let retention = options
            .retention
            .or_else(|| {
                let tsdb = loaded.config.storage.tsdb.as_ref()?;
                tsdb.retention.as_ref()?.time
            })
            .unwrap_or(DEFAULT_RETENTION);
        let db_options = DbOptions {
            clock: Arc::clone(&clock),
            retention_time: Some(retention),
            max_series: max_series(options.max_series),
            ..DbOptions::default()
        };
        let db = {
            let path = storage_path.clone();
            tokio::task::spawn_blocking(move || Db::open(&path, db_options))
                .await?
                .with_context(|| format!("opening the database in {}", storage_path.display()))?
        };
        let db = Arc::new(db);

        let registry = Arc::new(Registry::new());
        registry.register(metrics::process::collect);
        register_db_metrics(&registry, &db);
        let maintenance = Maintenance::start(Arc::clone(&db), &registry);
        let remote_write =
            start_remote_write(&loaded.config, &db, &registry)?.map(tokio::sync::Mutex::new);
        let scraping = Scraping::start(
            Arc::clone(&db) as Arc<dyn tsdb::storage::Appendable>,
            Arc::clone(&clock),
            &loaded.config,
            addr,
            &registry,
        )
        .await
        .context("starting scraping")?;

        let backend = Arc::new(LocalBackend::new(
            query_storage(&loaded.config, &db)?,
            EngineOptions {
                lookback_delta: options.lookback_delta,
                timeout: options.query_timeout,
                max_samples: options.max_samples,
                default_subquery_step: loaded.config.global.evaluation_interval(),
            },
            options.max_concurrent_queries,
            &registry,
        ));
        let rules = rules::Rules::start(
            &loaded.config,
            Arc::clone(&backend),
            Arc::clone(&db),
            Arc::clone(&clock),
            &registry,
            external_url(addr),
        )
        .await?;
        let info = Arc::new(ServerInfo::new(
            start_ms,
            flags(&options, &storage_path, retention, addr),
            scraper::config::format_duration(retention),
            loaded.shown,
        ));
        let sources = Sources {
            head_status: {
                let db = Arc::clone(&db);
                Box::new(move || head_status(&db))
            },
            targets: scraping.targets_source(),
            metadata: Box::new(Vec::new),
        };
        let recommender = start_recommender(
            &loaded.config,
            &backend,
            &clock,
            &registry,
            recommender::checkpoint_path(&storage_path),
        )
        .await?;
        let metrics_api = metrics_api::MetricsApiService::start(
            &loaded.config.metrics_api,
            options.metrics_api_listen.as_deref(),
            Arc::clone(&backend),
            Arc::clone(&clock),
            options.connection_limits.clone(),
        )
        .await?;
        let api = Arc::new(
            Api::new(backend, Arc::clone(&info), Arc::clone(&clock), sources)
                .with_rules(rules.source())
                .with_recommendations(recommender.latest()),
        );
        let (reload_requests, reloads) = mpsc::channel(4);
        let lifecycle = Arc::new(Lifecycle::new(
            Arc::clone(&registry),
            reload_requests,
            options.enable_lifecycle,
        ));
        let router = http::router(api, Arc::clone(&lifecycle))
            .merge(remote_api_router(&options, &db))
            .merge(crate::api::admin::router(Arc::new(
                crate::api::admin::Admin {
                    db: options.enable_admin_api.then(|| Arc::clone(&db)),
                },
            )))
            .merge(federate_router(&options, &db, &clock, &loaded.config));
        let (http_stop, http_stopped) = oneshot::channel::<()>();
        let serving =
            http::WebServing::new(web_config, options.connection_limits.clone(), &registry);
        let http_task = tokio::spawn(http::serve(listener, router, serving, async move {
            let _ = http_stopped.await;
        }));
        let signals = Signals::install().context("installing signal handlers")?;
        lifecycle.set_ready(true);
        tracing::info!(address = %addr, storage = %storage_path.display(), "Server is ready to receive web requests.");
        Ok(Server {
            addr,
            db,
            clock,
            info,
            lifecycle,
            config_source,
            reloads,
            http_stop,
            http_task,
            maintenance,
            remote_write,
            signals,
            rules,
            recommender,
            scraping,
            metrics_api,
        })
    }

    /// The address the HTTP server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the metrics APIs' HTTPS listener, when serving them.
    pub fn metrics_api_addr(&self) -> Option<SocketAddr> {
        self.metrics_api.as_ref().map(|m| m.addr())
    }

    /// Serves until SIGINT, SIGTERM or `stop`, reloading the configuration
    /// on SIGHUP and `POST /-/reload`; then shuts down in order.
    ///
    /// # Errors
    /// Signal handlers cannot be installed; a shutdown stage failed.
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
        let Server {
            db,
            http_stop,
            http_task,
            maintenance,
            remote_write,
            rules,
            recommender,
            scraping,
            metrics_api,
            ..
        } = self;
        // Scraping stops first so that nothing appends while the database
        // is committed and closed.
        let mut shutdown = Shutdown::new().then("scrape", move || async move {
            scraping.stop().await;
            Ok(())
        });
        if let Some(metrics_api) = metrics_api {
            shutdown = shutdown.then("metrics api", move || async move {
                metrics_api.stop().await;
                Ok(())
            });
        }
        let mut shutdown = shutdown
            .then("http", move || async move {
                let _ = http_stop.send(());
                http_task.await??;
                Ok(())
            })
            .then("rules", move || async move {
                rules.stop().await;
                Ok(())
            });
        if let Some(remote_write) = remote_write {
            shutdown = shutdown.then("remote write", move || async move {
                remote_write.into_inner().stop().await;
                Ok(())
            });
        }
        shutdown
            .then("storage", move || async move {
                // The recommender reads the database: it stops first.
                recommender.stop().await;
                maintenance.stop().await;
                close_db(db).await
            })
            .run()
            .await
    }

    /// Re-reads the configuration and applies it; a bad one is rejected
    /// and the running one stays.
    async fn reload(&self) -> Result<(), String> {
        // Rules first: they are the likelier to be refused, and nothing has
        // changed yet when they are.
        let outcome = async {
            let loaded = self.config_source.load().map_err(|e| format!("{e:#}"))?;
            let metrics_api_rules =
                metrics_api::MetricsApiService::check(&loaded.config.metrics_api)?;
            self.rules.reload(&loaded.config)?;
            if let Some(remote_write) = &self.remote_write {
                remote_write
                    .lock()
                    .await
                    .apply(
                        &loaded.config.remote_write,
                        &loaded.config.global.external_labels,
                        &self.lifecycle.registry,
                    )
                    .await
                    .map_err(|e| format!("{e:#}"))?;
            }
            self.scraping
                .apply(&loaded.config)
                .await
                .map_err(|e| format!("{e:#}"))?;
            self.recommender.reconfigure(&loaded.config.autoscaler);
            if let Some(metrics_api) = &self.metrics_api {
                metrics_api.install(metrics_api_rules).await;
            }
            Ok::<_, String>(loaded)
        }
        .await;
        record_reload(&self.info, self.clock.as_ref(), outcome)
    }
}

/// Records a reload's outcome for `status` and the log; the outcome again.
fn record_reload(
    info: &ServerInfo,
    clock: &dyn Clock,
    outcome: Result<config::Loaded, String>,
) -> Result<(), String> {
    match outcome {
        Ok(loaded) => {
            info.config_loaded(loaded.shown, clock.now_ms());
            tracing::info!("Configuration reloaded.");
            Ok(())
        }
        Err(error) => {
            info.config_reload_failed();
            tracing::error!(
                error,
                "Configuration reload failed; keeping the running one."
            );
            Err(error)
        }
    }
}

/// The `remote_write` queues, following the database's WAL; `None` when
/// the database keeps no WAL.
fn start_remote_write(
    config: &crate::config::Config,
    db: &Db,
    registry: &Registry,
) -> anyhow::Result<Option<RemoteWrite>> {
    let Some(wal) = db.head().wal() else {
        return Ok(None);
    };
    start_remote_write_queues(config, wal.dir(), registry).map(Some)
}

/// The `remote_write` queues following the WAL in `wal_dir` (none yet
/// when the config has no endpoint; a reload may add them).
fn start_remote_write_queues(
    config: &crate::config::Config,
    wal_dir: &std::path::Path,
    registry: &Registry,
) -> anyhow::Result<RemoteWrite> {
    let remote_write = RemoteWrite::start(
        wal_dir,
        &config.remote_write,
        &config.global.external_labels,
        registry,
    )
    .context("starting remote write")?;
    Ok(remote_write)
}

/// What queries read: the database, merged with the `remote_read`
/// endpoints when there are any ([`crate::remote::fanout`]).
fn query_storage(
    config: &crate::config::Config,
    db: &Arc<Db>,
) -> anyhow::Result<Arc<dyn tsdb::storage::Queryable>> {
    let start = Arc::downgrade(db);
    crate::remote::fanout::from_config(
        config,
        Arc::clone(db) as Arc<dyn tsdb::storage::Queryable>,
        Box::new(move || start.upgrade().map_or(i64::MAX, |db| db.start_time())),
    )
}

/// `GET /federate` over the database.
fn federate_router(
    options: &ServeOptions,
    db: &Arc<Db>,
    clock: &Arc<dyn Clock>,
    config: &crate::config::Config,
) -> axum::Router {
    crate::api::federate::router(Arc::new(crate::api::federate::Federation {
        storage: Arc::clone(db) as Arc<dyn tsdb::storage::Queryable>,
        clock: Arc::clone(clock),
        lookback_delta: options.lookback_delta,
        external_labels: config
            .global
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }))
}

/// `POST /api/v1/write` (when enabled) and `POST /api/v1/read` over the
/// database.
fn remote_api_router(options: &ServeOptions, db: &Arc<Db>) -> axum::Router {
    let appendable = options
        .enable_remote_write_receiver
        .then(|| Arc::clone(db) as Arc<dyn tsdb::storage::Appendable>);
    let storage = Arc::clone(db) as Arc<dyn tsdb::storage::Queryable>;
    crate::api::remote::router(Arc::new(crate::api::remote::RemoteApi::new(
        appendable,
        storage,
        crate::api::remote::RemoteLimits::default(),
    )))
}

/// The URL the server is reachable under, for alerts' generator URLs
/// (Prometheus's default `--web.external-url`).
fn external_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// Starts the recommender over the local engine for the configured workloads.
async fn start_recommender(
    config: &crate::config::Config,
    backend: &Arc<LocalBackend>,
    clock: &Arc<dyn Clock>,
    registry: &Registry,
    checkpoint_path: PathBuf,
) -> anyhow::Result<recommender::RecommenderService> {
    recommender::RecommenderService::start(
        &config.autoscaler,
        Arc::clone(backend),
        Arc::clone(clock),
        registry,
        Some(checkpoint_path),
    )
    .await
}

/// Closes the database once nothing else holds it.
async fn close_db(db: Arc<Db>) -> anyhow::Result<()> {
    wait_until_sole_owner(&db).await;
    tokio::task::spawn_blocking(move || match Arc::try_unwrap(db) {
        Ok(db) => db.close().context("closing the database"),
        Err(db) => {
            // Something still holds it (a request that outlived the HTTP
            // server): flush what is committed; the lock goes with the process.
            tracing::warn!("The database is still in use; syncing the WAL without closing it.");
            db.head().sync_wal().context("syncing the WAL")
        }
    })
    .await?
}

/// Waits up to 30 seconds for the other handles of `storage` to go: tasks
/// that just finished (a connection, a scrape loop, a query on the blocking
/// pool) may still be dropping theirs when their stage has stopped.
async fn wait_until_sole_owner<T>(storage: &Arc<T>) {
    // Queries and requests still finishing hold the storage; on a loaded
    // machine that can take seconds, and closing under them would leave
    // the directory locked until they end.
    for waited in 0..3000 {
        if Arc::strong_count(storage) == 1 {
            return;
        }
        if waited == 200 {
            tracing::warn!(
                holders = Arc::strong_count(storage) - 1,
                "Waiting for requests in flight to release the storage."
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::warn!("Closing the storage while requests still hold it.");
}

/// The flags `status/flags` reports, under Prometheus's names.
fn flags(
    options: &ServeOptions,
    storage_path: &std::path::Path,
    retention: Duration,
    addr: SocketAddr,
) -> BTreeMap<String, String> {
    let format = scraper::config::format_duration;
    [
        (
            "config.file",
            options
                .config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        ("storage.tsdb.path", storage_path.display().to_string()),
        ("storage.tsdb.retention.time", format(retention)),
        ("web.listen-address", addr.to_string()),
        ("query.timeout", format(options.query_timeout)),
        ("query.lookback-delta", format(options.lookback_delta)),
        (
            "query.max-concurrency",
            options.max_concurrent_queries.to_string(),
        ),
        ("query.max-samples", options.max_samples.to_string()),
        (
            "web.config.file",
            options
                .web_config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        ("web.enable-lifecycle", options.enable_lifecycle.to_string()),
        ("storage.tsdb.max-series", options.max_series.to_string()),
        ("web.enable-admin-api", options.enable_admin_api.to_string()),
        (
            "web.max-connections",
            options.connection_limits.max_connections.to_string(),
        ),
        (
            "web.read-timeout",
            format(options.connection_limits.read_timeout),
        ),
        (
            "web.write-timeout",
            format(options.connection_limits.write_timeout),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn head_status(db: &Db) -> HeadStatus {
    let head = db.head();
    let stats = head.stats();
    HeadStatus {
        n_series: stats.n_series,
        n_chunks: head.chunk_stats().n_chunks,
        min_t: stats.min_t,
        max_t: stats.max_t,
    }
}

/// The database's figures on `/metrics`, read at every scrape. The
/// collector holds the database weakly so that it never delays closing it.
fn register_db_metrics(registry: &Registry, db: &Arc<Db>) {
    let newest = Arc::downgrade(db);
    crate::remote::write::register_highest_appended(registry, move || {
        newest.upgrade().and_then(|db| db.head().max_time())
    });
    let db = Arc::downgrade(db);
    registry.register(move |out| {
        let Some(db) = db.upgrade() else {
            return;
        };
        let head = db.head();
        let stats = head.stats();
        let chunks = head.chunk_stats();
        out.gauge(
            "sextant_tsdb_head_series",
            "Series in the head.",
            stats.n_series as f64,
        );
        out.gauge(
            "sextant_tsdb_head_chunks",
            "Chunks in the head.",
            chunks.n_chunks as f64,
        );
        out.gauge(
            "sextant_tsdb_head_chunks_size_bytes",
            "Encoded bytes of the head's chunks.",
            chunks.chunk_bytes as f64,
        );
        out.counter(
            "sextant_tsdb_head_samples_appended_total",
            "Samples appended to the head.",
            stats.samples_appended as f64,
        );
        out.counter(
            "sextant_tsdb_head_samples_dropped_total",
            "Samples accepted by an appender but dropped at commit.",
            stats.samples_dropped as f64,
        );
        out.counter(
            "sextant_tsdb_head_series_rejected_total",
            "New series refused because the head held --storage.tsdb.max-series series.",
            stats.series_rejected as f64,
        );
        if let (Some(min_t), Some(max_t)) = (stats.min_t, stats.max_t) {
            out.gauge(
                "sextant_tsdb_head_min_time_seconds",
                "Oldest sample time in the head.",
                min_t as f64 / 1000.0,
            );
            out.gauge(
                "sextant_tsdb_head_max_time_seconds",
                "Newest sample time in the head.",
                max_t as f64 / 1000.0,
            );
        }
        if let Some(wal) = head.wal() {
            out.counter(
                "sextant_tsdb_wal_writes_failed_total",
                "Commits rejected because their WAL write or sync failed (disk full, IO errors).",
                wal.writes_failed() as f64,
            );
        }
        if let Some(wal) = head.wal()
            && let Ok(size) = wal.disk_size()
        {
            out.gauge(
                "sextant_tsdb_wal_size_bytes",
                "Bytes of the write-ahead log on disk.",
                size as f64,
            );
        }
        out.counter(
            "sextant_tsdb_blocks_corrupted_total",
            "Damaged blocks moved aside (renamed to <id>.corrupted) when the database opened.",
            db.blocks_moved_aside() as f64,
        );
        let blocks = db.blocks();
        out.gauge(
            "sextant_tsdb_blocks_loaded",
            "Persisted blocks open.",
            blocks.len() as f64,
        );
        out.gauge(
            "sextant_tsdb_blocks_size_bytes",
            "Bytes of the persisted blocks.",
            blocks.iter().map(|b| b.size_bytes()).sum::<u64>() as f64,
        );
    });
}

/// How often the database is compacted (Prometheus: every minute).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// The background task that compacts the database and applies retention.
struct Maintenance {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Maintenance {
    fn start(db: Arc<Db>, registry: &Registry) -> Self {
        let runs = registry.counter(
            "sextant_tsdb_compactions_total",
            "Maintenance runs (head cuts, block compaction, retention), by outcome.",
            &["outcome"],
        );
        let durations = registry
            .histogram(
                "sextant_tsdb_compaction_duration_seconds",
                "Time of one maintenance run.",
                &[],
                metrics::DURATION_BUCKETS,
            )
            .with(&[]);
        let blocks_written = registry
            .counter(
                "sextant_tsdb_blocks_written_total",
                "Blocks written from the head or by merging blocks.",
                &[],
            )
            .with(&[]);
        let blocks_deleted = registry
            .counter(
                "sextant_tsdb_blocks_deleted_by_retention_total",
                "Blocks deleted by retention.",
                &[],
            )
            .with(&[]);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval_at(
                tokio::time::Instant::now() + MAINTENANCE_INTERVAL,
                MAINTENANCE_INTERVAL,
            );
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = interval.tick() => {}
                }
                let db = Arc::clone(&db);
                let started = std::time::Instant::now();
                let outcome = tokio::task::spawn_blocking(move || db.compact()).await;
                durations.observe(started.elapsed().as_secs_f64());
                match outcome {
                    Ok(Ok(report)) => {
                        runs.with(&["success"]).inc();
                        blocks_written
                            .inc_by((report.head_blocks.len() + report.merged_blocks.len()) as f64);
                        blocks_deleted.inc_by(report.deleted_by_retention.len() as f64);
                    }
                    Ok(Err(error)) => {
                        runs.with(&["failure"]).inc();
                        tracing::error!(error = %error, "Database maintenance failed.");
                    }
                    Err(error) => {
                        runs.with(&["failure"]).inc();
                        tracing::error!(error = %error, "Database maintenance task failed.");
                    }
                }
            }
        });
        Maintenance { stop, task }
    }

    /// Stops after the run in progress, if any.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
