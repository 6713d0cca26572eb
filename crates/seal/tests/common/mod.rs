//! Helpers shared by the world tests of the seal crate.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use test_world::World;

/// Writes `contents` to a fresh 0600 file in `dir`.
pub fn private_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write private file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    path
}

/// Waits for Secret `ns/name` on `server` and returns it as JSON.
pub async fn wait_secret(world: &World, server: &str, ns: &str, name: &str) -> Value {
    let (world, server, ns, name) = (
        world.clone(),
        server.to_owned(),
        ns.to_owned(),
        name.to_owned(),
    );
    test_world::eventually(
        Duration::from_secs(60),
        &format!("Secret {ns}/{name}"),
        || {
            let (world, server, ns, name) =
                (world.clone(), server.clone(), ns.clone(), name.clone());
            async move {
                let mut cmd = world.kubectl(&server)?;
                cmd.args([
                    "-n",
                    &ns,
                    "get",
                    "secret",
                    &name,
                    "--ignore-not-found",
                    "-o",
                    "json",
                ]);
                let out = test_world::run(&mut cmd)?;
                if out.trim().is_empty() {
                    return Ok(None);
                }
                Ok(Some(serde_json::from_str(&out)?))
            }
        },
    )
    .await
    .expect("the unsealed Secret")
}

/// Waits until SealedSecret `ns/name` reports condition Synced with `status`, returns its message.
pub async fn wait_synced(
    world: &World,
    server: &str,
    ns: &str,
    name: &str,
    status: &str,
) -> String {
    let (world, server, ns, name, status) = (
        world.clone(),
        server.to_owned(),
        ns.to_owned(),
        name.to_owned(),
        status.to_owned(),
    );
    test_world::eventually(
        Duration::from_secs(60),
        &format!("SealedSecret {ns}/{name} Synced={status}"),
        || {
            let (world, server, ns, name, status) = (
                world.clone(),
                server.clone(),
                ns.clone(),
                name.clone(),
                status.clone(),
            );
            async move {
                let obj =
                    world.kubectl_json(&server, &["-n", &ns, "get", "sealedsecret", &name])?;
                let cond = obj
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| c["type"] == "Synced").cloned());
                Ok(cond
                    .filter(|c| c["status"] == status.as_str())
                    .map(|c| c["message"].as_str().unwrap_or("").to_owned()))
            }
        },
    )
    .await
    .expect("the SealedSecret's Synced condition")
}
