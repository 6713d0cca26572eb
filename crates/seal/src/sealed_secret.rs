//! Secrets in, SealedSecrets (`bitnami.com/v1alpha1`) out, as kubeseal builds them; and the
//! reverse with the controller's private keys (kubeseal `--recovery-unseal`).

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::hybrid::{hybrid_decrypt, hybrid_encrypt};
use crate::{Certificate, Error, PrivateKeys, Scope};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Metadata kubeseal strips from an input Secret before sealing it.
const STRIPPED_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "selfLink",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
];

/// Annotations that may hold a plaintext copy of the Secret; never copied into the template.
const LEAKY_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubecfg.ksonnet.io/last-applied-configuration",
];

/// How to seal (kubeseal's flags).
#[derive(Debug, Clone, Default)]
pub struct SealOptions {
    /// `--scope`: overrides the scope the Secret's annotations declare.
    pub scope: Option<Scope>,
    /// `--namespace`: used when the Secret has none; a different namespace in the Secret is an error.
    pub namespace: Option<String>,
    /// `--allow-empty-data`: seal a Secret with neither `data` nor `stringData`.
    pub allow_empty_data: bool,
}

/// Parses a YAML or JSON stream (several documents allowed) into Secrets. Non-Secret documents
/// are an error; at least one Secret is required.
pub fn parse_secrets(text: &str) -> Result<Vec<Value>, Error> {
    let docs = parse_documents(text, "the Secret input")?;
    if docs.is_empty() {
        return Err(Error::InvalidSecret("no Secret found in the input".into()));
    }
    for d in &docs {
        if d.get("kind").and_then(Value::as_str) != Some("Secret") {
            return Err(Error::InvalidSecret(format!(
                "expected kind Secret, got {}",
                d.get("kind")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "no kind".into())
            )));
        }
    }
    Ok(docs)
}

/// Parses one SealedSecret (YAML or JSON).
pub fn parse_sealed_secret(text: &str) -> Result<Value, Error> {
    let mut docs = parse_documents(text, "the SealedSecret input")?;
    if docs.len() != 1 {
        return Err(Error::InvalidSealedSecret(format!(
            "expected exactly one SealedSecret, found {} documents",
            docs.len()
        )));
    }
    let doc = docs.remove(0);
    if doc.get("kind").and_then(Value::as_str) != Some("SealedSecret") {
        return Err(Error::InvalidSealedSecret(
            "kind is not SealedSecret".into(),
        ));
    }
    Ok(doc)
}

pub(crate) fn parse_documents(text: &str, what: &str) -> Result<Vec<Value>, Error> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| Error::format(what, e))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Seals one Secret (as parsed by [`parse_secrets`]) with `cert` into a SealedSecret object.
pub fn seal_secret(cert: &Certificate, secret: &Value, opts: &SealOptions) -> Result<Value, Error> {
    let mut meta = secret
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::InvalidSecret("metadata.name is required".into()))?
        .to_owned();
    for k in STRIPPED_METADATA {
        meta.remove(*k);
    }
    meta.remove("ownerReferences");

    let mut annotations = meta
        .get("annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for k in LEAKY_ANNOTATIONS {
        annotations.remove(*k);
    }
    let scope = match opts.scope {
        Some(s) => {
            s.write_annotations(&mut annotations);
            s
        }
        None => Scope::from_annotations(Some(&annotations)),
    };
    if annotations.is_empty() {
        meta.remove("annotations");
    } else {
        meta.insert("annotations".into(), Value::Object(annotations));
    }

    let own_ns = meta
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let namespace = match (own_ns, &opts.namespace) {
        (Some(a), Some(b)) if a != *b => {
            return Err(Error::InvalidSecret(format!(
                "Secret {name} is in namespace {a}, but namespace {b} was requested"
            )));
        }
        (Some(a), _) => Some(a),
        (None, Some(b)) => Some(b.clone()),
        (None, None) => None,
    };
    match &namespace {
        Some(ns) => {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        None if scope != Scope::ClusterWide => {
            return Err(Error::InvalidSecret(format!(
                "Secret {name} has no namespace: set metadata.namespace or --namespace (only cluster-wide secrets may omit it)"
            )));
        }
        None => {}
    }
    let label = scope.label(namespace.as_deref().unwrap_or(""), &name);

    let mut encrypted = Map::new();
    if let Some(data) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let b64 = v.as_str().unwrap_or("");
            let raw = B64
                .decode(b64.trim())
                .map_err(|e| Error::InvalidSecret(format!("data[{k}] is not base64: {e}")))?;
            encrypted.insert(
                k.clone(),
                Value::String(B64.encode(hybrid_encrypt(cert.public_key(), &raw, &label)?)),
            );
        }
    }
    if let Some(data) = secret.get("stringData").and_then(Value::as_object) {
        for (k, v) in data {
            let raw = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            encrypted.insert(
                k.clone(),
                Value::String(B64.encode(hybrid_encrypt(
                    cert.public_key(),
                    raw.as_bytes(),
                    &label,
                )?)),
            );
        }
    }
    if encrypted.is_empty() && !opts.allow_empty_data {
        return Err(Error::InvalidSecret(format!(
            "Secret {name} has neither data nor stringData (--allow-empty-data seals it anyway)"
        )));
    }

    let mut top_annotations = Map::new();
    scope.write_annotations(&mut top_annotations);
    let mut top_meta = Map::new();
    top_meta.insert("name".into(), Value::String(name));
    if let Some(ns) = &namespace {
        top_meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    if !top_annotations.is_empty() {
        top_meta.insert("annotations".into(), Value::Object(top_annotations));
    }

    let mut template = Map::new();
    template.insert("metadata".into(), Value::Object(meta));
    if let Some(t) = secret.get("type").filter(|t| !t.is_null()) {
        template.insert("type".into(), t.clone());
    }
    if let Some(i) = secret.get("immutable").filter(|i| !i.is_null()) {
        template.insert("immutable".into(), i.clone());
    }
    tracing::debug!(scope = %scope, keys = encrypted.len(), "sealed a Secret");
    Ok(json!({
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": Value::Object(top_meta),
        "spec": {
            "template": Value::Object(template),
            "encryptedData": Value::Object(encrypted),
        },
    }))
}

/// Opens a SealedSecret with the controller's private keys, as the controller (and kubeseal
/// `--recovery-unseal`) does: the label comes from the SealedSecret's own name, namespace and
/// top-level annotations. Returns the v1 Secret. `spec.data` (deprecated v1) is refused, as in
/// kubeseal; template `data` (Go templates) is not rendered.
pub fn unseal(keys: &PrivateKeys, sealed: &Value) -> Result<Value, Error> {
    let meta = sealed
        .get("metadata")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::InvalidSealedSecret("no metadata".into()))?;
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    let scope = Scope::from_annotations(meta.get("annotations").and_then(Value::as_object));
    let label = scope.label(namespace, name);
    if sealed.pointer("/spec/data").is_some_and(|d| !d.is_null()) {
        return Err(Error::InvalidSealedSecret(
            "deprecated spec.data (v1 format) is not supported".into(),
        ));
    }
    let mut data = Map::new();
    if let Some(enc) = sealed
        .pointer("/spec/encryptedData")
        .and_then(Value::as_object)
    {
        for (k, v) in enc {
            let ct = B64
                .decode(v.as_str().unwrap_or("").trim())
                .map_err(|e| Error::InvalidSealedSecret(format!("encryptedData[{k}]: {e}")))?;
            let plain = hybrid_decrypt(keys.keys(), &ct, &label).map_err(|e| match e {
                Error::NoKeyCouldDecrypt(_) => Error::NoKeyCouldDecrypt(format!(
                    " (key {k} of {namespace}/{name}, scope {scope})"
                )),
                other => other,
            })?;
            data.insert(k.clone(), Value::String(B64.encode(plain.as_slice())));
        }
    }
    let mut secret_meta = sealed
        .pointer("/spec/template/metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    secret_meta.insert("name".into(), Value::String(name.to_owned()));
    if !namespace.is_empty() {
        secret_meta.insert("namespace".into(), Value::String(namespace.to_owned()));
    }
    let mut secret = Map::new();
    secret.insert("apiVersion".into(), "v1".into());
    secret.insert("kind".into(), "Secret".into());
    secret.insert("metadata".into(), Value::Object(secret_meta));
    if let Some(t) = sealed.pointer("/spec/template/type") {
        secret.insert("type".into(), t.clone());
    }
    if let Some(i) = sealed.pointer("/spec/template/immutable") {
        secret.insert("immutable".into(), i.clone());
    }
    secret.insert("data".into(), Value::Object(data));
    Ok(Value::Object(secret))
}

/// An object as YAML, prefixed with `---` as kubeseal writes it.
pub fn to_yaml(obj: &Value) -> Result<String, Error> {
    let body = serde_saphyr::to_string(obj).map_err(|e| Error::format("writing YAML", e))?;
    Ok(format!("---\n{body}"))
}

/// An object as indented JSON (kubeseal's default output).
pub fn to_json(obj: &Value) -> Result<String, Error> {
    let mut s = serde_json::to_string_pretty(obj).map_err(|e| Error::format("writing JSON", e))?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::tests::cert_for;
    use crate::private_keys::test_key;

    fn fixtures() -> (Certificate, PrivateKeys) {
        let key = test_key();
        let cert = Certificate::from_pem(cert_for(&key, (2020, 1, 1), (2099, 1, 1)).as_bytes())
            .expect("cert");
        let mut keys = PrivateKeys::default();
        keys.push(key);
        (cert, keys)
    }

    const SECRET: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: team
  uid: 1234
  labels: {app: x}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"stringData":{"password":"leak"}}'
    keep: me
type: kubernetes.io/basic-auth
data:
  username: YWRtaW4=
stringData:
  password: s3cret
"#;

    #[test]
    fn seals_each_scope_and_unseals_back() {
        let (cert, keys) = fixtures();
        let secret = &parse_secrets(SECRET).expect("parse")[0];
        for scope in [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide] {
            let opts = SealOptions {
                scope: Some(scope),
                ..Default::default()
            };
            let sealed = seal_secret(&cert, secret, &opts).expect("seal");
            let text = to_yaml(&sealed).expect("yaml");
            assert!(
                !text.contains("s3cret") && !text.contains("leak") && !text.contains("YWRtaW4=")
            );
            assert_eq!(
                sealed.pointer("/spec/template/type"),
                Some(&json!("kubernetes.io/basic-auth"))
            );
            assert_eq!(
                sealed.pointer("/spec/template/metadata/labels/app"),
                Some(&json!("x"))
            );
            assert_eq!(
                sealed.pointer("/spec/template/metadata/annotations/keep"),
                Some(&json!("me"))
            );
            assert!(sealed.pointer("/spec/template/metadata/uid").is_none());
            let reparsed = parse_sealed_secret(&text).expect("reparse");
            let opened = unseal(&keys, &reparsed).expect("unseal");
            assert_eq!(opened.pointer("/data/username"), Some(&json!("YWRtaW4=")));
            assert_eq!(
                opened.pointer("/data/password"),
                Some(&json!(B64.encode("s3cret")))
            );
            assert_eq!(
                Scope::from_annotations(
                    sealed
                        .pointer("/metadata/annotations")
                        .and_then(Value::as_object)
                ),
                scope
            );
        }
    }

    #[test]
    fn renaming_breaks_strict_but_not_wider_scopes() {
        let (cert, keys) = fixtures();
        let secret = &parse_secrets(SECRET).expect("parse")[0];
        for (scope, rename_opens, move_opens) in [
            (Scope::Strict, false, false),
            (Scope::NamespaceWide, true, false),
            (Scope::ClusterWide, true, true),
        ] {
            let opts = SealOptions {
                scope: Some(scope),
                ..Default::default()
            };
            let sealed = seal_secret(&cert, secret, &opts).expect("seal");
            let mut renamed = sealed.clone();
            renamed["metadata"]["name"] = json!("other");
            assert_eq!(
                unseal(&keys, &renamed).is_ok(),
                rename_opens,
                "{scope} rename"
            );
            let mut moved = sealed.clone();
            moved["metadata"]["namespace"] = json!("elsewhere");
            assert_eq!(unseal(&keys, &moved).is_ok(), move_opens, "{scope} move");
        }
    }

    #[test]
    fn namespace_rules() {
        let (cert, _) = fixtures();
        let no_ns = &parse_secrets("kind: Secret\nmetadata: {name: a}\nstringData: {k: v}\n")
            .expect("p")[0];
        assert!(seal_secret(&cert, no_ns, &SealOptions::default()).is_err());
        let opts = SealOptions {
            namespace: Some("n1".into()),
            ..Default::default()
        };
        let s = seal_secret(&cert, no_ns, &opts).expect("ns from option");
        assert_eq!(s.pointer("/metadata/namespace"), Some(&json!("n1")));
        let cw = SealOptions {
            scope: Some(Scope::ClusterWide),
            ..Default::default()
        };
        assert!(
            seal_secret(&cert, no_ns, &cw)
                .expect("cluster-wide")
                .pointer("/metadata/namespace")
                .is_none()
        );
        let in_team = &parse_secrets(SECRET).expect("p")[0];
        assert!(
            seal_secret(&cert, in_team, &opts).is_err(),
            "conflicting namespace"
        );
    }

    #[test]
    fn empty_and_nameless_secrets_are_refused() {
        let (cert, _) = fixtures();
        let empty =
            &parse_secrets("kind: Secret\nmetadata: {name: a, namespace: b}\n").expect("p")[0];
        assert!(seal_secret(&cert, empty, &SealOptions::default()).is_err());
        let allow = SealOptions {
            allow_empty_data: true,
            ..Default::default()
        };
        assert!(seal_secret(&cert, empty, &allow).is_ok());
        let nameless =
            &parse_secrets("kind: Secret\nmetadata: {namespace: b}\nstringData: {k: v}\n")
                .expect("p")[0];
        assert!(seal_secret(&cert, nameless, &SealOptions::default()).is_err());
        assert!(parse_secrets("kind: ConfigMap\n").is_err());
        assert!(parse_secrets("").is_err());
    }
}
