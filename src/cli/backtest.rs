//! `sextant backtest hpa|vpa --workload NS/KIND/NAME --from T --to T`: replays the
//! HPA (behavior included) or the VPA over stored history
//! ([`autoscaler::backtest`]) from a data directory or any Prometheus-compatible
//! server, and prints a summary table or the whole result as JSON; `--chart FILE`
//! also draws it (`api::recommendation_chart`'s shapes).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use autoscaler::backtest::{self, HpaBacktest, VpaBacktest};
use autoscaler::controller::WorkloadKind;
use autoscaler::model::{HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec};
use autoscaler::recommender::{VpaSettings, WorkloadSpec};
use clap::{Args, Subcommand, ValueEnum};
use dashboards::chart::{self, Chart, Format, Size};
use dashboards::recommendation::{Resource, constant, hpa_backtest_charts, vpa_chart};
use tsdb::clock::{Clock, SystemClock};
use tsdb::model::TimeRange;

use super::recommend::{AnyBackend, DataSource, load_config};
use crate::api::params::{parse_duration, parse_time};
use crate::api::recommendation_chart::{hpa_chart_input, vpa_history};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BacktestOutput {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum BacktestKind {
    /// Replay the HPA every sync period (15 s) with the history's load.
    Hpa(BacktestArgs),
    /// Replay the VPA and compare each usage sample with the target in force.
    Vpa(BacktestArgs),
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The workload: NAMESPACE/KIND/NAME, e.g. shop/Deployment/web.
    #[arg(long)]
    pub workload: String,
    /// Start: Unix seconds, RFC 3339, or a duration before --to such as 1d.
    #[arg(long)]
    pub from: String,
    /// End: Unix seconds or RFC 3339 (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// An HPA spec (or a whole HorizontalPodAutoscaler object) in YAML, replacing the
    /// configured one.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    #[command(flatten)]
    pub source: DataSource,
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: BacktestOutput,
    /// Also draw the backtest into FILE (PNG, or SVG when FILE ends in .svg): for `hpa`
    /// the replica timeline above the metric against its target, for `vpa` each
    /// container's usage and request against the backtest's mean target.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
}

/// Parses `ns/Kind/name` (kind case-insensitive, `deploy`/`sts`/`ds`/`rs` accepted).
///
/// # Errors
/// A malformed reference or an unknown kind.
pub fn parse_workload(text: &str) -> Result<(String, WorkloadKind, String)> {
    let parts: Vec<&str> = text.split('/').collect();
    let [namespace, kind, name] = parts.as_slice() else {
        bail!("invalid --workload {text:?}: expected NAMESPACE/KIND/NAME");
    };
    let kind = match kind.to_ascii_lowercase().as_str() {
        "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
        "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
        "daemonset" | "daemonsets" | "ds" => WorkloadKind::DaemonSet,
        "replicaset" | "replicasets" | "rs" => WorkloadKind::ReplicaSet,
        other => bail!("invalid --workload {text:?}: unknown kind {other:?}"),
    };
    if namespace.is_empty() || name.is_empty() {
        bail!("invalid --workload {text:?}: expected NAMESPACE/KIND/NAME");
    }
    Ok((namespace.to_string(), kind, name.to_string()))
}

/// An HPA spec file: a bare spec or a whole object.
fn read_spec(path: &PathBuf) -> Result<HorizontalPodAutoscalerSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the HPA spec {}", path.display()))?;
    let spec = match serde_yaml::from_str::<HorizontalPodAutoscaler>(&text) {
        Ok(object) => object.spec,
        Err(_) => serde_yaml::from_str::<HorizontalPodAutoscalerSpec>(&text)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?,
    };
    spec.validate()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(spec)
}

/// The time range from the arguments.
fn range(from: &str, to: Option<&str>, now_ms: i64) -> Result<(i64, i64)> {
    let to = match to {
        Some(t) => parse_time(t).map_err(|e| anyhow!("invalid --to: {e}"))?,
        None => now_ms,
    };
    let from = match parse_time(from) {
        Ok(t) => t,
        Err(_) => {
            let d = parse_duration(from).map_err(|e| anyhow!("invalid --from: {e}"))?;
            to.saturating_sub(d.as_millis())
        }
    };
    if from > to {
        bail!("--from must not be after --to");
    }
    Ok((from, to))
}

/// Runs the backtest and formats it.
///
/// # Errors
/// Bad arguments, unreachable data, failed queries.
pub async fn run(kind: BacktestKind) -> Result<String> {
    let (is_hpa, args) = match kind {
        BacktestKind::Hpa(args) => (true, args),
        BacktestKind::Vpa(args) => (false, args),
    };
    let config = load_config(args.source.config.as_ref())?;
    let (namespace, kind, name) = parse_workload(&args.workload)?;
    let configured = config.as_ref().and_then(|c| {
        c.autoscaler
            .workloads
            .iter()
            .find(|w| w.namespace == namespace && w.kind == kind && w.name == name)
            .cloned()
    });
    let workload = configured.unwrap_or(WorkloadSpec {
        namespace,
        kind,
        name,
        hpa: None,
        metric_queries: Default::default(),
        vpa: VpaSettings::default(),
    });
    let (from, to) = range(&args.from, args.to.as_deref(), SystemClock.now_ms())?;
    let mut options = backtest::Options::new(from, to);
    if let Some(config) = &config {
        options.source.vpa_history = config.autoscaler.history;
    }
    if let Some(path) = &args.spec {
        options.hpa_spec = Some(read_spec(path)?);
    }
    let backend = AnyBackend::open(&args.source, config.as_ref()).await?;
    let out = if is_hpa {
        let result = backtest::hpa(&backend, &workload, &options).await;
        match (result, &args.chart) {
            (Ok(r), Some(path)) => {
                write_chart(path, &hpa_backtest_charts(&hpa_chart_input(&r))).map(|()| r)
            }
            (result, _) => result.map_err(anyhow::Error::from),
        }
        .and_then(|r| match args.output {
            BacktestOutput::Json => Ok(serde_json::to_string_pretty(&r)? + "\n"),
            BacktestOutput::Table => Ok(hpa_table(&r)),
        })
    } else {
        let result = backtest::vpa(&backend, &workload, &options).await;
        match (result, &args.chart) {
            (Ok(r), Some(path)) => match vpa_charts(&backend, &r).await {
                Ok(charts) => write_chart(path, &charts).map(|()| r),
                Err(e) => Err(e),
            },
            (result, _) => result.map_err(anyhow::Error::from),
        }
        .and_then(|r| match args.output {
            BacktestOutput::Json => Ok(serde_json::to_string_pretty(&r)? + "\n"),
            BacktestOutput::Table => Ok(vpa_table(&r)),
        })
    };
    backend.close().await?;
    out
}

/// Per container, CPU then memory: usage (busiest pod) and request over the
/// backtest's range against the mean target the replay found.
async fn vpa_charts(backend: &AnyBackend, r: &VpaBacktest) -> Result<Vec<Chart>> {
    let range = TimeRange::new(r.from_ms, r.to_ms.max(r.from_ms.saturating_add(1)));
    let mut charts = Vec::new();
    for c in &r.containers {
        for (resource, target) in [
            (Resource::Cpu, c.mean_cpu_target),
            (Resource::Memory, c.mean_memory_target),
        ] {
            let mut history =
                vpa_history(backend, &r.workload, &c.name, resource, None, range, false).await?;
            if let Some(target) = target {
                history.target = constant(range, target);
            }
            let mut chart = vpa_chart(&history);
            for series in &mut chart.series {
                if series.label == "target" {
                    series.label = "mean target (backtest)".into();
                }
            }
            charts.push(chart);
        }
    }
    Ok(charts)
}

/// Renders `charts` stacked into `path`: SVG when it ends in `.svg`, else PNG.
fn write_chart(path: &Path, charts: &[Chart]) -> Result<()> {
    let format = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        Format::Svg
    } else {
        Format::Png
    };
    let panels = u32::try_from(charts.len()).unwrap_or(1).clamp(1, 10);
    let size = Size::new(1000, 400 * panels);
    let image = chart::render_panels(charts, format, size)
        .with_context(|| format!("drawing the chart for {}", path.display()))?;
    std::fs::write(path, image).with_context(|| format!("writing {}", path.display()))
}

fn time(t_ms: i64) -> String {
    crate::api::json::rfc3339(t_ms)
}

/// The summary, then the replica changes (each change of the simulated count).
pub fn hpa_table(r: &HpaBacktest) -> String {
    let s = &r.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "HPA backtest of {} from {} to {} ({} syncs every {}s)",
        r.workload,
        time(r.from_ms),
        time(r.to_ms),
        s.syncs,
        s.sync_period_seconds
    );
    let _ = writeln!(out, "                    backtest    actual");
    let _ = writeln!(
        out,
        "pod-hours           {:<10.2}  {:.2}",
        s.pod_hours, s.actual_pod_hours
    );
    let _ = writeln!(
        out,
        "time above target   {:<10}  {}s",
        format!("{}s", s.seconds_above_target),
        s.actual_seconds_above_target
    );
    let _ = writeln!(
        out,
        "replicas            {}-{}, {} scale-ups, {} scale-downs",
        s.min_replicas, s.max_replicas, s.scale_ups, s.scale_downs
    );
    if s.syncs_without_metrics > 0 {
        let _ = writeln!(
            out,
            "syncs without metrics: {} (replicas kept)",
            s.syncs_without_metrics
        );
    }
    let _ = writeln!(
        out,
        "\nTIME                      ACTUAL  REPLICAS  DESIRED  RATIO"
    );
    let mut last = None;
    for step in &r.timeline {
        if last == Some((step.replicas, step.desired_replicas)) {
            continue;
        }
        last = Some((step.replicas, step.desired_replicas));
        let _ = writeln!(
            out,
            "{:<26}{:<8}{:<10}{:<9}{}",
            time(step.t_ms),
            step.actual_replicas.map_or("-".into(), |r| r.to_string()),
            step.replicas,
            step.desired_replicas,
            step.usage_ratio.map_or("-".into(), |r| format!("{r:.3}"))
        );
    }
    out
}

/// One line per container.
pub fn vpa_table(r: &VpaBacktest) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "VPA backtest of {} from {} to {} (every {}s)",
        r.workload,
        time(r.from_ms),
        time(r.to_ms),
        r.step_seconds
    );
    let _ = writeln!(
        out,
        "CONTAINER        CPU>TARGET        MEM>TARGET        CPU SAVED (core-h)  MEM SAVED (GiB-h)"
    );
    for c in &r.containers {
        let _ = writeln!(
            out,
            "{:<17}{:<18}{:<18}{:<20.3}{:.3}",
            c.name,
            format!(
                "{}/{} ({:.1}%)",
                c.cpu_over_target,
                c.cpu_samples,
                c.cpu_over_target_fraction * 100.0
            ),
            format!(
                "{}/{} ({:.1}%)",
                c.memory_over_target,
                c.memory_samples,
                c.memory_over_target_fraction * 100.0
            ),
            c.cpu_saved_core_hours,
            c.memory_saved_gib_hours
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_references_and_ranges() {
        assert_eq!(
            parse_workload("shop/deploy/web").unwrap(),
            ("shop".into(), WorkloadKind::Deployment, "web".into())
        );
        assert!(parse_workload("shop/web").is_err());
        assert!(parse_workload("shop/Pod/web").is_err());
        assert_eq!(
            range("1h", Some("7200"), 0).unwrap(),
            (3_600_000, 7_200_000)
        );
        assert!(range("7200", Some("3600"), 0).is_err());
    }
}
