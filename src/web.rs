//! The HTTP front door every listener shares: the `--web.config.file`
//! ([`config`], format in `docs/format/web-config.md`) with TLS and client
//! certificates ([`tls`]), basic auth, bearer tokens, response headers and a
//! request rate limit ([`front`]), and the connection loop with its limits
//! and timeouts ([`serve`]).
//!
//! The web config is re-read when the file or a certificate it names
//! changes (checked on every connection and request, as Prometheus reads it
//! on every request), so rotated certificates and changed users apply
//! without a restart; a new file that does not load is logged and the last
//! good one stays in force.

pub mod config;
pub mod front;
pub mod serve;
pub mod tls;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rustls::ServerConfig;

pub use config::WebConfig;
pub use front::WebFront;
pub use serve::{ConnectionLimits, Transport, serve};

/// Errors of the web front door.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The web config file does not load.
    #[error("web config: {0}")]
    Config(String),
    /// A certificate, key or client CA is unusable.
    #[error("TLS: {0}")]
    Tls(String),
}

/// A loaded web config with its TLS settings built.
#[derive(Debug, Default)]
pub struct ActiveWebConfig {
    pub config: WebConfig,
    /// Present when the config serves HTTPS.
    pub tls: Option<Arc<ServerConfig>>,
}

impl ActiveWebConfig {
    fn build(config: WebConfig) -> Result<Self, Error> {
        let tls = match config.tls() {
            Some(tls) => Some(Arc::new(tls::from_web_config(
                tls,
                config.http_server_config.http2,
            )?)),
            None => None,
        };
        Ok(ActiveWebConfig { config, tls })
    }
}

/// The web config in force, re-read when its files change.
pub struct WebConfigSource {
    path: Option<PathBuf>,
    state: Mutex<SourceState>,
}

struct SourceState {
    stamps: Vec<FileStamp>,
    active: Arc<ActiveWebConfig>,
    /// Whether the last reload attempt failed (logged once per change).
    last_reload_ok: bool,
}

/// What identifies a file's version: a rewrite or a rename over it changes
/// one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    version: Option<(i64, i64, u64, u64)>,
}

impl FileStamp {
    fn of(path: &Path) -> FileStamp {
        let version = std::fs::metadata(path)
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec(), m.len(), m.ino()));
        FileStamp {
            path: path.to_path_buf(),
            version,
        }
    }
}

impl WebConfigSource {
    /// No web config: plain HTTP, no authentication.
    pub fn none() -> Self {
        WebConfigSource {
            path: None,
            state: Mutex::new(SourceState {
                stamps: Vec::new(),
                active: Arc::new(ActiveWebConfig::default()),
                last_reload_ok: true,
            }),
        }
    }

    /// Loads `path` (`None`: no web config).
    ///
    /// # Errors
    /// The file does not load or its TLS settings are unusable.
    pub fn load(path: Option<&Path>) -> Result<Self, Error> {
        let Some(path) = path else {
            return Ok(WebConfigSource::none());
        };
        let config = WebConfig::load(path)?;
        let stamps = stamps(path, &config);
        let active = ActiveWebConfig::build(config)?;
        Ok(WebConfigSource {
            path: Some(path.to_path_buf()),
            state: Mutex::new(SourceState {
                stamps,
                active: Arc::new(active),
                last_reload_ok: true,
            }),
        })
    }

    /// Whether the listener speaks TLS (fixed at start: switching needs a
    /// restart, as in Prometheus).
    pub fn serves_tls(&self) -> bool {
        self.state.lock().active.tls.is_some()
    }

    /// Whether the last attempt to re-read the files succeeded.
    pub fn last_reload_successful(&self) -> bool {
        self.state.lock().last_reload_ok
    }

    /// The config in force, re-read first if one of its files changed.
    pub fn current(&self) -> Arc<ActiveWebConfig> {
        let Some(path) = &self.path else {
            return Arc::clone(&self.state.lock().active);
        };
        let mut state = self.state.lock();
        let now: Vec<FileStamp> = state
            .stamps
            .iter()
            .map(|s| FileStamp::of(&s.path))
            .collect();
        if now == state.stamps {
            return Arc::clone(&state.active);
        }
        let was_tls = state.active.tls.is_some();
        let reloaded = WebConfig::load(path).and_then(|config| {
            let stamps = stamps(path, &config);
            let active = ActiveWebConfig::build(config)?;
            if active.tls.is_some() != was_tls {
                return Err(Error::Config(
                    "turning TLS on or off needs a restart".to_string(),
                ));
            }
            Ok((stamps, active))
        });
        match reloaded {
            Ok((stamps, active)) => {
                tracing::info!(file = %path.display(), "Reloaded the web config.");
                state.stamps = stamps;
                state.active = Arc::new(active);
                state.last_reload_ok = true;
            }
            Err(error) => {
                // Remember the failed version so the error is logged once,
                // and keep serving with the last good config.
                tracing::error!(%error, "Keeping the previous web config.");
                state.stamps = now;
                state.last_reload_ok = false;
            }
        }
        Arc::clone(&state.active)
    }
}

fn stamps(path: &Path, config: &WebConfig) -> Vec<FileStamp> {
    std::iter::once(path.to_path_buf())
        .chain(config.referenced_files())
        .map(|p| FileStamp::of(&p))
        .collect()
}
