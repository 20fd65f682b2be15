//! Any bytes as a chunk of either encoding: opening validates, iterating and
//! seeking never panic.
//! (The codec represents any timestamp sequence, wrapping ones included, so
//! decoded garbage need not be increasing; the head never writes such chunks.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsdb::chunk::{ChunkIter, Encoding};
use tsdb::storage::SampleIterator;

fuzz_target!(|bytes: &[u8]| {
    for encoding in [Encoding::XorV3, Encoding::XorV4] {
        let min_t = 1_700_000_000_000;
        let Ok(mut iter) = ChunkIter::with_encoding(bytes, encoding, min_t) else {
            continue;
        };
        let mut last = 0i64;
        while let Some(sample) = SampleIterator::next(&mut iter) {
            last = sample.t;
        }
        if let Ok(mut iter) = ChunkIter::with_encoding(bytes, encoding, min_t) {
            let _ = iter.seek(last / 2);
            while SampleIterator::next(&mut iter).is_some() {}
        }
    }
});
