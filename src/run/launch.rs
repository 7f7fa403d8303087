//! Phase 5: start the command as the end user. Its command line (with the
//! forced Spark settings for a spark-submit), its fresh environment, and the
//! privilege drop and exec in the child (`sys::privdrop`).

use std::ffi::OsString;

use nix::unistd::Pid;

use crate::cluster::Cluster;
use crate::failure::{Code, Failure, Result};
use crate::policy::config::Config;
use crate::policy::{environment, labels, spark};
use crate::run::authorize::Authorized;
use crate::run::plan::Plan;
use crate::sys::cgroup::Cgroup;
use crate::sys::privdrop::{self, CommandStreams, Launch};
use crate::sys::signals;

/// The command line that runs: the configured program, forced Spark
/// settings first when it is a spark-submit, then the user's arguments,
/// their properties file replaced by the checked copy handed over.
pub fn command_line(
    config: &Config,
    who: &Authorized<'_>,
    plan: &Plan,
    cluster: &Cluster,
) -> Vec<OsString> {
    if !who.rule.spark_submit {
        return who.args.clone();
    }
    let id = &plan.identity;
    let forced = spark::Forced {
        master: format!("k8s://{}", cluster.server),
        namespace: id.namespace.clone(),
        service_account: id.service_account.clone(),
        app_id: labels::app_id(id.run.as_str()),
        run_label: (labels::RUN_LABEL.into(), id.run.to_string()),
        admin: config.spark_forced(),
    };
    let args = match (&who.spark_properties, &plan.handover.spark_properties) {
        (Some(checked), Some(copy)) => spark::with_properties_copy(&who.args, &checked.file, copy),
        _ => who.args.clone(),
    };
    // command_line() puts argv[0] first; Launch takes the program apart.
    spark::command_line(who.program.clone().into(), &args, &forced)
        .into_iter()
        .skip(1)
        .collect()
}

/// The command's environment, built fresh (see `policy::environment`).
pub fn environment(
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
            run_id: plan.identity.run.as_str(),
            namespace: &plan.identity.namespace,
        },
    )
}

/// Fork; the child joins `cgroup` (if any), drops privileges and execs
/// `argv`, with `streams` instead of kubesu's own. Refused when a signal
/// came while the run was prepared: nothing starts then.
pub fn start(
    config: &Config,
    who: &Authorized<'_>,
    plan: &Plan,
    argv: Vec<OsString>,
    token_expires: &str,
    streams: CommandStreams,
    cgroup: Option<&Cgroup>,
) -> Result<Pid> {
    if who.interactive {
        err!(
            "kubesu: {} as {} in namespace {}, ServiceAccount {}; token expires {} (renewed while it runs). \
             Exit the shell to revoke.",
            who.program.display(),
            who.user.name,
            plan.identity.namespace,
            plan.identity.service_account,
            token_expires
        );
    }
    if let Some(signal) = signals::pending() {
        return Err(Failure::new(
            Code::Software,
            format!("received {signal} before the command started; revoked, nothing ran"),
        )
        .with_status(128 + signal as i32));
    }
    let env = environment(config, who, plan);
    let directories = privdrop::working_directories(&who.user.home);
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
        limits: crate::sys::limits::callers(),
        streams,
        cgroup: cgroup.map(Cgroup::procs_fd),
    })
}
