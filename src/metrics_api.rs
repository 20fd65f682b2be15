//! The Kubernetes custom metrics API (`custom.metrics.k8s.io` v1beta1 and
//! v1beta2) and external metrics API (`external.metrics.k8s.io` v1beta1),
//! served over HTTPS so that the kube-apiserver aggregator can front them for
//! HorizontalPodAutoscalers. Wire format: `docs/format/metrics-api.md`.
//!
//! - [`rules`]: prometheus-adapter's rules (and Sextant's short form) from the
//!   `metrics_api` config section, compiled;
//! - [`discovery`]: the [`Catalog`] of metrics, relisted every
//!   `relist_interval` through the [`QueryBackend`];
//! - [`http`]: the routes; every value is a PromQL instant query through the
//!   same backend, so the API can front a remote Prometheus too;
//! - [`selector`]: Kubernetes label selectors to PromQL matchers;
//! - [`resources`]: resources and the label <-> resource mapping;
//! - [`wire`]: the JSON documents; values are canonical quantities;
//! - [`tls`]: HTTPS with a configured or self-signed certificate, and the
//!   [`tls::Authenticator`] of `metrics_api.authentication`: the aggregator's
//!   front-proxy client certificate (its CA, allowed names, `X-Remote-User` and
//!   `X-Remote-Group`) or a client certificate of `client_ca_file`, else 401.
//!   Without a CA configured, requests are not authenticated.
//! - [`authorization`]: `metrics_api.authorization`, a `SubjectAccessReview`
//!   posted to the Kubernetes API per request (cached briefly), 403 when
//!   denied. Not configured: an authenticated caller reads every metric the
//!   rules expose.

pub mod authorization;
pub mod discovery;
pub mod http;
pub mod resources;
pub mod rules;
pub mod selector;
pub mod tls;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tsdb::clock::Clock;
use tsdb::promql::QueryBackend;

pub use discovery::Catalog;
use rules::RuleSet;

/// The metrics APIs' errors; each becomes a Kubernetes `Status` reply.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404: unknown metric, object or path.
    #[error("{0}")]
    NotFound(String),
    /// 400: a bad selector or query string.
    #[error("{0}")]
    BadRequest(String),
    /// 500: the query failed.
    #[error("{0}")]
    Internal(String),
    /// The listener's certificate or key.
    #[error("TLS: {0}")]
    Tls(String),
    /// No client for the Kubernetes API that authorizes requests.
    #[error("authorization: {0}")]
    Authorization(String),
}

/// Rules and the catalog built from them, swapped together.
#[derive(Debug, Default)]
pub struct ApiState {
    pub rules: RuleSet,
    pub catalog: Catalog,
}

/// The APIs' state: the backend queries go to, the clock giving "now", the
/// rules and their catalog.
pub struct MetricsApi<B> {
    backend: Arc<B>,
    clock: Arc<dyn Clock>,
    max_age: Duration,
    state: RwLock<Arc<ApiState>>,
}

impl<B: QueryBackend + 'static> MetricsApi<B> {
    /// An API with `rules` and an empty catalog; call [`MetricsApi::relist`].
    pub fn new(backend: Arc<B>, clock: Arc<dyn Clock>, rules: RuleSet, max_age: Duration) -> Self {
        MetricsApi {
            backend,
            clock,
            max_age,
            state: RwLock::new(Arc::new(ApiState {
                rules,
                catalog: Catalog::default(),
            })),
        }
    }

    /// The rules and catalog in force.
    pub fn state(&self) -> Arc<ApiState> {
        Arc::clone(&self.state.read())
    }

    /// Runs discovery now and replaces the catalog. Rules whose query fails
    /// are logged and left out.
    pub async fn relist(&self) -> Arc<ApiState> {
        let rules = self.state().rules.clone();
        self.install(rules).await
    }

    /// Replaces the rules (a configuration reload) and relists.
    pub async fn install(&self, rules: RuleSet) -> Arc<ApiState> {
        let (catalog, errors) =
            discovery::discover(&rules, &*self.backend, self.clock.now_ms(), self.max_age).await;
        for error in errors {
            tracing::warn!(error, "Metrics API discovery failed for a rule.");
        }
        tracing::debug!(metrics = catalog.len(), "Metrics API discovery done.");
        let state = Arc::new(ApiState { rules, catalog });
        *self.state.write() = Arc::clone(&state);
        state
    }

    /// Relists every `interval` until the returned handle is stopped.
    pub fn start_relisting(self: &Arc<Self>, interval: Duration) -> Relister {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let api = Arc::clone(self);
        let task = tokio::spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {
                        api.relist().await;
                    }
                }
            }
        });
        Relister { stop, task }
    }
}

/// The periodic discovery task.
pub struct Relister {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Relister {
    /// Stops after the relist in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
