//! `manage`: the command-line interface. It parses arguments, calls the library crates and prints;
//! the work itself lives in those crates.

mod cli;
mod cmd;
mod repo;

use clap::Parser;
use cli::{Cli, Command, exit};
use std::process::ExitCode;

/// A failure that decides the exit code; the message is already printed or is printed by `main`.
#[derive(Debug)]
pub enum Failure {
    /// Definitions are invalid; diagnostics were printed.
    Invalid,
    /// Something around us is wrong (files, repository).
    Environment(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Environment(e)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" to clap too; they print and succeed.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.verbose);
    let result = run(&cli);
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(Failure::Invalid) => ExitCode::from(exit::INVALID),
        Err(Failure::Environment(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::ENVIRONMENT)
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    // Only the verbs that work on cluster definitions need the repository.
    let repo = || -> Result<std::path::PathBuf, Failure> {
        let repo = repo::locate(cli.repo.as_deref())?;
        tracing::debug!(repo = %repo.display(), "repository");
        Ok(repo)
    };
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "manage", &mut std::io::stdout());
            Ok(())
        }
        Command::Move(args) => cmd::move_::run(args, cli.output),
        Command::Seal(args) => cmd::seal::run(args, cli.output),
        Command::Kind(args) => cmd::kind::run(args, cli.output),
        Command::Cloud(args) => cmd::cloud::run(&repo()?, args, cli.output),
        Command::Init { name } => cmd::init::run(&repo()?, name),
        Command::Validate { names, crds } => {
            cmd::validate::run(&repo()?, names, crds.as_deref(), cli.output)
        }
        Command::Render {
            name,
            out,
            capo_api_version,
        } => cmd::render::run(&repo()?, name, out.as_deref(), capo_api_version, cli.output),
    }
}

/// Logs go to stderr and are quiet by default; user-facing output is printed separately on stdout.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MANAGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
