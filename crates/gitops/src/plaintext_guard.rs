//! The guard in front of every commit: a file that holds a secret in plaintext is refused, by its
//! content (a `kind: Secret` with data, a private key, a kubeconfig or clouds.yaml with
//! credentials, a credential-looking field) and by its name (`credentials.yaml`, `clouds.yaml`).

use serde_json::Value;

/// Why one file may not be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The file, relative to the repository.
    pub path: String,
    /// What was found.
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Names that are credentials files whatever they contain (git-ignored by `manage init`).
const CREDENTIAL_FILE_NAMES: &[&str] = &[
    "credentials.yaml",
    "credentials.yml",
    "clouds.yaml",
    "clouds.yml",
    "secure.yaml",
];

/// Field names whose non-empty string value is a credential.
const CREDENTIAL_FIELDS: &[&str] = &[
    "password",
    "application_credential_secret",
    "applicationCredentialSecret",
    "client-key-data",
    "token",
    "bearerToken",
    "private_key",
    "privateKey",
    "identity",
];

/// Checks one file about to be committed; returns every reason to refuse it (empty: fine).
pub fn check_file(path: &str, content: &[u8]) -> Vec<Refusal> {
    let mut out = Vec::new();
    let refuse = |reason: String| Refusal {
        path: path.to_owned(),
        reason,
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    if CREDENTIAL_FILE_NAMES.contains(&name) {
        out.push(refuse(format!("{name} is a credentials file")));
    }
    let text = String::from_utf8_lossy(content);
    if text.contains("PRIVATE KEY-----") {
        out.push(refuse("contains a private key (PEM)".into()));
    }
    let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json");
    let looks_structured = is_yaml || text.contains("kind:") || name.ends_with("config");
    if looks_structured && let Ok(docs) = serde_saphyr::from_multiple::<Value>(&text) {
        for doc in docs.iter().filter(|d| !d.is_null()) {
            check_object(doc, &mut |r| out.push(refuse(r)));
        }
    }
    out.dedup();
    out
}

fn check_object(doc: &Value, report: &mut dyn FnMut(String)) {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    match kind {
        "List" => {
            for item in doc
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                check_object(item, report);
            }
            return;
        }
        // Ciphertext only; the template holds no values.
        "SealedSecret" => return,
        "Secret" => {
            let has = |k: &str| {
                doc.get(k)
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
            };
            if has("data") || has("stringData") {
                let ns = doc
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let name = doc
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let id = if ns.is_empty() {
                    name.to_owned()
                } else {
                    format!("{ns}/{name}")
                };
                report(format!(
                    "plaintext Secret {id} (kind: Secret with data/stringData)"
                ));
                return;
            }
        }
        _ => {}
    }
    if doc.get("clouds").and_then(Value::as_object).is_some() {
        let mut found = false;
        find_credential_fields(doc, &mut |_| found = true);
        if found {
            report("an OpenStack clouds.yaml with credentials".into());
            return;
        }
    }
    if kind == "Config" && doc.get("users").is_some() {
        let mut found = false;
        find_credential_fields(doc, &mut |_| found = true);
        if found {
            report("a kubeconfig with credentials".into());
            return;
        }
    }
    let mut fields = Vec::new();
    find_credential_fields(doc, &mut |f| fields.push(f));
    if let Some(first) = fields.first() {
        report(format!("a credential field in plaintext ({first})"));
    }
}

fn find_credential_fields(v: &Value, found: &mut dyn FnMut(String)) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let is_secret_value = child.as_str().is_some_and(|s| !s.trim().is_empty());
                if is_secret_value && CREDENTIAL_FIELDS.contains(&k.as_str()) {
                    found(k.clone());
                }
                find_credential_fields(child, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| find_credential_fields(i, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(path: &str, text: &str) -> bool {
        !check_file(path, text.as_bytes()).is_empty()
    }

    #[test]
    fn plaintext_secrets_are_refused_in_any_document() {
        let multi = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: team}\nstringData: {x: y}\n";
        let r = check_file("clusters/a/app.yaml", multi.as_bytes());
        assert_eq!(r.len(), 1);
        assert!(r[0].reason.contains("plaintext Secret team/s"), "{r:?}");
        assert!(refused(
            "x.yaml",
            "kind: Secret\nmetadata: {name: s}\ndata: {x: eQ==}\n"
        ));
        assert!(refused(
            "x.yaml",
            "kind: List\nitems:\n- kind: Secret\n  metadata: {name: s}\n  data: {x: eQ==}\n"
        ));
    }

    #[test]
    fn sealed_and_empty_secrets_and_ordinary_objects_pass() {
        assert!(!refused(
            "s.yaml",
            "kind: SealedSecret\nmetadata: {name: s}\nspec:\n  encryptedData: {password: AgB}\n"
        ));
        assert!(!refused("s.yaml", "kind: Secret\nmetadata: {name: s}\n"));
        assert!(!refused(
            "g.yaml",
            "kind: GitRepository\nspec: {secretRef: {name: flux-system}, url: 'ssh://x'}\n"
        ));
        assert!(!refused(
            "cluster.yaml",
            "name: a\ncloud: {name: openstack}\n"
        ));
    }

    #[test]
    fn credentials_files_are_refused_by_name_and_by_content() {
        assert!(refused("clusters/a/credentials.yaml", "anything: 1\n"));
        assert!(refused(
            "clusters/a/openstack.yaml",
            "clouds:\n  prod:\n    auth:\n      application_credential_secret: abc\n"
        ));
        assert!(refused(
            "my.kubeconfig",
            "apiVersion: v1\nkind: Config\nusers:\n- name: a\n  user: {token: abc}\n"
        ));
        assert!(refused(
            "notes.txt",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n"
        ));
        assert!(refused("values.yaml", "db:\n  password: hunter2\n"));
        assert!(!refused("values.yaml", "db:\n  password: ''\n"));
    }
}
