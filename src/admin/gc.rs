//! `kubesu gc`, for cron or a systemd timer: remove what crashed runs left.
//! A lease is dead when it expired, or when its process on this host is gone
//! (boot id and start time, not just the pid). Whatever carries the run id of
//! a run with no live lease goes too: Spark's leftovers, RoleBindings, per-run
//! namespaces, run directories; and with a dead lease, the pods that run as
//! its ServiceAccount, labelled or not (before 1.30 nothing makes a run
//! label its pods). A dead lease's drivers' logs are kept first ([spark]
//! driver_logs), as its run's own revocation would have kept them. On this
//! host, the cgroups of runs whose kubesu died go too, with every process
//! the command left in them. Live
//! runs are never touched; running it twice, or beside itself, or beside
//! runs, is safe. Kept driver logs go when they are older than [spark]
//! driver_log_retention.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::SignedDuration;
use serde_json::json;

use crate::admin::liveness::{self, Here};
use crate::admin::{self, Audience};
use crate::cli::GcArgs;
use crate::cluster::lease::Holder;
use crate::cluster::leftovers::{self, Kind, Leftover};
use crate::cluster::{Cluster, lease, namespace};
use crate::failure::{Failure, Result};
use crate::policy::config::Config;
use crate::policy::identity::{RunId, RunIdentity};
use crate::run::driver_logs::Keeping;
use crate::run::{driver_logs, handover, runtime_dir};
use crate::sys::cgroup;

/// Deletions in flight at once: bounded, so a backlog of thousands of
/// leases does not flood the API server.
const CONCURRENCY: usize = 16;

/// What gc removes, one object or set of objects each.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "what", rename_all = "kebab-case")]
enum Garbage {
    Lease {
        namespace: String,
        service_account: String,
    },
    Leftovers {
        kind: Kind,
        namespace: String,
    },
    RoleBinding {
        namespace: String,
        name: String,
    },
    Namespace {
        name: String,
    },
    RunDirectory {
        path: String,
    },
    /// A run's cgroup whose kubesu is gone, and what is left in it.
    RunCgroup {
        path: String,
    },
    DriverLog {
        path: String,
    },
}

#[derive(Debug, serde::Serialize)]
struct Action {
    #[serde(flatten)]
    garbage: Garbage,
    run: String,
    reason: String,
    /// None on a dry run.
    removed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn gc(config_path: Option<&Path>, args: &GcArgs) -> Result<i32> {
    let session = admin::open(config_path, "gc", Audience::Administrators)?;
    let places = Places {
        runtime_dir: &session.config.runtime.dir,
        driver_logs: session.config.spark.driver_logs.as_deref(),
    };
    let grace = session.config.cluster.request_timeout * 3;
    let Found {
        mut actions,
        dead_leases,
    } = session
        .runtime
        .block_on(find(&session.cluster, &places, grace))?;
    if let Some(dir) = places.driver_logs {
        let retention = session.config.spark.driver_log_retention;
        actions.extend(old_driver_logs(dir, retention)?);
    }
    let mut kept = Vec::new();
    if !args.dry_run {
        kept = session.runtime.block_on(keep_driver_logs(
            &session.cluster,
            &session.config,
            &dead_leases,
        ));
        actions = session
            .runtime
            .block_on(remove(&session.cluster, &places, actions));
    }
    let failed = actions.iter().filter(|a| a.error.is_some()).count();
    if args.output.json {
        out!(
            "{}",
            json!({
                "dry_run": args.dry_run,
                "ok": failed == 0,
                "actions": actions,
                "driver_logs_kept": kept,
            })
        );
    } else {
        for path in &kept {
            out!("kept driver log {}", path.display());
        }
        for action in &actions {
            print_action(action, args.dry_run);
        }
    }
    if failed > 0 {
        return Err(Failure::unavailable(format!(
            "gc could not remove {failed} of {} objects; they stay until the next gc",
            actions.len()
        )));
    }
    Ok(0)
}

fn print_action(action: &Action, dry_run: bool) {
    let what = match &action.garbage {
        Garbage::Lease {
            namespace,
            service_account,
        } => format!(
            "lease ServiceAccount {namespace}/{service_account}, with any pods running as it"
        ),
        Garbage::Leftovers { kind, namespace } => format!("{kind:?}s in {namespace}"),
        Garbage::RoleBinding { namespace, name } => format!("RoleBinding {namespace}/{name}"),
        Garbage::Namespace { name } => format!("per-run namespace {name}"),
        Garbage::RunDirectory { path } => format!("run directory {path}"),
        Garbage::RunCgroup { path } => format!("cgroup {path} with any process left in it"),
        Garbage::DriverLog { path } => format!("driver log {path}"),
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    match &action.error {
        None => out!("{verb} {what} of run {} ({})", action.run, action.reason),
        Some(e) => err!(
            "kubesu: gc: cannot remove {what} of run {}: {e}",
            action.run
        ),
    }
}

/// What gc found to remove, and the dead leases among it, whose runs'
/// drivers' logs are kept before any of their pods goes.
struct Found {
    actions: Vec<Action>,
    dead_leases: Vec<(RunIdentity, Holder)>,
}

/// Everything a run creates after its lease is listed before the leases: a
/// run that starts while gc runs has its lease in the later list, so none of
/// its objects is taken for an orphan. Per-run namespaces come before the
/// lease in a run, so young ones get a grace period instead.
async fn find(cluster: &Cluster, places: &Places<'_>, grace: Duration) -> Result<Found> {
    let runtime_dir = places.runtime_dir;
    let (spark, namespaces, bindings) = tokio::join!(
        leftovers::list_all(cluster),
        namespace::list_per_run(cluster),
        lease::list_bindings(cluster),
    );
    let (spark, namespaces, bindings) = (spark?, namespaces?, bindings?);
    let directories = runtime_dir::list_run_dirs(runtime_dir)?;
    let cgroups = cgroup::abandoned().map_err(|e| {
        Failure::software(format!(
            "cannot look for the cgroups of dead runs: {e}; run gc as root"
        ))
    })?;
    let leases = lease::list(cluster, None).await?;

    let here = Here::now();
    let mut actions = Vec::new();
    let mut live = BTreeSet::new();
    let mut dead_accounts = BTreeSet::new();
    let mut dead_leases = Vec::new();
    for found in &leases {
        let state = liveness::judge(&found.holder, &here);
        if state.is_live() {
            live.insert(found.run.clone());
            continue;
        }
        dead_accounts.insert((found.namespace.clone(), found.service_account.clone()));
        // Drivers carry the run's label: a run with no labelled pod in the
        // listing above has none, and costs no further call.
        let has_pods = spark.contains(&Leftover {
            kind: Kind::Pod,
            namespace: found.namespace.clone(),
            run: found.run.clone(),
        });
        if has_pods && let Ok(run) = RunId::parse(&found.run) {
            let identity = RunIdentity {
                run,
                namespace: found.namespace.clone(),
                service_account: found.service_account.clone(),
            };
            dead_leases.push((identity, found.holder.clone()));
        }
        actions.push(Action::new(
            Garbage::Lease {
                namespace: found.namespace.clone(),
                service_account: found.service_account.clone(),
            },
            &found.run,
            &format!("{state:?}"),
        ));
    }
    let orphan = |run: &str| !live.contains(run);
    for item in spark.into_iter().filter(|l| orphan(&l.run)) {
        actions.push(Action::new(
            Garbage::Leftovers {
                kind: item.kind,
                namespace: item.namespace,
            },
            &item.run,
            "no live lease",
        ));
    }
    for (namespace, name, run) in bindings {
        // A dead lease's RoleBinding goes with its lease.
        if orphan(&run) && !dead_accounts.contains(&(namespace.clone(), name.clone())) {
            actions.push(Action::new(
                Garbage::RoleBinding { namespace, name },
                &run,
                "no live lease",
            ));
        }
    }
    let old_enough = here.now - SignedDuration::try_from(grace).unwrap_or(SignedDuration::ZERO);
    for (name, run, created) in namespaces {
        if orphan(&run) && created.is_some_and(|c| c < old_enough) {
            actions.push(Action::new(
                Garbage::Namespace { name },
                &run,
                "no live lease",
            ));
        }
    }
    // No kubesu holds it, and (for a kubesu from before the lock) its run
    // has no live lease.
    for abandoned in cgroups.into_iter().filter(|c| orphan(&c.run)) {
        actions.push(Action::new(
            Garbage::RunCgroup {
                path: abandoned.dir.display().to_string(),
            },
            &abandoned.run,
            "its kubesu is gone",
        ));
    }
    for run in directories.iter().filter(|r| orphan(r.as_str())) {
        let path = runtime_dir.join(run.as_str()).display().to_string();
        actions.push(Action::new(
            Garbage::RunDirectory { path },
            run.as_str(),
            "no live lease",
        ));
    }
    Ok(Found {
        actions,
        dead_leases,
    })
}

/// The drivers' logs of runs whose kubesu died before its revocation
/// could keep them ([spark] driver_logs), several runs at a time; what
/// cannot be kept is a warning, and gc goes on.
async fn keep_driver_logs(
    cluster: &Cluster,
    config: &Config,
    dead_leases: &[(RunIdentity, Holder)],
) -> Vec<PathBuf> {
    let kept: Vec<Option<driver_logs::Kept>> = futures::stream::iter(dead_leases)
        .map(|(identity, holder)| async move {
            let keeping = Keeping::after_the_fact(config, identity, holder)?;
            Some(driver_logs::keep(cluster, &keeping).await)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut paths = Vec::new();
    for run in kept.into_iter().flatten() {
        for warning in &run.warnings {
            err!("kubesu: gc: warning: {warning}");
        }
        paths.extend(run.paths);
    }
    paths
}

/// Where gc looks on this host, from the config.
struct Places<'a> {
    runtime_dir: &'a Path,
    driver_logs: Option<&'a Path>,
}

/// Kept driver logs past their retention: by age alone, a run's log is
/// written once, as the run ends.
fn old_driver_logs(dir: &Path, retention: Duration) -> Result<Vec<Action>> {
    let reason = format!(
        "older than [spark] driver_log_retention ({}s)",
        retention.as_secs()
    );
    Ok(driver_logs::expired(dir, retention)?
        .into_iter()
        .map(|log| {
            let path = dir.join(&log.name).display().to_string();
            Action::new(Garbage::DriverLog { path }, log.run.as_str(), &reason)
        })
        .collect())
}

impl Action {
    /// Found, not yet removed.
    fn new(garbage: Garbage, run: &str, reason: &str) -> Action {
        Action {
            garbage,
            run: run.to_string(),
            reason: reason.to_string(),
            removed: None,
            error: None,
        }
    }
}

async fn remove(cluster: &Cluster, places: &Places<'_>, actions: Vec<Action>) -> Vec<Action> {
    futures::stream::iter(actions)
        .map(|mut action| async move {
            let result = remove_one(cluster, places, &action).await;
            action.removed = Some(result.is_ok());
            action.error = result.err().map(|e| e.message);
            action
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

async fn remove_one(cluster: &Cluster, places: &Places<'_>, action: &Action) -> Result<()> {
    match &action.garbage {
        Garbage::Lease {
            namespace,
            service_account,
        } => {
            let (released, pods) = tokio::join!(
                lease::release(cluster, namespace, service_account),
                leftovers::delete_pods_of(cluster, namespace, service_account),
            );
            released.and(pods)
        }
        Garbage::Leftovers { kind, namespace } => {
            leftovers::delete_one(cluster, *kind, namespace, &action.run).await
        }
        Garbage::RoleBinding { namespace, name } => {
            lease::delete_binding(cluster, namespace, name).await
        }
        Garbage::Namespace { name } => namespace::delete(cluster, name).await,
        Garbage::RunCgroup { path } => {
            // It waits (briefly) for the KILLed processes to be gone.
            let dir = PathBuf::from(path);
            let ended = tokio::task::spawn_blocking(move || cgroup::end_abandoned(&dir)).await;
            match ended {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
            .map_err(|e| Failure::software(format!("cannot end and remove cgroup {path}: {e}")))
        }
        Garbage::RunDirectory { .. } => {
            let run = RunId::parse(&action.run)?;
            handover::remove(places.runtime_dir, &run)
        }
        Garbage::DriverLog { path } => match (places.driver_logs, Path::new(path).file_name()) {
            (Some(dir), Some(name)) => driver_logs::remove(dir, name),
            _ => Err(Failure::software(format!(
                "driver log {path} is not in [spark] driver_logs: please report this bug"
            ))),
        },
    }
}
