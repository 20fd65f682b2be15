//! The fault matrix for damaged files: WAL segments and block files
//! (index, chunks, meta.json, tombstones) truncated or bit-flipped, plus the leftovers
//! of interrupted block writes and compactions. Each test damages one file
//! of a database written with fixed data, reopens it, and checks the
//! outcome: a clear error naming the file and offset, repair where it is
//! safe, and everything else still served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tsdb::Error;
use tsdb::block::{Block, BlockId, list_block_dirs};
use tsdb::clock::{Clock, ManualClock};
use tsdb::db::{CORRUPTED_SUFFIX, Db, DbOptions};
use tsdb::model::{Labels, Sample, TimeRange};
use tsdb::storage::{Appendable, Queryable, SelectHints};
use tsdb::wal::{SyncPolicy, WalOptions};

const N_SERIES: usize = 10;
/// One batch per second: 600 batches are ten one-minute blocks.
const N_BATCHES: i64 = 600;

fn options() -> DbOptions {
    DbOptions {
        clock: Arc::new(ManualClock::new(0)) as Arc<dyn Clock>,
        block_range: Duration::from_secs(60),
        retention_time: None,
        wal: WalOptions {
            segment_size: 4 << 10,
            sync: SyncPolicy::Never,
        },
        ..DbOptions::default()
    }
}

fn labels(s: usize) -> Labels {
    Labels::from_pairs(&[("__name__", "fault_test"), ("series", &s.to_string())])
}

fn value(t: i64, s: usize) -> f64 {
    t as f64 + s as f64 / 100.0
}

/// Writes `N_BATCHES` batches; with `compact`, cuts blocks from the head
/// (and compacts them) along the way.
fn write_db(dir: &Path, compact: bool) {
    let db = Db::open(dir, options()).unwrap();
    for batch in 0..N_BATCHES {
        let t = batch * 1000;
        let mut app = db.appender();
        for s in 0..N_SERIES {
            app.append(None, &labels(s), Sample::new(t, value(t, s)))
                .unwrap();
        }
        app.commit().unwrap();
        if compact && batch % 60 == 59 {
            db.compact().unwrap();
        }
    }
    db.close().unwrap();
}

/// Series number -> timestamps, values checked.
type Data = BTreeMap<usize, Vec<i64>>;

fn read_range(db: &Db, range: TimeRange) -> tsdb::Result<Data> {
    let querier = db.querier(range)?;
    let set = querier.select(&[], &SelectHints::for_range(range))?;
    let mut data = Data::new();
    for mut series in set.series {
        let s: usize = series.labels.get("series").unwrap().parse().unwrap();
        let mut ts = Vec::new();
        while let Some(sample) = series.samples.next() {
            assert_eq!(sample.v, value(sample.t, s), "series {s} at {}", sample.t);
            ts.push(sample.t);
        }
        assert!(
            ts.windows(2).all(|w| w[0] < w[1]),
            "series {s}: no duplicates"
        );
        data.insert(s, ts);
    }
    Ok(data)
}

fn read_all(db: &Db) -> Data {
    read_range(db, TimeRange::all()).unwrap()
}

fn all_timestamps() -> Vec<i64> {
    (0..N_BATCHES).map(|b| b * 1000).collect()
}

fn wal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    segments.sort();
    segments
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, len: u64) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Every series holds the same timestamps; returns them.
fn common_timestamps(data: &Data) -> Vec<i64> {
    assert_eq!(data.len(), N_SERIES);
    let first = data.values().next().unwrap().clone();
    for ts in data.values() {
        assert_eq!(ts, &first);
    }
    first
}

/// After a repair, a second open finds nothing more to repair, and new
/// commits land and survive a reopen.
fn reopen_is_stable_and_writable(dir: &Path, expected: &Data) {
    let db = Db::open(dir, options()).unwrap();
    assert_eq!(&read_all(&db), expected, "a second open loses nothing more");
    let t = N_BATCHES * 1000;
    let mut app = db.appender();
    app.append(None, &labels(0), Sample::new(t, value(t, 0)))
        .unwrap();
    app.commit().unwrap();
    db.close().unwrap();
    let db = Db::open(dir, options()).unwrap();
    let data = read_all(&db);
    assert_eq!(
        data[&0].last(),
        Some(&t),
        "a commit after the repair survives"
    );
}

// ---- WAL ----

#[test]
fn wal_tail_truncated_mid_record_keeps_everything_before() {
    let dir = tempfile::tempdir().unwrap();
    write_db(dir.path(), false);
    let segments = wal_segments(dir.path());
    assert!(segments.len() > 5, "{} segments", segments.len());
    let tail = segments.last().unwrap();
    let cut = file_len(tail) - 7;
    truncate(tail, cut);

    let db = Db::open(dir.path(), options()).unwrap();
    let ts = common_timestamps(&read_all(&db));
    // Only the torn last record is lost: a prefix of the batches remains.
    assert_eq!(ts[..], all_timestamps()[..ts.len()]);
    assert!(ts.len() < N_BATCHES as usize && ts.len() >= N_BATCHES as usize - 5);
    assert!(file_len(tail) < cut, "the torn record was cut off");
    let data = read_all(&db);
    drop(db);
    reopen_is_stable_and_writable(dir.path(), &data);
}

#[test]
fn wal_tail_bit_flip_keeps_everything_before_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    write_db(dir.path(), false);
    let tail = wal_segments(dir.path()).pop().unwrap();
    let offset = file_len(&tail) / 2;
    flip_byte(&tail, offset);

    let db = Db::open(dir.path(), options()).unwrap();
    let ts = common_timestamps(&read_all(&db));
    assert_eq!(ts[..], all_timestamps()[..ts.len()]);
    assert!(ts.len() < N_BATCHES as usize);
    assert!(file_len(&tail) <= offset, "truncated at the damaged record");
    let data = read_all(&db);
    drop(db);
    reopen_is_stable_and_writable(dir.path(), &data);
}

#[test]
fn wal_middle_segment_damage_loses_only_that_segments_tail() {
    for damage in ["bit flip", "truncation"] {
        let dir = tempfile::tempdir().unwrap();
        write_db(dir.path(), false);
        let segments = wal_segments(dir.path());
        let middle = &segments[segments.len() / 2];
        let len = file_len(middle);
        if damage == "bit flip" {
            flip_byte(middle, len / 2);
        } else {
            truncate(middle, len / 2);
        }

        let db = Db::open(dir.path(), options()).unwrap();
        let ts = common_timestamps(&read_all(&db));
        let all = all_timestamps();
        // A gap where the damaged records were; the segments after it
        // replay, up to the very last batch.
        let gap_start = ts.iter().zip(&all).position(|(a, b)| a != b).unwrap();
        let lost = all.len() - ts.len();
        assert!(lost > 0 && lost < all.len() / 4, "{damage}: lost {lost}");
        assert_eq!(ts[gap_start..], all[gap_start + lost..], "{damage}");
        assert!(file_len(middle) <= len / 2, "{damage}: cut at the damage");
        let data = read_all(&db);
        drop(db);
        reopen_is_stable_and_writable(dir.path(), &data);
    }
}

#[test]
fn wal_damaged_segment_header_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    write_db(dir.path(), false);
    let segments = wal_segments(dir.path());
    let middle = &segments[segments.len() / 2];
    flip_byte(middle, 0);

    let db = Db::open(dir.path(), options()).unwrap();
    let ts = common_timestamps(&read_all(&db));
    assert!(ts.len() < N_BATCHES as usize);
    assert_eq!(ts.last(), Some(&((N_BATCHES - 1) * 1000)));
    assert_eq!(file_len(middle), 8, "only a fresh header remains");
    let data = read_all(&db);
    drop(db);
    reopen_is_stable_and_writable(dir.path(), &data);
}

// ---- blocks ----

/// A database with blocks; returns the first block's id, dir and range.
fn db_with_blocks(dir: &Path) -> (BlockId, PathBuf, TimeRange) {
    write_db(dir, true);
    let (id, block_dir) = list_block_dirs(dir).unwrap().remove(0);
    let block = Block::open(&block_dir).unwrap();
    let range = block.meta().time_range();
    (id, block_dir, range)
}

/// The damaged block was moved aside as `<id>.corrupted`; everything
/// outside its range is served.
fn assert_moved_aside_rest_served(dir: &Path, id: BlockId, range: TimeRange) {
    let db = Db::open(dir, options()).unwrap();
    assert!(dir.join(format!("{id}{CORRUPTED_SUFFIX}")).is_dir());
    assert!(!dir.join(id.to_string()).exists());
    assert!(db.blocks().iter().all(|b| b.id() != id));
    let ts = common_timestamps(&read_all(&db));
    let expected: Vec<i64> = all_timestamps()
        .into_iter()
        .filter(|t| *t < range.start || *t > range.end)
        .collect();
    assert_eq!(ts, expected);
}

fn assert_names(err: &Error, file: &str) {
    let message = err.to_string();
    assert!(message.contains(file), "{message} names {file}");
    if let Error::Corrupted { .. } = err {
        assert!(message.contains("offset"), "{message} gives the offset");
    }
}

#[test]
fn block_index_bit_flip_moves_the_block_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (id, block_dir, range) = db_with_blocks(dir.path());
    let index = block_dir.join("index");
    flip_byte(&index, file_len(&index) / 2);
    let err = Block::open(&block_dir).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
    assert_names(&err, "index");
    assert_moved_aside_rest_served(dir.path(), id, range);
}

#[test]
fn block_index_truncated_moves_the_block_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (id, block_dir, range) = db_with_blocks(dir.path());
    let index = block_dir.join("index");
    truncate(&index, file_len(&index) / 2);
    let err = Block::open(&block_dir).unwrap_err();
    assert_names(&err, "index");
    assert_moved_aside_rest_served(dir.path(), id, range);
}

#[test]
fn block_meta_damage_moves_the_block_aside() {
    for damage in ["truncated", "bit flip", "missing"] {
        let dir = tempfile::tempdir().unwrap();
        let (id, block_dir, range) = db_with_blocks(dir.path());
        let meta = block_dir.join("meta.json");
        match damage {
            "truncated" => truncate(&meta, file_len(&meta) / 2),
            // The opening brace.
            "bit flip" => flip_byte(&meta, 0),
            _ => std::fs::remove_file(&meta).unwrap(),
        }
        let err = Block::open(&block_dir).unwrap_err();
        assert_names(&err, "meta.json");
        assert_moved_aside_rest_served(dir.path(), id, range);
    }
}

fn chunk_segment(block_dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(block_dir.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.remove(0)
}

#[test]
fn block_chunk_bit_flip_fails_queries_over_that_block_only() {
    let dir = tempfile::tempdir().unwrap();
    let (id, block_dir, range) = db_with_blocks(dir.path());
    let chunks = chunk_segment(&block_dir);
    flip_byte(&chunks, file_len(&chunks) / 2);

    // Chunk checksums are checked when read, not on open (as Prometheus):
    // the block opens, a verification names the chunk file and offset.
    let block = Block::open(&block_dir).unwrap();
    let err = block.verify_chunks().unwrap_err();
    assert_names(&err, "chunks");
    drop(block);

    let db = Db::open(dir.path(), options()).unwrap();
    assert!(db.blocks().iter().any(|b| b.id() == id));
    let err = read_range(&db, range).unwrap_err();
    assert_names(&err, "chunks");
    // Everything after the damaged block is served.
    let after = TimeRange::new(range.end + 1, i64::MAX);
    let ts = common_timestamps(&read_range(&db, after).unwrap());
    let expected: Vec<i64> = all_timestamps()
        .into_iter()
        .filter(|t| *t > range.end)
        .collect();
    assert_eq!(ts, expected);
}

#[test]
fn block_tombstones_damage_moves_the_block_aside() {
    // Served without its tombstones, the block would bring deleted samples
    // back: it is refused like any damaged block.
    for damage in ["bit flip", "truncated"] {
        let dir = tempfile::tempdir().unwrap();
        let (id, block_dir, range) = db_with_blocks(dir.path());
        {
            let db = Db::open(dir.path(), options()).unwrap();
            let matchers = [tsdb::model::Matcher::equal("series", "3")];
            db.delete(&matchers, range.start, range.start + 5_000)
                .unwrap();
            db.close().unwrap();
        }
        let tombstones = block_dir.join(tsdb::block::TOMBSTONES_FILE);
        let len = file_len(&tombstones);
        if damage == "bit flip" {
            flip_byte(&tombstones, len - 6);
        } else {
            truncate(&tombstones, len - 2);
        }
        let err = Block::open(&block_dir).unwrap_err();
        assert!(matches!(err, Error::Corrupted { .. }), "{damage}: {err}");
        assert_names(&err, "tombstones");
        let db = Db::open(dir.path(), options()).unwrap();
        assert_eq!(db.blocks_moved_aside(), 1);
        drop(db);
        assert_moved_aside_rest_served(dir.path(), id, range);
    }
}

#[test]
fn block_chunks_truncated_fails_on_open_or_read_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (id, block_dir, range) = db_with_blocks(dir.path());
    let chunks = chunk_segment(&block_dir);
    truncate(&chunks, file_len(&chunks) / 2);
    match Block::open(&block_dir) {
        Err(err) => {
            println!("truncated chunks fail the open: {err}");
            assert_names(&err, "chunks");
            assert_moved_aside_rest_served(dir.path(), id, range);
        }
        Ok(block) => {
            let err = block.verify_chunks().unwrap_err();
            println!("truncated chunks fail reads: {err}");
            assert_names(&err, "chunks");
            drop(block);
            let db = Db::open(dir.path(), options()).unwrap();
            let err = read_range(&db, range).unwrap_err();
            assert_names(&err, "chunks");
        }
    }
}

// ---- interrupted block writes and compactions ----

#[test]
fn leftovers_of_interrupted_block_writes_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    write_db(dir.path(), true);
    let before = {
        let db = Db::open(dir.path(), options()).unwrap();
        read_all(&db)
    };
    let id = BlockId::new(0);
    for leftover in [
        format!("{id}.tmp-for-creation"),
        format!("{id}.tmp-for-deletion"),
    ] {
        std::fs::create_dir_all(dir.path().join(&leftover).join("chunks")).unwrap();
        std::fs::write(dir.path().join(&leftover).join("index"), b"half").unwrap();
    }
    let db = Db::open(dir.path(), options()).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(".tmp-for-")),
        "leftovers removed: {names:?}"
    );
    assert_eq!(read_all(&db), before);
}

#[test]
fn blocks_already_compacted_are_deleted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    write_db(dir.path(), true);
    let before = {
        let db = Db::open(dir.path(), options()).unwrap();
        read_all(&db)
    };
    // The state a crash leaves after a compaction renamed its output into
    // place but before it deleted the inputs.
    // The two oldest blocks, adjacent in time as the planner picks them.
    let mut inputs: Vec<Block> = list_block_dirs(dir.path())
        .unwrap()
        .iter()
        .map(|(_, d)| Block::open(d).unwrap())
        .collect();
    inputs.sort_by_key(|b| b.meta().min_time);
    inputs.truncate(2);
    let input_ids: Vec<BlockId> = inputs.iter().map(Block::id).collect();
    let merged = tsdb::block::compact::compact(dir.path(), &inputs, BlockId::new(1))
        .unwrap()
        .unwrap();
    drop(inputs);

    let db = Db::open(dir.path(), options()).unwrap();
    let ids: Vec<BlockId> = db.blocks().iter().map(Block::id).collect();
    assert!(ids.contains(&merged.ulid));
    for id in &input_ids {
        assert!(!ids.contains(id), "parent {id} deleted");
        assert!(!dir.path().join(id.to_string()).exists());
    }
    let metas: Vec<_> = db.blocks().iter().map(|b| b.meta().clone()).collect();
    for pair in metas.windows(2) {
        assert!(
            pair[0].max_time <= pair[1].min_time,
            "no overlapping blocks"
        );
    }
    assert_eq!(read_all(&db), before);
}
