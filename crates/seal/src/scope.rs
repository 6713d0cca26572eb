//! The three sealing scopes, their OAEP labels and annotations (sealed-secrets `v1alpha1`).

use serde_json::{Map, Value};

/// Annotation that makes a SealedSecret namespace-wide (value exactly `"true"`).
pub const NAMESPACE_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/namespace-wide";
/// Annotation that makes a SealedSecret cluster-wide (value exactly `"true"`; checked first).
pub const CLUSTER_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/cluster-wide";

/// Which renames a sealed value survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Bound to namespace and name (label `"<ns>/<name>"`); the default.
    #[default]
    Strict,
    /// Bound to the namespace only (label `"<ns>"`).
    NamespaceWide,
    /// Not bound (empty label).
    ClusterWide,
}

impl Scope {
    /// The OAEP label for an object `namespace/name` in this scope.
    pub fn label(self, namespace: &str, name: &str) -> String {
        match self {
            Scope::Strict => format!("{namespace}/{name}"),
            Scope::NamespaceWide => namespace.to_owned(),
            Scope::ClusterWide => String::new(),
        }
    }

    /// The scope an object's annotations declare (cluster-wide wins, as upstream checks it first).
    pub fn from_annotations(annotations: Option<&Map<String, Value>>) -> Scope {
        let is_true = |k: &str| {
            annotations
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
                .is_some_and(|v| v == "true")
        };
        if is_true(CLUSTER_WIDE_ANNOTATION) {
            Scope::ClusterWide
        } else if is_true(NAMESPACE_WIDE_ANNOTATION) {
            Scope::NamespaceWide
        } else {
            Scope::Strict
        }
    }

    /// Rewrites both scope annotations to say `self` (as kubeseal `--scope` does).
    pub fn write_annotations(self, annotations: &mut Map<String, Value>) {
        annotations.remove(CLUSTER_WIDE_ANNOTATION);
        annotations.remove(NAMESPACE_WIDE_ANNOTATION);
        match self {
            Scope::Strict => {}
            Scope::NamespaceWide => {
                annotations.insert(NAMESPACE_WIDE_ANNOTATION.into(), "true".into());
            }
            Scope::ClusterWide => {
                annotations.insert(CLUSTER_WIDE_ANNOTATION.into(), "true".into());
            }
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Scope::Strict),
            "namespace-wide" => Ok(Scope::NamespaceWide),
            "cluster-wide" => Ok(Scope::ClusterWide),
            other => Err(format!(
                "unknown scope {other:?} (strict, namespace-wide or cluster-wide)"
            )),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Strict => "strict",
            Scope::NamespaceWide => "namespace-wide",
            Scope::ClusterWide => "cluster-wide",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_per_scope() {
        assert_eq!(Scope::Strict.label("ns", "n"), "ns/n");
        assert_eq!(Scope::NamespaceWide.label("ns", "n"), "ns");
        assert_eq!(Scope::ClusterWide.label("ns", "n"), "");
    }

    #[test]
    fn cluster_wide_is_checked_first_and_only_exact_true_counts() {
        let a = json!({CLUSTER_WIDE_ANNOTATION: "true", NAMESPACE_WIDE_ANNOTATION: "true"});
        assert_eq!(Scope::from_annotations(a.as_object()), Scope::ClusterWide);
        let b = json!({CLUSTER_WIDE_ANNOTATION: "True", NAMESPACE_WIDE_ANNOTATION: "true"});
        assert_eq!(Scope::from_annotations(b.as_object()), Scope::NamespaceWide);
        assert_eq!(Scope::from_annotations(None), Scope::Strict);
    }
}
