//! The crate's error type.

use crate::quantity::ParseQuantityError;

/// Errors of the autoscaler crate. Per-metric failures inside an HPA reconcile are not
/// errors but values ([`crate::hpa::MetricError`]), as the controller reports them in
/// conditions and keeps going.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Quantity(#[from] ParseQuantityError),
    #[error("invalid spec field {field}: {reason}")]
    InvalidSpec { field: String, reason: String },
    #[error("invalid histogram options: {0}")]
    InvalidHistogramOptions(String),
    #[error("invalid histogram checkpoint: {0}")]
    InvalidCheckpoint(String),
    #[error("invalid vector file {path}: {reason}")]
    InvalidVectorFile { path: String, reason: String },
    #[error("query {query} failed: {source}")]
    Query {
        query: String,
        #[source]
        source: tsdb::promql::Error,
    },
    #[error("query {query} returned no data")]
    NoData { query: String },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
