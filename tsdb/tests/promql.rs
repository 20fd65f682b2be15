#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Runs the upstream PromQL conformance corpus (`promql/upstream/`, copied
//! from Prometheus with its license and `SOURCE.md`) and our own cases
//! (`promql/local/`) through the promqltest runner.
//!
//! Evals we cannot pass yet are listed in `promql/skip.txt` with a reason.
//! The test fails when an eval that is not listed fails, when a listed eval
//! passes (the list must shrink with every fix), and when a listed eval does
//! not exist.

use std::path::{Path, PathBuf};

use tsdb::promql::promqltest::{self, FileReport, SkipList};

fn scripts(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    files
}

#[test]
fn promql_conformance() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql");
    let skips = SkipList::parse(&std::fs::read_to_string(root.join("skip.txt")).unwrap()).unwrap();
    let mut reports: Vec<FileReport> = Vec::new();
    for dir in ["upstream", "local"] {
        for path in scripts(&root.join(dir)) {
            let name = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
            reports.push(promqltest::run_file(&path, &name, &skips).unwrap());
        }
    }
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut failures = String::new();
    for report in &reports {
        passed += report.passed();
        failed += report.failed();
        skipped += report.skipped();
        println!(
            "{}: {} passed, {} failed, {} skipped",
            report.name,
            report.passed(),
            report.failed(),
            report.skipped()
        );
        if report.failed() > 0 {
            failures.push_str(&format!("{report}\n"));
        }
    }
    println!("total: {passed} passed, {failed} failed, {skipped} skipped");
    let unused = skips.unused(&reports);
    assert!(
        unused.is_empty(),
        "skip list entries that match no eval: {unused:?}"
    );
    assert!(
        failed == 0,
        "{failures}total: {passed} passed, {failed} failed, {skipped} skipped"
    );
}
