//! `GET /api/v1/recommendations/chart`: the recommendations as charts
//! (`docs/format/recommendations-api.md`, "Charts").
//!
//! - `chart=vpa` (default): one container's usage of one resource over time
//!   (the busiest pod at each step) with the current VPA lower bound, target
//!   and upper bound, and the container's request over time.
//! - `chart=hpa`: the HPA backtest of the workload over the range: the
//!   replicas that ran and the replicas the backtested HPA would have run,
//!   above the largest metric's usage relative to its target, with both.
//!
//! The same conversions feed `sextant backtest ... --chart FILE`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use autoscaler::backtest;
use autoscaler::controller::decode::by_pod_container;
use autoscaler::controller::{WorkloadKind, WorkloadRef, queries};
use autoscaler::recommender::{
    ResourceRecommendation, VpaSettings, WorkloadRecommendation, WorkloadSpec,
};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dashboards::chart::{self, Chart, Format, MAX_SIDE, MIN_HEIGHT, MIN_WIDTH, Size, Unit};
use dashboards::recommendation::{
    HpaBacktest, MetricTimeline, Resource, VpaHistory, constant, hpa_backtest_charts, vpa_chart,
};
use tsdb::model::TimeRange;
use tsdb::promql::QueryBackend;

use super::Api;
use super::error::ApiError;
use super::params::Params;

/// The range charted when the request names none and the recommendation has
/// no history bounds: the day before the report.
const DEFAULT_RANGE_MS: i64 = 86_400_000;
/// The longest HPA backtest the endpoint replays (every 15 s).
const MAX_HPA_RANGE_MS: i64 = 2 * 86_400_000;

/// The kube-state-metrics name of a resource.
fn resource_name(resource: Resource) -> &'static str {
    match resource {
        Resource::Cpu => "cpu",
        Resource::Memory => "memory",
    }
}

/// Per timestamp, the largest value among the series of `container` in a
/// `by (pod, container)` result: the busiest pod.
fn busiest(value: &tsdb::promql::Value, container: &str) -> Vec<(i64, f64)> {
    let mut max: BTreeMap<i64, f64> = BTreeMap::new();
    for ((_, c), points) in by_pod_container(value) {
        if c != container {
            continue;
        }
        for (t, v) in points {
            max.entry(t).and_modify(|m| *m = m.max(v)).or_insert(v);
        }
    }
    max.into_iter().collect()
}

/// One container's usage and request over `range` from `backend`, with the
/// bounds of `recommendation` (the ones in force now) as constant lines.
/// With `trim_start`, the range starts at the first usage or request point
/// (a recommender's history window is often longer than the data).
///
/// # Errors
/// When a query fails.
pub async fn vpa_history<B: QueryBackend>(
    backend: &B,
    workload: &WorkloadRef,
    container: &str,
    resource: Resource,
    recommendation: Option<&ResourceRecommendation>,
    range: TimeRange,
    trim_start: bool,
) -> Result<VpaHistory, tsdb::promql::Error> {
    let fetch = |range: TimeRange| async move {
        let step_ms = chart::default_step_ms(range).max(1);
        let step = Duration::from_millis(step_ms.unsigned_abs());
        let usage_query = match resource {
            // The rate window covers the step (at least a minute, so that a
            // rate has two samples at common scrape intervals).
            Resource::Cpu => queries::cpu_usage(workload, step.max(Duration::from_secs(60))),
            Resource::Memory => queries::memory_working_set(workload),
        };
        let usage = backend.range(&usage_query, range, step).await?;
        let requests = backend
            .range(
                &queries::requests(workload, resource_name(resource)),
                range,
                step,
            )
            .await?;
        Ok::<_, tsdb::promql::Error>((
            step_ms,
            busiest(&usage.value, container),
            busiest(&requests.value, container),
        ))
    };
    let mut range = range;
    let (mut step_ms, mut usage, mut request) = fetch(range).await?;
    let first = usage
        .first()
        .into_iter()
        .chain(request.first())
        .map(|p| p.0)
        .min();
    if let Some(first) = first.filter(|&f| trim_start && f > range.start.saturating_add(step_ms)) {
        // A step before the first point: the data starts within it.
        range = TimeRange::new(first.saturating_sub(step_ms).max(range.start), range.end);
        (step_ms, usage, request) = fetch(range).await?;
    }
    let line = |f: fn(&ResourceRecommendation) -> f64| {
        recommendation.map_or_else(Vec::new, |r| constant(range, f(r)))
    };
    Ok(VpaHistory {
        container: format!("{}/{}/{container}", workload.namespace, workload.name),
        resource,
        range,
        step_ms: Some(step_ms),
        usage,
        lower_bound: line(|r| r.lower_bound),
        target: line(|r| r.target),
        upper_bound: line(|r| r.upper_bound),
        request,
    })
}

/// The chart shape of an HPA backtest: replicas (actual and backtested, with
/// the spec's bounds) and the largest metric's usage over its target, with
/// the backtested replicas and with the replicas that ran.
///
/// The range starts at the first sync with data (actual replicas or a
/// metric), so that history without the workload is left out.
pub fn hpa_chart_input(result: &backtest::HpaBacktest) -> HpaBacktest {
    let first = result
        .timeline
        .iter()
        .find(|s| s.actual_replicas.is_some() || s.usage_ratio.is_some())
        .map_or(result.from_ms, |s| s.t_ms);
    let range = TimeRange::new(first.clamp(result.from_ms, result.to_ms), result.to_ms);
    let percent = |ratio: Option<f64>| ratio.map(|r| r * 100.0);
    let points = |f: &dyn Fn(&backtest::HpaStep) -> Option<f64>| -> Vec<(i64, f64)> {
        result
            .timeline
            .iter()
            .filter_map(|s| f(s).map(|v| (s.t_ms, v)))
            .collect()
    };
    let step_ms = (result.summary.sync_period_seconds * 1000.0).round() as i64;
    HpaBacktest {
        workload: format!(
            "{}/{:?}/{}",
            result.workload.namespace, result.workload.kind, result.workload.name
        ),
        range,
        step_ms: (step_ms > 0).then_some(step_ms),
        actual_replicas: points(&|s| s.actual_replicas.map(f64::from)),
        desired_replicas: points(&|s| Some(f64::from(s.replicas))),
        min_replicas: u32::try_from(result.spec.min_replicas_or_default()).ok(),
        max_replicas: u32::try_from(result.spec.max_replicas).ok(),
        metrics: vec![
            MetricTimeline {
                name: "usage / target, backtest replicas".into(),
                unit: Unit::Percent,
                values: points(&|s| percent(s.usage_ratio)),
                target: constant(range, 100.0),
            },
            MetricTimeline {
                name: "usage / target, actual replicas".into(),
                unit: Unit::Percent,
                values: points(&|s| percent(s.actual_usage_ratio)),
                target: constant(range, 100.0),
            },
        ],
    }
}

/// Which chart a request asks for.
#[derive(Debug, Clone, PartialEq)]
enum Which {
    Vpa {
        container: Option<String>,
        resource: Resource,
    },
    Hpa,
}

#[derive(Debug, Clone, PartialEq)]
struct ChartRequest {
    namespace: String,
    kind: String,
    name: String,
    which: Which,
    start: Option<i64>,
    end: Option<i64>,
    format: Format,
    size: Size,
}

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

impl ChartRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let required = |name: &str| -> Result<String, ApiError> {
            match params.get(name) {
                "" => Err(ApiError::invalid_param(name, "required")),
                v => Ok(v.to_string()),
            }
        };
        let which = match params.get("chart") {
            "" | "vpa" => Which::Vpa {
                container: Some(params.get("container"))
                    .filter(|c| !c.is_empty())
                    .map(str::to_string),
                resource: match params.get("resource") {
                    "" | "cpu" => Resource::Cpu,
                    "memory" => Resource::Memory,
                    other => {
                        return Err(ApiError::invalid_param(
                            "resource",
                            format!("{other:?}: want cpu or memory"),
                        ));
                    }
                },
            },
            "hpa" => Which::Hpa,
            other => {
                return Err(ApiError::invalid_param(
                    "chart",
                    format!("{other:?}: want vpa or hpa"),
                ));
            }
        };
        let time = |name: &str| -> Result<Option<i64>, ApiError> {
            match params.get(name) {
                "" => Ok(None),
                _ => params.time(name, 0).map(Some),
            }
        };
        let format = match params.get("format") {
            "" => Format::Png,
            s => s
                .parse()
                .map_err(|e| ApiError::invalid_param("format", e))?,
        };
        Ok(ChartRequest {
            namespace: required("namespace")?,
            kind: required("kind")?,
            name: required("name")?,
            which,
            start: time("start")?,
            end: time("end")?,
            format,
            size: Size::new(
                side(params, "width", Size::default().width, MIN_WIDTH)?,
                side(params, "height", Size::default().height, MIN_HEIGHT)?,
            ),
        })
    }

    /// The range: as asked, else the recommendation's history up to the
    /// report, else the day before the report.
    fn range(
        &self,
        workload: &WorkloadRecommendation,
        report_ms: i64,
    ) -> Result<TimeRange, ApiError> {
        let end = self
            .end
            .or(workload.inputs.history_end_ms)
            .unwrap_or(report_ms);
        let start = self.start.unwrap_or_else(|| {
            workload
                .inputs
                .history_start_ms
                .filter(|&s| s < end)
                .unwrap_or(end.saturating_sub(DEFAULT_RANGE_MS))
        });
        if end <= start {
            return Err(ApiError::BadData(
                "end timestamp must be after start time".into(),
            ));
        }
        Ok(TimeRange::new(start, end))
    }
}

/// The configured spec of the workload (custom metric queries included),
/// else one made from the report.
fn workload_spec(api: &Api, rec: &WorkloadRecommendation) -> WorkloadSpec {
    crate::config::Config::from_yaml(&api.info.config_yaml(), "configuration")
        .ok()
        .and_then(|c| {
            c.autoscaler
                .workloads
                .into_iter()
                .find(|w| w.namespace == rec.namespace && w.kind == rec.kind && w.name == rec.name)
        })
        .unwrap_or_else(|| WorkloadSpec {
            namespace: rec.namespace.clone(),
            kind: rec.kind,
            name: rec.name.clone(),
            hpa: rec.hpa.as_ref().map(|h| h.spec.clone()),
            metric_queries: BTreeMap::new(),
            vpa: VpaSettings::default(),
        })
}

/// `GET /api/v1/recommendations/chart`.
pub async fn chart(State(api): State<Arc<Api>>, params: Params) -> Result<Response, ApiError> {
    let request = ChartRequest::from_params(&params)?;
    let report = api
        .recommendations
        .read()
        .clone()
        .ok_or_else(|| ApiError::NotFound("no recommendations yet".into()))?;
    let workload = report
        .workloads
        .iter()
        .find(|w| {
            w.namespace == request.namespace
                && kind_name(w.kind).eq_ignore_ascii_case(&request.kind)
                && w.name == request.name
        })
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no recommendation for {}/{}/{}",
                request.namespace, request.kind, request.name
            ))
        })?;
    let range = request.range(workload, report.time_ms)?;
    let charts: Vec<Chart> = match &request.which {
        Which::Vpa {
            container,
            resource,
        } => {
            let container = match container {
                Some(c) => c.clone(),
                None => workload
                    .containers
                    .first()
                    .map(|c| c.name.clone())
                    .ok_or_else(|| ApiError::NotFound("the workload has no containers".into()))?,
            };
            let recommendation = workload
                .containers
                .iter()
                .find(|c| c.name == container)
                .ok_or_else(|| {
                    ApiError::NotFound(format!("the workload has no container {container:?}"))
                })?;
            let recommendation = Some(recommendation).and_then(|c| match resource {
                Resource::Cpu => c.cpu.as_ref(),
                Resource::Memory => c.memory.as_ref(),
            });
            let history = vpa_history(
                &*api.backend,
                &workload.workload(),
                &container,
                *resource,
                recommendation,
                range,
                request.start.is_none(),
            )
            .await?;
            vec![vpa_chart(&history)]
        }
        Which::Hpa => {
            let spec = workload_spec(&api, workload);
            let range = TimeRange::new(
                range.start.max(range.end.saturating_sub(MAX_HPA_RANGE_MS)),
                range.end,
            );
            let options = backtest::Options::new(range.start, range.end);
            let result = backtest::hpa(&*api.backend, &spec, &options)
                .await
                .map_err(|e| match e {
                    autoscaler::Error::Query { source, .. } => ApiError::Query(source),
                    autoscaler::Error::InvalidSpec { .. } => ApiError::BadData(e.to_string()),
                    other => ApiError::Internal(other.to_string()),
                })?;
            hpa_backtest_charts(&hpa_chart_input(&result))
        }
    };
    let (format, mut size) = (request.format, request.size);
    if params.get("height").is_empty() {
        // Stacked panels get the default height each.
        let panels = u32::try_from(charts.len()).unwrap_or(1).max(1);
        size.height = size.height.saturating_mul(panels).min(MAX_SIDE);
    }
    let image = api
        .blocking(move || chart::render_panels(&charts, format, size))
        .await?
        .map_err(|e| ApiError::Internal(format!("rendering the chart failed: {e}")))?;
    let headers = [
        (header::CONTENT_TYPE, format.content_type()),
        (header::CACHE_CONTROL, "no-store"),
    ];
    Ok((headers, image).into_response())
}

/// The kind as the API and Kubernetes spell it.
pub fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
        WorkloadKind::DaemonSet => "DaemonSet",
        WorkloadKind::ReplicaSet => "ReplicaSet",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> Result<ChartRequest, ApiError> {
        ChartRequest::from_params(&Params::from_pairs(pairs))
    }

    const WORKLOAD: [(&str, &str); 3] = [
        ("namespace", "shop"),
        ("kind", "Deployment"),
        ("name", "web"),
    ];

    #[test]
    fn parameters_are_read_and_checked() {
        let r = request(&WORKLOAD).unwrap();
        assert_eq!(
            r.which,
            Which::Vpa {
                container: None,
                resource: Resource::Cpu
            }
        );
        assert_eq!((r.format, r.start, r.end), (Format::Png, None, None));
        let mut pairs = WORKLOAD.to_vec();
        pairs.extend([
            ("container", "nginx"),
            ("resource", "memory"),
            ("format", "svg"),
            ("start", "100"),
            ("end", "200"),
        ]);
        let r = request(&pairs).unwrap();
        assert_eq!(
            r.which,
            Which::Vpa {
                container: Some("nginx".into()),
                resource: Resource::Memory
            }
        );
        assert_eq!((r.start, r.end), (Some(100_000), Some(200_000)));
        let mut hpa = WORKLOAD.to_vec();
        hpa.push(("chart", "hpa"));
        assert_eq!(request(&hpa).unwrap().which, Which::Hpa);
        for bad in [
            ("chart", "pie"),
            ("resource", "gpu"),
            ("format", "gif"),
            ("width", "5"),
        ] {
            let mut pairs = WORKLOAD.to_vec();
            pairs.push(bad);
            assert!(
                matches!(request(&pairs), Err(ApiError::BadData(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            request(&[("namespace", "shop"), ("kind", "Deployment")]),
            Err(ApiError::BadData(_))
        ));
    }

    #[test]
    fn busiest_pod_per_step_of_one_container() {
        use tsdb::model::Labels;
        use tsdb::promql::{Point, Series, Value};
        let series = |pod: &str, container: &str, points: Vec<(i64, f64)>| Series {
            labels: Labels::from_pairs(&[("pod", pod), ("container", container)]),
            points: points.into_iter().map(|(t, v)| Point::new(t, v)).collect(),
        };
        let value = Value::Matrix(vec![
            series("a", "app", vec![(0, 1.0), (10, 5.0)]),
            series("b", "app", vec![(0, 3.0), (10, 2.0), (20, 4.0)]),
            series("a", "sidecar", vec![(0, 9.0)]),
        ]);
        assert_eq!(busiest(&value, "app"), [(0, 3.0), (10, 5.0), (20, 4.0)]);
        assert!(busiest(&value, "none").is_empty());
    }
}
