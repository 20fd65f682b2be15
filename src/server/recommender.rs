//! The recommender service: builds every configured workload's VPA model from the
//! database's own history at start-up (nothing is lost on restart), then refreshes
//! every `autoscaler.refresh_interval`, feeding only the samples that arrived since.
//! The latest [`Report`] is shared with `/api/v1/recommendations` and rendered as
//! `sextant_recommendation_*` gauges on `/metrics`.
//!
//! The models are saved every `autoscaler.checkpoint_interval` and at shutdown to
//! `<storage.path>/autoscaler/checkpoints.jsonl`
//! (`autoscaler/docs/format/checkpoints.md`) and restored at start, so that a
//! restart feeds the minutes since the last checkpoint instead of days of history.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use autoscaler::controller::PodRequests;
use autoscaler::recommender::{Options, Recommender, Report, WorkloadSpec};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tsdb::clock::Clock;

use crate::api::recommendations::Latest;
use crate::backend::LocalBackend;
use crate::config::{AutoscalerConfig, KubernetesApiConfig};
use crate::kubernetes::{WorkloadDiscovery, merge_workloads};
use crate::metrics::{Collector, Kind, Registry};

/// The running service.
pub struct RecommenderService {
    latest: Latest,
    workloads: watch::Sender<Targets>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Figures about the refreshes themselves.
#[derive(Debug, Default)]
struct RefreshStats {
    runs: u64,
    last_duration_s: f64,
    last_time_ms: Option<i64>,
    /// Usage samples fed into the VPA models by this process.
    samples_fed: u64,
    /// Workloads whose model came from the checkpoint file at start.
    restored: usize,
    checkpoints_written: u64,
    checkpoint_failures: u64,
    last_checkpoint_ms: Option<i64>,
}

/// The checkpoint file in the data directory.
pub fn checkpoint_path(storage_path: &Path) -> PathBuf {
    storage_path.join("autoscaler").join("checkpoints.jsonl")
}

/// Restores the models of the checkpoint file, if there is a usable one; a
/// damaged or incompatible file is logged and ignored. Returns the workloads
/// restored.
async fn restore_checkpoints(recommender: &mut Recommender, path: &Path) -> usize {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "Cannot read the recommender checkpoints; building the models from history.");
            return 0;
        }
    };
    match recommender.restore_checkpoints(&bytes) {
        Ok(restored) => {
            for failed in &restored.failed {
                tracing::warn!(checkpoint = %failed, "A workload's checkpoint was not restored; building its model from history.");
            }
            tracing::info!(
                path = %path.display(),
                restored = restored.workloads,
                unused = restored.unused,
                "Recommender checkpoints restored."
            );
            restored.workloads
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "Ignoring the recommender checkpoint file; building the models from history.");
            0
        }
    }
}

/// Writes every model to `path` atomically: a temporary file beside it, synced,
/// renamed over it, the directory synced.
async fn save_checkpoints(
    recommender: &Recommender,
    path: &Path,
    now_ms: i64,
) -> std::io::Result<usize> {
    let mut bytes = Vec::new();
    let workloads = recommender.write_checkpoints(&mut bytes, now_ms)?;
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
        .await
        .map_err(std::io::Error::other)??;
    Ok(workloads)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Saves the checkpoints and records the outcome.
async fn checkpoint(
    recommender: &Recommender,
    path: &Path,
    now_ms: i64,
    stats: &Mutex<RefreshStats>,
) {
    match save_checkpoints(recommender, path, now_ms).await {
        Ok(workloads) => {
            tracing::debug!(workloads, path = %path.display(), "Recommender checkpoints written.");
            let mut stats = stats.lock();
            stats.checkpoints_written += 1;
            stats.last_checkpoint_ms = Some(now_ms);
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "Cannot write the recommender checkpoints.");
            stats.lock().checkpoint_failures += 1;
        }
    }
}

/// The recommender options a configuration asks for.
pub fn options(config: &AutoscalerConfig) -> Options {
    let mut options = Options::default();
    options.source.vpa_history = config.history;
    options
}

/// What the refresh loop recommends for: the configured workloads, and the
/// Kubernetes API to discover more from.
#[derive(Debug, Clone, PartialEq)]
struct Targets {
    configured: Vec<WorkloadSpec>,
    kubernetes: Option<KubernetesApiConfig>,
}

impl Targets {
    fn of(config: &AutoscalerConfig) -> Self {
        Targets {
            configured: config.workloads.clone(),
            kubernetes: config.kubernetes.clone(),
        }
    }
}

/// The workloads discovered through the Kubernetes API, kept across a failed
/// discovery.
struct Discovered {
    discovery: Option<WorkloadDiscovery>,
    workloads: Vec<WorkloadSpec>,
    /// The pods' requests from the API; `None` (kube-state-metrics) when the pods
    /// could not be listed.
    pod_requests: Option<PodRequests>,
}

/// How long one discovery may take.
const DISCOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Discovered {
    async fn connect(config: Option<&KubernetesApiConfig>) -> Self {
        let discovery = match config {
            None => None,
            Some(config) => match WorkloadDiscovery::new(config).await {
                Ok(discovery) => Some(discovery),
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "Cannot reach the Kubernetes API; recommending for the configured workloads only.");
                    None
                }
            },
        };
        Discovered {
            discovery,
            workloads: Vec::new(),
            pod_requests: None,
        }
    }

    /// Re-reads the cluster; on failure the last list stays.
    async fn refresh(&mut self) {
        let Some(discovery) = &self.discovery else {
            return;
        };
        match tokio::time::timeout(DISCOVERY_TIMEOUT, discovery.workloads()).await {
            Ok(Ok((workloads, warnings))) => {
                for warning in warnings {
                    tracing::warn!(warning, "Kubernetes object not usable for recommendations.");
                }
                self.workloads = workloads;
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "Kubernetes workload discovery failed; keeping the last list.");
            }
            Err(_) => {
                tracing::warn!("Kubernetes workload discovery timed out; keeping the last list.");
            }
        }
        // Requests change with every rollout: stale ones are worse than
        // kube-state-metrics', so a failed list falls back to those.
        self.pod_requests = match tokio::time::timeout(DISCOVERY_TIMEOUT, discovery.pod_requests())
            .await
        {
            Ok(Ok(requests)) => Some(requests),
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "Cannot list pods; reading requests from kube-state-metrics.");
                None
            }
            Err(_) => {
                tracing::warn!("Listing pods timed out; reading requests from kube-state-metrics.");
                None
            }
        };
    }
}

impl RecommenderService {
    /// Builds every model from the stored history (the first refresh, awaited: the
    /// server becomes ready with recommendations available, as Prometheus becomes
    /// ready after its WAL replay), then refreshes every `refresh_interval`. With
    /// `autoscaler.kubernetes`, the workloads annotated `sextant.io/recommend: "true"`
    /// are discovered before every refresh and recommended for beside the
    /// configured ones. With a `checkpoint_path`, the models saved there are
    /// restored first (the first refresh then feeds only the minutes since), and
    /// saved every `checkpoint_interval` and when stopping.
    ///
    /// # Errors
    /// Invalid recommender options.
    pub async fn start(
        config: &AutoscalerConfig,
        backend: Arc<LocalBackend>,
        clock: Arc<dyn Clock>,
        registry: &Registry,
        checkpoint_path: Option<PathBuf>,
    ) -> anyhow::Result<RecommenderService> {
        let checkpoint_path = checkpoint_path.filter(|_| !config.checkpoint_interval.is_zero());
        let mut targets = Targets::of(config);
        let mut discovered = Discovered::connect(targets.kubernetes.as_ref()).await;
        discovered.refresh().await;
        let mut recommender = Recommender::new(
            merge_workloads(&targets.configured, &discovered.workloads),
            options(config),
        )?;
        recommender.set_pod_requests(discovered.pod_requests.clone());
        let latest: Latest = Arc::new(RwLock::new(None));
        let stats = Arc::new(Mutex::new(RefreshStats::default()));
        if let Some(path) = &checkpoint_path {
            stats.lock().restored = restore_checkpoints(&mut recommender, path).await;
        }
        register_metrics(registry, &latest, &stats);
        let shared = Arc::clone(&latest);
        let refresh_stats = Arc::clone(&stats);
        let refresh_clock = Arc::clone(&clock);
        let refresh = async move |recommender: &mut Recommender| {
            let (clock, stats) = (&refresh_clock, &refresh_stats);
            let started = Instant::now();
            let now_ms = clock.now_ms();
            let report = recommender.refresh(backend.as_ref(), now_ms).await;
            let failed = report
                .workloads
                .iter()
                .filter(|w| !w.errors.is_empty())
                .count();
            if failed > 0 {
                tracing::warn!(
                    failed,
                    "Some workloads' recommendations could not be refreshed."
                );
            }
            *shared.write() = Some(Arc::new(report));
            let mut stats = stats.lock();
            stats.runs += 1;
            stats.last_duration_s = started.elapsed().as_secs_f64();
            stats.last_time_ms = Some(now_ms);
            stats.samples_fed = recommender.samples_fed();
        };
        refresh(&mut recommender).await;
        tracing::info!(
            workloads = recommender.workloads().count(),
            "Recommendations built from the stored history."
        );
        let (updates, mut target_updates) = watch::channel(targets.clone());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let interval = config.refresh_interval;
        let checkpoint_interval = config.checkpoint_interval.max(interval);
        let task = tokio::spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut checkpoint_ticks = tokio::time::interval_at(
                tokio::time::Instant::now() + checkpoint_interval,
                checkpoint_interval,
            );
            checkpoint_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = checkpoint_ticks.tick(), if checkpoint_path.is_some() => {
                        if let Some(path) = &checkpoint_path {
                            checkpoint(&recommender, path, clock.now_ms(), &stats).await;
                        }
                        continue;
                    }
                    _ = ticks.tick() => {}
                    Ok(()) = target_updates.changed() => {
                        let new = target_updates.borrow_and_update().clone();
                        if new.kubernetes != targets.kubernetes {
                            discovered = Discovered::connect(new.kubernetes.as_ref()).await;
                        }
                        targets = new;
                    }
                }
                discovered.refresh().await;
                recommender
                    .set_workloads(merge_workloads(&targets.configured, &discovered.workloads));
                recommender.set_pod_requests(discovered.pod_requests.clone());
                tokio::select! {
                    _ = &mut stopped => break,
                    () = refresh(&mut recommender) => {}
                }
            }
            // Graceful shutdown: the models as of the last completed refresh.
            if let Some(path) = &checkpoint_path {
                checkpoint(&recommender, path, clock.now_ms(), &stats).await;
            }
        });
        Ok(RecommenderService {
            latest,
            workloads: updates,
            stop,
            task,
        })
    }

    /// The latest report, shared with the API.
    pub fn latest(&self) -> Latest {
        Arc::clone(&self.latest)
    }

    /// A reloaded configuration: recommend for this list from now on, keeping the
    /// models of workloads that did not change.
    pub fn reconfigure(&self, config: &AutoscalerConfig) {
        let targets = Targets::of(config);
        self.workloads.send_if_modified(|current| {
            let changed = *current != targets;
            if changed {
                *current = targets;
            }
            changed
        });
    }

    /// Stops after dropping the refresh in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// `sextant_recommendation_*` gauges from the latest report (the series
/// `dashboards/grafana/README.md` lists), and figures about refreshing.
fn register_metrics(registry: &Registry, latest: &Latest, stats: &Arc<Mutex<RefreshStats>>) {
    let latest = Arc::clone(latest);
    let stats = Arc::clone(stats);
    registry.register(move |out| {
        {
            let stats = stats.lock();
            out.counter(
                "sextant_recommendation_refreshes_total",
                "Recommendation refreshes completed.",
                stats.runs as f64,
            );
            out.counter(
                "sextant_recommendation_vpa_samples_fed_total",
                "Usage samples fed into the VPA models since start (not counting those behind restored checkpoints).",
                stats.samples_fed as f64,
            );
            out.gauge(
                "sextant_recommendation_checkpoint_restored_workloads",
                "Workloads whose VPA model was restored from the checkpoint file at start.",
                stats.restored as f64,
            );
            out.counter(
                "sextant_recommendation_checkpoints_written_total",
                "Checkpoint files of the VPA models written.",
                stats.checkpoints_written as f64,
            );
            out.counter(
                "sextant_recommendation_checkpoint_failures_total",
                "Checkpoint files of the VPA models that could not be written.",
                stats.checkpoint_failures as f64,
            );
            if let Some(t) = stats.last_checkpoint_ms {
                out.gauge(
                    "sextant_recommendation_last_checkpoint_timestamp_seconds",
                    "When the VPA models were last written to the checkpoint file.",
                    t as f64 / 1000.0,
                );
            }
            if let Some(t) = stats.last_time_ms {
                out.gauge(
                    "sextant_recommendation_refresh_duration_seconds",
                    "Time the last recommendation refresh took.",
                    stats.last_duration_s,
                );
                out.gauge(
                    "sextant_recommendation_last_refresh_timestamp_seconds",
                    "When the recommendations were last refreshed.",
                    t as f64 / 1000.0,
                );
            }
        }
        let Some(report) = latest.read().clone() else {
            return;
        };
        write_report_metrics(out, &report);
    });
}

/// The gauges of one report.
pub fn write_report_metrics(out: &mut Collector, report: &Report) {
    for w in &report.workloads {
        let kind = format!("{:?}", w.kind);
        let base = [
            ("namespace", w.namespace.as_str()),
            ("kind", kind.as_str()),
            ("workload", w.name.as_str()),
        ];
        if let Some(current) = w.current_replicas {
            out.sample(
                "sextant_recommendation_current_replicas",
                "Replicas the workload runs (kube-state-metrics).",
                Kind::Gauge,
                &base,
                f64::from(current),
            );
        }
        if let Some(hpa) = &w.hpa {
            out.sample(
                "sextant_recommendation_replicas",
                "Replicas the HPA recommendation asks for.",
                Kind::Gauge,
                &base,
                f64::from(hpa.desired_replicas),
            );
        }
        for c in &w.containers {
            for (resource, rec) in [("cpu", &c.cpu), ("memory", &c.memory)] {
                let Some(rec) = rec else { continue };
                let mut labels = base.to_vec();
                labels.extend([
                    ("container", c.name.as_str()),
                    ("resource", resource),
                    ("unit", rec.unit.as_str()),
                ]);
                out.sample(
                    "sextant_recommendation_container_resource_lower_bound",
                    "VPA lower bound of the container's request.",
                    Kind::Gauge,
                    &labels,
                    rec.lower_bound,
                );
                out.sample(
                    "sextant_recommendation_container_resource_target",
                    "VPA target of the container's request.",
                    Kind::Gauge,
                    &labels,
                    rec.target,
                );
                out.sample(
                    "sextant_recommendation_container_resource_upper_bound",
                    "VPA upper bound of the container's request.",
                    Kind::Gauge,
                    &labels,
                    rec.upper_bound,
                );
                if let Some(request) = rec.current_request {
                    out.sample(
                        "sextant_recommendation_container_resource_request",
                        "The container's current request (kube-state-metrics).",
                        Kind::Gauge,
                        &labels,
                        request,
                    );
                }
            }
        }
    }
}
