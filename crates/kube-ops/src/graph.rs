//! Discovery and the object graph, exactly as clusterctl's `objectgraph.go`: which types move,
//! which objects exist, who owns whom (ownerReferences and soft ownership), which roots every
//! object belongs to (tenants), and what must never be deleted. Knows nothing about moving.

use std::collections::{BTreeSet, HashMap};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::{Backoff, Cluster};
use crate::error::{Error, Result};

/// Label on CRDs (and objects) installed by clusterctl: the discovery selector.
pub const CLUSTERCTL_LABEL: &str = "clusterctl.cluster.x-k8s.io";
/// Label forcing a type or object to move.
pub const MOVE_LABEL: &str = "clusterctl.cluster.x-k8s.io/move";
/// Label forcing a type or object to move with everything it owns.
pub const MOVE_HIERARCHY_LABEL: &str = "clusterctl.cluster.x-k8s.io/move-hierarchy";
/// Annotation that holds the move back until a provider removes it.
pub const BLOCK_MOVE_ANNOTATION: &str = "clusterctl.cluster.x-k8s.io/block-move";
/// Annotation set on source objects right before they are deleted by a move.
pub const DELETE_FOR_MOVE_ANNOTATION: &str = "clusterctl.cluster.x-k8s.io/delete-for-move";
/// Annotation pausing reconciliation (ClusterClass, and any object).
pub const PAUSED_ANNOTATION: &str = "cluster.x-k8s.io/paused";
/// The core CAPI group.
pub const CAPI_GROUP: &str = "cluster.x-k8s.io";
/// The addons group (ClusterResourceSet).
pub const ADDONS_GROUP: &str = "addons.cluster.x-k8s.io";
/// clusterctl's inventory group.
pub const CLUSTERCTL_GROUP: &str = "clusterctl.cluster.x-k8s.io";

/// Secret name suffixes soft-owned by the Cluster of the prefix (`util/secret/consts.go`).
const SOFT_OWNED_SECRET_PURPOSES: &[&str] = &[
    "kubeconfig",
    "ca",
    "etcd",
    "sa",
    "proxy",
    "apiserver-etcd-client",
];

/// A type that takes part in the move: a labelled CRD at its storage version, or Secret/ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeInfo {
    /// API group (empty for core).
    pub group: String,
    /// Storage version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Resource (plural) name.
    pub plural: String,
    /// Namespaced (false: cluster-scoped, "global").
    pub namespaced: bool,
    /// Objects of this type always move (type label `/move`, or forceMoveHierarchy).
    pub force_move: bool,
    /// Objects of this type are roots (Cluster, ClusterClass, ClusterResourceSet, `/move-hierarchy`).
    pub force_move_hierarchy: bool,
}

impl TypeInfo {
    /// `group/version` or `version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// kube's dynamic resource description.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&self.group, &self.version, &self.kind),
            &self.plural,
        )
    }

    /// A dynamic `Api` in `namespace` (all namespaces or cluster scope when `None`).
    pub fn api(&self, client: kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(client, ns, &self.api_resource()),
            _ => Api::all_with(client, &self.api_resource()),
        }
    }

    fn core(kind: &str, plural: &str) -> TypeInfo {
        TypeInfo {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced: true,
            force_move: false,
            force_move_hierarchy: false,
        }
    }

    /// Whether this is `group`/`kind`.
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind
    }
}

/// The identity of an object: what an ownerReference can name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId {
    /// apiVersion (the type's storage version once discovered).
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID on the cluster it was discovered on.
    pub uid: String,
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// An ownerReference edge (owner UID and the two flags that are copied to the target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerEdge {
    /// The owner's UID.
    pub uid: String,
    /// `controller`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// `blockOwnerDeletion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// One object of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// Identity.
    pub id: ObjectId,
    /// Index into [`Graph::types`] (`None` while virtual or when the type is not discovered).
    pub type_index: Option<usize>,
    /// Owners from ownerReferences, in the object's order.
    pub owners: Vec<OwnerEdge>,
    /// Owners by convention (secret names, ClusterClass of a Cluster, Cluster of a binding).
    pub soft_owners: BTreeSet<String>,
    /// Listed (false) or only known from someone's ownerReference (true).
    pub is_virtual: bool,
    /// Moves regardless of tenants.
    pub force_move: bool,
    /// A root.
    pub force_move_hierarchy: bool,
    /// Cluster-scoped.
    pub is_global: bool,
    /// Owned (transitively) by a cluster-scoped root.
    pub is_global_hierarchy: bool,
    /// Had `block-move` at discovery.
    pub blocking_move: bool,
    /// Must stay on the source (ClusterClass still used there).
    pub should_not_delete: bool,
    /// The roots this object belongs to.
    pub tenants: BTreeSet<String>,
    /// For a Cluster with a topology: (namespace, name) of its ClusterClass.
    pub class_ref: Option<(String, String)>,
    /// For a ClusterResourceSetBinding: `spec.clusterName`.
    pub binding_cluster: Option<String>,
    /// The object as listed.
    pub object: Option<Value>,
}

impl Node {
    fn virtual_from(id: ObjectId) -> Node {
        Node {
            id,
            type_index: None,
            owners: Vec::new(),
            soft_owners: BTreeSet::new(),
            is_virtual: true,
            force_move: false,
            force_move_hierarchy: false,
            is_global: false,
            is_global_hierarchy: false,
            blocking_move: false,
            should_not_delete: false,
            tenants: BTreeSet::new(),
            class_ref: None,
            binding_cluster: None,
            object: None,
        }
    }
}

/// The object graph of one source cluster (and namespace, or all namespaces).
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// The discovered types.
    pub types: Vec<TypeInfo>,
    /// Nodes by UID.
    pub nodes: HashMap<String, Node>,
    /// The namespace moved (`None`: all).
    pub namespace: Option<String>,
}

/// An inventory `Provider` (clusterctl.cluster.x-k8s.io/v1alpha3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Namespace of the inventory object (the provider's namespace).
    pub namespace: String,
    /// `providerName`.
    pub provider_name: String,
    /// `type` (CoreProvider, InfrastructureProvider, …).
    pub provider_type: String,
    /// `version`.
    pub version: String,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// Metadata accessors on JSON objects.
pub(crate) fn labels(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v.pointer("/metadata/labels").and_then(Value::as_object)
}

pub(crate) fn annotations(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v.pointer("/metadata/annotations")
        .and_then(Value::as_object)
}

impl Graph {
    /// An empty graph over `types`.
    pub fn new(types: Vec<TypeInfo>, namespace: Option<String>) -> Graph {
        Graph {
            types,
            nodes: HashMap::new(),
            namespace,
        }
    }

    /// The type of a node, if known.
    pub fn type_of(&self, node: &Node) -> Option<&TypeInfo> {
        node.type_index.and_then(|i| self.types.get(i))
    }

    /// Index of the type with this group and kind.
    pub fn type_index(&self, group: &str, kind: &str) -> Option<usize> {
        self.types.iter().position(|t| t.is(group, kind))
    }

    /// Adds a listed object of type `type_index` (upstream `addObj`): creates or fills its node,
    /// adds owner edges (virtual owners when not seen yet) and the node flags.
    pub fn add_object(&mut self, type_index: usize, mut obj: Value) -> Result<()> {
        let t = self.types[type_index].clone();
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(t.api_version()));
            m.insert("kind".into(), Value::String(t.kind.clone()));
        }
        let uid = str_at(&obj, "/metadata/uid").unwrap_or_default().to_owned();
        let name = str_at(&obj, "/metadata/name")
            .unwrap_or_default()
            .to_owned();
        if uid.is_empty() || name.is_empty() {
            return Err(Error::Malformed {
                object: format!("{} {name}", t.kind),
                message: "no metadata.uid or metadata.name".into(),
            });
        }
        let id = ObjectId {
            api_version: t.api_version(),
            kind: t.kind.clone(),
            namespace: str_at(&obj, "/metadata/namespace")
                .unwrap_or_default()
                .to_owned(),
            name,
            uid: uid.clone(),
        };
        let mut owners = Vec::new();
        if let Some(refs) = obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
        {
            for r in refs {
                let Some(ouid) = str_at(r, "/uid") else {
                    continue;
                };
                owners.push(OwnerEdge {
                    uid: ouid.to_owned(),
                    controller: r.get("controller").and_then(Value::as_bool),
                    block_owner_deletion: r.get("blockOwnerDeletion").and_then(Value::as_bool),
                });
                if !self.nodes.contains_key(ouid) {
                    // The owner's namespace is the object's (cross-namespace ownerRefs are invalid,
                    // cluster-scoped owners keep it anyway, as upstream does).
                    let oid = ObjectId {
                        api_version: str_at(r, "/apiVersion").unwrap_or_default().to_owned(),
                        kind: str_at(r, "/kind").unwrap_or_default().to_owned(),
                        namespace: id.namespace.clone(),
                        name: str_at(r, "/name").unwrap_or_default().to_owned(),
                        uid: ouid.to_owned(),
                    };
                    self.nodes.insert(ouid.to_owned(), Node::virtual_from(oid));
                }
            }
        }
        let has = |key: &str| labels(&obj).is_some_and(|l| l.contains_key(key));
        let force_move = t.force_move || has(MOVE_LABEL);
        let force_move_hierarchy = t.force_move_hierarchy || has(MOVE_HIERARCHY_LABEL);
        let blocking_move =
            annotations(&obj).is_some_and(|a| a.contains_key(BLOCK_MOVE_ANNOTATION));
        let class_ref = if t.is(CAPI_GROUP, "Cluster") {
            obj.pointer("/spec/topology").and_then(|topo| {
                // v1beta2: spec.topology.classRef {name, namespace}; v1beta1: class/classNamespace.
                let name = str_at(topo, "/classRef/name").or_else(|| str_at(topo, "/class"))?;
                let ns = str_at(topo, "/classRef/namespace")
                    .or_else(|| str_at(topo, "/classNamespace"))
                    .filter(|s| !s.is_empty())
                    .unwrap_or(&id.namespace);
                Some((ns.to_owned(), name.to_owned()))
            })
        } else {
            None
        };
        let binding_cluster = if t.is(ADDONS_GROUP, "ClusterResourceSetBinding") {
            str_at(&obj, "/spec/clusterName").map(str::to_owned)
        } else {
            None
        };
        let node = self
            .nodes
            .entry(uid.clone())
            .or_insert_with(|| Node::virtual_from(id.clone()));
        node.id = id;
        node.type_index = Some(type_index);
        node.owners = owners;
        node.is_virtual = false;
        node.force_move = force_move;
        node.force_move_hierarchy = force_move_hierarchy;
        node.is_global = !t.namespaced;
        node.blocking_move = blocking_move;
        node.class_ref = class_ref;
        node.binding_cluster = binding_cluster;
        node.object = Some(obj);
        Ok(())
    }

    /// Soft ownership (upstream `setSoftOwnership`): cluster secrets by name, Clusters by their
    /// ClusterClass, ClusterResourceSetBindings by their Cluster.
    pub fn set_soft_ownership(&mut self) {
        let mut clusters: HashMap<(String, String), String> = HashMap::new();
        let mut classes: HashMap<(String, String), String> = HashMap::new();
        for n in self.nodes.values() {
            if n.is_virtual {
                continue;
            }
            let Some(t) = self.type_of(n) else { continue };
            if t.is(CAPI_GROUP, "Cluster") {
                clusters.insert(
                    (n.id.namespace.clone(), n.id.name.clone()),
                    n.id.uid.clone(),
                );
            } else if t.is(CAPI_GROUP, "ClusterClass") {
                classes.insert(
                    (n.id.namespace.clone(), n.id.name.clone()),
                    n.id.uid.clone(),
                );
            }
        }
        let mut soft: Vec<(String, String)> = Vec::new();
        for n in self.nodes.values() {
            if n.is_virtual {
                continue;
            }
            let Some(t) = self.type_of(n) else { continue };
            if t.group.is_empty() && t.kind == "Secret" && n.owners.is_empty() {
                // Split at the last '-': "<cluster>-<purpose>" (quirk: apiserver-etcd-client never matches).
                if let Some((cluster, purpose)) = n.id.name.rsplit_once('-')
                    && SOFT_OWNED_SECRET_PURPOSES.contains(&purpose)
                    && let Some(c) = clusters.get(&(n.id.namespace.clone(), cluster.to_owned()))
                {
                    soft.push((n.id.uid.clone(), c.clone()));
                }
            }
            if let Some(class) = &n.class_ref
                && let Some(cc) = classes.get(class)
            {
                soft.push((n.id.uid.clone(), cc.clone()));
            }
            if let Some(cluster) = &n.binding_cluster
                && let Some(c) = clusters.get(&(n.id.namespace.clone(), cluster.clone()))
            {
                soft.push((n.id.uid.clone(), c.clone()));
            }
        }
        for (child, owner) in soft {
            if let Some(n) = self.nodes.get_mut(&child) {
                n.soft_owners.insert(owner);
            }
        }
    }

    /// Children adjacency: owner UID → (child UID, soft?). Built once (upstream rescans all nodes).
    fn children(&self) -> HashMap<String, Vec<(String, bool)>> {
        let mut ch: HashMap<String, Vec<(String, bool)>> = HashMap::new();
        for n in self.nodes.values() {
            for o in &n.owners {
                ch.entry(o.uid.clone())
                    .or_default()
                    .push((n.id.uid.clone(), false));
            }
            for o in &n.soft_owners {
                ch.entry(o.clone())
                    .or_default()
                    .push((n.id.uid.clone(), true));
            }
        }
        ch
    }

    /// Tenants (upstream `setTenants`): every root marks everything it owns or soft-owns,
    /// transitively; a global root marks its hierarchy global.
    pub fn set_tenants(&mut self) {
        let children = self.children();
        let roots: Vec<(String, bool)> = self
            .nodes
            .values()
            .filter(|n| n.force_move_hierarchy)
            .map(|n| (n.id.uid.clone(), n.is_global))
            .collect();
        for (root, global) in roots {
            let mut stack = vec![root.clone()];
            while let Some(uid) = stack.pop() {
                let Some(n) = self.nodes.get_mut(&uid) else {
                    continue;
                };
                if !n.tenants.insert(root.clone()) {
                    continue;
                }
                if global {
                    n.is_global_hierarchy = true;
                }
                if let Some(ch) = children.get(&uid) {
                    stack.extend(ch.iter().map(|(c, _)| c.clone()));
                }
            }
        }
    }

    /// shouldNotDelete (only with a namespace): ClusterClasses outside the namespace, and those in
    /// it that Clusters elsewhere still use (`all_clusters`: every Cluster's (namespace, class ref)),
    /// propagated to what they own directly (not soft).
    pub fn set_should_not_delete(&mut self, all_clusters: &[(String, Option<(String, String)>)]) {
        let Some(ns) = self.namespace.clone() else {
            return;
        };
        let used_elsewhere: BTreeSet<(String, String)> = all_clusters
            .iter()
            .filter(|(cns, _)| *cns != ns)
            .filter_map(|(_, c)| c.clone())
            .collect();
        let marked: Vec<String> = self
            .nodes
            .values()
            .filter(|n| {
                self.type_of(n)
                    .is_some_and(|t| t.is(CAPI_GROUP, "ClusterClass"))
                    && (n.id.namespace != ns
                        || used_elsewhere.contains(&(n.id.namespace.clone(), n.id.name.clone())))
            })
            .map(|n| n.id.uid.clone())
            .collect();
        let children = self.children();
        let mut stack = marked;
        while let Some(uid) = stack.pop() {
            let Some(n) = self.nodes.get_mut(&uid) else {
                continue;
            };
            if n.should_not_delete {
                continue;
            }
            n.should_not_delete = true;
            if let Some(ch) = children.get(&uid) {
                stack.extend(ch.iter().filter(|(_, soft)| !soft).map(|(c, _)| c.clone()));
            }
        }
    }

    /// The move set: listed nodes with tenants or forceMove (virtual ones are only logged).
    pub fn move_set(&self) -> BTreeSet<String> {
        let mut set = BTreeSet::new();
        for n in self.nodes.values() {
            if n.tenants.is_empty() && !n.force_move {
                continue;
            }
            if n.is_virtual {
                tracing::info!(object = %n.id, "owned by a moved object but not discovered; not moved");
                continue;
            }
            set.insert(n.id.uid.clone());
        }
        set
    }

    /// Nodes of type group/kind in the move set.
    pub fn nodes_of<'a>(&'a self, group: &'a str, kind: &'a str) -> impl Iterator<Item = &'a Node> {
        self.nodes
            .values()
            .filter(move |n| !n.is_virtual && self.type_of(n).is_some_and(|t| t.is(group, kind)))
    }
}

/// Discovers the types that move (upstream `getDiscoveryTypes`): CRDs with the clusterctl label
/// at their storage version, then Secret and ConfigMap.
pub async fn discover_types(cluster: &Cluster) -> Result<Vec<TypeInfo>> {
    let lp = ListParams::default().labels(CLUSTERCTL_LABEL);
    let crds = cluster
        .call(
            "list",
            || "CustomResourceDefinitions".into(),
            Backoff::READ,
            false,
            |c| {
                let lp = lp.clone();
                async move { Api::<CustomResourceDefinition>::all(c).list(&lp).await }
            },
        )
        .await?;
    let mut types = Vec::new();
    for crd in crds.items {
        let spec = &crd.spec;
        let Some(storage) = spec.versions.iter().find(|v| v.storage) else {
            continue;
        };
        let l = crd.metadata.labels.clone().unwrap_or_default();
        let hierarchy = (spec.group == CAPI_GROUP
            && (spec.names.kind == "Cluster" || spec.names.kind == "ClusterClass"))
            || (spec.group == ADDONS_GROUP && spec.names.kind == "ClusterResourceSet")
            || l.contains_key(MOVE_HIERARCHY_LABEL);
        types.push(TypeInfo {
            group: spec.group.clone(),
            version: storage.name.clone(),
            kind: spec.names.kind.clone(),
            plural: spec.names.plural.clone(),
            namespaced: spec.scope == "Namespaced",
            force_move: hierarchy || l.contains_key(MOVE_LABEL),
            force_move_hierarchy: hierarchy,
        });
    }
    types.sort_by(|a, b| (&a.group, &a.kind).cmp(&(&b.group, &b.kind)));
    types.push(TypeInfo::core("Secret", "secrets"));
    types.push(TypeInfo::core("ConfigMap", "configmaps"));
    Ok(types)
}

/// Lists every object of `t` in `namespace` (all when `None`), page by page; 404 is empty.
pub async fn list_all(
    cluster: &Cluster,
    t: &TypeInfo,
    namespace: Option<&str>,
) -> Result<Vec<Value>> {
    let api = t.api(cluster.client().clone(), namespace);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(500);
        if let Some(c) = &token {
            lp = lp.continue_token(c);
        }
        let what = || format!("{} in {}", t.kind, namespace.unwrap_or("all namespaces"));
        let page = cluster
            .call("list", what, Backoff::READ, false, |_| {
                let api = api.clone();
                let lp = lp.clone();
                async move { api.list(&lp).await }
            })
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) if e.status() == Some(404) => return Ok(out),
            Err(e) => return Err(e),
        };
        for item in page.items {
            out.push(serde_json::to_value(item).map_err(|e| Error::Malformed {
                object: t.kind.clone(),
                message: e.to_string(),
            })?);
        }
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => token = Some(c),
            _ => return Ok(out),
        }
    }
}

/// The inventory Providers of a cluster (empty when the inventory CRD is missing).
pub async fn list_providers(cluster: &Cluster) -> Result<Vec<Provider>> {
    let t = TypeInfo {
        group: CLUSTERCTL_GROUP.into(),
        version: "v1alpha3".into(),
        kind: "Provider".into(),
        plural: "providers".into(),
        namespaced: true,
        force_move: false,
        force_move_hierarchy: false,
    };
    Ok(list_all(cluster, &t, None)
        .await?
        .iter()
        .map(|p| Provider {
            namespace: str_at(p, "/metadata/namespace").unwrap_or_default().into(),
            provider_name: str_at(p, "/providerName").unwrap_or_default().into(),
            provider_type: str_at(p, "/type").unwrap_or_default().into(),
            version: str_at(p, "/version").unwrap_or_default().into(),
        })
        .collect())
}

/// How many list requests run at once during discovery.
const LIST_PARALLELISM: usize = 8;

/// Builds the whole graph of `cluster` (upstream `Discovery`): lists every type, the identity
/// Secrets in infrastructure providers' namespaces, cross-namespace ClusterClasses, then soft
/// ownership, tenants and shouldNotDelete.
pub async fn discover(cluster: &Cluster, namespace: Option<&str>) -> Result<Graph> {
    let types = discover_types(cluster).await?;
    let providers = list_providers(cluster).await?;
    let lists: Vec<(usize, Vec<Value>)> = stream::iter(types.iter().enumerate())
        .map(|(i, t)| async move { list_all(cluster, t, namespace).await.map(|l| (i, l)) })
        .buffer_unordered(LIST_PARALLELISM)
        .try_collect()
        .await?;
    let mut graph = Graph::new(types, namespace.map(str::to_owned));
    let mut lists = lists;
    lists.sort_by_key(|(i, _)| *i);
    for (i, objs) in lists {
        for o in objs {
            graph.add_object(i, o)?;
        }
    }
    // Identity secrets in the infrastructure providers' namespaces.
    let secret_t = graph.types.len() - 2;
    let infra_ns: BTreeSet<String> = providers
        .iter()
        .filter(|p| p.provider_type == "InfrastructureProvider")
        .map(|p| p.namespace.clone())
        .collect();
    for ns in infra_ns {
        if namespace == Some(ns.as_str()) {
            continue;
        }
        let t = graph.types[secret_t].clone();
        for o in list_all(cluster, &t, Some(&ns)).await? {
            graph.add_object(secret_t, o)?;
        }
    }
    add_cross_namespace_classes(cluster, &mut graph, namespace).await?;
    graph.set_soft_ownership();
    graph.set_tenants();
    if namespace.is_some() {
        let mut all = Vec::new();
        if let Some(ci) = graph.type_index(CAPI_GROUP, "Cluster") {
            let t = graph.types[ci].clone();
            for c in list_all(cluster, &t, None).await? {
                let ns = str_at(&c, "/metadata/namespace")
                    .unwrap_or_default()
                    .to_owned();
                let class = c.pointer("/spec/topology").and_then(|topo| {
                    let name = str_at(topo, "/classRef/name")?;
                    let cns = str_at(topo, "/classRef/namespace")
                        .filter(|s| !s.is_empty())
                        .unwrap_or(&ns);
                    Some((cns.to_owned(), name.to_owned()))
                });
                all.push((ns, class));
            }
        }
        graph.set_should_not_delete(&all);
    }
    Ok(graph)
}

/// Adds ClusterClasses (and their templates) that Clusters of the moved namespace use from
/// another namespace; any failed GET aborts.
async fn add_cross_namespace_classes(
    cluster: &Cluster,
    graph: &mut Graph,
    namespace: Option<&str>,
) -> Result<()> {
    let Some(ns) = namespace else { return Ok(()) };
    let Some(cci) = graph.type_index(CAPI_GROUP, "ClusterClass") else {
        return Ok(());
    };
    let wanted: BTreeSet<(String, String)> = graph
        .nodes
        .values()
        .filter_map(|n| n.class_ref.clone())
        .filter(|(cns, _)| cns != ns)
        .collect();
    let mut errors = Vec::new();
    for (cns, name) in wanted {
        let t = graph.types[cci].clone();
        let class = match get_object(cluster, &t, Some(&cns), &name).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                errors.push(Error::Refused(format!(
                    "ClusterClass {cns}/{name} not found"
                )));
                continue;
            }
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let mut refs: Vec<Value> = Vec::new();
        for p in [
            "/spec/infrastructure/templateRef",
            "/spec/controlPlane/templateRef",
            "/spec/controlPlane/machineInfrastructure/templateRef",
        ] {
            if let Some(r) = class.pointer(p) {
                refs.push(r.clone());
            }
        }
        for list in [
            "/spec/workers/machineDeployments",
            "/spec/workers/machinePools",
        ] {
            for w in class
                .pointer(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for p in ["/infrastructure/templateRef", "/bootstrap/templateRef"] {
                    if let Some(r) = w.pointer(p) {
                        refs.push(r.clone());
                    }
                }
            }
        }
        graph.add_object(cci, class)?;
        for r in refs {
            let (Some(av), Some(kind), Some(rname)) = (
                str_at(&r, "/apiVersion"),
                str_at(&r, "/kind"),
                str_at(&r, "/name"),
            ) else {
                continue;
            };
            let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            let Some(ti) = graph.type_index(group, kind) else {
                errors.push(Error::Refused(format!(
                    "{kind} {cns}/{rname} (template of ClusterClass {cns}/{name}) is not a discovered type"
                )));
                continue;
            };
            let t = graph.types[ti].clone();
            match get_object(cluster, &t, Some(&cns), rname).await {
                Ok(Some(o)) => graph.add_object(ti, o)?,
                Ok(None) => errors.push(Error::Refused(format!("{kind} {cns}/{rname} not found"))),
                Err(e) => errors.push(e),
            }
        }
    }
    Error::aggregate("reading cross-namespace ClusterClasses", errors)
}

/// GET one object (`None` when absent), retried with the read backoff.
pub async fn get_object(
    cluster: &Cluster,
    t: &TypeInfo,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>> {
    let api = t.api(cluster.client().clone(), namespace);
    let what = || format!("{} {}/{name}", t.kind, namespace.unwrap_or(""));
    let r = cluster
        .call("get", what, Backoff::READ, false, |_| {
            let api = api.clone();
            let name = name.to_owned();
            async move { api.get_opt(&name).await }
        })
        .await?;
    match r {
        None => Ok(None),
        Some(o) => {
            let mut v = serde_json::to_value(o).map_err(|e| Error::Malformed {
                object: name.to_owned(),
                message: e.to_string(),
            })?;
            if let Some(m) = v.as_object_mut() {
                m.insert("apiVersion".into(), Value::String(t.api_version()));
                m.insert("kind".into(), Value::String(t.kind.clone()));
            }
            Ok(Some(v))
        }
    }
}
