//! Evaluation. Every expression is evaluated over a grid of steps (one step
//! for an instant query) into an [`Evaluated`] value: scalars hold one value
//! per step, vectors hold series whose points sit on the steps. Functions
//! that map samples one by one work series by series; operators that combine
//! samples of different series (aggregations, vector matching) walk the grid
//! step by step with a [`Stepper`] and reassemble series with an
//! [`Assembler`].
//!
//! The `__name__` label is removed lazily, as Prometheus 3 does ("delayed
//! name removal"): operations that would drop it only mark the series
//! (`drop_name`), and the marks are applied when the result leaves the
//! engine, so `label_replace` and friends can still read the name.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use super::CancelHandle;
use super::annotations::{Annotations, position_suffix};
use super::error::{Error, Result};
use super::parse::{Expr, ExprKind, Extension, Selector, Subquery};
use super::plan::{LoadedSeries, QueryContext};
use super::value::{Matrix, Point, Sample, Scalar, Series, StringValue, Value};
use crate::model::{Labels, is_stale_nan};

/// The limits a query runs under.
#[derive(Debug)]
pub(crate) struct Limits {
    pub deadline: Option<Instant>,
    pub cancel: CancelHandle,
    pub max_samples: usize,
}

impl Limits {
    pub(crate) fn check(&self, phase: &'static str) -> Result<()> {
        if self.cancel.is_canceled() {
            return Err(Error::Canceled { phase });
        }
        if let Some(deadline) = self.deadline
            && Instant::now() >= deadline
        {
            return Err(Error::Timeout { phase });
        }
        Ok(())
    }
}

pub(crate) const EVALUATION: &str = "expression evaluation";

/// The steps an expression is evaluated at: `start`, `start + step`, ...,
/// up to and including `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Grid {
    pub(crate) fn len(&self) -> usize {
        if self.end < self.start || self.step <= 0 {
            return 0;
        }
        self.end
            .checked_sub(self.start)
            .and_then(|span| usize::try_from(span / self.step + 1).ok())
            .unwrap_or(0)
    }

    pub(crate) fn times(&self) -> impl Iterator<Item = i64> + use<> {
        let Grid { start, step, .. } = *self;
        (0..self.len() as i64).map(move |i| start + i * step)
    }

    /// The index of step time `t`.
    pub(crate) fn index(&self, t: i64) -> usize {
        usize::try_from((t - self.start) / self.step.max(1)).unwrap_or(0)
    }
}

/// A series on the grid: its points are at step times.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepSeries {
    pub labels: Labels,
    /// The metric name is to be removed when the result leaves the engine.
    pub drop_name: bool,
    pub points: Vec<Point>,
}

impl StepSeries {
    pub(crate) fn new(labels: Labels, drop_name: bool) -> Self {
        StepSeries {
            labels,
            drop_name,
            points: Vec::new(),
        }
    }
}

/// The value of an expression over the whole grid.
#[derive(Debug, Clone)]
pub(crate) enum Evaluated {
    /// One value per step.
    Scalar(Vec<f64>),
    String(String),
    /// Series with points on the grid.
    Vector(Vec<StepSeries>),
    /// Raw samples: a range vector at the top of an instant query.
    Matrix(Vec<StepSeries>),
}

impl Evaluated {
    fn n_points(&self) -> usize {
        match self {
            Evaluated::Scalar(v) => v.len(),
            Evaluated::String(_) => 0,
            Evaluated::Vector(s) | Evaluated::Matrix(s) => s.iter().map(|s| s.points.len()).sum(),
        }
    }
}

/// One element of a vector at one step.
#[derive(Debug, Clone)]
pub(crate) struct Elem {
    pub labels: Labels,
    pub v: f64,
    pub drop_name: bool,
}

/// Walks the series of a vector value step by step, in time order.
pub(crate) struct Stepper<'a> {
    series: &'a [StepSeries],
    next: Vec<usize>,
}

impl<'a> Stepper<'a> {
    pub(crate) fn new(series: &'a [StepSeries]) -> Self {
        Stepper {
            series,
            next: vec![0; series.len()],
        }
    }

    /// The series that have a point at step time `t`, as (index, value), in
    /// series order. Steps must be visited in increasing time.
    pub(crate) fn step(&mut self, t: i64, out: &mut Vec<(usize, f64)>) {
        out.clear();
        for (i, series) in self.series.iter().enumerate() {
            let next = &mut self.next[i];
            while let Some(point) = series.points.get(*next) {
                if point.t < t {
                    *next += 1;
                    continue;
                }
                if point.t == t {
                    out.push((i, point.v));
                    *next += 1;
                }
                break;
            }
        }
    }
}

/// Builds output series from the elements produced step by step.
pub(crate) struct Assembler {
    single_step: bool,
    index: HashMap<Labels, usize>,
    series: Vec<StepSeries>,
    last_t: Vec<i64>,
}

impl Assembler {
    pub(crate) fn new(grid: &Grid) -> Self {
        Assembler {
            single_step: grid.len() == 1,
            index: HashMap::new(),
            series: Vec::new(),
            last_t: Vec::new(),
        }
    }

    /// Adds an element at step `t`.
    ///
    /// # Errors
    /// Two elements with the same labels at the same step (except in an
    /// instant query, where the final name removal reports duplicates).
    pub(crate) fn push(&mut self, t: i64, elem: Elem) -> Result<()> {
        if self.single_step {
            let mut series = StepSeries::new(elem.labels, elem.drop_name);
            series.points.push(Point::new(t, elem.v));
            self.series.push(series);
            return Ok(());
        }
        match self.index.get(&elem.labels) {
            Some(&i) => {
                if self.last_t[i] == t {
                    return Err(duplicate_labelset());
                }
                self.last_t[i] = t;
                self.series[i].points.push(Point::new(t, elem.v));
            }
            None => {
                self.index.insert(elem.labels.clone(), self.series.len());
                let mut series = StepSeries::new(elem.labels, elem.drop_name);
                series.points.push(Point::new(t, elem.v));
                self.series.push(series);
                self.last_t.push(t);
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<StepSeries> {
        self.series
    }
}

pub(crate) fn duplicate_labelset() -> Error {
    Error::eval("vector cannot contain metrics with the same labelset")
}

/// The labels Prometheus treats as metadata of a metric and drops together
/// with the name: `__name__`, `__type__` and `__unit__`.
pub(crate) fn is_metadata_label(name: &str) -> bool {
    matches!(name, "__name__" | "__type__" | "__unit__")
}

/// `labels` without the metadata labels.
pub(crate) fn drop_metric_name(labels: &Labels) -> Labels {
    if !labels.iter().any(|l| is_metadata_label(&l.name)) {
        return labels.clone();
    }
    labels
        .builder()
        .retain(|l| !is_metadata_label(&l.name))
        .build()
}

/// The series of a range argument with staleness markers removed.
#[derive(Debug, Clone)]
pub(crate) struct RangeSeries<'a> {
    pub labels: Labels,
    /// Borrowed from the loaded samples unless staleness markers had to be
    /// removed.
    pub points: Cow<'a, [Point]>,
    /// The start timestamp of each point (0: unknown), or empty. Only range
    /// selectors carry them: a subquery's points are computed, not stored.
    pub start_timestamps: Cow<'a, [i64]>,
}

impl<'a> RangeSeries<'a> {
    /// The series of a range selector: staleness markers are not samples.
    fn from_loaded(series: &'a LoadedSeries) -> Self {
        if !series.points.iter().any(|p| is_stale_nan(p.v)) {
            return RangeSeries {
                labels: series.labels.clone(),
                points: Cow::Borrowed(&series.points),
                start_timestamps: Cow::Borrowed(&series.start_timestamps),
            };
        }
        let mut points = Vec::with_capacity(series.points.len());
        let mut start_timestamps = Vec::new();
        if series.start_timestamps.is_empty() {
            points.extend(series.points.iter().filter(|p| !is_stale_nan(p.v)));
        } else {
            for (p, st) in series.points.iter().zip(&series.start_timestamps) {
                if !is_stale_nan(p.v) {
                    points.push(*p);
                    start_timestamps.push(*st);
                }
            }
        }
        RangeSeries {
            labels: series.labels.clone(),
            points: Cow::Owned(points),
            start_timestamps: Cow::Owned(start_timestamps),
        }
    }

    /// The start timestamps of the points `range` (empty when unknown).
    pub(crate) fn start_timestamps_of(&self, range: std::ops::Range<usize>) -> &[i64] {
        self.start_timestamps.get(range).unwrap_or(&[])
    }
}

/// A range vector argument of a function: its series and how to cut the
/// window for each step.
#[derive(Debug, Clone)]
pub(crate) struct RangeArg<'a> {
    pub series: Vec<RangeSeries<'a>>,
    pub range_ms: i64,
    pub offset_ms: i64,
    pub at: Option<i64>,
    /// `anchored` or `smoothed`, for range selectors.
    pub extension: Option<Extension>,
    /// The lookback delta, by which those modifiers extend the window.
    pub lookback_ms: i64,
}

impl RangeArg<'_> {
    /// The window `(start, end]` evaluated at step `t`.
    pub(crate) fn window_bounds(&self, t: i64) -> (i64, i64) {
        // Saturating: times near the ends of i64 must not overflow.
        let end = self.at.unwrap_or(t).saturating_sub(self.offset_ms);
        (end.saturating_sub(self.range_ms), end)
    }

    /// The samples a function sees at step `t`: the window, extended by the
    /// lookback delta backwards for `anchored` and `smoothed`, and forwards
    /// for `smoothed`.
    pub(crate) fn window<'s>(&self, points: &'s [Point], t: i64) -> &'s [Point] {
        &points[self.window_indices(points, t)]
    }

    /// The indices of [`window`](Self::window)'s points in `points`.
    pub(crate) fn window_indices(&self, points: &[Point], t: i64) -> std::ops::Range<usize> {
        let (start, end) = self.sample_bounds(t);
        window_indices(points, start, end)
    }

    /// The `(start, end]` of the samples a function sees at step `t`: the
    /// window, extended for `anchored` and `smoothed`. Never decreases as
    /// `t` grows.
    fn sample_bounds(&self, t: i64) -> (i64, i64) {
        let (start, end) = self.window_bounds(t);
        match self.extension {
            None => (start, end),
            Some(Extension::Anchored) => (start.saturating_sub(self.lookback_ms), end),
            Some(Extension::Smoothed) => (
                start.saturating_sub(self.lookback_ms),
                end.saturating_add(self.lookback_ms),
            ),
        }
    }
}

/// Slides [`RangeArg::window`] over one series as the steps advance: the
/// window edges only move forward, so each sample is passed once instead of
/// searched for at every step.
#[derive(Debug, Default)]
pub(crate) struct WindowCursor {
    lo: usize,
    hi: usize,
}

impl WindowCursor {
    /// The indices of the window at step `t`; steps must not go back in
    /// time.
    pub(crate) fn advance(
        &mut self,
        arg: &RangeArg,
        points: &[Point],
        t: i64,
    ) -> std::ops::Range<usize> {
        let (start, end) = arg.sample_bounds(t);
        while self.lo < points.len() && points[self.lo].t <= start {
            self.lo += 1;
        }
        self.hi = self.hi.max(self.lo);
        while self.hi < points.len() && points[self.hi].t <= end {
            self.hi += 1;
        }
        self.lo..self.hi
    }
}

/// The points of `points` in `(start, end]`.
pub(crate) fn window(points: &[Point], start: i64, end: i64) -> &[Point] {
    &points[window_indices(points, start, end)]
}

/// The indices of the points of `points` in `(start, end]`.
pub(crate) fn window_indices(points: &[Point], start: i64, end: i64) -> std::ops::Range<usize> {
    let lo = points.partition_point(|p| p.t <= start);
    let hi = points.partition_point(|p| p.t <= end);
    lo..hi.max(lo)
}

pub(crate) struct Evaluator<'a> {
    pub(crate) query: &'a str,
    pub(crate) context: QueryContext,
    /// Whether the top-level query is a range query.
    pub(crate) is_range_query: bool,
    pub(crate) grid: Grid,
    default_subquery_step_ms: i64,
    data: &'a [Vec<LoadedSeries>],
    limits: &'a Limits,
    samples: usize,
    annotations: Annotations,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(
        query: &'a str,
        context: &QueryContext,
        is_range_query: bool,
        default_subquery_step_ms: i64,
        data: &'a [Vec<LoadedSeries>],
        limits: &'a Limits,
    ) -> Self {
        Evaluator {
            query,
            context: *context,
            is_range_query,
            grid: Grid {
                start: context.start_ms,
                end: context.end_ms,
                step: context.step_ms.max(1),
            },
            default_subquery_step_ms: default_subquery_step_ms.max(1),
            data,
            limits,
            samples: 0,
            annotations: Annotations::default(),
        }
    }

    /// The series loaded for selector `id`.
    pub(crate) fn loaded(&self, id: usize) -> &'a [LoadedSeries] {
        self.data.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    pub(crate) fn take_annotations(&mut self) -> Annotations {
        std::mem::take(&mut self.annotations)
    }

    /// Evaluates the whole query and shapes the result as the API returns it.
    pub(crate) fn run(&mut self, expr: &Expr) -> Result<Value> {
        let evaluated = self.eval(expr)?;
        let start = self.grid.start;
        let value = match evaluated {
            Evaluated::String(v) => Value::String(StringValue { t: start, v }),
            Evaluated::Scalar(values) if !self.is_range_query => Value::Scalar(Scalar {
                t: start,
                v: values.first().copied().unwrap_or(f64::NAN),
            }),
            Evaluated::Scalar(values) => {
                let points = self
                    .grid
                    .times()
                    .zip(values)
                    .map(|(t, v)| Point::new(t, v))
                    .collect();
                Value::Matrix(vec![Series {
                    labels: Labels::empty(),
                    points,
                }])
            }
            Evaluated::Vector(series) if !self.is_range_query => {
                let mut vector = Vec::with_capacity(series.len());
                for s in series {
                    let labels = if s.drop_name {
                        drop_metric_name(&s.labels)
                    } else {
                        s.labels
                    };
                    if let Some(point) = s.points.first() {
                        vector.push(Sample {
                            labels,
                            t: start,
                            v: point.v,
                        });
                    }
                }
                let mut seen = std::collections::HashSet::with_capacity(vector.len());
                if !vector.iter().all(|s| seen.insert(&s.labels)) {
                    return Err(duplicate_labelset());
                }
                Value::Vector(vector)
            }
            Evaluated::Vector(series) | Evaluated::Matrix(series) => {
                let mut matrix = merge_same_labelsets(series)?;
                matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(matrix)
            }
        };
        Ok(value)
    }

    pub(crate) fn check(&self) -> Result<()> {
        self.limits.check(EVALUATION)
    }

    /// Counts `n` more samples held in memory.
    pub(crate) fn hold_samples(&mut self, n: usize) -> Result<()> {
        self.samples = self.samples.saturating_add(n);
        if self.samples > self.limits.max_samples {
            return Err(Error::TooManySamples { phase: EVALUATION });
        }
        Ok(())
    }

    pub(crate) fn release_samples(&mut self, n: usize) {
        self.samples = self.samples.saturating_sub(n);
    }

    pub(crate) fn warn(&mut self, message: impl std::fmt::Display, pos: usize) {
        let suffix = position_suffix(self.query, pos);
        self.annotations
            .add_warning(format!("PromQL warning: {message} {suffix}"));
    }

    pub(crate) fn info(&mut self, message: impl std::fmt::Display, pos: usize) {
        let suffix = position_suffix(self.query, pos);
        self.annotations
            .add_info(format!("PromQL info: {message} {suffix}"));
    }

    pub(crate) fn eval(&mut self, expr: &Expr) -> Result<Evaluated> {
        self.check()?;
        let held = self.samples;
        let value = self.eval_node(expr)?;
        self.samples = held;
        self.hold_samples(value.n_points())?;
        Ok(value)
    }

    fn eval_node(&mut self, expr: &Expr) -> Result<Evaluated> {
        match &expr.kind {
            ExprKind::Number(v) => Ok(Evaluated::Scalar(vec![*v; self.grid.len()])),
            ExprKind::String(s) => Ok(Evaluated::String(s.clone())),
            ExprKind::Paren(inner) => self.eval(inner),
            ExprKind::Negate(inner) => match self.eval(inner)? {
                Evaluated::Scalar(values) => {
                    Ok(Evaluated::Scalar(values.into_iter().map(|v| -v).collect()))
                }
                Evaluated::Vector(mut series) => {
                    for s in &mut series {
                        s.drop_name = true;
                        for p in &mut s.points {
                            p.v = -p.v;
                        }
                    }
                    Ok(Evaluated::Vector(series))
                }
                _ => Err(Error::eval(
                    "unary expression only allowed on expressions of type scalar or instant vector",
                )),
            },
            ExprKind::Selector(selector) => Ok(Evaluated::Vector(self.eval_selector(selector)?)),
            ExprKind::Range { .. } | ExprKind::Subquery(_) => {
                if self.grid.len() != 1 {
                    return Err(Error::eval(
                        "cannot do range evaluation of a range vector expression",
                    ));
                }
                let arg = self.eval_range_arg(expr)?;
                let (start, end) = arg.window_bounds(self.grid.start);
                let series = arg
                    .series
                    .iter()
                    .filter_map(|s| {
                        let points = arg.window(&s.points, self.grid.start);
                        let points = match arg.extension {
                            None => points.to_vec(),
                            Some(extension) => extend_to_bounds(points, start, end, extension),
                        };
                        (!points.is_empty()).then(|| StepSeries {
                            labels: s.labels.clone(),
                            drop_name: false,
                            points,
                        })
                    })
                    .collect();
                Ok(Evaluated::Matrix(series))
            }
            ExprKind::Binary(binary) => super::binary::eval(self, binary, expr.pos),
            ExprKind::Aggregate(aggregate) => super::aggregate::eval(self, aggregate),
            ExprKind::Call(call) => super::functions::eval(self, call, expr.pos),
            ExprKind::Info(info) => super::functions::info::eval(self, info),
        }
    }

    /// Evaluates `expr` as a scalar: one value per step.
    pub(crate) fn eval_scalar(&mut self, expr: &Expr) -> Result<Vec<f64>> {
        match self.eval(expr)? {
            Evaluated::Scalar(values) => Ok(values),
            _ => Err(Error::eval("expected a scalar")),
        }
    }

    /// Evaluates `expr` as an instant vector.
    pub(crate) fn eval_vector(&mut self, expr: &Expr) -> Result<Vec<StepSeries>> {
        match self.eval(expr)? {
            Evaluated::Vector(series) => Ok(series),
            _ => Err(Error::eval("expected an instant vector")),
        }
    }

    /// The value of an instant selector at each step: the newest sample in
    /// the lookback window `(t - lookback, t]`, unless that sample is a
    /// staleness marker.
    fn eval_selector(&mut self, selector: &Selector) -> Result<Vec<StepSeries>> {
        match selector.extension {
            Some(Extension::Smoothed) => return self.eval_smoothed_selector(selector),
            Some(Extension::Anchored) => {
                return Err(Error::eval(
                    "anchored modifier can only be used with range vector selectors",
                ));
            }
            None => {}
        }
        let data = self.data;
        let loaded = data.get(selector.id).map(Vec::as_slice).unwrap_or(&[]);
        let at = selector.at.map(|at| self.context.resolve_at(at));
        let lookback = self.context.lookback_ms;
        let grid = self.grid;
        let mut out = Vec::with_capacity(loaded.len());
        for series in loaded {
            self.check()?;
            let mut step_series = StepSeries::new(series.labels.clone(), false);
            let mut cursor = 0usize;
            for t in grid.times() {
                let reference = at.unwrap_or(t).saturating_sub(selector.offset_ms);
                let newest = if at.is_some() {
                    series.points.partition_point(|p| p.t <= reference)
                } else {
                    while cursor < series.points.len() && series.points[cursor].t <= reference {
                        cursor += 1;
                    }
                    cursor
                };
                let Some(point) = newest.checked_sub(1).and_then(|i| series.points.get(i)) else {
                    continue;
                };
                if point.t <= reference.saturating_sub(lookback) || is_stale_nan(point.v) {
                    continue;
                }
                step_series.points.push(Point::new(t, point.v));
            }
            if !step_series.points.is_empty() {
                self.hold_samples(step_series.points.len())?;
                out.push(step_series);
            }
        }
        Ok(out)
    }

    /// A `smoothed` instant selector: the value at each step interpolated
    /// between the samples around it (within the lookback delta on either
    /// side), or the last one before it when none follows.
    fn eval_smoothed_selector(&mut self, selector: &Selector) -> Result<Vec<StepSeries>> {
        let data = self.data;
        let loaded = data.get(selector.id).map(Vec::as_slice).unwrap_or(&[]);
        let at = selector.at.map(|at| self.context.resolve_at(at));
        let lookback = self.context.lookback_ms;
        let mut out = Vec::new();
        for series in loaded {
            self.check()?;
            let points: Vec<Point> = series
                .points
                .iter()
                .copied()
                .filter(|p| !is_stale_nan(p.v))
                .collect();
            let mut step_series = StepSeries::new(series.labels.clone(), false);
            for t in self.grid.times() {
                let reference = at.unwrap_or(t).saturating_sub(selector.offset_ms);
                let near = window(
                    &points,
                    reference.saturating_sub(lookback),
                    reference.saturating_add(lookback),
                );
                let i = near.partition_point(|p| p.t < reference);
                let v = match (near.get(i), i.checked_sub(1).and_then(|j| near.get(j))) {
                    (Some(next), _) if next.t == reference => next.v,
                    (Some(next), Some(previous)) => interpolate(*previous, *next, reference, false),
                    (None, Some(previous)) => previous.v,
                    _ => continue,
                };
                step_series.points.push(Point::new(t, v));
            }
            if !step_series.points.is_empty() {
                self.hold_samples(step_series.points.len())?;
                out.push(step_series);
            }
        }
        Ok(out)
    }

    /// The timestamps of the samples an instant selector picks at each step,
    /// in seconds: `timestamp(selector)`; with `start`, their start
    /// timestamps (0 when unknown): `start_timestamp(selector)`.
    pub(crate) fn eval_selector_timestamps(
        &mut self,
        selector: &Selector,
        start: bool,
    ) -> Result<Vec<StepSeries>> {
        let data = self.data;
        let loaded = data.get(selector.id).map(Vec::as_slice).unwrap_or(&[]);
        let at = selector.at.map(|at| self.context.resolve_at(at));
        let lookback = self.context.lookback_ms;
        let mut out = Vec::new();
        for series in loaded {
            let mut step_series = StepSeries::new(series.labels.clone(), true);
            for t in self.grid.times() {
                let reference = at.unwrap_or(t).saturating_sub(selector.offset_ms);
                let newest = series.points.partition_point(|p| p.t <= reference);
                let Some(point) = newest.checked_sub(1).and_then(|i| series.points.get(i)) else {
                    continue;
                };
                if point.t <= reference.saturating_sub(lookback) || is_stale_nan(point.v) {
                    continue;
                }
                let ms = if start {
                    series
                        .start_timestamps
                        .get(newest - 1)
                        .copied()
                        .unwrap_or(0)
                } else {
                    point.t
                };
                step_series.points.push(Point::new(t, ms as f64 / 1000.0));
            }
            if !step_series.points.is_empty() {
                out.push(step_series);
            }
        }
        Ok(out)
    }

    /// Evaluates a range selector or subquery into the samples functions cut
    /// windows from.
    pub(crate) fn eval_range_arg(&mut self, expr: &Expr) -> Result<RangeArg<'a>> {
        let expr = expr.unparen();
        match &expr.kind {
            ExprKind::Range { selector, range_ms } => {
                let data = self.data;
                let loaded = data.get(selector.id).map(Vec::as_slice).unwrap_or(&[]);
                let series = loaded.iter().map(RangeSeries::from_loaded).collect();
                Ok(RangeArg {
                    series,
                    range_ms: *range_ms,
                    offset_ms: selector.offset_ms,
                    at: selector.at.map(|at| self.context.resolve_at(at)),
                    extension: selector.extension,
                    lookback_ms: self.context.lookback_ms,
                })
            }
            ExprKind::Subquery(subquery) => self.eval_subquery(subquery),
            _ => Err(Error::eval("expected a range vector")),
        }
    }

    /// Evaluates the inside of a subquery once, over a grid aligned to its
    /// step that covers every window the outer steps will cut.
    fn eval_subquery(&mut self, subquery: &Subquery) -> Result<RangeArg<'a>> {
        let step = subquery
            .step_ms
            .unwrap_or(self.default_subquery_step_ms)
            .max(1);
        let at = subquery.at.map(|at| self.context.resolve_at(at));
        let (outer_start, outer_end) = match at {
            Some(at) => (at, at),
            None => (self.grid.start, self.grid.end),
        };
        let first = outer_start
            .saturating_sub(subquery.offset_ms)
            .saturating_sub(subquery.range_ms);
        // The first multiple of the step after the start of the first window.
        let mut start = first.div_euclid(step).saturating_mul(step);
        if start <= first {
            start = start.saturating_add(step);
        }
        let inner = Grid {
            start,
            end: outer_end.saturating_sub(subquery.offset_ms),
            step,
        };
        // Every step of a subquery holds at least a scalar: a grid larger
        // than the sample limit cannot be evaluated.
        if inner.len() > self.limits.max_samples {
            return Err(Error::TooManySamples { phase: EVALUATION });
        }
        let saved = self.grid;
        self.grid = inner;
        let result = self.eval(&subquery.expr);
        self.grid = saved;
        let series = match result? {
            Evaluated::Vector(series) => series
                .into_iter()
                .map(|s| RangeSeries {
                    // A name-dropping function inside the subquery takes
                    // effect here: the result is a fresh range vector.
                    labels: if s.drop_name {
                        drop_metric_name(&s.labels)
                    } else {
                        s.labels
                    },
                    points: Cow::Owned(s.points),
                    start_timestamps: Cow::Borrowed(&[]),
                })
                .collect(),
            Evaluated::Scalar(values) => vec![RangeSeries {
                labels: Labels::empty(),
                points: inner
                    .times()
                    .zip(values)
                    .map(|(t, v)| Point::new(t, v))
                    .collect(),
                start_timestamps: Cow::Borrowed(&[]),
            }],
            _ => return Err(Error::eval("subquery is only allowed on instant vector")),
        };
        Ok(RangeArg {
            series,
            range_ms: subquery.range_ms,
            offset_ms: subquery.offset_ms,
            at,
            extension: None,
            lookback_ms: self.context.lookback_ms,
        })
    }
}

/// The value at `t` on the line between two samples; for a counter that
/// reset in between, the line starts at zero.
pub(crate) fn interpolate(p1: Point, p2: Point, t: i64, is_counter: bool) -> f64 {
    let y1 = if is_counter && p2.v < p1.v { 0.0 } else { p1.v };
    y1 + (p2.v - y1) * (t as f64 - p1.t as f64) / (p2.t as f64 - p1.t as f64)
}

/// The window of an `anchored` or `smoothed` range selector as a range
/// vector: the samples strictly inside `(start, end)`, plus points at both
/// bounds taken from the nearest samples (interpolated for `smoothed`).
fn extend_to_bounds(points: &[Point], start: i64, end: i64, extension: Extension) -> Vec<Point> {
    let smoothed = extension == Extension::Smoothed;
    if points.is_empty() {
        return Vec::new();
    }
    let mut last = points.len() - 1;
    let mut first = points[..last]
        .partition_point(|p| p.t <= start)
        .saturating_sub(1);
    if smoothed {
        last = points[..last].partition_point(|p| p.t < end);
    }
    if points[last].t <= start {
        return Vec::new();
    }
    let left = if smoothed && points[first].t < start && first + 1 < points.len() {
        interpolate(points[first], points[first + 1], start, false)
    } else {
        points[first].v
    };
    let right = if smoothed && last > 0 && points[last].t > end {
        interpolate(points[last - 1], points[last], end, false)
    } else {
        points[last].v
    };
    if points[first].t <= start {
        first += 1;
    }
    let inner_end = if points[last].t >= end {
        last
    } else {
        last + 1
    };
    let mut out = Vec::with_capacity(inner_end.saturating_sub(first) + 2);
    out.push(Point::new(start, left));
    if first < inner_end {
        out.extend_from_slice(&points[first..inner_end]);
    }
    out.push(Point::new(end, right));
    out
}

/// Removes the marked names and merges series that end up with the same
/// labels, as long as they do not overlap in time.
///
/// # Errors
/// Two series with the same labels and a point at the same time.
pub(crate) fn merge_same_labelsets(series: Vec<StepSeries>) -> Result<Matrix> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    let mut merged = false;
    for s in series {
        let labels = if s.drop_name {
            drop_metric_name(&s.labels)
        } else {
            s.labels
        };
        match index.get(&labels) {
            Some(&i) => {
                out[i].points.extend(s.points);
                merged = true;
            }
            None => {
                index.insert(labels.clone(), out.len());
                out.push(Series {
                    labels,
                    points: s.points,
                });
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_counts_steps_inclusively() {
        let grid = Grid {
            start: 0,
            end: 120_000,
            step: 60_000,
        };
        assert_eq!(grid.len(), 3);
        assert_eq!(grid.times().collect::<Vec<_>>(), vec![0, 60_000, 120_000]);
        assert_eq!(grid.index(120_000), 2);
    }

    #[test]
    fn windows_are_left_open() {
        let points: Vec<Point> = (0..5).map(|i| Point::new(i * 10, i as f64)).collect();
        let w = window(&points, 10, 30);
        assert_eq!(w.iter().map(|p| p.t).collect::<Vec<_>>(), vec![20, 30]);
        assert!(window(&points, 40, 40).is_empty());
    }

    #[test]
    fn stepper_visits_points_in_order() {
        let series = vec![StepSeries {
            labels: Labels::empty(),
            drop_name: false,
            points: vec![Point::new(0, 1.0), Point::new(20, 2.0)],
        }];
        let mut stepper = Stepper::new(&series);
        let mut out = Vec::new();
        stepper.step(0, &mut out);
        assert_eq!(out, vec![(0, 1.0)]);
        stepper.step(10, &mut out);
        assert!(out.is_empty());
        stepper.step(20, &mut out);
        assert_eq!(out, vec![(0, 2.0)]);
    }
}
