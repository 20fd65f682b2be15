//! Chunk encode/decode throughput and compression (bytes per sample) on
//! seeded series shapes: integer counters with small increments, float
//! counters with two decimals, one-decimal random-walk gauges and constant
//! series, all scraped every 15 s with 0-50 ms timestamp jitter.
//!
//! Run: `cargo bench -p tsdb --bench chunk_codec`. `decode` iterates a
//! head chunk sample by sample, `load_range` decodes it with the range
//! decoder queries use. The compression figures are printed before the
//! timings: per shape and averaged over the mix, for head chunks (cut by
//! `CutRules`) and for a 24 h block on disk (chunks, index and meta), once
//! with the 0-50 ms jitter and once with timestamps on the exact 15 s grid
//! for comparison.
//!
//! Shapes (seeded): integer counters growing by 0-10 per scrape, counters
//! with two decimals growing by 0.00-10.00, gauges with one decimal moving
//! by -1.0..=1.0, constants.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tsdb::block::{BLOCK_CHUNK_SAMPLES, Block, BlockId, BlockWriter};
use tsdb::chunk::{ChunkIter, CutRules, XorChunk};
use tsdb::model::{Labels, Sample};

const SCRAPE_INTERVAL_MS: i64 = 15_000;
const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone, Copy)]
enum Shape {
    IntegerCounter,
    DecimalCounter,
    Gauge,
    Constant,
}

const SHAPES: [Shape; 4] = [
    Shape::IntegerCounter,
    Shape::DecimalCounter,
    Shape::Gauge,
    Shape::Constant,
];

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::IntegerCounter => "integer_counter",
            Shape::DecimalCounter => "decimal_counter",
            Shape::Gauge => "gauge_1_decimal",
            Shape::Constant => "constant",
        }
    }
}

/// `n` samples of one series of `shape`, seeded by `seed`. Values are what
/// parsing the exposition text would give (`m / 100` for two decimals).
fn series(shape: Shape, seed: u64, n: usize, max_jitter_ms: i64) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counter: i64 = rng.random_range(0..1_000_000);
    let mut gauge: i64 = rng.random_range(-500..500);
    let constant = f64::from(rng.random_range(0..100u32));
    (0..n as i64)
        .map(|i| {
            let t = T0 + i * SCRAPE_INTERVAL_MS + rng.random_range(0..=max_jitter_ms);
            let v = match shape {
                Shape::IntegerCounter => {
                    counter += rng.random_range(0..=10);
                    counter as f64
                }
                Shape::DecimalCounter => {
                    counter += rng.random_range(0..=1_000);
                    counter as f64 / 100.0
                }
                Shape::Gauge => {
                    gauge += rng.random_range(-10..=10);
                    gauge as f64 / 10.0
                }
                Shape::Constant => constant,
            };
            Sample::new(t, v)
        })
        .collect()
}

/// Bits of information per sample that `series` draws at random: the
/// uniform jitter and the uniform value step. No lossless encoding can
/// average fewer.
fn entropy_bits(shape: Shape, max_jitter_ms: i64) -> f64 {
    let uniform = |choices: i64| (choices as f64).log2();
    let value = match shape {
        Shape::IntegerCounter => uniform(11),
        Shape::DecimalCounter => uniform(1_001),
        Shape::Gauge => uniform(21),
        Shape::Constant => 0.0,
    };
    uniform(max_jitter_ms + 1) + value
}

/// Encodes samples into head chunks with the head's cutting rules.
fn head_chunks(samples: &[Sample]) -> Vec<XorChunk> {
    let rules = CutRules::default();
    let mut chunks = Vec::new();
    let mut chunk = XorChunk::new();
    let mut next_at = 0;
    for s in samples {
        if chunk.is_empty() {
            next_at = rules.range_end(s.t);
        } else if rules.must_cut(&chunk, &mut next_at, s.t) {
            // As the head does: the next chunk starts with what this one
            // learned.
            let next = XorChunk::after(&chunk);
            chunks.push(std::mem::replace(&mut chunk, next));
            next_at = rules.range_end(s.t);
        }
        chunk.append(s.t, s.v);
    }
    chunks.push(chunk);
    chunks
}

/// Prints bytes per sample for head chunks and for a compacted 24 h block.
fn print_compression(max_jitter_ms: i64) {
    const SERIES_PER_SHAPE: u64 = 25;
    const SAMPLES_PER_SERIES: usize = 24 * 60 * 4; // 24 h at 15 s
    let mut head_ratios = Vec::new();
    println!(
        "bytes per sample, {SERIES_PER_SHAPE} series x {SAMPLES_PER_SERIES} samples per shape, \
         timestamp jitter 0-{max_jitter_ms} ms:"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut writer = BlockWriter::new(
        dir.path(),
        BlockId::from_parts(1, 1),
        T0,
        T0 + 25 * 60 * 60 * 1000,
    )
    .unwrap();
    let mut all_series: Vec<(Labels, Vec<Sample>)> = Vec::new();
    for shape in SHAPES {
        let mut bytes = 0usize;
        let mut dense_bytes = 0usize;
        let mut samples = 0usize;
        for seed in 0..SERIES_PER_SHAPE {
            let s = series(shape, seed, SAMPLES_PER_SERIES, max_jitter_ms);
            for chunk in head_chunks(&s) {
                bytes += chunk.bytes().len();
                samples += chunk.num_samples();
            }
            for block_chunk in s.chunks(BLOCK_CHUNK_SAMPLES) {
                dense_bytes += XorChunk::dense(block_chunk).bytes().len();
            }
            let labels = Labels::from_pairs(&[
                ("__name__", shape.name().to_string()),
                (
                    "instance",
                    format!("10.0.{}.{}:9100", seed / 250, seed % 250),
                ),
                ("job", "node".to_string()),
            ]);
            all_series.push((labels, s));
        }
        let ratio = bytes as f64 / samples as f64;
        head_ratios.push(ratio);
        println!(
            "  head chunks  {:<16} {ratio:.3} (dense {BLOCK_CHUNK_SAMPLES}-sample block chunks: {:.3}, \
             entropy of the generator: {:.3})",
            shape.name(),
            dense_bytes as f64 / samples as f64,
            entropy_bits(shape, max_jitter_ms) / 8.0,
        );
    }
    let mix = head_ratios.iter().sum::<f64>() / head_ratios.len() as f64;
    println!("  head chunks  mix average      {mix:.3} (goal <= 1.4)");
    let entropy = SHAPES
        .iter()
        .map(|&shape| entropy_bits(shape, max_jitter_ms) / 8.0)
        .sum::<f64>()
        / SHAPES.len() as f64;
    println!("  lower bound  mix entropy      {entropy:.3} (no lossless codec stores less)");

    all_series.sort_by(|a, b| a.0.cmp(&b.0));
    let n_samples: usize = all_series.iter().map(|(_, s)| s.len()).sum();
    for (labels, samples) in &all_series {
        writer
            .add_series_samples(labels, samples.iter().copied())
            .unwrap();
    }
    let meta = writer.finish().unwrap().unwrap();
    let block = Block::open(&dir.path().join(meta.ulid.to_string())).unwrap();
    let ratio = block.size_bytes() as f64 / n_samples as f64;
    println!(
        "  24 h block   mix, all files    {ratio:.3} ({} bytes, {n_samples} samples; goal <= 1.0)",
        block.size_bytes()
    );
}

fn bench_chunks(c: &mut Criterion) {
    print_compression(50);
    print_compression(0);
    let mut group = c.benchmark_group("chunk");
    for shape in SHAPES {
        let samples = series(shape, 7, 120, 50);
        group.throughput(Throughput::Elements(samples.len() as u64));
        group.bench_function(format!("encode/{}", shape.name()), |b| {
            b.iter(|| {
                let mut chunk = XorChunk::new();
                for s in black_box(&samples) {
                    chunk.append(s.t, s.v);
                }
                chunk
            })
        });
        let mut chunk = XorChunk::new();
        for s in &samples {
            chunk.append(s.t, s.v);
        }
        let bytes = chunk.bytes().to_vec();
        group.bench_function(format!("decode/{}", shape.name()), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for s in chunk.iter() {
                    sum += s.v;
                }
                sum
            })
        });
        // What queries use: the whole chunk, and its second half (an
        // instant query's window starting inside the chunk).
        let mut out = Vec::with_capacity(samples.len());
        group.bench_function(format!("load_range/{}", shape.name()), |b| {
            b.iter(|| {
                out.clear();
                chunk.iter().load_range(i64::MIN, i64::MAX, &mut out);
                out.len()
            })
        });
        let half = samples[samples.len() / 2].t;
        group.bench_function(format!("load_range_second_half/{}", shape.name()), |b| {
            b.iter(|| {
                out.clear();
                chunk.iter().load_range(black_box(half), i64::MAX, &mut out);
                out.len()
            })
        });
        let block_samples = series(shape, 7, BLOCK_CHUNK_SAMPLES, 50);
        let block_chunk = XorChunk::dense(&block_samples);
        group.throughput(Throughput::Elements(block_samples.len() as u64));
        group.bench_function(format!("decode_dense_block_chunk/{}", shape.name()), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for s in block_chunk.iter() {
                    sum += s.v;
                }
                sum
            })
        });
        group.throughput(Throughput::Elements(samples.len() as u64));
        group.bench_function(format!("validate_and_decode/{}", shape.name()), |b| {
            b.iter(|| {
                ChunkIter::new(black_box(&bytes), samples[0].t)
                    .unwrap()
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_chunks);
criterion_main!(benches);
