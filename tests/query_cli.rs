#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sextant query` against a real Prometheus (Debian `prometheus`) started
//! on loopback over a block backfilled with `promtool`, so the expected
//! answers are fixed.

use std::io::{BufRead, BufReader};

use expect_test::expect;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// True when the peers exist; under `CI=true` a missing peer fails the test.
fn peers_installed() -> bool {
    let missing: Vec<&str> = [PROMETHEUS, PROMTOOL]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "required peers missing under CI: {missing:?}"
    );
    eprintln!("skipping: {missing:?} not installed");
    false
}

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OpenMetrics samples at 1700000000 and 1700000015 (Unix seconds).
const BACKFILL: &str = "\
# TYPE up gauge
up{instance=\"a:9100\",job=\"node\"} 1 1700000000
up{instance=\"b:9100\",job=\"node\"} 0 1700000000
up{instance=\"a:9100\",job=\"node\"} 1 1700000015
up{instance=\"b:9100\",job=\"node\"} 1 1700000015
# EOF
";

fn start_prometheus() -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("backfill.om");
    std::fs::write(&input, BACKFILL).unwrap();
    let output = Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
    // A free port: bind, read it, release it for Prometheus.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let prometheus = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    wait_ready(stderr);
    prometheus
}

/// Reads Prometheus's log until it says it is ready (no polling, no
/// sleeping), then keeps draining it so the pipe never fills.
fn wait_ready(stderr: std::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                if line.contains("Server is ready to receive web requests.") {
                    break;
                }
                seen.push(line);
            }
            _ => panic!(
                "prometheus exited before it was ready:\n{}",
                seen.join("\n")
            ),
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
}

fn sextant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .output()
        .unwrap()
}

#[track_caller]
fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "sextant failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn queries_a_real_prometheus() {
    if !peers_installed() {
        return;
    }
    let prometheus = start_prometheus();
    let url = prometheus.url.as_str();

    let instant = sextant(&["query", "instant", url, "up * 2", "--time", "1700000015"]);
    expect![[r#"
        SERIES                           TIME                  VALUE
        {instance="a:9100", job="node"}  2023-11-14T22:13:35Z  2
        {instance="b:9100", job="node"}  2023-11-14T22:13:35Z  2
    "#]]
    .assert_eq(&stdout(&instant));

    let range = sextant(&[
        "query",
        "range",
        url,
        "sum(up)",
        "--start",
        "1700000000",
        "--end",
        "1700000015",
        "--step",
        "15s",
    ]);
    expect![[r#"
        SERIES  TIME                  VALUE
        {}      2023-11-14T22:13:20Z  1
                2023-11-14T22:13:35Z  2
    "#]]
    .assert_eq(&stdout(&range));

    let scalar = sextant(&[
        "query",
        "instant",
        url,
        "1e-7",
        "--time",
        "1700000000",
        "--format",
        "json",
    ]);
    expect![[r#"
        {
          "result": [
            1700000000,
            "0.0000001"
          ],
          "resultType": "scalar"
        }
    "#]]
    .assert_eq(&stdout(&scalar));

    let series = sextant(&[
        "query",
        "series",
        url,
        "--match",
        "up{instance=\"b:9100\"}",
        "--start",
        "1699999000",
        "--end",
        "1700001000",
    ]);
    assert_eq!(stdout(&series), "up{instance=\"b:9100\", job=\"node\"}\n");

    let names = sextant(&[
        "query",
        "labels",
        url,
        "--start",
        "1699999000",
        "--end",
        "1700001000",
    ]);
    assert_eq!(stdout(&names), "__name__\ninstance\njob\n");
    let values = sextant(&[
        "query",
        "labels",
        url,
        "instance",
        "--start",
        "1699999000",
        "--end",
        "1700001000",
    ]);
    assert_eq!(stdout(&values), "a:9100\nb:9100\n");

    let bad = sextant(&["query", "instant", url, "up{"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("bad_data (400 Bad Request): invalid parameter \"query\""),
        "{stderr}"
    );
}
