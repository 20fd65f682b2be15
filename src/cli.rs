//! Command line: `sextant <command>`.

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
    }
}
