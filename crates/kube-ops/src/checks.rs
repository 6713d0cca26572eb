//! Pre-checks of a move, on the discovered graph: providers, paused objects, provisioning.
//! Each failure names the object and why; all failures of a check are reported together.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::graph::{CAPI_GROUP, Graph, PAUSED_ANNOTATION, Provider, annotations};
use crate::journal::pause_key;

/// Every source provider must exist on the target (same name and type) at a version ≥ the source's.
pub fn check_providers(source: &[Provider], target: &[Provider]) -> Result<()> {
    let mut problems = Vec::new();
    for s in source {
        let best = target
            .iter()
            .filter(|t| t.provider_name == s.provider_name && t.provider_type == s.provider_type)
            .filter_map(|t| semver::Version::parse(t.version.trim_start_matches('v')).ok())
            .max();
        let want = semver::Version::parse(s.version.trim_start_matches('v')).ok();
        match (best, want) {
            (None, _) => problems.push(format!(
                "provider {} ({}) {} is not installed on the target",
                s.provider_name, s.provider_type, s.version
            )),
            (Some(b), Some(w)) if b < w => problems.push(format!(
                "provider {} ({}) is v{b} on the target, older than v{w} on the source",
                s.provider_name, s.provider_type
            )),
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(problems.join("; ")))
    }
}

/// Whether a Cluster or ClusterClass is paused (spec.paused or the paused annotation).
pub fn is_paused(obj: &Value) -> bool {
    obj.pointer("/spec/paused").and_then(Value::as_bool) == Some(true)
        || annotations(obj).is_some_and(|a| a.contains_key(PAUSED_ANNOTATION))
}

/// Refuses when a Cluster or ClusterClass is paused, unless it is in `ours` (paused by the
/// interrupted move recorded in the journal).
pub fn check_not_paused(graph: &Graph, ours: &BTreeSet<String>) -> Result<()> {
    let mut paused: Vec<String> = Vec::new();
    for kind in ["Cluster", "ClusterClass"] {
        for n in graph.nodes_of(CAPI_GROUP, kind) {
            let Some(o) = &n.object else { continue };
            if kind == "Cluster" && !is_paused(o) {
                continue;
            }
            if kind == "ClusterClass"
                && !annotations(o).is_some_and(|a| a.contains_key(PAUSED_ANNOTATION))
            {
                continue;
            }
            if ours.contains(&pause_key(&n.id)) {
                continue;
            }
            paused.push(format!("{kind} {}/{}", n.id.namespace, n.id.name));
        }
    }
    paused.sort();
    if paused.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "cannot start while these are paused (not by an interrupted move of ours; unpause them or finish the other operation): {}",
            paused.join(", ")
        )))
    }
}

/// Refuses when a Cluster is not provisioned or a Machine has no nodeRef (upstream
/// `checkProvisioningCompleted`).
pub fn check_provisioned(graph: &Graph) -> Result<()> {
    let mut problems = Vec::new();
    for n in graph.nodes_of(CAPI_GROUP, "Cluster") {
        let Some(o) = &n.object else { continue };
        let id = format!("Cluster {}/{}", n.id.namespace, n.id.name);
        if o.pointer("/status/initialization/infrastructureProvisioned")
            .and_then(Value::as_bool)
            != Some(true)
        {
            problems.push(format!("{id}: infrastructure is not provisioned yet"));
            continue;
        }
        let cp_initialized = o
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c.get("type").and_then(Value::as_str) == Some("ControlPlaneInitialized")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            });
        if !cp_initialized {
            problems.push(format!(
                "{id}: condition ControlPlaneInitialized is not True"
            ));
            continue;
        }
        if o.pointer("/spec/controlPlaneRef").is_some()
            && o.pointer("/status/initialization/controlPlaneInitialized")
                .and_then(Value::as_bool)
                != Some(true)
        {
            problems.push(format!("{id}: control plane is not initialized yet"));
        }
    }
    for n in graph.nodes_of(CAPI_GROUP, "Machine") {
        let Some(o) = &n.object else { continue };
        if o.pointer("/status/nodeRef").is_none() {
            problems.push(format!(
                "Machine {}/{}: no nodeRef yet",
                n.id.namespace, n.id.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(format!(
            "provisioning is not complete; wait and retry:\n  {}",
            problems.join("\n  ")
        )))
    }
}
