//! Sends alerts to Alertmanagers as Prometheus's notifier does
//! (`notifier/*.go`): external labels added, `alert_relabel_configs`
//! applied, a bounded queue (the oldest alerts dropped and counted when it
//! is full), batches POSTed as JSON to `<scheme>://<address><path_prefix>/api/v2/alerts`
//! of every discovered Alertmanager. The payload is documented in
//! `docs/format/alertmanager-payload.md`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use scraper::config::FileSdConfig;
use scraper::discovery::file::FileDiscoverer;
use scraper::discovery::{TargetGroup, static_groups};
use scraper::relabel::{self, RelabelConfig};
use serde::Serialize;
use tsdb::model::Labels;

use super::alerting::Alert;
use super::group::AlertSink;
use super::template::query_escape;
use crate::config::{AlertingConfig, AlertmanagerConfig};
use crate::metrics::{Counter, Family, Gauge, Registry};

/// Alerts per request (Prometheus's `maxBatchSize`).
pub const MAX_BATCH_SIZE: usize = 64;
/// Alerts waiting to be sent (`--alertmanager.notification-queue-capacity`).
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;

/// One alert as Alertmanager's `postableAlert`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "millis_time"
    )]
    pub starts_at: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "millis_time"
    )]
    pub ends_at: Option<i64>,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

#[allow(clippy::ref_option)]
fn millis_time<S: serde::Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.map(format_time).unwrap_or_default())
}

/// Go's `strfmt.DateTime` JSON form: RFC 3339 with milliseconds, UTC.
pub fn format_time(t_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(t_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// The link back to the expression, as Prometheus builds it.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    format!(
        "{}/graph?g0.expr={}&g0.tab=1",
        external_url.trim_end_matches('/'),
        query_escape(expr)
    )
}

/// An alert in the queue: its labels as a label set (for relabeling).
#[derive(Debug, Clone)]
struct Queued {
    labels: Labels,
    alert: PostableAlert,
}

/// One `alertmanagers` entry: its client, settings and discovered URLs.
struct AlertmanagerSet {
    config: AlertmanagerConfig,
    client: reqwest::Client,
    file_discoverers: Vec<(FileDiscoverer, Duration)>,
    /// File discovery groups by source.
    file_groups: BTreeMap<String, TargetGroup>,
    last_refresh: Option<Instant>,
    urls: Vec<String>,
}

impl AlertmanagerSet {
    fn new(config: AlertmanagerConfig) -> Result<Self, String> {
        let client = config
            .http_client_config()
            .build_client(true)
            .map_err(|e| e.to_string())?;
        let file_discoverers = config
            .file_sd_configs
            .iter()
            .map(|c: &FileSdConfig| (FileDiscoverer::new(c.clone()), c.refresh_interval))
            .collect();
        let mut set = AlertmanagerSet {
            config,
            client,
            file_discoverers,
            file_groups: BTreeMap::new(),
            last_refresh: None,
            urls: Vec::new(),
        };
        set.refresh();
        Ok(set)
    }

    /// Re-reads discovery files when due and recomputes the URLs.
    fn refresh(&mut self) {
        let due = self.file_discoverers.iter().map(|(_, every)| *every).min();
        let now = Instant::now();
        let stale = match (self.last_refresh, due) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(last), Some(every)) => now.duration_since(last) >= every,
        };
        if !stale {
            return;
        }
        self.last_refresh = Some(now);
        for (discoverer, _) in &mut self.file_discoverers {
            let (changed, errors) = discoverer.refresh();
            for error in errors {
                tracing::warn!(error = %error, "Alertmanager file discovery failed.");
            }
            for group in changed {
                self.file_groups.insert(group.source.clone(), group);
            }
        }
        let groups = static_groups(&self.config.static_configs)
            .into_iter()
            .chain(self.file_groups.values().cloned());
        let mut urls = Vec::new();
        for group in groups {
            for target in &group.targets {
                if let Some(url) = alertmanager_url(&self.config, target, &group.labels)
                    && !urls.contains(&url)
                {
                    urls.push(url);
                }
            }
        }
        self.urls = urls;
    }
}

/// The push URL of one discovered Alertmanager after `relabel_configs`,
/// `None` when relabeling drops it.
fn alertmanager_url(
    config: &AlertmanagerConfig,
    target: &Labels,
    group: &Labels,
) -> Option<String> {
    let path = format!("{}/api/v2/alerts", config.path_prefix.trim_end_matches('/'));
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let mut builder = target.builder();
    builder.set_mut("__scheme__", config.scheme.as_str());
    builder.set_mut("__alerts_path__", path.as_str());
    for label in group {
        if builder.get(&label.name).is_none() {
            builder.set_mut(label.name.clone(), label.value.clone());
        }
    }
    let labels = relabel::process(&builder.build(), &config.relabel_configs)?;
    let address = labels.get("__address__")?;
    Some(format!(
        "{}://{}{}",
        labels.get("__scheme__").unwrap_or("http"),
        address,
        labels.get("__alerts_path__").unwrap_or("/api/v2/alerts")
    ))
}

struct NotifierMetrics {
    sent: Arc<Family<Counter>>,
    errors: Arc<Family<Counter>>,
    dropped: Arc<Counter>,
    queue_length: Arc<Gauge>,
    discovered: Arc<Gauge>,
}

/// The notifier: a queue and the Alertmanagers it feeds.
pub struct Notifier {
    queue: Mutex<VecDeque<Queued>>,
    capacity: usize,
    wake: tokio::sync::Notify,
    sets: tokio::sync::Mutex<Vec<AlertmanagerSet>>,
    settings: RwLock<Settings>,
    metrics: NotifierMetrics,
}

/// What alerts get before they are queued.
#[derive(Debug, Clone, Default)]
struct Settings {
    external_labels: BTreeMap<String, String>,
    external_url: String,
    relabel: Vec<RelabelConfig>,
}

impl Notifier {
    pub fn new(capacity: usize, registry: &Registry) -> Self {
        registry
            .gauge(
                "sextant_notifications_queue_capacity",
                "The capacity of the alert notifications queue.",
                &[],
            )
            .with(&[])
            .set(capacity as f64);
        Notifier {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            wake: tokio::sync::Notify::new(),
            sets: tokio::sync::Mutex::new(Vec::new()),
            settings: RwLock::new(Settings::default()),
            metrics: NotifierMetrics {
                sent: registry.counter(
                    "sextant_notifications_sent_total",
                    "Alerts sent, by Alertmanager.",
                    &["alertmanager"],
                ),
                errors: registry.counter(
                    "sextant_notifications_errors_total",
                    "Alerts that could not be sent, by Alertmanager.",
                    &["alertmanager"],
                ),
                dropped: registry
                    .counter(
                        "sextant_notifications_dropped_total",
                        "Alerts dropped: queue full, or no Alertmanager to send to.",
                        &[],
                    )
                    .with(&[]),
                queue_length: registry
                    .gauge(
                        "sextant_notifications_queue_length",
                        "Alerts waiting to be sent.",
                        &[],
                    )
                    .with(&[]),
                discovered: registry
                    .gauge(
                        "sextant_notifications_alertmanagers_discovered",
                        "Alertmanagers alerts are sent to.",
                        &[],
                    )
                    .with(&[]),
            },
        }
    }

    /// Applies the `alerting` section, the external labels and URL.
    ///
    /// # Errors
    /// An Alertmanager client cannot be built (certificate files).
    pub async fn apply_config(
        &self,
        alerting: &AlertingConfig,
        external_labels: &BTreeMap<String, String>,
        external_url: &str,
    ) -> Result<(), String> {
        let sets = alerting
            .alertmanagers
            .iter()
            .map(|c| AlertmanagerSet::new(c.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        self.metrics
            .discovered
            .set(sets.iter().map(|s| s.urls.len()).sum::<usize>() as f64);
        *self.sets.lock().await = sets;
        *self.settings.write() = Settings {
            external_labels: external_labels.clone(),
            external_url: external_url.to_string(),
            relabel: alerting.alert_relabel_configs.clone(),
        };
        Ok(())
    }

    /// Queues alerts of the rule with expression `expr`.
    pub fn send_alerts(&self, expr: &str, alerts: Vec<Alert>) {
        let settings = self.settings.read().clone();
        let generator = generator_url(&settings.external_url, expr);
        let mut queued = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let mut builder = alert.labels.builder();
            for (name, value) in &settings.external_labels {
                if builder.get(name).is_none() {
                    builder.set_mut(name.as_str(), value.as_str());
                }
            }
            let Some(labels) = relabel::process(&builder.build(), &settings.relabel) else {
                continue;
            };
            let ends_at = alert.resolved_at.or(alert.valid_until);
            queued.push(Queued {
                alert: PostableAlert {
                    labels: label_map(&labels),
                    annotations: alert.annotations,
                    starts_at: alert.fired_at,
                    ends_at,
                    generator_url: generator.clone(),
                },
                labels,
            });
        }
        self.enqueue(queued);
    }

    fn enqueue(&self, mut alerts: Vec<Queued>) {
        if alerts.is_empty() {
            return;
        }
        let mut queue = self.queue.lock();
        if alerts.len() > self.capacity {
            let excess = alerts.len() - self.capacity;
            alerts.drain(..excess);
            self.metrics.dropped.inc_by(excess as f64);
        }
        let overflow = (queue.len() + alerts.len()).saturating_sub(self.capacity);
        if overflow > 0 {
            queue.drain(..overflow);
            self.metrics.dropped.inc_by(overflow as f64);
            tracing::warn!(
                dropped = overflow,
                "Alert notification queue full, dropping alerts."
            );
        }
        queue.extend(alerts);
        self.metrics.queue_length.set(queue.len() as f64);
        drop(queue);
        self.wake.notify_one();
    }

    /// Alerts waiting to be sent.
    pub fn queue_len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Sends everything queued now, in batches, to every Alertmanager.
    pub async fn flush(&self) {
        loop {
            let batch: Vec<Queued> = {
                let mut queue = self.queue.lock();
                let n = queue.len().min(MAX_BATCH_SIZE);
                let batch = queue.drain(..n).collect();
                self.metrics.queue_length.set(queue.len() as f64);
                batch
            };
            if batch.is_empty() {
                return;
            }
            self.send_batch(&batch).await;
        }
    }

    async fn send_batch(&self, batch: &[Queued]) {
        let mut sets = self.sets.lock().await;
        let mut any_sent = false;
        let mut discovered = 0;
        for set in sets.iter_mut() {
            set.refresh();
            discovered += set.urls.len();
            let relabeled: Vec<PostableAlert>;
            let alerts: Vec<&PostableAlert> = if set.config.alert_relabel_configs.is_empty() {
                batch.iter().map(|q| &q.alert).collect()
            } else {
                relabeled = batch
                    .iter()
                    .filter_map(|q| {
                        let labels =
                            relabel::process(&q.labels, &set.config.alert_relabel_configs)?;
                        Some(PostableAlert {
                            labels: label_map(&labels),
                            ..q.alert.clone()
                        })
                    })
                    .collect();
                relabeled.iter().collect()
            };
            if alerts.is_empty() {
                continue;
            }
            let body = match serde_json::to_vec(&alerts) {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(error = %error, "Encoding alerts failed.");
                    continue;
                }
            };
            let headers = match set.config.http_client_config().request_headers() {
                Ok(headers) => headers,
                Err(error) => {
                    tracing::error!(error = %error, "Alertmanager credentials unreadable.");
                    continue;
                }
            };
            for url in &set.urls {
                let outcome = set
                    .client
                    .post(url)
                    .headers(headers.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(
                        reqwest::header::USER_AGENT,
                        concat!("Sextant/", env!("CARGO_PKG_VERSION")),
                    )
                    .timeout(set.config.timeout)
                    .body(body.clone())
                    .send()
                    .await;
                let failure = match outcome {
                    Ok(response) if response.status().is_success() => None,
                    Ok(response) => Some(format!("bad response status {}", response.status())),
                    Err(error) => Some(error.to_string()),
                };
                match failure {
                    None => {
                        any_sent = true;
                        self.metrics
                            .sent
                            .with(&[url.as_str()])
                            .inc_by(alerts.len() as f64);
                    }
                    Some(error) => {
                        self.metrics
                            .errors
                            .with(&[url.as_str()])
                            .inc_by(alerts.len() as f64);
                        tracing::error!(alertmanager = %url, count = alerts.len(), error, "Error sending alerts.");
                    }
                }
            }
        }
        self.metrics.discovered.set(discovered as f64);
        if !any_sent {
            self.metrics.dropped.inc_by(batch.len() as f64);
        }
    }

    /// Sends queued alerts as they come until `stop` resolves, then sends
    /// what is left.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = self.wake.notified() => self.flush().await,
            }
        }
        self.flush().await;
    }
}

impl AlertSink for Notifier {
    fn send(&self, expr: &str, alerts: Vec<Alert>) {
        self.send_alerts(expr, alerts);
    }
}

fn label_map(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::alerting::AlertState;

    fn alert(name: &str) -> Alert {
        Alert {
            state: AlertState::Firing,
            labels: Labels::from_pairs(&[("alertname", name), ("severity", "page")]),
            annotations: [("summary".to_string(), "s".to_string())].into(),
            value: 1.0,
            active_at: 0,
            fired_at: Some(1_700_000_000_000),
            resolved_at: None,
            last_sent_at: Some(1_700_000_000_000),
            valid_until: Some(1_700_000_240_000),
            keep_firing_since: None,
        }
    }

    #[test]
    fn payload_has_prometheus_shape() {
        let notifier = Notifier::new(10, &Registry::new());
        *notifier.settings.write() = Settings {
            external_labels: [
                ("dc".to_string(), "eu1".to_string()),
                ("severity".to_string(), "ignored".to_string()),
            ]
            .into(),
            external_url: "http://sextant:9090/".into(),
            relabel: Vec::new(),
        };
        notifier.send_alerts("up == 0", vec![alert("A")]);
        let queued = notifier.queue.lock()[0].alert.clone();
        let json = serde_json::to_string(&queued).unwrap();
        let body = format!("[{json}]");
        let doc = include_str!("../../docs/format/alertmanager-payload.md");
        assert!(
            doc.contains(&format!("\n{body}\n")),
            "the example in docs/format/alertmanager-payload.md is not what is sent: {body}"
        );
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let registry = Registry::new();
        let notifier = Notifier::new(3, &registry);
        notifier.send_alerts("x", vec![alert("A"), alert("B")]);
        notifier.send_alerts("x", vec![alert("C"), alert("D")]);
        let names: Vec<String> = notifier
            .queue
            .lock()
            .iter()
            .map(|q| q.alert.labels["alertname"].clone())
            .collect();
        assert_eq!(names, ["B", "C", "D"]);
        assert!(
            registry
                .render()
                .contains("sextant_notifications_dropped_total 1\n")
        );
    }

    #[test]
    fn alertmanager_urls_follow_scheme_prefix_and_relabeling() {
        let config: AlertmanagerConfig = serde_yaml::from_str(
            "scheme: https\npath_prefix: /am/\nstatic_configs: [{targets: ['a:9093', 'b:9093']}]\nrelabel_configs: [{source_labels: [__address__], regex: 'b:.*', action: drop}]\n",
        )
        .unwrap();
        let set = AlertmanagerSet::new(config).unwrap();
        assert_eq!(set.urls, ["https://a:9093/am/api/v2/alerts"]);
    }
}
