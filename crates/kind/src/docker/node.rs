//! Node containers: created with kind's options (kind's `docker run` for a control-plane node as
//! Engine API fields), listed by label, exec'd into, copied from, removed with their volumes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, HostConfigCgroupnsModeEnum, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{DockerProvider, server_error};
use crate::provider::{API_SERVER_INTERNAL_PORT, CLUSTER_LABEL, ROLE_LABEL};
use crate::{Error, ExecOutput, NodeInfo, NodeSpec, Result};

/// How long kind waits for the node's init to report it booted.
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// The container body kind's `docker run` produces for a node (see specs §4.3).
pub(crate) fn container_body(spec: &NodeSpec) -> ContainerCreateBody {
    let port_key = format!("{API_SERVER_INTERNAL_PORT}/tcp");
    let mut binds = Vec::new();
    if spec.mount_lib_modules {
        binds.push("/lib/modules:/lib/modules:ro".to_string());
    }
    if spec.mount_dev_mapper {
        binds.push("/dev/mapper:/dev/mapper".to_string());
    }
    let devices = spec.fuse_device.then(|| {
        vec![DeviceMapping {
            path_on_host: Some("/dev/fuse".into()),
            path_in_container: Some("/dev/fuse".into()),
            cgroup_permissions: Some("rwm".into()),
        }]
    });
    let host_config = HostConfig {
        // docker-init must not be PID 1: the image's init is.
        init: Some(false),
        privileged: Some(spec.privileged),
        security_opt: Some(vec![
            "seccomp=unconfined".into(),
            "apparmor=unconfined".into(),
        ]),
        tmpfs: Some(HashMap::from([
            ("/tmp".to_string(), String::new()),
            ("/run".to_string(), String::new()),
        ])),
        binds: Some(binds),
        devices,
        userns_mode: spec.userns_host.then(|| "host".to_string()),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: Some(1),
        }),
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
        network_mode: Some(spec.network.clone()),
        port_bindings: Some(HashMap::from([(
            port_key.clone(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(spec.api_server_port.to_string()),
            }]),
        )])),
        ..Default::default()
    };
    ContainerCreateBody {
        hostname: Some(spec.name.clone()),
        image: Some(spec.image.clone()),
        tty: Some(true),
        labels: Some(HashMap::from([
            (CLUSTER_LABEL.to_string(), spec.cluster.clone()),
            (ROLE_LABEL.to_string(), spec.role.clone()),
        ])),
        env: Some(spec.env.clone()),
        // the anonymous /var volume (`docker rm -v` removes it)
        volumes: Some(vec!["/var".to_string()]),
        exposed_ports: Some(vec![port_key]),
        host_config: Some(host_config),
        ..Default::default()
    }
}

pub(super) async fn create(p: &DockerProvider, spec: &NodeSpec) -> Result<()> {
    tracing::info!(
        node = spec.name,
        image = spec.image,
        privileged = spec.privileged,
        port = spec.api_server_port,
        "creating node container"
    );
    let opts = CreateContainerOptionsBuilder::default()
        .name(&spec.name)
        .build();
    p.docker
        .create_container(Some(opts), container_body(spec))
        .await
        .map_err(|e| p.err(format!("create container {}", spec.name), e))?;
    if let Err(e) = p.docker.start_container(&spec.name, None).await {
        return Err(start_error(p, spec, e));
    }
    wait_booted(p, &spec.name).await
}

/// Turns a failed start into the message a user can act on.
fn start_error(p: &DockerProvider, spec: &NodeSpec, e: bollard::errors::Error) -> Error {
    let msg = server_error(&e)
        .map(|(_, m)| m.to_string())
        .unwrap_or_default();
    if msg.contains("address already in use") || msg.contains("port is already allocated") {
        return Error::PortInUse {
            port: spec.api_server_port,
        };
    }
    if spec.privileged
        && (msg.contains("unable to apply caps") || msg.contains("operation not permitted"))
    {
        return Error::NodeStart {
            node: spec.name.clone(),
            reason: format!(
                "this Docker host does not allow privileged containers ({}); an image that needs no extra capabilities can run unprivileged (--privileged=false)",
                runtime_reason(&msg)
            ),
        };
    }
    if msg.contains("cgroup") {
        return Error::Cgroups(format!(
            "node {} cannot start because of the host's cgroup setup: {}",
            spec.name,
            last_line(&msg)
        ));
    }
    p.err(format!("start container {}", spec.name), e)
}

/// The runtime's own words from a start error (`unable to apply caps: operation not permitted`),
/// without Docker's and runc's long prefixes.
fn runtime_reason(msg: &str) -> String {
    for needle in ["unable to apply caps", "operation not permitted"] {
        if let Some(i) = msg.find(needle) {
            let rest = &msg[i..];
            let end = rest.find(['"', '\n']).unwrap_or(rest.len());
            let reason = rest[..end].trim_end_matches(": unknown");
            return reason.trim_end_matches([':', ' ']).to_string();
        }
    }
    last_line(msg).to_string()
}

fn last_line(s: &str) -> &str {
    s.trim().rsplit(": ").next().unwrap_or(s).trim()
}

/// Follows the node's log until kind's boot line appears (`Reached target … Multi-User System`,
/// or `detected cgroup v1` from the entrypoint).
async fn wait_booted(p: &DockerProvider, node: &str) -> Result<()> {
    let opts = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = p.docker.logs(node, Some(opts));
    let mut seen = String::new();
    let found = tokio::time::timeout(BOOT_TIMEOUT, async {
        while let Some(chunk) = logs.next().await {
            match chunk {
                Ok(out) => {
                    seen.push_str(&String::from_utf8_lossy(out.as_ref()));
                    if seen.lines().any(booted_line) {
                        return true;
                    }
                }
                Err(e) => {
                    tracing::debug!(node, error = %e, "log stream ended");
                    return false;
                }
            }
        }
        false
    })
    .await;
    match found {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NodeStart {
            node: node.to_string(),
            reason: format!(
                "the container stopped before it booted; its last output: {}",
                tail_lines(&seen, 5)
            ),
        }),
        Err(_) => Err(Error::NodeStart {
            node: node.to_string(),
            reason: format!(
                "could not find a log line that matches \"Reached target .*Multi-User System.*|detected cgroup v1\" within {}s (last output: {})",
                BOOT_TIMEOUT.as_secs(),
                tail_lines(&seen, 3)
            ),
        }),
    }
}

fn booted_line(l: &str) -> bool {
    (l.contains("Reached target") && l.contains("Multi-User System"))
        || l.contains("detected cgroup v1")
}

fn tail_lines(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(n)..].join(" | ")
}

pub(super) async fn list(p: &DockerProvider, cluster: Option<&str>) -> Result<Vec<NodeInfo>> {
    let label = match cluster {
        Some(c) => format!("{CLUSTER_LABEL}={c}"),
        None => CLUSTER_LABEL.to_string(),
    };
    let filters = HashMap::from([("label".to_string(), vec![label])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let list = p
        .docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| p.err("list containers", e))?;
    let mut nodes: Vec<NodeInfo> = list
        .into_iter()
        .map(|c| {
            let v = serde_json::to_value(&c).unwrap_or_default();
            let labels = c.labels.unwrap_or_default();
            NodeInfo {
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                cluster: labels.get(CLUSTER_LABEL).cloned().unwrap_or_default(),
                role: labels.get(ROLE_LABEL).cloned().unwrap_or_default(),
                state: v
                    .get("State")
                    .and_then(|s| s.as_str())
                    .unwrap_or_default()
                    .to_string(),
                image: c.image.unwrap_or_default(),
            }
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

async fn inspect(p: &DockerProvider, node: &str) -> Result<serde_json::Value> {
    let i = p.docker.inspect_container(node, None).await.map_err(|e| {
        if matches!(server_error(&e), Some((404, _))) {
            Error::NodeStart {
                node: node.to_string(),
                reason: "no such container".into(),
            }
        } else {
            p.err(format!("inspect container {node}"), e)
        }
    })?;
    Ok(serde_json::to_value(&i).unwrap_or_default())
}

pub(super) async fn exec(
    p: &DockerProvider,
    node: &str,
    cmd: &[&str],
    stdin: Option<&[u8]>,
) -> Result<ExecOutput> {
    // kind runs every node command with `docker exec --privileged`; a node created unprivileged
    // (where privileged containers cannot run) gets unprivileged execs too.
    let privileged = inspect(p, node)
        .await?
        .pointer("/HostConfig/Privileged")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    tracing::debug!(node, ?cmd, privileged, "exec");
    let created = p
        .docker
        .create_exec(
            node,
            CreateExecOptions {
                attach_stdin: Some(stdin.is_some()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                privileged: Some(privileged),
                cmd: Some(cmd.to_vec()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| p.err(format!("exec in {node}"), e))?;
    let started = p
        .docker
        .start_exec(&created.id, None)
        .await
        .map_err(|e| p.err(format!("start exec in {node}"), e))?;
    let mut out = ExecOutput::default();
    if let StartExecResults::Attached {
        mut output,
        mut input,
    } = started
    {
        if let Some(data) = stdin {
            let write = async {
                input.write_all(data).await?;
                input.flush().await?;
                input.shutdown().await
            };
            write
                .await
                .map_err(|e| Error::io(format!("stdin of exec in {node}"), e))?;
        }
        drop(input);
        while let Some(chunk) = output.next().await {
            use bollard::container::LogOutput;
            match chunk.map_err(|e| p.err(format!("output of exec in {node}"), e))? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    out.stdout.extend_from_slice(&message)
                }
                LogOutput::StdErr { message } => out.stderr.extend_from_slice(&message),
                LogOutput::StdIn { .. } => {}
            }
        }
    }
    // The exec may still be marked running for a moment after its streams close.
    for _ in 0..100 {
        let i = p
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(|e| p.err(format!("inspect exec in {node}"), e))?;
        if i.running != Some(true) {
            out.exit_code = i.exit_code.unwrap_or(-1);
            return Ok(out);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(Error::Timeout {
        what: format!("`{}` in {node} to finish", cmd.join(" ")),
        seconds: 2,
    })
}

pub(super) async fn addresses(p: &DockerProvider, node: &str) -> Result<(String, String)> {
    let v = inspect(p, node).await?;
    let mut v4 = String::new();
    let mut v6 = String::new();
    if let Some(nets) = v
        .pointer("/NetworkSettings/Networks")
        .and_then(|n| n.as_object())
    {
        for n in nets.values() {
            let s = |k: &str| n.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            if v4.is_empty() {
                v4 = s("IPAddress");
            }
            if v6.is_empty() {
                v6 = s("GlobalIPv6Address");
            }
        }
    }
    Ok((v4, v6))
}

pub(super) async fn api_server_endpoint(p: &DockerProvider, node: &str) -> Result<(String, u16)> {
    let v = inspect(p, node).await?;
    // Docker Desktop publishes through its own proxy and says where in a label.
    if let Some(l) = v
        .pointer("/Config/Labels")
        .and_then(|l| {
            l.get(format!(
                "desktop.docker.io/ports/{API_SERVER_INTERNAL_PORT}/tcp"
            ))
        })
        .and_then(|l| l.as_str())
        && let Some((h, port)) = l.rsplit_once(':')
        && let Ok(port) = port.parse()
    {
        let h = if h.is_empty() || h == "0.0.0.0" {
            "127.0.0.1"
        } else {
            h
        };
        return Ok((h.to_string(), port));
    }
    let b = v
        .pointer(&format!(
            "/NetworkSettings/Ports/{API_SERVER_INTERNAL_PORT}~1tcp/0"
        ))
        .cloned()
        .unwrap_or_default();
    let host = b.get("HostIp").and_then(|x| x.as_str()).unwrap_or("");
    let port = b
        .get("HostPort")
        .and_then(|x| x.as_str())
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| Error::NodeStart {
            node: node.to_string(),
            reason: format!(
                "port {API_SERVER_INTERNAL_PORT}/tcp is not published (is the container running?)"
            ),
        })?;
    let host = if host.is_empty() || host == "0.0.0.0" {
        "127.0.0.1"
    } else {
        host
    };
    Ok((host.to_string(), port))
}

pub(super) async fn labels(p: &DockerProvider, node: &str) -> Result<BTreeMap<String, String>> {
    let v = inspect(p, node).await?;
    Ok(v.pointer("/Config/Labels")
        .and_then(|l| l.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default())
}

pub(super) async fn copy_from(p: &DockerProvider, node: &str, path: &str) -> Result<Vec<u8>> {
    let opts = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let mut stream = p.docker.download_from_container(node, Some(opts));
    let mut tar = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| p.err(format!("copy {path} out of {node}"), e))?;
        tar.extend_from_slice(&chunk);
    }
    let mut archive = tar::Archive::new(tar.as_slice());
    let entries = archive
        .entries()
        .map_err(|e| Error::io(format!("{node}:{path}"), e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::io(format!("{node}:{path}"), e))?;
        if entry.header().entry_type().is_file() {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data)
                .map_err(|e| Error::io(format!("{node}:{path}"), e))?;
            return Ok(data);
        }
    }
    Err(Error::io(
        format!("{node}:{path}"),
        std::io::Error::other("not a regular file"),
    ))
}

pub(super) async fn delete(p: &DockerProvider, names: &[String]) -> Result<()> {
    for name in names {
        tracing::info!(node = name, "removing node container and its volumes");
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        if let Err(e) = p.docker.remove_container(name, Some(opts)).await
            && !matches!(server_error(&e), Some((404, _)))
        {
            return Err(p.err(format!("remove container {name}"), e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> NodeSpec {
        NodeSpec {
            name: "t-control-plane".into(),
            cluster: "t".into(),
            role: "control-plane".into(),
            image: "img:1".into(),
            network: "kind".into(),
            privileged: true,
            api_server_port: 34567,
            env: vec!["KUBECONFIG=/etc/kubernetes/admin.conf".into()],
            mount_lib_modules: true,
            mount_dev_mapper: false,
            fuse_device: false,
            userns_host: false,
        }
    }

    #[test]
    fn body_has_kinds_options() {
        let v = serde_json::to_value(container_body(&spec())).expect("json");
        assert_eq!(v["Hostname"], "t-control-plane");
        assert_eq!(v["Tty"], true);
        assert_eq!(v["Labels"]["io.x-k8s.kind.cluster"], "t");
        assert_eq!(v["Labels"]["io.x-k8s.kind.role"], "control-plane");
        assert!(v["Volumes"].get("/var").is_some(), "{}", v["Volumes"]);
        assert!(v["ExposedPorts"].get("6443/tcp").is_some());
        let h = &v["HostConfig"];
        assert_eq!(h["Privileged"], true);
        assert_eq!(h["Init"], false);
        assert_eq!(h["CgroupnsMode"], "private");
        assert_eq!(h["NetworkMode"], "kind");
        assert_eq!(h["RestartPolicy"]["Name"], "on-failure");
        assert_eq!(h["RestartPolicy"]["MaximumRetryCount"], 1);
        assert_eq!(h["SecurityOpt"][0], "seccomp=unconfined");
        assert_eq!(h["SecurityOpt"][1], "apparmor=unconfined");
        assert_eq!(h["Tmpfs"]["/tmp"], "");
        assert_eq!(h["Tmpfs"]["/run"], "");
        assert_eq!(h["Binds"][0], "/lib/modules:/lib/modules:ro");
        assert_eq!(h["PortBindings"]["6443/tcp"][0]["HostIp"], "127.0.0.1");
        assert_eq!(h["PortBindings"]["6443/tcp"][0]["HostPort"], "34567");
    }

    #[test]
    fn host_specific_options() {
        let s = NodeSpec {
            mount_dev_mapper: true,
            fuse_device: true,
            userns_host: true,
            ..spec()
        };
        let v = serde_json::to_value(container_body(&s)).expect("json");
        let h = &v["HostConfig"];
        assert_eq!(h["Binds"][1], "/dev/mapper:/dev/mapper");
        assert_eq!(h["Devices"][0]["PathOnHost"], "/dev/fuse");
        assert_eq!(h["UsernsMode"], "host");
        let plain = serde_json::to_value(container_body(&spec())).expect("json");
        assert!(plain["HostConfig"].get("UsernsMode").is_none());
        assert!(plain["HostConfig"].get("Devices").is_none());
    }

    #[test]
    fn runtime_reason_is_short() {
        let m = "failed to create shim: OCI runtime create failed: runc create failed: unable to start container process: unable to apply caps: operation not permitted: unknown";
        assert_eq!(
            runtime_reason(m),
            "unable to apply caps: operation not permitted"
        );
    }

    #[test]
    fn boot_lines() {
        assert!(booted_line("[  OK  ] Reached target Multi-User System."));
        assert!(booted_line("INFO: detected cgroup v1"));
        assert!(!booted_line("Starting systemd"));
    }
}
