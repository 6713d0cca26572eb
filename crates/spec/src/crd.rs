//! Validation of Kubernetes objects against the `openAPIV3Schema` of CustomResourceDefinitions,
//! the way the API server checks them on a strict server-side apply, without an API server.
//!
//! [`CrdSet::load_dir`] reads every CRD YAML file under a directory (recursively) and indexes each
//! served version by (group, version, kind); [`CrdSet::validate`] checks one object and returns every
//! violation, each naming the object, the JSON path and the rule.
//!
//! What is checked: `type`, `nullable`, `required`, `properties` (closed: an unknown field is an
//! error, as with strict field validation, unless `x-kubernetes-preserve-unknown-fields` or
//! `additionalProperties` opens the object), `additionalProperties`, `items`, `enum`, `format`
//! (int32, int64, uuid, ipv4, date-time, byte), `pattern`, `minLength`/`maxLength`,
//! `minimum`/`maximum` (and their exclusive flags), `minItems`/`maxItems`, `uniqueItems`,
//! `minProperties`/`maxProperties`, `x-kubernetes-list-type` (set and map uniqueness),
//! `x-kubernetes-int-or-string`, `x-kubernetes-embedded-resource`, `anyOf`/`oneOf`/`allOf`/`not`,
//! and the object's own `apiVersion`, `kind` and `metadata` (name, namespace, labels, annotations).
//!
//! Defaults are not applied, except that a required field with a `default` counts as present
//! (the API server fills it in before validating).
//!
//! What is not: `x-kubernetes-validations` (CEL rules) need a CEL interpreter; they are counted
//! ([`Validation::cel_rules_skipped`]) and skipped, so an object that passes here can still be
//! refused by a real API server (the test world has one). A `null` in a
//! field that is not `nullable` is dropped before validation, as the API server prunes it.

mod meta;
mod schema;

pub(crate) use meta::is_dns_label;

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why a set of CRDs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// A directory or file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("{path}: not valid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A document is a CustomResourceDefinition without the fields a CRD must have.
    #[error("{path}: not a usable CustomResourceDefinition: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        message: String,
    },
    /// Two files define the same group, version and kind.
    #[error("{path}: {gvk} is already defined by {first}")]
    Duplicate {
        /// The second file.
        path: PathBuf,
        /// The first file.
        first: PathBuf,
        /// `group/version, Kind=kind`.
        gvk: String,
    },
}

/// One served version of one CRD.
#[derive(Debug)]
struct CrdVersion {
    schema: Value,
    namespaced: bool,
    file: PathBuf,
}

/// The CRDs known to the validator, indexed by (group, version, kind).
#[derive(Debug, Default)]
pub struct CrdSet {
    versions: BTreeMap<(String, String, String), CrdVersion>,
    /// Compiled `pattern` regexes; `None` for a pattern the regex crate cannot compile (look-around,
    /// back-references), which is then skipped rather than failing every object.
    regexes: Mutex<BTreeMap<String, Option<regex::Regex>>>,
}

/// One way an object breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// The object: `Kind namespace/name` (or `Kind name` when it has no namespace).
    pub object: String,
    /// JSON path of the offending value, e.g. `.spec.template.spec.flavor`; `.` for the object.
    pub path: String,
    /// The schema keyword that failed (`required`, `type`, `enum`, `pattern`, `unknown-field`, …).
    pub rule: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {} ({})",
            self.object, self.path, self.message, self.rule
        )
    }
}

/// The result of validating one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// Every violation found.
    pub violations: Vec<SchemaViolation>,
    /// CEL rules (`x-kubernetes-validations`) on the visited schema nodes, not evaluated.
    pub cel_rules_skipped: usize,
}

impl CrdSet {
    /// Loads every `*.yaml`/`*.yml` file under `dir` (recursively, in path order) and keeps the
    /// CustomResourceDefinitions among their documents; other documents are ignored.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<CrdSet, CrdError> {
        let mut set = CrdSet::default();
        set.add_dir(dir)?;
        Ok(set)
    }

    /// Adds the CRDs of every `*.yaml`/`*.yml` file under `dir`, as [`CrdSet::load_dir`] does;
    /// for CRDs spread over several directories (an upstream module's `config/crd/bases`).
    pub fn add_dir(&mut self, dir: impl AsRef<Path>) -> Result<(), CrdError> {
        let mut files = Vec::new();
        collect_yaml_files(dir.as_ref(), &mut files)?;
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| CrdError::Read {
                path: file.clone(),
                source,
            })?;
            self.add_yaml(&file, &text)?;
        }
        Ok(())
    }

    /// Adds the CRDs among the YAML documents of `text`; `file` names them in errors.
    pub fn add_yaml(&mut self, file: &Path, text: &str) -> Result<(), CrdError> {
        let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| CrdError::Yaml {
            path: file.to_path_buf(),
            message: e.to_string(),
        })?;
        for doc in docs {
            if doc.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
                self.add_crd(file, &doc)?;
            }
        }
        Ok(())
    }

    /// Adds one CRD document (already parsed).
    pub fn add_crd(&mut self, file: &Path, crd: &Value) -> Result<(), CrdError> {
        let malformed = |message: &str| CrdError::Malformed {
            path: file.to_path_buf(),
            message: message.to_string(),
        };
        let spec = crd.get("spec").ok_or_else(|| malformed("no spec"))?;
        let group = spec
            .get("group")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no spec.group"))?;
        let kind = spec
            .pointer("/names/kind")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no spec.names.kind"))?;
        let namespaced = match spec.get("scope").and_then(Value::as_str) {
            Some("Namespaced") => true,
            Some("Cluster") => false,
            _ => return Err(malformed("spec.scope is neither Namespaced nor Cluster")),
        };
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("no spec.versions"))?;
        for v in versions {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("a version without a name"))?;
            if v.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let schema = v
                .pointer("/schema/openAPIV3Schema")
                .ok_or_else(|| malformed(&format!("version {name} has no openAPIV3Schema")))?;
            if !schema.is_object() {
                return Err(malformed(&format!(
                    "version {name}: openAPIV3Schema is not an object"
                )));
            }
            let key = (group.to_string(), name.to_string(), kind.to_string());
            if let Some(first) = self.versions.get(&key) {
                return Err(CrdError::Duplicate {
                    path: file.to_path_buf(),
                    first: first.file.clone(),
                    gvk: format!("{group}/{name}, Kind={kind}"),
                });
            }
            self.versions.insert(
                key,
                CrdVersion {
                    schema: schema.clone(),
                    namespaced,
                    file: file.to_path_buf(),
                },
            );
        }
        Ok(())
    }

    /// Number of (group, version, kind) entries.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Whether no CRD was loaded.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Whether `apiVersion` (`group/version`) and `kind` are known.
    pub fn knows(&self, api_version: &str, kind: &str) -> bool {
        let (group, version) = split_api_version(api_version);
        self.versions
            .contains_key(&(group.to_string(), version.to_string(), kind.to_string()))
    }

    /// Validates one object; an empty result means it is valid (CEL rules aside).
    pub fn validate(&self, object: &Value) -> Vec<SchemaViolation> {
        self.check(object).violations
    }

    /// Validates one object and also reports how many CEL rules were skipped.
    pub fn check(&self, object: &Value) -> Validation {
        let name = object_name(object);
        let mut out = schema::Walker::new(&name, &self.regexes);
        let api_version = object.get("apiVersion").and_then(Value::as_str);
        let kind = object.get("kind").and_then(Value::as_str);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            out.violation(
                ".",
                "type-meta",
                "apiVersion and kind must be strings".into(),
            );
            return out.finish();
        };
        let (group, version) = split_api_version(api_version);
        let key = (group.to_string(), version.to_string(), kind.to_string());
        let Some(crd) = self.versions.get(&key) else {
            out.violation(
                ".",
                "unknown-kind",
                format!("no CRD serves {kind} in {api_version}"),
            );
            return out.finish();
        };
        meta::check_root_metadata(object.get("metadata"), crd.namespaced, &mut out);
        out.validate_root(&crd.schema, object);
        out.finish()
    }
}

/// `group/version` → (group, version); the core group is empty.
fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// `Kind namespace/name` for messages, tolerant of missing fields.
fn object_name(object: &Value) -> String {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("<no kind>");
    let meta = object.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<no name>");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CrdError> {
    let read_err = |source| CrdError::Read {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.is_dir() {
            collect_yaml_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}
