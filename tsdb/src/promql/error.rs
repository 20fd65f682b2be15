//! The errors of parsing and evaluating a query.

/// Why a query failed. The display strings follow Prometheus's wording, which
/// clients and the upstream test corpus match on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query text is not valid PromQL, or is valid but not allowed here
    /// (for example a range vector as the result of a range query).
    #[error("{message}")]
    Parse { message: String },
    /// Evaluation ran into a semantic error, such as many-to-many matching.
    #[error("{message}")]
    Evaluation { message: String },
    /// The query ran longer than its timeout.
    #[error("query timed out in {phase}")]
    Timeout { phase: &'static str },
    /// The caller cancelled the query.
    #[error("query was canceled in {phase}")]
    Canceled { phase: &'static str },
    /// The query would hold more samples in memory than allowed.
    #[error("query processing would load too many samples into memory in {phase}")]
    TooManySamples { phase: &'static str },
    /// The storage failed while the query read it.
    #[error("expanding series: {0}")]
    Storage(#[from] crate::Error),
    /// A remote query backend reported a failure of the given kind.
    #[error("{message}")]
    Backend { kind: ErrorKind, message: String },
}

/// The class of an [`Error`], matching the closed set of error types of the
/// Prometheus HTTP API (`bad_data`, `execution`, `timeout`, `canceled`,
/// `internal`), so that an API layer maps errors in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse { .. } => ErrorKind::BadData,
            Error::Evaluation { .. } | Error::TooManySamples { .. } => ErrorKind::Execution,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Canceled { .. } => ErrorKind::Canceled,
            Error::Storage(_) => ErrorKind::Internal,
            Error::Backend { kind, .. } => *kind,
        }
    }

    pub(crate) fn parse(message: impl Into<String>) -> Self {
        Error::Parse {
            message: message.into(),
        }
    }

    pub(crate) fn eval(message: impl Into<String>) -> Self {
        Error::Evaluation {
            message: message.into(),
        }
    }
}

/// `Result` with the PromQL [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
