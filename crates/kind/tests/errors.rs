//! The one-line errors a user gets, with the fix in them: Docker not running (socket missing,
//! connection refused), node image missing without registry access, port in use, privileged
//! containers refused, a broken cluster of the same name.

mod common;

use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptionsBuilder;
use kind::{DockerProvider, Error};

fn one_line(e: &Error) -> String {
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    println!("error: {msg}");
    msg
}

#[tokio::test]
async fn docker_socket_missing() {
    let e = DockerProvider::connect(Some("unix:///nonexistent/docker.sock"))
        .await
        .expect_err("no daemon there");
    let msg = one_line(&e);
    assert!(matches!(e, Error::DockerNotRunning { .. }), "{e:?}");
    assert!(msg.starts_with("Docker is not running"), "{msg}");
    assert!(msg.contains("DOCKER_HOST"), "{msg}");
}

#[tokio::test]
async fn docker_stopped_socket_left_behind() {
    // A socket file nobody listens on: what a crashed or stopped daemon leaves.
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
    let e = DockerProvider::connect(Some(&format!("unix://{}", sock.display())))
        .await
        .expect_err("nobody listens");
    let msg = one_line(&e);
    assert!(matches!(e, Error::DockerNotRunning { .. }), "{e:?}");
    assert!(msg.contains("start the Docker daemon"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_missing_without_registry() {
    let Some(d) = common::docker_or_skip().await else {
        return;
    };
    let name = test_world::unique_name("kt-noimg");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = common::options(&d, &name, dir.path());
    o.image = "manage-kind-test/absent-node:v0.0.0".into();
    let start = std::time::Instant::now();
    let e = kind::create(&d.provider, &o, &common::status)
        .await
        .expect_err("no such image, no registry");
    println!("failed after {:.1}s", start.elapsed().as_secs_f64());
    let msg = one_line(&e);
    assert!(matches!(e, Error::ImageMissing { .. }), "{e:?}");
    assert!(msg.contains("--image-archive FILE"), "{msg}");
    assert!(msg.contains("docker load -i FILE"), "{msg}");
    assert!(
        kind::Provider::list_nodes(&d.provider, Some(&name))
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use() {
    let Some(d) = common::docker_or_skip().await else {
        return;
    };
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let name = test_world::unique_name("kt-port");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = common::options(&d, &name, dir.path());
    o.api_server_port = port;
    let e = kind::create(&d.provider, &o, &common::status)
        .await
        .expect_err("port taken");
    let msg = one_line(&e);
    assert!(
        matches!(e, Error::PortInUse { port: p } if p == port),
        "{e:?}"
    );
    assert!(
        msg.contains(&format!("port {port} on 127.0.0.1 is already in use")),
        "{msg}"
    );
    assert!(
        kind::Provider::list_nodes(&d.provider, Some(&name))
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_refused_by_this_host() {
    let Some(d) = common::docker_or_skip().await else {
        return;
    };
    let name = test_world::unique_name("kt-priv");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = common::options(&d, &name, dir.path());
    o.privileged = true; // kind's default; this host's runc cannot apply all capabilities
    o.wait = Duration::from_secs(30);
    match kind::create(&d.provider, &o, &common::status).await {
        Ok(c) => {
            // A host that allows privileged containers: fine too, the option works.
            println!("privileged containers work on this host");
            kind::delete(&d.provider, &name, Some(&c.kubeconfig), &[])
                .await
                .expect("delete");
        }
        Err(e) => {
            let msg = one_line(&e);
            assert!(
                msg.contains("does not allow privileged containers"),
                "{msg}"
            );
            assert!(msg.contains("--privileged=false"), "{msg}");
            // the failed node was removed (no --retain)
            assert!(
                kind::Provider::list_nodes(&d.provider, Some(&name))
                    .await
                    .expect("list")
                    .is_empty()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_cluster_is_reported_with_a_choice() {
    let Some(d) = common::docker_or_skip().await else {
        return;
    };
    let name = test_world::unique_name("kt-broken");
    let node = kind::control_plane_name(&name);
    // A labelled node that never booted: what an interrupted create leaves behind.
    let labels = std::collections::HashMap::from([
        (kind::CLUSTER_LABEL.to_string(), name.clone()),
        (kind::ROLE_LABEL.to_string(), "control-plane".to_string()),
    ]);
    d.provider
        .client()
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&node).build()),
            ContainerCreateBody {
                image: Some(d.image.clone()),
                labels: Some(labels),
                ..Default::default()
            },
        )
        .await
        .expect("create a broken node");
    let dir = tempfile::tempdir().expect("tempdir");
    let o = common::options(&d, &name, dir.path());
    let e = kind::create(&d.provider, &o, &common::status)
        .await
        .expect_err("broken");
    let msg = one_line(&e);
    assert!(matches!(e, Error::BrokenCluster { .. }), "{e:?}");
    assert!(msg.contains("is created"), "{msg}");
    assert!(
        msg.contains(&format!("manage kind delete --name {name}")),
        "{msg}"
    );
    assert!(msg.contains("--recreate"), "{msg}");
    // not touched
    assert_eq!(
        kind::Provider::list_nodes(&d.provider, Some(&name))
            .await
            .expect("list")
            .len(),
        1
    );
    let deleted = kind::delete(&d.provider, &name, None, &[])
        .await
        .expect("delete");
    assert_eq!(deleted.nodes, vec![node]);
}
