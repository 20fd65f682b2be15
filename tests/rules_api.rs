#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `/api/v1/rules` and `/api/v1/alerts` over rule groups evaluated at
//! chosen timestamps: Prometheus's JSON shapes and the `type`, `rule_name[]`,
//! `rule_group[]` and `file[]` filters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde_json::Value;
use sextant::api::{Api, HeadStatus, ServerInfo, Sources, TargetsSnapshot};
use sextant::backend::LocalBackend;
use sextant::metrics::Registry;
use sextant::rules::group::{EvalContext, EvalOptions};
use sextant::rules::manager::group_from_file;
use sextant::rules::metrics::RuleMetrics;
use sextant::server::http::{self, Lifecycle};
use tokio::net::TcpListener;
use tsdb::clock::ManualClock;
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Sample};
use tsdb::promql::EngineOptions;
use tsdb::storage::{Appendable, Queryable};

const T0: i64 = 1_700_000_000_000;

const RULES: &str = r#"
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Down
        expr: up == 0
        for: 1m
        labels: {severity: page}
        annotations: {summary: "{{ $labels.instance }} down"}
"#;

async fn serve() -> String {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let registry = Registry::new();
    let backend = Arc::new(LocalBackend::new(
        Arc::clone(&head) as Arc<dyn Queryable>,
        EngineOptions::default(),
        2,
        &registry,
    ));
    let ctx = EvalContext {
        backend: Arc::clone(&backend),
        appendable: Arc::clone(&head) as Arc<dyn Appendable>,
        queryable: Arc::clone(&head) as Arc<dyn Queryable>,
        clock: Arc::new(ManualClock::new(T0)),
        options: RwLock::new(EvalOptions::default()),
        notify: None,
        metrics: RuleMetrics::register(&registry),
    };
    let file = sextant::rules::file::parse(RULES).unwrap();
    let mut group = group_from_file(
        file.groups.into_iter().next().unwrap(),
        "/etc/rules.yml",
        Duration::from_secs(60),
        true,
    );
    let mut app = head.appender();
    let up = Labels::from_pairs(&[("__name__", "up"), ("job", "node"), ("instance", "a")]);
    app.append(None, &up, Sample::new(T0, 0.0)).unwrap();
    app.commit().unwrap();
    group.iterate(T0, &ctx).await;
    let status = Arc::new(group.status());

    let info = Arc::new(ServerInfo::new(
        T0,
        BTreeMap::new(),
        "15d".into(),
        String::new(),
    ));
    let sources = Sources {
        head_status: Box::new(HeadStatus::default),
        targets: Box::new(TargetsSnapshot::default),
        metadata: Box::new(Vec::new),
    };
    let api = Arc::new(
        Api::new(backend, info, Arc::new(ManualClock::new(T0)), sources)
            .with_rules(Box::new(move || vec![Arc::clone(&status)])),
    );
    let (reloads, _) = tokio::sync::mpsc::channel(1);
    let registry = Arc::new(Registry::new());
    let serving = http::WebServing::plain(&registry);
    let lifecycle = Arc::new(Lifecycle::new(registry, reloads, true));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(http::serve(
        listener,
        http::router(api, lifecycle),
        serving,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

async fn get(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_alerts_in_prometheus_shape() {
    let base = serve().await;
    let body = get(&format!("{base}/api/v1/rules")).await;
    assert_eq!(body["status"], "success");
    let group = &body["data"]["groups"][0];
    assert_eq!(group["name"], "g");
    assert_eq!(group["file"], "/etc/rules.yml");
    assert_eq!(group["interval"], 60.0);
    assert_eq!(group["limit"], 0);
    assert!(group["evaluationTime"].is_number());
    assert!(group["lastEvaluation"].as_str().unwrap().ends_with('Z'));
    let recording = &group["rules"][0];
    assert_eq!(recording["type"], "recording");
    assert_eq!(recording["name"], "job:up:sum");
    assert_eq!(recording["query"], "sum by (job) (up)");
    assert_eq!(recording["health"], "ok");
    assert_eq!(recording["labels"], serde_json::json!({}));
    assert!(recording.get("lastError").is_none());
    assert!(recording.get("alerts").is_none());
    let alerting = &group["rules"][1];
    assert_eq!(alerting["type"], "alerting");
    assert_eq!(alerting["state"], "pending");
    assert_eq!(alerting["duration"], 60.0);
    assert_eq!(alerting["keepFiringFor"], 0.0);
    assert_eq!(alerting["labels"], serde_json::json!({"severity": "page"}));
    let alert = &alerting["alerts"][0];
    assert_eq!(
        alert,
        &serde_json::json!({
            "labels": {"alertname": "Down", "instance": "a", "job": "node", "severity": "page"},
            "annotations": {"summary": "a down"},
            "state": "pending",
            "activeAt": "2023-11-14T22:13:20Z",
            "value": "0e+00",
        })
    );

    let only_alerts = get(&format!("{base}/api/v1/rules?type=alert")).await;
    let rules = only_alerts["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["name"], "Down");
    let by_name = get(&format!("{base}/api/v1/rules?rule_name[]=job:up:sum")).await;
    assert_eq!(
        by_name["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let other_file = get(&format!("{base}/api/v1/rules?file[]=/other.yml")).await;
    assert_eq!(other_file["data"]["groups"], serde_json::json!([]));
    let other_group = get(&format!("{base}/api/v1/rules?rule_group[]=h")).await;
    assert_eq!(other_group["data"]["groups"], serde_json::json!([]));
    let bad = reqwest::get(format!("{base}/api/v1/rules?type=x"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["errorType"], "bad_data");

    let alerts = get(&format!("{base}/api/v1/alerts")).await;
    assert_eq!(alerts["data"]["alerts"][0], *alert);
}
