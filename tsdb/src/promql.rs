//! The PromQL engine: instant and range queries over any
//! [`Queryable`](crate::storage::Queryable), with Prometheus 3.x semantics.
//!
//! The life of a query:
//! 1. [`parse`](parse) turns the text into our own AST (the `promql-parser`
//!    crate does the parsing; its types stay inside that module);
//! 2. [`plan`](plan) walks the AST, works out which time range every
//!    selector needs (offsets, `@`, ranges, subqueries, the lookback delta)
//!    and loads those series through one querier;
//! 3. [`eval`](eval) evaluates the AST step by step over the loaded samples:
//!    functions ([`functions`]), aggregations ([`aggregate`]) and binary
//!    operators ([`binary`]) work series by series where they can, step by
//!    step where they must;
//! 4. the result is a [`Value`] plus [`Annotations`] (warnings and infos
//!    worded as Prometheus words them).
//!
//! Consumers that only need results (rules, the autoscaler) depend on the
//! [`QueryBackend`] trait, never on the engine.
//!
//! API boundary: [`Engine`], [`EngineOptions`], [`Query`], [`Value`] and
//! [`QueryBackend`].

mod aggregate;
mod annotations;
mod backend;
mod binary;
mod error;
mod eval;
mod functions;
mod parse;
mod plan;
pub mod promqltest;
mod value;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use annotations::Annotations;
pub use backend::QueryBackend;
pub use error::{Error, ErrorKind, Result};
pub use value::{Matrix, Point, Sample, Scalar, Series, StringValue, Value, Vector};

use crate::storage::Queryable;
use parse::ValueType;

/// Knobs of the engine. The defaults are Prometheus's.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// How far back an instant selector looks for the latest sample.
    pub lookback_delta: Duration,
    /// The longest a query may run.
    pub timeout: Duration,
    /// The most samples a query may hold in memory at once.
    pub max_samples: usize,
    /// The resolution of subqueries that leave it out (`[1h:]`); Prometheus
    /// uses the global evaluation interval.
    pub default_subquery_step: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(5 * 60),
            timeout: Duration::from_secs(2 * 60),
            max_samples: 50_000_000,
            default_subquery_step: Duration::from_secs(60),
        }
    }
}

/// Prepares queries. Cheap to share: it holds only options.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    options: EngineOptions,
}

/// A flag that stops a running query at its next check; clones share it.
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_canceled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a finished query returns.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    pub annotations: Annotations,
}

/// A parsed query, ready to run against a [`Queryable`].
#[derive(Debug, Clone)]
pub struct Query {
    text: String,
    expr: parse::Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    is_range: bool,
    options: EngineOptions,
    cancel: CancelHandle,
}

impl Engine {
    pub fn new(options: EngineOptions) -> Self {
        Engine { options }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Prepares an instant query evaluated at `at_ms`.
    ///
    /// # Errors
    /// [`Error::Parse`] for invalid PromQL.
    pub fn instant_query(&self, query: &str, at_ms: i64) -> Result<Query> {
        let parsed = parse::parse(query, parse::QueryTimes::default())?;
        Ok(Query {
            text: parsed.text,
            expr: parsed.expr,
            start_ms: at_ms,
            end_ms: at_ms,
            step_ms: 0,
            is_range: false,
            options: self.options.clone(),
            cancel: CancelHandle::default(),
        })
    }

    /// Prepares a range query over `[start_ms, end_ms]` at `step`.
    ///
    /// # Errors
    /// [`Error::Parse`] for invalid PromQL, a zero step, an end before the
    /// start, or an expression that is neither a scalar nor an instant vector.
    pub fn range_query(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step: Duration,
    ) -> Result<Query> {
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
        if step_ms <= 0 {
            return Err(Error::parse(
                "zero or negative query resolution step widths are not accepted",
            ));
        }
        if end_ms < start_ms {
            return Err(Error::parse("end timestamp must not be before start time"));
        }
        // The 11,000-point limit is the HTTP API's (as in Prometheus), so
        // rules, backtests and the autoscaler may ask for longer grids; the
        // engine only refuses grids with more steps than the sample limit,
        // which bounds the memory and time of walking the grid.
        let range_ms = end_ms.checked_sub(start_ms).unwrap_or(i64::MAX);
        let steps = usize::try_from(range_ms / step_ms).unwrap_or(usize::MAX);
        if steps >= self.options.max_samples {
            return Err(Error::TooManySamples {
                phase: eval::EVALUATION,
            });
        }
        let parsed = parse::parse(query, parse::QueryTimes { step_ms, range_ms })?;
        let expr = parsed.expr;
        let value_type = expr.value_type();
        if value_type != ValueType::Scalar && value_type != ValueType::Vector {
            return Err(Error::parse(format!(
                "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                value_type.documented_name()
            )));
        }
        Ok(Query {
            text: parsed.text,
            expr,
            start_ms,
            end_ms,
            step_ms,
            is_range: true,
            options: self.options.clone(),
            cancel: CancelHandle::default(),
        })
    }
}

impl Query {
    /// The text the query was prepared from (with experimental duration
    /// expressions and selector modifiers rewritten for the parser).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// A handle that cancels this query from another thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Overrides the engine's lookback delta for this query (the API's
    /// `lookback_delta` parameter).
    pub fn set_lookback_delta(&mut self, lookback_delta: Duration) {
        if !lookback_delta.is_zero() {
            self.options.lookback_delta = lookback_delta;
        }
    }

    /// The same query as an instant query at `at_ms` (with a cancel handle
    /// of its own).
    pub(crate) fn instant_at(&self, at_ms: i64) -> Query {
        Query {
            start_ms: at_ms,
            end_ms: at_ms,
            step_ms: 0,
            is_range: false,
            cancel: CancelHandle::default(),
            ..self.clone()
        }
    }

    /// The same query as a range query.
    pub(crate) fn range_over(&self, start_ms: i64, end_ms: i64, step_ms: i64) -> Query {
        Query {
            start_ms,
            end_ms,
            step_ms,
            is_range: true,
            cancel: CancelHandle::default(),
            ..self.clone()
        }
    }

    /// The same query with every selector and subquery that has no `@`
    /// pinned to `at_ms`; selectors inside subqueries stay as they are.
    /// Such a query must give the same result at any evaluation time, which
    /// the promqltest runner checks as Prometheus's does.
    pub(crate) fn pinned_at(&self, at_ms: i64) -> Query {
        fn pin(expr: &mut parse::Expr, at_ms: i64) {
            use parse::ExprKind;
            let at = Some(parse::At::Time(at_ms));
            match &mut expr.kind {
                ExprKind::Number(_) | ExprKind::String(_) => {}
                ExprKind::Selector(s) | ExprKind::Range { selector: s, .. } => {
                    if s.at.is_none() {
                        s.at = at;
                    }
                }
                ExprKind::Subquery(sq) => {
                    if sq.at.is_none() {
                        sq.at = at;
                    }
                }
                ExprKind::Paren(inner) | ExprKind::Negate(inner) => pin(inner, at_ms),
                ExprKind::Binary(b) => {
                    pin(&mut b.lhs, at_ms);
                    pin(&mut b.rhs, at_ms);
                }
                ExprKind::Aggregate(a) => {
                    pin(&mut a.expr, at_ms);
                    if let Some(param) = &mut a.param {
                        pin(param, at_ms);
                    }
                }
                ExprKind::Call(call) => call.args.iter_mut().for_each(|a| pin(a, at_ms)),
                ExprKind::Info(info) => pin(&mut info.expr, at_ms),
            }
        }
        let mut query = self.clone();
        query.cancel = CancelHandle::default();
        pin(&mut query.expr, at_ms);
        query
    }

    /// Runs the query.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Canceled`], [`Error::TooManySamples`],
    /// [`Error::Evaluation`] for semantic errors found while evaluating, and
    /// [`Error::Storage`] when the storage fails.
    pub fn exec(&self, queryable: &dyn Queryable) -> Result<QueryResult> {
        let deadline = Instant::now().checked_add(self.options.timeout);
        let limits = eval::Limits {
            deadline,
            cancel: self.cancel.clone(),
            max_samples: self.options.max_samples,
        };
        limits.check("query preparation")?;
        let context = plan::QueryContext {
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            step_ms: self.step_ms,
            lookback_ms: duration_ms(self.options.lookback_delta),
        };
        let loaded = plan::load(&self.expr, &context, queryable)?;
        let mut evaluator = eval::Evaluator::new(
            &self.text,
            &context,
            self.is_range,
            duration_ms(self.options.default_subquery_step),
            &loaded.series,
            &limits,
        );
        let mut annotations = Annotations::default();
        for warning in loaded.warnings {
            annotations.add_warning(warning);
        }
        let value = evaluator.run(&self.expr);
        annotations.merge(evaluator.take_annotations());
        Ok(QueryResult {
            value: value?,
            annotations,
        })
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{Head, HeadOptions};
    use crate::model::{Labels, Sample as ModelSample};
    use crate::storage::Appendable;

    /// `up{job="a"}` and `up{job="b"}`, one sample a minute for ten minutes.
    fn storage() -> Head {
        let head = Head::new(HeadOptions::default());
        let mut appender = head.appender();
        for job in ["a", "b"] {
            let labels = Labels::from_pairs(&[("__name__", "up"), ("job", job)]);
            for i in 0..=10 {
                appender
                    .append(None, &labels, ModelSample::new(i * 60_000, i as f64))
                    .unwrap();
            }
        }
        appender.commit().unwrap();
        head
    }

    #[test]
    fn instant_queries_return_vectors_scalars_and_strings() {
        let head = storage();
        let engine = Engine::default();
        let result = engine
            .instant_query("up", 300_000)
            .unwrap()
            .exec(&head)
            .unwrap();
        let Value::Vector(vector) = result.value else {
            panic!("not a vector: {:?}", result.value)
        };
        assert_eq!(vector.len(), 2);
        assert_eq!((vector[0].t, vector[0].v), (300_000, 5.0));
        assert_eq!(vector[0].labels.get("job"), Some("a"));
        let scalar = engine
            .instant_query("1 + 2", 0)
            .unwrap()
            .exec(&head)
            .unwrap();
        assert_eq!(scalar.value, Value::Scalar(Scalar { t: 0, v: 3.0 }));
        let string = engine
            .instant_query(r#""x""#, 5)
            .unwrap()
            .exec(&head)
            .unwrap();
        assert_eq!(
            string.value,
            Value::String(StringValue {
                t: 5,
                v: "x".to_string()
            })
        );
        let matrix = engine
            .instant_query("up[2m]", 600_000)
            .unwrap()
            .exec(&head)
            .unwrap();
        let Value::Matrix(matrix) = matrix.value else {
            panic!("not a matrix")
        };
        assert_eq!(matrix[0].points.len(), 2);
    }

    #[test]
    fn range_queries_return_sorted_matrices() {
        let head = storage();
        let engine = Engine::default();
        let query = engine
            .range_query("-up", 0, 120_000, Duration::from_secs(60))
            .unwrap();
        let Value::Matrix(matrix) = query.exec(&head).unwrap().value else {
            panic!("not a matrix")
        };
        assert_eq!(matrix.len(), 2);
        assert!(matrix[0].labels < matrix[1].labels);
        assert_eq!(matrix[0].labels.metric_name(), None);
        let values: Vec<f64> = matrix[1].points.iter().map(|p| p.v).collect();
        assert_eq!(values, vec![0.0, -1.0, -2.0]);
    }

    #[test]
    fn invalid_queries_are_bad_data() {
        let engine = Engine::default();
        let error = engine.instant_query("sum(", 0).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::BadData);
        let error = engine
            .range_query("up[5m]", 0, 60_000, Duration::from_secs(15))
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::BadData);
        assert_eq!(
            error.to_string(),
            "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
        );
        let error = engine
            .range_query("up", 0, 60_000, Duration::ZERO)
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::BadData);
    }

    #[test]
    fn range_grids_beyond_the_sample_limit_are_refused() {
        let engine = Engine::default();
        let error = engine
            .range_query("up", i64::MIN, i64::MAX, Duration::from_millis(1))
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Execution);
        // Longer than the HTTP API's 11,000 points is fine inside the engine.
        assert!(
            engine
                .range_query("up", 0, 20_000 * 60_000, Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn sample_limit_is_an_execution_error() {
        let head = storage();
        let engine = Engine::new(EngineOptions {
            max_samples: 5,
            ..EngineOptions::default()
        });
        // 5 steps x 2 series: the grid fits, its samples do not.
        let error = engine
            .range_query("up", 0, 240_000, Duration::from_secs(60))
            .unwrap()
            .exec(&head)
            .unwrap_err();
        assert!(matches!(error, Error::TooManySamples { .. }));
        assert_eq!(error.kind(), ErrorKind::Execution);
        assert_eq!(
            error.to_string(),
            "query processing would load too many samples into memory in expression evaluation"
        );
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let head = storage();
        let engine = Engine::default();
        for query in [
            "up offset -1000y",
            "rate(up[1y] offset -1000y)",
            "up @ 9223372036854775.807",
            "max_over_time(up[1h:1m] @ -9223372036854775.807)",
        ] {
            let result = engine.instant_query(query, i64::MAX).map(|q| q.exec(&head));
            // Either an error or a (possibly empty) result, never a panic.
            drop(result);
        }
        let error = engine
            .instant_query("max_over_time(vector(1)[100y:1ms])", 0)
            .unwrap()
            .exec(&head)
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Execution);
    }

    #[test]
    fn cancelled_and_timed_out_queries_stop() {
        let head = storage();
        let query = Engine::default().instant_query("up", 0).unwrap();
        query.cancel_handle().cancel();
        let error = query.exec(&head).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Canceled);

        let engine = Engine::new(EngineOptions {
            timeout: Duration::ZERO,
            ..EngineOptions::default()
        });
        let error = engine
            .instant_query("up", 0)
            .unwrap()
            .exec(&head)
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
        assert!(error.to_string().starts_with("query timed out in "));
    }

    #[test]
    fn lookback_delta_is_per_query() {
        let head = storage();
        // The last sample is at 10m; at 14m it is still visible with the
        // default 5m lookback, not with 1m.
        let mut query = Engine::default().instant_query("up", 840_000).unwrap();
        let Value::Vector(v) = query.exec(&head).unwrap().value else {
            panic!("not a vector")
        };
        assert_eq!(v.len(), 2);
        query.set_lookback_delta(Duration::from_secs(60));
        let Value::Vector(v) = query.exec(&head).unwrap().value else {
            panic!("not a vector")
        };
        assert!(v.is_empty());
    }

    #[test]
    fn annotations_carry_positions() {
        let head = storage();
        let result = Engine::default()
            .instant_query("sum(rate(up[5m]))", 600_000)
            .unwrap()
            .exec(&head)
            .unwrap();
        assert_eq!(
            result.annotations.infos(),
            [
                r#"PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "up" (1:10)"#
            ]
        );
    }

    /// Every range step must give what an instant query at that time gives,
    /// whatever shortcuts the range evaluation takes across steps.
    fn assert_range_matches_instants(head: &Head, query: &str, end_ms: i64, step_ms: i64) {
        let engine = Engine::default();
        let range = engine
            .range_query(query, 0, end_ms, Duration::from_millis(step_ms as u64))
            .unwrap();
        let Value::Matrix(matrix) = range.exec(head).unwrap().value else {
            panic!("not a matrix")
        };
        let mut t = 0;
        while t <= end_ms {
            let Value::Vector(vector) = engine
                .instant_query(query, t)
                .unwrap()
                .exec(head)
                .unwrap()
                .value
            else {
                panic!("not a vector")
            };
            let mut at_step: Vec<(Labels, u64)> = matrix
                .iter()
                .filter_map(|s| {
                    let p = s.points.iter().find(|p| p.t == t)?;
                    Some((s.labels.clone(), p.v.to_bits()))
                })
                .collect();
            let mut instant: Vec<(Labels, u64)> = vector
                .iter()
                .map(|s| (s.labels.clone(), s.v.to_bits()))
                .collect();
            at_step.sort();
            instant.sort();
            assert_eq!(at_step, instant, "{query} at {t}");
            t += step_ms;
        }
    }

    #[test]
    fn range_counter_functions_match_instant_queries_across_resets() {
        let head = Head::new(HeadOptions::default());
        let mut appender = head.appender();
        for (series, reset_every) in [("steady", 0), ("once", 37), ("often", 5)] {
            let labels = Labels::from_pairs(&[("__name__", "c_total"), ("s", series)]);
            let mut value = 0.0;
            for i in 0..120 {
                if reset_every > 0 && i > 0 && i % reset_every == 0 {
                    value = 1.0;
                } else {
                    value += (i % 7) as f64 + 0.5;
                }
                appender
                    .append(None, &labels, ModelSample::new(i * 10_000, value))
                    .unwrap();
            }
        }
        appender.commit().unwrap();
        for query in [
            "rate(c_total[1m])",
            "increase(c_total[45s])",
            "rate(c_total[5m] offset 1m)",
            "sum by (s) (rate(c_total[2m]))",
        ] {
            assert_range_matches_instants(&head, query, 1_200_000, 15_000);
        }
    }

    #[test]
    fn many_series_load_in_label_order() {
        // Enough series for the loading to be split across threads.
        let head = Head::new(HeadOptions::default());
        let mut appender = head.appender();
        for i in 0..300 {
            let name = format!("{i:03}");
            let labels = Labels::from_pairs(&[("__name__", "m"), ("i", name.as_str())]);
            for t in 0..10 {
                let sample = ModelSample::new(t * 60_000, f64::from(i * 100 + t as i32));
                appender.append(None, &labels, sample).unwrap();
            }
        }
        appender.commit().unwrap();
        let result = Engine::default()
            .instant_query("m", 300_000)
            .unwrap()
            .exec(&head)
            .unwrap();
        let Value::Vector(vector) = result.value else {
            panic!("not a vector")
        };
        assert_eq!(vector.len(), 300);
        for (i, sample) in vector.iter().enumerate() {
            assert_eq!(sample.labels.get("i"), Some(format!("{i:03}").as_str()));
            assert_eq!(sample.v, (i * 100 + 5) as f64);
        }
        assert_range_matches_instants(&head, "m", 540_000, 60_000);
    }
}
