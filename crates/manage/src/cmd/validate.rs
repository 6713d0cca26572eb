//! `manage validate [NAME…]`: load and check definitions, print every problem.

use crate::Failure;
use crate::cli::Output;
use anyhow::Context;
use spec::Diagnostic;
use std::path::Path;

/// Validates the named clusters, or all of them.
pub fn run(repo: &Path, names: &[String], output: Output) -> Result<(), Failure> {
    let names = if names.is_empty() {
        spec::cluster_names(repo)
            .with_context(|| format!("listing {}/{}", repo.display(), spec::load::CLUSTERS_DIR))?
    } else {
        names.to_vec()
    };
    let results: Vec<(String, Vec<Diagnostic>)> = names
        .iter()
        .map(|n| {
            let diags = spec::load_cluster(repo, n)
                .err()
                .map(|d| d.0)
                .unwrap_or_default();
            (n.clone(), diags)
        })
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
