//! The error envelope: every failure of an API handler becomes an
//! [`ApiError`], and [`ApiError::error_type`] is the one place that maps a
//! failure to Prometheus's closed set of error types and HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tsdb::promql::ErrorKind;

use super::json::Envelope;

/// Prometheus's error types (`web/api/v1/api.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    Unavailable,
    NotFound,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            // 499 "client closed request", as Prometheus answers (nobody is
            // left to read it, but it shows in logs and metrics).
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::Internal | ErrorType::Unavailable => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// Why an API request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A missing or invalid parameter, or a query that does not parse.
    #[error("{0}")]
    BadData(String),
    /// Reading storage failed.
    #[error("{0}")]
    Storage(#[from] tsdb::Error),
    /// The query engine failed; its kind decides the error type.
    #[error("{0}")]
    Query(#[from] tsdb::promql::Error),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// Anything else that is our fault.
    #[error("{0}")]
    Internal(String),
    /// The server runs in a mode without this endpoint (agent mode has no
    /// local data); Prometheus answers `execution` (422) then.
    #[error("{0}")]
    Unsupported(String),
    /// The endpoint is turned off by a flag (the admin APIs).
    #[error("{0}")]
    Disabled(String),
}

impl ApiError {
    /// `invalid parameter "<name>": <reason>`, as Prometheus words it.
    pub fn invalid_param(name: &str, reason: impl std::fmt::Display) -> Self {
        ApiError::BadData(format!("invalid parameter {name:?}: {reason}"))
    }

    /// The one mapping from failures to error types (and so HTTP statuses).
    pub fn error_type(&self) -> ErrorType {
        match self {
            ApiError::BadData(_) => ErrorType::BadData,
            ApiError::Storage(_) | ApiError::Internal(_) => ErrorType::Internal,
            ApiError::NotFound(_) => ErrorType::NotFound,
            ApiError::Unsupported(_) => ErrorType::Execution,
            ApiError::Disabled(_) => ErrorType::Unavailable,
            ApiError::Query(error) => match error.kind() {
                ErrorKind::BadData => ErrorType::BadData,
                ErrorKind::Execution => ErrorType::Execution,
                ErrorKind::Timeout => ErrorType::Timeout,
                ErrorKind::Canceled => ErrorType::Canceled,
                ErrorKind::Internal => ErrorType::Internal,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error_type = self.error_type();
        if error_type == ErrorType::Internal {
            tracing::warn!(error = %self, "API request failed");
        }
        Envelope::error(error_type, &self.to_string()).into_response(error_type.status())
    }
}

#[cfg(test)]
mod tests {
    use tsdb::promql::Error;

    use super::*;

    #[test]
    fn maps_failures_to_prometheus_statuses() {
        let cases = [
            (ApiError::BadData("x".into()), "bad_data", 400),
            (
                ApiError::Query(Error::Evaluation {
                    message: "x".into(),
                }),
                "execution",
                422,
            ),
            (
                ApiError::Query(Error::TooManySamples { phase: "x" }),
                "execution",
                422,
            ),
            (
                ApiError::Query(Error::Timeout { phase: "x" }),
                "timeout",
                503,
            ),
            (
                ApiError::Query(Error::Canceled { phase: "x" }),
                "canceled",
                499,
            ),
            (
                ApiError::Query(Error::Parse {
                    message: "x".into(),
                }),
                "bad_data",
                400,
            ),
            (ApiError::Internal("x".into()), "internal", 500),
            (ApiError::NotFound("x".into()), "not_found", 404),
        ];
        for (error, name, status) in cases {
            assert_eq!(error.error_type().as_str(), name);
            assert_eq!(error.error_type().status().as_u16(), status, "{name}");
        }
        assert_eq!(
            ApiError::invalid_param("step", "cannot parse \"x\" to a valid duration").to_string(),
            r#"invalid parameter "step": cannot parse "x" to a valid duration"#
        );
    }
}
