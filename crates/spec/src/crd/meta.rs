//! ObjectMeta checks for a top-level object: the CRD schema says only `metadata: {type: object}`,
//! the API server checks the rest itself. We check what a rendered object can get wrong: name,
//! namespace (present exactly when the kind is namespaced), labels and annotations.

use super::schema::Walker;
use serde_json::Value;

/// The ObjectMeta fields a client may set; the rest (uid, resourceVersion, …) are server-owned but
/// accepted, as the API server accepts them on create.
const KNOWN_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

pub(super) fn check_root_metadata(meta: Option<&Value>, namespaced: bool, out: &mut Walker<'_>) {
    let Some(meta) = meta.and_then(Value::as_object) else {
        out.violation(".metadata", "required", "metadata must be an object".into());
        return;
    };
    for key in meta.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            out.violation(
                &format!(".metadata.{key}"),
                "unknown-field",
                format!("unknown field {key:?} in ObjectMeta"),
            );
        }
    }
    match meta.get("name") {
        Some(Value::String(name)) => {
            if !is_dns_subdomain(name) {
                out.violation(
                    ".metadata.name",
                    "dns-1123-subdomain",
                    format!("{name:?} is not a DNS-1123 subdomain (lowercase alphanumerics, '-', '.', at most 253)"),
                );
            }
        }
        Some(_) => out.violation(".metadata.name", "type", "name must be a string".into()),
        None if meta.get("generateName").is_some() => {}
        None => out.violation(
            ".metadata",
            "required",
            "required field \"name\" is missing".into(),
        ),
    }
    match (meta.get("namespace"), namespaced) {
        (Some(Value::String(ns)), true) => {
            if !is_dns_label(ns) {
                out.violation(
                    ".metadata.namespace",
                    "dns-1123-label",
                    format!("{ns:?} is not a DNS-1123 label (lowercase alphanumerics and '-', at most 63)"),
                );
            }
        }
        (Some(_), true) => out.violation(
            ".metadata.namespace",
            "type",
            "namespace must be a string".into(),
        ),
        (None, true) => out.violation(
            ".metadata",
            "required",
            "namespaced kind without a namespace".into(),
        ),
        (Some(_), false) => out.violation(
            ".metadata.namespace",
            "scope",
            "cluster-scoped kind must not have a namespace".into(),
        ),
        (None, false) => {}
    }
    check_string_map(meta.get("labels"), ".metadata.labels", true, out);
    check_string_map(meta.get("annotations"), ".metadata.annotations", false, out);
}

fn check_string_map(map: Option<&Value>, path: &str, labels: bool, out: &mut Walker<'_>) {
    let Some(map) = map else { return };
    let Some(map) = map.as_object() else {
        out.violation(path, "type", "must be a map of strings".into());
        return;
    };
    for (key, value) in map {
        let child = format!("{path}.{key}");
        if !is_qualified_name(key) {
            out.violation(
                &child,
                "qualified-name",
                format!("key {key:?} is not a qualified name ([prefix/]name)"),
            );
        }
        match value {
            Value::String(v) if labels && !is_label_value(v) => out.violation(
                &child,
                "label-value",
                format!(
                    "{v:?} is not a valid label value (at most 63 alphanumerics, '-', '_', '.')"
                ),
            ),
            Value::String(_) => {}
            _ => out.violation(&child, "type", "must be a string".into()),
        }
    }
}

/// DNS-1123 label: what names a namespace.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 subdomain: what names most objects.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// `[prefix/]name`, the shape of label and annotation keys.
fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain)
        && !name.is_empty()
        && name.len() <= 63
        && is_name_part(name)
}

fn is_label_value(s: &str) -> bool {
    s.is_empty() || (s.len() <= 63 && is_name_part(s))
}

/// Alphanumerics with `-`, `_`, `.` inside.
fn is_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_label("team-a"));
        assert!(!is_dns_label("Team"));
        assert!(!is_dns_label("-a"));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(is_qualified_name("cluster.x-k8s.io/cluster-name"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(is_label_value(""));
        assert!(!is_label_value("a b"));
    }
}
