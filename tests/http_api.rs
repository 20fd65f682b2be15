#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HTTP surface over real HTTP on 127.0.0.1, with the real engine over
//! an in-memory storage double: every API endpoint and error case, the
//! lifecycle endpoints and `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use expect_test::{Expect, ExpectFile, expect, expect_file};
use sextant::api::{
    ActiveTarget, Api, DroppedTarget, HeadStatus, Health, MetricMetadata, ServerInfo, Sources,
    TargetsSnapshot,
};
use sextant::backend::LocalBackend;
use sextant::metrics::Registry;
use sextant::server::http::{self, Lifecycle, ReloadRequest};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tsdb::clock::ManualClock;
use tsdb::model::{Labels, Sample};
use tsdb::promql::EngineOptions;

mod common;
use common::memory::MemoryStorage;

const T0: i64 = 1_700_000_000_000;

fn storage() -> MemoryStorage {
    let samples: Vec<Sample> = (0..10)
        .map(|i| Sample::new(T0 + i * 15_000, i as f64))
        .collect();
    let series = |pairs: &[(&str, &str)]| (Labels::from_pairs(pairs), samples.clone());
    MemoryStorage {
        series: vec![
            series(&[("__name__", "up"), ("job", "node"), ("instance", "a:9100")]),
            series(&[("__name__", "up"), ("job", "node"), ("instance", "b:9100")]),
            series(&[
                ("__name__", "up"),
                ("job", "sextant"),
                ("instance", "localhost:9090"),
            ]),
            series(&[
                ("__name__", "http_requests_total"),
                ("job", "sextant"),
                ("http.status_code", "200"),
            ]),
        ],
    }
}

/// Two pools: `node` with one healthy target and one dropped, `sextant`
/// with one failing target never scraped successfully.
fn targets() -> TargetsSnapshot {
    let discovered = |address: &str, job: &str| {
        Labels::from_pairs(&[
            ("__address__", address),
            ("__metrics_path__", "/metrics"),
            ("__scheme__", "http"),
            ("job", job),
        ])
    };
    let labels = |address: &str, job: &str| {
        Labels::from_pairs(&[
            ("__address__", address),
            ("__metrics_path__", "/metrics"),
            ("__scheme__", "http"),
            ("instance", address),
            ("job", job),
        ])
    };
    TargetsSnapshot {
        active: vec![
            ActiveTarget {
                pool: "sextant".into(),
                discovered_labels: discovered("localhost:9090", "sextant"),
                labels: labels("localhost:9090", "sextant"),
                scrape_url: "http://localhost:9090/metrics".into(),
                health: Health::Unknown,
                last_error: String::new(),
                last_scrape_ms: None,
                last_scrape_duration: std::time::Duration::ZERO,
                interval: std::time::Duration::from_secs(15),
                timeout: std::time::Duration::from_secs(10),
            },
            ActiveTarget {
                pool: "node".into(),
                discovered_labels: discovered("a:9100", "node"),
                labels: labels("a:9100", "node"),
                scrape_url: "http://a:9100/metrics".into(),
                health: Health::Down,
                last_error: "connection refused".into(),
                last_scrape_ms: Some(T0 + 1_500),
                last_scrape_duration: std::time::Duration::from_millis(2),
                interval: std::time::Duration::from_secs(60),
                timeout: std::time::Duration::from_secs(10),
            },
        ],
        dropped: vec![DroppedTarget {
            pool: "node".into(),
            discovered_labels: discovered("b:9100", "node"),
        }],
        // As with keep_dropped_targets: 1, one of two dropped targets kept.
        dropped_counts: [("node".to_string(), 2), ("sextant".to_string(), 0)].into(),
    }
}

struct TestServer {
    base: String,
    client: reqwest::Client,
    reloads: mpsc::Receiver<ReloadRequest>,
    lifecycle: Arc<Lifecycle>,
}

async fn start() -> TestServer {
    let clock = Arc::new(ManualClock::new(T0 + 150_000));
    let mut flags = BTreeMap::new();
    flags.insert("storage.tsdb.path".to_string(), "data/".to_string());
    let info = Arc::new(ServerInfo::new(
        T0,
        flags,
        "15d".into(),
        "global:\n  scrape_interval: 15s\n".into(),
    ));
    let backend = LocalBackend::new(
        Arc::new(storage()),
        EngineOptions::default(),
        4,
        &Registry::new(),
    );
    let sources = Sources {
        head_status: Box::new(|| HeadStatus {
            n_series: 4,
            n_chunks: 4,
            min_t: Some(T0),
            max_t: Some(T0 + 135_000),
        }),
        targets: Box::new(targets),
        metadata: Box::new(|| {
            let gauge = |help: &str| MetricMetadata {
                kind: "gauge".into(),
                help: help.into(),
                unit: String::new(),
            };
            vec![
                ("up".into(), gauge("Whether the target is up.")),
                ("up".into(), gauge("Whether the target is up.")),
                ("up".into(), gauge("Up, differently.")),
                ("go_goroutines".into(), gauge("Goroutines.")),
            ]
        }),
    };
    let api = Arc::new(Api::new(Arc::new(backend), info, clock, sources));
    let (reload_tx, reloads) = mpsc::channel(1);
    let registry = Arc::new(Registry::new());
    let lifecycle = Arc::new(Lifecycle::new(Arc::clone(&registry), reload_tx, true));
    let serving = http::WebServing::plain(&registry);
    let router = http::router(api, Arc::clone(&lifecycle));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(http::serve(
        listener,
        router,
        serving,
        std::future::pending(),
    ));
    TestServer {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        reloads,
        lifecycle,
    }
}

impl TestServer {
    async fn get(&self, path_and_query: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

#[track_caller]
fn check(response: (u16, String), status: u16, body: Expect) {
    assert_eq!(response.0, status, "{}", response.1);
    body.assert_eq(&response.1);
}

/// A golden response kept in `tests/data/http_api/`, the examples of
/// `docs/format/http-api.md`.
#[track_caller]
fn check_file(response: (u16, String), status: u16, body: ExpectFile) {
    assert_eq!(response.0, status, "{}", response.1);
    body.assert_eq(&response.1);
}

#[tokio::test]
async fn series() {
    let server = start().await;
    check_file(
        server
            .get("/api/v1/series?match[]=up{job=%22node%22}")
            .await,
        200,
        expect_file!["data/http_api/series.json"],
    );
    // Two selectors, overlapping: merged, sorted, deduplicated; POST form.
    check(
        server
            .post_form(
                "/api/v1/series",
                &[("match[]", "up"), ("match[]", "{job=\"sextant\"}")],
            )
            .await,
        200,
        expect![[
            r#"{"status":"success","data":[{"__name__":"http_requests_total","http.status_code":"200","job":"sextant"},{"__name__":"up","instance":"a:9100","job":"node"},{"__name__":"up","instance":"b:9100","job":"node"},{"__name__":"up","instance":"localhost:9090","job":"sextant"}]}"#
        ]],
    );
    check(
        server.get("/api/v1/series?match[]=up&limit=1").await,
        200,
        expect![[
            r#"{"status":"success","data":[{"__name__":"up","instance":"a:9100","job":"node"}],"warnings":["results truncated due to limit"]}"#
        ]],
    );
    // Outside the time range nothing matches.
    check(
        server
            .get("/api/v1/series?match[]=up&start=0&end=1000")
            .await,
        200,
        expect![[r#"{"status":"success","data":[]}"#]],
    );
    check(
        server.get("/api/v1/series").await,
        400,
        expect![[
            r#"{"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}"#
        ]],
    );
    check(
        server.get("/api/v1/series?match[]=rate(up[5m])").await,
        400,
        expect![[
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"match[]\": parse error: expected a series selector, got \"rate(up[5m])\""}"#
        ]],
    );
    check(
        server
            .get("/api/v1/series?match[]=up&start=yesterday")
            .await,
        400,
        expect![[
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": Invalid time value for 'start': cannot parse \"yesterday\" to a valid timestamp"}"#
        ]],
    );
    check(
        server.get("/api/v1/series?match[]=up&limit=-1").await,
        400,
        expect![[
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\": limit must be non-negative"}"#
        ]],
    );
}

#[tokio::test]
async fn instant_queries() {
    let server = start().await;
    // Samples every 15 s from T0 to T0+135 s; the server's now is T0+150 s.
    check_file(
        server.get("/api/v1/query?query=up{job=%22node%22}").await,
        200,
        expect_file!["data/http_api/query_vector.json"],
    );
    check(
        server
            .post_form(
                "/api/v1/query",
                &[("query", "sum by (job) (up) / 3"), ("time", "1700000015.5")],
            )
            .await,
        200,
        expect![[
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"node"},"value":[1700000015.500,"0.6666666666666666"]},{"metric":{"job":"sextant"},"value":[1700000015.500,"0.3333333333333333"]}]}}"#
        ]],
    );
    check(
        server
            .get("/api/v1/query?query=1e-7&time=1700000000.001")
            .await,
        200,
        expect![[
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.001,"0.0000001"]}}"#
        ]],
    );
    check(
        server.get("/api/v1/query?query=%22hi%22&time=2").await,
        200,
        expect![[r#"{"status":"success","data":{"resultType":"string","result":[2,"hi"]}}"#]],
    );
    check(
        server
            .get("/api/v1/query?query=vector(1e21)%20or%20vector(-1e-7)&time=2")
            .await,
        200,
        expect![[
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[2,"1e+21"]}]}}"#
        ]],
    );
    check(
        server
            .get("/api/v1/query?query=up[30s]&time=1700000030")
            .await,
        200,
        expect![[
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"a:9100","job":"node"},"values":[[1700000015,"1"],[1700000030,"2"]]},{"metric":{"__name__":"up","instance":"b:9100","job":"node"},"values":[[1700000015,"1"],[1700000030,"2"]]},{"metric":{"__name__":"up","instance":"localhost:9090","job":"sextant"},"values":[[1700000015,"1"],[1700000030,"2"]]}]}}"#
        ]],
    );
    check(
        server.get("/api/v1/query?query=up&limit=1").await,
        200,
        expect![[
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a:9100","job":"node"},"value":[1700000150,"9"]}]},"warnings":["results truncated due to limit"]}"#
        ]],
    );
    let (status, body) = server.get("/api/v1/query?query=up&stats=all").await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["data"]["stats"]["timings"]["execTotalTime"].is_f64(),
        "{body}"
    );
}

#[tokio::test]
async fn range_queries() {
    let server = start().await;
    check_file(
        server
            .post_form(
                "/api/v1/query_range",
                &[
                    ("query", "sum(up)"),
                    ("start", "1700000000"),
                    ("end", "2023-11-14T22:14:20Z"),
                    ("step", "30s"),
                ],
            )
            .await,
        200,
        expect_file!["data/http_api/query_range.json"],
    );
    check(
        server
            .get("/api/v1/query_range?query=time()&start=0&end=1&step=0.5")
            .await,
        200,
        expect![[
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[0,"0"],[0.500,"0.5"],[1,"1"]]}]}}"#
        ]],
    );
}

#[tokio::test]
async fn query_errors() {
    let server = start().await;
    let cases: [(&str, u16, Expect); 10] = [
        (
            "/api/v1/query?query=sum(up",
            400,
            expect![[
                r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:7: parse error: unclosed left parenthesis"}"#
            ]],
        ),
        (
            "/api/v1/query",
            400,
            expect![[
                r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:1: parse error: no expression found in input"}"#
            ]],
        ),
        (
            "/api/v1/query?query=up&time=noon",
            400,
            expect![[
                r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"time\": Invalid time value for 'time': cannot parse \"noon\" to a valid timestamp"}"#
            ]],
        ),
        (
            "/api/v1/query?query=up*on(job)up",
            422,
            expect![[
                r#"{"status":"error","errorType":"execution","error":"found duplicate series for the match group {job=\"node\"} on the right hand-side of the operation: [{__name__=\"up\", instance=\"a:9100\", job=\"node\"}, {__name__=\"up\", instance=\"b:9100\", job=\"node\"}];many-to-many matching not allowed: matching labels must be unique on one side"}"#
            ]],
        ),
        (
            "/api/v1/query?query=up&timeout=0",
            503,
            expect![[
                r#"{"status":"error","errorType":"timeout","error":"query timed out in query preparation"}"#
            ]],
        ),
        (
            "/api/v1/query_range?query=up&start=10&end=0&step=1",
            400,
            expect![[
                r#"{"status":"error","errorType":"bad_data","error":"end timestamp must not be before start time"}"#
            ]],
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=10&step=-1",
            400,
            expect![[
                r#"{"status":"error","errorType":"bad_data","error":"zero or negative query resolution step widths are not accepted. Try a positive integer"}"#
            ]],
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=100000&step=1",
            400,
            expect![[
                r#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}"#
            ]],
        ),
        (
            "/api/v1/query_range?query=up[5m]&start=0&end=10&step=1",
            400,
            expect![[
                r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"}"#
            ]],
        ),
        (
            "/api/v1/query_range?query=up&end=10&step=1",
            400,
            expect![[
                r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": cannot parse \"\" to a valid timestamp"}"#
            ]],
        ),
    ];
    for (path, status, body) in cases {
        check(server.get(path).await, status, body);
    }
}

#[tokio::test]
async fn labels_and_label_values() {
    let server = start().await;
    check(
        server.get("/api/v1/labels").await,
        200,
        expect![[
            r#"{"status":"success","data":["__name__","http.status_code","instance","job"]}"#
        ]],
    );
    check(
        server
            .post_form("/api/v1/labels", &[("match[]", "up"), ("limit", "2")])
            .await,
        200,
        expect![[
            r#"{"status":"success","data":["__name__","instance"],"warnings":["results truncated due to limit"]}"#
        ]],
    );
    check(
        server.get("/api/v1/label/job/values").await,
        200,
        expect![[r#"{"status":"success","data":["node","sextant"]}"#]],
    );
    check(
        server
            .get("/api/v1/label/__name__/values?match[]={job=%22node%22}")
            .await,
        200,
        expect![[r#"{"status":"success","data":["up"]}"#]],
    );
    // A UTF-8 label name, escaped for the URL path.
    check(
        server
            .get("/api/v1/label/U__http_2e_status__code/values")
            .await,
        200,
        expect![[r#"{"status":"success","data":["200"]}"#]],
    );
    check(
        server.get("/api/v1/label/nothing/values").await,
        200,
        expect![[r#"{"status":"success","data":[]}"#]],
    );
    // Label values are GET only, as in Prometheus.
    let (status, _) = server.post_form("/api/v1/label/job/values", &[]).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn format_query_and_exemplars() {
    let server = start().await;
    check(
        server
            .post_form(
                "/api/v1/format_query",
                &[("query", "sum by(job)(rate(foo[5m]))/bar")],
            )
            .await,
        200,
        expect![[r#"{"status":"success","data":"sum by (job) (rate(foo[5m])) / bar"}"#]],
    );
    check(
        server.get("/api/v1/format_query?query=foo{").await,
        400,
        expect![[
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected end of input inside braces"}"#
        ]],
    );
    // Grafana's exemplar probe: milliseconds sent as seconds.
    check(
        server
            .get("/api/v1/query_exemplars?query=test&start=1700000000000&end=1700001800000")
            .await,
        200,
        expect![[r#"{"status":"success","data":[]}"#]],
    );
}

#[tokio::test]
async fn status_endpoints() {
    let server = start().await;
    check(
        server.get("/api/v1/status/buildinfo").await,
        200,
        expect![[
            r#"{"status":"success","data":{"version":"3.0.0","revision":"sextant-0.1.0","branch":"","buildUser":"","buildDate":"","goVersion":""}}"#
        ]],
    );
    check(
        server.get("/api/v1/status/config").await,
        200,
        expect![[r#"{"status":"success","data":{"yaml":"global:\n  scrape_interval: 15s\n"}}"#]],
    );
    check(
        server.get("/api/v1/status/flags").await,
        200,
        expect![[r#"{"status":"success","data":{"storage.tsdb.path":"data/"}}"#]],
    );
    check(
        server.get("/api/v1/status/tsdb?limit=2").await,
        200,
        expect![[
            r#"{"status":"success","data":{"headStats":{"numSeries":4,"numLabelPairs":8,"chunkCount":4,"minTime":1700000000000,"maxTime":1700000135000},"seriesCountByMetricName":[{"name":"up","value":3},{"name":"http_requests_total","value":1}],"labelValueCountByLabelName":[{"name":"instance","value":3},{"name":"__name__","value":2}],"memoryInBytesByLabelName":[{"name":"instance","value":26},{"name":"__name__","value":21}],"seriesCountByLabelValuePair":[{"name":"__name__=up","value":3},{"name":"job=node","value":2}]}}"#
        ]],
    );
    check(
        server.get("/api/v1/status/tsdb?limit=0").await,
        400,
        expect![[
            r#"{"status":"error","errorType":"bad_data","error":"limit must be a positive number"}"#
        ]],
    );
    let (status, body) = server.get("/api/v1/status/runtimeinfo").await;
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["data"]["startTime"], "2023-11-14T22:13:20Z");
    assert_eq!(info["data"]["serverTime"], "2023-11-14T22:15:50Z");
    assert_eq!(info["data"]["reloadConfigSuccess"], true);
    assert_eq!(info["data"]["storageRetention"], "15d");
}

#[tokio::test]
async fn targets_and_metadata() {
    let server = start().await;
    check_file(
        server.get("/api/v1/targets").await,
        200,
        expect_file!["data/http_api/targets.json"],
    );
    check(
        server.get("/api/v1/targets?state=dropped").await,
        200,
        expect![[
            r#"{"status":"success","data":{"activeTargets":[],"droppedTargets":[{"discoveredLabels":{"__address__":"b:9100","__metrics_path__":"/metrics","__scheme__":"http","job":"node"},"scrapePool":"node"}],"droppedTargetCounts":{"node":2,"sextant":0}}}"#
        ]],
    );
    check(
        server
            .get("/api/v1/targets?state=active&scrapePool=sextant")
            .await,
        200,
        expect![[
            r#"{"status":"success","data":{"activeTargets":[{"discoveredLabels":{"__address__":"localhost:9090","__metrics_path__":"/metrics","__scheme__":"http","job":"sextant"},"labels":{"instance":"localhost:9090","job":"sextant"},"scrapePool":"sextant","scrapeUrl":"http://localhost:9090/metrics","globalUrl":"http://localhost:9090/metrics","lastError":"","lastScrape":"0001-01-01T00:00:00Z","lastScrapeDuration":0.0,"health":"unknown","scrapeInterval":"15s","scrapeTimeout":"10s"}],"droppedTargets":[],"droppedTargetCounts":null}}"#
        ]],
    );
    check(
        server.get("/api/v1/metadata").await,
        200,
        expect![[
            r#"{"status":"success","data":{"go_goroutines":[{"type":"gauge","help":"Goroutines.","unit":""}],"up":[{"type":"gauge","help":"Whether the target is up.","unit":""},{"type":"gauge","help":"Up, differently.","unit":""}]}}"#
        ]],
    );
    check(
        server
            .get("/api/v1/metadata?metric=up&limit_per_metric=1")
            .await,
        200,
        expect![[
            r#"{"status":"success","data":{"up":[{"type":"gauge","help":"Whether the target is up.","unit":""}]}}"#
        ]],
    );
    check(
        server.get("/api/v1/metadata?limit=1").await,
        200,
        expect![[
            r#"{"status":"success","data":{"go_goroutines":[{"type":"gauge","help":"Goroutines.","unit":""}]}}"#
        ]],
    );
}

#[tokio::test]
async fn gzip_and_cors() {
    let server = start().await;
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let response = client
        .get(format!("{}/api/v1/series?match[]=up", server.base))
        .header("Accept-Encoding", "gzip")
        .header("Origin", "http://grafana.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-expose-headers"], "date");
    // A browser's preflight.
    let preflight = client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/query", server.base),
        )
        .header("Origin", "http://grafana.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 200);
    assert!(
        preflight.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
}

#[tokio::test]
async fn unknown_endpoints_are_not_found() {
    let server = start().await;
    check(
        server.get("/api/v1/nope").await,
        404,
        expect![[r#"{"status":"error","errorType":"not_found","error":"unknown API endpoint"}"#]],
    );
    let (status, _) = server.get("/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn lifecycle_and_metrics() {
    let mut server = start().await;
    check(
        server.get("/-/healthy").await,
        200,
        expect![[r#"
            Sextant Server is Healthy.
        "#]],
    );
    assert_eq!(server.get("/-/ready").await.0, 503);
    server.lifecycle.set_ready(true);
    assert_eq!(server.get("/-/ready").await.0, 200);

    // A reload is handed to whoever owns the config; its outcome is the
    // answer.
    let reload = {
        let client = server.client.clone();
        let url = format!("{}/-/reload", server.base);
        tokio::spawn(async move { client.post(url).send().await.unwrap() })
    };
    let reply = server.reloads.recv().await.unwrap();
    reply.send(Err("bad config: line 3".into())).unwrap();
    let response = reload.await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert_eq!(
        response.text().await.unwrap(),
        "failed to reload config: bad config: line 3\n"
    );

    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"sextant_http_requests_total{handler="/-/ready",code="503"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sextant_http_request_duration_seconds_count{handler="/-/reload"} 1"#),
        "{metrics}"
    );
}
