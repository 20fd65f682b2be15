//! The scrape manager: one [`ScrapePool`] per scrape config, fed by the
//! discovery [`discovery::Manager`], as Prometheus's `scrape.Manager`.
//!
//! [`ScrapeManager::apply_config`] makes the running pools those of a
//! configuration: a pool whose scrape config is unchanged keeps running
//! untouched; a changed one is replaced by a new pool (the old loops keep
//! their series where the new pool scrapes the same target, and mark the
//! others stale); a removed job's loops stop with staleness markers for all
//! their series (Prometheus writes none then: it cancels the pool's context,
//! so its series linger for the lookback delta; we mark them as we do for
//! a vanished target). A configuration that cannot be applied (an unreadable TLS
//! file, duplicate job names) is rejected before anything changes.
//!
//! A background task follows the discovery snapshots and syncs each pool
//! whose target groups changed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tsdb::clock::Clock;
use tsdb::storage::Appendable;

use crate::config::ScrapeConfig;
use crate::discovery::{self, TargetGroup, TargetSets};
use crate::pool::{HttpFetchers, PoolError, PoolOptions, ScrapePool, Stopping, TargetStatus};
use crate::scrape_loop::{Retiring, ScrapeStats, Stop};
use crate::target::{DroppedTarget, targets_from_group};

/// Why a configuration was rejected; the running one stays.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("found multiple scrape configs with job name {0:?}")]
    DuplicateJob(String),
}

/// Counters of the manager's own work, for the server's metrics
/// (Prometheus's `prometheus_target_scrape_pool*` counters).
#[derive(Debug, Default)]
pub struct ManagerStats {
    /// Pools created, on start and reloads.
    pub pools_created: AtomicU64,
    /// Pools that could not be created (their configuration was rejected).
    pub pools_failed: AtomicU64,
    /// Pools replaced because their scrape config changed.
    pub pool_reloads: AtomicU64,
    /// Configurations applied, and those rejected.
    pub config_applies: AtomicU64,
    pub config_applies_failed: AtomicU64,
}

/// One pool's figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolFigures {
    pub job: String,
    /// Active targets (scraped, or failing over `target_limit`).
    pub targets: usize,
    /// Targets relabeling dropped (kept for the targets API or not).
    pub dropped: usize,
    /// Discovered targets, before relabeling.
    pub discovered: usize,
    /// Syncs with changed target groups since the pool started.
    pub syncs: u64,
    /// Time spent in those syncs.
    pub sync_seconds: f64,
}

/// The targets of every pool at one moment, for the targets API.
#[derive(Debug, Clone, Default)]
pub struct TargetsView {
    /// Job name and target, by job.
    pub active: Vec<(String, TargetStatus)>,
    /// Job name and dropped target, by job (at most `keep_dropped_targets`
    /// per job).
    pub dropped: Vec<(String, DroppedTarget)>,
    /// Every job's count of dropped targets, kept or not (zeros included).
    pub dropped_counts: BTreeMap<String, usize>,
}

struct Job {
    config: ScrapeConfig,
    pool: ScrapePool<HttpFetchers>,
    /// The groups the pool was last synced with.
    synced: Option<Arc<Vec<TargetGroup>>>,
    syncs: u64,
    sync_seconds: f64,
}

impl Job {
    /// Syncs the pool unless these are the groups it already has.
    fn sync(&mut self, groups: &Arc<Vec<TargetGroup>>) {
        if self.synced.as_ref().is_some_and(|s| Arc::ptr_eq(s, groups)) {
            return;
        }
        let started = Instant::now();
        self.pool.sync_groups(groups, &self.config);
        self.synced = Some(Arc::clone(groups));
        self.syncs += 1;
        self.sync_seconds += started.elapsed().as_secs_f64();
    }
}

struct State {
    jobs: BTreeMap<String, Job>,
    discovery: discovery::Manager,
}

impl State {
    fn sync(&mut self, sets: &TargetSets) {
        for (job, groups) in sets {
            if let Some(running) = self.jobs.get_mut(job) {
                running.sync(groups);
            }
        }
    }
}

/// Runs discovery and the scrape pools of a configuration; see the module
/// documentation.
pub struct ScrapeManager {
    state: Arc<Mutex<State>>,
    /// One configuration applied at a time.
    applying: tokio::sync::Mutex<()>,
    storage: Arc<dyn Appendable>,
    clock: Arc<dyn Clock>,
    offset_seed: u64,
    scrape_stats: Arc<ScrapeStats>,
    stats: ManagerStats,
    follower: JoinHandle<()>,
    /// Every pool's stopped loops still to write end-of-run staleness
    /// markers (those of removed and replaced pools included).
    retiring: Retiring,
}

impl ScrapeManager {
    /// A manager with no pools, appending to `storage`. `offset_seed` shifts
    /// every target's scrape phase (see [`ScrapePool::new`]). Must be called
    /// inside a tokio runtime.
    pub fn new(storage: Arc<dyn Appendable>, clock: Arc<dyn Clock>, offset_seed: u64) -> Self {
        let discovery = discovery::Manager::new();
        let updates = discovery.subscribe();
        let state = Arc::new(Mutex::new(State {
            jobs: BTreeMap::new(),
            discovery,
        }));
        let follower = tokio::spawn(follow(Arc::downgrade(&state), updates));
        ScrapeManager {
            state,
            applying: tokio::sync::Mutex::new(()),
            storage,
            clock,
            offset_seed,
            scrape_stats: Arc::default(),
            stats: ManagerStats::default(),
            follower,
            retiring: Retiring::default(),
        }
    }

    /// Makes the running pools and discovery mechanisms those of `configs`
    /// (whose global defaults have been applied); see the module
    /// documentation.
    ///
    /// # Errors
    /// Duplicate job names or a pool that cannot be built; then nothing
    /// changes.
    pub async fn apply_config(&self, configs: &[ScrapeConfig]) -> Result<(), ManagerError> {
        let _applying = self.applying.lock().await;
        let result = self.apply(configs).await;
        self.stats.config_applies.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            self.stats
                .config_applies_failed
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn apply(&self, configs: &[ScrapeConfig]) -> Result<(), ManagerError> {
        let mut names = BTreeSet::new();
        for config in configs {
            if !names.insert(config.job_name.as_str()) {
                return Err(ManagerError::DuplicateJob(config.job_name.clone()));
            }
        }
        // Build the new pools' fetchers first: a bad one changes nothing.
        let mut fresh = Vec::new();
        {
            let state = self.state.lock();
            for config in configs {
                let unchanged = state
                    .jobs
                    .get(&config.job_name)
                    .is_some_and(|job| job.config == *config);
                if unchanged {
                    continue;
                }
                match HttpFetchers::from_config(config) {
                    Ok(fetchers) => fresh.push((config.clone(), fetchers)),
                    Err(error) => {
                        self.stats.pools_failed.fetch_add(1, Ordering::Relaxed);
                        return Err(error.into());
                    }
                }
            }
        }

        let stopping = {
            let mut state = self.state.lock();
            let mut removed = Vec::new();
            let mut replaced = Vec::new();
            let gone: Vec<String> = state
                .jobs
                .keys()
                .filter(|job| !names.contains(job.as_str()))
                .cloned()
                .collect();
            for job in gone {
                if let Some(old) = state.jobs.remove(&job) {
                    tracing::info!(job, "Stopping the scrape pool of a removed job.");
                    removed.push(old.pool);
                }
            }
            for (config, fetchers) in fresh {
                let job = config.job_name.clone();
                if let Some(old) = state.jobs.remove(&job) {
                    tracing::info!(job, "Reloading the scrape pool of a changed job.");
                    self.stats.pool_reloads.fetch_add(1, Ordering::Relaxed);
                    replaced.push((job.clone(), old.pool));
                }
                let pool = ScrapePool::new(
                    PoolOptions::from_config(&config),
                    fetchers,
                    Arc::clone(&self.storage),
                    Arc::clone(&self.clock),
                    self.offset_seed,
                )
                .with_stats(Arc::clone(&self.scrape_stats))
                .with_retiring(self.retiring.clone());
                self.stats.pools_created.fetch_add(1, Ordering::Relaxed);
                state.jobs.insert(
                    job,
                    Job {
                        config,
                        pool,
                        synced: None,
                        syncs: 0,
                        sync_seconds: 0.0,
                    },
                );
            }
            state.discovery.apply_config(configs);
            let sets = state.discovery.target_sets();

            // Old loops stop before new ones scrape: a replaced pool's target
            // keeps its series when the new pool scrapes it too.
            let mut stopping: Vec<Stopping> = removed
                .into_iter()
                .map(|pool| pool.stop_each(|_| Stop::MarkStale))
                .collect();
            for (job, pool) in replaced {
                let kept = new_target_hashes(&state, &sets, &job);
                stopping.push(pool.stop_each(|target| {
                    if kept.contains(&target.hash()) {
                        Stop::Keep
                    } else {
                        Stop::MarkStale
                    }
                }));
            }
            state.sync(&sets);
            stopping
        };
        for pool in stopping {
            pool.wait().await;
        }
        Ok(())
    }

    /// The targets of every pool.
    pub fn targets(&self) -> TargetsView {
        let state = self.state.lock();
        let mut view = TargetsView::default();
        for (name, job) in &state.jobs {
            view.active.extend(
                job.pool
                    .targets()
                    .into_iter()
                    .map(|target| (name.clone(), target)),
            );
            view.dropped.extend(
                job.pool
                    .dropped_targets()
                    .iter()
                    .map(|target| (name.clone(), target.clone())),
            );
            view.dropped_counts
                .insert(name.clone(), job.pool.dropped_count());
        }
        view
    }

    /// Each pool's figures, by job.
    pub fn pool_figures(&self) -> Vec<PoolFigures> {
        let state = self.state.lock();
        let sets = state.discovery.target_sets();
        state
            .jobs
            .iter()
            .map(|(name, job)| PoolFigures {
                job: name.clone(),
                targets: job.pool.targets().len(),
                dropped: job.pool.dropped_count(),
                discovered: sets
                    .get(name)
                    .map_or(0, |groups| groups.iter().map(|g| g.targets.len()).sum()),
                syncs: job.syncs,
                sync_seconds: job.sync_seconds,
            })
            .collect()
    }

    /// Outcomes of every scrape of every pool.
    pub fn scrape_stats(&self) -> &ScrapeStats {
        &self.scrape_stats
    }

    /// The manager's own counters.
    pub fn stats(&self) -> &ManagerStats {
        &self.stats
    }

    /// Stops discovery and every pool and waits for the loops; the series
    /// stay as they are (no staleness markers, and stopped loops still
    /// waiting to write theirs give up), as on Prometheus's shutdown.
    pub async fn stop(&self) {
        let _applying = self.applying.lock().await;
        self.follower.abort();
        let stopping: Vec<Stopping> = {
            let mut state = self.state.lock();
            state.discovery.stop();
            std::mem::take(&mut state.jobs)
                .into_values()
                .map(|job| job.pool.stop_each(|_| Stop::Keep))
                .collect()
        };
        for pool in stopping {
            pool.wait().await;
        }
        self.retiring.shutdown().await;
    }
}

impl Drop for ScrapeManager {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// The target hashes a job's (new) pool will scrape given these groups.
fn new_target_hashes(state: &State, sets: &TargetSets, job: &str) -> HashSet<u64> {
    let (Some(running), Some(groups)) = (state.jobs.get(job), sets.get(job)) else {
        return HashSet::new();
    };
    groups
        .iter()
        .flat_map(|group| targets_from_group(group, &running.config).active)
        .map(|target| target.hash())
        .collect()
}

/// Syncs the pools with every new discovery snapshot until the manager
/// goes away.
async fn follow(
    state: std::sync::Weak<Mutex<State>>,
    mut updates: watch::Receiver<Arc<TargetSets>>,
) {
    while updates.changed().await.is_ok() {
        let sets = updates.borrow_and_update().clone();
        let Some(state) = state.upgrade() else {
            return;
        };
        state.lock().sync(&sets);
    }
}
