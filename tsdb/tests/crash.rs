//! Crash test: a child process (this binary, re-executed with
//! `SEXTANT_CRASH_CHILD_DIR` set) appends batches to a `Db` with
//! fsync-on-commit and prints each batch id once `commit` returns; the
//! parent SIGKILLs it at seeded random points, reopens the database, and
//! checks that every acknowledged sample is there, bit-exactly. The child
//! also runs maintenance, so kills land in block writes, WAL checkpoints
//! and compactions too.
//!
//! A second round aims the kills at maintenance: its child announces each
//! head compaction (head -> block, WAL checkpoint, block compaction) on
//! stdout before starting it, and the parent kills it a seeded random
//! while after the n-th announcement. After every kill the reopened
//! directory must hold no temporary or corrupted block directories, only
//! complete blocks that do not overlap, and every acknowledged sample
//! exactly once.
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
const CHILD_MODE_ENV: &str = "SEXTANT_CRASH_CHILD_MODE";
/// Printed by a compaction-mode child just before it compacts.
const COMPACTING: &str = "compacting";
const ITERATIONS: usize = 25;
const COMPACTION_ITERATIONS: usize = 25;
const N_SERIES: usize = 20;
/// Each batch is one second later than the one before.
const BATCH_MS: i64 = 1000;

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        let start: u64 = std::env::var(CHILD_START_ENV).unwrap().parse().unwrap();
        let mode = std::env::var(CHILD_MODE_ENV).unwrap();
        child(Path::new(&dir), start, Mode::parse(&mode));
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Compacts every ten batches; kills land anywhere.
    Ingest,
    /// Compacts as soon as the head holds a block's worth, announcing it;
    /// kills land in compactions.
    Compaction,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Ingest => "ingest",
            Mode::Compaction => "compaction",
        }
    }

    fn parse(s: &str) -> Mode {
        match s {
            "ingest" => Mode::Ingest,
            "compaction" => Mode::Compaction,
            other => panic!("unknown mode {other}"),
        }
    }
}

/// Appends and commits batches from `start` on, printing each batch id
/// after its commit returned, until killed.
fn child(dir: &Path, start: u64, mode: Mode) {
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
        match mode {
            Mode::Ingest => {
                if batch.is_multiple_of(10) {
                    db.compact().unwrap();
                }
            }
            Mode::Compaction => {
                let span = db
                    .head()
                    .max_time()
                    .zip(db.head().min_time())
                    .map_or(0, |(max, min)| max - min);
                // `Db::compact` cuts a block once the head spans 1.5 ranges.
                if span > 90 * BATCH_MS {
                    if writeln!(stdout, "{COMPACTING}")
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        return;
                    }
                    db.compact().unwrap();
                }
            }
        }
    }
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5eed_c0de);
    let mut totals = Totals::default();
    let mut acked: Option<u64> = None;
    for iteration in 0..ITERATIONS {
        let kill_after = rng.random_range(1..=60);
        acked = run_child(
            dir.path(),
            Mode::Ingest,
            acked,
            iteration,
            |event, received| matches!(event, Event::Acked(_)) && received >= kill_after,
        );
        totals.add(verify(dir.path(), acked.unwrap(), iteration));
    }
    let db = Db::open(dir.path(), options()).unwrap();
    assert!(
        db.blocks().len() > 1,
        "the children wrote and compacted blocks"
    );
    drop(db);

    // Kills aimed at compactions, in a fresh directory.
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Option<u64> = None;
    let mut merged_seen = false;
    for iteration in 0..COMPACTION_ITERATIONS {
        let nth = rng.random_range(1..=2);
        // How long after the announcement to kill: spread over the
        // compaction (which takes milliseconds), sometimes past it.
        let spin_us = rng.random_range(0..20_000);
        let mut announced = 0;
        acked = run_child(
            dir.path(),
            Mode::Compaction,
            acked,
            iteration,
            |event, _| {
                if matches!(event, Event::Compacting) {
                    announced += 1;
                    if announced == nth {
                        spin(Duration::from_micros(spin_us));
                        return true;
                    }
                }
                false
            },
        );
        totals.add(verify(dir.path(), acked.unwrap(), iteration));
        totals.compaction_kills += 1;
        let db = Db::open(dir.path(), options()).unwrap();
        merged_seen |= db.blocks().iter().any(|b| b.meta().compaction.level > 1);
    }
    assert!(merged_seen, "the compaction children merged blocks");
    println!(
        "{} kills ({} aimed at compactions), {} samples checked, 0 lost",
        ITERATIONS + COMPACTION_ITERATIONS,
        totals.compaction_kills,
        totals.samples_checked
    );
}

#[derive(Default)]
struct Totals {
    samples_checked: u64,
    compaction_kills: usize,
}

impl Totals {
    fn add(&mut self, samples: u64) {
        self.samples_checked += samples;
    }
}

enum Event {
    Acked(u64),
    Compacting,
}

/// Waits without sleeping: the kill lands at a point in the child's work.
fn spin(d: Duration) {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Runs a child from the batch after `acked` and SIGKILLs it once
/// `kill_now(event, acknowledged batches received)` says so; returns the
/// highest acknowledged batch.
fn run_child(
    dir: &Path,
    mode: Mode,
    mut acked: Option<u64>,
    iteration: usize,
    mut kill_now: impl FnMut(&Event, usize) -> bool,
) -> Option<u64> {
    let start = acked.map_or(0, |a| a + 1);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_START_ENV, start.to_string())
        .env(CHILD_MODE_ENV, mode.name())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let event = if line == COMPACTING {
                Event::Compacting
            } else {
                Event::Acked(line.parse::<u64>().unwrap())
            };
            if lines_tx.send(event).is_err() {
                break;
            }
        }
    });
    let mut received = 0;
    loop {
        // A guard against a hung child, not a timing assertion.
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(event) => {
                if let Event::Acked(batch) = event {
                    acked = Some(acked.map_or(batch, |a| a.max(batch)));
                    received += 1;
                }
                if kill_now(&event, received) {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                panic!(
                    "{} iteration {iteration}: child stopped early ({e}, {status})",
                    mode.name()
                );
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    // Lines printed before the kill are acknowledgements too.
    for event in lines.try_iter() {
        if let Event::Acked(batch) = event {
            acked = Some(acked.map_or(batch, |a| a.max(batch)));
        }
    }
    acked
}

/// Every batch up to `acked_up_to` is present with its exact values; later
/// (committed but unacknowledged) batches may be present too. The
/// directory holds complete, non-overlapping blocks only. Returns the
/// number of samples checked.
fn verify(dir: &Path, acked_up_to: u64, iteration: usize) -> u64 {
    let db = Db::open(dir, options()).unwrap();
    check_directory(dir, &db, iteration);
    let mut checked = 0;
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
            checked += 1;
        }
        assert!(
            batch > acked_up_to,
            "iteration {iteration}: series {s} has batches up to {}, {acked_up_to} were acknowledged",
            batch as i64 - 1
        );
    }
    drop(querier);
    db.close().unwrap();
    checked
}

/// After an open: no leftovers of interrupted block writes, no blocks
/// moved aside (a crash must not damage a block), every block directory
/// complete and open, and no two blocks overlapping.
fn check_directory(dir: &Path, db: &Db, iteration: usize) {
    let blocks = db.blocks();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name == "wal" || name == "lock" {
            continue;
        }
        assert!(
            blocks.iter().any(|b| b.id().to_string() == name),
            "iteration {iteration}: unexpected entry {name} in the data directory"
        );
        assert!(dir.join(&name).join("meta.json").is_file());
    }
    for pair in blocks.windows(2) {
        assert!(
            pair[0].meta().max_time <= pair[1].meta().min_time,
            "iteration {iteration}: overlapping blocks {:?} and {:?}",
            pair[0].meta(),
            pair[1].meta()
        );
    }
}
