//! Creating (or adopting) a cluster: the whole flow, step by step, as kind's `create.go`.
//!
//! An existing cluster of the same name is adopted when it is healthy (rerun-safe) and reported
//! as broken otherwise; `recreate` deletes it first. A failed creation removes what it created
//! unless `retain` is set.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::actions::{self, ADMIN_CONF, ActionContext};
use crate::provider::{
    CONTROL_PLANE_ROLE, DEFAULT_NETWORK, HostInfo, NodeSpec, Progress, Provider,
};
use crate::{Error, Result, kubeconfig};

/// What to create.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Cluster name (kind's `--name`, default `kind`).
    pub name: String,
    /// Node image reference.
    pub image: String,
    /// A `docker save` tarball to load the image from when it is absent (air-gapped hosts).
    pub image_archive: Option<PathBuf>,
    /// Run the node privileged (kind: always). Turn off for images that need no capabilities on
    /// hosts that refuse privileged containers.
    pub privileged: bool,
    /// Host port on 127.0.0.1 for the API server; 0 picks a free one (kind's default).
    pub api_server_port: u16,
    /// Pod subnet.
    pub pod_subnet: String,
    /// Service subnet.
    pub service_subnet: String,
    /// Docker network (kind: `kind`, or `KIND_EXPERIMENTAL_DOCKER_NETWORK`).
    pub network: String,
    /// The private kubeconfig file (written 0600).
    pub kubeconfig: PathBuf,
    /// Also merge the kubeconfig into this file (a user's `~/.kube/config`).
    pub merge_kubeconfig: Option<PathBuf>,
    /// How long to wait for the API server and the node to be ready.
    pub wait: Duration,
    /// Keep the node of a failed creation for debugging.
    pub retain: bool,
    /// Delete an existing cluster of this name first.
    pub recreate: bool,
}

impl CreateOptions {
    /// kind's defaults for cluster `name`; the kubeconfig goes to `kubeconfig`.
    pub fn new(name: &str, kubeconfig: PathBuf) -> Self {
        CreateOptions {
            name: name.to_string(),
            image: crate::node_image::DEFAULT_NODE_IMAGE.to_string(),
            image_archive: None,
            privileged: true,
            api_server_port: 0,
            pod_subnet: "10.244.0.0/16".into(),
            service_subnet: "10.96.0.0/16".into(),
            network: std::env::var("KIND_EXPERIMENTAL_DOCKER_NETWORK")
                .ok()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| DEFAULT_NETWORK.to_string()),
            kubeconfig,
            merge_kubeconfig: None,
            wait: Duration::from_secs(300),
            retain: false,
            recreate: false,
        }
    }
}

/// What [`create`] did.
#[derive(Debug, Clone)]
pub struct Created {
    /// Cluster name.
    pub name: String,
    /// The control-plane node container.
    pub node: String,
    /// The private kubeconfig file.
    pub kubeconfig: PathBuf,
    /// The API server URL in it (`https://127.0.0.1:<port>`).
    pub server: String,
    /// An existing healthy cluster was adopted instead of created.
    pub reused: bool,
    /// Each step with how long it took.
    pub steps: Vec<(String, Duration)>,
    /// Warnings about the host worth showing.
    pub warnings: Vec<String>,
}

/// The name of a cluster's control-plane node container: `<cluster>-control-plane`.
pub fn control_plane_name(cluster: &str) -> String {
    format!("{cluster}-{CONTROL_PLANE_ROLE}")
}

/// Checks a cluster name: it becomes part of container names, hostnames and contexts.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_string()))
    }
}

/// kind's host checks: rootless Docker needs cgroup v2 with delegated controllers (errors);
/// cgroup v1 works for kind but is deprecated (a warning).
pub fn check_host(info: &HostInfo) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if info.rootless {
        if info.cgroup_version != "2" {
            return Err(Error::Cgroups(format!(
                "rootless Docker needs cgroup v2 to run kind nodes, this host has cgroup v{}; boot with systemd.unified_cgroup_hierarchy=1 or use rootful Docker",
                if info.cgroup_version.is_empty() {
                    "?"
                } else {
                    &info.cgroup_version
                }
            )));
        }
        if !(info.memory_limit && info.pids_limit && info.cpu_shares) {
            return Err(Error::Cgroups(
                "rootless Docker must be delegated the memory, pids and cpu cgroup controllers (systemd: Delegate=yes for user@.service, see https://kind.sigs.k8s.io/docs/user/rootless/)".into(),
            ));
        }
    }
    if info.cgroup_version == "1" {
        warnings.push(format!(
            "this host uses cgroup v1 (driver {}): kind supports it only in deprecated mode, and the kubelet of Kubernetes 1.35+ refuses cgroup v1 unless configured to allow it",
            if info.cgroup_driver.is_empty() { "unknown" } else { &info.cgroup_driver }
        ));
    }
    Ok(warnings)
}

/// A free port on 127.0.0.1 (`0`), or a check that `port` is free.
fn api_server_port(port: u16) -> Result<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match TcpListener::bind(addr) {
        // Released right away, just before Docker binds it, as kind does.
        Ok(l) => l
            .local_addr()
            .map(|a| a.port())
            .map_err(|e| Error::io("127.0.0.1", e)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(Error::PortInUse { port }),
        Err(e) => Err(Error::io(format!("127.0.0.1:{port}"), e)),
    }
}

/// Environment of the node: admin kubeconfig, host proxies (NO_PROXY extended as kind does with
/// the network's subnets, the node name and the cluster's service domains).
fn node_env(
    node: &str,
    subnets: &[String],
    host_env: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut env = vec![format!("KUBECONFIG={ADMIN_CONF}")];
    let get = |k: &str| {
        host_env(k)
            .or_else(|| host_env(&k.to_lowercase()))
            .filter(|v| !v.is_empty())
    };
    let (http, https) = (get("HTTP_PROXY"), get("HTTPS_PROXY"));
    if http.is_some() || https.is_some() {
        if let Some(v) = http {
            env.push(format!("HTTP_PROXY={v}"));
            env.push(format!("http_proxy={v}"));
        }
        if let Some(v) = https {
            env.push(format!("HTTPS_PROXY={v}"));
            env.push(format!("https_proxy={v}"));
        }
        let mut no = get("NO_PROXY").unwrap_or_default();
        let extras = subnets.iter().map(String::as_str).chain([
            node,
            ".svc",
            ".svc.cluster",
            ".svc.cluster.local",
        ]);
        for extra in extras {
            if !no.is_empty() {
                no.push(',');
            }
            no.push_str(extra);
        }
        env.push(format!("NO_PROXY={no}"));
        env.push(format!("no_proxy={no}"));
    }
    if let Some(v) = host_env("KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER") {
        env.push(format!("KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER={v}"));
    }
    env
}

struct Steps<'a> {
    list: Vec<(String, Duration)>,
    status: Progress<'a>,
}

impl Steps<'_> {
    async fn run<T, E>(
        &mut self,
        name: &str,
        f: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> std::result::Result<T, E> {
        let start = Instant::now();
        let r = f.await;
        let took = start.elapsed();
        let mark = if r.is_ok() { "✓" } else { "✗" };
        (self.status)(&format!("{mark} {name} ({:.1}s)", took.as_secs_f64()));
        self.list.push((name.to_string(), took));
        r
    }
}

/// Creates cluster `o.name`, or adopts a healthy existing one; see the module docs.
pub async fn create<P: Provider>(
    p: &P,
    o: &CreateOptions,
    status: Progress<'_>,
) -> Result<Created> {
    validate_name(&o.name)?;
    let node = control_plane_name(&o.name);
    let mut steps = Steps {
        list: Vec::new(),
        status,
    };

    let existing = p.list_nodes(Some(&o.name)).await?;
    if !existing.is_empty() {
        if o.recreate {
            let names: Vec<String> = existing.iter().map(|n| n.name.clone()).collect();
            steps
                .run("Deleting the existing cluster", p.delete_nodes(&names))
                .await?;
        } else {
            let health = steps
                .run(
                    "Checking the existing cluster",
                    healthy(p, &o.name, &existing),
                )
                .await;
            return match health {
                Ok(node) => {
                    let server = steps
                        .run(
                            "Exporting the kubeconfig",
                            export_kubeconfig(
                                p,
                                &o.name,
                                &o.kubeconfig,
                                o.merge_kubeconfig.as_deref(),
                            ),
                        )
                        .await?;
                    tracing::info!(cluster = o.name, node, "adopted existing cluster");
                    Ok(Created {
                        name: o.name.clone(),
                        node,
                        kubeconfig: o.kubeconfig.clone(),
                        server,
                        reused: true,
                        steps: steps.list,
                        warnings: Vec::new(),
                    })
                }
                Err(reason) => Err(Error::BrokenCluster {
                    name: o.name.clone(),
                    node: existing
                        .iter()
                        .find(|n| n.role == CONTROL_PLANE_ROLE)
                        .unwrap_or(&existing[0])
                        .name
                        .clone(),
                    reason,
                }),
            };
        }
    }

    let info = p.host_info().await?;
    let warnings = check_host(&info)?;
    for w in &warnings {
        tracing::info!("{w}");
    }
    steps
        .run(
            &format!("Ensuring node image ({})", o.image),
            p.ensure_image(&o.image, o.image_archive.as_deref(), status),
        )
        .await?;
    steps
        .run(
            &format!("Ensuring network {}", o.network),
            p.ensure_network(&o.network),
        )
        .await?;
    let subnets = p.network_subnets(&o.network).await?;
    let port = api_server_port(o.api_server_port)?;
    let spec = NodeSpec {
        name: node.clone(),
        cluster: o.name.clone(),
        role: CONTROL_PLANE_ROLE.to_string(),
        image: o.image.clone(),
        network: o.network.clone(),
        privileged: o.privileged,
        api_server_port: port,
        env: node_env(&node, &subnets, |k| std::env::var(k).ok()),
        mount_lib_modules: true,
        mount_dev_mapper: info.needs_dev_mapper(),
        fuse_device: info.rootless,
        userns_host: info.userns_remap,
    };
    let result = async {
        steps.run("Preparing nodes", p.create_node(&spec)).await?;
        let ctx = ActionContext {
            provider: p,
            cluster: &o.name,
            node: &node,
            pod_subnet: &o.pod_subnet,
            service_subnet: &o.service_subnet,
            wait: o.wait,
        };
        steps
            .run("Writing configuration", actions::config::execute(&ctx))
            .await?;
        steps
            .run(
                "Starting control-plane",
                actions::kubeadm_init::execute(&ctx),
            )
            .await?;
        steps
            .run(
                "Removing the control-plane taint",
                actions::single_node::execute(&ctx),
            )
            .await?;
        steps
            .run("Installing CNI", actions::install_cni::execute(&ctx))
            .await?;
        steps
            .run(
                "Installing StorageClass",
                actions::install_storage::execute(&ctx),
            )
            .await?;
        steps
            .run(
                "Waiting for the control plane to be ready",
                actions::wait_ready::execute(&ctx),
            )
            .await?;
        let server = steps
            .run(
                "Exporting the kubeconfig",
                export_kubeconfig(p, &o.name, &o.kubeconfig, o.merge_kubeconfig.as_deref()),
            )
            .await?;
        steps
            .run(
                "Reaching the API server from the host",
                reach(&server, o.wait),
            )
            .await?;
        Ok(server)
    }
    .await;
    match result {
        Ok(server) => Ok(Created {
            name: o.name.clone(),
            node,
            kubeconfig: o.kubeconfig.clone(),
            server,
            reused: false,
            steps: steps.list,
            warnings,
        }),
        Err(e) => {
            if o.retain {
                tracing::warn!(node, "creation failed; keeping the node (retain)");
            } else if let Err(cleanup) = p.delete_nodes(std::slice::from_ref(&node)).await {
                tracing::warn!(node, error = %cleanup, "could not remove the failed node");
            }
            Err(e)
        }
    }
}

/// Why an existing cluster is not usable, or its control-plane node when it is.
async fn healthy<P: Provider>(
    p: &P,
    name: &str,
    nodes: &[crate::NodeInfo],
) -> Result<String, String> {
    let Some(cp) = nodes.iter().find(|n| n.role == CONTROL_PLANE_ROLE) else {
        return Err(format!(
            "it has no control-plane node (containers: {})",
            nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if !cp.is_running() {
        return Err(format!("its node {} is {}", cp.name, cp.state));
    }
    let admin = p
        .exec(&cp.name, &["test", "-f", ADMIN_CONF], None)
        .await
        .map_err(|e| e.to_string())?;
    if admin.exit_code != 0 {
        return Err(format!(
            "kubeadm init never completed in {} (no {ADMIN_CONF})",
            cp.name
        ));
    }
    // Right after a host or daemon restart the control plane may still be starting.
    let deadline = Instant::now() + Duration::from_secs(30);
    let kubeconfig = format!("--kubeconfig={ADMIN_CONF}");
    loop {
        let out = p
            .exec(
                &cp.name,
                &["kubectl", &kubeconfig, "get", "--raw", "/readyz"],
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
        if out.exit_code == 0 {
            tracing::debug!(
                cluster = name,
                node = cp.name,
                "existing cluster is healthy"
            );
            return Ok(cp.name.clone());
        }
        if Instant::now() > deadline {
            return Err(format!("its API server does not answer ({})", out.tail(2)));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Copies the node's admin.conf out, turns it into the `kind-<name>` kubeconfig pointing at the
/// published port, writes it 0600 to `path` and merges it into `merge` if given. Returns the
/// server URL.
pub async fn export_kubeconfig<P: Provider>(
    p: &P,
    name: &str,
    path: &Path,
    merge: Option<&Path>,
) -> Result<String> {
    let node = control_plane_name(name);
    let mut admin = None;
    let mut last = None;
    // kind tries 4 times, sleeping 0, 1, 50 and 100 ms.
    for wait_ms in [0u64, 1, 50, 100] {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        match p.exec(&node, &["cat", ADMIN_CONF], None).await {
            Ok(out) if out.exit_code == 0 => {
                admin = Some(out.stdout_text());
                break;
            }
            Ok(out) => last = Some(out.tail(2)),
            Err(e) => last = Some(e.to_string()),
        }
    }
    let admin = admin.ok_or_else(|| Error::Kubeconfig {
        path: PathBuf::from(format!("{node}:{ADMIN_CONF}")),
        reason: last.unwrap_or_default(),
    })?;
    let (host, port) = p.api_server_endpoint(&node).await?;
    let server = format!("https://{host}:{port}");
    let cfg = kubeconfig::from_admin_conf(&admin, name, &server)?;
    kubeconfig::write_private(path, &cfg)?;
    if let Some(merge) = merge {
        kubeconfig::merge_into(merge, &cfg)?;
    }
    Ok(server)
}

/// Waits until the published API server port accepts TCP connections from the host.
async fn reach(server: &str, wait: Duration) -> Result<()> {
    let hostport = server.trim_start_matches("https://").to_string();
    let addr: SocketAddr = hostport.parse().map_err(|_| Error::Timeout {
        what: format!("a usable API server address (got {server})"),
        seconds: 0,
    })?;
    let deadline = Instant::now() + wait;
    loop {
        let ok = tokio::task::spawn_blocking(move || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
        })
        .await
        .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout {
                what: format!("{server} to accept connections from the host"),
                seconds: wait.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("kind").is_ok());
        assert!(validate_name("mgmt-1.dev").is_ok());
        for bad in ["", "Kind", "-x", "a b", "a_b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert_eq!(control_plane_name("kind"), "kind-control-plane");
    }

    #[test]
    fn cgroups() {
        let v1 = HostInfo {
            cgroup_version: "1".into(),
            cgroup_driver: "cgroupfs".into(),
            ..Default::default()
        };
        let w = check_host(&v1).expect("rootful v1 works");
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("cgroup v1"));
        let rootless_v1 = HostInfo {
            rootless: true,
            ..v1.clone()
        };
        let e = check_host(&rootless_v1).expect_err("rootless v1 fails");
        assert!(e.to_string().contains("cgroup v2"), "{e}");
        assert!(!e.to_string().contains('\n'));
        let rootless_v2 = HostInfo {
            cgroup_version: "2".into(),
            rootless: true,
            memory_limit: true,
            pids_limit: false,
            cpu_shares: true,
            ..Default::default()
        };
        let e = check_host(&rootless_v2).expect_err("no pids delegation");
        assert!(e.to_string().contains("pids"), "{e}");
        let v2 = HostInfo {
            cgroup_version: "2".into(),
            ..Default::default()
        };
        assert!(check_host(&v2).expect("v2").is_empty());
    }

    #[test]
    fn proxies_pass_through_with_kinds_no_proxy() {
        let none = node_env("k-control-plane", &[], |_| None);
        assert_eq!(none, vec!["KUBECONFIG=/etc/kubernetes/admin.conf"]);
        let host = std::collections::HashMap::from([
            ("https_proxy", "http://proxy:3128"),
            ("NO_PROXY", "localhost"),
        ]);
        let env = node_env("k-control-plane", &["172.18.0.0/16".to_string()], |k| {
            host.get(k).map(|v| v.to_string())
        });
        assert!(env.contains(&"HTTPS_PROXY=http://proxy:3128".to_string()));
        assert!(!env.iter().any(|e| e.starts_with("HTTP_PROXY=")));
        assert!(env.contains(
            &"NO_PROXY=localhost,172.18.0.0/16,k-control-plane,.svc,.svc.cluster,.svc.cluster.local"
                .to_string()
        ));
    }

    #[test]
    fn dev_mapper_as_kind() {
        let on = |driver: &str, backing: &str, rootless: bool| HostInfo {
            storage_driver: driver.into(),
            backing_filesystem: backing.into(),
            rootless,
            ..Default::default()
        };
        assert!(on("btrfs", "", false).needs_dev_mapper());
        assert!(on("devicemapper", "", false).needs_dev_mapper());
        assert!(on("overlay2", "xfs", false).needs_dev_mapper());
        assert!(!on("overlay2", "extfs", false).needs_dev_mapper());
        assert!(!on("vfs", "", false).needs_dev_mapper());
        assert!(!on("btrfs", "btrfs", true).needs_dev_mapper());
    }

    #[test]
    fn port_in_use_is_reported() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let e = api_server_port(port).expect_err("in use");
        assert!(matches!(e, Error::PortInUse { port: p } if p == port));
        assert!(e.to_string().contains(&format!("port {port}")));
        assert_ne!(api_server_port(0).expect("free"), 0);
    }
}
