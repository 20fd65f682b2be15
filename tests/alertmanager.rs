#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Alerts delivered to the real Alertmanager (Debian's
//! `prometheus-alertmanager`, started on a free loopback port): a rules
//! file's alert fires, appears in Alertmanager's `GET /api/v2/alerts` with
//! its labels (external labels included, relabeling applied) and
//! annotations, and is resolved there when its condition ends. Evaluation
//! times are chosen by the test (just before the wall clock, which
//! Alertmanager uses to decide what is resolved).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use sextant::backend::LocalBackend;
use sextant::config::Config;
use sextant::metrics::Registry;
use sextant::rules::group::{AlertSink, EvalContext, EvalOptions};
use sextant::rules::manager::load_groups;
use sextant::rules::metrics::RuleMetrics;
use sextant::rules::notifier::Notifier;
use tsdb::clock::{Clock, ManualClock, SystemClock};
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, STALE_NAN, Sample};
use tsdb::promql::EngineOptions;
use tsdb::storage::{Appendable, Queryable};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const MIN: i64 = 60_000;

/// Alertmanager on a loopback port, killed on drop.
struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_alertmanager() -> Option<Alertmanager> {
    if !Path::new(ALERTMANAGER).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{ALERTMANAGER} is required under CI=true (Debian package prometheus-alertmanager)"
        );
        eprintln!("skipping: {ALERTMANAGER} not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let am = Alertmanager {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("{}/-/ready", am.url)).send().await
            && response.status().is_success()
        {
            return Some(am);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Alertmanager did not become ready at {}", am.url);
}

async fn alerts(am: &Alertmanager) -> Vec<serde_json::Value> {
    reqwest::get(format!("{}/api/v2/alerts", am.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_resolve_in_alertmanager() {
    let Some(am) = start_alertmanager().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: availability
    interval: 1m
    rules:
      - alert: InstanceDown
        expr: up == 0
        for: 1m
        labels:
          severity: page
          team: "{{ $labels.job }}-oncall"
        annotations:
          summary: "Instance {{ $labels.instance }} down"
          description: "{{ $labels.instance }} has been down (value {{ $value }}), see {{ $externalURL }}"
"#,
    )
    .unwrap();
    let address = am.url.trim_start_matches("http://");
    let config = Config::from_yaml(
        &format!(
            r#"
global:
  external_labels:
    dc: eu1
alerting:
  alert_relabel_configs:
    - action: labeldrop
      regex: team
  alertmanagers:
    - static_configs:
        - targets: ['{address}']
      timeout: 5s
"#
        ),
        "test.yml",
    )
    .unwrap();

    let registry = Registry::new();
    let notifier = Arc::new(Notifier::new(100, &registry));
    let external_url = "http://sextant.example:9090";
    notifier
        .apply_config(
            &config.alerting,
            &config.global.external_labels,
            external_url,
        )
        .await
        .unwrap();
    let head = Arc::new(Head::new(HeadOptions::default()));
    let backend = LocalBackend::new(
        Arc::clone(&head) as Arc<dyn Queryable>,
        EngineOptions::default(),
        2,
        &registry,
    );
    let ctx = EvalContext {
        backend: Arc::new(backend),
        appendable: Arc::clone(&head) as Arc<dyn Appendable>,
        queryable: Arc::clone(&head) as Arc<dyn Queryable>,
        clock: Arc::new(ManualClock::new(0)),
        options: RwLock::new(EvalOptions {
            external_labels: config.global.external_labels.clone(),
            external_url: external_url.into(),
            ..EvalOptions::default()
        }),
        notify: Some(Arc::clone(&notifier) as Arc<dyn AlertSink>),
        metrics: RuleMetrics::register(&registry),
    };
    let mut groups = load_groups(
        &[rules.display().to_string()],
        Duration::from_secs(60),
        true,
    )
    .unwrap();
    let group = &mut groups[0];

    // Three minutes ago the target went down.
    let base = SystemClock.now_ms() - 3 * MIN;
    let up = Labels::from_pairs(&[("__name__", "up"), ("job", "node"), ("instance", "h1:9100")]);
    let append = |t: i64, v: f64| {
        let mut app = head.appender();
        app.append(None, &up, Sample::new(t, v)).unwrap();
        app.commit().unwrap();
    };
    append(base, 0.0);
    group.iterate(base, &ctx).await;
    notifier.flush().await;
    assert!(alerts(&am).await.is_empty(), "pending alerts are not sent");

    append(base + MIN, 0.0);
    group.iterate(base + MIN, &ctx).await;
    notifier.flush().await;
    let got = alerts(&am).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let alert = &got[0];
    assert_eq!(
        alert["labels"],
        serde_json::json!({
            "alertname": "InstanceDown",
            "dc": "eu1",
            "instance": "h1:9100",
            "job": "node",
            "severity": "page",
        })
    );
    assert_eq!(
        alert["annotations"],
        serde_json::json!({
            "summary": "Instance h1:9100 down",
            "description": "h1:9100 has been down (value 0), see http://sextant.example:9090",
        })
    );
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(
        alert["generatorURL"],
        "http://sextant.example:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
    );
    let starts_at =
        chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap()).unwrap();
    assert_eq!(
        starts_at.timestamp_millis(),
        base + MIN,
        "startsAt is when it fired"
    );
    let ends_at = chrono::DateTime::parse_from_rfc3339(alert["endsAt"].as_str().unwrap()).unwrap();
    assert_eq!(
        ends_at.timestamp_millis(),
        base + MIN + 4 * MIN,
        "the lease: 4 x max(interval, resend delay)"
    );

    // The target is back: the alert resolves and Alertmanager stops listing it.
    append(base + 2 * MIN, STALE_NAN);
    group.iterate(base + 2 * MIN, &ctx).await;
    notifier.flush().await;
    let got = alerts(&am).await;
    assert!(got.is_empty(), "resolved alerts are not listed: {got:#?}");
    let metrics = registry.render();
    let sent = format!(
        "sextant_notifications_sent_total{{alertmanager=\"{}/api/v2/alerts\"}} 2\n",
        am.url
    );
    assert!(metrics.contains(&sent), "{metrics}");
}
