//! The hand-off against the world's real Flux (source + kustomize controllers) and git server: a
//! cluster path with sealed credentials and Flux's sync objects is committed and pushed over SSH
//! (generated ed25519 deploy key, known_hosts read from the server), over HTTP (token Secret)
//! and over HTTPS (token and the server's CA in the Secret); the call returns once the Kustomization has applied the pushed revision; a rerun
//! commits nothing, keeps the deploy key and returns at once.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use gitops::{Auth, AuthSecret, CommitOutcome, DeployKey, FluxSync, Repo};

mod common;

/// Authorizes a deploy key on the world's sshd the way a git host would (restricted to
/// git-shell, as the world's own key), and removes it again when dropped.
struct AuthorizedKey {
    file: std::path::PathBuf,
    line: String,
}
impl AuthorizedKey {
    fn add(world: &test_world::World, public: &str) -> AuthorizedKey {
        let file = world.state_dir().join("git/sshd/authorized_keys");
        let line = format!(
            "restrict,command=\"/usr/bin/git-shell -c \\\"$SSH_ORIGINAL_COMMAND\\\"\" {public}\n"
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .expect("authorized_keys");
        f.write_all(line.as_bytes()).expect("append");
        AuthorizedKey { file, line }
    }
}
impl Drop for AuthorizedKey {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(&self.file) {
            let _ = std::fs::write(&self.file, text.replace(&self.line, ""));
        }
    }
}

fn write(work: &Path, rel: &str, text: &str) {
    let p = work.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// A cluster path: a ConfigMap and (when the world's sealed-secrets controller is up) sealed
/// credentials, both in namespace `ns`.
async fn cluster_path(world: &test_world::World, work: &Path, path: &str, ns: &str) -> bool {
    write(
        work,
        &format!("{path}/app.yaml"),
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: handed-off, namespace: {ns}}}\ndata: {{from: flux}}\n"
        ),
    );
    let Ok(url) = world.sealed_secrets_cert_url("mgmt") else {
        return false;
    };
    let cert = seal::fetch_certificate(&seal::CertSource::Url(url))
        .await
        .expect("cert");
    let secret = &seal::parse_secrets(&format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: cloud-credentials, namespace: {ns}}}\nstringData: {{clouds.yaml: 'secret-from-git'}}\n")).expect("parse")[0];
    let sealed = seal::seal_secret(&cert, secret, &seal::SealOptions::default()).expect("seal");
    write(
        work,
        &format!("{path}/credentials.sealed.yaml"),
        &seal::to_yaml(&sealed).expect("yaml"),
    );
    true
}

async fn wait_for(
    world: &test_world::World,
    ns: &str,
    kind: &str,
    name: &str,
) -> serde_json::Value {
    let (w, ns, kind, name) = (
        world.clone(),
        ns.to_owned(),
        kind.to_owned(),
        name.to_owned(),
    );
    test_world::eventually(
        Duration::from_secs(60),
        &format!("{kind} {ns}/{name}"),
        || {
            let (w, ns, kind, name) = (w.clone(), ns.clone(), kind.clone(), name.clone());
            async move {
                let mut c = w.kubectl("mgmt")?;
                c.args([
                    "-n",
                    &ns,
                    "get",
                    &kind,
                    &name,
                    "--ignore-not-found",
                    "-o",
                    "json",
                ]);
                let out = test_world::run(&mut c)?;
                Ok((!out.trim().is_empty())
                    .then(|| serde_json::from_str(&out))
                    .transpose()?)
            }
        },
    )
    .await
    .expect("applied by Flux")
}

#[tokio::test]
async fn hand_off_over_ssh_with_a_deploy_key_then_rerun_is_a_no_op() {
    let Some(world) = test_world::world_or_skip(&[
        "WORLD_FLUX_SERVERS",
        "WORLD_GIT_SSH_URL_BASE",
        "WORLD_KUBECONFIG_MGMT",
    ]) else {
        return;
    };
    let git = world.git().expect("git");
    let ns = world
        .namespace("mgmt", "handoff-ssh")
        .await
        .expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let (bare, _) = common::fresh_repo(&git, &git.ssh_url_base, dir.path());
    let path = "clusters/mgmt";
    let sealed = cluster_path(&world, dir.path(), path, &ns.name).await;

    let repo = Repo::open(dir.path()).expect("open");
    let tracked = repo.tracked_remote().expect("tracked");
    let mut sync = FluxSync::new(&tracked.flux_url, &tracked.remote_branch, path, true);
    sync.namespace = ns.name.clone(); // a namespace per test instead of the shared flux-system
    sync.write(repo.workdir()).expect("write sync manifests");
    let auth = Auth {
        ssh_key: Some(git.ssh_key.clone()),
        known_hosts: Some(git.known_hosts.clone()),
        ..Default::default()
    };
    let commit = repo.commit_path(Path::new(path), None).expect("commit");
    let pushed = repo.push(&auth).expect("push");
    assert_eq!(pushed.commit, commit.commit());

    let client = world.client("mgmt").await.expect("client");
    assert!(
        gitops::existing_deploy_key(&client, &sync)
            .await
            .expect("read")
            .is_none()
    );
    let key = DeployKey::generate("flux-handoff-test").expect("deploy key");
    let _authorized = AuthorizedKey::add(&world, &key.public);
    let known_hosts = gitops::scan_host_key(&tracked.flux_url).expect("host key");
    assert_eq!(known_hosts, git.known_hosts_line);
    let public = key.public.clone();
    let started = std::time::Instant::now();
    let report = gitops::apply_and_wait(
        &client,
        &sync,
        &AuthSecret::Ssh { key, known_hosts },
        commit.commit(),
        Duration::from_secs(150),
    )
    .await
    .expect("Flux applies the pushed revision");
    println!(
        "hand-off over SSH: Flux applied {} in {:?}",
        report.revision,
        started.elapsed()
    );
    assert_eq!(report.revision, format!("main@sha1:{}", commit.commit()));
    assert!(report.secret_written);
    let cm = wait_for(&world, &ns.name, "configmap", "handed-off").await;
    assert_eq!(cm["data"]["from"], "flux");
    if sealed {
        let s = wait_for(&world, &ns.name, "secret", "cloud-credentials").await;
        assert_eq!(s["data"]["clouds.yaml"], "c2VjcmV0LWZyb20tZ2l0");
    }

    // Rerun: same files, nothing to commit, the deploy key in the cluster is reused.
    sync.write(repo.workdir()).expect("rewrite");
    let again = repo.commit_path(Path::new(path), None).expect("recommit");
    assert!(
        matches!(again, CommitOutcome::Unchanged { .. }),
        "{again:?}"
    );
    repo.push(&auth).expect("push again");
    let existing = gitops::existing_deploy_key(&client, &sync)
        .await
        .expect("read")
        .expect("the deploy key is there");
    assert_eq!(existing, public);
    let started = std::time::Instant::now();
    let rerun = gitops::apply_and_wait(
        &client,
        &sync,
        &AuthSecret::KeepExisting,
        again.commit(),
        Duration::from_secs(30),
    )
    .await
    .expect("rerun");
    assert!(!rerun.secret_written);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a rerun returns at once: {:?}",
        started.elapsed()
    );
    let b = git2::Repository::open_bare(&bare).expect("bare");
    let mut walk = b.revwalk().expect("revwalk");
    walk.push_ref("refs/heads/main").expect("main");
    assert_eq!(walk.count(), 1, "no new commit on the remote");
    let _ = ns.delete().await;
}

#[tokio::test]
async fn hand_off_over_http_with_a_token_secret() {
    let Some(world) = test_world::world_or_skip(&[
        "WORLD_FLUX_SERVERS",
        "WORLD_GIT_HTTP_URL_BASE",
        "WORLD_KUBECONFIG_MGMT",
    ]) else {
        return;
    };
    let git = world.git().expect("git");
    let ns = world
        .namespace("mgmt", "handoff-http")
        .await
        .expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = common::fresh_repo(&git, &git.http_url_base, dir.path());
    let path = "clusters/web";
    cluster_path(&world, dir.path(), path, &ns.name).await;
    // The cluster definition lives in the same path and is not a Kubernetes object: the
    // generated kustomization.yaml must leave it out or Flux fails ("missing Resource metadata").
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../clusters/example/cluster.yaml"
    );
    write(
        dir.path(),
        &format!("{path}/cluster.yaml"),
        &std::fs::read_to_string(example).expect("the example cluster definition"),
    );
    let repo = Repo::open(dir.path()).expect("open");
    let tracked = repo.tracked_remote().expect("tracked");
    let mut sync = FluxSync::new(&tracked.flux_url, &tracked.remote_branch, path, true);
    sync.namespace = ns.name.clone();
    sync.write(repo.workdir()).expect("sync manifests");
    let commit = repo.commit_path(Path::new(path), None).expect("commit");
    let token = zeroize::Zeroizing::new("world-http-does-not-check".to_owned());
    repo.push(&Auth {
        token: Some(token.clone()),
        ..Default::default()
    })
    .expect("push over http");
    let client = world.client("mgmt").await.expect("client");
    let report = gitops::apply_and_wait(
        &client,
        &sync,
        &AuthSecret::Token {
            username: "git".into(),
            token,
            ca: None,
        },
        commit.commit(),
        Duration::from_secs(150),
    )
    .await
    .expect("Flux applies the pushed revision");
    assert_eq!(report.revision, format!("main@sha1:{}", commit.commit()));
    let cm = wait_for(&world, &ns.name, "configmap", "handed-off").await;
    assert_eq!(cm["data"]["from"], "flux");
    let _ = ns.delete().await;
}

#[tokio::test]
async fn hand_off_non_interactive_stops_with_a_new_key_then_reuses_it() {
    let Some(world) = test_world::world_or_skip(&[
        "WORLD_FLUX_SERVERS",
        "WORLD_GIT_SSH_URL_BASE",
        "WORLD_KUBECONFIG_MGMT",
    ]) else {
        return;
    };
    let git = world.git().expect("git");
    let ns = world
        .namespace("mgmt", "handoff-flow")
        .await
        .expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let (bare, _) = common::fresh_repo(&git, &git.ssh_url_base, dir.path());
    let path = "clusters/flow";
    cluster_path(&world, dir.path(), path, &ns.name).await;
    let repo = Repo::open(dir.path()).expect("open");
    let client = world.client("mgmt").await.expect("client");
    let push = Auth {
        ssh_key: Some(git.ssh_key.clone()),
        known_hosts: Some(git.known_hosts.clone()),
        ..Default::default()
    };
    let mut opts = gitops::HandoffOptions::new(path);
    opts.namespace = ns.name.clone();
    opts.non_interactive = true;
    opts.timeout = Duration::from_secs(150);

    // First run: a new deploy key; non-interactive, so it stops and names the key.
    let mut printed = None;
    let err = gitops::hand_off(&repo, &push, &client, &opts, |k| {
        printed = Some(k.to_owned())
    })
    .await
    .expect_err("the new key must be authorized first");
    let gitops::Error::DeployKeyNeeded { public_key, url } = &err else {
        panic!("expected DeployKeyNeeded, got {err}")
    };
    assert_eq!(Some(public_key), printed.as_ref());
    assert!(url.starts_with("ssh://"), "{url}");
    assert!(err.to_string().contains(public_key.as_str()));

    // The owner authorizes it on the git host; the rerun reuses it and waits for Flux.
    let _authorized = AuthorizedKey::add(&world, public_key);
    let done = gitops::hand_off(&repo, &push, &client, &opts, |_| {
        panic!("no new key on a rerun")
    })
    .await
    .expect("hand-off");
    assert!(done.new_deploy_key.is_none());
    assert!(matches!(done.commit, CommitOutcome::Unchanged { .. }));
    assert_eq!(
        done.flux.revision,
        format!("main@sha1:{}", done.pushed.commit)
    );
    println!(
        "hand-off after authorizing the key: Flux applied in {:?}",
        done.flux.waited
    );
    let cm = wait_for(&world, &ns.name, "configmap", "handed-off").await;
    assert_eq!(cm["data"]["from"], "flux");
    assert_eq!(
        gitops::existing_deploy_key(
            &client,
            &FluxSync {
                namespace: ns.name.clone(),
                ..FluxSync::new("", "main", path, true)
            }
        )
        .await
        .expect("read")
        .as_deref(),
        Some(public_key.as_str())
    );

    // And again: nothing to commit, no key, no Secret write, no wait.
    let again = gitops::hand_off(&repo, &push, &client, &opts, |_| panic!("no new key"))
        .await
        .expect("rerun");
    assert!(matches!(again.commit, CommitOutcome::Unchanged { .. }));
    assert!(!again.flux.secret_written);
    assert!(
        again.flux.waited < Duration::from_secs(2),
        "{:?}",
        again.flux.waited
    );
    let b = git2::Repository::open_bare(&bare).expect("bare");
    let mut walk = b.revwalk().expect("revwalk");
    walk.push_ref("refs/heads/main").expect("main");
    assert_eq!(walk.count(), 1, "one commit on the remote after three runs");
    let _ = ns.delete().await;
}

#[tokio::test]
async fn hand_off_over_https_with_a_token_and_the_ca_then_rerun_is_a_no_op() {
    let Some(world) = test_world::world_or_skip(&[
        "WORLD_FLUX_SERVERS",
        "WORLD_GIT_HTTPS_URL_BASE",
        "WORLD_GIT_TOKEN_FILE",
        "WORLD_GIT_CA_CERT",
        "WORLD_KUBECONFIG_MGMT",
    ]) else {
        return;
    };
    let git = world.git().expect("git");
    let https = world.git_https().expect("git over https");
    let ns = world
        .namespace("mgmt", "handoff-https")
        .await
        .expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let (bare, url) = common::fresh_repo(&git, &https.url_base, dir.path());
    let path = "clusters/tls";
    let sealed = cluster_path(&world, dir.path(), path, &ns.name).await;
    let repo = Repo::open(dir.path()).expect("open");
    let client = world.client("mgmt").await.expect("client");
    let token = zeroize::Zeroizing::new(https.token().expect("token"));
    let push = Auth {
        token: Some(token.clone()),
        ca_file: Some(https.ca_cert.clone()),
        ..Default::default()
    };
    let mut opts = gitops::HandoffOptions::new(path);
    opts.namespace = ns.name.clone();
    opts.non_interactive = true;
    opts.timeout = Duration::from_secs(150);
    // Flux gets the same token (any user name) and, from the push's CA file, the world CA.
    opts.flux_token = Some(("flux".into(), token.clone()));

    let started = std::time::Instant::now();
    let done = gitops::hand_off(&repo, &push, &client, &opts, |_| {
        panic!("no deploy key over HTTPS")
    })
    .await
    .expect("Flux applies the revision pushed over HTTPS");
    println!(
        "hand-off over HTTPS: Flux applied {} in {:?}",
        done.flux.revision,
        started.elapsed()
    );
    let CommitOutcome::Committed { commit, .. } = &done.commit else {
        panic!("expected a commit: {:?}", done.commit)
    };
    assert_eq!(&done.pushed.commit, commit);
    assert_eq!(done.pushed.url, url);
    assert!(done.new_deploy_key.is_none());
    assert_eq!(done.flux.revision, format!("main@sha1:{commit}"));
    let b = git2::Repository::open_bare(&bare).expect("bare");
    assert_eq!(
        b.refname_to_id("refs/heads/main")
            .expect("main")
            .to_string(),
        *commit
    );

    // Flux fetched over HTTPS with the Secret's username/password and ca.crt.
    let repo_obj = wait_for(&world, &ns.name, "gitrepository", "flux-system").await;
    assert_eq!(repo_obj["spec"]["url"], url.as_str());
    assert_eq!(repo_obj["spec"]["secretRef"]["name"], "flux-system");
    let secret = wait_for(&world, &ns.name, "secret", "flux-system").await;
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let ca = std::fs::read_to_string(&https.ca_cert).expect("ca");
    assert_eq!(secret["data"]["username"], b64("flux").as_str());
    assert_eq!(secret["data"]["password"], b64(&token).as_str());
    assert_eq!(secret["data"]["ca.crt"], b64(&ca).as_str());
    let cm = wait_for(&world, &ns.name, "configmap", "handed-off").await;
    assert_eq!(cm["data"]["from"], "flux");
    if sealed {
        let s = wait_for(&world, &ns.name, "secret", "cloud-credentials").await;
        assert_eq!(s["data"]["clouds.yaml"], "c2VjcmV0LWZyb20tZ2l0");
    }

    // Rerun: nothing to commit, the remote unchanged, the Secret unchanged, no wait.
    let version = secret["metadata"]["resourceVersion"].clone();
    let again = gitops::hand_off(&repo, &push, &client, &opts, |_| panic!("no key"))
        .await
        .expect("rerun");
    assert_eq!(
        again.commit,
        CommitOutcome::Unchanged {
            head: commit.clone()
        }
    );
    assert_eq!(again.pushed.commit, *commit);
    assert_eq!(again.flux.revision, done.flux.revision);
    assert!(
        again.flux.waited < Duration::from_secs(5),
        "a rerun returns at once: {:?}",
        again.flux.waited
    );
    let secret = wait_for(&world, &ns.name, "secret", "flux-system").await;
    assert_eq!(
        secret["metadata"]["resourceVersion"], version,
        "the Secret is not rewritten"
    );
    let mut walk = b.revwalk().expect("revwalk");
    walk.push_ref("refs/heads/main").expect("main");
    assert_eq!(walk.count(), 1, "one commit on the remote after two runs");
    let _ = ns.delete().await;
}
