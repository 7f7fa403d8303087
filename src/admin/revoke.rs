//! `kubesu revoke RUN_ID | --user U [--end]`: end live runs' credentials
//! now, from another terminal or the platform. The runs' commands keep
//! running without credentials, unless `--end` asks their supervising
//! kubesu (on this host) to end them too. Their drivers' logs are kept
//! first ([spark] driver_logs), as a run's own revocation keeps them.

use std::path::Path;

use crate::admin::liveness::{self, Here, State};
use crate::admin::{self, Audience};
use crate::cli::RevokeArgs;
use crate::cluster::lease::Holder;
use crate::cluster::{lease, namespace};
use crate::failure::{Failure, Result};
use crate::policy::identity::{RunId, RunIdentity};
use crate::policy::labels::{RUN_LABEL, USER_LABEL};
use crate::policy::naming;
use crate::run;
use crate::run::driver_logs::Keeping;
use crate::run::revoke::Grant;
use crate::sys::process;
use crate::sys::signals::END_RUN;

/// `kubesu revoke RUN_ID | --user U [--end]`: revoke live runs now. An
/// administrator may revoke any run; a sudo caller only the runs it started.
pub fn revoke(config_path: Option<&Path>, args: &RevokeArgs) -> Result<i32> {
    let session = admin::open(config_path, "revoke", Audience::AdministratorsAndCallers)?;
    let (selector, what) = match (&args.target.run_id, &args.target.user) {
        (Some(run), _) => {
            let run = RunId::parse(run)?;
            (format!("{RUN_LABEL}={run}"), format!("run {run}"))
        }
        (None, Some(user)) => {
            naming::check_account_name("user", user)?;
            (
                format!("{USER_LABEL}={}", naming::user_label(user)),
                format!("user {user}"),
            )
        }
        (None, None) => return Err(Failure::usage("name a RUN_ID or --user")),
    };
    let cluster = &session.cluster;
    let deadline = session.config.cluster.revoke_timeout;
    let leases = session
        .runtime
        .block_on(lease::list(cluster, Some(&selector)))?;
    let (mine, others): (Vec<_>, Vec<_>) = leases
        .into_iter()
        .partition(|l| !session.caller.via_sudo || l.holder.caller == session.caller.name);
    if !others.is_empty() {
        return Err(Failure::denied(format!(
            "{what} has runs started by other callers; caller {} may revoke only its own",
            session.caller.name
        )));
    }
    if mine.is_empty() {
        return Err(Failure::data(format!(
            "no live lease for {what}: nothing to revoke (already revoked or expired? see `kubesu list`)"
        )));
    }
    let mut failures = Vec::new();
    for lease in mine {
        let Ok(run) = RunId::parse(&lease.run) else {
            // Not a run id kubesu writes: still take the credentials back;
            // without a run id there are no leftovers to find by it.
            let released = session.runtime.block_on(lease::release(
                cluster,
                &lease.namespace,
                &lease.service_account,
            ));
            match released {
                Ok(()) => out!(
                    "revoked lease ServiceAccount {}/{}; its run label {:?} is not a kubesu run id, \
                     so look for what else it left by hand",
                    lease.namespace,
                    lease.service_account,
                    lease.run
                ),
                Err(e) => {
                    err!("kubesu: {e}");
                    failures.push(e);
                }
            }
            continue;
        };
        // A per-run namespace is named from its run: deleting it is revoking.
        let per_run = session.runtime.block_on(namespace::is_run_namespace(
            cluster,
            &lease.namespace,
            &lease.run,
        ))?;
        let grant = Grant {
            identity: RunIdentity {
                run,
                namespace: lease.namespace.clone(),
                service_account: lease.service_account.clone(),
            },
            per_run_namespace: per_run,
        };
        // An administrator ending a job does not erase why it failed: the
        // drivers' logs are kept as the run's own revocation keeps them.
        let keeping = Keeping::after_the_fact(&session.config, &grant.identity, &lease.holder);
        let (revoked, kept) = session.runtime.block_on(run::revoke::revoke_keeping(
            cluster,
            &grant,
            deadline,
            keeping.as_ref(),
        ));
        for path in &kept.paths {
            out!(
                "kept the driver log of run {} in {}",
                lease.run,
                path.display()
            );
        }
        for warning in &kept.warnings {
            err!("kubesu: warning: {warning}");
        }
        match revoked {
            Ok(()) => out!(
                "revoked run {} of user {} in namespace {}",
                lease.run,
                lease.holder.user,
                lease.namespace
            ),
            Err(e) => {
                err!("kubesu: {e}");
                failures.push(e);
            }
        }
        // After revoking: the run's own revocation, which follows the end
        // of its command, must not delete its drivers before their logs
        // are kept here.
        if args.end {
            end_command(&lease.holder, &lease.run);
        }
    }
    match failures.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(0),
    }
}

/// Ask the run's supervising kubesu to end its command (it revokes too,
/// when the tree is gone). Only a lease held on this host, by the very
/// process that took it (pid, start time and boot id), is signalled.
fn end_command(holder: &Holder, run: &str) {
    match liveness::judge(holder, &Here::now()) {
        State::Live => match process::signal_if_same(holder.pid, holder.process_start, END_RUN) {
            Ok(true) => out!("asked kubesu (pid {}) to end run {run}", holder.pid),
            Ok(false) => out!("run {run}: its kubesu process has already ended"),
            Err(e) => err!(
                "kubesu: warning: cannot signal kubesu (pid {}) of run {run}: {e}; its \
                 credentials are revoked, its command keeps running",
                holder.pid
            ),
        },
        State::LiveElsewhere => err!(
            "kubesu: warning: run {run} is supervised on host {}: its credentials are revoked, \
             but its command can only be ended there (`kubesu revoke --end {run}` on {})",
            holder.host,
            holder.host
        ),
        _ => out!("run {run}: its kubesu process has already ended"),
    }
}
