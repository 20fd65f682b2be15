//! Rules files: the YAML format and its validation, as Prometheus's
//! `model/rulefmt` defines them (format reference:
//! `docs/format/rules-files.md`).
//!
//! Decoding is strict like Go's decoder with known-fields checking: unknown
//! fields, wrong types and repeated keys are errors naming the line. Then
//! every group and rule is validated and every problem reported, each naming
//! the line and column, the group, the rule's index and name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::template::check_alert_template;
use super::yaml::{self, Node, NodeKind};

/// A rules file: its groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

/// One `groups` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleGroup {
    pub name: String,
    /// `None`: the global evaluation interval.
    pub interval: Option<Duration>,
    /// `None`: the global `rule_query_offset`.
    pub query_offset: Option<Duration>,
    /// Most series (recording) or alerts (alerting) a rule may produce; 0 =
    /// no limit.
    pub limit: i64,
    /// Added to every rule's output; the rule's own labels win.
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
    /// Where the group's `name` value is.
    pub line: usize,
    pub column: usize,
}

/// One rule as written: exactly one of `record` and `alert` is non-empty
/// in a valid file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rule {
    pub record: String,
    pub alert: String,
    pub expr: String,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Positions of `record`, `alert` and `expr` (the rule's own position
    /// when absent).
    pub record_at: (usize, usize),
    pub alert_at: (usize, usize),
    pub expr_at: (usize, usize),
    /// Where the rule's mapping starts; stands in for absent fields.
    pub rule_at: (usize, usize),
}

impl Rule {
    /// The rule's name: its alert or record name.
    pub fn name(&self) -> &str {
        if self.alert.is_empty() {
            &self.record
        } else {
            &self.alert
        }
    }

    pub fn is_alerting(&self) -> bool {
        !self.alert.is_empty()
    }
}

/// Why a file was rejected: every problem found, each already worded as
/// Prometheus words it (`5:15: group "g", rule 1, "name": could not parse
/// expression: ...`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileErrors(pub Vec<String>);

/// Reads and validates a rules file.
///
/// # Errors
/// The file cannot be read (one message), or every problem in it.
pub fn load(path: &Path) -> Result<RuleFile, FileErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| FileErrors(vec![e.to_string()]))?;
    parse(&text)
}

/// Decodes and validates rules file text.
///
/// # Errors
/// Every problem found, in file order.
pub fn parse(text: &str) -> Result<RuleFile, FileErrors> {
    let root = yaml::parse(text).map_err(|e| {
        FileErrors(vec![format!(
            "yaml: line {}: column {}: {}",
            e.line, e.column, e.message
        )])
    })?;
    let mut decoder = Decoder::default();
    let file = match &root {
        Some(node) => decoder.file(node),
        None => RuleFile::default(),
    };
    if !decoder.errors.is_empty() {
        return Err(FileErrors(decoder.errors));
    }
    let errors = validate(&file);
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(FileErrors(errors))
    }
}

/// Collects decoding errors as Go's yaml decoder does (`line N: ...`).
#[derive(Default)]
struct Decoder {
    errors: Vec<String>,
}

impl Decoder {
    fn error(&mut self, node: &Node, message: impl std::fmt::Display) {
        self.errors
            .push(format!("{}:{}: {message}", node.line, node.column));
    }

    /// The pairs of a mapping; reports non-mappings and repeated keys.
    fn mapping<'n>(&mut self, node: &'n Node, type_name: &str) -> Vec<(&'n str, &'n Node)> {
        match &node.kind {
            NodeKind::Mapping(pairs) => {
                let mut seen = BTreeMap::new();
                let mut out = Vec::new();
                for (key, value) in pairs {
                    let name = key.scalar().unwrap_or_default();
                    if let Some(line) = seen.insert(name, key.line) {
                        self.error(
                            key,
                            format!("mapping key {name:?} already defined at line {line}"),
                        );
                        continue;
                    }
                    out.push((name, value));
                }
                out
            }
            _ if node.is_null() => Vec::new(),
            _ => {
                self.error(
                    node,
                    format!("cannot unmarshal {} into {type_name}", node.short_tag()),
                );
                Vec::new()
            }
        }
    }

    fn string(&mut self, node: &Node) -> String {
        if node.is_null() {
            return String::new();
        }
        match node.scalar() {
            Some(value) => value.to_string(),
            None => {
                self.error(
                    node,
                    format!("cannot unmarshal {} into string", node.short_tag()),
                );
                String::new()
            }
        }
    }

    fn duration(&mut self, node: &Node) -> Option<Duration> {
        if node.is_null() {
            return None;
        }
        let text = self.string(node);
        match scraper::config::parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(node, e);
                None
            }
        }
    }

    fn int(&mut self, node: &Node) -> i64 {
        if node.is_null() {
            return 0;
        }
        let parsed = node.scalar().and_then(|text| match node.short_tag() {
            "!!int" => yaml::parse_int(text),
            "!!float" => yaml::parse_float(text)
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64),
            _ => None,
        });
        match parsed {
            Some(n) => n,
            None => {
                let shown = node.scalar().unwrap_or_default().to_string();
                self.error(
                    node,
                    format!("cannot unmarshal {} `{shown}` into int", node.short_tag()),
                );
                0
            }
        }
    }

    fn string_map(&mut self, node: &Node) -> BTreeMap<String, String> {
        let pairs = self.mapping(node, "map[string]string");
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), self.string(v)))
            .collect()
    }

    fn sequence<'n>(&mut self, node: &'n Node, type_name: &str) -> &'n [Node] {
        match &node.kind {
            NodeKind::Sequence(items) => items,
            _ if node.is_null() => &[],
            _ => {
                self.error(
                    node,
                    format!("cannot unmarshal {} into {type_name}", node.short_tag()),
                );
                &[]
            }
        }
    }

    fn file(&mut self, root: &Node) -> RuleFile {
        let mut file = RuleFile::default();
        for (key, value) in self.mapping(root, "rulefmt.RuleGroups") {
            match key {
                "groups" => {
                    for group in self.sequence(value, "[]rulefmt.RuleGroup") {
                        let group = self.group(group);
                        file.groups.push(group);
                    }
                }
                other => self.unknown(value, other, "rulefmt.RuleGroups"),
            }
        }
        file
    }

    fn unknown(&mut self, value: &Node, field: &str, type_name: &str) {
        self.error(
            value,
            format!("field {field} not found in type {type_name}"),
        );
    }

    fn group(&mut self, node: &Node) -> RuleGroup {
        let mut group = RuleGroup {
            line: node.line,
            column: node.column,
            ..RuleGroup::default()
        };
        for (key, value) in self.mapping(node, "rulefmt.RuleGroup") {
            match key {
                "name" => {
                    group.name = self.string(value);
                    group.line = value.line;
                    group.column = value.column;
                }
                "interval" => group.interval = self.duration(value),
                "query_offset" => group.query_offset = self.duration(value),
                "limit" => group.limit = self.int(value),
                "labels" => group.labels = self.string_map(value),
                "rules" => {
                    for rule in self.sequence(value, "[]rulefmt.Rule") {
                        let rule = self.rule(rule);
                        group.rules.push(rule);
                    }
                }
                other => self.unknown(value, other, "rulefmt.RuleGroup"),
            }
        }
        group
    }

    fn rule(&mut self, node: &Node) -> Rule {
        let start = (node.line, node.column);
        let mut rule = Rule {
            record_at: start,
            alert_at: start,
            expr_at: start,
            rule_at: start,
            ..Rule::default()
        };
        for (key, value) in self.mapping(node, "rulefmt.Rule") {
            let at = (value.line, value.column);
            match key {
                "record" => {
                    rule.record = self.string(value);
                    rule.record_at = at;
                }
                "alert" => {
                    rule.alert = self.string(value);
                    rule.alert_at = at;
                }
                "expr" => {
                    rule.expr = self.string(value);
                    rule.expr_at = at;
                }
                "for" => rule.for_ = self.duration(value).unwrap_or_default(),
                "keep_firing_for" => {
                    rule.keep_firing_for = self.duration(value).unwrap_or_default();
                }
                "labels" => rule.labels = self.string_map(value),
                "annotations" => rule.annotations = self.string_map(value),
                other => self.unknown(value, other, "rulefmt.RuleNode"),
            }
        }
        rule
    }
}

/// A label name as Prometheus 3 accepts it: any non-empty UTF-8 string.
fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty()
}

/// The checks of `rulefmt`'s `RuleGroups.Validate` and `Rule.Validate`.
fn validate(file: &RuleFile) -> Vec<String> {
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for group in &file.groups {
        if group.name.is_empty() {
            errors.push(format!(
                "{}:{}: Groupname must not be empty",
                group.line, group.column
            ));
        }
        if !names.insert(group.name.as_str()) {
            errors.push(format!(
                "{}:{}: groupname: \"{}\" is repeated in the same file",
                group.line, group.column, group.name
            ));
        }
        for name in group.labels.keys() {
            if !is_valid_label_name(name) || name == "__name__" {
                errors.push(format!("invalid label name: {name}"));
            }
        }
        for (index, rule) in group.rules.iter().enumerate() {
            for (at, message) in validate_rule(rule) {
                let prefix = match at {
                    Some(((l1, c1), Some((l2, c2)))) => format!("{l1}:{c1}: {l2}:{c2}: "),
                    Some(((l, c), None)) => format!("{l}:{c}: "),
                    None => String::new(),
                };
                errors.push(format!(
                    "{prefix}group {:?}, rule {}, {:?}: {message}",
                    group.name,
                    index + 1,
                    rule.name()
                ));
            }
        }
    }
    errors
}

type Position = (usize, usize);

/// Where a problem is: a node, and for some problems a second node.
type At = Option<(Position, Option<Position>)>;

/// One rule's problems, each with the node (and alternative node) it is
/// about.
fn validate_rule(rule: &Rule) -> Vec<(At, String)> {
    let mut problems = Vec::new();
    let both = Some((rule.record_at, Some(rule.alert_at)));
    let at_record = Some((rule.record_at, None));
    if !rule.record.is_empty() && !rule.alert.is_empty() {
        problems.push((both, "only one of 'record' and 'alert' must be set".into()));
    }
    if rule.record.is_empty() && rule.alert.is_empty() {
        problems.push((both, "one of 'record' or 'alert' must be set".into()));
    }
    if rule.expr.is_empty() {
        problems.push((
            Some((rule.expr_at, None)),
            "field 'expr' must be set in rule".into(),
        ));
    } else if let Err(message) = check_expr(&rule.expr) {
        problems.push((
            Some((rule.expr_at, None)),
            format!("could not parse expression: {message}"),
        ));
    }
    if !rule.record.is_empty() {
        if !rule.annotations.is_empty() {
            problems.push((
                at_record,
                "invalid field 'annotations' in recording rule".into(),
            ));
        }
        if !rule.for_.is_zero() {
            problems.push((at_record, "invalid field 'for' in recording rule".into()));
        }
        if !rule.keep_firing_for.is_zero() {
            problems.push((
                at_record,
                "invalid field 'keep_firing_for' in recording rule".into(),
            ));
        }
        if rule.record.contains(['{', '}']) {
            problems.push((
                at_record,
                format!(
                    "braces present in the recording rule name; should it be in expr?: {}",
                    rule.record
                ),
            ));
        }
    }
    for name in rule.labels.keys() {
        if !is_valid_label_name(name) || name == "__name__" {
            problems.push((None, format!("invalid label name: {name}")));
        }
    }
    for name in rule.annotations.keys() {
        if !is_valid_label_name(name) {
            problems.push((None, format!("invalid annotation name: {name}")));
        }
    }
    if rule.is_alerting() {
        for (name, text) in &rule.labels {
            if let Err(e) = check_alert_template(&rule.alert, text) {
                problems.push((None, format!("label {name:?}: {e}")));
            }
        }
        for (name, text) in &rule.annotations {
            if let Err(e) = check_alert_template(&rule.alert, text) {
                problems.push((None, format!("annotation {name:?}: {e}")));
            }
        }
    }
    problems
}

/// Parses a rule's PromQL the way the engine will.
fn check_expr(expr: &str) -> Result<(), String> {
    match tsdb::promql::Engine::default().instant_query(expr, 0) {
        Ok(_) => Ok(()),
        Err(e) => Err(crate::api::position::describe_parse_error(
            expr,
            &e.to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(file) => panic!("accepted: {file:?}"),
            Err(FileErrors(errors)) => errors,
        }
    }

    #[test]
    fn parses_groups_and_rules() {
        let file = parse(
            "groups:
  - name: example
    interval: 30s
    query_offset: 1m
    limit: 10
    labels: {team: a}
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels:
          source: rules
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels: {severity: page}
        annotations:
          summary: 'Instance {{ $labels.instance }} down'
",
        )
        .unwrap();
        let group = &file.groups[0];
        assert_eq!(group.name, "example");
        assert_eq!(group.interval, Some(Duration::from_secs(30)));
        assert_eq!(group.query_offset, Some(Duration::from_secs(60)));
        assert_eq!(group.limit, 10);
        assert_eq!(group.labels["team"], "a");
        assert_eq!(group.rules[0].record, "job:up:sum");
        assert_eq!(group.rules[0].labels["source"], "rules");
        assert_eq!(group.rules[1].alert, "InstanceDown");
        assert_eq!(group.rules[1].for_, Duration::from_secs(300));
        assert_eq!(group.rules[1].keep_firing_for, Duration::from_secs(60));
        assert_eq!(group.rules[1].expr_at, (13, 15));
    }

    #[test]
    fn empty_files_are_valid() {
        assert_eq!(parse("").unwrap(), RuleFile::default());
        assert_eq!(parse("groups:\n").unwrap(), RuleFile::default());
    }

    #[test]
    fn errors_name_line_column_group_and_rule() {
        let found = errors(
            "groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum(up) by (job
      - record: foo
        expr: up
        annotations: {a: b}
  - name: g
    rules: []
",
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].starts_with(
                "5:15: group \"g\", rule 1, \"job:up:sum\": could not parse expression: 1:"
            ),
            "{}",
            found[0]
        );
        assert_eq!(
            found[1],
            "6:17: group \"g\", rule 2, \"foo\": invalid field 'annotations' in recording rule"
        );
        assert_eq!(
            found[2],
            "9:11: groupname: \"g\" is repeated in the same file"
        );
    }

    #[test]
    fn unknown_fields_and_bad_types_are_errors() {
        let found = errors(
            "groups:\n  - name: g\n    foo: 1\n    rules:\n      - record: a\n        expr: up\n        bar: 2\n",
        );
        assert_eq!(
            found,
            vec![
                "3:10: field foo not found in type rulefmt.RuleGroup".to_string(),
                "7:14: field bar not found in type rulefmt.RuleNode".to_string(),
            ]
        );
        let found = errors("groups:\n  - name: [a]\n    rules: []\n");
        assert_eq!(
            found,
            vec!["2:11: cannot unmarshal !!seq into string".to_string()]
        );
        let found = errors("groups:\n  - name: a\n    interval: 5\n");
        assert_eq!(
            found,
            vec!["3:15: not a valid duration string: \"5\"".to_string()]
        );
        let found = errors("groups:\n  - name: a\n    name: b\n");
        assert!(found[0].contains("already defined at line 2"), "{found:?}");
    }

    #[test]
    fn rule_checks() {
        let one = |rule: &str| {
            errors(&format!(
                "groups:\n  - name: g\n    rules:\n      - {rule}\n"
            ))
        };
        assert!(
            one("{record: a, alert: b, expr: up}")[0]
                .contains("only one of 'record' and 'alert' must be set")
        );
        assert!(one("{expr: up}")[0].contains("one of 'record' or 'alert' must be set"));
        assert!(one("{record: a}")[0].contains("field 'expr' must be set in rule"));
        assert!(
            one("{record: a, expr: up, for: 1m}")[0]
                .contains("invalid field 'for' in recording rule")
        );
        assert!(one("{record: 'a{b}', expr: up}")[0].contains("braces present"));
        assert!(
            one("{alert: a, expr: up, labels: {__name__: x}}")[0]
                .contains("invalid label name: __name__")
        );
        assert!(
            one("{alert: a, expr: up, annotations: {s: '{{ nosuch }}'}}")[0].contains(
                "annotation \"s\": template: __alert_a:1: function \"nosuch\" not defined"
            )
        );
        assert!(one("{alert: a, expr: up, labels: {s: '{{ if }}'}}")[0].contains("label \"s\""));
    }
}
