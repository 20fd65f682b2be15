//! The `chunks/` segment files of a block (`tsdb/docs/format/block.md`):
//! numbered files of CRC32C-framed chunks, addressed by chunk references.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::chunk::{Encoding, OwnedChunkIter};
use crate::index::encoding::{Decbuf, put_uvarint};
use crate::index::{FileBytes, map_file};
use crate::{Error, Result};

/// First bytes of a segment file ("SXCH").
const MAGIC: u32 = 0x5358_4348;
const FORMAT_VERSION: u8 = 1;
/// Magic, version and three bytes of padding.
pub(crate) const SEGMENT_HEADER_LEN: usize = 8;
/// Segments are cut before they would grow past this size, as in
/// Prometheus; chunk offsets must also fit the lower 32 bits of a reference.
pub(crate) const MAX_SEGMENT_SIZE: u64 = 512 * 1024 * 1024;

/// The file name of segment `number` (`000001`, ...).
pub(crate) fn segment_file_name(number: u32) -> String {
    format!("{number:06}")
}

/// Builds a chunk reference from a segment number and a byte offset.
pub(crate) fn chunk_ref(segment: u32, offset: u32) -> u64 {
    (u64::from(segment) << 32) | u64::from(offset)
}

/// Writes chunks into numbered segment files in a directory.
pub(crate) struct SegmentWriter {
    dir: PathBuf,
    current: Option<(u32, BufWriter<File>, PathBuf)>,
    /// Bytes written to the current segment.
    written: u64,
    next_number: u32,
    /// Bytes of all finished and current segments.
    total: u64,
}

impl SegmentWriter {
    pub(crate) fn new(dir: &Path) -> Self {
        SegmentWriter {
            dir: dir.to_path_buf(),
            current: None,
            written: 0,
            next_number: 1,
            total: 0,
        }
    }

    /// Appends one chunk and returns its reference.
    pub(crate) fn write_chunk(&mut self, encoding: u8, data: &[u8]) -> Result<u64> {
        let mut frame = Vec::with_capacity(data.len() + 16);
        put_uvarint(&mut frame, data.len() as u64);
        let crc_start = frame.len();
        frame.push(encoding);
        frame.extend_from_slice(data);
        let crc = crc32c::crc32c(&frame[crc_start..]);
        frame.extend_from_slice(&crc.to_be_bytes());

        let frame_len = frame.len() as u64;
        if self.current.is_none() || self.written + frame_len > MAX_SEGMENT_SIZE {
            self.cut()?;
        }
        let offset = self.written;
        let Some((number, file, path)) = self.current.as_mut() else {
            return Err(Error::InvalidBlockInput {
                reason: "no open chunk segment".to_string(),
            });
        };
        let offset = u32::try_from(offset).map_err(|_| Error::InvalidBlockInput {
            reason: format!("chunk of {} bytes does not fit a segment", data.len()),
        })?;
        file.write_all(&frame).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        self.written += frame_len;
        self.total += frame_len;
        Ok(chunk_ref(*number, offset))
    }

    /// Finishes the current segment and starts the next one.
    fn cut(&mut self) -> Result<()> {
        self.finish_current()?;
        let number = self.next_number;
        self.next_number += 1;
        let path = self.dir.join(segment_file_name(number));
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = BufWriter::new(File::create_new(&path).map_err(io)?);
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC.to_be_bytes());
        header[4] = FORMAT_VERSION;
        file.write_all(&header).map_err(io)?;
        self.written = SEGMENT_HEADER_LEN as u64;
        self.total += SEGMENT_HEADER_LEN as u64;
        self.current = Some((number, file, path));
        Ok(())
    }

    fn finish_current(&mut self) -> Result<()> {
        if let Some((_, file, path)) = self.current.take() {
            let io = |source| Error::Io {
                path: path.clone(),
                source,
            };
            let file = file.into_inner().map_err(|e| io(e.into_error()))?;
            file.sync_all().map_err(io)?;
        }
        Ok(())
    }

    /// Flushes and syncs the last segment; returns the total bytes written.
    pub(crate) fn finish(mut self) -> Result<u64> {
        self.finish_current()?;
        Ok(self.total)
    }
}

/// A chunk's bytes inside a mapped segment file; owning, so iterators over
/// it are `'static`.
#[derive(Clone)]
pub(crate) struct MappedChunk {
    file: FileBytes,
    range: Range<usize>,
    encoding: Encoding,
}

impl MappedChunk {
    /// Iterates the chunk, whose first timestamp (from its index entry) is
    /// `min_t`. Its CRC32C matched when it was read.
    pub(crate) fn iter(self, min_t: i64) -> OwnedChunkIter<MappedChunk> {
        let encoding = self.encoding;
        OwnedChunkIter::new_trusted(self, encoding, min_t)
    }
}

impl AsRef<[u8]> for MappedChunk {
    fn as_ref(&self) -> &[u8] {
        (*self.file)
            .as_ref()
            .get(self.range.clone())
            .unwrap_or_default()
    }
}

/// The mapped segment files of a block.
pub(crate) struct SegmentReader {
    dir: PathBuf,
    /// Segment `n` is at index `n - 1`.
    files: Vec<FileBytes>,
    size: u64,
}

impl SegmentReader {
    /// Maps every segment file in `dir`; they must be numbered `1..=n`
    /// without gaps and start with the segment header.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let number = name
                .to_str()
                .filter(|n| n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok());
            match number {
                Some(n) => numbers.push(n),
                None => {
                    return Err(Error::Corrupted {
                        path: entry.path(),
                        offset: 0,
                        reason: "unexpected file among chunk segments".to_string(),
                    });
                }
            }
        }
        numbers.sort_unstable();
        let mut files = Vec::with_capacity(numbers.len());
        let mut size = 0;
        for (i, number) in numbers.into_iter().enumerate() {
            let path = dir.join(segment_file_name(number));
            if number as usize != i + 1 {
                return Err(Error::Corrupted {
                    path,
                    offset: 0,
                    reason: format!("chunk segment {number} found where {} was expected", i + 1),
                });
            }
            let bytes = map_file(&path)?;
            let mut header = Decbuf::new((*bytes).as_ref());
            if header.be_u32() != Some(MAGIC) || header.u8() != Some(FORMAT_VERSION) {
                return Err(Error::Corrupted {
                    path,
                    offset: 0,
                    reason: "bad chunk segment header".to_string(),
                });
            }
            size += (*bytes).as_ref().len() as u64;
            files.push(bytes);
        }
        Ok(SegmentReader {
            dir: dir.to_path_buf(),
            files,
            size,
        })
    }

    /// Total bytes of the segment files.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    fn corrupted(&self, segment: u32, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corrupted {
            path: self.dir.join(segment_file_name(segment)),
            offset,
            reason: reason.into(),
        }
    }

    /// The XOR chunk at `chunk_ref`, after checking its CRC32C.
    pub(crate) fn chunk(&self, chunk_ref: u64) -> Result<MappedChunk> {
        let segment = (chunk_ref >> 32) as u32;
        let offset = chunk_ref & 0xffff_ffff;
        let file = segment
            .checked_sub(1)
            .and_then(|i| self.files.get(i as usize))
            .ok_or_else(|| {
                self.corrupted(segment, offset, "chunk reference to a missing segment")
            })?;
        let bytes = (**file).as_ref();
        let start = offset as usize;
        if start < SEGMENT_HEADER_LEN || start >= bytes.len() {
            return Err(self.corrupted(segment, offset, "chunk offset out of range"));
        }
        let mut d = Decbuf::new(&bytes[start..]);
        let framed = (|| {
            let len = d.uvarint_usize()?;
            let crc_start = start + d.position();
            let encoding = d.u8()?;
            d.bytes(len)?;
            let data_end = start + d.position();
            let crc = d.be_u32()?;
            Some((encoding, crc_start, data_end, crc))
        })();
        let Some((encoding, crc_start, data_end, crc)) = framed else {
            return Err(self.corrupted(segment, offset, "chunk extends past the segment"));
        };
        if crc32c::crc32c(&bytes[crc_start..data_end]) != crc {
            return Err(self.corrupted(segment, offset, "chunk checksum mismatch"));
        }
        // Encoding bytes 1 (plain Gorilla) and 2 (delta-of-delta
        // timestamps, decimal deltas without windows) were never released.
        let Some(encoding) = Encoding::from_byte(encoding) else {
            return Err(self.corrupted(
                segment,
                offset,
                format!("unknown chunk encoding {encoding}"),
            ));
        };
        Ok(MappedChunk {
            file: file.clone(),
            range: crc_start + 1..data_end,
            encoding,
        })
    }

    /// Checks the CRC32C of every chunk in every segment.
    pub(crate) fn verify_all(&self) -> Result<u64> {
        let mut chunks = 0;
        for (i, file) in self.files.iter().enumerate() {
            let segment = i as u32 + 1;
            let len = (**file).as_ref().len();
            let mut offset = SEGMENT_HEADER_LEN;
            while offset < len {
                let at = u32::try_from(offset)
                    .map_err(|_| self.corrupted(segment, offset as u64, "segment too large"))?;
                let chunk = self.chunk(chunk_ref(segment, at))?;
                // The frame ends with the 4-byte CRC after the data.
                offset = chunk.range.end + 4;
                chunks += 1;
            }
        }
        Ok(chunks)
    }
}
