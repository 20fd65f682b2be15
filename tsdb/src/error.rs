//! The crate's error type.

use std::path::PathBuf;

use crate::model::Labels;

/// Errors of the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("io error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupted data in {path} at offset {offset}: {reason}")]
    Corrupted {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("invalid input for a block: {reason}")]
    InvalidBlockInput { reason: String },
    #[error("database directory {path} is locked: another process has it open")]
    Locked { path: PathBuf },
    #[error("invalid matcher for label {name:?}: {reason}")]
    InvalidMatcher { name: String, reason: String },
    #[error("append rejected: {0}")]
    Append(#[from] AppendError),
}

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one sample was not appended. The caller decides whether that fails
/// the whole batch (the scraper counts and reports them instead).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppendError {
    #[error(
        "out of order sample for series {labels}: timestamp {t} is before the series' last timestamp {last_t}"
    )]
    OutOfOrderSample { labels: Labels, t: i64, last_t: i64 },
    #[error(
        "duplicate sample for series {labels} at timestamp {t}: stored value {stored}, new value {new}"
    )]
    DuplicateSample {
        labels: Labels,
        t: i64,
        stored: f64,
        new: f64,
    },
    #[error(
        "sample for series {labels} at timestamp {t} is out of bounds: older than {min_t}, the oldest time the head accepts"
    )]
    OutOfBounds { labels: Labels, t: i64, min_t: i64 },
    #[error("series {labels} is invalid: {reason}")]
    InvalidSeries { labels: Labels, reason: String },
    #[error("unknown series reference {0}")]
    UnknownSeriesRef(u64),
    #[error("series limit of {limit} active series reached, new series {labels} rejected")]
    SeriesLimitExceeded { labels: Labels, limit: usize },
}
