//! The sweep against the world's real OpenStack: two clusters (and a decoy whose names start like
//! the first one's) get the resources CAPO, the cloud controller and Cinder CSI would create,
//! named and tagged as they do; sweeping the first removes exactly its resources.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cloud::sweep::{SweepOptions, sweep};
use cloud::{Call, ClusterIdentity, Service, Session};
use serde_json::{Value, json};

type Ids = BTreeSet<(String, String)>;

async fn post(s: &Session, service: Service, path: &str, key: &str, body: Value) -> String {
    let v = s
        .request(&Call::post(service, path, body))
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    v[key]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{path}: {v}"))
        .to_string()
}

async fn id_by_name(s: &Session, service: Service, path: &str, key: &str, name: &str) -> String {
    let items = s.list(Call::get(service, path), key).await.unwrap();
    items
        .iter()
        .find(|i| i["name"] == name)
        .and_then(|i| i["id"].as_str())
        .unwrap_or_else(|| panic!("{name} not in {path}"))
        .to_string()
}

async fn wait_lb_active(s: &Session, id: &str) {
    for _ in 0..120 {
        let v = s
            .get(Service::LoadBalancer, &format!("lbaas/loadbalancers/{id}"))
            .await
            .unwrap();
        if v["loadbalancer"]["provisioning_status"] == "ACTIVE" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("load balancer {id} never became ACTIVE");
}

/// What CAPO, OCCM and CSI create for one cluster; returns (kind, id) of each.
async fn cluster_resources(
    s: &Session,
    c: &ClusterIdentity,
    public: &str,
    image: &str,
    flavor: &str,
) -> Ids {
    let mut ids = Ids::new();
    let mut add = |kind: &str, id: &str| {
        ids.insert((kind.to_string(), id.to_string()));
    };
    let tags = json!(["managed-by=manage", c.tag()]);
    let capo = c.capo_description();
    // CAPO's network, subnet, router (tags from OpenStackCluster.spec.tags)
    let net = post(
        s,
        Service::Network,
        "networks",
        "network",
        json!({"network": {"name": c.capo_network(), "description": capo}}),
    )
    .await;
    s.request(&Call::put(
        Service::Network,
        format!("networks/{net}/tags"),
        json!({"tags": tags}),
    ))
    .await
    .unwrap();
    add("network", &net);
    let subnet = post(
        s,
        Service::Network,
        "subnets",
        "subnet",
        json!({"subnet": {"name": c.capo_network(), "description": capo, "network_id": net, "ip_version": 4, "cidr": "10.6.0.0/24"}}),
    )
    .await;
    add("subnet", &subnet);
    let router = post(
        s,
        Service::Network,
        "routers",
        "router",
        json!({"router": {"name": c.capo_network(), "description": capo, "external_gateway_info": {"network_id": public}}}),
    )
    .await;
    s.request(&Call::put(
        Service::Network,
        format!("routers/{router}/add_router_interface"),
        json!({"subnet_id": subnet}),
    ))
    .await
    .unwrap();
    add("router", &router);
    // CAPO's managed groups (untagged here: older CAPO without spec.tags), referencing each other
    let mut groups = Vec::new();
    for name in c.capo_security_groups().into_iter().take(2) {
        let g = post(
            s,
            Service::Network,
            "security-groups",
            "security_group",
            json!({"security_group": {"name": name, "description": capo}}),
        )
        .await;
        add("security-group", &g);
        groups.push(g);
    }
    for (a, b) in [(0, 1), (1, 0)] {
        post(
            s,
            Service::Network,
            "security-group-rules",
            "security_group_rule",
            json!({"security_group_rule": {"security_group_id": groups[a], "direction": "ingress", "protocol": "tcp", "port_range_min": 10250, "port_range_max": 10250, "remote_group_id": groups[b]}}),
        )
        .await;
    }
    // our CNI group, tagged
    let cni = post(s, Service::Network, "security-groups", "security_group", json!({"security_group": {"name": c.cni_security_group(), "description": c.description("CNI traffic")}})).await;
    s.request(&Call::put(
        Service::Network,
        format!("security-groups/{cni}/tags"),
        json!({"tags": tags}),
    ))
    .await
    .unwrap();
    add("security-group", &cni);
    // OCCM's group for a Service
    let occm_sg = post(
        s,
        Service::Network,
        "security-groups",
        "security_group",
        json!({"security_group": {"name": format!("lb-sg-{}", c.name), "description": format!("Security Group for default/web Service LoadBalancer in cluster {}", c.name)}}),
    )
    .await;
    add("security-group", &occm_sg);
    // a machine port, tagged, and a server on the network, tagged (CAPO)
    let port = post(s, Service::Network, "ports", "port", json!({"port": {"name": format!("{}-md-0-abcde-0", c.name), "network_id": net, "description": capo}})).await;
    s.request(&Call::put(
        Service::Network,
        format!("ports/{port}/tags"),
        json!({"tags": tags}),
    ))
    .await
    .unwrap();
    add("port", &port);
    let server = s
        .request(
            &Call::post(
                Service::Compute,
                "servers",
                json!({"server": {"name": format!("{}-md-0-abcde", c.name), "imageRef": image, "flavorRef": flavor, "networks": [{"port": port}], "tags": tags}}),
            )
            .microversion(2, 52),
        )
        .await
        .unwrap();
    add("server", server["server"]["id"].as_str().unwrap());
    // a machine of a cluster made without OpenStackCluster.spec.tags: untagged, found by its port
    let old = s
        .request(&Call::post(
            Service::Compute,
            "servers",
            json!({"server": {"name": format!("{}-md-0-untagged", c.name), "imageRef": image, "flavorRef": flavor, "networks": [{"uuid": net}]}}),
        ))
        .await
        .unwrap();
    let old_id = old["server"]["id"].as_str().unwrap().to_string();
    for _ in 0..120 {
        let v = s
            .get(Service::Compute, &format!("servers/{old_id}"))
            .await
            .unwrap();
        if v["server"]["status"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    add("server", &old_id);
    // the API load balancer (CAPO, tagged) and a Service's (OCCM, by name)
    let api_lb = post(
        s,
        Service::LoadBalancer,
        "lbaas/loadbalancers",
        "loadbalancer",
        json!({"loadbalancer": {"name": c.capo_api_lb(), "vip_subnet_id": subnet, "tags": tags, "description": capo}}),
    )
    .await;
    add("load-balancer", &api_lb);
    let svc_lb = post(
        s,
        Service::LoadBalancer,
        "lbaas/loadbalancers",
        "loadbalancer",
        json!({"loadbalancer": {"name": format!("kube_service_{}_default_web", c.name), "vip_subnet_id": subnet}}),
    )
    .await;
    add("load-balancer", &svc_lb);
    wait_lb_active(s, &api_lb).await;
    wait_lb_active(s, &svc_lb).await;
    // OCCM's floating IP for the Service
    let fip = post(
        s,
        Service::Network,
        "floatingips",
        "floatingip",
        json!({"floatingip": {"floating_network_id": public, "description": format!("Floating IP for Kubernetes external service default/web from cluster {}", c.name)}}),
    )
    .await;
    add("floating-ip", &fip);
    // a PersistentVolume's volume (CSI metadata)
    let vol = post(
        s,
        Service::BlockStorage,
        "volumes",
        "volume",
        json!({"volume": {"name": format!("pvc-{}", c.name), "size": 1, "metadata": {"cinder.csi.openstack.org/cluster": c.name}}}),
    )
    .await;
    add("volume", &vol);
    // the control plane's server group (exact name)
    let sg = common::server_group(
        s,
        &spec::render::names::control_plane(&c.name),
        "anti-affinity",
    )
    .await;
    add("server-group", &sg);
    ids
}

/// Every resource of the project, by kind (the ones the sweep deals in).
async fn inventory(s: &Session, project: &str) -> Ids {
    let mut ids = Ids::new();
    for (kind, service, path, key) in [
        ("network", Service::Network, "networks", "networks"),
        ("subnet", Service::Network, "subnets", "subnets"),
        ("router", Service::Network, "routers", "routers"),
        (
            "security-group",
            Service::Network,
            "security-groups",
            "security_groups",
        ),
        ("port", Service::Network, "ports", "ports"),
        (
            "floating-ip",
            Service::Network,
            "floatingips",
            "floatingips",
        ),
        (
            "load-balancer",
            Service::LoadBalancer,
            "lbaas/loadbalancers",
            "loadbalancers",
        ),
        ("server", Service::Compute, "servers", "servers"),
        (
            "server-group",
            Service::Compute,
            "os-server-groups",
            "server_groups",
        ),
        ("volume", Service::BlockStorage, "volumes", "volumes"),
    ] {
        let call = if service == Service::Network || service == Service::LoadBalancer {
            Call::get(service, path).query("project_id", project)
        } else {
            Call::get(service, path)
        };
        for item in s.list(call, key).await.unwrap() {
            ids.insert((kind.to_string(), item["id"].as_str().unwrap().to_string()));
        }
    }
    ids
}

#[tokio::test]
async fn sweeping_one_cluster_removes_all_of_it_and_nothing_else() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let admin = common::admin(&clouds).await;
    let project = common::TestProject::create(&admin, "sweep").await;
    project
        .set_quotas(
            &admin,
            json!({}),
            json!({"security_group": 50, "security_group_rule": 500, "floatingip": 20, "router": 10, "network": 20, "subnet": 20, "port": 100}),
            json!({}),
        )
        .await;
    let s = project.session().await;
    let public = id_by_name(&s, Service::Network, "networks", "networks", "public").await;
    let image = id_by_name(&s, Service::Image, "images", "images", "fake-image").await;
    let flavor = id_by_name(&s, Service::Compute, "flavors", "flavors", "m1.nano").await;

    let a = ClusterIdentity::new("alpha", "fleet");
    let b = ClusterIdentity::new("beta", "fleet");
    // names start like alpha's: `k8s-clusterapi-cluster-fleet-alpha-eu`, `kube_service_alpha-eu_…`
    let decoy = ClusterIdentity::new("alpha-eu", "fleet");
    let a_ids = cluster_resources(&s, &a, &public, &image, &flavor).await;
    let b_ids = cluster_resources(&s, &b, &public, &image, &flavor).await;
    let d_ids = cluster_resources(&s, &decoy, &public, &image, &flavor).await;
    let before = inventory(&s, &project.project_id).await;
    for ids in [&a_ids, &b_ids, &d_ids] {
        assert!(ids.is_subset(&before));
    }

    let opts = SweepOptions {
        server_groups: vec![spec::render::names::control_plane(&a.name)],
        wait: Duration::from_secs(120),
        ..SweepOptions::default()
    };
    // dry run: lists A's resources (all of them, none of the others), changes nothing
    let dry = sweep(
        &s,
        &a,
        &SweepOptions {
            dry_run: true,
            ..opts.clone()
        },
    )
    .await
    .unwrap();
    assert!(dry.deleted.is_empty() && dry.failed.is_empty());
    let listed: BTreeSet<String> = dry.found.iter().map(|f| f.id.clone()).collect();
    for (kind, id) in &a_ids {
        assert!(listed.contains(id), "dry run misses {kind} {id}");
    }
    for (kind, id) in b_ids.iter().chain(&d_ids) {
        assert!(
            !listed.contains(id),
            "dry run lists another cluster's {kind} {id}"
        );
    }
    assert_eq!(
        inventory(&s, &project.project_id).await,
        before,
        "the dry run changed something"
    );

    let t0 = std::time::Instant::now();
    let report = sweep(&s, &a, &opts).await.unwrap();
    let took = t0.elapsed();
    assert!(report.is_clean(), "failures: {:?}", report.failed);
    let after = inventory(&s, &project.project_id).await;
    let left: Vec<_> = a_ids.intersection(&after).collect();
    assert!(left.is_empty(), "alpha's resources left: {left:?}");
    let lost: Vec<_> = b_ids
        .union(&d_ids)
        .filter(|i| !after.contains(*i))
        .collect();
    assert!(lost.is_empty(), "other clusters lost: {lost:?}");
    println!(
        "sweep of alpha: {} resources deleted in {took:?}",
        report.deleted.len()
    );

    // a second sweep finds nothing and succeeds (idempotent)
    let again = sweep(&s, &a, &opts).await.unwrap();
    assert!(again.found.is_empty(), "{:?}", again.found);

    // clean up the others so the project can go
    for c in [&b, &decoy] {
        let o = SweepOptions {
            server_groups: vec![spec::render::names::control_plane(&c.name)],
            ..opts.clone()
        };
        let r = sweep(&s, c, &o).await.unwrap();
        assert!(r.is_clean(), "{:?}", r.failed);
    }
    project.delete(&admin).await;
}
