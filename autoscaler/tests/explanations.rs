#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The plain-language explanations, pinned as text: what the recommendations API will
//! serve next to every number. Regenerate with `UPDATE_EXPECT=1 cargo test`.

use std::collections::BTreeMap;

use autoscaler::hpa::{self, History, MetricReading, Observation, Options, PodMetric};
use autoscaler::model::{CPU, HorizontalPodAutoscalerSpec, Pod};
use autoscaler::vpa::{self, AggregateState, Bound, ContainerState};
use expect_test::expect;

const T0: i64 = 1_699_923_600_000; // 2023-11-14T01:00:00Z

#[test]
fn hpa_explanation() {
    let spec: HorizontalPodAutoscalerSpec = serde_yaml::from_str(
        "minReplicas: 2\nmaxReplicas: 10\nmetrics:\n- {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}}\n- {type: Pods, pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: 50}}}",
    )
    .unwrap();
    let pods: Vec<Pod> = (0..3)
        .map(|i| Pod::running(&format!("web-{i}"), T0 - 3_600_000, &[(CPU, 500)]))
        .collect();
    let sample = |v: i64| PodMetric {
        value_milli: v,
        timestamp_ms: T0,
        window_ms: 30_000,
    };
    let cpu: BTreeMap<String, PodMetric> = [("web-0", 450), ("web-1", 500), ("web-2", 400)]
        .into_iter()
        .map(|(p, v)| (p.to_string(), sample(v)))
        .collect();
    let rps: BTreeMap<String, PodMetric> = [("web-0", 40_000), ("web-1", 45_000)]
        .into_iter()
        .map(|(p, v)| (p.to_string(), sample(v)))
        .collect();
    let observation = Observation {
        spec_replicas: 3,
        status_replicas: 3,
        pods,
        readings: vec![MetricReading::PerPod(cpu), MetricReading::PerPod(rps)],
    };
    let rec = hpa::reconcile(
        &spec,
        &observation,
        &mut History::default(),
        T0,
        &Options::default(),
    );
    expect![[r#"
        scale from 3 to 5 replicas
          inputs:
            current replicas: 3
            min replicas: 2
            max replicas: 10
            tolerance band: [0.9, 1.1]
            behavior: not set: scale-down follows the highest proposal of the last 300 s, scale-up at most to max(2 x current, 4)
            resource cpu: target utilization: 60%
            resource cpu: pods: 3 (3 ready, 0 unready, 0 missing a sample, 0 ignored)
            pods metric rps: target average value: 50
            pods metric rps: pods: 3 (2 ready, 0 unready, 1 missing a sample, 0 ignored)
          steps:
            1. resource cpu: cpu utilization against a target of 60% of the request proposes 5 replicas
            2. utilization = sum of usage * 100 / sum of requests over 3 pods (integer %), then / target 60% = 90% -> ratio 1.5
            3. ceil(ratio * 3 ready pods) = 5
            4. pods metric rps: average value per pod against a target of 50 proposes 3 replicas
            5. average = sum of values / 2 pods (integer milli), then / target 50 = 42500m -> ratio 0.85
            6. scale-down with 1 pod(s) missing a sample: count each as using the target 50
            7. recomputed average = sum of values / 3 pods (integer milli), then / target 50 = 45 -> ratio 0.9
            8. recomputed ratio within the tolerance band [0.9, 1.1]: keep the current count = 3
            9. highest proposal over the metrics (resource cpu) = 5
    "#]]
    .assert_eq(&rec.explanation.to_string());
}

#[test]
fn vpa_explanations() {
    let options = vpa::Options::default();
    let mut aggregate = AggregateState::new(&options, T0).unwrap();
    let mut container = ContainerState::default();
    for i in 0..8 * 1440 {
        let t = T0 + i * 60_000;
        container.add_cpu_sample(&mut aggregate, t, 500);
        container.add_memory_sample(&mut aggregate, t, 500_000_000, &options);
    }
    let recs = vpa::recommend(&[("app".to_string(), aggregate)].into(), &options, None);
    let cpu = recs[0].cpu.as_ref().unwrap();
    let memory = recs[0].memory.as_ref().unwrap();
    expect![[r#"
        app cpu target is 587m
          inputs:
            history: 11520 CPU samples over 7.9993 days (confidence 7.9993 days)
            half-life: 24 h
            safety margin: 15 %
            pod minimum: 25m split over 1 container(s) = 25m
          steps:
            1. p90 of the decaying histogram of CPU usage (the end of the 5 % bucket it falls in) = 0.5111345375888712 cores = 511m
            2. plus the 15 % safety margin (76m truncated) = 587m
        app cpu lower bound is 586m
          inputs:
            history: 11520 CPU samples over 7.9993 days (confidence 7.9993 days)
            half-life: 24 h
            safety margin: 15 %
            pod minimum: 25m split over 1 container(s) = 25m
          steps:
            1. p50 of the decaying histogram of CPU usage (the end of the 5 % bucket it falls in) = 0.5111345375888712 cores = 511m
            2. plus the 15 % safety margin (76m truncated) = 587m
            3. times (1 + 0.001 / 7.9993 days of history)^-2 = 0.999750, truncated = 586m
        app cpu upper bound is 660m
          inputs:
            history: 11520 CPU samples over 7.9993 days (confidence 7.9993 days)
            half-life: 24 h
            safety margin: 15 %
            pod minimum: 25m split over 1 container(s) = 25m
          steps:
            1. p95 of the decaying histogram of CPU usage (the end of the 5 % bucket it falls in) = 0.5111345375888712 cores = 511m
            2. plus the 15 % safety margin (76m truncated) = 587m
            3. times (1 + 1 / 7.9993 days of history) = 1.125011, truncated; it shrinks as history grows = 660m
        app memory target is 587804717
          inputs:
            history: 11520 CPU samples over 7.9993 days (confidence 7.9993 days)
            half-life: 24 h
            safety margin: 15 %
            pod minimum: 262144000 bytes (250Mi) split over 1 container(s) = 262144000 bytes (250Mi)
          steps:
            1. p90 of the decaying histogram of daily memory peaks (the end of the 5 % bucket it falls in) = 511134537 bytes
            2. plus the 15 % safety margin (76670180 bytes truncated) = 587804717 bytes
    "#]]
    .assert_eq(&format!(
        "{}{}{}{}",
        cpu.explanation(Bound::Target),
        cpu.explanation(Bound::LowerBound),
        cpu.explanation(Bound::UpperBound),
        memory.explanation(Bound::Target)
    ));
}
