//! Docker "dev" provider objects (DevCluster, DevMachineTemplate, `v1beta2`), for clusters of
//! containers on a laptop or CI machine. The OpenStack-only parts of the definition (cloud,
//! image, flavors, volumes, server groups) do not apply; availability zones become the
//! DevCluster's failure domains so spreading still works.

use super::{INFRA_GROUP, Infra, RenderError, RenderOptions, Role};
use crate::model::ClusterDefinition;
use serde_json::{Map, Value, json};

/// The Docker side of a cluster.
pub(super) struct Docker<'a> {
    def: &'a ClusterDefinition,
    node_image: Option<&'a str>,
}

impl<'a> Docker<'a> {
    pub(super) fn new(def: &'a ClusterDefinition, opts: &'a RenderOptions) -> Self {
        Docker {
            def,
            node_image: opts.docker_node_image.as_deref(),
        }
    }
}

impl Infra for Docker<'_> {
    fn api_version(&self) -> String {
        format!("{INFRA_GROUP}/v1beta2")
    }

    fn cluster_kind(&self) -> &'static str {
        "DevCluster"
    }

    fn machine_template_kind(&self) -> &'static str {
        "DevMachineTemplate"
    }

    fn cluster_spec(&self) -> Result<Value, RenderError> {
        let mut docker = Map::new();
        let zones = &self.def.cloud.availability_zones;
        if !zones.is_empty() {
            let domains: Vec<Value> = zones
                .iter()
                .map(|z| json!({ "name": z, "controlPlane": true }))
                .collect();
            docker.insert("failureDomains".into(), Value::Array(domains));
        }
        Ok(json!({ "backend": { "docker": docker } }))
    }

    fn machine_template_spec(&self, _role: Role<'_>) -> Result<Value, RenderError> {
        let mut docker = Map::new();
        if let Some(image) = self.node_image {
            docker.insert("customImage".into(), image.into());
        }
        Ok(json!({ "template": { "spec": { "backend": { "docker": docker } } } }))
    }

    fn kubelet_args(&self) -> Vec<(String, String)> {
        // Containers share the host's disk: kubelet's default eviction thresholds would evict
        // everything on a laptop with a fuller disk than a VM's, so they are turned off.
        vec![(
            "eviction-hard".into(),
            "nodefs.available<0%,nodefs.inodesFree<0%,imagefs.available<0%".into(),
        )]
    }

    fn node_name(&self) -> Option<&'static str> {
        None
    }

    fn cluster_configuration(&self) -> Map<String, Value> {
        // The API server is reached through the provider's load balancer container and from
        // the host: its certificate must name those addresses.
        let mut c = Map::new();
        c.insert(
            "apiServer".into(),
            json!({ "certSANs": ["localhost", "127.0.0.1", "0.0.0.0", "host.docker.internal"] }),
        );
        c
    }
}
