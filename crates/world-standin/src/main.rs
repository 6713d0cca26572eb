//! `world-standin`: the test world's stand-in for the OpenStack servers that cannot boot here.
//!
//! The real CAPO creates the servers in the world's OpenStack, but the fake Nova boots nothing, so
//! no kubelet ever joins and no API server answers at the load balancer's address. For every
//! Cluster of the management server whose infrastructure is an `OpenStackCluster`, this program
//! plays the part the booting nodes would, and nothing more (see `tests/world/README.md`, "The
//! booting-node stand-in"):
//!
//! 1. the Secret `<cluster>-kubeconfig` (key `value`) points at the world's `workload` API server.
//!    It is created with type `Opaque`, so KCP leaves it alone; one of KCP's type
//!    `cluster.x-k8s.io/secret` (it points at the unreachable LB address) is replaced.
//! 2. once a Machine's server exists (providerID set, infrastructure provisioned, bootstrap data
//!    created), its "node boots" in the workload server:
//!    - the first control-plane node uploads ConfigMap `kube-system/kubeadm-config` with the
//!      ClusterConfiguration from its own bootstrap data, as `kubeadm init` does;
//!    - the Node `<server name>` registers with `spec.providerID` = the Machine's providerID and a
//!      Ready condition, as the kubelet does;
//!    - control-plane nodes get the mirror Pods of their static pods (kube-apiserver,
//!      kube-controller-manager, kube-scheduler, and etcd unless etcd is external), Running and
//!      Ready, as the kubelet reports them.
//! 3. when the Cluster is gone, what it registered in the workload server is removed.
//!
//! Everything else (conditions, nodeRef, kubeconfig contents of real clusters, bootstrap tokens,
//! node deletion on scale-down) is left to the real controllers.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::{Value, json};

/// Label on everything the stand-in creates in the workload server: `<namespace>.<cluster>`.
const OWNER_LABEL: &str = "world.manage.test/stand-in-for";
/// Node conditions the kubelet reports on a healthy node: type, status, reason.
const NODE_CONDITIONS: [(&str, &str, &str); 4] = [
    ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID"),
    ("Ready", "True", "KubeletReady"),
];
/// Annotation on the kubeconfig Secret the stand-in writes.
const KUBECONFIG_ANNOTATION: &str = "world.manage.test/stand-in";

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Test world: plays the booting nodes of OpenStack Clusters (see tests/world/README.md)"
)]
struct Args {
    /// Kubeconfig of the management API server (Clusters, Machines, Secrets).
    #[arg(long)]
    management_kubeconfig: PathBuf,
    /// Kubeconfig of the world API server that acts as every workload cluster.
    #[arg(long)]
    workload_kubeconfig: PathBuf,
    /// Infrastructure kind of the Clusters to stand in for.
    #[arg(long, default_value = "OpenStackCluster")]
    infrastructure_kind: String,
    /// Seconds between passes.
    #[arg(long, default_value_t = 2)]
    interval: u64,
    /// One pass, then exit.
    #[arg(long)]
    once: bool,
}

struct StandIn {
    mgmt: Client,
    workload: Client,
    workload_kubeconfig: String,
    infrastructure_kind: String,
    cluster: ApiResource,
    machine: ApiResource,
}

fn capi(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta2", kind))
}

async fn client(path: &PathBuf) -> Result<Client> {
    let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", path.display()))?;
    Client::try_from(config).context("building the kube client")
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("world-standin: {msg}");
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn bool_at(v: &Value, path: &[&str]) -> bool {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The ClusterConfiguration document of the kubeadm config in a machine's cloud-init bootstrap
/// data (`write_files` entry `/run/kubeadm/kubeadm.yaml`), as `kubeadm init` would upload it.
fn cluster_configuration(bootstrap: &str) -> Option<String> {
    let doc: Value = serde_saphyr::from_str(bootstrap).ok()?;
    let files = doc.get("write_files")?.as_array()?;
    let content = files
        .iter()
        .find(|f| f.get("path").and_then(Value::as_str) == Some("/run/kubeadm/kubeadm.yaml"))?
        .get("content")?
        .as_str()?;
    content
        .split("\n---")
        .map(|d| d.trim_start_matches("---").trim())
        .find(|d| d.lines().any(|l| l.trim() == "kind: ClusterConfiguration"))
        .map(|d| format!("{d}\n"))
}

/// Whether a ClusterConfiguration uses external etcd (then there is no etcd static pod).
fn external_etcd(cluster_config: &str) -> bool {
    serde_saphyr::from_str::<Value>(cluster_config)
        .ok()
        .and_then(|v| v.get("etcd").and_then(|e| e.get("external")).cloned())
        .is_some_and(|e| !e.is_null())
}

impl StandIn {
    async fn pass(&self) -> Result<()> {
        let clusters = Api::<DynamicObject>::all_with(self.mgmt.clone(), &self.cluster)
            .list(&ListParams::default())
            .await
            .context("listing Clusters")?;
        let mut live = BTreeSet::new();
        for c in &clusters {
            if str_at(&c.data, &["spec", "infrastructureRef", "kind"])
                != Some(self.infrastructure_kind.as_str())
            {
                continue;
            }
            let ns = c.namespace().unwrap_or_default();
            live.insert(owner_value(&ns, &c.name_any()));
            if c.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if let Err(e) = self.cluster_pass(c).await {
                log(format!("cluster {ns}/{}: {e:#}", c.name_any()));
            }
        }
        self.cleanup(&live).await
    }

    async fn cluster_pass(&self, cluster: &DynamicObject) -> Result<()> {
        let ns = cluster.namespace().unwrap_or_default();
        let name = cluster.name_any();
        self.ensure_kubeconfig(cluster).await?;
        let machines = Api::<DynamicObject>::namespaced_with(self.mgmt.clone(), &ns, &self.machine)
            .list(&ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={name}")))
            .await
            .context("listing Machines")?;
        for m in &machines {
            let d = &m.data;
            let booted = m.metadata.deletion_timestamp.is_none()
                && str_at(d, &["spec", "providerID"]).is_some()
                && bool_at(
                    d,
                    &["status", "initialization", "infrastructureProvisioned"],
                )
                && bool_at(
                    d,
                    &["status", "initialization", "bootstrapDataSecretCreated"],
                );
            if booted && let Err(e) = self.boot(&ns, &name, m).await {
                log(format!("machine {ns}/{}: {e:#}", m.name_any()));
            }
        }
        Ok(())
    }

    /// Step 1: `<cluster>-kubeconfig` points at the workload API server.
    async fn ensure_kubeconfig(&self, cluster: &DynamicObject) -> Result<()> {
        let ns = cluster.namespace().unwrap_or_default();
        let name = format!("{}-kubeconfig", cluster.name_any());
        let secrets = Api::<Secret>::namespaced(self.mgmt.clone(), &ns);
        if let Some(existing) = secrets.get_opt(&name).await? {
            if existing.type_.as_deref() != Some("cluster.x-k8s.io/secret") {
                return Ok(()); // ours, or provided by the user: KCP and we leave it alone
            }
            log(format!(
                "replacing {ns}/{name} (KCP's, for the unreachable endpoint)"
            ));
            secrets.delete(&name, &DeleteParams::default()).await?;
        }
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {"cluster.x-k8s.io/cluster-name": cluster.name_any()},
                "annotations": {KUBECONFIG_ANNOTATION: "kubeconfig of the test world's workload API server (no node can boot here)"},
                "ownerReferences": [{
                    "apiVersion": "cluster.x-k8s.io/v1beta2",
                    "kind": "Cluster",
                    "name": cluster.name_any(),
                    "uid": cluster.uid().unwrap_or_default(),
                }],
            },
            "type": "Opaque",
            "stringData": {"value": self.workload_kubeconfig},
        }))?;
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => log(format!("wrote {ns}/{name} (workload API server)")),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Step 2: the machine's node boots.
    async fn boot(&self, ns: &str, cluster: &str, m: &DynamicObject) -> Result<()> {
        let d = &m.data;
        let provider_id = str_at(d, &["spec", "providerID"]).unwrap_or_default();
        let node_name = str_at(d, &["spec", "infrastructureRef", "name"])
            .map(str::to_owned)
            .unwrap_or_else(|| m.name_any());
        let version = str_at(d, &["spec", "version"]).unwrap_or("v0.0.0");
        let control_plane = m.labels().contains_key("cluster.x-k8s.io/control-plane");
        let owner = owner_value(ns, cluster);

        let mut etcd_external = false;
        if control_plane {
            etcd_external = self.ensure_kubeadm_config(ns, cluster, m).await?;
        }

        let nodes = Api::<Node>::all(self.workload.clone());
        let existing = nodes.get_opt(&node_name).await?;
        if existing.is_none() {
            let mut labels = json!({
                "kubernetes.io/hostname": node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                OWNER_LABEL: owner,
            });
            let mut taints = json!([]);
            if control_plane {
                labels["node-role.kubernetes.io/control-plane"] = json!("");
                labels["node.kubernetes.io/exclude-from-external-load-balancers"] = json!("");
                taints = json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
            }
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": node_name, "labels": labels},
                "spec": {"providerID": provider_id, "taints": taints},
            }))?;
            nodes.create(&PostParams::default(), &node).await?;
            log(format!("node {node_name} registered ({provider_id})"));
        }
        // what the kubelet reports: Ready, and no memory, disk or PID pressure
        let reported = existing
            .and_then(|n| n.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| {
                NODE_CONDITIONS
                    .iter()
                    .all(|(t, st, _)| cs.iter().any(|c| c.type_ == *t && c.status == *st))
            });
        if !reported {
            let now = now();
            let addresses: Vec<Value> = d
                .pointer("/status/addresses")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter(|x| {
                            matches!(
                                x.get("type").and_then(Value::as_str),
                                Some("InternalIP" | "ExternalIP")
                            )
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let mut addresses = addresses;
            addresses.push(json!({"type": "Hostname", "address": node_name}));
            let status = json!({"status": {
                "addresses": addresses,
                "nodeInfo": {
                    "kubeletVersion": version, "operatingSystem": "linux", "architecture": "amd64",
                    "containerRuntimeVersion": "none://world-stand-in", "kernelVersion": "",
                    "osImage": "test world stand-in (no VM boots)", "kubeProxyVersion": "",
                    "machineID": "", "systemUUID": "", "bootID": "",
                },
                "conditions": NODE_CONDITIONS.iter().map(|(t, st, reason)| json!({
                    "type": t, "status": st, "reason": reason,
                    "message": "test world stand-in: the server exists in OpenStack, no kubelet runs",
                    "lastHeartbeatTime": now, "lastTransitionTime": now,
                })).collect::<Vec<_>>(),
            }});
            nodes
                .patch_status(&node_name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
        }
        if control_plane {
            let mut components = vec![
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
            ];
            if !etcd_external {
                components.push("etcd");
            }
            for c in components {
                self.ensure_mirror_pod(c, &node_name, version, &owner)
                    .await?;
            }
        }
        Ok(())
    }

    /// `kubeadm init`'s upload-config phase, once per workload cluster. Returns whether the
    /// ClusterConfiguration uses external etcd.
    async fn ensure_kubeadm_config(
        &self,
        ns: &str,
        cluster: &str,
        m: &DynamicObject,
    ) -> Result<bool> {
        let cms = Api::<ConfigMap>::namespaced(self.workload.clone(), "kube-system");
        if let Some(cm) = cms.get_opt("kubeadm-config").await? {
            let cc = cm
                .data
                .as_ref()
                .and_then(|d| d.get("ClusterConfiguration"))
                .cloned()
                .unwrap_or_default();
            return Ok(external_etcd(&cc));
        }
        let Some(secret_name) = str_at(&m.data, &["spec", "bootstrap", "dataSecretName"]) else {
            return Ok(false);
        };
        let secret = Api::<Secret>::namespaced(self.mgmt.clone(), ns)
            .get(secret_name)
            .await
            .with_context(|| format!("reading bootstrap data {ns}/{secret_name}"))?;
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get("value"))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default();
        let cc = cluster_configuration(&data).unwrap_or_else(|| {
            format!(
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: {}\n",
                str_at(&m.data, &["spec", "version"]).unwrap_or("v0.0.0")
            )
        });
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {
                "name": "kubeadm-config",
                "namespace": "kube-system",
                "labels": {OWNER_LABEL: owner_value(ns, cluster)},
            },
            "data": {"ClusterConfiguration": cc},
        }))?;
        cms.create(&PostParams::default(), &cm).await?;
        log(format!(
            "kube-system/kubeadm-config uploaded for {ns}/{cluster} (from {secret_name})"
        ));
        Ok(external_etcd(&cc))
    }

    async fn ensure_mirror_pod(
        &self,
        component: &str,
        node: &str,
        version: &str,
        owner: &str,
    ) -> Result<()> {
        let pods = Api::<Pod>::namespaced(self.workload.clone(), "kube-system");
        let name = format!("{component}-{node}");
        let ready = pods.get_opt(&name).await?.map(|p| {
            p.status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready == Some(true) {
            return Ok(());
        }
        if ready.is_none() {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {
                    "name": name,
                    "namespace": "kube-system",
                    "labels": {"component": component, "tier": "control-plane", OWNER_LABEL: owner},
                    "annotations": {
                        "kubernetes.io/config.mirror": format!("world-stand-in-{component}"),
                        "kubernetes.io/config.source": "file",
                    },
                },
                "spec": {
                    "nodeName": node,
                    "hostNetwork": true,
                    "priorityClassName": "system-node-critical",
                    "containers": [{"name": component, "image": format!("registry.k8s.io/{component}:{version}")}],
                },
            }))?;
            pods.create(&PostParams::default(), &pod).await?;
        }
        let now = now();
        let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
        let status = json!({"status": {
            "phase": "Running",
            "startTime": now,
            "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
            "containerStatuses": [{
                "name": component, "ready": true, "started": true, "restartCount": 0,
                "image": format!("registry.k8s.io/{component}:{version}"), "imageID": "",
                "state": {"running": {"startedAt": now}},
            }],
        }});
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(())
    }

    /// Step 3: remove what Clusters that no longer exist left in the workload server.
    async fn cleanup(&self, live: &BTreeSet<String>) -> Result<()> {
        let lp = ListParams::default().labels(OWNER_LABEL);
        let dp = DeleteParams::default();
        let gone = |labels: &std::collections::BTreeMap<String, String>| {
            labels.get(OWNER_LABEL).is_some_and(|o| !live.contains(o))
        };
        let nodes = Api::<Node>::all(self.workload.clone());
        let mut node_names = BTreeSet::new();
        for n in nodes.list(&lp).await? {
            if gone(n.labels()) {
                log(format!(
                    "node {} removed (its Cluster is gone)",
                    n.name_any()
                ));
                nodes.delete(&n.name_any(), &dp).await?;
            } else {
                node_names.insert(n.name_any());
            }
        }
        // Mirror pods of nodes that are gone (CAPI deletes the Node of a deleted Machine): the
        // kubelet (or the pod garbage collector) would finish their deletion; grace period 0.
        let pods = Api::<Pod>::namespaced(self.workload.clone(), "kube-system");
        let at_once = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        for p in pods.list(&lp).await? {
            let on = p.spec.as_ref().and_then(|s| s.node_name.clone());
            if gone(p.labels()) || on.is_none_or(|n| !node_names.contains(&n)) {
                pods.delete(&p.name_any(), &at_once).await?;
            }
        }
        let cms = Api::<ConfigMap>::namespaced(self.workload.clone(), "kube-system");
        for c in cms.list(&lp).await? {
            if gone(c.labels()) {
                log("kube-system/kubeadm-config removed (its Cluster is gone)");
                cms.delete(&c.name_any(), &dp).await?;
            }
        }
        Ok(())
    }
}

fn owner_value(ns: &str, cluster: &str) -> String {
    let v = format!("{ns}.{cluster}");
    if v.len() <= 63 {
        v
    } else {
        v[v.len() - 63..].trim_start_matches(['.', '-']).to_owned()
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let workload_kubeconfig = std::fs::read_to_string(&args.workload_kubeconfig)
        .with_context(|| format!("reading {}", args.workload_kubeconfig.display()))?;
    let s = StandIn {
        mgmt: client(&args.management_kubeconfig).await?,
        workload: client(&args.workload_kubeconfig).await?,
        workload_kubeconfig,
        infrastructure_kind: args.infrastructure_kind,
        cluster: capi("Cluster"),
        machine: capi("Machine"),
    };
    log(format!(
        "standing in for the nodes of {} Clusters",
        s.infrastructure_kind
    ));
    loop {
        if let Err(e) = s.pass().await {
            log(format!("{e:#}"));
        }
        if args.once {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(args.interval)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_configuration_comes_from_the_kubeadm_file() {
        let data = "## template: jinja\n#cloud-config\nwrite_files:\n- path: /etc/x\n  content: y\n- path: /run/kubeadm/kubeadm.yaml\n  owner: root:root\n  permissions: '0640'\n  content: |\n    ---\n    apiVersion: kubeadm.k8s.io/v1beta4\n    kind: ClusterConfiguration\n    etcd:\n      external:\n        endpoints: [https://e:2379]\n    kubernetesVersion: v1.36.3\n    ---\n    apiVersion: kubeadm.k8s.io/v1beta4\n    kind: InitConfiguration\nruncmd:\n- kubeadm init\n";
        let cc = cluster_configuration(data).expect("found");
        assert!(cc.starts_with("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration"));
        assert!(!cc.contains("InitConfiguration"));
        assert!(external_etcd(&cc));
        assert!(!external_etcd(
            "kind: ClusterConfiguration\netcd:\n  local: {}\n"
        ));
    }

    #[test]
    fn owner_label_values_are_valid() {
        assert_eq!(owner_value("ns", "c"), "ns.c");
        assert!(owner_value(&"n".repeat(40), &"c".repeat(40)).len() <= 63);
    }
}
