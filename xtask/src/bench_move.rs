//! `cargo xtask bench move`: the same generated fleet moved by the real `clusterctl move` and by
//! `manage move` (release build) between the same two API servers of the move world
//! (`crates/kube-ops/tests/move-world.sh up`), in one run. Prints both times, the ratio and API
//! requests per object — counted on the servers (`apiserver_request_total` deltas, the same
//! yardstick for both tools) — as the last line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube_ops::cluster::{Cluster, ClusterRef};
use kube_ops::fixtures::{FleetSpec, create_fleet};

fn env_file(state: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let f = state.join("world.env");
    let text = std::fs::read_to_string(&f).with_context(|| {
        format!(
            "{} (start it: crates/kube-ops/tests/move-world.sh up)",
            f.display()
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// Requests the server has answered so far, by verb (WATCH excluded), from `/metrics`.
fn request_totals(kubectl: &Path, kubeconfig: &Path) -> anyhow::Result<BTreeMap<String, f64>> {
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["get", "--raw", "/metrics"])
        .output()
        .context("kubectl get --raw /metrics")?;
    let mut totals = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let verb = labels
            .split(',')
            .find_map(|kv| kv.strip_prefix("verb=\""))
            .map(|v| v.trim_end_matches('"').to_owned())
            .unwrap_or_default();
        if verb == "WATCH" || verb.is_empty() {
            continue;
        }
        *totals.entry(verb).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    Ok(totals)
}

#[derive(Debug, Default, Clone, Copy)]
struct Requests {
    reads: f64,
    writes: f64,
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Requests {
    let mut r = Requests::default();
    for (verb, v) in after {
        let d = v - before.get(verb).copied().unwrap_or(0.0);
        if matches!(verb.as_str(), "GET" | "LIST") {
            r.reads += d;
        } else {
            r.writes += d;
        }
    }
    r
}

struct Servers {
    kubectl: PathBuf,
    src: PathBuf,
    dst: PathBuf,
}

impl Servers {
    fn totals(&self) -> anyhow::Result<[BTreeMap<String, f64>; 2]> {
        Ok([
            request_totals(&self.kubectl, &self.src)?,
            request_totals(&self.kubectl, &self.dst)?,
        ])
    }
    fn since(&self, before: &[BTreeMap<String, f64>; 2]) -> anyhow::Result<Requests> {
        let after = self.totals()?;
        let (a, b) = (delta(&before[0], &after[0]), delta(&before[1], &after[1]));
        Ok(Requests {
            reads: a.reads + b.reads,
            writes: a.writes + b.writes,
        })
    }
}

/// Counts the objects of the move types left in `ns` on a server (`kubectl get` of each kind).
fn count_objects(s: &Servers, kubeconfig: &Path, ns: &str) -> anyhow::Result<usize> {
    let kinds = "clusters.cluster.x-k8s.io,machinedeployments.cluster.x-k8s.io,machinesets.cluster.x-k8s.io,machines.cluster.x-k8s.io,\
kubeadmcontrolplanes.controlplane.cluster.x-k8s.io,kubeadmconfigs.bootstrap.cluster.x-k8s.io,kubeadmconfigtemplates.bootstrap.cluster.x-k8s.io,\
devclusters.infrastructure.cluster.x-k8s.io,devmachines.infrastructure.cluster.x-k8s.io,devmachinetemplates.infrastructure.cluster.x-k8s.io,secrets,configmaps";
    let out = Command::new(&s.kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-n", ns, "get", kinds, "-o", "name"])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.ends_with("/kube-root-ca.crt"))
        .count())
}

/// Runs the benchmark with `clusters` clusters per tool.
pub fn run(
    clusters: usize,
    clusterctl_timeout: u64,
    parallel: usize,
    manage: Option<PathBuf>,
) -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let state = std::env::var_os("MOVE_WORLD_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/manage-move-world"));
    let env = env_file(&state)?;
    let get = |k: &str| {
        env.get(k)
            .map(PathBuf::from)
            .with_context(|| format!("{k} missing in the move world"))
    };
    let s = Servers {
        kubectl: get("WORLD_KUBECTL")?,
        src: get("WORLD_KUBECONFIG_SRC")?,
        dst: get("WORLD_KUBECONFIG_DST")?,
    };
    let clusterctl = get("WORLD_CLUSTERCTL")?;
    let manage = match manage {
        Some(m) => m,
        None => {
            eprintln!("building manage (release)…");
            build_manage(&root)?
        }
    };
    let id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            % 0xffffff
    );
    let ns_ctl = format!("bench-{id}-clusterctl");
    let ns_our = format!("bench-{id}-manage");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let objects = rt.block_on(async {
        kube_ops::install_crypto_provider();
        let src = Cluster::connect(
            &ClusterRef {
                kubeconfig: s.src.clone(),
                context: None,
            },
            "source",
        )
        .await?;
        let mut n = 0;
        for ns in [&ns_ctl, &ns_our] {
            let t = Instant::now();
            n = create_fleet(
                &src,
                &FleetSpec {
                    namespaces: vec![ns.clone()],
                    clusters_per_namespace: clusters,
                    identity: format!("bench-{id}"),
                    parallelism: 64,
                    finalizers: true,
                },
            )
            .await?;
            eprintln!(
                "fleet {ns}: {n} objects in {:.1}s",
                t.elapsed().as_secs_f64()
            );
        }
        Ok::<_, anyhow::Error>(n)
    })?;

    eprintln!("clusterctl move -n {ns_ctl} …");
    let before = s.totals()?;
    let t = Instant::now();
    let mut child = Command::new(&clusterctl)
        .env("CLUSTERCTL_DISABLE_VERSIONCHECK", "true")
        .args(["move", "--kubeconfig"])
        .arg(&s.src)
        .arg("--to-kubeconfig")
        .arg(&s.dst)
        .args(["-n", &ns_ctl])
        .spawn()
        .context("clusterctl")?;
    let mut timed_out = false;
    loop {
        if let Some(st) = child.try_wait()? {
            if !st.success() {
                bail!("clusterctl move failed ({st})");
            }
            break;
        }
        if t.elapsed() > Duration::from_secs(clusterctl_timeout) {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let ctl_secs = t.elapsed().as_secs_f64();
    let ctl_req = s.since(&before)?;
    let ctl_moved = count_objects(&s, &s.dst, &ns_ctl)?;

    eprintln!("manage move -n {ns_our} …");
    let journal = tempdir_path(&id);
    let before = s.totals()?;
    let t = Instant::now();
    let out = Command::new(&manage)
        .env(
            "MANAGE_LOG",
            std::env::var("MANAGE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .args(["--output", "json", "move", "--from"])
        .arg(&s.src)
        .arg("--to")
        .arg(&s.dst)
        .args([
            "-n",
            &ns_our,
            "--parallel",
            &parallel.to_string(),
            "--state-dir",
        ])
        .arg(&journal)
        .output()?;
    let our_secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "manage move failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let our_req = s.since(&before)?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let left = count_objects(&s, &s.src, &ns_our)?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("manage report: {report}");
    eprintln!(
        "objects per tool: {objects} generated; clusterctl moved {ctl_moved}{}; ours left {left} on the source",
        if timed_out {
            " before the time limit"
        } else {
            ""
        }
    );
    let per = |r: Requests, n: usize| (r.reads + r.writes) / n.max(1) as f64;
    if timed_out && ctl_moved == 0 {
        // Still discovering when stopped: nothing to extrapolate from.
        println!(
            "move of {clusters} clusters ({objects} objects): clusterctl stopped after {ctl_secs:.0}s before moving anything (no ratio), manage {our_secs:.1}s; API requests per object: manage {:.2} ({:.2} writes)",
            per(our_req, objects),
            our_req.writes / objects.max(1) as f64,
        );
        return Ok(());
    }
    let ctl_objects = if timed_out { ctl_moved } else { objects };
    // A stopped clusterctl's time is extrapolated linearly to the whole fleet.
    let ctl_full = ctl_secs * objects as f64 / ctl_objects as f64;
    let ratio_note = if timed_out {
        format!(
            " (clusterctl stopped after {ctl_secs:.0}s at {ctl_moved}/{objects} objects, extrapolated {ctl_full:.0}s)"
        )
    } else {
        String::new()
    };
    println!(
        "move of {clusters} clusters ({objects} objects): clusterctl {ctl_full:.1}s, manage {our_secs:.1}s, ratio {:.1}x{ratio_note}; API requests per object: clusterctl {:.2} ({:.2} writes), manage {:.2} ({:.2} writes)",
        ctl_full / our_secs,
        per(ctl_req, ctl_objects),
        ctl_req.writes / ctl_objects as f64,
        per(our_req, objects),
        our_req.writes / objects.max(1) as f64,
    );
    Ok(())
}

/// Builds `manage` (release) and returns the executable cargo reports, wherever the target
/// directory is (`CARGO_TARGET_DIR`, a config file, or `target/`).
fn build_manage(root: &Path) -> Result<PathBuf> {
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "manage",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("cargo build --release -p manage failed");
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "manage")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo built no manage executable")
}

fn tempdir_path(id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("manage-bench-move-{id}"))
}
