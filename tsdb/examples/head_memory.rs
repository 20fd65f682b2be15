//! Measures resident memory per active series in the head, beyond the
//! encoded chunk bytes: 1M series (node-exporter-like labels) x 120 samples
//! at a 15 s interval, appended time-major with cached series references as
//! a scrape loop would.
//!
//! `cargo run --release -p tsdb --example head_memory [n_series] [n_samples]`
//!
//! Reads `VmRSS` from `/proc/self/status` (Linux only) before and after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Sample, SeriesRef};
use tsdb::storage::Appendable;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS value");
    kib * 1024
}

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs(&[
        ("__name__", format!("node_metric_{}_total", i % 100)),
        ("cpu", (i / 100 % 10).to_string()),
        ("instance", format!("host-{:04}.example.org:9100", i / 1000)),
        ("job", "node".to_string()),
    ])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n_series: usize = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let n_samples: i64 = args.next().map_or(120, |a| a.parse().unwrap());

    let mut refs: Vec<Option<SeriesRef>> = vec![None; n_series];
    let mut values: Vec<f64> = vec![0.0; n_series];
    let before = rss_bytes();
    let head = Head::new(HeadOptions::default());
    let started = std::time::Instant::now();
    // A cheap deterministic generator: counters that grow by small, varying
    // amounts, as most scraped series do.
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..n_samples {
        let mut app = head.appender();
        for i in 0..n_series {
            let labels = if refs[i].is_none() {
                series_labels(i)
            } else {
                Labels::empty()
            };
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            values[i] += (rng % 100) as f64;
            let t = 1_700_000_000_000 + round * 15_000 + (rng % 50) as i64;
            refs[i] = Some(
                app.append(refs[i], &labels, Sample::new(t, values[i]))
                    .unwrap(),
            );
        }
        app.commit().unwrap();
    }
    let elapsed = started.elapsed();
    let after = rss_bytes();
    let chunks = head.chunk_stats();
    let stats = head.stats();
    let driver = (n_series * (size_of::<Option<SeriesRef>>() + size_of::<f64>())) as u64;
    let growth = after.saturating_sub(before);
    let beyond = growth.saturating_sub(chunks.chunk_bytes as u64);
    println!("series:                {}", stats.n_series);
    println!("samples:               {}", stats.samples_appended);
    println!("append time:           {elapsed:.2?}");
    println!("RSS growth:            {} MiB", growth >> 20);
    println!(
        "chunk bytes:           {} MiB in {} chunks ({:.2} bytes/sample)",
        chunks.chunk_bytes >> 20,
        chunks.n_chunks,
        chunks.chunk_bytes as f64 / stats.samples_appended as f64
    );
    println!(
        "per series beyond chunk bytes: {} bytes (includes {} bytes of this driver's own arrays)",
        beyond / stats.n_series.max(1) as u64,
        driver / n_series.max(1) as u64
    );
    drop(head);
}
