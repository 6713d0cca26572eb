//! Action "install CNI": the image's `/kind/manifests/default-cni.yaml` (kindnetd), templated with
//! the pod subnet and patched with the control-plane endpoint when the manifest asks for it, then
//! `kubectl create -f -` with the node's kubectl (kind's markers and behaviour).

use super::ActionContext;
use crate::provider::Provider;
use crate::{Error, Result};

const MANIFEST: &str = "/kind/manifests/default-cni.yaml";
const TEMPLATE_MARKER: &str = "would you kindly template this file";
const PATCH_MARKER: &str = "would you kindly patch this file";

/// Renders kind's Go template placeholders (`{{ .PodSubnet }}`) in the manifest.
pub fn template(manifest: &str, pod_subnet: &str) -> String {
    if !manifest.contains(TEMPLATE_MARKER) {
        return manifest.to_string();
    }
    manifest
        .replace("{{ .PodSubnet }}", pod_subnet)
        .replace("{{.PodSubnet}}", pod_subnet)
}

/// Adds env `CONTROL_PLANE_ENDPOINT=<endpoint>` to the first container of every DaemonSet (kind's
/// JSON 6902 patch `add /spec/template/spec/containers/0/env/-`), when the manifest asks for it.
pub fn patch(manifest: &str, endpoint: &str) -> std::result::Result<String, String> {
    if !manifest.contains(PATCH_MARKER) {
        return Ok(manifest.to_string());
    }
    let mut docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(manifest).map_err(|e| e.to_string())?;
    docs.retain(|d| !d.is_null());
    for d in docs.iter_mut().filter(|d| d["kind"] == "DaemonSet") {
        let Some(c) = d
            .pointer_mut("/spec/template/spec/containers/0")
            .and_then(|c| c.as_object_mut())
        else {
            continue;
        };
        let env = c
            .entry("env")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let Some(env) = env.as_array_mut() {
            env.push(serde_json::json!({"name": "CONTROL_PLANE_ENDPOINT", "value": endpoint}));
        }
    }
    serde_saphyr::to_string_multiple(&docs).map_err(|e| e.to_string())
}

/// Reads, renders and creates the CNI manifest in the cluster.
pub async fn execute<P: Provider>(ctx: &ActionContext<'_, P>) -> Result<()> {
    let raw = ctx.run(&["cat", MANIFEST], None).await?.stdout_text();
    let manifest = template(&raw, ctx.pod_subnet);
    let manifest =
        patch(&manifest, &ctx.control_plane_endpoint()).map_err(|reason| Error::NodeStart {
            node: ctx.node.to_string(),
            reason: format!("cannot patch {MANIFEST}: {reason}"),
        })?;
    ctx.kubectl(&["create", "-f", "-"], Some(manifest.as_bytes()))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_only_when_asked() {
        let m = "# would you kindly template this file\nvalue: \"{{ .PodSubnet }}\"\n";
        assert_eq!(
            template(m, "10.244.0.0/16"),
            "# would you kindly template this file\nvalue: \"10.244.0.0/16\"\n"
        );
        assert_eq!(template("v: {{ .PodSubnet }}", "x"), "v: {{ .PodSubnet }}");
    }

    #[test]
    fn patches_the_daemonset() {
        let m = "# would you kindly patch this file\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: kindnet}\nspec:\n  template:\n    spec:\n      containers:\n      - name: kindnet-cni\n        env:\n        - {name: A, value: b}\n";
        let out = patch(m, "x-control-plane:6443").expect("patch");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).expect("yaml");
        let env = &docs[1]["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[1]["name"], "CONTROL_PLANE_ENDPOINT");
        assert_eq!(env[1]["value"], "x-control-plane:6443");
    }
}
