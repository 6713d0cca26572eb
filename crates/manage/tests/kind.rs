//! `manage kind …` without a Docker daemon: one line saying what is wrong and how to fix it,
//! exit code 3 (environment). The verbs against a real engine are tested in crates/kind/tests.

use assert_cmd::Command;
use predicates::prelude::*;

#[test]
fn kind_without_docker_is_an_environment_error() {
    Command::cargo_bin("manage")
        .expect("binary")
        .args([
            "kind",
            "--docker-host",
            "unix:///nonexistent/docker.sock",
            "list",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::starts_with("error: Docker is not running"))
        .stderr(predicate::str::contains("DOCKER_HOST"))
        .stderr(predicate::function(|s: &str| s.lines().count() == 1));
}

#[test]
fn kind_help_lists_the_verbs() {
    Command::cargo_bin("manage")
        .expect("binary")
        .args(["kind", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("create"))
        .stdout(predicate::str::contains("delete"))
        .stdout(predicate::str::contains("list"))
        .stdout(predicate::str::contains("kubeconfig"));
}

/// `manage kind create`, again (adopted), `list`, `kubeconfig`, `delete` against the test world's
/// Docker engine and node image (skips with one line when the world is absent).
#[test]
fn kind_verbs_against_the_world() {
    let Some(world) = test_world::world_or_skip(&["DOCKER_HOST", "WORLD_NODE_IMAGE"]) else {
        return;
    };
    let host = world.var("DOCKER_HOST").unwrap_or_default().to_string();
    let image = world
        .var("WORLD_NODE_IMAGE")
        .unwrap_or_default()
        .to_string();
    let name = test_world::unique_name("mk");
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("private.kubeconfig");
    let manage = |args: &[&str]| {
        let mut c = Command::cargo_bin("manage").expect("binary");
        c.env("DOCKER_HOST", &host)
            .env("KUBECONFIG", dir.path().join("user-config"))
            .env("XDG_CONFIG_HOME", dir.path())
            .args(args);
        c
    };
    let create = [
        "--output",
        "json",
        "kind",
        "create",
        "--name",
        &name,
        "--image",
        &image,
        "--privileged",
        "false",
        "--merge",
        "--kubeconfig-file",
        private.to_str().expect("utf-8 path"),
    ];
    let out = manage(&create).output().expect("run");
    if !out.status.success() {
        let _ = manage(&["kind", "delete", "--name", &name]).output();
        panic!("create: {}", String::from_utf8_lossy(&out.stderr));
    }
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(first["reused"], false);
    let again = manage(&create).output().expect("run");
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(again["reused"], true);
    assert_eq!(again["server"], first["server"]);

    manage(&["kind", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains(name.as_str()));
    manage(&[
        "kind",
        "kubeconfig",
        "--name",
        &name,
        "--kubeconfig-file",
        "-",
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains(format!(
        "current-context: kind-{name}"
    )));
    manage(&[
        "kind",
        "delete",
        "--name",
        &name,
        "--kubeconfig-file",
        private.to_str().expect("utf-8 path"),
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains(format!(
        "Deleted kind cluster {name}"
    )));
    assert!(!private.exists());
    manage(&["kind", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains(name.as_str()).not());
}
