//! Real remote storage peers for the remote write and read tests: the
//! Debian `prometheus` and `victoria-metrics` binaries on free loopback
//! ports with temporary storage, killed on drop.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant::remote::proto;
use tsdb::model::{Labels, Sample};

pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const VICTORIA_METRICS: &str = "/usr/bin/victoria-metrics";

/// True when `binary` exists; under `CI=true` a missing peer fails the test.
pub fn installed(binary: &str) -> bool {
    if Path::new(binary).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "required peer missing under CI: {binary}"
    );
    eprintln!("skipping: {binary} not installed");
    false
}

/// A free loopback port: bound, read, released for the peer.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it returns `Some`, failing after `limit`. Waiting on
/// another process has no event to block on; the limit is generous and no
/// assertion depends on how long it took.
pub async fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A peer process, killed on drop.
pub struct Peer {
    child: Child,
    pub url: String,
    pub port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    /// Stops the process as an operator would (SIGTERM, so it persists
    /// what it acknowledged) and waits for it to exit.
    pub fn stop(&mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }
}

async fn ready(url: &str) -> Option<()> {
    let response = reqwest::get(url).await.ok()?;
    response.status().is_success().then_some(())
}

/// Prometheus on `port` with `config` (YAML), its data in `dir`, the
/// remote write receiver enabled.
pub async fn start_prometheus(dir: &Path, config: &str, port: u16) -> Peer {
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let peer = Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        port,
    };
    let ready_url = format!("{}/-/ready", peer.url);
    wait_for(
        "prometheus to be ready",
        Duration::from_secs(60),
        async || ready(&ready_url).await,
    )
    .await;
    peer
}

/// VictoriaMetrics storing in `data` on `port` (a restart reuses both).
pub async fn start_victoria_metrics(data: &Path, port: u16) -> Peer {
    let child = Command::new(VICTORIA_METRICS)
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", data.display()))
        .arg("-retentionPeriod=100y")
        .arg("-search.disableCache")
        .arg("-search.latencyOffset=0s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let peer = Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        port,
    };
    let health = format!("{}/health", peer.url);
    wait_for(
        "victoria-metrics to be ready",
        Duration::from_secs(60),
        async || ready(&health).await,
    )
    .await;
    peer
}

/// Sends `data` to `base/api/v1/write` in one remote write request.
pub async fn remote_write(base: &str, data: &[(Labels, Vec<Sample>)]) {
    let request = proto::WriteRequest {
        timeseries: data
            .iter()
            .map(|(labels, samples)| proto::TimeSeries {
                labels: sextant::remote::labels_to_proto(labels),
                samples: samples
                    .iter()
                    .map(|s| proto::Sample {
                        value: s.v,
                        timestamp: s.t,
                    })
                    .collect(),
                exemplars: vec![],
            })
            .collect(),
        metadata: vec![],
    };
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/write"))
        .header("content-encoding", "snappy")
        .header("content-type", "application/x-protobuf")
        .body(sextant::remote::encode(&request))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{base}: {}",
        response.status()
    );
}

/// `GET base/api/v1/query` at `time_s`; the `data.result` array.
pub async fn instant_query(base: &str, query: &str, time_s: f64) -> Vec<Value> {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query), ("time", &time_s.to_string())])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{base}: {query}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The one value of an instant query answering a single series, if any.
pub async fn scalar_query(base: &str, query: &str, time_s: f64) -> Option<f64> {
    let result = instant_query(base, query, time_s).await;
    let value = result.first()?["value"][1].as_str()?.parse().ok()?;
    Some(value)
}

/// Now in seconds since the epoch.
pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
