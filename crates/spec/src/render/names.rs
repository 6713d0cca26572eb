//! Object names and the content hash that names machine templates.
//!
//! Machine templates are immutable in practice: Cluster API rolls machines only when the KCP or
//! MachineDeployment points at a *different* template. Naming a template after a hash of its spec
//! makes "change the flavor" produce a new template name, hence a rollout, and "change nothing"
//! produce the same name, hence no churn.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The label every rendered object carries, so Cluster API and clusterctl move find them.
pub const CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";

/// Longest label value; names that Cluster API copies into labels must fit.
pub const MAX_LABEL_VALUE: usize = 63;

/// Name of the KubeadmControlPlane, the control-plane MachineHealthCheck and server group.
pub fn control_plane(cluster: &str) -> String {
    format!("{cluster}-control-plane")
}

/// Name of a worker group's MachineDeployment and server group.
pub fn worker_group(cluster: &str, group: &str) -> String {
    format!("{cluster}-{group}")
}

/// Name of the workers' MachineHealthCheck.
pub fn workers_health_check(cluster: &str) -> String {
    format!("{cluster}-workers")
}

/// Name of the security group the cloud step creates for CNI traffic between nodes (unique per
/// namespace and cluster, as CAPO's own group names are).
pub fn cni_security_group(namespace: &str, cluster: &str) -> String {
    format!("k8s-{namespace}-{cluster}-cni")
}

/// Tag that marks every cloud resource of a cluster: ours directly, CAPO's through
/// `OpenStackCluster.spec.tags`. The cleanup sweep finds a cluster's resources by it.
pub fn cluster_tag(cluster: &str) -> String {
    format!("manage-cluster={cluster}")
}

/// Tag on every cloud resource `manage` (or CAPO on its behalf) creates.
pub const MANAGED_TAG: &str = "managed-by=manage";

/// Name of the Secret holding `clouds.yaml` for CAPO.
pub fn cloud_config_secret(cluster: &str) -> String {
    format!("{cluster}-cloud-config")
}

/// `<base>-<hash>` where hash is the first 8 hex digits of the SHA-256 of the canonical JSON of
/// `spec` (object keys sorted at every level, so field order never changes the name).
pub fn hashed(base: &str, spec: &Value) -> String {
    format!("{base}-{}", spec_hash(spec))
}

/// The 8-hex-digit content hash of a spec (see [`hashed`]).
pub fn spec_hash(spec: &Value) -> String {
    let canonical = canonical(spec).to_string();
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// A copy of `value` with every object's keys in sorted order; serde_json keeps insertion order
/// (preserve_order), so this is what makes the serialisation canonical.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                if let Some(v) = map.get(k) {
                    out.insert(k.clone(), canonical(v));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_ignores_key_order_but_not_values() {
        let a = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
        let b = json!({"b": {"d": "x", "c": [1, 2]}, "a": 1});
        let c = json!({"a": 1, "b": {"c": [2, 1], "d": "x"}});
        assert_eq!(spec_hash(&a), spec_hash(&b));
        assert_ne!(spec_hash(&a), spec_hash(&c));
        assert_eq!(spec_hash(&a).len(), 8);
        assert!(hashed("x-md", &a).starts_with("x-md-"));
    }
}
