//! The lease: the run's ServiceAccount, which records who holds it (host,
//! pid, boot id, process start, caller, user, expiry) so that `gc` can tell a
//! live run from a dead one with nothing kept on local disk, and the
//! RoleBinding that gives it the configured ClusterRole in its namespace.
//! Deleting the ServiceAccount invalidates its tokens (within the API
//! server's 10 s cache of successful token checks); the RoleBinding's owner
//! reference lets the garbage collector remove it too.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};

use super::Cluster;
use crate::failure::{Failure, Result};
use crate::policy::identity::RunIdentity;
use crate::policy::labels::{MANAGED_BY, RUN_LABEL, USER_LABEL, annotation};
use crate::policy::tenancy::Objects;

/// The lease a run takes: its identity, and who holds it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub identity: RunIdentity,
    pub holder: Holder,
    /// The administrator's labels and annotations for every object.
    pub objects: Objects,
}

/// Who holds a lease, recorded in annotations: what `gc` judges a run's
/// liveness by.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Holder {
    pub user: String,
    pub caller: String,
    /// RFC 3339.
    pub expires: String,
    pub host: String,
    pub pid: u32,
    pub process_start: u64,
    pub boot_id: String,
    pub command: String,
}

impl Lease {
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.objects.labels.clone();
        labels.extend([
            (MANAGED_BY.0.into(), MANAGED_BY.1.into()),
            (RUN_LABEL.into(), self.identity.run.to_string()),
            (
                USER_LABEL.into(),
                crate::policy::naming::user_label(&self.holder.user),
            ),
        ]);
        labels
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        let mut annotations = self.objects.annotations.clone();
        annotations.extend(self.holder.annotations());
        annotations
    }
}

impl Holder {
    fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (annotation::EXPIRES.into(), self.expires.clone()),
            (annotation::USER.into(), self.user.clone()),
            (annotation::CALLER.into(), self.caller.clone()),
            (annotation::HOST.into(), self.host.clone()),
            (annotation::PID.into(), self.pid.to_string()),
            (
                annotation::PROCESS_START.into(),
                self.process_start.to_string(),
            ),
            (annotation::BOOT_ID.into(), self.boot_id.clone()),
            (annotation::COMMAND.into(), self.command.clone()),
        ])
    }
}

/// A lease as found in the cluster, its names as read: anyone allowed to
/// write ServiceAccounts could have written them, so they stay text.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    pub run: String,
    pub namespace: String,
    pub service_account: String,
    #[serde(flatten)]
    pub holder: Holder,
    /// RFC 3339, from the ServiceAccount's creation timestamp.
    pub created: String,
}

impl Found {
    /// Read the record back from the metadata of a ServiceAccount kubesu
    /// created. Missing annotations read as empty: `gc` then judges by expiry
    /// alone, and an unreadable expiry counts as expired.
    pub fn from_metadata(meta: &ObjectMeta) -> Option<Found> {
        let labels = meta.labels.as_ref()?;
        if labels.get(MANAGED_BY.0).map(String::as_str) != Some(MANAGED_BY.1) {
            return None;
        }
        let empty = BTreeMap::new();
        let notes = meta.annotations.as_ref().unwrap_or(&empty);
        let note = |key: &str| notes.get(key).cloned().unwrap_or_default();
        Some(Found {
            run: labels.get(RUN_LABEL).cloned().unwrap_or_default(),
            namespace: meta.namespace.clone()?,
            service_account: meta.name.clone()?,
            holder: Holder {
                user: note(annotation::USER),
                caller: note(annotation::CALLER),
                expires: note(annotation::EXPIRES),
                host: note(annotation::HOST),
                pid: note(annotation::PID).parse().unwrap_or(0),
                process_start: note(annotation::PROCESS_START).parse().unwrap_or(0),
                boot_id: note(annotation::BOOT_ID),
                command: note(annotation::COMMAND),
            },
            created: meta
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
        })
    }
}

/// Every lease in the cluster matching `selector` (added to kubesu's own
/// label): one list call across all namespaces, metadata only (the record
/// is all labels and annotations; it keeps `gc` of thousands small).
pub async fn list(cluster: &Cluster, selector: Option<&str>) -> Result<Vec<Found>> {
    let api: Api<ServiceAccount> = Api::all(cluster.client.clone());
    let mut labels = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    if let Some(extra) = selector {
        labels = format!("{labels},{extra}");
    }
    let found = cluster
        .call(
            "listing kubesu's ServiceAccounts (leases)",
            api.list_metadata(&ListParams::default().labels(&labels)),
        )
        .await?;
    Ok(found
        .items
        .iter()
        .filter_map(|a| Found::from_metadata(&a.metadata))
        .collect())
}

/// Create the ServiceAccount; returns its uid, for owner references.
pub async fn create(cluster: &Cluster, lease: &Lease) -> Result<String> {
    let id = &lease.identity;
    let api: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), &id.namespace);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(id.service_account.clone()),
            labels: Some(lease.labels()),
            annotations: Some(lease.annotations()),
            ..Default::default()
        },
        ..Default::default()
    };
    let what = format!(
        "creating ServiceAccount {}/{} for user {}",
        id.namespace, id.service_account, lease.holder.user
    );
    let created = cluster
        .call(&what, api.create(&PostParams::default(), &account))
        .await?;
    Ok(created.metadata.uid.unwrap_or_default())
}

/// Move the lease's expiry after its token was renewed, so that `gc` keeps
/// its hands off a run that outlives its first token.
pub async fn extend(cluster: &Cluster, namespace: &str, name: &str, expires: &str) -> Result<()> {
    let api: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), namespace);
    let patch =
        serde_json::json!({ "metadata": { "annotations": { annotation::EXPIRES: expires } } });
    let what = format!("extending lease ServiceAccount {namespace}/{name}");
    cluster
        .call(
            &what,
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await
        .map(drop)
}

/// How long the API server's authorizer may take to see a new RoleBinding.
/// It reads RBAC from an informer cache: under load a binding created a
/// moment ago may not be effective yet (measured on 1.37 with 30 concurrent
/// runs: a command's first call refused with 403).
const BINDING_PROPAGATION: Duration = Duration::from_secs(10);
const BINDING_POLL: Duration = Duration::from_millis(50);

/// Wait until the API server's authorizer grants the run's ServiceAccount
/// `probe` (a rule its ClusterRole holds) in its namespace, so that the
/// command's first call is not refused. One SubjectAccessReview when the
/// binding is already effective, which is the usual case.
pub async fn await_binding(
    cluster: &Cluster,
    lease: &Lease,
    probe: (&str, &str, &str),
) -> Result<()> {
    let id = &lease.identity;
    let (group, resource, verb) = probe;
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!(
                "system:serviceaccount:{}:{}",
                id.namespace, id.service_account
            )),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", id.namespace),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.into()),
                resource: Some(resource.into()),
                verb: Some(verb.into()),
                namespace: Some(id.namespace.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(cluster.client.clone());
    let what = format!(
        "asking whether ServiceAccount {}/{} may {verb} {resource} yet",
        id.namespace, id.service_account
    );
    let started = std::time::Instant::now();
    loop {
        let answer = cluster
            .call(&what, api.create(&PostParams::default(), &review))
            .await?;
        if answer.status.is_some_and(|s| s.allowed) {
            return Ok(());
        }
        if started.elapsed() >= BINDING_PROPAGATION {
            return Err(Failure::unavailable(format!(
                "the RoleBinding of ServiceAccount {}/{} was not effective after {}s (it may not \
                 {verb} {resource}): check that its ClusterRole grants what `kubesu rbac` prints \
                 (kubesu check), or retry if the API server is overloaded",
                id.namespace,
                id.service_account,
                BINDING_PROPAGATION.as_secs()
            )));
        }
        tokio::time::sleep(BINDING_POLL).await;
    }
}

/// Bind the configured ClusterRole to the run's ServiceAccount, in its
/// namespace only.
pub async fn bind(
    cluster: &Cluster,
    lease: &Lease,
    cluster_role: &str,
    account_uid: &str,
) -> Result<()> {
    let id = &lease.identity;
    let api: Api<RoleBinding> = Api::namespaced(cluster.client.clone(), &id.namespace);
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(id.service_account.clone()),
            labels: Some(lease.labels()),
            annotations: Some(lease.objects.annotations.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "ServiceAccount".into(),
                name: id.service_account.clone(),
                uid: account_uid.into(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: cluster_role.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: id.service_account.clone(),
            namespace: Some(id.namespace.clone()),
            ..Default::default()
        }]),
    };
    let what = format!(
        "binding ClusterRole {cluster_role} to ServiceAccount {}/{}",
        id.namespace, id.service_account
    );
    cluster
        .call(&what, api.create(&PostParams::default(), &binding))
        .await
        .map(drop)
}

/// Delete the RoleBinding and the ServiceAccount, concurrently; either being
/// gone already is success.
pub async fn release(cluster: &Cluster, namespace: &str, name: &str) -> Result<()> {
    let bindings: Api<RoleBinding> = Api::namespaced(cluster.client.clone(), namespace);
    let accounts: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), namespace);
    let params = DeleteParams::background();
    let what_binding = format!("deleting RoleBinding {namespace}/{name}");
    let what_account = format!("deleting ServiceAccount {namespace}/{name}");
    let (binding, account) = tokio::join!(
        cluster.delete(&what_binding, bindings.delete(name, &params)),
        cluster.delete(&what_account, accounts.delete(name, &params)),
    );
    // The account's failure first: it is what invalidates the token.
    account.and(binding)
}

/// kubesu's RoleBindings, in every namespace, for `gc`: (namespace, name,
/// run).
pub async fn list_bindings(cluster: &Cluster) -> Result<Vec<(String, String, String)>> {
    let api: Api<RoleBinding> = Api::all(cluster.client.clone());
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let found = cluster
        .call(
            "listing kubesu's RoleBindings",
            api.list_metadata(&ListParams::default().labels(&selector)),
        )
        .await?;
    Ok(found
        .items
        .into_iter()
        .filter_map(|b| {
            let run = b.metadata.labels.as_ref()?.get(RUN_LABEL)?.clone();
            Some((b.metadata.namespace?, b.metadata.name?, run))
        })
        .collect())
}

/// Delete one RoleBinding (`gc`: one whose lease is gone already).
pub async fn delete_binding(cluster: &Cluster, namespace: &str, name: &str) -> Result<()> {
    let api: Api<RoleBinding> = Api::namespaced(cluster.client.clone(), namespace);
    let what = format!("deleting RoleBinding {namespace}/{name}");
    cluster
        .delete(&what, api.delete(name, &DeleteParams::background()))
        .await
}
