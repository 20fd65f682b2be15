#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The PromQL differential test: the generated corpus
//! (`promql_differential/queries.txt`, 500+ queries) against the real
//! Prometheus (Debian's 2.42) and Sextant holding the same samples
//! (`promql_differential/data.om`, backfilled with `promtool tsdb
//! create-blocks-from openmetrics` and with `sextant import openmetrics`).
//! Every query runs as an instant query at four times and as a range query;
//! both servers must answer alike: the same status and error type, the same
//! result type, the same series with the same labels, the same timestamps,
//! and values equal to 1e-9 relative (NaN and ±Inf exactly).
//!
//! What the corpus avoids so that 2.42 and 3.x agree, and how to regenerate
//! it, is in `promql_differential/generate.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

mod common;
use common::prometheus::{peers_installed, start_prometheus};
use common::server::serve_storage;

#[path = "promql_differential/generate.rs"]
mod generate;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql_differential")
}

/// The committed data and corpus are the generator's output (regenerate
/// with `SEXTANT_REGENERATE=1`).
#[test]
fn generated_files_are_current() {
    let files = [
        ("data.om", generate::openmetrics()),
        ("queries.txt", generate::corpus_file()),
    ];
    for (name, generated) in files {
        let path = corpus_dir().join(name);
        if std::env::var("SEXTANT_REGENERATE").as_deref() == Ok("1") {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is not the generator's output; regenerate with SEXTANT_REGENERATE=1",
            path.display()
        );
    }
    let corpus = generate::corpus_file();
    assert!(generate::parse_corpus(&corpus).len() >= 500);
}

/// One request's answer, reduced to what must be equal.
#[derive(Debug)]
enum Answer {
    Error(String),
    Result { kind: String, series: Vec<Element> },
}

/// A series (or the one scalar/string value, with no labels) and its points
/// as `(timestamp, value as written)`.
#[derive(Debug)]
struct Element {
    labels: String,
    points: Vec<(f64, String)>,
}

fn point(value: &Value) -> (f64, String) {
    (
        value[0].as_f64().unwrap_or(f64::NAN),
        value[1].as_str().unwrap_or_default().to_string(),
    )
}

fn answer(body: &Value) -> Answer {
    if body["status"] != "success" {
        return Answer::Error(body["errorType"].as_str().unwrap_or("?").to_string());
    }
    let data = &body["data"];
    let kind = data["resultType"].as_str().unwrap_or("?").to_string();
    let result = &data["result"];
    let mut series: Vec<Element> = match kind.as_str() {
        "scalar" | "string" => vec![Element {
            labels: String::new(),
            points: vec![point(result)],
        }],
        _ => result
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|element| Element {
                // serde_json's maps are sorted: a canonical label set.
                labels: element["metric"].to_string(),
                points: match element.get("value") {
                    Some(v) => vec![point(v)],
                    None => element["values"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .map(point)
                        .collect(),
                },
            })
            .collect(),
    };
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    Answer::Result { kind, series }
}

fn same_value(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => {
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        _ => false,
    }
}

/// `None` when the answers agree, else what differs.
fn difference(ours: &Answer, theirs: &Answer) -> Option<String> {
    match (ours, theirs) {
        (Answer::Error(a), Answer::Error(b)) if a == b => None,
        (
            Answer::Result {
                kind: k1,
                series: s1,
            },
            Answer::Result {
                kind: k2,
                series: s2,
            },
        ) => {
            if k1 != k2 {
                return Some(format!("result type {k1} vs {k2}"));
            }
            let ours: BTreeMap<&str, &Element> =
                s1.iter().map(|e| (e.labels.as_str(), e)).collect();
            let theirs: BTreeMap<&str, &Element> =
                s2.iter().map(|e| (e.labels.as_str(), e)).collect();
            let only_ours: Vec<&&str> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
            let only_theirs: Vec<&&str> =
                theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
            if !only_ours.is_empty() || !only_theirs.is_empty() || s1.len() != s2.len() {
                return Some(format!(
                    "series only in sextant: {only_ours:?}; only in prometheus: {only_theirs:?}"
                ));
            }
            for (labels, a) in &ours {
                let b = theirs[labels];
                if a.points.len() != b.points.len() {
                    return Some(format!(
                        "{labels}: {} points vs {}",
                        a.points.len(),
                        b.points.len()
                    ));
                }
                for (p, q) in a.points.iter().zip(&b.points) {
                    if p.0 != q.0 || !same_value(&p.1, &q.1) {
                        return Some(format!("{labels}: {p:?} vs {q:?}"));
                    }
                }
            }
            None
        }
        _ => Some(format!("{ours:?} vs {theirs:?}")),
    }
}

/// The requests for one query: instant at each time, and a range query.
fn requests(query: &str, index: usize) -> Vec<String> {
    let mut out = Vec::new();
    for t in generate::INSTANT_TIMES {
        out.push(format!(
            "/api/v1/query?{}",
            serde_urlencoded::to_string([("query", query), ("time", &t.to_string())]).unwrap()
        ));
    }
    let (start, end, step) = generate::RANGE_WINDOWS[index % generate::RANGE_WINDOWS.len()];
    out.push(format!(
        "/api/v1/query_range?{}",
        serde_urlencoded::to_string([
            ("query", query),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", &step.to_string()),
        ])
        .unwrap()
    ));
    out
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> Answer {
    let response = client.get(format!("{base}{path}")).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    answer(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sextant_answers_the_corpus_like_prometheus() {
    if !peers_installed() {
        return;
    }
    let data_path = corpus_dir().join("data.om");
    let data = std::fs::read_to_string(&data_path).unwrap();
    let corpus = std::fs::read_to_string(corpus_dir().join("queries.txt")).unwrap();
    let queries = generate::parse_corpus(&corpus);
    assert!(queries.len() >= 500, "{} queries", queries.len());

    let prometheus = tokio::task::spawn_blocking(move || start_prometheus(&data));

    // Sextant: the importer's command line, then the database served.
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["import", "openmetrics"])
        .arg(&data_path)
        .arg("--storage.path")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "sextant import: {output:?}");
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("into 2 block(s)"), "{summary}");
    let db = tsdb::db::Db::open(dir.path(), tsdb::db::DbOptions::default()).unwrap();
    let sextant = serve_storage(Arc::new(db), (generate::T0_S + 10_000) * 1000).await;
    let prometheus = prometheus.await.unwrap();

    let client = reqwest::Client::new();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for (index, query) in queries.iter().enumerate() {
        for path in requests(query, index) {
            let ours = get(&client, &sextant, &path).await;
            let theirs = get(&client, &prometheus.url, &path).await;
            compared += 1;
            if let Some(diff) = difference(&ours, &theirs) {
                mismatches.push(format!("{query}\n  {path}\n  {diff}"));
                // One failing request per query is enough to read.
                break;
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} queries differ ({compared} requests compared):\n{}",
        mismatches.len(),
        queries.len(),
        mismatches.join("\n")
    );
}
