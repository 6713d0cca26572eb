//! `manage validate [NAME…]`: load and check definitions, render them, and (given CRDs) check the
//! rendered objects against the CRD schemas; print every problem.

use crate::Failure;
use crate::cli::Output;
use anyhow::Context;
use spec::crd::CrdSet;
use spec::render::{RenderOptions, render};
use spec::{Diagnostic, Kind, SourceLoc};
use std::path::Path;

/// Validates the named clusters, or all of them. With `crds` (a directory of CRD YAML, searched
/// recursively) the rendered objects are checked against those schemas too; without it, rendering
/// is still checked, the schemas are not.
pub fn run(
    repo: &Path,
    names: &[String],
    crds: Option<&Path>,
    output: Output,
) -> Result<(), Failure> {
    let names = if names.is_empty() {
        spec::cluster_names(repo)
            .with_context(|| format!("listing {}/{}", repo.display(), spec::load::CLUSTERS_DIR))?
    } else {
        names.to_vec()
    };
    let crds = match crds {
        Some(dir) => Some(
            CrdSet::load_dir(dir)
                .with_context(|| format!("loading CRDs from --crds {}", dir.display()))?,
        ),
        None => None,
    };
    let results: Vec<(String, Vec<Diagnostic>)> = names
        .iter()
        .map(|n| (n.clone(), check(repo, n, crds.as_ref())))
        .collect();
    let invalid = results.iter().filter(|(_, d)| !d.is_empty()).count();
    match output {
        Output::Text => {
            for (name, diags) in &results {
                if diags.is_empty() {
                    println!("✓ {name}");
                } else {
                    println!("✗ {name}");
                    for d in diags {
                        eprintln!("{d}");
                    }
                }
            }
            if results.is_empty() {
                println!(
                    "no clusters under {}",
                    repo.join(spec::load::CLUSTERS_DIR).display()
                );
            } else {
                println!("{} valid, {invalid} invalid", results.len() - invalid);
            }
        }
        Output::Json => {
            let doc = serde_json::json!({
                "clusters": results.iter().map(|(name, diags)| serde_json::json!({
                    "name": name,
                    "valid": diags.is_empty(),
                    "diagnostics": diags,
                })).collect::<Vec<_>>(),
            });
            println!("{doc:#}");
        }
    }
    if invalid > 0 {
        Err(Failure::Invalid)
    } else {
        Ok(())
    }
}

/// Every problem of one cluster: loading first; then rendering and the schemas of what it renders.
fn check(repo: &Path, name: &str, crds: Option<&CrdSet>) -> Vec<Diagnostic> {
    let loaded = match spec::load_cluster(repo, name) {
        Ok(l) => l,
        Err(d) => return d.0,
    };
    let file = loaded.sources.last().cloned().unwrap_or_default();
    let at = |path: String, kind: Kind, message: String, hint: Option<String>| Diagnostic {
        loc: SourceLoc {
            file: file.clone(),
            line: 0,
            column: 0,
        },
        path,
        kind,
        message,
        hint,
    };
    let objects = match render(&loaded.definition, &RenderOptions::default()) {
        Ok(o) => o,
        Err(e) => {
            return vec![at(
                String::new(),
                Kind::InvalidValue,
                format!("cannot be rendered: {e}"),
                None,
            )];
        }
    };
    let Some(crds) = crds else { return Vec::new() };
    objects
        .iter()
        .flat_map(|o| crds.validate(o))
        .map(|v| {
            at(
                format!("(rendered {}){}", v.object, v.path),
                Kind::InvalidValue,
                format!("the rendered object breaks its CRD schema: {}", v.message),
                Some(
                    "this is a bug of manage's rendering; please report it with the definition"
                        .into(),
                ),
            )
        })
        .collect()
}
