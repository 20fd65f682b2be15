#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Scenario tests: synthetic metric histories played through the pure HPA and VPA logic
//! with a manual clock, checked against expectations derived by hand (the derivation is
//! in the comment of each test).

use std::collections::BTreeMap;
use std::time::Duration;

use autoscaler::hpa::{
    Autoscaler, Decision, MetricOutcome, MetricReading, Observation, Options, PodMetric, Reason,
    Recommendation,
};
use autoscaler::model::{CPU, ConditionStatus, HorizontalPodAutoscalerSpec, Pod, ReadyCondition};
use autoscaler::vpa::{self, AggregateState, ContainerState};
use tsdb::clock::{Clock, ManualClock};

/// 2023-11-14T00:00:00Z, a UTC midnight.
const MIDNIGHT: i64 = 1_699_920_000_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const SYNC: Duration = Duration::from_secs(15);

fn spec(yaml: &str) -> HorizontalPodAutoscalerSpec {
    serde_yaml::from_str(yaml).unwrap()
}

/// A workload followed by an HPA: pods are created ready when the HPA scales up (and
/// are, like real pods, "initialising" for the cpu rules for a while), and removed
/// newest first when it scales down.
struct Workload {
    clock: ManualClock,
    hpa: Autoscaler,
    spec: HorizontalPodAutoscalerSpec,
    pods: Vec<Pod>,
    next_pod: usize,
}

impl Workload {
    fn new(spec: HorizontalPodAutoscalerSpec, replicas: usize, start_ms: i64) -> Workload {
        let mut w = Workload {
            clock: ManualClock::new(start_ms),
            hpa: Autoscaler::new(Options::default()),
            spec,
            pods: Vec::new(),
            next_pod: 0,
        };
        // The initial pods have been running for a day.
        for _ in 0..replicas {
            w.add_pod(start_ms - DAY);
        }
        w
    }

    fn add_pod(&mut self, started_ms: i64) {
        self.pods.push(Pod::running(
            &format!("pod-{}", self.next_pod),
            started_ms,
            &[(CPU, 500)],
        ));
        self.next_pod += 1;
    }

    fn replicas(&self) -> i32 {
        i32::try_from(self.pods.len()).unwrap()
    }

    /// One sync: every pod reports `per_pod(n)` (milli-units), then the recommendation
    /// is applied.
    fn sync(&mut self, per_pod_total: i64) -> Recommendation {
        let now = self.clock.now_ms();
        let n = i64::try_from(self.pods.len()).unwrap();
        let samples: BTreeMap<String, PodMetric> = self
            .pods
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    PodMetric {
                        value_milli: per_pod_total / n,
                        timestamp_ms: now,
                        window_ms: 30_000,
                    },
                )
            })
            .collect();
        let observation = Observation {
            spec_replicas: self.replicas(),
            status_replicas: self.replicas(),
            pods: self.pods.clone(),
            readings: vec![MetricReading::PerPod(samples)],
        };
        let rec = self.hpa.recommend(&self.clock, &self.spec, &observation);
        if rec.rescale() {
            let (prev, new) = (rec.current_replicas, rec.desired_replicas);
            while self.replicas() < new {
                self.add_pod(now);
            }
            self.pods.truncate(usize::try_from(new).unwrap());
            self.hpa.record_rescale(&self.clock, &self.spec, prev, new);
        }
        rec
    }
}

const CPU_50_PERCENT: &str = "minReplicas: 2\nmaxReplicas: 40\nmetrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]";

/// A one-minute spike to 4x the load (no behavior: the legacy rules).
///
/// 4 pods with 500m requests serve 1000m at a 50 % target: exactly on target.
/// - 10:00:00 the load jumps to 4000m: 1000m per pod, 200 %, ratio 4, proposal 16,
///   limited to max(2 x 4, 4) = 8 (ScaleUpLimit). 4 pods start.
/// - 10:00:15 the new pods' samples do not yet cover a 30 s window since they became
///   ready: they are unready for cpu. The 4 old pods run at 100 % (ratio 2 > 1), so the
///   unready pods count as using nothing: 2000m over 4000m of requests is 50 %, ratio
///   1.0, inside the tolerance: this sync proposes 8. But stabilisation takes the
///   highest proposal of the last 5 minutes, and the 16 of 10:00:00 is one of them:
///   16, within the limit max(2 x 8, 4). 8 more pods start.
/// - 10:00:30 and 10:00:45: 250m per pod, the pods that count are at 50 %: 16.
/// - 10:01:00 the load is back to 1000m: 62m per pod (1000/16 truncated), 12 %, ratio
///   0.24, proposal ceil(0.24 * 16) = 4, but the highest proposal of the last 5 minutes
///   is 16 (ScaleDownStabilized).
/// - The last 16 was proposed at 10:00:45; it leaves the window (`t >= now - 300 s`)
///   at 10:06:00, when the count drops to 4 at once.
#[test]
fn hpa_spike_scales_up_at_once_and_down_after_the_stabilization_window() {
    let start = MIDNIGHT + 9 * HOUR + 55 * MINUTE;
    let mut w = Workload::new(spec(CPU_50_PERCENT), 4, start);
    let spike_start = MIDNIGHT + 10 * HOUR;
    let mut timeline = Vec::new();
    let mut recs = BTreeMap::new();
    // 09:55 to 10:10, every 15 s.
    for i in 0..(15 * 4) {
        let now = start + i64::from(i) * 15_000;
        w.clock.set(now);
        let spike = (spike_start..spike_start + MINUTE).contains(&now);
        let rec = w.sync(if spike { 4000 } else { 1000 });
        recs.insert((now - spike_start) / 1000, rec);
        if timeline.last().map(|(_, n)| *n) != Some(w.replicas()) {
            timeline.push(((now - spike_start) / 1000, w.replicas()));
        }
    }
    // Seconds from 10:00:00.
    assert_eq!(timeline, [(-300, 4), (0, 8), (15, 16), (360, 4)]);
    let up = &recs[&0];
    assert_eq!(up.proposal, Some(16));
    assert_eq!(
        up.scaling_limited.as_ref().unwrap().reason,
        Reason::ScaleUpLimit
    );
    let remembered = &recs[&15];
    assert_eq!(
        (remembered.proposal, remembered.stabilized),
        (Some(8), Some(16))
    );
    let down = &recs[&60];
    assert_eq!(down.proposal, Some(4));
    assert_eq!(down.desired_replicas, 16);
    assert_eq!(down.able_to_scale.reason, Reason::ScaleDownStabilized);
    let text = down.explanation.to_string();
    assert!(text.contains("12% -> ratio 0.24"), "{text}");
    assert!(
        text.contains("highest proposal of the last 300 s (scale-down stabilization) = 16"),
        "{text}"
    );
    assert_eq!(recs[&345].desired_replicas, 16);
}

/// A step in a Pods metric (requests per second, target 1 per pod) from 3 to 40 rps
/// with the default `behavior` (scale-up: max of +4 pods and +100 % per 15 s).
///
/// Pods metrics have no readiness rules, so every pod counts at once. The average is
/// 40000m / n truncated, so the proposal is ceil(average / 1000 * n) = 40 at every
/// count on the way (e.g. n = 7: 5714m, 5.714 * 7 = 39.998 -> 40). The policies allow
/// max(n + 4, 2 n) per period, and the period starts after the previous event
/// (membership is strict), so: 3 -> 7 -> 14 -> 28 -> 40.
///
/// Then the load drops to 10 rps: proposal 10. Stabilization keeps the highest
/// proposal with `t > now - 300 s`; the last 40 was proposed 15 s before the drop, so
/// it leaves the window 285 s after the drop, and the 100 %-per-15 s policy allows the
/// whole step down to 10 at once.
#[test]
fn hpa_step_change_with_default_behavior() {
    let spec = spec(
        "maxReplicas: 50\nmetrics: [{type: Pods, pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: 1}}}]\nbehavior: {}",
    );
    let start = MIDNIGHT + 8 * HOUR;
    let mut w = Workload::new(spec, 3, start);
    w.sync(3000);
    assert_eq!(w.replicas(), 3);
    let mut counts = Vec::new();
    for _ in 0..5 {
        w.clock.advance(SYNC);
        w.sync(40_000);
        counts.push(w.replicas());
    }
    assert_eq!(counts, [7, 14, 28, 40, 40]);

    w.clock.advance(SYNC);
    let drop_at = w.clock.now_ms();
    let mut scaled_down_at = None;
    for _ in 0..30 {
        let rec = w.sync(10_000);
        if rec.desired_replicas == 10 && scaled_down_at.is_none() {
            scaled_down_at = Some(w.clock.now_ms() - drop_at);
            assert_eq!(
                rec.scaling_limited.as_ref().unwrap().reason,
                Reason::DesiredWithinRange
            );
        } else if scaled_down_at.is_none() {
            assert_eq!(rec.desired_replicas, 40);
            assert_eq!(rec.able_to_scale.reason, Reason::ScaleDownStabilized);
        }
        w.clock.advance(SYNC);
    }
    assert_eq!(scaled_down_at, Some(285_000));
    assert_eq!(w.replicas(), 10);
}

/// A daily sine of requests per second (20 + 15 sin(2 pi t / day), target 1 rps per
/// pod, no behavior) followed for a day at the 15 s sync period.
///
/// Hand-derived bounds:
/// - the count only changes when the ratio leaves [0.9, 1.1], and the load moves by at
///   most 15 * 2 pi / 5760 = 0.016 rps per sync, so after every sync the average per
///   pod is at most 1.1 rps plus that step (never under-provisioned);
/// - at the crest (06:00, 35 rps) a count below 35 / 1.1 = 31.8 would have scaled up,
///   and scale-ups go to ceil(load) = 35 at most: 32..=35 pods;
/// - at the trough (18:00, 5 rps) the count follows the highest proposal of the last
///   5 minutes (ceil(load) <= 6 there) unless within the tolerance: 5..=6 pods.
#[test]
fn hpa_daily_sine_tracks_the_load_within_the_tolerance() {
    let spec = spec(
        "minReplicas: 1\nmaxReplicas: 60\nmetrics: [{type: Pods, pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: 1}}}]",
    );
    let mut w = Workload::new(spec, 20, MIDNIGHT);
    let load = |t: i64| {
        let phase = (t - MIDNIGHT) as f64 / DAY as f64 * std::f64::consts::TAU;
        (20_000.0 + 15_000.0 * phase.sin()).round() as i64
    };
    let (mut at_crest, mut at_trough, mut pod_syncs) = (0, 0, 0i64);
    for i in 0..(24 * 240) {
        let now = MIDNIGHT + i64::from(i) * 15_000;
        w.clock.set(now);
        w.sync(load(now));
        let per_pod = load(now) as f64 / f64::from(w.replicas());
        assert!(
            per_pod <= 1_100.0 + 17.0,
            "under-provisioned at {now}: {per_pod}m per pod"
        );
        if now == MIDNIGHT + 6 * HOUR {
            at_crest = w.replicas();
        }
        if now == MIDNIGHT + 18 * HOUR {
            at_trough = w.replicas();
        }
        pod_syncs += i64::from(w.replicas());
    }
    assert!(
        (32..=35).contains(&at_crest),
        "{at_crest} pods at the crest"
    );
    assert!(
        (5..=6).contains(&at_trough),
        "{at_trough} pods at the trough"
    );
    // Pod-hours: the load averages 20 rps, so no fewer than 20 * 24 / 1.1 pod-hours.
    let pod_hours = pod_syncs as f64 / 240.0;
    assert!(
        pod_hours > 20.0 * 24.0 / 1.1 && pod_hours < 20.0 * 24.0 * 1.25,
        "{pod_hours}"
    );
}

fn pod(name: &str, started_ms: i64, ready: ConditionStatus, transition_ms: i64) -> Pod {
    let mut p = Pod::running(name, started_ms, &[(CPU, 500)]);
    p.ready = Some(ReadyCondition {
        status: ready,
        last_transition_ms: transition_ms,
    });
    p
}

fn cpu_observation(pods: Vec<Pod>, usage: &[(&str, i64)], now: i64) -> Observation {
    let samples = usage
        .iter()
        .map(|(name, u)| {
            (
                (*name).to_string(),
                PodMetric {
                    value_milli: *u,
                    timestamp_ms: now,
                    window_ms: 30_000,
                },
            )
        })
        .collect();
    let n = i32::try_from(pods.len()).unwrap();
    Observation {
        spec_replicas: n,
        status_replicas: n,
        pods,
        readings: vec![MetricReading::PerPod(samples)],
    }
}

/// A pod that is not ready: a new pod warming up (1500m of JIT compilation) next to 3
/// pods exactly on the 50 % target.
///
/// - While it is initialising and not ready, its sample is ignored: the 3 others give
///   ratio 1.0 and nothing happens. Counted, it would have given (750 + 1500) * 100 /
///   2000 = 112 %, ratio 2.24 and ceil(2.24 * 4) = 9 replicas.
/// - Ready at 40 s, its sample still does not cover a 30 s window since then: ignored
///   until 70 s.
/// - At 75 s it counts, at 250m like the others: 4 pods at 50 %, keep 4.
#[test]
fn hpa_ignores_a_pod_that_is_not_ready() {
    let spec = spec(CPU_50_PERCENT);
    let t0 = MIDNIGHT + 12 * HOUR;
    let clock = ManualClock::new(t0);
    let mut hpa = Autoscaler::new(Options::default());
    let old = |i: usize| {
        pod(
            &format!("old-{i}"),
            t0 - DAY,
            ConditionStatus::True,
            t0 - DAY,
        )
    };
    let others = [("old-0", 250), ("old-1", 250), ("old-2", 250)];

    let mut steps = Vec::new();
    for (at_s, ready, usage) in [
        (15, false, 1500),
        (45, true, 900),
        (60, true, 600),
        (75, true, 250),
    ] {
        clock.set(t0 + at_s * 1000);
        let new_pod = if ready {
            pod("new", t0, ConditionStatus::True, t0 + 40_000)
        } else {
            pod("new", t0, ConditionStatus::False, t0)
        };
        let mut usage_list = others.to_vec();
        usage_list.push(("new", usage));
        let obs = cpu_observation(
            vec![old(0), old(1), old(2), new_pod],
            &usage_list,
            clock.now_ms(),
        );
        let rec = hpa.recommend(&clock, &spec, &obs);
        let MetricOutcome::Computed(calc) = &rec.metrics[0].outcome else {
            panic!("{rec:?}");
        };
        let groups = calc.pods.clone().unwrap();
        steps.push((
            at_s,
            rec.desired_replicas,
            groups.ready,
            groups.unready.len(),
            calc.current.average_utilization,
        ));
    }
    assert_eq!(
        steps,
        [
            (15, 4, 3, 1, Some(50)),
            (45, 4, 3, 1, Some(50)),
            (60, 4, 3, 1, Some(50)),
            (75, 4, 4, 0, Some(50)),
        ]
    );
}

/// Missing metrics, as the controller treats them.
///
/// - Scale-down with 2 of 4 pods missing a sample: the 2 reporting pods are at 20 %
///   (ratio 0.4). Missing pods count as 100 % of their request: (200 + 1000) * 100 /
///   2000 = 60 %, ratio 1.2: the direction flips, keep 4 (a naive average would have
///   said ceil(0.4 * 2) = 1).
/// - Scale-up with 2 of 4 missing: the reporting pods are at 100 % (ratio 2); missing
///   pods count as 0: 1000 * 100 / 2000 = 50 %, ratio 1.0, inside the tolerance: keep 4.
/// - The metrics API is down: ScalingActive is False with FailedGetResourceMetric, and
///   the count stays.
#[test]
fn hpa_missing_metrics() {
    let spec = spec(CPU_50_PERCENT);
    let now = MIDNIGHT + 12 * HOUR;
    let clock = ManualClock::new(now);
    let pods: Vec<Pod> = (0..4)
        .map(|i| {
            pod(
                &format!("p{i}"),
                now - DAY,
                ConditionStatus::True,
                now - DAY,
            )
        })
        .collect();
    let calc_of = |rec: &Recommendation| match &rec.metrics[0].outcome {
        MetricOutcome::Computed(c) => (**c).clone(),
        MetricOutcome::Failed(e) => panic!("{e}"),
    };

    let mut hpa = Autoscaler::new(Options::default());
    let rec = hpa.recommend(
        &clock,
        &spec,
        &cpu_observation(pods.clone(), &[("p0", 100), ("p1", 100)], now),
    );
    let calc = calc_of(&rec);
    assert_eq!(calc.current.average_utilization, Some(20));
    assert_eq!(calc.decision, Decision::DirectionFlipped);
    assert_eq!(calc.rebalanced.as_ref().unwrap().ratio, 1.2);
    assert_eq!(rec.desired_replicas, 4);

    let mut hpa = Autoscaler::new(Options::default());
    let rec = hpa.recommend(
        &clock,
        &spec,
        &cpu_observation(pods.clone(), &[("p0", 500), ("p1", 500)], now),
    );
    let calc = calc_of(&rec);
    assert_eq!(calc.decision, Decision::RebalancedWithinTolerance);
    assert_eq!(rec.desired_replicas, 4);

    let mut down = cpu_observation(pods, &[], now);
    down.readings = vec![MetricReading::Unavailable(
        "the server is currently unable to handle the request".into(),
    )];
    let rec = hpa.recommend(&clock, &spec, &down);
    assert!(!rec.scaling_active.status);
    assert_eq!(rec.scaling_active.reason, Reason::FailedGetResourceMetric);
    assert_eq!(rec.desired_replicas, 4);
    assert!(
        rec.error
            .unwrap()
            .contains("invalid metrics (1 invalid out of 1)")
    );
}

/// Feeds one container for `days` days, one CPU and one memory sample per minute, with
/// time read from the clock.
fn feed_vpa(
    clock: &ManualClock,
    days: i64,
    cpu_millicores: impl Fn(i64) -> i64,
    memory_bytes: impl Fn(i64) -> i64,
) -> AggregateState {
    let options = vpa::Options::default();
    let mut aggregate = AggregateState::new(&options, clock.now_ms()).unwrap();
    let mut container = ContainerState::default();
    for _ in 0..days * 1440 {
        let t = clock.now_ms();
        assert!(container.add_cpu_sample(&mut aggregate, t, cpu_millicores(t)));
        assert!(container.add_memory_sample(&mut aggregate, t, memory_bytes(t), &options));
        clock.advance(Duration::from_secs(60));
    }
    aggregate
}

fn recommend_one(aggregate: &AggregateState) -> vpa::ContainerRecommendation {
    let recs = vpa::recommend(
        &[("app".to_string(), aggregate.clone())].into(),
        &vpa::Options::default(),
        None,
    );
    recs.into_iter().next().unwrap()
}

/// 8 days of a daily CPU sine, 500m + 300m sin(2 pi t / day), and memory 400 MB +
/// 100 MB sin(...) (peaking at exactly 500 MB at 06:00 each day).
///
/// Every day holds the same values at the same phases, so the decay (which weighs days
/// and the hours within a day differently) cannot move the percentiles much:
/// - CPU p90 of the sine is 500 + 300 sin(0.4 pi) = 785m and p95 is 796m, both in the
///   bucket [753m, 800.6m) (bucket 32 of 1.05-growth buckets from 10m). Below 753m lie
///   82 % of the phases unweighted, at most ~85 % with the within-day weights (1 to 2),
///   so both percentiles stay in bucket 32, whose end is 800.6m: 800m, plus 15 %
///   margin (120m) = 920m target; upper = trunc(920 * (1 + 1/7.9993)) = 1035m.
/// - The median (500m unweighted) is pulled down by the heavier second half of each
///   day (sin < 0), but not below 400m: lower bound between 400m and 511m (bucket end)
///   plus 15 %, times the ~1 lower factor.
/// - Memory: 8 equal daily peaks of 500 MB, as the constant vector
///   (`vpa-derived-constant-usage`): 587804717 / 587657780 / 661286685 bytes.
#[test]
fn vpa_daily_sine() {
    let clock = ManualClock::new(MIDNIGHT);
    let phase = |t: i64| (t - MIDNIGHT) as f64 / DAY as f64 * std::f64::consts::TAU;
    let aggregate = feed_vpa(
        &clock,
        8,
        |t| (500.0 + 300.0 * phase(t).sin()) as i64,
        |t| (400_000_000.0 + 100_000_000.0 * phase(t).sin()) as i64,
    );
    let rec = recommend_one(&aggregate);
    let cpu = rec.cpu.unwrap();
    assert_eq!(cpu.target.value, 920);
    assert_eq!(cpu.upper_bound.value, 1035);
    assert!(
        (460..=587).contains(&cpu.lower_bound.value),
        "{}",
        cpu.lower_bound.value
    );
    let memory = rec.memory.unwrap();
    assert_eq!(
        (
            memory.target.value,
            memory.lower_bound.value,
            memory.upper_bound.value
        ),
        (587_804_717, 587_657_780, 661_286_685)
    );
}

/// A spike: 200m and 300 MB for 8 days, except 30 minutes at 1500m and 900 MB on the
/// last day.
///
/// - CPU: the 30 spike samples weigh 2^7.x each against 1440 samples per day weighing
///   2^0..2^7.x: about 1.4 % of the weight, below the 5 % above p95. Target, lower and
///   upper stay in the 200m bucket [196m, 215.8m): 215m + 32m = 247m target.
/// - Memory: one peak per day, weighted 2^0 .. 2^7 by the day its interval ends; the
///   spike makes the last day's peak 900 MB, 128/255 = 50.2 % of the weight. The
///   cumulative weight of the 300 MB bucket is 49.8 % < 50 %, so p50, p90 and p95 all
///   land in the 900 MB bucket: memory follows a one-day spike within a day.
#[test]
fn vpa_spike() {
    let clock = ManualClock::new(MIDNIGHT);
    let spike =
        |t: i64| (7 * DAY + 12 * HOUR..7 * DAY + 12 * HOUR + 30 * MINUTE).contains(&(t - MIDNIGHT));
    let aggregate = feed_vpa(
        &clock,
        8,
        |t| if spike(t) { 1500 } else { 200 },
        |t| if spike(t) { 900_000_000 } else { 300_000_000 },
    );
    let rec = recommend_one(&aggregate);
    let cpu = rec.cpu.unwrap();
    assert_eq!(cpu.target.value, 247);
    // 900 MB falls in memory bucket floor(ln(900e6 * 0.05 / 1e7 + 1) / ln 1.05) = 34,
    // whose end is 1e7 * (1.05^35 - 1) / 0.05 = 903.2 MB.
    let end = (1e7 * (1.05f64.powf(35.0) - 1.0) / 0.05) as i64;
    assert_eq!(end / 100_000, 9032);
    let memory = rec.memory.unwrap();
    assert_eq!(memory.target.value, end + (end as f64 * 0.15) as i64);
    assert!(memory.lower_bound.value > 900_000_000);
}

/// A step change: 200m for 4 days, then 1 core.
///
/// - One hour after the step the new samples weigh far less than 10 %: the target is
///   still the 200m bucket's 215m plus margin = 247m.
/// - Four days later the old samples weigh (2^4 - 1) / (2^8 - 1) = 5.9 % of the total:
///   every percentile from p50 up is in the bucket of 1.0 core (bucket 36, ending at
///   1.01628 cores): 1016m + 152m = 1168m target, lower trunc(1168 * 0.99975) = 1167m,
///   upper trunc(1168 * 1.12501) = 1314m.
#[test]
fn vpa_step_change() {
    let clock = ManualClock::new(MIDNIGHT);
    let step_at = MIDNIGHT + 4 * DAY;
    let cpu = |t: i64| if t < step_at { 200 } else { 1000 };
    let memory = |_| 300_000_000;
    let mut aggregate = feed_vpa(&clock, 4, cpu, memory);
    // Continue the same container: 4 days are in; feed one more hour.
    let mut container = ContainerState {
        last_cpu_sample_ms: aggregate.last_sample_start_ms,
        ..ContainerState::default()
    };
    for _ in 0..60 {
        container.add_cpu_sample(&mut aggregate, clock.now_ms(), cpu(clock.now_ms()));
        clock.advance(Duration::from_secs(60));
    }
    assert_eq!(recommend_one(&aggregate).cpu.unwrap().target.value, 247);
    for _ in 60..4 * 1440 {
        container.add_cpu_sample(&mut aggregate, clock.now_ms(), cpu(clock.now_ms()));
        clock.advance(Duration::from_secs(60));
    }
    let rec = recommend_one(&aggregate);
    let cpu = rec.cpu.unwrap();
    assert_eq!(
        (
            cpu.target.value,
            cpu.lower_bound.value,
            cpu.upper_bound.value
        ),
        (1168, 1167, 1314)
    );
}
