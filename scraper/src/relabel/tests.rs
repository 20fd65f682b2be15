//! Relabeling, case by case, against the behaviour Prometheus documents (its
//! configuration reference and the cases of `model/relabel/relabel_test.go`).

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs)
}

fn rules(yaml: &str) -> Vec<RelabelConfig> {
    serde_yaml::from_str(yaml).unwrap()
}

/// Relabels `input` with the YAML rule list and compares with `expect`
/// (`None`: the label set is dropped).
#[track_caller]
fn check(input: &[(&str, &str)], yaml: &str, expect: Option<&[(&str, &str)]>) {
    let got = process(&labels(input), &rules(yaml));
    let expect = expect.map(labels);
    assert_eq!(got, expect, "rules:\n{yaml}");
}

/// The YAML must fail to load with exactly this message (location aside).
#[track_caller]
fn check_invalid(yaml: &str, message: &str) {
    let err = serde_yaml::from_str::<RelabelConfig>(yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains(message), "got {err:?}, want {message:?}");
}

const ABC: &[(&str, &str)] = &[("a", "foo"), ("b", "bar"), ("c", "baz")];

#[test]
fn replace_expands_groups_into_replacement() {
    check(
        ABC,
        r#"[{source_labels: [a], regex: "f(.*)", target_label: d, replacement: "ch${1}-ch${1}"}]"#,
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
    );
}

#[test]
fn rules_apply_in_order_and_see_earlier_results() {
    check(
        ABC,
        r#"
- {source_labels: [a, b], regex: "f(.*);(.*)r", target_label: a, replacement: "b${1}${2}m"}
- {source_labels: [c, a], regex: "(b).*b(.*)ba(.*)", target_label: d, replacement: "$1$2$2$3"}
"#,
        Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
    );
}

#[test]
fn replace_without_match_changes_nothing() {
    check(
        ABC,
        r#"[{source_labels: [a], regex: "no-match", target_label: d}]"#,
        Some(ABC),
    );
}

#[test]
fn regexes_are_fully_anchored() {
    check(
        &[("a", "foo")],
        r#"[{source_labels: [a], regex: "oo", action: keep}]"#,
        None,
    );
    check(
        &[("a", "foo")],
        r#"[{source_labels: [a], regex: "f", target_label: b}]"#,
        Some(&[("a", "foo")]),
    );
}

#[test]
fn dot_matches_newline() {
    check(
        &[("a", "foo\nbar")],
        r#"[{source_labels: [a], regex: "foo.*", action: keep}]"#,
        Some(&[("a", "foo\nbar")]),
    );
}

#[test]
fn defaults_copy_the_joined_source_values() {
    // regex (.*), replacement $1, separator ;
    check(
        &[("a", "foo"), ("b", "bar")],
        "[{source_labels: [a, b], target_label: c}]",
        Some(&[("a", "foo"), ("b", "bar"), ("c", "foo;bar")]),
    );
    check(
        &[("a", "foo"), ("b", "bar")],
        "[{source_labels: [a, b], separator: '', target_label: c}]",
        Some(&[("a", "foo"), ("b", "bar"), ("c", "foobar")]),
    );
    // A missing source label joins as the empty string.
    check(
        &[("a", "foo")],
        "[{source_labels: [a, missing, a], separator: '-', target_label: c}]",
        Some(&[("a", "foo"), ("c", "foo--foo")]),
    );
}

#[test]
fn replace_with_empty_result_deletes_the_target() {
    check(
        ABC,
        r#"[{source_labels: [a], regex: "(f).*", target_label: b, replacement: "$2"}]"#,
        Some(&[("a", "foo"), ("c", "baz")]),
    );
    // No source labels: the empty value sets a constant.
    check(
        &[("a", "foo")],
        "[{target_label: env, replacement: prod}]",
        Some(&[("a", "foo"), ("env", "prod")]),
    );
    check(
        &[("a", "foo")],
        "[{target_label: a, replacement: ''}]",
        Some(&[]),
    );
}

#[test]
fn expansion_follows_go_regexp_expand() {
    // `$1x` names group "1x", which does not exist: empty, so the label is deleted.
    check(
        &[("a", "foo")],
        r#"[{source_labels: [a], regex: "(f)oo", target_label: b, replacement: "$1x"}]"#,
        Some(&[("a", "foo")]),
    );
    // `${1}x` is group 1 then x; `$$` is a literal dollar.
    check(
        &[("a", "foo")],
        r#"[{source_labels: [a], regex: "(f)oo", target_label: b, replacement: "${1}x$$"}]"#,
        Some(&[("a", "foo"), ("b", "fx$")]),
    );
    // Named groups, and a `$` followed by no name is kept.
    check(
        &[("a", "foo")],
        r#"[{source_labels: [a], regex: "(?P<first>f)oo", target_label: b, replacement: "$first-${first}-$-$}"}]"#,
        Some(&[("a", "foo"), ("b", "f-f-$-$}")]),
    );
    // A group that did not participate expands to nothing.
    check(
        &[("a", "foo")],
        r#"[{source_labels: [a], regex: "(x)?foo", target_label: b, replacement: "[$1]"}]"#,
        Some(&[("a", "foo"), ("b", "[]")]),
    );
}

#[test]
fn target_label_may_be_expanded() {
    check(
        &[("a", "some-name-value")],
        r#"[{source_labels: [a], regex: "some-([^-]+)-([^,]+)", target_label: "${1}", replacement: "${2}"}]"#,
        Some(&[("a", "some-name-value"), ("name", "value")]),
    );
    // An expanded target that is empty is skipped.
    check(
        &[("a", "value")],
        r#"[{source_labels: [a], regex: "(x?)value", target_label: "${1}", replacement: "v"}]"#,
        Some(&[("a", "value")]),
    );
}

#[test]
fn keep_and_drop() {
    check(
        ABC,
        r#"[{source_labels: [a], regex: ".*o.*", action: drop}]"#,
        None,
    );
    check(
        ABC,
        r#"[{source_labels: [a], regex: "f(.*)", action: drop}, {source_labels: [b], regex: "x", action: drop}]"#,
        None,
    );
    check(
        &[("a", "abc")],
        r#"[{source_labels: [a], regex: "f(.*)", action: drop}]"#,
        Some(&[("a", "abc")]),
    );
    check(
        ABC,
        r#"[{source_labels: [a], regex: "f.*", action: keep}]"#,
        Some(ABC),
    );
    check(
        ABC,
        r#"[{source_labels: [a], regex: "no-match", action: keep}]"#,
        None,
    );
    // A missing label is the empty string: keep with the default (.*) keeps.
    check(ABC, "[{source_labels: [missing], action: keep}]", Some(ABC));
    check(
        ABC,
        "[{source_labels: [missing], regex: '.+', action: keep}]",
        None,
    );
    // Actions are case-insensitive.
    check(
        ABC,
        r#"[{source_labels: [a], regex: "foo", action: DROP}]"#,
        None,
    );
}

#[test]
fn keepequal_and_dropequal_compare_with_the_target_label() {
    let same = &[("a", "foo"), ("b", "foo")];
    let different = &[("a", "foo"), ("b", "bar")];
    check(
        same,
        "[{source_labels: [a], target_label: b, action: keepequal}]",
        Some(same),
    );
    check(
        different,
        "[{source_labels: [a], target_label: b, action: keepequal}]",
        None,
    );
    check(
        same,
        "[{source_labels: [a], target_label: b, action: dropequal}]",
        None,
    );
    check(
        different,
        "[{source_labels: [a], target_label: b, action: dropequal}]",
        Some(different),
    );
    // Joined values compare with the separator.
    check(
        &[("a", "x"), ("b", "y"), ("c", "x;y")],
        "[{source_labels: [a, b], target_label: c, action: keepequal}]",
        Some(&[("a", "x"), ("b", "y"), ("c", "x;y")]),
    );
}

#[test]
fn hashmod_uses_the_last_eight_bytes_of_md5() {
    // The value Prometheus's own test expects for "baz" modulo 1000.
    check(
        ABC,
        "[{source_labels: [c], target_label: d, modulus: 1000, action: hashmod}]",
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
    );
    check(
        ABC,
        "[{source_labels: [a, b], target_label: d, modulus: 1000, action: hashmod}]",
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "750")]),
    );
    // The usual sharding pattern: hash, then keep one shard.
    check(
        ABC,
        r#"
- {source_labels: [a], target_label: __tmp_hash, modulus: 7, action: hashmod}
- {source_labels: [__tmp_hash], regex: "2", action: keep}
"#,
        Some(&[
            ("__tmp_hash", "2"),
            ("a", "foo"),
            ("b", "bar"),
            ("c", "baz"),
        ]),
    );
}

#[test]
fn labelmap_copies_matching_names() {
    check(
        ABC,
        r#"[{regex: "(b.*)", replacement: "bar_${1}", action: labelmap}]"#,
        Some(&[("a", "foo"), ("b", "bar"), ("bar_b", "bar"), ("c", "baz")]),
    );
    check(
        &[
            ("__meta_kubernetes_pod_label_app", "web"),
            ("__meta_other", "x"),
            ("a", "1"),
        ],
        r#"[{regex: "__meta_kubernetes_pod_label_(.+)", action: labelmap}]"#,
        Some(&[
            ("__meta_kubernetes_pod_label_app", "web"),
            ("__meta_other", "x"),
            ("a", "1"),
            ("app", "web"),
        ]),
    );
    // Labels added by the rule are not themselves remapped.
    check(
        &[("a", "1")],
        r#"[{regex: "(.*)", replacement: "x${1}", action: labelmap}]"#,
        Some(&[("a", "1"), ("xa", "1")]),
    );
}

#[test]
fn labeldrop_and_labelkeep_match_names() {
    check(
        ABC,
        r#"[{regex: "a|b", action: labeldrop}]"#,
        Some(&[("c", "baz")]),
    );
    check(
        ABC,
        r#"[{regex: "(b.*)", action: labelkeep}]"#,
        Some(&[("b", "bar")]),
    );
    // Anchored: "b" does not drop "bb".
    check(
        &[("b", "1"), ("bb", "2")],
        r#"[{regex: "b", action: labeldrop}]"#,
        Some(&[("bb", "2")]),
    );
}

#[test]
fn lowercase_and_uppercase() {
    check(
        &[("foo", "BAR"), ("x", "Mixed")],
        "[{source_labels: [foo], target_label: foo_lower, action: lowercase}, {source_labels: [x], target_label: x, action: uppercase}]",
        Some(&[("foo", "BAR"), ("foo_lower", "bar"), ("x", "MIXED")]),
    );
    check(
        &[("foo", "ÄÖ")],
        "[{source_labels: [foo], target_label: foo, action: lowercase}]",
        Some(&[("foo", "äö")]),
    );
}

#[test]
fn empty_rule_list_returns_the_input() {
    assert_eq!(process(&labels(ABC), &[]), Some(labels(ABC)));
}

#[test]
fn defaults_are_prometheus_defaults() {
    let rule: RelabelConfig = serde_yaml::from_str("target_label: x").unwrap();
    assert_eq!(rule.action, Action::Replace);
    assert_eq!(rule.separator, ";");
    assert_eq!(rule.regex.as_str(), "(.*)");
    assert!(!rule.regex_set);
    assert_eq!(rule.replacement, "$1");
    assert_eq!(rule.modulus, 0);
    assert_eq!(
        rule,
        RelabelConfig {
            target_label: Arc::from("x"),
            ..RelabelConfig::default()
        }
    );
}

#[test]
fn validation_matches_prometheus() {
    check_invalid(
        "{}",
        "relabel configuration for replace action requires 'target_label' value",
    );
    check_invalid("{action: foo}", r#"unknown relabel action "foo""#);
    check_invalid(
        "{action: hashmod, target_label: x}",
        "relabel configuration for hashmod requires non-zero modulus",
    );
    check_invalid(
        "{action: lowercase}",
        "relabel configuration for lowercase action requires 'target_label' value",
    );
    check_invalid(
        "{action: lowercase, target_label: x, replacement: y}",
        "'replacement' can not be set for lowercase action",
    );
    check_invalid(
        "{action: keepequal, source_labels: [a], target_label: b, regex: 'x'}",
        "keepequal action requires only 'source_labels' and `target_label`, and no other fields",
    );
    check_invalid(
        "{action: dropequal, source_labels: [a], target_label: b, separator: ','}",
        "dropequal action requires only 'source_labels' and `target_label`, and no other fields",
    );
    check_invalid(
        "{action: labeldrop, regex: a, source_labels: [a]}",
        "labeldrop action requires only 'regex', and no other fields",
    );
    check_invalid(
        "{action: labelkeep, regex: a, target_label: b}",
        "labelkeep action requires only 'regex', and no other fields",
    );
    check_invalid(
        "{action: labelmap, replacement: ''}",
        r#""" is invalid 'replacement' for labelmap action"#,
    );
    check_invalid("{target_label: x, regex: '('}", r#"invalid regex "(""#);
    check_invalid(
        "{target_label: x, source_labels: ['']}",
        r#""" is not a valid label name"#,
    );
    check_invalid("{target_label: x, sources: [a]}", "unknown field `sources`");
}

#[test]
fn legacy_names_are_checked_when_asked() {
    let rule: RelabelConfig = serde_yaml::from_str("{target_label: 'a.b'}").unwrap();
    assert_eq!(rule.validate(NameValidationScheme::Utf8), Ok(()));
    assert_eq!(
        rule.validate(NameValidationScheme::Legacy),
        Err(r#""a.b" is invalid 'target_label' for replace action"#.to_string())
    );
    let rule: RelabelConfig = serde_yaml::from_str("{target_label: 'x_${1}_$name'}").unwrap();
    assert_eq!(rule.validate(NameValidationScheme::Legacy), Ok(()));
    let rule: RelabelConfig = serde_yaml::from_str("{target_label: '1x'}").unwrap();
    assert!(rule.validate(NameValidationScheme::Legacy).is_err());
}

#[test]
fn null_regex_is_the_empty_regex() {
    let rule: RelabelConfig =
        serde_yaml::from_str("{source_labels: [a], regex: null, action: keep}").unwrap();
    assert_eq!(rule.regex.as_str(), "");
    assert_eq!(
        process(&labels(&[("a", "x")]), std::slice::from_ref(&rule)),
        None
    );
    assert_eq!(
        process(&labels(&[("b", "x")]), &[rule]),
        Some(labels(&[("b", "x")]))
    );
}
