//! The `manage` binary as a user runs it: verbs, exit codes, output formats, files written.

use assert_cmd::Command;
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manage(repo: &Path) -> Command {
    let mut c = Command::cargo_bin("manage").expect("binary built");
    c.arg("--repo").arg(repo);
    c
}

/// A repository with the real example and shared defaults copied in.
fn scratch_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let clusters = dir.path().join("clusters/example");
    std::fs::create_dir_all(&clusters).expect("mkdir");
    for f in ["clusters/defaults.yaml", "clusters/example/cluster.yaml"] {
        std::fs::copy(workspace().join(f), dir.path().join(f)).expect("copy");
    }
    dir
}

#[test]
fn validate_passes_over_the_repository() {
    manage(&workspace())
        .arg("validate")
        .assert()
        .success()
        .stdout(predicate::str::contains("✓ example"));
}

#[test]
fn validate_reports_file_line_field_and_hint_and_exits_1() {
    let repo = scratch_repo();
    std::fs::create_dir_all(repo.path().join("clusters/bad")).expect("mkdir");
    std::fs::write(
        repo.path().join("clusters/bad/cluster.yaml"),
        "kubernetesVersion: v1.33.4\nimage: {name: i}\ncontrolPlane:\n  flavor: f\n  count: 4\n",
    )
    .expect("write");
    manage(repo.path())
        .arg("validate")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("✗ bad").and(predicate::str::contains("✓ example")))
        .stderr(predicate::str::contains(
            "clusters/bad/cluster.yaml:5:10: controlPlane.count:",
        ))
        .stderr(predicate::str::contains("hint: use 3 or 5"));
}

#[test]
fn validate_json_output_is_one_document() {
    let repo = scratch_repo();
    let out = manage(repo.path())
        .args(["--output", "json", "validate", "example", "missing"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(doc["clusters"][0]["valid"], true);
    assert_eq!(doc["clusters"][1]["valid"], false);
    assert_eq!(
        doc["clusters"][1]["diagnostics"][0]["file"],
        "clusters/missing/cluster.yaml"
    );
}

#[test]
fn init_scaffolds_a_valid_cluster_with_private_credentials_and_ignores_them() {
    let repo = scratch_repo();
    manage(repo.path())
        .args(["init", "team-a"])
        .assert()
        .success()
        .stdout(predicate::str::contains("clusters/team-a/cluster.yaml"));
    let text =
        std::fs::read_to_string(repo.path().join("clusters/team-a/cluster.yaml")).expect("read");
    assert!(text.contains("\nname: team-a\n") && text.contains("\nnamespace: team-a\n"));
    let mode = std::fs::metadata(repo.path().join("clusters/team-a/credentials.yaml"))
        .expect("credentials")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let ignore = std::fs::read_to_string(repo.path().join(".gitignore")).expect(".gitignore");
    assert!(ignore.contains("/clusters/*/credentials.yaml"));
    manage(repo.path())
        .args(["validate", "team-a"])
        .assert()
        .success();
    // Rerun: refuses, changes nothing; .gitignore is not appended twice.
    manage(repo.path())
        .args(["init", "team-a"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("already exists"));
    manage(repo.path())
        .args(["init", "team-b"])
        .assert()
        .success();
    let again = std::fs::read_to_string(repo.path().join(".gitignore")).expect(".gitignore");
    assert_eq!(again.matches("/clusters/*/credentials.yaml").count(), 1);
}

#[test]
fn init_rejects_a_bad_name() {
    let repo = scratch_repo();
    manage(repo.path())
        .args(["init", "Team_A"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("not a valid cluster name"));
}

#[test]
fn render_example_validates_against_the_upstream_crds() {
    let crds = std::env::var("MANAGE_CRDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("../shared/crds"));
    let set = spec::crd::CrdSet::load_dir(&crds).expect("CRDs load");
    for version in ["v1beta2", "v1beta1"] {
        let out = manage(&workspace())
            .args([
                "--output",
                "json",
                "render",
                "example",
                "--capo-api-version",
                version,
            ])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let objects: Vec<serde_json::Value> = serde_json::from_slice(&out).expect("json");
        assert!(objects.len() >= 10, "{} objects", objects.len());
        for obj in &objects {
            let violations = set.validate(obj);
            assert!(violations.is_empty(), "{version}: {obj:#}\n{violations:#?}");
        }
    }
}

#[test]
fn render_yaml_and_out_dir() {
    let out = manage(&workspace())
        .args(["render", "example"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).expect("utf8");
    assert!(
        text.starts_with("---\napiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\n"),
        "{text}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    manage(&workspace())
        .args(["render", "example", "--out"])
        .arg(dir.path())
        .assert()
        .success();
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), text.matches("---\n").count());
    assert_eq!(files[0], "00-cluster-example.yaml");
}

#[test]
fn render_of_an_invalid_cluster_prints_diagnostics_and_exits_1() {
    let repo = scratch_repo();
    std::fs::write(
        repo.path().join("clusters/defaults.yaml"),
        "addons: {metricsServer: {version: 'a b'}}\n",
    )
    .expect("write");
    manage(repo.path())
        .args(["render", "example"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "clusters/defaults.yaml:1:35: addons.metricsServer.version",
        ));
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    Command::cargo_bin("manage")
        .expect("bin")
        .arg("frobnicate")
        .assert()
        .code(2);
    Command::cargo_bin("manage")
        .expect("bin")
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes:"));
}

#[test]
fn missing_repository_is_an_environment_error() {
    manage(Path::new("/nonexistent/repo"))
        .arg("validate")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("no such directory"));
}

#[test]
fn completions_for_bash() {
    Command::cargo_bin("manage")
        .expect("bin")
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_manage"));
}

#[test]
fn validate_checks_rendered_objects_against_the_crds_it_is_given() {
    let crds = std::env::var("MANAGE_CRDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("../shared/crds"));
    manage(&workspace())
        .arg("validate")
        .env("MANAGE_CRDS_DIR", &crds)
        .assert()
        .success();
    // A Cluster CRD whose spec takes no fields: every rendered Cluster breaks it.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("clusters.yaml"),
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: clusters.cluster.x-k8s.io\nspec:\n  group: cluster.x-k8s.io\n  names: {kind: Cluster, plural: clusters}\n  scope: Namespaced\n  versions:\n  - name: v1beta2\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          apiVersion: {type: string}\n          kind: {type: string}\n          metadata: {type: object}\n          spec: {type: object, properties: {paused: {type: boolean}}}\n",
    )
    .expect("write");
    manage(&workspace())
        .arg("validate")
        .env("MANAGE_CRDS_DIR", dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "clusters/example/cluster.yaml: (rendered Cluster example/example)",
        ))
        .stderr(predicate::str::contains("breaks its CRD schema"));
}
