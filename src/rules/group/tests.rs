//! Groups evaluated at chosen timestamps over an in-memory head or a
//! database reopened in between (a restart); time is a parameter, never
//! the wall clock.

use std::sync::Arc;

use tsdb::clock::ManualClock;
use tsdb::db::{Db, DbOptions};
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Matcher, STALE_NAN_BITS, Sample, TimeRange};
use tsdb::promql::EngineOptions;
use tsdb::storage::{Appendable, Queryable, SelectHints};

use super::*;
use crate::backend::LocalBackend;
use crate::metrics::Registry;
use crate::rules::manager::group_from_file;

const MIN: i64 = 60_000;
/// A realistic base time: 2023-11-14.
const T0: i64 = 1_700_000_000_000;

fn context<S: Appendable + Queryable + 'static>(
    storage: Arc<S>,
    registry: &Registry,
) -> EvalContext<LocalBackend> {
    let backend = LocalBackend::new(
        Arc::clone(&storage) as Arc<dyn Queryable>,
        EngineOptions::default(),
        2,
        registry,
    );
    EvalContext {
        backend: Arc::new(backend),
        appendable: Arc::clone(&storage) as Arc<dyn Appendable>,
        queryable: storage as Arc<dyn Queryable>,
        clock: Arc::new(ManualClock::new(T0)),
        options: RwLock::new(EvalOptions::default()),
        notify: None,
        metrics: RuleMetrics::register(registry),
    }
}

fn group(yaml: &str, restored: bool) -> Group {
    let file = crate::rules::file::parse(yaml).unwrap();
    let g = file.groups.into_iter().next().unwrap();
    group_from_file(g, "rules.yml", Duration::from_secs(60), restored)
}

/// Label pairs, timestamp, value.
type Input<'a> = (&'a [(&'a str, &'a str)], i64, f64);

fn append(storage: &dyn Appendable, series: &[Input<'_>]) {
    let mut app = storage.appender();
    for (labels, t, v) in series {
        app.append(None, &Labels::from_pairs(labels), Sample::new(*t, *v))
            .unwrap();
    }
    app.commit().unwrap();
}

/// Every sample of the series matching `matchers`, by series.
fn samples(storage: &dyn Queryable, matchers: &[Matcher]) -> Vec<(Labels, Vec<Sample>)> {
    let querier = storage.querier(TimeRange::all()).unwrap();
    let set = querier
        .select(matchers, &SelectHints::for_range(TimeRange::all()))
        .unwrap();
    set.series
        .into_iter()
        .map(|mut s| {
            let mut out = Vec::new();
            while let Some(sample) = s.samples.next() {
                out.push(sample);
            }
            (s.labels, out)
        })
        .collect()
}

fn name(metric: &str) -> Vec<Matcher> {
    vec![Matcher::equal("__name__", metric)]
}

#[tokio::test]
async fn recording_rules_write_and_mark_stale_series_that_stop() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let registry = Registry::new();
    let ctx = context(Arc::clone(&head), &registry);
    let mut g = group(
        "groups:\n- name: g\n  rules:\n  - record: job:x:sum\n    expr: sum by (job) (x)\n    labels: {source: rule}\n",
        true,
    );
    append(
        &*head,
        &[
            (&[("__name__", "x"), ("job", "a")], T0, 1.0),
            (&[("__name__", "x"), ("job", "b")], T0, 2.0),
        ],
    );
    g.iterate(T0 + MIN, &ctx).await;
    // b stops: its input goes stale.
    append(
        &*head,
        &[
            (&[("__name__", "x"), ("job", "a")], T0 + MIN, 3.0),
            (
                &[("__name__", "x"), ("job", "b")],
                T0 + MIN,
                f64::from_bits(STALE_NAN_BITS),
            ),
        ],
    );
    g.iterate(T0 + 2 * MIN, &ctx).await;
    let out = samples(&*head, &name("job:x:sum"));
    assert_eq!(out.len(), 2);
    let (a, b) = (&out[0], &out[1]);
    assert_eq!(
        a.0,
        Labels::from_pairs(&[("__name__", "job:x:sum"), ("job", "a"), ("source", "rule")])
    );
    assert_eq!(
        a.1,
        vec![Sample::new(T0 + MIN, 1.0), Sample::new(T0 + 2 * MIN, 3.0)]
    );
    assert_eq!(b.1.len(), 2);
    assert_eq!(b.1[0], Sample::new(T0 + MIN, 2.0));
    assert_eq!(b.1[1].t, T0 + 2 * MIN);
    assert_eq!(
        b.1[1].v.to_bits(),
        STALE_NAN_BITS,
        "stale marker at the evaluation"
    );

    let status = g.status();
    assert_eq!(status.rules[0].health, Health::Good);
    assert_eq!(status.last_evaluation, Some(T0));
    let metrics = registry.render();
    assert!(
        metrics
            .contains("sextant_rule_group_last_evaluation_samples{rule_group=\"rules.yml;g\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn query_offset_moves_the_query_and_the_samples() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let ctx = context(Arc::clone(&head), &Registry::new());
    let mut g = group(
        "groups:\n- name: g\n  query_offset: 1m\n  rules:\n  - record: y\n    expr: x\n",
        true,
    );
    append(
        &*head,
        &[
            (&[("__name__", "x")], T0, 1.0),
            (&[("__name__", "x")], T0 + MIN, 2.0),
        ],
    );
    g.iterate(T0 + MIN, &ctx).await;
    let out = samples(&*head, &name("y"));
    assert_eq!(out[0].1, vec![Sample::new(T0, 1.0)]);
}

#[tokio::test]
async fn failures_set_health_and_keep_previous_series() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let registry = Registry::new();
    let ctx = context(Arc::clone(&head), &registry);
    let mut g = group(
        "groups:\n- name: g\n  limit: 1\n  rules:\n  - record: y\n    expr: x\n",
        true,
    );
    append(&*head, &[(&[("__name__", "x"), ("i", "1")], T0, 1.0)]);
    g.iterate(T0 + MIN, &ctx).await;
    append(&*head, &[(&[("__name__", "x"), ("i", "2")], T0 + MIN, 1.0)]);
    g.iterate(T0 + 2 * MIN, &ctx).await;
    let status = g.status();
    assert_eq!(status.rules[0].health, Health::Bad);
    assert_eq!(
        status.rules[0].last_error.as_deref(),
        Some("exceeded limit of 1 with 2 series")
    );
    // No stale marker for y{i="1"}: a failed evaluation changes nothing.
    let out = samples(&*head, &name("y"));
    assert_eq!(out[0].1, vec![Sample::new(T0 + MIN, 1.0)]);
    assert!(
        registry
            .render()
            .contains("sextant_rule_evaluation_failures_total{rule_group=\"rules.yml;g\"} 1\n")
    );
}

const ALERT_RULES: &str = r#"
groups:
- name: alerts
  rules:
  - record: load:max
    expr: max by (instance) (load)
  - alert: HighLoad
    expr: load:max > 1
    for: 30m
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.instance }} at {{ $value }} ({{ $externalLabels.dc }})"
      peers: "{{ query \"count(load)\" | first | value }} hosts"
"#;

fn high_load(storage: &dyn Appendable, t: i64, v: f64) {
    append(
        storage,
        &[(&[("__name__", "load"), ("instance", "h1")], t, v)],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_go_pending_then_firing_and_write_their_series() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let ctx = context(Arc::clone(&head), &Registry::new());
    ctx.options.write().external_labels = [("dc".to_string(), "eu1".to_string())].into();
    let mut g = group(ALERT_RULES, true);
    for i in 0..=31 {
        high_load(&*head, T0 + i * MIN, 2.0);
        g.iterate(T0 + i * MIN, &ctx).await;
        let alerts = g.alerts();
        assert_eq!(alerts.len(), 1, "at minute {i}");
        let expected = if i < 30 {
            AlertState::Pending
        } else {
            AlertState::Firing
        };
        assert_eq!(alerts[0].1.state, expected, "at minute {i}");
    }
    let alert = &g.alerts()[0].1;
    assert_eq!(alert.annotations["summary"], "h1 at 2 (eu1)");
    assert_eq!(alert.annotations["peers"], "1 hosts");
    assert_eq!(
        alert.labels,
        Labels::from_pairs(&[
            ("alertname", "HighLoad"),
            ("instance", "h1"),
            ("severity", "page")
        ])
    );
    let alerts = samples(&*head, &name("ALERTS"));
    assert_eq!(alerts.len(), 2, "pending and firing series: {alerts:?}");
    assert_eq!(alerts[0].0.get("alertstate"), Some("firing"));
    assert_eq!(alerts[0].1.len(), 2);
    let pending = &alerts[1].1;
    assert_eq!(pending.len(), 31);
    let for_state = samples(&*head, &name("ALERTS_FOR_STATE"));
    assert_eq!(for_state[0].1.last().unwrap().v, (T0 / 1000) as f64);
    let status = g.status();
    assert_eq!(
        status.rules[1].alerting.as_ref().unwrap().state,
        AlertState::Firing
    );
}

#[tokio::test]
async fn template_errors_become_the_annotation() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let ctx = context(Arc::clone(&head), &Registry::new());
    let mut g = group(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x\n    annotations:\n      bad: '{{ index $labels 1 }}'\n",
        true,
    );
    append(&*head, &[(&[("__name__", "x")], T0, 1.0)]);
    g.iterate(T0, &ctx).await;
    let alert = &g.alerts()[0].1;
    assert!(
        alert.annotations["bad"].starts_with("<error expanding template: "),
        "{:?}",
        alert.annotations
    );
    assert_eq!(g.status().rules[0].health, Health::Good);
}

/// An alert pending for 5 of its 30 minutes when the server stops; the
/// server is down 10 minutes. After the restart the alert resumes with its
/// remaining 25 minutes, counted from the restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_state_is_restored_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = || DbOptions {
        clock: Arc::new(ManualClock::new(T0)),
        ..DbOptions::default()
    };
    {
        let db = Arc::new(Db::open(dir.path(), options()).unwrap());
        let ctx = context(Arc::clone(&db), &Registry::new());
        let mut g = group(ALERT_RULES, true);
        for i in 0..=5 {
            high_load(&*db, T0 + i * MIN, 2.0);
            g.iterate(T0 + i * MIN, &ctx).await;
        }
        drop(ctx);
        drop(g);
        Arc::try_unwrap(db).ok().unwrap().close().unwrap();
    }
    let db = Arc::new(Db::open(dir.path(), options()).unwrap());
    let ctx = context(Arc::clone(&db), &Registry::new());
    let mut g = group(ALERT_RULES, false);
    assert!(g.should_restore);
    let restart = T0 + 15 * MIN;
    for i in 0..2 {
        high_load(&*db, restart + i * MIN, 2.0);
        g.iterate(restart + i * MIN, &ctx).await;
    }
    // Nothing written before the restore.
    assert!(
        samples(&*db, &name("ALERTS_FOR_STATE"))[0]
            .1
            .iter()
            .all(|s| s.t <= T0 + 5 * MIN)
    );
    g.restore_for_state(restart + MIN, &ctx).await;
    assert!(!g.should_restore);
    // Pending 5 minutes, down at +5m: ActiveAt moves by the 11 minutes
    // between going down and the restore.
    let active_at = T0 + 11 * MIN;
    assert_eq!(g.alerts()[0].1.active_at, active_at);
    let mut t = restart + 2 * MIN;
    while t < active_at + 30 * MIN {
        high_load(&*db, t, 2.0);
        g.iterate(t, &ctx).await;
        assert_eq!(g.alerts()[0].1.state, AlertState::Pending, "at {t}");
        t += MIN;
    }
    high_load(&*db, t, 2.0);
    g.iterate(t, &ctx).await;
    assert_eq!(g.alerts()[0].1.state, AlertState::Firing);
    let for_state = samples(&*db, &name("ALERTS_FOR_STATE"));
    assert_eq!(for_state[0].1.last().unwrap().v, (active_at / 1000) as f64);
}

#[test]
fn eval_timestamps_are_aligned_with_the_group_offset() {
    let g = group(
        "groups:\n- name: g\n  interval: 15s\n  rules:\n  - record: y\n    expr: x\n",
        true,
    );
    let offset = g.offset_ms();
    assert!((0..15_000).contains(&offset));
    let ts = g.eval_timestamp(T0);
    assert!(ts <= T0 && T0 - ts < 15_000);
    assert_eq!((ts - offset).rem_euclid(15_000), 0);
    assert_eq!(g.eval_timestamp(ts), ts);
    assert_eq!(g.eval_timestamp(ts + 14_999), ts);
    assert_eq!(g.eval_timestamp(ts + 15_000), ts + 15_000);
}

#[tokio::test]
async fn a_reload_keeps_alerts_and_marks_removed_rules_stale() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let ctx = context(Arc::clone(&head), &Registry::new());
    let before = "groups:\n- name: g\n  rules:\n  - record: y\n    expr: x\n  - alert: A\n    expr: x\n    for: 5m\n";
    let after = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x\n    for: 5m\n";
    let mut old = group(before, true);
    append(&*head, &[(&[("__name__", "x")], T0, 1.0)]);
    old.iterate(T0, &ctx).await;
    let mut new = group(after, true);
    assert!(!new.same_definition(&old));
    new.copy_state(old);
    assert_eq!(new.alerts()[0].1.active_at, T0);
    new.iterate(T0 + MIN, &ctx).await;
    let y = samples(&*head, &name("y"));
    assert_eq!(y[0].1.last().unwrap().v.to_bits(), STALE_NAN_BITS);
}
