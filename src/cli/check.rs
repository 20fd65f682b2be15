//! `sextant check ...`: validate files as `promtool check ...` does.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::config::Config;

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(subcommand)]
    pub command: CheckCommand,
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Check configuration files (the Prometheus format Sextant reads).
    Config {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate and lint an exposition (text format, or OpenMetrics when it
    /// ends with `# EOF`) like `promtool check metrics`: problems go to
    /// stderr and exit with code 3.
    Metrics {
        /// The exposition file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
    /// Check rules files as `promtool check rules` does.
    Rules(super::rules::CheckRulesArgs),
}

/// Runs a check, printing one verdict per file.
///
/// # Errors
/// When any file fails its check.
pub fn run(args: CheckArgs) -> anyhow::Result<()> {
    match args.command {
        CheckCommand::Config { files } => {
            print!("{}", check_config_files(&files)?);
            Ok(())
        }
        CheckCommand::Metrics { file } => check_metrics(file),
        CheckCommand::Rules(args) => super::rules::run_check(&args),
    }
}

/// Exit code of `check metrics` for lint problems, as promtool's.
const LINT_PROBLEMS_EXIT_CODE: i32 = 3;

fn check_metrics(file: Option<PathBuf>) -> anyhow::Result<()> {
    let mut body = Vec::new();
    match file {
        Some(path) if path.as_os_str() != "-" => {
            body = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading standard input")?;
        }
    }
    match scraper::exposition::lint::check_detected(&body) {
        Ok((_, problems)) if problems.is_empty() => Ok(()),
        Ok((_, problems)) => {
            for problem in &problems {
                eprintln!("{} {}", problem.metric, problem.text);
            }
            std::process::exit(LINT_PROBLEMS_EXIT_CODE);
        }
        Err(error) => bail!("error while linting: {error}"),
    }
}

/// Checks each config file (and the scrape config files it names); returns
/// the report, or an error holding the report when a file failed.
pub fn check_config_files(files: &[PathBuf]) -> anyhow::Result<String> {
    let mut report = String::new();
    let mut failed = 0;
    for file in files {
        report.push_str(&format!("Checking {}\n", file.display()));
        match Config::load_file(file)
            .and_then(|config| config.all_scrape_configs().map(|all| (config, all)))
        {
            Ok((config, scrape_configs)) => {
                report.push_str(&format!(
                    "  SUCCESS: {} is valid prometheus config file syntax ({} scrape configs)\n",
                    file.display(),
                    scrape_configs.len()
                ));
                for warning in config.warnings() {
                    report.push_str(&format!("  WARNING: {warning}\n"));
                }
            }
            Err(err) => {
                failed += 1;
                report.push_str(&format!("  FAILED: {err:#}\n"));
            }
        }
        report.push('\n');
    }
    if failed > 0 {
        bail!(
            "{report}{failed} of {} config files failed the check",
            files.len()
        );
    }
    Ok(report)
}
