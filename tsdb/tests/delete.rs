//! Deleting series (the admin API's `delete_series` and `clean_tombstones`)
//! against a real database directory: deletions in the head survive a
//! restart through the WAL's tombstone records (checkpoints included),
//! deletions in blocks through their `tombstones` files; compaction and
//! `clean_tombstones` never bring deleted samples back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tsdb::block::{TOMBSTONES_FILE, list_block_dirs};
use tsdb::clock::{Clock, ManualClock};
use tsdb::db::{Db, DbOptions};
use tsdb::model::{Labels, Matcher, Sample, TimeRange};
use tsdb::storage::{Appendable, Queryable, SelectHints};
use tsdb::wal::{SyncPolicy, WalOptions};

const SERIES: [&str; 3] = ["a", "b", "c"];

fn options(block_range: Duration) -> DbOptions {
    DbOptions {
        clock: Arc::new(ManualClock::new(0)) as Arc<dyn Clock>,
        block_range,
        retention_time: None,
        wal: WalOptions {
            segment_size: 8 << 10,
            sync: SyncPolicy::Never,
        },
        ..DbOptions::default()
    }
}

fn labels(s: &str) -> Labels {
    Labels::from_pairs(&[("__name__", "deletion_test"), ("s", s)])
}

fn value(t: i64, s: &str) -> f64 {
    t as f64 + s.len() as f64 / 10.0
}

/// One sample per series every second in `[from_s, to_s)`; with
/// `compact_every`, runs maintenance after that many batches.
fn write(db: &Db, from_s: i64, to_s: i64, compact_every: Option<i64>) {
    for second in from_s..to_s {
        let t = second * 1000;
        let mut app = db.appender();
        for s in SERIES {
            app.append(None, &labels(s), Sample::new(t, value(t, s)))
                .unwrap();
        }
        app.commit().unwrap();
        if compact_every.is_some_and(|n| second % n == n - 1) {
            db.compact().unwrap();
        }
    }
}

/// Series name -> timestamps (values checked).
type Data = BTreeMap<String, Vec<i64>>;

fn read(db: &Db) -> Data {
    let querier = db.querier(TimeRange::all()).unwrap();
    let set = querier
        .select(&[], &SelectHints::for_range(TimeRange::all()))
        .unwrap();
    let mut data = Data::new();
    for mut series in set.series {
        let s = series.labels.get("s").unwrap().to_string();
        let mut ts = Vec::new();
        while let Some(sample) = series.samples.next() {
            assert_eq!(sample.v, value(sample.t, &s));
            ts.push(sample.t);
        }
        assert!(!ts.is_empty(), "series {s} listed without samples");
        data.insert(s, ts);
    }
    // Every view agrees: the series-only select and the label values.
    let mut hints = SelectHints::for_range(TimeRange::all());
    hints.series_only = true;
    let listed: Vec<String> = querier
        .select(&[], &hints)
        .unwrap()
        .series
        .iter()
        .map(|s| s.labels.get("s").unwrap().to_string())
        .collect();
    assert_eq!(listed, data.keys().cloned().collect::<Vec<_>>());
    let values = querier.label_values("s", &[]).unwrap();
    assert_eq!(values, listed, "label values");
    let matched = querier
        .label_values("s", &[Matcher::equal("__name__", "deletion_test")])
        .unwrap();
    assert_eq!(matched, listed, "label values with a matcher");
    data
}

/// Seconds `[from_s, to_s)` minus the deleted `[del_from_s, del_to_s]`, in
/// milliseconds.
fn expected(from_s: i64, to_s: i64, deleted: Option<(i64, i64)>) -> Vec<i64> {
    (from_s..to_s)
        .filter(|s| deleted.is_none_or(|(a, b)| *s < a || *s > b))
        .map(|s| s * 1000)
        .collect()
}

fn tombstone_files(dir: &Path) -> usize {
    list_block_dirs(dir)
        .unwrap()
        .iter()
        .filter(|(_, d)| d.join(TOMBSTONES_FILE).exists())
        .count()
}

#[test]
fn head_deletion_survives_restart_and_later_appends_stay() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(Duration::from_secs(2 * 60 * 60));
    let db = Db::open(dir.path(), opts()).unwrap();
    write(&db, 0, 100, None);
    let affected = db
        .delete(&[Matcher::equal("s", "b")], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(affected, 1);
    db.delete(&[Matcher::equal("s", "a")], 20_000, 39_000)
        .unwrap();
    // A selector matching nothing deletes nothing.
    assert_eq!(
        db.delete(&[Matcher::equal("s", "zzz")], i64::MIN, i64::MAX)
            .unwrap(),
        0
    );
    let after_delete = Data::from([
        ("a".to_string(), expected(0, 100, Some((20, 39)))),
        ("c".to_string(), expected(0, 100, None)),
    ]);
    assert_eq!(read(&db), after_delete);
    assert_eq!(db.head().stats().n_series, 2);
    db.close().unwrap();

    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read(&db), after_delete, "replay applies the tombstones");
    // A checkpoint keeps the tombstones among the samples it keeps.
    db.head().truncate(0).unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read(&db), after_delete, "replay of a checkpoint");
    // Samples appended after a deletion are kept, across restarts too.
    let mut app = db.appender();
    app.append(
        None,
        &labels("b"),
        Sample::new(200_000, value(200_000, "b")),
    )
    .unwrap();
    app.append(
        None,
        &labels("a"),
        Sample::new(200_000, value(200_000, "a")),
    )
    .unwrap();
    app.commit().unwrap();
    let mut later = after_delete.clone();
    later.insert("b".to_string(), vec![200_000]);
    later.get_mut("a").unwrap().push(200_000);
    assert_eq!(read(&db), later);
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read(&db), later);
}

#[test]
fn block_deletion_survives_restart_compaction_and_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(Duration::from_secs(60));
    let db = Db::open(dir.path(), opts()).unwrap();
    write(&db, 0, 600, Some(60));
    let blocks_before: Vec<_> = db.blocks().iter().map(|b| b.id()).collect();
    assert!(blocks_before.len() >= 3, "{blocks_before:?}");
    let head_min = db.head().min_time().unwrap();
    assert!(head_min < 580_000, "the deletion reaches into the head");

    // `a` loses [100 s, 580 s] (blocks and head), `b` everything.
    db.delete(&[Matcher::equal("s", "a")], 100_000, 580_000)
        .unwrap();
    db.delete(&[Matcher::equal("s", "b")], i64::MIN, i64::MAX)
        .unwrap();
    let deleted = Data::from([
        ("a".to_string(), expected(0, 600, Some((100, 580)))),
        ("c".to_string(), expected(0, 600, None)),
    ]);
    assert_eq!(read(&db), deleted);
    assert_eq!(tombstone_files(dir.path()), db.blocks().len());
    db.close().unwrap();

    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read(&db), deleted, "after a restart");

    // More data and compactions: head blocks cut from the deleted head
    // range, merges of blocks with tombstones. Nothing deleted returns.
    write(&db, 600, 900, Some(60));
    let mut grown = deleted.clone();
    for s in SERIES {
        grown
            .entry(s.to_string())
            .or_default()
            .extend(expected(600, 900, None));
    }
    assert_eq!(read(&db), grown, "after compactions");
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read(&db), grown, "after compactions and a restart");

    let with_tombstones: Vec<_> = db
        .blocks()
        .iter()
        .filter(|b| !b.tombstones().is_empty())
        .map(|b| (b.id(), b.dir().to_path_buf()))
        .collect();
    let cleaned = db.clean_tombstones().unwrap();
    assert_eq!(cleaned.len(), with_tombstones.len());
    for (old, dir) in &with_tombstones {
        assert!(!dir.exists(), "old block {old} removed");
        assert!(db.blocks().iter().all(|b| b.id() != *old));
    }
    assert_eq!(tombstone_files(dir.path()), 0);
    assert!(db.blocks().iter().all(|b| b.tombstones().is_empty()));
    assert_eq!(read(&db), grown, "after cleaning");
    assert!(db.clean_tombstones().unwrap().is_empty(), "nothing left");
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read(&db), grown, "after cleaning and a restart");
}

#[test]
fn a_block_emptied_by_deletion_is_removed_by_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options(Duration::from_secs(60))).unwrap();
    write(&db, 0, 200, Some(60));
    let first = db.blocks()[0].clone();
    let range = first.meta().time_range();
    db.delete(
        &[Matcher::equal("__name__", "deletion_test")],
        range.start,
        range.end,
    )
    .unwrap();
    let cleaned = db.clean_tombstones().unwrap();
    assert!(cleaned.contains(&(first.id(), None)), "{cleaned:?}");
    assert!(!first.dir().exists());
    let data = read(&db);
    for s in SERIES {
        assert_eq!(data[s].first(), Some(&(range.end + 1)));
    }
}
