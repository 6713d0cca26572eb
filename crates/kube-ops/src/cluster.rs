//! One API server as the move sees it: a single reused `kube::Client`, every request counted,
//! bounded in time and retried with clusterctl's backoffs on transient failures (the "Proxy" of
//! clusterctl: everything else reaches the cluster only through here).

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::error::{Error, Result, is_transient};

/// A `KUBECONFIG[:CONTEXT]` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRef {
    /// The kubeconfig file.
    pub kubeconfig: PathBuf,
    /// The context (the file's current context when `None`).
    pub context: Option<String>,
}

impl ClusterRef {
    /// Parses `PATH` or `PATH:CONTEXT`. An existing file whose name contains `:` is taken whole.
    pub fn parse(arg: &str) -> ClusterRef {
        if Path::new(arg).exists() {
            return ClusterRef {
                kubeconfig: PathBuf::from(arg),
                context: None,
            };
        }
        match arg.rsplit_once(':') {
            Some((path, ctx)) if !path.is_empty() && !ctx.is_empty() && !ctx.contains('/') => {
                ClusterRef {
                    kubeconfig: PathBuf::from(path),
                    context: Some(ctx.to_owned()),
                }
            }
            _ => ClusterRef {
                kubeconfig: PathBuf::from(arg),
                context: None,
            },
        }
    }
}

impl fmt::Display for ClusterRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.context {
            Some(c) => write!(f, "{}:{c}", self.kubeconfig.display()),
            None => write!(f, "{}", self.kubeconfig.display()),
        }
    }
}

/// A retry policy: first attempt immediately, then `min·factor^k` with jitter, `times` retries.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub min: Duration,
    /// Growth per retry.
    pub factor: f32,
    /// Number of retries after the first attempt.
    pub times: usize,
}

impl Backoff {
    /// clusterctl's write backoff (500 ms ×1.5, 13 steps, ≈159 s).
    pub const WRITE: Backoff = Backoff {
        min: Duration::from_millis(500),
        factor: 1.5,
        times: 12,
    };
    /// clusterctl's read backoff (250 ms ×1.5, 9 steps, ≈15 s).
    pub const READ: Backoff = Backoff {
        min: Duration::from_millis(250),
        factor: 1.5,
        times: 8,
    };
    /// No retries (for callers that poll on their own).
    pub const NONE: Backoff = Backoff {
        min: Duration::from_millis(0),
        factor: 1.0,
        times: 0,
    };
}

/// Request counters of one cluster.
#[derive(Debug, Default)]
pub struct Counters {
    /// GET/LIST requests sent (retries included).
    pub reads: AtomicU64,
    /// POST/PUT/PATCH/DELETE requests sent (retries included).
    pub writes: AtomicU64,
    /// Attempts that failed transiently and were retried.
    pub retries: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestStats {
    /// Reads.
    pub reads: u64,
    /// Writes.
    pub writes: u64,
    /// Retried attempts.
    pub retries: u64,
}

/// One API server: a client reused for every request, counters, and the request policy.
#[derive(Clone)]
pub struct Cluster {
    /// `source` or `target` (used in messages).
    pub role: &'static str,
    /// The API server URL (recorded in the journal; the journal file is named by [`Cluster::identity`]).
    pub url: String,
    /// The kubeconfig context's namespace, `default` when unset.
    pub default_namespace: String,
    client: Client,
    counters: Arc<Counters>,
    /// Limit for one request; a request that does not answer in time is retried.
    pub request_timeout: Duration,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("role", &self.role)
            .field("url", &self.url)
            .finish()
    }
}

/// Installs rustls' ring crypto provider once per process (two providers are linked in this
/// workspace and kube would panic without a choice; see research/crates.md).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Cluster {
    /// Connects to the cluster of a kubeconfig (+ context). No request is sent yet.
    pub async fn connect(r: &ClusterRef, role: &'static str) -> Result<Cluster> {
        install_crypto_provider();
        let err = |message: String| Error::Kubeconfig {
            what: r.to_string(),
            message,
        };
        let kc = Kubeconfig::read_from(&r.kubeconfig).map_err(|e| err(e.to_string()))?;
        let opts = KubeConfigOptions {
            context: r.context.clone(),
            ..KubeConfigOptions::default()
        };
        let mut config = Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| err(e.to_string()))?;
        config.connect_timeout = Some(Duration::from_secs(5));
        let url = config.cluster_url.to_string();
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|e| err(e.to_string()))?;
        Ok(Cluster {
            role,
            url,
            default_namespace,
            client,
            counters: Arc::new(Counters::default()),
            request_timeout: Duration::from_secs(20),
        })
    }

    /// The shared client (for callers that need plain `Api`s; their requests are not counted).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What identifies this cluster in a journal whatever address reaches it: the UID of its
    /// `kube-system` namespace (`uid:…`), or the URL (`url:…`) when that namespace cannot be
    /// read. A move resumed through another address (a proxy, a new port-forward) finds the
    /// journal of the interrupted run.
    pub async fn identity(&self) -> Result<String> {
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(self.client.clone());
        let r = self
            .call(
                "get",
                || "Namespace kube-system".to_owned(),
                Backoff::READ,
                false,
                |_| {
                    let api = api.clone();
                    async move { api.get("kube-system").await }
                },
            )
            .await;
        match r {
            Ok(ns) => match ns.metadata.uid {
                Some(uid) => Ok(format!("uid:{uid}")),
                None => Ok(format!("url:{}", self.url)),
            },
            Err(e) if matches!(e.status(), Some(403 | 404)) => Ok(format!("url:{}", self.url)),
            Err(e) => Err(e),
        }
    }

    /// Requests sent so far.
    pub fn stats(&self) -> RequestStats {
        RequestStats {
            reads: self.counters.reads.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
        }
    }

    /// Runs one request with the timeout and retry policy; `write` decides which counter.
    /// Non-transient API answers (404, 409, 422, …) are returned at once for the caller to judge.
    pub async fn call<T, F, Fut>(
        &self,
        op: &'static str,
        object: impl Fn() -> String,
        backoff: Backoff,
        write: bool,
        mut f: F,
    ) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, kube::Error>>,
    {
        let mut delay = backoff.min;
        let mut attempt = 0usize;
        loop {
            if write {
                self.counters.writes.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.reads.fetch_add(1, Ordering::Relaxed);
            }
            let outcome = tokio::time::timeout(self.request_timeout, f(self.client.clone())).await;
            let error = match outcome {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    if !is_transient(&e) || attempt >= backoff.times {
                        return Err(Error::Api {
                            op,
                            object: object(),
                            cluster: self.role.to_owned(),
                            source: Box::new(e),
                        });
                    }
                    e.to_string()
                }
                Err(_) => {
                    if attempt >= backoff.times {
                        return Err(Error::Timeout {
                            op,
                            object: object(),
                            cluster: self.role.to_owned(),
                            secs: self.request_timeout.as_secs(),
                        });
                    }
                    format!("no answer within {:?}", self.request_timeout)
                }
            };
            attempt += 1;
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(op, object = %object(), cluster = self.role, attempt, %error, "transient failure, retrying");
            tokio::time::sleep(jitter(delay)).await;
            delay = delay.mul_f32(backoff.factor);
        }
    }
}

/// `d` plus up to 40% random jitter (clusterctl jitters its write backoff by 0.4).
fn jitter(d: Duration) -> Duration {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 1000) / 1000.0 * 0.4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubeconfig_and_context() {
        let r = ClusterRef::parse("/nonexistent/kc:admin@mgmt");
        assert_eq!(r.kubeconfig, PathBuf::from("/nonexistent/kc"));
        assert_eq!(r.context.as_deref(), Some("admin@mgmt"));
        let r = ClusterRef::parse("/nonexistent/kc");
        assert_eq!(r.context, None);
    }
}
