//! `cargo xtask world …`: a thin door to `tests/world/world.sh`, which owns the test world.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::Command;

fn workspace_root() -> PathBuf {
    // xtask lives one level below the workspace root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `tests/world/world.sh ARGS…` from the workspace root and fails when it fails.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let root = workspace_root();
    let script = root.join("tests/world/world.sh");
    let status = Command::new("bash")
        .arg(&script)
        .args(args)
        .current_dir(&root)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} {} failed ({status})", script.display(), args.join(" "));
    }
    Ok(())
}
