//! Any byte string through both parsers in both modes, the label iterators,
//! the sample label builder and the strict checker: none may panic, and a
//! successfully parsed sample's series text must be part of the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scraper::exposition::{Entry, Format, Parser, lint};
use scraper::scrape_loop::{check_labels, sample_labels};
use tsdb::model::Labels;

fuzz_target!(|body: &[u8]| {
    let target = Labels::from_pairs(&[("instance", "h:1"), ("job", "fuzz")]);
    for format in [Format::Text, Format::OpenMetrics] {
        for parser in [Parser::new(body, format), Parser::strict(body, format)] {
            for entry in parser {
                let Ok(Entry::Sample(sample)) = entry else { continue };
                let series = sample.series();
                let start = series.as_ptr() as usize - body.as_ptr() as usize;
                assert!(start + series.len() <= body.len());
                for _ in sample.labels() {}
                if let Some(exemplar) = &sample.exemplar {
                    for _ in exemplar.labels() {}
                }
                for honor in [false, true] {
                    if let Ok(labels) = sample_labels(&sample, &target, honor) {
                        let _ = check_labels(&labels);
                    }
                }
            }
        }
        let _ = lint::check(body, format);
    }
});
