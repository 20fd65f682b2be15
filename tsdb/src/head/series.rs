//! One series in the head: its labels and chunks (closed ones as shared
//! bytes, plus the open chunk being appended to), and the sample iterator
//! queriers hand out over them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::chunk::{CutRules, OwnedChunkIter, XorChunk};
use crate::model::{Labels, Sample, SeriesRef};
use crate::storage::SampleIterator;

pub(crate) struct MemSeries {
    pub(crate) series_ref: SeriesRef,
    /// Interned labels.
    pub(crate) labels: Labels,
    /// Position in the head index's postings.
    pub(crate) slot: u32,
    /// Set (under the head's truncation lock) when the series is dropped
    /// from the head; appenders holding it then look the labels up again.
    removed: AtomicBool,
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
    /// Timestamp and value bits of the newest sample.
    last: Option<(i64, u64)>,
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
        // The head encoded these bytes itself.
        OwnedChunkIter::new_trusted(Arc::clone(&self.bytes))
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
    pub(crate) fn new(series_ref: SeriesRef, labels: Labels, slot: u32) -> Self {
        MemSeries {
            series_ref,
            labels,
            slot,
            removed: AtomicBool::new(false),
            state: Mutex::new(SeriesState::default()),
        }
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    /// Timestamp and value bits of the newest sample.
    pub(crate) fn last(&self) -> Option<(i64, u64)> {
        self.state.lock().last
    }

    /// Appends a sample if it is newer than the newest one; returns whether
    /// it did.
    pub(crate) fn append(&self, sample: Sample, rules: &CutRules) -> bool {
        let mut state = self.state.lock();
        if appendability(state.last, sample) != Appendability::Append {
            return false;
        }
        let state = &mut *state;
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
        state.last = Some((sample.t, sample.v.to_bits()));
        true
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
            state.last = None;
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
    /// Remaining chunks in reverse order (popped from the back), each with
    /// its last timestamp.
    chunks: Vec<(i64, OwnedChunkIter)>,
    current: Option<(i64, OwnedChunkIter)>,
    start: i64,
    end: i64,
}

impl ChunkSeriesIterator {
    /// `chunks` are in time order and do not overlap.
    pub fn new(chunks: Vec<HeadChunk>, start: i64, end: i64) -> Self {
        let chunks = chunks.iter().rev().map(|c| (c.max_t, c.iter())).collect();
        ChunkSeriesIterator {
            chunks,
            current: None,
            start,
            end,
        }
    }
}

impl SampleIterator for ChunkSeriesIterator {
    fn next(&mut self) -> Option<Sample> {
        loop {
            if let Some((_, chunk)) = &mut self.current {
                match Iterator::next(chunk) {
                    Some(s) if s.t < self.start => continue,
                    Some(s) if s.t > self.end => {
                        self.chunks.clear();
                        self.current = None;
                        return None;
                    }
                    Some(s) => return Some(s),
                    None => self.current = None,
                }
            }
            self.current = Some(self.chunks.pop()?);
        }
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        // Chunks that end before `t` are skipped without decoding.
        if self.current.as_ref().is_some_and(|(max_t, _)| *max_t < t) {
            self.current = None;
        }
        if self.current.is_none() {
            while self.chunks.last().is_some_and(|(max_t, _)| *max_t < t) {
                self.chunks.pop();
            }
        }
        loop {
            let sample = self.next()?;
            if sample.t >= t {
                return Some(sample);
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
