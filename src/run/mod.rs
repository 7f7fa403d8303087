//! `kubesu run` and `kubesu shell`: one run, phase by phase. `run` below
//! reads top to bottom as the root path: authorize, plan, prepare, hand
//! over, launch (drop privileges and exec, in a pty of kubesu's when run
//! from a terminal), supervise (renewing the token, relaying the terminal),
//! revoke, and the audit record around it all. Each phase is a module with
//! a typed input and output.

pub mod authorize;
pub mod driver_logs;
pub mod handover;
pub mod launch;
pub mod output;
pub mod plan;
pub mod prepare;
pub mod record;
pub mod relay;
pub mod renew;
pub mod revoke;
pub mod runtime_dir;
pub mod supervise;
pub mod watch;

use std::ffi::OsString;
use std::path::Path;

use serde_json::json;

use crate::audit;
use crate::cli::Target;
use crate::cluster::Cluster;
use crate::failure::{Code, Context, Failure, Result};
use crate::policy::config::{self, Config};
use crate::sys::cgroup::Cgroup;
use crate::sys::tree::Tree;
use crate::sys::{self, Invoker, process, signals};
use authorize::{Authorized, Program, Request};
use handover::Credentials;
use plan::Plan;
use prepare::Prepared;
use record::{Clock, End, Event, Record, Revocation};
use renew::{Renewal, RenewalParts};
use supervise::{Chore, Ending};
use watch::Relays;

/// The run, end to end. Returns the command's exit status.
pub fn run(config_path: Option<&Path>, target: &Target, program: Program<'_>) -> Result<i32> {
    let mut clock = Clock::new(target.verbose);
    // What [cluster] max_run_time counts from.
    let started_at = std::time::Instant::now();
    let invoker = Invoker::current();
    authorize::check_invoker(&invoker)?;
    let config = config::load(config::chosen(config_path, invoker.came_through_sudo())?)?;
    let request = Request {
        user: &target.user,
        team: target.team.as_deref(),
        ttl: target.ttl.as_deref(),
        program,
    };
    // For a spark-submit, also its arguments and properties file.
    let who = authorize::authorize(&config, &invoker, &request)?;
    clock.done("authorize");

    let plan = plan::plan(&config, &who)?;
    clock.done("name"); // the phase's key in phases_ms, which platforms read

    // From here on signals wait for kubesu to handle them: a SIGTERM during
    // prepare must still lead to a clean revocation.
    signals::block();
    let (runtime, cluster) = Cluster::open(&config)?;
    let argv = launch::command_line(&config, &who, &plan, &cluster);

    if target.dry_run {
        print_dry_run(&config, &who, &plan, &argv);
        return Ok(0);
    }
    let audit_sink = audit::AuditSink {
        syslog: config.audit.syslog,
        file: config.audit.file.as_deref(),
    };
    let mut record = start_record(&who, &plan, &argv);
    let start = audit::record(&audit_sink, &record);
    let unrecorded = !start.taken;
    warn_all(start);
    if unrecorded && config.audit.required {
        return Err(Failure::new(
            Code::IoErr,
            format!(
                "no audit destination recorded the start of this run for user {}, so it does not \
                 start; fix the audit file or syslog named in the warnings above (or set [audit] \
                 required = false in kubesu's config)",
                who.user.name
            ),
        ));
    }

    process::become_subreaper()
        .or_fail(Code::Software, || "cannot become a child subreaper".into())?;
    runtime_dir::ensure_runtime_dir(&config.runtime.dir)?;

    let prepared = match runtime.block_on(prepare::prepare(&cluster, &config, &who, &plan)) {
        Ok(prepared) => prepared,
        Err(failure) => {
            // The start was audited: so is the end, even with nothing run.
            record.ended(End {
                status: failure.exit_status(),
                error: Some(failure.message.clone()),
                revocation: None,
            });
            warn_all(audit::record(&audit_sink, &record));
            return Err(failure);
        }
    };
    clock.done("prepare");

    // The command never gets kubesu's own streams: a pty of kubesu's for a
    // terminal, pipes for the rest of its output (run/watch.rs).
    let relays = Relays::open(&who.user.name, who.user.uid);
    let cgroup = run_cgroup(&who, &plan);
    let started = relays.and_then(|mut relays| {
        hand_over(&cluster, &config, &who, &prepared)?;
        let streams = relays.for_command();
        let child = launch::start(
            &config,
            &who,
            &plan,
            argv,
            &prepared.token.expires,
            streams,
            cgroup.as_ref(),
        )?;
        Ok((child, relays))
    });
    let mut renewal = Renewal::new(
        RenewalParts {
            runtime: &runtime,
            cluster: &cluster,
            runtime_dir: &config.runtime.dir,
            identity: &plan.identity,
            uid: who.user.uid,
            ttl: who.ttl,
            before: config.cluster.renew_before,
        },
        &prepared.token.expires,
    );
    let outcome = started.map(|(child, mut relays)| {
        clock.done("handover+exec");
        let chore = renewal.as_mut().map(|r| r as &mut dyn Chore);
        let deadline = config.cluster.max_run_time.map(|t| started_at + t);
        let tree = Tree::new(child, cgroup);
        let outcome = supervise::supervise(&tree, chore, deadline, &mut relays.sleep());
        // The tree is gone: pass its last output on, put the terminal
        // back, hang up the pty, close the pipes.
        relays.finish();
        if outcome.processes_left {
            err!(
                "kubesu: warning: processes of run {} of user {} were still alive after SIGKILL \
                 (in uninterruptible sleep, or traced from outside the run): the run is revoked \
                 anyway",
                plan.identity.run,
                who.user.name
            );
        }
        if let Err(e) = tree.release() {
            err!("kubesu: warning: {e}");
        }
        if let Some(ending) = outcome.ended_by {
            let why = match ending {
                Ending::MaxRunTime => format!(
                    "reached its maximum run time ({}s, [cluster] max_run_time)",
                    config.cluster.max_run_time.unwrap_or_default().as_secs()
                ),
                Ending::Revoked => "was ended by `kubesu revoke --end`".to_string(),
            };
            err!(
                "kubesu: run {} of user {} {why}: the command was ended and the run revoked",
                plan.identity.run,
                who.user.name
            );
        }
        clock.done("supervise");
        outcome
    });
    let renewals = renewal.as_ref().map_or(0, |r| r.renewed);
    let token_ids: Vec<String> = prepared
        .token
        .id
        .iter()
        .chain(renewal.iter().flat_map(|r| &r.ids))
        .cloned()
        .collect();

    // Whatever happened since prepare: revoke, reading the drivers' status
    // and keeping their logs before their pods go.
    let keeping = driver_log_keeping(&config, &who, &prepared.grant);
    let (revoked, kept) = runtime.block_on(revoke::revoke_keeping(
        &cluster,
        &prepared.grant,
        config.cluster.revoke_timeout,
        keeping.as_ref(),
    ));
    let removed = handover::remove(&config.runtime.dir, &plan.identity.run);
    clock.done("revoke");

    let (mut status, supervised) = match &outcome {
        Ok(outcome) => (outcome.status, Some(outcome)),
        Err(failure) => (failure.exit_status(), None),
    };
    // A failed cluster-mode job must not look like a success to the
    // platform: the driver's status stands in for spark-submit's 0.
    if status == 0
        && supervised.is_some()
        && let Some((pod, code)) = &kept.failed_driver
    {
        err!(
            "kubesu: spark-submit exited 0, but driver pod {pod} of run {} failed with exit \
             status {code}: the run ends with {code}",
            plan.identity.run
        );
        status = (*code).clamp(1, 255);
    }
    record.ended(End {
        status,
        error: None,
        revocation: Some(Revocation {
            token_expires: prepared.token.expires.clone(),
            token_renewals: renewals,
            token_ids,
            revoked: revoked.is_ok(),
            phases_ms: clock.milliseconds(),
            signals_forwarded: supervised.map(|o| o.forwarded.clone()),
            stragglers_ended: supervised.map(|o| o.stragglers_ended),
            processes_left: supervised.is_some_and(|o| o.processes_left),
            tracked_by: supervised.map(|o| o.tracked_by),
            ended_by: supervised.and_then(|o| o.ended_by),
            driver_logs: kept.paths,
            warnings: kept.warnings.clone(),
        }),
    });
    warn_all(audit::record(&audit_sink, &record));
    for warning in &kept.warnings {
        err!("kubesu: warning: {warning}");
    }
    if let Err(e) = &revoked {
        err!("kubesu: warning: {e}");
    }
    if let Err(e) = &removed {
        err!("kubesu: warning: {e}");
    }
    if target.json
        && let Ok(json) = serde_json::to_value(&record)
    {
        err!("{json}");
    }
    outcome.map(|_| status)
}

/// The run's cgroup, where the host has cgroup v2 and lets kubesu make one;
/// else the tree is held by its process group (see `sys::tree`), with a
/// warning when a cgroup was expected.
fn run_cgroup(who: &Authorized<'_>, plan: &Plan) -> Option<Cgroup> {
    match Cgroup::create(plan.identity.run.as_str()) {
        Ok(cgroup) => cgroup,
        Err(e) => {
            err!(
                "kubesu: warning: cannot create a cgroup for run {} of user {} ({e}): its \
                 processes are tracked by their process group",
                plan.identity.run,
                who.user.name
            );
            None
        }
    }
}

/// The audit record of a run, as it starts.
fn start_record(who: &Authorized<'_>, plan: &Plan, argv: &[OsString]) -> Record {
    Record {
        event: Event::Start,
        identity: plan.identity.clone(),
        caller: who.caller.clone(),
        user: who.user.name.clone(),
        uid: who.user.uid.as_raw(),
        team: who.team.clone(),
        program: who.program.clone(),
        argv: argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        host: sys::hostname(),
        pid: std::process::id(),
        end: None,
    }
}

/// Phase 4: the run's credentials (and a spark-submit's checked properties)
/// into its private directory, root's and readable by the user.
fn hand_over(
    cluster: &Cluster,
    config: &Config,
    who: &Authorized<'_>,
    prepared: &Prepared,
) -> Result<()> {
    let credentials = Credentials {
        server: &cluster.server,
        ca_pem: &cluster.ca_pem,
        token: &prepared.token.secret,
        identity: &prepared.grant.identity,
    };
    handover::hand_over(
        &config.runtime.dir,
        who.user.uid,
        &credentials,
        who.spark_properties.as_ref().map(|p| p.copy.as_slice()),
    )
    .map(drop)
}

/// What revocation reads and keeps of a spark-submit's driver pods: their
/// status always (a failed driver must not look like a success), their logs
/// if [spark] driver_logs is set, readable by the end user and by the
/// service user that called (root reads anyway).
fn driver_log_keeping<'a>(
    config: &'a Config,
    who: &Authorized<'_>,
    grant: &'a revoke::Grant,
) -> Option<driver_logs::Keeping<'a>> {
    if !who.rule.spark_submit {
        return None;
    }
    let mut readers = vec![who.user.uid];
    if who.caller.uid != 0 {
        readers.push(nix::unistd::Uid::from_raw(who.caller.uid));
    }
    Some(driver_logs::Keeping::of(config, &grant.identity, readers))
}

/// `--dry-run`: what the run would create and start, as JSON on stdout.
fn print_dry_run(config: &Config, who: &Authorized<'_>, plan: &Plan, argv: &[OsString]) {
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

fn warn_all(delivery: audit::Delivery) {
    for w in delivery.warnings {
        err!("kubesu: warning: {w}");
    }
}
