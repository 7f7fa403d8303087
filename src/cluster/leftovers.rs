//! What a run leaves in its namespace: above all Spark's driver and
//! executor pods, the driver's Service, ConfigMaps and volume claims. They
//! carry the run's label (kubesu forces it on spark-submit, and on 1.30+
//! its admission policy refuses a run's token any object without it), or
//! Spark's application id, or are owned by such a pod. A client-mode
//! driver that dies does not delete its executors; kubesu does, at
//! revocation and in `gc`. Before 1.30 nothing makes a run label what it
//! makes: pods are also found by the ServiceAccount they run as. A
//! cluster-mode driver's log is read before its pod goes.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use kube::api::{DeleteParams, ListParams, LogParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

use super::Cluster;
use crate::failure::Result;
use crate::policy::labels::{
    self, APP_ID_PREFIX, APP_SELECTOR_LABEL, DRIVER_ROLE, RUN_LABEL, SPARK_ROLE_LABEL,
};

/// The kinds Spark creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Kind {
    Pod,
    Service,
    ConfigMap,
    PersistentVolumeClaim,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::Pod,
        Kind::Service,
        Kind::ConfigMap,
        Kind::PersistentVolumeClaim,
    ];
}

/// A run's leftovers of one kind in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Leftover {
    pub kind: Kind,
    pub namespace: String,
    pub run: String,
}

/// Delete everything of the run's in `namespace`, all kinds concurrently.
pub async fn delete_run(cluster: &Cluster, namespace: &str, run: &str) -> Result<()> {
    let kinds = Kind::ALL.map(|kind| delete_one(cluster, kind, namespace, run));
    futures::future::join_all(kinds).await.into_iter().collect()
}

/// Every (kind, namespace, run) that has labelled objects, across the
/// cluster.
pub async fn list_all(cluster: &Cluster) -> Result<BTreeSet<Leftover>> {
    let (pods, services, maps, claims, app_maps) = tokio::join!(
        list_kind::<Pod>(cluster, Kind::Pod),
        list_kind::<Service>(cluster, Kind::Service),
        list_kind::<ConfigMap>(cluster, Kind::ConfigMap),
        list_kind::<PersistentVolumeClaim>(cluster, Kind::PersistentVolumeClaim),
        list_app_config_maps(cluster),
    );
    let mut all = pods?;
    all.extend(services?);
    all.extend(maps?);
    all.extend(claims?);
    all.extend(app_maps?);
    Ok(all)
}

/// Delete a run's objects of one kind. ConfigMaps are also matched by the
/// application id: a client-mode driver's executor ConfigMap carries no
/// pod label, only Spark's `spark-app-selector`.
pub async fn delete_one(cluster: &Cluster, kind: Kind, namespace: &str, run: &str) -> Result<()> {
    let by_run = format!("{RUN_LABEL}={run}");
    let labelled = ListParams::default().labels(&by_run);
    match kind {
        Kind::Pod => delete_matching::<Pod>(cluster, namespace, &labelled, &by_run).await,
        Kind::Service => delete_services(cluster, namespace, &by_run).await,
        Kind::ConfigMap => {
            let by_app = format!("{APP_SELECTOR_LABEL}={}", labels::app_id(run));
            let of_app = ListParams::default().labels(&by_app);
            let (run_maps, app_maps) = tokio::join!(
                delete_matching::<ConfigMap>(cluster, namespace, &labelled, &by_run),
                delete_matching::<ConfigMap>(cluster, namespace, &of_app, &by_app),
            );
            run_maps.and(app_maps)
        }
        Kind::PersistentVolumeClaim => {
            delete_matching::<PersistentVolumeClaim>(cluster, namespace, &labelled, &by_run).await
        }
    }
}

/// Delete the pods in `namespace` that run as `service_account`, labelled
/// or not. Before Kubernetes 1.30 no admission policy makes a run label
/// its pods, and a pod outlives the token it was made with: this finds the
/// run's pods (not the ones it made to run as another account).
pub async fn delete_pods_of(
    cluster: &Cluster,
    namespace: &str,
    service_account: &str,
) -> Result<()> {
    let field = format!("spec.serviceAccountName={service_account}");
    let running_as = ListParams::default().fields(&field);
    delete_matching::<Pod>(cluster, namespace, &running_as, &field).await
}

/// The run's driver pods in `namespace`: Spark labels a cluster-mode driver
/// with its role, and kubesu forces the run's label on it. (A user may
/// label pods of their own so too: callers bound what they do per pod.)
pub async fn drivers(cluster: &Cluster, namespace: &str, run: &str) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let selector = format!("{SPARK_ROLE_LABEL}={DRIVER_ROLE},{RUN_LABEL}={run}");
    let what = format!("listing the driver pods of run {run} in namespace {namespace}");
    let found = cluster
        .call(&what, api.list(&ListParams::default().labels(&selector)))
        .await?;
    Ok(found.items)
}

/// The container of `pod` that runs Spark's driver, named when the pod has
/// several (a pod template may add some): Spark's default name if there,
/// else the first, as Spark picks it from a template.
pub fn driver_container(pod: &Pod) -> Option<String> {
    const SPARK_DRIVER_CONTAINER: &str = "spark-kubernetes-driver";
    let containers = &pod.spec.as_ref()?.containers;
    if containers.len() < 2 {
        return None;
    }
    containers
        .iter()
        .find(|c| c.name == SPARK_DRIVER_CONTAINER)
        .or(containers.first())
        .map(|c| c.name.clone())
}

/// The start of a pod's log, at most `max` bytes (limitBytes, and cut here
/// too: the server's limit is approximate). The call has the request
/// deadline; reading the body does not: callers bound it.
pub async fn log_start(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    container: Option<String>,
    max: u64,
) -> Result<impl futures::AsyncRead + use<>> {
    use futures::AsyncReadExt;
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let params = LogParams {
        container,
        limit_bytes: Some(i64::try_from(max).unwrap_or(i64::MAX)),
        ..LogParams::default()
    };
    let what = format!("reading the log of pod {namespace}/{pod}");
    let stream = cluster.call(&what, api.log_stream(pod, &params)).await?;
    Ok(stream.take(max))
}

/// One deletecollection of the objects of kind K that `params` select
/// (`selector`, as shown in an error).
async fn delete_matching<K>(
    cluster: &Cluster,
    namespace: &str,
    params: &ListParams,
    selector: &str,
) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(cluster.client.clone(), namespace);
    let what = format!(
        "deleting {}s with {selector} in namespace {namespace}",
        K::kind(&Default::default())
    );
    cluster
        .delete(
            &what,
            api.delete_collection(&DeleteParams::background(), params),
        )
        .await
}

/// ConfigMaps that carry only Spark's application id, mapped back to runs.
async fn list_app_config_maps(cluster: &Cluster) -> Result<BTreeSet<Leftover>> {
    let api: Api<ConfigMap> = Api::all(cluster.client.clone());
    let what = format!("listing ConfigMaps labelled {APP_SELECTOR_LABEL}");
    let found = cluster
        .call(
            &what,
            api.list_metadata(&ListParams::default().labels(APP_SELECTOR_LABEL)),
        )
        .await?;
    Ok(found
        .items
        .iter()
        .filter_map(|o| {
            let app = o.metadata.labels.as_ref()?.get(APP_SELECTOR_LABEL)?;
            Some(Leftover {
                kind: Kind::ConfigMap,
                namespace: o.metadata.namespace.clone()?,
                run: app.strip_prefix(APP_ID_PREFIX)?.to_string(),
            })
        })
        .collect())
}

/// Services have no deletecollection before Kubernetes 1.22: list, then
/// delete each.
async fn delete_services(cluster: &Cluster, namespace: &str, selector: &str) -> Result<()> {
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), namespace);
    let what = format!("deleting Services labelled {selector} in namespace {namespace}");
    let selector = ListParams::default().labels(selector);
    let found = cluster.call(&what, api.list_metadata(&selector)).await?;
    let deletions = found
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .map(|name| {
            let api = api.clone();
            let what = what.clone();
            async move {
                cluster
                    .delete(&what, api.delete(&name, &DeleteParams::background()))
                    .await
            }
        });
    futures::future::join_all(deletions)
        .await
        .into_iter()
        .collect()
}

async fn list_kind<K>(cluster: &Cluster, kind: Kind) -> Result<BTreeSet<Leftover>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(cluster.client.clone());
    let what = format!("listing {kind:?}s labelled {RUN_LABEL}");
    let found = cluster
        .call(
            &what,
            api.list_metadata(&ListParams::default().labels(RUN_LABEL)),
        )
        .await?;
    Ok(found
        .items
        .iter()
        .filter_map(|o| {
            Some(Leftover {
                kind,
                namespace: o.metadata.namespace.clone()?,
                run: o.metadata.labels.as_ref()?.get(RUN_LABEL)?.clone(),
            })
        })
        .collect())
}
