//! Pre-flight: everything a cluster definition needs from the cloud, checked before anything is
//! created, and reported in one go.
//!
//! [`preflight`] reads (never writes) the cloud and returns one [`Report`] with every problem it
//! found — a missing flavor does not hide a too-small quota — each naming the definition field it
//! concerns, the numbers, and what would fix it. API failures other than "the checked thing is not
//! there" are errors ([`crate::Error`]), not problems: a report must never claim that a flavor is
//! missing because Nova was down.
//!
//! What is checked:
//!
//! - **flavors** of the control plane and of every worker group exist (by name: the machine
//!   templates select flavors by name), are enabled, and fit the image: without a root volume the
//!   flavor's disk must be > 0 and hold the image (`min_disk`, and the image's size); with one, the
//!   volume must; the flavor's RAM must be ≥ the image's `min_ram`;
//! - **image**: `image.name` is an active Glance image (exactly one), or `image.url` is given so it
//!   can be registered;
//! - **external network**: `cloud.externalNetwork` (name or id) is a network with
//!   `router:external`; when omitted, exactly one external network exists;
//! - **availability zones**, the **SSH key pair** and root-volume **volume types**, where given;
//! - **quotas**, against what is left (limit − in use − reserved; −1 is unlimited), with the surge
//!   of a rolling update (one extra machine for the control plane and one per worker group,
//!   [`PreflightOptions::rolling_update_surge`]): see [`preflight`] for the numbers and sources.
//!
//! It is meant for a cluster that does not exist yet: on a running cluster, its own machines,
//! groups and ports already count as in use, and the numbers are those of a second cluster.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use spec::model::{ClusterDefinition, Provider, RootVolume};

use crate::api::{Call, Service};
use crate::connect::Session;
use crate::error::{Error, Result};

/// Security groups one cluster makes: CAPO's `controlplane` and `worker` groups, CAPO's `bastion`
/// group (made by some CAPO versions even without a bastion; counted as margin), and the group the
/// preparation step makes for the CNI's node-to-node traffic.
pub const SECURITY_GROUPS: i64 = 4;

/// Security group rules one cluster makes (an estimate with a little margin, the exact number
/// depends on the CAPO version):
///
/// - 8: Neutron's two default egress rules (IPv4, IPv6) in each of the 4 groups;
/// - 4: CAPO's control-plane rules (API server 6443, etcd 2379–2380, kubelet 10250 from the
///   control plane and from workers);
/// - 4: CAPO's worker rules (NodePorts 30000–32767 TCP and UDP, kubelet 10250 from the control
///   plane and from workers);
/// - 16: the CNI's 4 node-to-node rules, each from both managed groups, in both groups.
///
/// Each `network.apiServerAllowedCidrs` entry adds one more (the API server opened to that range).
pub const SECURITY_GROUP_RULES: i64 = 32;

/// Rules of the `default` security group Neutron creates in a project on first use (two ingress
/// from the group itself, two egress), counted when the project has no security group yet.
pub const DEFAULT_GROUP_RULES: i64 = 4;

/// Ports besides the machines' own (one each): the router's interface on the cluster subnet and
/// the subnet's DHCP (or OVN metadata) port. The API load balancer's VIP port comes on top.
pub const NETWORK_PORTS: i64 = 2;

/// Choices of [`preflight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreflightOptions {
    /// Count the machines a rolling update adds for a while: one for the control plane
    /// (KubeadmControlPlane `maxSurge: 1`) and one per worker group that has machines
    /// (MachineDeployment `maxSurge: 1`). Default: on; off fits a cluster that is never rolled.
    pub rolling_update_surge: bool,
}

impl Default for PreflightOptions {
    fn default() -> Self {
        Self {
            rolling_update_surge: true,
        }
    }
}

/// One thing that would make creating (or rolling) the cluster fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The definition field it concerns (`controlPlane.flavor`, `workers[1].flavor`,
    /// `cloud.externalNetwork`, `image.name`, …); quota problems use `quota.<resource>`
    /// (`quota.instances`, `quota.security_group`, …) with the resource named as the service does.
    pub field: String,
    /// What is wrong, with the numbers.
    pub message: String,
    /// What would fix it.
    pub hint: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.field, self.message, self.hint)
    }
}

/// The outcome of [`preflight`]: every problem, and what passed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every problem found, in the order checked (flavors, image, network, zones, quotas).
    pub problems: Vec<Problem>,
    /// What was checked and found fine, one line each, for the user.
    pub checked: Vec<String>,
}

impl Report {
    /// No problems.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems concerning `field` (exactly that field).
    pub fn problems_of<'a>(&'a self, field: &'a str) -> impl Iterator<Item = &'a Problem> + 'a {
        self.problems.iter().filter(move |p| p.field == field)
    }

    fn problem(
        &mut self,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.problems.push(Problem {
            field: field.into(),
            message: message.into(),
            hint: hint.into(),
        });
    }

    fn ok(&mut self, line: impl Into<String>) {
        self.checked.push(line.into());
    }
}

impl fmt::Display for Report {
    /// One line per problem (or, when there is none, one per check that passed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            writeln!(f, "pre-flight passed ({} checks):", self.checked.len())?;
            for line in &self.checked {
                writeln!(f, "  ok   {line}")?;
            }
            return Ok(());
        }
        let n = self.problems.len();
        writeln!(
            f,
            "pre-flight found {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// Checks `def` against the cloud of `session` (the project the cluster will live in) and
/// returns every problem at once. Nothing is created or changed.
///
/// Quotas (need ≤ limit − in use − reserved; a limit of −1 is unlimited; "machines" below
/// includes the rolling-update surge when [`PreflightOptions::rolling_update_surge`] is on, and a
/// worker group sized by `autoscale` counts with its `max`):
///
/// | resource | needed | source |
/// |---|---|---|
/// | `instances` | machines | Nova `GET limits`: `maxTotalInstances` / `totalInstancesUsed` |
/// | `cores` | Σ machines × flavor vCPUs | `maxTotalCores` / `totalCoresUsed` |
/// | `ram` (MiB) | Σ machines × flavor RAM | `maxTotalRAMSize` / `totalRAMUsed` |
/// | `server_groups` | `spec::render::server_groups(def).len()` | `maxServerGroups` / `totalServerGroupsUsed` |
/// | `server_group_members` | per group: its machines | `maxServerGroupMembers` |
/// | `network`, `subnet`, `router` | 1 each | Neutron `GET quotas/{project}/details` (`limit`, `used`, `reserved`) |
/// | `floatingip` | 1 (the API load balancer's VIP, or the API server without one; the router's gateway takes none) | same |
/// | `security_group` | [`SECURITY_GROUPS`] (+1 for `default` in a project without groups) | same |
/// | `security_group_rule` | [`SECURITY_GROUP_RULES`] + allowed CIDRs (+[`DEFAULT_GROUP_RULES`]) | same |
/// | `port` | machines + [`NETWORK_PORTS`] (+1 load-balancer VIP) | same |
/// | `volumes`, `gigabytes` (and `volumes_<type>`, `gigabytes_<type>`, `per_volume_gigabytes`) | machines with a root volume, Σ their sizes | Cinder `GET os-quota-sets/{project}?usage=true` (`limit`, `in_use`, `reserved`) |
/// | `load_balancer` | 1 with `network.apiServerLoadBalancer` | Octavia `GET lbaas/quotas/{project}`; in use = the project's load balancers |
///
/// Errors: a token without a project is a problem (`cloud.name`), not an error; API failures
/// (other than the checked thing being absent) are errors.
pub async fn preflight(
    session: &Session,
    def: &ClusterDefinition,
    opts: &PreflightOptions,
) -> Result<Report> {
    let mut report = Report::default();
    if def.provider != Provider::Openstack {
        report.ok(format!(
            "provider {:?}: no OpenStack cloud to check",
            def.provider
        ));
        return Ok(report);
    }
    let groups = machine_groups(def, opts);
    let has_octavia = session.has_service(&["load-balancer"]);
    let has_cinder = session.has_service(&["block-storage", "volumev3", "volume"]);
    let wants_lb = def.network.api_server_load_balancer;
    let wants_volumes = groups.iter().any(|g| g.root_volume.is_some());
    let project = session.project_id.clone();

    // Every read at once: a slow cloud answers ten calls in the time of the slowest.
    let (
        flavors,
        images,
        externals,
        zones,
        keypair,
        volume_types,
        limits,
        neutron,
        cinder,
        octavia,
    ) = tokio::try_join!(
        list_flavors(session),
        find_images(session, def.image.name.as_deref()),
        list_external_networks(session),
        list_zones(session, needs_zones(def)),
        find_keypair(session, def.cloud.ssh_key_name.as_deref()),
        list_volume_types(session, has_cinder && needs_volume_types(def)),
        nova_limits(session, project.is_some()),
        neutron_quotas(session, project.as_deref()),
        cinder_quotas(
            session,
            project.as_deref().filter(|_| has_cinder && wants_volumes)
        ),
        octavia_quota(
            session,
            project.as_deref().filter(|_| has_octavia && wants_lb)
        ),
    )?;

    let image = check_image(&mut report, def, images);
    let resolved = check_flavors(&mut report, &groups, &flavors, image.as_ref());
    check_external_network(session, &mut report, def, &externals).await?;
    check_zones(&mut report, def, zones.as_deref());
    check_keypair(&mut report, def, keypair);
    check_volume_types(&mut report, &groups, has_cinder, volume_types.as_deref());
    if wants_volumes && !has_cinder {
        for g in groups.iter().filter(|g| g.root_volume.is_some()) {
            report.problem(
                format!("{}.rootVolume", g.field),
                "the cloud has no block-storage service (Cinder) in its catalog, so machines cannot boot from volumes",
                format!("remove {}.rootVolume and pick a flavor with a disk", g.field),
            );
        }
    }
    if wants_lb && !has_octavia {
        report.problem(
            "network.apiServerLoadBalancer",
            "the cloud has no load-balancer service (Octavia) in its catalog, so the API server cannot get a load balancer",
            "set network.apiServerLoadBalancer: false (the API server then gets a floating IP on a control-plane machine)",
        );
    }

    let Some(project) = project else {
        report.problem(
            "cloud.name",
            format!(
                "the credentials of `{}` are not scoped to a project (system or domain scope): machines need a project, and its quotas cannot be checked",
                session.label
            ),
            "give the clouds.yaml entry a project_name (or project_id), or use an application credential (always project-scoped)",
        );
        return Ok(report);
    };
    let needs = Needs::of(def, &groups, &resolved);
    report.ok(needs.surge_line());
    check_compute_quotas(&mut report, &project, &needs, limits.as_ref());
    check_network_quotas(&mut report, &project, &needs, neutron.as_ref());
    if let Some(cinder) = &cinder {
        check_volume_quotas(&mut report, &project, &needs, cinder);
    }
    if let Some(lb) = octavia {
        check_quota(
            &mut report,
            &project,
            "load_balancer",
            1,
            "the API server's load balancer",
            Some(lb),
            "or set network.apiServerLoadBalancer: false",
        );
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// The cluster's machines

/// The control plane or one worker group, as far as the cloud is concerned.
#[derive(Debug, Clone)]
struct MachineGroup<'a> {
    /// `controlPlane` or `workers[i]`.
    field: String,
    /// `control plane` or `workers md-0`, for messages.
    what: String,
    /// Machines in steady state (an autoscaled group: its max).
    machines: i64,
    /// Extra machines during a rolling update.
    surge: i64,
    flavor: Option<&'a str>,
    root_volume: Option<&'a RootVolume>,
}

impl MachineGroup<'_> {
    fn total(&self) -> i64 {
        self.machines.saturating_add(self.surge)
    }
}

fn machine_groups<'a>(
    def: &'a ClusterDefinition,
    opts: &PreflightOptions,
) -> Vec<MachineGroup<'a>> {
    let surge = |machines: i64| i64::from(opts.rolling_update_surge && machines > 0);
    let cp = def.control_plane.count.max(0);
    let mut groups = vec![MachineGroup {
        field: "controlPlane".into(),
        what: "control plane".into(),
        machines: cp,
        surge: surge(cp),
        flavor: def.control_plane.flavor.as_deref(),
        root_volume: def.control_plane.root_volume.as_ref(),
    }];
    for (i, g) in def.workers.iter().enumerate() {
        // as rendered: `count`, else the autoscaler's max, else 1 replica
        let machines = g
            .count
            .or_else(|| g.autoscale.as_ref().map(|a| a.max))
            .unwrap_or(1)
            .max(0);
        groups.push(MachineGroup {
            field: format!("workers[{i}]"),
            what: format!("workers {}", g.name),
            machines,
            surge: surge(machines),
            flavor: g.flavor.as_deref(),
            root_volume: g.root_volume.as_ref(),
        });
    }
    groups
}

/// A Nova flavor, as much as we need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Flavor {
    id: String,
    name: String,
    vcpus: i64,
    /// MiB.
    ram: i64,
    /// GB of root disk; 0 = none (boot from volume only).
    disk: i64,
    disabled: bool,
}

impl Flavor {
    fn from_json(v: &Value) -> Option<Flavor> {
        Some(Flavor {
            id: v["id"].as_str()?.to_string(),
            name: v["name"].as_str()?.to_string(),
            vcpus: v["vcpus"].as_i64().unwrap_or(0),
            ram: v["ram"].as_i64().unwrap_or(0),
            disk: v["disk"].as_i64().unwrap_or(0),
            disabled: v["OS-FLV-DISABLED:disabled"].as_bool().unwrap_or(false),
        })
    }

    fn describe(&self) -> String {
        format!(
            "{} ({} vCPU, {} MiB RAM, {} GB disk)",
            self.name, self.vcpus, self.ram, self.disk
        )
    }
}

/// The active image machines boot from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageInfo {
    name: String,
    id: String,
    /// GB.
    min_disk: i64,
    /// MiB.
    min_ram: i64,
    /// GiB the image takes on a disk (its file or virtual size, whichever is larger, rounded up).
    size_gib: i64,
}

impl ImageInfo {
    /// The root disk it needs and why, e.g. `(20, "its min_disk")`.
    fn disk_need(&self) -> (i64, String) {
        if self.min_disk >= self.size_gib {
            (
                self.min_disk,
                format!("image {} has min_disk {} GB", self.name, self.min_disk),
            )
        } else {
            (
                self.size_gib,
                format!("image {} takes {} GiB", self.name, self.size_gib),
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reads

/// Every flavor the project may use (public and those shared with it), following Nova's paging.
async fn list_flavors(session: &Session) -> Result<Vec<Flavor>> {
    let mut flavors = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut call = Call::get(Service::Compute, "flavors/detail");
        if let Some(m) = &marker {
            call = call.query("marker", m.clone());
        }
        let v = session.request(&call).await?;
        let page = v["flavors"].as_array().ok_or_else(|| Error::Response {
            what: "compute GET flavors/detail".into(),
            message: "no `flavors` list in the answer".into(),
        })?;
        flavors.extend(page.iter().filter_map(Flavor::from_json));
        let next = v["flavors_links"]
            .as_array()
            .is_some_and(|links| links.iter().any(|l| l["rel"] == "next"));
        match page.last().and_then(|f| f["id"].as_str()) {
            Some(last) if next && marker.as_deref() != Some(last) => {
                marker = Some(last.to_string());
            }
            _ => return Ok(flavors),
        }
    }
}

/// Glance images named `name` (any status), or None when there is no name to look up.
async fn find_images(session: &Session, name: Option<&str>) -> Result<Option<Vec<Value>>> {
    let Some(name) = name else {
        return Ok(None);
    };
    let call = Call::get(Service::Image, "images").query("name", name);
    Ok(Some(session.list(call, "images").await?))
}

async fn list_external_networks(session: &Session) -> Result<Vec<Value>> {
    session
        .list(
            Call::get(Service::Network, "networks").query("router:external", "true"),
            "networks",
        )
        .await
}

fn needs_zones(def: &ClusterDefinition) -> bool {
    !def.cloud.availability_zones.is_empty()
        || def.workers.iter().any(|g| g.availability_zone.is_some())
}

/// The available compute zones, when the definition names any.
async fn list_zones(session: &Session, wanted: bool) -> Result<Option<Vec<String>>> {
    if !wanted {
        return Ok(None);
    }
    let zones = session
        .list(
            Call::get(Service::Compute, "os-availability-zone"),
            "availabilityZoneInfo",
        )
        .await?;
    Ok(Some(
        zones
            .iter()
            .filter(|z| z["zoneState"]["available"].as_bool().unwrap_or(true))
            .filter_map(|z| z["zoneName"].as_str().map(str::to_string))
            .collect(),
    ))
}

/// Whether the key pair exists (None when the definition names none).
async fn find_keypair(session: &Session, name: Option<&str>) -> Result<Option<bool>> {
    let Some(name) = name else {
        return Ok(None);
    };
    match session
        .request(&Call::get(Service::Compute, format!("os-keypairs/{name}")))
        .await
    {
        Ok(_) => Ok(Some(true)),
        Err(e) if e.is_not_found() => Ok(Some(false)),
        Err(e) => Err(e),
    }
}

fn needs_volume_types(def: &ClusterDefinition) -> bool {
    std::iter::once(&def.control_plane.root_volume)
        .chain(def.workers.iter().map(|g| &g.root_volume))
        .any(|v| v.as_ref().is_some_and(|v| v.volume_type.is_some()))
}

/// Cinder volume types as (id, name), when a root volume names one.
async fn list_volume_types(
    session: &Session,
    wanted: bool,
) -> Result<Option<Vec<(String, String)>>> {
    if !wanted {
        return Ok(None);
    }
    let types = session
        .list(Call::get(Service::BlockStorage, "types"), "volume_types")
        .await?;
    Ok(Some(
        types
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap_or_default().to_string(),
                    t["name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    ))
}

/// Nova's `limits.absolute` of the token's project.
async fn nova_limits(session: &Session, scoped: bool) -> Result<Option<Value>> {
    if !scoped {
        return Ok(None);
    }
    let v = session.get(Service::Compute, "limits").await?;
    match v.pointer("/limits/absolute") {
        Some(abs @ Value::Object(_)) => Ok(Some(abs.clone())),
        _ => Err(Error::Response {
            what: "compute GET limits".into(),
            message: "no `limits.absolute` in the answer".into(),
        }),
    }
}

/// Neutron's `quota` detail map (`{resource: {limit, used, reserved}}`).
async fn neutron_quotas(session: &Session, project: Option<&str>) -> Result<Option<Value>> {
    let Some(project) = project else {
        return Ok(None);
    };
    let v = session
        .get(Service::Network, &format!("quotas/{project}/details"))
        .await?;
    match v.get("quota") {
        Some(q @ Value::Object(_)) => Ok(Some(q.clone())),
        _ => Err(Error::Response {
            what: format!("network GET quotas/{project}/details"),
            message: "no `quota` in the answer".into(),
        }),
    }
}

/// Cinder's `quota_set` with usage (`{resource: {limit, in_use, reserved}}`).
async fn cinder_quotas(session: &Session, project: Option<&str>) -> Result<Option<Value>> {
    let Some(project) = project else {
        return Ok(None);
    };
    let call =
        Call::get(Service::BlockStorage, format!("os-quota-sets/{project}")).query("usage", "true");
    let v = session.request(&call).await?;
    match v.get("quota_set") {
        Some(q @ Value::Object(_)) => Ok(Some(q.clone())),
        _ => Err(Error::Response {
            what: format!("block-storage GET os-quota-sets/{project}"),
            message: "no `quota_set` in the answer".into(),
        }),
    }
}

/// Octavia's load-balancer quota; Octavia reports no usage, so in use = the project's load
/// balancers (those not being deleted).
async fn octavia_quota(session: &Session, project: Option<&str>) -> Result<Option<Quota>> {
    let Some(project) = project else {
        return Ok(None);
    };
    let v = session
        .get(Service::LoadBalancer, &format!("lbaas/quotas/{project}"))
        .await?;
    let q = &v["quota"];
    let Some(limit) = q["load_balancer"]
        .as_i64()
        .or_else(|| q["loadbalancer"].as_i64())
    else {
        // null: the deployment's default applies, which Octavia does not tell; -1 is its default
        return Ok(Some(Quota::unlimited()));
    };
    let lbs = session
        .list(
            Call::get(Service::LoadBalancer, "lbaas/loadbalancers")
                .query("project_id", project)
                .query("fields", "provisioning_status"),
            "loadbalancers",
        )
        .await?;
    let used = lbs
        .iter()
        .filter(|lb| lb["provisioning_status"] != "DELETED")
        .count();
    Ok(Some(Quota {
        limit,
        used: i64::try_from(used).unwrap_or(i64::MAX),
        reserved: 0,
    }))
}

// ---------------------------------------------------------------------------------------------
// Checks of things that must exist

fn check_image(
    report: &mut Report,
    def: &ClusterDefinition,
    images: Option<Vec<Value>>,
) -> Option<ImageInfo> {
    let url = def.image.url.as_deref();
    let (Some(name), Some(images)) = (def.image.name.as_deref(), images) else {
        report.problem(
            "image.name",
            "no image name: machines select their image by name",
            match url {
                Some(_) => "set image.name (the image at image.url is registered under it)",
                None => "set image.name to a Glance image (`openstack image list`), or image.name and image.url to have it registered",
            },
        );
        return None;
    };
    let active: Vec<&Value> = images.iter().filter(|i| i["status"] == "active").collect();
    match active.as_slice() {
        [one] => {
            let gib = |key: &str| one[key].as_i64().map_or(0, |b| (b + (1 << 30) - 1) >> 30);
            let info = ImageInfo {
                name: name.to_string(),
                id: one["id"].as_str().unwrap_or_default().to_string(),
                min_disk: one["min_disk"].as_i64().unwrap_or(0),
                min_ram: one["min_ram"].as_i64().unwrap_or(0),
                size_gib: gib("size").max(gib("virtual_size")),
            };
            report.ok(format!(
                "image {} ({}) is active (min_disk {} GB, min_ram {} MiB, {} GiB)",
                info.name, info.id, info.min_disk, info.min_ram, info.size_gib
            ));
            Some(info)
        }
        [] => {
            let others: Vec<String> = images
                .iter()
                .map(|i| {
                    format!(
                        "{} is {}",
                        i["id"].as_str().unwrap_or("?"),
                        i["status"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            if url.is_some() {
                report.ok(format!(
                    "image {name} is not in Glance yet{}; it can be registered from image.url",
                    if others.is_empty() {
                        String::new()
                    } else {
                        format!(" as an active image ({})", others.join(", "))
                    }
                ));
            } else if others.is_empty() {
                report.problem(
                    "image.name",
                    format!("no image named {name} in Glance (visible to this project)"),
                    "upload it, share it with the project, set image.name to one of `openstack image list`, or set image.url to have it registered",
                );
            } else {
                report.problem(
                    "image.name",
                    format!(
                        "image {name} exists but is not active ({})",
                        others.join(", ")
                    ),
                    "wait for the upload to finish or re-upload it, or set image.url to have it registered",
                );
            }
            None
        }
        several => {
            let ids: Vec<&str> = several.iter().filter_map(|i| i["id"].as_str()).collect();
            report.problem(
                "image.name",
                format!(
                    "{} active images are named {name} ({}); machines select the image by name and need exactly one",
                    ids.len(),
                    ids.join(", ")
                ),
                "rename or delete the extra images (or hide them: `openstack image set --hidden`), or pick a unique name",
            );
            None
        }
    }
}

/// Checks every group's flavor; returns the flavor of each group (by index) that resolved.
fn check_flavors(
    report: &mut Report,
    groups: &[MachineGroup<'_>],
    flavors: &[Flavor],
    image: Option<&ImageInfo>,
) -> BTreeMap<usize, Flavor> {
    let mut resolved = BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        let field = format!("{}.flavor", g.field);
        let Some(name) = g.flavor.filter(|f| !f.trim().is_empty()) else {
            report.problem(
                &field,
                format!("the {} has no flavor", g.what),
                format!("set {field} to one of: {}", flavor_names(flavors)),
            );
            continue;
        };
        let Some(flavor) = flavors.iter().find(|f| f.name == name) else {
            match flavors.iter().find(|f| f.id == name) {
                Some(by_id) => report.problem(
                    &field,
                    format!(
                        "{name} is the id of flavor {}, but machines select flavors by name",
                        by_id.name
                    ),
                    format!("write `flavor: {}`", by_id.name),
                ),
                None => report.problem(
                    &field,
                    format!("no flavor {name} (for the {})", g.what),
                    format!("pick one of: {}", flavor_names(flavors)),
                ),
            }
            continue;
        };
        if flavor.disabled {
            report.problem(
                &field,
                format!("flavor {name} is disabled"),
                format!("pick another one of: {}", flavor_names(flavors)),
            );
            continue;
        }
        let mut fits = true;
        match (g.root_volume, image) {
            (None, _) if flavor.disk == 0 => {
                fits = false;
                report.problem(
                    &field,
                    format!(
                        "flavor {name} has no root disk (0 GB) and the {} has no root volume",
                        g.what
                    ),
                    format!(
                        "set {}.rootVolume.sizeGib, or pick a flavor with a disk",
                        g.field
                    ),
                );
            }
            (None, Some(img)) => {
                let (need, why) = img.disk_need();
                if flavor.disk < need {
                    fits = false;
                    report.problem(
                        &field,
                        format!(
                            "flavor {name} has a {} GB disk, but {why}",
                            flavor.disk
                        ),
                        format!(
                            "pick a flavor with at least {need} GB of disk, or set {}.rootVolume.sizeGib ≥ {need}",
                            g.field
                        ),
                    );
                }
            }
            (Some(volume), Some(img)) => {
                let (need, why) = img.disk_need();
                if volume.size_gib < need {
                    fits = false;
                    report.problem(
                        format!("{}.rootVolume.sizeGib", g.field),
                        format!("the root volume has {} GiB, but {why}", volume.size_gib),
                        format!("set {}.rootVolume.sizeGib to {need} or more", g.field),
                    );
                }
            }
            _ => {}
        }
        if let Some(img) = image
            && flavor.ram < img.min_ram
        {
            fits = false;
            report.problem(
                &field,
                format!(
                    "flavor {name} has {} MiB of RAM, but image {} has min_ram {} MiB",
                    flavor.ram, img.name, img.min_ram
                ),
                format!("pick a flavor with at least {} MiB of RAM", img.min_ram),
            );
        }
        if fits {
            report.ok(format!(
                "flavor {} for the {}{}",
                flavor.describe(),
                g.what,
                match g.root_volume {
                    Some(v) => format!(", booting from a {} GiB volume", v.size_gib),
                    None => String::new(),
                }
            ));
        }
        resolved.insert(i, flavor.clone());
    }
    resolved
}

fn flavor_names(flavors: &[Flavor]) -> String {
    let mut names: Vec<&str> = flavors
        .iter()
        .filter(|f| !f.disabled)
        .map(|f| f.name.as_str())
        .collect();
    names.sort_unstable();
    if names.is_empty() {
        "(the project can use no flavor)".into()
    } else {
        names.join(", ")
    }
}

fn network_label(n: &Value) -> String {
    format!(
        "{} ({})",
        n["name"].as_str().unwrap_or_default(),
        n["id"].as_str().unwrap_or_default()
    )
}

async fn check_external_network(
    session: &Session,
    report: &mut Report,
    def: &ClusterDefinition,
    externals: &[Value],
) -> Result<()> {
    let field = "cloud.externalNetwork";
    let candidates = || {
        if externals.is_empty() {
            "none is visible to this project".to_string()
        } else {
            format!(
                "candidates: {}",
                externals
                    .iter()
                    .map(network_label)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let Some(wanted) = def.cloud.external_network.as_deref() else {
        match externals {
            [one] => report.ok(format!(
                "external network {} (the only one; cloud.externalNetwork not set)",
                network_label(one)
            )),
            [] => report.problem(
                field,
                "cloud.externalNetwork is not set and the project sees no external network (router:external) to detect",
                "ask the cloud's operators for an external network, or set cloud.externalNetwork to one shared with the project",
            ),
            several => report.problem(
                field,
                format!(
                    "cloud.externalNetwork is not set and {} external networks exist, so none can be picked",
                    several.len()
                ),
                format!("set cloud.externalNetwork to one of them ({})", candidates()),
            ),
        }
        return Ok(());
    };
    if let Some(by_id) = externals.iter().find(|n| n["id"] == wanted) {
        report.ok(format!("external network {}", network_label(by_id)));
        return Ok(());
    }
    let named: Vec<&Value> = externals.iter().filter(|n| n["name"] == wanted).collect();
    match named.as_slice() {
        [one] => {
            report.ok(format!("external network {}", network_label(one)));
            return Ok(());
        }
        [] => {}
        several => {
            report.problem(
                field,
                format!(
                    "{} external networks are named {wanted}: {}",
                    several.len(),
                    several
                        .iter()
                        .map(|n| network_label(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "set cloud.externalNetwork to the id of the one to use",
            );
            return Ok(());
        }
    }
    // Not external, or not there at all? Tell which.
    let mut others = session
        .list(
            Call::get(Service::Network, "networks").query("name", wanted),
            "networks",
        )
        .await?;
    if others.is_empty() {
        match session
            .get(Service::Network, &format!("networks/{wanted}"))
            .await
        {
            Ok(v) => others.extend(v.get("network").cloned()),
            Err(e) if e.is_not_found() || e.status() == Some(400) => {}
            Err(e) => return Err(e),
        }
    }
    if others.is_empty() {
        report.problem(
            field,
            format!("no network {wanted} (by name or id)"),
            format!(
                "set cloud.externalNetwork to an external network ({})",
                candidates()
            ),
        );
    } else {
        report.problem(
            field,
            format!(
                "network {} is not external (router:external is false): a router cannot use it as gateway",
                others.iter().map(network_label).collect::<Vec<_>>().join(", ")
            ),
            format!("set cloud.externalNetwork to an external network ({})", candidates()),
        );
    }
    Ok(())
}

fn check_zones(report: &mut Report, def: &ClusterDefinition, zones: Option<&[String]>) {
    let Some(zones) = zones else {
        return;
    };
    let wanted = def
        .cloud
        .availability_zones
        .iter()
        .enumerate()
        .map(|(i, z)| (format!("cloud.availabilityZones[{i}]"), z))
        .chain(def.workers.iter().enumerate().filter_map(|(i, g)| {
            g.availability_zone
                .as_ref()
                .map(|z| (format!("workers[{i}].availabilityZone"), z))
        }));
    for (field, zone) in wanted {
        if zones.contains(zone) {
            report.ok(format!("availability zone {zone} ({field})"));
        } else {
            report.problem(
                field,
                format!("no available compute availability zone {zone}"),
                format!(
                    "use one of: {}",
                    if zones.is_empty() {
                        "(none available)".to_string()
                    } else {
                        zones.join(", ")
                    }
                ),
            );
        }
    }
}

fn check_keypair(report: &mut Report, def: &ClusterDefinition, found: Option<bool>) {
    let (Some(name), Some(found)) = (def.cloud.ssh_key_name.as_deref(), found) else {
        return;
    };
    if found {
        report.ok(format!("key pair {name}"));
    } else {
        report.problem(
            "cloud.sshKeyName",
            format!("no key pair {name} for this user (key pairs belong to the user, not the project)"),
            format!("create it (`openstack keypair create --public-key FILE {name}`) as this user, or remove cloud.sshKeyName"),
        );
    }
}

fn check_volume_types(
    report: &mut Report,
    groups: &[MachineGroup<'_>],
    has_cinder: bool,
    types: Option<&[(String, String)]>,
) {
    let Some(types) = types.filter(|_| has_cinder) else {
        return;
    };
    for g in groups {
        let Some(wanted) = g.root_volume.and_then(|v| v.volume_type.as_deref()) else {
            continue;
        };
        if types
            .iter()
            .any(|(id, name)| name == wanted || id == wanted)
        {
            report.ok(format!("volume type {wanted} ({}.rootVolume)", g.field));
        } else {
            let mut names: Vec<&str> = types.iter().map(|(_, n)| n.as_str()).collect();
            names.sort_unstable();
            report.problem(
                format!("{}.rootVolume.volumeType", g.field),
                format!("no volume type {wanted}"),
                format!(
                    "use one of: {}, or leave volumeType out for the cloud's default",
                    names.join(", ")
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quotas

/// One quota: limit (−1 unlimited), in use, reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    limit: i64,
    used: i64,
    reserved: i64,
}

impl Quota {
    fn unlimited() -> Self {
        Self {
            limit: -1,
            used: 0,
            reserved: 0,
        }
    }

    /// What is left, None when unlimited.
    fn left(&self) -> Option<i64> {
        (self.limit >= 0).then(|| self.limit - self.used - self.reserved)
    }

    /// From Nova's `limits.absolute` (`max` and `used` keys; Nova reserves nothing).
    fn nova(abs: &Value, max: &str, used: Option<&str>) -> Option<Quota> {
        Some(Quota {
            limit: abs.get(max)?.as_i64()?,
            used: used.and_then(|k| abs.get(k)?.as_i64()).unwrap_or(0),
            reserved: 0,
        })
    }

    /// From a `{limit, <used_key>, reserved}` detail (Neutron: `used`, Cinder: `in_use`).
    fn detail(map: &Value, resource: &str, used_key: &str) -> Option<Quota> {
        let d = map.get(resource)?;
        Some(Quota {
            limit: d.get("limit")?.as_i64()?,
            used: d.get(used_key).and_then(Value::as_i64).unwrap_or(0),
            reserved: d.get("reserved").and_then(Value::as_i64).unwrap_or(0),
        })
    }
}

/// Compares one need with its quota: a problem when it does not fit, a checked line when it does.
fn check_quota(
    report: &mut Report,
    project: &str,
    resource: &str,
    need: i64,
    breakdown: &str,
    quota: Option<Quota>,
    alternative: &str,
) {
    if need <= 0 {
        return;
    }
    let Some(q) = quota else {
        report.ok(format!(
            "{resource}: needs {need} ({breakdown}); the cloud reports no quota for it"
        ));
        return;
    };
    let Some(left) = q.left() else {
        report.ok(format!("{resource}: needs {need} ({breakdown}); unlimited"));
        return;
    };
    if need <= left {
        report.ok(format!(
            "{resource}: needs {need} ({breakdown}), {left} left of {}",
            q.limit
        ));
        return;
    }
    let reserved = if q.reserved > 0 {
        format!(", {} reserved", q.reserved)
    } else {
        String::new()
    };
    let short = need - left.max(0);
    let free = if q.used > 0 {
        format!(", free {} of the {} in use", short.min(q.used), q.used)
    } else {
        String::new()
    };
    report.problem(
        format!("quota.{resource}"),
        format!(
            "{resource}: needs {need} ({breakdown}), {} left of {} ({} in use{reserved})",
            left.max(0),
            q.limit,
            q.used
        ),
        format!(
            "ask the cloud's operators to raise the {resource} quota of project {project} to at least {}{free}{}{alternative}",
            q.used + q.reserved + need,
            if alternative.is_empty() { "" } else { ", " },
        ),
    );
}

/// What the cluster needs, with the breakdowns messages show.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Needs {
    instances: i64,
    instances_why: String,
    cores: i64,
    cores_why: String,
    ram: i64,
    ram_why: String,
    server_groups: i64,
    /// Per server group: name, members needed, why.
    members: Vec<(String, i64, String)>,
    volumes: i64,
    gigabytes: i64,
    volumes_why: String,
    /// Per volume type: (type, volumes, gigabytes).
    by_type: BTreeMap<String, (i64, i64)>,
    /// Largest root volume, GiB.
    largest_volume: i64,
    floating_ips: i64,
    ports: i64,
    ports_why: String,
    extra_rules: i64,
    surge: i64,
    load_balancer: bool,
}

impl Needs {
    fn of(
        def: &ClusterDefinition,
        groups: &[MachineGroup<'_>],
        flavors: &BTreeMap<usize, Flavor>,
    ) -> Needs {
        let total: i64 = groups.iter().map(MachineGroup::total).sum();
        let surge: i64 = groups.iter().map(|g| g.surge).sum();
        let cp = groups.first().map_or(0, |g| g.machines);
        let workers: i64 = groups.iter().skip(1).map(|g| g.machines).sum();
        let mut instances_why = format!("{cp} control plane + {workers} workers");
        if surge > 0 {
            instances_why.push_str(&format!(" + {surge} rolling-update surge"));
        }

        let per_flavor = |unit: &str, value: fn(&Flavor) -> i64| {
            let mut sum = 0i64;
            let mut parts = Vec::new();
            let mut unknown = Vec::new();
            for (i, g) in groups.iter().enumerate() {
                if g.total() == 0 {
                    continue;
                }
                match flavors.get(&i) {
                    Some(f) => {
                        sum = sum.saturating_add(g.total().saturating_mul(value(f)));
                        parts.push(format!(
                            "{} {} × {}{unit} {}",
                            g.total(),
                            g.what,
                            value(f),
                            f.name
                        ));
                    }
                    None => unknown.push(g.field.clone()),
                }
            }
            let mut why = parts.join(" + ");
            if !unknown.is_empty() {
                why.push_str(&format!(
                    "{}not counting {} (flavor unknown)",
                    if parts.is_empty() { "" } else { "; " },
                    unknown.join(", ")
                ));
            }
            (sum, why)
        };
        let (cores, cores_why) = per_flavor("", |f| f.vcpus);
        let (ram, ram_why) = per_flavor(" MiB", |f| f.ram);

        let server_groups = spec::render::server_groups(def);
        let members = server_groups
            .iter()
            .zip(groups)
            .map(|(sg, g)| {
                let why = if g.surge > 0 {
                    format!("{} {} + {} surge", g.machines, g.what, g.surge)
                } else {
                    format!("{} {}", g.machines, g.what)
                };
                (sg.name.clone(), g.total(), why)
            })
            .collect();

        let mut volumes = 0;
        let mut gigabytes = 0i64;
        let mut largest_volume = 0;
        let mut by_type: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut parts = Vec::new();
        for g in groups {
            let Some(v) = g.root_volume else { continue };
            if g.total() == 0 {
                continue;
            }
            volumes += g.total();
            let gb = g.total().saturating_mul(v.size_gib);
            gigabytes = gigabytes.saturating_add(gb);
            largest_volume = largest_volume.max(v.size_gib);
            if let Some(t) = &v.volume_type {
                let e = by_type.entry(t.clone()).or_default();
                e.0 += g.total();
                e.1 = e.1.saturating_add(gb);
            }
            parts.push(format!("{} {} × {} GiB", g.total(), g.what, v.size_gib));
        }

        let load_balancer = def.network.api_server_load_balancer;
        let ports = total + NETWORK_PORTS + i64::from(load_balancer);
        let ports_why = format!(
            "{total} machines + router interface + DHCP{}",
            if load_balancer {
                " + load-balancer VIP"
            } else {
                ""
            }
        );
        Needs {
            instances: total,
            instances_why,
            cores,
            cores_why,
            ram,
            ram_why,
            server_groups: i64::try_from(server_groups.len()).unwrap_or(i64::MAX),
            members,
            volumes,
            gigabytes,
            volumes_why: parts.join(" + "),
            by_type,
            largest_volume,
            floating_ips: 1,
            ports,
            ports_why,
            extra_rules: i64::try_from(def.network.api_server_allowed_cidrs.len())
                .unwrap_or(i64::MAX),
            surge,
            load_balancer,
        }
    }

    fn surge_line(&self) -> String {
        if self.surge > 0 {
            format!(
                "quotas counted with the rolling-update surge: {} extra machine{} (1 for the control plane, 1 per worker group)",
                self.surge,
                if self.surge == 1 { "" } else { "s" }
            )
        } else {
            "quotas counted without a rolling-update surge".to_string()
        }
    }
}

const SMALLER: &str =
    "or make the cluster smaller (controlPlane.count, workers[].count/autoscale.max)";

fn check_compute_quotas(report: &mut Report, project: &str, needs: &Needs, limits: Option<&Value>) {
    let Some(abs) = limits else { return };
    check_quota(
        report,
        project,
        "instances",
        needs.instances,
        &needs.instances_why,
        Quota::nova(abs, "maxTotalInstances", Some("totalInstancesUsed")),
        SMALLER,
    );
    check_quota(
        report,
        project,
        "cores",
        needs.cores,
        &needs.cores_why,
        Quota::nova(abs, "maxTotalCores", Some("totalCoresUsed")),
        "or pick smaller flavors or make the cluster smaller (controlPlane.count, workers[].count/autoscale.max)",
    );
    check_quota(
        report,
        project,
        "ram",
        needs.ram,
        &format!("MiB: {}", needs.ram_why),
        Quota::nova(abs, "maxTotalRAMSize", Some("totalRAMUsed")),
        "or pick smaller flavors or make the cluster smaller (controlPlane.count, workers[].count/autoscale.max)",
    );
    check_quota(
        report,
        project,
        "server_groups",
        needs.server_groups,
        "one per machine group, for anti-affinity",
        Quota::nova(abs, "maxServerGroups", Some("totalServerGroupsUsed")),
        "or set antiAffinity.enabled: false",
    );
    if let Some(max) = Quota::nova(abs, "maxServerGroupMembers", None)
        && max.limit >= 0
    {
        let mut fits = true;
        for (name, need, why) in &needs.members {
            if *need > max.limit {
                fits = false;
                report.problem(
                    "quota.server_group_members",
                    format!(
                        "server_group_members: server group {name} needs {need} members ({why}), the limit is {} per group",
                        max.limit
                    ),
                    format!(
                        "ask the cloud's operators to raise the server_group_members quota of project {project} to at least {need}, make the group smaller, or set antiAffinity.enabled: false"
                    ),
                );
            }
        }
        if fits && !needs.members.is_empty() {
            let most = needs.members.iter().map(|m| m.1).max().unwrap_or(0);
            report.ok(format!(
                "server_group_members: at most {most} per group, limit {}",
                max.limit
            ));
        }
    }
}

fn check_network_quotas(
    report: &mut Report,
    project: &str,
    needs: &Needs,
    neutron: Option<&Value>,
) {
    let Some(q) = neutron else { return };
    let get = |r: &str| Quota::detail(q, r, "used");
    for (resource, why) in [
        ("network", "the cluster network"),
        ("subnet", "the node subnet"),
        ("router", "the cluster router"),
    ] {
        check_quota(report, project, resource, 1, why, get(resource), "");
    }
    check_quota(
        report,
        project,
        "floatingip",
        needs.floating_ips,
        if needs.load_balancer {
            "the API load balancer's VIP"
        } else {
            "the API server"
        },
        get("floatingip"),
        "",
    );
    let sg = get("security_group");
    let fresh = sg.is_some_and(|q| q.used == 0);
    let (groups, groups_why) = if fresh {
        (
            SECURITY_GROUPS + 1,
            "CAPO control plane, worker, bastion + CNI + the project's `default` group Neutron creates on first use",
        )
    } else {
        (SECURITY_GROUPS, "CAPO control plane, worker, bastion + CNI")
    };
    check_quota(
        report,
        project,
        "security_group",
        groups,
        groups_why,
        sg,
        "",
    );
    let mut rules = SECURITY_GROUP_RULES + needs.extra_rules;
    let mut rules_why = format!("estimate: {SECURITY_GROUP_RULES} for 4 groups");
    if needs.extra_rules > 0 {
        rules_why.push_str(&format!(" + {} allowed CIDRs", needs.extra_rules));
    }
    if fresh {
        rules += DEFAULT_GROUP_RULES;
        rules_why.push_str(&format!(" + {DEFAULT_GROUP_RULES} of the `default` group"));
    }
    check_quota(
        report,
        project,
        "security_group_rule",
        rules,
        &rules_why,
        get("security_group_rule"),
        "",
    );
    check_quota(
        report,
        project,
        "port",
        needs.ports,
        &needs.ports_why,
        get("port"),
        SMALLER,
    );
}

fn check_volume_quotas(report: &mut Report, project: &str, needs: &Needs, cinder: &Value) {
    let get = |r: &str| Quota::detail(cinder, r, "in_use");
    let smaller =
        "or boot fewer machine groups from volumes (rootVolume), or make the cluster smaller";
    check_quota(
        report,
        project,
        "volumes",
        needs.volumes,
        &format!("root volumes: {}", needs.volumes_why),
        get("volumes"),
        smaller,
    );
    check_quota(
        report,
        project,
        "gigabytes",
        needs.gigabytes,
        &format!("GiB of root volumes: {}", needs.volumes_why),
        get("gigabytes"),
        "or use smaller root volumes",
    );
    for (t, (volumes, gb)) in &needs.by_type {
        // only enforced when the quota set has a per-type entry
        if let Some(q) = get(&format!("volumes_{t}")) {
            check_quota(
                report,
                project,
                &format!("volumes_{t}"),
                *volumes,
                &format!("root volumes of type {t}"),
                Some(q),
                smaller,
            );
        }
        if let Some(q) = get(&format!("gigabytes_{t}")) {
            check_quota(
                report,
                project,
                &format!("gigabytes_{t}"),
                *gb,
                &format!("GiB of root volumes of type {t}"),
                Some(q),
                "or use smaller root volumes",
            );
        }
    }
    if let Some(q) = get("per_volume_gigabytes")
        && q.limit >= 0
        && needs.largest_volume > q.limit
    {
        report.problem(
            "quota.per_volume_gigabytes",
            format!(
                "per_volume_gigabytes: the largest root volume has {} GiB, the limit is {} per volume",
                needs.largest_volume, q.limit
            ),
            format!(
                "use root volumes of at most {} GiB, or ask the cloud's operators to raise per_volume_gigabytes of project {project}",
                q.limit
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn def(yaml: &str) -> ClusterDefinition {
        let loaded = spec::load_sources(
            "pf",
            &[spec::Source {
                path: "clusters/pf/cluster.yaml".into(),
                text: yaml.into(),
            }],
        )
        .unwrap();
        loaded.definition
    }

    const BASE: &str = "kubernetesVersion: v1.33.4\nimage: {name: img}\ncontrolPlane: {count: 3, flavor: small}\nworkers:\n  - {name: a, count: 3, flavor: big}\n  - {name: b, autoscale: {min: 0, max: 4}, flavor: big, rootVolume: {sizeGib: 50, volumeType: ssd}}\n  - {name: c, count: 0, flavor: big}\n";

    fn flavor(name: &str, vcpus: i64, ram: i64, disk: i64) -> Flavor {
        Flavor {
            id: format!("id-{name}"),
            name: name.into(),
            vcpus,
            ram,
            disk,
            disabled: false,
        }
    }

    #[test]
    fn needs_count_surge_autoscale_max_and_flavors() {
        let d = def(BASE);
        let opts = PreflightOptions::default();
        let groups = machine_groups(&d, &opts);
        assert_eq!(
            groups
                .iter()
                .map(|g| (g.machines, g.surge))
                .collect::<Vec<_>>(),
            vec![(3, 1), (3, 1), (4, 1), (0, 0)]
        );
        let mut flavors = BTreeMap::new();
        flavors.insert(0, flavor("small", 2, 4096, 20));
        flavors.insert(1, flavor("big", 4, 8192, 40));
        // group 2 (workers[1]) has no resolved flavor: not counted in cores/ram, and said so
        let n = Needs::of(&d, &groups, &flavors);
        assert_eq!(n.instances, 13);
        assert_eq!(
            n.instances_why,
            "3 control plane + 7 workers + 3 rolling-update surge"
        );
        assert_eq!(n.cores, 4 * 2 + 4 * 4);
        assert_eq!(n.ram, 4 * 4096 + 4 * 8192);
        assert!(
            n.cores_why.contains("not counting workers[1]"),
            "{}",
            n.cores_why
        );
        assert_eq!(n.server_groups, 4);
        assert_eq!(
            n.members[2],
            ("pf-b".to_string(), 5, "4 workers b + 1 surge".to_string())
        );
        assert_eq!((n.volumes, n.gigabytes, n.largest_volume), (5, 250, 50));
        assert_eq!(n.by_type.get("ssd"), Some(&(5, 250)));
        assert_eq!(n.ports, 13 + NETWORK_PORTS + 1);

        let off = PreflightOptions {
            rolling_update_surge: false,
        };
        let n = Needs::of(&d, &machine_groups(&d, &off), &flavors);
        assert_eq!(n.instances, 10);
        assert_eq!(n.instances_why, "3 control plane + 7 workers");
    }

    #[test]
    fn quota_arithmetic_and_messages() {
        let mut r = Report::default();
        let q = Quota {
            limit: 10,
            used: 6,
            reserved: 2,
        };
        check_quota(
            &mut r,
            "p",
            "instances",
            7,
            "3 control plane + 4 workers",
            Some(q),
            SMALLER,
        );
        check_quota(&mut r, "p", "cores", 2, "x", Some(q), SMALLER);
        check_quota(
            &mut r,
            "p",
            "ram",
            1 << 40,
            "x",
            Some(Quota::unlimited()),
            SMALLER,
        );
        check_quota(&mut r, "p", "port", 0, "x", Some(q), SMALLER);
        assert_eq!(r.problems.len(), 1, "{r}");
        let p = &r.problems[0];
        assert_eq!(p.field, "quota.instances");
        assert_eq!(
            p.message,
            "instances: needs 7 (3 control plane + 4 workers), 2 left of 10 (6 in use, 2 reserved)"
        );
        assert!(p.hint.contains("to at least 15"), "{}", p.hint);
        assert_eq!(r.checked.len(), 2);
        let text = r.to_string();
        assert!(text.starts_with("pre-flight found 1 problem:\n"), "{text}");
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn quota_sources_parse() {
        let abs =
            json!({"maxTotalInstances": 10, "totalInstancesUsed": 3, "maxServerGroupMembers": -1});
        assert_eq!(
            Quota::nova(&abs, "maxTotalInstances", Some("totalInstancesUsed")),
            Some(Quota {
                limit: 10,
                used: 3,
                reserved: 0
            })
        );
        assert_eq!(
            Quota::nova(&abs, "maxServerGroupMembers", None)
                .unwrap()
                .left(),
            None
        );
        let neutron = json!({"port": {"limit": 50, "used": 4, "reserved": 1}});
        assert_eq!(
            Quota::detail(&neutron, "port", "used").unwrap().left(),
            Some(45)
        );
        let cinder = json!({"volumes": {"limit": 10, "in_use": 2, "reserved": 0}});
        assert_eq!(
            Quota::detail(&cinder, "volumes", "in_use").unwrap().left(),
            Some(8)
        );
        assert_eq!(Quota::detail(&cinder, "gigabytes", "in_use"), None);
    }

    #[test]
    fn flavors_must_fit_the_image() {
        let d = def(
            "kubernetesVersion: v1.33.4\nimage: {name: img}\ncontrolPlane: {count: 1, flavor: nodisk}\nworkers:\n  - {name: a, count: 1, flavor: tiny}\n  - {name: b, count: 1, flavor: '7'}\n  - {name: c, count: 1, flavor: nodisk, rootVolume: {sizeGib: 5}}\n",
        );
        let groups = machine_groups(&d, &PreflightOptions::default());
        let flavors = vec![
            flavor("nodisk", 1, 1024, 0),
            flavor("tiny", 1, 256, 1),
            Flavor {
                id: "7".into(),
                ..flavor("big", 8, 8192, 80)
            },
        ];
        let image = ImageInfo {
            name: "img".into(),
            id: "i".into(),
            min_disk: 10,
            min_ram: 512,
            size_gib: 2,
        };
        let mut r = Report::default();
        let resolved = check_flavors(&mut r, &groups, &flavors, Some(&image));
        let fields: Vec<&str> = r.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "controlPlane.flavor",
                "workers[0].flavor",
                "workers[0].flavor",
                "workers[1].flavor",
                "workers[2].rootVolume.sizeGib"
            ],
            "{r}"
        );
        assert!(r.problems[1].message.contains("min_disk 10 GB"), "{r}");
        assert!(r.problems[2].message.contains("min_ram 512 MiB"), "{r}");
        assert!(r.problems[3].hint.contains("flavor: big"), "{r}");
        // resolved ones still count for cores/ram
        assert_eq!(resolved.keys().copied().collect::<Vec<_>>(), vec![0, 1, 3]);
    }
}
