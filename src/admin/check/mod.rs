//! `kubesu check`: is this host set up right, and does kubesu's own identity
//! hold every permission it needs? One row per check, each failure with its
//! fix; nothing is created or changed (probes vanish: an unnamed file for
//! ACL support, a cgroup made and removed at once).
//!
//! Exit status: 0 when every check passes; 78 (`Code::Config`) when any
//! check of the configuration, the files or the permissions fails; otherwise
//! 69 (`Code::Unavailable`) when the only failure is that the cluster could
//! not be reached. Checks that could not run because an earlier one failed
//! are listed as "not checked" and do not change the status on their own.

pub mod cluster;
pub mod host;
pub mod report;

use std::path::Path;

use crate::failure::{Failure, Result};
use crate::policy::config;
use crate::run::driver_logs;
use crate::sys::Invoker;
use report::{Report, Row, exit_status, table};

/// The sudoers drop-in checked when present.
pub const SUDOERS_DROP_IN: &str = "/etc/sudoers.d/kubesu";
const APPLY_RBAC: &str = "as a cluster administrator, apply `kubesu rbac | kubectl apply -f -` (see `kubesu rbac --help`)";

/// `kubesu check [--json]`.
pub fn check(config_path: Option<&Path>, json: bool) -> Result<i32> {
    let invoker = Invoker::current();
    let path = config::chosen(config_path, invoker.came_through_sudo())?;
    let rows = checks(path, &invoker);
    let status = exit_status(&rows);
    if json {
        let report = serde_json::json!({ "ok": status == 0, "checks": rows });
        out!("{report}");
    } else {
        out_raw!("{}", table(&rows));
    }
    Ok(status)
}

/// Every check, in order.
pub fn checks(path: &Path, invoker: &Invoker) -> Vec<Row> {
    let mut report = Report::default();
    if invoker.effective_uid.is_root() {
        report.pass("root", "running as root");
    } else {
        report.fail(
            "root",
            Failure::config(format!(
                "running as uid {}: kubesu's kubeconfig and other root-only files cannot be read",
                invoker.effective_uid
            )),
            "run it as root: sudo kubesu check",
        );
    }
    let config = host::config_checks(&mut report, path);
    host::sudoers_check(&mut report, Path::new(SUDOERS_DROP_IN));
    let Some(config) = config else {
        for name in [
            "kubeconfig",
            "runtime directory",
            "process tracking",
            "commands",
            "cluster",
            "rbac",
        ] {
            report.skip(name, "the config file is unusable");
        }
        return report.rows;
    };
    let kubeconfig = &config.cluster.kubeconfig;
    report.record(
        "kubeconfig",
        host::kubeconfig_file(kubeconfig),
        format!(
            "chown root:root {p} && chmod 0600 {p} ([cluster] kubeconfig), in root-owned directories nobody else can write",
            p = kubeconfig.display()
        ),
    );
    let dir = &config.runtime.dir;
    report.record(
        "runtime directory",
        host::runtime_dir(dir),
        format!(
            "chown root:root {d} && chmod 0711 {d}, or remove it (the first run creates it), on a file system \
             with POSIX ACLs (tmpfs has them), or set [runtime] dir",
            d = dir.display()
        ),
    );
    if let Some(logs) = &config.spark.driver_logs {
        report.record(
            "driver log directory",
            driver_logs::check_dir(logs),
            format!(
                "make every directory above {d} root-owned, searchable by all and not writable \
                 by others, and {d} itself root-owned 0711 on a file system with POSIX ACLs, \
                 or set another [spark] driver_logs",
                d = logs.display()
            ),
        );
    }
    report.record(
        "process tracking",
        host::process_tracking(),
        "mount the cgroup v2 hierarchy read-write for root (runs still start without it, \
         tracked by their process group: see docs/security.md)",
    );
    for command in &config.commands {
        let p = command.path.display();
        report.record(
            "command",
            host::command_file(&command.path).map(|detail| format!("{p}: {detail}")),
            format!(
                "install {p} root-owned and not writable by group or others (chown root:root, chmod go-w), \
                 in root-owned directories, or remove its [[command]] entry"
            ),
        );
    }
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(cluster::cluster_checks(&mut report, &config)),
        Err(e) => report.fail(
            "cluster",
            Failure::software(format!("cannot start kubesu's event loop: {e}")),
            "retry; report a bug if it persists",
        ),
    }
    report.rows
}
