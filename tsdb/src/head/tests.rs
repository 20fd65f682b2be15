use std::time::Duration;

use super::*;
use crate::model::{Label, MatchOp, STALE_NAN};
use crate::wal::SyncPolicy;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs)
}

fn metric(name: &str, instance: &str) -> Labels {
    labels(&[("__name__", name), ("instance", instance), ("job", "node")])
}

/// Appends `samples` to one series in one batch and commits.
fn append_all(head: &Head, l: &Labels, samples: &[(i64, f64)]) {
    let mut app = head.appender();
    for &(t, v) in samples {
        app.append(None, l, Sample::new(t, v)).unwrap();
    }
    app.commit().unwrap();
}

/// Every series and its samples (value bits) for `matchers` over all time.
fn read(q: &dyn Queryable, matchers: &[Matcher]) -> Vec<(String, Vec<(i64, u64)>)> {
    read_range(q, matchers, i64::MIN, i64::MAX)
}

fn read_range(
    q: &dyn Queryable,
    matchers: &[Matcher],
    start: i64,
    end: i64,
) -> Vec<(String, Vec<(i64, u64)>)> {
    let querier = q.querier(TimeRange::new(start, end)).unwrap();
    let set = querier
        .select(
            matchers,
            &SelectHints::for_range(TimeRange::new(start, end)),
        )
        .unwrap();
    set.series
        .into_iter()
        .map(|mut s| {
            let mut samples = Vec::new();
            while let Some(x) = s.samples.next() {
                samples.push((x.t, x.v.to_bits()));
            }
            (s.labels.to_string(), samples)
        })
        .collect()
}

fn bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

#[test]
fn appended_samples_read_back_bit_exactly_sorted_by_labels() {
    let head = Head::new(HeadOptions::default());
    let samples = [
        (1000, 1.0),
        (2000, STALE_NAN),
        (3000, -0.0),
        (4000, f64::INFINITY),
        (5000, f64::from_bits(0x7ff8_0000_dead_beef)),
    ];
    append_all(&head, &metric("up", "b:1"), &samples);
    append_all(&head, &metric("up", "a:1"), &samples[..1]);
    let got = read(&head, &[Matcher::equal("__name__", "up")]);
    assert_eq!(
        got,
        vec![
            (
                r#"{__name__="up", instance="a:1", job="node"}"#.to_string(),
                bits(&samples[..1])
            ),
            (
                r#"{__name__="up", instance="b:1", job="node"}"#.to_string(),
                bits(&samples)
            ),
        ]
    );
    let stats = head.stats();
    assert_eq!(stats.n_series, 2);
    assert_eq!(stats.min_t, Some(1000));
    assert_eq!(stats.max_t, Some(5000));
    assert_eq!(stats.samples_appended, 6);
}

#[test]
fn select_clips_to_the_querier_and_hint_ranges() {
    let head = Head::new(HeadOptions::default());
    let samples: Vec<(i64, f64)> = (0..10).map(|i| (i * 1000, i as f64)).collect();
    append_all(&head, &metric("up", "a"), &samples);
    let got = read_range(&head, &[], 2500, 5000);
    assert_eq!(got[0].1, bits(&samples[3..=5]));
    assert!(read_range(&head, &[], 10_000, 20_000).is_empty());

    // series_only keeps the series with data in range, without samples.
    let querier = head.querier(TimeRange::new(0, 9000)).unwrap();
    let hints = SelectHints {
        start: 0,
        end: 9000,
        series_only: true,
        ..SelectHints::default()
    };
    let mut set = querier.select(&[], &hints).unwrap();
    assert_eq!(set.series.len(), 1);
    assert!(set.series[0].samples.next().is_none());
}

#[test]
fn hint_returns_the_same_ref_and_skips_the_lookup() {
    let head = Head::new(HeadOptions::default());
    let l = metric("up", "a");
    let mut app = head.appender();
    let r1 = app.append(None, &l, Sample::new(1, 1.0)).unwrap();
    // With a valid hint the labels are not consulted at all.
    let r2 = app
        .append(Some(r1), &Labels::empty(), Sample::new(2, 2.0))
        .unwrap();
    assert_eq!(r1, r2);
    // A stale hint falls back to the labels.
    let stale = SeriesRef::new(9999).unwrap();
    assert_eq!(
        app.append(Some(stale), &l, Sample::new(3, 3.0)).unwrap(),
        r1
    );
    app.commit().unwrap();
    assert_eq!(read(&head, &[])[0].1, bits(&[(1, 1.0), (2, 2.0), (3, 3.0)]));
}

#[test]
fn a_handle_outliving_its_series_never_finds_another() {
    let head = Head::new(HeadOptions::default());
    let range = head.options().cut_rules.chunk_range_ms;
    let (old, new) = (metric("up", "old"), metric("up", "new"));
    let mut app = head.appender();
    let old_ref = app.append(None, &old, Sample::new(0, 1.0)).unwrap();
    app.commit().unwrap();
    head.truncate(range).unwrap();
    assert_eq!(head.stats().n_series, 0);
    // Series created after the removal may take the freed position, under
    // another handle.
    let mut app = head.appender();
    let new_refs: Vec<SeriesRef> = (0..40)
        .map(|i| {
            let l = metric("up", &format!("new-{i}"));
            app.append(None, &l, Sample::new(range, 2.0)).unwrap()
        })
        .collect();
    let new_ref = app.append(None, &new, Sample::new(range, 2.0)).unwrap();
    assert!(!new_refs.contains(&old_ref) && new_ref != old_ref);
    // The old handle alone: a clear error, not another series.
    assert_eq!(
        app.append(Some(old_ref), &Labels::empty(), Sample::new(range + 1, 3.0)),
        Err(AppendError::UnknownSeriesRef(old_ref.get()))
    );
    // With its labels, the series is found (here: created) again.
    let again = app
        .append(Some(old_ref), &old, Sample::new(range + 1, 3.0))
        .unwrap();
    assert!(again != old_ref && again != new_ref && !new_refs.contains(&again));
    app.commit().unwrap();
    assert_eq!(
        read(&head, &[Matcher::equal("instance", "old")]),
        vec![(old.to_string(), bits(&[(range + 1, 3.0)]))]
    );
    assert_eq!(
        read(&head, &[Matcher::equal("instance", "new")]),
        vec![(new.to_string(), bits(&[(range, 2.0)]))]
    );
}

#[test]
fn errors_of_appends_by_handle_name_the_series() {
    let head = Head::new(HeadOptions::default());
    let l = metric("up", "a");
    let mut app = head.appender();
    let r = app.append(None, &l, Sample::new(1000, 1.0)).unwrap();
    app.commit().unwrap();
    let mut app = head.appender();
    assert_eq!(
        app.append(Some(r), &Labels::empty(), Sample::new(500, 1.0)),
        Err(AppendError::OutOfOrderSample {
            labels: l.clone(),
            t: 500,
            last_t: 1000
        })
    );
    assert!(matches!(
        app.append(Some(r), &Labels::empty(), Sample::new(1000, 2.0)),
        Err(AppendError::DuplicateSample { labels, .. }) if labels == l
    ));
}

#[test]
fn out_of_order_and_duplicate_samples_follow_prometheus() {
    let head = Head::new(HeadOptions::default());
    let l = metric("up", "a");
    append_all(&head, &l, &[(1000, 1.0), (2000, 2.0)]);
    let mut app = head.appender();
    assert_eq!(
        app.append(None, &l, Sample::new(1500, 5.0)),
        Err(AppendError::OutOfOrderSample {
            labels: l.clone(),
            t: 1500,
            last_t: 2000
        })
    );
    assert_eq!(
        app.append(None, &l, Sample::new(2000, 3.0)),
        Err(AppendError::DuplicateSample {
            labels: l.clone(),
            t: 2000,
            stored: 2.0,
            new: 3.0
        })
    );
    // The identical sample is a silent no-op.
    assert!(app.append(None, &l, Sample::new(2000, 2.0)).is_ok());
    // NaNs compare by bits: the stale marker is not a duplicate of a NaN.
    app.append(None, &l, Sample::new(3000, f64::NAN)).unwrap();
    assert!(matches!(
        app.append(None, &l, Sample::new(3000, STALE_NAN)),
        Err(AppendError::DuplicateSample { .. })
    ));
    assert!(app.append(None, &l, Sample::new(3000, f64::NAN)).is_ok());
    // Disorder within the batch is caught too.
    assert!(matches!(
        app.append(None, &l, Sample::new(2500, 1.0)),
        Err(AppendError::OutOfOrderSample { last_t: 3000, .. })
    ));
    app.commit().unwrap();
    assert_eq!(
        read(&head, &[])[0].1,
        bits(&[(1000, 1.0), (2000, 2.0), (3000, f64::NAN)])
    );
    assert_eq!(head.stats().samples_dropped, 0);
}

#[test]
fn samples_older_than_the_appendable_window_are_out_of_bounds() {
    let head = Head::new(HeadOptions {
        appendable_window: Some(Duration::from_secs(3600)),
        ..HeadOptions::default()
    });
    let (a, b) = (metric("up", "a"), metric("up", "b"));
    append_all(&head, &a, &[(10_000_000, 1.0)]);
    let mut app = head.appender();
    assert_eq!(
        app.append(None, &b, Sample::new(10_000_000 - 3_600_001, 1.0)),
        Err(AppendError::OutOfBounds {
            labels: b.clone(),
            t: 10_000_000 - 3_600_001,
            min_t: 10_000_000 - 3_600_000
        })
    );
    app.append(None, &b, Sample::new(10_000_000 - 3_600_000, 1.0))
        .unwrap();
    app.commit().unwrap();

    head.set_min_valid_time(20_000_000);
    let mut app = head.appender();
    assert!(matches!(
        app.append(None, &a, Sample::new(19_999_999, 1.0)),
        Err(AppendError::OutOfBounds {
            min_t: 20_000_000,
            ..
        })
    ));
}

#[test]
fn invalid_series_and_series_limit_are_rejected() {
    let head = Head::new(HeadOptions {
        max_series: Some(1),
        ..HeadOptions::default()
    });
    let mut app = head.appender();
    assert!(matches!(
        app.append(None, &Labels::empty(), Sample::new(1, 1.0)),
        Err(AppendError::InvalidSeries { .. })
    ));
    app.append(None, &metric("up", "a"), Sample::new(1, 1.0))
        .unwrap();
    assert_eq!(
        app.append(None, &metric("up", "b"), Sample::new(1, 1.0)),
        Err(AppendError::SeriesLimitExceeded {
            labels: metric("up", "b"),
            limit: 1
        })
    );
    app.commit().unwrap();
    // Refusals are counted; the known series still takes samples.
    assert_eq!(head.stats().series_rejected, 1);
    let mut app = head.appender();
    app.append(None, &metric("up", "a"), Sample::new(2, 1.0))
        .unwrap();
    app.commit().unwrap();
    assert_eq!(head.stats().n_series, 1);
}

#[test]
fn rollback_and_uncommitted_batches_are_invisible() {
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    app.append(None, &metric("up", "a"), Sample::new(1, 1.0))
        .unwrap();
    assert!(read(&head, &[]).is_empty());
    app.rollback();
    assert!(read(&head, &[]).is_empty());
    assert_eq!(head.stats().samples_appended, 0);
}

#[test]
fn matchers_select_through_postings() {
    let head = Head::new(HeadOptions::default());
    append_all(&head, &metric("up", "a"), &[(1, 1.0)]);
    append_all(&head, &metric("up", "b"), &[(1, 1.0)]);
    append_all(&head, &metric("down", "a"), &[(1, 1.0)]);
    append_all(
        &head,
        &labels(&[("__name__", "up"), ("env", "prod")]),
        &[(1, 1.0)],
    );
    let names = |matchers: &[Matcher]| -> Vec<String> {
        read(&head, matchers).into_iter().map(|(l, _)| l).collect()
    };
    let m = |op, name: &str, value: &str| Matcher::new(op, name, value).unwrap();
    assert_eq!(
        names(&[
            m(MatchOp::Equal, "__name__", "up"),
            m(MatchOp::Equal, "instance", "a")
        ]),
        [r#"{__name__="up", instance="a", job="node"}"#]
    );
    assert_eq!(names(&[m(MatchOp::NotEqual, "instance", "a")]).len(), 2);
    assert_eq!(
        names(&[m(MatchOp::Equal, "env", "")]).len(),
        3,
        "an empty value matches series without the label"
    );
    assert_eq!(names(&[m(MatchOp::RegexMatch, "instance", "a|b")]).len(), 3);
    assert_eq!(names(&[m(MatchOp::RegexMatch, "instance", ".*")]).len(), 4);
    assert_eq!(names(&[m(MatchOp::RegexMatch, "instance", ".+")]).len(), 3);
    assert_eq!(
        names(&[
            m(MatchOp::RegexNoMatch, "__name__", "u.*"),
            m(MatchOp::Equal, "job", "node")
        ]),
        [r#"{__name__="down", instance="a", job="node"}"#]
    );
    assert!(names(&[m(MatchOp::Equal, "nope", "x")]).is_empty());
    assert_eq!(names(&[]).len(), 4);

    let querier = head.querier(TimeRange::all()).unwrap();
    assert_eq!(
        querier.label_names(&[]).unwrap(),
        ["__name__", "env", "instance", "job"]
    );
    assert_eq!(
        querier
            .label_names(&[m(MatchOp::Equal, "env", "prod")])
            .unwrap(),
        ["__name__", "env"]
    );
    assert_eq!(querier.label_values("instance", &[]).unwrap(), ["a", "b"]);
    assert_eq!(
        querier
            .label_values("instance", &[m(MatchOp::Equal, "__name__", "down")])
            .unwrap(),
        ["a"]
    );
    assert!(querier.label_values("nope", &[]).unwrap().is_empty());
}

#[test]
fn long_series_cut_chunks_and_seek_across_them() {
    let head = Head::new(HeadOptions::default());
    let samples: Vec<(i64, f64)> = (0..2000).map(|i| (i * 15_000, (i % 7) as f64)).collect();
    append_all(&head, &metric("up", "a"), &samples);
    let chunks = head.chunk_stats();
    assert!(chunks.n_chunks >= 16, "{chunks:?}");
    assert_eq!(read(&head, &[])[0].1, bits(&samples));

    let querier = head.querier(TimeRange::all()).unwrap();
    let mut set = querier
        .select(&[], &SelectHints::for_range(TimeRange::all()))
        .unwrap();
    let it = &mut set.series[0].samples;
    assert_eq!(
        it.seek(15_000 * 1500 - 1),
        Some(Sample::new(15_000 * 1500, (1500 % 7) as f64))
    );
    assert_eq!(
        it.seek(0),
        Some(Sample::new(15_000 * 1501, (1501 % 7) as f64))
    );
    assert_eq!(it.seek(i64::MAX), None);
}

#[test]
fn load_range_matches_seek_and_next_across_chunks() {
    let head = Head::new(HeadOptions::default());
    // Chunks of ~120 samples; the last one is the open chunk.
    let samples: Vec<(i64, f64)> = (0..1000)
        .map(|i| {
            (
                i * 15_000 + i % 13,
                if i % 97 == 0 {
                    STALE_NAN
                } else {
                    (i * 3) as f64 / 100.0
                },
            )
        })
        .collect();
    append_all(&head, &metric("up", "a"), &samples);
    let last = 999 * 15_000;
    let ranges = [
        (i64::MIN, i64::MAX),
        (0, 0),
        (15_000 * 100, 15_000 * 400 + 5),
        (15_000 * 119 + 1, 15_000 * 121),
        (last - 300_000, last),
        (last + 1, i64::MAX),
        (-5, -1),
    ];
    for (select_start, select_end) in [(i64::MIN, i64::MAX), (15_000 * 200, 15_000 * 900)] {
        for &(start, end) in &ranges {
            let select = |q: &dyn Querier| {
                q.select(
                    &[],
                    &SelectHints::for_range(TimeRange::new(select_start, select_end)),
                )
                .unwrap()
            };
            let querier = head.querier(TimeRange::all()).unwrap();
            let mut expected = Vec::new();
            let mut set = select(&*querier);
            if let Some(series) = set.series.first_mut() {
                let mut next = series.samples.seek(start);
                while let Some(x) = next.filter(|x| x.t <= end) {
                    expected.push((x.t, x.v.to_bits()));
                    next = series.samples.next();
                }
            }
            let mut got = Vec::new();
            let mut start_timestamps = Vec::new();
            if let Some(series) = select(&*querier).series.first_mut() {
                series
                    .samples
                    .load_range(start, end, &mut got, &mut start_timestamps);
            }
            let got: Vec<_> = got.iter().map(|x| (x.t, x.v.to_bits())).collect();
            assert_eq!(
                got, expected,
                "select {select_start}..={select_end}, load {start}..={end}"
            );
            assert!(start_timestamps.is_empty());
        }
    }
    // Resuming after `next` and `seek` gives the rest.
    let querier = head.querier(TimeRange::all()).unwrap();
    let mut set = querier
        .select(&[], &SelectHints::for_range(TimeRange::all()))
        .unwrap();
    let it = &mut set.series[0].samples;
    it.next();
    it.seek(15_000 * 130);
    let mut rest = Vec::new();
    it.load_range(i64::MIN, i64::MAX, &mut rest, &mut Vec::new());
    let rest: Vec<_> = rest.iter().map(|x| (x.t, x.v.to_bits())).collect();
    assert_eq!(rest, bits(&samples[131..]));
}

#[test]
fn truncate_drops_old_chunks_and_empty_series_and_reuses_slots() {
    let head = Head::new(HeadOptions::default());
    let range = head.options().cut_rules.chunk_range_ms;
    let (old, live) = (metric("up", "old"), metric("up", "live"));
    append_all(&head, &old, &[(0, 1.0), (1000, 2.0)]);
    append_all(&head, &live, &[(0, 1.0), (range, 2.0), (range + 1000, 3.0)]);
    // A series with no samples (its batch was never committed).
    let mut pending = head.appender();
    pending
        .append(None, &metric("up", "pending"), Sample::new(range + 5, 1.0))
        .unwrap();

    head.truncate(range).unwrap();
    assert_eq!(head.stats().n_series, 1);
    assert_eq!(head.stats().min_t, Some(range));
    assert_eq!(
        read(&head, &[]),
        vec![(live.to_string(), bits(&[(range, 2.0), (range + 1000, 3.0)]))]
    );
    let querier = head.querier(TimeRange::all()).unwrap();
    assert_eq!(querier.label_values("instance", &[]).unwrap(), ["live"]);
    // Samples before the truncation point are now out of bounds.
    let mut app = head.appender();
    assert!(matches!(
        app.append(None, &old, Sample::new(range - 1, 1.0)),
        Err(AppendError::OutOfBounds { .. })
    ));
    // The batch created before the truncation still commits: its series is
    // recreated.
    pending.commit().unwrap();
    assert_eq!(head.stats().n_series, 2);
    // Removed strings are swept; a new series reuses the freed slots.
    append_all(&head, &metric("up", "new"), &[(range + 10, 1.0)]);
    assert_eq!(read(&head, &[Matcher::equal("instance", "new")]).len(), 1);
    assert_eq!(read(&head, &[Matcher::equal("instance", "old")]).len(), 0);
    // The head adopted the strings of the labels appended, so "old" stays
    // interned while this test holds `old`, and goes at the next sweep
    // after that.
    assert_eq!(head.stats().n_strings, 9);
    drop(old);
    head.truncate(range).unwrap();
    // __name__ up instance job node live pending new
    assert_eq!(head.stats().n_strings, 8);
}

#[test]
fn concurrent_appenders_on_many_threads() {
    let head = Head::new(HeadOptions::default());
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let head = &head;
            scope.spawn(move || {
                let mut refs: Vec<Option<SeriesRef>> = vec![None; 100];
                for t in 0..50 {
                    let mut app = head.appender();
                    for (i, r) in refs.iter_mut().enumerate() {
                        // Half the series are shared between threads.
                        let instance = if i % 2 == 0 {
                            format!("shared-{i}")
                        } else {
                            format!("t{thread}-{i}")
                        };
                        let l = metric("up", &instance);
                        match app.append(*r, &l, Sample::new(t * 1000, t as f64)) {
                            Ok(new_ref) => *r = Some(new_ref),
                            Err(AppendError::OutOfOrderSample { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    app.commit().unwrap();
                }
            });
        }
    });
    let got = read(&head, &[]);
    assert_eq!(got.len(), 50 + 4 * 50);
    for (_, samples) in got {
        // Shared series may lose samples to a racing thread, never gain
        // disorder.
        assert!(samples.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(!samples.is_empty());
    }
}

#[test]
fn truncation_racing_appends_by_handle_never_mixes_series() {
    use std::sync::atomic::{AtomicI64, Ordering};
    const ROUNDS: i64 = 300;
    let head = Head::new(HeadOptions::default());
    // The oldest round any appender thread is still in.
    let progress = [AtomicI64::new(0), AtomicI64::new(0)];
    std::thread::scope(|scope| {
        for (thread, progress) in progress.iter().enumerate() {
            let head = &head;
            scope.spawn(move || {
                let mut refs: Vec<Option<SeriesRef>> = vec![None; 40];
                for round in 0..ROUNDS {
                    progress.store(round, Ordering::Release);
                    let mut app = head.appender();
                    for (i, r) in refs.iter_mut().enumerate() {
                        // Series pause for 10 rounds in turn, so truncation
                        // removes them while their handles are cached.
                        if (round / 10) % 2 != i as i64 % 2 {
                            continue;
                        }
                        let id = thread * 100 + i;
                        let l = metric("up", &id.to_string());
                        match app.append(*r, &l, Sample::new(round * 1000, id as f64)) {
                            Ok(new_ref) => *r = Some(new_ref),
                            Err(AppendError::OutOfBounds { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    app.commit().unwrap();
                }
                progress.store(ROUNDS, Ordering::Release);
            });
        }
        let head = &head;
        let progress = &progress;
        scope.spawn(move || {
            loop {
                let oldest = progress.iter().map(|p| p.load(Ordering::Acquire)).min();
                let oldest = oldest.unwrap_or(ROUNDS);
                if oldest >= ROUNDS {
                    break;
                }
                head.truncate((oldest - 3) * 1000).unwrap();
                std::thread::yield_now();
            }
        });
    });
    for (labels, samples) in read(&head, &[]) {
        let id: f64 = labels
            .split("instance=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(samples.iter().all(|&(_, v)| v == id.to_bits()), "{labels}");
        assert!(samples.windows(2).all(|w| w[0].0 < w[1].0));
    }
}

fn wal_options() -> WalOptions {
    WalOptions {
        segment_size: 1 << 20,
        sync: SyncPolicy::Never,
    }
}

fn open(dir: &std::path::Path) -> Head {
    Head::open(HeadOptions::default(), dir, wal_options(), i64::MIN).unwrap()
}

#[test]
fn wal_backed_head_replays_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let head = open(dir.path());
    let samples: Vec<(i64, f64)> = (0..500).map(|i| (i * 15_000, i as f64)).collect();
    append_all(&head, &metric("up", "a"), &samples);
    append_all(&head, &metric("up", "b"), &[(0, STALE_NAN)]);
    let before = read(&head, &[]);
    drop(head);

    let head = open(dir.path());
    assert_eq!(read(&head, &[]), before);
    // WAL references continue after the replayed ones.
    let mut app = head.appender();
    let r = app
        .append(None, &metric("up", "c"), Sample::new(1, 1.0))
        .unwrap();
    assert_eq!(head.table.get(r).unwrap().wal_ref.get(), 3);
    app.commit().unwrap();
}

#[test]
fn truncation_checkpoints_the_wal_and_replay_skips_persisted_samples() {
    let dir = tempfile::tempdir().unwrap();
    let head = open(dir.path());
    let range = head.options().cut_rules.chunk_range_ms;
    append_all(&head, &metric("up", "old"), &[(0, 1.0)]);
    append_all(&head, &metric("up", "live"), &[(0, 1.0), (range, 2.0)]);
    head.truncate(range).unwrap();
    append_all(&head, &metric("up", "live"), &[(range + 1, 3.0)]);
    let before = read(&head, &[]);
    drop(head);

    let head = Head::open(HeadOptions::default(), dir.path(), wal_options(), range).unwrap();
    assert_eq!(read(&head, &[]), before);
    assert_eq!(head.stats().n_series, 1);
    drop(head);
    // A later minimum valid time skips what blocks already hold.
    let head = Head::open(HeadOptions::default(), dir.path(), wal_options(), range + 1).unwrap();
    assert_eq!(
        read(&head, &[]),
        vec![(metric("up", "live").to_string(), bits(&[(range + 1, 3.0)]))]
    );
}

#[test]
fn replay_maps_a_recreated_series_to_one_head_series() {
    let dir = tempfile::tempdir().unwrap();
    let l = metric("up", "a");
    {
        let wal = Wal::open(dir.path(), wal_options(), |_| {}).unwrap();
        let sref = |i| SeriesRef::new(i).unwrap();
        wal.log_series(&[RefSeries {
            series_ref: sref(1),
            labels: l.clone(),
        }]);
        wal.log_samples(&[RefSample {
            series_ref: sref(1),
            t: 1,
            v: 1.0,
        }])
        .unwrap();
        wal.log_series(&[RefSeries {
            series_ref: sref(5),
            labels: l.clone(),
        }]);
        wal.log_samples(&[
            RefSample {
                series_ref: sref(5),
                t: 2,
                v: 2.0,
            },
            RefSample {
                series_ref: sref(77),
                t: 2,
                v: 2.0,
            },
        ])
        .unwrap();
    }
    let head = open(dir.path());
    assert_eq!(
        read(&head, &[]),
        vec![(l.to_string(), bits(&[(1, 1.0), (2, 2.0)]))]
    );
    assert_eq!(head.stats().n_series, 1);
    let mut app = head.appender();
    let r = app
        .append(None, &metric("up", "b"), Sample::new(1, 1.0))
        .unwrap();
    // WAL references continue after the largest replayed one.
    assert_eq!(head.table.get(r).unwrap().wal_ref.get(), 6);
}

#[test]
fn interned_comparison_orders_like_labels_ord() {
    use proptest::prelude::*;
    let pair = ("[ab]{1,2}", "[ab]{1,2}");
    proptest!(|(a in proptest::collection::vec(pair, 0..4), b in proptest::collection::vec(pair, 0..4))| {
        let mut index = index::MemIndex::default();
        let a = index.intern(&Labels::from_pairs(&a));
        let b = index.intern(&Labels::from_pairs(&b));
        prop_assert_eq!(cmp_interned(&a, &b), a.cmp(&b));
        // Not interned (distinct allocations) compares the same.
        let a2 = Labels::from_pairs(&a.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect::<Vec<_>>());
        prop_assert_eq!(cmp_interned(&a2, &b), a2.cmp(&b));
    });
}

#[test]
fn labels_made_of_the_interned_strings_are_kept_as_given() {
    let head = Head::new(HeadOptions::default());
    let stored = |l: &Labels| {
        let mut app = head.appender();
        let handle = app.append(None, l, Sample::new(0, 1.0)).unwrap();
        app.commit().unwrap();
        head.table.get(handle).unwrap().labels.clone()
    };
    let same_set =
        |a: &Labels, b: &Labels| std::ptr::eq(a.iter().next().unwrap(), b.iter().next().unwrap());
    // New strings are adopted, not copied: the head keeps the set as given.
    let first = metric("up", "a");
    let first_stored = stored(&first);
    assert!(same_set(&first, &first_stored));
    // Equal strings allocated elsewhere are replaced by the interned ones.
    let second = metric("up", "b");
    let second_stored = stored(&second);
    assert!(!same_set(&second, &second_stored));
    let names = |l: &Labels| l.iter().map(|l| Arc::clone(&l.name)).collect::<Vec<_>>();
    for (a, b) in names(&first_stored)
        .iter()
        .zip(names(&second_stored).iter())
    {
        assert!(Arc::ptr_eq(a, b));
    }
    // A set built from the interned strings (as the scraper's cache builds
    // them) is kept as given.
    let third: Labels = Labels::from_sorted(
        second_stored
            .iter()
            .map(|l| Label {
                name: Arc::clone(&l.name),
                // instance="node", a new series of interned strings.
                value: if &*l.name == "instance" {
                    Arc::clone(&first_stored.iter().nth(2).unwrap().value)
                } else {
                    Arc::clone(&l.value)
                },
            })
            .collect(),
    );
    assert!(same_set(&third, &stored(&third)));
}
