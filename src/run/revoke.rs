//! Phase 7: take back everything a run created. Deleting the ServiceAccount
//! invalidates its tokens (an API server may accept one for up to 10 s
//! more: it caches successful checks); the RoleBinding goes with it; a
//! per-run namespace is deleted whole. Retried with backoff for a bounded
//! time, then left to `gc`: loudly, never silently.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, lease, leftovers, namespace};
use crate::failure::{Code, Failure, Result};
use crate::policy::identity::RunIdentity;
use crate::run::driver_logs::{self, Keeping, Kept};

/// What a run created in the cluster.
#[derive(Debug, Clone)]
pub struct Grant {
    pub identity: RunIdentity,
    /// Set when the run created a per-run namespace: deleted too.
    pub per_run_namespace: bool,
}

/// Revoke `grant`, retrying transient failures until `deadline` has passed.
pub async fn revoke(cluster: &Cluster, grant: &Grant, deadline: Duration) -> Result<()> {
    retry(cluster, grant, deadline, Instant::now(), true).await
}

/// `revoke`, keeping the drivers' logs first when `keeping` says so.
pub async fn revoke_keeping(
    cluster: &Cluster,
    grant: &Grant,
    deadline: Duration,
    keeping: Option<&Keeping<'_>>,
) -> (Result<()>, Kept) {
    match keeping {
        Some(keeping) => {
            revoke_after(
                cluster,
                grant,
                deadline,
                driver_logs::keep(cluster, keeping),
            )
            .await
        }
        None => (revoke(cluster, grant, deadline).await, Kept::default()),
    }
}

/// `revoke`, with `first` done before any pod or per-run namespace of the
/// run is deleted (the drivers' logs are read then), while the lease (the
/// token) already goes. `first` must bound its own time: it counts in the
/// deadline.
async fn revoke_after<T>(
    cluster: &Cluster,
    grant: &Grant,
    deadline: Duration,
    first: impl Future<Output = T>,
) -> (Result<()>, T) {
    let id = &grant.identity;
    let started = Instant::now();
    let (released, done) = tokio::join!(
        lease::release(cluster, &id.namespace, &id.service_account),
        first
    );
    let revoked = retry(cluster, grant, deadline, started, released.is_err()).await;
    (revoked, done)
}

/// Revocation rounds from `started` on, the lease in them only if
/// `lease_left`, until one succeeds or `deadline` has passed.
async fn retry(
    cluster: &Cluster,
    grant: &Grant,
    deadline: Duration,
    started: Instant,
    lease_left: bool,
) -> Result<()> {
    let id = &grant.identity;
    let mut pause = Duration::from_millis(100);
    loop {
        let attempt = revoke_once(cluster, grant, lease_left).await;
        match attempt {
            Ok(()) => return Ok(()),
            // Only an unavailable API server is worth waiting for.
            Err(failure)
                if failure.code != Code::Unavailable || started.elapsed() + pause >= deadline =>
            {
                return Err(Failure::new(
                    failure.code,
                    format!(
                        "revoking run {} (ServiceAccount {}/{}) failed after {}s: {failure}. Its token expires \
                         on its own; `kubesu gc` removes what is left once the API server answers",
                        id.run,
                        id.namespace,
                        id.service_account,
                        started.elapsed().as_secs()
                    ),
                ));
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One concurrent round: the lease unless it is known gone (ServiceAccount
/// first in meaning: it kills the token), the per-run namespace, and what
/// the run made in a namespace that stays: its pods, Services, ConfigMaps
/// and claims, of every run (with a shell or kubectl too, not only
/// spark-submit), by label and, for pods, by the ServiceAccount they run
/// as (before 1.30 nothing makes a run label them).
async fn revoke_once(cluster: &Cluster, grant: &Grant, lease_left: bool) -> Result<()> {
    let id = &grant.identity;
    let account = async {
        match lease_left {
            true => lease::release(cluster, &id.namespace, &id.service_account).await,
            false => Ok(()),
        }
    };
    let space = async {
        match grant.per_run_namespace {
            true => namespace::delete(cluster, &id.namespace).await,
            false => Ok(()),
        }
    };
    let made = async {
        match grant.per_run_namespace {
            false => {
                let (labelled, running_as) = tokio::join!(
                    leftovers::delete_run(cluster, &id.namespace, id.run.as_str()),
                    leftovers::delete_pods_of(cluster, &id.namespace, &id.service_account),
                );
                labelled.and(running_as)
            }
            true => Ok(()),
        }
    };
    let (account, space, made) = tokio::join!(account, space, made);
    account.and(space).and(made)
}
