//! The TSDB admin endpoints `delete_series` and `clean_tombstones` end to
//! end over loopback HTTP against `sextant serve` with a data directory
//! holding blocks and a head: deleted series vanish from `/api/v1/query`,
//! `/api/v1/series` and label values at once and after a restart, and
//! cleaning rewrites the blocks without them. Also: a damaged block is moved
//! aside at startup, counted on `/metrics`, and the rest is served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use reqwest::StatusCode;
use sextant::server::{ServeOptions, Server};
use tsdb::block::{TOMBSTONES_FILE, list_block_dirs};
use tsdb::db::{Db, DbOptions};
use tsdb::model::{Labels, Matcher, Sample, TimeRange};
use tsdb::storage::{Appendable, Queryable, SelectHints};

const STEP_MS: i64 = 60_000;
/// Five hours of samples: the database cuts blocks from the first ones.
const N_SAMPLES: i64 = 300;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `up` for jobs a and b and `other` for job a, one sample a minute over
/// the five hours before `end`; compacted, so blocks and a head exist.
fn fill(data: &Path, end: i64) {
    let db = Db::open(data, DbOptions::default()).unwrap();
    for i in 0..N_SAMPLES {
        let t = end - (N_SAMPLES - 1 - i) * STEP_MS;
        let mut app = db.appender();
        for (name, job) in [("up", "a"), ("up", "b"), ("other", "a")] {
            let labels = Labels::from_pairs(&[("__name__", name), ("job", job)]);
            app.append(None, &labels, Sample::new(t, i as f64)).unwrap();
        }
        app.commit().unwrap();
    }
    db.compact().unwrap();
    assert!(!db.blocks().is_empty());
    db.close().unwrap();
}

async fn start(data: &Path, admin: bool) -> Server {
    let mut options = ServeOptions::new("127.0.0.1:0");
    options.storage_path = Some(data.to_path_buf());
    options.enable_admin_api = admin;
    Server::start(options).await.unwrap()
}

async fn post(server: &Server, path_and_query: &str) -> (StatusCode, String) {
    let url = format!("http://{}{path_and_query}", server.addr());
    let response = reqwest::Client::new().post(&url).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn get_json(server: &Server, path_and_query: &str) -> serde_json::Value {
    let url = format!("http://{}{path_and_query}", server.addr());
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path_and_query}");
    response.json().await.unwrap()
}

/// The jobs of `up` as the query API, the series API and label values see
/// them.
async fn up_jobs(server: &Server, at_ms: i64) -> (Vec<String>, Vec<String>, Vec<String>) {
    let jobs = |v: &serde_json::Value, path: &str| -> Vec<String> {
        let mut jobs: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item.pointer(path).unwrap().as_str().unwrap().to_string())
            .collect();
        jobs.sort();
        jobs
    };
    let time = at_ms as f64 / 1000.0;
    let query = get_json(server, &format!("/api/v1/query?query=up&time={time}")).await;
    let series = get_json(server, "/api/v1/series?match[]=up").await;
    let values = get_json(server, "/api/v1/label/job/values?match[]=up").await;
    (
        jobs(&query["data"]["result"], "/metric/job"),
        jobs(&series["data"], "/job"),
        jobs(&values["data"], ""),
    )
}

fn tombstoned_blocks(data: &Path) -> Vec<String> {
    list_block_dirs(data)
        .unwrap()
        .into_iter()
        .filter(|(_, dir)| dir.join(TOMBSTONES_FILE).exists())
        .map(|(id, _)| id.to_string())
        .collect()
}

#[tokio::test]
async fn delete_series_and_clean_tombstones_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let end = now_ms() / 1000 * 1000;
    fill(&data, end);
    let a_and_b = vec!["a".to_string(), "b".to_string()];
    let only_a = vec!["a".to_string()];

    // Without the flag: the Disabled error, nothing deleted.
    let server = start(&data, false).await;
    for path in [
        "/api/v1/admin/tsdb/delete_series?match[]=up",
        "/api/v1/admin/tsdb/clean_tombstones",
    ] {
        let (status, body) = post(&server, path).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(body.contains("admin APIs disabled"), "{body}");
    }
    server.run_until(async {}).await.unwrap();

    let server = start(&data, true).await;
    assert_eq!(
        up_jobs(&server, end).await,
        (a_and_b.clone(), a_and_b.clone(), a_and_b.clone())
    );
    for (path, expected) in [
        ("/api/v1/admin/tsdb/delete_series", "no match[] parameter"),
        (
            "/api/v1/admin/tsdb/delete_series?match[]=up{",
            "invalid parameter",
        ),
        (
            "/api/v1/admin/tsdb/delete_series?match[]=up&start=yesterday",
            "Invalid time value for 'start'",
        ),
    ] {
        let (status, body) = post(&server, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body.contains(expected), "{path}: {body}");
    }

    // All of up{job="b"}, in blocks and head.
    let (status, body) = post(
        &server,
        "/api/v1/admin/tsdb/delete_series?match[]=up{job=%22b%22}",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(body.is_empty());
    assert_eq!(
        up_jobs(&server, end).await,
        (only_a.clone(), only_a.clone(), only_a.clone())
    );
    // A window of `other`, with start in Unix seconds and end in RFC 3339
    // (PUT works as POST).
    let (from, to) = (end - 200 * STEP_MS, end - 100 * STEP_MS);
    let to_rfc3339 = chrono::DateTime::from_timestamp_millis(to)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let url = format!(
        "http://{}/api/v1/admin/tsdb/delete_series?match[]=other&start={}&end={to_rfc3339}",
        server.addr(),
        from / 1000
    );
    let response = reqwest::Client::new().put(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let blocks_with_tombstones = tombstoned_blocks(&data);
    assert!(!blocks_with_tombstones.is_empty());
    server.run_until(async {}).await.unwrap();

    // After a restart (head from the WAL, blocks with their tombstones).
    let server = start(&data, true).await;
    assert_eq!(
        up_jobs(&server, end).await,
        (only_a.clone(), only_a.clone(), only_a.clone())
    );
    let (status, body) = post(&server, "/api/v1/admin/tsdb/clean_tombstones").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(tombstoned_blocks(&data).is_empty());
    let now_listed: Vec<String> = list_block_dirs(&data)
        .unwrap()
        .iter()
        .map(|(id, _)| id.to_string())
        .collect();
    for old in &blocks_with_tombstones {
        assert!(!now_listed.contains(old), "block {old} was rewritten");
    }
    assert_eq!(
        up_jobs(&server, end).await,
        (only_a.clone(), only_a.clone(), only_a.clone())
    );
    server.run_until(async {}).await.unwrap();

    // The data itself: `other` lost exactly [from, to], `up` kept job a.
    let db = Db::open(&data, DbOptions::default()).unwrap();
    let querier = db.querier(TimeRange::all()).unwrap();
    let mut set = querier
        .select(
            &[Matcher::equal("__name__", "other")],
            &SelectHints::for_range(TimeRange::all()),
        )
        .unwrap();
    assert_eq!(set.series.len(), 1);
    let mut kept = Vec::new();
    while let Some(sample) = set.series[0].samples.next() {
        kept.push(sample.t);
    }
    let expected: Vec<i64> = (0..N_SAMPLES)
        .map(|i| end - (N_SAMPLES - 1 - i) * STEP_MS)
        .filter(|t| *t < from || *t > to)
        .collect();
    assert_eq!(kept, expected);
    let up = querier
        .select(
            &[Matcher::equal("__name__", "up")],
            &SelectHints::for_range(TimeRange::all()),
        )
        .unwrap();
    assert_eq!(up.series.len(), 1);
}

#[tokio::test]
async fn a_damaged_block_is_moved_aside_counted_and_the_rest_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let end = now_ms() / 1000 * 1000;
    fill(&data, end);
    let (id, block_dir) = list_block_dirs(&data).unwrap().remove(0);
    let index = block_dir.join("index");
    let mut bytes = std::fs::read(&index).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&index, bytes).unwrap();

    let server = start(&data, false).await;
    assert!(data.join(format!("{id}.corrupted")).is_dir());
    assert!(!block_dir.exists());
    let url = format!("http://{}/metrics", server.addr());
    let metrics = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let corrupted: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sextant_tsdb_blocks_corrupted_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(corrupted, 1.0);
    // The head (the newest samples) is served.
    let (query, series, values) = up_jobs(&server, end).await;
    let a_and_b = vec!["a".to_string(), "b".to_string()];
    assert_eq!(
        (query, series, values),
        (a_and_b.clone(), a_and_b.clone(), a_and_b)
    );
    server.run_until(async {}).await.unwrap();
}

#[tokio::test]
async fn a_chunk_failing_its_checksum_fails_the_query_reading_it_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let end = now_ms() / 1000 * 1000;
    fill(&data, end);
    let (_, block_dir) = list_block_dirs(&data).unwrap().remove(0);
    let block = tsdb::block::Block::open(&block_dir).unwrap();
    let range = block.meta().time_range();
    drop(block);
    let mut segments: Vec<_> = std::fs::read_dir(block_dir.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&segments[0], bytes).unwrap();

    // Chunks are checked when read: the block opens and stays.
    let server = start(&data, false).await;
    assert!(block_dir.is_dir());
    let query = format!(
        "/api/v1/query_range?query=up&start={}&end={}&step=60",
        range.start / 1000,
        range.end / 1000
    );
    let url = format!("http://{}{query}", server.addr());
    let response = reqwest::get(&url).await.unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        status.is_server_error() || status.is_client_error(),
        "{status}"
    );
    assert_eq!(body["status"], "error", "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("corrupted") && error.contains("chunks"),
        "{error}"
    );
    // Queries not reading the damaged block go on.
    let a_and_b = vec!["a".to_string(), "b".to_string()];
    let (query, _, _) = up_jobs(&server, end).await;
    assert_eq!(query, a_and_b);
    server.run_until(async {}).await.unwrap();
}
