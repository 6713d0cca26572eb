//! Smoke test: the real clusterctl moves a Cluster (and its kubeconfig Secret) between two world
//! API servers. The source is a server with the CAPI CRDs but no CAPI managers (`workload` by
//! default), so the provisioned status set here through the status subresource (no
//! infrastructure or control plane exists behind the Cluster) stays as clusterctl's pre-checks
//! want it; the target (`mgmt`) runs the real managers and their webhooks.

use std::time::Duration;

const TO: &str = "mgmt";

#[tokio::test]
async fn clusterctl_moves_a_cluster_between_world_servers() {
    let Some(world) = test_world::world_or_skip(&[
        "WORLD_CLUSTERCTL",
        "WORLD_CAPI_CRD_SERVERS",
        "WORLD_KUBECONFIG_MGMT",
    ]) else {
        return;
    };
    let managed = world.capi_servers();
    let from = world
        .capi_crd_servers()
        .into_iter()
        .find(|s| !managed.contains(s))
        .expect("a server with CAPI CRDs and no CAPI managers (WORLD_CAPI_CRD_SERVERS)");
    let from = from.as_str();
    let ns = world.namespace(from, "move").await.expect("namespace");
    let n = &ns.name;
    world
        .apply_yaml(
            from,
            &format!(
                r#"apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata: {{name: moved, namespace: {n}}}
spec:
  clusterNetwork: {{pods: {{cidrBlocks: [192.168.0.0/16]}}}}
  # CAPI's webhook wants an infrastructure or control-plane ref; no object stands behind this one
  infrastructureRef: {{apiGroup: infrastructure.cluster.x-k8s.io, kind: WorldTestCluster, name: moved}}
---
apiVersion: v1
kind: Secret
metadata:
  name: moved-kubeconfig
  namespace: {n}
  labels: {{cluster.x-k8s.io/cluster-name: moved}}
type: cluster.x-k8s.io/secret
stringData: {{value: "not a real kubeconfig"}}
"#
            ),
        )
        .expect("create cluster");
    let status = r#"{"status":{"initialization":{"infrastructureProvisioned":true},
        "conditions":[{"type":"ControlPlaneInitialized","status":"True","reason":"WorldSmokeTest",
        "message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    let mut patch = world.kubectl(from).expect("kubectl");
    patch.args([
        "-n",
        n,
        "patch",
        "cluster",
        "moved",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    test_world::run(&mut patch).expect("set provisioned status");

    let mut mv = world.clusterctl().expect("clusterctl");
    mv.arg("move")
        .arg("--kubeconfig")
        .arg(world.kubeconfig(from).expect("from"))
        .arg("--to-kubeconfig")
        .arg(world.kubeconfig(TO).expect("to"))
        .args(["-n", n, "-v", "3"]);
    test_world::run(&mut mv).expect("clusterctl move");

    let moved = world
        .kubectl_json(TO, &["-n", n, "get", "cluster", "moved"])
        .expect("cluster on the target");
    assert!(
        !moved
            .pointer("/spec/paused")
            .and_then(|p| p.as_bool())
            .unwrap_or(false),
        "unpaused on the target: {moved}"
    );
    world
        .kubectl_json(TO, &["-n", n, "get", "secret", "moved-kubeconfig"])
        .expect("kubeconfig secret moved along");
    test_world::eventually(
        Duration::from_secs(30),
        "the source cluster to be gone",
        || {
            let world = world.clone();
            let n = n.clone();
            async move {
                let mut cmd = world.kubectl(from)?;
                cmd.args([
                    "-n",
                    &n,
                    "get",
                    "cluster,secret",
                    "--ignore-not-found",
                    "-o",
                    "name",
                ]);
                let out = test_world::run(&mut cmd)?;
                Ok((!out.contains("cluster.x-k8s.io/moved")
                    && !out.contains("secret/moved-kubeconfig"))
                .then_some(()))
            }
        },
    )
    .await
    .expect("source emptied");
}
