//! The CRD validator catches each kind of mistake (each test breaks one valid rendered object in
//! one way and expects exactly that violation), accepts upstream's own CAPO templates, and names
//! the file when a CRD file is bad.

mod render_support;

use render_support::*;
use serde_json::{Value, json};
use spec::crd::{CrdError, CrdSet};
use spec::render::{RenderOptions, render};

/// A valid object of `kind` from the maximal example, for breaking.
fn valid(kind: &str) -> Value {
    let objects = render(&maximal_openstack(), &RenderOptions::default()).expect("renders");
    let obj = find(&objects, kind, "maxi").clone();
    assert!(crds().validate(&obj).is_empty(), "{kind} starts valid");
    obj
}

/// The (path, rule) pairs of the violations of `obj`.
fn violations(obj: &Value) -> Vec<(String, String)> {
    crds()
        .validate(obj)
        .into_iter()
        .map(|v| (v.path, v.rule))
        .collect()
}

fn one(path: &str, rule: &str) -> Vec<(String, String)> {
    vec![(path.to_string(), rule.to_string())]
}

#[test]
fn unknown_field_is_an_error() {
    let mut obj = valid("OpenStackMachineTemplate");
    obj["spec"]["template"]["spec"]["flavour"] = json!("m1.large");
    assert_eq!(
        violations(&obj),
        one(".spec.template.spec.flavour", "unknown-field")
    );
}

#[test]
fn unknown_field_in_a_list_item_is_an_error() {
    let mut obj = valid("KubeadmConfigTemplate");
    obj["spec"]["template"]["spec"]["joinConfiguration"]["nodeRegistration"]["kubeletExtraArgs"]
        [0]["vaule"] = json!("x");
    assert_eq!(
        violations(&obj),
        one(
            ".spec.template.spec.joinConfiguration.nodeRegistration.kubeletExtraArgs[0].vaule",
            "unknown-field"
        )
    );
}

#[test]
fn wrong_type_is_an_error() {
    let mut obj = valid("KubeadmControlPlane");
    obj["spec"]["replicas"] = json!("3");
    assert_eq!(violations(&obj), one(".spec.replicas", "type"));
}

#[test]
fn int32_overflow_is_an_error() {
    let mut obj = valid("KubeadmControlPlane");
    obj["spec"]["replicas"] = json!(4_294_967_296_i64);
    assert_eq!(violations(&obj), one(".spec.replicas", "format"));
}

#[test]
fn missing_required_field_is_an_error() {
    let mut obj = valid("MachineDeployment");
    obj["spec"]["template"]["spec"]
        .as_object_mut()
        .expect("object")
        .remove("clusterName");
    assert_eq!(violations(&obj), one(".spec.template.spec", "required"));
}

#[test]
fn enum_violation_is_an_error() {
    let mut obj = valid("KubeadmConfigTemplate");
    obj["spec"]["template"]["spec"]["format"] = json!("yaml");
    assert_eq!(violations(&obj), one(".spec.template.spec.format", "enum"));
}

#[test]
fn pattern_violation_is_an_error() {
    let mut obj = valid("Cluster");
    obj["spec"]["controlPlaneRef"]["name"] = json!("Not_A_Name");
    assert_eq!(
        violations(&obj),
        one(".spec.controlPlaneRef.name", "pattern")
    );
}

#[test]
fn length_and_bounds_violations_are_errors() {
    let mut obj = valid("MachineDeployment");
    obj["spec"]["clusterName"] = json!("");
    obj["spec"]["template"]["spec"]["minReadySeconds"] = json!(-1);
    assert_eq!(
        violations(&obj),
        vec![
            (".spec.clusterName".to_string(), "minLength".to_string()),
            (
                ".spec.template.spec.minReadySeconds".to_string(),
                "minimum".to_string()
            ),
        ]
    );
}

#[test]
fn min_items_and_min_properties_are_checked() {
    let mut obj = valid("Cluster");
    obj["spec"]["clusterNetwork"]["pods"]["cidrBlocks"] = json!([]);
    assert_eq!(
        violations(&obj),
        one(".spec.clusterNetwork.pods.cidrBlocks", "minItems")
    );
    let mut obj = valid("KubeadmControlPlane");
    obj["spec"]["kubeadmConfigSpec"]["clusterConfiguration"] = json!({});
    assert_eq!(
        violations(&obj),
        one(
            ".spec.kubeadmConfigSpec.clusterConfiguration",
            "minProperties"
        )
    );
}

#[test]
fn uuid_format_is_checked() {
    let mut obj = valid("OpenStackCluster");
    obj["spec"]["externalNetwork"] = json!({ "id": "public" });
    assert_eq!(violations(&obj), one(".spec.externalNetwork.id", "format"));
}

#[test]
fn map_list_keys_must_be_unique() {
    let mut obj = valid("Cluster");
    obj["spec"]["availabilityGates"] = json!([{ "conditionType": "A" }, { "conditionType": "A" }]);
    assert_eq!(
        violations(&obj),
        one(".spec.availabilityGates[1]", "x-kubernetes-list-map-keys")
    );
}

#[test]
fn unknown_kind_and_version_are_errors() {
    let mut obj = valid("Cluster");
    obj["kind"] = json!("Klaster");
    assert_eq!(violations(&obj), one(".", "unknown-kind"));
    let mut obj = valid("Cluster");
    obj["apiVersion"] = json!("cluster.x-k8s.io/v1alpha3");
    assert_eq!(violations(&obj), one(".", "unknown-kind"));
}

#[test]
fn metadata_is_checked_as_object_meta() {
    let mut obj = valid("Cluster");
    obj["metadata"]
        .as_object_mut()
        .expect("object")
        .remove("namespace");
    assert_eq!(violations(&obj), one(".metadata", "required"));
    let mut obj = valid("Cluster");
    obj["metadata"]["name"] = json!("Bad_Name");
    assert_eq!(
        violations(&obj),
        one(".metadata.name", "dns-1123-subdomain")
    );
    let mut obj = valid("Cluster");
    obj["metadata"]["labelz"] = json!({});
    assert_eq!(violations(&obj), one(".metadata.labelz", "unknown-field"));
    let mut obj = valid("Cluster");
    obj["metadata"]["labels"]["x"] = json!("not a label value");
    assert_eq!(violations(&obj), one(".metadata.labels.x", "label-value"));
}

#[test]
fn violations_name_the_object() {
    let mut obj = valid("Cluster");
    obj["spec"]["paused"] = json!("yes");
    let v = crds().validate(&obj);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].object, "Cluster team-a/maxi");
    assert_eq!(
        v[0].to_string(),
        "Cluster team-a/maxi: .spec.paused: must be a boolean, not a string (type)"
    );
}

#[test]
fn cel_rules_are_counted_not_evaluated() {
    let obj = valid("OpenStackCluster");
    assert!(crds().check(&obj).cel_rules_skipped > 0);
}

/// Upstream's own example objects pass: the validator is not stricter than the API server.
#[test]
fn upstream_capo_templates_validate() {
    let dir = crds_dir().join("capo-templates");
    let vars = [
        ("${CLUSTER_NAME}", "demo"),
        ("${WORKER_MACHINE_COUNT}", "3"),
        ("${CONTROL_PLANE_MACHINE_COUNT}", "3"),
        ("${KUBERNETES_VERSION}", "v1.33.1"),
        ("${OPENSTACK_FAILURE_DOMAIN}", "nova"),
        (
            "${OPENSTACK_EXTERNAL_NETWORK_ID}",
            "3f0e2c1a-1b2c-4d5e-8f90-0123456789ab",
        ),
        ("${OPENSTACK_CLOUD}", "openstack"),
        ("${OPENSTACK_DNS_NAMESERVERS}", "9.9.9.9"),
        ("${OPENSTACK_CONTROL_PLANE_MACHINE_FLAVOR}", "m1.medium"),
        ("${OPENSTACK_NODE_MACHINE_FLAVOR}", "m1.medium"),
        ("${OPENSTACK_IMAGE_NAME}", "ubuntu"),
        ("${OPENSTACK_FLATCAR_IMAGE_NAME}", "flatcar"),
        ("${OPENSTACK_SSH_KEY_NAME}", "ops"),
        ("${OPENSTACK_CLOUD_YAML_B64}", "Y2xvdWRzOiB7fQ=="),
        ("${OPENSTACK_CLOUD_CACERT_B64}", "Cg=="),
    ];
    let mut checked = 0;
    for file in [
        "cluster-template.yaml",
        "cluster-template-without-lb.yaml",
        "cluster-template-capi-v1beta1.yaml",
    ] {
        let mut text = std::fs::read_to_string(dir.join(file)).expect("template readable");
        for (k, v) in vars {
            text = text.replace(k, v);
        }
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("template parses");
        for mut doc in docs {
            if doc["kind"] == "Secret" {
                continue;
            }
            doc["metadata"]["namespace"] = json!("default");
            let found = crds().validate(&doc);
            assert!(found.is_empty(), "{file}: {found:#?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 21);
}

#[test]
fn loader_error_names_the_bad_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("good.yaml"), "kind: ConfigMap\n").expect("write");
    std::fs::create_dir(dir.path().join("nested")).expect("mkdir");
    let bad = dir.path().join("nested/broken.yaml");
    std::fs::write(&bad, "kind: CustomResourceDefinition\nspec: [unclosed\n").expect("write");
    let err = CrdSet::load_dir(dir.path()).expect_err("bad YAML is an error");
    assert!(matches!(err, CrdError::Yaml { .. }), "{err:?}");
    assert!(err.to_string().contains("nested/broken.yaml"), "{err}");
}

#[test]
fn loader_error_names_a_malformed_crd_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("nogroup.yaml");
    std::fs::write(&bad, "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nspec:\n  names: {kind: X}\n")
        .expect("write");
    let err = CrdSet::load_dir(dir.path()).expect_err("malformed CRD is an error");
    assert!(
        err.to_string().contains("nogroup.yaml") && err.to_string().contains("spec.group"),
        "{err}"
    );
}

#[test]
fn loader_error_names_a_missing_directory() {
    let err = CrdSet::load_dir("/nonexistent/crds").expect_err("missing dir");
    assert!(err.to_string().contains("/nonexistent/crds"), "{err}");
}

#[test]
fn loads_every_shipped_crd_version() {
    // 19 CAPI + 7 CAPO + 6 docker + 5 flux + 1 sealed-secrets files; most serve two versions.
    assert!(crds().len() >= 60, "{}", crds().len());
    assert!(crds().knows(
        "infrastructure.cluster.x-k8s.io/v1beta1",
        "OpenStackCluster"
    ));
    assert!(crds().knows(
        "infrastructure.cluster.x-k8s.io/v1beta2",
        "DevMachineTemplate"
    ));
}
