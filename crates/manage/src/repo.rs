//! The user's repository: where it is, and the `.gitignore` entries the tool keeps in it.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// The repository root: `--repo` when given, else the nearest ancestor of the current directory
/// with a `.git`, else the nearest with a `clusters/` directory.
pub fn locate(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_dir() {
            bail!("--repo {}: no such directory", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    for marker in [".git", "clusters"] {
        if let Some(root) = cwd.ancestors().find(|d| d.join(marker).exists()) {
            return Ok(root.to_path_buf());
        }
    }
    bail!(
        "{} is not inside a git repository with a clusters/ directory; run manage from your clone, or pass --repo DIR",
        cwd.display()
    )
}

/// Lines the tool keeps in the repository's `.gitignore`: local secrets and state never go to git.
pub const IGNORED: &[&str] = &[
    "/clusters/*/credentials.yaml",
    "/clusters/*/secure.yaml",
    "/clusters/*/kubeconfig",
    "/clusters/*/.state/",
];

/// Appends to `<repo>/.gitignore` every line of [`IGNORED`] it lacks; returns the lines added.
pub fn ensure_gitignore(repo: &Path) -> anyhow::Result<Vec<&'static str>> {
    let path = repo.join(".gitignore");
    let current = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let present: Vec<&str> = current.lines().map(str::trim).collect();
    let missing: Vec<&'static str> = IGNORED
        .iter()
        .copied()
        .filter(|l| !present.contains(l))
        .collect();
    if !missing.is_empty() {
        let mut text = current;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("# kept by `manage`: local credentials, kubeconfigs and state\n");
        for l in &missing {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(missing)
}
