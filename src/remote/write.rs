//! The remote write sender: one queue per `remote_write` endpoint, fed by
//! following the WAL, so a receiver outage loses nothing that is still in
//! the log.
//!
//! - A **watcher** thread per endpoint reads the WAL segments from its own
//!   position (`tsdb::wal::tail`): series records become label sets (external
//!   labels added, then `write_relabel_configs`), samples go to the shard of
//!   their series. Queues are bounded (`capacity` per shard): when they are
//!   full the watcher waits and stops reading, so a slow or absent receiver
//!   holds samples in the WAL, not in memory. As Prometheus, it sends what is
//!   written after it starts: the segments present at start are read for
//!   their series only.
//! - **Shards** are tokio tasks. Each batches up to `max_samples_per_send`
//!   samples or what arrived within `batch_send_deadline`, posts them as one
//!   snappy `WriteRequest`, and retries 5xx, network errors and (with
//!   `retry_on_http_429`) 429 with exponential backoff from `min_backoff` to
//!   `max_backoff`, waiting `Retry-After` when the receiver sets it; other
//!   4xx drop the batch. A series always goes to the same shard, so its
//!   samples arrive in order.
//! - **Resharding**: every 10 s the watcher compares the send time per
//!   sample with the incoming rate and the backlog and, outside a ±30 % band,
//!   flushes the shards and starts `min_shards..=max_shards` new ones. It
//!   does not reshard while sends fail.
//! - Figures: [`QueueStats`], exported as `sextant_remote_storage_*`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap, HeaderValue};
use scraper::config::HttpClientConfig;
use scraper::relabel::RelabelConfig;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tsdb::model::Labels;
use tsdb::wal::Record;
use tsdb::wal::tail::{self, TailRead};

use super::proto;
use crate::config::RemoteWriteConfig;
use crate::metrics::{Kind, Registry};

/// The queue settings of one endpoint, with Prometheus's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    /// Samples buffered per shard.
    pub capacity: usize,
    pub min_shards: usize,
    pub max_shards: usize,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub retry_on_http_429: bool,
    /// Timeout of one request.
    pub remote_timeout: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            capacity: 10_000,
            min_shards: 1,
            max_shards: 50,
            max_samples_per_send: 2_000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: true,
            remote_timeout: Duration::from_secs(30),
        }
    }
}

impl QueueSettings {
    fn from_config(config: &RemoteWriteConfig) -> Self {
        let d = QueueSettings::default();
        let q = &config.queue_config;
        let count = |v: Option<u64>, default: usize| {
            v.map_or(default, |v| usize::try_from(v).unwrap_or(usize::MAX).max(1))
        };
        let min_shards = count(q.min_shards, d.min_shards);
        QueueSettings {
            capacity: count(q.capacity, d.capacity),
            min_shards,
            max_shards: count(q.max_shards, d.max_shards).max(min_shards),
            max_samples_per_send: count(q.max_samples_per_send, d.max_samples_per_send),
            batch_send_deadline: q.batch_send_deadline.unwrap_or(d.batch_send_deadline),
            min_backoff: q.min_backoff.unwrap_or(d.min_backoff),
            max_backoff: q.max_backoff.unwrap_or(d.max_backoff),
            retry_on_http_429: q.retry_on_http_429.unwrap_or(d.retry_on_http_429),
            remote_timeout: config.remote_timeout,
        }
    }
}

/// Errors starting the sender.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("remote_write {url}: {source}")]
    Client {
        url: String,
        #[source]
        source: scraper::config::HttpClientError,
    },
    #[error("remote_write {url}: header {name}: invalid value")]
    Header { url: String, name: String },
    #[error("starting the WAL watcher: {0}")]
    Thread(#[from] std::io::Error),
}

/// Live figures of one queue, shared by its watcher, its shards and the
/// metrics collector.
#[derive(Debug, Default)]
pub struct QueueStats {
    pub samples_in: AtomicU64,
    pub samples_sent: AtomicU64,
    pub samples_failed: AtomicU64,
    pub samples_retried: AtomicU64,
    pub samples_dropped: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Newest sample timestamp read from the WAL (ms; `i64::MIN` for none).
    pub highest_in_ms: AtomicI64,
    /// Newest sample timestamp the receiver acknowledged.
    pub highest_sent_ms: AtomicI64,
    pub shards: AtomicU64,
    pub desired_shards: AtomicU64,
    /// Microseconds spent in successful sends, for resharding.
    send_micros: AtomicU64,
    /// The WAL segment the watcher reads.
    pub wal_segment: AtomicU64,
    /// Whether the last send attempt failed.
    failing: AtomicBool,
}

impl QueueStats {
    fn new() -> Self {
        QueueStats {
            highest_in_ms: AtomicI64::new(i64::MIN),
            highest_sent_ms: AtomicI64::new(i64::MIN),
            ..QueueStats::default()
        }
    }

    /// Samples read from the WAL and not yet sent, failed or dropped.
    pub fn pending(&self) -> u64 {
        let done = self.samples_sent.load(Ordering::Relaxed)
            + self.samples_failed.load(Ordering::Relaxed)
            + self.samples_dropped.load(Ordering::Relaxed);
        self.samples_in.load(Ordering::Relaxed).saturating_sub(done)
    }

    /// How far the newest sent timestamp trails the newest read one, in
    /// milliseconds (0 when nothing was read).
    pub fn lag_ms(&self) -> i64 {
        let highest_in = self.highest_in_ms.load(Ordering::Relaxed);
        if highest_in == i64::MIN {
            return 0;
        }
        let highest_sent = self.highest_sent_ms.load(Ordering::Relaxed);
        if highest_sent == i64::MIN {
            return i64::MAX;
        }
        highest_in.saturating_sub(highest_sent).max(0)
    }
}

/// One sample on its way, with the labels it is sent with.
struct Pending {
    labels: Labels,
    t: i64,
    v: f64,
}

/// Where and how one endpoint's batches are posted.
struct Endpoint {
    name: String,
    url: String,
    client: reqwest::Client,
    http: HttpClientConfig,
    headers: HeaderMap,
    settings: QueueSettings,
}

/// The label `remote_name` takes: the config's `name`, else a short hash
/// of the URL (Prometheus hashes the whole config).
fn remote_name(config: &RemoteWriteConfig) -> String {
    if !config.name.is_empty() {
        return config.name.clone();
    }
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = config.url.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:06x}", hash & 0xff_ffff)
}

impl Endpoint {
    fn from_config(config: &RemoteWriteConfig) -> Result<Self, StartError> {
        let http = config.http_client_config();
        let client = http
            .build_client(true)
            .map_err(|source| StartError::Client {
                url: config.url.clone(),
                source,
            })?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let bad = || StartError::Header {
                url: config.url.clone(),
                name: name.clone(),
            };
            let name = header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let value = HeaderValue::from_str(value).map_err(|_| bad())?;
            headers.insert(name, value);
        }
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::CONTENT_TYPE),
        );
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("Sextant/", env!("CARGO_PKG_VERSION"))),
        );
        headers.insert(
            "x-prometheus-remote-write-version",
            HeaderValue::from_static(super::WRITE_VERSION),
        );
        Ok(Endpoint {
            name: remote_name(config),
            url: config.url.clone(),
            client,
            http,
            headers,
            settings: QueueSettings::from_config(config),
        })
    }
}

/// How one post ended.
#[derive(Debug, PartialEq)]
enum PostOutcome {
    Sent,
    /// Worth retrying: 5xx, 429 when configured, network errors.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Never retried: other 4xx, credentials that cannot be read.
    Drop(String),
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The outcome of a response with `status` and `Retry-After` header value.
fn classify(status: u16, retry_after_header: Option<&str>, retry_on_429: bool) -> PostOutcome {
    let after = || retry_after_header.and_then(|v| retry_after(v, chrono::Utc::now()));
    match status {
        200..=299 => PostOutcome::Sent,
        500..=599 => PostOutcome::Retry {
            after: after(),
            reason: format!("server returned HTTP status {status}"),
        },
        429 if retry_on_429 => PostOutcome::Retry {
            after: after(),
            reason: "server returned HTTP status 429 Too Many Requests".into(),
        },
        _ => PostOutcome::Drop(format!("server returned HTTP status {status}")),
    }
}

impl Endpoint {
    async fn post(&self, body: &[u8], attempt: u32) -> PostOutcome {
        let mut headers = self.headers.clone();
        match self.http.request_headers() {
            Ok(auth) => headers.extend(auth),
            Err(error) => return PostOutcome::Drop(error.to_string()),
        }
        if attempt > 0 {
            headers.insert("retry-attempt", HeaderValue::from(attempt));
        }
        let request = self
            .client
            .post(&self.url)
            .headers(headers)
            .timeout(self.settings.remote_timeout)
            .body(body.to_vec());
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let after = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let outcome = classify(status, after.as_deref(), self.settings.retry_on_http_429);
                if let PostOutcome::Drop(reason) = outcome {
                    let text = response.text().await.unwrap_or_default();
                    return PostOutcome::Drop(format!("{reason}: {}", text.trim()));
                }
                outcome
            }
            Err(error) => PostOutcome::Retry {
                after: None,
                reason: error.to_string(),
            },
        }
    }
}

/// Samples of a batch as a `WriteRequest`: one `TimeSeries` per series, its
/// samples in arrival (time) order.
fn build_request(batch: &[Pending]) -> proto::WriteRequest {
    let mut index: HashMap<&Labels, usize> = HashMap::new();
    let mut timeseries: Vec<proto::TimeSeries> = Vec::new();
    for pending in batch {
        let i = *index.entry(&pending.labels).or_insert_with(|| {
            timeseries.push(proto::TimeSeries {
                labels: super::labels_to_proto(&pending.labels),
                samples: Vec::new(),
                exemplars: Vec::new(),
            });
            timeseries.len() - 1
        });
        timeseries[i].samples.push(proto::Sample {
            value: pending.v,
            timestamp: pending.t,
        });
    }
    proto::WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

/// One shard: batches what its channel brings and sends it.
async fn run_shard(
    mut samples: mpsc::Receiver<Pending>,
    endpoint: Arc<Endpoint>,
    stats: Arc<QueueStats>,
    mut stop: watch::Receiver<bool>,
) {
    let settings = &endpoint.settings;
    let mut batch = Vec::with_capacity(settings.max_samples_per_send);
    loop {
        let Some(first) = samples.recv().await else {
            return;
        };
        batch.push(first);
        let deadline = tokio::time::sleep(settings.batch_send_deadline);
        tokio::pin!(deadline);
        let mut closed = false;
        while batch.len() < settings.max_samples_per_send {
            tokio::select! {
                next = samples.recv() => match next {
                    Some(sample) => batch.push(sample),
                    None => { closed = true; break; }
                },
                () = &mut deadline => break,
            }
        }
        send_batch(&batch, &endpoint, &stats, &mut stop).await;
        batch.clear();
        if closed || *stop.borrow() {
            return;
        }
    }
}

/// Sends one batch, retrying recoverable failures until it is sent, dropped
/// or the queue stops.
async fn send_batch(
    batch: &[Pending],
    endpoint: &Endpoint,
    stats: &QueueStats,
    stop: &mut watch::Receiver<bool>,
) {
    let settings = &endpoint.settings;
    let body = super::encode(&build_request(batch));
    let n = batch.len() as u64;
    let highest = batch.iter().map(|p| p.t).max().unwrap_or(i64::MIN);
    let mut backoff = settings.min_backoff;
    let mut attempt = 0u32;
    loop {
        let started = Instant::now();
        match endpoint.post(&body, attempt).await {
            PostOutcome::Sent => {
                stats.failing.store(false, Ordering::Relaxed);
                stats
                    .send_micros
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                stats.samples_sent.fetch_add(n, Ordering::Relaxed);
                stats
                    .bytes_sent
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                stats.highest_sent_ms.fetch_max(highest, Ordering::Relaxed);
                return;
            }
            PostOutcome::Drop(reason) => {
                tracing::error!(remote_name = %endpoint.name, url = %endpoint.url, samples = n, error = %reason, "Non-recoverable error while sending samples to remote storage; dropping them.");
                stats.samples_failed.fetch_add(n, Ordering::Relaxed);
                return;
            }
            PostOutcome::Retry { after, reason } => {
                stats.failing.store(true, Ordering::Relaxed);
                stats.samples_retried.fetch_add(n, Ordering::Relaxed);
                let wait = after.unwrap_or(backoff);
                tracing::warn!(remote_name = %endpoint.name, url = %endpoint.url, error = %reason, retry_in = ?wait, "Failed to send batch, retrying.");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|stopped| *stopped) => {
                        tracing::warn!(remote_name = %endpoint.name, samples = n, "Remote write stopped with samples unsent.");
                        return;
                    }
                }
                backoff = (backoff * 2).min(settings.max_backoff);
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// The shards of a queue and the channels feeding them.
struct Shards {
    senders: Vec<mpsc::Sender<Pending>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Shards {
    fn start(
        n: usize,
        endpoint: &Arc<Endpoint>,
        stats: &Arc<QueueStats>,
        stop: &watch::Receiver<bool>,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let mut senders = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (sender, receiver) = mpsc::channel(endpoint.settings.capacity);
            senders.push(sender);
            tasks.push(runtime.spawn(run_shard(
                receiver,
                Arc::clone(endpoint),
                Arc::clone(stats),
                stop.clone(),
            )));
        }
        stats.shards.store(n as u64, Ordering::Relaxed);
        Shards { senders, tasks }
    }

    /// Closes the channels and waits until every shard has sent what it
    /// holds (or the queue stopped).
    fn flush(self, runtime: &tokio::runtime::Handle) {
        drop(self.senders);
        for task in self.tasks {
            let _ = runtime.block_on(task);
        }
    }
}

/// How often the shard count is reconsidered (Prometheus: 10 s).
const SHARD_UPDATE_INTERVAL: Duration = Duration::from_secs(10);
/// How long stopping waits for the queues to send what they read.
const FLUSH_DEADLINE: Duration = Duration::from_secs(10);
/// How often the watcher looks for new WAL data when it has read all.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What the watcher reads the WAL for, and where it is.
struct Watcher {
    wal_dir: PathBuf,
    endpoint: Arc<Endpoint>,
    stats: Arc<QueueStats>,
    external_labels: Vec<(String, String)>,
    relabel: Vec<RelabelConfig>,
    /// Series reference -> the labels sent, `None` when relabeling drops it.
    series: HashMap<u64, Option<Labels>>,
    segment: u32,
    offset: u64,
}

impl Watcher {
    fn store_series(&mut self, record: Record, send_samples: bool, shards: &Shards) -> bool {
        match record {
            Record::Series(series) => {
                for s in series {
                    let labels = self.outgoing_labels(&s.labels);
                    self.series.insert(s.series_ref.get(), labels);
                }
                true
            }
            Record::Samples(samples) if send_samples => {
                let n = shards.senders.len().max(1) as u64;
                for sample in samples {
                    let id = sample.series_ref.get();
                    self.stats.samples_in.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .highest_in_ms
                        .fetch_max(sample.t, Ordering::Relaxed);
                    let Some(Some(labels)) = self.series.get(&id) else {
                        self.stats.samples_dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let pending = Pending {
                        labels: labels.clone(),
                        t: sample.t,
                        v: sample.v,
                    };
                    let shard = &shards.senders[(id % n) as usize];
                    if shard.blocking_send(pending).is_err() {
                        // The shards stopped: the queue is shutting down.
                        return false;
                    }
                }
                true
            }
            // Deletions are local: remote write sends what was appended, as
            // Prometheus's WAL watcher does.
            Record::Samples(_) | Record::Tombstones(_) => true,
        }
    }

    /// External labels (unless the series has them), then relabeling.
    fn outgoing_labels(&self, labels: &Labels) -> Option<Labels> {
        let mut builder = labels.builder();
        for (name, value) in &self.external_labels {
            if labels.get(name).is_none() {
                builder.set_mut(name.as_str(), value.as_str());
            }
        }
        let labels = builder.build();
        if self.relabel.is_empty() {
            return Some(labels);
        }
        scraper::relabel::process(&labels, &self.relabel)
    }

    fn segment_path(&self, index: u32) -> PathBuf {
        self.wal_dir.join(format!("{index:08}"))
    }

    /// Reads the series of the newest checkpoint and of the segments before
    /// `before`, without sending samples.
    fn load_series(&mut self, before: u32, shards: &Shards) {
        let mut records = Vec::new();
        if let Ok(Some((_, checkpoint))) = tail::latest_checkpoint(&self.wal_dir) {
            for (_, path) in tail::checkpoint_segments(&checkpoint).unwrap_or_default() {
                let _ = tail::read_segment_from(&path, 0, &mut |r| records.push(r));
            }
        }
        for (index, path) in tail::list_segments(&self.wal_dir).unwrap_or_default() {
            if index < before {
                let _ = tail::read_segment_from(&path, 0, &mut |r| records.push(r));
            }
        }
        for record in records {
            self.store_series(record, false, shards);
        }
    }

    /// Follows the WAL until `stop`, resharding as the load asks.
    fn run(mut self, stop: watch::Receiver<bool>, runtime: tokio::runtime::Handle) {
        let settings = self.endpoint.settings.clone();
        let mut shards = Shards::start(
            settings.min_shards,
            &self.endpoint,
            &self.stats,
            &stop,
            &runtime,
        );
        let start = tail::list_segments(&self.wal_dir)
            .ok()
            .and_then(|s| s.last().map(|(i, _)| *i))
            .unwrap_or(0);
        self.load_series(start, &shards);
        self.segment = start;
        self.offset = 0;
        let mut resharder = Resharder::new(&self.stats);
        let mut records = Vec::new();
        while !*stop.borrow() {
            self.stats
                .wal_segment
                .store(u64::from(self.segment), Ordering::Relaxed);
            let segments = tail::list_segments(&self.wal_dir).unwrap_or_default();
            let next = segments.iter().map(|(i, _)| *i).find(|i| *i > self.segment);
            let path = self.segment_path(self.segment);
            records.clear();
            match tail::read_segment_from(&path, self.offset, &mut |r| records.push(r)) {
                Ok(TailRead { offset, stopped }) => {
                    let progressed = offset != self.offset;
                    for record in records.drain(..) {
                        if !self.store_series(record, true, &shards) {
                            return;
                        }
                    }
                    self.offset = offset;
                    if !progressed {
                        match next {
                            // The newer segment existed before this read, so
                            // this one was complete: move on.
                            Some(next) => {
                                if let Some(reason) = stopped {
                                    tracing::warn!(segment = %path.display(), reason, "Damaged WAL segment; remote write skips its rest.");
                                }
                                self.segment = next;
                                self.offset = 0;
                            }
                            None => std::thread::sleep(POLL_INTERVAL),
                        }
                    }
                }
                Err(tsdb::Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    // A checkpoint deleted the segment before it was read.
                    tracing::warn!(segment = self.segment, remote_name = %self.endpoint.name, "WAL segment was deleted before remote write read it; its samples are not sent.");
                    self.load_series(0, &shards);
                    match next.or_else(|| segments.first().map(|(i, _)| *i)) {
                        Some(next) if next != self.segment => {
                            self.segment = next;
                            self.offset = 0;
                        }
                        _ => std::thread::sleep(POLL_INTERVAL),
                    }
                }
                Err(error) => {
                    tracing::error!(error = %error, "Reading the WAL for remote write failed.");
                    std::thread::sleep(POLL_INTERVAL);
                }
            }
            if let Some(n) = resharder.desired(&self.stats, &settings, shards.senders.len()) {
                tracing::info!(remote_name = %self.endpoint.name, from = shards.senders.len(), to = n, "Remote storage resharding.");
                shards.flush(&runtime);
                shards = Shards::start(n, &self.endpoint, &self.stats, &stop, &runtime);
            }
        }
        shards.flush(&runtime);
    }
}

/// Decides the shard count from the figures of the last interval.
struct Resharder {
    last: Instant,
    samples_in: u64,
    samples_sent: u64,
    send_micros: u64,
}

impl Resharder {
    fn new(stats: &QueueStats) -> Self {
        Resharder {
            last: Instant::now(),
            samples_in: stats.samples_in.load(Ordering::Relaxed),
            samples_sent: stats.samples_sent.load(Ordering::Relaxed),
            send_micros: stats.send_micros.load(Ordering::Relaxed),
        }
    }

    /// The new shard count when it should change.
    fn desired(
        &mut self,
        stats: &QueueStats,
        settings: &QueueSettings,
        current: usize,
    ) -> Option<usize> {
        let elapsed = self.last.elapsed();
        if elapsed < SHARD_UPDATE_INTERVAL {
            return None;
        }
        let now = Resharder::new(stats);
        let rates = ShardRates {
            seconds: elapsed.as_secs_f64(),
            samples_in: now.samples_in - self.samples_in,
            samples_sent: now.samples_sent - self.samples_sent,
            send_seconds: (now.send_micros - self.send_micros) as f64 / 1e6,
            pending: stats.pending(),
        };
        *self = now;
        let desired = desired_shards(&rates, settings);
        stats
            .desired_shards
            .store(desired as u64, Ordering::Relaxed);
        if stats.failing.load(Ordering::Relaxed) {
            return None;
        }
        let (low, high) = (current as f64 * 0.7, current as f64 * 1.3);
        let d = desired as f64;
        (desired != current && (d < low || d > high)).then_some(desired)
    }
}

/// The figures of one resharding interval.
#[derive(Debug, Clone, PartialEq)]
struct ShardRates {
    seconds: f64,
    samples_in: u64,
    samples_sent: u64,
    send_seconds: f64,
    pending: u64,
}

/// Shards needed to keep up with the incoming rate and clear the backlog
/// within 20 s, from the time one sample took to send.
fn desired_shards(rates: &ShardRates, settings: &QueueSettings) -> usize {
    if rates.samples_sent == 0 || rates.seconds <= 0.0 {
        return settings.min_shards;
    }
    let time_per_sample = rates.send_seconds / rates.samples_sent as f64;
    let in_rate = rates.samples_in as f64 / rates.seconds;
    let backlog_rate = rates.pending as f64 / 20.0;
    let shards = (time_per_sample * (in_rate + backlog_rate) * 1.1).ceil();
    (shards as usize).clamp(settings.min_shards, settings.max_shards)
}

/// One running queue: its watcher thread and what it was started from.
struct Queue {
    config: RemoteWriteConfig,
    external_labels: BTreeMap<String, String>,
    url: String,
    stats: Arc<QueueStats>,
    stop: watch::Sender<bool>,
    watcher: std::thread::JoinHandle<()>,
}

/// The running queues of every `remote_write` endpoint.
pub struct RemoteWrite {
    wal_dir: PathBuf,
    runtime: tokio::runtime::Handle,
    queues: Vec<Queue>,
    /// URL and figures of each queue, in config order.
    view: Vec<(String, Arc<QueueStats>)>,
}

impl RemoteWrite {
    /// Starts one queue per endpoint, following the WAL in `wal_dir`.
    /// Call from within a tokio runtime; shards run on it.
    ///
    /// # Errors
    /// An endpoint's HTTP client cannot be built (bad certificates).
    pub fn start(
        wal_dir: &Path,
        configs: &[RemoteWriteConfig],
        external_labels: &BTreeMap<String, String>,
        registry: &Registry,
    ) -> Result<RemoteWrite, StartError> {
        let mut remote_write = RemoteWrite {
            wal_dir: wal_dir.to_path_buf(),
            runtime: tokio::runtime::Handle::current(),
            queues: Vec::new(),
            view: Vec::new(),
        };
        remote_write.replace(configs, external_labels, registry)?;
        Ok(remote_write)
    }

    /// Each queue's URL and figures, in config order.
    pub fn queues(&self) -> &[(String, Arc<QueueStats>)] {
        &self.view
    }

    /// Applies a reloaded configuration: queues whose endpoint config and
    /// external labels are unchanged keep running (and their position in
    /// the WAL); new and changed ones start reading at the newest segment,
    /// as at start-up; removed and replaced ones send what they hold, as
    /// on shutdown, and stop. Nothing changes when an endpoint cannot be
    /// built.
    ///
    /// # Errors
    /// As [`RemoteWrite::start`].
    pub async fn apply(
        &mut self,
        configs: &[RemoteWriteConfig],
        external_labels: &BTreeMap<String, String>,
        registry: &Registry,
    ) -> Result<(), StartError> {
        let removed = self.replace(configs, external_labels, registry)?;
        drain_and_stop(removed).await;
        Ok(())
    }

    /// Lets the shards send what they hold for up to their flush deadline,
    /// then stops everything.
    pub async fn stop(self) {
        drain_and_stop(self.queues).await;
    }

    /// Installs the queues `configs` ask for, reusing unchanged ones;
    /// returns the ones no longer wanted, still running.
    fn replace(
        &mut self,
        configs: &[RemoteWriteConfig],
        external_labels: &BTreeMap<String, String>,
        registry: &Registry,
    ) -> Result<Vec<Queue>, StartError> {
        // Every new endpoint is built before anything changes.
        let mut endpoints = Vec::with_capacity(configs.len());
        for config in configs {
            let running = self
                .queues
                .iter()
                .any(|q| &q.config == config && &q.external_labels == external_labels);
            endpoints.push(if running {
                None
            } else {
                Some(Endpoint::from_config(config)?)
            });
        }
        let mut old = std::mem::take(&mut self.queues);
        for (config, endpoint) in configs.iter().zip(endpoints) {
            let queue = match endpoint {
                None => {
                    let i = old
                        .iter()
                        .position(|q| &q.config == config && &q.external_labels == external_labels);
                    match i {
                        Some(i) => old.swap_remove(i),
                        // The same config twice: the second starts afresh.
                        None => self.start_queue(
                            config,
                            Endpoint::from_config(config)?,
                            external_labels,
                            registry,
                        )?,
                    }
                }
                Some(endpoint) => self.start_queue(config, endpoint, external_labels, registry)?,
            };
            self.queues.push(queue);
        }
        self.view = self
            .queues
            .iter()
            .map(|q| (q.url.clone(), Arc::clone(&q.stats)))
            .collect();
        Ok(old)
    }

    fn start_queue(
        &self,
        config: &RemoteWriteConfig,
        endpoint: Endpoint,
        external_labels: &BTreeMap<String, String>,
        registry: &Registry,
    ) -> Result<Queue, StartError> {
        let endpoint = Arc::new(endpoint);
        let stats = Arc::new(QueueStats::new());
        register_metrics(registry, &endpoint, &stats);
        let (stop, stopped) = watch::channel(false);
        let watcher = Watcher {
            wal_dir: self.wal_dir.clone(),
            endpoint: Arc::clone(&endpoint),
            stats: Arc::clone(&stats),
            external_labels: external_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            relabel: config.write_relabel_configs.clone(),
            series: HashMap::new(),
            segment: 0,
            offset: 0,
        };
        let runtime = self.runtime.clone();
        let watcher = std::thread::Builder::new()
            .name(format!("remote-write-{}", endpoint.name))
            .spawn(move || watcher.run(stopped, runtime))?;
        Ok(Queue {
            config: config.clone(),
            external_labels: external_labels.clone(),
            url: endpoint.url.clone(),
            stats,
            stop,
            watcher,
        })
    }
}

/// Gives the queues up to [`FLUSH_DEADLINE`] to send what they already
/// read, then stops their watchers and shards.
async fn drain_and_stop(queues: Vec<Queue>) {
    if queues.is_empty() {
        return;
    }
    let started = Instant::now();
    while started.elapsed() < FLUSH_DEADLINE && queues.iter().any(|q| q.stats.pending() > 0) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut watchers = Vec::with_capacity(queues.len());
    for queue in queues {
        let _ = queue.stop.send(true);
        watchers.push(queue.watcher);
    }
    let _ = tokio::task::spawn_blocking(move || {
        for watcher in watchers {
            let _ = watcher.join();
        }
    })
    .await;
}

/// Registers `sextant_remote_storage_highest_timestamp_in_seconds`, the
/// newest sample timestamp appended to the storage whose WAL the queues
/// follow (`newest_ms`), without queue labels as Prometheus's
/// `prometheus_remote_storage_highest_timestamp_in_seconds`: minus a
/// queue's `..._queue_highest_sent_timestamp_seconds` it is how far the
/// queue trails, backlog still unread in the WAL included.
pub fn register_highest_appended(
    registry: &Registry,
    newest_ms: impl Fn() -> Option<i64> + Send + Sync + 'static,
) {
    registry.register(move |out| {
        out.gauge(
            "sextant_remote_storage_highest_timestamp_in_seconds",
            "Newest sample timestamp appended to the storage the remote write queues follow (0 before the first).",
            newest_ms().map_or(0.0, |ms| ms as f64 / 1000.0),
        );
    });
}

fn register_metrics(registry: &Registry, endpoint: &Endpoint, stats: &Arc<QueueStats>) {
    let stats = Arc::downgrade(stats);
    let (name, url) = (endpoint.name.clone(), endpoint.url.clone());
    let (min_shards, max_shards) = (endpoint.settings.min_shards, endpoint.settings.max_shards);
    registry.register(move |out| {
        let Some(stats) = stats.upgrade() else {
            return;
        };
        let labels = [("remote_name", name.as_str()), ("url", url.as_str())];
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let seconds = |a: &AtomicI64| match a.load(Ordering::Relaxed) {
            i64::MIN => 0.0,
            ms => ms as f64 / 1000.0,
        };
        let counters: [(&'static str, &'static str, f64); 6] = [
            (
                "sextant_remote_storage_samples_in_total",
                "Samples read from the WAL for this queue.",
                load(&stats.samples_in),
            ),
            (
                "sextant_remote_storage_samples_total",
                "Samples sent to remote storage.",
                load(&stats.samples_sent),
            ),
            (
                "sextant_remote_storage_samples_failed_total",
                "Samples dropped after a non-recoverable send error.",
                load(&stats.samples_failed),
            ),
            (
                "sextant_remote_storage_samples_retried_total",
                "Samples whose send failed recoverably and was retried.",
                load(&stats.samples_retried),
            ),
            (
                "sextant_remote_storage_samples_dropped_total",
                "Samples dropped by write_relabel_configs.",
                load(&stats.samples_dropped),
            ),
            (
                "sextant_remote_storage_bytes_total",
                "Compressed bytes of the request bodies sent.",
                load(&stats.bytes_sent),
            ),
        ];
        for (metric, help, value) in counters {
            out.sample(metric, help, Kind::Counter, &labels, value);
        }
        let gauges: [(&'static str, &'static str, f64); 8] = [
            (
                "sextant_remote_storage_queue_highest_read_timestamp_seconds",
                "Newest sample timestamp the queue read from the WAL.",
                seconds(&stats.highest_in_ms),
            ),
            (
                "sextant_remote_storage_queue_highest_sent_timestamp_seconds",
                "Newest sample timestamp the remote storage acknowledged.",
                seconds(&stats.highest_sent_ms),
            ),
            (
                "sextant_remote_storage_samples_pending",
                "Samples read from the WAL and not yet sent.",
                stats.pending() as f64,
            ),
            (
                "sextant_remote_storage_shards",
                "Shards sending in parallel.",
                load(&stats.shards),
            ),
            (
                "sextant_remote_storage_shards_desired",
                "Shards the last resharding computation asked for.",
                load(&stats.desired_shards),
            ),
            (
                "sextant_remote_storage_shards_min",
                "min_shards of the queue.",
                min_shards as f64,
            ),
            (
                "sextant_remote_storage_shards_max",
                "max_shards of the queue.",
                max_shards as f64,
            ),
            (
                "sextant_remote_storage_wal_segment",
                "WAL segment the queue reads.",
                load(&stats.wal_segment),
            ),
        ];
        for (metric, help, value) in gauges {
            out.sample(metric, help, Kind::Gauge, &labels, value);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> RemoteWriteConfig {
        serde_yaml::from_str(&format!("url: {url}")).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reloads_keep_unchanged_queues_and_replace_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new();
        let labels = BTreeMap::new();
        let (a, b) = (
            endpoint("http://127.0.0.1:1/a"),
            endpoint("http://127.0.0.1:1/b"),
        );
        let mut remote =
            RemoteWrite::start(dir.path(), std::slice::from_ref(&a), &labels, &registry).unwrap();
        let a_stats = Arc::clone(&remote.queues()[0].1);

        remote
            .apply(&[b.clone(), a.clone()], &labels, &registry)
            .await
            .unwrap();
        let urls: Vec<&str> = remote.queues().iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(urls, ["http://127.0.0.1:1/b", "http://127.0.0.1:1/a"]);
        assert!(
            Arc::ptr_eq(&remote.queues()[1].1, &a_stats),
            "a keeps running"
        );

        // New external labels change every queue.
        let labels = BTreeMap::from([("cluster".to_string(), "c1".to_string())]);
        remote
            .apply(std::slice::from_ref(&a), &labels, &registry)
            .await
            .unwrap();
        assert_eq!(remote.queues().len(), 1);
        assert!(!Arc::ptr_eq(&remote.queues()[0].1, &a_stats));

        // A bad endpoint changes nothing.
        let bad: RemoteWriteConfig = serde_yaml::from_str(
            "url: http://127.0.0.1:1/c\ntls_config: {ca_file: /nonexistent/ca.pem}",
        )
        .unwrap();
        let kept = Arc::clone(&remote.queues()[0].1);
        assert!(remote.apply(&[bad], &labels, &registry).await.is_err());
        assert!(Arc::ptr_eq(&remote.queues()[0].1, &kept));

        remote.apply(&[], &labels, &registry).await.unwrap();
        assert!(remote.queues().is_empty());
        remote.stop().await;
    }

    #[test]
    fn classifies_responses_as_prometheus_does() {
        assert_eq!(classify(204, None, true), PostOutcome::Sent);
        assert!(
            matches!(classify(503, Some("7"), false), PostOutcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7))
        );
        assert!(matches!(
            classify(500, None, false),
            PostOutcome::Retry { after: None, .. }
        ));
        assert!(
            matches!(classify(429, Some("2"), true), PostOutcome::Retry { after: Some(d), .. } if d == Duration::from_secs(2))
        );
        assert!(matches!(classify(429, None, false), PostOutcome::Drop(_)));
        assert!(matches!(classify(400, None, true), PostOutcome::Drop(_)));
        assert!(matches!(classify(404, None, true), PostOutcome::Drop(_)));
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn batches_group_samples_by_series_in_order() {
        let a = Labels::from_pairs(&[("__name__", "a")]);
        let b = Labels::from_pairs(&[("__name__", "b")]);
        let batch = vec![
            Pending {
                labels: a.clone(),
                t: 1,
                v: 1.0,
            },
            Pending {
                labels: b.clone(),
                t: 1,
                v: 10.0,
            },
            Pending {
                labels: a.clone(),
                t: 2,
                v: 2.0,
            },
        ];
        let request = build_request(&batch);
        assert_eq!(request.timeseries.len(), 2);
        assert_eq!(
            request.timeseries[0].labels,
            super::super::labels_to_proto(&a)
        );
        let samples: Vec<(i64, f64)> = request.timeseries[0]
            .samples
            .iter()
            .map(|s| (s.timestamp, s.value))
            .collect();
        assert_eq!(samples, vec![(1, 1.0), (2, 2.0)]);
        assert_eq!(request.timeseries[1].samples.len(), 1);
    }

    #[test]
    fn shards_follow_the_load() {
        let settings = QueueSettings {
            min_shards: 1,
            max_shards: 8,
            ..QueueSettings::default()
        };
        let rates = |samples_in, send_seconds, pending| ShardRates {
            seconds: 10.0,
            samples_in,
            samples_sent: 10_000,
            send_seconds,
            pending,
        };
        // 1 ms per sample and 1000 samples/s in: one shard is busy all the
        // time, so two are needed with headroom.
        assert_eq!(desired_shards(&rates(10_000, 10.0, 0), &settings), 2);
        // A light load needs the minimum.
        assert_eq!(desired_shards(&rates(10_000, 0.1, 0), &settings), 1);
        // A backlog asks for more, capped at the maximum.
        assert_eq!(
            desired_shards(&rates(10_000, 10.0, 1_000_000), &settings),
            8
        );
        // Nothing sent: no figure, the minimum.
        let idle = ShardRates {
            samples_sent: 0,
            ..rates(0, 0.0, 0)
        };
        assert_eq!(desired_shards(&idle, &settings), 1);
    }

    #[test]
    fn queue_settings_take_prometheus_defaults() {
        let config: RemoteWriteConfig = serde_yaml::from_str(
            "url: http://x/api/v1/write\nqueue_config: {max_shards: 4, batch_send_deadline: 1s, retry_on_http_429: false}\n",
        )
        .unwrap();
        let settings = QueueSettings::from_config(&config);
        assert_eq!(settings.max_shards, 4);
        assert_eq!(settings.min_shards, 1);
        assert_eq!(settings.capacity, 10_000);
        assert_eq!(settings.batch_send_deadline, Duration::from_secs(1));
        assert!(!settings.retry_on_http_429);
        assert!(
            QueueSettings::from_config(&serde_yaml::from_str("url: http://x/").unwrap())
                .retry_on_http_429
        );
        assert_eq!(remote_name(&config).len(), 6);
    }
}
