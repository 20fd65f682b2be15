//! Retention planning: which whole blocks to delete, by age and by total
//! size, oldest first (Prometheus's `BeyondTimeRetention` and
//! `BeyondSizeRetention`).

use crate::block::{BlockId, BlockMeta};

/// The blocks in the order retention walks them: newest (highest min time)
/// first.
fn newest_first<T>(blocks: &[T], meta: impl Fn(&T) -> &BlockMeta) -> Vec<&T> {
    let mut sorted: Vec<&T> = blocks.iter().collect();
    sorted.sort_by_key(|b| std::cmp::Reverse((meta(b).min_time, meta(b).ulid)));
    sorted
}

/// The blocks to delete under time retention `retention_ms`: every block
/// whose end lies at least `retention_ms` before the end of the newest block,
/// and every older block. The newest block is never deleted. A retention of
/// 0 or less disables time retention.
pub fn beyond_time_retention(metas: &[BlockMeta], retention_ms: i64) -> Vec<BlockId> {
    if retention_ms <= 0 {
        return Vec::new();
    }
    let sorted = newest_first(metas, |m| m);
    let Some(newest) = sorted.first() else {
        return Vec::new();
    };
    match sorted
        .iter()
        .skip(1)
        .position(|m| newest.max_time.saturating_sub(m.max_time) >= retention_ms)
    {
        Some(i) => sorted[i + 1..].iter().map(|m| m.ulid).collect(),
        None => Vec::new(),
    }
}

/// The blocks to delete under size retention `max_bytes`: walking from the
/// newest block and starting from `reserved_bytes` (the head's WAL and
/// chunk files, which count towards the limit), the first block that takes
/// the total over `max_bytes` and every older block. A limit of 0 disables
/// size retention.
pub fn beyond_size_retention(
    blocks: &[(BlockMeta, u64)],
    max_bytes: u64,
    reserved_bytes: u64,
) -> Vec<BlockId> {
    if max_bytes == 0 {
        return Vec::new();
    }
    let sorted = newest_first(blocks, |(m, _)| m);
    let mut total = reserved_bytes;
    for (i, (_, size)) in sorted.iter().enumerate() {
        total = total.saturating_add(*size);
        if total > max_bytes {
            return sorted[i..].iter().map(|(m, _)| m.ulid).collect();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockCompaction, BlockStats};

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
    fn time_retention_deletes_blocks_older_than_the_window() {
        let metas = [
            meta(1, 0, 100),
            meta(2, 100, 200),
            meta(3, 200, 300),
            meta(4, 300, 400),
        ];
        assert_eq!(beyond_time_retention(&metas, 0), ids(&[]));
        assert_eq!(beyond_time_retention(&metas, 1000), ids(&[]));
        // 400 - 200 >= 200: block 2 and the older block 1.
        assert_eq!(beyond_time_retention(&metas, 200), ids(&[2, 1]));
        assert_eq!(beyond_time_retention(&metas, 201), ids(&[1]));
        // Never the newest block.
        assert_eq!(beyond_time_retention(&metas, 1), ids(&[3, 2, 1]));
        assert_eq!(beyond_time_retention(&metas[..1], 1), ids(&[]));
    }

    #[test]
    fn size_retention_counts_from_the_newest_block() {
        let blocks = [
            (meta(1, 0, 100), 10),
            (meta(2, 100, 200), 10),
            (meta(3, 200, 300), 10),
        ];
        assert_eq!(beyond_size_retention(&blocks, 0, 0), ids(&[]));
        assert_eq!(beyond_size_retention(&blocks, 30, 0), ids(&[]));
        assert_eq!(beyond_size_retention(&blocks, 29, 0), ids(&[1]));
        assert_eq!(beyond_size_retention(&blocks, 30, 5), ids(&[1]));
        assert_eq!(beyond_size_retention(&blocks, 15, 0), ids(&[2, 1]));
        // Even the newest block goes when the head alone fills the budget.
        assert_eq!(beyond_size_retention(&blocks, 15, 15), ids(&[3, 2, 1]));
    }
}
