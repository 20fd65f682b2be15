//! `sextant check rules FILE...` and `sextant test rules TEST.yml...`, with
//! `promtool`'s output conventions and exit codes (0 success, 1 failure,
//! 3 lint failure with `--lint-fatal`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use crate::rules::file::{self, FileErrors, RuleFile};

#[derive(Debug, Args)]
pub struct CheckRulesArgs {
    /// The rules files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Linting checks: all, duplicate-rules, none.
    #[arg(long, default_value = "duplicate-rules")]
    pub lint: String,
    /// Make lint errors exit with exit code 3.
    #[arg(long)]
    pub lint_fatal: bool,
}

/// What checking some files found.
#[derive(Debug, Default, PartialEq)]
pub struct CheckOutcome {
    pub stdout: String,
    pub stderr: String,
    /// 0, 1 (a file failed) or 3 (lint failed with `--lint-fatal`).
    pub exit_code: i32,
}

/// Checks every file as `promtool check rules` does.
pub fn check_rules(args: &CheckRulesArgs) -> CheckOutcome {
    let lint_duplicates = match args.lint.as_str() {
        "all" | "duplicate-rules" => true,
        "none" => false,
        other => {
            return CheckOutcome {
                stderr: format!("invalid lint option {other:?}\n"),
                exit_code: 1,
                ..CheckOutcome::default()
            };
        }
    };
    let mut outcome = CheckOutcome::default();
    let mut failed = false;
    let mut lint_failed = false;
    for path in &args.files {
        let name = path.display().to_string();
        outcome.stdout.push_str(&format!("Checking {name}\n"));
        match file::load(path) {
            Ok(rules) => {
                let count: usize = rules.groups.iter().map(|g| g.rules.len()).sum();
                let duplicates = if lint_duplicates {
                    duplicate_rules(&rules)
                } else {
                    Vec::new()
                };
                if duplicates.is_empty() {
                    outcome
                        .stdout
                        .push_str(&format!("  SUCCESS: {count} rules found\n"));
                } else {
                    lint_failed = true;
                    outcome.stderr.push_str("  FAILED:\n");
                    outcome.stderr.push_str(&lint_message(&duplicates));
                    outcome.stderr.push('\n');
                }
            }
            Err(FileErrors(errors)) => {
                failed = true;
                outcome.stderr.push_str("  FAILED:\n");
                for error in errors {
                    outcome.stderr.push_str(&format!("{name}: {error}\n"));
                }
            }
        }
        outcome.stdout.push('\n');
    }
    outcome.exit_code = if failed {
        1
    } else if lint_failed && args.lint_fatal {
        3
    } else {
        0
    };
    outcome
}

/// A rule's name and labels, for the duplicate-rules lint.
type RuleKey = (String, BTreeMap<String, String>);

/// Rules with the same name and labels anywhere in the file, each reported
/// once.
fn duplicate_rules(rules: &RuleFile) -> Vec<RuleKey> {
    let mut keys: Vec<RuleKey> = rules
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .map(|r| (r.name().to_string(), r.labels.clone()))
        .collect();
    keys.sort();
    let mut duplicates: Vec<RuleKey> = Vec::new();
    for pair in keys.windows(2) {
        if pair[0] == pair[1] && duplicates.last() != Some(&pair[1]) {
            duplicates.push(pair[1].clone());
        }
    }
    duplicates
}

fn lint_message(duplicates: &[RuleKey]) -> String {
    let mut message = format!("lint error {} duplicate rule(s) found.\n", duplicates.len());
    for (metric, labels) in duplicates {
        message.push_str(&format!("Metric: {metric}\nLabel(s):\n"));
        for (name, value) in labels {
            message.push_str(&format!("\t{name}: {value}\n"));
        }
    }
    message.push_str("Might cause inconsistency while recording expressions");
    message
}

#[derive(Debug, Args)]
pub struct TestRulesArgs {
    /// The test files (promtool's rule unit test format).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs `sextant test rules`: prints like promtool and exits with its code
/// (0 all passed, 1 a test failed).
pub fn run_test(args: &TestRulesArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let (outcome, code) = runtime.block_on(crate::rules::unittest::run_files(&args.files));
    print!("{}", outcome.stdout);
    eprint!("{}", outcome.stderr);
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

/// Runs `sextant check rules`: prints like promtool and exits with its
/// code.
pub fn run_check(args: &CheckRulesArgs) -> anyhow::Result<()> {
    let outcome = check_rules(args);
    print!("{}", outcome.stdout);
    eprint!("{}", outcome.stderr);
    if outcome.exit_code != 0 {
        std::process::exit(outcome.exit_code);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_like_promtool() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yml");
        std::fs::write(
            &good,
            "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n",
        )
        .unwrap();
        let bad = dir.path().join("bad.yml");
        std::fs::write(
            &bad,
            "groups:\n  - name: g\n    rules:\n      - record: a\n",
        )
        .unwrap();
        let dup = dir.path().join("dup.yml");
        std::fs::write(
            &dup,
            "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n      - record: a\n        expr: up\n",
        )
        .unwrap();
        let args = |files: Vec<PathBuf>, lint_fatal| CheckRulesArgs {
            files,
            lint: "duplicate-rules".into(),
            lint_fatal,
        };
        let outcome = check_rules(&args(vec![good.clone()], false));
        assert_eq!(
            outcome.stdout,
            format!("Checking {}\n  SUCCESS: 1 rules found\n\n", good.display())
        );
        assert_eq!(outcome.exit_code, 0);
        let outcome = check_rules(&args(vec![good, bad.clone()], false));
        assert_eq!(outcome.exit_code, 1);
        assert!(outcome.stderr.contains(&format!(
            "{}: 4:9: group \"g\", rule 1, \"a\": field 'expr' must be set in rule",
            bad.display()
        )));
        let outcome = check_rules(&args(vec![dup.clone()], false));
        assert_eq!(outcome.exit_code, 0);
        assert!(
            outcome
                .stderr
                .contains("lint error 1 duplicate rule(s) found.\nMetric: a\n")
        );
        assert_eq!(check_rules(&args(vec![dup], true)).exit_code, 3);
    }
}
