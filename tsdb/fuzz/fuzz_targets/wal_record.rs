//! Any record type and payload through the WAL record decoder: an error or a
//! record, never a panic or an allocation the payload cannot back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&record_type, payload)) = data.split_first() else {
        return;
    };
    let _ = tsdb::wal::decode_record(record_type, payload);
});
