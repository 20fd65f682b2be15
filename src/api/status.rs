//! `status/buildinfo`, `status/config`, `status/flags`,
//! `status/runtimeinfo`, `status/tsdb`: what the server is, how it runs and
//! what it holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use parking_lot::RwLock;
use serde::Serialize;

use tsdb::model::{MatchOp, Matcher, TimeRange};
use tsdb::storage::SelectHints;

use super::error::ApiError;
use super::json::{Envelope, rfc3339};
use super::params::Params;
use super::{Api, ok};

/// Facts about the running server that the status endpoints report. The
/// composition fills it at start and updates the config part on reload.
#[derive(Debug)]
pub struct ServerInfo {
    pub start_time_ms: i64,
    /// Command line flags under Prometheus's names where one exists.
    pub flags: BTreeMap<String, String>,
    /// Retention as Prometheus prints it, such as `15d`.
    pub storage_retention: String,
    config: RwLock<ConfigState>,
}

#[derive(Debug, Clone)]
struct ConfigState {
    yaml: String,
    reload_success: bool,
    last_config_time_ms: i64,
}

impl ServerInfo {
    pub fn new(
        start_time_ms: i64,
        flags: BTreeMap<String, String>,
        storage_retention: String,
        config_yaml: String,
    ) -> Self {
        ServerInfo {
            start_time_ms,
            flags,
            storage_retention,
            config: RwLock::new(ConfigState {
                yaml: config_yaml,
                reload_success: true,
                last_config_time_ms: start_time_ms,
            }),
        }
    }

    /// Records a successful (re)load of `yaml` at `now_ms`.
    pub fn config_loaded(&self, yaml: String, now_ms: i64) {
        *self.config.write() = ConfigState {
            yaml,
            reload_success: true,
            last_config_time_ms: now_ms,
        };
    }

    /// Records a failed reload; the old config stays in force.
    pub fn config_reload_failed(&self) {
        self.config.write().reload_success = false;
    }

    pub fn config_yaml(&self) -> String {
        self.config.read().yaml.clone()
    }

    pub fn reload_success(&self) -> bool {
        self.config.read().reload_success
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildInfo {
    version: &'static str,
    revision: &'static str,
    branch: &'static str,
    build_user: &'static str,
    build_date: &'static str,
    go_version: &'static str,
}

/// `GET /api/v1/status/buildinfo`. There is deliberately no `features` map:
/// Grafana takes a server that sends one for Mimir.
pub async fn buildinfo() -> Result<Response, ApiError> {
    let info = BuildInfo {
        // The Prometheus version whose API we speak: Grafana reads it to
        // decide which endpoints and parameters it may use.
        version: "3.0.0",
        revision: concat!("sextant-", env!("CARGO_PKG_VERSION")),
        branch: "",
        build_user: "",
        build_date: "",
        go_version: "",
    };
    data(&info)
}

/// `GET /api/v1/status/config`.
pub async fn config(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    #[derive(Serialize)]
    struct Config {
        yaml: String,
    }
    data(&Config {
        yaml: api.info.config_yaml(),
    })
}

/// `GET /api/v1/status/flags`.
pub async fn flags(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    data(&api.info.flags)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeInfo {
    start_time: String,
    #[serde(rename = "CWD")]
    cwd: String,
    hostname: String,
    server_time: String,
    reload_config_success: bool,
    last_config_time: String,
    corruption_count: i64,
    /// Live tokio tasks, our nearest equivalent.
    goroutine_count: usize,
    /// Tokio worker threads.
    #[serde(rename = "GOMAXPROCS")]
    gomaxprocs: usize,
    #[serde(rename = "GOMEMLIMIT")]
    gomemlimit: i64,
    #[serde(rename = "GOGC")]
    gogc: &'static str,
    #[serde(rename = "GODEBUG")]
    godebug: &'static str,
    storage_retention: String,
}

/// `GET /api/v1/status/runtimeinfo`.
pub async fn runtimeinfo(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let config = api.info.config.read().clone();
    let runtime = tokio::runtime::Handle::current().metrics();
    let info = RuntimeInfo {
        start_time: rfc3339(api.info.start_time_ms),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        server_time: rfc3339(api.clock.now_ms()),
        reload_config_success: config.reload_success,
        last_config_time: rfc3339(config.last_config_time_ms),
        corruption_count: 0,
        goroutine_count: runtime.num_alive_tasks(),
        gomaxprocs: runtime.num_workers(),
        gomemlimit: i64::MAX,
        gogc: "",
        godebug: "",
        storage_retention: api.info.storage_retention.clone(),
    };
    data(&info)
}

/// The head's figures for `status/tsdb`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadStatus {
    pub n_series: usize,
    pub n_chunks: usize,
    /// Oldest and newest sample time in milliseconds; `None` when empty.
    pub min_t: Option<i64>,
    pub max_t: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TsdbStatus {
    head_stats: HeadStats,
    series_count_by_metric_name: Vec<Stat>,
    label_value_count_by_label_name: Vec<Stat>,
    memory_in_bytes_by_label_name: Vec<Stat>,
    series_count_by_label_value_pair: Vec<Stat>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HeadStats {
    num_series: usize,
    num_label_pairs: usize,
    chunk_count: usize,
    min_time: i64,
    max_time: i64,
}

#[derive(Serialize, Debug, PartialEq)]
struct Stat {
    name: String,
    value: u64,
}

/// `GET /api/v1/status/tsdb`: head figures and the top `limit` (default
/// 10) cardinality statistics of the series in the head's time range.
pub async fn tsdb(State(api): State<Arc<Api>>, params: Params) -> Result<Response, ApiError> {
    let limit = match params.get("limit") {
        "" => 10,
        s => s
            .parse::<usize>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| ApiError::BadData("limit must be a positive number".into()))?,
    };
    let head = (api.sources.head_status)();
    let storage = api.storage();
    let cardinality = match (head.min_t, head.max_t) {
        (Some(min_t), Some(max_t)) => {
            api.blocking(move || Cardinality::of(&*storage, TimeRange::new(min_t, max_t)))
                .await??
        }
        _ => Cardinality::default(),
    };
    let status = TsdbStatus {
        head_stats: HeadStats {
            num_series: head.n_series,
            num_label_pairs: cardinality.by_pair.len(),
            chunk_count: head.n_chunks,
            // Prometheus reports the empty head's bounds as these extremes.
            min_time: head.min_t.unwrap_or(i64::MAX),
            max_time: head.max_t.unwrap_or(i64::MIN),
        },
        series_count_by_metric_name: top(&cardinality.by_metric_name, limit),
        label_value_count_by_label_name: top(&cardinality.values_by_label_name, limit),
        memory_in_bytes_by_label_name: top(&cardinality.bytes_by_label_name, limit),
        series_count_by_label_value_pair: top(&cardinality.by_pair, limit),
    };
    data(&status)
}

/// Counts over the label sets of the series in a time range, as
/// Prometheus's postings statistics count them.
#[derive(Debug, Default)]
struct Cardinality {
    /// Series per metric name.
    by_metric_name: HashMap<String, u64>,
    /// Distinct values per label name.
    values_by_label_name: HashMap<String, u64>,
    /// Bytes of the distinct values per label name.
    bytes_by_label_name: HashMap<String, u64>,
    /// Series per `name=value` pair.
    by_pair: HashMap<String, u64>,
}

impl Cardinality {
    fn of(storage: &dyn tsdb::storage::Queryable, range: TimeRange) -> tsdb::Result<Self> {
        let querier = storage.querier(range)?;
        let all = Matcher::new(MatchOp::RegexMatch, tsdb::model::METRIC_NAME, ".+")?;
        let hints = SelectHints {
            series_only: true,
            ..SelectHints::for_range(range)
        };
        let set = querier.select(&[all], &hints)?;
        let mut cardinality = Cardinality::default();
        for series in &set.series {
            for label in &series.labels {
                let pair = format!("{}={}", label.name, label.value);
                let count = cardinality.by_pair.entry(pair).or_insert(0);
                if *count == 0 {
                    *cardinality
                        .values_by_label_name
                        .entry(label.name.to_string())
                        .or_insert(0) += 1;
                    *cardinality
                        .bytes_by_label_name
                        .entry(label.name.to_string())
                        .or_insert(0) += label.value.len() as u64;
                }
                *count += 1;
            }
            if let Some(name) = series.labels.metric_name() {
                *cardinality
                    .by_metric_name
                    .entry(name.to_string())
                    .or_insert(0) += 1;
            }
        }
        Ok(cardinality)
    }
}

/// The `limit` largest counts, largest first, ties by name.
fn top(counts: &HashMap<String, u64>, limit: usize) -> Vec<Stat> {
    let mut stats: Vec<Stat> = counts
        .iter()
        .map(|(name, &value)| Stat {
            name: name.clone(),
            value,
        })
        .collect();
    stats.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    stats.truncate(limit);
    stats
}

fn data(value: &impl Serialize) -> Result<Response, ApiError> {
    let json = serde_json::to_string(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(ok(Envelope::success(&json, &[], &[])))
}
