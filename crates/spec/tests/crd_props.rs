//! Property: the CRD validator never panics, whatever the object, and always names it.

mod render_support;

use proptest::prelude::*;
use render_support::*;
use serde_json::{Map, Value, json};
use spec::render::{RenderOptions, render};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A path into a rendered object to replace with junk.
fn rendered_objects() -> Vec<Value> {
    let mut all = render(&maximal_openstack(), &RenderOptions::default()).expect("renders");
    all.extend(render(&docker(), &RenderOptions::default()).expect("renders"));
    all
}

/// Replaces the value at a pseudo-random place (chosen by `steps`) with `junk`.
fn plant(value: &mut Value, steps: &[usize], junk: Value) {
    // Find the JSON pointer first (shared borrow), then replace through it.
    let mut pointer = String::new();
    let mut cur = &*value;
    for step in steps {
        let next = match cur {
            Value::Object(m) if !m.is_empty() => m
                .iter()
                .nth(step % m.len())
                .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v)),
            Value::Array(a) if !a.is_empty() => a
                .get(step % a.len())
                .map(|v| ((step % a.len()).to_string(), v)),
            _ => None,
        };
        let Some((segment, next)) = next else { break };
        pointer.push('/');
        pointer.push_str(&segment);
        cur = next;
    }
    if let Some(slot) = value.pointer_mut(&pointer) {
        *slot = junk;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_objects_of_known_kinds_do_not_panic(spec in any_json(), meta in any_json(), k in 0usize..6) {
        let kinds = [
            ("cluster.x-k8s.io/v1beta2", "Cluster"),
            ("controlplane.cluster.x-k8s.io/v1beta2", "KubeadmControlPlane"),
            ("infrastructure.cluster.x-k8s.io/v1beta2", "OpenStackCluster"),
            ("infrastructure.cluster.x-k8s.io/v1beta1", "OpenStackMachineTemplate"),
            ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
            ("nope/v1", "Nothing"),
        ];
        let (api, kind) = kinds[k];
        let obj = json!({"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec});
        let _ = crds().check(&obj);
    }

    #[test]
    fn junk_planted_in_rendered_objects_does_not_panic(
        which in any::<usize>(),
        steps in proptest::collection::vec(any::<usize>(), 0..8),
        junk in any_json(),
    ) {
        let objects = rendered_objects();
        let mut obj = objects[which % objects.len()].clone();
        plant(&mut obj, &steps, junk);
        for v in crds().validate(&obj) {
            prop_assert!(!v.object.is_empty() && v.path.starts_with('.'));
        }
    }
}
