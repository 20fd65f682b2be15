//! Block ids: ULIDs (48-bit millisecond timestamp, 80 random bits, Crockford
//! base32), so that ids sort by creation time, as Prometheus's do.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// A block id; its text form names the block directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(u128);

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Length of the text form.
pub const BLOCK_ID_LEN: usize = 26;

impl BlockId {
    /// A new id for a block created at `now_ms` (from the caller's clock),
    /// with fresh random bits.
    pub fn new(now_ms: i64) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        // `RandomState` is seeded randomly per process and per instance, so
        // hashing a counter yields unpredictable, non-repeating bits without
        // a random number crate.
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let high = RandomState::new().hash_one(count);
        let low = RandomState::new().hash_one(count ^ 0x5555_5555_5555_5555);
        let random = (u128::from(high) << 64 | u128::from(low)) & ((1u128 << 80) - 1);
        let time = (now_ms.max(0) as u128) & ((1u128 << 48) - 1);
        BlockId(time << 80 | random)
    }

    /// An id from its parts, for tests and golden files.
    pub fn from_parts(time_ms: u64, random: u128) -> Self {
        let time = u128::from(time_ms) & ((1u128 << 48) - 1);
        BlockId(time << 80 | (random & ((1u128 << 80) - 1)))
    }

    /// The creation time in milliseconds.
    pub fn time_ms(&self) -> u64 {
        (self.0 >> 80) as u64
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; BLOCK_ID_LEN];
        for (i, c) in out.iter_mut().enumerate() {
            let shift = 5 * (BLOCK_ID_LEN - 1 - i);
            *c = ALPHABET[((self.0 >> shift) & 31) as usize];
        }
        // The alphabet is ASCII.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// Why a string is not a block id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid block id {0:?}")]
pub struct ParseBlockIdError(pub String);

impl FromStr for BlockId {
    type Err = ParseBlockIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseBlockIdError(s.to_string());
        if s.len() != BLOCK_ID_LEN {
            return Err(err());
        }
        let mut value: u128 = 0;
        for (i, b) in s.bytes().enumerate() {
            let digit = ALPHABET
                .iter()
                .position(|&a| a == b.to_ascii_uppercase())
                .ok_or_else(err)? as u128;
            // 26 digits hold 130 bits; the first may only use 3 of its 5.
            if i == 0 && digit > 7 {
                return Err(err());
            }
            value = value << 5 | digit;
        }
        Ok(BlockId(value))
    }
}

impl serde::Serialize for BlockId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for BlockId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_time() {
        let a = BlockId::new(1_700_000_000_000);
        let b = BlockId::new(1_700_000_000_001);
        assert!(a < b);
        assert_ne!(BlockId::new(5), BlockId::new(5));
        let text = a.to_string();
        assert_eq!(text.len(), BLOCK_ID_LEN);
        assert_eq!(text.parse::<BlockId>(), Ok(a));
        assert_eq!(a.time_ms(), 1_700_000_000_000);
        assert_eq!(text.to_lowercase().parse::<BlockId>(), Ok(a));
    }

    #[test]
    fn known_ulid_text() {
        let id = BlockId::from_parts(1_469_918_176_385, 0);
        assert_eq!(id.to_string(), "01ARYZ6S410000000000000000");
        assert!("01ARYZ6S41000000000000000".parse::<BlockId>().is_err());
        assert!("81ARYZ6S410000000000000000".parse::<BlockId>().is_err());
        assert!("01ARYZ6S41000000000000000U".parse::<BlockId>().is_err());
    }
}
