//! The chart shapes of the autoscaler's output, as plain [`Chart`]s.
//!
//! - [`vpa_chart`]: one container's usage of one resource over time with the
//!   VPA lower bound, target and upper bound and the current request: where
//!   usage crosses the request, the container was throttled (CPU) or at risk
//!   of OOM (memory).
//! - [`hpa_backtest_charts`]: a workload's replica timeline (what ran and
//!   what the backtested HPA would have chosen) above one panel per metric
//!   with its target; render them with [`crate::chart::render_panels`].
//!
//! The inputs are timelines of `(t_ms, value)`; constant lines (a request that
//! never changed, a fixed target) come from [`constant`].

use tsdb::model::TimeRange;

use crate::chart::{Chart, Rgb, Series, Unit};

const USAGE: Rgb = Rgb(0x1F, 0x78, 0xC1);
const TARGET: Rgb = Rgb(0x2E, 0x8B, 0x3E);
const LOWER: Rgb = Rgb(0x7E, 0xB2, 0x6D);
const UPPER: Rgb = Rgb(0x1B, 0x5E, 0x20);
const REQUEST: Rgb = Rgb(0xD3, 0x2F, 0x2F);
const ACTUAL: Rgb = Rgb(0x60, 0x60, 0x60);
const DESIRED: Rgb = Rgb(0xEF, 0x84, 0x3C);
const LIMIT: Rgb = Rgb(0xA0, 0xA0, 0xA0);

/// A horizontal line over `range`: the two end points.
pub fn constant(range: TimeRange, value: f64) -> Vec<(i64, f64)> {
    vec![(range.start, value), (range.end, value)]
}

/// The resource a VPA recommendation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// In cores.
    Cpu,
    /// In bytes.
    Memory,
}

impl Resource {
    fn unit(self) -> Unit {
        match self {
            // Cores print as 0.5, 2, or 250m below 0.01 (Kubernetes' millicores).
            Resource::Cpu => Unit::Plain,
            Resource::Memory => Unit::Bytes,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Resource::Cpu => "CPU usage (cores)",
            Resource::Memory => "memory usage",
        }
    }
}

/// One container's history for one resource. Empty timelines are left out
/// of the chart (a container without a request, say).
#[derive(Debug, Clone, PartialEq)]
pub struct VpaHistory {
    /// Names the container in the title, e.g. `shop/frontend/nginx`.
    pub container: String,
    pub resource: Resource,
    pub range: TimeRange,
    /// The resolution of `usage` (a range query's step), if any.
    pub step_ms: Option<i64>,
    pub usage: Vec<(i64, f64)>,
    /// The recommendation over time; each value holds until the next.
    pub lower_bound: Vec<(i64, f64)>,
    pub target: Vec<(i64, f64)>,
    pub upper_bound: Vec<(i64, f64)>,
    /// The container's request over time; each value holds until the next.
    pub request: Vec<(i64, f64)>,
}

/// Usage against the recommendation and the current request, from zero.
pub fn vpa_chart(history: &VpaHistory) -> Chart {
    let mut chart = Chart::new(
        format!(
            "{}: {} vs recommendation",
            history.container,
            history.resource.describe()
        ),
        history.resource.unit(),
        history.range,
    )
    .y_min(0.0);
    chart.step_ms = history.step_ms;
    let lines = [
        Series::new("usage", history.usage.clone()).color(USAGE),
        Series::new("request", history.request.clone())
            .color(REQUEST)
            .steps(),
        Series::new("target", history.target.clone())
            .color(TARGET)
            .steps(),
        Series::new("lower bound", history.lower_bound.clone())
            .color(LOWER)
            .steps()
            .dashed(),
        Series::new("upper bound", history.upper_bound.clone())
            .color(UPPER)
            .steps()
            .dashed(),
    ];
    chart.series = lines.into_iter().filter(|s| !s.points.is_empty()).collect();
    chart
}

/// One metric the HPA scaled on, with its target over time.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricTimeline {
    /// As the HPA spec names it, e.g. `cpu utilization` or `requests_per_second`.
    pub name: String,
    pub unit: Unit,
    pub values: Vec<(i64, f64)>,
    pub target: Vec<(i64, f64)>,
}

/// A workload's HPA backtest over a time range.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaBacktest {
    /// Names the workload in the titles, e.g. `shop/Deployment/frontend`.
    pub workload: String,
    pub range: TimeRange,
    /// The controller's sync period the backtest replayed at, if regular.
    pub step_ms: Option<i64>,
    /// The replicas that actually ran (from kube-state-metrics, say).
    pub actual_replicas: Vec<(i64, f64)>,
    /// The replicas the backtested HPA would have set.
    pub desired_replicas: Vec<(i64, f64)>,
    pub min_replicas: Option<u32>,
    pub max_replicas: Option<u32>,
    pub metrics: Vec<MetricTimeline>,
}

/// The replica timeline panel followed by one panel per metric, sharing the
/// time range so they line up when stacked.
pub fn hpa_backtest_charts(backtest: &HpaBacktest) -> Vec<Chart> {
    let mut replicas = Chart::new(
        format!("{}: replicas", backtest.workload),
        Unit::Plain,
        backtest.range,
    )
    .y_min(0.0);
    replicas.step_ms = backtest.step_ms;
    let bound = |label: &str, value: Option<u32>| {
        value.map(|v| {
            Series::new(label, constant(backtest.range, f64::from(v)))
                .color(LIMIT)
                .steps()
                .dashed()
        })
    };
    let lines = [
        Some(
            Series::new("actual", backtest.actual_replicas.clone())
                .color(ACTUAL)
                .steps(),
        ),
        Some(
            Series::new("backtest", backtest.desired_replicas.clone())
                .color(DESIRED)
                .steps(),
        ),
        bound("min replicas", backtest.min_replicas),
        bound("max replicas", backtest.max_replicas),
    ];
    replicas.series = lines
        .into_iter()
        .flatten()
        .filter(|s| !s.points.is_empty())
        .collect();

    let mut charts = vec![replicas];
    for metric in &backtest.metrics {
        let mut chart = Chart::new(
            format!("{}: {} vs target", backtest.workload, metric.name),
            metric.unit,
            backtest.range,
        )
        .y_min(0.0);
        chart.step_ms = backtest.step_ms;
        let lines = [
            Series::new(metric.name.clone(), metric.values.clone()).color(USAGE),
            Series::new("target", metric.target.clone())
                .color(REQUEST)
                .steps()
                .dashed(),
        ];
        chart.series = lines.into_iter().filter(|s| !s.points.is_empty()).collect();
        charts.push(chart);
    }
    charts
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn history() -> VpaHistory {
        let range = TimeRange::new(0, 6 * HOUR);
        VpaHistory {
            container: "shop/frontend/nginx".into(),
            resource: Resource::Memory,
            range,
            step_ms: Some(HOUR),
            usage: (0..=6)
                .map(|h| (h * HOUR, 200e6 + h as f64 * 10e6))
                .collect(),
            lower_bound: constant(range, 180e6),
            target: vec![(0, 250e6), (3 * HOUR, 270e6)],
            upper_bound: constant(range, 400e6),
            request: Vec::new(),
        }
    }

    #[test]
    fn vpa_chart_has_usage_bounds_and_leaves_out_empty_lines() {
        let chart = vpa_chart(&history());
        assert_eq!(
            chart.title,
            "shop/frontend/nginx: memory usage vs recommendation"
        );
        assert_eq!(chart.unit, Unit::Bytes);
        assert_eq!(chart.y_min, Some(0.0));
        let labels: Vec<&str> = chart.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["usage", "target", "lower bound", "upper bound"]);
        assert!(chart.series[1].style.steps && !chart.series[1].style.dashed);
        assert!(chart.series[2].style.dashed);
    }

    #[test]
    fn hpa_backtest_has_a_replica_panel_and_one_per_metric() {
        let range = TimeRange::new(0, 2 * HOUR);
        let backtest = HpaBacktest {
            workload: "shop/Deployment/frontend".into(),
            range,
            step_ms: Some(15_000),
            actual_replicas: constant(range, 3.0),
            desired_replicas: vec![(0, 3.0), (HOUR, 5.0)],
            min_replicas: Some(2),
            max_replicas: None,
            metrics: vec![MetricTimeline {
                name: "cpu utilization".into(),
                unit: Unit::Percent,
                values: vec![(0, 50.0), (HOUR, 90.0)],
                target: constant(range, 60.0),
            }],
        };
        let charts = hpa_backtest_charts(&backtest);
        assert_eq!(charts.len(), 2);
        let labels: Vec<&str> = charts[0].series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["actual", "backtest", "min replicas"]);
        assert_eq!(charts[1].unit, Unit::Percent);
        assert_eq!(
            charts[1].title,
            "shop/Deployment/frontend: cpu utilization vs target"
        );
        assert!(
            charts
                .iter()
                .all(|c| c.range == range && c.step_ms == Some(15_000))
        );
    }
}
