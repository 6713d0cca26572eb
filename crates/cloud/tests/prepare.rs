//! Preparing a project for a cluster against the world's OpenStack: the CNI security group, the
//! anti-affinity server groups and the node image (downloaded from a server on 127.0.0.1), all
//! idempotent, tagged, and following changes of the definition.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloud::identity::MANAGED_TAG;
use cloud::prepare::{Outcome, PrepareOptions, cni_security_group_name, prepare};
use cloud::{Call, ClusterIdentity, Error, Service, Session};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use spec::model::ClusterDefinition;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A small but well-formed qcow2 header (version 3, 64 KiB clusters, virtual size 1 GiB), padded.
fn tiny_qcow2() -> Vec<u8> {
    let mut d = vec![0u8; 4 * 65536];
    let be32 = |d: &mut Vec<u8>, at: usize, v: u32| d[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let be64 = |d: &mut Vec<u8>, at: usize, v: u64| d[at..at + 8].copy_from_slice(&v.to_be_bytes());
    d[..4].copy_from_slice(b"QFI\xfb");
    be32(&mut d, 4, 3); // version
    be32(&mut d, 20, 16); // cluster_bits
    be64(&mut d, 24, 1 << 30); // size
    be32(&mut d, 36, 2); // l1_size
    be64(&mut d, 40, 3 * 65536); // l1_table_offset
    be64(&mut d, 48, 65536); // refcount_table_offset
    be32(&mut d, 56, 1); // refcount_table_clusters
    be32(&mut d, 96, 4); // refcount_order
    be32(&mut d, 100, 104); // header_length
    // refcount table -> refcount block at cluster 2; the four clusters in use have refcount 1
    be64(&mut d, 65536, 2 * 65536);
    for c in 0..4 {
        d[2 * 65536 + 2 * c + 1] = 1;
    }
    d
}

/// Serves `body` at `/<path>` on 127.0.0.1 (HTTP/1.1, one request per connection); counts GETs.
async fn serve(path: &'static str, body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let body = Arc::new(body);
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let head = if line.starts_with(&format!("GET /{path} ")) {
                    counter.fetch_add(1, Ordering::SeqCst);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .into()
                };
                let _ = conn.write_all(head.as_bytes()).await;
                if head.starts_with("HTTP/1.1 200") {
                    let _ = conn.write_all(&body).await;
                }
                let _ = conn.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/{path}"), hits)
}

fn definition(name: &str, cni: &str, workers_policy: &str, image: Value) -> ClusterDefinition {
    serde_json::from_value(json!({
        "name": name,
        "namespace": "fleet",
        "kubernetesVersion": "v1.33.1",
        "controlPlane": {"count": 1, "flavor": "m1.tiny"},
        "workers": [
            {"name": "md-0", "count": 1, "flavor": "m1.tiny"},
            {"name": "md-1", "count": 1, "flavor": "m1.tiny"},
        ],
        "network": {"cni": cni},
        "antiAffinity": {"enabled": true, "controlPlane": "hard", "workers": workers_policy},
        "image": image,
    }))
    .unwrap()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tags(v: &Value) -> Vec<String> {
    v["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn sg_rules(s: &Session, sg: &str) -> Vec<Value> {
    s.list(
        Call::get(Service::Network, "security-group-rules").query("security_group_id", sg),
        "security_group_rules",
    )
    .await
    .unwrap()
}

async fn server_groups(s: &Session) -> Vec<Value> {
    s.list(
        Call::get(Service::Compute, "os-server-groups").microversion(2, 64),
        "server_groups",
    )
    .await
    .unwrap()
}

async fn images_named(s: &Session, name: &str) -> Vec<Value> {
    s.list(
        Call::get(Service::Image, "images").query("name", name),
        "images",
    )
    .await
    .unwrap()
}

/// Deletes what prepare made in the project (project deletion would leave it behind).
async fn clean_up(s: &Session, id: &ClusterIdentity, image_names: &[&str]) {
    let groups = s
        .list(
            Call::get(Service::Network, "security-groups")
                .query("name", cni_security_group_name(id)),
            "security_groups",
        )
        .await
        .unwrap();
    for g in groups {
        let gid = g["id"].as_str().unwrap();
        s.delete_if_exists(Service::Network, &format!("security-groups/{gid}"))
            .await
            .unwrap();
    }
    for g in server_groups(s).await {
        let gid = g["id"].as_str().unwrap();
        s.delete_if_exists(Service::Compute, &format!("os-server-groups/{gid}"))
            .await
            .unwrap();
    }
    for name in image_names {
        for i in images_named(s, name).await {
            let iid = i["id"].as_str().unwrap();
            s.delete_if_exists(Service::Image, &format!("images/{iid}"))
                .await
                .unwrap();
        }
    }
}

fn fast() -> PrepareOptions {
    PrepareOptions {
        image_timeout: Duration::from_secs(120),
        poll_interval: Duration::from_millis(500),
        ..PrepareOptions::default()
    }
}

#[tokio::test]
async fn prepare_twice_creates_nothing_the_second_time_and_follows_the_cni() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let admin = common::admin(&clouds).await;
    let project = common::TestProject::create(&admin, "prep").await;
    let s = project.session().await;

    let qcow2 = tiny_qcow2();
    let (url, hits) = serve("node.qcow2", qcow2.clone()).await;
    let image_name = format!("{}-ubuntu-2204-kube-v1.33.1", project.name);
    let image =
        json!({"name": image_name, "url": url, "format": "qcow2", "sha256": sha256_hex(&qcow2)});
    let def = definition("prep", "cilium", "soft", image.clone());
    let id = ClusterIdentity::of(&def);
    let opts = fast();

    let t = Instant::now();
    let first = prepare(&s, &def, &opts).await.unwrap();
    println!("first run: {:?}\n{first}", t.elapsed());
    let t = Instant::now();
    let second = prepare(&s, &def, &opts).await.unwrap();
    println!("second run: {:?}\n{second}", t.elapsed());

    // --- the security group: same id, same rules, tagged
    let sg = &first.security_group;
    assert_eq!(sg.name, "k8s-fleet-prep-cni");
    assert_eq!(sg.outcome, Outcome::Created);
    assert_eq!(sg.rules_added.len(), 4, "{sg:?}");
    assert_eq!(second.security_group.id, sg.id);
    assert_eq!(second.security_group.outcome, Outcome::Existing);
    assert_eq!(second.security_group.rule_ids, sg.rule_ids);
    assert!(second.security_group.rules_added.is_empty());
    assert!(second.security_group.rules_removed.is_empty());
    assert!(!second.changed(), "{second}");
    let group = s
        .get(Service::Network, &format!("security-groups/{}", sg.id))
        .await
        .unwrap()["security_group"]
        .clone();
    let group_tags = tags(&group);
    assert!(
        group_tags.contains(&MANAGED_TAG.to_string()),
        "{group_tags:?}"
    );
    assert!(group_tags.contains(&id.tag()), "{group_tags:?}");
    let rules = sg_rules(&s, &sg.id).await;
    let ours: Vec<&Value> = rules
        .iter()
        .filter(|r| {
            r["description"]
                .as_str()
                .unwrap_or("")
                .starts_with("manage: ")
        })
        .collect();
    assert_eq!(ours.len(), 4, "{rules:#?}");
    for r in &ours {
        assert_eq!(r["remote_group_id"], json!(sg.id));
        assert_eq!(r["direction"], "ingress");
        assert_eq!(r["ethertype"], "IPv4");
    }
    let vxlan = ours
        .iter()
        .find(|r| r["description"] == "manage: cilium-vxlan")
        .unwrap();
    assert_eq!(vxlan["protocol"], "udp");
    assert_eq!(vxlan["port_range_min"], 8472);
    let rule_count = rules.len();

    // --- server groups: exactly three, right policies, same ids
    let listed = server_groups(&s).await;
    assert_eq!(listed.len(), 3, "{listed:#?}");
    let policy_of = |name: &str| {
        listed
            .iter()
            .find(|g| g["name"] == name)
            .map(|g| g["policy"].as_str().unwrap().to_string())
    };
    assert_eq!(
        policy_of("prep-control-plane").as_deref(),
        Some("anti-affinity")
    );
    assert_eq!(
        policy_of("prep-md-0").as_deref(),
        Some("soft-anti-affinity")
    );
    assert_eq!(
        policy_of("prep-md-1").as_deref(),
        Some("soft-anti-affinity")
    );
    assert!(
        first
            .server_groups
            .iter()
            .all(|g| g.outcome == Outcome::Created)
    );
    assert!(
        second
            .server_groups
            .iter()
            .all(|g| g.outcome == Outcome::Existing)
    );
    let ids = |p: &cloud::prepare::Prepared| {
        p.server_groups
            .iter()
            .map(|g| g.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&second));

    // --- the image: one, active, tagged, SCS metadata, downloaded once
    let img = first.image.as_ref().unwrap();
    assert_eq!(img.outcome, Outcome::Created);
    assert_eq!(second.image.as_ref().unwrap().id, img.id);
    assert_eq!(second.image.as_ref().unwrap().outcome, Outcome::Existing);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the second run must not download"
    );
    let found = images_named(&s, &image_name).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    let i = &found[0];
    assert_eq!(i["status"], "active");
    assert_eq!(i["disk_format"], "qcow2");
    assert_eq!(i["container_format"], "bare");
    assert_eq!(i["min_disk"], 1);
    assert_eq!(i["size"], qcow2.len());
    assert_eq!(i["os_distro"], "ubuntu");
    assert_eq!(i["os_version"], "22.04");
    assert_eq!(i["architecture"], "x86_64");
    assert_eq!(i["hw_disk_bus"], "scsi");
    assert_eq!(i["hw_scsi_model"], "virtio-scsi");
    assert_eq!(i["hw_rng_model"], "virtio");
    assert_eq!(i["kubernetes_version"], "v1.33.1");
    assert_eq!(i["image_source"], json!(url));
    assert_eq!(i["image_original_user"], "ubuntu");
    assert_eq!(i["replace_frequency"], "never");
    assert_eq!(i["uuid_validity"], "none");
    assert_eq!(i["os_hash_algo"], "sha512");
    let image_tags = tags(i);
    assert!(
        image_tags.contains(&MANAGED_TAG.to_string()),
        "{image_tags:?}"
    );
    assert!(image_tags.contains(&id.tag()), "{image_tags:?}");

    // --- a second cluster using the same image adds its tag, uploads nothing
    let other = definition("prep2", "cilium", "soft", image.clone());
    let other_image = cloud::prepare::ensure_image(&s, &other, &ClusterIdentity::of(&other), &opts)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other_image.id, img.id);
    assert_eq!(other_image.outcome, Outcome::Updated);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let i = s
        .get(Service::Image, &format!("images/{}", img.id))
        .await
        .unwrap();
    assert!(
        tags(&i).contains(&"manage-cluster=prep2".to_string()),
        "{i:#}"
    );

    // --- a rule of the user's in our group survives; CNI to calico, workers to hard anti-affinity
    s.request(&Call::post(
        Service::Network,
        "security-group-rules",
        json!({"security_group_rule": {"security_group_id": sg.id, "direction": "ingress",
            "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
            "remote_ip_prefix": "10.0.0.0/8", "description": "ssh from the office"}}),
    ))
    .await
    .unwrap();
    let calico = definition("prep", "calico", "hard", image.clone());
    let t = Instant::now();
    let third = prepare(&s, &calico, &opts).await.unwrap();
    println!("calico run: {:?}\n{third}", t.elapsed());
    assert_eq!(third.security_group.id, sg.id);
    assert_eq!(third.security_group.outcome, Outcome::Updated);
    assert_eq!(third.security_group.rules_added.len(), 4);
    assert_eq!(third.security_group.rules_removed.len(), 4);
    let rules = sg_rules(&s, &sg.id).await;
    let descriptions: Vec<&str> = rules
        .iter()
        .filter_map(|r| r["description"].as_str())
        .collect();
    assert_eq!(rules.len(), rule_count + 1, "{descriptions:?}");
    for want in [
        "manage: calico-bgp",
        "manage: calico-ipip",
        "manage: calico-vxlan",
        "manage: calico-typha",
        "ssh from the office",
    ] {
        assert!(
            descriptions.contains(&want),
            "{want} missing: {descriptions:?}"
        );
    }
    assert!(
        !descriptions.iter().any(|d| d.contains("cilium")),
        "{descriptions:?}"
    );
    let ipip = rules
        .iter()
        .find(|r| r["description"] == "manage: calico-ipip")
        .unwrap();
    println!(
        "IP-in-IP rule as Neutron keeps it: protocol {}",
        ipip["protocol"]
    );
    // the control plane's group was right; the empty worker groups were replaced
    let by_name = |p: &cloud::prepare::Prepared, n: &str| {
        p.server_groups
            .iter()
            .find(|g| g.name == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        by_name(&third, "prep-control-plane").outcome,
        Outcome::Existing
    );
    for n in ["prep-md-0", "prep-md-1"] {
        let g = by_name(&third, n);
        assert_eq!(g.outcome, Outcome::Replaced);
        assert_ne!(g.id, by_name(&first, n).id);
    }
    let listed = server_groups(&s).await;
    assert_eq!(listed.len(), 3, "{listed:#?}");
    assert!(
        listed.iter().all(|g| g["policy"] == "anti-affinity"),
        "{listed:#?}"
    );

    // and once more: nothing to do
    let fourth = prepare(&s, &calico, &opts).await.unwrap();
    assert!(!fourth.changed(), "{fourth}");
    assert_eq!(sg_rules(&s, &sg.id).await.len(), rule_count + 1);

    clean_up(&s, &id, &[&image_name]).await;
    project.delete(&admin).await;
}

#[tokio::test]
async fn checksum_mismatch_uploads_nothing_and_an_interrupted_upload_is_redone() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let admin = common::admin(&clouds).await;
    let project = common::TestProject::create(&admin, "prepimg").await;
    let s = project.session().await;

    let qcow2 = tiny_qcow2();
    let (url, hits) = serve("img.qcow2", qcow2.clone()).await;
    let image_name = format!("{}-node", project.name);
    let wrong = "0".repeat(64);
    let def = definition(
        "prepimg",
        "cilium",
        "soft",
        json!({"name": image_name, "url": url, "format": "qcow2", "sha256": wrong}),
    );
    let id = ClusterIdentity::of(&def);
    let opts = fast();

    let err = prepare(&s, &def, &opts).await.unwrap_err();
    let text = err.to_string();
    println!("{text}");
    assert!(matches!(err, Error::Invalid(_)), "{text}");
    assert!(
        text.contains("SHA-256") && text.contains(&wrong) && text.contains(&sha256_hex(&qcow2)),
        "{text}"
    );
    assert!(text.contains("nothing was uploaded"), "{text}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(images_named(&s, &image_name).await.is_empty());
    // the other parts ran to their end although the image failed: nothing half-done in flight
    let listed = server_groups(&s).await;
    assert_eq!(listed.len(), 3, "{listed:#?}");

    // an earlier run died after creating the image record: it is queued, tagged as ours
    let leftover = s
        .request(&Call::post(
            Service::Image,
            "images",
            json!({"name": image_name, "disk_format": "qcow2", "container_format": "bare",
                "tags": [MANAGED_TAG, id.tag()]}),
        ))
        .await
        .unwrap();
    let leftover_id = leftover["id"].as_str().unwrap().to_string();
    assert_eq!(leftover["status"], "queued");

    let good = definition(
        "prepimg",
        "cilium",
        "soft",
        json!({"name": image_name, "url": url, "format": "qcow2", "sha256": sha256_hex(&qcow2)}),
    );
    let done = prepare(&s, &good, &opts).await.unwrap();
    let img = done.image.unwrap();
    assert_eq!(img.outcome, Outcome::Created);
    assert_ne!(img.id, leftover_id);
    let found = images_named(&s, &image_name).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["id"], json!(img.id));
    assert_eq!(found[0]["status"], "active");

    // a raw image that claims to be qcow2 is refused before anything is created
    let (raw_url, _) = serve("disk.raw", b"not a qcow2 at all, just bytes".to_vec()).await;
    let raw_name = format!("{}-raw", project.name);
    let bad_format = definition(
        "prepimg",
        "cilium",
        "soft",
        json!({"name": raw_name, "url": raw_url, "format": "qcow2"}),
    );
    let err = prepare(&s, &bad_format, &opts).await.unwrap_err();
    assert!(err.to_string().contains("not a qcow2 image"), "{err}");
    assert!(images_named(&s, &raw_name).await.is_empty());

    clean_up(&s, &id, &[&image_name, &raw_name]).await;
    project.delete(&admin).await;
}
