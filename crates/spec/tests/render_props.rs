//! Property: for any definition, render either refuses it with an error or produces objects
//! that validate against the CRDs, and never panics.

mod render_support;

use proptest::prelude::*;
use render_support::*;
use serde_json::{Value, json};
use spec::render::{CapoApiVersion, RenderOptions, render};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        60 => "[a-z][a-z0-9-]{0,12}[a-z0-9]",
        1 => ".{0,70}",
        1 => Just(String::new()),
        1 => Just("control-plane".to_string()),
    ]
}

fn number() -> impl Strategy<Value = i64> {
    prop_oneof![
        60 => 1i64..6,
        1 => any::<i64>(),
        1 => Just(i64::from(i32::MAX) + 1),
        1 => -3i64..1,
    ]
}

/// Mostly one of count or autoscale (min ≤ max); sometimes both, neither, or inverted bounds.
fn scaling() -> impl Strategy<Value = (Option<i64>, Option<(i64, i64)>)> {
    prop_oneof![
        5 => number().prop_map(|n| (Some(n), None)),
        5 => (0i64..4, 0i64..4).prop_map(|(min, d)| (None, Some((min, min + d)))),
        1 => Just((None, None)),
        1 => (number(), number(), number()).prop_map(|(c, a, b)| (Some(c), Some((a, b)))),
        1 => (number(), number()).prop_map(|(a, b)| (None, Some((a, b)))),
    ]
}

fn group() -> impl Strategy<Value = Value> {
    (
        text(),
        scaling(),
        prop_oneof![4 => text().prop_map(Some), 1 => Just(None)],
        proptest::option::of(text()),
        proptest::option::of(number()),
        proptest::collection::btree_map(text(), text(), 0..3),
        proptest::collection::vec((text(), proptest::option::of(text()), 0usize..3), 0..3),
    )
        .prop_map(|(name, (count, autoscale), flavor, zone, volume, labels, taints)| {
            let effects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
            json!({
                "name": name,
                "count": count,
                "autoscale": autoscale.map(|(min, max)| json!({"min": min, "max": max})),
                "flavor": flavor,
                "availabilityZone": zone,
                "rootVolume": volume.map(|s| json!({"sizeGib": s})),
                "labels": labels,
                "taints": taints.into_iter().map(|(k, v, e)| json!({"key": k, "value": v, "effect": effects[e]})).collect::<Vec<_>>(),
            })
        })
}

fn definition_json() -> impl Strategy<Value = Value> {
    (
        (text(), proptest::option::of(text()), prop_oneof![Just("openstack"), Just("docker")], text()),
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::collection::vec(text(), 0..3),
            proptest::collection::vec(text(), 0..3),
            proptest::option::of(text()),
        ),
        (
            prop_oneof![4 => text().prop_map(Some), 1 => Just(None)],
            number(),
            prop_oneof![4 => text().prop_map(Some), 1 => Just(None)],
            proptest::option::of(number()),
        ),
        proptest::collection::vec(group(), 0..4),
        (proptest::option::of(prop_oneof![4 => 1280i64..9001, 1 => number()]), any::<bool>(), proptest::collection::vec(text(), 0..2), any::<bool>()),
    )
        .prop_map(|((name, ns, provider, version), (region, ext, dns, zones, key), (image, cp_count, cp_flavor, cp_volume), workers, (mtu, lb, cidrs, aa))| {
            json!({
                "name": name, "namespace": ns, "provider": provider, "kubernetesVersion": version,
                "cloud": {"region": region, "externalNetwork": ext, "dnsServers": dns,
                          "availabilityZones": zones, "sshKeyName": key},
                "image": {"name": image},
                "controlPlane": {"count": cp_count, "flavor": cp_flavor,
                                 "rootVolume": cp_volume.map(|s| json!({"sizeGib": s}))},
                "workers": workers,
                "network": {"mtu": mtu, "apiServerLoadBalancer": lb, "apiServerAllowedCidrs": cidrs},
                "antiAffinity": {"enabled": aa},
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn render_refuses_or_renders_valid_objects(def in definition_json(), v1 in any::<bool>()) {
        let def = definition(def);
        let version = if v1 { CapoApiVersion::V1beta1 } else { CapoApiVersion::V1beta2 };
        let opts = RenderOptions { capo_api_version: version, ..RenderOptions::default() };
        let result = render(&def, &opts);
        if std::env::var_os("RENDER_PROPS_STATS").is_some() {
            eprintln!("render: {}", result.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()));
        }
        if let Ok(objects) = result {
            for obj in &objects {
                let found = crds().validate(obj);
                prop_assert!(found.is_empty(), "{:#?}\nfrom {:#?}", found, def);
            }
        }
    }
}
