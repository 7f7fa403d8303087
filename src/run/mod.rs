//! `kubesu run`: one run, phase by phase, as the brief lists them:
//! authorize, name, prepare, hand over, drop privileges and exec, supervise,
//! revoke, audit. Each phase is a function with a typed input and output.

pub mod authorize;
pub mod handover;
pub mod renew;
pub mod revoke;
pub mod runtime_dir;
pub mod supervise;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::audit;
use crate::cli::Target;
use crate::cluster::lease::Lease;
use crate::cluster::namespace::{self, Ensured, Wanted};
use crate::cluster::{Cluster, lease, token};
use crate::failure::{Code, Context, Failure, Result};
use crate::policy::config::{self, Config};
use crate::policy::identity::RunId;
use crate::policy::naming::{self, Policy};
use crate::policy::{environment, labels, spark};
use crate::sys::privdrop::{self, Launch};
use crate::sys::{self, Invoker, process, signals};
use authorize::{Authorized, Program, Request};
use handover::{Credentials, Handover};
use renew::{Renewal, RenewalParts};
use revoke::Grant;
use supervise::{Chore, Outcome};

/// Phase timings, in order, for `-v`, `--json` and the audit record.
struct Clock {
    verbose: bool,
    last: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl Clock {
    fn new(verbose: bool) -> Self {
        Self {
            verbose,
            last: Instant::now(),
            phases: Vec::new(),
        }
    }

    fn done(&mut self, phase: &'static str) {
        let took = self.last.elapsed();
        self.last = Instant::now();
        if self.verbose {
            err!("kubesu: {phase}: {:.1} ms", took.as_secs_f64() * 1000.0);
        }
        self.phases.push((phase, took));
    }

    fn json(&self) -> serde_json::Value {
        self.phases
            .iter()
            .map(|(p, d)| (p.to_string(), json!((d.as_secs_f64() * 1e6).round() / 1e3)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// Everything decided before touching the cluster.
struct Plan {
    run: RunId,
    policy: Policy,
    namespace: String,
    service_account: String,
    handover: Handover,
    expires: Timestamp,
}

fn name(config: &Config, who: &Authorized<'_>) -> Result<Plan> {
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
        run,
        policy,
        namespace,
        service_account,
        expires,
    })
}

/// The command line that runs: the configured program, forced Spark
/// settings first when it is a spark-submit, then the user's arguments.
fn command_line(who: &Authorized<'_>, plan: &Plan, cluster: &Cluster) -> Vec<OsString> {
    if !who.rule.spark_submit {
        return who.args.clone();
    }
    let forced = spark::Forced {
        master: format!("k8s://{}", cluster.server),
        namespace: plan.namespace.clone(),
        service_account: plan.service_account.clone(),
        app_id: labels::app_id(plan.run.as_str()),
        run_label: (labels::RUN_LABEL.into(), plan.run.to_string()),
    };
    // command_line() puts argv[0] first; Launch takes the program apart.
    spark::command_line(who.program.clone().into(), &who.args, &forced)
        .into_iter()
        .skip(1)
        .collect()
}

/// What the run created, in the order it did.
struct Prepared {
    grant: Grant,
    token: token::Token,
}

/// Three sequential round trips: the namespace, the lease, then the
/// binding and the token together.
async fn prepare(
    cluster: &Cluster,
    config: &Config,
    who: &Authorized<'_>,
    plan: &Plan,
) -> Result<Prepared> {
    let expires = plan.expires.to_string();
    let run = plan.run.to_string();
    let wanted = Wanted {
        name: &plan.namespace,
        labels: &config.namespace.labels,
        annotations: &config.namespace.annotations,
        adopt: &config.namespace.adopt,
        run: (plan.policy == Policy::PerRun).then_some(run.as_str()),
        expires: &expires,
    };
    let record = Lease {
        run: run.clone(),
        namespace: plan.namespace.clone(),
        service_account: plan.service_account.clone(),
        user: who.user.name.clone(),
        caller: who.caller.name.clone(),
        expires: expires.clone(),
        host: sys::hostname(),
        pid: std::process::id(),
        process_start: process::start_time(std::process::id()).unwrap_or_default(),
        boot_id: sys::boot_id(),
        command: who.program.display().to_string(),
    };
    let namespace_created = std::cell::Cell::new(false);
    let steps = async {
        let ensured = namespace::ensure(cluster, &wanted).await?;
        namespace_created.set(ensured == Ensured::Created);
        let uid = lease::create(cluster, &record).await?;
        let (bound, minted) = tokio::join!(
            lease::bind(cluster, &record, &config.cluster.cluster_role, &uid),
            token::mint(cluster, &plan.namespace, &plan.service_account, who.ttl),
        );
        bound?;
        minted
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
        run: run.clone(),
        namespace: plan.namespace.clone(),
        service_account: plan.service_account.clone(),
        per_run_namespace: plan.policy == Policy::PerRun && namespace_created.get(),
        spark_leftovers: who.rule.spark_submit,
    };
    match prepared {
        Ok(token) => Ok(Prepared { grant, token }),
        Err(failure) => {
            // Cut off mid-way, a per-run namespace may exist without its
            // creation's answer: it is this run's if it carries the run id.
            if timed_out && plan.policy == Policy::PerRun {
                grant.per_run_namespace =
                    namespace::is_run_namespace(cluster, &plan.namespace, &run)
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

/// Sequential API calls before the command starts: the namespace, the
/// lease, then the binding and the token together (plus a read after a
/// concurrent namespace creation).
const PREPARE_ROUND_TRIPS: u32 = 4;

/// The run, end to end. Returns the command's exit status.
pub fn run(config_path: Option<&Path>, target: &Target, program: Program<'_>) -> Result<i32> {
    let mut clock = Clock::new(target.verbose);
    let invoker = Invoker::current();
    authorize::check_invoker(&invoker)?;
    let config = config::load(config::chosen(config_path, invoker.came_through_sudo())?)?;
    let request = Request {
        user: &target.user,
        team: target.team.as_deref(),
        ttl: target.ttl.as_deref(),
        program,
    };
    let who = authorize::authorize(&config, &invoker, &request)?;
    if who.rule.spark_submit {
        spark::check(&who.args, &config.spark.deny_conf)?;
    }
    clock.done("authorize");

    let plan = name(&config, &who)?;
    clock.done("name");

    // From here on signals wait for kubesu to handle them: a SIGTERM during
    // prepare must still lead to a clean revocation.
    signals::block();
    let (runtime, cluster) = Cluster::open(&config)?;
    let argv = command_line(&who, &plan, &cluster);

    if target.dry_run {
        print_plan(&config, &who, &plan, &argv);
        return Ok(0);
    }
    let audit_sink = audit::AuditSink {
        syslog: config.audit.syslog,
        file: config.audit.file.as_deref(),
    };
    let mut record = start_record(&who, &plan, &argv);
    warn_all(audit::record(&audit_sink, &record));

    process::become_subreaper()
        .or_fail(Code::Software, || "cannot become a child subreaper".into())?;
    runtime_dir::ensure_runtime_dir(&config.runtime.dir)?;

    let prepared = match runtime.block_on(prepare(&cluster, &config, &who, &plan)) {
        Ok(prepared) => prepared,
        Err(failure) => {
            // The start was audited: so is the end, even with nothing run.
            record["event"] = json!("end");
            record["status"] = json!(failure.exit_status());
            record["error"] = json!(failure.message);
            warn_all(audit::record(&audit_sink, &record));
            return Err(failure);
        }
    };
    clock.done("prepare");

    let started = hand_over_and_start(&cluster, &config, &who, &plan, &prepared, argv);
    let mut renewal = Renewal::new(
        RenewalParts {
            runtime: &runtime,
            cluster: &cluster,
            runtime_dir: &config.runtime.dir,
            run: &plan.run,
            uid: who.user.uid,
            gid: who.user.gid,
            namespace: &plan.namespace,
            service_account: &plan.service_account,
            ttl: who.ttl,
            before: config.cluster.renew_before,
        },
        &prepared.token.expires,
    );
    let outcome = match started {
        Ok(child) => {
            clock.done("handover+exec");
            let chore = renewal.as_mut().map(|r| r as &mut dyn Chore);
            let outcome = supervise::supervise(child, chore);
            clock.done("supervise");
            Ok(outcome)
        }
        Err(failure) => Err(failure),
    };
    let renewals = renewal.as_ref().map_or(0, |r| r.renewed);

    // Whatever happened since prepare: revoke.
    let revoked = runtime.block_on(revoke::revoke(
        &cluster,
        &prepared.grant,
        config.cluster.revoke_timeout,
    ));
    let removed = handover::remove(&config.runtime.dir, &plan.run);
    clock.done("revoke");

    end_record(
        &mut record,
        &outcome,
        &prepared,
        renewals,
        revoked.is_ok(),
        &clock,
    );
    warn_all(audit::record(&audit_sink, &record));
    if let Err(e) = &revoked {
        err!("kubesu: warning: {e}");
    }
    if let Err(e) = &removed {
        err!("kubesu: warning: {e}");
    }
    if target.json {
        err!("{record}");
    }
    outcome.map(|o| o.status)
}

/// The audit record of a run, as it starts.
fn start_record(who: &Authorized<'_>, plan: &Plan, argv: &[OsString]) -> serde_json::Value {
    json!({
        "event": "start",
        "run": plan.run.as_str(),
        "caller": who.caller,
        "user": who.user.name,
        "uid": who.user.uid.as_raw(),
        "team": who.team,
        "namespace": plan.namespace,
        "service_account": plan.service_account,
        "program": who.program,
        "argv": argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
        "host": sys::hostname(),
        "pid": std::process::id(),
    })
}

/// The same record, completed when the run has ended and been revoked.
fn end_record(
    record: &mut serde_json::Value,
    outcome: &Result<Outcome>,
    prepared: &Prepared,
    renewals: u32,
    revoked: bool,
    clock: &Clock,
) {
    let status = match outcome {
        Ok(outcome) => outcome.status,
        Err(failure) => failure.exit_status(),
    };
    record["event"] = json!("end");
    record["status"] = json!(status);
    record["token_expires"] = json!(prepared.token.expires);
    record["token_renewals"] = json!(renewals);
    record["revoked"] = json!(revoked);
    record["phases_ms"] = clock.json();
    if let Ok(outcome) = outcome {
        record["signals_forwarded"] = json!(outcome.forwarded);
        record["stragglers_ended"] = json!(outcome.stragglers_ended);
    }
}

fn hand_over_and_start(
    cluster: &Cluster,
    config: &Config,
    who: &Authorized<'_>,
    plan: &Plan,
    prepared: &Prepared,
    argv: Vec<OsString>,
) -> Result<nix::unistd::Pid> {
    let credentials = Credentials {
        server: &cluster.server,
        ca_pem: &cluster.ca_pem,
        token: &prepared.token.secret,
        namespace: &plan.namespace,
        service_account: &plan.service_account,
    };
    handover::hand_over(
        &config.runtime.dir,
        &plan.run,
        who.user.uid,
        who.user.gid,
        &credentials,
    )?;
    if who.interactive {
        err!(
            "kubesu: {} as {} in namespace {}, ServiceAccount {}; token expires {} (renewed while it runs). \
             Exit the shell to revoke.",
            who.program.display(),
            who.user.name,
            plan.namespace,
            plan.service_account,
            prepared.token.expires
        );
    }
    // A signal that came during prepare: do not start the command at all.
    if let Some(signal) = signals::pending() {
        return Err(Failure::new(
            Code::Software,
            format!("received {signal} before the command started; revoked, nothing ran"),
        )
        .with_status(128 + signal as i32));
    }
    let env = command_environment(config, who, plan);
    let directories: Vec<PathBuf> = std::env::current_dir()
        .into_iter()
        .chain([who.user.home.clone()])
        .collect();
    privdrop::spawn(&Launch {
        program: who.program.clone(),
        args: argv,
        env,
        user: who.user.name.clone(),
        uid: who.user.uid,
        gid: who.user.gid,
        groups: who.user.groups.clone(),
        directories,
        no_new_privs: config.privileges.no_new_privs,
    })
}

fn command_environment(
    config: &Config,
    who: &Authorized<'_>,
    plan: &Plan,
) -> Vec<(OsString, OsString)> {
    environment::build(
        std::env::vars_os(),
        &config.environment_rules(&who.rule),
        &environment::RunVars {
            home: who.user.home.as_os_str(),
            user: &who.user.name,
            shell: who.user.shell.as_os_str(),
            kubeconfig: plan.handover.kubeconfig.as_os_str(),
            run_id: plan.run.as_str(),
            namespace: &plan.namespace,
        },
    )
}

fn print_plan(config: &Config, who: &Authorized<'_>, plan: &Plan, argv: &[OsString]) {
    let plan = json!({
        "dry_run": true,
        "run": plan.run.as_str(),
        "caller": who.caller,
        "user": who.user.name,
        "namespace": plan.namespace,
        "namespace_policy": format!("{:?}", plan.policy),
        "objects": [
            format!("Namespace/{} (if absent)", plan.namespace),
            format!("ServiceAccount/{}/{}", plan.namespace, plan.service_account),
            format!("RoleBinding/{}/{} -> ClusterRole/{}", plan.namespace, plan.service_account, config.cluster.cluster_role),
            format!("TokenRequest for {} seconds", who.ttl.as_secs()),
        ],
        "handover": plan.handover,
        "program": who.program,
        "argv": argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
        "environment": command_environment(config, who, plan)
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect::<Vec<_>>(),
    });
    out!(
        "{}",
        serde_json::to_string_pretty(&plan).unwrap_or_default()
    );
}

fn warn_all(warnings: Vec<String>) {
    for w in warnings {
        err!("kubesu: warning: {w}");
    }
}
