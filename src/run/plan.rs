//! Phase 2: name the run. Everything is decided here before anything is
//! created: the run id, the namespace from the config's template, the
//! ServiceAccount, where the credentials will be handed over, and when it
//! all expires.

use std::ffi::OsString;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::failure::{Failure, Result};
use crate::policy::config::Config;
use crate::policy::identity::{RunId, RunIdentity};
use crate::policy::naming::{self, Policy};
use crate::run::authorize::Authorized;
use crate::run::handover::{self, Handover};
use crate::run::launch;

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
        handover: handover::planned(&config.runtime.dir, &run),
        identity: RunIdentity {
            run,
            namespace,
            service_account,
        },
        policy,
        expires,
    })
}

/// `--dry-run`: what the run would create and start, as JSON on stdout.
pub fn print(config: &Config, who: &Authorized<'_>, plan: &Plan, argv: &[OsString]) {
    let id = &plan.identity;
    let shown = json!({
        "dry_run": true,
        "run": id.run,
        "caller": who.caller,
        "user": who.user.name,
        "namespace": id.namespace,
        "namespace_policy": format!("{:?}", plan.policy),
        "objects": [
            format!("Namespace/{} (if absent)", id.namespace),
            format!("ServiceAccount/{}/{}", id.namespace, id.service_account),
            format!("RoleBinding/{}/{} -> ClusterRole/{}", id.namespace, id.service_account, config.cluster.cluster_role),
            format!("TokenRequest for {} seconds", who.ttl.as_secs()),
        ],
        "handover": plan.handover,
        "program": who.program,
        "argv": argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
        "environment": launch::environment(config, who, plan)
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect::<Vec<_>>(),
    });
    out!(
        "{}",
        serde_json::to_string_pretty(&shown).unwrap_or_default()
    );
}
