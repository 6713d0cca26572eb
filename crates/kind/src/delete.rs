//! Deleting a cluster as kind does: its `kind-<name>` kubeconfig entries go, then every container
//! labelled with the cluster is removed with its anonymous volumes (`docker rm -f -v`). The
//! network stays. Deleting a cluster that does not exist succeeds.

use std::path::{Path, PathBuf};

use crate::provider::Provider;
use crate::{Error, Result, kubeconfig};

/// What [`delete`] removed.
#[derive(Debug, Clone, Default)]
pub struct Deleted {
    /// Node containers removed.
    pub nodes: Vec<String>,
    /// Kubeconfig files whose `kind-<name>` entries were removed.
    pub kubeconfigs: Vec<PathBuf>,
    /// The private kubeconfig file was removed.
    pub private_kubeconfig_removed: bool,
}

/// Deletes cluster `name`: the private kubeconfig file (if given), the `kind-<name>` entries of
/// `kubeconfigs`, and the node containers with their volumes. A kubeconfig error is returned only
/// after the nodes are gone, as kind does.
pub async fn delete<P: Provider>(
    p: &P,
    name: &str,
    private_kubeconfig: Option<&Path>,
    kubeconfigs: &[PathBuf],
) -> Result<Deleted> {
    let mut deleted = Deleted::default();
    let nodes = p.list_nodes(Some(name)).await?;
    let mut kubeconfig_error: Option<Error> = None;
    for path in kubeconfigs {
        match kubeconfig::remove_from(path, name) {
            Ok(true) => deleted.kubeconfigs.push(path.clone()),
            Ok(false) => {}
            Err(e) => kubeconfig_error = kubeconfig_error.or(Some(e)),
        }
    }
    if let Some(private) = private_kubeconfig {
        match std::fs::remove_file(private) {
            Ok(()) => deleted.private_kubeconfig_removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => kubeconfig_error = kubeconfig_error.or(Some(Error::io(private, e))),
        }
    }
    deleted.nodes = nodes.into_iter().map(|n| n.name).collect();
    if !deleted.nodes.is_empty() {
        tracing::info!(cluster = name, nodes = ?deleted.nodes, "deleting nodes");
        p.delete_nodes(&deleted.nodes).await?;
    }
    match kubeconfig_error {
        Some(e) => Err(e),
        None => Ok(deleted),
    }
}
