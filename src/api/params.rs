//! Request parameters as Prometheus reads them: the URL query merged with an
//! `application/x-www-form-urlencoded` POST body (body values first), and
//! the parsers for times, durations, limits and `match[]` selectors.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};
use chrono::DateTime;
use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::Expr;
use tsdb::model::{METRIC_NAME, MatchOp, Matcher};

use super::error::ApiError;

/// The earliest time the API accepts or defaults to, in milliseconds:
/// Prometheus's `MinTime` (the Unix seconds that still fit a Go `time.Time`).
pub const MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
/// The latest time, Prometheus's `MaxTime` (its last nanosecond included).
pub const MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;

/// How `MIN_TIME_MS` and `MAX_TIME_MS` look formatted as RFC 3339, which
/// clients send back for "no bound" (Go cannot parse them as RFC 3339).
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_FORMATTED: &str = "292277025-08-18T07:12:54.999999999Z";

/// The merged parameters of one request.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = request.uri().query().unwrap_or("").to_string();
        let is_form = request.method() == Method::POST
            && request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let mut pairs = Vec::new();
        if is_form {
            let body = Bytes::from_request(request, state)
                .await
                .map_err(|e| ApiError::BadData(format!("error parsing form values: {e}")))?;
            pairs = parse_form(&body)?;
        }
        pairs.extend(parse_form(query.as_bytes())?);
        Ok(Params { pairs })
    }
}

fn parse_form(bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_bytes(bytes)
        .map_err(|e| ApiError::BadData(format!("error parsing form values: {e}")))
}

impl Params {
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Params {
            pairs: pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        }
    }

    /// The first value of `name`, `""` when absent (Go's `FormValue`).
    pub fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter such as `match[]`.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// An optional time parameter in milliseconds, `default` when absent.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            "" => Ok(default),
            // Prometheus's `parseTimeParam` wording, redundancy included.
            s => parse_time(s).map_err(|e| {
                ApiError::invalid_param(name, format!("Invalid time value for '{name}': {e}"))
            }),
        }
    }

    /// An optional duration parameter.
    pub fn duration(&self, name: &str) -> Result<Option<SignedDuration>, ApiError> {
        match self.get(name) {
            "" => Ok(None),
            s => parse_duration(s)
                .map(Some)
                .map_err(|e| ApiError::invalid_param(name, e)),
        }
    }

    /// `limit`: absent or 0 means no limit.
    pub fn limit(&self) -> Result<Option<usize>, ApiError> {
        match self.get("limit") {
            "" => Ok(None),
            s => match s.parse::<i64>() {
                Ok(n) if n < 0 => Err(ApiError::invalid_param(
                    "limit",
                    "limit must be non-negative",
                )),
                Ok(0) => Ok(None),
                Ok(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
                Err(e) => Err(ApiError::invalid_param(
                    "limit",
                    format!("strconv.Atoi: parsing {s:?}: {e}"),
                )),
            },
        }
    }

    /// The `match[]` selectors, each a set of matchers; `required` selects
    /// the "no match[] parameter provided" error when there are none.
    pub fn matcher_sets(&self, required: Required) -> Result<Vec<Vec<Matcher>>, ApiError> {
        let selectors = self.get_all("match[]");
        if selectors.is_empty() && required == Required::Yes {
            return Err(ApiError::BadData("no match[] parameter provided".into()));
        }
        let mut sets = Vec::new();
        for selector in selectors {
            sets.extend(
                parse_selector(selector).map_err(|e| ApiError::invalid_param("match[]", e))?,
            );
        }
        for set in &sets {
            if set.iter().all(Matcher::matches_empty) {
                return Err(ApiError::invalid_param(
                    "match[]",
                    "match[] must contain at least one non-empty matcher",
                ));
            }
        }
        Ok(sets)
    }
}

/// Whether a parameter must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required {
    Yes,
    No,
}

/// A duration that may be negative (a negative `step` is a valid parse and
/// a later, different error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedDuration {
    pub nanos: i128,
}

impl SignedDuration {
    /// Whole milliseconds, rounded toward zero.
    pub fn as_millis(self) -> i64 {
        i64::try_from(self.nanos / 1_000_000).unwrap_or(if self.nanos < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
    }

    /// The duration if positive.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.nanos)
            .ok()
            .filter(|&n| n > 0)
            .map(Duration::from_nanos)
    }
}

/// Prometheus's `parseTime`: Unix seconds as a float (fraction rounded to
/// milliseconds), else RFC 3339, else the formatted min/max time.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(seconds) = s.parse::<f64>()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        if !seconds.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        let whole = seconds.trunc();
        let millis = ((seconds - whole) * 1000.0).round();
        // Beyond i64 milliseconds the float-to-int cast saturates, which is
        // as far as any timestamp can go anyway.
        return Ok(((whole as i64).saturating_mul(1000)).saturating_add(millis as i64));
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(s) {
        return Ok(time.timestamp_millis());
    }
    match s {
        MIN_TIME_FORMATTED => Ok(MIN_TIME_MS),
        MAX_TIME_FORMATTED => Ok(MAX_TIME_MS),
        _ => Err(format!("cannot parse {s:?} to a valid timestamp")),
    }
}

/// Prometheus's `parseDuration`: float seconds, else a Prometheus duration
/// such as `1h30m`.
pub fn parse_duration(s: &str) -> Result<SignedDuration, String> {
    if let Ok(seconds) = s.parse::<f64>()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        let nanos = seconds * 1e9;
        if !nanos.is_finite() || nanos > i64::MAX as f64 || nanos < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(SignedDuration {
            nanos: nanos as i128,
        });
    }
    scraper::config::parse_duration(s)
        .map(|d| SignedDuration {
            nanos: i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        })
        .map_err(|_| format!("cannot parse {s:?} to a valid duration"))
}

/// Parses a series selector (`up{job="x"}`) into matcher sets: one set, or
/// one per branch of an `or` inside the braces.
pub fn parse_selector(selector: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let expr = super::position::parse(selector)
        .map_err(|e| super::position::describe_parse_error(selector, &e))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!(
            "parse error: expected a series selector, got {selector:?}"
        ));
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err(
            "parse error: offset and @ modifiers are not allowed in a series selector".into(),
        );
    }
    let mut base = Vec::new();
    if let Some(name) = &vs.name {
        base.push(Matcher::equal(METRIC_NAME, name.as_str()));
    }
    let convert = |m: &promql_parser::label::Matcher| -> Result<Matcher, String> {
        let op = match &m.op {
            ParserMatchOp::Equal => MatchOp::Equal,
            ParserMatchOp::NotEqual => MatchOp::NotEqual,
            ParserMatchOp::Re(_) => MatchOp::RegexMatch,
            ParserMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
        };
        Matcher::new(op, m.name.as_str(), m.value.as_str()).map_err(|e| e.to_string())
    };
    for m in &vs.matchers.matchers {
        base.push(convert(m)?);
    }
    if vs.matchers.or_matchers.is_empty() {
        return Ok(vec![base]);
    }
    vs.matchers
        .or_matchers
        .iter()
        .map(|branch| {
            let mut set = base.clone();
            for m in branch {
                set.push(convert(m)?);
            }
            Ok(set)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_like_prometheus() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.123"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("1700000000.1236"), Ok(1_700_000_000_124));
        assert_eq!(parse_time("-1.5"), Ok(-1500));
        assert_eq!(parse_time("1e3"), Ok(1_000_000));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51+02:00"),
            Ok(1_435_781_451_000)
        );
        assert_eq!(parse_time(MIN_TIME_FORMATTED), Ok(MIN_TIME_MS));
        assert_eq!(parse_time(MAX_TIME_FORMATTED), Ok(MAX_TIME_MS));
        assert_eq!(
            parse_time("yesterday"),
            Err(r#"cannot parse "yesterday" to a valid timestamp"#.to_string())
        );
        assert!(parse_time("NaN").is_err());
        assert!(parse_time("inf").is_err());
        // Grafana's exemplar probe sends milliseconds as seconds: accepted.
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000_000));
    }

    #[test]
    fn min_and_max_time_are_prometheus_bounds() {
        assert_eq!(MIN_TIME_MS, -9_223_309_901_257_974_000);
        assert_eq!(MAX_TIME_MS, 9_223_309_901_257_974_999);
    }

    #[test]
    fn parses_durations_like_prometheus() {
        let ms = |s: &str| parse_duration(s).map(SignedDuration::as_millis);
        assert_eq!(ms("15"), Ok(15_000));
        assert_eq!(ms("0.5"), Ok(500));
        assert_eq!(ms("-1"), Ok(-1000));
        assert_eq!(ms("5m"), Ok(300_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("1d2h3m4s5ms"), Ok(93_784_005));
        assert_eq!(ms("1y"), Ok(31_536_000_000));
        assert_eq!(ms("0"), Ok(0));
        assert!(ms("").is_err());
        assert!(ms("5m1h").is_err(), "units must descend");
        assert!(ms("1m1m").is_err(), "each unit once");
        assert!(ms("1x").is_err());
        assert!(ms("h").is_err());
        assert_eq!(
            ms("1e300"),
            Err(r#"cannot parse "1e300" to a valid duration. It overflows int64"#.to_string())
        );
        assert_eq!(parse_duration("0").unwrap().to_std(), None);
        assert_eq!(
            parse_duration("2s").unwrap().to_std(),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn parses_selectors() {
        let sets = parse_selector(r#"up{job=~"n.*",env!="dev"}"#).unwrap();
        assert_eq!(
            format!("{sets:?}"),
            r#"[[__name__="up", job=~"n.*", env!="dev"]]"#
        );
        let sets = parse_selector(r#"{__name__="up"}"#).unwrap();
        assert_eq!(format!("{sets:?}"), r#"[[__name__="up"]]"#);
        assert!(parse_selector("rate(up[5m])").is_err());
        assert!(parse_selector("up offset 5m").is_err());
        assert!(parse_selector("{").is_err());
    }

    #[test]
    fn match_params_need_a_non_empty_matcher() {
        // The parser rejects a selector whose matchers all match the empty
        // string before our own check sees it.
        let params = Params::from_pairs(&[("match[]", r#"{job=~".*"}"#)]);
        let err = params.matcher_sets(Required::No).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid parameter "match[]": 1:1: parse error: vector selector must contain at least one non-empty matcher"#
        );

        let none = Params::default();
        assert_eq!(
            none.matcher_sets(Required::Yes).unwrap_err().to_string(),
            "no match[] parameter provided"
        );
        assert!(none.matcher_sets(Required::No).unwrap().is_empty());
        let two = Params::from_pairs(&[("match[]", "up"), ("match[]", r#"{job="x"}"#)]);
        assert_eq!(two.matcher_sets(Required::Yes).unwrap().len(), 2);
    }

    #[test]
    fn limits() {
        let limit = |s: &str| Params::from_pairs(&[("limit", s)]).limit();
        assert_eq!(limit("0").unwrap(), None);
        assert_eq!(limit("5").unwrap(), Some(5));
        assert!(limit("-1").is_err());
        assert!(limit("x").is_err());
        assert_eq!(Params::default().limit().unwrap(), None);
    }
}
