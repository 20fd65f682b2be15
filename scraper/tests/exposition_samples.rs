//! Every file of `tests/data/exposition-samples/` against the verdict its
//! `SOURCES.md` gives: the scrape parser must accept exactly what Prometheus's
//! scrape accepts, and the strict checker (`sextant check metrics`) exactly
//! what the reference parsers accept, including all 211 cases of the
//! OpenMetrics parser test suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use expect_test::expect;
use scraper::exposition::{Entry, Format, Parser, lint};
use scraper::scrape_loop::{check_labels, sample_labels};
use tsdb::model::Labels;

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exposition-samples")
}

/// One file's row in SOURCES.md.
#[derive(Debug)]
struct Row {
    file: String,
    format: Format,
    gzip: bool,
    validity: String,
    note: String,
}

/// The rows of every table with `file`, `format` and `validity` columns.
fn sources_rows() -> Vec<Row> {
    let sources = std::fs::read_to_string(samples_dir().join("SOURCES.md")).unwrap();
    let mut rows = Vec::new();
    let mut columns: Option<Vec<String>> = None;
    for line in sources.lines() {
        if !line.starts_with('|') {
            columns = None;
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_string())
            .collect();
        let Some(cols) = &columns else {
            columns = Some(cells);
            continue;
        };
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ' '))
        {
            continue;
        }
        let col = |name: &str| {
            cols.iter()
                .position(|c| c == name)
                .map(|i| cells[i].clone())
        };
        let (Some(file), Some(format), Some(validity)) =
            (col("file"), col("format"), col("validity"))
        else {
            continue;
        };
        let format_cell = format.clone();
        let format = if format_cell.starts_with("OpenMetrics") {
            Format::OpenMetrics
        } else {
            assert!(format_cell.starts_with("0.0.4"), "format {format_cell}");
            Format::Text
        };
        rows.push(Row {
            file: file.trim_matches('`').to_string(),
            format,
            gzip: format_cell.contains("gzip"),
            validity,
            note: col("description")
                .or_else(|| col("what it shows"))
                .unwrap_or_default(),
        });
    }
    rows
}

/// Does a Prometheus scrape store this body? The parser accepts it and every
/// sample has a storable label set.
fn scrape_accepts(body: &[u8], format: Format) -> Result<(), String> {
    for entry in Parser::new(body, format) {
        if let Entry::Sample(sample) = entry.map_err(|e| e.to_string())? {
            let labels =
                sample_labels(&sample, &Labels::empty(), false).map_err(|e| e.to_string())?;
            check_labels(&labels).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn strict_accepts(body: &[u8], format: Format) -> Result<(), String> {
    lint::validate(body, format).map_err(|e| e.to_string())
}

/// The files SOURCES.md calls `parser-dependent`, with what each side does
/// according to its note: (scrape accepts, reference parser accepts).
const PARSER_DEPENDENT: &[(&str, bool, bool)] = &[
    // "Prometheus's own OpenMetrics parser accepts it; ... the python
    // reference parser rejects it" (a histogram with negative buckets and _sum).
    ("prometheus__alltypes.5mfs.om.txt", true, false),
    // "expfmt test expects success; Prometheus's scrape parser rejects the
    // negative timestamp".
    ("prometheus-common__fuzz_from_test_parse_3", false, true),
    // "Prometheus's OpenMetrics parser accepts; strict OpenMetrics rejects".
    ("kuma__openmetrics_0_0_1-counter.out", true, false),
    ("kuma__multi-openmetrics-counter.out", true, false),
];

/// Prometheus's scrape accepts what the reference rejects when the note says
/// so.
const LENIENT_NOTE: &str = "Prometheus's scrape parser is more lenient and accepts this input";

/// Invalid by the OpenMetrics specification's text, but only for rules
/// Prometheus's scrape parser does not check (it checks no grouping), so a
/// Prometheus scrape stores them.
const SCRAPE_ACCEPTS_INVALID: &[&str] = &[
    // "Spec incorrect example: Metrics interleaved".
    "openmetrics-spec__example-L0578.txt",
    // "Spec incorrect example: MetricPoints interleaved".
    "openmetrics-spec__example-L0589.txt",
];

fn read_body(row: &Row) -> Vec<u8> {
    let raw = std::fs::read(samples_dir().join(&row.file)).unwrap();
    let mut body = if row.gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        raw
    };
    if row.validity.ends_with("(fragment)") {
        body.extend_from_slice(b"# EOF\n");
    }
    body
}

#[test]
fn every_sample_file_gets_its_documented_verdict() {
    let rows = sources_rows();
    // One row per file (the other test checks none is missing).
    assert_eq!(rows.len(), 154, "rows in SOURCES.md");
    let mut mismatches = Vec::new();
    for row in &rows {
        let body = read_body(row);
        let (scrape_ok, strict_ok) = match row.validity.as_str() {
            "valid" | "valid (fragment)" => (true, true),
            "invalid" | "invalid (fragment)" => (
                row.note.contains(LENIENT_NOTE)
                    || SCRAPE_ACCEPTS_INVALID.contains(&row.file.as_str()),
                false,
            ),
            "parser-dependent" => {
                let (_, scrape, strict) = PARSER_DEPENDENT
                    .iter()
                    .find(|(f, _, _)| *f == row.file)
                    .unwrap_or_else(|| panic!("no decision for parser-dependent {}", row.file));
                (*scrape, *strict)
            }
            other => panic!("unknown validity {other} for {}", row.file),
        };
        let scrape = scrape_accepts(&body, row.format);
        let strict = strict_accepts(&body, row.format);
        if scrape.is_ok() != scrape_ok {
            mismatches.push(format!(
                "{} ({}) scrape: want ok={scrape_ok}, got {scrape:?}",
                row.file, row.validity
            ));
        }
        if strict.is_ok() != strict_ok {
            mismatches.push(format!(
                "{} ({}) strict: want ok={strict_ok}, got {strict:?}",
                row.file, row.validity
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_file_in_the_folder_has_a_verdict() {
    let listed: Vec<String> = sources_rows().into_iter().map(|r| r.file).collect();
    let mut unlisted = Vec::new();
    for entry in std::fs::read_dir(samples_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let skip = ["SOURCES.md", "LICENSES", "openmetrics-testsuite"];
        if !skip.contains(&name.as_str()) && !listed.contains(&name) {
            unlisted.push(name);
        }
    }
    assert!(unlisted.is_empty(), "files without a verdict: {unlisted:?}");
}

/// The OpenMetrics suite: (case name, shouldParse).
fn suite_cases() -> Vec<(String, bool)> {
    let index =
        std::fs::read_to_string(samples_dir().join("openmetrics-testsuite/tests.json")).unwrap();
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    index["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["shouldParse"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn suite_body(case: &str) -> Vec<u8> {
    let dir = samples_dir()
        .join("openmetrics-testsuite/tests/testdata/parsers")
        .join(case);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("test.json")).unwrap()).unwrap();
    assert_eq!(manifest["type"], "text");
    std::fs::read(dir.join(manifest["file"].as_str().unwrap())).unwrap()
}

#[test]
fn openmetrics_suite_verdicts_match_the_manifest() {
    let cases = suite_cases();
    assert_eq!(cases.len(), 211);
    let mut mismatches = Vec::new();
    for (case, should_parse) in &cases {
        let result = strict_accepts(&suite_body(case), Format::OpenMetrics);
        if result.is_ok() != *should_parse {
            mismatches.push(format!(
                "{case}: shouldParse={should_parse}, got {result:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Prometheus's scrape parser is a lexer, not a validator: it stores many of
/// the suite's bad cases. This pins which ones (every good case must be
/// accepted); `prometheus_differential` checks the list against the real
/// Prometheus.
#[test]
fn openmetrics_suite_cases_a_prometheus_scrape_accepts() {
    let mut accepted_bad = Vec::new();
    let mut rejected: BTreeMap<String, String> = BTreeMap::new();
    for (case, should_parse) in suite_cases() {
        match scrape_accepts(&suite_body(&case), Format::OpenMetrics) {
            Ok(()) if !should_parse => accepted_bad.push(case),
            Ok(()) => {}
            Err(e) => {
                assert!(!should_parse, "good case {case} rejected: {e}");
                rejected.insert(case, e);
            }
        }
    }
    expect![[r#"
        bad_clashing_names_0
        bad_clashing_names_1
        bad_clashing_names_2
        bad_counter_values_0
        bad_counter_values_1
        bad_counter_values_10
        bad_counter_values_11
        bad_counter_values_12
        bad_counter_values_13
        bad_counter_values_14
        bad_counter_values_15
        bad_counter_values_16
        bad_counter_values_17
        bad_counter_values_18
        bad_counter_values_19
        bad_counter_values_2
        bad_counter_values_3
        bad_counter_values_4
        bad_counter_values_5
        bad_counter_values_6
        bad_counter_values_7
        bad_counter_values_8
        bad_counter_values_9
        bad_exemplar_complex_chars
        bad_exemplars_6
        bad_exemplars_on_unallowed_metric_types_0
        bad_exemplars_on_unallowed_metric_types_1
        bad_exemplars_on_unallowed_metric_types_2
        bad_exemplars_on_unallowed_samples_0
        bad_exemplars_on_unallowed_samples_1
        bad_exemplars_on_unallowed_samples_2
        bad_exemplars_on_unallowed_samples_3
        bad_grouping_or_ordering_0
        bad_grouping_or_ordering_10
        bad_grouping_or_ordering_2
        bad_grouping_or_ordering_3
        bad_grouping_or_ordering_4
        bad_grouping_or_ordering_5
        bad_grouping_or_ordering_6
        bad_grouping_or_ordering_7
        bad_grouping_or_ordering_8
        bad_grouping_or_ordering_9
        bad_histograms_0
        bad_histograms_1
        bad_histograms_10
        bad_histograms_11
        bad_histograms_12
        bad_histograms_13
        bad_histograms_14
        bad_histograms_2
        bad_histograms_3
        bad_histograms_6
        bad_histograms_7
        bad_histograms_8
        bad_histograms_9
        bad_info_and_stateset_values_0
        bad_info_and_stateset_values_1
        bad_metadata_in_wrong_place_0
        bad_metadata_in_wrong_place_1
        bad_metadata_in_wrong_place_2
        bad_missing_or_extra_commas_2
        bad_missing_or_invalid_labels_for_a_type_0
        bad_missing_or_invalid_labels_for_a_type_1
        bad_missing_or_invalid_labels_for_a_type_2
        bad_missing_or_invalid_labels_for_a_type_3
        bad_missing_or_invalid_labels_for_a_type_4
        bad_missing_or_invalid_labels_for_a_type_5
        bad_missing_or_invalid_labels_for_a_type_6
        bad_missing_or_invalid_labels_for_a_type_7
        bad_repeated_metadata_0
        bad_repeated_metadata_1
        bad_repeated_metadata_3
        bad_stateset_info_values_0
        bad_stateset_info_values_1
        bad_stateset_info_values_2
        bad_stateset_info_values_3
        bad_unit_6
        bad_unit_7"#]]
    .assert_eq(&accepted_bad.join("\n"));
    let rejected: Vec<String> = rejected
        .into_iter()
        .map(|(c, e)| format!("{c}: {e}"))
        .collect();
    expect![[r##"
        bad_blank_line: line 2: expected an entry, found an empty line in ""
        bad_exemplar_timestamp_0: line 2: invalid exemplar timestamp "NaN" in "a_total 1 # {a=\"b\"} 0.5 NaN"
        bad_exemplar_timestamp_1: line 2: invalid exemplar timestamp "Inf" in "a_total 1 # {a=\"b\"} 0.5 Inf"
        bad_exemplar_timestamp_2: line 2: invalid exemplar timestamp "-Inf" in "a_total 1 # {a=\"b\"} 0.5 -Inf"
        bad_exemplars_0: line 2: timestamp "#" is not a number in "a_bucket{le=\"+Inf\"} 1 #"
        bad_exemplars_1: line 2: sample value "1#" is not a number in "a_bucket{le=\"+Inf\"} 1# {} 1"
        bad_exemplars_10: line 2: expected '# {' to start an exemplar, or end of line, found "# id=\"a\"} 1" in "a_total 1 1 # id=\"a\"} 1"
        bad_exemplars_11: line 2: expected '# {' to start an exemplar, or end of line, found "#id=\" # \"} 1" in "a_total 1 1 #id=\" # \"} 1"
        bad_exemplars_12: line 2: expected '# {' to start an exemplar, or end of line, found "id=\" # \"} 1" in "a_total 1 1 id=\" # \"} 1"
        bad_exemplars_2: line 2: timestamp "#{}" is not a number in "a_bucket{le=\"+Inf\"} 1 #{} 1"
        bad_exemplars_3: line 2: expected ' ' and a sample value, found "1" in "a_bucket{le=\"+Inf\"} 1 # {}1"
        bad_exemplars_4: line 2: expected an exemplar timestamp after ' ', found end of line in "a_bucket{le=\"+Inf\"} 1 # {} 1 "
        bad_exemplars_5: line 2: expected end of line, found " " in "a_bucket{le=\"+Inf\"} 1 # {} 1 1 "
        bad_exemplars_7: line 2: exemplar value "0x1p-3" is not a number in "a_bucket{le=\"+Inf\"} 1 # {} 0x1p-3"
        bad_exemplars_8: line 2: exemplar timestamp "0x1p-3" is not a number in "a_bucket{le=\"+Inf\"} 1 # {} 1 0x1p-3"
        bad_exemplars_9: line 2: expected a sample value, found " " in "a_total 1 1 # {id=\"a\"}  "
        bad_grouping_or_ordering_1: line 3: expected ',' or '}' after the label value, found "\"} 0" in "a_bucket{a=\"2\",le=\"+Inf\"\"} 0"
        bad_help_0: line 1: expected HELP, TYPE, UNIT or EOF after '# ', found "HELP" in "# HELP"
        bad_help_1: line 1: expected a metric name after HELP, found end of line in "# HELP "
        bad_help_2: line 1: expected ' ' and the help text after the metric name, found end of line in "# HELP a"
        bad_help_3: line 1: expected ' ' and the help text after the metric name, found "\t" in "# HELP a\t"
        bad_help_4: line 1: expected a metric name, '{' or '#', found " # HELP a meh" in " # HELP a meh"
        bad_histograms_4: line 3: expected '# ' followed by HELP, TYPE, UNIT or EOF, found "#a_sum 0" in "#a_sum 0"
        bad_histograms_5: line 3: expected '# ' followed by HELP, TYPE, UNIT or EOF, found "#a_count 0" in "#a_count 0"
        bad_invalid_labels_0: line 1: expected a label name or '}', found "1=\"1\"} 1" in "a{1=\"1\"} 1"
        bad_invalid_labels_1: line 1: expected a label name or '}', found "1=\"1\"}1" in "a{1=\"1\"}1"
        bad_invalid_labels_2: label name "a" is not unique in a{a="1",a="1"}
        bad_invalid_labels_3: line 1: expected ',' or '}' after the label value, found "b} 1" in "a{a=\"1\"b} 1"
        bad_invalid_labels_4: line 1: expected a label name or '}', found "1=\" # \"} 1" in "a{1=\" # \"} 1"
        bad_invalid_labels_5: label name "a" is not unique in a{a=" # ",a=" # "}
        bad_invalid_labels_6: line 1: expected ' ' and a sample value, found "1" in "a{a=\" # \"}1"
        bad_invalid_labels_7: line 1: expected a label value in double quotes, found "}1" in "a{a=\" # \",b=}1"
        bad_invalid_labels_8: line 1: expected ',' or '}' after the label value, found "b}1" in "a{a=\" # \"b}1"
        bad_metadata: line 1: expected HELP, TYPE, UNIT or EOF after '# ', found "FOO a x" in "# FOO a x"
        bad_metric_names_0: line 1: expected a metric name, '{' or '#', found "0a 1" in "0a 1"
        bad_metric_names_1: line 1: expected ' ' and a sample value, found ".b 1" in "a.b 1"
        bad_metric_names_2: line 1: expected ' ' and a sample value, found "-b 1" in "a-b 1"
        bad_missing_equal_or_label_value_0: line 1: expected '=' after the label name, found "} 1" in "a{a} 1"
        bad_missing_equal_or_label_value_1: line 1: expected '=' after the label name, found "\"value\"} 1" in "a{a\"value\"} 1"
        bad_missing_equal_or_label_value_2: line 1: expected '=' after the label name, found "\"\"} 1" in "a{a\"\"} 1"
        bad_missing_equal_or_label_value_3: line 1: expected a label value in double quotes, found "} 1" in "a{a=} 1"
        bad_missing_equal_or_label_value_4: line 1: line feed inside a label value in "a{a=\"} 1"
        bad_missing_or_extra_commas_0: line 1: expected ',' or '}' after the label value, found "b=\"2\"} 1" in "a{a=\"1\"b=\"2\"} 1"
        bad_missing_or_extra_commas_1: line 1: expected a label name or '}', found ",b=\"2\"} 1" in "a{a=\"1\",,b=\"2\"} 1"
        bad_missing_or_wrong_quotes_on_label_value_0: line 1: expected a label value in double quotes, found "1} 1" in "a{a=1} 1"
        bad_missing_or_wrong_quotes_on_label_value_1: line 1: line feed inside a label value in "a{a=\"1} 1"
        bad_missing_or_wrong_quotes_on_label_value_2: line 1: expected a label value in double quotes, found "'1'} 1" in "a{a='1'} 1"
        bad_missing_value_0: line 1: expected ' ' and a sample value, found end of line in "a"
        bad_missing_value_1: line 1: expected a sample value, found end of line in "a "
        bad_no_eof: line 1: expected '# EOF' as the last line in ""
        bad_repeated_metadata_2: line 1: invalid metric type "untyped" in "# TYPE a untyped"
        bad_text_after_eof_0: line 3: expected nothing after '# EOF', found "blah" in "blah"
        bad_text_after_eof_1: line 2: expected nothing after '# EOF', found "blah" in "# EOFblah"
        bad_timestamp_0: line 1: timestamp "z" is not a number in "a 1 z"
        bad_timestamp_1: line 1: timestamp "1z" is not a number in "a 1 1z"
        bad_timestamp_2: line 1: timestamp "1_2" is not a number in "a 1 1_2"
        bad_timestamp_3: line 1: timestamp "1.1.1" is not a number in "a 1 1.1.1"
        bad_timestamp_4: line 1: invalid timestamp "NaN" in "a 1 NaN"
        bad_timestamp_5: line 1: invalid timestamp "Inf" in "a 1 Inf"
        bad_timestamp_6: line 1: expected a timestamp after ' ', found " Inf" in "a 1  Inf"
        bad_timestamp_7: line 1: invalid timestamp "-Inf" in "a 1 -Inf"
        bad_timestamp_8: line 1: timestamp "0x1p-3" is not a number in "a 1 0x1p-3"
        bad_type_0: line 1: expected HELP, TYPE, UNIT or EOF after '# ', found "TYPE" in "# TYPE"
        bad_type_1: line 1: expected a metric name after TYPE, found end of line in "# TYPE "
        bad_type_2: line 1: expected ' ' and the metric type after the metric name, found end of line in "# TYPE a"
        bad_type_3: line 1: expected ' ' and the metric type after the metric name, found "\t" in "# TYPE a\t"
        bad_type_4: line 1: invalid metric type "meh" in "# TYPE a meh"
        bad_type_5: line 1: invalid metric type "meh " in "# TYPE a meh "
        bad_type_6: line 1: invalid metric type "gauge " in "# TYPE a gauge "
        bad_type_7: line 1: invalid metric type "untyped" in "# TYPE a untyped"
        bad_unit_0: line 1: expected HELP, TYPE, UNIT or EOF after '# ', found "UNIT" in "# UNIT"
        bad_unit_1: line 1: expected a metric name after UNIT, found end of line in "# UNIT "
        bad_unit_2: line 1: expected ' ' and the unit after the metric name, found end of line in "# UNIT a"
        bad_unit_3: line 1: expected ' ' and the unit after the metric name, found "\t" in "# UNIT a\t"
        bad_unit_4: line 1: unit "seconds" is not a suffix of metric "a" in "# UNIT a seconds"
        bad_unit_5: line 1: unit "seconds " is not a suffix of metric "a_seconds" in "# UNIT a_seconds seconds "
        bad_value_0: line 1: sample value "a" is not a number in "a a"
        bad_value_1: line 1: expected a sample value, found " 1" in "a  1"
        bad_value_10: line 1: sample value "0X1" is not a number in "a 0X1"
        bad_value_11: line 1: sample value "0o1" is not a number in "a 0o1"
        bad_value_12: line 1: sample value "0O1" is not a number in "a 0O1"
        bad_value_2: line 1: sample value "1\t" is not a number in "a 1\t"
        bad_value_3: line 1: expected a timestamp after ' ', found end of line in "a 1 "
        bad_value_4: line 1: sample value "1_2" is not a number in "a 1_2"
        bad_value_5: line 1: sample value "0x1p-3" is not a number in "a 0x1p-3"
        bad_value_6: line 1: sample value "0x1P-3" is not a number in "a 0x1P-3"
        bad_value_7: line 1: sample value "0b1" is not a number in "a 0b1"
        bad_value_8: line 1: sample value "0B1" is not a number in "a 0B1"
        bad_value_9: line 1: sample value "0x1" is not a number in "a 0x1""##]].assert_eq(&rejected.join("\n"));
}
