//! The real `kind` CLI (v0.32.0, built from its Go module into $WORLD_BIN by build-kind.sh) sees
//! the clusters we create: `kind get clusters` lists ours and `kind delete cluster --name` removes
//! it. kind shells out to the `docker` CLI, so DOCKER_HOST points it at the world's engine.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// `$WORLD_BIN/kind`, built with build-kind.sh when missing (needs Go and the module proxy).
fn kind_binary(world: &test_world::World) -> Option<PathBuf> {
    if let Ok(p) = world.bin("kind") {
        return Some(p);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/build-kind.sh");
    let built = Command::new(&script)
        .env("WORLD_BIN", world.var("WORLD_BIN").unwrap_or_default())
        .status()
        .is_ok_and(|s| s.success());
    match world.bin("kind") {
        Ok(p) if built => Some(p),
        _ => {
            let why = format!("the kind CLI is not built and {} failed", script.display());
            if test_world::world_required() {
                panic!("world absent: {why} (WORLD_REQUIRED=1, so this fails)");
            }
            println!("world absent: {why}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_cli_lists_and_deletes_our_cluster() {
    let Some(d) = common::docker_or_skip().await else {
        return;
    };
    let Some(kind_bin) = kind_binary(&d.world) else {
        return;
    };
    let name = test_world::unique_name("kt-cli");
    let dir = tempfile::tempdir().expect("tempdir");
    let user_kubeconfig = dir.path().join("user-config");
    let mut o = common::options(&d, &name, dir.path());
    o.merge_kubeconfig = Some(user_kubeconfig.clone());
    let created = match kind::create(&d.provider, &o, &common::status).await {
        Ok(c) => c,
        Err(e) => {
            common::cleanup(&d, &name).await;
            panic!("create failed: {e}");
        }
    };
    let kind = |args: &[&str]| {
        let out = Command::new(&kind_bin)
            .args(args)
            .env("DOCKER_HOST", &d.host)
            .env("KUBECONFIG", &user_kubeconfig)
            .output()
            .expect("run kind");
        println!(
            "$ kind {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };

    let out = kind(&["get", "clusters"]);
    assert!(out.status.success());
    let clusters = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        clusters.lines().any(|l| l == name),
        "kind lists {name}: {clusters}"
    );

    let out = kind(&["get", "nodes", "--name", &name]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), created.node);

    let out = kind(&["delete", "cluster", "--name", &name]);
    assert!(out.status.success());
    assert!(
        kind::Provider::list_nodes(&d.provider, Some(&name))
            .await
            .expect("list")
            .is_empty(),
        "kind deleted our node"
    );
    assert!(
        !kind::kubeconfig::has_entries(&user_kubeconfig, &name).expect("read"),
        "kind removed our kubeconfig entries"
    );
    let out = kind(&["get", "clusters"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == name)
    );
}
