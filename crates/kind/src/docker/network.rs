//! The `kind` Docker network, created exactly as kind does: a bridge with IP masquerading, the
//! default bridge's MTU, an IPv6 ULA /64 derived from the name (fallback to IPv4 only when the
//! daemon cannot do IPv6), more subnets tried on overlap, duplicates from races removed. kind
//! puts no labels on it and never deletes it; neither do we.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptionsBuilder;
use sha1::{Digest, Sha1};

use super::{DockerProvider, server_error};
use crate::{Error, Result};

const MAX_ATTEMPTS: i32 = 5;

/// kind's IPv6 ULA subnet for network `name` at probing `attempt`: `fc00::/8` with bytes 2..8
/// taken from SHA-1(name ‖ attempt as little-endian i32), as `fc00:xxxx:xxxx:xxxx::/64`.
pub fn ula_subnet(name: &str, attempt: i32) -> String {
    let mut h = Sha1::new();
    h.update(name.as_bytes());
    h.update(attempt.to_le_bytes());
    let digest = h.finalize();
    let mut ip = [0u8; 16];
    ip[0] = 0xfc;
    ip[2..8].copy_from_slice(&digest[2..8]);
    format!("{}/64", Ipv6Addr::from(ip))
}

/// Creates network `name` unless it exists; see the module docs.
pub(super) async fn ensure(p: &DockerProvider, name: &str) -> Result<()> {
    if remove_duplicates(p, name).await? {
        tracing::debug!(network = name, "network exists");
        return Ok(());
    }
    let mtu = default_bridge_mtu(p).await;
    let mut last = String::new();
    for attempt in 0..MAX_ATTEMPTS {
        let subnet = ula_subnet(name, attempt);
        match create(p, name, Some(&subnet), mtu).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let msg = e.to_string();
                if attempt == 0 && ipv6_unavailable(&msg) {
                    tracing::info!(
                        network = name,
                        "IPv6 unavailable; creating the network IPv4-only"
                    );
                    return create(p, name, None, mtu)
                        .await
                        .map_err(|e| net_err(name, e));
                }
                if !pool_overlap(&msg) {
                    return Err(net_err(name, e));
                }
                // Perhaps another process created it meanwhile.
                if remove_duplicates(p, name).await? {
                    return Ok(());
                }
                tracing::debug!(network = name, subnet, "subnet overlaps; trying another");
                last = msg;
            }
        }
    }
    Err(Error::Network {
        name: name.to_string(),
        reason: format!("exhausted attempts trying to find a non-overlapping subnet ({last})"),
    })
}

fn net_err(name: &str, e: CreateError) -> Error {
    match e {
        CreateError::Docker(e) => e,
        CreateError::Refused(reason) => Error::Network {
            name: name.to_string(),
            reason,
        },
    }
}

enum CreateError {
    Docker(Error),
    Refused(String),
}

impl std::fmt::Display for CreateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CreateError::Docker(e) => write!(f, "{e}"),
            CreateError::Refused(m) => f.write_str(m),
        }
    }
}

fn ipv6_unavailable(msg: &str) -> bool {
    msg.contains("Cannot read IPv6 setup for bridge")
        || msg.contains("ip6tables")
        || msg.contains("IPv6 is disabled")
}

fn pool_overlap(msg: &str) -> bool {
    msg.contains("Pool overlaps with other one on this address space")
        || msg.contains("networks have overlapping")
}

async fn create(
    p: &DockerProvider,
    name: &str,
    ipv6_subnet: Option<&str>,
    mtu: Option<u32>,
) -> std::result::Result<(), CreateError> {
    let mut options = HashMap::from([(
        "com.docker.network.bridge.enable_ip_masquerade".to_string(),
        "true".to_string(),
    )]);
    if let Some(mtu) = mtu {
        options.insert("com.docker.network.driver.mtu".into(), mtu.to_string());
    }
    let req = NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("bridge".into()),
        options: Some(options),
        enable_ipv6: ipv6_subnet.map(|_| true),
        ipam: ipv6_subnet.map(|s| Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(s.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    tracing::info!(network = name, ?ipv6_subnet, ?mtu, "creating network");
    match p.docker.create_network(req).await {
        Ok(_) => {}
        Err(e) => match server_error(&e) {
            Some((_, m)) if m.contains("already exists") => {}
            Some((_, m)) => return Err(CreateError::Refused(m.to_string())),
            None => {
                return Err(CreateError::Docker(
                    p.err(format!("create network {name}"), e),
                ));
            }
        },
    }
    remove_duplicates(p, name)
        .await
        .map(|_| ())
        .map_err(CreateError::Docker)
}

/// Whether network `name` exists; when a race created several, keeps the one with the most
/// containers (ties: lowest ID) and removes the others, as kind does.
async fn remove_duplicates(p: &DockerProvider, name: &str) -> Result<bool> {
    let filters = HashMap::from([("name".to_string(), vec![format!("^{name}$")])]);
    let list = p
        .docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| p.err("list networks", e))?;
    let mut ids: Vec<(usize, String)> = Vec::new();
    for n in list.iter().filter(|n| n.name.as_deref() == Some(name)) {
        let Some(id) = n.id.clone() else { continue };
        let containers = match p.docker.inspect_network(&id, None).await {
            Ok(i) => serde_json::to_value(&i)
                .ok()
                .and_then(|v| {
                    v.get("Containers")
                        .and_then(|c| c.as_object())
                        .map(|c| c.len())
                })
                .unwrap_or(0),
            Err(_) => continue,
        };
        ids.push((containers, id));
    }
    ids.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (_, id) in ids.iter().skip(1) {
        tracing::info!(network = name, id, "removing duplicate network");
        if let Err(e) = p.docker.remove_network(id).await
            && !matches!(server_error(&e), Some((404, _)))
        {
            return Err(p.err(format!("remove duplicate network {id}"), e));
        }
    }
    Ok(!ids.is_empty())
}

/// The subnets of network `name` (kind adds them to the nodes' NO_PROXY).
pub(super) async fn subnets(p: &DockerProvider, name: &str) -> Result<Vec<String>> {
    let n = p
        .docker
        .inspect_network(name, None)
        .await
        .map_err(|e| p.err(format!("inspect network {name}"), e))?;
    Ok(n.ipam
        .and_then(|i| i.config)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.subnet)
        .collect())
}

/// MTU of the default `bridge` network, when set and a number.
async fn default_bridge_mtu(p: &DockerProvider) -> Option<u32> {
    let n = p.docker.inspect_network("bridge", None).await.ok()?;
    n.options?
        .get("com.docker.network.driver.mtu")?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed with kind's own generateULASubnetFromName (Go).
    #[test]
    fn ula_matches_kind() {
        assert_eq!(ula_subnet("kind", 0), "fc00:f853:ccd:e793::/64");
        assert_eq!(ula_subnet("kind", 1), "fc00:8866:27d0:bd7e::/64");
        assert_eq!(ula_subnet("kind", 2), "fc00:ddd9:fcae:c61c::/64");
        assert_eq!(ula_subnet("manage-test", 0), "fc00:174e:729b:1728::/64");
    }

    #[test]
    fn error_classes() {
        assert!(pool_overlap(
            "Pool overlaps with other one on this address space"
        ));
        assert!(ipv6_unavailable(
            "Cannot read IPv6 setup for bridge br-1: open /proc/sys/net/ipv6/…"
        ));
        assert!(!pool_overlap("something else"));
    }
}
