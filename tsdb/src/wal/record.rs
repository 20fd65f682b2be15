//! WAL records: what they hold and how they are framed and encoded.
//! Byte layout: `tsdb/docs/format/wal.md`.

use std::sync::Arc;

use crate::model::{Label, Labels, SeriesRef};

/// Record type of a series record.
pub(crate) const TYPE_SERIES: u8 = 1;
/// Record type of a samples record.
pub(crate) const TYPE_SAMPLES: u8 = 2;
/// Record type of a tombstones record.
pub(crate) const TYPE_TOMBSTONES: u8 = 3;
/// Set in a record's type byte when its payload is snappy-compressed
/// (block format), as Prometheus flags compressed WAL records.
pub(crate) const FLAG_SNAPPY: u8 = 0x80;
/// Payloads shorter than this are written as they are: a scrape's small
/// records gain too little to pay for the compression.
const MIN_COMPRESSED_LEN: usize = 256;
/// The largest payload a compressed record may claim to expand to: far
/// above what the encoders write (about [`MAX_PAYLOAD_LEN`] plus one
/// entry), low enough that a damaged length cannot exhaust memory.
const MAX_DECOMPRESSED_LEN: usize = 64 << 20;

/// Bytes before a record's payload: type (1) and payload length (4).
pub(crate) const FRAME_HEADER_LEN: usize = 5;
/// Bytes after a record's payload: the CRC32C.
pub(crate) const FRAME_TRAILER_LEN: usize = 4;

/// A series the head created, with the reference its samples use.
#[derive(Debug, Clone, PartialEq)]
pub struct RefSeries {
    pub series_ref: SeriesRef,
    pub labels: Labels,
}

/// One sample of the series with reference `series_ref`.
#[derive(Debug, Clone, Copy)]
pub struct RefSample {
    pub series_ref: SeriesRef,
    pub t: i64,
    pub v: f64,
}

impl PartialEq for RefSample {
    /// Bit-exact on the value, so that NaN payloads compare as stored.
    fn eq(&self, other: &Self) -> bool {
        self.series_ref == other.series_ref
            && self.t == other.t
            && self.v.to_bits() == other.v.to_bits()
    }
}

/// The samples of series `series_ref` in `[min_t, max_t]` (both
/// inclusive) were deleted: replay drops those it has read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefTombstone {
    pub series_ref: SeriesRef,
    pub min_t: i64,
    pub max_t: i64,
}

/// One decoded WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Series(Vec<RefSeries>),
    Samples(Vec<RefSample>),
    Tombstones(Vec<RefTombstone>),
}

/// Why a checksummed record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeRecordError {
    #[error("unknown record type {0}")]
    UnknownType(u8),
    #[error("record payload ends early")]
    Truncated,
    #[error("series reference 0 is invalid")]
    ZeroSeriesRef,
    #[error("label string is not valid UTF-8")]
    InvalidUtf8,
    #[error("varint is longer than 10 bytes")]
    VarintOverflow,
    #[error("compressed payload does not decompress: {0}")]
    Decompress(String),
}

/// Payload size after which an encoder starts a new record, so that records
/// stay small next to a segment and far below the 4 GiB the length field
/// allows.
pub(crate) const MAX_PAYLOAD_LEN: usize = 1 << 20;

/// Appends framed series records to `out`: one, or several for a very
/// large batch.
pub(crate) fn encode_series(series: &[RefSeries], out: &mut Vec<u8>) {
    let mut payload = Vec::new();
    for s in series {
        if payload.len() > MAX_PAYLOAD_LEN {
            frame(TYPE_SERIES, &payload, out);
            payload.clear();
        }
        encode_series_entry(s, &mut payload);
    }
    frame(TYPE_SERIES, &payload, out);
}

/// Appends one series entry (the unframed payload of a series record) to
/// `payload`.
pub(crate) fn encode_series_entry(s: &RefSeries, payload: &mut Vec<u8>) {
    payload.extend_from_slice(&s.series_ref.get().to_be_bytes());
    put_uvarint(payload, s.labels.len() as u64);
    for label in &s.labels {
        put_uvarint(payload, label.name.len() as u64);
        payload.extend_from_slice(label.name.as_bytes());
        put_uvarint(payload, label.value.len() as u64);
        payload.extend_from_slice(label.value.as_bytes());
    }
}

/// Appends a record of `record_type` holding `payload` to `out`,
/// compressed when that makes it smaller.
pub(crate) fn frame(record_type: u8, payload: &[u8], out: &mut Vec<u8>) {
    let start = begin_frame(record_type, out);
    out.extend_from_slice(payload);
    end_frame(start, out);
}

/// Samples per record: at most 8 + 8 + 20 + 8 bytes each, so a record stays
/// below [`MAX_PAYLOAD_LEN`].
const MAX_SAMPLES_PER_RECORD: usize = 20_000;

/// Appends framed samples records to `out`: one, or several for a very
/// large batch. References and timestamps are stored as deltas to the
/// record's first sample, which keeps them to a byte or two for the samples
/// of one scrape.
pub(crate) fn encode_samples(samples: &[RefSample], out: &mut Vec<u8>) {
    if samples.is_empty() {
        let start = begin_frame(TYPE_SAMPLES, out);
        end_frame(start, out);
        return;
    }
    for batch in samples.chunks(MAX_SAMPLES_PER_RECORD) {
        let start = begin_frame(TYPE_SAMPLES, out);
        let base_ref = batch[0].series_ref.get();
        let base_t = batch[0].t;
        out.extend_from_slice(&base_ref.to_be_bytes());
        out.extend_from_slice(&base_t.to_be_bytes());
        for s in batch {
            // Wrapping arithmetic keeps the extremes (i64::MIN against
            // i64::MAX) exact: decoding wraps back the same way.
            put_varint(out, s.series_ref.get().wrapping_sub(base_ref) as i64);
            put_varint(out, s.t.wrapping_sub(base_t));
            out.extend_from_slice(&s.v.to_bits().to_be_bytes());
        }
        end_frame(start, out);
    }
}

/// Appends framed tombstones records to `out`.
pub(crate) fn encode_tombstones(stones: &[RefTombstone], out: &mut Vec<u8>) {
    let mut start = begin_frame(TYPE_TOMBSTONES, out);
    for s in stones {
        if out.len() - start > MAX_PAYLOAD_LEN {
            end_frame(start, out);
            start = begin_frame(TYPE_TOMBSTONES, out);
        }
        out.extend_from_slice(&s.series_ref.get().to_be_bytes());
        put_varint(out, s.min_t);
        put_varint(out, s.max_t);
    }
    end_frame(start, out);
}

/// The length of the frame at the start of `frames`, if a whole frame is
/// there.
pub(crate) fn frame_len(frames: &[u8]) -> Option<usize> {
    let len_bytes: [u8; 4] = frames.get(1..FRAME_HEADER_LEN)?.try_into().ok()?;
    let len = FRAME_HEADER_LEN + u32::from_be_bytes(len_bytes) as usize + FRAME_TRAILER_LEN;
    (len <= frames.len()).then_some(len)
}

fn begin_frame(record_type: u8, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.push(record_type);
    out.extend_from_slice(&[0; 4]);
    start
}

fn end_frame(start: usize, out: &mut Vec<u8>) {
    let payload_start = start + FRAME_HEADER_LEN;
    if out.len() - payload_start >= MIN_COMPRESSED_LEN {
        compress_payload(start, out);
    }
    let payload_len = out.len() - payload_start;
    // The encoders cut records at about MAX_PAYLOAD_LEN, far below 4 GiB.
    let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    out[start + 1..payload_start].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Replaces the payload of the frame at `start` (the end of `out`) by its
/// snappy compression and flags the type, when that is smaller.
fn compress_payload(start: usize, out: &mut Vec<u8>) {
    let payload_start = start + FRAME_HEADER_LEN;
    let payload = &out[payload_start..];
    let mut compressed = vec![0; snap::raw::max_compress_len(payload.len())];
    let Ok(n) = snap::raw::Encoder::new().compress(payload, &mut compressed) else {
        return;
    };
    if n < payload.len() {
        out.truncate(payload_start);
        out.extend_from_slice(&compressed[..n]);
        out[start] |= FLAG_SNAPPY;
    }
}

/// The CRC32C a frame stores: over the type, the length and the payload.
pub(crate) fn frame_crc(header: &[u8; FRAME_HEADER_LEN], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(header), payload)
}

/// Decodes the payload of a record whose checksum has been verified.
pub fn decode(record_type: u8, payload: &[u8]) -> Result<Record, DecodeRecordError> {
    if record_type & FLAG_SNAPPY != 0 {
        let decompressed = decompress(payload)?;
        return decode(record_type & !FLAG_SNAPPY, &decompressed);
    }
    let mut r = Reader { buf: payload };
    match record_type {
        TYPE_SERIES => {
            let mut series = Vec::new();
            while !r.buf.is_empty() {
                let series_ref = r.series_ref()?;
                let n_labels = r.uvarint()?;
                let mut labels = Vec::with_capacity(n_labels.min(64) as usize);
                for _ in 0..n_labels {
                    let name = r.string()?;
                    let value = r.string()?;
                    labels.push(Label::new(name, value));
                }
                series.push(RefSeries {
                    series_ref,
                    // `new` re-sorts and drops empty values, so a record
                    // edited by hand still yields a valid label set.
                    labels: Labels::new(labels),
                });
            }
            Ok(Record::Series(series))
        }
        TYPE_SAMPLES => {
            let mut samples = Vec::new();
            if r.buf.is_empty() {
                return Ok(Record::Samples(samples));
            }
            let base_ref = r.u64()?;
            let base_t = r.u64()? as i64;
            while !r.buf.is_empty() {
                let series_ref = base_ref.wrapping_add(r.varint()? as u64);
                let t = base_t.wrapping_add(r.varint()?);
                let v = f64::from_bits(r.u64()?);
                let series_ref =
                    SeriesRef::new(series_ref).ok_or(DecodeRecordError::ZeroSeriesRef)?;
                samples.push(RefSample { series_ref, t, v });
            }
            Ok(Record::Samples(samples))
        }
        TYPE_TOMBSTONES => {
            let mut stones = Vec::new();
            while !r.buf.is_empty() {
                let series_ref = r.series_ref()?;
                let min_t = r.varint()?;
                let max_t = r.varint()?;
                stones.push(RefTombstone {
                    series_ref,
                    min_t,
                    max_t,
                });
            }
            Ok(Record::Tombstones(stones))
        }
        other => Err(DecodeRecordError::UnknownType(other)),
    }
}

fn decompress(payload: &[u8]) -> Result<Vec<u8>, DecodeRecordError> {
    let error = |e: snap::Error| DecodeRecordError::Decompress(e.to_string());
    let len = snap::raw::decompress_len(payload).map_err(error)?;
    if len > MAX_DECOMPRESSED_LEN {
        return Err(DecodeRecordError::Decompress(format!(
            "claims {len} bytes, more than the {MAX_DECOMPRESSED_LEN} a record may hold"
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(payload)
        .map_err(error)
}

fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Zigzag-encoded signed varint, as Go's `binary.PutVarint`.
fn put_varint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, ((x << 1) ^ (x >> 63)) as u64);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeRecordError> {
        if self.buf.len() < n {
            return Err(DecodeRecordError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, DecodeRecordError> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_be_bytes(array))
    }

    fn series_ref(&mut self) -> Result<SeriesRef, DecodeRecordError> {
        SeriesRef::new(self.u64()?).ok_or(DecodeRecordError::ZeroSeriesRef)
    }

    fn uvarint(&mut self) -> Result<u64, DecodeRecordError> {
        let mut x = 0u64;
        for i in 0..10 {
            let [byte] = self.take(1)? else {
                return Err(DecodeRecordError::Truncated);
            };
            let byte = *byte;
            x |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(x);
            }
        }
        Err(DecodeRecordError::VarintOverflow)
    }

    fn varint(&mut self) -> Result<i64, DecodeRecordError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn string(&mut self) -> Result<Arc<str>, DecodeRecordError> {
        let len = usize::try_from(self.uvarint()?).map_err(|_| DecodeRecordError::Truncated)?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(Arc::from)
            .map_err(|_| DecodeRecordError::InvalidUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encodes one record and decodes it back through the frame.
    fn round_trip(record: &Record) -> Record {
        let mut buf = Vec::new();
        match record {
            Record::Series(s) => encode_series(s, &mut buf),
            Record::Samples(s) => encode_samples(s, &mut buf),
            Record::Tombstones(s) => encode_tombstones(s, &mut buf),
        }
        let header: [u8; FRAME_HEADER_LEN] = buf[..FRAME_HEADER_LEN].try_into().unwrap();
        let len = u32::from_be_bytes(header[1..].try_into().unwrap()) as usize;
        assert_eq!(buf.len(), FRAME_HEADER_LEN + len + FRAME_TRAILER_LEN);
        let payload = &buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
        let crc = u32::from_be_bytes(buf[FRAME_HEADER_LEN + len..].try_into().unwrap());
        assert_eq!(crc, frame_crc(&header, payload));
        decode(header[0], payload).unwrap()
    }

    fn sref(id: u64) -> SeriesRef {
        SeriesRef::new(id).unwrap()
    }

    #[test]
    fn special_values_survive_bit_exactly() {
        let values = [
            crate::model::STALE_NAN,
            f64::NAN,
            f64::from_bits(0xfff8_dead_beef_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            f64::MIN_POSITIVE / 2.0,
        ];
        let samples: Vec<RefSample> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| RefSample {
                series_ref: sref(u64::MAX - i as u64),
                t: if i % 2 == 0 { i64::MIN } else { i64::MAX },
                v,
            })
            .collect();
        let record = Record::Samples(samples);
        assert_eq!(round_trip(&record), record);
    }

    #[test]
    fn empty_records_round_trip() {
        assert_eq!(
            round_trip(&Record::Samples(vec![])),
            Record::Samples(vec![])
        );
        assert_eq!(round_trip(&Record::Series(vec![])), Record::Series(vec![]));
        assert_eq!(
            round_trip(&Record::Tombstones(vec![])),
            Record::Tombstones(vec![])
        );
    }

    #[test]
    fn tombstones_round_trip_with_extreme_times() {
        let record = Record::Tombstones(vec![
            RefTombstone {
                series_ref: sref(1),
                min_t: i64::MIN,
                max_t: i64::MAX,
            },
            RefTombstone {
                series_ref: sref(u64::MAX),
                min_t: -5,
                max_t: 1_700_000_000_000,
            },
        ]);
        assert_eq!(round_trip(&record), record);
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        assert_eq!(decode(9, &[]), Err(DecodeRecordError::UnknownType(9)));
        assert_eq!(
            decode(TYPE_SAMPLES, &[1, 2]),
            Err(DecodeRecordError::Truncated)
        );
        assert_eq!(
            decode(TYPE_SERIES, &[0; 9]),
            Err(DecodeRecordError::ZeroSeriesRef)
        );
        let mut bad_utf8 = 1u64.to_be_bytes().to_vec();
        bad_utf8.extend_from_slice(&[1, 1, 0xff, 1, b'a']);
        assert_eq!(
            decode(TYPE_SERIES, &bad_utf8),
            Err(DecodeRecordError::InvalidUtf8)
        );
        let mut long_varint = 1u64.to_be_bytes().to_vec();
        long_varint.extend_from_slice(&[0xff; 11]);
        assert_eq!(
            decode(TYPE_SERIES, &long_varint),
            Err(DecodeRecordError::VarintOverflow)
        );
    }

    fn arb_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            Just(crate::model::STALE_NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            any::<f64>(),
        ]
    }

    fn arb_sample() -> impl Strategy<Value = RefSample> {
        (1..=u64::MAX, any::<i64>(), arb_value()).prop_map(|(r, t, v)| RefSample {
            series_ref: sref(r),
            t,
            v,
        })
    }

    fn arb_series() -> impl Strategy<Value = RefSeries> {
        (
            1..=u64::MAX,
            proptest::collection::vec(("[a-z_]{1,8}", "\\PC{1,12}"), 0..6),
        )
            .prop_map(|(r, pairs)| RefSeries {
                series_ref: sref(r),
                labels: Labels::from_pairs(&pairs),
            })
    }

    proptest! {
        #[test]
        fn samples_round_trip(samples in proptest::collection::vec(arb_sample(), 0..50)) {
            let record = Record::Samples(samples);
            prop_assert_eq!(round_trip(&record), record);
        }

        #[test]
        fn series_round_trip(series in proptest::collection::vec(arb_series(), 0..20)) {
            let record = Record::Series(series);
            prop_assert_eq!(round_trip(&record), record);
        }

        #[test]
        fn decoding_garbage_never_panics(record_type in 0u8..5, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(record_type, &payload);
        }
    }
}
