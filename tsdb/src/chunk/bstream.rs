//! A bit writer and reader, most significant bit first, as the chunk format
//! in `tsdb/docs/format/chunks.md` needs.

/// Appends bits to a byte vector. Bytes already in the vector (the chunk
/// header) are kept; new bits start at the next byte boundary.
#[derive(Debug, Clone)]
pub(crate) struct BitWriter {
    /// The written bytes followed by at least [`ZERO_TAIL`] zero bytes, so
    /// that a write can OR a 64-bit word and one more byte in place.
    bytes: Vec<u8>,
    /// Bits written, prefix included.
    bit_len: usize,
}

/// Zero bytes kept after the written ones.
const ZERO_TAIL: usize = 9;

impl BitWriter {
    pub(crate) fn with_prefix(mut prefix: Vec<u8>) -> Self {
        let bit_len = prefix.len() * 8;
        prefix.resize(prefix.len() + ZERO_TAIL, 0);
        BitWriter {
            bytes: prefix,
            bit_len,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.bit_len.div_ceil(8)]
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.bit_len.div_ceil(8);
        &mut self.bytes[..len]
    }

    pub(crate) fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the low `n` bits of `value` (`n <= 64`), most significant first.
    #[inline]
    pub(crate) fn write_bits(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        let byte = self.bit_len / 8;
        let offset = (self.bit_len % 8) as u32;
        // The bits at the top of a word, then shifted to the write position.
        let aligned = (value & low_mask(n)) << (64 - n);
        // `bytes` holds ZERO_TAIL bytes from `byte` on (invariant).
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.bytes[byte..byte + 8]);
        let merged = u64::from_be_bytes(word) | (aligned >> offset);
        self.bytes[byte..byte + 8].copy_from_slice(&merged.to_be_bytes());
        if offset + n > 64 {
            self.bytes[byte + 8] |= ((aligned << (64 - offset)) >> 56) as u8;
        }
        self.bit_len += n as usize;
        let needed = self.bit_len / 8 + ZERO_TAIL;
        if self.bytes.len() < needed {
            self.grow(needed);
        }
    }

    /// Extends the zero tail to `needed` bytes, using the whole allocation
    /// so that this happens rarely.
    #[cold]
    fn grow(&mut self, needed: usize) {
        self.bytes.reserve(needed.saturating_sub(self.bytes.len()));
        self.bytes.resize(self.bytes.capacity(), 0);
    }

    /// Reserves room for `additional` more bytes.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.bytes.reserve(additional);
    }

    /// Writes a signed LEB128 varint with zig-zag encoding, byte by byte.
    pub(crate) fn write_varint(&mut self, value: i64) {
        let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
        loop {
            let byte = (zigzag & 0x7f) as u8;
            zigzag >>= 7;
            if zigzag == 0 {
                self.write_bits(u64::from(byte), 8);
                return;
            }
            self.write_bits(u64::from(byte | 0x80), 8);
        }
    }
}

/// The low `n` bits set, for `n <= 64`.
#[inline]
pub(crate) fn low_mask(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// Reads bits from a byte slice, most significant bit first. Every read is
/// bounds-checked and returns `None` past the end, so corrupted input cannot
/// panic.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BitReader {
    /// Position in bits from the start of the slice.
    pos: usize,
}

impl BitReader {
    #[cfg(test)]
    pub(crate) fn at_bit(pos: usize) -> Self {
        BitReader { pos }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Moves past `n` bits the caller has read by itself.
    #[inline]
    pub(crate) fn skip(&mut self, n: usize) {
        self.pos += n;
    }

    #[inline]
    pub(crate) fn read_bit(&mut self, bytes: &[u8]) -> Option<bool> {
        let byte = *bytes.get(self.pos / 8)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    /// Reads `n <= 64` bits as the low bits of the result.
    #[inline]
    pub(crate) fn read_bits(&mut self, bytes: &[u8], n: u32) -> Option<u64> {
        debug_assert!(n <= 64);
        if n == 0 {
            return Some(0);
        }
        let end = self.pos.checked_add(n as usize)?;
        if end > bytes.len().saturating_mul(8) {
            return None;
        }
        let first = self.pos / 8;
        let offset = (self.pos % 8) as u32;
        if let Some(eight) = bytes.get(first..first + 8) {
            // Fast path away from the end: one 64-bit load, plus the next
            // byte when the field reaches past it (it exists: `end` is in
            // bounds).
            let word = u64::from_be_bytes(eight.try_into().ok()?);
            let mut value = (word << offset) >> (64 - n);
            if offset + n > 64 {
                let spill = offset + n - 64;
                value |= u64::from(*bytes.get(first + 8)?) >> (8 - spill);
            }
            self.pos = end;
            return Some(value);
        }
        // Load up to 9 bytes (72 bits) starting at `first` into the low bits of
        // a u128; missing bytes past the end read as zero and are never used.
        let mut window = [0u8; 16];
        let available = bytes.len() - first;
        let take = available.min(9);
        window[7..7 + take].copy_from_slice(&bytes[first..first + take]);
        let word = u128::from_be_bytes(window);
        // Bit `offset` of the first byte is bit 71 - offset of `word`.
        let value = (word << (56 + offset)) >> (128 - n);
        self.pos = end;
        Some(value as u64)
    }

    /// Reads a zig-zag LEB128 varint written by [`BitWriter::write_varint`].
    pub(crate) fn read_varint(&mut self, bytes: &[u8]) -> Option<i64> {
        let mut zigzag: u64 = 0;
        for i in 0..10 {
            let byte = self.read_bits(bytes, 8)?;
            let payload = byte & 0x7f;
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && payload > 1 {
                return None;
            }
            zigzag |= payload << (7 * i);
            if byte & 0x80 == 0 {
                return Some(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_across_byte_boundaries() {
        let mut w = BitWriter::with_prefix(vec![0xAB]);
        let fields: &[(u64, u32)] = &[
            (1, 1),
            (0b101, 3),
            (0x3fff, 14),
            (u64::MAX, 64),
            (0, 5),
            (0x1234_5678_9abc_def0, 64),
            (7, 3),
        ];
        for &(v, n) in fields {
            w.write_bits(v, n);
        }
        let bytes = w.bytes();
        assert_eq!(bytes[0], 0xAB, "prefix kept");
        let mut r = BitReader::at_bit(8);
        for &(v, n) in fields {
            assert_eq!(r.read_bits(bytes, n), Some(v & low_mask(n)));
        }
        assert!(
            r.read_bits(bytes, 8).is_none(),
            "reading past the end fails"
        );
    }

    #[test]
    fn varints_round_trip_extremes() {
        let values = [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1_700_000_000_000];
        let mut w = BitWriter::with_prefix(Vec::new());
        w.write_bit(true);
        for v in values {
            w.write_varint(v);
        }
        let mut r = BitReader::default();
        assert_eq!(r.read_bit(w.bytes()), Some(true));
        for v in values {
            assert_eq!(r.read_varint(w.bytes()), Some(v));
        }
    }

    #[test]
    fn every_width_at_every_offset_round_trips() {
        for lead in 0..8u32 {
            for n in 1..=64u32 {
                let value = 0xA5C3_96E1_0F78_5AB4u64 & low_mask(n);
                let mut w = BitWriter::with_prefix(Vec::new());
                w.write_bits(0, lead);
                w.write_bits(value, n);
                // Trailing bytes exercise the fast path; without them the
                // slow path near the end is used.
                let short = w.bytes().to_vec();
                let mut long = short.clone();
                long.extend_from_slice(&[0xff; 9]);
                for bytes in [&short, &long] {
                    let mut r = BitReader::at_bit(lead as usize);
                    assert_eq!(r.read_bits(bytes, n), Some(value), "lead {lead} n {n}");
                }
            }
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let bytes = [0xff; 11];
        assert_eq!(BitReader::default().read_varint(&bytes), None);
    }
}
