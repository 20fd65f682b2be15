//! Disk full: commits fail with a clear error naming the WAL segment,
//! the failure is counted, queries keep answering, and ingestion resumes
//! once space returns, losing nothing acknowledged.
//!
//! "Disk full" is simulated without privileges: the test re-executes
//! itself as a child process that lowers its own `RLIMIT_FSIZE` soft limit
//! (with `SIGXFSZ` ignored, so writes past it fail with `EFBIG` instead of
//! killing the process) and raises it again to the hard limit when "space
//! returns". The limit is process-wide, hence the child.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tsdb::Error;
use tsdb::clock::{Clock, ManualClock};
use tsdb::db::{Db, DbOptions};
use tsdb::model::{Labels, Sample, TimeRange};
use tsdb::storage::{Appendable, Queryable, SelectHints};
use tsdb::wal::{SyncPolicy, WalOptions};

const CHILD_ENV: &str = "SEXTANT_DISK_FULL_CHILD_DIR";
const N_SERIES: usize = 50;

#[test]
fn ingestion_stops_on_a_full_disk_and_resumes_when_space_returns() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ingestion_stops_on_a_full_disk_and_resumes_when_space_returns",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(output.status.success(), "child failed: {}", output.status);
    assert!(
        stdout.contains("disk full child done"),
        "the child ran the scenario"
    );
    // Reopened without any limit: everything acknowledged is there.
    verify(dir.path(), &acknowledged_batches(), "parent");
}

fn options() -> DbOptions {
    DbOptions {
        clock: Arc::new(ManualClock::new(0)) as Arc<dyn Clock>,
        block_range: Duration::from_secs(3600),
        retention_time: None,
        wal: WalOptions {
            segment_size: 16 << 20,
            sync: SyncPolicy::EveryCommit,
        },
        ..DbOptions::default()
    }
}

fn labels(s: usize) -> Labels {
    Labels::from_pairs(&[("__name__", "disk_full_test"), ("series", &s.to_string())])
}

/// Batches 0..20 before the disk fills, 20..25 rejected, 25..40 after
/// space returns. Batch 20 onwards also carry series `N_SERIES` (created
/// while the disk is full: its series record must still reach the WAL).
const FULL_FROM: u64 = 20;
const SPACE_FROM: u64 = 25;
const END: u64 = 40;

fn acknowledged_batches() -> Vec<u64> {
    (0..FULL_FROM).chain(SPACE_FROM..END).collect()
}

fn series_in(batch: u64) -> usize {
    if batch >= FULL_FROM {
        N_SERIES + 1
    } else {
        N_SERIES
    }
}

fn value(batch: u64, s: usize) -> f64 {
    batch as f64 * 1000.0 + s as f64
}

fn commit_batch(db: &Db, batch: u64) -> tsdb::Result<()> {
    let mut app = db.appender();
    for s in 0..series_in(batch) {
        app.append(
            None,
            &labels(s),
            Sample::new(batch as i64 * 1000, value(batch, s)),
        )?;
    }
    app.commit()
}

fn set_file_size_limit(limit: Option<u64>) {
    unsafe {
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut current), 0);
        let new = libc::rlimit {
            rlim_cur: limit.map_or(current.rlim_max, |l| l as libc::rlim_t),
            rlim_max: current.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &new), 0);
    }
}

fn newest_wal_segment(dir: &Path) -> (std::path::PathBuf, u64) {
    let mut segments: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    segments.sort();
    let newest = segments.pop().unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    (newest, len)
}

fn child(dir: &Path) {
    unsafe {
        assert_ne!(
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN),
            libc::SIG_ERR,
            "ignore SIGXFSZ"
        );
    }
    let db = Db::open(dir, options()).unwrap();
    for batch in 0..FULL_FROM {
        commit_batch(&db, batch).unwrap();
    }
    let wal = db.head().wal().unwrap();
    assert_eq!(wal.writes_failed(), 0);

    // The disk fills up: the current segment may grow by 100 bytes, less
    // than a batch.
    let (segment, len) = newest_wal_segment(dir);
    set_file_size_limit(Some(len + 100));
    for batch in FULL_FROM..SPACE_FROM {
        let err = commit_batch(&db, batch).unwrap_err();
        match &err {
            Error::Io { path, source } => {
                assert_eq!(path, &segment, "the error names the segment: {err}");
                assert_eq!(source.raw_os_error(), Some(libc::EFBIG), "{err}");
            }
            other => panic!("batch {batch}: expected an IO error, got {other}"),
        }
        println!("batch {batch} rejected: {err}");
        // Queries keep working, and see nothing of the rejected batch.
        verify_db(&db, &(0..FULL_FROM).collect::<Vec<_>>(), "while full");
    }
    assert_eq!(wal.writes_failed(), SPACE_FROM - FULL_FROM);
    let (_, len_while_full) = newest_wal_segment(dir);
    assert!(
        len_while_full <= len + 100,
        "torn records are cut off: {len_while_full} > {}",
        len + 100
    );

    // Space returns: ingestion resumes in the same process.
    set_file_size_limit(None);
    for batch in SPACE_FROM..END {
        commit_batch(&db, batch).unwrap();
    }
    assert_eq!(wal.writes_failed(), SPACE_FROM - FULL_FROM);
    verify_db(&db, &acknowledged_batches(), "after space returned");
    drop(db);
    // The WAL replays cleanly: the rejected batches left nothing behind,
    // and the series created while the disk was full is there.
    verify(dir, &acknowledged_batches(), "child reopen");
    println!("disk full child done");
}

fn verify(dir: &Path, batches: &[u64], when: &str) {
    let db = Db::open(dir, options()).unwrap();
    verify_db(&db, batches, when);
}

/// The database holds exactly `batches`, every series with its values.
fn verify_db(db: &Db, batches: &[u64], when: &str) {
    let querier = db.querier(TimeRange::all()).unwrap();
    let set = querier
        .select(&[], &SelectHints::for_range(TimeRange::all()))
        .unwrap();
    let max_series = batches.iter().map(|b| series_in(*b)).max().unwrap();
    assert_eq!(set.series.len(), max_series, "{when}: series");
    for mut series in set.series {
        let s: usize = series.labels.get("series").unwrap().parse().unwrap();
        let expected: Vec<u64> = batches
            .iter()
            .copied()
            .filter(|b| s < series_in(*b))
            .collect();
        let mut got = Vec::new();
        while let Some(sample) = series.samples.next() {
            let batch = (sample.t / 1000) as u64;
            assert_eq!(sample.v, value(batch, s), "{when}: series {s}");
            got.push(batch);
        }
        assert_eq!(got, expected, "{when}: series {s}");
    }
}
