//! Compaction: which blocks to merge (Prometheus's leveled planner over
//! exponential ranges 2 h, 6 h, 18 h, ...), and the merge itself.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::Arc;

use crate::Result;
use crate::block::{
    Block, BlockId, BlockMeta, BlockSamples, BlockWriter, CompactionInfo, Tombstones,
};
use crate::index::IndexSeries;
use crate::model::{Labels, Sample, TimeRange};
use crate::storage::SampleIterator;

/// Width of level-1 blocks and of the head's chunk range: 2 h.
pub const DEFAULT_BLOCK_DURATION_MS: i64 = 2 * 60 * 60 * 1000;
/// Upper bound of the maximum block duration: 31 days.
pub const MAX_BLOCK_DURATION_CAP_MS: i64 = 31 * 24 * 60 * 60 * 1000;

/// `steps` ranges starting at `min_size`, each `step_size` times the last
/// (Prometheus's `ExponentialBlockRanges`).
pub fn exponential_block_ranges(min_size: i64, steps: usize, step_size: i64) -> Vec<i64> {
    let mut ranges = Vec::with_capacity(steps);
    let mut current = min_size;
    for _ in 0..steps {
        ranges.push(current);
        current = current.saturating_mul(step_size);
    }
    ranges
}

/// The ranges blocks are compacted into, as Prometheus configures them:
/// 2 h × 3^i for ten steps, dropping ranges longer than the maximum block
/// duration, which is 31 days or 10 % of the time retention if smaller
/// (`retention_ms` of `None` or 0 means no time retention).
pub fn compaction_ranges(retention_ms: Option<i64>) -> Vec<i64> {
    let mut max_block = MAX_BLOCK_DURATION_CAP_MS;
    if let Some(retention) = retention_ms.filter(|r| *r > 0) {
        max_block = max_block.min(retention / 10);
    }
    let mut ranges = exponential_block_ranges(DEFAULT_BLOCK_DURATION_MS, 10, 3);
    if let Some(cut) = ranges.iter().position(|r| *r > max_block) {
        ranges.truncate(cut);
    }
    ranges
}

/// The blocks to merge next, or nothing, following Prometheus's
/// `LeveledCompactor.Plan`: first any group of time-overlapping blocks;
/// otherwise, leaving out the newest block, the first group of adjacent
/// blocks that fills (or lies entirely before the newest block within) one
/// aligned range of `ranges[1..]`, trying the smaller ranges first.
pub fn plan_compaction(metas: &[BlockMeta], ranges: &[i64]) -> Vec<BlockId> {
    let mut sorted: Vec<&BlockMeta> = metas.iter().collect();
    sorted.sort_by_key(|m| (m.min_time, m.ulid));
    let overlapping = overlapping_blocks(&sorted);
    if !overlapping.is_empty() {
        return overlapping;
    }
    // The newest block (the one most recently cut from the head) stays out,
    // which gives a window of one block to back it up before it is merged.
    let Some((_, older)) = sorted.split_last() else {
        return Vec::new();
    };
    select_range(older, ranges)
}

/// The first run of blocks overlapping in time (sorted by min time).
fn overlapping_blocks(sorted: &[&BlockMeta]) -> Vec<BlockId> {
    let mut out = Vec::new();
    let Some(first) = sorted.first() else {
        return out;
    };
    let mut global_max = first.max_time;
    for pair in sorted.windows(2) {
        let (prev, block) = (pair[0], pair[1]);
        if block.min_time < global_max {
            if out.is_empty() {
                out.push(prev.ulid);
            }
            out.push(block.ulid);
        } else if !out.is_empty() {
            break;
        }
        global_max = global_max.max(block.max_time);
    }
    out
}

fn select_range(sorted: &[&BlockMeta], ranges: &[i64]) -> Vec<BlockId> {
    let Some(newest) = sorted.last() else {
        return Vec::new();
    };
    if ranges.len() < 2 {
        return Vec::new();
    }
    let high_time = newest.min_time;
    for &range in &ranges[1..] {
        for group in split_by_range(sorted, range) {
            let (Some(first), Some(last)) = (group.first(), group.last()) else {
                continue;
            };
            let (min_t, max_t) = (first.min_time, last.max_time);
            // Merge when the group spans the whole range, or lies before the
            // most recent remaining block (so no block of the same size
            // can still arrive for it).
            if group.len() > 1 && (max_t - min_t == range || max_t <= high_time) {
                return group.iter().map(|m| m.ulid).collect();
            }
        }
    }
    Vec::new()
}

/// Groups blocks by the aligned range of width `range` they fall into;
/// blocks wider than their aligned range are skipped.
fn split_by_range<'a>(sorted: &[&'a BlockMeta], range: i64) -> Vec<Vec<&'a BlockMeta>> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let t0 = sorted[i].min_time.div_euclid(range) * range;
        if sorted[i].max_time > t0 + range {
            i += 1;
            continue;
        }
        let mut group = Vec::new();
        while i < sorted.len() && sorted[i].max_time <= t0 + range {
            group.push(sorted[i]);
            i += 1;
        }
        if !group.is_empty() {
            groups.push(group);
        }
    }
    groups
}

/// Merges `blocks` into one new block `id` in `data_dir` and returns its
/// meta (`None` when the blocks hold no series). The new block spans all
/// inputs, its level is one more than the highest input level, its sources
/// are the union of theirs.
///
/// Series present in several blocks are merged: their samples are
/// re-encoded into chunks as [`BlockWriter`] writes them (which also
/// upgrades chunks of older encodings), and samples with the same timestamp
/// are kept once (the one from the block with the lowest min time).
///
/// The caller deletes the input blocks after the new one is visible;
/// a crash in between leaves overlapping blocks, which the planner merges
/// again.
///
/// # Errors
/// [`crate::Error::Corrupted`] for damaged input blocks, [`crate::Error::Io`].
pub fn compact(data_dir: &Path, blocks: &[Block], id: BlockId) -> Result<Option<BlockMeta>> {
    let mut blocks: Vec<&Block> = blocks.iter().collect();
    blocks.sort_by_key(|b| (b.meta().min_time, b.id()));
    let (Some(min_time), Some(max_time)) = (
        blocks.iter().map(|b| b.meta().min_time).min(),
        blocks.iter().map(|b| b.meta().max_time).max(),
    ) else {
        return Ok(None);
    };
    let mut writer = BlockWriter::new(data_dir, id, min_time, max_time)?;
    let mut sources: Vec<BlockId> = blocks
        .iter()
        .flat_map(|b| b.meta().compaction.sources.iter().copied())
        .collect();
    sources.sort_unstable();
    sources.dedup();
    writer.set_compaction(CompactionInfo {
        level: blocks
            .iter()
            .map(|b| b.meta().compaction.level)
            .max()
            .unwrap_or(0)
            + 1,
        sources,
        parents: blocks.iter().map(|b| b.id()).collect(),
    });

    // K-way merge of the blocks' series, which each block holds in label
    // order: (labels, block position, series id).
    // Deleted samples are left out of the merged block.
    let tombstones: Vec<Arc<Tombstones>> = blocks.iter().map(|b| b.tombstones()).collect();
    let mut heap: BinaryHeap<Reverse<(Labels, usize, u32)>> = BinaryHeap::new();
    let mut pending: Vec<Option<IndexSeries>> = vec![None; blocks.len()];
    for (b, block) in blocks.iter().enumerate() {
        if block.index().num_series() > 0 {
            let entry = block.index().series(0)?;
            heap.push(Reverse((entry.labels.clone(), b, 0)));
            pending[b] = Some(entry);
        }
    }
    while let Some(Reverse((labels, b, series_id))) = heap.pop() {
        let mut parts: Vec<(usize, u32, IndexSeries)> = Vec::new();
        let mut advance = vec![(b, series_id)];
        while let Some(Reverse((next_labels, _, _))) = heap.peek() {
            if *next_labels != labels {
                break;
            }
            if let Some(Reverse((_, nb, nid))) = heap.pop() {
                advance.push((nb, nid));
            }
        }
        for (b, series_id) in advance {
            if let Some(entry) = pending[b].take() {
                parts.push((b, series_id, entry));
            }
            let next = series_id + 1;
            if next < blocks[b].index().num_series() {
                let entry = blocks[b].index().series(next)?;
                heap.push(Reverse((entry.labels.clone(), b, next)));
                pending[b] = Some(entry);
            }
        }
        parts.sort_by_key(|(b, _, _)| *b);
        write_merged_series(&mut writer, &blocks, &tombstones, &labels, &parts)?;
    }
    writer.finish()
}

fn write_merged_series(
    writer: &mut BlockWriter,
    blocks: &[&Block],
    tombstones: &[Arc<Tombstones>],
    labels: &Labels,
    parts: &[(usize, u32, IndexSeries)],
) -> Result<()> {
    // The writer merges and re-encodes chunks anyway (up to
    // BLOCK_CHUNK_SAMPLES, densely, in the current encoding), so every
    // series goes through its samples: that also drops deleted samples and
    // upgrades chunks of older encodings.
    let mut iters = Vec::with_capacity(parts.len());
    for (b, id, entry) in parts {
        let live = blocks[*b].live_samples(*id, entry, TimeRange::all(), &tombstones[*b])?;
        iters.extend(live);
    }
    writer.add_series_samples(labels, MergedSamples::new(iters))
}

/// Merges sample iterators by timestamp; of samples with equal timestamps
/// only the one from the earliest iterator is kept.
struct MergedSamples {
    iters: Vec<BlockSamples>,
    heads: Vec<Option<Sample>>,
}

impl MergedSamples {
    fn new(mut iters: Vec<BlockSamples>) -> Self {
        let heads = iters.iter_mut().map(SampleIterator::next).collect();
        MergedSamples { iters, heads }
    }
}

impl Iterator for MergedSamples {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        // Few iterators: a linear scan beats a heap.
        let (pick, sample) = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.map(|s| (i, s)))
            .min_by_key(|(i, s)| (s.t, *i))?;
        for (i, head) in self.heads.iter_mut().enumerate() {
            if head.is_some_and(|s| s.t == sample.t) {
                *head = self.iters[i].next();
            }
        }
        debug_assert!(pick < self.iters.len());
        Some(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockCompaction, BlockStats};

    const H: i64 = 60 * 60 * 1000;

    fn meta(n: u128, min_time: i64, max_time: i64) -> BlockMeta {
        BlockMeta {
            ulid: BlockId::from_parts(0, n),
            min_time,
            max_time,
            stats: BlockStats::default(),
            compaction: BlockCompaction {
                level: 1,
                sources: vec![],
                parents: vec![],
            },
            version: 1,
        }
    }

    fn ids(ns: &[u128]) -> Vec<BlockId> {
        ns.iter().map(|n| BlockId::from_parts(0, *n)).collect()
    }

    #[test]
    fn ranges_grow_by_three_and_respect_retention() {
        let ranges = compaction_ranges(None);
        assert_eq!(ranges[..4], [2 * H, 6 * H, 18 * H, 54 * H]);
        assert!(ranges.iter().all(|r| *r <= MAX_BLOCK_DURATION_CAP_MS));
        assert_eq!(ranges.len(), 6); // up to 486 h (20.25 d); 1458 h > 31 d
        // 15 d retention: max block 36 h.
        assert_eq!(
            compaction_ranges(Some(15 * 24 * H)),
            vec![2 * H, 6 * H, 18 * H]
        );
    }

    // The cases of Prometheus's `TestLeveledCompactor_plan`.
    #[test]
    fn planner_follows_prometheus() {
        let ranges = vec![20, 60, 180, 540, 1620];
        let check = |blocks: &[(u128, i64, i64)], expected: &[u128]| {
            let metas: Vec<BlockMeta> = blocks.iter().map(|&(n, a, b)| meta(n, a, b)).collect();
            assert_eq!(
                plan_compaction(&metas, &ranges),
                ids(expected),
                "{blocks:?}"
            );
        };
        check(&[], &[]);
        check(&[(1, 0, 20)], &[]);
        check(&[(1, 0, 20), (2, 20, 40)], &[]);
        check(&[(1, 0, 20), (2, 20, 40), (3, 40, 60)], &[]);
        check(
            &[(1, 0, 20), (2, 20, 40), (3, 40, 60), (4, 60, 80)],
            &[1, 2, 3],
        );
        check(&[(1, 0, 20), (2, 20, 40), (3, 60, 80)], &[]);
        check(
            &[(1, 0, 20), (2, 20, 40), (3, 60, 80), (4, 80, 100)],
            &[1, 2],
        );
        check(
            &[
                (1, 0, 20),
                (2, 20, 40),
                (3, 40, 60),
                (4, 60, 120),
                (5, 120, 180),
            ],
            &[1, 2, 3],
        );
        check(
            &[
                (2, 20, 40),
                (4, 60, 120),
                (5, 960, 980),
                (6, 120, 180),
                (7, 720, 960),
            ],
            &[2, 4, 6],
        );
        check(
            &[(5, 0, 360), (6, 540, 560), (7, 360, 420), (8, 420, 540)],
            &[7, 8],
        );
        // Overlapping blocks are merged first.
        check(&[(1, 0, 20), (2, 19, 40), (3, 40, 60)], &[1, 2]);
        check(&[(1, 0, 20), (2, 20, 40), (3, 30, 50)], &[2, 3]);
        check(&[(1, 0, 20), (2, 10, 40), (3, 30, 50)], &[1, 2, 3]);
        check(
            &[(5, 0, 360), (6, 340, 560), (7, 360, 420), (8, 420, 540)],
            &[5, 6, 7, 8],
        );
        check(&[(1, 0, 10), (2, 9, 20), (3, 30, 40), (4, 39, 50)], &[1, 2]);
    }
}
