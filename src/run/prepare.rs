//! Phase 3: prepare the cluster. Ensure the namespace (kubesu's own, or one
//! the config lets it use), take the lease (the run's ServiceAccount), bind
//! the configured ClusterRole to it and mint its token. Whatever part was
//! made before a failure is revoked again.

use crate::cluster::lease::{self, Holder, Lease};
use crate::cluster::namespace::{self, Ensured, Wanted};
use crate::cluster::{Cluster, tenancy, token};
use crate::failure::{Failure, Result};
use crate::policy::config::Config;
use crate::policy::naming::Policy;
use crate::policy::permissions::SPARK_PERMISSIONS;
use crate::run::authorize::Authorized;
use crate::run::plan::Plan;
use crate::run::revoke::{self, Grant};
use crate::sys::{self, process};

/// What the run created, in the order it did.
pub struct Prepared {
    pub grant: Grant,
    pub token: token::Token,
}

/// Sequential API calls before the command starts: the namespace, the
/// lease, the binding then the review that it took effect (the token is
/// minted meanwhile), plus a read after a concurrent namespace creation.
const PREPARE_ROUND_TRIPS: u32 = 5;

/// Four sequential round trips: the namespace, the lease, the binding (with
/// the token beside it), the review that the binding took effect.
pub async fn prepare(
    cluster: &Cluster,
    config: &Config,
    who: &Authorized<'_>,
    plan: &Plan,
) -> Result<Prepared> {
    let id = &plan.identity;
    let run = id.run.as_str();
    let expires = plan.expires.to_string();
    let wanted = Wanted {
        name: &id.namespace,
        labels: tenancy::namespace_labels(config),
        annotations: tenancy::namespace_annotations(config),
        adopt: &config.namespace.adopt,
        run: (plan.policy == Policy::PerRun).then_some(run),
        expires: &expires,
    };
    let lease = Lease {
        identity: id.clone(),
        holder: Holder {
            user: who.user.name.clone(),
            caller: who.caller.name.clone(),
            expires: expires.clone(),
            host: sys::hostname(),
            pid: std::process::id(),
            process_start: process::start_time(std::process::id()).unwrap_or_default(),
            boot_id: sys::boot_id(),
            command: who.program.display().to_string(),
        },
        objects: config.objects.clone(),
    };
    let namespace_created = std::cell::Cell::new(false);
    let steps = async {
        let ensured = namespace::ensure(cluster, &wanted).await?;
        namespace_created.set(ensured == Ensured::Created);
        tenancy::relabel(cluster, config, &id.namespace, ensured).await?;
        let access = async {
            let uid = lease::create(cluster, &lease).await?;
            // The review that the binding took effect overlaps the minting.
            let binding = async {
                lease::bind(cluster, &lease, &config.cluster.cluster_role, &uid).await?;
                lease::await_binding(cluster, &lease, SPARK_PERMISSIONS[0].probe()).await
            };
            let (bound, minted) = tokio::join!(
                binding,
                token::mint(cluster, &id.namespace, &id.service_account, who.ttl),
            );
            bound.and(minted)
        };
        // The namespace policy is in place before the command starts, but
        // applied beside the lease: no round trip of its own.
        let (policy, minted) = tokio::join!(
            tenancy::apply(cluster, config, &id.namespace, ensured),
            access
        );
        policy.and(minted)
    };
    // Every call has its own deadline; the whole has one too.
    let deadline = config.cluster.request_timeout * PREPARE_ROUND_TRIPS;
    let (prepared, timed_out) = match tokio::time::timeout(deadline, steps).await {
        Ok(prepared) => (prepared, false),
        Err(_) => (
            Err(Failure::unavailable(format!(
                "preparing run {run} for user {} took longer than {}s; the Kubernetes API is too slow or \
                 unreachable: retry later",
                who.user.name,
                deadline.as_secs()
            ))),
            true,
        ),
    };
    let mut grant = Grant {
        identity: id.clone(),
        per_run_namespace: plan.policy == Policy::PerRun && namespace_created.get(),
    };
    match prepared {
        Ok(token) => Ok(Prepared { grant, token }),
        Err(failure) => {
            // Cut off mid-way, a per-run namespace may exist without its
            // creation's answer: it is this run's if it carries the run id.
            if timed_out && plan.policy == Policy::PerRun {
                grant.per_run_namespace = namespace::is_run_namespace(cluster, &id.namespace, run)
                    .await
                    .unwrap_or(false);
            }
            // Roll back whatever part was created; the lease's expiry lets
            // `gc` finish the job if this fails too.
            if let Err(rollback) =
                revoke::revoke(cluster, &grant, config.cluster.revoke_timeout).await
            {
                err!("kubesu: {rollback}");
            }
            Err(failure)
        }
    }
}
