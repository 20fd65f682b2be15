//! The rules manager and the notifier as parts of the server: started from
//! the configuration, reloaded with it (a bad rules file keeps the running
//! rules and fails the reload), stopped before the database closes.

use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tsdb::clock::Clock;
use tsdb::db::Db;

use crate::api::RulesSource;
use crate::backend::LocalBackend;
use crate::config::Config;
use crate::metrics::Registry;
use crate::rules::group::{AlertSink, EvalContext, EvalOptions};
use crate::rules::manager::{Manager, load_groups};
use crate::rules::metrics::RuleMetrics;
use crate::rules::notifier::{DEFAULT_QUEUE_CAPACITY, Notifier};

/// The running rules and notifier.
pub struct Rules {
    manager: Arc<Manager<LocalBackend>>,
    notifier: Arc<Notifier>,
    external_url: String,
    notifier_stop: oneshot::Sender<()>,
    notifier_task: JoinHandle<()>,
}

fn eval_options(config: &Config, external_url: &str) -> EvalOptions {
    EvalOptions {
        external_labels: config.global.external_labels.clone(),
        external_url: external_url.to_string(),
        default_query_offset: config.global.rule_query_offset.unwrap_or_default(),
        ..EvalOptions::default()
    }
}

impl Rules {
    /// Loads the rules files and starts evaluating them.
    ///
    /// # Errors
    /// A rules file is invalid; an Alertmanager client cannot be built.
    pub async fn start(
        config: &Config,
        backend: Arc<LocalBackend>,
        db: Arc<Db>,
        clock: Arc<dyn Clock>,
        registry: &Registry,
        external_url: String,
    ) -> anyhow::Result<Rules> {
        let notifier = Arc::new(Notifier::new(DEFAULT_QUEUE_CAPACITY, registry));
        notifier
            .apply_config(
                &config.alerting,
                &config.global.external_labels,
                &external_url,
            )
            .await
            .map_err(|e| anyhow::anyhow!("alerting: {e}"))?;
        let ctx = EvalContext {
            backend,
            appendable: Arc::clone(&db) as Arc<dyn tsdb::storage::Appendable>,
            queryable: db as Arc<dyn tsdb::storage::Queryable>,
            clock,
            options: RwLock::new(EvalOptions::default()),
            notify: Some(Arc::clone(&notifier) as Arc<dyn AlertSink>),
            metrics: RuleMetrics::register(registry),
        };
        let manager = Arc::new(Manager::new(ctx));
        manager
            .update(
                &config.rule_files,
                config.global.evaluation_interval(),
                eval_options(config, &external_url),
            )
            .await
            .map_err(anyhow::Error::msg)?;
        let (notifier_stop, stopped) = oneshot::channel::<()>();
        let notifier_task = tokio::spawn(Arc::clone(&notifier).run(async move {
            let _ = stopped.await;
        }));
        Ok(Rules {
            manager,
            notifier,
            external_url,
            notifier_stop,
            notifier_task,
        })
    }

    /// The groups' status for the rules and alerts APIs.
    pub fn source(&self) -> RulesSource {
        let manager = Arc::clone(&self.manager);
        Box::new(move || manager.groups())
    }

    /// Checks the new configuration's rules files now and applies them (and
    /// the alerting section) in the background.
    ///
    /// # Errors
    /// The rules files' problems; the running rules stay.
    pub fn reload(&self, config: &Config) -> Result<(), String> {
        let interval = config.global.evaluation_interval();
        load_groups(&config.rule_files, interval, true)
            .map_err(|e| format!("error loading rules, previous rule set restored: {e}"))?;
        let manager = Arc::clone(&self.manager);
        let notifier = Arc::clone(&self.notifier);
        let options = eval_options(config, &self.external_url);
        let patterns = config.rule_files.clone();
        let alerting = config.alerting.clone();
        tokio::spawn(async move {
            if let Err(error) = notifier
                .apply_config(&alerting, &options.external_labels, &options.external_url)
                .await
            {
                tracing::error!(error, "Applying the alerting configuration failed.");
            }
            if let Err(error) = manager.update(&patterns, interval, options).await {
                tracing::error!(error, "Reloading rules failed.");
            }
        });
        Ok(())
    }

    /// Stops the groups, then sends the alerts still queued.
    pub async fn stop(self) {
        self.manager.stop().await;
        let _ = self.notifier_stop.send(());
        let _ = self.notifier_task.await;
    }
}
