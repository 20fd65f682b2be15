#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sextant serve` for real: the server started in-process on a free port
//! with a temporary data directory, and the binary driven by signals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use sextant::server::{ServeOptions, Server};
use tokio::sync::oneshot;

fn options(dir: &Path) -> ServeOptions {
    let mut options = ServeOptions::new("127.0.0.1:0");
    options.storage_path = Some(dir.join("data"));
    options.enable_lifecycle = true;
    options
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn serves_reloads_and_shuts_down_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 30s\n").unwrap();
    let mut options = options(dir.path());
    options.config_file = Some(config.clone());
    let server = Server::start(options).await.unwrap();
    let base = format!("http://{}", server.addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    assert_eq!(get(&format!("{base}/-/healthy")).await.0, 200);
    assert_eq!(get(&format!("{base}/-/ready")).await.0, 200);
    let (status, body) = get(&format!("{base}/api/v1/query?query=vector(1)&time=10")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[10,"1"]}]}}"#
    );
    let (_, flags) = get(&format!("{base}/api/v1/status/flags")).await;
    let flags: serde_json::Value = serde_json::from_str(&flags).unwrap();
    assert_eq!(flags["data"]["storage.tsdb.retention.time"], "15d");
    let (_, tsdb) = get(&format!("{base}/api/v1/status/tsdb")).await;
    assert!(tsdb.contains(r#""headStats":{"numSeries":0,"#), "{tsdb}");

    // A bad config is rejected and the running one stays.
    let client = reqwest::Client::new();
    std::fs::write(&config, "global:\n  scrape_interval: soon\n").unwrap();
    let response = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let error = response.text().await.unwrap();
    assert!(error.starts_with("failed to reload config: "), "{error}");
    assert!(error.contains("sextant.yml:2:"), "{error}");
    let (_, shown) = get(&format!("{base}/api/v1/status/config")).await;
    assert!(shown.contains("scrape_interval: 30s"), "{shown}");
    let (_, runtime) = get(&format!("{base}/api/v1/status/runtimeinfo")).await;
    assert!(
        runtime.contains(r#""reloadConfigSuccess":false"#),
        "{runtime}"
    );
    // A good one is applied.
    std::fs::write(&config, "global:\n  scrape_interval: 20s\n").unwrap();
    let response = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (_, shown) = get(&format!("{base}/api/v1/status/config")).await;
    assert!(shown.contains("scrape_interval: 20s"), "{shown}");

    let (_, metrics) = get(&format!("{base}/metrics")).await;
    for family in [
        "sextant_tsdb_head_series 0",
        "sextant_tsdb_blocks_loaded 0",
        "sextant_tsdb_wal_writes_failed_total 0",
        "process_resident_memory_bytes ",
        "sextant_http_requests_total{handler=\"/-/reload\",code=\"500\"} 1",
    ] {
        assert!(metrics.contains(family), "{family} missing from\n{metrics}");
    }

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    // The database was closed: its directory lock is free again.
    tsdb::db::Db::open(&dir.path().join("data"), tsdb::db::DbOptions::default()).unwrap();
}

#[tokio::test]
async fn a_locked_data_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(options(dir.path())).await.unwrap();
    let error = Server::start(options(dir.path())).await.err().unwrap();
    assert!(
        format!("{error:#}").contains("opening the database in"),
        "{error:#}"
    );
    drop(first);
}

/// The binary: SIGHUP reloads, SIGTERM stops the parts in order and exits 0.
#[test]
fn the_binary_reloads_on_sighup_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["serve", "--listen", "127.0.0.1:0", "--storage.tsdb.path"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let mut next_line_with = |needle: &str, log: &mut Vec<String>| -> String {
        for line in lines.by_ref() {
            let line = line.unwrap();
            log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!("no log line with {needle:?}:\n{}", log.join("\n"));
    };
    let ready = next_line_with("Server is ready to receive web requests.", &mut log);
    assert!(ready.contains("address=127.0.0.1:"), "{ready}");
    let pid = child.id().to_string();
    let kill = |signal: &str| {
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    };
    kill("-HUP");
    next_line_with("Configuration reloaded.", &mut log);
    kill("-TERM");
    next_line_with("Shutting down.", &mut log);
    let scrape = next_line_with("Stopping.", &mut log);
    assert!(scrape.contains("scrape"), "{scrape}");
    let http = next_line_with("Stopping.", &mut log);
    assert!(
        http.contains("stage=\"http\"") || http.contains("stage=http"),
        "{http}"
    );
    let rules = next_line_with("Stopping.", &mut log);
    assert!(
        rules.contains("rules"),
        "rules stop before storage: {rules}"
    );
    // The remote write queues (none configured; a reload may add some)
    // drain after rules and before storage closes.
    let remote_write = next_line_with("Stopping.", &mut log);
    assert!(remote_write.contains("remote write"), "{remote_write}");
    let storage = next_line_with("Stopping.", &mut log);
    assert!(storage.contains("storage"), "{storage}");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", log.join("\n"));
}
