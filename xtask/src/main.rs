//! `cargo xtask`: developer tasks that are not part of the product.

mod bench_move;
mod fleet;
mod world;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "xtask", about = "Developer tasks for this workspace")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build, start, inspect and stop the local test world (real API servers, controllers, Docker, OpenStack, git).
    World {
        /// up | down | status | env | build (passed to tests/world/world.sh)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Write a repository of generated, valid cluster definitions.
    Fleet {
        /// Number of clusters.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Repository directory to write (its clusters/ is replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Benchmarks; each prints its figure as the last line.
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Time `manage validate` (release build) over a generated fleet.
    Validate {
        /// Number of clusters.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Timed runs (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Move a generated fleet with clusterctl and with `manage move` (release) between the move
    /// world's servers (crates/kube-ops/tests/move-world.sh up); last line: times, ratio, requests.
    Move {
        /// Clusters per tool (about 26 objects each).
        #[arg(long, default_value_t = 500)]
        clusters: usize,
        /// Stop clusterctl after this many seconds and extrapolate its time.
        #[arg(long, default_value_t = 3600)]
        clusterctl_timeout: u64,
        /// Requests in flight per layer for manage.
        #[arg(long, default_value_t = 64)]
        parallel: usize,
        /// Time this `manage` executable instead of building one (e.g. to compare two builds).
        #[arg(long, value_name = "PATH")]
        manage: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::World { args } => world::run(&args),
        Task::Fleet { count, out } => fleet::generate(count, &out),
        Task::Bench {
            bench: Bench::Validate { count, runs },
        } => fleet::bench_validate(count, runs),
        Task::Bench {
            bench:
                Bench::Move {
                    clusters,
                    clusterctl_timeout,
                    parallel,
                    manage,
                },
        } => bench_move::run(clusters, clusterctl_timeout, parallel, manage),
    }
}
