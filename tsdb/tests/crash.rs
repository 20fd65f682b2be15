//! Crash test: a child process (this binary, re-executed with
//! `SEXTANT_CRASH_CHILD_DIR` set) appends batches to a `Db` with
//! fsync-on-commit and prints each batch id once `commit` returns; the
//! parent SIGKILLs it at seeded random points, reopens the database, and
//! checks that every acknowledged sample is there, bit-exactly. The child
//! also runs maintenance, so kills land in block writes, WAL checkpoints
//! and compactions too.
//!
//! `harness = false`: one `main` is both parent and child.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tsdb::clock::{Clock, ManualClock};
use tsdb::db::{Db, DbOptions};
use tsdb::model::{Labels, STALE_NAN, Sample, SeriesRef, TimeRange};
use tsdb::storage::{Appendable, Queryable, SelectHints};
use tsdb::wal::{SyncPolicy, WalOptions};

const TEST_NAME: &str = "acknowledged_samples_survive_sigkill";
const CHILD_DIR_ENV: &str = "SEXTANT_CRASH_CHILD_DIR";
const CHILD_START_ENV: &str = "SEXTANT_CRASH_CHILD_START";
const ITERATIONS: usize = 25;
const N_SERIES: usize = 20;
/// Each batch is one second later than the one before.
const BATCH_MS: i64 = 1000;

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        let start: u64 = std::env::var(CHILD_START_ENV).unwrap().parse().unwrap();
        child(Path::new(&dir), start);
        return;
    }
    // Behave like libtest enough for `cargo test` filters and listing.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{TEST_NAME}: test");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| TEST_NAME.contains(f.as_str())) {
        return;
    }
    parent();
    println!("test {TEST_NAME} ... ok");
}

fn options() -> DbOptions {
    DbOptions {
        clock: Arc::new(ManualClock::new(0)) as Arc<dyn Clock>,
        // A one-minute block range makes the child cut blocks, checkpoint
        // the WAL and compact blocks every minute of batches.
        block_range: Duration::from_secs(60),
        retention_time: None,
        wal: WalOptions {
            segment_size: 64 << 10,
            sync: SyncPolicy::EveryCommit,
        },
        ..DbOptions::default()
    }
}

fn labels(s: usize) -> Labels {
    Labels::from_pairs(&[("__name__", "crash_test"), ("series", &s.to_string())])
}

fn value(batch: u64, s: usize) -> f64 {
    if (batch as usize + s).is_multiple_of(13) {
        STALE_NAN
    } else {
        batch as f64 * 10.0 + s as f64
    }
}

/// Appends and commits batches from `start` on, printing each batch id
/// after its commit returned, until killed.
fn child(dir: &Path, start: u64) {
    let db = Db::open(dir, options()).unwrap();
    let mut refs: Vec<Option<SeriesRef>> = vec![None; N_SERIES];
    let mut stdout = std::io::stdout().lock();
    for batch in start..start + 100_000 {
        let t = batch as i64 * BATCH_MS;
        let mut app = db.appender();
        for (s, r) in refs.iter_mut().enumerate() {
            *r = Some(
                app.append(*r, &labels(s), Sample::new(t, value(batch, s)))
                    .unwrap(),
            );
        }
        app.commit().unwrap();
        if writeln!(stdout, "{batch}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The parent is gone.
            return;
        }
        if batch.is_multiple_of(10) {
            db.compact().unwrap();
        }
    }
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5eed_c0de);
    let mut acked: Option<u64> = None;
    for iteration in 0..ITERATIONS {
        let start = acked.map_or(0, |a| a + 1);
        let kill_after = rng.random_range(1..=60);
        let mut child = Command::new(&exe)
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_START_ENV, start.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line.parse::<u64>().unwrap()).is_err() {
                    break;
                }
            }
        });
        let mut received = 0;
        while received < kill_after {
            // A guard against a hung child, not a timing assertion.
            match lines.recv_timeout(Duration::from_secs(120)) {
                Ok(batch) => {
                    acked = Some(acked.map_or(batch, |a| a.max(batch)));
                    received += 1;
                }
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().unwrap();
                    panic!("iteration {iteration}: child stopped early ({e}, {status})");
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        // Lines printed before the kill are acknowledgements too.
        for batch in lines.try_iter() {
            acked = Some(acked.map_or(batch, |a| a.max(batch)));
        }
        let acked_up_to = acked.unwrap();
        verify(dir.path(), acked_up_to, iteration);
    }
    let db = Db::open(dir.path(), options()).unwrap();
    println!(
        "{ITERATIONS} kills, batches 0..={} acknowledged, {} blocks, head from {:?}",
        acked.unwrap_or(0),
        db.blocks().len(),
        db.head().min_time()
    );
    assert!(
        db.blocks().len() > 1,
        "the children wrote and compacted blocks"
    );
}

/// Every batch up to `acked_up_to` is present with its exact values; later
/// (committed but unacknowledged) batches may be present too.
fn verify(dir: &Path, acked_up_to: u64, iteration: usize) {
    let db = Db::open(dir, options()).unwrap();
    let querier = db.querier(TimeRange::all()).unwrap();
    let set = querier
        .select(&[], &SelectHints::for_range(TimeRange::all()))
        .unwrap();
    assert_eq!(set.series.len(), N_SERIES, "iteration {iteration}");
    for mut series in set.series {
        let s: usize = series.labels.get("series").unwrap().parse().unwrap();
        let mut batch = 0;
        while let Some(sample) = series.samples.next() {
            assert_eq!(
                sample.t,
                batch as i64 * BATCH_MS,
                "iteration {iteration}: series {s} misses batch {batch}"
            );
            assert_eq!(sample.v.to_bits(), value(batch, s).to_bits());
            batch += 1;
        }
        assert!(
            batch > acked_up_to,
            "iteration {iteration}: series {s} has batches up to {}, {acked_up_to} were acknowledged",
            batch as i64 - 1
        );
    }
    drop(querier);
    db.close().unwrap();
}
