//! Test support for the local test world (`tests/world/world.sh`): typed access to what the world
//! exports in `$WORLD_STATE/world.env`, a namespace per test, and the skip-or-fail rule.
//!
//! A test that needs the world starts with
//!
//! ```no_run
//! # async fn t() {
//! let Some(world) = test_world::world_or_skip(&["WORLD_KUBECONFIG_MGMT"]) else { return };
//! let ns = world.namespace("mgmt", "my-test").await.expect("namespace");
//! # }
//! ```
//!
//! When the world (or one of the named variables) is absent the test prints exactly one line,
//! `world absent: <why>`, and returns; with `WORLD_REQUIRED=1` (CI) it fails instead.

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Default state directory of the world (`MANAGE_WORLD_STATE` overrides it, as in `common.sh`).
pub const DEFAULT_STATE: &str = "/var/tmp/manage-world";

/// The running test world, as described by `$WORLD_STATE/world.env`.
#[derive(Debug, Clone)]
pub struct World {
    state: PathBuf,
    vars: BTreeMap<String, String>,
}

/// The world's git server: one bare repository `fleet.git`, served over SSH and smart HTTP.
#[derive(Debug, Clone)]
pub struct GitServer {
    /// `ssh://user@127.0.0.1:port/…/fleet.git`
    pub ssh_url: String,
    /// `http://127.0.0.1:port/fleet.git`
    pub http_url: String,
    /// `ssh://user@127.0.0.1:port/<repos dir>`: append `/<name>.git` for another repository.
    pub ssh_url_base: String,
    /// `http://127.0.0.1:port`: append `/<name>.git` for another repository.
    pub http_url_base: String,
    /// Directory of the bare repositories (create more with `git init --bare`).
    pub repos_dir: PathBuf,
    /// Private key (ed25519, OpenSSH format) accepted by the SSH server.
    pub ssh_key: PathBuf,
    /// known_hosts file with the server's host key.
    pub known_hosts: PathBuf,
    /// The known_hosts line, `[127.0.0.1]:port ssh-ed25519 AAAA…` (Flux's `known_hosts` key).
    pub known_hosts_line: String,
}

impl GitServer {
    /// `GIT_SSH_COMMAND` value that makes the git CLI use the world's key and known_hosts.
    pub fn git_ssh_command(&self) -> String {
        format!(
            "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
            self.ssh_key.display(),
            self.known_hosts.display()
        )
    }
}

/// The world's git server over HTTPS (the same repositories as [`GitServer`]): a serving
/// certificate signed by the world CA, and HTTP basic auth with a token generated at `up` (any
/// user name, the token as password); requests without it get 401 `WWW-Authenticate: Basic`.
#[derive(Debug, Clone)]
pub struct GitHttps {
    /// `https://127.0.0.1:port/fleet.git`
    pub url: String,
    /// `https://127.0.0.1:port`: append `/<name>.git` for another repository.
    pub url_base: String,
    /// File (0600) holding the token.
    pub token_file: PathBuf,
    /// The CA certificate (PEM) the server's certificate chains to (the world CA).
    pub ca_cert: PathBuf,
}

impl GitHttps {
    /// The token (the password of HTTP basic auth).
    pub fn token(&self) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(&self.token_file)
            .with_context(|| format!("reading {}", self.token_file.display()))?;
        let token = text.trim();
        if token.is_empty() {
            bail!("{} is empty", self.token_file.display());
        }
        Ok(token.to_owned())
    }
}

/// The world's fault proxy in front of an API server.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    /// toxiproxy's HTTP API, `http://127.0.0.1:port` (create toxics on proxy `apiserver-<server>`).
    pub toxiproxy_api: String,
    /// Kubeconfig that reaches the API server through toxiproxy (TCP-level faults).
    pub toxiproxy_kubeconfig: PathBuf,
    /// Kubeconfig that reaches the API server through the HTTP fault proxy (HTTP status faults).
    pub http_kubeconfig: PathBuf,
    /// Control URL of the HTTP fault proxy: `POST <url>/faults` with `{"status":503,"count":N}`.
    pub http_control: String,
}

/// Why the world cannot be used by a test.
#[derive(Debug)]
pub struct Absent(pub String);

impl std::fmt::Display for Absent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether CI demands the world (`WORLD_REQUIRED=1`): then absence fails the test.
pub fn world_required() -> bool {
    std::env::var("WORLD_REQUIRED").is_ok_and(|v| v == "1" || v == "true")
}

/// The world for a test, or `None` after printing `world absent: <why>` (the test then returns).
/// `needs` lists world.env variables the test relies on (e.g. `WORLD_GIT_SSH_URL`); a missing
/// one counts as absence. Panics instead of skipping when `WORLD_REQUIRED=1`.
pub fn world_or_skip(needs: &[&str]) -> Option<World> {
    match World::load().and_then(|w| w.check(needs).map(|()| w)) {
        Ok(w) => Some(w),
        Err(Absent(why)) if world_required() => {
            panic!("world absent: {why} (WORLD_REQUIRED=1, so this fails)")
        }
        Err(Absent(why)) => {
            println!("world absent: {why}");
            None
        }
    }
}

impl World {
    /// Reads `world.env` from the state directory (`MANAGE_WORLD_STATE`, else
    /// [`DEFAULT_STATE`]) and checks that the first API server accepts connections.
    pub fn load() -> Result<World, Absent> {
        let state = std::env::var_os("MANAGE_WORLD_STATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE));
        Self::load_from(&state)
    }

    /// Like [`World::load`], from an explicit state directory.
    pub fn load_from(state: &Path) -> Result<World, Absent> {
        let file = state.join("world.env");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            Absent(format!(
                "cannot read {} ({e}); bring it up with tests/world/world.sh up",
                file.display()
            ))
        })?;
        let vars = parse_env(&text);
        let world = World {
            state: state.to_path_buf(),
            vars,
        };
        if let Some(first) = world.servers().first() {
            let url = world
                .apiserver_url(first)
                .map_err(|e| Absent(e.to_string()))?;
            let hostport = url.trim_start_matches("https://").trim_end_matches('/');
            let reachable = hostport
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .is_some_and(|addr| {
                    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
                });
            if !reachable {
                return Err(Absent(format!(
                    "API server {first} at {url} does not answer (stale {}?)",
                    file.display()
                )));
            }
        }
        Ok(world)
    }

    /// Checks that every variable in `needs` is set.
    pub fn check(&self, needs: &[&str]) -> Result<(), Absent> {
        for key in needs {
            if self.var(key).is_none() {
                return Err(Absent(format!(
                    "{key} is not in {}/world.env (its part is not up)",
                    self.state.display()
                )));
            }
        }
        Ok(())
    }

    /// A raw world.env variable.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn require(&self, key: &str) -> anyhow::Result<&str> {
        self.var(key)
            .ok_or_else(|| anyhow!("{key} is not in {}/world.env", self.state.display()))
    }

    /// The state directory (`/var/tmp/manage-world` by default).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Names of the world's API servers (`bootstrap`, `mgmt`, `workload`, …).
    pub fn servers(&self) -> Vec<String> {
        self.var("WORLD_APISERVERS")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Servers with the Cluster API managers running.
    pub fn capi_servers(&self) -> Vec<String> {
        words(self.var("WORLD_CAPI_SERVERS"))
    }

    /// Servers with the CAPI and clusterctl CRDs installed (managers or not).
    pub fn capi_crd_servers(&self) -> Vec<String> {
        words(self.var("WORLD_CAPI_CRD_SERVERS"))
    }

    /// The pinned Kubernetes version every API server reports (`v1.36.3`).
    pub fn kubernetes_version(&self) -> anyhow::Result<&str> {
        self.require("WORLD_KUBERNETES_VERSION")
    }

    /// Admin kubeconfig (`system:masters`) of API server `server`.
    pub fn kubeconfig(&self, server: &str) -> anyhow::Result<PathBuf> {
        Ok(PathBuf::from(
            self.require(&format!("WORLD_KUBECONFIG_{}", upper(server)))?,
        ))
    }

    /// `https://127.0.0.1:<port>` of API server `server`.
    pub fn apiserver_url(&self, server: &str) -> anyhow::Result<String> {
        Ok(self
            .require(&format!("WORLD_APISERVER_URL_{}", upper(server)))?
            .to_owned())
    }

    /// The world CA (signs every serving and client certificate of the world).
    pub fn ca_cert(&self) -> anyhow::Result<PathBuf> {
        Ok(PathBuf::from(self.require("WORLD_CA_CERT")?))
    }

    /// A binary built by the world (`$WORLD_BIN/<name>`), e.g. `kubectl`, `clusterctl`, `kubeseal`.
    pub fn bin(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = Path::new(self.require("WORLD_BIN")?).join(name);
        if !path.exists() {
            bail!(
                "{} is not built (tests/world/world.sh build)",
                path.display()
            );
        }
        Ok(path)
    }

    /// A `kubectl` command bound to API server `server`'s admin kubeconfig.
    pub fn kubectl(&self, server: &str) -> anyhow::Result<Command> {
        let mut cmd = Command::new(self.bin("kubectl")?);
        cmd.arg("--kubeconfig").arg(self.kubeconfig(server)?);
        Ok(cmd)
    }

    /// `kubectl apply --server-side -f -` of `yaml` on `server`.
    pub fn apply_yaml(&self, server: &str, yaml: &str) -> anyhow::Result<String> {
        let mut cmd = self.kubectl(server)?;
        cmd.args(["apply", "--server-side", "--force-conflicts", "-f", "-"]);
        run_with_stdin(&mut cmd, yaml.as_bytes())
    }

    /// `kubectl <args> -o json` on `server`, parsed.
    pub fn kubectl_json(&self, server: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut cmd = self.kubectl(server)?;
        cmd.args(args).args(["-o", "json"]);
        let out = run(&mut cmd)?;
        serde_json::from_str(&out).with_context(|| format!("parsing kubectl {args:?} output"))
    }

    /// A `clusterctl` command with the version check disabled (no network here).
    pub fn clusterctl(&self) -> anyhow::Result<Command> {
        let mut cmd = Command::new(self.bin("clusterctl")?);
        cmd.env("CLUSTERCTL_DISABLE_VERSIONCHECK", "true");
        Ok(cmd)
    }

    /// URL of the sealed-secrets controller's public certificate on `server`
    /// (`kubeseal --cert <url>`).
    pub fn sealed_secrets_cert_url(&self, server: &str) -> anyhow::Result<String> {
        Ok(self
            .require(&format!("WORLD_SEALED_SECRETS_CERT_URL_{}", upper(server)))?
            .to_owned())
    }

    /// The git server.
    pub fn git(&self) -> anyhow::Result<GitServer> {
        Ok(GitServer {
            ssh_url: self.require("WORLD_GIT_SSH_URL")?.to_owned(),
            http_url: self.require("WORLD_GIT_HTTP_URL")?.to_owned(),
            ssh_url_base: self.require("WORLD_GIT_SSH_URL_BASE")?.to_owned(),
            http_url_base: self.require("WORLD_GIT_HTTP_URL_BASE")?.to_owned(),
            repos_dir: PathBuf::from(self.require("WORLD_GIT_REPOS_DIR")?),
            ssh_key: PathBuf::from(self.require("WORLD_GIT_SSH_KEY")?),
            known_hosts: PathBuf::from(self.require("WORLD_GIT_KNOWN_HOSTS")?),
            known_hosts_line: self.require("WORLD_GIT_KNOWN_HOSTS_LINE")?.to_owned(),
        })
    }

    /// The git server over HTTPS with token auth.
    pub fn git_https(&self) -> anyhow::Result<GitHttps> {
        Ok(GitHttps {
            url: self.require("WORLD_GIT_HTTPS_URL")?.to_owned(),
            url_base: self.require("WORLD_GIT_HTTPS_URL_BASE")?.to_owned(),
            token_file: PathBuf::from(self.require("WORLD_GIT_TOKEN_FILE")?),
            ca_cert: PathBuf::from(self.require("WORLD_GIT_CA_CERT")?),
        })
    }

    /// The fault proxies in front of API server `server`.
    pub fn faults(&self, server: &str) -> anyhow::Result<FaultProxy> {
        let s = upper(server);
        Ok(FaultProxy {
            toxiproxy_api: self.require("WORLD_TOXIPROXY_API")?.to_owned(),
            toxiproxy_kubeconfig: PathBuf::from(
                self.require(&format!("WORLD_TOXIPROXY_KUBECONFIG_{s}"))?,
            ),
            http_kubeconfig: PathBuf::from(
                self.require(&format!("WORLD_FAULTPROXY_KUBECONFIG_{s}"))?,
            ),
            http_control: self
                .require(&format!("WORLD_FAULTPROXY_CONTROL_{s}"))?
                .to_owned(),
        })
    }

    /// A kube client for API server `server` (admin).
    pub async fn client(&self, server: &str) -> anyhow::Result<Client> {
        client_from_kubeconfig(&self.kubeconfig(server)?).await
    }

    /// Creates a fresh namespace on `server` for one test: `<prefix>-<unique suffix>`, labelled
    /// `manage.test/world-test=<prefix>`. Delete it with [`TestNamespace::delete`] (the world's
    /// kube-controller-manager empties it); `world.sh down` removes everything anyway.
    pub async fn namespace(&self, server: &str, prefix: &str) -> anyhow::Result<TestNamespace> {
        let client = self.client(server).await?;
        let name = unique_name(prefix);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"manage.test/world-test": label_value(prefix)}},
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name} on {server}"))?;
        Ok(TestNamespace {
            name,
            server: server.to_owned(),
            client,
        })
    }
}

/// A namespace made for one test on one API server.
#[derive(Clone)]
pub struct TestNamespace {
    /// The namespace name.
    pub name: String,
    /// The API server it lives on.
    pub server: String,
    /// Admin client of that server.
    pub client: Client,
}

impl TestNamespace {
    /// Deletes the namespace (asynchronously finalized by the namespace controller).
    pub async fn delete(self) -> anyhow::Result<()> {
        Api::<Namespace>::all(self.client)
            .delete(&self.name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting namespace {}", self.name))?;
        Ok(())
    }
}

/// A kube client from a kubeconfig file (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<Client> {
    // kube's rustls needs a process-wide crypto provider; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", path.display()))?;
    Client::try_from(config).context("building the kube client")
}

/// `<prefix>-<suffix>`, unique per process and call, a valid DNS-1123 label.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let suffix = format!("{:x}{:x}{n}", std::process::id(), nanos % 0xfffff);
    let mut p = label_value(prefix);
    p.truncate(62 - suffix.len());
    format!("{}-{suffix}", p.trim_end_matches('-'))
}

fn label_value(s: &str) -> String {
    let v: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut v = v.trim_matches('-').to_owned();
    v.truncate(40);
    if v.is_empty() { "t".to_owned() } else { v }
}

fn upper(server: &str) -> String {
    server.to_ascii_uppercase().replace('-', "_")
}

fn words(v: Option<&str>) -> Vec<String> {
    v.map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .collect()
}

/// Polls `check` every 500 ms until it returns `Ok(Some(_))` or `timeout` passes; the error
/// names `what` and the last failure.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "not yet".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs a command, fails with its stderr when it exits non-zero, returns stdout.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`run`], writing `input` to the command's stdin.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> anyhow::Result<String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    child
        .stdin
        .take()
        .context("stdin of the child")?
        .write_all(input)
        .with_context(|| format!("writing stdin of {cmd:?}"))?;
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `obj` (a Kubernetes object as JSON) has condition `type_` with status `True`.
pub fn condition_true(obj: &serde_json::Value, type_: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(|t| t.as_str()) == Some(type_)
                    && c.get("status").and_then(|s| s.as_str()) == Some("True")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_lines() {
        let v = parse_env("A=1\n# c\nB=x=y\nbad\n");
        assert_eq!(v.get("A").map(String::as_str), Some("1"));
        assert_eq!(v.get("B").map(String::as_str), Some("x=y"));
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn unique_names_are_dns_labels() {
        let a = unique_name("Some_Test::name with spaces and a very long tail that goes on and on");
        let b = unique_name("Some_Test::name with spaces and a very long tail that goes on and on");
        assert_ne!(a, b);
        assert!(a.len() <= 63, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn absent_world_is_reported() {
        let dir = std::env::temp_dir().join(unique_name("no-world"));
        let err = World::load_from(&dir).expect_err("no world.env there");
        assert!(err.0.contains("world.env"), "{err}");
    }
}
