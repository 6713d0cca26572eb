//! The Docker implementation of [`Provider`](crate::Provider), through the Docker Engine API
//! (bollard). The only module of the crate that talks to Docker.

mod image;
mod network;
mod node;

pub use network::ula_subnet;

use bollard::Docker;

use crate::provider::HostInfo;
use crate::{Error, Result};

/// Default Docker address when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// A connection to a Docker daemon.
#[derive(Debug, Clone)]
pub struct DockerProvider {
    docker: Docker,
    host: String,
}

impl DockerProvider {
    /// Connects to `host` (`unix://…`, `tcp://…`), or to `DOCKER_HOST`, or to the default socket,
    /// and checks that the daemon answers; negotiates the API version (Docker 20.10 speaks 1.41).
    pub async fn connect(host: Option<&str>) -> Result<Self> {
        let host = match host {
            Some(h) => h.to_string(),
            None => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string()),
        };
        // A bare path is a unix socket.
        let host = if host.starts_with('/') {
            format!("unix://{host}")
        } else {
            host
        };
        if host.starts_with("https://") || std::env::var_os("DOCKER_TLS_VERIFY").is_some() {
            // bollard's TLS client is rustls; with more than one crypto provider in the binary
            // (openstack_sdk brings aws-lc-rs) it panics unless one is installed first.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let docker =
            Docker::connect_with_host(&host).map_err(|e| Error::docker(&host, "connect", e))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| Error::docker(&host, "negotiate the API version", e))?;
        docker
            .ping()
            .await
            .map_err(|e| Error::docker(&host, "ping", e))?;
        tracing::debug!(%host, version = ?docker.client_version(), "connected to Docker");
        Ok(DockerProvider { docker, host })
    }

    /// The bollard client, for callers that need more than the provider offers (tests).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    fn err(&self, operation: impl Into<String>, e: bollard::errors::Error) -> Error {
        Error::docker(&self.host, operation, e)
    }

    pub(crate) async fn info(&self) -> Result<HostInfo> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| self.err("system info", e))?;
        let v = serde_json::to_value(&info).unwrap_or_default();
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let b = |k: &str| v.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
        let rootless = v
            .get("SecurityOptions")
            .and_then(|x| x.as_array())
            .is_some_and(|a| {
                a.iter()
                    .any(|o| o.as_str().is_some_and(|o| o.contains("name=rootless")))
            });
        let security = |needle: &str| {
            v.get("SecurityOptions")
                .and_then(|x| x.as_array())
                .is_some_and(|a| {
                    a.iter()
                        .any(|o| o.as_str().is_some_and(|o| o.contains(needle)))
                })
        };
        let backing_filesystem = v
            .get("DriverStatus")
            .and_then(|x| x.as_array())
            .and_then(|a| {
                a.iter().find_map(|pair| {
                    let pair = pair.as_array()?;
                    (pair.first()?.as_str()? == "Backing Filesystem")
                        .then(|| pair.get(1)?.as_str().map(str::to_string))?
                })
            })
            .unwrap_or_default();
        Ok(HostInfo {
            userns_remap: security("name=userns"),
            storage_driver: s("Driver"),
            backing_filesystem,
            cgroup_version: s("CgroupVersion"),
            cgroup_driver: s("CgroupDriver"),
            rootless,
            memory_limit: b("MemoryLimit"),
            pids_limit: b("PidsLimit"),
            cpu_shares: b("CpuShares"),
        })
    }
}

/// A bollard error's HTTP status and message, when Docker answered with one.
pub(crate) fn server_error(e: &bollard::errors::Error) -> Option<(u16, &str)> {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => Some((*status_code, message.as_str())),
        _ => None,
    }
}

impl crate::Provider for DockerProvider {
    fn host(&self) -> &str {
        &self.host
    }

    async fn host_info(&self) -> Result<HostInfo> {
        self.info().await
    }

    async fn ensure_image(
        &self,
        image: &str,
        archive: Option<&std::path::Path>,
        progress: crate::provider::Progress<'_>,
    ) -> Result<()> {
        image::ensure(self, image, archive, progress).await
    }

    async fn ensure_network(&self, name: &str) -> Result<()> {
        network::ensure(self, name).await
    }

    async fn network_subnets(&self, name: &str) -> Result<Vec<String>> {
        network::subnets(self, name).await
    }

    async fn list_nodes(&self, cluster: Option<&str>) -> Result<Vec<crate::NodeInfo>> {
        node::list(self, cluster).await
    }

    async fn create_node(&self, spec: &crate::NodeSpec) -> Result<()> {
        node::create(self, spec).await
    }

    async fn exec(
        &self,
        node: &str,
        cmd: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<crate::ExecOutput> {
        node::exec(self, node, cmd, stdin).await
    }

    async fn node_addresses(&self, node: &str) -> Result<(String, String)> {
        node::addresses(self, node).await
    }

    async fn api_server_endpoint(&self, node: &str) -> Result<(String, u16)> {
        node::api_server_endpoint(self, node).await
    }

    async fn node_labels(&self, node: &str) -> Result<std::collections::BTreeMap<String, String>> {
        node::labels(self, node).await
    }

    async fn copy_from(&self, node: &str, path: &str) -> Result<Vec<u8>> {
        node::copy_from(self, node, path).await
    }

    async fn delete_nodes(&self, names: &[String]) -> Result<()> {
        node::delete(self, names).await
    }
}
