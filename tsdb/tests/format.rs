//! Golden files pinning the on-disk formats (`tsdb/docs/format/`): committed
//! bytes under `tests/data/` must decode to known content and re-encode
//! byte-identically. A failure here means the format changed; if that is on
//! purpose, bump the format version, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p tsdb --test format` and update the doc.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use tsdb::block::{Block, BlockId, BlockWriter};
use tsdb::chunk::{ChunkIter, Encoding, XorChunk};
use tsdb::model::{Labels, Matcher, STALE_NAN_BITS, Sample, TimeRange};
use tsdb::storage::{Querier, SelectHints};

fn data_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn regenerate() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

/// Samples exercising every encoding path of `chunks.md`: both varints,
/// every delta-of-delta bucket, an unchanged value, a reused and a new XOR
/// window, the staleness marker, another NaN, infinities, -0.0.
fn golden_chunk_samples() -> Vec<Sample> {
    let t0 = 1_700_000_000_000;
    let values = [
        (t0, 1.0),
        (t0 + 15_000, 1.0),
        (t0 + 30_000, 2.0),
        (t0 + 45_012, 3.0),
        (t0 + 60_000, 3.5),
        (t0 + 75_300, f64::from_bits(STALE_NAN_BITS)),
        (t0 + 90_300, f64::NAN),
        (t0 + 130_000, f64::INFINITY),
        (t0 + 290_000, f64::NEG_INFINITY),
        (t0 + 290_000 + 86_400_000, -0.0),
        (t0 + 290_000 + 86_400_000 * 800, 0.1),
        (t0 + 290_001 + 86_400_000 * 800, 0.2),
    ];
    values.iter().map(|&(t, v)| Sample::new(t, v)).collect()
}

#[test]
fn golden_chunk_decodes_and_reencodes_identically() {
    let samples = golden_chunk_samples();
    let mut head = XorChunk::new();
    for s in &samples {
        head.append(s.t, s.v);
    }
    // The head's chunk (open windows) and the dense one blocks store
    // (measured windows, closed where they hold every residual).
    let dense = XorChunk::dense(&samples);
    for (chunk, file) in [
        (&head, "chunk-xor-v4.bin"),
        (&dense, "chunk-xor-v4-dense.bin"),
    ] {
        let path = data_path(file);
        if regenerate() {
            std::fs::write(&path, chunk.bytes()).unwrap();
        }
        let golden = std::fs::read(&path).unwrap();
        let decoded: Vec<(i64, u64)> = ChunkIter::new(&golden, samples[0].t)
            .unwrap()
            .map(|s| (s.t, s.v.to_bits()))
            .collect();
        assert_eq!(decoded, bits(&samples), "{file}");
        assert_eq!(chunk.bytes(), golden.as_slice(), "{file}: encoder drifted");
    }
}

/// Encoding 3 (blocks written before encoding 4) is still read; nothing
/// writes it any more, so its golden file is never regenerated.
#[test]
fn encoding_3_golden_chunk_still_decodes() {
    let samples = golden_chunk_samples();
    let golden = std::fs::read(data_path("chunk-xor-v3.bin")).unwrap();
    // Encoding 3 stores the first timestamp itself.
    let decoded: Vec<(i64, u64)> = ChunkIter::with_encoding(&golden, Encoding::XorV3, 0)
        .unwrap()
        .map(|s| (s.t, s.v.to_bits()))
        .collect();
    assert_eq!(decoded, bits(&samples));
}

fn bits(samples: &[Sample]) -> Vec<(i64, u64)> {
    samples.iter().map(|s| (s.t, s.v.to_bits())).collect()
}

const GOLDEN_BLOCK_MIN: i64 = 1_700_000_000_000;
const GOLDEN_BLOCK_MAX: i64 = GOLDEN_BLOCK_MIN + 2 * 60 * 60 * 1000;

fn golden_block_id() -> BlockId {
    BlockId::from_parts(GOLDEN_BLOCK_MIN as u64, 42)
}

/// Three series: a counter of 130 samples (one block chunk), a gauge
/// ending in a staleness marker, and a series with one sample.
fn golden_block_series() -> Vec<(Labels, Vec<Sample>)> {
    let t0 = GOLDEN_BLOCK_MIN;
    let counter = (0..130)
        .map(|i| Sample::new(t0 + i * 15_000 + i % 3, (i * 3) as f64))
        .collect();
    let mut gauge: Vec<Sample> = (0..20)
        .map(|i| Sample::new(t0 + 5_000 + i * 30_000, 20.5 - i as f64 * 0.25))
        .collect();
    gauge.push(Sample::new(
        t0 + 5_000 + 20 * 30_000,
        f64::from_bits(STALE_NAN_BITS),
    ));
    vec![
        (
            Labels::from_pairs(&[
                ("__name__", "http_requests_total"),
                ("code", "200"),
                ("job", "api"),
            ]),
            counter,
        ),
        (
            Labels::from_pairs(&[
                ("__name__", "temperature_celsius"),
                ("job", "sensor"),
                ("room", "lab"),
            ]),
            gauge,
        ),
        (
            Labels::from_pairs(&[("__name__", "up"), ("job", "api")]),
            vec![Sample::new(t0 + 60_000, 1.0)],
        ),
    ]
}

fn write_golden_block(data_dir: &Path) -> PathBuf {
    let mut w = BlockWriter::new(
        data_dir,
        golden_block_id(),
        GOLDEN_BLOCK_MIN,
        GOLDEN_BLOCK_MAX,
    )
    .unwrap();
    for (labels, samples) in golden_block_series() {
        w.add_series_samples(&labels, samples).unwrap();
    }
    let meta = w.finish().unwrap().unwrap();
    data_dir.join(meta.ulid.to_string())
}

const GOLDEN_BLOCK_FILES: [&str; 3] = ["meta.json", "index", "chunks/000001"];

#[test]
fn golden_block_opens_with_known_content_and_rewrites_identically() {
    let golden_dir = data_path("blocks").join(golden_block_id().to_string());
    if regenerate() {
        let _ = std::fs::remove_dir_all(&golden_dir);
        std::fs::create_dir_all(data_path("blocks")).unwrap();
        write_golden_block(&data_path("blocks"));
    }
    check_golden_block_content(&golden_dir, 3);

    // The writer still produces exactly these bytes.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_dir = write_golden_block(fresh.path());
    for file in GOLDEN_BLOCK_FILES {
        let golden = std::fs::read(golden_dir.join(file)).unwrap();
        let rewritten = std::fs::read(fresh_dir.join(file)).unwrap();
        assert!(golden == rewritten, "{file} drifted from the golden block");
    }
}

/// The same series as written before chunk encoding 4 and block chunk
/// merging (encoding byte 3, the counter in two chunks): still readable.
#[test]
fn encoding_3_golden_block_still_reads() {
    let dir = data_path("blocks-v3").join(golden_block_id().to_string());
    check_golden_block_content(&dir, 4);
}

fn check_golden_block_content(dir: &Path, num_chunks: u64) {
    let block = Block::open(dir).unwrap();
    let meta = block.meta();
    assert_eq!(meta.ulid, golden_block_id());
    assert_eq!(
        (meta.min_time, meta.max_time),
        (GOLDEN_BLOCK_MIN, GOLDEN_BLOCK_MAX)
    );
    assert_eq!(
        (
            meta.stats.num_series,
            meta.stats.num_chunks,
            meta.stats.num_samples
        ),
        (3, num_chunks, 152)
    );
    assert_eq!(meta.compaction.level, 1);
    assert_eq!(block.verify_chunks().unwrap(), num_chunks);

    let q = block.querier(TimeRange::all());
    assert_eq!(
        q.label_names(&[]).unwrap(),
        vec!["__name__", "code", "job", "room"]
    );
    assert_eq!(q.label_values("job", &[]).unwrap(), vec!["api", "sensor"]);
    let hints = SelectHints::for_range(TimeRange::all());
    let api = q.select(&[Matcher::equal("job", "api")], &hints).unwrap();
    assert_eq!(api.series.len(), 2);
    let set = q.select(&[], &hints).unwrap();
    let expected = golden_block_series();
    assert_eq!(set.series.len(), expected.len());
    for (mut series, (labels, samples)) in set.series.into_iter().zip(expected) {
        assert_eq!(series.labels, labels);
        let mut got = Vec::new();
        while let Some(s) = series.samples.next() {
            got.push((s.t, s.v.to_bits()));
        }
        let want: Vec<(i64, u64)> = samples.iter().map(|s| (s.t, s.v.to_bits())).collect();
        assert_eq!(got, want, "{labels}");
    }
}
