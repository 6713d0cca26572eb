//! Generated Cluster API fleets for tests and benchmarks (not used by the move itself): per
//! namespace a ClusterClass with its templates and a ClusterResourceSet with its ConfigMap; per
//! cluster the objects a provisioned kubeadm + Docker-"dev" cluster has (Cluster, DevCluster,
//! KubeadmControlPlane, templates, MachineDeployment → MachineSet → Machines, KubeadmConfigs,
//! DevMachines, bootstrap and cluster Secrets, a ConfigMap with the `move` label), with the
//! provisioned status set through the status subresource; and one cluster-scoped identity with
//! its Secret in the infrastructure provider's namespace. Needs the CRDs of
//! `tests/move-world.sh`.

use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::cluster::{Backoff, Cluster};
use crate::error::{Error, Result};
use crate::graph::TypeInfo;

const CAPI: &str = "cluster.x-k8s.io";
const BOOT: &str = "bootstrap.cluster.x-k8s.io";
const CP: &str = "controlplane.cluster.x-k8s.io";
const INFRA: &str = "infrastructure.cluster.x-k8s.io";
const ADDONS: &str = "addons.cluster.x-k8s.io";
/// Namespace of the infrastructure provider (identity Secrets live there).
pub const INFRA_NAMESPACE: &str = "capd-system";
/// Objects per generated cluster.
pub const OBJECTS_PER_CLUSTER: usize = 26;

fn ty(group: &str, kind: &str, plural: &str, namespaced: bool) -> TypeInfo {
    TypeInfo {
        group: group.into(),
        version: if group.is_empty() {
            "v1".into()
        } else {
            "v1beta2".into()
        },
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        force_move: false,
        force_move_hierarchy: false,
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Namespaces (created if missing).
    pub namespaces: Vec<String>,
    /// Clusters in each namespace.
    pub clusters_per_namespace: usize,
    /// Name of the cluster-scoped identity (shared by all namespaces; created if absent).
    pub identity: String,
    /// Creates in flight.
    pub parallelism: usize,
    /// Give the kinds that carry finalizers in a real management cluster (Cluster, control
    /// plane, MachineDeployment, MachineSet, Machine, infrastructure cluster and machine,
    /// ClusterResourceSet) Cluster API's finalizers, as their controllers would have. Nothing
    /// removes them but a move, so such a fleet's namespaces cannot be deleted afterwards.
    pub finalizers: bool,
}

struct Maker<'a> {
    c: &'a Cluster,
    finalizers: bool,
}

/// The finalizer the controller of `kind` puts on it (Cluster API v1.14's names; the Dev kinds follow
/// the same pattern).
fn finalizer_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Cluster" => "cluster.cluster.x-k8s.io",
        "KubeadmControlPlane" => "kubeadm.controlplane.cluster.x-k8s.io",
        "MachineDeployment" => "cluster.x-k8s.io/machinedeployment",
        "MachineSet" => "cluster.x-k8s.io/machineset",
        "Machine" => "machine.cluster.x-k8s.io",
        "ClusterResourceSet" => "addons.cluster.x-k8s.io",
        "DevCluster" => "devcluster.infrastructure.cluster.x-k8s.io",
        "DevMachine" => "devmachine.infrastructure.cluster.x-k8s.io",
        _ => return None,
    })
}

fn owner(kind: &str, group: &str, name: &str, uid: &str, controller: bool) -> Value {
    let mut o =
        json!({"apiVersion": format!("{group}/v1beta2"), "kind": kind, "name": name, "uid": uid});
    if controller {
        o["controller"] = json!(true);
        o["blockOwnerDeletion"] = json!(true);
    }
    o
}

impl Maker<'_> {
    /// Creates (or finds) an object, returns its uid.
    async fn make(
        &self,
        t: &TypeInfo,
        ns: Option<&str>,
        mut obj: Value,
        owners: Vec<Value>,
    ) -> Result<String> {
        obj["apiVersion"] = json!(t.api_version());
        obj["kind"] = json!(t.kind);
        if !owners.is_empty() {
            obj["metadata"]["ownerReferences"] = Value::Array(owners);
        }
        if self.finalizers
            && let Some(f) = finalizer_of(&t.kind)
        {
            obj["metadata"]["finalizers"] = json!([f]);
        }
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(ns) = ns {
            obj["metadata"]["namespace"] = json!(ns);
        }
        let body: DynamicObject = serde_json::from_value(obj).map_err(|e| Error::Malformed {
            object: name.clone(),
            message: e.to_string(),
        })?;
        let api = t.api(self.c.client().clone(), ns);
        let what = || format!("{} {}/{name}", t.kind, ns.unwrap_or(""));
        let pp = PostParams {
            field_manager: Some("fleet-generator".into()),
            ..PostParams::default()
        };
        let r = self
            .c
            .call("create", what, Backoff::WRITE, true, |_| {
                let api = api.clone();
                let body = body.clone();
                let pp = pp.clone();
                async move { api.create(&pp, &body).await }
            })
            .await;
        let o = match r {
            Ok(o) => o,
            Err(e) if e.status() == Some(409) => {
                self.c
                    .call("get", what, Backoff::READ, false, |_| {
                        let api = api.clone();
                        let name = name.clone();
                        async move { api.get(&name).await }
                    })
                    .await?
            }
            Err(e) => return Err(e),
        };
        Ok(o.metadata.uid.unwrap_or_default())
    }

    async fn status(&self, t: &TypeInfo, ns: &str, name: &str, status: Value) -> Result<()> {
        let api = t.api(self.c.client().clone(), Some(ns));
        let patch = json!({ "status": status });
        self.c
            .call(
                "set status of",
                || format!("{} {ns}/{name}", t.kind),
                Backoff::WRITE,
                true,
                |_| {
                    let api = api.clone();
                    let patch = patch.clone();
                    let name = name.to_owned();
                    async move {
                        api.patch_status(
                            &name,
                            &PatchParams {
                                field_manager: Some("fleet-status".into()),
                                ..PatchParams::default()
                            },
                            &Patch::Merge(&patch),
                        )
                        .await
                    }
                },
            )
            .await
            .map(|_| ())
    }
}

fn meta(name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}})
}

/// Creates the fleet; returns the number of namespaced objects created (the identity excluded).
pub async fn create_fleet(c: &Cluster, spec: &FleetSpec) -> Result<usize> {
    let m = Maker {
        c,
        finalizers: spec.finalizers,
    };
    let ns_t = TypeInfo {
        group: String::new(),
        version: "v1".into(),
        kind: "Namespace".into(),
        plural: "namespaces".into(),
        namespaced: false,
        force_move: false,
        force_move_hierarchy: false,
    };
    for ns in spec
        .namespaces
        .iter()
        .map(String::as_str)
        .chain([INFRA_NAMESPACE])
    {
        m.make(&ns_t, None, json!({"metadata": {"name": ns}}), vec![])
            .await?;
    }
    let id_t = ty(INFRA, "DevClusterIdentity", "devclusteridentities", false);
    let id_uid = m
        .make(&id_t, None, json!({"metadata": {"name": spec.identity}, "spec": {"secretRef": format!("{}-credentials", spec.identity)}}), vec![])
        .await?;
    let secret_t = ty("", "Secret", "secrets", true);
    m.make(
        &secret_t,
        Some(INFRA_NAMESPACE),
        json!({"metadata": {"name": format!("{}-credentials", spec.identity)}, "stringData": {"token": "identity"}}),
        vec![owner("DevClusterIdentity", INFRA, &spec.identity, &id_uid, false)],
    )
    .await?;
    let mut total = 0;
    for ns in &spec.namespaces {
        total += create_namespace_shared(&m, ns).await?;
        let clusters: Vec<usize> = (0..spec.clusters_per_namespace).collect();
        let counts: Vec<usize> = stream::iter(clusters)
            .map(|i| create_cluster(&m, ns, i))
            .buffer_unordered(spec.parallelism.max(1))
            .try_collect()
            .await?;
        total += counts.iter().sum::<usize>();
    }
    Ok(total)
}

async fn create_namespace_shared(m: &Maker<'_>, ns: &str) -> Result<usize> {
    let cc_t = ty(CAPI, "ClusterClass", "clusterclasses", true);
    let cc = json!({
        "metadata": {"name": "cc"},
        "spec": {
            "infrastructure": {"templateRef": {"apiVersion": format!("{INFRA}/v1beta2"), "kind": "DevClusterTemplate", "name": "cc-infra"}},
            "controlPlane": {"templateRef": {"apiVersion": format!("{CP}/v1beta2"), "kind": "KubeadmControlPlaneTemplate", "name": "cc-cp"}},
            "workers": {"machineDeployments": [{
                "class": "default",
                "bootstrap": {"templateRef": {"apiVersion": format!("{BOOT}/v1beta2"), "kind": "KubeadmConfigTemplate", "name": "cc-md"}},
                "infrastructure": {"templateRef": {"apiVersion": format!("{INFRA}/v1beta2"), "kind": "DevMachineTemplate", "name": "cc-md"}},
            }]},
        }
    });
    let cc_uid = m.make(&cc_t, Some(ns), cc, vec![]).await?;
    let cc_owner = || vec![owner("ClusterClass", CAPI, "cc", &cc_uid, false)];
    m.make(&ty(INFRA, "DevClusterTemplate", "devclustertemplates", true), Some(ns),
        json!({"metadata": {"name": "cc-infra"}, "spec": {"template": {"spec": {"backend": {"docker": {}}}}}}), cc_owner()).await?;
    m.make(&ty(CP, "KubeadmControlPlaneTemplate", "kubeadmcontrolplanetemplates", true), Some(ns),
        json!({"metadata": {"name": "cc-cp"}, "spec": {"template": {"spec": {"kubeadmConfigSpec": {"format": "cloud-config"}}}}}), cc_owner()).await?;
    m.make(&ty(BOOT, "KubeadmConfigTemplate", "kubeadmconfigtemplates", true), Some(ns),
        json!({"metadata": {"name": "cc-md"}, "spec": {"template": {"spec": {"format": "cloud-config"}}}}), cc_owner()).await?;
    m.make(&ty(INFRA, "DevMachineTemplate", "devmachinetemplates", true), Some(ns),
        json!({"metadata": {"name": "cc-md"}, "spec": {"template": {"spec": {"backend": {"docker": {}}}}}}), cc_owner()).await?;
    let crs_uid = m
        .make(&ty(ADDONS, "ClusterResourceSet", "clusterresourcesets", true), Some(ns),
            json!({"metadata": {"name": "crs"}, "spec": {"clusterSelector": {"matchLabels": {"cni": "calico"}}, "resources": [{"kind": "ConfigMap", "name": "crs-cni"}]}}), vec![])
        .await?;
    m.make(
        &ty("", "ConfigMap", "configmaps", true),
        Some(ns),
        json!({"metadata": {"name": "crs-cni"}, "data": {"cni.yaml": "kind: ConfigMap"}}),
        vec![owner("ClusterResourceSet", ADDONS, "crs", &crs_uid, false)],
    )
    .await?;
    Ok(7)
}

async fn create_cluster(m: &Maker<'_>, ns: &str, i: usize) -> Result<usize> {
    let c = format!("c{i}");
    let cl = json!({"cluster.x-k8s.io/cluster-name": c});
    let cluster_t = ty(CAPI, "Cluster", "clusters", true);
    let mut spec = json!({
        "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]}},
        "controlPlaneRef": {"apiGroup": CP, "kind": "KubeadmControlPlane", "name": format!("{c}-cp")},
        "infrastructureRef": {"apiGroup": INFRA, "kind": "DevCluster", "name": c},
    });
    if i == 0 {
        spec["topology"] = json!({"classRef": {"name": "cc"}, "version": "v1.36.3"});
    }
    let mut obj = meta(&c, json!({"cni": "calico", "fleet": "generated"}));
    obj["spec"] = spec;
    let cuid = m.make(&cluster_t, Some(ns), obj, vec![]).await?;
    m.status(&cluster_t, ns, &c, json!({
        "initialization": {"infrastructureProvisioned": true, "controlPlaneInitialized": true},
        "conditions": [{"type": "ControlPlaneInitialized", "status": "True", "reason": "Generated", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    })).await?;
    let by_cluster = |controller: bool| vec![owner("Cluster", CAPI, &c, &cuid, controller)];
    let secret_t = ty("", "Secret", "secrets", true);
    let dmt_t = ty(INFRA, "DevMachineTemplate", "devmachinetemplates", true);
    let cp_name = format!("{c}-cp");
    let md_name = format!("{c}-md");
    let ms_name = format!("{c}-md-7d9f");
    let mut n = 1;
    // layer 2: owned by the Cluster, or soft-owned
    let devcluster_t = ty(INFRA, "DevCluster", "devclusters", true);
    let kcp_t = ty(CP, "KubeadmControlPlane", "kubeadmcontrolplanes", true);
    let kct_t = ty(
        BOOT,
        "KubeadmConfigTemplate",
        "kubeadmconfigtemplates",
        true,
    );
    let md_t = ty(CAPI, "MachineDeployment", "machinedeployments", true);
    let (_, kcp_uid, _, _, _, md_uid) = tokio::try_join!(
        m.make(&devcluster_t, Some(ns), {
            let mut o = meta(&c, cl.clone());
            o["spec"] = json!({"backend": {"docker": {}}});
            o
        }, by_cluster(true)),
        m.make(&kcp_t, Some(ns), {
            let mut o = meta(&cp_name, cl.clone());
            o["spec"] = json!({"version": "v1.36.3", "replicas": 1, "kubeadmConfigSpec": {"format": "cloud-config"},
                "machineTemplate": {"spec": {"infrastructureRef": {"apiGroup": INFRA, "kind": "DevMachineTemplate", "name": cp_name}}}});
            o
        }, by_cluster(true)),
        m.make(&dmt_t, Some(ns), {
            let mut o = meta(&cp_name, cl.clone());
            o["spec"] = json!({"template": {"spec": {"backend": {"docker": {}}}}});
            o
        }, by_cluster(false)),
        m.make(&dmt_t, Some(ns), {
            let mut o = meta(&md_name, cl.clone());
            o["spec"] = json!({"template": {"spec": {"backend": {"docker": {}}}}});
            o
        }, by_cluster(false)),
        m.make(&kct_t, Some(ns), {
            let mut o = meta(&md_name, cl.clone());
            o["spec"] = json!({"template": {"spec": {"format": "cloud-config"}}});
            o
        }, by_cluster(false)),
        m.make(&md_t, Some(ns), {
            let mut o = meta(&md_name, cl.clone());
            o["spec"] = json!({"clusterName": c, "replicas": 2,
                "selector": {"matchLabels": {"cluster.x-k8s.io/deployment-name": md_name}},
                "template": {"metadata": {"labels": {"cluster.x-k8s.io/deployment-name": md_name, "cluster.x-k8s.io/cluster-name": c}},
                    "spec": {"clusterName": c, "version": "v1.36.3",
                        "bootstrap": {"configRef": {"apiGroup": BOOT, "kind": "KubeadmConfigTemplate", "name": md_name}},
                        "infrastructureRef": {"apiGroup": INFRA, "kind": "DevMachineTemplate", "name": md_name}}}});
            o
        }, by_cluster(false)),
    )?;
    n += 6;
    for purpose in ["ca", "etcd", "sa", "proxy"] {
        m.make(&secret_t, Some(ns), json!({"metadata": {"name": format!("{c}-{purpose}"), "labels": cl},
            "type": "cluster.x-k8s.io/secret", "stringData": {"tls.crt": "cert", "tls.key": "key"}}), vec![]).await?;
        n += 1;
    }
    let mut cm = meta(
        &format!("{c}-addons"),
        json!({"clusterctl.cluster.x-k8s.io/move": ""}),
    );
    cm["data"] = json!({"note": "moves because of its label"});
    m.make(
        &ty("", "ConfigMap", "configmaps", true),
        Some(ns),
        cm,
        vec![],
    )
    .await?;
    n += 1;
    // layer 3
    let kcp_owner = |controller| {
        vec![owner(
            "KubeadmControlPlane",
            CP,
            &cp_name,
            &kcp_uid,
            controller,
        )]
    };
    m.make(
        &secret_t,
        Some(ns),
        json!({"metadata": {"name": format!("{c}-kubeconfig"), "labels": cl},
        "type": "cluster.x-k8s.io/secret", "stringData": {"value": "kubeconfig"}}),
        kcp_owner(true),
    )
    .await?;
    let ms_uid = m
        .make(&ty(CAPI, "MachineSet", "machinesets", true), Some(ns), {
            let mut o = meta(&ms_name, json!({"cluster.x-k8s.io/cluster-name": c, "cluster.x-k8s.io/deployment-name": md_name}));
            o["spec"] = json!({"clusterName": c, "replicas": 2,
                "selector": {"matchLabels": {"cluster.x-k8s.io/deployment-name": md_name}},
                "template": {"metadata": {"labels": {"cluster.x-k8s.io/deployment-name": md_name, "cluster.x-k8s.io/cluster-name": c}},
                    "spec": {"clusterName": c, "version": "v1.36.3",
                        "bootstrap": {"configRef": {"apiGroup": BOOT, "kind": "KubeadmConfigTemplate", "name": md_name}},
                        "infrastructureRef": {"apiGroup": INFRA, "kind": "DevMachineTemplate", "name": md_name}}}});
            o
        }, vec![owner("MachineDeployment", CAPI, &md_name, &md_uid, true)])
        .await?;
    n += 2;
    // machines: one control plane (owned by the KCP), two workers (owned by the MachineSet)
    let machine_t = ty(CAPI, "Machine", "machines", true);
    let machines = [
        (format!("{c}-cp-x1"), kcp_owner(true)),
        (
            format!("{c}-md-7d9f-a"),
            vec![owner("MachineSet", CAPI, &ms_name, &ms_uid, true)],
        ),
        (
            format!("{c}-md-7d9f-b"),
            vec![owner("MachineSet", CAPI, &ms_name, &ms_uid, true)],
        ),
    ];
    for (mname, owners) in machines {
        let mut o = meta(&mname, cl.clone());
        o["spec"] = json!({"clusterName": c, "version": "v1.36.3",
            "bootstrap": {"configRef": {"apiGroup": BOOT, "kind": "KubeadmConfig", "name": mname}},
            "infrastructureRef": {"apiGroup": INFRA, "kind": "DevMachine", "name": mname}});
        let muid = m.make(&machine_t, Some(ns), o, owners).await?;
        m.status(&machine_t, ns, &mname, json!({"nodeRef": {"name": mname}}))
            .await?;
        let by_machine = || vec![owner("Machine", CAPI, &mname, &muid, true)];
        let kc_uid = m
            .make(
                &ty(BOOT, "KubeadmConfig", "kubeadmconfigs", true),
                Some(ns),
                {
                    let mut o = meta(&mname, cl.clone());
                    o["spec"] = json!({"format": "cloud-config"});
                    o
                },
                by_machine(),
            )
            .await?;
        m.make(
            &ty(INFRA, "DevMachine", "devmachines", true),
            Some(ns),
            {
                let mut o = meta(&mname, cl.clone());
                o["spec"] = json!({"backend": {"docker": {}}});
                o
            },
            by_machine(),
        )
        .await?;
        m.make(&secret_t, Some(ns), json!({"metadata": {"name": mname, "labels": cl},
            "type": "cluster.x-k8s.io/secret", "stringData": {"value": "cloud-init", "format": "cloud-config"}}),
            vec![owner("KubeadmConfig", BOOT, &mname, &kc_uid, true)]).await?;
        n += 4;
    }
    if i == 0 {
        m.make(
            &ty(
                ADDONS,
                "ClusterResourceSetBinding",
                "clusterresourcesetbindings",
                true,
            ),
            Some(ns),
            json!({"metadata": {"name": c}, "spec": {"clusterName": c, "bindings": []}}),
            vec![],
        )
        .await?;
        n += 1;
    }
    Ok(n)
}
