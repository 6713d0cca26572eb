//! Smoke test: the world's git server over HTTPS (certificate from the world CA, HTTP basic auth
//! with the token generated at `up`): unauthenticated requests get 401 with
//! `WWW-Authenticate: Basic`, a wrong token is refused, the git CLI pushes with the right one.

use std::path::Path;
use std::process::Command;

use test_world::{GitHttps, run};

/// A git command that trusts the world CA and answers credentials from `token_file` (read by the
/// helper, so the token is never on a command line).
fn git(https: &GitHttps, token_file: &Path) -> Command {
    let mut c = Command::new("git");
    // GIT_SSL_CAINFO (not http.sslCAInfo): an environment that sets it would override the config
    c.env("GIT_SSL_CAINFO", &https.ca_cert)
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "credential.helper")
        .env(
            "GIT_CONFIG_VALUE_0",
            format!(
                "!f() {{ echo username=world; echo password=$(cat '{}'); }}; f",
                token_file.display()
            ),
        )
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    c
}

#[test]
fn https_needs_the_token_and_the_git_cli_pushes_with_it() {
    let Some(world) = test_world::world_or_skip(&[
        "WORLD_GIT_HTTPS_URL",
        "WORLD_GIT_TOKEN_FILE",
        "WORLD_GIT_CA_CERT",
    ]) else {
        return;
    };
    let https = world.git_https().expect("git over https");
    assert!(https.url.starts_with("https://127.0.0.1:"), "{}", https.url);
    assert!(!https.token().expect("token").is_empty());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&https.token_file)
            .expect("token file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is 0600");
    }

    // No credentials: 401 and a Basic challenge.
    let head = run(Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(&https.ca_cert)
        .arg(format!("{}/info/refs?service=git-upload-pack", https.url)))
    .expect("curl");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.lines().any(|l| l
            .to_ascii_lowercase()
            .starts_with("www-authenticate: basic")),
        "{head}"
    );

    // A wrong token: refused.
    let dir = std::env::temp_dir().join(test_world::unique_name("git-https"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let wrong = dir.join("wrong-token");
    std::fs::write(&wrong, "not-the-token\n").expect("write");
    let out = git(&https, &wrong)
        .args(["ls-remote", &https.url])
        .output()
        .expect("git ls-remote");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong token is refused");
    assert!(err.contains("Authentication failed"), "{err}");

    // The right token: push a commit to a fresh repository.
    let git_server = world.git().expect("git");
    let name = test_world::unique_name("https-smoke");
    let bare = git_server.repos_dir.join(format!("{name}.git"));
    run(Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&bare))
    .expect("git init --bare");
    run(Command::new("git")
        .arg("-C")
        .arg(&bare)
        .args(["config", "http.receivepack", "true"]))
    .expect("git config");
    let work = dir.join("work");
    run(Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(&work))
    .expect("git init");
    std::fs::write(work.join("README"), "over https\n").expect("write");
    let g = |args: &[&str]| {
        let mut c = git(&https, &https.token_file);
        c.arg("-C")
            .arg(&work)
            .args([
                "-c",
                "user.name=world",
                "-c",
                "user.email=world@example.invalid",
            ])
            .args(args);
        run(&mut c).expect("git")
    };
    g(&["add", "."]);
    g(&["commit", "-q", "-m", "first"]);
    g(&[
        "push",
        "-q",
        &format!("{}/{name}.git", https.url_base),
        "main",
    ]);
    let local = g(&["rev-parse", "HEAD"]);
    let remote = run(Command::new("git")
        .arg("-C")
        .arg(&bare)
        .args(["rev-parse", "refs/heads/main"]))
    .expect("rev-parse");
    assert_eq!(remote.trim(), local.trim());
    let _ = std::fs::remove_dir_all(&dir);
}
