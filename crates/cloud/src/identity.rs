//! How a cluster's resources are recognised in the cloud: our tag, our names, and the exact
//! naming conventions of CAPO, the OpenStack cloud controller (OCCM) and Cinder CSI.
//!
//! Nothing here matches loosely: a resource belongs to a cluster when it carries the cluster's
//! tag, or when its name is exactly one of the names those components give it (anchored at both
//! ends, with the separators they use), or, for volumes, when CSI's metadata names the cluster.

/// Tag on everything we create, whatever the cluster.
pub const MANAGED_TAG: &str = spec::render::names::MANAGED_TAG;

/// Volume metadata key Cinder CSI sets to its `--cluster` name.
pub const CSI_CLUSTER_METADATA: &str = "cinder.csi.openstack.org/cluster";

/// A cluster as the cloud sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    /// Cluster name (a DNS label; also OCCM's and CSI's `cluster-name`).
    pub name: String,
    /// Namespace of the Cluster API objects (part of CAPO's names).
    pub namespace: String,
}

impl ClusterIdentity {
    /// The identity of a definition.
    pub fn of(def: &spec::model::ClusterDefinition) -> Self {
        Self::new(&def.name, def.capi_namespace())
    }

    /// From a name and namespace.
    pub fn new(name: &str, namespace: &str) -> Self {
        Self {
            name: name.to_string(),
            namespace: namespace.to_string(),
        }
    }

    /// The tag that marks the cluster's resources (`manage-cluster=<name>`). The rendered
    /// OpenStackCluster carries it in `spec.tags`, so CAPO's resources get it too.
    pub fn tag(&self) -> String {
        spec::render::names::cluster_tag(&self.name)
    }

    /// Our security group for CNI traffic between the cluster's nodes.
    pub fn cni_security_group(&self) -> String {
        spec::render::names::cni_security_group(&self.namespace, &self.name)
    }

    /// Description of resources that have one (security groups, server groups have none).
    pub fn description(&self, what: &str) -> String {
        format!("manage: {what} of cluster {}/{}", self.namespace, self.name)
    }

    /// CAPO's base name: `<namespace>-<cluster>`.
    pub fn capo_base(&self) -> String {
        format!("{}-{}", self.namespace, self.name)
    }

    /// CAPO's network, subnet and router name.
    pub fn capo_network(&self) -> String {
        format!("k8s-clusterapi-cluster-{}", self.capo_base())
    }

    /// CAPO's API server load balancer name.
    pub fn capo_api_lb(&self) -> String {
        format!("k8s-clusterapi-cluster-{}-kubeapi", self.capo_base())
    }

    /// CAPO's managed security groups.
    pub fn capo_security_groups(&self) -> Vec<String> {
        ["controlplane", "worker", "bastion"]
            .iter()
            .map(|r| format!("k8s-cluster-{}-secgroup-{r}", self.capo_base()))
            .collect()
    }

    /// The description CAPO writes on what it creates.
    pub fn capo_description(&self) -> String {
        format!(
            "Created by cluster-api-provider-openstack cluster {}",
            self.capo_base()
        )
    }

    /// Whether `name` is a load balancer OCCM made for a Service of this cluster:
    /// `kube_service_<cluster>_<namespace>_<service>`. Cluster names are DNS labels (no `_`), so
    /// the prefix cannot match another cluster whose name merely starts the same.
    pub fn is_occm_lb(&self, name: &str) -> bool {
        name.strip_prefix("kube_service_")
            .and_then(|rest| rest.strip_prefix(self.name.as_str()))
            .is_some_and(|rest| rest.starts_with('_') && rest.len() > 1)
    }

    /// Whether `description` is one OCCM writes on a floating IP of this cluster's Services:
    /// `Floating IP for Kubernetes external service <ns>/<svc> from cluster <cluster>`.
    pub fn is_occm_fip_description(&self, description: &str) -> bool {
        description.starts_with("Floating IP for Kubernetes external service ")
            && description
                .rsplit_once(" from cluster ")
                .is_some_and(|(_, c)| c == self.name)
    }

    /// Whether `description` is one OCCM writes on a Service's security group:
    /// `Security Group for <ns>/<svc> Service LoadBalancer in cluster <cluster>`.
    pub fn is_occm_sg_description(&self, description: &str) -> bool {
        description.starts_with("Security Group for ")
            && description
                .rsplit_once(" Service LoadBalancer in cluster ")
                .is_some_and(|(_, c)| c == self.name)
    }

    /// Whether a resource's tags include this cluster's tag.
    pub fn tagged(&self, resource: &serde_json::Value) -> bool {
        let tag = self.tag();
        resource["tags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occm_names_match_exactly_one_cluster() {
        let a = ClusterIdentity::new("prod", "fleet");
        assert!(a.is_occm_lb("kube_service_prod_default_web"));
        assert!(!a.is_occm_lb("kube_service_prod-eu_default_web"));
        assert!(!a.is_occm_lb("kube_service_pro_default_web"));
        assert!(!a.is_occm_lb("kube_service_prod_"));
        assert!(!a.is_occm_lb("x_kube_service_prod_default_web"));
        assert!(a.is_occm_fip_description(
            "Floating IP for Kubernetes external service default/web from cluster prod"
        ));
        assert!(!a.is_occm_fip_description(
            "Floating IP for Kubernetes external service default/web from cluster prod-eu"
        ));
        assert!(a.is_occm_sg_description(
            "Security Group for default/web Service LoadBalancer in cluster prod"
        ));
        assert!(!a.is_occm_sg_description(
            "Security Group for default/web Service LoadBalancer in cluster prodx"
        ));
    }

    #[test]
    fn capo_names() {
        let a = ClusterIdentity::new("prod", "fleet");
        assert_eq!(a.capo_network(), "k8s-clusterapi-cluster-fleet-prod");
        assert_eq!(a.capo_api_lb(), "k8s-clusterapi-cluster-fleet-prod-kubeapi");
        assert_eq!(
            a.capo_security_groups()[0],
            "k8s-cluster-fleet-prod-secgroup-controlplane"
        );
    }
}
