//! Against the world's git server (sshd with key auth and git http-backend): commit the
//! cluster's path and push over SSH, over HTTP and over HTTPS (token, world CA); reruns are
//! no-ops; plaintext Secrets and credentials files are refused with nothing committed; the host
//! key must be known; a wrong token or an untrusted certificate pushes nothing.

use std::path::Path;

use gitops::{Auth, CommitOutcome, Repo};

mod common;
use common::fresh_repo;

fn remote_main(bare: &Path) -> Option<String> {
    let b = git2::Repository::open_bare(bare).ok()?;
    b.refname_to_id("refs/heads/main")
        .ok()
        .map(|o| o.to_string())
}

fn write(work: &Path, rel: &str, text: &str) {
    let p = work.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

#[test]
fn commit_and_push_over_ssh_rerun_is_a_no_op_and_plaintext_is_refused() {
    let Some(world) =
        test_world::world_or_skip(&["WORLD_GIT_SSH_URL_BASE", "WORLD_GIT_KNOWN_HOSTS"])
    else {
        return;
    };
    let git = world.git().expect("git");
    let dir = tempfile::tempdir().expect("tempdir");
    let (bare, url) = fresh_repo(&git, &git.ssh_url_base, dir.path());
    write(
        dir.path(),
        "clusters/demo/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: team}\ndata: {k: v}\n",
    );
    write(dir.path(), "README.md", "not part of the cluster path\n");
    let repo = Repo::open(dir.path()).expect("open");
    let tracked = repo.tracked_remote().expect("tracked");
    assert_eq!(tracked.flux_url, url);
    assert_eq!(tracked.remote_branch, "main");

    let out = repo
        .commit_path(Path::new("clusters/demo"), None)
        .expect("commit");
    let CommitOutcome::Committed { commit, files } = &out else {
        panic!("expected a commit: {out:?}")
    };
    assert_eq!(files, &vec!["clusters/demo/app.yaml".to_owned()]);
    let raw = git2::Repository::open(dir.path()).expect("open");
    let head = raw.head().expect("head").peel_to_commit().expect("c");
    assert!(
        head.tree()
            .expect("tree")
            .get_path(Path::new("README.md"))
            .is_err(),
        "only the cluster path is committed"
    );
    assert!(
        head.message()
            .unwrap_or("")
            .starts_with("clusters/demo: update by manage")
    );

    let auth = Auth {
        ssh_key: Some(git.ssh_key.clone()),
        known_hosts: Some(git.known_hosts.clone()),
        ..Default::default()
    };
    let pushed = repo.push(&auth).expect("push over ssh");
    assert_eq!(&pushed.commit, commit);
    assert_eq!(remote_main(&bare).as_deref(), Some(commit.as_str()));
    assert_eq!(
        repo.remote_head(&auth).expect("ls-remote").as_deref(),
        Some(commit.as_str())
    );

    // rerun: nothing new
    assert_eq!(
        repo.commit_path(Path::new("clusters/demo"), None)
            .expect("rerun"),
        CommitOutcome::Unchanged {
            head: commit.clone()
        }
    );
    repo.push(&auth).expect("push again");
    assert_eq!(remote_main(&bare).as_deref(), Some(commit.as_str()));

    // plaintext: refused, nothing committed
    write(
        dir.path(),
        "clusters/demo/db.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: team}\nstringData: {password: hunter2}\n",
    );
    write(
        dir.path(),
        "clusters/demo/credentials.yaml",
        "openstack: {application_credential_secret: s3cret}\n",
    );
    let err = repo
        .commit_path(Path::new("clusters/demo"), Some("should not happen"))
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("clusters/demo/db.yaml: plaintext Secret team/db"),
        "{text}"
    );
    assert!(text.contains("clusters/demo/credentials.yaml"), "{text}");
    assert!(text.contains("nothing was committed"), "{text}");
    assert_eq!(repo.head_commit().as_deref(), Some(commit.as_str()));

    // a host key that is not known is refused
    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").expect("write");
    std::fs::remove_file(dir.path().join("clusters/demo/db.yaml")).expect("rm");
    std::fs::remove_file(dir.path().join("clusters/demo/credentials.yaml")).expect("rm");
    write(
        dir.path(),
        "clusters/demo/more.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: more, namespace: team}\n",
    );
    repo.commit_path(Path::new("clusters/demo"), Some("more"))
        .expect("commit more");
    let strict = Auth {
        ssh_key: Some(git.ssh_key.clone()),
        known_hosts: Some(empty),
        ..Default::default()
    };
    let err = repo.push(&strict).expect_err("unknown host key");
    assert!(err.to_string().contains("is not in"), "{err}");
    assert_eq!(remote_main(&bare).as_deref(), Some(commit.as_str()));
}

#[test]
fn push_over_http_and_read_the_ssh_host_key() {
    let Some(world) =
        test_world::world_or_skip(&["WORLD_GIT_HTTP_URL_BASE", "WORLD_GIT_KNOWN_HOSTS_LINE"])
    else {
        return;
    };
    let git = world.git().expect("git");
    let dir = tempfile::tempdir().expect("tempdir");
    let (bare, _) = fresh_repo(&git, &git.http_url_base, dir.path());
    write(
        dir.path(),
        "clusters/web/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: team}\n",
    );
    let repo = Repo::open(dir.path()).expect("open");
    let out = repo
        .commit_path(Path::new("clusters/web"), Some("web: first"))
        .expect("commit");
    // the world's HTTP server does not authenticate; a token is offered only when asked for
    let auth = Auth {
        token: Some(zeroize::Zeroizing::new("not-needed".into())),
        ..Default::default()
    };
    let pushed = repo.push(&auth).expect("push over http");
    assert_eq!(pushed.commit, out.commit());
    assert_eq!(remote_main(&bare).as_deref(), Some(out.commit()));

    let line = gitops::scan_host_key(&git.ssh_url).expect("host key");
    assert_eq!(line, git.known_hosts_line);
}

#[test]
fn push_over_https_with_a_token_and_the_world_ca_and_a_wrong_token_is_refused() {
    let Some(world) = test_world::world_or_skip(&[
        "WORLD_GIT_HTTPS_URL_BASE",
        "WORLD_GIT_TOKEN_FILE",
        "WORLD_GIT_CA_CERT",
    ]) else {
        return;
    };
    let git = world.git().expect("git");
    let https = world.git_https().expect("git over https");
    let dir = tempfile::tempdir().expect("tempdir");
    let (bare, url) = fresh_repo(&git, &https.url_base, dir.path());
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    write(
        dir.path(),
        "clusters/tls/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tls, namespace: team}\n",
    );
    let repo = Repo::open(dir.path()).expect("open");
    assert_eq!(repo.tracked_remote().expect("tracked").flux_url, url);
    let out = repo
        .commit_path(Path::new("clusters/tls"), Some("tls: first"))
        .expect("commit");
    let token = zeroize::Zeroizing::new(https.token().expect("token"));

    // A wrong token: refused by the server with a clear error, nothing pushed.
    let wrong = Auth {
        token: Some(zeroize::Zeroizing::new(format!("not-{}", token.as_str()))),
        username: Some("flux".into()),
        ca_file: Some(https.ca_cert.clone()),
        ..Default::default()
    };
    let err = repo.push(&wrong).expect_err("a wrong token is refused");
    assert!(matches!(err, gitops::Error::Auth(_)), "{err:?}");
    let text = err.to_string();
    println!("wrong token: {text}");
    assert!(
        text.contains("rejected the HTTPS credentials (user flux, token)"),
        "{text}"
    );
    assert!(!text.contains(token.as_str()), "the token is not shown");
    assert_eq!(remote_main(&bare), None, "nothing pushed");
    let b = git2::Repository::open_bare(&bare).expect("bare");
    assert_eq!(b.references().expect("refs").count(), 0, "no ref at all");
    assert!(repo.remote_head(&wrong).is_err(), "ls-remote refused too");

    // The right token without the world CA: the server's certificate is not trusted.
    let no_ca = Auth {
        token: Some(token.clone()),
        ..Default::default()
    };
    let err = repo.push(&no_ca).expect_err("unknown CA");
    println!("without the CA: {err}");
    assert!(matches!(err, gitops::Error::Auth(_)), "{err:?}");
    assert!(err.to_string().contains("is not trusted"), "{err}");
    assert_eq!(remote_main(&bare), None, "nothing pushed");

    // A CA that did not sign the server's certificate does not help either.
    // (made now by openssl, which the world needs anyway)
    let other_ca = dir.path().join("other-ca.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=not-the-world-ca"])
        .arg("-keyout")
        .arg(dir.path().join("other-ca.key"))
        .arg("-out")
        .arg(&other_ca)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success(), "openssl req -x509");
    let wrong_ca = Auth {
        token: Some(token.clone()),
        ca_file: Some(other_ca),
        ..Default::default()
    };
    let err = repo.push(&wrong_ca).expect_err("not signed by that CA");
    println!("another CA: {err}");
    assert!(
        err.to_string().contains("does not chain to a CA in"),
        "{err}"
    );
    assert_eq!(remote_main(&bare), None, "nothing pushed");

    // The right token and the world CA: pushed.
    let auth = Auth {
        token: Some(token.clone()),
        ca_file: Some(https.ca_cert.clone()),
        ..Default::default()
    };
    let pushed = repo.push(&auth).expect("push over https");
    assert_eq!(pushed.commit, out.commit());
    assert_eq!(pushed.url, url);
    assert_eq!(remote_main(&bare).as_deref(), Some(out.commit()));
    assert_eq!(
        repo.remote_head(&auth).expect("ls-remote").as_deref(),
        Some(out.commit())
    );

    // Rerun: nothing to commit, the push changes nothing.
    let again = repo
        .commit_path(Path::new("clusters/tls"), None)
        .expect("rerun");
    assert_eq!(
        again,
        CommitOutcome::Unchanged {
            head: out.commit().to_owned()
        }
    );
    repo.push(&auth).expect("push again");
    assert_eq!(remote_main(&bare).as_deref(), Some(out.commit()));
}
