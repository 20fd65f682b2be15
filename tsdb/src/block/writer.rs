//! Writes a block: chunks stream into segment files as series are added,
//! the index and `meta.json` are written at the end, then the directory is
//! renamed into place.

use std::path::{Path, PathBuf};

use crate::block::segments::SegmentWriter;
use crate::block::{
    BLOCK_FORMAT_VERSION, BlockCompaction, BlockId, BlockMeta, BlockStats, CHUNKS_DIR, INDEX_FILE,
    META_FILE, TMP_CREATION_SUFFIX, io_error, sync_dir,
};
use crate::chunk::{ChunkIter, Encoding, XorChunk};
use crate::index::{ChunkMeta, IndexSeries, write_index};
use crate::model::{Labels, Sample};
use crate::{Error, Result};

/// The most samples in one block chunk. Blocks merge consecutive chunks of
/// a series (the head's hold about 120 samples) into chunks of up to this
/// many samples, 2 h at a 15 s scrape interval: what every chunk pays once
/// (header, first sample, windows, segment framing, index entry) is spread
/// over four times as many samples, and a seek into a chunk still decodes
/// at most this many.
pub const BLOCK_CHUNK_SAMPLES: usize = 480;

/// One encoded XOR chunk handed to [`BlockWriter::add_series`].
#[derive(Debug, Clone, Copy)]
pub struct EncodedChunk<'a> {
    /// Timestamp of the first sample.
    pub min_t: i64,
    /// Timestamp of the last sample.
    pub max_t: i64,
    /// The chunk as [`XorChunk::bytes`] returns it.
    pub bytes: &'a [u8],
}

/// Lineage of a compacted block; see [`BlockCompaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionInfo {
    pub level: u32,
    pub sources: Vec<BlockId>,
    pub parents: Vec<BlockId>,
}

/// Writes one block covering `[min_time, max_time)`. Series must be added
/// in label order. Nothing is visible in the data directory until
/// [`BlockWriter::finish`] renames the complete block into place; dropping
/// an unfinished writer removes its temporary directory.
pub struct BlockWriter {
    data_dir: PathBuf,
    tmp_dir: PathBuf,
    id: BlockId,
    min_time: i64,
    max_time: i64,
    compaction: BlockCompaction,
    segments: Option<SegmentWriter>,
    series: Vec<IndexSeries>,
    stats: BlockStats,
}

impl BlockWriter {
    /// Starts a level-1 block (one cut from the head) with id `id` for
    /// `[min_time, max_time)` in `data_dir`.
    ///
    /// # Errors
    /// [`Error::InvalidBlockInput`] for an empty range, [`Error::Io`] when
    /// the temporary directory cannot be created.
    pub fn new(data_dir: &Path, id: BlockId, min_time: i64, max_time: i64) -> Result<Self> {
        if min_time >= max_time {
            return Err(Error::InvalidBlockInput {
                reason: format!("empty block range [{min_time}, {max_time})"),
            });
        }
        let tmp_dir = data_dir.join(format!("{id}{TMP_CREATION_SUFFIX}"));
        let chunks_dir = tmp_dir.join(CHUNKS_DIR);
        std::fs::create_dir_all(&chunks_dir).map_err(io_error(&chunks_dir))?;
        Ok(BlockWriter {
            data_dir: data_dir.to_path_buf(),
            segments: Some(SegmentWriter::new(&chunks_dir)),
            tmp_dir,
            id,
            min_time,
            max_time,
            compaction: BlockCompaction {
                level: 1,
                sources: vec![id],
                parents: Vec::new(),
            },
            series: Vec::new(),
            stats: BlockStats::default(),
        })
    }

    /// Marks the block as the result of a compaction.
    pub fn set_compaction(&mut self, info: CompactionInfo) {
        self.compaction = BlockCompaction {
            level: info.level,
            sources: info.sources,
            parents: info.parents,
        };
    }

    pub fn id(&self) -> BlockId {
        self.id
    }

    fn check_order(&self, labels: &Labels) -> Result<()> {
        if let Some(last) = self.series.last()
            && last.labels >= *labels
        {
            return Err(Error::InvalidBlockInput {
                reason: format!("series {labels} added after {}", last.labels),
            });
        }
        Ok(())
    }

    fn segments(&mut self) -> Result<&mut SegmentWriter> {
        self.segments
            .as_mut()
            .ok_or_else(|| Error::InvalidBlockInput {
                reason: "block writer already finished".to_string(),
            })
    }

    /// Adds a series with already encoded chunks, in time order,
    /// non-overlapping, within the block's range. A series without chunks
    /// is skipped.
    ///
    /// # Errors
    /// [`Error::InvalidBlockInput`] for series out of order or chunks that
    /// are invalid, overlap or leave the range; [`Error::Io`].
    pub fn add_series(&mut self, labels: &Labels, chunks: &[EncodedChunk<'_>]) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        self.check_order(labels)?;
        let invalid = |reason: String| Error::InvalidBlockInput {
            reason: format!("series {labels}: {reason}"),
        };
        let mut metas = Vec::with_capacity(chunks.len());
        let mut num_samples = 0u64;
        let mut prev_max_t: Option<i64> = None;
        // Chunks merged into the next block chunk: their samples, the time
        // range, and the original bytes while it is a single chunk.
        let mut pending = PendingChunk::default();
        for c in chunks {
            if c.min_t > c.max_t || c.min_t < self.min_time || c.max_t >= self.max_time {
                return Err(invalid(format!(
                    "chunk [{}, {}] outside the block range [{}, {})",
                    c.min_t, c.max_t, self.min_time, self.max_time
                )));
            }
            if prev_max_t.is_some_and(|p| c.min_t <= p) {
                return Err(invalid("chunks overlap or are out of order".to_string()));
            }
            prev_max_t = Some(c.max_t);
            let iter = ChunkIter::new(c.bytes, c.min_t).map_err(|e| invalid(e.to_string()))?;
            num_samples += iter.num_samples() as u64;
            if !pending.chunks.is_empty()
                && pending.samples.len() + iter.num_samples() > BLOCK_CHUNK_SAMPLES
            {
                metas.push(pending.write(self.segments()?)?);
            }
            let decoded = iter.num_samples();
            pending.samples.extend(iter);
            // Encoding 4 takes the first timestamp from `min_t`: a wrong one
            // would shift every sample, which the last one shows.
            if decoded > 0
                && let Some(last) = pending.samples.last()
                && last.t != c.max_t
            {
                return Err(invalid(format!(
                    "chunk [{}, {}] decodes to a last sample at {}",
                    c.min_t, c.max_t, last.t
                )));
            }
            pending.chunks.push(*c);
        }
        if !pending.chunks.is_empty() {
            metas.push(pending.write(self.segments()?)?);
        }
        self.stats.num_samples += num_samples;
        self.stats.num_chunks += metas.len() as u64;
        self.stats.num_series += 1;
        self.series.push(IndexSeries {
            labels: labels.clone(),
            chunks: metas,
        });
        Ok(())
    }

    /// Adds a series from samples in increasing time order, encoding chunks
    /// of up to [`BLOCK_CHUNK_SAMPLES`] samples. Samples
    /// outside the block's range are skipped, so the head can pass a whole
    /// series when it cuts a block; a series with no sample in range is
    /// skipped entirely.
    ///
    /// # Errors
    /// [`Error::InvalidBlockInput`] for series out of order or timestamps
    /// that do not increase; [`Error::Io`].
    pub fn add_series_samples(
        &mut self,
        labels: &Labels,
        samples: impl IntoIterator<Item = Sample>,
    ) -> Result<()> {
        let mut chunks: Vec<XorChunk> = Vec::new();
        let mut current = XorChunk::new();
        let mut last_t: Option<i64> = None;
        for s in samples {
            if s.t < self.min_time || s.t >= self.max_time {
                continue;
            }
            if last_t.is_some_and(|t| s.t <= t) {
                return Err(Error::InvalidBlockInput {
                    reason: format!("series {labels}: timestamp {} does not increase", s.t),
                });
            }
            last_t = Some(s.t);
            if current.num_samples() >= BLOCK_CHUNK_SAMPLES {
                chunks.push(std::mem::take(&mut current));
            }
            current.append(s.t, s.v);
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        let encoded: Vec<EncodedChunk<'_>> = chunks
            .iter()
            .map(|c| EncodedChunk {
                min_t: c.min_t(),
                max_t: c.max_t(),
                bytes: c.bytes(),
            })
            .collect();
        self.add_series(labels, &encoded)
    }

    /// Writes the index and `meta.json`, syncs everything and renames the
    /// block into place. Returns its meta, or `None` (and writes nothing)
    /// when no series was added.
    ///
    /// # Errors
    /// [`Error::Io`]; the temporary directory is removed on failure.
    pub fn finish(mut self) -> Result<Option<BlockMeta>> {
        let Some(segments) = self.segments.take() else {
            return Ok(None);
        };
        segments.finish()?;
        if self.series.is_empty() {
            // `Drop` removes the temporary directory.
            return Ok(None);
        }
        write_index(&self.tmp_dir.join(INDEX_FILE), &self.series)?;
        let meta = BlockMeta {
            ulid: self.id,
            min_time: self.min_time,
            max_time: self.max_time,
            stats: self.stats.clone(),
            compaction: self.compaction.clone(),
            version: BLOCK_FORMAT_VERSION,
        };
        write_meta(&self.tmp_dir, &meta)?;
        sync_dir(&self.tmp_dir.join(CHUNKS_DIR))?;
        sync_dir(&self.tmp_dir)?;
        let final_dir = self.data_dir.join(self.id.to_string());
        std::fs::rename(&self.tmp_dir, &final_dir).map_err(io_error(&final_dir))?;
        sync_dir(&self.data_dir)?;
        Ok(Some(meta))
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // After a successful `finish` the directory was renamed away and
        // this fails harmlessly; otherwise it removes a partial block.
        if self.tmp_dir.exists()
            && let Err(error) = std::fs::remove_dir_all(&self.tmp_dir)
        {
            tracing::warn!(
                path = %self.tmp_dir.display(),
                error = %error,
                "Failed to remove temporary block directory"
            );
        }
    }
}

/// Consecutive chunks of a series being merged into one block chunk.
#[derive(Default)]
struct PendingChunk<'a> {
    chunks: Vec<EncodedChunk<'a>>,
    samples: Vec<Sample>,
}

impl PendingChunk<'_> {
    /// Writes the merged chunk, re-encoded with windows measured over all
    /// its samples (blocks are written once and read many times), and
    /// empties `self`. A single chunk keeps its bytes if they are smaller.
    fn write(&mut self, segments: &mut SegmentWriter) -> Result<ChunkMeta> {
        let dense = XorChunk::dense(&self.samples);
        let bytes = match self.chunks.as_slice() {
            [single] if single.bytes.len() <= dense.bytes().len() => single.bytes,
            _ => dense.bytes(),
        };
        let chunk_ref = segments.write_chunk(Encoding::CURRENT.byte(), bytes)?;
        let meta = ChunkMeta {
            min_t: self.chunks.first().map_or(0, |c| c.min_t),
            max_t: self.chunks.last().map_or(0, |c| c.max_t),
            chunk_ref,
        };
        self.chunks.clear();
        self.samples.clear();
        Ok(meta)
    }
}

fn write_meta(dir: &Path, meta: &BlockMeta) -> Result<()> {
    use std::io::Write;
    let path = dir.join(META_FILE);
    let mut json = serde_json::to_vec_pretty(meta).map_err(|e| Error::InvalidBlockInput {
        reason: format!("cannot serialize meta.json: {e}"),
    })?;
    json.push(b'\n');
    let mut file = std::fs::File::create_new(&path).map_err(io_error(&path))?;
    file.write_all(&json).map_err(io_error(&path))?;
    file.sync_all().map_err(io_error(&path))
}
