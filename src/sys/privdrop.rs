//! Start the command as the end user: fork, and in the child drop every
//! privilege irreversibly before exec, in the order sudo, doas and setpriv
//! use: supplementary groups, then gid, then uid; then prove root is gone.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::unistd::{Gid, Pid, Uid, getresgid, getresuid, setgroups, setresgid, setresuid};

use crate::failure::{Failure, Result};

/// Everything the child needs, computed before the fork: between fork and
/// exec only async-signal-safe system calls run, no allocation.
#[derive(Debug)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub user: String,
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<Gid>,
    /// Tried in order; "/" is the last resort.
    pub directories: Vec<PathBuf>,
    pub no_new_privs: bool,
    /// The caller's resource limits, given back to the command.
    pub limits: super::limits::CallerLimits,
}

/// Fork and exec the command as the user, in a new session (so its whole
/// process group can be signalled). Returns the child's pid, which is also
/// its process group id.
pub fn spawn(launch: &Launch) -> Result<Pid> {
    let directories: Vec<CString> = launch
        .directories
        .iter()
        .filter_map(|d| CString::new(d.as_os_str().as_bytes()).ok())
        .chain(std::iter::once(c"/".to_owned()))
        .collect();
    let (uid, gid, groups) = (launch.uid, launch.gid, launch.groups.clone());
    let no_new_privs = launch.no_new_privs;
    let limits = launch.limits.clone();
    let supervisor = Pid::this();

    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)));
    // SAFETY: the closure makes only async-signal-safe system calls on data
    // prepared before the fork, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            super::limits::restore(&limits);
            in_child(uid, gid, &groups, &directories, no_new_privs, supervisor)
                .map_err(std::io::Error::from)
        });
    }
    let child = command.spawn().map_err(|e| {
        Failure::software(format!(
            "cannot start {} as user {} (uid {uid}): {e}",
            launch.program.display(),
            launch.user
        ))
    })?;
    Ok(Pid::from_raw(child.id() as i32))
}

fn in_child(
    uid: Uid,
    gid: Gid,
    groups: &[Gid],
    directories: &[CString],
    no_new_privs: bool,
    supervisor: Pid,
) -> std::result::Result<(), Errno> {
    step("starting a new session", nix::unistd::setsid().map(drop))?;
    reset_signal_dispositions();
    step("setting the user's groups", setgroups(groups))?;
    step("setting the user's gid", setresgid(gid, gid, gid))?;
    step("setting the user's uid", setresuid(uid, uid, uid))?;
    step("checking the dropped ids", check_dropped(uid, gid))?;
    // After the uid change: a credential change clears the death signal.
    step(
        "setting the parent-death signal",
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL),
    )?;
    if nix::unistd::getppid() != supervisor {
        // kubesu died before the death signal was armed: do not run unsupervised.
        return step("checking the supervisor", Err(Errno::ESRCH));
    }
    if no_new_privs {
        step("setting no_new_privs", nix::sys::prctl::set_no_new_privs())?;
    }
    // As the user, so a directory the user cannot enter is never entered.
    for dir in directories {
        if nix::unistd::chdir(dir.as_c_str()).is_ok() {
            return Ok(());
        }
    }
    step("entering a working directory", Err(Errno::ENOENT))
}

/// The ids must all be the user's, and root must be unreachable: a kernel or
/// a security module that silently ignored a change would fail here.
fn check_dropped(uid: Uid, gid: Gid) -> std::result::Result<(), Errno> {
    let u = getresuid()?;
    let g = getresgid()?;
    if [u.real, u.effective, u.saved] != [uid; 3] || [g.real, g.effective, g.saved] != [gid; 3] {
        return Err(Errno::EPERM);
    }
    let root = Uid::from_raw(0);
    if setresuid(root, root, root).is_ok() {
        return Err(Errno::EPERM);
    }
    if gid.as_raw() != 0 && setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).is_ok()
    {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// Signals ignored or blocked by kubesu or its caller stay so across exec;
/// the command gets the defaults, as after login.
fn reset_signal_dispositions() {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator() {
        if signal != Signal::SIGKILL && signal != Signal::SIGSTOP {
            // SAFETY: installing the default disposition is always sound.
            let _ = unsafe { sigaction(signal, &default) };
        }
    }
}

/// On failure, say which step failed on stderr with a fixed message (no
/// formatting: it allocates), then hand the errno to the parent.
fn step(what: &str, result: nix::Result<()>) -> std::result::Result<(), Errno> {
    if result.is_err() {
        let parts: [&[u8]; 3] = [b"kubesu: in the child, failed ", what.as_bytes(), b"\n"];
        for part in parts {
            // SAFETY: write(2) on stderr with a valid buffer.
            unsafe { nix::libc::write(2, part.as_ptr().cast(), part.len()) };
        }
    }
    result
}
