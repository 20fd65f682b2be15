//! The `sextant` binary: command line parsing only; the work is in `sextant::*`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = sextant::cli::Cli::parse();
    sextant::cli::run(cli)
}
