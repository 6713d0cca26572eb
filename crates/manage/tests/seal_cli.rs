//! `manage seal` as a kubeseal drop-in: offline with a certificate file (sealed, then opened
//! with --recovery-unseal), and against the world's real controller (URL certificate).

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

fn manage() -> Command {
    Command::cargo_bin("manage").expect("the manage binary")
}

fn run_stdin(cmd: &mut Command, input: &str) -> (bool, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A throwaway RSA key and self-signed certificate, as the controller has (smaller key).
fn key_and_cert(dir: &Path) {
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=sealed-secret",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl req");
}

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ntype: Opaque\nstringData: {password: hunter2}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: api, namespace: other}\ndata: {token: dG9rZW4=}\n";

#[test]
fn seals_with_a_file_certificate_and_recovery_unseal_opens_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    key_and_cert(dir.path());
    let cert = dir.path().join("cert.pem");
    let (ok, sealed, err) = run_stdin(
        manage()
            .args(["seal", "--cert"])
            .arg(&cert)
            .args(["-n", "team", "--output", "yaml"]),
        &SECRET.replace("namespace: other", "namespace: team"),
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("certificate SHA256:"),
        "the fingerprint is printed: {err}"
    );
    assert_eq!(sealed.matches("kind: SealedSecret").count(), 2, "{sealed}");
    assert!(!sealed.contains("hunter2") && !sealed.contains("dG9rZW4="));
    let first = sealed.split("---\n").nth(1).expect("first document");
    assert!(first.contains("namespace: team"), "{first}");

    let (ok, opened, err) = run_stdin(
        manage()
            .args(["seal", "--recovery-unseal", "--recovery-private-key"])
            .arg(dir.path().join("key.pem"))
            .args(["--output", "json"]),
        &format!("---\n{first}"),
    );
    assert!(ok, "{err}");
    let secret: serde_json::Value = serde_json::from_str(&opened).expect("json Secret");
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    assert_eq!(secret["metadata"]["namespace"], "team");
}

#[test]
fn a_namespace_conflict_and_an_unknown_scope_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    key_and_cert(dir.path());
    let cert = dir.path().join("cert.pem");
    let (ok, _, err) = run_stdin(
        manage()
            .args(["seal", "--cert"])
            .arg(&cert)
            .args(["-n", "team"]),
        SECRET,
    );
    assert!(!ok);
    assert!(
        err.contains("is in namespace other, but namespace team was requested"),
        "{err}"
    );
    let (ok, _, err) = run_stdin(
        manage()
            .args(["seal", "--scope", "galaxy-wide", "--cert"])
            .arg(&cert),
        SECRET,
    );
    assert!(!ok);
    assert!(err.contains("unknown scope"), "{err}");
}

#[test]
fn the_worlds_controller_unseals_what_manage_seal_wrote() {
    let Some(world) = test_world::world_or_skip(&[
        "WORLD_SEALED_SECRETS_CERT_URL_MGMT",
        "WORLD_KUBECONFIG_MGMT",
    ]) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ns = rt
        .block_on(world.namespace("mgmt", "manage-seal"))
        .expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("secret.yaml");
    std::fs::write(&input, format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: cli, namespace: {}}}\nstringData: {{k: from-the-cli}}\n", ns.name)).expect("write");
    let out = dir.path().join("sealed.json");
    let status = manage()
        .args([
            "seal",
            "--scope",
            "namespace-wide",
            "--output",
            "json",
            "--cert",
        ])
        .arg(world.sealed_secrets_cert_url("mgmt").expect("url"))
        .arg("-f")
        .arg(&input)
        .arg("-w")
        .arg(&out)
        .status()
        .expect("manage seal");
    assert!(status.success());
    let sealed = std::fs::read_to_string(&out).expect("output");
    world.apply_yaml("mgmt", &sealed).expect("apply");
    let value = rt
        .block_on(test_world::eventually(
            std::time::Duration::from_secs(60),
            "the Secret",
            || {
                let w = world.clone();
                let n = ns.name.clone();
                async move {
                    let mut c = w.kubectl("mgmt")?;
                    c.args([
                        "-n",
                        &n,
                        "get",
                        "secret",
                        "cli",
                        "--ignore-not-found",
                        "-o",
                        "jsonpath={.data.k}",
                    ]);
                    let o = test_world::run(&mut c)?;
                    Ok((!o.trim().is_empty()).then(|| o.trim().to_owned()))
                }
            },
        ))
        .expect("unsealed");
    assert_eq!(value, "ZnJvbS10aGUtY2xp");
    let _ = rt.block_on(ns.delete());
}
