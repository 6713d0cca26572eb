//! The cluster definition: the typed schema of `clusters/<name>/cluster.yaml`, with its defaults.
//!
//! Field names are camelCase in YAML, as in Kubernetes. Every struct rejects unknown fields so a
//! typo is an error, never a silently ignored setting.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One cluster, as the user describes it (after layering `clusters/defaults.yaml` under it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterDefinition {
    /// Cluster name; also the name of its directory under `clusters/`. Filled from the directory when
    /// omitted. Must be a DNS-1123 label (it names Kubernetes objects and OpenStack resources).
    #[serde(default)]
    pub name: String,
    /// Namespace of the Cluster API objects on the management cluster. Default: the cluster name.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Infrastructure provider.
    #[serde(default)]
    pub provider: Provider,
    /// Kubernetes version of the nodes, `vMAJOR.MINOR.PATCH` (the `v` may be left out).
    pub kubernetes_version: String,
    /// Where the cluster runs (OpenStack only).
    #[serde(default)]
    pub cloud: Cloud,
    /// Node image (OpenStack only).
    #[serde(default)]
    pub image: Image,
    /// Control-plane machines.
    #[serde(default)]
    pub control_plane: ControlPlane,
    /// Worker node groups (MachineDeployments). May be empty: the control plane then runs workloads.
    #[serde(default)]
    pub workers: Vec<NodeGroup>,
    /// Node, pod and service networking.
    #[serde(default)]
    pub network: Network,
    /// Spreading machines over hypervisors with Nova server groups.
    #[serde(default)]
    pub anti_affinity: AntiAffinity,
    /// Cluster addons installed after the control plane is up.
    #[serde(default)]
    pub addons: Addons,
    /// People who may open the cluster's admin kubeconfig and sealing-key backup.
    #[serde(default)]
    pub owners: Vec<Owner>,
}

impl ClusterDefinition {
    /// Namespace of the Cluster API objects: `namespace`, else the cluster name.
    pub fn capi_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(&self.name)
    }
}

/// Infrastructure provider of a cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenStack through Cluster API Provider OpenStack (CAPO).
    #[default]
    Openstack,
    /// Containers on the local Docker engine (Cluster API's Docker "dev" provider), for laptops.
    Docker,
}

/// The OpenStack cloud a cluster runs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cloud {
    /// Entry of `clouds.yaml` holding the credentials.
    #[serde(default = "default_cloud_name")]
    pub name: String,
    /// Region; the cloud entry's region when omitted.
    #[serde(default)]
    pub region: Option<String>,
    /// External network (name or ID) for routers and floating IPs; detected when omitted.
    #[serde(default)]
    pub external_network: Option<String>,
    /// DNS servers handed to nodes through the cluster subnet.
    #[serde(default)]
    pub dns_servers: Vec<String>,
    /// Availability zones machines are spread over (Cluster API failure domains).
    #[serde(default)]
    pub availability_zones: Vec<String>,
    /// Nova keypair injected into every machine (for break-glass SSH); none when omitted.
    #[serde(default)]
    pub ssh_key_name: Option<String>,
}

fn default_cloud_name() -> String {
    "openstack".to_string()
}

impl Default for Cloud {
    fn default() -> Self {
        Self {
            name: default_cloud_name(),
            region: None,
            external_network: None,
            dns_servers: Vec::new(),
            availability_zones: Vec::new(),
            ssh_key_name: None,
        }
    }
}

/// The node image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Image {
    /// Glance image name machines boot from.
    #[serde(default)]
    pub name: Option<String>,
    /// Where to download the image from when it is not yet in Glance; registered under `name`.
    #[serde(default)]
    pub url: Option<String>,
    /// Disk format of the image at `url`.
    #[serde(default)]
    pub format: ImageFormat,
    /// Expected SHA-256 of the file at `url` (hex).
    #[serde(default)]
    pub sha256: Option<String>,
}

/// Disk format of an image to register.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// QEMU copy-on-write.
    #[default]
    Qcow2,
    /// Raw disk (what Ceph-backed clouds want).
    Raw,
}

/// A root volume instead of the flavor's ephemeral disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RootVolume {
    /// Size in GiB.
    pub size_gib: i64,
    /// Cinder volume type; the cloud's default when omitted.
    #[serde(default)]
    pub volume_type: Option<String>,
}

/// The control plane (a KubeadmControlPlane).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControlPlane {
    /// Number of control-plane machines: odd, so etcd keeps quorum.
    #[serde(default = "default_control_plane_count")]
    pub count: i64,
    /// Nova flavor (required on OpenStack).
    #[serde(default)]
    pub flavor: Option<String>,
    /// Boot from a volume of this size instead of the flavor's disk.
    #[serde(default)]
    pub root_volume: Option<RootVolume>,
}

fn default_control_plane_count() -> i64 {
    3
}

impl Default for ControlPlane {
    fn default() -> Self {
        Self {
            count: default_control_plane_count(),
            flavor: None,
            root_volume: None,
        }
    }
}

/// A group of identical worker machines (a MachineDeployment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeGroup {
    /// Name, unique in the cluster (a DNS-1123 label).
    pub name: String,
    /// Fixed number of machines. Give either `count` or `autoscale`.
    #[serde(default)]
    pub count: Option<i64>,
    /// Let the cluster autoscaler choose the number of machines between `min` and `max`.
    #[serde(default)]
    pub autoscale: Option<Autoscale>,
    /// Nova flavor (required on OpenStack).
    #[serde(default)]
    pub flavor: Option<String>,
    /// Availability zone of every machine of the group.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Boot from a volume of this size instead of the flavor's disk.
    #[serde(default)]
    pub root_volume: Option<RootVolume>,
    /// Kubernetes labels of the group's Nodes.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints of the group's Nodes.
    #[serde(default)]
    pub taints: Vec<Taint>,
}

/// Autoscaling bounds of a node group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Autoscale {
    /// Fewest machines.
    pub min: i64,
    /// Most machines.
    pub max: i64,
}

/// A Node taint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value.
    #[serde(default)]
    pub value: Option<String>,
    /// What happens to Pods that do not tolerate it.
    pub effect: TaintEffect,
}

/// Effect of a taint, as in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaintEffect {
    /// Do not schedule new Pods.
    NoSchedule,
    /// Avoid scheduling new Pods.
    PreferNoSchedule,
    /// Evict running Pods too.
    NoExecute,
}

/// Networking of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Network {
    /// CIDR of the cluster's own node subnet (created by CAPO).
    #[serde(default = "default_node_cidr")]
    pub node_cidr: String,
    /// Pod CIDR.
    #[serde(default = "default_pod_cidr")]
    pub pod_cidr: String,
    /// Service CIDR.
    #[serde(default = "default_service_cidr")]
    pub service_cidr: String,
    /// Container network plugin.
    #[serde(default)]
    pub cni: Cni,
    /// MTU of the node network; the cloud's default when omitted.
    #[serde(default)]
    pub mtu: Option<i64>,
    /// Put the API server behind an Octavia load balancer (else a floating IP on the first node).
    #[serde(default = "default_true")]
    pub api_server_load_balancer: bool,
    /// Only these CIDRs may reach the API server (load balancer allowed CIDRs); everyone when empty.
    #[serde(default)]
    pub api_server_allowed_cidrs: Vec<String>,
}

fn default_node_cidr() -> String {
    "10.8.0.0/20".to_string()
}
fn default_pod_cidr() -> String {
    "172.16.0.0/13".to_string()
}
fn default_service_cidr() -> String {
    "172.24.0.0/13".to_string()
}
fn default_true() -> bool {
    true
}

impl Default for Network {
    fn default() -> Self {
        Self {
            node_cidr: default_node_cidr(),
            pod_cidr: default_pod_cidr(),
            service_cidr: default_service_cidr(),
            cni: Cni::default(),
            mtu: None,
            api_server_load_balancer: true,
            api_server_allowed_cidrs: Vec::new(),
        }
    }
}

/// Container network plugin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cni {
    /// Cilium (VXLAN by default).
    #[default]
    Cilium,
    /// Calico (VXLAN or BGP).
    Calico,
}

/// Anti-affinity of machines, through Nova server groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AntiAffinity {
    /// Create server groups and place machines in them.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Policy for the control plane.
    #[serde(default = "default_hard")]
    pub control_plane: AffinityPolicy,
    /// Policy for worker groups (one server group per group).
    #[serde(default = "default_soft")]
    pub workers: AffinityPolicy,
}

fn default_hard() -> AffinityPolicy {
    AffinityPolicy::Hard
}
fn default_soft() -> AffinityPolicy {
    AffinityPolicy::Soft
}

impl Default for AntiAffinity {
    fn default() -> Self {
        Self {
            enabled: true,
            control_plane: AffinityPolicy::Hard,
            workers: AffinityPolicy::Soft,
        }
    }
}

/// Strength of an anti-affinity rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AffinityPolicy {
    /// Never two machines on one hypervisor (scheduling fails instead).
    Hard,
    /// Spread when possible.
    Soft,
}

impl AffinityPolicy {
    /// The Nova server-group policy name.
    pub fn nova_policy(self) -> &'static str {
        match self {
            AffinityPolicy::Hard => "anti-affinity",
            AffinityPolicy::Soft => "soft-anti-affinity",
        }
    }
}

/// One addon: on or off, with a version and Helm values. Writing an addon's block turns it on unless
/// the block says `enabled: false`; leaving the block out keeps the addon's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Addon {
    /// Install it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Chart version; the pinned default when omitted.
    #[serde(default)]
    pub version: Option<String>,
    /// Helm values merged over ours.
    #[serde(default)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

impl Addon {
    fn on() -> Self {
        Self {
            enabled: true,
            version: None,
            values: serde_json::Map::new(),
        }
    }
    fn off() -> Self {
        Self {
            enabled: false,
            ..Self::on()
        }
    }
}

/// The addons of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Addons {
    /// OpenStack cloud controller manager (Node addresses, Service load balancers).
    #[serde(default = "Addon::on")]
    pub openstack_cloud_controller: Addon,
    /// Cinder CSI driver (PersistentVolumes).
    #[serde(default = "Addon::on")]
    pub cinder_csi: Addon,
    /// metrics-server (`kubectl top`, autoscaling).
    #[serde(default = "Addon::on")]
    pub metrics_server: Addon,
    /// ingress-nginx.
    #[serde(default = "Addon::off")]
    pub ingress_nginx: Addon,
    /// cert-manager.
    #[serde(default = "Addon::off")]
    pub cert_manager: Addon,
    /// Flux in the workload cluster.
    #[serde(default = "Addon::off")]
    pub flux: Addon,
}

impl Default for Addons {
    fn default() -> Self {
        Self {
            openstack_cloud_controller: Addon::on(),
            cinder_csi: Addon::on(),
            metrics_server: Addon::on(),
            ingress_nginx: Addon::off(),
            cert_manager: Addon::off(),
            flux: Addon::off(),
        }
    }
}

impl Addons {
    /// Every addon with its key in the definition, in install order.
    pub fn iter(&self) -> [(&'static str, &Addon); 6] {
        [
            ("openstackCloudController", &self.openstack_cloud_controller),
            ("cinderCsi", &self.cinder_csi),
            ("metricsServer", &self.metrics_server),
            ("ingressNginx", &self.ingress_nginx),
            ("certManager", &self.cert_manager),
            ("flux", &self.flux),
        ]
    }
}

/// An owner of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Owner {
    /// Who (unique in the cluster).
    pub name: String,
    /// An age recipient (`age1…`) or an SSH public key (`ssh-ed25519 …`, `ssh-rsa …`).
    pub public_key: String,
}
