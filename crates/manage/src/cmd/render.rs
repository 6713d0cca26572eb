//! `manage render NAME`: the Cluster API objects of a cluster, as YAML or JSON, or one file each.

use crate::Failure;
use crate::cli::Output;
use anyhow::{Context, anyhow};
use spec::render::{CapoApiVersion, RenderOptions, render};
use std::path::Path;

/// Renders cluster `name` to stdout, or into `out`.
pub fn run(
    repo: &Path,
    name: &str,
    out: Option<&Path>,
    capo_api_version: &str,
    output: Output,
) -> Result<(), Failure> {
    let capo_api_version: CapoApiVersion = capo_api_version
        .parse()
        .map_err(|e| anyhow!("--capo-api-version: {e}"))?;
    let loaded = match spec::load_cluster(repo, name) {
        Ok(l) => l,
        Err(diags) => {
            eprintln!("{diags}");
            return Err(Failure::Invalid);
        }
    };
    let opts = RenderOptions {
        capo_api_version,
        ..RenderOptions::default()
    };
    let objects =
        render(&loaded.definition, &opts).map_err(|e| anyhow!("rendering {name}: {e}"))?;
    match out {
        None => match output {
            Output::Json => println!("{:#}", serde_json::Value::Array(objects)),
            Output::Text => print!("{}", to_yaml_stream(&objects)?),
        },
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (i, obj) in objects.iter().enumerate() {
                let file = dir.join(file_name(i, obj));
                let text = serde_saphyr::to_string(obj).context("serializing an object")?;
                std::fs::write(&file, text)
                    .with_context(|| format!("writing {}", file.display()))?;
            }
            println!("wrote {} objects to {}", objects.len(), dir.display());
        }
    }
    Ok(())
}

/// Multi-document YAML of `objects`.
fn to_yaml_stream(objects: &[serde_json::Value]) -> anyhow::Result<String> {
    let mut out = String::new();
    for obj in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(obj).context("serializing an object")?);
    }
    Ok(out)
}

/// `NN-kind-name.yaml`: the number keeps apply order when the files are read back sorted.
fn file_name(index: usize, obj: &serde_json::Value) -> String {
    let kind = obj["kind"]
        .as_str()
        .unwrap_or("object")
        .to_ascii_lowercase();
    let name = obj["metadata"]["name"].as_str().unwrap_or("unnamed");
    format!("{index:02}-{kind}-{name}.yaml")
}
