//! Element-wise functions: arithmetic and trigonometry, `clamp*`, `round`,
//! and the calendar functions (`hour`, `day_of_week`, ...), all in UTC.

use super::super::error::Result;
use super::super::eval::{Evaluated, Evaluator, StepSeries};
use super::super::parse::Call;
use super::arg_required;
use crate::model::Labels;
use crate::promql::Point;

/// A function of one value and the scalar arguments at that step.
pub(super) type ElementFn = fn(f64, &[f64]) -> f64;

pub(super) fn element_function(name: &str) -> Option<ElementFn> {
    Some(match name {
        "abs" => |v, _| v.abs(),
        "ceil" => |v, _| v.ceil(),
        "floor" => |v, _| v.floor(),
        "exp" => |v, _| v.exp(),
        "sqrt" => |v, _| v.sqrt(),
        "ln" => |v, _| v.ln(),
        "log2" => |v, _| v.log2(),
        "log10" => |v, _| v.log10(),
        "sin" => |v, _| v.sin(),
        "cos" => |v, _| v.cos(),
        "tan" => |v, _| v.tan(),
        "asin" => |v, _| v.asin(),
        "acos" => |v, _| v.acos(),
        "atan" => |v, _| v.atan(),
        "sinh" => |v, _| v.sinh(),
        "cosh" => |v, _| v.cosh(),
        "tanh" => |v, _| v.tanh(),
        "asinh" => |v, _| v.asinh(),
        "acosh" => |v, _| v.acosh(),
        "atanh" => |v, _| v.atanh(),
        "rad" => |v, _| v * std::f64::consts::PI / 180.0,
        "deg" => |v, _| v * 180.0 / std::f64::consts::PI,
        "sgn" => |v, _| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        "clamp" => |v, p| clamp(v, param(p, 0), param(p, 1)),
        "clamp_max" => |v, p| clamp(v, f64::NEG_INFINITY, param(p, 0)),
        "clamp_min" => |v, p| clamp(v, param(p, 0), f64::INFINITY),
        "round" => |v, p| {
            let to_nearest = p.first().copied().unwrap_or(1.0);
            // Rounding with the inverse loses less precision; ties go up.
            let inverse = 1.0 / to_nearest;
            (v * inverse + 0.5).floor() / inverse
        },
        _ => return None,
    })
}

fn param(params: &[f64], i: usize) -> f64 {
    params.get(i).copied().unwrap_or(f64::NAN)
}

/// Go's `math.Max(min, math.Min(max, v))`, NaN-propagating.
fn clamp(v: f64, min: f64, max: f64) -> f64 {
    go_max(min, go_min(max, v))
}

/// Go's `math.Max`: +Inf wins over NaN, NaN over everything else.
pub(super) fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: -Inf wins over NaN, NaN over everything else.
pub(super) fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Applies `function` to every sample of the vector argument; the result
/// loses the metric name.
pub(super) fn element_wise(
    ev: &mut Evaluator<'_>,
    call: &Call,
    function: ElementFn,
) -> Result<Evaluated> {
    let mut scalars = Vec::new();
    for a in call.args.iter().skip(1) {
        scalars.push(ev.eval_scalar(a)?);
    }
    let mut input = ev.eval_vector(arg_required(call, 0)?)?;
    let grid = ev.grid;
    let mut params = vec![0.0; scalars.len()];
    for series in &mut input {
        series.drop_name = true;
        series.points.retain_mut(|p| {
            let step = grid.index(p.t);
            for (param, values) in params.iter_mut().zip(&scalars) {
                *param = values.get(step).copied().unwrap_or(f64::NAN);
            }
            // clamp with min > max returns nothing at that step.
            if call.name == "clamp" && params.len() == 2 && params[1] < params[0] {
                return false;
            }
            p.v = function(p.v, &params);
            true
        });
    }
    input.retain(|s| !s.points.is_empty());
    Ok(Evaluated::Vector(input))
}

pub(super) fn is_date_function(name: &str) -> bool {
    matches!(
        name,
        "days_in_month"
            | "day_of_month"
            | "day_of_week"
            | "day_of_year"
            | "hour"
            | "minute"
            | "month"
            | "year"
    )
}

/// Calendar functions of the samples' values (seconds since the epoch), or
/// of the evaluation time when called without an argument.
pub(super) fn date(ev: &mut Evaluator<'_>, call: &Call) -> Result<Evaluated> {
    let field = call.name;
    match call.args.first() {
        None => {
            let mut series = StepSeries::new(Labels::empty(), false);
            series.points = ev
                .grid
                .times()
                .map(|t| Point::new(t, date_field(field, t / 1000)))
                .collect();
            Ok(Evaluated::Vector(vec![series]))
        }
        Some(argument) => {
            let mut input = ev.eval_vector(argument)?;
            for series in &mut input {
                series.drop_name = true;
                for p in &mut series.points {
                    p.v = date_field(field, go_float_to_int(p.v));
                }
            }
            Ok(Evaluated::Vector(input))
        }
    }
}

/// Go's `int64(f)` conversion: truncation, with NaN and out-of-range values
/// mapping to the minimum.
fn go_float_to_int(v: f64) -> i64 {
    // 2^63 is the first float above the range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if v.is_nan() || !(-LIMIT..LIMIT).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

/// A calendar field of a Unix time in seconds, in UTC.
fn date_field(field: &str, unix_seconds: i64) -> f64 {
    let days = unix_seconds.div_euclid(86_400);
    let seconds_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    match field {
        "hour" => (seconds_of_day / 3600) as f64,
        "minute" => (seconds_of_day % 3600 / 60) as f64,
        "day_of_month" => day as f64,
        // 1970-01-01 was a Thursday (4).
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => (days - days_from_civil(year, 1, 1) + 1) as f64,
        "month" => month as f64,
        "year" => year as f64,
        "days_in_month" => days_in_month(year, month) as f64,
        _ => f64::NAN,
    }
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's algorithm: the date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_fields() {
        // 2021-02-28T13:14:15Z, a Sunday.
        let t = 1_614_518_055;
        assert_eq!(date_field("year", t), 2021.0);
        assert_eq!(date_field("month", t), 2.0);
        assert_eq!(date_field("day_of_month", t), 28.0);
        assert_eq!(date_field("day_of_week", t), 0.0);
        assert_eq!(date_field("day_of_year", t), 59.0);
        assert_eq!(date_field("hour", t), 13.0);
        assert_eq!(date_field("minute", t), 14.0);
        assert_eq!(date_field("days_in_month", t), 28.0);
        assert_eq!(date_field("year", 0), 1970.0);
        assert_eq!(date_field("day_of_week", -1), 3.0);
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }

    #[test]
    fn rounding_and_clamping() {
        let round = element_function("round").unwrap();
        assert_eq!(round(2.5, &[]), 3.0);
        assert_eq!(round(-2.5, &[]), -2.0);
        assert_eq!(round(1.234, &[0.1]), 1.2);
        assert_eq!(clamp(5.0, 0.0, 3.0), 3.0);
        assert!(clamp(f64::NAN, 0.0, 3.0).is_nan());
    }
}
