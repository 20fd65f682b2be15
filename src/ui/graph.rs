//! `/graph`: the expression browser. The form (expression, range, step, end,
//! tab) is plain HTML submitted with GET, so every view is a URL. The graph
//! tab is an `<img>` of `/api/v1/render` over the chosen range; the table tab
//! is filled by `app.js` from `/api/v1/query` at the end time. `app.js` also
//! keeps the query history in the browser's `localStorage`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::html::{self, Esc, Nav};
use crate::api::Api;
use crate::api::params::{Params, parse_duration, parse_time};

/// The ranges offered in the picker.
const RANGES: [&str; 11] = [
    "5m", "15m", "30m", "1h", "3h", "6h", "12h", "1d", "2d", "1w", "2w",
];
const DEFAULT_RANGE: &str = "1h";

/// The view the URL asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub expr: String,
    pub range: String,
    pub step: String,
    pub end: String,
    pub table: bool,
}

impl View {
    /// Reads `expr`, `range`, `step`, `end` and `tab`; Prometheus's
    /// `g0.expr`, `g0.range_input` and `g0.tab` (`1`: table) too, so the
    /// generator URLs of alerts open here.
    pub fn from_params(params: &Params) -> View {
        let either = |ours: &str, theirs: &str| match params.get(ours) {
            "" => params.get(theirs).trim().to_string(),
            v => v.trim().to_string(),
        };
        let range = match either("range", "g0.range_input").as_str() {
            "" => DEFAULT_RANGE.to_string(),
            r => r.to_string(),
        };
        let expr = match params.get("expr") {
            "" => params.get("g0.expr"),
            e => e,
        };
        View {
            expr: expr.to_string(),
            range,
            step: params.get("step").trim().to_string(),
            end: params.get("end").trim().to_string(),
            table: params.get("tab") == "table"
                || (params.get("tab").is_empty() && params.get("g0.tab") == "1"),
        }
    }

    fn pairs(&self, table: bool) -> Vec<(&str, &str)> {
        let mut pairs = vec![("expr", self.expr.as_str()), ("range", self.range.as_str())];
        if !self.step.is_empty() {
            pairs.push(("step", self.step.as_str()));
        }
        if !self.end.is_empty() {
            pairs.push(("end", self.end.as_str()));
        }
        pairs.push(("tab", if table { "table" } else { "graph" }));
        pairs
    }

    /// `(start_ms, end_ms)` of the range ending at `end` (or `now_ms`).
    fn bounds(&self, now_ms: i64) -> Result<(i64, i64), String> {
        let end = match self.end.as_str() {
            "" => now_ms,
            t => parse_time(t).map_err(|e| format!("invalid end time: {e}"))?,
        };
        let range = parse_duration(&self.range)
            .map_err(|e| format!("invalid range: {e}"))?
            .as_millis();
        if range <= 0 {
            return Err("the range must be positive".into());
        }
        Ok((end.saturating_sub(range), end))
    }
}

/// Seconds with millisecond precision, as the API's time parameters take them.
fn seconds(t_ms: i64) -> String {
    format!("{}.{:03}", t_ms.div_euclid(1000), t_ms.rem_euclid(1000))
}

/// `GET /graph`.
pub async fn page(State(api): State<Arc<Api>>, params: Params) -> Response {
    let view = View::from_params(&params);
    html::page("Query", Nav::Graph, &body(&view, api.clock.now_ms()))
}

/// The page's body for `view` at `now_ms`.
pub fn body(view: &View, now_ms: i64) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<form id=\"query-form\" class=\"query\" action=\"/graph\" method=\"get\">\n\
         <textarea id=\"expr\" name=\"expr\" rows=\"3\" spellcheck=\"false\" autocomplete=\"off\" \
         placeholder=\"Expression, e.g. rate(sextant_http_requests_total[5m])\" \
         aria-label=\"Expression\">{}</textarea>\n<div class=\"controls\">\
         <label>Range <select name=\"range\" id=\"range\">",
        Esc(&view.expr)
    );
    let mut ranges: Vec<&str> = RANGES.to_vec();
    if !ranges.contains(&view.range.as_str()) {
        ranges.push(&view.range);
    }
    for range in ranges {
        let selected = if range == view.range { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{0}\"{selected}>{0}</option>",
            Esc(range)
        );
    }
    let _ = write!(
        out,
        "</select></label>\
         <label>Step <input name=\"step\" id=\"step\" size=\"6\" placeholder=\"auto\" value=\"{}\"></label>\
         <label>End <input name=\"end\" id=\"end\" size=\"20\" placeholder=\"now\" value=\"{}\"></label>\
         <input type=\"hidden\" name=\"tab\" value=\"{}\">\
         <button type=\"submit\">Execute</button></div>\n</form>\n",
        Esc(&view.step),
        Esc(&view.end),
        if view.table { "table" } else { "graph" }
    );
    let tab = |table: bool, label: &str| {
        let class = if table == view.table {
            " class=\"active\" aria-selected=\"true\""
        } else {
            ""
        };
        format!(
            "<a role=\"tab\" id=\"tab-{}\" href=\"{}\"{class}>{label}</a>",
            if table { "table" } else { "graph" },
            Esc(&html::url("/graph", &view.pairs(table)))
        )
    };
    let _ = writeln!(
        out,
        "<div class=\"tabs\" role=\"tablist\">{}{}</div>",
        tab(false, "Graph"),
        tab(true, "Table")
    );
    out.push_str("<p id=\"query-error\" class=\"error\" hidden></p>\n");
    if view.expr.trim().is_empty() {
        out.push_str(
            "<p class=\"hint\">Enter a PromQL expression and press Execute (or Enter; \
             Shift+Enter for a new line).</p>\n",
        );
    } else {
        match view.bounds(now_ms) {
            Err(e) => {
                let _ = writeln!(out, "<p class=\"error\">{}</p>", Esc(&e));
            }
            Ok((start, end)) if view.table => {
                let query = html::url(
                    "/api/v1/query",
                    &[("query", view.expr.as_str()), ("time", &seconds(end))],
                );
                let _ = writeln!(
                    out,
                    "<section id=\"table-panel\" data-query=\"{}\" data-start=\"{}\">\
                     <p id=\"table-status\" class=\"muted\">Running the query…</p>\
                     <div class=\"table-wrap\"><table id=\"result-table\" class=\"result\"></table></div>\
                     </section>",
                    Esc(&query),
                    start
                );
            }
            Ok((start, end)) => {
                let mut pairs = vec![
                    ("query", view.expr.clone()),
                    ("start", seconds(start)),
                    ("end", seconds(end)),
                    ("format", "png".to_string()),
                    ("width", "1000".to_string()),
                    ("height", "420".to_string()),
                ];
                if !view.step.is_empty() {
                    pairs.push(("step", view.step.clone()));
                }
                let pairs: Vec<(&str, &str)> =
                    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let src = html::url("/api/v1/render", &pairs);
                let _ = writeln!(
                    out,
                    "<figure id=\"graph-panel\"><img id=\"graph-img\" src=\"{}\" width=\"1000\" height=\"420\" \
                     alt=\"Graph of {}\"><figcaption>{} to {} UTC</figcaption></figure>",
                    Esc(&src),
                    Esc(&view.expr),
                    Esc(&crate::api::json::rfc3339(start)),
                    Esc(&crate::api::json::rfc3339(end)),
                );
            }
        }
    }
    out.push_str(
        "<section class=\"history\"><h2>History</h2><ul id=\"history\"></ul>\
         <button type=\"button\" id=\"clear-history\">Clear history</button></section>\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(pairs: &[(&str, &str)]) -> View {
        View::from_params(&Params::from_pairs(pairs))
    }

    #[test]
    fn an_empty_view_shows_the_form_and_a_hint() {
        let body = body(&view(&[]), 0);
        assert!(body.contains("<option value=\"1h\" selected>1h</option>"));
        assert!(body.contains("class=\"hint\""));
        assert!(!body.contains("graph-img"));
        assert!(body.contains("<ul id=\"history\">"));
    }

    #[test]
    fn the_graph_tab_renders_the_range_with_the_render_api() {
        let body = body(
            &view(&[("expr", "rate(x[5m])"), ("range", "5m"), ("step", "10s")]),
            600_000,
        );
        assert!(
            body.contains(
                "src=\"/api/v1/render?query=rate%28x%5B5m%5D%29&amp;start=300.000&amp;end=600.000\
                 &amp;format=png&amp;width=1000&amp;height=420&amp;step=10s\""
            ),
            "{body}"
        );
        assert!(body.contains("id=\"tab-graph\""));
        assert!(body.contains("<option value=\"5m\" selected>"));
        assert!(body.contains("value=\"10s\""));
    }

    #[test]
    fn the_table_tab_queries_at_the_end_time() {
        let body = body(
            &view(&[("expr", "up"), ("end", "1000"), ("tab", "table")]),
            0,
        );
        assert!(
            body.contains("data-query=\"/api/v1/query?query=up&amp;time=1000.000\""),
            "{body}"
        );
        assert!(body.contains("<table id=\"result-table\""));
        assert!(body.contains("<input type=\"hidden\" name=\"tab\" value=\"table\">"));
    }

    #[test]
    fn prometheus_generator_urls_open_here() {
        let v = view(&[
            ("g0.expr", "up == 0"),
            ("g0.tab", "1"),
            ("g0.range_input", "6h"),
        ]);
        assert_eq!(
            (v.expr.as_str(), v.range.as_str(), v.table),
            ("up == 0", "6h", true)
        );
        let v = view(&[("g0.expr", "up"), ("g0.tab", "0")]);
        assert!(!v.table);
    }

    #[test]
    fn user_input_is_escaped_everywhere() {
        let evil = "\"><script>alert(1)</script>";
        let body = body(
            &view(&[
                ("expr", evil),
                ("range", evil),
                ("step", evil),
                ("end", evil),
            ]),
            0,
        );
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains("&quot;&gt;&lt;script&gt;"));
        assert!(body.contains("<p class=\"error\">invalid end time"));
    }
}
