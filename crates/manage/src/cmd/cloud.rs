//! `manage cloud …`: the OpenStack side of a cluster on its own — pre-flight report, preparation,
//! application credentials and the cleanup sweep. Bootstrap and the reconcile controller call the
//! same library (`cloud`); these verbs let a user run and inspect each step.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use cloud::sweep::{SweepOptions, sweep};
use cloud::{CloudSelector, ClusterIdentity, Session};
use serde_json::json;

use crate::Failure;
use crate::cli::Output;

/// Arguments of `manage cloud`.
#[derive(Debug, clap::Args)]
pub struct CloudArgs {
    /// clouds.yaml entry (default: the definition's `cloud.name`; `OS_CLOUD` overrides neither).
    #[arg(long, global = true, value_name = "NAME")]
    pub cloud: Option<String>,
    /// clouds.yaml to read (default: OS_CLIENT_CONFIG_FILE, else ./, ~/.config/openstack/,
    /// /etc/openstack/).
    #[arg(long, global = true, value_name = "FILE")]
    pub clouds_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: CloudCommand,
}

/// `manage cloud` verbs.
#[derive(Debug, clap::Subcommand)]
pub enum CloudCommand {
    /// Check flavors, image, external network and quotas for a cluster; print every problem.
    Check {
        /// The cluster (directory under clusters/).
        name: String,
        /// Do not count the machines of a rolling update.
        #[arg(long)]
        no_surge: bool,
    },
    /// Create what the cluster needs before machines boot (CNI security group, server groups,
    /// image); idempotent.
    Prepare {
        /// The cluster.
        name: String,
    },
    /// Make sure the cluster's two application credentials exist (CAPO; cloud controller + Cinder
    /// CSI); a new one's clouds.yaml is written into --out (0600): its secret is shown only once.
    Credentials {
        /// The cluster.
        name: String,
        /// Directory for `capo-clouds.yaml` and `cloud-provider-clouds.yaml` (created 0700).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Make a new generation of both, write them, then revoke the older ones.
        #[arg(long)]
        rotate: bool,
    },
    /// Delete every cloud resource of the cluster (by tag and exact naming; needs no Kubernetes).
    Sweep {
        /// The cluster.
        name: String,
        /// List what would be deleted; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep the cluster's images (by default an image only this cluster uses is deleted).
        #[arg(long)]
        keep_images: bool,
        /// Also keep the cluster's application credentials.
        #[arg(long)]
        keep_credentials: bool,
    },
}

/// Runs `manage cloud`.
pub fn run(repo: &Path, args: &CloudArgs, output: Output) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(repo, args, output))
}

fn load(repo: &Path, name: &str) -> Result<spec::model::ClusterDefinition, Failure> {
    match spec::load_cluster(repo, name) {
        Ok(l) => Ok(l.definition),
        Err(diags) => {
            eprintln!("{diags}");
            Err(Failure::Invalid)
        }
    }
}

async fn connect(
    args: &CloudArgs,
    def: &spec::model::ClusterDefinition,
) -> anyhow::Result<Session> {
    let selector = CloudSelector {
        cloud: Some(args.cloud.clone().unwrap_or_else(|| def.cloud.name.clone())),
        clouds_file: args.clouds_file.clone(),
        region: def.cloud.region.clone(),
        timeout: None,
    };
    Session::connect(&selector).await.map_err(|e| anyhow!(e))
}

async fn run_async(repo: &Path, args: &CloudArgs, output: Output) -> Result<(), Failure> {
    match &args.command {
        CloudCommand::Check { name, no_surge } => {
            let def = load(repo, name)?;
            let session = connect(args, &def).await?;
            let opts = cloud::preflight::PreflightOptions {
                rolling_update_surge: !no_surge,
            };
            let report = cloud::preflight::preflight(&session, &def, &opts)
                .await
                .with_context(|| format!("pre-flight of {name}"))?;
            match output {
                Output::Json => println!(
                    "{:#}",
                    json!({
                        "cluster": name,
                        "ok": report.is_ok(),
                        "problems": report.problems.iter().map(|p| json!({"field": p.field, "message": p.message, "hint": p.hint})).collect::<Vec<_>>(),
                        "checked": report.checked,
                    })
                ),
                Output::Text => print!("{report}"),
            }
            if report.is_ok() {
                Ok(())
            } else {
                Err(Failure::Invalid)
            }
        }
        CloudCommand::Prepare { name } => {
            let def = load(repo, name)?;
            let session = connect(args, &def).await?;
            prepare(&session, &def, output).await
        }
        CloudCommand::Credentials { name, out, rotate } => {
            let def = load(repo, name)?;
            let session = connect(args, &def).await?;
            credentials(&session, &def, out, *rotate, output).await
        }
        CloudCommand::Sweep {
            name,
            dry_run,
            keep_images,
            keep_credentials,
        } => {
            let def = load(repo, name)?;
            let session = connect(args, &def).await?;
            let id = ClusterIdentity::of(&def);
            let opts = SweepOptions {
                dry_run: *dry_run,
                images: !keep_images,
                ..SweepOptions::for_definition(&def)
            };
            let report = sweep(&session, &id, &opts)
                .await
                .with_context(|| format!("sweeping {name}"))?;
            let credentials = if *keep_credentials {
                Vec::new()
            } else {
                revoke_credentials(&session, &id, *dry_run).await?
            };
            match output {
                Output::Json => println!(
                    "{:#}",
                    json!({
                        "cluster": name,
                        "dryRun": dry_run,
                        "found": report.found.iter().map(|f| json!({"kind": f.kind.name(), "id": f.id, "name": f.name, "reason": f.reason})).collect::<Vec<_>>(),
                        "deleted": report.deleted.len(),
                        "failed": report.failed.iter().map(|(f, why)| json!({"kind": f.kind.name(), "id": f.id, "name": f.name, "reason": why})).collect::<Vec<_>>(),
                        "applicationCredentials": credentials,
                    })
                ),
                Output::Text => {
                    let verb = if *dry_run { "would delete" } else { "deleted" };
                    for f in &report.found {
                        let failed = report.failed.iter().find(|(g, _)| g == f);
                        match failed {
                            Some((_, why)) => println!("FAILED  {f}: {why}"),
                            None => println!("{verb:<12} {f}"),
                        }
                    }
                    for c in &credentials {
                        println!("{verb:<12} application credential {c}");
                    }
                    println!(
                        "{} resources{}; {} failed",
                        report.found.len() + credentials.len(),
                        if *dry_run {
                            " found (dry run: nothing changed)"
                        } else {
                            " removed"
                        },
                        report.failed.len()
                    );
                }
            }
            if report.is_clean() {
                Ok(())
            } else {
                Err(Failure::Environment(anyhow!(
                    "{} resources of {name} could not be deleted (listed above); fix the reason and run the sweep again",
                    report.failed.len()
                )))
            }
        }
    }
}

async fn prepare(
    session: &Session,
    def: &spec::model::ClusterDefinition,
    output: Output,
) -> Result<(), Failure> {
    let opts = cloud::prepare::PrepareOptions::default();
    let prepared = cloud::prepare::prepare(session, def, &opts)
        .await
        .with_context(|| format!("preparing the cloud for {}", def.name))?;
    match output {
        Output::Json => {
            let sg = &prepared.security_group;
            println!(
                "{:#}",
                json!({
                    "cluster": def.name,
                    "changed": prepared.changed(),
                    "securityGroup": {"id": sg.id, "name": sg.name, "outcome": sg.outcome.to_string(), "rulesAdded": sg.rules_added, "rulesRemoved": sg.rules_removed},
                    "serverGroups": prepared.server_groups.iter().map(|g| json!({"id": g.id, "name": g.name, "policy": g.policy, "outcome": g.outcome.to_string()})).collect::<Vec<_>>(),
                    "image": prepared.image.as_ref().map(|i| json!({"id": i.id, "name": i.name, "outcome": i.outcome.to_string()})),
                })
            );
        }
        Output::Text => print!("{prepared}"),
    }
    Ok(())
}

/// Writes `text` to `dir/file` with mode 0600 (the directory 0700), replacing it atomically.
fn write_private(dir: &Path, file: &str, text: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(file);
    let tmp = dir.join(format!(".{file}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

async fn credentials(
    session: &Session,
    def: &spec::model::ClusterDefinition,
    out: &Path,
    rotate: bool,
    output: Output,
) -> Result<(), Failure> {
    use cloud::appcred::{CredentialOptions, Credentials, Ensured, Role};
    use secrecy::ExposeSecret;
    let id = ClusterIdentity::of(def);
    let creds = Credentials::new(session, &id);
    let opts = CredentialOptions::default();
    let mut lines = Vec::new();
    for role in Role::ALL {
        let entry = format!("{}-{}", def.name, role.slug());
        let file = format!("{}-clouds.yaml", role.slug());
        let (credential, written) = if rotate {
            let new = creds.rotate(role, &opts).await.map_err(|e| anyhow!(e))?;
            let text = new.clouds_yaml(session, &entry).map_err(|e| anyhow!(e))?;
            let path = write_private(out, &file, text.expose_secret())?;
            // the new secret is safely on disk before the old credential goes
            creds
                .revoke_old(role, &new.credential.id)
                .await
                .map_err(|e| anyhow!(e))?;
            (new.credential, Some(path))
        } else {
            match creds.ensure(role, &opts).await.map_err(|e| anyhow!(e))? {
                Ensured::Created(new) => {
                    let text = new.clouds_yaml(session, &entry).map_err(|e| anyhow!(e))?;
                    let path = write_private(out, &file, text.expose_secret())?;
                    (new.credential, Some(path))
                }
                Ensured::Existing(c) => (c, None),
            }
        };
        lines.push(json!({
            "role": role.slug(),
            "id": credential.id,
            "name": credential.name,
            "written": written.as_ref().map(|p| p.display().to_string()),
        }));
    }
    match output {
        Output::Json => println!("{:#}", json!({"cluster": def.name, "credentials": lines})),
        Output::Text => {
            for l in &lines {
                match l["written"].as_str() {
                    Some(p) => println!(
                        "{} credential {} created; clouds.yaml written to {p} (0600)",
                        l["role"].as_str().unwrap_or_default(),
                        l["name"].as_str().unwrap_or_default()
                    ),
                    None => println!(
                        "{} credential {} exists (its secret is shown only at creation: use the stored clouds.yaml, or --rotate)",
                        l["role"].as_str().unwrap_or_default(),
                        l["name"].as_str().unwrap_or_default()
                    ),
                }
            }
        }
    }
    Ok(())
}

async fn revoke_credentials(
    session: &Session,
    id: &ClusterIdentity,
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    let creds = cloud::appcred::Credentials::new(session, id);
    let found = if dry_run {
        creds.list().await.map_err(|e| anyhow!(e))?
    } else {
        creds.revoke_all().await.map_err(|e| anyhow!(e))?
    };
    Ok(found
        .into_iter()
        .map(|c| format!("{} ({})", c.name, c.id))
        .collect())
}
