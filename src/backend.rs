//! [`LocalBackend`]: the PromQL engine over the local storage, as a
//! [`QueryBackend`] for rules and the autoscaler, and as the runner of the
//! HTTP API's queries. Queries run on tokio's blocking pool (the engine is
//! synchronous), at most `max_concurrent` at once; a query whose caller goes
//! away is canceled.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::metrics::{Counter, DURATION_BUCKETS, Family, Gauge, Histogram, Registry};
use tsdb::model::TimeRange;
use tsdb::promql::{
    CancelHandle, Engine, EngineOptions, Error, ErrorKind, Query, QueryBackend, QueryResult,
};
use tsdb::storage::Queryable;

/// Queries evaluated at once by default (Prometheus's
/// `--query.max-concurrency`).
pub const DEFAULT_MAX_CONCURRENT_QUERIES: usize = 20;

/// The engine, the storage it reads, and the concurrency limit.
pub struct LocalBackend {
    storage: Arc<dyn Queryable>,
    engine: Engine,
    slots: Arc<Semaphore>,
    metrics: QueryMetrics,
}

/// The engine's self-monitoring.
struct QueryMetrics {
    /// Queries waiting for a slot or running.
    in_flight: Arc<Gauge>,
    /// Seconds spent per slice: `queue_time`, `exec_time`.
    durations: Arc<Family<Histogram>>,
    /// Failed queries by error type.
    failures: Arc<Family<Counter>>,
}

impl QueryMetrics {
    fn register(registry: &Registry, max_concurrent_queries: usize) -> Self {
        registry
            .gauge(
                "sextant_engine_queries_concurrent_max",
                "The most queries evaluated at once.",
                &[],
            )
            .with(&[])
            .set(max_concurrent_queries as f64);
        QueryMetrics {
            in_flight: registry
                .gauge(
                    "sextant_engine_queries",
                    "Queries waiting for a slot or being evaluated.",
                    &[],
                )
                .with(&[]),
            durations: registry.histogram(
                "sextant_engine_query_duration_seconds",
                "Query time by slice: waiting for a slot (queue_time) and evaluating (exec_time).",
                &["slice"],
                DURATION_BUCKETS,
            ),
            failures: registry.counter(
                "sextant_engine_query_failures_total",
                "Queries that failed, by error type.",
                &["reason"],
            ),
        }
    }
}

/// A finished query and how long it waited and ran.
#[derive(Debug)]
pub struct Executed {
    pub result: QueryResult,
    /// Waiting for a free slot.
    pub queue_time: Duration,
    /// Evaluating.
    pub exec_time: Duration,
}

impl LocalBackend {
    /// The engine's figures go into `registry`.
    pub fn new(
        storage: Arc<dyn Queryable>,
        options: EngineOptions,
        max_concurrent_queries: usize,
        registry: &Registry,
    ) -> Self {
        let max_concurrent_queries = max_concurrent_queries.max(1);
        LocalBackend {
            storage,
            engine: Engine::new(options),
            slots: Arc::new(Semaphore::new(max_concurrent_queries)),
            metrics: QueryMetrics::register(registry, max_concurrent_queries),
        }
    }

    pub fn storage(&self) -> &Arc<dyn Queryable> {
        &self.storage
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs a prepared query once a slot is free. Dropping the returned
    /// future (the client went away) cancels the query.
    ///
    /// # Errors
    /// The engine's errors; a failed worker thread is an internal error.
    pub async fn run(&self, query: Query) -> Result<Executed, Error> {
        self.metrics.in_flight.add(1.0);
        let mut in_flight = InFlight {
            metrics: &self.metrics,
            finished: false,
        };
        let outcome = self.run_counted(query).await;
        in_flight.finished = true;
        match &outcome {
            Ok(executed) => {
                let durations = &self.metrics.durations;
                durations
                    .with(&["queue_time"])
                    .observe(executed.queue_time.as_secs_f64());
                durations
                    .with(&["exec_time"])
                    .observe(executed.exec_time.as_secs_f64());
            }
            Err(error) => {
                let reason = match error.kind() {
                    ErrorKind::BadData => "bad_data",
                    ErrorKind::Execution => "execution",
                    ErrorKind::Timeout => "timeout",
                    ErrorKind::Canceled => "canceled",
                    ErrorKind::Internal => "internal",
                };
                self.metrics.failures.with(&[reason]).inc();
            }
        }
        outcome
    }

    async fn run_counted(&self, query: Query) -> Result<Executed, Error> {
        let queued = Instant::now();
        let mut guard = CancelOnDrop(Some(query.cancel_handle()));
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| Error::Backend {
                kind: ErrorKind::Canceled,
                message: "query was canceled: the server is shutting down".into(),
            })?;
        let queue_time = queued.elapsed();
        let storage = Arc::clone(&self.storage);
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            // The slot stays taken while the query runs, even if its caller
            // is gone.
            let _permit = permit;
            query.exec(&*storage)
        })
        .await;
        guard.0 = None;
        let result = outcome.map_err(|e| Error::Backend {
            kind: ErrorKind::Internal,
            message: format!("query worker failed: {e}"),
        })??;
        Ok(Executed {
            result,
            queue_time,
            exec_time: started.elapsed(),
        })
    }
}

/// Counts a query out of the in-flight gauge when it ends, however it ends;
/// a query whose caller went away counts as canceled.
struct InFlight<'a> {
    metrics: &'a QueryMetrics,
    finished: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.add(-1.0);
        if !self.finished {
            self.metrics.failures.with(&["canceled"]).inc();
        }
    }
}

/// Cancels the query unless disarmed (set to `None`) first.
struct CancelOnDrop(Option<CancelHandle>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = &self.0 {
            cancel.cancel();
        }
    }
}

impl QueryBackend for LocalBackend {
    fn instant(
        &self,
        query: &str,
        at_ms: i64,
    ) -> impl Future<Output = tsdb::promql::Result<QueryResult>> + Send {
        let prepared = self.engine.instant_query(query, at_ms);
        async move { Ok(self.run(prepared?).await?.result) }
    }

    fn range(
        &self,
        query: &str,
        range: TimeRange,
        step: Duration,
    ) -> impl Future<Output = tsdb::promql::Result<QueryResult>> + Send {
        let prepared = self.engine.range_query(query, range.start, range.end, step);
        async move { Ok(self.run(prepared?).await?.result) }
    }
}

#[cfg(test)]
mod tests {
    use tsdb::model::{Labels, Matcher, Sample};
    use tsdb::promql::Value;
    use tsdb::storage::{Querier, SelectHints, Series, SeriesSet};

    use super::*;

    /// One series, `up{job="a"}`, with a sample every 15 s from 0 to 60 s.
    /// With a gate, `querier` waits until the gate opens (or closes).
    #[derive(Default)]
    struct OneSeries {
        gate: Option<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
    }

    impl Queryable for OneSeries {
        fn querier(&self, _range: TimeRange) -> tsdb::Result<Box<dyn Querier + '_>> {
            if let Some(gate) = &self.gate {
                let _ = gate.lock().unwrap().recv();
            }
            Ok(Box::new(OneSeries::default()))
        }
    }

    impl Querier for OneSeries {
        fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> tsdb::Result<SeriesSet> {
            let labels = Labels::from_pairs(&[("__name__", "up"), ("job", "a")]);
            if !matchers.iter().all(|m| m.matches_labels(&labels)) {
                return Ok(SeriesSet::default());
            }
            let samples = (0..=4)
                .map(|i| Sample::new(i * 15_000, 1.0))
                .filter(|s| s.t >= hints.start && s.t <= hints.end)
                .collect();
            Ok(SeriesSet {
                series: vec![Series::from_samples(labels, samples)],
                warnings: Vec::new(),
            })
        }

        fn label_names(&self, _matchers: &[Matcher]) -> tsdb::Result<Vec<String>> {
            Ok(vec!["__name__".into(), "job".into()])
        }

        fn label_values(&self, _name: &str, _matchers: &[Matcher]) -> tsdb::Result<Vec<String>> {
            Ok(Vec::new())
        }
    }

    fn backend() -> LocalBackend {
        LocalBackend::new(
            Arc::new(OneSeries::default()),
            EngineOptions::default(),
            2,
            &Registry::new(),
        )
    }

    #[tokio::test]
    async fn answers_instant_and_range_queries() {
        let backend = backend();
        let result = backend.instant("sum(up)", 30_000).await.unwrap();
        let Value::Vector(vector) = result.value else {
            panic!("not a vector: {:?}", result.value);
        };
        assert_eq!(vector.len(), 1);
        assert_eq!(vector[0].v, 1.0);

        let result = backend
            .range("up", TimeRange::new(0, 60_000), Duration::from_secs(30))
            .await
            .unwrap();
        let Value::Matrix(matrix) = result.value else {
            panic!("not a matrix");
        };
        assert_eq!(matrix[0].points.len(), 3);
    }

    #[tokio::test]
    async fn errors_keep_their_kind() {
        let backend = backend();
        let error = backend.instant("sum(", 0).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::BadData);
    }

    #[tokio::test]
    async fn a_dropped_caller_cancels_its_query() {
        let (open, gate) = std::sync::mpsc::channel();
        let storage = OneSeries {
            gate: Some(std::sync::Mutex::new(gate)),
        };
        let registry = Registry::new();
        let backend = LocalBackend::new(Arc::new(storage), EngineOptions::default(), 1, &registry);
        let query = backend.engine().instant_query("up", 0).unwrap();
        let cancel = query.cancel_handle();
        // Polled once: the query now runs on a worker, held at the gate.
        let mut run = Box::pin(backend.run(query));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(run.as_mut().poll(&mut context).is_pending());
        drop(run);
        assert!(cancel.is_canceled());
        open.send(()).unwrap();
        // The slot frees once the canceled query ends; the next one runs.
        drop(open);
        let result = backend.instant("up", 0).await.unwrap();
        assert!(matches!(result.value, Value::Vector(_)));
        let metrics = registry.render();
        assert!(
            metrics.contains("\nsextant_engine_queries 0\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("sextant_engine_query_failures_total{reason=\"canceled\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics
                .contains("sextant_engine_query_duration_seconds_count{slice=\"exec_time\"} 1\n"),
            "{metrics}"
        );
    }
}
