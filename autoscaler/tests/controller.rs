#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The controller's inputs read through a real PromQL engine over a head holding
//! cAdvisor- and kube-state-metrics-shaped series: 8 days of history for the VPA, and
//! one HPA sync.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use autoscaler::controller::{Source, SourceOptions, WorkloadKind, WorkloadRef};
use autoscaler::hpa::{self, History, MetricOutcome, MetricReading, Options};
use autoscaler::model::HorizontalPodAutoscalerSpec;
use autoscaler::vpa;
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Sample, TimeRange};
use tsdb::promql::{Engine, EngineOptions, QueryBackend, QueryResult};
use tsdb::storage::Appendable;

/// The engine over a head, answering at once.
struct Local {
    head: Head,
    engine: Engine,
}

impl QueryBackend for Local {
    fn instant(
        &self,
        query: &str,
        at_ms: i64,
    ) -> impl Future<Output = tsdb::promql::Result<QueryResult>> + Send {
        std::future::ready(
            self.engine
                .instant_query(query, at_ms)
                .and_then(|q| q.exec(&self.head)),
        )
    }

    fn range(
        &self,
        query: &str,
        range: TimeRange,
        step: Duration,
    ) -> impl Future<Output = tsdb::promql::Result<QueryResult>> + Send {
        std::future::ready(
            self.engine
                .range_query(query, range.start, range.end, step)
                .and_then(|q| q.exec(&self.head)),
        )
    }
}

/// Drives a future that completes without waiting (the local backend's are ready).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

const END: i64 = 1_700_006_400_000; // 2023-11-15T00:00:00Z
const SCRAPE: i64 = 15_000;
const DAY: i64 = 86_400_000;
const POD_A: &str = "web-7d4b9c8f6b-x2x5z";
const POD_B: &str = "web-7d4b9c8f6b-k9vqw";

fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    let mut all = vec![("__name__", name), ("namespace", "shop")];
    all.extend_from_slice(pairs);
    Labels::from_pairs(&all)
}

/// 8 days and 10 minutes of scrapes: per pod, an `app` container using 0.5 cores and
/// 500 MB, a `proxy` using 0.05 cores and 50 MB; kube-state-metrics for 2 ready pods
/// requesting 0.5 + 0.1 cores; 2 requests per second per pod; a queue of 30 messages.
fn cluster() -> Local {
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    let start = END - 8 * DAY - 10 * 60_000;
    let mut t = start;
    let mut i = 0.0;
    while t <= END {
        let mut put = |l: Labels, v: f64| {
            app.append(None, &l, Sample::new(t, v)).unwrap();
        };
        for pod in [POD_A, POD_B] {
            for (container, cores, bytes) in [("app", 0.5, 500e6), ("proxy", 0.05, 50e6)] {
                let c = [("pod", pod), ("container", container)];
                put(
                    labels("container_cpu_usage_seconds_total", &c),
                    cores * 15.0 * i,
                );
                put(labels("container_memory_working_set_bytes", &c), bytes);
            }
            // cAdvisor's pod-level series must not count.
            put(
                labels("container_cpu_usage_seconds_total", &[("pod", pod)]),
                100.0 * i,
            );
            put(labels("http_requests_total", &[("pod", pod)]), 30.0 * i);
        }
        if t >= END - 30 * 60_000 {
            put(
                labels("kube_deployment_spec_replicas", &[("deployment", "web")]),
                2.0,
            );
            put(
                labels("kube_deployment_status_replicas", &[("deployment", "web")]),
                2.0,
            );
            put(labels("queue_depth", &[("queue", "orders")]), 30.0);
            for pod in [POD_A, POD_B] {
                for phase in ["Pending", "Running", "Succeeded", "Failed", "Unknown"] {
                    let v = if phase == "Running" { 1.0 } else { 0.0 };
                    put(
                        labels("kube_pod_status_phase", &[("pod", pod), ("phase", phase)]),
                        v,
                    );
                }
                put(
                    labels(
                        "kube_pod_status_ready",
                        &[("pod", pod), ("condition", "true")],
                    ),
                    1.0,
                );
                put(
                    labels(
                        "kube_pod_status_ready",
                        &[("pod", pod), ("condition", "false")],
                    ),
                    0.0,
                );
                put(
                    labels("kube_pod_start_time", &[("pod", pod)]),
                    ((start - DAY) / 1000) as f64,
                );
                for (container, cores) in [("app", 0.5), ("proxy", 0.1)] {
                    let l = [
                        ("pod", pod),
                        ("container", container),
                        ("resource", "cpu"),
                        ("unit", "core"),
                    ];
                    put(labels("kube_pod_container_resource_requests", &l), cores);
                }
            }
            // A pod of another deployment whose name shares the prefix.
            put(
                labels(
                    "kube_pod_status_phase",
                    &[("pod", "web-admin-5f6d7c8b9d-q2w4e"), ("phase", "Running")],
                ),
                1.0,
            );
        }
        t += SCRAPE;
        i += 1.0;
    }
    app.commit().unwrap();
    Local {
        head,
        engine: Engine::new(EngineOptions::default()),
    }
}

fn web() -> WorkloadRef {
    WorkloadRef {
        namespace: "shop".into(),
        kind: WorkloadKind::Deployment,
        name: "web".into(),
    }
}

/// Constant usage for 8 days: the recommendation of the vector
/// `vpa-derived-constant-usage` for `app` (587m; 587804717 bytes), with 11521 one-minute
/// steps (both ends of the range) giving exactly 8 days of confidence:
/// upper = trunc(587 * 9/8) = 660m and trunc(587804717 * 9/8) = 661280306 bytes.
#[test]
fn vpa_model_from_eight_days_of_cadvisor_history() {
    let backend = cluster();
    let source = Source::new(&backend, SourceOptions::default());
    let (model, stats) = block_on(source.vpa_model(&web(), END, vpa::Options::default())).unwrap();
    assert_eq!(stats.cpu_samples, 2 * 2 * 11_521);
    assert_eq!(stats.dropped, 0);
    let recs = model.recommend(None);
    assert_eq!(
        recs.iter()
            .map(|r| r.container_name.as_str())
            .collect::<Vec<_>>(),
        ["app", "proxy"]
    );
    let cpu = recs[0].cpu.as_ref().unwrap();
    assert_eq!(
        (
            cpu.target.value,
            cpu.lower_bound.value,
            cpu.upper_bound.value
        ),
        (587, 586, 660)
    );
    let memory = recs[0].memory.as_ref().unwrap();
    assert_eq!(memory.target.value, 587_804_717);
    assert_eq!(memory.upper_bound.value, 661_280_306);
    // The proxy is small: the pod minimum (25m, 250 MiB) split over 2 containers holds it.
    let proxy = recs[1].memory.as_ref().unwrap();
    assert_eq!(proxy.target.value, 131_072_000);
}

#[test]
fn hpa_observation_from_kube_state_metrics_and_custom_queries() {
    let backend = cluster();
    let source = Source::new(&backend, SourceOptions::default());
    let spec: HorizontalPodAutoscalerSpec = serde_yaml::from_str(
        r#"
minReplicas: 1
maxReplicas: 10
metrics:
- {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}
- {type: Pods, pods: {metric: {name: http_requests}, target: {type: AverageValue, averageValue: 1}}}
- {type: External, external: {metric: {name: queue_depth}, target: {type: AverageValue, averageValue: 5}}}
- {type: Object, object: {metric: {name: missing}, describedObject: {kind: Service, name: web}, target: {type: Value, value: 1}}}
"#,
    )
    .unwrap();
    let custom: BTreeMap<String, String> = [
        (
            "http_requests",
            r#"sum by (pod) (rate(http_requests_total{namespace="shop"}[1m]))"#,
        ),
        ("queue_depth", r#"sum(queue_depth{namespace="shop"})"#),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let observation = block_on(source.hpa_observation(&web(), &spec, &custom, END)).unwrap();
    assert_eq!(
        (observation.spec_replicas, observation.status_replicas),
        (2, 2)
    );
    let names: Vec<&str> = observation.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, [POD_B, POD_A]);
    assert!(observation.pods.iter().all(|p| p.is_running_and_ready()));
    assert_eq!(observation.pods[0].containers[0].requests_milli["cpu"], 500);
    let MetricReading::PerPod(cpu) = &observation.readings[0] else {
        panic!("{:?}", observation.readings[0]);
    };
    assert_eq!(cpu[POD_A].value_milli, 550);
    let MetricReading::PerPod(rps) = &observation.readings[1] else {
        panic!("{:?}", observation.readings[1]);
    };
    // rate() gives 1.9999999..., and the adapter convention (int64(v * 1000)) truncates.
    assert_eq!(rps[POD_A].value_milli, 1999);
    assert_eq!(observation.readings[2], MetricReading::Values(vec![30_000]));
    assert!(
        matches!(&observation.readings[3], MetricReading::Unavailable(why) if why.contains("no query"))
    );

    // cpu: 1100m of 1200m requested, 91 %, ratio 1.83, ceil(3.67) = 4; rps: 1.999 per
    // pod against 1, ceil(3.998) = 4; queue: 30 / 5 = 6. The Object metric failed but the rest
    // scale up: 6, with the failure reported.
    let rec = hpa::reconcile(
        &spec,
        &observation,
        &mut History::default(),
        END,
        &Options::default(),
    );
    let proposals: Vec<Option<i32>> = rec.metrics.iter().map(|m| m.replicas()).collect();
    assert_eq!(proposals, [Some(4), Some(4), Some(6), None]);
    assert!(matches!(&rec.metrics[3].outcome, MetricOutcome::Failed(_)));
    assert_eq!(rec.desired_replicas, 4, "the legacy limit: max(2 x 2, 4)");
    assert!(
        rec.error
            .unwrap()
            .starts_with("invalid metrics (1 invalid out of 4)")
    );
}

/// The recommender service's core: the first refresh builds the model from 8 days of
/// history, the next feeds only the 10 new one-minute steps, and the report carries
/// current requests, bounds with explanations and the HPA verdict.
#[test]
fn recommender_builds_from_history_then_feeds_new_steps() {
    use autoscaler::recommender::{Options as RecommenderOptions, Recommender, WorkloadSpec};
    let backend = cluster();
    let spec: WorkloadSpec = serde_yaml::from_str(
        r#"
namespace: shop
kind: Deployment
name: web
hpa:
  maxReplicas: 10
  metrics:
  - {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}
"#,
    )
    .unwrap();
    assert_eq!(spec.validate(), Ok(()));
    let mut recommender =
        Recommender::new(vec![spec.clone()], RecommenderOptions::default()).unwrap();
    let first = block_on(recommender.refresh(&backend, END - 10 * 60_000));
    let web = &first.workloads[0];
    // The first step is the first scrape: rate() has a single sample there.
    assert_eq!(web.inputs.cpu_samples, 2 * 2 * 11_520);
    // Memory has a sample at the first step too.
    assert_eq!(recommender.samples_fed(), 2 * 2 * (11_520 + 11_521));
    // A restart: the checkpoint restores the model, and only the 10 minutes since
    // are fed (2 pods x 2 containers x 10 steps, CPU and memory).
    let mut file = Vec::new();
    assert_eq!(
        recommender
            .write_checkpoints(&mut file, END - 10 * 60_000)
            .unwrap(),
        1
    );
    let mut restarted = Recommender::new(vec![spec], RecommenderOptions::default()).unwrap();
    let restored = restarted.restore_checkpoints(&file).unwrap();
    assert_eq!((restored.workloads, restored.unused), (1, 0));
    let after_restart = block_on(restarted.refresh(&backend, END));
    assert_eq!(restarted.samples_fed(), 2 * 2 * 10 * 2);
    let report = block_on(recommender.refresh(&backend, END));
    assert_eq!(
        after_restart.workloads[0].containers,
        report.workloads[0].containers
    );
    assert_eq!(
        after_restart.workloads[0].inputs,
        report.workloads[0].inputs
    );
    assert!(restarted.restore_checkpoints(&file[1..]).is_err());
    let web = &report.workloads[0];
    assert_eq!(web.errors, Vec::<String>::new());
    assert_eq!(web.inputs.cpu_samples, 2 * 2 * (11_520 + 10));
    assert_eq!(web.inputs.history_end_ms, Some(END));
    assert_eq!(web.current_replicas, Some(2));
    let app = &web.containers[0];
    assert_eq!(app.name, "app");
    let cpu = app.cpu.as_ref().unwrap();
    assert_eq!((cpu.target, cpu.current_request), (0.587, Some(0.5)));
    assert_eq!(cpu.quantities.target, "587m");
    assert_eq!(cpu.quantities.current_request.as_deref(), Some("500m"));
    assert_eq!(cpu.unit, "core");
    assert!(
        cpu.explanations
            .get("target")
            .unwrap()
            .summary
            .contains("587m")
    );
    let memory = app.memory.as_ref().unwrap();
    assert_eq!(memory.target, 587_804_717.0);
    // 1100m used of 1200m requested at a 50 % target: ceil(2 x 1.83) = 4.
    let hpa = web.hpa.as_ref().unwrap();
    assert_eq!((hpa.current_replicas, hpa.desired_replicas), (2, 4));
    assert_eq!(hpa.metrics[0].replicas, Some(4));
}

/// A day of usage of several workloads in two namespaces, one of them a
/// ReplicaSet owning the same pods as a Deployment, plus pods nobody follows.
fn fleet() -> Local {
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    let mut t = END - DAY - 10 * 60_000;
    let mut i = 0.0;
    let pods = [
        ("shop", "web-7d4b9c8f6b-x2x5z", 0.5, 500e6),
        ("shop", "web-7d4b9c8f6b-k9vqw", 0.7, 400e6),
        ("shop", "db-0", 1.5, 2e9),
        ("shop", "db-1", 1.2, 2.5e9),
        ("shop", "other-0", 3.0, 1e9),
        ("lab", "web-5f6d7c8b9d-q2w4x", 0.2, 100e6),
        ("lab", "stray", 0.2, 100e6),
    ];
    while t <= END {
        for (k, (namespace, pod, cores, bytes)) in pods.iter().enumerate() {
            // Usage wobbling by pod and time, so the histograms differ.
            let wobble = 1.0 + 0.3 * ((i / 40.0 + k as f64).sin());
            let l = |name: &str| {
                Labels::from_pairs(&[
                    ("__name__", name),
                    ("namespace", namespace),
                    ("pod", pod),
                    ("container", "main"),
                ])
            };
            app.append(
                None,
                &l("container_cpu_usage_seconds_total"),
                Sample::new(t, cores * 15.0 * i),
            )
            .unwrap();
            app.append(
                None,
                &l("container_memory_working_set_bytes"),
                Sample::new(t, (bytes * wobble).round()),
            )
            .unwrap();
        }
        t += SCRAPE;
        i += 1.0;
    }
    app.commit().unwrap();
    Local {
        head,
        engine: Engine::new(EngineOptions::default()),
    }
}

/// Many workloads fed by one query per resource and piece of time get the models
/// their own queries give them.
#[test]
fn models_fed_together_equal_models_fed_one_by_one() {
    use autoscaler::controller::Feed;
    let backend = fleet();
    let options = SourceOptions {
        vpa_history: Duration::from_millis(DAY as u64),
        ..SourceOptions::default()
    };
    let source = Source::new(&backend, options);
    let workloads = [
        ("shop", WorkloadKind::Deployment, "web"),
        ("shop", WorkloadKind::ReplicaSet, "web-7d4b9c8f6b"),
        ("shop", WorkloadKind::StatefulSet, "db"),
        ("lab", WorkloadKind::Deployment, "web"),
        ("lab", WorkloadKind::Deployment, "absent"),
    ]
    .map(|(namespace, kind, name)| WorkloadRef {
        namespace: namespace.into(),
        kind,
        name: name.into(),
    });
    let range = TimeRange::new(END - DAY, END);
    let mut models: Vec<vpa::Workload> = workloads
        .iter()
        .map(|_| vpa::Workload::new(vpa::Options::default()).unwrap())
        .collect();
    let mut feeds: Vec<Feed<'_>> = workloads
        .iter()
        .zip(models.iter_mut())
        .map(|(workload, model)| Feed {
            workload: workload.clone(),
            model,
            stats: Default::default(),
        })
        .collect();
    block_on(source.feed_vpa_many(&mut feeds, range)).unwrap();
    let stats: Vec<_> = feeds.iter().map(|f| f.stats).collect();
    drop(feeds);
    for ((workload, together), stats) in workloads.iter().zip(&models).zip(stats) {
        let mut alone = vpa::Workload::new(vpa::Options::default()).unwrap();
        let alone_stats = block_on(source.feed_vpa(workload, &mut alone, range)).unwrap();
        assert_eq!(stats, alone_stats, "{workload}");
        assert_eq!(
            together.recommend(None),
            alone.recommend(None),
            "{workload}"
        );
    }
    // 1441 one-minute steps per pod and resource.
    let samples: Vec<usize> = models
        .iter()
        .map(|m| {
            m.aggregates()
                .values()
                .map(|a| a.total_samples as usize)
                .sum()
        })
        .collect();
    assert_eq!(samples, [2 * 1441, 2 * 1441, 2 * 1441, 1441, 0]);
}

/// The replicas and requests a refresh reads for all workloads at once are what
/// each workload's own queries read.
#[test]
fn replicas_and_requests_read_together_equal_one_by_one() {
    let backend = cluster();
    let source = Source::new(&backend, SourceOptions::default());
    let workloads = [
        ("shop", WorkloadKind::Deployment, "web"),
        ("shop", WorkloadKind::ReplicaSet, "web-7d4b9c8f6b"),
        ("shop", WorkloadKind::Deployment, "web-admin"),
        ("shop", WorkloadKind::StatefulSet, "web"),
        ("lab", WorkloadKind::Deployment, "web"),
    ]
    .map(|(namespace, kind, name)| WorkloadRef {
        namespace: namespace.into(),
        kind,
        name: name.into(),
    });
    let replicas = block_on(source.spec_replicas_many(&workloads, END)).unwrap();
    assert_eq!(replicas, [Some(2.0), None, None, None, None]);
    for resource in ["cpu", "memory"] {
        let together = block_on(source.current_requests_many(&workloads, resource, END)).unwrap();
        for (workload, together) in workloads.iter().zip(&together) {
            let alone = block_on(source.current_requests(workload, resource, END)).unwrap();
            assert_eq!(together, &alone, "{workload} {resource}");
        }
        if resource == "cpu" {
            assert_eq!(together[0]["app"], 0.5);
            assert_eq!(together[0]["proxy"], 0.1);
            assert_eq!(
                together[1], together[0],
                "the ReplicaSet owns the same pods"
            );
        }
    }
    for (workload, together) in workloads.iter().zip(replicas) {
        assert_eq!(
            block_on(source.spec_replicas(workload, END)).unwrap(),
            together
        );
    }
}
