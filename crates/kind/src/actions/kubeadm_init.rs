//! Action "kubeadm init": `kubeadm init --config=/kind/kubeadm.conf --skip-token-print --v=6` in
//! the node, exactly as kind runs it.

use super::{ActionContext, KUBEADM_CONF};
use crate::Result;
use crate::provider::Provider;

/// Runs `kubeadm init` with the configuration the config action wrote.
pub async fn execute<P: Provider>(ctx: &ActionContext<'_, P>) -> Result<()> {
    let config = format!("--config={KUBEADM_CONF}");
    let out = ctx
        .run(
            &["kubeadm", "init", &config, "--skip-token-print", "--v=6"],
            None,
        )
        .await?;
    tracing::debug!(node = ctx.node, output = %out.tail(3), "kubeadm init done");
    Ok(())
}
