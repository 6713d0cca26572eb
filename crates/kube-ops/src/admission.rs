//! Which moved types an admission check sees being deleted on the source.
//!
//! The delete-for-move annotation exists for code that looks at an object while it is deleted:
//! a controller's delete path (only reachable while the object has finalizers) and admission on
//! DELETE (validating and mutating webhooks, ValidatingAdmissionPolicies), which receives the
//! object as `oldObject`. An object without finalizers whose type no admission check matches is
//! gone the moment it is deleted, and nothing can read an annotation put on it first, so the
//! executor deletes such objects directly and saves one source write each. This module finds
//! the types that do need it, from the source's real admission configuration.

use std::collections::HashSet;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingWebhookConfiguration,
};
use kube::api::{Api, ListParams};

use crate::cluster::{Backoff, Cluster};
use crate::error::Result;
use crate::graph::TypeInfo;

/// The types (indexes into the plan's types) whose DELETE an admission check on the cluster
/// can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteAdmission {
    /// The admission configuration could not be read: assume every type is seen.
    All,
    /// Only these types are seen.
    Types(HashSet<usize>),
}

impl DeleteAdmission {
    /// Whether a DELETE of type `type_index` may be seen by an admission check.
    pub fn sees(&self, type_index: usize) -> bool {
        match self {
            DeleteAdmission::All => true,
            DeleteAdmission::Types(t) => t.contains(&type_index),
        }
    }
}

/// One admission rule, reduced to what decides whether it matches a DELETE of a resource.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// Operations (`DELETE`, `*`, …).
    pub operations: Vec<String>,
    /// API groups (`""` for core, `*`).
    pub groups: Vec<String>,
    /// Resources (`plural`, `plural/sub`, `*`, `*/*`).
    pub resources: Vec<String>,
}

impl Rule {
    /// Whether the rule matches a DELETE of the main resource of `t`. Versions, scope,
    /// selectors, match conditions and policy bindings are not looked at: matching too much
    /// only costs a write, too little would hide the annotation from a check.
    pub fn matches_delete(&self, t: &TypeInfo) -> bool {
        let op = self.operations.iter().any(|o| o == "DELETE" || o == "*");
        let group = self.groups.iter().any(|g| g == "*" || *g == t.group);
        // `*` is every resource, `*/*` every resource and subresource; `plural/…` names only
        // subresources, which are never deleted.
        let resource = self
            .resources
            .iter()
            .any(|r| r == "*" || r == "*/*" || *r == t.plural);
        op && group && resource
    }
}

/// The rules of a configuration's webhooks (validating and mutating webhooks have the same
/// `rules`, in different types).
fn webhook_rules<'a>(
    rules: impl Iterator<Item = &'a Option<Vec<RuleWithOperations>>>,
) -> Vec<Rule> {
    rules
        .flatten()
        .flatten()
        .map(|r| Rule {
            operations: r.operations.clone().unwrap_or_default(),
            groups: r.api_groups.clone().unwrap_or_default(),
            resources: r.resources.clone().unwrap_or_default(),
        })
        .collect()
}

/// The types of `types` that one of `rules` matches on DELETE.
pub fn seen_types(rules: &[Rule], types: &[TypeInfo]) -> HashSet<usize> {
    types
        .iter()
        .enumerate()
        .filter(|(_, t)| rules.iter().any(|r| r.matches_delete(t)))
        .map(|(i, _)| i)
        .collect()
}

/// Lists one kind of admission configuration; `None` when it cannot be read (403) or the API
/// does not exist there (404: the check cannot exist either, so it contributes no rule).
async fn list_rules<K, F>(
    cluster: &Cluster,
    what: &'static str,
    rules: F,
) -> Result<Option<Vec<Rule>>>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
    F: Fn(&K) -> Vec<Rule>,
{
    let r = cluster
        .call(
            "list",
            || what.to_owned(),
            Backoff::READ,
            false,
            |c| async move { Api::<K>::all(c).list(&ListParams::default()).await },
        )
        .await;
    match r {
        Ok(list) => Ok(Some(list.items.iter().flat_map(&rules).collect())),
        Err(e) if e.status() == Some(404) => Ok(Some(Vec::new())),
        Err(e) if e.status() == Some(403) => {
            tracing::info!(
                what,
                "cannot read the admission configuration: every deleted object gets the delete-for-move annotation"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Reads the cluster's webhooks and admission policies and says which of `types` they see
/// deleted.
pub async fn delete_admission(cluster: &Cluster, types: &[TypeInfo]) -> Result<DeleteAdmission> {
    let (validating, mutating, policies) = tokio::try_join!(
        list_rules::<ValidatingWebhookConfiguration, _>(
            cluster,
            "ValidatingWebhookConfigurations",
            |c| webhook_rules(c.webhooks.iter().flatten().map(|w| &w.rules))
        ),
        list_rules::<MutatingWebhookConfiguration, _>(
            cluster,
            "MutatingWebhookConfigurations",
            |c| webhook_rules(c.webhooks.iter().flatten().map(|w| &w.rules))
        ),
        list_rules::<ValidatingAdmissionPolicy, _>(cluster, "ValidatingAdmissionPolicies", |p| p
            .spec
            .as_ref()
            .and_then(|s| s.match_constraints.as_ref())
            .and_then(|m| m.resource_rules.as_ref())
            .into_iter()
            .flatten()
            .map(|r| Rule {
                operations: r.operations.clone().unwrap_or_default(),
                groups: r.api_groups.clone().unwrap_or_default(),
                resources: r.resources.clone().unwrap_or_default(),
            })
            .collect()),
    )?;
    let (Some(v), Some(m), Some(p)) = (validating, mutating, policies) else {
        return Ok(DeleteAdmission::All);
    };
    let rules: Vec<Rule> = v.into_iter().chain(m).chain(p).collect();
    Ok(DeleteAdmission::Types(seen_types(&rules, types)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(group: &str, plural: &str) -> TypeInfo {
        TypeInfo {
            group: group.into(),
            version: "v1beta2".into(),
            kind: "K".into(),
            plural: plural.into(),
            namespaced: true,
            force_move: false,
            force_move_hierarchy: false,
        }
    }

    fn rule(ops: &[&str], groups: &[&str], resources: &[&str]) -> Rule {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
        Rule {
            operations: v(ops),
            groups: v(groups),
            resources: v(resources),
        }
    }

    #[test]
    fn a_rule_matches_only_deletes_of_its_resources() {
        let machines = t("cluster.x-k8s.io", "machines");
        let secrets = t("", "secrets");
        assert!(rule(&["DELETE"], &["cluster.x-k8s.io"], &["machines"]).matches_delete(&machines));
        assert!(rule(&["*"], &["*"], &["*"]).matches_delete(&machines));
        assert!(rule(&["CREATE", "DELETE"], &[""], &["*/*"]).matches_delete(&secrets));
        // Other operations, groups, resources, or only a subresource: not a DELETE of the object.
        assert!(!rule(&["CREATE", "UPDATE"], &["*"], &["*"]).matches_delete(&machines));
        assert!(
            !rule(
                &["DELETE"],
                &["infrastructure.cluster.x-k8s.io"],
                &["machines"]
            )
            .matches_delete(&machines)
        );
        assert!(!rule(&["DELETE"], &["*"], &["machinesets"]).matches_delete(&machines));
        assert!(!rule(&["DELETE"], &[""], &["machines"]).matches_delete(&machines));
        assert!(!rule(&["DELETE"], &["*"], &["machines/status"]).matches_delete(&machines));
        assert!(!rule(&["DELETE"], &["*"], &["machines/*"]).matches_delete(&machines));
    }

    #[test]
    fn seen_types_are_those_some_rule_matches() {
        let types = [
            t("", "secrets"),
            t("cluster.x-k8s.io", "machines"),
            t("", "configmaps"),
        ];
        let rules = [rule(&["DELETE"], &["cluster.x-k8s.io"], &["machines"])];
        assert_eq!(seen_types(&rules, &types), HashSet::from([1]));
        assert!(seen_types(&[], &types).is_empty());
        assert!(DeleteAdmission::All.sees(7));
        assert!(!DeleteAdmission::Types(HashSet::from([1])).sees(0));
    }
}
