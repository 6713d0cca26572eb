//! Pushing to the tracked remote over SSH (key file or agent, host key checked against
//! known_hosts) or HTTPS (token), and reading a server's SSH host key for Flux's known_hosts.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use git2::{CertificateCheckStatus, Cred, CredentialType, PushOptions, RemoteCallbacks};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use zeroize::Zeroizing;

use crate::{Error, Repo};

/// How to authenticate to the remote. Secrets never go to logs or process arguments.
#[derive(Default)]
pub struct Auth {
    /// SSH private key file (unencrypted).
    pub ssh_key: Option<PathBuf>,
    /// Use the SSH agent (`SSH_AUTH_SOCK`) when no key file is given.
    pub ssh_agent: bool,
    /// known_hosts file the SSH server's key must be in (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// HTTPS token (sent as the password).
    pub token: Option<Zeroizing<String>>,
    /// HTTPS user name for the token (default `git`).
    pub username: Option<String>,
    /// PEM file of extra certificate authorities to trust for the HTTPS server (a private CA).
    /// The server's certificate must chain to one of them and name the host; otherwise
    /// libgit2's own verification against the system's authorities decides. Verification is
    /// never turned off.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("ssh_key", &self.ssh_key)
            .field("ssh_agent", &self.ssh_agent)
            .field("known_hosts", &self.known_hosts)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("username", &self.username)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// Remote name.
    pub remote: String,
    /// Remote URL.
    pub url: String,
    /// Remote branch.
    pub branch: String,
    /// The commit the remote branch now points at.
    pub commit: String,
}

impl Repo {
    /// Pushes the current branch to the remote branch it tracks.
    pub fn push(&self, auth: &Auth) -> Result<PushReport, Error> {
        let tracked = self.tracked_remote()?;
        let commit = self
            .head_commit()
            .ok_or_else(|| Error::Repository("nothing to push: no commit".into()))?;
        let mut remote = self
            .repo
            .find_remote(&tracked.remote)
            .map_err(|e| Error::git(format!("opening remote {}", tracked.remote), e))?;
        let rejected: RefCell<Option<(String, String)>> = RefCell::new(None);
        let refused_host = RefCell::new(None);
        let mut callbacks = callbacks(auth, None, &refused_host)?;
        callbacks.push_update_reference(|reference, status| {
            if let Some(msg) = status {
                *rejected.borrow_mut() = Some((reference.to_owned(), msg.to_owned()));
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(callbacks);
        let refspec = format!(
            "refs/heads/{}:refs/heads/{}",
            tracked.branch, tracked.remote_branch
        );
        remote
            .push(&[refspec.as_str()], Some(&mut opts))
            .map_err(|e| match refused_host.borrow_mut().take() {
                Some(reason) => Error::Auth(reason),
                None if is_certificate_error(&e) => untrusted_certificate(&tracked.url, auth, &e),
                None => Error::git(
                    format!(
                        "pushing {} to {} ({})",
                        tracked.branch, tracked.remote, tracked.url
                    ),
                    e,
                ),
            })?;
        drop(opts);
        if let Some((reference, message)) = rejected.borrow_mut().take() {
            return Err(Error::PushRejected { reference, message });
        }
        tracing::info!(remote = %tracked.remote, branch = %tracked.remote_branch, %commit, "pushed");
        Ok(PushReport {
            remote: tracked.remote,
            url: tracked.url,
            branch: tracked.remote_branch,
            commit,
        })
    }

    /// The commit the remote's branch points at (an ls-remote), or `None` if it has no such branch.
    pub fn remote_head(&self, auth: &Auth) -> Result<Option<String>, Error> {
        let tracked = self.tracked_remote()?;
        let mut remote = self
            .repo
            .find_remote(&tracked.remote)
            .map_err(|e| Error::git(format!("opening remote {}", tracked.remote), e))?;
        let refused_host = RefCell::new(None);
        let conn = remote
            .connect_auth(
                git2::Direction::Fetch,
                Some(callbacks(auth, None, &refused_host)?),
                None,
            )
            .map_err(|e| match refused_host.borrow_mut().take() {
                Some(reason) => Error::Auth(reason),
                None if is_certificate_error(&e) => untrusted_certificate(&tracked.url, auth, &e),
                None => Error::git(format!("connecting to {}", tracked.url), e),
            })?;
        let want = format!("refs/heads/{}", tracked.remote_branch);
        let heads = conn
            .list()
            .map_err(|e| Error::git("listing remote refs", e))?;
        Ok(heads
            .iter()
            .find(|h| h.name() == want)
            .map(|h| h.oid().to_string()))
    }
}

/// Remote callbacks: credentials from `auth`, the SSH host key checked against known_hosts (the
/// reason of a refusal goes to `refused`, since libgit2 replaces the callback's message), or
/// only captured into `capture` (host-key scan).
fn callbacks<'a>(
    auth: &'a Auth,
    capture: Option<&'a RefCell<Option<String>>>,
    refused: &'a RefCell<Option<String>>,
) -> Result<RemoteCallbacks<'a>, Error> {
    let mut cb = RemoteCallbacks::new();
    let mut attempts = 0u32;
    let mut offered_token = false;
    let extra_roots = match &auth.ca_file {
        Some(path) => Some(load_verifier(path)?),
        None => None,
    };
    cb.credentials(move |url, user_from_url, allowed| {
        attempts += 1;
        if attempts > 3 {
            let reason = if offered_token {
                format!(
                    "the server at {url} rejected the HTTPS credentials (user {}, token): check the token and its rights",
                    auth.username.as_deref().unwrap_or("git")
                )
            } else {
                format!("the server at {url} rejected the credentials")
            };
            let err = git2::Error::from_str(&reason);
            *refused.borrow_mut() = Some(reason);
            return Err(err);
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = user_from_url.unwrap_or("git");
            if let Some(key) = &auth.ssh_key {
                return Cred::ssh_key(user, None, key, None);
            }
            if auth.ssh_agent {
                return Cred::ssh_key_from_agent(user);
            }
            return Err(git2::Error::from_str(
                "the remote wants an SSH key: give a key file or use the agent",
            ));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some(token) = &auth.token {
                offered_token = true;
                return Cred::userpass_plaintext(auth.username.as_deref().unwrap_or("git"), token);
            }
            return Err(git2::Error::from_str(
                "the remote wants HTTPS credentials: give a token",
            ));
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user_from_url.unwrap_or("git"));
        }
        Err(git2::Error::from_str(
            "no usable credential type offered by the remote",
        ))
    });
    let known = auth
        .known_hosts
        .clone()
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh/known_hosts")));
    cb.certificate_check(move |cert, host| {
        if let Some(x509) = cert.as_x509() {
            // A private CA: accept what chains to it for this host; else libgit2's verdict.
            return Ok(match &extra_roots {
                Some(v) if verify_x509(v, x509.data(), host) => CertificateCheckStatus::CertificateOk,
                _ => CertificateCheckStatus::CertificatePassthrough,
            });
        }
        let Some(hostkey) = cert.as_hostkey() else {
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let (Some(raw), Some(kind)) = (hostkey.hostkey(), hostkey.hostkey_type()) else {
            return Err(git2::Error::from_str("the SSH server sent no host key"));
        };
        let line = format!("{} {}", kind.name(), base64::engine::general_purpose::STANDARD.encode(raw));
        if let Some(c) = capture {
            *c.borrow_mut() = Some(line);
            return Err(git2::Error::from_str("host key captured"));
        }
        let text = known
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        if known_hosts_accepts(&text, host, kind.name(), raw) {
            Ok(CertificateCheckStatus::CertificateOk)
        } else {
            let reason = format!(
                "the SSH host key of {host} ({}) is not in {}; add it (ssh-keyscan) or pass the right known_hosts",
                kind.name(),
                known.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "known_hosts".into())
            );
            let err = git2::Error::from_str(&reason);
            *refused.borrow_mut() = Some(reason);
            Err(err)
        }
    });
    Ok(cb)
}

/// Whether libgit2 refused the server's TLS certificate (OpenSSL reports it as an SSL-class error).
fn is_certificate_error(e: &git2::Error) -> bool {
    e.code() == git2::ErrorCode::Certificate
        || (e.class() == git2::ErrorClass::Ssl && e.message().contains("certificate"))
}

/// The HTTPS server's certificate was not accepted (neither by the system's authorities nor by
/// `auth.ca_file`).
fn untrusted_certificate(url: &str, auth: &Auth, e: &git2::Error) -> Error {
    let hint = match &auth.ca_file {
        Some(ca) => format!(
            "it does not chain to a CA in {} for this host",
            ca.display()
        ),
        None => "give the CA that signed it (a CA file) if it is a private one".to_owned(),
    };
    Error::Auth(format!(
        "the TLS certificate of {url} is not trusted ({}): {hint}",
        e.message()
    ))
}

/// A verifier of server certificates against the authorities in a PEM file (only those).
fn load_verifier(path: &Path) -> Result<Arc<WebPkiServerVerifier>, Error> {
    let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            Error::Auth(format!(
                "{}: not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
        roots.add(cert).map_err(|e| {
            Error::Auth(format!("{}: unusable CA certificate: {e}", path.display()))
        })?;
    }
    if roots.is_empty() {
        return Err(Error::Auth(format!(
            "{}: no certificate in the CA file",
            path.display()
        )));
    }
    WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| Error::Auth(format!("{}: {e}", path.display())))
}

/// Whether the server's certificate (DER) chains to the verifier's authorities, names `host`
/// and is valid now.
fn verify_x509(verifier: &WebPkiServerVerifier, der: &[u8], host: &str) -> bool {
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        return false;
    };
    let leaf = CertificateDer::from(der.to_vec());
    let result = verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now());
    if let Err(e) = &result {
        tracing::debug!(%host, error = %e, "the server certificate does not chain to the given CA");
    }
    result.is_ok()
}

/// Whether a known_hosts text has `host` (plain `host` or `[host]:port`; hashed entries are not
/// supported) with exactly this key.
fn known_hosts_accepts(text: &str, host: &str, kind: &str, raw: &[u8]) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    text.lines().any(|line| {
        let mut parts = line.split_whitespace();
        let (Some(hosts), Some(k), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        k == kind
            && key == b64
            && hosts.split(',').any(|h| {
                let name = h
                    .strip_prefix('[')
                    .and_then(|r| r.split_once("]:"))
                    .map_or(h, |(n, _)| n);
                name == host
            })
    })
}

/// Connects to an SSH git URL only far enough to read the server's host key, and returns the
/// known_hosts line Flux wants (`[host]:port <type> <key>` for a port other than 22). Trust on
/// first use, as `flux bootstrap` does: compare it with a line you trust when you can.
pub fn scan_host_key(url: &str) -> Result<String, Error> {
    let rest = url
        .strip_prefix("ssh://")
        .ok_or_else(|| Error::Repository(format!("{url} is not an ssh:// URL")))?;
    let authority = rest.split('/').next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_field = match hostport.rsplit_once(':') {
        Some((h, p)) if p != "22" => format!("[{h}]:{p}"),
        Some((h, _)) => h.to_owned(),
        None => hostport.to_owned(),
    };
    let captured = RefCell::new(None);
    let auth = Auth::default();
    let mut remote =
        git2::Remote::create_detached(url).map_err(|e| Error::git(format!("remote {url}"), e))?;
    let refused = RefCell::new(None);
    let cb = callbacks(&auth, Some(&captured), &refused)?;
    let _ = remote.connect_auth(git2::Direction::Fetch, Some(cb), None);
    let key = captured.into_inner().ok_or_else(|| {
        Error::Repository(format!("could not read the SSH host key of {hostport}"))
    })?;
    Ok(format!("{host_field} {key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_matching() {
        let raw = b"key-bytes";
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let text = format!("# c\n[127.0.0.1]:2222 ssh-ed25519 {b64}\nother.host ssh-rsa AAAA\n");
        assert!(known_hosts_accepts(&text, "127.0.0.1", "ssh-ed25519", raw));
        assert!(!known_hosts_accepts(
            &text,
            "127.0.0.1",
            "ssh-ed25519",
            b"other"
        ));
        assert!(!known_hosts_accepts(&text, "10.0.0.1", "ssh-ed25519", raw));
        assert!(!known_hosts_accepts(&text, "127.0.0.1", "ssh-rsa", raw));
    }
}
