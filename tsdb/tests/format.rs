//! Golden files pinning the on-disk formats (`tsdb/docs/format/`): committed
//! bytes under `tests/data/` must decode to known content and re-encode
//! byte-identically. A failure here means the format changed; if that is on
//! purpose, bump the format version, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p tsdb --test format` and update the doc.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use tsdb::chunk::{ChunkIter, XorChunk};
use tsdb::model::{STALE_NAN_BITS, Sample};

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
    let mut chunk = XorChunk::new();
    for s in &samples {
        chunk.append(s.t, s.v);
    }
    let path = data_path("chunk-xor-v1.bin");
    if regenerate() {
        std::fs::write(&path, chunk.bytes()).unwrap();
    }
    let golden = std::fs::read(&path).unwrap();
    let decoded: Vec<(i64, u64)> = ChunkIter::new(&golden)
        .unwrap()
        .map(|s| (s.t, s.v.to_bits()))
        .collect();
    let expected: Vec<(i64, u64)> = samples.iter().map(|s| (s.t, s.v.to_bits())).collect();
    assert_eq!(decoded, expected);
    assert_eq!(chunk.bytes(), golden.as_slice(), "encoder output drifted");
}
