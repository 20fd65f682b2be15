//! `/status`: build and runtime information, the command line flags, the
//! TSDB's head and its cardinality (the metrics and label names with the most
//! series, and the label names with the most values), and the configuration
//! in force (secrets masked, as `status/config` shows it).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use tsdb::model::{METRIC_NAME, MatchOp, Matcher, TimeRange};
use tsdb::storage::{Queryable, SelectHints};

use super::html::{self, Esc, Nav};
use crate::api::{Api, HeadStatus};

/// Rows in each cardinality table.
const TOP: usize = 10;

/// Series counts over the series in a time range.
#[derive(Debug, Default, PartialEq)]
pub struct Cardinality {
    pub series: u64,
    /// Series per metric name.
    pub by_metric: HashMap<String, u64>,
    /// Series carrying each label name.
    pub series_by_label: HashMap<String, u64>,
    /// Distinct values per label name.
    pub values_by_label: HashMap<String, u64>,
}

impl Cardinality {
    /// Counts the series of `storage` with samples in `range`.
    ///
    /// # Errors
    /// When the storage fails.
    pub fn of(storage: &dyn Queryable, range: TimeRange) -> tsdb::Result<Self> {
        let querier = storage.querier(range)?;
        let all = Matcher::new(MatchOp::RegexMatch, METRIC_NAME, ".+")?;
        let hints = SelectHints {
            series_only: true,
            ..SelectHints::for_range(range)
        };
        let set = querier.select(&[all], &hints)?;
        let mut out = Cardinality::default();
        let mut pairs: HashMap<(&str, &str), ()> = HashMap::new();
        for series in &set.series {
            out.series += 1;
            for label in &series.labels {
                *out.series_by_label
                    .entry(label.name.to_string())
                    .or_default() += 1;
                if pairs.insert((&label.name, &label.value), ()).is_none() {
                    *out.values_by_label
                        .entry(label.name.to_string())
                        .or_default() += 1;
                }
            }
            if let Some(name) = series.labels.metric_name() {
                *out.by_metric.entry(name.to_string()).or_default() += 1;
            }
        }
        Ok(out)
    }
}

/// The `n` largest counts, largest first, ties by name.
fn top(counts: &HashMap<String, u64>, n: usize) -> Vec<(&str, u64)> {
    let mut rows: Vec<(&str, u64)> = counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    rows.truncate(n);
    rows
}

/// `GET /status`.
pub async fn page(State(api): State<Arc<Api>>) -> Response {
    let head = api.head_status();
    let storage = Arc::clone(api.backend.storage());
    let cardinality = match (head.min_t, head.max_t) {
        (Some(min_t), Some(max_t)) => tokio::task::spawn_blocking(move || {
            Cardinality::of(&*storage, TimeRange::new(min_t, max_t)).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the storage task failed: {e}"))),
        _ => Ok(Cardinality::default()),
    };
    let facts = Facts {
        now_ms: api.clock.now_ms(),
        start_time_ms: api.info.start_time_ms,
        retention: api.info.storage_retention.clone(),
        reload_success: api.info.reload_success(),
        flags: api
            .info
            .flags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        config_yaml: api.info.config_yaml(),
    };
    html::page("Status", Nav::Status, &body(&facts, head, &cardinality))
}

/// What the page shows about the server.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub now_ms: i64,
    pub start_time_ms: i64,
    pub retention: String,
    pub reload_success: bool,
    pub flags: Vec<(String, String)>,
    pub config_yaml: String,
}

fn table(out: &mut String, id: &str, headers: [&str; 2], rows: &[(&str, String)]) {
    let _ = write!(
        out,
        "<div class=\"table-wrap\"><table id=\"{id}\" class=\"kv\">"
    );
    if headers.iter().any(|h| !h.is_empty()) {
        let _ = write!(
            out,
            "<thead><tr><th>{}</th><th>{}</th></tr></thead>",
            headers[0], headers[1]
        );
    }
    out.push_str("<tbody>");
    for (name, value) in rows {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", Esc(name), value);
    }
    out.push_str("</tbody></table></div>\n");
}

fn counts(rows: Vec<(&str, u64)>) -> Vec<(&str, String)> {
    rows.into_iter().map(|(k, v)| (k, v.to_string())).collect()
}

/// The page's body.
pub fn body(facts: &Facts, head: HeadStatus, cardinality: &Result<Cardinality, String>) -> String {
    let mut out = String::from("<div class=\"columns\"><section><h2>Build</h2>");
    table(
        &mut out,
        "build",
        ["", ""],
        &[
            ("Version", Esc(env!("CARGO_PKG_VERSION")).to_string()),
            ("Prometheus API", "3.0.0".to_string()),
        ],
    );
    out.push_str("<h2>Runtime</h2>");
    let reload = if facts.reload_success {
        html::badge("ok", "successful")
    } else {
        html::badge("bad", "failed")
    };
    table(
        &mut out,
        "runtime",
        ["", ""],
        &[
            ("Started", html::time(facts.start_time_ms, facts.now_ms)),
            (
                "Server time",
                Esc(&crate::api::json::rfc3339(facts.now_ms)).to_string(),
            ),
            ("Last configuration reload", reload),
            ("Retention", Esc(&facts.retention).to_string()),
        ],
    );
    out.push_str("</section><section><h2>TSDB head</h2>");
    let bound = |t: Option<i64>| {
        t.map_or_else(
            || "–".to_string(),
            |t| Esc(&crate::api::json::rfc3339(t)).to_string(),
        )
    };
    let series = match cardinality {
        Ok(c) if head.min_t.is_some() => c.series.to_string(),
        _ => head.n_series.to_string(),
    };
    table(
        &mut out,
        "head",
        ["", ""],
        &[
            ("Series", series),
            ("Chunks", head.n_chunks.to_string()),
            ("Oldest sample", bound(head.min_t)),
            ("Newest sample", bound(head.max_t)),
        ],
    );
    out.push_str("</section></div>\n<h2>Cardinality</h2>\n");
    match cardinality {
        Err(e) => {
            let _ = writeln!(out, "<p class=\"error\">{}</p>", Esc(e));
        }
        Ok(c) => {
            out.push_str("<div class=\"columns\"><section><h3>Metrics by series</h3>");
            table(
                &mut out,
                "top-metrics",
                ["Metric", "Series"],
                &counts(top(&c.by_metric, TOP)),
            );
            out.push_str("</section><section><h3>Label names by series</h3>");
            table(
                &mut out,
                "top-label-series",
                ["Label", "Series"],
                &counts(top(&c.series_by_label, TOP)),
            );
            out.push_str("</section><section><h3>Label names by values</h3>");
            table(
                &mut out,
                "top-label-values",
                ["Label", "Values"],
                &counts(top(&c.values_by_label, TOP)),
            );
            out.push_str("</section></div>\n");
        }
    }
    out.push_str("<h2>Flags</h2>");
    let flags: Vec<(&str, String)> = facts
        .flags
        .iter()
        .map(|(k, v)| (k.as_str(), format!("<code>{}</code>", Esc(v))))
        .collect();
    table(&mut out, "flags", ["Flag", "Value"], &flags);
    let _ = writeln!(
        out,
        "<h2>Configuration</h2><pre id=\"config\" class=\"config\">{}</pre>",
        Esc(&facts.config_yaml)
    );
    out
}

#[cfg(test)]
mod tests {
    use tsdb::head::{Head, HeadOptions};
    use tsdb::model::{Labels, Sample};
    use tsdb::storage::Appendable;

    use super::*;

    #[test]
    fn cardinality_counts_series_per_metric_and_label() {
        let head = Head::new(HeadOptions::default());
        let mut app = head.appender();
        for (name, instance, code) in [
            ("http_requests_total", "a", "200"),
            ("http_requests_total", "a", "500"),
            ("http_requests_total", "b", "200"),
            ("up", "a", ""),
        ] {
            let mut pairs = vec![("__name__", name), ("instance", instance)];
            if !code.is_empty() {
                pairs.push(("code", code));
            }
            app.append(None, &Labels::from_pairs(&pairs), Sample::new(1000, 1.0))
                .unwrap();
        }
        app.commit().unwrap();
        let c = Cardinality::of(&head, TimeRange::new(0, 2000)).unwrap();
        assert_eq!(c.series, 4);
        assert_eq!(
            top(&c.by_metric, 10),
            [("http_requests_total", 3), ("up", 1)]
        );
        assert_eq!(
            top(&c.series_by_label, 10),
            [("__name__", 4), ("instance", 4), ("code", 3)]
        );
        assert_eq!(top(&c.values_by_label, 2), [("__name__", 2), ("code", 2)]);
    }

    #[test]
    fn the_page_shows_tables_and_escapes_the_config() {
        let facts = Facts {
            now_ms: 120_000,
            start_time_ms: 60_000,
            retention: "15d".into(),
            reload_success: false,
            flags: vec![("web.listen-address".into(), "<0.0.0.0:9090>".into())],
            config_yaml: "global:\n  external_labels: {x: \"<b>\"}\n".into(),
        };
        let cardinality = Cardinality {
            series: 3,
            by_metric: HashMap::from([("up".into(), 2), ("<m>".into(), 1)]),
            series_by_label: HashMap::from([("job".into(), 3)]),
            values_by_label: HashMap::from([("job".into(), 2)]),
        };
        let head = HeadStatus {
            n_series: 3,
            n_chunks: 3,
            min_t: Some(0),
            max_t: Some(1000),
        };
        let body = body(&facts, head, &Ok(cardinality));
        assert!(
            body.contains("<tr><td>up</td><td>2</td></tr><tr><td>&lt;m&gt;</td><td>1</td></tr>")
        );
        assert!(body.contains("<table id=\"top-label-series\""));
        assert!(body.contains("<code>&lt;0.0.0.0:9090&gt;</code>"));
        assert!(body.contains("{x: &quot;&lt;b&gt;&quot;}"));
        assert!(body.contains("<span class=\"badge bad\">failed</span>"));
        assert!(body.contains(">1m 0s ago</time>"));
        assert!(!body.contains("<b>"));
        let failed = super::body(&facts, HeadStatus::default(), &Err("disk <gone>".into()));
        assert!(failed.contains("<p class=\"error\">disk &lt;gone&gt;</p>"));
    }
}
