//! Every kind of mistake in a definition yields a diagnostic with file, line, column, field path
//! and a hint; valid definitions load with their defaults.

use spec::{Diagnostic, Kind, Source, load_sources};
use std::path::PathBuf;

const OK: &str = "kubernetesVersion: v1.33.4\nimage: {name: img}\ncontrolPlane: {flavor: f}\n";

fn load(defaults: Option<&str>, cluster: &str) -> Result<spec::Loaded, Vec<Diagnostic>> {
    let mut sources = Vec::new();
    if let Some(d) = defaults {
        sources.push(Source {
            path: PathBuf::from("clusters/defaults.yaml"),
            text: d.into(),
        });
    }
    sources.push(Source {
        path: PathBuf::from("clusters/t/cluster.yaml"),
        text: cluster.into(),
    });
    load_sources("t", &sources).map_err(|d| d.0)
}

/// Loads and expects exactly one diagnostic, which it returns.
fn one_error(defaults: Option<&str>, cluster: &str) -> Diagnostic {
    match load(defaults, cluster) {
        Ok(_) => panic!("loaded, but expected an error:\n{cluster}"),
        Err(mut d) => {
            assert_eq!(d.len(), 1, "expected one diagnostic, got {d:#?}");
            d.remove(0)
        }
    }
}

fn at(d: &Diagnostic) -> (String, u32, u32) {
    (d.loc.file.display().to_string(), d.loc.line, d.loc.column)
}

#[test]
fn minimal_definition_gets_defaults() {
    let l = load(None, OK).expect("valid");
    let d = l.definition;
    assert_eq!(d.name, "t");
    assert_eq!(d.capi_namespace(), "t");
    assert_eq!(d.control_plane.count, 3);
    assert_eq!(d.network.pod_cidr, "172.16.0.0/13");
    assert!(d.addons.metrics_server.enabled);
    assert!(!d.addons.ingress_nginx.enabled);
    assert!(d.anti_affinity.enabled);
}

#[test]
fn the_example_and_the_shared_defaults_load() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let names = spec::cluster_names(&repo).expect("clusters/ readable");
    assert!(names.contains(&"example".to_string()), "{names:?}");
    for name in names {
        if let Err(e) = spec::load_cluster(&repo, &name) {
            panic!("clusters/{name} does not load:\n{e}");
        }
    }
    let ex = spec::load_cluster(&repo, "example").expect("example");
    assert_eq!(
        ex.sources.len(),
        2,
        "defaults.yaml is layered under the example"
    );
    assert!(
        ex.definition.addons.cert_manager.enabled,
        "a written addon block turns it on"
    );
    assert!(!ex.definition.addons.flux.enabled);
}

#[test]
fn unknown_field_names_the_key_and_suggests_the_right_one() {
    let d = one_error(
        None,
        "kubernetesVersion: v1.33.4\nimage: {name: img}\ncontrolPlane:\n  count: 3\n  flavour: f\n",
    );
    assert_eq!(d.kind, Kind::UnknownField);
    assert_eq!(d.path, "controlPlane.flavour");
    assert_eq!(at(&d), ("clusters/t/cluster.yaml".into(), 5, 3));
    let hint = d.hint.expect("hint");
    assert!(hint.contains("did you mean `flavor`"), "{hint}");
    assert!(
        hint.contains("rootVolume"),
        "lists the valid fields: {hint}"
    );
}

#[test]
fn unknown_top_level_field() {
    let d = one_error(None, &format!("{OK}kubernetes: v1.33.4\n"));
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::UnknownField, "kubernetes")
    );
    assert_eq!(at(&d).1, 4);
}

#[test]
fn wrong_type_names_the_field_and_the_expected_type() {
    let d = one_error(
        None,
        "kubernetesVersion: v1.33.4\nimage: {name: img}\ncontrolPlane:\n  flavor: f\n  count: three\n",
    );
    assert_eq!(d.kind, Kind::WrongType);
    assert_eq!(d.path, "controlPlane.count");
    assert_eq!(at(&d).1, 5);
    assert!(d.message.contains("string"), "{}", d.message);
    assert!(d.hint.expect("hint").contains("i64"));
}

#[test]
fn a_version_written_as_a_number_gets_a_quoting_hint() {
    let d = one_error(
        None,
        "kubernetesVersion: 1.30\nimage: {name: img}\ncontrolPlane: {flavor: f}\n",
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::WrongType, "kubernetesVersion")
    );
    assert_eq!(at(&d), ("clusters/t/cluster.yaml".into(), 1, 20));
    assert!(d.hint.expect("hint").contains("quote"));
}

#[test]
fn even_control_plane_count() {
    let d = one_error(
        None,
        "kubernetesVersion: v1.33.4\nimage: {name: img}\ncontrolPlane:\n  flavor: f\n  count: 2\n",
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::InvalidValue, "controlPlane.count")
    );
    assert_eq!(at(&d).1, 5);
    assert!(d.message.contains("odd"), "{}", d.message);
    assert!(d.hint.expect("hint").contains("use 1 or 3"));
}

#[test]
fn zero_control_plane_machines() {
    let d = one_error(
        None,
        &format!("{OK}controlPlane: {{flavor: f, count: 0}}\n")
            .replace("controlPlane: {flavor: f}\n", ""),
    );
    assert_eq!(d.path, "controlPlane.count");
}

#[test]
fn overlapping_cidrs() {
    let d = one_error(
        None,
        &format!("{OK}network:\n  nodeCidr: 10.0.0.0/16\n  podCidr: 10.0.128.0/17\n"),
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::Conflict, "network.podCidr")
    );
    assert_eq!(at(&d).1, 6);
    assert!(
        d.message.contains("overlaps network.nodeCidr"),
        "{}",
        d.message
    );
    assert!(d.hint.is_some());
}

#[test]
fn a_default_cidr_clashing_with_a_written_one_points_at_the_written_one() {
    let d = one_error(
        None,
        &format!("{OK}network:\n  serviceCidr: 172.16.0.0/16\n"),
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::Conflict, "network.serviceCidr")
    );
    assert_eq!(at(&d).1, 5);
}

#[test]
fn cidr_with_host_bits_and_garbage() {
    let d = one_error(None, &format!("{OK}network: {{nodeCidr: 10.8.0.1/20}}\n"));
    assert!(d.hint.expect("hint").contains("10.8.0.0/20"));
    let d = one_error(None, &format!("{OK}network: {{nodeCidr: ten}}\n"));
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::InvalidValue, "network.nodeCidr")
    );
}

#[test]
fn negative_worker_count() {
    let d = one_error(
        None,
        &format!("{OK}workers:\n  - name: md-0\n    flavor: f\n    count: -1\n"),
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::InvalidValue, "workers[0].count")
    );
    assert_eq!(at(&d), ("clusters/t/cluster.yaml".into(), 7, 12));
}

#[test]
fn unknown_cni_lists_the_valid_ones() {
    let d = one_error(None, &format!("{OK}network:\n  cni: flannel\n"));
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::InvalidValue, "network.cni")
    );
    assert_eq!(at(&d).1, 5);
    let hint = d.hint.expect("hint");
    assert!(hint.contains("cilium") && hint.contains("calico"), "{hint}");
}

#[test]
fn bad_kubernetes_version_string() {
    let d = one_error(
        None,
        "kubernetesVersion: v1.33\nimage: {name: img}\ncontrolPlane: {flavor: f}\n",
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::InvalidValue, "kubernetesVersion")
    );
    assert_eq!(at(&d).1, 1);
    assert!(d.hint.expect("hint").contains("vMAJOR.MINOR.PATCH"));
}

#[test]
fn duplicate_node_group_names() {
    let d = one_error(
        None,
        &format!(
            "{OK}workers:\n  - {{name: a, count: 1, flavor: f}}\n  - {{name: a, count: 2, flavor: f}}\n"
        ),
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::Conflict, "workers[1].name")
    );
    assert_eq!(at(&d).1, 6);
}

#[test]
fn missing_required_field() {
    let d = one_error(None, "image: {name: img}\ncontrolPlane: {flavor: f}\n");
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::MissingField, "kubernetesVersion")
    );
    assert!(d.hint.expect("hint").contains("v1.33.4"));
}

#[test]
fn missing_flavor_on_openstack_but_not_on_docker() {
    let d = one_error(None, "kubernetesVersion: v1.33.4\nimage: {name: img}\n");
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::MissingField, "controlPlane.flavor")
    );
    assert!(
        load(
            None,
            "provider: docker\nkubernetesVersion: v1.33.4\ncontrolPlane: {count: 1}\n"
        )
        .is_ok()
    );
}

#[test]
fn count_and_autoscale_together_or_neither() {
    let d = one_error(
        None,
        &format!(
            "{OK}workers:\n  - {{name: a, count: 1, autoscale: {{min: 1, max: 2}}, flavor: f}}\n"
        ),
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::Conflict, "workers[0].autoscale")
    );
    let d = one_error(None, &format!("{OK}workers:\n  - {{name: a, flavor: f}}\n"));
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::MissingField, "workers[0].count")
    );
    let d = one_error(
        None,
        &format!("{OK}workers:\n  - {{name: a, flavor: f, autoscale: {{min: 3, max: 2}}}}\n"),
    );
    assert_eq!(d.path, "workers[0].autoscale.max");
}

#[test]
fn reserved_label_domain() {
    let d = one_error(
        None,
        &format!(
            "{OK}workers:\n  - name: a\n    count: 1\n    flavor: f\n    labels: {{node-role.kubernetes.io/worker: ''}}\n"
        ),
    );
    assert_eq!(d.path, "workers[0].labels.node-role.kubernetes.io/worker");
    assert!(d.message.contains("kubernetes.io"));
}

#[test]
fn bad_owner_key_and_duplicate_owner() {
    let d = one_error(
        None,
        &format!("{OK}owners:\n  - {{name: a, publicKey: hello}}\n"),
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::InvalidValue, "owners[0].publicKey")
    );
}

#[test]
fn bad_taint_effect_is_an_enum_error() {
    let d = one_error(
        None,
        &format!(
            "{OK}workers:\n  - name: a\n    count: 1\n    flavor: f\n    taints: [{{key: k, effect: Never}}]\n"
        ),
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::InvalidValue, "workers[0].taints[0].effect")
    );
    assert!(d.hint.expect("hint").contains("NoSchedule"));
}

#[test]
fn yaml_syntax_error_has_a_position() {
    let d = one_error(
        None,
        "kubernetesVersion: v1.33.4\ncontrolPlane: {flavor: f\nimage: x\n",
    );
    assert_eq!(d.kind, Kind::Syntax);
    assert!(d.loc.line >= 2, "{d}");
    let d = one_error(None, "a: 1\na: 2\n");
    assert_eq!(d.kind, Kind::Syntax);
    assert!(
        d.message.to_lowercase().contains("duplicate"),
        "{}",
        d.message
    );
}

#[test]
fn a_document_that_is_not_a_mapping() {
    let d = one_error(None, "- just\n- a list\n");
    assert_eq!(d.kind, Kind::WrongType);
    assert_eq!(at(&d).1, 1);
}

#[test]
fn name_must_match_the_directory() {
    let d = one_error(None, &format!("name: other\n{OK}"));
    assert_eq!((d.kind, d.path.as_str()), (Kind::Conflict, "name"));
    assert!(d.hint.expect("hint").contains("clusters/other"));
}

#[test]
fn an_error_in_the_shared_layer_is_reported_in_the_shared_file() {
    let d = one_error(Some("network:\n  mtu: 70000\n"), OK);
    assert_eq!(at(&d), ("clusters/defaults.yaml".into(), 2, 8));
    assert_eq!(d.path, "network.mtu");
}

#[test]
fn the_cluster_overrides_and_removes_shared_values() {
    let l = load(Some("controlPlane: {flavor: shared, count: 1}\ncloud: {region: r1}\n"), "kubernetesVersion: v1.33.4\nimage: {name: i}\ncontrolPlane: {count: 3}\ncloud: {region: ~}\n").expect("valid");
    assert_eq!(l.definition.control_plane.flavor.as_deref(), Some("shared"));
    assert_eq!(l.definition.control_plane.count, 3);
    assert_eq!(l.definition.cloud.region, None);
}

#[test]
fn every_semantic_problem_is_reported_at_once_in_file_order() {
    let e = load(None, "kubernetesVersion: v2.0.0\nimage: {name: img}\ncontrolPlane: {flavor: f, count: 4}\nworkers:\n  - {name: a, count: -2, flavor: f}\n").expect_err("invalid");
    let paths: Vec<_> = e.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "kubernetesVersion",
            "controlPlane.count",
            "workers[0].count"
        ]
    );
}

#[test]
fn diagnostics_print_file_line_column_field_and_hint() {
    let d = one_error(None, &format!("{OK}network:\n  cni: flannel\n"));
    let text = d.to_string();
    assert!(
        text.starts_with("clusters/t/cluster.yaml:5:8: network.cni: "),
        "{text}"
    );
    assert!(text.contains("\n    hint: use one of"), "{text}");
}

#[test]
fn reserved_group_name_and_duplicate_allowed_cidrs() {
    let d = one_error(
        None,
        &format!("{OK}workers:\n  - {{name: control-plane, count: 1, flavor: f}}\n"),
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::InvalidValue, "workers[0].name")
    );
    let d = one_error(
        None,
        &format!("{OK}network:\n  apiServerAllowedCidrs: [10.0.0.0/8, 10.0.0.0/8]\n"),
    );
    assert_eq!(
        (d.kind, d.path.as_str()),
        (Kind::Conflict, "network.apiServerAllowedCidrs[1]")
    );
}
