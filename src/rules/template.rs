//! Alert label and annotation templates: the subset of Go's `text/template`
//! that Prometheus rules use, with Prometheus's functions and data.
//!
//! As in Prometheus (`rules/alerting.go`), every template gets the
//! definitions `$labels`, `$externalLabels`, `$externalURL` and `$value`
//! prepended and is named `__alert_<alertname>`, so error positions match
//! Prometheus's; a template that fails to expand yields
//! `<error expanding template: ...>` instead of failing the rule.
//!
//! - [`parse`]: lexer and parser with Go's parse-time checks;
//! - [`exec`]: execution with Go's semantics for dot, variables, truth and
//!   missing keys (`missingkey=zero`);
//! - [`funcs`]: Go's builtins and Prometheus's functions;
//! - [`gofmt`]: how Go prints values and `printf`.

mod exec;
mod funcs;
mod gofmt;
mod parse;

use std::collections::BTreeMap;

pub use funcs::{Context, QueryFn, go_duration_string, query_escape};
pub use gofmt::go_quote;

/// A value inside a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    /// `safeHtml` output; prints as the string.
    Html(String),
    /// A `map[string]string` such as `$labels`.
    StrMap(BTreeMap<String, String>),
    /// A `map[string]interface{}` (`args`).
    Map(BTreeMap<String, Value>),
    List(Vec<Value>),
    /// One element of a `query` result (`.Labels`, `.Value`).
    Sample(QuerySample),
    /// A `query` result.
    Samples(Vec<QuerySample>),
    /// `toTime`: milliseconds since the epoch.
    Time(i64),
    /// `toDuration`: nanoseconds.
    Duration(i64),
    /// The template data: named fields.
    Struct(Vec<(String, Value)>),
}

/// One sample of a template `query` result.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// What an alert's templates see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertData {
    /// The output series' labels (not the rule's own labels).
    pub labels: BTreeMap<String, String>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub value: f64,
}

impl AlertData {
    fn to_value(&self) -> Value {
        Value::Struct(vec![
            ("Labels".into(), Value::StrMap(self.labels.clone())),
            (
                "ExternalLabels".into(),
                Value::StrMap(self.external_labels.clone()),
            ),
            (
                "ExternalURL".into(),
                Value::String(self.external_url.clone()),
            ),
            ("Value".into(), Value::Float(self.value)),
        ])
    }
}

/// The definitions Prometheus prepends to every alert template.
const ALERT_DEFINITIONS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

fn alert_template_name(alert: &str) -> String {
    format!("__alert_{alert}")
}

/// Parses an alert template as `rulefmt` does when validating a file.
///
/// # Errors
/// Go's parse error text, such as
/// `template: __alert_X:1: function "nosuch" not defined`.
pub fn check_alert_template(alert: &str, text: &str) -> Result<(), String> {
    let name = alert_template_name(alert);
    let source = format!("{ALERT_DEFINITIONS}{text}");
    parse::parse(&name, &source, &funcs::is_defined)
        .map(drop)
        .map_err(|e| e.0)
}

/// Expands an alert label or annotation template at `time_ms`; on failure
/// the result is `<error expanding template: ...>`, as in Prometheus.
pub fn expand_alert_template(
    alert: &str,
    text: &str,
    data: &AlertData,
    time_ms: i64,
    query: Option<&mut QueryFn<'_>>,
) -> String {
    match expand(
        &alert_template_name(alert),
        &format!("{ALERT_DEFINITIONS}{text}"),
        data,
        time_ms,
        query,
    ) {
        Ok(text) => text,
        Err(error) => format!("<error expanding template: {error}>"),
    }
}

fn expand(
    name: &str,
    source: &str,
    data: &AlertData,
    time_ms: i64,
    query: Option<&mut QueryFn<'_>>,
) -> Result<String, String> {
    let tree = parse::parse(name, source, &funcs::is_defined)
        .map_err(|e| format!("error parsing template {name}: {}", e.0))?;
    let mut ctx = Context {
        query: query.map(|q| q as &mut QueryFn<'_>),
        external_url: data.external_url.clone(),
        time_ms,
    };
    exec::execute(name, source, &tree, data.to_value(), &mut ctx)
        .map_err(|e| format!("error executing template {name}: {e}"))
}

/// Whether a template may call `query` (its expansion then needs the query
/// backend). Conservative: any mention of the word counts.
pub fn may_query(text: &str) -> bool {
    text.contains("query")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> AlertData {
        AlertData {
            labels: [("instance", "host:9100"), ("job", "node")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            external_labels: [("cluster".to_string(), "eu".to_string())].into(),
            external_url: "http://sextant.example:9090/prefix".into(),
            value: 1234.5678,
        }
    }

    fn expand_ok(text: &str) -> String {
        expand_alert_template("Test", text, &data(), 1_700_000_000_000, None)
    }

    #[test]
    fn expands_like_prometheus() {
        let cases = [
            ("{{ $labels.instance }} down", "host:9100 down"),
            ("{{ $value }}", "1234.5678"),
            ("{{ .Value | humanize }}", "1.235k"),
            ("{{ printf \"%.2f\" $value }}", "1234.57"),
            ("{{ $labels.missing }}|", "|"),
            (
                "{{ $externalLabels.cluster }} {{ $externalURL }}",
                "eu http://sextant.example:9090/prefix",
            ),
            (
                "{{ if gt $value 1000.0 }}big{{ else }}small{{ end }}",
                "big",
            ),
            (
                "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
                "instance=host:9100;job=node;",
            ),
            ("{{ with $labels.job }}job {{ . }}{{ end }}", "job node"),
            (
                "{{ $labels.job | toUpper }} {{ title \"a b\" }}",
                "NODE A B",
            ),
            (
                "{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}",
                "host",
            ),
            (
                "{{ if match \"^host\" $labels.instance }}yes{{ end }}",
                "yes",
            ),
            ("{{ 0.5 | humanizePercentage }}", "50%"),
            (
                "{{ 1435065584.128 | humanizeTimestamp }}",
                "2015-06-23 13:19:44.128 +0000 UTC",
            ),
            ("{{ now }}", "1.7e+09"),
            ("{{ pathPrefix }}", "/prefix"),
            ("{{ (args 1 \"a\").arg1 }}", "a"),
            ("{{ len $labels }} {{ index $labels \"job\" }}", "2 node"),
            ("{{ and 1 0 }} {{ or 0 \"x\" }} {{ not true }}", "0 x false"),
            ("{{ eq $labels.job \"db\" \"node\" }}", "true"),
            ("{{- \"  trimmed\" -}}  ", "  trimmed"),
            ("{{ stripPort $labels.instance }}", "host"),
            ("{{ \"3h\" | parseDuration }}", "10800"),
            ("{{ toDuration 90 }}", "1m30s"),
        ];
        for (text, want) in cases {
            assert_eq!(expand_ok(text), want, "{text}");
        }
    }

    #[test]
    fn errors_become_the_expansion() {
        let out = expand_ok("{{ if gt $value 1000 }}x{{ end }}");
        assert!(
            out.starts_with("<error expanding template: error executing template __alert_Test: template: __alert_Test:1:"),
            "{out}"
        );
        assert!(out.contains("incompatible types for comparison"), "{out}");
        let out = expand_ok("{{ query \"up\" | first | value }}");
        assert!(out.contains("queries are not available"), "{out}");
        let out = expand_ok("{{ $labels.job.x }}");
        assert!(
            out.contains("can't evaluate field x in type string"),
            "{out}"
        );
    }

    #[test]
    fn queries_run_through_the_callback() {
        let mut calls = Vec::new();
        let mut query = |q: &str| -> Result<Vec<QuerySample>, String> {
            calls.push(q.to_string());
            Ok(vec![QuerySample {
                labels: [("instance".to_string(), "a".to_string())].into(),
                value: 42.0,
            }])
        };
        let out = expand_alert_template(
            "T",
            "{{ with query \"up\" }}{{ . | first | label \"instance\" }}={{ . | first | value }}{{ end }}",
            &data(),
            0,
            Some(&mut query),
        );
        assert_eq!(out, "a=42");
        assert_eq!(calls, vec!["up".to_string()]);
    }

    #[test]
    fn checks_parse_like_rulefmt() {
        assert!(check_alert_template("X", "{{ $labels.a }}").is_ok());
        assert_eq!(
            check_alert_template("X", "{{ nosuch }}").unwrap_err(),
            "template: __alert_X:1: function \"nosuch\" not defined"
        );
        assert!(check_alert_template("X", "{{ if }}").is_err());
        assert!(check_alert_template("X", "{{ $undefined }}").is_err());
    }
}
