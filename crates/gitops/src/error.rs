//! The crate's error type: each variant names what failed.

/// Everything that can go wrong in git or the Flux hand-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A git operation failed.
    #[error("{what}: {source}")]
    Git {
        /// The operation.
        what: String,
        /// The cause.
        #[source]
        source: git2::Error,
    },
    /// A file to be committed holds a secret in plaintext; nothing was committed.
    #[error("refusing to commit: {}\nnothing was committed; seal secrets with `manage seal` and keep credentials files git-ignored", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    PlaintextSecret(Vec<crate::Refusal>),
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The repository is not set up as needed (no remote, detached HEAD, …).
    #[error("{0}")]
    Repository(String),
    /// Authentication material is missing or unusable.
    #[error("{0}")]
    Auth(String),
    /// The push was rejected by the remote.
    #[error("the remote rejected {reference}: {message}")]
    PushRejected {
        /// The ref.
        reference: String,
        /// The server's message.
        message: String,
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
    /// Flux reported a failure, or did not apply the revision in time.
    #[error("{0}")]
    Flux(String),
    /// A new deploy key was made and must be authorized on the git host before Flux can fetch;
    /// in non-interactive mode the hand-off stops here (the key is already in the cluster, so a
    /// rerun after authorizing it reuses it).
    #[error("add this deploy key (read-only is enough) to {url}, then rerun:\n{public_key}")]
    DeployKeyNeeded {
        /// The repository URL.
        url: String,
        /// `ssh-ed25519 AAAA… comment`.
        public_key: String,
    },
    /// YAML/JSON encoding failed.
    #[error("{0}")]
    Format(String),
}

impl Error {
    pub(crate) fn git(what: impl Into<String>, source: git2::Error) -> Self {
        Error::Git {
            what: what.into(),
            source,
        }
    }
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
    pub(crate) fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            what: what.into(),
            source,
        }
    }
}
