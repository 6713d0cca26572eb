//! The crate's error type: each variant names what failed.

/// Everything that can go wrong while sealing, unsealing, fetching certificates or keys, and
/// encrypting for owners.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate is not PEM, not X.509, or has no RSA public key.
    #[error("invalid sealing certificate: {0}")]
    Certificate(String),
    /// The certificate is past its NotAfter (kubeseal refuses it too).
    #[error(
        "the sealing certificate expired at {not_after} (fingerprint {fingerprint}); fetch the controller's current certificate"
    )]
    CertificateExpired {
        /// NotAfter, RFC 3339.
        not_after: String,
        /// SSH SHA256 fingerprint of its public key.
        fingerprint: String,
    },
    /// Reading a local file failed.
    #[error("reading {path}: {source}")]
    ReadFile {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Fetching the certificate from a URL failed.
    #[error("fetching the certificate from {url}: {reason}")]
    FetchUrl {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Talking to the API server failed.
    #[error("{what}: {source}")]
    Kube {
        /// The operation.
        what: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The sealed-secrets controller's Service was not found under any name tried.
    #[error(
        "no sealed-secrets controller Service {tried} found; pass --controller-name/--controller-namespace (Helm installs usually name it `sealed-secrets`) or --cert"
    )]
    ControllerNotFound {
        /// The namespace/name pairs tried.
        tried: String,
    },
    /// The input is not a usable Secret.
    #[error("invalid Secret input: {0}")]
    InvalidSecret(String),
    /// The input is not a usable SealedSecret.
    #[error("invalid SealedSecret input: {0}")]
    InvalidSealedSecret(String),
    /// YAML or JSON could not be parsed or written.
    #[error("{what}: {reason}")]
    Format {
        /// What was being parsed or written.
        what: String,
        /// The parser's message.
        reason: String,
    },
    /// RSA or AES encryption failed.
    #[error("encryption failed: {0}")]
    Encrypt(String),
    /// The ciphertext is shorter than its own length prefix says.
    #[error("SealedSecret data is too short")]
    TooShort,
    /// No private key opened the ciphertext (wrong key, or the name/namespace/scope changed).
    #[error("no key could decrypt secret{0}")]
    NoKeyCouldDecrypt(String),
    /// A private key could not be parsed.
    #[error("invalid private key: {0}")]
    PrivateKey(String),
    /// An owner's public key (recipient) or private key (identity) is unusable.
    #[error("owner key: {0}")]
    OwnerKey(String),
    /// age encryption or decryption failed.
    #[error("age: {0}")]
    Age(String),
    /// The controller has no active sealing key to back up.
    #[error(
        "no active sealing key (label sealedsecrets.bitnami.com/sealed-secrets-key=active) in namespace {0}"
    )]
    NoActiveKeys(String),
}

impl Error {
    pub(crate) fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn format(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Format {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
