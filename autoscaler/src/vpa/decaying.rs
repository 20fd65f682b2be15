//! The decaying histogram (section 4 of `vpa-algorithm.md`): a sample's weight grows by
//! `2^((t - reference) / half_life)`, so a sample one half-life older counts half as
//! much. The reference is a whole multiple of the half-life counted from Go's zero time
//! (UTC midnights for 24 h) and moves forward when weights would grow too large.
//!
//! Time is `i64` milliseconds since the Unix epoch. Upstream's `time.Time` arithmetic is
//! reproduced where it matters: durations saturate at +-2^63-1 ns, and the initial
//! reference is Go's zero time (year 1), so the first sample always renormalises.

use serde::{Deserialize, Serialize};

use super::histogram::{Histogram, HistogramCheckpoint, HistogramOptions};
use crate::{Error, Result};

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix milliseconds.
pub const GO_ZERO_TIME_MS: i64 = -62_135_596_800_000;

/// Weights are renormalised when a sample is more than this many half-lives past the
/// reference (`maxDecayExponent`).
const MAX_DECAY_EXPONENT: i64 = 100;

/// `b - a` in nanoseconds, saturating like Go's `Time.Sub`.
fn sub_ns(b_ms: i64, a_ms: i64) -> i64 {
    let ns = (i128::from(b_ms) - i128::from(a_ms)) * 1_000_000;
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

/// Go's `Time.Round(d)`: the nearest multiple of `d` since the zero time, halves up.
fn go_round(t_ms: i64, d_ms: i64) -> i64 {
    let since_zero = i128::from(t_ms) - i128::from(GO_ZERO_TIME_MS);
    let d = i128::from(d_ms);
    let r = since_zero.rem_euclid(d);
    let rounded = if r + r < d {
        t_ms as i128 - r
    } else {
        t_ms as i128 + (d - r)
    };
    i64::try_from(rounded).unwrap_or(t_ms)
}

/// Go's `math.Ldexp(1, exp)`: an exact power of two, 0 below the subnormals.
fn pow2(exp: i64) -> f64 {
    if exp > 1023 {
        f64::INFINITY
    } else if exp >= -1022 {
        f64::from_bits(((exp + 1023) as u64) << 52)
    } else if exp >= -1074 {
        f64::from_bits(1u64 << (exp + 1074))
    } else {
        0.0
    }
}

/// Go's `int(math.Floor(x + 0.5))` used by the decaying histogram.
fn round_half_up(x: f64) -> i64 {
    (x + 0.5).floor() as i64
}

/// A histogram whose samples decay exponentially with age.
#[derive(Debug, Clone, PartialEq)]
pub struct DecayingHistogram {
    histogram: Histogram,
    half_life_ms: i64,
    reference_ms: i64,
}

impl DecayingHistogram {
    /// # Errors
    /// When the half-life is not positive.
    pub fn new(options: HistogramOptions, half_life_ms: i64) -> Result<DecayingHistogram> {
        if half_life_ms <= 0 {
            return Err(Error::InvalidHistogramOptions(format!(
                "half-life must be positive, got {half_life_ms} ms"
            )));
        }
        Ok(DecayingHistogram {
            histogram: Histogram::new(options),
            half_life_ms,
            reference_ms: GO_ZERO_TIME_MS,
        })
    }

    pub fn histogram(&self) -> &Histogram {
        &self.histogram
    }

    pub fn reference_ms(&self) -> i64 {
        self.reference_ms
    }

    pub fn half_life_ms(&self) -> i64 {
        self.half_life_ms
    }

    pub fn add(&mut self, value: f64, weight: f64, t_ms: i64) {
        let factor = self.decay_factor(t_ms);
        self.histogram.add(value, weight * factor);
    }

    pub fn subtract(&mut self, value: f64, weight: f64, t_ms: i64) {
        let factor = self.decay_factor(t_ms);
        self.histogram.subtract(value, weight * factor);
    }

    pub fn percentile(&self, p: f64) -> f64 {
        self.histogram.percentile(p)
    }

    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// Adds `other`, first moving the older of the two references to the newer.
    ///
    /// # Errors
    /// When the half-lives or bucket schemes differ.
    pub fn merge(&mut self, other: &DecayingHistogram) -> Result<()> {
        if self.half_life_ms != other.half_life_ms {
            return Err(Error::InvalidHistogramOptions(
                "cannot merge decaying histograms with different half-lives".into(),
            ));
        }
        if self.reference_ms < other.reference_ms {
            self.shift_reference(other.reference_ms);
        } else if other.reference_ms < self.reference_ms {
            let mut aligned = other.clone();
            aligned.shift_reference(self.reference_ms);
            return self.histogram.merge(&aligned.histogram);
        }
        self.histogram.merge(&other.histogram)
    }

    fn decay_factor(&mut self, t_ms: i64) -> f64 {
        let max_allowed = self
            .reference_ms
            .saturating_add(self.half_life_ms.saturating_mul(MAX_DECAY_EXPONENT));
        if t_ms > max_allowed {
            self.shift_reference(t_ms);
        }
        let half_life_ns = self.half_life_ms as f64 * 1e6;
        (sub_ns(t_ms, self.reference_ms) as f64 / half_life_ns).exp2()
    }

    fn shift_reference(&mut self, new_reference_ms: i64) {
        let new_reference_ms = go_round(new_reference_ms, self.half_life_ms);
        let half_life_ns = self.half_life_ms as f64 * 1e6;
        let exponent =
            round_half_up(sub_ns(self.reference_ms, new_reference_ms) as f64 / half_life_ns);
        self.histogram.scale(pow2(exponent));
        self.reference_ms = new_reference_ms;
    }

    /// The checkpoint form, with the reference time.
    pub fn save(&self) -> DecayingHistogramCheckpoint {
        DecayingHistogramCheckpoint {
            reference_ms: self.reference_ms,
            histogram: self.histogram.save(),
        }
    }

    /// Restores weights and the reference time from a checkpoint.
    ///
    /// # Errors
    /// When the checkpoint does not fit the bucket scheme.
    pub fn load(&mut self, checkpoint: &DecayingHistogramCheckpoint) -> Result<()> {
        self.histogram.load(&checkpoint.histogram)?;
        self.reference_ms = checkpoint.reference_ms;
        Ok(())
    }
}

/// A decaying histogram in checkpoint form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecayingHistogramCheckpoint {
    pub reference_ms: i64,
    pub histogram: HistogramCheckpoint,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn go_time_helpers() {
        // UTC midnights are multiples of a day since Go's zero time.
        let t = 1_699_923_600_000; // 2023-11-14T01:00:00Z
        assert_eq!(go_round(t, DAY), 1_699_920_000_000);
        assert_eq!(
            go_round(1_699_963_200_000, DAY),
            1_700_006_400_000,
            "noon rounds up"
        );
        assert_eq!(
            sub_ns(t, GO_ZERO_TIME_MS),
            i64::MAX,
            "Go durations saturate"
        );
        assert_eq!(pow2(-1), 0.5);
        assert_eq!(pow2(-1074), f64::from_bits(1));
        assert_eq!(pow2(-106_751), 0.0);
        assert_eq!(round_half_up(-0.5), 0);
    }

    #[test]
    fn newer_samples_weigh_exponentially_more() {
        let options = HistogramOptions::linear(10.0, 1.0, 1e-15).unwrap();
        let mut h = DecayingHistogram::new(options, HOUR).unwrap();
        let t0 = 1_234_567_890_000;
        h.add(2.0, 1000.0, t0);
        h.add(1.0, 1.0, t0 + 20 * HOUR);
        assert_eq!(h.percentile(0.999), 2.0);
        assert_eq!(h.percentile(1.0), 3.0);
    }

    #[test]
    fn renormalisation_keeps_relative_weights() {
        let options = HistogramOptions::linear(10.0, 1.0, 1e-15).unwrap();
        let mut h = DecayingHistogram::new(options, HOUR).unwrap();
        let t0 = 1_700_000_000_000;
        h.add(1.0, 1.0, t0);
        let first_reference = h.reference_ms();
        // 150 hours later the reference moves; the old sample is 2^150 lighter.
        h.add(5.0, 1.0, t0 + 150 * HOUR);
        assert!(h.reference_ms() > first_reference);
        assert_eq!(h.percentile(0.5), 6.0);
        let mut merged = DecayingHistogram::new(options, HOUR).unwrap();
        merged.add(3.0, 1.0, t0);
        merged.merge(&h).unwrap();
        assert_eq!(merged.reference_ms(), h.reference_ms());
        assert_eq!(merged.percentile(0.3), 6.0);
        assert!(DecayingHistogram::new(options, 0).is_err());
        let mut restored = DecayingHistogram::new(options, HOUR).unwrap();
        restored.load(&h.save()).unwrap();
        assert_eq!(restored.reference_ms(), h.reference_ms());
        assert_eq!(restored.percentile(0.5), 6.0);
    }
}
