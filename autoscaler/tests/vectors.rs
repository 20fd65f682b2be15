#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Replays the shared HPA and VPA reference vectors (copied from `shared/vectors/` into
//! `tests/vectors/`) through the pure `hpa` and `vpa` functions. Every vector must pass.

use std::path::Path;

use autoscaler::vectors::{Verdict, run_file};

#[track_caller]
fn check(file: &str, minimum_vectors: usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(file);
    let outcomes = run_file(&path).unwrap();
    assert!(
        outcomes.len() >= minimum_vectors,
        "{file}: {} vectors, expected at least {minimum_vectors}",
        outcomes.len()
    );
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| o.verdict != Verdict::Pass)
        .map(ToString::to_string)
        .collect();
    assert!(failures.is_empty(), "{file}:\n{}", failures.join("\n"));
}

#[test]
fn hpa_vectors() {
    check("hpa-vectors.json", 22);
}

#[test]
fn vpa_vectors() {
    check("vpa-vectors.json", 16);
}
