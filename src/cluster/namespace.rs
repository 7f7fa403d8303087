//! The run's namespace: used only if kubesu owns it (or the config lists it),
//! created with kubesu's ownership label if absent.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};

use super::{Cluster, api_failure, is_conflict};
use crate::failure::{Failure, Result};
use crate::policy::labels::{MANAGED_BY, RUN_LABEL, annotation};

/// What the namespace should look like: as kubesu creates it, and as it
/// keeps it (`tenancy`).
pub struct Wanted<'a> {
    pub name: &'a str,
    /// Besides kubesu's own: the config's and Pod Security's.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Existing namespaces kubesu may use without owning them.
    pub adopt: &'a [String],
    /// Set for per-run namespaces: labelled with the run, so `gc` can tell
    /// whose it is; such a namespace must not exist yet.
    pub run: Option<&'a str>,
    /// Expiry for per-run namespaces.
    pub expires: &'a str,
}

/// Whether this run created the namespace (and so deletes it, per run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Ensured {
    Created,
    Existing {
        /// Listed in `[namespace] adopt`: the administrator's namespace.
        adopted: bool,
        /// Its labels or annotations differ from the wanted ones.
        stale: bool,
    },
}

/// One GET on the fast path; a create only when it is absent. A concurrent
/// creator (another run for the same user) is fine: then it is kubesu's.
pub async fn ensure(cluster: &Cluster, wanted: &Wanted<'_>) -> Result<Ensured> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let reading = format!("reading namespace {}", wanted.name);
    if let Some(existing) = cluster.call(&reading, api.get_opt(wanted.name)).await? {
        return check_usable(wanted, &existing);
    }
    let creating = format!("creating namespace {}", wanted.name);
    match cluster
        .deadline(
            &creating,
            api.create(&PostParams::default(), &new_namespace(wanted)),
        )
        .await?
    {
        Ok(_) => Ok(Ensured::Created),
        Err(e) if is_conflict(&e) => {
            let existing = cluster.call(&reading, api.get(wanted.name)).await?;
            check_usable(wanted, &existing)
        }
        Err(e) => Err(api_failure(&creating, e)),
    }
}

fn new_namespace(wanted: &Wanted<'_>) -> Namespace {
    let mut labels = wanted.labels.clone();
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    let mut annotations = wanted.annotations.clone();
    if let Some(run) = wanted.run {
        labels.insert(RUN_LABEL.into(), run.into());
        annotations.insert(annotation::EXPIRES.into(), wanted.expires.into());
    }
    Namespace {
        metadata: ObjectMeta {
            name: Some(wanted.name.into()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// kubesu never adopts a namespace it did not create or was not told to use
/// (Kubeflow's rule): another team's namespace, kube-system or default would
/// otherwise become the user's.
fn check_usable(wanted: &Wanted<'_>, existing: &Namespace) -> Result<Ensured> {
    let name = wanted.name;
    let empty = BTreeMap::new();
    let labels = existing.metadata.labels.as_ref().unwrap_or(&empty);
    let notes = existing.metadata.annotations.as_ref().unwrap_or(&empty);
    let owned = labels.get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1);
    if !owned && !wanted.adopt.iter().any(|a| a == name) {
        return Err(Failure::denied(format!(
            "namespace {name} exists but was not created by kubesu (no label {}={}); \
             kubesu will not use it. Delete it, pick another namespace template, \
             or list it under [namespace] adopt in the config",
            MANAGED_BY.0, MANAGED_BY.1
        )));
    }
    if wanted.run.is_some() {
        return Err(Failure::software(format!(
            "per-run namespace {name} already exists: run ids must be unique; retry"
        )));
    }
    if existing.metadata.deletion_timestamp.is_some() {
        return Err(Failure::unavailable(format!(
            "namespace {name} is being deleted (by `kubesu gc` or an administrator); retry in a few seconds"
        )));
    }
    let differs = |wanted: &BTreeMap<String, String>, have: &BTreeMap<String, String>| {
        wanted.iter().any(|(k, v)| have.get(k) != Some(v))
    };
    Ok(Ensured::Existing {
        // Listed in `adopt`: the administrator's, labelled or not.
        adopted: wanted.adopt.iter().any(|a| a == name),
        stale: differs(&wanted.labels, labels) || differs(&wanted.annotations, notes),
    })
}

/// Delete a per-run namespace (everything in it goes with it).
pub async fn delete(cluster: &Cluster, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let what = format!("deleting namespace {name}");
    cluster
        .delete(&what, api.delete(name, &Default::default()))
        .await
}

/// Is `name` the per-run namespace of `run` (labelled with it by kubesu)?
pub async fn is_run_namespace(cluster: &Cluster, name: &str, run: &str) -> Result<bool> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let found = cluster
        .call(
            &format!("reading namespace {name}"),
            api.get_metadata_opt(name),
        )
        .await?;
    Ok(found.is_some_and(|ns| {
        let labels = ns.metadata.labels.unwrap_or_default();
        labels.get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1)
            && labels.get(RUN_LABEL).map(String::as_str) == Some(run)
    }))
}

/// Per-run namespaces not being deleted, for `gc`: (name, run, created).
pub async fn list_per_run(cluster: &Cluster) -> Result<Vec<(String, String, Option<Timestamp>)>> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let selector = format!("{}={},{RUN_LABEL}", MANAGED_BY.0, MANAGED_BY.1);
    let found = cluster
        .call(
            "listing per-run namespaces",
            api.list_metadata(&ListParams::default().labels(&selector)),
        )
        .await?;
    Ok(found
        .items
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| {
            let run = n.metadata.labels.as_ref()?.get(RUN_LABEL)?.clone();
            Some((
                n.metadata.name?,
                run,
                n.metadata.creation_timestamp.map(|t| t.0),
            ))
        })
        .collect())
}
