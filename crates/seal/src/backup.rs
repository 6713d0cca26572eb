//! The sealing-key backup: the controller's active key Secrets exported as a `v1 List` (the
//! format kubeseal `--recovery-private-key` reads), encrypted to the owners with age, and
//! restored into a new controller's namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::Error;
use crate::owners::{Identities, Recipients, decrypt_for_owner, encrypt_to_owners};
use crate::private_keys::parse_private_keys;
use crate::sealed_secret::{parse_documents, to_yaml};

/// The label the controller selects its keys by (value `active`).
pub const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
/// The name of the legacy single-key Secret (the default `--key-prefix`).
const LEGACY_KEY_NAME: &str = "sealed-secrets-key";
const FIELD_MANAGER: &str = "manage";

/// An exported set of sealing keys (plaintext: handle with care, encrypt with [`seal_backup`]).
pub struct KeyBackup {
    /// The `v1 List` of `kubernetes.io/tls` Secrets, YAML.
    pub list_yaml: Zeroizing<String>,
    /// Fingerprints of the keys inside (SSH SHA256, as the controller logs them).
    pub fingerprints: Vec<String>,
    /// Names of the Secrets.
    pub names: Vec<String>,
}

impl std::fmt::Debug for KeyBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBackup")
            .field("names", &self.names)
            .field("fingerprints", &self.fingerprints)
            .finish_non_exhaustive()
    }
}

/// Reads the controller's active key Secrets (label `…/sealed-secrets-key=active`, plus the
/// legacy `sealed-secrets-key` Secret) from `namespace`.
pub async fn fetch_active_keys(client: &Client, namespace: &str) -> Result<Vec<Secret>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut keys = api
        .list(&ListParams::default().labels(&format!("{KEY_LABEL}=active")))
        .await
        .map_err(|e| Error::kube(format!("listing sealing keys in {namespace}"), e))?
        .items;
    let has_legacy = keys
        .iter()
        .any(|s| s.metadata.name.as_deref() == Some(LEGACY_KEY_NAME));
    let legacy = if has_legacy {
        None
    } else {
        api.get_opt(LEGACY_KEY_NAME)
            .await
            .map_err(|e| Error::kube(format!("reading {namespace}/{LEGACY_KEY_NAME}"), e))?
    };
    keys.extend(legacy);
    if keys.is_empty() {
        return Err(Error::NoActiveKeys(namespace.to_owned()));
    }
    keys.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(keys)
}

/// Builds the backup List from key Secrets: name, labels, type and data only (no namespace, uid
/// or ownership), so it restores anywhere.
pub fn export_keys(secrets: &[Secret]) -> Result<KeyBackup, Error> {
    let mut items = Vec::new();
    let mut names = Vec::new();
    for s in secrets {
        let name = s.metadata.name.clone().unwrap_or_default();
        let mut labels = s.metadata.labels.clone().unwrap_or_default();
        labels.insert(KEY_LABEL.into(), "active".into());
        let data = serde_json::to_value(s.data.clone().unwrap_or_default())
            .map_err(|e| Error::format("encoding key data", e))?;
        items.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": labels},
            "type": s.type_.clone().unwrap_or_else(|| "kubernetes.io/tls".into()),
            "data": data,
        }));
        names.push(name);
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let list_yaml = Zeroizing::new(to_yaml(&list)?);
    let fingerprints = parse_private_keys(&list_yaml)?.fingerprints();
    Ok(KeyBackup {
        list_yaml,
        fingerprints,
        names,
    })
}

/// Encrypts a backup to the owners (armored age); safe to store, even in git.
pub fn seal_backup(backup: &KeyBackup, owners: &Recipients) -> Result<String, Error> {
    encrypt_to_owners(owners, backup.list_yaml.as_bytes())
}

/// Decrypts an encrypted backup with an owner's key.
pub fn open_backup(encrypted: &[u8], identity: &Identities) -> Result<KeyBackup, Error> {
    let plain = decrypt_for_owner(identity, encrypted)?;
    let text = Zeroizing::new(
        String::from_utf8(plain.to_vec())
            .map_err(|_| Error::PrivateKey("the backup is not text".into()))?,
    );
    let fingerprints = parse_private_keys(&text)?.fingerprints();
    let names = parse_documents(&text, "the key backup")?
        .iter()
        .flat_map(|d| {
            d.get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|i| {
            i.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    Ok(KeyBackup {
        list_yaml: text,
        fingerprints,
        names,
    })
}

/// Puts the backed-up key Secrets into `namespace` (server-side apply, idempotent), labelled
/// active. A running controller picks them up on restart (or live with `--watch-for-secrets`);
/// restore before the new controller first starts so it does not generate a key of its own.
pub async fn restore_keys(
    client: &Client,
    namespace: &str,
    backup: &KeyBackup,
) -> Result<Vec<String>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let docs = parse_documents(&backup.list_yaml, "the key backup")?;
    let items: Vec<Value> = docs
        .iter()
        .flat_map(|d| match d.get("kind").and_then(Value::as_str) {
            Some("List") => d
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            _ => vec![d.clone()],
        })
        .collect();
    let mut restored = Vec::new();
    for item in items {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::PrivateKey("a key Secret in the backup has no name".into()))?
            .to_owned();
        let mut labels: BTreeMap<String, String> = item
            .pointer("/metadata/labels")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| Error::format("key labels", e))?
            .unwrap_or_default();
        labels.insert(KEY_LABEL.into(), "active".into());
        let data = item
            .get("data")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| Error::format("key data", e))?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.to_owned()),
                labels: Some(labels),
                ..Default::default()
            },
            type_: Some(
                item.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("kubernetes.io/tls")
                    .to_owned(),
            ),
            data,
            ..Default::default()
        };
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(|e| Error::kube(format!("restoring sealing key {namespace}/{name}"), e))?;
        tracing::info!(namespace, name = %name, "restored a sealing key");
        restored.push(name);
    }
    Ok(restored)
}
