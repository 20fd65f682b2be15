//! `sextant promqltest FILE...`: runs promqltest scripts (the PromQL
//! conformance test language) against the engine and reports, per file, the
//! evals passed, failed and skipped.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tsdb::promql::promqltest::{SkipList, run_file};

#[derive(Debug, Args)]
pub struct PromqltestArgs {
    /// Script files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Evals to count as skipped: lines of `<file>:<line> <reason>`, with
    /// `<file>` as given on the command line.
    #[arg(long)]
    pub skip_list: Option<PathBuf>,
}

/// Prints each file's failures and counts, then `N passed, N failed`.
///
/// # Errors
/// An unreadable file or skip list, or any failed eval (for a non-zero exit).
pub fn run(args: &PromqltestArgs) -> anyhow::Result<()> {
    let skips = match &args.skip_list {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading skip list {}", path.display()))?;
            SkipList::parse(&text).map_err(anyhow::Error::msg)?
        }
        None => SkipList::default(),
    };
    let (mut passed, mut failed) = (0, 0);
    for path in &args.files {
        let name = path.display().to_string();
        let report = run_file(path, &name, &skips).with_context(|| format!("reading {name}"))?;
        println!("{report}");
        passed += report.passed();
        failed += report.failed();
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        anyhow::bail!("{failed} evals failed");
    }
    Ok(())
}
