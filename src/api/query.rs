//! `query`, `query_range`, `query_exemplars` and `format_query`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use promql_parser::parser::Expr;

use super::error::ApiError;
use super::json::{self, Envelope};
use super::params::{MAX_TIME_MS, MIN_TIME_MS, Params};
use super::position::{self, describe_parse_error};
use super::{Api, ok};

/// Parses a PromQL expression; the error is `<line>:<col>: parse error: …`.
fn parse(query: &str) -> Result<Expr, String> {
    position::parse(query).map_err(|e| describe_parse_error(query, &e))
}

/// `GET|POST /api/v1/format_query`: the expression pretty-printed.
pub async fn format_query(params: Params) -> Result<Response, ApiError> {
    let expr = parse(params.get("query")).map_err(|e| ApiError::invalid_param("query", e))?;
    let mut data = String::new();
    json::write_str(&mut data, &expr.prettify());
    Ok(ok(Envelope::success(&data, &[], &[])))
}

/// `GET|POST /api/v1/query_exemplars`: Sextant stores no exemplars, so a
/// valid request answers `[]` (Grafana probes this to enable exemplars).
pub async fn query_exemplars(
    State(_api): State<Arc<Api>>,
    params: Params,
) -> Result<Response, ApiError> {
    let start = params.time("start", MIN_TIME_MS)?;
    let end = params.time("end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    parse(params.get("query")).map_err(ApiError::BadData)?;
    Ok(ok(Envelope::success("[]", &[], &[])))
}
