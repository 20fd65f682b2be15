//! Prometheus's duration (`1h30m`, `15s`, `100ms`) and size (`10MB`) notations.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

const MS_PER_SECOND: u64 = 1000;
const MS_PER_MINUTE: u64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: u64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: u64 = 24 * MS_PER_HOUR;
const MS_PER_WEEK: u64 = 7 * MS_PER_DAY;
const MS_PER_YEAR: u64 = 365 * MS_PER_DAY;

/// Units in the only order Prometheus accepts them, each at most once.
const DURATION_UNITS: [(&str, u64); 7] = [
    ("y", MS_PER_YEAR),
    ("w", MS_PER_WEEK),
    ("d", MS_PER_DAY),
    ("h", MS_PER_HOUR),
    ("m", MS_PER_MINUTE),
    ("s", MS_PER_SECOND),
    ("ms", 1),
];

/// Parses a Prometheus duration: `0`, or digits-unit pairs in the order
/// y, w, d, h, m, s, ms with each unit at most once (`1h30m`, `100ms`).
///
/// # Errors
/// A message naming the rejected string.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("not a valid duration string: {text:?}");
    if text.is_empty() {
        return Err("empty duration string".to_string());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut next_unit = 0;
    let mut total_ms: u64 = 0;
    while pos < bytes.len() {
        let digits_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == digits_start {
            return Err(invalid());
        }
        let number: u64 = text[digits_start..pos].parse().map_err(|_| invalid())?;
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &text[unit_start..pos];
        let offset = DURATION_UNITS[next_unit..]
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(invalid)?;
        let (_, ms_per_unit) = DURATION_UNITS[next_unit + offset];
        next_unit += offset + 1;
        total_ms = number
            .checked_mul(ms_per_unit)
            .and_then(|ms| total_ms.checked_add(ms))
            .filter(|ms| i64::try_from(*ms).is_ok())
            .ok_or_else(|| format!("duration out of range: {text:?}"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way Prometheus prints one (`1m30s`, `2w`, `0s`):
/// years and weeks only when they divide the duration exactly. Sub-millisecond
/// parts are dropped, as Prometheus's durations have millisecond resolution.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, ms_per_unit) in DURATION_UNITS {
        let exact_only = unit == "y" || unit == "w";
        if exact_only && ms % ms_per_unit != 0 {
            continue;
        }
        let count = ms / ms_per_unit;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(unit);
            ms -= count * ms_per_unit;
        }
    }
    out
}

/// Deserializes a string scalar through `parse`, failing inside the scalar so
/// that serde_yaml attaches the scalar's line and column to the error.
pub(crate) fn deserialize_parsed<'de, D, T>(
    d: D,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct ParsedVisitor<T>(fn(&str) -> Result<T, String>);

    impl<'de, T> serde::de::Visitor<'de> for ParsedVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            (self.0)(text).map_err(E::custom)
        }

        // YAML may type `0` or `10` as a number.
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<T, E> {
            (self.0)(&n.to_string()).map_err(E::custom)
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<T, E> {
            (self.0)(&n.to_string()).map_err(E::custom)
        }
    }

    d.deserialize_str(ParsedVisitor(parse))
}

/// Like [`deserialize_parsed`] for an optional value (null is `None`).
pub(crate) fn deserialize_parsed_opt<'de, D, T>(
    d: D,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    struct OptionVisitor<T>(fn(&str) -> Result<T, String>);

    impl<'de, T> serde::de::Visitor<'de> for OptionVisitor<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            deserialize_parsed(d, self.0).map(Some)
        }
    }

    d.deserialize_option(OptionVisitor(parse))
}

/// Serde adapter for `Option<Duration>` fields written in Prometheus notation.
pub mod duration_opt {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        deserialize_parsed_opt(d, parse_duration)
    }
}

/// Serde adapter for `Duration` fields written in Prometheus notation.
pub mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        deserialize_parsed(d, parse_duration)
    }
}

/// A byte size such as `512MB` (base 2, as Prometheus's `units.Base2Bytes`:
/// `KB` and `KiB` both mean 1024 bytes). `0` means "no limit" where limits use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Parses `<number><unit>` pairs (`1GB512MB`, `1.5MB`, `0`) with units
    /// B, KB/KiB, MB/MiB, GB/GiB, TB/TiB, PB/PiB, EB/EiB.
    ///
    /// # Errors
    /// A message naming the rejected string.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let invalid =
            || format!("invalid size {text:?}: expected a number and a unit such as 512MB");
        if text == "0" {
            return Ok(ByteSize(0));
        }
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            return Err(invalid());
        }
        let mut pos = 0;
        let mut total: f64 = 0.0;
        while pos < bytes.len() {
            let number_start = pos;
            while pos < bytes.len() && (bytes[pos].is_ascii_digit() || bytes[pos] == b'.') {
                pos += 1;
            }
            let number: f64 = text[number_start..pos].parse().map_err(|_| invalid())?;
            let unit_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
                pos += 1;
            }
            let scale: f64 = match &text[unit_start..pos] {
                "B" => 1.0,
                "KB" | "KiB" => 1024.0,
                "MB" | "MiB" => 1024.0 * 1024.0,
                "GB" | "GiB" => 1024f64.powi(3),
                "TB" | "TiB" => 1024f64.powi(4),
                "PB" | "PiB" => 1024f64.powi(5),
                "EB" | "EiB" => 1024f64.powi(6),
                _ => return Err(invalid()),
            };
            total += number * scale;
        }
        if !total.is_finite() || total >= 2f64.powi(63) {
            return Err(format!("size out of range: {text:?}"));
        }
        // Truncation matches Go's int64 conversion of the float sum.
        Ok(ByteSize(total as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_parsed(d, ByteSize::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_duration(text: &str, expect_ms: Option<u64>) {
        let got = parse_duration(text).ok().map(|d| d.as_millis() as u64);
        assert_eq!(got, expect_ms, "parse_duration({text:?})");
    }

    #[test]
    fn durations_parse_as_prometheus_does() {
        check_duration("0", Some(0));
        check_duration("15s", Some(15_000));
        check_duration("100ms", Some(100));
        check_duration("1h30m", Some(90 * 60_000));
        check_duration("1d", Some(MS_PER_DAY));
        check_duration("2w", Some(2 * MS_PER_WEEK));
        check_duration("1y", Some(MS_PER_YEAR));
        check_duration("1h0m0s", Some(MS_PER_HOUR));
        check_duration("1m1ms", Some(60_001));
        check_duration("", None);
        check_duration("1", None);
        check_duration("s", None);
        check_duration("1.5s", None);
        check_duration("-1s", None);
        check_duration("30m1h", None);
        check_duration("1s1s", None);
        check_duration("1x", None);
        check_duration(" 1s", None);
        check_duration("99999999999999999999y", None);
    }

    #[test]
    fn durations_format_as_prometheus_does() {
        let f = |ms| format_duration(Duration::from_millis(ms));
        assert_eq!(f(0), "0s");
        assert_eq!(f(15_000), "15s");
        assert_eq!(f(90_000), "1m30s");
        assert_eq!(f(100), "100ms");
        assert_eq!(f(MS_PER_DAY), "1d");
        assert_eq!(f(MS_PER_WEEK), "1w");
        assert_eq!(f(90 * MS_PER_DAY), "90d");
        assert_eq!(f(MS_PER_YEAR), "1y");
        assert_eq!(f(MS_PER_HOUR + 1), "1h1ms");
    }

    #[test]
    fn sizes_are_base_two() {
        let p = |t: &str| ByteSize::parse(t).map(ByteSize::bytes);
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("10B"), Ok(10));
        assert_eq!(p("1KB"), Ok(1024));
        assert_eq!(p("1KiB"), Ok(1024));
        assert_eq!(p("10MB"), Ok(10 * 1024 * 1024));
        assert_eq!(p("1.5MB"), Ok(1536 * 1024));
        assert_eq!(p("1GB512MB"), Ok(1536 * 1024 * 1024));
        assert!(p("10").is_err());
        assert!(p("10mb").is_err());
        assert!(p("").is_err());
        assert!(p("MB").is_err());
        assert!(p("100000EB").is_err());
    }
}
