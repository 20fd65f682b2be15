//! PromQL functions. The dispatcher sorts them by shape:
//! - range-vector functions (`rate`, `*_over_time`, ...) cut a window per
//!   series and step and reduce it to one value ([`range`] and
//!   [`over_time`]);
//! - element-wise functions map each sample ([`math`]);
//! - functions that look at the whole vector at a step (`histogram_quantile`,
//!   `absent`, `scalar`, `sort`) or at labels ([`labels`], [`histogram`]).

mod histogram;
pub(crate) mod info;
mod labels;

pub(crate) use labels::is_valid_label_name;
mod math;
mod over_time;
mod range;

use super::error::{Error, Result};
use super::eval::{Evaluated, Evaluator, RangeArg, StepSeries, WindowCursor};
use super::parse::{Call, ExprKind, Extension};
use crate::model::Labels;
use crate::promql::Point;

/// Whether the engine implements a function the parser knows.
pub(crate) fn is_supported(name: &str) -> bool {
    range_function(name).is_some()
        || math::element_function(name).is_some()
        || math::is_date_function(name)
        || matches!(
            name,
            "label_replace"
                | "label_join"
                | "sort"
                | "sort_desc"
                | "sort_by_label"
                | "sort_by_label_desc"
                | "absent"
                | "absent_over_time"
                | "scalar"
                | "vector"
                | "time"
                | "pi"
                | "timestamp"
                | "start_timestamp"
                | "start"
                | "end"
                | "step"
                | "range"
                | "histogram_quantile"
                | "histogram_quantiles"
                | "histogram_fraction"
                | "histogram_count"
                | "histogram_sum"
                | "histogram_avg"
                | "histogram_stddev"
                | "histogram_stdvar"
                | "min_of"
                | "max_of"
        )
}

/// Prometheus's `almost.Equal`.
pub(crate) fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// What a range function sees of one window.
pub(crate) struct Window<'a> {
    /// The samples in `(range_start, range_end]`, oldest first.
    pub points: &'a [Point],
    /// The start timestamp of each of `points` (0: unknown), or empty when
    /// none is known.
    pub start_timestamps: &'a [i64],
    /// The step being evaluated.
    pub t: i64,
    pub range_start: i64,
    pub range_end: i64,
    pub range_ms: i64,
    /// The scalar arguments of the call at this step, in order.
    pub params: &'a [f64],
    /// `anchored` or `smoothed`: `points` then reach beyond the window.
    pub extension: Option<Extension>,
    /// The caller knows that no sample of `points` is lower than the one
    /// before it (no counter reset by value), so counter functions need not
    /// look for one.
    pub without_value_resets: bool,
}

/// A function that reduces a window of samples to at most one value.
pub(crate) type RangeFn = fn(&Window<'_>) -> Result<Option<f64>>;

fn range_function(name: &str) -> Option<RangeFn> {
    range::function(name).or_else(|| over_time::function(name))
}

pub(crate) fn eval(ev: &mut Evaluator<'_>, call: &Call, pos: usize) -> Result<Evaluated> {
    let grid = ev.grid;
    match call.name {
        "time" => return Ok(Evaluated::Scalar(grid.times().map(seconds).collect())),
        "pi" => return Ok(Evaluated::Scalar(vec![std::f64::consts::PI; grid.len()])),
        "start" => return Ok(scalar(ev, seconds(ev.context.start_ms))),
        "end" => return Ok(scalar(ev, seconds(ev.context.end_ms))),
        "step" => return Ok(scalar(ev, seconds(ev.context.step_ms))),
        "range" => {
            let range = ev.context.end_ms - ev.context.start_ms;
            return Ok(scalar(ev, seconds(range)));
        }
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(arg_required(call, 0)?)?;
            let b = ev.eval_scalar(arg_required(call, 1)?)?;
            let pick = if call.name == "min_of" {
                math::go_min
            } else {
                math::go_max
            };
            return Ok(Evaluated::Scalar(
                a.iter().zip(&b).map(|(&a, &b)| pick(a, b)).collect(),
            ));
        }
        "label_replace" => return labels::label_replace(ev, call),
        "label_join" => return labels::label_join(ev, call),
        "absent" => return labels::absent(ev, call),
        "absent_over_time" => return over_time::absent_over_time(ev, call),
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
            return labels::sort(ev, call, pos);
        }
        "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => {
            return histogram::eval(ev, call);
        }
        // These read native histograms only; float samples are skipped.
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            arg(call, 0).map(|a| ev.eval_vector(a)).transpose()?;
            return Ok(Evaluated::Vector(Vec::new()));
        }
        "scalar" => {
            let input = ev.eval_vector(arg_required(call, 0)?)?;
            let mut values = vec![f64::NAN; grid.len()];
            let mut counts = vec![0u32; grid.len()];
            for series in &input {
                for p in &series.points {
                    let i = grid.index(p.t);
                    counts[i] += 1;
                    values[i] = p.v;
                }
            }
            for (v, n) in values.iter_mut().zip(counts) {
                if n != 1 {
                    *v = f64::NAN;
                }
            }
            return Ok(Evaluated::Scalar(values));
        }
        "vector" => {
            let values = ev.eval_scalar(arg_required(call, 0)?)?;
            let mut series = StepSeries::new(Labels::empty(), false);
            series.points = grid
                .times()
                .zip(values)
                .map(|(t, v)| Point::new(t, v))
                .collect();
            return Ok(Evaluated::Vector(vec![series]));
        }
        "timestamp" => {
            let argument = arg_required(call, 0)?;
            if let ExprKind::Selector(selector) = &argument.unparen().kind {
                return Ok(Evaluated::Vector(
                    ev.eval_selector_timestamps(selector, false)?,
                ));
            }
            let mut input = ev.eval_vector(argument)?;
            for series in &mut input {
                series.drop_name = true;
                for p in &mut series.points {
                    p.v = seconds(p.t);
                }
            }
            return Ok(Evaluated::Vector(input));
        }
        "start_timestamp" => {
            let argument = arg_required(call, 0)?;
            if let ExprKind::Selector(selector) = &argument.unparen().kind {
                return Ok(Evaluated::Vector(
                    ev.eval_selector_timestamps(selector, true)?,
                ));
            }
            // Only samples read from storage have start timestamps: a
            // computed vector has none, so the result is empty.
            ev.eval_vector(argument)?;
            return Ok(Evaluated::Vector(Vec::new()));
        }
        _ => {}
    }
    if let Some(function) = range_function(call.name) {
        return eval_range_function(ev, call, function);
    }
    if math::is_date_function(call.name) {
        return math::date(ev, call);
    }
    if let Some(function) = math::element_function(call.name) {
        return math::element_wise(ev, call, function);
    }
    Err(Error::eval(format!(
        "function {:?} is not supported",
        call.name
    )))
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn scalar(ev: &Evaluator<'_>, v: f64) -> Evaluated {
    Evaluated::Scalar(vec![v; ev.grid.len()])
}

fn arg(call: &Call, i: usize) -> Option<&super::parse::Expr> {
    call.args.get(i)
}

fn arg_required(call: &Call, i: usize) -> Result<&super::parse::Expr> {
    call.args.get(i).ok_or_else(|| {
        Error::eval(format!(
            "missing argument {} in call to {:?}",
            i + 1,
            call.name
        ))
    })
}

/// The string literal argument `i`.
fn string_arg(call: &Call, i: usize) -> Result<String> {
    match &arg_required(call, i)?.unparen().kind {
        ExprKind::String(s) => Ok(s.clone()),
        _ => Err(Error::eval(format!(
            "expected a string literal as argument {} of {:?}",
            i + 1,
            call.name
        ))),
    }
}

/// Fills `counts` with, for each sample, how many samples up to it are lower
/// than the one before them: the samples `lo..hi` hold no such drop after
/// their first when `counts[hi - 1] == counts[lo]`.
fn running_reset_counts(points: &[Point], counts: &mut Vec<u32>) {
    counts.clear();
    counts.reserve(points.len());
    let mut count = 0u32;
    let mut previous = f64::NAN;
    for p in points {
        // NaN compares false, as in the counter functions.
        if p.v < previous {
            count = count.wrapping_add(1);
        }
        counts.push(count);
        previous = p.v;
    }
}

/// Runs a range-vector function over every series and step.
fn eval_range_function(
    ev: &mut Evaluator<'_>,
    call: &Call,
    function: RangeFn,
) -> Result<Evaluated> {
    let grid = ev.grid;
    let matrix_index = call
        .args
        .iter()
        .position(|a| {
            matches!(
                a.unparen().kind,
                ExprKind::Range { .. } | ExprKind::Subquery(_)
            )
        })
        .ok_or_else(|| Error::eval(format!("{:?} needs a range vector argument", call.name)))?;
    // Scalar arguments, one value per step.
    let mut scalar_args: Vec<Vec<f64>> = Vec::new();
    for (i, a) in call.args.iter().enumerate() {
        if i != matrix_index {
            scalar_args.push(ev.eval_scalar(a)?);
        }
    }
    let range_arg: RangeArg = ev.eval_range_arg(&call.args[matrix_index])?;
    if let Some(extension) = range_arg.extension {
        let allowed: &[&str] = match extension {
            Extension::Anchored => &["changes", "delta", "increase", "rate", "resets"],
            Extension::Smoothed => &["delta", "increase", "rate"],
        };
        if !allowed.contains(&call.name) {
            return Err(Error::eval(format!(
                "{} modifier can only be used with: {} - not with {}",
                extension.name(),
                allowed.join(", "),
                call.name
            )));
        }
    }
    let param_pos = call
        .args
        .iter()
        .enumerate()
        .find(|(i, _)| *i != matrix_index)
        .map_or(0, |(_, a)| a.pos);
    match call.name {
        "quantile_over_time" => {
            let mut warned = Vec::new();
            for &q in scalar_args.first().map(Vec::as_slice).unwrap_or(&[]) {
                if (q.is_nan() || !(0.0..=1.0).contains(&q))
                    && !warned.iter().any(|w: &f64| w.to_bits() == q.to_bits())
                {
                    warned.push(q);
                }
            }
            // Prometheus warns only for steps with data; with no series
            // there is nothing to warn about.
            if !range_arg.series.is_empty() {
                for q in warned {
                    ev.warn(
                        format!(
                            "quantile value should be between 0 and 1, got {}",
                            super::annotations::format_go_g(q)
                        ),
                        param_pos,
                    );
                }
            }
        }
        "double_exponential_smoothing" => {
            range::check_smoothing_factors(&scalar_args, &range_arg)?;
        }
        _ => {}
    }
    // last_over_time and first_over_time act like an offset; every other
    // function changes what the value means.
    let drop_name = !matches!(call.name, "last_over_time" | "first_over_time");
    let mut out = Vec::with_capacity(range_arg.series.len());
    let mut params = vec![0.0; scalar_args.len()];
    let mut non_counters = Vec::new();
    let mut overlapping = Vec::new();
    let is_counter_rate = matches!(call.name, "rate" | "increase");
    // Over many steps, windows overlap: counting value resets once per
    // series (a running count by sample) tells each window in O(1) whether
    // it holds one, instead of every window walking its samples.
    let count_resets = is_counter_rate && range_arg.extension.is_none() && grid.len() > 1;
    let mut resets_until: Vec<u32> = Vec::new();
    for series in &range_arg.series {
        ev.check()?;
        if count_resets {
            running_reset_counts(&series.points, &mut resets_until);
        }
        let mut step_series = StepSeries::new(series.labels.clone(), drop_name);
        step_series.points.reserve(grid.len());
        let mut largest_window = 0;
        let mut cursor = WindowCursor::default();
        for (step, t) in grid.times().enumerate() {
            let (range_start, range_end) = range_arg.window_bounds(t);
            let indices = cursor.advance(&range_arg, &series.points, t);
            let points = &series.points[indices.clone()];
            if points.is_empty() {
                continue;
            }
            // The extended windows reach beyond the range and do not use
            // start timestamps (as in Prometheus).
            let start_timestamps = match range_arg.extension {
                None => series.start_timestamps_of(indices.clone()),
                Some(_) => &[],
            };
            if is_counter_rate
                && !start_timestamps.is_empty()
                && range::start_timestamps_overlap(points, start_timestamps)
            {
                let name = series.labels.metric_name().unwrap_or("");
                if !overlapping.iter().any(|n| n == name) {
                    overlapping.push(name.to_string());
                }
            }
            largest_window = largest_window.max(points.len());
            for (p, values) in params.iter_mut().zip(&scalar_args) {
                *p = values.get(step).copied().unwrap_or(f64::NAN);
            }
            let without_value_resets = count_resets
                && resets_until.get(indices.end - 1) == resets_until.get(indices.start);
            let w = Window {
                points,
                start_timestamps,
                t,
                range_start,
                range_end,
                range_ms: range_arg.range_ms,
                params: &params,
                extension: range_arg.extension,
                without_value_resets,
            };
            if let Some(v) = function(&w)? {
                step_series.points.push(Point::new(t, v));
            }
        }
        ev.hold_samples(largest_window)?;
        ev.release_samples(largest_window);
        if step_series.points.is_empty() {
            continue;
        }
        if matches!(call.name, "rate" | "increase")
            && let Some(name) = series.labels.metric_name()
            && !["_total", "_sum", "_count", "_bucket"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
        {
            non_counters.push(name.to_string());
        }
        ev.hold_samples(step_series.points.len())?;
        out.push(step_series);
    }
    let pos = call.args[matrix_index].pos;
    for name in overlapping {
        ev.warn(
            format!(
                "sample has start time that overlaps with previous sample timestamp for metric {name:?}"
            ),
            pos,
        );
    }
    for name in non_counters {
        ev.info(
            format!(
                "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"
            ),
            pos,
        );
    }
    Ok(Evaluated::Vector(out))
}
