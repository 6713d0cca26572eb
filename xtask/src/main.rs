//! `cargo xtask`: developer tasks that are not part of the product.

mod world;

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::World { args } => world::run(&args),
    }
}
