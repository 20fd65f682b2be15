//! `sextant query instant|range|series|labels URL ...`: ask any
//! Prometheus-compatible server and print the answer as a table or as the
//! API's JSON `data`.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use tsdb::clock::{Clock, SystemClock};

use crate::api::json::rfc3339;
use crate::api::params::{parse_duration, parse_time};
use crate::client::{Client, LabelSet, Point, QueryResult};
use crate::float::format_f;

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(subcommand)]
    pub command: QueryCommand,
    /// How to print the answer.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The API's `data` object, pretty-printed.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Evaluate an expression at one time.
    Instant {
        /// Server URL, such as http://127.0.0.1:9090.
        server: String,
        /// PromQL expression.
        expr: String,
        /// Evaluation time: Unix seconds or RFC 3339 (default: the server's now).
        #[arg(long)]
        time: Option<String>,
    },
    /// Evaluate an expression over a time range.
    Range {
        server: String,
        expr: String,
        /// Start: Unix seconds or RFC 3339 (default: five minutes before the end).
        #[arg(long)]
        start: Option<String>,
        /// End: Unix seconds or RFC 3339 (default: now).
        #[arg(long)]
        end: Option<String>,
        /// Resolution: seconds or a duration such as 15s (default: range/250, at least 1s).
        #[arg(long)]
        step: Option<String>,
    },
    /// List the series matching selectors.
    Series {
        server: String,
        /// Series selector; repeat for a union.
        #[arg(long = "match", required = true)]
        matchers: Vec<String>,
        #[arg(long)]
        start: Option<String>,
        #[arg(long)]
        end: Option<String>,
    },
    /// List label names, or the values of one label.
    Labels {
        server: String,
        /// The label whose values to list; all label names when absent.
        name: Option<String>,
        /// Only series matching this selector; repeat for a union.
        #[arg(long = "match")]
        matchers: Vec<String>,
        #[arg(long)]
        start: Option<String>,
        #[arg(long)]
        end: Option<String>,
    },
}

/// Runs one `sextant query` command and returns what to print.
///
/// # Errors
/// Bad arguments, transport errors and the server's errors.
pub async fn run(args: QueryArgs) -> Result<String> {
    let format = args.format;
    match args.command {
        QueryCommand::Instant { server, expr, time } => {
            let answer = Client::new(&server)?
                .instant(&expr, time.as_deref())
                .await?;
            Ok(render(format, &answer.data, &answer.warnings, || {
                query_table(&answer.result)
            }))
        }
        QueryCommand::Range {
            server,
            expr,
            start,
            end,
            step,
        } => {
            let (start, end, step) = range_bounds(
                start.as_deref(),
                end.as_deref(),
                step.as_deref(),
                SystemClock.now_ms(),
            )?;
            let answer = Client::new(&server)?
                .range(&expr, &start, &end, &step)
                .await?;
            Ok(render(format, &answer.data, &answer.warnings, || {
                query_table(&answer.result)
            }))
        }
        QueryCommand::Series {
            server,
            matchers,
            start,
            end,
        } => {
            let answer = Client::new(&server)?
                .series(&matchers, start.as_deref(), end.as_deref())
                .await?;
            Ok(render(format, &answer.data, &answer.warnings, || {
                answer
                    .result
                    .iter()
                    .map(|l| series_name(l) + "\n")
                    .collect()
            }))
        }
        QueryCommand::Labels {
            server,
            name,
            matchers,
            start,
            end,
        } => {
            let answer = Client::new(&server)?
                .labels(name.as_deref(), &matchers, start.as_deref(), end.as_deref())
                .await?;
            Ok(render(format, &answer.data, &answer.warnings, || {
                answer.result.iter().map(|l| format!("{l}\n")).collect()
            }))
        }
    }
}

/// The range's start, end and step as the API expects them, with promtool's
/// defaults: end now, start five minutes earlier, step range/250 (at least
/// one second).
fn range_bounds(
    start: Option<&str>,
    end: Option<&str>,
    step: Option<&str>,
    now_ms: i64,
) -> Result<(String, String, String)> {
    let parse = |s: &str, what: &str| {
        parse_time(s)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--{what}"))
    };
    let end_ms = match end {
        Some(end) => parse(end, "end")?,
        None => now_ms,
    };
    let start_ms = match start {
        Some(start) => parse(start, "start")?,
        None => end_ms - 5 * 60_000,
    };
    let step = match step {
        Some(step) => {
            parse_duration(step)
                .map_err(anyhow::Error::msg)
                .context("--step")?;
            step.to_string()
        }
        None => {
            let seconds = ((end_ms - start_ms) as f64 / 1000.0 / 250.0)
                .floor()
                .max(1.0);
            format_f(seconds)
        }
    };
    let seconds = |ms: i64| format_f(ms as f64 / 1000.0);
    Ok((seconds(start_ms), seconds(end_ms), step))
}

fn render(
    format: Format,
    data: &serde_json::Value,
    warnings: &[String],
    table: impl FnOnce() -> String,
) -> String {
    let mut out = match format {
        Format::Json => serde_json::to_string_pretty(data).unwrap_or_default() + "\n",
        Format::Table => table(),
    };
    for warning in warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// `up{instance="a", job="node"}`; `{}` for the empty set.
fn series_name(labels: &LabelSet) -> String {
    let name = labels
        .iter()
        .find(|(k, _)| k == "__name__")
        .map_or("", |(_, v)| v.as_str());
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    if rest.is_empty() && !name.is_empty() {
        return name.to_string();
    }
    format!("{name}{{{}}}", rest.join(", "))
}

fn time_column(point: &Point) -> String {
    rfc3339((point.t * 1000.0).round() as i64)
}

fn query_table(result: &QueryResult) -> String {
    let mut rows: Vec<[String; 3]> = vec![["SERIES".into(), "TIME".into(), "VALUE".into()]];
    match result {
        QueryResult::Vector(vector) => {
            for (labels, point) in vector {
                rows.push([series_name(labels), time_column(point), point.value.clone()]);
            }
        }
        QueryResult::Matrix(matrix) => {
            for (labels, points) in matrix {
                for (i, point) in points.iter().enumerate() {
                    let name = if i == 0 {
                        series_name(labels)
                    } else {
                        String::new()
                    };
                    rows.push([name, time_column(point), point.value.clone()]);
                }
            }
        }
        QueryResult::Scalar(point) => {
            rows.push(["scalar".into(), time_column(point), point.value.clone()]);
        }
        QueryResult::String { t, value } => {
            let point = Point {
                t: *t,
                value: value.clone(),
            };
            rows.push(["string".into(), time_column(&point), value.clone()]);
        }
    }
    table(&rows)
}

fn table(rows: &[[String; 3]]) -> String {
    let widths: Vec<usize> = (0..3)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line = format!(
            "{:w0$}  {:w1$}  {}",
            row[0],
            row[1],
            row[2],
            w0 = widths[0],
            w1 = widths[1]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::client::decode_query_result;

    #[test]
    fn tables() {
        let matrix = decode_query_result(&json!({"resultType":"matrix","result":[
            {"metric":{"__name__":"up","job":"node"},"values":[[1700000000,"1"],[1700000015,"0"]]},
            {"metric":{"__name__":"up"},"values":[[1700000000,"NaN"]]}]}))
        .unwrap();
        assert_eq!(
            query_table(&matrix),
            "SERIES          TIME                  VALUE\n\
             up{job=\"node\"}  2023-11-14T22:13:20Z  1\n\
             \x20               2023-11-14T22:13:35Z  0\n\
             up              2023-11-14T22:13:20Z  NaN\n"
        );
        let scalar =
            decode_query_result(&json!({"resultType":"scalar","result":[1.5,"2"]})).unwrap();
        assert_eq!(
            query_table(&scalar),
            "SERIES  TIME                    VALUE\nscalar  1970-01-01T00:00:01.5Z  2\n"
        );
        assert_eq!(series_name(&vec![]), "{}");
    }

    #[test]
    fn range_defaults_follow_promtool() {
        let now = 1_700_000_000_000;
        assert_eq!(
            range_bounds(None, None, None, now).unwrap(),
            ("1699999700".into(), "1700000000".into(), "1".into())
        );
        assert_eq!(
            range_bounds(Some("1699996400"), Some("2023-11-14T22:13:20Z"), None, now).unwrap(),
            ("1699996400".into(), "1700000000".into(), "14".into())
        );
        assert_eq!(
            range_bounds(Some("0"), Some("60"), Some("15s"), now)
                .unwrap()
                .2,
            "15s"
        );
        assert!(range_bounds(Some("never"), None, None, now).is_err());
        assert!(range_bounds(None, None, Some("fast"), now).is_err());
    }
}
