use proptest::prelude::*;

use super::*;
use crate::model::STALE_NAN_BITS;

fn encode(samples: &[(i64, u64)]) -> XorChunk {
    let mut chunk = XorChunk::new();
    for &(t, bits) in samples {
        chunk.append(t, f64::from_bits(bits));
    }
    chunk
}

/// Decodes through every reader and checks that each returns `samples`
/// bit-exactly, for the head's encoding and the dense one of blocks.
#[track_caller]
fn check_round_trip(samples: &[(i64, u64)]) {
    let chunk = encode(samples);
    assert_eq!(chunk.num_samples(), samples.len());
    let bits = |s: Sample| (s.t, s.v.to_bits());
    let borrowed: Vec<_> = chunk.iter().map(bits).collect();
    assert_eq!(borrowed, samples);
    let min_t = samples.first().map_or(0, |s| s.0);
    let validated: Vec<_> = ChunkIter::new(chunk.bytes(), min_t)
        .unwrap()
        .map(bits)
        .collect();
    assert_eq!(validated, samples);
    let owned: Vec<_> = OwnedChunkIter::new(Arc::from(chunk.bytes()), Encoding::CURRENT, min_t)
        .unwrap()
        .map(bits)
        .collect();
    assert_eq!(owned, samples);
    let as_samples: Vec<Sample> = samples
        .iter()
        .map(|&(t, v)| Sample::new(t, f64::from_bits(v)))
        .collect();
    let dense = XorChunk::dense(&as_samples);
    assert!(dense.bytes().len() <= chunk.bytes().len());
    let dense_decoded: Vec<_> = ChunkIter::new(dense.bytes(), min_t)
        .unwrap()
        .map(bits)
        .collect();
    assert_eq!(dense_decoded, samples, "dense");
    let copied: Vec<_> = chunk.to_owned_iter().map(bits).collect();
    assert_eq!(copied, samples);
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        assert_eq!((chunk.min_t(), chunk.max_t()), (first.0, last.0));
    }
    check_load_range(&chunk, samples);
    check_load_range(&dense, samples);
}

/// `load_range` keeps what seeking to `start` and iterating up to `end`
/// would give, from any position, bit-exactly.
#[track_caller]
fn check_load_range(chunk: &XorChunk, samples: &[(i64, u64)]) {
    let bits = |s: &Sample| (s.t, s.v.to_bits());
    let min_t = samples.first().map_or(0, |s| s.0);
    let n = samples.len();
    let times: Vec<i64> = samples.iter().map(|s| s.0).collect();
    let mut bounds = vec![(i64::MIN, i64::MAX)];
    for (a, b) in [(0, n / 2), (n / 3, n / 3), (n / 4, 3 * n / 4), (n / 2, n)] {
        if let (Some(&lo), Some(&hi)) = (times.get(a), times.get(b.min(n.saturating_sub(1)))) {
            bounds.push((lo, hi));
            bounds.push((lo.saturating_add(1), hi.saturating_sub(1)));
        }
    }
    for skip in [0, 1, 2, n / 2] {
        for &(start, end) in &bounds {
            let mut expected = Vec::new();
            let mut past_end = false;
            for &(t, v) in samples.iter().skip(skip) {
                if t > end {
                    past_end = true;
                    break;
                }
                if t >= start {
                    expected.push((t, v));
                }
            }
            let mut it = ChunkIter::new(chunk.bytes(), min_t).unwrap();
            for _ in 0..skip {
                Iterator::next(&mut it);
            }
            let mut out = Vec::new();
            let stopped = it.load_range(start, end, &mut out);
            let got: Vec<_> = out.iter().map(bits).collect();
            assert_eq!(got, expected, "skip {skip} range {start}..={end}");
            assert_eq!(stopped, past_end, "skip {skip} range {start}..={end}");
        }
    }
}

#[test]
fn empty_chunk_has_no_samples() {
    let chunk = XorChunk::new();
    assert_eq!(chunk.bytes(), &[0, 0]);
    assert_eq!(chunk.iter().count(), 0);
    assert_eq!(ChunkIter::new(&[0, 0], 0).unwrap().count(), 0);
}

#[test]
fn scrape_like_series_round_trip_through_every_reader() {
    // Integer and two-decimal counters (with a reset), a one-decimal gauge
    // with staleness markers, a constant: the range decoder's fast path
    // with its fallbacks in between.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for shape in 0..4 {
        let mut m: i64 = 1000;
        let samples: Vec<(i64, u64)> = (0..240i64)
            .map(|i| {
                let t = 1_700_000_000_000 + i * 5_000 + next(20) as i64;
                let bits = match shape {
                    0 => {
                        m += next(10) as i64;
                        if i == 100 {
                            m = 3;
                        }
                        (m as f64).to_bits()
                    }
                    1 => {
                        m += next(1000) as i64;
                        (m as f64 / 100.0).to_bits()
                    }
                    2 if i % 50 == 49 => STALE_NAN_BITS,
                    2 => {
                        m += next(21) as i64 - 10;
                        (m as f64 / 10.0).to_bits()
                    }
                    _ => 42.0f64.to_bits(),
                };
                (t, bits)
            })
            .collect();
        check_round_trip(&samples);
    }
}

#[test]
fn special_values_round_trip_bit_exactly() {
    let values = [
        STALE_NAN_BITS,
        f64::NAN.to_bits(),
        0x7ff8_0000_0000_0001,
        0xfff0_0000_0000_0001,
        f64::INFINITY.to_bits(),
        f64::NEG_INFINITY.to_bits(),
        (-0.0f64).to_bits(),
        0.0f64.to_bits(),
        f64::MIN_POSITIVE.to_bits(),
        1.0f64.to_bits(),
        f64::MAX.to_bits(),
        STALE_NAN_BITS,
        STALE_NAN_BITS,
        5e-324f64.to_bits(),
    ];
    let samples: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, &bits)| (1_700_000_000_000 + 15_000 * i as i64, bits))
        .collect();
    check_round_trip(&samples);
}

#[test]
fn huge_and_irregular_timestamp_gaps_round_trip() {
    let v = 1.5f64.to_bits();
    check_round_trip(&[
        (i64::MIN, v),
        (-1, v),
        (0, v),
        (1, v),
        (i64::MAX - 1, v),
        (i64::MAX, v),
    ]);
    check_round_trip(&[
        (0, v),
        (15_000, v),
        (30_017, v),
        (45_001, v),
        (45_002, v),
        (3_600_000, v),
        (3_600_000 + 86_400_000 * 400, v),
        (3_600_000 + 86_400_000 * 400 + 15_000, v),
    ]);
}

#[test]
fn open_chunk_is_readable_after_every_append() {
    let mut chunk = XorChunk::new();
    let mut expected = Vec::new();
    for i in 0..300i64 {
        let sample = Sample::new(i * 15_000 + (i * 7919) % 50, (i as f64 * 0.1).sin());
        chunk.append(sample.t, sample.v);
        expected.push(sample);
        assert_eq!(chunk.iter().collect::<Vec<_>>(), expected);
        assert!(
            ChunkIter::new(chunk.bytes(), 0).is_ok(),
            "after {} samples",
            i + 1
        );
    }
}

#[test]
fn seek_moves_forward_only() {
    let mut chunk = XorChunk::new();
    for i in 0..10 {
        chunk.append(i * 10, i as f64);
    }
    let mut it = chunk.to_owned_iter();
    assert_eq!(it.seek(35), Some(Sample::new(40, 4.0)));
    assert_eq!(SampleIterator::next(&mut it), Some(Sample::new(50, 5.0)));
    assert_eq!(it.seek(0), Some(Sample::new(60, 6.0)));
    assert_eq!(it.seek(1000), None);
}

#[test]
fn corrupted_bytes_are_rejected() {
    let mut chunk = XorChunk::new();
    for i in 0..50 {
        chunk.append(i * 15_000, i as f64 * 1.25);
    }
    let bytes = chunk.bytes().to_vec();
    assert_eq!(
        ChunkIter::new(&bytes[..1], 0).unwrap_err(),
        DecodeChunkError::TooShort { len: 1 }
    );
    assert!(matches!(
        ChunkIter::new(&bytes[..bytes.len() - 3], 0).unwrap_err(),
        DecodeChunkError::Truncated { samples: 50, .. }
    ));
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0, 0]);
    assert_eq!(
        ChunkIter::new(&longer, 0).unwrap_err(),
        DecodeChunkError::TrailingBytes { extra: 2 }
    );
    // Zero padding bits decode as "same delta, same value" samples, so a
    // count a little too high can go unnoticed (the CRC32C around chunks on
    // disk catches that); ten more samples cannot fit the padding.
    let mut more_samples = bytes;
    more_samples[1] += 10;
    assert!(matches!(
        ChunkIter::new(&more_samples, 0).unwrap_err(),
        DecodeChunkError::Truncated { samples: 60, .. }
    ));
}

#[test]
fn dense_chunks_close_windows_that_hold_every_residual() {
    let constant: Vec<Sample> = (0..480)
        .map(|i| Sample::new(1_700_000_000_000 + i * 15_000 + (i * 7) % 3, 42.0))
        .collect();
    let dense = XorChunk::dense(&constant);
    assert!(dense.t_window.closed && dense.v_window.closed);
    // Header, windows, interval and first value; then the three jitter
    // values take under 2 bits per sample and the constant value none.
    assert!(
        dense.bytes().len() < 12 + 480 * 2 / 8,
        "{}",
        dense.bytes().len()
    );
    assert_eq!(dense.iter().collect::<Vec<_>>(), constant);

    // A missed scrape needs a time escape: the time window stays open, the
    // value window closes.
    let mut gap = constant.clone();
    gap.remove(100);
    let dense = XorChunk::dense(&gap);
    assert!(!dense.t_window.closed && dense.v_window.closed);
    assert_eq!(dense.iter().collect::<Vec<_>>(), gap);
    // The head's next chunk starts from open windows.
    assert!(!XorChunk::after(&dense).v_window.closed);
}

#[test]
fn intervals_in_whole_seconds_and_milliseconds_round_trip() {
    for interval in [15_000, 1_500, 1, 0, -15_000, i64::MAX / 8] {
        let samples: Vec<(i64, u64)> = (0..5)
            .map(|i| (1_000 + i * interval, 1.0f64.to_bits()))
            .collect();
        check_round_trip(&samples);
    }
}

#[test]
fn regular_scrapes_cut_four_chunks_per_two_hours() {
    let sizes = cut_sizes((0..480).map(|i| i * 15_000));
    assert_eq!(sizes, vec![120, 120, 120, 120]);
}

#[test]
fn chunks_never_cross_a_range_boundary() {
    // Starts 10 minutes before a 2 h boundary.
    let range = CutRules::default().chunk_range_ms;
    let start = 5 * range - 600_000;
    let sizes = cut_sizes((0..100).map(|i| start + i * 15_000));
    assert_eq!(sizes, vec![40, 60]);
}

#[test]
fn fast_scrapes_are_cut_at_twice_the_target() {
    // 30 samples a second apart predict chunks of about 116 s; when the
    // rate then jumps to one sample per millisecond the hard limit of 240
    // samples applies, and the next chunk predicts its end from the new rate.
    let slow = (0..30).map(|i| i * 1000);
    let fast = (1..=400).map(|i| 29_000 + i);
    let sizes = cut_sizes(slow.chain(fast));
    assert_eq!(sizes, vec![240, 120, 70]);
}

#[test]
fn incompressible_values_are_cut_before_the_byte_limit() {
    // A sample target the byte limit hits first.
    let rules = CutRules {
        samples_per_chunk: 1000,
        chunk_range_ms: 1 << 40,
    };
    let mut chunk = XorChunk::new();
    let mut next_at = rules.range_end(0);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut cut_at = None;
    for i in 0..2000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if rules.must_cut(&chunk, &mut next_at, i * 15_000) {
            cut_at = Some(chunk.num_samples());
            break;
        }
        chunk.append(i * 15_000, f64::from_bits(rng));
    }
    assert!(cut_at.is_some_and(|n| n < 250), "cut at {cut_at:?}");
    let len = chunk.bytes().len();
    assert!(len <= MAX_CHUNK_BYTES && len + MAX_SAMPLE_BYTES > MAX_CHUNK_BYTES);
}

/// Appends samples at `times` under the default cutting rules and returns
/// the sample counts of the chunks produced.
fn cut_sizes(times: impl Iterator<Item = i64>) -> Vec<usize> {
    let rules = CutRules::default();
    let mut sizes = Vec::new();
    let mut chunk = XorChunk::new();
    let mut next_at = 0;
    for t in times {
        if chunk.is_empty() {
            next_at = rules.range_end(t);
        } else if rules.must_cut(&chunk, &mut next_at, t) {
            sizes.push(chunk.num_samples());
            chunk = XorChunk::new();
            next_at = rules.range_end(t);
        }
        chunk.append(t, 1.0);
    }
    sizes.push(chunk.num_samples());
    sizes
}

#[test]
fn range_end_aligns_to_the_epoch_for_negative_times() {
    let rules = CutRules {
        samples_per_chunk: 120,
        chunk_range_ms: 100,
    };
    assert_eq!(rules.range_end(0), 100);
    assert_eq!(rules.range_end(99), 100);
    assert_eq!(rules.range_end(100), 200);
    assert_eq!(rules.range_end(-1), 0);
    assert_eq!(rules.range_end(-100), 0);
    assert_eq!(rules.range_end(i64::MAX), i64::MAX);
}

fn value_bits() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(STALE_NAN_BITS),
        Just(f64::NAN.to_bits()),
        (0x7ff0_0000_0000_0001u64..=0x7fff_ffff_ffff_ffff),
        Just(f64::INFINITY.to_bits()),
        Just(f64::NEG_INFINITY.to_bits()),
        Just((-0.0f64).to_bits()),
        (-1000i32..1000).prop_map(|i| f64::from(i).to_bits()),
        (-100_000i64..100_000).prop_map(|i| (i as f64 / 100.0).to_bits()),
    ]
}

fn timestamp_step() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 14_950i64..15_050,
        1 => 0i64..3,
        1 => 0i64..i64::MAX / 64,
        1 => Just(15_000i64),
    ]
}

proptest! {
    #[test]
    fn random_samples_round_trip(
        start in any::<i64>(),
        steps in prop::collection::vec((timestamp_step(), value_bits()), 0..300),
    ) {
        let mut t = start;
        let samples: Vec<(i64, u64)> = steps
            .into_iter()
            .map(|(step, bits)| {
                t = t.wrapping_add(step);
                (t, bits)
            })
            .collect();
        check_round_trip(&samples);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        for encoding in [Encoding::XorV3, Encoding::XorV4] {
            if let Ok(it) = ChunkIter::with_encoding(&bytes, encoding, 0) {
                let n = it.num_samples();
                let mut all = Vec::new();
                it.clone().load_range(i64::MIN, i64::MAX, &mut all);
                prop_assert_eq!(it.count(), n);
                prop_assert_eq!(all.len(), n);
            }
            let mut trusted = OwnedChunkIter::new_trusted(bytes.clone(), encoding, 0);
            trusted.load_range(i64::MIN, i64::MAX, &mut Vec::new());
        }
    }
}

#[test]
fn round_half_away_matches_f64_round() {
    let edges = [
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.5,
        -1.5,
        2.5,
        -2.5,
        0.49999999999999994,
        -0.49999999999999994,
        4503599627370495.5,
        -4503599627370495.5,
        4503599627370497.0,
        MAX_EXACT_MANTISSA,
        -MAX_EXACT_MANTISSA,
        1e-300,
        123456.785,
    ];
    for x in edges {
        assert_eq!(round_half_away(x), x.round() as i64, "{x}");
    }
    proptest!(|(bits in any::<u64>(), scale in 0u32..=MAX_SCALE)| {
        let x = f64::from_bits(bits) * POW10[scale as usize];
        if x.abs() <= MAX_EXACT_MANTISSA {
            prop_assert_eq!(round_half_away(x), x.round() as i64);
        }
        // And on the scale of scraped values.
        let y = (bits % 2_000_000_001) as f64 / 1000.0 - 1_000_000.0;
        prop_assert_eq!(round_half_away(y * POW10[scale as usize % 4]), (y * POW10[scale as usize % 4]).round() as i64);
    });
}
