//! The head: the most recent samples, in memory and (optionally) backed by
//! the [write-ahead log](crate::wal).
//!
//! - Series live in 16 shards keyed by a hash of their labels, so that many
//!   scrape loops append concurrently. An append returns the series'
//!   handle, a [`SeriesRef`] that indexes a slab of series directly
//!   ([`table`]), so an append with a hint skips hashing altogether; a
//!   handle outliving its series finds nothing, never another series.
//! - An append checks the sample against the series' newest one without
//!   locking; the commit locks each series once, to append to its chunk.
//! - Label strings are interned; postings are roaring bitmaps over dense
//!   per-head slots ([`index`]), and answer matchers, `label_names` and
//!   `label_values`.
//! - Each series holds one open [`XorChunk`](crate::chunk::XorChunk), cut
//!   by [`CutRules`], and its closed chunks as shared bytes.
//! - Out-of-order samples, a different value at an existing timestamp, and
//!   samples older than the appendable window are rejected with typed
//!   [`AppendError`]s; an identical sample is accepted as a no-op, as in
//!   Prometheus.
//!
//! [`Head::new`] gives a pure in-memory head (no WAL, no appendable window)
//! implementing [`Appendable`] and [`Queryable`], handy for loading test
//! data. [`Head::open`] replays a WAL directory and logs every series and
//! commit to it.

mod index;
mod series;
mod table;

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};

use crate::Result;
use crate::chunk::CutRules;
use crate::error::AppendError;
use crate::model::{Labels, Matcher, Sample, SeriesRef, TimeRange};
use crate::storage::{Appendable, Appender, Querier, Queryable, SelectHints, Series, SeriesSet};
use crate::wal::{Record, RefSample, RefSeries, RefTombstone, Wal, WalOptions};
use index::MemIndex;
pub(crate) use series::{Appendability, appendability};
use series::{EmptyIterator, MemSeries};
use table::SeriesTable;

pub use series::{ChunkSeriesIterator, HeadChunk};

/// One series' chunks in a time range; see [`Head::block_chunks`].
#[derive(Debug, Clone)]
pub struct BlockSeries {
    pub labels: Labels,
    /// In time order, not overlapping.
    pub chunks: Vec<HeadChunk>,
}

impl BlockSeries {
    /// The samples of all chunks, in time order.
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        self.chunks.iter().flat_map(HeadChunk::iter)
    }
}

/// Number of shards of the series maps. A power of two.
const N_SHARDS: usize = 16;

/// Knobs of the head. The default suits a pure in-memory head: Prometheus's
/// chunk cutting, no appendable window, no series limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadOptions {
    /// When series cut chunks; its `chunk_range_ms` is also the block range
    /// (chunks never cross a multiple of it).
    pub cut_rules: CutRules,
    /// Samples older than the head's newest sample minus this are rejected
    /// as out of bounds (Prometheus: half the chunk range). `None` accepts
    /// any age, which suits loading test data.
    pub appendable_window: Option<Duration>,
    /// The most series the head holds; new series beyond it are rejected.
    pub max_series: Option<usize>,
}

/// Counters and bounds of the head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadStats {
    pub n_series: usize,
    /// Oldest and newest sample time, `None` when the head is empty.
    pub min_t: Option<i64>,
    pub max_t: Option<i64>,
    /// Samples that reached a chunk.
    pub samples_appended: u64,
    /// Samples accepted by `append` but dropped at commit, because a
    /// concurrent commit or a truncation made them out of order or out of
    /// bounds meanwhile, or (in WAL replay) because their series was
    /// unknown.
    pub samples_dropped: u64,
    /// New series refused because the head held `max_series` series.
    pub series_rejected: u64,
    /// Interned label strings.
    pub n_strings: usize,
}

/// Encoded chunk bytes held by the head, for memory accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    pub n_chunks: usize,
    pub chunk_bytes: usize,
}

/// The in-memory head of the database.
pub struct Head {
    options: HeadOptions,
    wal: Option<Wal>,
    by_hash: Box<[RwLock<HashShard>]>,
    /// Series by handle.
    table: SeriesTable,
    index: RwLock<MemIndex>,
    /// The next series' WAL reference.
    next_ref: AtomicU64,
    n_series: AtomicUsize,
    /// Oldest and newest sample; `i64::MAX`/`i64::MIN` when empty.
    min_t: AtomicI64,
    max_t: AtomicI64,
    /// Nothing older is accepted: it is already persisted in a block.
    min_valid_t: AtomicI64,
    /// Commits hold it shared, truncation exclusively, so that a series
    /// cannot be removed between a commit's check and its append.
    truncation: RwLock<()>,
    samples_appended: AtomicU64,
    samples_dropped: AtomicU64,
    series_rejected: AtomicU64,
    /// WAL references that replay mapped to a series logged under another
    /// reference; checkpoints keep their records while the series lives,
    /// so the next replay finds their samples again.
    wal_aliases: Mutex<FxHashMap<u64, Arc<MemSeries>>>,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Head {
    /// A pure in-memory head without a WAL.
    pub fn new(options: HeadOptions) -> Head {
        Head {
            options,
            wal: None,
            by_hash: (0..N_SHARDS).map(|_| RwLock::default()).collect(),
            table: SeriesTable::default(),
            index: RwLock::default(),
            next_ref: AtomicU64::new(1),
            n_series: AtomicUsize::new(0),
            min_t: AtomicI64::new(i64::MAX),
            max_t: AtomicI64::new(i64::MIN),
            min_valid_t: AtomicI64::new(i64::MIN),
            truncation: RwLock::new(()),
            samples_appended: AtomicU64::new(0),
            samples_dropped: AtomicU64::new(0),
            series_rejected: AtomicU64::new(0),
            wal_aliases: Mutex::default(),
        }
    }

    /// A head backed by the WAL in `wal_dir`: replays it (skipping samples
    /// older than `min_valid_t`, which blocks already hold), then logs every
    /// new series and commit to it.
    ///
    /// # Errors
    /// IO errors of the WAL. Damaged WAL data is truncated, not an error.
    pub fn open(
        options: HeadOptions,
        wal_dir: &Path,
        wal_options: WalOptions,
        min_valid_t: i64,
    ) -> Result<Head> {
        let mut head = Head::new(options);
        head.min_valid_t.store(min_valid_t, Ordering::Relaxed);
        let mut replay = Replay {
            head: &head,
            series: FxHashMap::default(),
            aliases: FxHashMap::default(),
            unknown_refs: 0,
            n_samples: 0,
        };
        let wal = Wal::open(wal_dir, wal_options, |record| replay.record(record))?;
        let Replay {
            aliases,
            unknown_refs,
            n_samples,
            ..
        } = replay;
        head.wal_aliases = Mutex::new(aliases);
        if unknown_refs > 0 {
            tracing::warn!(
                dir = %wal_dir.display(),
                samples = unknown_refs,
                "Dropped WAL samples of series whose record was lost"
            );
        }
        tracing::info!(
            dir = %wal_dir.display(),
            series = head.n_series.load(Ordering::Relaxed),
            samples = n_samples,
            "Replayed the WAL"
        );
        head.wal = Some(wal);
        Ok(head)
    }

    pub fn options(&self) -> &HeadOptions {
        &self.options
    }

    pub fn wal(&self) -> Option<&Wal> {
        self.wal.as_ref()
    }

    pub fn stats(&self) -> HeadStats {
        HeadStats {
            n_series: self.n_series.load(Ordering::Relaxed),
            min_t: self.min_time(),
            max_t: self.max_time(),
            samples_appended: self.samples_appended.load(Ordering::Relaxed),
            samples_dropped: self.samples_dropped.load(Ordering::Relaxed),
            series_rejected: self.series_rejected.load(Ordering::Relaxed),
            n_strings: self.index.read().n_strings(),
        }
    }

    /// Walks every series to add up its chunk bytes.
    pub fn chunk_stats(&self) -> ChunkStats {
        let mut stats = ChunkStats::default();
        self.table.for_each(|series| {
            let (bytes, chunks) = series.chunk_bytes();
            stats.chunk_bytes += bytes;
            stats.n_chunks += chunks;
        });
        stats
    }

    /// Time of the oldest sample, `None` when the head is empty.
    pub fn min_time(&self) -> Option<i64> {
        let t = self.min_t.load(Ordering::Acquire);
        (t != i64::MAX).then_some(t)
    }

    /// Time of the newest sample, `None` when the head is empty.
    pub fn max_time(&self) -> Option<i64> {
        let t = self.max_t.load(Ordering::Acquire);
        (t != i64::MIN).then_some(t)
    }

    /// Samples older than this are rejected (they belong to blocks).
    pub fn min_valid_time(&self) -> i64 {
        self.min_valid_t.load(Ordering::Acquire)
    }

    /// Raises the time below which samples are rejected.
    /// Waits for commits in flight, so that once this returns no sample
    /// older than `t` can reach a chunk: a block cut from the head after it
    /// is complete.
    pub fn set_min_valid_time(&self, t: i64) {
        let _exclusive = self.truncation.write();
        self.min_valid_t.fetch_max(t, Ordering::AcqRel);
    }

    /// The oldest timestamp an append may carry now.
    fn min_appendable_time(&self) -> i64 {
        let mut min_t = self.min_valid_time();
        if let Some(window) = self.options.appendable_window
            && let Some(max_t) = self.max_time()
        {
            let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
            min_t = min_t.max(max_t.saturating_sub(window_ms));
        }
        min_t
    }

    /// Drops every chunk that ends before `min_t` and every series left
    /// without samples, raises the minimum valid time to `min_t`, and (with
    /// a WAL) checkpoints the WAL to match.
    ///
    /// # Errors
    /// IO errors of the WAL checkpoint; the memory is truncated regardless.
    pub fn truncate(&self, min_t: i64) -> Result<()> {
        let n_removed = self.truncate_memory(min_t);
        tracing::debug!(min_t, series_removed = n_removed, "Truncated the head");
        if let Some(wal) = &self.wal {
            let live = self.live_wal_refs();
            let stats = wal.checkpoint(&live, min_t)?;
            tracing::debug!(?stats, "Checkpointed the WAL");
        }
        Ok(())
    }

    /// Which WAL references a checkpoint keeps: those of live series and
    /// their aliases, and any created from now on (the checkpoint may cover
    /// the segment their record goes to).
    fn live_wal_refs(&self) -> impl Fn(SeriesRef) -> bool + use<> {
        // Read first: a series with a smaller reference holds its hash
        // shard's lock from taking the reference until it is listed there,
        // so the walk below finds it.
        let first_unlisted = self.next_ref.load(Ordering::Acquire);
        let mut live: FxHashSet<u64> = self.wal_aliases.lock().keys().copied().collect();
        for shard in self.by_hash.iter() {
            shard.read().for_each(|_, series| {
                live.insert(series.wal_ref.get());
            });
        }
        move |r: SeriesRef| r.get() >= first_unlisted || live.contains(&r.get())
    }

    fn truncate_memory(&self, min_t: i64) -> usize {
        let _exclusive = self.truncation.write();
        self.min_valid_t.fetch_max(min_t, Ordering::AcqRel);
        let mut removed = Vec::new();
        let mut new_min_t = i64::MAX;
        for shard in self.by_hash.iter() {
            let mut shard = shard.write();
            let mut dead = Vec::new();
            shard.for_each(|hash, series| match series.truncate(min_t) {
                Some(t) => new_min_t = new_min_t.min(t),
                None => dead.push((hash, Arc::clone(series))),
            });
            for (hash, series) in dead {
                series.mark_removed();
                shard.remove(hash, &series);
                removed.push(series);
            }
        }
        for series in &removed {
            self.table.remove(series.handle);
        }
        let mut index = self.index.write();
        for series in &removed {
            index.remove(series);
        }
        self.wal_aliases.lock().retain(|_, s| !s.is_removed());
        let n_removed = removed.len();
        // Their labels must be gone before unused strings can be found.
        drop(removed);
        index.sweep_strings();
        drop(index);
        self.n_series.fetch_sub(n_removed, Ordering::AcqRel);
        self.min_t.store(new_min_t, Ordering::Release);
        n_removed
    }

    /// Deletes the samples in `[min_t, max_t]` of the series matching
    /// `matchers`: logs a tombstone per series (its interval clamped to the
    /// series' samples, as Prometheus does) to the WAL, then re-encodes
    /// their chunks without those samples; series left empty leave the head
    /// (and label values). Returns the number of series affected.
    ///
    /// # Errors
    /// IO errors of the WAL; nothing is deleted then.
    pub fn delete(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Result<usize> {
        // No commit runs meanwhile: a deletion sees every sample acked
        // before it, and none after it.
        let _exclusive = self.truncation.write();
        let candidates = self.index.read().select(matchers)?;
        let mut targets = Vec::new();
        for series in candidates {
            let Some((first, last)) = series.time_range() else {
                continue;
            };
            let (lo, hi) = (min_t.max(first), max_t.min(last));
            if lo <= hi {
                let stone = RefTombstone {
                    series_ref: series.wal_ref,
                    min_t: lo,
                    max_t: hi,
                };
                targets.push((series, stone));
            }
        }
        if targets.is_empty() {
            return Ok(0);
        }
        if let Some(wal) = &self.wal {
            let stones: Vec<RefTombstone> = targets.iter().map(|(_, stone)| *stone).collect();
            wal.log_tombstones(&stones)?;
        }
        let mut emptied = Vec::new();
        for (series, stone) in &targets {
            let left = series.delete(stone.min_t, stone.max_t, &self.options.cut_rules);
            if left.is_none() {
                emptied.push(Arc::clone(series));
            }
        }
        self.remove_series(&emptied);
        self.recompute_min_time();
        tracing::info!(
            series = targets.len(),
            series_removed = emptied.len(),
            min_t,
            max_t,
            "Deleted samples from the head"
        );
        Ok(targets.len())
    }

    /// Drops series (left empty by a deletion) from every map. The caller
    /// holds the truncation lock or has the head to itself (replay).
    fn remove_series(&self, dead: &[Arc<MemSeries>]) {
        if dead.is_empty() {
            return;
        }
        for series in dead {
            let hash = labels_hash(&series.labels);
            let mut shard = self.by_hash[hash_shard(hash)].write();
            series.mark_removed();
            shard.remove(hash, series);
            self.table.remove(series.handle);
        }
        let mut index = self.index.write();
        for series in dead {
            index.remove(series);
        }
        self.wal_aliases.lock().retain(|_, s| !s.is_removed());
        self.n_series.fetch_sub(dead.len(), Ordering::AcqRel);
    }

    /// Sets the oldest sample time from the series, after a deletion.
    fn recompute_min_time(&self) {
        let mut min_t = i64::MAX;
        self.table.for_each(|series| {
            if let Some((first, _)) = series.time_range() {
                min_t = min_t.min(first);
            }
        });
        self.min_t.store(min_t, Ordering::Release);
        if min_t == i64::MAX {
            self.max_t.store(i64::MIN, Ordering::Release);
        }
    }

    /// Writes the WAL's buffer and syncs it (for shutdown).
    ///
    /// # Errors
    /// IO errors of the WAL.
    pub fn sync_wal(&self) -> Result<()> {
        match &self.wal {
            Some(wal) => wal.sync(),
            None => Ok(()),
        }
    }

    /// The series matching `matchers` with samples in `[start, end]`,
    /// sorted by labels. With `series_only` the iterators are empty.
    ///
    /// # Errors
    /// None today; matcher evaluation is fallible for on-disk indexes.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        series_only: bool,
    ) -> Result<SeriesSet> {
        if start > end {
            return Ok(SeriesSet::default());
        }
        let candidates = self.index.read().select(matchers)?;
        let mut out = Vec::with_capacity(candidates.len());
        for series in candidates {
            if series_only {
                if series.overlaps(start, end) {
                    out.push(Series::new(series.labels.clone(), Box::new(EmptyIterator)));
                }
                continue;
            }
            if let Some(samples) = series.iter_in(start, end) {
                out.push(Series::new(series.labels.clone(), Box::new(samples)));
            }
        }
        out.sort_unstable_by(|a, b| cmp_interned(&a.labels, &b.labels));
        Ok(SeriesSet {
            series: out,
            warnings: Vec::new(),
        })
    }

    /// Every series with chunks overlapping `[start, end]`, sorted by
    /// labels, with those chunks: what a block of that range is written
    /// from.
    pub fn block_chunks(&self, start: i64, end: i64) -> Result<Vec<BlockSeries>> {
        let candidates = self.index.read().select(&[])?;
        let mut out: Vec<BlockSeries> = candidates
            .into_iter()
            .filter_map(|series| {
                let chunks = series.chunks_in(start, end);
                (!chunks.is_empty()).then(|| BlockSeries {
                    labels: series.labels.clone(),
                    chunks,
                })
            })
            .collect();
        out.sort_unstable_by(|a, b| cmp_interned(&a.labels, &b.labels));
        Ok(out)
    }

    /// The series with these labels, created (and logged to the WAL) if
    /// new.
    fn get_or_create(&self, labels: &Labels) -> Result<Arc<MemSeries>, AppendError> {
        let hash = labels_hash(labels);
        let shard = &self.by_hash[hash_shard(hash)];
        if let Some(series) = shard.read().get(hash, labels) {
            return Ok(Arc::clone(series));
        }
        if labels.is_empty() {
            return Err(AppendError::InvalidSeries {
                labels: labels.clone(),
                reason: "empty label set".to_string(),
            });
        }
        let mut shard = shard.write();
        if let Some(series) = shard.get(hash, labels) {
            return Ok(Arc::clone(series));
        }
        if let Some(limit) = self.options.max_series
            && self.n_series.load(Ordering::Acquire) >= limit
        {
            self.series_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::SeriesLimitExceeded {
                labels: labels.clone(),
                limit,
            });
        }
        let id = self.next_ref.fetch_add(1, Ordering::AcqRel);
        let wal_ref = SeriesRef::new(id).ok_or(AppendError::UnknownSeriesRef(id))?;
        self.insert(&mut shard, hash, labels, wal_ref)
    }

    /// Adds a new series to every map and logs it to the WAL before anyone
    /// else can see it, so its record precedes every sample of it.
    fn insert(
        &self,
        shard: &mut HashShard,
        hash: u64,
        labels: &Labels,
        wal_ref: SeriesRef,
    ) -> Result<Arc<MemSeries>, AppendError> {
        let full = || AppendError::SeriesLimitExceeded {
            labels: labels.clone(),
            limit: self.n_series.load(Ordering::Acquire),
        };
        let mut index = self.index.write();
        let slot = index.allocate_slot().ok_or_else(full)?;
        let interned = index.intern(labels);
        let Some(series) = self.table.insert(hash, |handle| {
            Arc::new(MemSeries::new(wal_ref, handle, interned, slot))
        }) else {
            index.release_slot(slot);
            return Err(full());
        };
        if let Some(wal) = &self.wal {
            wal.log_series(&[RefSeries {
                series_ref: wal_ref,
                labels: series.labels.clone(),
            }]);
        }
        index.add(&series);
        drop(index);
        shard.insert(hash, Arc::clone(&series));
        self.n_series.fetch_add(1, Ordering::AcqRel);
        Ok(series)
    }

    fn note_time_range(&self, min_t: i64, max_t: i64) {
        self.min_t.fetch_min(min_t, Ordering::AcqRel);
        self.max_t.fetch_max(max_t, Ordering::AcqRel);
    }
}

impl Appendable for Head {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(HeadAppender {
            head: self,
            pending: Vec::new(),
        })
    }
}

impl Queryable for Head {
    fn querier(&self, range: TimeRange) -> Result<Box<dyn Querier + '_>> {
        Ok(Box::new(HeadQuerier { head: self, range }))
    }
}

/// A batch of appends to the head.
struct HeadAppender<'a> {
    head: &'a Head,
    pending: Vec<PendingSample>,
}

struct PendingSample {
    series: Arc<MemSeries>,
    sample: Sample,
}

impl Appender for HeadAppender<'_> {
    fn append(
        &mut self,
        hint: Option<SeriesRef>,
        labels: &Labels,
        sample: Sample,
    ) -> Result<SeriesRef, AppendError> {
        // Checked first, so that a rejected sample creates no series.
        let min_t = self.head.min_appendable_time();
        if sample.t < min_t {
            return Err(AppendError::OutOfBounds {
                labels: labels.clone(),
                t: sample.t,
                min_t,
            });
        }
        let series = match hint.and_then(|r| self.head.table.get(r)) {
            Some(series) => series,
            // A handle whose series left the head, and nothing to find it
            // again by.
            None if labels.is_empty()
                && let Some(r) = hint =>
            {
                return Err(AppendError::UnknownSeriesRef(r.get()));
            }
            None => self.head.get_or_create(labels)?,
        };
        // A series appended twice in a row within the batch is checked
        // against its pending sample, so a batch of one series' samples
        // reports its own disorder.
        let last = match self.pending.last() {
            Some(p) if Arc::ptr_eq(&p.series, &series) => Some((p.sample.t, p.sample.v.to_bits())),
            _ => series.last(),
        };
        match appendability(last, sample) {
            Appendability::Append => {
                let handle = series.handle;
                self.pending.push(PendingSample { series, sample });
                Ok(handle)
            }
            Appendability::Duplicate => Ok(series.handle),
            Appendability::OutOfOrder { last_t } => Err(AppendError::OutOfOrderSample {
                labels: series.labels.clone(),
                t: sample.t,
                last_t,
            }),
            Appendability::ConflictingValue { stored } => Err(AppendError::DuplicateSample {
                labels: series.labels.clone(),
                t: sample.t,
                stored,
                new: sample.v,
            }),
        }
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let head = self.head;
        let _shared = head.truncation.read();
        for p in &mut self.pending {
            if p.series.is_removed() {
                // Truncation dropped the series (it had no samples yet);
                // bring it back.
                let labels = p.series.labels.clone();
                p.series = head.get_or_create(&labels)?;
            }
        }
        let min_valid_t = head.min_valid_time();
        if let Some(wal) = &head.wal {
            let samples: Vec<RefSample> = self
                .pending
                .iter()
                .filter(|p| p.sample.t >= min_valid_t)
                .map(|p| RefSample {
                    series_ref: p.series.wal_ref,
                    t: p.sample.t,
                    v: p.sample.v,
                })
                .collect();
            wal.log_samples(&samples)?;
        }
        let rules = &head.options.cut_rules;
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        let mut appended = 0;
        for p in &self.pending {
            if p.sample.t >= min_valid_t && p.series.append(p.sample, rules) {
                appended += 1;
                min_t = min_t.min(p.sample.t);
                max_t = max_t.max(p.sample.t);
            }
        }
        let dropped = self.pending.len() as u64 - appended;
        head.samples_appended.fetch_add(appended, Ordering::Relaxed);
        if dropped > 0 {
            head.samples_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if appended > 0 {
            head.note_time_range(min_t, max_t);
        }
        Ok(())
    }

    fn rollback(self: Box<Self>) {}
}

struct HeadQuerier<'a> {
    head: &'a Head,
    range: TimeRange,
}

impl Querier for HeadQuerier<'_> {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<SeriesSet> {
        let start = hints.start.max(self.range.start);
        let end = hints.end.min(self.range.end);
        self.head.select(matchers, start, end, hints.series_only)
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        self.head.index.read().label_names(matchers)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        self.head.index.read().label_values(name, matchers)
    }
}

/// Rebuilds the head from WAL records.
struct Replay<'a> {
    head: &'a Head,
    /// Series by the WAL reference they were created under.
    series: FxHashMap<u64, Arc<MemSeries>>,
    /// WAL references of series that were logged again under a new
    /// reference (removed by a truncation, then recreated, with no
    /// checkpoint in between).
    aliases: FxHashMap<u64, Arc<MemSeries>>,
    unknown_refs: u64,
    n_samples: u64,
}

impl Replay<'_> {
    fn record(&mut self, record: Record) {
        match record {
            Record::Series(series) => {
                for s in series {
                    self.series(s);
                }
            }
            Record::Samples(samples) => self.samples(&samples),
            Record::Tombstones(stones) => self.tombstones(&stones),
        }
    }

    /// Applies deletions to the samples replayed so far.
    fn tombstones(&mut self, stones: &[RefTombstone]) {
        let head = self.head;
        let mut emptied = Vec::new();
        for stone in stones {
            let r = stone.series_ref.get();
            let Some(series) = self.series.get(&r).or_else(|| self.aliases.get(&r)) else {
                continue;
            };
            if series
                .delete(stone.min_t, stone.max_t, &head.options.cut_rules)
                .is_none()
            {
                emptied.push(Arc::clone(series));
            }
        }
        if !emptied.is_empty() {
            self.series
                .retain(|_, s| !emptied.iter().any(|e| Arc::ptr_eq(e, s)));
            self.aliases
                .retain(|_, s| !emptied.iter().any(|e| Arc::ptr_eq(e, s)));
            head.remove_series(&emptied);
        }
        head.recompute_min_time();
    }

    fn series(&mut self, s: RefSeries) {
        let head = self.head;
        head.next_ref
            .fetch_max(s.series_ref.get().saturating_add(1), Ordering::AcqRel);
        let hash = labels_hash(&s.labels);
        let mut shard = head.by_hash[hash_shard(hash)].write();
        if let Some(existing) = shard.get(hash, &s.labels) {
            if existing.wal_ref != s.series_ref {
                self.aliases
                    .insert(s.series_ref.get(), Arc::clone(existing));
            }
            return;
        }
        if s.labels.is_empty() {
            return;
        }
        // Only a head with four billion live series runs out of slots.
        match head.insert(&mut shard, hash, &s.labels, s.series_ref) {
            Ok(series) => {
                self.series.insert(s.series_ref.get(), series);
            }
            Err(e) => tracing::warn!(error = %e, "Dropped a series during WAL replay"),
        }
    }

    fn samples(&mut self, samples: &[RefSample]) {
        let head = self.head;
        let min_valid_t = head.min_valid_time();
        let rules = &head.options.cut_rules;
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        let mut appended = 0;
        for s in samples {
            if s.t < min_valid_t {
                continue;
            }
            let r = s.series_ref.get();
            let Some(series) = self.series.get(&r).or_else(|| self.aliases.get(&r)) else {
                self.unknown_refs += 1;
                continue;
            };
            if series.append(Sample::new(s.t, s.v), rules) {
                appended += 1;
                min_t = min_t.min(s.t);
                max_t = max_t.max(s.t);
            }
        }
        self.n_samples += appended;
        head.samples_appended.fetch_add(appended, Ordering::Relaxed);
        if appended > 0 {
            head.note_time_range(min_t, max_t);
        }
    }
}

/// Orders label sets as `Labels`' `Ord` does, but faster for the head's
/// interned labels: equal strings share one allocation, so comparing the
/// common prefix of two series mostly stops at a pointer check (sorting
/// select results spent most of its time in `memcmp` before).
fn cmp_interned(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    use std::cmp::Ordering::Equal;
    for (x, y) in a.iter().zip(b.iter()) {
        if !Arc::ptr_eq(&x.name, &y.name) {
            match x.name.cmp(&y.name) {
                Equal => {}
                unequal => return unequal,
            }
        }
        if !Arc::ptr_eq(&x.value, &y.value) {
            match x.value.cmp(&y.value) {
                Equal => {}
                unequal => return unequal,
            }
        }
    }
    a.len().cmp(&b.len())
}

fn labels_hash(labels: &Labels) -> u64 {
    let mut hasher = FxHasher::default();
    labels.hash(&mut hasher);
    hasher.finish()
}

fn hash_shard(hash: u64) -> usize {
    // The top bits: the map inside the shard uses the low ones.
    (hash >> 60) as usize % N_SHARDS
}

/// Series of one shard by label hash. Hash collisions are rare, so the
/// common case is one map entry per series, as Prometheus's
/// `seriesHashmap`.
#[derive(Default)]
struct HashShard {
    unique: FxHashMap<u64, Arc<MemSeries>>,
    conflicts: FxHashMap<u64, Vec<Arc<MemSeries>>>,
}

impl HashShard {
    fn get(&self, hash: u64, labels: &Labels) -> Option<&Arc<MemSeries>> {
        if let Some(series) = self.unique.get(&hash)
            && series.labels == *labels
        {
            return Some(series);
        }
        self.conflicts
            .get(&hash)?
            .iter()
            .find(|s| s.labels == *labels)
    }

    fn insert(&mut self, hash: u64, series: Arc<MemSeries>) {
        match self.unique.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(series);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.conflicts.entry(hash).or_default().push(series);
            }
        }
    }

    fn remove(&mut self, hash: u64, series: &Arc<MemSeries>) {
        if self
            .unique
            .get(&hash)
            .is_some_and(|s| Arc::ptr_eq(s, series))
        {
            self.unique.remove(&hash);
            if let Some(list) = self.conflicts.get_mut(&hash) {
                if let Some(promoted) = list.pop() {
                    self.unique.insert(hash, promoted);
                }
                if list.is_empty() {
                    self.conflicts.remove(&hash);
                }
            }
        } else if let Some(list) = self.conflicts.get_mut(&hash) {
            list.retain(|s| !Arc::ptr_eq(s, series));
            if list.is_empty() {
                self.conflicts.remove(&hash);
            }
        }
    }

    fn for_each(&self, mut f: impl FnMut(u64, &Arc<MemSeries>)) {
        for (hash, series) in &self.unique {
            f(*hash, series);
        }
        for (hash, list) in &self.conflicts {
            for series in list {
                f(*hash, series);
            }
        }
    }
}

#[cfg(test)]
mod tests;
