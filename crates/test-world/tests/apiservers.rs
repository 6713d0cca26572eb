//! Smoke test: every world API server is a real kube-apiserver at the pinned version.

#[tokio::test]
async fn every_apiserver_reports_the_pinned_version() {
    let Some(world) = test_world::world_or_skip(&["WORLD_KUBERNETES_VERSION", "WORLD_APISERVERS"])
    else {
        return;
    };
    let want = world.kubernetes_version().expect("pinned version");
    let servers = world.servers();
    assert!(
        servers.len() >= 2,
        "expected several API servers, got {servers:?}"
    );
    for server in servers {
        let client = world.client(&server).await.expect("client");
        let info = client.apiserver_version().await.expect("GET /version");
        assert_eq!(info.git_version, want, "/version of API server {server}");
    }
}

#[tokio::test]
async fn a_test_gets_its_own_namespace_and_the_namespace_controller_removes_it() {
    let Some(world) = test_world::world_or_skip(&["WORLD_KUBECONFIG_MGMT"]) else {
        return;
    };
    let ns = world.namespace("mgmt", "own-ns").await.expect("namespace");
    let name = ns.name.clone();
    ns.delete().await.expect("delete");
    // kube-controller-manager's namespace controller finalizes it (without it, it stays Terminating)
    test_world::eventually(
        std::time::Duration::from_secs(60),
        "the namespace to be gone",
        || {
            let world = world.clone();
            let name = name.clone();
            async move {
                let mut cmd = world.kubectl("mgmt")?;
                let out = cmd
                    .args([
                        "get",
                        "namespace",
                        &name,
                        "--ignore-not-found",
                        "-o",
                        "name",
                    ])
                    .output()?;
                Ok(String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .is_empty()
                    .then_some(()))
            }
        },
    )
    .await
    .expect("namespace deleted");
}
