//! Per-cluster application credentials: one for Cluster API Provider OpenStack ([`Role::Capo`])
//! and one for the OpenStack cloud controller manager and Cinder CSI ([`Role::CloudProvider`]).
//!
//! Each is a Keystone v3 application credential of the calling user, bound to the session's
//! project, restricted (it cannot create or delete application credentials itself), named
//! `manage-<namespace>-<cluster>-<capo|cloud-provider>-<generation>` and described with
//! [`ClusterIdentity::description`]. The generation is a decimal integer starting at 1; a rotation
//! creates the next one, so the newest credential is the one with the highest generation.
//!
//! A credential belongs to a cluster when its name parses exactly as the cluster's name pattern
//! (anchored at both ends, generation all digits) **and** its description is exactly the one we
//! write. Namespace and cluster are DNS labels joined with `-`, so the name alone can be
//! ambiguous (`x-y` + `z` and `x` + `y-z`); the description carries `namespace/cluster` with a
//! slash and settles it.
//!
//! Keystone returns the secret only in the answer to the creation, so [`NewCredential`] holds it
//! as a [`SecretString`]; nothing here logs it. [`clouds_yaml`] renders the `clouds.yaml` text the
//! CAPO and OCCM/CSI Secrets hold.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::api::{Call, Service};
use crate::connect::Session;
use crate::error::{Error, Result};
use crate::identity::ClusterIdentity;

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Cluster API Provider OpenStack (the management cluster's CAPO controller).
    Capo,
    /// The OpenStack cloud controller manager and Cinder CSI in the workload cluster.
    CloudProvider,
}

impl Role {
    /// Both roles.
    pub const ALL: [Role; 2] = [Role::Capo, Role::CloudProvider];

    /// The part of the name that names the role (`capo`, `cloud-provider`).
    pub fn slug(self) -> &'static str {
        match self {
            Role::Capo => "capo",
            Role::CloudProvider => "cloud-provider",
        }
    }

    /// What the description says the credential is (`CAPO credential`, …).
    pub fn purpose(self) -> &'static str {
        match self {
            Role::Capo => "CAPO credential",
            Role::CloudProvider => "cloud provider credential",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// One Keystone access rule: the credential may call only what some rule allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    /// Service type (`compute`, `network`, `load-balancer`, …).
    pub service: String,
    /// HTTP method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`).
    pub method: String,
    /// Path pattern as the service sees it, `*` for one segment and `**` for any (`/v2.1/servers/**`).
    pub path: String,
}

/// How a credential is created.
#[derive(Debug, Clone, Default)]
pub struct CredentialOptions {
    /// When Keystone stops accepting it (none: never). Keep it well beyond Keystone's token
    /// lifetime (`[token] expiration`, 1 h by default): a token of the credential is cut at the
    /// credential's expiry, and Keystone (seen on Zed) then writes the token's `expires_at` without
    /// a time zone, which openstack_sdk cannot read — rotate before that window.
    pub expires_at: Option<DateTime<Utc>>,
    /// Keystone access rules; empty: none are sent and the credential may call every API its
    /// roles allow.
    pub access_rules: Vec<AccessRule>,
    /// Role names on the project the credential carries; empty: all of the caller's roles on the
    /// project (Keystone's default, `roles` is not sent).
    pub roles: Vec<String>,
}

/// A credential of a cluster as Keystone lists it (the secret is never listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredential {
    /// Keystone id.
    pub id: String,
    /// `manage-<namespace>-<cluster>-<role>-<generation>`.
    pub name: String,
    /// What it is for.
    pub role: Role,
    /// Generation (1, 2, …; the highest is the newest).
    pub generation: u32,
    /// Expiry, if it has one.
    pub expires_at: Option<DateTime<Utc>>,
    /// Project it is bound to.
    pub project_id: Option<String>,
    /// Names of the Keystone roles it carries.
    pub roles: Vec<String>,
}

impl AppCredential {
    /// Whether Keystone still accepts it at `now`.
    pub fn valid_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

/// A credential just created, with the secret Keystone shows only this once.
#[derive(Debug)]
pub struct NewCredential {
    /// The credential.
    pub credential: AppCredential,
    /// Its secret (redacted in `Debug`).
    pub secret: SecretString,
}

impl NewCredential {
    /// The `clouds.yaml` text for this credential under `entry`; see [`clouds_yaml`].
    pub fn clouds_yaml(&self, session: &Session, entry: &str) -> Result<SecretString> {
        clouds_yaml(session, entry, &self.credential.id, &self.secret)
    }
}

/// What [`Credentials::ensure`] found or did.
#[derive(Debug)]
pub enum Ensured {
    /// There was no valid credential of the role: this one was created.
    Created(NewCredential),
    /// A valid credential of the role exists (the newest). Keystone does not show its secret
    /// again: the caller must already have it stored (else [`Credentials::rotate`]).
    Existing(AppCredential),
}

impl Ensured {
    /// The credential, created or found.
    pub fn credential(&self) -> &AppCredential {
        match self {
            Ensured::Created(n) => &n.credential,
            Ensured::Existing(c) => c,
        }
    }
}

/// The application credentials of one cluster, managed through one session (the credentials are
/// the session user's, bound to the session's project).
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    session: &'a Session,
    cluster: &'a ClusterIdentity,
}

/// Attempts at one creation or deletion: when the name of the next generation is taken meanwhile
/// (a concurrent rotation, or an earlier attempt whose answer was lost), or Keystone mixed up the
/// request ([`is_keystone_mixup`]).
const ATTEMPTS: u32 = 3;

impl<'a> Credentials<'a> {
    /// The credentials of `cluster` as `session`'s user sees them.
    pub fn new(session: &'a Session, cluster: &'a ClusterIdentity) -> Self {
        Self { session, cluster }
    }

    /// The name of generation `generation` of `role`.
    pub fn name(&self, role: Role, generation: u32) -> String {
        credential_name(self.cluster, role, generation)
    }

    /// The description every credential of `role` of the cluster carries.
    pub fn description(&self, role: Role) -> String {
        self.cluster.description(role.purpose())
    }

    /// Every credential of the cluster (both roles, all generations, expired ones too) in the
    /// session's project, sorted by role then generation.
    pub async fn list(&self) -> Result<Vec<AppCredential>> {
        let items = self
            .session
            .list(
                Call::get(Service::Identity, self.collection()),
                "application_credentials",
            )
            .await
            .map_err(|e| with_hint(e, self.session, "list application credentials"))?;
        let mut out = Vec::new();
        for item in &items {
            if let Some(c) = self.parse(item)? {
                out.push(c);
            }
        }
        out.sort_by_key(|c| (c.role, c.generation));
        Ok(out)
    }

    /// The credential of `role` to use: the newest valid one if there is one
    /// ([`Ensured::Existing`]), else a new generation ([`Ensured::Created`]). An existing one is
    /// taken as it is, whatever `options` say; [`Credentials::rotate`] replaces it.
    pub async fn ensure(&self, role: Role, options: &CredentialOptions) -> Result<Ensured> {
        let now = Utc::now();
        let newest = self
            .list()
            .await?
            .into_iter()
            .filter(|c| c.role == role && c.valid_at(now))
            .max_by_key(|c| c.generation);
        match newest {
            Some(c) => {
                tracing::debug!(cluster = %self.label(), %role, id = %c.id, name = %c.name, "application credential exists");
                Ok(Ensured::Existing(c))
            }
            None => Ok(Ensured::Created(self.create(role, options).await?)),
        }
    }

    /// Creates the next generation of `role` (one above the highest, expired ones included) and
    /// returns it with its secret. The caller stores it (switches the Secret), then calls
    /// [`Credentials::revoke_old`].
    pub async fn rotate(&self, role: Role, options: &CredentialOptions) -> Result<NewCredential> {
        self.create(role, options).await
    }

    /// Deletes the generations of `role` older than the credential `keep_id` (newer ones, from a
    /// concurrent rotation, stay). Returns what was deleted. `keep_id` must be a credential of
    /// this cluster and role: otherwise nothing is deleted and the answer is an error.
    pub async fn revoke_old(&self, role: Role, keep_id: &str) -> Result<Vec<AppCredential>> {
        let all: Vec<AppCredential> = self
            .list()
            .await?
            .into_iter()
            .filter(|c| c.role == role)
            .collect();
        let Some(keep) = all.iter().find(|c| c.id == keep_id) else {
            return Err(Error::Invalid(format!(
                "application credential {keep_id} is not a {role} credential of cluster {}; nothing revoked",
                self.label()
            )));
        };
        let keep_generation = keep.generation;
        let old: Vec<AppCredential> = all
            .into_iter()
            .filter(|c| c.generation < keep_generation)
            .collect();
        self.delete_each(&old).await?;
        Ok(old)
    }

    /// Deletes every credential of the cluster (both roles, all generations); one that is already
    /// gone counts as deleted. Returns what was listed for deletion.
    pub async fn revoke_all(&self) -> Result<Vec<AppCredential>> {
        let all = self.list().await?;
        self.delete_each(&all).await?;
        Ok(all)
    }

    async fn delete_each(&self, creds: &[AppCredential]) -> Result<()> {
        for c in creds {
            let path = format!("{}/{}", self.collection(), c.id);
            let action = format!("delete application credential `{}`", c.name);
            let mut attempt = 0;
            let gone = loop {
                attempt += 1;
                match self
                    .session
                    .delete_if_exists(Service::Identity, &path)
                    .await
                    .map_err(|e| with_hint(e, self.session, &action))
                {
                    Ok(gone) => break gone,
                    Err(e)
                        if attempt < ATTEMPTS
                            && is_keystone_mixup(
                                &e,
                                self.session,
                                &CredentialOptions::default(),
                            ) =>
                    {
                        tracing::debug!(%action, error = %e, "Keystone judged the request by another one's token, retrying");
                        tokio::time::sleep(MIXUP_PAUSE).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            tracing::info!(cluster = %self.label(), role = %c.role, id = %c.id, name = %c.name, deleted = gone, "application credential revoked");
        }
        Ok(())
    }

    /// Creates the next generation of `role`.
    async fn create(&self, role: Role, options: &CredentialOptions) -> Result<NewCredential> {
        if self.session.project_id.is_none() {
            return Err(Error::Invalid(format!(
                "cloud `{}`: application credentials are bound to a project, and this login is not project-scoped; log in with a project (project_name/project_id in clouds.yaml)",
                self.session.label
            )));
        }
        if let Some(t) = options.expires_at
            && t <= Utc::now()
        {
            return Err(Error::Invalid(format!(
                "expiry {} of the {role} credential of cluster {} is not in the future",
                t.format("%Y-%m-%dT%H:%M:%SZ"),
                self.label()
            )));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let next = self
                .list()
                .await?
                .iter()
                .filter(|c| c.role == role)
                .map(|c| c.generation)
                .max()
                .unwrap_or(0)
                + 1;
            let name = self.name(role, next);
            match self.post(role, &name, options).await {
                Ok(created) => return Ok(created),
                Err(e) if e.status() == Some(409) && attempt < ATTEMPTS => {
                    tracing::debug!(cluster = %self.label(), %role, %name, "name taken meanwhile, taking the next generation");
                }
                Err(e) if attempt < ATTEMPTS && is_keystone_mixup(&e, self.session, options) => {
                    tracing::debug!(cluster = %self.label(), %role, %name, error = %e, "Keystone judged the request by another one's token, retrying");
                    tokio::time::sleep(MIXUP_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn post(
        &self,
        role: Role,
        name: &str,
        options: &CredentialOptions,
    ) -> Result<NewCredential> {
        let action = format!("create application credential `{name}`");
        let mut body = json!({
            "name": name,
            "description": self.description(role),
            "unrestricted": false,
        });
        if let Some(t) = options.expires_at {
            body["expires_at"] = json!(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
        }
        if !options.roles.is_empty() {
            body["roles"] =
                Value::Array(options.roles.iter().map(|r| json!({"name": r})).collect());
        }
        if !options.access_rules.is_empty() {
            body["access_rules"] = Value::Array(
                options
                    .access_rules
                    .iter()
                    .map(|r| json!({"service": r.service, "method": r.method, "path": r.path}))
                    .collect(),
            );
        }
        let call = Call::post(
            Service::Identity,
            self.collection(),
            json!({ "application_credential": body }),
        );
        let answer = match self.session.request(&call).await {
            Ok(v) => v,
            Err(e) => return Err(self.creation_error(e, &action, options)),
        };
        let item = &answer["application_credential"];
        let secret = match item["secret"].as_str() {
            Some(s) if !s.is_empty() => SecretString::from(s.to_string()),
            _ => {
                return Err(Error::Response {
                    what: action,
                    message: "no `secret` in the answer".into(),
                });
            }
        };
        let credential = self.parse(item)?.ok_or_else(|| Error::Response {
            what: action.clone(),
            message: format!(
                "the created credential (name {:?}, description {:?}) does not read back as ours",
                item["name"], item["description"]
            ),
        })?;
        tracing::info!(cluster = %self.label(), %role, id = %credential.id, name = %credential.name, expires_at = ?credential.expires_at, "application credential created");
        Ok(NewCredential { credential, secret })
    }

    /// Keystone's refusal of a creation, said so the user can act on it.
    fn creation_error(&self, e: Error, action: &str, options: &CredentialOptions) -> Error {
        if let Error::Api {
            status: 400,
            message,
            ..
        } = &e
        {
            let m = message.to_ascii_lowercase();
            let about_rules = m.contains("access_rules") || m.contains("access rule");
            if !options.access_rules.is_empty() && about_rules {
                // Keystone before Train validates the body against a schema without the field
                if m.contains("'access_rules' was unexpected") {
                    return Error::Invalid(format!(
                        "{action}: cloud `{}` does not support access rules on application credentials (Keystone answered: {message}); leave the access rules out",
                        self.session.label
                    ));
                }
                return Error::Invalid(format!(
                    "{action}: Keystone refused the access rules ({message})"
                ));
            }
            if m.contains("unassigned role") {
                return Error::Invalid(format!(
                    "{action}: the roles {:?} are not all assigned to the user on the project ({message}); name only roles the user has there, or none to take all of them",
                    options.roles
                ));
            }
        }
        with_hint(e, self.session, action)
    }

    /// One listed credential as ours, `None` when it belongs to someone else.
    fn parse(&self, item: &Value) -> Result<Option<AppCredential>> {
        let (Some(id), Some(name)) = (item["id"].as_str(), item["name"].as_str()) else {
            return Ok(None);
        };
        let Some((role, generation)) = parse_name(self.cluster, name) else {
            return Ok(None);
        };
        if item["description"].as_str() != Some(self.description(role).as_str()) {
            return Ok(None);
        }
        let project_id = item["project_id"].as_str().map(str::to_string);
        if let (Some(ours), Some(theirs)) = (&self.session.project_id, &project_id)
            && ours != theirs
        {
            // the same cluster name in another project of the same user is another cluster
            return Ok(None);
        }
        let expires_at = match item["expires_at"].as_str() {
            None => None,
            Some(s) => Some(parse_time(s).ok_or_else(|| Error::Response {
                what: format!("application credential `{name}`"),
                message: format!("expires_at {s:?} is not an ISO 8601 time"),
            })?),
        };
        let roles = item["roles"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(AppCredential {
            id: id.to_string(),
            name: name.to_string(),
            role,
            generation,
            expires_at,
            project_id,
            roles,
        }))
    }

    fn collection(&self) -> String {
        format!("users/{}/application_credentials", self.session.user_id)
    }

    fn label(&self) -> String {
        format!("{}/{}", self.cluster.namespace, self.cluster.name)
    }
}

/// Whether `e` is an answer a correct Keystone cannot give this session. Keystone 22 (Zed) keeps
/// the request's token on its auth middleware object (`AuthContextMiddleware.token`), which the
/// threads of a worker share, so a Keystone serving requests on several threads may judge one
/// request by another's token. Seen as 400 "Could not find role assignment with role: <a role the
/// caller never had>" on a creation without `roles`, and as 403 "Using method
/// 'application_credential' is not allowed …" to a login that is not an application credential.
/// Nothing was done; the same request then succeeds.
fn is_keystone_mixup(e: &Error, session: &Session, options: &CredentialOptions) -> bool {
    match e {
        Error::Api {
            status: 400,
            message,
            ..
        } => options.roles.is_empty() && message.contains("Could not find role assignment"),
        Error::Forbidden { message, .. } => {
            session.application_credential_id.is_none()
                && message.contains("'application_credential' is not allowed")
        }
        _ => false,
    }
}

/// Pause before repeating a request Keystone mixed up.
const MIXUP_PAUSE: std::time::Duration = std::time::Duration::from_millis(300);

/// `manage-<namespace>-<cluster>-<role>-<generation>`.
pub fn credential_name(cluster: &ClusterIdentity, role: Role, generation: u32) -> String {
    format!(
        "manage-{}-{}-{}-{generation}",
        cluster.namespace,
        cluster.name,
        role.slug()
    )
}

/// The role and generation of `name` when it is exactly one of `cluster`'s credential names
/// (generation: decimal digits without a leading zero). The description must still be checked:
/// the name alone cannot tell `x-y`/`z` from `x`/`y-z`.
pub fn parse_name(cluster: &ClusterIdentity, name: &str) -> Option<(Role, u32)> {
    let rest = name
        .strip_prefix("manage-")?
        .strip_prefix(cluster.namespace.as_str())?
        .strip_prefix('-')?
        .strip_prefix(cluster.name.as_str())?
        .strip_prefix('-')?;
    Role::ALL.into_iter().find_map(|role| {
        let digits = rest.strip_prefix(role.slug())?.strip_prefix('-')?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !canonical {
            return None;
        }
        digits.parse().ok().map(|g| (role, g))
    })
}

/// Keystone's times: `2030-01-01T00:00:00.000000` (UTC, no offset) or RFC 3339.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = s.trim_end_matches('Z');
    NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// The hint of every refusal to manage application credentials.
pub const FORBIDDEN_HINT: &str = "managing application credentials needs a password (or token) login, or an application credential created with `openstack application credential create --unrestricted` (for bootstrap only: an unrestricted credential can mint more credentials); a restricted application credential, like the ones manage creates, cannot create or delete application credentials";

/// Adds what to do to a 403; other errors pass through.
fn with_hint(e: Error, session: &Session, action: &str) -> Error {
    match e {
        Error::Forbidden { message, .. } => {
            let via = match &session.application_credential_id {
                Some(id) => format!(
                    "; cloud `{}` is logged in with application credential {id}, which Keystone does not let manage application credentials",
                    session.label
                ),
                None => String::new(),
            };
            Error::Forbidden {
                action: action.to_string(),
                message,
                hint: format!("{via}; {FORBIDDEN_HINT}"),
            }
        }
        other => other,
    }
}

/// A `clouds.yaml` with one entry, `entry`, that authenticates with the application credential
/// `id`/`secret` against the session's Keystone, region, interface and TLS settings
/// (`verify: false` and `cacert` are copied as they are: a CA path is a path on this machine, the
/// caller maps it where the file will live). Every value is a double-quoted YAML scalar.
pub fn clouds_yaml(
    session: &Session,
    entry: &str,
    id: &str,
    secret: &SecretString,
) -> Result<SecretString> {
    if session.auth_url.is_empty() {
        return Err(Error::Config {
            message: format!(
                "cloud `{}` has no auth_url to write into a clouds.yaml",
                session.label
            ),
        });
    }
    Ok(render_clouds_yaml(&CloudsEntry {
        entry,
        auth_url: &session.auth_url,
        id,
        secret,
        region: session.region.as_deref(),
        interface: session.interface.as_deref(),
        verify: session.verify,
        cacert: session.cacert.as_deref(),
    }))
}

struct CloudsEntry<'s> {
    entry: &'s str,
    auth_url: &'s str,
    id: &'s str,
    secret: &'s SecretString,
    region: Option<&'s str>,
    interface: Option<&'s str>,
    verify: Option<bool>,
    cacert: Option<&'s str>,
}

fn render_clouds_yaml(e: &CloudsEntry<'_>) -> SecretString {
    // A JSON string is a YAML double-quoted scalar.
    let q = |s: &str| Value::String(s.to_string()).to_string();
    let mut text = String::from("clouds:\n");
    text.push_str(&format!("  {}:\n", q(e.entry)));
    text.push_str("    auth_type: \"v3applicationcredential\"\n");
    text.push_str("    auth:\n");
    text.push_str(&format!("      auth_url: {}\n", q(e.auth_url)));
    text.push_str(&format!("      application_credential_id: {}\n", q(e.id)));
    text.push_str(&format!(
        "      application_credential_secret: {}\n",
        q(e.secret.expose_secret())
    ));
    if let Some(r) = e.region {
        text.push_str(&format!("    region_name: {}\n", q(r)));
    }
    text.push_str(&format!(
        "    interface: {}\n",
        q(e.interface.unwrap_or("public"))
    ));
    text.push_str("    identity_api_version: 3\n");
    if let Some(v) = e.verify {
        text.push_str(&format!("    verify: {v}\n"));
    }
    if let Some(c) = e.cacert {
        text.push_str(&format!("    cacert: {}\n", q(c)));
    }
    SecretString::from(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_parse_exactly() {
        let a = ClusterIdentity::new("a", "fleet");
        let a_capo = ClusterIdentity::new("a-capo", "fleet");
        assert_eq!(credential_name(&a, Role::Capo, 3), "manage-fleet-a-capo-3");
        assert_eq!(
            credential_name(&a, Role::CloudProvider, 1),
            "manage-fleet-a-cloud-provider-1"
        );
        assert_eq!(
            parse_name(&a, "manage-fleet-a-capo-3"),
            Some((Role::Capo, 3))
        );
        assert_eq!(
            parse_name(&a, "manage-fleet-a-cloud-provider-12"),
            Some((Role::CloudProvider, 12))
        );
        // cluster `a-capo`'s credentials are not `a`'s, and the other way round
        for other in [
            "manage-fleet-a-capo-capo-1",
            "manage-fleet-a-capo-cloud-provider-1",
        ] {
            assert_eq!(parse_name(&a, other), None, "{other}");
            assert!(parse_name(&a_capo, other).is_some(), "{other}");
        }
        assert_eq!(parse_name(&a_capo, "manage-fleet-a-capo-1"), None);
        for bad in [
            "manage-fleet-a-capo-",
            "manage-fleet-a-capo-01",
            "manage-fleet-a-capo-1x",
            "manage-fleet-a-capo-1-2",
            "manage-fleet-a-capo",
            "xmanage-fleet-a-capo-1",
            "manage-fleet-a-capo-99999999999",
            "manage-fleet-a-cloud-1",
        ] {
            assert_eq!(parse_name(&a, bad), None, "{bad}");
        }
    }

    #[test]
    fn keystone_times() {
        let t = parse_time("2030-01-01T00:00:00.000000").unwrap();
        assert_eq!(t.to_rfc3339(), "2030-01-01T00:00:00+00:00");
        assert_eq!(parse_time("2030-01-01T00:00:00Z"), Some(t));
        assert_eq!(parse_time("2030-01-01T01:00:00+01:00"), Some(t));
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn clouds_yaml_quotes_every_value() {
        let secret = SecretString::from("-a\"b\\c".to_string());
        let text = render_clouds_yaml(&CloudsEntry {
            entry: "capo",
            auth_url: "https://keystone:5000/v3",
            id: "abc",
            secret: &secret,
            region: Some("RegionOne"),
            interface: None,
            verify: Some(false),
            cacert: Some("/etc/ca.pem"),
        });
        let v: serde_json::Value = serde_saphyr::from_str(text.expose_secret()).unwrap();
        let e = &v["clouds"]["capo"];
        assert_eq!(e["auth_type"], "v3applicationcredential");
        assert_eq!(e["auth"]["application_credential_secret"], "-a\"b\\c");
        assert_eq!(e["auth"]["application_credential_id"], "abc");
        assert_eq!(e["auth"]["auth_url"], "https://keystone:5000/v3");
        assert_eq!(e["region_name"], "RegionOne");
        assert_eq!(e["interface"], "public");
        assert_eq!(e["identity_api_version"], 3);
        assert_eq!(e["verify"], false);
        assert_eq!(e["cacert"], "/etc/ca.pem");
        // the secret never shows in Debug
        assert!(!format!("{text:?}").contains("-a"));
    }
}
