//! A runner for promqltest scripts, the test language of Prometheus's PromQL
//! conformance corpus (`load`, `clear`, `eval instant|range`, `expect
//! fail|warn|info|ordered|...`). The language is specified in
//! `shared/docs/promqltest-format.md`; this runner follows it, including the
//! @-modifier step-invariance variants and the range-mode cross-check of
//! instant evals, with these differences:
//! - a PromQL parse error fails that one eval, not the whole file;
//! - native histogram values cannot be stored, so they are dropped on load
//!   and expectations with histograms fail (such evals belong in the skip
//!   list);
//! - the @-variants are built by pinning the parsed query, not by printing
//!   it, so annotation positions refer to the original text.
//!
//! Used by `tsdb/tests/promql.rs` and by `sextant promqltest`.

mod script;
mod storage;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use script::{Command, Eval, EvalTime, Expected, MessageMatch, SeriesDescription, Slot};

use super::{Engine, EngineOptions, QueryResult, Value};
use crate::model::{Labels, STALE_NAN, Sample, is_stale_nan};
use crate::storage::Appendable;
use storage::TestStorage;

/// How one eval ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalResult {
    Passed,
    Failed(String),
    /// Listed in the skip list and still failing.
    Skipped {
        reason: String,
    },
    /// Listed in the skip list but passing: the list needs updating.
    UnexpectedPass {
        reason: String,
    },
}

/// One eval of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalReport {
    /// 1-based line of the eval header.
    pub line: usize,
    pub expr: String,
    pub result: EvalResult,
    /// The eval expects native histograms or reads a metric that has native
    /// histogram samples (a heuristic: the metric's name appears in the
    /// expression or matches a regex in it).
    pub native_histograms: bool,
}

/// The evals of one script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    pub name: String,
    pub evals: Vec<EvalReport>,
}

impl FileReport {
    fn count(&self, pred: impl Fn(&EvalResult) -> bool) -> usize {
        self.evals.iter().filter(|e| pred(&e.result)).count()
    }

    pub fn passed(&self) -> usize {
        self.count(|r| matches!(r, EvalResult::Passed))
    }

    /// Failures, counting unexpected passes of skipped evals.
    pub fn failed(&self) -> usize {
        self.count(|r| matches!(r, EvalResult::Failed(_) | EvalResult::UnexpectedPass { .. }))
    }

    pub fn skipped(&self) -> usize {
        self.count(|r| matches!(r, EvalResult::Skipped { .. }))
    }
}

impl fmt::Display for FileReport {
    /// One line per failure, then the counts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for eval in &self.evals {
            match &eval.result {
                EvalResult::Failed(why) => {
                    let tag = if eval.native_histograms {
                        " [native histograms]"
                    } else {
                        ""
                    };
                    writeln!(
                        f,
                        "FAIL {}:{}{tag} {}: {why}",
                        self.name, eval.line, eval.expr
                    )?
                }
                EvalResult::UnexpectedPass { reason } => writeln!(
                    f,
                    "FAIL {}:{} {}: listed as skipped ({reason}) but passes; remove it from the skip list",
                    self.name, eval.line, eval.expr
                )?,
                _ => {}
            }
        }
        write!(
            f,
            "{}: {} passed, {} failed, {} skipped",
            self.name,
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }
}

/// Evals that are known not to pass yet, each with its reason. The file
/// format is one entry per line, `<file>:<line> <reason>`, where `<file>`
/// is the script's name as given to the runner; `#` starts a comment line.
#[derive(Debug, Clone, Default)]
pub struct SkipList {
    entries: HashMap<(String, usize), String>,
}

impl SkipList {
    /// Parses the skip list format.
    ///
    /// # Errors
    /// The first malformed line, with its number.
    pub fn parse(text: &str) -> Result<SkipList, String> {
        let mut entries = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = || {
                format!(
                    "skip list line {}: expected '<file>:<line> <reason>'",
                    i + 1
                )
            };
            let (location, reason) = line.split_once(char::is_whitespace).ok_or_else(malformed)?;
            let (file, number) = location.rsplit_once(':').ok_or_else(malformed)?;
            let number: usize = number.parse().map_err(|_| malformed())?;
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(malformed());
            }
            entries.insert((file.to_string(), number), reason.to_string());
        }
        Ok(SkipList { entries })
    }

    pub fn reason(&self, file: &str, line: usize) -> Option<&str> {
        self.entries
            .get(&(file.to_string(), line))
            .map(String::as_str)
    }

    /// Entries whose file and line are not among the evals run, so that
    /// stale entries are noticed.
    pub fn unused<'a>(&'a self, reports: &'a [FileReport]) -> Vec<String> {
        let mut unused: Vec<String> = self
            .entries
            .keys()
            .filter(|(file, line)| {
                !reports
                    .iter()
                    .any(|r| r.name == *file && r.evals.iter().any(|e| e.line == *line))
            })
            .map(|(file, line)| format!("{file}:{line}"))
            .collect();
        unused.sort();
        unused
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One series of a `load` block in the expanding notation
/// (`metric{l="v"} 1+1x3 _ stale`), for other runners of the notation
/// (`sextant test rules`): the labels and one value per step, `None` for
/// `_` and [`STALE_NAN`] for `stale`.
///
/// # Errors
/// Malformed labels or values; native histogram values, which this storage
/// cannot hold.
pub fn parse_series_values(line: &str) -> Result<(Labels, Vec<Option<f64>>), String> {
    let description = script::parse_series_description(line)?;
    let values = description
        .slots
        .iter()
        .map(|slot| match slot {
            Slot::Omitted => Ok(None),
            Slot::Float(v) => Ok(Some(*v)),
            Slot::Stale => Ok(Some(STALE_NAN)),
            Slot::Histogram => Err(format!("native histogram values are not supported: {line}")),
        })
        .collect::<Result<_, _>>()?;
    Ok((description.labels, values))
}

/// The engine the upstream corpus expects: Prometheus's test engine.
pub fn test_engine() -> Engine {
    Engine::new(EngineOptions {
        lookback_delta: Duration::from_secs(5 * 60),
        timeout: Duration::from_secs(100),
        default_subquery_step: Duration::from_secs(60),
        ..EngineOptions::default()
    })
}

/// Runs a script file; its name in reports (and skip list entries) is
/// `name`.
///
/// # Errors
/// The file cannot be read.
pub fn run_file(path: &Path, name: &str, skips: &SkipList) -> std::io::Result<FileReport> {
    let text = std::fs::read_to_string(path)?;
    Ok(run_script(name, &text, skips))
}

/// Runs a script against a fresh in-memory storage.
pub fn run_script(name: &str, script: &str, skips: &SkipList) -> FileReport {
    let engine = test_engine();
    // A pure in-memory head, replaced on `clear`.
    let mut storage = TestStorage::new();
    let mut report = FileReport {
        name: name.to_string(),
        evals: Vec::new(),
    };
    let mut histogram_names: HashSet<String> = HashSet::new();
    for command in script::parse_script(script) {
        let (line, expr, outcome, native_histograms) = match command {
            Command::Clear => {
                storage = TestStorage::new();
                histogram_names.clear();
                continue;
            }
            Command::Load {
                series,
                step_ms,
                with_nhcb,
            } => {
                note_histograms(&series, with_nhcb, &mut histogram_names);
                if let Err(why) = load(&mut storage, &series, step_ms) {
                    report.evals.push(EvalReport {
                        line: 0,
                        expr: "load".to_string(),
                        result: EvalResult::Failed(why),
                        native_histograms: false,
                    });
                }
                continue;
            }
            Command::Broken { line, message } => (line, String::new(), Err(message), false),
            Command::Eval(eval) => {
                let outcome = run_eval(&engine, &storage, &eval);
                let native = eval.expects_histograms || mentions_any(&eval.expr, &histogram_names);
                (eval.line, eval.expr.clone(), outcome, native)
            }
        };
        let result = match (outcome, skips.reason(name, line)) {
            (Ok(()), None) => EvalResult::Passed,
            (Err(why), None) => EvalResult::Failed(why),
            (Ok(()), Some(reason)) => EvalResult::UnexpectedPass {
                reason: reason.to_string(),
            },
            (Err(_), Some(reason)) => EvalResult::Skipped {
                reason: reason.to_string(),
            },
        };
        report.evals.push(EvalReport {
            line,
            expr,
            result,
            native_histograms,
        });
    }
    report
}

/// Records the metrics that get native histogram samples.
fn note_histograms(series: &[SeriesDescription], with_nhcb: bool, names: &mut HashSet<String>) {
    for s in series {
        let Some(name) = s.labels.metric_name() else {
            continue;
        };
        if s.slots.contains(&Slot::Histogram) {
            names.insert(name.to_string());
        }
        if with_nhcb {
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    names.insert(base.to_string());
                }
            }
        }
    }
}

/// Whether `expr` names one of `names` as a whole word, or has a regex
/// string matching one.
fn mentions_any(expr: &str, names: &HashSet<String>) -> bool {
    let is_name_char = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let words: HashSet<&str> = expr.split(|c: char| !is_name_char(c)).collect();
    if names.iter().any(|n| words.contains(n.as_str())) {
        return true;
    }
    let mut rest = expr;
    while let Some(i) = rest.find("=~") {
        rest = rest[i + 2..].trim_start();
        let Some(quote) = rest.chars().next() else {
            break;
        };
        if let Some(end) = rest[1..].find(quote) {
            let pattern = &rest[1..end + 1];
            if let Ok(re) = regex::Regex::new(&format!("^(?:{pattern})$"))
                && names.iter().any(|n| re.is_match(n))
            {
                return true;
            }
        }
    }
    false
}

fn load(
    storage: &mut TestStorage,
    series: &[SeriesDescription],
    step_ms: i64,
) -> Result<(), String> {
    let mut appender = storage.head.appender();
    let mut start_timestamps = Vec::new();
    for description in series {
        let mut pairs = Vec::new();
        for (k, slot) in description.slots.iter().enumerate() {
            let t = k as i64 * step_ms;
            let v = match slot {
                Slot::Float(v) => *v,
                Slot::Stale => STALE_NAN,
                // Native histograms are not stored; evals on them are listed
                // in the skip list.
                Slot::Omitted | Slot::Histogram => continue,
            };
            appender
                .append(None, &description.labels, Sample::new(t, v))
                .map_err(|e| e.to_string())?;
            if let Some(Some(offset)) = description.start_offsets.get(k) {
                pairs.push((t, t.saturating_add(*offset)));
            }
        }
        start_timestamps.push((&description.labels, pairs));
    }
    appender.commit().map_err(|e| e.to_string())?;
    for (labels, pairs) in start_timestamps {
        storage.add_start_timestamps(labels, &pairs);
    }
    Ok(())
}

fn run_eval(engine: &Engine, storage: &TestStorage, eval: &Eval) -> Result<(), String> {
    match eval.time {
        EvalTime::Range {
            start_ms,
            end_ms,
            step_ms,
        } => {
            let result = engine
                .range_query(
                    &eval.expr,
                    start_ms,
                    end_ms,
                    Duration::from_millis(u64::try_from(step_ms).unwrap_or(0)),
                )
                .and_then(|q| q.exec(storage));
            check_result(eval, result).map(|_| ())
        }
        EvalTime::Instant { at_ms } => {
            let query = match engine.instant_query(&eval.expr, at_ms) {
                Ok(query) => query,
                Err(error) => return check_result(eval, Err(error)).map(|_| ()),
            };
            check_instant(storage, eval, &query, at_ms)?;
            if calls_time_dependent_function(&eval.expr) {
                return Ok(());
            }
            // With every selector pinned to the eval time by `@`, the
            // result must not depend on when the query runs.
            let pinned = query.pinned_at(at_ms);
            let times = if at_ms == 0 {
                vec![-1000, 0, 1000]
            } else {
                vec![-10 * at_ms, 0, at_ms / 5, at_ms, 10 * at_ms]
            };
            for t in times {
                check_instant(storage, eval, &pinned.instant_at(t), t).map_err(|why| {
                    format!("with every selector at @ {at_ms}, evaluated at {t}: {why}")
                })?;
            }
            Ok(())
        }
    }
}

/// Whether the expression calls a function whose result depends on the
/// evaluation time, which rules out the @-pinned variants.
fn calls_time_dependent_function(expr: &str) -> bool {
    const FUNCTIONS: [&str; 15] = [
        "days_in_month",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "end",
        "hour",
        "minute",
        "month",
        "year",
        "predict_linear",
        "range",
        "start",
        "step",
        "time",
        "timestamp",
    ];
    let bytes = expr.as_bytes();
    FUNCTIONS.iter().any(|f| {
        expr.match_indices(f).any(|(i, _)| {
            let before = i.checked_sub(1).map(|j| bytes[j]);
            let after = expr[i + f.len()..].trim_start().as_bytes().first().copied();
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') && after == Some(b'(')
        })
    })
}

/// Runs an instant query and checks it, then its range-mode cross-check.
fn check_instant(
    storage: &TestStorage,
    eval: &Eval,
    query: &super::Query,
    at_ms: i64,
) -> Result<(), String> {
    if check_result(eval, query.exec(storage))? {
        cross_check_as_range(storage, eval, query, at_ms)?;
    }
    Ok(())
}

/// Checks a query's outcome against the eval's expectations. `Ok(false)`
/// when the expected failure happened, `Ok(true)` when the result matched.
fn check_result(eval: &Eval, result: super::Result<QueryResult>) -> Result<bool, String> {
    let result = match (result, &eval.fail) {
        (Err(error), Some(expected)) => {
            let message = error.to_string();
            return match expected.matches(&message) {
                Ok(true) => Ok(false),
                Ok(false) => Err(format!(
                    "expected error matching {expected:?}, got {message:?}"
                )),
                Err(why) => Err(why),
            };
        }
        (Err(error), None) => return Err(format!("unexpected error: {error}")),
        (Ok(_), Some(expected)) => {
            return Err(format!("expected error {expected:?} but got none"));
        }
        (Ok(result), None) => result,
    };
    check_annotations(eval, &result)?;
    compare(eval, &result.value)?;
    Ok(true)
}

fn check_annotations(eval: &Eval, result: &QueryResult) -> Result<(), String> {
    let check = |kind: &str,
                 expected: &[MessageMatch],
                 none: bool,
                 any: bool,
                 actual: &[String]|
     -> Result<(), String> {
        if none && !actual.is_empty() {
            return Err(format!("expected no {kind}s, got {actual:?}"));
        }
        if any && actual.is_empty() {
            return Err(format!("expected a {kind}, got none"));
        }
        if expected.is_empty() {
            return Ok(());
        }
        if actual.is_empty() {
            return Err(format!("expected {kind}s {expected:?}, got none"));
        }
        for e in expected {
            let mut found = false;
            for a in actual {
                found |= e.matches(a)?;
            }
            if !found {
                return Err(format!("expected a {kind} matching {e:?}, got {actual:?}"));
            }
        }
        for a in actual {
            let mut found = false;
            for e in expected {
                found |= e.matches(a)?;
            }
            if !found {
                return Err(format!("unexpected {kind} {a:?}"));
            }
        }
        Ok(())
    };
    check(
        "warning",
        &eval.warn,
        eval.no_warn,
        eval.any_warn,
        result.annotations.warnings(),
    )?;
    check(
        "info",
        &eval.info,
        eval.no_info,
        eval.any_info,
        result.annotations.infos(),
    )
}

/// Prometheus's `almost.Equal` with the runner's epsilon, plus the rule
/// that a staleness marker only equals a staleness marker.
fn values_equal(expected: f64, actual: f64) -> bool {
    if is_stale_nan(expected) || is_stale_nan(actual) {
        return is_stale_nan(expected) && is_stale_nan(actual);
    }
    if expected.is_nan() && actual.is_nan() {
        return true;
    }
    super::functions::almost_equal(expected, actual, 1e-6)
}

fn expected_value(slot: &Slot) -> Result<Option<f64>, String> {
    match slot {
        Slot::Omitted => Ok(None),
        Slot::Float(v) => Ok(Some(*v)),
        Slot::Stale => Ok(Some(STALE_NAN)),
        Slot::Histogram => {
            Err("expected a native histogram, which this engine does not support".to_string())
        }
    }
}

fn compare(eval: &Eval, value: &Value) -> Result<(), String> {
    match (value, &eval.expected) {
        (Value::String(s), Expected::String(expected)) => {
            if s.v == *expected {
                Ok(())
            } else {
                Err(format!("expected string {expected:?}, got {:?}", s.v))
            }
        }
        (Value::Scalar(s), Expected::Scalar(expected)) => {
            if values_equal(*expected, s.v) {
                Ok(())
            } else {
                Err(format!("expected scalar {expected}, got {}", s.v))
            }
        }
        (Value::Vector(vector), Expected::Series(expected)) => {
            let actual: Vec<(Labels, f64)> =
                vector.iter().map(|s| (s.labels.clone(), s.v)).collect();
            compare_vector(&actual, expected, eval.ordered)
        }
        (Value::Matrix(matrix), Expected::Series(expected)) => {
            if eval.ordered {
                return Err("expected ordered result, but query returned a matrix".to_string());
            }
            let (start, step) = match (eval.time, eval.range_vector) {
                (_, Some((start, _, step))) => (start, step),
                (
                    EvalTime::Range {
                        start_ms, step_ms, ..
                    },
                    None,
                ) => (start_ms, step_ms),
                (EvalTime::Instant { .. }, None) => {
                    return Err(
                        "query returned a range vector; the eval needs 'expect range vector'"
                            .to_string(),
                    );
                }
            };
            compare_matrix(matrix, expected, start, step)
        }
        (value, expected) => Err(format!(
            "expected {}, got a {}: {value}",
            match expected {
                Expected::Series(_) => "series",
                Expected::Scalar(_) => "a scalar",
                Expected::String(_) => "a string",
            },
            value.type_name()
        )),
    }
}

fn compare_vector(
    actual: &[(Labels, f64)],
    expected: &[SeriesDescription],
    ordered: bool,
) -> Result<(), String> {
    if actual.len() != expected.len() {
        return Err(format!(
            "expected {} series, got {}: {}",
            expected.len(),
            actual.len(),
            describe_vector(actual)
        ));
    }
    for (i, e) in expected.iter().enumerate() {
        let want = match e.slots.as_slice() {
            [slot] => expected_value(slot)?,
            _ => return Err(format!("expected exactly one value for {}", e.labels)),
        };
        let found = if ordered {
            actual.get(i).filter(|(labels, _)| *labels == e.labels)
        } else {
            actual.iter().find(|(labels, _)| *labels == e.labels)
        };
        let Some((_, v)) = found else {
            return Err(format!(
                "expected series {} {}not found in {}",
                e.labels,
                if ordered {
                    format!("at position {} ", i + 1)
                } else {
                    String::new()
                },
                describe_vector(actual)
            ));
        };
        match want {
            Some(want) if values_equal(want, *v) => {}
            Some(want) => return Err(format!("expected {} {want}, got {v}", e.labels)),
            None => return Err(format!("expected no value for {}", e.labels)),
        }
    }
    Ok(())
}

fn describe_vector(actual: &[(Labels, f64)]) -> String {
    let parts: Vec<String> = actual.iter().map(|(l, v)| format!("{l} {v}")).collect();
    format!("[{}]", parts.join(", "))
}

fn compare_matrix(
    matrix: &[super::Series],
    expected: &[SeriesDescription],
    start: i64,
    step: i64,
) -> Result<(), String> {
    if matrix.windows(2).any(|w| w[0].labels > w[1].labels) {
        return Err("range query result is not sorted by labels".to_string());
    }
    if matrix.len() != expected.len() {
        let got: Vec<String> = matrix.iter().map(|s| s.labels.to_string()).collect();
        return Err(format!(
            "expected {} series, got {}: {got:?}",
            expected.len(),
            matrix.len()
        ));
    }
    for e in expected {
        let Some(series) = matrix.iter().find(|s| s.labels == e.labels) else {
            let got: Vec<String> = matrix.iter().map(|s| s.labels.to_string()).collect();
            return Err(format!("expected series {} not found in {got:?}", e.labels));
        };
        let mut want = Vec::new();
        for (k, slot) in e.slots.iter().enumerate() {
            if let Some(v) = expected_value(slot)? {
                want.push((start + k as i64 * step, v));
            }
        }
        let got: Vec<(i64, f64)> = series.points.iter().map(|p| (p.t, p.v)).collect();
        let same = want.len() == got.len()
            && want
                .iter()
                .zip(&got)
                .all(|(w, g)| w.0 == g.0 && values_equal(w.1, g.1));
        if !same {
            return Err(format!(
                "series {}: expected points {want:?}, got {got:?}",
                e.labels
            ));
        }
    }
    Ok(())
}

/// Runs an instant eval again as a range query around its time, as the Go
/// runner does, and checks the point at the eval time.
fn cross_check_as_range(
    storage: &TestStorage,
    eval: &Eval,
    query: &super::Query,
    at_ms: i64,
) -> Result<(), String> {
    if eval.range_vector.is_some() || matches!(eval.expected, Expected::String(_)) {
        return Ok(());
    }
    if ["start()", "end()", "range()", "step()"]
        .iter()
        .any(|f| eval.expr.contains(f))
    {
        return Ok(());
    }
    let result = query
        .range_over(at_ms - 60_000, at_ms + 60_000, 60_000)
        .exec(storage)
        .map_err(|e| format!("range-mode cross-check failed: {e}"))?;
    if eval.ordered {
        return Ok(());
    }
    let Value::Matrix(matrix) = result.value else {
        return Err("range-mode cross-check did not return a matrix".to_string());
    };
    if matrix.windows(2).any(|w| w[0].labels > w[1].labels) {
        return Err("range-mode cross-check: result is not sorted by labels".to_string());
    }
    let at_t: Vec<(Labels, f64)> = matrix
        .iter()
        .filter_map(|s| {
            s.points
                .iter()
                .find(|p| p.t == at_ms)
                .map(|p| (s.labels.clone(), p.v))
        })
        .collect();
    match &eval.expected {
        Expected::Scalar(want) => match at_t.as_slice() {
            [(_, v)] if values_equal(*want, *v) => Ok(()),
            _ => Err(format!(
                "range-mode cross-check: expected scalar {want}, got {}",
                describe_vector(&at_t)
            )),
        },
        Expected::Series(expected) => compare_vector(&at_t, expected, false)
            .map_err(|e| format!("range-mode cross-check: {e}")),
        Expected::String(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_script_passes() {
        let script = r#"
load 5m
  http_requests{job="api", instance="0"} 0+10x10
  http_requests{job="api", instance="1"} 0+20x10

eval instant at 50m sum by (job) (http_requests)
  {job="api"} 300

eval instant at 50m rate(http_requests[10m])
  {job="api", instance="0"} 0.03333333333333333
  {job="api", instance="1"} 0.06666666666666667

eval range from 0 to 10m step 5m http_requests{instance="0"} * 2
  {job="api", instance="0"} 0 20 40

eval instant at 50m nonsense(
  {} 1
"#;
        let report = run_script("small", script, &SkipList::default());
        assert_eq!(report.passed(), 3, "{report}");
        assert_eq!(report.failed(), 1, "{report}");
    }

    #[test]
    fn skip_list_entries_are_honest() {
        let skips =
            SkipList::parse("# comment\nsmall:1 never passes\nsmall:5 always passes\n").unwrap();
        let script = "eval instant at 0 1\n  2\n\n\neval instant at 0 1\n  1\n";
        let report = run_script("small", script, &skips);
        assert_eq!(report.skipped(), 1);
        assert!(matches!(
            report.evals[1].result,
            EvalResult::UnexpectedPass { .. }
        ));
        assert!(SkipList::parse("no-line-number reason").is_err());
    }
}
