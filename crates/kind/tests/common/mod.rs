//! Shared by the tests against the test world's Docker engine: connect to it (or skip with one
//! line, or fail with WORLD_REQUIRED=1), and options for the world's node image.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use kind::{CreateOptions, DockerProvider};
use test_world::World;

/// The world's Docker engine and node image.
pub struct Docker {
    /// The world.
    pub world: World,
    /// A provider connected to the world's dockerd.
    pub provider: DockerProvider,
    /// `DOCKER_HOST` of the world.
    pub host: String,
    /// The world's locally built node image.
    pub image: String,
}

/// The world's Docker, or `None` after printing `world absent: <why>` (panics with
/// WORLD_REQUIRED=1).
pub async fn docker_or_skip() -> Option<Docker> {
    let world = test_world::world_or_skip(&["DOCKER_HOST", "WORLD_NODE_IMAGE"])?;
    let host = world.var("DOCKER_HOST").unwrap_or_default().to_string();
    let image = world
        .var("WORLD_NODE_IMAGE")
        .unwrap_or_default()
        .to_string();
    match DockerProvider::connect(Some(&host)).await {
        Ok(provider) => Some(Docker {
            world,
            provider,
            host,
            image,
        }),
        Err(e) => {
            let why = format!("the world's Docker does not answer: {e}");
            if test_world::world_required() {
                panic!("world absent: {why} (WORLD_REQUIRED=1, so this fails)");
            }
            println!("world absent: {why}");
            None
        }
    }
}

/// kind's options for cluster `name` with the world's node image: unprivileged (privileged
/// containers cannot start on this host), kubeconfig in `dir`.
pub fn options(d: &Docker, name: &str, dir: &Path) -> CreateOptions {
    let mut o = CreateOptions::new(name, dir.join(format!("{name}.kubeconfig")));
    o.image = d.image.clone();
    o.privileged = false;
    o.wait = Duration::from_secs(180);
    o
}

/// Prints each status line, prefixed with the test's cluster.
pub fn status(line: &str) {
    println!("  {line}");
}

/// Removes cluster `name` whatever state the test left it in.
pub async fn cleanup(d: &Docker, name: &str) {
    let _ = kind::delete(&d.provider, name, None, &[]).await;
}
