//! Scrape loops against real HTTP exporters on 127.0.0.1, storing into an
//! in-memory storage: what is stored must be what Prometheus stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::{Exporter, Exposed, MemStorage};
use expect_test::expect;
use scraper::exposition::{ACCEPT_HEADER, Format};
use scraper::scrape_loop::{
    Fetch, Fetched, HttpFetcher, Limits, Retiring, ScrapeError, ScrapeLoop, ScrapeReport, Stop,
    TargetOptions, default_client, first_scrape_delay,
};
use tsdb::clock::{Clock, ManualClock};
use tsdb::model::{Labels, is_stale_nan};

fn options(exporter: &Exporter) -> TargetOptions {
    TargetOptions::new(Labels::from_pairs(&[
        ("instance", exporter.addr.to_string()),
        ("job", "test".to_string()),
    ]))
}

struct Harness {
    exporter: Exporter,
    storage: Arc<MemStorage>,
    clock: Arc<ManualClock>,
    scrape_loop: ScrapeLoop<HttpFetcher>,
}

impl Harness {
    async fn new(exposed: Exposed, configure: impl FnOnce(&mut TargetOptions)) -> Harness {
        Harness::with_path(exposed, "/metrics", configure).await
    }

    async fn with_path(
        exposed: Exposed,
        path: &str,
        configure: impl FnOnce(&mut TargetOptions),
    ) -> Harness {
        let exporter = Exporter::start(exposed).await;
        let mut options = options(&exporter);
        configure(&mut options);
        let fetcher = HttpFetcher::new(
            default_client().unwrap(),
            exporter.url(path),
            options.timeout,
            options.limits.body_size_limit,
        );
        let storage = Arc::new(MemStorage::default());
        let clock = Arc::new(ManualClock::new(1_000));
        let scrape_loop = ScrapeLoop::new(options, fetcher, storage.clone(), clock.clone());
        Harness {
            exporter,
            storage,
            clock,
            scrape_loop,
        }
    }

    /// Scrapes at `t` ms.
    async fn scrape_at(&mut self, t: i64) -> ScrapeReport {
        self.clock.set(t);
        self.scrape_loop.scrape_once().await
    }

    /// The stored samples at `t` without the synthetic series, one per line,
    /// labels without `instance`.
    fn stored_at(&self, t: i64) -> String {
        let instance = format!(", instance=\"{}\"", self.exporter.addr);
        self.storage
            .at(t)
            .into_iter()
            .filter(|(labels, _)| {
                !labels.contains("\"scrape_") && !labels.starts_with("{__name__=\"up\"")
            })
            .map(|(labels, v)| format!("{} {v}\n", labels.replace(&instance, "")))
            .collect()
    }

    /// `up`, samples scraped, post relabeling and series added at `t`.
    fn report_at(&self, t: i64) -> [f64; 4] {
        let instance = self.exporter.addr.to_string();
        let value = |name: &str| {
            self.storage
                .value_at(
                    &[("__name__", name), ("instance", &instance), ("job", "test")],
                    t,
                )
                .unwrap_or(f64::NAN)
        };
        [
            value("up"),
            value("scrape_samples_scraped"),
            value("scrape_samples_post_metric_relabeling"),
            value("scrape_series_added"),
        ]
    }
}

const BODY: &str = "# HELP a_total A counter.
# TYPE a_total counter
a_total{path=\"/x\"} 3
a_total{path=\"/y\"} 4
# TYPE b gauge
b 1.5
";

#[tokio::test]
async fn stores_what_the_exporter_serves_with_target_labels_and_report_series() {
    let mut h = Harness::new(Exposed::text(BODY), |_| {}).await;
    let report = h.scrape_at(1_000).await;
    assert_eq!(report.error, None);
    expect![[r#"
        {__name__="a_total", job="test", path="/x"} 3
        {__name__="a_total", job="test", path="/y"} 4
        {__name__="b", job="test"} 1.5
    "#]]
    .assert_eq(&h.stored_at(1_000));
    assert_eq!(h.report_at(1_000), [1.0, 3.0, 3.0, 3.0]);
    let instance = h.exporter.addr.to_string();
    let duration = h.storage.value_at(
        &[
            ("__name__", "scrape_duration_seconds"),
            ("instance", &instance),
            ("job", "test"),
        ],
        1_000,
    );
    assert!(duration.is_some_and(|d| d >= 0.0));
    assert_eq!(h.exporter.last_accept().as_deref(), Some(ACCEPT_HEADER));
    assert_eq!(h.storage.commits(), 1);

    // Steady state: the same series again, nothing new.
    h.scrape_at(2_000).await;
    assert_eq!(h.report_at(2_000), [1.0, 3.0, 3.0, 0.0]);
    assert_eq!(h.storage.series().len(), 3 + 5);
}

#[tokio::test]
async fn vanished_series_get_staleness_markers() {
    let mut h = Harness::new(Exposed::text(BODY), |_| {}).await;
    h.scrape_at(1_000).await;
    h.exporter
        .expose(Exposed::text("a_total{path=\"/x\"} 5\nc 1\n"));
    h.scrape_at(2_000).await;
    expect![[r#"
        {__name__="a_total", job="test", path="/x"} 5
        {__name__="a_total", job="test", path="/y"} stale
        {__name__="b", job="test"} stale
        {__name__="c", job="test"} 1
    "#]]
    .assert_eq(&h.stored_at(2_000));
    assert_eq!(h.report_at(2_000), [1.0, 2.0, 2.0, 1.0]);
    // Gone series are not marked again.
    h.scrape_at(3_000).await;
    assert!(!h.stored_at(3_000).contains("stale"));
}

#[tokio::test]
async fn a_failed_scrape_marks_every_series_stale_and_reports_down() {
    let mut h = Harness::new(Exposed::text(BODY), |_| {}).await;
    h.scrape_at(1_000).await;
    h.exporter.expose(Exposed {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        ..Exposed::text("oops")
    });
    let report = h.scrape_at(2_000).await;
    assert_eq!(
        report.error,
        Some(ScrapeError::Status("500 Internal Server Error".into()))
    );
    expect![[r#"
        {__name__="a_total", job="test", path="/x"} stale
        {__name__="a_total", job="test", path="/y"} stale
        {__name__="b", job="test"} stale
    "#]]
    .assert_eq(&h.stored_at(2_000));
    assert_eq!(h.report_at(2_000), [0.0, 0.0, 0.0, 0.0]);
    // Back up: the series resume.
    h.exporter.expose(Exposed::text(BODY));
    h.scrape_at(3_000).await;
    assert_eq!(h.report_at(3_000), [1.0, 3.0, 3.0, 0.0]);
    assert_eq!(h.stored_at(3_000).lines().count(), 3);
}

#[tokio::test]
async fn a_malformed_body_fails_with_its_line_and_keeps_nothing() {
    let mut h = Harness::new(Exposed::text(BODY), |_| {}).await;
    h.scrape_at(1_000).await;
    h.exporter
        .expose(Exposed::text("a_total{path=\"/x\"} 9\nb{ 2\n"));
    let report = h.scrape_at(2_000).await;
    expect![[r#"parsing the Prometheus text 0.0.4 body failed: line 2: expected a label name or '}', found "2" in "b{ 2""#]]
        .assert_eq(&report.error.unwrap().to_string());
    assert!(
        !h.stored_at(2_000).contains(" 9"),
        "nothing of a failed body is kept"
    );
    assert_eq!(h.stored_at(2_000).matches("stale").count(), 3);
    assert_eq!(h.report_at(2_000), [0.0, 1.0, 1.0, 0.0]);
}

#[tokio::test]
async fn exceeding_the_sample_limit_fails_the_scrape() {
    let mut h = Harness::new(Exposed::text(BODY), |o| {
        o.limits = Limits {
            sample_limit: 2,
            ..Limits::default()
        };
    })
    .await;
    let report = h.scrape_at(1_000).await;
    assert_eq!(
        report.error,
        Some(ScrapeError::SampleLimit {
            samples: 3,
            limit: 2
        })
    );
    assert_eq!(h.stored_at(1_000), "");
    assert_eq!(h.report_at(1_000)[..3], [0.0, 3.0, 3.0]);
    assert_eq!(h.storage.rollbacks(), 1);
}

#[tokio::test]
async fn label_limits_fail_the_scrape_with_prometheus_messages() {
    // Prometheus cuts the metric to 50 characters (`%.50s`).
    let cases: [(Limits, &str); 3] = [
        (
            Limits {
                label_limit: 3,
                ..Limits::default()
            },
            ", number of labels: 4, limit: 3)",
        ),
        (
            Limits {
                label_name_length_limit: 4,
                ..Limits::default()
            },
            ", label name: __name__, length: 8, limit: 4)",
        ),
        (
            Limits {
                label_value_length_limit: 5,
                ..Limits::default()
            },
            ", label name: __name__, value: \"a_total\", length: 7, limit: 5)",
        ),
    ];
    for (limits, tail) in cases {
        let mut h = Harness::new(Exposed::text(BODY), |o| o.limits = limits).await;
        let report = h.scrape_at(1_000).await;
        let got = report.error.unwrap().to_string();
        let metric: String = format!(
            "{{__name__=\"a_total\", instance=\"{}\", job=\"test\", path=\"/x\"}}",
            h.exporter.addr
        )
        .chars()
        .take(50)
        .collect();
        let name = [
            "label_limit",
            "label_name_length_limit",
            "label_value_length_limit",
        ]
        .into_iter()
        .find(|n| got.starts_with(n))
        .unwrap();
        assert_eq!(got, format!("{name} exceeded (metric: {metric}{tail}"));
        assert_eq!(h.report_at(1_000)[0], 0.0);
    }
}

#[tokio::test]
async fn honor_labels_decides_who_wins_a_label_conflict() {
    let body = "m{job=\"app\",exported_job=\"older\"} 1\nn{instance=\"\"} 2\n";
    let mut h = Harness::new(Exposed::text(body), |_| {}).await;
    h.scrape_at(1_000).await;
    expect![[r#"
        {__name__="m", exported_exported_job="app", exported_job="older", job="test"} 1
        {__name__="n", job="test"} 2
    "#]]
    .assert_eq(&h.stored_at(1_000));

    let mut h = Harness::new(Exposed::text(body), |o| o.honor_labels = true).await;
    h.scrape_at(1_000).await;
    let instance = h.exporter.addr.to_string();
    // The scraped job wins; an empty scraped label removes the target's.
    assert_eq!(
        h.storage.value_at(
            &[
                ("__name__", "m"),
                ("exported_job", "older"),
                ("instance", &instance),
                ("job", "app")
            ],
            1_000
        ),
        Some(1.0)
    );
    assert_eq!(
        h.storage
            .value_at(&[("__name__", "n"), ("job", "test")], 1_000),
        Some(2.0)
    );
}

#[tokio::test]
async fn explicit_timestamps_are_honored_and_not_marked_stale() {
    let body = "with_ts 1 500\nwithout_ts 2\n";
    let mut h = Harness::new(Exposed::text(body), |_| {}).await;
    h.scrape_at(1_000).await;
    assert!(h.stored_at(500).contains("with_ts"));
    assert!(h.stored_at(1_000).contains("without_ts"));
    h.exporter.expose(Exposed::text(""));
    h.scrape_at(2_000).await;
    expect![[r#"
        {__name__="without_ts", job="test"} stale
    "#]]
    .assert_eq(&h.stored_at(2_000));

    let mut h = Harness::new(Exposed::text(body), |o| o.honor_timestamps = false).await;
    h.scrape_at(1_000).await;
    assert_eq!(h.stored_at(1_000).lines().count(), 2);
}

#[tokio::test]
async fn the_same_series_twice_in_a_body_keeps_the_first_sample() {
    let body = "a 1\nb 5\na 2\na{} 3\n";
    let mut h = Harness::new(Exposed::text(body), |_| {}).await;
    let report = h.scrape_at(1_000).await;
    expect![[r#"
        {__name__="a", job="test"} 1
        {__name__="b", job="test"} 5
    "#]]
    .assert_eq(&h.stored_at(1_000));
    assert_eq!(report.duplicates, 2);
    assert_eq!(h.report_at(1_000), [1.0, 4.0, 4.0, 3.0]);
}

#[tokio::test]
async fn gzip_bodies_are_decompressed() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exposition-samples");
    let gz = std::fs::read(dir.join("prometheus-common__expfmt-text.gz")).unwrap();
    let plain = std::fs::read_to_string(dir.join("prometheus-common__expfmt-text")).unwrap();
    let mut exposed = Exposed::text("");
    exposed.body = gz;
    exposed.gzip = true;
    let mut h = Harness::new(exposed, |_| {}).await;
    let report = h.scrape_at(1_000).await;
    assert_eq!(report.error, None);
    let want = scraper::exposition::parse(plain.as_bytes(), Format::Text)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e, scraper::exposition::Entry::Sample(_)))
        .count();
    assert_eq!(report.samples_scraped, want);
    assert!(want > 100);
}

#[tokio::test]
async fn openmetrics_is_parsed_when_the_target_answers_with_it() {
    let body = "# TYPE req counter\nreq_total 3 # {trace_id=\"x\"} 1\nreq_created 1700000000.5\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3\n# EOF\n";
    let mut h = Harness::new(Exposed::openmetrics(body), |_| {}).await;
    let report = h.scrape_at(1_000).await;
    assert_eq!(report.error, None);
    expect![[r#"
        {__name__="h_bucket", job="test", le="+Inf"} 2
        {__name__="h_bucket", job="test", le="1.0"} 0
        {__name__="h_count", job="test"} 2
        {__name__="h_sum", job="test"} 3
        {__name__="req_created", job="test"} 1700000000.5
        {__name__="req_total", job="test"} 3
    "#]]
    .assert_eq(&h.stored_at(1_000));
    // The same body as text/plain is not valid text format.
    h.exporter.expose(Exposed::text(body));
    let report = h.scrape_at(2_000).await;
    assert!(
        matches!(report.error, Some(ScrapeError::Parse { .. })),
        "{report:?}"
    );
}

#[tokio::test]
async fn content_type_decides_the_parser_or_fails_without_fallback() {
    let mut exposed = Exposed::text("a 1\n");
    exposed.content_type = None;
    let mut h = Harness::new(exposed.clone(), |_| {}).await;
    let report = h.scrape_at(1_000).await;
    expect!["non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target"]
        .assert_eq(&report.error.unwrap().to_string());
    let mut h = Harness::new(exposed, |o| o.fallback_format = Some(Format::Text)).await;
    assert_eq!(h.scrape_at(1_000).await.error, None);
    assert!(h.stored_at(1_000).contains("{__name__=\"a\""));
}

#[tokio::test]
async fn the_body_size_limit_fails_the_scrape() {
    let mut h = Harness::new(Exposed::text(BODY), |o| {
        o.limits = Limits {
            body_size_limit: 20,
            ..Limits::default()
        };
    })
    .await;
    let report = h.scrape_at(1_000).await;
    assert_eq!(report.error, Some(ScrapeError::BodySizeLimit(20)));
    assert_eq!(h.report_at(1_000)[0], 0.0);
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_body_size_limit() {
    let mut h = Harness::with_path(Exposed::text(BODY), "/endless", |o| {
        o.limits = Limits {
            body_size_limit: 1 << 20,
            ..Limits::default()
        };
    })
    .await;
    let report = h.scrape_at(1_000).await;
    assert_eq!(report.error, Some(ScrapeError::BodySizeLimit(1 << 20)));
    assert_eq!(h.report_at(1_000)[0], 0.0);
    assert_eq!(h.stored_at(1_000), "");
}

#[tokio::test]
async fn a_target_that_resets_the_connection_is_down() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            // Read the request, then close with a reset (linger 0).
            let mut buffer = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await;
            // Deprecated because a nonzero linger blocks on drop; a zero
            // one resets at once, which is the point here.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
        }
    });
    assert_scrape_fails_over_http(addr).await;
}

#[tokio::test]
async fn metric_relabeling_drops_and_rewrites_series() {
    let mut h = Harness::new(Exposed::text(BODY), |o| {
        o.metric_relabel = Some(Arc::new(|labels: &Labels| {
            if labels.get("path") == Some("/y") {
                return None;
            }
            Some(labels.builder().set("relabeled", "yes").build())
        }));
    })
    .await;
    for t in [1_000, 2_000] {
        h.scrape_at(t).await;
        expect![[r#"
            {__name__="a_total", job="test", path="/x", relabeled="yes"} 3
            {__name__="b", job="test", relabeled="yes"} 1.5
        "#]]
        .assert_eq(&h.stored_at(t));
    }
    assert_eq!(h.report_at(1_000), [1.0, 3.0, 2.0, 2.0]);
    assert_eq!(h.report_at(2_000), [1.0, 3.0, 2.0, 0.0]);
}

#[tokio::test]
async fn a_relabeling_that_removes_the_metric_name_fails_the_scrape() {
    let mut h = Harness::new(Exposed::text(BODY), |o| {
        o.metric_relabel = Some(Arc::new(|labels: &Labels| {
            Some(labels.without_metric_name())
        }));
    })
    .await;
    let report = h.scrape_at(1_000).await;
    assert!(
        matches!(report.error, Some(ScrapeError::Series(_))),
        "{report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_target_times_out() {
    // With tokio's clock paused, time jumps to the timeout as soon as the
    // runtime has nothing else to do: the target never answers.
    let mut h = Harness::with_path(Exposed::text(BODY), "/hang", |o| {
        o.timeout = Duration::from_secs(3)
    })
    .await;
    let report = h.scrape_at(1_000).await;
    assert_eq!(
        report.error,
        Some(ScrapeError::Timeout(Duration::from_secs(3)))
    );
    assert_eq!(h.report_at(1_000)[0], 0.0);
}

/// Scrapes `addr` once: the scrape fails with an HTTP error and `up` is 0.
async fn assert_scrape_fails_over_http(addr: std::net::SocketAddr) {
    let fetcher = HttpFetcher::new(
        default_client().unwrap(),
        format!("http://{addr}/metrics").parse().unwrap(),
        Duration::from_secs(5),
        0,
    );
    let storage = Arc::new(MemStorage::default());
    let labels = Labels::from_pairs(&[("instance", addr.to_string()), ("job", "test".to_string())]);
    let mut scrape_loop = ScrapeLoop::new(
        TargetOptions::new(labels),
        fetcher,
        storage.clone(),
        Arc::new(ManualClock::new(5)),
    );
    let report = scrape_loop.scrape_once().await;
    assert!(
        matches!(report.error, Some(ScrapeError::Http(_))),
        "{report:?}"
    );
    assert_eq!(
        storage.value_at(
            &[
                ("__name__", "up"),
                ("instance", &addr.to_string()),
                ("job", "test")
            ],
            5
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn an_unreachable_target_is_down() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert_scrape_fails_over_http(addr).await;
}

/// A fetcher that serves a scripted sequence of bodies without any IO, for
/// the scheduling test under tokio's paused clock.
struct Scripted {
    bodies: parking_lot::Mutex<Vec<&'static str>>,
}

impl Fetch for Scripted {
    async fn fetch(&self) -> Result<Fetched, ScrapeError> {
        let mut bodies = self.bodies.lock();
        let body = if bodies.len() > 1 {
            bodies.remove(0)
        } else {
            bodies[0]
        };
        Ok(Fetched {
            body: body.as_bytes().to_vec(),
            content_type: Some("text/plain; version=0.0.4".into()),
        })
    }
}

/// Wall time that follows tokio's (paused) clock from a fixed epoch.
struct TokioClock {
    start: tokio::time::Instant,
    epoch_ms: i64,
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.epoch_ms + self.start.elapsed().as_millis() as i64
    }
}

fn scheduled_loop(
    storage: &Arc<MemStorage>,
    bodies: Vec<&'static str>,
) -> (ScrapeLoop<Scripted>, Arc<TokioClock>) {
    let clock = Arc::new(TokioClock {
        start: tokio::time::Instant::now(),
        epoch_ms: 1_000_000,
    });
    let fetcher = Scripted {
        bodies: parking_lot::Mutex::new(bodies),
    };
    let labels = Labels::from_pairs(&[("instance", "x:1"), ("job", "test")]);
    let mut options = TargetOptions::new(labels);
    options.interval = Duration::from_secs(10);
    let scrape_loop = ScrapeLoop::new(options, fetcher, storage.clone(), clock.clone());
    (scrape_loop, clock)
}

#[tokio::test(start_paused = true)]
async fn the_loop_scrapes_on_its_phase_every_interval_and_marks_stale_when_stopped() {
    let storage = Arc::new(MemStorage::default());
    let (scrape_loop, clock) = scheduled_loop(&storage, vec!["a 1\nb 1\n", "a 2\n"]);
    let hash = 3_500;
    let interval = Duration::from_secs(10);
    let expected_first =
        1_000_000 + first_scrape_delay(1_000_000, interval, hash, 0).as_millis() as i64;
    assert_eq!(expected_first, 1_003_500);
    let retiring = Retiring::default();
    let scrape_loop = scrape_loop.with_retiring(retiring.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(scrape_loop.run(hash, stopped));
    tokio::time::sleep(Duration::from_millis(3_500 + 25_000)).await;
    stop.send(Stop::MarkStale).unwrap();
    task.await.unwrap();
    let series =
        |name: &str| storage.samples(&[("__name__", name), ("instance", "x:1"), ("job", "test")]);
    // As Prometheus: nothing yet; the markers wait two intervals and a
    // tenth, in case the target comes back.
    assert_eq!(series("a").len(), 3);
    tokio::time::sleep(Duration::from_millis(5_000 + 10_000 + 500)).await;
    assert_eq!(series("a").len(), 3, "not before the tenth of an interval");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(series("a").len(), 4);
    retiring.wait().await;

    // Stopped at 1_028_500: the markers carry the next scrape time.
    let next_scrape = 1_033_500;
    let up = series("up");
    let times: Vec<i64> = up.iter().map(|s| s.t).collect();
    assert_eq!(times, [1_003_500, 1_013_500, 1_023_500, next_scrape]);
    assert!(is_stale_nan(up[3].v));
    let b = series("b");
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].v, 1.0);
    assert!(
        is_stale_nan(b[1].v) && b[1].t == 1_013_500,
        "b vanished in the second scrape"
    );
    let a = series("a");
    assert!(
        is_stale_nan(a[3].v) && a[3].t == next_scrape,
        "the target went away"
    );
    assert!(clock.now_ms() > next_scrape + 10_000);
}

/// Runs a loop scraping `a 1` from 3.5 s on, removes its target (stop with
/// staleness) after `ms` of paused time, and waits for the loop to end.
async fn run_until_removed(storage: &Arc<MemStorage>, retiring: &Retiring, ms: u64) {
    let (scrape_loop, _) = scheduled_loop(storage, vec!["a 1\n"]);
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(
        scrape_loop
            .with_retiring(retiring.clone())
            .run(3_500, stopped),
    );
    tokio::time::sleep(Duration::from_millis(ms)).await;
    stop.send(Stop::MarkStale).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_end_of_run_markers_and_an_unscraped_loop_leaves_none() {
    // Stopped before its first scrape: nothing at all.
    let storage = Arc::new(MemStorage::default());
    let retiring = Retiring::default();
    run_until_removed(&storage, &retiring, 1_000).await;
    retiring.wait().await;
    assert!(storage.series().is_empty());

    // Shutdown while the markers wait: none are written.
    run_until_removed(&storage, &retiring, 5_000).await;
    tokio::time::sleep(Duration::from_millis(10_000)).await;
    retiring.shutdown().await;
    tokio::time::sleep(Duration::from_millis(30_000)).await;
    let a = storage.samples(&[("__name__", "a"), ("instance", "x:1"), ("job", "test")]);
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(!is_stale_nan(a[0].v));
}

#[tokio::test]
async fn a_refused_sample_does_not_make_a_later_line_a_duplicate() {
    // The first line's explicit timestamp is out of bounds; Prometheus then
    // stores the second line at the scrape time.
    let body = "# TYPE a gauge\na 0 0\na 0\n# EOF\n";
    let exporter = Exporter::start(Exposed::openmetrics(body)).await;
    let storage = Arc::new(MemStorage::with_min_time(500_000));
    let fetcher = HttpFetcher::new(
        default_client().unwrap(),
        exporter.url("/metrics"),
        Duration::from_secs(5),
        0,
    );
    let mut scrape_loop = ScrapeLoop::new(
        options(&exporter),
        fetcher,
        storage.clone(),
        Arc::new(ManualClock::new(1_000_000)),
    );
    let report = scrape_loop.scrape_once().await;
    assert_eq!(
        (report.error, report.out_of_bounds, report.duplicates),
        (None, 1, 0)
    );
    let instance = exporter.addr.to_string();
    assert_eq!(
        storage.value_at(
            &[("__name__", "a"), ("instance", &instance), ("job", "test")],
            1_000_000
        ),
        Some(0.0)
    );
}
