//! Command line: `sextant <command>`.

pub mod backtest;
pub mod check;
pub mod import;
pub mod promqltest;
pub mod query;
pub mod recommend;
pub mod render;
pub mod rules;
pub mod serve;

use std::path::PathBuf;

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
    /// Run the server: scrape, store, answer PromQL over the HTTP API.
    Serve(serve::ServeArgs),
    /// Query any Prometheus-compatible server.
    Query(query::QueryArgs),
    /// Validate files without starting anything.
    Check(check::CheckArgs),
    /// Run HPA/VPA reference vector files through the recommender and report each
    /// vector's pass or fail with the differing numbers.
    Vectors {
        /// JSON vector files (the schema of shared/vectors/*.json).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run promqltest scripts (the PromQL conformance test language).
    Promqltest(promqltest::PromqltestArgs),
    /// Draw a range query as a PNG or SVG chart.
    Render(render::RenderArgs),
    /// Backfill samples from a file into blocks of a data directory.
    Import(import::ImportArgs),
    /// Run unit tests.
    Test(TestArgs),
    /// HPA replicas and VPA requests for workloads, from a data directory or any
    /// Prometheus-compatible server.
    Recommend(recommend::RecommendArgs),
    /// Replay the HPA or VPA over stored history.
    #[command(subcommand)]
    Backtest(backtest::BacktestKind),
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    #[command(subcommand)]
    pub command: TestCommand,
}

#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Unit tests for rules, in promtool's test file format.
    Rules(rules::TestRulesArgs),
}

/// Runs one command.
///
/// # Errors
/// Whatever the command fails with, for `main` to print.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let options = args.into_options()?;
            runtime()?.block_on(async {
                if let Some(settings) = options.agent {
                    let agent = crate::server::agent::AgentServer::start(options, settings).await?;
                    return agent.run_until(std::future::pending()).await;
                }
                let server = crate::server::Server::start(options).await?;
                server.run_until(std::future::pending()).await
            })
        }
        Command::Version => {
            println!("sextant {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Check(args) => check::run(args),
        Command::Query(args) => {
            print!("{}", runtime()?.block_on(query::run(args))?);
            Ok(())
        }
        Command::Vectors { files } => run_vectors(&files),
        Command::Promqltest(args) => promqltest::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Render(args) => {
            print!("{}", runtime()?.block_on(render::run(args))?);
            Ok(())
        }
        Command::Test(TestArgs {
            command: TestCommand::Rules(args),
        }) => rules::run_test(&args, &runtime()?),
        Command::Recommend(args) => {
            print!("{}", runtime()?.block_on(recommend::run(args))?);
            Ok(())
        }
        Command::Backtest(kind) => {
            print!("{}", runtime()?.block_on(backtest::run(kind))?);
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

/// `sextant vectors FILE...`: one line per vector, a summary line, and an error (so a
/// non-zero exit) when any vector failed.
fn run_vectors(files: &[PathBuf]) -> anyhow::Result<()> {
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in files {
        let outcomes = autoscaler::vectors::run_file(file)?;
        for outcome in outcomes {
            println!("{outcome}");
            if outcome.passed() {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        anyhow::bail!("{failed} vector(s) failed");
    }
    Ok(())
}
