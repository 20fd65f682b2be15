//! Scrape pools: the scrape loops of one scrape config, kept in step with
//! its discovered targets, as Prometheus's `scrapePool`.
//!
//! [`ScrapePool::sync`] starts a loop for each new target, stops the loops of
//! targets that went away (writing their staleness markers) and leaves the
//! others running. A reloaded scrape config gets a new pool; the old one is
//! stopped with [`Stop::Keep`] so its series continue in the new loops.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use reqwest::header::{ACCEPT, ACCEPT_ENCODING, HeaderMap, HeaderValue};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tsdb::clock::Clock;
use tsdb::storage::Appendable;

use crate::config::{ScrapeConfig, ScrapeProtocol};
use crate::discovery::TargetGroup;
use crate::exposition::{Format, accept_header};
use crate::relabel::{self, RelabelConfig};
use crate::scrape_loop::{
    Fetch, Fetched, HttpFetcher, Limits, Retiring, ScrapeError, ScrapeLoop, ScrapeReport,
    ScrapeStats, Stop, TargetOptions,
};
use crate::target::{DroppedTarget, Target, targets_from_group};

/// Makes the fetcher of a target; [`HttpFetchers`] in production.
pub trait MakeFetcher: Send + Sync + 'static {
    type Fetcher: Fetch + 'static;
    fn make(&self, target: &Target) -> Self::Fetcher;
}

/// HTTP fetchers as a scrape config describes them: its client (TLS,
/// proxy, redirects), authorization headers, `Accept` from
/// `scrape_protocols`, compression and body size limit.
#[derive(Debug, Clone)]
pub struct HttpFetchers {
    client: reqwest::Client,
    headers: HeaderMap,
    body_size_limit: usize,
}

/// Why a pool cannot be built from its config.
#[derive(Debug, thiserror::Error)]
#[error("scrape config {job:?}: {reason}")]
pub struct PoolError {
    pub job: String,
    pub reason: String,
}

impl HttpFetchers {
    /// # Errors
    /// Unreadable TLS files or credentials, an invalid proxy or header.
    pub fn from_config(config: &ScrapeConfig) -> Result<Self, PoolError> {
        let error = |reason: String| PoolError {
            job: config.job_name.clone(),
            reason,
        };
        let http = config.http_client_config();
        let client = http.build_client(true).map_err(|e| error(e.to_string()))?;
        let mut headers = http.request_headers().map_err(|e| error(e.to_string()))?;
        let accept = HeaderValue::from_str(&accept_header(config.protocols()))
            .map_err(|e| error(e.to_string()))?;
        headers.insert(ACCEPT, accept);
        if !config.enable_compression {
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
        Ok(HttpFetchers {
            client,
            headers,
            body_size_limit: usize::try_from(config.body_size_limit.bytes()).unwrap_or(usize::MAX),
        })
    }
}

impl MakeFetcher for HttpFetchers {
    type Fetcher = HttpFetcher;

    fn make(&self, target: &Target) -> HttpFetcher {
        let mut fetcher = HttpFetcher::new(
            self.client.clone(),
            target.url().clone(),
            target.timeout(),
            self.body_size_limit,
        );
        for (name, value) in &self.headers {
            fetcher = fetcher.with_header(name.clone(), value.clone());
        }
        fetcher
    }
}

/// What a scrape config says about scraping each of its targets.
#[derive(Debug, Clone, Default)]
pub struct PoolOptions {
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub track_timestamps_staleness: bool,
    pub limits: Limits,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    pub fallback_format: Option<Format>,
    /// Most active targets; more makes every target of the pool fail.
    pub target_limit: usize,
    /// Most dropped targets kept for the targets API (all are counted);
    /// 0: all.
    pub keep_dropped_targets: usize,
}

impl PoolOptions {
    pub fn from_config(config: &ScrapeConfig) -> Self {
        let limit = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        PoolOptions {
            honor_labels: config.honor_labels,
            honor_timestamps: config.honor_timestamps,
            track_timestamps_staleness: config.track_timestamps_staleness,
            limits: Limits {
                sample_limit: limit(config.sample_limit),
                label_limit: limit(config.label_limit),
                label_name_length_limit: limit(config.label_name_length_limit),
                label_value_length_limit: limit(config.label_value_length_limit),
                body_size_limit: limit(config.body_size_limit.bytes()),
            },
            metric_relabel_configs: config.metric_relabel_configs.clone(),
            fallback_format: config.fallback_scrape_protocol.and_then(|p| match p {
                ScrapeProtocol::PrometheusText0_0_4 | ScrapeProtocol::PrometheusText1_0_0 => {
                    Some(Format::Text)
                }
                ScrapeProtocol::OpenMetricsText0_0_1 | ScrapeProtocol::OpenMetricsText1_0_0 => {
                    Some(Format::OpenMetrics)
                }
                ScrapeProtocol::PrometheusProto => None,
            }),
            target_limit: limit(config.target_limit),
            keep_dropped_targets: limit(config.keep_dropped_targets),
        }
    }

    /// The options of one target's loop.
    fn target_options(
        &self,
        target: &Target,
        relabel: Option<crate::scrape_loop::MetricRelabel>,
    ) -> TargetOptions {
        TargetOptions {
            labels: target.series_labels(),
            interval: target.interval(),
            timeout: target.timeout(),
            honor_labels: self.honor_labels,
            honor_timestamps: self.honor_timestamps,
            track_timestamps_staleness: self.track_timestamps_staleness,
            limits: self.limits,
            metric_relabel: relabel,
            fallback_format: self.fallback_format,
        }
    }
}

/// A target with the outcome of its latest scrape, for the targets API.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub target: Target,
    /// `None` until the first scrape.
    pub last_report: Option<ScrapeReport>,
}

impl TargetStatus {
    /// `up`, `down` or `unknown` (not scraped yet), as the targets API says.
    pub fn health(&self) -> &'static str {
        match &self.last_report {
            None => "unknown",
            Some(report) if report.error.is_none() => "up",
            Some(_) => "down",
        }
    }
}

struct RunningLoop {
    target: Target,
    stop: oneshot::Sender<Stop>,
    task: JoinHandle<()>,
    last_report: Arc<Mutex<Option<ScrapeReport>>>,
}

/// The error every loop of a pool reports instead of scraping while the
/// pool is over its `target_limit` (Prometheus's "forced error").
type ForcedError = Arc<Mutex<Option<ScrapeError>>>;

/// A pool's fetcher: fails at once, without a request, while the pool has
/// a forced error. The loop then handles it as any failed scrape: the
/// previous scrape's series get staleness markers and `up` is 0, as
/// Prometheus's `scrapeAndReport` does with a forced error.
pub struct PoolFetcher<F> {
    inner: F,
    forced: ForcedError,
}

impl<F: Fetch> Fetch for PoolFetcher<F> {
    async fn fetch(&self) -> Result<Fetched, ScrapeError> {
        let forced = self.forced.lock().clone();
        match forced {
            Some(error) => Err(error),
            None => self.inner.fetch().await,
        }
    }
}

/// The scrape loops of one scrape config.
pub struct ScrapePool<M: MakeFetcher> {
    options: PoolOptions,
    metric_relabel: Option<crate::scrape_loop::MetricRelabel>,
    fetchers: M,
    storage: Arc<dyn Appendable>,
    clock: Arc<dyn Clock>,
    offset_seed: u64,
    loops: HashMap<u64, RunningLoop>,
    /// Shared by every loop of the pool.
    forced: ForcedError,
    /// Dropped targets, at most `keep_dropped_targets` of them.
    dropped: Vec<DroppedTarget>,
    /// Every dropped target of the last sync.
    dropped_count: usize,
    stats: Option<Arc<ScrapeStats>>,
    /// Stopped loops waiting to write their end-of-run staleness markers.
    retiring: Retiring,
}

/// The loops of a pool told to stop; [`Stopping::wait`] waits until they
/// have written what they leave behind.
#[must_use = "the loops may still be writing their staleness markers"]
pub struct Stopping(Vec<JoinHandle<()>>);

impl Stopping {
    pub async fn wait(self) {
        for task in self.0 {
            if let Err(error) = task.await {
                tracing::warn!(%error, "scrape loop task failed");
            }
        }
    }
}

impl<M: MakeFetcher> ScrapePool<M> {
    /// An empty pool; `offset_seed` shifts every target's scrape phase (from
    /// the server's identity, so that two servers scraping the same targets
    /// do not scrape in lockstep).
    pub fn new(
        options: PoolOptions,
        fetchers: M,
        storage: Arc<dyn Appendable>,
        clock: Arc<dyn Clock>,
        offset_seed: u64,
    ) -> Self {
        let metric_relabel = if options.metric_relabel_configs.is_empty() {
            None
        } else {
            let configs = options.metric_relabel_configs.clone();
            let relabel: crate::scrape_loop::MetricRelabel =
                Arc::new(move |labels| relabel::process(labels, &configs));
            Some(relabel)
        };
        ScrapePool {
            options,
            metric_relabel,
            fetchers,
            storage,
            clock,
            offset_seed,
            loops: HashMap::new(),
            forced: ForcedError::default(),
            dropped: Vec::new(),
            dropped_count: 0,
            stats: None,
            retiring: Retiring::default(),
        }
    }

    /// Registers the end-of-run staleness waits of stopped loops in
    /// `retiring` (shared by a manager's pools, so that its shutdown cancels
    /// them all) instead of the pool's own.
    #[must_use]
    pub fn with_retiring(mut self, retiring: Retiring) -> Self {
        self.retiring = retiring;
        self
    }

    /// Counts the outcome of every scrape of the pool's loops in `stats`.
    #[must_use]
    pub fn with_stats(mut self, stats: Arc<ScrapeStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// [`ScrapePool::sync`] with the targets of discovered groups.
    pub fn sync_groups(&mut self, groups: &[TargetGroup], config: &ScrapeConfig) {
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        for group in groups {
            let targets = targets_from_group(group, config);
            for failure in &targets.failures {
                tracing::debug!(job = %config.job_name, %failure, "target dropped");
            }
            active.extend(targets.active);
            dropped.extend(targets.dropped);
        }
        self.sync(active, dropped);
    }

    /// Makes the running loops those of `targets` (duplicates counted once),
    /// as Prometheus's `scrapePool.sync`: loops of vanished targets stop with
    /// staleness markers, new targets get a loop, the others keep theirs
    /// (with the latest discovered labels). Beyond `target_limit` every loop
    /// of the pool keeps its schedule but fails each scrape with the
    /// `target_limit exceeded` error (`up` 0, staleness markers for what the
    /// target had) until the pool is back under the limit. Of `dropped`, the
    /// first `keep_dropped_targets` are kept; all are counted.
    /// Must be called inside a tokio runtime.
    pub fn sync(&mut self, targets: Vec<Target>, mut dropped: Vec<DroppedTarget>) {
        self.dropped_count = dropped.len();
        if self.options.keep_dropped_targets > 0 {
            dropped.truncate(self.options.keep_dropped_targets);
        }
        self.dropped = dropped;
        let mut wanted: HashMap<u64, Target> = HashMap::new();
        for target in targets {
            wanted.entry(target.hash()).or_insert(target);
        }
        let gone: Vec<u64> = self
            .loops
            .keys()
            .filter(|hash| !wanted.contains_key(hash))
            .copied()
            .collect();
        for hash in gone {
            if let Some(running) = self.loops.remove(&hash) {
                // The loop writes its markers and exits on its own.
                let _ = running.stop.send(Stop::MarkStale);
            }
        }
        for (hash, target) in wanted {
            if let Some(running) = self.loops.get_mut(&hash) {
                // Same labels and URL; the discovered labels may differ.
                running.target = target;
                continue;
            }
            let options = self
                .options
                .target_options(&target, self.metric_relabel.clone());
            let fetcher = PoolFetcher {
                inner: self.fetchers.make(&target),
                forced: Arc::clone(&self.forced),
            };
            let mut scrape_loop = ScrapeLoop::new(
                options,
                fetcher,
                Arc::clone(&self.storage),
                Arc::clone(&self.clock),
            );
            if let Some(stats) = &self.stats {
                scrape_loop = scrape_loop.with_stats(Arc::clone(stats));
            }
            scrape_loop = scrape_loop.with_retiring(self.retiring.clone());
            let last_report = scrape_loop.last_report();
            let (stop, stopped) = oneshot::channel();
            let task = tokio::spawn(scrape_loop.run(hash ^ self.offset_seed, stopped));
            self.loops.insert(
                hash,
                RunningLoop {
                    target,
                    stop,
                    task,
                    last_report,
                },
            );
        }
        *self.forced.lock() = self.target_limit_error();
    }

    /// The error of a pool with more targets than `target_limit`, counted
    /// once per sync as Prometheus's `refreshTargetLimitErr`.
    fn target_limit_error(&self) -> Option<ScrapeError> {
        let limit = self.options.target_limit;
        if limit == 0 || self.loops.len() <= limit {
            return None;
        }
        let error = ScrapeError::TargetLimit {
            targets: self.loops.len(),
            limit,
        };
        tracing::warn!(%error, "scrape pool over its target limit");
        if let Some(stats) = &self.stats {
            stats
                .exceeded_target_limit
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Some(error)
    }

    /// The active targets with their latest scrape, sorted by URL.
    pub fn targets(&self) -> Vec<TargetStatus> {
        let mut out: Vec<TargetStatus> = self
            .loops
            .values()
            .map(|running| TargetStatus {
                target: running.target.clone(),
                last_report: running.last_report.lock().clone(),
            })
            .collect();
        out.sort_by(|a, b| {
            a.target
                .url()
                .as_str()
                .cmp(b.target.url().as_str())
                .then_with(|| a.target.labels().cmp(b.target.labels()))
        });
        out
    }

    /// Targets relabeling dropped, at most `keep_dropped_targets` of them.
    pub fn dropped_targets(&self) -> &[DroppedTarget] {
        &self.dropped
    }

    /// Every target relabeling dropped at the last sync, kept or not.
    pub fn dropped_count(&self) -> usize {
        self.dropped_count
    }

    /// Stops every loop and waits for them: [`Stop::Keep`] on shutdown (which
    /// also cancels the end-of-run staleness waits of the pool's
    /// [`Retiring`]), [`Stop::MarkStale`] when the whole job goes away (which
    /// waits until every marker is written).
    pub async fn stop(self, how: Stop) {
        let retiring = self.retiring.clone();
        self.stop_each(|_| how).wait().await;
        match how {
            Stop::Keep => retiring.shutdown().await,
            Stop::MarkStale => retiring.wait().await,
        }
    }

    /// Tells every loop to stop, each as `how` says for its target (a
    /// reloaded pool keeps the series of targets its successor scrapes and
    /// marks the others stale), without waiting for them.
    pub fn stop_each(self, how: impl Fn(&Target) -> Stop) -> Stopping {
        let mut tasks = Vec::new();
        for (_, running) in self.loops {
            let _ = running.stop.send(how(&running.target));
            tasks.push(running.task);
        }
        Stopping(tasks)
    }
}
