//! Move tests against real API servers: the move world of `tests/move-world.sh` (servers `src`
//! and `dst` with the CAPI + clusterctl CRDs and no Cluster API managers, so the provisioned
//! status the fixtures set through the status subresource stays as set) and the real
//! `clusterctl` of the test world as the oracle. Without that world every test prints
//! `world absent: <why>` and returns (fails with WORLD_REQUIRED=1).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube_ops::admission::delete_admission;
use kube_ops::cluster::{Cluster, ClusterRef};
use kube_ops::fixtures::{FleetSpec, create_fleet};
use kube_ops::{MoveOptions, MoveReport, dry_run, graph, move_objects};
use serde_json::{Value, json};
use test_world::World;

/// Tests that use the fault proxies run one at a time.
static PROXY_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Serialises starting the move world from several tests.
static START_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn move_world() -> Option<World> {
    let state = std::env::var_os("MOVE_WORLD_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/manage-move-world"));
    let needs = [
        "WORLD_KUBECONFIG_SRC",
        "WORLD_KUBECONFIG_DST",
        "WORLD_CLUSTERCTL",
    ];
    let load = || World::load_from(&state).and_then(|w| w.check(&needs).map(|()| w));
    let mut loaded = load();
    if loaded.is_err() && test_world::world_required() {
        // CI (WORLD_REQUIRED=1) has the main world's binaries: start the move world from them.
        let _one = START_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loaded = load();
        if loaded.is_err() {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/move-world.sh");
            let status = std::process::Command::new(&script)
                .arg("up")
                .env("MOVE_WORLD_STATE", &state)
                .status();
            println!("started the move world: {status:?}");
            loaded = load();
        }
    }
    match loaded {
        Ok(w) => Some(w),
        Err(why) if test_world::world_required() => {
            panic!("world absent: {why} (start it with crates/kube-ops/tests/move-world.sh up)")
        }
        Err(why) => {
            println!("world absent: {why} (crates/kube-ops/tests/move-world.sh up)");
            None
        }
    }
}

async fn connect(path: &Path, role: &'static str) -> Cluster {
    Cluster::connect(
        &ClusterRef {
            kubeconfig: path.to_path_buf(),
            context: None,
        },
        role,
    )
    .await
    .expect("connect")
}

fn kubeconfig(w: &World, server: &str) -> PathBuf {
    w.kubeconfig(server).expect("kubeconfig")
}

fn proxy_kubeconfig(w: &World, server: &str) -> PathBuf {
    PathBuf::from(
        w.var(&format!(
            "WORLD_FAULTPROXY_KUBECONFIG_{}",
            server.to_uppercase()
        ))
        .expect("fault proxy kubeconfig"),
    )
}

fn toxiproxy_kubeconfig(w: &World, server: &str) -> PathBuf {
    PathBuf::from(
        w.var(&format!(
            "WORLD_TOXIPROXY_KUBECONFIG_{}",
            server.to_uppercase()
        ))
        .expect("toxiproxy kubeconfig"),
    )
}

fn proxy_control(w: &World, server: &str) -> String {
    w.var(&format!(
        "WORLD_FAULTPROXY_CONTROL_{}",
        server.to_uppercase()
    ))
    .expect("fault proxy control")
    .to_owned()
}

async fn fleet(c: &Cluster, namespaces: &[String], clusters: usize, identity: &str) -> usize {
    create_fleet(
        c,
        &FleetSpec {
            namespaces: namespaces.to_vec(),
            clusters_per_namespace: clusters,
            identity: identity.into(),
            parallelism: 16,
            finalizers: true,
        },
    )
    .await
    .expect("fleet")
}

/// Our move of namespace `ns` from `src` to `dst`, journaled under `state`.
async fn move_namespace(
    src: &Cluster,
    dst: &Cluster,
    ns: &str,
    state: &Path,
) -> kube_ops::Result<MoveReport> {
    move_objects(
        src,
        dst,
        &MoveOptions {
            namespace: Some(ns.to_owned()),
            state_dir: state.to_path_buf(),
            ..MoveOptions::default()
        },
    )
    .await
}

/// Every object of the move types in `ns`, normalized: kind/name → labels, annotations, body
/// (all top-level fields but metadata and status), owner references by kind and name.
async fn snapshot(c: &Cluster, ns: &str) -> BTreeMap<String, Value> {
    let types = graph::discover_types(c).await.expect("types");
    let mut out = BTreeMap::new();
    for t in types.iter().filter(|t| t.namespaced) {
        for o in graph::list_all(c, t, Some(ns)).await.expect("list") {
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let body: serde_json::Map<String, Value> = o
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut owners: Vec<Value> = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| {
                    json!([
                        r["kind"],
                        r["name"],
                        r.get("controller"),
                        r.get("blockOwnerDeletion")
                    ])
                })
                .collect();
            owners.sort_by_key(|v| v.to_string());
            let empty = json!({});
            let managed = managed_fields(&o);
            out.insert(
                format!("{} {name}", t.kind),
                json!({
                    "labels": o.pointer("/metadata/labels").unwrap_or(&empty),
                    "annotations": o.pointer("/metadata/annotations").unwrap_or(&empty),
                    "finalizers": o.pointer("/metadata/finalizers"),
                    "body": body,
                    "owners": owners,
                    "managedFields": managed,
                }),
            );
        }
    }
    out
}

/// managedFields as a sorted list of entries without `time` (the server orders entries by it),
/// the keys of `f:ownerReferences` (which name owner UIDs) collapsed to one `k:owner`: clusterctl
/// restores the source's keys, stale on the target; [`assert_owner_uids_consistent`] checks ours.
fn managed_fields(o: &Value) -> Vec<String> {
    let mut out: Vec<String> = o
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let mut e = e.clone();
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
            if let Some(refs) = e
                .pointer_mut("/fieldsV1/f:metadata/f:ownerReferences")
                .and_then(Value::as_object_mut)
            {
                *refs = std::mem::take(refs)
                    .into_iter()
                    .map(|(k, v)| match k.starts_with("k:") {
                        true => ("k:owner".to_owned(), v),
                        false => (k, v),
                    })
                    .collect();
            }
            e.to_string()
        })
        .collect();
    out.sort();
    out
}

/// Owner UIDs named by the keys of `f:ownerReferences` in an object's managedFields.
fn managed_owner_uids(o: &Value) -> Vec<String> {
    o.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.pointer("/fieldsV1/f:metadata/f:ownerReferences"))
        .filter_map(Value::as_object)
        .flat_map(|refs| refs.keys())
        .filter_map(|k| k.strip_prefix("k:"))
        .filter_map(|k| serde_json::from_str::<Value>(k).ok())
        .filter_map(|k| k["uid"].as_str().map(str::to_owned))
        .collect()
}

/// `before` without managedFields (clusterctl's restore from a directory creates everything
/// under its own manager).
fn without_managed_fields(before: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    before
        .iter()
        .map(|(k, v)| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("managedFields");
            }
            (k.clone(), v)
        })
        .collect()
}

/// Every ownerReference on `c` in `ns` names an existing object by uid, kind and name, and the
/// managedFields name no other owner UIDs (none left over from the source) when `managed`.
async fn assert_owner_uids_consistent(c: &Cluster, ns: &str, managed: bool) {
    let types = graph::discover_types(c).await.expect("types");
    let mut by_uid: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut refs: Vec<(String, String, String, String)> = Vec::new();
    for t in &types {
        let scope = if t.namespaced { Some(ns) } else { None };
        for o in graph::list_all(c, t, scope).await.expect("list") {
            let uid = o
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            by_uid.insert(uid, (t.kind.clone(), name.clone()));
            let current: Vec<&str> = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| r["uid"].as_str())
                .collect();
            for stale in managed_owner_uids(&o).into_iter().filter(|_| managed) {
                assert!(
                    current.contains(&stale.as_str()),
                    "{} {name} in {ns}: managedFields name owner uid {stale}, not an ownerReference of it",
                    t.kind
                );
            }
            for r in o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                refs.push((
                    format!("{} {name}", t.kind),
                    r["uid"].as_str().unwrap_or_default().to_owned(),
                    r["kind"].as_str().unwrap_or_default().to_owned(),
                    r["name"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    for (who, uid, kind, name) in refs {
        assert_eq!(
            by_uid.get(&uid),
            Some(&(kind.clone(), name.clone())),
            "{who} in {ns}: ownerReference {kind} {name} uid {uid} does not resolve on the target"
        );
    }
}

/// Objects of the move types left in `ns` but for the namespace's own root CA ConfigMap.
async fn leftovers(c: &Cluster, ns: &str) -> Vec<String> {
    snapshot(c, ns)
        .await
        .into_keys()
        .filter(|k| k != "ConfigMap kube-root-ca.crt")
        .collect()
}

fn clusterctl_move(w: &World, ns: &str) {
    let mut cmd = w.clusterctl().expect("clusterctl");
    cmd.arg("move")
        .arg("--kubeconfig")
        .arg(kubeconfig(w, "src"))
        .arg("--to-kubeconfig")
        .arg(kubeconfig(w, "dst"))
        .args(["-n", ns]);
    test_world::run(&mut cmd).expect("clusterctl move");
}

fn kustomization(ns: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: fleet, namespace: {ns}}}\nspec: {{interval: 10m, prune: true, path: ./clusters, sourceRef: {{kind: GitRepository, name: fleet}}}}\n"
    )
}

/// A HelmRelease (its CRD only: no helm-controller here; suspension is a field on the source).
fn helm_release(ns: &str) -> String {
    format!(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {{name: addons, namespace: {ns}}}\nspec: {{interval: 10m, chart: {{spec: {{chart: addons, sourceRef: {{kind: HelmRepository, name: charts}}}}}}}}\n"
    )
}

/// Labels c0's Cluster as applied by Kustomization `fleet` and c1's as installed by HelmRelease
/// `addons` (so ours must suspend both).
fn flux_label(w: &World, ns: &str) {
    for (cluster, label, name) in [
        ("c0", "kustomize.toolkit.fluxcd.io", "fleet"),
        ("c1", "helm.toolkit.fluxcd.io", "addons"),
    ] {
        let mut cmd = w.kubectl("src").expect("kubectl");
        cmd.args(["-n", ns, "label", "cluster", cluster])
            .arg(format!("{label}/name={name}"))
            .arg(format!("{label}/namespace={ns}"));
        test_world::run(&mut cmd).expect("label");
    }
}

/// `spec.suspend` of a Flux object on the source.
fn suspend_on_source(w: &World, ns: &str, kind: &str, name: &str) -> Option<Value> {
    w.kubectl_json("src", &["-n", ns, "get", kind, name])
        .expect("flux object")
        .pointer("/spec/suspend")
        .cloned()
}

/// clusterctl's result and ours are the same once the namespace names in ours (`renames`: ours
/// → theirs) are replaced.
fn assert_same_but_names(
    theirs: &BTreeMap<String, Value>,
    ours: &BTreeMap<String, Value>,
    renames: &[(&str, &str)],
) {
    let ours_renamed: BTreeMap<String, Value> = ours
        .iter()
        .map(|(k, v)| {
            let mut text = v.to_string();
            for (from, to) in renames {
                text = text.replace(from, to);
            }
            (
                k.clone(),
                serde_json::from_str(&text).unwrap_or(Value::Null),
            )
        })
        .collect();
    let missing: Vec<&String> = theirs
        .keys()
        .filter(|k| !ours_renamed.contains_key(*k))
        .collect();
    let extra: Vec<&String> = ours_renamed
        .keys()
        .filter(|k| !theirs.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "only clusterctl: {missing:?}; only ours: {extra:?}"
    );
    for (k, v) in theirs {
        assert_eq!(
            Some(v),
            ours_renamed.get(k),
            "{k} differs between clusterctl and ours ({renames:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oracle_clusterctl_and_ours_leave_the_same_target_and_an_empty_source() {
    let Some(w) = move_world() else { return };
    let src = connect(&kubeconfig(&w, "src"), "source").await;
    let dst = connect(&kubeconfig(&w, "dst"), "target").await;
    let base = test_world::unique_name("oracle");
    let theirs: Vec<String> = (0..2).map(|i| format!("{base}-ctl{i}")).collect();
    let ours: Vec<String> = (0..2).map(|i| format!("{base}-our{i}")).collect();
    let identity = format!("{base}-id");
    let n = fleet(&src, &theirs, 3, &identity).await;
    assert_eq!(n, fleet(&src, &ours, 3, &identity).await);
    for ns in theirs.iter().chain(&ours) {
        w.apply_yaml("src", &kustomization(ns))
            .expect("kustomization");
        w.apply_yaml("src", &helm_release(ns))
            .expect("helm release");
        flux_label(&w, ns);
    }
    let before: Vec<_> =
        futures_join(theirs.iter().chain(&ours).map(|ns| snapshot(&src, ns))).await;
    assert_eq!(before[0].len(), before[2].len());

    for ns in &theirs {
        clusterctl_move(&w, ns);
    }
    let state = tempfile::tempdir().expect("state");
    for ns in &ours {
        let report = move_namespace(&src, &dst, ns, state.path())
            .await
            .expect("our move");
        println!(
            "{ns}: {}",
            serde_json::to_string(&report).unwrap_or_default()
        );
        assert_eq!(
            report.exec.flux_suspended, 2,
            "the Kustomization applying c0 and the HelmRelease installing c1 are suspended"
        );
    }
    for (t, o) in theirs.iter().zip(&ours) {
        let target_theirs = snapshot(&dst, t).await;
        let target_ours = snapshot(&dst, o).await;
        assert_same_but_names(&target_theirs, &target_ours, &[(o.as_str(), t.as_str())]);
        assert!(
            target_theirs.len() >= n / 2,
            "every generated object of {t} is on the target"
        );
        assert_owner_uids_consistent(&dst, o, true).await;
        // clusterctl restores the source's managedFields, owner UIDs and all.
        assert_owner_uids_consistent(&dst, t, false).await;
        // Sources: only what never moves is left (kube-root-ca.crt of the root CA publisher; the
        // Flux Kustomization is not a move type).
        assert_eq!(
            leftovers(&src, t).await,
            Vec::<String>::new(),
            "clusterctl left objects in {t}"
        );
        assert_eq!(
            leftovers(&src, o).await,
            Vec::<String>::new(),
            "ours left objects in {o}"
        );
        assert_eq!(
            suspend_on_source(&w, o, "kustomization", "fleet"),
            Some(json!(true)),
            "suspended on the source"
        );
        assert_eq!(
            suspend_on_source(&w, o, "helmrelease", "addons"),
            Some(json!(true)),
            "HelmRelease suspended on the source"
        );
        assert_eq!(
            suspend_on_source(&w, t, "helmrelease", "addons"),
            None,
            "clusterctl suspends nothing"
        );
    }
    let id = w
        .kubectl_json("dst", &["get", "devclusteridentity", &identity])
        .expect("identity on the target");
    assert!(id.pointer("/metadata/uid").is_some());
    w.kubectl_json("src", &["get", "devclusteridentity", &identity])
        .expect("global identity stays on the source");
}

async fn futures_join<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in fs {
        out.push(f.await);
    }
    out
}

/// Points Cluster c0 of `ns` at the ClusterClass `cc` of namespace `class_ns`.
fn use_class_from(w: &World, ns: &str, class_ns: &str) {
    let patch = json!({"spec": {"topology": {"classRef": {"name": "cc", "namespace": class_ns}}}});
    let mut cmd = w.kubectl("src").expect("kubectl");
    cmd.args(["-n", ns, "patch", "cluster", "c0", "--type", "merge", "-p"])
        .arg(patch.to_string());
    test_world::run(&mut cmd).expect("patch classRef");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_namespace_cluster_class_moves_like_clusterctl() {
    let Some(w) = move_world() else { return };
    let src = connect(&kubeconfig(&w, "src"), "source").await;
    let dst = connect(&kubeconfig(&w, "dst"), "target").await;
    let base = test_world::unique_name("xns");
    let (theirs, ours) = (format!("{base}-ctl"), format!("{base}-our"));
    let (theirs_cls, ours_cls) = (format!("{theirs}-cls"), format!("{ours}-cls"));
    fleet(
        &src,
        &[theirs.clone(), ours.clone()],
        2,
        &format!("{base}-id"),
    )
    .await;
    // The class namespaces hold only the shared objects (ClusterClass cc and its templates).
    fleet(
        &src,
        &[theirs_cls.clone(), ours_cls.clone()],
        0,
        &format!("{base}-id2"),
    )
    .await;
    use_class_from(&w, &theirs, &theirs_cls);
    use_class_from(&w, &ours, &ours_cls);
    let class_before = snapshot(&src, &ours_cls).await;

    clusterctl_move(&w, &theirs);
    let state = tempfile::tempdir().expect("state");
    move_namespace(&src, &dst, &ours, state.path())
        .await
        .expect("our move");

    let renames = [(ours.as_str(), theirs.as_str())];
    assert_same_but_names(
        &snapshot(&dst, &theirs).await,
        &snapshot(&dst, &ours).await,
        &renames,
    );
    // clusterctl leaves the kept class paused on the source; ours unpauses it (the Clusters left
    // there still use it).
    let kept_theirs = snapshot(&src, &theirs_cls).await;
    assert_eq!(
        kept_theirs["ClusterClass cc"].pointer("/annotations/cluster.x-k8s.io~1paused"),
        Some(&json!("")),
        "clusterctl leaves the class paused on the source"
    );
    let class_theirs = snapshot(&dst, &theirs_cls).await;
    let class_ours = snapshot(&dst, &ours_cls).await;
    assert_same_but_names(&class_theirs, &class_ours, &renames);
    for k in [
        "ClusterClass cc",
        "DevClusterTemplate cc-infra",
        "KubeadmControlPlaneTemplate cc-cp",
        "KubeadmConfigTemplate cc-md",
        "DevMachineTemplate cc-md",
    ] {
        assert!(
            class_ours.contains_key(k),
            "{k} of the other namespace is on the target"
        );
        assert_eq!(
            snapshot(&src, &ours_cls).await.get(k),
            class_before.get(k),
            "{k} stays on the source as it was: not deleted, not left paused"
        );
    }
    assert_eq!(leftovers(&src, &ours).await, Vec::<String>::new());
    assert_eq!(leftovers(&src, &theirs).await, Vec::<String>::new());
    assert_owner_uids_consistent(&dst, &ours, true).await;
    assert_owner_uids_consistent(&dst, &ours_cls, true).await;
}

/// The child of the crash test: one move with the parameters from the environment, killed by the
/// parent at chosen points. Without `MOVE_CHILD_NS` it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_child() {
    let Ok(ns) = std::env::var("MOVE_CHILD_NS") else {
        return;
    };
    let var = |k: &str| PathBuf::from(std::env::var(k).unwrap_or_default());
    let src = connect(&var("MOVE_CHILD_FROM"), "source").await;
    let dst = connect(&var("MOVE_CHILD_TO"), "target").await;
    let opts = MoveOptions {
        namespace: Some(ns),
        state_dir: var("MOVE_CHILD_STATE"),
        parallelism: 8,
        ..MoveOptions::default()
    };
    match move_objects(&src, &dst, &opts).await {
        Ok(r) => println!(
            "child done: {}",
            serde_json::to_string(&r).unwrap_or_default()
        ),
        Err(e) => {
            eprintln!("child failed: {e}");
            std::process::exit(3);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum KillAt {
    Pausing,
    Plan,
    Created(usize),
    Deleted(usize),
    Unpaused,
}

/// Progress of the move so far, from the journal lines of every run.
fn progress(state: &Path) -> (bool, bool, usize, usize, bool) {
    let mut text = String::new();
    for e in std::fs::read_dir(state).into_iter().flatten().flatten() {
        let p = e.path();
        if p.to_string_lossy().ends_with(".jsonl") {
            text.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    let count = |t: &str| text.matches(&format!("{{\"t\":\"{t}\"")).count();
    (
        count("pausing") > 0,
        count("plan") > 0,
        count("created"),
        count("deleted"),
        count("unpaused") > 0,
    )
}

fn reached(at: KillAt, p: (bool, bool, usize, usize, bool)) -> bool {
    match at {
        KillAt::Pausing => p.0,
        KillAt::Plan => p.1,
        KillAt::Created(n) => p.2 >= n,
        KillAt::Deleted(n) => p.3 >= n,
        KillAt::Unpaused => p.4,
    }
}

fn curl(args: &[&str]) -> String {
    std::process::Command::new("curl")
        .args(["-fsS", "-m", "5"])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn add_fault(control: &str, rule: &Value) {
    curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &rule.to_string(),
        &format!("{control}/faults"),
    ]);
}

fn clear_faults(control: &str) {
    curl(&["-X", "DELETE", &format!("{control}/faults")]);
}

/// Puts Cluster API's Machine finalizer back on every Machine of `ns` on the source; returns
/// how many there were.
fn readd_machine_finalizers(w: &World, ns: &str) -> usize {
    let list = w
        .kubectl_json("src", &["-n", ns, "get", "machines"])
        .expect("machines");
    let names: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    for name in &names {
        let mut cmd = w.kubectl("src").expect("kubectl");
        cmd.args(["-n", ns, "patch", "machine", name, "--type", "merge", "-p"])
            .arg(json!({"metadata": {"finalizers": ["machine.cluster.x-k8s.io"]}}).to_string());
        test_world::run(&mut cmd).expect("re-add finalizer");
    }
    names.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_many_points_then_rerun_ends_consistent() {
    let Some(w) = move_world() else { return };
    if w.var("WORLD_FAULTPROXY_CONTROL_SRC").is_none() {
        println!("world absent: no fault proxies in the move world");
        return;
    }
    let _one = PROXY_LOCK.lock().await;
    let src = connect(&kubeconfig(&w, "src"), "source").await;
    let dst = connect(&kubeconfig(&w, "dst"), "target").await;
    let ns = test_world::unique_name("crash");
    let n = fleet(&src, std::slice::from_ref(&ns), 4, &format!("{ns}-id")).await;
    let before = snapshot(&src, &ns).await;
    let state = tempfile::tempdir().expect("state");
    let mut points = vec![KillAt::Pausing, KillAt::Plan];
    points.extend((1..=14).map(|k| KillAt::Created(k * n / 15)));
    points.extend((1..=6).map(KillAt::Deleted));
    points.push(KillAt::Unpaused);
    let exe = std::env::current_exe().expect("test binary");
    // With MANAGE_BIN (a built `manage`), the killed process is `manage move` itself;
    // otherwise this test binary running the same library call.
    let manage = std::env::var_os("MANAGE_BIN").map(PathBuf::from);
    // Through the HTTP fault proxy (503 cuts) or through toxiproxy (TCP cuts).
    let spawn = |tcp: bool| {
        let (from, to) = if tcp {
            (
                toxiproxy_kubeconfig(&w, "src"),
                toxiproxy_kubeconfig(&w, "dst"),
            )
        } else {
            (proxy_kubeconfig(&w, "src"), proxy_kubeconfig(&w, "dst"))
        };
        let mut cmd = match &manage {
            Some(bin) => {
                let mut c = std::process::Command::new(bin);
                c.arg("move")
                    .arg("--from")
                    .arg(&from)
                    .arg("--to")
                    .arg(&to)
                    .args(["-n", &ns, "--parallel", "8", "--state-dir"])
                    .arg(state.path());
                c
            }
            None => {
                let mut c = std::process::Command::new(&exe);
                c.args([
                    "--exact",
                    "crash_child",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ]);
                c
            }
        };
        cmd.env("MOVE_CHILD_NS", &ns)
            .env("MOVE_CHILD_FROM", &from)
            .env("MOVE_CHILD_TO", &to)
            .env("MOVE_CHILD_STATE", state.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn child")
    };
    let toxi = w.var("WORLD_TOXIPROXY_API").expect("toxiproxy").to_owned();
    let toxi_proxy = |server: &str, enabled: bool| {
        curl(&[
            "-X",
            "POST",
            &format!("{toxi}/proxies/apiserver-{server}"),
            "-d",
            &json!({ "enabled": enabled }).to_string(),
        ]);
    };
    let (mut kills, mut cuts, mut tcp_cuts, mut readded) = (0, 0, 0, 0);
    for (i, at) in points.iter().enumerate() {
        // Every third point cuts a server off before the kill: alternately every request
        // answered 503 (HTTP fault proxy) and the TCP connections closed and refused (toxiproxy).
        let cut = i % 3 == 2;
        let tcp = cut && i % 2 == 1;
        let server = if i % 4 < 2 { "src" } else { "dst" };
        let mut child = spawn(tcp);
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if reached(*at, progress(state.path())) {
                if cut {
                    if tcp {
                        toxi_proxy(server, false);
                        tcp_cuts += 1;
                    } else {
                        add_fault(&proxy_control(&w, server), &json!({"status": 503}));
                    }
                    // Kill while the move retries against the cut-off server.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    cuts += 1;
                } else {
                    // Land inside a request or a layer, not only on journal boundaries.
                    tokio::time::sleep(Duration::from_millis((i as u64 * 7) % 23)).await;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let _ = child.kill();
                kills += 1;
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "child stuck before {at:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _ = child.wait();
        for server in ["src", "dst"] {
            clear_faults(&proxy_control(&w, server));
            toxi_proxy(server, true);
        }
        println!(
            "kill point {i} {at:?}: progress {:?}",
            progress(state.path())
        );
        if matches!(at, KillAt::Deleted(1)) {
            // Every object is marked by now. A controller that ignores the pause puts back the
            // finalizers the marks dropped: the delete-collections cannot remove those Machines;
            // the last pass must.
            readded += readd_machine_finalizers(&w, &ns);
        }
    }
    assert!(
        readded > 0,
        "finalizers were put back on some source Machines"
    );
    let status = spawn(false).wait().expect("final run");
    assert!(status.success(), "the final rerun finishes the move");
    println!(
        "{kills} kills ({cuts} with a server cut off, {tcp_cuts} of them at TCP level), {} objects",
        before.len()
    );
    assert!(kills >= 20, "at least 20 kill points were hit, got {kills}");
    assert!(tcp_cuts >= 2, "TCP-level cuts happened, got {tcp_cuts}");
    assert_eq!(
        leftovers(&src, &ns).await,
        Vec::<String>::new(),
        "nothing left on the source"
    );
    let after = snapshot(&dst, &ns).await;
    for (k, v) in &before {
        if k == "ConfigMap kube-root-ca.crt" {
            continue;
        }
        assert_eq!(
            after.get(k),
            Some(v),
            "{k} on the target as it was on the source"
        );
    }
    assert_eq!(
        after.len(),
        before.len(),
        "every object exactly once on the target"
    );
    assert_owner_uids_consistent(&dst, &ns, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn completes_with_ten_percent_injected_5xx_and_timeouts() {
    let Some(w) = move_world() else { return };
    if w.var("WORLD_FAULTPROXY_CONTROL_SRC").is_none() {
        println!("world absent: no fault proxies in the move world");
        return;
    }
    let _one = PROXY_LOCK.lock().await;
    let direct = connect(&kubeconfig(&w, "src"), "source").await;
    let ns = test_world::unique_name("faults");
    fleet(&direct, std::slice::from_ref(&ns), 4, &format!("{ns}-id")).await;
    let before = snapshot(&direct, &ns).await;
    let mut src = connect(&proxy_kubeconfig(&w, "src"), "source").await;
    let mut dst = connect(&proxy_kubeconfig(&w, "dst"), "target").await;
    src.request_timeout = Duration::from_secs(2);
    dst.request_timeout = Duration::from_secs(2);
    let controls = [proxy_control(&w, "src"), proxy_control(&w, "dst")];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let injector = {
        let stop = stop.clone();
        let controls = controls.clone();
        tokio::task::spawn_blocking(move || {
            // Every 10th request on each server fails: 503, 500, 504, 429, or hangs past the
            // client's timeout (delayed 3 s), in turn.
            let total = |c: &str| -> u64 {
                let stats: Value =
                    serde_json::from_str(&curl(&[&format!("{c}/faults")])).unwrap_or(Value::Null);
                stats.get("requests").and_then(Value::as_u64).unwrap_or(0)
            };
            // The proxies count every request since they started: begin from now.
            let mut last = [total(&controls[0]), total(&controls[1])];
            let mut injected = 0u64;
            let kinds = [
                json!({"status": 503}),
                json!({"status": 500}),
                json!({"status": 504}),
                json!({"status": 429}),
                json!({"delay_ms": 3000}),
            ];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, c) in controls.iter().enumerate() {
                    let total = total(c);
                    while total >= last[i] + 10 {
                        last[i] += 10;
                        let mut rule = kinds[(injected % 5) as usize].clone();
                        rule["count"] = json!(1);
                        add_fault(c, &rule);
                        injected += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            injected
        })
    };
    let state = tempfile::tempdir().expect("state");
    let result = move_namespace(&src, &dst, &ns, state.path()).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let injected = injector.await.unwrap_or(0);
    for c in &controls {
        let stats: Value =
            serde_json::from_str(&curl(&[&format!("{c}/faults")])).unwrap_or(Value::Null);
        println!(
            "fault proxy {c}: {} requests, {} injected answers",
            stats["requests"], stats["injected"]
        );
        clear_faults(c);
    }
    let report = result.expect("the move completes despite the faults");
    println!(
        "{injected} faults injected; {}",
        serde_json::to_string(&report).unwrap_or_default()
    );
    assert!(injected > 0 && report.source_requests.retries + report.target_requests.retries > 0);
    assert_eq!(leftovers(&direct, &ns).await, Vec::<String>::new());
    let dst_direct = connect(&kubeconfig(&w, "dst"), "target").await;
    let after = snapshot(&dst_direct, &ns).await;
    assert_eq!(after.len(), before.len());
    assert_owner_uids_consistent(&dst_direct, &ns, true).await;
}

fn backup_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("backup dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_have_clusterctls_layout_and_restore_both_ways() {
    let Some(w) = move_world() else { return };
    let src = connect(&kubeconfig(&w, "src"), "source").await;
    let dst = connect(&kubeconfig(&w, "dst"), "target").await;
    let a = test_world::unique_name("backup-a");
    let b = test_world::unique_name("backup-b");
    fleet(&src, &[a.clone(), b.clone()], 2, &format!("{a}-id")).await;
    let (theirs, ours) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let mut cmd = w.clusterctl().expect("clusterctl");
    cmd.args(["move", "--kubeconfig"])
        .arg(kubeconfig(&w, "src"))
        .args(["-n", &a, "--to-directory"])
        .arg(theirs.path());
    test_world::run(&mut cmd).expect("clusterctl move --to-directory");
    kube_ops::backup::to_directory(&src, Some(&a), ours.path(), 8)
        .await
        .expect("our --to-directory");
    assert_eq!(
        backup_files(theirs.path()),
        backup_files(ours.path()),
        "same files"
    );
    // The source is unpaused again after a backup.
    let c0 = w
        .kubectl_json("src", &["-n", &a, "get", "cluster", "c0"])
        .expect("c0");
    assert_eq!(c0.pointer("/spec/paused"), None);

    // clusterctl's backup of A restored by ours; ours of B restored by clusterctl.
    let before_a = snapshot(&src, &a).await;
    kube_ops::backup::from_directory(&dst, theirs.path(), 8)
        .await
        .expect("our --from-directory of clusterctl's backup");
    let after_a = snapshot(&dst, &a).await;
    for (k, v) in &before_a {
        if k != "ConfigMap kube-root-ca.crt" {
            assert_eq!(
                after_a.get(k),
                Some(v),
                "{k} restored from clusterctl's backup"
            );
        }
    }
    assert_owner_uids_consistent(&dst, &a, true).await;
    let ours_b = tempfile::tempdir().expect("dir");
    kube_ops::backup::to_directory(&src, Some(&b), ours_b.path(), 8)
        .await
        .expect("our --to-directory of B");
    let mut cmd = w.clusterctl().expect("clusterctl");
    cmd.args(["move", "--to-kubeconfig"])
        .arg(kubeconfig(&w, "dst"))
        .arg("--from-directory")
        .arg(ours_b.path());
    test_world::run(&mut cmd).expect("clusterctl move --from-directory of our backup");
    let before_b = without_managed_fields(&snapshot(&src, &b).await);
    let after_b = without_managed_fields(&snapshot(&dst, &b).await);
    for (k, v) in &before_b {
        if k != "ConfigMap kube-root-ca.crt" {
            assert_eq!(
                after_b.get(k),
                Some(v),
                "{k} restored by clusterctl from our backup"
            );
        }
    }
    // clusterctl creates with the backup's managedFields, owner UIDs of the source and all.
    assert_owner_uids_consistent(&dst, &b, false).await;
}

/// Deletes the named cluster-scoped objects of `server` when dropped, so a failed test does not
/// leave admission checks behind for the next.
struct Cleanup<'a> {
    w: &'a World,
    server: &'static str,
    objects: Vec<(&'static str, String)>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for (kind, name) in &self.objects {
            if let Ok(mut cmd) = self.w.kubectl(self.server) {
                cmd.args(["delete", kind, name, "--ignore-not-found"]);
                let _ = test_world::run(&mut cmd);
            }
        }
    }
}

/// A ValidatingAdmissionPolicy (bound with Deny) that refuses deleting DevMachineTemplates of
/// `ns` which lack the delete-for-move annotation, and a validating webhook on DELETE of its
/// KubeadmConfigTemplates (an address that refuses connections, failure policy Ignore).
fn delete_checks(ns: &str, name: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
    resourceRules:
    - {{operations: [DELETE], apiGroups: [infrastructure.cluster.x-k8s.io], apiVersions: ["*"], resources: [devmachinetemplates]}}
  validations:
  - expression: "has(oldObject.metadata.annotations) && 'clusterctl.cluster.x-k8s.io/delete-for-move' in oldObject.metadata.annotations"
    message: only a move deletes templates
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: {name}}}
webhooks:
- name: kct.{name}.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  timeoutSeconds: 1
  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
  clientConfig: {{url: "https://127.0.0.1:9/validate"}}
  rules:
  - {{operations: [DELETE], apiGroups: [bootstrap.cluster.x-k8s.io], apiVersions: ["*"], resources: [kubeadmconfigtemplates]}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objects_an_admission_check_sees_deleted_get_the_annotation_the_others_do_not() {
    let Some(w) = move_world() else { return };
    let src = connect(&kubeconfig(&w, "src"), "source").await;
    let dst = connect(&kubeconfig(&w, "dst"), "target").await;
    let ns = test_world::unique_name("admission");
    fleet(&src, std::slice::from_ref(&ns), 2, &format!("{ns}-id")).await;
    let _cleanup = Cleanup {
        w: &w,
        server: "src",
        objects: [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
            "validatingwebhookconfiguration",
        ]
        .into_iter()
        .map(|k| (k, ns.clone()))
        .collect(),
    };
    w.apply_yaml("src", &delete_checks(&ns, &ns))
        .expect("admission checks");
    // The policy is in force once a plain delete of a template is refused (policies load
    // asynchronously); the probe is then deleted the way a move does.
    w.apply_yaml("src", &format!("apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: DevMachineTemplate\nmetadata: {{name: probe, namespace: {ns}}}\nspec: {{template: {{spec: {{backend: {{docker: {{}}}}}}}}}}\n"))
        .expect("probe");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut cmd = w.kubectl("src").expect("kubectl");
        cmd.args([
            "-n",
            &ns,
            "delete",
            "devmachinetemplate",
            "probe",
            "--dry-run=server",
        ]);
        match test_world::run(&mut cmd) {
            Err(e) if e.to_string().contains("only a move deletes templates") => break,
            r => assert!(Instant::now() < deadline, "the policy never denied: {r:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut cmd = w.kubectl("src").expect("kubectl");
    cmd.args([
        "-n",
        &ns,
        "annotate",
        "devmachinetemplate",
        "probe",
        "clusterctl.cluster.x-k8s.io/delete-for-move=",
    ]);
    test_world::run(&mut cmd).expect("annotate probe");
    let mut cmd = w.kubectl("src").expect("kubectl");
    cmd.args(["-n", &ns, "delete", "devmachinetemplate", "probe"]);
    test_world::run(&mut cmd).expect("delete probe");

    let types = graph::discover_types(&src).await.expect("types");
    let seen = delete_admission(&src, &types).await.expect("admission");
    let seen_kinds: BTreeSet<&str> = types
        .iter()
        .enumerate()
        .filter(|(i, _)| seen.sees(*i))
        .map(|(_, t)| t.kind.as_str())
        .collect();
    assert_eq!(
        seen_kinds,
        BTreeSet::from(["DevMachineTemplate", "KubeadmConfigTemplate"]),
        "the policy's and the webhook's types, no others"
    );
    // Deleted on the source: the plan's objects; annotated first: those with finalizers and
    // those of the two checked kinds.
    let plan = dry_run(&src, Some(&ns)).await.expect("plan");
    let deleted: Vec<&Value> = plan
        .nodes
        .iter()
        .filter(|n| n.deleted_on_source())
        .map(|n| &n.object)
        .collect();
    let needs = |o: &Value| {
        o.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
            || seen_kinds.contains(o["kind"].as_str().unwrap_or_default())
    };
    let expected = deleted.iter().filter(|o| needs(o)).count();
    assert!(expected > 0 && expected < deleted.len());

    let state = tempfile::tempdir().expect("state");
    let report = move_namespace(&src, &dst, &ns, state.path())
        .await
        .expect("the move passes the policy");
    assert_eq!(report.exec.deleted, deleted.len());
    assert_eq!(
        report.exec.annotated, expected,
        "objects with finalizers or a DELETE check on their type are annotated, no others"
    );
    assert_eq!(leftovers(&src, &ns).await, Vec::<String>::new());
    assert_owner_uids_consistent(&dst, &ns, true).await;
}
