//! Scrape pools following their targets, under tokio's paused clock with
//! scripted fetchers (no IO, so virtual time is exact).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::MemStorage;
use scraper::config::{ScrapeConfig, ScrapeDefaults};
use scraper::discovery::TargetGroup;
use scraper::pool::{MakeFetcher, PoolOptions, ScrapePool};
use scraper::scrape_loop::{Fetch, Fetched, ScrapeError, Stop};
use scraper::target::Target;
use tsdb::clock::Clock;
use tsdb::model::{Labels, is_stale_nan};

/// Every target serves `up_metric{target="<address>"} 1`.
struct Scripted;

struct ScriptedFetcher {
    address: String,
}

impl Fetch for ScriptedFetcher {
    async fn fetch(&self) -> Result<Fetched, ScrapeError> {
        Ok(Fetched {
            body: format!("served{{by=\"{}\"}} 1\n", self.address).into_bytes(),
            content_type: Some("text/plain; version=0.0.4".into()),
        })
    }
}

impl MakeFetcher for Scripted {
    type Fetcher = ScriptedFetcher;
    fn make(&self, target: &Target) -> ScriptedFetcher {
        ScriptedFetcher {
            address: target.url().host_str().unwrap_or_default().to_string(),
        }
    }
}

/// Wall time following tokio's paused clock.
struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        1_000_000 + self.0.elapsed().as_millis() as i64
    }
}

fn config(yaml: &str) -> ScrapeConfig {
    let mut config: ScrapeConfig = serde_yaml::from_str(yaml).unwrap();
    config.apply_defaults(&ScrapeDefaults::default()).unwrap();
    config
}

fn group(addresses: &[&str]) -> TargetGroup {
    TargetGroup {
        source: "0".into(),
        targets: addresses
            .iter()
            .map(|a| Labels::from_pairs(&[("__address__", *a)]))
            .collect(),
        labels: Labels::empty(),
    }
}

fn served(storage: &MemStorage, host: &str) -> Vec<tsdb::model::Sample> {
    storage.samples(&[
        ("__name__", "served"),
        ("by", host),
        ("instance", &format!("{host}:80")),
        ("job", "pool"),
    ])
}

#[tokio::test(start_paused = true)]
async fn the_pool_follows_its_targets() {
    let config = config(
        "job_name: pool\nscrape_interval: 10s\nscrape_timeout: 5s\nmetric_relabel_configs:\n  - source_labels: [by]\n    regex: c\n    action: drop\n",
    );
    let storage = Arc::new(MemStorage::default());
    let clock = Arc::new(TokioClock(tokio::time::Instant::now()));
    let mut pool = ScrapePool::new(
        PoolOptions::from_config(&config),
        Scripted,
        storage.clone(),
        clock,
        7,
    );
    pool.sync_groups(&[group(&["a:80", "b:80", "c:80", "b:80"])], &config);
    assert_eq!(pool.targets().len(), 3, "the duplicate counts once");
    assert!(pool.targets().iter().all(|t| t.health() == "unknown"));

    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(pool.targets().iter().all(|t| t.health() == "up"));
    let scrapes = served(&storage, "a").len();
    assert!(
        (2..=3).contains(&scrapes),
        "two or three scrapes in 25 s, got {scrapes}"
    );
    assert!(
        served(&storage, "c").is_empty(),
        "metric relabeling dropped it"
    );

    // b goes away: its series get a staleness marker, a keeps going.
    pool.sync_groups(&[group(&["a:80", "c:80"])], &config);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let b = served(&storage, "b");
    assert!(is_stale_nan(b.last().unwrap().v), "{b:?}");
    let a = served(&storage, "a");
    assert!(a.len() >= 4 && !is_stale_nan(a.last().unwrap().v), "{a:?}");
    assert_eq!(pool.targets().len(), 2);

    // Shutdown keeps the series as they are.
    pool.stop(Stop::Keep).await;
    let a_after = served(&storage, "a");
    assert_eq!(a_after.len(), a.len());
    assert!(!is_stale_nan(a_after.last().unwrap().v));
}

#[tokio::test(start_paused = true)]
async fn over_the_target_limit_no_target_is_scraped() {
    let config = config("job_name: pool\nscrape_interval: 10s\ntarget_limit: 1\n");
    let storage = Arc::new(MemStorage::default());
    let clock = Arc::new(TokioClock(tokio::time::Instant::now()));
    let mut pool = ScrapePool::new(
        PoolOptions::from_config(&config),
        Scripted,
        storage.clone(),
        clock,
        0,
    );
    pool.sync_groups(&[group(&["a:80", "b:80"])], &config);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let targets = pool.targets();
    assert_eq!(targets.len(), 2);
    for target in &targets {
        assert_eq!(target.health(), "down");
        let error = target.last_report.as_ref().unwrap().error.as_ref().unwrap();
        assert_eq!(
            error.to_string(),
            "target_limit exceeded (number of targets: 2, limit: 1)"
        );
    }
    assert!(storage.series().is_empty());
    // Back under the limit: scraping starts.
    pool.sync_groups(&[group(&["a:80"])], &config);
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(pool.targets()[0].health(), "up");
    pool.stop(Stop::Keep).await;
}

#[tokio::test]
async fn http_fetchers_follow_the_scrape_config() {
    let exporter = common::Exporter::start(common::Exposed::text("m 1\n")).await;
    let config = config(&format!(
        "job_name: pool\nscrape_protocols: [PrometheusText0.0.4]\nenable_compression: false\nmetrics_path: /metrics\nstatic_configs:\n  - targets: ['{}']\n",
        exporter.addr
    ));
    let fetchers = scraper::pool::HttpFetchers::from_config(&config).unwrap();
    let targets = scraper::target::targets_from_group(
        &scraper::discovery::static_groups(&config.static_configs)[0],
        &config,
    );
    let fetched = fetchers.make(&targets.active[0]).fetch().await.unwrap();
    assert_eq!(fetched.body, b"m 1\n");
    assert_eq!(
        exporter.last_accept().as_deref(),
        Some("text/plain;version=0.0.4;q=0.6,*/*;q=0.5")
    );
}
