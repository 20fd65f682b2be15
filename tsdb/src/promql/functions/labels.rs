//! Functions about labels and order: `label_replace`, `label_join`,
//! `absent`, and the `sort` family.

use std::cmp::Ordering;

use regex::Regex;

use super::super::aggregate::{insertion_sort, value_greater, value_less};
use super::super::error::{Error, Result};
use super::super::eval::{Evaluated, Evaluator, StepSeries, duplicate_labelset};
use super::super::parse::{Call, Expr, ExprKind};
use super::{arg_required, string_arg};
use crate::model::{Labels, LabelsBuilder, METRIC_NAME, MatchOp};
use crate::promql::Point;

/// Label names may be any non-empty UTF-8 string in Prometheus 3. U+FFFD
/// stands for bytes of a string literal that are not UTF-8 (see
/// `parse::extensions`).
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(char::REPLACEMENT_CHARACTER)
}

pub(super) fn label_replace(ev: &mut Evaluator<'_>, call: &Call) -> Result<Evaluated> {
    let destination = string_arg(call, 1)?;
    let replacement = string_arg(call, 2)?;
    let source = string_arg(call, 3)?;
    let pattern = string_arg(call, 4)?;
    let regex = Regex::new(&format!("^(?s:{pattern})$")).map_err(|_| {
        Error::eval(format!(
            "invalid regular expression in label_replace(): {pattern}"
        ))
    })?;
    if !is_valid_label_name(&destination) {
        return Err(Error::eval(format!(
            "invalid destination label name in label_replace(): {destination}"
        )));
    }
    let mut input = ev.eval_vector(arg_required(call, 0)?)?;
    for series in &mut input {
        let value = series.labels.get(&source).unwrap_or("");
        if let Some(captures) = regex.captures(value) {
            let mut expanded = String::new();
            // Go's and Rust's `$name`/`${name}` expansion rules agree.
            captures.expand(&replacement, &mut expanded);
            series.labels = series
                .labels
                .builder()
                .set(destination.as_str(), expanded)
                .build();
            if destination == METRIC_NAME {
                series.drop_name = false;
            }
        }
    }
    relabeled(input)
}

pub(super) fn label_join(ev: &mut Evaluator<'_>, call: &Call) -> Result<Evaluated> {
    let destination = string_arg(call, 1)?;
    let separator = string_arg(call, 2)?;
    let mut sources = Vec::new();
    for i in 3..call.args.len() {
        let source = string_arg(call, i)?;
        if !is_valid_label_name(&source) {
            return Err(Error::eval(format!(
                "invalid source label name in label_join(): {source}"
            )));
        }
        sources.push(source);
    }
    if !is_valid_label_name(&destination) {
        return Err(Error::eval(format!(
            "invalid destination label name in label_join(): {destination}"
        )));
    }
    let mut input = ev.eval_vector(arg_required(call, 0)?)?;
    for series in &mut input {
        let joined = sources
            .iter()
            .map(|s| series.labels.get(s).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&separator);
        series.labels = series
            .labels
            .builder()
            .set(destination.as_str(), joined)
            .build();
        if destination == METRIC_NAME {
            series.drop_name = false;
        }
    }
    relabeled(input)
}

/// Series whose labels became equal are merged, unless they overlap.
fn relabeled(input: Vec<StepSeries>) -> Result<Evaluated> {
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut out: Vec<StepSeries> = Vec::with_capacity(input.len());
    let mut merged = false;
    for series in input {
        match index.get(&series.labels) {
            Some(&i) => {
                out[i].points.extend(series.points);
                out[i].drop_name |= series.drop_name;
                merged = true;
            }
            None => {
                index.insert(series.labels.clone(), out.len());
                out.push(series);
            }
        }
    }
    if merged {
        for series in &mut out {
            series.points.sort_by_key(|p| p.t);
            if series.points.windows(2).any(|w| w[0].t == w[1].t) {
                return Err(duplicate_labelset());
            }
        }
    }
    Ok(Evaluated::Vector(out))
}

/// The labels `absent` reports: those of the equality matchers of a
/// selector argument, unless a label is matched more than once.
pub(crate) fn absent_labels(argument: &Expr) -> Labels {
    let matchers = match &argument.unparen().kind {
        ExprKind::Selector(s) | ExprKind::Range { selector: s, .. } => &s.matchers,
        _ => return Labels::empty(),
    };
    let mut builder = LabelsBuilder::default();
    let mut seen: Vec<&str> = Vec::new();
    for m in matchers {
        if m.name() == METRIC_NAME {
            continue;
        }
        if m.op() == MatchOp::Equal && !seen.contains(&m.name()) {
            builder.set_mut(m.name(), m.value());
            seen.push(m.name());
        } else {
            builder.remove_mut(m.name());
        }
    }
    builder.build()
}

pub(super) fn absent(ev: &mut Evaluator<'_>, call: &Call) -> Result<Evaluated> {
    let argument = arg_required(call, 0)?;
    let input = ev.eval_vector(argument)?;
    let grid = ev.grid;
    let mut present = vec![false; grid.len()];
    for series in &input {
        for p in &series.points {
            present[grid.index(p.t)] = true;
        }
    }
    let mut out = StepSeries::new(absent_labels(argument), false);
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

/// `sort`, `sort_desc`, `sort_by_label`, `sort_by_label_desc`: order only
/// matters for instant queries; range query results are always sorted by
/// labels, which Prometheus points out with a warning.
pub(super) fn sort(ev: &mut Evaluator<'_>, call: &Call, pos: usize) -> Result<Evaluated> {
    let mut label_names = Vec::new();
    for i in 1..call.args.len() {
        label_names.push(string_arg(call, i)?);
    }
    let mut input = ev.eval_vector(arg_required(call, 0)?)?;
    if ev.is_range_query {
        ev.warn(
            "sort is ineffective for range queries since results are always ordered by labels",
            pos,
        );
        return Ok(Evaluated::Vector(input));
    }
    if ev.grid.len() != 1 {
        return Ok(Evaluated::Vector(input));
    }
    let value = |s: &StepSeries| s.points.first().map_or(f64::NAN, |p| p.v);
    match call.name {
        // NaN sorts to the end either way.
        "sort" => insertion_sort(&mut input, |a, b| value_greater(value(b), value(a))),
        "sort_desc" => insertion_sort(&mut input, |a, b| value_less(value(b), value(a))),
        _ => {
            let descending = call.name == "sort_by_label_desc";
            input.sort_by(|a, b| {
                let mut order = Ordering::Equal;
                for name in &label_names {
                    let (x, y) = (
                        a.labels.get(name).unwrap_or(""),
                        b.labels.get(name).unwrap_or(""),
                    );
                    if x != y {
                        order = natural_cmp(x, y);
                        break;
                    }
                }
                if order == Ordering::Equal {
                    order = a.labels.cmp(&b.labels);
                }
                if descending { order.reverse() } else { order }
            });
        }
    }
    Ok(Evaluated::Vector(input))
}

/// Natural order: runs of digits compare as numbers, everything else as
/// text (the `natsort` order Prometheus uses).
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let start_i = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let start_j = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let x = trim_zeros(&a[start_i..i]);
            let y = trim_zeros(&b[start_j..j]);
            let order = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if order != Ordering::Equal {
                return order;
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    &digits[first..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers() {
        assert_eq!(natural_cmp("a2", "a10"), Ordering::Less);
        assert_eq!(natural_cmp("b", "a10"), Ordering::Greater);
        assert_eq!(natural_cmp("10", "9"), Ordering::Greater);
    }
}
