//! A whole move, journaled: pre-checks, pause, wait for block-move, plan, execute — and resume
//! of an interrupted run of the same move (same source, target and namespace) from its journal.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::checks;
use crate::cluster::{Backoff, Cluster, RequestStats};
use crate::error::{Error, Result, run_all};
use crate::execute::{ExecOptions, ExecReport, Executor, FIELD_MANAGER};
use crate::graph::{self, BLOCK_MOVE_ANNOTATION, CAPI_GROUP, Graph, ObjectId, PAUSED_ANNOTATION};
use crate::journal::{self, Journal, Record};
use crate::plan::{self, Plan};

/// Options of a move.
#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// Namespace to move (`None`: all namespaces).
    pub namespace: Option<String>,
    /// Directory of the journal.
    pub state_dir: PathBuf,
    /// Requests in flight per layer.
    pub parallelism: usize,
    /// How long to wait for `block-move` annotations to go (clusterctl: ≈2 min per object).
    pub block_move_timeout: Duration,
}

impl Default for MoveOptions {
    fn default() -> Self {
        MoveOptions {
            namespace: None,
            state_dir: PathBuf::from(".manage/move"),
            parallelism: 32,
            block_move_timeout: Duration::from_secs(120),
        }
    }
}

/// What a move did, with timings and request counts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MoveReport {
    /// Objects in the plan.
    pub objects: usize,
    /// Size of each layer.
    pub layers: Vec<usize>,
    /// Whether an interrupted run was resumed.
    pub resumed: bool,
    /// What the executor did.
    pub exec: ExecReport,
    /// Requests to the source.
    pub source_requests: RequestStats,
    /// Requests to the target.
    pub target_requests: RequestStats,
    /// Wall time.
    pub seconds: f64,
    /// The journal file (archived as `.done` after success).
    pub journal: PathBuf,
}

/// Discovers and plans without changing anything (the paused check still runs).
pub async fn dry_run(source: &Cluster, namespace: Option<&str>) -> Result<Plan> {
    let graph = graph::discover(source, namespace).await?;
    checks::check_not_paused(&graph, &Default::default())?;
    Ok(plan::build(&graph))
}

fn pause_targets(graph: &Graph) -> Vec<(ObjectId, usize, bool)> {
    let mut out = Vec::new();
    for (kind, is_cluster) in [("Cluster", true), ("ClusterClass", false)] {
        for n in graph.nodes_of(CAPI_GROUP, kind) {
            if !n.tenants.is_empty() || n.force_move {
                out.push((n.id.clone(), n.type_index.unwrap_or_default(), is_cluster));
            }
        }
    }
    out
}

/// Pauses the source's Clusters (`spec.paused`) and ClusterClasses (annotation) of the graph;
/// already paused ones are skipped.
pub async fn pause(source: &Cluster, graph: &Graph, parallelism: usize) -> Result<()> {
    set_paused(source, graph, parallelism, true)
        .await
        .map(|_| ())
}

/// Undoes [`pause`] (used by `--to-directory`).
pub async fn unpause(source: &Cluster, graph: &Graph, parallelism: usize) -> Result<()> {
    set_paused(source, graph, parallelism, false)
        .await
        .map(|_| ())
}

async fn set_paused(
    source: &Cluster,
    graph: &Graph,
    parallelism: usize,
    paused: bool,
) -> Result<Vec<(String, serde_json::Value)>> {
    let todo: Vec<(ObjectId, usize, bool)> = pause_targets(graph)
        .into_iter()
        .filter(|(id, _, _)| {
            let obj = graph.nodes.get(&id.uid).and_then(|n| n.object.as_ref());
            // Pausing skips what is already paused; unpausing always patches (the graph may
            // hold the objects as they were before the pause).
            !paused || obj.is_none_or(|o| !checks::is_paused(o))
        })
        .collect();
    let results: Vec<Result<(String, serde_json::Value)>> = stream::iter(todo)
        .map(|(id, ti, is_cluster)| async move {
            let t = &graph.types[ti];
            let api = t.api(source.client().clone(), Some(&id.namespace));
            let patch = match (is_cluster, paused) {
                (true, true) => json!({"spec": {"paused": true}}),
                (true, false) => json!({"spec": {"paused": null}}),
                (false, true) => json!({"metadata": {"annotations": {PAUSED_ANNOTATION: ""}}}),
                (false, false) => json!({"metadata": {"annotations": {PAUSED_ANNOTATION: null}}}),
            };
            source
                .call(
                    if paused { "pause" } else { "unpause" },
                    || id.to_string(),
                    Backoff::WRITE,
                    true,
                    |_| {
                        let api = api.clone();
                        let patch = patch.clone();
                        let name = id.name.clone();
                        async move {
                            let pp = PatchParams {
                                field_manager: Some(FIELD_MANAGER.into()),
                                ..PatchParams::default()
                            };
                            api.patch(&name, &pp, &Patch::Merge(&patch)).await
                        }
                    },
                )
                .await
                .map(|o| (id.uid.clone(), serde_json::to_value(o).unwrap_or_default()))
        })
        .buffer_unordered(parallelism.max(1))
        .collect()
        .await;
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(o) => objects.push(o),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(Error::Aggregate {
            step: if paused {
                "pausing the source"
            } else {
                "unpausing the source"
            },
            errors,
        })
    }
}

/// Waits (all at once, not one after another as upstream) until no object that had
/// `block-move` at discovery still has it.
pub async fn wait_block_move(source: &Cluster, graph: &Graph, timeout: Duration) -> Result<()> {
    let blocked: Vec<&graph::Node> = graph
        .nodes
        .values()
        .filter(|n| n.blocking_move && !n.is_virtual && (!n.tenants.is_empty() || n.force_move))
        .collect();
    run_all(
        "waiting for block-move",
        64,
        stream::iter(blocked).map(|n| async move {
            let Some(t) = graph.type_of(n) else {
                return Ok(());
            };
            let start = Instant::now();
            let mut delay = Duration::from_secs(5);
            loop {
                let ns = (!n.id.namespace.is_empty()).then_some(n.id.namespace.as_str());
                match graph::get_object(source, t, ns, &n.id.name).await? {
                    None => return Ok(()),
                    Some(o)
                        if !graph::annotations(&o)
                            .is_some_and(|a| a.contains_key(BLOCK_MOVE_ANNOTATION)) =>
                    {
                        return Ok(());
                    }
                    Some(_) => {}
                }
                if start.elapsed() >= timeout {
                    return Err(Error::BlockMove {
                        object: n.id.to_string(),
                        secs: timeout.as_secs(),
                    });
                }
                tracing::info!(object = %n.id, "waiting for block-move to be removed");
                tokio::time::sleep(delay.min(timeout.saturating_sub(start.elapsed()))).await;
                delay = delay.mul_f32(1.5);
            }
        }),
    )
    .await
}

/// Moves the objects from `source` to `target`, journaled under `opts.state_dir`; resumes an
/// interrupted run of the same move.
pub async fn move_objects(
    source: &Cluster,
    target: &Cluster,
    opts: &MoveOptions,
) -> Result<MoveReport> {
    let start = Instant::now();
    let ns = opts.namespace.as_deref();
    let (source_id, target_id) = tokio::try_join!(source.identity(), target.identity())?;
    let path = journal::path_for(&opts.state_dir, &source_id, &target_id, ns);
    let mut journal = Journal::open(&path)?;
    // A finished journal that was not archived, or none: start afresh.
    let resumed = !journal.state.done && journal.state.run.is_some();
    let run = match journal.state.run.clone() {
        Some(r) if resumed => {
            tracing::info!(journal = %path.display(), "resuming an interrupted move");
            r
        }
        _ => journal.begin(&source.url, &target.url, ns)?,
    };
    let plan = match journal.state.plan.clone() {
        Some(p) => p,
        None => {
            let (sp, tp) =
                tokio::try_join!(graph::list_providers(source), graph::list_providers(target))?;
            checks::check_providers(&sp, &tp)?;
            let graph = graph::discover(source, ns).await?;
            checks::check_not_paused(&graph, &journal.state.paused)?;
            checks::check_provisioned(&graph)?;
            let objects: Vec<ObjectId> = pause_targets(&graph)
                .into_iter()
                .map(|(id, _, _)| id)
                .collect();
            journal.push(Record::Pausing { objects }, true)?;
            let mut graph = graph;
            for (uid, obj) in set_paused(source, &graph, opts.parallelism, true).await? {
                set_object(&mut graph, &uid, obj);
            }
            wait_block_move(source, &graph, opts.block_move_timeout).await?;
            // Objects that carried block-move are read again once it is gone; the others are as
            // discovered, with the pause answers in place (paused controllers change nothing).
            let blocking: Vec<(String, usize, ObjectId)> = graph
                .nodes
                .values()
                .filter(|n| n.blocking_move && !n.is_virtual)
                .filter_map(|n| n.type_index.map(|t| (n.id.uid.clone(), t, n.id.clone())))
                .collect();
            for (uid, ti, id) in blocking {
                let t = graph.types[ti].clone();
                let ns = (!id.namespace.is_empty()).then_some(id.namespace.as_str());
                if let Some(obj) = graph::get_object(source, &t, ns, &id.name).await? {
                    set_object(&mut graph, &uid, obj);
                }
            }
            let plan = plan::build(&graph);
            journal.push(
                Record::Plan {
                    plan: Box::new(plan.clone()),
                },
                true,
            )?;
            plan
        }
    };
    tracing::info!(
        objects = plan.len(),
        layers = plan.layers.len(),
        "executing the move plan"
    );
    let exec = Executor::new(
        &plan,
        Some(source),
        target,
        Some(&journal),
        run,
        ExecOptions {
            parallelism: opts.parallelism,
            ..ExecOptions::default()
        },
    )
    .run()
    .await?;
    journal.push(Record::Done, true)?;
    journal.archive()?;
    Ok(MoveReport {
        objects: plan.len(),
        layers: plan.layers.iter().map(Vec::len).collect(),
        resumed,
        exec,
        source_requests: source.stats(),
        target_requests: target.stats(),
        seconds: start.elapsed().as_secs_f64(),
        journal: path.with_extension("jsonl.done"),
    })
}

/// Replaces a node's object by a fresher read (keeping the type's apiVersion and kind).
fn set_object(graph: &mut Graph, uid: &str, mut obj: serde_json::Value) {
    if let Some(n) = graph.nodes.get_mut(uid)
        && let Some(old) = &n.object
    {
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), old["apiVersion"].clone());
            m.insert("kind".into(), old["kind"].clone());
        }
        n.object = Some(obj);
    }
}
