#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sextant test rules` against `promtool test rules` as the oracle: every
//! `pass_*.yml` of `tests/data/rules/unittest/` must pass and every
//! `fail_*.yml` fail under both, with promtool's exit codes and headings.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROMTOOL: &str = "/usr/bin/promtool";

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules/unittest");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            (name.starts_with("pass_") || name.starts_with("fail_")) && name.ends_with(".yml")
        })
        .collect();
    files.sort();
    files
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(program: &str, file: &Path) -> Run {
    let output = Command::new(program)
        .args(["test", "rules"])
        .arg(file.file_name().unwrap())
        .current_dir(file.parent().unwrap())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn promtool_available() -> bool {
    if Path::new(PROMTOOL).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{PROMTOOL} is required under CI=true (Debian package prometheus)"
    );
    eprintln!("skipping the promtool side: {PROMTOOL} not installed");
    false
}

#[test]
fn test_rules_agrees_with_promtool() {
    let files = corpus();
    assert!(files.len() >= 10, "the corpus has {} files", files.len());
    let with_promtool = promtool_available();
    let mut problems = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let expected = i32::from(name.starts_with("fail_"));
        let ours = run(env!("CARGO_BIN_EXE_sextant"), file);
        let heading = format!("Unit Testing:  {name}\n");
        if ours.code != expected || !ours.stdout.starts_with(&heading) {
            problems.push(format!(
                "sextant on {name}: exit {} (want {expected})\n{}{}",
                ours.code, ours.stdout, ours.stderr
            ));
        }
        let verdict = if expected == 0 {
            ours.stdout.contains("  SUCCESS\n")
        } else {
            ours.stderr.contains("  FAILED:\n")
        };
        if !verdict {
            problems.push(format!(
                "sextant on {name}: no verdict line\n{}{}",
                ours.stdout, ours.stderr
            ));
        }
        if with_promtool {
            let theirs = run(PROMTOOL, file);
            if theirs.code != expected {
                problems.push(format!(
                    "promtool on {name}: exit {} (want {expected})\n{}{}",
                    theirs.code, theirs.stdout, theirs.stderr
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Failures are worded as promtool words them.
#[test]
fn failure_messages_match_promtool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules/unittest");
    for name in [
        "fail_promql_value.yml",
        "fail_wrong_labels.yml",
        "fail_too_early.yml",
    ] {
        let ours = run(env!("CARGO_BIN_EXE_sextant"), &dir.join(name));
        let expected = std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap();
        assert_eq!(ours.stderr, expected, "{name}");
    }
}
