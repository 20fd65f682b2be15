//! `GET|POST /api/v1/render`: a range query drawn as a PNG or SVG chart by
//! [`dashboards::chart`]. Parameters and answers: `docs/format/render.md`.
//!
//! The query runs like `query_range` (same engine, slots and limits); the
//! chart is drawn on the blocking pool. Bad parameters and failed queries
//! answer with the API's JSON error envelope; a result without data is a
//! "No data" chart, not an error.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dashboards::chart::{self, Chart, Format, MAX_SIDE, MIN_HEIGHT, MIN_WIDTH, Size, Unit};
use tsdb::model::TimeRange;

use super::Api;
use super::error::ApiError;
use super::params::{Params, parse_duration};

/// The range drawn when `start` is absent: the hour before `end`.
const DEFAULT_RANGE_MS: i64 = 3_600_000;
/// As `query_range`: the most points per series.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// What to draw, from the request's parameters.
#[derive(Debug, Clone, PartialEq)]
struct RenderRequest {
    query: String,
    range: TimeRange,
    step_ms: i64,
    format: Format,
    size: Size,
    unit: Option<Unit>,
    title: String,
}

impl RenderRequest {
    fn from_params(params: &Params, now_ms: i64) -> Result<Self, ApiError> {
        let query = params.get("query").to_string();
        if query.trim().is_empty() {
            return Err(ApiError::invalid_param("query", "empty query"));
        }
        let end = params.time("end", now_ms)?;
        let start = params.time("start", end.saturating_sub(DEFAULT_RANGE_MS))?;
        if end < start {
            return Err(ApiError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        let range = TimeRange::new(start, end);
        let step_ms = match params.get("step") {
            "" => chart::default_step_ms(range),
            s => parse_duration(s)
                .map_err(|e| ApiError::invalid_param("step", e))?
                .as_millis(),
        };
        if step_ms <= 0 {
            return Err(ApiError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .into(),
            ));
        }
        if end.saturating_sub(start) / step_ms > MAX_POINTS_PER_SERIES {
            return Err(ApiError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                    .into(),
            ));
        }
        let format = match params.get("format") {
            "" => Format::Png,
            s => s
                .parse()
                .map_err(|e| ApiError::invalid_param("format", e))?,
        };
        let unit = match params.get("unit") {
            "" => None,
            s => Some(s.parse().map_err(|e| ApiError::invalid_param("unit", e))?),
        };
        let size = Size::new(
            side(params, "width", Size::default().width, MIN_WIDTH)?,
            side(params, "height", Size::default().height, MIN_HEIGHT)?,
        );
        Ok(RenderRequest {
            query,
            range,
            step_ms,
            format,
            size,
            unit,
            title: params.get("title").to_string(),
        })
    }
}

/// A `width` or `height` in pixels, `default` when absent.
fn side(params: &Params, name: &str, default: u32, min: u32) -> Result<u32, ApiError> {
    match params.get(name) {
        "" => Ok(default),
        s => s
            .parse::<u32>()
            .ok()
            .filter(|n| (min..=MAX_SIDE).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_param(name, format!("want an integer from {min} to {MAX_SIDE}"))
            }),
    }
}

/// `GET|POST /api/v1/render`.
pub async fn render(State(api): State<Arc<Api>>, params: Params) -> Result<Response, ApiError> {
    let request = RenderRequest::from_params(&params, api.clock.now_ms())?;
    let step = Duration::from_millis(request.step_ms.unsigned_abs());
    let prepared = api
        .backend
        .engine()
        .range_query(&request.query, request.range.start, request.range.end, step)
        .map_err(|e| ApiError::invalid_param("query", e))?;
    let executed = api.backend.run(prepared).await?;
    let mut chart = Chart::from_value(
        &request.query,
        &executed.result.value,
        request.range,
        Some(request.step_ms),
    );
    if let Some(unit) = request.unit {
        chart.unit = unit;
    }
    if !request.title.is_empty() {
        chart.title = request.title;
    }
    let (format, size) = (request.format, request.size);
    let image = api
        .blocking(move || chart::render(&chart, format, size))
        .await?
        .map_err(|e| ApiError::Internal(format!("rendering the chart failed: {e}")))?;
    let headers = [
        (header::CONTENT_TYPE, format.content_type()),
        (header::CACHE_CONTROL, "no-store"),
    ];
    Ok((headers, image).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> Result<RenderRequest, ApiError> {
        RenderRequest::from_params(&Params::from_pairs(pairs), 10_000_000)
    }

    #[test]
    fn defaults_are_the_last_hour_as_an_800_by_400_png() {
        let r = request(&[("query", "up")]).unwrap();
        assert_eq!(r.range, TimeRange::new(10_000_000 - 3_600_000, 10_000_000));
        assert_eq!(r.step_ms, 14_000);
        assert_eq!((r.format, r.size), (Format::Png, Size::new(800, 400)));
        assert_eq!((r.unit, r.title.as_str()), (None, ""));
    }

    #[test]
    fn parameters_are_read() {
        let r = request(&[
            ("query", "rate(x[5m])"),
            ("start", "1000"),
            ("end", "2000"),
            ("step", "30s"),
            ("format", "svg"),
            ("width", "1200"),
            ("height", "300"),
            ("unit", "bytes"),
            ("title", "Traffic"),
        ])
        .unwrap();
        assert_eq!(r.range, TimeRange::new(1_000_000, 2_000_000));
        assert_eq!(r.step_ms, 30_000);
        assert_eq!((r.format, r.size), (Format::Svg, Size::new(1200, 300)));
        assert_eq!((r.unit, r.title.as_str()), (Some(Unit::Bytes), "Traffic"));
    }

    #[test]
    fn bad_parameters_are_bad_data() {
        let cases: [&[(&str, &str)]; 9] = [
            &[],
            &[("query", "up"), ("start", "20"), ("end", "10")],
            &[("query", "up"), ("step", "0")],
            &[("query", "up"), ("step", "-5s")],
            &[
                ("query", "up"),
                ("start", "0"),
                ("end", "100000"),
                ("step", "1"),
            ],
            &[("query", "up"), ("format", "gif")],
            &[("query", "up"), ("width", "10")],
            &[("query", "up"), ("height", "99999")],
            &[("query", "up"), ("unit", "furlongs")],
        ];
        for params in cases {
            let error = request(params).unwrap_err();
            assert!(
                matches!(error, ApiError::BadData(_)),
                "{params:?}: {error:?}"
            );
        }
    }
}
