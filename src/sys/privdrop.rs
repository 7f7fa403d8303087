//! Act as the end user: fork, and in the child drop every privilege
//! irreversibly, in the order sudo, doas and setpriv use: supplementary
//! groups, then gid, then uid; then prove root is gone. `spawn` then execs
//! the command; `read_as` reads a file the user named, so that root never
//! opens a path the user chose.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::stat::{Mode, SFlag, fstat};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{
    ForkResult, Gid, Pid, Uid, fork, getresgid, getresuid, pipe2, setgroups, setresgid, setresuid,
};

use super::terminal::Streams;
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
    /// What the command gets instead of kubesu's standard streams.
    pub streams: CommandStreams,
    /// `cgroup.procs` of the run's cgroup, which the child joins first
    /// (see `sys::cgroup`).
    pub cgroup: Option<RawFd>,
}

/// What the command gets instead of kubesu's stdin, stdout and stderr:
/// when kubesu runs in a terminal, the slave of a pty of kubesu's (see
/// `sys::terminal`); for the other streams, descriptors of kubesu's (see
/// `run::output`). `None` passes kubesu's own on.
#[derive(Debug, Default)]
pub struct CommandStreams {
    pub terminal: Option<CommandTerminal>,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// The slave of kubesu's pty: the command's controlling terminal, and its
/// stdin, stdout and stderr where kubesu's own are terminals.
#[derive(Debug)]
pub struct CommandTerminal {
    pub slave: OwnedFd,
    pub streams: Streams,
}

/// Fork and exec the command as the user, in a new session (so its whole
/// process group can be signalled). Returns the child's pid, which is also
/// its process group id.
pub fn spawn(launch: &Launch) -> Result<Pid> {
    let uid = launch.uid;
    let limits = launch.limits.clone();
    let mut steps = ChildSteps {
        uid,
        gid: launch.gid,
        groups: launch.groups.clone(),
        directories: c_directories(&launch.directories),
        no_new_privs: launch.no_new_privs,
        supervisor: Pid::this(),
        terminal: None,
        cgroup: launch.cgroup,
    };

    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)));
    let copy = |fd: &OwnedFd| {
        fd.try_clone().map_err(|e| {
            Failure::software(format!(
                "cannot pass a terminal or pipe to {} as user {}: {e}",
                launch.program.display(),
                launch.user
            ))
        })
    };
    let streams = &launch.streams;
    if let Some(terminal) = &streams.terminal {
        steps.terminal = Some(terminal.slave.as_raw_fd());
        if terminal.streams.stdin {
            command.stdin(copy(&terminal.slave)?);
        }
        if terminal.streams.stdout {
            command.stdout(copy(&terminal.slave)?);
        }
        if terminal.streams.stderr {
            command.stderr(copy(&terminal.slave)?);
        }
    }
    if let Some(stdin) = &streams.stdin {
        command.stdin(copy(stdin)?);
    }
    if let Some(stdout) = &streams.stdout {
        command.stdout(copy(stdout)?);
    }
    if let Some(stderr) = &streams.stderr {
        command.stderr(copy(stderr)?);
    }
    // SAFETY: the closure makes only async-signal-safe system calls on data
    // prepared before the fork, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            super::limits::restore(&limits);
            in_child(&steps).map_err(std::io::Error::from)
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

/// What the child does between fork and exec, prepared before the fork.
struct ChildSteps {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    directories: Vec<CString>,
    no_new_privs: bool,
    supervisor: Pid,
    /// The pty slave to take as the controlling terminal.
    terminal: Option<RawFd>,
    /// `cgroup.procs` of the run's cgroup.
    cgroup: Option<RawFd>,
}

fn in_child(steps: &ChildSteps) -> std::result::Result<(), Errno> {
    let ChildSteps {
        uid,
        gid,
        ref groups,
        ref directories,
        no_new_privs,
        supervisor,
        terminal,
        cgroup,
    } = *steps;
    // First, while only kubesu's code runs here: every process the command
    // starts is born in the cgroup.
    if let Some(procs) = cgroup {
        step("joining the run's cgroup", super::cgroup::join(procs))?;
    }
    step("starting a new session", nix::unistd::setsid().map(drop))?;
    if let Some(slave) = terminal {
        step(
            "taking the terminal",
            super::terminal::take_as_controlling(slave),
        )?;
    }
    reset_signal_dispositions();
    step(
        "dropping to the user's groups, gid and uid",
        become_user(uid, gid, groups),
    )?;
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
    step("entering a working directory", enter_first(directories))
}

/// Where a command of the user starts: the caller's working directory if
/// the user may enter it, else the user's home, else "/" (see `enter_first`).
pub fn working_directories(home: &Path) -> Vec<PathBuf> {
    std::env::current_dir()
        .into_iter()
        .chain([home.to_path_buf()])
        .collect()
}

fn c_directories(directories: &[PathBuf]) -> Vec<CString> {
    directories
        .iter()
        .filter_map(|d| CString::new(d.as_os_str().as_bytes()).ok())
        .chain(std::iter::once(c"/".to_owned()))
        .collect()
}

/// Enter the first directory that works. Called as the user, so a
/// directory the user cannot enter is never entered.
fn enter_first(directories: &[CString]) -> nix::Result<()> {
    for dir in directories {
        if nix::unistd::chdir(dir.as_c_str()).is_ok() {
            return Ok(());
        }
    }
    Err(Errno::ENOENT)
}

/// The user `read_as` reads as, and where relative paths start from (as
/// for the command: see `working_directories`).
pub struct Reader<'a> {
    pub uid: Uid,
    pub gid: Gid,
    pub groups: &'a [Gid],
    pub directories: &'a [PathBuf],
}

/// Exit statuses of `read_as`'s child beyond errno values (all below 200).
const NOT_REGULAR: i32 = 200;
const TOO_LARGE: i32 = 201;
const DROP_FAILED: i32 = 202;

/// The bytes of the file at `path`, read with the user's rights only:
/// a child process drops to the user, opens and reads the file (a regular
/// file, at most `limit` bytes) and sends it back through a pipe. What the
/// user cannot read, kubesu cannot read either. Gives up after `deadline`
/// (a file on a hung or user-run file system must not hang kubesu). The
/// error says why, for a message about that file.
pub fn read_as(
    reader: &Reader<'_>,
    path: &Path,
    limit: usize,
    deadline: Duration,
) -> std::result::Result<Vec<u8>, String> {
    let path_c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| "its path holds a NUL byte".to_string())?;
    let directories = c_directories(reader.directories);
    let (uid, gid, groups) = (reader.uid, reader.gid, reader.groups.to_vec());
    let (from_child, to_parent) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("cannot make a pipe: {e}"))?;
    // SAFETY: the child makes only async-signal-safe system calls on data
    // prepared before the fork, allocates nothing, and leaves by _exit.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(from_child);
            let status = read_in_child(
                uid,
                gid,
                &groups,
                &directories,
                &path_c,
                to_parent.as_fd(),
                limit,
            );
            // SAFETY: _exit ends the child without running the parent's
            // destructors or atexit handlers.
            unsafe { nix::libc::_exit(status) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(to_parent);
            let bytes = collect(&from_child, limit, deadline);
            if bytes.is_err() {
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
            }
            let status = loop {
                match waitpid(child, None) {
                    Err(Errno::EINTR) => continue,
                    other => break other,
                }
            };
            let bytes = bytes?;
            match status {
                Ok(WaitStatus::Exited(_, 0)) => Ok(bytes),
                Ok(WaitStatus::Exited(_, NOT_REGULAR)) => Err("it is not a regular file".into()),
                Ok(WaitStatus::Exited(_, TOO_LARGE)) => {
                    Err(format!("it is larger than {limit} bytes"))
                }
                Ok(WaitStatus::Exited(_, DROP_FAILED)) => {
                    Err("the reading process could not drop to the user's ids".into())
                }
                Ok(WaitStatus::Exited(_, errno)) => Err(Errno::from_raw(errno).desc().into()),
                other => Err(format!(
                    "the reading process ended unexpectedly ({other:?})"
                )),
            }
        }
        Err(e) => Err(format!("cannot fork a process to read it: {e}")),
    }
}

/// In the child: become the user, open and read the file, write it to the
/// parent. Returns the exit status.
fn read_in_child(
    uid: Uid,
    gid: Gid,
    groups: &[Gid],
    directories: &[CString],
    path: &std::ffi::CStr,
    out: BorrowedFd<'_>,
    limit: usize,
) -> i32 {
    if become_user(uid, gid, groups).is_err() {
        return DROP_FAILED;
    }
    if let Err(e) = enter_first(directories) {
        return e as i32;
    }
    // O_NONBLOCK: a FIFO must not hang the open (it is refused below).
    let flags = OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let file: OwnedFd = match nix::fcntl::open(path, flags, Mode::empty()) {
        Ok(file) => file,
        Err(e) => return e as i32,
    };
    match fstat(&file) {
        Ok(stat) if stat.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFREG.bits() => {}
        Ok(_) => return NOT_REGULAR,
        Err(e) => return e as i32,
    }
    let mut buf = [0u8; 8192];
    let mut total = 0usize;
    loop {
        let n = match nix::unistd::read(&file, &mut buf) {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return e as i32,
        };
        total += n;
        if total > limit {
            return TOO_LARGE;
        }
        let mut sent = 0;
        while sent < n {
            match nix::unistd::write(out, &buf[sent..n]) {
                Ok(written) => sent += written,
                Err(Errno::EINTR) => {}
                Err(e) => return e as i32,
            }
        }
    }
}

/// What the child sends, at most `limit` bytes, until it closes the pipe
/// or the deadline passes.
fn collect(
    pipe: &OwnedFd,
    limit: usize,
    deadline: Duration,
) -> std::result::Result<Vec<u8>, String> {
    let started = Instant::now();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => {
                return Err(format!(
                    "reading it took longer than {}s",
                    deadline.as_secs()
                ));
            }
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("cannot wait for the reading process: {e}")),
        }
        match nix::unistd::read(pipe, &mut buf) {
            Ok(0) => return Ok(bytes),
            Ok(n) if bytes.len() + n > limit => {
                return Err(format!("it is larger than {limit} bytes"));
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("cannot read from the reading process: {e}")),
        }
    }
}

/// Supplementary groups, then gid, then uid, then the proof that root is
/// gone: the one way both children (the command's, `read_as`'s) drop.
fn become_user(uid: Uid, gid: Gid, groups: &[Gid]) -> nix::Result<()> {
    setgroups(groups)?;
    setresgid(gid, gid, gid)?;
    setresuid(uid, uid, uid)?;
    check_dropped(uid, gid)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// nobody: may read what others may read, nothing more.
    const NOBODY: u32 = 65534;

    fn read(path: &Path, limit: usize) -> std::result::Result<Vec<u8>, String> {
        let reader = Reader {
            uid: Uid::from_raw(NOBODY),
            gid: Gid::from_raw(NOBODY),
            groups: &[],
            directories: &[PathBuf::from("/")],
        };
        read_as(&reader, path, limit, Duration::from_secs(10))
    }

    #[test]
    #[cfg_attr(not(feature = "root-tests"), ignore = "needs root")]
    fn reads_only_what_the_user_may_read() {
        crate::sys::require_root();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let open = dir.path().join("open");
        std::fs::write(&open, b"a=1\n").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read(&open, 100).unwrap(), b"a=1\n");

        let closed = dir.path().join("closed");
        std::fs::write(&closed, b"secret").unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&closed, 100).unwrap_err(), "Permission denied");

        assert_eq!(read(&open, 3).unwrap_err(), "it is larger than 3 bytes");
        assert_eq!(
            read(dir.path(), 100).unwrap_err(),
            "it is not a regular file"
        );
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o666)).unwrap();
        assert_eq!(read(&fifo, 100).unwrap_err(), "it is not a regular file");
        assert_eq!(
            read(&dir.path().join("missing"), 100).unwrap_err(),
            "No such file or directory"
        );
    }
}
