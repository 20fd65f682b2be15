//! Scraping inside the server: the `scraper` crate's [`ScrapeManager`]
//! appending to the database, given the configuration's scrape configs on
//! start and on every reload, its targets shown by `/api/v1/targets` and its
//! figures on `/metrics`.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use anyhow::Context;
use scraper::manager::ScrapeManager;
use scraper::scrape_loop::ScrapeStats;
use tsdb::clock::Clock;
use tsdb::storage::Appendable;

use crate::api::{ActiveTarget, DroppedTarget, Health, TargetsSnapshot};
use crate::config::Config;
use crate::metrics::{Collector, Kind, Registry};

/// The running scrape manager.
pub struct Scraping {
    manager: Arc<ScrapeManager>,
}

impl Scraping {
    /// Starts scraping what `config` says into `storage`.
    ///
    /// # Errors
    /// A scrape config that cannot be applied (an unreadable
    /// `scrape_config_files` entry, TLS file, duplicate job names).
    pub async fn start(
        storage: Arc<dyn Appendable>,
        clock: Arc<dyn Clock>,
        config: &Config,
        listen: SocketAddr,
        registry: &Registry,
    ) -> anyhow::Result<Scraping> {
        let manager = Arc::new(ScrapeManager::new(
            storage,
            clock,
            offset_seed(config, listen),
        ));
        register_metrics(registry, Arc::downgrade(&manager));
        let scraping = Scraping { manager };
        scraping.apply(config).await?;
        Ok(scraping)
    }

    /// Applies the scrape configs of a (re)loaded configuration; on error the
    /// running pools stay as they are.
    ///
    /// # Errors
    /// As [`Scraping::start`].
    pub async fn apply(&self, config: &Config) -> anyhow::Result<()> {
        let configs = config.all_scrape_configs()?;
        self.manager
            .apply_config(&configs)
            .await
            .context("applying the scrape configs")
    }

    /// A snapshot function for the targets API.
    pub fn targets_source(&self) -> Box<dyn Fn() -> TargetsSnapshot + Send + Sync> {
        let manager = Arc::downgrade(&self.manager);
        Box::new(move || {
            manager
                .upgrade()
                .map_or_else(TargetsSnapshot::default, |m| targets_snapshot(&m))
        })
    }

    /// Stops every scrape loop (the series stay as they are) and discovery.
    pub async fn stop(self) {
        self.manager.stop().await;
    }
}

/// Shifts every target's scrape phase by the server's identity (its
/// external labels and listen address), as Prometheus seeds target offsets,
/// so that two servers scraping the same targets spread differently.
fn offset_seed(config: &Config, listen: SocketAddr) -> u64 {
    // SipHash with fixed keys: stable across runs.
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    config.global.external_labels.hash(&mut hasher);
    listen.hash(&mut hasher);
    hasher.finish()
}

fn targets_snapshot(manager: &ScrapeManager) -> TargetsSnapshot {
    let view = manager.targets();
    let active = view
        .active
        .into_iter()
        .map(|(pool, status)| {
            let health = match status.health() {
                "up" => Health::Up,
                "down" => Health::Down,
                _ => Health::Unknown,
            };
            let report = status.last_report.as_ref();
            ActiveTarget {
                pool,
                discovered_labels: status.target.discovered_labels().clone(),
                labels: status.target.labels().clone(),
                scrape_url: status.target.url().to_string(),
                health,
                last_error: report
                    .and_then(|r| r.error.as_ref())
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                // A report at time 0 is of a target never scraped.
                last_scrape_ms: report.map(|r| r.time_ms).filter(|&t| t != 0),
                last_scrape_duration: report.map(|r| r.duration).unwrap_or_default(),
                interval: status.target.interval(),
                timeout: status.target.timeout(),
            }
        })
        .collect();
    let dropped = view
        .dropped
        .into_iter()
        .map(|(pool, target)| DroppedTarget {
            pool,
            discovered_labels: target.discovered_labels,
        })
        .collect();
    TargetsSnapshot {
        active,
        dropped,
        dropped_counts: view.dropped_counts,
    }
}

/// The scrape manager's figures on `/metrics`, under the names of
/// Prometheus's `prometheus_target_*` metrics with our prefix.
fn register_metrics(registry: &Registry, manager: Weak<ScrapeManager>) {
    registry.register(move |out| {
        if let Some(manager) = manager.upgrade() {
            collect(out, &manager);
        }
    });
}

fn collect(out: &mut Collector, manager: &ScrapeManager) {
    let get = |counter: &std::sync::atomic::AtomicU64| ScrapeStats::get(counter) as f64;
    let stats = manager.stats();
    out.counter(
        "sextant_target_scrape_pools_total",
        "Scrape pools created (one per job, again when its config changes).",
        get(&stats.pools_created),
    );
    out.counter(
        "sextant_target_scrape_pools_failed_total",
        "Scrape pools that could not be created from their config.",
        get(&stats.pools_failed),
    );
    out.counter(
        "sextant_target_scrape_pool_reloads_total",
        "Scrape pools replaced because their scrape config changed.",
        get(&stats.pool_reloads),
    );
    out.counter(
        "sextant_target_scrape_pool_reloads_failed_total",
        "Scrape configurations rejected; the running pools were kept.",
        get(&stats.config_applies_failed),
    );
    for pool in manager.pool_figures() {
        let job: &[(&str, &str)] = &[("scrape_job", &pool.job)];
        out.sample(
            "sextant_target_scrape_pool_targets",
            "Active targets of a scrape pool.",
            Kind::Gauge,
            job,
            pool.targets as f64,
        );
        out.sample(
            "sextant_target_scrape_pool_dropped_targets",
            "Discovered targets of a scrape pool that relabeling dropped.",
            Kind::Gauge,
            job,
            pool.dropped as f64,
        );
        out.sample(
            "sextant_target_scrape_pool_sync_total",
            "Syncs of a scrape pool with changed target groups.",
            Kind::Counter,
            job,
            pool.syncs as f64,
        );
        out.sample(
            "sextant_target_sync_length_seconds_total",
            "Time spent syncing a scrape pool with its target groups.",
            Kind::Counter,
            job,
            pool.sync_seconds,
        );
        out.sample(
            "sextant_sd_discovered_targets",
            "Targets discovered for a scrape config, before relabeling.",
            Kind::Gauge,
            &[("config", &pool.job)],
            pool.discovered as f64,
        );
    }
    let scrapes = manager.scrape_stats();
    for (name, help, counter) in [
        (
            "sextant_target_scrapes_total",
            "Scrapes of every target.",
            &scrapes.scrapes,
        ),
        (
            "sextant_target_scrapes_failed_total",
            "Scrapes that failed (up 0).",
            &scrapes.failed,
        ),
        (
            "sextant_target_scrapes_exceeded_sample_limit_total",
            "Scrapes that failed because they exceeded sample_limit.",
            &scrapes.exceeded_sample_limit,
        ),
        (
            "sextant_target_scrapes_exceeded_body_size_limit_total",
            "Scrapes that failed because the body exceeded body_size_limit.",
            &scrapes.exceeded_body_size_limit,
        ),
        (
            "sextant_target_scrape_pool_exceeded_label_limits_total",
            "Scrapes that failed because a series exceeded a label limit.",
            &scrapes.exceeded_label_limits,
        ),
        (
            "sextant_target_scrape_pool_exceeded_target_limit_total",
            "Scrape pool syncs that found more targets than target_limit.",
            &scrapes.exceeded_target_limit,
        ),
        (
            "sextant_target_scrapes_sample_out_of_order_total",
            "Scraped samples the database refused as out of order.",
            &scrapes.sample_out_of_order,
        ),
        (
            "sextant_target_scrapes_sample_duplicate_timestamp_total",
            "Scraped samples with a timestamp already taken by another value.",
            &scrapes.sample_duplicate_timestamp,
        ),
        (
            "sextant_target_scrapes_sample_out_of_bounds_total",
            "Scraped samples the database refused as too old.",
            &scrapes.sample_out_of_bounds,
        ),
    ] {
        out.counter(name, help, get(counter));
    }
}
