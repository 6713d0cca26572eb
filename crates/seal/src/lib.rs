//! Sealing the kubeseal way, natively: the hybrid encryption of bitnami sealed-secrets
//! (RSA-OAEP-SHA256 + AES-256-GCM, bit-compatible), SealedSecret objects for each scope, the
//! controller's certificate from a file, a URL or the API server's service proxy, recovery
//! (offline unseal with the controller's private keys), the sealing-key backup encrypted to the
//! owners (age, X25519 and SSH recipients) and its restore, and the owners' file encryption.
//!
//! ```no_run
//! # fn f(secret_yaml: &str, pem: &[u8]) -> Result<(), seal::Error> {
//! let cert = seal::Certificate::from_pem(pem)?;
//! cert.check_not_expired()?;
//! let secrets = seal::parse_secrets(secret_yaml)?;
//! let sealed = seal::seal_secret(&cert, &secrets[0], &seal::SealOptions::default())?;
//! println!("{}", seal::to_yaml(&sealed)?);
//! # Ok(()) }
//! ```

mod backup;
mod cert_source;
mod certificate;
mod error;
mod hybrid;
mod owners;
mod private_keys;
mod scope;
mod sealed_secret;

pub use backup::{
    KEY_LABEL, KeyBackup, export_keys, fetch_active_keys, open_backup, restore_keys, seal_backup,
};
pub use cert_source::{
    CertSource, ControllerRef, DEFAULT_CONTROLLER_NAME, DEFAULT_CONTROLLER_NAMESPACE,
    HELM_CONTROLLER_NAME, cert_proxy_path, fetch_certificate, service_path,
};
pub use certificate::Certificate;
pub use error::Error;
pub use hybrid::{hybrid_decrypt, hybrid_encrypt};
pub use owners::{Identities, Recipients, decrypt_for_owner, encrypt_to_owners};
pub use private_keys::{PrivateKeys, parse_private_keys};
pub use scope::{CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, Scope};
pub use sealed_secret::{
    SealOptions, parse_sealed_secret, parse_secrets, seal_secret, to_json, to_yaml, unseal,
};

/// Installs rustls' ring crypto provider for the kube client (once per process; a second
/// install is a harmless no-op). Needed because the workspace links two providers.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
