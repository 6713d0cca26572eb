//! Action "install storage": applies the image's `/kind/manifests/default-storage.yaml` with the
//! node's kubectl, or kind's fallback default StorageClass when the image has none.

use super::ActionContext;
use crate::Result;
use crate::provider::Provider;

const MANIFEST: &str = "/kind/manifests/default-storage.yaml";

/// kind's fallback: a default StorageClass `standard` backed by host paths.
pub const FALLBACK: &str = r#"# host-path based default storage class
kind: StorageClass
apiVersion: storage.k8s.io/v1
metadata:
  namespace: kube-system
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
"#;

/// `kubectl apply -f -` of the storage manifest.
pub async fn execute<P: Provider>(ctx: &ActionContext<'_, P>) -> Result<()> {
    let manifest = match ctx
        .provider
        .exec(ctx.node, &["cat", MANIFEST], None)
        .await?
    {
        out if out.exit_code == 0 && !out.stdout.is_empty() => out.stdout,
        _ => FALLBACK.as_bytes().to_vec(),
    };
    ctx.kubectl(&["apply", "-f", "-"], Some(&manifest)).await?;
    Ok(())
}
