use super::*;
use crate::model::{Labels, STALE_NAN};

fn sref(id: u64) -> SeriesRef {
    SeriesRef::new(id).unwrap()
}

fn series(id: u64, name: &str) -> RefSeries {
    RefSeries {
        series_ref: sref(id),
        labels: Labels::from_pairs(&[("__name__", name), ("job", "test")]),
    }
}

fn sample(id: u64, t: i64, v: f64) -> RefSample {
    RefSample {
        series_ref: sref(id),
        t,
        v,
    }
}

fn options(segment_size: u64) -> WalOptions {
    WalOptions {
        segment_size,
        sync: SyncPolicy::EveryCommit,
    }
}

/// Opens the log and returns it with everything it replayed.
fn open(dir: &Path, opts: WalOptions) -> (Wal, Vec<Record>) {
    let mut records = Vec::new();
    let wal = Wal::open(dir, opts, |r| records.push(r)).unwrap();
    (wal, records)
}

fn replay(dir: &Path) -> Vec<Record> {
    open(dir, options(1 << 20)).1
}

/// Writes series 1..=3 and `n` sample records, one sample per series each.
fn write_some(wal: &Wal, n: i64) -> Vec<Record> {
    let s = vec![series(1, "a"), series(2, "b"), series(3, "c")];
    wal.log_series(&s);
    let mut expected = vec![Record::Series(s)];
    for t in 0..n {
        let samples = vec![
            sample(1, t * 1000, t as f64),
            sample(2, t * 1000, STALE_NAN),
            sample(3, t * 1000, -0.0),
        ];
        wal.log_samples(&samples).unwrap();
        expected.push(Record::Samples(samples));
    }
    expected
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    segment::list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

#[test]
fn records_replay_in_order_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, replayed) = open(dir.path(), options(1 << 20));
    assert!(replayed.is_empty());
    let expected = write_some(&wal, 10);
    drop(wal);
    assert_eq!(replay(dir.path()), expected);
}

#[test]
fn series_records_reach_the_file_before_samples_that_use_them() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20));
    wal.log_series(&[series(7, "x")]);
    wal.log_samples(&[sample(7, 1, 1.0)]).unwrap();
    // Simulate a crash: the log is never dropped, so nothing is flushed
    // beyond what `log_samples` wrote.
    std::mem::forget(wal);
    assert_eq!(
        replay(dir.path()),
        vec![
            Record::Series(vec![series(7, "x")]),
            Record::Samples(vec![sample(7, 1, 1.0)])
        ]
    );
}

#[test]
fn small_segments_rotate_and_replay_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(128));
    let expected = write_some(&wal, 20);
    drop(wal);
    assert!(segment_files(dir.path()).len() > 5);
    for path in segment_files(dir.path()) {
        let len = fs::metadata(&path).unwrap().len();
        assert!(len <= 128, "{} is {len} bytes", path.display());
    }
    assert_eq!(replay(dir.path()), expected);
}

#[test]
fn oversized_record_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(64));
    let samples: Vec<RefSample> = (0..100).map(|i| sample(1 + i, i as i64, 1.5)).collect();
    wal.log_samples(&samples).unwrap();
    wal.log_samples(&samples[..1]).unwrap();
    drop(wal);
    assert_eq!(
        replay(dir.path()),
        vec![
            Record::Samples(samples.clone()),
            Record::Samples(samples[..1].to_vec())
        ]
    );
}

#[test]
fn huge_batches_split_into_several_records() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20));
    let samples: Vec<RefSample> = (0..50_000)
        .map(|i| sample(1 + i % 7, i as i64, i as f64))
        .collect();
    wal.log_samples(&samples).unwrap();
    drop(wal);
    let replayed: Vec<RefSample> = replay(dir.path())
        .into_iter()
        .flat_map(|r| match r {
            Record::Samples(s) => s,
            other => panic!("unexpected record {other:?}"),
        })
        .collect();
    assert_eq!(replayed, samples);
}

/// Cuts `n` bytes off the end of the newest non-empty segment.
fn tear_tail(dir: &Path, n: u64) {
    let path = segment_files(dir)
        .into_iter()
        .rev()
        .find(|p| fs::metadata(p).unwrap().len() > HEADER_LEN)
        .unwrap();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len - n).unwrap();
}

#[test]
fn torn_tail_is_truncated_and_earlier_records_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20));
    let mut expected = write_some(&wal, 5);
    drop(wal);
    tear_tail(dir.path(), 3);
    expected.pop();
    assert_eq!(replay(dir.path()), expected);

    // The repaired log takes new records and replays cleanly.
    let (wal, replayed) = open(dir.path(), options(1 << 20));
    assert_eq!(replayed, expected);
    wal.log_samples(&[sample(1, 99_000, 9.0)]).unwrap();
    drop(wal);
    expected.push(Record::Samples(vec![sample(1, 99_000, 9.0)]));
    assert_eq!(replay(dir.path()), expected);
}

#[test]
fn zero_filled_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20));
    let expected = write_some(&wal, 3);
    drop(wal);
    let path = segment_files(dir.path())[0].clone();
    let good_len = fs::metadata(&path).unwrap().len();
    let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[0; 4096]).unwrap();
    drop(file);
    assert_eq!(replay(dir.path()), expected);
    assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
}

#[test]
fn corruption_in_an_old_segment_keeps_what_precedes_it_and_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20));
    let first = write_some(&wal, 4);
    drop(wal);
    let (wal, _) = open(dir.path(), options(1 << 20));
    let later = vec![sample(1, 50_000, 5.0)];
    wal.log_samples(&later).unwrap();
    drop(wal);

    // Flip a byte in the value of the last record of the first segment.
    let path = segment_files(dir.path())[0].clone();
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 6] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    let mut expected = first;
    expected.pop();
    expected.push(Record::Samples(later));
    assert_eq!(replay(dir.path()), expected);
}

#[test]
fn damaged_header_is_rewritten_and_the_log_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20));
    write_some(&wal, 2);
    drop(wal);
    let path = segment_files(dir.path())[0].clone();
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] = b'X';
    fs::write(&path, &bytes).unwrap();
    assert_eq!(replay(dir.path()), vec![]);
    assert_eq!(fs::metadata(&path).unwrap().len(), HEADER_LEN);
    // A segment shorter than its header (crash while creating it).
    fs::write(&path, b"SX").unwrap();
    assert_eq!(replay(dir.path()), vec![]);
}

#[test]
fn checkpoint_keeps_live_series_and_recent_samples_and_deletes_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(256));
    write_some(&wal, 10);
    let stats = wal.checkpoint(&|r: SeriesRef| r.get() != 2, 5_000).unwrap();
    assert_eq!(stats.series_kept, 2);
    assert_eq!(stats.series_dropped, 1);
    assert_eq!(stats.samples_kept, 2 * 5);
    assert_eq!(stats.samples_dropped, 30 - 10);
    // Only the fresh segment started by the checkpoint is left.
    assert_eq!(segment_files(dir.path()).len(), 1);
    wal.log_samples(&[sample(1, 10_000, 10.0)]).unwrap();
    drop(wal);

    let mut expected = vec![Record::Series(vec![series(1, "a"), series(3, "c")])];
    for t in 5..10 {
        expected.push(Record::Samples(vec![
            sample(1, t * 1000, t as f64),
            sample(3, t * 1000, -0.0),
        ]));
    }
    expected.push(Record::Samples(vec![sample(1, 10_000, 10.0)]));
    assert_eq!(replay(dir.path()), expected);

    // A second checkpoint builds on the first and replaces it.
    let (wal, _) = open(dir.path(), options(256));
    wal.checkpoint(&|r: SeriesRef| r.get() == 1, 9_000).unwrap();
    drop(wal);
    assert_eq!(list_checkpoints(dir.path()).unwrap().len(), 1);
    assert_eq!(
        replay(dir.path()),
        vec![
            Record::Series(vec![series(1, "a")]),
            Record::Samples(vec![sample(1, 9_000, 9.0)]),
            Record::Samples(vec![sample(1, 10_000, 10.0)]),
        ]
    );
}

#[test]
fn interrupted_checkpoint_and_leftover_segments_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path(), options(1 << 20));
    let expected = write_some(&wal, 3);
    let stats = wal.checkpoint(&|_| true, i64::MIN).unwrap();
    drop(wal);
    // A crash before the old segment was deleted leaves it behind, and a
    // crash mid-checkpoint leaves a temporary directory.
    let leftover = dir.path().join(segment::segment_name(stats.last_segment));
    let _ = segment::create_segment(dir.path(), stats.last_segment).unwrap();
    let tmp = dir.path().join("checkpoint.00000099.tmp");
    fs::create_dir(&tmp).unwrap();
    fs::write(tmp.join("00000000"), b"garbage").unwrap();

    assert_eq!(replay(dir.path()), expected);
    assert!(!leftover.exists());
    assert!(!tmp.exists());
}

#[test]
fn every_sync_policy_writes_before_returning() {
    for sync in [
        SyncPolicy::EveryCommit,
        SyncPolicy::Interval(Duration::from_secs(3600)),
        SyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(
            dir.path(),
            WalOptions {
                segment_size: 1 << 20,
                sync,
            },
        );
        let expected = write_some(&wal, 2);
        std::mem::forget(wal);
        assert_eq!(replay(dir.path()), expected, "{sync:?}");
    }
}
