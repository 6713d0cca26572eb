//! Against the test world's real Docker engine and node image: create → a real API server answers
//! through the exported kubeconfig, the container carries kind's labels and options; create
//! again → adopted, not duplicated; delete → no container, volume or kubeconfig entry left.
//!
//! The world's node image differs from kindest/node in one way that matters here: no kubelet runs,
//! so the node's `Ready=True` condition is written by the image's stand-in `kubeadm init` (as a
//! kubelet would report it), and the CNI DaemonSet it accepts never gets a pod. The API server,
//! etcd and kubectl are the real ones; every in-node step runs exactly as for kindest/node.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_reuse_delete() {
    let Some(d) = common::docker_or_skip().await else {
        return;
    };
    let name = test_world::unique_name("kt-life");
    let dir = tempfile::tempdir().expect("tempdir");
    let user_kubeconfig = dir.path().join("user-config");
    let mut o = common::options(&d, &name, dir.path());
    o.merge_kubeconfig = Some(user_kubeconfig.clone());

    // ---- create
    let start = Instant::now();
    let created = kind::create(&d.provider, &o, &common::status).await;
    let took = start.elapsed();
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            common::cleanup(&d, &name).await;
            panic!("create failed: {e}");
        }
    };
    println!(
        "create {name}: {:.1}s to a ready API server ({})",
        took.as_secs_f64(),
        created
            .steps
            .iter()
            .map(|(s, t)| format!("{s} {:.1}s", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(!created.reused);
    assert!(
        created.server.starts_with("https://127.0.0.1:"),
        "{}",
        created.server
    );

    // the kubeconfig: private, kind-<name>, pointing at the published port
    let mode = std::fs::metadata(&created.kubeconfig)
        .expect("kubeconfig written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&created.kubeconfig).expect("read kubeconfig");
    assert!(
        text.contains(&format!("current-context: kind-{name}")),
        "{text}"
    );
    assert!(kind::kubeconfig::has_entries(&user_kubeconfig, &name).expect("merged"));

    // a real API server answers through it
    let client = test_world::client_from_kubeconfig(&created.kubeconfig)
        .await
        .expect("client");
    let version = client
        .apiserver_version()
        .await
        .expect("API server answers");
    println!(
        "API server {} answers at {}",
        version.git_version, created.server
    );
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    let node = list
        .items
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(created.node.as_str()))
        .expect("the control-plane Node exists");
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone());
    assert_eq!(ready.as_deref(), Some("True"));
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    assert!(
        !taints
            .iter()
            .any(|t| t.key == "node-role.kubernetes.io/control-plane"),
        "untainted: {taints:?}"
    );
    let provider_id = node.spec.as_ref().and_then(|s| s.provider_id.clone());
    assert_eq!(
        provider_id.as_deref(),
        Some(format!("kind://docker/{name}/{}", created.node).as_str())
    );

    // docker inspect: kind's labels and options
    let i = d
        .provider
        .client()
        .inspect_container(&created.node, None)
        .await
        .expect("inspect");
    let v = serde_json::to_value(&i).expect("json");
    assert_eq!(
        v["Config"]["Labels"]["io.x-k8s.kind.cluster"],
        name.as_str()
    );
    assert_eq!(v["Config"]["Labels"]["io.x-k8s.kind.role"], "control-plane");
    assert_eq!(v["Config"]["Hostname"], created.node.as_str());
    assert_eq!(v["Config"]["Tty"], true);
    assert!(
        v["Config"]["Env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e == "KUBECONFIG=/etc/kubernetes/admin.conf")
    );
    let h = &v["HostConfig"];
    assert_eq!(h["Privileged"], false, "off for the world's image");
    assert_eq!(h["Init"], false);
    assert_eq!(h["CgroupnsMode"], "private");
    assert_eq!(h["NetworkMode"], "kind");
    assert_eq!(h["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(h["RestartPolicy"]["MaximumRetryCount"], 1);
    let sec: Vec<&str> = h["SecurityOpt"]
        .as_array()
        .expect("security opts")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert!(
        sec.contains(&"seccomp=unconfined") && sec.contains(&"apparmor=unconfined"),
        "{sec:?}"
    );
    assert!(h["Tmpfs"].get("/tmp").is_some() && h["Tmpfs"].get("/run").is_some());
    assert_eq!(h["Binds"][0], "/lib/modules:/lib/modules:ro");
    let port = &h["PortBindings"]["6443/tcp"][0];
    assert_eq!(port["HostIp"], "127.0.0.1");
    assert!(
        created
            .server
            .ends_with(port["HostPort"].as_str().expect("port"))
    );
    let var_volume = v["Mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["Destination"] == "/var" && m["Type"] == "volume")
        .and_then(|m| m["Name"].as_str())
        .expect("anonymous /var volume")
        .to_string();
    assert_eq!(v["State"]["Status"], "running");

    // the network, as kind makes it: bridge, masquerade, the default bridge's MTU, kind's ULA
    // (or IPv4 only where the daemon cannot do IPv6)
    let net = d
        .provider
        .client()
        .inspect_network("kind", None)
        .await
        .expect("kind network");
    let n = serde_json::to_value(&net).expect("json");
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(
        n["Options"]["com.docker.network.bridge.enable_ip_masquerade"],
        "true"
    );
    let bridge = d
        .provider
        .client()
        .inspect_network("bridge", None)
        .await
        .expect("default bridge");
    let bridge_mtu = bridge
        .options
        .unwrap_or_default()
        .get("com.docker.network.driver.mtu")
        .cloned();
    if let Some(mtu) = bridge_mtu {
        assert_eq!(n["Options"]["com.docker.network.driver.mtu"], mtu.as_str());
    }
    if n["EnableIPv6"] == true {
        let subnets: Vec<&str> = n["IPAM"]["Config"]
            .as_array()
            .expect("ipam")
            .iter()
            .filter_map(|c| c["Subnet"].as_str())
            .collect();
        let ula = kind::docker::ula_subnet("kind", 0);
        assert!(
            (0..5).any(|a| subnets.contains(&kind::docker::ula_subnet("kind", a).as_str())),
            "{subnets:?} holds one of kind's ULAs ({ula}, …)"
        );
    }

    // exec and copy out
    let out = kind::exec_in_node(&d.provider, &name, &["cat", "/kind/version"], None)
        .await
        .expect("exec");
    assert_eq!(out.exit_code, 0);
    let copied = kind::copy_from_node(&d.provider, &name, "/kind/kubeadm.conf")
        .await
        .expect("copy out");
    assert!(String::from_utf8_lossy(&copied).contains("kind: InitConfiguration"));
    assert!(
        kind::list_clusters(&d.provider)
            .await
            .expect("list")
            .contains(&name)
    );

    // ---- create again: adopted, not recreated
    let again = kind::create(&d.provider, &o, &common::status)
        .await
        .expect("second create");
    assert!(again.reused);
    assert_eq!(again.server, created.server);
    let nodes = d
        .provider
        .client()
        .inspect_container(&created.node, None)
        .await
        .expect("still there");
    assert_eq!(nodes.id, i.id, "the same container, not a new one");
    let count = kind::Provider::list_nodes(&d.provider, Some(&name))
        .await
        .expect("list");
    assert_eq!(count.len(), 1);

    // ---- delete
    let deleted = kind::delete(
        &d.provider,
        &name,
        Some(&created.kubeconfig),
        std::slice::from_ref(&user_kubeconfig),
    )
    .await
    .expect("delete");
    assert_eq!(deleted.nodes, vec![created.node.clone()]);
    assert!(deleted.private_kubeconfig_removed);
    assert!(!created.kubeconfig.exists());
    assert!(!kind::kubeconfig::has_entries(&user_kubeconfig, &name).expect("read"));
    assert!(
        kind::Provider::list_nodes(&d.provider, Some(&name))
            .await
            .expect("list")
            .is_empty()
    );
    let volume = d.provider.client().inspect_volume(&var_volume).await;
    assert!(volume.is_err(), "the /var volume {var_volume} is gone");
    assert!(
        !kind::list_clusters(&d.provider)
            .await
            .expect("list")
            .contains(&name)
    );
    // deleting again is a no-op, as kind
    let again = kind::delete(&d.provider, &name, None, &[])
        .await
        .expect("delete again");
    assert!(again.nodes.is_empty());
}
