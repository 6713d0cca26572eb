//! Rendering: a [`ClusterDefinition`] → the Cluster API objects of that cluster, as JSON values in
//! the current API versions (CAPI `v1beta2`; CAPO `v1beta2` or, for CAPO v0.14.x, `v1beta1`; the
//! Docker "dev" provider `v1beta2`).
//!
//! The output is deterministic (same definition, same bytes) and ordered owners before
//! dependents, templates before the objects that refer to them:
//! Cluster, infrastructure cluster, control-plane machine template, KubeadmControlPlane, then per
//! worker group its machine template, KubeadmConfigTemplate and MachineDeployment, then the
//! MachineHealthChecks.
//!
//! What each definition field becomes (OpenStack; CAPO `v1beta1` field names after "v1beta1:"):
//!
//! | definition | rendered as |
//! |---|---|
//! | `name`, `namespace` | object names, `metadata.namespace`, label `cluster.x-k8s.io/cluster-name` |
//! | `kubernetesVersion` | KCP `spec.version`, MachineDeployment `template.spec.version` (with `v`) |
//! | `cloud.name`, `cloud.region` | OpenStackCluster `identityRef.cloudName`/`region`, Secret `<cluster>-cloud-config` |
//! | `cloud.externalNetwork` | `externalNetwork.id` (a UUID) or `externalNetwork.filter.name` |
//! | `cloud.dnsServers` | `managedSubnets[0].dnsNameservers` |
//! | `cloud.availabilityZones` | `controlPlaneAvailabilityZones` (Docker: DevCluster failure domains) |
//! | `cloud.sshKeyName` | machine templates' `sshKeyName` |
//! | `image.name` | machine templates' `image.filter.name` |
//! | `controlPlane.count` / `.flavor` / `.rootVolume` | KCP `replicas`; template `flavor.filter.name` (v1beta1: `flavor`), `rootVolume.sizeGiB`/`type` |
//! | `workers[].count` | MachineDeployment `replicas` (1 when neither count nor autoscale) |
//! | `workers[].autoscale` | cluster-autoscaler min/max annotations on the MachineDeployment, no `replicas` |
//! | `workers[].flavor` / `.rootVolume` | the group's machine template |
//! | `workers[].availabilityZone` | MachineDeployment `template.spec.failureDomain` |
//! | `workers[].labels` | kubelet `node-labels`; `node-role.kubernetes.io/*`, `node-restriction.kubernetes.io/*` and `*node.cluster.x-k8s.io/*` on the Machines instead (Cluster API copies them to Nodes; kubelet may not set them) |
//! | `workers[].taints` | KubeadmConfigTemplate `joinConfiguration.nodeRegistration.taints` |
//! | no workers | control-plane `nodeRegistration.taints: []` (no control-plane taint) |
//! | `network.nodeCidr` | `managedSubnets[0].cidr` |
//! | `network.podCidr` / `.serviceCidr` | Cluster `clusterNetwork.pods`/`services.cidrBlocks` |
//! | `network.cni` | node-to-node security group rules (`clusterNodesSecurityGroupRules` (v1beta1: `allNodesSecurityGroupRules`)) |
//! | `network.mtu` | `managedNetwork.mtu` (v1beta1: `networkMTU`) |
//! | `network.apiServerLoadBalancer`, `.apiServerAllowedCidrs` | `apiServer.managedLoadBalancer` (v1beta1: `apiServerLoadBalancer`) `enabled`/`allowedCIDRs` |
//! | `antiAffinity` | templates' `serverGroup.filter.name` = `<cluster>-control-plane` / `<cluster>-<group>`; policies in [`server_groups`] |
//! | `image.url`/`format`/`sha256`, `addons`, `owners` | not rendered here (image registration, addons and owners belong to other steps) |
//!
//! Credentials are never rendered: the OpenStackCluster refers to the Secret
//! `<cluster>-cloud-config` (key `clouds.yaml`), which the bootstrap creates from the user's
//! credentials ([`cloud_config_secret`] builds it from given bytes; [`render`] never calls it).

mod capi;
mod docker;
pub mod names;
mod openstack;

use crate::model::{ClusterDefinition, NodeGroup, Provider};
use serde_json::{Map, Value, json};

/// CAPO API version of the OpenStackCluster and OpenStackMachineTemplates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CapoApiVersion {
    /// `v1beta1`: the storage version of CAPO v0.14.x (what the test world runs; it serves only
    /// this one).
    V1beta1,
    /// `v1beta2`: CAPO's current storage version.
    #[default]
    V1beta2,
}

impl CapoApiVersion {
    /// The version part, `v1beta1` or `v1beta2`.
    pub fn as_str(self) -> &'static str {
        match self {
            CapoApiVersion::V1beta1 => "v1beta1",
            CapoApiVersion::V1beta2 => "v1beta2",
        }
    }
}

impl std::str::FromStr for CapoApiVersion {
    type Err = RenderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v1beta1" => Ok(CapoApiVersion::V1beta1),
            "v1beta2" => Ok(CapoApiVersion::V1beta2),
            other => Err(RenderError::UnsupportedApiVersion(other.to_string())),
        }
    }
}

/// Choices that are not part of the cluster definition but of the management cluster it is
/// rendered for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// CAPO API version to emit (default: `v1beta2`).
    pub capo_api_version: CapoApiVersion,
    /// Node image of Docker machines (`customImage`); the provider's `kindest/node:<version>` when
    /// `None`. Only used with `provider: docker`.
    pub docker_node_image: Option<String>,
}

/// Why a definition could not be rendered. The loader's validation reports these mistakes with
/// file and line first; these errors are the last line of defence, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A field the provider needs is not set.
    #[error("{field} is required for provider {provider}")]
    Missing {
        /// Field path in the definition, e.g. `controlPlane.flavor`.
        field: String,
        /// The provider that needs it.
        provider: &'static str,
    },
    /// A number outside what the Kubernetes field can hold or what makes sense.
    #[error("{field} = {value} is out of range: {expected}")]
    OutOfRange {
        /// Field path in the definition.
        field: String,
        /// The value given.
        value: i64,
        /// What would be valid.
        expected: &'static str,
    },
    /// A name that cannot name the Kubernetes objects derived from it.
    #[error("{field} = {value:?} cannot name {object}: {expected}")]
    BadName {
        /// Field path in the definition.
        field: String,
        /// The name given.
        value: String,
        /// The object it would name.
        object: String,
        /// What would be valid.
        expected: &'static str,
    },
    /// A text value that is empty, too long, or otherwise unusable where it goes.
    #[error("{field} = {value:?} is not usable: {expected}")]
    BadText {
        /// Field path in the definition.
        field: String,
        /// The value given.
        value: String,
        /// What would be valid.
        expected: String,
    },
    /// Two settings that exclude each other.
    #[error("{field}: {message}")]
    Conflict {
        /// Field path in the definition.
        field: String,
        /// What conflicts.
        message: String,
    },
    /// The objects could not be written as YAML.
    #[error("cannot write the objects as YAML: {0}")]
    Yaml(String),
    /// An API version this renderer does not emit.
    #[error("unsupported CAPO API version {0:?} (expected v1beta1 or v1beta2)")]
    UnsupportedApiVersion(String),
}

/// API group of the Cluster API core objects.
pub(crate) const CAPI_GROUP: &str = "cluster.x-k8s.io";
/// API group of the kubeadm bootstrap provider.
pub(crate) const BOOTSTRAP_GROUP: &str = "bootstrap.cluster.x-k8s.io";
/// API group of the kubeadm control-plane provider.
pub(crate) const CONTROL_PLANE_GROUP: &str = "controlplane.cluster.x-k8s.io";
/// API group of every infrastructure provider.
pub(crate) const INFRA_GROUP: &str = "infrastructure.cluster.x-k8s.io";
/// The CAPI version rendered for core, bootstrap and control-plane objects.
pub(crate) const CAPI_VERSION: &str = "v1beta2";

/// Which machines a machine template is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role<'a> {
    /// The control plane.
    ControlPlane,
    /// One worker group, with its index in `workers` (for error messages).
    Workers(usize, &'a NodeGroup),
}

/// What differs between infrastructure providers; the Cluster API objects around it are shared.
pub(crate) trait Infra {
    /// `apiVersion` of the provider's objects.
    fn api_version(&self) -> String;
    /// Kind of the infrastructure cluster (`OpenStackCluster`, `DevCluster`).
    fn cluster_kind(&self) -> &'static str;
    /// Kind of the machine templates (`OpenStackMachineTemplate`, `DevMachineTemplate`).
    fn machine_template_kind(&self) -> &'static str;
    /// `spec` of the infrastructure cluster.
    fn cluster_spec(&self) -> Result<Value, RenderError>;
    /// `spec` of the machine template for `role`.
    fn machine_template_spec(&self, role: Role<'_>) -> Result<Value, RenderError>;
    /// kubelet flags every node needs on this provider (`name`/`value` pairs, kubeadm v1beta2).
    fn kubelet_args(&self) -> Vec<(String, String)>;
    /// The node name kubeadm registers, when the provider needs one set explicitly.
    fn node_name(&self) -> Option<&'static str>;
    /// Extra `clusterConfiguration` of the control plane.
    fn cluster_configuration(&self) -> Map<String, Value>;
}

/// Renders every Cluster API object of one cluster (see the module docs for the order).
pub fn render(def: &ClusterDefinition, opts: &RenderOptions) -> Result<Vec<Value>, RenderError> {
    capi::check_names(def)?;
    check_common_text(def)?;
    match def.provider {
        Provider::Openstack => capi::render_with(def, &openstack::OpenStack::new(def, opts)?),
        Provider::Docker => capi::render_with(def, &docker::Docker::new(def, opts)),
    }
}

/// The objects as one YAML stream, `---` between objects, for `manage render`. Strings that a
/// YAML 1.1 reader (Go's sigs.k8s.io/yaml) would take for numbers or booleans are quoted.
pub fn to_yaml(objects: &[Value]) -> Result<String, RenderError> {
    serde_saphyr::to_string_multiple(objects).map_err(|e| RenderError::Yaml(e.to_string()))
}

/// One ingress rule the CNI needs between nodes (from members of the CNI security group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CniRule {
    /// Short name (`cilium-vxlan`), written into the rule's description.
    pub name: &'static str,
    /// Neutron protocol: `tcp`, `udp`, `icmp` or an IP protocol number (`4` for IP-in-IP).
    pub protocol: &'static str,
    /// Destination port, for TCP and UDP.
    pub port: Option<u16>,
}

/// The rules of the cluster's CNI security group
/// ([`names::cni_security_group`]); the cloud step creates them, machines reference the group.
pub fn cni_rules(cni: crate::model::Cni) -> &'static [CniRule] {
    const fn r(name: &'static str, protocol: &'static str, port: Option<u16>) -> CniRule {
        CniRule {
            name,
            protocol,
            port,
        }
    }
    const CILIUM: [CniRule; 4] = [
        r("cilium-vxlan", "udp", Some(8472)),
        r("cilium-health", "tcp", Some(4240)),
        r("cilium-hubble", "tcp", Some(4244)),
        r("cilium-icmp", "icmp", None),
    ];
    const CALICO: [CniRule; 4] = [
        r("calico-bgp", "tcp", Some(179)),
        r("calico-ipip", "4", None),
        r("calico-vxlan", "udp", Some(4789)),
        r("calico-typha", "tcp", Some(5473)),
    ];
    match cni {
        crate::model::Cni::Cilium => &CILIUM,
        crate::model::Cni::Calico => &CALICO,
    }
}

/// A Nova server group the cloud step must create before machines boot (anti-affinity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerGroup {
    /// Name, as the machine templates filter on it.
    pub name: String,
    /// Nova policy: `anti-affinity` or `soft-anti-affinity`.
    pub policy: &'static str,
}

/// The server groups the rendered machine templates refer to (empty when anti-affinity is off or
/// the provider is not OpenStack).
pub fn server_groups(def: &ClusterDefinition) -> Vec<ServerGroup> {
    if def.provider != Provider::Openstack || !def.anti_affinity.enabled {
        return Vec::new();
    }
    let mut groups = vec![ServerGroup {
        name: names::control_plane(&def.name),
        policy: def.anti_affinity.control_plane.nova_policy(),
    }];
    groups.extend(def.workers.iter().map(|g| ServerGroup {
        name: names::worker_group(&def.name, &g.name),
        policy: def.anti_affinity.workers.nova_policy(),
    }));
    groups
}

/// The Secret CAPO reads the cloud credentials from: `<cluster>-cloud-config` with key
/// `clouds.yaml`. Built from the caller's `clouds.yaml` text (never from the definition); labelled
/// for `clusterctl move`. Not part of [`render`]'s output because it holds a secret.
pub fn cloud_config_secret(def: &ClusterDefinition, clouds_yaml: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": names::cloud_config_secret(&def.name),
            "namespace": def.capi_namespace(),
            "labels": {
                names::CLUSTER_NAME_LABEL: def.name,
                "clusterctl.cluster.x-k8s.io/move": "true",
            },
        },
        "type": "Opaque",
        "stringData": { "clouds.yaml": clouds_yaml },
    })
}

/// A top-level object with `apiVersion`, `kind` and metadata (name, namespace, cluster label).
pub(crate) fn object(
    def: &ClusterDefinition,
    api_version: &str,
    kind: &str,
    name: &str,
) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), api_version.into());
    obj.insert("kind".into(), kind.into());
    obj.insert(
        "metadata".into(),
        json!({
            "name": name,
            "namespace": def.capi_namespace(),
            "labels": { names::CLUSTER_NAME_LABEL: def.name },
        }),
    );
    obj
}

/// An `int32` field from an `i64` of the definition, or an error naming the field.
pub(crate) fn int32(field: &str, value: i64, min: i64) -> Result<i64, RenderError> {
    if value < min || value > i64::from(i32::MAX) {
        return Err(RenderError::OutOfRange {
            field: field.to_string(),
            value,
            expected: if min > 0 {
                "a positive 32-bit integer"
            } else {
                "a non-negative 32-bit integer"
            },
        });
    }
    Ok(value)
}

/// A text field that must be non-empty and at most `max` characters where it is rendered.
pub(crate) fn text<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, RenderError> {
    let len = value.chars().count();
    if value.trim().is_empty() || len > max {
        return Err(RenderError::BadText {
            field: field.to_string(),
            value: value.to_string(),
            expected: format!("1 to {max} characters, not blank"),
        });
    }
    Ok(value)
}

/// A list whose entries must be distinct (the CRDs declare these lists as sets).
pub(crate) fn distinct(field: &str, values: &[String]) -> Result<(), RenderError> {
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(RenderError::Conflict {
                field: format!("{field}[{i}]"),
                message: format!("{v:?} is listed twice"),
            });
        }
    }
    Ok(())
}

/// Checks on definition values shared by every provider, so no rendered string breaks a
/// length limit of the CRDs.
pub(crate) fn check_common_text(def: &ClusterDefinition) -> Result<(), RenderError> {
    // Kubernetes and CAPO limits: failure domain names 256, version 256, kubelet flag 1024.
    text("kubernetesVersion", &def.kubernetes_version, 256)?;
    let zones = &def.cloud.availability_zones;
    for (i, zone) in zones.iter().enumerate() {
        text(&format!("cloud.availabilityZones[{i}]"), zone, 256)?;
    }
    distinct("cloud.availabilityZones", zones)?;
    if zones.len() > 100 {
        return Err(RenderError::BadText {
            field: "cloud.availabilityZones".into(),
            value: format!("{} zones", zones.len()),
            expected: "at most 100 zones".into(),
        });
    }
    for (i, group) in def.workers.iter().enumerate() {
        if let Some(zone) = &group.availability_zone {
            text(&format!("workers[{i}].availabilityZone"), zone, 256)?;
        }
        for (j, taint) in group.taints.iter().enumerate() {
            text(&format!("workers[{i}].taints[{j}].key"), &taint.key, 317)?;
        }
    }
    Ok(())
}
