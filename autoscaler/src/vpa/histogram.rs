//! VPA's histograms (section 3 of `vpa-algorithm.md`): linear or exponential bucket
//! schemes, weighted samples, percentiles that are always bucket ends, and the
//! checkpoint form that survives restarts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The largest stored bucket weight in a checkpoint (`MaxCheckpointWeight`).
pub const MAX_CHECKPOINT_WEIGHT: u32 = 10_000;

/// How values map to buckets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum HistogramOptions {
    /// Buckets of equal size: bucket `n` starts at `n * bucket_size`.
    Linear {
        num_buckets: usize,
        bucket_size: f64,
        epsilon: f64,
    },
    /// Bucket 0 is `[0, first_bucket_size)`; each next bucket is `ratio` times wider.
    Exponential {
        num_buckets: usize,
        first_bucket_size: f64,
        ratio: f64,
        epsilon: f64,
        /// `ln(ratio)`, computed once: finding a bucket is on the hot path of every
        /// sample, and the cached value gives the same quotient.
        ln_ratio: f64,
    },
}

/// `ln(x) / ln(base)`, the way upstream computes logarithms.
fn log(base: f64, x: f64) -> f64 {
    x.ln() / base.ln()
}

/// Go's `int(x)` for a non-negative bucket index: truncation, with NaN and negatives
/// mapped to 0 instead of undefined behaviour.
fn truncate_index(x: f64) -> usize {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        x as usize
    }
}

impl HistogramOptions {
    /// `NewLinearHistogramOptions`: `ceil(max / size) + 1` buckets.
    ///
    /// # Errors
    /// When a parameter is not positive.
    pub fn linear(max_value: f64, bucket_size: f64, epsilon: f64) -> Result<HistogramOptions> {
        if !(max_value > 0.0 && bucket_size > 0.0 && epsilon > 0.0) {
            return Err(Error::InvalidHistogramOptions(format!(
                "linear options need positive max value, bucket size and epsilon, got {max_value}, {bucket_size}, {epsilon}"
            )));
        }
        Ok(HistogramOptions::Linear {
            num_buckets: truncate_index((max_value / bucket_size).ceil()) + 1,
            bucket_size,
            epsilon,
        })
    }

    /// `NewExponentialHistogramOptions`:
    /// `ceil(log_ratio(max * (ratio - 1) / first + 1)) + 1` buckets.
    ///
    /// # Errors
    /// When a parameter is not positive or `ratio <= 1`.
    pub fn exponential(
        max_value: f64,
        first_bucket_size: f64,
        ratio: f64,
        epsilon: f64,
    ) -> Result<HistogramOptions> {
        if !(max_value > 0.0 && first_bucket_size > 0.0 && ratio > 1.0 && epsilon > 0.0) {
            return Err(Error::InvalidHistogramOptions(format!(
                "exponential options need positive max value, first bucket size and epsilon and a ratio above 1, got {max_value}, {first_bucket_size}, {ratio}, {epsilon}"
            )));
        }
        Ok(Self::exponential_unchecked(
            max_value,
            first_bucket_size,
            ratio,
            epsilon,
        ))
    }

    fn exponential_unchecked(
        max_value: f64,
        first_bucket_size: f64,
        ratio: f64,
        epsilon: f64,
    ) -> HistogramOptions {
        let n = log(ratio, max_value * (ratio - 1.0) / first_bucket_size + 1.0).ceil();
        HistogramOptions::Exponential {
            num_buckets: truncate_index(n) + 1,
            first_bucket_size,
            ratio,
            epsilon,
            ln_ratio: ratio.ln(),
        }
    }

    /// VPA's CPU scheme: cores, first bucket 0.01, 5 % growth, up to 1000 cores (176 buckets).
    pub fn cpu() -> HistogramOptions {
        Self::exponential_unchecked(1000.0, 0.01, 1.05, 0.0001)
    }

    /// VPA's memory scheme: bytes, first bucket 1e7, 5 % growth, up to 1e12 (176 buckets).
    pub fn memory() -> HistogramOptions {
        Self::exponential_unchecked(1e12, 1e7, 1.05, 0.0001)
    }

    pub fn num_buckets(&self) -> usize {
        match *self {
            HistogramOptions::Linear { num_buckets, .. }
            | HistogramOptions::Exponential { num_buckets, .. } => num_buckets,
        }
    }

    pub fn epsilon(&self) -> f64 {
        match *self {
            HistogramOptions::Linear { epsilon, .. }
            | HistogramOptions::Exponential { epsilon, .. } => epsilon,
        }
    }

    /// The bucket holding `value`, clamped to `[0, num_buckets - 1]`.
    pub fn find_bucket(&self, value: f64) -> usize {
        let bucket = match *self {
            HistogramOptions::Linear { bucket_size, .. } => truncate_index(value / bucket_size),
            HistogramOptions::Exponential {
                first_bucket_size,
                ratio,
                ln_ratio,
                ..
            } => {
                if value < first_bucket_size {
                    0
                } else {
                    // log(ratio, x) as upstream computes it, with ln(ratio) cached.
                    truncate_index(
                        (value * (ratio - 1.0) / first_bucket_size + 1.0).ln() / ln_ratio,
                    )
                }
            }
        };
        bucket.min(self.num_buckets() - 1)
    }

    /// Where bucket `bucket` starts; the last bucket has no end.
    pub fn bucket_start(&self, bucket: usize) -> f64 {
        match *self {
            HistogramOptions::Linear { bucket_size, .. } => bucket as f64 * bucket_size,
            HistogramOptions::Exponential {
                first_bucket_size,
                ratio,
                ..
            } => {
                if bucket == 0 {
                    0.0
                } else {
                    let exponent = i32::try_from(bucket).unwrap_or(i32::MAX);
                    first_bucket_size * (ratio.powf(f64::from(exponent)) - 1.0) / (ratio - 1.0)
                }
            }
        }
    }
}

/// A weighted histogram (upstream `histogram`).
///
/// Only the buckets from the first to the last ever given weight are stored (the
/// others weigh 0): usage rarely spans more than a few dozen of the 176 buckets,
/// and a fleet's models hold six histograms per workload, so a dense array would
/// be most of a model's memory.
#[derive(Debug, Clone)]
pub struct Histogram {
    options: HistogramOptions,
    /// The first bucket stored.
    start: usize,
    /// Weights of buckets `start..start + weights.len()`.
    weights: Vec<f64>,
    total: f64,
    /// First bucket with weight >= epsilon (`num_buckets - 1` when empty).
    min_bucket: usize,
    /// Last bucket with weight >= epsilon (0 when empty).
    max_bucket: usize,
}

/// Equal when every bucket weighs the same, however much of them is stored.
impl PartialEq for Histogram {
    fn eq(&self, other: &Histogram) -> bool {
        self.options == other.options
            && self.total == other.total
            && self.min_bucket == other.min_bucket
            && self.max_bucket == other.max_bucket
            && (0..self.options.num_buckets()).all(|b| self.weight(b) == other.weight(b))
    }
}

impl Histogram {
    pub fn new(options: HistogramOptions) -> Histogram {
        let n = options.num_buckets();
        Histogram {
            options,
            start: 0,
            weights: Vec::new(),
            total: 0.0,
            min_bucket: n - 1,
            max_bucket: 0,
        }
    }

    pub fn options(&self) -> &HistogramOptions {
        &self.options
    }

    pub fn total_weight(&self) -> f64 {
        self.total
    }

    pub fn bucket_weight(&self, bucket: usize) -> f64 {
        self.weight(bucket)
    }

    fn weight(&self, bucket: usize) -> f64 {
        bucket
            .checked_sub(self.start)
            .and_then(|i| self.weights.get(i))
            .copied()
            .unwrap_or(0.0)
    }

    /// The weight of `bucket` (< `num_buckets`), storing the buckets up to it.
    fn weight_mut(&mut self, bucket: usize) -> &mut f64 {
        if self.weights.is_empty() {
            self.start = bucket;
        } else if bucket < self.start {
            let mut grown = Vec::with_capacity(self.start + self.weights.len() - bucket);
            grown.resize(self.start - bucket, 0.0);
            grown.extend_from_slice(&self.weights);
            self.weights = grown;
            self.start = bucket;
        }
        let i = bucket - self.start;
        if i >= self.weights.len() {
            self.weights.reserve_exact(i + 1 - self.weights.len());
            self.weights.resize(i + 1, 0.0);
        }
        &mut self.weights[i]
    }

    /// Adds `weight` at `value`. Negative or NaN weights are ignored (upstream panics).
    pub fn add(&mut self, value: f64, weight: f64) {
        if weight.is_nan() || weight < 0.0 {
            return;
        }
        let bucket = self.options.find_bucket(value);
        let w = self.weight_mut(bucket);
        *w += weight;
        let w = *w;
        self.total += weight;
        let epsilon = self.options.epsilon();
        if bucket < self.min_bucket && w >= epsilon {
            self.min_bucket = bucket;
        }
        if bucket > self.max_bucket && w >= epsilon {
            self.max_bucket = bucket;
        }
    }

    /// Removes `weight` at `value`; results below epsilon become exactly 0.
    pub fn subtract(&mut self, value: f64, weight: f64) {
        if weight.is_nan() || weight < 0.0 {
            return;
        }
        let epsilon = self.options.epsilon();
        let bucket = self.options.find_bucket(value);
        let w = self.weight_mut(bucket);
        *w = safe_subtract(*w, weight, epsilon);
        self.total = safe_subtract(self.total, weight, epsilon);
        self.update_min_and_max_bucket();
    }

    /// Adds another histogram with the same options.
    ///
    /// # Errors
    /// When the options differ.
    pub fn merge(&mut self, other: &Histogram) -> Result<()> {
        if self.options != other.options {
            return Err(Error::InvalidHistogramOptions(
                "cannot merge histograms with different options".into(),
            ));
        }
        if other.min_bucket <= other.max_bucket {
            for bucket in other.min_bucket..=other.max_bucket {
                *self.weight_mut(bucket) += other.weight(bucket);
            }
        }
        self.total += other.total;
        self.min_bucket = self.min_bucket.min(other.min_bucket);
        self.max_bucket = self.max_bucket.max(other.max_bucket);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.weight(self.min_bucket) < self.options.epsilon()
    }

    /// The end of the first bucket where the cumulative weight reaches `p * total`
    /// (the start of the last bucket if that is where it ends); 0 when empty.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let threshold = p * self.total;
        let mut partial = 0.0;
        let mut bucket = self.min_bucket;
        while bucket < self.max_bucket {
            partial += self.weight(bucket);
            if partial >= threshold {
                break;
            }
            bucket += 1;
        }
        if bucket < self.options.num_buckets() - 1 {
            self.options.bucket_start(bucket + 1)
        } else {
            self.options.bucket_start(bucket)
        }
    }

    /// Multiplies every weight from the min to the max bucket by `factor` (>= 0), as
    /// upstream does, and re-tightens min/max.
    pub(crate) fn scale(&mut self, factor: f64) {
        if factor.is_nan() || factor < 0.0 {
            return;
        }
        if self.min_bucket <= self.max_bucket {
            let start = self.start;
            for (i, w) in self.weights.iter_mut().enumerate() {
                if (self.min_bucket..=self.max_bucket).contains(&(start + i)) {
                    *w *= factor;
                }
            }
        }
        self.total *= factor;
        self.update_min_and_max_bucket();
    }

    fn update_min_and_max_bucket(&mut self) {
        let epsilon = self.options.epsilon();
        let last = self.options.num_buckets() - 1;
        while self.weight(self.min_bucket) < epsilon && self.min_bucket < last {
            self.min_bucket += 1;
        }
        while self.weight(self.max_bucket) < epsilon && self.max_bucket > 0 {
            self.max_bucket -= 1;
        }
    }

    /// The checkpoint form: weights scaled so the largest is 10000, rounded half up,
    /// zeros dropped, plus the total weight.
    pub fn save(&self) -> HistogramCheckpoint {
        let mut checkpoint = HistogramCheckpoint {
            total_weight: self.total,
            bucket_weights: BTreeMap::new(),
        };
        if self.min_bucket > self.max_bucket {
            return checkpoint;
        }
        let range = self.min_bucket..=self.max_bucket;
        let max = range.clone().fold(0.0f64, |m, b| m.max(self.weight(b)));
        let ratio = f64::from(MAX_CHECKPOINT_WEIGHT) / max;
        for bucket in range {
            let stored = (self.weight(bucket) * ratio + 0.5).floor();
            if stored > 0.0 {
                checkpoint.bucket_weights.insert(bucket, stored as u32);
            }
        }
        checkpoint
    }

    /// Adds a checkpoint's weights: `stored * total / sum(stored)` per bucket.
    ///
    /// # Errors
    /// A negative total or a bucket outside the scheme.
    pub fn load(&mut self, checkpoint: &HistogramCheckpoint) -> Result<()> {
        if checkpoint.total_weight.is_nan() || checkpoint.total_weight < 0.0 {
            return Err(Error::InvalidCheckpoint(format!(
                "negative total weight {}",
                checkpoint.total_weight
            )));
        }
        let mut sum: u64 = 0;
        for (bucket, weight) in &checkpoint.bucket_weights {
            if *bucket >= self.options.num_buckets() {
                return Err(Error::InvalidCheckpoint(format!(
                    "bucket {bucket} outside the {} buckets of the scheme",
                    self.options.num_buckets()
                )));
            }
            sum += u64::from(*weight);
        }
        if sum == 0 {
            return Ok(());
        }
        let ratio = checkpoint.total_weight / sum as f64;
        for (bucket, weight) in &checkpoint.bucket_weights {
            self.min_bucket = self.min_bucket.min(*bucket);
            self.max_bucket = self.max_bucket.max(*bucket);
            *self.weight_mut(*bucket) += f64::from(*weight) * ratio;
        }
        self.total += checkpoint.total_weight;
        // Re-tighten so near-zero buckets do not count (kubernetes/autoscaler #7726).
        self.update_min_and_max_bucket();
        Ok(())
    }
}

fn safe_subtract(value: f64, sub: f64, epsilon: f64) -> f64 {
    let v = value - sub;
    if v < epsilon { 0.0 } else { v }
}

/// A histogram as stored in a `VerticalPodAutoscalerCheckpoint` (`totalWeight`,
/// `bucketWeights`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistogramCheckpoint {
    pub total_weight: f64,
    pub bucket_weights: BTreeMap<usize, u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_boundaries_are_exact() {
        // FindBucket(100) must be 2: ln(2.25)/ln(1.5) has to come out as exactly 2.0.
        let o = HistogramOptions::exponential(500.0, 40.0, 1.5, 0.001).unwrap();
        assert_eq!(log(1.5, 2.25), 2.0);
        assert_eq!(o.num_buckets(), 6);
        assert_eq!(o.find_bucket(100.0), 2);
        assert_eq!(o.find_bucket(-1.0), 0);
        assert_eq!(o.find_bucket(f64::NAN), 0);
        assert_eq!(o.find_bucket(f64::INFINITY), 5);
        assert_eq!(HistogramOptions::cpu().num_buckets(), 176);
        assert_eq!(HistogramOptions::memory().num_buckets(), 176);
        assert!(HistogramOptions::exponential(1.0, 1.0, 1.0, 1.0).is_err());
        assert!(HistogramOptions::linear(1.0, 0.0, 1.0).is_err());
    }

    #[test]
    fn constant_half_core_reads_back_as_the_end_of_bucket_25() {
        let mut h = Histogram::new(HistogramOptions::cpu());
        for _ in 0..100 {
            h.add(0.5, 0.1);
        }
        assert_eq!(h.percentile(0.9), 0.5111345375888712);
        assert_eq!(h.percentile(0.0), 0.5111345375888712);
    }

    #[test]
    fn merge_and_checkpoint_round_trip() {
        let options = HistogramOptions::linear(10.0, 1.0, 1e-15).unwrap();
        let mut a = Histogram::new(options);
        a.add(1.0, 1.0);
        let mut b = Histogram::new(options);
        b.add(5.0, 3.0);
        a.merge(&b).unwrap();
        assert_eq!(a.total_weight(), 4.0);
        assert_eq!(a.percentile(0.5), 6.0);
        let mut restored = Histogram::new(options);
        restored.load(&a.save()).unwrap();
        assert_eq!(restored.percentile(0.5), 6.0);
        assert_eq!(restored.percentile(0.2), 2.0);
        assert!(a.merge(&Histogram::new(HistogramOptions::cpu())).is_err());
        let bad = HistogramCheckpoint {
            total_weight: 1.0,
            bucket_weights: [(99, 1)].into(),
        };
        assert!(restored.load(&bad).is_err());
    }

    #[test]
    fn only_the_buckets_used_are_stored() {
        let mut h = Histogram::new(HistogramOptions::cpu());
        assert!(h.weights.is_empty());
        h.add(0.5, 1.0);
        h.add(0.505, 1.0);
        assert_eq!(h.weights.len(), 1);
        h.add(0.05, 1.0);
        h.add(2.0, 1.0);
        let (low, high) = (h.options.find_bucket(0.05), h.options.find_bucket(2.0));
        assert_eq!((h.start, h.weights.len()), (low, high - low + 1));
        assert_eq!(h.bucket_weight(low), 1.0);
        assert_eq!(h.bucket_weight(high + 1), 0.0);
        assert_eq!(h.bucket_weight(h.options.find_bucket(0.5)), 2.0);
        // Equality is by weights, not by what is stored.
        let mut a = Histogram::new(HistogramOptions::cpu());
        a.add(1.0, 1.0);
        let mut b = a.clone();
        b.add(5.0, 1.0);
        b.subtract(5.0, 1.0);
        b.total = a.total;
        assert_ne!(a.weights.len(), b.weights.len());
        assert_eq!(a, b);
    }

    #[test]
    fn percentile_above_one_stops_at_the_max_bucket() {
        let options = HistogramOptions::linear(10.0, 1.0, 1e-15).unwrap();
        let mut h = Histogram::new(options);
        h.add(2.0, 1.0);
        h.add(3.0, 1.0);
        assert_eq!(h.percentile(1.5), 4.0);
        let mut last = Histogram::new(options);
        last.add(100.0, 1.0);
        assert_eq!(
            last.percentile(0.5),
            10.0,
            "the last bucket reports its start"
        );
    }
}
