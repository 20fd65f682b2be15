//! `status/buildinfo`, `status/config`, `status/flags`,
//! `status/runtimeinfo`: what the server is and how it runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use parking_lot::RwLock;
use serde::Serialize;

use super::error::ApiError;
use super::json::{Envelope, rfc3339};
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

fn data(value: &impl Serialize) -> Result<Response, ApiError> {
    let json = serde_json::to_string(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(ok(Envelope::success(&json, &[], &[])))
}
