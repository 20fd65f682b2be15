//! Scrape loops: one per target, fetching on a fixed interval, parsing, and
//! appending the samples of each scrape through one [`Appender`] batch, with
//! Prometheus's semantics:
//!
//! - target labels merged under `honor_labels` ([`sample_labels`]), then
//!   `metric_relabel_configs` ([`MetricRelabel`]), then the label limits;
//! - explicit timestamps used under `honor_timestamps`;
//! - the same series twice in one body: the first sample wins, the others
//!   count as duplicates;
//! - exceeding `sample_limit`, a malformed body, an invalid label set, an
//!   HTTP error or a timeout fail the whole scrape: nothing of the body is
//!   kept and every series of the previous scrape gets a staleness marker;
//! - series that vanish between two scrapes get a staleness marker
//!   ([`tsdb::model::STALE_NAN`]), and so do all series of a target that goes
//!   away ([`Stop::MarkStale`]), timestamped and delayed as Prometheus does
//!   ([`Retiring`]);
//! - the synthetic series `up`, `scrape_duration_seconds`,
//!   `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling` and
//!   `scrape_series_added` after every scrape;
//! - a per-target series cache keyed by the series text as written, so a
//!   steady-state scrape neither builds labels nor hashes them;
//! - the first scrape delayed by an offset derived from a hash of the target,
//!   so targets with the same interval spread over it.
//!
//! [`Appender`]: tsdb::storage::Appender

mod append;
mod fetch;
mod intern;
mod labels;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tsdb::clock::Clock;
use tsdb::error::AppendError;
use tsdb::model::Labels;
use tsdb::storage::Appendable;

use crate::exposition::{ContentTypeError, Format, ParseError};

pub use append::{ScrapeReport, TargetState};
pub use fetch::{Fetch, Fetched, HttpFetcher, default_client};
pub use labels::{SeriesError, check_labels, sample_labels};

/// `metric_relabel_configs` applied to each new series: the labels after
/// relabeling, or `None` to drop the series.
pub type MetricRelabel = Arc<dyn Fn(&Labels) -> Option<Labels> + Send + Sync>;

/// Per-scrape limits; 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most samples one scrape may keep after metric relabeling; more fails
    /// the scrape.
    pub sample_limit: usize,
    /// Most labels per series, `__name__` included.
    pub label_limit: usize,
    /// Longest label name, in bytes.
    pub label_name_length_limit: usize,
    /// Longest label value, in bytes.
    pub label_value_length_limit: usize,
    /// Largest uncompressed body, in bytes.
    pub body_size_limit: usize,
}

/// How one target is scraped: its labels and the scrape config's settings.
#[derive(Clone)]
pub struct TargetOptions {
    /// The target's labels after relabeling (`job`, `instance`, ...), without
    /// `__`-prefixed labels.
    pub labels: Labels,
    pub interval: Duration,
    pub timeout: Duration,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    /// Also write staleness markers for series with explicit timestamps.
    pub track_timestamps_staleness: bool,
    pub limits: Limits,
    pub metric_relabel: Option<MetricRelabel>,
    /// Parser for a response without a usable `Content-Type`
    /// (`fallback_scrape_protocol`); without one such a scrape fails.
    pub fallback_format: Option<Format>,
}

impl TargetOptions {
    /// Prometheus's defaults: 1 m interval, 10 s timeout, timestamps honored,
    /// labels not honored, no limits.
    pub fn new(labels: Labels) -> Self {
        TargetOptions {
            labels,
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            honor_labels: false,
            honor_timestamps: true,
            track_timestamps_staleness: false,
            limits: Limits::default(),
            metric_relabel: None,
            fallback_format: None,
        }
    }
}

impl std::fmt::Debug for TargetOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetOptions")
            .field("labels", &self.labels)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("honor_labels", &self.honor_labels)
            .field("honor_timestamps", &self.honor_timestamps)
            .field("limits", &self.limits)
            .field("metric_relabel", &self.metric_relabel.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a scrape failed. The text is what the targets API shows as the last
/// error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScrapeError {
    #[error("{0}")]
    Http(String),
    #[error("server returned HTTP status {0}")]
    Status(String),
    #[error("scrape timed out after {0:?}")]
    Timeout(Duration),
    #[error("body size limit exceeded: the body is larger than {0} bytes")]
    BodySizeLimit(usize),
    #[error(transparent)]
    ContentType(#[from] ContentTypeError),
    #[error("parsing the {format} body failed: {error}")]
    Parse { format: Format, error: ParseError },
    #[error(transparent)]
    Series(#[from] SeriesError),
    #[error("sample limit exceeded: {samples} samples after relabeling, limit {limit}")]
    SampleLimit { samples: usize, limit: usize },
    #[error("{0}")]
    LabelLimit(String),
    #[error("appending to storage failed: {0}")]
    Append(#[from] AppendError),
    #[error("target_limit exceeded (number of targets: {targets}, limit: {limit})")]
    TargetLimit { targets: usize, limit: usize },
}

/// What a stopped loop leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The target went away: write staleness markers for all its series,
    /// the synthetic ones included (if it was ever scraped), as
    /// [`Retiring`] describes.
    MarkStale,
    /// The loop is replaced (config reload) or the server shuts down: the
    /// series stay as they are.
    Keep,
}

/// Loops that stopped scraping but still wait to write their end-of-run
/// staleness markers, as Prometheus's `endOfRunStaleness`: the markers carry
/// the time of the scrape that would have come next and are written two
/// intervals and a tenth later, so that when the target comes back meanwhile
/// its new loop's samples are newer and storage refuses the markers. Shutting
/// down cancels the waits: no markers, the series stay as they are.
#[derive(Clone)]
pub struct Retiring {
    shutdown: Arc<watch::Sender<bool>>,
    tasks: Arc<parking_lot::Mutex<Vec<JoinHandle<()>>>>,
}

impl Default for Retiring {
    fn default() -> Self {
        Retiring {
            shutdown: Arc::new(watch::channel(false).0),
            tasks: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Retiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retiring")
            .field("tasks", &self.tasks.lock().len())
            .finish_non_exhaustive()
    }
}

impl Retiring {
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(task));
    }

    /// Resolves once shutdown began.
    fn cancelled(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut down = self.shutdown.subscribe();
        async move {
            // An error means the sender is gone: nothing left to wait for.
            let _ = down.wait_for(|&down| down).await;
        }
    }

    /// Waits until every retiring loop has written its markers.
    pub async fn wait(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "end-of-run staleness task failed");
            }
        }
    }

    /// Cancels every wait (no markers) and waits for the tasks to end.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        self.wait().await;
    }
}

/// The delay before a target's first scrape: the next instant whose offset
/// within the interval equals `(target_hash ^ seed) % interval`, so targets
/// spread evenly over the interval and keep their phase across restarts (as
/// Prometheus's `Target.offset`).
pub fn first_scrape_delay(
    now_ms: i64,
    interval: Duration,
    target_hash: u64,
    seed: u64,
) -> Duration {
    let interval_ms = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let interval_u = interval_ms.unsigned_abs();
    let offset = i64::try_from((target_hash ^ seed) % interval_u).unwrap_or(0);
    let phase = now_ms.rem_euclid(interval_ms);
    let delay = (offset - phase).rem_euclid(interval_ms);
    Duration::from_millis(delay.unsigned_abs())
}

/// A stable 64-bit FNV-1a hash of a target's labels and URL, the input of
/// [`first_scrape_delay`].
pub fn target_hash(labels: &Labels, url: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for label in labels {
        feed(label.name.as_bytes());
        feed(&[0xff]);
        feed(label.value.as_bytes());
        feed(&[0xff]);
    }
    feed(url.as_bytes());
    hash
}

/// Counts of scrape outcomes summed over many loops, for the server's own
/// metrics (Prometheus's `prometheus_target_scrapes_*` counters).
#[derive(Debug, Default)]
pub struct ScrapeStats {
    pub scrapes: AtomicU64,
    pub failed: AtomicU64,
    pub exceeded_sample_limit: AtomicU64,
    pub exceeded_body_size_limit: AtomicU64,
    pub exceeded_label_limits: AtomicU64,
    pub sample_out_of_order: AtomicU64,
    pub sample_duplicate_timestamp: AtomicU64,
    pub sample_out_of_bounds: AtomicU64,
    /// Pool syncs that found more targets than `target_limit`.
    pub exceeded_target_limit: AtomicU64,
}

impl ScrapeStats {
    /// Adds one scrape's outcome.
    pub fn record(&self, report: &ScrapeReport) {
        let add = |counter: &AtomicU64, n: usize| {
            if n > 0 {
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        };
        add(&self.scrapes, 1);
        add(&self.sample_out_of_order, report.out_of_order);
        add(&self.sample_duplicate_timestamp, report.duplicates);
        add(&self.sample_out_of_bounds, report.out_of_bounds);
        if let Some(error) = &report.error {
            add(&self.failed, 1);
            match error {
                ScrapeError::SampleLimit { .. } => add(&self.exceeded_sample_limit, 1),
                ScrapeError::BodySizeLimit(_) => add(&self.exceeded_body_size_limit, 1),
                ScrapeError::LabelLimit(_) => add(&self.exceeded_label_limits, 1),
                _ => {}
            }
        }
    }

    /// A counter's current value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One target's scrape loop.
pub struct ScrapeLoop<F> {
    state: TargetState,
    fetcher: F,
    storage: Arc<dyn Appendable>,
    clock: Arc<dyn Clock>,
    last_report: Arc<parking_lot::Mutex<Option<ScrapeReport>>>,
    stats: Option<Arc<ScrapeStats>>,
    retiring: Retiring,
}

impl<F: Fetch + 'static> ScrapeLoop<F> {
    pub fn new(
        options: TargetOptions,
        fetcher: F,
        storage: Arc<dyn Appendable>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        ScrapeLoop {
            state: TargetState::new(options),
            fetcher,
            storage,
            clock,
            last_report: Arc::default(),
            stats: None,
            retiring: Retiring::default(),
        }
    }

    /// Registers the end-of-run staleness wait in `retiring` (by default
    /// the loop has its own, which nothing cancels).
    #[must_use]
    pub fn with_retiring(mut self, retiring: Retiring) -> Self {
        self.retiring = retiring;
        self
    }

    /// Also counts every scrape's outcome in `stats`.
    #[must_use]
    pub fn with_stats(mut self, stats: Arc<ScrapeStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The fetcher (tests inspect what it fetched).
    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// The report of the latest scrape, shared with whoever shows target
    /// health (the targets API).
    pub fn last_report(&self) -> Arc<parking_lot::Mutex<Option<ScrapeReport>>> {
        Arc::clone(&self.last_report)
    }

    /// Fetches and appends one scrape now.
    pub async fn scrape_once(&mut self) -> ScrapeReport {
        let start_ms = self.clock.now_ms();
        let started = Instant::now();
        let fetched = self.fetcher.fetch().await;
        self.append(fetched, start_ms, started)
    }

    fn append(
        &mut self,
        fetched: Result<Fetched, ScrapeError>,
        start_ms: i64,
        started: Instant,
    ) -> ScrapeReport {
        let report = self
            .state
            .append_scrape(&*self.storage, fetched, start_ms, started.elapsed());
        if let Some(error) = &report.error {
            tracing::debug!(target = %self.state.options().labels, %error, "scrape failed");
        }
        if let Some(stats) = &self.stats {
            stats.record(&report);
        }
        *self.last_report.lock() = Some(report.clone());
        report
    }

    /// Scrapes every interval, the first time after [`first_scrape_delay`],
    /// until told to stop. A dropped sender means shutdown ([`Stop::Keep`]).
    /// Told [`Stop::MarkStale`], the loop returns at once and leaves its
    /// markers to a task in its [`Retiring`].
    pub async fn run(mut self, target_hash: u64, stop: oneshot::Receiver<Stop>) {
        let interval = self.state.options().interval;
        let delay = first_scrape_delay(self.clock.now_ms(), interval, target_hash, 0);
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval_at(
            Instant::now() + delay,
            interval.max(Duration::from_millis(1)),
        );
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut scraped = false;
        loop {
            tokio::select! {
                biased;
                how = &mut stop => return self.finish(how.unwrap_or(Stop::Keep), ticker, scraped),
                _ = ticker.tick() => {}
            }
            let start_ms = self.clock.now_ms();
            let started = Instant::now();
            let fetched = tokio::select! {
                biased;
                how = &mut stop => return self.finish(how.unwrap_or(Stop::Keep), ticker, scraped),
                fetched = self.fetcher.fetch() => fetched,
            };
            self.append(fetched, start_ms, started);
            scraped = true;
        }
    }

    /// A loop that never scraped leaves nothing, as in Prometheus.
    fn finish(self, how: Stop, ticker: Interval, scraped: bool) {
        if how == Stop::MarkStale && scraped {
            let retiring = self.retiring.clone();
            let cancelled = retiring.cancelled();
            retiring.spawn(self.end_of_run(ticker, cancelled));
        }
    }

    /// Waits for the next scrape time (the markers' timestamp), then for one
    /// more interval and a tenth, and writes the markers; see [`Retiring`].
    async fn end_of_run(
        mut self,
        mut ticker: Interval,
        cancelled: impl std::future::Future<Output = ()>,
    ) {
        let interval = self.state.options().interval;
        let clock = Arc::clone(&self.clock);
        let wait = async move {
            ticker.tick().await;
            let stale_ms = clock.now_ms();
            ticker.tick().await;
            tokio::time::sleep(interval / 10).await;
            stale_ms
        };
        let stale_ms = tokio::select! {
            () = cancelled => return,
            stale_ms = wait => stale_ms,
        };
        if let Err(error) = self.state.append_end_of_run(&*self.storage, stale_ms) {
            tracing::warn!(target = %self.state.options().labels, %error, "writing end-of-run staleness markers failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_scrape_lands_on_the_target_phase() {
        let interval = Duration::from_secs(15);
        // Offset 4000 ms within the interval.
        let hash = 4_000;
        assert_eq!(
            first_scrape_delay(30_000, interval, hash, 0),
            Duration::from_millis(4_000)
        );
        assert_eq!(
            first_scrape_delay(33_000, interval, hash, 0),
            Duration::from_millis(1_000)
        );
        assert_eq!(
            first_scrape_delay(34_000, interval, hash, 0),
            Duration::ZERO
        );
        assert_eq!(
            first_scrape_delay(35_000, interval, hash, 0),
            Duration::from_millis(14_000)
        );
        // The seed shifts every target alike.
        assert_eq!(
            first_scrape_delay(30_000, interval, hash, 4_000 ^ 1_000),
            Duration::from_millis(1_000)
        );
    }

    #[test]
    fn offsets_spread_targets_over_the_interval() {
        let interval = Duration::from_secs(10);
        let mut buckets = [0usize; 10];
        for i in 0..1000 {
            let labels = Labels::from_pairs(&[
                ("instance", format!("host-{i}:9100")),
                ("job", "node".to_string()),
            ]);
            let delay =
                first_scrape_delay(0, interval, target_hash(&labels, "http://x/metrics"), 0);
            assert!(delay < interval);
            buckets[(delay.as_millis() / 1000) as usize] += 1;
        }
        // 100 per second expected; every second of the interval gets some.
        assert!(
            buckets.iter().all(|&n| (50..=150).contains(&n)),
            "{buckets:?}"
        );
    }
}
