//! Generated fleets of cluster definitions, and the `validate` timing over them.

use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Writes a repository at `out` with `clusters/defaults.yaml` and `count` varied, valid clusters.
pub fn generate(count: usize, out: &Path) -> anyhow::Result<()> {
    let clusters = out.join("clusters");
    if clusters.exists() {
        std::fs::remove_dir_all(&clusters)
            .with_context(|| format!("clearing {}", clusters.display()))?;
    }
    std::fs::create_dir_all(&clusters)?;
    std::fs::write(
        clusters.join("defaults.yaml"),
        "cloud:\n  dnsServers: [9.9.9.9]\ncontrolPlane:\n  flavor: m1.medium\nimage:\n  name: ubuntu-2404-kube\n",
    )?;
    for i in 0..count {
        let name = format!("c{i:05}");
        let dir = clusters.join(&name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cluster.yaml"), definition(i))?;
    }
    Ok(())
}

/// One definition; `i` varies provider, versions, sizes, groups and networks.
fn definition(i: usize) -> String {
    let mut s = String::new();
    let provider = if i % 10 == 9 { "docker" } else { "openstack" };
    let _ = writeln!(s, "provider: {provider}");
    let _ = writeln!(s, "kubernetesVersion: v1.{}.{}", 30 + i % 7, i % 11);
    let _ = writeln!(s, "controlPlane:\n  count: {}", [1, 3, 5][i % 3]);
    if i.is_multiple_of(4) {
        let _ = writeln!(s, "  rootVolume: {{sizeGib: {}}}", 20 + i % 50);
    }
    let _ = writeln!(s, "workers:");
    for g in 0..(i % 4) {
        let _ = writeln!(s, "  - name: md-{g}\n    flavor: m1.large");
        if (i + g).is_multiple_of(3) {
            let _ = writeln!(s, "    autoscale: {{min: {g}, max: {}}}", g + 5);
        } else {
            let _ = writeln!(s, "    count: {}", (i + g) % 7);
        }
        if g == 1 {
            let _ = writeln!(s, "    labels: {{node.cluster.x-k8s.io/pool: p{g}}}");
            let _ = writeln!(
                s,
                "    taints: [{{key: dedicated, value: p{g}, effect: NoSchedule}}]"
            );
        }
    }
    let _ = writeln!(
        s,
        "network:\n  nodeCidr: 10.{}.{}.0/24\n  cni: {}",
        i % 200,
        (i / 200) % 250,
        if i.is_multiple_of(2) {
            "cilium"
        } else {
            "calico"
        }
    );
    let _ = writeln!(s, "antiAffinity: {{enabled: {}}}", !i.is_multiple_of(5));
    let _ = writeln!(
        s,
        "addons:\n  ingressNginx: {{enabled: {}}}",
        i.is_multiple_of(2)
    );
    s
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The cargo target directory: `CARGO_TARGET_DIR` (CI keeps it outside the clone) or `target/`.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Builds `manage` (release), generates `count` clusters and times `manage validate` over them.
pub fn bench_validate(count: usize, runs: usize) -> anyhow::Result<()> {
    let root = workspace_root();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "manage"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("cargo build --release -p manage failed");
    }
    let bin = target_dir(&root).join("release/manage");
    let dir = std::env::temp_dir().join(format!("manage-fleet-{count}"));
    generate(count, &dir)?;
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let out = Command::new(&bin)
            .args(["--repo"])
            .arg(&dir)
            .arg("validate")
            .output()?;
        times.push(t.elapsed());
        if !out.status.success() {
            bail!(
                "manage validate failed on the generated fleet:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let last = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_string();
        if !last.starts_with(&format!("{count} valid")) {
            bail!("unexpected summary: {last}");
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "manage validate over {count} generated clusters ({}): median {:.3}s of {} runs (min {:.3}s, max {:.3}s); target < 1s: {}",
        dir.display(),
        median.as_secs_f64(),
        times.len(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64(),
        if median.as_secs_f64() < 1.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    Ok(())
}
