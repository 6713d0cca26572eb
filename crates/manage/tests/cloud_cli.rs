//! `manage cloud check|prepare|credentials|sweep` end to end against the world's OpenStack (the
//! shared `demo` project; the cluster's name is unique to the run and everything is matched
//! exactly, so other tests' resources there are never touched).
#![allow(missing_docs, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn repo(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir.join("clusters").join(name)).unwrap();
    std::fs::write(
        dir.join("clusters").join(name).join("cluster.yaml"),
        format!(
            "name: {name}\nnamespace: cli\nkubernetesVersion: v1.33.4\ncloud:\n  name: demo\n  externalNetwork: public\nimage:\n  name: fake-image\ncontrolPlane:\n  count: 1\n  flavor: m1.tiny\nworkers:\n  - name: md-0\n    count: 1\n    flavor: m1.tiny\nnetwork:\n  nodeCidr: 10.8.0.0/20\n  podCidr: 172.16.0.0/13\n  cni: cilium\n"
        ),
    )
    .unwrap();
}

fn manage(repo: &Path, clouds: &str, args: &[&str]) -> (i32, Value, String) {
    let out = Command::cargo_bin("manage")
        .unwrap()
        .arg("--repo")
        .arg(repo)
        .args(["--output", "json", "cloud", "--clouds-file", clouds])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn check_prepare_credentials_and_sweep_from_the_command_line() {
    let Some(world) = test_world::world_or_skip(&["WORLD_OS_CLOUDS_YAML"]) else {
        return;
    };
    let clouds = world.var("WORLD_OS_CLOUDS_YAML").unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("cli{}", std::process::id());
    repo(dir.path(), &name);

    let (code, v, all) = manage(dir.path(), &clouds, &["check", &name]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(v["ok"], true, "{all}");

    let (code, v, all) = manage(dir.path(), &clouds, &["prepare", &name]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(v["changed"], true, "{all}");
    assert_eq!(v["securityGroup"]["name"], format!("k8s-cli-{name}-cni"));
    assert_eq!(v["serverGroups"].as_array().unwrap().len(), 2, "{all}");
    let (code, v, all) = manage(dir.path(), &clouds, &["prepare", &name]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        v["changed"], false,
        "second prepare changed something: {all}"
    );

    let creds = dir.path().join("creds");
    let out = creds.to_str().unwrap();
    let (code, v, all) = manage(dir.path(), &clouds, &["credentials", &name, "--out", out]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(v["credentials"].as_array().unwrap().len(), 2, "{all}");
    for file in ["capo-clouds.yaml", "cloud-provider-clouds.yaml"] {
        let meta = std::fs::metadata(creds.join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
        let text = std::fs::read_to_string(creds.join(file)).unwrap();
        assert!(text.contains("v3applicationcredential"), "{text}");
        // the secret is in the file, never on stdout
        let secret = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("application_credential_secret: "))
            .unwrap();
        assert!(!all.contains(secret.trim_matches('"')), "secret printed");
    }
    // second run: both exist, nothing written
    let (code, v, all) = manage(dir.path(), &clouds, &["credentials", &name, "--out", out]);
    assert_eq!(code, 0, "{all}");
    assert!(
        v["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["written"].is_null()),
        "{all}"
    );

    let (code, v, all) = manage(dir.path(), &clouds, &["sweep", &name, "--dry-run"]);
    assert_eq!(code, 0, "{all}");
    // the CNI group, two server groups; two credentials
    assert_eq!(v["found"].as_array().unwrap().len(), 3, "{all}");
    assert_eq!(
        v["applicationCredentials"].as_array().unwrap().len(),
        2,
        "{all}"
    );
    let (code, v, all) = manage(dir.path(), &clouds, &["sweep", &name]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(v["deleted"], 3, "{all}");
    let (code, v, all) = manage(dir.path(), &clouds, &["sweep", &name, "--dry-run"]);
    assert_eq!(code, 0, "{all}");
    assert!(
        v["found"].as_array().unwrap().is_empty()
            && v["applicationCredentials"].as_array().unwrap().is_empty(),
        "{all}"
    );
}

#[test]
fn an_unknown_cloud_entry_is_one_clear_line() {
    let Some(world) = test_world::world_or_skip(&["WORLD_OS_CLOUDS_YAML"]) else {
        return;
    };
    let clouds = world.var("WORLD_OS_CLOUDS_YAML").unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    repo(dir.path(), "lost");
    let (code, _, all) = manage(dir.path(), &clouds, &["--cloud", "nope", "check", "lost"]);
    assert_eq!(code, 3, "{all}");
    assert!(
        all.contains("no cloud `nope`") && all.contains("demo"),
        "{all}"
    );
}
