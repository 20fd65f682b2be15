//! The write-ahead log: every series the head creates and every committed
//! sample, written before a commit is acknowledged, so that a restart
//! rebuilds the head.
//!
//! On-disk format: [`tsdb/docs/format/wal.md`](../../docs/format/wal.md)
//! (segments in `<dir>/wal/`, length-framed records with a CRC32C each,
//! checkpoints), pinned by the golden log in `tsdb/tests/wal_format.rs`.
//!
//! - [`Wal::open`] replays the latest checkpoint and the segments after it,
//!   in order. Damage (a torn tail after a crash, a corrupted record) ends
//!   that segment's replay: the segment is truncated at the damage with a
//!   warning and everything before it is kept. Records never span segments,
//!   so later segments still replay.
//! - [`Wal::log_series`] buffers series records; [`Wal::log_samples`]
//!   writes everything buffered plus the samples with one `write` and then
//!   syncs per the [`SyncPolicy`]. A series record therefore always
//!   precedes the samples that reference it.
//! - [`Wal::checkpoint`] runs when the head is truncated: it condenses the
//!   segments so far into `checkpoint.NNNNNNNN` (series still alive,
//!   samples not older than the head) and deletes them.

mod record;
mod segment;
pub mod tail;

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use record::{
    DecodeRecordError, Record, RefSample, RefSeries, RefTombstone, decode as decode_record,
};
use segment::{HEADER_LEN, io_error};

use crate::model::SeriesRef;
use crate::{Error, Result};

/// When a commit's WAL write is forced to stable storage with `fsync`.
/// Every commit is written to the operating system before it is
/// acknowledged, so a crash of the process alone loses nothing under any
/// policy; the policy decides what a crash of the machine may lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every commit waits for its `fsync`: nothing acknowledged is lost.
    EveryCommit,
    /// A commit syncs when the last sync is at least this old, so a machine
    /// crash loses at most about this much (plus commits since, when no
    /// further commit comes; [`Wal::sync`] covers shutdown).
    Interval(Duration),
    /// Only completed segments, checkpoints and [`Wal::sync`] are synced,
    /// as Prometheus does.
    Never,
}

/// Knobs of the write-ahead log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// A new segment starts when the next record would make the current one
    /// larger than this. Records never span segments.
    pub segment_size: u64,
    pub sync: SyncPolicy,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 128 << 20,
            sync: SyncPolicy::Interval(Duration::from_secs(1)),
        }
    }
}

/// What a checkpoint kept and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The last segment the checkpoint covers; it and the ones before are
    /// deleted.
    pub last_segment: u32,
    pub series_kept: u64,
    pub series_dropped: u64,
    pub samples_kept: u64,
    pub samples_dropped: u64,
}

/// A segmented write-ahead log in one directory.
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    writer: Mutex<Writer>,
    /// Serializes checkpoints.
    checkpoint_lock: Mutex<()>,
    /// Writes and syncs of commits that failed (a full disk, IO errors).
    writes_failed: AtomicU64,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

const CHECKPOINT_PREFIX: &str = "checkpoint.";
const TMP_SUFFIX: &str = ".tmp";

impl Wal {
    /// Opens (creating if needed) the log in `dir`, hands every record of
    /// the latest checkpoint and the segments after it to `replay` in
    /// order, repairs damage, and starts a fresh segment for writing.
    ///
    /// # Errors
    /// IO errors. Damaged data is not an error: it is truncated and logged.
    pub fn open(dir: &Path, options: WalOptions, mut replay: impl FnMut(Record)) -> Result<Wal> {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        remove_tmp_checkpoints(dir)?;

        let checkpoints = list_checkpoints(dir)?;
        let latest_checkpoint = checkpoints.last().map(|(index, _)| *index);
        if let Some((_, path)) = checkpoints.last() {
            for (_, segment_path) in segment::list_segments(path)? {
                let damage = segment::read_segment(&segment_path, &mut replay)?;
                if let Some(damage) = damage {
                    tracing::warn!(
                        segment = %segment_path.display(),
                        offset = damage.offset,
                        reason = %damage.reason,
                        "Damaged WAL checkpoint segment; replaying what precedes the damage"
                    );
                }
            }
        }
        for (_, old) in &checkpoints[..checkpoints.len().saturating_sub(1)] {
            fs::remove_dir_all(old).map_err(|e| io_error(old, e))?;
        }

        let mut last_index = latest_checkpoint;
        for (index, path) in segment::list_segments(dir)? {
            if latest_checkpoint.is_some_and(|c| index <= c) {
                // Covered by the checkpoint; left over from an interrupted
                // deletion.
                fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
                continue;
            }
            if let Some(previous) = last_index
                && index != previous + 1
            {
                tracing::warn!(
                    dir = %dir.display(),
                    after = previous,
                    next = index,
                    "WAL segments are missing; replaying the ones present"
                );
            }
            if let Some(damage) = segment::read_segment(&path, &mut replay)? {
                tracing::warn!(
                    segment = %path.display(),
                    offset = damage.offset,
                    reason = %damage.reason,
                    "Damaged WAL segment; truncating it and keeping the records before the damage"
                );
                repair_segment(&path, damage.offset)?;
            }
            last_index = Some(index);
        }

        let first_index = match last_index {
            Some(index) => next_index(dir, index)?,
            None => 0,
        };
        let segment = SegmentWriter::create(dir, first_index, options.segment_size)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            options,
            writer: Mutex::new(Writer {
                segment,
                pending_series: Vec::new(),
                series_payload: Vec::new(),
                last_sync: Instant::now(),
                broken: false,
            }),
            writes_failed: AtomicU64::new(0),
            checkpoint_lock: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of the segment being written.
    pub fn current_segment(&self) -> u32 {
        self.writer.lock().segment.index
    }

    /// Buffers series records. They reach the file with the next
    /// [`Wal::log_samples`] or [`Wal::sync`], before any sample that
    /// references them. Buffering cannot fail, so the head can log a series
    /// the moment it creates it.
    pub fn log_series(&self, series: &[RefSeries]) {
        if series.is_empty() {
            return;
        }
        let mut writer = self.writer.lock();
        for s in series {
            record::encode_series_entry(s, &mut writer.series_payload);
        }
        if writer.series_payload.len() > record::MAX_PAYLOAD_LEN {
            writer.frame_series();
        }
    }

    /// Writes the buffered series records and these samples, then syncs
    /// per the sync policy. When it returns `Ok`, the samples survive a
    /// crash of the process (and of the machine, under
    /// [`SyncPolicy::EveryCommit`]).
    ///
    /// # Errors
    /// IO errors; the samples may then be partially logged.
    pub fn log_samples(&self, samples: &[RefSample]) -> Result<()> {
        let mut frames = Vec::with_capacity(samples.len() * 12 + 32);
        record::encode_samples(samples, &mut frames);
        let mut writer = self.writer.lock();
        self.count_failure(writer.write_pending(&frames))?;
        let sync_now = match self.options.sync {
            SyncPolicy::EveryCommit => true,
            SyncPolicy::Interval(interval) => writer.last_sync.elapsed() >= interval,
            SyncPolicy::Never => false,
        };
        if !sync_now {
            return Ok(());
        }
        writer.last_sync = Instant::now();
        let file = Arc::clone(&writer.segment.file);
        let path = writer.segment.path();
        // Sync outside the lock: commits that arrive meanwhile write on, and
        // their own sync covers them.
        drop(writer);
        self.count_failure(file.sync_data().map_err(|e| io_error(&path, e)))
    }

    /// Writes the buffered series records and a tombstones record, and
    /// syncs: a deletion is durable when this returns `Ok`, whatever the
    /// sync policy (deletions are rare).
    ///
    /// # Errors
    /// IO errors.
    pub fn log_tombstones(&self, stones: &[RefTombstone]) -> Result<()> {
        if stones.is_empty() {
            return Ok(());
        }
        let mut frames = Vec::with_capacity(stones.len() * 16 + 16);
        record::encode_tombstones(stones, &mut frames);
        let mut writer = self.writer.lock();
        self.count_failure(writer.write_pending(&frames))?;
        writer.last_sync = Instant::now();
        writer.segment.sync()
    }

    /// Writes and syncs of commits that failed since the log was opened:
    /// each is a commit rejected with an error (disk full, IO errors).
    pub fn writes_failed(&self) -> u64 {
        self.writes_failed.load(Ordering::Relaxed)
    }

    fn count_failure(&self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result {
            self.writes_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "WAL write failed; rejecting the commit");
        }
        result
    }

    /// Writes everything buffered and syncs it to stable storage.
    ///
    /// # Errors
    /// IO errors.
    pub fn sync(&self) -> Result<()> {
        let mut writer = self.writer.lock();
        writer.write_pending(&[])?;
        writer.last_sync = Instant::now();
        writer.segment.sync()
    }

    /// Condenses every segment written so far into a checkpoint that keeps
    /// the series for which `keep` is true and their samples at or after
    /// `min_t`, then deletes those segments and older checkpoints. Appends
    /// continue meanwhile, into a fresh segment.
    ///
    /// # Errors
    /// IO errors; the log is left as before the checkpoint then.
    pub fn checkpoint(
        &self,
        keep: &dyn Fn(SeriesRef) -> bool,
        min_t: i64,
    ) -> Result<CheckpointStats> {
        let stats = self.checkpoint_before(u32::MAX, keep, min_t)?;
        Ok(stats.unwrap_or_default())
    }

    /// Like [`Wal::checkpoint`], but condenses only the segments numbered
    /// below `segment` (all of them, the one being written included, when
    /// `segment` is past it), so that a reader still in `segment` loses
    /// nothing. `None` when no segment is old enough.
    ///
    /// # Errors
    /// IO errors; the log is left as before the checkpoint then.
    pub fn checkpoint_before(
        &self,
        segment: u32,
        keep: &dyn Fn(SeriesRef) -> bool,
        min_t: i64,
    ) -> Result<Option<CheckpointStats>> {
        let _checkpointing = self.checkpoint_lock.lock();
        let last_segment = {
            let mut writer = self.writer.lock();
            writer.write_pending(&[])?;
            let current = writer.segment.index;
            if segment > current {
                writer.segment.rotate()?;
                current
            } else if segment == 0 {
                return Ok(None);
            } else {
                segment - 1
            }
        };
        if list_checkpoints(&self.dir)?
            .last()
            .is_some_and(|(index, _)| *index >= last_segment)
        {
            return Ok(None);
        }

        let previous = list_checkpoints(&self.dir)?.pop();
        let final_dir = self.dir.join(checkpoint_name(last_segment));
        let tmp_dir = self
            .dir
            .join(format!("{}{TMP_SUFFIX}", checkpoint_name(last_segment)));
        if tmp_dir.exists() {
            fs::remove_dir_all(&tmp_dir).map_err(|e| io_error(&tmp_dir, e))?;
        }
        fs::create_dir(&tmp_dir).map_err(|e| io_error(&tmp_dir, e))?;

        let mut sources = Vec::new();
        if let Some((_, path)) = &previous {
            sources.extend(segment::list_segments(path)?);
        }
        let covered: Vec<(u32, PathBuf)> = segment::list_segments(&self.dir)?
            .into_iter()
            .filter(|(index, _)| *index <= last_segment)
            .collect();
        sources.extend(covered.iter().cloned());

        let mut out = SegmentWriter::create(&tmp_dir, 0, self.options.segment_size)?;
        let mut stats = CheckpointStats {
            last_segment,
            ..CheckpointStats::default()
        };
        let mut frames = Vec::new();
        let mut write_error = None;
        for (_, path) in &sources {
            let mut on_record = |rec: Record| {
                if write_error.is_some() {
                    return;
                }
                match rec {
                    Record::Series(mut series) => {
                        let before = series.len();
                        series.retain(|s| keep(s.series_ref));
                        stats.series_kept += series.len() as u64;
                        stats.series_dropped += (before - series.len()) as u64;
                        if !series.is_empty() {
                            record::encode_series(&series, &mut frames);
                        }
                    }
                    Record::Samples(mut samples) => {
                        let before = samples.len();
                        samples.retain(|s| s.t >= min_t && keep(s.series_ref));
                        stats.samples_kept += samples.len() as u64;
                        stats.samples_dropped += (before - samples.len()) as u64;
                        if !samples.is_empty() {
                            record::encode_samples(&samples, &mut frames);
                        }
                    }
                    Record::Tombstones(mut stones) => {
                        // Kept in place among the samples: replay applies a
                        // tombstone to the samples before it only.
                        stones.retain(|s| s.max_t >= min_t && keep(s.series_ref));
                        if !stones.is_empty() {
                            record::encode_tombstones(&stones, &mut frames);
                        }
                    }
                }
                if frames.len() > 1 << 20 {
                    if let Err(e) = out.write_frames(&frames) {
                        write_error = Some(e);
                    }
                    frames.clear();
                }
            };
            if let Some(damage) = segment::read_segment(path, &mut on_record)? {
                tracing::warn!(
                    segment = %path.display(),
                    offset = damage.offset,
                    reason = %damage.reason,
                    "Damaged WAL segment while checkpointing; keeping the records before the damage"
                );
            }
            if let Some(e) = write_error.take() {
                return Err(e);
            }
        }
        out.write_frames(&frames)?;
        out.sync()?;
        drop(out);
        segment::sync_dir(&tmp_dir)?;
        fs::rename(&tmp_dir, &final_dir).map_err(|e| io_error(&final_dir, e))?;
        segment::sync_dir(&self.dir)?;

        // The checkpoint is durable; what it replaces can go.
        for (_, path) in &covered {
            fs::remove_file(path).map_err(|e| io_error(path, e))?;
        }
        if let Some((_, path)) = previous {
            fs::remove_dir_all(&path).map_err(|e| io_error(&path, e))?;
        }
        Ok(Some(stats))
    }

    /// Bytes the log occupies on disk, checkpoint included.
    ///
    /// # Errors
    /// IO errors while listing the directory.
    pub fn disk_size(&self) -> Result<u64> {
        dir_size(&self.dir)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Best effort: a clean shutdown calls `sync` and sees its errors.
        let writer = self.writer.get_mut();
        if let Err(e) = writer.write_pending(&[]) {
            tracing::error!(error = %e, "Failed to write the WAL buffer on close");
        }
    }
}

struct Writer {
    segment: SegmentWriter,
    /// Encoded series records not yet written to the segment. They stay
    /// here until a write containing them succeeds: the head keeps a series
    /// whose record was lost to a failed write (a full disk), and its later
    /// samples would not replay without it. A series record written twice
    /// replays as one series.
    pending_series: Vec<u8>,
    /// Series entries not yet framed: the head logs series one by one as
    /// it creates them, and one record (compressed) for a scrape's new
    /// series costs a fraction of one record per series.
    series_payload: Vec<u8>,
    last_sync: Instant,
    /// A write failed part-way; the segment may end in a torn record, which
    /// the next write cuts off first (or, failing that, starts a new
    /// segment).
    broken: bool,
}

impl Writer {
    /// Writes the buffered series records followed by `samples` (encoded
    /// sample records). On failure the samples are dropped (their commit
    /// fails) and the series records stay buffered for the next write.
    fn write_pending(&mut self, samples: &[u8]) -> Result<()> {
        self.frame_series();
        if self.pending_series.is_empty() && samples.is_empty() {
            return Ok(());
        }
        self.write_frames(samples)?;
        self.pending_series.clear();
        Ok(())
    }

    /// Moves the unframed series entries into a record of their own.
    fn frame_series(&mut self) {
        if !self.series_payload.is_empty() {
            record::frame(
                record::TYPE_SERIES,
                &self.series_payload,
                &mut self.pending_series,
            );
            self.series_payload.clear();
        }
    }

    fn write_frames(&mut self, samples: &[u8]) -> Result<()> {
        if self.broken {
            if let Err(e) = self.segment.cut_torn_tail() {
                tracing::warn!(error = %e, "Cannot cut the torn WAL record; starting a new segment");
                self.segment.rotate()?;
            }
            self.broken = false;
        }
        let result = if self.pending_series.is_empty() {
            self.segment.write_frames(samples)
        } else if samples.is_empty() {
            self.segment.write_frames(&self.pending_series)
        } else {
            let mut frames = Vec::with_capacity(self.pending_series.len() + samples.len());
            frames.extend_from_slice(&self.pending_series);
            frames.extend_from_slice(samples);
            self.segment.write_frames(&frames)
        };
        if result.is_err() {
            self.broken = true;
        }
        result
    }
}

/// Writes frames into numbered segment files, starting a new one when the
/// next frame would not fit.
struct SegmentWriter {
    dir: PathBuf,
    file: Arc<File>,
    index: u32,
    len: u64,
    max_len: u64,
}

impl SegmentWriter {
    fn create(dir: &Path, index: u32, max_len: u64) -> Result<SegmentWriter> {
        let file = segment::create_segment(dir, index)?;
        Ok(SegmentWriter {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            index,
            len: HEADER_LEN,
            max_len,
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(segment::segment_name(self.index))
    }

    /// Writes whole frames; a run of frames that fits goes out in one
    /// `write`.
    fn write_frames(&mut self, frames: &[u8]) -> Result<()> {
        let mut rest = frames;
        while !rest.is_empty() {
            let mut run = 0;
            while let Some(len) = record::frame_len(&rest[run..]) {
                let fits = self.len + (run + len) as u64 <= self.max_len;
                // An empty segment takes a frame of any size.
                if !fits && (run > 0 || self.len > HEADER_LEN) {
                    break;
                }
                run += len;
            }
            if run == 0 {
                if record::frame_len(rest).is_none() {
                    // Only encoders fill this buffer, and they write whole
                    // frames; a partial one is a bug, not a reason to
                    // corrupt the log.
                    debug_assert!(false, "partial WAL frame in write buffer");
                    return Ok(());
                }
                self.rotate()?;
                continue;
            }
            let path = self.path();
            (&*self.file)
                .write_all(&rest[..run])
                .map_err(|e| io_error(&path, e))?;
            self.len += run as u64;
            rest = &rest[run..];
        }
        Ok(())
    }

    /// Truncates the segment to the records written whole, removing what a
    /// failed write left behind, and continues writing there.
    fn cut_torn_tail(&mut self) -> Result<()> {
        let path = self.path();
        self.file
            .set_len(self.len)
            .and_then(|()| (&*self.file).seek(SeekFrom::Start(self.len)))
            .map(|_| ())
            .map_err(|e| io_error(&path, e))
    }

    fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| io_error(&self.path(), e))
    }

    /// Syncs the current segment and starts the next.
    fn rotate(&mut self) -> Result<()> {
        self.sync()?;
        let index = next_index(&self.dir, self.index)?;
        *self = SegmentWriter::create(&self.dir, index, self.max_len)?;
        Ok(())
    }
}

fn next_index(dir: &Path, index: u32) -> Result<u32> {
    index.checked_add(1).ok_or_else(|| Error::Corrupted {
        path: dir.to_path_buf(),
        offset: 0,
        reason: "WAL segment numbers exhausted".to_string(),
    })
}

fn checkpoint_name(last_segment: u32) -> String {
    format!("{CHECKPOINT_PREFIX}{}", segment::segment_name(last_segment))
}

/// Completed checkpoints in `dir`, sorted by the last segment they cover.
fn list_checkpoints(dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let mut checkpoints = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix(CHECKPOINT_PREFIX))
            .and_then(segment::parse_segment_name)
        else {
            continue;
        };
        checkpoints.push((index, entry.path()));
    }
    checkpoints.sort_unstable_by_key(|(index, _)| *index);
    Ok(checkpoints)
}

/// Removes checkpoints a crash interrupted before they were complete.
fn remove_tmp_checkpoints(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let is_tmp = name
            .to_str()
            .is_some_and(|n| n.starts_with(CHECKPOINT_PREFIX) && n.ends_with(TMP_SUFFIX));
        if is_tmp {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(|e| io_error(&path, e))?;
        }
    }
    Ok(())
}

/// Cuts a damaged segment back to its last good record. A damaged header
/// is rewritten, so the segment numbering stays contiguous.
fn repair_segment(path: &Path, good_len: u64) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    if good_len < HEADER_LEN {
        file.set_len(0).map_err(|e| io_error(path, e))?;
        file.write_all(&segment::header())
            .map_err(|e| io_error(path, e))?;
    } else {
        file.set_len(good_len).map_err(|e| io_error(path, e))?;
    }
    file.sync_all().map_err(|e| io_error(path, e))
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let path = entry.path();
        let metadata = entry.metadata().map_err(|e| io_error(&path, e))?;
        total += if metadata.is_dir() {
            dir_size(&path)?
        } else {
            metadata.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
