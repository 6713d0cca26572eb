//! The command line: verbs, global flags and their help.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Exit codes, documented in `manage --help` and the README.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A cluster definition is invalid (diagnostics printed).
    pub const INVALID: u8 = 1;
    /// Bad command-line usage.
    pub const USAGE: u8 = 2;
    /// The environment is not as needed: no repository, unreadable or unwritable files.
    pub const ENVIRONMENT: u8 = 3;
}

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  a cluster definition is invalid (every problem is printed with file:line:column)
  2  bad command-line usage
  3  environment problem (repository not found, file unreadable or unwritable)

Cluster definitions live in clusters/<name>/cluster.yaml, layered over clusters/defaults.yaml.";

/// Bootstrap and run Kubernetes clusters on OpenStack the GitOps way.
#[derive(Debug, Parser)]
#[command(name = "manage", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Repository holding clusters/ (default: the git work tree around the current directory).
    #[arg(long, global = true, env = "MANAGE_REPO", value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Output format for commands that print data.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people (`yaml` is accepted as a synonym: `manage seal --output yaml`).
    #[value(alias = "yaml")]
    Text,
    /// For programs: one JSON document on stdout.
    Json,
}

/// The verbs. Later verbs (bootstrap, move, seal, cleanup, …) appear here once they exist.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create clusters/NAME/ from clusters/example/ and make sure git ignores its credentials.
    Init {
        /// Name of the new cluster (lower-case letters, digits and '-').
        name: String,
    },
    /// Check cluster definitions offline: schema, layering, values (all clusters when none named).
    Validate {
        /// Clusters to check (directory names under clusters/).
        names: Vec<String>,
        /// Also check the rendered objects against the CRD schemas in this directory (searched
        /// recursively; e.g. the CRDs of the management cluster's providers).
        #[arg(long, env = "MANAGE_CRDS_DIR", value_name = "DIR")]
        crds: Option<PathBuf>,
    },
    /// Print the Cluster API objects of a cluster as YAML (or write one file per object).
    Render {
        /// The cluster.
        name: String,
        /// Write one file per object into this directory instead of printing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// API version of the CAPO objects: v1beta2 (current) or v1beta1 (CAPO v0.14 and older).
        #[arg(long, default_value = "v1beta2", value_name = "VERSION")]
        capo_api_version: String,
    },
    /// Move Cluster API objects to another management cluster (clusterctl move semantics,
    /// resumable: rerun the same command after an interruption), or back them up / restore them.
    Move(crate::cmd::move_::MoveArgs),
    /// The bootstrap cluster on the local Docker, kind-compatible: create (or adopt), delete, list,
    /// kubeconfig.
    Kind(crate::cmd::kind::KindArgs),
    /// The cluster's OpenStack side: pre-flight check, preparation, application credentials,
    /// cleanup sweep.
    Cloud(crate::cmd::cloud::CloudArgs),
    /// Seal Secrets into SealedSecrets for the cluster's sealed-secrets controller (kubeseal
    /// compatible; --output json for JSON, YAML otherwise).
    Seal(crate::cmd::seal::SealArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}
