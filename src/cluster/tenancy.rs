//! The namespace policy kubesu keeps on the namespaces it owns: Pod Security
//! labels, a ResourceQuota, a LimitRange and an isolating NetworkPolicy. All
//! of it is server-side applied under kubesu's field manager, when the
//! namespace is created and again at each run, so an object someone edited
//! or deleted is back before the next command starts. The applies run beside
//! the lease and the token: they add no sequential round trip to a run.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;

use super::namespace::Ensured;
use super::{Cluster, api_failure, status_of};
use crate::failure::{Failure, Result};
use crate::policy::config::Config;
use crate::policy::labels::MANAGED_BY;
use crate::policy::tenancy::{self, Resources};

/// kubesu's field manager: what it applies is recorded as its own, and a
/// later apply by kubesu takes those fields back from whoever changed them.
pub const FIELD_MANAGER: &str = "kubesu";

/// The names of the objects kubesu keeps in each of its namespaces.
pub const QUOTA: &str = "kubesu-quota";
pub const LIMITS: &str = "kubesu-limits";
pub const ISOLATION: &str = "kubesu-isolation";

/// The labels a namespace of kubesu's carries, besides kubesu's ownership
/// label: the administrator's and Pod Security's (which win).
pub fn namespace_labels(config: &Config) -> BTreeMap<String, String> {
    let mut labels = config.objects.labels.clone();
    labels.extend(config.namespace.labels.clone());
    labels.extend(
        config
            .namespace
            .pod_security
            .labels()
            .map(|(k, v)| (k.to_string(), v)),
    );
    labels
}

pub fn namespace_annotations(config: &Config) -> BTreeMap<String, String> {
    let mut annotations = config.objects.annotations.clone();
    annotations.extend(config.namespace.annotations.clone());
    annotations
}

/// Whether kubesu keeps the policy of a namespace `ensured` found: always
/// on its own, on an adopted one only if the config says so.
fn managed(config: &Config, ensured: Ensured) -> bool {
    match ensured {
        Ensured::Created => true,
        Ensured::Existing { adopted, .. } => !adopted || config.namespace.manage_adopted,
    }
}

/// Put the namespace's labels back if someone changed them. Before any
/// token is minted there: Pod Security must hold for the run's pods (and
/// kubesu's admission policy refuses tokens where it is not enforced). A
/// round trip only when the labels are stale.
pub async fn relabel(
    cluster: &Cluster,
    config: &Config,
    namespace: &str,
    ensured: Ensured,
) -> Result<()> {
    let Ensured::Existing { adopted, stale } = ensured else {
        return Ok(());
    };
    if !stale || !managed(config, ensured) {
        return Ok(());
    }
    let mut labels = namespace_labels(config);
    if !adopted {
        labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    }
    let relabelled = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.into()),
            labels: Some(labels),
            annotations: Some(namespace_annotations(config)),
            ..Default::default()
        },
        ..Default::default()
    };
    server_side_apply(cluster, Api::all(cluster.client.clone()), &relabelled).await
}

/// Apply the quota, the limits and the isolation to `namespace`, as
/// `ensured` found it: beside the lease, not before it.
pub async fn apply(
    cluster: &Cluster,
    config: &Config,
    namespace: &str,
    ensured: Ensured,
) -> Result<()> {
    if !managed(config, ensured) {
        return Ok(());
    }
    let policy = &config.namespace;
    let metadata = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        labels: Some(object_labels(config)),
        annotations: Some(config.objects.annotations.clone()),
        ..Default::default()
    };
    let quota = async {
        let Some(hard) = &policy.quota else {
            return Ok(());
        };
        let quota = ResourceQuota {
            metadata: metadata(QUOTA),
            spec: Some(ResourceQuotaSpec {
                hard: Some(quantities(hard)),
                ..Default::default()
            }),
            ..Default::default()
        };
        server_side_apply(
            cluster,
            Api::namespaced(cluster.client.clone(), namespace),
            &quota,
        )
        .await
    };
    let limits = async {
        let Some(limits) = &policy.limits else {
            return Ok(());
        };
        let some = |r: &Resources| (!r.is_empty()).then(|| quantities(r));
        let range = LimitRange {
            metadata: metadata(LIMITS),
            spec: Some(LimitRangeSpec {
                limits: vec![LimitRangeItem {
                    type_: "Container".into(),
                    default: some(&limits.default),
                    default_request: some(&limits.default_request),
                    max: some(&limits.max),
                    ..Default::default()
                }],
            }),
        };
        server_side_apply(
            cluster,
            Api::namespaced(cluster.client.clone(), namespace),
            &range,
        )
        .await
    };
    let isolation = async {
        if !policy.isolate {
            return Ok(());
        }
        server_side_apply(
            cluster,
            Api::namespaced(cluster.client.clone(), namespace),
            &isolation(metadata(ISOLATION)),
        )
        .await
    };
    let (quota, limits, isolation) = tokio::join!(quota, limits, isolation);
    quota.and(limits).and(isolation)
}

/// Ingress to every pod of the namespace only from pods of the namespace:
/// a driver hears its executors, nobody else's. Egress is not touched.
pub fn isolation(metadata: ObjectMeta) -> NetworkPolicy {
    NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector::default()),
                    ..Default::default()
                }]),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// The labels of the policy objects: kubesu's and the administrator's.
fn object_labels(config: &Config) -> BTreeMap<String, String> {
    let mut labels = config.objects.labels.clone();
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    labels
}

fn quantities(resources: &Resources) -> BTreeMap<String, Quantity> {
    resources
        .iter()
        .map(|(name, q)| (name.as_str().to_string(), Quantity(q.as_str().into())))
        .collect()
}

async fn server_side_apply<K>(cluster: &Cluster, api: Api<K>, object: &K) -> Result<()>
where
    K: Resource<DynamicType = ()>
        + Clone
        + Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let what = match &object.meta().namespace {
        Some(namespace) => format!("applying {} {namespace}/{name}", K::kind(&())),
        None => format!("applying {} {name}", K::kind(&())),
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match cluster
        .deadline(&what, api.patch(&name, &params, &Patch::Apply(object)))
        .await?
    {
        Ok(_) => Ok(()),
        // Refused by RBAC or by an admission policy: the namespace would be
        // run without the policy the administrator asked for.
        Err(e) if status_of(&e) == Some(403) => Err(Failure::denied(format!(
            "{what}: refused ({e}); the run does not start without its namespace policy. \
             Grant kubesu's identity what `kubesu rbac` prints and check `kubesu check`"
        ))),
        // Invalid: values the config's grammar admits but the API server
        // does not (a default above the maximum). The config must change.
        Err(e) if status_of(&e) == Some(422) => Err(Failure::config(format!(
            "{what}: the API server finds it invalid ({e}); fix [namespace] quota or limits \
             in kubesu's config (a default may not exceed the maximum) and run `kubesu check`"
        ))),
        Err(e) => Err(api_failure(&what, e)),
    }
}

/// What differs between kubesu's namespaces and the config's policy:
/// (namespaces looked at, each namespace that differs with what differs).
/// One list per kind, by kubesu's label, whatever the number of namespaces.
pub async fn drift(
    cluster: &Cluster,
    config: &Config,
) -> Result<(usize, Vec<(String, Vec<String>)>)> {
    let mine = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let quotas: Api<ResourceQuota> = Api::all(cluster.client.clone());
    let ranges: Api<LimitRange> = Api::all(cluster.client.clone());
    let isolations: Api<NetworkPolicy> = Api::all(cluster.client.clone());
    let (namespaces, quotas, ranges, isolations) = tokio::join!(
        cluster.call(
            "listing kubesu's namespaces",
            namespaces.list_metadata(&mine)
        ),
        cluster.call("listing kubesu's ResourceQuotas", quotas.list(&mine)),
        cluster.call("listing kubesu's LimitRanges", ranges.list(&mine)),
        cluster.call("listing kubesu's NetworkPolicies", isolations.list(&mine)),
    );
    let (quotas, ranges, isolations) = (quotas?, ranges?, isolations?);
    let policy = &config.namespace;
    let wanted_labels = namespace_labels(config);
    let mut looked_at = 0;
    let mut drifted = Vec::new();
    for ns in namespaces?.items {
        let Some(name) = ns.metadata.name.clone() else {
            continue;
        };
        let adopted = policy.adopt.contains(&name);
        if ns.metadata.deletion_timestamp.is_some() || (adopted && !policy.manage_adopted) {
            continue;
        }
        looked_at += 1;
        let mut problems = Vec::new();
        let labels = ns.metadata.labels.unwrap_or_default();
        for (key, value) in &wanted_labels {
            match labels.get(key) {
                Some(have) if have == value => {}
                Some(have) => problems.push(format!("label {key} is {have:?}, not {value:?}")),
                None => problems.push(format!("label {key} is missing")),
            }
        }
        let named = |meta: &ObjectMeta, wanted: &str| {
            meta.namespace.as_deref() == Some(name.as_str()) && meta.name.as_deref() == Some(wanted)
        };
        if let Some(hard) = &policy.quota {
            match quotas.items.iter().find(|q| named(&q.metadata, QUOTA)) {
                None => problems.push(format!("ResourceQuota {QUOTA} is missing")),
                Some(q) => {
                    let have = q.spec.as_ref().and_then(|s| s.hard.as_ref());
                    problems.extend(differences(&format!("{QUOTA} hard"), hard, have));
                }
            }
        }
        if let Some(limits) = &policy.limits {
            match ranges.items.iter().find(|r| named(&r.metadata, LIMITS)) {
                None => problems.push(format!("LimitRange {LIMITS} is missing")),
                Some(r) => {
                    let item = r.spec.as_ref().and_then(|s| s.limits.first());
                    for (what, wanted, have) in [
                        (
                            "default",
                            &limits.default,
                            item.and_then(|i| i.default.as_ref()),
                        ),
                        (
                            "default_request",
                            &limits.default_request,
                            item.and_then(|i| i.default_request.as_ref()),
                        ),
                        ("max", &limits.max, item.and_then(|i| i.max.as_ref())),
                    ] {
                        problems.extend(differences(&format!("{LIMITS} {what}"), wanted, have));
                    }
                }
            }
        }
        if policy.isolate {
            let wanted = isolation(ObjectMeta::default()).spec;
            match isolations
                .items
                .iter()
                .find(|p| named(&p.metadata, ISOLATION))
            {
                None => problems.push(format!("NetworkPolicy {ISOLATION} is missing")),
                Some(p) if p.spec != wanted => {
                    problems.push(format!("NetworkPolicy {ISOLATION} was changed"))
                }
                Some(_) => {}
            }
        }
        if !problems.is_empty() {
            drifted.push((name, problems));
        }
    }
    Ok((looked_at, drifted))
}

/// Quantities compared by amount: the API server writes them in its own
/// canonical form ("0.5" comes back as "500m").
fn differences(
    what: &str,
    wanted: &Resources,
    have: Option<&BTreeMap<String, Quantity>>,
) -> Vec<String> {
    let empty = BTreeMap::new();
    let have = have.unwrap_or(&empty);
    let mut found = Vec::new();
    for (name, quantity) in wanted {
        match have.get(name.as_str()) {
            Some(q) if same_amount(quantity.as_str(), &q.0) => {}
            Some(q) => found.push(format!(
                "{what} {} is {}, not {quantity}",
                name.as_str(),
                q.0
            )),
            None => found.push(format!("{what} {} is missing", name.as_str())),
        }
    }
    for name in have.keys() {
        if !wanted.keys().any(|w| w.as_str() == name) {
            found.push(format!("{what} has {name}, which the config does not"));
        }
    }
    found
}

fn same_amount(a: &str, b: &str) -> bool {
    match (tenancy::amount(a), tenancy::amount(b)) {
        (Some(a), Some(b)) => (a - b).abs() <= a.abs().max(b.abs()) * 1e-9,
        _ => a == b,
    }
}
