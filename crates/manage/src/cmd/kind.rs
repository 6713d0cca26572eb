//! `manage kind create|delete|list|kubeconfig`: the bootstrap cluster through the Docker API
//! (crate `kind`); kind-compatible, so the `kind` CLI sees and can delete what this creates.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Subcommand};

use crate::Failure;
use crate::cli::Output;

/// `manage kind …`
#[derive(Debug, Args)]
pub struct KindArgs {
    /// Docker daemon address (default: $DOCKER_HOST, else unix:///var/run/docker.sock).
    #[arg(long, global = true, value_name = "URL")]
    pub docker_host: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: KindCommand,
}

/// The kind verbs.
#[derive(Debug, Subcommand)]
pub enum KindCommand {
    /// Create the cluster, or adopt a healthy existing one of that name; write its kubeconfig.
    Create {
        /// Cluster name.
        #[arg(long, default_value = "kind", env = "KIND_CLUSTER_NAME")]
        name: String,
        /// Node image (default: the pinned kindest/node image for --kubernetes-version).
        #[arg(long, value_name = "IMAGE")]
        image: Option<String>,
        /// Kubernetes version whose pinned kindest/node image to use.
        #[arg(long, value_name = "VERSION", conflicts_with = "image")]
        kubernetes_version: Option<String>,
        /// Load the node image from this `docker save` tarball when it is absent (air-gapped).
        #[arg(long, value_name = "FILE")]
        image_archive: Option<PathBuf>,
        /// Run the node privileged (kind does); false for images that need no capabilities.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
        privileged: bool,
        /// Host port on 127.0.0.1 for the API server (0: a free one).
        #[arg(long, default_value_t = 0, value_name = "PORT")]
        api_server_port: u16,
        /// The private kubeconfig file (default: ~/.config/manage/kind-NAME.kubeconfig).
        #[arg(long, value_name = "FILE")]
        kubeconfig_file: Option<PathBuf>,
        /// Also merge the kubeconfig into $KUBECONFIG or ~/.kube/config, as kind does.
        #[arg(long)]
        merge: bool,
        /// Seconds to wait for the API server and the node to be ready.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        wait: u64,
        /// Keep the node of a failed creation for debugging.
        #[arg(long)]
        retain: bool,
        /// Delete an existing cluster of that name first.
        #[arg(long)]
        recreate: bool,
    },
    /// Delete the cluster: its containers and volumes, its kubeconfig file and entries.
    Delete {
        /// Cluster name.
        #[arg(long, default_value = "kind", env = "KIND_CLUSTER_NAME")]
        name: String,
        /// The private kubeconfig file to remove (default: ~/.config/manage/kind-NAME.kubeconfig).
        #[arg(long, value_name = "FILE")]
        kubeconfig_file: Option<PathBuf>,
    },
    /// List the kind clusters on this Docker host.
    List,
    /// Write (or print, with `-`) the kubeconfig of an existing cluster.
    Kubeconfig {
        /// Cluster name.
        #[arg(long, default_value = "kind", env = "KIND_CLUSTER_NAME")]
        name: String,
        /// Where to write it (default: ~/.config/manage/kind-NAME.kubeconfig; `-`: stdout).
        #[arg(long, value_name = "FILE")]
        kubeconfig_file: Option<PathBuf>,
    },
}

fn private_kubeconfig(name: &str, explicit: Option<&PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p.clone();
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("manage").join(format!("kind-{name}.kubeconfig"))
}

fn env_err(e: kind::Error) -> Failure {
    Failure::Environment(anyhow!(e))
}

/// Runs a kind verb.
pub fn run(args: &KindArgs, output: Output) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Environment(anyhow!("starting the async runtime: {e}")))?;
    rt.block_on(run_async(args, output))
}

async fn run_async(args: &KindArgs, output: Output) -> Result<(), Failure> {
    let docker = kind::DockerProvider::connect(args.docker_host.as_deref())
        .await
        .map_err(env_err)?;
    match &args.command {
        KindCommand::Create {
            name,
            image,
            kubernetes_version,
            image_archive,
            privileged,
            api_server_port,
            kubeconfig_file,
            merge,
            wait,
            retain,
            recreate,
        } => {
            let mut o =
                kind::CreateOptions::new(name, private_kubeconfig(name, kubeconfig_file.as_ref()));
            o.image = match image {
                Some(i) => i.clone(),
                None => kind::node_image_for(kubernetes_version.as_deref())
                    .map_err(env_err)?
                    .to_string(),
            };
            o.image_archive = image_archive.clone();
            o.privileged = *privileged;
            o.api_server_port = *api_server_port;
            o.merge_kubeconfig = merge.then(|| kind::kubeconfig::user_kubeconfig(None));
            o.wait = Duration::from_secs(*wait);
            o.retain = *retain;
            o.recreate = *recreate;
            let status = |line: &str| {
                if output == Output::Text {
                    eprintln!("{line}");
                }
            };
            let started = std::time::Instant::now();
            let c = kind::create(&docker, &o, &status).await.map_err(env_err)?;
            let seconds = started.elapsed().as_secs_f64();
            match output {
                Output::Text => {
                    for w in &c.warnings {
                        eprintln!("warning: {w}");
                    }
                    println!(
                        "{} kind cluster {} ({}) in {seconds:.1}s: API server {}, kubeconfig {} (context kind-{})",
                        if c.reused { "Reused" } else { "Created" },
                        c.name,
                        c.node,
                        c.server,
                        c.kubeconfig.display(),
                        c.name
                    );
                }
                Output::Json => println!(
                    "{}",
                    serde_json::json!({"name": c.name, "node": c.node, "server": c.server,
                        "kubeconfig": c.kubeconfig, "reused": c.reused, "seconds": seconds,
                        "warnings": c.warnings})
                ),
            }
            Ok(())
        }
        KindCommand::Delete {
            name,
            kubeconfig_file,
        } => {
            let private = private_kubeconfig(name, kubeconfig_file.as_ref());
            let d = kind::delete(
                &docker,
                name,
                Some(&private),
                &kind::kubeconfig::user_kubeconfigs(),
            )
            .await
            .map_err(env_err)?;
            match output {
                Output::Text if d.nodes.is_empty() => {
                    println!("No kind cluster {name}; nothing to delete")
                }
                Output::Text => println!("Deleted kind cluster {name} ({})", d.nodes.join(", ")),
                Output::Json => println!(
                    "{}",
                    serde_json::json!({"name": name, "nodes": d.nodes, "kubeconfigs": d.kubeconfigs})
                ),
            }
            Ok(())
        }
        KindCommand::List => {
            let names = kind::list_clusters(&docker).await.map_err(env_err)?;
            match output {
                Output::Text if names.is_empty() => eprintln!("No kind clusters found."),
                Output::Text => names.iter().for_each(|n| println!("{n}")),
                Output::Json => println!("{}", serde_json::json!(names)),
            }
            Ok(())
        }
        KindCommand::Kubeconfig {
            name,
            kubeconfig_file,
        } => {
            kind::control_plane_node(&docker, name)
                .await
                .map_err(env_err)?;
            if kubeconfig_file.as_deref() == Some(std::path::Path::new("-")) {
                let tmp = std::env::temp_dir()
                    .join(format!("manage-kind-{}.kubeconfig", std::process::id()));
                kind::export_kubeconfig(&docker, name, &tmp, None)
                    .await
                    .map_err(env_err)?;
                let text = std::fs::read_to_string(&tmp)
                    .map_err(|e| Failure::Environment(anyhow!("{}: {e}", tmp.display())));
                let _ = std::fs::remove_file(&tmp);
                print!("{}", text?);
            } else {
                let path = private_kubeconfig(name, kubeconfig_file.as_ref());
                let server = kind::export_kubeconfig(&docker, name, &path, None)
                    .await
                    .map_err(env_err)?;
                println!("{} (context kind-{name}, server {server})", path.display());
            }
            Ok(())
        }
    }
}
