#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sextant check rules` against `promtool check rules` as the oracle: every
//! file of `tests/data/rules/check/` must get the same verdict (exit code)
//! from both, and the file name says which verdict that is (`valid_*`,
//! `invalid_*`), so a promtool that changes its mind is noticed too.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROMTOOL: &str = "/usr/bin/promtool";

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules/check");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

fn exit_code(program: &str, args: &[&str], file: &Path) -> (i32, String) {
    let output = Command::new(program)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn promtool_available() -> bool {
    if Path::new(PROMTOOL).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{PROMTOOL} is required under CI=true (Debian package prometheus)"
    );
    eprintln!("skipping: {PROMTOOL} not installed");
    false
}

#[test]
fn check_rules_agrees_with_promtool_on_the_corpus() {
    let files = corpus();
    assert!(files.len() >= 30, "the corpus has {} files", files.len());
    let sextant = env!("CARGO_BIN_EXE_sextant");
    let with_promtool = promtool_available();
    let (mut agree, mut disagree) = (0, Vec::new());
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let expected = if name.starts_with("valid_") { 0 } else { 1 };
        let (ours, our_text) = exit_code(sextant, &["check", "rules"], file);
        if ours != expected {
            disagree.push(format!(
                "{name}: sextant exit {ours}, want {expected}\n{our_text}"
            ));
            continue;
        }
        if with_promtool {
            let (theirs, their_text) = exit_code(PROMTOOL, &["check", "rules"], file);
            if theirs != ours {
                disagree.push(format!(
                    "{name}: promtool exit {theirs}, sextant exit {ours}\npromtool: {their_text}\nsextant: {our_text}"
                ));
                continue;
            }
        }
        agree += 1;
    }
    println!(
        "check rules corpus: {agree} agree, {} disagree",
        disagree.len()
    );
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
}
