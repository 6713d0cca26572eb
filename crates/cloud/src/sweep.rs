//! Cleanup: find every resource of one cluster and delete it in dependency order.
//!
//! Works from the cloud alone (no Kubernetes cluster needed): a resource belongs to the cluster
//! when it carries the cluster's tag (ours, and CAPO's through `OpenStackCluster.spec.tags`), when
//! its name *and* description are exactly what CAPO gives it, when its name or description is
//! exactly what the cloud controller (OCCM) gives a Service's load balancer, floating IP or
//! security group, or when Cinder CSI's metadata names the cluster. Never a loose name match.
//! Everything is listed within the session's project only (an admin token would otherwise see
//! every project's resources).
//!
//! Order: load balancers (cascade) → servers → floating IPs → ports → router interfaces and
//! gateways → routers → subnets → networks → security groups → server groups → volumes →
//! keypairs → images. Each deletion waits until the resource is gone; one that cannot be deleted
//! is reported with the reason and the sweep goes on with the rest.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{Call, Service};
use crate::connect::Session;
use crate::error::{Error, Result};
use crate::identity::{CSI_CLUSTER_METADATA, ClusterIdentity, MANAGED_TAG};

/// Kinds of resources, in deletion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Octavia load balancer (deleted with its listeners, pools and members).
    LoadBalancer,
    /// Nova server.
    Server,
    /// Neutron floating IP.
    FloatingIp,
    /// Neutron port.
    Port,
    /// A router's interface on one of the cluster's subnets (the router may be someone else's).
    RouterInterface,
    /// Neutron router.
    Router,
    /// Neutron subnet.
    Subnet,
    /// Neutron network.
    Network,
    /// Neutron security group.
    SecurityGroup,
    /// Nova server group.
    ServerGroup,
    /// Cinder volume.
    Volume,
    /// Nova keypair.
    Keypair,
    /// Glance image (only when no other cluster uses it).
    Image,
}

impl Kind {
    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::LoadBalancer => "load balancer",
            Kind::Server => "server",
            Kind::FloatingIp => "floating IP",
            Kind::Port => "port",
            Kind::RouterInterface => "router interface",
            Kind::Router => "router",
            Kind::Subnet => "subnet",
            Kind::Network => "network",
            Kind::SecurityGroup => "security group",
            Kind::ServerGroup => "server group",
            Kind::Volume => "volume",
            Kind::Keypair => "keypair",
            Kind::Image => "image",
        }
    }
}

/// One resource the sweep found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    /// What it is.
    pub kind: Kind,
    /// Its id (for a router interface: `<router id>/<port id>`; for a keypair: its name).
    pub id: String,
    /// Its name (may be empty).
    pub name: String,
    /// Why it belongs to the cluster (`tag`, `CAPO name`, `OCCM name`, `CSI metadata`, …).
    pub reason: String,
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({}; {})",
            self.kind.name(),
            self.name,
            self.id,
            self.reason
        )
    }
}

/// What to sweep beyond what tags and naming conventions find.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// List only; change nothing.
    pub dry_run: bool,
    /// Exact names of the cluster's server groups (Nova server groups have no tags; the names
    /// come from the definition, `spec::render::server_groups`).
    pub server_groups: Vec<String>,
    /// Exact names of keypairs created for the cluster (none by default: a keypair named in the
    /// definition is the user's).
    pub keypairs: Vec<String>,
    /// Also untag the cluster's images and delete those that no other cluster uses.
    pub images: bool,
    /// How long to wait for one resource to disappear.
    pub wait: Duration,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            server_groups: Vec::new(),
            keypairs: Vec::new(),
            images: true,
            wait: Duration::from_secs(300),
        }
    }
}

impl SweepOptions {
    /// Options for a definition: its server groups, keypairs none.
    pub fn for_definition(def: &spec::model::ClusterDefinition) -> Self {
        let mut groups: Vec<String> = spec::render::server_groups(def)
            .into_iter()
            .map(|g| g.name)
            .collect();
        // a worker group removed from the definition earlier may still have its group; the
        // control-plane name is fixed and always included
        groups.push(spec::render::names::control_plane(&def.name));
        groups.sort();
        groups.dedup();
        Self {
            server_groups: groups,
            ..Self::default()
        }
    }
}

/// The outcome of a sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// Everything found, in deletion order.
    pub found: Vec<Found>,
    /// Deleted (and confirmed gone). Empty in a dry run.
    pub deleted: Vec<Found>,
    /// Could not be deleted, with the reason.
    pub failed: Vec<(Found, String)>,
}

impl SweepReport {
    /// Nothing failed.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Finds the cluster's resources and, unless `dry_run`, deletes them in dependency order.
pub async fn sweep(
    session: &Session,
    cluster: &ClusterIdentity,
    opts: &SweepOptions,
) -> Result<SweepReport> {
    let project = session.project_id.clone().ok_or_else(|| {
        Error::Invalid(format!(
            "cloud `{}`: the sweep needs a project-scoped login (set project_name or project_id in clouds.yaml)",
            session.label
        ))
    })?;
    let mut report = SweepReport::default();
    let octavia = session.has_service(&["load-balancer"]);

    // Phase by phase: each phase lists afresh, so what an earlier phase removed (a port owned by
    // a server) is not deleted twice, and a rerun after a failure starts from the cloud's state.
    if octavia {
        let lbs = find_load_balancers(session, cluster, &project).await?;
        run_phase(session, &mut report, lbs, opts).await;
    }
    let networks = find_networks(session, cluster, &project).await?;
    let net_ids: BTreeSet<String> = networks.iter().map(|f| f.id.clone()).collect();
    let servers = find_servers(session, cluster, &project, &net_ids).await?;
    run_phase(session, &mut report, servers, opts).await;

    let fips = find_floating_ips(session, cluster, &project).await?;
    run_phase(session, &mut report, fips, opts).await;
    let ports = find_ports(session, cluster, &project, &net_ids).await?;
    run_phase(session, &mut report, ports, opts).await;
    let routers = find_routers(session, cluster, &project).await?;
    let subnets = find_subnets(session, cluster, &project, &net_ids).await?;
    let interfaces = find_router_interfaces(session, &net_ids, &routers).await?;
    run_phase(session, &mut report, interfaces, opts).await;
    run_phase(session, &mut report, routers, opts).await;
    run_phase(session, &mut report, subnets, opts).await;
    run_phase(session, &mut report, networks, opts).await;
    let groups = find_security_groups(session, cluster, &project).await?;
    if !opts.dry_run {
        unlink_security_groups(session, &groups).await?;
    }
    run_phase(session, &mut report, groups, opts).await;
    let server_groups = find_server_groups(session, opts).await?;
    run_phase(session, &mut report, server_groups, opts).await;
    let volumes = find_volumes(session, cluster).await?;
    run_phase(session, &mut report, volumes, opts).await;
    let keypairs = find_keypairs(session, opts).await?;
    run_phase(session, &mut report, keypairs, opts).await;
    if opts.images {
        let (untag, delete) = find_images(session, cluster).await?;
        for image in untag {
            report.found.push(image.clone());
            if !opts.dry_run {
                let tag = cluster.tag();
                match session
                    .delete_if_exists(Service::Image, &format!("images/{}/tags/{tag}", image.id))
                    .await
                {
                    Ok(_) => report.deleted.push(image),
                    Err(e) => report.failed.push((image, e.to_string())),
                }
            }
        }
        run_phase(session, &mut report, delete, opts).await;
    }
    Ok(report)
}

async fn run_phase(
    session: &Session,
    report: &mut SweepReport,
    mut items: Vec<Found>,
    opts: &SweepOptions,
) {
    items.sort();
    items.dedup_by(|a, b| a.kind == b.kind && a.id == b.id);
    for item in items {
        report.found.push(item.clone());
        if opts.dry_run {
            continue;
        }
        match delete_and_wait(session, &item, opts.wait).await {
            Ok(()) => {
                tracing::info!(resource = %item, "deleted");
                report.deleted.push(item);
            }
            Err(e) => {
                tracing::warn!(resource = %item, error = %e, "could not delete");
                report.failed.push((item, e.to_string()));
            }
        }
    }
}

fn found(kind: Kind, v: &Value, reason: &str) -> Found {
    Found {
        kind,
        id: v["id"].as_str().unwrap_or_default().to_string(),
        name: v["name"].as_str().unwrap_or_default().to_string(),
        reason: reason.to_string(),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// Why a tagged-or-named Neutron/Octavia resource belongs to the cluster, if it does.
fn belongs(cluster: &ClusterIdentity, v: &Value, capo_names: &[String]) -> Option<&'static str> {
    if cluster.tagged(v) {
        return Some("tag");
    }
    let name = str_of(v, "name");
    (capo_names.iter().any(|n| n == name) && str_of(v, "description") == cluster.capo_description())
        .then_some("CAPO name")
}

async fn list_in_project(
    session: &Session,
    service: Service,
    path: &str,
    key: &str,
    project: &str,
) -> Result<Vec<Value>> {
    session
        .list(Call::get(service, path).query("project_id", project), key)
        .await
}

async fn find_load_balancers(
    session: &Session,
    cluster: &ClusterIdentity,
    project: &str,
) -> Result<Vec<Found>> {
    let lbs = list_in_project(
        session,
        Service::LoadBalancer,
        "lbaas/loadbalancers",
        "loadbalancers",
        project,
    )
    .await?;
    Ok(lbs
        .iter()
        .filter_map(|lb| {
            let reason = belongs(cluster, lb, &[cluster.capo_api_lb()]).or_else(|| {
                cluster
                    .is_occm_lb(str_of(lb, "name"))
                    .then_some("OCCM name")
            })?;
            Some(found(Kind::LoadBalancer, lb, reason))
        })
        .collect())
}

/// Servers tagged for the cluster (CAPO copies `OpenStackCluster.spec.tags` onto them), and
/// servers with a port on the cluster's networks (CAPO versions or clusters without the tags).
async fn find_servers(
    session: &Session,
    cluster: &ClusterIdentity,
    project: &str,
    nets: &BTreeSet<String>,
) -> Result<Vec<Found>> {
    // Server tags need microversion 2.26.
    let tagged = session
        .list(
            Call::get(Service::Compute, "servers/detail")
                .query("tags", cluster.tag())
                .microversion(2, 26),
            "servers",
        )
        .await?;
    let mut out: Vec<Found> = tagged
        .iter()
        .map(|s| found(Kind::Server, s, "tag"))
        .collect();
    if !nets.is_empty() {
        let ports = list_in_project(session, Service::Network, "ports", "ports", project).await?;
        let attached: BTreeSet<&str> = ports
            .iter()
            .filter(|p| {
                nets.contains(str_of(p, "network_id"))
                    && str_of(p, "device_owner").starts_with("compute:")
            })
            .map(|p| str_of(p, "device_id"))
            .collect();
        for id in attached {
            if out.iter().any(|f| f.id == id) {
                continue;
            }
            let server = session
                .get(Service::Compute, &format!("servers/{id}"))
                .await?;
            out.push(found(
                Kind::Server,
                &server["server"],
                "port on the cluster's network",
            ));
        }
    }
    Ok(out)
}

async fn find_networks(
    session: &Session,
    cluster: &ClusterIdentity,
    project: &str,
) -> Result<Vec<Found>> {
    let nets = list_in_project(session, Service::Network, "networks", "networks", project).await?;
    Ok(nets
        .iter()
        .filter_map(|n| {
            belongs(cluster, n, &[cluster.capo_network()]).map(|r| found(Kind::Network, n, r))
        })
        .collect())
}

async fn find_subnets(
    session: &Session,
    cluster: &ClusterIdentity,
    project: &str,
    nets: &BTreeSet<String>,
) -> Result<Vec<Found>> {
    let subnets = list_in_project(session, Service::Network, "subnets", "subnets", project).await?;
    Ok(subnets
        .iter()
        .filter_map(|s| {
            let reason = belongs(cluster, s, &[cluster.capo_network()]).or_else(|| {
                nets.contains(str_of(s, "network_id"))
                    .then_some("on the cluster's network")
            })?;
            Some(found(Kind::Subnet, s, reason))
        })
        .collect())
}

async fn find_routers(
    session: &Session,
    cluster: &ClusterIdentity,
    project: &str,
) -> Result<Vec<Found>> {
    let routers = list_in_project(session, Service::Network, "routers", "routers", project).await?;
    Ok(routers
        .iter()
        .filter_map(|r| {
            belongs(cluster, r, &[cluster.capo_network()]).map(|why| found(Kind::Router, r, why))
        })
        .collect())
}

/// Interfaces to detach: every interface of the cluster's routers, and every router's interface
/// on the cluster's networks (a shared router someone attached).
async fn find_router_interfaces(
    session: &Session,
    nets: &BTreeSet<String>,
    routers: &[Found],
) -> Result<Vec<Found>> {
    let ours: BTreeSet<&str> = routers.iter().map(|r| r.id.as_str()).collect();
    let ports = session
        .list(
            Call::get(Service::Network, "ports").query("device_owner", "network:router_interface"),
            "ports",
        )
        .await?;
    Ok(ports
        .iter()
        .filter(|p| {
            let router = str_of(p, "device_id");
            ours.contains(router) || nets.contains(str_of(p, "network_id"))
        })
        .map(|p| Found {
            kind: Kind::RouterInterface,
            id: format!("{}/{}", str_of(p, "device_id"), str_of(p, "id")),
            name: str_of(p, "name").to_string(),
            reason: if ours.contains(str_of(p, "device_id")) {
                "interface of the cluster's router".into()
            } else {
                "interface on the cluster's network".into()
            },
        })
        .collect())
}

async fn find_floating_ips(
    session: &Session,
    cluster: &ClusterIdentity,
    project: &str,
) -> Result<Vec<Found>> {
    let fips = list_in_project(
        session,
        Service::Network,
        "floatingips",
        "floatingips",
        project,
    )
    .await?;
    Ok(fips
        .iter()
        .filter_map(|f| {
            let reason = if cluster.tagged(f) {
                "tag"
            } else if str_of(f, "description") == cluster.capo_description() {
                "CAPO description"
            } else if cluster.is_occm_fip_description(str_of(f, "description")) {
                "OCCM description"
            } else {
                return None;
            };
            let mut item = found(Kind::FloatingIp, f, reason);
            item.name = str_of(f, "floating_ip_address").to_string();
            Some(item)
        })
        .collect())
}

/// Tagged ports, and ports on the cluster's networks except those Neutron removes itself (DHCP)
/// or that go with their router interface.
async fn find_ports(
    session: &Session,
    cluster: &ClusterIdentity,
    project: &str,
    nets: &BTreeSet<String>,
) -> Result<Vec<Found>> {
    let ports = list_in_project(session, Service::Network, "ports", "ports", project).await?;
    Ok(ports
        .iter()
        .filter_map(|p| {
            let owner = str_of(p, "device_owner");
            if matches!(
                owner,
                "network:dhcp"
                    | "network:router_interface"
                    | "network:router_gateway"
                    | "network:floatingip"
            ) {
                return None;
            }
            let reason = if cluster.tagged(p) {
                "tag"
            } else if nets.contains(str_of(p, "network_id")) {
                "on the cluster's network"
            } else {
                return None;
            };
            Some(found(Kind::Port, p, reason))
        })
        .collect())
}

async fn find_security_groups(
    session: &Session,
    cluster: &ClusterIdentity,
    project: &str,
) -> Result<Vec<Found>> {
    let groups = list_in_project(
        session,
        Service::Network,
        "security-groups",
        "security_groups",
        project,
    )
    .await?;
    Ok(groups
        .iter()
        .filter_map(|g| {
            let reason = belongs(cluster, g, &cluster.capo_security_groups()).or_else(|| {
                cluster
                    .is_occm_sg_description(str_of(g, "description"))
                    .then_some("OCCM description")
            })?;
            Some(found(Kind::SecurityGroup, g, reason))
        })
        .collect())
}

/// Rules in one of the groups that point at another of them (CAPO's control plane and worker
/// groups reference each other) keep Neutron from deleting either; remove those rules first.
async fn unlink_security_groups(session: &Session, groups: &[Found]) -> Result<()> {
    let ids: BTreeSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    for group in groups {
        let rules = session
            .list(
                Call::get(Service::Network, "security-group-rules")
                    .query("security_group_id", group.id.as_str()),
                "security_group_rules",
            )
            .await?;
        for rule in rules {
            let remote = str_of(&rule, "remote_group_id");
            if !remote.is_empty() && remote != group.id && ids.contains(remote) {
                session
                    .delete_if_exists(
                        Service::Network,
                        &format!("security-group-rules/{}", str_of(&rule, "id")),
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

async fn find_server_groups(session: &Session, opts: &SweepOptions) -> Result<Vec<Found>> {
    if opts.server_groups.is_empty() {
        return Ok(Vec::new());
    }
    let groups = session
        .list(
            Call::get(Service::Compute, "os-server-groups"),
            "server_groups",
        )
        .await?;
    Ok(groups
        .iter()
        .filter(|g| opts.server_groups.iter().any(|n| n == str_of(g, "name")))
        .map(|g| found(Kind::ServerGroup, g, "exact name from the definition"))
        .collect())
}

async fn find_volumes(session: &Session, cluster: &ClusterIdentity) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    for (key, reason) in [
        (CSI_CLUSTER_METADATA, "CSI metadata"),
        ("manage-cluster", "metadata"),
    ] {
        let filter = json!({ key: cluster.name }).to_string();
        let volumes = session
            .list(
                Call::get(Service::BlockStorage, "volumes/detail").query("metadata", filter),
                "volumes",
            )
            .await?;
        // Old Cinder versions ignore unknown filters; check the metadata ourselves.
        out.extend(
            volumes
                .iter()
                .filter(|v| v["metadata"][key].as_str() == Some(cluster.name.as_str()))
                .map(|v| found(Kind::Volume, v, reason)),
        );
    }
    Ok(out)
}

async fn find_keypairs(session: &Session, opts: &SweepOptions) -> Result<Vec<Found>> {
    if opts.keypairs.is_empty() {
        return Ok(Vec::new());
    }
    let pairs = session
        .list(Call::get(Service::Compute, "os-keypairs"), "keypairs")
        .await?;
    Ok(pairs
        .iter()
        .filter_map(|k| {
            let name = k["keypair"]["name"].as_str()?;
            opts.keypairs.iter().any(|n| n == name).then(|| Found {
                kind: Kind::Keypair,
                id: name.to_string(),
                name: name.to_string(),
                reason: "exact name given".into(),
            })
        })
        .collect())
}

/// Images tagged for the cluster: (only untag — another cluster's tag is on it too; delete — we
/// registered it and no other cluster uses it).
async fn find_images(
    session: &Session,
    cluster: &ClusterIdentity,
) -> Result<(Vec<Found>, Vec<Found>)> {
    let images = session
        .list(
            Call::get(Service::Image, "images").query("tag", cluster.tag()),
            "images",
        )
        .await?;
    let mut untag = Vec::new();
    let mut delete = Vec::new();
    for image in &images {
        let tags: Vec<&str> = image["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let others = tags
            .iter()
            .any(|t| t.starts_with("manage-cluster=") && *t != cluster.tag());
        if others || !tags.contains(&MANAGED_TAG) {
            untag.push(found(
                Kind::Image,
                image,
                "tag (still used by another cluster: only untagged)",
            ));
        } else {
            delete.push(found(Kind::Image, image, "tag"));
        }
    }
    Ok((untag, delete))
}

/// The path of a resource and the call that deletes it.
fn locate(item: &Found) -> (Service, String) {
    match item.kind {
        Kind::LoadBalancer => (
            Service::LoadBalancer,
            format!("lbaas/loadbalancers/{}", item.id),
        ),
        Kind::Server => (Service::Compute, format!("servers/{}", item.id)),
        Kind::FloatingIp => (Service::Network, format!("floatingips/{}", item.id)),
        Kind::Port => (Service::Network, format!("ports/{}", item.id)),
        Kind::RouterInterface => (
            Service::Network,
            format!("ports/{}", item.id.split_once('/').map_or("", |(_, p)| p)),
        ),
        Kind::Router => (Service::Network, format!("routers/{}", item.id)),
        Kind::Subnet => (Service::Network, format!("subnets/{}", item.id)),
        Kind::Network => (Service::Network, format!("networks/{}", item.id)),
        Kind::SecurityGroup => (Service::Network, format!("security-groups/{}", item.id)),
        Kind::ServerGroup => (Service::Compute, format!("os-server-groups/{}", item.id)),
        Kind::Volume => (Service::BlockStorage, format!("volumes/{}", item.id)),
        Kind::Keypair => (Service::Compute, format!("os-keypairs/{}", item.id)),
        Kind::Image => (Service::Image, format!("images/{}", item.id)),
    }
}

async fn delete_and_wait(session: &Session, item: &Found, wait: Duration) -> Result<()> {
    let (service, path) = locate(item);
    match item.kind {
        Kind::RouterInterface => {
            let (router, port) = item.id.split_once('/').unwrap_or_default();
            let call = Call::put(
                Service::Network,
                format!("routers/{router}/remove_router_interface"),
                json!({ "port_id": port }),
            );
            match session.request(&call).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Kind::Router => {
            // the gateway port goes with the router, but an explicit clear makes the error (if
            // any) name the gateway rather than the router
            let call = Call::put(
                Service::Network,
                format!("routers/{}", item.id),
                json!({ "router": { "external_gateway_info": {} } }),
            );
            match session.request(&call).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            }
            session.delete_if_exists(service, &path).await?;
        }
        Kind::LoadBalancer => {
            let call = Call::delete(service, &path).query("cascade", "true");
            match session.request_raw(&call).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        _ => {
            session.delete_if_exists(service, &path).await?;
        }
    }
    wait_gone(session, item, service, &path, wait).await
}

async fn wait_gone(
    session: &Session,
    item: &Found,
    service: Service,
    path: &str,
    wait: Duration,
) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(200);
    loop {
        match session.request(&Call::get(service, path)).await {
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
            Ok(v) => {
                // a load balancer reports DELETED before it is gone from the list; a volume or
                // server in an error state will never go by itself
                let status = v
                    .as_object()
                    .and_then(|m| m.values().next())
                    .and_then(|inner| {
                        inner["provisioning_status"]
                            .as_str()
                            .or(inner["status"].as_str())
                    })
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if status == "deleted" {
                    return Ok(());
                }
                if status == "error_deleting" || (status == "error" && item.kind == Kind::Server) {
                    return Err(Error::Invalid(format!(
                        "{item}: the service reports status {status}"
                    )));
                }
            }
        }
        if start.elapsed() > wait {
            return Err(Error::Timeout {
                what: format!("{item} to be deleted"),
                seconds: wait.as_secs(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(3));
    }
}
