//! Every rendered object validates against the upstream CRD schemas, for the examples and a
//! matrix of options.

mod render_support;

use render_support::*;
use serde_json::json;
use spec::render::{CapoApiVersion, RenderOptions, render};

fn opts(v: CapoApiVersion) -> RenderOptions {
    RenderOptions {
        capo_api_version: v,
        ..RenderOptions::default()
    }
}

#[test]
fn minimal_openstack_is_valid_in_both_capo_versions() {
    for v in [CapoApiVersion::V1beta1, CapoApiVersion::V1beta2] {
        let objects = render(&minimal_openstack(), &opts(v)).expect("renders");
        assert_valid(&objects, &format!("minimal {v:?}"));
    }
}

#[test]
fn maximal_openstack_is_valid_in_both_capo_versions() {
    for v in [CapoApiVersion::V1beta1, CapoApiVersion::V1beta2] {
        let objects = render(&maximal_openstack(), &opts(v)).expect("renders");
        assert_valid(&objects, &format!("maximal {v:?}"));
    }
}

#[test]
fn docker_is_valid_with_and_without_custom_image() {
    let mut o = RenderOptions::default();
    assert_valid(&render(&docker(), &o).expect("renders"), "docker");
    o.docker_node_image = Some("kindest/node:v1.33.1".into());
    assert_valid(
        &render(&docker(), &o).expect("renders"),
        "docker custom image",
    );
}

#[test]
fn every_rendered_kind_is_known_to_the_crds() {
    for def in [minimal_openstack(), maximal_openstack(), docker()] {
        for obj in render(&def, &RenderOptions::default()).expect("renders") {
            let (api, kind) = (
                obj["apiVersion"].as_str().unwrap_or(""),
                obj["kind"].as_str().unwrap_or(""),
            );
            assert!(crds().knows(api, kind), "{api} {kind}");
        }
    }
}

/// provider × cni × scaling × root volume × anti-affinity × LB × CAPO version × worker groups.
#[test]
fn option_matrix_is_valid() {
    let mut rendered = 0;
    for provider in ["openstack", "docker"] {
        for cni in ["cilium", "calico"] {
            for autoscale in [false, true] {
                for root_volume in [false, true] {
                    for anti_affinity in [false, true] {
                        for lb in [false, true] {
                            for groups in [0, 1, 3] {
                                for v in [CapoApiVersion::V1beta1, CapoApiVersion::V1beta2] {
                                    if provider == "docker" && v == CapoApiVersion::V1beta1 {
                                        continue; // the Docker provider has no CAPO objects
                                    }
                                    let volume = root_volume.then(|| json!({ "sizeGib": 40 }));
                                    let workers: Vec<_> = (0..groups)
                                        .map(|i| {
                                            let mut g = json!({
                                                "name": format!("g{i}"), "flavor": "m1.medium",
                                                "rootVolume": volume,
                                                "labels": { "pool": format!("p{i}") },
                                            });
                                            if autoscale {
                                                g["autoscale"] = json!({ "min": i, "max": i + 2 });
                                            } else {
                                                g["count"] = json!(i);
                                            }
                                            if i == 2 {
                                                g["availabilityZone"] = json!("az2");
                                                g["taints"] = json!([{ "key": "k", "value": "v", "effect": "NoSchedule" }]);
                                            }
                                            g
                                        })
                                        .collect();
                                    let def = definition(json!({
                                        "name": "matrix",
                                        "provider": provider,
                                        "kubernetesVersion": "1.32.4",
                                        "image": { "name": "img" },
                                        "cloud": { "availabilityZones": ["az1", "az2"] },
                                        "controlPlane": { "count": if groups == 0 { 1 } else { 3 },
                                                          "flavor": "m1.large", "rootVolume": volume },
                                        "workers": workers,
                                        "network": { "cni": cni, "apiServerLoadBalancer": lb },
                                        "antiAffinity": { "enabled": anti_affinity },
                                    }));
                                    let objects = render(&def, &opts(v)).expect("renders");
                                    assert_valid(
                                        &objects,
                                        &format!(
                                            "{provider} {cni} autoscale={autoscale} volume={root_volume} aa={anti_affinity} lb={lb} groups={groups} {v:?}"
                                        ),
                                    );
                                    rendered += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(rendered, 2 * 2 * 2 * 2 * 2 * 3 * 2 + 2 * 2 * 2 * 2 * 2 * 3);
}

/// The CRDs of the exact versions the test world runs (CAPI v1.14.0, CAPO v0.14.7, which serves
/// only v1beta1), read from the Go module cache the world is built from; skipped with one line
/// when that cache is absent. Override the module root with `MANAGE_GO_MOD_DIR`.
#[test]
fn capo_v1beta1_output_is_valid_for_the_test_worlds_pinned_crds() {
    let root = std::env::var_os("MANAGE_GO_MOD_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join("go/pkg/mod"))
        })
        .unwrap_or_default()
        .join("sigs.k8s.io");
    let dirs = [
        "cluster-api@v1.14.0/core/config/crd/bases",
        "cluster-api@v1.14.0/bootstrap/kubeadm/config/crd/bases",
        "cluster-api@v1.14.0/controlplane/kubeadm/config/crd/bases",
        "cluster-api-provider-openstack@v0.14.7/config/crd/bases",
    ];
    if let Some(missing) = dirs.iter().map(|d| root.join(d)).find(|d| !d.is_dir()) {
        eprintln!(
            "skipped: {} absent (the test world's Go module cache)",
            missing.display()
        );
        return;
    }
    let mut set = spec::crd::CrdSet::default();
    for dir in dirs {
        set.add_dir(root.join(dir)).expect("pinned CRDs load");
    }
    for def in [minimal_openstack(), maximal_openstack()] {
        for obj in render(&def, &opts(CapoApiVersion::V1beta1)).expect("renders") {
            let found = set.validate(&obj);
            assert!(found.is_empty(), "{found:#?}");
        }
    }
}
