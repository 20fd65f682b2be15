//! The metrics APIs' HTTPS listener, when `metrics_api.listen_address` (or
//! `--metrics-api.listen-address`) is set: rules compiled from the config, a
//! first discovery before the listener opens, relisting in the background.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tsdb::clock::Clock;

use crate::backend::LocalBackend;
use crate::config::MetricsApiConfig;
use crate::metrics_api::{MetricsApi, Relister, authorization, http, rules::RuleSet, tls};

/// The running APIs.
pub struct MetricsApiService {
    addr: SocketAddr,
    api: Arc<MetricsApi<LocalBackend>>,
    relister: Relister,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl MetricsApiService {
    /// Starts the APIs if an address is configured; `listen` overrides the
    /// config's.
    ///
    /// # Errors
    /// Bad rules, an unusable certificate, an address in use.
    pub async fn start(
        config: &MetricsApiConfig,
        listen: Option<&str>,
        backend: Arc<LocalBackend>,
        clock: Arc<dyn Clock>,
        limits: crate::web::ConnectionLimits,
    ) -> anyhow::Result<Option<MetricsApiService>> {
        let Some(listen) = listen.or(config.listen_address.as_deref()) else {
            return Ok(None);
        };
        let rules = config.rule_set().map_err(anyhow::Error::msg)?;
        let authenticator = if config.authentication.from_cluster {
            let client = authorization::client(config.authorization.as_ref()).await?;
            let published = tls::PublishedAuthentication::fetch(client)
                .await
                .context("metrics API authentication")?;
            tls::Authenticator::build(&config.authentication, &published)
        } else {
            tls::Authenticator::from_config(&config.authentication)
        }
        .context("metrics API authentication")?
        .map(Arc::new);
        if authenticator.is_none() {
            tracing::warn!(
                "The metrics APIs do not authenticate requests (no metrics_api.authentication CA): anyone reaching the port reads them."
            );
        }
        let authorizer = match &config.authorization {
            Some(authorization) => Some(Arc::new(authorization::Authorizer::new(
                authorization,
                authorization::client(Some(authorization))
                    .await
                    .context("metrics API authorization")?,
                Arc::clone(&clock),
            ))),
            None => None,
        };
        let tls_config = crate::web::tls::from_pem_files(
            config.tls.cert_file.as_deref().map(Path::new),
            config.tls.key_file.as_deref().map(Path::new),
            &tls::default_hosts(),
            authenticator.is_some(),
        )
        .context("metrics API TLS")?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("metrics API: listening on {listen}"))?;
        let addr = listener.local_addr()?;
        let api = Arc::new(MetricsApi::new(backend, clock, rules, config.max_age));
        let state = api.relist().await;
        let relister = api.start_relisting(config.relist_interval);
        let (stop, stopped) = oneshot::channel::<()>();
        let served_api = Arc::clone(&api);
        let mut router = http::router(Arc::clone(&served_api));
        if let Some(authorizer) = authorizer {
            router = authorization::with_authorization(router, authorizer);
        }
        if let Some(authenticator) = authenticator {
            router = tls::with_authentication(router, authenticator);
        }
        let task = tokio::spawn(async move {
            let served = crate::web::serve(
                listener,
                router,
                crate::web::Transport::Tls(Arc::new(tls_config)),
                limits,
                None,
                async move {
                    let _ = stopped.await;
                },
            )
            .await;
            if let Err(error) = served {
                tracing::error!(%error, "Metrics API listener failed.");
            }
        });
        tracing::info!(address = %addr, metrics = state.catalog.len(), "Serving the Kubernetes custom and external metrics APIs.");
        Ok(Some(MetricsApiService {
            addr,
            api,
            relister,
            stop,
            task,
        }))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Checks the rules of a reloaded config without applying them.
    ///
    /// # Errors
    /// The rules do not compile.
    pub fn check(config: &MetricsApiConfig) -> Result<RuleSet, String> {
        config.rule_set()
    }

    /// Applies reloaded rules (the address, certificate, authentication and
    /// authorization need a restart).
    pub async fn install(&self, rules: RuleSet) {
        self.api.install(rules).await;
    }

    /// Stops relisting, then the listener (open connections get a few seconds).
    pub async fn stop(self) {
        self.relister.stop().await;
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
