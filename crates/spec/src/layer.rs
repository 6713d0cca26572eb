//! Layering: a shared file (`clusters/defaults.yaml`) merged under each cluster's own file.
//!
//! The rules, applied from the top of the two documents down:
//!
//! 1. **Mappings merge key by key.** A key only in one layer is kept; a key in both is merged by
//!    these same rules, the cluster's value winning over the shared one.
//! 2. **`null` removes.** A key set to `null` (or `~`) in the cluster's file drops the shared value,
//!    so the built-in default applies again.
//! 3. **Lists of named items merge by name.** When every item of both lists is a mapping with a
//!    string `name` (node groups under `workers`, `owners`), items with the same name are merged by
//!    these rules; the shared items keep their order and the cluster's new items follow.
//! 4. **Anything else is replaced.** Scalars, and lists that are not named lists (DNS servers,
//!    CIDRs, taints), are taken whole from the cluster's file.
//!
//! Every value keeps the position of the file it came from, so an error in a shared setting is
//! reported in `defaults.yaml`, not in the cluster that inherited it.

use crate::yaml::{Node, Value};

/// Merges `over` (the more specific layer) onto `base`.
pub fn merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (Value::Map(base_entries), Value::Map(over_entries)) => {
            let mut out: Vec<(crate::yaml::Key, Node)> = Vec::with_capacity(base_entries.len());
            let mut over_entries: Vec<Option<(crate::yaml::Key, Node)>> =
                over_entries.into_iter().map(Some).collect();
            for (key, base_value) in base_entries {
                let found = over_entries
                    .iter_mut()
                    .find(|e| e.as_ref().is_some_and(|(k, _)| k.name == key.name))
                    .and_then(Option::take);
                match found {
                    None => out.push((key, base_value)),
                    Some((_, over_value)) if over_value.value == Value::Null => {}
                    Some((over_key, over_value)) => {
                        out.push((over_key, merge(base_value, over_value)));
                    }
                }
            }
            out.extend(
                over_entries
                    .into_iter()
                    .flatten()
                    .filter(|(_, v)| v.value != Value::Null),
            );
            Node {
                pos: over.pos,
                value: Value::Map(out),
            }
        }
        (Value::Seq(base_items), Value::Seq(over_items))
            if is_named_list(&base_items) && is_named_list(&over_items) =>
        {
            let mut over_items: Vec<Option<Node>> = over_items.into_iter().map(Some).collect();
            let mut out = Vec::with_capacity(base_items.len() + over_items.len());
            for item in base_items {
                let name = item_name(&item).map(str::to_string);
                let found = over_items
                    .iter_mut()
                    .find(|o| o.as_ref().and_then(item_name) == name.as_deref())
                    .and_then(Option::take);
                out.push(match found {
                    Some(o) => merge(item, o),
                    None => item,
                });
            }
            out.extend(over_items.into_iter().flatten());
            Node {
                pos: over.pos,
                value: Value::Seq(out),
            }
        }
        (_, over_value) => Node {
            pos: over.pos,
            value: over_value,
        },
    }
}

fn item_name(n: &Node) -> Option<&str> {
    match n.get("name").map(|v| &v.value) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn is_named_list(items: &[Node]) -> bool {
    !items.is_empty() && items.iter().all(|i| item_name(i).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{PosTable, parse};

    fn layered(base: &str, over: &str) -> (serde_json::Value, PosTable) {
        let (Ok(b), Ok(o)) = (parse(base, 0), parse(over, 1)) else {
            panic!("parse failed")
        };
        let mut table = PosTable::new();
        let v = merge(b, o).to_json(&mut String::new(), &mut table);
        (v, table)
    }

    #[test]
    fn mappings_merge_and_the_cluster_wins() {
        let (v, t) = layered(
            "cloud: {name: shared, region: r1}\ncontrolPlane: {flavor: big}\n",
            "cloud: {region: r2}\n",
        );
        assert_eq!(v["cloud"]["name"], "shared");
        assert_eq!(v["cloud"]["region"], "r2");
        assert_eq!(v["controlPlane"]["flavor"], "big");
        assert_eq!(t["cloud.name"].file, 0);
        assert_eq!(t["cloud.region"].file, 1);
    }

    #[test]
    fn null_removes_a_shared_value() {
        let (v, _) = layered("cloud: {region: r1, name: x}\n", "cloud: {region: ~}\n");
        assert_eq!(v["cloud"].get("region"), None);
        assert_eq!(v["cloud"]["name"], "x");
    }

    #[test]
    fn named_lists_merge_by_name() {
        let (v, t) = layered(
            "workers:\n  - {name: a, flavor: f1, count: 1}\n  - {name: b, flavor: f1}\n",
            "workers:\n  - {name: b, count: 5}\n  - {name: c, count: 2}\n",
        );
        let names: Vec<_> = v["workers"]
            .as_array()
            .map(|a| a.iter().map(|w| w["name"].clone()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(v["workers"][1]["flavor"], "f1");
        assert_eq!(v["workers"][1]["count"], 5);
        assert_eq!(t["workers[1].flavor"].file, 0);
        assert_eq!(t["workers[1].count"].file, 1);
    }

    #[test]
    fn other_lists_and_scalars_are_replaced() {
        let (v, _) = layered(
            "cloud: {dnsServers: [1.1.1.1, 8.8.8.8]}\nkubernetesVersion: v1.30.0\n",
            "cloud: {dnsServers: [9.9.9.9]}\nkubernetesVersion: v1.33.1\n",
        );
        assert_eq!(v["cloud"]["dnsServers"], serde_json::json!(["9.9.9.9"]));
        assert_eq!(v["kubernetesVersion"], "v1.33.1");
    }

    #[test]
    fn a_type_change_takes_the_cluster_value() {
        let (v, _) = layered("workers: [{name: a}]\n", "workers: none\n");
        assert_eq!(v["workers"], "none");
    }
}
