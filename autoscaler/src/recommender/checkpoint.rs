//! The recommender's checkpoint file: every workload's VPA model, so that a
//! restart restores the models and feeds only the minutes since the checkpoint
//! instead of rebuilding them from days of history (as the VPA recommender keeps
//! `VerticalPodAutoscalerCheckpoint` objects and restores them at start).
//!
//! Format (JSON lines, a header, one line per workload, a trailer with a CRC32C of
//! everything before it): [`checkpoints.md`](../../docs/format/checkpoints.md),
//! pinned by the golden file `src/recommender/testdata/checkpoints-v1.jsonl`.
//! Encoding and decoding are pure (a `Write` in, bytes out); the caller owns the
//! file (atomic replace) and logs a file [`read`] refuses.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::controller::{FeedStats, WorkloadRef};
use crate::vpa::{self, WorkloadCheckpoint};
use crate::{Error, Result};

/// The header's `format`.
pub const FORMAT: &str = "sextant-vpa-checkpoints";
/// The version this code writes and reads.
pub const VERSION: u32 = 1;

/// The first line: what the models were built with. Models built with other
/// half-lives or another memory aggregation interval cannot be continued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// When the checkpoint was written (Unix ms).
    pub saved_ms: i64,
    /// The resolution of the usage fed (`vpa_step`).
    pub vpa_step_ms: i64,
    pub cpu_half_life_ms: i64,
    pub memory_half_life_ms: i64,
    pub memory_aggregation_interval_ms: i64,
}

impl Header {
    /// The header for models built with `options` fed every `vpa_step_ms`.
    pub fn new(options: &vpa::Options, vpa_step_ms: i64, saved_ms: i64) -> Header {
        Header {
            format: FORMAT.to_string(),
            version: VERSION,
            saved_ms,
            vpa_step_ms,
            cpu_half_life_ms: ms(options.cpu_histogram_decay_half_life),
            memory_half_life_ms: ms(options.memory_histogram_decay_half_life),
            memory_aggregation_interval_ms: ms(options.memory_aggregation_interval),
        }
    }

    /// Whether models saved under this header can go on under `current`: the same
    /// decay and aggregation (the percentiles, margins and caps are applied when
    /// recommending and may change freely).
    pub fn compatible(&self, current: &Header) -> std::result::Result<(), String> {
        for (name, saved, now) in [
            ("vpa_step_ms", self.vpa_step_ms, current.vpa_step_ms),
            (
                "cpu_half_life_ms",
                self.cpu_half_life_ms,
                current.cpu_half_life_ms,
            ),
            (
                "memory_half_life_ms",
                self.memory_half_life_ms,
                current.memory_half_life_ms,
            ),
            (
                "memory_aggregation_interval_ms",
                self.memory_aggregation_interval_ms,
                current.memory_aggregation_interval_ms,
            ),
        ] {
            if saved != now {
                return Err(format!(
                    "the checkpoint's {name} is {saved}, the recommender's {now}"
                ));
            }
        }
        Ok(())
    }
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One workload's model and how far it was fed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub workload: WorkloadRef,
    /// The first and the last step fed (Unix ms); feeding resumes one step after
    /// `fed_until_ms`.
    pub fed_from_ms: Option<i64>,
    pub fed_until_ms: i64,
    pub cpu_samples: usize,
    pub memory_samples: usize,
    pub dropped_samples: usize,
    pub model: WorkloadCheckpoint,
}

impl Record {
    pub fn stats(&self) -> FeedStats {
        FeedStats {
            cpu_samples: self.cpu_samples,
            memory_samples: self.memory_samples,
            dropped: self.dropped_samples,
        }
    }
}

/// The last line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    end: End,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    /// Workload lines between the header and the trailer.
    workloads: usize,
    /// CRC32C (Castagnoli) of every byte before the trailer line.
    crc32c: u32,
}

/// A `Write` that keeps the CRC32C of what went through.
struct Crc<W> {
    inner: W,
    crc: u32,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn json_line(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Writes a checkpoint file: `header`, one line per record, the trailer.
///
/// # Errors
/// What `out` returns.
pub fn write(
    out: impl Write,
    header: &Header,
    records: impl IntoIterator<Item = Record>,
) -> std::io::Result<()> {
    let mut out = Crc { inner: out, crc: 0 };
    json_line(&mut out, header)?;
    let mut workloads = 0;
    for record in records {
        json_line(&mut out, &record)?;
        workloads += 1;
    }
    let trailer = Trailer {
        end: End {
            workloads,
            crc32c: out.crc,
        },
    };
    json_line(&mut out.inner, &trailer)?;
    out.inner.flush()
}

/// Reads a checkpoint file whole: any damage (a CRC or count mismatch, a line that
/// does not parse, a missing trailer) or an unknown format or version refuses the
/// whole file, so that no half-restored model is ever used.
///
/// # Errors
/// [`Error::InvalidCheckpoint`] saying why.
pub fn read(bytes: &[u8]) -> Result<(Header, Vec<Record>)> {
    let invalid = |why: String| Error::InvalidCheckpoint(why);
    let body = bytes
        .strip_suffix(b"\n")
        .ok_or_else(|| invalid("the file does not end with a complete line (truncated?)".into()))?;
    let trailer_start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let (content, trailer) = body.split_at(trailer_start);
    let header_end = content
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| invalid("no header line".into()))?;
    let header: Header = serde_json::from_slice(&content[..header_end])
        .map_err(|e| invalid(format!("header: {e}")))?;
    if header.format != FORMAT {
        return Err(invalid(format!("unknown format {:?}", header.format)));
    }
    if header.version != VERSION {
        return Err(invalid(format!(
            "version {} (this version of Sextant reads {VERSION})",
            header.version
        )));
    }
    let trailer: Trailer = serde_json::from_slice(trailer)
        .map_err(|e| invalid(format!("trailer (truncated?): {e}")))?;
    let crc = crc32c::crc32c(content);
    if crc != trailer.end.crc32c {
        return Err(invalid(format!(
            "CRC32C mismatch: computed {crc:#010x}, stored {:#010x}",
            trailer.end.crc32c
        )));
    }
    let mut records = Vec::with_capacity(trailer.end.workloads.min(1 << 20));
    for (i, line) in content[header_end + 1..]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let record: Record = serde_json::from_slice(line)
            .map_err(|e| invalid(format!("workload line {}: {e}", i + 2)))?;
        records.push(record);
    }
    if records.len() != trailer.end.workloads {
        return Err(invalid(format!(
            "{} workload lines, the trailer says {}",
            records.len(),
            trailer.end.workloads
        )));
    }
    Ok((header, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::WorkloadKind;

    const T0: i64 = 1_700_006_400_000;

    fn model() -> vpa::Workload {
        let mut w = vpa::Workload::new(vpa::Options::default()).unwrap();
        for i in 0..3 {
            let t = T0 + i * 60_000;
            w.add_cpu_sample("web-7d4b9c8f6b-x2x5z", "app", t, 500 + i * 100);
            w.add_memory_sample("web-7d4b9c8f6b-x2x5z", "app", t, 500_000_000);
        }
        w
    }

    fn golden() -> (Header, Vec<Record>) {
        let header = Header::new(&vpa::Options::default(), 60_000, T0 + 120_000);
        let record = Record {
            workload: WorkloadRef {
                namespace: "shop".into(),
                kind: WorkloadKind::Deployment,
                name: "web".into(),
            },
            fed_from_ms: Some(T0),
            fed_until_ms: T0 + 120_000,
            cpu_samples: 3,
            memory_samples: 3,
            dropped_samples: 0,
            model: model().save(),
        };
        (header, vec![record])
    }

    fn encode(header: &Header, records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, header, records.iter().cloned()).unwrap();
        out
    }

    #[test]
    fn the_format_is_pinned_by_a_golden_file() {
        let (header, records) = golden();
        let bytes = encode(&header, &records);
        let text = String::from_utf8(bytes.clone()).unwrap();
        expect_test::expect_file!["testdata/checkpoints-v1.jsonl"].assert_eq(&text);
        // The golden file reads back into the same models.
        let golden_bytes = include_bytes!("testdata/checkpoints-v1.jsonl");
        let (read_header, read_records) = read(golden_bytes).unwrap();
        assert_eq!(read_header, header);
        assert_eq!(read_records, records);
        let restored =
            vpa::Workload::load(vpa::Options::default(), &read_records[0].model).unwrap();
        assert_eq!(restored.recommend(None), model().recommend(None));
    }

    #[test]
    fn damaged_or_unknown_files_are_refused_whole() {
        let (header, records) = golden();
        let good = encode(&header, &records);
        assert!(read(&good).is_ok());
        let refused = |bytes: &[u8], why: &str| {
            let error = read(bytes).unwrap_err().to_string();
            assert!(error.contains(why), "{error} should say {why}");
        };
        refused(&good[..good.len() - 1], "complete line");
        refused(&good[..good.len() / 2], "complete line");
        // Cut after a whole line: the trailer is missing.
        let first_line = good.iter().position(|&b| b == b'\n').unwrap() + 1;
        refused(&good[..first_line], "no header line");
        let two_lines =
            first_line + good[first_line..].iter().position(|&b| b == b'\n').unwrap() + 1;
        refused(&good[..two_lines], "trailer");
        // One flipped digit inside a workload line.
        let mut flipped = good.clone();
        let at = first_line + 40;
        flipped[at] = if flipped[at] == b'1' { b'2' } else { b'1' };
        refused(&flipped, "CRC32C mismatch");
        refused(b"", "complete line");
        refused(b"\n", "no header line");
        refused(&[0xff; 64], "complete line");
        let mut newer = header.clone();
        newer.version = 2;
        refused(&encode(&newer, &records), "version 2");
        let mut other = header.clone();
        other.format = "something-else".into();
        refused(&encode(&other, &records), "unknown format");
        // A record count that does not match the trailer.
        let text = String::from_utf8(good).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let dropped = format!("{}\n{}\n", lines[0], lines[2]);
        refused(dropped.as_bytes(), "CRC32C mismatch");
    }

    #[test]
    fn other_decay_settings_are_incompatible() {
        let options = vpa::Options::default();
        let header = Header::new(&options, 60_000, T0);
        assert_eq!(
            header.compatible(&Header::new(&options, 60_000, T0 + 1)),
            Ok(())
        );
        let shorter = vpa::Options {
            cpu_histogram_decay_half_life: std::time::Duration::from_secs(3600),
            ..vpa::Options::default()
        };
        assert!(
            header
                .compatible(&Header::new(&shorter, 60_000, T0))
                .unwrap_err()
                .contains("cpu_half_life_ms")
        );
        assert!(
            header
                .compatible(&Header::new(&options, 30_000, T0))
                .is_err()
        );
    }
}
