//! git and the Flux hand-off, natively (git2 with vendored libgit2; no git or flux binaries):
//! open the user's repository, refuse to commit plaintext Secrets or credentials files, commit
//! the cluster's path, push to the tracked remote over SSH (key file or agent) or HTTPS (token),
//! derive the URL and branch Flux needs; generate Flux's sync objects the way `flux bootstrap`
//! lays them out, the auth Secret (ed25519 deploy key + known_hosts, or a token), apply them and
//! wait until the Kustomization has applied the pushed revision.

mod deploy_key;
mod error;
mod flux_sync;
mod flux_url;
mod hand_off;
mod handoff;
mod plaintext_guard;
mod repo;
mod transport;

pub use deploy_key::DeployKey;
pub use error::Error;
pub use flux_sync::{FluxSync, SYNC_DIR, root_kustomization};
pub use flux_url::flux_url;
pub use hand_off::{Handoff, HandoffOptions, hand_off};
pub use handoff::{
    AuthSecret, HandoffReport, apply_and_wait, apply_sync, existing_deploy_key, wait_applied,
};
pub use plaintext_guard::{Refusal, check_file};
pub use repo::{CommitOutcome, Repo, TrackedRemote};
pub use transport::{Auth, PushReport, scan_host_key};

/// Installs rustls' ring crypto provider for the kube client (a second call is a no-op).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
