//! Executes a [`Plan`] against a source and a target cluster: suspend Flux on the source, create
//! layer by layer on the target (owners first, UIDs rewritten, status left to the server,
//! managedFields restored), delete layer by layer in reverse on the source (delete-for-move,
//! finalizers removed), unpause the target. Independent objects of one layer go in parallel
//! (bounded); every step is idempotent so a rerun after a kill finishes the job. Takes the plan,
//! never discovers. Source objects that nothing can watch being deleted (no finalizers, no
//! admission check on DELETE of their type, see [`crate::admission`]) are deleted without the
//! annotation patch first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use futures::{StreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    DeleteParams, DynamicObject, ListParams, ObjectList, PartialObjectMeta, Patch, PatchParams,
    PostParams, Preconditions,
};
use serde_json::{Map, Value, json};

use crate::admission::{DeleteAdmission, delete_admission};
use crate::cluster::{Backoff, Cluster};
use crate::error::{Error, Result, run_all};
use crate::graph::{CAPI_GROUP, DELETE_FOR_MOVE_ANNOTATION, PAUSED_ANNOTATION, TypeInfo};
use crate::journal::{Journal, Record};
use crate::plan::{FluxRef, Plan, PlanNode};

/// Label put on source objects (with the run id as value) right before they are deleted, so one
/// delete-collection request per type, namespace and layer removes exactly them.
pub const DELETE_LABEL: &str = "kube-ops.manage/delete-for-move";
/// The field manager of our writes (creates whose source ownership cannot be reproduced,
/// pauses, marks, suspensions).
pub const FIELD_MANAGER: &str = "manage";
/// Objects per delete-collection shard, and the most shards of one type and namespace.
const DELETE_SHARD_SIZE: usize = 40;
const MAX_DELETE_SHARDS: usize = 16;

/// How the executor behaves.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Requests in flight per layer.
    pub parallelism: usize,
    /// Field manager for creates when the source's ownership cannot be reproduced by the create
    /// itself (then the source managedFields are restored by a patch, as clusterctl does).
    pub field_manager: String,
    /// Restore mode (`--from-directory`): existing target objects are kept as they are.
    pub restore: bool,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            parallelism: 32,
            field_manager: FIELD_MANAGER.into(),
            restore: false,
        }
    }
}

/// What an execution did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExecReport {
    /// Objects created (or found already correct) on the target.
    pub created: usize,
    /// Objects that already existed and were replaced.
    pub updated: usize,
    /// managedFields restore patches sent.
    pub managed_fields_restored: usize,
    /// Objects deleted from the source.
    pub deleted: usize,
    /// Source objects given the delete-for-move annotation before their delete (the others had
    /// no finalizers and no admission check on DELETE of their type).
    pub annotated: usize,
    /// Flux objects suspended on the source.
    pub flux_suspended: usize,
    /// Seconds spent creating on the target (source objects marked along the way).
    pub create_seconds: f64,
    /// Seconds spent deleting from the source.
    pub delete_seconds: f64,
}

/// The executor of one plan.
pub struct Executor<'a> {
    plan: &'a Plan,
    source: Option<&'a Cluster>,
    target: &'a Cluster,
    journal: Option<&'a Journal>,
    run: String,
    opts: ExecOptions,
    new_uids: Mutex<HashMap<usize, String>>,
    report: Mutex<ExecReport>,
    /// Value of [`DELETE_LABEL`] per source object: `<run>-<layer>-<shard>`, so one
    /// delete-collection per type, namespace, layer and shard removes exactly those objects.
    delete_label: HashMap<usize, String>,
    /// Which types an admission check on the source sees deleted (read once per run).
    admission: OnceLock<DeleteAdmission>,
}

/// Delete-label values for every object deleted from the source (see [`Executor::delete_label`]).
/// The API server deletes the objects of one delete-collection one after another, so a big group
/// is spread over shards whose delete-collections run at the same time.
fn delete_labels(plan: &Plan, run: &str) -> HashMap<usize, String> {
    let mut out = HashMap::new();
    for (li, layer) in plan.layers.iter().enumerate() {
        let mut groups: BTreeMap<(usize, &str), Vec<usize>> = BTreeMap::new();
        for &i in layer {
            let n = &plan.nodes[i];
            if n.deleted_on_source() {
                groups
                    .entry((n.type_index, n.id.namespace.as_str()))
                    .or_default()
                    .push(i);
            }
        }
        for members in groups.values() {
            let shards = members
                .len()
                .div_ceil(DELETE_SHARD_SIZE)
                .clamp(1, MAX_DELETE_SHARDS);
            for (k, &i) in members.iter().enumerate() {
                out.insert(i, format!("{run}-{li}-{}", k % shards));
            }
        }
    }
    out
}

/// Accept headers asking the server to answer a write with metadata only: of each object it
/// returns, it encodes (and we parse) a fraction.
const METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const METADATA_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

fn metadata_answer(
    req: std::result::Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    accept: &'static str,
) -> std::result::Result<http::Request<Vec<u8>>, kube::Error> {
    let mut req = req.map_err(kube::Error::BuildRequest)?;
    req.headers_mut()
        .insert(http::header::ACCEPT, http::HeaderValue::from_static(accept));
    Ok(req)
}

fn has_finalizers(object: &Value) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// `Ok` for a request whose object is already gone (404): someone, or an earlier run, got there
/// first.
fn gone_is_done<T>(r: Result<T>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(404) => Ok(()),
        Err(e) => Err(e),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<'a> Executor<'a> {
    /// An executor; `source` is `None` when restoring from a directory, `journal` carries
    /// progress of an earlier, interrupted run of the same move.
    pub fn new(
        plan: &'a Plan,
        source: Option<&'a Cluster>,
        target: &'a Cluster,
        journal: Option<&'a Journal>,
        run: String,
        opts: ExecOptions,
    ) -> Executor<'a> {
        let known = journal
            .map(|j| j.state.created.clone().into_iter().collect())
            .unwrap_or_default();
        Executor {
            plan,
            source,
            target,
            journal,
            delete_label: delete_labels(plan, &run),
            run,
            opts,
            new_uids: Mutex::new(known),
            report: Mutex::new(ExecReport::default()),
            admission: OnceLock::new(),
        }
    }

    /// Whether source object `i` gets the delete-for-move annotation before its delete: when it
    /// has finalizers (a controller's delete path may run and look) or an admission check sees
    /// its type deleted. Until the admission configuration is read, every object does.
    fn annotated_before_delete(&self, i: usize) -> bool {
        let node = &self.plan.nodes[i];
        has_finalizers(&node.object) || self.admission.get().is_none_or(|a| a.sees(node.type_index))
    }

    /// The API of node `i`'s type on `cluster`, in the node's namespace when the type has one.
    fn node_api(&self, cluster: &Cluster, i: usize) -> kube::Api<DynamicObject> {
        let node = &self.plan.nodes[i];
        let t = self.plan.type_of(node);
        let ns =
            (!node.id.namespace.is_empty() && t.namespaced).then_some(node.id.namespace.as_str());
        t.api(cluster.client().clone(), ns)
    }

    /// Patches are sent under our field manager.
    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.opts.field_manager.clone()),
            ..PatchParams::default()
        }
    }

    fn record(&self, r: Record, sync: bool) -> Result<()> {
        match self.journal {
            Some(j) => j.record(&r, sync),
            None => Ok(()),
        }
    }

    /// Runs every step; returns what was done.
    pub async fn run(&self) -> Result<ExecReport> {
        let state = self.journal.map(|j| j.state.clone()).unwrap_or_default();
        if let Some(source) = self.source {
            if !state.suspended {
                self.suspend_flux(source).await?;
                self.record(Record::Suspended, false)?;
            }
            let seen = delete_admission(source, &self.plan.types).await?;
            tracing::debug!(?seen, "types whose deletes admission checks see");
            let _ = self.admission.set(seen);
        }
        self.ensure_namespaces().await?;
        let started = std::time::Instant::now();
        for (li, layer) in self.plan.layers.iter().enumerate() {
            let todo: Vec<usize> = {
                let known = lock(&self.new_uids);
                layer
                    .iter()
                    .copied()
                    .filter(|i| !known.contains_key(i))
                    .collect()
            };
            tracing::info!(
                layer = li + 1,
                objects = layer.len(),
                todo = todo.len(),
                "creating on the target"
            );
            run_all(
                "creating objects on the target",
                self.opts.parallelism,
                stream::iter(todo).map(|i| self.create(i)),
            )
            .await?;
        }
        lock(&self.report).create_seconds = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        if let Some(source) = self.source {
            for (li, layer) in self.plan.layers.iter().enumerate().rev() {
                let todo: Vec<usize> = layer
                    .iter()
                    .copied()
                    .filter(|i| {
                        self.plan.nodes[*i].deleted_on_source() && !state.deleted.contains(i)
                    })
                    .collect();
                if todo.is_empty() {
                    continue;
                }
                tracing::info!(
                    layer = li + 1,
                    objects = todo.len(),
                    "deleting from the source"
                );
                self.delete_layer(source, &todo).await?;
                self.record(Record::Deleted { nodes: todo }, false)?;
            }
        }
        lock(&self.report).delete_seconds = started.elapsed().as_secs_f64();
        if !state.unpaused {
            self.unpause_target().await?;
            if let Some(source) = self.source {
                self.unpause_kept_classes(source).await?;
            }
            self.record(Record::Unpaused, true)?;
        }
        Ok(lock(&self.report).clone())
    }

    async fn suspend_flux(&self, source: &Cluster) -> Result<()> {
        for f in &self.plan.flux {
            let t = flux_type(f);
            let api = t.api(source.client().clone(), Some(&f.namespace));
            let what = || format!("{} {}/{}", f.kind, f.namespace, f.name);
            let patch = json!({"spec": {"suspend": true}});
            let pp = self.patch_params();
            let r = source
                .call("suspend", what, Backoff::WRITE, true, |_| {
                    let api = api.clone();
                    let patch = patch.clone();
                    let name = f.name.clone();
                    let pp = pp.clone();
                    async move { api.patch(&name, &pp, &Patch::Merge(&patch)).await }
                })
                .await;
            match r {
                Ok(_) => {
                    tracing::info!(object = %what(), "suspended on the source");
                    lock(&self.report).flux_suspended += 1;
                }
                Err(e) if e.status() == Some(404) => {
                    tracing::info!(object = %what(), "not found on the source; nothing to suspend")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn ensure_namespaces(&self) -> Result<()> {
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(self.target.client().clone());
        for ns in &self.plan.namespaces {
            let what = || format!("Namespace {ns}");
            let found = self
                .target
                .call("get", what, Backoff::READ, false, |_| {
                    let api = api.clone();
                    let ns = ns.clone();
                    async move { api.get_opt(&ns).await }
                })
                .await?;
            if found.is_some() {
                continue;
            }
            let obj: k8s_openapi::api::core::v1::Namespace =
                serde_json::from_value(json!({"metadata": {"name": ns}})).map_err(|e| {
                    Error::Malformed {
                        object: what(),
                        message: e.to_string(),
                    }
                })?;
            let r = self
                .target
                .call("create", what, Backoff::WRITE, true, |_| {
                    let api = api.clone();
                    let obj = obj.clone();
                    async move { api.create(&PostParams::default(), &obj).await }
                })
                .await;
            match r {
                Ok(_) => {}
                Err(e) if e.status() == Some(409) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The object to send for node `i`: server-set metadata cleared, ownerReferences pointing
    /// at the owners' target UIDs.
    fn desired(&self, i: usize) -> Result<Value> {
        let node = &self.plan.nodes[i];
        let mut obj = node.object.clone();
        let mut owner_uids: HashMap<String, String> = HashMap::new();
        let refs: Vec<Value> = {
            let uids = lock(&self.new_uids);
            node.owners
                .iter()
                .map(|o| {
                    let owner = &self.plan.nodes[o.node];
                    let uid = uids.get(&o.node).cloned().ok_or_else(|| Error::Malformed {
                        object: node.id.to_string(),
                        message: format!("owner {} has no target UID yet", owner.id),
                    })?;
                    owner_uids.insert(owner.id.uid.clone(), uid.clone());
                    let mut r = Map::new();
                    r.insert("apiVersion".into(), owner.id.api_version.clone().into());
                    r.insert("kind".into(), owner.id.kind.clone().into());
                    r.insert("name".into(), owner.id.name.clone().into());
                    r.insert("uid".into(), uid.into());
                    if let Some(c) = o.controller {
                        r.insert("controller".into(), c.into());
                    }
                    if let Some(b) = o.block_owner_deletion {
                        r.insert("blockOwnerDeletion".into(), b.into());
                    }
                    Ok(Value::Object(r))
                })
                .collect::<Result<_>>()?
        };
        let meta = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Error::Malformed {
                object: node.id.to_string(),
                message: "no metadata".into(),
            })?;
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(k);
        }
        // Sent with the create: the server keeps them (see `main_update_manager`).
        match meta.get("managedFields") {
            Some(Value::Array(a)) if !a.is_empty() => {
                let mf = rewrite_owner_uids(&meta["managedFields"], &owner_uids);
                meta.insert("managedFields".into(), mf);
            }
            _ => {
                meta.remove("managedFields");
            }
        }
        if refs.is_empty() {
            meta.remove("ownerReferences");
        } else {
            meta.insert("ownerReferences".into(), Value::Array(refs));
        }
        // An object marked on the source by an interrupted run of ours must not carry the marks
        // over (a move re-planned without its journal discovers them).
        if let Some(l) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            l.remove(DELETE_LABEL);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove(DELETE_FOR_MOVE_ANNOTATION);
        }
        // Both name and generateName make some API servers time out (clusterctl clears it too).
        if meta.contains_key("name") {
            meta.remove("generateName");
        }
        Ok(obj)
    }

    /// Creates node `i` on the target (or adopts an identical existing copy), records its UID.
    async fn create(&self, i: usize) -> Result<()> {
        let node = &self.plan.nodes[i];
        let desired = self.desired(i)?;
        let source_mf = desired
            .pointer("/metadata/managedFields")
            .cloned()
            .unwrap_or(Value::Null);
        let manager =
            main_update_manager(&source_mf).unwrap_or_else(|| self.opts.field_manager.clone());
        let api = self.node_api(self.target, i);
        let mut body = desired.clone();
        // A lone main-resource Update entry is what the server writes for the creating manager
        // anyway; sending it would only make the create heavier.
        if manager != self.opts.field_manager
            && source_mf.as_array().is_some_and(|a| a.len() == 1)
            && let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.remove("managedFields");
        }
        let body = serde_json::to_vec(&body).map_err(|e| Error::Malformed {
            object: node.id.to_string(),
            message: e.to_string(),
        })?;
        let what = || node.id.to_string();
        let pp = PostParams {
            field_manager: Some(manager),
            ..PostParams::default()
        };
        let request = kube::core::Request::new(api.resource_url());
        let created = self
            .target
            .call("create", what, Backoff::WRITE, true, |c| {
                let req = metadata_answer(request.create(&pp, body.clone()), METADATA);
                async move { c.request::<PartialObjectMeta<DynamicObject>>(req?).await }
            })
            .await;
        let (uid, current_mf) = match created {
            Ok(o) => {
                lock(&self.report).created += 1;
                (o.metadata.uid.clone(), mf_value(&o.metadata))
            }
            Err(e) if e.status() == Some(409) => {
                let existing = self
                    .target
                    .call("get", what, Backoff::READ, false, |_| {
                        let api = api.clone();
                        let name = node.id.name.clone();
                        async move { api.get(&name).await }
                    })
                    .await?;
                let ex = serde_json::to_value(&existing).map_err(|e| Error::Malformed {
                    object: what(),
                    message: e.to_string(),
                })?;
                if node.global
                    || node.global_hierarchy
                    || self.opts.restore
                    || same_content(&desired, &ex)
                {
                    lock(&self.report).created += 1;
                    (existing.metadata.uid.clone(), mf_value(&existing.metadata))
                } else {
                    // Upstream: an existing object is overwritten with the source's content.
                    let mut upd = desired.clone();
                    if let Some(m) = upd.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.insert(
                            "resourceVersion".into(),
                            json!(existing.metadata.resource_version),
                        );
                        m.insert("uid".into(), json!(existing.metadata.uid));
                    }
                    let upd: DynamicObject =
                        serde_json::from_value(upd).map_err(|e| Error::Malformed {
                            object: what(),
                            message: e.to_string(),
                        })?;
                    let replaced = self
                        .target
                        .call("replace", what, Backoff::WRITE, true, |_| {
                            let api = api.clone();
                            let upd = upd.clone();
                            let name = node.id.name.clone();
                            async move { api.replace(&name, &PostParams::default(), &upd).await }
                        })
                        .await?;
                    lock(&self.report).updated += 1;
                    (replaced.metadata.uid.clone(), mf_value(&replaced.metadata))
                }
            }
            Err(e) => return Err(e),
        };
        let uid = uid.ok_or_else(|| Error::Malformed {
            object: what(),
            message: "the target returned no uid".into(),
        })?;
        if !(node.global || node.global_hierarchy)
            && source_mf.as_array().is_some_and(|a| !a.is_empty())
            && !same_managed_fields(&source_mf, &current_mf)
        {
            let patch = json!({"metadata": {"managedFields": source_mf}});
            self.patch_node(self.target, i, "restore managedFields of", &patch)
                .await?;
            lock(&self.report).managed_fields_restored += 1;
        }
        // An object that needs the annotation is marked now, its finalizers dropped in the same
        // patch, while the target works on the next creates (the source is otherwise idle then),
        // so that the delete phase removes it with a delete-collection. Nothing deletes it
        // before every object exists on the target. Recorded as created only after the mark, so
        // a resumed run marks what an interrupted one did not. An object that needs no
        // annotation is deleted directly.
        if let Some(source) = self.source
            && node.deleted_on_source()
            && self.annotated_before_delete(i)
        {
            self.mark(source, i, has_finalizers(&node.object)).await?;
        }
        lock(&self.new_uids).insert(i, uid.clone());
        self.record(Record::Created { node: i, uid }, false)?;
        Ok(())
    }

    /// Patches a source object for deletion: the delete-for-move annotation (what validating
    /// webhooks look at on DELETE), the delete label, and with `clear_finalizers` no finalizers.
    /// A source object that is already gone counts as done.
    async fn mark(&self, source: &Cluster, i: usize, clear_finalizers: bool) -> Result<()> {
        let node = &self.plan.nodes[i];
        let api = self.node_api(source, i);
        let label = self
            .delete_label
            .get(&i)
            .cloned()
            .unwrap_or_else(|| self.run.clone());
        let mut meta = json!({
            "annotations": {DELETE_FOR_MOVE_ANNOTATION: ""},
            "labels": {DELETE_LABEL: label},
        });
        if clear_finalizers {
            meta["finalizers"] = Value::Null;
        }
        let patch = json!({ "metadata": meta });
        let patch = &patch;
        let pp = &self.patch_params();
        let r = source
            .call(
                "mark for deletion",
                || node.id.to_string(),
                Backoff::WRITE,
                true,
                |_| {
                    let api = api.clone();
                    let name = node.id.name.clone();
                    // Only the metadata comes back: less for both sides to encode and parse.
                    async move { api.patch_metadata(&name, pp, &Patch::Merge(patch)).await }
                },
            )
            .await;
        if r.is_ok() {
            lock(&self.report).annotated += 1;
        }
        gone_is_done(r)
    }

    /// Deletes source object `i` by name, only if it is still the object that was planned (UID
    /// precondition). Gone, or replaced by another object of the same name, counts as done.
    async fn delete_directly(&self, source: &Cluster, i: usize) -> Result<()> {
        let node = &self.plan.nodes[i];
        let api = self.node_api(source, i);
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(node.id.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let request = kube::core::Request::new(api.resource_url());
        let r = source
            .call(
                "delete",
                || node.id.to_string(),
                Backoff::WRITE,
                true,
                |c| {
                    let req = metadata_answer(request.delete(&node.id.name, &dp), METADATA);
                    async move {
                        c.request_status::<PartialObjectMeta<DynamicObject>>(req?)
                            .await
                    }
                },
            )
            .await;
        match r {
            Err(e) if e.status() == Some(409) => {
                tracing::info!(object = %node.id, "the source has another object of that name now; left alone");
                Ok(())
            }
            r => gone_is_done(r),
        }
    }

    /// Deletes one layer from the source. Objects that need the annotation were marked
    /// (annotation, delete label, no finalizers) when they were created on the target: one
    /// delete-collection per type, namespace and shard selects exactly them. The objects that
    /// need no annotation are deleted one by one. A last listing catches what was missed (an
    /// object whose mark was lost, or that gained a finalizer since) and deletes it one by one.
    async fn delete_layer(&self, source: &Cluster, todo: &[usize]) -> Result<()> {
        let group_by_type = |members: &[usize]| {
            let mut groups: BTreeMap<(usize, String), Vec<usize>> = BTreeMap::new();
            for i in members {
                let n = &self.plan.nodes[*i];
                groups
                    .entry((n.type_index, n.id.namespace.clone()))
                    .or_default()
                    .push(*i);
            }
            groups
        };
        let (annotated, direct): (Vec<usize>, Vec<usize>) = todo
            .iter()
            .copied()
            .partition(|i| self.annotated_before_delete(*i));
        let mut deletes: Vec<(usize, String, String, usize)> = Vec::new();
        for ((ti, ns), members) in &group_by_type(&annotated) {
            let mut by_label: BTreeMap<String, usize> = BTreeMap::new();
            for i in members {
                let label = self
                    .delete_label
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| self.run.clone());
                *by_label.entry(label).or_default() += 1;
            }
            for (label, count) in by_label {
                deletes.push((*ti, ns.clone(), label, count));
            }
        }
        // One delete-collection may remove many objects: give it more time than a
        // single-object request.
        let mut slow = source.clone();
        slow.request_timeout = slow
            .request_timeout
            .max(std::time::Duration::from_secs(120));
        let slow = &slow;
        run_all(
            "deleting source objects",
            self.opts.parallelism,
            stream::iter(deletes).map(|(ti, ns, label, count)| {
                let selector = format!("{DELETE_LABEL}={label}");
                async move {
                    let t: &TypeInfo = &self.plan.types[ti];
                    let api = t.api(slow.client().clone(), Some(&ns));
                    let lp = ListParams::default().labels(&selector);
                    let request = kube::core::Request::new(api.resource_url());
                    slow.call(
                        "delete",
                        || format!("{count} {} in {ns}", t.kind),
                        Backoff::WRITE,
                        true,
                        |c| {
                            let req = metadata_answer(
                                request.delete_collection(&DeleteParams::default(), &lp),
                                METADATA_LIST,
                            );
                            async move {
                                c.request_status::<ObjectList<PartialObjectMeta<DynamicObject>>>(
                                    req?,
                                )
                                .await
                            }
                        },
                    )
                    .await
                    .map(|_| ())
                }
            }),
        )
        .await?;
        run_all(
            "deleting source objects",
            self.opts.parallelism,
            stream::iter(direct).map(|i| self.delete_directly(source, i)),
        )
        .await?;
        let left = self.leftovers(source, &group_by_type(todo)).await?;
        if !left.is_empty() {
            tracing::info!(
                objects = left.len(),
                "deleting what the first pass missed, one by one"
            );
        }
        run_all(
            "deleting leftover source objects",
            self.opts.parallelism,
            stream::iter(left).map(|i| async move {
                self.mark(source, i, true).await?;
                self.delete_directly(source, i).await
            }),
        )
        .await?;
        lock(&self.report).deleted += todo.len();
        Ok(())
    }

    /// Planned objects of the layer that are still on the source after the first delete pass.
    async fn leftovers(
        &self,
        source: &Cluster,
        groups: &BTreeMap<(usize, String), Vec<usize>>,
    ) -> Result<Vec<usize>> {
        let found: Vec<Vec<usize>> =
            futures::future::try_join_all(groups.iter().map(|((ti, ns), members)| async move {
                let t: &TypeInfo = &self.plan.types[*ti];
                let api = t.api(source.client().clone(), Some(ns));
                let list = source
                    .call(
                        "list",
                        || format!("{} in {ns}", t.kind),
                        Backoff::READ,
                        false,
                        |_| {
                            let api = api.clone();
                            async move { api.list_metadata(&ListParams::default()).await }
                        },
                    )
                    .await?;
                // By UID: an object created since under a planned name is not ours to delete.
                let present: std::collections::HashSet<String> = list
                    .items
                    .into_iter()
                    .filter_map(|o| o.metadata.uid)
                    .collect();
                Ok::<_, Error>(
                    members
                        .iter()
                        .copied()
                        .filter(|i| present.contains(&self.plan.nodes[*i].id.uid))
                        .collect(),
                )
            }))
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Unpauses the moved Clusters (`spec.paused`) and ClusterClasses (annotation) on the target.
    async fn unpause_target(&self) -> Result<()> {
        let nodes: Vec<usize> = self
            .plan
            .clusters()
            .chain(self.plan.cluster_classes())
            .collect();
        self.unpause(self.target, nodes, "unpausing on the target")
            .await
    }

    /// Unpauses on the source the ClusterClasses that stay there (in another namespace, or still
    /// used by Clusters elsewhere): the Clusters left on the source keep using them. clusterctl
    /// leaves them paused.
    async fn unpause_kept_classes(&self, source: &Cluster) -> Result<()> {
        let nodes: Vec<usize> = self
            .plan
            .cluster_classes()
            .filter(|i| self.plan.nodes[*i].should_not_delete)
            .collect();
        self.unpause(source, nodes, "unpausing kept ClusterClasses on the source")
            .await
    }

    async fn unpause(
        &self,
        cluster: &Cluster,
        nodes: Vec<usize>,
        step: &'static str,
    ) -> Result<()> {
        run_all(
            step,
            self.opts.parallelism,
            stream::iter(nodes).map(|i| async move {
                let node: &PlanNode = &self.plan.nodes[i];
                let patch = if self.plan.type_of(node).is(CAPI_GROUP, "Cluster") {
                    json!({"spec": {"paused": null}})
                } else {
                    json!({"metadata": {"annotations": {PAUSED_ANNOTATION: null}}})
                };
                gone_is_done(self.patch_node(cluster, i, "unpause", &patch).await)
            }),
        )
        .await
    }

    /// One merge patch of node `i` on `cluster`, under our field manager, retried as a write.
    async fn patch_node(
        &self,
        cluster: &Cluster,
        i: usize,
        op: &'static str,
        patch: &Value,
    ) -> Result<DynamicObject> {
        let node = &self.plan.nodes[i];
        let api = self.node_api(cluster, i);
        let pp = self.patch_params();
        cluster
            .call(
                op,
                || node.id.to_string(),
                Backoff::WRITE,
                true,
                |_| {
                    let api = api.clone();
                    let name = node.id.name.clone();
                    let pp = pp.clone();
                    async move { api.patch(&name, &pp, &Patch::Merge(patch)).await }
                },
            )
            .await
    }
}

/// The Flux type of a [`FluxRef`].
pub fn flux_type(f: &FluxRef) -> TypeInfo {
    let (group, version, plural) = match f.kind.as_str() {
        "HelmRelease" => ("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
        _ => ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
    };
    TypeInfo {
        group: group.into(),
        version: version.into(),
        kind: f.kind.clone(),
        plural: plural.into(),
        namespaced: true,
        force_move: false,
        force_move_hierarchy: false,
    }
}

fn mf_value(meta: &ObjectMeta) -> Value {
    meta.managed_fields
        .as_ref()
        .and_then(|m| serde_json::to_value(m).ok())
        .unwrap_or(Value::Null)
}

/// The manager of the source's only `Update` entry of the main resource. The API server keeps
/// the managedFields sent with a create and merges the creating manager's fields into its own
/// entry, so creating under that name reproduces the source's ownership (only that entry's
/// `time`, and with it the entry order, change) and no restore patch is needed.
fn main_update_manager(mf: &Value) -> Option<String> {
    let mut main = mf.as_array()?.iter().filter(|e| {
        e.get("operation").and_then(Value::as_str) == Some("Update")
            && e.get("subresource").is_none()
    });
    let e = main.next()?;
    if main.next().is_some() {
        return None;
    }
    e.get("manager").and_then(Value::as_str).map(str::to_owned)
}

/// The source's managedFields with the owner UIDs in the keys of `f:ownerReferences`
/// (`k:{"uid":"…"}`) replaced by the owners' UIDs on the target; keys of unknown UIDs are kept.
fn rewrite_owner_uids(mf: &Value, uids: &HashMap<String, String>) -> Value {
    let mut mf = mf.clone();
    for e in mf.as_array_mut().into_iter().flatten() {
        let Some(refs) = e
            .pointer_mut("/fieldsV1/f:metadata/f:ownerReferences")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let old = std::mem::take(refs);
        for (k, v) in old {
            let new = k
                .strip_prefix("k:")
                .and_then(|key| serde_json::from_str::<Map<String, Value>>(key).ok())
                .filter(|key| key.len() == 1)
                .and_then(|key| key.get("uid").and_then(Value::as_str).map(str::to_owned))
                .and_then(|uid| uids.get(&uid))
                .map(|uid| format!("k:{}", json!({ "uid": uid })));
            refs.insert(new.unwrap_or(k), v);
        }
    }
    mf
}

/// managedFields equal but for the timestamps, the entry order (the server sorts entries by
/// time) and the owner UIDs (the keys of `f:ownerReferences` name them; a target object
/// adopted from an earlier run may still hold keys of that run's owners).
fn same_managed_fields(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Vec<String> {
        let mut entries: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        let mut e = e.clone();
                        if let Some(m) = e.as_object_mut() {
                            m.remove("time");
                        }
                        if let Some(refs) = e.pointer_mut("/fieldsV1/f:metadata/f:ownerReferences")
                        {
                            *refs = Value::Null;
                        }
                        e.to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        entries.sort();
        entries
    };
    strip(a) == strip(b)
}

/// Whether an existing target object already holds what we would create: same labels,
/// annotations, owner references and every top-level field but metadata and status.
fn same_content(desired: &Value, existing: &Value) -> bool {
    let meta = |v: &Value, k: &str| {
        v.pointer(&format!("/metadata/{k}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let empty_as_null = |v: Value| match &v {
        Value::Object(m) if m.is_empty() => Value::Null,
        Value::Array(a) if a.is_empty() => Value::Null,
        _ => v,
    };
    for k in ["labels", "annotations", "ownerReferences"] {
        if empty_as_null(meta(desired, k)) != empty_as_null(meta(existing, k)) {
            return false;
        }
    }
    let body = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    body(desired) == body(existing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_update_manager_only_for_one_main_update_entry() {
        let one = json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1"}]);
        assert_eq!(main_update_manager(&one).as_deref(), Some("kubectl-create"));
        let apply = json!([{"manager": "flux", "operation": "Apply"}]);
        assert_eq!(main_update_manager(&apply), None);
        let with_status = json!([{"manager": "a", "operation": "Update"}, {"manager": "b", "operation": "Update", "subresource": "status"}]);
        assert_eq!(main_update_manager(&with_status).as_deref(), Some("a"));
        let two = json!([{"manager": "a", "operation": "Update"}, {"manager": "b", "operation": "Update"}]);
        assert_eq!(main_update_manager(&two), None);
    }

    #[test]
    fn owner_uids_in_managed_fields_are_rewritten() {
        let mf = json!([{"manager": "m", "fieldsV1": {"f:metadata": {"f:ownerReferences": {
            ".": {}, "k:{\"uid\":\"old-1\"}": {}, "k:{\"uid\":\"elsewhere\"}": {}
        }}}}]);
        let uids = HashMap::from([("old-1".to_owned(), "new-1".to_owned())]);
        let out = rewrite_owner_uids(&mf, &uids);
        let refs = out[0]
            .pointer("/fieldsV1/f:metadata/f:ownerReferences")
            .and_then(Value::as_object)
            .expect("refs");
        let mut keys: Vec<&str> = refs.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            vec![".", "k:{\"uid\":\"elsewhere\"}", "k:{\"uid\":\"new-1\"}"]
        );
    }

    #[test]
    fn managed_fields_compare_without_order() {
        let a = json!([{"manager": "a", "operation": "Update"}, {"manager": "b", "operation": "Update", "subresource": "status"}]);
        let b = json!([{"manager": "b", "operation": "Update", "subresource": "status"}, {"manager": "a", "operation": "Update"}]);
        assert!(same_managed_fields(&a, &b));
        let c = json!([{"manager": "a", "operation": "Update"}]);
        assert!(!same_managed_fields(&a, &c));
    }

    #[test]
    fn managed_fields_compare_without_time() {
        let a =
            json!([{"manager": "m", "time": "2026-01-01T00:00:00Z", "fieldsV1": {"f:spec": {}}}]);
        let b =
            json!([{"manager": "m", "time": "2026-11-21T00:00:00Z", "fieldsV1": {"f:spec": {}}}]);
        assert!(same_managed_fields(&a, &b));
    }

    #[test]
    fn same_content_ignores_status_and_server_metadata() {
        let d = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"r": 1}, "status": {"s": 1}});
        let e = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1"}, "annotations": {}}, "spec": {"r": 1}});
        assert!(same_content(&d, &e));
        let f = json!({"metadata": {"name": "a", "labels": {"x": "2"}}, "spec": {"r": 1}});
        assert!(!same_content(&d, &f));
    }
}
