//! kubesu: run one command as an end user with temporary Kubernetes
//! credentials scoped to one namespace, created for the run and revoked when
//! it ends. See `man kubesu` and `run::run` for the phases.

pub mod admin;
pub mod audit;
pub mod authorize;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod environment;
pub mod failure;
pub mod gc;
pub mod handover;
pub mod list;
pub mod liveness;
pub mod naming;
pub mod rbac;
pub mod renew;
pub mod revoke;
pub mod run;
pub mod spark;
pub mod supervise;
pub mod sys;

use clap::Parser;

use crate::cli::{Cli, Mode};
use crate::failure::Failure;

/// Parse the command line, run the mode, and return the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits 2 on usage errors; kubesu promises sysexits codes.
            let _ = e.print();
            return if e.use_stderr() { 64 } else { 0 };
        }
    };
    // Before kubesu opens anything of its own.
    sys::close_inherited_descriptors();
    match dispatch(cli) {
        Ok(status) => status,
        Err(failure) => {
            eprintln!("kubesu: {failure}");
            failure.exit_status()
        }
    }
}

fn dispatch(cli: Cli) -> failure::Result<i32> {
    match cli.mode {
        Mode::Run(args) => run::run(cli.config.as_deref(), &args.target, &args.command),
        Mode::Shell(_) => not_yet("shell", 4),
        Mode::Gc(args) => gc::gc(cli.config.as_deref(), &args),
        Mode::List(args) => list::list(cli.config.as_deref(), &args),
        Mode::Revoke(args) => revoke::command(cli.config.as_deref(), &args),
        Mode::Check(args) => check::check(cli.config.as_deref(), args.json),
        Mode::Rbac(args) => rbac::rbac(cli.config.as_deref(), &args),
    }
}

fn not_yet(mode: &str, issue: u32) -> failure::Result<i32> {
    Err(Failure::config(format!(
        "`kubesu {mode}` is not implemented yet (issue {issue}); nothing was done"
    )))
}
