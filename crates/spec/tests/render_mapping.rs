//! What each definition field becomes in the rendered objects, the hash naming of machine
//! templates, and the definitions render refuses.

mod render_support;

use render_support::*;
use serde_json::{Value, json};
use spec::render::{
    CapoApiVersion, RenderError, RenderOptions, cloud_config_secret, render, server_groups, to_yaml,
};
use spec::{AffinityPolicy, ClusterDefinition};

fn rendered(def: &ClusterDefinition) -> Vec<Value> {
    render(def, &RenderOptions::default()).expect("renders")
}

fn v1beta1(def: &ClusterDefinition) -> Vec<Value> {
    let opts = RenderOptions {
        capo_api_version: CapoApiVersion::V1beta1,
        ..RenderOptions::default()
    };
    render(def, &opts).expect("renders")
}

fn names_of(objects: &[Value], kind: &str) -> Vec<String> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn objects_come_owners_first_templates_before_their_users() {
    let kinds: Vec<String> = rendered(&maximal_openstack())
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut expected = vec![
        "Cluster",
        "OpenStackCluster",
        "OpenStackMachineTemplate",
        "KubeadmControlPlane",
    ];
    for _ in 0..3 {
        expected.extend([
            "OpenStackMachineTemplate",
            "KubeadmConfigTemplate",
            "MachineDeployment",
        ]);
    }
    expected.extend(["MachineHealthCheck", "MachineHealthCheck"]);
    assert_eq!(kinds, expected);
}

#[test]
fn rendering_is_deterministic() {
    let a = serde_json::to_string(&rendered(&maximal_openstack())).expect("json");
    let b = serde_json::to_string(&rendered(&maximal_openstack())).expect("json");
    assert_eq!(a, b);
}

#[test]
fn every_object_has_namespace_and_cluster_label() {
    for obj in rendered(&maximal_openstack()) {
        assert_eq!(obj["metadata"]["namespace"], "team-a", "{}", obj["kind"]);
        assert_eq!(
            obj["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"],
            "maxi"
        );
    }
    for obj in rendered(&minimal_openstack()) {
        assert_eq!(
            obj["metadata"]["namespace"], "mini",
            "namespace defaults to the cluster name"
        );
    }
}

#[test]
fn references_point_at_the_rendered_objects() {
    let objects = rendered(&maximal_openstack());
    let kcp = find(&objects, "KubeadmControlPlane", "maxi-control-plane");
    let cp_template = kcp["spec"]["machineTemplate"]["spec"]["infrastructureRef"]["name"]
        .as_str()
        .expect("name");
    assert!(names_of(&objects, "OpenStackMachineTemplate").contains(&cp_template.to_string()));
    let cluster = find(&objects, "Cluster", "maxi");
    assert_eq!(
        cluster["spec"]["controlPlaneRef"],
        json!({
        "apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": "maxi-control-plane"})
    );
    assert_eq!(
        cluster["spec"]["infrastructureRef"]["kind"],
        "OpenStackCluster"
    );
    for md in objects.iter().filter(|o| o["kind"] == "MachineDeployment") {
        let spec = &md["spec"]["template"]["spec"];
        let infra = spec["infrastructureRef"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        let config = spec["bootstrap"]["configRef"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        assert!(names_of(&objects, "OpenStackMachineTemplate").contains(&infra));
        assert!(names_of(&objects, "KubeadmConfigTemplate").contains(&config));
        let md_name = md["metadata"]["name"].as_str().expect("name");
        assert!(
            infra.starts_with(&format!("{md_name}-")) && infra.len() == md_name.len() + 9,
            "{infra}"
        );
        assert_eq!(
            md["spec"]["selector"]["matchLabels"]["cluster.x-k8s.io/deployment-name"],
            md_name
        );
    }
}

// ---- hash naming

fn template_names(def: &ClusterDefinition) -> (Vec<String>, Vec<String>) {
    let objects = rendered(def);
    (
        names_of(&objects, "OpenStackMachineTemplate"),
        names_of(&objects, "KubeadmConfigTemplate"),
    )
}

#[test]
fn changing_a_flavor_renames_only_that_template() {
    let before = template_names(&maximal_openstack());
    let mut def = maximal_openstack();
    def.workers[1].flavor = Some("g2.large".into());
    let after = template_names(&def);
    assert_eq!(before.0[0], after.0[0], "control plane unchanged");
    assert_eq!(before.0[1], after.0[1], "group general unchanged");
    assert_ne!(before.0[2], after.0[2], "group gpu renamed");
    assert!(after.0[2].starts_with("maxi-gpu-"));
    assert_eq!(before.0[3], after.0[3], "group batch unchanged");
    assert_eq!(before.1, after.1, "bootstrap templates unchanged");
}

#[test]
fn changing_the_control_plane_flavor_renames_its_template() {
    let before = template_names(&maximal_openstack());
    let mut def = maximal_openstack();
    def.control_plane.flavor = Some("m1.xlarge".into());
    let after = template_names(&def);
    assert_ne!(before.0[0], after.0[0]);
    assert_eq!(before.0[1..], after.0[1..]);
}

#[test]
fn changing_the_image_renames_every_machine_template() {
    let before = template_names(&maximal_openstack());
    let mut def = maximal_openstack();
    def.image.name = Some("ubuntu-2404-kube-v1.33.2".into());
    let after = template_names(&def);
    for (b, a) in before.0.iter().zip(&after.0) {
        assert_ne!(b, a);
    }
    assert_eq!(before.1, after.1);
}

#[test]
fn changing_labels_or_taints_renames_that_bootstrap_template() {
    let before = template_names(&maximal_openstack());
    let mut def = maximal_openstack();
    def.workers[0].labels.insert("tier".into(), "other".into());
    let after = template_names(&def);
    assert_ne!(before.1[0], after.1[0]);
    assert_eq!(before.1[1..], after.1[1..]);
    assert_eq!(before.0, after.0);
}

#[test]
fn changing_counts_or_unrelated_fields_keeps_every_template_name() {
    let before = template_names(&maximal_openstack());
    let mut def = maximal_openstack();
    def.workers[0].count = Some(7);
    def.control_plane.count = 5;
    def.network.api_server_allowed_cidrs.clear();
    def.owners.clear();
    def.kubernetes_version = "v1.33.2".into();
    assert_eq!(before, template_names(&def));
}

// ---- field mapping, OpenStack

#[test]
fn cloud_maps_to_identity_network_subnet_and_zones() {
    let objects = rendered(&maximal_openstack());
    let spec = &find(&objects, "OpenStackCluster", "maxi")["spec"];
    assert_eq!(
        spec["identityRef"],
        json!({"name": "maxi-cloud-config", "cloudName": "prod", "region": "RegionTwo"})
    );
    assert_eq!(
        spec["externalNetwork"],
        json!({"id": "3f0e2c1a-1b2c-4d5e-8f90-0123456789ab"})
    );
    assert_eq!(
        spec["managedSubnets"],
        json!([{"cidr": "10.10.0.0/20", "dnsNameservers": ["9.9.9.9", "1.1.1.1"]}])
    );
    assert_eq!(
        spec["controlPlaneAvailabilityZones"],
        json!(["az1", "az2", "az3"])
    );
    assert_eq!(spec["managedNetwork"], json!({"mtu": 1450}));
    assert_eq!(
        spec["apiServer"],
        json!({"managedLoadBalancer": {"enabled": true, "allowedCIDRs": ["192.0.2.0/24", "198.51.100.7/32"]}})
    );
    // CNI rules live in our own group (created by the cloud step), not in CAPO's.
    assert_eq!(
        spec["managedSecurityGroups"],
        json!({"allowAllInClusterTraffic": false})
    );
    assert_eq!(
        spec["tags"],
        json!(["managed-by=manage", "manage-cluster=maxi"])
    );
    let names: Vec<&str> = spec::render::cni_rules(spec::model::Cni::Calico)
        .iter()
        .map(|r| r.name)
        .collect();
    assert!(names.contains(&"calico-bgp"), "{names:?}");
    let template = find(&objects, "OpenStackMachineTemplate", "maxi-control-plane");
    assert_eq!(
        template["spec"]["template"]["spec"]["securityGroups"],
        json!([{"filter": {"name": "k8s-team-a-maxi-cni"}}])
    );
}

#[test]
fn external_network_name_becomes_a_filter() {
    let mut def = minimal_openstack();
    def.cloud.external_network = Some("public".into());
    let objects = rendered(&def);
    assert_eq!(
        find(&objects, "OpenStackCluster", "mini")["spec"]["externalNetwork"],
        json!({"filter": {"name": "public"}})
    );
}

#[test]
fn capo_v1beta1_uses_its_own_field_names() {
    let objects = v1beta1(&maximal_openstack());
    let cluster = find(&objects, "OpenStackCluster", "maxi");
    assert_eq!(
        cluster["apiVersion"],
        "infrastructure.cluster.x-k8s.io/v1beta1"
    );
    let spec = &cluster["spec"];
    assert_eq!(spec["identityRef"]["type"], "Secret");
    assert_eq!(spec["networkMTU"], 1450);
    assert_eq!(spec["apiServerLoadBalancer"]["enabled"], true);
    assert_eq!(spec["tags"][1], "manage-cluster=maxi");
    let template = find(&objects, "OpenStackMachineTemplate", "maxi-control-plane");
    assert_eq!(template["spec"]["template"]["spec"]["flavor"], "m1.large");
    // CAPI objects stay v1beta2 and refer by group.
    assert_eq!(
        find(&objects, "Cluster", "maxi")["apiVersion"],
        "cluster.x-k8s.io/v1beta2"
    );
}

#[test]
fn machine_template_carries_flavor_image_key_volume_and_server_group() {
    let objects = rendered(&maximal_openstack());
    let cp = &find(&objects, "OpenStackMachineTemplate", "maxi-control-plane")["spec"]["template"]
        ["spec"];
    assert_eq!(
        *cp,
        json!({
            "flavor": {"filter": {"name": "m1.large"}},
            "image": {"filter": {"name": "ubuntu-2404-kube-v1.33.1"}},
            "securityGroups": [{"filter": {"name": "k8s-team-a-maxi-cni"}}],
            "sshKeyName": "ops",
            "rootVolume": {"sizeGiB": 50, "type": "ssd"},
            "serverGroup": {"filter": {"name": "maxi-control-plane"}},
        })
    );
    let batch =
        &find(&objects, "OpenStackMachineTemplate", "maxi-batch")["spec"]["template"]["spec"];
    assert!(batch.get("rootVolume").is_none());
    assert_eq!(
        batch["serverGroup"],
        json!({"filter": {"name": "maxi-batch"}})
    );
}

#[test]
fn server_groups_match_the_templates_and_policies() {
    let groups = server_groups(&maximal_openstack());
    let names: Vec<_> = groups.iter().map(|g| (g.name.as_str(), g.policy)).collect();
    assert_eq!(
        names,
        [
            ("maxi-control-plane", "anti-affinity"),
            ("maxi-general", "soft-anti-affinity"),
            ("maxi-gpu", "soft-anti-affinity"),
            ("maxi-batch", "soft-anti-affinity"),
        ]
    );
    let mut def = maximal_openstack();
    def.anti_affinity.workers = AffinityPolicy::Hard;
    assert_eq!(server_groups(&def)[1].policy, "anti-affinity");
    def.anti_affinity.enabled = false;
    assert!(server_groups(&def).is_empty());
    for obj in rendered(&def)
        .iter()
        .filter(|o| o["kind"] == "OpenStackMachineTemplate")
    {
        assert!(obj["spec"]["template"]["spec"].get("serverGroup").is_none());
    }
    assert!(server_groups(&docker()).is_empty());
}

#[test]
fn no_load_balancer_means_no_managed_load_balancer() {
    let mut def = minimal_openstack();
    def.network.api_server_load_balancer = false;
    let objects = rendered(&def);
    assert!(
        find(&objects, "OpenStackCluster", "mini")["spec"]
            .get("apiServer")
            .is_none()
    );
    let objects = v1beta1(&def);
    assert!(
        find(&objects, "OpenStackCluster", "mini")["spec"]
            .get("apiServerLoadBalancer")
            .is_none()
    );
}

#[test]
fn kubeadm_gets_external_cloud_provider() {
    let objects = rendered(&maximal_openstack());
    let kcp = &find(&objects, "KubeadmControlPlane", "maxi")["spec"];
    assert_eq!(kcp["version"], "v1.33.1");
    assert_eq!(kcp["replicas"], 3);
    let spec = &kcp["kubeadmConfigSpec"];
    assert_eq!(
        spec["clusterConfiguration"]["controllerManager"]["extraArgs"],
        json!([{"name": "cloud-provider", "value": "external"}])
    );
    for phase in ["initConfiguration", "joinConfiguration"] {
        let reg = &spec[phase]["nodeRegistration"];
        assert_eq!(
            reg["kubeletExtraArgs"][0],
            json!({"name": "cloud-provider", "value": "external"})
        );
        assert_eq!(
            reg["kubeletExtraArgs"][1]["value"],
            "openstack:///'{{ instance_id }}'"
        );
        assert!(
            reg.get("taints").is_none(),
            "workers exist: the control plane keeps its taint"
        );
    }
}

#[test]
fn control_plane_taint_is_removed_without_workers() {
    let objects = rendered(&minimal_openstack());
    let spec = &find(&objects, "KubeadmControlPlane", "mini")["spec"]["kubeadmConfigSpec"];
    for phase in ["initConfiguration", "joinConfiguration"] {
        assert_eq!(spec[phase]["nodeRegistration"]["taints"], json!([]));
    }
    assert_eq!(
        names_of(&objects, "MachineHealthCheck"),
        ["mini-control-plane"]
    );
    assert_eq!(
        find(&objects, "Cluster", "mini")["spec"]["clusterNetwork"]["pods"]["cidrBlocks"],
        json!(["172.16.0.0/13"])
    );
}

#[test]
fn worker_labels_taints_zones_and_scaling() {
    let objects = rendered(&maximal_openstack());
    let general = find(&objects, "KubeadmConfigTemplate", "maxi-general");
    let reg = &general["spec"]["template"]["spec"]["joinConfiguration"]["nodeRegistration"];
    assert_eq!(
        reg["kubeletExtraArgs"][2],
        json!({"name": "node-labels", "value": "tier=general"})
    );
    assert!(reg.get("taints").is_none());
    let md = find(&objects, "MachineDeployment", "maxi-general");
    assert_eq!(md["spec"]["replicas"], 3);
    assert_eq!(md["spec"]["template"]["spec"]["failureDomain"], "az1");
    assert_eq!(
        md["spec"]["template"]["metadata"]["labels"]["node-role.kubernetes.io/worker"],
        ""
    );

    let gpu = find(&objects, "KubeadmConfigTemplate", "maxi-gpu");
    assert_eq!(
        gpu["spec"]["template"]["spec"]["joinConfiguration"]["nodeRegistration"]["taints"],
        json!([{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
               {"key": "dedicated", "effect": "NoExecute"}])
    );
    let md = find(&objects, "MachineDeployment", "maxi-gpu");
    assert!(
        md["spec"].get("replicas").is_none(),
        "the autoscaler owns replicas"
    );
    assert_eq!(
        md["metadata"]["annotations"],
        json!({
        "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size": "1",
        "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size": "5"})
    );
    assert_eq!(
        find(&objects, "MachineDeployment", "maxi-batch")["spec"]["replicas"],
        0
    );
}

#[test]
fn health_checks_cover_control_plane_and_workers() {
    let objects = rendered(&maximal_openstack());
    let cp = find(&objects, "MachineHealthCheck", "maxi-control-plane");
    assert_eq!(
        cp["spec"]["selector"]["matchLabels"]["cluster.x-k8s.io/control-plane"],
        ""
    );
    let workers = find(&objects, "MachineHealthCheck", "maxi-workers");
    assert_eq!(
        workers["spec"]["selector"]["matchExpressions"][0]["operator"],
        "Exists"
    );
    assert_eq!(
        workers["spec"]["remediation"]["triggerIf"]["unhealthyLessThanOrEqualTo"],
        "40%"
    );
}

// ---- Docker

#[test]
fn docker_renders_dev_provider_objects_without_cloud_provider() {
    let mut def = docker();
    def.cloud.availability_zones = vec!["fd1".into()];
    let opts = RenderOptions {
        docker_node_image: Some("kindest/node:v1.33.1".into()),
        ..RenderOptions::default()
    };
    let objects = render(&def, &opts).expect("renders");
    let cluster = find(&objects, "DevCluster", "laptop");
    assert_eq!(
        cluster["apiVersion"],
        "infrastructure.cluster.x-k8s.io/v1beta2"
    );
    assert_eq!(
        cluster["spec"]["backend"]["docker"]["failureDomains"],
        json!([{"name": "fd1", "controlPlane": true}])
    );
    assert_eq!(
        find(&objects, "Cluster", "laptop")["spec"]["infrastructureRef"]["kind"],
        "DevCluster"
    );
    let template = find(&objects, "DevMachineTemplate", "laptop-md-0");
    assert_eq!(
        template["spec"]["template"]["spec"]["backend"]["docker"]["customImage"],
        "kindest/node:v1.33.1"
    );
    let text = serde_json::to_string(&objects).expect("json");
    assert!(!text.contains("cloud-provider") && !text.contains("OpenStack"));
    assert!(server_groups(&def).is_empty());
}

// ---- the credentials Secret

#[test]
fn cloud_config_secret_is_built_from_given_bytes_only() {
    let def = maximal_openstack();
    let secret = cloud_config_secret(&def, "clouds: {prod: {}}\n");
    assert_eq!(secret["metadata"]["name"], "maxi-cloud-config");
    assert_eq!(secret["metadata"]["namespace"], "team-a");
    assert_eq!(secret["stringData"]["clouds.yaml"], "clouds: {prod: {}}\n");
    assert!(
        rendered(&def).iter().all(|o| o["kind"] != "Secret"),
        "render never emits the Secret"
    );
}

// ---- refusals

fn refused(def: &ClusterDefinition) -> RenderError {
    render(def, &RenderOptions::default()).expect_err("refused")
}

#[test]
fn openstack_needs_flavors_and_an_image() {
    let mut def = minimal_openstack();
    def.control_plane.flavor = None;
    assert_eq!(
        refused(&def).to_string(),
        "controlPlane.flavor is required for provider openstack"
    );
    let mut def = maximal_openstack();
    def.workers[2].flavor = None;
    assert_eq!(
        refused(&def).to_string(),
        "workers[2].flavor is required for provider openstack"
    );
    let mut def = minimal_openstack();
    def.image.name = None;
    assert!(matches!(refused(&def), RenderError::Missing { field, .. } if field == "image.name"));
    let mut def = docker();
    def.control_plane.flavor = None;
    assert!(
        render(&def, &RenderOptions::default()).is_ok(),
        "docker needs no flavor"
    );
}

#[test]
fn names_that_cannot_name_objects_are_refused() {
    let mut def = minimal_openstack();
    def.name = "Bad_Name".into();
    assert!(matches!(refused(&def), RenderError::BadName { .. }));
    let mut def = minimal_openstack();
    def.name = "a".repeat(50);
    assert!(refused(&def).to_string().contains("at most 49"));
    let mut def = maximal_openstack();
    def.workers[0].name = "g".repeat(60);
    assert!(
        matches!(refused(&def), RenderError::BadName { field, .. } if field == "workers[0].name")
    );
    let mut def = maximal_openstack();
    def.workers[1].name = "general".into();
    assert!(matches!(refused(&def), RenderError::Conflict { .. }));
    let mut def = maximal_openstack();
    def.workers[0].name = "control-plane".into();
    assert!(
        matches!(refused(&def), RenderError::Conflict { field, .. } if field == "workers[0].name")
    );
    let mut def = minimal_openstack();
    def.namespace = Some("Team".into());
    assert!(matches!(refused(&def), RenderError::BadName { field, .. } if field == "namespace"));
}

#[test]
fn impossible_numbers_are_refused() {
    let mut def = minimal_openstack();
    def.control_plane.count = -1;
    assert!(matches!(refused(&def), RenderError::OutOfRange { .. }));
    let mut def = maximal_openstack();
    def.workers[0].count = Some(i64::from(i32::MAX) + 1);
    assert!(
        matches!(refused(&def), RenderError::OutOfRange { field, .. } if field == "workers[0].count")
    );
    let mut def = maximal_openstack();
    def.control_plane
        .root_volume
        .as_mut()
        .expect("volume")
        .size_gib = 0;
    assert!(
        matches!(refused(&def), RenderError::OutOfRange { field, .. } if field == "controlPlane.rootVolume.sizeGib")
    );
    let mut def = maximal_openstack();
    def.network.mtu = Some(0);
    assert!(matches!(refused(&def), RenderError::OutOfRange { .. }));
    let mut def = maximal_openstack();
    def.workers[1].autoscale.as_mut().expect("autoscale").min = 9;
    assert!(matches!(refused(&def), RenderError::Conflict { .. }));
    let mut def = maximal_openstack();
    def.workers[1].count = Some(2);
    assert!(matches!(refused(&def), RenderError::Conflict { .. }));
}

#[test]
fn allowed_cidrs_without_load_balancer_are_refused() {
    let mut def = maximal_openstack();
    def.network.api_server_load_balancer = false;
    assert!(
        matches!(refused(&def), RenderError::Conflict { field, .. } if field == "network.apiServerAllowedCidrs")
    );
}

#[test]
fn capo_version_parses() {
    assert_eq!(
        "v1beta1".parse::<CapoApiVersion>(),
        Ok(CapoApiVersion::V1beta1)
    );
    assert_eq!(
        "v1beta2".parse::<CapoApiVersion>(),
        Ok(CapoApiVersion::V1beta2)
    );
    assert!("v1alpha7".parse::<CapoApiVersion>().is_err());
}

#[test]
fn yaml_output_reads_back_as_the_same_objects() {
    for def in [minimal_openstack(), maximal_openstack(), docker()] {
        let objects = rendered(&def);
        let text = to_yaml(&objects).expect("yaml");
        let back: Vec<Value> = serde_saphyr::from_multiple(&text).expect("parses");
        assert_eq!(back, objects);
    }
    // Autoscaler bounds are strings that look like numbers: they must stay quoted.
    let text = to_yaml(&rendered(&maximal_openstack())).expect("yaml");
    assert!(text.contains("node-group-min-size: \"1\""), "{text}");
}
