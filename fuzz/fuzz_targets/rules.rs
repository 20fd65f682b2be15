//! Any text as a rules file: parsed and checked or refused with errors, never
//! a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sextant::rules::file::parse(text);
    }
});
