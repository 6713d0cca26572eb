//! Pushing to the tracked remote over SSH (key file or agent, host key checked against
//! known_hosts) or HTTPS (token), and reading a server's SSH host key for Flux's known_hosts.

use std::cell::RefCell;
use std::path::PathBuf;

use base64::Engine as _;
use git2::{CertificateCheckStatus, Cred, CredentialType, PushOptions, RemoteCallbacks};
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
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("ssh_key", &self.ssh_key)
            .field("ssh_agent", &self.ssh_agent)
            .field("known_hosts", &self.known_hosts)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
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
    cb.credentials(move |_url, user_from_url, allowed| {
        attempts += 1;
        if attempts > 3 {
            return Err(git2::Error::from_str(
                "authentication failed (credentials rejected)",
            ));
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
