//! The outputs of one size: `compare-<size>.md` (absolute figures, ratios
//! Sextant/Prometheus and Sextant/VictoriaMetrics, each goal met or missed),
//! `compare-<size>.json` (everything measured) and `compare-<size>.png` (the
//! ratios as bars, drawn with the dashboards crate).

use std::fmt::Write as _;
use std::path::Path;

use dashboards::chart::{BarChart, BarGroup, Rgb, Size as ChartSize, render_bars};

use crate::systems::System;
use crate::{Error, SizeRun, SystemFigures};

/// `/proc/loadavg`'s three load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU model, cores, memory and kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |k| k / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {memory_gib:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}

const MIB: f64 = 1024.0 * 1024.0;

pub fn summary_line(f: &SystemFigures, active_series: usize) -> String {
    if let Some(error) = &f.error {
        return format!("   {}: FAILED: {error}", f.system.name());
    }
    let queries: Vec<String> = f
        .queries
        .iter()
        .map(|q| format!("{:.1} ({} series)", q.median_ms, q.series))
        .collect();
    format!(
        "   {}: {:.0} samples, {:.2} CPU s/M samples (steady), RSS {:.0} MiB steady / {:.0} MiB peak = {:.0} B/series, disk {:.2} B/sample, query medians ms [{}], harness {:.1}% CPU",
        f.system.name(),
        f.samples_total,
        f.cpu_per_msample_steady(),
        f.rss_steady_bytes / MIB,
        f.rss_peak_bytes as f64 / MIB,
        f.rss_steady_bytes / active_series as f64,
        f.bytes_per_sample(),
        queries.join(", "),
        f.harness_cpu_percent,
    )
}

/// One compared figure: how to read it off a system, its goal against each
/// peer (a ratio bound), and whether it goes on the chart.
struct Figure {
    name: String,
    values: Vec<f64>,
    decimals: usize,
    goal_prometheus: Option<f64>,
    goal_victoria: Option<f64>,
    charted: bool,
}

fn figures(run: &SizeRun) -> Vec<Figure> {
    let systems = &run.systems;
    let per = |name: &str, decimals, f: &dyn Fn(&SystemFigures) -> f64| Figure {
        name: name.to_string(),
        values: systems
            .iter()
            .map(|s| if s.error.is_some() { f64::NAN } else { f(s) })
            .collect(),
        decimals,
        goal_prometheus: None,
        goal_victoria: None,
        charted: false,
    };
    let series = run.active_series as f64;
    let mut rows = vec![
        per("samples ingested (whole run)", 0, &|s| s.samples_total),
        per("samples ingested (steady window)", 0, &|s| s.samples_steady),
        Figure {
            goal_prometheus: Some(0.5),
            goal_victoria: Some(1.0),
            charted: true,
            ..per("CPU s per 1M samples (steady)", 3, &|s| {
                s.cpu_per_msample_steady()
            })
        },
        Figure {
            charted: true,
            ..per(
                "CPU s per 1M samples (whole run, series creation included)",
                3,
                &|s| s.cpu_per_msample_total(),
            )
        },
        per("RSS steady (MiB)", 1, &|s| s.rss_steady_bytes / MIB),
        Figure {
            charted: true,
            ..per("RSS peak (MiB)", 1, &|s| s.rss_peak_bytes as f64 / MIB)
        },
        Figure {
            goal_prometheus: Some(0.5),
            goal_victoria: Some(1.0),
            charted: true,
            ..per("memory per active series (bytes, steady RSS)", 0, &|s| {
                s.rss_steady_bytes / series
            })
        },
        per(
            "active series reported by count({__name__=~\".+\"})",
            0,
            &|s| s.active_series_reported.unwrap_or(f64::NAN),
        ),
        per("disk bytes after flush", 0, &|s| s.disk.bytes as f64),
        per("samples in the flushed data", 0, &|s| s.disk.samples as f64),
        Figure {
            goal_victoria: Some(1.0),
            charted: true,
            ..per("disk bytes per sample", 3, &|s| s.bytes_per_sample())
        },
        per("WAL bytes at stop (not in the above)", 0, &|s| {
            s.disk.wal_bytes as f64
        }),
    ];
    let queries = systems
        .iter()
        .find(|s| !s.queries.is_empty())
        .map(|s| s.queries.clone())
        .unwrap_or_default();
    for (index, query) in queries.iter().enumerate() {
        let at = |s: &SystemFigures, f: &dyn Fn(&crate::QueryFigures) -> f64| {
            s.queries.get(index).map_or(f64::NAN, f)
        };
        rows.push(Figure {
            goal_prometheus: Some(0.5),
            charted: true,
            ..per(&format!("query median ms: {}", query.name), 2, &|s| {
                at(s, &|q| q.median_ms)
            })
        });
        rows.push(per(&format!("query p90 ms: {}", query.name), 2, &|s| {
            at(s, &|q| q.p90_ms)
        }));
    }
    rows.push(per("harness + generator CPU % of one core", 1, &|s| {
        s.harness_cpu_percent
    }));
    rows
}

fn index_of(run: &SizeRun, system: System) -> Option<usize> {
    run.systems.iter().position(|s| s.system == system)
}

fn ratio(figure: &Figure, a: Option<usize>, b: Option<usize>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => figure.values[a] / figure.values[b],
        _ => f64::NAN,
    }
}

fn number(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "n/a".to_string()
    }
}

fn verdict(ratio: f64, goal: Option<f64>) -> Option<String> {
    let goal = goal?;
    Some(if !ratio.is_finite() {
        format!("≤ {goal}x: n/a")
    } else if ratio <= goal {
        format!("≤ {goal}x: **met**")
    } else {
        format!("≤ {goal}x: **missed**")
    })
}

pub fn markdown(run: &SizeRun) -> String {
    let mut md = String::new();
    let size = &run.size;
    let _ = writeln!(
        md,
        "## Size `{}`: {} synthetic targets x {} series every {} s + node exporter ({} series); {} active series; {} s per system\n",
        size.name,
        size.targets,
        size.units_per_target * crate::SERIES_PER_UNIT,
        size.interval_s,
        run.node_exporter_series,
        run.active_series,
        run.duration_s
    );
    let _ = writeln!(md, "- Command: `{}`", run.command);
    let _ = writeln!(md, "- Date: {}", run.date);
    let _ = writeln!(md, "- Machine: {}", run.machine);
    for s in &run.systems {
        let _ = writeln!(
            md,
            "- {}: `{}`; load average before {} / after {}{}",
            s.system.name(),
            s.version,
            s.load_before,
            s.load_after,
            s.error
                .as_ref()
                .map(|e| format!("; **failed: {e}**"))
                .unwrap_or_default()
        );
    }
    if !run.node_exporter_version.is_empty() {
        let _ = writeln!(md, "- Node exporter: {}", run.node_exporter_version);
    }
    md.push('\n');
    let names: Vec<&str> = run.systems.iter().map(|s| s.system.name()).collect();
    let sextant = index_of(run, System::Sextant);
    let prometheus = index_of(run, System::Prometheus);
    let victoria = index_of(run, System::VictoriaMetrics);
    let _ = writeln!(
        md,
        "| figure | {} | Sextant / Prometheus | Sextant / VictoriaMetrics |",
        names.join(" | ")
    );
    let _ = writeln!(md, "|---|{}---|---|", "---|".repeat(names.len()));
    for figure in figures(run) {
        let values: Vec<String> = figure
            .values
            .iter()
            .map(|v| number(*v, figure.decimals))
            .collect();
        let vs = |peer, goal| {
            let r = ratio(&figure, sextant, peer);
            let mut cell = number(r, 2);
            if let Some(v) = verdict(r, goal) {
                cell = format!("{cell} ({v})");
            }
            cell
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            figure.name,
            values.join(" | "),
            vs(prometheus, figure.goal_prometheus),
            vs(victoria, figure.goal_victoria),
        );
    }
    let _ = writeln!(
        md,
        "\nQueries (`query_range` from one interval after the start of ingestion to 30 s before its end; `{{w}}` = 4 scrape intervals, at least 60 s), series returned per system:\n"
    );
    if let Some(first) = run.systems.iter().find(|s| !s.queries.is_empty()) {
        for (index, query) in first.queries.iter().enumerate() {
            let counts: Vec<String> = run
                .systems
                .iter()
                .map(|s| {
                    s.queries
                        .get(index)
                        .map_or("n/a".to_string(), |q| match &q.error {
                            Some(e) => format!("error: {e}"),
                            None => q.series.to_string(),
                        })
                })
                .collect();
            let _ = writeln!(
                md,
                "- {}: `{}` — {}",
                query.name,
                query.expr,
                counts.join(" / ")
            );
        }
    }
    let _ = writeln!(md, "\n![ratios](compare-{}.png)", size.name);
    md
}

fn chart(run: &SizeRun) -> BarChart {
    let sextant = index_of(run, System::Sextant);
    let rows: Vec<Figure> = figures(run).into_iter().filter(|f| f.charted).collect();
    let group = |peer: System, label: &str, color: Rgb| BarGroup {
        label: label.to_string(),
        color,
        values: rows
            .iter()
            .map(|f| ratio(f, sextant, index_of(run, peer)))
            .collect(),
    };
    BarChart {
        title: format!(
            "Sextant / peer, size {} ({} active series) — lower is better",
            run.size.name, run.active_series
        ),
        rows: rows
            .iter()
            .map(|f| {
                f.name
                    .replace(" (whole run, series creation included)", " (whole run)")
            })
            .collect(),
        groups: vec![
            group(
                System::Prometheus,
                "Sextant / Prometheus",
                Rgb(0xE6, 0x52, 0x2C),
            ),
            group(
                System::VictoriaMetrics,
                "Sextant / VictoriaMetrics",
                Rgb(0x62, 0x3C, 0xE4),
            ),
        ],
        references: vec![(0.5, "0.5x".to_string()), (1.0, "1x".to_string())],
    }
}

/// Writes the markdown, JSON and PNG of `run` into `out`.
pub fn write(out: &Path, run: &SizeRun) -> Result<(), Error> {
    let base = out.join(format!("compare-{}", run.size.name));
    std::fs::write(base.with_extension("md"), markdown(run))?;
    std::fs::write(
        base.with_extension("json"),
        serde_json::to_string_pretty(run)?,
    )?;
    let png = render_bars(&chart(run), ChartSize::new(1000, 640))?;
    std::fs::write(base.with_extension("png"), png)?;
    Ok(())
}
