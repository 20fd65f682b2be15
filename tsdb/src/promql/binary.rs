//! Binary operators: arithmetic, comparisons (with and without `bool`) and
//! the set operators, between scalars and vectors, with `on`/`ignoring`,
//! `group_left`/`group_right` and `fill` vector matching.

use std::collections::HashMap;

use super::error::{Error, Result};
use super::eval::{Assembler, Elem, Evaluated, Evaluator, StepSeries, Stepper, is_metadata_label};
use super::parse::{BinOp, Binary, Cardinality, VectorMatching};
use crate::model::{Labels, METRIC_NAME};

pub(crate) fn eval(ev: &mut Evaluator<'_>, binary: &Binary, _pos: usize) -> Result<Evaluated> {
    let lhs = ev.eval(&binary.lhs)?;
    let rhs = ev.eval(&binary.rhs)?;
    match (lhs, rhs) {
        (Evaluated::Scalar(l), Evaluated::Scalar(r)) => {
            let values = l
                .iter()
                .zip(&r)
                .map(|(&a, &b)| scalar_op(binary.op, a, b))
                .collect();
            Ok(Evaluated::Scalar(values))
        }
        (Evaluated::Vector(vector), Evaluated::Scalar(scalars)) => Ok(Evaluated::Vector(
            vector_scalar(ev, binary, vector, &scalars, false),
        )),
        (Evaluated::Scalar(scalars), Evaluated::Vector(vector)) => Ok(Evaluated::Vector(
            vector_scalar(ev, binary, vector, &scalars, true),
        )),
        (Evaluated::Vector(l), Evaluated::Vector(r)) => {
            Ok(Evaluated::Vector(vector_vector(ev, binary, &l, &r)?))
        }
        _ => Err(Error::eval(
            "binary expression must contain only scalar and instant vector types",
        )),
    }
}

/// The result of `lhs op rhs` for floats, and whether a comparison holds.
fn float_op(op: BinOp, lhs: f64, rhs: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (lhs + rhs, true),
        BinOp::Sub => (lhs - rhs, true),
        BinOp::Mul => (lhs * rhs, true),
        BinOp::Div => (lhs / rhs, true),
        BinOp::Pow => (lhs.powf(rhs), true),
        // Go's math.Mod: the result has the sign of the dividend, like `%`.
        BinOp::Mod => (lhs % rhs, true),
        BinOp::Atan2 => (lhs.atan2(rhs), true),
        BinOp::Eq => (lhs, lhs == rhs),
        BinOp::Ne => (lhs, lhs != rhs),
        BinOp::Gt => (lhs, lhs > rhs),
        BinOp::Lt => (lhs, lhs < rhs),
        BinOp::Ge => (lhs, lhs >= rhs),
        BinOp::Le => (lhs, lhs <= rhs),
        // Set operators never reach element arithmetic.
        BinOp::And | BinOp::Or | BinOp::Unless => (lhs, false),
    }
}

/// Scalar-scalar operations; comparisons (which must use `bool`) give 0 or 1.
fn scalar_op(op: BinOp, lhs: f64, rhs: f64) -> f64 {
    let (value, keep) = float_op(op, lhs, rhs);
    if op.is_comparison() {
        if keep { 1.0 } else { 0.0 }
    } else {
        value
    }
}

/// Vector-scalar operations work series by series: labels never change.
fn vector_scalar(
    ev: &Evaluator<'_>,
    binary: &Binary,
    mut vector: Vec<StepSeries>,
    scalars: &[f64],
    scalar_on_left: bool,
) -> Vec<StepSeries> {
    let grid = ev.grid;
    let op = binary.op;
    for series in &mut vector {
        series.points.retain_mut(|point| {
            let scalar = scalars
                .get(grid.index(point.t))
                .copied()
                .unwrap_or(f64::NAN);
            let (l, r) = if scalar_on_left {
                (scalar, point.v)
            } else {
                (point.v, scalar)
            };
            let (mut value, keep) = float_op(op, l, r);
            // A comparison keeps the vector's value, whichever side it is on.
            if op.is_comparison() && scalar_on_left {
                value = r;
            }
            if binary.return_bool {
                point.v = if keep { 1.0 } else { 0.0 };
                return true;
            }
            point.v = value;
            keep
        });
        if op.changes_metric_schema() || binary.return_bool {
            series.drop_name = true;
        }
    }
    vector.retain(|s| !s.points.is_empty());
    vector
}

/// The matching signature of a series: the labels of `on(...)`, or all but
/// those of `ignoring(...)` and the metric name. (`__type__` and `__unit__`
/// take part: series of different types do not match.)
fn signature(labels: &Labels, matching: &VectorMatching) -> Labels {
    if matching.on {
        labels
            .builder()
            .retain(|l| matching.labels.iter().any(|n| *n == *l.name))
            .build()
    } else {
        labels
            .builder()
            .retain(|l| *l.name != *METRIC_NAME && !matching.labels.iter().any(|n| *n == *l.name))
            .build()
    }
}

/// Numbers signatures so that per-step matching works on integers.
fn signature_ordinals(
    lhs: &[StepSeries],
    rhs: &[StepSeries],
    matching: &VectorMatching,
) -> (Vec<usize>, Vec<usize>, Vec<Labels>) {
    let mut ordinals: HashMap<Labels, usize> = HashMap::new();
    let mut signatures = Vec::new();
    let mut number = |series: &[StepSeries]| -> Vec<usize> {
        series
            .iter()
            .map(|s| {
                let sig = signature(&s.labels, matching);
                *ordinals.entry(sig.clone()).or_insert_with(|| {
                    signatures.push(sig);
                    signatures.len() - 1
                })
            })
            .collect()
    };
    let l = number(lhs);
    let r = number(rhs);
    (l, r, signatures)
}

fn vector_vector(
    ev: &mut Evaluator<'_>,
    binary: &Binary,
    lhs: &[StepSeries],
    rhs: &[StepSeries],
) -> Result<Vec<StepSeries>> {
    let matching = &binary.matching;
    let (lhs_sigs, rhs_sigs, signatures) = signature_ordinals(lhs, rhs, matching);
    let grid = ev.grid;
    let mut assembler = Assembler::new(&grid);
    let mut lhs_stepper = Stepper::new(lhs);
    let mut rhs_stepper = Stepper::new(rhs);
    let (mut lhs_now, mut rhs_now) = (Vec::new(), Vec::new());
    let mut result_labels: HashMap<(usize, usize), Labels> = HashMap::new();
    let mut present = vec![false; signatures.len()];
    for t in grid.times() {
        ev.check()?;
        lhs_stepper.step(t, &mut lhs_now);
        rhs_stepper.step(t, &mut rhs_now);
        match binary.op {
            BinOp::And | BinOp::Unless => {
                present.iter_mut().for_each(|p| *p = false);
                for &(j, _) in &rhs_now {
                    present[rhs_sigs[j]] = true;
                }
                let keep_matched = binary.op == BinOp::And;
                for &(i, v) in &lhs_now {
                    if present[lhs_sigs[i]] == keep_matched {
                        assembler.push(t, elem(&lhs[i], v))?;
                    }
                }
            }
            BinOp::Or => {
                present.iter_mut().for_each(|p| *p = false);
                for &(i, v) in &lhs_now {
                    present[lhs_sigs[i]] = true;
                    assembler.push(t, elem(&lhs[i], v))?;
                }
                for &(j, v) in &rhs_now {
                    if !present[rhs_sigs[j]] {
                        assembler.push(t, elem(&rhs[j], v))?;
                    }
                }
            }
            _ => {
                let step = StepSides {
                    lhs,
                    rhs,
                    lhs_sigs: &lhs_sigs,
                    rhs_sigs: &rhs_sigs,
                    lhs_now: &lhs_now,
                    rhs_now: &rhs_now,
                };
                for e in match_step(binary, &step, &signatures, &mut result_labels)? {
                    assembler.push(t, e)?;
                }
            }
        }
    }
    Ok(assembler.finish())
}

fn elem(series: &StepSeries, v: f64) -> Elem {
    Elem {
        labels: series.labels.clone(),
        v,
        drop_name: series.drop_name,
    }
}

/// Both sides of a vector-vector operation at one step.
struct StepSides<'s> {
    lhs: &'s [StepSeries],
    rhs: &'s [StepSeries],
    lhs_sigs: &'s [usize],
    rhs_sigs: &'s [usize],
    lhs_now: &'s [(usize, f64)],
    rhs_now: &'s [(usize, f64)],
}

/// An operand of one element operation: a series at this step, or a fill
/// value standing in for a missing match.
#[derive(Clone, Copy)]
enum Operand {
    Series(usize, f64),
    Fill(f64),
}

/// Arithmetic and comparisons between vectors at one step, following
/// Prometheus's `VectorBinop`.
fn match_step(
    binary: &Binary,
    step: &StepSides<'_>,
    signatures: &[Labels],
    result_labels: &mut HashMap<(usize, usize), Labels>,
) -> Result<Vec<Elem>> {
    let matching = &binary.matching;
    let fill = matching.fill_lhs.is_some() || matching.fill_rhs.is_some();
    if (step.lhs_now.is_empty() && step.rhs_now.is_empty())
        || ((step.lhs_now.is_empty() || step.rhs_now.is_empty()) && !fill)
    {
        return Ok(Vec::new());
    }
    // For one-to-many matching the "one" side is the left: swap the sides
    // and swap back when computing values. As in Prometheus, the fill values
    // do not swap: `fill_right` always stands in for a missing "one" side.
    let swapped = matching.card == Cardinality::OneToMany;
    let (many, one, many_series, one_series, many_sigs, one_sigs, fill_one, fill_many) = if swapped
    {
        (
            step.rhs_now,
            step.lhs_now,
            step.rhs,
            step.lhs,
            step.rhs_sigs,
            step.lhs_sigs,
            matching.fill_rhs,
            matching.fill_lhs,
        )
    } else {
        (
            step.lhs_now,
            step.rhs_now,
            step.lhs,
            step.rhs,
            step.lhs_sigs,
            step.rhs_sigs,
            matching.fill_rhs,
            matching.fill_lhs,
        )
    };
    // The "one" side by signature; a duplicate is many-to-many.
    let mut one_by_sig: HashMap<usize, (usize, f64)> = HashMap::with_capacity(one.len());
    for &(j, v) in one {
        let sig = one_sigs[j];
        if let Some(&(earlier, _)) = one_by_sig.get(&sig) {
            let side = if swapped { "left" } else { "right" };
            let mut pair = [
                one_series[j].labels.to_string(),
                one_series[earlier].labels.to_string(),
            ];
            pair.sort();
            let group = match_labels(&one_series[j].labels, matching);
            return Err(Error::eval(format!(
                "found duplicate series for the match group {group} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                pair[0], pair[1]
            )));
        }
        one_by_sig.insert(sig, (j, v));
    }
    let mut matched: HashMap<usize, Vec<Labels>> = HashMap::new();
    let mut out = Vec::new();
    let apply = |many_op: Operand,
                 one_op: Operand,
                 sig: usize,
                 matched: &mut HashMap<usize, Vec<Labels>>,
                 result_labels: &mut HashMap<(usize, usize), Labels>,
                 out: &mut Vec<Elem>|
     -> Result<()> {
        let value = |o: Operand| match o {
            Operand::Series(_, v) | Operand::Fill(v) => v,
        };
        let (l, r) = if swapped {
            (value(one_op), value(many_op))
        } else {
            (value(many_op), value(one_op))
        };
        let (mut v, keep) = float_op(binary.op, l, r);
        if binary.return_bool {
            v = if keep { 1.0 } else { 0.0 };
        }
        let labels = result_metric(
            binary,
            many_op,
            one_op,
            many_series,
            one_series,
            &signatures[sig],
            result_labels,
        );
        let seen = matched.entry(sig).or_default();
        if matching.card == Cardinality::OneToOne {
            if !seen.is_empty() {
                return Err(Error::eval(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
            seen.push(Labels::empty());
        } else {
            if seen.contains(&labels) {
                return Err(Error::eval(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
            seen.push(labels.clone());
        }
        if !keep && !binary.return_bool {
            return Ok(());
        }
        // As in Prometheus, only `bool` marks the name for removal here;
        // arithmetic already removed it from the labels.
        out.push(Elem {
            labels,
            v,
            drop_name: binary.return_bool,
        });
        Ok(())
    };
    for &(i, v) in many {
        let sig = many_sigs[i];
        let one_op = match one_by_sig.get(&sig) {
            Some(&(j, w)) => Operand::Series(j, w),
            None => match fill_one {
                Some(f) => Operand::Fill(f),
                None => continue,
            },
        };
        apply(
            Operand::Series(i, v),
            one_op,
            sig,
            &mut matched,
            result_labels,
            &mut out,
        )?;
    }
    if let Some(f) = fill_many {
        let mut unmatched: Vec<(usize, (usize, f64))> = one_by_sig
            .iter()
            .filter(|(sig, _)| !matched.contains_key(sig))
            .map(|(&sig, &one)| (sig, one))
            .collect();
        unmatched.sort_by_key(|&(_, (j, _))| j);
        for (sig, (j, w)) in unmatched {
            apply(
                Operand::Fill(f),
                Operand::Series(j, w),
                sig,
                &mut matched,
                result_labels,
                &mut out,
            )?;
        }
    }
    Ok(out)
}

/// The labels of a match group as Prometheus prints them in errors.
fn match_labels(labels: &Labels, matching: &VectorMatching) -> Labels {
    if matching.on {
        labels
            .builder()
            .retain(|l| matching.labels.iter().any(|n| *n == *l.name))
            .build()
    } else {
        labels
            .builder()
            .retain(|l| *l.name != *METRIC_NAME && !matching.labels.iter().any(|n| *n == *l.name))
            .build()
    }
}

/// The labels of a result element: those of the "many" side, reduced to
/// the matching labels for one-to-one matching, plus the `group_x` labels
/// taken from the "one" side.
#[allow(clippy::too_many_arguments)]
fn result_metric(
    binary: &Binary,
    many_op: Operand,
    one_op: Operand,
    many_series: &[StepSeries],
    one_series: &[StepSeries],
    signature: &Labels,
    cache: &mut HashMap<(usize, usize), Labels>,
) -> Labels {
    let matching = &binary.matching;
    let key = match (many_op, one_op) {
        (Operand::Series(i, _), Operand::Series(j, _)) => Some((i, j)),
        _ => None,
    };
    if let Some(key) = key
        && let Some(labels) = cache.get(&key)
    {
        return labels.clone();
    }
    // A fill value stands in for a series with just the matching labels.
    let many_labels = match many_op {
        Operand::Series(i, _) => many_series[i].labels.clone(),
        Operand::Fill(_) => signature.clone(),
    };
    let one_labels = match one_op {
        Operand::Series(j, _) => one_series[j].labels.clone(),
        Operand::Fill(_) => signature.clone(),
    };
    let mut builder = many_labels.builder();
    if binary.op.changes_metric_schema() {
        builder = builder.retain(|l| !is_metadata_label(&l.name));
    }
    if matching.card == Cardinality::OneToOne {
        if matching.on {
            builder = builder.retain(|l| matching.labels.iter().any(|n| *n == *l.name));
        } else {
            builder = builder.retain(|l| !matching.labels.iter().any(|n| *n == *l.name));
        }
    }
    for name in &matching.include {
        match one_labels.get(name) {
            Some(v) => builder.set_mut(name.as_str(), v),
            None => builder.remove_mut(name),
        }
    }
    let labels = builder.build();
    if let Some(key) = key {
        cache.insert(key, labels.clone());
    }
    labels
}
