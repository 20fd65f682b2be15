//! Usage samples into the model (sections 5 and 6 of `vpa-algorithm.md`).
//!
//! - [`AggregateState`]: what all replicas of one container of a workload share: the
//!   CPU usage histogram, the memory peaks histogram, and the CPU sample counts that
//!   drive confidence (upstream `AggregateContainerState`).
//! - [`ContainerState`]: one container of one pod: duplicate filtering and the memory
//!   peak of the current aggregation interval (upstream `ContainerState`).
//!
//! CPU arrives in millicores and memory in bytes, as integers, because upstream
//! converts usage to `ResourceAmount`s before it reaches the histograms.

use serde::{Deserialize, Serialize};

use super::Options;
use super::decaying::{DecayingHistogram, DecayingHistogramCheckpoint};
use super::histogram::HistogramOptions;
use crate::Result;

/// The weight of every CPU sample (`minSampleWeight`; VPA >= 1.4 no longer weighs by
/// the request).
pub const CPU_SAMPLE_WEIGHT: f64 = 0.1;
/// The weight of every memory peak.
pub const MEMORY_PEAK_WEIGHT: f64 = 1.0;

/// The shared usage model of one container name in one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateState {
    pub cpu: DecayingHistogram,
    pub memory_peaks: DecayingHistogram,
    /// Start of the first CPU sample (Unix ms).
    pub first_sample_start_ms: Option<i64>,
    /// Start of the latest CPU sample (Unix ms).
    pub last_sample_start_ms: Option<i64>,
    /// CPU samples added.
    pub total_samples: u64,
    /// When the state was created, for expiry of states that never got a sample.
    pub created_ms: i64,
}

impl AggregateState {
    /// An empty state with the histogram schemes and half-lives of `options`.
    ///
    /// # Errors
    /// When a half-life in `options` is not positive.
    pub fn new(options: &Options, created_ms: i64) -> Result<AggregateState> {
        Ok(AggregateState {
            cpu: DecayingHistogram::new(
                HistogramOptions::cpu(),
                duration_ms(options.cpu_histogram_decay_half_life),
            )?,
            memory_peaks: DecayingHistogram::new(
                HistogramOptions::memory(),
                duration_ms(options.memory_histogram_decay_half_life),
            )?,
            first_sample_start_ms: None,
            last_sample_start_ms: None,
            total_samples: 0,
            created_ms,
        })
    }

    /// Adds a CPU sample (`addCPUSample` of the aggregate).
    pub fn add_cpu_sample(&mut self, t_ms: i64, millicores: i64) {
        self.cpu
            .add(millicores as f64 / 1000.0, CPU_SAMPLE_WEIGHT, t_ms);
        if self.last_sample_start_ms.is_none_or(|last| t_ms > last) {
            self.last_sample_start_ms = Some(t_ms);
        }
        if self.first_sample_start_ms.is_none_or(|first| t_ms < first) {
            self.first_sample_start_ms = Some(t_ms);
        }
        self.total_samples += 1;
    }

    fn add_memory_peak(&mut self, t_ms: i64, bytes: i64) {
        self.memory_peaks
            .add(bytes as f64, MEMORY_PEAK_WEIGHT, t_ms);
    }

    fn subtract_memory_peak(&mut self, t_ms: i64, bytes: i64) {
        self.memory_peaks
            .subtract(bytes as f64, MEMORY_PEAK_WEIGHT, t_ms);
    }

    /// Merges another state of the same container name (e.g. another label set of the
    /// same workload, or a restored checkpoint).
    ///
    /// # Errors
    /// When the histogram schemes differ.
    pub fn merge(&mut self, other: &AggregateState) -> Result<()> {
        self.cpu.merge(&other.cpu)?;
        self.memory_peaks.merge(&other.memory_peaks)?;
        self.first_sample_start_ms = match (self.first_sample_start_ms, other.first_sample_start_ms)
        {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_sample_start_ms = match (self.last_sample_start_ms, other.last_sample_start_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.total_samples += other.total_samples;
        Ok(())
    }

    /// Days of history for the confidence multiplier, with `interval_ms` as the day:
    /// `min(lifespan / interval, samples / minutes(interval))`.
    pub fn confidence(&self, interval_ms: i64) -> f64 {
        let lifespan_ns = match (self.first_sample_start_ms, self.last_sample_start_ms) {
            (Some(first), Some(last)) => (i128::from(last) - i128::from(first)) * 1_000_000,
            _ => 0,
        };
        let interval_ns = interval_ms as f64 * 1e6;
        let lifespan = lifespan_ns as f64 / interval_ns;
        let minutes = interval_ms as f64 / 60_000.0;
        let samples = self.total_samples as f64 / minutes;
        lifespan.min(samples)
    }

    /// No CPU sample for a whole memory aggregation window (8 days by default); a state
    /// that never had one expires that long after its creation.
    pub fn is_expired(&self, now_ms: i64, options: &Options) -> bool {
        let window = duration_ms(options.memory_aggregation_interval)
            .saturating_mul(i64::from(options.memory_aggregation_interval_count));
        let since = match self.last_sample_start_ms {
            Some(last) if self.total_samples > 0 => last,
            _ => self.created_ms,
        };
        now_ms.saturating_sub(since) >= window
    }

    /// The checkpoint form (histograms plus sample counts).
    pub fn save(&self) -> AggregateCheckpoint {
        AggregateCheckpoint {
            cpu: self.cpu.save(),
            memory_peaks: self.memory_peaks.save(),
            first_sample_start_ms: self.first_sample_start_ms,
            last_sample_start_ms: self.last_sample_start_ms,
            total_samples: self.total_samples,
        }
    }

    /// Restores a checkpoint into an empty state.
    ///
    /// # Errors
    /// When the checkpoint does not fit the bucket schemes.
    pub fn load(&mut self, checkpoint: &AggregateCheckpoint) -> Result<()> {
        self.cpu.load(&checkpoint.cpu)?;
        self.memory_peaks.load(&checkpoint.memory_peaks)?;
        self.first_sample_start_ms = checkpoint.first_sample_start_ms;
        self.last_sample_start_ms = checkpoint.last_sample_start_ms;
        self.total_samples = checkpoint.total_samples;
        Ok(())
    }
}

/// An [`AggregateState`] in checkpoint form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregateCheckpoint {
    pub cpu: DecayingHistogramCheckpoint,
    pub memory_peaks: DecayingHistogramCheckpoint,
    pub first_sample_start_ms: Option<i64>,
    pub last_sample_start_ms: Option<i64>,
    pub total_samples: u64,
}

/// Why an OOM event did not enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OomError {
    #[error("OOM event will be discarded - it is too old")]
    TooOld,
    #[error("adding OOM sample failed")]
    Rejected,
}

/// One container of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// Start of the latest CPU sample taken in.
    pub last_cpu_sample_ms: Option<i64>,
    /// Largest memory sample of the current interval.
    pub memory_peak: i64,
    /// Largest OOM-derived sample of the current interval.
    pub oom_peak: i64,
    /// End (exclusive) of the current memory aggregation interval.
    pub window_end_ms: Option<i64>,
    /// Start of the latest memory sample taken in.
    pub last_memory_sample_ms: Option<i64>,
}

impl ContainerState {
    /// Adds a CPU sample unless it is negative, a duplicate or out of order.
    pub fn add_cpu_sample(
        &mut self,
        aggregate: &mut AggregateState,
        t_ms: i64,
        millicores: i64,
    ) -> bool {
        if millicores < 0 || self.last_cpu_sample_ms.is_some_and(|last| t_ms <= last) {
            return false;
        }
        aggregate.add_cpu_sample(t_ms, millicores);
        self.last_cpu_sample_ms = Some(t_ms);
        true
    }

    /// Adds a working-set sample: it updates the peak of its aggregation interval, or
    /// opens the next interval.
    pub fn add_memory_sample(
        &mut self,
        aggregate: &mut AggregateState,
        t_ms: i64,
        bytes: i64,
        options: &Options,
    ) -> bool {
        self.add_memory(aggregate, t_ms, bytes, false, options)
    }

    fn add_memory(
        &mut self,
        aggregate: &mut AggregateState,
        t_ms: i64,
        bytes: i64,
        oom: bool,
        options: &Options,
    ) -> bool {
        if bytes < 0 || (!oom && self.last_memory_sample_ms.is_some_and(|last| t_ms < last)) {
            return false;
        }
        self.last_memory_sample_ms = Some(t_ms);
        let window_end = *self.window_end_ms.get_or_insert(t_ms);
        let mut add_new_peak = false;
        let mut peak_time = window_end;
        if t_ms < window_end {
            let old_peak = self.memory_peak.max(self.oom_peak);
            if old_peak != 0 && bytes > old_peak {
                aggregate.subtract_memory_peak(window_end, old_peak);
                add_new_peak = true;
            }
        } else {
            let interval = duration_ms(options.memory_aggregation_interval).max(1);
            let elapsed = t_ms.saturating_sub(window_end);
            let shift = (elapsed - elapsed % interval).saturating_add(interval);
            peak_time = window_end.saturating_add(shift);
            self.window_end_ms = Some(peak_time);
            self.memory_peak = 0;
            self.oom_peak = 0;
            add_new_peak = true;
        }
        if add_new_peak {
            aggregate.add_memory_peak(peak_time, bytes);
            if oom {
                self.oom_peak = bytes;
            } else {
                self.memory_peak = bytes;
            }
        }
        true
    }

    /// Records an OOM kill at `t_ms` of a container that requested `request_bytes`:
    /// `max(used + min bump, used * ratio)` with `used = max(request, this interval's
    /// usage peak)` enters as a memory sample. `max_memory_bytes` (the policy's
    /// maxAllowed) caps both, so OOM bumps cannot run past it (kubernetes/autoscaler
    /// #9521). Returns the sample.
    ///
    /// # Errors
    /// [`OomError::TooOld`] when the event is older than the previous interval.
    pub fn record_oom(
        &mut self,
        aggregate: &mut AggregateState,
        t_ms: i64,
        request_bytes: i64,
        max_memory_bytes: Option<i64>,
        options: &Options,
    ) -> std::result::Result<i64, OomError> {
        let interval = duration_ms(options.memory_aggregation_interval);
        if let Some(window_end) = self.window_end_ms
            && t_ms < window_end.saturating_sub(interval)
        {
            return Err(OomError::TooOld);
        }
        let cap = max_memory_bytes.filter(|m| *m > 0);
        let mut used = request_bytes.max(self.memory_peak);
        if let Some(cap) = cap {
            used = used.min(cap);
        }
        let mut needed = oom_bump(used, options);
        if let Some(cap) = cap {
            needed = needed.min(cap);
        }
        if !self.add_memory(aggregate, t_ms, needed, true, options) {
            return Err(OomError::Rejected);
        }
        Ok(needed)
    }
}

/// `max(used + oom_min_bump_up_bytes, trunc(used * oom_bump_up_ratio))`.
pub fn oom_bump(used_bytes: i64, options: &Options) -> i64 {
    let min_bump = super::estimator::to_amount(options.oom_min_bump_up_bytes);
    used_bytes
        .saturating_add(min_bump)
        .max(super::estimator::scale(
            used_bytes,
            options.oom_bump_up_ratio,
        ))
}

pub(crate) fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: i64 = 1024 * 1024;
    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_700_000_000_000;

    fn state() -> (AggregateState, ContainerState, Options) {
        let options = Options::default();
        (
            AggregateState::new(&options, T0).unwrap(),
            ContainerState::default(),
            options,
        )
    }

    #[test]
    fn cpu_duplicates_and_out_of_order_samples_are_dropped() {
        let (mut agg, mut c, _) = state();
        assert!(c.add_cpu_sample(&mut agg, T0, 500));
        assert!(!c.add_cpu_sample(&mut agg, T0, 500));
        assert!(!c.add_cpu_sample(&mut agg, T0 - 1, 500));
        assert!(!c.add_cpu_sample(&mut agg, T0 + 1, -1));
        assert!(c.add_cpu_sample(&mut agg, T0 + 60_000, 500));
        assert_eq!(agg.total_samples, 2);
        assert_eq!(agg.first_sample_start_ms, Some(T0));
        assert_eq!(agg.last_sample_start_ms, Some(T0 + 60_000));
    }

    #[test]
    fn one_memory_peak_per_interval() {
        let (mut agg, mut c, options) = state();
        c.add_memory_sample(&mut agg, T0, 100 * MIB, &options);
        assert_eq!(c.window_end_ms, Some(T0 + 24 * HOUR));
        c.add_memory_sample(&mut agg, T0 + HOUR, 300 * MIB, &options);
        c.add_memory_sample(&mut agg, T0 + 2 * HOUR, 200 * MIB, &options);
        // One peak of 300 MiB in the first interval: the 100 MiB peak was replaced.
        assert_eq!(
            agg.memory_peaks.percentile(0.0),
            agg.memory_peaks.percentile(1.0)
        );
        let p = agg.memory_peaks.percentile(1.0);
        assert!(p > 300.0 * MIB as f64 && p < 330.0 * MIB as f64, "{p}");
        // 3 days later: the window jumps to the interval that holds the sample.
        c.add_memory_sample(&mut agg, T0 + 72 * HOUR + 5, 50 * MIB, &options);
        assert_eq!(c.window_end_ms, Some(T0 + 96 * HOUR));
        assert_eq!(c.memory_peak, 50 * MIB);
        // An older non-OOM sample is dropped.
        assert!(!c.add_memory_sample(&mut agg, T0 + 72 * HOUR, 1, &options));
    }

    #[test]
    fn oom_bumps_follow_upstream_examples() {
        let (mut agg, mut c, options) = state();
        assert_eq!(
            c.record_oom(&mut agg, T0, 1000 * MIB, None, &options),
            Ok(1200 * MIB)
        );
        let (mut agg, mut c, options) = state();
        assert_eq!(
            c.record_oom(&mut agg, T0, MIB, None, &options),
            Ok(101 * MIB)
        );
        // A usage peak of 3000 MiB in the window and a request of 1000 MiB: 3600 MiB.
        let (mut agg, mut c, options) = state();
        c.add_memory_sample(&mut agg, T0, 3000 * MIB, &options);
        assert_eq!(
            c.record_oom(&mut agg, T0 + HOUR, 1000 * MIB, None, &options),
            Ok(3600 * MIB)
        );
        // A smaller OOM later does not grow it; a later one with a larger request does.
        assert_eq!(
            c.record_oom(&mut agg, T0 + 2 * HOUR, 1000 * MIB, None, &options),
            Ok(3600 * MIB)
        );
        assert_eq!(c.oom_peak, 3600 * MIB);
        // Too old: before the previous interval.
        assert_eq!(
            c.record_oom(&mut agg, T0 - 25 * HOUR, MIB, None, &options),
            Err(OomError::TooOld)
        );
        // maxAllowed caps the bump.
        let (mut agg, mut c, options) = state();
        assert_eq!(
            c.record_oom(&mut agg, T0, 1000 * MIB, Some(1100 * MIB), &options),
            Ok(1100 * MIB)
        );
    }

    #[test]
    fn confidence_counts_days_and_samples() {
        let (mut agg, mut c, _) = state();
        for i in 0..9 {
            c.add_cpu_sample(&mut agg, T0 + i * 120_000, 100);
        }
        assert_eq!(agg.confidence(24 * HOUR), 9.0 / 1440.0);
        let (empty, _, options) = state();
        assert_eq!(empty.confidence(24 * HOUR), 0.0);
        assert!(!empty.is_expired(T0 + 24 * HOUR, &options));
        assert!(empty.is_expired(T0 + 8 * 24 * HOUR, &options));
        assert!(!agg.is_expired(T0 + 8 * 24 * HOUR, &options));
    }
}
