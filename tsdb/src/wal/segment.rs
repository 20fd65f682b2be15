//! WAL segment files: naming, the segment header, and reading records back
//! with torn-tail and corruption detection. Byte layout:
//! `tsdb/docs/format/wal.md`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::record::{self, FRAME_HEADER_LEN, FRAME_TRAILER_LEN, Record};
use crate::{Error, Result};

/// First bytes of every segment file.
pub(crate) const MAGIC: [u8; 4] = *b"SXWL";
/// The segment format version this code writes. Version 2 added
/// snappy-compressed records; version 1 segments (never compressed) read
/// as before.
pub(crate) const VERSION: u8 = 2;

/// Whether this code reads segments of format `version`.
pub(crate) fn is_readable_version(version: u8) -> bool {
    version == 1 || version == VERSION
}
/// Magic, version and three reserved zero bytes.
pub(crate) const HEADER_LEN: u64 = 8;

pub(crate) fn header() -> [u8; HEADER_LEN as usize] {
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, 0, 0, 0]
}

/// File name of segment `index`: eight decimal digits.
pub(crate) fn segment_name(index: u32) -> String {
    format!("{index:08}")
}

/// The segment index a file name encodes, if it is a segment's name.
pub(crate) fn parse_segment_name(name: &str) -> Option<u32> {
    if name.len() == 8 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

/// The segments in `dir`, sorted by index.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        if let Some(index) = entry.file_name().to_str().and_then(parse_segment_name) {
            segments.push((index, entry.path()));
        }
    }
    segments.sort_unstable_by_key(|(index, _)| *index);
    Ok(segments)
}

pub(crate) fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates segment `index` in `dir` with its header, and makes the new
/// directory entry durable.
pub(crate) fn create_segment(dir: &Path, index: u32) -> Result<File> {
    let path = dir.join(segment_name(index));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    file.write_all(&header()).map_err(|e| io_error(&path, e))?;
    file.sync_all().map_err(|e| io_error(&path, e))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Makes renames and new files in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Where and why reading a segment stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Offset of the first byte that is not part of a valid record; the
    /// segment is good up to here.
    pub offset: u64,
    pub reason: String,
}

/// Reads every valid record of the segment at `path`, in order, and hands
/// each to `on_record`. Returns the damage that stopped the reading early,
/// if any: a torn tail (a record cut short) or a corrupted record. Damage
/// is a value, not an error; IO failures are errors.
pub(crate) fn read_segment(
    path: &Path,
    on_record: &mut dyn FnMut(Record),
) -> Result<Option<Damage>> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let file_len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);

    let mut header = [0u8; HEADER_LEN as usize];
    if file_len < HEADER_LEN {
        return Ok(Some(Damage {
            offset: 0,
            reason: format!("segment is {file_len} bytes, shorter than its header"),
        }));
    }
    reader
        .read_exact(&mut header)
        .map_err(|e| io_error(path, e))?;
    if header[..4] != MAGIC {
        return Ok(Some(Damage {
            offset: 0,
            reason: "bad magic number".to_string(),
        }));
    }
    if !is_readable_version(header[4]) {
        return Ok(Some(Damage {
            offset: 0,
            reason: format!("unsupported segment version {}", header[4]),
        }));
    }

    let mut offset = HEADER_LEN;
    let mut payload = Vec::new();
    loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            return Ok(None);
        }
        let damage = |reason: String| Ok(Some(Damage { offset, reason }));
        if remaining < (FRAME_HEADER_LEN + FRAME_TRAILER_LEN) as u64 {
            return damage(format!("torn record: only {remaining} bytes left"));
        }
        let mut frame_header = [0u8; FRAME_HEADER_LEN];
        reader
            .read_exact(&mut frame_header)
            .map_err(|e| io_error(path, e))?;
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&frame_header[1..]);
        let len = u64::from(u32::from_be_bytes(len_bytes));
        let frame_len = (FRAME_HEADER_LEN + FRAME_TRAILER_LEN) as u64 + len;
        if frame_len > remaining {
            return damage(format!(
                "torn record: needs {frame_len} bytes, {remaining} left"
            ));
        }
        // Bounded by the file length checked above, so a corrupted length
        // cannot make this allocate more than the file holds.
        payload.resize(len as usize, 0);
        reader
            .read_exact(&mut payload)
            .map_err(|e| io_error(path, e))?;
        let mut crc_bytes = [0u8; 4];
        reader
            .read_exact(&mut crc_bytes)
            .map_err(|e| io_error(path, e))?;
        let stored_crc = u32::from_be_bytes(crc_bytes);
        let crc = record::frame_crc(&frame_header, &payload);
        if crc != stored_crc {
            return damage(format!(
                "checksum mismatch: stored {stored_crc:#010x}, computed {crc:#010x}"
            ));
        }
        match record::decode(frame_header[0], &payload) {
            Ok(rec) => on_record(rec),
            Err(e) => return damage(format!("undecodable record: {e}")),
        }
        offset += frame_len;
    }
}
