//! Any bytes as a chunk: opening validates, iterating and seeking never panic.
//! (The codec represents any timestamp sequence, wrapping ones included, so
//! decoded garbage need not be increasing; the head never writes such chunks.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsdb::chunk::ChunkIter;
use tsdb::storage::SampleIterator;

fuzz_target!(|bytes: &[u8]| {
    let Ok(mut iter) = ChunkIter::new(bytes) else {
        return;
    };
    let mut last = 0i64;
    while let Some(sample) = SampleIterator::next(&mut iter) {
        last = sample.t;
    }
    if let Ok(mut iter) = ChunkIter::new(bytes) {
        let _ = iter.seek(last / 2);
        while SampleIterator::next(&mut iter).is_some() {}
    }
});
