//! A small driver for profiling head appends with cached series references
//! (what a scrape loop does every interval), e.g. under
//! `valgrind --tool=callgrind`, whose instruction counts stay repeatable on
//! a loaded machine:
//!
//! `cargo build --release -p tsdb --example head_append &&
//!  valgrind --tool=callgrind target/release/examples/head_append 10000 20`
//!
//! Arguments: number of series (default 10000), scrape rounds (default 120).
//! Prints the append rate; the criterion figure is `cargo bench -p tsdb
//! --bench head`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Sample, SeriesRef};
use tsdb::storage::Appendable;

fn main() {
    let mut args = std::env::args().skip(1);
    let n_series: usize = args.next().map_or(10_000, |a| a.parse().unwrap());
    let rounds: i64 = args.next().map_or(120, |a| a.parse().unwrap());
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    let refs: Vec<SeriesRef> = (0..n_series)
        .map(|i| {
            let labels = Labels::from_pairs(&[
                ("__name__", format!("metric_{}", i % 100)),
                ("instance", format!("host-{}:9100", i / 100)),
                ("job", "node".to_string()),
            ]);
            app.append(None, &labels, Sample::new(0, 0.0)).unwrap()
        })
        .collect();
    app.commit().unwrap();
    let empty = Labels::empty();
    let started = std::time::Instant::now();
    for round in 1..=rounds {
        let mut app = head.appender();
        for (i, r) in refs.iter().enumerate() {
            let v = (round * 17 + i as i64 % 13) as f64;
            app.append(Some(*r), &empty, Sample::new(round * 15_000, v))
                .unwrap();
        }
        app.commit().unwrap();
    }
    let elapsed = started.elapsed();
    let samples = n_series as f64 * rounds as f64;
    println!(
        "{samples} samples in {elapsed:.2?}: {:.2} M samples/s",
        samples / elapsed.as_secs_f64() / 1e6
    );
}
