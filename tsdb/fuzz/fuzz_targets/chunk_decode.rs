//! Any bytes as a chunk: opening validates, iterating and seeking never panic,
//! and timestamps come out strictly increasing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsdb::chunk::ChunkIter;
use tsdb::storage::SampleIterator;

fuzz_target!(|bytes: &[u8]| {
    let Ok(mut iter) = ChunkIter::new(bytes) else {
        return;
    };
    let mut last = i64::MIN;
    let mut n = 0usize;
    while let Some(sample) = SampleIterator::next(&mut iter) {
        assert!(n == 0 || sample.t > last, "timestamps must increase");
        last = sample.t;
        n += 1;
    }
    if let Ok(mut iter) = ChunkIter::new(bytes) {
        let _ = iter.seek(last / 2);
        while SampleIterator::next(&mut iter).is_some() {}
    }
});
