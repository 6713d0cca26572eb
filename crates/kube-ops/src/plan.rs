//! The move plan: which objects move, in which layers (owners strictly before what they own),
//! what to pause and which Flux objects to suspend. Built from a [`Graph`], serialisable into the
//! journal, and all the executor needs besides the two clusters.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::{ADDONS_GROUP, CAPI_GROUP, Graph, ObjectId, TypeInfo};

/// Flux labels on objects applied by a Kustomization.
const KUSTOMIZE_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
const KUSTOMIZE_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
/// Flux labels on objects installed by a HelmRelease.
const HELM_NAME: &str = "helm.toolkit.fluxcd.io/name";
const HELM_NAMESPACE: &str = "helm.toolkit.fluxcd.io/namespace";

/// An owner of a planned object: another planned object (always in an earlier layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOwner {
    /// Index into [`Plan::nodes`].
    pub node: usize,
    /// `controller`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// `blockOwnerDeletion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// One object to move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanNode {
    /// Identity on the source (uid = source UID).
    pub id: ObjectId,
    /// Index into [`Plan::types`].
    pub type_index: usize,
    /// ownerReferences to rebuild on the target.
    pub owners: Vec<PlanOwner>,
    /// Cluster-scoped: created only if absent, never deleted.
    pub global: bool,
    /// Owned by a cluster-scoped root: same treatment.
    pub global_hierarchy: bool,
    /// Stays on the source (a ClusterClass still used there, and what it owns).
    pub should_not_delete: bool,
    /// The object as read from the source after pausing.
    pub object: Value,
}

impl PlanNode {
    /// Whether the source copy is deleted after the move.
    pub fn deleted_on_source(&self) -> bool {
        !(self.global || self.global_hierarchy || self.should_not_delete)
    }
}

/// A Flux object that applies some of the moved objects (suspended on the source).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FluxRef {
    /// `Kustomization` or `HelmRelease`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// The whole move, layer by layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The namespace moved (`None`: all namespaces).
    pub namespace: Option<String>,
    /// The types of the planned objects.
    pub types: Vec<TypeInfo>,
    /// The objects, in layer order.
    pub nodes: Vec<PlanNode>,
    /// Layers of indices into `nodes`: create in order, delete in reverse.
    pub layers: Vec<Vec<usize>>,
    /// Namespaces the target must have.
    pub namespaces: Vec<String>,
    /// Flux objects to suspend on the source before anything is created.
    pub flux: Vec<FluxRef>,
}

/// Layers of the move set (upstream `getMoveSequence`): a node is placed once all its owners and
/// soft owners are placed; nodes with an owner that is never placed are neither created nor
/// deleted (upstream behaviour, logged here).
pub fn layers(graph: &Graph) -> Vec<Vec<String>> {
    let set = graph.move_set();
    let mut deps: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for uid in &set {
        let n = &graph.nodes[uid];
        let d: BTreeSet<&str> = n
            .owners
            .iter()
            .map(|o| o.uid.as_str())
            .chain(n.soft_owners.iter().map(String::as_str))
            .collect();
        for o in &d {
            dependents.entry(o).or_default().push(uid.as_str());
        }
        deps.insert(uid.as_str(), d);
    }
    let mut remaining: HashMap<&str, usize> = deps.iter().map(|(k, d)| (*k, d.len())).collect();
    let mut current: Vec<&str> = remaining
        .iter()
        .filter(|(_, c)| **c == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut out = Vec::new();
    let mut placed = BTreeSet::new();
    while !current.is_empty() {
        let mut sorted: Vec<&str> = current.clone();
        sorted.sort_by_key(|u| {
            let id = &graph.nodes[*u].id;
            (id.kind.clone(), id.namespace.clone(), id.name.clone())
        });
        let mut next = Vec::new();
        for u in &sorted {
            placed.insert(*u);
            for d in dependents.get(u).into_iter().flatten() {
                if let Some(c) = remaining.get_mut(d) {
                    *c -= 1;
                    if *c == 0 {
                        next.push(*d);
                    }
                }
            }
        }
        out.push(sorted.iter().map(|s| (*s).to_owned()).collect());
        current = next;
    }
    for uid in &set {
        if !placed.contains(uid.as_str()) {
            tracing::warn!(object = %graph.nodes[uid].id, "an owner is not moved; this object is neither created nor deleted (as clusterctl)");
        }
    }
    out
}

/// Builds the plan from a discovered graph.
pub fn build(graph: &Graph) -> Plan {
    let layers_uid = layers(graph);
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut nodes = Vec::new();
    let mut layers = Vec::new();
    let mut namespaces = BTreeSet::new();
    let mut flux = BTreeSet::new();
    for layer in &layers_uid {
        let mut l = Vec::new();
        for uid in layer {
            let n = &graph.nodes[uid];
            let (Some(type_index), Some(object)) = (n.type_index, n.object.clone()) else {
                continue;
            };
            let owners = n
                .owners
                .iter()
                .filter_map(|o| {
                    index.get(&o.uid).map(|i| PlanOwner {
                        node: *i,
                        controller: o.controller,
                        block_owner_deletion: o.block_owner_deletion,
                    })
                })
                .collect();
            if !n.is_global && !n.id.namespace.is_empty() {
                namespaces.insert(n.id.namespace.clone());
            }
            if let Some(l) = crate::graph::labels(&object) {
                let get = |k: &str| l.get(k).and_then(Value::as_str).map(str::to_owned);
                if let (Some(name), Some(ns)) = (get(KUSTOMIZE_NAME), get(KUSTOMIZE_NAMESPACE)) {
                    flux.insert(FluxRef {
                        kind: "Kustomization".into(),
                        namespace: ns,
                        name,
                    });
                }
                if let (Some(name), Some(ns)) = (get(HELM_NAME), get(HELM_NAMESPACE)) {
                    flux.insert(FluxRef {
                        kind: "HelmRelease".into(),
                        namespace: ns,
                        name,
                    });
                }
            }
            index.insert(uid.clone(), nodes.len());
            l.push(nodes.len());
            nodes.push(PlanNode {
                id: n.id.clone(),
                type_index,
                owners,
                global: n.is_global,
                global_hierarchy: n.is_global_hierarchy,
                should_not_delete: n.should_not_delete,
                object,
            });
        }
        if !l.is_empty() {
            layers.push(l);
        }
    }
    Plan {
        namespace: graph.namespace.clone(),
        types: graph.types.clone(),
        nodes,
        layers,
        namespaces: namespaces.into_iter().collect(),
        flux: flux.into_iter().collect(),
    }
}

impl Plan {
    /// The type of a planned node.
    pub fn type_of(&self, node: &PlanNode) -> &TypeInfo {
        &self.types[node.type_index]
    }

    /// Indices of planned Clusters.
    pub fn clusters(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|i| self.type_of(&self.nodes[*i]).is(CAPI_GROUP, "Cluster"))
    }

    /// Indices of planned ClusterClasses.
    pub fn cluster_classes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len())
            .filter(|i| self.type_of(&self.nodes[*i]).is(CAPI_GROUP, "ClusterClass"))
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing moves.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A human summary: layer sizes, then every object by layer.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let sizes: Vec<String> = self.layers.iter().map(|l| l.len().to_string()).collect();
        let _ = writeln!(
            s,
            "{} object(s) in {} layer(s) [{}], namespace {}",
            self.nodes.len(),
            self.layers.len(),
            sizes.join(", "),
            self.namespace.as_deref().unwrap_or("(all)")
        );
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &self.nodes {
            *kinds.entry(n.id.kind.as_str()).or_default() += 1;
        }
        let k: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(s, "kinds: {}", k.join(", "));
        if !self.flux.is_empty() {
            let f: Vec<String> = self
                .flux
                .iter()
                .map(|f| format!("{} {}/{}", f.kind, f.namespace, f.name))
                .collect();
            let _ = writeln!(s, "Flux objects to suspend on the source: {}", f.join(", "));
        }
        for (li, l) in self.layers.iter().enumerate() {
            let _ = writeln!(s, "layer {} ({} objects):", li + 1, l.len());
            for i in l {
                let n = &self.nodes[*i];
                let mut flags = Vec::new();
                if n.global || n.global_hierarchy {
                    flags.push("global: create if absent, keep on source");
                }
                if n.should_not_delete {
                    flags.push("kept on source");
                }
                let f = if flags.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", flags.join(", "))
                };
                let _ = writeln!(s, "  {}{f}", n.id);
            }
        }
        s
    }

    /// Whether a node is a ClusterResourceSet (used by tests and reports).
    pub fn is_crs(&self, i: usize) -> bool {
        self.type_of(&self.nodes[i])
            .is(ADDONS_GROUP, "ClusterResourceSet")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(group: &str, kind: &str, hierarchy: bool) -> TypeInfo {
        TypeInfo {
            group: group.into(),
            version: if group.is_empty() {
                "v1".into()
            } else {
                "v1beta2".into()
            },
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
            namespaced: true,
            force_move: hierarchy,
            force_move_hierarchy: hierarchy,
        }
    }

    fn obj(name: &str, uid: &str, owners: &[(&str, &str, &str)]) -> Value {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(k, n, u)| json!({"apiVersion": "x/v1", "kind": k, "name": n, "uid": u, "controller": true}))
            .collect();
        json!({"metadata": {"name": name, "namespace": "ns", "uid": uid, "ownerReferences": refs}})
    }

    #[test]
    fn layers_follow_owners_and_soft_owners_and_skip_unplaced_owners() {
        let types = vec![
            t(CAPI_GROUP, "Cluster", true),
            t(CAPI_GROUP, "Machine", false),
            t("", "Secret", false),
            t("", "ConfigMap", false),
        ];
        let mut g = Graph::new(types, Some("ns".into()));
        g.add_object(0, obj("c1", "uc", &[])).expect("cluster");
        g.add_object(1, obj("m1", "um", &[("Cluster", "c1", "uc")]))
            .expect("machine");
        // soft-owned by name, no ownerReference
        g.add_object(2, obj("c1-kubeconfig", "us", &[]))
            .expect("secret");
        // quirk: apiserver-etcd-client never matches the last-dash split
        g.add_object(2, obj("c1-apiserver-etcd-client", "ue", &[]))
            .expect("secret");
        // owned by the Machine
        g.add_object(2, obj("m1-bootstrap", "ub", &[("Machine", "m1", "um")]))
            .expect("secret");
        // owned by something never discovered: neither created nor deleted
        g.add_object(3, {
            let mut o = obj("orphan", "uo", &[("Deployment", "d", "ud")]);
            o["metadata"]["labels"] = json!({crate::graph::MOVE_LABEL: ""});
            o
        })
        .expect("configmap");
        g.set_soft_ownership();
        g.set_tenants();
        let plan = build(&g);
        let names: Vec<Vec<&str>> = plan
            .layers
            .iter()
            .map(|l| l.iter().map(|i| plan.nodes[*i].id.name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["c1"],
                vec!["m1", "c1-kubeconfig"],
                vec!["m1-bootstrap"]
            ]
        );
        let m1 = plan.nodes.iter().find(|n| n.id.name == "m1").expect("m1");
        assert_eq!(plan.nodes[m1.owners[0].node].id.name, "c1");
        assert!(
            plan.nodes
                .iter()
                .all(|n| n.id.name != "c1-apiserver-etcd-client")
        );
        assert!(plan.nodes.iter().all(|n| n.id.name != "orphan"));
    }

    #[test]
    fn flux_owners_of_moved_objects_are_collected() {
        let mut g = Graph::new(vec![t(CAPI_GROUP, "Cluster", true)], None);
        let mut c = obj("c1", "uc", &[]);
        c["metadata"]["labels"] =
            json!({KUSTOMIZE_NAME: "fleet", KUSTOMIZE_NAMESPACE: "flux-system"});
        g.add_object(0, c).expect("cluster");
        g.set_tenants();
        let plan = build(&g);
        assert_eq!(
            plan.flux,
            vec![FluxRef {
                kind: "Kustomization".into(),
                namespace: "flux-system".into(),
                name: "fleet".into()
            }]
        );
    }
}
