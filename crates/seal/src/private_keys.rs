//! The controller's private keys as kubeseal `--recovery-private-key` reads them: PEM keys
//! (PKCS#1 or PKCS#8 RSA), a `kubernetes.io/tls` Secret, or a `v1 List` of them (the backup
//! format of `kubectl get secret -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`).

use base64::Engine as _;
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use serde_json::Value;

use crate::Error;
use crate::certificate::public_key_fingerprint;

/// A set of the controller's private keys, each known by its fingerprint.
#[derive(Clone, Default)]
pub struct PrivateKeys {
    keys: Vec<(String, RsaPrivateKey)>,
}

impl std::fmt::Debug for PrivateKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(fp, _)| fp))
            .finish()
    }
}

impl PrivateKeys {
    /// Adds a key (a key already present is ignored).
    pub fn push(&mut self, key: RsaPrivateKey) {
        let fp = public_key_fingerprint(&key.to_public_key());
        if !self.keys.iter().any(|(f, _)| *f == fp) {
            self.keys.push((fp, key));
        }
    }

    /// The keys.
    pub fn keys(&self) -> impl Iterator<Item = &RsaPrivateKey> {
        self.keys.iter().map(|(_, k)| k)
    }

    /// Fingerprints of the keys, in the order added.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|(f, _)| f.clone()).collect()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Parses one file's worth of private keys: PEM (PKCS#1/PKCS#8 RSA, several blocks allowed),
/// or YAML/JSON holding a Secret or a List of Secrets with `data["tls.key"]`.
pub fn parse_private_keys(text: &str) -> Result<PrivateKeys, Error> {
    let mut keys = PrivateKeys::default();
    if text.contains("-----BEGIN") && !text.contains("tls.key") {
        for block in pem_blocks(text) {
            keys.push(parse_pem_key(&block)?);
        }
    } else {
        let docs: Vec<Value> = serde_saphyr::from_multiple(text)
            .map_err(|e| Error::PrivateKey(format!("neither PEM nor YAML/JSON: {e}")))?;
        for doc in docs {
            collect_from_object(&doc, &mut keys)?;
        }
    }
    if keys.is_empty() {
        return Err(Error::PrivateKey("no RSA private key found".into()));
    }
    Ok(keys)
}

fn collect_from_object(obj: &Value, keys: &mut PrivateKeys) -> Result<(), Error> {
    match obj.get("kind").and_then(Value::as_str) {
        Some("List") | Some("SecretList") => {
            for item in obj
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                collect_from_object(item, keys)?;
            }
            Ok(())
        }
        Some("Secret") => {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let b64 = obj
                .pointer("/data/tls.key")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::PrivateKey(format!("Secret {name} has no data[tls.key]")))?;
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| Error::PrivateKey(format!("Secret {name} tls.key: {e}")))?;
            let pem = String::from_utf8(pem)
                .map_err(|_| Error::PrivateKey(format!("Secret {name} tls.key is not PEM")))?;
            for block in pem_blocks(&pem) {
                keys.push(parse_pem_key(&block)?);
            }
            Ok(())
        }
        other => Err(Error::PrivateKey(format!(
            "expected a Secret or a List of Secrets, got kind {other:?}"
        ))),
    }
}

fn pem_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN") && line.contains("PRIVATE KEY") {
            cur = Some(String::new());
        }
        if let Some(c) = cur.as_mut() {
            c.push_str(line);
            c.push('\n');
            if line.starts_with("-----END") {
                out.extend(cur.take());
            }
        }
    }
    out
}

fn parse_pem_key(pem: &str) -> Result<RsaPrivateKey, Error> {
    if pem.contains("BEGIN RSA PRIVATE KEY") {
        RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| Error::PrivateKey(format!("PKCS#1: {e}")))
    } else {
        RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| Error::PrivateKey(format!("PKCS#8 (must be RSA): {e}")))
    }
}

/// A 2048-bit key shared by the unit tests (generated once per test binary).
#[cfg(test)]
pub(crate) fn test_key() -> RsaPrivateKey {
    static KEY: std::sync::OnceLock<RsaPrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("test key"))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};

    #[test]
    fn reads_pem_pkcs1_pkcs8_secret_and_list() {
        let key = test_key();
        let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).expect("pkcs1");
        let pkcs8 = key.to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
        assert_eq!(parse_private_keys(&pkcs1).expect("pkcs1").len(), 1);
        assert_eq!(parse_private_keys(&pkcs8).expect("pkcs8").len(), 1);
        let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs1.as_bytes());
        let secret = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: k}}\ntype: kubernetes.io/tls\ndata:\n  tls.key: {b64}\n  tls.crt: eA==\n"
        );
        assert_eq!(parse_private_keys(&secret).expect("secret").len(), 1);
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {{name: k}}\n  data: {{tls.key: {b64}}}\n"
        );
        let keys = parse_private_keys(&list).expect("list");
        assert_eq!(
            keys.fingerprints(),
            vec![public_key_fingerprint(&key.to_public_key())]
        );
    }
}
