#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Lint of the Grafana dashboards in `grafana/` and the provisioning files in
//! `../deploy/grafana/`:
//! - every file is a dashboard (title, uid unique and at most 40 characters,
//!   schemaVersion, panels, templating) with a `datasource` variable of type
//!   datasource for Prometheus;
//! - every panel but rows has a title, a description, the `${datasource}`
//!   data source (on the panel and on each target), a grid position inside
//!   the 24 columns, and at least one target; panel ids are unique;
//! - every expression only uses variables the dashboard defines (or
//!   Grafana's built-ins) and, with variables replaced by concrete values,
//!   parses with `promql-parser` and runs on Sextant's engine. Variable
//!   queries (`label_values(selector, label)`) are checked the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tsdb::head::{Head, HeadOptions};
use tsdb::promql::{Engine, EngineOptions};

/// Grafana's built-in variables and the concrete values used in their place.
const BUILT_INS: [(&str, &str); 7] = [
    ("__rate_interval", "1m"),
    ("__interval_ms", "15000"),
    ("__interval", "15s"),
    ("__range_s", "3600"),
    ("__range_ms", "3600000"),
    ("__range", "1h"),
    ("__dashboard", "dashboard"),
];

fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana")
}

fn dashboards() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(grafana_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, json)
        })
        .collect()
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        all.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            all.extend(nested);
        }
    }
    all
}

fn variables(dashboard: &Value) -> &Vec<Value> {
    dashboard["templating"]["list"].as_array().unwrap()
}

fn non_empty_str<'a>(value: &'a Value, what: &str) -> &'a str {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is missing or not a string"));
    assert!(!text.trim().is_empty(), "{what} is empty");
    text
}

fn uses_datasource_variable(datasource: &Value) -> bool {
    datasource["type"] == "prometheus" && datasource["uid"] == "${datasource}"
}

/// The variable names an expression references: `$name`, `${name}`,
/// `${name:format}` and `[[name]]`.
fn referenced_variables(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let (start, end_marker) = if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            (i + 2, Some(b'}'))
        } else if bytes[i] == b'$' {
            (i + 1, None)
        } else if bytes[i] == b'[' && bytes.get(i + 1) == Some(&b'[') {
            (i + 2, Some(b']'))
        } else {
            i += 1;
            continue;
        };
        let mut end = start;
        while end < bytes.len() && is_name(bytes[end]) {
            end += 1;
        }
        if end > start {
            names.insert(expr[start..end].to_string());
        }
        if let Some(marker) = end_marker {
            while end < bytes.len() && bytes[end] != marker {
                end += 1;
            }
        }
        i = end.max(i + 1);
    }
    names
}

/// `expr` with every variable replaced by a concrete value: built-ins by a
/// duration or number, dashboard variables by `value` (they only appear in
/// label matchers).
fn substitute(expr: &str) -> String {
    let mut out = expr.to_string();
    for name in referenced_variables(expr).iter().rev() {
        let value = BUILT_INS
            .iter()
            .find(|(builtin, _)| builtin == name)
            .map_or("value", |(_, v)| v);
        // `${name:format}` and `${name}` first, then the bare forms.
        while let Some(start) = out.find(&format!("${{{name}")) {
            let end = start + out[start..].find('}').unwrap();
            out.replace_range(start..=end, value);
        }
        out = out.replace(&format!("[[{name}]]"), value);
        // Longest names first (reverse order), so `$__interval` does not
        // eat the start of `$__interval_ms`.
        out = out.replace(&format!("${name}"), value);
    }
    out
}

/// The PromQL inside a variable query: `label_values(selector, label)`
/// gives the selector; `label_values(label)` and `label_names()` have none.
fn variable_query_expr(query: &str) -> Option<String> {
    let query = query.trim();
    let inner = query.strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, _label) = inner.rsplit_once(',')?;
    Some(selector.trim().to_string())
}

fn check_expr(engine: &Engine, head: &Head, where_: &str, expr: &str, defined: &BTreeSet<String>) {
    for name in referenced_variables(expr) {
        let known = defined.contains(&name) || BUILT_INS.iter().any(|(b, _)| *b == name);
        assert!(
            known,
            "{where_}: expression uses undefined variable ${name}: {expr}"
        );
    }
    let concrete = substitute(expr);
    assert!(
        !concrete.contains('$'),
        "{where_}: unreplaced variable in {concrete}"
    );
    if let Err(e) = promql_parser::parser::parse(&concrete) {
        panic!("{where_}: promql-parser rejects {concrete:?}: {e}");
    }
    let end = 1_704_189_600_000;
    let query = engine
        .range_query(&concrete, end - 3_600_000, end, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{where_}: Sextant's engine rejects {concrete:?}: {e}"));
    if let Err(e) = query.exec(head) {
        panic!("{where_}: {concrete:?} fails on Sextant's engine: {e}");
    }
}

#[test]
fn the_three_dashboards_exist() {
    let names: Vec<String> = dashboards().into_iter().map(|(name, _)| name).collect();
    for expected in [
        "kubernetes-autoscaling.json",
        "node-overview.json",
        "sextant-self-monitoring.json",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
}

#[test]
fn every_file_is_a_dashboard_with_unique_uid_and_a_datasource_variable() {
    let mut uids = BTreeMap::new();
    for (name, dashboard) in dashboards() {
        non_empty_str(&dashboard["title"], &format!("{name}: title"));
        non_empty_str(&dashboard["description"], &format!("{name}: description"));
        let uid = non_empty_str(&dashboard["uid"], &format!("{name}: uid"));
        assert!(
            uid.len() <= 40,
            "{name}: Grafana uids are at most 40 characters"
        );
        if let Some(other) = uids.insert(uid.to_string(), name.clone()) {
            panic!("{name} and {other} share uid {uid}");
        }
        assert!(
            dashboard["schemaVersion"].as_u64().is_some(),
            "{name}: schemaVersion"
        );
        assert!(dashboard["id"].is_null(), "{name}: no instance-specific id");
        assert!(
            dashboard["panels"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "{name}: panels"
        );
        let datasource = variables(&dashboard)
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{name}: no datasource variable"));
        assert_eq!(datasource["type"], "datasource", "{name}");
        assert_eq!(datasource["query"], "prometheus", "{name}");
        let mut names = BTreeSet::new();
        for variable in variables(&dashboard) {
            let variable_name = non_empty_str(&variable["name"], &format!("{name}: variable name"));
            assert!(
                names.insert(variable_name),
                "{name}: variable {variable_name} twice"
            );
            if variable["type"] == "query" {
                assert!(
                    uses_datasource_variable(&variable["datasource"]),
                    "{name}: variable {variable_name} must query ${{datasource}}"
                );
            }
        }
    }
}

#[test]
fn every_panel_has_a_description_the_datasource_variable_and_a_place() {
    for (name, dashboard) in dashboards() {
        let mut ids = BTreeSet::new();
        for panel in panels(&dashboard) {
            let id = panel["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: panel without id"));
            assert!(ids.insert(id), "{name}: panel id {id} twice");
            let title = non_empty_str(&panel["title"], &format!("{name}: panel {id} title"));
            let where_ = format!("{name}: panel {title:?}");
            let grid = &panel["gridPos"];
            let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
            assert!(x + w <= 24 && w > 0, "{where_}: gridPos {grid}");
            assert!(
                grid["h"].as_u64().is_some_and(|h| h > 0),
                "{where_}: gridPos {grid}"
            );
            assert!(grid["y"].as_u64().is_some(), "{where_}: gridPos {grid}");
            if panel["type"] == "row" {
                continue;
            }
            non_empty_str(&panel["description"], &format!("{where_}: description"));
            assert!(
                uses_datasource_variable(&panel["datasource"]),
                "{where_}: datasource must be {{type: prometheus, uid: ${{datasource}}}}, is {}",
                panel["datasource"]
            );
            let targets = panel["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{where_}: targets"));
            assert!(!targets.is_empty(), "{where_}: no targets");
            let mut ref_ids = BTreeSet::new();
            for target in targets {
                let ref_id = non_empty_str(&target["refId"], &format!("{where_}: refId"));
                assert!(ref_ids.insert(ref_id), "{where_}: refId {ref_id} twice");
                let datasource = &target["datasource"];
                assert!(
                    datasource.is_null() || uses_datasource_variable(datasource),
                    "{where_}: target {ref_id} datasource {datasource}"
                );
                non_empty_str(&target["expr"], &format!("{where_}: target {ref_id} expr"));
            }
        }
    }
}

#[test]
fn every_expression_parses_and_runs_with_variables_replaced() {
    let engine = Engine::new(EngineOptions::default());
    let head = Head::new(HeadOptions::default());
    let mut checked = 0;
    for (name, dashboard) in dashboards() {
        let defined: BTreeSet<String> = variables(&dashboard)
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect();
        for variable in variables(&dashboard) {
            if variable["type"] != "query" {
                continue;
            }
            let query = variable["query"]["query"]
                .as_str()
                .or(variable["query"].as_str())
                .unwrap();
            let where_ = format!("{name}: variable {}", variable["name"]);
            if let Some(selector) = variable_query_expr(query) {
                check_expr(&engine, &head, &where_, &selector, &defined);
                checked += 1;
            }
        }
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let where_ = format!(
                    "{name}: panel {} target {}",
                    panel["title"], target["refId"]
                );
                check_expr(
                    &engine,
                    &head,
                    &where_,
                    target["expr"].as_str().unwrap(),
                    &defined,
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 90, "only {checked} expressions found");
}

#[test]
fn variable_substitution() {
    assert_eq!(
        substitute(
            r#"rate(x{job=~"$job", a="${instance}", b="${instance:regex}"}[$__rate_interval])"#
        ),
        r#"rate(x{job=~"value", a="value", b="value"}[1m])"#
    );
    assert_eq!(
        substitute("x[$__interval] + $__interval_ms + [[job]]"),
        "x[15s] + 15000 + value"
    );
    assert_eq!(
        referenced_variables("$a ${b} ${c:csv} [[d]] $__rate_interval"),
        ["__rate_interval", "a", "b", "c", "d"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        variable_query_expr(r#"label_values(up{job=~"$job"}, instance)"#).unwrap(),
        r#"up{job=~"$job"}"#
    );
    assert_eq!(variable_query_expr("label_values(job)"), None);
}

#[test]
fn grafana_provisioning_points_at_sextant_and_the_dashboards() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana");
    let datasources: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("datasources.yaml")).unwrap())
            .unwrap();
    assert_eq!(datasources["apiVersion"], serde_yaml::Value::from(1));
    let source = &datasources["datasources"][0];
    assert_eq!(source["type"].as_str(), Some("prometheus"));
    let url = source["url"].as_str().unwrap();
    assert!(url.starts_with("http://sextant."), "{url}");
    assert!(url.ends_with(":9090"), "{url}: Sextant's default port");

    let providers: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("dashboards.yaml")).unwrap())
            .unwrap();
    assert_eq!(providers["apiVersion"], serde_yaml::Value::from(1));
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"].as_str(), Some("file"));
    assert!(
        provider["options"]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with('/'))
    );
}
