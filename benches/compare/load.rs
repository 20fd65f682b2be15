//! `compare --mode load` (issue 11, item 5): Sextant alone under a long
//! steady load, judged on whether it keeps up.
//!
//! Sextant (release binary) scrapes the size's synthetic targets (no node
//! exporter), evaluates a rules file (recording rules and an alerting rule
//! over the synthetic series, every scrape interval) and answers a client that
//! keeps `--query-concurrency` instant and range queries in flight, for
//! `--duration`. The harness samples Sextant's RSS every second and every
//! target's own scrape counter every 250 ms, and writes
//! `load-<size>.{md,json}` with a pass/fail line per criterion:
//!
//! - **memory bounded**: the median RSS of the last third of the run is at
//!   most [`MEMORY_GROWTH_LIMIT`] times the median of the second third (the
//!   first third holds series creation);
//! - **no scrape skipped for more than one interval**: the largest time
//!   between two scrapes of any target (run start and end included) is at
//!   most [`MAX_GAP_INTERVALS`] intervals;
//! - **rules keep up**: no missed group iteration, no failed evaluation
//!   (`sextant_rule_group_iterations_missed_total`,
//!   `sextant_rule_evaluation_failures_total`);
//! - **queries answered**: no query error; p50/p90/p99/max latency reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::generator::{SERIES_PER_UNIT, Targets};
use crate::measure::{clock_ticks, get_text, metric_sum, proc_stat, quantile};
use crate::systems::{Binaries, Running, System};
use crate::{Error, QUERIES, Size, free_port, report, unix_now};

/// Memory is bounded when the last third's median RSS is at most this many
/// times the second third's (head chunks still grow with every sample until
/// the first head compaction, so a little growth is expected).
pub const MEMORY_GROWTH_LIMIT: f64 = 1.10;
/// Largest allowed time between two scrapes of a target, in intervals: one
/// skipped scrape at most.
pub const MAX_GAP_INTERVALS: f64 = 2.0;

const MIB: f64 = 1024.0 * 1024.0;

/// One query of the client's set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadQuery {
    pub name: String,
    pub expr: String,
    /// Range queries cover the last `--range-span` (or the run so far).
    pub range: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Latency {
    pub count: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles (nearest rank) of the successful queries' latencies.
    pub fn of(latencies_ms: &[f64], errors: usize) -> Latency {
        Latency {
            count: latencies_ms.len() + errors,
            errors,
            p50_ms: quantile(latencies_ms, 0.5),
            p90_ms: quantile(latencies_ms, 0.9),
            p99_ms: quantile(latencies_ms, 0.99),
            max_ms: quantile(latencies_ms, 1.0),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryLatency {
    pub query: LoadQuery,
    pub latency: Latency,
    /// Successful answers without any series.
    pub empty: usize,
    pub first_error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Criterion {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Everything one load run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadRun {
    pub size: Size,
    pub duration_s: f64,
    pub query_concurrency: usize,
    /// How far back range queries reach, seconds.
    pub range_span_s: f64,
    pub command: String,
    pub date: String,
    pub machine: String,
    pub version: String,
    pub load_before: String,
    pub load_after: String,
    pub synthetic_series: usize,
    pub head_series: Option<f64>,
    pub rss_peak_bytes: u64,
    pub rss_second_third_median_bytes: f64,
    pub rss_last_third_median_bytes: f64,
    /// Least-squares slope of RSS over the last two thirds, MiB per minute.
    pub rss_trend_mib_per_min: f64,
    /// (seconds since start, RSS bytes), one a second.
    pub rss_samples: Vec<(f64, f64)>,
    pub cpu_seconds: f64,
    pub scrapes_min: u64,
    pub scrapes_max: u64,
    pub scrapes_expected: f64,
    /// Largest time between two scrapes of any target, in intervals.
    pub largest_gap_intervals: f64,
    pub rule_iterations: f64,
    pub rule_iterations_missed: f64,
    pub rule_evaluations: f64,
    pub rule_failures: f64,
    pub rule_last_duration_max_s: f64,
    pub queries: Vec<QueryLatency>,
    pub query_latency: Latency,
    pub criteria: Vec<Criterion>,
}

/// The rules file: recording rules and an alerting rule over the synthetic
/// series, one group each, evaluated every `interval_s`.
pub fn rules_yaml(interval_s: u64, window: &str) -> String {
    format!(
        r#"groups:
  - name: synthetic-recording
    interval: {interval_s}s
    rules:
      - record: code:synthetic_http_requests:rate
        expr: sum by (code) (rate(synthetic_http_requests_total[{window}]))
      - record: instance_mode:synthetic_cpu_seconds:rate
        expr: sum by (instance, mode) (rate(synthetic_cpu_seconds_total[{window}]))
      - record: le:synthetic_request_duration_seconds_bucket:rate
        expr: sum by (le) (rate(synthetic_request_duration_seconds_bucket[{window}]))
  - name: synthetic-alerts
    interval: {interval_s}s
    rules:
      - alert: SyntheticErrorsSeen
        expr: sum by (instance) (rate(synthetic_http_requests_total{{code="500"}}[{window}])) > 0
        for: {for_s}s
        labels:
          severity: info
        annotations:
          summary: "{{{{ $labels.instance }}}} answers with errors"
"#,
        for_s = interval_s * 2,
    )
}

/// The client's query set: the ingest mode's synthetic queries, each as an
/// instant and as a range query, plus two over the recorded series.
pub fn load_queries(window: &str, first_instance: &str) -> Vec<LoadQuery> {
    let mut exprs: Vec<(String, String)> = QUERIES
        .iter()
        .filter(|(_, template)| template.contains("synthetic_"))
        .map(|(name, template)| {
            (
                name.to_string(),
                template
                    .replace("{w}", window)
                    .replace("{i}", first_instance),
            )
        })
        .collect();
    exprs.push((
        "recorded: histogram_quantile".into(),
        "histogram_quantile(0.99, le:synthetic_request_duration_seconds_bucket:rate)".into(),
    ));
    exprs.push((
        "recorded: sum by (mode)".into(),
        "sum by (mode) (instance_mode:synthetic_cpu_seconds:rate)".into(),
    ));
    let mut queries = Vec::new();
    for range in [false, true] {
        for (name, expr) in &exprs {
            queries.push(LoadQuery {
                name: name.clone(),
                expr: expr.clone(),
                range,
            });
        }
    }
    queries
}

/// The largest time between consecutive scrapes, counting from `start` to
/// the first and from the last to `end` (a target never scraped has one gap:
/// the whole run).
pub fn largest_gap(scrape_times: &[f64], start: f64, end: f64) -> f64 {
    let mut previous = start;
    let mut largest: f64 = 0.0;
    for &t in scrape_times {
        largest = largest.max(t - previous);
        previous = t;
    }
    largest.max(end - previous)
}

/// The medians of the samples in the second and in the last third of
/// `[0, duration]`.
pub fn third_medians(samples: &[(f64, f64)], duration: f64) -> (f64, f64) {
    let between = |from: f64, to: f64| -> Vec<f64> {
        samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, v)| *v)
            .collect()
    };
    (
        quantile(&between(duration / 3.0, duration * 2.0 / 3.0), 0.5),
        quantile(&between(duration * 2.0 / 3.0, duration), 0.5),
    )
}

/// The least-squares slope of `samples` (value per second); 0 for fewer
/// than two distinct times.
pub fn slope(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_v = samples.iter().map(|(_, v)| v).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for (t, v) in samples {
        covariance += (t - mean_t) * (v - mean_v);
        variance += (t - mean_t) * (t - mean_t);
    }
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance
    }
}

/// The pass/fail line of each criterion (see the module doc).
pub fn criteria(run: &LoadRun) -> Vec<Criterion> {
    let growth = run.rss_last_third_median_bytes / run.rss_second_third_median_bytes;
    vec![
        Criterion {
            name: "memory bounded".into(),
            passed: growth <= MEMORY_GROWTH_LIMIT,
            detail: format!(
                "last third median RSS {:.0} MiB = {:.3}x the second third's {:.0} MiB (limit {MEMORY_GROWTH_LIMIT}x); trend {:+.2} MiB/min; peak {:.0} MiB",
                run.rss_last_third_median_bytes / MIB,
                growth,
                run.rss_second_third_median_bytes / MIB,
                run.rss_trend_mib_per_min,
                run.rss_peak_bytes as f64 / MIB,
            ),
        },
        Criterion {
            name: "no scrape skipped for more than one interval".into(),
            passed: run.largest_gap_intervals <= MAX_GAP_INTERVALS && run.scrapes_min > 0,
            detail: format!(
                "largest gap between two scrapes of a target {:.2} intervals (limit {MAX_GAP_INTERVALS}); scrapes per target {}..{} (expected about {:.0})",
                run.largest_gap_intervals, run.scrapes_min, run.scrapes_max, run.scrapes_expected,
            ),
        },
        Criterion {
            name: "rule evaluation keeps up".into(),
            passed: run.rule_iterations > 0.0
                && run.rule_iterations_missed == 0.0
                && run.rule_failures == 0.0,
            detail: format!(
                "{:.0} group iterations, {:.0} missed, {:.0} rule evaluations, {:.0} failed; slowest last group evaluation {:.2} s",
                run.rule_iterations,
                run.rule_iterations_missed,
                run.rule_evaluations,
                run.rule_failures,
                run.rule_last_duration_max_s,
            ),
        },
        Criterion {
            name: "queries answered".into(),
            passed: run.query_latency.errors == 0 && run.query_latency.count > 0,
            detail: format!(
                "{} queries, {} errors; latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                run.query_latency.count,
                run.query_latency.errors,
                run.query_latency.p50_ms,
                run.query_latency.p90_ms,
                run.query_latency.p99_ms,
                run.query_latency.max_ms,
            ),
        },
    ]
}

/// The config Sextant runs: the synthetic targets and the rules file.
fn write_config(
    work: &Path,
    size: &Size,
    targets: &[String],
    rules: &Path,
) -> Result<PathBuf, Error> {
    let interval = size.interval_s;
    let list = targets
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let yaml = format!(
        "global:\n  scrape_interval: {interval}s\n  scrape_timeout: {}s\n  evaluation_interval: {interval}s\n\
         rule_files: ['{}']\n\
         scrape_configs:\n  - job_name: synthetic\n    static_configs:\n      - targets: [{list}]\n",
        interval.min(10),
        rules.display(),
    );
    let path = work.join(format!("load-{}.yml", size.name));
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// One answered or failed query: (index into the set, latency ms and
/// series returned, or the error).
type Outcome = (usize, Result<(f64, usize), String>);

async fn run_query(
    client: &reqwest::Client,
    base: &str,
    query: &LoadQuery,
    began_unix: f64,
    step: f64,
    range_span_s: f64,
) -> Result<(f64, usize), String> {
    let now = unix_now();
    let mut form = vec![("query", query.expr.clone())];
    let path = if query.range {
        let start = (now - range_span_s).max(began_unix).min(now - step);
        form.push(("start", format!("{start:.3}")));
        form.push(("end", format!("{now:.3}")));
        form.push(("step", format!("{step}")));
        "query_range"
    } else {
        form.push(("time", format!("{now:.3}")));
        "query"
    };
    let began = Instant::now();
    let response = client
        .post(format!("{base}/api/v1/{path}"))
        .form(&form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    let elapsed = began.elapsed();
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    if !status.is_success() || json["status"] != "success" {
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        ));
    }
    let series = json["data"]["result"].as_array().map_or(0, Vec::len);
    Ok((elapsed.as_secs_f64() * 1e3, series))
}

/// Runs the load test at `size` for `duration` and writes its report.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    binaries: &Binaries,
    size: &Size,
    duration: Duration,
    query_concurrency: usize,
    range_span: Duration,
    seed: u64,
    work: &Path,
    out: &Path,
    client: &reqwest::Client,
) -> Result<(), Error> {
    let command: String = std::env::args().collect::<Vec<_>>().join(" ");
    eprintln!(
        "== load {}: {} targets x {} series every {} s, rules and {} queries in flight, {} s",
        size.name,
        size.targets,
        size.units_per_target * SERIES_PER_UNIT,
        size.interval_s,
        query_concurrency,
        duration.as_secs()
    );
    let targets = Targets::start(size.targets, size.units_per_target, seed).await?;
    let addresses: Vec<String> = targets.addresses.iter().map(|a| a.to_string()).collect();
    let first_instance = addresses
        .first()
        .cloned()
        .ok_or_else(|| Error::Usage("no targets".into()))?;
    let window = format!("{}s", (size.interval_s * 4).max(60));
    let rules = work.join(format!("load-rules-{}.yml", size.name));
    std::fs::write(&rules, rules_yaml(size.interval_s, &window))?;
    let config = write_config(work, size, &addresses, &rules)?;
    let queries = Arc::new(load_queries(&window, &first_instance));

    let ticks = clock_ticks();
    let load_before = report::loadavg();
    let mut running = Running::start(System::Sextant, binaries, &config, work, free_port()?, &[])?;
    running.wait_ready(client, Duration::from_secs(120)).await?;
    let began = Instant::now();
    let began_unix = unix_now();
    let step = size.interval_s.max(15) as f64;

    // The query client: `query_concurrency` workers, each running the set in
    // order from its own offset until told to stop. They start after the
    // first scrape round (answers over no data would be instant and skew
    // the percentiles).
    let queries_from = began + Duration::from_secs(size.interval_s + 1);
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..query_concurrency {
        let (client, base, queries, stop) = (
            client.clone(),
            running.base.clone(),
            Arc::clone(&queries),
            Arc::clone(&stop),
        );
        workers.push(tokio::spawn(async move {
            tokio::time::sleep_until(queries_from.into()).await;
            let mut outcomes: Vec<Outcome> = Vec::new();
            let mut next = worker * queries.len() / query_concurrency.max(1);
            while !stop.load(Ordering::Relaxed) {
                let index = next % queries.len();
                let outcome = run_query(
                    &client,
                    &base,
                    &queries[index],
                    began_unix,
                    step,
                    range_span.as_secs_f64(),
                )
                .await;
                outcomes.push((index, outcome));
                next += 1;
            }
            outcomes
        }));
    }

    // Sampling: every target's scrape counter every 250 ms (a change is a
    // scrape), RSS every second.
    let mut scrape_times: Vec<Vec<f64>> = vec![Vec::new(); targets.targets.len()];
    let mut scrape_counts: Vec<u64> = targets.targets.iter().map(|t| t.scrapes()).collect();
    let mut rss: Vec<(f64, f64)> = Vec::new();
    let mut next_rss = 1.0;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    while began.elapsed() < duration {
        ticker.tick().await;
        let now = began.elapsed().as_secs_f64();
        for (index, target) in targets.targets.iter().enumerate() {
            let count = target.scrapes();
            if count != scrape_counts[index] {
                scrape_counts[index] = count;
                scrape_times[index].push(now);
            }
        }
        if now >= next_rss {
            let stat = proc_stat(&running.pid, ticks)?;
            rss.push((now, stat.rss_bytes as f64));
            next_rss += 1.0;
        }
    }
    let duration_s = began.elapsed().as_secs_f64();
    let end_stat = proc_stat(&running.pid, ticks)?;
    let page = get_text(client, &format!("{}/metrics", running.base)).await?;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes: Vec<Outcome> = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.map_err(|e| Error::Peer(e.to_string()))?);
    }
    let load_after = report::loadavg();
    let version = binaries.version(System::Sextant);
    running.stop(Duration::from_secs(120)).await?;
    let _ = std::fs::remove_dir_all(&running.data_dir);
    drop(targets);

    let mut all_latencies = Vec::new();
    let mut all_errors = 0;
    let mut per_query = Vec::new();
    for (index, query) in queries.iter().enumerate() {
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut empty = 0;
        let mut first_error = None;
        for (_, outcome) in outcomes.iter().filter(|(i, _)| *i == index) {
            match outcome {
                Ok((ms, series)) => {
                    latencies.push(*ms);
                    empty += usize::from(*series == 0);
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| e.clone());
                }
            }
        }
        all_latencies.extend_from_slice(&latencies);
        all_errors += errors;
        per_query.push(QueryLatency {
            query: query.clone(),
            latency: Latency::of(&latencies, errors),
            empty,
            first_error,
        });
    }
    let interval = size.interval_s as f64;
    let largest_gap_s = scrape_times
        .iter()
        .map(|times| largest_gap(times, 0.0, duration_s))
        .fold(0.0, f64::max);
    let (second, last) = third_medians(&rss, duration_s);
    let trend: Vec<(f64, f64)> = rss
        .iter()
        .copied()
        .filter(|(t, _)| *t >= duration_s / 3.0)
        .collect();
    let last_duration_max = page
        .lines()
        .filter(|l| l.starts_with("sextant_rule_group_last_duration_seconds{"))
        .filter_map(|l| metric_sum(l, "sextant_rule_group_last_duration_seconds"))
        .fold(0.0, f64::max);
    let metric = |name: &str| metric_sum(&page, name).unwrap_or(f64::NAN);
    let mut run = LoadRun {
        size: size.clone(),
        duration_s,
        query_concurrency,
        range_span_s: range_span.as_secs_f64(),
        command,
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        machine: report::machine(),
        version,
        load_before,
        load_after,
        synthetic_series: size.synthetic_series(),
        head_series: metric_sum(&page, "sextant_tsdb_head_series"),
        rss_peak_bytes: end_stat.peak_rss_bytes,
        rss_second_third_median_bytes: second,
        rss_last_third_median_bytes: last,
        rss_trend_mib_per_min: slope(&trend) * 60.0 / MIB,
        rss_samples: rss,
        cpu_seconds: end_stat.cpu_seconds,
        scrapes_min: scrape_counts.iter().copied().min().unwrap_or(0),
        scrapes_max: scrape_counts.iter().copied().max().unwrap_or(0),
        scrapes_expected: duration_s / interval,
        largest_gap_intervals: largest_gap_s / interval,
        rule_iterations: metric("sextant_rule_group_iterations_total"),
        rule_iterations_missed: metric("sextant_rule_group_iterations_missed_total"),
        rule_evaluations: metric("sextant_rule_evaluations_total"),
        rule_failures: metric("sextant_rule_evaluation_failures_total"),
        rule_last_duration_max_s: last_duration_max,
        queries: per_query,
        query_latency: Latency::of(&all_latencies, all_errors),
        criteria: Vec::new(),
    };
    run.criteria = criteria(&run);
    for criterion in &run.criteria {
        eprintln!(
            "   {}: {}: {}",
            if criterion.passed { "PASS" } else { "FAIL" },
            criterion.name,
            criterion.detail
        );
    }
    let base = out.join(format!("load-{}", size.name));
    std::fs::write(base.with_extension("md"), markdown(&run))?;
    std::fs::write(
        base.with_extension("json"),
        serde_json::to_string_pretty(&run)?,
    )?;
    eprintln!("wrote {}.{{md,json}}", base.display());
    Ok(())
}

/// The report: criteria first, then the figures behind them.
pub fn markdown(run: &LoadRun) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Load test: {} ({} targets x {} series every {} s)\n",
        run.size.name,
        run.size.targets,
        run.size.units_per_target * SERIES_PER_UNIT,
        run.size.interval_s
    );
    let _ = writeln!(
        md,
        "Issue 11 item 5. Sextant alone scrapes {} synthetic series (head: {} series), evaluates \
         3 recording rules and 1 alerting rule every interval, and answers {} concurrent queries \
         (range queries over the last {:.0} s or the run so far) in a loop for {:.0} s.\n",
        run.synthetic_series,
        run.head_series.map_or("?".into(), |s| format!("{s:.0}")),
        run.query_concurrency,
        run.range_span_s,
        run.duration_s
    );
    let _ = writeln!(md, "- Command: `{}`", run.command);
    let _ = writeln!(md, "- Date: {}", run.date);
    let _ = writeln!(md, "- Machine: {}", run.machine);
    let _ = writeln!(md, "- Sextant: {}", run.version);
    let _ = writeln!(
        md,
        "- Load averages (1, 5, 15 min): before {}, after {}\n",
        run.load_before, run.load_after
    );
    let _ = writeln!(md, "| criterion | result | figures |\n| --- | --- | --- |");
    for c in &run.criteria {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            c.name,
            if c.passed { "PASS" } else { "FAIL" },
            c.detail
        );
    }
    let _ = writeln!(
        md,
        "\nSextant used {:.0} CPU seconds ({:.0} % of one core).\n",
        run.cpu_seconds,
        run.cpu_seconds / run.duration_s * 100.0
    );
    let _ = writeln!(
        md,
        "Queries run from the end of the first scrape interval on; \"empty\" counts answers without series.\n\n\
         | query | kind | count | errors | empty | p50 ms | p90 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for q in &run.queries {
        let l = &q.latency;
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            q.query.expr.replace('|', "\\|"),
            if q.query.range { "range" } else { "instant" },
            l.count,
            l.errors,
            q.empty,
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.max_ms
        );
    }
    for q in run.queries.iter().filter(|q| q.first_error.is_some()) {
        let _ = writeln!(
            md,
            "\nFirst error of `{}`: {}",
            q.query.expr,
            q.first_error.as_deref().unwrap_or("")
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_the_run_edges() {
        assert_eq!(largest_gap(&[10.0, 70.0, 130.0], 0.0, 150.0), 60.0);
        assert_eq!(largest_gap(&[10.0, 70.0, 200.0], 0.0, 210.0), 130.0);
        // Leading and trailing gaps count.
        assert_eq!(largest_gap(&[50.0, 60.0], 0.0, 70.0), 50.0);
        assert_eq!(largest_gap(&[5.0], 0.0, 100.0), 95.0);
        // Never scraped: the whole run.
        assert_eq!(largest_gap(&[], 0.0, 300.0), 300.0);
    }

    #[test]
    fn latency_percentiles_by_nearest_rank() {
        let latencies: Vec<f64> = (1..=200).map(f64::from).collect();
        let l = Latency::of(&latencies, 3);
        assert_eq!(l.count, 203);
        assert_eq!(l.errors, 3);
        assert_eq!(l.p50_ms, 100.0);
        assert_eq!(l.p90_ms, 180.0);
        assert_eq!(l.p99_ms, 198.0);
        assert_eq!(l.max_ms, 200.0);
        assert!(Latency::of(&[], 1).p99_ms.is_nan());
    }

    #[test]
    fn thirds_and_trend() {
        // RSS 100 for the first two thirds, 120 in the last.
        let samples: Vec<(f64, f64)> = (0..90)
            .map(|t| (f64::from(t), if t < 60 { 100.0 } else { 120.0 }))
            .collect();
        assert_eq!(third_medians(&samples, 90.0), (100.0, 120.0));
        let line: Vec<(f64, f64)> = (0..10)
            .map(|t| (f64::from(t), 3.0 * f64::from(t) + 7.0))
            .collect();
        assert!((slope(&line) - 3.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
    }

    fn passing_run() -> LoadRun {
        LoadRun {
            size: Size {
                name: "test".into(),
                targets: 2,
                units_per_target: 1,
                interval_s: 60,
            },
            duration_s: 600.0,
            query_concurrency: 2,
            range_span_s: 900.0,
            command: String::new(),
            date: String::new(),
            machine: String::new(),
            version: String::new(),
            load_before: String::new(),
            load_after: String::new(),
            synthetic_series: 40,
            head_series: Some(50.0),
            rss_peak_bytes: 0,
            rss_second_third_median_bytes: 100.0 * MIB,
            rss_last_third_median_bytes: 105.0 * MIB,
            rss_trend_mib_per_min: 0.5,
            rss_samples: Vec::new(),
            cpu_seconds: 1.0,
            scrapes_min: 10,
            scrapes_max: 10,
            scrapes_expected: 10.0,
            largest_gap_intervals: 1.1,
            rule_iterations: 20.0,
            rule_iterations_missed: 0.0,
            rule_evaluations: 80.0,
            rule_failures: 0.0,
            rule_last_duration_max_s: 0.1,
            queries: Vec::new(),
            query_latency: Latency::of(&[1.0, 2.0], 0),
            criteria: Vec::new(),
        }
    }

    #[test]
    fn criteria_pass_and_fail_on_their_limits() {
        let passed =
            |run: &LoadRun| -> Vec<bool> { criteria(run).iter().map(|c| c.passed).collect() };
        assert_eq!(passed(&passing_run()), [true, true, true, true]);
        let mut run = passing_run();
        run.rss_last_third_median_bytes = 111.0 * MIB;
        assert_eq!(passed(&run), [false, true, true, true]);
        let mut run = passing_run();
        run.largest_gap_intervals = 2.01;
        assert_eq!(passed(&run), [true, false, true, true]);
        run.largest_gap_intervals = 2.0;
        run.scrapes_min = 0;
        assert_eq!(passed(&run), [true, false, true, true]);
        let mut run = passing_run();
        run.rule_iterations_missed = 1.0;
        assert_eq!(passed(&run), [true, true, false, true]);
        let mut run = passing_run();
        run.query_latency = Latency::of(&[1.0], 1);
        assert_eq!(passed(&run), [true, true, true, false]);
    }

    #[test]
    fn rules_and_queries_name_the_synthetic_series() {
        let rules = rules_yaml(60, "240s");
        assert!(rules.contains("interval: 60s"));
        assert!(rules.contains("for: 120s"));
        assert!(rules.contains("{code=\"500\"}[240s]"));
        assert!(rules.contains("{{ $labels.instance }}"));
        let queries = load_queries("240s", "127.0.0.1:9");
        assert!(queries.iter().any(|q| q.range) && queries.iter().any(|q| !q.range));
        assert!(
            queries
                .iter()
                .all(|q| !q.expr.contains('{') || !q.expr.contains("{w}"))
        );
        assert!(queries.iter().all(|q| !q.expr.contains("node_")));
        assert!(queries[0].expr.contains("instance=\"127.0.0.1:9\""));
    }
}
