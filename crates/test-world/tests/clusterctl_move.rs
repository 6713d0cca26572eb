//! Smoke test: the real clusterctl moves a Cluster (and its kubeconfig Secret) between two world
//! API servers. The source Cluster is created paused and its provisioned status is set through
//! the status subresource (no infrastructure or control plane exists behind it), which is what
//! clusterctl's pre-checks read.

use std::time::Duration;

const FROM: &str = "bootstrap";
const TO: &str = "mgmt";

#[tokio::test]
async fn clusterctl_moves_a_cluster_between_world_servers() {
    let Some(world) = test_world::world_or_skip(&[
        "WORLD_CLUSTERCTL",
        "WORLD_KUBECONFIG_BOOTSTRAP",
        "WORLD_KUBECONFIG_MGMT",
    ]) else {
        return;
    };
    let ns = world.namespace(FROM, "move").await.expect("namespace");
    let n = &ns.name;
    world
        .apply_yaml(
            FROM,
            &format!(
                r#"apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata: {{name: moved, namespace: {n}}}
spec:
  paused: true
  clusterNetwork: {{pods: {{cidrBlocks: [192.168.0.0/16]}}}}
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
    let mut patch = world.kubectl(FROM).expect("kubectl");
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
        .arg(world.kubeconfig(FROM).expect("from"))
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
                let mut cmd = world.kubectl(FROM)?;
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
