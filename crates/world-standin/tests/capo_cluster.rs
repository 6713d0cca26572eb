//! Acceptance smoke of the world's OpenStack + CAPO part: a CAPI `Cluster` (v1beta2) with an
//! OpenStackCluster, a KubeadmControlPlane, OpenStackMachineTemplates and a MachineDeployment
//! gets its network, router, security groups, load balancer and servers from the real CAPO in the
//! local OpenStack (checked with the openstack client), reaches the conditions the real CAPI
//! controllers set (ControlPlaneInitialized, then Available), and its kubeconfig Secret opens the
//! world's workload API server, whose Nodes carry the Machines' providerIDs. Deleting the Cluster
//! removes its OpenStack resources.
//!
//! The only stand-in is `world-standin` (the booting nodes); see tests/world/README.md.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use test_world::{World, eventually, run, world_or_skip};

fn kubectl_stdin(world: &World, server: &str, args: &[&str], input: &str) -> Result<String> {
    let mut child = world
        .kubectl(server)?
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn get_json(world: &World, args: &[&str]) -> Result<Value> {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-o", "json"]);
    Ok(serde_json::from_str(&run(world
        .kubectl("mgmt")?
        .args(&all))?)?)
}

/// `openstack --os-cloud demo <args> -f json` with Debian's client (not a pyenv python).
fn openstack(world: &World, args: &[&str]) -> Result<Value> {
    let clouds = world.var("WORLD_OS_CLOUDS_YAML").context("clouds.yaml")?;
    let mut c = Command::new("/usr/bin/openstack");
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C.UTF-8")
        .env("OS_CLIENT_CONFIG_FILE", clouds)
        .args(["--os-cloud", "demo"])
        .args(args)
        .args(["-f", "json"]);
    Ok(serde_json::from_str(&run(&mut c)?)?)
}

fn names(v: &Value, key: &str) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get(key).and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn condition(obj: &Value, t: &str) -> Option<String> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
        .and_then(|c| c.get("status").and_then(Value::as_str).map(str::to_owned))
}

/// A self-signed CA and a client cert signed by it (external etcd's Secrets), PEM (cert, key) each.
fn etcd_pki(dir: &std::path::Path) -> Result<()> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let p = |f: &str| dir.join(f).display().to_string();
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args(["-days", "30", "-subj", "/CN=etcd-ca", "-keyout"])
        .args([p("ca.key"), "-out".into(), p("ca.crt")]))?;
    run(Command::new("openssl")
        .args(["req", "-new"])
        .args(ec)
        .args(["-subj", "/CN=apiserver-etcd-client", "-keyout"])
        .args([p("client.key"), "-out".into(), p("client.csr")]))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "30", "-CAcreateserial", "-in"])
        .args([
            p("client.csr"),
            "-CA".into(),
            p("ca.crt"),
            "-CAkey".into(),
            p("ca.key"),
        ])
        .args(["-out".to_owned(), p("client.crt")]))?;
    Ok(())
}

fn manifests(ns: &str, c: &str, version: &str) -> String {
    let provider_id = r#"openstack:///'{{ instance_id }}'"#;
    format!(
        r#"apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata: {{name: {c}, namespace: {ns}}}
spec:
  clusterNetwork:
    pods: {{cidrBlocks: [192.168.0.0/16]}}
    serviceDomain: cluster.local
  controlPlaneRef: {{apiGroup: controlplane.cluster.x-k8s.io, kind: KubeadmControlPlane, name: {c}-control-plane}}
  infrastructureRef: {{apiGroup: infrastructure.cluster.x-k8s.io, kind: OpenStackCluster, name: {c}}}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: OpenStackCluster
metadata: {{name: {c}, namespace: {ns}}}
spec:
  identityRef: {{cloudName: demo, name: {c}-cloud-config}}
  apiServerLoadBalancer: {{enabled: true}}
  # Octavia's no-op network driver invents the VIP without a Neutron port: no floating IP for it
  disableAPIServerFloatingIP: true
  externalNetwork: {{filter: {{name: public}}}}
  managedSecurityGroups: {{allowAllInClusterTraffic: true}}
  managedSubnets: [{{cidr: 10.6.0.0/24, dnsNameservers: [192.0.2.53]}}]
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: OpenStackMachineTemplate
metadata: {{name: {c}-control-plane, namespace: {ns}}}
spec:
  template:
    spec:
      flavor: m1.tiny
      image: {{filter: {{name: fake-image}}}}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: OpenStackMachineTemplate
metadata: {{name: {c}-md-0, namespace: {ns}}}
spec:
  template:
    spec:
      flavor: m1.tiny
      image: {{filter: {{name: fake-image}}}}
---
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
kind: KubeadmControlPlane
metadata: {{name: {c}-control-plane, namespace: {ns}}}
spec:
  replicas: 1
  version: {version}
  machineTemplate:
    spec:
      infrastructureRef: {{apiGroup: infrastructure.cluster.x-k8s.io, kind: OpenStackMachineTemplate, name: {c}-control-plane}}
  kubeadmConfigSpec:
    clusterConfiguration:
      # external etcd: KCP's etcd checks port-forward to etcd pods, impossible here
      etcd:
        external:
          endpoints: [https://etcd.example.invalid:2379]
          caFile: /etc/kubernetes/pki/etcd/ca.crt
          certFile: /etc/kubernetes/pki/apiserver-etcd-client.crt
          keyFile: /etc/kubernetes/pki/apiserver-etcd-client.key
    initConfiguration:
      nodeRegistration:
        name: '{{{{ local_hostname }}}}'
        kubeletExtraArgs: [{{name: provider-id, value: "{provider_id}"}}]
    joinConfiguration:
      nodeRegistration:
        name: '{{{{ local_hostname }}}}'
        kubeletExtraArgs: [{{name: provider-id, value: "{provider_id}"}}]
---
apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: KubeadmConfigTemplate
metadata: {{name: {c}-md-0, namespace: {ns}}}
spec:
  template:
    spec:
      joinConfiguration:
        nodeRegistration:
          name: '{{{{ local_hostname }}}}'
          kubeletExtraArgs: [{{name: provider-id, value: "{provider_id}"}}]
---
apiVersion: cluster.x-k8s.io/v1beta2
kind: MachineDeployment
metadata: {{name: {c}-md-0, namespace: {ns}}}
spec:
  clusterName: {c}
  replicas: 1
  selector: {{matchLabels: {{}}}}
  template:
    spec:
      clusterName: {c}
      version: {version}
      bootstrap:
        configRef: {{apiGroup: bootstrap.cluster.x-k8s.io, kind: KubeadmConfigTemplate, name: {c}-md-0}}
      infrastructureRef: {{apiGroup: infrastructure.cluster.x-k8s.io, kind: OpenStackMachineTemplate, name: {c}-md-0}}
"#
    )
}

#[tokio::test]
async fn capo_builds_a_cluster_in_the_local_openstack_and_capi_makes_it_available() -> Result<()> {
    let Some(world) = world_or_skip(&[
        "WORLD_KUBECONFIG_MGMT",
        "WORLD_KUBECONFIG_WORKLOAD",
        "WORLD_OS_CLOUDS_YAML",
        "WORLD_CAPO_SERVERS",
    ]) else {
        return Ok(());
    };
    let version = world.kubernetes_version()?.to_owned();
    let ns = world.namespace("mgmt", "capo-smoke").await?;
    let n = ns.name.clone();
    let c = "c1";
    let t0 = Instant::now();

    // credentials (the demo project) and external etcd's certificates, as a user provides them
    let dir = std::env::temp_dir().join(&n);
    std::fs::create_dir_all(&dir)?;
    etcd_pki(&dir)?;
    let clouds = world
        .var("WORLD_OS_CLOUDS_YAML")
        .context("clouds")?
        .to_owned();
    let p = |f: &str| dir.join(f).display().to_string();
    run(world.kubectl("mgmt")?.args([
        "-n",
        &n,
        "create",
        "secret",
        "generic",
        &format!("{c}-cloud-config"),
        &format!("--from-file=clouds.yaml={clouds}"),
    ]))?;
    for (name, crt, key) in [
        ("etcd", "ca.crt", "ca.key"),
        ("apiserver-etcd-client", "client.crt", "client.key"),
    ] {
        run(world.kubectl("mgmt")?.args([
            "-n",
            &n,
            "create",
            "secret",
            "tls",
            &format!("{c}-{name}"),
            &format!("--cert={}", p(crt)),
            &format!("--key={}", p(key)),
        ]))?;
        run(world.kubectl("mgmt")?.args([
            "-n",
            &n,
            "label",
            "secret",
            &format!("{c}-{name}"),
            &format!("cluster.x-k8s.io/cluster-name={c}"),
        ]))?;
    }
    kubectl_stdin(
        &world,
        "mgmt",
        &["apply", "-f", "-"],
        &manifests(&n, c, &version),
    )?;

    // the real controllers' conditions
    let cluster_path = format!("cluster.cluster.x-k8s.io/{c}");
    eventually(
        Duration::from_secs(600),
        "ControlPlaneInitialized",
        || async {
            let cl = get_json(&world, &["-n", &n, "get", &cluster_path])?;
            Ok(
                (condition(&cl, "ControlPlaneInitialized").as_deref() == Some("True"))
                    .then_some(()),
            )
        },
    )
    .await?;
    let initialized = t0.elapsed();
    eventually(Duration::from_secs(600), "Cluster Available", || async {
        let cl = get_json(&world, &["-n", &n, "get", &cluster_path])?;
        Ok((condition(&cl, "Available").as_deref() == Some("True")).then_some(()))
    })
    .await?;
    println!(
        "Cluster {n}/{c}: ControlPlaneInitialized after {:.0}s, Available after {:.0}s",
        initialized.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    // what the real CAPO made in the local OpenStack
    let prefix = format!("k8s-clusterapi-cluster-{n}-{c}");
    assert!(names(&openstack(&world, &["network", "list"])?, "Name").contains(&prefix));
    assert!(names(&openstack(&world, &["router", "list"])?, "Name").contains(&prefix));
    let sgs = names(&openstack(&world, &["security", "group", "list"])?, "Name");
    for role in ["controlplane", "worker"] {
        let sg = format!("k8s-cluster-{n}-{c}-secgroup-{role}");
        assert!(sgs.contains(&sg), "no {sg} in {sgs:?}");
    }
    let lbs = openstack(&world, &["loadbalancer", "list"])?;
    let lb = lbs
        .as_array()
        .and_then(|a| {
            a.iter().find(|l| {
                l.get("name").and_then(Value::as_str) == Some(&format!("{prefix}-kubeapi"))
            })
        })
        .context("no API server load balancer")?;
    assert_eq!(
        lb.get("provisioning_status").and_then(Value::as_str),
        Some("ACTIVE")
    );
    let servers = openstack(&world, &["server", "list"])?;
    let machines = get_json(&world, &["-n", &n, "get", "machines.cluster.x-k8s.io"])?;
    let machines = machines["items"].as_array().context("machines")?.clone();
    assert_eq!(
        machines.len(),
        2,
        "one control-plane machine and one worker"
    );
    let mut provider_ids = BTreeSet::new();
    for m in &machines {
        let pid = m
            .pointer("/spec/providerID")
            .and_then(Value::as_str)
            .context("providerID")?;
        let id = pid.trim_start_matches("openstack:///");
        let server = servers
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|s| s.get("ID").and_then(Value::as_str) == Some(id))
            })
            .with_context(|| format!("no server {id}"))?;
        assert_eq!(server.get("Status").and_then(Value::as_str), Some("ACTIVE"));
        assert!(m.pointer("/status/nodeRef/name").is_some(), "no nodeRef");
        provider_ids.insert(pid.to_owned());
    }

    // the kubeconfig Secret opens the workload API server, which has the Nodes
    let secret = get_json(
        &world,
        &["-n", &n, "get", "secret", &format!("{c}-kubeconfig")],
    )?;
    let value = secret
        .pointer("/data/value")
        .and_then(Value::as_str)
        .context("value")?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, base64_decode(value)?)?;
    let nodes = run(Command::new(world.bin("kubectl")?).args([
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[*].spec.providerID}",
    ]))?;
    let on_nodes: BTreeSet<String> = nodes.split_whitespace().map(str::to_owned).collect();
    assert!(
        provider_ids.is_subset(&on_nodes),
        "{provider_ids:?} not in {on_nodes:?}"
    );
    let workload_url = world.apiserver_url("workload")?;
    assert!(
        std::fs::read_to_string(&kubeconfig)?.contains(workload_url.trim_end_matches('/')),
        "kubeconfig does not point at {workload_url}"
    );

    // deleting the Cluster removes what CAPO made
    run(world
        .kubectl("mgmt")?
        .args(["-n", &n, "delete", &cluster_path, "--wait=false"]))?;
    eventually(Duration::from_secs(300), "Cluster deletion", || async {
        let out = run(world.kubectl("mgmt")?.args([
            "-n",
            &n,
            "get",
            "clusters.cluster.x-k8s.io",
            "-o",
            "name",
        ]))?;
        Ok(out.trim().is_empty().then_some(()))
    })
    .await?;
    assert!(!names(&openstack(&world, &["network", "list"])?, "Name").contains(&prefix));
    let left = openstack(&world, &["server", "list"])?;
    for pid in &provider_ids {
        let id = pid.trim_start_matches("openstack:///");
        assert!(
            !left.as_array().is_some_and(|a| a
                .iter()
                .any(|s| s.get("ID").and_then(Value::as_str) == Some(id))),
            "server {id} left behind"
        );
    }
    println!(
        "Cluster {n}/{c} deleted with its OpenStack resources, {:.0}s in all",
        t0.elapsed().as_secs_f64()
    );
    std::fs::remove_dir_all(&dir)?;
    ns.delete().await?;
    Ok(())
}

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let out = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            ch.stdin
                .take()
                .map(|mut i| i.write_all(s.as_bytes()))
                .transpose()?;
            ch.wait_with_output()
        })?;
    if !out.status.success() {
        bail!("base64 -d failed");
    }
    Ok(out.stdout)
}
