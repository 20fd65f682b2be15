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
use scraper::scrape_loop::{Fetch, Fetched, ScrapeError, ScrapeStats, Stop};
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

    // b goes away: its series get a staleness marker (after two intervals
    // and a tenth, as in Prometheus), a keeps going.
    pool.sync_groups(&[group(&["a:80", "c:80"])], &config);
    tokio::time::sleep(Duration::from_secs(25)).await;
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

fn up(storage: &MemStorage, host: &str) -> Vec<tsdb::model::Sample> {
    storage.samples(&[
        ("__name__", "up"),
        ("instance", &format!("{host}:80")),
        ("job", "pool"),
    ])
}

/// As Prometheus: over `target_limit` every loop keeps its schedule but
/// fails each scrape with the error (`up` 0, staleness markers for what the
/// target had); back under the limit, scraping resumes.
#[tokio::test(start_paused = true)]
async fn over_the_target_limit_every_target_fails_until_back_under_it() {
    let config = config("job_name: pool\nscrape_interval: 10s\ntarget_limit: 2\n");
    let storage = Arc::new(MemStorage::default());
    let clock = Arc::new(TokioClock(tokio::time::Instant::now()));
    let stats = Arc::new(ScrapeStats::default());
    let mut pool = ScrapePool::new(
        PoolOptions::from_config(&config),
        Scripted,
        storage.clone(),
        clock,
        0,
    )
    .with_stats(stats.clone());
    pool.sync_groups(&[group(&["a:80", "b:80"])], &config);
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(pool.targets().iter().all(|t| t.health() == "up"));
    assert_eq!(ScrapeStats::get(&stats.exceeded_target_limit), 0);

    pool.sync_groups(&[group(&["a:80", "b:80", "c:80"])], &config);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let targets = pool.targets();
    assert_eq!(targets.len(), 3);
    for target in &targets {
        assert_eq!(target.health(), "down");
        let error = target.last_report.as_ref().unwrap().error.as_ref().unwrap();
        assert_eq!(
            error.to_string(),
            "target_limit exceeded (number of targets: 3, limit: 2)"
        );
    }
    assert_eq!(ScrapeStats::get(&stats.exceeded_target_limit), 1);
    for host in ["a", "b"] {
        let served = served(&storage, host);
        assert!(is_stale_nan(served.last().unwrap().v), "{host}: {served:?}");
        assert_eq!(up(&storage, host).last().unwrap().v, 0.0);
    }
    assert!(served(&storage, "c").is_empty(), "c was never scraped");
    let c_up = up(&storage, "c");
    assert!(
        !c_up.is_empty() && c_up.iter().all(|s| s.v == 0.0),
        "{c_up:?}"
    );

    // Back under the limit: the same loops scrape again.
    pool.sync_groups(&[group(&["a:80", "c:80"])], &config);
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(pool.targets().iter().all(|t| t.health() == "up"));
    assert_eq!(served(&storage, "a").last().unwrap().v, 1.0);
    assert_eq!(served(&storage, "c").last().unwrap().v, 1.0);
    assert_eq!(up(&storage, "a").last().unwrap().v, 1.0);
    pool.stop(Stop::Keep).await;
}

/// `keep_dropped_targets` bounds the dropped targets kept for the targets
/// API; all of them are still counted.
#[tokio::test(start_paused = true)]
async fn keep_dropped_targets_bounds_the_kept_list_not_the_count() {
    let yaml = "job_name: pool\nrelabel_configs:\n  - source_labels: [__address__]\n    regex: keep.*\n    action: keep\n";
    let storage = Arc::new(MemStorage::default());
    let clock = Arc::new(TokioClock(tokio::time::Instant::now()));
    for (keep, kept) in [(0, 3), (2, 2), (5, 3)] {
        let config = config(&format!("{yaml}keep_dropped_targets: {keep}\n"));
        let mut pool = ScrapePool::new(
            PoolOptions::from_config(&config),
            Scripted,
            storage.clone(),
            clock.clone(),
            0,
        );
        pool.sync_groups(&[group(&["keep:80", "x:80", "y:80", "z:80"])], &config);
        assert_eq!(pool.targets().len(), 1);
        assert_eq!(pool.dropped_targets().len(), kept, "keep {keep}");
        assert_eq!(pool.dropped_count(), 3, "keep {keep}");
        assert_eq!(
            pool.dropped_targets()[0]
                .discovered_labels
                .get("__address__"),
            Some("x:80")
        );
        pool.stop(Stop::Keep).await;
    }
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
