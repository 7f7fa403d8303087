//! Phase 7: take back everything a run created. Deleting the ServiceAccount
//! invalidates its tokens at once; the RoleBinding goes with it; a per-run
//! namespace is deleted whole. Retried with backoff for a bounded time, then
//! left to `gc` — loudly, never silently.

use std::time::{Duration, Instant};

use crate::cluster::{Cluster, lease, namespace};
use crate::failure::{Failure, Result};

/// What a run created in the cluster.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Grant {
    pub namespace: String,
    pub service_account: String,
    /// Set when the run created a per-run namespace: deleted too.
    pub per_run_namespace: bool,
}

/// Revoke `grant`, retrying transient failures until `deadline` has passed.
pub async fn revoke(cluster: &Cluster, grant: &Grant, deadline: Duration) -> Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let attempt = revoke_once(cluster, grant).await;
        match attempt {
            Ok(()) => return Ok(()),
            Err(failure) if started.elapsed() + pause >= deadline => {
                return Err(Failure::new(
                    failure.code,
                    format!(
                        "revoking ServiceAccount {}/{} failed for {}s: {failure}. Its token expires on its own; \
                         `kubesu gc` removes what is left once the API server answers",
                        grant.namespace,
                        grant.service_account,
                        deadline.as_secs()
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

async fn revoke_once(cluster: &Cluster, grant: &Grant) -> Result<()> {
    if grant.per_run_namespace {
        // The namespace takes its ServiceAccount and RoleBinding with it, but
        // only once its finalizers ran: delete the account now so the token
        // dies now.
        let (account, space) = tokio::join!(
            lease::release(cluster, &grant.namespace, &grant.service_account),
            namespace::delete(cluster, &grant.namespace),
        );
        account.and(space)
    } else {
        lease::release(cluster, &grant.namespace, &grant.service_account).await
    }
}
