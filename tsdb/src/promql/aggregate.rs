//! Aggregation operators (`sum`, `avg`, `count`, `min`, `max`, `group`,
//! `stddev`, `stdvar`, `quantile`, `count_values`, `topk`, `bottomk`,
//! `limitk`, `limit_ratio`) with `by`/`without`.

use std::collections::HashMap;

use super::annotations::format_go_g;
use super::error::{Error, Result};
use super::eval::{Assembler, Elem, Evaluated, Evaluator, StepSeries, Stepper};
use super::parse::{AggOp, Aggregate, ExprKind};
use crate::model::{Labels, METRIC_NAME};

/// Go's `int64` bounds as floats, for the `k` parameter checks.
const MAX_INT64: f64 = 9_223_372_036_854_774_784.0;
const MIN_INT64: f64 = -9_223_372_036_854_775_808.0;

pub(crate) fn eval(ev: &mut Evaluator<'_>, agg: &Aggregate) -> Result<Evaluated> {
    if agg.op == AggOp::CountValues {
        return count_values(ev, agg);
    }
    let params = match &agg.param {
        Some(param) => Some(ev.eval_scalar(param)?),
        None => None,
    };
    let input = ev.eval_vector(&agg.expr)?;
    let param_pos = agg.param.as_ref().map_or(0, |p| p.pos);
    let params = params.unwrap_or_default();
    match agg.op {
        AggOp::Topk | AggOp::Bottomk | AggOp::Limitk | AggOp::LimitRatio => {
            if let Some(empty) = check_k_params(ev, agg.op, &params, param_pos)? {
                return Ok(empty);
            }
            select_k(ev, agg, &input, &params)
        }
        _ => {
            if agg.op == AggOp::Quantile {
                warn_about_quantiles(ev, &params, param_pos);
            }
            aggregate_values(ev, agg, &input, &params)
        }
    }
}

/// The output labels (and grouping key) of a series.
fn group_labels(labels: &Labels, agg: &Aggregate) -> Labels {
    if agg.without {
        labels
            .builder()
            .retain(|l| {
                *l.name != *METRIC_NAME
                    && agg
                        .grouping
                        .binary_search_by(|g| (**g).cmp(&*l.name))
                        .is_err()
            })
            .build()
    } else if agg.grouping.is_empty() {
        Labels::empty()
    } else {
        labels
            .builder()
            .retain(|l| {
                agg.grouping
                    .binary_search_by(|g| (**g).cmp(&*l.name))
                    .is_ok()
            })
            .build()
    }
}

/// Groups input series: the group of each series, and each group's labels
/// in order of first appearance.
fn groups_of(input: &[StepSeries], agg: &Aggregate) -> (Vec<usize>, Vec<Labels>) {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut labels = Vec::new();
    let group_of = input
        .iter()
        .map(|s| {
            let key = group_labels(&s.labels, agg);
            *index.entry(key.clone()).or_insert_with(|| {
                labels.push(key);
                labels.len() - 1
            })
        })
        .collect();
    (group_of, labels)
}

/// Adds `inc` to a Kahan-Neumaier compensated sum.
pub(crate) fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// The running state of one group at one step.
#[derive(Debug, Clone, Default)]
struct Group {
    seen: bool,
    value: f64,
    mean: f64,
    kahan_c: f64,
    count: f64,
    incremental_mean: bool,
    drop_name: bool,
    values: Vec<f64>,
}

fn aggregate_values(
    ev: &mut Evaluator<'_>,
    agg: &Aggregate,
    input: &[StepSeries],
    params: &[f64],
) -> Result<Evaluated> {
    let (group_of, labels) = groups_of(input, agg);
    let grid = ev.grid;
    let mut out: Vec<StepSeries> = labels
        .into_iter()
        .map(|l| StepSeries::new(l, false))
        .collect();
    let mut groups = vec![Group::default(); out.len()];
    let mut stepper = Stepper::new(input);
    let mut now = Vec::new();
    for (step, t) in grid.times().enumerate() {
        ev.check()?;
        stepper.step(t, &mut now);
        for g in &mut groups {
            g.seen = false;
        }
        for &(i, f) in &now {
            let group = &mut groups[group_of[i]];
            if !group.seen {
                *group = Group {
                    seen: true,
                    value: f,
                    mean: f,
                    count: 1.0,
                    drop_name: input[i].drop_name,
                    ..Group::default()
                };
                match agg.op {
                    AggOp::Stddev | AggOp::Stdvar => {
                        group.value = if f.is_nan() || f.is_infinite() {
                            f64::NAN
                        } else {
                            0.0
                        };
                    }
                    AggOp::Quantile => group.values = vec![f],
                    AggOp::Group => group.value = 1.0,
                    _ => {}
                }
                continue;
            }
            group.drop_name |= input[i].drop_name;
            add_to_group(agg.op, group, f);
        }
        let param = params.get(step).copied().unwrap_or(f64::NAN);
        for (g, series) in groups.iter_mut().zip(out.iter_mut()) {
            if !g.seen {
                continue;
            }
            let value = match agg.op {
                AggOp::Avg if g.incremental_mean => g.mean + g.kahan_c,
                AggOp::Avg => g.value / g.count + g.kahan_c / g.count,
                AggOp::Count => g.count,
                AggOp::Stdvar => g.value / g.count,
                AggOp::Stddev => (g.value / g.count).sqrt(),
                AggOp::Quantile => quantile(param, &mut g.values),
                AggOp::Sum => g.value + g.kahan_c,
                _ => g.value,
            };
            series.points.push(crate::model::Sample::new(t, value));
            series.drop_name = g.drop_name;
        }
    }
    out.retain(|s| !s.points.is_empty());
    Ok(Evaluated::Vector(out))
}

fn add_to_group(op: AggOp, group: &mut Group, f: f64) {
    match op {
        AggOp::Sum => (group.value, group.kahan_c) = kahan_sum_inc(f, group.value, group.kahan_c),
        AggOp::Avg => {
            group.count += 1.0;
            if !group.incremental_mean {
                let (sum, c) = kahan_sum_inc(f, group.value, group.kahan_c);
                if !sum.is_infinite() {
                    group.value = sum;
                    group.kahan_c = c;
                    return;
                }
                // The sum would overflow: continue with an incremental mean.
                group.incremental_mean = true;
                group.mean = group.value / (group.count - 1.0);
                group.kahan_c /= group.count - 1.0;
            }
            let q = (group.count - 1.0) / group.count;
            (group.mean, group.kahan_c) =
                kahan_sum_inc(f / group.count, q * group.mean, q * group.kahan_c);
        }
        AggOp::Max if group.value < f || group.value.is_nan() => group.value = f,
        AggOp::Min if group.value > f || group.value.is_nan() => group.value = f,
        AggOp::Count => group.count += 1.0,
        AggOp::Stddev | AggOp::Stdvar => {
            group.count += 1.0;
            let delta = f - group.mean;
            group.mean += delta / group.count;
            group.value += delta * (f - group.mean);
        }
        AggOp::Quantile => group.values.push(f),
        _ => {}
    }
}

/// The `q`-quantile of `values` (sorted in place), interpolating between
/// neighbours; NaN for no values or a NaN `q`, ±Inf for `q` out of [0, 1].
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as Prometheus's value order puts it.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn warn_about_quantiles(ev: &mut Evaluator<'_>, params: &[f64], pos: usize) {
    if params.iter().any(|q| q.is_nan()) {
        ev.warn(
            format!(
                "quantile value should be between 0 and 1, got {}",
                format_go_g(f64::NAN)
            ),
            pos,
        );
    }
    let max = params
        .iter()
        .copied()
        .filter(|q| !q.is_nan())
        .fold(f64::NEG_INFINITY, f64::max);
    let min = params
        .iter()
        .copied()
        .filter(|q| !q.is_nan())
        .fold(f64::INFINITY, f64::min);
    if max > 1.0 {
        ev.warn(
            format!(
                "quantile value should be between 0 and 1, got {}",
                format_go_g(max)
            ),
            pos,
        );
    }
    if min < 0.0 {
        ev.warn(
            format!(
                "quantile value should be between 0 and 1, got {}",
                format_go_g(min)
            ),
            pos,
        );
    }
}

/// Validates the parameter of `topk` and friends over all steps. Returns an
/// empty result when no step can select anything.
fn check_k_params(
    ev: &mut Evaluator<'_>,
    op: AggOp,
    params: &[f64],
    pos: usize,
) -> Result<Option<Evaluated>> {
    let max =
        params.iter().copied().fold(
            f64::NEG_INFINITY,
            |a, b| if b > a || a.is_nan() { b } else { a },
        );
    let min = params.iter().copied().fold(
        f64::INFINITY,
        |a, b| if b < a || a.is_nan() { b } else { a },
    );
    let any_nan = params.iter().any(|p| p.is_nan());
    if op == AggOp::LimitRatio {
        if !any_nan && max == 0.0 && min == 0.0 {
            return Ok(Some(Evaluated::Vector(Vec::new())));
        }
        if any_nan {
            return Err(Error::eval("Ratio value is NaN"));
        }
        if max > 1.0 {
            ev.warn(
                format!(
                    "ratio value should be between -1 and 1, got {}, capping to {}",
                    format_go_g(max),
                    format_go_g(1.0)
                ),
                pos,
            );
        }
        if min < -1.0 {
            ev.warn(
                format!(
                    "ratio value should be between -1 and 1, got {}, capping to {}",
                    format_go_g(min),
                    format_go_g(-1.0)
                ),
                pos,
            );
        }
        return Ok(None);
    }
    if max < 1.0 && !any_nan {
        return Ok(Some(Evaluated::Vector(Vec::new())));
    }
    if any_nan {
        return Err(Error::eval("Parameter value is NaN"));
    }
    if min <= MIN_INT64 {
        return Err(Error::eval(format!(
            "Scalar value {} underflows int64",
            format_go_g(min)
        )));
    }
    if max >= MAX_INT64 {
        return Err(Error::eval(format!(
            "Scalar value {} overflows int64",
            format_go_g(max)
        )));
    }
    Ok(None)
}

/// An element of a `topk`/`bottomk`/`limitk` selection.
#[derive(Debug, Clone)]
struct Picked {
    series: usize,
    v: f64,
}

/// A binary heap with Go's `container/heap` algorithm, so that ties are
/// broken exactly as Prometheus breaks them.
struct GoHeap {
    items: Vec<Picked>,
    less: fn(f64, f64) -> bool,
}

impl GoHeap {
    fn less(&self, i: usize, j: usize) -> bool {
        (self.less)(self.items[i].v, self.items[j].v)
    }

    fn push(&mut self, item: Picked) {
        self.items.push(item);
        let mut j = self.items.len() - 1;
        while j > 0 {
            let i = (j - 1) / 2;
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    /// Restores the heap after the root changed.
    fn fix_root(&mut self) {
        let n = self.items.len();
        let mut i = 0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            let j2 = j1 + 1;
            if j2 < n && self.less(j2, j1) {
                j = j2;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
    }

    /// Sorts with the reverse of the heap order, as `sort.Sort(sort.Reverse)`
    /// does; Go sorts short slices by insertion, which this reproduces.
    fn into_sorted_reverse(mut self) -> Vec<Picked> {
        let less = self.less;
        let reverse_less = |a: &Picked, b: &Picked| less(b.v, a.v);
        insertion_sort(&mut self.items, reverse_less);
        self.items
    }
}

/// Go's insertion sort (used by `sort.Sort` for up to 12 elements); longer
/// inputs fall back to a stable sort with the same order.
pub(crate) fn insertion_sort<T>(items: &mut [T], less: impl Fn(&T, &T) -> bool) {
    if items.len() > 12 {
        items.sort_by(|a, b| {
            if less(a, b) {
                std::cmp::Ordering::Less
            } else if less(b, a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        return;
    }
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && less(&items[j], &items[j - 1]) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// Prometheus's value order for `topk` heaps: NaN is the smallest.
pub(crate) fn value_less(a: f64, b: f64) -> bool {
    a.is_nan() || a < b
}

/// Prometheus's reverse value order for `bottomk` heaps: NaN is the largest.
pub(crate) fn value_greater(a: f64, b: f64) -> bool {
    a.is_nan() || a > b
}

fn select_k(
    ev: &mut Evaluator<'_>,
    agg: &Aggregate,
    input: &[StepSeries],
    params: &[f64],
) -> Result<Evaluated> {
    let (group_of, labels) = groups_of(input, agg);
    let grid = ev.grid;
    let mut assembler = Assembler::new(&grid);
    let mut stepper = Stepper::new(input);
    let mut now = Vec::new();
    let ratio_offsets: Vec<f64> = if agg.op == AggOp::LimitRatio {
        input.iter().map(|s| ratio_offset(&s.labels)).collect()
    } else {
        Vec::new()
    };
    for (step, t) in grid.times().enumerate() {
        ev.check()?;
        stepper.step(t, &mut now);
        let param = params.get(step).copied().unwrap_or(f64::NAN);
        let k = (param as i64).min(input.len() as i64);
        let ratio = param.clamp(-1.0, 1.0);
        if agg.op != AggOp::LimitRatio && k < 1 {
            continue;
        }
        if agg.op == AggOp::LimitRatio && param == 0.0 {
            continue;
        }
        let less = if agg.op == AggOp::Bottomk {
            value_greater
        } else {
            value_less
        };
        let mut heaps: Vec<Option<GoHeap>> = (0..labels.len()).map(|_| None).collect();
        for &(i, v) in &now {
            let heap = heaps[group_of[i]].get_or_insert_with(|| GoHeap {
                items: Vec::new(),
                less,
            });
            let item = Picked { series: i, v };
            match agg.op {
                AggOp::Topk | AggOp::Bottomk => {
                    if (heap.items.len() as i64) < k {
                        heap.push(item);
                    } else if let Some(root) = heap.items.first() {
                        let replace = if agg.op == AggOp::Topk {
                            root.v < v || (root.v.is_nan() && !v.is_nan())
                        } else {
                            root.v > v || (root.v.is_nan() && !v.is_nan())
                        };
                        if replace {
                            heap.items[0] = item;
                            if k > 1 {
                                heap.fix_root();
                            }
                        }
                    }
                }
                AggOp::Limitk => {
                    if (heap.items.len() as i64) < k {
                        heap.push(item);
                    }
                }
                _ => {
                    if ratio_allows(ratio, ratio_offsets[i]) {
                        heap.push(item);
                    }
                }
            }
        }
        for heap in heaps.into_iter().flatten() {
            let items = match agg.op {
                AggOp::Topk | AggOp::Bottomk => heap.into_sorted_reverse(),
                _ => heap.items,
            };
            for picked in items {
                let series = &input[picked.series];
                assembler.push(
                    t,
                    Elem {
                        labels: series.labels.clone(),
                        v: picked.v,
                        drop_name: series.drop_name,
                    },
                )?;
            }
        }
    }
    Ok(Evaluated::Vector(assembler.finish()))
}

/// `limit_ratio` keeps a series when its deterministic offset in [0, 1)
/// falls inside the ratio: below it for a positive ratio, at or above
/// `1 + ratio` for a negative one.
fn ratio_allows(ratio: f64, offset: f64) -> bool {
    (ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio)
}

/// The sampling offset of a series: its Prometheus label hash scaled to
/// [0, 1], so that the same series is always picked.
fn ratio_offset(labels: &Labels) -> f64 {
    prometheus_labels_hash(labels) as f64 / u64::MAX as f64
}

/// Prometheus's `Labels.Hash()`: xxHash64 of `name\xffvalue\xff...`.
pub(crate) fn prometheus_labels_hash(labels: &Labels) -> u64 {
    let mut bytes = Vec::with_capacity(labels.len() * 16);
    for label in labels {
        bytes.extend_from_slice(label.name.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(label.value.as_bytes());
        bytes.push(0xff);
    }
    xxhash64(&bytes)
}

/// xxHash64 with seed 0.
fn xxhash64(data: &[u8]) -> u64 {
    const P1: u64 = 11_400_714_785_074_694_791;
    const P2: u64 = 14_029_467_366_897_019_727;
    const P3: u64 = 1_609_587_929_392_839_161;
    const P4: u64 = 9_650_029_242_287_828_579;
    const P5: u64 = 2_870_177_450_012_600_261;
    fn round(acc: u64, input: u64) -> u64 {
        acc.wrapping_add(input.wrapping_mul(P2))
            .rotate_left(31)
            .wrapping_mul(P1)
    }
    fn merge(acc: u64, val: u64) -> u64 {
        (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
    }
    fn u64_at(data: &[u8], i: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[i..i + 8]);
        u64::from_le_bytes(b)
    }
    fn u32_at(data: &[u8], i: usize) -> u64 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&data[i..i + 4]);
        u64::from(u32::from_le_bytes(b))
    }
    let len = data.len();
    let mut i = 0;
    let mut h;
    if len >= 32 {
        let mut v1 = P1.wrapping_add(P2);
        let mut v2 = P2;
        let mut v3 = 0u64;
        let mut v4 = 0u64.wrapping_sub(P1);
        while i + 32 <= len {
            v1 = round(v1, u64_at(data, i));
            v2 = round(v2, u64_at(data, i + 8));
            v3 = round(v3, u64_at(data, i + 16));
            v4 = round(v4, u64_at(data, i + 24));
            i += 32;
        }
        h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        h = merge(h, v1);
        h = merge(h, v2);
        h = merge(h, v3);
        h = merge(h, v4);
    } else {
        h = P5;
    }
    h = h.wrapping_add(len as u64);
    while i + 8 <= len {
        h ^= round(0, u64_at(data, i));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        i += 8;
    }
    if i + 4 <= len {
        h ^= u32_at(data, i).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        i += 4;
    }
    while i < len {
        h ^= u64::from(data[i]).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
        i += 1;
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^= h >> 32;
    h
}

/// `count_values`: one output series per distinct value in each group.
fn count_values(ev: &mut Evaluator<'_>, agg: &Aggregate) -> Result<Evaluated> {
    let label = match agg.param.as_ref().map(|p| &p.unparen().kind) {
        Some(ExprKind::String(s)) => s.clone(),
        _ => return Err(Error::eval("count_values requires a string parameter")),
    };
    if !super::functions::is_valid_label_name(&label) {
        return Err(Error::eval(format!("invalid label name {label:?}")));
    }
    let input = ev.eval_vector(&agg.expr)?;
    let mut grouping_agg = agg.clone();
    if !agg.without {
        grouping_agg.grouping.push(label.clone());
        grouping_agg.grouping.sort();
        grouping_agg.grouping.dedup();
    }
    let grid = ev.grid;
    let mut assembler = Assembler::new(&grid);
    let mut stepper = Stepper::new(&input);
    let mut now = Vec::new();
    for t in grid.times() {
        ev.check()?;
        stepper.step(t, &mut now);
        let mut counts: Vec<(Labels, f64)> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for &(i, v) in &now {
            let with_value = input[i]
                .labels
                .builder()
                .set(label.as_str(), format_value_label(v))
                .build();
            let key = group_labels(&with_value, &grouping_agg);
            match index.get(&key) {
                Some(&g) => counts[g].1 += 1.0,
                None => {
                    index.insert(key.clone(), counts.len());
                    counts.push((key, 1.0));
                }
            }
        }
        for (labels, count) in counts {
            assembler.push(
                t,
                Elem {
                    labels,
                    v: count,
                    drop_name: false,
                },
            )?;
        }
    }
    Ok(Evaluated::Vector(assembler.finish()))
}

/// A float as Go's `strconv.FormatFloat(v, 'f', -1, 64)` writes it.
pub(crate) fn format_value_label(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxhash64_matches_reference_vectors() {
        assert_eq!(xxhash64(b""), 0xef46_db37_51d8_e999);
        assert_eq!(xxhash64(b"a"), 0xd24e_c4f1_a98c_6e5b);
        assert_eq!(
            xxhash64(b"Nobody inspects the spammish repetition"),
            0xfbcea83c8a378bf1
        );
    }

    #[test]
    fn quantile_interpolates() {
        let mut values = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(0.5, &mut values), 2.5);
        assert_eq!(quantile(0.0, &mut values), 1.0);
        assert!(quantile(f64::NAN, &mut values).is_nan());
        assert_eq!(quantile(2.0, &mut values), f64::INFINITY);
    }

    #[test]
    fn kahan_sum_keeps_small_terms() {
        let (mut sum, mut c) = (0.0, 0.0);
        for v in [1e100, 1.0, -1e100] {
            (sum, c) = kahan_sum_inc(v, sum, c);
        }
        assert_eq!(sum + c, 1.0);
    }
}
