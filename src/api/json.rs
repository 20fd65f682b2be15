//! The JSON of the HTTP API, written by hand where Prometheus's encoding is
//! not what serde would produce: the envelope, label sets, timestamps
//! (seconds with exactly three millisecond digits) and sample values
//! (strings in Go's float formatting). See `docs/http-api.md`.

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tsdb::model::Labels;

use super::error::ErrorType;
use crate::float;

/// At most this many warnings (and infos) are listed; the rest are counted
/// in one last line, as Prometheus does.
const MAX_ANNOTATIONS: usize = 10;

/// A complete response body: `{"status":…,"data":…,"warnings":…,"infos":…}`.
#[derive(Debug)]
pub struct Envelope {
    body: String,
}

impl Envelope {
    /// A success envelope around `data`, which is already JSON.
    pub fn success(data: &str, warnings: &[String], infos: &[String]) -> Self {
        let mut body = String::with_capacity(data.len() + 64);
        body.push_str(r#"{"status":"success","data":"#);
        body.push_str(data);
        write_annotations(&mut body, "warnings", "warning", warnings);
        write_annotations(&mut body, "infos", "info", infos);
        body.push('}');
        Envelope { body }
    }

    pub fn error(error_type: ErrorType, message: &str) -> Self {
        let mut body = String::new();
        body.push_str(r#"{"status":"error","errorType":"#);
        write_str(&mut body, error_type.as_str());
        body.push_str(r#","error":"#);
        write_str(&mut body, message);
        body.push('}');
        Envelope { body }
    }

    pub fn into_response(self, status: StatusCode) -> Response {
        let mut response = (status, self.body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    pub fn as_str(&self) -> &str {
        &self.body
    }
}

fn write_annotations(out: &mut String, key: &str, kind: &str, annotations: &[String]) {
    if annotations.is_empty() {
        return;
    }
    let _ = write!(out, r#","{key}":["#);
    for (i, annotation) in annotations.iter().take(MAX_ANNOTATIONS).enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, annotation);
    }
    if annotations.len() > MAX_ANNOTATIONS {
        let omitted = annotations.len() - MAX_ANNOTATIONS;
        out.push(',');
        write_str(out, &format!("{omitted} more {kind} annotations omitted"));
    }
    out.push(']');
}

/// A JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    // Serializing a `str` cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string()));
}

/// A label set as a JSON object, in label order.
pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &label.name);
        out.push(':');
        write_str(out, &label.value);
    }
    out.push('}');
}

/// A vector, matrix or exemplar timestamp: integer seconds, then `.` and
/// exactly three millisecond digits unless they are zero (`jsonutil.MarshalTimestamp`).
pub fn write_timestamp(out: &mut String, t_ms: i64) {
    if t_ms < 0 {
        out.push('-');
    }
    let abs = t_ms.unsigned_abs();
    let _ = write!(out, "{}", abs / 1000);
    let fraction = abs % 1000;
    if fraction != 0 {
        let _ = write!(out, ".{fraction:03}");
    }
}

/// A vector or matrix sample value: a string in Go's float formatting.
pub fn write_value(out: &mut String, v: f64) {
    out.push('"');
    out.push_str(&float::api_value(v));
    out.push('"');
}

/// `[<ts>,"<v>"]`.
pub fn write_sample(out: &mut String, t_ms: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t_ms);
    out.push(',');
    write_value(out, v);
    out.push(']');
}

/// A scalar result, `[<ts>,"<v>"]`: the timestamp as a float of seconds and
/// the value always in decimal form, as Prometheus's `Scalar.MarshalJSON`.
pub fn write_scalar(out: &mut String, t_ms: i64, v: f64) {
    out.push('[');
    out.push_str(&float::format_f(t_ms as f64 / 1000.0));
    out.push_str(",\"");
    out.push_str(&float::format_f(v));
    out.push_str("\"]");
}

/// A string result, `[<ts>,"<s>"]`.
pub fn write_string_result(out: &mut String, t_ms: i64, s: &str) {
    out.push('[');
    out.push_str(&float::format_f(t_ms as f64 / 1000.0));
    out.push(',');
    write_str(out, s);
    out.push(']');
}

/// A time in milliseconds as Go's `time.RFC3339Nano` prints it in UTC:
/// trailing zeros of the fraction dropped (`2015-07-01T20:10:51.78Z`).
pub fn rfc3339(t_ms: i64) -> String {
    let Some(time) = chrono::DateTime::from_timestamp_millis(t_ms) else {
        return String::new();
    };
    let mut out = time.format("%Y-%m-%dT%H:%M:%S").to_string();
    let millis = t_ms.rem_euclid(1000);
    if millis != 0 {
        let fraction = format!("{millis:03}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// A sorted list of strings, `[]` when empty.
pub fn string_list(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(&mut out, item);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_three_millisecond_digits_or_none() {
        let cases = [
            (1_435_781_451_781, "1435781451.781"),
            (1500, "1.500"),
            (1050, "1.050"),
            (1001, "1.001"),
            (1000, "1"),
            (0, "0"),
            (-1500, "-1.500"),
            (i64::MIN, "-9223372036854775.808"),
        ];
        for (t, want) in cases {
            let mut out = String::new();
            write_timestamp(&mut out, t);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn samples_scalars_and_labels() {
        let mut out = String::new();
        write_sample(&mut out, 1500, 1e-7);
        out.push(' ');
        write_scalar(&mut out, 1500, 1e-7);
        out.push(' ');
        write_sample(&mut out, 1000, f64::NEG_INFINITY);
        out.push(' ');
        write_labels(
            &mut out,
            &Labels::from_pairs(&[("job", "a\"b"), ("__name__", "up")]),
        );
        out.push(' ');
        write_string_result(&mut out, 2000, "x");
        assert_eq!(
            out,
            r#"[1.500,"1e-07"] [1.5,"0.0000001"] [1,"-Inf"] {"__name__":"up","job":"a\"b"} [2,"x"]"#
        );
    }

    #[test]
    fn rfc3339_like_go() {
        assert_eq!(rfc3339(1_435_781_451_781), "2015-07-01T20:10:51.781Z");
        assert_eq!(rfc3339(1_435_781_451_780), "2015-07-01T20:10:51.78Z");
        assert_eq!(rfc3339(1_435_781_451_000), "2015-07-01T20:10:51Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn envelopes() {
        let ok = Envelope::success("[]", &[], &[]);
        assert_eq!(ok.as_str(), r#"{"status":"success","data":[]}"#);
        let warnings: Vec<String> = (0..12).map(|i| format!("w{i}")).collect();
        let with_warnings = Envelope::success("1", &warnings, &["i".to_string()]);
        assert_eq!(
            with_warnings.as_str(),
            r#"{"status":"success","data":1,"warnings":["w0","w1","w2","w3","w4","w5","w6","w7","w8","w9","2 more warning annotations omitted"],"infos":["i"]}"#
        );
        let error = Envelope::error(ErrorType::BadData, "invalid parameter \"query\": x");
        assert_eq!(
            error.as_str(),
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": x"}"#
        );
        assert_eq!(string_list(&[]), "[]");
    }
}
