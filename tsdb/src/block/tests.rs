use super::*;
use crate::block::compact::compact;
use crate::chunk::XorChunk;
use crate::model::{Labels, MatchOp, STALE_NAN_BITS};

const T0: i64 = 1_700_000_000_000;
const H: i64 = 60 * 60 * 1000;

fn labels(job: &str, instance: &str) -> Labels {
    Labels::from_pairs(&[("__name__", "up"), ("job", job), ("instance", instance)])
}

fn samples(n: i64, start: i64, step: i64, value: impl Fn(i64) -> f64) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample::new(start + i * step, value(i)))
        .collect()
}

/// Writes a level-1 block of `series` (sorted here) over `[min, max)`.
fn write_block(dir: &Path, n: u128, min: i64, max: i64, series: &[(Labels, Vec<Sample>)]) -> Block {
    let mut series = series.to_vec();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let mut w = BlockWriter::new(dir, BlockId::from_parts(min as u64, n), min, max).unwrap();
    for (l, s) in &series {
        w.add_series_samples(l, s.iter().copied()).unwrap();
    }
    let meta = w.finish().unwrap().unwrap();
    Block::open(&dir.join(meta.ulid.to_string())).unwrap()
}

fn collect(mut it: Box<dyn SampleIterator>) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    while let Some(s) = it.next() {
        out.push((s.t, s.v.to_bits()));
    }
    out
}

fn bits(samples: &[Sample]) -> Vec<(i64, u64)> {
    samples.iter().map(|s| (s.t, s.v.to_bits())).collect()
}

fn select(
    block: &Block,
    matchers: &[Matcher],
    start: i64,
    end: i64,
) -> Vec<(Labels, Vec<(i64, u64)>)> {
    let q = block.querier(TimeRange::all());
    let set = q
        .select(
            matchers,
            &SelectHints::for_range(TimeRange::new(start, end)),
        )
        .unwrap();
    set.series
        .into_iter()
        .map(|s| (s.labels, collect(s.samples)))
        .collect()
}

#[test]
fn written_block_reads_back_through_the_querier() {
    let dir = tempfile::tempdir().unwrap();
    let a = samples(500, T0, 15_000, |i| i as f64);
    let mut b = samples(300, T0 + 7, 15_000, |i| (i as f64) * 0.5);
    b[10].v = f64::from_bits(STALE_NAN_BITS);
    b[11].v = -0.0;
    let block = write_block(
        dir.path(),
        1,
        T0,
        T0 + 3 * H,
        &[
            (labels("node", "b:1"), b.clone()),
            (labels("node", "a:1"), a.clone()),
        ],
    );
    let meta = block.meta();
    assert_eq!(meta.stats.num_series, 2);
    assert_eq!(meta.stats.num_samples, 800);
    // Chunks of up to BLOCK_CHUNK_SAMPLES (480) samples.
    assert_eq!(meta.stats.num_chunks, 2 + 1);
    assert_eq!(meta.compaction.level, 1);
    assert_eq!(meta.compaction.sources, vec![meta.ulid]);

    let all = select(&block, &[Matcher::equal("job", "node")], i64::MIN, i64::MAX);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].0, labels("node", "a:1"), "sorted by labels");
    assert_eq!(all[0].1, bits(&a));
    assert_eq!(all[1].1, bits(&b), "stale marker and -0.0 survive");

    // Time range clamping, inclusive at both ends, across chunk borders.
    let start = T0 + 419 * 15_000;
    let end = T0 + 491 * 15_000;
    let part = select(&block, &[Matcher::equal("instance", "a:1")], start, end);
    assert_eq!(part.len(), 1);
    assert_eq!(part[0].1, bits(&a[419..=491]));

    // No chunk in range: the series is left out.
    assert!(select(&block, &[Matcher::equal("job", "node")], 0, T0 - 1).is_empty());
    let q = block.querier(TimeRange::all());
    assert_eq!(
        q.label_names(&[]).unwrap(),
        vec!["__name__", "instance", "job"]
    );
    assert_eq!(q.label_values("instance", &[]).unwrap(), vec!["a:1", "b:1"]);
    let only_b = [Matcher::new(MatchOp::RegexMatch, "instance", "b.*").unwrap()];
    assert_eq!(q.label_values("instance", &only_b).unwrap(), vec!["b:1"]);
    assert_eq!(
        q.label_names(&[Matcher::equal("job", "x")]).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(block.verify_chunks().unwrap(), 3);
}

#[test]
fn seek_skips_chunks_and_never_moves_back() {
    let dir = tempfile::tempdir().unwrap();
    let a = samples(1000, T0, 1000, |i| i as f64);
    let block = write_block(dir.path(), 1, T0, T0 + H, &[(labels("j", "i"), a)]);
    let entry = block.index().series(0).unwrap();
    let mut it = block
        .samples(&entry.chunks, TimeRange::new(T0 + 10_000, T0 + 900_000))
        .unwrap();
    assert_eq!(it.next(), Some(Sample::new(T0 + 10_000, 10.0)));
    assert_eq!(
        it.seek(T0 + 500_500),
        Some(Sample::new(T0 + 501_000, 501.0))
    );
    assert_eq!(it.seek(T0), Some(Sample::new(T0 + 502_000, 502.0)));
    assert_eq!(
        it.seek(T0 + 900_000),
        Some(Sample::new(T0 + 900_000, 900.0))
    );
    assert_eq!(it.next(), None);
}

#[test]
fn load_range_matches_seek_and_next_with_and_without_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let a = samples(2000, T0, 1000, |i| (i % 17) as f64 / 4.0);
    let block = write_block(dir.path(), 1, T0, T0 + H, &[(labels("j", "i"), a)]);
    let ranges = [
        (i64::MIN, i64::MAX),
        (T0 + 10_000, T0 + 900_000),
        (T0 + 479_500, T0 + 481_000),
        (T0 + 1_999_000, i64::MAX),
        (T0 - 10, T0 - 1),
    ];
    let check = |block: &Block| {
        for (start, end) in ranges {
            let q = block.querier(TimeRange::all());
            let hints = SelectHints::for_range(TimeRange::all());
            let mut expected = Vec::new();
            if let Some(series) = q.select(&[], &hints).unwrap().series.first_mut() {
                let mut next = series.samples.seek(start);
                while let Some(x) = next.filter(|x| x.t <= end) {
                    expected.push(x);
                    next = series.samples.next();
                }
            }
            let mut got = Vec::new();
            if let Some(series) = q.select(&[], &hints).unwrap().series.first_mut() {
                series
                    .samples
                    .load_range(start, end, &mut got, &mut Vec::new());
            }
            assert_eq!(bits(&got), bits(&expected), "{start}..={end}");
        }
    };
    check(&block);
    block.delete(&[], T0 + 100_000, T0 + 600_000).unwrap();
    block.delete(&[], T0 + 700_000, T0 + 700_000).unwrap();
    assert_eq!(
        select(&block, &[], i64::MIN, i64::MAX)[0].1.len(),
        2000 - 502
    );
    check(&block);
}

#[test]
fn samples_outside_the_range_are_skipped_and_empty_blocks_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = samples(10, T0 - 5, 1, |i| i as f64);
    let block = write_block(dir.path(), 1, T0, T0 + 3, &[(labels("j", "i"), s.clone())]);
    assert_eq!(select(&block, &[], i64::MIN, i64::MAX)[0].1, bits(&s[5..8]));

    let mut w = BlockWriter::new(dir.path(), BlockId::from_parts(1, 2), 0, 100).unwrap();
    w.add_series_samples(&labels("j", "i"), s).unwrap();
    assert_eq!(w.finish().unwrap(), None);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "only the first block exists");
}

#[test]
fn writer_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = BlockWriter::new(dir.path(), BlockId::from_parts(1, 1), 0, 100).unwrap();
    w.add_series_samples(&labels("j", "b"), [Sample::new(1, 1.0)])
        .unwrap();
    let out_of_order = w.add_series_samples(&labels("j", "a"), [Sample::new(1, 1.0)]);
    assert!(matches!(out_of_order, Err(Error::InvalidBlockInput { .. })));
    let not_increasing = w.add_series_samples(
        &labels("j", "c"),
        [Sample::new(2, 1.0), Sample::new(2, 1.0)],
    );
    assert!(matches!(
        not_increasing,
        Err(Error::InvalidBlockInput { .. })
    ));
    let mut chunk = XorChunk::new();
    chunk.append(150, 1.0);
    let outside = w.add_series(
        &labels("j", "d"),
        &[EncodedChunk {
            min_t: 150,
            max_t: 150,
            bytes: chunk.bytes(),
        }],
    );
    assert!(matches!(outside, Err(Error::InvalidBlockInput { .. })));
    let garbage = w.add_series(
        &labels("j", "e"),
        &[EncodedChunk {
            min_t: 1,
            max_t: 1,
            bytes: &[0, 1],
        }],
    );
    assert!(matches!(garbage, Err(Error::InvalidBlockInput { .. })));
    let mut chunk = XorChunk::new();
    chunk.append(10, 1.0);
    chunk.append(20, 2.0);
    let wrong_min_t = w.add_series(
        &labels("j", "f"),
        &[EncodedChunk {
            min_t: 5,
            max_t: 20,
            bytes: chunk.bytes(),
        }],
    );
    assert!(matches!(wrong_min_t, Err(Error::InvalidBlockInput { .. })));
    assert!(BlockWriter::new(dir.path(), BlockId::from_parts(1, 2), 5, 5).is_err());
}

#[test]
fn head_sized_chunks_are_merged_up_to_block_chunk_samples() {
    let dir = tempfile::tempdir().unwrap();
    // Six chunks of 100 samples (as the head cuts them), a staleness
    // marker in the middle: merged into chunks of 400 and 200 samples.
    let all = samples(600, T0, 15_000, |i| {
        if i == 250 {
            f64::from_bits(STALE_NAN_BITS)
        } else {
            i as f64 * 0.25
        }
    });
    let chunks: Vec<XorChunk> = all
        .chunks(100)
        .map(|part| {
            let mut chunk = XorChunk::new();
            for s in part {
                chunk.append(s.t, s.v);
            }
            chunk
        })
        .collect();
    let encoded: Vec<EncodedChunk<'_>> = chunks
        .iter()
        .map(|c| EncodedChunk {
            min_t: c.min_t(),
            max_t: c.max_t(),
            bytes: c.bytes(),
        })
        .collect();
    let mut w = BlockWriter::new(dir.path(), BlockId::from_parts(1, 1), T0, T0 + 4 * H).unwrap();
    w.add_series(&labels("j", "a"), &encoded).unwrap();
    let meta = w.finish().unwrap().unwrap();
    assert_eq!(meta.stats.num_samples, 600);
    assert_eq!(
        meta.stats.num_chunks, 2,
        "{BLOCK_CHUNK_SAMPLES} samples per block chunk at most"
    );
    let block = Block::open(&dir.path().join(meta.ulid.to_string())).unwrap();
    let got = select(&block, &[], i64::MIN, i64::MAX);
    assert_eq!(got[0].1, bits(&all));
    // A range starting inside a merged chunk.
    let middle = select(&block, &[], all[350].t, all[420].t);
    assert_eq!(middle[0].1, bits(&all[350..=420]));
}

#[test]
fn unfinished_writes_leave_nothing_visible_and_leftovers_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut w = BlockWriter::new(dir.path(), BlockId::from_parts(1, 1), 0, 100).unwrap();
        w.add_series_samples(&labels("j", "i"), [Sample::new(1, 1.0)])
            .unwrap();
        // Dropped without finish, as if the process stopped here.
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A crash leaves the directory behind; startup removes it.
    let leftover = dir.path().join(format!(
        "{}{TMP_CREATION_SUFFIX}",
        BlockId::from_parts(1, 2)
    ));
    std::fs::create_dir_all(leftover.join("chunks")).unwrap();
    let deleting = dir.path().join(format!(
        "{}{TMP_DELETION_SUFFIX}",
        BlockId::from_parts(1, 3)
    ));
    std::fs::create_dir_all(&deleting).unwrap();
    let block = write_block(
        dir.path(),
        4,
        0,
        100,
        &[(labels("j", "i"), samples(3, 0, 1, |_| 1.0))],
    );
    assert_eq!(list_block_dirs(dir.path()).unwrap().len(), 1);
    let mut removed = remove_tmp_dirs(dir.path()).unwrap();
    removed.sort();
    assert_eq!(removed, vec![leftover, deleting]);
    assert_eq!(list_block_dirs(dir.path()).unwrap()[0].0, block.id());

    let path = block.dir().to_path_buf();
    drop(block);
    delete_block_dir(&path).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn damaged_blocks_fail_to_open_or_read_with_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let block = write_block(
        dir.path(),
        1,
        T0,
        T0 + H,
        &[(labels("j", "i"), samples(200, T0, 15_000, |i| i as f64))],
    );
    let block_dir = block.dir().to_path_buf();
    drop(block);

    // A flipped byte in the index is found at open.
    let index_path = block_dir.join("index");
    let good_index = std::fs::read(&index_path).unwrap();
    let mut bad = good_index.clone();
    bad[20] ^= 1;
    std::fs::write(&index_path, &bad).unwrap();
    match Block::open(&block_dir) {
        Err(Error::Corrupted { path, .. }) => assert_eq!(path, index_path),
        other => panic!("{other:?}"),
    }
    std::fs::write(&index_path, &good_index).unwrap();

    // A flipped byte in a chunk is found when the chunk is read.
    let segment = block_dir.join("chunks").join("000001");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&segment, &bytes).unwrap();
    let block = Block::open(&block_dir).unwrap();
    let q = block.querier(TimeRange::all());
    match q.select(&[], &SelectHints::for_range(TimeRange::all())) {
        Err(Error::Corrupted { path, offset, .. }) => {
            assert_eq!(path, segment);
            assert_eq!(offset, 8);
        }
        other => panic!("{:?}", other.map(|s| s.series.len())),
    }
    assert!(matches!(
        block.verify_chunks(),
        Err(Error::Corrupted { .. })
    ));

    // Broken meta.json.
    std::fs::write(block_dir.join("meta.json"), b"{").unwrap();
    assert!(matches!(
        Block::open(&block_dir),
        Err(Error::Corrupted { .. })
    ));
}

#[test]
fn compaction_merges_adjacent_and_overlapping_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let a1 = samples(480, T0, 15_000, |i| i as f64);
    let a2 = samples(480, T0 + 2 * H, 15_000, |i| (480 + i) as f64);
    let b2 = samples(10, T0 + 2 * H, 15_000, |i| i as f64);
    let first = write_block(
        dir.path(),
        1,
        T0,
        T0 + 2 * H,
        &[(labels("j", "a"), a1.clone())],
    );
    let second = write_block(
        dir.path(),
        2,
        T0 + 2 * H,
        T0 + 4 * H,
        &[
            (labels("j", "a"), a2.clone()),
            (labels("j", "b"), b2.clone()),
        ],
    );
    let meta = compact(
        dir.path(),
        &[second.clone(), first.clone()],
        BlockId::from_parts(9, 9),
    )
    .unwrap()
    .unwrap();
    assert_eq!((meta.min_time, meta.max_time), (T0, T0 + 4 * H));
    assert_eq!(meta.compaction.level, 2);
    assert_eq!(meta.compaction.sources, vec![first.id(), second.id()]);
    assert_eq!(meta.compaction.parents, vec![first.id(), second.id()]);
    assert_eq!(meta.stats.num_samples, 970);
    let merged = Block::open(&dir.path().join(meta.ulid.to_string())).unwrap();
    let got = select(&merged, &[], i64::MIN, i64::MAX);
    let mut a = a1.clone();
    a.extend_from_slice(&a2);
    assert_eq!(got[0].1, bits(&a));
    assert_eq!(got[1].1, bits(&b2));
    // Non-overlapping chunks are not merged beyond BLOCK_CHUNK_SAMPLES.
    assert_eq!(merged.meta().stats.num_chunks, 1 + 1 + 1);

    // An overlapping block with duplicates and new samples in between.
    let mut overlap: Vec<Sample> = a1[100..110].to_vec();
    overlap.push(Sample::new(a1[110].t + 1, -1.0));
    let third = write_block(
        dir.path(),
        3,
        T0,
        T0 + 2 * H,
        &[(labels("j", "a"), overlap)],
    );
    let meta = compact(
        dir.path(),
        &[merged.clone(), third.clone()],
        BlockId::from_parts(10, 10),
    )
    .unwrap()
    .unwrap();
    assert_eq!(meta.compaction.level, 3);
    assert_eq!(meta.compaction.sources.len(), 3);
    let block = Block::open(&dir.path().join(meta.ulid.to_string())).unwrap();
    let got = select(
        &block,
        &[Matcher::equal("instance", "a")],
        i64::MIN,
        i64::MAX,
    );
    let mut expected = a.clone();
    expected.insert(111, Sample::new(a1[110].t + 1, -1.0));
    assert_eq!(got[0].1, bits(&expected));
    assert_eq!(block.meta().stats.num_samples, 971);
}
