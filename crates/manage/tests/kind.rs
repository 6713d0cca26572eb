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
