//! The bootstrap cluster through the Docker API: a single-node Kubernetes cluster that the `kind`
//! CLI cannot tell from its own (same network, container name, labels, options, in-node kubeadm
//! steps and kubeconfig), created, adopted, listed and deleted without the `kind` binary.
//!
//! ```no_run
//! # async fn f() -> kind::Result<()> {
//! use kind::{CreateOptions, DockerProvider};
//! let docker = DockerProvider::connect(None).await?;
//! let opts = CreateOptions::new("bootstrap", "/tmp/bootstrap.kubeconfig".into());
//! let created = kind::create(&docker, &opts, &|line: &str| println!("{line}")).await?;
//! println!("{} at {}", created.name, created.server);
//! kind::delete(&docker, "bootstrap", Some(&created.kubeconfig), &[]).await?;
//! # Ok(()) }
//! ```
//!
//! Layout: [`provider`] is the runtime interface (kind's `Provider`), [`docker`] its only
//! implementation and the only module that talks to Docker; [`actions`] are the in-node steps;
//! [`create`](mod@create) and [`delete`](mod@delete) compose them; [`kubeconfig`] exports and
//! merges; [`node_image`] pins the default image.

pub mod actions;
pub mod create;
pub mod delete;
pub mod docker;
mod error;
pub mod kubeconfig;
pub mod node_image;
pub mod provider;

pub use create::{CreateOptions, Created, control_plane_name, create, export_kubeconfig};
pub use delete::{Deleted, delete};
pub use docker::DockerProvider;
pub use error::{Error, Result};
pub use node_image::{DEFAULT_NODE_IMAGE, node_image_for};
pub use provider::{CLUSTER_LABEL, ExecOutput, HostInfo, NodeInfo, NodeSpec, Provider, ROLE_LABEL};

/// Names of all kind clusters on the host (running or not), sorted, as `kind get clusters`.
pub async fn list_clusters<P: Provider>(p: &P) -> Result<Vec<String>> {
    let mut names: Vec<String> = p
        .list_nodes(None)
        .await?
        .into_iter()
        .map(|n| n.cluster)
        .filter(|c| !c.is_empty())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The control-plane node of cluster `name`, or [`Error::NoSuchCluster`].
pub async fn control_plane_node<P: Provider>(p: &P, name: &str) -> Result<NodeInfo> {
    p.list_nodes(Some(name))
        .await?
        .into_iter()
        .find(|n| n.role == provider::CONTROL_PLANE_ROLE)
        .ok_or_else(|| Error::NoSuchCluster(name.to_string()))
}

/// Runs `cmd` in the control-plane node of cluster `name` (stdin optional); the caller judges the
/// exit code.
pub async fn exec_in_node<P: Provider>(
    p: &P,
    name: &str,
    cmd: &[&str],
    stdin: Option<&[u8]>,
) -> Result<ExecOutput> {
    let node = control_plane_node(p, name).await?;
    p.exec(&node.name, cmd, stdin).await
}

/// The content of file `path` in the control-plane node of cluster `name`.
pub async fn copy_from_node<P: Provider>(p: &P, name: &str, path: &str) -> Result<Vec<u8>> {
    let node = control_plane_node(p, name).await?;
    p.copy_from(&node.name, path).await
}
