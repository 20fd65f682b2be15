//! `sextant check metrics` against the real `promtool check metrics`: for
//! every text-format exposition sample, the same exit code (0 clean, 1
//! invalid, 3 lint problems) and, for lint problems, the same report. Under
//! `CI=true` a missing promtool fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PROMTOOL: &str = "/usr/bin/promtool";

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scraper/tests/data/exposition-samples")
}

/// The text-format sample files, from SOURCES.md.
fn text_samples() -> Vec<PathBuf> {
    let sources = std::fs::read_to_string(samples_dir().join("SOURCES.md")).unwrap();
    sources
        .lines()
        .filter(|l| l.contains("| 0.0.4 |"))
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .map(|f| samples_dir().join(f))
        .collect()
}

/// Exit code and stderr of a command reading `file` on stdin.
fn run(command: &mut Command, file: &Path) -> (i32, String) {
    let output = command
        .stdin(std::fs::File::open(file).unwrap())
        .stdout(Stdio::null())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_metrics_agrees_with_promtool_on_every_text_sample() {
    if !Path::new(PROMTOOL).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{PROMTOOL} is required under CI=true"
        );
        eprintln!("skipping: {PROMTOOL} is not installed");
        return;
    }
    let files = text_samples();
    assert!(files.len() > 90, "{} text samples", files.len());
    let mut mismatches = Vec::new();
    let mut codes = [0usize; 4];
    for file in &files {
        let (want_code, want) = run(Command::new(PROMTOOL).args(["check", "metrics"]), file);
        let (code, got) = run(
            Command::new(env!("CARGO_BIN_EXE_sextant")).args(["check", "metrics", "-"]),
            file,
        );
        codes[usize::try_from(code).unwrap_or(2).min(3)] += 1;
        let same = code == want_code && (code != 3 || got == want);
        if !same {
            mismatches.push(format!(
                "{}: promtool {want_code} {want:?}, sextant {code} {got:?}",
                file.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // All three outcomes occur, so the comparison means something.
    assert!(codes[0] > 0 && codes[1] > 0 && codes[3] > 0, "{codes:?}");
}

#[test]
fn check_metrics_reads_a_file_and_reports_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.prom");
    std::fs::write(&file, "ok 1\nbad{x=y} 2\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["check", "metrics"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2: expected a label value in double quotes"),
        "{stderr}"
    );
}
