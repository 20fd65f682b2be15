//! Rule unit tests in promtool's format (`promtool test rules`): input
//! series in the expanding notation, the rules files evaluated every
//! `evaluation_interval` from time 0, firing alerts compared at each
//! `alert_rule_test` eval time and PromQL results at each
//! `promql_expr_test` eval time, with promtool's messages.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::Deserialize;
use tsdb::clock::ManualClock;
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Sample};
use tsdb::promql::QueryBackend;
use tsdb::promql::promqltest::{parse_series_values, test_engine};
use tsdb::storage::{Appendable, Queryable};

use super::alerting::{AlertState, ms};
use super::group::{EvalContext, EvalOptions, Group, Rule};
use super::manager::load_groups;
use super::metrics::RuleMetrics;
use super::recording::vector_of;
use super::template::{go_duration_string, go_quote};
use crate::backend::LocalBackend;
use crate::float;
use crate::metrics::Registry;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default, with = "scraper::config::duration_opt")]
    evaluation_interval: Option<Duration>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default, with = "scraper::config::duration_opt")]
    interval: Option<Duration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<PromqlTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(default, with = "scraper::config::duration_opt")]
    eval_time: Option<Duration>,
    #[serde(default)]
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromqlTest {
    expr: String,
    #[serde(default, with = "scraper::config::duration_opt")]
    eval_time: Option<Duration>,
    #[serde(default)]
    exp_samples: Vec<ExpectedSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedSample {
    #[serde(default)]
    labels: String,
    value: f64,
}

/// What testing one file printed, and whether it failed.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub failed: bool,
}

/// Runs every test file as `promtool test rules` does: 0 when all pass, 1
/// otherwise.
pub async fn run_files(files: &[PathBuf]) -> (Outcome, i32) {
    let mut all = Outcome::default();
    for file in files {
        let outcome = run_file(file).await;
        all.stdout.push_str(&outcome.stdout);
        all.stderr.push_str(&outcome.stderr);
        all.failed |= outcome.failed;
    }
    let code = i32::from(all.failed);
    (all, code)
}

/// Tests one file.
pub async fn run_file(path: &Path) -> Outcome {
    let mut outcome = Outcome {
        stdout: format!("Unit Testing:  {}\n", path.display()),
        ..Outcome::default()
    };
    let errors = test_file(path, &mut outcome.stderr).await;
    if errors.is_empty() {
        outcome.stdout.push_str("  SUCCESS\n");
    } else {
        outcome.failed = true;
        outcome.stderr.push_str("  FAILED:\n");
        for error in errors {
            outcome.stderr.push_str(&error);
            outcome.stderr.push('\n');
            outcome.stdout.push('\n');
        }
    }
    outcome.stdout.push('\n');
    outcome
}

async fn test_file(path: &Path, warnings: &mut String) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => return vec![format!("open {}: {error}", path.display())],
    };
    let file: TestFile = match serde_yaml::from_str(&text) {
        Ok(file) => file,
        Err(error) => return vec![error.to_string()],
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rule_files = Vec::new();
    for pattern in &file.rule_files {
        let joined = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let joined = joined.display().to_string();
        match scraper::discovery::file::expand_glob(&joined) {
            Ok(found) if found.is_empty() => {
                warnings.push_str(&format!("  WARNING: no file match pattern {joined}\n"));
            }
            Ok(found) => rule_files.extend(found.into_iter().map(|p| p.display().to_string())),
            Err(error) => return vec![error.to_string()],
        }
    }
    let interval = file
        .evaluation_interval
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(60));
    let mut order = HashMap::new();
    for (i, name) in file.group_eval_order.iter().enumerate() {
        if order.insert(name.clone(), i).is_some() {
            return vec![format!("group name repeated in evaluation order: {name}")];
        }
    }
    let mut errors = Vec::new();
    for test in &file.tests {
        errors.extend(test.run(interval, &order, &rule_files).await);
    }
    errors
}

/// Alerts as promtool prints them: sorted label and annotation sets.
type LabelsAndAnnotations = Vec<(Labels, Labels)>;

fn alerts_string(alerts: &LabelsAndAnnotations) -> String {
    if alerts.is_empty() {
        return "[]".into();
    }
    let mut out = String::from("[");
    for (i, (labels, annotations)) in alerts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let one = format!("\nLabels:{labels}\nAnnotations:{annotations}");
        out.push_str(&format!("\n{i}:{}", indent_lines(&one, "  ")));
    }
    out.push_str("\n]");
    out
}

/// Prefixes every line but the first with `indent`.
fn indent_lines(lines: &str, indent: &str) -> String {
    lines
        .split('\n')
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

fn map_labels(map: &BTreeMap<String, String>) -> Labels {
    Labels::from_pairs(&map.iter().collect::<Vec<_>>())
}

fn samples_string(samples: &[(Labels, f64)]) -> String {
    if samples.is_empty() {
        return "nil".into();
    }
    samples
        .iter()
        .map(|(labels, v)| format!("{labels} {}", float::format_e(*v).to_uppercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl TestGroup {
    async fn run(
        &self,
        interval: Duration,
        order: &HashMap<String, usize>,
        rule_files: &[String],
    ) -> Vec<String> {
        let series_interval = self.interval.filter(|d| !d.is_zero()).unwrap_or(interval);
        // Input samples in time order, appended as evaluation reaches them.
        let mut input: Vec<(Labels, Sample)> = Vec::new();
        for series in &self.input_series {
            match parse_series_values(&format!("{} {}", series.series, series.values)) {
                Ok((labels, values)) => {
                    for (i, v) in values.into_iter().enumerate() {
                        if let Some(v) = v {
                            let t = (i as i64) * ms(series_interval);
                            input.push((labels.clone(), Sample::new(t, v)));
                        }
                    }
                }
                Err(error) => return vec![error],
            }
        }
        input.sort_by_key(|(_, s)| s.t);
        let mut groups = match load_groups(rule_files, series_interval, true) {
            Ok(groups) => groups,
            Err(error) => return error.lines().map(str::to_string).collect(),
        };
        groups.sort_by_key(|g| order.get(&g.name).copied().unwrap_or(0));

        let head = Arc::new(Head::new(HeadOptions::default()));
        let registry = Registry::new();
        let engine_options = test_engine().options().clone();
        let backend = Arc::new(LocalBackend::new(
            Arc::clone(&head) as Arc<dyn Queryable>,
            tsdb::promql::EngineOptions {
                default_subquery_step: interval,
                ..engine_options
            },
            4,
            &registry,
        ));
        let ctx = EvalContext {
            backend: Arc::clone(&backend),
            appendable: Arc::clone(&head) as Arc<dyn Appendable>,
            queryable: Arc::clone(&head) as Arc<dyn Queryable>,
            clock: Arc::new(ManualClock::new(0)),
            options: RwLock::new(EvalOptions {
                external_labels: self.external_labels.clone(),
                external_url: self.external_url.clone(),
                ..EvalOptions::default()
            }),
            notify: None,
            metrics: RuleMetrics::register(&registry),
        };

        let mut errors = Vec::new();
        for test in &self.alert_rule_test {
            if test.alertname.is_empty() {
                let in_group = if self.name.is_empty() {
                    String::new()
                } else {
                    format!(" (in TestGroup {})", self.name)
                };
                return vec![format!(
                    "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                    format_model_duration(test.eval_time)
                )];
            }
        }
        let mut eval_times: Vec<i64> = self
            .alert_rule_test
            .iter()
            .map(|t| ms(t.eval_time.unwrap_or_default()))
            .collect();
        eval_times.sort_unstable();
        eval_times.dedup();
        let max_t = self
            .alert_rule_test
            .iter()
            .map(|t| t.eval_time)
            .chain(self.promql_expr_test.iter().map(|t| t.eval_time))
            .map(|t| ms(t.unwrap_or_default()))
            .max()
            .unwrap_or(0);
        let step = ms(interval).max(1);
        let mut next_input = 0;
        let mut next_check = 0;
        let mut ts = 0;
        while ts <= max_t {
            let upto = input[next_input..].partition_point(|(_, s)| s.t <= ts) + next_input;
            if upto > next_input {
                let mut appender = head.appender();
                for (labels, sample) in &input[next_input..upto] {
                    if let Err(error) = appender.append(None, labels, *sample) {
                        errors.push(error.to_string());
                    }
                }
                if let Err(error) = appender.commit() {
                    errors.push(error.to_string());
                }
                next_input = upto;
            }
            let mut eval_errors = Vec::new();
            for group in &mut groups {
                group.eval(ts, &ctx).await;
                for rule in group.status().rules {
                    if let Some(error) = rule.last_error {
                        eval_errors.push(format!(
                            "    rule: {}, time: {}, err: {error}",
                            rule.name,
                            go_duration_string(ts.saturating_mul(1_000_000))
                        ));
                    }
                }
            }
            if !eval_errors.is_empty() {
                errors.extend(eval_errors);
                return errors;
            }
            while next_check < eval_times.len()
                && ts <= eval_times[next_check]
                && eval_times[next_check] < ts + step
            {
                let t = eval_times[next_check];
                errors.extend(self.check_alerts(t, &groups));
                next_check += 1;
            }
            ts += step;
        }

        for test in &self.promql_expr_test {
            let at = ms(test.eval_time.unwrap_or_default());
            let time = format_model_duration(test.eval_time);
            let got = match backend.instant(&test.expr, at).await {
                Ok(result) => vector_of(result.value),
                Err(error) => Err(error.to_string()),
            };
            let mut got = match got {
                Ok(got) => got,
                Err(error) => {
                    errors.push(format!(
                        "    expr: {}, time: {time}, err: {error}",
                        go_quote(&test.expr)
                    ));
                    continue;
                }
            };
            let mut expected = Vec::new();
            let mut bad = None;
            for sample in &test.exp_samples {
                match parse_series_values(&sample.labels) {
                    Ok((labels, _)) => expected.push((labels, sample.value)),
                    Err(error) => {
                        bad = Some(format!("labels {}: {error}", go_quote(&sample.labels)));
                        break;
                    }
                }
            }
            if let Some(error) = bad {
                errors.push(format!(
                    "    expr: {}, time: {time}, err: {error}",
                    go_quote(&test.expr)
                ));
                continue;
            }
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            got.sort_by(|a, b| a.0.cmp(&b.0));
            let same = expected.len() == got.len()
                && expected
                    .iter()
                    .zip(&got)
                    .all(|(e, g)| e.0 == g.0 && e.1 == g.1);
            if !same {
                errors.push(format!(
                    "    expr: {}, time: {time},\n        exp: {}\n        got: {}",
                    go_quote(&test.expr),
                    samples_string(&expected),
                    samples_string(&got)
                ));
            }
        }
        errors
    }

    /// Compares the firing alerts at eval time `t` with the tests for it.
    fn check_alerts(&self, t: i64, groups: &[Group]) -> Vec<String> {
        let mut errors = Vec::new();
        for test in &self.alert_rule_test {
            if ms(test.eval_time.unwrap_or_default()) != t {
                continue;
            }
            let mut got: LabelsAndAnnotations = Vec::new();
            for group in groups {
                for rule in group.rules() {
                    let Rule::Alerting(rule) = rule else {
                        continue;
                    };
                    if rule.name != test.alertname {
                        continue;
                    }
                    got.extend(
                        rule.active_alerts()
                            .filter(|a| a.state == AlertState::Firing)
                            .map(|a| (a.labels.clone(), map_labels(&a.annotations))),
                    );
                }
            }
            let mut expected: LabelsAndAnnotations = test
                .exp_alerts
                .iter()
                .map(|a| {
                    let mut labels = a.exp_labels.clone();
                    labels.insert("alertname".into(), test.alertname.clone());
                    (map_labels(&labels), map_labels(&a.exp_annotations))
                })
                .collect();
            got.sort();
            expected.sort();
            if got != expected {
                let name = if self.name.is_empty() {
                    String::new()
                } else {
                    format!("    name: {},\n", self.name)
                };
                errors.push(format!(
                    "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                    test.alertname,
                    format_model_duration(test.eval_time),
                    indent_lines(&alerts_string(&expected), "            "),
                    indent_lines(&alerts_string(&got), "            ")
                ));
            }
        }
        errors
    }
}

/// Prometheus's duration notation (`model.Duration`), `0s` for zero.
fn format_model_duration(d: Option<Duration>) -> String {
    scraper::config::format_duration(d.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_lists_print_like_promtool() {
        let alerts = vec![(
            Labels::from_pairs(&[("alertname", "A"), ("job", "x")]),
            Labels::from_pairs(&[("summary", "s")]),
        )];
        assert_eq!(
            alerts_string(&alerts),
            "[\n0:\n  Labels:{alertname=\"A\", job=\"x\"}\n  Annotations:{summary=\"s\"}\n]"
        );
        assert_eq!(alerts_string(&Vec::new()), "[]");
        assert_eq!(
            samples_string(&[(Labels::from_pairs(&[("a", "b")]), 1.5)]),
            "{a=\"b\"} 1.5E+00"
        );
    }
}
