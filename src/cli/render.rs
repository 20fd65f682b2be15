//! `sextant render QUERY -o chart.png`: a range query drawn as a chart by
//! [`dashboards::chart`], from any Prometheus-compatible server (`--server`)
//! or straight from a Sextant data directory (`--data-dir`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use dashboards::chart::{self, Chart, Format, Size, Unit};
use tsdb::clock::{Clock, SystemClock};
use tsdb::db::{Db, DbOptions};
use tsdb::model::{Labels, TimeRange};
use tsdb::promql::{Engine, EngineOptions, Point, Series, Value};

use crate::api::params::{parse_duration, parse_time};
use crate::client::{Client, QueryResult};
use crate::float::format_f;

/// The range drawn when `--from` is absent: the hour before `--to`.
const DEFAULT_RANGE_MS: i64 = 3_600_000;

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// PromQL expression.
    pub query: String,
    /// The image to write; a `.png` or `.svg` name picks the format.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Server to query: Sextant, Prometheus or any compatible URL.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    pub server: String,
    /// Read this Sextant data directory instead of asking a server (not while a server has
    /// it open).
    #[arg(long, conflicts_with = "server")]
    pub data_dir: Option<PathBuf>,
    /// Start: Unix seconds, RFC 3339, or a duration before the end such as 6h (default: 1h).
    #[arg(long)]
    pub from: Option<String>,
    /// End: Unix seconds or RFC 3339 (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// Resolution: seconds or a duration such as 15s (default: range/250, at least 1s).
    #[arg(long)]
    pub step: Option<String>,
    /// png or svg (default: from the output file's extension).
    #[arg(long)]
    pub format: Option<String>,
    #[arg(long, default_value_t = Size::default().width)]
    pub width: u32,
    #[arg(long, default_value_t = Size::default().height)]
    pub height: u32,
    /// Y-axis unit: bytes, s, percent, percentunit or short (default: guessed from the metric
    /// names' suffixes).
    #[arg(long)]
    pub unit: Option<String>,
    /// Chart title (default: the query).
    #[arg(long)]
    pub title: Option<String>,
}

/// Renders the chart and writes it; returns a line to print.
///
/// # Errors
/// Bad arguments, the server's or the engine's errors, and IO errors.
pub async fn run(args: RenderArgs) -> Result<String> {
    let format = output_format(args.format.as_deref(), &args.output)?;
    let unit: Option<Unit> = args.unit.as_deref().map(str::parse).transpose()?;
    let (range, step_ms) = range_and_step(
        args.from.as_deref(),
        args.to.as_deref(),
        args.step.as_deref(),
        SystemClock.now_ms(),
    )?;
    let value = match &args.data_dir {
        Some(dir) => {
            let (dir, query) = (dir.clone(), args.query.clone());
            tokio::task::spawn_blocking(move || query_data_dir(&dir, &query, range, step_ms))
                .await
                .context("the query task failed")??
        }
        None => query_server(&args.server, &args.query, range, step_ms).await?,
    };
    let mut chart = Chart::from_value(&args.query, &value, range, Some(step_ms));
    if let Some(unit) = unit {
        chart.unit = unit;
    }
    if let Some(title) = args.title {
        chart.title = title;
    }
    let series = chart.series.len();
    let image = chart::render(&chart, format, Size::new(args.width, args.height))?;
    std::fs::write(&args.output, &image)
        .with_context(|| format!("writing {}", args.output.display()))?;
    Ok(format!(
        "wrote {} ({format}, {}x{}, {series} series)\n",
        args.output.display(),
        args.width,
        args.height
    ))
}

fn output_format(format: Option<&str>, output: &Path) -> Result<Format> {
    if let Some(format) = format {
        return Ok(format.parse()?);
    }
    let extension = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => bail!(
            "cannot tell the format from {}: name it .png or .svg, or pass --format",
            output.display()
        ),
    }
}

/// The time range and step in milliseconds from the flags.
fn range_and_step(
    from: Option<&str>,
    to: Option<&str>,
    step: Option<&str>,
    now_ms: i64,
) -> Result<(TimeRange, i64)> {
    let end = match to {
        Some(to) => parse_time(to).map_err(anyhow::Error::msg).context("--to")?,
        None => now_ms,
    };
    let start = match from {
        None => end.saturating_sub(DEFAULT_RANGE_MS),
        Some(from) => match parse_time(from) {
            Ok(start) => start,
            Err(time_error) => match parse_duration(from) {
                Ok(before) => end.saturating_sub(before.as_millis()),
                Err(_) => bail!("--from: {time_error}"),
            },
        },
    };
    if end < start {
        bail!("--to is before --from");
    }
    let range = TimeRange::new(start, end);
    let step_ms = match step {
        Some(step) => parse_duration(step)
            .map_err(anyhow::Error::msg)
            .context("--step")?
            .as_millis(),
        None => chart::default_step_ms(range),
    };
    if step_ms <= 0 {
        bail!("--step must be positive");
    }
    Ok((range, step_ms))
}

/// Runs the range query through the server's HTTP API.
async fn query_server(server: &str, query: &str, range: TimeRange, step_ms: i64) -> Result<Value> {
    let seconds = |ms: i64| format_f(ms as f64 / 1000.0);
    let answer = Client::new(server)?
        .range(
            query,
            &seconds(range.start),
            &seconds(range.end),
            &seconds(step_ms),
        )
        .await?;
    for warning in &answer.warnings {
        eprintln!("warning: {warning}");
    }
    let QueryResult::Matrix(matrix) = answer.result else {
        bail!("the server answered a range query without a matrix");
    };
    matrix
        .into_iter()
        .map(|(labels, points)| {
            let points = points
                .into_iter()
                .map(|p| {
                    let v = p.value.parse::<f64>().with_context(|| {
                        format!("the server sent {:?}, which is not a number", p.value)
                    })?;
                    Ok(Point::new((p.t * 1000.0).round() as i64, v))
                })
                .collect::<Result<_>>()?;
            Ok(Series {
                labels: Labels::from_pairs(&labels),
                points,
            })
        })
        .collect::<Result<_>>()
        .map(Value::Matrix)
}

/// Runs the range query on the engine over a data directory.
fn query_data_dir(dir: &Path, query: &str, range: TimeRange, step_ms: i64) -> Result<Value> {
    let db = Db::open(dir, DbOptions::default())
        .with_context(|| format!("opening the data directory {}", dir.display()))?;
    let step = Duration::from_millis(step_ms.unsigned_abs());
    let result = Engine::new(EngineOptions::default())
        .range_query(query, range.start, range.end, step)
        .and_then(|prepared| prepared.exec(&db));
    db.close()?;
    Ok(result?.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_and_server_are_alternatives() {
        use clap::Parser;
        let parse = |args: &[&str]| crate::cli::Cli::try_parse_from(args);
        assert!(parse(&["sextant", "render", "up", "-o", "a.png", "--data-dir", "d"]).is_ok());
        assert!(
            parse(&[
                "sextant", "render", "up", "-o", "a.png", "--server", "http://x"
            ])
            .is_ok()
        );
        assert!(
            parse(&[
                "sextant",
                "render",
                "up",
                "-o",
                "a.png",
                "--server",
                "u",
                "--data-dir",
                "d"
            ])
            .is_err()
        );
        assert!(
            parse(&["sextant", "render", "up"]).is_err(),
            "-o is required"
        );
    }

    #[test]
    fn format_comes_from_the_flag_or_the_extension() {
        let path = Path::new;
        assert_eq!(output_format(None, path("a.png")).unwrap(), Format::Png);
        assert_eq!(output_format(None, path("dir/A.SVG")).unwrap(), Format::Svg);
        assert_eq!(
            output_format(Some("svg"), path("a.png")).unwrap(),
            Format::Svg
        );
        assert!(output_format(None, path("chart")).is_err());
        assert!(output_format(Some("gif"), path("a.gif")).is_err());
    }

    #[test]
    fn ranges_default_to_the_last_hour_and_accept_relative_starts() {
        let now = 1_700_000_000_000;
        let (range, step) = range_and_step(None, None, None, now).unwrap();
        assert_eq!(range, TimeRange::new(now - 3_600_000, now));
        assert_eq!(step, 14_000);
        let (range, step) =
            range_and_step(Some("6h"), Some("1700000000"), Some("1m"), now).unwrap();
        assert_eq!(range, TimeRange::new(now - 6 * 3_600_000, now));
        assert_eq!(step, 60_000);
        let (range, _) =
            range_and_step(Some("1699990000"), Some("2023-11-14T22:13:20Z"), None, 0).unwrap();
        assert_eq!(range, TimeRange::new(1_699_990_000_000, now));
        assert!(range_and_step(Some("soon"), None, None, now).is_err());
        assert!(range_and_step(Some("1700000001"), Some("1700000000"), None, now).is_err());
        assert!(range_and_step(None, None, Some("0s"), now).is_err());
    }
}
