//! Processes: becoming a subreaper, reaping, finding and signalling what is
//! left of the command's tree.

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
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

/// Reap every child that has ended, without blocking. Returns the status of
/// `main` if it was among them, and whether any child is left at all.
pub fn reap(main: Pid) -> (Option<i32>, bool) {
    let mut main_status = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return (main_status, true),
            Ok(status) => {
                if status.pid() == Some(main) {
                    main_status = exit_status(status).or(main_status);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(_) => return (main_status, false), // ECHILD: nothing left
        }
    }
}

/// kubesu's own children now: the command, if alive, and every orphan of its
/// tree re-parented here.
pub fn children() -> Vec<Pid> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid).as_deref() == Some(me.as_str()))
        .map(Pid::from_raw)
        .collect()
}

fn parent_of(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces or ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1).map(str::to_string)
}

/// Signal the command's process group and every remaining child.
pub fn signal_tree(group: Pid, signal: Signal) {
    let _ = killpg(group, signal);
    for pid in children() {
        let _ = kill(pid, signal);
    }
}

/// Forward a signal to the command's process group.
pub fn forward(group: Pid, signal: Signal) {
    let _ = killpg(group, signal);
}

/// Signal the process `pid` only if it is still the one that started at
/// `start` (clock ticks since boot): the pid is pinned with a pidfd first,
/// then its start time read, then the signal sent through the pidfd, so a
/// pid reused in between is never signalled. Ok(false) when it is gone.
pub fn signal_if_same(pid: u32, start: u64, signal: Signal) -> std::io::Result<bool> {
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
    if start_time(pid) != Some(start) {
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
