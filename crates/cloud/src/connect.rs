//! Finding the cloud entry and authenticating, the way the `openstack` client does.
//!
//! Lookup: `clouds.yaml` (and `secure.yaml`, merged over it) in the current directory, then
//! `~/.config/openstack/`, then `/etc/openstack/` — openstack_sdk's search, which is the
//! openstacksdk order. `OS_CLIENT_CONFIG_FILE` names one file explicitly (as the Python client
//! honours it); the entry is `--cloud`, else `OS_CLOUD`. With neither, the `OS_*` variables
//! (`OS_AUTH_URL`, `OS_USERNAME`/`OS_PASSWORD` or `OS_APPLICATION_CREDENTIAL_*`, …) describe the
//! cloud. Tokens live in memory only (no on-disk token cache: a token is a secret) and are renewed
//! before they expire.

use std::path::PathBuf;
use std::time::Duration;

use openstack_sdk::AsyncOpenStack;
use openstack_sdk::config::{CloudConfig, ConfigFile};
use openstack_sdk::types::ServiceType;

use crate::error::{Error, Result};

/// Which cloud to talk to.
#[derive(Debug, Clone, Default)]
pub struct CloudSelector {
    /// The `clouds.yaml` entry (else `OS_CLOUD`, else the `OS_*` variables).
    pub cloud: Option<String>,
    /// An explicit `clouds.yaml` (else `OS_CLIENT_CONFIG_FILE`, else the standard search).
    pub clouds_file: Option<PathBuf>,
    /// Region override (else the entry's `region_name`).
    pub region: Option<String>,
    /// HTTP timeout of one request (default 60 s).
    pub timeout: Option<Duration>,
}

impl CloudSelector {
    /// The entry named `cloud`, searched for in the standard places.
    pub fn named(cloud: impl Into<String>) -> Self {
        Self {
            cloud: Some(cloud.into()),
            ..Self::default()
        }
    }

    /// The entry named `cloud` in the given `clouds.yaml` (secure.yaml still merged from the
    /// standard places).
    pub fn in_file(cloud: impl Into<String>, clouds_file: impl Into<PathBuf>) -> Self {
        Self {
            cloud: Some(cloud.into()),
            clouds_file: Some(clouds_file.into()),
            ..Self::default()
        }
    }

    /// The resolved configuration and a label for messages (entry name or `OS_* environment`).
    pub fn resolve(&self) -> Result<(CloudConfig, String)> {
        let file = self.clouds_file.clone().or_else(|| {
            std::env::var_os("OS_CLIENT_CONFIG_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        if let Some(f) = &file
            && !f.is_file()
        {
            return Err(Error::Config {
                message: format!(
                    "{} does not exist (named by --clouds-file or OS_CLIENT_CONFIG_FILE)",
                    f.display()
                ),
            });
        }
        let name = self
            .cloud
            .clone()
            .or_else(|| std::env::var("OS_CLOUD").ok().filter(|v| !v.is_empty()));
        let (mut config, label) = match name {
            Some(name) => {
                let files =
                    ConfigFile::new_with_user_specified_configs(file.as_ref(), None::<PathBuf>)
                        .map_err(|e| Error::Config {
                            message: format!("reading clouds.yaml/secure.yaml: {e}"),
                        })?;
                let config = files.get_cloud_config(&name).map_err(|e| Error::Config {
                    message: format!("cloud `{name}`: {e}"),
                })?;
                let Some(config) = config else {
                    let mut known = files.get_available_clouds();
                    known.sort();
                    let searched = match &file {
                        Some(f) => f.display().to_string(),
                        None => "./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml"
                            .to_string(),
                    };
                    return Err(Error::Config {
                        message: format!(
                            "no cloud `{name}` in {searched} (clouds found: {}); add it there or pick another with --cloud / OS_CLOUD",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    });
                };
                (config, name)
            }
            None => {
                if std::env::var("OS_AUTH_URL").map_or(true, |v| v.is_empty()) {
                    return Err(Error::Config {
                        message: "no cloud selected: pass --cloud NAME or set OS_CLOUD (an entry of clouds.yaml), or set OS_AUTH_URL and the other OS_* variables".into(),
                    });
                }
                let config = CloudConfig::from_env().map_err(|e| Error::Config {
                    message: format!("OS_* variables: {e}"),
                })?;
                (config, "OS_* environment".to_string())
            }
        };
        if let Some(region) = &self.region {
            config.region_name = Some(region.clone());
        }
        Ok((config, label))
    }
}

/// An authenticated session to one cloud, plus who we are in it.
#[derive(Clone)]
pub struct Session {
    pub(crate) os: AsyncOpenStack,
    /// The cloud entry name, for messages.
    pub label: String,
    /// Keystone user id of the caller.
    pub user_id: String,
    /// Project the token is scoped to (none for a system- or domain-scoped token).
    pub project_id: Option<String>,
    /// Set when the caller itself authenticated with an application credential.
    pub application_credential_id: Option<String>,
    /// The Keystone URL the session authenticated against (for writing clouds.yaml entries).
    pub auth_url: String,
    /// Region in use, if the entry names one.
    pub region: Option<String>,
    /// `interface` of the entry (`public` by default).
    pub interface: Option<String>,
    /// Whether the entry verifies TLS (`verify: false` turns it off).
    pub verify: Option<bool>,
    /// CA bundle of the entry.
    pub cacert: Option<String>,
    pub(crate) retry: crate::api::RetryPolicy,
    _renew: std::sync::Arc<openstack_sdk::RenewHandle>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("cloud", &self.label)
            .field("user_id", &self.user_id)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

/// Installs ring as rustls' process-wide provider: openstack_sdk's reqwest would otherwise find
/// two providers (ring from kube, aws-lc-rs from reqwest) and panic at the first TLS handshake.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// openstack_sdk finds its auth plugins through `inventory`, and nothing in it references the
/// application-credential plugin, so the linker leaves it out and `auth_type:
/// v3applicationcredential` is "not a supported type". Referencing the plugin's anchor keeps it.
fn link_auth_plugins() {
    std::hint::black_box(&openstack_sdk_auth_applicationcredential::ANCHOR);
}

impl Session {
    /// Whether the token's service catalog lists one of `types` (e.g. `["load-balancer"]`;
    /// Cinder appears as `block-storage`, `volumev3` or `volume`). No request is sent.
    pub fn has_service(&self, types: &[&str]) -> bool {
        self.os
            .get_auth_info()
            .and_then(|info| info.token.catalog)
            .is_some_and(|catalog| {
                catalog
                    .iter()
                    .any(|s| types.contains(&s.service_type.as_str()))
            })
    }

    /// The same session with another retry policy (tests shorten it; a batch job may lengthen it).
    pub fn with_retry(mut self, retry: crate::api::RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Authenticates. A refused credential is an [`Error::Auth`] at once; an unreachable or
    /// failing Keystone (5xx, timeouts) is retried a few times with backoff first.
    pub async fn connect(selector: &CloudSelector) -> Result<Session> {
        install_crypto_provider();
        link_auth_plugins();
        let (config, label) = selector.resolve()?;
        let timeout = selector.timeout.unwrap_or(Duration::from_secs(60));
        let auth_url = config
            .auth
            .as_ref()
            .and_then(|a| a.auth_url.clone())
            .unwrap_or_default();
        let mut delay = Duration::from_millis(300);
        let mut attempt = 0;
        let os = loop {
            attempt += 1;
            let result = AsyncOpenStack::builder(&config)
                .disable_auth_cache(true)
                // one answer per request: our own retry loop decides what is worth repeating
                .max_auth_retries(0)
                .http_timeout(timeout)
                .http_connect_timeout(Duration::from_secs(10))
                .connect()
                .await;
            match result {
                Ok(os) => break os,
                Err(e) => {
                    let chain = crate::error::chain(&e);
                    let status = keystone_status(&format!("{e:?}"));
                    let refused = matches!(status, Some(401))
                        || (status.is_none() && is_auth_refusal(&chain));
                    if refused {
                        return Err(Error::Auth {
                            cloud: label,
                            message: format!(
                                "{}; check the credentials of this entry (clouds.yaml/secure.yaml or OS_*); an expired or revoked application credential needs a new one",
                                first_line(&chain)
                            ),
                        });
                    }
                    let transient = match status {
                        Some(code) => matches!(code, 429 | 500 | 502 | 503 | 504),
                        None => is_transient_text(&chain),
                    };
                    if attempt >= 5 || !transient {
                        return Err(Error::Auth {
                            cloud: label,
                            message: chain,
                        });
                    }
                    tracing::warn!(cloud = %label, attempt, error = %first_line(&chain), "authentication failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        let info = os.get_auth_info().ok_or_else(|| Error::Auth {
            cloud: label.clone(),
            message: "Keystone returned no token information".into(),
        })?;
        // Unversioned catalog entries (Neutron's `http://host:9696`) resolve to the versioned URL
        // only after discovery; a service the cloud lacks fails here and is reported when used.
        for service in [
            ServiceType::Network,
            ServiceType::Compute,
            ServiceType::Image,
            ServiceType::BlockStorage,
            ServiceType::LoadBalancer,
        ] {
            if let Err(e) = os.discover_service_endpoint(&service).await {
                tracing::debug!(%service, error = %e, "service discovery failed");
            }
        }
        let renew = os.enable_auto_renew(chrono::TimeDelta::minutes(5));
        Ok(Session {
            user_id: info.token.user.id.clone(),
            project_id: info.token.project.as_ref().and_then(|p| p.id.clone()),
            application_credential_id: info
                .token
                .application_credential
                .as_ref()
                .and_then(|a| a.id.clone()),
            os,
            label,
            auth_url,
            region: config.region_name.clone(),
            interface: config.interface.clone(),
            verify: config.verify,
            cacert: config.cacert.clone(),
            retry: crate::api::RetryPolicy::default(),
            _renew: std::sync::Arc::new(renew),
        })
    }
}

/// The HTTP status Keystone answered, when the auth plugin kept it: its error displays only the
/// message, but the structure (`IdentityError { code, .. }`) holds the code, visible in Debug.
fn keystone_status(debug: &str) -> Option<u16> {
    let at = debug.find("code: ")? + "code: ".len();
    let digits: String = debug[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|c| (100..600).contains(c))
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

fn is_auth_refusal(chain: &str) -> bool {
    let c = chain.to_ascii_lowercase();
    c.contains("401")
        || c.contains("unauthorized")
        || c.contains("could not find application credential")
}

fn is_transient_text(chain: &str) -> bool {
    let c = chain.to_ascii_lowercase();
    [
        "500",
        "502",
        "503",
        "504",
        "429",
        "timed out",
        "timeout",
        "connection",
        "connect",
        "reset",
        "broken pipe",
        "eof",
    ]
    .iter()
    .any(|k| c.contains(k))
}
