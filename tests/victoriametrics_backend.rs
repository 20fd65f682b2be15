#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Rules and recommendations over the real VictoriaMetrics as the backend give
//! what they give over the local store for the same data (issue 9).
//!
//! The same samples go into a local store and, by remote write, into
//! VictoriaMetrics. VictoriaMetrics has no remote read: a `remote_read` endpoint
//! pointing at it is read through its query API, `{matchers}[range]` returning
//! the raw samples, and Sextant's own engine evaluates every query over them. So
//! the numbers are the local ones even where MetricsQL, VictoriaMetrics's
//! dialect, would answer differently (its `rate` does not extrapolate, its
//! lookback and staleness differ); the rules test shows such a query.
//!
//! VictoriaMetrics stores values as decimals of about 12 significant digits
//! (`3.3333333333333335` comes back as `3.333333333333`), so the data here has
//! values of at most 12 significant digits: cAdvisor's CPU counters at
//! millisecond resolution, memory in whole bytes. Those survive the round trip
//! bit for bit, and every number is compared exactly.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use sextant::backend::LocalBackend;
use sextant::cli::recommend::{DataSource, OutputFormat, RecommendArgs};
use sextant::metrics::Registry;
use sextant::rules::alerting::Alert;
use sextant::rules::group::{EvalContext, EvalOptions, Group};
use sextant::rules::metrics::RuleMetrics;
use tsdb::clock::ManualClock;
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Matcher, STALE_NAN, STALE_NAN_BITS, Sample, TimeRange};
use tsdb::promql::{EngineOptions, QueryBackend};
use tsdb::storage::{Appendable, Queryable, SelectHints};

#[path = "remote_peers/mod.rs"]
mod peers;
use peers::{VICTORIA_METRICS, installed, start_victoria_metrics};

const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;
/// 2023-11-15T00:00:00Z: fixed, so VictoriaMetrics's `-search.latencyOffset`
/// (how long it hides the newest samples) has nothing to hide.
const END: i64 = 1_700_006_400_000;

type Dataset = Vec<(Labels, Vec<Sample>)>;

fn append_all(storage: &dyn Appendable, data: &Dataset) {
    let mut appender = storage.appender();
    for (labels, samples) in data {
        for s in samples {
            appender.append(None, labels, *s).unwrap();
        }
    }
    appender.commit().unwrap();
}

/// Every sample of the series matching `matchers`, by series, stale markers
/// as their bits (NaN is not equal to itself).
fn dump(storage: &dyn Queryable, matchers: &[Matcher]) -> Vec<(Labels, Vec<(i64, u64)>)> {
    let querier = storage.querier(TimeRange::all()).unwrap();
    let set = querier
        .select(matchers, &SelectHints::for_range(TimeRange::all()))
        .unwrap();
    let mut out: Vec<_> = set
        .series
        .into_iter()
        .map(|mut s| {
            let mut samples = Vec::new();
            while let Some(sample) = s.samples.next() {
                samples.push((sample.t, sample.v.to_bits()));
            }
            (s.labels, samples)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// VictoriaMetrics with `data` stored and searchable, and a `remote_read`
/// configuration section pointing at it.
async fn victoria_metrics_with(dir: &Path, data: &Dataset) -> (peers::Peer, String) {
    let vm = start_victoria_metrics(&dir.join("vm"), peers::free_port()).await;
    for chunk in data.chunks(8) {
        peers::remote_write(&vm.url, chunk).await;
    }
    let flushed = reqwest::get(format!("{}/internal/force_flush", vm.url))
        .await
        .unwrap();
    assert!(flushed.status().is_success());
    // New samples become searchable after a moment: wait until VictoriaMetrics
    // returns every (non-stale) sample written.
    let want: usize = data
        .iter()
        .map(|(_, s)| s.iter().filter(|s| !s.v.is_nan()).count())
        .sum();
    let first = data
        .iter()
        .filter_map(|(_, s)| s.first())
        .map(|s| s.t)
        .min();
    let last = data.iter().filter_map(|(_, s)| s.last()).map(|s| s.t).max();
    let (first, last) = (first.unwrap(), last.unwrap());
    let query = format!("{{__name__!=\"\"}}[{}ms]", last - first + 1);
    peers::wait_for(
        "VictoriaMetrics to serve every sample",
        Duration::from_secs(60),
        async || {
            let result = peers::instant_query(&vm.url, &query, last as f64 / 1000.0).await;
            let got: usize = result
                .iter()
                .map(|row| {
                    row["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|p| p[1] != "NaN")
                        .count()
                })
                .sum();
            (got == want).then_some(())
        },
    )
    .await;
    let section = format!(
        "remote_read: [{{url: '{}/api/v1/read', read_recent: true}}]\n",
        vm.url
    );
    (vm, section)
}

/// Forty minutes of scrapes every 15 s (half a second off the whole second)
/// from three instances; instance `c` goes away at minute 25 and its series
/// end in stale markers, as a scrape loop leaves them.
fn rules_dataset(t0: i64) -> Dataset {
    let mut out = Vec::new();
    for (job, instance, rate) in [("api", "a", 3.0), ("api", "b", 5.0), ("db", "c", 1.5)] {
        let last = if instance == "c" { 100 } else { 160 };
        let at = |i: i64| t0 + i * 15_000 + 500;
        let counter = (0..last)
            .map(|i| Sample::new(at(i), (i * i) as f64 * rate))
            .chain(std::iter::once(Sample::new(at(last), STALE_NAN)))
            .collect();
        let gauge = (0..last)
            .map(|i| Sample::new(at(i), 1000.0 + ((i * 7) % 13) as f64 * rate))
            .chain(std::iter::once(Sample::new(at(last), STALE_NAN)))
            .collect();
        let pairs = |name| [("__name__", name), ("job", job), ("instance", instance)];
        out.push((Labels::from_pairs(&pairs("rr_requests_total")), counter));
        out.push((Labels::from_pairs(&pairs("rr_memory_bytes")), gauge));
    }
    out
}

const RULES: &str = r#"
groups:
  - name: backend
    interval: 1m
    rules:
      - record: job:rr_requests:rate5m
        expr: sum by (job) (rate(rr_requests_total[5m]))
      - record: instance:rr_memory_bytes:max
        expr: max by (instance) (rr_memory_bytes)
      - record: job:rr_requests:increase10m
        expr: increase(rr_requests_total[10m]) / on (job, instance) group_left rr_memory_bytes
      - alert: HighMemory
        expr: rr_memory_bytes > 1030
        for: 2m
        labels: {severity: page}
        annotations: {summary: '{{ $labels.instance }} holds {{ $value }} bytes'}
      - alert: ManyRequests
        expr: sum by (job) (rate(rr_requests_total[2m])) > 20
        for: 5m
        keep_firing_for: 3m
"#;

fn context(
    backend: Arc<LocalBackend>,
    output: Arc<dyn Appendable>,
    queryable: Arc<dyn Queryable>,
) -> EvalContext<LocalBackend> {
    let registry = Registry::new();
    EvalContext {
        backend,
        appendable: output,
        queryable,
        clock: Arc::new(ManualClock::new(END)),
        options: RwLock::new(EvalOptions::default()),
        notify: None,
        metrics: RuleMetrics::register(&registry),
    }
}

fn group() -> Group {
    let file = sextant::rules::file::parse(RULES).unwrap();
    let g = file.groups.into_iter().next().unwrap();
    sextant::rules::manager::group_from_file(g, "rules.yml", Duration::from_secs(60), true)
}

fn engine(storage: Arc<dyn Queryable>) -> LocalBackend {
    LocalBackend::new(storage, EngineOptions::default(), 2, &Registry::new())
}

/// One group evaluated every minute for 45 minutes over the local head and over
/// VictoriaMetrics (read as `serve` reads a `remote_read` endpoint, the rules'
/// output going to a local head): the same alerts in the same states at every
/// step, the same recorded series, `ALERTS` and `ALERTS_FOR_STATE` samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_groups_over_victoriametrics_match_the_local_store() {
    if !installed(VICTORIA_METRICS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t0 = END - 60 * MIN;
    let data = rules_dataset(t0);
    let (vm, section) = victoria_metrics_with(dir.path(), &data).await;

    let local_head = Arc::new(Head::new(HeadOptions::default()));
    append_all(local_head.as_ref(), &data);
    let local_backend = Arc::new(engine(Arc::clone(&local_head) as Arc<dyn Queryable>));
    let local = context(
        local_backend,
        Arc::clone(&local_head) as Arc<dyn Appendable>,
        Arc::clone(&local_head) as Arc<dyn Queryable>,
    );

    // As `serve` with an empty database and the `remote_read` section.
    let output = Arc::new(Head::new(HeadOptions::default()));
    let config = sextant::config::Config::from_yaml(&section, "remote.yml").unwrap();
    let storage = sextant::remote::fanout::from_config(
        &config,
        Arc::clone(&output) as Arc<dyn Queryable>,
        Box::new(|| i64::MAX),
    )
    .unwrap();
    let remote = context(
        Arc::new(engine(Arc::clone(&storage))),
        Arc::clone(&output) as Arc<dyn Appendable>,
        storage,
    );

    // Why the remote path evaluates in Sextant: VictoriaMetrics's own answer to a
    // `rate` (MetricsQL does not extrapolate to the window's edges) is not
    // Prometheus's, while Sextant's engine over its raw samples gives the local one.
    let rate = "rate(rr_requests_total{instance=\"a\"}[5m])";
    let at = t0 + 20 * MIN;
    let one = |result: tsdb::promql::QueryResult| match result.value {
        tsdb::promql::Value::Vector(v) => v[0].v,
        other => panic!("{other:?}"),
    };
    let want = one(local.backend.instant(rate, at).await.unwrap());
    let got = one(remote.backend.instant(rate, at).await.unwrap());
    assert_eq!(got.to_bits(), want.to_bits());
    let metricsql = peers::scalar_query(&vm.url, rate, at as f64 / 1000.0)
        .await
        .unwrap();
    assert_ne!(metricsql, want, "MetricsQL's rate is not Prometheus's here");

    let (mut over_local, mut over_remote) = (group(), group());
    let mut states_seen = std::collections::BTreeSet::new();
    for minute in 1..=45 {
        let ts = t0 + minute * MIN;
        over_local.eval(ts, &local).await;
        over_remote.eval(ts, &remote).await;
        let want: Vec<(String, Alert)> = over_local.alerts();
        assert_eq!(over_remote.alerts(), want, "alerts at minute {minute}");
        for (name, alert) in &want {
            states_seen.insert((name.clone(), alert.state.as_str()));
        }
        for rule in over_remote.status().rules {
            assert_eq!(rule.last_error, None, "{} at minute {minute}", rule.name);
        }
    }
    // The run covers every state change: pending, firing, resolved, held.
    for state in [
        ("HighMemory", "pending"),
        ("HighMemory", "firing"),
        ("HighMemory", "inactive"),
        ("ManyRequests", "firing"),
    ] {
        assert!(
            states_seen.contains(&(state.0.to_string(), state.1)),
            "{state:?} never seen: {states_seen:?}"
        );
    }

    let written = [Matcher::new(
        tsdb::model::MatchOp::RegexMatch,
        "__name__",
        "job:.*|instance:.*|ALERTS|ALERTS_FOR_STATE",
    )
    .unwrap()];
    let want = dump(local_head.as_ref(), &written);
    let got = dump(output.as_ref(), &written);
    assert_eq!(got, want);
    let names: std::collections::BTreeSet<&str> =
        want.iter().filter_map(|(l, _)| l.get("__name__")).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    // Instance c went away: its recorded series ended in a stale marker.
    let c = want
        .iter()
        .find(|(l, _)| {
            l.get("__name__") == Some("instance:rr_memory_bytes:max")
                && l.get("instance") == Some("c")
        })
        .unwrap();
    assert_eq!(c.1.last().unwrap().1, STALE_NAN_BITS);
}

const POD_A: &str = "web-7d4b9c8f6b-x2x5z";
const POD_B: &str = "web-7d4b9c8f6b-k9vqw";
/// Replaces `POD_B` after the first day.
const POD_C: &str = "web-7d4b9c8f6b-q8n2m";
const SCRAPE: i64 = 30_000;

/// Two days of a cluster's cAdvisor and kube-state-metrics series every 30 s for
/// Deployment shop/web: containers `app` and `proxy` in two pods at a time, one
/// pod replaced after a day (its series end in stale markers). CPU use follows a
/// daily curve with noise from a fixed-seed generator; memory too.
fn cluster_dataset() -> Dataset {
    let start = END - 2 * DAY;
    let mut series: std::collections::BTreeMap<Labels, Vec<Sample>> = Default::default();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = move || {
        // xorshift64: fixed seed, same data every run.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 1000) as i64
    };
    let pods = [
        (POD_A, start, END),
        (POD_B, start, start + DAY),
        (POD_C, start + DAY + 5 * MIN, END),
    ];
    for (pod, from, to) in pods {
        let mut put = |name: &str, extra: &[(&str, &str)], t: i64, v: f64| {
            let mut pairs = vec![("__name__", name), ("namespace", "shop"), ("pod", pod)];
            pairs.extend_from_slice(extra);
            series
                .entry(Labels::from_pairs(&pairs))
                .or_default()
                .push(Sample::new(t, v));
        };
        // CPU counters in whole milliseconds of CPU time.
        let mut cpu_ms = [0i64; 2];
        let mut t = from;
        while t <= to {
            let hour = ((t - start) / 3_600_000) % 24;
            let daily = if (8..20).contains(&hour) { 3 } else { 1 };
            for (k, (container, base_millicores, base_bytes)) in
                [("app", 150, 400_000_000i64), ("proxy", 20, 40_000_000)]
                    .into_iter()
                    .enumerate()
            {
                let c = [("container", container)];
                let millicores = base_millicores * daily + noise() * base_millicores / 1000;
                cpu_ms[k] += millicores * SCRAPE / 1000;
                put(
                    "container_cpu_usage_seconds_total",
                    &c,
                    t,
                    cpu_ms[k] as f64 / 1000.0,
                );
                let bytes = base_bytes * (daily + 1) / 2 + noise() * 50_000;
                put("container_memory_working_set_bytes", &c, t, bytes as f64);
                for (resource, unit, v) in
                    [("cpu", "core", 0.25), ("memory", "byte", 536_870_912.0)]
                {
                    let r = [
                        ("container", container),
                        ("resource", resource),
                        ("unit", unit),
                    ];
                    put("kube_pod_container_resource_requests", &r, t, v);
                }
            }
            put("kube_pod_status_phase", &[("phase", "Running")], t, 1.0);
            put("kube_pod_status_ready", &[("condition", "true")], t, 1.0);
            put("kube_pod_start_time", &[], t, (from / 1000) as f64);
            t += SCRAPE;
        }
        if to < END {
            // The pod's targets are gone: the scrape loops mark every series stale.
            for (labels, samples) in &mut series {
                if labels.get("pod") == Some(pod) {
                    samples.push(Sample::new(t, STALE_NAN));
                }
            }
        }
    }
    let mut out: Dataset = series.into_iter().collect();
    let mut t = start;
    let deployment = |name| {
        Labels::from_pairs(&[
            ("__name__", name),
            ("namespace", "shop"),
            ("deployment", "web"),
        ])
    };
    let mut replicas = Vec::new();
    while t <= END {
        replicas.push(Sample::new(t, 2.0));
        t += SCRAPE;
    }
    out.push((
        deployment("kube_deployment_spec_replicas"),
        replicas.clone(),
    ));
    out.push((deployment("kube_deployment_status_replicas"), replicas));
    out
}

const AUTOSCALER: &str = r#"
autoscaler:
  workloads:
    - namespace: shop
      kind: Deployment
      name: web
      hpa:
        minReplicas: 1
        maxReplicas: 10
        metrics:
          - type: Resource
            resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}
      vpa: {}
"#;

/// `sextant recommend` over VictoriaMetrics (a configuration whose `remote_read`
/// points at it, no data directory: the path `serve` and the recommendations API
/// take) gives the report it gives over a data directory holding the same two
/// days, byte for byte, at three evaluation times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendations_over_victoriametrics_match_the_local_store() {
    if !installed(VICTORIA_METRICS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = cluster_dataset();
    let (_vm, section) = victoria_metrics_with(dir.path(), &data).await;

    let data_dir = dir.path().join("data");
    {
        let db = tsdb::db::Db::open(&data_dir, tsdb::db::DbOptions::default()).unwrap();
        append_all(&db, &data);
        db.close().unwrap();
    }
    let local_config = dir.path().join("local.yml");
    std::fs::write(&local_config, AUTOSCALER).unwrap();
    let remote_config = dir.path().join("remote.yml");
    // A storage path that does not exist: nothing but VictoriaMetrics is read.
    std::fs::write(
        &remote_config,
        format!(
            "{AUTOSCALER}{section}storage: {{path: '{}'}}\n",
            dir.path().join("none").display()
        ),
    )
    .unwrap();

    for at in [END, END - 6 * 3_600_000 + 7_000, END - DAY - 2 * MIN] {
        let run = |config: &Path, data_dir: Option<&Path>| {
            sextant::cli::recommend::run(RecommendArgs {
                source: DataSource {
                    config: Some(config.to_path_buf()),
                    prometheus: None,
                    data_dir: data_dir.map(Path::to_path_buf),
                },
                output: OutputFormat::Json,
                time: Some(format!("{}.{:03}", at / 1000, at % 1000)),
            })
        };
        let want = run(&local_config, Some(&data_dir)).await.unwrap();
        let got = run(&remote_config, None).await.unwrap();
        assert_eq!(got, want, "at {at}");

        // The report is a real one: usage history, targets and a replica count.
        let report: serde_json::Value = serde_json::from_str(&want).unwrap();
        let web = &report["workloads"][0];
        assert_eq!(web["errors"], serde_json::json!([]), "{want}");
        assert!(
            web["hpa"]["desired_replicas"].as_i64().unwrap() >= 1,
            "{want}"
        );
        for container in web["containers"].as_array().unwrap() {
            assert!(container["cpu"]["target"].as_f64().unwrap() > 0.0, "{want}");
            assert!(
                container["memory"]["target"].as_f64().unwrap() > 0.0,
                "{want}"
            );
        }
        assert_eq!(web["containers"].as_array().unwrap().len(), 2, "{want}");
    }
}
