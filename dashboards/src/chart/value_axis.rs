//! The y axis: round ticks and labels in the chart's unit.
//!
//! A unit picks a scale by the largest magnitude on the axis (GiB, ms, k, …);
//! ticks fall on 1-2-5 multiples of a power of ten in that scale, and every
//! label uses the same scale and number of decimals.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, KeyPointWeight, Ranged};

use super::Unit;

/// A scale of a unit: values are divided by `factor` and followed by `suffix`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scale {
    factor: f64,
    suffix: &'static str,
}

const fn scale(factor: f64, suffix: &'static str) -> Scale {
    Scale { factor, suffix }
}

const SI_LARGE: [Scale; 6] = [
    scale(1e18, "E"),
    scale(1e15, "P"),
    scale(1e12, "T"),
    scale(1e9, "G"),
    scale(1e6, "M"),
    scale(1e3, "k"),
];
const SI_SMALL: [Scale; 3] = [scale(1e-3, "m"), scale(1e-6, "µ"), scale(1e-9, "n")];
const IEC: [Scale; 6] = [
    scale(1_152_921_504_606_846_976.0, " EiB"),
    scale(1_125_899_906_842_624.0, " PiB"),
    scale(1_099_511_627_776.0, " TiB"),
    scale(1_073_741_824.0, " GiB"),
    scale(1_048_576.0, " MiB"),
    scale(1024.0, " KiB"),
];
const DURATIONS: [Scale; 7] = [
    scale(86_400.0, " d"),
    scale(3_600.0, " h"),
    scale(60.0, " min"),
    scale(1.0, " s"),
    scale(1e-3, " ms"),
    scale(1e-6, " µs"),
    scale(1e-9, " ns"),
];

/// The scale for numbers up to `magnitude` (a non-negative absolute value).
fn scale_for(unit: Unit, magnitude: f64) -> Scale {
    let first_fitting = |scales: &[Scale], fallback: Scale| {
        scales
            .iter()
            .copied()
            .find(|s| magnitude >= s.factor)
            .unwrap_or(fallback)
    };
    match unit {
        Unit::Plain if magnitude >= 1e3 => first_fitting(&SI_LARGE, scale(1.0, "")),
        // Below 0.01 plain decimals get long; switch to milli, micro, nano.
        Unit::Plain if magnitude > 0.0 && magnitude < 1e-2 => {
            first_fitting(&SI_SMALL, scale(1e-9, "n"))
        }
        Unit::Plain => scale(1.0, ""),
        Unit::Bytes => first_fitting(&IEC, scale(1.0, " B")),
        Unit::Seconds if magnitude == 0.0 => scale(1.0, " s"),
        Unit::Seconds => first_fitting(&DURATIONS, scale(1e-9, " ns")),
        Unit::Percent => scale(1.0, "%"),
        Unit::PercentUnit => scale(0.01, "%"),
    }
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let normalized = raw / magnitude;
    let nice = if normalized <= 1.0 {
        1.0
    } else if normalized <= 2.0 {
        2.0
    } else if normalized <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Decimals that show a step of `step` (in scale units) exactly.
fn decimals_for(step: f64) -> usize {
    if !step.is_finite() || step >= 1.0 {
        return 0;
    }
    // Tolerance: log10(0.1) may come out a hair below -1.
    ((-step.log10() - 1e-9).ceil().max(0.0) as usize).min(12)
}

/// Zero reads the same at every scale: `0`, `0 B`, `0 s`, `0%`.
fn zero(unit: Unit) -> &'static str {
    match unit {
        Unit::Plain => "0",
        Unit::Bytes => "0 B",
        Unit::Seconds => "0 s",
        Unit::Percent | Unit::PercentUnit => "0%",
    }
}

fn format_scaled(value: f64, decimals: usize, scale: Scale) -> String {
    let mut text = format!("{:.*}", decimals, value / scale.factor);
    if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') {
        text.remove(0); // "-0.0" is zero
    }
    text.push_str(scale.suffix);
    text
}

/// A value formatted in `unit` with three significant digits, for legends,
/// tooltips and tables: `1.50 GiB`, `250 ms`, `12.5k`, `NaN`, `+Inf`.
pub fn format_value(value: f64, unit: Unit) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if value == 0.0 {
        return zero(unit).to_string();
    }
    let scale = scale_for(unit, value.abs());
    let scaled = (value / scale.factor).abs();
    let decimals = (2.0 - scaled.log10().floor()).clamp(0.0, 12.0) as usize;
    format_scaled(value, decimals, scale)
}

/// The y axis of one chart: its ends, ticks and how labels read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValueAxis {
    pub min: f64,
    pub max: f64,
    pub ticks: Vec<f64>,
    unit: Unit,
    scale: Scale,
    decimals: usize,
}

impl ValueAxis {
    /// Fits an axis around finite data extremes; `fixed_min`/`fixed_max`
    /// pin an end. About `max_ticks` ticks (at least two).
    pub fn fit(
        unit: Unit,
        (data_min, data_max): (f64, f64),
        fixed_min: Option<f64>,
        fixed_max: Option<f64>,
        max_ticks: usize,
    ) -> ValueAxis {
        let fixed_min = fixed_min.filter(|v| v.is_finite());
        let fixed_max = fixed_max.filter(|v| v.is_finite());
        let mut lo = fixed_min.unwrap_or(data_min);
        let mut hi = fixed_max.unwrap_or(data_max);
        if lo > hi {
            std::mem::swap(&mut lo, &mut hi);
        }
        if lo == hi {
            // A flat line sits inside a band around it; pinned ends stay.
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            match (fixed_min.is_some(), fixed_max.is_some()) {
                (true, _) => hi += pad,
                (false, true) => lo -= pad,
                (false, false) if lo == 0.0 => hi = 1.0, // all zeros: 0..1, not -1..1
                (false, false) => {
                    lo -= pad;
                    hi += pad;
                }
            }
        }
        let scale = scale_for(unit, lo.abs().max(hi.abs()));
        let (slo, shi) = (lo / scale.factor, hi / scale.factor);
        let intervals = max_ticks.max(2) as f64 - 1.0;
        // Divide before subtracting so extreme values cannot overflow.
        let step = nice_step(shi / intervals - slo / intervals);
        if !(step.is_finite() && step > 0.0) {
            return ValueAxis {
                min: lo,
                max: hi,
                ticks: vec![lo, hi],
                unit,
                scale,
                decimals: 2,
            };
        }
        let axis_lo = match fixed_min {
            Some(v) => v / scale.factor,
            None => (slo / step).floor() * step,
        };
        let axis_hi = match fixed_max {
            Some(v) => v / scale.factor,
            None => (shi / step).ceil() * step,
        };
        let (min, max) = (axis_lo * scale.factor, axis_hi * scale.factor);
        let (min, max) = if min.is_finite() && max.is_finite() && min < max {
            (min, max)
        } else {
            (lo, hi)
        };
        let first = (axis_lo / step).ceil();
        let last = (axis_hi / step).floor();
        // Counted, not stepped in floats: next to huge values `index + 1.0`
        // can equal `index`.
        let count = (last - first).clamp(0.0, 100.0) as u32;
        let mut ticks = Vec::new();
        for offset in 0..=count {
            let tick = (first + f64::from(offset)) * step * scale.factor;
            if tick.is_finite() && ticks.last().is_none_or(|&last| tick > last) {
                ticks.push(tick);
            }
        }
        ValueAxis {
            min,
            max,
            ticks,
            unit,
            scale,
            decimals: decimals_for(step),
        }
    }

    pub fn label(&self, value: f64) -> String {
        if value == 0.0 {
            return zero(self.unit).to_string();
        }
        format_scaled(value, self.decimals, self.scale)
    }
}

impl Ranged for ValueAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, (from, to): (i32, i32)) -> i32 {
        let span = self.max - self.min;
        let fraction = if span > 0.0 {
            ((value.clamp(self.min, self.max) - self.min) / span).clamp(0.0, 1.0)
        } else {
            0.5
        };
        from + (f64::from(to - from) * fraction).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        match hint.weight() {
            // Only labelled grid lines; no light lines in between.
            KeyPointWeight::Any => Vec::new(),
            KeyPointWeight::Bold => thin_out(&self.ticks, hint.max_num_points()),
        }
    }

    fn range(&self) -> Range<f64> {
        self.min..self.max
    }
}

/// Every n-th element so at most `max` remain.
pub(crate) fn thin_out<T: Copy>(items: &[T], max: usize) -> Vec<T> {
    if max == 0 {
        return Vec::new();
    }
    let every = items.len().div_ceil(max).max(1);
    items.iter().step_by(every).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(axis: &ValueAxis) -> Vec<String> {
        axis.ticks.iter().map(|&t| axis.label(t)).collect()
    }

    #[test]
    fn plain_ticks_are_round_and_cover_the_data() {
        let axis = ValueAxis::fit(Unit::Plain, (3.0, 97.0), None, None, 6);
        assert_eq!((axis.min, axis.max), (0.0, 100.0));
        assert_eq!(labels(&axis), ["0", "20", "40", "60", "80", "100"]);
    }

    #[test]
    fn plain_uses_si_prefixes() {
        let axis = ValueAxis::fit(Unit::Plain, (0.0, 2_500_000.0), None, None, 6);
        assert_eq!(labels(&axis), ["0", "0.5M", "1.0M", "1.5M", "2.0M", "2.5M"]);
        let small = ValueAxis::fit(Unit::Plain, (0.0, 0.004), None, None, 5);
        assert_eq!(labels(&small), ["0", "1m", "2m", "3m", "4m"]);
        let fractions = ValueAxis::fit(Unit::Plain, (0.0, 0.8), None, None, 5);
        assert_eq!(labels(&fractions), ["0", "0.2", "0.4", "0.6", "0.8"]);
    }

    #[test]
    fn bytes_use_binary_prefixes() {
        let gib = 1024.0 * 1024.0 * 1024.0;
        let axis = ValueAxis::fit(Unit::Bytes, (0.0, 3.5 * gib), Some(0.0), None, 5);
        assert_eq!(labels(&axis), ["0 B", "1 GiB", "2 GiB", "3 GiB", "4 GiB"]);
        let mib = ValueAxis::fit(Unit::Bytes, (0.0, 300.0 * 1024.0 * 1024.0), None, None, 4);
        assert_eq!(labels(&mib), ["0 B", "100 MiB", "200 MiB", "300 MiB"]);
        let b = ValueAxis::fit(Unit::Bytes, (0.0, 800.0), None, None, 5);
        assert_eq!(b.label(200.0), "200 B");
    }

    #[test]
    fn seconds_pick_a_duration_scale() {
        let ms = ValueAxis::fit(Unit::Seconds, (0.0, 0.25), None, None, 6);
        assert_eq!(
            labels(&ms),
            ["0 s", "50 ms", "100 ms", "150 ms", "200 ms", "250 ms"]
        );
        let hours = ValueAxis::fit(Unit::Seconds, (0.0, 4.0 * 3600.0), None, None, 5);
        assert_eq!(labels(&hours), ["0 s", "1 h", "2 h", "3 h", "4 h"]);
    }

    #[test]
    fn percent_units() {
        let percent = ValueAxis::fit(Unit::Percent, (0.0, 100.0), None, None, 6);
        assert_eq!(labels(&percent)[5], "100%");
        let ratio = ValueAxis::fit(Unit::PercentUnit, (0.0, 0.5), None, None, 6);
        assert_eq!(labels(&ratio), ["0%", "10%", "20%", "30%", "40%", "50%"]);
    }

    #[test]
    fn negative_values_and_negative_zero() {
        let axis = ValueAxis::fit(Unit::Plain, (-0.3, 0.3), None, None, 7);
        assert_eq!(
            labels(&axis),
            ["-0.3", "-0.2", "-0.1", "0", "0.1", "0.2", "0.3"]
        );
    }

    #[test]
    fn flat_data_gets_a_band_around_it() {
        let axis = ValueAxis::fit(Unit::Plain, (5.0, 5.0), None, None, 5);
        assert!(axis.min < 5.0 && axis.max > 5.0, "{axis:?}");
        let zeros = ValueAxis::fit(Unit::Plain, (0.0, 0.0), None, None, 5);
        assert_eq!((zeros.min, zeros.max), (0.0, 1.0));
        let pinned = ValueAxis::fit(Unit::Plain, (0.0, 0.0), Some(0.0), None, 5);
        assert_eq!((pinned.min, pinned.max), (0.0, 1.0));
    }

    #[test]
    fn fixed_ends_are_kept() {
        let axis = ValueAxis::fit(Unit::Plain, (3.0, 7.0), Some(0.0), Some(10.0), 6);
        assert_eq!((axis.min, axis.max), (0.0, 10.0));
        assert_eq!(labels(&axis), ["0", "2", "4", "6", "8", "10"]);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let cases = [
            (-f64::MAX, f64::MAX),
            (0.0, f64::MAX),
            (f64::MIN_POSITIVE, 1e-300),
            (1e16, 1e16 + 2.0),
            (1e300, 1e300 * (1.0 + f64::EPSILON)),
        ];
        for (lo, hi) in cases {
            let axis = ValueAxis::fit(Unit::Plain, (lo, hi), None, None, 6);
            assert!(axis.min.is_finite() && axis.max.is_finite(), "{axis:?}");
            assert!(axis.min < axis.max, "{axis:?}");
            assert!(
                !axis.ticks.is_empty() && axis.ticks.len() <= 100,
                "{axis:?}"
            );
            for &tick in &axis.ticks {
                assert!(!axis.label(tick).is_empty());
            }
        }
    }

    #[test]
    fn map_clamps_into_the_pixel_range() {
        let axis = ValueAxis::fit(Unit::Plain, (0.0, 10.0), None, None, 6);
        assert_eq!(axis.map(&0.0, (300, 0)), 300);
        assert_eq!(axis.map(&10.0, (300, 0)), 0);
        assert_eq!(axis.map(&5.0, (300, 0)), 150);
        assert_eq!(axis.map(&1e9, (300, 0)), 0);
    }

    #[test]
    fn format_value_keeps_three_significant_digits() {
        let gib = 1024.0 * 1024.0 * 1024.0;
        assert_eq!(format_value(1.5 * gib, Unit::Bytes), "1.50 GiB");
        assert_eq!(format_value(0.25, Unit::Seconds), "250 ms");
        assert_eq!(format_value(12_500.0, Unit::Plain), "12.5k");
        assert_eq!(format_value(0.5, Unit::Plain), "0.500");
        assert_eq!(format_value(0.123, Unit::PercentUnit), "12.3%");
        assert_eq!(format_value(0.0, Unit::Plain), "0");
        assert_eq!(format_value(f64::NAN, Unit::Plain), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY, Unit::Bytes), "-Inf");
    }

    #[test]
    fn thin_out_keeps_at_most_max() {
        let items: Vec<u32> = (0..10).collect();
        assert_eq!(thin_out(&items, 5), [0, 2, 4, 6, 8]);
        assert_eq!(thin_out(&items, 20).len(), 10);
        assert!(thin_out(&items, 0).is_empty());
    }
}
