//! Shared by the render and CRD tests: where the upstream CRDs are, and example definitions.
#![allow(dead_code)]

use serde_json::{Value, json};
use spec::ClusterDefinition;
use spec::crd::CrdSet;
use std::path::PathBuf;
use std::sync::OnceLock;

/// `../shared/crds` next to the workspace, or `MANAGE_CRDS_DIR`.
pub fn crds_dir() -> PathBuf {
    match std::env::var_os("MANAGE_CRDS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crds"),
    }
}

/// The upstream CRDs, loaded once per test binary.
pub fn crds() -> &'static CrdSet {
    static SET: OnceLock<CrdSet> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = crds_dir();
        CrdSet::load_dir(&dir)
            .unwrap_or_else(|e| panic!("loading CRDs from {}: {e}", dir.display()))
    })
}

/// A definition from JSON, with the model's defaults for what it leaves out.
pub fn definition(v: Value) -> ClusterDefinition {
    serde_json::from_value(v).expect("test definition deserializes")
}

/// The smallest OpenStack cluster: name, version, image, flavors.
pub fn minimal_openstack() -> ClusterDefinition {
    definition(json!({
        "name": "mini",
        "kubernetesVersion": "1.33.1",
        "image": { "name": "ubuntu-2404-kube-v1.33.1" },
        "controlPlane": { "count": 1, "flavor": "m1.medium" },
    }))
}

/// Every option set.
pub fn maximal_openstack() -> ClusterDefinition {
    definition(json!({
        "name": "maxi",
        "namespace": "team-a",
        "provider": "openstack",
        "kubernetesVersion": "v1.33.1",
        "cloud": {
            "name": "prod",
            "region": "RegionTwo",
            "externalNetwork": "3f0e2c1a-1b2c-4d5e-8f90-0123456789ab",
            "dnsServers": ["9.9.9.9", "1.1.1.1"],
            "availabilityZones": ["az1", "az2", "az3"],
            "sshKeyName": "ops",
        },
        "image": { "name": "ubuntu-2404-kube-v1.33.1", "url": "https://example.org/u.qcow2", "format": "raw",
                   "sha256": "00".repeat(32) },
        "controlPlane": { "count": 3, "flavor": "m1.large", "rootVolume": { "sizeGib": 50, "volumeType": "ssd" } },
        "workers": [
            { "name": "general", "count": 3, "flavor": "m1.xlarge", "availabilityZone": "az1",
              "rootVolume": { "sizeGib": 100 },
              "labels": { "tier": "general", "node-role.kubernetes.io/worker": "" },
              "taints": [] },
            { "name": "gpu", "autoscale": { "min": 1, "max": 5 }, "flavor": "g1.large", "availabilityZone": "az2",
              "labels": { "gpu": "true" },
              "taints": [{ "key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule" },
                         { "key": "dedicated", "effect": "NoExecute" }] },
            { "name": "batch", "count": 0, "flavor": "m1.small" },
        ],
        "network": {
            "nodeCidr": "10.10.0.0/20", "podCidr": "172.16.0.0/13", "serviceCidr": "172.24.0.0/13",
            "cni": "calico", "mtu": 1450, "apiServerLoadBalancer": true,
            "apiServerAllowedCidrs": ["192.0.2.0/24", "198.51.100.7/32"],
        },
        "antiAffinity": { "enabled": true, "controlPlane": "hard", "workers": "soft" },
        "addons": { "ingressNginx": { "version": "4.11.0" } },
        "owners": [{ "name": "alice", "publicKey": "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq" }],
    }))
}

/// A laptop cluster on the Docker provider.
pub fn docker() -> ClusterDefinition {
    definition(json!({
        "name": "laptop",
        "provider": "docker",
        "kubernetesVersion": "v1.33.1",
        "controlPlane": { "count": 1 },
        "workers": [{ "name": "md-0", "count": 2, "labels": { "tier": "dev" } }],
    }))
}

/// Validates every object and fails with all violations listed.
pub fn assert_valid(objects: &[Value], context: &str) {
    let mut problems = Vec::new();
    for obj in objects {
        for v in crds().validate(obj) {
            problems.push(v.to_string());
        }
    }
    assert!(
        problems.is_empty(),
        "{context}: {} violations:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The object of `kind` whose name starts with `prefix`.
pub fn find<'a>(objects: &'a [Value], kind: &str, prefix: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no {kind} named {prefix}*"))
}
