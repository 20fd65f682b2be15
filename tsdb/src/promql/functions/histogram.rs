//! `histogram_quantile`, `histogram_quantiles` and `histogram_fraction` on
//! classic histograms: series with an `le` label, one per bucket, grouped by
//! their other labels.

use std::collections::HashMap;

use super::super::annotations::format_go_g;
use super::super::error::Result;
use super::super::eval::{Assembler, Elem, Evaluated, Evaluator, Stepper};
use super::super::parse::Call;
use super::{almost_equal, arg_required, string_arg};
use crate::model::Labels;

const BUCKET_LABEL: &str = "le";

/// Relative differences between neighbouring bucket counts this small are
/// floating point noise and are ignored.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    upper_bound: f64,
    count: f64,
}

pub(super) fn eval(ev: &mut Evaluator<'_>, call: &Call) -> Result<Evaluated> {
    // Which argument holds the buckets, and the scalar arguments.
    let (vector_index, scalar_indexes, quantile_label): (usize, Vec<usize>, Option<String>) =
        match call.name {
            "histogram_quantile" => (1, vec![0], None),
            "histogram_fraction" => (2, vec![0, 1], None),
            _ => (
                0,
                (2..call.args.len()).collect(),
                Some(string_arg(call, 1)?),
            ),
        };
    let mut scalars = Vec::new();
    for &i in &scalar_indexes {
        scalars.push(ev.eval_scalar(arg_required(call, i)?)?);
    }
    let vector_arg = arg_required(call, vector_index)?;
    let input = ev.eval_vector(vector_arg)?;
    let vector_pos = vector_arg.pos;

    if call.name != "histogram_fraction" {
        for (n, &i) in scalar_indexes.iter().enumerate() {
            let pos = call.args[i].pos;
            let mut warned: Vec<u64> = Vec::new();
            for &q in &scalars[n] {
                if (q.is_nan() || !(0.0..=1.0).contains(&q)) && !warned.contains(&q.to_bits()) {
                    warned.push(q.to_bits());
                    ev.warn(
                        format!(
                            "quantile value should be between 0 and 1, got {}",
                            format_go_g(q)
                        ),
                        pos,
                    );
                }
            }
        }
    }

    // Group the bucket series once: by all labels but `le`.
    let mut group_index: HashMap<Labels, usize> = HashMap::new();
    let mut group_labels: Vec<Labels> = Vec::new();
    let mut bucket_of: Vec<Option<(usize, f64)>> = Vec::with_capacity(input.len());
    for series in &input {
        let le = series.labels.get(BUCKET_LABEL).unwrap_or("");
        let Some(upper_bound) = parse_go_float(le) else {
            let name = series
                .labels
                .metric_name()
                .map(|n| format!(" for metric name {n:?}"))
                .unwrap_or_default();
            ev.warn(
                format!("bucket label \"le\" is missing or has a malformed value of {le:?}{name}"),
                vector_pos,
            );
            bucket_of.push(None);
            continue;
        };
        let key = series.labels.builder().remove(BUCKET_LABEL).build();
        let group = *group_index.entry(key.clone()).or_insert_with(|| {
            group_labels.push(key);
            group_labels.len() - 1
        });
        bucket_of.push(Some((group, upper_bound)));
    }

    let grid = ev.grid;
    let mut assembler = Assembler::new(&grid);
    let mut stepper = Stepper::new(&input);
    let mut now = Vec::new();
    let mut buckets: Vec<Vec<Bucket>> = vec![Vec::new(); group_labels.len()];
    let mut forced_monotonic: Vec<bool> = vec![false; group_labels.len()];
    for (step, t) in grid.times().enumerate() {
        ev.check()?;
        stepper.step(t, &mut now);
        for b in &mut buckets {
            b.clear();
        }
        for &(i, v) in &now {
            if let Some((group, upper_bound)) = bucket_of[i] {
                buckets[group].push(Bucket {
                    upper_bound,
                    count: v,
                });
            }
        }
        let at_step = |values: &Vec<f64>| values.get(step).copied().unwrap_or(f64::NAN);
        for (group, group_buckets) in buckets.iter_mut().enumerate() {
            if group_buckets.is_empty() {
                continue;
            }
            match (call.name, &quantile_label) {
                ("histogram_fraction", _) => {
                    let lower = at_step(&scalars[0]);
                    let upper = at_step(&scalars[1]);
                    let v = bucket_fraction(lower, upper, group_buckets);
                    push(&mut assembler, t, &group_labels[group], v)?;
                }
                (_, Some(label)) => {
                    for values in &scalars {
                        let q = at_step(values);
                        let (v, forced) = bucket_quantile(q, &mut group_buckets.clone());
                        forced_monotonic[group] |= forced;
                        let labels = group_labels[group]
                            .builder()
                            .set(label.as_str(), format_openmetrics_float(q))
                            .build();
                        push(&mut assembler, t, &labels, v)?;
                    }
                }
                _ => {
                    let q = at_step(&scalars[0]);
                    let (v, forced) = bucket_quantile(q, group_buckets);
                    forced_monotonic[group] |= forced;
                    push(&mut assembler, t, &group_labels[group], v)?;
                }
            }
        }
    }
    for (group, forced) in forced_monotonic.into_iter().enumerate() {
        if forced {
            let name = group_labels[group]
                .metric_name()
                .map(|n| format!(" for metric name {n:?}"))
                .unwrap_or_default();
            ev.info(
                format!(
                    "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile){name}"
                ),
                vector_pos,
            );
        }
    }
    Ok(Evaluated::Vector(assembler.finish()))
}

fn push(assembler: &mut Assembler, t: i64, labels: &Labels, v: f64) -> Result<()> {
    assembler.push(
        t,
        Elem {
            labels: labels.clone(),
            v,
            drop_name: true,
        },
    )
}

/// Parses a float the way Go's `strconv.ParseFloat` does for `le` values:
/// decimal, exponent, `Inf`/`+Inf`/`-Inf`/`NaN` in any case.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
    if matches!(unsigned, "inf" | "infinity" | "nan") {
        let v = if unsigned == "nan" {
            f64::NAN
        } else {
            f64::INFINITY
        };
        return Some(if lower.starts_with('-') { -v } else { v });
    }
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE_".contains(&b))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// OpenMetrics float text: integers keep a `.0`, as Prometheus's
/// `FormatOpenMetricsFloat` writes them.
fn format_openmetrics_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let s = format_go_g(v);
    if s.contains(['.', 'e']) {
        s
    } else {
        format!("{s}.0")
    }
}

fn sort_and_coalesce(buckets: &mut Vec<Bucket>) {
    buckets.sort_by(|a, b| {
        a.upper_bound
            .partial_cmp(&b.upper_bound)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    // Buckets with the same bound (written differently) add up.
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.upper_bound == b.upper_bound => last.count += b.count,
            _ => merged.push(*b),
        }
    }
    *buckets = merged;
}

/// Ignores tiny differences between neighbours and removes decreases; true
/// when a real decrease had to be removed.
fn ensure_monotonic(buckets: &mut [Bucket]) -> bool {
    let mut forced = false;
    let Some(first) = buckets.first() else {
        return false;
    };
    let mut previous = first.count;
    for b in buckets.iter_mut().skip(1) {
        let current = b.count;
        if current == previous {
            continue;
        }
        if almost_equal(previous, current, SMALL_DELTA_TOLERANCE) {
            b.count = previous;
            continue;
        }
        if current < previous {
            b.count = previous;
            forced = true;
            continue;
        }
        previous = current;
    }
    forced
}

/// The `q`-quantile of classic buckets, interpolating linearly within the
/// bucket; also whether monotonicity had to be forced.
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    sort_and_coalesce(buckets);
    match buckets.last() {
        Some(last) if last.upper_bound == f64::INFINITY => {}
        _ => return (f64::NAN, false),
    }
    let forced = ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return (f64::NAN, false);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, false);
    }
    let mut rank = q * observations;
    let search = &buckets[..buckets.len() - 1];
    let b = search.partition_point(|bucket| bucket.count < rank);
    if b == buckets.len() - 1 {
        return (buckets[buckets.len() - 2].upper_bound, forced);
    }
    if b == 0 && buckets[0].upper_bound <= 0.0 {
        return (buckets[0].upper_bound, forced);
    }
    let mut bucket_start = 0.0;
    let bucket_end = buckets[b].upper_bound;
    let mut count = buckets[b].count;
    if b > 0 {
        bucket_start = buckets[b - 1].upper_bound;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (
        bucket_start + (bucket_end - bucket_start) * (rank / count),
        forced,
    )
}

/// The fraction of observations between `lower` and `upper`, interpolating
/// linearly within buckets. The lowest bucket starts at 0 when its bound is
/// positive. Nothing is known about where the observations of a bucket of
/// infinite width lie, so they count as sitting at its infinite end.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    if lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    sort_and_coalesce(buckets);
    match buckets.last() {
        Some(last) if last.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    ensure_monotonic(buckets);
    let total = buckets[buckets.len() - 1].count;
    if total == 0.0 {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    (rank_below(upper, buckets) - rank_below(lower, buckets)) / total
}

/// How many observations lie below `v`.
fn rank_below(v: f64, buckets: &[Bucket]) -> f64 {
    let mut rank = 0.0;
    let mut previous_count = 0.0;
    for (i, b) in buckets.iter().enumerate() {
        let count = b.count - previous_count;
        previous_count = b.count;
        let bucket_lower = match i {
            0 if b.upper_bound > 0.0 => 0.0,
            0 => f64::NEG_INFINITY,
            _ => buckets[i - 1].upper_bound,
        };
        let bucket_upper = b.upper_bound;
        if bucket_lower >= v {
            return rank;
        }
        if v < bucket_upper {
            return if bucket_lower == f64::NEG_INFINITY {
                rank + count
            } else if bucket_upper == f64::INFINITY {
                rank
            } else {
                rank + count * (v - bucket_lower) / (bucket_upper - bucket_lower)
            };
        }
        rank += count;
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs
            .iter()
            .map(|&(upper_bound, count)| Bucket { upper_bound, count })
            .collect()
    }

    #[test]
    fn quantile_interpolates_within_buckets() {
        let mut b = buckets(&[
            (0.0, 0.0),
            (2.0, 10.0),
            (4.0, 20.0),
            (6.0, 30.0),
            (f64::INFINITY, 30.0),
        ]);
        let (q, forced) = bucket_quantile(0.5, &mut b);
        assert_eq!(q, 3.0);
        assert!(!forced);
        let mut missing_inf = buckets(&[(1.0, 1.0)]);
        assert!(bucket_quantile(0.5, &mut missing_inf).0.is_nan());
    }

    #[test]
    fn quantile_reports_forced_monotonicity() {
        let mut b = buckets(&[(1.0, 5.0), (2.0, 3.0), (f64::INFINITY, 6.0)]);
        assert!(bucket_quantile(0.5, &mut b).1);
    }

    #[test]
    fn fraction_skips_partial_infinite_buckets() {
        let mut b = buckets(&[
            (-3.0, 10.0),
            (-2.0, 12.0),
            (-1.0, 15.0),
            (f64::INFINITY, 100.0),
        ]);
        assert!((bucket_fraction(-4.0, -2.0, &mut b) - 0.02).abs() < 1e-12);
        assert!((bucket_fraction(f64::NEG_INFINITY, -1.5, &mut b) - 0.135).abs() < 1e-12);
        let mut b = buckets(&[(1.0, 1.0), (2.0, 3.0), (3.0, 6.0), (f64::INFINITY, 100.0)]);
        assert!((bucket_fraction(400.0, f64::INFINITY, &mut b) - 0.94).abs() < 1e-12);
        assert_eq!(bucket_fraction(4.0, 5.0, &mut b), 0.0);
        assert!((bucket_fraction(0.0, 1.5, &mut b) - 0.02).abs() < 1e-12);
    }

    #[test]
    fn go_floats() {
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("1e0"), Some(1.0));
        assert_eq!(parse_go_float(".2"), Some(0.2));
        assert_eq!(parse_go_float("Hello World"), None);
        assert_eq!(parse_go_float(""), None);
        assert_eq!(format_openmetrics_float(1.0), "1.0");
        assert_eq!(format_openmetrics_float(0.99), "0.99");
    }
}
