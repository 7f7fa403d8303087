//! The command line. Parsing only: what each mode does lives in its module.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run a command as an end user with temporary Kubernetes credentials,
/// scoped to one namespace, created for this run and revoked when it ends.
#[derive(Debug, Parser)]
#[command(name = "kubesu", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file. Honoured only for root callers that did not come
    /// through sudo: a sudo caller cannot choose its own policy.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Run COMMAND as --user with credentials for this run only: authorize,
    /// prepare the namespace, ServiceAccount, RoleBinding and token, hand them
    /// over in a private directory, drop privileges, run, then revoke.
    Run(RunArgs),
    /// Start the user's login shell with the run's credentials, for debugging
    /// from a terminal (in a pty of kubesu's, with job control); revoked when
    /// the shell exits.
    Shell(ShellArgs),
    /// Remove what crashed runs left behind: expired or ownerless leases,
    /// Spark leftovers, per-run namespaces, stale run directories (keeping
    /// their drivers' logs first), the cgroups of runs whose kubesu died
    /// and what is left in them; and kept driver logs past their
    /// retention. For cron.
    Gc(GcArgs),
    /// List live leases: user, namespace, age, expiry, host, pid.
    List(OutputArgs),
    /// Revoke a run's credentials now, by run id or for every run of a user
    /// (keeping their drivers' logs first).
    Revoke(RevokeArgs),
    /// Check the configuration, file modes, the cluster and kubesu's own
    /// permissions; exit 0 only when everything holds.
    ///
    /// One row per check: the config file (ownership, mode, syntax with line
    /// and column), kubesu's kubeconfig (root-owned, no group or other
    /// access), the runtime directory and [spark] driver_logs (checked,
    /// never created; their file systems must take POSIX ACLs), whether
    /// runs get a cgroup of their own (a probe made and removed), the sudoers
    /// drop-in /etc/sudoers.d/kubesu if present (visudo -cf, root-owned,
    /// 0440), every [[command]] path, the cluster's reachability and version,
    /// every permission `kubesu rbac` grants (asked with
    /// SelfSubjectAccessReview) and the Spark ClusterRole's rules. Each
    /// failure comes with its fix.
    ///
    /// Exit status: 0 when every check passes; 78 when any check of the
    /// configuration, files or permissions fails (the administrator fixes
    /// something on this host or in RBAC); otherwise 69 when the only
    /// failures are that the cluster could not be reached, so the checks
    /// needing it could not run. Run it as root: it reads root-only files.
    Check(OutputArgs),
    /// Print the RBAC manifests an administrator applies once:
    /// `kubesu rbac | kubectl apply -f -`.
    ///
    /// The ClusterRole `kubesu` with exactly the permissions kubesu uses, the
    /// ClusterRoleBinding `kubesu` giving it to the identity in kubesu's
    /// kubeconfig (--user or --service-account), and the Spark ClusterRole
    /// named by [cluster] cluster_role that each run's ServiceAccount gets in
    /// its namespace. Reads the config only for that name: any user who can
    /// read the config may run it.
    Rbac(RbacArgs),
}

#[derive(Debug, Args)]
pub struct Target {
    /// The end user the command runs as.
    #[arg(long, short = 'u', value_name = "USER")]
    pub user: String,

    /// The team (a group the user belongs to), for per-team namespaces.
    #[arg(long, value_name = "GROUP")]
    pub team: Option<String>,

    /// Token lifetime, e.g. 600s, 30m, 2h (at least 10m, at most the
    /// configured maximum).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,

    /// Print the plan (namespace, objects, forced arguments, environment) and
    /// touch nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print each phase with its duration on stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// Print the run record as one JSON object on stderr at the end.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: Target,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub target: Target,

    /// The shell to start instead of the user's login shell; it must be
    /// listed in /etc/shells (and, for a sudo caller, under [[command]]).
    #[arg(long, value_name = "PATH")]
    pub shell: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct RbacArgs {
    /// The Kubernetes user kubesu's kubeconfig authenticates as (e.g. a
    /// client certificate's CN) [default: kubesu].
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// Or the ServiceAccount it authenticates as.
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "user")]
    pub service_account: Option<String>,

    /// Print kubesu's admission policies instead (Kubernetes 1.30 or later):
    /// what RBAC cannot say about the runs' tokens, namespace ownership and
    /// kubesu's own identity.
    #[arg(long)]
    pub admission: bool,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub target: RevokeTarget,

    /// End the runs' commands too, as at their maximum run time (TERM, a
    /// grace period, KILL; the run exits 124). Only runs supervised on this
    /// host can be ended from here; elsewhere only the credentials are
    /// revoked.
    #[arg(long)]
    pub end: bool,
}

/// Which runs `kubesu revoke` acts on: one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RevokeTarget {
    /// The run to revoke.
    #[arg(value_name = "RUN_ID")]
    pub run_id: Option<String>,

    /// Revoke every live run of this user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_double_dash() {
        let cli = Cli::try_parse_from([
            "kubesu", "run", "--user", "alice", "--", "id", "--user", "x",
        ])
        .expect("parses");
        let Mode::Run(run) = cli.mode else {
            panic!("not run")
        };
        assert_eq!(run.target.user, "alice");
        assert_eq!(run.command, ["id", "--user", "x"]);
    }

    #[test]
    fn run_without_command_is_a_usage_error() {
        assert!(Cli::try_parse_from(["kubesu", "run", "--user", "alice"]).is_err());
    }

    #[test]
    fn revoke_needs_exactly_one_selector() {
        assert!(Cli::try_parse_from(["kubesu", "revoke"]).is_err());
        assert!(Cli::try_parse_from(["kubesu", "revoke", "abc", "--user", "bob"]).is_err());
    }
}
