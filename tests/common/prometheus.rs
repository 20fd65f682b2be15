//! The real Prometheus (Debian `prometheus`) as a test peer.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const PROMTOOL: &str = "/usr/bin/promtool";

/// True when the peers exist; under `CI=true` a missing peer fails the test.
pub fn peers_installed() -> bool {
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

pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Prometheus on a free loopback port over a block made by
/// `promtool tsdb create-blocks-from openmetrics` from `backfill`.
pub fn start_prometheus(backfill: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("backfill.om");
    std::fs::write(&input, backfill).unwrap();
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
