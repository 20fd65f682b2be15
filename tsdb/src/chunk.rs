//! Gorilla-style float chunks: delta-of-delta timestamps and XOR-encoded
//! values in one bit stream, plus the rules that decide when the head cuts a
//! new chunk.
//!
//! The byte layout is documented in
//! [`tsdb/docs/format/chunks.md`](../../docs/format/chunks.md) and pinned by
//! the golden test in `tsdb/tests/format.rs`. Why we wrote our own encoder is
//! in `docs/decisions/2026-11-21-own-gorilla-chunks.md`.
//!
//! An [`XorChunk`] is appendable while open, and readable at every moment:
//! [`XorChunk::bytes`] always holds a complete, decodable chunk with every
//! sample appended so far, so copying those bytes is a consistent snapshot.
//! Values round-trip bit-exactly (staleness markers, other NaN payloads,
//! ±Inf, -0.0), and any timestamp gap works: deltas that do not fit the short
//! encodings fall back to 64 bits.
//!
//! Reading: [`XorChunk::iter`] borrows an open chunk; [`ChunkIter::new`]
//! validates bytes read from disk and borrows them; [`OwnedChunkIter`] owns
//! shared bytes and is the `'static` [`SampleIterator`] queriers return.

mod bstream;

use std::sync::Arc;

use bstream::{BitReader, BitWriter, low_mask};

use crate::model::Sample;
use crate::storage::SampleIterator;

/// Bytes of the header in front of the bit stream: the sample count as a
/// big-endian `u16`.
const HEADER_LEN: usize = 2;

/// The largest chunk the head produces. [`CutRules`] cut a new chunk before
/// an append could cross it (Prometheus's `MaxBytesPerXORChunk`).
pub const MAX_CHUNK_BYTES: usize = 1024;

/// The most bytes one appended sample can add: a 69-bit timestamp and a
/// 79-bit value, rounded up.
pub const MAX_SAMPLE_BYTES: usize = 19;

/// Payload widths of the variable-width signed integer codes. Code `i` is
/// `i` one bits followed by a zero bit, except the last, which is only one
/// bits; the payload is the value in two's complement, and a width of 0
/// encodes only zero. The final code holds any `i64`, so arbitrarily large
/// timestamp gaps and value jumps work.
///
/// Timestamp delta-of-deltas: tuned for millisecond scrape jitter (a 15 s
/// scrape with up to 50 ms jitter mostly lands in the 7-bit code).
const DOD_WIDTHS: [u32; 6] = [0, 7, 10, 17, 32, 64];
/// Deltas of decimal mantissas: small counter increments and gauge steps fit
/// the 4- and 7-bit codes.
const DELTA_WIDTHS: [u32; 6] = [4, 7, 12, 20, 32, 64];

/// Values are encoded as decimal mantissas `m` with `v = m / 10^scale` for
/// scales `0..=MAX_SCALE` when that reproduces their bits exactly.
const MAX_SCALE: u32 = 12;
const SCALE_BITS: u32 = 4;
const POW10: [f64; MAX_SCALE as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
];
/// Mantissas stay within ±2^53, where every integer is an exact `f64`.
const MAX_EXACT_MANTISSA: f64 = 9_007_199_254_740_992.0;

/// Why bytes are not a valid chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeChunkError {
    #[error("chunk of {len} bytes is shorter than its {HEADER_LEN}-byte header")]
    TooShort { len: usize },
    #[error("chunk ends inside sample {sample} of {samples}")]
    Truncated { sample: u16, samples: u16 },
    #[error("sample {sample} has an invalid value encoding: {what}")]
    Malformed { sample: u16, what: &'static str },
    #[error("chunk has {extra} bytes after its last sample")]
    TrailingBytes { extra: usize },
}

/// An appendable Gorilla chunk of float samples.
#[derive(Debug, Clone)]
pub struct XorChunk {
    /// Header and bit stream; always a complete chunk.
    writer: BitWriter,
    num_samples: u16,
    min_t: i64,
    max_t: i64,
    /// Delta between the last two timestamps.
    last_delta: i64,
    last_value_bits: u64,
    /// Current decimal scale of the value encoding.
    scale: u32,
    /// The last value's mantissa at `scale`, when it was decimal-coded (or
    /// the first value); recomputed from the value otherwise.
    mantissa: Option<i64>,
    /// Leading and trailing zero counts of the last written XOR window.
    window: Option<XorWindow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct XorWindow {
    leading: u32,
    trailing: u32,
}

impl Default for XorChunk {
    fn default() -> Self {
        XorChunk::new()
    }
}

impl XorChunk {
    /// An empty chunk.
    pub fn new() -> Self {
        XorChunk {
            writer: BitWriter::with_prefix(vec![0; HEADER_LEN]),
            num_samples: 0,
            min_t: 0,
            max_t: 0,
            last_delta: 0,
            last_value_bits: 0,
            scale: 0,
            mantissa: None,
            window: None,
        }
    }

    /// Appends a sample. The caller guarantees timestamps increase (the head
    /// rejects out-of-order samples before they reach a chunk); the encoding
    /// itself is lossless for any sequence.
    ///
    /// # Panics
    /// When the chunk already holds `u16::MAX` samples. [`CutRules`] cut
    /// chunks at 240 samples, so this is a bug in the caller.
    pub fn append(&mut self, t: i64, v: f64) {
        assert!(self.num_samples < u16::MAX, "chunk sample count overflow");
        let bits = v.to_bits();
        match self.num_samples {
            0 => {
                self.writer.write_varint(t);
                self.writer.write_bits(bits, 64);
                self.min_t = t;
                self.scale = smallest_scale(bits).unwrap_or(0);
                self.mantissa = decimal_mantissa(bits, self.scale);
            }
            1 => {
                let delta = t.wrapping_sub(self.max_t);
                self.writer.write_varint(delta);
                self.write_value(bits);
                self.last_delta = delta;
            }
            _ => {
                let delta = t.wrapping_sub(self.max_t);
                self.write_dod(delta.wrapping_sub(self.last_delta));
                self.write_value(bits);
                self.last_delta = delta;
            }
        }
        self.max_t = t;
        self.last_value_bits = bits;
        self.num_samples += 1;
        let header = self.num_samples.to_be_bytes();
        self.writer.bytes_mut()[..HEADER_LEN].copy_from_slice(&header);
    }

    fn write_dod(&mut self, dod: i64) {
        self.write_signed(&DOD_WIDTHS, dod);
    }

    /// Writes `v` with the first code of `widths` that holds it.
    fn write_signed(&mut self, widths: &[u32; 6], v: i64) {
        let last = widths.len() - 1;
        for (code, &width) in widths.iter().enumerate() {
            let code = code as u32;
            if code as usize == last {
                self.writer.write_bits(low_mask(code), code);
            } else if fits_signed(v, width) {
                self.writer.write_bits(low_mask(code) << 1, code + 1);
            } else {
                continue;
            }
            self.writer.write_bits(v as u64, width);
            return;
        }
    }

    /// Writes a value: unchanged (`0`), as a decimal mantissa delta at the
    /// current scale (`10`), with a new scale (`110`), or XOR-encoded
    /// (`111`).
    fn write_value(&mut self, bits: u64) {
        let prev = self.last_value_bits;
        if bits == prev {
            self.writer.write_bit(false);
            return;
        }
        if let Some(m) = decimal_mantissa(bits, self.scale)
            && let Some(prev_m) = self.mantissa.or_else(|| decimal_mantissa(prev, self.scale))
        {
            self.writer.write_bits(0b10, 2);
            self.write_signed(&DELTA_WIDTHS, m.wrapping_sub(prev_m));
            self.mantissa = Some(m);
            return;
        }
        if let Some((scale, prev_m, m)) = common_scale(prev, bits) {
            self.writer.write_bits(0b110, 3);
            self.writer.write_bits(u64::from(scale), SCALE_BITS);
            self.write_signed(&DELTA_WIDTHS, m.wrapping_sub(prev_m));
            self.scale = scale;
            self.mantissa = Some(m);
            return;
        }
        self.writer.write_bits(0b111, 3);
        self.mantissa = None;
        self.write_xor(bits ^ prev);
    }

    /// Gorilla's XOR encoding of a non-zero `xor`: reuse the current window
    /// of meaningful bits (`0`) or start a new one (`1`).
    fn write_xor(&mut self, xor: u64) {
        // Five bits hold the leading-zero count, so it is capped at 31.
        let leading = xor.leading_zeros().min(31);
        let trailing = xor.trailing_zeros();
        if let Some(w) = self.window
            && leading >= w.leading
            && trailing >= w.trailing
        {
            self.writer.write_bit(false);
            let significant = 64 - w.leading - w.trailing;
            self.writer.write_bits(xor >> w.trailing, significant);
            return;
        }
        self.writer.write_bit(true);
        let significant = 64 - leading - trailing;
        self.writer.write_bits(u64::from(leading), 5);
        // 64 significant bits are written as 0; 0 significant bits cannot
        // occur because the XOR is non-zero.
        self.writer.write_bits(u64::from(significant & 63), 6);
        self.writer.write_bits(xor >> trailing, significant);
        self.window = Some(XorWindow { leading, trailing });
    }

    pub fn num_samples(&self) -> usize {
        usize::from(self.num_samples)
    }

    pub fn is_empty(&self) -> bool {
        self.num_samples == 0
    }

    /// Timestamp of the first sample; 0 for an empty chunk.
    pub fn min_t(&self) -> i64 {
        self.min_t
    }

    /// Timestamp of the last sample; 0 for an empty chunk.
    pub fn max_t(&self) -> i64 {
        self.max_t
    }

    /// The encoded chunk: header and bit stream, complete at every moment.
    pub fn bytes(&self) -> &[u8] {
        self.writer.bytes()
    }

    /// Iterates the samples appended so far.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter {
            bytes: self.bytes(),
            decoder: Decoder::new(self.num_samples),
        }
    }

    /// A `'static` iterator over a copy of the samples appended so far.
    pub fn to_owned_iter(&self) -> OwnedChunkIter {
        OwnedChunkIter {
            bytes: Arc::from(self.bytes()),
            decoder: Decoder::new(self.num_samples),
        }
    }
}

/// Does `v` fit into `bits` bits of two's complement?
fn fits_signed(v: i64, bits: u32) -> bool {
    if bits == 0 {
        return v == 0;
    }
    if bits >= 64 {
        return true;
    }
    let min = -(1i64 << (bits - 1));
    let max = (1i64 << (bits - 1)) - 1;
    (min..=max).contains(&v)
}

/// Sign-extends the low `bits` bits of `raw`.
fn sign_extend(raw: u64, bits: u32) -> i64 {
    if bits == 0 {
        return 0;
    }
    if bits >= 64 {
        return raw as i64;
    }
    let shift = 64 - bits;
    ((raw << shift) as i64) >> shift
}

/// The integer `m` with `m / 10^scale == value` bit for bit, if any.
/// Encoder and decoder both call this, so it must stay deterministic.
fn decimal_mantissa(bits: u64, scale: u32) -> Option<i64> {
    let pow = *POW10.get(scale as usize)?;
    let m = (f64::from_bits(bits) * pow).round();
    // Rejects NaN and infinities too.
    if !m.is_finite() || m.abs() > MAX_EXACT_MANTISSA {
        return None;
    }
    let m = m as i64;
    ((m as f64 / pow).to_bits() == bits).then_some(m)
}

/// The smallest scale at which `bits` is a decimal.
fn smallest_scale(bits: u64) -> Option<u32> {
    (0..=MAX_SCALE).find(|&scale| decimal_mantissa(bits, scale).is_some())
}

/// The smallest scale at which both values are decimals, with their
/// mantissas `(scale, prev, next)`.
fn common_scale(prev: u64, next: u64) -> Option<(u32, i64, i64)> {
    (0..=MAX_SCALE).find_map(|scale| {
        let next_m = decimal_mantissa(next, scale)?;
        Some((scale, decimal_mantissa(prev, scale)?, next_m))
    })
}

/// Reads the sample count from the header and checks that the bit stream
/// holds exactly that many samples.
fn validate(bytes: &[u8]) -> Result<u16, DecodeChunkError> {
    let num_samples = header_samples(bytes)?;
    let mut decoder = Decoder::new(num_samples);
    while decoder.next(bytes)?.is_some() {}
    let used_bytes = HEADER_LEN + decoder.reader.position().div_ceil(8);
    if bytes.len() > used_bytes {
        return Err(DecodeChunkError::TrailingBytes {
            extra: bytes.len() - used_bytes,
        });
    }
    Ok(num_samples)
}

fn header_samples(bytes: &[u8]) -> Result<u16, DecodeChunkError> {
    match bytes {
        [hi, lo, ..] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(DecodeChunkError::TooShort { len: bytes.len() }),
    }
}

/// Decoding state, separate from the bytes so that borrowed and owned
/// iterators share it.
#[derive(Debug, Clone)]
struct Decoder {
    /// Position in the bit stream after the header.
    reader: BitReader,
    num_samples: u16,
    read: u16,
    t: i64,
    delta: i64,
    value_bits: u64,
    scale: u32,
    mantissa: Option<i64>,
    window: Option<XorWindow>,
}

impl Decoder {
    fn new(num_samples: u16) -> Self {
        Decoder {
            reader: BitReader::default(),
            num_samples,
            read: 0,
            t: 0,
            delta: 0,
            value_bits: 0,
            scale: 0,
            mantissa: None,
            window: None,
        }
    }

    /// Decodes the next sample from the whole chunk `bytes` (header
    /// included).
    fn next(&mut self, bytes: &[u8]) -> Result<Option<Sample>, DecodeChunkError> {
        if self.read >= self.num_samples {
            return Ok(None);
        }
        let stream = bytes.get(HEADER_LEN..).unwrap_or_default();
        let sample = self.read;
        let truncated = DecodeChunkError::Truncated {
            sample,
            samples: self.num_samples,
        };
        let r = &mut self.reader;
        match sample {
            0 => {
                self.t = r.read_varint(stream).ok_or(truncated)?;
                self.value_bits = r.read_bits(stream, 64).ok_or(truncated)?;
                self.scale = smallest_scale(self.value_bits).unwrap_or(0);
                self.mantissa = decimal_mantissa(self.value_bits, self.scale);
            }
            1 => {
                self.delta = r.read_varint(stream).ok_or(truncated)?;
                self.t = self.t.wrapping_add(self.delta);
                self.read_value(stream, sample)?;
            }
            _ => {
                let dod = self.read_dod(stream).ok_or(truncated)?;
                self.delta = self.delta.wrapping_add(dod);
                self.t = self.t.wrapping_add(self.delta);
                self.read_value(stream, sample)?;
            }
        }
        self.read += 1;
        Ok(Some(Sample::new(self.t, f64::from_bits(self.value_bits))))
    }

    fn read_dod(&mut self, stream: &[u8]) -> Option<i64> {
        self.read_signed(stream, &DOD_WIDTHS)
    }

    fn read_signed(&mut self, stream: &[u8], widths: &[u32; 6]) -> Option<i64> {
        let r = &mut self.reader;
        let mut code = 0;
        while code < widths.len() - 1 && r.read_bit(stream)? {
            code += 1;
        }
        let width = widths[code];
        let raw = r.read_bits(stream, width)?;
        Some(sign_extend(raw, width))
    }

    fn read_value(&mut self, stream: &[u8], sample: u16) -> Result<(), DecodeChunkError> {
        let truncated = DecodeChunkError::Truncated {
            sample,
            samples: self.num_samples,
        };
        let malformed = |what| DecodeChunkError::Malformed { sample, what };
        let r = &mut self.reader;
        if !r.read_bit(stream).ok_or(truncated)? {
            return Ok(());
        }
        if !r.read_bit(stream).ok_or(truncated)? {
            // `10`: decimal delta at the current scale.
            let prev_m = self
                .mantissa
                .or_else(|| decimal_mantissa(self.value_bits, self.scale))
                .ok_or_else(|| malformed("decimal delta after a non-decimal value"))?;
            let delta = self.read_signed(stream, &DELTA_WIDTHS).ok_or(truncated)?;
            self.set_mantissa(prev_m.wrapping_add(delta));
            return Ok(());
        }
        if !r.read_bit(stream).ok_or(truncated)? {
            // `110`: new scale, then a decimal delta.
            let scale = r.read_bits(stream, SCALE_BITS).ok_or(truncated)? as u32;
            if scale > MAX_SCALE {
                return Err(malformed("decimal scale out of range"));
            }
            let prev_m = decimal_mantissa(self.value_bits, scale)
                .ok_or_else(|| malformed("previous value is not decimal at the new scale"))?;
            let delta = self.read_signed(stream, &DELTA_WIDTHS).ok_or(truncated)?;
            self.scale = scale;
            self.set_mantissa(prev_m.wrapping_add(delta));
            return Ok(());
        }
        // `111`: XOR.
        self.mantissa = None;
        let r = &mut self.reader;
        if r.read_bit(stream).ok_or(truncated)? {
            let leading = r.read_bits(stream, 5).ok_or(truncated)? as u32;
            let significant = match r.read_bits(stream, 6).ok_or(truncated)? as u32 {
                0 => 64,
                n => n,
            };
            if leading + significant > 64 {
                return Err(malformed("leading zeros and significant bits exceed 64"));
            }
            self.window = Some(XorWindow {
                leading,
                trailing: 64 - leading - significant,
            });
        }
        let w = self
            .window
            .ok_or_else(|| malformed("XOR window reused before one was set"))?;
        let significant = 64 - w.leading - w.trailing;
        let xor = r.read_bits(stream, significant).ok_or(truncated)? & low_mask(significant);
        // `trailing < 64` because `significant >= 1`.
        self.value_bits ^= xor << w.trailing;
        Ok(())
    }

    fn set_mantissa(&mut self, m: i64) {
        let pow = POW10.get(self.scale as usize).copied().unwrap_or(1.0);
        self.value_bits = (m as f64 / pow).to_bits();
        self.mantissa = Some(m);
    }
}

/// A lazy iterator over the samples of a chunk, borrowing its bytes.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a> {
    bytes: &'a [u8],
    decoder: Decoder,
}

impl<'a> ChunkIter<'a> {
    /// Validates encoded chunk bytes (for example read from disk) and
    /// iterates them. Validation decodes the chunk once, so iteration itself
    /// cannot fail.
    ///
    /// # Errors
    /// [`DecodeChunkError`] when `bytes` are not exactly one valid chunk.
    pub fn new(bytes: &'a [u8]) -> Result<Self, DecodeChunkError> {
        let num_samples = validate(bytes)?;
        Ok(ChunkIter {
            bytes,
            decoder: Decoder::new(num_samples),
        })
    }

    /// Number of samples in the chunk.
    pub fn num_samples(&self) -> usize {
        usize::from(self.decoder.num_samples)
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        // Bytes were validated (or built by `XorChunk`), so decoding cannot
        // fail here; an error would only end the iteration early.
        self.decoder.next(self.bytes).ok().flatten()
    }
}

impl SampleIterator for ChunkIter<'_> {
    fn next(&mut self) -> Option<Sample> {
        Iterator::next(self)
    }
}

/// A lazy iterator that owns its chunk bytes: by default shared bytes
/// (`Arc<[u8]>`), or any other holder such as a slice of a block's memory
/// map. With `'static` bytes it is the [`SampleIterator`] queriers return.
#[derive(Debug, Clone)]
pub struct OwnedChunkIter<B = Arc<[u8]>> {
    bytes: B,
    decoder: Decoder,
}

impl<B: AsRef<[u8]>> OwnedChunkIter<B> {
    /// Validates the chunk and iterates it.
    ///
    /// # Errors
    /// [`DecodeChunkError`] when `bytes` are not exactly one valid chunk.
    pub fn new(bytes: B) -> Result<Self, DecodeChunkError> {
        let num_samples = validate(bytes.as_ref())?;
        Ok(OwnedChunkIter {
            bytes,
            decoder: Decoder::new(num_samples),
        })
    }

    /// Iterates bytes whose integrity is already established (a CRC32C
    /// written with them matched), skipping the validating decode. Bytes
    /// that are nevertheless malformed end the iteration early; they never
    /// cause a panic.
    pub(crate) fn new_trusted(bytes: B) -> Self {
        let num_samples = header_samples(bytes.as_ref()).unwrap_or(0);
        OwnedChunkIter {
            bytes,
            decoder: Decoder::new(num_samples),
        }
    }

    /// Number of samples in the chunk.
    pub fn num_samples(&self) -> usize {
        usize::from(self.decoder.num_samples)
    }
}

impl<B: AsRef<[u8]>> Iterator for OwnedChunkIter<B> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        self.decoder.next(self.bytes.as_ref()).ok().flatten()
    }
}

impl<B: AsRef<[u8]> + Send> SampleIterator for OwnedChunkIter<B> {
    fn next(&mut self) -> Option<Sample> {
        Iterator::next(self)
    }
}

/// Prometheus's rules for cutting head chunks (`tsdb/head_append.go`): aim
/// for `samples_per_chunk` samples, predict the chunk's end time once it is a
/// quarter full so that the rest of the chunk range splits into equal
/// chunks, cut at twice the target or when the next sample could push the
/// chunk past [`MAX_CHUNK_BYTES`], and never let a chunk cross a
/// `chunk_range_ms` boundary aligned to the epoch.
///
/// Usage per series: when a chunk is created for a sample at `t`, set
/// `next_at = rules.range_end(t)`; before appending every further sample,
/// call [`CutRules::must_cut`] exactly once and cut when it says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutRules {
    /// Target samples per chunk (Prometheus: 120).
    pub samples_per_chunk: u16,
    /// Width of the aligned ranges chunks may not cross (Prometheus: 2 h).
    pub chunk_range_ms: i64,
}

impl Default for CutRules {
    fn default() -> Self {
        CutRules {
            samples_per_chunk: 120,
            chunk_range_ms: 2 * 60 * 60 * 1000,
        }
    }
}

impl CutRules {
    /// The end (exclusive) of the aligned chunk range holding `t`: the latest
    /// time a chunk starting at `t` may reach.
    pub fn range_end(&self, t: i64) -> i64 {
        let width = self.chunk_range_ms.max(1);
        t.div_euclid(width)
            .saturating_mul(width)
            .saturating_add(width)
    }

    /// Must a new chunk be cut before appending a sample at `t` to `chunk`?
    /// `next_at` is the chunk's predicted end; it is refined when the chunk
    /// reaches a quarter of the target size.
    pub fn must_cut(&self, chunk: &XorChunk, next_at: &mut i64, t: i64) -> bool {
        let n = chunk.num_samples();
        if n == 0 {
            return false;
        }
        let target = usize::from(self.samples_per_chunk);
        if n == target / 4 {
            *next_at = compute_chunk_end_time(chunk.min_t(), chunk.max_t(), *next_at, 4.0);
        }
        t >= *next_at || n >= 2 * target || chunk.bytes().len() + MAX_SAMPLE_BYTES > MAX_CHUNK_BYTES
    }
}

/// Predicts the end time of a chunk spanning `start..=cur` so that the
/// remaining range up to `max_t` splits into equally full chunks, assuming
/// the chunk is `1 / ratio_to_full` full (Prometheus's
/// `computeChunkEndTime`).
fn compute_chunk_end_time(start: i64, cur: i64, max_t: i64, ratio_to_full: f64) -> i64 {
    let spanned = (cur as f64 - start as f64 + 1.0) * ratio_to_full;
    let n = (max_t as f64 - start as f64) / spanned;
    if n <= 1.0 {
        return max_t;
    }
    (start as f64 + (max_t as f64 - start as f64) / n.floor()) as i64
}

#[cfg(test)]
mod tests;
