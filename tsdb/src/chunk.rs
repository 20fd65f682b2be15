//! Gorilla-style float chunks: timestamps as residuals against a scrape
//! grid and values as decimal mantissa deltas (XOR-encoded when they are not
//! short decimals), in one bit stream, plus the rules that decide when the
//! head cuts a new chunk.
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
//! ±Inf, -0.0), and any timestamp gap works: residuals that do not fit the
//! short codes fall back to 64 bits.
//!
//! Residuals (timestamp jitter, mantissa deltas) are coded against a window
//! `[lo, hi]` of values seen so far with a truncated binary code, so a
//! 0-50 ms jitter costs under 6 bits and a counter growing by 0-10 about 3.7
//! bits. A chunk starts with the windows its encoder chose:
//! [`XorChunk::after`] carries them over from the series' previous chunk,
//! [`XorChunk::dense`] measures them over all samples first (blocks).
//!
//! A chunk's bytes do not hold its first timestamp: its metadata (the
//! head's chunk list, a block index's chunk metas) does, and readers pass it
//! in. Blocks written before this encoding (4) hold encoding 3 chunks, still
//! read through [`Encoding::XorV3`].
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

/// The most bytes one appended sample (after the first) can add: the
/// nominal interval varint (80 bits, second sample only), a timestamp
/// residual (33-bit window symbol and a 69-bit escape) and a value (33-bit
/// window symbol, 2-bit escape kind and a 76-bit XOR), rounded up.
pub const MAX_SAMPLE_BYTES: usize = 37;

/// Payload widths of the variable-width signed integer codes. Code `i` is
/// `i` one bits followed by a zero bit, except the last, which is only one
/// bits; the payload is the value in two's complement, and a width of 0
/// encodes only zero. The final code holds any `i64`, so arbitrarily large
/// timestamp gaps and value jumps work.
///
/// Timestamp residuals outside the window and window bounds.
const DOD_WIDTHS: [u32; 6] = [0, 7, 10, 17, 32, 64];
/// Deltas of decimal mantissas outside the window.
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

/// The widest residual window, `hi - lo`: window symbols take at most 33
/// bits.
const MAX_WINDOW_SPAN: i128 = (1 << 32) - 1;

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

/// The chunk encodings this crate reads. A block's segment files frame each
/// chunk with its encoding byte (`block.md`); head chunks are always
/// [`Encoding::CURRENT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Encoding byte 3: the first timestamp stored in the chunk, the
    /// interval as a plain varint, windows always with an escape symbol.
    /// Written before encoding 4; still read.
    XorV3,
    /// Encoding byte 4, what [`XorChunk`] writes: the first timestamp is the
    /// chunk's metadata `min_t` (head and index keep it anyway), the
    /// interval in whole seconds when it is, and windows may be *closed*
    /// (no escape symbol) when the encoder measured them over the whole
    /// chunk.
    XorV4,
}

impl Encoding {
    pub const CURRENT: Encoding = Encoding::XorV4;

    /// The encoding with this encoding byte, if it is one this crate reads.
    pub fn from_byte(byte: u8) -> Option<Encoding> {
        match byte {
            3 => Some(Encoding::XorV3),
            4 => Some(Encoding::XorV4),
            _ => None,
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            Encoding::XorV3 => 3,
            Encoding::XorV4 => 4,
        }
    }
}

/// A window `[lo, hi]` of residuals coded as `hi - lo + 2` symbols: one per
/// value and a last one for "escape", or `hi - lo + 1` without the escape
/// when it is *closed* (an encoder that knows every residual of the chunk
/// closes the windows that hold them all). Always contains 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Window {
    lo: i64,
    hi: i64,
    closed: bool,
}

impl Window {
    /// A window from its bounds, if valid (contains 0, not too wide).
    fn new(lo: i64, hi: i64) -> Option<Window> {
        (lo <= 0 && hi >= 0 && i128::from(hi) - i128::from(lo) <= MAX_WINDOW_SPAN).then_some(
            Window {
                lo,
                hi,
                closed: false,
            },
        )
    }

    fn symbols(self) -> u64 {
        // `hi - lo <= MAX_WINDOW_SPAN`, so this cannot overflow.
        (self.hi as i128 - self.lo as i128) as u64 + if self.closed { 1 } else { 2 }
    }

    /// The escape symbol; a closed window has none.
    fn escape(self) -> Option<u64> {
        (!self.closed).then(|| self.symbols() - 1)
    }

    fn with_closed(self, closed: bool) -> Window {
        Window { closed, ..self }
    }

    /// The symbol of `x` when the window holds it.
    fn symbol(self, x: i64) -> Option<u64> {
        (self.lo..=self.hi)
            .contains(&x)
            .then(|| (x as i128 - self.lo as i128) as u64)
    }

    /// The value of a non-escape symbol.
    fn value(self, symbol: u64) -> i64 {
        (self.lo as i128 + symbol as i128) as i64
    }

    /// Grows the window to hold `x`, unless it would become too wide.
    fn widen(&mut self, x: i64) {
        if let Some(w) = Window::new(self.lo.min(x), self.hi.max(x)) {
            *self = w;
        }
    }

    /// The window shifted by `-by`, widened to hold 0 again.
    fn shifted(self, by: i64) -> Window {
        let lo = (i128::from(self.lo) - i128::from(by)).min(0);
        let hi = (i128::from(self.hi) - i128::from(by)).max(0);
        if hi - lo > MAX_WINDOW_SPAN {
            return Window::default();
        }
        Window::new(lo as i64, hi as i64).unwrap_or_default()
    }
}

/// An appendable Gorilla chunk of float samples.
#[derive(Debug, Clone)]
pub struct XorChunk {
    /// Header and bit stream; always a complete chunk.
    writer: BitWriter,
    num_samples: u16,
    min_t: i64,
    max_t: i64,
    /// Nominal interval between samples (0 until the second sample, or
    /// carried over from the previous chunk before the first).
    interval: i64,
    /// Grid time of the last sample: the next one is predicted at
    /// `grid + interval`.
    grid: i64,
    /// Window of timestamp residuals against the grid.
    t_window: Window,
    last_value_bits: u64,
    /// Current decimal scale of the value encoding.
    scale: u32,
    /// The last value's mantissa at `scale`, when it was decimal-coded (or
    /// the first value); recomputed from the value otherwise.
    mantissa: Option<i64>,
    /// Window of decimal mantissa deltas.
    v_window: Window,
    /// Leading and trailing zero counts of the last written XOR window.
    xor_window: Option<XorWindow>,
    /// Whether a timestamp residual / a value was escaped (written outside
    /// its window), so that [`XorChunk::dense`] knows which windows it can
    /// close.
    time_escaped: bool,
    value_escaped: bool,
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
    /// An empty chunk that starts with empty residual windows.
    pub fn new() -> Self {
        XorChunk {
            writer: BitWriter::with_prefix(vec![0; HEADER_LEN]),
            num_samples: 0,
            min_t: 0,
            max_t: 0,
            interval: 0,
            grid: 0,
            t_window: Window::default(),
            last_value_bits: 0,
            scale: 0,
            mantissa: None,
            v_window: Window::default(),
            xor_window: None,
            time_escaped: false,
            value_escaped: false,
        }
    }

    /// An empty chunk for the samples following `prev`'s, in the same
    /// series: it starts with what `prev` learned (scrape interval and grid,
    /// residual windows, decimal scale), so it does not pay to learn them
    /// again.
    pub fn after(prev: &XorChunk) -> Self {
        let mut chunk = XorChunk::new();
        // The next chunk of a series is about as large as the last one:
        // growing by doubling would copy it several times and leave up to
        // half of it unused.
        chunk
            .writer
            .reserve(prev.bytes().len().saturating_sub(HEADER_LEN) + MAX_SAMPLE_BYTES);
        if prev.num_samples >= 2 {
            chunk.interval = prev.interval;
            chunk.grid = prev.grid;
            chunk.t_window = prev.t_window.with_closed(false);
        }
        chunk.v_window = prev.v_window.with_closed(false);
        chunk.scale = prev.scale;
        chunk
    }

    /// Encodes `samples` (timestamps increasing) as densely as this format
    /// allows: a first pass measures the residual windows, the second
    /// starts with them, so no jitter or value delta needs an escape, and
    /// when none did, a third closes the windows (drops their escape
    /// symbol; a constant series then costs no bits for its values).
    /// Blocks store chunks re-encoded this way.
    pub fn dense(samples: &[Sample]) -> Self {
        let encode = |t_window: Window, v_window: Window| {
            let mut chunk = XorChunk::new();
            chunk.t_window = t_window;
            chunk.v_window = v_window;
            for s in samples {
                chunk.append(s.t, s.v);
            }
            chunk
        };
        let first = encode(Window::default(), Window::default());
        let mut chunk = encode(first.t_window, first.v_window);
        if !chunk.time_escaped || !chunk.value_escaped {
            // Windows only widen on escapes, so the third pass sees the same
            // windows and escapes nothing it closed.
            chunk = encode(
                chunk.t_window.with_closed(!chunk.time_escaped),
                chunk.v_window.with_closed(!chunk.value_escaped),
            );
        }
        if chunk.bytes().len() <= first.bytes().len() {
            chunk
        } else {
            first
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
        if self.num_samples == 0 {
            self.write_first(t, bits);
        } else {
            if self.num_samples == 1 {
                self.interval = self.choose_interval(t.wrapping_sub(self.max_t));
                self.write_interval();
            }
            self.write_time(t);
            self.write_value(bits);
        }
        self.max_t = t;
        self.last_value_bits = bits;
        self.num_samples += 1;
        let header = self.num_samples.to_be_bytes();
        self.writer.bytes_mut()[..HEADER_LEN].copy_from_slice(&header);
    }

    /// The nominal interval: `0` and whole seconds, or `1` and milliseconds.
    fn write_interval(&mut self) {
        let interval = self.interval;
        if interval != 0 && interval % 1000 == 0 {
            self.writer.write_bit(false);
            self.writer.write_varint(interval / 1000);
        } else {
            self.writer.write_bit(true);
            self.writer.write_varint(interval);
        }
    }

    /// The first sample: the starting windows and its value. Its time is
    /// the chunk's `min_t`, which readers get from the chunk's metadata.
    fn write_first(&mut self, t: i64, bits: u64) {
        if self.interval > 0 {
            // Carried over from the previous chunk: move the timestamp
            // window from the old grid to one through `t`.
            let ahead = t.wrapping_sub(self.grid) as i128;
            let interval = i128::from(self.interval);
            let steps = (ahead + interval / 2).div_euclid(interval);
            let residual = ahead - steps * interval;
            self.t_window = self.t_window.shifted(residual as i64);
        }
        for bound in [
            self.t_window.lo,
            self.t_window.hi,
            self.v_window.lo,
            self.v_window.hi,
        ] {
            self.write_signed(&DOD_WIDTHS, bound);
        }
        self.writer.write_bit(self.t_window.closed);
        self.writer.write_bit(self.v_window.closed);
        let scale = if decimal_mantissa(bits, self.scale).is_some() {
            Some(self.scale)
        } else {
            smallest_scale(bits)
        };
        match scale.and_then(|s| Some((s, decimal_mantissa(bits, s)?))) {
            Some((scale, m)) => {
                self.writer.write_bit(false);
                self.writer.write_bits(u64::from(scale), SCALE_BITS);
                self.writer.write_varint(m);
                self.scale = scale;
                self.mantissa = Some(m);
            }
            None => {
                self.writer.write_bit(true);
                self.writer.write_bits(bits, 64);
                self.scale = 0;
                self.mantissa = None;
            }
        }
        self.min_t = t;
        self.grid = t;
    }

    /// The nominal interval for a chunk whose first delta is `delta`: the
    /// carried-over interval when `delta` is close to it, else `delta`
    /// rounded to whole seconds when within 5 % of them (scrape intervals
    /// are), else `delta` itself.
    fn choose_interval(&self, delta: i64) -> i64 {
        let near =
            |nominal: i64| nominal > 0 && delta.abs_diff(nominal) <= nominal.unsigned_abs() / 20;
        if near(self.interval) {
            return self.interval;
        }
        let seconds = (delta.saturating_add(500))
            .div_euclid(1000)
            .saturating_mul(1000);
        if near(seconds) {
            return seconds;
        }
        delta
    }

    /// A timestamp as its residual against the grid.
    fn write_time(&mut self, t: i64) {
        let predicted = self.grid.wrapping_add(self.interval);
        let residual = t.wrapping_sub(predicted);
        let window = self.t_window;
        if let Some(symbol) = window.symbol(residual) {
            write_truncated(&mut self.writer, symbol, window.symbols());
            self.grid = predicted;
            return;
        }
        write_escape(&mut self.writer, window);
        self.time_escaped = true;
        self.write_signed(&DOD_WIDTHS, residual);
        self.grid = after_time_escape(&mut self.t_window, self.interval, predicted, t, residual);
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

    /// Writes a value: a mantissa delta in the window (0 = unchanged bits),
    /// or an escape followed by a decimal delta outside the window (`0`), a
    /// new scale and a delta (`10`), or an XOR (`11`).
    fn write_value(&mut self, bits: u64) {
        let prev = self.last_value_bits;
        let window = self.v_window;
        if bits == prev
            && let Some(symbol) = window.symbol(0)
        {
            write_truncated(&mut self.writer, symbol, window.symbols());
            return;
        }
        if let Some(m) = decimal_mantissa(bits, self.scale)
            && let Some(prev_m) = self.mantissa.or_else(|| decimal_mantissa(prev, self.scale))
        {
            let delta = m.wrapping_sub(prev_m);
            self.mantissa = Some(m);
            if let Some(symbol) = window.symbol(delta) {
                write_truncated(&mut self.writer, symbol, window.symbols());
                return;
            }
            write_escape(&mut self.writer, window);
            self.value_escaped = true;
            self.writer.write_bit(false);
            self.write_signed(&DELTA_WIDTHS, delta);
            self.v_window.widen(delta);
            return;
        }
        write_escape(&mut self.writer, window);
        self.value_escaped = true;
        if let Some((scale, prev_m, m)) = common_scale(prev, bits) {
            self.writer.write_bits(0b10, 2);
            self.writer.write_bits(u64::from(scale), SCALE_BITS);
            let delta = m.wrapping_sub(prev_m);
            self.write_signed(&DELTA_WIDTHS, delta);
            self.v_window.widen(delta);
            self.scale = scale;
            self.mantissa = Some(m);
            return;
        }
        self.writer.write_bits(0b11, 2);
        self.mantissa = None;
        self.write_xor(bits ^ prev);
    }

    /// Gorilla's XOR encoding of a non-zero `xor`: reuse the current window
    /// of meaningful bits (`0`) or start a new one (`1`).
    fn write_xor(&mut self, xor: u64) {
        // Five bits hold the leading-zero count, so it is capped at 31.
        let leading = xor.leading_zeros().min(31);
        let trailing = xor.trailing_zeros();
        if let Some(w) = self.xor_window
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
        self.xor_window = Some(XorWindow { leading, trailing });
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
            decoder: Decoder::new(self.num_samples, Encoding::CURRENT, self.min_t),
        }
    }

    /// A `'static` iterator over a copy of the samples appended so far.
    pub fn to_owned_iter(&self) -> OwnedChunkIter {
        OwnedChunkIter {
            bytes: Arc::from(self.bytes()),
            decoder: Decoder::new(self.num_samples, Encoding::CURRENT, self.min_t),
        }
    }
}

/// After a timestamp residual outside the window: a residual within half
/// an interval is jitter and widens the window (the grid moves on as
/// predicted); anything else (a missed scrape, a new interval) moves the
/// grid to the sample. Returns the new grid time. Encoder and decoder share
/// this rule.
fn after_time_escape(
    window: &mut Window,
    interval: i64,
    predicted: i64,
    t: i64,
    residual: i64,
) -> i64 {
    if residual.unsigned_abs() <= interval.unsigned_abs() / 2 {
        window.widen(residual);
        predicted
    } else {
        t
    }
}

/// Writes the escape symbol of an open window. The encoder closes only
/// windows that hold every residual of the chunk, so a closed one never
/// gets here.
fn write_escape(w: &mut BitWriter, window: Window) {
    debug_assert!(!window.closed, "escape in a closed window");
    let symbols = window.symbols();
    write_truncated(w, window.escape().unwrap_or(symbols - 1), symbols);
}

/// Writes `x < n` with a truncated binary code: with `k = floor(log2 n)`
/// and `u = 2^(k+1) - n`, the `u` smallest values take `k` bits and the
/// others `k + 1` bits (as `x + u`). `n = 1` takes no bits.
fn write_truncated(w: &mut BitWriter, x: u64, n: u64) {
    let (k, u) = truncated_params(n);
    if x < u {
        w.write_bits(x, k);
    } else {
        w.write_bits(x + u, k + 1);
    }
}

fn read_truncated(r: &mut BitReader, stream: &[u8], n: u64) -> Option<u64> {
    let (k, u) = truncated_params(n);
    let x = r.read_bits(stream, k)? & low_mask(k);
    if x < u {
        return Some(x);
    }
    let low = u64::from(r.read_bit(stream)?);
    Some(((x << 1) | low) - u)
}

/// `(k, u)` of the truncated binary code for `n >= 1` symbols
/// (`n <= 2^33`, so nothing overflows).
fn truncated_params(n: u64) -> (u32, u64) {
    let k = 63 - n.max(1).leading_zeros();
    (k, (1u64 << (k + 1)) - n)
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
    let x = f64::from_bits(bits) * pow;
    // Rejects infinities too. Floats above 2^53 are even integers, so this
    // is the same as bounding the rounded mantissa.
    if x.is_nan() || x.abs() > MAX_EXACT_MANTISSA {
        return None;
    }
    let m = round_half_away(x);
    ((m as f64 / pow).to_bits() == bits).then_some(m)
}

/// `x.round() as i64` for `|x| <= 2^53`, without the call `f64::round`
/// compiles to on baseline x86-64 (every appended value goes through
/// here). Truncating is exact at this size, and so is `x - trunc(x)`
/// (Sterbenz), so comparing the fraction with ±0.5 rounds half away from
/// zero exactly as `round` does.
fn round_half_away(x: f64) -> i64 {
    let truncated = x as i64;
    let fraction = x - truncated as f64;
    if fraction >= 0.5 {
        truncated + 1
    } else if fraction <= -0.5 {
        truncated - 1
    } else {
        truncated
    }
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
fn validate(bytes: &[u8], encoding: Encoding, min_t: i64) -> Result<u16, DecodeChunkError> {
    let num_samples = header_samples(bytes)?;
    let mut decoder = Decoder::new(num_samples, encoding, min_t);
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
    encoding: Encoding,
    num_samples: u16,
    read: u16,
    t: i64,
    interval: i64,
    grid: i64,
    t_window: Window,
    value_bits: u64,
    scale: u32,
    mantissa: Option<i64>,
    /// `value_bits` lags behind `mantissa`: the range decoder converts a
    /// mantissa into a float only for samples it keeps.
    value_stale: bool,
    v_window: Window,
    xor_window: Option<XorWindow>,
}

impl Decoder {
    /// A decoder for a chunk of `num_samples` whose first timestamp (from
    /// its metadata; encoding 3 stores it in the chunk) is `min_t`.
    fn new(num_samples: u16, encoding: Encoding, min_t: i64) -> Self {
        Decoder {
            reader: BitReader::default(),
            encoding,
            num_samples,
            read: 0,
            t: min_t,
            interval: 0,
            grid: 0,
            t_window: Window::default(),
            value_bits: 0,
            scale: 0,
            mantissa: None,
            value_stale: false,
            v_window: Window::default(),
            xor_window: None,
        }
    }

    /// Brings `value_bits` up to date with the mantissa.
    #[inline]
    fn value_bits(&mut self) -> u64 {
        if self.value_stale {
            self.value_stale = false;
            if let Some(m) = self.mantissa {
                self.value_bits = mantissa_bits(m, self.scale);
            }
        }
        self.value_bits
    }

    /// Decodes the samples from the current position on, appending those
    /// in `[start, end]` to `out`; returns whether it stopped at a sample
    /// after `end` (decoded and dropped). Malformed bytes end the chunk.
    ///
    /// Runs of samples whose timestamp and value both fall in their windows
    /// (nearly all of them) go through [`Decoder::fast_run`]; the others,
    /// and the first two, through [`Decoder::next`]'s code.
    fn decode_range(&mut self, bytes: &[u8], start: i64, end: i64, out: &mut Vec<Sample>) -> bool {
        let stream = bytes.get(HEADER_LEN..).unwrap_or_default();
        while self.read < self.num_samples {
            if self.read >= 2 {
                match self.fast_run(stream, start, end, out) {
                    Run::PastEnd => return true,
                    Run::Done => return false,
                    Run::Slow => {}
                }
            }
            if !matches!(self.next(bytes), Ok(Some(_))) {
                // Malformed: nothing more to read.
                self.read = self.num_samples;
                return false;
            }
            if self.t > end {
                return true;
            }
            if self.t >= start {
                let v = f64::from_bits(self.value_bits());
                out.push(Sample::new(self.t, v));
            }
        }
        false
    }

    /// Decodes samples as long as their timestamp and value symbols are
    /// both inside their windows (the windows stay the same then), with the
    /// state in locals and both symbols read from one 64-bit load; a
    /// mantissa becomes a float only for the samples kept. Stops before the
    /// first other sample ([`Run::Slow`]) without consuming it.
    fn fast_run(&mut self, stream: &[u8], start: i64, end: i64, out: &mut Vec<Sample>) -> Run {
        let time = TruncatedCode::new(self.t_window);
        let value = TruncatedCode::new(self.v_window);
        // One load holds at least 57 bits.
        if time.k + value.k + 2 > 57 {
            return Run::Slow;
        }
        let total_bits = stream.len().saturating_mul(8);
        let first_pos = self.reader.position();
        let mut pos = first_pos;
        let (mut t, mut grid, interval) = (self.t, self.grid, self.interval);
        let (mut mantissa, mut stale, mut value_bits) =
            (self.mantissa, self.value_stale, self.value_bits);
        let scale = self.scale;
        let mut read = self.read;
        let run = loop {
            if read >= self.num_samples {
                break Run::Done;
            }
            let byte = pos / 8;
            let mut word = [0u8; 8];
            match stream.get(byte..byte + 8) {
                Some(eight) => word.copy_from_slice(eight),
                None => {
                    // The last bytes, padded with zeros; the length check
                    // below keeps symbols from reaching into the padding.
                    let rest = stream.get(byte..).unwrap_or_default();
                    let n = rest.len().min(8);
                    word[..n].copy_from_slice(&rest[..n]);
                }
            }
            let bits = u64::from_be_bytes(word) << (pos % 8);
            let (t_symbol, t_len) = time.read(bits);
            let (v_symbol, v_len) = value.read(bits << t_len);
            if t_symbol >= time.first_escape
                || v_symbol >= value.first_escape
                || pos + (t_len + v_len) as usize > total_bits
            {
                break Run::Slow;
            }
            // Symbols are below 2^34, and `lo + symbol` is inside the window.
            let delta = value.lo.wrapping_add(v_symbol as i64);
            match mantissa {
                Some(m) => {
                    mantissa = Some(m.wrapping_add(delta));
                    stale |= delta != 0;
                }
                None if delta == 0 => {}
                // A delta after an XOR value: the general code checks
                // whether that value is a decimal.
                None => break Run::Slow,
            }
            let predicted = grid.wrapping_add(interval);
            t = predicted.wrapping_add(time.lo.wrapping_add(t_symbol as i64));
            grid = predicted;
            pos += (t_len + v_len) as usize;
            read += 1;
            if t > end {
                break Run::PastEnd;
            }
            if t >= start {
                if stale {
                    stale = false;
                    if let Some(m) = mantissa {
                        value_bits = mantissa_bits(m, scale);
                    }
                }
                out.push(Sample::new(t, f64::from_bits(value_bits)));
            }
        };
        self.reader.skip(pos - first_pos);
        (self.t, self.grid) = (t, grid);
        (self.mantissa, self.value_stale, self.value_bits) = (mantissa, stale, value_bits);
        self.read = read;
        run
    }

    /// Decodes the next sample from the whole chunk `bytes` (header
    /// included).
    fn next(&mut self, bytes: &[u8]) -> Result<Option<Sample>, DecodeChunkError> {
        if self.read >= self.num_samples {
            return Ok(None);
        }
        let stream = bytes.get(HEADER_LEN..).unwrap_or_default();
        let sample = self.read;
        // The general code reads `value_bits` directly.
        self.value_bits();
        if sample == 0 {
            self.read_first(stream, sample)?;
        } else {
            let truncated = self.truncated(sample);
            if sample == 1 {
                self.read_interval(stream, sample)?;
            }
            self.read_time(stream).ok_or(truncated)?;
            self.read_value(stream, sample)?;
        }
        self.read += 1;
        Ok(Some(Sample::new(self.t, f64::from_bits(self.value_bits))))
    }

    fn truncated(&self, sample: u16) -> DecodeChunkError {
        DecodeChunkError::Truncated {
            sample,
            samples: self.num_samples,
        }
    }

    fn read_interval(&mut self, stream: &[u8], sample: u16) -> Result<(), DecodeChunkError> {
        let truncated = self.truncated(sample);
        let r = &mut self.reader;
        self.interval = match self.encoding {
            Encoding::XorV3 => r.read_varint(stream).ok_or(truncated)?,
            Encoding::XorV4 => {
                let milliseconds = r.read_bit(stream).ok_or(truncated)?;
                let interval = r.read_varint(stream).ok_or(truncated)?;
                if milliseconds {
                    interval
                } else {
                    interval
                        .checked_mul(1000)
                        .ok_or(DecodeChunkError::Malformed {
                            sample,
                            what: "interval out of range",
                        })?
                }
            }
        };
        Ok(())
    }

    fn read_first(&mut self, stream: &[u8], sample: u16) -> Result<(), DecodeChunkError> {
        let truncated = self.truncated(sample);
        let malformed = |what| DecodeChunkError::Malformed { sample, what };
        if self.encoding == Encoding::XorV3 {
            self.t = self.reader.read_varint(stream).ok_or(truncated)?;
        }
        self.grid = self.t;
        let mut bounds = [0i64; 4];
        for bound in &mut bounds {
            *bound = self.read_signed(stream, &DOD_WIDTHS).ok_or(truncated)?;
        }
        let [t_lo, t_hi, v_lo, v_hi] = bounds;
        self.t_window =
            Window::new(t_lo, t_hi).ok_or_else(|| malformed("invalid timestamp window"))?;
        self.v_window = Window::new(v_lo, v_hi).ok_or_else(|| malformed("invalid value window"))?;
        let r = &mut self.reader;
        if self.encoding == Encoding::XorV4 {
            let time_closed = r.read_bit(stream).ok_or(truncated)?;
            let value_closed = r.read_bit(stream).ok_or(truncated)?;
            self.t_window = self.t_window.with_closed(time_closed);
            self.v_window = self.v_window.with_closed(value_closed);
        }
        if r.read_bit(stream).ok_or(truncated)? {
            self.value_bits = r.read_bits(stream, 64).ok_or(truncated)?;
            self.scale = 0;
            self.mantissa = None;
            return Ok(());
        }
        let scale = r.read_bits(stream, SCALE_BITS).ok_or(truncated)? as u32;
        let m = r.read_varint(stream).ok_or(truncated)?;
        if scale > MAX_SCALE {
            return Err(malformed("decimal scale out of range"));
        }
        if m.unsigned_abs() > MAX_EXACT_MANTISSA as u64 {
            return Err(malformed("decimal mantissa out of range"));
        }
        self.scale = scale;
        self.set_mantissa(m);
        Ok(())
    }

    fn read_time(&mut self, stream: &[u8]) -> Option<()> {
        let window = self.t_window;
        let symbol = read_truncated(&mut self.reader, stream, window.symbols())?;
        let predicted = self.grid.wrapping_add(self.interval);
        if window.escape() != Some(symbol) {
            self.t = predicted.wrapping_add(window.value(symbol));
            self.grid = predicted;
            return Some(());
        }
        let residual = self.read_signed(stream, &DOD_WIDTHS)?;
        self.t = predicted.wrapping_add(residual);
        self.grid = after_time_escape(
            &mut self.t_window,
            self.interval,
            predicted,
            self.t,
            residual,
        );
        Some(())
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
        let truncated = self.truncated(sample);
        let malformed = |what| DecodeChunkError::Malformed { sample, what };
        let window = self.v_window;
        let symbol = read_truncated(&mut self.reader, stream, window.symbols()).ok_or(truncated)?;
        if window.escape() != Some(symbol) {
            let delta = window.value(symbol);
            if delta == 0 {
                return Ok(());
            }
            let prev_m = self
                .mantissa
                .or_else(|| decimal_mantissa(self.value_bits, self.scale))
                .ok_or_else(|| malformed("decimal delta after a non-decimal value"))?;
            self.set_mantissa(prev_m.wrapping_add(delta));
            return Ok(());
        }
        let r = &mut self.reader;
        if !r.read_bit(stream).ok_or(truncated)? {
            // `0`: decimal delta at the current scale, outside the window.
            let prev_m = self
                .mantissa
                .or_else(|| decimal_mantissa(self.value_bits, self.scale))
                .ok_or_else(|| malformed("decimal delta after a non-decimal value"))?;
            let delta = self.read_signed(stream, &DELTA_WIDTHS).ok_or(truncated)?;
            self.v_window.widen(delta);
            self.set_mantissa(prev_m.wrapping_add(delta));
            return Ok(());
        }
        if !r.read_bit(stream).ok_or(truncated)? {
            // `10`: new scale, then a decimal delta.
            let scale = r.read_bits(stream, SCALE_BITS).ok_or(truncated)? as u32;
            if scale > MAX_SCALE {
                return Err(malformed("decimal scale out of range"));
            }
            let prev_m = decimal_mantissa(self.value_bits, scale)
                .ok_or_else(|| malformed("previous value is not decimal at the new scale"))?;
            let delta = self.read_signed(stream, &DELTA_WIDTHS).ok_or(truncated)?;
            self.v_window.widen(delta);
            self.scale = scale;
            self.set_mantissa(prev_m.wrapping_add(delta));
            return Ok(());
        }
        // `11`: XOR.
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
            self.xor_window = Some(XorWindow {
                leading,
                trailing: 64 - leading - significant,
            });
        }
        let w = self
            .xor_window
            .ok_or_else(|| malformed("XOR window reused before one was set"))?;
        let significant = 64 - w.leading - w.trailing;
        let xor = r.read_bits(stream, significant).ok_or(truncated)? & low_mask(significant);
        // `trailing < 64` because `significant >= 1`.
        self.value_bits ^= xor << w.trailing;
        Ok(())
    }

    fn set_mantissa(&mut self, m: i64) {
        self.value_bits = mantissa_bits(m, self.scale);
        self.mantissa = Some(m);
    }
}

/// The bits of the value `m / 10^scale`, as the encoder checked it
/// (dividing by 1 changes no bits, so scale 0 skips the division).
#[inline]
fn mantissa_bits(m: i64, scale: u32) -> u64 {
    if scale == 0 {
        return (m as f64).to_bits();
    }
    let pow = POW10.get(scale as usize).copied().unwrap_or(1.0);
    (m as f64 / pow).to_bits()
}

/// How [`Decoder::fast_run`] stopped.
enum Run {
    /// At a sample after the range's end.
    PastEnd,
    /// At the end of the chunk.
    Done,
    /// Before a sample the general code must decode.
    Slow,
}

/// A window's truncated binary code prepared for the range decoder's fast
/// path.
#[derive(Debug, Clone, Copy)]
struct TruncatedCode {
    k: u32,
    u: u64,
    /// Symbols at or above this are the escape (or invalid).
    first_escape: u64,
    lo: i64,
}

impl TruncatedCode {
    fn new(window: Window) -> Self {
        let n = window.symbols();
        let (k, u) = truncated_params(n);
        TruncatedCode {
            k,
            u,
            first_escape: window.escape().unwrap_or(n),
            lo: window.lo,
        }
    }

    /// The symbol at the top of `bits` (which holds at least `k + 1` valid
    /// bits) and its length in bits.
    /// Branch-free: which of the two lengths a symbol has is as good as
    /// random.
    #[inline(always)]
    fn read(self, bits: u64) -> (u64, u32) {
        // `k <= 33`; `checked_shr` gives 0 bits for `k == 0`.
        let short = bits.checked_shr(64 - self.k).unwrap_or(0);
        let long = (bits >> (63 - self.k)).wrapping_sub(self.u);
        let is_long = short >= self.u;
        (
            if is_long { long } else { short },
            self.k + u32::from(is_long),
        )
    }
}

/// A lazy iterator over the samples of a chunk, borrowing its bytes.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a> {
    bytes: &'a [u8],
    decoder: Decoder,
}

impl<'a> ChunkIter<'a> {
    /// Validates chunk bytes as [`XorChunk::bytes`] returns them and
    /// iterates them. `min_t` is the chunk's first timestamp, which its
    /// metadata holds (the bytes do not). Validation decodes the chunk once,
    /// so iteration itself cannot fail.
    ///
    /// # Errors
    /// [`DecodeChunkError`] when `bytes` are not exactly one valid chunk.
    pub fn new(bytes: &'a [u8], min_t: i64) -> Result<Self, DecodeChunkError> {
        ChunkIter::with_encoding(bytes, Encoding::CURRENT, min_t)
    }

    /// As [`ChunkIter::new`], for bytes of any encoding this crate reads
    /// (for example an older block's). Encoding 3 ignores `min_t`.
    ///
    /// # Errors
    /// [`DecodeChunkError`] when `bytes` are not exactly one valid chunk.
    pub fn with_encoding(
        bytes: &'a [u8],
        encoding: Encoding,
        min_t: i64,
    ) -> Result<Self, DecodeChunkError> {
        let num_samples = validate(bytes, encoding, min_t)?;
        Ok(ChunkIter {
            bytes,
            decoder: Decoder::new(num_samples, encoding, min_t),
        })
    }

    /// Number of samples in the chunk.
    pub fn num_samples(&self) -> usize {
        usize::from(self.decoder.num_samples)
    }

    /// Decodes the rest of the chunk, appending the samples in `[start,
    /// end]` to `out`, faster than iterating; returns whether a sample after
    /// `end` was reached (and dropped), so that later chunks need no look.
    pub fn load_range(&mut self, start: i64, end: i64, out: &mut Vec<Sample>) -> bool {
        self.decoder.decode_range(self.bytes, start, end, out)
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
    /// Validates the chunk (bytes of `encoding`, first timestamp `min_t`
    /// from its metadata, as for [`ChunkIter::with_encoding`]) and iterates
    /// it.
    ///
    /// # Errors
    /// [`DecodeChunkError`] when `bytes` are not exactly one valid chunk.
    pub fn new(bytes: B, encoding: Encoding, min_t: i64) -> Result<Self, DecodeChunkError> {
        let num_samples = validate(bytes.as_ref(), encoding, min_t)?;
        Ok(OwnedChunkIter {
            bytes,
            decoder: Decoder::new(num_samples, encoding, min_t),
        })
    }

    /// Iterates bytes whose integrity is already established (a CRC32C
    /// written with them matched), skipping the validating decode. Bytes
    /// that are nevertheless malformed end the iteration early; they never
    /// cause a panic.
    pub(crate) fn new_trusted(bytes: B, encoding: Encoding, min_t: i64) -> Self {
        let num_samples = header_samples(bytes.as_ref()).unwrap_or(0);
        OwnedChunkIter {
            bytes,
            decoder: Decoder::new(num_samples, encoding, min_t),
        }
    }

    /// Number of samples in the chunk.
    pub fn num_samples(&self) -> usize {
        usize::from(self.decoder.num_samples)
    }

    /// As [`ChunkIter::load_range`].
    pub fn load_range(&mut self, start: i64, end: i64, out: &mut Vec<Sample>) -> bool {
        self.decoder
            .decode_range(self.bytes.as_ref(), start, end, out)
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
