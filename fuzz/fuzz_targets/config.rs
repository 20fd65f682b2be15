//! Any text as a configuration file: loaded or refused with an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sextant::config::Config::from_yaml(text, "fuzz.yml");
    }
});
