//! `targets` and `metadata`: what the scrape pools report, in Prometheus's
//! shapes. The composition hands the API a snapshot function; this module
//! only filters and writes JSON.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use tsdb::model::Labels;

use super::error::ApiError;
use super::json::{Envelope, rfc3339};
use super::params::Params;
use super::{Api, ok};

/// The targets of every scrape pool at one moment.
#[derive(Debug, Clone, Default)]
pub struct TargetsSnapshot {
    pub active: Vec<ActiveTarget>,
    /// At most `keep_dropped_targets` per pool.
    pub dropped: Vec<DroppedTarget>,
    /// Every pool's count of dropped targets, kept or not (zeros included).
    pub dropped_counts: BTreeMap<String, usize>,
}

/// A target being scraped.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    /// The scrape pool: the job name of its scrape config.
    pub pool: String,
    /// Labels before relabeling.
    pub discovered_labels: Labels,
    /// Labels after relabeling, the reserved `__*` ones included (they are
    /// left out of the answer).
    pub labels: Labels,
    pub scrape_url: String,
    pub health: Health,
    /// Empty when the last scrape succeeded.
    pub last_error: String,
    /// Start of the last scrape in milliseconds; `None` before the first.
    pub last_scrape_ms: Option<i64>,
    pub last_scrape_duration: Duration,
    pub interval: Duration,
    pub timeout: Duration,
}

/// A discovered target that relabeling dropped.
#[derive(Debug, Clone)]
pub struct DroppedTarget {
    pub pool: String,
    pub discovered_labels: Labels,
}

/// A target's health, as the targets API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
    Unknown,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
}

/// The type, help and unit of a metric family, from the scraped metadata.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MetricMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// Go's zero `time.Time`, which Prometheus reports for "never scraped".
const NEVER: &str = "0001-01-01T00:00:00Z";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetDiscovery {
    active_targets: Vec<ActiveJson>,
    dropped_targets: Vec<DroppedJson>,
    /// `null` unless dropped targets are asked for; never filtered by pool
    /// (as Prometheus).
    dropped_target_counts: Option<BTreeMap<String, usize>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActiveJson {
    discovered_labels: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    scrape_pool: String,
    scrape_url: String,
    global_url: String,
    last_error: String,
    last_scrape: String,
    last_scrape_duration: f64,
    health: &'static str,
    scrape_interval: String,
    scrape_timeout: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DroppedJson {
    discovered_labels: BTreeMap<String, String>,
    scrape_pool: String,
}

/// `GET /api/v1/targets?state=active|dropped|any&scrapePool=<name>`.
pub async fn targets(State(api): State<Arc<Api>>, params: Params) -> Result<Response, ApiError> {
    let state = params.get("state").to_ascii_lowercase();
    let (show_active, show_dropped) = match state.as_str() {
        "" | "any" => (true, true),
        "active" => (true, false),
        "dropped" => (false, true),
        // Prometheus shows nothing for an unknown state.
        _ => (false, false),
    };
    let pool = params.get("scrapePool");
    let in_pool = |p: &str| pool.is_empty() || p == pool;
    let mut snapshot = (api.sources.targets)();
    snapshot
        .active
        .sort_by(|a, b| (&a.pool, &a.labels).cmp(&(&b.pool, &b.labels)));
    snapshot
        .dropped
        .sort_by(|a, b| (&a.pool, &a.discovered_labels).cmp(&(&b.pool, &b.discovered_labels)));
    let dropped_target_counts = show_dropped.then(|| snapshot.dropped_counts.clone());
    let active_targets = snapshot
        .active
        .iter()
        .filter(|t| show_active && in_pool(&t.pool))
        .map(|t| ActiveJson {
            discovered_labels: label_map(&t.discovered_labels),
            labels: t
                .labels
                .iter()
                .filter(|l| !l.name.starts_with("__"))
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect(),
            scrape_pool: t.pool.clone(),
            scrape_url: t.scrape_url.clone(),
            global_url: t.scrape_url.clone(),
            last_error: t.last_error.clone(),
            last_scrape: t.last_scrape_ms.map_or_else(|| NEVER.to_string(), rfc3339),
            last_scrape_duration: t.last_scrape_duration.as_secs_f64(),
            health: t.health.as_str(),
            scrape_interval: scraper::config::format_duration(t.interval),
            scrape_timeout: scraper::config::format_duration(t.timeout),
        })
        .collect();
    let dropped_targets = snapshot
        .dropped
        .iter()
        .filter(|t| show_dropped && in_pool(&t.pool))
        .map(|t| DroppedJson {
            discovered_labels: label_map(&t.discovered_labels),
            scrape_pool: t.pool.clone(),
        })
        .collect();
    data(&TargetDiscovery {
        active_targets,
        dropped_targets,
        dropped_target_counts,
    })
}

/// `GET /api/v1/metadata?metric=<name>&limit=<n>&limit_per_metric=<n>`:
/// `{"<metric>":[{"type","help","unit"},…]}`, distinct entries per metric.
pub async fn metadata(State(api): State<Arc<Api>>, params: Params) -> Result<Response, ApiError> {
    let limit = optional_count(&params, "limit")?;
    // Zero means no limit here, unlike `limit`.
    let limit_per_metric = optional_count(&params, "limit_per_metric")?.filter(|&n| n > 0);
    let metric = params.get("metric");
    let mut by_metric: BTreeMap<String, Vec<MetricMetadata>> = BTreeMap::new();
    for (name, metadata) in (api.sources.metadata)() {
        if !metric.is_empty() && name != metric {
            continue;
        }
        let entries = by_metric.entry(name).or_default();
        if !entries.contains(&metadata) {
            entries.push(metadata);
        }
    }
    if let Some(limit) = limit {
        by_metric = by_metric.into_iter().take(limit).collect();
    }
    if let Some(limit_per_metric) = limit_per_metric {
        for entries in by_metric.values_mut() {
            entries.truncate(limit_per_metric);
        }
    }
    data(&by_metric)
}

/// A limit where negative means none (Prometheus's `metadata` limits).
fn optional_count(params: &Params, name: &str) -> Result<Option<usize>, ApiError> {
    match params.get(name) {
        "" => Ok(None),
        s => {
            let n: i64 = s
                .parse()
                .map_err(|_| ApiError::BadData(format!("{name} must be a number")))?;
            Ok(usize::try_from(n).ok())
        }
    }
}

fn label_map(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

fn data(value: &impl Serialize) -> Result<Response, ApiError> {
    let json = serde_json::to_string(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(ok(Envelope::success(&json, &[], &[])))
}
