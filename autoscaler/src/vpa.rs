//! The Kubernetes Vertical Pod Autoscaler recommender, pure: usage samples with
//! timestamps go in, `target` / `lowerBound` / `upperBound` per container come out,
//! each with an explanation. No IO; samples carry their own time.
//!
//! Reference: `shared/docs/vpa-algorithm.md`.
//! - [`histogram`]: bucket schemes, percentiles and checkpoints (section 3).
//! - [`decaying`]: exponential decay with a 24 h half-life (section 4).
//! - [`aggregate`]: CPU samples, one memory peak per interval, OOM bumps (sections 5, 6).
//! - [`estimator`]: margin, confidence, minimums, capping (sections 7, 8, 9).
//! - [`Workload`]: the samples of one workload's pods, keyed by pod and container.

pub mod aggregate;
pub mod decaying;
pub mod estimator;
pub mod histogram;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use aggregate::{AggregateCheckpoint, AggregateState, ContainerState, OomError};
pub use estimator::{Amount, Basis, Bound, Bounds, ContainerRecommendation, Resource, recommend};
pub use histogram::{Histogram, HistogramCheckpoint, HistogramOptions};

use crate::Result;
use crate::model::PodResourcePolicy;
use crate::quantity::Quantity;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The recommender's flags (`pkg/recommender/config`), with upstream defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    pub target_cpu_percentile: f64,
    pub lower_bound_cpu_percentile: f64,
    pub upper_bound_cpu_percentile: f64,
    pub target_memory_percentile: f64,
    pub lower_bound_memory_percentile: f64,
    pub upper_bound_memory_percentile: f64,
    /// Added to target and both bounds.
    pub recommendation_margin_fraction: f64,
    /// The "day" of the confidence formula.
    pub confidence_interval_cpu: Duration,
    pub confidence_interval_memory: Duration,
    /// Minimum per pod, split over its containers.
    pub pod_recommendation_min_cpu_millicores: f64,
    pub pod_recommendation_min_memory_mb: f64,
    pub cpu_histogram_decay_half_life: Duration,
    pub memory_histogram_decay_half_life: Duration,
    /// One memory peak per container per interval.
    pub memory_aggregation_interval: Duration,
    /// History window in intervals; state without samples for that long expires.
    pub memory_aggregation_interval_count: u32,
    pub oom_bump_up_ratio: f64,
    pub oom_min_bump_up_bytes: f64,
    /// Global caps, used where a VPA's own maxAllowed does not name the resource.
    pub container_recommendation_max_allowed_cpu: Option<Quantity>,
    pub container_recommendation_max_allowed_memory: Option<Quantity>,
    /// Round the output up to a multiple (1 = no rounding).
    pub round_cpu_millicores: i64,
    pub round_memory_bytes: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target_cpu_percentile: 0.9,
            lower_bound_cpu_percentile: 0.5,
            upper_bound_cpu_percentile: 0.95,
            target_memory_percentile: 0.9,
            lower_bound_memory_percentile: 0.5,
            upper_bound_memory_percentile: 0.95,
            recommendation_margin_fraction: 0.15,
            confidence_interval_cpu: DAY,
            confidence_interval_memory: DAY,
            pod_recommendation_min_cpu_millicores: 25.0,
            pod_recommendation_min_memory_mb: 250.0,
            cpu_histogram_decay_half_life: DAY,
            memory_histogram_decay_half_life: DAY,
            memory_aggregation_interval: DAY,
            memory_aggregation_interval_count: 8,
            oom_bump_up_ratio: 1.2,
            oom_min_bump_up_bytes: 104_857_600.0,
            container_recommendation_max_allowed_cpu: None,
            container_recommendation_max_allowed_memory: None,
            round_cpu_millicores: 1,
            round_memory_bytes: 1,
        }
    }
}

/// The usage model of one workload: one [`AggregateState`] per container name shared
/// by all pods, and one [`ContainerState`] per pod and container.
#[derive(Debug, Clone)]
pub struct Workload {
    options: Options,
    aggregates: BTreeMap<String, AggregateState>,
    containers: HashMap<(String, String), ContainerState>,
}

impl Workload {
    /// # Errors
    /// When a half-life in `options` is not positive.
    pub fn new(options: Options) -> Result<Workload> {
        // Fail early rather than on the first sample.
        AggregateState::new(&options, 0)?;
        Ok(Workload {
            options,
            aggregates: BTreeMap::new(),
            containers: HashMap::new(),
        })
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    pub fn aggregates(&self) -> &BTreeMap<String, AggregateState> {
        &self.aggregates
    }

    fn states(
        &mut self,
        pod: &str,
        container: &str,
        t_ms: i64,
    ) -> Option<(&mut ContainerState, &mut AggregateState)> {
        if !self.aggregates.contains_key(container) {
            let state = AggregateState::new(&self.options, t_ms).ok()?;
            self.aggregates.insert(container.to_string(), state);
        }
        let aggregate = self.aggregates.get_mut(container)?;
        let state = self
            .containers
            .entry((pod.to_string(), container.to_string()))
            .or_default();
        Some((state, aggregate))
    }

    /// Adds a CPU usage sample (millicores) of `container` in `pod` taken at `t_ms`.
    /// Returns false when it was dropped (negative, duplicate or out of order).
    pub fn add_cpu_sample(
        &mut self,
        pod: &str,
        container: &str,
        t_ms: i64,
        millicores: i64,
    ) -> bool {
        match self.states(pod, container, t_ms) {
            Some((state, aggregate)) => state.add_cpu_sample(aggregate, t_ms, millicores),
            None => false,
        }
    }

    /// Adds the samples of one series of `container` in `pod` in time order: CPU
    /// usage in millicores or working-set bytes as `resource` says. The states are
    /// looked up once for the whole series. Returns how many were taken and how many
    /// dropped.
    pub fn add_samples(
        &mut self,
        resource: Resource,
        pod: &str,
        container: &str,
        samples: impl IntoIterator<Item = (i64, i64)>,
    ) -> (usize, usize) {
        let mut samples = samples.into_iter().peekable();
        let Some(&(first_ms, _)) = samples.peek() else {
            return (0, 0);
        };
        let options = self.options.clone();
        let Some((state, aggregate)) = self.states(pod, container, first_ms) else {
            return (0, samples.count());
        };
        let (mut taken, mut dropped) = (0, 0);
        for (t_ms, amount) in samples {
            let ok = match resource {
                Resource::Cpu => state.add_cpu_sample(aggregate, t_ms, amount),
                Resource::Memory => state.add_memory_sample(aggregate, t_ms, amount, &options),
            };
            if ok {
                taken += 1;
            } else {
                dropped += 1;
            }
        }
        (taken, dropped)
    }

    /// Adds a working-set sample (bytes). Returns false when it was dropped.
    pub fn add_memory_sample(&mut self, pod: &str, container: &str, t_ms: i64, bytes: i64) -> bool {
        let options = self.options.clone();
        match self.states(pod, container, t_ms) {
            Some((state, aggregate)) => state.add_memory_sample(aggregate, t_ms, bytes, &options),
            None => false,
        }
    }

    /// Records an OOM kill; `max_memory_bytes` is the policy's maxAllowed memory, if any.
    ///
    /// # Errors
    /// [`OomError`] when the event is too old.
    pub fn record_oom(
        &mut self,
        pod: &str,
        container: &str,
        t_ms: i64,
        request_bytes: i64,
        max_memory_bytes: Option<i64>,
    ) -> std::result::Result<i64, OomError> {
        let options = self.options.clone();
        match self.states(pod, container, t_ms) {
            Some((state, aggregate)) => {
                state.record_oom(aggregate, t_ms, request_bytes, max_memory_bytes, &options)
            }
            None => Err(OomError::Rejected),
        }
    }

    /// Drops container states that have had no sample for the whole aggregation window.
    pub fn garbage_collect(&mut self, now_ms: i64) {
        let options = &self.options;
        self.aggregates
            .retain(|_, a| !a.is_expired(now_ms, options));
        let aggregates = &self.aggregates;
        self.containers
            .retain(|(_, container), _| aggregates.contains_key(container));
    }

    /// The recommendation for every container, capped by `policy`.
    pub fn recommend(&self, policy: Option<&PodResourcePolicy>) -> Vec<ContainerRecommendation> {
        recommend(&self.aggregates, &self.options, policy)
    }

    /// The checkpoint form: each container name's histograms in the form of a
    /// `VerticalPodAutoscalerCheckpoint` (bucket weights scaled to at most 10,000),
    /// plus each pod's container state, so that feeding goes on after a restore as
    /// it would have without one (duplicates dropped, the current memory peak kept).
    pub fn save(&self) -> WorkloadCheckpoint {
        let mut containers: Vec<ContainerRecord> = self
            .containers
            .iter()
            .map(|((pod, container), state)| ContainerRecord {
                pod: pod.clone(),
                container: container.clone(),
                state: state.clone(),
            })
            .collect();
        containers.sort_by(|a, b| (&a.pod, &a.container).cmp(&(&b.pod, &b.container)));
        WorkloadCheckpoint {
            aggregates: self
                .aggregates
                .iter()
                .map(|(name, a)| {
                    let record = AggregateRecord {
                        created_ms: a.created_ms,
                        state: a.save(),
                    };
                    (name.clone(), record)
                })
                .collect(),
            containers,
        }
    }

    /// A model restored from [`Workload::save`]'s form.
    ///
    /// # Errors
    /// When `options` are invalid or the checkpoint does not fit the bucket schemes.
    pub fn load(options: Options, checkpoint: &WorkloadCheckpoint) -> Result<Workload> {
        let mut workload = Workload::new(options)?;
        for (name, record) in &checkpoint.aggregates {
            let mut state = AggregateState::new(&workload.options, record.created_ms)?;
            state.load(&record.state)?;
            workload.aggregates.insert(name.clone(), state);
        }
        for record in &checkpoint.containers {
            workload.containers.insert(
                (record.pod.clone(), record.container.clone()),
                record.state.clone(),
            );
        }
        Ok(workload)
    }
}

/// A [`Workload`] in checkpoint form ([`Workload::save`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadCheckpoint {
    /// Container name -> its shared histograms.
    pub aggregates: BTreeMap<String, AggregateRecord>,
    /// One entry per pod and container, sorted.
    pub containers: Vec<ContainerRecord>,
}

/// One container name's [`AggregateState`] in checkpoint form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateRecord {
    /// When the state was created (Unix ms), for the expiry of states without samples.
    pub created_ms: i64,
    pub state: AggregateCheckpoint,
}

/// One pod's container state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerRecord {
    pub pod: String,
    pub container: String,
    pub state: ContainerState,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_699_923_600_000;

    #[test]
    fn pods_of_a_workload_share_one_model_per_container() {
        let mut w = Workload::new(Options::default()).unwrap();
        for i in 0..1440 {
            let t = T0 + i * 60_000;
            assert!(w.add_cpu_sample("web-1", "app", t, 200));
            assert!(w.add_cpu_sample("web-2", "app", t, 400));
            w.add_memory_sample("web-1", "app", t, 300_000_000);
        }
        assert!(!w.add_cpu_sample("web-1", "app", T0, 200), "duplicate");
        assert_eq!(w.aggregates()["app"].total_samples, 2880);
        let recs = w.recommend(None);
        assert_eq!(recs.len(), 1);
        // Half the samples at 200m, half at 400m: p90 is in the 400m bucket.
        let cpu = recs[0].cpu.as_ref().unwrap();
        assert!(
            cpu.target.value > 400 && cpu.target.value < 500,
            "{}",
            cpu.target.value
        );
        assert!(
            w.record_oom("web-1", "app", T0 + 3_600_000, 256 << 20, None)
                .is_ok()
        );
        w.garbage_collect(T0 + 9 * 86_400_000);
        assert!(w.aggregates().is_empty());
        assert!(w.recommend(None).is_empty());
        let bad = Options {
            cpu_histogram_decay_half_life: Duration::ZERO,
            ..Options::default()
        };
        assert!(Workload::new(bad).is_err());
    }

    #[test]
    fn a_restored_model_recommends_and_feeds_on_as_the_original() {
        let mut w = Workload::new(Options::default()).unwrap();
        let feed = |w: &mut Workload, from: i64, to: i64| {
            for i in from..to {
                let t = T0 + i * 60_000;
                w.add_cpu_sample("web-1", "app", t, 200 + (i % 7) * 50);
                w.add_memory_sample("web-1", "app", t, 300_000_000 + (i % 5) * 1_000_000);
                w.add_cpu_sample("web-1", "proxy", t, 20);
            }
        };
        feed(&mut w, 0, 3 * 1440);
        let checkpoint = w.save();
        let json = serde_json::to_string(&checkpoint).unwrap();
        let parsed: WorkloadCheckpoint = serde_json::from_str(&json).unwrap();
        let mut restored = Workload::load(Options::default(), &parsed).unwrap();
        assert_eq!(restored.recommend(None), w.recommend(None));
        // The pod's state came back: the last sample is a duplicate, the memory
        // peak of the current interval is not added twice.
        assert!(!restored.add_cpu_sample("web-1", "app", T0 + (3 * 1440 - 1) * 60_000, 200));
        feed(&mut w, 3 * 1440, 4 * 1440);
        feed(&mut restored, 3 * 1440, 4 * 1440);
        assert_eq!(restored.recommend(None), w.recommend(None));
        assert_eq!(
            restored.aggregates()["app"].total_samples,
            w.aggregates()["app"].total_samples
        );
        let mut bad = checkpoint.clone();
        bad.aggregates
            .get_mut("app")
            .unwrap()
            .state
            .cpu
            .histogram
            .bucket_weights
            .insert(500, 1);
        assert!(Workload::load(Options::default(), &bad).is_err());
    }
}
