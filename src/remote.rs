//! Remote storage: Prometheus's remote write 1.0 and remote read protocols.
//!
//! - [`proto`]: the `prompb` protobuf messages (hand-written prost).
//! - [`encode`]/[`decode`]: a message in the snappy block format, as both
//!   protocols send it over HTTP. Wire format: `docs/format/remote.md`,
//!   pinned by the golden bytes in `tests/data/remote/`.
//! - [`write`]: the sender: per-endpoint queues fed by following the WAL,
//!   shards, batching, retries, `sextant_remote_storage_*` metrics.
//! - The receivers (`POST /api/v1/write`, `POST /api/v1/read`) live in
//!   `crate::api::remote`.

pub mod fanout;
pub mod proto;
pub mod read;
pub mod write;

use prost::Message;
use tsdb::model::{Labels, MatchOp, Matcher};

/// Content type of both protocols' bodies.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// `X-Prometheus-Remote-Write-Version` of remote write 1.0.
pub const WRITE_VERSION: &str = "0.1.0";
/// `X-Prometheus-Remote-Read-Version`.
pub const READ_VERSION: &str = "0.1.0";

/// Errors of the remote storage protocols.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("snappy: {0}")]
    Snappy(#[from] snap::Error),
    #[error("decompressed body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid matcher: {0}")]
    Matcher(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A message as it travels: protobuf, then snappy's block format.
pub fn encode(message: &impl Message) -> Vec<u8> {
    let raw = message.encode_to_vec();
    // Compressing an in-memory buffer fails only for inputs over 4 GiB,
    // which no batch reaches; an empty body then tells the peer.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// The message in `body` (snappy block format, then protobuf), refusing
/// bodies that would decompress to more than `limit` bytes before
/// allocating them.
///
/// # Errors
/// Bad snappy data, an oversized body, bad protobuf.
pub fn decode<M: Message + Default>(body: &[u8], limit: usize) -> Result<M> {
    let size = snap::raw::decompress_len(body)?;
    if size > limit {
        return Err(Error::TooLarge { size, limit });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(M::decode(raw.as_slice())?)
}

/// Our labels as protobuf labels (already sorted by name).
pub fn labels_to_proto(labels: &Labels) -> Vec<proto::Label> {
    labels
        .iter()
        .map(|l| proto::Label {
            name: l.name.to_string(),
            value: l.value.to_string(),
        })
        .collect()
}

/// Protobuf labels as ours (sorted; empty values dropped as Prometheus's
/// label sets have none).
pub fn labels_from_proto(labels: &[proto::Label]) -> Labels {
    Labels::new(
        labels
            .iter()
            .filter(|l| !l.value.is_empty())
            .map(|l| tsdb::model::Label::new(l.name.as_str(), l.value.as_str()))
            .collect(),
    )
}

/// A protobuf matcher as ours.
///
/// # Errors
/// An unknown matcher type or a regex that does not compile.
pub fn matcher_from_proto(m: &proto::LabelMatcher) -> Result<Matcher> {
    let op = match proto::MatcherType::try_from(m.r#type) {
        Ok(proto::MatcherType::Eq) => MatchOp::Equal,
        Ok(proto::MatcherType::Neq) => MatchOp::NotEqual,
        Ok(proto::MatcherType::Re) => MatchOp::RegexMatch,
        Ok(proto::MatcherType::Nre) => MatchOp::RegexNoMatch,
        Err(_) => return Err(Error::Matcher(format!("unknown matcher type {}", m.r#type))),
    };
    Matcher::new(op, m.name.as_str(), m.value.as_str()).map_err(|e| Error::Matcher(e.to_string()))
}

/// Our matcher as a protobuf matcher.
pub fn matcher_to_proto(m: &Matcher) -> proto::LabelMatcher {
    let kind = match m.op() {
        MatchOp::Equal => proto::MatcherType::Eq,
        MatchOp::NotEqual => proto::MatcherType::Neq,
        MatchOp::RegexMatch => proto::MatcherType::Re,
        MatchOp::RegexNoMatch => proto::MatcherType::Nre,
    };
    proto::LabelMatcher {
        r#type: kind as i32,
        name: m.name().to_string(),
        value: m.value().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{Label, LabelMatcher, Query, ReadRequest, Sample, TimeSeries, WriteRequest};

    fn label(name: &str, value: &str) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The example of `docs/format/remote.md`.
    fn golden_write_request() -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![label("__name__", "up"), label("job", "a")],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1000,
                }],
                exemplars: vec![],
            }],
            metadata: vec![],
        }
    }

    fn golden_read_request() -> ReadRequest {
        ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: 1000,
                end_timestamp_ms: 2000,
                matchers: vec![LabelMatcher {
                    r#type: proto::MatcherType::Re as i32,
                    name: "job".into(),
                    value: "a.*".into(),
                }],
                hints: None,
            }],
            accepted_response_types: vec![proto::ResponseType::Samples as i32],
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The committed bytes of `name`; `SEXTANT_BLESS=1` rewrites them from
    /// `actual` after a deliberate format change.
    fn assert_golden(name: &str, actual: &[u8]) {
        let path = format!("{}/tests/data/remote/{name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var("SEXTANT_BLESS").as_deref() == Ok("1") {
            std::fs::write(&path, actual).unwrap();
        }
        let expected = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(hex(actual), hex(&expected), "{path}");
    }

    #[test]
    fn write_request_bytes_match_the_documented_layout() {
        let raw = golden_write_request().encode_to_vec();
        // Field by field as in docs/format/remote.md.
        let expected = concat!(
            "0a28", // timeseries, 40 bytes
            "0a0e",
            "0a085f5f6e616d655f5f",
            "12027570", // label __name__=up
            "0a08",
            "0a036a6f62",
            "120161", // label job=a
            "120c",
            "09000000000000f03f",
            "10e807", // sample 1.0 @ 1000
        );
        assert_eq!(hex(&raw), expected);
        assert_golden("write_request.snappy", &encode(&golden_write_request()));
    }

    #[test]
    fn read_request_bytes_match_the_golden_file() {
        let raw = golden_read_request().encode_to_vec();
        let expected = concat!(
            "0a14", // queries, 20 bytes
            "08e807",
            "10d00f", // start 1000, end 2000
            "1a0c",
            "0802",
            "12036a6f62",
            "1a03612e2a", // matcher job=~"a.*"
            "120100",     // accepted: [SAMPLES], packed
        );
        assert_eq!(hex(&raw), expected);
        assert_golden("read_request.snappy", &encode(&golden_read_request()));
    }

    #[test]
    fn decoding_round_trips_and_checks_the_limit() {
        let body = encode(&golden_write_request());
        let decoded: WriteRequest = decode(&body, 1 << 20).unwrap();
        assert_eq!(decoded, golden_write_request());
        let too_small = decode::<WriteRequest>(&body, 10).unwrap_err();
        assert!(matches!(
            too_small,
            Error::TooLarge {
                size: 42,
                limit: 10
            }
        ));
        assert!(decode::<WriteRequest>(b"not snappy at all", 1 << 20).is_err());
        // Valid snappy, invalid protobuf.
        let garbage = snap::raw::Encoder::new().compress_vec(&[0xff; 8]).unwrap();
        assert!(matches!(
            decode::<WriteRequest>(&garbage, 1 << 20),
            Err(Error::Protobuf(_))
        ));
    }

    #[test]
    fn matchers_convert_both_ways() {
        for m in [
            Matcher::equal("job", "a"),
            Matcher::new(MatchOp::NotEqual, "job", "").unwrap(),
            Matcher::new(MatchOp::RegexMatch, "job", "a|b").unwrap(),
            Matcher::new(MatchOp::RegexNoMatch, "__name__", "up.*").unwrap(),
        ] {
            let back = matcher_from_proto(&matcher_to_proto(&m)).unwrap();
            assert_eq!(
                (back.op(), back.name(), back.value()),
                (m.op(), m.name(), m.value())
            );
        }
        let unknown = LabelMatcher {
            r#type: 9,
            name: "a".into(),
            value: "b".into(),
        };
        assert!(matcher_from_proto(&unknown).is_err());
    }

    #[test]
    fn labels_convert_both_ways() {
        let labels = Labels::from_pairs(&[("__name__", "up"), ("job", "a")]);
        let proto = labels_to_proto(&labels);
        assert_eq!(proto, vec![label("__name__", "up"), label("job", "a")]);
        assert_eq!(labels_from_proto(&proto), labels);
        // Unsorted input is sorted; empty values are no labels.
        let unsorted = vec![label("job", "a"), label("x", ""), label("__name__", "up")];
        assert_eq!(labels_from_proto(&unsorted), labels);
    }
}
