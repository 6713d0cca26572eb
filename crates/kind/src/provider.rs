//! The container runtime behind a kind cluster, as kind's `Provider`: everything the cluster
//! logic and the in-node actions need from Docker, and nothing else. Actions only see this trait;
//! [`crate::docker::DockerProvider`] is the one implementation.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

use crate::Result;

/// Label on every node container: the cluster it belongs to.
pub const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// Label on every node container: its role (`control-plane`, `worker`).
pub const ROLE_LABEL: &str = "io.x-k8s.kind.role";
/// The role of the single node we create.
pub const CONTROL_PLANE_ROLE: &str = "control-plane";
/// The API server port inside the node.
pub const API_SERVER_INTERNAL_PORT: u16 = 6443;
/// The network kind puts its nodes on.
pub const DEFAULT_NETWORK: &str = "kind";

/// How a node container is created; the options kind uses for a control-plane node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Container name and hostname, `<cluster>-control-plane`.
    pub name: String,
    /// Cluster the node belongs to (the `io.x-k8s.kind.cluster` label).
    pub cluster: String,
    /// Node role (the `io.x-k8s.kind.role` label).
    pub role: String,
    /// Node image reference.
    pub image: String,
    /// Docker network to attach to.
    pub network: String,
    /// Run the container privileged (kind: always). Off for images that need no capabilities and
    /// on hosts where privileged containers cannot start.
    pub privileged: bool,
    /// Host port on 127.0.0.1 for the API server (already chosen; never 0 here).
    pub api_server_port: u16,
    /// Environment variables (`KEY=value`).
    pub env: Vec<String>,
    /// Bind `/lib/modules` read-only (kind always does).
    pub mount_lib_modules: bool,
    /// Bind `/dev/mapper` (storage on btrfs, zfs, devicemapper or a backing xfs; see
    /// [`HostInfo::needs_dev_mapper`]).
    pub mount_dev_mapper: bool,
    /// Pass `/dev/fuse` in (rootless daemons).
    pub fuse_device: bool,
    /// `--userns=host` (daemons with user-namespace remapping).
    pub userns_host: bool,
}

/// What we know about an existing node container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Container name.
    pub name: String,
    /// Cluster label.
    pub cluster: String,
    /// Role label.
    pub role: String,
    /// Docker's state (`running`, `exited`, `created`, …).
    pub state: String,
    /// Image reference the container was created from.
    pub image: String,
}

impl NodeInfo {
    /// Whether the container is running.
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// The result of a command run in a node.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// Exit code of the command.
    pub exit_code: i64,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Standard output as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The last lines of stdout and stderr, for error messages.
    pub fn tail(&self, lines: usize) -> String {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        );
        let v: Vec<&str> = all.lines().filter(|l| !l.trim().is_empty()).collect();
        v[v.len().saturating_sub(lines)..].join(" | ")
    }
}

/// Facts about the container host that decide whether a node can run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// `1` or `2`; empty when the daemon does not say.
    pub cgroup_version: String,
    /// `cgroupfs`, `systemd`, or empty.
    pub cgroup_driver: String,
    /// The daemon runs rootless.
    pub rootless: bool,
    /// Controllers delegated to a rootless daemon have memory limits.
    pub memory_limit: bool,
    /// … and pids limits.
    pub pids_limit: bool,
    /// … and CPU shares.
    pub cpu_shares: bool,
    /// The daemon remaps user namespaces (`userns` security option).
    pub userns_remap: bool,
    /// Storage driver (`overlay2`, `btrfs`, `vfs`, …).
    pub storage_driver: String,
    /// The storage driver's backing file system, when it says.
    pub backing_filesystem: String,
}

impl HostInfo {
    /// kind binds `/dev/mapper` into nodes when the storage driver is btrfs, zfs or devicemapper,
    /// or the backing file system is btrfs, zfs or xfs, unless the daemon is rootless.
    pub fn needs_dev_mapper(&self) -> bool {
        if self.rootless {
            return false;
        }
        let driver = self.storage_driver.trim().to_lowercase();
        let backing = self.backing_filesystem.trim().to_lowercase();
        matches!(driver.as_str(), "btrfs" | "zfs" | "devicemapper")
            || matches!(backing.as_str(), "btrfs" | "zfs" | "xfs")
    }
}

/// Progress of an image pull or load, one line per event worth showing.
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// The container runtime operations a kind cluster needs.
pub trait Provider: Send + Sync {
    /// The daemon's address, for messages.
    fn host(&self) -> &str;

    /// Facts about the host (cgroups, rootless).
    fn host_info(&self) -> impl Future<Output = Result<HostInfo>> + Send;

    /// Makes `image` present: nothing if it is, else load `archive` when given, else pull it.
    fn ensure_image(
        &self,
        image: &str,
        archive: Option<&Path>,
        progress: Progress<'_>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Creates the network kind uses (or adopts the existing one).
    fn ensure_network(&self, name: &str) -> impl Future<Output = Result<()>> + Send;

    /// The subnets (IPv4 and IPv6) of network `name`.
    fn network_subnets(&self, name: &str) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Node containers of `cluster` (all clusters when `None`), in any state, sorted by name.
    fn list_nodes(
        &self,
        cluster: Option<&str>,
    ) -> impl Future<Output = Result<Vec<NodeInfo>>> + Send;

    /// Creates and starts a node container, then waits until its init reports it booted.
    fn create_node(&self, spec: &NodeSpec) -> impl Future<Output = Result<()>> + Send;

    /// Runs `cmd` in `node`, feeding `stdin` when given, and collects its output.
    fn exec(
        &self,
        node: &str,
        cmd: &[&str],
        stdin: Option<&[u8]>,
    ) -> impl Future<Output = Result<ExecOutput>> + Send;

    /// The node's IPv4 and IPv6 addresses on its network (either may be empty).
    fn node_addresses(&self, node: &str) -> impl Future<Output = Result<(String, String)>> + Send;

    /// Host address and port where the node's API server (6443/tcp) is published.
    fn api_server_endpoint(&self, node: &str)
    -> impl Future<Output = Result<(String, u16)>> + Send;

    /// Labels of the node container.
    fn node_labels(
        &self,
        node: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>>> + Send;

    /// The content of the regular file `path` in `node`.
    fn copy_from(&self, node: &str, path: &str) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// Removes the containers and their anonymous volumes (`docker rm -f -v`).
    fn delete_nodes(&self, names: &[String]) -> impl Future<Output = Result<()>> + Send;
}
