//! Phase 2: name the run. Everything is decided here before anything is
//! created: the run id, the namespace from the config's template, the
//! ServiceAccount, where the credentials will be handed over, and when it
//! all expires.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::failure::{Failure, Result};
use crate::policy::config::Config;
use crate::policy::identity::{RunId, RunIdentity};
use crate::policy::naming::{self, Policy};
use crate::run::authorize::Authorized;
use crate::run::handover::{self, Handover};

/// Everything decided before touching the cluster.
pub struct Plan {
    pub identity: RunIdentity,
    pub policy: Policy,
    pub handover: Handover,
    pub expires: Timestamp,
}

pub fn plan(config: &Config, who: &Authorized<'_>) -> Result<Plan> {
    let run = RunId::generate()?;
    let policy: Policy = config.namespace.policy.into();
    let namespace = naming::namespace(
        policy,
        &config.namespace.template,
        &who.user.name,
        who.team.as_deref(),
        &run,
    )?;
    let service_account = naming::service_account(&who.user.name, &run);
    let ttl = SignedDuration::try_from(who.ttl)
        .map_err(|e| Failure::usage(format!("--ttl is too large: {e}")))?;
    let expires = Timestamp::now()
        .checked_add(ttl)
        .map_err(|e| Failure::usage(format!("--ttl is too large: {e}")))?;
    Ok(Plan {
        handover: handover::planned(&config.runtime.dir, &run, who.spark_properties.is_some()),
        identity: RunIdentity {
            run,
            namespace,
            service_account,
        },
        policy,
        expires,
    })
}
