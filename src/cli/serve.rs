//! `sextant serve`: run the server. Flags take Sextant's short names and
//! Prometheus's spellings, so a Prometheus command line mostly works.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::server::ServeOptions;
use crate::server::agent::AgentSettings;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (Prometheus format); the embedded default scrapes
    /// Sextant itself every 15 s.
    #[arg(long = "config", visible_alias = "config.file", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (default: `storage.path` of the config, else ./data).
    #[arg(
        long = "storage.path",
        visible_alias = "storage.tsdb.path",
        value_name = "DIR"
    )]
    pub storage_path: Option<PathBuf>,
    /// Address to listen on.
    #[arg(
        long = "listen",
        visible_alias = "web.listen-address",
        value_name = "ADDR",
        default_value = "127.0.0.1:9090"
    )]
    pub listen: String,
    /// How long to keep samples, such as 15d (default: the config's
    /// `storage.tsdb.retention.time`, else 15d).
    #[arg(long = "storage.tsdb.retention.time", value_name = "DURATION")]
    pub retention: Option<String>,
    /// The longest a query may run.
    #[arg(long = "query.timeout", value_name = "DURATION", default_value = "2m")]
    pub query_timeout: String,
    /// Queries evaluated at once.
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    pub max_concurrent_queries: usize,
    /// Samples a query may hold in memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub max_samples: usize,
    /// How far back an instant selector looks.
    #[arg(
        long = "query.lookback-delta",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub lookback_delta: String,
    /// Accept remote write requests on /api/v1/write.
    #[arg(long = "web.enable-remote-write-receiver")]
    pub enable_remote_write_receiver: bool,
    /// Agent mode: scrape and remote-write only, with a WAL and no local
    /// querying, rules or recommendations (as Prometheus Agent).
    #[arg(long = "agent")]
    pub agent: bool,
    /// The agent's data directory (default: `storage.path` of the config,
    /// else ./data-agent).
    #[arg(long = "storage.agent.path", value_name = "DIR")]
    pub agent_path: Option<PathBuf>,
    /// How often the agent truncates its WAL.
    #[arg(
        long = "storage.agent.wal-truncate-frequency",
        value_name = "DURATION",
        default_value = "2h"
    )]
    pub agent_wal_truncate_frequency: String,
    /// The agent keeps samples at least this long after they were sent.
    #[arg(
        long = "storage.agent.retention.min-time",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub agent_min_wal_time: String,
    /// The agent keeps nothing older, sent or not.
    #[arg(
        long = "storage.agent.retention.max-time",
        value_name = "DURATION",
        default_value = "4h"
    )]
    pub agent_max_wal_time: String,
    /// Serve the Kubernetes custom and external metrics APIs over HTTPS on
    /// this address (default: the config's `metrics_api.listen_address`;
    /// neither: not served).
    #[arg(long = "metrics-api.listen-address", value_name = "ADDR")]
    pub metrics_api_listen: Option<String>,
    /// TLS, basic auth and bearer tokens for the HTTP listener, in
    /// Prometheus's web config format (re-read when it changes).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Serve POST /-/reload and /-/quit.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,
    /// Serve the TSDB admin endpoints (/api/v1/admin/tsdb/...).
    #[arg(long = "web.enable-admin-api")]
    pub enable_admin_api: bool,
    /// HTTP connections served at once.
    #[arg(long = "web.max-connections", default_value_t = 512)]
    pub max_connections: usize,
    /// The longest a client may take to send a request's body.
    #[arg(
        long = "web.read-timeout",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub read_timeout: String,
    /// The longest a response write may wait for the client to read before the
    /// connection is closed (no progress at all for this long; default: the
    /// default query timeout plus 30 s).
    #[arg(
        long = "web.write-timeout",
        value_name = "DURATION",
        default_value = "2m30s"
    )]
    pub write_timeout: String,
    /// The longest a client may take to send a request's headers (or finish
    /// a TLS handshake).
    #[arg(
        long = "web.header-read-timeout",
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub header_read_timeout: String,
    /// The largest request header block accepted (HTTP 431 beyond).
    #[arg(long = "web.max-header-bytes", default_value_t = 1 << 20)]
    pub max_header_bytes: usize,
    /// Active series kept at most; samples of new series beyond are refused
    /// (and counted), known series go on. 0: no limit.
    #[arg(long = "storage.tsdb.max-series", default_value_t = crate::server::DEFAULT_MAX_SERIES)]
    pub max_series: usize,
}

impl ServeArgs {
    /// The options, with durations parsed.
    ///
    /// # Errors
    /// A duration flag that does not parse.
    pub fn into_options(self) -> anyhow::Result<ServeOptions> {
        let duration = |flag: &str, text: &str| -> anyhow::Result<Duration> {
            scraper::config::parse_duration(text)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("--{flag}"))
        };
        if self.agent && self.enable_remote_write_receiver {
            anyhow::bail!("--web.enable-remote-write-receiver is not available in agent mode");
        }
        let agent = if self.agent {
            Some(AgentSettings {
                wal_truncate_frequency: duration(
                    "storage.agent.wal-truncate-frequency",
                    &self.agent_wal_truncate_frequency,
                )?,
                min_wal_time: duration(
                    "storage.agent.retention.min-time",
                    &self.agent_min_wal_time,
                )?,
                max_wal_time: duration(
                    "storage.agent.retention.max-time",
                    &self.agent_max_wal_time,
                )?,
            })
        } else {
            None
        };
        let storage_path = match agent {
            Some(_) => self.agent_path.or(self.storage_path),
            None => self.storage_path,
        };
        Ok(ServeOptions {
            agent,
            retention: self
                .retention
                .as_deref()
                .map(|r| duration("storage.tsdb.retention.time", r))
                .transpose()?,
            query_timeout: duration("query.timeout", &self.query_timeout)?,
            lookback_delta: duration("query.lookback-delta", &self.lookback_delta)?,
            config_file: self.config,
            storage_path,
            listen: self.listen,
            max_concurrent_queries: self.max_concurrent_queries,
            max_samples: self.max_samples,
            enable_remote_write_receiver: self.enable_remote_write_receiver,
            metrics_api_listen: self.metrics_api_listen,
            web_config_file: self.web_config_file,
            enable_lifecycle: self.enable_lifecycle,
            enable_admin_api: self.enable_admin_api,
            max_series: self.max_series,
            connection_limits: crate::web::ConnectionLimits {
                max_connections: self.max_connections,
                header_read_timeout: duration(
                    "web.header-read-timeout",
                    &self.header_read_timeout,
                )?,
                max_header_bytes: self.max_header_bytes,
                read_timeout: duration("web.read-timeout", &self.read_timeout)?,
                write_timeout: duration("web.write-timeout", &self.write_timeout)?,
            },
        })
    }
}
