//! Any body as a remote write or remote read request (snappy, then protobuf),
//! with the receivers' size limit, then converted as the receivers convert:
//! an error or labels and matchers, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sextant::remote::proto::{ReadRequest, WriteRequest};
use sextant::remote::{decode, labels_from_proto, matcher_from_proto};

/// Bodies decompressing to more are refused before allocating.
const LIMIT: usize = 1 << 20;

fuzz_target!(|body: &[u8]| {
    if let Ok(request) = decode::<WriteRequest>(body, LIMIT) {
        for series in &request.timeseries {
            let _ = labels_from_proto(&series.labels);
        }
    }
    if let Ok(request) = decode::<ReadRequest>(body, LIMIT) {
        for query in &request.queries {
            for matcher in &query.matchers {
                let _ = matcher_from_proto(matcher);
            }
        }
    }
});
