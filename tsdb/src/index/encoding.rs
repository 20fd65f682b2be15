//! Byte-level encoding helpers for the block files (index and chunk
//! segments): varints and a bounds-checked decoding cursor.

/// Appends an unsigned LEB128 varint.
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Appends a zig-zag signed varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, ((x << 1) ^ (x >> 63)) as u64);
}

/// Appends a length-prefixed string.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over bytes; every read is bounds-checked and returns `None` on
/// malformed input, leaving the position where the bad field started.
#[derive(Debug, Clone)]
pub(crate) struct Decbuf<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Decbuf<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Decbuf { bytes, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    pub(crate) fn be_u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.bytes(4)?.try_into().ok()?))
    }

    pub(crate) fn be_u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.bytes(8)?.try_into().ok()?))
    }

    pub(crate) fn uvarint(&mut self) -> Option<u64> {
        let mut x: u64 = 0;
        for i in 0..10 {
            let byte = *self.bytes.get(self.pos + i)?;
            let payload = u64::from(byte & 0x7f);
            if i == 9 && payload > 1 {
                return None;
            }
            x |= payload << (7 * i);
            if byte & 0x80 == 0 {
                self.pos += i + 1;
                return Some(x);
            }
        }
        None
    }

    pub(crate) fn varint(&mut self) -> Option<i64> {
        let z = self.uvarint()?;
        Some(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// A uvarint that must fit `usize`.
    pub(crate) fn uvarint_usize(&mut self) -> Option<usize> {
        usize::try_from(self.uvarint()?).ok()
    }

    /// A length-prefixed UTF-8 string.
    pub(crate) fn str(&mut self) -> Option<&'a str> {
        let len = self.uvarint_usize()?;
        std::str::from_utf8(self.bytes(len)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_strings_round_trip() {
        let mut out = Vec::new();
        for x in [0, 1, 127, 128, u64::MAX] {
            put_uvarint(&mut out, x);
        }
        for x in [0, -1, i64::MIN, i64::MAX] {
            put_varint(&mut out, x);
        }
        put_str(&mut out, "héllo");
        let mut d = Decbuf::new(&out);
        for x in [0, 1, 127, 128, u64::MAX] {
            assert_eq!(d.uvarint(), Some(x));
        }
        for x in [0, -1, i64::MIN, i64::MAX] {
            assert_eq!(d.varint(), Some(x));
        }
        assert_eq!(d.str(), Some("héllo"));
        assert_eq!(d.remaining(), 0);
        assert_eq!(d.u8(), None);
    }

    #[test]
    fn malformed_input_is_none() {
        assert_eq!(Decbuf::new(&[0x80]).uvarint(), None);
        assert_eq!(Decbuf::new(&[0xff; 10]).uvarint(), None);
        assert_eq!(Decbuf::new(&[3, b'a']).str(), None);
        assert_eq!(Decbuf::new(&[1, 0xff]).str(), None);
    }
}
