//! Golden test of the WAL format (`tsdb/docs/format/wal.md`): the committed
//! log in `tests/data/wal/` must be exactly what the code writes today, and
//! must replay to the records it was written from. Regenerate only when the
//! format version is bumped on purpose: `UPDATE_GOLDEN=1 cargo test -p tsdb
//! --test wal_format`. `tests/data/wal-v1/` is the same log as version 1
//! wrote it (no compressed records, no compressed series batch): it must
//! still replay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use tsdb::model::{Labels, STALE_NAN, SeriesRef};
use tsdb::wal::{Record, RefSample, RefSeries, RefTombstone, SyncPolicy, Wal, WalOptions};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wal")
}

fn golden_v1_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wal-v1")
}

/// Thirty series of one metric and a sample each: records large and
/// repetitive enough to be written compressed.
fn scrape_batch() -> (Vec<RefSeries>, Vec<RefSample>) {
    let instances: Vec<String> = (0..30).map(|i| format!("10.0.0.{i}:9100")).collect();
    let series = (0..30u64)
        .map(|i| {
            series(
                3 + i,
                &[
                    ("__name__", "http_requests_total"),
                    ("handler", "/api/v1/query"),
                    ("instance", &instances[i as usize]),
                ],
            )
        })
        .collect();
    let samples = (0..30u64).map(|i| sample(3 + i, 4000, 1.0)).collect();
    (series, samples)
}

fn options() -> WalOptions {
    WalOptions {
        segment_size: 1 << 20,
        sync: SyncPolicy::Never,
    }
}

fn sref(id: u64) -> SeriesRef {
    SeriesRef::new(id).unwrap()
}

fn series(id: u64, pairs: &[(&str, &str)]) -> RefSeries {
    RefSeries {
        series_ref: sref(id),
        labels: Labels::from_pairs(pairs),
    }
}

fn sample(id: u64, t: i64, v: f64) -> RefSample {
    RefSample {
        series_ref: sref(id),
        t,
        v,
    }
}

fn tombstone(id: u64, min_t: i64, max_t: i64) -> RefTombstone {
    RefTombstone {
        series_ref: sref(id),
        min_t,
        max_t,
    }
}

/// Writes the golden log: two series and samples, tombstones for both, a
/// checkpoint that drops series 2 (its tombstone too) and samples before
/// t=2000, then one more samples record.
fn write_golden(dir: &Path) {
    let wal = Wal::open(dir, options(), |_| {}).unwrap();
    wal.log_series(&[
        series(1, &[("__name__", "up"), ("job", "node")]),
        series(2, &[("__name__", "temp_celsius"), ("room", "kitchen")]),
    ]);
    wal.log_samples(&[sample(1, 1000, 1.0), sample(2, 1000, 21.5)])
        .unwrap();
    wal.log_samples(&[sample(1, 2000, 0.0), sample(2, 2000, STALE_NAN)])
        .unwrap();
    wal.log_tombstones(&[tombstone(1, 1000, 2000), tombstone(2, 1000, 2000)])
        .unwrap();
    wal.checkpoint(&|r| r.get() == 1, 2000).unwrap();
    wal.log_samples(&[
        sample(1, 3000, -0.0),
        sample(1, i64::MAX, f64::NEG_INFINITY),
    ])
    .unwrap();
    let (series, samples) = scrape_batch();
    wal.log_series(&series[..10]);
    wal.log_series(&series[10..]);
    wal.log_samples(&samples).unwrap();
    wal.sync().unwrap();
}

fn expected_v1_records() -> Vec<Record> {
    vec![
        Record::Series(vec![series(1, &[("__name__", "up"), ("job", "node")])]),
        Record::Samples(vec![sample(1, 2000, 0.0)]),
        Record::Tombstones(vec![tombstone(1, 1000, 2000)]),
        Record::Samples(vec![
            sample(1, 3000, -0.0),
            sample(1, i64::MAX, f64::NEG_INFINITY),
        ]),
    ]
}

fn expected_records() -> Vec<Record> {
    let (series, samples) = scrape_batch();
    let mut records = expected_v1_records();
    // The two log_series calls before one commit share one record.
    records.push(Record::Series(series));
    records.push(Record::Samples(samples));
    records
}

/// Relative path and content of every file under `dir`, sorted.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for (rel, bytes) in files(from) {
        let path = to.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

#[test]
fn written_log_matches_the_committed_golden_files() {
    let written = tempfile::tempdir().unwrap();
    write_golden(written.path());
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = fs::remove_dir_all(golden_dir());
        copy_dir(written.path(), &golden_dir());
    }
    let names: Vec<String> = files(&golden_dir()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["00000001", "checkpoint.00000000/00000000"]);
    assert_eq!(files(written.path()), files(&golden_dir()));
}

#[test]
fn committed_golden_log_replays_to_its_records() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&golden_dir(), copy.path());
    let mut replayed = Vec::new();
    let _wal = Wal::open(copy.path(), options(), |r| replayed.push(r)).unwrap();
    assert_eq!(replayed, expected_records());
}

#[test]
fn version_1_log_still_replays() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&golden_v1_dir(), copy.path());
    let mut replayed = Vec::new();
    let _wal = Wal::open(copy.path(), options(), |r| replayed.push(r)).unwrap();
    assert_eq!(replayed, expected_v1_records());
}

#[test]
fn golden_compressed_records_are_as_documented() {
    let segment = fs::read(golden_dir().join("00000001")).unwrap();
    let mut frames = Vec::new();
    let mut at = 8;
    while at < segment.len() {
        let len = u32::from_be_bytes(segment[at + 1..at + 5].try_into().unwrap()) as usize;
        frames.push((segment[at], &segment[at + 5..at + 5 + len]));
        at += 5 + len + 4;
    }
    assert_eq!(at, segment.len());
    // The small samples record stays plain; the batch of thirty series is
    // one series record (type 1) with the snappy flag (0x80).
    assert_eq!(frames[0].0, 2);
    assert_eq!(frames[1].0, 0x81);
    let series = snap::raw::Decoder::new()
        .decompress_vec(frames[1].1)
        .unwrap();
    assert!(frames[1].1.len() < series.len());
    // ref 3, three labels, `__name__`.
    assert_eq!(&series[..8], &3u64.to_be_bytes());
    assert_eq!(&series[8..18], b"\x03\x08__name__");
}

#[test]
fn golden_segment_bytes_are_as_documented() {
    let segment = fs::read(golden_dir().join("00000001")).unwrap();
    // Header: magic "SXWL", version 2, three reserved zero bytes.
    assert_eq!(&segment[..8], b"SXWL\x02\x00\x00\x00");
    // One samples record: type 2, payload length, base ref 1, base t 3000,
    // then (ref delta 0, t delta 0, -0.0) and (0, i64::MAX - 3000, -Inf).
    assert_eq!(segment[8], 2);
    let len = u32::from_be_bytes(segment[9..13].try_into().unwrap()) as usize;
    // The compressed batch follows (golden_compressed_records_are_as_documented).
    assert!(segment.len() > 8 + 5 + len + 4);
    let payload = &segment[13..13 + len];
    assert_eq!(&payload[..8], &1u64.to_be_bytes());
    assert_eq!(&payload[8..16], &3000i64.to_be_bytes());
    assert_eq!(&payload[16..18], &[0, 0]);
    assert_eq!(&payload[18..26], &(-0.0f64).to_bits().to_be_bytes());
    let crc = u32::from_be_bytes(segment[13 + len..17 + len].try_into().unwrap());
    assert_eq!(crc, crc32c::crc32c(&segment[8..13 + len]));
}

#[test]
fn golden_tombstones_record_is_as_documented() {
    let checkpoint = fs::read(golden_dir().join("checkpoint.00000000/00000000")).unwrap();
    // Walk the frames after the header to the tombstones record (type 3).
    let mut at = 8;
    let (payload, frame_start) = loop {
        let len = u32::from_be_bytes(checkpoint[at + 1..at + 5].try_into().unwrap()) as usize;
        if checkpoint[at] == 3 {
            break (&checkpoint[at + 5..at + 5 + len], at);
        }
        at += 5 + len + 4;
    };
    // ref 1 (8 bytes), min_t 1000 and max_t 2000 as zigzag varints.
    let mut expected = 1u64.to_be_bytes().to_vec();
    expected.extend_from_slice(&[0xd0, 0x0f, 0xa0, 0x1f]);
    assert_eq!(payload, &expected[..]);
    let crc_at = frame_start + 5 + payload.len();
    let crc = u32::from_be_bytes(checkpoint[crc_at..crc_at + 4].try_into().unwrap());
    assert_eq!(crc, crc32c::crc32c(&checkpoint[frame_start..crc_at]));
}
