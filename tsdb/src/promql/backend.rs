//! The query-level boundary for everything that consumes PromQL results
//! (rules, the autoscaler): instant and range queries returning typed values
//! plus annotations. The binary implements it twice: over the local engine
//! and over the HTTP API of a Prometheus-compatible server.

use std::future::Future;
use std::time::Duration;

use super::QueryResult;
use super::error::Result;
use crate::model::TimeRange;

/// Runs PromQL somewhere. Only `std` types, so `tsdb` stays free of any
/// async runtime; methods return futures, so use it as a generic parameter
/// (`Rules<B: QueryBackend>`), not as `dyn`.
pub trait QueryBackend: Send + Sync {
    /// Evaluates `query` at `at_ms` (milliseconds since the epoch).
    ///
    /// # Errors
    /// The backend's [`Error`](super::Error); its [`kind`](super::Error::kind)
    /// tells bad queries from execution failures and timeouts.
    fn instant(&self, query: &str, at_ms: i64) -> impl Future<Output = Result<QueryResult>> + Send;

    /// Evaluates `query` at every `step` in `range` (both ends inclusive).
    ///
    /// # Errors
    /// As [`QueryBackend::instant`].
    fn range(
        &self,
        query: &str,
        range: TimeRange,
        step: Duration,
    ) -> impl Future<Output = Result<QueryResult>> + Send;
}
