//! Writes a block's index file (`tsdb/docs/format/index.md`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

use crate::index::encoding::{put_str, put_uvarint, put_varint};
use crate::index::{ChunkMeta, FORMAT_VERSION, IndexSeries, MAGIC};
use crate::{Error, Result};

/// Writes the index of `series`, which must be sorted by labels with no
/// duplicates, to a new file at `path` and syncs it. Series ids are positions
/// in `series`. Returns the file size.
///
/// # Errors
/// [`Error::InvalidBlockInput`] for unsorted or duplicate series or more than
/// `u32::MAX` series; [`Error::Io`] when writing fails.
pub fn write_index(path: &Path, series: &[IndexSeries]) -> Result<u64> {
    let bytes = encode_index(path, series)?;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::create_new(path).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(bytes.len() as u64)
}

/// The bytes of the index file of `series`, to be written at `path`.
pub(crate) fn encode_index(path: &Path, series: &[IndexSeries]) -> Result<Vec<u8>> {
    if u32::try_from(series.len()).is_err() {
        return Err(Error::InvalidBlockInput {
            reason: format!("{} series exceed the u32 id space", series.len()),
        });
    }
    if let Some(pair) = series.windows(2).find(|w| w[0].labels >= w[1].labels) {
        return Err(Error::InvalidBlockInput {
            reason: format!(
                "series not sorted by labels: {} before {}",
                pair[0].labels, pair[1].labels
            ),
        });
    }

    // Symbols: every label name and value once, sorted, so that symbol
    // order is string order.
    let mut symbols: Vec<&str> = series
        .iter()
        .flat_map(|s| s.labels.iter())
        .flat_map(|l| [&*l.name, &*l.value])
        .collect();
    symbols.sort_unstable();
    symbols.dedup();
    let symbol_ref: FxHashMap<&str, u64> = symbols
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u64))
        .collect();
    let sym = |s: &str| symbol_ref.get(s).copied().unwrap_or_default();

    let mut symbols_data = Vec::new();
    put_uvarint(&mut symbols_data, symbols.len() as u64);
    for s in &symbols {
        put_str(&mut symbols_data, s);
    }

    // Series, and the postings of every label pair keyed by symbol refs
    // (whose order is the order of the strings).
    let mut series_data = Vec::new();
    let mut series_offsets = Vec::with_capacity(series.len() * 8);
    let mut postings: BTreeMap<(u64, u64), RoaringBitmap> = BTreeMap::new();
    for (id, s) in series.iter().enumerate() {
        series_offsets.extend_from_slice(&(series_data.len() as u64).to_be_bytes());
        put_uvarint(&mut series_data, s.labels.len() as u64);
        for label in &s.labels {
            let key = (sym(&label.name), sym(&label.value));
            put_uvarint(&mut series_data, key.0);
            put_uvarint(&mut series_data, key.1);
            // `id < u32::MAX` was checked above.
            postings.entry(key).or_default().insert(id as u32);
        }
        encode_chunk_metas(&mut series_data, &s.chunks);
    }

    let mut postings_data = Vec::new();
    let mut table_data = Vec::new();
    put_uvarint(&mut table_data, postings.len() as u64);
    for ((name, value), ids) in &postings {
        let start = postings_data.len() as u64;
        // Writing into a Vec does not fail in practice.
        ids.serialize_into(&mut postings_data)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        put_uvarint(&mut table_data, *name);
        put_uvarint(&mut table_data, *value);
        put_uvarint(&mut table_data, start);
        put_uvarint(&mut table_data, postings_data.len() as u64 - start);
    }

    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.push(FORMAT_VERSION);
    let mut toc = Vec::with_capacity(5 * 8);
    for data in [
        &symbols_data,
        &series_data,
        &series_offsets,
        &postings_data,
        &table_data,
    ] {
        toc.extend_from_slice(&(out.len() as u64).to_be_bytes());
        put_section(&mut out, data);
    }
    let toc_crc = crc32c::crc32c(&toc);
    out.extend_from_slice(&toc);
    out.extend_from_slice(&toc_crc.to_be_bytes());
    Ok(out)
}

/// `len <8b>`, the data, `crc32c(data) <4b>`.
fn put_section(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u64).to_be_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32c::crc32c(data).to_be_bytes());
}

/// Chunk metas: count, then the first chunk absolute and the others as
/// deltas from the previous one.
fn encode_chunk_metas(out: &mut Vec<u8>, chunks: &[ChunkMeta]) {
    put_uvarint(out, chunks.len() as u64);
    let mut prev: Option<&ChunkMeta> = None;
    for c in chunks {
        match prev {
            None => {
                put_varint(out, c.min_t);
                put_varint(out, c.max_t.wrapping_sub(c.min_t));
                put_uvarint(out, c.chunk_ref);
            }
            Some(p) => {
                put_varint(out, c.min_t.wrapping_sub(p.max_t));
                put_varint(out, c.max_t.wrapping_sub(c.min_t));
                put_varint(out, c.chunk_ref.wrapping_sub(p.chunk_ref) as i64);
            }
        }
        prev = Some(c);
    }
}
