//! A block's deleted time intervals per series: the `tombstones` file next
//! to its index, written by deletions (the admin API's `delete_series`) and
//! honoured by every read and compaction until `clean_tombstones` rewrites
//! the block without the deleted samples.
//!
//! Byte layout: [`tsdb/docs/format/tombstones.md`](../../../docs/format/tombstones.md),
//! pinned by the golden file `tsdb/tests/data/tombstones` (test below).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// File name inside a block directory.
pub const TOMBSTONES_FILE: &str = "tombstones";
/// First four bytes of the file (Prometheus's tombstones magic).
pub const TOMBSTONES_MAGIC: u32 = 0x0130_BA30;
/// The format version that follows the magic.
pub const TOMBSTONES_VERSION: u8 = 1;
const HEADER_LEN: usize = 5;
const CRC_LEN: usize = 4;

/// A deleted time interval, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub min_t: i64,
    pub max_t: i64,
}

impl Interval {
    pub fn new(min_t: i64, max_t: i64) -> Self {
        Interval { min_t, max_t }
    }

    pub fn contains(&self, t: i64) -> bool {
        self.min_t <= t && t <= self.max_t
    }
}

/// Sorted, disjoint, non-adjacent intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(Vec<Interval>);

impl Intervals {
    pub fn as_slice(&self) -> &[Interval] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds an interval, merging it with those it overlaps or touches.
    pub fn add(&mut self, new: Interval) {
        if new.min_t > new.max_t {
            return;
        }
        let mut merged = new;
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for &iv in &self.0 {
            if iv.max_t.saturating_add(1) < merged.min_t {
                out.push(iv);
            } else if merged.max_t.saturating_add(1) < iv.min_t {
                if !placed {
                    out.push(merged);
                    placed = true;
                }
                out.push(iv);
            } else {
                merged = Interval::new(merged.min_t.min(iv.min_t), merged.max_t.max(iv.max_t));
            }
        }
        if !placed {
            out.push(merged);
        }
        self.0 = out;
    }

    /// Is `t` deleted? Returns the interval holding it.
    pub fn find(&self, t: i64) -> Option<Interval> {
        let i = self.0.partition_point(|iv| iv.max_t < t);
        self.0.get(i).copied().filter(|iv| iv.contains(t))
    }

    /// Is all of `[min_t, max_t]` deleted?
    pub fn covers(&self, min_t: i64, max_t: i64) -> bool {
        self.find(min_t).is_some_and(|iv| iv.max_t >= max_t)
    }
}

/// Deleted intervals by series id (the series' number in the block index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tombstones {
    by_series: BTreeMap<u32, Intervals>,
}

impl Tombstones {
    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }

    /// Number of (series, interval) entries, as the file stores them.
    pub fn len(&self) -> usize {
        self.by_series.values().map(|i| i.0.len()).sum()
    }

    pub fn get(&self, series: u32) -> Option<&Intervals> {
        self.by_series.get(&series)
    }

    pub fn add(&mut self, series: u32, interval: Interval) {
        if interval.min_t <= interval.max_t {
            self.by_series.entry(series).or_default().add(interval);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Intervals)> {
        self.by_series.iter().map(|(s, i)| (*s, i))
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.len() * 8 + CRC_LEN);
        out.extend_from_slice(&TOMBSTONES_MAGIC.to_be_bytes());
        out.push(TOMBSTONES_VERSION);
        for (series, intervals) in &self.by_series {
            for iv in &intervals.0 {
                put_uvarint(&mut out, u64::from(*series));
                put_varint(&mut out, iv.min_t);
                put_varint(&mut out, iv.max_t);
            }
        }
        let crc = crc32c::crc32c(&out[HEADER_LEN..]);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses the file's bytes; `path` names the file in errors.
    ///
    /// # Errors
    /// [`Error::Corrupted`] with the offset of the damage.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Tombstones> {
        let corrupted = |offset: usize, reason: String| Error::Corrupted {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        if bytes.len() < HEADER_LEN + CRC_LEN {
            return Err(corrupted(0, format!("{} bytes is too short", bytes.len())));
        }
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if magic != TOMBSTONES_MAGIC {
            return Err(corrupted(0, format!("bad magic {magic:#010x}")));
        }
        if bytes[4] != TOMBSTONES_VERSION {
            return Err(corrupted(4, format!("unsupported version {}", bytes[4])));
        }
        let crc_at = bytes.len() - CRC_LEN;
        let body = &bytes[HEADER_LEN..crc_at];
        let stored = u32::from_be_bytes([
            bytes[crc_at],
            bytes[crc_at + 1],
            bytes[crc_at + 2],
            bytes[crc_at + 3],
        ]);
        if crc32c::crc32c(body) != stored {
            return Err(corrupted(crc_at, "checksum mismatch".to_string()));
        }
        let mut tombstones = Tombstones::default();
        let mut pos = 0;
        while pos < body.len() {
            let entry_at = HEADER_LEN + pos;
            let truncated = || corrupted(entry_at, "entry ends early".to_string());
            let series = get_uvarint(body, &mut pos).ok_or_else(truncated)?;
            let min_t = get_varint(body, &mut pos).ok_or_else(truncated)?;
            let max_t = get_varint(body, &mut pos).ok_or_else(truncated)?;
            let series = u32::try_from(series)
                .map_err(|_| corrupted(entry_at, format!("series id {series} exceeds 32 bits")))?;
            if min_t > max_t {
                return Err(corrupted(
                    entry_at,
                    format!("interval [{min_t}, {max_t}] ends before it starts"),
                ));
            }
            tombstones.add(series, Interval::new(min_t, max_t));
        }
        Ok(tombstones)
    }

    /// Reads `<block dir>/tombstones`; a missing file is no tombstones.
    ///
    /// # Errors
    /// [`Error::Corrupted`] for a damaged file, [`Error::Io`].
    pub fn read(block_dir: &Path) -> Result<Tombstones> {
        let path = block_dir.join(TOMBSTONES_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Tombstones::decode(&bytes, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tombstones::default()),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// Replaces `<block dir>/tombstones` atomically (a synced temporary
    /// file renamed over it), or removes it when there are none.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn write(&self, block_dir: &Path) -> Result<()> {
        let path = block_dir.join(TOMBSTONES_FILE);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        if self.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
                _ => super::sync_dir(block_dir),
            };
        }
        let tmp = block_dir.join(format!("{TOMBSTONES_FILE}.tmp"));
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&self.encode()).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        super::sync_dir(block_dir)
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn put_varint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, ((x << 1) ^ (x >> 63)) as u64);
}

fn get_uvarint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut x = 0u64;
    for i in 0..10 {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        x |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some(x);
        }
    }
    None
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let u = get_uvarint(buf, pos)?;
    Some(((u >> 1) as i64) ^ -((u & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden() -> Tombstones {
        let mut t = Tombstones::default();
        t.add(0, Interval::new(1_000, 2_000));
        t.add(0, Interval::new(5_000, 9_000));
        t.add(3, Interval::new(i64::MIN, i64::MAX));
        t.add(300, Interval::new(-5, 70));
        t
    }

    #[test]
    fn golden_file_decodes_and_reencodes_identically() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tombstones");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, golden().encode()).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        // The layout of tombstones.md: magic, version, entries, CRC32C.
        assert_eq!(&bytes[..5], &[0x01, 0x30, 0xBA, 0x30, 0x01]);
        // Series 0, [1000, 2000]: uvarint 0, zigzag varints 2000 and 4000.
        assert_eq!(&bytes[5..10], &[0x00, 0xd0, 0x0f, 0xa0, 0x1f]);
        let decoded = Tombstones::decode(&bytes, &path).unwrap();
        assert_eq!(decoded, golden());
        assert_eq!(decoded.len(), 4);
        assert_eq!(decoded.encode(), bytes);
    }

    #[test]
    fn write_read_and_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Tombstones::read(dir.path()).unwrap().is_empty());
        golden().write(dir.path()).unwrap();
        assert_eq!(Tombstones::read(dir.path()).unwrap(), golden());
        Tombstones::default().write(dir.path()).unwrap();
        assert!(!dir.path().join(TOMBSTONES_FILE).exists());
    }

    #[test]
    fn damage_is_an_error_naming_the_offset() {
        let path = Path::new("tombstones");
        let bytes = golden().encode();
        for (cut, what) in [
            (bytes.len() - 1, "checksum"),
            (3, "short"),
            (bytes.len() - 6, "checksum"),
        ] {
            let err = Tombstones::decode(&bytes[..cut], path).unwrap_err();
            assert!(matches!(err, Error::Corrupted { .. }), "{what}: {err}");
        }
        let mut flipped = bytes.clone();
        flipped[7] ^= 0x40;
        let err = Tombstones::decode(&flipped, path).unwrap_err().to_string();
        assert!(
            err.contains("tombstones") && err.contains("checksum"),
            "{err}"
        );
        let mut bad_magic = bytes;
        bad_magic[0] = 9;
        let err = Tombstones::decode(&bad_magic, path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("offset 0") && err.contains("magic"), "{err}");
    }

    #[test]
    fn intervals_merge_and_answer_lookups() {
        let mut iv = Intervals::default();
        iv.add(Interval::new(10, 20));
        iv.add(Interval::new(40, 50));
        iv.add(Interval::new(21, 25)); // touches the first
        iv.add(Interval::new(5, 3)); // empty: ignored
        assert_eq!(
            iv.as_slice(),
            &[Interval::new(10, 25), Interval::new(40, 50)]
        );
        iv.add(Interval::new(0, 45));
        assert_eq!(iv.as_slice(), &[Interval::new(0, 50)]);
        iv.add(Interval::new(100, 200));
        assert_eq!(iv.find(150), Some(Interval::new(100, 200)));
        assert_eq!(iv.find(60), None);
        assert!(iv.covers(0, 50));
        assert!(!iv.covers(0, 51));
        assert!(!iv.covers(99, 120));
    }
}
