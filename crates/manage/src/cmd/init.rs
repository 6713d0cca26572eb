//! `manage init NAME`: scaffold a cluster from `clusters/example/`.

use crate::Failure;
use crate::repo::ensure_gitignore;
use anyhow::{Context, anyhow};
use spec::load::{CLUSTER_FILE, CLUSTERS_DIR};
use spec::validate::{MAX_CLUSTER_NAME, is_dns_label};
use std::path::Path;

/// The cluster every new one is copied from.
const TEMPLATE: &str = "example";

/// A credentials file template: local only (git-ignored, 0600), sealed by `manage bootstrap`.
const CREDENTIALS_TEMPLATE: &str = "\
# OpenStack credentials of this cluster, in clouds.yaml form. This file never goes to git
# (see .gitignore); `manage bootstrap` seals it for the management cluster.
clouds:
  openstack:
    auth:
      auth_url: https://keystone.example.org:5000/v3
      application_credential_id: \"\"
      application_credential_secret: \"\"
    region_name: RegionOne
    interface: public
    identity_api_version: 3
    auth_type: v3applicationcredential
";

/// Copies `clusters/example/` to `clusters/NAME/` with the name filled in.
pub fn run(repo: &Path, name: &str) -> Result<(), Failure> {
    if !is_dns_label(name, MAX_CLUSTER_NAME) {
        return Err(anyhow!(
            "{name:?} is not a valid cluster name: use at most {MAX_CLUSTER_NAME} lower-case letters, digits and '-', starting and ending with a letter or digit"
        )
        .into());
    }
    let clusters = repo.join(CLUSTERS_DIR);
    let target = clusters.join(name);
    if target.exists() {
        return Err(anyhow!(
            "{} already exists; edit it, or pick another name",
            target.display()
        )
        .into());
    }
    let template = clusters.join(TEMPLATE).join(CLUSTER_FILE);
    let text = std::fs::read_to_string(&template).with_context(|| {
        format!(
            "reading the template {} (init copies it; restore it from git)",
            template.display()
        )
    })?;
    let text = retarget(&text, name);
    std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    std::fs::write(target.join(CLUSTER_FILE), text)
        .with_context(|| format!("writing {}", target.join(CLUSTER_FILE).display()))?;
    write_private(&target.join("credentials.yaml"), CREDENTIALS_TEMPLATE)?;
    let added = ensure_gitignore(repo)?;
    println!(
        "created {CLUSTERS_DIR}/{name}/{CLUSTER_FILE} and {CLUSTERS_DIR}/{name}/credentials.yaml (git-ignored)"
    );
    if !added.is_empty() {
        println!("added to .gitignore: {}", added.join(" "));
    }
    println!("next: edit both files, then run `manage validate {name}`");
    Ok(())
}

/// Replaces the template's own name where it is the value of `name:` or `namespace:`.
fn retarget(text: &str, name: &str) -> String {
    text.lines()
        .map(|line| {
            for key in ["name", "namespace"] {
                if line == format!("{key}: {TEMPLATE}") {
                    return format!("{key}: {name}");
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
