//! End-to-end: 100k series over 12 simulated hours through `Db`, with head
//! compaction into blocks, block compaction, a reopen (blocks + WAL
//! replay), and every sample read back bit-exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tsdb::clock::{Clock, ManualClock};
use tsdb::db::{Db, DbOptions};
use tsdb::model::{Labels, MatchOp, Matcher, STALE_NAN, Sample, SeriesRef, TimeRange};
use tsdb::storage::{Appendable, Queryable, SelectHints};
use tsdb::wal::{SyncPolicy, WalOptions};

const N_SERIES: usize = 100_000;
const HOUR: i64 = 60 * 60 * 1000;
/// Sparse samples keep the test fast while spanning many block ranges.
const STEP: i64 = 15 * 60 * 1000;
const END: i64 = 12 * HOUR;
/// Wall-clock start of the simulated run, aligned to the 2 h, 6 h, 18 h and
/// 54 h compaction ranges (which are aligned to the Unix epoch).
const EPOCH: i64 = 1_750_000_000_000 / (54 * HOUR) * (54 * HOUR);

fn labels(i: usize) -> Labels {
    Labels::from_pairs(&[
        ("__name__", format!("metric_{}", i % 50).as_str()),
        ("instance", format!("host-{}:9100", i / 50).as_str()),
        ("job", "e2e"),
    ])
}

/// Deterministic, varied values: counters, a staleness marker now and then,
/// NaN, negative zero.
fn value(i: usize, t: i64) -> f64 {
    let k = (t - EPOCH) / STEP;
    match (i as i64 + k) % 97 {
        0 => STALE_NAN,
        1 => f64::NAN,
        2 => -0.0,
        _ => (k * (i as i64 % 7 + 1)) as f64 + i as f64 * 0.25,
    }
}

fn options(clock: &Arc<ManualClock>) -> DbOptions {
    DbOptions {
        clock: Arc::clone(clock) as Arc<dyn Clock>,
        retention_time: None,
        wal: WalOptions {
            segment_size: 8 << 20,
            sync: SyncPolicy::Never,
        },
        ..DbOptions::default()
    }
}

/// Reads every series of the metric names and checks each sample.
fn check_all(db: &Db) {
    let querier = db.querier(TimeRange::all()).unwrap();
    let matcher = Matcher::new(MatchOp::RegexMatch, "__name__", "metric_.*").unwrap();
    let set = querier
        .select(&[matcher], &SelectHints::for_range(TimeRange::all()))
        .unwrap();
    assert!(set.warnings.is_empty());
    assert_eq!(set.series.len(), N_SERIES);
    for pair in set.series.windows(2) {
        assert!(pair[0].labels < pair[1].labels, "series are sorted");
    }
    let mut n_samples = 0;
    for mut series in set.series {
        let instance = series.labels.get("instance").unwrap();
        let host: usize = instance
            .trim_start_matches("host-")
            .trim_end_matches(":9100")
            .parse()
            .unwrap();
        let name = series.labels.metric_name().unwrap();
        let i = host * 50 + name.trim_start_matches("metric_").parse::<usize>().unwrap();
        assert_eq!(series.labels, labels(i));
        let mut t = EPOCH;
        while let Some(sample) = series.samples.next() {
            assert_eq!(sample.t, t, "series {i}");
            assert_eq!(
                sample.v.to_bits(),
                value(i, t).to_bits(),
                "series {i} at {t}"
            );
            t += STEP;
            n_samples += 1;
        }
        assert_eq!(t, EPOCH + END, "series {i} ends early");
    }
    assert_eq!(n_samples, N_SERIES * (END / STEP) as usize);
}

#[test]
fn hundred_thousand_series_survive_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(EPOCH));
    let db = Db::open(dir.path(), options(&clock)).unwrap();

    let mut refs: Vec<Option<SeriesRef>> = vec![None; N_SERIES];
    let mut t = EPOCH;
    while t < EPOCH + END {
        clock.set(t);
        let mut app = db.appender();
        for (i, r) in refs.iter_mut().enumerate() {
            *r = Some(
                app.append(*r, &labels(i), Sample::new(t, value(i, t)))
                    .unwrap(),
            );
        }
        app.commit().unwrap();
        // The owner runs maintenance periodically; here once an hour.
        if (t - EPOCH) % HOUR == 0 {
            db.compact().unwrap();
        }
        t += STEP;
    }
    let report = db.compact().unwrap();
    // The head spans 8h..11:45h: [8h,10h) is cut now.
    assert_eq!(report.head_blocks.len(), 1);

    // Head blocks [0,2h) .. [8h,10h) were cut; [0,6h) was merged from the
    // first three.
    let ranges: Vec<(i64, i64, u32)> = db
        .blocks()
        .iter()
        .map(|b| {
            let m = b.meta();
            (m.min_time - EPOCH, m.max_time - EPOCH, m.compaction.level)
        })
        .collect();
    assert_eq!(
        ranges,
        [
            (0, 6 * HOUR, 2),
            (6 * HOUR, 8 * HOUR, 1),
            (8 * HOUR, 10 * HOUR, 1)
        ]
    );
    assert_eq!(db.head().min_time(), Some(EPOCH + 10 * HOUR));
    check_all(&db);

    let querier = db.querier(TimeRange::all()).unwrap();
    assert_eq!(querier.label_values("__name__", &[]).unwrap().len(), 50);
    assert_eq!(
        querier
            .label_values("instance", &[Matcher::equal("__name__", "metric_0")])
            .unwrap()
            .len(),
        N_SERIES / 50
    );
    drop(querier);
    db.close().unwrap();

    // Reopen: blocks from disk, the head from the WAL checkpoint and
    // segments.
    let db = Db::open(dir.path(), options(&clock)).unwrap();
    assert_eq!(db.blocks().len(), 3);
    assert_eq!(db.head().stats().n_series, N_SERIES);
    check_all(&db);
}
