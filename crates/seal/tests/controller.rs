//! Against the test world's real sealed-secrets controller (v0.36.6) and the real kubeseal:
//! what we seal, the controller unseals (each scope) and kubeseal's recovery opens; what kubeseal
//! seals, our recovery opens; a copy under another name is refused; the service-proxy path.

mod common;

use base64::Engine as _;
use seal::{CertSource, ControllerRef, Scope, SealOptions};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const NEEDS: &[&str] = &[
    "WORLD_KUBESEAL",
    "WORLD_SEALED_SECRETS_CERT_URL_MGMT",
    "WORLD_KUBECONFIG_MGMT",
];

fn secret_yaml(ns: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app: sealed-test}}\n  annotations: {{note: kept}}\ntype: kubernetes.io/basic-auth\ndata:\n  username: {}\nstringData:\n  password: {value}\n",
        B64.encode("admin")
    )
}

async fn world_cert(world: &test_world::World) -> seal::Certificate {
    let url = world.sealed_secrets_cert_url("mgmt").expect("cert url");
    let cert = seal::fetch_certificate(&CertSource::Url(url))
        .await
        .expect("certificate from the controller's URL");
    cert.check_not_expired()
        .expect("the controller's certificate is valid");
    cert
}

#[tokio::test]
async fn the_controller_unseals_what_we_seal_in_each_scope_and_refuses_a_renamed_copy() {
    let Some(world) = test_world::world_or_skip(NEEDS) else {
        return;
    };
    let cert = world_cert(&world).await;
    let ns = world
        .namespace("mgmt", "seal-scopes")
        .await
        .expect("namespace");
    let n = ns.name.clone();
    for scope in [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide] {
        let name = format!("creds-{scope}");
        let secret = &seal::parse_secrets(&secret_yaml(&n, &name, "pa55-word")).expect("parse")[0];
        let opts = SealOptions {
            scope: Some(scope),
            ..Default::default()
        };
        let sealed = seal::seal_secret(&cert, secret, &opts).expect("seal");
        let yaml = seal::to_yaml(&sealed).expect("yaml");
        assert!(!yaml.contains("pa55-word"));
        world.apply_yaml("mgmt", &yaml).expect("apply SealedSecret");
        let got = common::wait_secret(&world, "mgmt", &n, &name).await;
        assert_eq!(
            got.pointer("/data/password"),
            Some(&json!(B64.encode("pa55-word"))),
            "{scope}"
        );
        assert_eq!(
            got.pointer("/data/username"),
            Some(&json!(B64.encode("admin"))),
            "{scope}"
        );
        assert_eq!(got["type"], "kubernetes.io/basic-auth", "{scope}");
        assert_eq!(
            got.pointer("/metadata/labels/app"),
            Some(&json!("sealed-test")),
            "{scope}"
        );
        assert_eq!(
            got.pointer("/metadata/annotations/note"),
            Some(&json!("kept")),
            "{scope}"
        );
        assert_eq!(
            got.pointer("/metadata/ownerReferences/0/kind"),
            Some(&json!("SealedSecret"))
        );

        // The same ciphertext under another name: only the strict scope is bound to the name.
        let mut copy = sealed.clone();
        copy["metadata"]["name"] = json!(format!("copy-{scope}"));
        world
            .apply_yaml("mgmt", &seal::to_yaml(&copy).expect("yaml"))
            .expect("apply copy");
        let copy_name = format!("copy-{scope}");
        if scope == Scope::Strict {
            let msg = common::wait_synced(&world, "mgmt", &n, &copy_name, "False").await;
            assert!(msg.contains("no key could decrypt secret"), "{msg}");
        } else {
            let got = common::wait_secret(&world, "mgmt", &n, &copy_name).await;
            assert_eq!(
                got.pointer("/data/password"),
                Some(&json!(B64.encode("pa55-word")))
            );
        }
    }
    // Another namespace: strict and namespace-wide are refused there.
    let other = world
        .namespace("mgmt", "seal-moved")
        .await
        .expect("namespace");
    for scope in [Scope::Strict, Scope::NamespaceWide] {
        let name = format!("moved-{scope}");
        let secret = &seal::parse_secrets(&secret_yaml(&n, &name, "x")).expect("parse")[0];
        let opts = SealOptions {
            scope: Some(scope),
            ..Default::default()
        };
        let mut sealed = seal::seal_secret(&cert, secret, &opts).expect("seal");
        sealed["metadata"]["namespace"] = json!(other.name);
        world
            .apply_yaml("mgmt", &seal::to_yaml(&sealed).expect("yaml"))
            .expect("apply moved");
        let msg = common::wait_synced(&world, "mgmt", &other.name, &name, "False").await;
        assert!(
            msg.contains("no key could decrypt secret"),
            "{scope}: {msg}"
        );
    }
    let _ = other.delete().await;
    let _ = ns.delete().await;
}

#[tokio::test]
async fn kubeseal_recovery_opens_ours_and_our_recovery_opens_kubeseals() {
    let Some(world) = test_world::world_or_skip(NEEDS) else {
        return;
    };
    let cert = world_cert(&world).await;
    let client = world.client("mgmt").await.expect("client");
    let keys = seal::fetch_active_keys(&client, "kube-system")
        .await
        .expect("controller keys");
    let backup = seal::export_keys(&keys).expect("export");
    assert!(
        backup.fingerprints.contains(&cert.fingerprint()),
        "the newest key is the cert's"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = common::private_file(dir.path(), "keys.yaml", backup.list_yaml.as_bytes());
    let private = seal::parse_private_keys(&backup.list_yaml).expect("keys");
    let kubeseal = world.bin("kubeseal").expect("kubeseal");
    let url = world.sealed_secrets_cert_url("mgmt").expect("url");

    for scope in [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide] {
        // ours → kubeseal --recovery-unseal
        let input = secret_yaml("team-a", &format!("ours-{scope}"), "from-manage");
        let secret = &seal::parse_secrets(&input).expect("parse")[0];
        let opts = SealOptions {
            scope: Some(scope),
            ..Default::default()
        };
        let ours =
            seal::to_json(&seal::seal_secret(&cert, secret, &opts).expect("seal")).expect("json");
        let mut cmd = std::process::Command::new(&kubeseal);
        cmd.arg("--recovery-unseal")
            .arg("--recovery-private-key")
            .arg(&key_file)
            .args(["-o", "json"]);
        let out = test_world::run_with_stdin(&mut cmd, ours.as_bytes())
            .expect("kubeseal --recovery-unseal");
        let opened: Value = serde_json::from_str(&out).expect("kubeseal's Secret");
        assert_eq!(
            opened.pointer("/data/password"),
            Some(&json!(B64.encode("from-manage"))),
            "{scope}"
        );
        assert_eq!(
            opened.pointer("/data/username"),
            Some(&json!(B64.encode("admin"))),
            "{scope}"
        );

        // kubeseal → ours
        let input = secret_yaml("team-b", &format!("theirs-{scope}"), "from-kubeseal");
        let mut cmd = std::process::Command::new(&kubeseal);
        cmd.env("KUBECONFIG", world.kubeconfig("mgmt").expect("kubeconfig"))
            .args(["--cert", &url, "--scope", &scope.to_string(), "-o", "yaml"]);
        let theirs = test_world::run_with_stdin(&mut cmd, input.as_bytes()).expect("kubeseal");
        let sealed = seal::parse_sealed_secret(&theirs).expect("kubeseal's SealedSecret");
        assert_eq!(
            Scope::from_annotations(
                sealed
                    .pointer("/metadata/annotations")
                    .and_then(Value::as_object)
            ),
            scope
        );
        let opened = seal::unseal(&private, &sealed).expect("our recovery opens kubeseal's output");
        assert_eq!(
            opened.pointer("/data/password"),
            Some(&json!(B64.encode("from-kubeseal"))),
            "{scope}"
        );
        assert_eq!(opened["type"], "kubernetes.io/basic-auth");
        // and kubeseal's raw ciphertext has the documented layout: a 4096-bit key → 0x0200 prefix
        let ct = B64
            .decode(
                sealed
                    .pointer("/spec/encryptedData/password")
                    .and_then(Value::as_str)
                    .expect("ct"),
            )
            .expect("b64");
        assert_eq!(&ct[..2], &[0x02, 0x00]);
        assert_eq!(ct.len(), 2 + 512 + "from-kubeseal".len() + 16);
    }
}

#[tokio::test]
async fn the_service_proxy_path_asks_kubeseals_url_and_reports_what_failed() {
    let Some(world) = test_world::world_or_skip(&["WORLD_KUBECONFIG_MGMT"]) else {
        return;
    };
    let client = world.client("mgmt").await.expect("client");
    let ns = world
        .namespace("mgmt", "seal-proxy")
        .await
        .expect("namespace");
    // No Service of that name: every candidate is named in the error.
    let missing = CertSource::Controller {
        client: client.clone(),
        controller: ControllerRef {
            name: None,
            namespace: Some(ns.name.clone()),
        },
    };
    let err = seal::fetch_certificate(&missing)
        .await
        .expect_err("no controller Service");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{}/sealed-secrets-controller", ns.name)),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}/sealed-secrets", ns.name)),
        "{text}"
    );
    // A Service named as Helm does: found through the fallback; the proxy request then goes to
    // kubeseal's path, which in this world cannot reach a loopback process (world-facts §14).
    world
        .apply_yaml(
            "mgmt",
            &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: sealed-secrets, namespace: {}}}\nspec:\n  ports: [{{name: http, port: 8080}}]\n", ns.name),
        )
        .expect("Service");
    let err = seal::fetch_certificate(&missing)
        .await
        .expect_err("the proxy cannot reach a loopback controller");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "/api/v1/namespaces/{}/services/http:sealed-secrets:http/proxy/v1/cert.pem",
            ns.name
        )),
        "{text}"
    );
    let _ = ns.delete().await;
}
