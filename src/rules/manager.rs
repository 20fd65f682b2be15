//! The rules manager: loads the groups of the `rule_files` globs, runs each
//! group in its own task at its aligned timestamps, replaces them on
//! reload (keeping unchanged groups running and carrying alert state over),
//! and stops them on shutdown (`rules/manager.go`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tsdb::promql::QueryBackend;

use super::alerting::{AlertingRule, ms};
use super::file;
use super::group::{EvalContext, EvalOptions, Group, GroupStatus, Rule};
use super::recording::RecordingRule;

/// A group's status, replaced after every evaluation.
type StatusCell = Arc<RwLock<Arc<GroupStatus>>>;

struct Running {
    definition: Group,
    status: StatusCell,
    stop: watch::Sender<bool>,
    task: JoinHandle<Group>,
}

/// Runs the rule groups.
pub struct Manager<B> {
    ctx: Arc<EvalContext<B>>,
    running: tokio::sync::Mutex<BTreeMap<(String, String), Running>>,
    /// Status cells in file, then group order, for the APIs.
    statuses: RwLock<Vec<StatusCell>>,
    /// Whether the first load happened: only groups of the first load
    /// restore `for` state (as Prometheus without
    /// `--rules.alert.restore-new-rule-groups`).
    loaded_once: AtomicBool,
    /// Cancels pending stale-marker writes of removed groups at shutdown.
    shutdown: watch::Sender<bool>,
}

/// Reads the rules files of `patterns` into groups.
///
/// # Errors
/// Every problem of every file, each line prefixed with the file name.
pub fn load_groups(
    patterns: &[String],
    default_interval: Duration,
    restored: bool,
) -> Result<Vec<Group>, String> {
    let mut files = Vec::new();
    for pattern in patterns {
        let found = scraper::discovery::file::expand_glob(pattern)
            .map_err(|e| format!("{pattern}: {e}"))?;
        for path in found {
            if !files.contains(&path) {
                files.push(path);
            }
        }
    }
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for path in &files {
        let name = path.display().to_string();
        match file::load(path) {
            Ok(rules) => groups.extend(
                rules
                    .groups
                    .into_iter()
                    .map(|g| group_from_file(g, &name, default_interval, restored)),
            ),
            Err(file::FileErrors(list)) => {
                errors.extend(list.into_iter().map(|e| format!("{name}: {e}")));
            }
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors.join("\n"))
    }
}

/// A validated group of a file as a runnable [`Group`]; the group's labels
/// go under every rule's own.
pub fn group_from_file(
    group: file::RuleGroup,
    file: &str,
    default_interval: Duration,
    restored: bool,
) -> Group {
    let rules = group
        .rules
        .into_iter()
        .map(|rule| {
            let mut labels = group.labels.clone();
            labels.extend(rule.labels.clone());
            if rule.is_alerting() {
                Rule::Alerting(AlertingRule::new(
                    rule.alert,
                    rule.expr,
                    rule.for_,
                    rule.keep_firing_for,
                    labels,
                    rule.annotations,
                    restored,
                ))
            } else {
                Rule::Recording(RecordingRule {
                    name: rule.record,
                    expr: rule.expr,
                    labels,
                })
            }
        })
        .collect();
    let interval = group
        .interval
        .filter(|d| !d.is_zero())
        .unwrap_or(default_interval);
    Group::new(
        group.name,
        file.to_string(),
        interval,
        group.query_offset,
        group.limit,
        rules,
    )
}

impl<B: QueryBackend + 'static> Manager<B> {
    pub fn new(ctx: EvalContext<B>) -> Self {
        Manager {
            ctx: Arc::new(ctx),
            running: tokio::sync::Mutex::new(BTreeMap::new()),
            statuses: RwLock::new(Vec::new()),
            loaded_once: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
        }
    }

    pub fn context(&self) -> &EvalContext<B> {
        &self.ctx
    }

    /// Loads the rules files and replaces the running groups; on any error
    /// the running groups stay as they are.
    ///
    /// # Errors
    /// The files' problems.
    pub async fn update(
        &self,
        patterns: &[String],
        default_interval: Duration,
        options: EvalOptions,
    ) -> Result<(), String> {
        let restored = self.loaded_once.load(Ordering::SeqCst);
        let groups = load_groups(patterns, default_interval, restored)
            .map_err(|e| format!("error loading rules, previous rule set restored: {e}"))?;
        *self.ctx.options.write() = options;
        self.loaded_once.store(true, Ordering::SeqCst);
        let mut running = self.running.lock().await;
        let mut old = std::mem::take(&mut *running);
        let mut next = BTreeMap::new();
        let mut statuses = Vec::new();
        for mut group in groups {
            let key = (group.file.clone(), group.name.clone());
            if let Some(current) = old.remove(&key) {
                if current.definition.same_definition(&group) {
                    statuses.push(Arc::clone(&current.status));
                    next.insert(key, current);
                    continue;
                }
                let previous = stop(current).await;
                if let Some(previous) = previous {
                    group.copy_state(previous);
                }
                group.should_restore = false;
            }
            let started = self.start(group);
            statuses.push(Arc::clone(&started.status));
            next.insert(key, started);
        }
        // Groups that are gone: their series go stale after two intervals,
        // so that a renamed group can take them over first.
        for (_, removed) in old {
            let interval = removed.definition.interval;
            let offset = removed.definition.query_offset;
            let Some(group) = stop(removed).await else {
                continue;
            };
            let ctx = Arc::clone(&self.ctx);
            let mut shutdown = self.shutdown.subscribe();
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(interval * 2) => {}
                    _ = shutdown.changed() => return,
                }
                let series = group.series_written();
                mark_stale(&ctx, series, offset).await;
            });
        }
        *running = next;
        *self.statuses.write() = statuses;
        Ok(())
    }

    fn start(&self, group: Group) -> Running {
        let key = group.key();
        let metrics = &self.ctx.metrics;
        metrics
            .interval
            .with(&[key.as_str()])
            .set(group.interval.as_secs_f64());
        metrics
            .rules
            .with(&[key.as_str()])
            .set(group.rules().count() as f64);
        metrics.iterations_missed.with(&[key.as_str()]);
        metrics.failures.with(&[key.as_str()]);
        let mut definition = group.clone();
        definition.should_restore = false;
        let status: StatusCell = Arc::new(RwLock::new(Arc::new(group.status())));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run_group(
            group,
            Arc::clone(&self.ctx),
            Arc::clone(&status),
            stopped,
        ));
        Running {
            definition,
            status,
            stop,
            task,
        }
    }

    /// Every group's latest status, in file and group order.
    pub fn groups(&self) -> Vec<Arc<GroupStatus>> {
        self.statuses
            .read()
            .iter()
            .map(|cell| Arc::clone(&cell.read()))
            .collect()
    }

    /// Stops every group after its evaluation in progress.
    pub async fn stop(&self) {
        let _ = self.shutdown.send(true);
        let mut running = self.running.lock().await;
        for (_, group) in std::mem::take(&mut *running) {
            stop(group).await;
        }
        self.statuses.write().clear();
    }
}

/// Stops a group's task and returns its final state.
async fn stop(running: Running) -> Option<Group> {
    let _ = running.stop.send(true);
    running.task.await.ok()
}

/// Writes stale markers for series of a group that is gone.
async fn mark_stale<B: QueryBackend + 'static>(
    ctx: &Arc<EvalContext<B>>,
    series: Vec<tsdb::model::Labels>,
    query_offset: Option<Duration>,
) {
    if series.is_empty() {
        return;
    }
    let offset = query_offset.unwrap_or(ctx.options.read().default_query_offset);
    let t = ctx.clock.now_ms() - ms(offset);
    let appendable = Arc::clone(&ctx.appendable);
    let _ = tokio::task::spawn_blocking(move || {
        let mut appender = appendable.appender();
        for labels in series {
            let _ = appender.append(
                None,
                &labels,
                tsdb::model::Sample::new(t, tsdb::model::STALE_NAN),
            );
        }
        if let Err(error) = appender.commit() {
            tracing::warn!(error = %error, "Stale sample appending for removed rule groups failed.");
        }
    })
    .await;
}

/// Waits until the clock reaches `target_ms`; false when asked to stop.
async fn wait_until<B>(
    ctx: &EvalContext<B>,
    target_ms: i64,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        if *stop.borrow() {
            return false;
        }
        let now = ctx.clock.now_ms();
        if now >= target_ms {
            return true;
        }
        let wait = Duration::from_millis((target_ms - now).unsigned_abs());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = stop.changed() => if changed.is_err() || *stop.borrow() {
                return false;
            },
        }
    }
}

/// A group's life: the first evaluation at the slot after start, the
/// restore of `for` state after the second, then one evaluation per
/// interval; slots that passed during a long evaluation are counted as
/// missed and skipped.
async fn run_group<B: QueryBackend + 'static>(
    mut group: Group,
    ctx: Arc<EvalContext<B>>,
    status: StatusCell,
    mut stop: watch::Receiver<bool>,
) -> Group {
    let interval = ms(group.interval).max(1);
    let key = group.key();
    let mut ts = group.eval_timestamp(ctx.clock.now_ms()) + interval;
    let mut first = true;
    loop {
        if !wait_until(&ctx, if first { ts } else { ts + interval }, &mut stop).await {
            return group;
        }
        if !first {
            let missed = (ctx.clock.now_ms() - ts) / interval - 1;
            if missed > 0 {
                ctx.metrics
                    .iterations_missed
                    .with(&[key.as_str()])
                    .inc_by(missed as f64);
                ctx.metrics
                    .iterations_scheduled
                    .with(&[key.as_str()])
                    .inc_by(missed as f64);
            }
            ts += (missed.max(0) + 1) * interval;
        }
        group.iterate(ts, &ctx).await;
        if group.should_restore && !first {
            group.restore_for_state(ctx.clock.now_ms(), &ctx).await;
        }
        first = false;
        *status.write() = Arc::new(group.status());
    }
}
