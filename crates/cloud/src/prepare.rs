//! Preparing a project for a cluster, before Cluster API creates anything: the security group the
//! CNI needs between nodes, the anti-affinity server groups the machine templates name, and the
//! node image (registered in Glance when the definition gives a URL).
//!
//! Every step finds first and creates only what is missing, so a second run creates nothing and
//! returns the same ids:
//!
//! - the security group is found by its exact name ([`cni_security_group_name`]) in the project and
//!   must carry [`MANAGED_TAG`] and the cluster's tag (one left untagged by an interrupted run is
//!   recognised by its exact description and tagged); its rules are compared by what they allow
//!   (direction, ethertype, protocol, ports, remote group), and only rules whose description marks
//!   them as ours (`manage: <rule>`) are ever removed;
//! - server groups have neither tags nor descriptions: a group is ours by its exact name, as the
//!   rendered machine templates filter on it. Two groups with that name are an error (never a
//!   guess);
//! - an image is looked up by its exact name. One we did not register is used as it is and never
//!   changed; one we registered gets the cluster's tag added (clusters share images). A copy left
//!   `queued` by an interrupted upload is deleted and registered again.
//!
//! Resources with tags get [`MANAGED_TAG`] and [`ClusterIdentity::tag`].

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use spec::model::{ClusterDefinition, Cni, ImageFormat, Provider};

use crate::api::{Call, Service};
use crate::connect::Session;
use crate::error::{Error, Result};
use crate::identity::{ClusterIdentity, MANAGED_TAG};

/// Prefix of the description of every security group rule we create: `manage: <rule name>`.
/// Only rules with it are ever deleted.
pub const RULE_DESCRIPTION_PREFIX: &str = "manage: ";

/// The largest image [`prepare`] reads into memory (2 GiB): the upload goes through one request
/// body. Bigger images must be registered beforehand (`openstack image create --file`) and named
/// by `image.name` without `image.url`.
pub const MAX_IMAGE_BYTES: u64 = 2 << 30;

/// Name of the cluster's CNI security group: `k8s-<namespace>-<cluster>-cni`, unique per
/// namespace and cluster (like CAPO's `k8s-cluster-<namespace>-<cluster>-secgroup-<role>`). The
/// one name the rendered machine templates filter on ([`spec::render::names::cni_security_group`]).
pub fn cni_security_group_name(id: &ClusterIdentity) -> String {
    spec::render::names::cni_security_group(&id.namespace, &id.name)
}

pub use spec::render::{CniRule, cni_rules};

/// The description of `rule` in Neutron: `manage: <name>`.
///
/// The rules themselves ([`cni_rules`], shared with the renderer): Cilium VXLAN (udp 8472),
/// health checks (tcp 4240), Hubble (tcp 4244), ICMP; Calico BGP (tcp 179), IP-in-IP (IP protocol
/// 4), VXLAN (udp 4789), Typha (tcp 5473). All ingress, IPv4, from members of the group itself.
/// IPv4 only: the node subnet CAPO creates from `network.nodeCidr` is IPv4, so node-to-node
/// traffic (which carries the encapsulated pod traffic) never uses IPv6.
pub fn rule_description(rule: &CniRule) -> String {
    format!("{RULE_DESCRIPTION_PREFIX}{}", rule.name)
}

/// Image metadata the definition does not carry: what the image is (SCS-0102 properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    /// `os_distro` (default `ubuntu`).
    pub os_distro: String,
    /// `os_version` (default `22.04`).
    pub os_version: String,
    /// `architecture` (default `x86_64`).
    pub architecture: String,
    /// `hypervisor_type` (default `kvm`; `None` leaves it out).
    pub hypervisor_type: Option<String>,
    /// `hw_disk_bus` (default `scsi`, as SCS recommends).
    pub hw_disk_bus: Option<String>,
    /// `hw_scsi_model` (default `virtio-scsi`).
    pub hw_scsi_model: Option<String>,
    /// `hw_rng_model` (default `virtio`).
    pub hw_rng_model: Option<String>,
    /// `image_original_user`: the image's login user (default `ubuntu`).
    pub original_user: String,
    /// `image_build_date` (`YYYY-MM-DD`); default: the day of registration (UTC).
    pub build_date: Option<String>,
    /// `image_description`; default: a sentence naming the Kubernetes version and the URL.
    pub description: Option<String>,
    /// `min_ram` in MiB (default: unset; Nova then takes any flavor).
    pub min_ram_mib: Option<u64>,
}

impl Default for ImageMeta {
    fn default() -> Self {
        Self {
            os_distro: "ubuntu".into(),
            os_version: "22.04".into(),
            architecture: "x86_64".into(),
            hypervisor_type: Some("kvm".into()),
            hw_disk_bus: Some("scsi".into()),
            hw_scsi_model: Some("virtio-scsi".into()),
            hw_rng_model: Some("virtio".into()),
            original_user: "ubuntu".into(),
            build_date: None,
            description: None,
            min_ram_mib: None,
        }
    }
}

/// Options of [`prepare`].
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// Properties of an image we register.
    pub image: ImageMeta,
    /// Largest image read into memory (default [`MAX_IMAGE_BYTES`]).
    pub max_image_bytes: u64,
    /// How long downloading the image from an `http(s)://` URL may take (default 30 min).
    pub download_timeout: Duration,
    /// How long to wait for an image to become `active` (default 10 min).
    pub image_timeout: Duration,
    /// Pause between status polls (default 2 s).
    pub poll_interval: Duration,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            image: ImageMeta::default(),
            max_image_bytes: MAX_IMAGE_BYTES,
            download_timeout: Duration::from_secs(30 * 60),
            image_timeout: Duration::from_secs(10 * 60),
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// What happened to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Created by this run.
    Created,
    /// Found as wanted; nothing changed.
    Existing,
    /// Found and brought in line (rules added or removed, tags added).
    Updated,
    /// Found with the wrong policy and no members: deleted and created again.
    Replaced,
    /// Found, but not registered by us: used as it is, never changed.
    Foreign,
}

impl Outcome {
    /// Whether this run changed anything in the cloud.
    pub fn changed(self) -> bool {
        matches!(
            self,
            Outcome::Created | Outcome::Updated | Outcome::Replaced
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Existing => "exists",
            Outcome::Updated => "updated",
            Outcome::Replaced => "replaced",
            Outcome::Foreign => "exists (not ours, used as is)",
        })
    }
}

/// The CNI security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroupReport {
    /// Neutron id.
    pub id: String,
    /// Name ([`cni_security_group_name`]).
    pub name: String,
    /// What happened to the group itself (`Updated` when only rules or tags changed).
    pub outcome: Outcome,
    /// Ids of the rules the CNI needs, in [`cni_rules`] order.
    pub rule_ids: Vec<String>,
    /// Rules created by this run (names).
    pub rules_added: Vec<String>,
    /// Our rules removed by this run because the CNI no longer needs them (descriptions).
    pub rules_removed: Vec<String>,
}

/// One anti-affinity server group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerGroupReport {
    /// Nova id.
    pub id: String,
    /// Name (as the machine templates filter on it).
    pub name: String,
    /// Nova policy.
    pub policy: String,
    /// What happened.
    pub outcome: Outcome,
}

/// The node image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReport {
    /// Glance id.
    pub id: String,
    /// Name.
    pub name: String,
    /// What happened (`Updated`: our image, the cluster's tag added).
    pub outcome: Outcome,
}

/// What [`prepare`] found or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The CNI security group.
    pub security_group: SecurityGroupReport,
    /// The server groups (empty when anti-affinity is off).
    pub server_groups: Vec<ServerGroupReport>,
    /// The image, when the definition gives `image.url`.
    pub image: Option<ImageReport>,
}

impl Prepared {
    /// Whether this run changed anything in the cloud.
    pub fn changed(&self) -> bool {
        self.security_group.outcome.changed()
            || self.server_groups.iter().any(|g| g.outcome.changed())
            || self.image.as_ref().is_some_and(|i| i.outcome.changed())
    }
}

impl fmt::Display for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sg = &self.security_group;
        write!(f, "security group {} ({}): {}", sg.name, sg.id, sg.outcome)?;
        if !sg.rules_added.is_empty() {
            write!(f, "; rules added: {}", sg.rules_added.join(", "))?;
        }
        if !sg.rules_removed.is_empty() {
            write!(f, "; rules removed: {}", sg.rules_removed.join(", "))?;
        }
        for g in &self.server_groups {
            write!(
                f,
                "\nserver group {} ({}, {}): {}",
                g.name, g.id, g.policy, g.outcome
            )?;
        }
        if let Some(i) = &self.image {
            write!(f, "\nimage {} ({}): {}", i.name, i.id, i.outcome)?;
        }
        Ok(())
    }
}

/// Prepares the project of `session` for the cluster `def`: the CNI security group, the
/// anti-affinity server groups and (when `image.url` is set) the node image. Idempotent: a second
/// run creates nothing and returns the same ids.
///
/// The three run concurrently and each runs to its end even when another fails: a request
/// abandoned in flight is still carried out by the service (Nova commits a dropped server-group
/// create up to a second later), and a rerun racing with it would create a duplicate. The first
/// failure (security group, server groups, image, in this order) is returned; the others are
/// logged.
pub async fn prepare(
    session: &Session,
    def: &ClusterDefinition,
    opts: &PrepareOptions,
) -> Result<Prepared> {
    if def.provider != Provider::Openstack {
        return Err(Error::Invalid(format!(
            "cluster {}: provider is not openstack; there is nothing to prepare in a cloud",
            def.name
        )));
    }
    let id = ClusterIdentity::of(def);
    let (security_group, server_groups, image) = tokio::join!(
        ensure_cni_security_group(session, &id, def.network.cni),
        ensure_server_groups(session, def),
        ensure_image(session, def, &id, opts),
    );
    match (security_group, server_groups, image) {
        (Ok(security_group), Ok(server_groups), Ok(image)) => Ok(Prepared {
            security_group,
            server_groups,
            image,
        }),
        (sg, groups, image) => {
            let mut errors = [sg.err(), groups.err(), image.err()].into_iter().flatten();
            let first = errors
                .next()
                .ok_or_else(|| Error::Invalid("prepare: failed without an error".into()))?;
            for other in errors {
                tracing::error!(cluster = %def.name, error = %other, "preparing failed as well");
            }
            Err(first)
        }
    }
}

// ---------------------------------------------------------------- security group

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn id_of(v: &Value, what: &str) -> Result<String> {
    v["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Response {
            what: what.to_string(),
            message: "no `id` in the answer".into(),
        })
}

fn has_tag(v: &Value, tag: &str) -> bool {
    v["tags"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag)))
}

/// Neutron accepts protocol names and numbers and echoes what it was given; compare numbers.
fn protocol_number(p: Option<&str>) -> String {
    match p.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("any") => "any".into(),
        Some("icmp") => "1".into(),
        Some("tcp") => "6".into(),
        Some("udp") => "17".into(),
        Some("ipip") => "4".into(),
        Some("icmpv6") | Some("ipv6-icmp") => "58".into(),
        Some(other) => other.to_string(),
    }
}

/// Whether the Neutron rule `r` allows what `want` asks for, from members of group `sg_id`.
fn rule_matches(r: &Value, want: &CniRule, sg_id: &str) -> bool {
    let port = want.port.map(u64::from);
    str_of(r, "direction") == "ingress"
        && str_of(r, "ethertype") == "IPv4"
        && protocol_number(r["protocol"].as_str()) == protocol_number(Some(want.protocol))
        && r["port_range_min"].as_u64() == port
        && r["port_range_max"].as_u64() == port
        && r["remote_group_id"].as_str() == Some(sg_id)
        && r["remote_ip_prefix"].is_null()
}

async fn add_neutron_tags(
    session: &Session,
    collection: &str,
    id: &str,
    tags: &[&str],
) -> Result<()> {
    for tag in tags {
        session
            .request_raw(&Call::new(
                http::Method::PUT,
                Service::Network,
                format!("{collection}/{id}/tags/{tag}"),
            ))
            .await?;
    }
    Ok(())
}

/// Finds or creates the cluster's CNI security group and makes its rules exactly what `cni` needs
/// (among the rules we own).
pub async fn ensure_cni_security_group(
    session: &Session,
    id: &ClusterIdentity,
    cni: Cni,
) -> Result<SecurityGroupReport> {
    let name = cni_security_group_name(id);
    let description = id.description("CNI traffic");
    let cluster_tag = id.tag();
    let tags = [MANAGED_TAG, cluster_tag.as_str()];

    let mut list = Call::get(Service::Network, "security-groups").query("name", &name);
    if let Some(project) = &session.project_id {
        list = list.query("project_id", project);
    }
    let found = session.list(list, "security_groups").await?;
    let (ours, others): (Vec<&Value>, Vec<&Value>) = found
        .iter()
        .filter(|g| str_of(g, "name") == name)
        .partition(|g| has_tag(g, MANAGED_TAG) && id.tagged(g));
    // created by an interrupted run before it could tag: our exact description, no tags of ours
    let (untagged_ours, foreign): (Vec<&Value>, Vec<&Value>) = others
        .into_iter()
        .partition(|g| str_of(g, "description") == description);
    let candidates: Vec<&Value> = ours.iter().chain(untagged_ours.iter()).copied().collect();
    if !foreign.is_empty() {
        let ids: Vec<&str> = foreign.iter().map(|g| str_of(g, "id")).collect();
        return Err(Error::Invalid(format!(
            "security group {name} exists ({}) but was not created by manage for cluster {}/{} (no tags {MANAGED_TAG} and {cluster_tag}); delete or rename it, since the machines select the group by this name",
            ids.join(", "),
            id.namespace,
            id.name
        )));
    }
    let (mut group, mut outcome) = match candidates.as_slice() {
        [] => {
            let created = session
                .request(&Call::post(
                    Service::Network,
                    "security-groups",
                    json!({"security_group": {"name": name, "description": description}}),
                ))
                .await?;
            let group = created["security_group"].clone();
            let gid = id_of(&group, "network POST security-groups")?;
            if let Err(e) = add_neutron_tags(session, "security-groups", &gid, &tags).await {
                // leave nothing anonymous behind; the next run would otherwise adopt it by its
                // description, which is fine too, so a failed delete is not an error of its own
                let _ = session
                    .delete_if_exists(Service::Network, &format!("security-groups/{gid}"))
                    .await;
                return Err(e);
            }
            (group, Outcome::Created)
        }
        [one] => {
            let gid = id_of(one, "network GET security-groups")?;
            let missing: Vec<&str> = tags.iter().copied().filter(|t| !has_tag(one, t)).collect();
            let outcome = if missing.is_empty() {
                Outcome::Existing
            } else {
                add_neutron_tags(session, "security-groups", &gid, &missing).await?;
                Outcome::Updated
            };
            ((*one).clone(), outcome)
        }
        many => {
            let ids: Vec<&str> = many.iter().map(|g| str_of(g, "id")).collect();
            return Err(Error::Invalid(format!(
                "{} security groups are named {name} for cluster {}/{}: {}; delete all but one",
                many.len(),
                id.namespace,
                id.name,
                ids.join(", ")
            )));
        }
    };
    let gid = id_of(&group, "security group")?;
    if group["security_group_rules"].as_array().is_none() {
        group = session
            .get(Service::Network, &format!("security-groups/{gid}"))
            .await?["security_group"]
            .clone();
    }
    let existing: Vec<Value> = group["security_group_rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();

    let wanted = cni_rules(cni);
    let mut rule_ids = Vec::with_capacity(wanted.len());
    let mut rules_added = Vec::new();
    for rule in wanted {
        if let Some(r) = existing.iter().find(|r| rule_matches(r, rule, &gid)) {
            rule_ids.push(str_of(r, "id").to_string());
            continue;
        }
        let mut body = Map::new();
        body.insert("security_group_id".into(), gid.clone().into());
        body.insert("direction".into(), "ingress".into());
        body.insert("ethertype".into(), "IPv4".into());
        body.insert("protocol".into(), rule.protocol.into());
        if let Some(port) = rule.port {
            body.insert("port_range_min".into(), port.into());
            body.insert("port_range_max".into(), port.into());
        }
        body.insert("remote_group_id".into(), gid.clone().into());
        body.insert("description".into(), rule_description(rule).into());
        let call = Call::post(
            Service::Network,
            "security-group-rules",
            json!({ "security_group_rule": body }),
        );
        match session.request(&call).await {
            Ok(v) => {
                rule_ids.push(id_of(
                    &v["security_group_rule"],
                    "network POST security-group-rules",
                )?);
                rules_added.push(rule.name.to_string());
            }
            // another run created it between our read and our write
            Err(e) if e.status() == Some(409) => {
                let now = session
                    .list(
                        Call::get(Service::Network, "security-group-rules")
                            .query("security_group_id", &gid),
                        "security_group_rules",
                    )
                    .await?;
                let r = now.iter().find(|r| rule_matches(r, rule, &gid)).ok_or(e)?;
                rule_ids.push(str_of(r, "id").to_string());
            }
            Err(e) => return Err(e),
        }
    }
    let mut rules_removed = Vec::new();
    for r in &existing {
        let desc = str_of(r, "description");
        if desc.starts_with(RULE_DESCRIPTION_PREFIX)
            && !wanted.iter().any(|w| rule_matches(r, w, &gid))
        {
            let rid = str_of(r, "id");
            session
                .delete_if_exists(Service::Network, &format!("security-group-rules/{rid}"))
                .await?;
            rules_removed.push(desc.to_string());
        }
    }
    if outcome == Outcome::Existing && (!rules_added.is_empty() || !rules_removed.is_empty()) {
        outcome = Outcome::Updated;
    }
    Ok(SecurityGroupReport {
        id: gid,
        name,
        outcome,
        rule_ids,
        rules_added,
        rules_removed,
    })
}

// ---------------------------------------------------------------- server groups

/// Nova microversion of our server-group calls: 2.64 has `policy` (one string) and `rules`.
const SERVER_GROUP_MICROVERSION: (u8, u8) = (2, 64);

fn server_group_call(call: Call) -> Call {
    call.microversion(SERVER_GROUP_MICROVERSION.0, SERVER_GROUP_MICROVERSION.1)
}

async fn list_server_groups(session: &Session) -> Result<Vec<Value>> {
    const PAGE: usize = 500;
    let mut all = Vec::new();
    loop {
        let page = session
            .list(
                server_group_call(Call::get(Service::Compute, "os-server-groups"))
                    .query("limit", PAGE.to_string())
                    .query("offset", all.len().to_string()),
                "server_groups",
            )
            .await?;
        let n = page.len();
        all.extend(page);
        if n < PAGE {
            return Ok(all);
        }
    }
}

async fn create_server_group(session: &Session, name: &str, policy: &str) -> Result<String> {
    let v = session
        .request(&server_group_call(Call::post(
            Service::Compute,
            "os-server-groups",
            json!({"server_group": {"name": name, "policy": policy}}),
        )))
        .await?;
    id_of(&v["server_group"], "compute POST os-server-groups")
}

/// Finds or creates the server groups of `def` ([`spec::render::server_groups`]): exact name,
/// exact policy. A group with the wrong policy is replaced when it has no members; with members it
/// is an error (Nova cannot change a group's policy, and servers cannot leave their group).
pub async fn ensure_server_groups(
    session: &Session,
    def: &ClusterDefinition,
) -> Result<Vec<ServerGroupReport>> {
    let wanted = spec::render::server_groups(def);
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let existing = list_server_groups(session).await?;
    let mut reports = Vec::with_capacity(wanted.len());
    for w in wanted {
        let same: Vec<&Value> = existing
            .iter()
            .filter(|g| str_of(g, "name") == w.name)
            .collect();
        let report = match same.as_slice() {
            [] => ServerGroupReport {
                id: create_server_group(session, &w.name, w.policy).await?,
                name: w.name,
                policy: w.policy.to_string(),
                outcome: Outcome::Created,
            },
            [g] => {
                let gid = id_of(g, "compute GET os-server-groups")?;
                let policy = str_of(g, "policy");
                if policy == w.policy {
                    ServerGroupReport {
                        id: gid,
                        name: w.name,
                        policy: w.policy.to_string(),
                        outcome: Outcome::Existing,
                    }
                } else {
                    let members: Vec<&str> = g["members"]
                        .as_array()
                        .map(|m| m.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if !members.is_empty() {
                        return Err(Error::Invalid(format!(
                            "server group {} ({gid}) has policy {policy}, the definition wants {}; Nova cannot change the policy of a group, and it has {} member server(s) ({}) that cannot leave it. Set antiAffinity back to {policy}, or replace those machines after deleting the group",
                            w.name,
                            w.policy,
                            members.len(),
                            members.join(", ")
                        )));
                    }
                    session
                        .delete_if_exists(Service::Compute, &format!("os-server-groups/{gid}"))
                        .await?;
                    ServerGroupReport {
                        id: create_server_group(session, &w.name, w.policy).await?,
                        name: w.name,
                        policy: w.policy.to_string(),
                        outcome: Outcome::Replaced,
                    }
                }
            }
            many => {
                let ids: Vec<&str> = many.iter().map(|g| str_of(g, "id")).collect();
                return Err(Error::Invalid(format!(
                    "{} server groups are named {}: {}; the machines select one by name, so delete all but one (one without members)",
                    many.len(),
                    w.name,
                    ids.join(", ")
                )));
            }
        };
        reports.push(report);
    }
    Ok(reports)
}

// ---------------------------------------------------------------- image

/// Finds or registers the node image of `def` when `image.url` is set (`None` otherwise).
///
/// An active image named `image.name` is used: ours (tagged [`MANAGED_TAG`], owned by the
/// session's project) gets the cluster's tag added, anyone else's is used untouched. Otherwise the
/// file is read (`http(s)://`, `file:///…` or a local path, at most
/// [`PrepareOptions::max_image_bytes`]), checked against `image.sha256` before anything is
/// created, registered with SCS-0102 metadata and uploaded, and waited for until `active`.
///
/// Limits: the file is held in memory (about twice, while the request body is built), and the
/// upload is one request bounded by the session's HTTP timeout (`CloudSelector::timeout`, 60 s by
/// default), which a large image over a slow link needs raised.
pub async fn ensure_image(
    session: &Session,
    def: &ClusterDefinition,
    id: &ClusterIdentity,
    opts: &PrepareOptions,
) -> Result<Option<ImageReport>> {
    let Some(url) = def.image.url.as_deref() else {
        return Ok(None);
    };
    let Some(name) = def.image.name.as_deref() else {
        return Err(Error::Invalid(format!(
            "cluster {}: image.url is set but image.name is not; the image is registered under image.name",
            def.name
        )));
    };
    let expected_sha = match def.image.sha256.as_deref() {
        Some(s) => Some(parse_sha256(s)?),
        None => None,
    };
    let cluster_tag = id.tag();
    let deadline = Instant::now() + opts.image_timeout;

    loop {
        let images = list_images(session, name).await?;
        let mine = |i: &Value| {
            has_tag(i, MANAGED_TAG)
                && session
                    .project_id
                    .as_deref()
                    .is_none_or(|p| str_of(i, "owner") == p)
        };
        let active: Vec<&Value> = images
            .iter()
            .filter(|i| str_of(i, "status") == "active")
            .collect();
        match active.as_slice() {
            [one] => {
                let iid = id_of(one, "image GET images")?;
                let outcome = if !mine(one) {
                    Outcome::Foreign
                } else if has_tag(one, &cluster_tag) {
                    Outcome::Existing
                } else {
                    add_image_tag(session, &iid, &cluster_tag).await?;
                    Outcome::Updated
                };
                return Ok(Some(ImageReport {
                    id: iid,
                    name: name.to_string(),
                    outcome,
                }));
            }
            [] => {}
            many => {
                let ids: Vec<&str> = many.iter().map(|i| str_of(i, "id")).collect();
                return Err(Error::Invalid(format!(
                    "{} active images are named {name}: {}; the machines select the image by name, so remove or rename all but one",
                    many.len(),
                    ids.join(", ")
                )));
            }
        }
        // No active image: what else carries the name?
        let foreign: Vec<&Value> = images.iter().filter(|i| !mine(i)).collect();
        if !foreign.is_empty() {
            let list: Vec<String> = foreign
                .iter()
                .map(|i| format!("{} ({})", str_of(i, "id"), str_of(i, "status")))
                .collect();
            return Err(Error::Invalid(format!(
                "image {name} exists but is not active and was not registered by manage: {}; delete it or pick another image.name (a second image with that name would make the machines' lookup ambiguous)",
                list.join(", ")
            )));
        }
        let mut busy = Vec::new();
        for i in &images {
            let iid = str_of(i, "id");
            match str_of(i, "status") {
                // an interrupted upload: start over
                "queued" | "killed" => {
                    tracing::info!(image = %iid, name, "deleting an image left by an interrupted upload");
                    session
                        .delete_if_exists(Service::Image, &format!("images/{iid}"))
                        .await?;
                }
                "saving" | "importing" | "uploading" => busy.push(iid.to_string()),
                "deactivated" => {
                    return Err(Error::Invalid(format!(
                        "image {name} ({iid}) is deactivated; reactivate it (openstack image set --activate) or delete it"
                    )));
                }
                _ => {}
            }
        }
        if busy.is_empty() {
            break;
        }
        // another run is uploading right now: wait for it rather than upload twice
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!(
                    "image {name} ({}) to finish uploading; if no other run is uploading it, delete it",
                    busy.join(", ")
                ),
                seconds: opts.image_timeout.as_secs(),
            });
        }
        tokio::time::sleep(opts.poll_interval).await;
    }

    let data = read_image(url, opts).await?;
    if let Some(expected) = &expected_sha {
        let actual = hex(&Sha256::digest(&data));
        if &actual != expected {
            return Err(Error::Invalid(format!(
                "image {url}: SHA-256 is {actual}, image.sha256 says {expected}; nothing was uploaded (a changed or corrupted download, or an outdated checksum)"
            )));
        }
    }
    let virtual_size = virtual_size(&data, def.image.format)
        .map_err(|why| Error::Invalid(format!("image {url}: {why}")))?;
    let body = image_create_body(name, url, def, id, &opts.image, virtual_size);
    let created = session
        .request(&Call::post(Service::Image, "images", body))
        .await?;
    let iid = id_of(&created, "image POST images")?;
    let uploaded = async {
        session
            .request_raw(
                &Call::new(
                    http::Method::PUT,
                    Service::Image,
                    format!("images/{iid}/file"),
                )
                .body("application/octet-stream", data),
            )
            .await?;
        wait_active(session, &iid, name, opts).await
    }
    .await;
    if let Err(e) = uploaded {
        // the next run would delete a queued copy anyway; try now so a failure leaves nothing
        let _ = session
            .delete_if_exists(Service::Image, &format!("images/{iid}"))
            .await;
        return Err(e);
    }
    Ok(Some(ImageReport {
        id: iid,
        name: name.to_string(),
        outcome: Outcome::Created,
    }))
}

async fn list_images(session: &Session, name: &str) -> Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut call = Call::get(Service::Image, "images")
            .query("name", name)
            .query("limit", "100");
        if let Some(m) = &marker {
            call = call.query("marker", m);
        }
        let v = session.request(&call).await?;
        let page = v["images"].as_array().cloned().unwrap_or_default();
        let last = page.last().map(|i| str_of(i, "id").to_string());
        let more = v["next"].is_string() && !page.is_empty();
        all.extend(page.into_iter().filter(|i| str_of(i, "name") == name));
        match (more, last) {
            (true, Some(l)) => marker = Some(l),
            _ => return Ok(all),
        }
    }
}

async fn add_image_tag(session: &Session, image: &str, tag: &str) -> Result<()> {
    session
        .request_raw(&Call::new(
            http::Method::PUT,
            Service::Image,
            format!("images/{image}/tags/{tag}"),
        ))
        .await
        .map(|_| ())
}

async fn wait_active(
    session: &Session,
    iid: &str,
    name: &str,
    opts: &PrepareOptions,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let v = session
            .get(Service::Image, &format!("images/{iid}"))
            .await?;
        match str_of(&v, "status") {
            "active" => return Ok(()),
            s @ ("killed" | "deleted" | "deactivated") => {
                return Err(Error::Invalid(format!(
                    "image {name} ({iid}) went to status {s} after the upload"
                )));
            }
            _ => {}
        }
        if started.elapsed() >= opts.image_timeout {
            return Err(Error::Timeout {
                what: format!("image {name} ({iid}) to become active"),
                seconds: opts.image_timeout.as_secs(),
            });
        }
        tokio::time::sleep(opts.poll_interval).await;
    }
}

/// The body of `POST images`: format, our tags, `min_disk` from the image's virtual size, and the
/// SCS-0102 image metadata.
fn image_create_body(
    name: &str,
    url: &str,
    def: &ClusterDefinition,
    id: &ClusterIdentity,
    meta: &ImageMeta,
    virtual_size: u64,
) -> Value {
    let gib = 1u64 << 30;
    let mut b = Map::new();
    b.insert("name".into(), name.into());
    b.insert(
        "disk_format".into(),
        match def.image.format {
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Raw => "raw",
        }
        .into(),
    );
    b.insert("container_format".into(), "bare".into());
    b.insert("visibility".into(), "private".into());
    b.insert("tags".into(), json!([MANAGED_TAG, id.tag()]));
    b.insert("min_disk".into(), virtual_size.div_ceil(gib).max(1).into());
    if let Some(ram) = meta.min_ram_mib {
        b.insert("min_ram".into(), ram.into());
    }
    let mut prop = |k: &str, v: &str| {
        b.insert(k.into(), v.into());
    };
    prop("os_distro", &meta.os_distro);
    prop("os_version", &meta.os_version);
    prop("architecture", &meta.architecture);
    for (k, v) in [
        ("hypervisor_type", &meta.hypervisor_type),
        ("hw_disk_bus", &meta.hw_disk_bus),
        ("hw_scsi_model", &meta.hw_scsi_model),
        ("hw_rng_model", &meta.hw_rng_model),
    ] {
        if let Some(v) = v {
            prop(k, v);
        }
    }
    prop("image_source", url);
    let description = meta.description.clone().unwrap_or_else(|| {
        format!(
            "Kubernetes {} node image for Cluster API, registered by manage from {url}",
            def.kubernetes_version
        )
    });
    prop("image_description", &description);
    prop("image_original_user", &meta.original_user);
    let build_date = meta
        .build_date
        .clone()
        .unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d").to_string());
    prop("image_build_date", &build_date);
    prop("replace_frequency", "never");
    prop("uuid_validity", "none");
    prop("provided_until", "none");
    prop("kubernetes_version", &def.kubernetes_version);
    Value::Object(b)
}

fn parse_sha256(s: &str) -> Result<String> {
    let s = s.trim();
    let s = s.strip_prefix("sha256:").unwrap_or(s).to_ascii_lowercase();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s)
    } else {
        Err(Error::Invalid(format!(
            "image.sha256 `{s}` is not a SHA-256 (64 hex digits)"
        )))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The disk size the image needs: a qcow2's virtual size from its header, a raw image's length.
fn virtual_size(data: &[u8], format: ImageFormat) -> std::result::Result<u64, String> {
    match format {
        ImageFormat::Raw => Ok(data.len() as u64),
        ImageFormat::Qcow2 => {
            if data.len() < 32 || &data[..4] != b"QFI\xfb" {
                return Err("not a qcow2 image (no QFI\\xfb magic); if it is raw, set image.format: raw; a compressed download must be unpacked first".into());
            }
            let mut size = [0u8; 8];
            size.copy_from_slice(&data[24..32]);
            Ok(u64::from_be_bytes(size))
        }
    }
}

/// Reads the image at `url` (`http://`, `https://`, `file://` or a local path) into memory, at most
/// `opts.max_image_bytes`.
async fn read_image(url: &str, opts: &PrepareOptions) -> Result<Vec<u8>> {
    let limit = opts.max_image_bytes;
    let too_big = |size: u64| {
        Error::Invalid(format!(
            "image {url} is {size} bytes, more than the {limit} bytes manage uploads from memory; register it yourself (openstack image create --file) and give only image.name"
        ))
    };
    if url.starts_with("http://") || url.starts_with("https://") {
        return download(url, limit, opts.download_timeout, too_big).await;
    }
    let path = match url.strip_prefix("file://") {
        Some(p) if p.starts_with('/') => p,
        Some(_) => {
            return Err(Error::Invalid(format!(
                "image.url {url}: only file:///absolute/path is supported for file URLs"
            )));
        }
        None if url.contains("://") => {
            return Err(Error::Invalid(format!(
                "image.url {url}: unsupported scheme (http://, https://, file:// or a local path)"
            )));
        }
        None => url,
    };
    let io = |source| Error::Io {
        path: path.to_string(),
        source,
    };
    let meta = tokio::fs::metadata(path).await.map_err(io)?;
    if meta.len() > limit {
        return Err(too_big(meta.len()));
    }
    tokio::fs::read(path).await.map_err(io)
}

async fn download(
    url: &str,
    limit: u64,
    timeout: Duration,
    too_big: impl Fn(u64) -> Error,
) -> Result<Vec<u8>> {
    let failed = |message: String| Error::Response {
        what: format!("download {url}"),
        message,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let mut rsp = client
        .get(url)
        .send()
        .await
        .map_err(|e| failed(crate::error::chain(&e)))?;
    let status = rsp.status();
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    if let Some(len) = rsp.content_length()
        && len > limit
    {
        return Err(too_big(len));
    }
    let mut data = Vec::with_capacity(
        rsp.content_length()
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(0),
    );
    while let Some(chunk) = rsp
        .chunk()
        .await
        .map_err(|e| failed(crate::error::chain(&e)))?
    {
        if (data.len() + chunk.len()) as u64 > limit {
            return Err(too_big((data.len() + chunk.len()) as u64));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rules() {
        let id = ClusterIdentity::new("prod", "fleet");
        assert_eq!(cni_security_group_name(&id), "k8s-fleet-prod-cni");
        let cilium = cni_rules(Cni::Cilium);
        assert_eq!(cilium.len(), 4);
        assert_eq!(rule_description(&cilium[0]), "manage: cilium-vxlan");
        let calico = cni_rules(Cni::Calico);
        assert!(calico.iter().any(|r| r.protocol == "4" && r.port.is_none()));
    }

    #[test]
    fn rules_compare_by_what_they_allow() {
        let want = CniRule {
            name: "calico-ipip",
            protocol: "4",
            port: None,
        };
        let r = json!({"direction": "ingress", "ethertype": "IPv4", "protocol": "ipip",
            "port_range_min": null, "port_range_max": null, "remote_group_id": "g", "remote_ip_prefix": null});
        assert!(rule_matches(&r, &want, "g"));
        assert!(!rule_matches(&r, &want, "other"));
        let tcp = CniRule {
            name: "x",
            protocol: "tcp",
            port: Some(179),
        };
        let r = json!({"direction": "ingress", "ethertype": "IPv4", "protocol": "6",
            "port_range_min": 179, "port_range_max": 179, "remote_group_id": "g"});
        assert!(rule_matches(&r, &tcp, "g"));
        let wider = json!({"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "port_range_min": 1, "port_range_max": 65535, "remote_group_id": "g"});
        assert!(!rule_matches(&wider, &tcp, "g"));
    }

    #[test]
    fn qcow2_virtual_size_and_checksums() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[24..32].copy_from_slice(&(3u64 << 30).to_be_bytes());
        assert_eq!(virtual_size(&h, ImageFormat::Qcow2), Ok(3 << 30));
        assert!(virtual_size(b"plain bytes here, not a qcow2 image", ImageFormat::Qcow2).is_err());
        assert_eq!(virtual_size(b"abc", ImageFormat::Raw), Ok(3));
        let sum = "A".repeat(64);
        assert_eq!(
            parse_sha256(&format!("sha256:{sum}")).ok(),
            Some("a".repeat(64))
        );
        assert!(parse_sha256("abc").is_err());
    }
}
