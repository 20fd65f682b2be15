//! Ordered shutdown. The server stops its parts in a fixed order, each after
//! the previous one finished, so that nothing writes into a closed database
//! and nothing is lost in flight: stop scraping, stop rules, stop HTTP, then
//! commit, flush and close the database. A stage that fails is logged and
//! the later stages still run (the database must be closed even when
//! stopping HTTP failed).

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;

type StageFn = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send>;

/// Named stages, run in the order they were added.
#[derive(Default)]
pub struct Shutdown {
    stages: Vec<(&'static str, StageFn)>,
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Adds the next stage; `stop` runs only when the shutdown begins.
    pub fn then<F, Fut>(mut self, name: &'static str, stop: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.stages.push((name, Box::new(move || Box::pin(stop()))));
        self
    }

    /// Runs every stage in order.
    ///
    /// # Errors
    /// The first stage's error, after all stages ran.
    pub async fn run(self) -> Result<()> {
        let mut first_error = None;
        for (name, stop) in self.stages {
            tracing::info!(stage = name, "Stopping.");
            if let Err(error) = stop().await {
                tracing::error!(
                    stage = name,
                    error = format!("{error:#}"),
                    "Stopping failed."
                );
                first_error.get_or_insert(error.context(format!("stopping {name}")));
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// A process signal the server reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: shut down.
    Terminate,
    /// SIGHUP: re-read the configuration.
    Reload,
}

/// Listens for SIGINT, SIGTERM and SIGHUP.
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    /// # Errors
    /// When the signal handlers cannot be installed.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Terminate,
            _ = self.terminate.recv() => Signal::Terminate,
            _ = self.hangup.recv() => Signal::Reload,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;

    #[tokio::test]
    async fn stages_run_in_order_and_continue_after_a_failure() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stage = |name: &'static str, fail: bool| {
            let log = Arc::clone(&log);
            move || async move {
                log.lock().push(name);
                if fail {
                    anyhow::bail!("{name} broke");
                }
                Ok(())
            }
        };
        let result = Shutdown::new()
            .then("scraping", stage("scraping", false))
            .then("http", stage("http", true))
            .then("storage", stage("storage", false))
            .run()
            .await;
        assert_eq!(*log.lock(), ["scraping", "http", "storage"]);
        assert_eq!(
            format!("{:#}", result.unwrap_err()),
            "stopping http: http broke"
        );
    }
}
