//! Reads a block's index file (`tsdb/docs/format/index.md`).

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roaring::{MultiOps, RoaringBitmap};

use crate::index::encoding::Decbuf;
use crate::index::{ChunkMeta, FORMAT_VERSION, IndexSeries, MAGIC, PostingsSource};
use crate::model::{Label, Labels};
use crate::{Error, Result};

/// Bytes of the header: magic and version.
const HEADER_LEN: usize = 5;
/// Bytes of the table of contents: five section offsets and a CRC32C.
const TOC_LEN: usize = 5 * 8 + 4;
/// Bytes framing a section: length in front, CRC32C behind.
const SECTION_OVERHEAD: usize = 8 + 4;

/// Bytes an index or chunk file is read from: a memory map in production,
/// a vector in tests.
pub(crate) type FileBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Maps a file read-only.
///
/// Safety reasoning: a memory map turns a file that changes underneath us
/// into undefined behaviour (or SIGBUS when truncated). Block files are
/// written to a temporary directory, synced, and only then renamed into
/// place; nothing in Sextant opens them for writing again, and deleting a
/// block only unlinks files, which keeps existing maps valid. An outside
/// process truncating files in the data directory is the remaining risk,
/// the same assumption Prometheus makes for its blocks.
pub(crate) fn map_file(path: &Path) -> Result<FileBytes> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: see above; the file is immutable once its block is visible.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    Ok(Arc::new(map))
}

/// A validated index file. Opening checks the magic, the version and the
/// CRC32C of every section, so later reads only need bounds checks (which
/// still turn any inconsistency into [`Error::Corrupted`], never a panic).
pub struct IndexReader {
    bytes: FileBytes,
    path: PathBuf,
    symbols: Vec<Arc<str>>,
    /// Data ranges of the sections in `bytes`.
    series: Range<usize>,
    series_offsets: Range<usize>,
    postings: Range<usize>,
    num_series: u32,
    /// Label names in order, each with its values in order and the range
    /// of their postings within the postings section.
    labels: Vec<LabelEntry>,
}

struct LabelEntry {
    name: Arc<str>,
    values: Vec<(Arc<str>, Range<usize>)>,
}

impl std::fmt::Debug for IndexReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexReader")
            .field("path", &self.path)
            .field("num_series", &self.num_series)
            .finish_non_exhaustive()
    }
}

impl IndexReader {
    /// Maps and validates the index file at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Corrupted`] when
    /// it is not a valid index.
    pub fn open(path: &Path) -> Result<Self> {
        IndexReader::from_bytes(map_file(path)?, path)
    }

    /// Validates index bytes; `path` names them in errors.
    pub(crate) fn from_bytes(bytes: FileBytes, path: &Path) -> Result<Self> {
        let corrupted = |offset: usize, reason: &str| Error::Corrupted {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason: reason.to_string(),
        };
        let all = (*bytes).as_ref();
        if all.len() < HEADER_LEN + TOC_LEN {
            return Err(corrupted(0, "file too short for an index"));
        }
        let mut header = Decbuf::new(&all[..HEADER_LEN]);
        if header.be_u32() != Some(MAGIC) {
            return Err(corrupted(0, "bad magic number"));
        }
        let version = header.u8().unwrap_or_default();
        if version != FORMAT_VERSION {
            return Err(corrupted(
                4,
                &format!("unsupported index version {version}"),
            ));
        }
        let toc_start = all.len() - TOC_LEN;
        let toc = &all[toc_start..all.len() - 4];
        let toc_crc = u32::from_be_bytes([
            all[all.len() - 4],
            all[all.len() - 3],
            all[all.len() - 2],
            all[all.len() - 1],
        ]);
        if crc32c::crc32c(toc) != toc_crc {
            return Err(corrupted(toc_start, "table of contents checksum mismatch"));
        }
        let mut toc = Decbuf::new(toc);
        let mut sections = [0..0, 0..0, 0..0, 0..0, 0..0];
        for section in &mut sections {
            let start = toc.be_u64().unwrap_or_default();
            *section = read_section(all, start, toc_start, path)?;
        }
        let [symbols, series, series_offsets, postings, table] = sections;

        let symbols = decode_symbols(&all[symbols.clone()])
            .map_err(|pos| corrupted(symbols.start + pos, "invalid symbol table"))?;
        if series_offsets.len() % 8 != 0 {
            return Err(corrupted(series_offsets.start, "series offset table size"));
        }
        let num_series = u32::try_from(series_offsets.len() / 8)
            .map_err(|_| corrupted(series_offsets.start, "too many series"))?;
        let labels = decode_postings_table(&all[table.clone()], &symbols, postings.len())
            .map_err(|pos| corrupted(table.start + pos, "invalid postings offset table"))?;
        Ok(IndexReader {
            bytes,
            path: path.to_path_buf(),
            symbols,
            series,
            series_offsets,
            postings,
            num_series,
            labels,
        })
    }

    fn corrupted(&self, offset: usize, reason: impl Into<String>) -> Error {
        Error::Corrupted {
            path: self.path.clone(),
            offset: offset as u64,
            reason: reason.into(),
        }
    }

    fn all(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of series; ids are `0..num_series`, in label order.
    pub fn num_series(&self) -> u32 {
        self.num_series
    }

    /// Number of distinct strings in the symbol table.
    pub fn num_symbols(&self) -> usize {
        self.symbols.len()
    }

    /// The labels and chunk metas of series `id`.
    ///
    /// # Errors
    /// [`Error::Corrupted`] for an unknown id or an inconsistent entry.
    pub fn series(&self, id: u32) -> Result<IndexSeries> {
        let offsets = &self.all()[self.series_offsets.clone()];
        let at = id as usize * 8;
        let Some(offset) = offsets
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
        else {
            return Err(self.corrupted(
                self.series_offsets.start,
                format!("series id {id} out of range"),
            ));
        };
        let data = &self.all()[self.series.clone()];
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let entry_offset = self.series.start.saturating_add(start);
        let Some(entry) = data.get(start..) else {
            return Err(self.corrupted(entry_offset, "series offset past the section"));
        };
        let mut d = Decbuf::new(entry);
        self.decode_series(&mut d)
            .ok_or_else(|| self.corrupted(entry_offset + d.position(), "invalid series entry"))
    }

    fn decode_series(&self, d: &mut Decbuf<'_>) -> Option<IndexSeries> {
        let num_labels = d.uvarint_usize()?;
        let mut labels: Vec<Label> = Vec::with_capacity(num_labels.min(64));
        for _ in 0..num_labels {
            let name = self.symbols.get(d.uvarint_usize()?)?;
            let value = self.symbols.get(d.uvarint_usize()?)?;
            if value.is_empty() || labels.last().is_some_and(|l| l.name >= *name) {
                return None;
            }
            labels.push(Label {
                name: name.clone(),
                value: value.clone(),
            });
        }
        let num_chunks = d.uvarint_usize()?;
        let mut chunks: Vec<ChunkMeta> = Vec::with_capacity(num_chunks.min(1024));
        for _ in 0..num_chunks {
            let meta = match chunks.last() {
                None => {
                    let min_t = d.varint()?;
                    let max_t = min_t.wrapping_add(d.varint()?);
                    let chunk_ref = d.uvarint()?;
                    ChunkMeta {
                        min_t,
                        max_t,
                        chunk_ref,
                    }
                }
                Some(prev) => {
                    let min_t = prev.max_t.wrapping_add(d.varint()?);
                    let max_t = min_t.wrapping_add(d.varint()?);
                    let chunk_ref = prev.chunk_ref.wrapping_add(d.varint()? as u64);
                    ChunkMeta {
                        min_t,
                        max_t,
                        chunk_ref,
                    }
                }
            };
            chunks.push(meta);
        }
        Some(IndexSeries {
            labels: Labels::from_sorted(labels),
            chunks,
        })
    }

    /// Sorted label names.
    pub fn label_names(&self) -> Vec<String> {
        self.labels.iter().map(|l| l.name.to_string()).collect()
    }

    /// Sorted values of label `name`.
    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.label(name)
            .map(|l| l.values.iter().map(|(v, _)| v.to_string()).collect())
            .unwrap_or_default()
    }

    fn label(&self, name: &str) -> Option<&LabelEntry> {
        self.labels
            .binary_search_by(|l| (*l.name).cmp(name))
            .ok()
            .map(|i| &self.labels[i])
    }

    fn read_postings(&self, range: &Range<usize>) -> Result<RoaringBitmap> {
        let offset = self.postings.start + range.start;
        let data = &self.all()[self.postings.clone()];
        let bytes = data
            .get(range.clone())
            .ok_or_else(|| self.corrupted(offset, "postings past the section"))?;
        let ids = RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| self.corrupted(offset, format!("invalid postings list: {e}")))?;
        if ids.max().is_some_and(|max| max >= self.num_series) {
            return Err(self.corrupted(offset, "postings reference an unknown series"));
        }
        Ok(ids)
    }
}

impl PostingsSource for IndexReader {
    fn postings(&self, name: &str, value: &str) -> Result<Cow<'_, RoaringBitmap>> {
        let Some(label) = self.label(name) else {
            return Ok(Cow::Owned(RoaringBitmap::new()));
        };
        match label.values.binary_search_by(|(v, _)| (**v).cmp(value)) {
            Ok(i) => Ok(Cow::Owned(self.read_postings(&label.values[i].1)?)),
            Err(_) => Ok(Cow::Owned(RoaringBitmap::new())),
        }
    }

    fn postings_matching(
        &self,
        name: &str,
        accept: &mut dyn FnMut(&str) -> bool,
    ) -> Result<RoaringBitmap> {
        let Some(label) = self.label(name) else {
            return Ok(RoaringBitmap::new());
        };
        let mut lists = Vec::new();
        for (value, range) in &label.values {
            if accept(value) {
                lists.push(self.read_postings(range)?);
            }
        }
        Ok(lists.union())
    }

    fn all_postings(&self) -> Result<Cow<'_, RoaringBitmap>> {
        let mut all = RoaringBitmap::new();
        all.insert_range(0..self.num_series);
        Ok(Cow::Owned(all))
    }
}

/// Checks the section framed at `start` and returns the range of its data.
fn read_section(all: &[u8], start: u64, end: usize, path: &Path) -> Result<Range<usize>> {
    let corrupted = |offset: u64, reason: &str| Error::Corrupted {
        path: path.to_path_buf(),
        offset,
        reason: reason.to_string(),
    };
    let start_usize = usize::try_from(start).unwrap_or(usize::MAX);
    if start_usize < HEADER_LEN || start_usize.saturating_add(SECTION_OVERHEAD) > end {
        return Err(corrupted(start, "section offset out of range"));
    }
    let len = Decbuf::new(&all[start_usize..])
        .be_u64()
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(usize::MAX);
    let data_start = start_usize + 8;
    let data_end = data_start
        .checked_add(len)
        .filter(|e| e.saturating_add(4) <= end)
        .ok_or_else(|| corrupted(start, "section length out of range"))?;
    let crc = u32::from_be_bytes([
        all[data_end],
        all[data_end + 1],
        all[data_end + 2],
        all[data_end + 3],
    ]);
    if crc32c::crc32c(&all[data_start..data_end]) != crc {
        return Err(corrupted(start, "section checksum mismatch"));
    }
    Ok(data_start..data_end)
}

/// Decodes the symbol table; the error is the position of the bad entry.
fn decode_symbols(data: &[u8]) -> Result<Vec<Arc<str>>, usize> {
    let mut d = Decbuf::new(data);
    let count = d.uvarint_usize().ok_or(0usize)?;
    let mut symbols: Vec<Arc<str>> = Vec::with_capacity(count.min(data.len()));
    for _ in 0..count {
        let at = d.position();
        let s = d.str().ok_or(at)?;
        if symbols.last().is_some_and(|prev| **prev >= *s) {
            return Err(at);
        }
        symbols.push(Arc::from(s));
    }
    if d.remaining() != 0 {
        return Err(d.position());
    }
    Ok(symbols)
}

/// Decodes the postings offset table into label entries.
fn decode_postings_table(
    data: &[u8],
    symbols: &[Arc<str>],
    postings_len: usize,
) -> Result<Vec<LabelEntry>, usize> {
    let mut d = Decbuf::new(data);
    let count = d.uvarint_usize().ok_or(0usize)?;
    let mut labels: Vec<LabelEntry> = Vec::new();
    let mut prev: Option<(usize, usize)> = None;
    for _ in 0..count {
        let at = d.position();
        let entry = (|| {
            let name = d.uvarint_usize()?;
            let value = d.uvarint_usize()?;
            let start = d.uvarint_usize()?;
            let len = d.uvarint_usize()?;
            let end = start.checked_add(len).filter(|e| *e <= postings_len)?;
            Some((name, value, start..end))
        })();
        let (name, value, range) = entry.ok_or(at)?;
        if prev.is_some_and(|p| p >= (name, value)) {
            return Err(at);
        }
        prev = Some((name, value));
        let (Some(name_str), Some(value_str)) = (symbols.get(name), symbols.get(value)) else {
            return Err(at);
        };
        if labels.last().is_none_or(|l| l.name != *name_str) {
            labels.push(LabelEntry {
                name: name_str.clone(),
                values: Vec::new(),
            });
        }
        if let Some(last) = labels.last_mut() {
            last.values.push((value_str.clone(), range));
        }
    }
    if d.remaining() != 0 {
        return Err(d.position());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::writer::encode_index;
    use crate::index::{MemPostings, postings_for_matchers};
    use crate::model::{MatchOp, Matcher};

    fn series_set() -> Vec<IndexSeries> {
        let mut series: Vec<IndexSeries> = Vec::new();
        for job in ["api", "db", "web"] {
            for instance in 0..20 {
                let mut pairs = vec![
                    ("__name__".to_string(), "up".to_string()),
                    ("job".to_string(), job.to_string()),
                    ("instance".to_string(), format!("10.0.0.{instance}:9100")),
                ];
                if instance % 3 == 0 {
                    pairs.push(("zone".to_string(), format!("z{}", instance % 2)));
                }
                let chunks = (0..(instance % 4) as i64)
                    .map(|c| ChunkMeta {
                        min_t: c * 1000 - 500,
                        max_t: c * 1000 + 400,
                        chunk_ref: (1 << 32) + 8 + (c as u64) * 100 + instance as u64,
                    })
                    .collect();
                series.push(IndexSeries {
                    labels: Labels::from_pairs(&pairs),
                    chunks,
                });
            }
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
    }

    fn reader(bytes: Vec<u8>) -> Result<IndexReader> {
        IndexReader::from_bytes(Arc::new(bytes), Path::new("index"))
    }

    #[test]
    fn index_round_trips_series_labels_and_postings() {
        let series = series_set();
        let bytes = encode_index(Path::new("index"), &series).unwrap();
        let r = reader(bytes).unwrap();
        assert_eq!(r.num_series() as usize, series.len());
        for (id, s) in series.iter().enumerate() {
            assert_eq!(&r.series(id as u32).unwrap(), s);
        }
        assert!(r.series(series.len() as u32).is_err());
        assert_eq!(r.label_names(), vec!["__name__", "instance", "job", "zone"]);
        assert_eq!(r.label_values("job"), vec!["api", "db", "web"]);
        assert_eq!(r.label_values("missing"), Vec::<String>::new());

        let mut mem = MemPostings::new();
        for (id, s) in series.iter().enumerate() {
            mem.add(id as u32, &s.labels);
        }
        let cases: &[&[(MatchOp, &str, &str)]] = &[
            &[(MatchOp::Equal, "job", "db")],
            &[(MatchOp::Equal, "job", "db"), (MatchOp::Equal, "zone", "")],
            &[
                (MatchOp::RegexMatch, "instance", ".*:9100"),
                (MatchOp::NotEqual, "job", "api"),
            ],
            &[
                (MatchOp::RegexMatch, "job", "api|web"),
                (MatchOp::RegexNoMatch, "zone", "z1"),
            ],
            &[(MatchOp::NotEqual, "zone", "")],
            &[(MatchOp::Equal, "job", "nope")],
        ];
        for case in cases {
            let matchers: Vec<Matcher> = case
                .iter()
                .map(|&(op, n, v)| Matcher::new(op, n, v).unwrap())
                .collect();
            let from_file = postings_for_matchers(&r, &matchers).unwrap();
            let from_mem = postings_for_matchers(&mem, &matchers).unwrap();
            assert_eq!(from_file, from_mem, "{matchers:?}");
        }
    }

    #[test]
    fn empty_index_is_valid() {
        let r = reader(encode_index(Path::new("index"), &[]).unwrap()).unwrap();
        assert_eq!(r.num_series(), 0);
        assert!(r.label_names().is_empty());
    }

    #[test]
    fn unsorted_or_duplicate_series_are_rejected() {
        let mut series = series_set();
        series.swap(0, 1);
        assert!(matches!(
            encode_index(Path::new("index"), &series),
            Err(Error::InvalidBlockInput { .. })
        ));
        let mut series = series_set();
        series[1] = series[0].clone();
        assert!(encode_index(Path::new("index"), &series).is_err());
    }

    #[test]
    fn any_flipped_byte_is_detected_at_open() {
        let bytes = encode_index(Path::new("index"), &series_set()).unwrap();
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            match reader(bad) {
                Err(Error::Corrupted { .. }) => {}
                other => panic!("flip at {at} not detected: {other:?}"),
            }
        }
        for len in [0, 10, bytes.len() - 1] {
            assert!(reader(bytes[..len].to_vec()).is_err());
        }
    }
}
