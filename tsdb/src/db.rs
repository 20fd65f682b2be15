//! The database: a directory holding the WAL-backed [`Head`] and immutable
//! [blocks](crate::block), presented as one [`Appendable`] and
//! [`Queryable`].
//!
//! ```text
//! <dir>/
//! ├── lock                  held with an exclusive file lock while open
//! ├── wal/                  the head's write-ahead log (tsdb/docs/format/wal.md)
//! ├── 01JD3.../             blocks (tsdb/docs/format/block.md)
//! └── 01JD4....corrupted/   a block that failed validation, moved aside
//! ```
//!
//! Deletions ([`Db::delete`]) go to the head (removed, logged to the WAL as
//! tombstones) and to blocks (a `tombstones` file each,
//! tsdb/docs/format/tombstones.md) until [`Db::clean_tombstones`] or a
//! compaction rewrites the blocks without the deleted samples.
//!
//! [`Db::compact`] is the maintenance step the owner runs periodically (the
//! server: every minute): while the head spans more than 1.5 block ranges,
//! its oldest range becomes a block and the head and WAL are truncated;
//! then blocks are compacted by Prometheus's leveled planner and retention
//! deletes the oldest ones. Nothing runs in the background, so tests drive
//! time with a [`ManualClock`](crate::clock::ManualClock).
//!
//! Queries merge the head and every block overlapping the range; a series
//! present in several of them is merged by timestamp, keeping one sample
//! per timestamp.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::block::compact::{
    MAX_BLOCK_DURATION_CAP_MS, compact, exponential_block_ranges, plan_compaction,
};
use crate::block::retention::{beyond_size_retention, beyond_time_retention};
use crate::block::{
    Block, BlockId, BlockMeta, BlockWriter, EncodedChunk, delete_block_dir, list_block_dirs,
    remove_tmp_dirs,
};
use crate::chunk::CutRules;
use crate::clock::{Clock, SystemClock};
use crate::head::{Head, HeadOptions};
use crate::model::{Labels, Matcher, Sample, TimeRange};
use crate::storage::{
    Appendable, Appender, Querier, Queryable, SampleIterator, SelectHints, Series, SeriesSet,
};
use crate::wal::WalOptions;
use crate::{Error, Result};

/// Suffix given to a block directory that failed validation.
pub const CORRUPTED_SUFFIX: &str = ".corrupted";
const LOCK_FILE: &str = "lock";
const WAL_DIR: &str = "wal";

/// Knobs of the database.
#[derive(Clone)]
pub struct DbOptions {
    /// Time source for block ids.
    pub clock: Arc<dyn Clock>,
    /// Width of blocks cut from the head and of the head's chunk range
    /// (Prometheus: 2 h). Compaction merges blocks into 3x, 9x, ... of it.
    pub block_range: Duration,
    /// Blocks ending this long before the newest block's end are deleted
    /// (Prometheus's default: 15 d). `None` keeps them by time.
    pub retention_time: Option<Duration>,
    /// The oldest blocks are deleted while blocks and WAL together exceed
    /// this many bytes. `None` sets no limit.
    pub retention_size: Option<u64>,
    /// When commits are fsynced, and the WAL segment size.
    pub wal: WalOptions,
    /// The most active series in the head.
    pub max_series: Option<usize>,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            clock: Arc::new(SystemClock),
            block_range: Duration::from_secs(2 * 60 * 60),
            retention_time: Some(Duration::from_secs(15 * 24 * 60 * 60)),
            retention_size: None,
            wal: WalOptions::default(),
            max_series: None,
        }
    }
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("block_range", &self.block_range)
            .field("retention_time", &self.retention_time)
            .field("retention_size", &self.retention_size)
            .field("wal", &self.wal)
            .field("max_series", &self.max_series)
            .finish_non_exhaustive()
    }
}

impl DbOptions {
    fn block_range_ms(&self) -> i64 {
        duration_ms(self.block_range).max(1)
    }

    fn retention_ms(&self) -> Option<i64> {
        self.retention_time.map(duration_ms).filter(|ms| *ms > 0)
    }
}

/// What one [`Db::compact`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactionReport {
    /// Blocks written from the head.
    pub head_blocks: Vec<BlockMeta>,
    /// Blocks written by merging blocks.
    pub merged_blocks: Vec<BlockMeta>,
    /// Blocks deleted by retention.
    pub deleted_by_retention: Vec<BlockId>,
}

/// An open database directory.
pub struct Db {
    dir: PathBuf,
    options: DbOptions,
    head: Head,
    /// Sorted by min time.
    blocks: RwLock<Vec<Block>>,
    /// Serializes maintenance.
    maintenance: Mutex<()>,
    /// Damaged blocks moved aside by [`Db::open`].
    blocks_moved_aside: usize,
    /// Holds the exclusive lock on `<dir>/lock` while the database is open.
    _lock: File,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.dir)
            .field("head", &self.head)
            .field("blocks", &self.blocks.read().len())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (creating if needed) the database in `dir`: takes the
    /// directory lock, removes leftovers of interrupted block writes, opens
    /// the blocks (moving damaged ones aside), and replays the WAL into the
    /// head.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process (or another `Db` in this one)
    /// has the directory open; IO errors.
    pub fn open(dir: &Path, options: DbOptions) -> Result<Db> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let lock = lock_dir(dir)?;
        remove_tmp_dirs(dir)?;

        let mut blocks = Vec::new();
        let mut blocks_moved_aside = 0;
        for (id, block_dir) in list_block_dirs(dir)? {
            match Block::open(&block_dir) {
                Ok(block) => blocks.push(block),
                Err(e) if is_damage(&e) => {
                    move_aside(&block_dir, id, &e)?;
                    blocks_moved_aside += 1;
                }
                Err(e) => return Err(e),
            }
        }
        remove_compacted_parents(&mut blocks)?;
        blocks.sort_by_key(|b| (b.meta().min_time, b.id()));
        let min_valid_t = blocks
            .iter()
            .map(|b| b.meta().max_time)
            .max()
            .unwrap_or(i64::MIN);

        let block_range_ms = options.block_range_ms();
        let head_options = HeadOptions {
            cut_rules: CutRules {
                chunk_range_ms: block_range_ms,
                ..CutRules::default()
            },
            appendable_window: Some(Duration::from_millis((block_range_ms / 2) as u64)),
            max_series: options.max_series,
        };
        let head = Head::open(
            head_options,
            &dir.join(WAL_DIR),
            options.wal.clone(),
            min_valid_t,
        )?;
        tracing::info!(
            dir = %dir.display(),
            blocks = blocks.len(),
            head_series = head.stats().n_series,
            "Opened the database"
        );
        Ok(Db {
            dir: dir.to_path_buf(),
            options,
            head,
            blocks: RwLock::new(blocks),
            maintenance: Mutex::new(()),
            blocks_moved_aside,
            _lock: lock,
        })
    }

    /// Damaged blocks that [`Db::open`] moved aside (renamed to
    /// `<id>.corrupted`).
    pub fn blocks_moved_aside(&self) -> usize {
        self.blocks_moved_aside
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The open blocks, sorted by min time.
    pub fn blocks(&self) -> Vec<Block> {
        self.blocks.read().clone()
    }

    /// The oldest sample time the database may hold: the first block's
    /// start, else the head's oldest sample; `i64::MAX` when empty.
    pub fn start_time(&self) -> i64 {
        let first_block = self.blocks.read().first().map(|b| b.meta().min_time);
        first_block
            .or_else(|| self.head.min_time())
            .unwrap_or(i64::MAX)
    }

    /// Runs maintenance: cuts blocks from the head while it spans more than
    /// 1.5 block ranges (truncating the head and checkpointing the WAL
    /// after each), compacts blocks, and applies retention.
    ///
    /// # Errors
    /// IO errors and damaged blocks met while compacting; what was done
    /// before the error stays done.
    pub fn compact(&self) -> Result<CompactionReport> {
        let _maintenance = self.maintenance.lock();
        let mut report = CompactionReport::default();
        let range = self.options.block_range_ms();
        while let (Some(min_t), Some(max_t)) = (self.head.min_time(), self.head.max_time()) {
            if max_t.saturating_sub(min_t) <= range / 2 * 3 {
                break;
            }
            let block_min = min_t.div_euclid(range).saturating_mul(range);
            let block_max = block_min.saturating_add(range);
            if let Some(meta) = self.write_head_block(block_min, block_max)? {
                report.head_blocks.push(meta);
            }
            self.head.truncate(block_max)?;
            if self.head.min_time().is_some_and(|t| t < block_max) {
                // A chunk reaches across the block's end (the head's chunk
                // range differs from the block range): stop rather than cut
                // the same block again.
                break;
            }
        }
        self.compact_blocks(&mut report)?;
        self.apply_retention(&mut report)?;
        Ok(report)
    }

    /// Writes the head's samples in `[min_t, max_t)` as a block and adds it
    /// to the open blocks.
    fn write_head_block(&self, min_t: i64, max_t: i64) -> Result<Option<BlockMeta>> {
        // Nothing older than the block's end may enter the head from now
        // on: it would be lost when the head is truncated.
        self.head.set_min_valid_time(max_t);
        let Some(meta) = self.write_head_range(&self.dir, min_t, max_t)? else {
            return Ok(None);
        };
        let block = Block::open(&self.dir.join(meta.ulid.to_string()))?;
        self.add_block(block);
        tracing::info!(
            block = %meta.ulid,
            min_t,
            max_t,
            series = meta.stats.num_series,
            samples = meta.stats.num_samples,
            "Wrote a block from the head"
        );
        Ok(Some(meta))
    }

    /// Writes the head's samples in `[min_t, max_t)` as a block directory
    /// in `dir`; `None` when there are none.
    fn write_head_range(&self, dir: &Path, min_t: i64, max_t: i64) -> Result<Option<BlockMeta>> {
        let id = BlockId::new(self.options.clock.now_ms());
        let mut writer = BlockWriter::new(dir, id, min_t, max_t)?;
        for series in self.head.block_chunks(min_t, max_t - 1)? {
            let whole = series
                .chunks
                .iter()
                .all(|c| c.min_t >= min_t && c.max_t < max_t);
            if whole {
                let encoded: Vec<EncodedChunk<'_>> = series
                    .chunks
                    .iter()
                    .map(|c| EncodedChunk {
                        min_t: c.min_t,
                        max_t: c.max_t,
                        bytes: &c.bytes,
                    })
                    .collect();
                writer.add_series(&series.labels, &encoded)?;
            } else {
                // A chunk crosses the block's edge (only when the head's
                // chunk range differs from the block range): re-encode the
                // samples, which the writer clips to the block.
                writer.add_series_samples(&series.labels, series.samples())?;
            }
        }
        writer.finish()
    }

    fn add_block(&self, block: Block) {
        let mut blocks = self.blocks.write();
        blocks.push(block);
        blocks.sort_by_key(|b| (b.meta().min_time, b.id()));
    }

    /// The compaction ranges: the block range times 3^i, up to 31 days or
    /// a tenth of the time retention (Prometheus's rule).
    fn compaction_ranges(&self) -> Vec<i64> {
        let mut max_block = MAX_BLOCK_DURATION_CAP_MS;
        if let Some(retention) = self.options.retention_ms() {
            max_block = max_block.min(retention / 10);
        }
        let mut ranges = exponential_block_ranges(self.options.block_range_ms(), 10, 3);
        if let Some(cut) = ranges.iter().position(|r| *r > max_block) {
            ranges.truncate(cut.max(1));
        }
        ranges
    }

    fn compact_blocks(&self, report: &mut CompactionReport) -> Result<()> {
        let ranges = self.compaction_ranges();
        loop {
            let blocks = self.blocks();
            let metas: Vec<BlockMeta> = blocks.iter().map(|b| b.meta().clone()).collect();
            let plan = plan_compaction(&metas, &ranges);
            if plan.is_empty() {
                return Ok(());
            }
            let inputs: Vec<Block> = blocks
                .into_iter()
                .filter(|b| plan.contains(&b.id()))
                .collect();
            let id = BlockId::new(self.options.clock.now_ms());
            let merged = compact(&self.dir, &inputs, id)?;
            let new_block = match &merged {
                Some(meta) => Some(Block::open(&self.dir.join(meta.ulid.to_string()))?),
                None => None,
            };
            {
                // Swap in one step, so queries see either the inputs or the
                // merged block.
                let mut open = self.blocks.write();
                open.retain(|b| !plan.contains(&b.id()));
                open.extend(new_block);
                open.sort_by_key(|b| (b.meta().min_time, b.id()));
            }
            for block in &inputs {
                delete_block_dir(block.dir())?;
            }
            tracing::info!(inputs = ?plan, output = ?merged.as_ref().map(|m| m.ulid), "Compacted blocks");
            report.merged_blocks.extend(merged);
        }
    }

    fn apply_retention(&self, report: &mut CompactionReport) -> Result<()> {
        let blocks = self.blocks();
        let metas: Vec<BlockMeta> = blocks.iter().map(|b| b.meta().clone()).collect();
        let mut doomed = match self.options.retention_ms() {
            Some(ms) => beyond_time_retention(&metas, ms),
            None => Vec::new(),
        };
        if let Some(max_bytes) = self.options.retention_size {
            let wal_bytes = match self.head.wal() {
                Some(wal) => wal.disk_size()?,
                None => 0,
            };
            let sized: Vec<(BlockMeta, u64)> = blocks
                .iter()
                .map(|b| (b.meta().clone(), b.size_bytes()))
                .collect();
            for id in beyond_size_retention(&sized, max_bytes, wal_bytes) {
                if !doomed.contains(&id) {
                    doomed.push(id);
                }
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        self.blocks.write().retain(|b| !doomed.contains(&b.id()));
        for block in blocks.iter().filter(|b| doomed.contains(&b.id())) {
            delete_block_dir(block.dir())?;
            tracing::info!(block = %block.id(), "Deleted a block by retention");
        }
        report.deleted_by_retention = doomed;
        Ok(())
    }

    /// Deletes the samples in `[min_t, max_t]` (inclusive) of the series
    /// matching `matchers`, as Prometheus's `delete_series`: the head drops
    /// them (logging tombstones to the WAL, so a restart agrees), blocks get
    /// tombstones. Queries stop seeing them at once; compaction and
    /// [`Db::clean_tombstones`] leave them out of the blocks they write.
    /// Returns the number of (head or block) series affected.
    ///
    /// # Errors
    /// IO errors of the WAL or a `tombstones` file; index errors. What was
    /// deleted before the error stays deleted.
    pub fn delete(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Result<usize> {
        // A compaction in flight would replace blocks by merges made
        // without these tombstones.
        let _maintenance = self.maintenance.lock();
        let range = TimeRange::new(min_t, max_t);
        let mut affected = 0;
        for block in self.blocks() {
            if block.meta().time_range().overlaps(&range) {
                affected += block.delete(matchers, min_t, max_t)?;
            }
        }
        affected += self.head.delete(matchers, min_t, max_t)?;
        Ok(affected)
    }

    /// Rewrites every block holding tombstones without the deleted samples
    /// (a new block, with the old one as its parent, swapped in at once;
    /// the old directory is then removed). Returns the (old, new) block ids;
    /// `new` is `None` when nothing was left of the block.
    ///
    /// # Errors
    /// IO errors and damaged blocks; blocks rewritten before the error stay
    /// rewritten.
    pub fn clean_tombstones(&self) -> Result<Vec<(BlockId, Option<BlockId>)>> {
        let _maintenance = self.maintenance.lock();
        let mut cleaned = Vec::new();
        for block in self.blocks() {
            if block.tombstones().is_empty() {
                continue;
            }
            let id = BlockId::new(self.options.clock.now_ms());
            let rewritten = compact(&self.dir, std::slice::from_ref(&block), id)?;
            let new_block = match &rewritten {
                Some(meta) => Some(Block::open(&self.dir.join(meta.ulid.to_string()))?),
                None => None,
            };
            {
                let mut open = self.blocks.write();
                open.retain(|b| b.id() != block.id());
                open.extend(new_block);
                open.sort_by_key(|b| (b.meta().min_time, b.id()));
            }
            delete_block_dir(block.dir())?;
            let new_id = rewritten.map(|m| m.ulid);
            tracing::info!(block = %block.id(), rewritten = ?new_id, "Cleaned tombstones");
            cleaned.push((block.id(), new_id));
        }
        Ok(cleaned)
    }

    /// Syncs the WAL and releases the directory lock: the graceful shutdown.
    /// Dropping a `Db` without it loses nothing acknowledged under
    /// [`SyncPolicy::EveryCommit`](crate::wal::SyncPolicy::EveryCommit), and nothing a process crash could lose
    /// under the other policies.
    ///
    /// # Errors
    /// IO errors of the final WAL sync.
    pub fn close(self) -> Result<()> {
        self.head.sync_wal()
    }
}

impl Appendable for Db {
    fn appender(&self) -> Box<dyn Appender + '_> {
        self.head.appender()
    }
}

impl Queryable for Db {
    fn querier(&self, range: TimeRange) -> Result<Box<dyn Querier + '_>> {
        let blocks = self
            .blocks
            .read()
            .iter()
            .filter(|b| b.meta().time_range().overlaps(&range))
            .cloned()
            .collect();
        Ok(Box::new(DbQuerier {
            head: &self.head,
            blocks,
            range,
        }))
    }
}

/// Reads blocks and head together.
struct DbQuerier<'a> {
    head: &'a Head,
    /// Overlapping the range, oldest first.
    blocks: Vec<Block>,
    range: TimeRange,
}

impl Querier for DbQuerier<'_> {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<SeriesSet> {
        let mut sets = Vec::with_capacity(self.blocks.len() + 1);
        for block in &self.blocks {
            let mut set = block.querier(self.range).select(matchers, hints)?;
            set.series.sort_by(|a, b| a.labels.cmp(&b.labels));
            sets.push(set);
        }
        let head_querier = Queryable::querier(self.head, self.range)?;
        let head_set = head_querier.select(matchers, hints)?;
        if sets.is_empty() {
            // The head's series are sorted and unique: nothing to merge.
            return Ok(head_set);
        }
        sets.push(head_set);
        Ok(merge_series_sets(sets))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut names = Queryable::querier(self.head, self.range)?.label_names(matchers)?;
        for block in &self.blocks {
            names.extend(block.querier(self.range).label_names(matchers)?);
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut values = Queryable::querier(self.head, self.range)?.label_values(name, matchers)?;
        for block in &self.blocks {
            values.extend(block.querier(self.range).label_values(name, matchers)?);
        }
        values.sort_unstable();
        values.dedup();
        Ok(values)
    }
}

/// Merges series sets, each sorted by labels, into one sorted set; a series
/// in several sets gets a [`MergedSamples`] iterator (the earlier set's
/// sample wins where two share a timestamp).
pub fn merge_series_sets(sets: Vec<SeriesSet>) -> SeriesSet {
    let mut warnings = Vec::new();
    let mut all: Vec<(usize, Series)> = Vec::new();
    for (source, set) in sets.into_iter().enumerate() {
        warnings.extend(set.warnings);
        all.extend(set.series.into_iter().map(|s| (source, s)));
    }
    // A stable sort keeps each set's order; equal labels end up adjacent in
    // source order.
    all.sort_by(|(sa, a), (sb, b)| a.labels.cmp(&b.labels).then(sa.cmp(sb)));
    let mut series: Vec<Series> = Vec::with_capacity(all.len());
    let mut group: Vec<Box<dyn SampleIterator>> = Vec::new();
    let mut group_labels: Option<Labels> = None;
    for (_, s) in all {
        if group_labels.as_ref() != Some(&s.labels) {
            if let Some(labels) = group_labels.take() {
                series.push(merged_series(labels, std::mem::take(&mut group)));
            }
            group_labels = Some(s.labels);
        }
        group.push(s.samples);
    }
    if let Some(labels) = group_labels {
        series.push(merged_series(labels, group));
    }
    SeriesSet { series, warnings }
}

fn merged_series(labels: Labels, mut iters: Vec<Box<dyn SampleIterator>>) -> Series {
    if iters.len() == 1
        && let Some(only) = iters.pop()
    {
        return Series::new(labels, only);
    }
    Series::new(labels, Box::new(MergedSamples::new(iters)))
}

/// Merges sample iterators by timestamp. Of samples with the same
/// timestamp only the first source's is kept (sources are ordered oldest
/// block first, head last; they hold the same sample anyway).
pub struct MergedSamples {
    iters: Vec<Box<dyn SampleIterator>>,
    /// The next sample of each iterator, `None` once it is exhausted.
    heads: Vec<Option<Sample>>,
}

impl MergedSamples {
    pub fn new(mut iters: Vec<Box<dyn SampleIterator>>) -> Self {
        let heads = iters.iter_mut().map(|it| it.next()).collect();
        MergedSamples { iters, heads }
    }
}

impl SampleIterator for MergedSamples {
    fn next(&mut self) -> Option<Sample> {
        let mut best: Option<(usize, Sample)> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if let Some(s) = head
                && best.is_none_or(|(_, b)| s.t < b.t)
            {
                best = Some((i, *s));
            }
        }
        let (_, sample) = best?;
        for (i, head) in self.heads.iter_mut().enumerate() {
            if head.is_some_and(|s| s.t == sample.t) {
                *head = self.iters[i].next();
            }
        }
        Some(sample)
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        for (i, head) in self.heads.iter_mut().enumerate() {
            if head.is_some_and(|s| s.t < t) {
                *head = self.iters[i].seek(t);
            }
        }
        self.next()
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How long [`lock_dir`] keeps trying before reporting [`Error::Locked`].
///
/// The lock is an `flock` on an open file description, which a process
/// shares with every child it forks until the child execs: a database
/// closed while another thread of the process spawns a command stays
/// locked for that instant. A holder that is really there (a running
/// server) holds it for much longer than this.
const LOCK_PATIENCE: Duration = Duration::from_millis(500);

/// Takes the exclusive lock on `<dir>/lock` that an open [`Db`] holds, for
/// tools that write into a data directory without opening it (the
/// importer): held until the returned file is dropped.
///
/// # Errors
/// [`Error::Locked`] while a `Db` (a running server) or another tool holds
/// it; [`Error::Io`].
pub fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&path, e)),
        }
    }
}

/// Deletes blocks that a compaction merged into a block that is present: a
/// crash between writing the merged block and deleting its inputs leaves
/// both (Prometheus does the same on open).
fn remove_compacted_parents(blocks: &mut Vec<Block>) -> Result<()> {
    let parents: Vec<BlockId> = blocks
        .iter()
        .flat_map(|b| b.meta().compaction.parents.iter().copied())
        .collect();
    let (merged, kept): (Vec<Block>, Vec<Block>) =
        blocks.drain(..).partition(|b| parents.contains(&b.id()));
    *blocks = kept;
    for block in merged {
        tracing::info!(
            block = %block.id(),
            "Deleting a block already compacted into another (interrupted compaction)"
        );
        let dir = block.dir().to_path_buf();
        drop(block);
        delete_block_dir(&dir)?;
    }
    Ok(())
}

/// Is this error a damaged block (as opposed to a failing disk)?
fn is_damage(e: &Error) -> bool {
    match e {
        Error::Corrupted { .. } => true,
        // A file missing from a block directory.
        Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// Renames a damaged block to `<id>.corrupted` so that the database opens
/// without it and an operator can inspect it.
fn move_aside(block_dir: &Path, id: BlockId, error: &Error) -> Result<()> {
    let mut target = block_dir.as_os_str().to_owned();
    target.push(CORRUPTED_SUFFIX);
    let target = PathBuf::from(target);
    tracing::error!(
        block = %id,
        path = %block_dir.display(),
        moved_to = %target.display(),
        error = %error,
        "Block failed validation; moved it aside and opening without it"
    );
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| io_error(&target, e))?;
    }
    std::fs::rename(block_dir, &target).map_err(|e| io_error(block_dir, e))
}

mod snapshot;
#[cfg(test)]
mod tests;
