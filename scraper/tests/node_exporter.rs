//! The real `prometheus-node-exporter` (Debian package), started on a
//! loopback port and scraped by a scrape loop: the stored series must equal
//! what the exporter served, line for line. Under `CI=true` a missing binary
//! fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::MemStorage;
use parking_lot::Mutex;
use scraper::exposition::{Entry, Format, Parser};
use scraper::scrape_loop::{
    Fetch, Fetched, HttpFetcher, ScrapeError, ScrapeLoop, TargetOptions, default_client,
    sample_labels,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tsdb::clock::ManualClock;
use tsdb::model::Labels;

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// The peer binary, or `None` (with a notice) when it is missing outside CI.
fn peer_binary(path: &str) -> Option<&str> {
    if std::path::Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{path} is required under CI=true (apt-get install prometheus-node-exporter)"
    );
    eprintln!("skipping: {path} is not installed");
    None
}

/// Keeps the body of every fetch, to compare with what was stored.
struct Recording {
    inner: HttpFetcher,
    last: Mutex<Option<Fetched>>,
}

impl Fetch for Recording {
    async fn fetch(&self) -> Result<Fetched, ScrapeError> {
        let fetched = self.inner.fetch().await?;
        *self.last.lock() = Some(fetched.clone());
        Ok(fetched)
    }
}

#[tokio::test]
async fn stores_exactly_what_the_real_node_exporter_serves() {
    let Some(binary) = peer_binary(NODE_EXPORTER) else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(binary)
        .arg(format!("--web.listen-address={address}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Ready when it logs that it listens: no polling, no sleeping.
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.contains("Listening on") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "node exporter did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });

    let url: reqwest::Url = format!("http://{address}/metrics").parse().unwrap();
    let fetcher = Recording {
        inner: HttpFetcher::new(default_client().unwrap(), url, Duration::from_secs(30), 0),
        last: Mutex::new(None),
    };
    let target = Labels::from_pairs(&[("instance", address.as_str()), ("job", "node")]);
    let storage = Arc::new(MemStorage::default());
    let mut scrape_loop = ScrapeLoop::new(
        TargetOptions::new(target.clone()),
        fetcher,
        storage.clone(),
        Arc::new(ManualClock::new(1_700_000_000_000)),
    );
    let report = scrape_loop.scrape_once().await;
    assert_eq!(report.error, None);
    child.kill().await.unwrap();

    // What was served: every sample line, by an independent reading
    // (node_exporter writes one sample per line, never a `#` inside one).
    let fetched = storage_body(&scrape_loop);
    let sample_lines = fetched
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert!(sample_lines > 200, "only {sample_lines} samples served");
    assert_eq!(report.samples_scraped, sample_lines);

    // Every served sample is stored with the target labels, at the scrape
    // time, with its value.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for entry in Parser::new(fetched.as_bytes(), Format::Text) {
        let Entry::Sample(sample) = entry.unwrap() else {
            continue;
        };
        let labels = sample_labels(&sample, &target, false).unwrap();
        expected.insert(labels.to_string(), sample.value.to_bits());
    }
    let mut stored: BTreeMap<String, u64> = BTreeMap::new();
    for (labels, samples) in storage.series() {
        let name = labels.metric_name().unwrap_or_default();
        if name == "up" || name.starts_with("scrape_") {
            continue;
        }
        assert_eq!(samples.len(), 1, "{labels}");
        assert_eq!(samples[0].t, 1_700_000_000_000);
        stored.insert(labels.to_string(), samples[0].v.to_bits());
    }
    assert_eq!(stored.len(), sample_lines, "one series per served line");
    assert_eq!(stored, expected);
    // A spot check independent of the parser.
    let build_info = fetched
        .lines()
        .find(|l| l.starts_with("node_exporter_build_info{"))
        .unwrap();
    let version = build_info
        .split("version=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(
        stored
            .keys()
            .any(|k| k.contains("node_exporter_build_info") && k.contains(version))
    );
}

fn storage_body(scrape_loop: &ScrapeLoop<Recording>) -> String {
    let fetched = scrape_loop.fetcher().last.lock().clone().unwrap();
    assert!(fetched.content_type.unwrap().starts_with("text/plain"));
    String::from_utf8(fetched.body).unwrap()
}
