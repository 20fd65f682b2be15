//! `series`, `labels` and `label/<name>/values`: metadata about series,
//! answered from `tsdb::storage::Queryable` alone.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use tsdb::model::{Labels, Matcher, TimeRange};
use tsdb::storage::{Queryable, SelectHints, Warnings};

use super::error::ApiError;
use super::json::{self, Envelope};
use super::params::{MAX_TIME_MS, MIN_TIME_MS, Params, Required};
use super::{Api, ok};

const TRUNCATED: &str = "results truncated due to limit";

/// `GET|POST /api/v1/series`.
pub async fn series(State(api): State<Arc<Api>>, params: Params) -> Result<Response, ApiError> {
    if params.get_all("match[]").is_empty() {
        return Err(ApiError::BadData("no match[] parameter provided".into()));
    }
    let limit = params.limit()?;
    let range = time_range(&params)?;
    let matcher_sets = params.matcher_sets(Required::Yes)?;
    let storage = api.storage();
    let (mut series, mut warnings) = api
        .blocking(move || select_labels(&*storage, range, &matcher_sets))
        .await??;
    truncate(&mut series, limit, &mut warnings);
    let mut data = String::from("[");
    for (i, labels) in series.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        json::write_labels(&mut data, labels);
    }
    data.push(']');
    Ok(ok(Envelope::success(&data, &warnings, &[])))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(State(api): State<Arc<Api>>, params: Params) -> Result<Response, ApiError> {
    let limit = params.limit()?;
    let range = time_range(&params)?;
    let matcher_sets = params.matcher_sets(Required::No)?;
    let storage = api.storage();
    let (mut names, mut warnings) = api
        .blocking(move || {
            let querier = storage.querier(range)?;
            if matcher_sets.is_empty() {
                return Ok::<_, tsdb::Error>((querier.label_names(&[])?, Warnings::new()));
            }
            let mut union = BTreeSet::new();
            for matchers in &matcher_sets {
                union.extend(querier.label_names(matchers)?);
            }
            Ok((union.into_iter().collect(), Warnings::new()))
        })
        .await??;
    truncate(&mut names, limit, &mut warnings);
    Ok(ok(Envelope::success(
        &json::string_list(&names),
        &warnings,
        &[],
    )))
}

/// `GET /api/v1/label/<name>/values`.
pub async fn label_values(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    // A malformed escape is taken literally, as Prometheus does.
    let name = unescape_label_name(&name).unwrap_or(name);
    if name.is_empty() {
        return Err(ApiError::BadData(format!("invalid label name: {name:?}")));
    }
    let limit = params.limit()?;
    let range = time_range(&params)?;
    let matcher_sets = params.matcher_sets(Required::No)?;
    let storage = api.storage();
    let (mut values, mut warnings) = api
        .blocking(move || {
            let querier = storage.querier(range)?;
            if matcher_sets.is_empty() {
                return Ok::<_, tsdb::Error>((querier.label_values(&name, &[])?, Warnings::new()));
            }
            let mut union = BTreeSet::new();
            for matchers in &matcher_sets {
                union.extend(querier.label_values(&name, matchers)?);
            }
            Ok((union.into_iter().collect(), Warnings::new()))
        })
        .await??;
    truncate(&mut values, limit, &mut warnings);
    Ok(ok(Envelope::success(
        &json::string_list(&values),
        &warnings,
        &[],
    )))
}

fn time_range(params: &Params) -> Result<TimeRange, ApiError> {
    let start = params.time("start", MIN_TIME_MS)?;
    let end = params.time("end", MAX_TIME_MS)?;
    Ok(TimeRange::new(start, end))
}

/// The label sets of the series matching any of `matcher_sets`, sorted and
/// without duplicates.
fn select_labels(
    storage: &dyn Queryable,
    range: TimeRange,
    matcher_sets: &[Vec<Matcher>],
) -> Result<(Vec<Labels>, Warnings), tsdb::Error> {
    let querier = storage.querier(range)?;
    let hints = SelectHints {
        func: Some("series".into()),
        series_only: true,
        ..SelectHints::for_range(range)
    };
    let mut series = Vec::new();
    let mut warnings = Warnings::new();
    for matchers in matcher_sets {
        let set = querier.select(matchers, &hints)?;
        series.extend(set.series.into_iter().map(|s| s.labels));
        warnings.extend(set.warnings);
    }
    if matcher_sets.len() > 1 {
        series.sort();
        series.dedup();
    }
    Ok((series, warnings))
}

fn truncate<T>(items: &mut Vec<T>, limit: Option<usize>, warnings: &mut Warnings) {
    if let Some(limit) = limit
        && items.len() > limit
    {
        items.truncate(limit);
        warnings.push(TRUNCATED.to_string());
    }
}

/// Undoes the "values escaping" of label names in URL paths: after the
/// `U__` prefix, `__` is `_` and `_<hex>_` is the code point `<hex>`.
/// `None` for a malformed escape.
pub fn unescape_label_name(escaped: &str) -> Option<String> {
    let Some(body) = escaped.strip_prefix("U__") else {
        return Some(escaped.to_string());
    };
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next()? {
                '_' => break,
                h if h.is_ascii_hexdigit() => hex.push(h),
                _ => return None,
            }
        }
        if hex.is_empty() {
            out.push('_');
        } else {
            out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_label_names() {
        assert_eq!(
            unescape_label_name("U__http_2e_status__code").as_deref(),
            Some("http.status_code")
        );
        assert_eq!(unescape_label_name("job").as_deref(), Some("job"));
        assert_eq!(unescape_label_name("U__a_zz_"), None);
        assert_eq!(unescape_label_name("U__a_2e"), None);
    }
}
