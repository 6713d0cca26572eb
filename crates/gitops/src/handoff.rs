//! The hand-off to Flux: the auth Secret, the GitRepository and the Kustomization applied with
//! server-side apply, then a wait until the Kustomization has applied the pushed revision (Ready
//! for the current generation, `lastAppliedRevision = <branch>@sha1:<commit>`).

use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::{DeployKey, Error, FluxSync};

const FIELD_MANAGER: &str = "manage";

/// The Secret the GitRepository authenticates with.
pub enum AuthSecret {
    /// Keep the Secret already in the cluster (a rerun: the deploy key is reused).
    KeepExisting,
    /// SSH: the deploy key and the server's known_hosts line(s).
    Ssh {
        /// The deploy key.
        key: DeployKey,
        /// known_hosts content (`[host]:port type key`).
        known_hosts: String,
    },
    /// HTTPS basic auth with a token as the password.
    Token {
        /// User name (`git` when the host does not care).
        username: String,
        /// The token.
        token: Zeroizing<String>,
        /// CA certificate(s), PEM, the server's certificate chains to, for a private CA (the
        /// Secret's `ca.crt`); `None` for a server with a publicly trusted certificate.
        ca: Option<String>,
    },
    /// No Secret (a public repository).
    None,
}

/// What the hand-off did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffReport {
    /// The revision Flux applied.
    pub revision: String,
    /// Whether the auth Secret was written (false when kept or not needed).
    pub secret_written: bool,
    /// How long the wait took.
    pub waited: Duration,
}

/// The public deploy key already in the cluster (`identity.pub` of the auth Secret), if that
/// Secret holds an SSH identity and known_hosts; reruns reuse it instead of making a new key.
pub async fn existing_deploy_key(
    client: &Client,
    sync: &FluxSync,
) -> Result<Option<String>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &sync.namespace);
    let secret = api.get_opt(&sync.name).await.map_err(|e| {
        Error::kube(
            format!("reading Secret {}/{}", sync.namespace, sync.name),
            e,
        )
    })?;
    let Some(data) = secret.and_then(|s| s.data) else {
        return Ok(None);
    };
    if !(data.contains_key("identity") && data.contains_key("known_hosts")) {
        return Ok(None);
    }
    Ok(data
        .get("identity.pub")
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .or(Some(String::new())))
}

fn flux_api(
    client: &Client,
    ns: &str,
    group: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural);
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// Applies the Secret (unless kept), the GitRepository and the Kustomization, then waits up to
/// `timeout` until the Kustomization reports `commit` applied. Fails with Flux's own message when
/// it does not get there.
pub async fn apply_and_wait(
    client: &Client,
    sync: &FluxSync,
    auth: &AuthSecret,
    commit: &str,
    timeout: Duration,
) -> Result<HandoffReport, Error> {
    let secret_written = apply_sync(client, sync, auth).await?;
    let (revision, waited) = wait_applied(client, sync, commit, timeout).await?;
    Ok(HandoffReport {
        revision,
        secret_written,
        waited,
    })
}

/// Applies the namespace, the auth Secret (unless kept or not needed), the GitRepository and the
/// Kustomization (server-side apply, field manager `manage`); returns whether the Secret was
/// written.
pub async fn apply_sync(
    client: &Client,
    sync: &FluxSync,
    auth: &AuthSecret,
) -> Result<bool, Error> {
    let ns = &sync.namespace;
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &pp,
            &Patch::Apply(
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            ),
        )
        .await
        .map_err(|e| Error::kube(format!("applying Namespace {ns}"), e))?;

    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let data = match auth {
        AuthSecret::Ssh { key, known_hosts } => Some(json!({
            "identity": b64(&key.identity),
            "identity.pub": b64(&key.public),
            "known_hosts": b64(known_hosts),
        })),
        AuthSecret::Token {
            username,
            token,
            ca,
        } => {
            let mut data = json!({"username": b64(username), "password": b64(token)});
            if let Some(ca) = ca {
                data["ca.crt"] = json!(b64(ca));
            }
            Some(data)
        }
        AuthSecret::KeepExisting | AuthSecret::None => None,
    };
    let secret_written = data.is_some();
    if let Some(data) = data {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": sync.name, "namespace": ns},
            "type": "Opaque",
            "data": data,
        });
        Api::<Secret>::namespaced(client.clone(), ns)
            .patch(&sync.name, &pp, &Patch::Apply(&secret))
            .await
            .map_err(|e| Error::kube(format!("applying Secret {ns}/{}", sync.name), e))?;
    }

    let (repos, kusts) = sync_apis(client, ns);
    repos
        .patch(&sync.name, &pp, &Patch::Apply(&sync.git_repository()))
        .await
        .map_err(|e| Error::kube(format!("applying GitRepository {ns}/{}", sync.name), e))?;
    kusts
        .patch(&sync.name, &pp, &Patch::Apply(&sync.kustomization()))
        .await
        .map_err(|e| Error::kube(format!("applying Kustomization {ns}/{}", sync.name), e))?;

    Ok(secret_written)
}

/// The GitRepository and Kustomization APIs of Flux in `ns`.
fn sync_apis(client: &Client, ns: &str) -> (Api<DynamicObject>, Api<DynamicObject>) {
    (
        flux_api(
            client,
            ns,
            "source.toolkit.fluxcd.io",
            "GitRepository",
            "gitrepositories",
        ),
        flux_api(
            client,
            ns,
            "kustomize.toolkit.fluxcd.io",
            "Kustomization",
            "kustomizations",
        ),
    )
}

/// Waits up to `timeout` until the Kustomization has applied `commit` (Ready for the current
/// generation, `lastAppliedRevision` = the revision); returns the revision and the time taken.
pub async fn wait_applied(
    client: &Client,
    sync: &FluxSync,
    commit: &str,
    timeout: Duration,
) -> Result<(String, Duration), Error> {
    let ns = &sync.namespace;
    let (repos, kusts) = sync_apis(client, ns);
    let revision = sync.revision(commit);
    let started = Instant::now();
    let mut nudged = false;
    loop {
        // A failed read (API server restarting, a proxy cut) is retried until the deadline.
        let read = read_flux_objects(&repos, &kusts, &sync.name).await;
        let (repo, kust) = match read {
            Ok(pair) => pair,
            Err(e) if started.elapsed() <= timeout => {
                tracing::debug!(error = %e, "reading Flux objects failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(Error::kube(format!("reading {ns}/{}", sync.name), e)),
        };
        let (repo, kust) = (to_value(&repo)?, to_value(&kust)?);
        if is_suspended(&repo) || is_suspended(&kust) {
            return Err(Error::Flux(format!(
                "{ns}/{} is suspended (flux resume …)",
                sync.name
            )));
        }
        if applied(&kust, &revision) {
            tracing::info!(%revision, "Flux applied the revision");
            return Ok((revision, started.elapsed()));
        }
        let source_rev = repo
            .pointer("/status/artifact/revision")
            .and_then(Value::as_str)
            .unwrap_or("");
        let last = match (ready_message(&repo), ready_message(&kust)) {
            ((Some(false), m), _) => format!("GitRepository not ready: {m}"),
            (_, (Some(false), m)) => format!("Kustomization not ready: {m}"),
            _ if source_rev != revision => {
                format!("GitRepository at {source_rev:?}, waiting for {revision}")
            }
            (_, (_, m)) => format!("Kustomization: {m}"),
        };
        if !nudged {
            // Reconcile now rather than at the next interval (flux reconcile's annotation).
            let now = jiff::Timestamp::now().to_string();
            let patch =
                json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": now}}});
            for api in [&repos, &kusts] {
                let _ = api
                    .patch(&sync.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
            nudged = true;
        }
        if started.elapsed() > timeout {
            return Err(Error::Flux(format!(
                "Flux did not apply {revision} within {timeout:?}: {last}"
            )));
        }
        tracing::debug!(%last, "waiting for Flux");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn read_flux_objects(
    repos: &Api<DynamicObject>,
    kusts: &Api<DynamicObject>,
    name: &str,
) -> Result<(DynamicObject, DynamicObject), kube::Error> {
    Ok((repos.get(name).await?, kusts.get(name).await?))
}

fn to_value(o: &DynamicObject) -> Result<Value, Error> {
    serde_json::to_value(o).map_err(|e| Error::Format(e.to_string()))
}

fn is_suspended(o: &Value) -> bool {
    o.pointer("/spec/suspend")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Ready's status (if present) and message.
fn ready_message(o: &Value) -> (Option<bool>, String) {
    let cond = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    match cond {
        Some(c) => (
            Some(c["status"] == "True"),
            c["message"].as_str().unwrap_or("").to_owned(),
        ),
        None => (None, "no Ready condition yet".into()),
    }
}

/// Done: Ready=True for the current generation and the revision applied.
fn applied(kust: &Value, revision: &str) -> bool {
    let generation = kust.pointer("/metadata/generation").and_then(Value::as_i64);
    let observed = kust
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    let ready_gen = kust
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .and_then(|c| c.get("observedGeneration").and_then(Value::as_i64));
    generation.is_some()
        && observed == generation
        && ready_gen.is_none_or(|g| Some(g) == generation)
        && ready_message(kust).0 == Some(true)
        && kust
            .pointer("/status/lastAppliedRevision")
            .and_then(Value::as_str)
            == Some(revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_needs_current_generation_ready_and_revision() {
        let k = |gen_: i64, obs: i64, ready: &str, rev: &str| {
            json!({"metadata": {"generation": gen_}, "status": {"observedGeneration": obs, "lastAppliedRevision": rev,
                "conditions": [{"type": "Ready", "status": ready, "observedGeneration": obs, "message": "m"}]}})
        };
        assert!(applied(&k(2, 2, "True", "main@sha1:a"), "main@sha1:a"));
        assert!(!applied(&k(2, 1, "True", "main@sha1:a"), "main@sha1:a"));
        assert!(!applied(&k(2, 2, "False", "main@sha1:a"), "main@sha1:a"));
        assert!(!applied(&k(2, 2, "True", "main@sha1:b"), "main@sha1:a"));
    }
}
