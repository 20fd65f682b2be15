//! Exposition parse throughput on a seeded, node_exporter-like body of about
//! 10 MB (HELP/TYPE for every family, counters and gauges with a few labels,
//! classic histograms, values as node_exporter prints them).
//!
//! Run: `cargo bench -p scraper --bench parse`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scraper::exposition::{Entry, Format, Parser};

const TARGET_BYTES: usize = 10 * 1024 * 1024;

/// Appends one family in the style of node_exporter's collectors.
fn family(out: &mut String, rng: &mut StdRng, index: usize, openmetrics: bool) {
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    let devices = ["eth0", "lo", "wlan0", "docker0", "veth1a2b3c", "br-5f1e2d"];
    match index % 4 {
        0 => {
            let name = format!("node_cpu_seconds_{index}");
            // OpenMetrics names the counter family without `_total`.
            let family = if openmetrics {
                name.clone()
            } else {
                format!("{name}_total")
            };
            writeln!(out, "# HELP {family} Seconds the CPUs spent in each mode.").unwrap();
            writeln!(out, "# TYPE {family} counter").unwrap();
            for cpu in 0..8 {
                for mode in modes {
                    let v: f64 = rng.random_range(0.0..1e7);
                    writeln!(out, "{name}_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {v:.2}").unwrap();
                }
            }
        }
        1 => {
            let name = format!("node_network_receive_bytes_{index}");
            let family = if openmetrics {
                name.clone()
            } else {
                format!("{name}_total")
            };
            writeln!(
                out,
                "# HELP {family} Network device statistic receive_bytes."
            )
            .unwrap();
            writeln!(out, "# TYPE {family} counter").unwrap();
            for device in devices {
                let v: u64 = rng.random_range(0..1u64 << 40);
                writeln!(out, "{name}_total{{device=\"{device}\"}} {v}").unwrap();
            }
        }
        2 => {
            let name = format!("node_filesystem_avail_bytes_{index}");
            writeln!(
                out,
                "# HELP {name} Filesystem space available to non-root users in bytes."
            )
            .unwrap();
            writeln!(out, "# TYPE {name} gauge").unwrap();
            for (device, fstype, mount) in [
                ("/dev/sda1", "ext4", "/"),
                ("/dev/sda2", "ext4", "/home"),
                ("tmpfs", "tmpfs", "/run"),
                ("tmpfs", "tmpfs", "/run/user/1000"),
            ] {
                let v: f64 = rng.random_range(1e9..1e12);
                writeln!(
                    out,
                    "{name}{{device=\"{device}\",fstype=\"{fstype}\",mountpoint=\"{mount}\"}} {v:e}"
                )
                .unwrap();
            }
        }
        _ => {
            let name = format!("node_disk_io_time_seconds_{index}");
            writeln!(out, "# HELP {name} Histogram of disk IO latency.").unwrap();
            writeln!(out, "# TYPE {name} histogram").unwrap();
            let mut count = 0u64;
            for le in [
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
                "+Inf",
            ] {
                count += rng.random_range(0..1000);
                writeln!(
                    out,
                    "{name}_bucket{{device=\"nvme0n1\",le=\"{le}\"}} {count}"
                )
                .unwrap();
            }
            let sum: f64 = rng.random_range(0.0..1e5);
            writeln!(out, "{name}_sum{{device=\"nvme0n1\"}} {sum}").unwrap();
            writeln!(out, "{name}_count{{device=\"nvme0n1\"}} {count}").unwrap();
        }
    }
}

fn body(openmetrics: bool) -> String {
    let mut rng = StdRng::seed_from_u64(0x005e_7a47);
    let mut out = String::with_capacity(TARGET_BYTES + 64 * 1024);
    let mut index = 0;
    while out.len() < TARGET_BYTES {
        family(&mut out, &mut rng, index, openmetrics);
        index += 1;
    }
    if openmetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Parses every entry and touches every value, as the scrape loop does.
fn parse_all(body: &[u8], format: Format) -> f64 {
    let mut sum = 0.0;
    for entry in Parser::new(body, format) {
        if let Entry::Sample(s) = entry.unwrap() {
            sum += s.value;
            black_box(s.series());
        }
    }
    sum
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("exposition_parse");
    for (label, format) in [("text", Format::Text), ("openmetrics", Format::OpenMetrics)] {
        let body = body(format == Format::OpenMetrics);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.sample_size(20);
        group.bench_function(format!("{label}_10MB"), |b| {
            b.iter(|| parse_all(black_box(body.as_bytes()), format));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
