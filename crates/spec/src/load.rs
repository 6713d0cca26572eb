//! Loading cluster definitions from a repository: `clusters/<name>/cluster.yaml`, layered over
//! `clusters/defaults.yaml` (see [`crate::layer`]), typed, defaulted and validated, with every
//! problem reported as a [`Diagnostic`] naming file, line, column and field.

use crate::diag::{Diagnostic, Diagnostics, Kind, SourceLoc};
use crate::layer::merge;
use crate::model::ClusterDefinition;
use crate::validate::validate;
use crate::yaml::{Node, Pos, PosTable, Value, parse};
use std::path::{Path, PathBuf};

/// Directory under the repository root that holds one directory per cluster.
pub const CLUSTERS_DIR: &str = "clusters";
/// The shared layer, merged under every cluster's own file.
pub const DEFAULTS_FILE: &str = "defaults.yaml";
/// A cluster's own definition file, inside its directory.
pub const CLUSTER_FILE: &str = "cluster.yaml";

/// One source text of a load: what the diagnostics call it, and its content.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name diagnostics use (a path relative to the repository when loaded from one).
    pub path: PathBuf,
    /// The YAML text.
    pub text: String,
}

/// A loaded, valid definition and the files it was made from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The definition, defaults applied.
    pub definition: ClusterDefinition,
    /// The files that went into it, shared layer first.
    pub sources: Vec<PathBuf>,
}

/// Names of the clusters defined in `repo` (directories of `clusters/` holding a `cluster.yaml`),
/// sorted.
pub fn cluster_names(repo: &Path) -> std::io::Result<Vec<String>> {
    let dir = repo.join(CLUSTERS_DIR);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        if entry.path().join(CLUSTER_FILE).is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Loads cluster `name` of the repository at `repo`.
pub fn load_cluster(repo: &Path, name: &str) -> Result<Loaded, Diagnostics> {
    let mut sources = Vec::with_capacity(2);
    let defaults = Path::new(CLUSTERS_DIR).join(DEFAULTS_FILE);
    if repo.join(&defaults).is_file() {
        sources.push(read_source(repo, &defaults)?);
    }
    let own = Path::new(CLUSTERS_DIR).join(name).join(CLUSTER_FILE);
    if !repo.join(&own).is_file() {
        return Err(Diagnostics(vec![Diagnostic {
            loc: SourceLoc {
                file: own,
                ..SourceLoc::default()
            },
            path: String::new(),
            kind: Kind::Syntax,
            message: format!("no cluster named {name:?}: the file does not exist"),
            hint: Some(format!(
                "create it with `manage init {name}`, or pick one of the directories under {CLUSTERS_DIR}/"
            )),
        }]));
    }
    sources.push(read_source(repo, &own)?);
    load_sources(name, &sources)
}

fn read_source(repo: &Path, rel: &Path) -> Result<Source, Diagnostics> {
    std::fs::read_to_string(repo.join(rel))
        .map(|text| Source {
            path: rel.to_path_buf(),
            text,
        })
        .map_err(|e| {
            Diagnostics(vec![Diagnostic {
                loc: SourceLoc {
                    file: rel.to_path_buf(),
                    ..SourceLoc::default()
                },
                path: String::new(),
                kind: Kind::Syntax,
                message: format!("cannot read the file: {e}"),
                hint: None,
            }])
        })
}

/// Loads a definition named `name` from layered sources (shared layers first, the cluster's own
/// file last). The cluster's directory name is `name`: a `name:` field must agree with it.
pub fn load_sources(name: &str, sources: &[Source]) -> Result<Loaded, Diagnostics> {
    let files: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
    let loc = |pos: Pos| SourceLoc {
        file: files
            .get(pos.file as usize)
            .cloned()
            .unwrap_or_else(|| files.last().cloned().unwrap_or_default()),
        line: pos.line,
        column: pos.column,
    };

    let mut diags = Diagnostics::default();
    let mut merged: Option<Node> = None;
    for (i, source) in sources.iter().enumerate() {
        let file = u32::try_from(i).unwrap_or(u32::MAX);
        match parse(&source.text, file) {
            Ok(node) => {
                if !matches!(node.value, Value::Map(_) | Value::Null) {
                    diags.push(Diagnostic {
                        loc: loc(node.pos),
                        path: String::new(),
                        kind: Kind::WrongType,
                        message: format!(
                            "the document is {}, but a cluster definition is a mapping",
                            node.value.type_name()
                        ),
                        hint: Some("start with `kubernetesVersion: v1.33.4` and the other fields at the top level".into()),
                    });
                    continue;
                }
                let node = if node.value == Value::Null {
                    Node {
                        value: Value::Map(Vec::new()),
                        ..node
                    }
                } else {
                    node
                };
                merged = Some(match merged {
                    None => node,
                    Some(base) => merge(base, node),
                });
            }
            Err(e) => diags.push(Diagnostic {
                loc: loc(e.pos),
                path: String::new(),
                kind: Kind::Syntax,
                message: format!("not valid YAML: {}", e.message),
                hint: None,
            }),
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let Some(merged) = merged else {
        return Err(Diagnostics(vec![Diagnostic {
            loc: SourceLoc::default(),
            path: String::new(),
            kind: Kind::Syntax,
            message: "no definition to load".into(),
            hint: None,
        }]));
    };

    let mut table = PosTable::new();
    let mut json = merged.to_json(&mut String::new(), &mut table);
    let own_file = u32::try_from(sources.len().saturating_sub(1)).unwrap_or(0);
    match json.get("name") {
        None | Some(serde_json::Value::Null) => {
            if let Some(obj) = json.as_object_mut() {
                obj.insert("name".into(), serde_json::Value::String(name.to_string()));
            }
        }
        Some(serde_json::Value::String(n)) if n != name => {
            return Err(Diagnostics(vec![Diagnostic {
                loc: loc(lookup(&table, "name", own_file)),
                path: "name".into(),
                kind: Kind::Conflict,
                message: format!("the name {n:?} differs from the cluster's directory {name:?}"),
                hint: Some(format!(
                    "remove the `name:` field, or rename the directory to {CLUSTERS_DIR}/{n}"
                )),
            }]));
        }
        _ => {}
    }

    let definition: ClusterDefinition = match serde_path_to_error::deserialize(&json) {
        Ok(d) => d,
        Err(e) => {
            let path = e.path().to_string();
            let d = serde_diagnostic(&path, e.inner().to_string(), &table, own_file);
            return Err(Diagnostics(vec![Diagnostic {
                loc: loc(d.0),
                ..d.1
            }]));
        }
    };

    let mut diags = Diagnostics::default();
    for (path, kind, message, hint) in validate(&definition) {
        diags.push(Diagnostic {
            loc: loc(lookup(&table, &path, own_file)),
            path,
            kind,
            message,
            hint,
        });
    }
    if diags.is_empty() {
        Ok(Loaded {
            definition,
            sources: files,
        })
    } else {
        diags.sort();
        Err(diags)
    }
}

/// Where `path` was written; for a value that came from defaults, the closest written ancestor;
/// for nothing at all, the top of the cluster's own file.
fn lookup(table: &PosTable, path: &str, own_file: u32) -> Pos {
    let mut p = path;
    loop {
        if let Some(pos) = table.get(p) {
            return *pos;
        }
        match p.rfind(['.', '[']) {
            Some(i) => p = &p[..i],
            None => {
                return table.get("").copied().unwrap_or(Pos {
                    file: own_file,
                    line: 1,
                    column: 1,
                });
            }
        }
    }
}

/// Turns a serde error at `path` into a positioned diagnostic with a hint.
fn serde_diagnostic(path: &str, msg: String, table: &PosTable, own_file: u32) -> (Pos, Diagnostic) {
    let path = if path == "." { "" } else { path };
    let quoted = quoted_words(&msg);
    let (kind, message, hint, pos) = if let Some(field) = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        // serde_path_to_error's path already ends with the unknown key.
        let full = if path.is_empty() || path == field || path.ends_with(&format!(".{field}")) {
            if path.is_empty() {
                field.to_string()
            } else {
                path.to_string()
            }
        } else {
            format!("{path}.{field}")
        };
        let expected: Vec<&str> = quoted.iter().skip(1).map(String::as_str).collect();
        let hint = match closest(field, &expected) {
            Some(c) => format!(
                "did you mean `{c}`? valid fields here: {}",
                expected.join(", ")
            ),
            None if expected.is_empty() => "this mapping takes no fields".to_string(),
            None => format!("valid fields here: {}", expected.join(", ")),
        };
        let pos = table
            .get(&format!("{full}#key"))
            .copied()
            .unwrap_or_else(|| lookup(table, &full, own_file));
        return (
            pos,
            Diagnostic {
                loc: SourceLoc::default(),
                path: full,
                kind: Kind::UnknownField,
                message: format!("unknown field `{field}`"),
                hint: Some(hint),
            },
        );
    } else if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        let full = if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return (
            lookup(table, path, own_file),
            Diagnostic {
                loc: SourceLoc::default(),
                path: full,
                kind: Kind::MissingField,
                message: format!("`{field}` is required"),
                hint: field_hint(field),
            },
        );
    } else if msg.starts_with("unknown variant") {
        let expected: Vec<&str> = quoted.iter().skip(1).map(String::as_str).collect();
        (
            Kind::InvalidValue,
            format!(
                "{} is not allowed here",
                quoted.first().map(|q| format!("`{q}`")).unwrap_or_default()
            ),
            Some(format!("use one of: {}", expected.join(", "))),
            lookup(table, path, own_file),
        )
    } else if msg.starts_with("invalid type") {
        let hint = if msg.contains("floating point") && msg.contains("string") {
            Some("quote it: YAML reads 1.30 as the number 1.3 (write \"v1.30.2\")".to_string())
        } else {
            msg.split(", expected ")
                .nth(1)
                .map(|e| format!("write {e} here"))
        };
        (
            Kind::WrongType,
            msg.split(", expected ").next().unwrap_or(&msg).to_string(),
            hint,
            lookup(table, path, own_file),
        )
    } else {
        (
            Kind::InvalidValue,
            msg.clone(),
            None,
            lookup(table, path, own_file),
        )
    };
    (
        pos,
        Diagnostic {
            loc: SourceLoc::default(),
            path: path.to_string(),
            kind,
            message,
            hint,
        },
    )
}

fn field_hint(field: &str) -> Option<String> {
    match field {
        "kubernetesVersion" => {
            Some("add `kubernetesVersion: v1.33.4` (any vMAJOR.MINOR.PATCH)".into())
        }
        "name" => Some("every node group and owner needs a `name:`".into()),
        "effect" => Some("add `effect: NoSchedule`, `PreferNoSchedule` or `NoExecute`".into()),
        "publicKey" => {
            Some("add `publicKey: age1…` or an SSH public key (`ssh-ed25519 AAAA…`)".into())
        }
        _ => None,
    }
}

/// The words between backticks in a serde message, in order.
fn quoted_words(msg: &str) -> Vec<String> {
    msg.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The candidate nearest to `word` by edit distance, if it is near enough to be a typo.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("flavour", &["flavor", "count"]), Some("flavor"));
        assert_eq!(
            closest("nodecidr", &["nodeCidr", "podCidr"]),
            Some("nodeCidr")
        );
        assert_eq!(closest("banana", &["flavor", "count"]), None);
    }

    #[test]
    fn lookup_falls_back_to_ancestors() {
        let mut t = PosTable::new();
        t.insert(
            "network".into(),
            Pos {
                file: 1,
                line: 4,
                column: 1,
            },
        );
        assert_eq!(lookup(&t, "network.podCidr", 1).line, 4);
        assert_eq!(lookup(&t, "workers[3].count", 1).line, 1);
    }
}
