//! CAPO objects: OpenStackCluster and OpenStackMachineTemplate, in `v1beta2` (CAPO's storage
//! version) or `v1beta1` (CAPO v0.14.x). The two versions differ in field names only where noted.

use super::names;
use super::{
    CapoApiVersion, INFRA_GROUP, Infra, RenderError, RenderOptions, Role, distinct, int32, text,
};
use crate::model::{ClusterDefinition, RootVolume};
use serde_json::{Map, Value, json};

const PROVIDER: &str = "openstack";

/// The OpenStack side of a cluster.
pub(super) struct OpenStack<'a> {
    def: &'a ClusterDefinition,
    version: CapoApiVersion,
    image: &'a str,
}

impl<'a> OpenStack<'a> {
    pub(super) fn new(
        def: &'a ClusterDefinition,
        opts: &RenderOptions,
    ) -> Result<Self, RenderError> {
        // The image is selected by name; a `url` alone is registered under `name` first, so the
        // name is what machines boot from either way.
        let image = def
            .image
            .name
            .as_deref()
            .ok_or_else(|| missing("image.name"))?;
        text("image.name", image, 255)?;
        text("cloud.name", &def.cloud.name, 255)?;
        let optional = [
            ("cloud.region", &def.cloud.region),
            ("cloud.externalNetwork", &def.cloud.external_network),
            ("cloud.sshKeyName", &def.cloud.ssh_key_name),
        ];
        for (field, value) in optional {
            if let Some(value) = value {
                text(field, value, 255)?;
            }
        }
        for (i, server) in def.cloud.dns_servers.iter().enumerate() {
            text(&format!("cloud.dnsServers[{i}]"), server, 255)?;
        }
        for (i, cidr) in def.network.api_server_allowed_cidrs.iter().enumerate() {
            text(&format!("network.apiServerAllowedCidrs[{i}]"), cidr, 255)?;
        }
        distinct(
            "network.apiServerAllowedCidrs",
            &def.network.api_server_allowed_cidrs,
        )?;
        Ok(OpenStack {
            def,
            version: opts.capo_api_version,
            image,
        })
    }

    fn v1beta1(&self) -> bool {
        self.version == CapoApiVersion::V1beta1
    }

    /// The reference to the credentials Secret. v1beta1 requires `type`; v1beta2 defaults it.
    fn identity_ref(&self) -> Value {
        let mut identity = Map::new();
        if self.v1beta1() {
            identity.insert("type".into(), "Secret".into());
        }
        identity.insert(
            "name".into(),
            names::cloud_config_secret(&self.def.name).into(),
        );
        identity.insert("cloudName".into(), self.def.cloud.name.clone().into());
        if let Some(region) = &self.def.cloud.region {
            identity.insert("region".into(), region.clone().into());
        }
        Value::Object(identity)
    }

    /// Rules the CNI needs between nodes; CAPO's default groups only open the Kubernetes ports.
    fn root_volume(&self, field: &str, volume: &RootVolume) -> Result<Value, RenderError> {
        let mut v = Map::new();
        v.insert(
            "sizeGiB".into(),
            int32(&format!("{field}.sizeGib"), volume.size_gib, 1)?.into(),
        );
        if let Some(t) = &volume.volume_type {
            text(&format!("{field}.volumeType"), t, 255)?;
            v.insert("type".into(), t.clone().into());
        }
        Ok(Value::Object(v))
    }
}

fn missing(field: &str) -> RenderError {
    RenderError::Missing {
        field: field.to_string(),
        provider: PROVIDER,
    }
}

/// Neutron accepts a network's name or ID; CAPO wants an ID in `id` (format uuid) and a name in
/// a filter.
fn network_ref(name_or_id: &str) -> Value {
    let is_uuid = name_or_id.len() == 36
        && name_or_id.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if is_uuid {
        json!({ "id": name_or_id })
    } else {
        json!({ "filter": { "name": name_or_id } })
    }
}

impl Infra for OpenStack<'_> {
    fn api_version(&self) -> String {
        format!("{INFRA_GROUP}/{}", self.version.as_str())
    }

    fn cluster_kind(&self) -> &'static str {
        "OpenStackCluster"
    }

    fn machine_template_kind(&self) -> &'static str {
        "OpenStackMachineTemplate"
    }

    fn cluster_spec(&self) -> Result<Value, RenderError> {
        let def = self.def;
        let net = &def.network;
        let mut spec = Map::new();
        spec.insert("identityRef".into(), self.identity_ref());
        if let Some(external) = &def.cloud.external_network {
            spec.insert("externalNetwork".into(), network_ref(external));
        }
        let mut subnet = Map::new();
        subnet.insert("cidr".into(), net.node_cidr.clone().into());
        if !def.cloud.dns_servers.is_empty() {
            subnet.insert("dnsNameservers".into(), json!(def.cloud.dns_servers));
        }
        spec.insert("managedSubnets".into(), json!([subnet]));
        if let Some(mtu) = net.mtu {
            // IPv4 needs at least 68 bytes; anything lower is a typo.
            let mtu = int32("network.mtu", mtu, 68)?;
            if self.v1beta1() {
                spec.insert("networkMTU".into(), mtu.into());
            } else {
                spec.insert("managedNetwork".into(), json!({ "mtu": mtu }));
            }
        }
        if net.api_server_load_balancer {
            let mut lb = Map::new();
            lb.insert("enabled".into(), true.into());
            if !net.api_server_allowed_cidrs.is_empty() {
                lb.insert("allowedCIDRs".into(), json!(net.api_server_allowed_cidrs));
            }
            if self.v1beta1() {
                spec.insert("apiServerLoadBalancer".into(), Value::Object(lb));
            } else {
                spec.insert("apiServer".into(), json!({ "managedLoadBalancer": lb }));
            }
        } else if !net.api_server_allowed_cidrs.is_empty() {
            // Without Octavia there is nothing to enforce the allow-list on; refusing is
            // better than silently exposing the API server to everyone.
            return Err(RenderError::Conflict {
                field: "network.apiServerAllowedCidrs".into(),
                message: "needs network.apiServerLoadBalancer: true (the allow-list is enforced by the load balancer)".into(),
            });
        }
        // CNI traffic goes through our own group (the cloud step creates it, machines reference
        // it): one place for the rules, kept when CAPO's managed groups are recreated.
        let mut groups = Map::new();
        groups.insert("allowAllInClusterTraffic".into(), false.into());
        spec.insert("managedSecurityGroups".into(), Value::Object(groups));
        // CAPO copies these onto everything it creates (network, subnet, router, groups, ports,
        // servers, load balancer, floating IPs), which is how the sweep recognises them.
        spec.insert(
            "tags".into(),
            json!([names::MANAGED_TAG, names::cluster_tag(&def.name)]),
        );
        if !def.cloud.availability_zones.is_empty() {
            spec.insert(
                "controlPlaneAvailabilityZones".into(),
                json!(def.cloud.availability_zones),
            );
        }
        Ok(Value::Object(spec))
    }

    fn machine_template_spec(&self, role: Role<'_>) -> Result<Value, RenderError> {
        let def = self.def;
        let (flavor, volume, server_group, field) = match role {
            Role::ControlPlane => (
                def.control_plane.flavor.as_deref(),
                def.control_plane.root_volume.as_ref(),
                names::control_plane(&def.name),
                "controlPlane".to_string(),
            ),
            Role::Workers(index, group) => (
                group.flavor.as_deref(),
                group.root_volume.as_ref(),
                names::worker_group(&def.name, &group.name),
                format!("workers[{index}]"),
            ),
        };
        let flavor = flavor.ok_or_else(|| missing(&format!("{field}.flavor")))?;
        text(&format!("{field}.flavor"), flavor, 255)?;
        let mut machine = Map::new();
        machine.insert(
            "flavor".into(),
            if self.v1beta1() {
                flavor.into()
            } else {
                json!({ "filter": { "name": flavor } })
            },
        );
        machine.insert("image".into(), json!({ "filter": { "name": self.image } }));
        machine.insert(
            "securityGroups".into(),
            json!([{ "filter": { "name": names::cni_security_group(def.capi_namespace(), &def.name) } }]),
        );
        if let Some(key) = &def.cloud.ssh_key_name {
            machine.insert("sshKeyName".into(), key.clone().into());
        }
        if let Some(volume) = volume {
            machine.insert(
                "rootVolume".into(),
                self.root_volume(&format!("{field}.rootVolume"), volume)?,
            );
        }
        if def.anti_affinity.enabled {
            // The cloud step creates the group under this name before machines boot.
            machine.insert(
                "serverGroup".into(),
                json!({ "filter": { "name": server_group } }),
            );
        }
        Ok(json!({ "template": { "spec": machine } }))
    }

    fn kubelet_args(&self) -> Vec<(String, String)> {
        // The OpenStack cloud controller manager initialises Nodes; the provider ID must match
        // what CAPO sets on the Machine so Cluster API can pair them.
        vec![
            ("cloud-provider".into(), "external".into()),
            (
                "provider-id".into(),
                "openstack:///'{{ instance_id }}'".into(),
            ),
        ]
    }

    fn node_name(&self) -> Option<&'static str> {
        // Nova's hostname, as CAPO's templates do, so the Node name matches the server.
        Some("{{ local_hostname }}")
    }

    fn cluster_configuration(&self) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert(
            "controllerManager".into(),
            json!({ "extraArgs": [{ "name": "cloud-provider", "value": "external" }] }),
        );
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_network_by_id_or_name() {
        assert_eq!(
            network_ref("3f0e2c1a-1b2c-4d5e-8f90-0123456789ab"),
            json!({"id": "3f0e2c1a-1b2c-4d5e-8f90-0123456789ab"})
        );
        assert_eq!(network_ref("public"), json!({"filter": {"name": "public"}}));
    }
}
