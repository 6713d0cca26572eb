//! Smoke test: the real sealed-secrets controller unseals a SealedSecret made by the real kubeseal.

use std::time::Duration;

#[tokio::test]
async fn the_controller_unseals_what_kubeseal_sealed() {
    let Some(world) =
        test_world::world_or_skip(&["WORLD_KUBESEAL", "WORLD_SEALED_SECRETS_CERT_URL_MGMT"])
    else {
        return;
    };
    let ns = world.namespace("mgmt", "sealed").await.expect("namespace");
    let n = &ns.name;
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: {n}}}\nstringData: {{password: s3cret-from-kubeseal}}\n"
    );
    let mut seal = std::process::Command::new(world.bin("kubeseal").expect("kubeseal"));
    seal.env("KUBECONFIG", world.kubeconfig("mgmt").expect("kubeconfig"))
        .args([
            "--cert",
            &world.sealed_secrets_cert_url("mgmt").expect("cert url"),
            "-o",
            "yaml",
        ]);
    let sealed = test_world::run_with_stdin(&mut seal, secret.as_bytes()).expect("kubeseal");
    assert!(sealed.contains("kind: SealedSecret"), "{sealed}");
    assert!(
        !sealed.contains("s3cret-from-kubeseal"),
        "the plaintext must not appear"
    );
    world
        .apply_yaml("mgmt", &sealed)
        .expect("apply SealedSecret");

    let value = test_world::eventually(Duration::from_secs(60), "the unsealed Secret", || {
        let world = world.clone();
        let n = n.clone();
        async move {
            let mut cmd = world.kubectl("mgmt")?;
            cmd.args([
                "-n",
                &n,
                "get",
                "secret",
                "creds",
                "--ignore-not-found",
                "-o",
                "jsonpath={.data.password}",
            ]);
            let out = test_world::run(&mut cmd)?;
            Ok((!out.trim().is_empty()).then(|| out.trim().to_owned()))
        }
    })
    .await
    .expect("unsealed");
    let mut b64 = std::process::Command::new("base64");
    b64.arg("-d");
    let plain = test_world::run_with_stdin(&mut b64, value.as_bytes()).expect("base64");
    assert_eq!(plain, "s3cret-from-kubeseal");
}
