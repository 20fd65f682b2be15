//! Agent storage: the write-ahead log without a head, for `sextant serve
//! --agent` (Prometheus Agent, vmagent). Appends are checked and logged to
//! the WAL exactly as the head logs them (same records, same format:
//! [`tsdb/docs/format/wal.md`](../../docs/format/wal.md)), so the remote
//! write queues follow it unchanged; nothing is kept in memory but each
//! series' labels, reference and newest sample, and nothing can be queried.
//!
//! The log would grow forever, so the owner calls [`AgentDb::truncate`]
//! periodically with the oldest segment a remote write queue still reads:
//! the segments before it are condensed into a checkpoint of the live
//! series, and series that received nothing since a cut-off are forgotten
//! (an append recreates them under a new reference).

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use rustc_hash::{FxHashMap, FxHasher};

use crate::Result;
use crate::db::lock_dir;
use crate::error::AppendError;
use crate::head::{Appendability, appendability};
use crate::model::{Labels, Sample, SeriesRef};
use crate::storage::{Appendable, Appender};
use crate::wal::{CheckpointStats, Record, RefSample, RefSeries, Wal, WalOptions};

const N_SHARDS: usize = 16;
const WAL_DIR: &str = "wal";

/// Knobs of the agent storage.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    pub wal: WalOptions,
    /// Active series at most; new series beyond it are rejected.
    pub max_series: Option<usize>,
}

/// A series as the agent knows it.
#[derive(Debug)]
struct AgentSeries {
    series_ref: SeriesRef,
    labels: Labels,
    /// Newest sample: time and value bits (`None` before the first).
    last: Mutex<Option<(i64, u64)>>,
    /// Set by truncation; an appender holding it recreates the series.
    removed: AtomicBool,
}

impl AgentSeries {
    fn last_t(&self) -> Option<i64> {
        self.last.lock().map(|(t, _)| t)
    }
}

/// Series by label hash (a list per hash for collisions).
type HashShard = FxHashMap<u64, Vec<Arc<AgentSeries>>>;
/// Series by reference.
type RefShard = FxHashMap<u64, Arc<AgentSeries>>;

/// Figures of the agent storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    pub n_series: usize,
    pub samples_appended: u64,
    /// The newest sample timestamp committed since the agent opened.
    pub max_t: Option<i64>,
    /// New series refused because the agent held `max_series` series.
    pub series_rejected: u64,
}

/// What one truncation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruncateStats {
    pub series_removed: usize,
    /// `None` when no segment was old enough to condense.
    pub checkpoint: Option<CheckpointStats>,
}

/// The write-ahead log of an agent, with its series.
pub struct AgentDb {
    dir: PathBuf,
    _lock: File,
    wal: Wal,
    options: AgentOptions,
    by_hash: Box<[RwLock<HashShard>]>,
    by_ref: Box<[RwLock<RefShard>]>,
    next_ref: AtomicU64,
    n_series: AtomicUsize,
    samples_appended: AtomicU64,
    /// Newest committed sample timestamp (`i64::MIN`: none yet).
    max_t: AtomicI64,
    series_rejected: AtomicU64,
    /// Commits hold it shared, truncation exclusively.
    truncation: RwLock<()>,
}

impl std::fmt::Debug for AgentDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentDb")
            .field("dir", &self.dir)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn label_hash(labels: &Labels) -> u64 {
    let mut hasher = FxHasher::default();
    labels.hash(&mut hasher);
    hasher.finish()
}

fn hash_shard(hash: u64) -> usize {
    // The low bits of FxHash are weak; the high ones spread.
    (hash >> 58) as usize % N_SHARDS
}

fn ref_shard(series_ref: u64) -> usize {
    series_ref as usize % N_SHARDS
}

impl AgentDb {
    /// Opens (creating) the agent storage in `dir`: takes the directory's
    /// lock, replays the WAL's series (and newest samples, so out-of-order
    /// appends are still refused after a restart) and logs to it from then.
    ///
    /// # Errors
    /// [`crate::Error::Locked`] when another process has the directory; IO
    /// errors. Damaged WAL data is truncated with a warning, not an error.
    pub fn open(dir: &Path, options: AgentOptions) -> Result<AgentDb> {
        std::fs::create_dir_all(dir).map_err(|source| crate::Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = lock_dir(dir)?;
        let mut series: FxHashMap<u64, (Labels, Option<(i64, u64)>)> = FxHashMap::default();
        let mut max_ref = 0;
        let wal = Wal::open(
            &dir.join(WAL_DIR),
            options.wal.clone(),
            |record| match record {
                Record::Series(records) => {
                    for s in records {
                        max_ref = max_ref.max(s.series_ref.get());
                        series.insert(s.series_ref.get(), (s.labels, None));
                    }
                }
                Record::Samples(samples) => {
                    for s in samples {
                        if let Some((_, last)) = series.get_mut(&s.series_ref.get())
                            && last.is_none_or(|(t, _)| t <= s.t)
                        {
                            *last = Some((s.t, s.v.to_bits()));
                        }
                    }
                }
                // The agent has no admin API: its log holds none.
                Record::Tombstones(_) => {}
            },
        )?;
        let db = AgentDb {
            dir: dir.to_path_buf(),
            _lock: lock,
            wal,
            options,
            by_hash: (0..N_SHARDS).map(|_| RwLock::default()).collect(),
            by_ref: (0..N_SHARDS).map(|_| RwLock::default()).collect(),
            next_ref: AtomicU64::new(max_ref + 1),
            n_series: AtomicUsize::new(0),
            samples_appended: AtomicU64::new(0),
            max_t: AtomicI64::new(i64::MIN),
            series_rejected: AtomicU64::new(0),
            truncation: RwLock::new(()),
        };
        // A series logged twice (forgotten, then recreated) keeps its newest
        // reference; the older one's samples were read by then.
        let mut newest: FxHashMap<Labels, (u64, Option<(i64, u64)>)> = FxHashMap::default();
        for (id, (labels, last)) in series {
            match newest.get(&labels) {
                Some((other, _)) if *other > id => {}
                _ => {
                    newest.insert(labels, (id, last));
                }
            }
        }
        for (labels, (id, last)) in newest {
            if let Some(series_ref) = SeriesRef::new(id) {
                db.insert(label_hash(&labels), labels, series_ref, last, false);
            }
        }
        tracing::info!(
            dir = %dir.display(),
            series = db.n_series.load(Ordering::Relaxed),
            "Replayed the agent WAL"
        );
        Ok(db)
    }

    /// The WAL, for the remote write queues that follow it.
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    pub fn stats(&self) -> AgentStats {
        AgentStats {
            n_series: self.n_series.load(Ordering::Relaxed),
            samples_appended: self.samples_appended.load(Ordering::Relaxed),
            max_t: Some(self.max_t.load(Ordering::Relaxed)).filter(|t| *t != i64::MIN),
            series_rejected: self.series_rejected.load(Ordering::Relaxed),
        }
    }

    /// Forgets the series whose newest sample is older than `min_t` (or
    /// that never received one), then condenses the WAL segments numbered
    /// below `before_segment` into a checkpoint of the remaining series.
    /// Pass the oldest segment a reader of the log still needs; a value
    /// past the segment being written condenses everything.
    ///
    /// # Errors
    /// IO errors of the checkpoint; the series are forgotten regardless.
    pub fn truncate(&self, min_t: i64, before_segment: u32) -> Result<TruncateStats> {
        let mut series_removed = 0;
        {
            let _exclusive = self.truncation.write();
            for shard in self.by_hash.iter() {
                let mut shard = shard.write();
                shard.retain(|_, list| {
                    list.retain(|s| {
                        let stale = s.last_t().is_none_or(|t| t < min_t);
                        if stale {
                            s.removed.store(true, Ordering::Release);
                            self.by_ref[ref_shard(s.series_ref.get())]
                                .write()
                                .remove(&s.series_ref.get());
                            series_removed += 1;
                        }
                        !stale
                    });
                    !list.is_empty()
                });
            }
            self.n_series.fetch_sub(series_removed, Ordering::AcqRel);
        }
        // Samples in a checkpoint are never sent (readers take only its
        // series), so it keeps none.
        let live = |r: SeriesRef| {
            self.by_ref[ref_shard(r.get())]
                .read()
                .contains_key(&r.get())
        };
        let checkpoint = self
            .wal
            .checkpoint_before(before_segment, &live, i64::MAX)?;
        Ok(TruncateStats {
            series_removed,
            checkpoint,
        })
    }

    /// Syncs the WAL and releases the directory.
    ///
    /// # Errors
    /// IO errors of the final sync.
    pub fn close(self) -> Result<()> {
        self.wal.sync()
    }

    fn series_by_ref(&self, series_ref: SeriesRef) -> Option<Arc<AgentSeries>> {
        self.by_ref[ref_shard(series_ref.get())]
            .read()
            .get(&series_ref.get())
            .cloned()
    }

    fn get_or_create(&self, labels: &Labels) -> Result<Arc<AgentSeries>, AppendError> {
        if labels.is_empty() {
            return Err(AppendError::InvalidSeries {
                labels: labels.clone(),
                reason: "empty label set".to_string(),
            });
        }
        let hash = label_hash(labels);
        if let Some(series) = self.by_hash[hash_shard(hash)]
            .read()
            .get(&hash)
            .and_then(|list| list.iter().find(|s| &s.labels == labels))
        {
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
        let series_ref = SeriesRef::new(id).ok_or(AppendError::UnknownSeriesRef(id))?;
        Ok(self.insert(hash, labels.clone(), series_ref, None, true))
    }

    /// Adds a series (unless another thread just did) and, when `log`,
    /// logs it before any of its samples can be logged.
    fn insert(
        &self,
        hash: u64,
        labels: Labels,
        series_ref: SeriesRef,
        last: Option<(i64, u64)>,
        log: bool,
    ) -> Arc<AgentSeries> {
        let mut shard = self.by_hash[hash_shard(hash)].write();
        let list = shard.entry(hash).or_default();
        if let Some(series) = list.iter().find(|s| s.labels == labels) {
            return Arc::clone(series);
        }
        let series = Arc::new(AgentSeries {
            series_ref,
            labels,
            last: Mutex::new(last),
            removed: AtomicBool::new(false),
        });
        if log {
            self.wal.log_series(&[RefSeries {
                series_ref,
                labels: series.labels.clone(),
            }]);
        }
        list.push(Arc::clone(&series));
        self.by_ref[ref_shard(series_ref.get())]
            .write()
            .insert(series_ref.get(), Arc::clone(&series));
        self.n_series.fetch_add(1, Ordering::AcqRel);
        series
    }
}

impl Appendable for AgentDb {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(AgentAppender {
            db: self,
            pending: Vec::new(),
        })
    }
}

struct AgentAppender<'a> {
    db: &'a AgentDb,
    pending: Vec<(Arc<AgentSeries>, Sample)>,
}

impl Appender for AgentAppender<'_> {
    fn append(
        &mut self,
        hint: Option<SeriesRef>,
        labels: &Labels,
        sample: Sample,
    ) -> Result<SeriesRef, AppendError> {
        let series = match hint.and_then(|r| self.db.series_by_ref(r)) {
            Some(series) if &series.labels == labels => series,
            _ => self.db.get_or_create(labels)?,
        };
        let last = match self.pending.last() {
            Some((s, p)) if Arc::ptr_eq(s, &series) => Some((p.t, p.v.to_bits())),
            _ => *series.last.lock(),
        };
        match appendability(last, sample) {
            Appendability::Append => {
                let series_ref = series.series_ref;
                self.pending.push((series, sample));
                Ok(series_ref)
            }
            Appendability::Duplicate => Ok(series.series_ref),
            Appendability::OutOfOrder { last_t } => Err(AppendError::OutOfOrderSample {
                labels: labels.clone(),
                t: sample.t,
                last_t,
            }),
            Appendability::ConflictingValue { stored } => Err(AppendError::DuplicateSample {
                labels: labels.clone(),
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
        let db = self.db;
        let _shared = db.truncation.read();
        for (series, _) in &mut self.pending {
            if series.removed.load(Ordering::Acquire) {
                // Truncation forgot it meanwhile: log it anew.
                let labels = series.labels.clone();
                *series = db.get_or_create(&labels)?;
            }
        }
        let samples: Vec<RefSample> = self
            .pending
            .iter()
            .map(|(series, sample)| RefSample {
                series_ref: series.series_ref,
                t: sample.t,
                v: sample.v,
            })
            .collect();
        db.wal.log_samples(&samples)?;
        for (series, sample) in &self.pending {
            let mut last = series.last.lock();
            if last.is_none_or(|(t, _)| t <= sample.t) {
                *last = Some((sample.t, sample.v.to_bits()));
            }
        }
        db.samples_appended
            .fetch_add(self.pending.len() as u64, Ordering::Relaxed);
        if let Some(newest) = self.pending.iter().map(|(_, sample)| sample.t).max() {
            db.max_t.fetch_max(newest, Ordering::Relaxed);
        }
        Ok(())
    }

    fn rollback(self: Box<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::tail;

    fn labels(name: &str, instance: &str) -> Labels {
        Labels::from_pairs(&[("__name__", name), ("instance", instance)])
    }

    fn append(db: &AgentDb, l: &Labels, t: i64, v: f64) -> Result<SeriesRef, AppendError> {
        let mut app = db.appender();
        let r = app.append(None, l, Sample { t, v })?;
        app.commit().map_err(|_| AppendError::UnknownSeriesRef(0))?;
        Ok(r)
    }

    /// Every record in the WAL directory, checkpoint first.
    fn records(dir: &Path) -> Vec<Record> {
        let wal = dir.join(WAL_DIR);
        let mut out = Vec::new();
        if let Some((_, checkpoint)) = tail::latest_checkpoint(&wal).unwrap() {
            for (_, path) in tail::checkpoint_segments(&checkpoint).unwrap() {
                tail::read_segment_from(&path, 0, &mut |r| out.push(r)).unwrap();
            }
        }
        for (_, path) in tail::list_segments(&wal).unwrap() {
            tail::read_segment_from(&path, 0, &mut |r| out.push(r)).unwrap();
        }
        out
    }

    fn sample_count(records: &[Record]) -> usize {
        records
            .iter()
            .map(|r| match r {
                Record::Samples(s) => s.len(),
                Record::Series(_) | Record::Tombstones(_) => 0,
            })
            .sum()
    }

    #[test]
    fn appends_reach_the_wal_in_the_heads_format() {
        let dir = tempfile::tempdir().unwrap();
        let db = AgentDb::open(dir.path(), AgentOptions::default()).unwrap();
        let a = labels("up", "a");
        let r = append(&db, &a, 1000, 1.0).unwrap();
        let mut app = db.appender();
        assert_eq!(app.append(Some(r), &a, Sample { t: 2000, v: 0.0 }), Ok(r));
        app.append(None, &labels("up", "b"), Sample { t: 2000, v: 1.0 })
            .unwrap();
        app.commit().unwrap();
        db.wal().sync().unwrap();

        let records = records(dir.path());
        let series: Vec<&Labels> = records
            .iter()
            .flat_map(|r| match r {
                Record::Series(s) => s.iter().map(|s| &s.labels).collect(),
                Record::Samples(_) | Record::Tombstones(_) => Vec::new(),
            })
            .collect();
        assert_eq!(series, [&a, &labels("up", "b")]);
        assert_eq!(sample_count(&records), 3);
        assert_eq!(
            db.stats(),
            AgentStats {
                n_series: 2,
                samples_appended: 3,
                max_t: Some(2000),
                series_rejected: 0,
            }
        );
    }

    #[test]
    fn refuses_out_of_order_and_conflicting_samples_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = labels("up", "a");
        {
            let db = AgentDb::open(dir.path(), AgentOptions::default()).unwrap();
            append(&db, &a, 2000, 1.0).unwrap();
            assert!(matches!(
                append(&db, &a, 1000, 1.0),
                Err(AppendError::OutOfOrderSample { last_t: 2000, .. })
            ));
            assert!(matches!(
                append(&db, &a, 2000, 5.0),
                Err(AppendError::DuplicateSample { .. })
            ));
            // The same sample again is a no-op, not an error.
            append(&db, &a, 2000, 1.0).unwrap();
            db.close().unwrap();
        }
        let db = AgentDb::open(dir.path(), AgentOptions::default()).unwrap();
        assert_eq!(db.stats().n_series, 1);
        assert!(matches!(
            append(&db, &a, 1500, 1.0),
            Err(AppendError::OutOfOrderSample { last_t: 2000, .. })
        ));
        append(&db, &a, 3000, 1.0).unwrap();
        db.close().unwrap();
        // One sample per accepted append: 2000 and 3000.
        assert_eq!(sample_count(&records(dir.path())), 2);
    }

    #[test]
    fn a_second_process_gets_a_lock_error() {
        let dir = tempfile::tempdir().unwrap();
        let _db = AgentDb::open(dir.path(), AgentOptions::default()).unwrap();
        assert!(matches!(
            AgentDb::open(dir.path(), AgentOptions::default()),
            Err(crate::Error::Locked { .. })
        ));
    }

    #[test]
    fn truncation_keeps_what_a_reader_has_not_read_and_forgets_stale_series() {
        let dir = tempfile::tempdir().unwrap();
        let options = AgentOptions {
            wal: WalOptions {
                segment_size: 4096,
                ..WalOptions::default()
            },
            max_series: None,
        };
        let db = AgentDb::open(dir.path(), options.clone()).unwrap();
        let old = labels("old", "a");
        append(&db, &old, 1_000, 1.0).unwrap();
        let live = labels("live", "a");
        for i in 0..400 {
            append(&db, &live, 10_000 + i * 15_000, i as f64).unwrap();
        }
        let segments = db.wal().current_segment();
        assert!(segments >= 3, "small segments should have rotated");

        // A reader still in segment 2: segments 0 and 1 are condensed.
        let stats = db.truncate(5_000, 2).unwrap();
        assert_eq!(stats.series_removed, 1);
        let checkpoint = stats.checkpoint.unwrap();
        assert_eq!(checkpoint.last_segment, 1);
        assert_eq!(checkpoint.samples_kept, 0);
        let left: Vec<u32> = tail::list_segments(&dir.path().join(WAL_DIR))
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(left.first(), Some(&2));
        // Nothing new to condense before segment 2.
        assert_eq!(db.truncate(5_000, 2).unwrap().checkpoint, None);

        // The forgotten series comes back under a new reference.
        let before = db.stats().n_series;
        let r = append(&db, &old, 9_000_000, 2.0).unwrap();
        assert_eq!(db.stats().n_series, before + 1);
        assert!(r.get() > 2);

        // Past the current segment: everything is condensed; a restart
        // finds both series in the checkpoint, under the same references.
        db.truncate(0, u32::MAX).unwrap();
        db.close().unwrap();
        let db = AgentDb::open(dir.path(), options).unwrap();
        assert_eq!(db.stats().n_series, 2);
        assert_eq!(append(&db, &old, 9_500_000, 1.0), Ok(r));
        // The checkpoint keeps no samples, so the newest time of a series is
        // known again from its next sample on (as in Prometheus's agent).
        assert!(matches!(
            append(&db, &old, 9_400_000, 1.0),
            Err(AppendError::OutOfOrderSample { .. })
        ));
    }

    #[test]
    fn the_series_limit_rejects_new_series_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = AgentDb::open(
            dir.path(),
            AgentOptions {
                max_series: Some(1),
                ..AgentOptions::default()
            },
        )
        .unwrap();
        append(&db, &labels("a", "1"), 1, 1.0).unwrap();
        append(&db, &labels("a", "1"), 2, 1.0).unwrap();
        assert!(matches!(
            append(&db, &labels("b", "1"), 2, 1.0),
            Err(AppendError::SeriesLimitExceeded { limit: 1, .. })
        ));
    }
}
