#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sextant query` against a real Prometheus (Debian `prometheus`) started
//! on loopback over a block backfilled with `promtool`, so the expected
//! answers are fixed.

use std::process::{Command, Output};

use expect_test::expect;

mod common;
use common::prometheus::{peers_installed, start_prometheus};

/// OpenMetrics samples at 1700000000 and 1700000015 (Unix seconds).
const BACKFILL: &str = "\
# TYPE up gauge
up{instance=\"a:9100\",job=\"node\"} 1 1700000000
up{instance=\"b:9100\",job=\"node\"} 0 1700000000
up{instance=\"a:9100\",job=\"node\"} 1 1700000015
up{instance=\"b:9100\",job=\"node\"} 1 1700000015
# EOF
";

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
    let prometheus = start_prometheus(BACKFILL);
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
