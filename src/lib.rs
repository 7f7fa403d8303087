//! kubesu: run one command as an end user with temporary Kubernetes
//! credentials scoped to one namespace, created for the run and revoked when
//! it ends.
//!
//! The house:
//! - `run`: the root path of `kubesu run` and `kubesu shell`, phase by
//!   phase (`run::run` reads as the list: authorize, plan, prepare, hand
//!   over, launch, supervise and renew, revoke).
//! - `admin`: the other modes, one module each: `gc`, `list`, `revoke`,
//!   `check`, `rbac`.
//! - `policy`: what the config allows and how things are named, decided
//!   without the cluster: config, identity, naming, labels, environment,
//!   spark-submit's arguments, the permission catalogue.
//! - `cluster`: every call to the Kubernetes API, each with a deadline.
//! - `sys`: the operating system: privilege drop, signals, processes,
//!   accounts, root file access; the only place for `unsafe` and libc.
//! - `audit`, `failure`, `cli`: the audit trail, kubesu's exit codes and
//!   messages, the command line.

// Every unsafe block and every call into libc lives in `sys`; the compiler
// holds the rest of the crate to that.
#![deny(unsafe_code)]

/// `println!` that never panics: a reader that went away (`kubesu list |
/// head`) must not abort kubesu.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` likewise: a caller that closed its end of stderr, or stopped
/// reading it, must not stop the supervising parent before it revokes (a
/// line waits 5 s at most). Always a line of its own, even after the
/// command's unfinished one (`sys::sink::own_line`).
macro_rules! err {
    ($($arg:tt)*) => {{
        $crate::sys::sink::own_line(&format!($($arg)*));
    }};
}

/// `print!` that never panics.
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

pub mod admin;
pub mod audit;
pub mod cli;
pub mod cluster;
pub mod failure;
pub mod policy;
pub mod run;
#[allow(unsafe_code)]
pub mod sys;

use clap::Parser;

use crate::cli::{Cli, Mode};

/// Parse the command line, run the mode, and return the process exit status.
pub fn main() -> i32 {
    if let Err(failure) = refuse_set_id() {
        err!("kubesu: {failure}");
        return failure.exit_status();
    }
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
    // Before it writes anything: the caller's limits are the command's.
    sys::limits::lift();
    // Before it reads its config and credentials: a root process that could
    // be dumped or ptraced would give them away.
    if let Err(e) = sys::process::forbid_dumps() {
        err!("kubesu: cannot make kubesu undumpable: {e}");
        return failure::Code::Software as i32;
    }
    // With --json, a run kubesu refused or could not prepare still ends
    // with one JSON object on stderr, for the platform to read.
    let json_errors = match &cli.mode {
        Mode::Run(args) => args.target.json,
        Mode::Shell(args) => args.target.json,
        _ => false,
    };
    match dispatch(cli) {
        Ok(status) => status,
        Err(failure) => {
            err!("kubesu: {failure}");
            if json_errors {
                let error = serde_json::json!({
                    "event": "error",
                    "status": failure.exit_status(),
                    "error": failure.message,
                });
                err!("{error}");
            }
            failure.exit_status()
        }
    }
}

/// Installed setuid or setgid, kubesu would act as root for whoever starts
/// it, with their arguments and environment: refuse every mode before
/// parsing anything (`check` and `rbac` would otherwise read any root-only
/// file named by --config and quote it in their errors).
fn refuse_set_id() -> failure::Result<()> {
    let (Ok(uid), Ok(gid)) = (nix::unistd::getresuid(), nix::unistd::getresgid()) else {
        return Ok(());
    };
    if uid.real != uid.effective || uid.real != uid.saved {
        return Err(failure::Failure::denied(format!(
            "kubesu is running setuid (real uid {}, effective uid {}): that is not supported; \
             remove the setuid bit (`chmod u-s`) and allow callers through sudo instead",
            uid.real, uid.effective
        )));
    }
    if gid.real != gid.effective || gid.real != gid.saved {
        return Err(failure::Failure::denied(format!(
            "kubesu is running setgid (real gid {}, effective gid {}): that is not supported; \
             remove the setgid bit (`chmod g-s`) and allow callers through sudo instead",
            gid.real, gid.effective
        )));
    }
    Ok(())
}

/// Every mode's entry.
fn dispatch(cli: Cli) -> failure::Result<i32> {
    match cli.mode {
        Mode::Run(args) => run::run(
            cli.config.as_deref(),
            &args.target,
            run::authorize::Program::Command(&args.command),
        ),
        Mode::Shell(args) => run::run(
            cli.config.as_deref(),
            &args.target,
            run::authorize::Program::Shell(args.shell.as_deref()),
        ),
        Mode::Gc(args) => admin::gc::gc(cli.config.as_deref(), &args),
        Mode::List(args) => admin::list::list(cli.config.as_deref(), &args),
        Mode::Revoke(args) => admin::revoke::revoke(cli.config.as_deref(), &args),
        Mode::Check(args) => admin::check::check(cli.config.as_deref(), args.json),
        Mode::Rbac(args) => admin::rbac::rbac(cli.config.as_deref(), &args),
    }
}
