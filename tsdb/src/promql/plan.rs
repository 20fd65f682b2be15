//! Planning: which samples the query needs. Every selector gets the time
//! range its evaluation will look at (query range, offsets, `@`, range
//! selectors, enclosing subqueries, the lookback delta); one querier spanning
//! all of them is opened, and each selector's series are loaded into memory.

use super::error::{Error, Result};
use super::parse::{At, Expr, ExprKind, Extension, Selector, Subquery};
use super::value::Point;
use crate::model::{Labels, Matcher, TimeRange};
use crate::storage::{Queryable, SelectHints, Series};

/// The times of the top-level query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryContext {
    pub start_ms: i64,
    pub end_ms: i64,
    /// 0 for an instant query.
    pub step_ms: i64,
    pub lookback_ms: i64,
}

impl QueryContext {
    /// The time an `@` modifier pins to; `start()` and `end()` are those of
    /// the top-level query, also inside subqueries.
    pub(crate) fn resolve_at(&self, at: At) -> i64 {
        match at {
            At::Time(t) => t,
            At::Start => self.start_ms,
            At::End => self.end_ms,
        }
    }
}

/// One series as loaded from storage: all its samples in the selector's
/// time range, staleness markers included.
#[derive(Debug, Clone)]
pub(crate) struct LoadedSeries {
    pub labels: Labels,
    pub points: Vec<Point>,
    /// The start timestamp of each point (0: unknown); empty when the
    /// storage knows none, which is the common case.
    pub start_timestamps: Vec<i64>,
}

/// The series of every selector, indexed by selector id.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub series: Vec<Vec<LoadedSeries>>,
    pub warnings: Vec<String>,
}

/// What one selector needs.
#[derive(Debug, Clone)]
struct SelectorPlan<'e> {
    id: usize,
    matchers: &'e [Matcher],
    hints: SelectHints,
}

/// An enclosing subquery on the path from the root to a selector.
#[derive(Debug, Clone, Copy)]
struct SubqueryFrame {
    offset_ms: i64,
    range_ms: i64,
    at: Option<i64>,
    step_ms: i64,
}

/// Plans and loads the series of every selector in `expr`.
///
/// # Errors
/// [`Error::Storage`] when the querier fails.
pub(crate) fn load(
    expr: &Expr,
    context: &QueryContext,
    queryable: &dyn Queryable,
) -> Result<Loaded> {
    let mut plans = Vec::new();
    collect(expr, context, &mut Vec::new(), None, &mut plans);
    let mut loaded = Loaded {
        series: vec![Vec::new(); plans.len()],
        warnings: Vec::new(),
    };
    if plans.is_empty() {
        return Ok(loaded);
    }
    let start = plans.iter().map(|p| p.hints.start).min().unwrap_or(0);
    let end = plans.iter().map(|p| p.hints.end).max().unwrap_or(0);
    let querier = queryable.querier(TimeRange::new(start, end))?;
    for plan in &plans {
        let set = querier.select(plan.matchers, &plan.hints)?;
        loaded.warnings.extend(set.warnings);
        let mut series_list = decode_all(set.series, &plan.hints)?;
        // Queriers return series sorted by labels; keep that promise even for
        // one that does not, since result order depends on it.
        series_list.sort_by(|a, b| a.labels.cmp(&b.labels));
        if let Some(slot) = loaded.series.get_mut(plan.id) {
            *slot = series_list;
        } else {
            return Err(Error::eval("internal error: selector numbering"));
        }
    }
    Ok(loaded)
}

/// Below this many series a selector's samples are decoded on the calling
/// thread; above it, split across the cores (decoding is most of the time
/// of a query over many series, and series decode independently).
const PARALLEL_DECODE_MIN_SERIES: usize = 64;

/// The most threads one selector's decoding uses.
const MAX_DECODE_THREADS: usize = 4;

/// Decodes the samples of `series` within the hints' range, in order.
fn decode_all(series: Vec<Series>, hints: &SelectHints) -> Result<Vec<LoadedSeries>> {
    let threads = if series.len() >= PARALLEL_DECODE_MIN_SERIES {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_DECODE_THREADS)
    } else {
        1
    };
    if threads <= 1 {
        return Ok(decode_run(series, hints));
    }
    let per_thread = series.len().div_ceil(threads);
    let mut parts: Vec<Vec<Series>> = Vec::with_capacity(threads);
    let mut rest = series.into_iter();
    loop {
        let part: Vec<Series> = rest.by_ref().take(per_thread).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return Ok(Vec::new());
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .map(|part| scope.spawn(move || decode_run(part, hints)))
            .collect();
        let mut out = decode_run(first, hints);
        for handle in handles {
            let decoded = handle
                .join()
                .map_err(|_| Error::eval("internal error: decoding thread failed"))?;
            out.extend(decoded);
        }
        Ok(out)
    })
}

/// Decodes `series` one after the other on this thread.
fn decode_run(series: Vec<Series>, hints: &SelectHints) -> Vec<LoadedSeries> {
    let mut out = Vec::with_capacity(series.len());
    // Series of one selector tend to have as many samples as each other:
    // size each buffer like the previous one.
    let mut capacity = 0;
    for mut series in series {
        let mut points = Vec::with_capacity(capacity);
        let mut start_timestamps = Vec::new();
        series
            .samples
            .load_range(hints.start, hints.end, &mut points, &mut start_timestamps);
        capacity = points.len();
        out.push(LoadedSeries {
            labels: series.labels,
            points,
            start_timestamps,
        });
    }
    out
}

/// The function or aggregation a selector feeds, for the select hints.
fn collect<'e>(
    expr: &'e Expr,
    context: &QueryContext,
    path: &mut Vec<SubqueryFrame>,
    func: Option<&'static str>,
    plans: &mut Vec<SelectorPlan<'e>>,
) {
    match &expr.kind {
        ExprKind::Number(_) | ExprKind::String(_) => {}
        ExprKind::Selector(selector) => plans.push(plan_selector(
            selector,
            &selector.matchers,
            0,
            context,
            path,
            func,
        )),
        ExprKind::Range { selector, range_ms } => plans.push(plan_selector(
            selector,
            &selector.matchers,
            *range_ms,
            context,
            path,
            func,
        )),
        ExprKind::Info(info) => {
            collect(&info.expr, context, path, func, plans);
            // The info series are read at the reference time of the first
            // selector of the argument: through its subqueries' `@` and
            // offsets (not their ranges) and its own `@` and offset.
            let mut info_path = path.clone();
            let mut selector = info.info_selector.clone();
            if let Some((subqueries, first)) = first_selector(&info.expr) {
                info_path.extend(subqueries.iter().map(|sq| SubqueryFrame {
                    offset_ms: sq.offset_ms,
                    range_ms: 0,
                    at: sq.at.map(|at| context.resolve_at(at)),
                    step_ms: sq.step_ms.unwrap_or(0),
                }));
                selector.offset_ms = first.offset_ms;
                selector.at = first.at;
            }
            plans.push(plan_selector(
                &selector,
                &info.info_selector.matchers,
                0,
                context,
                &info_path,
                Some("info"),
            ));
        }
        ExprKind::Subquery(sq) => {
            path.push(SubqueryFrame {
                offset_ms: sq.offset_ms,
                range_ms: sq.range_ms,
                at: sq.at.map(|at| context.resolve_at(at)),
                step_ms: sq.step_ms.unwrap_or(0),
            });
            collect(&sq.expr, context, path, func, plans);
            path.pop();
        }
        ExprKind::Paren(inner) | ExprKind::Negate(inner) => {
            collect(inner, context, path, func, plans)
        }
        ExprKind::Binary(b) => {
            collect(&b.lhs, context, path, None, plans);
            collect(&b.rhs, context, path, None, plans);
        }
        ExprKind::Aggregate(a) => {
            if let Some(param) = &a.param {
                collect(param, context, path, Some(a.op.name()), plans);
            }
            collect(&a.expr, context, path, Some(a.op.name()), plans);
        }
        ExprKind::Call(call) => {
            for arg in &call.args {
                collect(arg, context, path, Some(call.name), plans);
            }
        }
    }
}

/// The first selector of `expr` in source order and the subqueries
/// enclosing it, outermost first.
pub(crate) fn first_selector(expr: &Expr) -> Option<(Vec<&Subquery>, &Selector)> {
    match &expr.kind {
        ExprKind::Number(_) | ExprKind::String(_) => None,
        ExprKind::Selector(selector) | ExprKind::Range { selector, .. } => {
            Some((Vec::new(), selector))
        }
        ExprKind::Subquery(sq) => first_selector(&sq.expr).map(|(mut path, selector)| {
            path.insert(0, sq.as_ref());
            (path, selector)
        }),
        ExprKind::Paren(inner) | ExprKind::Negate(inner) => first_selector(inner),
        ExprKind::Binary(b) => first_selector(&b.lhs).or_else(|| first_selector(&b.rhs)),
        ExprKind::Aggregate(a) => {
            first_selector(&a.expr).or_else(|| a.param.as_ref().and_then(first_selector))
        }
        ExprKind::Call(call) => call.args.iter().find_map(first_selector),
        ExprKind::Info(info) => first_selector(&info.expr),
    }
}

fn plan_selector<'e>(
    selector: &Selector,
    matchers: &'e [Matcher],
    range_ms: i64,
    context: &QueryContext,
    path: &[SubqueryFrame],
    func: Option<&'static str>,
) -> SelectorPlan<'e> {
    let (mut start, mut end) = (context.start_ms, context.end_ms);
    let (mut subquery_offset, mut subquery_range, mut subquery_at) = (0i64, 0i64, None);
    for frame in path {
        subquery_offset = subquery_offset.saturating_add(frame.offset_ms);
        subquery_range = subquery_range.saturating_add(frame.range_ms);
        if let Some(at) = frame.at {
            // An `@` on a subquery restarts the arithmetic from its time.
            subquery_offset = frame.offset_ms;
            subquery_range = frame.range_ms;
            subquery_at = Some(at);
        }
    }
    if let Some(at) = subquery_at {
        start = at;
        end = at;
    }
    if let Some(at) = selector.at {
        let at = context.resolve_at(at);
        start = at;
        end = at;
    } else {
        start = start
            .saturating_sub(subquery_offset)
            .saturating_sub(subquery_range);
        end = end.saturating_sub(subquery_offset);
    }
    let lookback = context.lookback_ms;
    let smoothed = selector.extension == Some(Extension::Smoothed);
    if range_ms == 0 {
        // Samples exactly a lookback delta old are out of reach.
        start = start.saturating_sub(lookback - 1);
    } else if selector.extension.is_some() {
        // Anchored and smoothed windows also look at the last sample
        // before their start.
        start = start.saturating_sub(lookback.saturating_add(range_ms) - 1);
    } else {
        // Range selectors are left-open.
        start = start.saturating_sub(range_ms - 1);
    }
    if smoothed {
        // Smoothing interpolates towards the next sample, too.
        end = end.saturating_add(lookback);
    }
    start = start.saturating_sub(selector.offset_ms);
    end = end.saturating_sub(selector.offset_ms);
    let step_ms = path
        .iter()
        .rev()
        .map(|f| f.step_ms)
        .find(|&s| s > 0)
        .unwrap_or(context.step_ms);
    SelectorPlan {
        id: selector.id,
        matchers,
        hints: SelectHints {
            start,
            end,
            step_ms,
            range_ms,
            func: func.map(str::to_string),
            series_only: false,
        },
    }
}
