//! The crate's error type. Every variant names what was being done and, where the user can act,
//! what would fix it.

use thiserror::Error;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to an OpenStack cloud.
#[derive(Debug, Error)]
pub enum Error {
    /// `clouds.yaml` / `secure.yaml` / `OS_*` could not give a usable cloud entry.
    #[error("cloud configuration: {message}")]
    Config {
        /// What is wrong and what would fix it.
        message: String,
    },
    /// Keystone refused the credentials (never retried: a wrong password does not heal).
    #[error("authentication to cloud `{cloud}` failed: {message}")]
    Auth {
        /// Cloud entry name (or `OS_*` environment).
        cloud: String,
        /// Keystone's answer and a hint.
        message: String,
    },
    /// The caller is authenticated but not allowed to do this.
    #[error("{action}: forbidden ({message}){hint}")]
    Forbidden {
        /// What was attempted (`create application credential`, …).
        action: String,
        /// The service's message.
        message: String,
        /// `; <what to do>` or empty.
        hint: String,
    },
    /// An API call failed with a non-transient status, or a transient one after every retry.
    #[error("{service} {method} {path}: HTTP {status}: {message}")]
    Api {
        /// Service type (`network`, `compute`, …).
        service: String,
        /// HTTP method.
        method: String,
        /// Path below the service endpoint.
        path: String,
        /// HTTP status.
        status: u16,
        /// The service's error message (or body).
        message: String,
    },
    /// The request did not get an answer (connection refused/reset, timeout), after every retry.
    #[error("{service} {method} {path}: {message}")]
    Transport {
        /// Service type.
        service: String,
        /// HTTP method.
        method: String,
        /// Path below the service endpoint.
        path: String,
        /// What the HTTP client said.
        message: String,
    },
    /// A resource did not reach the wanted state in time.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout {
        /// The resource and the state waited for.
        what: String,
        /// How long we waited.
        seconds: u64,
    },
    /// A response did not have the shape the API reference gives.
    #[error("{what}: unexpected response: {message}")]
    Response {
        /// The call.
        what: String,
        /// What was missing or malformed.
        message: String,
    },
    /// Invalid input from the caller (a definition value the cloud cannot take).
    #[error("{0}")]
    Invalid(String),
    /// A local file (image to upload) could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl Error {
    /// HTTP status of an API error, if it is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A 404 from the service.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The service certainly did not act on the request: it said so (429, 503) or the connection
    /// was never made. Only then is a non-idempotent request (POST) sent again — after a timeout
    /// or a 500/502/504 the create may have happened (Nova commits a create whose answer was
    /// lost), and the caller's find-before-create decides instead.
    pub fn is_unprocessed(&self) -> bool {
        match self {
            Error::Api { status, .. } => matches!(status, 429 | 503),
            Error::Transport { message, .. } => {
                let m = message.to_ascii_lowercase();
                (m.contains("connection refused")
                    || m.contains("tcp connect")
                    || m.contains("dns error"))
                    && !m.contains("timed out")
            }
            _ => false,
        }
    }

    /// Worth another attempt: 5xx, 429, or no answer at all. 4xx (bad input, auth, conflict) is
    /// not: repeating the same request gets the same answer, and retrying a 401 turns a typo into
    /// a lock-out.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            Error::Transport { .. } => true,
            _ => false,
        }
    }
}

/// An error and its sources, `: `-joined (the HTTP client's own message is often only the last).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}
