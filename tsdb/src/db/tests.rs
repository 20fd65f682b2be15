use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::model::STALE_NAN;
use crate::wal::SyncPolicy;

const HOUR: i64 = 60 * 60 * 1000;

fn options(clock: &Arc<ManualClock>) -> DbOptions {
    DbOptions {
        clock: Arc::clone(clock) as Arc<dyn Clock>,
        wal: WalOptions {
            segment_size: 1 << 20,
            sync: SyncPolicy::Never,
        },
        ..DbOptions::default()
    }
}

fn series(i: usize) -> Labels {
    Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string())])
}

/// The value series `i` has at `t`; some are staleness markers.
fn value(i: usize, t: i64) -> f64 {
    if (t / 60_000 + i as i64) % 50 == 0 {
        STALE_NAN
    } else {
        (t / 1000) as f64 + i as f64 / 8.0
    }
}

/// Appends one sample per series every `step` ms in `[from, to)`.
fn fill(db: &Db, n: usize, from: i64, to: i64, step: i64) {
    let mut refs = vec![None; n];
    let mut t = from;
    while t < to {
        let mut app = db.appender();
        for (i, r) in refs.iter_mut().enumerate() {
            *r = Some(
                app.append(*r, &series(i), Sample::new(t, value(i, t)))
                    .unwrap(),
            );
        }
        app.commit().unwrap();
        t += step;
    }
}

/// Checks that every series holds exactly the samples `fill` wrote.
#[track_caller]
fn check(db: &Db, n: usize, from: i64, to: i64, step: i64) {
    let querier = db.querier(TimeRange::all()).unwrap();
    let set = querier
        .select(
            &[Matcher::equal("__name__", "m")],
            &SelectHints::for_range(TimeRange::all()),
        )
        .unwrap();
    assert_eq!(set.series.len(), n);
    let mut labels: Vec<Labels> = (0..n).map(series).collect();
    labels.sort();
    for (mut s, expected_labels) in set.series.into_iter().zip(labels) {
        assert_eq!(s.labels, expected_labels);
        let i: usize = s.labels.get("i").unwrap().parse().unwrap();
        let mut t = from;
        while let Some(sample) = s.samples.next() {
            assert_eq!(sample.t, t, "series {i}");
            assert_eq!(
                sample.v.to_bits(),
                value(i, t).to_bits(),
                "series {i} at {t}"
            );
            t += step;
        }
        assert_eq!(t, to, "series {i} ends early");
    }
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let db = Db::open(dir.path(), options(&clock)).unwrap();
    let err = Db::open(dir.path(), options(&clock)).unwrap_err();
    assert!(
        matches!(&err, Error::Locked { path } if path == dir.path()),
        "{err}"
    );
    assert!(err.to_string().contains(&dir.path().display().to_string()));
    db.close().unwrap();
    Db::open(dir.path(), options(&clock)).unwrap();
}

#[test]
fn head_compaction_cuts_blocks_and_everything_reads_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let db = Db::open(dir.path(), options(&clock)).unwrap();
    let step = 60_000;
    fill(&db, 20, 0, 3 * HOUR + 30 * 60_000, step);
    clock.set(4 * HOUR);
    let report = db.compact().unwrap();
    assert_eq!(report.head_blocks.len(), 1);
    let meta = &report.head_blocks[0];
    assert_eq!((meta.min_time, meta.max_time), (0, 2 * HOUR));
    assert_eq!(meta.stats.num_series, 20);
    assert_eq!(meta.stats.num_samples, 20 * 120);
    assert_eq!(db.head().min_time(), Some(2 * HOUR));
    check(&db, 20, 0, 3 * HOUR + 30 * 60_000, step);

    // Samples inside the block's range are now out of bounds.
    let mut app = db.appender();
    assert!(matches!(
        app.append(None, &series(0), Sample::new(2 * HOUR - 1, 1.0)),
        Err(crate::error::AppendError::OutOfBounds { .. })
    ));
    app.rollback();

    db.close().unwrap();
    let db = Db::open(dir.path(), options(&clock)).unwrap();
    assert_eq!(db.blocks().len(), 1);
    check(&db, 20, 0, 3 * HOUR + 30 * 60_000, step);
    // Nothing to do: the head spans 1.5 h.
    assert_eq!(db.compact().unwrap(), CompactionReport::default());
}

#[test]
fn blocks_are_compacted_by_the_leveled_planner() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let mut opts = options(&clock);
    opts.retention_time = None;
    let db = Db::open(dir.path(), opts).unwrap();
    let step = 10 * 60_000;
    fill(&db, 5, 0, 11 * HOUR + step, step);
    let report = db.compact().unwrap();
    // Blocks [0,2h) .. [6h,8h) from the head; the first three merge into
    // [0,6h).
    assert_eq!(report.head_blocks.len(), 4);
    assert_eq!(report.merged_blocks.len(), 1);
    let merged = &report.merged_blocks[0];
    assert_eq!((merged.min_time, merged.max_time), (0, 6 * HOUR));
    assert_eq!(merged.compaction.level, 2);
    let ranges: Vec<(i64, i64)> = db
        .blocks()
        .iter()
        .map(|b| (b.meta().min_time, b.meta().max_time))
        .collect();
    assert_eq!(ranges, [(0, 6 * HOUR), (6 * HOUR, 8 * HOUR)]);
    assert_eq!(list_block_dirs(dir.path()).unwrap().len(), 2);
    check(&db, 5, 0, 11 * HOUR + step, step);
}

#[test]
fn time_retention_deletes_blocks_older_than_the_newest_by_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let mut opts = options(&clock);
    // A tenth of it is below the block range: no block compaction.
    opts.retention_time = Some(Duration::from_millis(4 * HOUR as u64));
    let db = Db::open(dir.path(), opts).unwrap();
    let step = 10 * 60_000;
    fill(&db, 2, 0, 12 * HOUR, step);
    let report = db.compact().unwrap();
    assert!(report.merged_blocks.is_empty());
    // Blocks [0,2h) .. [8h,10h) were cut; those ending 4 h or more before
    // the newest block's end (10 h) are gone.
    assert_eq!(report.head_blocks.len(), 5);
    assert_eq!(report.deleted_by_retention.len(), 3);
    let ranges: Vec<(i64, i64)> = db
        .blocks()
        .iter()
        .map(|b| (b.meta().min_time, b.meta().max_time))
        .collect();
    assert_eq!(ranges, [(6 * HOUR, 8 * HOUR), (8 * HOUR, 10 * HOUR)]);
    assert_eq!(list_block_dirs(dir.path()).unwrap().len(), 2);
}

#[test]
fn size_retention_keeps_the_newest_blocks_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let mut opts = options(&clock);
    opts.retention_size = Some(1);
    let db = Db::open(dir.path(), opts).unwrap();
    fill(&db, 3, 0, 6 * HOUR, 30 * 60_000);
    let report = db.compact().unwrap();
    assert_eq!(report.head_blocks.len(), 2);
    assert_eq!(report.deleted_by_retention.len(), 2);
    assert!(db.blocks().is_empty());
}

#[test]
fn a_corrupted_block_is_moved_aside_and_the_database_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let db = Db::open(dir.path(), options(&clock)).unwrap();
    fill(&db, 4, 0, 4 * HOUR, 60_000);
    db.compact().unwrap();
    let block_dir = db.blocks()[0].dir().to_path_buf();
    db.close().unwrap();

    let index = block_dir.join("index");
    let mut bytes = std::fs::read(&index).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&index, bytes).unwrap();

    let db = Db::open(dir.path(), options(&clock)).unwrap();
    assert!(db.blocks().is_empty());
    assert!(!block_dir.exists());
    let mut aside = block_dir.into_os_string();
    aside.push(CORRUPTED_SUFFIX);
    assert!(PathBuf::from(aside).is_dir());
    // The head's data is intact and new appends work.
    let querier = db.querier(TimeRange::all()).unwrap();
    let set = querier
        .select(&[], &SelectHints::for_range(TimeRange::all()))
        .unwrap();
    assert_eq!(set.series.len(), 4);
    drop(querier);
    fill(&db, 4, 4 * HOUR, 4 * HOUR + 60_000, 60_000);
}

#[test]
fn overlapping_head_and_block_samples_are_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    {
        // A block holding [0, 2h) of series 0 at every 2 min, odd values.
        let mut writer = BlockWriter::new(dir.path(), BlockId::new(0), 0, 2 * HOUR).unwrap();
        let samples = (0..60).map(|k| Sample::new(k * 120_000, -1.0));
        writer.add_series_samples(&series(0), samples).unwrap();
        writer.finish().unwrap();
    }
    let db = Db::open(dir.path(), options(&clock)).unwrap();
    // The block's end is the head's minimum valid time.
    assert_eq!(db.head().min_valid_time(), 2 * HOUR);
    fill(&db, 1, 2 * HOUR, 3 * HOUR, 60_000);
    let querier = db
        .querier(TimeRange::new(HOUR, 2 * HOUR + 5 * 60_000))
        .unwrap();
    let mut set = querier
        .select(&[], &SelectHints::for_range(TimeRange::all()))
        .unwrap();
    assert_eq!(set.series.len(), 1);
    let mut got = Vec::new();
    while let Some(s) = set.series[0].samples.next() {
        got.push(s.t);
    }
    let expected: Vec<i64> = (30..60)
        .map(|k| k * 120_000)
        .chain((0..=5).map(|k| 2 * HOUR + k * 60_000))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(querier.label_values("i", &[]).unwrap(), ["0"]);
    assert_eq!(querier.label_names(&[]).unwrap(), ["__name__", "i"]);
}

#[test]
fn merged_samples_keep_one_sample_per_timestamp_and_seek_forward() {
    let a = crate::storage::VecSampleIterator::new(vec![
        Sample::new(1, 1.0),
        Sample::new(3, 3.0),
        Sample::new(5, 5.0),
    ]);
    let b = crate::storage::VecSampleIterator::new(vec![
        Sample::new(2, 20.0),
        Sample::new(3, 30.0),
        Sample::new(6, 60.0),
    ]);
    let mut merged = MergedSamples::new(vec![Box::new(a), Box::new(b)]);
    assert_eq!(merged.next(), Some(Sample::new(1, 1.0)));
    assert_eq!(merged.next(), Some(Sample::new(2, 20.0)));
    assert_eq!(merged.next(), Some(Sample::new(3, 3.0)));
    assert_eq!(merged.seek(6), Some(Sample::new(6, 60.0)));
    assert_eq!(merged.seek(0), None);
}

#[test]
fn a_snapshot_opens_as_a_database_with_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let db = Db::open(dir.path(), options(&clock)).unwrap();
    fill(&db, 20, 0, 5 * HOUR, 60_000);
    clock.set(5 * HOUR);
    db.compact().unwrap();
    assert!(!db.blocks().is_empty());
    let with_head = dir.path().join("snapshots/full");
    db.snapshot(&with_head, true).unwrap();
    let blocks_only = dir.path().join("snapshots/blocks");
    db.snapshot(&blocks_only, false).unwrap();
    // The database itself is unchanged and still takes samples.
    fill(&db, 20, 5 * HOUR, 5 * HOUR + 60_000, 60_000);
    check(&db, 20, 0, 5 * HOUR + 60_000, 60_000);
    db.close().unwrap();

    let snapshot = Db::open(&with_head, options(&clock)).unwrap();
    check(&snapshot, 20, 0, 5 * HOUR, 60_000);
    drop(snapshot);
    // Without the head: the blocks' samples only (block ends are exclusive).
    let partial = Db::open(&blocks_only, options(&clock)).unwrap();
    let newest = partial
        .blocks()
        .iter()
        .map(|b| b.meta().max_time)
        .max()
        .unwrap();
    assert!(newest < 5 * HOUR);
    check(&partial, 20, 0, newest, 60_000);
}
