//! A client for the HTTP API v1 of any Prometheus-compatible server
//! (Prometheus, VictoriaMetrics, Sextant): instant and range queries, series
//! and label lookups, with the results decoded into plain types. Used by
//! `sextant query`.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

/// A label set as the API returns it, sorted by name.
pub type LabelSet = Vec<(String, String)>;

/// A query result. Values are kept as the server spelled them.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    Vector(Vec<(LabelSet, Point)>),
    Matrix(Vec<(LabelSet, Vec<Point>)>),
    Scalar(Point),
    String { t: f64, value: String },
}

/// A timestamp in float seconds and a value string (`"1"`, `"NaN"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub t: f64,
    pub value: String,
}

/// The answer to a query: the result, its raw `data` JSON, and warnings.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub result: T,
    pub data: Value,
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Value,
    #[serde(default, rename = "errorType")]
    error_type: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    infos: Vec<String>,
}

/// Talks to one server.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// `base` is the server's URL, such as `http://127.0.0.1:9090`; a path
    /// prefix is kept.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str) -> Result<Self> {
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .user_agent(concat!("sextant/", env!("CARGO_PKG_VERSION")))
                .build()
                .context("building the HTTP client")?,
        })
    }

    /// `query` at `time` (float seconds or RFC 3339; the server's now when
    /// `None`).
    ///
    /// # Errors
    /// Transport errors, and the server's error (`errorType: error`).
    pub async fn instant(&self, query: &str, time: Option<&str>) -> Result<Answer<QueryResult>> {
        let mut form = vec![("query", query)];
        if let Some(time) = time {
            form.push(("time", time));
        }
        let answer = self.post("/api/v1/query", &form).await?;
        let result = decode_query_result(&answer.data)?;
        Ok(Answer {
            result,
            data: answer.data,
            warnings: answer.warnings,
        })
    }

    /// `query` from `start` to `end` every `step`.
    ///
    /// # Errors
    /// Transport errors, and the server's error.
    pub async fn range(
        &self,
        query: &str,
        start: &str,
        end: &str,
        step: &str,
    ) -> Result<Answer<QueryResult>> {
        let form = [
            ("query", query),
            ("start", start),
            ("end", end),
            ("step", step),
        ];
        let answer = self.post("/api/v1/query_range", &form).await?;
        let result = decode_query_result(&answer.data)?;
        Ok(Answer {
            result,
            data: answer.data,
            warnings: answer.warnings,
        })
    }

    /// The label sets of the series matching any of `matchers`.
    ///
    /// # Errors
    /// Transport errors, and the server's error.
    pub async fn series(
        &self,
        matchers: &[String],
        start: Option<&str>,
        end: Option<&str>,
    ) -> Result<Answer<Vec<LabelSet>>> {
        let form = metadata_form(matchers, start, end);
        let answer = self.post("/api/v1/series", &form).await?;
        let result = answer
            .data
            .as_array()
            .context("series data is not a list")?
            .iter()
            .map(decode_labels)
            .collect::<Result<_>>()?;
        Ok(Answer {
            result,
            data: answer.data,
            warnings: answer.warnings,
        })
    }

    /// Label names, or the values of label `name` when given.
    ///
    /// # Errors
    /// Transport errors, and the server's error.
    pub async fn labels(
        &self,
        name: Option<&str>,
        matchers: &[String],
        start: Option<&str>,
        end: Option<&str>,
    ) -> Result<Answer<Vec<String>>> {
        let form = metadata_form(matchers, start, end);
        let answer = match name {
            // Label values are GET only.
            Some(name) => {
                let path = format!("/api/v1/label/{}/values", escape_label_name(name));
                self.get(&path, &form).await?
            }
            None => self.post("/api/v1/labels", &form).await?,
        };
        let result = answer
            .data
            .as_array()
            .context("label data is not a list")?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .context("label is not a string")
            })
            .collect::<Result<_>>()?;
        Ok(Answer {
            result,
            data: answer.data,
            warnings: answer.warnings,
        })
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Answer<()>> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .post(&url)
            .form(form)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        read_envelope(response, &url).await
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Answer<()>> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .query(query)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        read_envelope(response, &url).await
    }
}

fn metadata_form<'a>(
    matchers: &'a [String],
    start: Option<&'a str>,
    end: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut form: Vec<(&str, &str)> = matchers.iter().map(|m| ("match[]", m.as_str())).collect();
    if let Some(start) = start {
        form.push(("start", start));
    }
    if let Some(end) = end {
        form.push(("end", end));
    }
    form
}

async fn read_envelope(response: reqwest::Response, url: &str) -> Result<Answer<()>> {
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    let envelope: Envelope = serde_json::from_str(&body).with_context(|| {
        let excerpt: String = body.chars().take(200).collect();
        format!("{url} answered {status} without an API envelope: {excerpt}")
    })?;
    if envelope.status != "success" {
        bail!("{} ({}): {}", envelope.error_type, status, envelope.error);
    }
    let mut warnings = envelope.warnings;
    warnings.extend(envelope.infos.into_iter().map(|i| format!("info: {i}")));
    Ok(Answer {
        result: (),
        data: envelope.data,
        warnings,
    })
}

/// Decodes `{"resultType":…,"result":…}`.
///
/// # Errors
/// When the JSON does not have the API's shape.
pub fn decode_query_result(data: &Value) -> Result<QueryResult> {
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("vector") => {
            let items = result.as_array().context("vector result is not a list")?;
            let mut vector = Vec::with_capacity(items.len());
            for item in items {
                vector.push((
                    decode_labels(&item["metric"])?,
                    decode_point(&item["value"])?,
                ));
            }
            Ok(QueryResult::Vector(vector))
        }
        Some("matrix") => {
            let items = result.as_array().context("matrix result is not a list")?;
            let mut matrix = Vec::with_capacity(items.len());
            for item in items {
                let points = match item["values"].as_array() {
                    Some(values) => values.iter().map(decode_point).collect::<Result<_>>()?,
                    None => Vec::new(),
                };
                matrix.push((decode_labels(&item["metric"])?, points));
            }
            Ok(QueryResult::Matrix(matrix))
        }
        Some("scalar") => Ok(QueryResult::Scalar(decode_point(result)?)),
        Some("string") => {
            let point = decode_point(result)?;
            Ok(QueryResult::String {
                t: point.t,
                value: point.value,
            })
        }
        other => bail!("unknown result type {other:?}"),
    }
}

fn decode_labels(value: &Value) -> Result<LabelSet> {
    let object = value.as_object().context("label set is not an object")?;
    let mut labels: LabelSet = object
        .iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|v| (k.clone(), v.to_string()))
                .context("label value is not a string")
        })
        .collect::<Result<_>>()?;
    labels.sort();
    Ok(labels)
}

fn decode_point(value: &Value) -> Result<Point> {
    let pair = value.as_array().context("sample is not a pair")?;
    let (Some(t), Some(v)) = (pair.first().and_then(Value::as_f64), pair.get(1)) else {
        bail!("sample is not a [time, value] pair");
    };
    let value = v.as_str().context("sample value is not a string")?;
    Ok(Point {
        t,
        value: value.to_string(),
    })
}

/// Escapes a label name for the URL path when it is not a plain Prometheus
/// name (the "values escaping" of the API: `U__` prefix).
fn escape_label_name(name: &str) -> String {
    let plain = name
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if plain && !name.is_empty() {
        return name.to_string();
    }
    let mut out = String::from("U__");
    for c in name.chars() {
        match c {
            '_' => out.push_str("__"),
            c if c.is_ascii_alphanumeric() || c == ':' => out.push(c),
            c => out.push_str(&format!("_{:x}_", u32::from(c))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_every_result_type() {
        let vector = json!({"resultType":"vector","result":[
            {"metric":{"job":"a","__name__":"up"},"value":[1700000000.5,"1"]}]});
        assert_eq!(
            decode_query_result(&vector).unwrap(),
            QueryResult::Vector(vec![(
                vec![("__name__".into(), "up".into()), ("job".into(), "a".into())],
                Point {
                    t: 1_700_000_000.5,
                    value: "1".into()
                }
            )])
        );
        let matrix = json!({"resultType":"matrix","result":[
            {"metric":{},"values":[[1,"NaN"],[2,"+Inf"]]}]});
        let QueryResult::Matrix(series) = decode_query_result(&matrix).unwrap() else {
            panic!("not a matrix");
        };
        assert_eq!(series[0].1.len(), 2);
        assert_eq!(series[0].1[1].value, "+Inf");
        let scalar = json!({"resultType":"scalar","result":[4,"2"]});
        assert!(matches!(
            decode_query_result(&scalar).unwrap(),
            QueryResult::Scalar(Point { t, .. }) if t == 4.0
        ));
        let string = json!({"resultType":"string","result":[4,"hi"]});
        assert!(matches!(
            decode_query_result(&string).unwrap(),
            QueryResult::String { value, .. } if value == "hi"
        ));
        assert!(decode_query_result(&json!({"resultType":"nope"})).is_err());
        assert!(
            decode_query_result(&json!({"resultType":"vector","result":[{"metric":1}]})).is_err()
        );
    }

    #[test]
    fn escapes_label_names_for_paths() {
        assert_eq!(escape_label_name("job"), "job");
        assert_eq!(escape_label_name("__name__"), "__name__");
        assert_eq!(
            escape_label_name("http.status_code"),
            "U__http_2e_status__code"
        );
    }
}
