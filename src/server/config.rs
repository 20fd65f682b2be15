//! Where the server's configuration comes from (a file or the embedded
//! default), and the text `status/config` shows for it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::config::{Config, EMBEDDED_DEFAULT};

/// The address the embedded default scrapes; replaced by the address the
/// server actually listens on.
const DEFAULT_SELF_TARGET: &str = "127.0.0.1:9090";

/// Loads the configuration, again on every reload.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// `None`: the embedded default.
    pub file: Option<PathBuf>,
    /// Where the server listens, for the default's self-scrape target.
    pub listen: SocketAddr,
}

/// A loaded configuration and the text to show for it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// The source text with secrets replaced by `<secret>`.
    pub shown: String,
}

impl ConfigSource {
    /// Reads and validates the configuration.
    ///
    /// # Errors
    /// The file cannot be read or is invalid (with file, line and column).
    pub fn load(&self) -> anyhow::Result<Loaded> {
        match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                let config = Config::load_file(path)?;
                Ok(Loaded {
                    config,
                    shown: mask_secrets(&text),
                })
            }
            None => {
                // Listening on every interface: scrape through loopback.
                let mut target = self.listen;
                if target.ip().is_unspecified() {
                    target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                let text = EMBEDDED_DEFAULT.replace(DEFAULT_SELF_TARGET, &target.to_string());
                let config = Config::from_yaml(&text, "<embedded default>")?;
                Ok(Loaded {
                    config,
                    shown: text,
                })
            }
        }
    }
}

/// Keys whose values are secrets in Prometheus's configuration (its
/// `Secret` fields); `status/config` shows `<secret>` instead, as
/// Prometheus does.
const SECRET_KEYS: &[&str] = &[
    "password",
    "credentials",
    "bearer_token",
    "client_secret",
    "key",
    "secrets",
];

/// The YAML with every secret value replaced; unparsable text (it was
/// validated before, so only in theory) is hidden entirely.
pub fn mask_secrets(text: &str) -> String {
    let Ok(mut value) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return "<unparsable configuration hidden>\n".to_string();
    };
    mask(&mut value);
    serde_yaml::to_string(&value).unwrap_or_default()
}

fn mask(value: &mut serde_yaml::Value) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (key, value) in map.iter_mut() {
                let is_secret = key.as_str().is_some_and(|k| SECRET_KEYS.contains(&k));
                if is_secret && !value.is_null() {
                    *value = match value {
                        serde_yaml::Value::Sequence(items) => serde_yaml::Value::Sequence(
                            items.iter().map(|_| "<secret>".into()).collect(),
                        ),
                        _ => "<secret>".into(),
                    };
                } else {
                    mask(value);
                }
            }
        }
        serde_yaml::Value::Sequence(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let text = "\
scrape_configs:
  - job_name: a
    basic_auth:
      username: me
      password: hunter2
    authorization:
      credentials: token
    tls_config:
      key_file: /k.pem
    static_configs:
      - targets: ['x:1']
";
        let shown = mask_secrets(text);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("token"), "{shown}");
        assert!(shown.contains("password: <secret>"), "{shown}");
        assert!(shown.contains("username: me"), "{shown}");
        assert!(shown.contains("key_file: /k.pem"), "{shown}");
    }

    #[test]
    fn the_default_scrapes_the_listen_address() {
        let source = ConfigSource {
            file: None,
            listen: "127.0.0.1:9123".parse().unwrap(),
        };
        let loaded = source.load().unwrap();
        assert!(loaded.shown.contains("127.0.0.1:9123"), "{}", loaded.shown);
        assert_eq!(loaded.config.scrape_configs.len(), 1);
        let everywhere = ConfigSource {
            file: None,
            listen: "0.0.0.0:9124".parse().unwrap(),
        };
        assert!(everywhere.load().unwrap().shown.contains("127.0.0.1:9124"));
        let missing = ConfigSource {
            file: Some("/nonexistent/sextant.yml".into()),
            listen: "127.0.0.1:9090".parse().unwrap(),
        };
        assert!(missing.load().is_err());
    }
}
