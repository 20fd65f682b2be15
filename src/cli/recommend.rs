//! `sextant recommend`: HPA replicas and VPA requests for the workloads of a
//! configuration's `autoscaler` section (`--config`; with `autoscaler.kubernetes`,
//! also the workloads annotated `sextant.io/recommend: "true"` and the pods'
//! requests, read from the Kubernetes API as `serve` does), or for every Deployment,
//! StatefulSet and DaemonSet kube-state-metrics reports (no `--config`, as KRR
//! does), read from any Prometheus-compatible server (`--prometheus`, which evaluates
//! the queries itself) or evaluated by Sextant's engine, as `serve` does, over a
//! data directory (`--data-dir`) merged with the configuration's `remote_read`
//! endpoints (a VictoriaMetrics read through its query API gives the numbers the
//! local store gives for the same samples: `tests/victoriametrics_backend.rs`).
//!
//! Output (`-o`): `table` (default), `json` (the report of
//! `docs/format/recommendations-api.md`), `csv` (one row per container and
//! resource), `yaml` (kubectl-appliable `autoscaling/v2` HPAs for workloads with an
//! HPA spec, and one patch per workload setting the recommended requests:
//! `kubectl patch --type strategic --patch-file`, or `kubectl apply
//! --server-side` onto existing workloads).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use autoscaler::model::{CrossVersionObjectReference, HorizontalPodAutoscaler, ObjectMeta};
use autoscaler::recommender::{self, Recommender, Report, WorkloadRecommendation};
use clap::{Args, ValueEnum};
use serde::Serialize;
use tsdb::clock::{Clock, SystemClock};
use tsdb::db::{Db, DbOptions};
use tsdb::head::{Head, HeadOptions};
use tsdb::model::TimeRange;
use tsdb::promql::{EngineOptions, QueryBackend, QueryResult};
use tsdb::storage::Queryable;

use crate::api::params::parse_time;
use crate::backend::LocalBackend;
use crate::config::{AutoscalerConfig, Config};
use crate::kubernetes::{WorkloadDiscovery, merge_workloads};
use crate::metrics::Registry;
use crate::remote_backend::RemoteBackend;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
    Csv,
}

/// Where the history is read from.
#[derive(Debug, Args)]
pub struct DataSource {
    /// Configuration file: its `autoscaler` section lists the workloads (and its
    /// `storage.path` is the default data directory).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Query this Prometheus-compatible server instead of a data directory: the
    /// server evaluates the queries in its own dialect (VictoriaMetrics's MetricsQL
    /// differs from PromQL in `rate` and lookback). For Sextant's own evaluation
    /// over a server's samples, list it under `remote_read` in `--config` instead.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Read this Sextant data directory (default: the config's `storage.path`, else
    /// ./data; not while a server has it open).
    #[arg(long, conflicts_with = "prometheus")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RecommendArgs {
    #[command(flatten)]
    pub source: DataSource,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Evaluation time: Unix seconds or RFC 3339 (default: now).
    #[arg(long)]
    pub time: Option<String>,
}

/// The configuration's autoscaler section, or the defaults.
pub fn load_config(path: Option<&PathBuf>) -> Result<Option<Config>> {
    path.map(|p| Config::load_file(p)).transpose()
}

/// The backend the arguments name: a remote server evaluating the queries itself,
/// or Sextant's engine over a data directory and the configuration's `remote_read`
/// endpoints (the database is `None` when only the endpoints are read).
pub enum AnyBackend {
    Local(LocalBackend, Option<Arc<Db>>),
    Remote(RemoteBackend),
}

impl AnyBackend {
    /// Connects to `--prometheus`, or opens the data directory and merges it with
    /// the configuration's `remote_read` endpoints, as `serve` reads them. With
    /// `remote_read` and no data directory (none named by `--data-dir`, none at the
    /// default place), the endpoints alone are read.
    ///
    /// # Errors
    /// A bad URL, a missing, locked or damaged data directory, a `remote_read`
    /// section whose client cannot be built.
    pub async fn open(source: &DataSource, config: Option<&Config>) -> Result<AnyBackend> {
        if let Some(url) = &source.prometheus {
            return Ok(AnyBackend::Remote(RemoteBackend::new(url)?));
        }
        let dir = source
            .data_dir
            .clone()
            .or_else(|| config.and_then(|c| c.storage.path.clone()))
            .unwrap_or_else(|| PathBuf::from("data"));
        let reads_remote = config.is_some_and(|c| !c.remote_read.is_empty());
        let db = if dir.is_dir() {
            let path = dir.clone();
            let db = tokio::task::spawn_blocking(move || Db::open(&path, DbOptions::default()))
                .await?
                .with_context(|| format!("opening the data directory {}", dir.display()))?;
            Some(Arc::new(db))
        } else if reads_remote && source.data_dir.is_none() {
            None
        } else {
            bail!(
                "no data directory at {} (use --data-dir or --prometheus)",
                dir.display()
            );
        };
        let (local, local_start): (Arc<dyn Queryable>, Box<dyn Fn() -> i64 + Send + Sync>) =
            match &db {
                Some(db) => {
                    let start = Arc::downgrade(db);
                    (
                        Arc::clone(db) as Arc<dyn Queryable>,
                        Box::new(move || start.upgrade().map_or(i64::MAX, |db| db.start_time())),
                    )
                }
                None => (
                    Arc::new(Head::new(HeadOptions::default())),
                    Box::new(|| i64::MAX),
                ),
            };
        let storage = match config {
            Some(config) => crate::remote::fanout::from_config(config, local, local_start)?,
            None => local,
        };
        let backend = LocalBackend::new(
            storage,
            EngineOptions::default(),
            crate::backend::DEFAULT_MAX_CONCURRENT_QUERIES,
            &Registry::new(),
        );
        Ok(AnyBackend::Local(backend, db))
    }

    /// Closes the data directory, if one is open.
    ///
    /// # Errors
    /// When closing the database fails.
    pub async fn close(self) -> Result<()> {
        if let AnyBackend::Local(backend, Some(db)) = self {
            drop(backend);
            if let Ok(db) = Arc::try_unwrap(db) {
                tokio::task::spawn_blocking(move || db.close()).await??;
            }
        }
        Ok(())
    }
}

impl QueryBackend for AnyBackend {
    async fn instant(&self, query: &str, at_ms: i64) -> tsdb::promql::Result<QueryResult> {
        match self {
            AnyBackend::Local(b, _) => b.instant(query, at_ms).await,
            AnyBackend::Remote(b) => b.instant(query, at_ms).await,
        }
    }

    async fn range(
        &self,
        query: &str,
        range: TimeRange,
        step: Duration,
    ) -> tsdb::promql::Result<QueryResult> {
        match self {
            AnyBackend::Local(b, _) => b.range(query, range, step).await,
            AnyBackend::Remote(b) => b.range(query, range, step).await,
        }
    }
}

/// Computes the recommendations and formats them.
///
/// # Errors
/// A bad configuration or time, an unreachable server or data directory.
pub async fn run(args: RecommendArgs) -> Result<String> {
    let config = load_config(args.source.config.as_ref())?;
    let at_ms = match &args.time {
        Some(t) => parse_time(t).map_err(|e| anyhow::anyhow!("invalid --time: {e}"))?,
        None => SystemClock.now_ms(),
    };
    let section = config
        .as_ref()
        .map(|c| c.autoscaler.clone())
        .unwrap_or_default();
    let backend = AnyBackend::open(&args.source, config.as_ref()).await?;
    let report = recommend(&backend, &section, config.is_some(), at_ms).await;
    backend.close().await?;
    let report = report?;
    format(&report, args.output)
}

/// The report for the configured workloads, plus those discovered through the
/// Kubernetes API when the section has `kubernetes` (as `serve` does), or for the
/// workloads kube-state-metrics reports when there is no configuration.
pub async fn recommend<B: QueryBackend>(
    backend: &B,
    section: &AutoscalerConfig,
    configured: bool,
    at_ms: i64,
) -> Result<Report> {
    let mut workloads = if configured {
        section.workloads.clone()
    } else {
        recommender::discover(backend, at_ms)
            .await
            .context("discovering workloads from kube-state-metrics")?
    };
    let mut pod_requests = None;
    if let Some(kubernetes) = section.kubernetes.as_ref().filter(|_| configured) {
        // The same discovery as `serve`: annotated workloads with their HPA and VPA
        // objects, and the pods' requests from their specs.
        let discovery = WorkloadDiscovery::new(kubernetes)
            .await
            .context("connecting to the Kubernetes API (autoscaler.kubernetes)")?;
        let (discovered, warnings) = discovery
            .workloads()
            .await
            .context("discovering workloads through the Kubernetes API")?;
        for warning in warnings {
            tracing::warn!(warning, "Kubernetes object not usable for recommendations.");
        }
        workloads = merge_workloads(&workloads, &discovered);
        pod_requests = match discovery.pod_requests().await {
            Ok(requests) => Some(requests),
            Err(error) => {
                tracing::warn!(error = %error, "Cannot list pods; reading requests from kube-state-metrics.");
                None
            }
        };
    }
    let mut recommender =
        Recommender::new(workloads, crate::server::recommender::options(section))?;
    recommender.set_pod_requests(pod_requests);
    Ok(recommender.refresh(backend, at_ms).await)
}

/// The report in the chosen format.
///
/// # Errors
/// Serialization failures.
pub fn format(report: &Report, output: OutputFormat) -> Result<String> {
    Ok(match output {
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(report)?;
            s.push('\n');
            s
        }
        OutputFormat::Table => table(report),
        OutputFormat::Csv => csv(report),
        OutputFormat::Yaml => yaml(report)?,
    })
}

fn quantity_or_dash(q: Option<&String>) -> &str {
    q.map_or("-", String::as_str)
}

fn table(report: &Report) -> String {
    let mut rows = vec![
        [
            "NAMESPACE",
            "KIND",
            "NAME",
            "CONTAINER",
            "CPU REQUEST",
            "CPU TARGET (LOWER-UPPER)",
            "MEMORY REQUEST",
            "MEMORY TARGET (LOWER-UPPER)",
            "REPLICAS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for w in &report.workloads {
        let replicas = match (&w.hpa, w.current_replicas) {
            (Some(h), _) => format!("{} -> {}", h.current_replicas, h.desired_replicas),
            (None, Some(c)) => c.to_string(),
            (None, None) => "-".into(),
        };
        let bounds = |r: &Option<recommender::ResourceRecommendation>| match r {
            Some(r) => (
                quantity_or_dash(r.quantities.get("current_request")).to_string(),
                format!(
                    "{} ({}-{})",
                    r.quantities.target, r.quantities.lower_bound, r.quantities.upper_bound
                ),
            ),
            None => ("-".into(), "-".into()),
        };
        let kind = format!("{:?}", w.kind);
        if w.containers.is_empty() {
            rows.push(vec![
                w.namespace.clone(),
                kind.clone(),
                w.name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                replicas.clone(),
            ]);
        }
        for c in &w.containers {
            let (cpu_request, cpu) = bounds(&c.cpu);
            let (memory_request, memory) = bounds(&c.memory);
            rows.push(vec![
                w.namespace.clone(),
                kind.clone(),
                w.name.clone(),
                c.name.clone(),
                cpu_request,
                cpu,
                memory_request,
                memory,
                replicas.clone(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for w in &report.workloads {
        for error in &w.errors {
            let _ = writeln!(out, "{:?} {}/{}: {error}", w.kind, w.namespace, w.name);
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(report: &Report) -> String {
    let mut out = String::from(
        "namespace,kind,workload,container,resource,unit,current_request,lower_bound,target,upper_bound,confidence_days,current_replicas,recommended_replicas\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for w in &report.workloads {
        let current = w.current_replicas.map_or(String::new(), |r| r.to_string());
        let desired = w
            .hpa
            .as_ref()
            .map_or(String::new(), |h| h.desired_replicas.to_string());
        let kind = format!("{:?}", w.kind);
        let mut line =
            |container: &str, resource: &str, r: Option<&recommender::ResourceRecommendation>| {
                let cells = match r {
                    Some(r) => vec![
                        r.unit.clone(),
                        opt(r.current_request),
                        r.lower_bound.to_string(),
                        r.target.to_string(),
                        r.upper_bound.to_string(),
                        r.confidence.to_string(),
                    ],
                    None => vec![String::new(); 6],
                };
                let mut all = vec![
                    w.namespace.clone(),
                    kind.clone(),
                    w.name.clone(),
                    container.to_string(),
                    resource.to_string(),
                ];
                all.extend(cells);
                all.push(current.clone());
                all.push(desired.clone());
                let all: Vec<String> = all.iter().map(|c| csv_field(c)).collect();
                out.push_str(&all.join(","));
                out.push('\n');
            };
        if w.containers.is_empty() {
            line("", "", None);
        }
        for c in &w.containers {
            if let Some(r) = &c.cpu {
                line(&c.name, "cpu", Some(r));
            }
            if let Some(r) = &c.memory {
                line(&c.name, "memory", Some(r));
            }
        }
    }
    out
}

/// The API group of every workload kind Sextant follows.
const APPS_V1: &str = "apps/v1";

/// A strategic-merge patch (also a server-side apply configuration) of a workload
/// setting each container's recommended requests.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadPatch {
    api_version: &'static str,
    kind: String,
    metadata: ObjectMeta,
    spec: PatchSpec,
}

#[derive(Serialize)]
struct PatchSpec {
    template: PatchTemplate,
}

#[derive(Serialize)]
struct PatchTemplate {
    spec: PatchPodSpec,
}

#[derive(Serialize)]
struct PatchPodSpec {
    containers: Vec<PatchContainer>,
}

#[derive(Serialize)]
struct PatchContainer {
    name: String,
    resources: PatchResources,
}

#[derive(Serialize)]
struct PatchResources {
    requests: std::collections::BTreeMap<String, String>,
}

fn meta(w: &WorkloadRecommendation, annotation: String) -> ObjectMeta {
    ObjectMeta {
        name: w.name.clone(),
        namespace: Some(w.namespace.clone()),
        labels: Default::default(),
        annotations: [("sextant.io/recommendation".to_string(), annotation)]
            .into_iter()
            .collect(),
    }
}

fn yaml(report: &Report) -> Result<String> {
    let mut docs = Vec::new();
    for w in &report.workloads {
        if let Some(hpa) = &w.hpa {
            let mut spec = hpa.spec.clone();
            spec.scale_target_ref = Some(CrossVersionObjectReference {
                kind: format!("{:?}", w.kind),
                name: w.name.clone(),
                api_version: Some(APPS_V1.to_string()),
            });
            let object = HorizontalPodAutoscaler {
                api_version: "autoscaling/v2".into(),
                kind: "HorizontalPodAutoscaler".into(),
                metadata: meta(
                    w,
                    format!(
                        "replicas {} -> {} ({})",
                        hpa.current_replicas, hpa.desired_replicas, hpa.explanation.summary
                    ),
                ),
                spec,
            };
            docs.push(serde_yaml::to_string(&object)?);
        }
        let containers: Vec<PatchContainer> = w
            .containers
            .iter()
            .filter_map(|c| {
                let mut requests = std::collections::BTreeMap::new();
                for (resource, r) in [("cpu", &c.cpu), ("memory", &c.memory)] {
                    if let Some(r) = r {
                        requests.insert(resource.to_string(), r.quantities.target.clone());
                    }
                }
                (!requests.is_empty()).then(|| PatchContainer {
                    name: c.name.clone(),
                    resources: PatchResources { requests },
                })
            })
            .collect();
        if containers.is_empty() {
            continue;
        }
        let patch = WorkloadPatch {
            api_version: APPS_V1,
            kind: format!("{:?}", w.kind),
            metadata: meta(w, "VPA target requests".into()),
            spec: PatchSpec {
                template: PatchTemplate {
                    spec: PatchPodSpec { containers },
                },
            },
        };
        docs.push(serde_yaml::to_string(&patch)?);
    }
    Ok(docs
        .into_iter()
        .map(|d| format!("---\n{d}"))
        .collect::<String>())
}
