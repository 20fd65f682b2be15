//! `query`, `query_range`, `query_exemplars` and `format_query`.
//!
//! The life of a query: parameters are parsed and validated in
//! Prometheus's order; the text is parsed once here for a positioned parse
//! error; the engine prepares it with the effective timeout and lookback
//! delta; [`LocalBackend::run`](crate::backend::LocalBackend::run) waits for
//! a slot and evaluates it on the blocking pool (canceled if the client goes
//! away); the value is truncated to `limit` and written as JSON with the
//! engine's annotations as warnings and infos.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use promql_parser::parser::Expr;
use tsdb::promql::{Engine, EngineOptions, Value};

use super::error::ApiError;
use super::json::{self, Envelope};
use super::params::{MAX_TIME_MS, MIN_TIME_MS, Params, parse_duration, parse_time};
use super::position::{self, describe_parse_error};
use super::{Api, ok};
use crate::backend::Executed;

/// The most points a range query may return per series.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// `GET|POST /api/v1/query`.
pub async fn query(State(api): State<Arc<Api>>, params: Params) -> Result<Response, ApiError> {
    let limit = params.limit()?;
    let at = params.time("time", api.clock.now_ms())?;
    let timeout = params.duration("timeout")?;
    let lookback_delta = lookback_delta(&params)?;
    let text = params.get("query");
    check_parses(text)?;
    let engine = engine_for(&api, timeout);
    let mut prepared = engine
        .instant_query(text, at)
        .map_err(|e| ApiError::invalid_param("query", e))?;
    if let Some(lookback_delta) = lookback_delta {
        prepared.set_lookback_delta(lookback_delta);
    }
    let executed = api.backend.run(prepared).await?;
    respond(executed, limit, params.get("stats"))
}

/// `GET|POST /api/v1/query_range`.
pub async fn query_range(
    State(api): State<Arc<Api>>,
    params: Params,
) -> Result<Response, ApiError> {
    let limit = params.limit()?;
    let start = parse_time(params.get("start")).map_err(|e| ApiError::invalid_param("start", e))?;
    let end = parse_time(params.get("end")).map_err(|e| ApiError::invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    let step =
        parse_duration(params.get("step")).map_err(|e| ApiError::invalid_param("step", e))?;
    let Some(step) = step.to_std().filter(|s| s.as_millis() > 0) else {
        return Err(ApiError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    };
    let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
    if (end.saturating_sub(start)) / step_ms > MAX_POINTS_PER_SERIES {
        return Err(ApiError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                .into(),
        ));
    }
    let timeout = params.duration("timeout")?;
    let lookback_delta = lookback_delta(&params)?;
    let text = params.get("query");
    check_parses(text)?;
    let engine = engine_for(&api, timeout);
    let mut prepared = engine
        .range_query(text, start, end, step)
        .map_err(|e| ApiError::invalid_param("query", e))?;
    if let Some(lookback_delta) = lookback_delta {
        prepared.set_lookback_delta(lookback_delta);
    }
    let executed = api.backend.run(prepared).await?;
    respond(executed, limit, params.get("stats"))
}

/// A parse error with its position, as Prometheus reports it.
fn check_parses(text: &str) -> Result<(), ApiError> {
    parse(text)
        .map(drop)
        .map_err(|e| ApiError::invalid_param("query", e))
}

fn lookback_delta(params: &Params) -> Result<Option<Duration>, ApiError> {
    match params.get("lookback_delta") {
        "" => Ok(None),
        s => parse_duration(s)
            .map(|d| d.to_std())
            .map_err(|e| ApiError::BadData(format!("error parsing lookback delta duration: {e}"))),
    }
}

/// The backend's engine, with the `timeout` parameter when it is shorter
/// than the server's query timeout.
fn engine_for(api: &Api, timeout: Option<super::params::SignedDuration>) -> Engine {
    let base = api.backend.engine().options();
    let timeout = match timeout.map(|t| t.to_std()) {
        // A zero or negative timeout has already passed.
        Some(None) => Duration::ZERO,
        Some(Some(t)) => t.min(base.timeout),
        None => base.timeout,
    };
    Engine::new(EngineOptions {
        timeout,
        ..base.clone()
    })
}

fn respond(executed: Executed, limit: Option<usize>, stats: &str) -> Result<Response, ApiError> {
    let Executed {
        result,
        queue_time,
        exec_time,
    } = executed;
    let mut warnings = result.annotations.warnings().to_vec();
    let mut value = result.value;
    if let Some(limit) = limit
        && truncate(&mut value, limit)
    {
        warnings.push("results truncated due to limit".into());
    }
    let mut data = String::with_capacity(256);
    data.push_str(r#"{"resultType":"#);
    json::write_str(&mut data, value.type_name());
    data.push_str(r#","result":"#);
    write_value(&mut data, &value);
    if !stats.is_empty() {
        let eval = exec_time.as_secs_f64();
        let _ = write!(
            data,
            r#","stats":{{"timings":{{"evalTotalTime":{eval},"execQueueTime":{},"execTotalTime":{}}}}}"#,
            queue_time.as_secs_f64(),
            (queue_time + exec_time).as_secs_f64(),
        );
    }
    data.push('}');
    Ok(ok(Envelope::success(
        &data,
        &warnings,
        result.annotations.infos(),
    )))
}

/// Keeps the first `limit` samples or series; true when some were cut.
fn truncate(value: &mut Value, limit: usize) -> bool {
    match value {
        Value::Vector(vector) if vector.len() > limit => {
            vector.truncate(limit);
            true
        }
        Value::Matrix(matrix) if matrix.len() > limit => {
            matrix.truncate(limit);
            true
        }
        _ => false,
    }
}

/// The `result` of a query in the API's JSON shapes.
fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Scalar(scalar) => json::write_scalar(out, scalar.t, scalar.v),
        Value::String(string) => json::write_string_result(out, string.t, &string.v),
        Value::Vector(vector) => {
            out.push('[');
            for (i, sample) in vector.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                json::write_labels(out, &sample.labels);
                out.push_str(r#","value":"#);
                json::write_sample(out, sample.t, sample.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(matrix) => {
            out.push('[');
            for (i, series) in matrix.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                json::write_labels(out, &series.labels);
                if !series.points.is_empty() {
                    out.push_str(r#","values":["#);
                    for (j, point) in series.points.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        json::write_sample(out, point.t, point.v);
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push(']');
        }
    }
}

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
