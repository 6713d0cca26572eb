//! Action "single-node fixups" (kind does these when the cluster has one node): remove the
//! control-plane taint so workloads schedule, and the label that keeps the node out of external
//! load balancers.

use super::ActionContext;
use crate::Result;
use crate::provider::Provider;

/// Untaints and unlabels every node.
pub async fn execute<P: Provider>(ctx: &ActionContext<'_, P>) -> Result<()> {
    ctx.kubectl(
        &[
            "taint",
            "nodes",
            "--all",
            "node-role.kubernetes.io/control-plane-",
        ],
        None,
    )
    .await?;
    ctx.kubectl(
        &[
            "label",
            "nodes",
            "--all",
            "node.kubernetes.io/exclude-from-external-load-balancers-",
        ],
        None,
    )
    .await?;
    Ok(())
}
