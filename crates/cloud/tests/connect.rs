//! Authentication against the world's Keystone: clouds.yaml entries, OS_* variables, the catalog,
//! and clear errors for a wrong password or an unknown entry.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use cloud::{Call, CloudSelector, Error, Service, Session};

#[tokio::test]
async fn password_auth_from_clouds_yaml_reaches_every_service() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let admin = common::admin(&clouds).await;
    assert!(!admin.user_id.is_empty());
    assert!(admin.project_id.is_some());
    for (service, path, key) in [
        (Service::Identity, "projects", "projects"),
        (Service::Compute, "flavors", "flavors"),
        (Service::Network, "networks", "networks"),
        (Service::Image, "images", "images"),
        (Service::BlockStorage, "types", "volume_types"),
        (
            Service::LoadBalancer,
            "lbaas/loadbalancers",
            "loadbalancers",
        ),
    ] {
        let items = admin.list(Call::get(service, path), key).await;
        assert!(items.is_ok(), "{service:?} {path}: {items:?}");
    }
}

#[tokio::test]
async fn unknown_entry_and_wrong_password_are_clear_errors() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let err = Session::connect(&CloudSelector::in_file("nope", &clouds))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{text}");
    assert!(
        text.contains("no cloud `nope`") && text.contains("admin"),
        "{text}"
    );

    let admin = common::admin(&clouds).await;
    let project = common::TestProject::create(&admin, "auth").await;
    let bad = project.dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(&project.clouds_file)
        .unwrap()
        .replace(&project.password, "wrong-password");
    std::fs::write(&bad, text).unwrap();
    let t0 = std::time::Instant::now();
    let err = Session::connect(&CloudSelector::in_file("test", &bad))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    // refused at once: no retry storm against Keystone
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
    project.delete(&admin).await;
}
