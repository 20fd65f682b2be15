//! Reading the log while it is written: a reader outside the head (the
//! remote write queues) follows the segments from a position of its own.
//!
//! A segment is read from a byte offset up to the last complete record; a
//! record still being written reads as a torn tail, which the caller
//! retries later while the segment is the newest one. Byte layout:
//! `tsdb/docs/format/wal.md`.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{self, FRAME_HEADER_LEN, FRAME_TRAILER_LEN, Record};
use super::segment::{self, HEADER_LEN, MAGIC, io_error, is_readable_version};
use crate::Result;

/// Where reading a segment from an offset ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRead {
    /// The offset after the last complete, valid record read: where the
    /// next read of this segment starts.
    pub offset: u64,
    /// Why reading stopped before the end of the file, if it did: a record
    /// cut short (still being written, or torn by a crash) or damage.
    pub stopped: Option<String>,
}

/// The segments in the log directory `dir`, sorted by index.
///
/// # Errors
/// IO errors listing the directory.
pub fn list_segments(dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    segment::list_segments(dir)
}

/// The newest complete checkpoint in `dir` (`checkpoint.N/`), with `N`, the
/// last segment it covers.
///
/// # Errors
/// IO errors listing the directory.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<(u32, PathBuf)>> {
    Ok(super::list_checkpoints(dir)?.pop())
}

/// The segments of a checkpoint directory, sorted by index.
///
/// # Errors
/// IO errors listing the directory.
pub fn checkpoint_segments(checkpoint: &Path) -> Result<Vec<(u32, PathBuf)>> {
    segment::list_segments(checkpoint)
}

/// Reads the records of the segment at `path` that start at or after
/// `offset` (0 means the start of the file; the header is checked) and
/// hands each to `on_record`, stopping at the first incomplete or damaged
/// record.
///
/// # Errors
/// IO errors, including [`io::ErrorKind::NotFound`] when the segment was
/// deleted by a checkpoint.
pub fn read_segment_from(
    path: &Path,
    offset: u64,
    on_record: &mut dyn FnMut(Record),
) -> Result<TailRead> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let file_len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut offset = offset;
    if offset < HEADER_LEN {
        if file_len < HEADER_LEN {
            return Ok(TailRead {
                offset: 0,
                stopped: Some("segment header not written yet".to_string()),
            });
        }
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact(&mut header)
            .map_err(|e| io_error(path, e))?;
        if header[..4] != MAGIC || !is_readable_version(header[4]) {
            return Ok(TailRead {
                offset: 0,
                stopped: Some("bad segment header".to_string()),
            });
        }
        offset = HEADER_LEN;
    } else {
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error(path, e))?;
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut payload = Vec::new();
    loop {
        let remaining = file_len.saturating_sub(offset);
        if remaining == 0 {
            return Ok(TailRead {
                offset,
                stopped: None,
            });
        }
        let stop = |reason: String| {
            Ok(TailRead {
                offset,
                stopped: Some(reason),
            })
        };
        if remaining < (FRAME_HEADER_LEN + FRAME_TRAILER_LEN) as u64 {
            return stop(format!("incomplete record: {remaining} bytes"));
        }
        let mut frame_header = [0u8; FRAME_HEADER_LEN];
        read_exact(&mut reader, &mut frame_header, path)?;
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&frame_header[1..]);
        let len = u64::from(u32::from_be_bytes(len_bytes));
        let frame_len = (FRAME_HEADER_LEN + FRAME_TRAILER_LEN) as u64 + len;
        if frame_len > remaining {
            return stop(format!(
                "incomplete record: needs {frame_len} bytes, {remaining} written"
            ));
        }
        // Bounded by the file length checked above.
        payload.resize(len as usize, 0);
        read_exact(&mut reader, &mut payload, path)?;
        let mut crc_bytes = [0u8; 4];
        read_exact(&mut reader, &mut crc_bytes, path)?;
        if record::frame_crc(&frame_header, &payload) != u32::from_be_bytes(crc_bytes) {
            return stop("checksum mismatch".to_string());
        }
        match record::decode(frame_header[0], &payload) {
            Ok(rec) => on_record(rec),
            Err(e) => return stop(format!("undecodable record: {e}")),
        }
        offset += frame_len;
    }
}

fn read_exact(reader: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<()> {
    reader
        .read_exact(buf)
        .map_err(|e: io::Error| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, SeriesRef};
    use crate::wal::{RefSample, RefSeries, Wal, WalOptions};

    fn series_ref(id: u64) -> SeriesRef {
        SeriesRef::new(id).unwrap()
    }

    #[test]
    fn follows_a_segment_while_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), WalOptions::default(), |_| {}).unwrap();
        let segments = list_segments(dir.path()).unwrap();
        assert_eq!(segments.len(), 1);
        let path = &segments[0].1;

        let mut records = Vec::new();
        let read = read_segment_from(path, 0, &mut |r| records.push(r)).unwrap();
        assert_eq!(read.offset, HEADER_LEN);
        assert!(records.is_empty());

        wal.log_series(&[RefSeries {
            series_ref: series_ref(1),
            labels: Labels::from_pairs(&[("__name__", "up")]),
        }]);
        let sample = RefSample {
            series_ref: series_ref(1),
            t: 1000,
            v: 1.0,
        };
        wal.log_samples(&[sample]).unwrap();
        let read = read_segment_from(path, read.offset, &mut |r| records.push(r)).unwrap();
        assert_eq!(read.stopped, None);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1], Record::Samples(vec![sample]));

        // Nothing new: the same offset again.
        let again = read_segment_from(path, read.offset, &mut |r| records.push(r)).unwrap();
        assert_eq!(again.offset, read.offset);
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn a_record_cut_short_is_read_once_complete() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), WalOptions::default(), |_| {}).unwrap();
        wal.log_samples(&[RefSample {
            series_ref: series_ref(7),
            t: 5,
            v: 2.5,
        }])
        .unwrap();
        drop(wal);
        let path = list_segments(dir.path()).unwrap()[0].1.clone();
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let mut records = Vec::new();
        let read = read_segment_from(&path, 0, &mut |r| records.push(r)).unwrap();
        assert_eq!(read.offset, HEADER_LEN);
        assert!(read.stopped.unwrap().contains("incomplete"));
        std::fs::write(&path, &full).unwrap();
        let read = read_segment_from(&path, read.offset, &mut |r| records.push(r)).unwrap();
        assert_eq!(read.offset, full.len() as u64);
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn a_deleted_segment_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_segment_from(&dir.path().join("00000009"), 0, &mut |_| {}).unwrap_err();
        assert!(
            matches!(&error, crate::Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
        );
    }
}
