//! Smoke test of the world's Docker part: a container created through the Docker API (the docker
//! CLI on the world's own socket) from the local node image runs kind's in-node steps, and serves
//! a real kube-apiserver of the pinned version on a published 127.0.0.1 port.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use test_world::{World, run, unique_name, world_or_skip};

fn docker(world: &World) -> Result<Command> {
    let host = world.var("DOCKER_HOST").context("DOCKER_HOST")?;
    let mut c = Command::new("docker");
    c.env("DOCKER_HOST", host);
    Ok(c)
}

fn docker_stdin(world: &World, args: &[&str], input: &str) -> Result<String> {
    let mut child = docker(world)?
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting docker")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// kind v0.32's kubeadm config for a one-node cluster (v1beta4), as its in-node step writes it.
fn kubeadm_config(cluster: &str, node: &str, ip: &str, version: &str) -> String {
    format!(
        r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
metadata:
  name: config
kubernetesVersion: {version}
clusterName: "{cluster}"
controlPlaneEndpoint: "{node}:6443"
apiServer:
  certSANs: [localhost, "127.0.0.1"]
networking:
  podSubnet: "10.244.0.0/16"
  serviceSubnet: "10.96.0.0/16"
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
metadata:
  name: config
bootstrapTokens:
- token: "abcdef.0123456789abcdef"
localAPIEndpoint:
  advertiseAddress: "{ip}"
  bindPort: 6443
nodeRegistration:
  criSocket: "unix:///run/containerd/containerd.sock"
  kubeletExtraArgs:
    - name: "node-ip"
      value: "{ip}"
    - name: "provider-id"
      value: "kind://docker/{cluster}/{node}"
skipPhases:
  - preflight
"#
    )
}

struct Cleanup<'a>(&'a World, String, String);
impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = docker(self.0) {
            let _ = c.args(["rm", "-f", "-v", &self.1]).output();
        }
        if let Ok(mut c) = docker(self.0) {
            let _ = c.args(["network", "rm", &self.2]).output();
        }
    }
}

#[tokio::test]
async fn node_image_container_serves_the_pinned_api_server_on_a_published_port() -> Result<()> {
    let Some(world) = world_or_skip(&[
        "DOCKER_HOST",
        "WORLD_NODE_IMAGE",
        "WORLD_KUBERNETES_VERSION",
    ]) else {
        return Ok(());
    };
    let image = world.var("WORLD_NODE_IMAGE").context("image")?.to_owned();
    let version = world.kubernetes_version()?.to_owned();
    let cluster = unique_name("smoke");
    let node = format!("{cluster}-control-plane");
    let net = format!("{cluster}-net");
    let _cleanup = Cleanup(&world, node.clone(), net.clone());
    let t0 = Instant::now();

    run(docker(&world)?.args([
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=true",
        &net,
    ]))?;
    // kind's node options, except --privileged (not permitted on these machines)
    run(docker(&world)?.args([
        "run",
        "-d",
        "--name",
        &node,
        "--hostname",
        &node,
        "--network",
        &net,
        "--label",
        &format!("io.x-k8s.kind.cluster={cluster}"),
        "--label",
        "io.x-k8s.kind.role=control-plane",
        "--publish",
        "127.0.0.1:0:6443/tcp",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/run",
        "--volume",
        "/var",
        "--volume",
        "/lib/modules:/lib/modules:ro",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--restart",
        "on-failure:1",
        "--cgroupns",
        "private",
        "--tty",
        "--env",
        "KUBECONFIG=/etc/kubernetes/admin.conf",
        &image,
    ]))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = run(docker(&world)?.args(["logs", &node]))?;
        if logs.contains("Reached target Multi-User System") {
            break;
        }
        if Instant::now() > deadline {
            bail!("node container never printed kind's readiness line: {logs}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ip = run(docker(&world)?.args([
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &node,
    ]))?
    .trim()
    .to_owned();
    assert_eq!(
        run(docker(&world)?.args(["exec", &node, "cat", "/kind/version"]))?.trim(),
        version
    );
    docker_stdin(
        &world,
        &[
            "exec",
            "-i",
            &node,
            "sh",
            "-c",
            "mkdir -p /kind && cp /dev/stdin /kind/kubeadm.conf",
        ],
        &kubeadm_config(&cluster, &node, &ip, &version),
    )?;
    run(docker(&world)?.args([
        "exec",
        &node,
        "kubeadm",
        "init",
        "--config=/kind/kubeadm.conf",
        "--skip-token-print",
        "--v=6",
    ]))?;
    // kind's single-node fixups, storage class and readiness query, with the image's real kubectl
    let kc = ["kubectl", "--kubeconfig=/etc/kubernetes/admin.conf"];
    let exec = |extra: &[&str]| -> Result<String> {
        let mut args = vec!["exec", node.as_str()];
        args.extend_from_slice(&kc);
        args.extend_from_slice(extra);
        run(docker(&world)?.args(&args))
    };
    exec(&[
        "taint",
        "nodes",
        "--all",
        "node-role.kubernetes.io/control-plane-",
    ])?;
    let storage =
        run(docker(&world)?.args(["exec", &node, "cat", "/kind/manifests/default-storage.yaml"]))?;
    docker_stdin(
        &world,
        &[
            "exec",
            "-i",
            &node,
            "kubectl",
            "--kubeconfig=/etc/kubernetes/admin.conf",
            "apply",
            "-f",
            "-",
        ],
        &storage,
    )?;
    let ready = exec(&[
        "get",
        "nodes",
        "--selector=node-role.kubernetes.io/control-plane",
        "-o=jsonpath={.items..status.conditions[-1:].status}",
    ])?;
    assert!(ready.contains("True"), "node not Ready: {ready}");

    // kind's kubeconfig export: admin.conf with the server rewritten to the published port
    let port = run(docker(&world)?.args(["port", &node, "6443/tcp"]))?;
    let hostport = port.lines().next().context("no published port")?.trim();
    assert!(
        hostport.starts_with("127.0.0.1:"),
        "published on {hostport}"
    );
    let admin = run(docker(&world)?.args(["exec", &node, "cat", "/etc/kubernetes/admin.conf"]))?;
    let exported: String = admin
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("server: ") {
                format!("    server: https://{hostport}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = std::env::temp_dir().join(&cluster);
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, exported)?;
    let client = test_world::client_from_kubeconfig(&kubeconfig).await?;
    let v = client.apiserver_version().await?;
    assert_eq!(v.git_version, version);
    println!(
        "node image {image}: API server {} on https://{hostport} {:.1}s after docker run",
        v.git_version,
        t0.elapsed().as_secs_f64()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
