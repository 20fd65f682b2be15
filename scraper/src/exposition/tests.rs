//! Golden tests of the parser: each renders the entries (or the error) of an
//! input and compares with the expectation inline (`UPDATE_EXPECT=1` rewrites
//! them after a deliberate change).

use std::fmt::Write;

use expect_test::{Expect, expect};

use super::*;

/// One line per entry; samples show labels in written order, value,
/// timestamp and exemplar.
fn render(parser: Parser<'_>) -> String {
    let mut out = String::new();
    for entry in parser {
        match entry {
            Ok(Entry::Help { metric, text }) => writeln!(out, "HELP {metric} {text:?}"),
            Ok(Entry::Type { metric, kind }) => writeln!(out, "TYPE {metric} {kind:?}"),
            Ok(Entry::Unit { metric, unit }) => writeln!(out, "UNIT {metric} {unit:?}"),
            Ok(Entry::Comment(text)) => writeln!(out, "COMMENT {text:?}"),
            Ok(Entry::Sample(s)) => {
                let labels: Vec<String> = s.labels().map(|(n, v)| format!("{n}={v:?}")).collect();
                write!(
                    out,
                    "SAMPLE {}{{{}}} {:?}",
                    s.name(),
                    labels.join(","),
                    s.value
                )
                .unwrap();
                if let Some(t) = s.timestamp {
                    write!(out, " @{t}").unwrap();
                }
                if let Some(e) = &s.exemplar {
                    let labels: Vec<String> =
                        e.labels().map(|(n, v)| format!("{n}={v:?}")).collect();
                    write!(out, " # {{{}}} {:?}", labels.join(","), e.value).unwrap();
                    if let Some(t) = e.timestamp {
                        write!(out, " @{t}").unwrap();
                    }
                }
                writeln!(out, "  (line {}, series {:?})", s.line, s.series())
            }
            Err(e) => writeln!(out, "ERROR {e}"),
        }
        .unwrap();
    }
    out
}

fn check(input: &str, expect: Expect) {
    expect.assert_eq(&render(Parser::new(input.as_bytes(), Format::Text)));
}

fn check_om(input: &str, expect: Expect) {
    expect.assert_eq(&render(Parser::new(input.as_bytes(), Format::OpenMetrics)));
}

fn check_strict(input: &str, format: Format, expect: Expect) {
    expect.assert_eq(&render(Parser::strict(input.as_bytes(), format)));
}

#[test]
fn text_format_entries() {
    check(
        r#"# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
metric_without_timestamp_and_labels 12.47
something_weird{problem="division by zero"} +Inf -3982045
"#,
        expect![[r#"
            HELP http_requests_total "The total number of HTTP requests."
            TYPE http_requests_total Counter
            SAMPLE http_requests_total{method="post",code="200"} 1027.0 @1395066363000  (line 3, series "http_requests_total{method=\"post\",code=\"200\"}")
            SAMPLE http_requests_total{method="post",code="400"} 3.0 @1395066363000  (line 4, series "http_requests_total{method=\"post\",code=\"400\"}")
            COMMENT "Escaping in label values:"
            SAMPLE msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1458255915.0  (line 7, series "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"}")
            SAMPLE metric_without_timestamp_and_labels{} 12.47  (line 8, series "metric_without_timestamp_and_labels")
            ERROR line 9: expected a timestamp (integer milliseconds) or end of line, found "-3982045" in "something_weird{problem=\"division by zero\"} +Inf -3982045"
        "#]],
    );
}

#[test]
fn text_format_whitespace_and_oddities() {
    // Blanks around every token, a missing comma and a trailing comma, a
    // value glued to the brace, tabs, and a final line without line feed.
    check(
        "  #   TYPE  name counter\n\
         name {a=\"1\" b=\"2\",}-Inf\n\
         name\t{ a = \"x\" , }\t3\t 17 \n\
         \x20# HELP name  two  spaces \\\\ and \\n and \\\" kept\n\
         #comment without blank\n\
         # HELP name2\n\
         name2 NaN",
        expect![[r#"
            TYPE name Counter
            SAMPLE name{a="1",b="2"} -inf  (line 2, series "name {a=\"1\" b=\"2\",}")
            SAMPLE name{a="x"} 3.0 @17  (line 3, series "name\t{ a = \"x\" , }")
            HELP name " two  spaces \\ and \n and \\\" kept"
            COMMENT "comment without blank"
            HELP name2 ""
            SAMPLE name2{} NaN  (line 7, series "name2")
        "#]],
    );
}

#[test]
fn text_format_utf8_names() {
    check(
        r#"# HELP "my.metric" Dotted.
# TYPE "my.metric" gauge
{"my.metric", "label.x"="v", "a\"b"="c"} 1
{"other", a="b"} 2
"#,
        expect![[r#"
            HELP my.metric "Dotted."
            TYPE my.metric Gauge
            SAMPLE my.metric{label.x="v",a"b="c"} 1.0  (line 3, series "{\"my.metric\", \"label.x\"=\"v\", \"a\\\"b\"=\"c\"}")
            SAMPLE other{a="b"} 2.0  (line 4, series "{\"other\", a=\"b\"}")
        "#]],
    );
}

#[test]
fn le_and_quantile_are_normalized_under_their_type() {
    check(
        r#"# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="0.5"} 1
h_bucket{le="1e6"} 1
h_bucket{le="+Inf"} 2
h_bucket{le="inf"} 2
h_bucket{le="bla"} 2
# TYPE s summary
s{quantile="0"} 1
s{quantile=".99"} 1
# TYPE g gauge
g{le="1"} 1
"#,
        expect![[r#"
            TYPE h Histogram
            SAMPLE h_bucket{le="1.0"} 1.0  (line 2, series "h_bucket{le=\"1\"}")
            SAMPLE h_bucket{le="0.5"} 1.0  (line 3, series "h_bucket{le=\"0.5\"}")
            SAMPLE h_bucket{le="1e+06"} 1.0  (line 4, series "h_bucket{le=\"1e6\"}")
            SAMPLE h_bucket{le="+Inf"} 2.0  (line 5, series "h_bucket{le=\"+Inf\"}")
            SAMPLE h_bucket{le="+Inf"} 2.0  (line 6, series "h_bucket{le=\"inf\"}")
            SAMPLE h_bucket{le="bla"} 2.0  (line 7, series "h_bucket{le=\"bla\"}")
            TYPE s Summary
            SAMPLE s{quantile="0.0"} 1.0  (line 9, series "s{quantile=\"0\"}")
            SAMPLE s{quantile="0.99"} 1.0  (line 10, series "s{quantile=\".99\"}")
            TYPE g Gauge
            SAMPLE g{le="1"} 1.0  (line 12, series "g{le=\"1\"}")
        "#]],
    );
}

#[test]
fn raw_line_feed_in_a_label_value_counts_lines() {
    check(
        "a{x=\"one\ntwo\"} 1\nb 2\nc{",
        expect![[r#"
            SAMPLE a{x="one\ntwo"} 1.0  (line 1, series "a{x=\"one\ntwo\"}")
            SAMPLE b{} 2.0  (line 3, series "b")
            ERROR line 4: expected a label name or '}', found end of input in "c{"
        "#]],
    );
}

#[test]
fn text_format_errors_name_the_line_and_the_expectation() {
    let cases: [&[u8]; 23] = [
        b"metric{label=bla} 3.14\n",
        b"metric{label+=\"bla\"} 3.14\n",
        b"metric{@=\"bla\"} 3.14\n",
        b"@invalidmetric{label=\"bla\"} 3.14 2\n",
        b"{label=\"bla\"} 3.14 2\n",
        b"metric{label=\"bla\"} blubb\n",
        b"metric{label=\"bla\"} 3.14 2.72\n",
        b"metric{label=\"bla\"} 3.14 2 3\n",
        b"metric 1e400\n",
        b"metric 1_000\n",
        b"metric 0x1p-3\n",
        b"metric\n",
        b"metric{a=\"1\"}{b=\"2\"} 1\n",
        b"metric 1 99999999999999999999\n",
        b"# TYPE metric bla\n",
        b"# TYPE met-ric\n",
        b"# HELP \n",
        b"# TYPE x counter \n",
        b"{\"a\", \"b\"} 1\n",
        b"metric{a=\"unterminated} 1\n",
        b"metric{a=\"\\\n\"} 1\n",
        b"ok 1\n\n  bad{,} 1\n",
        b"metric{label=\"\xef\xbf\xbd\"} 1\nmetric{l=\"\xff\"} 1\n",
    ];
    let mut out = String::new();
    for case in cases {
        let rendered = render(Parser::new(case, Format::Text));
        out.push_str(rendered.lines().last().unwrap_or_default());
        out.push('\n');
    }
    expect![[r##"
        ERROR line 1: expected a label value in double quotes, found "bla} 3.14" in "metric{label=bla} 3.14"
        ERROR line 1: expected '=' after the label name, found "+=\"bla\"} 3.14" in "metric{label+=\"bla\"} 3.14"
        ERROR line 1: expected a label name or '}', found "@=\"bla\"} 3.14" in "metric{@=\"bla\"} 3.14"
        ERROR line 1: expected a metric name, '{' or '#', found "@invalidmetric{label=\"bla\"} 3.14 2" in "@invalidmetric{label=\"bla\"} 3.14 2"
        ERROR line 1: expected a metric name, found a label set without one in "{label=\"bla\"} 3.14 2"
        ERROR line 1: sample value "blubb" is not a number in "metric{label=\"bla\"} blubb"
        ERROR line 1: expected end of line, found ".72" in "metric{label=\"bla\"} 3.14 2.72"
        ERROR line 1: expected end of line, found "3" in "metric{label=\"bla\"} 3.14 2 3"
        ERROR line 1: sample value "1e400" is out of range in "metric 1e400"
        ERROR line 1: sample value "1_000" is not a number in "metric 1_000"
        ERROR line 1: sample value "0x1p-3" is not a number in "metric 0x1p-3"
        ERROR line 1: expected a sample value, found end of line in "metric"
        ERROR line 1: expected a sample value, found "{b=\"2\"} 1" in "metric{a=\"1\"}{b=\"2\"} 1"
        ERROR line 1: timestamp "99999999999999999999" is out of range in "metric 1 99999999999999999999"
        ERROR line 1: invalid metric type "bla" in "# TYPE metric bla"
        ERROR line 1: invalid metric type "ric" in "# TYPE met-ric"
        ERROR line 1: expected a metric name after HELP, found end of line in "# HELP "
        ERROR line 1: invalid metric type "counter " in "# TYPE x counter "
        ERROR line 1: metric name given twice in "{\"a\", \"b\"} 1"
        ERROR line 1: unterminated label value (missing '"') in "metric{a=\"unterminated} 1"
        ERROR line 1: expected an escaped character in the label value, found end of line in "metric{a=\"\\"
        ERROR line 3: expected a label name or '}', found ",} 1" in "  bad{,} 1"
        ERROR line 2: invalid UTF-8 in series in "metric{l=\"�\"} 1"
    "##]]
    .assert_eq(&out);
}

#[test]
fn openmetrics_entries() {
    check_om(
        r#"# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32
acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0
acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0
# TYPE foo histogram
foo_bucket{le="0.01"} 0
foo_bucket{le="0.1"} 8 # {} 0.054
foo_bucket{le="1"} 11 # {trace_id="KOO5S4vxi0o"} 0.67
foo_bucket{le="+Inf"} 17 # {trace_id="oHg5SJYRHA0"} 9.8 1520879607.789
foo_count 17
foo_sum 324789.3
foo_created  1520430000.123
"#,
        expect![[r#"
            TYPE acme_http_router_request_seconds Summary
            UNIT acme_http_router_request_seconds "seconds"
            HELP acme_http_router_request_seconds "Latency though all of ACME's HTTP request router."
            SAMPLE acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32  (line 4, series "acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"}")
            SAMPLE acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0  (line 5, series "acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"}")
            SAMPLE acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0  (line 6, series "acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"}")
            TYPE foo Histogram
            SAMPLE foo_bucket{le="0.01"} 0.0  (line 8, series "foo_bucket{le=\"0.01\"}")
            SAMPLE foo_bucket{le="0.1"} 8.0 # {} 0.054  (line 9, series "foo_bucket{le=\"0.1\"}")
            SAMPLE foo_bucket{le="1.0"} 11.0 # {trace_id="KOO5S4vxi0o"} 0.67  (line 10, series "foo_bucket{le=\"1\"}")
            SAMPLE foo_bucket{le="+Inf"} 17.0 # {trace_id="oHg5SJYRHA0"} 9.8 @1520879607789  (line 11, series "foo_bucket{le=\"+Inf\"}")
            SAMPLE foo_count{} 17.0  (line 12, series "foo_count")
            SAMPLE foo_sum{} 324789.3  (line 13, series "foo_sum")
            ERROR line 14: expected a sample value, found " 1520430000.123" in "foo_created  1520430000.123"
        "#]],
    );
}

#[test]
fn openmetrics_timestamps_are_seconds() {
    check_om(
        "a 1 1.5\na 2 -1.1\na 3 1e3\n{\"b.c\"} 4 0\n# EOF\n",
        expect![[r#"
            SAMPLE a{} 1.0 @1500  (line 1, series "a")
            SAMPLE a{} 2.0 @-1100  (line 2, series "a")
            SAMPLE a{} 3.0 @1000000  (line 3, series "a")
            SAMPLE b.c{} 4.0 @0  (line 4, series "{\"b.c\"}")
        "#]],
    );
}

#[test]
fn openmetrics_errors() {
    let cases = [
        "a 1\n",
        "a 1\n\n# EOF\n",
        "a 1\n# EOF\nx",
        "a  1\n# EOF\n",
        "a 1 \n# EOF\n",
        "a{a=\"1\", b=\"2\"} 1\n# EOF\n",
        "#a_sum 0\n# EOF\n",
        "# FOO a x\n# EOF\n",
        "# HELP a\n# EOF\n",
        "# TYPE a untyped\n# EOF\n",
        "# UNIT a seconds\n# EOF\n",
        "a 1 NaN\n# EOF\n",
        "a 1 # {a=\"b\"} 1 Inf\n# EOF\n",
        "a 1 #{} 1\n# EOF\n",
        "a 1 # {\"x\"} 1\n# EOF\n",
        "a{a=\"new\nline\"} 1\n# EOF\n",
    ];
    let mut out = String::new();
    for case in cases {
        let rendered = render(Parser::new(case.as_bytes(), Format::OpenMetrics));
        out.push_str(rendered.lines().last().unwrap_or_default());
        out.push('\n');
    }
    expect![[r##"
        ERROR line 2: expected '# EOF' as the last line in ""
        ERROR line 2: expected an entry, found an empty line in ""
        ERROR line 3: expected nothing after '# EOF', found "x" in "x"
        ERROR line 1: expected a sample value, found " 1" in "a  1"
        ERROR line 1: expected a timestamp after ' ', found end of line in "a 1 "
        ERROR line 1: expected a label name or '}', found " b=\"2\"} 1" in "a{a=\"1\", b=\"2\"} 1"
        ERROR line 1: expected '# ' followed by HELP, TYPE, UNIT or EOF, found "#a_sum 0" in "#a_sum 0"
        ERROR line 1: expected HELP, TYPE, UNIT or EOF after '# ', found "FOO a x" in "# FOO a x"
        ERROR line 1: expected ' ' and the help text after the metric name, found end of line in "# HELP a"
        ERROR line 1: invalid metric type "untyped" in "# TYPE a untyped"
        ERROR line 1: unit "seconds" is not a suffix of metric "a" in "# UNIT a seconds"
        ERROR line 1: invalid timestamp "NaN" in "a 1 NaN"
        ERROR line 1: invalid exemplar timestamp "Inf" in "a 1 # {a=\"b\"} 1 Inf"
        ERROR line 1: timestamp "#{}" is not a number in "a 1 #{} 1"
        ERROR line 1: expected '=' after the exemplar label name, found "} 1" in "a 1 # {\"x\"} 1"
        ERROR line 1: line feed inside a label value in "a{a=\"new"
    "##]]
    .assert_eq(&out);
}

#[test]
fn strict_text_follows_expfmt() {
    // Negative timestamps and an empty `# HELP` are fine for expfmt; a
    // missing comma, a `\t` escape or a missing final line feed are not.
    check_strict(
        "decoy -1 -2\n# HELP \n# TYPE x counter \n",
        Format::Text,
        expect![[r#"
            SAMPLE decoy{} -1.0 @-2  (line 1, series "decoy")
            COMMENT "HELP "
            TYPE x Counter
        "#]],
    );
    check_strict(
        "m{a=\"1\" b=\"2\"} 1\n",
        Format::Text,
        expect![[r#"
            ERROR line 1: expected ',' or '}' after the label value, found "b=\"2\"} 1" in "m{a=\"1\" b=\"2\"} 1"
        "#]],
    );
    check_strict(
        "m{a=\"\\t\"} 1\n",
        Format::Text,
        expect![[r#"
            ERROR line 1: invalid escape sequence '\t' in "m{a=\"\\t\"} 1"
        "#]],
    );
    check_strict(
        "m 1",
        Format::Text,
        expect![[r#"
            ERROR line 1: expected a line feed at the end of the last line in "m 1"
        "#]],
    );
    check_strict(
        "a{b=\"1\",} 1\n# EOF\n",
        Format::OpenMetrics,
        expect![[r#"
            ERROR line 1: expected a label name after ',', found "} 1" in "a{b=\"1\",} 1"
        "#]],
    );
}

#[test]
fn nul_at_line_start_ends_a_text_body_as_in_prometheus() {
    check(
        "a 1\n\0b 2\n",
        expect![[r#"
            SAMPLE a{} 1.0  (line 1, series "a")
        "#]],
    );
}

#[test]
fn created_samples_are_recognized() {
    let body = b"# TYPE a counter\na_total 1\na_created 2\n# TYPE g gauge\ng_created 3\n# EOF\n";
    let created: Vec<bool> = Parser::new(body, Format::OpenMetrics)
        .filter_map(|e| match e {
            Ok(Entry::Sample(s)) => Some(s.is_created()),
            _ => None,
        })
        .collect();
    assert_eq!(created, [false, true, false]);
}

#[test]
fn parse_collects_or_fails() {
    assert_eq!(parse(b"a 1\nb 2\n", Format::Text).map(|e| e.len()), Ok(2));
    let err = parse(b"a 1\nb x\n", Format::Text).unwrap_err();
    assert_eq!(err.line, 2);
}

/// The examples of `docs/format/exposition.md`: each ```text-format or
/// ```openmetrics block, parsed, must render as the ```parsed block after it.
#[test]
fn format_doc_examples() {
    let doc = include_str!("../../docs/format/exposition.md");
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(tag) = line.strip_prefix("```") else {
            continue;
        };
        let mut body = String::new();
        for inner in lines.by_ref() {
            if inner == "```" {
                break;
            }
            body.push_str(inner);
            body.push('\n');
        }
        blocks.push((tag.to_string(), body));
    }
    let mut checked = 0;
    for pair in blocks.windows(2) {
        let format = match pair[0].0.as_str() {
            "text-format" => Format::Text,
            "openmetrics" => Format::OpenMetrics,
            _ => continue,
        };
        assert_eq!(pair[1].0, "parsed", "a parsed block must follow");
        let rendered = render(Parser::new(pair[0].1.as_bytes(), format));
        assert_eq!(rendered, pair[1].1, "example:\n{}", pair[0].1);
        checked += 1;
    }
    assert_eq!(checked, 3);
}
