//! Smoke test: Flux source-controller fetches from the world's git server over SSH and over smart
//! HTTP (GitRepository Ready), and kustomize-controller applies a path from each.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use test_world::{World, run};

/// A fresh bare repository in the git server's repos dir, with one commit holding a ConfigMap
/// under `<app>/` for each app; returns the repository's name.
fn seed_repo(world: &World, ns: &str, apps: &[&str]) -> String {
    let git = world.git().expect("git server");
    let name = test_world::unique_name("flux-smoke");
    let bare = git.repos_dir.join(format!("{name}.git"));
    run(Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&bare))
    .expect("git init --bare");
    run(Command::new("git")
        .arg("-C")
        .arg(&bare)
        .args(["config", "http.receivepack", "true"]))
    .expect("git config");
    let work = std::env::temp_dir().join(&name);
    run(Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(&work))
    .expect("git init");
    for app in apps {
        let dir = work.join(app);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("configmap.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {app}, namespace: {ns}}}\ndata: {{from: git}}\n"),
        )
        .expect("write");
    }
    let g = |args: &[&str]| {
        let mut c = Command::new("git");
        c.arg("-C")
            .arg(&work)
            .args([
                "-c",
                "user.name=world",
                "-c",
                "user.email=world@example.invalid",
            ])
            .args(args);
        run(&mut c).expect("git");
    };
    g(&["add", "."]);
    g(&["commit", "-q", "-m", "apps"]);
    // push over SSH with the world's key: proves the SSH server accepts the git CLI too
    let mut push = Command::new("git");
    push.arg("-C")
        .arg(&work)
        .env("GIT_SSH_COMMAND", git.git_ssh_command())
        .args([
            "push",
            "-q",
            &format!("{}/{name}.git", git.ssh_url_base),
            "main",
        ]);
    run(&mut push).expect("git push over ssh");
    let _ = std::fs::remove_dir_all(Path::new(&work));
    name
}

fn wait_ready(
    world: &World,
    ns: &str,
    kind: &str,
    name: &str,
) -> impl std::future::Future<Output = anyhow::Result<()>> {
    let (world, ns, kind, name) = (
        world.clone(),
        ns.to_owned(),
        kind.to_owned(),
        name.to_owned(),
    );
    async move {
        test_world::eventually(
            Duration::from_secs(90),
            &format!("{kind} {ns}/{name} Ready"),
            || {
                let obj = world.kubectl_json("mgmt", &["-n", &ns, "get", &kind, &name]);
                async move { Ok(test_world::condition_true(&obj?, "Ready").then_some(())) }
            },
        )
        .await
    }
}

#[tokio::test]
async fn flux_pulls_over_ssh_and_http_and_applies_a_path() {
    let Some(world) = test_world::world_or_skip(&[
        "WORLD_FLUX_SERVERS",
        "WORLD_GIT_SSH_URL",
        "WORLD_GIT_HTTP_URL",
    ]) else {
        return;
    };
    let git = world.git().expect("git");
    let ns = world.namespace("mgmt", "flux").await.expect("namespace");
    let n = &ns.name;
    let repo = seed_repo(&world, n, &["via-ssh", "via-http"]);
    let mut secret = world.kubectl("mgmt").expect("kubectl");
    secret
        .args(["-n", n, "create", "secret", "generic", "git-ssh"])
        .arg(format!("--from-file=identity={}", git.ssh_key.display()))
        .arg(format!(
            "--from-literal=known_hosts={}",
            git.known_hosts_line
        ));
    run(&mut secret).expect("ssh secret");
    world
        .apply_yaml(
            "mgmt",
            &format!(
                r#"apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: over-ssh, namespace: {n}}}
spec: {{url: "{ssh}/{repo}.git", interval: 1m, ref: {{branch: main}}, secretRef: {{name: git-ssh}}}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: over-http, namespace: {n}}}
spec: {{url: "{http}/{repo}.git", interval: 1m, ref: {{branch: main}}}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: via-ssh, namespace: {n}}}
spec: {{interval: 1m, path: ./via-ssh, prune: true, sourceRef: {{kind: GitRepository, name: over-ssh}}}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: via-http, namespace: {n}}}
spec: {{interval: 1m, path: ./via-http, prune: true, sourceRef: {{kind: GitRepository, name: over-http}}}}
"#,
                ssh = git.ssh_url_base,
                http = git.http_url_base
            ),
        )
        .expect("apply Flux objects");
    wait_ready(&world, n, "gitrepository", "over-ssh")
        .await
        .expect("GitRepository over SSH");
    wait_ready(&world, n, "gitrepository", "over-http")
        .await
        .expect("GitRepository over HTTP");
    wait_ready(&world, n, "kustomization", "via-ssh")
        .await
        .expect("Kustomization from SSH source");
    wait_ready(&world, n, "kustomization", "via-http")
        .await
        .expect("Kustomization from HTTP source");
    for cm in ["via-ssh", "via-http"] {
        let obj = world
            .kubectl_json("mgmt", &["-n", n, "get", "configmap", cm])
            .expect("applied ConfigMap");
        assert_eq!(
            obj.pointer("/data/from").and_then(|v| v.as_str()),
            Some("git"),
            "{cm}"
        );
    }
}
