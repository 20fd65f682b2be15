//! Alerting rules: the pending → firing → inactive state machine of each
//! alert, `for` and `keep_firing_for`, the `ALERTS` and `ALERTS_FOR_STATE`
//! series, and the restore of `for` state after a restart, as
//! `rules/alerting.go` and `rules/group.go` define them.
//!
//! Times are milliseconds since the epoch; `None` stands for Go's zero time.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tsdb::model::{Labels, METRIC_NAME, Sample, is_stale_nan};

use super::template::AlertData;

/// The metric of the series that show pending and firing alerts.
pub const ALERTS_METRIC: &str = "ALERTS";
/// The metric of the series that keep each alert's `ActiveAt`.
pub const ALERTS_FOR_STATE_METRIC: &str = "ALERTS_FOR_STATE";
/// Resolved alerts are kept (and re-sent) this long.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// The state of one alert (or, as the highest of its alerts, of a rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// The rule has not been evaluated yet.
    Unknown,
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Unknown => "unknown",
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One instance of an alerting rule: one label set of its output.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub state: AlertState,
    /// The output series' labels without `__name__`, the rule's expanded
    /// labels and `alertname`.
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    /// The expression's value at the last evaluation.
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub valid_until: Option<i64>,
    pub keep_firing_since: Option<i64>,
}

impl Alert {
    /// Whether the notifier must (re)send the alert at `ts`.
    fn needs_sending(&self, ts: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        let resolved_since_sent = match (self.resolved_at, self.last_sent_at) {
            (Some(resolved), Some(sent)) => resolved > sent,
            (Some(_), None) => true,
            (None, _) => false,
        };
        resolved_since_sent
            || self
                .last_sent_at
                .is_none_or(|sent| sent.saturating_add(resend_delay_ms) < ts)
    }
}

/// An `alert` rule ready to run, with its alerts.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    pub name: String,
    pub expr: String,
    pub hold: Duration,
    pub keep_firing_for: Duration,
    /// Label templates (the rule's over the group's).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Alerts by label set, including resolved ones kept for re-sending.
    active: BTreeMap<Labels, Alert>,
    /// `ALERTS_FOR_STATE` is written only once the `for` state was
    /// restored (or there was nothing to restore).
    restored: bool,
}

/// `ALERTS` or `ALERTS_FOR_STATE` of an alert: the rule's raw labels,
/// overwritten by the alert's, the metric name, `alertname`, and for
/// `ALERTS` the state.
fn series(raw: &Labels, name: &str, metric: &str, alert: Option<&Alert>) -> Labels {
    let mut builder = raw.builder();
    if let Some(alert) = alert {
        for label in &alert.labels {
            builder.set_mut(label.name.clone(), label.value.clone());
        }
    }
    builder.set_mut(METRIC_NAME, metric);
    builder.set_mut("alertname", name);
    if let (Some(alert), ALERTS_METRIC) = (alert, metric) {
        builder.set_mut("alertstate", alert.state.as_str());
    }
    builder.build()
}

/// Millisecond figure of a duration, saturated.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl AlertingRule {
    pub fn new(
        name: String,
        expr: String,
        hold: Duration,
        keep_firing_for: Duration,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        restored: bool,
    ) -> Self {
        AlertingRule {
            name,
            expr,
            hold,
            keep_firing_for,
            labels,
            annotations,
            active: BTreeMap::new(),
            restored,
        }
    }

    /// One evaluation at `ts` over the query's result: updates the alerts
    /// and returns the `ALERTS`/`ALERTS_FOR_STATE` samples to write (the
    /// group writes them at `ts - query_offset`). `expand` expands one template for one output
    /// element (it yields the error text itself when expansion fails).
    ///
    /// # Errors
    /// Two elements with the same labels after the rule's labels (state
    /// untouched), or more alerts than `limit` (state cleared).
    pub fn eval(
        &mut self,
        ts: i64,
        result: Vec<(Labels, f64)>,
        limit: i64,
        expand: &mut dyn FnMut(&str, &AlertData) -> String,
    ) -> Result<Vec<(Labels, f64)>, String> {
        let mut fresh: HashMap<Labels, Alert> = HashMap::with_capacity(result.len());
        for (series, value) in result {
            let data = AlertData {
                labels: series
                    .iter()
                    .map(|l| (l.name.to_string(), l.value.to_string()))
                    .collect(),
                value,
                ..AlertData::default()
            };
            let mut builder = series.builder();
            builder.remove_mut(METRIC_NAME);
            for (name, text) in &self.labels {
                builder.set_mut(name.as_str(), expand(text, &data));
            }
            builder.set_mut("alertname", self.name.as_str());
            let annotations = self
                .annotations
                .iter()
                .map(|(name, text)| (name.clone(), expand(text, &data)))
                .collect();
            let labels = builder.build();
            if fresh.contains_key(&labels) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
            fresh.insert(
                labels.clone(),
                Alert {
                    state: AlertState::Pending,
                    labels,
                    annotations,
                    value,
                    active_at: ts,
                    fired_at: None,
                    resolved_at: None,
                    last_sent_at: None,
                    valid_until: None,
                    keep_firing_since: None,
                },
            );
        }
        let mut in_result = std::collections::HashSet::with_capacity(fresh.len());
        for (labels, alert) in fresh {
            in_result.insert(labels.clone());
            match self.active.get_mut(&labels) {
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = alert.value;
                    existing.annotations = alert.annotations;
                }
                _ => {
                    self.active.insert(labels, alert);
                }
            }
        }

        let raw_labels = self.raw_labels();
        let keep_firing_for = ms(self.keep_firing_for);
        let retention = ms(RESOLVED_RETENTION);
        let mut out = Vec::new();
        let mut active_or_pending = 0i64;
        let mut expired = Vec::new();
        for (labels, alert) in &mut self.active {
            if in_result.contains(labels) {
                alert.keep_firing_since = None;
            } else {
                let mut keep_firing = false;
                if alert.state == AlertState::Firing && keep_firing_for > 0 {
                    let since = *alert.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < keep_firing_for;
                }
                let resolved_long_ago = alert
                    .resolved_at
                    .is_some_and(|resolved| ts - resolved > retention);
                if alert.state == AlertState::Pending || resolved_long_ago {
                    expired.push(labels.clone());
                }
                if alert.state != AlertState::Inactive && !keep_firing {
                    alert.state = AlertState::Inactive;
                    alert.resolved_at = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            }
            active_or_pending += 1;
            if alert.state == AlertState::Pending && ts - alert.active_at >= ms(self.hold) {
                alert.state = AlertState::Firing;
                alert.fired_at = Some(ts);
            }
            if self.restored {
                let alerts = series(&raw_labels, &self.name, ALERTS_METRIC, Some(alert));
                out.push((alerts, 1.0));
                let for_state = series(
                    &raw_labels,
                    &self.name,
                    ALERTS_FOR_STATE_METRIC,
                    Some(alert),
                );
                out.push((for_state, alert.active_at.div_euclid(1000) as f64));
            }
        }
        for labels in expired {
            self.active.remove(&labels);
        }
        if limit > 0 && active_or_pending > limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {limit} with {active_or_pending} alerts"
            ));
        }
        Ok(out)
    }

    /// `ALERTS_FOR_STATE{...}` without an alert's labels: the labels every
    /// such series of the rule has (the restore's matchers).
    pub fn for_state_series(&self) -> Labels {
        series(
            &self.raw_labels(),
            &self.name,
            ALERTS_FOR_STATE_METRIC,
            None,
        )
    }

    fn raw_labels(&self) -> Labels {
        Labels::from_pairs(
            &self
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        )
    }

    /// The highest state of the rule's alerts; `evaluated` false gives
    /// `Unknown`.
    pub fn state(&self, evaluated: bool) -> AlertState {
        if !evaluated {
            return AlertState::Unknown;
        }
        self.active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
            .max(AlertState::Inactive)
    }

    /// Every alert kept, including resolved ones.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Pending and firing alerts (not resolved).
    pub fn active_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values().filter(|a| a.resolved_at.is_none())
    }

    pub fn is_restored(&self) -> bool {
        self.restored
    }

    pub fn set_restored(&mut self, restored: bool) {
        self.restored = restored;
    }

    /// The alerts to send at `ts`, marked as sent with their lease
    /// (`ValidUntil` = ts + 4 × max(interval, resend delay)).
    pub fn alerts_to_send(
        &mut self,
        ts: i64,
        resend_delay: Duration,
        interval: Duration,
    ) -> Vec<Alert> {
        let delay = ms(resend_delay);
        let lease = 4 * ms(interval.max(resend_delay));
        let mut out = Vec::new();
        for alert in self.active.values_mut() {
            if alert.needs_sending(ts, delay) {
                alert.last_sent_at = Some(ts);
                alert.valid_until = Some(ts.saturating_add(lease));
                out.push(alert.clone());
            }
        }
        out
    }

    /// Takes over the alerts of the same rule before a reload.
    pub fn copy_alerts_from(&mut self, from: &AlertingRule) {
        for (labels, alert) in &from.active {
            self.active.insert(labels.clone(), alert.clone());
        }
    }

    /// Restores `ActiveAt` of the current alerts from the newest
    /// `ALERTS_FOR_STATE` sample of each (keyed by the series' labels
    /// without `__name__`), as Prometheus does at the second evaluation
    /// after start: an alert that was pending when the server went down
    /// resumes with its remaining `for` time, at least `grace_period`.
    pub fn restore_for_state(
        &mut self,
        ts: i64,
        newest: &HashMap<Labels, Sample>,
        grace_period: Duration,
    ) {
        let hold = ms(self.hold);
        let grace = ms(grace_period);
        for alert in self.active.values_mut() {
            let Some(sample) = newest.get(&alert.labels) else {
                continue;
            };
            if is_stale_nan(sample.v) {
                continue;
            }
            // Go truncates both to whole seconds.
            let down_at = (sample.t / 1000) * 1000;
            let mut active_at = (sample.v as i64) * 1000;
            let remaining = hold - (down_at - active_at);
            if remaining <= 0 {
                // Was firing; the next evaluation decides again.
            } else if remaining < grace {
                active_at = ts + grace - hold;
            } else {
                active_at += ts - down_at;
            }
            alert.active_at = active_at;
        }
        self.restored = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn rule(hold_s: u64, keep_s: u64) -> AlertingRule {
        AlertingRule::new(
            "HighLoad".into(),
            "load > 1".into(),
            Duration::from_secs(hold_s),
            Duration::from_secs(keep_s),
            [("severity".to_string(), "page".to_string())].into(),
            [(
                "summary".to_string(),
                "load {{ $value }} on {{ $labels.instance }}".to_string(),
            )]
            .into(),
            true,
        )
    }

    fn expand(text: &str, data: &AlertData) -> String {
        super::super::template::expand_alert_template("HighLoad", text, data, 0, None)
    }

    fn element(instance: &str, v: f64) -> (Labels, f64) {
        (
            Labels::from_pairs(&[("__name__", "load"), ("instance", instance)]),
            v,
        )
    }

    fn states(rule: &AlertingRule) -> Vec<(String, AlertState)> {
        rule.alerts()
            .map(|a| (a.labels.get("instance").unwrap_or("").to_string(), a.state))
            .collect()
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let mut r = rule(120, 0);
        let out = r.eval(0, vec![element("a", 2.0)], 0, &mut expand).unwrap();
        assert_eq!(states(&r), vec![("a".into(), AlertState::Pending)]);
        assert_eq!(
            out[0].0,
            Labels::from_pairs(&[
                ("__name__", "ALERTS"),
                ("alertname", "HighLoad"),
                ("alertstate", "pending"),
                ("instance", "a"),
                ("severity", "page"),
            ])
        );
        assert_eq!(out[1].1, 0.0);
        let alert = r.alerts().next().unwrap();
        assert_eq!(alert.annotations["summary"], "load 2 on a");

        r.eval(MIN, vec![element("a", 3.0)], 0, &mut expand)
            .unwrap();
        assert_eq!(states(&r), vec![("a".into(), AlertState::Pending)]);
        assert_eq!(
            r.alerts().next().unwrap().annotations["summary"],
            "load 3 on a"
        );
        r.eval(2 * MIN, vec![element("a", 3.0)], 0, &mut expand)
            .unwrap();
        assert_eq!(states(&r), vec![("a".into(), AlertState::Firing)]);
        assert_eq!(r.alerts().next().unwrap().fired_at, Some(2 * MIN));

        // Gone: resolved, kept for re-sending, no more series written.
        let out = r.eval(3 * MIN, vec![], 0, &mut expand).unwrap();
        assert!(out.is_empty());
        assert_eq!(states(&r), vec![("a".into(), AlertState::Inactive)]);
        assert_eq!(r.alerts().next().unwrap().resolved_at, Some(3 * MIN));
        assert_eq!(r.state(true), AlertState::Inactive);
        // Back: a new pending alert replaces the resolved one.
        r.eval(4 * MIN, vec![element("a", 3.0)], 0, &mut expand)
            .unwrap();
        assert_eq!(states(&r), vec![("a".into(), AlertState::Pending)]);
        assert_eq!(r.alerts().next().unwrap().active_at, 4 * MIN);
        // A pending alert that goes away is dropped at once.
        r.eval(5 * MIN, vec![], 0, &mut expand).unwrap();
        assert_eq!(states(&r), vec![]);
    }

    #[test]
    fn resolved_alerts_are_dropped_after_retention() {
        let mut r = rule(0, 0);
        r.eval(0, vec![element("a", 2.0)], 0, &mut expand).unwrap();
        assert_eq!(r.state(true), AlertState::Firing);
        r.eval(MIN, vec![], 0, &mut expand).unwrap();
        r.eval(16 * MIN, vec![], 0, &mut expand).unwrap();
        assert_eq!(r.alerts().count(), 1, "kept for exactly 15 minutes");
        r.eval(16 * MIN + 1, vec![], 0, &mut expand).unwrap();
        assert_eq!(r.alerts().count(), 0);
    }

    #[test]
    fn keep_firing_for_holds_a_resolved_alert() {
        let mut r = rule(0, 120);
        r.eval(0, vec![element("a", 2.0)], 0, &mut expand).unwrap();
        let out = r.eval(MIN, vec![], 0, &mut expand).unwrap();
        assert_eq!(states(&r), vec![("a".into(), AlertState::Firing)]);
        assert_eq!(out.len(), 2, "still written as firing");
        assert_eq!(r.alerts().next().unwrap().keep_firing_since, Some(MIN));
        r.eval(2 * MIN, vec![], 0, &mut expand).unwrap();
        assert_eq!(states(&r), vec![("a".into(), AlertState::Firing)]);
        r.eval(3 * MIN, vec![], 0, &mut expand).unwrap();
        assert_eq!(states(&r), vec![("a".into(), AlertState::Inactive)]);
        assert_eq!(r.alerts().next().unwrap().resolved_at, Some(3 * MIN));
    }

    #[test]
    fn duplicates_and_limit_are_errors() {
        let mut r = rule(0, 0);
        r.labels.insert("instance".into(), "same".into());
        let error = r
            .eval(
                0,
                vec![element("a", 1.0), element("b", 1.0)],
                0,
                &mut expand,
            )
            .unwrap_err();
        assert_eq!(
            error,
            "vector contains metrics with the same labelset after applying alert labels"
        );
        let mut r = rule(0, 0);
        let error = r
            .eval(
                0,
                vec![element("a", 1.0), element("b", 1.0)],
                1,
                &mut expand,
            )
            .unwrap_err();
        assert_eq!(error, "exceeded limit of 1 with 2 alerts");
        assert_eq!(r.alerts().count(), 0);
    }

    #[test]
    fn sending_follows_resend_delay_and_resolution() {
        let mut r = rule(0, 0);
        let delay = Duration::from_secs(60);
        let interval = Duration::from_secs(15);
        r.eval(0, vec![element("a", 1.0)], 0, &mut expand).unwrap();
        let sent = r.alerts_to_send(0, delay, interval);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].valid_until, Some(4 * MIN));
        assert!(r.alerts_to_send(15_000, delay, interval).is_empty());
        assert!(r.alerts_to_send(MIN, delay, interval).is_empty());
        assert_eq!(r.alerts_to_send(MIN + 1, delay, interval).len(), 1);
        r.eval(2 * MIN, vec![], 0, &mut expand).unwrap();
        let sent = r.alerts_to_send(2 * MIN, delay, interval);
        assert_eq!(sent[0].resolved_at, Some(2 * MIN));
    }

    #[test]
    fn restore_keeps_the_remaining_for_time() {
        let hold = Duration::from_secs(30 * 60);
        let grace = Duration::from_secs(10 * 60);
        let restart = 100 * MIN;
        let at = |r: &AlertingRule| r.alerts().next().unwrap().active_at;
        let fresh = || {
            let mut r = rule(30 * 60, 0);
            r.set_restored(false);
            r.hold = hold;
            r.eval(restart, vec![element("a", 1.0)], 0, &mut expand)
                .unwrap();
            r
        };
        let key = fresh().alerts().next().unwrap().labels.clone();
        let newest =
            |t: i64, active_at_s: f64| HashMap::from([(key.clone(), Sample::new(t, active_at_s))]);
        // Pending 5 minutes when it went down 10 minutes before the restart:
        // 25 minutes remain, so ActiveAt moves forward by the downtime.
        let mut r = fresh();
        r.restore_for_state(restart, &newest(90 * MIN, (85 * 60) as f64), grace);
        assert_eq!(at(&r), 95 * MIN);
        assert!(r.is_restored());
        // 25 of 30 minutes spent: the grace period applies.
        let mut r = fresh();
        r.restore_for_state(restart, &newest(90 * MIN, (65 * 60) as f64), grace);
        assert_eq!(at(&r), restart + 10 * MIN - 30 * MIN);
        // Firing when it went down: the original ActiveAt.
        let mut r = fresh();
        r.restore_for_state(restart, &newest(90 * MIN, (50 * 60) as f64), grace);
        assert_eq!(at(&r), 50 * MIN);
        // A stale marker: not active then, nothing restored.
        let mut r = fresh();
        r.restore_for_state(restart, &newest(90 * MIN, tsdb::model::STALE_NAN), grace);
        assert_eq!(at(&r), restart);
    }
}
