//! Semantic checks of a typed definition: values of the right type that still cannot work
//! (an even etcd member count, overlapping CIDRs, duplicate node groups, …). Each problem names its
//! field path; the loader turns paths into file positions.

use crate::diag::Kind;
use crate::model::{ClusterDefinition, Provider};
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;

/// One problem: field path, kind, message, hint.
pub type Problem = (String, Kind, String, Option<String>);

/// All problems of `def`, in no particular order; empty when it is valid.
pub fn validate(def: &ClusterDefinition) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    names(def, &mut p);
    version(def, &mut p);
    openstack(def, &mut p);
    control_plane(def, &mut p);
    workers(def, &mut p);
    network(def, &mut p);
    owners(def, &mut p);
    addons(def, &mut p);
    p.0
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(
        &mut self,
        path: impl Into<String>,
        kind: Kind,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let hint = hint.into();
        self.0.push((
            path.into(),
            kind,
            msg.into(),
            (!hint.is_empty()).then_some(hint),
        ));
    }
}

/// DNS-1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric.
pub fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Longest cluster name: machine names add up to ~22 characters and must stay host names (63).
pub const MAX_CLUSTER_NAME: usize = 40;

fn names(def: &ClusterDefinition, p: &mut Problems) {
    if !is_dns_label(&def.name, MAX_CLUSTER_NAME) {
        p.add(
            "name",
            Kind::InvalidValue,
            format!("{:?} is not a valid cluster name", def.name),
            format!("use at most {MAX_CLUSTER_NAME} lower-case letters, digits and '-', starting and ending with a letter or digit"),
        );
    }
    if let Some(ns) = &def.namespace
        && !is_dns_label(ns, 63)
    {
        p.add(
            "namespace",
            Kind::InvalidValue,
            format!("{ns:?} is not a valid namespace name"),
            "use lower-case letters, digits and '-' (at most 63)",
        );
    }
}

/// Parses `vMAJOR.MINOR.PATCH[-pre][+build]` (the `v` optional) into its numbers.
pub fn parse_kubernetes_version(s: &str) -> Option<(u64, u64, u64)> {
    let core = s.strip_prefix('v').unwrap_or(s);
    let core = core.split(['-', '+']).next()?;
    let mut it = core.split('.');
    let num = |x: Option<&str>| -> Option<u64> {
        let x = x?;
        if x.is_empty()
            || !x.bytes().all(|b| b.is_ascii_digit())
            || (x.len() > 1 && x.starts_with('0'))
        {
            return None;
        }
        x.parse().ok()
    };
    let v = (num(it.next())?, num(it.next())?, num(it.next())?);
    it.next().is_none().then_some(v)
}

fn version(def: &ClusterDefinition, p: &mut Problems) {
    match parse_kubernetes_version(&def.kubernetes_version) {
        None => p.add(
            "kubernetesVersion",
            Kind::InvalidValue,
            format!("{:?} is not a Kubernetes version", def.kubernetes_version),
            "write vMAJOR.MINOR.PATCH, e.g. v1.33.4",
        ),
        Some((1, minor, _)) if minor < 28 => p.add(
            "kubernetesVersion",
            Kind::InvalidValue,
            format!(
                "{} is older than Cluster API supports",
                def.kubernetes_version
            ),
            "use v1.28.0 or newer",
        ),
        Some((1, _, _)) => {}
        Some(_) => p.add(
            "kubernetesVersion",
            Kind::InvalidValue,
            format!("{:?}: only Kubernetes 1.x exists", def.kubernetes_version),
            "write v1.MINOR.PATCH, e.g. v1.33.4",
        ),
    }
}

fn openstack(def: &ClusterDefinition, p: &mut Problems) {
    if def.provider != Provider::Openstack {
        return;
    }
    if def.cloud.name.trim().is_empty() {
        p.add(
            "cloud.name",
            Kind::InvalidValue,
            "the clouds.yaml entry is empty",
            "name the entry of clouds.yaml that holds this cluster's credentials",
        );
    }
    if def
        .image
        .name
        .as_deref()
        .is_none_or(|n| n.trim().is_empty())
    {
        p.add(
            "image.name",
            Kind::MissingField,
            "an image name is required on OpenStack",
            "set `image.name` to a Glance image (and `image.url` to have it registered)",
        );
    }
    if let Some(url) = &def.image.url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        p.add(
            "image.url",
            Kind::InvalidValue,
            format!("{url:?} is not an http(s) URL"),
            "give the https:// address of the image file",
        );
    }
    if let Some(sum) = &def.image.sha256
        && !(sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        p.add(
            "image.sha256",
            Kind::InvalidValue,
            "not a SHA-256 digest",
            "64 hexadecimal characters",
        );
    }
    if def
        .control_plane
        .flavor
        .as_deref()
        .is_none_or(|f| f.trim().is_empty())
    {
        p.add(
            "controlPlane.flavor",
            Kind::MissingField,
            "a flavor is required on OpenStack",
            "set `controlPlane.flavor` (e.g. in clusters/defaults.yaml for all clusters)",
        );
    }
    for (i, ip) in def.cloud.dns_servers.iter().enumerate() {
        if ip.parse::<IpAddr>().is_err() {
            p.add(
                format!("cloud.dnsServers[{i}]"),
                Kind::InvalidValue,
                format!("{ip:?} is not an IP address"),
                "write an IPv4 or IPv6 address",
            );
        }
    }
    let mut zones = HashSet::new();
    for (i, z) in def.cloud.availability_zones.iter().enumerate() {
        if !zones.insert(z) {
            p.add(
                format!("cloud.availabilityZones[{i}]"),
                Kind::Conflict,
                format!("availability zone {z:?} is listed twice"),
                "list each zone once",
            );
        }
    }
}

fn control_plane(def: &ClusterDefinition, p: &mut Problems) {
    let n = def.control_plane.count;
    if n < 1 {
        p.add(
            "controlPlane.count",
            Kind::InvalidValue,
            format!("{n} control-plane machines cannot run a cluster"),
            "use 1, 3 or 5",
        );
    } else if n % 2 == 0 {
        p.add(
            "controlPlane.count",
            Kind::InvalidValue,
            format!("{n} control-plane machines: etcd needs an odd number to keep quorum"),
            format!(
                "use {} or {} (an even count tolerates no more failures than one less)",
                n - 1,
                n + 1
            ),
        );
    } else if n > 7 {
        p.add(
            "controlPlane.count",
            Kind::InvalidValue,
            format!("{n} etcd members make writes slow"),
            "use 1, 3, 5 or 7",
        );
    }
    if let Some(rv) = &def.control_plane.root_volume {
        root_volume("controlPlane.rootVolume", rv.size_gib, p);
    }
}

fn root_volume(path: &str, size: i64, p: &mut Problems) {
    if size < 1 {
        p.add(
            format!("{path}.sizeGib"),
            Kind::InvalidValue,
            format!("a root volume of {size} GiB"),
            "give the size in GiB, at least 1 (20 or more for a node)",
        );
    }
}

fn workers(def: &ClusterDefinition, p: &mut Problems) {
    let mut seen = HashSet::new();
    for (i, g) in def.workers.iter().enumerate() {
        let at = format!("workers[{i}]");
        if !is_dns_label(&g.name, 20) {
            p.add(
                format!("{at}.name"),
                Kind::InvalidValue,
                format!("{:?} is not a valid node group name", g.name),
                "use at most 20 lower-case letters, digits and '-'",
            );
        }
        if g.name == "control-plane" {
            p.add(
                format!("{at}.name"),
                Kind::InvalidValue,
                "the name `control-plane` is reserved for the control plane's machines",
                "pick another name, e.g. `md-0`",
            );
        }
        if !seen.insert(g.name.as_str()) {
            p.add(
                format!("{at}.name"),
                Kind::Conflict,
                format!("node group {:?} is defined twice", g.name),
                "give each node group its own name",
            );
        }
        match (g.count, &g.autoscale) {
            (Some(_), Some(_)) => p.add(
                format!("{at}.autoscale"),
                Kind::Conflict,
                "both `count` and `autoscale` are set",
                "keep `count` for a fixed size, or `autoscale` for a range",
            ),
            (None, None) => p.add(
                format!("{at}.count"),
                Kind::MissingField,
                format!("node group {:?} has no size", g.name),
                "set `count: 3`, or `autoscale: {min: 1, max: 5}`",
            ),
            (Some(c), None) if c < 0 => p.add(
                format!("{at}.count"),
                Kind::InvalidValue,
                format!("count {c} is negative"),
                "use 0 or more machines",
            ),
            (None, Some(a)) => {
                if a.min < 0 {
                    p.add(
                        format!("{at}.autoscale.min"),
                        Kind::InvalidValue,
                        format!("min {} is negative", a.min),
                        "use 0 or more",
                    );
                }
                if a.max < a.min.max(1) {
                    p.add(
                        format!("{at}.autoscale.max"),
                        Kind::InvalidValue,
                        format!("max {} is below min {} (or below 1)", a.max, a.min),
                        "max must be at least min and at least 1",
                    );
                }
            }
            _ => {}
        }
        if def.provider == Provider::Openstack
            && g.flavor.as_deref().is_none_or(|f| f.trim().is_empty())
        {
            p.add(
                format!("{at}.flavor"),
                Kind::MissingField,
                format!("node group {:?} has no flavor", g.name),
                "set `flavor:` on the group",
            );
        }
        if let (Some(az), false) = (
            &g.availability_zone,
            def.cloud.availability_zones.is_empty(),
        ) && !def.cloud.availability_zones.contains(az)
        {
            p.add(
                format!("{at}.availabilityZone"),
                Kind::InvalidValue,
                format!("{az:?} is not one of the cluster's availability zones"),
                format!("use one of: {}", def.cloud.availability_zones.join(", ")),
            );
        }
        if let Some(rv) = &g.root_volume {
            root_volume(&format!("{at}.rootVolume"), rv.size_gib, p);
        }
        for key in g.labels.keys() {
            if let Err(why) = label_key(key) {
                p.add(
                    format!("{at}.labels.{key}"),
                    Kind::InvalidValue,
                    format!("label {key:?}: {why}"),
                    "use a qualified name such as `node.cluster.x-k8s.io/pool` or `team`",
                );
            }
        }
        for (j, t) in g.taints.iter().enumerate() {
            if qualified_name(&t.key).is_err() {
                p.add(
                    format!("{at}.taints[{j}].key"),
                    Kind::InvalidValue,
                    format!("{:?} is not a valid taint key", t.key),
                    "use a qualified name such as `dedicated` or `example.com/gpu`",
                );
            }
        }
    }
}

/// Kubelets may only set labels outside the kubernetes.io/k8s.io domains, or under their node.* and
/// node-restriction.* sub-domains (NodeRestriction admission).
fn label_key(key: &str) -> Result<(), &'static str> {
    qualified_name(key)?;
    if let Some((prefix, _)) = key.split_once('/') {
        let reserved = prefix == "kubernetes.io"
            || prefix.ends_with(".kubernetes.io")
            || prefix == "k8s.io"
            || prefix.ends_with(".k8s.io");
        let allowed = prefix == "node.kubernetes.io" || prefix == "node-restriction.kubernetes.io";
        if reserved && !allowed {
            return Err("kubelets may not set labels in the kubernetes.io or k8s.io domains");
        }
    }
    Ok(())
}

fn qualified_name(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !p.split('.').all(|l| is_dns_label(l, 63)))
    {
        return Err("the prefix before '/' must be a DNS subdomain");
    }
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .as_bytes()
            .last()
            .is_some_and(u8::is_ascii_alphanumeric);
    if ok {
        Ok(())
    } else {
        Err("the name must be 1-63 alphanumerics, '-', '_' or '.'")
    }
}

fn network(def: &ClusterDefinition, p: &mut Problems) {
    let n = &def.network;
    let mut cidrs: Vec<(&str, IpNet)> = Vec::new();
    for (path, value) in [
        ("network.nodeCidr", &n.node_cidr),
        ("network.podCidr", &n.pod_cidr),
        ("network.serviceCidr", &n.service_cidr),
    ] {
        match value.parse::<IpNet>() {
            Ok(net) if net != net.trunc() => p.add(
                path,
                Kind::InvalidValue,
                format!("{value} has host bits set"),
                format!("write the network address: {}", net.trunc()),
            ),
            Ok(net) => cidrs.push((path, net)),
            Err(_) => p.add(
                path,
                Kind::InvalidValue,
                format!("{value:?} is not a CIDR"),
                "write a network such as 10.8.0.0/20",
            ),
        }
    }
    for (i, (pa, a)) in cidrs.iter().enumerate() {
        for (pb, b) in &cidrs[i + 1..] {
            if a.contains(&b.network()) || b.contains(&a.network()) {
                p.add(
                    *pb,
                    Kind::Conflict,
                    format!("{b} overlaps {pa} {a}"),
                    "node, pod and service CIDRs must not share addresses",
                );
            }
        }
    }
    for (path, net) in &cidrs {
        let (bits, limit, what) = match *path {
            "network.podCidr" => (
                net.prefix_len(),
                if net.addr().is_ipv4() { 23 } else { 112 },
                "each node takes a /24 of the pod CIDR",
            ),
            "network.serviceCidr" => (
                u8::MAX - net.prefix_len(),
                u8::MAX - if net.addr().is_ipv4() { 12 } else { 108 },
                "the API server accepts at most a /12 (IPv4) or /108 (IPv6)",
            ),
            _ => (
                net.prefix_len(),
                if net.addr().is_ipv4() { 29 } else { 125 },
                "the node subnet needs room for machines and the load balancer",
            ),
        };
        if bits > limit {
            p.add(
                *path,
                Kind::InvalidValue,
                format!("{net} is the wrong size"),
                what,
            );
        }
    }
    if let Some(mtu) = n.mtu
        && !(1280..=9216).contains(&mtu)
    {
        p.add(
            "network.mtu",
            Kind::InvalidValue,
            format!("MTU {mtu} is out of range"),
            "use 1280 to 9216, or leave it out for the cloud's default",
        );
    }
    let mut allowed = HashSet::new();
    for (i, c) in n.api_server_allowed_cidrs.iter().enumerate() {
        if !allowed.insert(c) {
            p.add(
                format!("network.apiServerAllowedCidrs[{i}]"),
                Kind::Conflict,
                format!("{c} is listed twice"),
                "list each CIDR once",
            );
        }
        if c.parse::<IpNet>().is_err() {
            p.add(
                format!("network.apiServerAllowedCidrs[{i}]"),
                Kind::InvalidValue,
                format!("{c:?} is not a CIDR"),
                "write a network such as 192.0.2.0/24 (a single address is /32)",
            );
        }
    }
    if !n.api_server_allowed_cidrs.is_empty() && !n.api_server_load_balancer {
        p.add(
            "network.apiServerAllowedCidrs",
            Kind::Conflict,
            "allowed CIDRs need the API server load balancer",
            "set `network.apiServerLoadBalancer: true`, or drop the list",
        );
    }
}

fn owners(def: &ClusterDefinition, p: &mut Problems) {
    let mut seen = HashSet::new();
    for (i, o) in def.owners.iter().enumerate() {
        if o.name.trim().is_empty() {
            p.add(
                format!("owners[{i}].name"),
                Kind::InvalidValue,
                "an owner without a name",
                "name the person or team",
            );
        } else if !seen.insert(o.name.as_str()) {
            p.add(
                format!("owners[{i}].name"),
                Kind::Conflict,
                format!("owner {:?} is listed twice", o.name),
                "list each owner once",
            );
        }
        let key = o.public_key.trim();
        let ok = (key.starts_with("age1") && key.len() > 50 && !key.contains(char::is_whitespace))
            || ["ssh-ed25519 ", "ssh-rsa "].iter().any(|t| {
                key.starts_with(t) && key.split_whitespace().nth(1).is_some_and(|b| b.len() >= 60)
            });
        if !ok {
            p.add(
                format!("owners[{i}].publicKey"),
                Kind::InvalidValue,
                format!("owner {:?}: not an age or SSH public key", o.name),
                "paste an age recipient (age1…) or the line of ~/.ssh/id_ed25519.pub",
            );
        }
    }
}

fn addons(def: &ClusterDefinition, p: &mut Problems) {
    for (key, addon) in def.addons.iter() {
        if let Some(v) = &addon.version
            && (v.trim().is_empty() || v.contains(char::is_whitespace))
        {
            p.add(
                format!("addons.{key}.version"),
                Kind::InvalidValue,
                format!("{v:?} is not a version"),
                "write the chart version, e.g. 1.2.3, or leave it out for the pinned default",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_versions() {
        assert_eq!(parse_kubernetes_version("v1.33.4"), Some((1, 33, 4)));
        assert_eq!(parse_kubernetes_version("1.33.4"), Some((1, 33, 4)));
        assert_eq!(parse_kubernetes_version("v1.34.0-rc.1"), Some((1, 34, 0)));
        for bad in [
            "",
            "v1.33",
            "1.33.x",
            "v1.033.1",
            "latest",
            "v1.33.4.5",
            "v1..3",
        ] {
            assert_eq!(parse_kubernetes_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn label_keys() {
        assert!(label_key("team").is_ok());
        assert!(label_key("node.kubernetes.io/pool").is_ok());
        assert!(label_key("example.com/gpu").is_ok());
        assert!(label_key("node-role.kubernetes.io/worker").is_err());
        assert!(label_key("-bad").is_err());
        assert!(label_key("Bad_Domain/x").is_err());
    }
}
