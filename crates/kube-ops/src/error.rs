//! The crate's error type: each variant names the operation and the object it failed on.

use std::path::PathBuf;

/// What went wrong in discovery, planning, moving or backup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `KUBECONFIG[:CONTEXT]` argument or kubeconfig file could not be used.
    #[error("cannot use kubeconfig {what}: {message}")]
    Kubeconfig {
        /// The argument or file.
        what: String,
        /// Why.
        message: String,
    },
    /// A request to an API server failed (after retries, when the failure was transient).
    #[error("{op} {object} on {cluster}: {source}")]
    Api {
        /// The operation (`create`, `list`, `patch`, …).
        op: &'static str,
        /// The object or type, `Kind namespace/name`.
        object: String,
        /// Which cluster (`source`, `target`).
        cluster: String,
        /// The client error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A request did not answer in time (after retries).
    #[error("{op} {object} on {cluster}: no answer within {secs}s")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The object.
        object: String,
        /// Which cluster.
        cluster: String,
        /// The per-request limit.
        secs: u64,
    },
    /// A pre-check refused the move; nothing was changed.
    #[error("refusing to move: {0}")]
    Refused(String),
    /// An object could not be read as the kind of object it claims to be.
    #[error("malformed object {object}: {message}")]
    Malformed {
        /// The object.
        object: String,
        /// What is wrong.
        message: String,
    },
    /// Waiting for `clusterctl.cluster.x-k8s.io/block-move` to be removed timed out.
    #[error(
        "{object} still carries clusterctl.cluster.x-k8s.io/block-move after {secs}s; the source stays paused, rerun once the provider removes it"
    )]
    BlockMove {
        /// The object.
        object: String,
        /// How long we waited.
        secs: u64,
    },
    /// Reading or writing the journal or a backup directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The journal belongs to another move or cannot be parsed.
    #[error("journal {path}: {message}")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Several objects failed in one step; each is listed.
    #[error("{step} failed for {} object(s):\n  {}", .errors.len(), .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Aggregate {
        /// The step.
        step: &'static str,
        /// One error per object.
        errors: Vec<Error>,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs every task, at most `parallelism` at once. A failure does not stop the others: all
/// failures come back together as one [`Error::Aggregate`] for `step`.
pub(crate) async fn run_all<S, F>(step: &'static str, parallelism: usize, tasks: S) -> Result<()>
where
    S: futures::Stream<Item = F>,
    F: std::future::Future<Output = Result<()>>,
{
    use futures::StreamExt;
    let errors: Vec<Error> = tasks
        .buffer_unordered(parallelism.max(1))
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    Error::aggregate(step, errors)
}

impl Error {
    /// `Ok` when nothing failed, else one [`Error::Aggregate`] listing every failure of `step`.
    pub(crate) fn aggregate(step: &'static str, errors: Vec<Error>) -> Result<()> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Aggregate { step, errors })
        }
    }

    /// The HTTP status of the API answer behind this error, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { source, .. } => status_code(source),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed (connection problems, timeouts, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { source, .. } => is_transient(source),
            Error::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// Whether a client error is worth retrying: anything that is not an API answer, and API
/// answers 429, 5xx and the server-side timeouts (408/504 reasons).
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            s.code == 429
                || s.code >= 500
                || s.code == 408
                || s.reason == "Timeout"
                || s.reason == "ServerTimeout"
                || s.reason == "TooManyRequests"
                || s.reason == "InternalError"
                || s.reason == "ServiceUnavailable"
        }
        kube::Error::BuildRequest(_)
        | kube::Error::SerdeError(_)
        | kube::Error::InferConfig(_)
        | kube::Error::Discovery(_) => false,
        _ => true,
    }
}

/// The API status code of a client error, if the server answered.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}
