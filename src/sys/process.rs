//! Processes: becoming a subreaper, reaping, finding and signalling
//! processes without ever signalling a pid that may have been reused.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

/// Orphans of the command's tree are re-parented to kubesu, not to init, so
/// kubesu can find and end them.
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// A root process that dumps core or can be ptraced by its user would leak
/// kubesu's credentials; keep it undumpable.
pub fn forbid_dumps() -> nix::Result<()> {
    nix::sys::prctl::set_dumpable(false)
}

/// How a process ended, as a shell reports it.
pub fn exit_status(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as i32),
        _ => None,
    }
}

/// kubesu's own children now, living or not: the command, and every
/// orphan of its tree re-parented here. A child cannot be reused by another
/// process until kubesu reaps it, so these pids are safe to signal.
pub fn children() -> Vec<Pid> {
    let me = std::process::id();
    processes()
        .filter(|p| p.parent == me)
        .map(|p| Pid::from_raw(p.pid as i32))
        .collect()
}

/// Whether a process that is not a zombie is in process group `group`, or
/// is a child of kubesu's.
pub fn any_alive_in(group: Pid) -> bool {
    let me = std::process::id();
    let group = group.as_raw() as u32;
    processes().any(|p| p.state != 'Z' && (p.group == group || p.parent == me))
}

struct Process {
    pid: u32,
    state: char,
    parent: u32,
    group: u32,
}

fn processes() -> impl Iterator<Item = Process> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process)
}

fn process(pid: u32) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces or ')'.
    let mut after = stat[stat.rfind(')')? + 1..].split_whitespace();
    Some(Process {
        pid,
        state: after.next()?.chars().next()?,
        parent: after.next()?.parse().ok()?,
        group: after.next()?.parse().ok()?,
    })
}

/// Reap every child but `kept` that has ended, without blocking.
pub fn reap_all_but(kept: Pid) {
    for child in children() {
        if child != kept {
            let _ = waitpid(child, Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Reap the children that ended, one wait each (no scan of /proc: this
/// runs at every SIGCHLD of a long run), until `leader` is among them. Its
/// status is returned and it stays unreaped: while it is a zombie of
/// kubesu's, its pid (and the id of the group it led) is nobody else's.
/// Children that ended after it are left to `reap_all_but`.
pub fn reap_until(leader: Pid) -> Option<i32> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        match waitid(Id::All, flags) {
            Ok(WaitStatus::StillAlive) => return None,
            Ok(status) => match status.pid() {
                Some(pid) if pid == leader => return exit_status(status),
                Some(pid) => {
                    let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
                }
                None => return None,
            },
            Err(Errno::EINTR) => continue,
            Err(_) => return None, // ECHILD: no child at all
        }
    }
}

/// Reap `child` (after `reap_until`).
pub fn reap(child: Pid) {
    let _ = waitpid(child, Some(WaitPidFlag::WNOHANG));
}

/// Signal the process `pid` only if it is still the one that started at
/// `start` (clock ticks since boot). Ok(false) when it is gone.
pub fn signal_if_same(pid: u32, start: u64, signal: Signal) -> std::io::Result<bool> {
    signal_pinned(pid, || start_time(pid) == Some(start), signal)
}

/// Signal process `pid` only if `still_it` holds: the pid is pinned with a
/// pidfd first, then checked, then signalled through the pidfd, so a pid
/// reused in between is never signalled. Ok(false) when it is gone or not
/// the one.
pub fn signal_pinned(
    pid: u32,
    still_it: impl FnOnce() -> bool,
    signal: Signal,
) -> std::io::Result<bool> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let Ok(raw_pid) = nix::libc::pid_t::try_from(pid) else {
        return Ok(false);
    };
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, raw_pid, 0) };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(nix::libc::ESRCH) => Ok(false),
            _ => Err(error),
        };
    }
    // SAFETY: the syscall just returned this descriptor, owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !still_it() {
        return Ok(false);
    }
    // SAFETY: a valid pidfd, a valid signal number, no siginfo, no flags.
    let sent = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as i32,
            std::ptr::null::<nix::libc::siginfo_t>(),
            0,
        )
    };
    if sent < 0 {
        let error = std::io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(nix::libc::ESRCH) => Ok(false),
            _ => Err(error),
        };
    }
    Ok(true)
}

/// The start time of a process in clock ticks since boot (field 22 of
/// /proc/PID/stat): with the boot id it tells a live process from a reused pid.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}
