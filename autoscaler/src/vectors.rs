//! Replays reference vectors (the schema of `shared/docs/hpa-algorithm.md` and
//! `vpa-algorithm.md`, section 12) through the pure [`crate::hpa`] and [`crate::vpa`]
//! functions and reports, per vector, pass or the numbers that differ.
//!
//! A vector file is a JSON array. HPA vectors carry a `layer`, VPA vectors a `kind`.
//! Every key of `expected` is checked; a key this runner does not know fails the vector
//! rather than passing silently. Integers compare exactly, floats with a relative
//! tolerance of 1e-12 (bucket boundaries are far further apart than that).

mod hpa;
mod vpa;

use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::{Error, Result};

/// The verdict on one vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub id: String,
    pub verdict: Verdict,
}

/// Pass, the differing numbers, or why the vector could not be run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Verdict {
    Pass,
    Fail(Vec<Difference>),
    /// The vector could not be interpreted (missing field, unknown layer, ...).
    Error(String),
}

/// One expected value that was not met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub field: String,
    pub expected: String,
    pub actual: String,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            Verdict::Pass => write!(f, "pass {}", self.id),
            Verdict::Fail(diffs) => {
                write!(f, "FAIL {}", self.id)?;
                for d in diffs {
                    write!(
                        f,
                        "\n    {}: expected {}, got {}",
                        d.field, d.expected, d.actual
                    )?;
                }
                Ok(())
            }
            Verdict::Error(why) => write!(f, "FAIL {}\n    cannot run: {why}", self.id),
        }
    }
}

/// Runs every vector of a file.
///
/// # Errors
/// When the file cannot be read or is not a JSON array.
pub fn run_file(path: &Path) -> Result<Vec<Outcome>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    run_json(&text).map_err(|e| match e {
        Error::InvalidVectorFile { reason, .. } => Error::InvalidVectorFile {
            path: path.display().to_string(),
            reason,
        },
        other => other,
    })
}

/// Runs every vector of a JSON array.
///
/// # Errors
/// When the text is not a JSON array.
pub fn run_json(text: &str) -> Result<Vec<Outcome>> {
    let invalid = |reason: String| Error::InvalidVectorFile {
        path: "<input>".into(),
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let vectors = value
        .as_array()
        .ok_or_else(|| invalid("the top level must be an array of vectors".into()))?;
    Ok(vectors
        .iter()
        .enumerate()
        .map(|(i, v)| run_vector(v, i))
        .collect())
}

/// Runs one vector; `index` names it when it has no `id`.
pub fn run_vector(vector: &Value, index: usize) -> Outcome {
    let id = vector
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("#{index}"), str::to_string);
    let result = if let Some(layer) = vector.get("layer").and_then(Value::as_str) {
        hpa::run(layer, vector)
    } else if let Some(kind) = vector.get("kind").and_then(Value::as_str) {
        vpa::run(kind, vector)
    } else {
        Err("the vector has neither a `layer` (HPA) nor a `kind` (VPA)".to_string())
    };
    let verdict = match result {
        Ok(diffs) if diffs.is_empty() => Verdict::Pass,
        Ok(diffs) => Verdict::Fail(diffs),
        Err(why) => Verdict::Error(why),
    };
    Outcome { id, verdict }
}

/// Field access with messages that name the missing field.
#[derive(Clone, Copy)]
struct Obj<'a> {
    value: &'a Value,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value) -> Obj<'a> {
        Obj { value }
    }

    /// The field, `None` when absent or null.
    fn opt(&self, key: &str) -> Option<&'a Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    fn get(&self, key: &str) -> Result<&'a Value, String> {
        self.opt(key)
            .ok_or_else(|| format!("missing field `{key}`"))
    }

    fn obj(&self, key: &str) -> Result<Obj<'a>, String> {
        self.get(key).map(Obj::new)
    }

    fn i64(&self, key: &str) -> Result<i64, String> {
        as_i64(self.get(key)?).ok_or_else(|| format!("field `{key}` is not an integer"))
    }

    fn i32(&self, key: &str) -> Result<i32, String> {
        i32::try_from(self.i64(key)?).map_err(|_| format!("field `{key}` does not fit in 32 bits"))
    }

    fn f64(&self, key: &str) -> Result<f64, String> {
        self.get(key)?
            .as_f64()
            .ok_or_else(|| format!("field `{key}` is not a number"))
    }

    fn str(&self, key: &str) -> Result<&'a str, String> {
        self.get(key)?
            .as_str()
            .ok_or_else(|| format!("field `{key}` is not a string"))
    }

    fn array(&self, key: &str) -> Result<&'a Vec<Value>, String> {
        self.get(key)?
            .as_array()
            .ok_or_else(|| format!("field `{key}` is not an array"))
    }

    fn entries(&self) -> Result<&'a serde_json::Map<String, Value>, String> {
        self.value
            .as_object()
            .ok_or_else(|| "expected a JSON object".to_string())
    }
}

/// An integer, also from a float with no fraction (`100.0`).
fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// Collects differences between expected and actual values.
#[derive(Default)]
struct Checks {
    diffs: Vec<Difference>,
}

impl Checks {
    fn differ(&mut self, field: &str, expected: impl fmt::Display, actual: impl fmt::Display) {
        self.diffs.push(Difference {
            field: field.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }

    fn int(&mut self, field: &str, expected: &Value, actual: Option<i64>) {
        match (as_i64(expected), actual) {
            (Some(e), Some(a)) if e == a => {}
            (e, a) => self.differ(
                field,
                e.map_or_else(|| expected.to_string(), |e| e.to_string()),
                a.map_or_else(|| "nothing".to_string(), |a| a.to_string()),
            ),
        }
    }

    fn float(&mut self, field: &str, expected: &Value, actual: f64) {
        match expected.as_f64() {
            Some(e) if close(e, actual) => {}
            _ => self.differ(field, expected, actual),
        }
    }

    fn text(&mut self, field: &str, expected: &Value, actual: &str) {
        if expected.as_str() != Some(actual) {
            self.differ(field, expected, actual);
        }
    }

    fn unknown(&mut self, field: &str, expected: &Value) {
        self.differ(field, expected, "<this runner does not check this field>");
    }
}

/// Equal within a relative tolerance of 1e-12 (exact for zero).
fn close(expected: f64, actual: f64) -> bool {
    if expected == actual {
        return true;
    }
    let scale = expected.abs().max(actual.abs());
    (expected - actual).abs() <= 1e-12 * scale
}

/// Unix milliseconds of an RFC 3339 UTC time such as `2023-11-14T01:00:00Z`.
fn parse_rfc3339_utc(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let mut t = time.split(':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: i64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since the epoch of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_utc("2023-11-14T01:00:00Z"),
            Some(1_699_923_600_000)
        );
        assert_eq!(
            parse_rfc3339_utc("2000-02-29T12:00:00Z"),
            Some(951_825_600_000)
        );
        assert_eq!(parse_rfc3339_utc("2023-11-14 01:00:00"), None);
    }

    #[test]
    fn unknown_shapes_are_errors_not_passes() {
        let outcomes =
            run_json(r#"[{"id": "x"}, {"id": "y", "layer": "nope", "expected": {}}]"#).unwrap();
        assert!(matches!(outcomes[0].verdict, Verdict::Error(_)));
        assert!(matches!(outcomes[1].verdict, Verdict::Error(_)));
        assert!(run_json("{}").is_err());
        let outcomes = run_json(
            r#"[{"id": "m", "kind": "margin", "base": {"cpu_millicores": 100, "memory_bytes": 100},
                 "margin_fraction": 0.1, "expected": {"cpu_millicores": 110, "surprise": 1}}]"#,
        )
        .unwrap();
        let Verdict::Fail(diffs) = &outcomes[0].verdict else {
            panic!("{:?}", outcomes[0]);
        };
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].field, "surprise");
        assert!(
            outcomes[0]
                .to_string()
                .starts_with("FAIL m\n    surprise: expected 1")
        );
    }

    #[test]
    fn floats_compare_with_a_relative_tolerance() {
        assert!(close(0.020499999999999987, 0.0205 - 1.3e-17));
        assert!(!close(1.0, 1.0 + 1e-9));
        assert!(close(0.0, 0.0));
    }
}
