//! Immutable on-disk blocks: a directory `<block id>/` holding `meta.json`,
//! the `index` and the `chunks/` segment files, covering a time range
//! `[min_time, max_time)`.
//!
//! The layout is documented in
//! [`tsdb/docs/format/block.md`](../../docs/format/block.md) (index file:
//! [`index.md`](../../docs/format/index.md), chunk encoding:
//! [`chunks.md`](../../docs/format/chunks.md), deletions:
//! [`tombstones.md`](../../docs/format/tombstones.md)) and pinned by the golden block
//! in `tsdb/tests/format.rs`.
//!
//! Blocks are written by [`BlockWriter`] into `<id>.tmp-for-creation/` and
//! renamed into place once complete and synced, so a crash never leaves a
//! half-written block visible; [`remove_tmp_dirs`] clears leftovers at
//! startup. [`Block::open`] maps the files read-only and validates the index
//! checksums; chunk checksums are checked whenever a chunk is read.
//! [`compact`] plans and performs merges, [`retention`] plans deletions.

pub mod compact;
mod id;
pub mod retention;
mod segments;
pub mod tombstones;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::chunk::OwnedChunkIter;
use crate::index::{ChunkMeta, IndexReader, IndexSeries, postings_for_matchers};
use crate::model::{Matcher, Sample, TimeRange};
use crate::storage::{Querier, Queryable, SampleIterator, SelectHints, Series, SeriesSet};
use crate::{Error, Result};

pub use id::{BLOCK_ID_LEN, BlockId, ParseBlockIdError};
pub use tombstones::{Interval, Intervals, TOMBSTONES_FILE, Tombstones};
pub use writer::{BLOCK_CHUNK_SAMPLES, BlockWriter, CompactionInfo, EncodedChunk};

use segments::{MappedChunk, SegmentReader};

/// Version of the block layout written into `meta.json`.
pub const BLOCK_FORMAT_VERSION: u32 = 1;
/// Suffix of a block directory still being written.
pub const TMP_CREATION_SUFFIX: &str = ".tmp-for-creation";
/// Suffix of a block directory being deleted.
pub const TMP_DELETION_SUFFIX: &str = ".tmp-for-deletion";
const META_FILE: &str = "meta.json";
const INDEX_FILE: &str = "index";
const CHUNKS_DIR: &str = "chunks";

/// The contents of `meta.json`, in Prometheus's field names.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: BlockId,
    /// First millisecond covered, inclusive.
    pub min_time: i64,
    /// End of the covered range, exclusive.
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: BlockCompaction,
    pub version: u32,
}

impl BlockMeta {
    /// The block's range as an inclusive [`TimeRange`].
    pub fn time_range(&self) -> TimeRange {
        TimeRange::new(self.min_time, self.max_time.saturating_sub(1))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    pub num_samples: u64,
    pub num_series: u64,
    pub num_chunks: u64,
}

/// Where a block came from: level 1 for a block cut from the head, one more
/// than the highest input level for a compacted block.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockCompaction {
    pub level: u32,
    /// The level-1 blocks whose data this block holds.
    pub sources: Vec<BlockId>,
    /// The blocks merged into this one (empty for level 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<BlockId>,
}

/// An open, validated block. Cloning shares the mapped files.
#[derive(Clone)]
pub struct Block {
    inner: Arc<BlockInner>,
}

struct BlockInner {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    segments: SegmentReader,
    size_bytes: u64,
    /// Deleted intervals; replaced whole by [`Block::delete`], so a reader
    /// keeps a consistent copy.
    tombstones: RwLock<Arc<Tombstones>>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("dir", &self.inner.dir)
            .field("meta", &self.inner.meta)
            .finish_non_exhaustive()
    }
}

impl Block {
    /// Opens the block in `dir`: reads `meta.json`, maps and validates the
    /// index (every section's CRC32C), maps the chunk segments and checks
    /// their headers.
    ///
    /// # Errors
    /// [`Error::Corrupted`] (with the offending file and offset) when the
    /// block is damaged, so the caller can move it aside; [`Error::Io`] when
    /// files cannot be read.
    pub fn open(dir: &Path) -> Result<Block> {
        let meta = read_meta(dir)?;
        let index = IndexReader::open(&dir.join(INDEX_FILE))?;
        let tombstones = Tombstones::read(dir)?;
        let segments = SegmentReader::open(&dir.join(CHUNKS_DIR))?;
        let index_len = std::fs::metadata(dir.join(INDEX_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
        let meta_len = std::fs::metadata(dir.join(META_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
        if u64::from(index.num_series()) != meta.stats.num_series {
            return Err(Error::Corrupted {
                path: dir.join(INDEX_FILE),
                offset: 0,
                reason: format!(
                    "index holds {} series, meta.json says {}",
                    index.num_series(),
                    meta.stats.num_series
                ),
            });
        }
        Ok(Block {
            inner: Arc::new(BlockInner {
                dir: dir.to_path_buf(),
                size_bytes: index_len + meta_len + segments.size(),
                meta,
                index,
                segments,
                tombstones: RwLock::new(Arc::new(tombstones)),
            }),
        })
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.inner.meta
    }

    pub fn id(&self) -> BlockId {
        self.inner.meta.ulid
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Bytes on disk (index, chunks, meta), for size-based retention.
    pub fn size_bytes(&self) -> u64 {
        self.inner.size_bytes
    }

    /// The block's index.
    pub fn index(&self) -> &IndexReader {
        &self.inner.index
    }

    /// The deleted intervals as of now.
    pub fn tombstones(&self) -> Arc<Tombstones> {
        Arc::clone(&self.inner.tombstones.read())
    }

    /// Marks the samples in `[min_t, max_t]` of the series matching
    /// `matchers` deleted: adds tombstones (each clamped to the series'
    /// samples, as Prometheus does) and rewrites the `tombstones` file.
    /// Returns the number of series affected.
    ///
    /// # Errors
    /// Index errors; [`Error::Io`] writing the file (nothing changes then).
    pub fn delete(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Result<usize> {
        let mut guard = self.inner.tombstones.write();
        let mut updated = Tombstones::clone(&guard);
        let mut affected = 0;
        for id in postings_for_matchers(self.index(), matchers)? {
            let entry = self.index().series(id)?;
            let (Some(first), Some(last)) = (entry.chunks.first(), entry.chunks.last()) else {
                continue;
            };
            let (lo, hi) = (min_t.max(first.min_t), max_t.min(last.max_t));
            if lo <= hi {
                updated.add(id, Interval::new(lo, hi));
                affected += 1;
            }
        }
        if affected > 0 {
            updated.write(self.dir())?;
            *guard = Arc::new(updated);
        }
        Ok(affected)
    }

    /// The samples of series `id` (its index entry `entry`) within `range`
    /// that no tombstone deleted; `None` when none are left.
    ///
    /// # Errors
    /// [`Error::Corrupted`] for a damaged chunk.
    pub fn live_samples(
        &self,
        id: u32,
        entry: &IndexSeries,
        range: TimeRange,
        tombstones: &Tombstones,
    ) -> Result<Option<BlockSamples>> {
        let Some(deleted) = tombstones.get(id) else {
            if !entry
                .chunks
                .iter()
                .any(|c| c.max_t >= range.start && c.min_t <= range.end)
            {
                return Ok(None);
            }
            return self.samples(&entry.chunks, range).map(Some);
        };
        let chunks: Vec<ChunkMeta> = entry
            .chunks
            .iter()
            .filter(|c| !deleted.covers(c.min_t, c.max_t))
            .copied()
            .collect();
        let mut samples = self.samples(&chunks, range)?;
        samples.deleted = deleted.clone();
        // Partly deleted chunks may have nothing left in range: look.
        let mut probe = self.samples(&chunks, range)?;
        probe.deleted = deleted.clone();
        if probe.next().is_none() {
            return Ok(None);
        }
        Ok(Some(samples))
    }

    /// Checks the CRC32C of every chunk, which [`Block::open`] leaves to
    /// reads. Returns the number of chunks.
    ///
    /// # Errors
    /// [`Error::Corrupted`] for the first damaged chunk.
    pub fn verify_chunks(&self) -> Result<u64> {
        self.inner.segments.verify_all()
    }

    /// A lazy iterator over the samples of `chunks` (one series' metas from
    /// this block's index) within `range`. Every chunk's checksum is checked
    /// here, so iteration cannot fail.
    ///
    /// # Errors
    /// [`Error::Corrupted`] for a damaged chunk.
    pub fn samples(&self, chunks: &[ChunkMeta], range: TimeRange) -> Result<BlockSamples> {
        let mut mapped = Vec::with_capacity(chunks.len());
        for meta in chunks {
            if meta.max_t < range.start || meta.min_t > range.end {
                continue;
            }
            mapped.push((*meta, self.inner.segments.chunk(meta.chunk_ref)?));
        }
        Ok(BlockSamples {
            chunks: mapped.into_iter(),
            current: None,
            range,
            deleted: Intervals::default(),
        })
    }

    /// A querier over this block, restricted to `range`.
    pub fn querier(&self, range: TimeRange) -> BlockQuerier {
        BlockQuerier {
            block: self.clone(),
            range,
            tombstones: self.tombstones(),
        }
    }
}

impl Queryable for Block {
    fn querier(&self, range: TimeRange) -> Result<Box<dyn Querier + '_>> {
        Ok(Box::new(Block::querier(self, range)))
    }
}

/// Reads a block within a time range; see [`Querier`].
pub struct BlockQuerier {
    block: Block,
    range: TimeRange,
    /// As of the querier's creation.
    tombstones: Arc<Tombstones>,
}

impl BlockQuerier {
    fn index(&self) -> &IndexReader {
        self.block.index()
    }

    /// Series matching `matchers` (all series when empty) that tombstones
    /// left samples to.
    fn matching_series(&self, matchers: &[Matcher]) -> Result<Vec<IndexSeries>> {
        let ids = postings_for_matchers(self.index(), matchers)?;
        let mut out = Vec::with_capacity(ids.len() as usize);
        for id in ids {
            let entry = self.index().series(id)?;
            if self.tombstones.get(id).is_some()
                && self
                    .block
                    .live_samples(id, &entry, TimeRange::all(), &self.tombstones)?
                    .is_none()
            {
                continue;
            }
            out.push(entry);
        }
        Ok(out)
    }
}

impl Querier for BlockQuerier {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<SeriesSet> {
        let range = TimeRange::new(
            hints.start.max(self.range.start),
            hints.end.min(self.range.end),
        );
        let mut set = SeriesSet::default();
        if range.start > range.end {
            return Ok(set);
        }
        let ids = postings_for_matchers(self.index(), matchers)?;
        for id in ids {
            let entry = self.index().series(id)?;
            let no_samples = || Box::new(crate::storage::VecSampleIterator::new(Vec::new()));
            if hints.series_only && self.tombstones.get(id).is_none() {
                // Listing series reads no chunk unless tombstones may have
                // emptied it.
                if entry
                    .chunks
                    .iter()
                    .any(|c| c.max_t >= range.start && c.min_t <= range.end)
                {
                    set.series.push(Series::new(entry.labels, no_samples()));
                }
                continue;
            }
            let Some(live) = self
                .block
                .live_samples(id, &entry, range, &self.tombstones)?
            else {
                continue;
            };
            let samples: Box<dyn SampleIterator> = if hints.series_only {
                no_samples()
            } else {
                Box::new(live)
            };
            set.series.push(Series::new(entry.labels, samples));
        }
        Ok(set)
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        if matchers.is_empty() && self.tombstones.is_empty() {
            return Ok(self.index().label_names());
        }
        let mut names: Vec<String> = Vec::new();
        for entry in self.matching_series(matchers)? {
            for label in &entry.labels {
                names.push(label.name.to_string());
            }
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        if matchers.is_empty() && self.tombstones.is_empty() {
            return Ok(self.index().label_values(name));
        }
        let mut values: Vec<String> = Vec::new();
        for entry in self.matching_series(matchers)? {
            if let Some(v) = entry.labels.get(name) {
                values.push(v.to_string());
            }
        }
        values.sort_unstable();
        values.dedup();
        Ok(values)
    }
}

/// The samples of one series of a block within a time range, decoded
/// lazily chunk by chunk from the memory map.
pub struct BlockSamples {
    /// Remaining chunks with their metas (time range, for skipping on seek
    /// and as the first timestamp the chunk bytes do not hold).
    chunks: std::vec::IntoIter<(ChunkMeta, MappedChunk)>,
    current: Option<OwnedChunkIter<MappedChunk>>,
    range: TimeRange,
    /// Samples skipped: the series' tombstones.
    deleted: Intervals,
}

impl BlockSamples {
    fn finish(&mut self) {
        self.current = None;
        self.chunks = Vec::new().into_iter();
    }
}

impl SampleIterator for BlockSamples {
    fn next(&mut self) -> Option<Sample> {
        self.seek(self.range.start)
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        let mut t = t.max(self.range.start);
        loop {
            if self.current.is_none() {
                // Whole chunks ending before `t` need no decoding.
                while self
                    .chunks
                    .as_slice()
                    .first()
                    .is_some_and(|(meta, _)| meta.max_t < t)
                {
                    self.chunks.next();
                }
                let (meta, chunk) = self.chunks.next()?;
                self.current = Some(chunk.iter(meta.min_t));
            }
            let Some(sample) = self.current.as_mut().and_then(Iterator::next) else {
                self.current = None;
                continue;
            };
            if sample.t > self.range.end {
                // Chunks are in time order: nothing later qualifies.
                self.finish();
                return None;
            }
            if sample.t < t {
                continue;
            }
            match self.deleted.find(sample.t) {
                None => return Some(sample),
                Some(gone) if gone.max_t == i64::MAX => {
                    self.finish();
                    return None;
                }
                // Skip the rest of the deleted interval (whole chunks
                // within it undecoded).
                Some(gone) => t = gone.max_t + 1,
            }
        }
    }

    /// Decodes each chunk in one go into `out`, then drops the deleted
    /// samples among those added. Blocks keep no start timestamps.
    fn load_range(
        &mut self,
        start: i64,
        end: i64,
        out: &mut Vec<Sample>,
        _start_timestamps: &mut Vec<i64>,
    ) {
        let (start, end) = (start.max(self.range.start), end.min(self.range.end));
        let first_new = out.len();
        let mut past_end = self
            .current
            .take()
            .is_some_and(|mut chunk| chunk.load_range(start, end, out));
        while !past_end && let Some((meta, chunk)) = self.chunks.next() {
            if meta.max_t < start {
                continue;
            }
            past_end = meta.min_t > end || chunk.iter(meta.min_t).load_range(start, end, out);
        }
        self.finish();
        if !self.deleted.is_empty() {
            let mut kept = first_new;
            for i in first_new..out.len() {
                if self.deleted.find(out[i].t).is_none() {
                    out[kept] = out[i];
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
    }
}

fn read_meta(dir: &Path) -> Result<BlockMeta> {
    let path = dir.join(META_FILE);
    let bytes = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let meta: BlockMeta = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupted {
        path: path.clone(),
        offset: 0,
        reason: format!("invalid meta.json: {e}"),
    })?;
    if meta.version != BLOCK_FORMAT_VERSION {
        return Err(Error::Corrupted {
            path,
            offset: 0,
            reason: format!("unsupported block version {}", meta.version),
        });
    }
    Ok(meta)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Syncs a directory so that renames and new entries in it are durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// The block directories in `data_dir` (entries named by a block id),
/// sorted by id.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be listed.
pub fn list_block_dirs(data_dir: &Path) -> Result<Vec<(BlockId, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(data_dir).map_err(io_error(data_dir))? {
        let entry = entry.map_err(io_error(data_dir))?;
        let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if entry.path().is_dir() {
            out.push((id, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(id, _)| *id);
    Ok(out)
}

/// Removes leftovers of interrupted block writes and deletions
/// (`*.tmp-for-creation`, `*.tmp-for-deletion`) from `data_dir`; returns
/// what was removed.
///
/// # Errors
/// [`Error::Io`] when listing or removing fails.
pub fn remove_tmp_dirs(data_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(data_dir).map_err(io_error(data_dir))? {
        let entry = entry.map_err(io_error(data_dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.ends_with(TMP_CREATION_SUFFIX) || name.ends_with(TMP_DELETION_SUFFIX) {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(io_error(&path))?;
            tracing::info!(path = %path.display(), "Removed leftover temporary block directory");
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Deletes a block directory so that a crash never leaves part of it
/// looking like a block: it is first renamed to `<id>.tmp-for-deletion`.
///
/// # Errors
/// [`Error::Io`] when renaming or removing fails.
pub fn delete_block_dir(dir: &Path) -> Result<()> {
    let mut tmp = dir.as_os_str().to_owned();
    tmp.push(TMP_DELETION_SUFFIX);
    let tmp = PathBuf::from(tmp);
    std::fs::rename(dir, &tmp).map_err(io_error(dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    std::fs::remove_dir_all(&tmp).map_err(io_error(&tmp))
}

#[cfg(test)]
mod tests;
