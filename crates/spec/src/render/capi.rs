//! The provider-independent Cluster API objects: Cluster, KubeadmControlPlane,
//! KubeadmConfigTemplates, MachineDeployments and MachineHealthChecks (all v1beta2), around the
//! provider's infrastructure objects.

use super::names::{self, CLUSTER_NAME_LABEL};
use super::{
    BOOTSTRAP_GROUP, CAPI_GROUP, CAPI_VERSION, CONTROL_PLANE_GROUP, INFRA_GROUP, Infra,
    RenderError, Role, int32, object, text,
};
use crate::crd::is_dns_label;
use crate::model::{ClusterDefinition, NodeGroup};
use serde_json::{Map, Value, json};

/// Label Cluster API puts on a MachineDeployment's machines.
const DEPLOYMENT_NAME_LABEL: &str = "cluster.x-k8s.io/deployment-name";
/// Label Cluster API puts on control-plane machines.
const CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";
/// Cluster autoscaler bounds, read from MachineDeployment annotations.
const AUTOSCALER_MIN: &str = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size";
const AUTOSCALER_MAX: &str = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size";

/// Names that end up in label values (`cluster.x-k8s.io/cluster-name`, `…/deployment-name`, the
/// KCP name) may have at most 63 characters; check them before building anything.
pub(super) fn check_names(def: &ClusterDefinition) -> Result<(), RenderError> {
    let bad = |field: String, value: &str, object: String, expected| RenderError::BadName {
        field,
        value: value.to_string(),
        object,
        expected,
    };
    if !is_dns_label(&def.name) {
        return Err(bad(
            "name".into(),
            &def.name,
            "the Cluster".into(),
            "a DNS-1123 label",
        ));
    }
    if !is_dns_label(def.capi_namespace()) {
        return Err(bad(
            "namespace".into(),
            def.capi_namespace(),
            "the namespace".into(),
            "a DNS-1123 label",
        ));
    }
    let kcp = names::control_plane(&def.name);
    if kcp.len() > names::MAX_LABEL_VALUE {
        return Err(bad(
            "name".into(),
            &def.name,
            format!("the KubeadmControlPlane {kcp}"),
            "at most 49 characters, so `<name>-control-plane` fits in 63",
        ));
    }
    for (i, group) in def.workers.iter().enumerate() {
        let field = format!("workers[{i}].name");
        if !is_dns_label(&group.name) {
            return Err(bad(
                field,
                &group.name,
                "a MachineDeployment".into(),
                "a DNS-1123 label",
            ));
        }
        let md = names::worker_group(&def.name, &group.name);
        if md.len() > names::MAX_LABEL_VALUE {
            return Err(bad(
                field,
                &group.name,
                format!("the MachineDeployment {md}"),
                "`<cluster>-<group>` of at most 63 characters",
            ));
        }
        if group.name == "control-plane" {
            // `<cluster>-control-plane` already names the control plane's templates and
            // server group.
            return Err(RenderError::Conflict {
                field,
                message: "\"control-plane\" is reserved for the control plane".into(),
            });
        }
        if def.workers[..i].iter().any(|g| g.name == group.name) {
            return Err(RenderError::Conflict {
                field,
                message: format!("two worker groups named {:?}", group.name),
            });
        }
    }
    Ok(())
}

/// All objects of one cluster, in apply order.
pub(super) fn render_with(
    def: &ClusterDefinition,
    infra: &dyn Infra,
) -> Result<Vec<Value>, RenderError> {
    let version = kubernetes_version(&def.kubernetes_version);
    let cp_replicas = int32("controlPlane.count", def.control_plane.count, 0)?;
    let mut out = vec![cluster(def, infra), infra_cluster(def, infra)?];

    let (cp_template, cp_template_name) = machine_template(
        def,
        infra,
        Role::ControlPlane,
        names::control_plane(&def.name),
    )?;
    out.push(cp_template);
    out.push(control_plane(
        def,
        infra,
        &version,
        cp_replicas,
        &cp_template_name,
    ));

    for (i, group) in def.workers.iter().enumerate() {
        let md_name = names::worker_group(&def.name, &group.name);
        let (template, template_name) =
            machine_template(def, infra, Role::Workers(i, group), md_name.clone())?;
        let (config, config_name) = config_template(def, infra, group, i, &md_name)?;
        out.push(template);
        out.push(config);
        out.push(machine_deployment(
            def,
            group,
            i,
            &version,
            &md_name,
            &template_name,
            &config_name,
            infra,
        )?);
    }

    out.push(control_plane_health_check(def));
    if !def.workers.is_empty() {
        out.push(workers_health_check(def));
    }
    Ok(out)
}

/// `v1.33.1` from `1.33.1` or `v1.33.1`: Cluster API wants the `v`.
fn kubernetes_version(v: &str) -> String {
    let v = v.trim();
    if v.starts_with('v') {
        v.to_string()
    } else {
        format!("v{v}")
    }
}

fn cluster(def: &ClusterDefinition, infra: &dyn Infra) -> Value {
    let mut obj = object(
        def,
        &format!("{CAPI_GROUP}/{CAPI_VERSION}"),
        "Cluster",
        &def.name,
    );
    obj.insert(
        "spec".into(),
        json!({
            "clusterNetwork": {
                "pods": { "cidrBlocks": [def.network.pod_cidr] },
                "services": { "cidrBlocks": [def.network.service_cidr] },
                "serviceDomain": "cluster.local",
            },
            "controlPlaneRef": {
                "apiGroup": CONTROL_PLANE_GROUP,
                "kind": "KubeadmControlPlane",
                "name": names::control_plane(&def.name),
            },
            "infrastructureRef": {
                "apiGroup": INFRA_GROUP,
                "kind": infra.cluster_kind(),
                "name": def.name,
            },
        }),
    );
    Value::Object(obj)
}

fn infra_cluster(def: &ClusterDefinition, infra: &dyn Infra) -> Result<Value, RenderError> {
    let mut obj = object(def, &infra.api_version(), infra.cluster_kind(), &def.name);
    obj.insert("spec".into(), infra.cluster_spec()?);
    Ok(Value::Object(obj))
}

/// A machine template named `<base>-<hash of its spec>`; returns the object and its name.
fn machine_template(
    def: &ClusterDefinition,
    infra: &dyn Infra,
    role: Role<'_>,
    base: String,
) -> Result<(Value, String), RenderError> {
    let spec = infra.machine_template_spec(role)?;
    let name = names::hashed(&base, &spec);
    let mut obj = object(
        def,
        &infra.api_version(),
        infra.machine_template_kind(),
        &name,
    );
    obj.insert("spec".into(), spec);
    Ok((Value::Object(obj), name))
}

/// `nodeRegistration` of a kubeadm init or join configuration.
fn node_registration(
    infra: &dyn Infra,
    extra_args: &[(String, String)],
    taints: Option<Value>,
) -> Value {
    let mut reg = Map::new();
    if let Some(name) = infra.node_name() {
        reg.insert("name".into(), name.into());
    }
    let args: Vec<Value> = infra
        .kubelet_args()
        .iter()
        .chain(extra_args)
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    if !args.is_empty() {
        reg.insert("kubeletExtraArgs".into(), Value::Array(args));
    }
    if let Some(taints) = taints {
        reg.insert("taints".into(), taints);
    }
    Value::Object(reg)
}

fn control_plane(
    def: &ClusterDefinition,
    infra: &dyn Infra,
    version: &str,
    replicas: i64,
    template: &str,
) -> Value {
    // Without workers the control plane must run workloads: kubeadm registers no taint when
    // `taints` is an empty list (and the default control-plane taint when it is absent).
    let taints = def.workers.is_empty().then(|| json!([]));
    let registration = node_registration(infra, &[], taints);
    let mut kubeadm = Map::new();
    let cluster_configuration = infra.cluster_configuration();
    if !cluster_configuration.is_empty() {
        kubeadm.insert(
            "clusterConfiguration".into(),
            Value::Object(cluster_configuration),
        );
    }
    kubeadm.insert(
        "initConfiguration".into(),
        json!({ "nodeRegistration": registration }),
    );
    kubeadm.insert(
        "joinConfiguration".into(),
        json!({ "nodeRegistration": registration }),
    );
    let name = names::control_plane(&def.name);
    let mut obj = object(
        def,
        &format!("{CONTROL_PLANE_GROUP}/{CAPI_VERSION}"),
        "KubeadmControlPlane",
        &name,
    );
    obj.insert(
        "spec".into(),
        json!({
            "replicas": replicas,
            "version": version,
            "machineTemplate": {
                "spec": {
                    "infrastructureRef": {
                        "apiGroup": INFRA_GROUP,
                        "kind": infra.machine_template_kind(),
                        "name": template,
                    },
                },
            },
            "kubeadmConfigSpec": kubeadm,
        }),
    );
    Value::Object(obj)
}

/// Whether Cluster API itself keeps this label in sync from the Machine to the Node. kubelet may
/// not set labels in these domains (`--node-labels` refuses most `kubernetes.io` keys), so they go
/// on the MachineDeployment's machine template instead.
fn synced_by_capi(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    prefix == "node-role.kubernetes.io"
        || prefix == "node-restriction.kubernetes.io"
        || prefix == "node.cluster.x-k8s.io"
        || prefix.ends_with(".node.cluster.x-k8s.io")
}

fn config_template(
    def: &ClusterDefinition,
    infra: &dyn Infra,
    group: &NodeGroup,
    index: usize,
    md_name: &str,
) -> Result<(Value, String), RenderError> {
    let kubelet_labels: Vec<String> = group
        .labels
        .iter()
        .filter(|(k, _)| !synced_by_capi(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut extra = Vec::new();
    if !kubelet_labels.is_empty() {
        let joined = kubelet_labels.join(",");
        // kubeadm passes it as one kubelet flag, limited to 1024 characters.
        text(&format!("workers[{index}].labels"), &joined, 1024)?;
        extra.push(("node-labels".to_string(), joined));
    }
    let taints = (!group.taints.is_empty()).then(|| {
        Value::Array(
            group
                .taints
                .iter()
                .map(|t| {
                    let mut taint = Map::new();
                    taint.insert("key".into(), t.key.clone().into());
                    if let Some(v) = &t.value {
                        taint.insert("value".into(), v.clone().into());
                    }
                    taint.insert("effect".into(), json!(t.effect));
                    Value::Object(taint)
                })
                .collect(),
        )
    });
    let spec = json!({
        "template": {
            "spec": {
                "joinConfiguration": { "nodeRegistration": node_registration(infra, &extra, taints) },
            },
        },
    });
    let name = names::hashed(md_name, &spec);
    let mut obj = object(
        def,
        &format!("{BOOTSTRAP_GROUP}/{CAPI_VERSION}"),
        "KubeadmConfigTemplate",
        &name,
    );
    obj.insert("spec".into(), spec);
    Ok((Value::Object(obj), name))
}

#[allow(clippy::too_many_arguments)]
fn machine_deployment(
    def: &ClusterDefinition,
    group: &NodeGroup,
    index: usize,
    version: &str,
    name: &str,
    template: &str,
    config: &str,
    infra: &dyn Infra,
) -> Result<Value, RenderError> {
    let field = |f: &str| format!("workers[{index}].{f}");
    let mut obj = object(
        def,
        &format!("{CAPI_GROUP}/{CAPI_VERSION}"),
        "MachineDeployment",
        name,
    );
    let selector = json!({ CLUSTER_NAME_LABEL: def.name, DEPLOYMENT_NAME_LABEL: name });
    let mut machine_labels = selector.clone();
    if let Some(labels) = machine_labels.as_object_mut() {
        for (k, v) in group.labels.iter().filter(|(k, _)| synced_by_capi(k)) {
            labels.insert(k.clone(), v.clone().into());
        }
    }
    let mut spec = Map::new();
    spec.insert("clusterName".into(), def.name.clone().into());
    match (&group.autoscale, group.count) {
        (Some(_), Some(_)) => {
            return Err(RenderError::Conflict {
                field: field("autoscale"),
                message: "give either count or autoscale, not both".into(),
            });
        }
        (Some(bounds), None) => {
            let min = int32(&field("autoscale.min"), bounds.min, 0)?;
            let max = int32(&field("autoscale.max"), bounds.max, 1)?;
            if min > max {
                return Err(RenderError::Conflict {
                    field: field("autoscale"),
                    message: format!("min {min} is larger than max {max}"),
                });
            }
            // The autoscaler owns `replicas`: leaving it out lets Cluster API start at `min`
            // and keeps a GitOps re-apply from resetting the autoscaler's choice.
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert(
                    "annotations".into(),
                    json!({ AUTOSCALER_MIN: min.to_string(), AUTOSCALER_MAX: max.to_string() }),
                );
            }
        }
        (None, count) => {
            // No count and no autoscale: one machine, as Cluster API would default it.
            spec.insert(
                "replicas".into(),
                int32(&field("count"), count.unwrap_or(1), 0)?.into(),
            );
        }
    }
    spec.insert("selector".into(), json!({ "matchLabels": selector }));
    let mut machine = Map::new();
    machine.insert("clusterName".into(), def.name.clone().into());
    machine.insert("version".into(), version.into());
    machine.insert(
        "bootstrap".into(),
        json!({ "configRef": { "apiGroup": BOOTSTRAP_GROUP, "kind": "KubeadmConfigTemplate", "name": config } }),
    );
    machine.insert(
        "infrastructureRef".into(),
        json!({ "apiGroup": INFRA_GROUP, "kind": infra.machine_template_kind(), "name": template }),
    );
    if let Some(zone) = &group.availability_zone {
        machine.insert("failureDomain".into(), zone.clone().into());
    }
    spec.insert(
        "template".into(),
        json!({ "metadata": { "labels": machine_labels }, "spec": machine }),
    );
    obj.insert("spec".into(), Value::Object(spec));
    Ok(Value::Object(obj))
}

/// Node conditions after which a machine is replaced: Ready false or unknown for 5 minutes.
fn unhealthy_node_conditions() -> Value {
    json!([
        { "type": "Ready", "status": "Unknown", "timeoutSeconds": 300 },
        { "type": "Ready", "status": "False", "timeoutSeconds": 300 },
    ])
}

fn control_plane_health_check(def: &ClusterDefinition) -> Value {
    let name = names::control_plane(&def.name);
    let mut obj = object(
        def,
        &format!("{CAPI_GROUP}/{CAPI_VERSION}"),
        "MachineHealthCheck",
        &name,
    );
    // KCP remediates one machine at a time and only while etcd keeps quorum, so no extra
    // short-circuit is needed here.
    obj.insert(
        "spec".into(),
        json!({
            "clusterName": def.name,
            "selector": { "matchLabels": { CLUSTER_NAME_LABEL: def.name, CONTROL_PLANE_LABEL: "" } },
            "checks": {
                "nodeStartupTimeoutSeconds": 1200,
                "unhealthyNodeConditions": unhealthy_node_conditions(),
            },
        }),
    );
    Value::Object(obj)
}

fn workers_health_check(def: &ClusterDefinition) -> Value {
    let name = names::workers_health_check(&def.name);
    let mut obj = object(
        def,
        &format!("{CAPI_GROUP}/{CAPI_VERSION}"),
        "MachineHealthCheck",
        &name,
    );
    // Stop remediating when over 40% of workers are unhealthy at once: that is a cloud or
    // network outage, and replacing machines would only make it worse.
    obj.insert(
        "spec".into(),
        json!({
            "clusterName": def.name,
            "selector": {
                "matchLabels": { CLUSTER_NAME_LABEL: def.name },
                "matchExpressions": [{ "key": DEPLOYMENT_NAME_LABEL, "operator": "Exists" }],
            },
            "checks": {
                "nodeStartupTimeoutSeconds": 600,
                "unhealthyNodeConditions": unhealthy_node_conditions(),
            },
            "remediation": { "triggerIf": { "unhealthyLessThanOrEqualTo": "40%" } },
        }),
    );
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_gets_its_v() {
        assert_eq!(kubernetes_version("1.33.1"), "v1.33.1");
        assert_eq!(kubernetes_version("v1.33.1"), "v1.33.1");
    }

    #[test]
    fn capi_synced_label_domains() {
        assert!(synced_by_capi("node-role.kubernetes.io/worker"));
        assert!(synced_by_capi("team.node.cluster.x-k8s.io/a"));
        assert!(!synced_by_capi("topology.kubernetes.io/zone"));
        assert!(!synced_by_capi("role"));
    }
}
