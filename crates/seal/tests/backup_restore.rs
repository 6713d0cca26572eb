//! The sealing-key backup, for real: the world's controller's keys are exported, encrypted to an
//! age owner and an SSH owner, decrypted with the SSH owner's key, restored into a namespace of
//! another API server (`workload`), where a fresh sealed-secrets controller (the real binary,
//! started by this test) then unseals a secret sealed for the old controller.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use serde_json::{Value, json};
use test_world::World;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Kills the controller this test started (by its own PID) when the test ends.
struct Controller(Child);
impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The SealedSecret CRD, copied from the server that has it to `to`.
fn copy_crd(world: &World, from: &str, to: &str) {
    let crd = world
        .kubectl_json(from, &["get", "crd", "sealedsecrets.bitnami.com"])
        .expect("the SealedSecret CRD");
    let clean = json!({
        "apiVersion": crd["apiVersion"], "kind": crd["kind"],
        "metadata": {"name": crd["metadata"]["name"]},
        "spec": crd["spec"],
    });
    world
        .apply_yaml(to, &clean.to_string())
        .expect("apply the CRD");
    let mut wait = world.kubectl(to).expect("kubectl");
    wait.args([
        "wait",
        "--for",
        "condition=Established",
        "--timeout",
        "60s",
        "crd/sealedsecrets.bitnami.com",
    ]);
    test_world::run(&mut wait).expect("CRD established");
}

/// Starts the real controller against `server` with its keys in `ns`, the way the world does it
/// (in-cluster config only: a private mount namespace with the service-account files in /run).
fn start_controller(world: &World, server: &str, ns: &str, dir: &Path, port: u16) -> Controller {
    let sa = format!("sealed-secrets-{ns}");
    let apply = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, namespace: {ns}}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {sa}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\nsubjects: [{{kind: ServiceAccount, name: {sa}, namespace: {ns}}}]\n"
    );
    world.apply_yaml(server, &apply).expect("service account");
    let mut token = world.kubectl(server).expect("kubectl");
    token.args(["-n", ns, "create", "token", &sa, "--duration", "1h"]);
    let token = test_world::run(&mut token).expect("token");
    let sa_dir = dir.join("sa");
    std::fs::create_dir_all(&sa_dir).expect("sa dir");
    common::private_file(&sa_dir, "token", token.trim().as_bytes());
    std::fs::copy(world.ca_cert().expect("ca"), sa_dir.join("ca.crt")).expect("ca.crt");
    std::fs::write(sa_dir.join("namespace"), ns).expect("namespace file");
    let api_port = world
        .apiserver_url(server)
        .expect("url")
        .rsplit(':')
        .next()
        .map(|p| p.trim_end_matches('/').to_owned())
        .expect("port");
    let log = std::fs::File::create(dir.join("controller.log")).expect("log");
    let child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "/bin/sh", "-c"])
        .arg(
            "set -e; mount -t tmpfs -o mode=755 seal-test-sa /run; \
             mkdir -p /run/secrets/kubernetes.io/serviceaccount; \
             cp \"$1\"/token \"$1\"/ca.crt \"$1\"/namespace /run/secrets/kubernetes.io/serviceaccount/; \
             shift; exec \"$@\"",
        )
        .arg("sh")
        .arg(&sa_dir)
        .arg(world.bin("sealed-secrets-controller").expect("controller binary"))
        .arg(format!("--listen-addr=127.0.0.1:{port}"))
        .arg(format!("--listen-metrics-addr=127.0.0.1:{}", free_port()))
        .args(["--all-namespaces=false", "--key-renew-period=0", "--old-gc-behavior", "--update-status"])
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", api_port)
        .env("POD_NAMESPACE", ns)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start the controller");
    Controller(child)
}

#[tokio::test]
async fn a_restored_backup_lets_a_fresh_controller_unseal_old_secrets() {
    let Some(world) = test_world::world_or_skip(&[
        "WORLD_SEALED_SECRETS_CERT_URL_MGMT",
        "WORLD_KUBECONFIG_MGMT",
        "WORLD_KUBECONFIG_WORKLOAD",
    ]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let target = world
        .namespace("workload", "seal-restore")
        .await
        .expect("namespace on workload");
    let n = target.name.clone();

    // A secret sealed for the old controller (mgmt), addressed to its future home.
    let old_cert = seal::fetch_certificate(&seal::CertSource::Url(
        world.sealed_secrets_cert_url("mgmt").expect("url"),
    ))
    .await
    .expect("old certificate");
    let secret = &seal::parse_secrets(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: cloud, namespace: {n}}}\nstringData: {{clouds.yaml: 'app-credential-secret'}}\n"
    ))
    .expect("parse")[0];
    let sealed = seal::seal_secret(&old_cert, secret, &seal::SealOptions::default()).expect("seal");

    // Backup: export from mgmt, encrypt to two owners (age X25519 + SSH ed25519).
    let mgmt = world.client("mgmt").await.expect("mgmt client");
    let backup = seal::export_keys(
        &seal::fetch_active_keys(&mgmt, "kube-system")
            .await
            .expect("keys"),
    )
    .expect("export");
    let age_owner = age::x25519::Identity::generate();
    let ssh_key = dir.path().join("owner_ed25519");
    test_world::run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "owner", "-f"])
            .arg(&ssh_key),
    )
    .expect("ssh-keygen");
    let ssh_pub = std::fs::read_to_string(ssh_key.with_extension("pub")).expect("pub");
    let owners =
        seal::Recipients::parse([age_owner.to_public().to_string().as_str(), ssh_pub.trim()])
            .expect("owners");
    let encrypted = seal::seal_backup(&backup, &owners).expect("encrypt backup");
    assert!(!encrypted.contains("PRIVATE KEY"));

    // Restore with the SSH owner's key into the fresh namespace on another API server.
    let identity = seal::Identities::parse(&std::fs::read_to_string(&ssh_key).expect("key"))
        .expect("identity");
    let opened = seal::open_backup(encrypted.as_bytes(), &identity).expect("decrypt backup");
    assert_eq!(opened.fingerprints, backup.fingerprints);
    let workload = world.client("workload").await.expect("workload client");
    let restored = seal::restore_keys(&workload, &n, &opened)
        .await
        .expect("restore");
    assert_eq!(restored, backup.names);
    // Rerunning the restore is harmless (server-side apply).
    seal::restore_keys(&workload, &n, &opened)
        .await
        .expect("restore again");

    copy_crd(&world, "mgmt", "workload");
    let port = free_port();
    let _controller = start_controller(&world, "workload", &n, dir.path(), port);
    let url = format!("http://127.0.0.1:{port}/v1/cert.pem");
    let new_cert = test_world::eventually(
        std::time::Duration::from_secs(60),
        "the fresh controller's cert.pem",
        || {
            let url = url.clone();
            async move {
                Ok(seal::fetch_certificate(&seal::CertSource::Url(url))
                    .await
                    .ok())
            }
        },
    )
    .await
    .expect("fresh controller up");
    assert_eq!(
        new_cert.fingerprint(),
        old_cert.fingerprint(),
        "the fresh controller uses the restored key, no new one"
    );

    world
        .apply_yaml("workload", &seal::to_yaml(&sealed).expect("yaml"))
        .expect("apply the old SealedSecret");
    let got = common::wait_secret(&world, "workload", &n, "cloud").await;
    assert_eq!(
        got.pointer("/data/clouds.yaml").and_then(Value::as_str),
        Some(B64.encode("app-credential-secret").as_str())
    );
    let mut unbind = world.kubectl("workload").expect("kubectl");
    unbind.args([
        "delete",
        "clusterrolebinding",
        &format!("sealed-secrets-{n}"),
        "--ignore-not-found",
    ]);
    let _ = test_world::run(&mut unbind);
    let _ = target.delete().await;
}
