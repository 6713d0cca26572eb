//! `manage move`: move Cluster API objects between management clusters (clusterctl semantics,
//! journaled, parallel), back them up to a directory or restore them from one.

use std::path::PathBuf;

use anyhow::{Context, bail};
use kube_ops::{Cluster, ClusterRef, MoveOptions};

use crate::Failure;
use crate::cli::Output;

/// Arguments of `manage move`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("dir").args(["to_directory", "from_directory"])))]
pub struct MoveArgs {
    /// Source cluster: KUBECONFIG[:CONTEXT] (not with --from-directory).
    #[arg(long, value_name = "KUBECONFIG[:CONTEXT]")]
    pub from: Option<String>,
    /// Target cluster: KUBECONFIG[:CONTEXT] (needed unless --dry-run or --to-directory).
    #[arg(long, value_name = "KUBECONFIG[:CONTEXT]")]
    pub to: Option<String>,
    /// Namespace to move (default: the source context's namespace, else "default").
    #[arg(short, long, value_name = "NS", conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Move every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Print the plan (objects, order, layer sizes) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Back the objects up into this existing directory instead of moving (clusterctl's layout).
    #[arg(long, value_name = "DIR")]
    pub to_directory: Option<PathBuf>,
    /// Restore a backup directory (ours or clusterctl's) onto --to.
    #[arg(long, value_name = "DIR")]
    pub from_directory: Option<PathBuf>,
    /// Where the move journal lives (rerun the same command after an interruption to resume).
    #[arg(long, value_name = "DIR", env = "MANAGE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Requests in flight per layer.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub parallel: usize,
}

fn default_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("manage/move")
}

/// Runs `manage move`.
pub fn run(args: &MoveArgs, output: Output) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(args, output)).map_err(Failure::from)
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn run_async(args: &MoveArgs, output: Output) -> anyhow::Result<()> {
    if let Some(dir) = &args.from_directory {
        let Some(to) = &args.to else {
            bail!("--from-directory needs --to KUBECONFIG[:CONTEXT]");
        };
        let target = Cluster::connect(&ClusterRef::parse(to), "target").await?;
        let (plan, report) = kube_ops::backup::from_directory(&target, dir, args.parallel).await?;
        match output {
            Output::Json => print_json(
                &serde_json::json!({"objects": plan.len(), "report": report, "targetRequests": target.stats()}),
            )?,
            Output::Text => println!(
                "restored {} object(s) from {} ({} created, {} already there)",
                plan.len(),
                dir.display(),
                report.created,
                plan.len().saturating_sub(report.created)
            ),
        }
        return Ok(());
    }
    let Some(from) = &args.from else {
        bail!("--from KUBECONFIG[:CONTEXT] is required (or --from-directory DIR)");
    };
    let source = Cluster::connect(&ClusterRef::parse(from), "source").await?;
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(
            args.namespace
                .clone()
                .unwrap_or_else(|| source.default_namespace.clone()),
        )
    };
    if args.dry_run {
        let plan = kube_ops::dry_run(&source, namespace.as_deref()).await?;
        match output {
            Output::Json => print_json(&serde_json::json!({
                "objects": plan.len(),
                "layers": plan.layers.iter().map(|l| l.iter().map(|i| plan.nodes[*i].id.clone()).collect::<Vec<_>>()).collect::<Vec<_>>(),
                "flux": plan.flux,
            }))?,
            Output::Text => print!("{}", plan.describe()),
        }
        return Ok(());
    }
    if let Some(dir) = &args.to_directory {
        let plan =
            kube_ops::backup::to_directory(&source, namespace.as_deref(), dir, args.parallel)
                .await?;
        match output {
            Output::Json => {
                print_json(&serde_json::json!({"objects": plan.len(), "directory": dir}))?
            }
            Output::Text => println!("wrote {} object(s) to {}", plan.len(), dir.display()),
        }
        return Ok(());
    }
    let Some(to) = &args.to else {
        bail!("--to KUBECONFIG[:CONTEXT] is required (or --dry-run, or --to-directory DIR)");
    };
    let target = Cluster::connect(&ClusterRef::parse(to), "target").await?;
    let opts = MoveOptions {
        namespace,
        state_dir: args.state_dir.clone().unwrap_or_else(default_state_dir),
        parallelism: args.parallel,
        ..MoveOptions::default()
    };
    let report = kube_ops::move_objects(&source, &target, &opts).await?;
    match output {
        Output::Json => print_json(&report)?,
        Output::Text => {
            let writes = report.source_requests.writes + report.target_requests.writes;
            println!(
                "moved {} object(s) in {} layer(s) in {:.1}s{}: {} created, {} replaced, {} deleted; {} writes ({:.2}/object), {} reads, {} retries",
                report.objects,
                report.layers.len(),
                report.seconds,
                if report.resumed { " (resumed)" } else { "" },
                report.exec.created,
                report.exec.updated,
                report.exec.deleted,
                writes,
                writes as f64 / report.objects.max(1) as f64,
                report.source_requests.reads + report.target_requests.reads,
                report.source_requests.retries + report.target_requests.retries,
            );
        }
    }
    Ok(())
}
