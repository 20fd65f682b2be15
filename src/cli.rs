//! Command line: `sextant <command>`.

pub mod check;
pub mod query;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sextant",
    version,
    about = "Metrics monitoring and Kubernetes autoscaling recommendations"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version and exit.
    Version,
    /// Query any Prometheus-compatible server.
    Query(query::QueryArgs),
    /// Validate files without starting anything.
    Check(check::CheckArgs),
}

/// Runs one command.
///
/// # Errors
/// Whatever the command fails with, for `main` to print.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("sextant {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Check(args) => check::run(args),
        Command::Query(args) => {
            print!("{}", runtime()?.block_on(query::run(args))?);
            Ok(())
        }
    }
}

/// The tokio runtime for commands that do IO.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
