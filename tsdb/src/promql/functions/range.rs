//! Range functions about change: `rate`, `increase`, `delta` (with
//! Prometheus's extrapolation), `irate`, `idelta`, `deriv`,
//! `predict_linear`, `resets`, `changes` and
//! `double_exponential_smoothing`.

use super::super::aggregate::kahan_sum_inc;
use super::super::error::{Error, Result};
use super::super::eval::{RangeArg, interpolate};
use super::super::parse::Extension;
use super::{RangeFn, Window};
use crate::promql::Point;

pub(super) fn function(name: &str) -> Option<RangeFn> {
    Some(match name {
        "rate" => |w| Ok(rate(w, true, true)),
        "increase" => |w| Ok(rate(w, true, false)),
        "delta" => |w| Ok(rate(w, false, false)),
        "irate" => |w| Ok(instant_value(w, true)),
        "idelta" => |w| Ok(instant_value(w, false)),
        "deriv" => |w| Ok(deriv(w.points)),
        "predict_linear" => |w| Ok(predict_linear(w)),
        "resets" => |w| Ok(anchored_points(w).map(|points| resets(points, w.start_timestamps))),
        "changes" => |w| Ok(anchored_points(w).map(changes)),
        "double_exponential_smoothing" => |w| Ok(double_exponential_smoothing(w)),
        _ => return None,
    })
}

fn rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    match w.extension {
        None => extrapolated_rate(w, is_counter, is_rate),
        Some(extension) => extended_rate(w, extension, is_counter, is_rate),
    }
}

/// The samples `resets` and `changes` count over: for `anchored`, from the
/// last sample at or before the window start; nothing when no sample is
/// inside the window.
fn anchored_points<'a>(w: &Window<'a>) -> Option<&'a [Point]> {
    let points = w.points;
    if w.extension.is_none() {
        return Some(points);
    }
    let last = points.last()?;
    if last.t <= w.range_start {
        return None;
    }
    let first = points[..points.len() - 1]
        .partition_point(|p| p.t <= w.range_start)
        .saturating_sub(1);
    Some(&points[first..])
}

/// `rate`, `increase` and `delta` over an `anchored` or `smoothed` window:
/// the difference between the values at the window's bounds (the nearest
/// samples, or for `smoothed` interpolated between the samples around each
/// bound), corrected for counter resets, without extrapolation.
fn extended_rate(
    w: &Window<'_>,
    extension: Extension,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let f = w.points;
    let smoothed = extension == Extension::Smoothed;
    let mut last = f.len().checked_sub(1)?;
    let mut first = f[..last]
        .partition_point(|p| p.t <= w.range_start)
        .saturating_sub(1);
    if smoothed {
        last = f[..last].partition_point(|p| p.t < w.range_end);
    }
    if f[last].t <= w.range_start {
        return None;
    }
    // With data only after the window there is nothing to interpolate from.
    if smoothed && f[first].t > w.range_end {
        return None;
    }
    let left = if smoothed && f[first].t < w.range_start && first + 1 < f.len() {
        interpolate(f[first], f[first + 1], w.range_start, is_counter)
    } else {
        f[first].v
    };
    let right = if smoothed && last > 0 && f[last].t > w.range_end {
        interpolate(f[last - 1], f[last], w.range_end, is_counter)
    } else {
        f[last].v
    };
    let mut result = right - left;
    if is_counter {
        // Only samples strictly inside the window: the bounds already
        // handled resets there.
        if f[first].t <= w.range_start {
            first += 1;
        }
        let inner_end = if f[last].t >= w.range_end {
            last
        } else {
            last + 1
        };
        let inner = if first < inner_end {
            &f[first..inner_end]
        } else {
            &[][..]
        };
        let mut previous = left;
        for p in inner {
            if p.v < previous {
                result += previous;
            }
            previous = p.v;
        }
        if right < previous {
            result += previous;
        }
    }
    if is_rate {
        result /= w.range_ms as f64 / 1000.0;
    }
    Some(result)
}

/// The start timestamp of sample `i` when it can be used: known, and before
/// the sample (a start at the sample's own time covers no time, one after it
/// is invalid). Missing start timestamps count as unknown.
fn start_timestamp(points: &[Point], start_timestamps: &[i64], i: usize) -> Option<i64> {
    let st = *start_timestamps.get(i)?;
    (st != 0 && st < points.get(i)?.t).then_some(st)
}

/// Whether the start timestamps say the counter restarted between samples
/// `i - 1` and `i` (Prometheus's `isStartTimestampReset`): it did when the
/// sample started after the previous one was taken. A start exactly at the
/// previous sample's time is a delta sample (a reset) when the previous
/// sample has a start of its own, and a cumulative series of unknown start
/// (OpenTelemetry) otherwise.
fn is_start_timestamp_reset(points: &[Point], start_timestamps: &[i64], i: usize) -> bool {
    let (Some(st), Some(previous)) = (
        start_timestamp(points, start_timestamps, i),
        i.checked_sub(1).and_then(|j| points.get(j)),
    ) else {
        return false;
    };
    match st.cmp(&previous.t) {
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => start_timestamp(points, start_timestamps, i - 1).is_some(),
    }
}

/// Whether a sample of the window starts before the previous sample was
/// taken, other than by sharing its start (a cumulative series): start
/// timestamps that contradict each other, which `rate` warns about.
pub(super) fn start_timestamps_overlap(points: &[Point], start_timestamps: &[i64]) -> bool {
    start_timestamps.len() == points.len()
        && (1..points.len()).any(|i| {
            let st = start_timestamps[i];
            st != 0 && st < points[i - 1].t && st != start_timestamps[i - 1]
        })
}

/// The increase (or rate) over the window, extrapolated towards the window
/// edges as Prometheus does: all the way when the first/last sample is
/// within 110% of the average sample interval from the edge, otherwise by
/// half an interval; counters are never extrapolated below zero. A counter
/// whose first sample has a start timestamp inside the window is not
/// extrapolated to the left: it was zero at its start.
fn extrapolated_rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    let points = w.points;
    let sts = w.start_timestamps;
    let zero_at = if is_counter {
        start_timestamp(points, sts, 0).filter(|&st| st > w.range_start)
    } else {
        None
    };
    let first = *points.first()?;
    let last = points[points.len() - 1];
    if points.len() < 2 && zero_at.is_none() {
        return None;
    }
    let mut result = last.v - first.v;
    if is_counter && sts.is_empty() {
        if !w.without_value_resets {
            for pair in points.windows(2) {
                if pair[1].v < pair[0].v {
                    result += pair[0].v;
                }
            }
        }
    } else if is_counter {
        for (i, pair) in points.windows(2).enumerate() {
            if pair[1].v < pair[0].v || is_start_timestamp_reset(points, sts, i + 1) {
                result += pair[0].v;
            }
        }
    }
    let mut duration_to_end = (w.range_end as f64 - last.t as f64) / 1000.0;
    if let Some(zero_at) = zero_at {
        // The increase from zero at the start to the last sample, and no
        // extrapolation before the start; the average interval (for the
        // right edge) is that of the samples.
        result += first.v;
        let sampled_interval = (last.t - zero_at) as f64 / 1000.0;
        if points.len() < 2 {
            duration_to_end = 0.0;
        } else {
            let average = (last.t - first.t) as f64 / 1000.0 / (points.len() - 1) as f64;
            if duration_to_end >= average * 1.1 {
                duration_to_end = average / 2.0;
            }
        }
        let mut factor = (sampled_interval + duration_to_end) / sampled_interval;
        if is_rate {
            factor /= w.range_ms as f64 / 1000.0;
        }
        return Some(result * factor);
    }
    let mut duration_to_start = (first.t as f64 - w.range_start as f64) / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let average_between_samples = sampled_interval / (points.len() - 1) as f64;
    let threshold = average_between_samples * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = average_between_samples / 2.0;
    }
    if is_counter {
        // Extrapolating to before the counter was zero makes no sense.
        let mut duration_to_zero = duration_to_start;
        if result > 0.0 && first.v >= 0.0 {
            duration_to_zero = sampled_interval * (first.v / result);
        }
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = average_between_samples / 2.0;
    }
    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= w.range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate`/`idelta`: the last two samples of the window.
fn instant_value(w: &Window<'_>, is_rate: bool) -> Option<f64> {
    let points = w.points;
    if points.len() < 2 {
        return None;
    }
    let previous = points[points.len() - 2];
    let last = points[points.len() - 1];
    let interval = last.t - previous.t;
    if interval == 0 {
        return None;
    }
    // For a counter reset the new value is the increase (a NaN is not a
    // reset).
    let reset = last.v < previous.v
        || is_start_timestamp_reset(points, w.start_timestamps, points.len() - 1);
    let mut result = if is_rate && reset {
        last.v
    } else {
        last.v - previous.v
    };
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares fit of the samples: the slope per second and the value at
/// `intercept_time`.
fn linear_regression(points: &[Point], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = points[0].v;
    let mut const_y = true;
    for (i, p) in points.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t as f64 - intercept_time as f64) / 1e3;
        (sum_x, c_x) = kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_sum_inc(p.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_sum_inc(x * p.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn deriv(points: &[Point]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    // An intercept time near the samples avoids losing precision.
    Some(linear_regression(points, points[0].t).0)
}

fn predict_linear(w: &Window<'_>) -> Option<f64> {
    if w.points.len() < 2 {
        return None;
    }
    let duration = w.params.first().copied().unwrap_or(f64::NAN);
    let (slope, intercept) = linear_regression(w.points, w.t);
    Some(slope * duration + intercept)
}

/// Counter resets: a value below the previous one, or a start timestamp
/// after the previous sample. `start_timestamps` are those of `points`, or
/// empty.
fn resets(points: &[Point], start_timestamps: &[i64]) -> f64 {
    (1..points.len())
        .filter(|&i| {
            points[i].v < points[i - 1].v || is_start_timestamp_reset(points, start_timestamps, i)
        })
        .count() as f64
}

fn changes(points: &[Point]) -> f64 {
    points
        .windows(2)
        .filter(|p| p[1].v != p[0].v && !(p[1].v.is_nan() && p[0].v.is_nan()))
        .count() as f64
}

/// Fails the query for factors outside (0, 1), as Prometheus does, when
/// there is data to smooth.
pub(super) fn check_smoothing_factors(params: &[Vec<f64>], range: &RangeArg) -> Result<()> {
    if range.series.is_empty() {
        return Ok(());
    }
    for &sf in params.first().map(Vec::as_slice).unwrap_or(&[]) {
        if sf <= 0.0 || sf >= 1.0 || sf.is_nan() {
            return Err(Error::eval(format!(
                "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
            )));
        }
    }
    for &tf in params.get(1).map(Vec::as_slice).unwrap_or(&[]) {
        if tf <= 0.0 || tf >= 1.0 || tf.is_nan() {
            return Err(Error::eval(format!(
                "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
            )));
        }
    }
    Ok(())
}

/// Holt's linear smoothing: the smoothed value at the end of the window.
fn double_exponential_smoothing(w: &Window<'_>) -> Option<f64> {
    let points = w.points;
    if points.len() < 2 {
        return None;
    }
    let sf = w.params.first().copied().unwrap_or(f64::NAN);
    let tf = w.params.get(1).copied().unwrap_or(f64::NAN);
    let mut s0 = 0.0;
    let mut s1 = points[0].v;
    let mut b = points[1].v - points[0].v;
    for (i, p) in points.iter().enumerate().skip(1) {
        let x = sf * p.v;
        // The trend at the previous point.
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(points: &[Point], start: i64, end: i64) -> Window<'_> {
        Window {
            points,
            start_timestamps: &[],
            t: end,
            range_start: start,
            range_end: end,
            range_ms: end - start,
            params: &[],
            extension: None,
            without_value_resets: false,
        }
    }

    #[test]
    fn rate_extrapolates_to_the_window_edges() {
        // A counter growing 1 per 10 s, sampled at 10 s .. 60 s, window (0, 60 s].
        let points: Vec<Point> = (1..=6).map(|i| Point::new(i * 10_000, i as f64)).collect();
        let w = window(&points, 0, 60_000);
        let increase = extrapolated_rate(&w, true, false).unwrap();
        // 5 observed over 50 s; extrapolated 10 s to the start (counter
        // reaches zero exactly there): 6.
        assert!((increase - 6.0).abs() < 1e-9);
        let rate = extrapolated_rate(&w, true, true).unwrap();
        assert!((rate - 0.1).abs() < 1e-12);
    }

    #[test]
    fn rate_handles_counter_resets() {
        let points = vec![
            Point::new(10_000, 5.0),
            Point::new(20_000, 8.0),
            Point::new(30_000, 2.0),
        ];
        let w = window(&points, 10_000, 30_000);
        // 3 + 2 after the reset; no extrapolation needed.
        assert_eq!(extrapolated_rate(&w, true, false), Some(5.0));
        assert_eq!(resets(&points, &[]), 1.0);
        assert_eq!(changes(&points), 2.0);
    }

    #[test]
    fn irate_uses_the_last_two_samples() {
        let points = vec![
            Point::new(0, 1.0),
            Point::new(10_000, 3.0),
            Point::new(20_000, 8.0),
        ];
        let w = window(&points, 0, 20_000);
        assert_eq!(instant_value(&w, true), Some(0.5));
        assert_eq!(instant_value(&w, false), Some(5.0));
    }

    #[test]
    fn start_timestamps_mark_resets_and_the_counter_start() {
        // A delta-like counter: every sample starts when the previous one
        // was taken, so each is a reset and the first starts at 0 s,
        // inside the window (-1 ms, 20 s].
        let points = vec![Point::new(10_000, 2.0), Point::new(20_000, 2.0)];
        let start_timestamps = [1, 10_000];
        let mut w = window(&points, -1, 20_000);
        w.start_timestamps = &start_timestamps;
        // 2 from zero at the start, 2 more after the reset; nothing to
        // extrapolate.
        assert_eq!(extrapolated_rate(&w, true, false), Some(4.0));
        assert_eq!(resets(&points, &start_timestamps), 1.0);
        assert_eq!(instant_value(&w, true), Some(0.2));
        // A start at the previous sample's time is no reset when the
        // previous sample's start is unknown (a cumulative series).
        assert_eq!(resets(&points, &[0, 10_000]), 0.0);
        // Start timestamps at or after their sample are ignored.
        assert_eq!(resets(&points, &[10_000, 20_000]), 0.0);
        assert!(start_timestamps_overlap(&points, &[5_000, 6_000]));
        assert!(!start_timestamps_overlap(&points, &[5_000, 5_000]));
    }

    #[test]
    fn deriv_is_the_regression_slope() {
        let points: Vec<Point> = (0..5)
            .map(|i| Point::new(i * 1000, 2.0 * i as f64))
            .collect();
        assert_eq!(deriv(&points), Some(2.0));
    }
}
