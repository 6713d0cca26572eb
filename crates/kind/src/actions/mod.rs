//! The in-node steps of cluster creation, as kind's `create/actions`: each a small module with
//! one `execute(ctx)`, run in order by [`crate::create`]. They reach the node only through the
//! [`Provider`] in their [`ActionContext`], never through Docker directly.

pub mod config;
pub mod install_cni;
pub mod install_storage;
pub mod kubeadm_init;
pub mod single_node;
pub mod wait_ready;

use std::time::Duration;

use crate::provider::{ExecOutput, Provider};
use crate::{Error, Result};

/// The admin kubeconfig `kubeadm init` writes in the node; every in-node kubectl uses it.
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
/// Where kind writes the kubeadm configuration in the node.
pub const KUBEADM_CONF: &str = "/kind/kubeadm.conf";

/// What every action gets: the provider, the cluster, its node and the creation settings.
pub struct ActionContext<'a, P: Provider> {
    /// The container runtime.
    pub provider: &'a P,
    /// Cluster name.
    pub cluster: &'a str,
    /// The control-plane node container.
    pub node: &'a str,
    /// Pod subnet (`networking.podSubnet`).
    pub pod_subnet: &'a str,
    /// Service subnet (`networking.serviceSubnet`).
    pub service_subnet: &'a str,
    /// How long to wait for readiness.
    pub wait: Duration,
}

impl<P: Provider> ActionContext<'_, P> {
    /// Runs `cmd` in the node and fails with its output unless it exits 0.
    pub async fn run(&self, cmd: &[&str], stdin: Option<&[u8]>) -> Result<ExecOutput> {
        let out = self.provider.exec(self.node, cmd, stdin).await?;
        if out.exit_code != 0 {
            return Err(Error::NodeCommand {
                node: self.node.to_string(),
                command: cmd.join(" "),
                exit_code: out.exit_code,
                output: out.tail(6),
            });
        }
        Ok(out)
    }

    /// `kubectl --kubeconfig=/etc/kubernetes/admin.conf ARGS…` in the node.
    pub async fn kubectl(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<ExecOutput> {
        let kubeconfig = format!("--kubeconfig={ADMIN_CONF}");
        let mut cmd = vec!["kubectl", kubeconfig.as_str()];
        cmd.extend_from_slice(args);
        self.run(&cmd, stdin).await
    }

    /// `<cluster>-control-plane:6443`, the endpoint inside the Docker network.
    pub fn control_plane_endpoint(&self) -> String {
        format!(
            "{}:{}",
            self.node,
            crate::provider::API_SERVER_INTERNAL_PORT
        )
    }
}
