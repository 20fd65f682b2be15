//! A rule group: its rules evaluated in order at one timestamp, the
//! series each rule wrote last time (for stale markers), the restore of
//! alerts' `for` state, and the timestamps the group runs at
//! (`rules/group.go`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tsdb::clock::Clock;
use tsdb::model::{Labels, Matcher, STALE_NAN, Sample};
use tsdb::promql::QueryBackend;
use tsdb::storage::{Appendable, Queryable, SelectHints};

use super::alerting::{Alert, AlertState, AlertingRule, ms};
use super::metrics::RuleMetrics;
use super::recording::{RecordingRule, vector_of};
use super::template::{self, AlertData, QuerySample};

/// One rule of a group.
#[derive(Debug, Clone)]
pub enum Rule {
    Recording(RecordingRule),
    Alerting(AlertingRule),
}

impl Rule {
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.name,
            Rule::Alerting(r) => &r.name,
        }
    }

    pub fn expr(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.expr,
            Rule::Alerting(r) => &r.expr,
        }
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        match self {
            Rule::Recording(r) => &r.labels,
            Rule::Alerting(r) => &r.labels,
        }
    }

    /// What makes two rules the same across a reload: the same text.
    fn same_definition(&self, other: &Rule) -> bool {
        match (self, other) {
            (Rule::Recording(a), Rule::Recording(b)) => a == b,
            (Rule::Alerting(a), Rule::Alerting(b)) => {
                a.name == b.name
                    && a.expr == b.expr
                    && a.hold == b.hold
                    && a.keep_firing_for == b.keep_firing_for
                    && a.labels == b.labels
                    && a.annotations == b.annotations
            }
            _ => false,
        }
    }
}

/// A rule's health after its last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Good,
    Bad,
}

impl Health {
    /// As the rules API words it.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Good => "ok",
            Health::Bad => "err",
        }
    }
}

/// A rule and what its evaluations left behind.
#[derive(Debug, Clone)]
struct RuleEntry {
    rule: Rule,
    health: Health,
    last_error: Option<String>,
    evaluation_time: Duration,
    /// Wall-clock start of the last evaluation (ms).
    last_evaluation: Option<i64>,
    /// The series the last successful evaluation wrote.
    series_in_previous_eval: HashSet<Labels>,
}

/// What groups need from the outside: where queries run, where samples go,
/// and the settings shared by every group. Options may change on reload.
pub struct EvalContext<B> {
    pub backend: Arc<B>,
    pub appendable: Arc<dyn Appendable>,
    /// Read directly (not through PromQL) to restore `for` state, as
    /// Prometheus does: stale markers matter there.
    pub queryable: Arc<dyn Queryable>,
    pub clock: Arc<dyn Clock>,
    pub options: RwLock<EvalOptions>,
    pub notify: Option<Arc<dyn AlertSink>>,
    pub metrics: RuleMetrics,
}

/// Settings every group reads at each evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    /// `global.rule_query_offset`.
    pub default_query_offset: Duration,
    /// `--rules.alert.resend-delay` (1m).
    pub resend_delay: Duration,
    /// `--rules.alert.for-outage-tolerance` (1h).
    pub outage_tolerance: Duration,
    /// `--rules.alert.for-grace-period` (10m).
    pub grace_period: Duration,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            default_query_offset: Duration::ZERO,
            resend_delay: Duration::from_secs(60),
            outage_tolerance: Duration::from_secs(3600),
            grace_period: Duration::from_secs(600),
        }
    }
}

/// Receives the alerts an alerting rule wants sent (the notifier).
pub trait AlertSink: Send + Sync {
    /// `expr` is the rule's expression, for the generator URL.
    fn send(&self, expr: &str, alerts: Vec<Alert>);
}

/// A group of rules and its evaluation state.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub file: String,
    pub interval: Duration,
    /// `None`: the global `rule_query_offset`.
    pub query_offset: Option<Duration>,
    pub limit: i64,
    rules: Vec<RuleEntry>,
    /// Series of rules removed by a reload, marked stale at the next
    /// evaluation.
    stale_series: Vec<Labels>,
    evaluation_time: Duration,
    /// Wall-clock start of the last evaluation (ms).
    last_evaluation: Option<i64>,
    /// The slot of the last evaluation (ms).
    last_eval_timestamp: Option<i64>,
    /// Restore alerts' `for` state after the second evaluation.
    pub should_restore: bool,
}

impl Group {
    pub fn new(
        name: String,
        file: String,
        interval: Duration,
        query_offset: Option<Duration>,
        limit: i64,
        rules: Vec<Rule>,
    ) -> Self {
        let should_restore = rules
            .iter()
            .any(|r| matches!(r, Rule::Alerting(a) if !a.is_restored()));
        Group {
            name,
            file,
            interval,
            query_offset,
            limit,
            rules: rules
                .into_iter()
                .map(|rule| RuleEntry {
                    rule,
                    health: Health::Unknown,
                    last_error: None,
                    evaluation_time: Duration::ZERO,
                    last_evaluation: None,
                    series_in_previous_eval: HashSet::new(),
                })
                .collect(),
            stale_series: Vec::new(),
            evaluation_time: Duration::ZERO,
            last_evaluation: None,
            last_eval_timestamp: None,
            should_restore,
        }
    }

    /// `file;name`, the `rule_group` label of the group's figures.
    pub fn key(&self) -> String {
        format!("{};{}", self.file, self.name)
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|e| &e.rule)
    }

    /// The group's offset within its interval, from a hash of its name and
    /// file, so that groups spread over the interval.
    pub fn offset_ms(&self) -> i64 {
        let interval = ms(self.interval).max(1);
        // FNV-1a over Prometheus's label-set bytes of {file, name}.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in ["file", &self.file, "name", &self.name] {
            for &b in part.as_bytes().iter().chain([0xffu8].iter()) {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        i64::try_from(hash % interval.unsigned_abs()).unwrap_or(0)
    }

    /// The latest slot at or before `now_ms`: `base + offset` with `base` a
    /// multiple of the interval (Prometheus's `EvalTimestamp`).
    pub fn eval_timestamp(&self, now_ms: i64) -> i64 {
        let interval = ms(self.interval).max(1);
        let offset = self.offset_ms();
        let adjusted = now_ms - offset;
        adjusted - adjusted.rem_euclid(interval) + offset
    }

    fn effective_query_offset(&self, options: &EvalOptions) -> Duration {
        self.query_offset.unwrap_or(options.default_query_offset)
    }

    /// Whether a reload leaves this group as it is.
    pub fn same_definition(&self, other: &Group) -> bool {
        self.name == other.name
            && self.file == other.file
            && self.interval == other.interval
            && self.limit == other.limit
            && self.query_offset == other.query_offset
            && self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|(a, b)| a.rule.same_definition(&b.rule))
    }

    /// Takes over the state of the group this one replaces: previous
    /// series and alerts of rules with the same name and labels (the n-th
    /// duplicate matched with the n-th); series of rules that are gone are
    /// marked stale at the next evaluation.
    pub fn copy_state(&mut self, from: Group) {
        self.evaluation_time = from.evaluation_time;
        self.last_evaluation = from.last_evaluation;
        let key = |r: &Rule| format!("{}{:?}", r.name(), r.labels());
        let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, entry) in from.rules.iter().enumerate() {
            by_key.entry(key(&entry.rule)).or_default().push(i);
        }
        let mut taken = vec![false; from.rules.len()];
        for entry in &mut self.rules {
            let Some(indexes) = by_key.get_mut(&key(&entry.rule)) else {
                continue;
            };
            if indexes.is_empty() {
                continue;
            }
            let i = indexes.remove(0);
            taken[i] = true;
            let old = &from.rules[i];
            entry
                .series_in_previous_eval
                .clone_from(&old.series_in_previous_eval);
            if let (Rule::Alerting(new), Rule::Alerting(old)) = (&mut entry.rule, &old.rule) {
                new.copy_alerts_from(old);
            }
        }
        self.stale_series = from.stale_series;
        for (i, entry) in from.rules.into_iter().enumerate() {
            if !taken[i] {
                self.stale_series.extend(entry.series_in_previous_eval);
            }
        }
    }

    /// Every series the group's rules wrote last (to mark stale when the
    /// group goes away).
    pub fn series_written(&self) -> Vec<Labels> {
        self.rules
            .iter()
            .flat_map(|e| e.series_in_previous_eval.iter().cloned())
            .chain(self.stale_series.iter().cloned())
            .collect()
    }

    /// One scheduled iteration at slot `ts`: evaluates the rules and
    /// records how long it took.
    pub async fn iterate<B: QueryBackend + 'static>(&mut self, ts: i64, ctx: &EvalContext<B>) {
        let key = self.key();
        ctx.metrics.iterations_scheduled.with(&[key.as_str()]).inc();
        let wall = ctx.clock.now_ms();
        let started = Instant::now();
        self.eval(ts, ctx).await;
        let took = started.elapsed();
        self.evaluation_time = took;
        self.last_evaluation = Some(wall);
        self.last_eval_timestamp = Some(ts);
        ctx.metrics
            .last_duration
            .with(&[key.as_str()])
            .set(took.as_secs_f64());
        ctx.metrics
            .last_evaluation
            .with(&[key.as_str()])
            .set(wall as f64 / 1000.0);
    }

    /// Evaluates every rule in order at `ts`.
    pub async fn eval<B: QueryBackend + 'static>(&mut self, ts: i64, ctx: &EvalContext<B>) {
        let options = ctx.options.read().clone();
        let query_offset = self.effective_query_offset(&options);
        let sample_t = ts - ms(query_offset);
        let key = self.key();
        let mut samples_total = 0usize;
        for i in 0..self.rules.len() {
            let wall = ctx.clock.now_ms();
            let started = Instant::now();
            ctx.metrics.evaluations.with(&[key.as_str()]).inc();
            let outcome = self.eval_rule(i, ts, query_offset, &options, ctx).await;
            let entry = &mut self.rules[i];
            match outcome {
                Err(error) => {
                    entry.health = Health::Bad;
                    entry.last_error = Some(error.clone());
                    ctx.metrics.failures.with(&[key.as_str()]).inc();
                    tracing::warn!(group = %self.name, file = %self.file, rule = %entry.rule.name(), error, "Evaluating rule failed.");
                }
                Ok(output) => {
                    entry.health = Health::Good;
                    entry.last_error = None;
                    samples_total += output.len();
                    if let (Rule::Alerting(rule), Some(sink)) = (&mut entry.rule, &ctx.notify) {
                        let alerts = rule.alerts_to_send(ts, options.resend_delay, self.interval);
                        if !alerts.is_empty() {
                            sink.send(&rule.expr, alerts);
                        }
                    }
                    let previous = std::mem::take(&mut entry.series_in_previous_eval);
                    let written = write_samples(ctx, output, previous.clone(), sample_t).await;
                    if let Some(error) = &written.append_error {
                        entry.health = Health::Bad;
                        entry.last_error = Some(error.clone());
                    }
                    match written.commit_error {
                        Some(error) => {
                            entry.health = Health::Bad;
                            entry.last_error = Some(error.clone());
                            entry.series_in_previous_eval = previous;
                            ctx.metrics.failures.with(&[key.as_str()]).inc();
                            tracing::warn!(rule = %entry.rule.name(), error, "Rule sample appending failed.");
                        }
                        None => entry.series_in_previous_eval = written.returned,
                    }
                }
            }
            entry.evaluation_time = started.elapsed();
            entry.last_evaluation = Some(wall);
        }
        ctx.metrics
            .samples
            .with(&[key.as_str()])
            .set(samples_total as f64);
        if !self.stale_series.is_empty() {
            let stale = std::mem::take(&mut self.stale_series);
            let written =
                write_samples(ctx, Vec::new(), stale.iter().cloned().collect(), sample_t).await;
            if let Some(error) = written.commit_error {
                tracing::warn!(
                    error,
                    "Stale sample appending for previous configuration failed."
                );
                self.stale_series = stale;
            }
        }
    }

    /// Runs rule `i`'s query and turns the result into the samples to
    /// write.
    async fn eval_rule<B: QueryBackend + 'static>(
        &mut self,
        i: usize,
        ts: i64,
        query_offset: Duration,
        options: &EvalOptions,
        ctx: &EvalContext<B>,
    ) -> Result<Vec<(Labels, f64)>, String> {
        let limit = self.limit;
        let entry = &mut self.rules[i];
        let query_at = ts - ms(query_offset);
        let result = ctx
            .backend
            .instant(entry.rule.expr(), query_at)
            .await
            .map_err(|e| e.to_string())?;
        match &mut entry.rule {
            Rule::Recording(rule) => rule.output(result.value, limit),
            Rule::Alerting(rule) => {
                let vector = vector_of(result.value)?;
                let queries = rule
                    .labels
                    .values()
                    .chain(rule.annotations.values())
                    .any(|t| template::may_query(t));
                if !queries {
                    let name = rule.name.clone();
                    let mut expand = |text: &str, data: &AlertData| {
                        let data = with_externals(data, options);
                        template::expand_alert_template(&name, text, &data, ts, None)
                    };
                    return rule.eval(ts, vector, limit, &mut expand);
                }
                // Templates call `query` synchronously, as in Go: expand on
                // the blocking pool, where waiting on the backend is allowed.
                let mut owned = rule.clone();
                let backend = Arc::clone(&ctx.backend);
                let options = options.clone();
                let handle = tokio::runtime::Handle::current();
                let joined = tokio::task::spawn_blocking(move || {
                    let name = owned.name.clone();
                    let mut query = |expr: &str| -> Result<Vec<QuerySample>, String> {
                        let result = handle
                            .block_on(backend.instant(expr, ts))
                            .map_err(|e| e.to_string())?;
                        Ok(vector_of(result.value)?
                            .into_iter()
                            .map(|(labels, value)| QuerySample {
                                labels: labels
                                    .iter()
                                    .map(|l| (l.name.to_string(), l.value.to_string()))
                                    .collect(),
                                value,
                            })
                            .collect())
                    };
                    let mut expand = |text: &str, data: &AlertData| {
                        let data = with_externals(data, &options);
                        template::expand_alert_template(&name, text, &data, ts, Some(&mut query))
                    };
                    let outcome = owned.eval(ts, vector, limit, &mut expand);
                    (owned, outcome)
                })
                .await;
                match joined {
                    Ok((updated, outcome)) => {
                        *rule = updated;
                        outcome
                    }
                    Err(error) => Err(format!("template expansion failed: {error}")),
                }
            }
        }
    }

    /// Restores the `for` state of the alerting rules from the newest
    /// `ALERTS_FOR_STATE` samples within the outage tolerance before `ts`.
    pub async fn restore_for_state<B: QueryBackend + 'static>(
        &mut self,
        ts: i64,
        ctx: &EvalContext<B>,
    ) {
        let options = ctx.options.read().clone();
        let mut wanted = Vec::new();
        for (i, entry) in self.rules.iter_mut().enumerate() {
            if let Rule::Alerting(rule) = &mut entry.rule {
                if rule.hold < options.grace_period {
                    // Waiting the grace period would delay it beyond `for`.
                    rule.set_restored(true);
                    continue;
                }
                let matchers: Vec<Matcher> = rule
                    .for_state_series()
                    .iter()
                    .map(|l| Matcher::equal(&*l.name, &*l.value))
                    .collect();
                wanted.push((i, matchers));
            }
        }
        let queryable = Arc::clone(&ctx.queryable);
        let start = ts - ms(options.outage_tolerance);
        let found = tokio::task::spawn_blocking(move || {
            let querier = queryable.querier(tsdb::model::TimeRange::new(start, ts))?;
            let mut found = Vec::new();
            for (i, matchers) in wanted {
                let set = querier.select(
                    &matchers,
                    &SelectHints::for_range(tsdb::model::TimeRange::new(start, ts)),
                )?;
                let mut newest = HashMap::new();
                for mut series in set.series {
                    let mut last: Option<Sample> = None;
                    while let Some(sample) = series.samples.next() {
                        last = Some(sample);
                    }
                    if let Some(last) = last {
                        newest.insert(series.labels.without_metric_name(), last);
                    }
                }
                found.push((i, newest));
            }
            Ok::<_, tsdb::Error>(found)
        })
        .await;
        let found = match found {
            Ok(Ok(found)) => found,
            Ok(Err(error)) => {
                tracing::error!(group = %self.name, error = %error, "Failed to restore 'for' state.");
                Vec::new()
            }
            Err(error) => {
                tracing::error!(group = %self.name, error = %error, "Failed to restore 'for' state.");
                Vec::new()
            }
        };
        let mut found: HashMap<usize, HashMap<Labels, Sample>> = found.into_iter().collect();
        for (i, entry) in self.rules.iter_mut().enumerate() {
            if let Rule::Alerting(rule) = &mut entry.rule {
                let newest = found.remove(&i).unwrap_or_default();
                rule.restore_for_state(ts, &newest, options.grace_period);
            }
        }
        self.should_restore = false;
    }

    /// A snapshot for the rules and alerts APIs.
    pub fn status(&self) -> GroupStatus {
        GroupStatus {
            name: self.name.clone(),
            file: self.file.clone(),
            interval: self.interval,
            limit: self.limit,
            evaluation_time: self.evaluation_time,
            last_evaluation: self.last_evaluation,
            rules: self
                .rules
                .iter()
                .map(|entry| RuleStatus {
                    name: entry.rule.name().to_string(),
                    query: entry.rule.expr().to_string(),
                    labels: entry.rule.labels().clone(),
                    health: entry.health,
                    last_error: entry.last_error.clone(),
                    evaluation_time: entry.evaluation_time,
                    last_evaluation: entry.last_evaluation,
                    alerting: match &entry.rule {
                        Rule::Recording(_) => None,
                        Rule::Alerting(rule) => Some(AlertingStatus {
                            state: rule.state(entry.last_evaluation.is_some()),
                            hold: rule.hold,
                            keep_firing_for: rule.keep_firing_for,
                            annotations: rule.annotations.clone(),
                            alerts: rule.active_alerts().cloned().collect(),
                        }),
                    },
                })
                .collect(),
        }
    }

    /// The alerting rules' alerts, for tests and `sextant test rules`.
    pub fn alerts(&self) -> Vec<(String, Alert)> {
        self.rules
            .iter()
            .filter_map(|e| match &e.rule {
                Rule::Alerting(rule) => Some(rule),
                Rule::Recording(_) => None,
            })
            .flat_map(|rule| rule.alerts().map(|a| (rule.name.clone(), a.clone())))
            .collect()
    }
}

fn with_externals(data: &AlertData, options: &EvalOptions) -> AlertData {
    AlertData {
        labels: data.labels.clone(),
        external_labels: options.external_labels.clone(),
        external_url: options.external_url.clone(),
        value: data.value,
    }
}

/// What writing one rule's output did.
struct Written {
    /// The series appended (the next evaluation's "previous" set).
    returned: HashSet<Labels>,
    /// The last rejected sample's error.
    append_error: Option<String>,
    commit_error: Option<String>,
}

/// Appends `output` at `t`, and stale markers for the `previous` series
/// that are not in it, in one batch on the blocking pool.
async fn write_samples<B>(
    ctx: &EvalContext<B>,
    output: Vec<(Labels, f64)>,
    previous: HashSet<Labels>,
    t: i64,
) -> Written {
    let appendable = Arc::clone(&ctx.appendable);
    let outcome = tokio::task::spawn_blocking(move || {
        let mut appender = appendable.appender();
        let mut returned = HashSet::with_capacity(output.len());
        let mut append_error = None;
        for (labels, v) in output {
            match appender.append(None, &labels, Sample::new(t, v)) {
                Ok(_) => {
                    returned.insert(labels);
                }
                Err(error) => append_error = Some(error.to_string()),
            }
        }
        for labels in previous {
            if !returned.contains(&labels) {
                // Rejections are expected when another rule took the series
                // over; Prometheus ignores them too.
                let _ = appender.append(None, &labels, Sample::new(t, STALE_NAN));
            }
        }
        let commit_error = appender.commit().err().map(|e| e.to_string());
        Written {
            returned,
            append_error,
            commit_error,
        }
    })
    .await;
    outcome.unwrap_or_else(|error| Written {
        returned: HashSet::new(),
        append_error: None,
        commit_error: Some(format!("append task failed: {error}")),
    })
}

/// A group as the rules API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStatus {
    pub name: String,
    pub file: String,
    pub interval: Duration,
    pub limit: i64,
    pub evaluation_time: Duration,
    pub last_evaluation: Option<i64>,
    pub rules: Vec<RuleStatus>,
}

/// A rule as the rules API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleStatus {
    pub name: String,
    pub query: String,
    pub labels: BTreeMap<String, String>,
    pub health: Health,
    pub last_error: Option<String>,
    pub evaluation_time: Duration,
    pub last_evaluation: Option<i64>,
    /// `None` for recording rules.
    pub alerting: Option<AlertingStatus>,
}

/// The alerting part of a [`RuleStatus`].
#[derive(Debug, Clone, PartialEq)]
pub struct AlertingStatus {
    pub state: AlertState,
    pub hold: Duration,
    pub keep_firing_for: Duration,
    pub annotations: BTreeMap<String, String>,
    /// Pending and firing alerts.
    pub alerts: Vec<Alert>,
}

#[cfg(test)]
mod tests;
