//! The crate's error type: one variant per thing that can go wrong, each message a single line that
//! says what failed and what to do about it.

use std::path::PathBuf;

/// Everything that can fail while creating, reusing, inspecting or deleting a kind cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No Docker daemon answers at the configured address (socket missing or connection refused).
    #[error(
        "Docker is not running: nothing answers at {host} ({reason}); start the Docker daemon (e.g. `sudo systemctl start docker`) or point DOCKER_HOST at a running one"
    )]
    DockerNotRunning {
        /// The Docker address tried (`unix:///var/run/docker.sock`, `tcp://…`).
        host: String,
        /// What the connection attempt said.
        reason: String,
    },

    /// The Docker socket exists but this user may not open it.
    #[error(
        "permission denied on the Docker socket {host}: add your user to the `docker` group (`sudo usermod -aG docker $USER`, then log in again) or run with a DOCKER_HOST you may use"
    )]
    DockerPermissionDenied {
        /// The Docker address tried.
        host: String,
    },

    /// A Docker API call failed in a way not covered by a more specific variant.
    #[error("Docker API: {operation}: {source}")]
    Docker {
        /// What we asked Docker to do (`create container kind-control-plane`).
        operation: String,
        /// Bollard's error.
        #[source]
        source: bollard::errors::Error,
    },

    /// The node image is not present, could not be pulled, and no archive was given.
    #[error(
        "node image {image} is not present and cannot be pulled ({reason}); load it from a `docker save` tarball with `manage kind create --image-archive FILE` (or `docker load -i FILE`), or pull it on a machine with registry access"
    )]
    ImageMissing {
        /// The image reference.
        image: String,
        /// Why pulling failed.
        reason: String,
    },

    /// The image archive given with `--image-archive` could not be loaded.
    #[error("cannot load node image archive {path}: {reason}")]
    ImageArchive {
        /// The archive file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// No kindest/node image is pinned for the requested Kubernetes version.
    #[error(
        "no kindest/node image is pinned for Kubernetes {version} (pinned: {pinned}); pass the node image explicitly (--image kindest/node:<version>@sha256:<digest>)"
    )]
    NoPinnedImage {
        /// The Kubernetes version asked for.
        version: String,
        /// The versions that are pinned.
        pinned: String,
    },

    /// The requested API server host port is taken.
    #[error(
        "port {port} on 127.0.0.1 is already in use, so the API server cannot be published there; free it or choose another port (or let one be picked: port 0)"
    )]
    PortInUse {
        /// The port.
        port: u16,
    },

    /// The host's cgroup setup cannot run a kind node.
    #[error("{0}")]
    Cgroups(String),

    /// A cluster of that name exists but is not healthy; the user has to choose.
    #[error(
        "kind cluster {name:?} exists but is broken: {reason}; delete it (`manage kind delete --name {name}` or `kind delete cluster --name {name}`) or recreate it (`manage kind create --name {name} --recreate`), or inspect it with `docker logs {node}`"
    )]
    BrokenCluster {
        /// Cluster name.
        name: String,
        /// The node container to look at.
        node: String,
        /// What is wrong.
        reason: String,
    },

    /// The cluster name cannot be used for container names and contexts.
    #[error(
        "invalid cluster name {0:?}: use lower-case letters, digits, '-' and '.', starting with a letter or digit"
    )]
    InvalidName(String),

    /// No cluster of that name exists (for operations that need one).
    #[error(
        "no kind cluster named {0:?} (`manage kind list` shows the clusters; create it with `manage kind create --name {0}`)"
    )]
    NoSuchCluster(String),

    /// A command in a node failed.
    #[error("in node {node}: `{command}` exited with {exit_code}: {output}")]
    NodeCommand {
        /// Node container name.
        node: String,
        /// The command line.
        command: String,
        /// Its exit code.
        exit_code: i64,
        /// The last lines of its output.
        output: String,
    },

    /// The node container did not come up as a kind node should.
    #[error("node {node} did not start: {reason}")]
    NodeStart {
        /// Node container name.
        node: String,
        /// What was seen.
        reason: String,
    },

    /// Waiting for the API server or the node to be ready timed out.
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout {
        /// What we waited for.
        what: String,
        /// How long.
        seconds: u64,
    },

    /// A kubeconfig could not be read, understood or written.
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// The network could not be created.
    #[error("docker network {name}: {reason}")]
    Network {
        /// Network name.
        name: String,
        /// What went wrong.
        reason: String,
    },

    /// Local file I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a bollard error from `operation`, classifying connection failures.
    pub(crate) fn docker(
        host: &str,
        operation: impl Into<String>,
        e: bollard::errors::Error,
    ) -> Self {
        classify_connection(host, &e).unwrap_or_else(|| Error::Docker {
            operation: operation.into(),
            source: e,
        })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Recognises "daemon not running" and "permission denied" in a bollard error.
pub(crate) fn classify_connection(host: &str, e: &bollard::errors::Error) -> Option<Error> {
    use bollard::errors::Error as B;
    if let B::SocketNotFoundError(path) = e {
        return Some(Error::DockerNotRunning {
            host: host.to_string(),
            reason: format!("no socket at {path}"),
        });
    }
    // Walk the source chain for the io::Error that hyper wraps.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return classify_io(host, io);
        }
        cur = err.source();
    }
    // hyper-util's legacy client error does not always expose its cause as a source; fall back to
    // the rendered message.
    let text = format!("{e:?}");
    if text.contains("PermissionDenied") || text.contains("ermission denied") {
        return Some(Error::DockerPermissionDenied {
            host: host.to_string(),
        });
    }
    if text.contains("ConnectionRefused") || text.contains("NotFound") {
        return Some(Error::DockerNotRunning {
            host: host.to_string(),
            reason: "connection refused".to_string(),
        });
    }
    None
}

pub(crate) fn classify_io(host: &str, io: &std::io::Error) -> Option<Error> {
    use std::io::ErrorKind as K;
    match io.kind() {
        K::PermissionDenied => Some(Error::DockerPermissionDenied {
            host: host.to_string(),
        }),
        K::NotFound | K::ConnectionRefused | K::ConnectionReset | K::AddrNotAvailable => {
            Some(Error::DockerNotRunning {
                host: host.to_string(),
                reason: io.to_string(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_is_one_line_with_the_fix() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = classify_io("unix:///var/run/docker.sock", &io).expect("classified");
        let msg = e.to_string();
        assert!(matches!(e, Error::DockerPermissionDenied { .. }));
        assert!(!msg.contains('\n'));
        assert!(msg.contains("docker` group"), "{msg}");
    }

    #[test]
    fn refused_means_not_running() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = classify_io("unix:///x.sock", &io).expect("classified");
        assert!(matches!(e, Error::DockerNotRunning { .. }));
        assert!(e.to_string().starts_with("Docker is not running"));
    }

    #[test]
    fn missing_socket_means_not_running() {
        let e = classify_connection(
            "unix:///nope.sock",
            &bollard::errors::Error::SocketNotFoundError("/nope.sock".into()),
        )
        .expect("classified");
        let msg = e.to_string();
        assert!(msg.contains("no socket at /nope.sock"), "{msg}");
        assert!(msg.contains("DOCKER_HOST"), "{msg}");
    }

    #[test]
    fn other_io_errors_are_not_guessed() {
        let io = std::io::Error::other("boom");
        assert!(classify_io("unix:///x", &io).is_none());
    }
}
