//! The whole hand-off in one call, as the bootstrap step runs it: write Flux's sync manifests
//! under the cluster's path, commit (guarded) and push, choose the auth Secret (reuse the deploy
//! key already in the cluster, or make one and have it authorized; a token for HTTPS), apply and
//! wait for the pushed revision. Every part checks before it acts, so a rerun is a no-op.

use std::path::Path;
use std::time::Duration;

use kube::Client;
use zeroize::Zeroizing;

use crate::handoff::{AuthSecret, HandoffReport, apply_and_wait, apply_sync, existing_deploy_key};
use crate::{Auth, CommitOutcome, DeployKey, Error, FluxSync, PushReport, Repo, scan_host_key};

/// How to hand off.
#[derive(Debug, Clone)]
pub struct HandoffOptions {
    /// The cluster's path in the repository (`clusters/<name>`).
    pub cluster_path: String,
    /// Commit message (default: generated).
    pub message: Option<String>,
    /// Namespace of Flux's objects (`flux-system`).
    pub namespace: String,
    /// Stop with [`Error::DeployKeyNeeded`] instead of waiting for a new key to be authorized.
    pub non_interactive: bool,
    /// How long to wait for Flux.
    pub timeout: Duration,
    /// known_hosts for Flux (default: read from the server, trust on first use).
    pub known_hosts: Option<String>,
    /// HTTPS token for Flux (the Secret's password) and its user name.
    pub flux_token: Option<(String, Zeroizing<String>)>,
    /// CA certificate(s), PEM, for Flux to trust the HTTPS server (the Secret's `ca.crt`); when
    /// `None`, the push's [`Auth::ca_file`] is used for an `https://` remote, if set.
    pub flux_ca: Option<String>,
}

impl HandoffOptions {
    /// Defaults for a cluster path: `flux-system`, 5 minutes, interactive.
    pub fn new(cluster_path: &str) -> HandoffOptions {
        HandoffOptions {
            cluster_path: cluster_path.to_owned(),
            message: None,
            namespace: "flux-system".into(),
            non_interactive: false,
            timeout: Duration::from_secs(300),
            known_hosts: None,
            flux_token: None,
            flux_ca: None,
        }
    }
}

/// What the hand-off did.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// The commit (or that nothing changed).
    pub commit: CommitOutcome,
    /// The push.
    pub pushed: PushReport,
    /// A deploy key made in this run (print it with instructions), `None` when reused or HTTPS.
    pub new_deploy_key: Option<String>,
    /// Flux's side.
    pub flux: HandoffReport,
}

/// Runs the hand-off. `on_new_key` is called with the public key when one was made (before the
/// wait), so the caller can print it with instructions.
pub async fn hand_off(
    repo: &Repo,
    push_auth: &Auth,
    client: &Client,
    opts: &HandoffOptions,
    on_new_key: impl FnOnce(&str),
) -> Result<Handoff, Error> {
    let tracked = repo.tracked_remote()?;
    let ssh = tracked.flux_url.starts_with("ssh://");
    let with_secret = ssh || opts.flux_token.is_some();
    let mut sync = FluxSync::new(
        &tracked.flux_url,
        &tracked.remote_branch,
        &opts.cluster_path,
        with_secret,
    );
    sync.namespace = opts.namespace.clone();
    sync.write(repo.workdir())?;
    let commit = repo.commit_path(Path::new(&opts.cluster_path), opts.message.as_deref())?;
    let pushed = repo.push(push_auth)?;

    let mut new_deploy_key = None;
    let auth = if ssh {
        match existing_deploy_key(client, &sync).await? {
            Some(_) => AuthSecret::KeepExisting,
            None => {
                let key = DeployKey::generate(&format!("flux-{}", sync.namespace))?;
                let known_hosts = match &opts.known_hosts {
                    Some(k) => k.clone(),
                    None => scan_host_key(&tracked.flux_url)?,
                };
                new_deploy_key = Some(key.public.clone());
                on_new_key(&key.public);
                AuthSecret::Ssh { key, known_hosts }
            }
        }
    } else if let Some((username, token)) = &opts.flux_token {
        let ca = match (&opts.flux_ca, &push_auth.ca_file) {
            (Some(pem), _) => Some(pem.clone()),
            (None, Some(file)) if tracked.flux_url.starts_with("https://") => {
                Some(std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?)
            }
            _ => None,
        };
        AuthSecret::Token {
            username: username.clone(),
            token: token.clone(),
            ca,
        }
    } else {
        AuthSecret::None
    };
    if opts.non_interactive
        && let Some(public_key) = &new_deploy_key
    {
        // Store the key now (so a rerun reuses it) but do not wait for someone to authorize it.
        apply_sync(client, &sync, &auth).await?;
        return Err(Error::DeployKeyNeeded {
            url: tracked.flux_url,
            public_key: public_key.clone(),
        });
    }
    let flux = apply_and_wait(client, &sync, &auth, &pushed.commit, opts.timeout).await?;
    Ok(Handoff {
        commit,
        pushed,
        new_deploy_key,
        flux,
    })
}
