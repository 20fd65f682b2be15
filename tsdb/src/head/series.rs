//! One series in the head: its labels and chunks (closed ones as shared
//! bytes, plus the open chunk being appended to), and the sample iterator
//! queriers hand out over them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering, fence};

use parking_lot::Mutex;

use crate::chunk::{CutRules, Encoding, OwnedChunkIter, XorChunk};
use crate::model::{Labels, Sample, SeriesRef};
use crate::storage::SampleIterator;

pub(crate) struct MemSeries {
    /// The series' reference in the WAL: never reused, stable across
    /// restarts (replay recreates it).
    pub(crate) wal_ref: SeriesRef,
    /// What appends return: its position in the head's series table (see
    /// [`super::table`]).
    pub(crate) handle: SeriesRef,
    /// Interned labels.
    pub(crate) labels: Labels,
    /// Position in the head index's postings.
    pub(crate) slot: u32,
    /// Set (under the head's truncation lock) when the series is dropped
    /// from the head; appenders holding it then look the labels up again.
    removed: AtomicBool,
    /// The newest sample, readable without the lock (appends check against
    /// it); written only under the lock.
    last: LastSample,
    state: Mutex<SeriesState>,
}

#[derive(Default)]
struct SeriesState {
    /// Full chunks, oldest first.
    closed: Vec<ClosedChunk>,
    /// The chunk being appended to; `None` until the first sample.
    open: Option<XorChunk>,
    /// End of the open chunk as the cutting rules predict it.
    next_cut_t: i64,
}

/// Timestamp and value bits of a series' newest sample behind a sequence
/// lock: one writer at a time (the series lock serializes them), readers
/// never block and retry if a write overlapped their read.
#[derive(Default)]
struct LastSample {
    /// 0: no sample; odd: a write is in progress; else even.
    seq: AtomicU64,
    t: AtomicI64,
    bits: AtomicU64,
}

impl LastSample {
    fn read(&self) -> Option<(i64, u64)> {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let t = self.t.load(Ordering::Relaxed);
            let bits = self.bits.load(Ordering::Relaxed);
            // Orders the data loads before the second sequence load.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return Some((t, bits));
            }
        }
    }

    /// Only under the series lock.
    fn write(&self, t: i64, bits: u64) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq | 1, Ordering::Relaxed);
        // Orders the odd sequence store before the data stores.
        fence(Ordering::Release);
        self.t.store(t, Ordering::Relaxed);
        self.bits.store(bits, Ordering::Relaxed);
        self.seq.store((seq | 1) + 1, Ordering::Release);
    }

    /// Only under the series lock.
    fn clear(&self) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.seq.store(0, Ordering::Release);
    }
}

struct ClosedChunk {
    min_t: i64,
    max_t: i64,
    bytes: Arc<[u8]>,
}

/// A snapshot of one head chunk: encoded bytes as
/// [`XorChunk::bytes`](crate::chunk::XorChunk::bytes) returns them.
#[derive(Debug, Clone)]
pub struct HeadChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub bytes: Arc<[u8]>,
}

impl HeadChunk {
    /// Iterates the chunk's samples.
    pub fn iter(&self) -> OwnedChunkIter {
        self.clone().into_iter()
    }
}

impl IntoIterator for HeadChunk {
    type Item = Sample;
    type IntoIter = OwnedChunkIter;

    fn into_iter(self) -> OwnedChunkIter {
        // The head encoded these bytes itself.
        OwnedChunkIter::new_trusted(self.bytes, Encoding::CURRENT, self.min_t)
    }
}

/// Whether a sample can be appended to a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Appendability {
    Append,
    /// The same timestamp and value bits as the newest sample: a no-op, as
    /// in Prometheus.
    Duplicate,
    OutOfOrder {
        last_t: i64,
    },
    /// The same timestamp as the newest sample with other value bits.
    ConflictingValue {
        stored: f64,
    },
}

/// Checks a sample against the newest sample `last` (time, value bits).
pub(crate) fn appendability(last: Option<(i64, u64)>, sample: Sample) -> Appendability {
    match last {
        None => Appendability::Append,
        Some((last_t, _)) if sample.t < last_t => Appendability::OutOfOrder { last_t },
        Some((last_t, bits)) if sample.t == last_t => {
            if bits == sample.v.to_bits() {
                Appendability::Duplicate
            } else {
                Appendability::ConflictingValue {
                    stored: f64::from_bits(bits),
                }
            }
        }
        Some(_) => Appendability::Append,
    }
}

impl MemSeries {
    pub(crate) fn new(wal_ref: SeriesRef, handle: SeriesRef, labels: Labels, slot: u32) -> Self {
        MemSeries {
            wal_ref,
            handle,
            labels,
            slot,
            removed: AtomicBool::new(false),
            last: LastSample::default(),
            state: Mutex::new(SeriesState::default()),
        }
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    /// Timestamp and value bits of the newest sample. Takes no lock.
    pub(crate) fn last(&self) -> Option<(i64, u64)> {
        self.last.read()
    }

    /// Appends a sample if it is newer than the newest one; returns whether
    /// it did.
    pub(crate) fn append(&self, sample: Sample, rules: &CutRules) -> bool {
        let mut state = self.state.lock();
        if appendability(self.last.read(), sample) != Appendability::Append {
            return false;
        }
        self.append_locked(&mut state, sample, rules);
        true
    }

    fn append_locked(&self, state: &mut SeriesState, sample: Sample, rules: &CutRules) {
        let must_cut = match &state.open {
            Some(chunk) => rules.must_cut(chunk, &mut state.next_cut_t, sample.t),
            None => true,
        };
        if must_cut {
            let next = match state.open.take() {
                Some(full) => {
                    state.closed.push(ClosedChunk {
                        min_t: full.min_t(),
                        max_t: full.max_t(),
                        bytes: Arc::from(full.bytes()),
                    });
                    // The next chunk starts with what this one learned about
                    // the series (interval, jitter, value steps).
                    XorChunk::after(&full)
                }
                None => XorChunk::new(),
            };
            state.open = Some(next);
            state.next_cut_t = rules.range_end(sample.t);
        }
        let chunk = state.open.get_or_insert_with(XorChunk::new);
        chunk.append(sample.t, sample.v);
        self.last.write(sample.t, sample.v.to_bits());
    }

    /// Oldest and newest sample time, `None` when the series is empty.
    pub(crate) fn time_range(&self) -> Option<(i64, i64)> {
        let state = self.state.lock();
        let min_t = state
            .closed
            .first()
            .map(|c| c.min_t)
            .or_else(|| state.open.as_ref().map(XorChunk::min_t))?;
        let max_t = state
            .open
            .as_ref()
            .map(XorChunk::max_t)
            .or_else(|| state.closed.last().map(|c| c.max_t))?;
        Some((min_t, max_t))
    }

    /// Removes the samples in `[min_t, max_t]` by re-encoding the chunks
    /// without them (deletions are rare; masking every read would cost
    /// more). Returns the oldest sample time left, `None` when the series is
    /// now empty.
    pub(crate) fn delete(&self, min_t: i64, max_t: i64, rules: &CutRules) -> Option<i64> {
        let mut state = self.state.lock();
        let kept: Vec<Sample> = state
            .closed
            .iter()
            .flat_map(|c| {
                OwnedChunkIter::new_trusted(Arc::clone(&c.bytes), Encoding::CURRENT, c.min_t)
            })
            .chain(state.open.iter().flat_map(XorChunk::to_owned_iter))
            .filter(|s| s.t < min_t || s.t > max_t)
            .collect();
        *state = SeriesState::default();
        self.last.clear();
        for sample in &kept {
            self.append_locked(&mut state, *sample, rules);
        }
        kept.first().map(|s| s.t)
    }

    /// Drops the chunks that end before `min_t`. Returns the time of the
    /// oldest sample left, or `None` when the series is now empty.
    pub(crate) fn truncate(&self, min_t: i64) -> Option<i64> {
        let mut state = self.state.lock();
        state.closed.retain(|c| c.max_t >= min_t);
        if state.open.as_ref().is_some_and(|c| c.max_t() < min_t) {
            state.open = None;
        }
        if state.closed.is_empty() && state.open.is_none() {
            self.last.clear();
            return None;
        }
        state.closed.shrink_to_fit();
        state
            .closed
            .first()
            .map(|c| c.min_t)
            .or_else(|| state.open.as_ref().map(XorChunk::min_t))
    }

    /// The chunks that overlap `[start, end]`, oldest first. Closed chunks
    /// are shared; the open chunk is copied.
    pub(crate) fn chunks_in(&self, start: i64, end: i64) -> Vec<HeadChunk> {
        let state = self.state.lock();
        let mut out = Vec::new();
        for chunk in &state.closed {
            if chunk.max_t >= start && chunk.min_t <= end {
                out.push(HeadChunk {
                    min_t: chunk.min_t,
                    max_t: chunk.max_t,
                    bytes: Arc::clone(&chunk.bytes),
                });
            }
        }
        if let Some(chunk) = &state.open
            && chunk.max_t() >= start
            && chunk.min_t() <= end
        {
            out.push(HeadChunk {
                min_t: chunk.min_t(),
                max_t: chunk.max_t(),
                bytes: Arc::from(chunk.bytes()),
            });
        }
        out
    }

    /// An iterator over the chunks that overlap `[start, end]`, `None` when
    /// there are none. As [`MemSeries::chunks_in`], without a vector for the
    /// common case of one chunk (an instant query's window at the end).
    pub(crate) fn iter_in(&self, start: i64, end: i64) -> Option<ChunkSeriesIterator> {
        let state = self.state.lock();
        let mut newest = state
            .open
            .as_ref()
            .filter(|c| c.max_t() >= start && c.min_t() <= end)
            .map(|c| HeadChunk {
                min_t: c.min_t(),
                max_t: c.max_t(),
                bytes: Arc::from(c.bytes()),
            });
        // Newest first, so that the vector is in popping order.
        let mut older = Vec::new();
        for chunk in state.closed.iter().rev() {
            if chunk.max_t < start {
                break;
            }
            if chunk.min_t > end {
                continue;
            }
            let chunk = HeadChunk {
                min_t: chunk.min_t,
                max_t: chunk.max_t,
                bytes: Arc::clone(&chunk.bytes),
            };
            if newest.is_none() {
                newest = Some(chunk);
            } else {
                older.push(chunk);
            }
        }
        drop(state);
        newest.map(|newest| ChunkSeriesIterator {
            chunks: older,
            newest: Some(newest),
            current: None,
            start,
            end,
        })
    }

    /// Does the series hold a sample in `[start, end]`'s chunks?
    pub(crate) fn overlaps(&self, start: i64, end: i64) -> bool {
        let state = self.state.lock();
        state
            .closed
            .iter()
            .any(|c| c.max_t >= start && c.min_t <= end)
            || state
                .open
                .as_ref()
                .is_some_and(|c| c.max_t() >= start && c.min_t() <= end)
    }

    /// Encoded bytes held in chunks and chunk count.
    pub(crate) fn chunk_bytes(&self) -> (usize, usize) {
        let state = self.state.lock();
        let closed: usize = state.closed.iter().map(|c| c.bytes.len()).sum();
        let open = state.open.as_ref().map_or(0, |c| c.bytes().len());
        (
            closed + open,
            state.closed.len() + usize::from(state.open.is_some()),
        )
    }
}

/// Samples of consecutive, non-overlapping chunks within `[start, end]`.
pub struct ChunkSeriesIterator {
    /// Remaining chunks but the newest, in reverse order (popped from the
    /// back).
    chunks: Vec<HeadChunk>,
    /// The newest chunk, read last.
    newest: Option<HeadChunk>,
    /// The chunk being read, with its last timestamp.
    current: Option<(i64, OwnedChunkIter)>,
    start: i64,
    end: i64,
}

impl ChunkSeriesIterator {
    /// `chunks` are in time order and do not overlap.
    pub fn new(mut chunks: Vec<HeadChunk>, start: i64, end: i64) -> Self {
        let newest = chunks.pop();
        chunks.reverse();
        ChunkSeriesIterator {
            chunks,
            newest,
            current: None,
            start,
            end,
        }
    }

    /// Drops every chunk: nothing later is in range.
    fn finish(&mut self) {
        self.chunks.clear();
        self.newest = None;
        self.current = None;
    }

    /// The oldest chunk not read yet.
    fn pop_chunk(&mut self) -> Option<HeadChunk> {
        self.chunks.pop().or_else(|| self.newest.take())
    }

    fn peek_chunk(&self) -> Option<&HeadChunk> {
        self.chunks.last().or(self.newest.as_ref())
    }
}

impl SampleIterator for ChunkSeriesIterator {
    fn next(&mut self) -> Option<Sample> {
        loop {
            if let Some((_, chunk)) = &mut self.current {
                match Iterator::next(chunk) {
                    Some(s) if s.t < self.start => continue,
                    Some(s) if s.t > self.end => {
                        self.finish();
                        return None;
                    }
                    Some(s) => return Some(s),
                    None => self.current = None,
                }
            }
            let chunk = self.pop_chunk()?;
            self.current = Some((chunk.max_t, chunk.into_iter()));
        }
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        // Chunks that end before `t` are skipped without decoding.
        if self.current.as_ref().is_some_and(|(max_t, _)| *max_t < t) {
            self.current = None;
        }
        if self.current.is_none() {
            while self.peek_chunk().is_some_and(|c| c.max_t < t) {
                self.pop_chunk();
            }
        }
        loop {
            let sample = self.next()?;
            if sample.t >= t {
                return Some(sample);
            }
        }
    }

    /// Decodes each chunk in one go into `out`; chunks before `start` are
    /// not decoded at all. The head keeps no start timestamps.
    fn load_range(
        &mut self,
        start: i64,
        end: i64,
        out: &mut Vec<Sample>,
        _start_timestamps: &mut Vec<i64>,
    ) {
        let (start, end) = (start.max(self.start), end.min(self.end));
        if let Some((_, mut chunk)) = self.current.take()
            && chunk.load_range(start, end, out)
        {
            self.finish();
            return;
        }
        while let Some(chunk) = self.pop_chunk() {
            if chunk.max_t < start {
                continue;
            }
            if chunk.min_t > end || chunk.into_iter().load_range(start, end, out) {
                self.finish();
                return;
            }
        }
    }
}

/// A [`SampleIterator`] with no samples.
pub(crate) struct EmptyIterator;

impl SampleIterator for EmptyIterator {
    fn next(&mut self) -> Option<Sample> {
        None
    }
}
