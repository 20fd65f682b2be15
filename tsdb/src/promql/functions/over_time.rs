//! The `*_over_time` family: aggregations of each series over its window,
//! and `absent_over_time`.

use super::super::aggregate::{kahan_sum_inc, quantile};
use super::super::error::Result;
use super::super::eval::{Evaluated, Evaluator, StepSeries, window};
use super::super::parse::Call;
use super::labels::absent_labels;
use super::{RangeFn, arg_required};
use crate::promql::Point;

pub(super) fn function(name: &str) -> Option<RangeFn> {
    Some(match name {
        "avg_over_time" => |w| Ok(Some(avg(w.points))),
        "sum_over_time" => |w| Ok(Some(sum(w.points))),
        "count_over_time" => |w| Ok(Some(w.points.len() as f64)),
        "min_over_time" => |w| Ok(Some(extreme(w.points, |cur, best| cur < best).v)),
        "max_over_time" => |w| Ok(Some(extreme(w.points, |cur, best| cur > best).v)),
        "ts_of_min_over_time" => {
            |w| Ok(Some(seconds(extreme(w.points, |cur, best| cur <= best).t)))
        }
        "ts_of_max_over_time" => {
            |w| Ok(Some(seconds(extreme(w.points, |cur, best| cur >= best).t)))
        }
        "last_over_time" => |w| Ok(w.points.last().map(|p| p.v)),
        "first_over_time" => |w| Ok(w.points.first().map(|p| p.v)),
        "ts_of_last_over_time" => |w| Ok(w.points.last().map(|p| seconds(p.t))),
        "ts_of_first_over_time" => |w| Ok(w.points.first().map(|p| seconds(p.t))),
        "present_over_time" => |_| Ok(Some(1.0)),
        "stddev_over_time" => |w| Ok(Some(variance(w.points).sqrt())),
        "stdvar_over_time" => |w| Ok(Some(variance(w.points))),
        "quantile_over_time" => |w| {
            let q = w.params.first().copied().unwrap_or(f64::NAN);
            let mut values: Vec<f64> = w.points.iter().map(|p| p.v).collect();
            Ok(Some(quantile(q, &mut values)))
        },
        "mad_over_time" => |w| Ok(Some(median_absolute_deviation(w.points))),
        _ => return None,
    })
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The mean with Kahan summation, switching to an incremental mean when the
/// running sum would overflow.
fn avg(points: &[Point]) -> f64 {
    let mut sum = points[0].v;
    let mut count = 1.0;
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, p) in points.iter().enumerate().skip(1) {
        count = (i + 1) as f64;
        if !incremental {
            let (new_sum, new_c) = kahan_sum_inc(p.v, sum, c);
            if !new_sum.is_infinite() {
                sum = new_sum;
                c = new_c;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_sum_inc(p.v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

fn sum(points: &[Point]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for p in points {
        (sum, c) = kahan_sum_inc(p.v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

/// The sample `better` picks; a NaN is always replaced.
fn extreme(points: &[Point], better: fn(f64, f64) -> bool) -> Point {
    let mut best = points[0];
    for p in points {
        if better(p.v, best.v) || best.v.is_nan() {
            best = *p;
        }
    }
    best
}

/// Population variance with Kahan-compensated Welford updates.
fn variance(points: &[Point]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in points {
        count += 1.0;
        let delta = p.v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (p.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

fn median_absolute_deviation(points: &[Point]) -> f64 {
    // A NaN sample makes the result NaN rather than being sorted away.
    if points.iter().any(|p| p.v.is_nan()) {
        return f64::NAN;
    }
    let mut values: Vec<f64> = points.iter().map(|p| p.v).collect();
    let median = quantile(0.5, &mut values);
    let mut deviations: Vec<f64> = points.iter().map(|p| (p.v - median).abs()).collect();
    quantile(0.5, &mut deviations)
}

/// `absent_over_time`: 1 at the steps where no series has a sample in its
/// window, with labels from the selector's equality matchers.
pub(super) fn absent_over_time(ev: &mut Evaluator<'_>, call: &Call) -> Result<Evaluated> {
    let argument = arg_required(call, 0)?;
    let range = ev.eval_range_arg(argument)?;
    let grid = ev.grid;
    let mut present = vec![false; grid.len()];
    for series in &range.series {
        for (i, t) in grid.times().enumerate() {
            if present[i] {
                continue;
            }
            let (start, end) = range.window_bounds(t);
            if !window(&series.points, start, end).is_empty() {
                present[i] = true;
            }
        }
    }
    let mut out = StepSeries::new(absent_labels(argument), true);
    out.points = grid
        .times()
        .zip(present)
        .filter(|(_, present)| !present)
        .map(|(t, _)| Point::new(t, 1.0))
        .collect();
    if out.points.is_empty() {
        return Ok(Evaluated::Vector(Vec::new()));
    }
    Ok(Evaluated::Vector(vec![out]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| Point::new(i as i64, v))
            .collect()
    }

    #[test]
    fn averages_and_sums() {
        assert_eq!(avg(&points(&[1.0, 2.0, 3.0, 4.0])), 2.5);
        assert_eq!(sum(&points(&[1.0, 2.0, 3.0])), 6.0);
        let huge = points(&[f64::MAX, f64::MAX, -f64::MAX]);
        assert!(avg(&huge).is_finite());
    }

    #[test]
    fn extremes_skip_nan() {
        let p = points(&[f64::NAN, 3.0, 1.0]);
        assert_eq!(extreme(&p, |c, b| c < b).v, 1.0);
        assert_eq!(extreme(&p, |c, b| c > b).v, 3.0);
    }

    #[test]
    fn variance_and_mad() {
        assert_eq!(
            variance(&points(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])),
            4.0
        );
        assert_eq!(
            median_absolute_deviation(&points(&[1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0])),
            1.0
        );
    }
}
