//! `--to-directory` / `--from-directory`, in clusterctl's layout: one file per object named
//! `<Kind>_<Namespace>_<Name>.yaml` holding the full object as JSON (uid, ownerReferences,
//! managedFields and status included), mode 0600; restore reads every file of the directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::checks;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::execute::{ExecOptions, ExecReport, Executor};
use crate::graph::{self, Graph, TypeInfo};
use crate::plan::{self, Plan};

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The file clusterctl writes for an object.
pub fn file_name(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}_{namespace}_{name}.yaml")
}

/// Backs the source's objects up into `dir` (which must exist): checks as a move does, pauses,
/// writes every planned object, unpauses. Returns the plan written.
pub async fn to_directory(
    source: &Cluster,
    namespace: Option<&str>,
    dir: &Path,
    parallelism: usize,
) -> Result<Plan> {
    if !dir.is_dir() {
        return Err(Error::Io {
            op: "using backup directory",
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let graph = graph::discover(source, namespace).await?;
    checks::check_not_paused(&graph, &Default::default())?;
    checks::check_provisioned(&graph)?;
    crate::mover::pause(source, &graph, parallelism).await?;
    let written = async {
        let snapshot = graph::discover(source, namespace).await?;
        let plan = plan::build(&snapshot);
        for layer in &plan.layers {
            for i in layer {
                let n = &plan.nodes[*i];
                write_object(dir, &n.id.kind, &n.id.namespace, &n.id.name, &n.object)?;
            }
        }
        Ok::<_, Error>(plan)
    }
    .await;
    // Unpause the source whatever happened (upstream unpauses after writing).
    let unpaused = crate::mover::unpause(source, &graph, parallelism).await;
    let plan = written?;
    unpaused?;
    Ok(plan)
}

fn write_object(dir: &Path, kind: &str, ns: &str, name: &str, obj: &Value) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(file_name(kind, ns, name));
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("removing old backup file", &path)(e)),
    }
    let bytes = serde_json::to_vec(obj).map_err(|e| Error::Malformed {
        object: format!("{kind} {ns}/{name}"),
        message: e.to_string(),
    })?;
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io("creating backup file", &path))?;
    f.write_all(&bytes)
        .map_err(io("writing backup file", &path))
}

/// Reads every object of a backup directory (non-recursive; JSON or multi-document YAML).
pub fn read_directory(dir: &Path) -> Result<Vec<Value>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io("reading backup directory", dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(io("reading backup file", &f))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => out.push(v),
            Err(_) => {
                let docs: Vec<Value> =
                    serde_saphyr::from_multiple(&text).map_err(|e| Error::Malformed {
                        object: f.display().to_string(),
                        message: e.to_string(),
                    })?;
                out.extend(docs.into_iter().filter(|d| !d.is_null()));
            }
        }
    }
    Ok(out)
}

/// Builds the graph of backed-up objects against the target's types (a type whose version
/// differs from the target's storage version keeps the file's version).
pub fn graph_from_objects(types: Vec<TypeInfo>, objects: Vec<Value>) -> Result<Graph> {
    let mut graph = Graph::new(types, None);
    let mut by_gvk: HashMap<(String, String, String), usize> = HashMap::new();
    for o in objects {
        let av = o
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let kind = o
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let (group, version) = match av.rsplit_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), av.clone()),
        };
        let key = (group.clone(), version.clone(), kind.clone());
        let ti = match by_gvk.get(&key) {
            Some(i) => *i,
            None => {
                let Some(base) = graph
                    .types
                    .iter()
                    .find(|t| t.group == group && t.kind == kind)
                    .cloned()
                else {
                    return Err(Error::Refused(format!(
                        "{kind} ({av}) from the backup is not a type of the target (no CRD labelled clusterctl.cluster.x-k8s.io)"
                    )));
                };
                let i = if base.version == version {
                    graph
                        .types
                        .iter()
                        .position(|t| *t == base)
                        .unwrap_or_default()
                } else {
                    graph.types.push(TypeInfo {
                        version: version.clone(),
                        ..base
                    });
                    graph.types.len() - 1
                };
                by_gvk.insert(key, i);
                i
            }
        };
        graph.add_object(ti, o)?;
    }
    graph.set_soft_ownership();
    graph.set_tenants();
    Ok(graph)
}

/// Restores a backup directory onto the target: objects already there (by namespace/name) are
/// kept, the others created in owner order with UIDs rewritten; then Clusters and
/// ClusterClasses are unpaused.
pub async fn from_directory(
    target: &Cluster,
    dir: &Path,
    parallelism: usize,
) -> Result<(Plan, ExecReport)> {
    let objects = read_directory(dir)?;
    let types = graph::discover_types(target).await?;
    let graph = graph_from_objects(types, objects)?;
    let plan = plan::build(&graph);
    let report = Executor::new(
        &plan,
        None,
        target,
        None,
        String::new(),
        ExecOptions {
            parallelism,
            restore: true,
            ..ExecOptions::default()
        },
    )
    .run()
    .await?;
    Ok((plan, report))
}
